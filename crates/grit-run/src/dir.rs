//! Paths inside a run directory, and checkpoints that appear whole or not at all.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::files::{read_jsonl, truncate_jsonl, up_to_step};
use crate::lock::RunLock;

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

/// The files a checkpoint directory carries besides the weights, when the source has them.
pub const TOKENIZER_FILES: [&str; 11] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
];

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn create(&self) -> anyhow::Result<()> {
        fs::create_dir_all(self.checkpoints())
            .with_context(|| format!("creating {}", self.root.display()))
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    pub fn rollouts(&self) -> PathBuf {
        self.root.join("rollouts.jsonl")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    pub fn checkpoint(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("step-{step:06}"))
    }

    pub fn eval(&self, name: &str) -> PathBuf {
        self.root.join("eval").join(name)
    }

    pub fn report_json(&self) -> PathBuf {
        self.root.join("report.json")
    }

    pub fn report_md(&self) -> PathBuf {
        self.root.join("report.md")
    }

    /// Held-out images with their boxes before and after GRPO-GR, shown by report.md.
    pub fn report_grid(&self) -> PathBuf {
        self.root.join("report-grid.png")
    }

    /// Fixed mode's OpenAI judge replies, kept so a resumed run asks only what it has not.
    pub fn judge_cache(&self) -> PathBuf {
        self.root.join("judge-cache.jsonl")
    }

    pub fn demo(&self) -> PathBuf {
        self.root.join("demo")
    }

    /// Makes this process the directory's one writer (see [`RunLock`]).
    pub fn lock(&self, program: &str) -> anyhow::Result<RunLock> {
        RunLock::acquire(&self.root, program)
    }

    /// Drops the log rows of steps after `last_step` (the checkpoint being resumed; those steps
    /// are redone), keeping earlier rows byte for byte.
    pub fn truncate_logs(&self, last_step: u64) -> anyhow::Result<()> {
        for path in [self.metrics(), self.rollouts()] {
            truncate_jsonl(&path, up_to_step(last_step))?;
        }
        Ok(())
    }

    /// Refuses to start a new run where one already logged steps, rather than mixing two runs'
    /// logs; `--resume` continues such a directory instead.
    pub fn ensure_fresh(&self) -> anyhow::Result<()> {
        let logged = read_jsonl::<serde_json::Value>(&self.metrics())?;
        anyhow::ensure!(
            self.list_checkpoints()?.is_empty() && logged.is_empty(),
            "{} already holds a run; pass --resume to continue it or choose another --out",
            self.root.display()
        );
        Ok(())
    }

    /// Complete checkpoints (those renamed into place), by step.
    pub fn list_checkpoints(&self) -> anyhow::Result<Vec<(u64, PathBuf)>> {
        let dir = self.checkpoints();
        let mut found = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(step) = name
                .to_str()
                .and_then(|n| n.strip_prefix("step-"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            found.push((step, entry.path()));
        }
        found.sort();
        Ok(found)
    }

    /// A fresh staging directory for a checkpoint; [`Self::commit_checkpoint`] moves it into
    /// place.
    pub fn stage_checkpoint(&self, step: u64) -> anyhow::Result<PathBuf> {
        let staging = self.checkpoints().join(format!(".step-{step:06}.partial"));
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
        Ok(staging)
    }

    /// Renames a staged checkpoint into place and keeps only the newest `keep` (0 keeps all).
    pub fn commit_checkpoint(&self, staging: &Path, step: u64, keep: usize) -> anyhow::Result<()> {
        let target = self.checkpoint(step);
        if target.exists() {
            fs::remove_dir_all(&target)?;
        }
        fs::rename(staging, &target)
            .with_context(|| format!("moving the checkpoint into {}", target.display()))?;
        if keep > 0 {
            let all = self.list_checkpoints()?;
            for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
                fs::remove_dir_all(old)
                    .with_context(|| format!("removing old checkpoint {}", old.display()))?;
            }
        }
        Ok(())
    }
}

/// `path` relative to `root` when it lies inside it, so that a run directory can move with its
/// images (the demo's data lives inside the run).
pub fn relative_to(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_owned()
}

/// Copies the tokenizer and processor files that `from` has into `to`.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> anyhow::Result<()> {
    for name in TOKENIZER_FILES {
        let source = from.join(name);
        if source.is_file() {
            fs::copy(&source, to.join(name))
                .with_context(|| format!("copying {}", source.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_committed_checkpoints_are_listed_and_old_ones_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        run.create().unwrap();
        for step in [1, 2, 3] {
            let staging = run.stage_checkpoint(step).unwrap();
            fs::write(staging.join("x"), "y").unwrap();
            run.commit_checkpoint(&staging, step, 2).unwrap();
        }
        run.stage_checkpoint(4).unwrap();
        let steps: Vec<u64> = run
            .list_checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(steps, vec![2, 3]);
    }
}
