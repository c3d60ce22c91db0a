use std::path::PathBuf;

/// Everything that can go wrong between a checkpoint on disk and tokens out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: not a readable safetensors file: {message}")]
    SafeTensors { path: PathBuf, message: String },
    #[error("{dir}: no model.safetensors or model.safetensors.index.json")]
    NoWeights { dir: PathBuf },
    #[error("tensor `{key}` in {path}: {message}")]
    Tensor {
        key: String,
        path: PathBuf,
        message: String,
    },
    #[error("checkpoint does not match the model:\n{0}")]
    Mismatch(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("backend `{backend}` unavailable: {message}")]
    Backend { backend: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
