//! Batched autoregressive generation over any model that can prefill a prompt batch and then
//! decode one token per row against its KV cache.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::error::Result;

/// A model that generates: prefill once, then one step per new token.
pub trait Decoder<B: Backend> {
    type Prompt;
    /// The KV cache and whatever else decoding carries from step to step.
    type State;

    /// Runs the prompts (left-padded to a common length) and returns the logits at each row's
    /// last position, `[batch, vocab]`, with a cache that has room for `max_new_tokens` more.
    fn prefill(
        &self,
        prompts: &[Self::Prompt],
        max_new_tokens: usize,
    ) -> Result<(Tensor<B, 2>, Self::State)>;

    /// Appends one token per row and returns the next logits, `[batch, vocab]`.
    fn step(&self, tokens: &[u32], state: &mut Self::State) -> Tensor<B, 2>;

    /// Keeps only the rows `keep` (batch indices, in that order) for the steps to come.
    fn retain(&self, keep: &[usize], state: &mut Self::State);
}

/// How the next token is picked from the logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// 0 means greedy (argmax, first index on ties).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
    pub top_p: f32,
    pub seed: u64,
}

impl Sampling {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Generation of a row ends after any of these (it is kept in the output).
    pub eos_token_ids: Vec<u32>,
    /// Generation of a row ends once its decoded text contains any of these (e.g. `</answer>`).
    pub stop_strings: Vec<String>,
    /// Never generated (e.g. the vision tokens: a completion cannot carry an image).
    pub suppress_tokens: Vec<u32>,
}

pub use grit_data::completion::FinishReason;

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub tokens: Vec<u32>,
    /// Log-probability of each token under the model's unmodified (temperature 1) distribution.
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
}

/// Called with (row, token) as each token is chosen, for streaming.
pub type OnToken<'a> = &'a mut dyn FnMut(usize, u32);

/// Turns a completion's token ids into text, for stop strings.
pub type Detokenize<'a> = &'a dyn Fn(&[u32]) -> Result<String>;

/// Generates a completion for every prompt. `detokenize` is needed only for stop strings.
pub fn generate<B: Backend, D: Decoder<B>>(
    model: &D,
    prompts: &[D::Prompt],
    config: &GenerationConfig,
    detokenize: Option<Detokenize<'_>>,
    on_token: Option<OnToken<'_>>,
) -> Result<Vec<Completion>> {
    let mut on_token = on_token;
    let batch = prompts.len();
    let mut rng = StdRng::seed_from_u64(config.sampling.seed);
    let mut rows: Vec<Completion> = (0..batch)
        .map(|_| Completion {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: FinishReason::Length,
        })
        .collect();
    let mut done = vec![false; batch];
    if config.max_new_tokens == 0 || batch == 0 {
        return Ok(rows);
    }
    let (mut logits, mut state) = model.prefill(prompts, config.max_new_tokens)?;
    // The completion each row of the decoding batch belongs to. Finished rows decode a
    // placeholder until a quarter of the batch has finished; then the batch and its cache drop
    // them, so that rows which ended early (completions end anywhere from a few tokens to the
    // limit) stop costing compute.
    let mut batch_rows: Vec<usize> = (0..batch).collect();
    for step in 0..config.max_new_tokens {
        let vocab = logits.dims()[1];
        let mut host: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .into_vec()
            .expect("f32 logits");
        let mut next = Vec::with_capacity(batch_rows.len());
        for (slot, &row) in batch_rows.iter().enumerate() {
            let completion = &mut rows[row];
            let scores = &mut host[slot * vocab..(slot + 1) * vocab];
            let mut unmodified = None;
            if !config.suppress_tokens.is_empty() {
                unmodified = Some(scores.to_vec());
                for &t in &config.suppress_tokens {
                    if let Some(s) = scores.get_mut(t as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
            let scores = &*scores;
            if done[row] {
                next.push(
                    *completion
                        .tokens
                        .last()
                        .expect("finished rows have a token"),
                );
                continue;
            }
            let token = pick(scores, &config.sampling, &mut rng);
            completion.tokens.push(token);
            completion.logprobs.push(log_softmax_at(
                unmodified.as_deref().unwrap_or(scores),
                token as usize,
            ));
            if let Some(f) = on_token.as_mut() {
                f(row, token);
            }
            if config.eos_token_ids.contains(&token) {
                completion.finish = FinishReason::Eos;
                done[row] = true;
            } else if let Some(detok) = detokenize.filter(|_| !config.stop_strings.is_empty()) {
                let text = detok(&completion.tokens)?;
                if config
                    .stop_strings
                    .iter()
                    .any(|s| text.contains(s.as_str()))
                {
                    completion.finish = FinishReason::StopString;
                    done[row] = true;
                }
            }
            next.push(token);
        }
        if done.iter().all(|&d| d) || step + 1 == config.max_new_tokens {
            break;
        }
        let finished = batch_rows.iter().filter(|&&row| done[row]).count();
        if finished * 4 >= batch_rows.len() {
            let keep: Vec<usize> = (0..batch_rows.len())
                .filter(|&slot| !done[batch_rows[slot]])
                .collect();
            model.retain(&keep, &mut state);
            next = keep.iter().map(|&slot| next[slot]).collect();
            batch_rows = keep.iter().map(|&slot| batch_rows[slot]).collect();
        }
        logits = model.step(&next, &mut state);
    }
    Ok(rows)
}

/// log softmax(scores)[index], computed stably in f64.
pub fn log_softmax_at(scores: &[f32], index: usize) -> f32 {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = scores.iter().map(|&s| (s as f64 - max).exp()).sum();
    (scores[index] as f64 - max - sum.ln()) as f32
}

/// The index of the largest score, the first one on ties (as torch's argmax).
pub fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}

/// Picks a token: greedy at temperature 0, else temperature → top-k → top-p → sample.
pub fn pick(scores: &[f32], sampling: &Sampling, rng: &mut StdRng) -> u32 {
    if sampling.temperature <= 0.0 {
        return argmax(scores);
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Most likely first; ties by index so the result does not depend on the sort.
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    if sampling.top_k > 0 {
        order.truncate(sampling.top_k);
    }
    let t = sampling.temperature as f64;
    let max = scores[order[0]] as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((scores[i] as f64 - max) / t).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if sampling.top_p < 1.0 {
        let mut cumulative = 0.0;
        let keep = probs
            .iter()
            .position(|&p| {
                cumulative += p;
                cumulative >= sampling.top_p as f64
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        order.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (p, &i) in probs.iter().zip(&order) {
        draw -= p;
        if draw <= 0.0 {
            return i as u32;
        }
    }
    *order.last().expect("at least one candidate") as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f32, top_k: usize, top_p: f32) -> Sampling {
        Sampling {
            temperature,
            top_k,
            top_p,
            seed: 7,
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            pick(&[0.0, 3.0, 3.0, 1.0], &Sampling::greedy(), &mut rng),
            1
        );
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_head() {
        let mut rng = StdRng::seed_from_u64(0);
        let scores = [0.1, 2.0, 1.9, -4.0];
        for _ in 0..50 {
            assert_eq!(pick(&scores, &sampling(1.0, 1, 1.0), &mut rng), 1);
            // p = [0.07, 0.49, 0.44, 0.00]: 0.45 is reached by token 1 alone.
            assert_eq!(pick(&scores, &sampling(1.0, 0, 0.45), &mut rng), 1);
            let t = pick(&scores, &sampling(1.0, 0, 0.6), &mut rng);
            assert!(t == 1 || t == 2, "{t}");
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_is_seeded() {
        let scores = [0.0f32, (3.0f32).ln()]; // p = [0.25, 0.75]
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..4000)
                .filter(|_| pick(&scores, &sampling(1.0, 0, 1.0), &mut rng) == 1)
                .count()
        };
        let ones = draw(1);
        assert!((2850..3150).contains(&ones), "{ones}");
        assert_eq!(ones, draw(1));
    }

    #[test]
    fn log_softmax_is_normalized() {
        let scores = [1.0f32, 2.0, 3.0];
        let total: f32 = (0..3).map(|i| log_softmax_at(&scores, i).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
