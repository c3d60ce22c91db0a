//! The checkpoint's tokenizer and chat template, and the ids of a prompt with its images.

use std::fs;
use std::path::Path;

use tokenizers::{DecoderWrapper, Tokenizer};

use super::checkpoint::{self, GenerationConfig, PreprocessorConfig, TokenizerConfig};
use super::stream::StreamDecoder;
use super::template::{self, ChatTemplate};
use super::{Message, PromptError, Result};
use crate::files::{FileError, read_optional_json};

const VISION_START: &str = "<|vision_start|>";
const IMAGE_PAD: &str = "<|image_pad|>";
const VISION_END: &str = "<|vision_end|>";

/// Ids of the tokens that frame an image in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisionTokens {
    pub start: u32,
    /// Stands for one merged patch; the model replaces its embedding with the vision tower's.
    pub image_pad: u32,
    pub end: u32,
}

impl VisionTokens {
    /// The three ids, which a generated completion must never contain.
    pub fn ids(&self) -> Vec<u32> {
        vec![self.start, self.image_pad, self.end]
    }
}

/// A tokenized prompt, as `Qwen2_5_VLProcessor` returns it for one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPrompt {
    pub input_ids: Vec<u32>,
    /// 1 where `input_ids` holds `<|image_pad|>`, 0 elsewhere (transformers' modality ids).
    pub mm_token_type_ids: Vec<u8>,
}

/// Everything of a Qwen2.5-VL checkpoint that turns chat messages into ids and ids into text.
#[derive(Debug)]
pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    template: ChatTemplate,
    vision: VisionTokens,
    eos_token_ids: Vec<u32>,
    pad_token_id: Option<u32>,
    merge_size: usize,
}

impl ChatTokenizer {
    /// Loads `tokenizer.json` and the template, special tokens and merge size from the files
    /// next to it. Without a template of its own, the checkpoint gets Qwen2.5-VL's.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;
        let vision =
            vision_tokens(&tokenizer).map_err(|token| PromptError::MissingVisionToken {
                path: dir.join("tokenizer.json"),
                token,
            })?;
        let config: TokenizerConfig =
            read_optional_json(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
        let template = template::find(dir, config.chat_template.as_ref())?
            .unwrap_or_else(ChatTemplate::qwen2_5_vl);
        let generation: GenerationConfig =
            read_optional_json(&dir.join("generation_config.json"))?.unwrap_or_default();
        let preprocessor: PreprocessorConfig =
            read_optional_json(&dir.join("preprocessor_config.json"))?.unwrap_or_default();
        let (eos_token_ids, pad_token_id) = special_ids(dir, &tokenizer, &config, &generation)?;
        Ok(ChatTokenizer {
            tokenizer,
            template,
            vision,
            eos_token_ids,
            pad_token_id,
            merge_size: preprocessor.merge_size,
        })
    }

    /// The chat as text, with one `<|image_pad|>` per image.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.template.render(messages, add_generation_prompt)
    }

    /// A generation prompt: `messages` rendered with the assistant header, then encoded.
    pub fn encode_chat(&self, messages: &[Message], grids: &[[usize; 3]]) -> Result<EncodedPrompt> {
        self.encode_prompt(&self.render(messages, true)?, grids)
    }

    /// Expands the `i`-th `<|image_pad|>` of `text` to one pad per merged patch of `grids[i]`
    /// (`[t, h, w]` in patches) and tokenizes the result, as the processor does.
    pub fn encode_prompt(&self, text: &str, grids: &[[usize; 3]]) -> Result<EncodedPrompt> {
        let placeholders = text.matches(IMAGE_PAD).count();
        if placeholders != grids.len() {
            return Err(PromptError::ImageCount {
                placeholders,
                images: grids.len(),
            });
        }
        let mut pieces = text.split(IMAGE_PAD);
        let mut expanded = pieces.next().unwrap_or_default().to_owned();
        for ((index, grid), piece) in grids.iter().enumerate().zip(pieces) {
            expanded.push_str(&IMAGE_PAD.repeat(self.image_tokens(index, *grid)?));
            expanded.push_str(piece);
        }
        let input_ids = self.encode(&expanded)?;
        let mm_token_type_ids = input_ids
            .iter()
            .map(|&id| u8::from(id == self.vision.image_pad))
            .collect();
        Ok(EncodedPrompt {
            input_ids,
            mm_token_type_ids,
        })
    }

    /// How many `<|image_pad|>` an image of `grid` takes: one per `merge × merge` patches.
    fn image_tokens(&self, index: usize, grid: [usize; 3]) -> Result<usize> {
        let [t, h, w] = grid;
        let merge = self.merge_size;
        if h % merge != 0 || w % merge != 0 {
            return Err(PromptError::Grid { index, grid, merge });
        }
        Ok(t * h * w / (merge * merge))
    }

    /// Tokenizes text as it is, special-token strings included, adding no tokens of its own
    /// (Qwen's tokenizer has no BOS, so this is also what `add_special_tokens=True` gives).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|err| PromptError::Tokenizer(err.to_string()))
    }

    /// Text of `ids`; unknown ids are dropped and broken UTF-8 becomes U+FFFD, as in
    /// transformers (`errors="replace"`).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|err| PromptError::Tokenizer(err.to_string()))
    }

    /// Decodes ids one at a time as they are generated; see [`StreamDecoder`].
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(&self.tokenizer, skip_special_tokens)
    }

    /// Ids that end generation: `generation_config.json`'s `eos_token_id`, then the tokenizer's
    /// `eos_token` if that list lacks it (for Qwen2.5-VL `[<|im_end|>, <|endoftext|>]`).
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_token_ids
    }

    /// The id batches are padded with: the tokenizer's `pad_token`, else
    /// `generation_config.json`'s `pad_token_id` (`<|endoftext|>` for Qwen2.5-VL).
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token_id
    }

    pub fn vision_tokens(&self) -> VisionTokens {
        self.vision
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// Reads the file first so that a missing or unreadable file is reported with its path.
fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let bytes = fs::read(path).map_err(|err| FileError::io(path, err))?;
    let tokenizer = Tokenizer::from_bytes(bytes)
        .map_err(|err| PromptError::checkpoint(path, format!("not a tokenizer: {err}")))?;
    // StreamDecoder turns tokens into bytes itself, which is only right for byte-level BPE.
    match tokenizer.get_decoder() {
        Some(DecoderWrapper::ByteLevel(_)) => Ok(tokenizer),
        _ => Err(PromptError::checkpoint(
            path,
            "the decoder is not ByteLevel; only byte-level BPE tokenizers (Qwen2) are supported",
        )),
    }
}

/// The vision tokens' ids, or the first one the tokenizer lacks.
fn vision_tokens(tokenizer: &Tokenizer) -> std::result::Result<VisionTokens, &'static str> {
    let id = |token: &'static str| tokenizer.token_to_id(token).ok_or(token);
    Ok(VisionTokens {
        start: id(VISION_START)?,
        image_pad: id(IMAGE_PAD)?,
        end: id(VISION_END)?,
    })
}

fn special_ids(
    dir: &Path,
    tokenizer: &Tokenizer,
    config: &TokenizerConfig,
    generation: &GenerationConfig,
) -> Result<(Vec<u32>, Option<u32>)> {
    let config_path = dir.join("tokenizer_config.json");
    let id = |name: &str, token: &checkpoint::TokenField| {
        tokenizer.token_to_id(token.content()).ok_or_else(|| {
            PromptError::checkpoint(
                &config_path,
                format!("{name} `{}` is not in tokenizer.json", token.content()),
            )
        })
    };
    let mut eos = generation
        .eos_token_id
        .as_ref()
        .map(checkpoint::OneOrMany::to_vec)
        .unwrap_or_default();
    if let Some(token) = &config.eos_token {
        let eos_id = id("eos_token", token)?;
        if !eos.contains(&eos_id) {
            eos.push(eos_id);
        }
    }
    if eos.is_empty() {
        return Err(PromptError::checkpoint(
            dir,
            "no eos token in generation_config.json or tokenizer_config.json",
        ));
    }
    let pad = match &config.pad_token {
        Some(token) => Some(id("pad_token", token)?),
        None => generation.pad_token_id,
    };
    Ok((eos, pad))
}
