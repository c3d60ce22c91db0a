//! One writer per run directory: an OS file lock on `.lock`, which also records who holds it.
//! The operating system drops the lock with the process, so a run killed with `kill -9` never
//! blocks the next `--resume`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Held while a process writes a directory; released when dropped or when the process ends.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// The lock file inside `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(".lock")
    }

    /// Takes `dir`'s lock for `program` (e.g. `grit-train`), or fails with an error naming the
    /// process that holds it.
    pub fn acquire(dir: &Path, program: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = Self::path_in(dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                anyhow::bail!(
                    "{} is being written by another process ({}); wait for it to finish, stop \
                     it, or choose another directory",
                    dir.display(),
                    if holder.is_empty() { "unknown" } else { holder }
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        let host = gethostname::gethostname();
        let holder = format!(
            "{program}, pid {} on {}",
            std::process::id(),
            host.to_string_lossy()
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|()| file.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_and_a_released_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "grit-train").unwrap();
        let err = RunLock::acquire(dir.path(), "grit-eval")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is being written by another process"), "{err}");
        assert!(
            err.contains(&format!("grit-train, pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        RunLock::acquire(dir.path(), "grit-eval").unwrap();
    }
}
