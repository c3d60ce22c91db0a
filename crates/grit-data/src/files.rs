//! Reading the files around a checkpoint or a data set, with errors that name the file.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl FileError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        FileError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

pub fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::io(path, source))
}

/// The file's text, or `None` if it does not exist (optional checkpoint files).
pub fn read_optional_text(path: &Path) -> Result<Option<String>, FileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(FileError::io(path, err)),
    }
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    parse_json(path, &read_text(path)?)
}

/// The parsed file, or `None` if it does not exist.
pub fn read_optional_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, FileError> {
    read_optional_text(path)?
        .map(|text| parse_json(path, &text))
        .transpose()
}

fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileError> {
    serde_json::from_str(text).map_err(|source| FileError::Json {
        path: path.to_owned(),
        source,
    })
}
