//! Greedy evaluation on held-out examples (spec §7): answer accuracy from the judge's raw score,
//! grounding IoU from the `<think>` boxes, format compliance and length.
//!
//! Rows go to `samples.jsonl` one line per item as soon as its batch is scored, and items already
//! there are skipped, so an interrupted evaluation loses nothing and resumes where it stopped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use grit_data::metrics::{
    GroundingConfig, MetricsSummary, SampleInput, SampleMetrics, evaluate_sample,
};
use grit_data::prompt::PromptStyle;
use grit_data::rewards::{self, Judge, RewardConfig, answer_accuracy_reward};
use grit_model::generate::{FinishReason, Sampling, generate};
use grit_model::processor::Processor;
use grit_model::{Prompt, Vlm};
use grit_run::{EvalRow, JsonlWriter, RunLock, read_jsonl, truncate_jsonl, write_atomic};

use crate::data::Example;
use crate::rollout::boxes;

#[derive(Debug, Clone, PartialEq)]
pub struct EvalSettings {
    pub max_new_tokens: usize,
    /// The prompt style the examples were encoded with (where generation stops).
    pub style: PromptStyle,
    pub batch: usize,
    pub grounding: GroundingConfig,
    /// Write image paths relative to this folder when they lie inside it (a run directory).
    pub paths_relative_to: Option<PathBuf>,
}

fn item_id(example: &Example) -> String {
    format!(
        "{}:{}",
        example.record.at.file.display(),
        example.record.at.line
    )
}

/// Evaluates every example not yet in `out/samples.jsonl`, then writes `summary.json` and
/// `summary.md` over all rows. `on_batch` is told how many items are done.
#[allow(clippy::too_many_arguments)]
pub fn evaluate<B: Backend>(
    model: &Vlm<B>,
    processor: &Processor,
    examples: &[Example],
    judge: &mut dyn Judge,
    rewards: &RewardConfig,
    settings: &EvalSettings,
    out: &Path,
    on_batch: &mut dyn FnMut(usize),
) -> anyhow::Result<MetricsSummary> {
    let _lock = RunLock::acquire(out, "an evaluation")?;
    let samples_path = out.join("samples.jsonl");
    let done: HashSet<String> = read_jsonl::<EvalRow>(&samples_path)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    // Cut a half line a crash may have left, then append.
    truncate_jsonl(&samples_path, |_| Ok(true))?;
    let mut writer = JsonlWriter::append_to(&samples_path)?;
    let todo: Vec<&Example> = examples
        .iter()
        .filter(|e| !done.contains(&item_id(e)))
        .collect();
    let generation =
        processor.generation(settings.max_new_tokens, Sampling::greedy(), settings.style);
    let detokenize = |ids: &[u32]| processor.detokenize(ids);
    let mut finished = examples.len() - todo.len();
    on_batch(finished);
    for batch in todo.chunks(settings.batch.max(1)) {
        let prompts: Vec<Prompt> = batch.iter().map(|e| e.prompt.clone()).collect();
        let completions = generate(model, &prompts, &generation, Some(&detokenize), None)?;
        for (example, completion) in batch.iter().zip(completions) {
            let text = processor.detokenize(&completion.tokens)?;
            let mut row = score_item(
                example,
                text,
                completion.tokens.len(),
                completion.finish,
                judge,
                rewards,
                &settings.grounding,
            );
            if let Some(root) = &settings.paths_relative_to {
                row.image = grit_run::relative_to(&row.image, root);
            }
            writer.write(&row)?;
        }
        finished += batch.len();
        on_batch(finished);
    }
    let rows: Vec<EvalRow> = read_jsonl(&samples_path)?;
    let metrics: Vec<SampleMetrics> = rows.into_iter().map(|r| r.metrics).collect();
    let summary = MetricsSummary::of(&metrics);
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    write_atomic(&out.join("summary.md"), markdown_table(&summary).as_bytes())?;
    Ok(summary)
}

fn score_item(
    example: &Example,
    text: String,
    tokens: usize,
    finish: FinishReason,
    judge: &mut dyn Judge,
    rewards: &RewardConfig,
    grounding: &GroundingConfig,
) -> EvalRow {
    let s = &example.record.sample;
    let sample = rewards::Sample::new(&s.dataset, &s.answer, &s.question);
    let (judge_score, judge_error) = match answer_accuracy_reward(rewards, &text, &sample, judge) {
        Ok(score) => (Some(score), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let metrics = evaluate_sample(
        &SampleInput {
            dataset: &s.dataset,
            completion: &text,
            completion_tokens: Some(tokens),
            judge_score,
            gt_boxes: s.gt_boxes(),
            image: example.original,
            frame: example.frame,
        },
        grounding,
    );
    EvalRow {
        id: item_id(example),
        image: example.record.image_path.clone(),
        dataset: s.dataset.clone(),
        question: s.question.clone(),
        answer: s.answer.clone(),
        gt_boxes: s.gt_boxes().to_vec(),
        boxes: boxes(&text, example),
        completion: text,
        tokens,
        finish_reason: finish,
        judge_score,
        judge_error,
        metrics,
        original_size: example.original,
        processed_size: example.processed,
    }
}

/// Per dataset and overall: accuracy, the three IoUs, format compliance, boxes, length.
pub fn markdown_table(summary: &MetricsSummary) -> String {
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1}", 100.0 * v));
    let num = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
    let mut out = String::from(
        "| dataset | n | accuracy % | IoU % | Hungarian IoU % | union IoU % | format % | boxes | length |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let rows = summary
        .per_dataset
        .iter()
        .map(|(name, a)| (name.as_str(), a))
        .chain(std::iter::once(("overall", &summary.overall)));
    for (name, a) in rows {
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            a.samples,
            pct(a.answer_accuracy),
            pct(a.best_iou),
            pct(a.hungarian_iou),
            pct(a.union_iou),
            pct(a.format_compliance),
            num(a.mean_boxes),
            num(a.mean_length),
        ));
    }
    out
}
