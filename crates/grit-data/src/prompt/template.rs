//! HF chat templates rendered with minijinja, in an environment set up like transformers' own.

use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind, Value, context};

use super::checkpoint::{self, TemplateField};
use super::{Message, PromptError, Result};
use crate::files::{read_optional_json, read_optional_text};

/// Qwen2.5-VL's chat template, verbatim from the hub checkpoint's `chat_template.json`: a default
/// system turn, `<|vision_start|><|image_pad|><|vision_end|>` per image, optional "Picture n: "
/// labels (`add_vision_id`), and the `<|im_start|>assistant\n` generation header.
pub const QWEN2_5_VL_CHAT_TEMPLATE: &str = "{% set image_count = namespace(value=0) %}{% set \
video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and \
message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif \
%}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] \
}}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or \
'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 \
%}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif \
%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in \
content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ \
video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in \
content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if \
add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template. `origin` says where it came from, for errors and logs: a
/// checkpoint can carry up to three copies, and which one won matters when they differ.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    origin: String,
    source: String,
}

impl ChatTemplate {
    /// Compiles `source`; `origin` (a file path, or a description) names it in errors.
    pub fn new(source: impl Into<String>, origin: impl Into<String>) -> Result<Self> {
        let origin = origin.into();
        let mut env = Environment::new();
        // transformers compiles templates with trim_blocks and lstrip_blocks; without them the
        // same template renders different whitespace, hence different ids.
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("default delimiters are valid");
        env.set_syntax(syntax);
        // HF templates are written against Python objects and call str / dict methods.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        let source = source.into();
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|source| PromptError::Template {
                origin: origin.clone(),
                source,
            })?;
        Ok(ChatTemplate {
            env,
            origin,
            source,
        })
    }

    /// [`QWEN2_5_VL_CHAT_TEMPLATE`], for checkpoints that ship no template.
    pub fn qwen2_5_vl() -> Self {
        Self::new(QWEN2_5_VL_CHAT_TEMPLATE, "built-in Qwen2.5-VL template")
            .expect("the built-in template compiles")
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The template's Jinja text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages` as transformers' `apply_chat_template(..., tokenize=False)` does, with
    /// `add_vision_id` off (GRIT prompts never label their single image).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let ctx = context! {
            messages => Value::from(Serde(messages)),
            add_generation_prompt,
            add_vision_id => false,
        };
        self.env
            .get_template(TEMPLATE_NAME)
            .and_then(|template| template.render(ctx))
            .map_err(|source| PromptError::Template {
                origin: self.origin.clone(),
                source,
            })
    }
}

/// The checkpoint's own template, looked up where transformers' processor looks: the legacy
/// `chat_template.json` first (it wins over the others there), then `chat_template.jinja`, then
/// `tokenizer_config.json`'s `chat_template`. `None` when the checkpoint ships none.
pub(super) fn find(
    dir: &Path,
    tokenizer_config: Option<&TemplateField>,
) -> Result<Option<ChatTemplate>> {
    let json_path = dir.join("chat_template.json");
    if let Some(file) = read_optional_json::<checkpoint::ChatTemplateFile>(&json_path)? {
        return ChatTemplate::new(file.chat_template, json_path.display().to_string()).map(Some);
    }
    let jinja_path = dir.join("chat_template.jinja");
    if let Some(source) = read_optional_text(&jinja_path)? {
        return ChatTemplate::new(source, jinja_path.display().to_string()).map(Some);
    }
    let config_path = dir.join("tokenizer_config.json");
    let origin = config_path.display().to_string();
    match tokenizer_config {
        None => Ok(None),
        Some(TemplateField::Single(source)) => ChatTemplate::new(source.clone(), origin).map(Some),
        // HF's list form names its templates; without a requested name it uses "default".
        Some(TemplateField::Named(templates)) => {
            match templates.iter().find(|t| t.name == "default") {
                Some(default) => ChatTemplate::new(default.template.clone(), origin).map(Some),
                None => Err(PromptError::checkpoint(
                    config_path,
                    "chat_template lists named templates but none is called \"default\"",
                )),
            }
        }
    }
}

/// The template-side `raise_exception(message)` HF provides, so templates can reject input.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}
