//! Following an append-only JSONL file: each poll reads only the bytes appended since the last
//! one and returns the rows of the lines they complete.
//!
//! The trainer appends one whole line per write, so the only partial line a reader can see is
//! the last one, still being written (or left by a crash); its bytes are kept until the newline
//! arrives. A `--resume` rewrites a log by renaming a new file into place, so a file that shrank
//! or was replaced is read again from the start.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// What one poll found.
#[derive(Debug)]
pub struct Polled<T> {
    /// The file was replaced or truncated: the rows read before are stale and `rows` holds the
    /// file's rows from its first line.
    pub reset: bool,
    pub rows: Vec<T>,
    /// Complete lines that are not valid rows, as `file:line: error` (they are skipped).
    pub errors: Vec<String>,
}

/// Reads a JSONL file incrementally.
#[derive(Debug)]
pub struct JsonlTail {
    path: PathBuf,
    /// Bytes consumed, up to the end of the last complete line.
    offset: u64,
    /// Lines consumed, for error messages.
    line: usize,
    identity: Option<FileIdentity>,
}

/// What tells a file renamed into place from the one it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    #[cfg(unix)]
    inode: u64,
    #[cfg(unix)]
    device: u64,
}

impl FileIdentity {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            // Elsewhere only a shrinking file is noticed as a rewrite.
            let _ = meta;
            Self {}
        }
    }
}

impl JsonlTail {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            line: 0,
            identity: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was appended since the last poll. A missing file is an empty one.
    pub fn poll<T: DeserializeOwned>(&mut self) -> io::Result<Polled<T>> {
        let mut polled = Polled {
            reset: false,
            rows: Vec::new(),
            errors: Vec::new(),
        };
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                polled.reset = self.offset > 0;
                self.restart(None);
                return Ok(polled);
            }
            Err(e) => return Err(e),
        };
        let identity = FileIdentity::of(&meta);
        if meta.len() < self.offset || self.identity.is_some_and(|id| id != identity) {
            polled.reset = true;
            self.restart(Some(identity));
        }
        self.identity = Some(identity);
        if meta.len() == self.offset {
            return Ok(polled);
        }
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::with_capacity((meta.len() - self.offset) as usize);
        file.read_to_end(&mut bytes)?;
        // Only whole lines: the rest is a line still being written.
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            return Ok(polled);
        };
        for line in bytes[..end].split(|&b| b == b'\n') {
            self.line += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice(line) {
                Ok(row) => polled.rows.push(row),
                Err(e) => polled
                    .errors
                    .push(format!("{}:{}: {e}", self.path.display(), self.line)),
            }
        }
        self.offset += end as u64 + 1;
        Ok(polled)
    }

    fn restart(&mut self, identity: Option<FileIdentity>) {
        self.offset = 0;
        self.line = 0;
        self.identity = identity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_appended_whole_lines_and_waits_for_a_half_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut tail = JsonlTail::new(&path);
        let polled = tail.poll::<serde_json::Value>().unwrap();
        assert!(polled.rows.is_empty() && !polled.reset);

        fs::write(&path, "{\"step\":1}\n{\"step\":2}\n{\"st").unwrap();
        let polled = tail.poll::<serde_json::Value>().unwrap();
        assert_eq!(polled.rows.len(), 2);
        assert!(polled.errors.is_empty());

        let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"ep\":3}\nnot json\n").unwrap();
        let polled = tail.poll::<serde_json::Value>().unwrap();
        assert_eq!(polled.rows, vec![serde_json::json!({"step": 3})]);
        assert_eq!(polled.errors.len(), 1);
        assert!(
            polled.errors[0].contains("m.jsonl:4:"),
            "{:?}",
            polled.errors
        );
    }

    #[test]
    fn a_replaced_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        fs::write(&path, "{\"step\":1}\n{\"step\":2}\n").unwrap();
        let mut tail = JsonlTail::new(&path);
        assert_eq!(tail.poll::<serde_json::Value>().unwrap().rows.len(), 2);
        // What `--resume` does: write elsewhere, rename into place.
        let tmp = dir.path().join("m.partial");
        fs::write(&tmp, "{\"step\":1}\n{\"step\":9}\n{\"step\":10}\n").unwrap();
        fs::rename(&tmp, &path).unwrap();
        let polled = tail.poll::<serde_json::Value>().unwrap();
        assert!(polled.reset);
        assert_eq!(polled.rows.len(), 3);
    }
}
