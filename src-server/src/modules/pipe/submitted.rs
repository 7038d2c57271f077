//! The `.sub` file codec: an RFC 5322 message whose headers also say its envelope
//! (guide.txt:13847-13895). Bytes in, a [`Submission`] and the message to queue out; no file
//! system, no tokio.
//!
//! The envelope, in the guide's words (guide.txt:13862-13881):
//! - recipients are the addresses of `To:`, `Cc:` and `Bcc:`; `Bcc:` fields are removed;
//! - if any `Envelope-To:` field exists, recipients come only from `Envelope-To:` fields (To, Cc
//!   and Bcc are not used), and those fields are removed;
//! - otherwise addresses listed in `Envelope-Ignore:` fields are left out of the To/Cc/Bcc set;
//! - `Return-Path:` gives the return-path and is removed; without it the `From:` address is used,
//!   or the `Sender:` address when `From:` does not name exactly one mailbox;
//! - `From:` and `Sender:` addresses without a domain get the server domain (in the header too);
//! - `Envelope-ID:` gives the DSN envelope ID.
//!
//! Decisions where the guide is silent: `Envelope-Ignore:` and `Envelope-ID:` are removed as well
//! (they are instructions to this module, not message content); recipient addresses without a
//! domain get the server domain like `From:` does (what `mail joe` means); a message with no
//! usable `From:`/`Sender:` and no `Return-Path:` gets the null return-path `<>`; duplicate
//! recipients (compared case-insensitively) are submitted once.
//!
//! Line ends: the file uses the system's native line ends, no dot-stuffing, no final `.`
//! (guide.txt:13857-13861). The queued message has CRLF line ends, the RFC 5322 form every other
//! entry point (SMTP `DATA`) queues; bare LF becomes CRLF, CRLF stays.
//!
//! Security: the file is untrusted bytes. The header part is bounded by [`MAX_HEADER`], each
//! address list is parsed without recursion, and nothing here panics on any input.

use std::ops::Range;

use crate::kernel::mail::{NewRecipient, Source, Submission};

/// Largest header part (bytes up to the blank line) a `.sub` file may have.
pub const MAX_HEADER: usize = 256 * 1024;
/// Longest `Envelope-ID:` (RFC 3461 §4.4: ENVID is at most 100 characters).
const MAX_ENVID: usize = 100;

/// Why a `.sub` file cannot be submitted (the reason logged when it is renamed `.bad`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubError {
    /// The header part is larger than [`MAX_HEADER`].
    #[error("the header part is larger than {MAX_HEADER} bytes")]
    HeaderTooLarge,
    /// A header line is neither `name: value` nor a continuation.
    #[error("line {0} is not a header field")]
    BadHeaderLine(usize),
    /// An address in the named field does not parse.
    #[error("bad address in {field}: {text}")]
    BadAddress {
        /// The field's name as written.
        field: String,
        /// The offending text.
        text: String,
    },
    /// `Return-Path:` does not hold exactly one address or `<>`.
    #[error("Return-Path must hold one address")]
    BadReturnPath,
    /// `Envelope-ID:` is longer than RFC 3461 allows.
    #[error("Envelope-ID is longer than {MAX_ENVID} characters")]
    EnvelopeIdTooLong,
    /// The envelope ended up with no recipient.
    #[error("no recipient addresses")]
    NoRecipients,
}

/// A parsed `.sub` file: what to hand the Enqueuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The envelope (source [`Source::Pipe`]).
    pub submission: Submission,
    /// The message with the PIPE-only fields and `Bcc:` removed, CRLF line ends.
    pub message: Vec<u8>,
}

/// One header field: its name and its raw lines without line ends (continuations included).
struct Field<'a> {
    name: String,
    lines: Vec<&'a [u8]>,
}

impl Field<'_> {
    /// The unfolded value after the colon (lossy UTF-8; addresses are ASCII or UTF-8).
    fn value(&self) -> String {
        let mut v = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            let part = if i == 0 {
                line.get(self.name.len() + 1..).unwrap_or_default()
            } else {
                line
            };
            v.extend_from_slice(part);
        }
        String::from_utf8_lossy(&v).into_owned()
    }

    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Parses a `.sub` file; `server_domain` qualifies addresses without a domain.
pub fn parse(file: &[u8], server_domain: &str) -> Result<Parsed, SubError> {
    let (fields, body) = split_header(file)?;
    let list = |f: &Field<'_>| -> Result<Vec<(String, Range<usize>)>, SubError> {
        address_list(&f.value()).map_err(|text| SubError::BadAddress {
            field: f.name.clone(),
            text,
        })
    };

    let mut envelope_to = Vec::new();
    let mut to_cc_bcc = Vec::new();
    let mut ignore = Vec::new();
    let mut return_path = None;
    let mut env_id = None;
    let mut from = None;
    let mut sender = None;
    for f in &fields {
        if f.is("Envelope-To") {
            envelope_to.extend(list(f)?.into_iter().map(|(a, _)| a));
        } else if f.is("To") || f.is("Cc") || f.is("Bcc") {
            to_cc_bcc.extend(list(f)?.into_iter().map(|(a, _)| a));
        } else if f.is("Envelope-Ignore") {
            ignore.extend(list(f)?.into_iter().map(|(a, _)| a));
        } else if f.is("Return-Path") {
            // The first one wins, as a receiving MTA's own Return-Path comes first.
            if return_path.is_none() {
                return_path = Some(return_path_of(&f.value())?);
            }
        } else if f.is("Envelope-ID") {
            let id = f.value().trim().to_string();
            if id.chars().count() > MAX_ENVID {
                return Err(SubError::EnvelopeIdTooLong);
            }
            if !id.is_empty() {
                env_id = Some(id);
            }
        } else if f.is("From") && from.is_none() {
            from = Some(list(f)?);
        } else if f.is("Sender") && sender.is_none() {
            sender = Some(list(f)?);
        }
    }

    let recipients = if envelope_to.is_empty() {
        let ignored: Vec<String> = ignore
            .iter()
            .map(|a| qualify(a, server_domain).to_ascii_lowercase())
            .collect();
        let mut r = Vec::new();
        for a in to_cc_bcc {
            let a = qualify(&a, server_domain);
            if !ignored.contains(&a.to_ascii_lowercase()) {
                r.push(a);
            }
        }
        r
    } else {
        envelope_to
            .iter()
            .map(|a| qualify(a, server_domain))
            .collect()
    };
    let mut unique: Vec<String> = Vec::with_capacity(recipients.len());
    for r in recipients {
        if !unique.iter().any(|u| u.eq_ignore_ascii_case(&r)) {
            unique.push(r);
        }
    }
    if unique.is_empty() {
        return Err(SubError::NoRecipients);
    }

    let one = |l: &Option<Vec<(String, Range<usize>)>>| match l.as_deref() {
        Some([(a, _)]) => Some(qualify(a, server_domain)),
        _ => None,
    };
    let return_path = return_path
        .or_else(|| one(&from))
        .or_else(|| one(&sender))
        .unwrap_or_default();

    let mut message = Vec::with_capacity(file.len() + file.len() / 32);
    for f in &fields {
        if [
            "Bcc",
            "Envelope-To",
            "Envelope-Ignore",
            "Return-Path",
            "Envelope-ID",
        ]
        .iter()
        .any(|n| f.is(n))
        {
            continue;
        }
        let qualified = if f.is("From") || f.is("Sender") {
            qualified_field(f, server_domain)
        } else {
            None
        };
        match qualified {
            Some(line) => {
                message.extend_from_slice(line.as_bytes());
                message.extend_from_slice(b"\r\n");
            }
            None => {
                for line in &f.lines {
                    message.extend_from_slice(line);
                    message.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    message.extend_from_slice(b"\r\n");
    push_crlf(&mut message, body);

    Ok(Parsed {
        submission: Submission {
            return_path,
            recipients: unique.into_iter().map(NewRecipient::new).collect(),
            source: Source::Pipe,
            env_id,
            ret: None,
        },
        message,
    })
}

/// Splits the header fields from the body (the bytes after the first empty line).
fn split_header(file: &[u8]) -> Result<(Vec<Field<'_>>, &[u8]), SubError> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    let mut number = 0;
    while pos < file.len() {
        if pos > MAX_HEADER {
            return Err(SubError::HeaderTooLarge);
        }
        number += 1;
        let (line, next) = match file[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (&file[pos..pos + i], pos + i + 1),
            None => (&file[pos..], file.len()),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok((fields, &file[next..]));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            match fields.last_mut() {
                Some(f) => f.lines.push(line),
                None => return Err(SubError::BadHeaderLine(number)),
            }
        } else {
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(SubError::BadHeaderLine(number))?;
            let name = &line[..colon];
            // RFC 5322 §3.6.8: ftext is printable US-ASCII except the colon.
            if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
                return Err(SubError::BadHeaderLine(number));
            }
            fields.push(Field {
                name: String::from_utf8_lossy(name).into_owned(),
                lines: vec![line],
            });
        }
        pos = next;
    }
    if pos > MAX_HEADER {
        return Err(SubError::HeaderTooLarge);
    }
    // A message with headers only.
    Ok((fields, &[]))
}

/// Appends `body` with every bare LF made CRLF.
fn push_crlf(out: &mut Vec<u8>, body: &[u8]) {
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}

/// `addr` with `@server_domain` added when it has no domain part.
fn qualify(addr: &str, server_domain: &str) -> String {
    if has_domain(addr) {
        addr.to_string()
    } else {
        format!("{addr}@{server_domain}")
    }
}

/// Whether an addr-spec has an `@` outside its quoted local part.
fn has_domain(addr: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for c in addr.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '@' if !quoted => return true,
            _ => {}
        }
    }
    false
}

/// The From/Sender field rewritten with the server domain added, when an address lacks one.
fn qualified_field(f: &Field<'_>, server_domain: &str) -> Option<String> {
    let value = f.value();
    let addrs = address_list(&value).ok()?;
    if addrs.iter().all(|(a, _)| has_domain(a)) {
        return None;
    }
    let mut out = value.clone();
    // From the end, so the earlier ranges stay valid.
    for (a, range) in addrs.iter().rev() {
        if !has_domain(a) {
            out.replace_range(range.clone(), &qualify(a, server_domain));
        }
    }
    Some(format!("{}:{out}", f.name))
}

/// The return-path in a `Return-Path:` value: one address, or `<>` for the null sender ("").
fn return_path_of(value: &str) -> Result<String, SubError> {
    if strip_comments(value).trim() == "<>" {
        return Ok(String::new());
    }
    match address_list(value) {
        Ok(mut l) if l.len() == 1 => Ok(l.remove(0).0),
        _ => Err(SubError::BadReturnPath),
    }
}

/// `value` without RFC 5322 comments (outside quoted strings).
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// RFC 5322 §3.4 `address-list`, leniently: each mailbox's addr-spec and its byte range in
/// `value`. Groups (`name: a@b, c@d;`) give their members; an empty group gives nothing.
/// `Err` holds the text of an entry that is not an address.
///
/// ```text
/// address-list = address *("," address)
/// address      = mailbox / group
/// mailbox      = name-addr / addr-spec       name-addr = [display-name] "<" addr-spec ">"
/// group        = display-name ":" [mailbox-list] ";"
/// ```
pub(crate) fn address_list(value: &str) -> Result<Vec<(String, Range<usize>)>, String> {
    let mut out = Vec::new();
    for item in top_level_items(value) {
        let text = &value[item.clone()];
        if text.trim().is_empty() {
            continue;
        }
        if let Some((addr, range)) = mailbox(text).map_err(|_| text.trim().to_string())? {
            out.push((addr, item.start + range.start..item.start + range.end));
        }
    }
    Ok(out)
}

/// Splits at top-level `,`, and cuts group openers (`name:`) and closers (`;`) away: the ranges
/// of the mailbox texts.
fn top_level_items(value: &str) -> Vec<Range<usize>> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut depth = 0usize; // comment nesting
    let mut angle = false;
    // Inside a domain literal (`x@[127.0.0.1:9]`) a `:` is not a group's display name.
    let mut literal = false;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            _ if quoted => {}
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '[' => literal = true,
            ']' => literal = false,
            _ if literal => {}
            '<' => angle = true,
            '>' => angle = false,
            ':' if !angle => start = i + 1,
            ',' | ';' if !angle => {
                items.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(start..value.len());
    items
}

/// One mailbox: `Ok(None)` for text that is only comments or blanks.
fn mailbox(text: &str) -> Result<Option<(String, Range<usize>)>, ()> {
    // name-addr: the addr-spec is inside the angle brackets (outside quotes and comments).
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    let mut open = None;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            _ if quoted => {}
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '<' if open.is_none() => open = Some(i + 1),
            '>' => {
                let start = open.ok_or(())?;
                let inner = &text[start..i];
                // RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec is dropped.
                let (skip, spec) = match inner.rfind(':') {
                    Some(k) if inner.trim_start().starts_with('@') => (k + 1, &inner[k + 1..]),
                    _ => (0, inner),
                };
                let addr = addr_spec(spec)?;
                return Ok(Some((addr, start + skip..i)));
            }
            _ => {}
        }
    }
    if open.is_some() {
        return Err(());
    }
    let bare = strip_comments(text);
    if bare.trim().is_empty() {
        return Ok(None);
    }
    let addr = addr_spec(&bare)?;
    let lead = text.len() - text.trim_start().len();
    let range = lead..text.trim_end().len().max(lead);
    Ok(Some((addr, range)))
}

/// An addr-spec: CFWS around it removed; no blanks or controls outside a quoted local part.
fn addr_spec(text: &str) -> Result<String, ()> {
    let s = strip_comments(text);
    let s = s.trim();
    if s.is_empty() {
        return Err(());
    }
    let mut quoted = false;
    let mut escaped = false;
    let mut literal = false;
    for c in s.chars() {
        if c.is_control() {
            return Err(());
        }
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            // A domain literal `[1.2.3.4]` or `[1.2.3.4:25]` after the `@` is fine.
            '[' if !quoted && has_domain(s) => literal = true,
            ']' if !quoted && has_domain(s) => literal = false,
            ':' if literal => {}
            c if !quoted && (c.is_whitespace() || "<>,;:()[]".contains(c)) => return Err(()),
            _ => {}
        }
    }
    if quoted || s.ends_with('@') || s.starts_with('@') {
        return Err(());
    }
    Ok(s.to_string())
}
