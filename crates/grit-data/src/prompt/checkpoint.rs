//! The JSON files of an HF checkpoint that prompts depend on, read leniently: every field is
//! optional and unknown fields are ignored, because checkpoints differ in what they carry.

use serde::Deserialize;

/// `tokenizer_config.json`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenizerConfig {
    pub chat_template: Option<TemplateField>,
    pub eos_token: Option<TokenField>,
    pub pad_token: Option<TokenField>,
}

/// A template as one string, or HF's list of named templates.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum TemplateField {
    Single(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
pub(super) struct NamedTemplate {
    pub name: String,
    pub template: String,
}

/// A special token as its text, or as the serialized `AddedToken` older configs write.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum TokenField {
    Text(String),
    Added { content: String },
}

impl TokenField {
    pub fn content(&self) -> &str {
        match self {
            TokenField::Text(text) => text,
            TokenField::Added { content } => content,
        }
    }
}

/// `generation_config.json`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct GenerationConfig {
    pub eos_token_id: Option<OneOrMany>,
    pub pad_token_id: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            OneOrMany::One(id) => vec![*id],
            OneOrMany::Many(ids) => ids.clone(),
        }
    }
}

/// `preprocessor_config.json`: only what the token count of an image depends on.
#[derive(Debug, Deserialize)]
pub(super) struct PreprocessorConfig {
    #[serde(default = "default_merge_size")]
    pub merge_size: usize,
}

impl Default for PreprocessorConfig {
    fn default() -> Self {
        PreprocessorConfig {
            merge_size: default_merge_size(),
        }
    }
}

/// The Qwen2-VL image processor's default: 2×2 patches become one token.
fn default_merge_size() -> usize {
    2
}

/// `chat_template.json`, the processor's legacy template file.
#[derive(Debug, Deserialize)]
pub(super) struct ChatTemplateFile {
    pub chat_template: String,
}
