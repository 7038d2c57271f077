//! The `ProcessID` lock file (guide.txt:2350): it holds the server's pid while it runs, and an
//! exclusive `flock` on it keeps a second server off the same base directory. The lock, not the
//! file's presence, decides: a file left by a killed server is taken over.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A held `ProcessID` lock; dropping it removes the file.
#[derive(Debug)]
pub struct ProcessLock {
    path: PathBuf,
    _file: File,
}

impl ProcessLock {
    /// Takes the lock in `base`, or says which process holds it.
    pub fn acquire(base: &Path) -> Result<ProcessLock, String> {
        let path = base.join("ProcessID");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: the descriptor is open for the life of `file`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(format!(
                "another gatehoused (process {}) is running on the base directory {}",
                pid.trim(),
                base.display()
            ));
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(ProcessLock { path, _file: file })
    }
}

impl Drop for ProcessLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_file_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = ProcessLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join("ProcessID")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        let err = ProcessLock::acquire(dir.path()).unwrap_err();
        assert!(err.contains("another gatehoused"), "{err}");
        drop(lock);
        assert!(!dir.path().join("ProcessID").exists());
        // A file left behind without a lock (a killed server) is taken over.
        std::fs::write(dir.path().join("ProcessID"), "12345\n").unwrap();
        assert!(ProcessLock::acquire(dir.path()).is_ok());
    }
}
