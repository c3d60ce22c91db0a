//! InternVL3 prompts: the `internvl2_5` conversation template of the original code (an MPT-style
//! ChatML with a Chinese default system message), written as an HF chat template so that
//! [`ChatTemplate`] renders it like any checkpoint's, and the expansion of each image's
//! `<IMG_CONTEXT>` into `<img>`, one `<IMG_CONTEXT>` per image token, `</img>`. The template marks
//! images with `<IMG_CONTEXT>`, as transformers' `InternVLProcessor` expects, so the checkpoints
//! grit writes carry the very template it renders with.

use super::{ChatTemplate, PromptError, Result};

/// `internvl2_5`'s default system message, verbatim.
pub const INTERNVL2_5_SYSTEM_MESSAGE: &str = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。";

/// The `internvl2_5` conversation as a chat template: a system turn (the messages' own, else
/// [`INTERNVL2_5_SYSTEM_MESSAGE`]), `<|im_start|>{role}\n{content}<|im_end|>\n` per turn with
/// `<IMG_CONTEXT>\n` for each image part, and the `<|im_start|>assistant\n` header when asked for.
pub const INTERNVL2_5_CHAT_TEMPLATE: &str = "{% set system_message = messages[0]['content'] if \
messages and messages[0]['role'] == 'system' else '你是书生·万象，英文名是InternVL，是由上海人工智能实验室、\
清华大学及多家合作单位联合开发的多模态大语言模型。' %}<|im_start|>system\n{{ system_message }}<|im_end|>\n{% for \
message in messages if message['role'] != 'system' %}<|im_start|>{{ message['role'] }}\n{% if \
message['content'] is string %}{{ message['content'] }}{% else %}{% for content in \
message['content'] %}{% if content['type'] == 'image' %}<IMG_CONTEXT>\n{% elif content['type'] == 'text' \
%}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if \
add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

pub const IMG_START: &str = "<img>";
/// Stands for one image token; the model replaces its embedding with the projector's. Before
/// expansion, one of it marks where an image goes.
pub const IMG_CONTEXT: &str = "<IMG_CONTEXT>";
pub const IMG_END: &str = "</img>";

impl ChatTemplate {
    /// [`INTERNVL2_5_CHAT_TEMPLATE`].
    pub fn internvl2_5() -> Self {
        Self::new(INTERNVL2_5_CHAT_TEMPLATE, "built-in InternVL2.5/3 template")
            .expect("the built-in template compiles")
    }
}

/// Replaces the `i`-th `<IMG_CONTEXT>` of `text` (as the template renders it) with `<img>`, `image_tokens[i]` × `<IMG_CONTEXT>`
/// (256 per tile for InternVL3), `</img>`.
///
/// # Errors
/// [`PromptError::ImageCount`] when the placeholders and images differ in number.
pub fn expand_internvl_images(text: &str, image_tokens: &[usize]) -> Result<String> {
    let placeholders = text.matches(IMG_CONTEXT).count();
    if placeholders != image_tokens.len() {
        return Err(PromptError::ImageCount {
            placeholders,
            images: image_tokens.len(),
        });
    }
    let mut pieces = text.split(IMG_CONTEXT);
    let mut expanded = pieces.next().unwrap_or_default().to_owned();
    for (&tokens, piece) in image_tokens.iter().zip(pieces) {
        expanded.push_str(IMG_START);
        expanded.push_str(&IMG_CONTEXT.repeat(tokens));
        expanded.push_str(IMG_END);
        expanded.push_str(piece);
    }
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{Message, PromptStyle, user_message};

    #[test]
    fn grit_prompt_renders_like_the_conversation_template() {
        let template = ChatTemplate::internvl2_5();
        let messages = [user_message(1, "How many cats?", PromptStyle::Direct)];
        let system = format!("<|im_start|>system\n{INTERNVL2_5_SYSTEM_MESSAGE}<|im_end|>\n");
        let user = "<|im_start|>user\n<IMG_CONTEXT>\n\nQuestion: How many cats?<|im_end|>\n";
        // fixed mode: with the assistant header; compat (the official trainer): without.
        assert_eq!(
            template.render(&messages, true).unwrap(),
            format!("{system}{user}<|im_start|>assistant\n")
        );
        assert_eq!(
            template.render(&messages, false).unwrap(),
            format!("{system}{user}")
        );
        let with_system = [Message::text("system", "Be brief."), messages[0].clone()];
        assert_eq!(
            template.render(&with_system, false).unwrap(),
            format!("<|im_start|>system\nBe brief.<|im_end|>\n{user}")
        );
    }

    #[test]
    fn images_expand_to_their_tokens() {
        let text = "a<IMG_CONTEXT>\nb<IMG_CONTEXT>c";
        assert_eq!(
            expand_internvl_images(text, &[2, 1]).unwrap(),
            "a<img><IMG_CONTEXT><IMG_CONTEXT></img>\nb<img><IMG_CONTEXT></img>c"
        );
        assert!(matches!(
            expand_internvl_images(text, &[2]),
            Err(PromptError::ImageCount {
                placeholders: 2,
                images: 1
            })
        ));
    }
}
