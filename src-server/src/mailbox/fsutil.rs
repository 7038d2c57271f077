//! Durable-write helpers: the store's (`store::fsutil`: temp file, fsync, rename, fsync of the
//! directory) plus the two path helpers the mailbox code needs.

use std::path::{Path, PathBuf};

use crate::store::fsutil::TEMP_SUFFIX;
pub(crate) use crate::store::fsutil::{sync_dir, write_atomic};

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temp file [`write_atomic`] uses for `path` (`.<name>.gh-tmp`, hidden, so listings skip it);
/// expunge stages its compacted copy under the same name.
pub(crate) fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}{TEMP_SUFFIX}"))
}
