//! A run directory followed live: the logs the trainer appends to are polled about once a second
//! and only their new lines are read. Nothing here panics on a broken file: problems become
//! messages the app shows.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grit_run::RunDir;
use grit_run::StepMetrics;

use crate::eval::Evaluations;
use crate::rollouts::Rollouts;
use crate::tail::JsonlTail;

/// How often the files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Messages kept; older ones are dropped.
const MAX_MESSAGES: usize = 20;

/// Everything read from one run directory.
pub struct Run {
    dir: RunDir,
    pub metrics: Vec<StepMetrics>,
    pub rollouts: Rollouts,
    pub evaluations: Evaluations,
    /// Complete checkpoints, by step.
    pub checkpoints: Vec<(u64, PathBuf)>,
    /// The report's before/after picture, once the run has written it.
    pub report_grid: Option<PathBuf>,
    /// Problems with the files, newest last.
    pub messages: Vec<String>,
    /// Counts the polls that changed something, so views can cache what they derive.
    pub generation: u64,
    metrics_tail: JsonlTail,
    rollouts_tail: JsonlTail,
    last_poll: Option<Instant>,
}

impl Run {
    /// Opens `root` and reads what is there.
    pub fn open(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = RunDir::new(root);
        anyhow::ensure!(
            dir.root.is_dir(),
            "{} is not a directory",
            dir.root.display()
        );
        let mut run = Self {
            metrics_tail: JsonlTail::new(dir.metrics()),
            rollouts_tail: JsonlTail::new(dir.rollouts()),
            evaluations: Evaluations::new(dir.root.join("eval")),
            dir,
            metrics: Vec::new(),
            rollouts: Rollouts::default(),
            checkpoints: Vec::new(),
            report_grid: None,
            messages: Vec::new(),
            generation: 0,
            last_poll: None,
        };
        run.refresh();
        Ok(run)
    }

    /// Refreshes when [`POLL_INTERVAL`] has passed since the last look; true when something
    /// changed.
    pub fn poll(&mut self) -> bool {
        let due = self
            .last_poll
            .is_none_or(|at| at.elapsed() >= POLL_INTERVAL);
        due && self.refresh()
    }

    /// Reads whatever was appended or replaced; true when something changed.
    pub fn refresh(&mut self) -> bool {
        self.last_poll = Some(Instant::now());
        let mut changed = false;
        match self.metrics_tail.poll::<StepMetrics>() {
            Ok(polled) => {
                if polled.reset {
                    self.metrics.clear();
                }
                changed |= polled.reset || !polled.rows.is_empty();
                self.metrics.extend(polled.rows);
                self.note_all(polled.errors);
            }
            Err(e) => self.note(format!("{}: {e}", self.metrics_tail.path().display())),
        }
        match self.rollouts_tail.poll() {
            Ok(polled) => {
                if polled.reset {
                    self.rollouts.clear();
                }
                changed |= polled.reset || !polled.rows.is_empty();
                for row in polled.rows {
                    self.rollouts.push(row);
                }
                self.note_all(polled.errors);
            }
            Err(e) => self.note(format!("{}: {e}", self.rollouts_tail.path().display())),
        }
        let (eval_changed, eval_messages) = self.evaluations.refresh();
        changed |= eval_changed;
        self.note_all(eval_messages);
        match self.dir.list_checkpoints() {
            Ok(found) => {
                changed |= found != self.checkpoints;
                self.checkpoints = found;
            }
            Err(e) => self.note(format!("{e:#}")),
        }
        let grid = Some(self.dir.report_grid()).filter(|p| p.is_file());
        changed |= grid != self.report_grid;
        self.report_grid = grid;
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// Where an image path written in a run file points: as written when that exists (the
    /// trainer writes the paths it was given), otherwise relative to the run directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_relative() && !path.exists() {
            self.dir.root.join(path)
        } else {
            path.to_owned()
        }
    }

    fn note_all(&mut self, messages: Vec<String>) {
        for m in messages {
            self.note(m);
        }
    }

    fn note(&mut self, message: String) {
        // A file that stays broken would repeat its message every second.
        if self.messages.contains(&message) {
            return;
        }
        self.messages.push(message);
        let excess = self.messages.len().saturating_sub(MAX_MESSAGES);
        self.messages.drain(..excess);
    }
}
