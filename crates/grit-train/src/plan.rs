//! The memory one GRPO-GR step needs on one device, worked out from the run config and the
//! model config before any tensor is built (`grit-train plan`).
//!
//! Parameters are counted on the model itself, built with burn's lazy parameters so that no
//! weight is allocated. Everything is f32 today: weights, gradients, both AdamW moments, the
//! frozen reference, the rollout KV cache and the activations autodiff keeps for backward.
//! The activation row is an estimate from the decoder's shapes (what each layer's backward
//! reads: norms, projections, rotary q/k, the attention probabilities, which burn 0.21 keeps
//! whole as it has no fused attention backward, and the MLP), not a measurement.

use std::fmt;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use grit_data::prompt::PromptStyle;
use grit_model::VlmConfig;
use grit_model::backend::Cpu;
use grit_model::internvl3::InternVl3Config;
use grit_model::qwen2_5_vl::Qwen2_5VlConfig;

use crate::config::RunConfig;

/// Bytes of one f32.
const F32: u64 = 4;
const GIB: f64 = (1u64 << 30) as f64;

/// The hub configs written into the project, so a plan needs no download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HubPreset {
    #[value(name = "qwen2_5vl-3b")]
    Qwen2_5Vl3b,
    #[value(name = "qwen2_5vl-7b")]
    Qwen2_5Vl7b,
    #[value(name = "internvl3-1b")]
    InternVl3_1b,
    #[value(name = "internvl3-2b")]
    InternVl3_2b,
}

impl HubPreset {
    /// The hub model's name and its `config.json`.
    fn source(self) -> (&'static str, &'static str) {
        match self {
            HubPreset::Qwen2_5Vl3b => (
                "Qwen/Qwen2.5-VL-3B-Instruct",
                include_str!("../../../assets/hub-configs/qwen2_5vl-3b.json"),
            ),
            HubPreset::Qwen2_5Vl7b => (
                "Qwen/Qwen2.5-VL-7B-Instruct",
                include_str!("../../../assets/hub-configs/qwen2_5vl-7b.json"),
            ),
            HubPreset::InternVl3_1b => (
                "OpenGVLab/InternVL3-1B-hf",
                include_str!("../../../assets/hub-configs/internvl3-1b.json"),
            ),
            HubPreset::InternVl3_2b => (
                "OpenGVLab/InternVL3-2B-hf",
                include_str!("../../../assets/hub-configs/internvl3-2b.json"),
            ),
        }
    }

    pub fn name(self) -> &'static str {
        self.source().0
    }

    pub fn config(self) -> anyhow::Result<VlmConfig> {
        let (name, text) = self.source();
        let json: serde_json::Value = serde_json::from_str(text)?;
        let config = match self {
            HubPreset::Qwen2_5Vl3b | HubPreset::Qwen2_5Vl7b => {
                VlmConfig::Qwen2_5Vl(Qwen2_5VlConfig::from_hf_json(&json)?)
            }
            HubPreset::InternVl3_1b | HubPreset::InternVl3_2b => {
                VlmConfig::InternVl3(InternVl3Config::from_hf_json(&json)?)
            }
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        Ok(config)
    }
}

/// Parameters of the language side (embeddings, decoder, head) and of the vision side (tower
/// and projector or merger), which `freeze_vision` takes out of training.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamCounts {
    pub text: u64,
    pub vision: u64,
}

impl ParamCounts {
    pub fn total(self) -> u64 {
        self.text + self.vision
    }
}

/// Counts parameters by their lazy shapes, so none is initialized.
#[derive(Default)]
struct Counter {
    path: Vec<String>,
    counts: ParamCounts,
}

impl<B: Backend> ModuleVisitor<B> for Counter {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let n = param.lazy_shape().num_elements() as u64;
        let vision = self.path.iter().any(|p| {
            matches!(
                p.as_str(),
                "visual" | "vision_tower" | "multi_modal_projector"
            )
        });
        if vision {
            self.counts.vision += n;
        } else {
            self.counts.text += n;
        }
    }
}

/// The model's parameters, counted on the model the config builds.
pub fn count_params(config: &VlmConfig) -> ParamCounts {
    let model = config.init::<Cpu>(&Default::default());
    let mut counter = Counter::default();
    model.visit(&mut counter);
    counter.counts
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub what: &'static str,
    pub bytes: u64,
    /// The arithmetic behind it.
    pub how: String,
}

/// What one device holds during a step, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    pub model: String,
    pub params: ParamCounts,
    pub rows: Vec<Row>,
}

impl MemoryPlan {
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|r| r.bytes).sum()
    }

    /// Weights, gradients, optimizer state and reference: what no batch setting changes.
    pub fn fixed(&self) -> u64 {
        self.rows
            .iter()
            .filter(|r| matches!(r.what, "weights" | "gradients" | "optimizer" | "reference"))
            .map(|r| r.bytes)
            .sum()
    }
}

/// The shapes the plan needs from either family.
struct Shapes {
    layers: u64,
    hidden: u64,
    intermediate: u64,
    heads: u64,
    kv_heads: u64,
    head_dim: u64,
    vocab: u64,
    /// Vision tower: layers, width, MLP width, tokens per image (before any merge).
    vision: (u64, u64, u64, u64),
    /// Tokens one image takes in the prompt.
    image_tokens: u64,
}

fn shapes(model: &VlmConfig, config: &RunConfig) -> Shapes {
    let (text, vision, image_tokens) = match model {
        VlmConfig::Qwen2_5Vl(c) => {
            let max_pixels = config
                .data
                .max_pixels
                .unwrap_or(grit_data::preprocess::GRIT_MAX_PIXELS);
            let patch = c.vision.patch_size * c.vision.patch_size;
            let merge = c.vision.spatial_merge_size * c.vision.spatial_merge_size;
            let patches = (max_pixels / patch) as u64;
            (
                &c.text,
                (
                    c.vision.depth as u64,
                    c.vision.hidden_size as u64,
                    c.vision.intermediate_size as u64,
                    patches,
                ),
                patches / merge as u64 + 2,
            )
        }
        VlmConfig::InternVl3(c) => {
            let tiles = config
                .data
                .max_tiles
                .unwrap_or(grit_data::preprocess::internvl::GRIT_MAX_TILES);
            // A thumbnail joins a grid of more than one tile.
            let tiles = (tiles + usize::from(tiles > 1)) as u64;
            let grid = (c.vision.image_size / c.vision.patch_size) as u64;
            (
                &c.text,
                (
                    c.vision.num_hidden_layers as u64,
                    c.vision.hidden_size as u64,
                    c.vision.intermediate_size as u64,
                    tiles * (grid * grid + 1),
                ),
                tiles * c.tokens_per_tile() as u64 + 2,
            )
        }
    };
    Shapes {
        layers: text.num_hidden_layers as u64,
        hidden: text.hidden_size as u64,
        intermediate: text.intermediate_size as u64,
        heads: text.num_attention_heads as u64,
        kv_heads: text.num_key_value_heads as u64,
        head_dim: text.head_dim() as u64,
        vocab: text.vocab_size as u64,
        vision,
        image_tokens,
    }
}

/// Text tokens of a prompt besides the image: the chat frame, a question and the instruction
/// (the one-shot example adds about 250).
fn text_tokens(style: PromptStyle) -> u64 {
    match style {
        PromptStyle::GritIcl | PromptStyle::GritIclInternvl => 384,
        PromptStyle::Grit | PromptStyle::Direct | PromptStyle::Sft => 128,
    }
}

/// The plan of one GRPO-GR step of `config` with `model`.
pub fn plan(config: &RunConfig, model: &VlmConfig, name: &str) -> MemoryPlan {
    let grpo = &config.grpo;
    let params = count_params(model);
    let s = shapes(model, config);
    let trainable = if grpo.freeze_vision {
        params.text
    } else {
        params.total()
    };
    let completions = (grpo.prompts_per_step * grpo.group_size) as u64;
    let prompt = s.image_tokens + text_tokens(grpo.prompt);
    let sequence = prompt + grpo.max_new_tokens as u64;
    // Sequences per pass at the longest completions.
    let by_tokens = grpo
        .micro_batch_tokens
        .map_or(u64::MAX, |cap| (cap as u64 / sequence).max(1));
    let micro = (grpo.micro_batch.max(1) as u64)
        .min(by_tokens)
        .min(completions.max(1));
    // A second gradient set exists while a micro-batch's backward meets the accumulated sum.
    let gradient_sets = if completions > micro { 2 } else { 1 };
    let rollout_batch = (grpo.rollout_batch.max(1) as u64).min(completions.max(1));

    let mut rows = vec![
        Row {
            what: "weights",
            bytes: params.total() * F32,
            how: format!("{} parameters × 4 B", params.total()),
        },
        Row {
            what: "gradients",
            bytes: gradient_sets * trainable * F32,
            how: format!(
                "{gradient_sets} × {trainable} trainable × 4 B{}",
                if gradient_sets == 2 {
                    " (the accumulated sum and the micro-batch's)"
                } else {
                    ""
                }
            ),
        },
        Row {
            what: "optimizer",
            bytes: 2 * trainable * F32,
            how: format!("AdamW's two moments × {trainable} × 4 B"),
        },
    ];
    if grpo.beta != 0.0 {
        rows.push(Row {
            what: "reference",
            bytes: params.total() * F32,
            how: format!("the frozen initial policy, {} × 4 B", params.total()),
        });
    }
    let kv_per_token = s.layers * 2 * s.kv_heads * s.head_dim * F32;
    rows.push(Row {
        what: "rollout KV cache",
        bytes: rollout_batch * sequence * kv_per_token,
        how: format!(
            "{rollout_batch} sequences × ({prompt} prompt + {} new) tokens × {} layers × K,V × {} kv heads × {} × 4 B",
            grpo.max_new_tokens, s.layers, s.kv_heads, s.head_dim
        ),
    });
    // Per token and layer, backward reads: the two norms' inputs and outputs, q/k/v and their
    // rotated copies, GQA's repeated k/v, the attention output, and the MLP's gate, up, act
    // and product; per layer and sequence, the attention probabilities (heads × T²) twice
    // (softmax's output and the masked scores it came from).
    let per_token_layer = 6 * s.hidden
        + 2 * (s.heads + s.kv_heads) * s.head_dim
        + 2 * s.heads * s.head_dim
        + 4 * s.intermediate;
    let per_sequence_layer = sequence * per_token_layer + 2 * s.heads * sequence * sequence;
    let mut activations = micro * s.layers * per_sequence_layer * F32;
    let mut how = format!(
        "{micro} sequences × {} layers × ({sequence} tokens × {per_token_layer} + 2 × {} heads × {sequence}²) × 4 B",
        s.layers, s.heads
    );
    if !grpo.freeze_vision {
        let (depth, width, mlp, tokens) = s.vision;
        let vision = micro * depth * tokens * (8 * width + 3 * mlp) * F32;
        activations += vision;
        how.push_str(&format!(
            " + the vision tower: {micro} × {depth} layers × {tokens} tokens × {} × 4 B",
            8 * width + 3 * mlp
        ));
    }
    let head = 3 * micro * grpo.logprob_chunk.max(1) as u64 * s.vocab * F32;
    activations += head;
    how.push_str(&format!(
        " + the LM head: 3 × {micro} × {} positions × {} vocab × 4 B",
        grpo.logprob_chunk, s.vocab
    ));
    rows.push(Row {
        what: "activations",
        bytes: activations,
        how,
    });
    MemoryPlan {
        model: name.to_owned(),
        params,
        rows,
    }
}

/// Changes to the run config, smallest first, after which the plan fits `budget` bytes; empty
/// when it fits as it is, `None` when nothing the config offers makes it fit.
pub fn fitting_settings(config: &RunConfig, model: &VlmConfig, budget: u64) -> Option<Vec<String>> {
    let fits = |c: &RunConfig| plan(c, model, "").total() <= budget;
    let mut candidate = config.clone();
    let mut changes = Vec::new();
    if fits(&candidate) {
        return Some(changes);
    }
    if candidate.grpo.micro_batch > 1 {
        candidate.grpo.micro_batch = 1;
        changes.push("[grpo] micro_batch = 1".to_owned());
        if fits(&candidate) {
            return Some(changes);
        }
    }
    if !candidate.grpo.freeze_vision {
        candidate.grpo.freeze_vision = true;
        changes.push("[grpo] freeze_vision = true".to_owned());
        if fits(&candidate) {
            return Some(changes);
        }
    }
    while candidate.grpo.rollout_batch > 1 {
        candidate.grpo.rollout_batch /= 2;
        if fits(&candidate) {
            changes.push(format!(
                "[grpo] rollout_batch = {}",
                candidate.grpo.rollout_batch
            ));
            return Some(changes);
        }
    }
    None
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = |n: u64| n as f64 / 1e9;
        writeln!(
            f,
            "{}: {:.2} B parameters (language {:.2} B, vision {:.2} B), all f32; per device:\n",
            self.model,
            b(self.params.total()),
            b(self.params.text),
            b(self.params.vision)
        )?;
        writeln!(f, "| what | GiB | how |\n|---|---:|---|")?;
        for row in &self.rows {
            writeln!(
                f,
                "| {} | {:.2} | {} |",
                row.what,
                row.bytes as f64 / GIB,
                row.how
            )?;
        }
        writeln!(f, "| total | {:.2} | |", self.total() as f64 / GIB)
    }
}

/// A memory size: `80GB`, `80GiB`, `80G` or `24576MB`; GPU memory is binary (an 80 GB card
/// holds 80 GiB), so GB and GiB are read alike.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let value: f64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: expected a size such as 80GB"))?;
    let scale = match unit {
        "gb" | "gib" | "g" => 1u64 << 30,
        "mb" | "mib" | "m" => 1 << 20,
        "tb" | "tib" | "t" => 1 << 40,
        _ => return Err(format!("`{text}`: the unit must be MB, GB or TB")),
    };
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("`{text}`: the size must be positive"));
    }
    Ok((value * scale as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_presets_have_their_published_sizes() {
        // Parameter counts as the model cards give them.
        let published = [
            (HubPreset::Qwen2_5Vl3b, 3.75e9),
            (HubPreset::Qwen2_5Vl7b, 8.29e9),
            (HubPreset::InternVl3_1b, 0.938e9),
            (HubPreset::InternVl3_2b, 2.09e9),
        ];
        for (preset, expected) in published {
            let counts = count_params(&preset.config().unwrap());
            let total = counts.total() as f64;
            assert!(
                (total / expected - 1.0).abs() < 0.01,
                "{}: {total} parameters, the card says {expected}",
                preset.name()
            );
            assert!(counts.vision > 0 && counts.text > counts.vision);
        }
    }

    #[test]
    fn lazy_counts_equal_the_built_models() {
        let config = RunConfig::default();
        for family in [
            crate::config::DemoFamily::Qwen2_5Vl,
            crate::config::DemoFamily::InternVl3,
        ] {
            let mut demo = config.demo.clone();
            demo.family = family;
            let model_config = demo.model_config(demo.vocab_size, [0, 1, 2]);
            let counts = count_params(&model_config);
            let built = model_config.init::<Cpu>(&Default::default()).num_params() as u64;
            assert_eq!(counts.total(), built, "{family:?}");
        }
    }

    #[test]
    fn the_rows_follow_the_settings() {
        let model = HubPreset::Qwen2_5Vl3b.config().unwrap();
        let mut config = RunConfig::default();
        config.grpo.prompts_per_step = 20;
        config.grpo.group_size = 4;
        config.grpo.micro_batch = 4;
        config.grpo.beta = 0.01;
        let full = plan(&config, &model, "3B");
        let p = full.params.total();
        let row = |plan: &MemoryPlan, what: &str| {
            plan.rows.iter().find(|r| r.what == what).map(|r| r.bytes)
        };
        assert_eq!(row(&full, "weights"), Some(4 * p));
        assert_eq!(row(&full, "gradients"), Some(8 * p));
        assert_eq!(row(&full, "optimizer"), Some(8 * p));
        assert_eq!(row(&full, "reference"), Some(4 * p));
        // 3.75 B parameters at f32: weights, two gradient sets, moments and reference alone
        // are 24 bytes a parameter, more than an 80 GiB card.
        assert!(full.fixed() > 80 << 30);
        config.grpo.beta = 0.0;
        config.grpo.freeze_vision = true;
        config.grpo.micro_batch = 80;
        let lean = plan(&config, &model, "3B");
        assert_eq!(row(&lean, "reference"), None);
        let trainable = lean.params.text;
        assert_eq!(row(&lean, "gradients"), Some(4 * trainable));
        assert!(row(&lean, "activations") > row(&full, "activations"));
        // No batch setting brings the full-parameter f32 step under 80 GiB; a frozen tower
        // without the KL fits 96 GiB once micro-batches are single sequences.
        config.grpo.beta = 0.01;
        config.grpo.freeze_vision = false;
        assert_eq!(fitting_settings(&config, &model, 80 << 30), None);
        config.grpo.beta = 0.0;
        config.grpo.freeze_vision = true;
        let changes = fitting_settings(&config, &model, 96 << 30).unwrap();
        assert_eq!(changes[0], "[grpo] micro_batch = 1");
        assert_eq!(fitting_settings(&config, &model, 1 << 50), Some(Vec::new()));
    }

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_memory("80GB"), Ok(80 << 30));
        assert_eq!(parse_memory("24 GiB"), Ok(24 << 30));
        assert_eq!(parse_memory("512m"), Ok(512 << 20));
        assert!(parse_memory("80").is_err());
        assert!(parse_memory("-1GB").is_err());
    }
}
