//! Messages the rules send: redirected, forwarded and mirrored copies, replies and reactions
//! (guide.txt:10869-10953).
//!
//! RFC 3834 for replies: `Auto-Submitted: auto-replied`, `In-Reply-To` and `References`, a null
//! return-path (§3.3) so that a reply never bounces back into another responder; the caller
//! ([`super::eval`]) never replies to automatic mail ([`MessageView::automatic`]).
//! RFC 5322 §3.6.6 for redirects: `Resent-*` fields prepended, the rest of the header kept.
//!
//! todo: the `[charsetName]` prefix is accepted and removed, but texts are always sent as UTF-8
//! (no charset conversion table yet).

use chrono::{DateTime, FixedOffset};
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;

use super::eval::Scope;
use super::message::MessageView;
use crate::kernel::mail::{NewRecipient, Source, Submission};

/// How a copy is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// `Redirect to`: `Resent-*` fields added; the original return-path kept.
    Redirect,
    /// `Forward to`: From becomes the account's address, which is also the return-path;
    /// `Resent-From`/`Resent-Date` added.
    Forward,
    /// `Mirror to`: header unchanged but `Return-Receipt-To`/`Errors-To` removed and
    /// `X-Mirrored-by` added; the original return-path kept.
    Mirror,
}

/// The address rule messages come from: the account's, or `postmaster@host` for server rules.
pub fn own_address(scope: &Scope, host: &str) -> String {
    match scope {
        Scope::Account(a) => a.clone(),
        Scope::Server => format!("postmaster@{host}"),
    }
}

fn source(scope: &Scope) -> Source {
    Source::Rules(match scope {
        Scope::Account(a) => a.clone(),
        Scope::Server => "server".into(),
    })
}

fn submission(return_path: &str, to: &[String], scope: &Scope) -> Submission {
    Submission {
        return_path: return_path.to_string(),
        recipients: to.iter().map(NewRecipient::new).collect(),
        source: source(scope),
        env_id: None,
        ret: None,
    }
}

/// A fresh Message-ID (without angle brackets) for a composed message.
fn new_message_id(now: DateTime<FixedOffset>, host: &str) -> String {
    format!(
        "rules-{}-{:08x}@{host}",
        now.timestamp(),
        rand::random::<u32>()
    )
}

/// Raw header fields of `header` as (name, whole field bytes including folded lines and CRLF).
fn raw_fields(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break;
        }
        let mut crlf = bare.to_vec();
        crlf.extend_from_slice(b"\r\n");
        if bare[0] == b' ' || bare[0] == b'\t' {
            if let Some((_, f)) = out.last_mut() {
                f.extend_from_slice(&crlf);
            }
            continue;
        }
        let name = bare
            .iter()
            .position(|&b| b == b':')
            .map(|p| String::from_utf8_lossy(&bare[..p]).trim().to_string())
            .unwrap_or_default();
        out.push((name, crlf));
    }
    out
}

/// Most `Resent-From`/`X-Mirrored-by` fields a message may carry and still be sent on.
pub const MAX_RESENDS: usize = 10;

/// Why sending this message on again would make a loop: it already went through this account's
/// (or the server's) redirect, forward or mirror, or through too many of them.
pub fn resend_loop(msg: &MessageView<'_>, scope: &Scope, host: &str) -> Option<&'static str> {
    let me = format!("<{}>", own_address(scope, host)).to_ascii_lowercase();
    let marks: Vec<&str> = msg
        .fields()
        .iter()
        .filter(|(n, _)| {
            n.eq_ignore_ascii_case("Resent-From") || n.eq_ignore_ascii_case("X-Mirrored-by")
        })
        .map(|(_, v)| v.as_str())
        .collect();
    if marks.iter().any(|v| v.to_ascii_lowercase().contains(&me)) {
        Some("the message was already sent on from here (mail loop)")
    } else if marks.len() >= MAX_RESENDS {
        Some("the message was sent on too many times (mail loop)")
    } else {
        None
    }
}

/// A copy of the message for `Redirect to`, `Forward to` or `Mirror to`.
pub fn resend(
    mode: Resend,
    msg: &MessageView<'_>,
    scope: &Scope,
    to: &[String],
    now: DateTime<FixedOffset>,
    host: &str,
) -> (Submission, Vec<u8>) {
    let me = own_address(scope, host);
    let mut out = Vec::with_capacity(msg.bytes().len() + 256);
    let fields = raw_fields(msg.header());
    match mode {
        Resend::Redirect => {
            out.extend_from_slice(
                format!(
                    "Resent-From: <{me}>\r\nResent-To: {}\r\nResent-Date: {}\r\nResent-Message-ID: <{}>\r\n",
                    to.iter().map(|a| format!("<{a}>")).collect::<Vec<_>>().join(", "),
                    now.to_rfc2822(),
                    new_message_id(now, host)
                )
                .as_bytes(),
            );
            fields.iter().for_each(|(_, f)| out.extend_from_slice(f));
        }
        Resend::Forward => {
            // A resent block (RFC 5322 §3.6.6) also marks the copy for loop detection.
            out.extend_from_slice(
                format!(
                    "Resent-From: <{me}>\r\nResent-Date: {}\r\n",
                    now.to_rfc2822()
                )
                .as_bytes(),
            );
            let mut replaced = false;
            for (name, f) in &fields {
                if name.eq_ignore_ascii_case("From") {
                    if !replaced {
                        out.extend_from_slice(format!("From: <{me}>\r\n").as_bytes());
                        replaced = true;
                    }
                } else {
                    out.extend_from_slice(f);
                }
            }
            if !replaced {
                out.extend_from_slice(format!("From: <{me}>\r\n").as_bytes());
            }
        }
        Resend::Mirror => {
            for (name, f) in &fields {
                if !name.eq_ignore_ascii_case("Return-Receipt-To")
                    && !name.eq_ignore_ascii_case("Errors-To")
                {
                    out.extend_from_slice(f);
                }
            }
            out.extend_from_slice(format!("X-Mirrored-by: <{me}>\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg.body());
    let return_path = match mode {
        Resend::Forward => me,
        Resend::Redirect | Resend::Mirror => msg.return_path.clone(),
    };
    (submission(&return_path, to, scope), out)
}

/// Whom `Reply with` (Reply-To, else From) or `Reply to All with` (every To and Cc, not the
/// account itself) answers.
pub fn reply_targets(msg: &MessageView<'_>, all: bool, scope: &Scope) -> Vec<String> {
    let list = if all {
        msg.to().iter().chain(msg.cc()).collect::<Vec<_>>()
    } else if !msg.reply_to().is_empty() {
        msg.reply_to().iter().collect()
    } else {
        msg.from().iter().collect()
    };
    let me = match scope {
        Scope::Account(a) => a.to_ascii_lowercase(),
        Scope::Server => String::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for a in list {
        let addr = a.address.trim();
        if addr.contains('@')
            && !addr.chars().any(|c| c.is_control() || c.is_whitespace())
            && addr.to_ascii_lowercase() != me
            && !out.iter().any(|o| o.eq_ignore_ascii_case(addr))
        {
            out.push(addr.to_string());
        }
    }
    out
}

/// Replaces `^S` (Subject), `^F` (From address), `^T` (Date), `^I` (Message-ID).
pub fn expand_macros(text: &str, msg: &MessageView<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '^' {
            let value = match chars.peek() {
                Some('S') => Some(msg.subject().unwrap_or("")),
                Some('F') => Some(msg.from_address().unwrap_or("")),
                Some('T') => Some(msg.field("Date").unwrap_or("")),
                Some('I') => Some(msg.field("Message-ID").unwrap_or("")),
                _ => None,
            };
            if let Some(v) = value {
                chars.next();
                // Message data may carry line breaks (RFC 2047 words decode to anything): they
                // must not start new header fields in a `+` text.
                out.extend(v.chars().map(|c| if c.is_control() { ' ' } else { c }));
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Splits the `[charsetName]` prefix off a text (guide.txt:10911-10920).
fn strip_charset(text: &str) -> (Option<&str>, &str) {
    if let Some(rest) = text.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let name = &rest[..end];
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                return (Some(name), &rest[end + 1..]);
            }
        }
    }
    (None, text)
}

/// A text with a header part (`+` replies and `React with`): its fields and its body.
fn split_header_text(text: &str) -> (Vec<(String, String)>, String) {
    let text = text.replace("\r\n", "\n");
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h.to_string(), b.to_string()),
        None => (text.clone(), String::new()),
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.extend(
                    line.trim()
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c }),
                );
            }
        } else if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            let v: String = v
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            // Only printable names without spaces, so no field can smuggle a line break.
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()) {
                fields.push((n.to_string(), v.trim().to_string()));
            }
        }
    }
    (fields, body)
}

fn addresses_of(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|a| {
            let a = a.trim();
            match (a.rfind('<'), a.rfind('>')) {
                (Some(s), Some(e)) if s < e => a[s + 1..e].trim().to_string(),
                _ => a.to_string(),
            }
        })
        .filter(|a| a.contains('@') && !a.contains(char::is_whitespace))
        .collect()
}

/// CRLF line ends for a body given with LF or CRLF.
fn crlf(body: &str) -> String {
    body.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// A message from header fields the rule wrote (`+` replies, `React with`): recipients from its
/// To/Cc/Bcc plus `extra_to`, Bcc removed, From or Sender set to the account.
fn from_fields(
    fields: Vec<(String, String)>,
    body: &str,
    extra_to: &[String],
    me: &str,
    now: DateTime<FixedOffset>,
    host: &str,
) -> (Vec<String>, Vec<u8>) {
    let mut rcpts: Vec<String> = extra_to.to_vec();
    let mut out = String::new();
    let mut has_from = false;
    let mut to_written = false;
    for (n, v) in &fields {
        let lower = n.to_ascii_lowercase();
        if matches!(lower.as_str(), "to" | "cc" | "bcc") {
            rcpts.extend(addresses_of(v));
        }
        match lower.as_str() {
            "bcc" | "date" | "message-id" | "auto-submitted" => continue,
            "from" => has_from = true,
            "to" if !extra_to.is_empty() && !to_written => {
                let all: Vec<String> = extra_to.iter().cloned().chain(addresses_of(v)).collect();
                out.push_str(&format!("To: {}\r\n", all.join(", ")));
                to_written = true;
                continue;
            }
            _ => {}
        }
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !extra_to.is_empty() && !to_written {
        out.push_str(&format!("To: {}\r\n", extra_to.join(", ")));
    }
    if has_from {
        out.push_str(&format!("Sender: <{me}>\r\n"));
    } else {
        out.push_str(&format!("From: <{me}>\r\n"));
    }
    out.push_str(&format!(
        "Date: {}\r\nMessage-ID: <{}>\r\nAuto-Submitted: auto-replied\r\n",
        now.to_rfc2822(),
        new_message_id(now, host)
    ));
    if !fields
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("MIME-Version"))
    {
        out.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&crlf(body));
    let mut seen: Vec<String> = Vec::new();
    rcpts.retain(|r| {
        let fresh = !seen.iter().any(|s| s.eq_ignore_ascii_case(r));
        seen.push(r.clone());
        fresh
    });
    (rcpts, out.into_bytes())
}

/// A reply (`Reply with`, `Reply to All with`) to `targets`; `None` if it has no recipient or
/// cannot be built.
pub fn reply(
    text: &str,
    msg: &MessageView<'_>,
    targets: &[String],
    scope: &Scope,
    now: DateTime<FixedOffset>,
    host: &str,
) -> Option<(Submission, Vec<u8>)> {
    let me = own_address(scope, host);
    let (_charset, text) = strip_charset(text);
    let text = expand_macros(text, msg);
    let original_id = msg
        .field("Message-ID")
        .map(str::trim)
        .filter(|i| !i.is_empty());
    if let Some(headers) = text.strip_prefix('+') {
        let (fields, body) = split_header_text(headers.trim_start_matches(['\r', '\n']));
        let (rcpts, bytes) = from_fields(fields, &body, targets, &me, now, host);
        if rcpts.is_empty() {
            return None;
        }
        return Some((submission("", &rcpts, scope), bytes));
    }
    if targets.is_empty() {
        return None;
    }
    let subject = msg.subject().unwrap_or("");
    let subject = if subject.len() >= 3 && subject[..3].eq_ignore_ascii_case("re:") {
        subject.to_string()
    } else {
        format!("Re: {subject}")
    };
    let mut b = MessageBuilder::new()
        .from(me.clone())
        .to(targets.to_vec())
        .subject(subject)
        .date(now.timestamp())
        .message_id(new_message_id(now, host))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .text_body(crlf(&text));
    if let Some(id) = original_id {
        let bare = id.trim_start_matches('<').trim_end_matches('>').to_string();
        let mut refs: Vec<String> = msg
            .field("References")
            .unwrap_or("")
            .split_whitespace()
            .map(|r| r.trim_start_matches('<').trim_end_matches('>').to_string())
            .filter(|r| !r.is_empty())
            .collect();
        refs.push(bare.clone());
        b = b
            .in_reply_to(bare)
            .references(MessageId::new_list(refs.into_iter()));
    }
    let bytes = b.write_to_vec().ok()?;
    Some((submission("", targets, scope), bytes))
}

/// A `React with` message: the text's own header names the recipients.
pub fn react(
    text: &str,
    msg: &MessageView<'_>,
    scope: &Scope,
    now: DateTime<FixedOffset>,
    host: &str,
) -> Option<(Submission, Vec<u8>)> {
    let me = own_address(scope, host);
    let (_charset, text) = strip_charset(text);
    let text = expand_macros(text, msg);
    let (fields, body) = split_header_text(&text);
    let (rcpts, bytes) = from_fields(fields, &body, &[], &me, now, host);
    if rcpts.is_empty() {
        return None;
    }
    Some((submission("", &rcpts, scope), bytes))
}
