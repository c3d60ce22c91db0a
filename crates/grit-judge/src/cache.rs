//! Successful judge replies on disk, one JSON object a line, so a rerun asks only new queries.
//!
//! Each entry is appended with a single `write_all` of the whole line, newline included, and
//! flushed, so a crash can leave at most an incomplete last line. Loading ignores such a line
//! (with a warning) and cuts it off the file, so the next entry starts on a line of its own; a
//! complete line that is not an entry is an error. One judge writes a cache file at a time.

use crate::config::JudgeError;
use grit_data::rewards::{JudgeQuery, Mode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One line of the cache file.
#[derive(Serialize, Deserialize)]
struct Entry {
    model: String,
    mode: Mode,
    question: String,
    reference: String,
    prediction: String,
    /// The judge's reply as received.
    reply: String,
    score: f64,
}

/// The scores one model in one mode gave, from the cache file and since.
pub(crate) struct Cache {
    path: PathBuf,
    file: File,
    model: String,
    mode: Mode,
    scores: HashMap<JudgeQuery, f64>,
}

impl Cache {
    /// Loads the entries of `model` in `mode` from `path` (none if the file does not exist) and
    /// opens it for appending.
    pub(crate) fn open(path: &Path, model: &str, mode: Mode) -> Result<Self, JudgeError> {
        let io_error = |source| JudgeError::Cache {
            path: path.to_owned(),
            source,
        };
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(e)),
        };
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&bytes[..complete]).map_err(|e| JudgeError::Cache {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        let mut scores = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let entry: Entry = serde_json::from_str(line).map_err(|e| JudgeError::CacheLine {
                path: path.to_owned(),
                line: i + 1,
                message: e.to_string(),
            })?;
            if entry.model == model && entry.mode == mode {
                let query = JudgeQuery {
                    question: entry.question,
                    reference: entry.reference,
                    prediction: entry.prediction,
                };
                scores.insert(query, entry.score);
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error)?;
        if complete < bytes.len() {
            eprintln!(
                "warning: judge cache {}: ignoring an incomplete last line ({} bytes)",
                path.display(),
                bytes.len() - complete
            );
            file.set_len(complete as u64).map_err(io_error)?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            model: model.to_owned(),
            mode,
            scores,
        })
    }

    /// The cached score of a query.
    pub(crate) fn get(&self, query: &JudgeQuery) -> Option<f64> {
        self.scores.get(query).copied()
    }

    /// Keeps a successful reply, in memory and appended to the file. A failed write loses only
    /// the entry on disk: it is reported on stderr and the score stands.
    pub(crate) fn insert(&mut self, query: &JudgeQuery, reply: &str, score: f64) {
        let entry = Entry {
            model: self.model.clone(),
            mode: self.mode,
            question: query.question.clone(),
            reference: query.reference.clone(),
            prediction: query.prediction.clone(),
            reply: reply.to_owned(),
            score,
        };
        let mut line = serde_json::to_string(&entry).expect("an entry serializes");
        line.push('\n');
        if let Err(e) = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
        {
            eprintln!("warning: judge cache {}: {e}", self.path.display());
        }
        self.scores.insert(query.clone(), score);
    }
}
