//! FETCH data and SEARCH matching on message bytes (RFC 3501 §6.4.4-5, §7.4.2). MIME structure
//! (ENVELOPE addresses, BODYSTRUCTURE, part numbers) comes from `mail-parser`; the header and text
//! sections are cut from the raw bytes, so the octets a client gets are the stored ones, with bare
//! LF turned into CRLF (RFC 3501 §4.3: lines end in CRLF on the wire; RFC822.SIZE counts these).
//!
//! Security: message bytes are untrusted; every slice is bounds-checked and parts are walked to
//! at most `proto::MAX_DEPTH` levels.

use std::sync::Arc;

use mail_parser::{Address, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::cmd::Msg;
use super::proto::{FetchAtt, Section, SectionText, MAX_DEPTH};
use crate::mailbox::Mailbox;

/// A message read on first use, with its line ends made CRLF.
pub(super) struct Loaded<'a> {
    mailbox: &'a Arc<Mailbox>,
    uid: u32,
    bytes: Option<Result<Vec<u8>, String>>,
}

/// Bare LF → CRLF.
fn crlf(b: Vec<u8>) -> Vec<u8> {
    let bare = b
        .iter()
        .enumerate()
        .any(|(i, &c)| c == b'\n' && (i == 0 || b[i - 1] != b'\r'));
    if !bare {
        return b;
    }
    let mut out = Vec::with_capacity(b.len() + b.len() / 32);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// `(header block including the blank line, body)`.
fn split(msg: &[u8]) -> (&[u8], &[u8]) {
    if msg.starts_with(b"\r\n") {
        return (&msg[..2], &msg[2..]);
    }
    match msg.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => (&msg[..p + 4], &msg[p + 4..]),
        None => (msg, &[]),
    }
}

/// The header fields of a header block: (name, the whole field with its line ends).
fn fields(header: &[u8]) -> Vec<(String, &[u8])> {
    let mut out: Vec<(String, &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < header.len() {
        let end = header[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header.len(), |p| i + p + 1);
        let line = &header[i..end];
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation && i > start {
            push_field(&mut out, &header[start..i]);
            start = i;
        }
        i = end;
    }
    if start < header.len() {
        push_field(&mut out, &header[start..]);
    }
    out
}

fn push_field<'h>(out: &mut Vec<(String, &'h [u8])>, field: &'h [u8]) {
    if let Some(colon) = field.iter().position(|&b| b == b':') {
        let name = String::from_utf8_lossy(&field[..colon])
            .trim()
            .to_ascii_lowercase();
        out.push((name, field));
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

impl<'a> Loaded<'a> {
    /// Message `uid` of `mailbox`, not yet read.
    pub(super) fn new(mailbox: &'a Arc<Mailbox>, uid: u32) -> Loaded<'a> {
        Loaded {
            mailbox,
            uid,
            bytes: None,
        }
    }

    fn get(&mut self) -> Result<&[u8], String> {
        if self.bytes.is_none() {
            let r = self
                .mailbox
                .read(self.uid)
                .map(crlf)
                .map_err(|e| e.to_string());
            self.bytes = Some(r);
        }
        match &self.bytes {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => Err(e.clone()),
            None => Err("not loaded".into()),
        }
    }

    /// SEARCH FROM/TO/SUBJECT/HEADER: a field of this name contains `needle` (case-insensitive).
    pub(super) fn header_contains(&mut self, field: &str, needle: &[u8]) -> bool {
        let Ok(b) = self.get() else { return false };
        let (h, _) = split(b);
        fields(h).iter().any(|(n, f)| {
            n == field
                && contains_ci(
                    &f[f.iter().position(|&c| c == b':').map_or(0, |p| p + 1)..],
                    needle,
                )
        })
    }

    /// SEARCH BODY
    pub(super) fn body_contains(&mut self, needle: &[u8]) -> bool {
        self.get().is_ok_and(|b| contains_ci(split(b).1, needle))
    }

    /// SEARCH TEXT
    pub(super) fn text_contains(&mut self, needle: &[u8]) -> bool {
        self.get().is_ok_and(|b| contains_ci(b, needle))
    }

    /// The Date: header as Unix seconds.
    pub(super) fn sent_date(&mut self) -> Option<i64> {
        let b = self.get().ok()?;
        let (h, _) = split(b);
        let f = fields(h).into_iter().find(|(n, _)| n == "date")?.1;
        let text = String::from_utf8_lossy(f);
        let value = text.split_once(':')?.1.trim();
        chrono::DateTime::parse_from_rfc2822(value)
            .ok()
            .map(|d| d.timestamp())
    }
}

/// Whether these items set `\Seen` (RFC 3501 §6.4.5: BODY[...] without PEEK, RFC822, RFC822.TEXT).
pub(super) fn sets_seen(items: &[FetchAtt]) -> bool {
    items.iter().any(|i| {
        matches!(
            i,
            FetchAtt::Rfc822 | FetchAtt::Rfc822Text | FetchAtt::Section { peek: false, .. }
        )
    })
}

/// `dd-Mon-yyyy hh:mm:ss +0000`
pub(super) fn date_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%d-%b-%Y %H:%M:%S +0000")
        .to_string()
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

fn nstring(s: Option<&str>) -> String {
    match s {
        None => "NIL".into(),
        Some(s)
            if s.bytes()
                .any(|b| b == b'\r' || b == b'\n' || b == b'"' || b == b'\\' || b >= 0x80) =>
        {
            format!("{{{}}}\r\n{s}", s.len())
        }
        Some(s) => format!("\"{s}\""),
    }
}

/// The data items of one message, without the surrounding `* n FETCH (` and `)`.
pub(super) fn fetch(
    items: &[FetchAtt],
    m: &Msg,
    flags: &str,
    loaded: &mut Loaded,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push(b' ');
        }
        match item {
            FetchAtt::Flags => out.extend_from_slice(format!("FLAGS {flags}").as_bytes()),
            FetchAtt::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", m.modseq).as_bytes()),
            FetchAtt::Uid => out.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
            FetchAtt::InternalDate => {
                out.extend_from_slice(format!("INTERNALDATE \"{}\"", date_time(m.date)).as_bytes())
            }
            FetchAtt::Size => {
                let n = loaded.get()?.len();
                out.extend_from_slice(format!("RFC822.SIZE {n}").as_bytes());
            }
            FetchAtt::Rfc822 => {
                out.extend_from_slice(b"RFC822 ");
                literal(&mut out, loaded.get()?);
            }
            FetchAtt::Rfc822Header => {
                out.extend_from_slice(b"RFC822.HEADER ");
                literal(&mut out, split(loaded.get()?).0);
            }
            FetchAtt::Rfc822Text => {
                out.extend_from_slice(b"RFC822.TEXT ");
                literal(&mut out, split(loaded.get()?).1);
            }
            FetchAtt::Envelope => {
                let b = loaded.get()?;
                let parsed = MessageParser::default().parse(b);
                out.extend_from_slice(b"ENVELOPE ");
                out.extend_from_slice(envelope(parsed.as_ref()).as_bytes());
            }
            FetchAtt::BodyStructure | FetchAtt::Body => {
                let b = loaded.get()?;
                let ext = matches!(item, FetchAtt::BodyStructure);
                let text = match MessageParser::default().parse(b) {
                    Some(msg) => body_structure(&msg, 0, ext, 0),
                    None => format!(
                        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" {} 0)",
                        b.len()
                    ),
                };
                out.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
                out.extend_from_slice(text.as_bytes());
            }
            FetchAtt::Section {
                section, partial, ..
            } => {
                let b = loaded.get()?;
                let data = section_bytes(b, section);
                out.extend_from_slice(format!("BODY[{}]", section_spec(section)).as_bytes());
                let data: &[u8] = match partial {
                    None => &data,
                    Some((start, len)) => {
                        out.extend_from_slice(format!("<{start}>").as_bytes());
                        let s = (*start as usize).min(data.len());
                        let e = s.saturating_add(*len as usize).min(data.len());
                        &data[s..e]
                    }
                };
                out.push(b' ');
                literal(&mut out, data);
            }
        }
    }
    Ok(out)
}

/// The section as the response names it: `1.2.HEADER.FIELDS (SUBJECT)`.
fn section_spec(s: &Section) -> String {
    let mut parts: Vec<String> = s.part.iter().map(u32::to_string).collect();
    match &s.text {
        SectionText::Full => {}
        SectionText::Header => parts.push("HEADER".into()),
        SectionText::Text => parts.push("TEXT".into()),
        SectionText::Mime => parts.push("MIME".into()),
        SectionText::Fields(names, not) => {
            // Echoed as atoms where possible: clients match the section text they sent.
            let quoted: Vec<String> = names
                .iter()
                .map(|n| {
                    let n = n.to_ascii_uppercase();
                    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        n
                    } else {
                        format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\""))
                    }
                })
                .collect();
            let verb = if *not {
                "HEADER.FIELDS.NOT"
            } else {
                "HEADER.FIELDS"
            };
            parts.push(format!("{verb} ({})", quoted.join(" ")));
        }
    }
    parts.join(".")
}

fn header_part(header: &[u8], text: &SectionText) -> Vec<u8> {
    match text {
        SectionText::Fields(names, not) => {
            let names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
            let mut out = Vec::new();
            for (n, f) in fields(header) {
                if names.contains(&n) != *not {
                    out.extend_from_slice(f);
                }
            }
            out.extend_from_slice(b"\r\n");
            out
        }
        _ => header.to_vec(),
    }
}

/// The octets of a body section (RFC 3501 §6.4.5); an absent part is empty.
fn section_bytes(msg: &[u8], s: &Section) -> Vec<u8> {
    if s.part.is_empty() {
        let (h, b) = split(msg);
        return match &s.text {
            SectionText::Full => msg.to_vec(),
            SectionText::Text => b.to_vec(),
            SectionText::Header | SectionText::Fields(..) => header_part(h, &s.text),
            SectionText::Mime => Vec::new(),
        };
    }
    let Some(parsed) = MessageParser::default().parse(msg) else {
        return Vec::new();
    };
    let Some((raw, part)) = find_part(&parsed, &s.part) else {
        return Vec::new();
    };
    let slice = |a: u32, b: u32| raw.get(a as usize..b as usize).unwrap_or_default().to_vec();
    match &s.text {
        SectionText::Full => slice(part.offset_body, part.offset_end),
        SectionText::Mime => slice(part.offset_header, part.offset_body),
        // HEADER and TEXT of a part address the message inside a message/rfc822 part.
        SectionText::Header | SectionText::Fields(..) | SectionText::Text => match &part.body {
            PartType::Message(_) => {
                let inner = slice(part.offset_body, part.offset_end);
                let (h, b) = split(&inner);
                match &s.text {
                    SectionText::Text => b.to_vec(),
                    _ => header_part(h, &s.text),
                }
            }
            _ => Vec::new(),
        },
    }
}

/// The part at `path` and the raw bytes its offsets count in.
fn find_part<'m>(msg: &'m Message<'m>, path: &[u32]) -> Option<(&'m [u8], &'m MessagePart<'m>)> {
    let mut cur_msg = msg;
    let mut cur = msg.parts.first()?;
    let mut at_root = true;
    for (k, &n) in path.iter().enumerate().take(MAX_DEPTH) {
        match &cur.body {
            PartType::Multipart(children) => {
                let id = *children.get((n as usize).checked_sub(1)?)?;
                cur = cur_msg.parts.get(id as usize)?;
            }
            _ if at_root && n == 1 => {}
            _ => return None,
        }
        at_root = false;
        if k + 1 < path.len() {
            if let PartType::Message(inner) = &cur.body {
                cur_msg = inner;
                cur = inner.parts.first()?;
                at_root = true;
            }
        }
    }
    Some((cur_msg.raw_message.as_ref(), cur))
}

fn addresses(a: Option<&Address>) -> String {
    let list: Vec<(Option<&str>, Option<&str>)> = match a {
        None => return "NIL".into(),
        Some(Address::List(l)) => l
            .iter()
            .map(|x| (x.name.as_deref(), x.address.as_deref()))
            .collect(),
        Some(Address::Group(g)) => g
            .iter()
            .flat_map(|g| g.addresses.iter())
            .map(|x| (x.name.as_deref(), x.address.as_deref()))
            .collect(),
    };
    if list.is_empty() {
        return "NIL".into();
    }
    let mut out = String::from("(");
    for (name, addr) in list {
        let (mailbox, host) = match addr.and_then(|a| a.rsplit_once('@')) {
            Some((m, h)) => (Some(m), Some(h)),
            None => (addr, None),
        };
        out.push_str(&format!(
            "({} NIL {} {})",
            nstring(name),
            nstring(mailbox),
            nstring(host)
        ));
    }
    out.push(')');
    out
}

/// ENVELOPE (RFC 3501 §7.4.2): date, subject, from, sender, reply-to, to, cc, bcc,
/// in-reply-to, message-id. Sender and Reply-To default to From.
fn envelope(msg: Option<&Message>) -> String {
    let Some(m) = msg else {
        return "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)".into();
    };
    let raw = |name: &str| m.header_raw(name).map(|v| v.trim().to_string());
    let from = addresses(m.from());
    let or_from = |a: Option<&Address>| {
        if a.is_some() {
            addresses(a)
        } else {
            from.clone()
        }
    };
    format!(
        "({} {} {} {} {} {} {} {} {} {})",
        nstring(raw("Date").as_deref()),
        nstring(raw("Subject").as_deref()),
        from,
        or_from(m.sender()),
        or_from(m.reply_to()),
        addresses(m.to()),
        addresses(m.cc()),
        addresses(m.bcc()),
        nstring(raw("In-Reply-To").as_deref()),
        nstring(raw("Message-ID").as_deref()),
    )
}

/// BODY / BODYSTRUCTURE of part `id` (RFC 3501 §7.4.2); `ext` adds the multipart parameters.
fn body_structure(msg: &Message, id: usize, ext: bool, depth: usize) -> String {
    let Some(part) = msg.parts.get(id) else {
        return "NIL".into();
    };
    let ct = part.content_type();
    let params = |ct: Option<&mail_parser::ContentType>| match ct.and_then(|c| c.attributes()) {
        Some(a) if !a.is_empty() => {
            let v: Vec<String> = a
                .iter()
                .map(|x| {
                    format!(
                        "{} {}",
                        nstring(Some(&x.name.to_ascii_uppercase())),
                        nstring(Some(&x.value))
                    )
                })
                .collect();
            format!("({})", v.join(" "))
        }
        _ => "NIL".into(),
    };
    if let PartType::Multipart(children) = &part.body {
        if depth >= MAX_DEPTH {
            return "NIL".into();
        }
        let mut out = String::from("(");
        for &c in children {
            out.push_str(&body_structure(msg, c as usize, ext, depth + 1));
        }
        let sub = ct
            .and_then(|c| c.subtype())
            .unwrap_or("mixed")
            .to_ascii_uppercase();
        out.push_str(&format!(" \"{sub}\""));
        if ext {
            out.push_str(&format!(" {} NIL NIL NIL", params(ct)));
        }
        out.push(')');
        return out;
    }
    let (ty, sub) = match ct {
        Some(c) => (
            c.ctype().to_ascii_uppercase(),
            c.subtype().unwrap_or("plain").to_ascii_uppercase(),
        ),
        None => ("TEXT".into(), "PLAIN".into()),
    };
    let params = match (ct, ty.as_str()) {
        (None, _) => "(\"CHARSET\" \"US-ASCII\")".to_string(),
        (Some(_), _) => params(ct),
    };
    let body = msg
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let enc = part
        .content_transfer_encoding()
        .unwrap_or("7BIT")
        .to_ascii_uppercase();
    let mut out = format!(
        "({} {} {params} {} {} {} {}",
        nstring(Some(&ty)),
        nstring(Some(&sub)),
        nstring(part.content_id()),
        nstring(part.content_description()),
        nstring(Some(&enc)),
        body.len()
    );
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    match &part.body {
        PartType::Message(inner) if depth < MAX_DEPTH => {
            out.push_str(&format!(
                " {} {} {lines}",
                envelope(Some(inner)),
                body_structure(inner, 0, ext, depth + 1)
            ));
        }
        _ if ty == "TEXT" => out.push_str(&format!(" {lines}")),
        _ => {}
    }
    if ext {
        out.push_str(" NIL NIL NIL");
    }
    out.push(')');
    out
}
