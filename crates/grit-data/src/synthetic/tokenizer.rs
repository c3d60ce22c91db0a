//! A small byte-level BPE tokenizer for the synthetic task, and the checkpoint files around it.
//!
//! Qwen2.5's vocabulary has 151k entries, far too many embeddings for a model trained from
//! scratch in minutes; a few hundred tokens learned on the task's own text suffice. The layout
//! is Qwen's, so [`ChatTokenizer`](crate::prompt::ChatTokenizer) and the rest of the pipeline
//! take it unchanged: byte-level BPE, Qwen's special-token strings, the chat template, and the
//! GRIT tags as plain (non-special) added tokens that decoding keeps.

use std::fs;
use std::io;
use std::path::Path;

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use super::Item;
use super::trace::grounded_trace;
use crate::files::FileError;
use crate::hub::{ImageProcessor, write_text};
use crate::preprocess::PreprocessConfig;
use crate::prompt::internvl::{IMG_CONTEXT, IMG_END, IMG_START};
use crate::prompt::{ChatTemplate, PromptStyle, user_message};

/// Qwen's special tokens, exact strings; their ids follow the BPE vocabulary in this order.
pub const SPECIAL_TOKENS: [&str; 6] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
];

/// GRIT's tags: one id each, but not special, so `skip_special_tokens` decoding keeps them as
/// the rewards need; ids follow [`SPECIAL_TOKENS`].
pub const TAG_TOKENS: [&str; 6] = [
    "<think>",
    "</think>",
    "<rethink>",
    "</rethink>",
    "<answer>",
    "</answer>",
];

/// The smallest vocabulary [`build_tokenizer`] takes: the byte symbols and the added tokens.
pub fn min_vocab_size() -> usize {
    ByteLevel::alphabet().len() + SPECIAL_TOKENS.len() + TAG_TOKENS.len()
}

/// A byte-level BPE tokenizer of `vocab_size` tokens in all (256 byte symbols, merges learned on
/// `corpus`, then [`SPECIAL_TOKENS`] and [`TAG_TOKENS`]). The same corpus gives the same
/// tokenizer: the trainer breaks ties by token id, and ids come from a sorted alphabet.
///
/// # Panics
/// If `vocab_size` is below the 256 byte symbols plus the 12 added tokens.
pub fn build_tokenizer(corpus: &[String], vocab_size: usize) -> Tokenizer {
    let added = SPECIAL_TOKENS.len() + TAG_TOKENS.len();
    let alphabet = ByteLevel::alphabet();
    assert!(
        vocab_size >= min_vocab_size(),
        "vocab_size {vocab_size} is below the {} byte symbols and {added} added tokens",
        alphabet.len()
    );
    let mut tokenizer = Tokenizer::new(BPE::default());
    // Qwen2's tokenizer.json settings, except that this pre-tokenizer splits words itself (Qwen
    // puts a regex Split in front of it) and keeps runs of digits together, so coordinates can
    // become single tokens.
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, false, true)));
    tokenizer.with_decoder(Some(ByteLevel::new(false, false, false)));
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size - added)
        .initial_alphabet(alphabet.into_iter().collect())
        .show_progress(false)
        .build()
        .into();
    let pieces = corpus.iter().flat_map(|text| plain_pieces(text));
    tokenizer
        .train(&mut trainer, pieces)
        .expect("byte-level pre-tokenization of a str cannot fail");
    tokenizer
        .add_special_tokens(SPECIAL_TOKENS.map(|t| AddedToken::from(t, true)))
        .expect("no normalizer to fail");
    tokenizer
        .add_tokens(TAG_TOKENS.map(|t| AddedToken::from(t, false).normalized(false)))
        .expect("no normalizer to fail");
    tokenizer
}

/// Adds InternVL's image tokens (`<img>`, `</img>`, `<IMG_CONTEXT>`) as special tokens after
/// the others, for a demo InternVL3.
pub fn add_internvl_tokens(tokenizer: &mut Tokenizer) {
    tokenizer
        .add_special_tokens([IMG_START, IMG_END, IMG_CONTEXT].map(|t| AddedToken::from(t, true)))
        .expect("no normalizer to fail");
}

/// The parts of `text` between added-token strings. Encoding cuts those strings out before BPE
/// sees the text, so training does too; they must not use up merges or take the ids 0.. that
/// the BPE vocabulary starts at.
fn plain_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some((at, len)) = SPECIAL_TOKENS
        .iter()
        .chain(&TAG_TOKENS)
        .filter_map(|token| rest.find(token).map(|at| (at, token.len())))
        .min()
    {
        pieces.push(&rest[..at]);
        rest = &rest[at + len..];
    }
    pieces.push(rest);
    pieces.retain(|piece| !piece.is_empty());
    pieces
}

/// The text to train the tokenizer on: per item, the GRIT prompt as the Qwen2.5-VL chat
/// template renders it (one unexpanded `<|image_pad|>`), then its trace in original pixels,
/// which is the model's frame because [`write_tokenizer_dir`]'s preprocessor keeps the size.
pub fn tokenizer_corpus(items: &[Item]) -> Vec<String> {
    let template = ChatTemplate::qwen2_5_vl();
    items
        .iter()
        .map(|item| {
            let message = user_message(1, &item.sample.question, PromptStyle::Grit);
            let prompt = template
                .render(&[message], true)
                .expect("the built-in template renders a user turn");
            prompt + &grounded_trace(item, [1.0, 1.0])
        })
        .collect()
}

/// Writes `tokenizer.json` and the files an HF checkpoint carries around it for `processor`'s
/// family (see [`crate::hub`]): what [`ChatTokenizer::from_dir`](crate::prompt::ChatTokenizer::from_dir)
/// and the processors read, and what transformers' `AutoProcessor` needs.
///
/// # Errors
/// A file that cannot be written, or a tokenizer without Qwen's special tokens (reported
/// against `generation_config.json`).
pub fn write_tokenizer_dir(
    dir: &Path,
    tokenizer: &Tokenizer,
    processor: ImageProcessor<'_>,
) -> Result<(), FileError> {
    fs::create_dir_all(dir).map_err(|e| FileError::io(dir, e))?;
    let tokenizer_path = dir.join("tokenizer.json");
    let text = tokenizer
        .to_string(true)
        .map_err(|e| FileError::io(&tokenizer_path, io::Error::other(e.to_string())))?;
    write_text(&tokenizer_path, &text)?;
    processor.write_tokenizer_files(dir, tokenizer)?;
    processor.write_settings(dir)
}

/// The Qwen2.5-VL image settings under which an `image_size`² image (a multiple of 28, at least
/// 56) reaches the model unresized.
pub fn unresized(image_size: u32) -> PreprocessConfig {
    PreprocessConfig {
        max_pixels: (image_size as usize).pow(2),
        ..PreprocessConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pieces_drop_added_tokens() {
        assert_eq!(
            plain_pieces("<|im_start|>user\nhi<|im_end|>\n<think> a </think>"),
            ["user\nhi", "\n", " a "]
        );
        assert_eq!(plain_pieces("plain"), ["plain"]);
    }
}
