//! InternVL3 hyper-parameters, read from a `config.json` in either form: transformers'
//! `InternVLForConditionalGeneration` (`text_config`, `vision_config`) or the original remote-code
//! `InternVLChatModel` (`llm_config`, `vision_config`, `select_layer`, `ps_version`).

use std::path::Path;

use burn::config::Config;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::qwen2_5_vl::TextConfig;
use crate::qwen2_5_vl::config::{check_act, opt_usize, usize_field};

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
    /// The Qwen2 decoder; `mrope_section` puts every rotary frequency on the first position row,
    /// which makes M-RoPE plain 1-D RoPE.
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

    /// Reads `config.json` as it comes from the hub, in either form.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.into(),
            source,
        })?;
        Self::from_hf_json(&json).map_err(|message| Error::Config {
            path: path.into(),
            message,
        })
    }

    pub fn from_hf_json(root: &Value) -> std::result::Result<Self, String> {
        let vision = root.get("vision_config").ok_or("missing `vision_config`")?;
        let remote = CheckpointLayout::of_config(root) == CheckpointLayout::RemoteCode;
        let text = if remote {
            root.get("llm_config")
        } else {
            root.get("text_config")
        }
        .ok_or("missing `text_config` (transformers) or `llm_config` (remote code)")?;

        let ratio = root
            .get("downsample_ratio")
            .and_then(Value::as_f64)
            .unwrap_or(0.5);
        if ratio != 0.5 {
            return Err(format!(
                "`downsample_ratio` {ratio} is not supported (only 0.5)"
            ));
        }
        let (select_layer, flag) = if remote {
            ("select_layer", "qk_normalization")
        } else {
            ("vision_feature_layer", "use_qk_norm")
        };
        match root.get(select_layer).and_then(Value::as_i64) {
            None | Some(-1) => {}
            Some(other) => {
                return Err(format!(
                    "`{select_layer}` {other} is not supported (only -1, the last layer)"
                ));
            }
        }
        if remote {
            match root.get("ps_version").and_then(Value::as_str) {
                None | Some("v2") => {}
                Some(other) => {
                    return Err(format!(
                        "`ps_version` {other:?} is not supported (only \"v2\")"
                    ));
                }
            }
        } else {
            match root
                .get("vision_feature_select_strategy")
                .and_then(Value::as_str)
            {
                None | Some("default") => {}
                Some(other) => {
                    return Err(format!(
                        "`vision_feature_select_strategy` {other:?} is not supported (only \"default\")"
                    ));
                }
            }
            check_act(root, "projector_hidden_act", "gelu")?;
            if vision.get("use_absolute_position_embeddings") == Some(&Value::Bool(false)) {
                return Err("`use_absolute_position_embeddings: false` is not supported".into());
            }
        }
        check_act(vision, "hidden_act", "gelu")?;
        check_act(text, "hidden_act", "silu")?;
        match vision.get("norm_type").and_then(Value::as_str) {
            None | Some("layer_norm") => {}
            Some(other) => {
                return Err(format!(
                    "vision `norm_type` {other:?} is not supported (only \"layer_norm\")"
                ));
            }
        }
        if text.get("use_sliding_window") == Some(&Value::Bool(true)) {
            return Err("`use_sliding_window: true` is not supported".into());
        }

        let bool_field = |v: &Value, name: &str, default: bool| {
            v.get(name).and_then(Value::as_bool).unwrap_or(default)
        };
        let side = |name: &str, default: usize| side_field(vision, name, default);
        let vision_config = VisionConfig {
            hidden_size: usize_field(vision, "hidden_size")?,
            num_hidden_layers: usize_field(vision, "num_hidden_layers")?,
            num_attention_heads: usize_field(vision, "num_attention_heads")?,
            intermediate_size: usize_field(vision, "intermediate_size")?,
            image_size: side("image_size", 448)?,
            patch_size: side("patch_size", 14)?,
            num_channels: opt_usize(vision, "num_channels")?.unwrap_or(3),
            layer_norm_eps: vision
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            attention_bias: if remote {
                bool_field(vision, "qkv_bias", true)
            } else {
                bool_field(vision, "attention_bias", false)
            },
            use_qk_norm: bool_field(vision, flag, false),
            use_mean_pooling: remote || bool_field(vision, "use_mean_pooling", true),
        };
        let grid = vision_config.grid();
        if grid == 0 || !grid.is_multiple_of(Self::SHUFFLE) {
            return Err(format!(
                "image_size {} / patch_size {} must be a positive even number of patches",
                vision_config.image_size, vision_config.patch_size
            ));
        }

        let rope = text
            .get("rope_parameters")
            .or_else(|| text.get("rope_scaling"));
        if let Some(kind) = rope
            .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            .and_then(Value::as_str)
            .filter(|&k| k != "default")
        {
            return Err(format!(
                "rope type {kind:?} is not supported (only \"default\")"
            ));
        }
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| text.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(1_000_000.0);
        let heads = usize_field(text, "num_attention_heads")?;
        let hidden = usize_field(text, "hidden_size")?;
        let text_config = TextConfig {
            vocab_size: usize_field(text, "vocab_size")?,
            hidden_size: hidden,
            intermediate_size: usize_field(text, "intermediate_size")?,
            num_hidden_layers: usize_field(text, "num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: opt_usize(text, "num_key_value_heads")?.unwrap_or(heads),
            rms_norm_eps: text
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            mrope_section: [hidden / heads / 2, 0, 0],
        };
        let tied = |v: &Value| v.get("tie_word_embeddings").and_then(Value::as_bool);
        Ok(Self {
            text: text_config,
            vision: vision_config,
            image_token_id: opt_usize(root, "image_token_id")?
                .map_or(DEFAULT_IMAGE_TOKEN_ID, |v| v as u32),
            // transformers' InternVLConfig defaults to tied; the text config says what the
            // checkpoint really has, so it wins when present.
            tie_word_embeddings: tied(text).or(tied(root)).unwrap_or(false),
        })
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
        let text = TextConfig::new(151_674, 64, 128, 2, 4, 2, [8, 0, 0]);
        let vision = VisionConfig::new(32, 2, 2, 64);
        Self::new(text, vision)
    }

    /// `config.json` as transformers 5.x writes it for `InternVLForConditionalGeneration`.
    pub fn to_hf_json(&self) -> Value {
        let (t, v) = (&self.text, &self.vision);
        serde_json::json!({
            "architectures": ["InternVLForConditionalGeneration"],
            "model_type": "internvl",
            "dtype": "bfloat16",
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

/// A square side given as one number or transformers' `[height, width]`.
fn side_field(v: &Value, name: &str, default: usize) -> std::result::Result<usize, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Array(sides)) => match sides.as_slice() {
            [h, w] if h == w => h
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("bad `{name}` {h}")),
            _ => Err(format!("`{name}` must be square, got {}", v[name])),
        },
        Some(_) => opt_usize(v, name).map(|s| s.unwrap_or(default)),
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
                .contains("vision_feature_layer")
        );
        let mut json = InternVl3Config::tiny().to_hf_json();
        json["vision_config"]["norm_type"] = "rms_norm".into();
        assert!(
            InternVl3Config::from_hf_json(&json)
                .unwrap_err()
                .contains("norm_type")
        );
    }
}
