use std::path::PathBuf;

use crate::files::FileError;

/// Everything that can go wrong between a checkpoint's tokenizer files and prompt ids.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{path}: the tokenizer has no {token} token, which image prompts need")]
    MissingVisionToken { path: PathBuf, token: &'static str },
    #[error("chat template ({origin}): {source}")]
    Template {
        origin: String,
        source: minijinja::Error,
    },
    #[error("the prompt has {placeholders} image placeholder(s) for {images} image(s)")]
    ImageCount { placeholders: usize, images: usize },
    #[error("image {index}: grid {grid:?} is not a whole number of {merge}×{merge} patch groups")]
    Grid {
        index: usize,
        grid: [usize; 3],
        merge: usize,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

pub type Result<T, E = PromptError> = std::result::Result<T, E>;

impl PromptError {
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        PromptError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
