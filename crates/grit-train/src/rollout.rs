//! Rollouts: G sampled completions per prompt, their rewards, and group-relative advantages.

use std::collections::{HashMap, VecDeque};

use burn::tensor::backend::Backend;
use grit_data::completion::{DegenerateThresholds, ParsedCompletion};
use grit_data::prompt::ChatTokenizer;
use grit_data::rewards::{
    self, Judge, JudgeQuery, Mode, RewardConfig, RewardError, RewardKind, judge::judge_query,
};
use grit_model::generate::{FinishReason, GenerationConfig, Sampling, generate};
use grit_model::processor::Processor;
use grit_model::{Prompt, Vlm};
use grit_run::RolloutBox;

use crate::data::Example;

/// One sampled completion.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Index into the step's prompts.
    pub group: usize,
    pub generated: Vec<u32>,
    pub finish: FinishReason,
    /// Decoded without special tokens, as the official trainer decodes for the rewards.
    pub text: String,
    /// The tokens the loss is computed on: the generated ones up to the first end token, then
    /// `<|im_end|>` (spec §5: the official trainer appends it and trains on it).
    pub train_tokens: Vec<u32>,
}

/// Samples `group_size` completions for each example, `batch` sequences per generate call.
pub fn sample<B: Backend>(
    model: &Vlm<B>,
    processor: &Processor,
    examples: &[&Example],
    group_size: usize,
    batch: usize,
    generation: &GenerationConfig,
    mode: Mode,
) -> anyhow::Result<Vec<Rollout>> {
    let jobs: Vec<(usize, &Prompt)> = examples
        .iter()
        .enumerate()
        .flat_map(|(g, e)| std::iter::repeat_n((g, &e.prompt), group_size))
        .collect();
    let detokenize = |ids: &[u32]| processor.detokenize(ids);
    let im_end = im_end_id(&processor.tokenizer);
    let mut rollouts = Vec::with_capacity(jobs.len());
    for (chunk_index, chunk) in jobs.chunks(batch.max(1)).enumerate() {
        let prompts: Vec<Prompt> = chunk.iter().map(|(_, p)| (*p).clone()).collect();
        let config = GenerationConfig {
            sampling: Sampling {
                seed: generation.sampling.seed.wrapping_add(chunk_index as u64),
                ..generation.sampling.clone()
            },
            ..generation.clone()
        };
        let completions = generate(model, &prompts, &config, Some(&detokenize), None)?;
        for ((group, _), completion) in chunk.iter().zip(completions) {
            let text = processor.detokenize(&completion.tokens)?;
            let train_tokens = train_tokens(
                &completion.tokens,
                completion.finish,
                &generation.eos_token_ids,
                im_end,
                generation.max_new_tokens,
                mode,
            );
            rollouts.push(Rollout {
                group: *group,
                generated: completion.tokens,
                finish: completion.finish,
                text,
                train_tokens,
            });
        }
    }
    Ok(rollouts)
}

/// `<|im_end|>`, which ends an assistant turn in the chat template.
pub fn im_end_id(tokenizer: &ChatTokenizer) -> u32 {
    tokenizer
        .tokenizer()
        .token_to_id("<|im_end|>")
        .unwrap_or(tokenizer.eos_token_ids()[0])
}

/// The generated tokens up to (not including) the first end token, then `<|im_end|>`. Compat
/// appends it as the official trainer does, wherever the kept tokens are shorter than the
/// length limit (so not to a completion that ran to the limit, whatever stopped it); fixed mode
/// wherever the completion ended, and never to a truncated one: it did not end, so the loss
/// should not teach it to.
fn train_tokens(
    generated: &[u32],
    finish: FinishReason,
    eos: &[u32],
    im_end: u32,
    max_new_tokens: usize,
    mode: Mode,
) -> Vec<u32> {
    let end = generated
        .iter()
        .position(|t| eos.contains(t))
        .unwrap_or(generated.len());
    let mut tokens = generated[..end].to_vec();
    let ends = match mode {
        Mode::Compat => end < max_new_tokens,
        Mode::Fixed => finish != FinishReason::Length,
    };
    if ends || tokens.is_empty() {
        // An empty completion still needs one target for its log-prob.
        tokens.push(im_end);
    }
    tokens
}

/// A judge whose answers were fetched beforehand in one concurrent batch, handed out in the
/// order they were asked: a question asked twice gets its two answers (compat asks once per
/// completion; fixed mode's judge answers repeats alike).
struct Answered(HashMap<JudgeQuery, VecDeque<Result<f64, RewardError>>>);

impl Judge for Answered {
    fn judge(&mut self, query: &JudgeQuery) -> Result<f64, RewardError> {
        self.0
            .get_mut(query)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| Err(RewardError::Judge("query was not prepared".into())))
    }
}

/// Each reward of one completion and their weighted total.
#[derive(Debug, Clone)]
pub struct Scored {
    pub values: Vec<(RewardKind, Result<f64, RewardError>)>,
    pub total: f64,
    /// A reward failed where the mode does not allow a silent 0 (fixed mode): the group is left
    /// out of the loss.
    pub failed: bool,
}

/// Scores every rollout: the judge answers all distinct questions in one batch first.
pub fn score(
    rollouts: &[Rollout],
    examples: &[&Example],
    config: &RewardConfig,
    judge: &mut dyn Judge,
) -> Vec<Scored> {
    let uses_judge = config
        .rewards
        .iter()
        .any(|(k, _)| *k == RewardKind::AnswerAccuracy);
    let sample = |r: &Rollout| {
        let e = examples[r.group];
        let mut s = rewards::Sample::new(
            &e.record.sample.dataset,
            &e.record.sample.answer,
            &e.record.sample.question,
        );
        s.frame = Some((e.frame, e.original));
        s
    };
    let mut answered = Answered(HashMap::new());
    if uses_judge {
        let queries: Vec<JudgeQuery> = rollouts
            .iter()
            .filter_map(|r| judge_query(config, &r.text, &sample(r)))
            .collect();
        let results = judge.judge_batch(&queries);
        for (query, result) in queries.into_iter().zip(results) {
            answered.0.entry(query).or_default().push_back(result);
        }
    }
    rollouts
        .iter()
        .map(|r| {
            // The official reward function sees the training tokens, padded after them.
            let ids = match config.mode {
                Mode::Compat => &r.train_tokens,
                Mode::Fixed => &r.generated,
            };
            let completion = rewards::Completion {
                text: &r.text,
                ids: Some(ids),
            };
            let judge: Option<&mut dyn Judge> = uses_judge.then_some(&mut answered as _);
            // The official count test reads the first sample of its per-device batch, which is
            // one prompt's group: each group's own dataset.
            let sample = sample(r);
            let values = rewards::compute_all(config, &completion, &sample, sample.dataset, judge);
            let mut total = 0.0;
            let mut failed = false;
            for &(kind, weight) in &config.rewards {
                match values.iter().find(|(k, _)| *k == kind).map(|(_, v)| v) {
                    Some(Ok(v)) => total += weight * v,
                    // Compat: the official code would have crashed; count it as 0 and log it.
                    Some(Err(_)) => failed |= config.mode == Mode::Fixed,
                    None => {}
                }
            }
            Scored {
                values,
                total,
                failed,
            }
        })
        .collect()
}

/// A_i = (R_i − mean) / (std + 1e-4) within each group of `group_size` consecutive rollouts,
/// std unbiased (n − 1), as the official trainer computes it. Also returns whether each group's
/// rewards were all equal.
pub fn advantages(totals: &[f64], group_size: usize) -> (Vec<f64>, Vec<bool>) {
    let mut advantages = Vec::with_capacity(totals.len());
    let mut zero_variance = Vec::new();
    for group in totals.chunks(group_size) {
        let n = group.len() as f64;
        let mean = group.iter().sum::<f64>() / n;
        let var = group.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let std = var.sqrt();
        advantages.extend(group.iter().map(|r| (r - mean) / (std + 1e-4)));
        zero_variance.push(group.iter().all(|&r| r == group[0]));
    }
    (advantages, zero_variance)
}

/// Structured boxes of a completion, mapped from the model's frame to original pixels.
pub fn boxes(text: &str, example: &Example) -> Vec<RolloutBox> {
    let parsed = ParsedCompletion::parse(text);
    let thresholds = DegenerateThresholds::default();
    parsed
        .boxes
        .iter()
        .map(|b| RolloutBox {
            region: b.region,
            label: b.label.clone(),
            pixels: example
                .frame
                .to_pixels(b.coords, example.original, &thresholds),
            span: [b.span.start, b.span.end],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_follow_the_official_formula() {
        let (a, zero) = advantages(&[1.0, 2.0, 3.0, 2.0, 0.5, 0.5, 0.5, 0.5], 4);
        // mean 2, unbiased std sqrt(2/3)
        let s = (2.0f64 / 3.0).sqrt() + 1e-4;
        assert!((a[0] + 1.0 / s).abs() < 1e-12);
        assert!((a[2] - 1.0 / s).abs() < 1e-12);
        assert_eq!(a[1], 0.0);
        assert_eq!(&a[4..], &[0.0; 4]);
        assert_eq!(zero, vec![false, true]);
    }

    #[test]
    fn training_tokens_end_with_one_im_end() {
        let (eos, im_end) = (vec![9, 8], 9);
        let t = |g: &[u32], f, m| train_tokens(g, f, &eos, im_end, 3, m);
        for mode in [Mode::Fixed, Mode::Compat] {
            assert_eq!(t(&[1, 2, 9], FinishReason::Eos, mode), vec![1, 2, 9]);
            // `<|endoftext|>` is replaced.
            assert_eq!(t(&[1, 2, 8], FinishReason::Eos, mode), vec![1, 2, 9]);
            assert_eq!(t(&[1, 2], FinishReason::StopString, mode), vec![1, 2, 9]);
            assert_eq!(t(&[], FinishReason::Eos, mode), vec![9]);
        }
        // Truncated: neither mode appends (official: only below the length limit).
        assert_eq!(
            t(&[1, 2, 3], FinishReason::Length, Mode::Compat),
            vec![1, 2, 3]
        );
        assert_eq!(
            t(&[1, 2, 3], FinishReason::Length, Mode::Fixed),
            vec![1, 2, 3]
        );
        // A stop string on the last allowed token: compat appends only below the limit.
        assert_eq!(
            t(&[1, 2, 3], FinishReason::StopString, Mode::Compat),
            vec![1, 2, 3]
        );
        assert_eq!(
            t(&[1, 2, 3], FinishReason::StopString, Mode::Fixed),
            vec![1, 2, 3, 9]
        );
    }

    fn example(dataset: &str, answer: &str) -> Example {
        use grit_data::completion::ImageSize;
        let size = ImageSize {
            width: 640,
            height: 480,
        };
        Example {
            record: grit_data::dataset::Record {
                sample: grit_data::dataset::Sample {
                    question: "How many cats are there?".into(),
                    answer: answer.into(),
                    image: "1.jpg".into(),
                    dataset: dataset.into(),
                    bboxs: None,
                    width: None,
                    height: None,
                },
                at: grit_data::dataset::Location {
                    file: "train.jsonl".into(),
                    line: 1,
                },
                image_path: "1.jpg".into(),
            },
            prompt: Prompt::Qwen2_5Vl(grit_model::composition::Prompt {
                ids: vec![1],
                images: Vec::new(),
            }),
            original: size,
            processed: size,
            frame: grit_data::completion::BoxFrame::ProcessedPixels { processed: size },
            image: None,
        }
    }

    fn rollout(group: usize, text: &str) -> Rollout {
        let tokens: Vec<u32> = (1..=text.split_whitespace().count() as u32).collect();
        Rollout {
            group,
            generated: tokens.clone(),
            finish: FinishReason::StopString,
            text: text.into(),
            train_tokens: tokens,
        }
    }

    /// Counts what it is asked and answers 1.
    struct Counting(usize);

    impl Judge for Counting {
        fn judge(&mut self, _: &JudgeQuery) -> Result<f64, RewardError> {
            self.0 += 1;
            Ok(1.0)
        }
    }

    #[test]
    fn a_mixed_step_scores_each_group_as_grit_rewards_does() {
        let two_boxes = "<think> a cat [1,2,30,40] and a cat [50,60,70,80] </think> \
            <rethink> two cats </rethink> <answer> 2 </answer>";
        let one_box = "<think> the cat [1,2,30,40] is left of the dog </think> \
            <rethink> yes </rethink> <answer> yes </answer>";
        let tallyqa = example("tallyqa", "2");
        let vsr = example("vsr", "yes");
        let mut config = RewardConfig::new(Mode::Compat);
        config
            .rewards
            .retain(|(k, _)| *k != RewardKind::AnswerAccuracy);
        // TallyQA's group first, then VSR's first.
        for order in [[&tallyqa, &vsr], [&vsr, &tallyqa]] {
            let is_tallyqa = |g: usize| order[g].record.sample.dataset == "tallyqa";
            let rollouts: Vec<Rollout> = [0, 0, 1, 1]
                .map(|g| rollout(g, if is_tallyqa(g) { two_boxes } else { one_box }))
                .to_vec();
            let scored = score(&rollouts, &order, &config, &mut Counting(0));
            for (r, scored) in rollouts.iter().zip(&scored) {
                let sample = &order[r.group].record.sample;
                let row = grit_cli::rewards_cmd::AuditRow {
                    completion: r.text.clone(),
                    answer: sample.answer.clone(),
                    dataset: sample.dataset.clone(),
                    question: sample.question.clone(),
                    completion_ids: Some(r.train_tokens.clone()),
                    judge_reply: None,
                    batch_dataset: None,
                };
                let audit = grit_cli::rewards_cmd::audit_row(&config, 1, &row);
                for (kind, value) in &scored.values {
                    let expected = &audit[kind.official_name()];
                    match value {
                        Ok(v) => assert_eq!(expected.as_f64(), Some(*v), "{kind:?} of {sample:?}"),
                        Err(e) => assert_eq!(expected["error"], e.to_string()),
                    }
                }
            }
            // Every row has its box reward; TallyQA's two boxes for "2" add the count bonus.
            let value = |dataset_is_tallyqa: bool| {
                let i = (0..4).find(|&i| is_tallyqa(rollouts[i].group) == dataset_is_tallyqa);
                scored_value(&scored[i.unwrap()])
            };
            assert_eq!((value(true), value(false)), (1.5, 0.5));
        }
    }

    fn scored_value(scored: &Scored) -> f64 {
        let grounded = scored
            .values
            .iter()
            .find(|(k, _)| *k == RewardKind::GroundedCount);
        grounded.and_then(|(_, v)| v.clone().ok()).unwrap_or(0.0)
    }

    #[test]
    fn compat_asks_the_judge_once_per_completion() {
        let text =
            "<think> a cat [1,2,30,40] </think> <rethink> one </rethink> <answer> 1 </answer>";
        let tallyqa = example("tallyqa", "1");
        let ovd = example("ovd_position", "the cat");
        let rollouts = vec![
            rollout(0, text),
            rollout(0, text),
            rollout(1, text),
            rollout(1, text),
        ];
        let examples = [&tallyqa, &ovd];
        let mut asked = Counting(0);
        let scored = score(
            &rollouts,
            &examples,
            &RewardConfig::new(Mode::Compat),
            &mut asked,
        );
        // Two identical TallyQA answers are asked twice; OVD rows are not judged.
        assert_eq!(asked.0, 2);
        let accuracy = |s: &Scored| s.values[0].1.clone().unwrap();
        assert_eq!(
            scored.iter().map(accuracy).collect::<Vec<_>>(),
            [1.0, 1.0, 0.0, 0.0]
        );
    }
}
