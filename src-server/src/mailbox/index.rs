//! The `.mbox` sidecar index: `.<file>.idx` beside the mailbox file.
//!
//! It lets a 100,000-message mailbox open without reading the mailbox file, and it keeps what the
//! mailbox file cannot: UIDVALIDITY, the next UID (which must not go down when the highest UIDs are
//! expunged) and the UIDs assigned to legacy messages that have no `(flags-UID)` comment.
//!
//! Layout, little-endian, fixed-size so that an append or a flag change is one `pwrite`:
//! - header, 64 bytes: magic `GHMBIDX1`, uid_validity u32, uid_next u32, mbox_size u64,
//!   mtime_sec i64, mtime_nsec u32, count u32, 16 reserved bytes, FNV-1a 64 of bytes 0..56 at 56..64.
//! - `count` records of 48 bytes: offset u64, from_len u32, body_len u64, size u64, uid u32,
//!   flags u16, flags_pos u16, internal_date i64, FNV-1a 32 of the first 44 bytes.
//!
//! The mailbox file is the truth; the index is trusted only while the header's size and mtime match
//! the file and every checksum holds (see `mbox.rs` for the recovery rules).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::fsutil;
use super::Flags;

const MAGIC: &[u8; 8] = b"GHMBIDX1";
pub(crate) const HEADER_LEN: u64 = 64;
pub(crate) const REC_LEN: u64 = 48;

/// Index header: mailbox-wide state plus the file state the records describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub mbox_size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub count: u32,
}

/// One message of an `.mbox` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rec {
    /// Offset of the From-line.
    pub offset: u64,
    /// Length of the From-line with its line break.
    pub from_len: u32,
    /// Length of the stored (escaped) message, without the separating blank line.
    pub body_len: u64,
    /// Length of the message as [`read`](super::Mailbox::read) returns it (unescaped).
    pub size: u64,
    pub uid: u32,
    pub flags: Flags,
    /// Offset of the flag letters inside the From-line; 0 for a legacy line without the comment.
    pub flags_pos: u16,
    /// Internal date, Unix seconds (UTC).
    pub date: i64,
}

/// What was found on disk.
pub(crate) enum Loaded {
    /// No index, or a header that fails its checksum.
    Missing,
    /// A good header but records that are missing or corrupt.
    HeaderOnly(Header),
    /// Header and every record good.
    Full(Header, Vec<Rec>),
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn encode_header(h: &Header) -> [u8; HEADER_LEN as usize] {
    let mut b = [0u8; HEADER_LEN as usize];
    b[0..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&h.uid_validity.to_le_bytes());
    b[12..16].copy_from_slice(&h.uid_next.to_le_bytes());
    b[16..24].copy_from_slice(&h.mbox_size.to_le_bytes());
    b[24..32].copy_from_slice(&h.mtime_sec.to_le_bytes());
    b[32..36].copy_from_slice(&h.mtime_nsec.to_le_bytes());
    b[36..40].copy_from_slice(&h.count.to_le_bytes());
    let sum = fnv64(&b[0..56]);
    b[56..64].copy_from_slice(&sum.to_le_bytes());
    b
}

fn decode_header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER_LEN as usize || &b[0..8] != MAGIC || u64_at(b, 56) != fnv64(&b[0..56]) {
        return None;
    }
    Some(Header {
        uid_validity: u32_at(b, 8),
        uid_next: u32_at(b, 12),
        mbox_size: u64_at(b, 16),
        mtime_sec: u64_at(b, 24) as i64,
        mtime_nsec: u32_at(b, 32),
        count: u32_at(b, 36),
    })
}

pub(crate) fn encode_rec(r: &Rec) -> [u8; REC_LEN as usize] {
    let mut b = [0u8; REC_LEN as usize];
    b[0..8].copy_from_slice(&r.offset.to_le_bytes());
    b[8..12].copy_from_slice(&r.from_len.to_le_bytes());
    b[12..20].copy_from_slice(&r.body_len.to_le_bytes());
    b[20..28].copy_from_slice(&r.size.to_le_bytes());
    b[28..32].copy_from_slice(&r.uid.to_le_bytes());
    b[32..34].copy_from_slice(&r.flags.bits().to_le_bytes());
    b[34..36].copy_from_slice(&r.flags_pos.to_le_bytes());
    b[36..44].copy_from_slice(&r.date.to_le_bytes());
    let sum = fnv64(&b[0..44]) as u32;
    b[44..48].copy_from_slice(&sum.to_le_bytes());
    b
}

fn decode_rec(b: &[u8]) -> Option<Rec> {
    if u32_at(b, 44) != fnv64(&b[0..44]) as u32 {
        return None;
    }
    Some(Rec {
        offset: u64_at(b, 0),
        from_len: u32_at(b, 8),
        body_len: u64_at(b, 12),
        size: u64_at(b, 20),
        uid: u32_at(b, 28),
        flags: Flags::from_bits(u16_at(b, 32)),
        flags_pos: u16_at(b, 34),
        date: u64_at(b, 36) as i64,
    })
}

/// Read the index at `path`. Any damage degrades to `HeaderOnly` or `Missing`, never an error
/// other than real I/O failures.
pub(crate) fn load(path: &Path) -> io::Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(e),
    };
    let Some(h) = decode_header(&bytes) else {
        return Ok(Loaded::Missing);
    };
    let need = HEADER_LEN + u64::from(h.count) * REC_LEN;
    if (bytes.len() as u64) < need {
        return Ok(Loaded::HeaderOnly(h));
    }
    let mut recs = Vec::with_capacity(h.count as usize);
    for chunk in bytes[HEADER_LEN as usize..need as usize].chunks_exact(REC_LEN as usize) {
        match decode_rec(chunk) {
            Some(r) => recs.push(r),
            None => return Ok(Loaded::HeaderOnly(h)),
        }
    }
    Ok(Loaded::Full(h, recs))
}

/// Write a whole index atomically and return an open handle on the new file.
pub(crate) fn write_full(path: &Path, h: &Header, recs: &[Rec]) -> io::Result<File> {
    let mut out = Vec::with_capacity(HEADER_LEN as usize + recs.len() * REC_LEN as usize);
    out.extend_from_slice(&encode_header(h));
    for r in recs {
        out.extend_from_slice(&encode_rec(r));
    }
    fsutil::write_atomic(path, &out)?;
    OpenOptions::new().read(true).write(true).open(path)
}

/// Store record number `i` and the header in place, then fdatasync: the commit point of an append
/// or a flag change.
pub(crate) fn write_recs(file: &File, h: &Header, recs: &[(usize, Rec)]) -> io::Result<()> {
    for (i, r) in recs {
        file.write_all_at(&encode_rec(r), HEADER_LEN + *i as u64 * REC_LEN)?;
    }
    file.write_all_at(&encode_header(h), 0)?;
    file.sync_data()
}
