//! `.mbox` mailboxes (guide.txt:9393-9415).
//!
//! Each message is stored as
//! ```text
//! From <return-path>(flags-UID) Www Mmm dd hh:mm:ss yyyy\n
//! <message, >From-escaped, ending with a line break>
//! \n
//! ```
//! `flags` is the fixed-width field of [`Flags::encode`], `UID` ten decimal digits, the date the
//! internal date in GMT in the classic `asctime` layout legacy readers expect. The return path comes
//! from the message's `Return-Path:` header (Local Delivery adds it), `<>` without one. The
//! comment has a fixed width, so a flag change rewrites eight bytes in place.
//!
//! A separator is a line starting `From ` at the start of the file or after an empty line.
//! Escaping is mboxrd: every line matching `>*From ` gets one more `>` on write and loses one on
//! read, so messages round-trip exactly. guide.txt:9412-9415 asks for `>` before `From` after an
//! empty line; we escape such lines everywhere because Python's `mailbox.mbox` and similar readers
//! split on any `From ` line, and only `From ` (with the space) because only that is a separator.
//!
//! An append to a file that does not end with a blank line (a legacy file) first adds the missing
//! line breaks, so the new From-line is a separator.
//!
//! Legacy messages (From-line without our comment, guide.txt:9403-9409) are read; they get UIDs
//! from UIDNEXT when first seen and the index remembers them while the file is unchanged. Their
//! flags live only in the index (the guide: flags of such messages are not saved in the file).
//!
//! Crash rules (index format in `index.rs`):
//! - append: write the record at the committed end, fdatasync the mailbox, then write the index
//!   record and header (new size, mtime, UIDNEXT), fdatasync the index: that is the commit point.
//! - open: if the file is longer than the index says, look at the first line past the committed
//!   end. A torn line, or our own From-line with a UID the index never committed, is an append
//!   that did not complete (its caller got no success): the file is truncated back to the
//!   committed end. Legacy From-lines there were added by another program and are indexed.
//!   Anything else, or any size/mtime/checksum mismatch, rebuilds the index from the file keeping
//!   the index header's UIDVALIDITY and UIDNEXT (so UIDs never go backwards). With no usable index
//!   at all the file is scanned and a new UIDVALIDITY chosen; a torn tail is then indistinguishable
//!   from a short message and is kept.
//! - expunge: the compacted copy is written to `.<file>.gh-tmp`, fsynced, renamed over the mailbox, the
//!   directory fsynced, then a new index written atomically. A crash before the rename leaves the
//!   original untouched (the temp is removed on open); after it, the old index mismatches and is
//!   rebuilt with its UIDNEXT.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{NaiveDateTime, TimeZone, Utc};

use super::index::{self, Header, Loaded, Rec};
use super::{fsutil, io_err, new_uid_validity, Flags, MailboxError, MessageMeta, FLAGS_WIDTH};

/// Bytes of each line kept while scanning; longer lines are skipped over, not buffered.
const LINE_HEAD: usize = 1024;
/// Width of the UID in the comment.
const UID_WIDTH: usize = 10;
/// Longest return path written into a From-line.
const MAX_RETURN_PATH: usize = 256;
/// How far into a message the `Return-Path:` header is looked for.
const HEADER_SCAN: usize = 64 * 1024;

pub(crate) struct Mbox {
    path: PathBuf,
    idx_path: PathBuf,
    file: File,
    idx: File,
    header: Header,
    recs: Vec<Rec>,
}

fn mtime_of(meta: &fs::Metadata) -> (i64, u32) {
    use std::os::unix::fs::MetadataExt;
    (meta.mtime(), meta.mtime_nsec().clamp(0, 999_999_999) as u32)
}

pub(crate) fn index_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    fsutil::parent_of(path).join(format!(".{name}.idx"))
}

impl Mbox {
    pub(crate) fn open(path: &Path, create: bool) -> Result<Mbox, MailboxError> {
        let idx_path = index_path(path);
        // Leftovers of an interrupted expunge or index write; the originals are intact.
        for tmp in [fsutil::temp_name(path), fsutil::temp_name(&idx_path)] {
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot remove", &tmp)(e)),
            }
        }
        if path.is_dir() {
            return Err(MailboxError::WrongFormat);
        }
        let existed = path.exists();
        if !existed && !create {
            return Err(MailboxError::NotFound);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(io_err("cannot open", path))?;
        if !existed {
            file.sync_all().map_err(io_err("cannot sync", path))?;
            fsutil::sync_dir(&fsutil::parent_of(path))
                .map_err(io_err("cannot sync dir of", path))?;
        }
        let loaded = index::load(&idx_path).map_err(io_err("cannot read", &idx_path))?;
        let (header, recs, dirty) = recover(path, &file, loaded)?;
        let idx = if dirty {
            index::write_full(&idx_path, &header, &recs)
        } else {
            OpenOptions::new().read(true).write(true).open(&idx_path)
        }
        .map_err(io_err("cannot write", &idx_path))?;
        Ok(Mbox {
            path: path.to_path_buf(),
            idx_path,
            file,
            idx,
            header,
            recs,
        })
    }

    pub(crate) fn uid_validity(&self) -> u32 {
        self.header.uid_validity
    }

    pub(crate) fn uid_next(&self) -> u32 {
        self.header.uid_next
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

    pub(crate) fn read(&self, uid: u32) -> Result<Vec<u8>, MailboxError> {
        let r = self
            .find(uid)
            .map(|i| self.recs[i])
            .ok_or(MailboxError::NoSuchMessage(uid))?;
        let len = usize::try_from(r.body_len).map_err(|_| MailboxError::NoSuchMessage(uid))?;
        let mut body = vec![0u8; len];
        self.file
            .read_exact_at(&mut body, r.offset + u64::from(r.from_len))
            .map_err(io_err("cannot read", &self.path))?;
        Ok(unescape(&body))
    }

    pub(crate) fn append(
        &mut self,
        msg: &[u8],
        flags: Flags,
        date: i64,
    ) -> Result<u32, MailboxError> {
        let uid = self.header.uid_next;
        let next = uid.checked_add(1).ok_or(MailboxError::UidsExhausted)?;
        let end = self.header.mbox_size;
        // A From-line is a separator only after a blank line; a legacy file may lack one at its end.
        let mut tail = [b'\n'; 2];
        if end > 0 {
            let k = end.min(2) as usize;
            self.file
                .read_exact_at(&mut tail[2 - k..], end - k as u64)
                .map_err(io_err("cannot read", &self.path))?;
        }
        let pad: &[u8] = match tail {
            [b'\n', b'\n'] => b"",
            [_, b'\n'] => b"\n",
            _ => b"\n\n",
        };
        let (body, rec) = encode_record(msg, flags, uid, date, end + pad.len() as u64);
        let record = [pad, &body].concat();
        if let Err(e) = self
            .file
            .write_all_at(&record, end)
            .and_then(|_| self.file.sync_data())
        {
            // Best effort: leave no partial record; open would cut it anyway.
            let _ = self.file.set_len(end);
            return Err(io_err("cannot append to", &self.path)(e));
        }
        let meta = self
            .file
            .metadata()
            .map_err(io_err("cannot stat", &self.path))?;
        let (mtime_sec, mtime_nsec) = mtime_of(&meta);
        let header = Header {
            uid_next: next,
            mbox_size: end + record.len() as u64,
            mtime_sec,
            mtime_nsec,
            count: self.header.count + 1,
            ..self.header
        };
        if let Err(e) = index::write_recs(&self.idx, &header, &[(self.recs.len(), rec)]) {
            // Not committed: take the record back so the next append starts at the same end.
            let _ = self.file.set_len(end);
            return Err(io_err("cannot write", &self.idx_path)(e));
        }
        self.header = header;
        self.recs.push(rec);
        Ok(uid)
    }

    pub(crate) fn set_flags(
        &mut self,
        uids: &[u32],
        f: impl Fn(Flags) -> Flags,
    ) -> Result<Vec<(u32, Flags)>, MailboxError> {
        let mut changed = Vec::new();
        let mut touched_file = false;
        for &uid in uids {
            let Some(i) = self.find(uid) else { continue };
            let mut r = self.recs[i];
            let new = f(r.flags);
            if new == r.flags {
                continue;
            }
            if r.flags_pos != 0 {
                self.file
                    .write_all_at(&new.encode(), r.offset + u64::from(r.flags_pos))
                    .map_err(io_err("cannot write", &self.path))?;
                touched_file = true;
            }
            r.flags = new;
            changed.push((i, r));
        }
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let mut header = self.header;
        if touched_file {
            self.file
                .sync_data()
                .map_err(io_err("cannot sync", &self.path))?;
            let meta = self
                .file
                .metadata()
                .map_err(io_err("cannot stat", &self.path))?;
            (header.mtime_sec, header.mtime_nsec) = mtime_of(&meta);
        }
        index::write_recs(&self.idx, &header, &changed)
            .map_err(io_err("cannot write", &self.idx_path))?;
        self.header = header;
        for (i, r) in &changed {
            self.recs[*i] = *r;
        }
        Ok(changed.into_iter().map(|(_, r)| (r.uid, r.flags)).collect())
    }

    pub(crate) fn expunge(&mut self) -> Result<Vec<u32>, MailboxError> {
        let gone: Vec<u32> = self
            .recs
            .iter()
            .filter(|r| r.flags.contains(Flags::DELETED))
            .map(|r| r.uid)
            .collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        let tmp = fsutil::temp_name(&self.path);
        let kept = match self.write_compacted(&tmp) {
            Ok(k) => k,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err("cannot write", &tmp)(e));
            }
        };
        fs::rename(&tmp, &self.path).map_err(io_err("cannot replace", &self.path))?;
        fsutil::sync_dir(&fsutil::parent_of(&self.path))
            .map_err(io_err("cannot sync dir of", &self.path))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io_err("cannot open", &self.path))?;
        let meta = file.metadata().map_err(io_err("cannot stat", &self.path))?;
        let (mtime_sec, mtime_nsec) = mtime_of(&meta);
        let header = Header {
            mbox_size: meta.len(),
            mtime_sec,
            mtime_nsec,
            count: kept.len() as u32,
            ..self.header
        };
        self.file = file;
        self.header = header;
        self.recs = kept;
        match index::write_full(&self.idx_path, &header, &self.recs) {
            Ok(idx) => self.idx = idx,
            Err(e) => {
                // The old index describes the old file. Replace it with an empty one: records
                // written later land after zeroed ones, which fail their checksums, so the next
                // open rebuilds from the mailbox file instead of trusting stale offsets.
                let _ = fs::remove_file(&self.idx_path);
                if let Ok(f) = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&self.idx_path)
                {
                    self.idx = f;
                }
                return Err(io_err("cannot write", &self.idx_path)(e));
            }
        }
        Ok(gone)
    }

    /// Copy every message not flagged deleted into `tmp`, fsync it, and index the copy.
    /// Each record is rewritten with a line break after the From-line and the message and a blank
    /// separator line, so that damaged legacy records cannot merge.
    fn write_compacted(&self, tmp: &Path) -> io::Result<Vec<Rec>> {
        let out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        let mut w = io::BufWriter::with_capacity(1 << 20, out);
        let mut kept = Vec::with_capacity(self.recs.len());
        let mut buf = vec![0u8; 1 << 16];
        for r in self
            .recs
            .iter()
            .filter(|r| !r.flags.contains(Flags::DELETED))
        {
            for (start, len) in [
                (r.offset, u64::from(r.from_len)),
                (r.offset + u64::from(r.from_len), r.body_len),
            ] {
                let mut done = 0u64;
                let mut last = b'\n';
                while done < len {
                    let n = buf
                        .len()
                        .min(usize::try_from(len - done).unwrap_or(usize::MAX));
                    self.file.read_exact_at(&mut buf[..n], start + done)?;
                    w.write_all(&buf[..n])?;
                    last = buf[n - 1];
                    done += n as u64;
                }
                if last != b'\n' {
                    w.write_all(b"\n")?;
                }
            }
            w.write_all(b"\n")?;
            kept.push(*r);
        }
        let out = w.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        let meta = out.metadata()?;
        let scanned = scan(&out, 0, mtime_of(&meta).0)?;
        if scanned.len() != kept.len() {
            return Err(io::Error::other(
                "compacted mailbox does not re-read as written",
            ));
        }
        Ok(scanned
            .into_iter()
            .zip(kept)
            .map(|(s, r)| Rec {
                offset: s.offset,
                from_len: s.from_len,
                body_len: s.body_len,
                size: s.size,
                ..r
            })
            .collect())
    }
}

/// Work out the header and records from whatever index was found (rules in the module header);
/// the flag says whether the index file must be rewritten.
fn recover(
    path: &Path,
    file: &File,
    loaded: Loaded,
) -> Result<(Header, Vec<Rec>, bool), MailboxError> {
    let meta = file.metadata().map_err(io_err("cannot stat", path))?;
    let size = meta.len();
    let (mtime_sec, mtime_nsec) = mtime_of(&meta);
    let base = match loaded {
        Loaded::Full(h, recs) => {
            if h.mbox_size == size && h.mtime_sec == mtime_sec && h.mtime_nsec == mtime_nsec {
                return Ok((h, recs, false));
            }
            if size > h.mbox_size {
                if let Some((h, recs)) = recover_tail(path, file, h, recs)? {
                    return Ok((h, recs, true));
                }
            }
            Some(h)
        }
        Loaded::HeaderOnly(h) => Some(h),
        Loaded::Missing => None,
    };
    let (h, recs) = rebuild(path, file, base)?;
    Ok((h, recs, true))
}

/// The file grew past the committed end: cut an uncommitted append, or index legacy messages
/// another program added. `None`: the prefix does not look like what the index describes.
fn recover_tail(
    path: &Path,
    file: &File,
    h: Header,
    mut recs: Vec<Rec>,
) -> Result<Option<(Header, Vec<Rec>)>, MailboxError> {
    if let Some(last) = recs.last() {
        let mut line = vec![0u8; (last.from_len as usize).min(LINE_HEAD)];
        if file.read_exact_at(&mut line, last.offset).is_err() {
            return Ok(None);
        }
        let parsed = parse_from_line(&line, 0);
        let same = match parsed.comment {
            Some((_, uid, _)) => last.flags_pos != 0 && uid == last.uid,
            None => last.flags_pos == 0 && line.starts_with(b"From "),
        };
        if !same {
            return Ok(None);
        }
    }
    let mut head = vec![0u8; LINE_HEAD];
    let n = read_at_most(file, &mut head, h.mbox_size).map_err(io_err("cannot read", path))?;
    let head = &head[..n];
    let torn = match head.iter().position(|&b| b == b'\n') {
        None => true,
        Some(nl) => match parse_from_line(&head[..=nl], 0).comment {
            Some((_, uid, _)) => uid >= h.uid_next,
            None if head.starts_with(b"From ") => false,
            None => return Ok(None),
        },
    };
    if torn {
        file.set_len(h.mbox_size)
            .map_err(io_err("cannot truncate", path))?;
        file.sync_all().map_err(io_err("cannot sync", path))?;
        let meta = file.metadata().map_err(io_err("cannot stat", path))?;
        let (mtime_sec, mtime_nsec) = mtime_of(&meta);
        return Ok(Some((
            Header {
                mtime_sec,
                mtime_nsec,
                ..h
            },
            recs,
        )));
    }
    let meta = file.metadata().map_err(io_err("cannot stat", path))?;
    let fallback_date = mtime_of(&meta).0;
    let scanned = scan(file, h.mbox_size, fallback_date).map_err(io_err("cannot read", path))?;
    let mut header = h;
    if scanned.iter().any(|s| s.comment.is_some()) {
        // Our own From-lines past the committed end with committed-range UIDs: not explainable.
        return Ok(None);
    }
    for s in scanned {
        let uid = header.uid_next;
        header.uid_next = uid.checked_add(1).ok_or(MailboxError::UidsExhausted)?;
        recs.push(s.into_rec(uid, Flags::RECENT));
    }
    header.count = recs.len() as u32;
    header.mbox_size = meta.len();
    (header.mtime_sec, header.mtime_nsec) = mtime_of(&meta);
    Ok(Some((header, recs)))
}

/// Index the whole file. `base`: the last good header, whose UIDVALIDITY and UIDNEXT are kept.
fn rebuild(
    path: &Path,
    file: &File,
    base: Option<Header>,
) -> Result<(Header, Vec<Rec>), MailboxError> {
    let meta = file.metadata().map_err(io_err("cannot stat", path))?;
    let fallback_date = mtime_of(&meta).0;
    let scanned = scan(file, 0, fallback_date).map_err(io_err("cannot read", path))?;
    let mut uid_next = base.map_or(1, |h| h.uid_next).max(1);
    let mut last_uid = 0u32;
    for s in &scanned {
        if let Some((_, uid, _)) = s.comment {
            if uid > last_uid {
                last_uid = uid;
                uid_next = uid_next.max(uid.saturating_add(1));
            }
        }
    }
    let mut recs = Vec::with_capacity(scanned.len());
    let mut fixes = Vec::new();
    let mut prev = 0u32;
    for s in scanned {
        let own = s.comment.filter(|(_, uid, _)| *uid > prev);
        let rec = match own {
            Some((flags, uid, _)) => s.into_rec(uid, flags),
            None => {
                // Legacy line, or our line out of UID order (copied around by hand): a new UID.
                let uid = uid_next;
                uid_next = uid.checked_add(1).ok_or(MailboxError::UidsExhausted)?;
                let flags = s.comment.map_or(Flags::RECENT, |(f, _, _)| f);
                let rec = s.into_rec(uid, flags);
                if rec.flags_pos != 0 {
                    fixes.push(rec);
                }
                rec
            }
        };
        prev = rec.uid;
        recs.push(rec);
    }
    // Out-of-order own lines get their new UID written in place, so it survives a rebuild.
    for r in &fixes {
        file.write_all_at(
            &comment_field(r.flags, r.uid),
            r.offset + u64::from(r.flags_pos),
        )
        .map_err(io_err("cannot write", path))?;
    }
    if !fixes.is_empty() {
        file.sync_data().map_err(io_err("cannot sync", path))?;
    }
    let meta = file.metadata().map_err(io_err("cannot stat", path))?;
    let (mtime_sec, mtime_nsec) = mtime_of(&meta);
    let header = Header {
        uid_validity: base.map_or_else(new_uid_validity, |h| h.uid_validity),
        uid_next,
        mbox_size: meta.len(),
        mtime_sec,
        mtime_nsec,
        count: recs.len() as u32,
    };
    Ok((header, recs))
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a From-line says.
struct FromLine {
    /// Our comment: flags, UID, offset of the flag letters in the line.
    comment: Option<(Flags, u32, u16)>,
    /// The date at the end of the line, Unix seconds.
    date: i64,
}

/// `(` 8 flag letters `-` 10 digits `)`, the fixed-width comment we write.
fn find_comment(line: &[u8]) -> Option<(Flags, u32, usize, usize)> {
    const LEN: usize = 1 + FLAGS_WIDTH + 1 + UID_WIDTH + 1;
    let mut from = 5;
    while let Some(p) = line.get(from..)?.iter().position(|&b| b == b'(') {
        let at = from + p;
        if let Some(c) = line.get(at..at + LEN) {
            let digits = &c[FLAGS_WIDTH + 2..FLAGS_WIDTH + 2 + UID_WIDTH];
            if c[FLAGS_WIDTH + 1] == b'-'
                && c[LEN - 1] == b')'
                && digits.iter().all(u8::is_ascii_digit)
            {
                if let Some(flags) = Flags::decode(&c[1..=FLAGS_WIDTH]) {
                    let uid = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
                    if let Ok(uid) = u32::try_from(uid) {
                        if uid != 0 {
                            return Some((flags, uid, at + 1, at + LEN));
                        }
                    }
                }
            }
        }
        from = at + 1;
    }
    None
}

fn parse_from_line(line: &[u8], fallback_date: i64) -> FromLine {
    let text = String::from_utf8_lossy(line);
    let (comment, rest) = match find_comment(line) {
        Some((flags, uid, pos, end)) => {
            let pos = u16::try_from(pos).ok();
            let rest = String::from_utf8_lossy(&line[end..]).into_owned();
            (pos.map(|p| (flags, uid, p)), rest)
        }
        // Legacy `From sender date`: the date follows the sender.
        None => {
            let after = text.get(5..).unwrap_or("").trim_start();
            let rest = after.split_once(' ').map_or("", |(_, r)| r).to_string();
            (None, rest)
        }
    };
    FromLine {
        comment,
        date: parse_asctime(rest.trim()).unwrap_or(fallback_date),
    }
}

fn parse_asctime(s: &str) -> Option<i64> {
    let (dt, _) = NaiveDateTime::parse_and_remainder(s, "%a %b %e %H:%M:%S %Y").ok()?;
    Some(dt.and_utc().timestamp())
}

fn asctime(date: i64) -> String {
    let dt = Utc.timestamp_opt(date, 0).single().unwrap_or_default();
    dt.format("%a %b %e %H:%M:%S %Y").to_string()
}

fn comment_field(flags: Flags, uid: u32) -> Vec<u8> {
    let mut v = flags.encode().to_vec();
    v.extend_from_slice(format!("-{uid:010}").as_bytes());
    v
}

/// The return path for the From-line: the message's `Return-Path:` header, cleaned so the line
/// stays one parsable token; `<>` when absent.
fn return_path(msg: &[u8]) -> Vec<u8> {
    let head = &msg[..msg.len().min(HEADER_SCAN)];
    let mut value: &[u8] = b"";
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.len() > 12 && line[..12].eq_ignore_ascii_case(b"return-path:") {
            value = &line[12..];
            break;
        }
    }
    let mut rp: Vec<u8> = value
        .iter()
        .copied()
        .filter(|b| b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'<' | b'>'))
        .take(MAX_RETURN_PATH)
        .collect();
    rp.insert(0, b'<');
    rp.push(b'>');
    rp
}

/// Does this line start with `>*From ` (after `extra` more `>`)?
fn from_after_gt(line: &[u8], min_gt: usize) -> bool {
    let gts = line.iter().take_while(|&&b| b == b'>').count();
    gts >= min_gt && line[gts..].starts_with(b"From ")
}

/// mboxrd escaping, plus a final line break if the message lacks one.
fn escape(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 64);
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if from_after_gt(line, 0) {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\n") {
        out.extend_from_slice(if msg.windows(2).any(|w| w == b"\r\n") {
            b"\r\n"
        } else {
            b"\n"
        });
    }
    out
}

/// Undo [`escape`]: `>+From ` loses one `>`.
pub(crate) fn unescape(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        if from_after_gt(line, 1) {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The bytes of one stored message and its index record, for a record placed at `offset`.
pub(crate) fn encode_record(
    msg: &[u8],
    flags: Flags,
    uid: u32,
    date: i64,
    offset: u64,
) -> (Vec<u8>, Rec) {
    let rp = return_path(msg);
    let mut out = Vec::with_capacity(msg.len() + rp.len() + 80);
    out.extend_from_slice(b"From ");
    out.extend_from_slice(&rp);
    out.push(b'(');
    let flags_pos = out.len();
    out.extend_from_slice(&comment_field(flags, uid));
    out.extend_from_slice(b") ");
    out.extend_from_slice(asctime(date).as_bytes());
    out.push(b'\n');
    let from_len = out.len();
    let body = escape(msg);
    let size = body.len() as u64
        - body
            .split_inclusive(|&b| b == b'\n')
            .filter(|l| from_after_gt(l, 1))
            .count() as u64;
    out.extend_from_slice(&body);
    out.push(b'\n');
    let rec = Rec {
        offset,
        from_len: from_len as u32,
        body_len: body.len() as u64,
        size,
        uid,
        flags,
        // The return path is capped, so the position always fits.
        flags_pos: flags_pos as u16,
        date,
    };
    (out, rec)
}

/// One message found by [`scan`].
struct Scanned {
    offset: u64,
    from_len: u32,
    body_len: u64,
    size: u64,
    comment: Option<(Flags, u32, u16)>,
    date: i64,
}

impl Scanned {
    fn into_rec(self, uid: u32, flags: Flags) -> Rec {
        Rec {
            offset: self.offset,
            from_len: self.from_len,
            body_len: self.body_len,
            size: self.size,
            uid,
            flags,
            flags_pos: self.comment.map_or(0, |c| c.2),
            date: self.date,
        }
    }
}

/// Bounded line reader: yields each line's offset and length, keeping only its first
/// [`LINE_HEAD`] bytes.
struct Lines<R> {
    r: R,
    pos: u64,
    head: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn next_line(&mut self) -> io::Result<Option<(u64, u64)>> {
        self.head.clear();
        let start = self.pos;
        loop {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Ok((self.pos > start).then_some((start, self.pos - start)));
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = LINE_HEAD.saturating_sub(self.head.len()).min(take);
            self.head.extend_from_slice(&buf[..room]);
            self.r.consume(take);
            self.pos += take as u64;
            if done {
                return Ok(Some((start, self.pos - start)));
            }
        }
    }
}

/// Find every message from `start` (which is at a message boundary) to the end of the file.
fn scan(file: &File, start: u64, fallback_date: i64) -> io::Result<Vec<Scanned>> {
    let mut f = file;
    f.seek(SeekFrom::Start(start))?;
    let mut lines = Lines {
        r: BufReader::with_capacity(1 << 20, f),
        pos: start,
        head: Vec::with_capacity(LINE_HEAD),
    };
    struct Building {
        offset: u64,
        from_len: u64,
        escapes: u64,
        line: FromLine,
    }
    let finish = |b: Building, end: u64, sep: u64| {
        let body_len = (end - b.offset).saturating_sub(b.from_len + sep);
        Scanned {
            offset: b.offset,
            from_len: u32::try_from(b.from_len).unwrap_or(u32::MAX),
            body_len,
            size: body_len.saturating_sub(b.escapes),
            comment: b.line.comment,
            date: b.line.date,
        }
    };
    let mut out = Vec::new();
    let mut cur: Option<Building> = None;
    let mut prev_blank = true;
    let mut blank_len = 0;
    while let Some((at, len)) = lines.next_line()? {
        let head = &lines.head;
        if prev_blank && head.starts_with(b"From ") && len <= u64::from(u32::MAX) {
            if let Some(b) = cur.take() {
                out.push(finish(b, at, blank_len));
            }
            cur = Some(Building {
                offset: at,
                from_len: len,
                escapes: 0,
                line: parse_from_line(head, fallback_date),
            });
            prev_blank = false;
            continue;
        }
        if let Some(b) = cur.as_mut() {
            if from_after_gt(head, 1) {
                b.escapes += 1;
            }
        }
        prev_blank = head.as_slice() == b"\n" || head.as_slice() == b"\r\n";
        blank_len = if prev_blank { len } else { 0 };
    }
    if let Some(b) = cur.take() {
        let sep = if prev_blank { blank_len } else { 0 };
        out.push(finish(b, lines.pos, sep));
    }
    Ok(out)
}

fn meta_of(r: &Rec) -> MessageMeta {
    MessageMeta {
        uid: r.uid,
        size: r.size,
        flags: r.flags,
        internal_date: r.date,
        keywords: 0,
        modseq: 0,
    }
}
