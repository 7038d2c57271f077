//! The Mailbox Manager: message storage for account mailboxes (guide.txt:9237-9523, spec/C §6).
//!
//! Formats (guide.txt:9383-9453), chosen by the file name extension:
//! - `.mbox` ([`mbox`]): legacy BSD mailbox, each message behind a `From <return-path>(flags-UID) date`
//!   line, `>From ` escaping, a sidecar index for fast opening and for the UID state.
//! - `.mdir` ([`mdir`]): a directory with one `uid-flags-yyyymmddhhmmss` file per message, shared
//!   between mailboxes with hard links.
//!
//! Keywords and mod-sequences, which neither format can hold, are in a journal beside each
//! mailbox ([`meta`]), written before the mailbox file on every change.
//!
//! Names and on-disk placement are in [`names`], the subscription list in [`subscription`].
//!
//! Concurrency (guide.txt:9436-9441): no OS file locks. All sessions on one mailbox share one
//! [`Mailbox`] from the [`MailboxManager`]; its mutex serialises every operation and a broadcast
//! channel tells the other sessions what changed (IMAP IDLE, POP). The manager must be the only
//! writer of the mailbox files: one manager per base directory, one process.
//!
//! The calls do blocking file I/O and fsync; from async code call them in `spawn_blocking`.
//!
//! Security: mailbox paths come from the caller, which builds them with [`names::storage_path`]
//! after [`names::validate`]. Message bytes are untrusted; parsers of the mailbox files are bounded
//! (a From-line is read up to 1024 bytes) and never panic on damaged files.
//!
//! Durability: an append returns after the message and the index record are fsynced; expunge writes
//! a compacted copy (temp, fsync, rename, fsync dir). See `mbox.rs` and `mdir.rs` for crash rules.
//!
//! todo: the `.mdir` line count in file names of later versions (guide.txt:24554-24556); External
//! INBOX locking; ACLs (stored by the account layer).

pub mod account;
pub mod acl;
mod fsutil;
mod index;
mod mbox;
mod mdir;
pub mod meta;
pub mod names;
pub mod subscription;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::BitOr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::broadcast;

pub use names::NameError;

/// Storage format of one mailbox, named by its extension (guide.txt:9383-9392).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.mbox`, the default (guide.txt:9443-9446).
    Mbox,
    /// `.mdir`, one file per message.
    Mdir,
}

impl Format {
    /// The file or directory name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Mbox => "mbox",
            Format::Mdir => "mdir",
        }
    }

    /// The format named by an extension (`mbox`, `mdir`).
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext {
            "mbox" => Some(Format::Mbox),
            "mdir" => Some(Format::Mdir),
            _ => None,
        }
    }
}

/// Message status flags. The guide stores them in the `.mbox` From-line comment and the `.mdir`
/// file name but leaves their encoding open (guide.txt:9400-9402, 9421-9424); ours is in
/// [`Flags::encode`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

/// Letters of the fixed-width flag field, one position per flag, `_` when clear. Maildir's letters
/// where it has one (S seen, R replied, F flagged, T trashed, D draft), N for recent; two spare
/// positions keep the width fixed if a flag is added later.
const FLAG_LETTERS: [(u8, Flags); 6] = [
    (b'S', Flags::SEEN),
    (b'R', Flags::ANSWERED),
    (b'F', Flags::FLAGGED),
    (b'T', Flags::DELETED),
    (b'D', Flags::DRAFT),
    (b'N', Flags::RECENT),
];

/// Width of the encoded flag field.
pub const FLAGS_WIDTH: usize = 8;

impl Flags {
    /// `\Seen`
    pub const SEEN: Flags = Flags(1);
    /// `\Answered`
    pub const ANSWERED: Flags = Flags(2);
    /// `\Flagged`
    pub const FLAGGED: Flags = Flags(4);
    /// `\Deleted`
    pub const DELETED: Flags = Flags(8);
    /// `\Draft`
    pub const DRAFT: Flags = Flags(16);
    /// `\Recent`
    pub const RECENT: Flags = Flags(32);
    const ALL: u16 = 63;

    /// No flag set.
    pub const fn empty() -> Flags {
        Flags(0)
    }
    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// Flags from raw bits; unknown bits are dropped.
    pub const fn from_bits(bits: u16) -> Flags {
        Flags(bits & Flags::ALL)
    }
    /// True when every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// `self` without the flags of `other`.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// The fixed-width field: `S_F_____` is seen and flagged.
    pub fn encode(self) -> [u8; FLAGS_WIDTH] {
        let mut out = [b'_'; FLAGS_WIDTH];
        for (i, (letter, f)) in FLAG_LETTERS.iter().enumerate() {
            if self.contains(*f) {
                out[i] = *letter;
            }
        }
        out
    }

    /// Read the field [`encode`](Flags::encode) writes; `None` if it is not exactly that shape.
    pub fn decode(field: &[u8]) -> Option<Flags> {
        if field.len() != FLAGS_WIDTH {
            return None;
        }
        let mut flags = Flags::empty();
        for (i, &b) in field.iter().enumerate() {
            match FLAG_LETTERS.get(i) {
                Some((letter, f)) if b == *letter => flags = flags | *f,
                _ if b == b'_' => {}
                _ => return None,
            }
        }
        Some(flags)
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({})", String::from_utf8_lossy(&self.encode()))
    }
}

/// How [`Mailbox::set_flags`] applies the given flags (IMAP STORE `+FLAGS`, `-FLAGS`, `FLAGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMode {
    /// Set these flags, keep the others.
    Add,
    /// Clear these flags, keep the others.
    Remove,
    /// Make the flags exactly these.
    Replace,
}

impl SetMode {
    fn apply(self, old: Flags, given: Flags) -> Flags {
        match self {
            SetMode::Add => old | given,
            SetMode::Remove => old.without(given),
            SetMode::Replace => given,
        }
    }
}

/// What a listing tells about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMeta {
    /// Unique ID, ascending in mailbox order.
    pub uid: u32,
    /// Size in bytes of what [`Mailbox::read`] returns.
    pub size: u64,
    /// Status flags.
    pub flags: Flags,
    /// When the message was added, Unix seconds (UTC).
    pub internal_date: i64,
    /// Keywords: bit `i` is [`Mailbox::keywords`]`()[i]`.
    pub keywords: u64,
    /// Mod-sequence (RFC 7162): raised by every change of the flags or keywords.
    pub modseq: u64,
}

/// A STORE of flags and keywords (see [`Mailbox::store`]).
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// System flags.
    pub flags: Flags,
    /// Keyword names (atoms); unknown ones join the mailbox's keyword table unless removed.
    pub keywords: &'a [String],
    /// How to apply them.
    pub mode: SetMode,
    /// RFC 7162 UNCHANGEDSINCE: messages with a higher mod-sequence are left alone.
    pub unchanged_since: Option<u64>,
}

/// What a [`Mailbox::store`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// The messages whose flags or keywords changed, as they are now.
    pub changed: Vec<MessageMeta>,
    /// The messages left alone for UNCHANGEDSINCE.
    pub modified: Vec<u32>,
}

/// A change to a mailbox, broadcast to every holder of its handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message was appended.
    Appended {
        /// Its UID.
        uid: u32,
    },
    /// A message's flags or keywords changed.
    FlagsChanged {
        /// The message.
        uid: u32,
        /// Its new flags.
        flags: Flags,
        /// Its new keywords.
        keywords: u64,
        /// Its new mod-sequence.
        modseq: u64,
    },
    /// Messages were removed.
    Expunged {
        /// Their UIDs, ascending.
        uids: Vec<u32>,
    },
}

/// Mailbox errors.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    /// A refused mailbox name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The mailbox does not exist.
    #[error("Mailbox does not exist")]
    NotFound,
    /// The mailbox exists already with the other format.
    #[error("Mailbox exists in a different format")]
    WrongFormat,
    /// The target name is taken.
    #[error("Mailbox already exists")]
    Exists,
    /// Sessions have the mailbox open.
    #[error("Mailbox is in use")]
    InUse,
    /// No message with this UID.
    #[error("Unknown message UID {0}")]
    NoSuchMessage(u32),
    /// A keyword is not an atom, or the mailbox's keyword table is full.
    #[error("Too many keywords, or a keyword that is not an atom")]
    KeywordLimit,
    /// The 32-bit UID space is used up; the mailbox needs a new UIDVALIDITY.
    #[error("Mailbox UIDs exhausted")]
    UidsExhausted,
    /// A file operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
}

/// Attach context to an I/O error.
pub(crate) fn io_err(
    what: impl fmt::Display,
    path: &Path,
) -> impl FnOnce(io::Error) -> MailboxError {
    let ctx = format!("{what} {}", path.display());
    move |e| MailboxError::Io(ctx, e)
}

/// A fresh UIDVALIDITY: the current time, as most servers do, never 0.
pub(crate) fn new_uid_validity() -> u32 {
    let now = chrono::Utc::now().timestamp();
    u32::try_from(now).unwrap_or(1).max(1)
}

enum Backend {
    Mbox(mbox::Mbox),
    Mdir(mdir::Mdir),
}

impl Backend {
    fn list(&self) -> Vec<MessageMeta> {
        match self {
            Backend::Mbox(m) => m.list(),
            Backend::Mdir(m) => m.list(),
        }
    }

    fn get(&self, uid: u32) -> Option<MessageMeta> {
        match self {
            Backend::Mbox(m) => m.get(uid),
            Backend::Mdir(m) => m.get(uid),
        }
    }
}

/// What the mutex guards: the storage and its keyword/mod-sequence journal. Lock order: the
/// journal is written before the storage (see `meta.rs`).
struct Inner {
    backend: Backend,
    meta: meta::Meta,
}

/// One open mailbox, shared by every session that has it open. Clone the `Arc`, not the mailbox.
pub struct Mailbox {
    path: PathBuf,
    format: Format,
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Change>,
}

/// Capacity of the change channel; a session that lags further gets `RecvError::Lagged` and
/// must re-list the mailbox.
const CHANGE_CAPACITY: usize = 1024;

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic in another session cannot leave the files torn (every write is ordered and
        // fsynced), so the state behind a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, c: Change) {
        // No receivers is normal.
        let _ = self.changes.send(c);
    }

    /// The mailbox file or directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The storage format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Append a message; returns its UID once the message is durable on disk.
    /// In `.mbox` a message that does not end with a line break gets one.
    pub fn append(
        &self,
        bytes: &[u8],
        flags: Flags,
        internal_date: i64,
    ) -> Result<u32, MailboxError> {
        self.append_with(bytes, flags, &[], internal_date)
    }

    /// [`append`](Mailbox::append) with keywords (IMAP APPEND, COPY).
    pub fn append_with(
        &self,
        bytes: &[u8],
        flags: Flags,
        keywords: &[String],
        internal_date: i64,
    ) -> Result<u32, MailboxError> {
        let mut g = self.lock();
        let inner = &mut *g;
        let kw = match keywords {
            [] => 0,
            k => inner
                .meta
                .mask(k, true)?
                .ok_or(MailboxError::KeywordLimit)?,
        };
        let uid = match &mut inner.backend {
            Backend::Mbox(m) => m.append(bytes, flags, internal_date)?,
            Backend::Mdir(m) => m.append(bytes, flags, internal_date)?,
        };
        inner.meta.appended(uid, kw);
        drop(g);
        self.notify(Change::Appended { uid });
        Ok(uid)
    }

    /// Every message, in mailbox order (ascending UIDs).
    pub fn list(&self) -> Vec<MessageMeta> {
        let g = self.lock();
        let mut v = g.backend.list();
        for m in &mut v {
            let e = g.meta.entry(m.uid);
            m.keywords = e.keywords;
            m.modseq = e.modseq;
        }
        v
    }

    /// The message with this UID, as it was appended.
    pub fn read(&self, uid: u32) -> Result<Vec<u8>, MailboxError> {
        match &self.lock().backend {
            Backend::Mbox(m) => m.read(uid),
            Backend::Mdir(m) => m.read(uid),
        }
    }

    /// Change the system flags of these messages; returns the messages whose flags changed, with
    /// their new flags. Unknown UIDs are skipped (another session may have expunged them).
    pub fn set_flags(
        &self,
        uids: &[u32],
        flags: Flags,
        mode: SetMode,
    ) -> Result<Vec<(u32, Flags)>, MailboxError> {
        let u = Update {
            flags,
            keywords: &[],
            mode,
            unchanged_since: None,
        };
        Ok(self
            .store(uids, &u)?
            .changed
            .into_iter()
            .map(|m| (m.uid, m.flags))
            .collect())
    }

    /// Change flags and keywords (IMAP STORE). A change other than `\Recent` alone gets a new
    /// mod-sequence, recorded before the storage changes. Unknown UIDs are skipped.
    pub fn store(&self, uids: &[u32], u: &Update<'_>) -> Result<Stored, MailboxError> {
        let mut g = self.lock();
        let inner = &mut *g;
        let kw = match u.keywords {
            [] => 0,
            k => inner
                .meta
                .mask(k, u.mode != SetMode::Remove)?
                .ok_or(MailboxError::KeywordLimit)?,
        };
        let mut out = Stored::default();
        let mut journal = Vec::new();
        let mut flag_uids = Vec::new();
        // Parallel to `out.changed`: whether the message gets the new mod-sequence.
        let mut bumped = Vec::new();
        for &uid in uids {
            let Some(mut m) = inner.backend.get(uid) else {
                continue;
            };
            let stored_flags = m.flags;
            let e = inner.meta.entry(uid);
            if u.unchanged_since.is_some_and(|since| e.modseq > since) {
                out.modified.push(uid);
                continue;
            }
            let flags = u.mode.apply(m.flags, u.flags);
            let keywords = match u.mode {
                SetMode::Add => e.keywords | kw,
                SetMode::Remove => e.keywords & !kw,
                SetMode::Replace => kw,
            };
            let visible = flags.without(Flags::RECENT) != m.flags.without(Flags::RECENT)
                || keywords != e.keywords;
            if flags != m.flags {
                flag_uids.push(uid);
            }
            m.modseq = e.modseq;
            m.flags = flags;
            m.keywords = keywords;
            if visible {
                journal.push((uid, keywords));
            }
            if visible || flags != stored_flags {
                out.changed.push(m);
                bumped.push(visible);
            }
        }
        if !journal.is_empty() {
            let modseq = inner.meta.bump(&journal)?;
            for (m, _) in out.changed.iter_mut().zip(&bumped).filter(|(_, b)| **b) {
                m.modseq = modseq;
            }
        }
        if !flag_uids.is_empty() {
            let (flags, mode) = (u.flags, u.mode);
            match &mut inner.backend {
                Backend::Mbox(m) => m.set_flags(&flag_uids, |old| mode.apply(old, flags))?,
                Backend::Mdir(m) => m.set_flags(&flag_uids, |old| mode.apply(old, flags))?,
            };
        }
        drop(g);
        for m in &out.changed {
            self.notify(Change::FlagsChanged {
                uid: m.uid,
                flags: m.flags,
                keywords: m.keywords,
                modseq: m.modseq,
            });
        }
        Ok(out)
    }

    /// Remove every message flagged `\Deleted`; returns their UIDs.
    pub fn expunge(&self) -> Result<Vec<u32>, MailboxError> {
        let mut g = self.lock();
        let inner = &mut *g;
        let uids = match &mut inner.backend {
            Backend::Mbox(m) => m.expunge()?,
            Backend::Mdir(m) => m.expunge()?,
        };
        if !uids.is_empty() {
            inner.meta.expunged(&uids);
        }
        drop(g);
        if !uids.is_empty() {
            self.notify(Change::Expunged { uids: uids.clone() });
        }
        Ok(uids)
    }

    /// UIDVALIDITY (RFC 3501 §2.3.1.1).
    pub fn uid_validity(&self) -> u32 {
        match &self.lock().backend {
            Backend::Mbox(m) => m.uid_validity(),
            Backend::Mdir(m) => m.uid_validity(),
        }
    }

    /// The UID the next appended message will get.
    pub fn uid_next(&self) -> u32 {
        match &self.lock().backend {
            Backend::Mbox(m) => m.uid_next(),
            Backend::Mdir(m) => m.uid_next(),
        }
    }

    /// HIGHESTMODSEQ (RFC 7162 §3.1.1).
    pub fn highest_modseq(&self) -> u64 {
        self.lock().meta.highest()
    }

    /// The keyword table: bit `i` of [`MessageMeta::keywords`] is entry `i`.
    pub fn keywords(&self) -> Vec<String> {
        self.lock().meta.keywords().to_vec()
    }

    /// Whether a new keyword can still be added (IMAP PERMANENTFLAGS `\*`).
    pub fn keywords_full(&self) -> bool {
        self.lock().meta.keywords().len() >= meta::MAX_KEYWORDS
    }

    /// Receive every later change to this mailbox.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// Hands out one shared [`Mailbox`] per path, so sessions on the same mailbox are synchronised.
#[derive(Default)]
pub struct MailboxManager {
    open: Mutex<HashMap<PathBuf, Weak<Mailbox>>>,
}

impl MailboxManager {
    /// A manager with nothing open.
    pub fn new() -> MailboxManager {
        MailboxManager::default()
    }

    /// Open an existing mailbox (`<name>.mbox` file or `<name>.mdir` directory).
    pub fn open(&self, path: &Path, format: Format) -> Result<Arc<Mailbox>, MailboxError> {
        self.get(path, format, false)
    }

    /// Open a mailbox, creating an empty one if it does not exist.
    pub fn open_or_create(
        &self,
        path: &Path,
        format: Format,
    ) -> Result<Arc<Mailbox>, MailboxError> {
        self.get(path, format, true)
    }

    fn get(&self, path: &Path, format: Format, create: bool) -> Result<Arc<Mailbox>, MailboxError> {
        let key = canonical_key(path)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mb) = open.get(&key).and_then(Weak::upgrade) {
            if mb.format != format {
                return Err(MailboxError::WrongFormat);
            }
            return Ok(mb);
        }
        open.retain(|_, w| w.strong_count() > 0);
        let (backend, validity) = match format {
            Format::Mbox => {
                let m = mbox::Mbox::open(&key, create)?;
                let v = m.uid_validity();
                (Backend::Mbox(m), v)
            }
            Format::Mdir => {
                let m = mdir::Mdir::open(&key, create)?;
                let v = m.uid_validity();
                (Backend::Mdir(m), v)
            }
        };
        let uids: Vec<u32> = backend.list().iter().map(|m| m.uid).collect();
        let meta_path = meta::meta_path(&key, format == Format::Mdir);
        let meta = meta::Meta::open(&meta_path, validity, &uids)?;
        let (changes, _) = broadcast::channel(CHANGE_CAPACITY);
        let mb = Arc::new(Mailbox {
            path: key.clone(),
            format,
            inner: Mutex::new(Inner { backend, meta }),
            changes,
        });
        open.insert(key, Arc::downgrade(&mb));
        Ok(mb)
    }

    /// Rename a mailbox file or directory together with its sidecar files. Refused while any
    /// session has it open. A crash between the two renames loses only the index (rebuilt on
    /// open with a new UIDVALIDITY).
    pub fn rename(&self, from: &Path, to: &Path, format: Format) -> Result<(), MailboxError> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        check_closed(&open, from)?;
        check_closed(&open, to)?;
        if to.exists() {
            return Err(MailboxError::Exists);
        }
        if !from.exists() {
            return Err(MailboxError::NotFound);
        }
        std::fs::rename(from, to).map_err(io_err("cannot rename", from))?;
        if format == Format::Mbox {
            for side in [mbox::index_path, |p: &Path| meta::meta_path(p, false)] {
                let (a, b) = (side(from), side(to));
                if a.exists() {
                    std::fs::rename(&a, &b).map_err(io_err("cannot rename", &a))?;
                }
            }
        }
        for dir in [fsutil::parent_of(from), fsutil::parent_of(to)] {
            fsutil::sync_dir(&dir).map_err(io_err("cannot sync", &dir))?;
        }
        Ok(())
    }

    /// Delete a mailbox file or directory and its sidecar files. Refused while any session has
    /// it open.
    pub fn delete(&self, path: &Path, format: Format) -> Result<(), MailboxError> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        check_closed(&open, path)?;
        let not_found = |what: &'static str| {
            move |e: io::Error| match e.kind() {
                io::ErrorKind::NotFound => MailboxError::NotFound,
                _ => io_err(what, path)(e),
            }
        };
        match format {
            Format::Mbox => {
                std::fs::remove_file(path).map_err(not_found("cannot delete"))?;
                for side in [mbox::index_path(path), meta::meta_path(path, false)] {
                    match std::fs::remove_file(&side) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err("cannot delete", &side)(e)),
                    }
                }
            }
            Format::Mdir => std::fs::remove_dir_all(path).map_err(not_found("cannot delete"))?,
        }
        let dir = fsutil::parent_of(path);
        fsutil::sync_dir(&dir).map_err(io_err("cannot sync", &dir))
    }

    /// Deliver one message to many `.mdir` mailboxes as one file hard-linked into each
    /// (guide.txt:9426-9430). Returns the UID in each mailbox, in the order of `paths`. Where a
    /// link is impossible (another file system) the message is copied instead.
    pub fn append_linked(
        &self,
        paths: &[PathBuf],
        bytes: &[u8],
        flags: Flags,
        internal_date: i64,
    ) -> Result<Vec<u32>, MailboxError> {
        let boxes = paths
            .iter()
            .map(|p| self.open_or_create(p, Format::Mdir))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = boxes.first() else {
            return Ok(Vec::new());
        };
        let shared = mdir::write_shared(first.path(), bytes)?;
        let mut uids = Vec::with_capacity(boxes.len());
        let mut result = Ok(());
        for mb in &boxes {
            let mut g = mb.lock();
            let inner = &mut *g;
            let r = match &mut inner.backend {
                Backend::Mdir(m) => m.link_in(&shared, bytes, flags, internal_date),
                Backend::Mbox(_) => Err(MailboxError::WrongFormat),
            };
            if let Ok(uid) = r {
                inner.meta.appended(uid, 0);
            }
            drop(g);
            match r {
                Ok(uid) => {
                    mb.notify(Change::Appended { uid });
                    uids.push(uid);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // The shared temp name is only a staging link; a leftover is removed on the next open.
        let _ = std::fs::remove_file(&shared);
        result.map(|_| uids)
    }
}

fn check_closed(open: &HashMap<PathBuf, Weak<Mailbox>>, path: &Path) -> Result<(), MailboxError> {
    let key = canonical_key(path)?;
    if open.get(&key).is_some_and(|w| w.strong_count() > 0) {
        return Err(MailboxError::InUse);
    }
    Ok(())
}

/// One key per mailbox whatever path spelling the caller used: the canonical parent directory
/// plus the file name (the mailbox itself may not exist yet).
fn canonical_key(path: &Path) -> Result<PathBuf, MailboxError> {
    let name = path.file_name().ok_or_else(|| {
        MailboxError::Io(
            format!("no file name in {}", path.display()),
            io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let parent = fsutil::parent_of(path);
    let parent = std::fs::canonicalize(&parent).map_err(io_err("cannot open", &parent))?;
    Ok(parent.join(name))
}
