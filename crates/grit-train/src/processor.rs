//! From an image and a question to the prompt a model family takes, and back from its boxes to
//! the image: Qwen2.5-VL's resized patches with the checkpoint's chat template (boxes in
//! processed pixels), or InternVL3's 448-px tiles with the `internvl2_5` template (boxes in
//! 0–1000).

use std::path::Path;

use anyhow::Context;
use grit_data::completion::{BoxFrame, ImageSize};
use grit_data::preprocess::internvl::{TileConfig, preprocess_tiles};
use grit_data::preprocess::{PreprocessConfig, RgbImage, preprocess};
use grit_data::prompt::internvl::{IMG_CONTEXT, IMG_END, IMG_START, expand_internvl_images};
use grit_data::prompt::{ChatTemplate, ChatTokenizer, PromptStyle, user_message};
use grit_data::rewards::Mode;
use grit_model::internvl3::{self, InternVl3Config};
use grit_model::{Family, Prompt, qwen2_5_vl};

/// Settings a run may override; `None` keeps the checkpoint's (or GRIT's) value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessorOptions {
    /// Qwen2.5-VL's processed pixel bounds.
    pub min_pixels: Option<usize>,
    pub max_pixels: Option<usize>,
    /// InternVL3's tile limit (GRIT trains with 2).
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

impl Processor {
    /// The processor of the checkpoint in `dir`, for the family its `config.json` names.
    pub fn from_dir(dir: &Path, options: &ProcessorOptions) -> anyhow::Result<Self> {
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
                let config = InternVl3Config::from_hf_file(&dir.join("config.json"))?;
                let tokenizer_file = dir.join("tokenizer.json");
                let id = |token: &str| {
                    tokenizer.tokenizer().token_to_id(token).with_context(|| {
                        format!("{}: no `{token}` token", tokenizer_file.display())
                    })
                };
                let image_tokens = [id(IMG_START)?, id(IMG_CONTEXT)?, id(IMG_END)?];
                let mut tiles = TileConfig {
                    tile_size: config.vision.image_size,
                    tokens_per_tile: config.tokens_per_tile(),
                    ..TileConfig::default()
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
        Ok(Self { tokenizer, kind })
    }

    pub fn family(&self) -> Family {
        match self.kind {
            Kind::Qwen2_5Vl(_) => Family::Qwen2_5Vl,
            Kind::InternVl3 { .. } => Family::InternVl3,
        }
    }

    /// One image and a question as the family's prompt.
    pub fn encode(
        &self,
        image: &RgbImage,
        question: &str,
        style: PromptStyle,
    ) -> anyhow::Result<Encoded> {
        let original = ImageSize {
            width: image.width(),
            height: image.height(),
        };
        let message = user_message(1, question, style);
        Ok(match &self.kind {
            Kind::Qwen2_5Vl(config) => {
                let processed = preprocess(image, config)?;
                let encoded = self
                    .tokenizer
                    .encode_chat(&[message], &[processed.grid_thw])?;
                let processed_size = ImageSize {
                    width: processed.processed_size.0 as u32,
                    height: processed.processed_size.1 as u32,
                };
                Encoded {
                    prompt: Prompt::Qwen2_5Vl(qwen2_5_vl::Prompt {
                        ids: encoded.input_ids,
                        images: vec![qwen2_5_vl::ImageInput {
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
                let tiled = preprocess_tiles(image, tiles)?;
                let text = template.render(&[message], *generation_header)?;
                let text = expand_internvl_images(&text, &[tiled.num_image_tokens])?;
                let (cols, rows) = tiled.grid;
                Encoded {
                    prompt: Prompt::InternVl3(internvl3::Prompt {
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
}
