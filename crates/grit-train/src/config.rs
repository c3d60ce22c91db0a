//! The run configuration (TOML). Every field has a default; `configs/shapes-tiny.toml` is the
//! embedded default run, the laptop demo.

use std::path::{Path, PathBuf};

use anyhow::Context;
use grit_data::prompt::PromptStyle;
use grit_data::rewards::{Mode, RewardKind};
use grit_data::synthetic::ShapesConfig;
use grit_judge::JudgeConfig;
use grit_model::VlmConfig;
use grit_model::backend::BackendKind;
use grit_model::internvl3::{self, InternVl3Config};
use grit_model::qwen2::TextConfig;
use grit_model::qwen2_5_vl::{self, Qwen2_5VlConfig};
use grit_model::weights::StoreDtype;
use serde::{Deserialize, Serialize};

use crate::optim::{AdamWConfig, Schedule};
use grit_model::processor::ProcessorOptions;

/// `configs/shapes-tiny.toml`, what `grit-train` runs without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/shapes-tiny.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// The run directory (created; `--resume` continues it).
    pub out: PathBuf,
    pub seed: u64,
    /// `cpu`, `wgpu` or `cuda`.
    pub backend: BackendKind,
    /// An HF checkpoint directory (weights, config.json, tokenizer). Empty: the demo builds a
    /// small model and warms it up with [`SftConfig`].
    pub model: Option<PathBuf>,
    pub data: DataConfig,
    pub demo: DemoConfig,
    pub sft: SftConfig,
    pub grpo: GrpoConfig,
    pub rewards: RewardsConfig,
    pub judge: JudgeConfig,
    pub eval: EvalConfig,
    pub checkpoint: CheckpointConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("runs/grit"),
            seed: 0,
            backend: BackendKind::Cpu,
            model: None,
            data: DataConfig::default(),
            demo: DemoConfig::default(),
            sft: SftConfig::default(),
            grpo: GrpoConfig::default(),
            rewards: RewardsConfig::default(),
            judge: JudgeConfig::default(),
            eval: EvalConfig::default(),
            checkpoint: CheckpointConfig::default(),
        }
    }
}

/// GRIT JSONL files, each with the folder its image paths are relative to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub train: Vec<PathBuf>,
    /// One folder per train file, or one for all.
    pub train_images: Vec<PathBuf>,
    /// Held-out files for the evaluation hook and the before/after report.
    pub heldout: Vec<PathBuf>,
    pub heldout_images: Vec<PathBuf>,
    pub skip_bad_lines: bool,
    /// Image size bounds for the processor (`None`: the checkpoint's, GRIT's 3136 / 200704
    /// when it has none).
    pub min_pixels: Option<usize>,
    pub max_pixels: Option<usize>,
    /// InternVL3's tile limit (`None`: GRIT's 2).
    pub max_tiles: Option<usize>,
}

/// The model family the demo builds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DemoFamily {
    #[default]
    #[serde(rename = "qwen2_5_vl")]
    Qwen2_5Vl,
    #[serde(rename = "internvl3")]
    InternVl3,
}

/// The laptop demo: synthetic shapes, a tokenizer and a small model built for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub family: DemoFamily,
    pub shapes: ShapesConfig,
    pub train_samples: usize,
    pub heldout_samples: usize,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vision_hidden_size: usize,
    pub vision_depth: usize,
    pub vision_heads: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            family: DemoFamily::default(),
            shapes: ShapesConfig::default(),
            train_samples: 2000,
            heldout_samples: 100,
            vocab_size: 512,
            hidden_size: 128,
            intermediate_size: 384,
            layers: 4,
            heads: 4,
            kv_heads: 2,
            vision_hidden_size: 64,
            vision_depth: 2,
            vision_heads: 2,
        }
    }
}

/// Supervised warm start on programmatic grounded traces (demo only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    pub steps: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub warmup_steps: usize,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            batch: 16,
            learning_rate: 2e-3,
            warmup_steps: 20,
        }
    }
}

/// How the per-token losses of a batch are averaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossNormalization {
    /// Mean over sequences of each sequence's token mean (official GRPO / GRIT).
    #[default]
    Sequence,
    /// Sum over all tokens / number of tokens (DAPO, Dr. GRPO).
    Token,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Prompts per optimizer step; each gets `group_size` completions.
    pub prompts_per_step: usize,
    pub group_size: usize,
    /// Sequences per forward/backward pass; gradients accumulate over a step's passes.
    pub micro_batch: usize,
    /// Also cap each pass at this many tokens, padding included (`None`: no cap), so that long
    /// completions go fewer to a pass and short ones more; a longer sequence goes alone.
    pub micro_batch_tokens: Option<usize>,
    /// Sequences generated together.
    pub rollout_batch: usize,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub max_new_tokens: usize,
    pub prompt: PromptStyle,
    /// KL weight against the frozen reference (0 skips the reference model).
    pub beta: f64,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    pub schedule: Schedule,
    pub optimizer: AdamWConfig,
    pub loss_normalization: LossNormalization,
    /// Policy updates per batch of rollouts (official: 1, so the ratio is 1).
    pub updates_per_batch: usize,
    /// PPO clipping of the ratio to [1 − low, 1 + high] (`None`: the official unclipped loss).
    pub clip_eps_low: Option<f64>,
    pub clip_eps_high: Option<f64>,
    /// Leave groups whose rewards are all equal out of the loss (their advantage is 0).
    pub skip_zero_variance_groups: bool,
    pub freeze_vision: bool,
    /// Positions per LM-head chunk when computing log-probs.
    pub logprob_chunk: usize,
}

impl Default for GrpoConfig {
    /// The official recipe (spec §5).
    fn default() -> Self {
        Self {
            steps: 200,
            prompts_per_step: 20,
            group_size: 4,
            micro_batch: 4,
            micro_batch_tokens: None,
            rollout_batch: 16,
            temperature: 0.9,
            top_k: 50,
            top_p: 1.0,
            max_new_tokens: 1000,
            prompt: PromptStyle::Grit,
            beta: 0.01,
            learning_rate: 2e-6,
            warmup_steps: 0,
            schedule: Schedule::Cosine,
            optimizer: AdamWConfig::default(),
            loss_normalization: LossNormalization::Sequence,
            updates_per_batch: 1,
            clip_eps_low: None,
            clip_eps_high: None,
            skip_zero_variance_groups: false,
            freeze_vision: false,
            logprob_chunk: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardsConfig {
    /// `compat` reproduces the official code, quirks included; `fixed` repairs them. The run's
    /// InternVL3 prompts follow it too (compat: without the assistant header).
    pub mode: Mode,
    /// Weight per reward, by official function name (absent: 0).
    pub weights: std::collections::BTreeMap<String, f64>,
    /// Datasets whose answers are counts (fixed mode; compat knows only `tallyqa`).
    pub counting_datasets: Vec<String>,
    /// Fixed mode: only lists of exactly four integers count as boxes for the grounded reward
    /// (the boxes the evaluator's IoU reads); off, the official regex's matches count.
    pub strict_boxes: bool,
}

impl Default for RewardsConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Fixed,
            weights: RewardKind::ALL
                .iter()
                .map(|k| (k.official_name().to_owned(), 1.0))
                .collect(),
            counting_datasets: vec!["tallyqa".into()],
            strict_boxes: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Evaluate the held-out files every this many steps (0: only before and after training).
    pub every: usize,
    /// Items per evaluation (0: all).
    pub limit: usize,
    pub batch: usize,
    pub max_new_tokens: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            every: 0,
            limit: 0,
            batch: 16,
            max_new_tokens: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Save every this many steps (and always after the last).
    pub every: usize,
    /// Newest checkpoints kept (0: all).
    pub keep: usize,
    /// `f32` resumes bit-exactly; `bf16` halves the files (hub checkpoints are bf16).
    pub dtype: StoreDtype,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            every: 50,
            keep: 2,
            dtype: StoreDtype::F32,
        }
    }
}

impl DemoConfig {
    /// The demo's train and held-out items.
    pub fn splits(&self, seed: u64) -> anyhow::Result<grit_data::synthetic::Splits> {
        grit_data::synthetic::splits(&self.shapes, seed, self.train_samples, self.heldout_samples)
            .map_err(|e| anyhow::anyhow!("[demo.shapes]: {e}"))
    }

    /// The model the demo builds: its family at its size over `vocab` tokens, whose image
    /// placeholder, vision start and vision end are `image_tokens` (InternVL3 uses the first).
    pub fn model_config(&self, vocab: usize, image_tokens: [u32; 3]) -> VlmConfig {
        let head_dim = self.hidden_size / self.heads.max(1);
        let half = head_dim / 2;
        let text = TextConfig::new(
            vocab,
            self.hidden_size,
            self.intermediate_size,
            self.layers,
            self.heads,
            self.kv_heads,
        );
        match self.family {
            DemoFamily::Qwen2_5Vl => {
                // Qwen2.5-VL splits the rotary half-dimension 16:24:24 between time, height and
                // width.
                let temporal = half / 4;
                let height = (half - temporal) / 2;
                let vision = qwen2_5_vl::VisionConfig::new(
                    self.vision_depth,
                    self.vision_hidden_size,
                    self.vision_heads,
                    self.vision_hidden_size * 2,
                    self.hidden_size,
                    vec![self.vision_depth.saturating_sub(1)],
                );
                let mut config = Qwen2_5VlConfig::new(
                    text.with_mrope_section(Some([temporal, height, half - temporal - height])),
                    vision,
                )
                .with_tie_word_embeddings(true);
                [
                    config.image_token_id,
                    config.vision_start_token_id,
                    config.vision_end_token_id,
                ] = image_tokens;
                VlmConfig::Qwen2_5Vl(config)
            }
            DemoFamily::InternVl3 => {
                // One tile per (square) image, at the images' own size.
                let vision = internvl3::VisionConfig::new(
                    self.vision_hidden_size,
                    self.vision_depth,
                    self.vision_heads,
                    self.vision_hidden_size * 2,
                )
                .with_image_size(self.shapes.image_size as usize);
                VlmConfig::InternVl3(
                    InternVl3Config::new(text, vision)
                        .with_image_token_id(image_tokens[0])
                        .with_tie_word_embeddings(true),
                )
            }
        }
    }
}

/// `Ok` when `ok`, else an error naming the TOML key.
fn check(ok: bool, key: &str, message: impl std::fmt::Display) -> anyhow::Result<()> {
    anyhow::ensure!(ok, "`{key}`: {message}");
    Ok(())
}

fn positive(value: usize, key: &str) -> anyhow::Result<()> {
    check(value > 0, key, "must be at least 1")
}

fn finite_at_least(value: f64, min: f64, key: &str) -> anyhow::Result<()> {
    check(
        value.is_finite() && value >= min,
        key,
        format!("{value} must be a number of at least {min}"),
    )
}

impl RunConfig {
    /// Parses and validates a run config; `origin` (the file) prefixes every error.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{origin}: {e:#}"))?;
        Ok(config)
    }

    /// Every value the run would otherwise trip over later, checked before anything starts;
    /// errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let data = &self.data;
        if let (Some(min), Some(max)) = (data.min_pixels, data.max_pixels) {
            check(
                min <= max,
                "[data] min_pixels",
                format!("{min} exceeds max_pixels {max}"),
            )?;
        }
        if let Some(max) = data.max_pixels {
            positive(max, "[data] max_pixels")?;
        }
        if let Some(tiles) = data.max_tiles {
            positive(tiles, "[data] max_tiles")?;
        }
        if self.model.is_some() {
            check(
                !data.train.is_empty(),
                "[data] train",
                "a run from a checkpoint needs training files (--data)",
            )?;
        } else {
            self.validate_demo()?;
        }

        let sft = &self.sft;
        positive(sft.batch, "[sft] batch")?;
        finite_at_least(sft.learning_rate, 0.0, "[sft] learning_rate")?;

        let g = &self.grpo;
        positive(g.steps, "[grpo] steps")?;
        positive(g.prompts_per_step, "[grpo] prompts_per_step")?;
        check(g.group_size >= 2, "[grpo] group_size", "must be at least 2")?;
        positive(g.micro_batch, "[grpo] micro_batch")?;
        if let Some(tokens) = g.micro_batch_tokens {
            positive(tokens, "[grpo] micro_batch_tokens")?;
        }
        positive(g.rollout_batch, "[grpo] rollout_batch")?;
        positive(g.max_new_tokens, "[grpo] max_new_tokens")?;
        positive(g.updates_per_batch, "[grpo] updates_per_batch")?;
        positive(g.logprob_chunk, "[grpo] logprob_chunk")?;
        finite_at_least(f64::from(g.temperature), 0.0, "[grpo] temperature")?;
        check(
            g.top_p > 0.0 && g.top_p <= 1.0,
            "[grpo] top_p",
            format!("{} must lie in (0, 1]", g.top_p),
        )?;
        finite_at_least(g.beta, 0.0, "[grpo] beta")?;
        finite_at_least(g.learning_rate, 0.0, "[grpo] learning_rate")?;
        for (value, key) in [
            (g.clip_eps_low, "[grpo] clip_eps_low"),
            (g.clip_eps_high, "[grpo] clip_eps_high"),
        ] {
            if let Some(eps) = value {
                finite_at_least(eps, 0.0, key)?;
            }
        }
        let o = &g.optimizer;
        for (value, key) in [
            (o.beta1, "[grpo.optimizer] beta1"),
            (o.beta2, "[grpo.optimizer] beta2"),
        ] {
            check(
                (0.0..1.0).contains(&value),
                key,
                format!("{value} must lie in [0, 1)"),
            )?;
        }
        check(
            o.eps.is_finite() && o.eps > 0.0,
            "[grpo.optimizer] eps",
            "must be a positive number",
        )?;
        finite_at_least(o.weight_decay, 0.0, "[grpo.optimizer] weight_decay")?;
        if let Some(norm) = o.max_grad_norm {
            check(
                norm.is_finite() && norm > 0.0,
                "[grpo.optimizer] max_grad_norm",
                "must be a positive number",
            )?;
        }

        positive(self.eval.batch, "[eval] batch")?;
        positive(self.eval.max_new_tokens, "[eval] max_new_tokens")?;
        self.reward_config()?;
        self.judge
            .validate()
            .map_err(|e| anyhow::anyhow!("[judge]: {e}"))?;
        if let (JudgeConfig::Openai(judge), Mode::Compat) = (&self.judge, self.rewards.mode) {
            check(
                judge.cache.is_none(),
                "[judge] cache",
                "is a fixed-mode feature: the official judge asks once per completion, and compat does too",
            )?;
        }
        Ok(())
    }

    fn validate_demo(&self) -> anyhow::Result<()> {
        let d = &self.demo;
        d.shapes
            .validate()
            .map_err(|e| anyhow::anyhow!("[demo.shapes]: {e}"))?;
        positive(d.train_samples, "[demo] train_samples")?;
        let minimum = grit_data::synthetic::min_vocab_size();
        check(
            d.vocab_size >= minimum,
            "[demo] vocab_size",
            format!(
                "{} is below the {minimum} tokens the tokenizer starts with",
                d.vocab_size
            ),
        )?;
        for (value, key) in [
            (d.hidden_size, "[demo] hidden_size"),
            (d.intermediate_size, "[demo] intermediate_size"),
            (d.layers, "[demo] layers"),
            (d.heads, "[demo] heads"),
            (d.kv_heads, "[demo] kv_heads"),
            (d.vision_hidden_size, "[demo] vision_hidden_size"),
            (d.vision_depth, "[demo] vision_depth"),
            (d.vision_heads, "[demo] vision_heads"),
        ] {
            positive(value, key)?;
        }
        check(
            d.hidden_size.is_multiple_of(d.heads) && (d.hidden_size / d.heads).is_multiple_of(8),
            "[demo] hidden_size",
            format!(
                "{} / heads {} must be a multiple of 8",
                d.hidden_size, d.heads
            ),
        )?;
        check(
            d.heads.is_multiple_of(d.kv_heads),
            "[demo] kv_heads",
            format!("{} must divide heads {}", d.kv_heads, d.heads),
        )?;
        d.model_config(d.vocab_size, [0, 1, 2])
            .validate()
            .map_err(|e| anyhow::anyhow!("[demo]: the model it describes: {e}"))
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serializes")
    }

    /// How images and questions become prompts, as far as the run decides it.
    pub fn processor_options(&self) -> ProcessorOptions {
        ProcessorOptions {
            min_pixels: self.data.min_pixels,
            max_pixels: self.data.max_pixels,
            max_tiles: self.data.max_tiles,
            mode: self.rewards.mode,
        }
    }

    /// The reward configuration the reward functions take.
    pub fn reward_config(&self) -> anyhow::Result<grit_data::rewards::RewardConfig> {
        let mut config = grit_data::rewards::RewardConfig::new(self.rewards.mode);
        let mut rewards = Vec::new();
        for (name, &weight) in &self.rewards.weights {
            let kind = RewardKind::ALL
                .into_iter()
                .find(|k| k.official_name() == name)
                .ok_or_else(|| {
                    let known: Vec<_> = RewardKind::ALL.iter().map(|k| k.official_name()).collect();
                    anyhow::anyhow!("[rewards.weights]: unknown reward `{name}` (known: {known:?})")
                })?;
            rewards.push((kind, weight));
        }
        // Keep the official order whatever order the table had.
        rewards.sort_by_key(|(k, _)| RewardKind::ALL.iter().position(|a| a == k));
        config.rewards = rewards;
        config.counting_datasets = self.rewards.counting_datasets.clone();
        config.strict_boxes = self.rewards.strict_boxes;
        config.prompt_style = self.grpo.prompt;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_configs_parse_and_round_trip() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        for entry in std::fs::read_dir(root).unwrap() {
            let path = entry.unwrap().path();
            let config = RunConfig::load(&path).unwrap();
            assert_eq!(
                RunConfig::parse(&config.to_toml(), "again").unwrap(),
                config
            );
            config.reward_config().unwrap();
        }
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let err = RunConfig::parse("[grpo]\nbeta = 0.1\nbetta = 2\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("betta"), "{err}");
        assert!(err.to_string().starts_with("x.toml"), "{err}");
    }

    #[test]
    fn the_official_recipe_is_the_default() {
        let config = RunConfig::default();
        assert_eq!(config.grpo.group_size, 4);
        assert_eq!(config.grpo.beta, 0.01);
        assert_eq!(config.grpo.learning_rate, 2e-6);
        assert_eq!(config.grpo.optimizer.max_grad_norm, Some(1.0));
        assert_eq!(config.reward_config().unwrap().rewards.len(), 6);
    }
}
