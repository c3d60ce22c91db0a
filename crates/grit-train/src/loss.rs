//! The GRPO-GR loss (spec §5) and the options around it.
//!
//! Per completion token t, with A the completion's advantage and r_t the policy ratio:
//!
//! ```text
//! kl_t   = exp(ref_t − logp_t) − (ref_t − logp_t) − 1                    (k3 estimator)
//! loss_t = −(min(r_t·A, clip(r_t, 1 − ε_low, 1 + ε_high)·A) − β·kl_t)
//! ```
//!
//! Official: one update per batch, so r_t = exp(logp_t − stopgrad(logp_t)) = 1 (its gradient is
//! the policy gradient) and there is no clipping; the loss is the mean over sequences of each
//! sequence's token mean. With several updates per batch, r_t = exp(logp_t − old_t) against the
//! log-probs before the first update.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use grit_model::{Prompt, Vlm};

use crate::config::LossNormalization;

/// One sequence of a micro-batch: the prompt plus the tokens trained on.
pub struct Row<'a> {
    pub sequence: Prompt,
    pub targets: usize,
    pub advantage: f64,
    /// Per target token, before any update (`None` when `updates_per_batch` is 1).
    pub old_logprobs: Option<&'a [f32]>,
    /// Per target token, under the frozen reference (`None` when β is 0).
    pub ref_logprobs: Option<&'a [f32]>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossSettings {
    pub beta: f64,
    pub clip: Option<(f64, f64)>,
    pub normalization: LossNormalization,
    /// Sequences and target tokens in the whole optimizer step: each micro-batch's loss is
    /// scaled so that the accumulated gradient is the gradient of the step's mean.
    pub step_sequences: usize,
    pub step_tokens: usize,
    pub chunk: usize,
}

/// Sums for the step's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    /// This micro-batch's share of the step loss.
    pub loss: f64,
    pub kl_sum: f64,
    pub tokens: usize,
    /// Tokens whose ratio was clipped.
    pub clipped: usize,
}

/// The loss of one micro-batch, ready for `backward`.
pub fn grpo_loss<B: Backend>(
    policy: &Vlm<Autodiff<B>>,
    rows: &[Row<'_>],
    settings: &LossSettings,
) -> anyhow::Result<(Tensor<Autodiff<B>, 1>, LossStats)> {
    let device = policy.device();
    let batch = rows.len();
    let sequences: Vec<Prompt> = rows.iter().map(|r| r.sequence.clone()).collect();
    let targets: Vec<usize> = rows.iter().map(|r| r.targets).collect();
    let width = targets.iter().copied().max().unwrap_or(0);
    let logp = policy.target_logprobs(&sequences, &targets, settings.chunk)?;

    let mask = right_aligned(rows.iter().map(|r| vec![1.0; r.targets]), width);
    let mask = Tensor::<Autodiff<B>, 2>::from_data(TensorData::new(mask, [batch, width]), &device);
    let advantage: Vec<f32> = rows.iter().map(|r| r.advantage as f32).collect();
    let advantage =
        Tensor::<Autodiff<B>, 2>::from_data(TensorData::new(advantage, [batch, 1]), &device);
    let tensor = |values: Vec<f32>| {
        Tensor::<Autodiff<B>, 2>::from_data(TensorData::new(values, [batch, width]), &device)
    };

    let log_ratio = match rows
        .iter()
        .map(|r| r.old_logprobs)
        .collect::<Option<Vec<_>>>()
    {
        Some(old) => {
            logp.clone() - tensor(right_aligned(old.into_iter().map(<[f32]>::to_vec), width))
        }
        None => logp.clone() - logp.clone().detach(),
    };
    // Masked columns are other tokens of the prompt; zero them before exp so they stay finite.
    let ratio = (log_ratio * mask.clone()).exp();
    let (surrogate, clipped) = match settings.clip {
        None => (ratio * advantage, 0),
        Some((low, high)) => {
            let clipped_ratio = ratio.clone().clamp(1.0 - low, 1.0 + high);
            let unclipped = ratio.clone() * advantage.clone();
            let clipped = clipped_ratio * advantage;
            let is_clipped = clipped.clone().lower(unclipped.clone()).float() * mask.clone();
            let count = is_clipped.sum().into_scalar().elem::<f64>() as usize;
            (unclipped.min_pair(clipped), count)
        }
    };
    let (per_token, kl_sum) = match rows
        .iter()
        .map(|r| r.ref_logprobs)
        .collect::<Option<Vec<_>>>()
    {
        Some(reference) if settings.beta != 0.0 => {
            let reference = tensor(right_aligned(
                reference.into_iter().map(<[f32]>::to_vec),
                width,
            ));
            let diff = (reference - logp) * mask.clone();
            let kl = diff.clone().exp() - diff - 1.0;
            let kl_sum = (kl.clone() * mask.clone())
                .sum()
                .into_scalar()
                .elem::<f64>();
            (-(surrogate - kl.mul_scalar(settings.beta)), kl_sum)
        }
        _ => (-surrogate, 0.0),
    };
    let per_token = per_token * mask;
    let loss = match settings.normalization {
        LossNormalization::Sequence => {
            let lengths: Vec<f32> = targets.iter().map(|&t| t as f32).collect();
            let lengths =
                Tensor::<Autodiff<B>, 2>::from_data(TensorData::new(lengths, [batch, 1]), &device);
            (per_token.sum_dim(1) / lengths)
                .sum()
                .div_scalar(settings.step_sequences as f64)
        }
        LossNormalization::Token => per_token.sum().div_scalar(settings.step_tokens as f64),
    };
    let stats = LossStats {
        loss: loss.clone().into_scalar().elem::<f64>(),
        kl_sum,
        tokens: targets.iter().sum(),
        clipped,
    };
    Ok((loss, stats))
}

/// Log-probs of each row's targets, row by row (no padding), without gradients.
pub fn target_logprobs<B: Backend>(
    model: &Vlm<B>,
    sequences: &[Prompt],
    targets: &[usize],
    chunk: usize,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let width = targets.iter().copied().max().unwrap_or(0);
    let values: Vec<f32> = model
        .target_logprobs(sequences, targets, chunk)?
        .into_data()
        .convert::<f32>()
        .into_vec()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(targets
        .iter()
        .enumerate()
        .map(|(b, &t)| values[b * width + width - t..(b + 1) * width].to_vec())
        .collect())
}

/// Rows of different lengths laid out right-aligned in a `[rows, width]` buffer, zeros before.
fn right_aligned(rows: impl Iterator<Item = Vec<f32>>, width: usize) -> Vec<f32> {
    rows.flat_map(|row| std::iter::repeat_n(0.0, width - row.len()).chain(row))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamW, AdamWConfig};
    use burn::optim::GradientsParams;
    use grit_model::Family;
    use grit_model::backend::Cpu;
    use grit_model::qwen2::TextConfig;
    use grit_model::qwen2_5_vl::{Qwen2_5VlConfig, VisionConfig};

    type B = Autodiff<Cpu>;

    fn tiny_model() -> Vlm<B> {
        let device = Default::default();
        Cpu::seed(&device, 7);
        let text = TextConfig::new(64, 32, 64, 1, 2, 1).with_mrope_section(Some([2, 3, 3]));
        let vision = VisionConfig::new(1, 16, 2, 32, 32, vec![0]);
        Vlm::from(Qwen2_5VlConfig::new(text, vision).init::<Cpu>(&device)).trainable()
    }

    fn sequences() -> (Vec<Prompt>, Vec<usize>) {
        let prompt = |ids: &[u32]| Prompt::text(Family::Qwen2_5Vl, ids.to_vec());
        (
            vec![
                prompt(&[3, 9, 4, 17, 8, 2]),
                prompt(&[5, 1, 30, 22, 7, 7, 40, 11]),
                prompt(&[12, 60, 9]),
            ],
            vec![3, 5, 2],
        )
    }

    fn rows<'a>(
        seqs: &[Prompt],
        targets: &[usize],
        advantages: &[f64],
        old: Option<&'a [Vec<f32>]>,
        reference: Option<&'a [Vec<f32>]>,
    ) -> Vec<Row<'a>> {
        (0..seqs.len())
            .map(|i| Row {
                sequence: seqs[i].clone(),
                targets: targets[i],
                advantage: advantages[i],
                old_logprobs: old.map(|o| o[i].as_slice()),
                ref_logprobs: reference.map(|r| r[i].as_slice()),
            })
            .collect()
    }

    fn settings(
        normalization: LossNormalization,
        beta: f64,
        clip: Option<(f64, f64)>,
    ) -> LossSettings {
        LossSettings {
            beta,
            clip,
            normalization,
            step_sequences: 3,
            step_tokens: 10,
            chunk: 2,
        }
    }

    #[test]
    fn loss_and_kl_follow_the_formula_in_both_normalizations() {
        let model = tiny_model();
        let (seqs, targets) = sequences();
        let logp = target_logprobs(&model.valid(), &seqs, &targets, 2).unwrap();
        let reference: Vec<Vec<f32>> = logp
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .map(|(j, v)| v - 0.1 * (j as f32 + 1.0))
                    .collect()
            })
            .collect();
        let adv = [1.5, -0.5, 0.25];
        let beta = 0.04;
        let kl = |j: usize| {
            let d = -0.1 * (j as f64 + 1.0);
            d.exp() - d - 1.0
        };
        let per_row: Vec<f64> = targets
            .iter()
            .zip(adv)
            .map(|(&t, a)| (0..t).map(|j| -(a - beta * kl(j))).sum())
            .collect();
        let expected_seq = per_row
            .iter()
            .zip(&targets)
            .map(|(s, &t)| s / t as f64)
            .sum::<f64>()
            / 3.0;
        let expected_tok = per_row.iter().sum::<f64>() / 10.0;
        let expected_kl: f64 = targets.iter().map(|&t| (0..t).map(kl).sum::<f64>()).sum();
        for (normalization, expected) in [
            (LossNormalization::Sequence, expected_seq),
            (LossNormalization::Token, expected_tok),
        ] {
            let rows = rows(&seqs, &targets, &adv, None, Some(&reference));
            let (loss, stats) =
                grpo_loss(&model, &rows, &settings(normalization, beta, None)).unwrap();
            let value = loss.into_scalar().elem::<f64>();
            assert!(
                (value - expected).abs() < 1e-5,
                "{normalization:?}: {value} vs {expected}"
            );
            assert!(
                (stats.kl_sum - expected_kl).abs() < 1e-4,
                "{} vs {expected_kl}",
                stats.kl_sum
            );
            assert_eq!(stats.tokens, 10);
        }
    }

    #[test]
    fn clipping_binds_only_where_it_lowers_the_objective() {
        let model = tiny_model();
        let (seqs, targets) = sequences();
        let logp = target_logprobs(&model.valid(), &seqs, &targets, 2).unwrap();
        // ratio = e^-0.3 ≈ 0.741 everywhere; clip range [0.8, 1.2].
        let old: Vec<Vec<f32>> = logp
            .iter()
            .map(|r| r.iter().map(|v| v + 0.3).collect())
            .collect();
        let adv = [1.0, -2.0, 0.5];
        let rows = rows(&seqs, &targets, &adv, Some(&old), None);
        let settings = settings(LossNormalization::Sequence, 0.0, Some((0.2, 0.2)));
        let (loss, stats) = grpo_loss(&model, &rows, &settings).unwrap();
        let ratio = (-0.3f64).exp();
        // A > 0: min(r·A, 0.8·A) = r·A; A < 0: min(r·A, 0.8·A) = 0.8·A (clipped).
        let expected = -(ratio * 1.0 + 0.8 * -2.0 + ratio * 0.5) / 3.0;
        let value = loss.into_scalar().elem::<f64>();
        assert!((value - expected).abs() < 1e-4, "{value} vs {expected}");
        assert_eq!(stats.clipped, 5);
    }

    #[test]
    fn the_policy_gradient_moves_toward_the_advantage() {
        let (seqs, targets) = sequences();
        for advantage in [1.0, -1.0] {
            let model = tiny_model();
            let before: f32 = target_logprobs(&model.valid(), &seqs[..1], &targets[..1], 2)
                .unwrap()[0]
                .iter()
                .sum();
            let rows = rows(&seqs[..1], &targets[..1], &[advantage], None, None);
            let mut s = settings(LossNormalization::Sequence, 0.0, None);
            s.step_sequences = 1;
            let (loss, _) = grpo_loss(&model, &rows, &s).unwrap();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let mut adamw = AdamW::new(AdamWConfig::default());
            let (model, _) = adamw.step(model, grads, 1e-2);
            let after: f32 = target_logprobs(&model.valid(), &seqs[..1], &targets[..1], 2).unwrap()
                [0]
            .iter()
            .sum();
            assert!(
                (after - before) * advantage as f32 > 0.05,
                "A = {advantage}: {before} → {after}"
            );
        }
    }
}
