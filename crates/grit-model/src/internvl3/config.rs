//! InternVL3 hyper-parameters, read from a `config.json` in either form: transformers'
//! `InternVLForConditionalGeneration` (`text_config`, `vision_config`) or the original remote-code
//! `InternVLChatModel` (`llm_config`, `vision_config`, `select_layer`, `ps_version`).

use std::path::Path;

use burn::config::Config;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;
use crate::hf::{ConfigError, check, check_act, check_sizes, parse, read_json};
use crate::qwen2::TextConfig;
use crate::qwen2::config::HfTextConfig;

/// `<IMG_CONTEXT>` in InternVL3's tokenizer, for configs that do not name it (the remote-code
/// model learns it from the tokenizer at run time).
pub const DEFAULT_IMAGE_TOKEN_ID: u32 = 151_667;

/// The projector's LayerNorm is a plain `nn.LayerNorm` (eps 1e-5) in both implementations,
/// unlike the vision tower's (config `layer_norm_eps`, 1e-6).
pub const PROJECTOR_NORM_EPS: f64 = 1e-5;

/// Where the weights' keys come from; [`super::InternVl3::save`] always writes transformers'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointLayout {
    /// `InternVLForConditionalGeneration`: `vision_tower.*`, `multi_modal_projector.*`,
    /// `language_model.*` (with or without the 5.x `model.` prefix).
    Transformers,
    /// `InternVLChatModel`: `vision_model.*` with fused `attn.qkv`, `mlp1.{0,1,3}`,
    /// `language_model.model.*`, `language_model.lm_head.*`.
    RemoteCode,
}

/// InternViT.
#[derive(Config, Debug, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    /// Side of the square the position embeddings were trained for, in pixels.
    #[config(default = 448)]
    pub image_size: usize,
    #[config(default = 14)]
    pub patch_size: usize,
    #[config(default = 3)]
    pub num_channels: usize,
    #[config(default = 1e-6)]
    pub layer_norm_eps: f64,
    /// Bias on the q/k/v projections (`qkv_bias`).
    #[config(default = true)]
    pub attention_bias: bool,
    /// RMS-normalize queries and keys over the whole width (`qk_normalization`).
    #[config(default = false)]
    pub use_qk_norm: bool,
    /// transformers applies a final LayerNorm when this is off; InternVL checkpoints have it on.
    #[config(default = true)]
    pub use_mean_pooling: bool,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Patches per side of the position-embedding grid.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

#[derive(Config, Debug, PartialEq)]
pub struct InternVl3Config {
    /// The Qwen2 decoder, with plain 1-D RoPE (`mrope_section: None`).
    pub text: TextConfig,
    pub vision: VisionConfig,
    #[config(default = 151_667)]
    pub image_token_id: u32,
    #[config(default = false)]
    pub tie_word_embeddings: bool,
}

impl CheckpointLayout {
    /// The remote-code config nests the decoder under `llm_config`.
    pub fn of_config(root: &Value) -> Self {
        if root.get("llm_config").is_some() {
            Self::RemoteCode
        } else {
            Self::Transformers
        }
    }
}

impl InternVl3Config {
    /// Side of the pixel-shuffle block: a downsample ratio of 0.5 folds 2×2 patches into one token.
    pub const SHUFFLE: usize = 2;

    /// Reads `config.json` as it comes from the hub, in either form; a value grit cannot run
    /// with is an error naming the file and the key.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        Self::from_hf_json(&read_json(path)?).map_err(|e| e.in_file(path))
    }

    pub fn from_hf_json(root: &Value) -> std::result::Result<Self, ConfigError> {
        let outer: HfConfig = parse(root, "")?;
        let remote = CheckpointLayout::of_config(root) == CheckpointLayout::RemoteCode;
        let (text_value, at) = if remote {
            (root.get("llm_config"), "llm_config.")
        } else {
            (root.get("text_config"), "text_config.")
        };
        let text_value = text_value.ok_or_else(|| {
            ConfigError::new(
                at.trim_end_matches('.'),
                "missing (transformers' layout has `text_config`, remote code `llm_config`)",
            )
        })?;
        check(
            outer.downsample_ratio.is_none_or(|r| r == 0.5),
            "downsample_ratio",
            "only 0.5 is supported",
        )?;
        let (select_key, select) = if remote {
            ("select_layer", outer.select_layer)
        } else {
            ("vision_feature_layer", outer.vision_feature_layer)
        };
        check(
            select.is_none_or(|l| l == -1),
            select_key,
            "only -1 (the last layer) is supported",
        )?;
        if remote {
            check(
                outer.ps_version.as_deref().is_none_or(|v| v == "v2"),
                "ps_version",
                "only \"v2\" is supported",
            )?;
        } else {
            check(
                outer
                    .vision_feature_select_strategy
                    .as_deref()
                    .is_none_or(|s| s == "default"),
                "vision_feature_select_strategy",
                "only \"default\" is supported",
            )?;
            check_act(
                outer.projector_hidden_act.as_deref(),
                "projector_hidden_act",
                "gelu",
            )?;
        }

        let v: HfVisionConfig = parse(&outer.vision_config, "vision_config.")?;
        check_act(v.hidden_act.as_deref(), "vision_config.hidden_act", "gelu")?;
        check(
            v.norm_type.as_deref().is_none_or(|n| n == "layer_norm"),
            "vision_config.norm_type",
            "only \"layer_norm\" is supported",
        )?;
        check(
            remote || v.use_absolute_position_embeddings != Some(false),
            "vision_config.use_absolute_position_embeddings",
            "`false` is not supported",
        )?;
        let vision_config = VisionConfig {
            hidden_size: v.hidden_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            intermediate_size: v.intermediate_size,
            image_size: v
                .image_size
                .map_or(Ok(448), |s| s.side("vision_config.image_size"))?,
            patch_size: v
                .patch_size
                .map_or(Ok(14), |s| s.side("vision_config.patch_size"))?,
            num_channels: v.num_channels.unwrap_or(3),
            layer_norm_eps: v.layer_norm_eps.unwrap_or(1e-6),
            attention_bias: if remote {
                v.qkv_bias.unwrap_or(true)
            } else {
                v.attention_bias.unwrap_or(false)
            },
            use_qk_norm: if remote {
                v.qk_normalization
            } else {
                v.use_qk_norm
            }
            .unwrap_or(false),
            use_mean_pooling: remote || v.use_mean_pooling.unwrap_or(true),
        };
        let text: HfTextConfig = parse(text_value, at)?;
        let text_config = text.to_config(at, false)?;
        let config = Self {
            text: text_config,
            vision: vision_config,
            image_token_id: outer.image_token_id.unwrap_or(DEFAULT_IMAGE_TOKEN_ID),
            // transformers' InternVLConfig defaults to tied; the text config says what the
            // checkpoint really has, so it wins when present.
            tie_word_embeddings: text
                .tie_word_embeddings
                .or(outer.tie_word_embeddings)
                .unwrap_or(false),
        };
        config.validate_at(at)?;
        Ok(config)
    }

    /// The checks the whole model needs before any tensor is built.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        self.validate_at("text_config.")
    }

    /// [`Self::validate`], naming decoder keys under `at` (`llm_config.` in remote code).
    fn validate_at(&self, at: &str) -> std::result::Result<(), ConfigError> {
        self.text.validate(at)?;
        check(
            self.text.mrope_section.is_none(),
            format!("{at}rope_parameters.mrope_section"),
            "InternVL3's decoder uses plain 1-D rotary positions",
        )?;
        self.vision.validate()?;
        check(
            (self.image_token_id as usize) < self.text.vocab_size,
            "image_token_id",
            format!(
                "{} lies outside the vocabulary of {}",
                self.image_token_id, self.text.vocab_size
            ),
        )
    }

    /// Image tokens per tile of `image_size` pixels: `(grid / 2)²`, 256 for InternVL3.
    pub fn tokens_per_tile(&self) -> usize {
        let side = self.vision.grid() / Self::SHUFFLE;
        side * side
    }

    /// The real architecture at toy size over InternVL3's 151,674-entry vocabulary, so that it
    /// runs with the real tokenizer in tests and demos: 448-px tiles of 256 tokens, vision width
    /// 32 with 2 layers, text width 64 with 2 layers.
    pub fn tiny() -> Self {
        let text = TextConfig::new(151_674, 64, 128, 2, 4, 2);
        let vision = VisionConfig::new(32, 2, 2, 64);
        Self::new(text, vision)
    }

    /// `config.json` as transformers 5.x writes it for `InternVLForConditionalGeneration`.
    pub fn to_hf_json(&self) -> Value {
        let (t, v) = (&self.text, &self.vision);
        serde_json::json!({
            "architectures": ["InternVLForConditionalGeneration"],
            "model_type": "internvl",
            "downsample_ratio": 0.5,
            "image_seq_length": self.tokens_per_tile(),
            "image_token_id": self.image_token_id,
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -1,
            "vision_feature_select_strategy": "default",
            "tie_word_embeddings": self.tie_word_embeddings,
            "text_config": {
                "model_type": "qwen2",
                "vocab_size": t.vocab_size,
                "hidden_size": t.hidden_size,
                "intermediate_size": t.intermediate_size,
                "num_hidden_layers": t.num_hidden_layers,
                "num_attention_heads": t.num_attention_heads,
                "num_key_value_heads": t.num_key_value_heads,
                "hidden_act": "silu",
                "rms_norm_eps": t.rms_norm_eps,
                "max_position_embeddings": 32768,
                "use_sliding_window": false,
                "tie_word_embeddings": self.tie_word_embeddings,
                "rope_parameters": {"rope_type": "default", "rope_theta": t.rope_theta},
            },
            "vision_config": {
                "model_type": "internvl_vision",
                "hidden_size": v.hidden_size,
                "num_hidden_layers": v.num_hidden_layers,
                "num_attention_heads": v.num_attention_heads,
                "intermediate_size": v.intermediate_size,
                "image_size": [v.image_size, v.image_size],
                "patch_size": [v.patch_size, v.patch_size],
                "num_channels": v.num_channels,
                "layer_norm_eps": v.layer_norm_eps,
                "attention_bias": v.attention_bias,
                "use_qk_norm": v.use_qk_norm,
                "use_mean_pooling": v.use_mean_pooling,
                "norm_type": "layer_norm",
                "hidden_act": "gelu",
                "use_absolute_position_embeddings": true,
            },
        })
    }
}

/// The fields of an InternVL3 `config.json` outside the decoder, as stored (either layout).
#[derive(Debug, Deserialize)]
struct HfConfig {
    vision_config: Value,
    downsample_ratio: Option<f64>,
    /// Remote code.
    select_layer: Option<i64>,
    ps_version: Option<String>,
    /// transformers.
    vision_feature_layer: Option<i64>,
    vision_feature_select_strategy: Option<String>,
    projector_hidden_act: Option<String>,
    image_token_id: Option<u32>,
    tie_word_embeddings: Option<bool>,
}

/// `vision_config` as stored (either layout).
#[derive(Debug, Deserialize)]
struct HfVisionConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    image_size: Option<Side>,
    patch_size: Option<Side>,
    num_channels: Option<usize>,
    layer_norm_eps: Option<f64>,
    qkv_bias: Option<bool>,
    attention_bias: Option<bool>,
    qk_normalization: Option<bool>,
    use_qk_norm: Option<bool>,
    use_mean_pooling: Option<bool>,
    norm_type: Option<String>,
    hidden_act: Option<String>,
    use_absolute_position_embeddings: Option<bool>,
}

/// A square side given as one number or transformers' `[height, width]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Side {
    One(usize),
    Pair([usize; 2]),
}

impl Side {
    fn side(&self, key: &str) -> std::result::Result<usize, ConfigError> {
        match *self {
            Side::One(s) => Ok(s),
            Side::Pair([h, w]) if h == w => Ok(h),
            Side::Pair([h, w]) => Err(ConfigError::new(
                key,
                format!("must be square, got [{h}, {w}]"),
            )),
        }
    }
}

impl VisionConfig {
    /// The checks InternViT and the pixel shuffle need before any tensor is built.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        let key = |name: &str| format!("vision_config.{name}");
        check_sizes(
            "vision_config.",
            &[
                ("hidden_size", self.hidden_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("intermediate_size", self.intermediate_size),
                ("num_channels", self.num_channels),
                ("image_size", self.image_size),
                ("patch_size", self.patch_size),
            ],
        )?;
        check(
            self.hidden_size.is_multiple_of(self.num_attention_heads),
            key("hidden_size"),
            format!(
                "{} must split into {} heads",
                self.hidden_size, self.num_attention_heads
            ),
        )?;
        check(
            self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0,
            key("layer_norm_eps"),
            "must be a positive number",
        )?;
        let grid = self.image_size / self.patch_size;
        check(
            self.image_size.is_multiple_of(self.patch_size)
                && grid > 0
                && grid.is_multiple_of(InternVl3Config::SHUFFLE),
            key("image_size"),
            format!(
                "{} must be a positive even number of {}-px patches",
                self.image_size, self.patch_size
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_config_reads_back() {
        let config = InternVl3Config::tiny();
        assert_eq!(
            InternVl3Config::from_hf_json(&config.to_hf_json()),
            Ok(config)
        );
    }

    #[test]
    fn unsupported_variants_are_refused() {
        let mut json = InternVl3Config::tiny().to_hf_json();
        json["vision_feature_layer"] = (-2).into();
        assert!(
            InternVl3Config::from_hf_json(&json)
                .unwrap_err()
                .to_string()
                .contains("vision_feature_layer")
        );
        let mut json = InternVl3Config::tiny().to_hf_json();
        json["vision_config"]["norm_type"] = "rms_norm".into();
        assert!(
            InternVl3Config::from_hf_json(&json)
                .unwrap_err()
                .to_string()
                .contains("norm_type")
        );
    }
}
