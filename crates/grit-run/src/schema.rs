//! The rows and files of a run directory, as the trainer and the evaluator write them and the
//! viewer reads them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use grit_data::completion::{FinishReason, ImageSize, PixelBox, Region};
use grit_data::metrics::{Aggregate, MetricsSummary, SampleMetrics};
use serde::{Deserialize, Serialize};

/// One row of `metrics.jsonl`: one optimizer step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    /// Mean of each reward over the step's completions, by official function name (failed
    /// values left out and counted in `reward_errors`).
    pub rewards: BTreeMap<String, f64>,
    pub reward_errors: usize,
    pub total_reward: f64,
    /// Mean answer-accuracy reward (the binarized judge score in training).
    pub accuracy: Option<f64>,
    /// Mean per-token k3 KL to the reference over the tokens trained on.
    pub kl: f64,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    /// Mean generated tokens per completion.
    pub completion_length: f64,
    pub truncated_share: f64,
    pub zero_variance_share: f64,
    /// Groups left out of the loss (zero variance when skipped, or a failed reward).
    pub skipped_groups: usize,
    pub clip_fraction: f64,
    pub rollout_seconds: f64,
    pub update_seconds: f64,
    pub seconds: f64,
    /// The held-out evaluation, on the steps it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<Aggregate>,
}

/// A parsed box as the run files record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutBox {
    pub region: Region,
    pub label: Option<String>,
    /// In original-image pixels.
    pub pixels: PixelBox,
    /// Byte span of the box in the completion text.
    pub span: [usize; 2],
}

/// One row of `rollouts.jsonl`: one sampled completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRow {
    pub step: u64,
    /// The prompt's index within the step.
    pub group: usize,
    /// The completion's index within its group.
    pub index: usize,
    /// Relative to the run directory when the image lies inside it.
    pub image: PathBuf,
    /// `file:line` of the sample.
    pub source: String,
    pub dataset: String,
    pub question: String,
    pub answer: String,
    pub gt_boxes: Vec<[f64; 4]>,
    pub completion: String,
    pub tokens: usize,
    pub finish_reason: FinishReason,
    /// By official function name; `null` where the reward failed (see `reward_errors`).
    pub rewards: BTreeMap<String, Option<f64>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reward_errors: BTreeMap<String, String>,
    pub total_reward: f64,
    pub advantage: f64,
    pub boxes: Vec<RolloutBox>,
    pub original_size: ImageSize,
    pub processed_size: ImageSize,
}

/// One line of `eval/<name>/samples.jsonl`: one evaluated item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// `file:line` of the sample: what makes an item unique.
    pub id: String,
    pub image: PathBuf,
    pub dataset: String,
    pub question: String,
    pub answer: String,
    pub gt_boxes: Vec<[f64; 4]>,
    pub completion: String,
    pub tokens: usize,
    pub finish_reason: FinishReason,
    pub judge_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_error: Option<String>,
    pub boxes: Vec<RolloutBox>,
    pub metrics: SampleMetrics,
    pub original_size: ImageSize,
    pub processed_size: ImageSize,
}

/// `checkpoints/step-NNNNNN/trainer_state.json`: what a checkpoint needs besides weights and
/// optimizer moments to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: u64,
    /// The initial policy, which is also the frozen reference.
    pub initial_model: PathBuf,
}

/// One row of `demo/sft_metrics.jsonl`: one step of the demo's supervised warm start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftMetrics {
    pub step: u64,
    /// Mean negative log-likelihood per completion token.
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

/// `report.json`: the before/after table of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub before: Option<MetricsSummary>,
    pub after: Option<MetricsSummary>,
    pub warm_start_seconds: Option<f64>,
    pub grpo_seconds: f64,
    pub eval_seconds: f64,
    pub total_seconds: f64,
}
