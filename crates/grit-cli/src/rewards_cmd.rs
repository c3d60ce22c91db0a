//! `grit rewards`: audit the GRIT rewards on recorded completions.
//!
//! Reads a JSONL file, one object a line:
//! `{"completion": str, "answer": str, "dataset": str, "question"?: str,
//!   "completion_ids"?: [int], "judge_reply"?: str, "batch_dataset"?: str}`
//! (other fields are ignored), and prints one JSON object a line with every reward under its
//! official function name, the judge score (raw, before the trainer's binarization) as
//! `judge_score` when `judge_reply` is given, and the input's line number as `line`. A reward
//! that has no value for a row (the official function would raise) is `{"error": "..."}`.
//!
//! Compat mode's count test uses the batch's first sample's dataset; a file has no batches, so
//! each row is its own batch unless it names one with `batch_dataset`.
//!
//! Blank lines are skipped. A malformed line is an error naming `FILE:LINE`, and nothing is
//! printed (the whole file is read first).

use anyhow::{Context, Result, bail};
use grit_data::rewards::{
    Completion, Judge, Mode, ReplayJudge, RewardConfig, RewardError, Sample,
    answer_accuracy_reward, compute_all,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::PathBuf;

/// Compute every GRIT reward for each row of a JSONL file of completions.
#[derive(Debug, Clone, clap::Args)]
pub struct RewardsArgs {
    /// compat: what the official Python code does, quirks included; fixed: the quirks repaired.
    #[arg(long, default_value_t = Mode::Fixed)]
    pub mode: Mode,
    /// JSONL rows of {completion, answer, dataset, question?, completion_ids?, judge_reply?}.
    pub file: PathBuf,
}

/// One input row.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditRow {
    pub completion: String,
    pub answer: String,
    pub dataset: String,
    #[serde(default)]
    pub question: String,
    pub completion_ids: Option<Vec<u32>>,
    pub judge_reply: Option<String>,
    /// The dataset of the batch's first sample (compat count test); defaults to `dataset`.
    pub batch_dataset: Option<String>,
}

/// Reads and checks every row of `file`: `(line number, row)`.
pub fn read_rows(file: &std::path::Path) -> Result<Vec<(usize, AuditRow)>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<AuditRow>(line) {
            Ok(row) => rows.push((number, row)),
            Err(e) => bail!("{}:{number}: {e}", file.display()),
        }
    }
    Ok(rows)
}

fn value(result: Result<f64, RewardError>) -> Value {
    match result {
        Ok(v) => json!(v),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// The audit object of one row.
pub fn audit_row(config: &RewardConfig, line: usize, row: &AuditRow) -> Value {
    let completion = Completion {
        text: &row.completion,
        ids: row.completion_ids.as_deref(),
    };
    let sample = Sample::new(&row.dataset, &row.answer, &row.question);
    let batch_dataset = row.batch_dataset.as_deref().unwrap_or(&row.dataset);
    let mut out = Map::new();
    out.insert("line".into(), json!(line));
    for (kind, result) in compute_all(config, &completion, &sample, batch_dataset, None) {
        out.insert(kind.official_name().into(), value(result));
    }
    if let Some(reply) = &row.judge_reply {
        let mut judge = ReplayJudge {
            reply: reply.clone(),
            mode: config.mode,
        };
        let judge: &mut dyn Judge = &mut judge;
        let score = answer_accuracy_reward(config, &row.completion, &sample, judge);
        out.insert("judge_score".into(), value(score));
    }
    Value::Object(out)
}

/// Runs `grit rewards`, writing JSONL to `out`.
pub fn run(args: &RewardsArgs, out: &mut dyn Write) -> Result<()> {
    let rows = read_rows(&args.file)?;
    let config = RewardConfig::new(args.mode);
    for (line, row) in &rows {
        writeln!(out, "{}", audit_row(&config, *line, row))?;
    }
    out.flush()?;
    Ok(())
}
