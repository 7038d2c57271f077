//! Crash-safe file writes for the base directory.
//!
//! A file that matters is written as: temp file in the same directory, write, fsync, rename over
//! the target, fsync the directory (DESIGN.md "The base directory"). A crash leaves the old file
//! or the new one, never half of one.
//!
//! The temp file has a fixed name per target, `.<name>.gh-tmp`: a leftover from a crash is never
//! read (readers open only the target) and is truncated and reused by the next write of the same
//! target. The leading `.` keeps it out of every name space (`names` refuses a leading `.`).
//! Callers serialize writes of one target (the store does so under its lock).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Suffix of temp files written by [`write_atomic`].
pub const TEMP_SUFFIX: &str = ".gh-tmp";

/// The temp file [`write_atomic`] uses for `path`.
pub fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(TEMP_SUFFIX);
    Ok(path.with_file_name(tmp))
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`] with the new file's permission bits (e.g. `0o600` for a private key).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = parent(path);
    let tmp = temp_path(path)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // open() masks the mode with the umask and ignores it for a leftover temp file.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        // Best effort: the temp file is harmless, but do not leave it when we can help it.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Flushes a directory's entries (after a create, rename or remove in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and missing parents) and syncs the parent so the new entry survives a crash.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    sync_dir(parent(dir))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.settings");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(!temp_path(&p).unwrap().exists());
    }

    #[test]
    fn crash_before_rename_keeps_old_file_and_temp_is_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("Domain.settings");
        write_atomic(&p, b"{old=1;}").unwrap();
        // Simulate a crash after the temp file was written but before the rename.
        let tmp = temp_path(&p).unwrap();
        fs::write(&tmp, b"{new=half").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{old=1;}");
        // The next write ignores the leftover content and cleans it up.
        write_atomic(&p, b"{new=2;}").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{new=2;}");
        assert!(!tmp.exists());
    }

    #[test]
    fn temp_name_is_hidden_and_in_same_dir() {
        let t = temp_path(Path::new("/x/y/z.info")).unwrap();
        assert_eq!(t, Path::new("/x/y/.z.info.gh-tmp"));
    }
}
