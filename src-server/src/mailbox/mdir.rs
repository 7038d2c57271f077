//! `.mdir` mailboxes (guide.txt:9416-9430): a directory with one file per message named
//! `iiii-flags-timestamp` — the UID in decimal, the fixed-width flag field of [`Flags::encode`],
//! and the internal date in GMT as `yyyymmddhhmmss`, e.g. `42-S_F_____-20240131235959`.
//!
//! The name carries everything, so opening is one directory listing (plus a stat per file for the
//! size). UIDVALIDITY and UIDNEXT live in `.uidstate` (the text data format,
//! `{UIDValidity=…;UIDNext=…;}`), written atomically at creation and before every expunge, so UIDs
//! never go backwards; on open UIDNEXT is the larger of the stored value and the highest UID + 1.
//!
//! Crash rules: a message is written to `.tmp-…`, fsynced, renamed to its final name, and the
//! directory fsynced before the append returns; leftover `.tmp-…` files are removed on open. A flag
//! change is a rename (then directory fsync); an interrupted expunge leaves some `\Deleted`
//! messages in place, which the next expunge removes.
//!
//! Shared storage (guide.txt:9426-9430): [`write_shared`] stages one file and [`Mdir::link_in`]
//! hard-links it into each mailbox; the OS frees it with its last link.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{NaiveDateTime, TimeZone, Utc};

use super::{fsutil, io_err, new_uid_validity, Flags, MailboxError, MessageMeta};
use crate::format::{self, Value};

const STATE_FILE: &str = ".uidstate";
const TMP_PREFIX: &str = ".tmp-";

struct MRec {
    uid: u32,
    flags: Flags,
    date: i64,
    size: u64,
}

pub(crate) struct Mdir {
    dir: PathBuf,
    recs: Vec<MRec>,
    uid_validity: u32,
    uid_next: u32,
}

fn stamp(date: i64) -> String {
    let dt = Utc.timestamp_opt(date, 0).single().unwrap_or_default();
    dt.format("%Y%m%d%H%M%S").to_string()
}

/// The file name of a message.
pub(crate) fn file_name(uid: u32, flags: Flags, date: i64) -> String {
    format!(
        "{uid}-{}-{}",
        String::from_utf8_lossy(&flags.encode()),
        stamp(date)
    )
}

/// Read a message file name; `None` for anything else.
pub(crate) fn parse_name(name: &str) -> Option<(u32, Flags, i64)> {
    let mut parts = name.splitn(3, '-');
    let uid = parts.next()?;
    let flags = parts.next()?;
    let ts = parts.next()?;
    if uid.is_empty()
        || !uid.bytes().all(|b| b.is_ascii_digit())
        || ts.len() != 14
        || !ts.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let uid: u32 = uid.parse().ok().filter(|&u| u != 0)?;
    let flags = Flags::decode(flags.as_bytes())?;
    let date = NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S")
        .ok()?
        .and_utc()
        .timestamp();
    Some((uid, flags, date))
}

fn read_state(dir: &Path) -> Option<(u32, u32)> {
    let bytes = fs::read(dir.join(STATE_FILE)).ok()?;
    let v = format::parse(&bytes).ok()?;
    let validity = v
        .get_text("UIDValidity")?
        .parse()
        .ok()
        .filter(|&v: &u32| v != 0)?;
    let next = v
        .get_text("UIDNext")?
        .parse()
        .ok()
        .filter(|&v: &u32| v != 0)?;
    Some((validity, next))
}

fn write_state(dir: &Path, validity: u32, next: u32) -> Result<(), MailboxError> {
    let v = format::dict([
        ("UIDValidity", Value::str(validity.to_string())),
        ("UIDNext", Value::str(next.to_string())),
    ]);
    let path = dir.join(STATE_FILE);
    fsutil::write_atomic(&path, &format::to_bytes(&v)).map_err(io_err("cannot write", &path))
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn temp_path(dir: &Path) -> PathBuf {
    let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Stage `bytes` as a durable hidden file in mailbox directory `dir`, to be linked into many
/// mailboxes with [`Mdir::link_in`]. The caller removes it afterwards.
pub(crate) fn write_shared(dir: &Path, bytes: &[u8]) -> Result<PathBuf, MailboxError> {
    let tmp = temp_path(dir);
    write_synced(&tmp, bytes).map_err(io_err("cannot write", &tmp))?;
    Ok(tmp)
}

impl Mdir {
    pub(crate) fn open(dir: &Path, create: bool) -> Result<Mdir, MailboxError> {
        if dir.is_file() {
            return Err(MailboxError::WrongFormat);
        }
        if !dir.exists() {
            if !create {
                return Err(MailboxError::NotFound);
            }
            fs::create_dir(dir).map_err(io_err("cannot create", dir))?;
            fsutil::sync_dir(&fsutil::parent_of(dir)).map_err(io_err("cannot sync dir of", dir))?;
        }
        let mut recs = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
            let entry = entry.map_err(io_err("cannot list", dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TMP_PREFIX) {
                let p = entry.path();
                fs::remove_file(&p).map_err(io_err("cannot remove", &p))?;
                continue;
            }
            let Some((uid, flags, date)) = parse_name(&name) else {
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(io_err("cannot stat", &entry.path()))?;
            if meta.is_file() {
                recs.push(MRec {
                    uid,
                    flags,
                    date,
                    size: meta.len(),
                });
            }
        }
        recs.sort_by_key(|r| r.uid);
        // Two files with one UID can only come from outside; keep the first.
        recs.dedup_by_key(|r| r.uid);
        let max_next = recs.last().map_or(1, |r| r.uid.saturating_add(1));
        let (uid_validity, uid_next) = match read_state(dir) {
            Some((v, n)) => (v, n.max(max_next)),
            None => {
                let v = new_uid_validity();
                write_state(dir, v, max_next)?;
                (v, max_next)
            }
        };
        Ok(Mdir {
            dir: dir.to_path_buf(),
            recs,
            uid_validity,
            uid_next,
        })
    }

    pub(crate) fn uid_validity(&self) -> u32 {
        self.uid_validity
    }

    pub(crate) fn uid_next(&self) -> u32 {
        self.uid_next
    }

    pub(crate) fn list(&self) -> Vec<MessageMeta> {
        self.recs.iter().map(meta_of).collect()
    }

    /// One message's listing (keywords and mod-sequence are the journal's, filled in above).
    pub(crate) fn get(&self, uid: u32) -> Option<MessageMeta> {
        self.find(uid).map(|i| meta_of(&self.recs[i]))
    }

    fn find(&self, uid: u32) -> Option<usize> {
        self.recs.binary_search_by_key(&uid, |r| r.uid).ok()
    }

    fn path_of(&self, r: &MRec) -> PathBuf {
        self.dir.join(file_name(r.uid, r.flags, r.date))
    }

    pub(crate) fn read(&self, uid: u32) -> Result<Vec<u8>, MailboxError> {
        let i = self.find(uid).ok_or(MailboxError::NoSuchMessage(uid))?;
        let p = self.path_of(&self.recs[i]);
        fs::read(&p).map_err(io_err("cannot read", &p))
    }

    fn take_uid(&mut self) -> Result<u32, MailboxError> {
        let uid = self.uid_next;
        self.uid_next = uid.checked_add(1).ok_or(MailboxError::UidsExhausted)?;
        Ok(uid)
    }

    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        flags: Flags,
        date: i64,
    ) -> Result<u32, MailboxError> {
        let tmp = temp_path(&self.dir);
        if let Err(e) = write_synced(&tmp, bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("cannot write", &tmp)(e));
        }
        let uid = self.take_uid()?;
        let dest = self.dir.join(file_name(uid, flags, date));
        fs::rename(&tmp, &dest).map_err(io_err("cannot rename into", &dest))?;
        fsutil::sync_dir(&self.dir).map_err(io_err("cannot sync", &self.dir))?;
        self.recs.push(MRec {
            uid,
            flags,
            date,
            size: bytes.len() as u64,
        });
        Ok(uid)
    }

    /// Hard-link the staged file `shared` in as a new message; copies `bytes` when linking is
    /// impossible (another file system).
    pub(crate) fn link_in(
        &mut self,
        shared: &Path,
        bytes: &[u8],
        flags: Flags,
        date: i64,
    ) -> Result<u32, MailboxError> {
        let uid = self.uid_next;
        let dest = self.dir.join(file_name(uid, flags, date));
        match fs::hard_link(shared, &dest) {
            Ok(()) => {
                self.take_uid()?;
                fsutil::sync_dir(&self.dir).map_err(io_err("cannot sync", &self.dir))?;
                self.recs.push(MRec {
                    uid,
                    flags,
                    date,
                    size: bytes.len() as u64,
                });
                Ok(uid)
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => self.append(bytes, flags, date),
            Err(e) => Err(io_err("cannot link", &dest)(e)),
        }
    }

    pub(crate) fn set_flags(
        &mut self,
        uids: &[u32],
        f: impl Fn(Flags) -> Flags,
    ) -> Result<Vec<(u32, Flags)>, MailboxError> {
        let mut changed = Vec::new();
        let mut result = Ok(());
        for &uid in uids {
            let Some(i) = self.find(uid) else { continue };
            let new = f(self.recs[i].flags);
            if new == self.recs[i].flags {
                continue;
            }
            let from = self.path_of(&self.recs[i]);
            let to = self.dir.join(file_name(uid, new, self.recs[i].date));
            if let Err(e) = fs::rename(&from, &to) {
                result = Err(io_err("cannot rename", &from)(e));
                break;
            }
            self.recs[i].flags = new;
            changed.push((uid, new));
        }
        if !changed.is_empty() {
            fsutil::sync_dir(&self.dir).map_err(io_err("cannot sync", &self.dir))?;
        }
        result.map(|_| changed)
    }

    pub(crate) fn expunge(&mut self) -> Result<Vec<u32>, MailboxError> {
        if !self.recs.iter().any(|r| r.flags.contains(Flags::DELETED)) {
            return Ok(Vec::new());
        }
        // Removing the highest UIDs must not let UIDNEXT fall back on the next open.
        write_state(&self.dir, self.uid_validity, self.uid_next)?;
        let mut gone = Vec::new();
        let mut result = Ok(());
        let mut keep = Vec::with_capacity(self.recs.len());
        for r in std::mem::take(&mut self.recs) {
            if result.is_ok() && r.flags.contains(Flags::DELETED) {
                let p = self.path_of(&r);
                match fs::remove_file(&p) {
                    Ok(()) => {
                        gone.push(r.uid);
                        continue;
                    }
                    Err(e) => result = Err(io_err("cannot remove", &p)(e)),
                }
            }
            keep.push(r);
        }
        self.recs = keep;
        fsutil::sync_dir(&self.dir).map_err(io_err("cannot sync", &self.dir))?;
        result.map(|_| gone)
    }
}

fn meta_of(r: &MRec) -> MessageMeta {
    MessageMeta {
        uid: r.uid,
        size: r.size,
        flags: r.flags,
        internal_date: r.date,
        keywords: 0,
        modseq: 0,
    }
}
