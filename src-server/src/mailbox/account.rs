//! One account's mailboxes on disk: finding, listing, sizing, creating, renaming and deleting them
//! (guide.txt:9237-9288 names and hierarchy, 9717-9740 account files, 8757-8787 Mail Storage).
//!
//! A MultiMailbox account keeps its mailboxes in its `.macnt` directory, placed by
//! [`names::storage_path`] / [`names::directory_path`]; a TextMailbox or MailDirMailbox account has
//! exactly one mailbox, its INBOX, stored as `<account>.mbox` / `<account>.mdir` in the domain
//! directory (guide.txt:9736-9740).
//!
//! Security: every mailbox name goes through [`names::validate`] before it becomes a path, so `..`,
//! absolute names and hidden files are refused. Listings read only the account's own directory and
//! never follow a symbolic link out of it (only real files and directories are taken).
//!
//! Implementation notes: opening, renaming and deleting storage entities goes through the shared
//! [`MailboxManager`], which refuses to move or remove a mailbox a session has open. A rename or a
//! delete of a whole subtree works mailbox by mailbox, so a mailbox in use stops it part way: what
//! was done is returned in the error-free part and stays done. New directories are created one
//! level at a time and their parent directory fsynced.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::names::{self, Entry, SEPARATOR};
use super::{io_err, Format, Mailbox, MailboxError, MailboxManager};
use crate::store::fsutil::{create_dir_durable, sync_dir};
use crate::store::{AccountType, Store, StoreError};

/// Why an account mailbox operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountBoxError {
    /// The account does not exist (or the store failed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mailbox layer refused or failed.
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    /// The operation is not possible for this name or account (the text says why).
    #[error("{0}")]
    Refused(&'static str),
}

impl From<names::NameError> for AccountBoxError {
    fn from(e: names::NameError) -> AccountBoxError {
        AccountBoxError::Mailbox(MailboxError::Name(e))
    }
}

/// One name in an account's mailbox listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Full mailbox name (`INBOX/important`).
    pub name: String,
    /// The storage entity's format, if the name is a mailbox holding messages.
    pub storage: Option<Format>,
    /// Whether the name also has a directory entity (it may hold submailboxes).
    pub folder: bool,
}

/// An account's mailbox storage.
#[derive(Debug, Clone)]
pub struct AccountMailboxes {
    kind: AccountType,
    dir: PathBuf,
    account: String,
}

/// The INBOX name (guide.txt:9283-9288: always case-insensitive, normalised by `names`).
pub const INBOX: &str = "INBOX";

impl AccountMailboxes {
    /// The mailboxes of account `account` in domain `domain` (aliases are not followed).
    pub fn open(
        store: &Store,
        domain: &str,
        account: &str,
    ) -> Result<AccountMailboxes, StoreError> {
        let (kind, dir) = store.account_location(domain, account)?;
        let account = crate::store::names::normalize("account", account)?;
        Ok(AccountMailboxes { kind, dir, account })
    }

    /// The account type.
    pub fn kind(&self) -> AccountType {
        self.kind
    }

    /// The format of a single-mailbox account's INBOX; `None` for a MultiMailbox account.
    fn single_format(&self) -> Option<Format> {
        match self.kind {
            AccountType::MultiMailbox => None,
            AccountType::TextMailbox => Some(Format::Mbox),
            AccountType::MailDirMailbox => Some(Format::Mdir),
        }
    }

    /// The storage entity of mailbox `name`, if it exists.
    pub fn find(&self, name: &str) -> Result<Option<(PathBuf, Format)>, names::NameError> {
        let name = names::validate(name)?;
        if let Some(f) = self.single_format() {
            let p = self.dir.join(format!("{}.{}", self.account, f.extension()));
            return Ok((name == INBOX && is_entity(&p, f)).then_some((p, f)));
        }
        for f in [Format::Mbox, Format::Mdir] {
            let p = names::storage_path(&self.dir, &name, f)?;
            if is_entity(&p, f) {
                return Ok(Some((p, f)));
            }
        }
        Ok(None)
    }

    /// Whether mailbox `name` has a directory entity (MultiMailbox accounts only).
    fn has_folder(&self, name: &str) -> bool {
        self.single_format().is_none()
            && names::directory_path(&self.dir, name).is_ok_and(|p| is_real_dir(&p))
    }

    /// Opens mailbox `name`, which must exist.
    pub fn open_mailbox(
        &self,
        mgr: &MailboxManager,
        name: &str,
    ) -> Result<Arc<Mailbox>, AccountBoxError> {
        let (p, f) = self.find(name)?.ok_or(MailboxError::NotFound)?;
        Ok(mgr.open(&p, f)?)
    }

    /// Opens the INBOX, creating it in `format` if the account has none yet (first delivery).
    pub fn open_inbox(
        &self,
        mgr: &MailboxManager,
        format: Format,
    ) -> Result<Arc<Mailbox>, AccountBoxError> {
        if let Some((p, f)) = self.find(INBOX)? {
            return Ok(mgr.open(&p, f)?);
        }
        let (p, f) = match self.single_format() {
            Some(f) => (
                self.dir.join(format!("{}.{}", self.account, f.extension())),
                f,
            ),
            None => (names::storage_path(&self.dir, INBOX, format)?, format),
        };
        Ok(mgr.open_or_create(&p, f)?)
    }

    /// Every mailbox and folder name, sorted.
    pub fn list(&self) -> Result<Vec<Listed>, AccountBoxError> {
        if self.single_format().is_some() {
            let inbox = self.find(INBOX)?;
            return Ok(vec![Listed {
                name: INBOX.to_string(),
                storage: Some(inbox.map_or(Format::Mbox, |(_, f)| f)),
                folder: false,
            }]);
        }
        let mut out: Vec<Listed> = Vec::new();
        walk(&self.dir, "", 0, &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Total size in bytes of all mailboxes (the Mail Storage usage, guide.txt:8765-8769).
    pub fn total_size(&self) -> u64 {
        match self.single_format() {
            Some(f) => {
                let p = self.dir.join(format!("{}.{}", self.account, f.extension()));
                entity_size(&p)
            }
            None => tree_size(&self.dir, 0),
        }
    }

    /// Creates a mailbox from a create request (`name`, `name/` for a folder only, `name.mdir`
    /// for an explicit format, guide.txt:9274-9279, 9455-9462); missing parent folders are made.
    /// Returns the normalised name.
    pub fn create(
        &self,
        mgr: &MailboxManager,
        raw: &str,
        default: Format,
    ) -> Result<String, AccountBoxError> {
        if self.single_format().is_some() {
            return Err(AccountBoxError::Refused(
                "A single-mailbox account cannot have other mailboxes",
            ));
        }
        let req = names::parse_create_name(raw)?;
        self.make_parents(&req.name)?;
        if req.directory_only {
            if self.has_folder(&req.name) {
                return Err(MailboxError::Exists.into());
            }
            let p = names::directory_path(&self.dir, &req.name)?;
            create_dir_durable(&p).map_err(io_err("cannot create", &p))?;
            return Ok(req.name);
        }
        if self.find(&req.name)?.is_some() {
            return Err(MailboxError::Exists.into());
        }
        let format = req.format.unwrap_or(default);
        let p = names::storage_path(&self.dir, &req.name, format)?;
        mgr.open_or_create(&p, format)?;
        Ok(req.name)
    }

    /// Creates the directory entities of every level above `name`.
    fn make_parents(&self, name: &str) -> Result<(), AccountBoxError> {
        let comps: Vec<&str> = name.split(SEPARATOR).collect();
        for i in 1..comps.len() {
            let parent = comps[..i].join("/");
            let p = names::directory_path(&self.dir, &parent)?;
            create_dir_durable(&p).map_err(io_err("cannot create", &p))?;
        }
        Ok(())
    }

    /// Deletes mailbox `name`; with `children`, every submailbox too (DELETEMAILBOX MAILBOXES).
    /// A folder-only name is removed when empty. Returns the names whose storage was deleted.
    pub fn delete(
        &self,
        mgr: &MailboxManager,
        name: &str,
        children: bool,
    ) -> Result<Vec<String>, AccountBoxError> {
        let name = names::validate(name)?;
        if name == INBOX {
            // guide.txt:9280-9281
            return Err(AccountBoxError::Refused("INBOX cannot be deleted"));
        }
        let own = self.find(&name)?;
        let folder = self.has_folder(&name);
        if own.is_none() && !folder {
            return Err(MailboxError::NotFound.into());
        }
        let mut deleted = Vec::new();
        if children && folder {
            let mut subs = Vec::new();
            walk(&names::directory_path(&self.dir, &name)?, "", 0, &mut subs)?;
            for s in subs.iter().filter(|s| s.storage.is_some()) {
                let full = format!("{name}/{}", s.name);
                if let Some((p, f)) = self.find(&full)? {
                    mgr.delete(&p, f)?;
                    deleted.push(full);
                }
            }
        }
        if let Some((p, f)) = own {
            mgr.delete(&p, f)?;
            deleted.push(name.clone());
        }
        if folder {
            remove_empty_folders(&names::directory_path(&self.dir, &name)?)?;
        }
        Ok(deleted)
    }

    /// Renames mailbox `from` to `to`; with `children`, its submailboxes follow
    /// (RENAMEMAILBOX MAILBOXES). Renaming INBOX moves its messages and leaves a new empty INBOX
    /// (guide.txt:9280-9282). Returns the (old, new) names of the storage entities moved.
    pub fn rename(
        &self,
        mgr: &MailboxManager,
        from: &str,
        to: &str,
        children: bool,
    ) -> Result<Vec<(String, String)>, AccountBoxError> {
        if self.single_format().is_some() {
            return Err(AccountBoxError::Refused(
                "A single-mailbox account cannot rename its INBOX",
            ));
        }
        let from = names::validate(from)?;
        let to = names::validate(to)?;
        if to == from || to.starts_with(&format!("{from}/")) {
            return Err(AccountBoxError::Refused(
                "A mailbox cannot be renamed into itself",
            ));
        }
        if self.find(&to)?.is_some() || self.has_folder(&to) {
            return Err(MailboxError::Exists.into());
        }
        let own = self.find(&from)?;
        let own_format = own.as_ref().map(|(_, f)| *f);
        let children = children && from != INBOX && self.has_folder(&from);
        if own.is_none() && !children {
            return Err(MailboxError::NotFound.into());
        }
        let mut moves = Vec::new();
        if let Some(f) = own_format {
            moves.push((from.clone(), to.clone(), f));
        }
        if children {
            let mut subs = Vec::new();
            walk(&names::directory_path(&self.dir, &from)?, "", 0, &mut subs)?;
            for s in &subs {
                if let Some(f) = s.storage {
                    moves.push((format!("{from}/{}", s.name), format!("{to}/{}", s.name), f));
                }
            }
            if moves.is_empty() {
                // Only empty folders: the new name gets its directory entity.
                self.make_parents(&format!("{to}/x"))?;
            }
        }
        let mut done = Vec::new();
        for (old, new, f) in moves {
            self.make_parents(&new)?;
            let a = names::storage_path(&self.dir, &old, f)?;
            let b = names::storage_path(&self.dir, &new, f)?;
            mgr.rename(&a, &b, f)?;
            done.push((old, new));
        }
        if children {
            remove_empty_folders(&names::directory_path(&self.dir, &from)?)?;
        }
        if from == INBOX {
            let f = own_format.unwrap_or(Format::Mbox);
            mgr.open_or_create(&names::storage_path(&self.dir, INBOX, f)?, f)?;
        }
        Ok(done)
    }
}

/// Whether `p` is a real (not symlinked) storage entity of format `f`.
fn is_entity(p: &Path, f: Format) -> bool {
    match fs::symlink_metadata(p) {
        Ok(m) => match f {
            Format::Mbox => m.file_type().is_file(),
            Format::Mdir => m.file_type().is_dir(),
        },
        Err(_) => false,
    }
}

fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir())
}

/// Collects the mailboxes and folders below `dir`, names prefixed with `prefix`.
fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<Listed>) -> Result<(), MailboxError> {
    if depth >= names::MAX_DEPTH {
        return Ok(());
    }
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot list", dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err("cannot list", dir))?;
        let Ok(file_name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(ft) = entry.file_type() else { continue };
        let (base, storage, folder) = match names::classify_entry(&file_name) {
            Some(Entry::Storage(b, Format::Mbox)) if ft.is_file() => (b, Some(Format::Mbox), false),
            Some(Entry::Storage(b, Format::Mdir)) if ft.is_dir() => (b, Some(Format::Mdir), false),
            Some(Entry::Directory(b)) if ft.is_dir() => (b, None, true),
            _ => continue,
        };
        let name = if prefix.is_empty() && base.eq_ignore_ascii_case(INBOX) {
            INBOX.to_string()
        } else {
            format!("{prefix}{base}")
        };
        match out.iter_mut().find(|l| l.name == name) {
            Some(l) => {
                l.storage = l.storage.or(storage);
                l.folder |= folder;
            }
            None => out.push(Listed {
                name: name.clone(),
                storage,
                folder,
            }),
        }
        if folder {
            walk(&entry.path(), &format!("{name}/"), depth + 1, out)?;
        }
    }
    Ok(())
}

/// Size of a storage entity: the `.mbox` file, or the files of an `.mdir` directory.
fn entity_size(p: &Path) -> u64 {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
        _ => 0,
    }
}

/// Size of every storage entity below a MultiMailbox account directory.
fn tree_size(dir: &Path, depth: usize) -> u64 {
    if depth >= names::MAX_DEPTH {
        return 0;
    }
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut total = 0u64;
    for e in rd.filter_map(Result::ok) {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        total = total.saturating_add(match names::classify_entry(&name) {
            Some(Entry::Storage(..)) => entity_size(&e.path()),
            Some(Entry::Directory(_)) if e.file_type().is_ok_and(|t| t.is_dir()) => {
                tree_size(&e.path(), depth + 1)
            }
            _ => 0,
        });
    }
    total
}

/// Removes `dir` and its folder subdirectories bottom-up where they hold nothing else.
fn remove_empty_folders(dir: &Path) -> Result<(), MailboxError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot list", dir)(e)),
    };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        let is_folder = name
            .to_str()
            .and_then(names::classify_entry)
            .is_some_and(|en| matches!(en, Entry::Directory(_)));
        if is_folder && e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_folders(&e.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => {
            let parent = super::fsutil::parent_of(dir);
            sync_dir(&parent).map_err(io_err("cannot sync", &parent))
        }
        // Still holds a mailbox that could not be moved, or a foreign file: keep it.
        Err(_) => Ok(()),
    }
}
