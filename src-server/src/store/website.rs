//! Personal Web Site files (the guide's "Web Files", guide.txt:9524-9661; CLI guide.txt:6503-6597):
//! the files and folders an account publishes under `http://host:8100/~account/`.
//!
//! Storage: the account's `.web` directory (guide.txt:1727-1729, 9741-9744): `account.web/` inside
//! a MultiMailbox `.macnt` directory, `<name>.web/` beside a single-mailbox account's files, so
//! renaming and deleting the account carry the site along. Files are written with
//! `fsutil::write_atomic` (temp, fsync, rename, fsync dir); folders with `create_dir_durable`.
//!
//! Limits (guide.txt:8776-8783): `MaxWebSize` (Web Storage, the total size; `0` disables the site)
//! and `MaxWebFiles` (Web Files, the number of files and folders, guide.txt:9541-9542), both from
//! the effective account settings. A write that would pass either is refused whole.
//!
//! Security: every path comes from the network (CLI, HTTP URLs). A path is `/`-separated
//! segments; each segment is refused when empty, `.`/`..`, starting with `.` (temp and hidden
//! files), holding `\`, NUL or another control byte, or longer than [`MAX_SEGMENT`]; the whole is
//! bounded in length and depth. Every existing component on the way is checked with
//! `symlink_metadata` and a symbolic link anywhere is refused, so nothing reaches outside the site
//! directory even if someone with shell access planted a link. The top-level `index.html` is the
//! management page's name (guide.txt:9581-9583) and cannot be a file.
//!
//! Implementation notes: writes of all sites are serialised by one lock, so the limits checked
//! are the limits kept. Reads take no lock (a file is always whole: atomic rename).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::{fsutil, AccountType, Store, StoreError};
use crate::format::{Dict, Value};

/// Longest segment of a web file path, in bytes.
pub const MAX_SEGMENT: usize = 128;
/// Longest web file path, in bytes.
pub const MAX_PATH: usize = 1024;
/// Deepest folder nesting.
pub const MAX_DEPTH: usize = 16;
/// The private folder's name (guide.txt:9585-9590).
pub const PRIVATE: &str = "private";
/// The home page's name (guide.txt:9579-9581).
pub const HOME: &str = "default.html";
/// The management page's name, never a file (guide.txt:9581-9583).
pub const INDEX: &str = "index.html";

/// Serialises every site write, so a limit checked is a limit kept.
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Why a web file operation failed; the text is the CLI's error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebError {
    /// The path is not acceptable.
    #[error("illegal web file name: {0}")]
    Name(&'static str),
    /// Nothing by that name.
    #[error("web file is not found")]
    NotFound,
    /// The target name is taken.
    #[error("web file already exists")]
    Exists,
    /// A file where a folder is needed, or the reverse.
    #[error("{0}")]
    Kind(&'static str),
    /// `MaxWebSize` is 0.
    #[error("the Personal Web Site is disabled")]
    Disabled,
    /// `MaxWebSize` would be passed.
    #[error("Web Storage limit exceeded")]
    StorageFull,
    /// `MaxWebFiles` would be passed.
    #[error("Web Files limit exceeded")]
    TooManyFiles,
    /// The account is unknown or the store failed.
    #[error("{0}")]
    Store(String),
    /// The file system failed.
    #[error("web file I/O error: {0}")]
    Io(String),
}

impl From<io::Error> for WebError {
    fn from(e: io::Error) -> WebError {
        match e.kind() {
            io::ErrorKind::NotFound => WebError::NotFound,
            _ => WebError::Io(e.to_string()),
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> WebError {
        WebError::Store(e.to_string())
    }
}

/// The effective `MaxWebSize` and `MaxWebFiles` of an account (`None` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Web Storage, bytes; `Some(0)` disables the site.
    pub max_size: Option<u64>,
    /// Web Files: files and folders.
    pub max_files: Option<u64>,
}

impl Limits {
    /// Reads the limits from effective account settings; an unreadable value counts as 0 (the
    /// safe reading: nothing can be written until an administrator fixes it).
    pub fn from_settings(settings: &Dict) -> Limits {
        let get = |key: &str| {
            let text = settings
                .get(key.as_bytes())
                .and_then(Value::as_text)
                .map(|t| t.into_owned())
                .unwrap_or_default();
            parse_size(&text).unwrap_or(Some(0))
        };
        Limits {
            max_size: get("MaxWebSize"),
            max_files: get("MaxWebFiles"),
        }
    }

    /// Whether the site is enabled (Web Storage is not 0, guide.txt:8776-8778).
    pub fn enabled(&self) -> bool {
        self.max_size != Some(0)
    }
}

/// `unlimited` (`None`), `1234`, `64K`, `10M`, `1G` (the guide's size notation); `None` (the outer
/// one) when unreadable.
pub fn parse_size(s: &str) -> Option<Option<u64>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("unlimited") {
        return Some(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).map(Some)
}

/// What a listed name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file, with its size and modification time.
    File {
        /// Bytes.
        size: u64,
        /// Last modification.
        modified: SystemTime,
    },
    /// A folder.
    Folder,
}

/// Totals of a site or folder: bytes in files, and files plus folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Total size of all files.
    pub size: u64,
    /// Number of files and folders.
    pub count: u64,
}

/// Checks a web file path and returns its segments. The empty path (or `/`) is the site's top
/// folder and has no segments.
pub fn segments(path: &str) -> Result<Vec<&str>, WebError> {
    if path.len() > MAX_PATH {
        return Err(WebError::Name("path too long"));
    }
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let segs: Vec<&str> = trimmed.split('/').collect();
    if segs.len() > MAX_DEPTH {
        return Err(WebError::Name("too deep"));
    }
    for s in &segs {
        if s.is_empty() {
            return Err(WebError::Name("empty path segment"));
        }
        if *s == "." || *s == ".." {
            return Err(WebError::Name("'.' and '..' are not names"));
        }
        if s.starts_with('.') {
            return Err(WebError::Name("name starts with '.'"));
        }
        if s.len() > MAX_SEGMENT {
            return Err(WebError::Name("name too long"));
        }
        if s.contains('\\') || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(WebError::Name(
                "'\\' and control characters are not allowed",
            ));
        }
    }
    Ok(segs)
}

/// Whether a path names something inside the top-level `private` folder.
pub fn is_private(segs: &[&str]) -> bool {
    segs.first()
        .is_some_and(|s| s.eq_ignore_ascii_case(PRIVATE))
}

/// One account's site.
#[derive(Debug, Clone)]
pub struct Site {
    root: PathBuf,
}

impl Site {
    /// The site of account `name` in domain `domain` (real names, not aliases).
    pub fn of(store: &Store, domain: &str, name: &str) -> Result<Site, WebError> {
        let (kind, dir) = store.account_location(domain, name)?;
        let name = super::names::normalize("account", name)?;
        let root = match kind {
            AccountType::MultiMailbox => dir.join("account.web"),
            _ => dir.join(format!("{name}.web")),
        };
        Ok(Site { root })
    }

    /// A site at `root` (tests).
    pub fn at(root: PathBuf) -> Site {
        Site { root }
    }

    /// The path of `segs`, after checking that no existing component is a symbolic link.
    fn path(&self, segs: &[&str]) -> Result<PathBuf, WebError> {
        let mut p = self.root.clone();
        no_link(&p)?;
        for s in segs {
            p.push(s);
            no_link(&p)?;
        }
        Ok(p)
    }

    /// What `path` is, with its real location: `None` when it does not exist.
    pub fn stat(&self, path: &str) -> Result<Option<(PathBuf, Entry)>, WebError> {
        let p = self.path(&segments(path)?)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => Ok(Some((p, Entry::Folder))),
            Ok(m) if m.is_file() => Ok(Some((
                p,
                Entry::File {
                    size: m.len(),
                    modified: m.modified()?,
                },
            ))),
            Ok(_) => Err(WebError::Name("not a file or folder")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The content and modification time of file `path`.
    pub fn get(&self, path: &str) -> Result<(Vec<u8>, SystemTime), WebError> {
        match self.stat(path)? {
            Some((p, Entry::File { modified, .. })) => Ok((fs::read(p)?, modified)),
            Some((_, Entry::Folder)) => Err(WebError::Kind("web file is a folder")),
            None => Err(WebError::NotFound),
        }
    }

    /// Stores `data` as file `path` (replacing an old file), creating missing folders.
    pub fn put(&self, path: &str, data: &[u8], limits: Limits) -> Result<(), WebError> {
        if !limits.enabled() {
            return Err(WebError::Disabled);
        }
        let segs = segments(path)?;
        let Some((file, folders)) = segs.split_last() else {
            return Err(WebError::Name("empty name"));
        };
        if folders.is_empty() && file.eq_ignore_ascii_case(INDEX) {
            return Err(WebError::Name("index.html is the site management page"));
        }
        let _g = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.path(&segs)?;
        let (missing, old_size) = self.plan(folders, &target)?;
        let totals = self.totals()?;
        let new_count = totals.count + missing as u64 + u64::from(old_size.is_none());
        let new_size = totals.size.saturating_sub(old_size.unwrap_or(0)) + data.len() as u64;
        check(limits, new_size, new_count)?;
        self.make_folders(folders)?;
        fsutil::write_atomic(&target, data)?;
        Ok(())
    }

    /// How many of `folders` are missing, and the size of an existing file at `target`.
    fn plan(&self, folders: &[&str], target: &Path) -> Result<(usize, Option<u64>), WebError> {
        let mut missing = usize::from(!self.root.exists());
        let mut p = self.root.clone();
        for f in folders {
            p.push(f);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(WebError::Kind("a file is in the way of the folder")),
                Err(_) => missing += 1,
            }
        }
        let old = match fs::symlink_metadata(target) {
            Ok(m) if m.is_file() => Some(m.len()),
            Ok(_) => return Err(WebError::Kind("web file is a folder")),
            Err(_) => None,
        };
        Ok((missing, old))
    }

    /// Creates the site directory and `folders` under it, durably.
    fn make_folders(&self, folders: &[&str]) -> Result<(), WebError> {
        fsutil::create_dir_durable(&self.root)?;
        let mut p = self.root.clone();
        for f in folders {
            p.push(f);
            no_link(&p)?;
            fsutil::create_dir_durable(&p)?;
        }
        Ok(())
    }

    /// Creates folder `path` (and its parents).
    pub fn make_folder(&self, path: &str, limits: Limits) -> Result<(), WebError> {
        if !limits.enabled() {
            return Err(WebError::Disabled);
        }
        let segs = segments(path)?;
        if segs.is_empty() {
            return Err(WebError::Name("empty name"));
        }
        let _g = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.path(&segs)?;
        let mut missing = usize::from(!self.root.exists());
        let mut p = self.root.clone();
        for f in &segs {
            p.push(f);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(WebError::Kind("a file is in the way of the folder")),
                Err(_) => missing += 1,
            }
        }
        if missing == 0 {
            return Err(WebError::Exists);
        }
        let totals = self.totals()?;
        check(limits, totals.size, totals.count + missing as u64)?;
        self.make_folders(&segs)
    }

    /// Renames file or folder `old` to `new` (whose folder must exist).
    pub fn rename(&self, old: &str, new: &str) -> Result<(), WebError> {
        let old_segs = segments(old)?;
        let new_segs = segments(new)?;
        if old_segs.is_empty() || new_segs.is_empty() {
            return Err(WebError::Name("empty name"));
        }
        if new_segs.len() == 1 && new_segs[0].eq_ignore_ascii_case(INDEX) {
            return Err(WebError::Name("index.html is the site management page"));
        }
        if new_segs.starts_with(&old_segs) {
            return Err(WebError::Name("a folder cannot move into itself"));
        }
        let _g = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let from = self.path(&old_segs)?;
        let to = self.path(&new_segs)?;
        if fs::symlink_metadata(&from).is_err() {
            return Err(WebError::NotFound);
        }
        if fs::symlink_metadata(&to).is_ok() {
            return Err(WebError::Exists);
        }
        let (from_dir, to_dir) = (parent(&from), parent(&to));
        if !fs::symlink_metadata(&to_dir).is_ok_and(|m| m.is_dir()) {
            return Err(WebError::Kind("the target folder does not exist"));
        }
        fs::rename(&from, &to)?;
        fsutil::sync_dir(&to_dir)?;
        if from_dir != to_dir {
            fsutil::sync_dir(&from_dir)?;
        }
        Ok(())
    }

    /// Removes file `path`, or folder `path` with everything in it.
    pub fn delete(&self, path: &str) -> Result<(), WebError> {
        let segs = segments(path)?;
        if segs.is_empty() {
            return Err(WebError::Name("empty name"));
        }
        let _g = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let p = self.path(&segs)?;
        match fs::symlink_metadata(&p) {
            // remove_dir_all does not follow symbolic links inside the folder.
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p)?,
            Ok(_) => fs::remove_file(&p)?,
            Err(e) => return Err(e.into()),
        }
        fsutil::sync_dir(&parent(&p))?;
        Ok(())
    }

    /// The names in folder `path` (top folder when empty), sorted; temp files are skipped.
    pub fn list(&self, path: &str) -> Result<Vec<(String, Entry)>, WebError> {
        let p = self.path(&segments(path)?)?;
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            // A site never written to is an empty site.
            Err(e) if e.kind() == io::ErrorKind::NotFound && p == self.root => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let m = fs::symlink_metadata(e.path())?;
            if m.is_dir() {
                out.push((name, Entry::Folder));
            } else if m.is_file() {
                out.push((
                    name,
                    Entry::File {
                        size: m.len(),
                        modified: m.modified()?,
                    },
                ));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Total size and number of files and folders of the whole site.
    pub fn totals(&self) -> Result<Totals, WebError> {
        let mut t = Totals::default();
        if !self.root.exists() {
            return Ok(t);
        }
        // An explicit stack: a deep tree cannot overflow ours.
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir)? {
                let e = e?;
                if e.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let m = fs::symlink_metadata(e.path())?;
                if m.is_dir() {
                    t.count += 1;
                    stack.push(e.path());
                } else if m.is_file() {
                    t.count += 1;
                    t.size += m.len();
                }
            }
        }
        Ok(t)
    }
}

/// Refuses a symbolic link at `p` (a missing `p` is fine: it will be created by us).
fn no_link(p: &Path) -> Result<(), WebError> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(WebError::Name("symbolic links are not followed"))
        }
        _ => Ok(()),
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn check(limits: Limits, size: u64, count: u64) -> Result<(), WebError> {
    if limits.max_size.is_some_and(|m| size > m) {
        return Err(WebError::StorageFull);
    }
    if limits.max_files.is_some_and(|m| count > m) {
        return Err(WebError::TooManyFiles);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Limits = Limits {
        max_size: None,
        max_files: None,
    };

    fn site() -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = Site::at(dir.path().join("account.web"));
        (dir, site)
    }

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "..",
            "../x",
            "a/../b",
            "a/./b",
            "./a",
            ".hidden",
            "a/.gh-tmp",
            "a//b",
            "a\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(segments(bad).is_err(), "{bad:?}");
        }
        assert!(segments(&"a/".repeat(MAX_DEPTH + 1)).is_err());
        assert!(segments(&"x".repeat(MAX_SEGMENT + 1)).is_err());
        assert_eq!(segments("/a/b.html").expect("ok"), vec!["a", "b.html"]);
        assert_eq!(segments("").expect("ok"), Vec::<&str>::new());
        assert_eq!(segments("dir/").expect("ok"), vec!["dir"]);
    }

    #[test]
    fn put_get_list_rename_delete() {
        let (_d, s) = site();
        assert_eq!(s.list("").expect("list"), vec![]);
        s.put("default.html", b"<h1>hi</h1>", OPEN).expect("put");
        s.put("docs/a/report.txt", b"12345", OPEN)
            .expect("put nested");
        assert_eq!(s.get("docs/a/report.txt").expect("get").0, b"12345");
        let top: Vec<String> = s.list("").expect("list").into_iter().map(|e| e.0).collect();
        assert_eq!(top, vec!["default.html", "docs"]);
        assert_eq!(
            s.list("docs").expect("list")[0],
            ("a".to_string(), Entry::Folder)
        );
        assert_eq!(s.totals().expect("totals"), Totals { size: 16, count: 4 });
        s.rename("docs/a/report.txt", "report.txt").expect("rename");
        assert_eq!(s.get("report.txt").expect("get").0, b"12345");
        assert_eq!(
            s.rename("report.txt", "default.html"),
            Err(WebError::Exists)
        );
        assert_eq!(s.rename("gone", "x"), Err(WebError::NotFound));
        assert!(s.rename("docs", "docs/a/docs").is_err());
        s.delete("docs").expect("delete folder");
        assert_eq!(s.get("docs/a"), Err(WebError::NotFound));
        assert_eq!(s.delete("docs"), Err(WebError::NotFound));
        assert!(matches!(s.get(""), Err(WebError::Kind(_))));
    }

    #[test]
    fn index_html_is_reserved_at_the_top_only() {
        let (_d, s) = site();
        assert!(s.put("index.html", b"x", OPEN).is_err());
        assert!(s.put("Index.HTML", b"x", OPEN).is_err());
        s.put("sub/index.html", b"x", OPEN)
            .expect("nested index is a file");
        s.put("x.html", b"x", OPEN).expect("put");
        assert!(s.rename("x.html", "index.html").is_err());
    }

    #[test]
    fn limits_are_kept() {
        let (_d, s) = site();
        let disabled = Limits {
            max_size: Some(0),
            max_files: None,
        };
        assert_eq!(s.put("a", b"x", disabled), Err(WebError::Disabled));
        let small = Limits {
            max_size: Some(10),
            max_files: Some(3),
        };
        s.put("a", b"12345", small).expect("fits");
        assert_eq!(s.put("b", b"123456", small), Err(WebError::StorageFull));
        s.put("a", b"1234567890", small)
            .expect("replacing counts the old size out");
        s.put("b", b"", small).expect("second file");
        assert_eq!(s.put("d/c", b"", small), Err(WebError::TooManyFiles));
        assert_eq!(s.make_folder("d", small), Ok(()));
        assert_eq!(s.make_folder("e", small), Err(WebError::TooManyFiles));
        assert_eq!(s.make_folder("d", OPEN), Err(WebError::Exists));
    }

    #[test]
    fn symlinks_are_not_followed() {
        let (d, s) = site();
        s.put("ok.txt", b"x", OPEN).expect("put");
        let outside = d.path().join("secret");
        fs::create_dir(&outside).expect("mkdir");
        fs::write(outside.join("key"), b"secret").expect("write");
        std::os::unix::fs::symlink(&outside, d.path().join("account.web/link")).expect("symlink");
        std::os::unix::fs::symlink(outside.join("key"), d.path().join("account.web/key"))
            .expect("symlink");
        assert!(matches!(s.get("link/key"), Err(WebError::Name(_))));
        assert!(matches!(s.get("key"), Err(WebError::Name(_))));
        assert!(s.put("link/new", b"x", OPEN).is_err());
        assert!(!outside.join("new").exists());
        assert!(s.delete("link/key").is_err());
        assert!(outside.join("key").exists());
        let names: Vec<String> = s.list("").expect("list").into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["ok.txt"]);
    }

    #[test]
    fn sizes_parse_as_the_guide_writes_them() {
        assert_eq!(parse_size("unlimited"), Some(None));
        assert_eq!(parse_size("0"), Some(Some(0)));
        assert_eq!(parse_size("30K"), Some(Some(30 * 1024)));
        assert_eq!(parse_size("2M"), Some(Some(2 << 20)));
        assert_eq!(parse_size("lots"), None);
        let mut d = Dict::new();
        d.insert(b"MaxWebSize".to_vec(), Value::str("1M"));
        d.insert(b"MaxWebFiles".to_vec(), Value::str("unlimited"));
        let l = Limits::from_settings(&d);
        assert_eq!(l.max_size, Some(1 << 20));
        assert_eq!(l.max_files, None);
        assert!(l.enabled());
        assert!(!Limits::from_settings(&Dict::new()).enabled());
    }

    #[test]
    fn private_folder_is_recognised() {
        assert!(is_private(&["private", "x"]));
        assert!(is_private(&["Private"]));
        assert!(!is_private(&["public", "private"]));
    }
}
