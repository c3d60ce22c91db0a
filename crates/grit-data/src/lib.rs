//! What surrounds a vision-language model in GRIT, with no tensor library: image
//! preprocessing, prompt rendering and tokenization, and parsing of grounded completions.

pub mod annotate;
pub mod completion;
pub mod dataset;
pub mod files;
pub mod hub;
pub mod metrics;
pub mod preprocess;
pub mod prompt;
pub mod rewards;
pub mod synthetic;
