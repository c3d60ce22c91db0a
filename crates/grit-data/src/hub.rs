//! The processor files of an HF checkpoint directory as transformers 5 reads them: with them,
//! `AutoProcessor.from_pretrained(checkpoint)` rebuilds the image processing and the chat
//! template grit used, and `apply_chat_template` gives grit's prompt ids.
//!
//! | file | Qwen2.5-VL | InternVL3 |
//! |---|---|---|
//! | `preprocessor_config.json` | `Qwen2VLImageProcessor` with the run's pixel bounds | `GotOcr2ImageProcessor` tiling into at most the run's tile count |
//! | `processor_config.json` | — | `image_seq_length`, the `<IMG_CONTEXT>` tokens per tile |
//! | `chat_template.jinja` | the chat template | the `internvl2_5` template |
//! | `tokenizer_config.json` | eos and pad | eos and pad, and the image tokens the processor looks up |
//! | `generation_config.json` | the end ids | the end ids |

use std::fs;
use std::io;
use std::path::Path;

use serde_json::{Value, json};
use tokenizers::Tokenizer;

use crate::files::FileError;
use crate::preprocess::PreprocessConfig;
use crate::preprocess::internvl::TileConfig;
use crate::prompt::QWEN2_5_VL_CHAT_TEMPLATE;
use crate::prompt::internvl::{IMG_CONTEXT, IMG_END, IMG_START, INTERNVL2_5_CHAT_TEMPLATE};

/// `<|im_end|>`, which ends an assistant turn, and `<|endoftext|>`, Qwen2's padding.
pub const IM_END: &str = "<|im_end|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// The tokenizer attributes transformers' `InternVLProcessor` reads its image tokens from, as
/// `save_pretrained` writes them into `tokenizer_config.json`.
pub const INTERNVL_TOKEN_NAMES: [(&str, &str); 4] = [
    ("start_image_token", IMG_START),
    ("end_image_token", IMG_END),
    ("context_image_token", IMG_CONTEXT),
    ("video_token", "<video>"),
];

/// How a family turns images into model inputs, as its processor files state it.
#[derive(Debug, Clone, Copy)]
pub enum ImageProcessor<'a> {
    Qwen2_5Vl(&'a PreprocessConfig),
    InternVl3(&'a TileConfig),
}

/// The Python values of the normalization constants, as configs write them; read back, they
/// round to the f32 constants exactly.
const CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

impl ImageProcessor<'_> {
    /// The chat template transformers' processor of the family renders GRIT prompts with.
    pub fn chat_template(&self) -> &'static str {
        match self {
            ImageProcessor::Qwen2_5Vl(_) => QWEN2_5_VL_CHAT_TEMPLATE,
            ImageProcessor::InternVl3(_) => INTERNVL2_5_CHAT_TEMPLATE,
        }
    }

    /// Writes `preprocessor_config.json` (and InternVL3's `processor_config.json`), replacing
    /// what `dir` has: a checkpoint remembers the image settings it was trained with.
    pub fn write_settings(&self, dir: &Path) -> Result<(), FileError> {
        match self {
            ImageProcessor::Qwen2_5Vl(c) => write_json(
                &dir.join("preprocessor_config.json"),
                &json!({
                    "image_processor_type": "Qwen2VLImageProcessor",
                    "processor_class": "Qwen2_5_VLProcessor",
                    "do_convert_rgb": true,
                    "do_resize": true,
                    "resample": 3,
                    "do_rescale": true,
                    "rescale_factor": 1.0 / 255.0,
                    "do_normalize": true,
                    "image_mean": python_floats(c.image_mean, CLIP_MEAN),
                    "image_std": python_floats(c.image_std, CLIP_STD),
                    "min_pixels": c.min_pixels,
                    "max_pixels": c.max_pixels,
                    "size": {"shortest_edge": c.min_pixels, "longest_edge": c.max_pixels},
                    "patch_size": c.patch_size,
                    "temporal_patch_size": c.temporal_patch_size,
                    "merge_size": c.merge_size,
                }),
            ),
            ImageProcessor::InternVl3(t) => {
                write_json(
                    &dir.join("preprocessor_config.json"),
                    &json!({
                        "image_processor_type": "GotOcr2ImageProcessor",
                        "processor_class": "InternVLProcessor",
                        "do_convert_rgb": true,
                        "do_resize": true,
                        "resample": 3,
                        "size": {"height": t.tile_size, "width": t.tile_size},
                        "do_rescale": true,
                        "rescale_factor": 1.0 / 255.0,
                        "do_normalize": true,
                        "image_mean": python_floats(t.image_mean, IMAGENET_MEAN),
                        "image_std": python_floats(t.image_std, IMAGENET_STD),
                        "crop_to_patches": true,
                        "min_patches": t.min_tiles,
                        "max_patches": t.max_tiles,
                    }),
                )?;
                write_json(
                    &dir.join("processor_config.json"),
                    &json!({
                        "processor_class": "InternVLProcessor",
                        "image_seq_length": t.tokens_per_tile,
                    }),
                )
            }
        }
    }

    /// `tokenizer_config.json`, `chat_template.jinja` and `generation_config.json` for a
    /// tokenizer grit built (the demo's), beside `tokenizer.json`.
    pub fn write_tokenizer_files(
        &self,
        dir: &Path,
        tokenizer: &Tokenizer,
    ) -> Result<(), FileError> {
        let generation_path = dir.join("generation_config.json");
        let id = |token: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| {
                let message = format!("the tokenizer has no {token}");
                FileError::io(
                    &generation_path,
                    io::Error::new(io::ErrorKind::InvalidInput, message),
                )
            })
        };
        let (im_end, end_of_text) = (id(IM_END)?, id(END_OF_TEXT)?);
        let mut config = json!({
            // The class that loads tokenizer.json as it is (a named class like Qwen2Tokenizer
            // rebuilds its own pre-tokenizer and would split this vocabulary differently).
            "tokenizer_class": "PreTrainedTokenizerFast",
            "eos_token": IM_END,
            "pad_token": END_OF_TEXT,
            "clean_up_tokenization_spaces": false,
        });
        if let ImageProcessor::InternVl3(_) = self {
            for (key, token) in INTERNVL_TOKEN_NAMES {
                config[key] = token.into();
            }
        }
        write_json(&dir.join("tokenizer_config.json"), &config)?;
        write_text(&dir.join("chat_template.jinja"), self.chat_template())?;
        write_json(
            &generation_path,
            &json!({"eos_token_id": [im_end, end_of_text], "pad_token_id": end_of_text}),
        )
    }
}

/// The Python spelling of the constants when `values` are them, else `values` as they are.
fn python_floats(values: [f32; 3], python: [f64; 3]) -> Value {
    if values.iter().zip(python).all(|(&v, p)| v == p as f32) {
        json!(python)
    } else {
        json!(values)
    }
}

pub(crate) fn write_json(path: &Path, value: &Value) -> Result<(), FileError> {
    let text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
    write_text(path, &(text + "\n"))
}

pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), FileError> {
    fs::write(path, text).map_err(|e| FileError::io(path, e))
}
