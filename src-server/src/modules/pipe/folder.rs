//! The `Submitted/` folder scan (guide.txt:13847-13895): every complete `*.sub` file is parsed,
//! submitted, and deleted once the Enqueuer has it durably; a file that cannot be submitted is
//! renamed `.bad` and the reason logged.
//!
//! Completion: a writer composes the message elsewhere or under another name (`*.tmp`) and
//! renames it to `*.sub` (guide.txt:13887-13890), so only `*.sub` names are ever read.
//!
//! Security: only plain names are taken (letters, digits, `-`, `_`, `.`, `+`, `=`, `@`, `,`, not
//! starting with `.`, ending in `.sub`), so a name never leaves the folder. Files are opened
//! with `O_NOFOLLOW | O_NONBLOCK` and must be regular files: a symbolic link to another file or a
//! FIFO is renamed `.bad`, never read. Reads are bounded by the `MaxSubmittedSize` setting.
//!
//! Crash rule: the file is deleted only after `submit` returned `Ok` (the message is fsynced in
//! `Queue/`), and the deletion is synced before the scan ends. A crash in between submits the file
//! again: at least once, never lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::kernel::log::Level;
use crate::kernel::mail::EnqueueError;
use crate::store::fsutil;

use super::submitted;
use super::{Pipe, TAG};

/// Longest file name taken.
const MAX_NAME: usize = 200;

/// What one scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Files submitted and deleted.
    pub submitted: usize,
    /// Files renamed `.bad`.
    pub bad: usize,
    /// Files left for the next scan (the Enqueuer could not store them now).
    pub left: usize,
}

/// Whether a directory entry is a `.sub` file name this module takes.
pub fn is_sub_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .strip_suffix(".sub")
            .is_some_and(|stem| !stem.is_empty())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+=@,".contains(c))
}

/// One pass over `dir` (blocking).
pub fn scan(pipe: &Pipe, dir: &Path) -> ScanReport {
    let mut report = ScanReport::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            pipe.logger.log(
                Level::Failures,
                TAG,
                format_args!("cannot read {}: {e}", dir.display()),
            );
            return report;
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_sub_name(n))
        .collect();
    names.sort();
    let max_size = pipe.settings().max_submitted_size;
    for (i, name) in names.iter().enumerate() {
        match take(pipe, dir, name, max_size) {
            Taken::Submitted => report.submitted += 1,
            Taken::Bad => report.bad += 1,
            Taken::Gone => {}
            Taken::Skipped => report.left += 1,
            Taken::Retry => {
                // The queue cannot store now: leave this and the rest for the next scan.
                report.left += names.len() - i;
                break;
            }
        }
    }
    if report.submitted + report.bad > 0 {
        if let Err(e) = fsutil::sync_dir(dir) {
            pipe.logger.log(
                Level::Failures,
                TAG,
                format_args!("cannot sync {}: {e}", dir.display()),
            );
        }
    }
    report
}

enum Taken {
    Submitted,
    Bad,
    Gone,
    /// Left in place; the scan goes on.
    Skipped,
    /// Left in place with the rest: the queue cannot store now.
    Retry,
}

/// Reads, parses, submits and deletes one file.
fn take(pipe: &Pipe, dir: &Path, name: &str, max_size: u64) -> Taken {
    let path = dir.join(name);
    let bytes = match read_bounded(&path, max_size) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return rename_bad(
                pipe,
                dir,
                name,
                &format!("larger than MaxSubmittedSize ({max_size} bytes)"),
            )
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Taken::Gone,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return rename_bad(pipe, dir, name, "a symbolic link, not a file")
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return rename_bad(pipe, dir, name, &e.to_string())
        }
        Err(e) => {
            pipe.logger.log(
                Level::Failures,
                TAG,
                format_args!("cannot read Submitted/{name}: {e}"),
            );
            return Taken::Skipped;
        }
    };
    let parsed = match submitted::parse(&bytes, &pipe.server_domain) {
        Ok(p) => p,
        Err(e) => return rename_bad(pipe, dir, name, &e.to_string()),
    };
    let return_path = parsed.submission.return_path.clone();
    let count = parsed.submission.recipients.len();
    match pipe.submit.submit(parsed.submission, &parsed.message) {
        Ok(id) => {
            pipe.logger.log(
                Level::Major,
                TAG,
                format_args!(
                    "Submitted/{name} queued as message {id} from <{return_path}> to {count} recipient(s)"
                ),
            );
            if let Err(e) = fs::remove_file(&path) {
                // Queued already: the file would be submitted again on the next scan.
                pipe.logger.log(
                    Level::Failures,
                    TAG,
                    format_args!("cannot delete Submitted/{name} after queueing it: {e}"),
                );
            }
            Taken::Submitted
        }
        Err(EnqueueError::Io(e)) => {
            pipe.logger.log(
                Level::Problems,
                TAG,
                format_args!("Submitted/{name} not queued, will retry: {e}"),
            );
            Taken::Retry
        }
        Err(e) => rename_bad(pipe, dir, name, &e.to_string()),
    }
}

/// The file's bytes; `None` when larger than `max`. `InvalidInput` when it is not a regular file.
fn read_bounded(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow while read: never take more than the limit.
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Renames `name` (`x.sub`) to `x.bad` (or `x-2.bad`, ... when that exists) and logs why.
fn rename_bad(pipe: &Pipe, dir: &Path, name: &str, why: &str) -> Taken {
    let stem = name.strip_suffix(".sub").unwrap_or(name);
    let target = (1..1000)
        .map(|n| {
            if n == 1 {
                format!("{stem}.bad")
            } else {
                format!("{stem}-{n}.bad")
            }
        })
        .find(|t| fs::symlink_metadata(dir.join(t)).is_err());
    let Some(target) = target else {
        pipe.logger.log(
            Level::Failures,
            TAG,
            format_args!("Submitted/{name} failed ({why}) and no free .bad name is left"),
        );
        return Taken::Skipped;
    };
    match fs::rename(dir.join(name), dir.join(&target)) {
        Ok(()) => {
            pipe.logger.log(
                Level::Failures,
                TAG,
                format_args!("Submitted/{name} failed: {why}; renamed {target}"),
            );
            Taken::Bad
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Taken::Gone,
        Err(e) => {
            pipe.logger.log(
                Level::Failures,
                TAG,
                format_args!("Submitted/{name} failed ({why}) and cannot be renamed: {e}"),
            );
            Taken::Skipped
        }
    }
}
