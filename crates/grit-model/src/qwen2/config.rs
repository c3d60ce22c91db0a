//! The Qwen2 decoder's hyper-parameters, shared by Qwen2.5-VL (multimodal rotary positions) and
//! InternVL3 (plain 1-D rotary positions).

use burn::config::Config;
use serde::Deserialize;

use crate::hf::{ConfigError, check, check_act, check_sizes};

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
    /// Multimodal RoPE (Qwen2.5-VL): how the rotary half-dimension is split between the
    /// temporal, height and width position rows. `None`: plain 1-D RoPE over one position row
    /// (InternVL3's Qwen2).
    pub mrope_section: Option<[usize; 3]>,
}

impl TextConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Position rows a sequence carries: 3 with M-RoPE, 1 without.
    pub fn position_rows(&self) -> usize {
        if self.mrope_section.is_some() { 3 } else { 1 }
    }

    /// The checks every decoder needs before any tensor is built; `at` names the JSON object
    /// the fields came from (e.g. `text_config`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{at}{name}");
        check_sizes(
            at,
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("num_key_value_heads", self.num_key_value_heads),
            ],
        )?;
        check(
            self.num_attention_heads
                .is_multiple_of(self.num_key_value_heads),
            key("num_key_value_heads"),
            format!(
                "{} must divide num_attention_heads {}",
                self.num_key_value_heads, self.num_attention_heads
            ),
        )?;
        check(
            self.hidden_size.is_multiple_of(self.num_attention_heads)
                && self.head_dim().is_multiple_of(2),
            key("hidden_size"),
            format!(
                "{} must split into {} heads of an even width",
                self.hidden_size, self.num_attention_heads
            ),
        )?;
        check(
            self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0,
            key("rms_norm_eps"),
            "must be a positive number",
        )?;
        check(
            self.rope_theta.is_finite() && self.rope_theta > 1.0,
            key("rope_theta"),
            "must be a number above 1",
        )?;
        if let Some(section) = self.mrope_section {
            let half = self.head_dim() / 2;
            check(
                section.iter().try_fold(0usize, |a, &b| a.checked_add(b)) == Some(half),
                key("rope_parameters.mrope_section"),
                format!("{section:?} must sum to head_dim / 2 = {half}"),
            )?;
        }
        Ok(())
    }
}

/// The decoder fields of a Qwen2-family `config.json` object (Qwen2.5-VL's top level or
/// `text_config`, InternVL3's `text_config` or `llm_config`), as stored.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HfTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    /// transformers 5.x.
    pub rope_parameters: Option<HfRope>,
    /// transformers 4.x.
    pub rope_scaling: Option<HfRope>,
    pub hidden_act: Option<String>,
    pub use_sliding_window: Option<bool>,
    pub tie_word_embeddings: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HfRope {
    pub rope_type: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub rope_theta: Option<f64>,
    pub mrope_section: Option<Vec<usize>>,
}

impl HfTextConfig {
    pub fn rope(&self) -> Option<&HfRope> {
        self.rope_parameters.as_ref().or(self.rope_scaling.as_ref())
    }

    /// The decoder configuration; `at` is the JSON path prefix of this object for errors,
    /// `mrope` whether the family uses multimodal positions (the section is then required).
    pub fn to_config(&self, at: &str, mrope: bool) -> Result<TextConfig, ConfigError> {
        check_act(
            self.hidden_act.as_deref(),
            &format!("{at}hidden_act"),
            "silu",
        )?;
        check(
            self.use_sliding_window != Some(true),
            format!("{at}use_sliding_window"),
            "sliding-window attention is not supported",
        )?;
        let rope = self.rope();
        let mrope_section = if mrope {
            let section = rope.and_then(|r| r.mrope_section.clone()).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}rope_parameters.mrope_section"),
                    "missing (Qwen2.5-VL needs it, in `rope_parameters` or `rope_scaling`)",
                )
            })?;
            let n = section.len();
            Some(section.try_into().map_err(|_| {
                ConfigError::new(
                    format!("{at}rope_parameters.mrope_section"),
                    format!("has {n} entries, expected 3"),
                )
            })?)
        } else {
            if let Some(kind) = rope
                .and_then(|r| r.rope_type.as_deref().or(r.kind.as_deref()))
                .filter(|&k| k != "default")
            {
                return Err(ConfigError::new(
                    format!("{at}rope_parameters.rope_type"),
                    format!("{kind:?} is not supported (only \"default\")"),
                ));
            }
            None
        };
        Ok(TextConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: rope
                .and_then(|r| r.rope_theta)
                .or(self.rope_theta)
                .unwrap_or(1_000_000.0),
            mrope_section,
        })
    }
}
