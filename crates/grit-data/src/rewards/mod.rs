//! The GRIT rewards (spec §4) as pure functions, in two modes.
//!
//! [`Mode::Compat`] reproduces the official Python functions (eric-ai-lab/GRIT,
//! `grpo-gr/rewards.py`), quirks included; [`Mode::Fixed`] repairs the quirks the spec lists.
//! Each reward takes the completion text (and token ids where needed) and the sample (dataset,
//! reference answer, question) and returns `Result<f64, RewardError>`: where the official
//! function would raise (`int(answer)` on a non-integer counting answer, missing token ids),
//! the result is an error for that reward only, never a panic.
//!
//! | reward (official function name)                                    | range              | module          |
//! |--------------------------------------------------------------------|--------------------|-----------------|
//! | answer accuracy (`gpt_score_reward`, judge)                        | [0, 1] (binarized) | [`judge`]       |
//! | `bleu_score_reward`                                                | [0, 0.1]           | [`bleu`]        |
//! | `answer_format_reward`                                             | {0, .25, .5}       | [`format`]      |
//! | `repetitive_reward`                                                | [−0.5, 0.5]        | [`repetition`]  |
//! | `grounded_region_specific_thinking_format_reward_think_rethink`    | {0, .5, 1, 1.5}    | [`grounded`]    |
//! | `think_and_rethink_format_reward`                                  | [0, 0.5]           | [`format`]      |
//!
//! The official trainer sums them with weight 1 each ([`RewardConfig::default`]) after turning
//! the judge score into 1 when it is above 0 ([`judge::binarize`]).

pub mod bleu;
pub mod format;
pub mod grounded;
pub mod judge;
mod python;
pub mod repetition;

use crate::completion::{BoxFrame, DegenerateThresholds, ImageSize};
use crate::prompt::PromptStyle;
use serde::{Deserialize, Serialize};

pub use bleu::bleu_score_reward;
pub use format::{answer_format_reward, think_and_rethink_format_reward};
pub use grounded::grounded_region_specific_thinking_format_reward_think_rethink;
pub use judge::{
    Judge, JudgeQuery, ReplayJudge, RuleJudge, answer_accuracy_reward, binarize, judge_prompt,
    parse_score_compat, parse_score_fixed,
};
pub use repetition::repetitive_reward;

/// Whether to reproduce the official code ([`Mode::Compat`]) or to repair its quirks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Compat,
    #[default]
    Fixed,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "compat" => Ok(Mode::Compat),
            "fixed" => Ok(Mode::Fixed),
            other => Err(format!("unknown mode `{other}` (expected compat or fixed)")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Compat => "compat",
            Mode::Fixed => "fixed",
        })
    }
}

/// Why a reward has no value for a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RewardError {
    /// Python's `int(answer)` would raise (compat counting reward).
    #[error("invalid literal for int() with base 10: {0:?}")]
    NotAnInteger(String),
    /// The repetition reward needs the completion's token ids.
    #[error("completion_ids are required by repetitive_reward for a completion of 8 words or more")]
    MissingTokenIds,
    /// The judge's reply has no score (fixed parsing) or the judge failed.
    #[error("judge: {0}")]
    Judge(String),
}

/// The rewards, named as in the official code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    AnswerAccuracy,
    Bleu,
    AnswerFormat,
    Repetition,
    GroundedCount,
    ThinkFormat,
}

impl RewardKind {
    /// In the official registry's order (`GRPO_GR.py`).
    pub const ALL: [RewardKind; 6] = [
        RewardKind::AnswerAccuracy,
        RewardKind::Bleu,
        RewardKind::AnswerFormat,
        RewardKind::Repetition,
        RewardKind::GroundedCount,
        RewardKind::ThinkFormat,
    ];

    /// The official Python function's name.
    pub const fn official_name(self) -> &'static str {
        match self {
            RewardKind::AnswerAccuracy => "gpt_score_reward",
            RewardKind::Bleu => "bleu_score_reward",
            RewardKind::AnswerFormat => "answer_format_reward",
            RewardKind::Repetition => "repetitive_reward",
            RewardKind::GroundedCount => {
                "grounded_region_specific_thinking_format_reward_think_rethink"
            }
            RewardKind::ThinkFormat => "think_and_rethink_format_reward",
        }
    }
}

/// Fixed mode: which boxes do not count for the grounded reward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DegenerateGuard {
    /// Drop boxes of zero width or height (raw coordinates, or after mapping when the sample
    /// has a frame).
    pub zero_area: bool,
    /// Drop boxes covering (nearly) the whole image; needs the sample's frame and image size.
    pub whole_image: Option<DegenerateThresholds>,
}

impl Default for DegenerateGuard {
    fn default() -> Self {
        Self {
            zero_area: true,
            whole_image: Some(DegenerateThresholds::default()),
        }
    }
}

/// Which rewards, their weights, and the mode's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardConfig {
    pub mode: Mode,
    /// The rewards summed, each with its weight (official: all six, weight 1).
    pub rewards: Vec<(RewardKind, f64)>,
    /// Fixed mode: the pad id that ends the token ids (compat hard-codes 151643).
    pub pad_token_id: Option<u32>,
    /// Fixed mode: boxes that do not count (`None`: every box counts). Off by default, as the
    /// spec asks for it only "if configured".
    pub degenerate_guard: Option<DegenerateGuard>,
    /// Fixed mode: only boxes written as a list of exactly four integers (the boxes the
    /// evaluator's IoU reads) count, so that `[1,2,3,4,5]` earns no box reward. Off: the
    /// official regex's matches count.
    pub strict_boxes: bool,
    /// Fixed mode: datasets whose answers are counts (compat: only the literal `tallyqa`).
    pub counting_datasets: Vec<String>,
    /// The prompt style, used to rebuild the compat judge's question (the whole user text).
    pub prompt_style: PromptStyle,
    /// Training turns the judge score into 1 when above 0 (official); evaluation keeps it raw.
    pub binarize_judge: bool,
}

/// The pad id the official repetition reward hard-codes (Qwen2.5's `<|endoftext|>`).
pub const COMPAT_PAD_TOKEN_ID: u32 = 151_643;

impl RewardConfig {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            rewards: RewardKind::ALL.iter().map(|&k| (k, 1.0)).collect(),
            pad_token_id: Some(COMPAT_PAD_TOKEN_ID),
            degenerate_guard: None,
            strict_boxes: false,
            counting_datasets: vec!["tallyqa".to_owned()],
            prompt_style: PromptStyle::Grit,
            binarize_judge: true,
        }
    }
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self::new(Mode::default())
    }
}

/// One generated completion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Completion<'a> {
    /// Decoded with special tokens skipped, as the official trainer decodes.
    pub text: &'a str,
    /// The generated ids, possibly padded (the repetition reward cuts at the first pad).
    pub ids: Option<&'a [u32]>,
}

impl<'a> Completion<'a> {
    pub fn text(text: &'a str) -> Self {
        Self { text, ids: None }
    }
}

/// What a reward knows of the sample the completion answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub dataset: &'a str,
    /// The reference answer, as the data file has it (a string).
    pub answer: &'a str,
    /// The bare question (without prompt suffix).
    pub question: &'a str,
    /// Fixed mode's whole-image guard: how the model's boxes map to the original image.
    pub frame: Option<(BoxFrame, ImageSize)>,
}

impl<'a> Sample<'a> {
    pub fn new(dataset: &'a str, answer: &'a str, question: &'a str) -> Self {
        Self {
            dataset,
            answer,
            question,
            frame: None,
        }
    }
}

/// Every reward of one completion (unweighted), in [`RewardKind::ALL`]'s order; the accuracy
/// reward only when a judge is given (raw score, binarized if the config says so).
pub fn compute_all(
    config: &RewardConfig,
    completion: &Completion,
    sample: &Sample,
    batch_first_dataset: &str,
    judge: Option<&mut dyn Judge>,
) -> Vec<(RewardKind, Result<f64, RewardError>)> {
    let mut out = Vec::with_capacity(6);
    if let Some(judge) = judge {
        let score = answer_accuracy_reward(config, completion.text, sample, judge).map(|s| {
            if config.binarize_judge {
                binarize(s)
            } else {
                s
            }
        });
        out.push((RewardKind::AnswerAccuracy, score));
    }
    let mode = config.mode;
    out.push((
        RewardKind::Bleu,
        Ok(bleu_score_reward(mode, completion.text, sample.answer)),
    ));
    out.push((
        RewardKind::AnswerFormat,
        Ok(answer_format_reward(completion.text)),
    ));
    out.push((
        RewardKind::Repetition,
        repetitive_reward(config, completion),
    ));
    out.push((
        RewardKind::GroundedCount,
        grounded_region_specific_thinking_format_reward_think_rethink(
            config,
            completion.text,
            sample,
            batch_first_dataset,
        ),
    ));
    out.push((
        RewardKind::ThinkFormat,
        Ok(think_and_rethink_format_reward(mode, completion.text)),
    ));
    out
}

/// The weighted sum of the configured rewards; the first error wins.
pub fn total_reward(
    config: &RewardConfig,
    completion: &Completion,
    sample: &Sample,
    batch_first_dataset: &str,
    judge: Option<&mut dyn Judge>,
) -> Result<f64, RewardError> {
    let values = compute_all(config, completion, sample, batch_first_dataset, judge);
    let mut total = 0.0;
    for &(kind, weight) in &config.rewards {
        if let Some((_, value)) = values.iter().find(|(k, _)| *k == kind) {
            total += weight * value.clone()?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
