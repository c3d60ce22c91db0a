//! The GRPO-GR loop. Each step:
//!
//! 1. take the step's prompts (a seeded order, recomputable on resume);
//! 2. sample G completions per prompt with the current policy;
//! 3. score them (format, grounding and count, judge, BLEU, repetition) and turn the totals into
//!    group-relative advantages;
//! 4. compute the reference's (and, for several updates, the old policy's) log-probs;
//! 5. accumulate the loss's gradients over micro-batches, clip, and take an AdamW step;
//! 6. log the step and its rollouts, evaluate and checkpoint when due.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::backend::Autodiff;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::Backend;
use grit_data::metrics::GroundingConfig;
use grit_data::rewards::{Judge, RewardConfig, RewardKind};
use grit_model::Vlm;
use grit_model::generate::{FinishReason, GenerationConfig, Sampling};
use grit_model::processor::Processor;
use grit_run::{
    JsonlWriter, RolloutRow, RunDir, StepMetrics, TrainerState, copy_tokenizer_files, write_atomic,
};

use crate::config::RunConfig;
use crate::data::{Example, derive_seed, for_pass, step_indices};
use crate::evaluate::{EvalSettings, evaluate};
use crate::loss::{LossSettings, LossStats, Row, grpo_loss, target_logprobs};
use crate::optim::{AdamW, learning_rate};
use crate::progress::Progress;
use crate::rollout::{self, Rollout, Scored, advantages, boxes};

const TRAINER_STATE: &str = "trainer_state.json";
const OPTIMIZER_STATE: &str = "optimizer.safetensors";

/// Everything the loop reads.
pub struct Setup<'a> {
    pub config: &'a RunConfig,
    pub run: &'a RunDir,
    /// Where the initial policy was loaded from (also its tokenizer files).
    pub initial_model: &'a Path,
    pub processor: &'a Processor,
    pub train: &'a [Example],
    pub heldout: &'a [Example],
    pub rewards: &'a RewardConfig,
}

/// Trains from `initial_model`, or from the newest checkpoint of the run when `resume`.
pub fn train<B: Backend>(
    setup: &Setup<'_>,
    judge: &mut dyn Judge,
    device: &B::Device,
    resume: bool,
    progress: &mut Progress,
) -> anyhow::Result<PathBuf> {
    let grpo = &setup.config.grpo;
    anyhow::ensure!(grpo.group_size >= 2, "[grpo] group_size must be at least 2");
    anyhow::ensure!(!setup.train.is_empty(), "no training examples");
    let (policy, mut optimizer, start) = match resume_point(setup.run, resume)? {
        Some((step, dir)) => {
            progress.note(&format!(
                "resuming after step {step} from {}",
                dir.display()
            ));
            let policy = Vlm::<B>::load(&dir, device)?;
            let state = dir.join(OPTIMIZER_STATE);
            let optimizer = AdamW::load(grpo.optimizer.clone(), &state)?;
            optimizer.check_against(&policy, &state)?;
            (policy, optimizer, step)
        }
        None => (
            Vlm::<B>::load(setup.initial_model, device)
                .with_context(|| format!("loading {}", setup.initial_model.display()))?,
            AdamW::new(grpo.optimizer.clone()),
            0,
        ),
    };
    setup.run.truncate_logs(start)?;
    let reference = (grpo.beta != 0.0)
        .then(|| Vlm::<B>::load(setup.initial_model, device))
        .transpose()?;
    let mut policy = policy.trainable();
    if grpo.freeze_vision {
        policy = policy.freeze_vision();
    }

    let mut metrics_log = JsonlWriter::append_to(&setup.run.metrics())?;
    let mut rollout_log = JsonlWriter::append_to(&setup.run.rollouts())?;
    progress.start_steps(start, grpo.steps as u64);
    for step in start + 1..=grpo.steps as u64 {
        let started = Instant::now();
        let examples: Vec<&Example> = step_indices(
            setup.train.len(),
            grpo.prompts_per_step,
            setup.config.seed,
            step - 1,
        )
        .into_iter()
        .map(|i| &setup.train[i])
        .collect();

        let style = setup.config.grpo.prompt;
        let seed = |pass| derive_seed(setup.config.seed, pass, step);
        let generated_from = for_pass(&examples, setup.processor, style, seed("rollout-images"))?;
        let generated_from: Vec<&Example> = generated_from.iter().map(AsRef::as_ref).collect();
        let rollouts = rollout::sample(
            &policy.valid(),
            setup.processor,
            &generated_from,
            grpo.group_size,
            grpo.rollout_batch,
            &generation(setup, derive_seed(setup.config.seed, "rollout", step)),
            setup.rewards.mode,
        )?;
        let scored = rollout::score(&rollouts, &examples, setup.rewards, judge);
        let totals: Vec<f64> = scored.iter().map(|s| s.total).collect();
        let (advantage, zero_variance) = advantages(&totals, grpo.group_size);
        let rollout_seconds = started.elapsed().as_secs_f64();

        let trained: Vec<bool> = (0..examples.len())
            .map(|g| {
                let failed = scored[g * grpo.group_size..(g + 1) * grpo.group_size]
                    .iter()
                    .any(|s| s.failed);
                let skipped = grpo.skip_zero_variance_groups && zero_variance[g];
                !failed && !skipped
            })
            .collect();
        let lr = learning_rate(
            grpo.learning_rate,
            grpo.schedule,
            grpo.warmup_steps,
            (step - 1) as usize,
            grpo.steps,
        );
        let update_started = Instant::now();
        let trained_on = for_pass(&examples, setup.processor, style, seed("loss-images"))?;
        let trained_on: Vec<&Example> = trained_on.iter().map(AsRef::as_ref).collect();
        let (next, update) = optimize(
            policy,
            &mut optimizer,
            reference.as_ref(),
            &trained_on,
            &rollouts,
            &advantage,
            &trained,
            setup.config,
            lr,
        )?;
        policy = next;
        let update_seconds = update_started.elapsed().as_secs_f64();

        for row in rollout_rows(
            step,
            &examples,
            &rollouts,
            &scored,
            &advantage,
            &setup.run.root,
        ) {
            rollout_log.write(&row)?;
        }
        let mut metrics = step_metrics(step, &rollouts, &scored, &zero_variance, &trained, &update);
        metrics.lr = lr;
        metrics.rollout_seconds = rollout_seconds;
        metrics.update_seconds = update_seconds;
        let eval_every = setup.config.eval.every as u64;
        if eval_every > 0 && step % eval_every == 0 && !setup.heldout.is_empty() {
            let summary = run_eval(
                setup,
                &policy.valid(),
                judge,
                &format!("step-{step:06}"),
                progress,
            )?;
            metrics.eval = Some(summary.overall);
        }
        metrics.seconds = started.elapsed().as_secs_f64();
        metrics_log.write(&metrics)?;
        progress.step(step, &metrics);

        let every = setup.config.checkpoint.every as u64;
        if step == grpo.steps as u64 || (every > 0 && step % every == 0) {
            save_checkpoint(setup, &policy.valid(), &optimizer, step)?;
        }
    }
    Ok(setup.run.checkpoint(grpo.steps as u64))
}

/// The newest checkpoint, when resuming.
fn resume_point(run: &RunDir, resume: bool) -> anyhow::Result<Option<(u64, PathBuf)>> {
    Ok(if resume {
        run.list_checkpoints()?.pop()
    } else {
        None
    })
}

fn generation(setup: &Setup<'_>, seed: u64) -> GenerationConfig {
    let grpo = &setup.config.grpo;
    let sampling = Sampling {
        temperature: grpo.temperature,
        top_k: grpo.top_k,
        top_p: grpo.top_p,
        seed,
    };
    setup
        .processor
        .generation(grpo.max_new_tokens, sampling, grpo.prompt)
}

/// Sums over a step's update(s).
#[derive(Debug, Clone, Copy, Default)]
struct UpdateReport {
    loss: f64,
    kl_sum: f64,
    tokens: usize,
    clipped: usize,
    grad_norm: f64,
}

/// Steps 4–5: reference and old log-probs, then `updates_per_batch` optimizer steps.
#[allow(clippy::too_many_arguments)]
fn optimize<B: Backend>(
    mut policy: Vlm<Autodiff<B>>,
    optimizer: &mut AdamW,
    reference: Option<&Vlm<B>>,
    examples: &[&Example],
    rollouts: &[Rollout],
    advantage: &[f64],
    trained: &[bool],
    config: &RunConfig,
    lr: f64,
) -> anyhow::Result<(Vlm<Autodiff<B>>, UpdateReport)> {
    let grpo = &config.grpo;
    let chosen: Vec<usize> = (0..rollouts.len())
        .filter(|&i| trained[rollouts[i].group])
        .collect();
    let mut report = UpdateReport::default();
    if chosen.is_empty() {
        return Ok((policy, report));
    }
    let sequence = |i: usize| {
        examples[rollouts[i].group]
            .prompt
            .extended(&rollouts[i].train_tokens)
    };
    let lengths: Vec<usize> = chosen
        .iter()
        .map(|&i| examples[rollouts[i].group].prompt.ids().len() + rollouts[i].train_tokens.len())
        .collect();
    let passes = micro_batches(&lengths, grpo.micro_batch, grpo.micro_batch_tokens);
    let logprobs_of = |model: &Vlm<B>| -> anyhow::Result<Vec<Vec<f32>>> {
        let mut all = Vec::with_capacity(chosen.len());
        for pass in &passes {
            let batch = &chosen[pass.clone()];
            let sequences: Vec<_> = batch.iter().map(|&i| sequence(i)).collect();
            let targets: Vec<usize> = batch
                .iter()
                .map(|&i| rollouts[i].train_tokens.len())
                .collect();
            all.extend(target_logprobs(
                model,
                &sequences,
                &targets,
                grpo.logprob_chunk,
            )?);
        }
        Ok(all)
    };
    let reference_logprobs = reference.map(logprobs_of).transpose()?;
    let old_logprobs = (grpo.updates_per_batch > 1)
        .then(|| logprobs_of(&policy.valid()))
        .transpose()?;
    let settings = LossSettings {
        beta: grpo.beta,
        clip: match (grpo.clip_eps_low, grpo.clip_eps_high) {
            (None, None) => None,
            (low, high) => Some((low.or(high).unwrap_or(0.2), high.or(low).unwrap_or(0.2))),
        },
        normalization: grpo.loss_normalization,
        step_sequences: chosen.len(),
        step_tokens: chosen.iter().map(|&i| rollouts[i].train_tokens.len()).sum(),
        chunk: grpo.logprob_chunk,
    };
    let updates = grpo.updates_per_batch.max(1);
    for _ in 0..updates {
        let mut accumulator = GradientsAccumulator::<Vlm<Autodiff<B>>>::new();
        let mut sums = LossStats::default();
        for pass in &passes {
            let rows: Vec<Row<'_>> = chosen[pass.clone()]
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let at = pass.start + k;
                    Row {
                        sequence: sequence(i),
                        targets: rollouts[i].train_tokens.len(),
                        advantage: advantage[i],
                        old_logprobs: old_logprobs.as_ref().map(|o| o[at].as_slice()),
                        ref_logprobs: reference_logprobs.as_ref().map(|r| r[at].as_slice()),
                    }
                })
                .collect();
            let (loss, stats) = grpo_loss(&policy, &rows, &settings)?;
            let grads = GradientsParams::from_grads(loss.backward(), &policy);
            accumulator.accumulate(&policy, grads);
            sums.loss += stats.loss;
            sums.kl_sum += stats.kl_sum;
            sums.tokens += stats.tokens;
            sums.clipped += stats.clipped;
        }
        let step;
        (policy, step) = optimizer.step(policy, accumulator.grads(), lr);
        report.loss += sums.loss / updates as f64;
        report.kl_sum += sums.kl_sum / updates as f64;
        report.tokens = sums.tokens;
        report.clipped += sums.clipped;
        report.grad_norm += step.grad_norm / updates as f64;
    }
    report.clipped /= updates;
    Ok((policy, report))
}

/// Consecutive micro-batches of sequences of `lengths`: at most `max_sequences` each and, with
/// `max_tokens`, at most that many tokens once padded to the longest; a sequence longer than
/// the budget goes alone.
fn micro_batches(
    lengths: &[usize],
    max_sequences: usize,
    max_tokens: Option<usize>,
) -> Vec<std::ops::Range<usize>> {
    let mut passes = Vec::new();
    let (mut start, mut longest) = (0, 0);
    for (i, &len) in lengths.iter().enumerate() {
        let rows = i - start + 1;
        let padded = rows * longest.max(len);
        let full = rows > max_sequences.max(1) || max_tokens.is_some_and(|cap| padded > cap);
        if full && i > start {
            passes.push(start..i);
            (start, longest) = (i, 0);
        }
        longest = longest.max(len);
    }
    if start < lengths.len() {
        passes.push(start..lengths.len());
    }
    passes
}

fn rollout_rows(
    step: u64,
    examples: &[&Example],
    rollouts: &[Rollout],
    scored: &[Scored],
    advantage: &[f64],
    run_root: &Path,
) -> Vec<RolloutRow> {
    let group_size = rollouts.len() / examples.len().max(1);
    rollouts
        .iter()
        .zip(scored)
        .enumerate()
        .map(|(i, (r, s))| {
            let e = examples[r.group];
            let mut rewards = BTreeMap::new();
            let mut reward_errors = BTreeMap::new();
            for (kind, value) in &s.values {
                let name = kind.official_name().to_owned();
                match value {
                    Ok(v) => {
                        rewards.insert(name, Some(*v));
                    }
                    Err(err) => {
                        rewards.insert(name.clone(), None);
                        reward_errors.insert(name, err.to_string());
                    }
                }
            }
            RolloutRow {
                step,
                group: r.group,
                index: i % group_size.max(1),
                image: grit_run::relative_to(&e.record.image_path, run_root),
                source: format!(
                    "{}:{}",
                    grit_run::relative_to(&e.record.at.file, run_root).display(),
                    e.record.at.line
                ),
                dataset: e.record.sample.dataset.clone(),
                question: e.record.sample.question.clone(),
                answer: e.record.sample.answer.clone(),
                gt_boxes: e.record.sample.gt_boxes().to_vec(),
                completion: r.text.clone(),
                tokens: r.generated.len(),
                finish_reason: r.finish,
                rewards,
                reward_errors,
                total_reward: s.total,
                advantage: advantage[i],
                boxes: boxes(&r.text, e),
                original_size: e.original,
                processed_size: e.processed,
            }
        })
        .collect()
}

fn step_metrics(
    step: u64,
    rollouts: &[Rollout],
    scored: &[Scored],
    zero_variance: &[bool],
    trained: &[bool],
    update: &UpdateReport,
) -> StepMetrics {
    let n = rollouts.len().max(1) as f64;
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut reward_errors = 0;
    for s in scored {
        for (kind, value) in &s.values {
            match value {
                Ok(v) => {
                    let e = sums.entry(kind.official_name().to_owned()).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
                Err(_) => reward_errors += 1,
            }
        }
    }
    let accuracy_name = RewardKind::AnswerAccuracy.official_name();
    StepMetrics {
        step,
        accuracy: sums.get(accuracy_name).map(|(s, c)| s / *c as f64),
        rewards: sums
            .into_iter()
            .map(|(k, (s, c))| (k, s / c as f64))
            .collect(),
        reward_errors,
        total_reward: scored.iter().map(|s| s.total).sum::<f64>() / n,
        kl: if update.tokens > 0 {
            update.kl_sum / update.tokens as f64
        } else {
            0.0
        },
        loss: update.loss,
        grad_norm: update.grad_norm,
        completion_length: rollouts.iter().map(|r| r.generated.len()).sum::<usize>() as f64 / n,
        truncated_share: rollouts
            .iter()
            .filter(|r| r.finish == FinishReason::Length)
            .count() as f64
            / n,
        zero_variance_share: zero_variance.iter().filter(|&&z| z).count() as f64
            / zero_variance.len().max(1) as f64,
        skipped_groups: trained.iter().filter(|&&t| !t).count(),
        clip_fraction: if update.tokens > 0 {
            update.clipped as f64 / update.tokens as f64
        } else {
            0.0
        },
        ..StepMetrics::default()
    }
}

/// Evaluates `model` on the held-out examples into `eval/<name>/`.
pub fn run_eval<B: Backend>(
    setup: &Setup<'_>,
    model: &Vlm<B>,
    judge: &mut dyn Judge,
    name: &str,
    progress: &mut Progress,
) -> anyhow::Result<grit_data::metrics::MetricsSummary> {
    let mut rewards = setup.rewards.clone();
    // Evaluation reports the judge's raw score (spec §7).
    rewards.binarize_judge = false;
    let eval = &setup.config.eval;
    let examples = if eval.limit > 0 {
        &setup.heldout[..eval.limit.min(setup.heldout.len())]
    } else {
        setup.heldout
    };
    let settings = EvalSettings {
        max_new_tokens: eval.max_new_tokens,
        style: setup.config.grpo.prompt,
        batch: eval.batch,
        grounding: GroundingConfig::default(),
        paths_relative_to: Some(setup.run.root.clone()),
    };
    let total = examples.len();
    let mut on_batch = |done: usize| progress.eval(name, done, total);
    evaluate(
        model,
        setup.processor,
        examples,
        judge,
        &rewards,
        &settings,
        &setup.run.eval(name),
        &mut on_batch,
    )
}

/// Writes the policy as an HF directory with the optimizer and trainer state, atomically.
fn save_checkpoint<B: Backend>(
    setup: &Setup<'_>,
    policy: &Vlm<B>,
    optimizer: &AdamW,
    step: u64,
) -> anyhow::Result<()> {
    let staging = setup.run.stage_checkpoint(step)?;
    policy.save(&staging, setup.config.checkpoint.dtype)?;
    copy_tokenizer_files(setup.initial_model, &staging)?;
    setup.processor.write_files(&staging)?;
    optimizer.save(&staging.join(OPTIMIZER_STATE))?;
    let state = TrainerState {
        step,
        initial_model: setup.initial_model.to_owned(),
    };
    write_atomic(
        &staging.join(TRAINER_STATE),
        serde_json::to_string_pretty(&state)?.as_bytes(),
    )?;
    setup
        .run
        .commit_checkpoint(&staging, step, setup.config.checkpoint.keep)
}

#[cfg(test)]
mod tests {
    use super::micro_batches;

    #[test]
    fn micro_batches_keep_to_the_sequence_and_token_budgets() {
        let lengths = [100, 300, 200, 1000, 50, 50, 50];
        assert_eq!(micro_batches(&lengths, 3, None), [0..3, 3..6, 6..7]);
        // 600 padded tokens: 100 and 300 pad to 600; 200 alone would make 900.
        assert_eq!(
            micro_batches(&lengths, 8, Some(600)),
            [0..2, 2..3, 3..4, 4..7]
        );
        assert_eq!(micro_batches(&lengths, 1, Some(10_000)).len(), 7);
        assert!(micro_batches(&[], 4, Some(100)).is_empty());
    }
}
