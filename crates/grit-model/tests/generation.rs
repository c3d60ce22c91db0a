//! Batched generation: left padding must not change any row, and the stop rules, streaming
//! and seeded sampling behave as documented.

mod common;

use common::{fixtures_root, host, max_abs_diff};
use grit_model::backend::Cpu;
use grit_model::generate::{
    Decoder, FinishReason, GenerationConfig, Sampling, generate, log_softmax_at,
};
use grit_model::qwen2_5_vl::{ImageInput, Prompt, Qwen2_5Vl};

fn fixture(case: &str) -> std::path::PathBuf {
    fixtures_root().join(case)
}

fn config(max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens,
        sampling: Sampling::greedy(),
        eos_token_ids: Vec::new(),
        stop_strings: Vec::new(),
        suppress_tokens: Vec::new(),
    }
}

fn text(ids: &[u32]) -> Prompt {
    Prompt {
        ids: ids.to_vec(),
        images: Vec::new(),
    }
}

/// A prompt with one 8×10-patch image of a model whose image token is 500.
fn image_prompt(seed: u32) -> Prompt {
    let image = ImageInput {
        pixel_values: (0..80 * 1176)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect(),
        grid: [1, 8, 10],
    };
    let mut ids = vec![12, 7, 502];
    ids.extend(std::iter::repeat_n(500, 20));
    ids.extend([503, 33, 71, 9]);
    Prompt {
        ids,
        images: vec![image],
    }
}

#[test]
fn left_padding_changes_no_row() {
    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&fixture("image_150x100"), &device).unwrap();
    let prompts = [
        image_prompt(1),
        text(&[4, 8, 15, 16, 23, 42]),
        text(&[
            99, 98, 97, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
            22, 23, 24, 25, 26,
        ]),
        image_prompt(2),
    ];
    let batched = generate(&model, &prompts, &config(10), None, None).unwrap();
    let (batched_logits, _) = model.prefill(&prompts, 1).unwrap();
    let (_, batched_logits) = host(batched_logits);
    let vocab = batched_logits.len() / prompts.len();
    for (row, prompt) in prompts.iter().enumerate() {
        let single = generate(
            &model,
            std::slice::from_ref(prompt),
            &config(10),
            None,
            None,
        )
        .unwrap();
        assert_eq!(batched[row].tokens, single[0].tokens, "row {row}");
        let diff = max_abs_diff(&batched[row].logprobs, &single[0].logprobs);
        assert!(diff < 1e-4, "row {row}: log-probs differ by {diff}");
        let (logits, _) = model.prefill(std::slice::from_ref(prompt), 1).unwrap();
        let diff = max_abs_diff(
            &batched_logits[row * vocab..(row + 1) * vocab],
            &host(logits).1,
        );
        assert!(diff < 1e-4, "row {row}: prefill logits differ by {diff}");
    }
}

#[test]
fn generation_stops_at_eos_or_a_stop_string_and_streams_every_token() {
    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&fixture("text_only"), &device).unwrap();
    let prompt = [text(&[3, 1, 4, 1, 5, 9, 2, 6])];
    let free = generate(&model, &prompt, &config(8), None, None)
        .unwrap()
        .remove(0);
    assert_eq!(free.finish, FinishReason::Length);
    assert_eq!(free.tokens.len(), 8);

    let mut eos = config(8);
    eos.eos_token_ids = vec![free.tokens[2]];
    let stopped = generate(&model, &prompt, &eos, None, None)
        .unwrap()
        .remove(0);
    let first = free
        .tokens
        .iter()
        .position(|&t| t == free.tokens[2])
        .unwrap();
    assert_eq!(stopped.finish, FinishReason::Eos);
    assert_eq!(stopped.tokens, free.tokens[..=first]);

    // A stop string that spans two tokens of the detokenized text.
    let detok = |ids: &[u32]| Ok(ids.iter().map(|t| format!("<{t}>")).collect::<String>());
    let mut stop = config(8);
    stop.stop_strings = vec![format!("{}><{}", free.tokens[3], free.tokens[4])];
    let mut streamed = Vec::new();
    let mut on_token = |row: usize, token: u32| streamed.push((row, token));
    let stopped = generate(&model, &prompt, &stop, Some(&detok), Some(&mut on_token))
        .unwrap()
        .remove(0);
    assert_eq!(stopped.finish, FinishReason::StopString);
    let text = detok(&stopped.tokens).unwrap();
    assert!(text.ends_with(&format!("<{}>", free.tokens[4])), "{text}");
    assert!(stopped.tokens.len() <= 5);
    assert_eq!(
        streamed,
        stopped.tokens.iter().map(|&t| (0, t)).collect::<Vec<_>>()
    );
}

#[test]
fn logprobs_are_the_models_and_sampling_is_seeded() {
    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&fixture("text_only"), &device).unwrap();
    let prompt = [text(&[10, 20, 30, 40])];
    let greedy = generate(&model, &prompt, &config(1), None, None)
        .unwrap()
        .remove(0);
    let (logits, _) = model.prefill(&prompt, 1).unwrap();
    let (_, logits) = host(logits);
    let expected = log_softmax_at(&logits, greedy.tokens[0] as usize);
    assert!((greedy.logprobs[0] - expected).abs() < 1e-6);

    let mut sampled = config(12);
    sampled.sampling = Sampling {
        temperature: 1.5,
        top_k: 50,
        top_p: 0.95,
        seed: 1234,
    };
    let a = generate(&model, &prompt, &sampled, None, None).unwrap();
    let b = generate(&model, &prompt, &sampled, None, None).unwrap();
    assert_eq!(a, b);
    sampled.sampling.seed = 4321;
    let c = generate(&model, &prompt, &sampled, None, None).unwrap();
    assert_ne!(
        a[0].tokens, c[0].tokens,
        "different seeds, same 12 samples at temperature 1.5"
    );
    assert!(a[0].logprobs.iter().all(|&p| p <= 0.0));
}

/// A decoder that records the batch size of every step.
struct Recording<'a> {
    model: &'a Qwen2_5Vl<Cpu>,
    steps: std::cell::RefCell<Vec<usize>>,
}

impl Decoder<Cpu> for Recording<'_> {
    type Prompt = Prompt;
    type State = <Qwen2_5Vl<Cpu> as Decoder<Cpu>>::State;

    fn prefill(
        &self,
        prompts: &[Prompt],
        max_new_tokens: usize,
    ) -> grit_model::Result<(burn::tensor::Tensor<Cpu, 2>, Self::State)> {
        self.model.prefill(prompts, max_new_tokens)
    }

    fn step(&self, tokens: &[u32], state: &mut Self::State) -> burn::tensor::Tensor<Cpu, 2> {
        self.steps.borrow_mut().push(tokens.len());
        self.model.step(tokens, state)
    }

    fn retain(&self, keep: &[usize], state: &mut Self::State) {
        self.model.retain(keep, state);
    }
}

/// Rows that finish early leave the decoding batch (and its cache); the rows that go on are
/// unchanged, token for token, against generating each alone.
#[test]
fn finished_rows_leave_the_batch_and_change_no_other_row() {
    let device = Default::default();
    let model = Qwen2_5Vl::<Cpu>::load(&fixture("image_150x100"), &device).unwrap();
    let prompts = [
        text(&[4, 8, 15, 16, 23, 42]),
        image_prompt(3),
        text(&[7, 7, 1, 2]),
        text(&[99, 98, 97, 1, 2, 3, 4, 5]),
        image_prompt(4),
    ];
    let free = generate(&model, &prompts, &config(12), None, None).unwrap();
    // End tokens that the first and third rows write early: rows now end at different steps.
    let mut ending = config(12);
    ending.eos_token_ids = vec![free[0].tokens[1], free[2].tokens[4]];
    let recording = Recording {
        model: &model,
        steps: Default::default(),
    };
    let batched = generate(&recording, &prompts, &ending, None, None).unwrap();
    let steps = recording.steps.into_inner();
    assert!(
        steps.first() == Some(&5) && steps.last() < Some(&5),
        "finished rows must leave the batch: batch sizes {steps:?}"
    );
    for (row, prompt) in prompts.iter().enumerate() {
        let single = generate(&model, std::slice::from_ref(prompt), &ending, None, None).unwrap();
        assert_eq!(batched[row].tokens, single[0].tokens, "row {row}");
        assert_eq!(batched[row].finish, single[0].finish, "row {row}");
        let diff = max_abs_diff(&batched[row].logprobs, &single[0].logprobs);
        assert!(diff < 1e-4, "row {row}: log-probs differ by {diff}");
    }
}
