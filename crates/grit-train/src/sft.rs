//! Supervised warm start: teacher forcing on programmatic grounded traces, so that the policy
//! GRPO-GR starts from already writes `<think> … [x1,y1,x2,y2] … </think><rethink> … </rethink>
//! <answer> … </answer>` and the rewards have something to tell apart.

use burn::backend::Autodiff;
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use grit_model::{Prompt, Vlm};
use grit_run::SftMetrics;

use crate::config::SftConfig;
use crate::data::{Example, derive_seed, step_indices};
use crate::optim::{AdamW, AdamWConfig, Schedule, learning_rate};
use crate::progress::Progress;

/// A prompt and the completion tokens to learn (ending with `<|im_end|>`).
pub struct Demonstration<'a> {
    pub example: &'a Example,
    pub completion: Vec<u32>,
}

/// Trains on the demonstrations for `config.steps` steps of `config.batch` each, in a seeded
/// order; calls `log` after every step.
pub fn warm_start<B: Backend>(
    mut model: Vlm<Autodiff<B>>,
    demonstrations: &[Demonstration<'_>],
    config: &SftConfig,
    seed: u64,
    progress: &mut Progress,
    log: &mut dyn FnMut(&SftMetrics) -> anyhow::Result<()>,
) -> anyhow::Result<Vlm<Autodiff<B>>> {
    anyhow::ensure!(
        !demonstrations.is_empty(),
        "no demonstrations to warm up on"
    );
    let mut optimizer = AdamW::new(AdamWConfig::default());
    let device = model.device();
    let seed = derive_seed(seed, "sft", 0);
    progress.start("sft", 0, config.steps as u64);
    for step in 0..config.steps {
        let batch = step_indices(demonstrations.len(), config.batch, seed, step as u64);
        let sequences: Vec<Prompt> = batch
            .iter()
            .map(|&i| {
                let d = &demonstrations[i];
                d.example.prompt.extended(&d.completion)
            })
            .collect();
        let targets: Vec<usize> = batch
            .iter()
            .map(|&i| demonstrations[i].completion.len())
            .collect();
        let width = targets.iter().copied().max().unwrap_or(0);
        let mask: Vec<f32> = targets
            .iter()
            .flat_map(|&t| (0..width).map(move |j| f32::from(u8::from(j >= width - t))))
            .collect();
        let mask = Tensor::<Autodiff<B>, 2>::from_data(
            TensorData::new(mask, [batch.len(), width]),
            &device,
        );
        let tokens: usize = targets.iter().sum();
        let logp = model.target_logprobs(&sequences, &targets, 256)?;
        let loss = -(logp * mask).sum().div_scalar(tokens as f64);
        let lr = learning_rate(
            config.learning_rate,
            Schedule::Cosine,
            config.warmup_steps,
            step,
            config.steps,
        );
        let loss_value = loss.clone().into_scalar().elem::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let report;
        (model, report) = optimizer.step(model, grads, lr);
        log(&SftMetrics {
            step: step as u64 + 1,
            loss: loss_value,
            lr,
            grad_norm: report.grad_norm,
        })?;
        progress.sft_step(step as u64 + 1, loss_value);
    }
    progress.finish();
    Ok(model)
}
