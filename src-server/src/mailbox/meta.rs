//! Message attributes neither storage format can hold: IMAP keywords (RFC 3501 §2.3.2) and
//! mod-sequences (RFC 7162 §3.1, CONDSTORE). One journal per mailbox, the same for both formats:
//! `.<file>.meta` beside an `.mbox` file, `.meta` inside an `.mdir` directory.
//!
//! The journal is text, one record a line, each line ending with ` <FNV-1a 32, 8 hex digits>`
//! over the bytes before it:
//! - `V <uidvalidity>` first: records of another UIDVALIDITY (an index rebuilt from scratch)
//!   describe other messages, so the journal is then started afresh;
//! - `K <bit> <keyword>`: the mailbox's keyword table, at most [`MAX_KEYWORDS`] names, so a
//!   message's keywords are a 64-bit mask;
//! - `H <modseq>`: HIGHESTMODSEQ, written with the whole journal (an expunge raises it and
//!   leaves no message record);
//! - `M <uid> <modseq> <mask in hex>`: a message's current mod-sequence and keywords; the last
//!   record of a UID wins.
//!
//! Durability: a change appends its lines and fdatasyncs before the mailbox file changes, so after
//! a crash a mod-sequence is never lower than what a client saw (at worst one was raised for a
//! change that did not happen). A torn line fails its checksum and is skipped. The journal is
//! rewritten whole (temp, fsync, rename, fsync dir) when opened after damage, when an append
//! failed, on expunge, and when it grows past twice its live size. Messages without a record (the
//! journal is new — an old mailbox — or lost a line, or another program added messages) get a fresh
//! mod-sequence above everything recorded, which is safe: clients just fetch their flags again.
//!
//! Security: the journal is ours, but is parsed as untrusted: bounded keyword names, every number
//! checked, a damaged line skipped, never a panic.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{fsutil, io_err, MailboxError};

/// Most keywords one mailbox can hold (the bits of a mask).
pub const MAX_KEYWORDS: usize = 64;
/// Longest keyword, in bytes.
pub const MAX_KEYWORD_LEN: usize = 64;

/// Whether `name` is a keyword we store: an IMAP `atom` (RFC 3501 §9: no specials, controls,
/// space, `\`) of at most [`MAX_KEYWORD_LEN`] bytes.
pub fn valid_keyword(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEYWORD_LEN
        && name.bytes().all(|b| {
            b > 0x20
                && b < 0x7f
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

fn fnv32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn line(payload: &str) -> String {
    format!("{payload} {:08x}\n", fnv32(payload.as_bytes()))
}

/// Where the mod-sequences of a new journal start: the time, in units of 2^-16 s. A journal
/// lost while the mailbox kept its UIDVALIDITY (deleted, or its first line damaged) restarts
/// above anything it can have handed out (fewer than 65536 changes a second since it was
/// made), so HIGHESTMODSEQ never goes back (RFC 7162 §3.1.1). Far below the 2^63 limit.
fn fresh_base() -> u64 {
    let secs = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    secs.saturating_mul(1 << 16).max(1)
}

/// The path of the journal of mailbox `path` in format `mdir` or not.
pub(crate) fn meta_path(path: &Path, mdir: bool) -> PathBuf {
    if mdir {
        return path.join(".meta");
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    fsutil::parent_of(path).join(format!(".{name}.meta"))
}

/// A message's entry: its mod-sequence and keyword mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub modseq: u64,
    pub keywords: u64,
}

/// The loaded journal with an append handle.
pub(crate) struct Meta {
    path: PathBuf,
    file: Option<File>,
    uid_validity: u32,
    highest: u64,
    keywords: Vec<String>,
    entries: BTreeMap<u32, Entry>,
    /// Lines in the file, for the compaction rule.
    lines: usize,
}

impl Meta {
    /// Loads the journal at `path` for a mailbox with `uid_validity` and messages `uids`; gives
    /// unrecorded messages a fresh mod-sequence, drops records of absent ones.
    pub(crate) fn open(path: &Path, uid_validity: u32, uids: &[u32]) -> Result<Meta, MailboxError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("cannot read", path)(e)),
        };
        let mut m = Meta {
            path: path.to_path_buf(),
            file: None,
            uid_validity,
            highest: 0,
            keywords: Vec::new(),
            entries: BTreeMap::new(),
            lines: 0,
        };
        let (damaged, fresh) = m.parse(&bytes);
        let mut dirty = damaged || fresh;
        if fresh {
            m.highest = fresh_base();
        }
        let live: std::collections::HashSet<u32> = uids.iter().copied().collect();
        let before = m.entries.len();
        m.entries.retain(|uid, _| live.contains(uid));
        dirty |= m.entries.len() != before;
        let missing: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| !m.entries.contains_key(u))
            .collect();
        if !missing.is_empty() {
            m.highest += 1;
            for uid in missing {
                m.entries.insert(
                    uid,
                    Entry {
                        modseq: m.highest,
                        keywords: 0,
                    },
                );
            }
            dirty = true;
        }
        if dirty {
            m.rewrite()?;
        }
        Ok(m)
    }

    /// Reads the records; returns whether anything was damaged, and whether there was no
    /// journal of this UIDVALIDITY at all.
    fn parse(&mut self, bytes: &[u8]) -> (bool, bool) {
        let mut damaged = false;
        let mut first = true;
        for raw in bytes.split(|&b| b == b'\n') {
            if raw.is_empty() {
                continue;
            }
            self.lines += 1;
            let ok = std::str::from_utf8(raw).ok().and_then(|l| {
                let (payload, sum) = l.rsplit_once(' ')?;
                (u32::from_str_radix(sum, 16).ok()? == fnv32(payload.as_bytes())).then_some(payload)
            });
            let Some(payload) = ok else {
                damaged = true;
                continue;
            };
            let mut f = payload.splitn(4, ' ');
            let kind = f.next().unwrap_or("");
            if first {
                first = false;
                if kind != "V" || f.next().and_then(|v| v.parse().ok()) != Some(self.uid_validity) {
                    // Another generation of UIDs (or a lost first line): none of it applies.
                    return (true, true);
                }
                continue;
            }
            let good = match kind {
                "K" => {
                    let bit = f.next().and_then(|b| b.parse::<usize>().ok());
                    match (bit, f.next()) {
                        (Some(bit), Some(name))
                            if bit == self.keywords.len()
                                && bit < MAX_KEYWORDS
                                && valid_keyword(name) =>
                        {
                            self.keywords.push(name.to_string());
                            true
                        }
                        _ => false,
                    }
                }
                "H" => match f.next().and_then(|v| v.parse::<u64>().ok()) {
                    Some(h) => {
                        self.highest = self.highest.max(h);
                        true
                    }
                    None => false,
                },
                "M" => {
                    let uid = f.next().and_then(|v| v.parse::<u32>().ok());
                    let modseq = f.next().and_then(|v| v.parse::<u64>().ok());
                    let kw = f.next().and_then(|v| u64::from_str_radix(v, 16).ok());
                    match (uid, modseq, kw) {
                        (Some(uid), Some(modseq), Some(keywords)) => {
                            self.highest = self.highest.max(modseq);
                            self.entries.insert(uid, Entry { modseq, keywords });
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            damaged |= !good;
        }
        (damaged, first)
    }

    /// Writes the live state as a new journal, atomically.
    fn rewrite(&mut self) -> Result<(), MailboxError> {
        let mut out = line(&format!("V {}", self.uid_validity));
        out.push_str(&line(&format!("H {}", self.highest)));
        for (i, k) in self.keywords.iter().enumerate() {
            out.push_str(&line(&format!("K {i} {k}")));
        }
        for (uid, e) in &self.entries {
            out.push_str(&line(&format!("M {uid} {} {:x}", e.modseq, e.keywords)));
        }
        self.file = None;
        fsutil::write_atomic(&self.path, out.as_bytes())
            .map_err(io_err("cannot write", &self.path))?;
        self.lines = 2 + self.keywords.len() + self.entries.len();
        Ok(())
    }

    /// Appends `text` (whole lines) and fdatasyncs; rewrites instead when the journal is due for
    /// compaction or an earlier append failed.
    fn append(&mut self, text: &str, n: usize) -> Result<(), MailboxError> {
        let live = 2 + self.keywords.len() + self.entries.len();
        if self.lines + n > 2 * live + 1024 {
            return self.rewrite();
        }
        if self.file.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(io_err("cannot open", &self.path))?;
            self.file = Some(f);
        }
        let r = match &mut self.file {
            Some(f) => f.write_all(text.as_bytes()).and_then(|()| f.sync_data()),
            None => Ok(()),
        };
        if let Err(e) = r {
            // A partial line may be on disk: the next change writes the file whole.
            self.file = None;
            self.lines = usize::MAX / 4;
            return Err(io_err("cannot write", &self.path)(e));
        }
        self.lines += n;
        Ok(())
    }

    /// HIGHESTMODSEQ.
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// The keyword table: bit `i` of a mask is `keywords()[i]`.
    pub(crate) fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// The entry of `uid` (mod-sequence 1, no keywords if unknown).
    pub(crate) fn entry(&self, uid: u32) -> Entry {
        self.entries.get(&uid).copied().unwrap_or(Entry {
            modseq: 1,
            keywords: 0,
        })
    }

    /// The mask of keywords `names` (case-insensitive, RFC 3501 flags). Unknown names are added
    /// to the table when `create`, else left out. `None` when a name is not an atom or the table
    /// is full.
    pub(crate) fn mask(
        &mut self,
        names: &[String],
        create: bool,
    ) -> Result<Option<u64>, MailboxError> {
        let mut mask = 0u64;
        let mut add = String::new();
        let mut n = 0;
        for name in names {
            if !valid_keyword(name) {
                return Ok(None);
            }
            let bit = match self
                .keywords
                .iter()
                .position(|k| k.eq_ignore_ascii_case(name))
            {
                Some(b) => b,
                None if !create => continue,
                None if self.keywords.len() >= MAX_KEYWORDS => return Ok(None),
                None => {
                    let b = self.keywords.len();
                    self.keywords.push(name.clone());
                    add.push_str(&line(&format!("K {b} {name}")));
                    n += 1;
                    b
                }
            };
            mask |= 1 << bit;
        }
        if n > 0 {
            if let Err(e) = self.append(&add, n) {
                self.keywords.truncate(self.keywords.len() - n);
                return Err(e);
            }
        }
        Ok(Some(mask))
    }

    /// Records new keyword masks for `changes` under one new mod-sequence; returns it. Memory is
    /// updated first so that a compaction (which writes memory) includes the change; a failed
    /// write restores it.
    pub(crate) fn bump(&mut self, changes: &[(u32, u64)]) -> Result<u64, MailboxError> {
        let old_highest = self.highest;
        let modseq = self.highest + 1;
        let mut text = String::new();
        let mut old = Vec::with_capacity(changes.len());
        for &(uid, keywords) in changes {
            text.push_str(&line(&format!("M {uid} {modseq} {keywords:x}")));
            old.push((uid, self.entries.insert(uid, Entry { modseq, keywords })));
        }
        self.highest = modseq;
        if let Err(e) = self.append(&text, changes.len()) {
            self.highest = old_highest;
            for (uid, prev) in old.into_iter().rev() {
                match prev {
                    Some(p) => self.entries.insert(uid, p),
                    None => self.entries.remove(&uid),
                };
            }
            return Err(e);
        }
        Ok(modseq)
    }

    /// Records an appended message. The message is already durable and its UID taken, so a
    /// failed journal write cannot undo it: memory keeps the entry and the next change writes
    /// the journal whole (after a crash first, the open gives the message a fresh mod-sequence).
    pub(crate) fn appended(&mut self, uid: u32, keywords: u64) {
        if self.bump(&[(uid, keywords)]).is_err() {
            self.highest += 1;
            self.entries.insert(
                uid,
                Entry {
                    modseq: self.highest,
                    keywords,
                },
            );
        }
    }

    /// Forgets expunged messages, raises HIGHESTMODSEQ and writes the journal whole. As with
    /// [`appended`](Meta::appended), a failed write is retried by the next change; stale records
    /// of expunged UIDs are dropped at the next open.
    pub(crate) fn expunged(&mut self, uids: &[u32]) {
        for uid in uids {
            self.entries.remove(uid);
        }
        self.highest += 1;
        if self.rewrite().is_err() {
            self.lines = usize::MAX / 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_modseqs_survive_reopen_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".x.meta");
        let mut m = Meta::open(&p, 7, &[1, 2]).unwrap();
        let b = m.highest();
        assert!(b > 1 << 40, "{b}");
        assert_eq!(m.entry(1).modseq, b);
        let mask = m
            .mask(&["$Junk".into(), "work".into()], true)
            .unwrap()
            .unwrap();
        assert_eq!(mask, 3);
        assert_eq!(m.mask(&["WORK".into()], false).unwrap(), Some(2));
        assert_eq!(m.mask(&["a]b".into()], true).unwrap(), None);
        let ms = m.bump(&[(2, mask)]).unwrap();
        assert_eq!(ms, b + 1);
        drop(m);
        // A torn line at the end is skipped.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"M 1 99 f").unwrap();
        let m = Meta::open(&p, 7, &[1, 2, 3]).unwrap();
        assert_eq!(m.keywords(), ["$Junk", "work"]);
        assert_eq!(
            m.entry(2),
            Entry {
                modseq: b + 1,
                keywords: 3
            }
        );
        assert_eq!(m.entry(1).modseq, b);
        // The unrecorded message 3 gets a mod-sequence above everything.
        assert_eq!(m.entry(3).modseq, b + 2);
        assert_eq!(m.highest(), b + 2);
        drop(m);
        // Another UIDVALIDITY starts afresh, never lower.
        let m = Meta::open(&p, 8, &[1]).unwrap();
        assert!(m.keywords().is_empty());
        assert!(m.highest() >= b);
    }

    #[test]
    fn table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Meta::open(&dir.path().join(".m"), 1, &[]).unwrap();
        for i in 0..MAX_KEYWORDS {
            assert!(m.mask(&[format!("k{i}")], true).unwrap().is_some());
        }
        assert_eq!(m.mask(&["one-more".into()], true).unwrap(), None);
        assert!(!valid_keyword(&"x".repeat(MAX_KEYWORD_LEN + 1)));
    }
}
