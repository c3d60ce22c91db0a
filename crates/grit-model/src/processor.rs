//! From an image and a question to the prompt a model family takes, and back from its boxes to
//! the image: Qwen2.5-VL's resized patches with the checkpoint's chat template (boxes in
//! processed pixels), or InternVL3's 448-px tiles with the `internvl2_5` template (boxes in
//! 0–1000). Kept beside the models, as transformers keeps processing next to modeling, so that
//! inference needs nothing of the trainer.

use std::path::Path;

use grit_data::completion::{BoxFrame, ImageSize};
use grit_data::hub::{INTERNVL_TOKEN_NAMES, ImageProcessor};
use grit_data::preprocess::internvl::{TileConfig, preprocess_tiles, preprocess_tiles_jpeg};
use grit_data::preprocess::{
    Decoding, PreprocessConfig, QWEN_MAX_PIXELS, RgbImage, load_image_as, preprocess,
    resize_bicubic, smart_resize,
};
use grit_data::prompt::internvl::{IMG_CONTEXT, IMG_END, IMG_START, expand_internvl_images};
use grit_data::prompt::{ChatTemplate, ChatTokenizer, PromptStyle, user_message};
use grit_data::rewards::Mode;

use crate::error::{Error, Result};
use crate::generate::{GenerationConfig, Sampling};
use crate::internvl3::{self, InternVl3Config};
use crate::{Family, Prompt, composition};

/// Settings a run may override; `None` keeps the checkpoint's (or GRIT's) value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessorOptions {
    /// Qwen2.5-VL's processed pixel bounds.
    pub min_pixels: Option<usize>,
    pub max_pixels: Option<usize>,
    /// InternVL3's tile limit (`None`: the checkpoint's where it tiles, else GRIT's 2).
    pub max_tiles: Option<usize>,
    /// compat: InternVL3 prompts end without the assistant header, as the official trainer
    /// builds them; fixed: with it. Qwen2.5-VL prompts always have it.
    pub mode: Mode,
}

/// A prompt ready for the model, with the sizes its boxes are read against.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub prompt: Prompt,
    pub original: ImageSize,
    /// The size the model saw: Qwen2.5-VL's resized image, InternVL3's tile grid.
    pub processed: ImageSize,
    pub frame: BoxFrame,
}

/// The tokenizer and the image processing of one checkpoint.
#[derive(Debug)]
pub struct Processor {
    pub tokenizer: ChatTokenizer,
    kind: Kind,
    mode: Mode,
}

#[derive(Debug)]
enum Kind {
    Qwen2_5Vl(PreprocessConfig),
    InternVl3 {
        tiles: TileConfig,
        template: Box<ChatTemplate>,
        generation_header: bool,
        /// `<img>`, `<IMG_CONTEXT>`, `</img>`.
        image_tokens: [u32; 3],
    },
}

/// GRIT's Qwen2.5-VL loader (`fetch_image`) resizes every image to multiples of 28 within
/// 3136–16384·28² pixels (Pillow's bicubic) before the image processor sees it, which moves the
/// frame even of small images (640×480 → 644×476).
fn fetch_image_resize(image: &RgbImage) -> Result<RgbImage> {
    const FACTOR: usize = 28;
    const MIN_PIXELS: usize = 4 * FACTOR * FACTOR;
    let (height, width) = smart_resize(
        image.height() as usize,
        image.width() as usize,
        FACTOR,
        MIN_PIXELS,
        QWEN_MAX_PIXELS,
    )?;
    // Pillow's `resize` returns a copy when the size does not change.
    if (width as u32, height as u32) == image.dimensions() {
        return Ok(image.clone());
    }
    Ok(resize_bicubic(image, width as u32, height as u32))
}

impl Processor {
    /// The processor of the checkpoint in `dir`, for the family its `config.json` names.
    pub fn from_dir(dir: &Path, options: &ProcessorOptions) -> Result<Self> {
        let family = Family::detect(dir)?;
        let tokenizer = ChatTokenizer::from_dir(dir)?;
        let kind = match family {
            Family::Qwen2_5Vl => {
                let mut config = PreprocessConfig::from_checkpoint_dir(dir)?;
                if let Some(min) = options.min_pixels {
                    config.min_pixels = min;
                }
                if let Some(max) = options.max_pixels {
                    config.max_pixels = max;
                }
                Kind::Qwen2_5Vl(config)
            }
            Family::InternVl3 => {
                let (config, _) = InternVl3Config::from_dir(dir)?;
                let tokenizer_file = dir.join("tokenizer.json");
                let id = |token: &str| {
                    tokenizer
                        .tokenizer()
                        .token_to_id(token)
                        .ok_or_else(|| Error::Config {
                            path: tokenizer_file.clone(),
                            message: format!("no `{token}` token"),
                        })
                };
                let image_tokens = [id(IMG_START)?, id(IMG_CONTEXT)?, id(IMG_END)?];
                let mut tiles = TileConfig {
                    tile_size: config.vision.image_size,
                    tokens_per_tile: config.tokens_per_tile(),
                    ..TileConfig::from_checkpoint_dir(dir)?
                };
                if let Some(max) = options.max_tiles {
                    tiles.max_tiles = max;
                }
                Kind::InternVl3 {
                    tiles,
                    template: Box::new(ChatTemplate::internvl2_5()),
                    generation_header: options.mode == Mode::Fixed,
                    image_tokens,
                }
            }
        };
        Ok(Self {
            tokenizer,
            kind,
            mode: options.mode,
        })
    }

    pub fn family(&self) -> Family {
        match self.kind {
            Kind::Qwen2_5Vl(_) => Family::Qwen2_5Vl,
            Kind::InternVl3 { .. } => Family::InternVl3,
        }
    }

    /// How this family's image files are decoded: upright with transparency on white (fixed),
    /// or as the official loader opens them (compat: no EXIF orientation; InternVL drops alpha).
    pub fn decoding(&self) -> Decoding {
        match (self.mode, &self.kind) {
            (Mode::Fixed, _) => Decoding::FIXED,
            (Mode::Compat, Kind::Qwen2_5Vl(_)) => Decoding::OFFICIAL_QWEN,
            (Mode::Compat, Kind::InternVl3 { .. }) => Decoding::OFFICIAL_INTERNVL,
        }
    }

    /// Decodes an image file as [`Self::decoding`] says.
    pub fn load_image(&self, path: &Path) -> Result<RgbImage> {
        Ok(load_image_as(path, self.decoding())?)
    }

    /// Whether training draws a fresh augmentation of each image for every pass
    /// ([`Self::encode_for_training`]): InternVL3 in compat mode, whose official trainer
    /// re-encodes every tile as JPEG.
    pub fn augments(&self) -> bool {
        self.mode == Mode::Compat && matches!(self.kind, Kind::InternVl3 { .. })
    }

    /// One image and a question as the family's prompt (evaluation and inference).
    pub fn encode(&self, image: &RgbImage, question: &str, style: PromptStyle) -> Result<Encoded> {
        self.encode_with(image, question, style, None)
    }

    /// [`Self::encode`] for one training pass: where [`Self::augments`], the tiles are JPEG
    /// round trips at qualities drawn from `seed`.
    pub fn encode_for_training(
        &self,
        image: &RgbImage,
        question: &str,
        style: PromptStyle,
        seed: u64,
    ) -> Result<Encoded> {
        self.encode_with(image, question, style, self.augments().then_some(seed))
    }

    fn encode_with(
        &self,
        image: &RgbImage,
        question: &str,
        style: PromptStyle,
        jpeg_seed: Option<u64>,
    ) -> Result<Encoded> {
        let original = ImageSize {
            width: image.width(),
            height: image.height(),
        };
        let message = user_message(1, question, style);
        Ok(match &self.kind {
            Kind::Qwen2_5Vl(config) => {
                let processed = match self.mode {
                    Mode::Compat => preprocess(&fetch_image_resize(image)?, config)?,
                    Mode::Fixed => preprocess(image, config)?,
                };
                let encoded = self
                    .tokenizer
                    .encode_chat(&[message], &[processed.grid_thw])?;
                let processed_size = ImageSize {
                    width: processed.processed_size.0 as u32,
                    height: processed.processed_size.1 as u32,
                };
                Encoded {
                    prompt: Prompt::Qwen2_5Vl(composition::Prompt {
                        ids: encoded.input_ids,
                        images: vec![crate::qwen2_5_vl::ImageInput {
                            pixel_values: processed.pixel_values,
                            grid: processed.grid_thw,
                        }],
                    }),
                    original,
                    processed: processed_size,
                    frame: BoxFrame::ProcessedPixels {
                        processed: processed_size,
                    },
                }
            }
            Kind::InternVl3 {
                tiles,
                template,
                generation_header,
                ..
            } => {
                let tiled = match jpeg_seed {
                    Some(seed) => preprocess_tiles_jpeg(image, tiles, seed)?,
                    None => preprocess_tiles(image, tiles)?,
                };
                let text = template.render(&[message], *generation_header)?;
                let text = expand_internvl_images(&text, &[tiled.num_image_tokens])?;
                let (cols, rows) = tiled.grid;
                Encoded {
                    prompt: Prompt::InternVl3(composition::Prompt {
                        ids: self.tokenizer.encode(&text)?,
                        images: vec![internvl3::ImageInput {
                            pixel_values: tiled.pixel_values,
                            tiles: tiled.tiles,
                            size: tiled.tile_size,
                        }],
                    }),
                    original,
                    processed: ImageSize {
                        width: (cols * tiled.tile_size) as u32,
                        height: (rows * tiled.tile_size) as u32,
                    },
                    frame: BoxFrame::Normalized1000,
                }
            }
        })
    }

    /// Ids a completion must never contain: the tokens that frame or stand for an image.
    pub fn suppress_tokens(&self) -> Vec<u32> {
        let mut ids = self.tokenizer.vision_tokens().ids();
        if let Kind::InternVl3 { image_tokens, .. } = &self.kind {
            ids.extend(image_tokens);
        }
        ids
    }

    /// How completions to prompts of `style` are generated: they end at the checkpoint's end
    /// tokens, or after `</answer>` when the style asks for an answer tag, and never contain an
    /// image token.
    pub fn generation(
        &self,
        max_new_tokens: usize,
        sampling: Sampling,
        style: PromptStyle,
    ) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens,
            sampling,
            eos_token_ids: self.tokenizer.eos_token_ids().to_vec(),
            stop_strings: style.stop_strings(),
            suppress_tokens: self.suppress_tokens(),
        }
    }

    /// How images are processed, as the checkpoint files state it.
    pub fn image_processor(&self) -> ImageProcessor<'_> {
        match &self.kind {
            Kind::Qwen2_5Vl(config) => ImageProcessor::Qwen2_5Vl(config),
            Kind::InternVl3 { tiles, .. } => ImageProcessor::InternVl3(tiles),
        }
    }

    /// Completes a checkpoint directory (weights written, the source's tokenizer files copied)
    /// with what transformers' `AutoProcessor` needs to rebuild this processor: the image
    /// settings it ran with (so evaluating the checkpoint preprocesses as training did), a
    /// `chat_template.jinja` when the source kept its template only in `tokenizer_config.json`,
    /// the end ids when it had no `generation_config.json`, and InternVL3's image token names
    /// in `tokenizer_config.json`.
    pub fn write_files(&self, dir: &Path) -> Result<()> {
        let processor = self.image_processor();
        let io = |path: &Path, error| Error::Io {
            path: path.to_owned(),
            error,
        };
        processor.write_settings(dir)?;
        let jinja = dir.join("chat_template.jinja");
        if !jinja.is_file() && !dir.join("chat_template.json").is_file() {
            let source = match processor {
                ImageProcessor::Qwen2_5Vl(_) => self.tokenizer.template().source(),
                ImageProcessor::InternVl3(_) => processor.chat_template(),
            };
            std::fs::write(&jinja, source).map_err(|e| io(&jinja, e))?;
        }
        let generation = dir.join("generation_config.json");
        if !generation.is_file() {
            let mut config = serde_json::json!({"eos_token_id": self.tokenizer.eos_token_ids()});
            if let Some(pad) = self.tokenizer.pad_token_id() {
                config["pad_token_id"] = pad.into();
            }
            let text = serde_json::to_string_pretty(&config).expect("JSON value");
            std::fs::write(&generation, text).map_err(|e| io(&generation, e))?;
        }
        if let ImageProcessor::InternVl3(_) = processor {
            let path = dir.join("tokenizer_config.json");
            let mut config = if path.is_file() {
                crate::hf::read_json(&path)?
            } else {
                serde_json::json!({})
            };
            if INTERNVL_TOKEN_NAMES
                .iter()
                .any(|(key, _)| config.get(key).is_none())
            {
                for (key, token) in INTERNVL_TOKEN_NAMES {
                    config[key] = token.into();
                }
                let text = serde_json::to_string_pretty(&config).expect("JSON value");
                std::fs::write(&path, text).map_err(|e| io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Generated ids as text without special tokens, for stop strings and rewards.
    pub fn detokenize(&self, ids: &[u32]) -> Result<String> {
        Ok(self.tokenizer.decode(ids, true)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_qwen_loader_resizes_to_multiples_of_28() {
        let image = RgbImage::new(640, 480);
        assert_eq!(fetch_image_resize(&image).unwrap().dimensions(), (644, 476));
        let small = RgbImage::new(30, 20);
        assert_eq!(fetch_image_resize(&small).unwrap().dimensions(), (84, 56));
        let pixels = (0..112 * 56 * 3).map(|i| (i % 251) as u8).collect();
        let multiple = RgbImage::from_raw(112, 56, pixels).unwrap();
        assert!(fetch_image_resize(&multiple).unwrap() == multiple);
    }
}
