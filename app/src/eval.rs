//! The evaluations of a run (`eval/<name>/`): `summary.json` reloaded when it is replaced and
//! `samples.jsonl` followed like the training logs.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use grit_data::completion::Region;
use grit_data::metrics::MetricsSummary;
use grit_run::EvalRow;

use crate::rollouts::best_gt_iou;
use crate::tail::JsonlTail;
use crate::text::segment_ranges;

/// One evaluated item with what the view derives from it.
#[derive(Debug, Clone)]
pub struct EvalSample {
    pub row: EvalRow,
    pub segments: Vec<(std::ops::Range<usize>, Region)>,
    pub box_iou: Vec<Option<f64>>,
}

impl EvalSample {
    pub fn new(row: EvalRow) -> Self {
        Self {
            segments: segment_ranges(&row.completion),
            box_iou: row
                .boxes
                .iter()
                .map(|b| best_gt_iou(b.pixels.xyxy, &row.gt_boxes))
                .collect(),
            row,
        }
    }

    /// The judge said the answer is right.
    pub fn correct(&self) -> bool {
        self.row.judge_score.is_some_and(|s| s >= 1.0)
    }
}

/// One `eval/<name>/` directory.
pub struct Evaluation {
    pub name: String,
    pub summary: Option<MetricsSummary>,
    pub samples: Vec<EvalSample>,
    summary_path: PathBuf,
    summary_modified: Option<SystemTime>,
    tail: JsonlTail,
}

impl Evaluation {
    fn new(name: String, dir: PathBuf) -> Self {
        Self {
            name,
            summary: None,
            samples: Vec::new(),
            summary_path: dir.join("summary.json"),
            summary_modified: None,
            tail: JsonlTail::new(dir.join("samples.jsonl")),
        }
    }

    /// The sample with the given id (`file:line`).
    pub fn sample(&self, id: &str) -> Option<&EvalSample> {
        self.samples.iter().find(|s| s.row.id == id)
    }

    fn refresh(&mut self, messages: &mut Vec<String>) -> bool {
        let mut changed = false;
        match self.tail.poll::<EvalRow>() {
            Ok(polled) => {
                if polled.reset {
                    self.samples.clear();
                }
                changed |= polled.reset || !polled.rows.is_empty();
                self.samples
                    .extend(polled.rows.into_iter().map(EvalSample::new));
                messages.extend(polled.errors);
            }
            Err(e) => messages.push(format!("{}: {e}", self.tail.path().display())),
        }
        // summary.json is replaced by a rename, so a new modification time means a new file.
        let modified = fs::metadata(&self.summary_path)
            .and_then(|m| m.modified())
            .ok();
        if modified != self.summary_modified {
            self.summary_modified = modified;
            changed = true;
            self.summary = None;
            if modified.is_some() {
                match fs::read_to_string(&self.summary_path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                {
                    Ok(summary) => self.summary = Some(summary),
                    Err(e) => messages.push(format!("{}: {e}", self.summary_path.display())),
                }
            }
        }
        changed
    }
}

/// Every evaluation of a run, by name.
pub struct Evaluations {
    dir: PathBuf,
    pub list: Vec<Evaluation>,
}

impl Evaluations {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            list: Vec::new(),
        }
    }

    /// Finds new evaluation directories and reads what changed: (changed, messages).
    pub fn refresh(&mut self) -> (bool, Vec<String>) {
        let mut messages = Vec::new();
        let mut changed = false;
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if entry.path().is_dir() && !self.list.iter().any(|e| e.name == name) {
                    self.list.push(Evaluation::new(name, entry.path()));
                    changed = true;
                }
            }
        }
        // Before and after read best in the order they were made.
        self.list.sort_by_key(|e| match e.name.as_str() {
            "before" => (0, String::new()),
            "after" => (2, String::new()),
            other => (1, other.to_owned()),
        });
        for evaluation in &mut self.list {
            changed |= evaluation.refresh(&mut messages);
        }
        (changed, messages)
    }

    pub fn get(&self, name: &str) -> Option<&Evaluation> {
        self.list.iter().find(|e| e.name == name)
    }
}
