//! Writing run files so that no crash or failed write leaves them torn: whole files through a
//! rename, JSONL one whole line per write (a failed write is taken back), and truncation of a
//! log that keeps its lines byte for byte.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `bytes` next to `path` and renames the file into place; on failure (a full disk)
/// the partial file is removed and the old `path`, if any, is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// An append-only JSONL file written one complete line per call.
pub struct JsonlWriter {
    file: File,
    path: PathBuf,
    /// Bytes of complete lines: where a failed write is cut back to.
    len: u64,
}

impl JsonlWriter {
    pub fn append_to(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        Ok(Self {
            file,
            path: path.to_owned(),
            len,
        })
    }

    /// Writes one row as a single `write_all` of the whole line. When the write fails (a full
    /// disk, a file-size limit), whatever part of the line reached the file is cut off again,
    /// so the log never holds a torn line before later ones.
    pub fn write<T: Serialize>(&mut self, row: &T) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(row)?;
        line.push(b'\n');
        match self.file.write_all(&line).and_then(|()| self.file.flush()) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e).with_context(|| format!("writing {}", self.path.display()))
            }
        }
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

/// Cuts a JSONL file after its last complete line for which `keep` holds, stopping at the first
/// line it does not keep: what `--resume` does to the logs of the steps it redoes, and what an
/// evaluation does to a half line a crash left. The kept lines stay byte for byte (they are
/// never parsed and written again); the cut is one truncation, not a rewrite.
pub fn truncate_jsonl(
    path: &Path,
    keep: impl Fn(&str) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut end = 0;
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if !line.ends_with(b"\n") {
            break; // a half-written last line
        }
        let text = std::str::from_utf8(line)
            .with_context(|| format!("{}:{}: not UTF-8", path.display(), i + 1))?;
        if !text.trim().is_empty()
            && !keep(text).with_context(|| format!("{}:{}", path.display(), i + 1))?
        {
            break;
        }
        end += line.len();
    }
    if end < bytes.len() {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| {
                file.set_len(end as u64)?;
                file.sync_all()
            })
            .with_context(|| format!("truncating {}", path.display()))?;
    }
    Ok(())
}

/// Keeps the rows of a step-keyed log up to `last_step`: rows are appended in step order, so
/// the first later row and everything after it go.
pub(crate) fn up_to_step(last_step: u64) -> impl Fn(&str) -> anyhow::Result<bool> {
    #[derive(serde::Deserialize)]
    struct Step {
        step: u64,
    }
    move |line| Ok(serde_json::from_str::<Step>(line)?.step <= last_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_lines_byte_for_byte_and_drops_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        // Floats serde_json would print differently after a round trip through f64 parsing.
        let kept = "{\"step\":1,\"lr\":0.009375000000000001}\n{\"step\":2,\"kl\":1.1362135410308838e-07}\n";
        fs::write(&path, format!("{kept}{{\"step\":3}}\n{{\"st")).unwrap();
        let rows: Vec<serde_json::Value> = read_jsonl(&path).unwrap();
        assert_eq!(rows.len(), 3);
        truncate_jsonl(&path, up_to_step(2)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), kept);
        // Only the torn line goes when every complete row is kept.
        fs::write(&path, format!("{kept}{{\"st")).unwrap();
        truncate_jsonl(&path, |_| Ok(true)).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), kept);
        fs::write(&path, "{\"step\":1}\nnot json\n{\"step\":2}\n").unwrap();
        let err = read_jsonl::<serde_json::Value>(&path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(":2: expected ident at line 1 column 2"),
            "{err}"
        );
        let err = truncate_jsonl(&path, up_to_step(5)).unwrap_err();
        assert!(format!("{err:#}").contains("m.jsonl:2"), "{err:#}");
    }
}
