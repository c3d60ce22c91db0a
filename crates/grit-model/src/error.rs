use std::path::PathBuf;

/// Everything that can go wrong between a checkpoint on disk and tokens out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The underlying errors are part of the message, not a `source`, so that an error chain
    // printed with `{:#}` says them once.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: invalid JSON: {error}")]
    Json {
        path: PathBuf,
        error: serde_json::Error,
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
    #[error(transparent)]
    Prompt(#[from] grit_data::prompt::PromptError),
    #[error(transparent)]
    Preprocess(#[from] grit_data::preprocess::PreprocessError),
    #[error(transparent)]
    File(#[from] grit_data::files::FileError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}
