//! Mailbox names (guide.txt:9255-9288) and where they live on disk (guide.txt:9383-9392, 9455-9462).
//!
//! `/` separates hierarchy levels: `INBOX/important` is `important` inside `INBOX`. A mailbox can hold
//! messages and submailboxes at once, through two entities: the storage entity `<name>.mbox` (or
//! `.mdir`) and the directory entity `<name>.folder/` that holds the submailboxes. So in an account
//! directory `INBOX/important` is stored at `INBOX.folder/important.mbox`. The guide does not name the
//! directory entity; `.folder` is our choice (it is what CommuniGate Pro itself uses on disk).
//!
//! Security: names come from IMAP clients, WebUser forms, Rules (`Store in`) and the CLI. A name is
//! turned into a path only after [`validate`] accepted it: no `..`, no empty component (leading `/`,
//! `//`), no component starting with `.` (that also keeps our hidden sidecar files out of reach), no
//! `\`, NUL or other control bytes, no IMAP wildcards `*` `%`, no leading `~` (foreign-mailbox
//! syntax is resolved by the caller), and bounded length.
//!
//! Names are case-sensitive, except `INBOX` (guide.txt:9283-9288): any spelling of a first component
//! `inbox` is normalised to `INBOX`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Format;

/// Hierarchy separator (guide.txt:9266).
pub const SEPARATOR: char = '/';
/// Longest accepted mailbox name in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest accepted component in bytes; leaves room for the `.folder` / `.mbox` extensions
/// under the usual 255-byte file-name limit.
pub const MAX_COMPONENT_LEN: usize = 200;
/// Deepest accepted hierarchy.
pub const MAX_DEPTH: usize = 32;
/// Extension of the directory entity that holds submailboxes.
pub const FOLDER_EXT: &str = "folder";

/// Why a mailbox name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Illegal mailbox name: {}", self.0)
    }
}

impl std::error::Error for NameError {}

fn refuse(why: &str) -> NameError {
    NameError(why.to_string())
}

/// Check a mailbox name and return it normalised (`inbox/x` → `INBOX/x`).
/// A trailing `/` is refused here; see [`parse_create_name`] for the directory-only create form.
pub fn validate(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(refuse("empty name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(refuse("name too long"));
    }
    let mut out = Vec::new();
    for (i, comp) in name.split(SEPARATOR).enumerate() {
        if i >= MAX_DEPTH {
            return Err(refuse("too many hierarchy levels"));
        }
        validate_component(comp)?;
        if i == 0 && comp.eq_ignore_ascii_case("INBOX") {
            out.push("INBOX");
        } else {
            out.push(comp);
        }
    }
    Ok(out.join("/"))
}

fn validate_component(comp: &str) -> Result<(), NameError> {
    if comp.is_empty() {
        return Err(refuse("empty hierarchy level"));
    }
    if comp.len() > MAX_COMPONENT_LEN {
        return Err(refuse("hierarchy level too long"));
    }
    if comp.starts_with('.') {
        return Err(refuse("a level may not start with '.'"));
    }
    if comp.starts_with('~') {
        return Err(refuse("a level may not start with '~'"));
    }
    for b in comp.bytes() {
        if b < 0x20 || b == 0x7f {
            return Err(refuse("control character"));
        }
        if matches!(b, b'\\' | b'*' | b'%') {
            return Err(refuse("'\\', '*' and '%' are not allowed"));
        }
    }
    Ok(())
}

/// What a create request asks for (guide.txt:9274-9279, 9455-9462).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The validated, normalised mailbox name.
    pub name: String,
    /// `ABCDEF/`: create only the directory entity (listed, not selectable).
    pub directory_only: bool,
    /// `name.mdir` / `name.mbox`: the format the user chose explicitly.
    pub format: Option<Format>,
}

/// Parse a name given to "create": a trailing `/` asks for the directory entity only, and a final
/// `.mbox` / `.mdir` extension chooses the storage format.
pub fn parse_create_name(raw: &str) -> Result<CreateRequest, NameError> {
    let (raw, directory_only) = match raw.strip_suffix(SEPARATOR) {
        Some(r) => (r, true),
        None => (raw, false),
    };
    let mut format = None;
    let mut base = raw;
    if !directory_only {
        for f in [Format::Mbox, Format::Mdir] {
            if let Some(b) = raw
                .strip_suffix(f.extension())
                .and_then(|b| b.strip_suffix('.'))
            {
                if !b.is_empty() && !b.ends_with(SEPARATOR) {
                    format = Some(f);
                    base = b;
                }
            }
        }
    }
    Ok(CreateRequest {
        name: validate(base)?,
        directory_only,
        format,
    })
}

/// `INBOX/important` → `<account_dir>/INBOX.folder/important.<ext>`. The name must be valid.
pub fn storage_path(account_dir: &Path, name: &str, format: Format) -> Result<PathBuf, NameError> {
    let name = validate(name)?;
    let mut comps: Vec<&str> = name.split(SEPARATOR).collect();
    let last = comps.pop().unwrap_or_default();
    let mut p = account_dir.to_path_buf();
    for c in comps {
        p.push(format!("{c}.{FOLDER_EXT}"));
    }
    p.push(format!("{last}.{}", format.extension()));
    Ok(p)
}

/// `INBOX/important` → `<account_dir>/INBOX.folder/important.folder` (holds its submailboxes).
pub fn directory_path(account_dir: &Path, name: &str) -> Result<PathBuf, NameError> {
    let name = validate(name)?;
    let mut p = account_dir.to_path_buf();
    for c in name.split(SEPARATOR) {
        p.push(format!("{c}.{FOLDER_EXT}"));
    }
    Ok(p)
}

/// One entry of an account directory listing, as [`classify_entry`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A storage entity: mailbox level name and its format.
    Storage(String, Format),
    /// A directory entity holding submailboxes of this level name.
    Directory(String),
}

/// Read a file name found in an account (or `.folder`) directory. Hidden files (our sidecars,
/// temp files) and unknown extensions give `None`.
pub fn classify_entry(file_name: &str) -> Option<Entry> {
    if file_name.starts_with('.') {
        return None;
    }
    let (base, ext) = file_name.rsplit_once('.')?;
    if validate_component(base).is_err() {
        return None;
    }
    match ext {
        "mbox" => Some(Entry::Storage(base.to_string(), Format::Mbox)),
        "mdir" => Some(Entry::Storage(base.to_string(), Format::Mdir)),
        FOLDER_EXT => Some(Entry::Directory(base.to_string())),
        _ => None,
    }
}
