//! The run directory: the contract between the trainer, the evaluator and the viewer.
//!
//! ```text
//! RUN/
//!   config.toml              the resolved configuration
//!   metrics.jsonl            one row per optimizer step (`StepMetrics`)
//!   rollouts.jsonl           one row per completion (`RolloutRow`)
//!   checkpoints/step-NNNNNN/ an HF model directory (config.json, model.safetensors, tokenizer
//!                            files) plus optimizer.safetensors and trainer_state.json
//!   eval/<name>/             evaluations (samples.jsonl, summary.json, summary.md)
//! ```
//!
//! Every file is either appended one whole line at a time or replaced by a rename, so a crash
//! (or `kill -9`) leaves at worst a half line at the end of a JSONL file, which readers skip,
//! and never a half checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `bytes` next to `path` and renames the file into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// An append-only JSONL file written one complete line per call.
pub struct JsonlWriter {
    file: File,
    path: PathBuf,
}

impl JsonlWriter {
    pub fn append_to(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Writes one row as a single `write_all` of the whole line.
    pub fn write<T: Serialize>(&mut self, row: &T) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(row)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// The complete rows of a JSONL file; a half-written last line (a crash while appending) is
/// dropped, any other bad line is an error naming its line.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(row) => rows.push(row),
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(e) => anyhow::bail!("{}:{}: {e}", path.display(), i + 1),
        }
    }
    Ok(rows)
}

/// Keeps the rows whose `step` is at most `last_step` (and drops a half-written last line),
/// replacing the file atomically: what `--resume` does to the logs of the steps it redoes.
pub fn truncate_jsonl_to_step(path: &Path, last_step: u64) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = read_jsonl(path)?;
    let mut out = Vec::new();
    for row in rows {
        if row.get("step").and_then(|s| s.as_u64()).unwrap_or(0) <= last_step {
            serde_json::to_writer(&mut out, &row)?;
            out.push(b'\n');
        }
    }
    write_atomic(path, &out).with_context(|| format!("rewriting {}", path.display()))
}

/// Paths inside a run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

/// The files a checkpoint directory carries besides the weights, when the source has them.
pub const TOKENIZER_FILES: [&str; 6] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.json",
    "chat_template.jinja",
    "generation_config.json",
    "preprocessor_config.json",
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
    fn a_half_written_last_line_is_dropped_and_truncation_keeps_earlier_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        fs::write(&path, "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n{\"st").unwrap();
        let rows: Vec<serde_json::Value> = read_jsonl(&path).unwrap();
        assert_eq!(rows.len(), 3);
        truncate_jsonl_to_step(&path, 2).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n"
        );
        fs::write(&path, "{\"step\":1}\nnot json\n{\"step\":2}\n").unwrap();
        let err = read_jsonl::<serde_json::Value>(&path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(":2: expected ident at line 1 column 2"),
            "{err}"
        );
    }

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
