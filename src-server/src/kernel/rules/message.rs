//! What the rules see of a message: its envelope and its header, read once.
//!
//! Security: the message is untrusted. The header is read only up to [`MAX_HEADER`] bytes and
//! [`MAX_FIELDS`] fields; addresses are parsed with `mail-parser` (which never panics) from that
//! bounded header only. The body is never parsed, only handed out as bytes.

use mail_parser::{Address, MessageParser};

use crate::kernel::mail::Source;

/// Most header bytes read.
pub const MAX_HEADER: usize = 256 * 1024;
/// Most header fields read.
pub const MAX_FIELDS: usize = 1000;

/// One address of a header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderAddress {
    /// The real name or comment (`"Bill J. Smith"`, `(John J. Smith)`), if any.
    pub name: Option<String>,
    /// `user@domain`.
    pub address: String,
}

/// One envelope recipient, as the rules see it (guide.txt:10652-10689).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRecipient {
    /// The address as submitted, before the Router rewrote it.
    pub address: String,
    /// DSN `ORCPT` (`rfc822;addr` or a bare address); used instead of `address` when given.
    pub orcpt: Option<String>,
    /// The routed address (server-wide rules: `Any Route`/`Each Route` test its local part).
    pub routed: Option<String>,
}

impl EnvelopeRecipient {
    /// A recipient with neither ORCPT nor route.
    pub fn new(address: impl Into<String>) -> EnvelopeRecipient {
        EnvelopeRecipient {
            address: address.into(),
            orcpt: None,
            routed: None,
        }
    }

    /// The string `Any Recipient` tests: `<original address>` (guide.txt:10673-10678).
    pub fn tested(&self) -> String {
        let orig = self
            .orcpt
            .as_deref()
            .map(|o| match o.split_once(';') {
                Some((kind, a)) if kind.trim().eq_ignore_ascii_case("rfc822") => a.trim(),
                _ => o.trim(),
            })
            .filter(|o| !o.is_empty())
            .unwrap_or(&self.address);
        format!("<{}>", orig.trim_start_matches('<').trim_end_matches('>'))
    }

    /// The local part of the routed address (guide.txt:10743-10751), if routed.
    pub fn route_local_part(&self) -> Option<&str> {
        self.routed
            .as_deref()
            .map(|r| r.rsplit_once('@').map_or(r, |(local, _)| local))
    }
}

/// A message with its envelope, as rules check it and compose replies from it.
#[derive(Debug, Clone)]
pub struct MessageView<'a> {
    message: &'a [u8],
    header_len: usize,
    fields: Vec<(String, String)>,
    from: Vec<HeaderAddress>,
    sender: Vec<HeaderAddress>,
    reply_to: Vec<HeaderAddress>,
    to: Vec<HeaderAddress>,
    cc: Vec<HeaderAddress>,
    subject: Option<String>,
    /// Envelope return-path, "" for `<>`.
    pub return_path: String,
    /// Envelope recipients (account rules: only those routed to the account).
    pub recipients: Vec<EnvelopeRecipient>,
    /// Who submitted the message.
    pub source: Source,
    /// The queue file id, for `Execute [FILE]` and log records.
    pub queue_id: Option<u64>,
}

impl<'a> MessageView<'a> {
    /// Reads the header of `message` (bounded) and keeps the envelope.
    pub fn new(
        message: &'a [u8],
        return_path: impl Into<String>,
        recipients: Vec<EnvelopeRecipient>,
        source: Source,
    ) -> MessageView<'a> {
        let header_len = header_length(message);
        let header = &message[..header_len.min(MAX_HEADER)];
        let fields = read_fields(header);
        let (mut from, mut sender, mut reply_to, mut to, mut cc) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut subject = None;
        if let Some(parsed) = MessageParser::new().parse_headers(header) {
            from = addresses(parsed.from());
            sender = addresses(parsed.sender());
            reply_to = addresses(parsed.reply_to());
            to = addresses(parsed.to());
            cc = addresses(parsed.cc());
            subject = parsed.subject().map(str::to_string);
        }
        MessageView {
            message,
            header_len,
            fields,
            from,
            sender,
            reply_to,
            to,
            cc,
            subject,
            return_path: return_path.into(),
            recipients,
            source,
            queue_id: None,
        }
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.message
    }

    /// The header section (up to and including the empty line).
    pub fn header(&self) -> &'a [u8] {
        &self.message[..self.header_len]
    }

    /// The body (after the empty line).
    pub fn body(&self) -> &'a [u8] {
        &self.message[self.header_len..]
    }

    /// Size in bytes (`Message Size`).
    pub fn size(&self) -> u64 {
        self.message.len() as u64
    }

    /// Every header field read, `(name, unfolded value)`, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The first field of this name (case-insensitive), unfolded and trimmed.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `From` addresses.
    pub fn from(&self) -> &[HeaderAddress] {
        &self.from
    }
    /// `Sender` addresses.
    pub fn sender(&self) -> &[HeaderAddress] {
        &self.sender
    }
    /// `Reply-To` addresses.
    pub fn reply_to(&self) -> &[HeaderAddress] {
        &self.reply_to
    }
    /// `To` addresses.
    pub fn to(&self) -> &[HeaderAddress] {
        &self.to
    }
    /// `Cc` addresses.
    pub fn cc(&self) -> &[HeaderAddress] {
        &self.cc
    }

    /// The Subject, RFC 2047 words decoded.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The first From address, if any.
    pub fn from_address(&self) -> Option<&str> {
        self.from.first().map(|a| a.address.as_str())
    }

    /// `Human Generated` (guide.txt:10606-10623): no `Precedence: bulk|junk|list`, no `X-List*`,
    /// `X-Mirror*`, `X-Auto*`, `X-Mailing-List` field, and a non-empty return-path. Exactly the
    /// guide's list: the stricter RFC 3834 test for replies is [`MessageView::automatic`].
    pub fn human_generated(&self) -> bool {
        if self.return_path.trim().is_empty() {
            return false;
        }
        !self.fields.iter().any(|(name, value)| {
            let n = name.to_ascii_lowercase();
            let v = value.trim().to_ascii_lowercase();
            (n == "precedence" && matches!(v.as_str(), "bulk" | "junk" | "list"))
                || n.starts_with("x-list")
                || n.starts_with("x-mirror")
                || n.starts_with("x-auto")
                || n == "x-mailing-list"
        })
    }

    /// Whether an automatic reply must not be sent (RFC 3834 §2, §3.1.7): the guide's automatic
    /// markers, `Auto-Submitted` other than `no`, a `List-*` field (RFC 2369/2919), or a
    /// return-path of `<>` or a `MAILER-DAEMON`/`owner-`/`-request` mailbox.
    pub fn automatic(&self) -> bool {
        let rp = self.return_path.trim().to_ascii_lowercase();
        let local = rp.rsplit_once('@').map_or(rp.as_str(), |(l, _)| l);
        !self.human_generated()
            || local == "mailer-daemon"
            || local.starts_with("owner-")
            || local.ends_with("-request")
            || self.fields.iter().any(|(name, value)| {
                let n = name.to_ascii_lowercase();
                let v = value.trim().to_ascii_lowercase();
                (n == "auto-submitted" && v != "no") || n.starts_with("list-")
            })
    }
}

fn addresses(a: Option<&Address<'_>>) -> Vec<HeaderAddress> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                let address = x.address.as_deref()?.trim().to_string();
                (!address.is_empty()).then(|| HeaderAddress {
                    name: x
                        .name
                        .as_deref()
                        .map(|n| n.trim().to_string())
                        .filter(|n| !n.is_empty()),
                    address,
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Length of the header section including the blank line ending it (or the whole message).
fn header_length(m: &[u8]) -> usize {
    let mut i = 0;
    while i < m.len() {
        // At the start of a line: a blank line ends the header.
        if m[i] == b'\n' {
            return i + 1;
        }
        if m[i] == b'\r' && m.get(i + 1) == Some(&b'\n') {
            return i + 2;
        }
        match m[i..].iter().position(|&b| b == b'\n') {
            Some(p) => i += p + 1,
            None => return m.len(),
        }
    }
    m.len()
}

/// Header fields, unfolded (RFC 5322 §2.2.3), lossy UTF-8, at most [`MAX_FIELDS`].
fn read_fields(header: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for raw in header.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(text.trim());
            }
            continue;
        }
        if out.len() >= MAX_FIELDS {
            break;
        }
        // A line without a colon (e.g. an mbox "From " line) is not a field; skip it.
        if let Some((name, value)) = text.split_once(':') {
            if !name.is_empty() && !name.contains([' ', '\t']) {
                out.push((name.to_string(), value.trim().to_string()));
            }
        }
    }
    out
}
