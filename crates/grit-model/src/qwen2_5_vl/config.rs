//! Qwen2.5-VL hyper-parameters, read from an HF `config.json` in either layout: transformers
//! 4.x (text fields at the top level, `rope_scaling`) or 5.x (`text_config`, `rope_parameters`).

use std::path::Path;

use burn::config::Config;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::hf::{ConfigError, check, check_act, check_sizes, parse, read_json};
use crate::qwen2::TextConfig;
use crate::qwen2::config::HfTextConfig;

/// transformers' `Qwen2_5_VLVisionConfig` default, for configs that leave it out.
pub const DEFAULT_FULLATT_BLOCK_INDEXES: [usize; 4] = [7, 15, 23, 31];

#[derive(Config, Debug, PartialEq)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub out_hidden_size: usize,
    #[config(default = 14)]
    pub patch_size: usize,
    #[config(default = 2)]
    pub temporal_patch_size: usize,
    #[config(default = 3)]
    pub in_channels: usize,
    #[config(default = 2)]
    pub spatial_merge_size: usize,
    /// Window side in pixels.
    #[config(default = 112)]
    pub window_size: usize,
    pub fullatt_block_indexes: Vec<usize>,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Values in one flattened patch: channels × temporal × patch × patch.
    pub fn patch_dim(&self) -> usize {
        self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size
    }

    /// Window side in merged-token units.
    pub fn merge_window(&self) -> usize {
        self.window_size / self.spatial_merge_size / self.patch_size
    }
}

#[derive(Config, Debug, PartialEq)]
pub struct Qwen2_5VlConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    #[config(default = 151655)]
    pub image_token_id: u32,
    #[config(default = 151656)]
    pub video_token_id: u32,
    #[config(default = 151652)]
    pub vision_start_token_id: u32,
    #[config(default = 151653)]
    pub vision_end_token_id: u32,
    #[config(default = false)]
    pub tie_word_embeddings: bool,
}

/// The fields of a Qwen2.5-VL `config.json` outside the decoder, as stored.
#[derive(Debug, Deserialize)]
struct HfConfig {
    vision_config: Value,
    image_token_id: Option<u32>,
    video_token_id: Option<u32>,
    vision_start_token_id: Option<u32>,
    vision_end_token_id: Option<u32>,
    tie_word_embeddings: Option<bool>,
}

/// `vision_config` as stored.
#[derive(Debug, Deserialize)]
struct HfVisionConfig {
    depth: usize,
    hidden_size: usize,
    num_heads: usize,
    intermediate_size: usize,
    out_hidden_size: usize,
    patch_size: Option<usize>,
    temporal_patch_size: Option<usize>,
    in_channels: Option<usize>,
    in_chans: Option<usize>,
    spatial_merge_size: Option<usize>,
    window_size: Option<usize>,
    fullatt_block_indexes: Option<Vec<usize>>,
    hidden_act: Option<String>,
}

impl VisionConfig {
    /// The checks the vision tower needs before any tensor is built.
    pub fn validate(&self, text_hidden: usize) -> std::result::Result<(), ConfigError> {
        let key = |name: &str| format!("vision_config.{name}");
        check_sizes(
            "vision_config.",
            &[
                ("depth", self.depth),
                ("hidden_size", self.hidden_size),
                ("num_heads", self.num_heads),
                ("intermediate_size", self.intermediate_size),
                ("out_hidden_size", self.out_hidden_size),
                ("patch_size", self.patch_size),
                ("temporal_patch_size", self.temporal_patch_size),
                ("in_channels", self.in_channels),
                ("spatial_merge_size", self.spatial_merge_size),
                ("window_size", self.window_size),
            ],
        )?;
        let patch_dim = [self.temporal_patch_size, self.patch_size, self.patch_size]
            .into_iter()
            .try_fold(self.in_channels, usize::checked_mul);
        check(
            patch_dim.is_some_and(|d| d <= crate::hf::MAX_SIZE),
            key("patch_size"),
            "a patch (channels × temporal × patch²) of this many values is too large",
        )?;
        // The 2-D rotary splits each head into row and column halves of rotated pairs.
        check(
            self.hidden_size.is_multiple_of(self.num_heads)
                && self.head_dim().is_multiple_of(4)
                && self.head_dim() > 0,
            key("hidden_size"),
            format!(
                "{} must split into {} heads of a width divisible by 4",
                self.hidden_size, self.num_heads
            ),
        )?;
        let unit = self.spatial_merge_size * self.patch_size;
        check(
            self.window_size >= unit && self.window_size.is_multiple_of(unit),
            key("window_size"),
            format!(
                "{} must be a positive multiple of spatial_merge_size × patch_size = {unit}",
                self.window_size
            ),
        )?;
        check(
            self.out_hidden_size == text_hidden,
            key("out_hidden_size"),
            format!(
                "{} differs from the text hidden_size {text_hidden}",
                self.out_hidden_size
            ),
        )
    }
}

impl Qwen2_5VlConfig {
    /// Reads `config.json` as it comes from the hub; a value grit cannot run with is an error
    /// naming the file and the key.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        Self::from_hf_json(&read_json(path)?).map_err(|e| e.in_file(path))
    }

    pub fn from_hf_json(root: &Value) -> std::result::Result<Self, ConfigError> {
        let outer: HfConfig = parse(root, "")?;
        // 5.x nests the decoder under `text_config`; 4.x keeps it at the top level, where
        // `rope_scaling` and `rope_theta` may also sit beside a nested one.
        let (text_value, at) = match root.get("text_config") {
            Some(text) => (text, "text_config."),
            None => (root, ""),
        };
        let mut text: HfTextConfig = parse(text_value, at)?;
        let top: HfTextRope = parse(root, "")?;
        if text.rope().is_none() {
            text.rope_scaling = top.rope_scaling;
        }
        text.rope_theta = text.rope_theta.or(top.rope_theta);
        let text_config = text.to_config(at, true)?;

        let v: HfVisionConfig = parse(&outer.vision_config, "vision_config.")?;
        check_act(v.hidden_act.as_deref(), "vision_config.hidden_act", "silu")?;
        let vision_config = VisionConfig {
            depth: v.depth,
            hidden_size: v.hidden_size,
            num_heads: v.num_heads,
            intermediate_size: v.intermediate_size,
            out_hidden_size: v.out_hidden_size,
            patch_size: v.patch_size.unwrap_or(14),
            temporal_patch_size: v.temporal_patch_size.unwrap_or(2),
            in_channels: v.in_channels.or(v.in_chans).unwrap_or(3),
            spatial_merge_size: v.spatial_merge_size.unwrap_or(2),
            window_size: v.window_size.unwrap_or(112),
            fullatt_block_indexes: v
                .fullatt_block_indexes
                .unwrap_or(DEFAULT_FULLATT_BLOCK_INDEXES.to_vec()),
        };
        let config = Self {
            text: text_config,
            vision: vision_config,
            image_token_id: outer.image_token_id.unwrap_or(151655),
            video_token_id: outer.video_token_id.unwrap_or(151656),
            vision_start_token_id: outer.vision_start_token_id.unwrap_or(151652),
            vision_end_token_id: outer.vision_end_token_id.unwrap_or(151653),
            tie_word_embeddings: outer.tie_word_embeddings.unwrap_or(false)
                || text.tie_word_embeddings.unwrap_or(false),
        };
        config.validate_at(at)?;
        Ok(config)
    }

    /// The checks the whole model needs before any tensor is built.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.validate_at("text_config.")
    }

    /// [`Self::validate`], naming decoder keys under `at` (4.x configs keep them at the top).
    fn validate_at(&self, at: &str) -> std::result::Result<(), ConfigError> {
        self.text.validate(at)?;
        check(
            self.text.mrope_section.is_some(),
            format!("{at}rope_parameters.mrope_section"),
            "Qwen2.5-VL needs multimodal rotary sections",
        )?;
        self.vision.validate(self.text.hidden_size)?;
        let vocab = self.text.vocab_size;
        for (name, id) in [
            ("image_token_id", self.image_token_id),
            ("vision_start_token_id", self.vision_start_token_id),
            ("vision_end_token_id", self.vision_end_token_id),
        ] {
            check(
                (id as usize) < vocab,
                name,
                format!("{id} lies outside the vocabulary of {vocab}"),
            )?;
        }
        Ok(())
    }
}

/// Rotary settings 4.x configs keep at the top level beside a nested `text_config`.
#[derive(Debug, Deserialize)]
struct HfTextRope {
    rope_scaling: Option<crate::qwen2::config::HfRope>,
    rope_theta: Option<f64>,
}

impl Qwen2_5VlConfig {
    /// The real architecture at toy size (hidden 64, 2 layers; vision depth 2 with one window
    /// and one full-attention block) over Qwen2.5's real 151,936-entry vocabulary and special
    /// ids, so that it runs with the real tokenizer in tests and demos.
    pub fn tiny() -> Self {
        let text = TextConfig::new(151_936, 64, 128, 2, 4, 2).with_mrope_section(Some([2, 3, 3]));
        let vision = VisionConfig::new(2, 32, 2, 64, 64, vec![1]);
        Self::new(text, vision).with_tie_word_embeddings(true)
    }

    /// `config.json` in the layout transformers 5.x writes (`text_config`, `rope_parameters`).
    pub fn to_hf_json(&self) -> Value {
        let (t, v) = (&self.text, &self.vision);
        serde_json::json!({
            "architectures": ["Qwen2_5_VLForConditionalGeneration"],
            "model_type": "qwen2_5_vl",
            "image_token_id": self.image_token_id,
            "video_token_id": self.video_token_id,
            "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id,
            "tie_word_embeddings": self.tie_word_embeddings,
            "text_config": {
                "model_type": "qwen2_5_vl_text",
                "vocab_size": t.vocab_size,
                "hidden_size": t.hidden_size,
                "intermediate_size": t.intermediate_size,
                "num_hidden_layers": t.num_hidden_layers,
                "num_attention_heads": t.num_attention_heads,
                "num_key_value_heads": t.num_key_value_heads,
                "hidden_act": "silu",
                "rms_norm_eps": t.rms_norm_eps,
                "max_position_embeddings": 128000,
                "use_sliding_window": false,
                "tie_word_embeddings": self.tie_word_embeddings,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": t.rope_theta,
                    "mrope_section": t.mrope_section.unwrap_or_default(),
                },
            },
            "vision_config": {
                "model_type": "qwen2_5_vl_vision",
                "depth": v.depth,
                "hidden_size": v.hidden_size,
                "num_heads": v.num_heads,
                "intermediate_size": v.intermediate_size,
                "out_hidden_size": v.out_hidden_size,
                "patch_size": v.patch_size,
                "temporal_patch_size": v.temporal_patch_size,
                "in_channels": v.in_channels,
                "spatial_merge_size": v.spatial_merge_size,
                "window_size": v.window_size,
                "fullatt_block_indexes": v.fullatt_block_indexes,
                "hidden_act": "silu",
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_config_reads_back() {
        let config = Qwen2_5VlConfig::tiny();
        assert_eq!(
            Qwen2_5VlConfig::from_hf_json(&config.to_hf_json()),
            Ok(config)
        );
    }
}
