//! Prompts for Qwen2.5-VL, token for token what transformers' `Qwen2_5_VLProcessor` produces.
//!
//! A prompt is built in three steps, each of which can be checked against transformers on its
//! own:
//!
//! 1. [`user_message`]: the GRIT user turn (images first, then `"\nQuestion: "`, the question and
//!    the [`PromptStyle`]'s suffix), as an HF-style chat [`Message`].
//! 2. [`ChatTokenizer::render`]: the checkpoint's Jinja chat template ([`ChatTemplate`]) turns the
//!    messages into text with one `<|image_pad|>` per image.
//! 3. [`ChatTokenizer::encode_prompt`]: each `<|image_pad|>` is expanded to one copy per merged
//!    patch of its image, and the text is tokenized with the checkpoint's `tokenizer.json`.
//!
//! Generated ids go back to text with [`ChatTokenizer::decode`], or token by token with a
//! [`StreamDecoder`] that never shows half a character.

mod checkpoint;
mod error;
pub mod internvl;
mod stream;
mod template;
mod tokenizer;

use serde::{Deserialize, Serialize};

pub use error::{PromptError, Result};
pub use stream::StreamDecoder;
pub use template::{ChatTemplate, QWEN2_5_VL_CHAT_TEMPLATE};
pub use tokenizer::{ChatTokenizer, EncodedPrompt, VisionTokens};

/// The instruction after the question (spec §2). GRIT-trained models need [`PromptStyle::Grit`];
/// the others reproduce the paper's baselines and the official one-shot variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromptStyle {
    /// Think with boxes, rethink, then answer.
    #[default]
    Grit,
    /// The bare question: zero-shot baseline, judged on the whole response.
    Direct,
    /// List the boxes, then answer: the SFT baseline's format.
    Sft,
    /// [`PromptStyle::Grit`] with the official one-shot example, boxes as JSON `bbox_2d` (the
    /// `_icl` setting for Qwen2.5-VL).
    GritIcl,
    /// The official one-shot example for InternVL: boxes as `<ref>label</ref><box>[[…]]</box>`.
    GritIclInternvl,
}

/// The GRIT suffix, exactly as the official code appends it (leading space, trailing newline).
pub const GRIT_SUFFIX: &str = " First, think between <think> and </think> while output necessary \
coordinates needed to answer the question in JSON with key 'bbox_2d'. Then, based on the thinking \
contents and coordinates, rethink between <rethink> </rethink> and then answer the question after \
<answer>.\n";

/// The one-shot example the official `_icl` setting appends to [`GRIT_SUFFIX`] (Qwen2.5-VL).
pub const ICL_SUFFIX: &str = " First, think between <think> and </think> while output necessary \
coordinates needed to answer the question in JSON with key 'bbox_2d'. Then, based on the thinking \
contents and coordinates, rethink between <rethink> </rethink> and then answer the question after \
<answer>.\n\nExample: Question: How many chairs are there?\n<think> Let me check them out \n{\n  \
\"bbox_2d\": [142, 314, 299, 447],\n  \"label\": \"chair\",\n  \"bbox_2d\": [0, 439, 58, 531],\n  \
\"label\": \"chair\",\n  \"bbox_2d\": [222, 260, 299, 324],\n  \"label\": \"chair\",\n  \"bbox_2d\": \
[285, 325, 336, 430],\n  \"label\": \"chair\",\n  \"bbox_2d\": [316, 329, 336, 387],\n  \"label\": \
\"chair\"\n}\n \n</think>\n<rethink>\nBased on the bounding box coordinates, there are 5 chairs in the \
picture. \n</rethink>\n<answer>\n5\n</answer>";

/// The official `_icl` suffix for InternVL: boxes between `<box>` and `</box>`, and the example
/// in InternVL's `<ref>`/`<box>` syntax.
pub const ICL_INTERNVL_SUFFIX: &str = " First, think between <think> and </think> while output \
necessary coordinates needed to answer the question between <box> and </box>. Then, based on the \
thinking contents and coordinates, rethink between <rethink> </rethink> and then answer the \
question after <answer>.\n\nExample: Question: How many chairs are there?\n<think> Let me check them \
out <ref>chair</ref> <box>[[142, 314, 299, 447], [0, 439, 58, 531], [222, 260, 299, 324], [285, 325, \
336, 430], [316, 329, 336, 387]]</box> </think>\n<rethink>\nBased on the bounding box coordinates, \
there are 5 chairs in the picture. \n</rethink>\n<answer>\n5\n</answer>";

/// Where the answer ends in GRIT's output format; generation stops once a completion holds it.
pub const ANSWER_END: &str = "</answer>";

/// The SFT baseline's suffix, exactly (the grammar slip "a lists" is the original's).
pub const SFT_SUFFIX: &str = "\nFirst, output a lists of all necessary coordinates (bbox_2d) needed \
to answer the question, then answer the question after <answer>.\n";

impl PromptStyle {
    pub const ALL: [PromptStyle; 5] = [
        PromptStyle::Grit,
        PromptStyle::Direct,
        PromptStyle::Sft,
        PromptStyle::GritIcl,
        PromptStyle::GritIclInternvl,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            PromptStyle::Grit => GRIT_SUFFIX,
            PromptStyle::Direct => "",
            PromptStyle::Sft => SFT_SUFFIX,
            PromptStyle::GritIcl => ICL_SUFFIX,
            PromptStyle::GritIclInternvl => ICL_INTERNVL_SUFFIX,
        }
    }

    /// The name in configs and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            PromptStyle::Grit => "grit",
            PromptStyle::Direct => "direct",
            PromptStyle::Sft => "sft",
            PromptStyle::GritIcl => "grit-icl",
            PromptStyle::GritIclInternvl => "grit-icl-internvl",
        }
    }

    /// Where generation stops besides the end tokens: after `</answer>`, which the official
    /// trainer always stops at; a direct question asks for no tag and stops at the end token.
    pub fn stop_strings(self) -> Vec<String> {
        match self {
            PromptStyle::Direct => Vec::new(),
            _ => vec![ANSWER_END.to_owned()],
        }
    }

    /// The answer is the whole response, not what `<answer>` holds (the official zero-shot
    /// scoring, `gpt_score_reward_1`).
    pub fn judges_whole_response(self) -> bool {
        self == PromptStyle::Direct
    }
}

impl std::fmt::Display for PromptStyle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PromptStyle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        PromptStyle::ALL
            .into_iter()
            .find(|style| style.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = PromptStyle::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown prompt style `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// One chat turn, shaped like the dicts HF chat templates read (`role`, and `content` either a
/// string or a list of typed parts), so that it serializes into exactly what the template sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

/// A part of a multimodal turn: `{"type": "image"}` or `{"type": "text", "text": ...}`. The image
/// itself travels separately; the template only marks where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Part {
    Image,
    Text { text: String },
}

impl Message {
    /// A turn whose content is a plain string.
    pub fn text(role: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: Content::Text(text.into()),
        }
    }
}

/// The GRIT user turn: `images` image parts, then `"\nQuestion: " + question + suffix`.
pub fn user_message(images: usize, question: &str, style: PromptStyle) -> Message {
    let mut parts = vec![Part::Image; images];
    parts.push(Part::Text {
        text: format!("\nQuestion: {question}{}", style.suffix()),
    });
    Message {
        role: "user".to_owned(),
        content: Content::Parts(parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_suffixes_are_the_official_strings() {
        // `repr` of the official strings (GRPO_GR.py), evaluated.
        let qwen = " First, think between <think> and </think> while output necessary coordinates needed to answer the question in JSON with key 'bbox_2d'. Then, based on the thinking contents and coordinates, rethink between <rethink> </rethink> and then answer the question after <answer>.\n\nExample: Question: How many chairs are there?\n<think> Let me check them out \n{\n  \"bbox_2d\": [142, 314, 299, 447],\n  \"label\": \"chair\",\n  \"bbox_2d\": [0, 439, 58, 531],\n  \"label\": \"chair\",\n  \"bbox_2d\": [222, 260, 299, 324],\n  \"label\": \"chair\",\n  \"bbox_2d\": [285, 325, 336, 430],\n  \"label\": \"chair\",\n  \"bbox_2d\": [316, 329, 336, 387],\n  \"label\": \"chair\"\n}\n \n</think>\n<rethink>\nBased on the bounding box coordinates, there are 5 chairs in the picture. \n</rethink>\n<answer>\n5\n</answer>";
        let internvl = " First, think between <think> and </think> while output necessary coordinates needed to answer the question between <box> and </box>. Then, based on the thinking contents and coordinates, rethink between <rethink> </rethink> and then answer the question after <answer>.\n\nExample: Question: How many chairs are there?\n<think> Let me check them out <ref>chair</ref> <box>[[142, 314, 299, 447], [0, 439, 58, 531], [222, 260, 299, 324], [285, 325, 336, 430], [316, 329, 336, 387]]</box> </think>\n<rethink>\nBased on the bounding box coordinates, there are 5 chairs in the picture. \n</rethink>\n<answer>\n5\n</answer>";
        assert_eq!(PromptStyle::GritIcl.suffix(), qwen);
        assert_eq!(PromptStyle::GritIclInternvl.suffix(), internvl);
        assert!(qwen.starts_with(GRIT_SUFFIX));
        for style in [PromptStyle::GritIcl, PromptStyle::GritIclInternvl] {
            assert_eq!(style.to_string().parse::<PromptStyle>(), Ok(style));
            assert_eq!(style.stop_strings(), [ANSWER_END]);
        }
    }
}
