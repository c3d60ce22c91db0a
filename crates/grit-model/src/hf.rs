//! Reading HF `config.json` files: what is stored is deserialized into serde structs (a wrong
//! type is an error naming its key path), then validated once, before any tensor exists, with
//! errors that name the key.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// A value of a config file that grit cannot run with.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The key's path in the file, e.g. `vision_config.patch_size`.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The crate error for `path`, naming the file and the key.
    pub fn in_file(self, path: &Path) -> Error {
        Error::Config {
            path: path.into(),
            message: self.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The largest size any config field may have: far above every real model's (Qwen2.5's
/// vocabulary is 151,936), low enough that products of a few sizes cannot overflow.
pub const MAX_SIZE: usize = 1 << 24;

/// Each `(key, value)` must lie in `1..=MAX_SIZE`.
pub fn check_sizes(at: &str, sizes: &[(&str, usize)]) -> std::result::Result<(), ConfigError> {
    for &(name, value) in sizes {
        check(
            (1..=MAX_SIZE).contains(&value),
            format!("{at}{name}"),
            format!("{value} must lie in 1..={MAX_SIZE}"),
        )?;
    }
    Ok(())
}

/// `Ok` when `ok`, else the error for `key`.
pub fn check(
    ok: bool,
    key: impl Into<String>,
    message: impl Into<String>,
) -> std::result::Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(key, message))
    }
}

/// An activation name, when present, must be the one the family implements.
pub fn check_act(
    act: Option<&str>,
    key: &str,
    expected: &str,
) -> std::result::Result<(), ConfigError> {
    match act {
        None => Ok(()),
        Some(act) if act == expected => Ok(()),
        Some(act) => Err(ConfigError::new(
            key,
            format!("{act:?} is not supported (expected {expected:?})"),
        )),
    }
}

/// Deserializes `value` (the object found at `at`, e.g. `text_config.`), naming the key path of
/// the first field of the wrong type or missing.
pub fn parse<T: DeserializeOwned>(value: &Value, at: &str) -> std::result::Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." {
            at.trim_end_matches('.').to_owned()
        } else {
            format!("{at}{path}")
        };
        ConfigError::new(key, e.into_inner().to_string())
    })
}

/// The JSON object of a file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|error| Error::Json {
        path: path.into(),
        error,
    })
}
