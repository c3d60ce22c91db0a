//! Qwen2.5-VL hyper-parameters, read from an HF `config.json` in either layout: transformers
//! 4.x (text fields at the top level, `rope_scaling`) or 5.x (`text_config`, `rope_parameters`).

use std::path::Path;

use burn::config::Config;
use serde_json::Value;

use crate::error::{Error, Result};

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
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    #[config(default = 1e-6)]
    pub rms_norm_eps: f64,
    #[config(default = 1_000_000.0)]
    pub rope_theta: f64,
    /// How the rotary half-dimension is split between the temporal, height and width rows.
    pub mrope_section: [usize; 3],
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
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

impl Qwen2_5VlConfig {
    /// Reads `config.json` as it comes from the hub.
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
        let text = root.get("text_config").unwrap_or(root);
        let vision = root.get("vision_config").ok_or("missing `vision_config`")?;
        let rope = text
            .get("rope_parameters")
            .or_else(|| text.get("rope_scaling"))
            .or_else(|| root.get("rope_scaling"));
        let mrope: Vec<usize> = rope
            .and_then(|r| r.get("mrope_section"))
            .ok_or("missing `mrope_section` (in `rope_parameters` or `rope_scaling`)")
            .and_then(|v| serde_json::from_value(v.clone()).map_err(|_| "bad `mrope_section`"))?;
        let mrope_section: [usize; 3] = mrope.try_into().map_err(|v: Vec<usize>| {
            format!("`mrope_section` has {} entries, expected 3", v.len())
        })?;
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| text.get("rope_theta"))
            .or_else(|| root.get("rope_theta"))
            .and_then(Value::as_f64)
            .unwrap_or(1_000_000.0);

        let heads = usize_field(text, "num_attention_heads")?;
        let text_config = TextConfig {
            vocab_size: usize_field(text, "vocab_size")?,
            hidden_size: usize_field(text, "hidden_size")?,
            intermediate_size: usize_field(text, "intermediate_size")?,
            num_hidden_layers: usize_field(text, "num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: opt_usize(text, "num_key_value_heads")?.unwrap_or(heads),
            rms_norm_eps: text
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            mrope_section,
        };
        let half = text_config.head_dim() / 2;
        if mrope_section.iter().sum::<usize>() != half {
            return Err(format!(
                "`mrope_section` {mrope_section:?} must sum to head_dim/2 = {half}"
            ));
        }
        check_act(text, "hidden_act", "silu")?;
        check_act(vision, "hidden_act", "silu")?;

        let vision_config = VisionConfig {
            depth: usize_field(vision, "depth")?,
            hidden_size: usize_field(vision, "hidden_size")?,
            num_heads: usize_field(vision, "num_heads")?,
            intermediate_size: usize_field(vision, "intermediate_size")?,
            out_hidden_size: usize_field(vision, "out_hidden_size")?,
            patch_size: opt_usize(vision, "patch_size")?.unwrap_or(14),
            temporal_patch_size: opt_usize(vision, "temporal_patch_size")?.unwrap_or(2),
            in_channels: opt_usize(vision, "in_channels")?
                .or(opt_usize(vision, "in_chans")?)
                .unwrap_or(3),
            spatial_merge_size: opt_usize(vision, "spatial_merge_size")?.unwrap_or(2),
            window_size: opt_usize(vision, "window_size")?.unwrap_or(112),
            fullatt_block_indexes: vision
                .get("fullatt_block_indexes")
                .map(|v| serde_json::from_value(v.clone()))
                .transpose()
                .map_err(|_| "bad `vision_config.fullatt_block_indexes`")?
                .unwrap_or_default(),
        };
        if vision_config.out_hidden_size != text_config.hidden_size {
            return Err(format!(
                "vision out_hidden_size {} differs from the text hidden_size {}",
                vision_config.out_hidden_size, text_config.hidden_size
            ));
        }
        let tied = |v: &Value| v.get("tie_word_embeddings").and_then(Value::as_bool);
        let token = |name: &str, default: u32| -> std::result::Result<u32, String> {
            Ok(opt_usize(root, name)?.map_or(default, |v| v as u32))
        };
        Ok(Self {
            text: text_config,
            vision: vision_config,
            image_token_id: token("image_token_id", 151655)?,
            video_token_id: token("video_token_id", 151656)?,
            vision_start_token_id: token("vision_start_token_id", 151652)?,
            vision_end_token_id: token("vision_end_token_id", 151653)?,
            tie_word_embeddings: tied(root).unwrap_or(false) || tied(text).unwrap_or(false),
        })
    }
}

impl Qwen2_5VlConfig {
    /// The real architecture at toy size (hidden 64, 2 layers; vision depth 2 with one window
    /// and one full-attention block) over Qwen2.5's real 151,936-entry vocabulary and special
    /// ids, so that it runs with the real tokenizer in tests and demos.
    pub fn tiny() -> Self {
        let text = TextConfig::new(151_936, 64, 128, 2, 4, 2, [2, 3, 3]);
        let vision = VisionConfig::new(2, 32, 2, 64, 64, vec![1]);
        Self::new(text, vision).with_tie_word_embeddings(true)
    }

    /// `config.json` in the layout transformers 5.x writes (`text_config`, `rope_parameters`).
    pub fn to_hf_json(&self) -> Value {
        let (t, v) = (&self.text, &self.vision);
        serde_json::json!({
            "architectures": ["Qwen2_5_VLForConditionalGeneration"],
            "model_type": "qwen2_5_vl",
            "dtype": "bfloat16",
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
                    "mrope_section": t.mrope_section,
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

pub(crate) fn opt_usize(v: &Value, name: &str) -> std::result::Result<Option<usize>, String> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("`{name}` must be a non-negative integer, got {x}")),
    }
}

pub(crate) fn usize_field(v: &Value, name: &str) -> std::result::Result<usize, String> {
    opt_usize(v, name)?.ok_or_else(|| format!("missing `{name}`"))
}

pub(crate) fn check_act(v: &Value, name: &str, expected: &str) -> std::result::Result<(), String> {
    match v.get(name).and_then(Value::as_str) {
        None => Ok(()),
        Some(act) if act == expected => Ok(()),
        Some(act) => Err(format!(
            "`{name}` = {act:?} is not supported (expected {expected:?})"
        )),
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
