//! The SMTP codec: input framing (command lines and DATA), command parsing, reply formatting.
//! Bytes in, typed commands out; replies to bytes. No I/O, no tokio, no store.
//!
//! Standards: RFC 5321 (commands §4.1, paths §4.1.2, line limits §4.5.3.1, dot-stuffing §4.5.2),
//! RFC 1870 (SIZE), RFC 6152 (8BITMIME, `BODY=`), RFC 3461 (DSN: `RET`, `ENVID`, `NOTIFY`,
//! `ORCPT`), RFC 4954 (AUTH and the `AUTH=` MAIL parameter), RFC 3207 (STARTTLS), RFC 1985
//! (ETRN), RFC 2645 (ATRN), RFC 2034 / RFC 3463 (enhanced status codes).
//!
//! Security: every byte comes from an unauthenticated peer. Lines are capped before they are
//! parsed ([`MAX_LINE`]); an over-long line is skipped whole and reported once, so the session
//! stays in step. Paths are capped at RFC 5321 §4.5.3.1's sizes. The DATA reader stops storing
//! past its size cap but keeps reading to the terminating dot, so the client gets a clean reply.
//!
//! Tolerances of broken peers, each a named switch in [`Quirks`]: a space after `FROM:`/`TO:`
//! and a path without angle brackets (old Outlook and many scripts).

#[cfg(test)]
mod tests;

use crate::kernel::mail::{Notify, Ret};

/// Longest command line, without its line end (RFC 5321 §4.5.3.1.4: 1000 octets with CRLF; SMTP
/// extensions raise the 512-octet command limit, so the text-line limit is used for both).
pub const MAX_LINE: usize = 998;
/// Longest path (RFC 5321 §4.5.3.1.3, including the angle brackets).
pub const MAX_PATH: usize = 256;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest `ENVID` / `ORCPT` value (RFC 3461 §4.4 and §4.2 give 100 and 500 octets).
pub const MAX_XTEXT: usize = 500;

/// Tolerances of broken clients (module header).
#[derive(Debug, Clone, Copy)]
pub struct Quirks {
    /// `MAIL FROM: <a@b>`: a space after the colon (Outlook Express, many scripts).
    pub quirk_space_after_colon: bool,
    /// `MAIL FROM:a@b`: no angle brackets (old mailers and shell scripts).
    pub quirk_missing_brackets: bool,
}

impl Default for Quirks {
    fn default() -> Quirks {
        Quirks {
            quirk_space_after_colon: true,
            quirk_missing_brackets: true,
        }
    }
}

// ------------------------------------------------------------------------------------ framing

/// One framed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The line without its CRLF or LF.
    Text(Vec<u8>),
    /// The line was longer than the cap; it has been skipped.
    TooLong,
}

/// What the DATA reader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEnd {
    /// The terminating `.` line was read; the message is complete.
    Complete,
    /// The terminating `.` line was read, but the message was larger than the cap.
    TooLarge,
}

/// The message being read after `354`: dot-unstuffed, line ends made CRLF, capped.
#[derive(Debug)]
pub struct DataReader {
    /// The message so far.
    pub message: Vec<u8>,
    max: usize,
    over: bool,
    /// The buffer was dropped inside a line (past the cap): the next line end ends that line.
    mid_line: bool,
}

impl DataReader {
    /// A reader that keeps at most `max` bytes of message.
    pub fn new(max: usize) -> DataReader {
        DataReader {
            message: Vec::new(),
            max,
            over: false,
            mid_line: false,
        }
    }

    /// Adds one message line (without its line end); RFC 5321 §4.5.2: a leading dot is removed.
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_prefix(b".").unwrap_or(line);
        if self.over || self.message.len() + line.len() + 2 > self.max {
            self.over = true;
            self.message.clear();
            return;
        }
        self.message.extend_from_slice(line);
        self.message.extend_from_slice(b"\r\n");
    }
}

/// The input buffer of one connection: bytes are pushed as they arrive and taken out as command
/// lines or as DATA. Incremental: "need more" is `None`.
#[derive(Debug, Default)]
pub struct Input {
    buf: Vec<u8>,
    /// Inside an over-long line: drop bytes up to the next LF.
    skipping: bool,
}

impl Input {
    /// An empty buffer.
    pub fn new() -> Input {
        Input::default()
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether unread bytes are waiting (a pipelining client sent ahead).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes everything buffered (the connection changes hands, e.g. RFC 2645 ATRN).
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.skipping = false;
        std::mem::take(&mut self.buf)
    }

    /// Drops everything buffered (RFC 3207 §4.2: nothing sent before the TLS handshake may be
    /// acted on after it).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }

    /// The next line of at most `max` bytes (without the line end), ended by LF or CRLF.
    pub fn line(&mut self, max: usize) -> Option<Line> {
        let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
            if self.buf.len() > max + 1 {
                // Keep nothing of an over-long line; its end is reported as TooLong.
                self.skipping = true;
                self.buf.clear();
            }
            return None;
        };
        let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if std::mem::take(&mut self.skipping) || line.len() > max {
            return Some(Line::TooLong);
        }
        Some(Line::Text(line))
    }

    /// Feeds buffered bytes to `data` line by line; `Some` once the terminating `.` line is read.
    /// A final line without its LF stays buffered until more arrives.
    pub fn data(&mut self, data: &mut DataReader) -> Option<DataEnd> {
        let mut start = 0;
        let mut end = None;
        while let Some(off) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.buf[start..start + off];
            start += off + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if std::mem::take(&mut data.mid_line) {
                continue;
            }
            if line == b"." {
                end = Some(if data.over {
                    DataEnd::TooLarge
                } else {
                    DataEnd::Complete
                });
                break;
            }
            data.line(line);
        }
        self.buf.drain(..start);
        if end.is_none() && !data.over && data.message.len() + self.buf.len() > data.max + 2 {
            // A partial line already past the cap: stop keeping it (bounded memory).
            data.over = true;
            data.message.clear();
        }
        if end.is_none() && data.over && self.buf.len() > MAX_LINE {
            // Past the cap nothing is kept; the rest of this line is skipped up to its end.
            self.buf.clear();
            data.mid_line = true;
        }
        end
    }
}

// ------------------------------------------------------------------------------------ commands

/// `BODY=` (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
}

/// The parameters of `MAIL FROM`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152).
    pub body: Option<Body>,
    /// `RET=` (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461 §4.4), xtext-decoded.
    pub envid: Option<String>,
    /// `AUTH=` (RFC 4954 §5), xtext-decoded; `<>` is kept as given.
    pub auth: Option<String>,
}

/// The parameters of `RCPT TO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=` (RFC 3461 §4.1).
    pub notify: Notify,
    /// `ORCPT=` (RFC 3461 §4.2), xtext-decoded (`rfc822;addr`).
    pub orcpt: Option<String>,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain`.
    Helo(String),
    /// `EHLO domain`.
    Ehlo(String),
    /// `MAIL FROM:<path> params`; the path without brackets, "" for `<>`.
    Mail(String, MailParams),
    /// `RCPT TO:<path> params`; the path without brackets.
    Rcpt(String, RcptParams),
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP [text]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY text`.
    Vrfy,
    /// `EXPN text`.
    Expn,
    /// `HELP [text]`.
    Help,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]`.
    Auth(String, Option<Vec<u8>>),
    /// `ETRN node` (RFC 1985).
    Etrn(String),
    /// `ATRN [domains]` (RFC 2645): the argument as given, empty when there is none.
    Atrn(String),
    /// `TURN` (RFC 821).
    Turn,
}

/// Why a command line was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command we know: `500 5.5.1`.
    Unknown,
    /// A known command with bad arguments: `501 5.5.4 <text>` (or `5.1.3`/`5.1.7` for addresses).
    Syntax(&'static str),
    /// A path that does not parse: `501 5.1.3` (RCPT) / `501 5.1.7` (MAIL).
    BadAddress(&'static str),
    /// An unknown or malformed MAIL/RCPT parameter: `555 5.5.4` (RFC 5321 §4.1.1.11).
    Parameter(String),
}

impl CommandError {
    /// The reply for this error.
    pub fn reply(&self, mail: bool) -> Vec<u8> {
        match self {
            CommandError::Unknown => reply(500, "5.5.1", "Command unrecognized"),
            CommandError::Syntax(t) => reply(501, "5.5.4", t),
            CommandError::BadAddress(t) => reply(501, if mail { "5.1.7" } else { "5.1.3" }, t),
            CommandError::Parameter(p) => reply(
                555,
                "5.5.4",
                &format!("parameter {} not recognized", printable(p)),
            ),
        }
    }
}

/// Parses one command line (without its line end).
///
/// ```text
/// helo = "HELO" SP Domain / "EHLO" SP ( Domain / address-literal )     ; RFC 5321 §4.1.1.1
/// mail = "MAIL FROM:" Reverse-path [SP Mail-parameters]                ; §4.1.1.2
/// rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path )
///        [SP Rcpt-parameters]                                          ; §4.1.1.3
/// esmtp-param = esmtp-keyword ["=" esmtp-value]                        ; §4.1.2
/// ```
pub fn command(line: &[u8], quirks: Quirks) -> Result<Command, CommandError> {
    let text = std::str::from_utf8(line).map_err(|_| CommandError::Syntax("not UTF-8 text"))?;
    let (verb, rest) = match text.find(' ') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let arg = rest.trim();
    let none = |c: Command| {
        if arg.is_empty() {
            Ok(c)
        } else {
            Err(CommandError::Syntax("no parameters allowed"))
        }
    };
    match verb.as_str() {
        "HELO" | "EHLO" => {
            if arg.is_empty() || arg.contains(' ') && verb == "HELO" {
                return Err(CommandError::Syntax("a domain name is required"));
            }
            // RFC 5321 §4.1.1.1: EHLO takes one argument; trailing words (some clients add them)
            // are ignored rather than refused.
            let name = arg.split(' ').next().unwrap_or(arg);
            if name.len() > MAX_DOMAIN || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(CommandError::Syntax("bad domain name"));
            }
            Ok(if verb == "HELO" {
                Command::Helo(name.to_string())
            } else {
                Command::Ehlo(name.to_string())
            })
        }
        "MAIL" => {
            let (path, params) = path_and_params(rest, "FROM:", quirks, true)?;
            Ok(Command::Mail(path, mail_params(&params)?))
        }
        "RCPT" => {
            let (path, params) = path_and_params(rest, "TO:", quirks, false)?;
            if path.is_empty() {
                return Err(CommandError::BadAddress("the null path is not a recipient"));
            }
            Ok(Command::Rcpt(path, rcpt_params(&params)?))
        }
        "DATA" => none(Command::Data),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        "STARTTLS" => none(Command::StartTls),
        "TURN" => none(Command::Turn),
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "ATRN" => Ok(Command::Atrn(arg.to_string())),
        "ETRN" => {
            if arg.is_empty() {
                return Err(CommandError::Syntax("ETRN needs a node name"));
            }
            Ok(Command::Etrn(arg.to_string()))
        }
        "AUTH" => {
            let mut words = arg.split(' ').filter(|w| !w.is_empty());
            let mech = words
                .next()
                .ok_or(CommandError::Syntax("AUTH needs a mechanism"))?;
            let initial = words.next().map(|w| w.as_bytes().to_vec());
            if words.next().is_some() {
                return Err(CommandError::Syntax("too many AUTH arguments"));
            }
            Ok(Command::Auth(mech.to_ascii_uppercase(), initial))
        }
        _ => Err(CommandError::Unknown),
    }
}

/// Splits `FROM:<path> params` into the path (brackets and source route removed) and parameters.
fn path_and_params(
    rest: &str,
    keyword: &str,
    quirks: Quirks,
    mail: bool,
) -> Result<(String, Vec<String>), CommandError> {
    let bad = CommandError::Syntax(if mail {
        "syntax: MAIL FROM:<address>"
    } else {
        "syntax: RCPT TO:<address>"
    });
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return Err(bad);
    }
    let mut after = &rest[keyword.len()..];
    if after.starts_with(' ') {
        if !quirks.quirk_space_after_colon {
            return Err(bad);
        }
        after = after.trim_start();
    }
    let (raw, params) = if let Some(inner) = after.strip_prefix('<') {
        let close = closing_bracket(inner).ok_or(CommandError::BadAddress("missing '>'"))?;
        (&inner[..close], &inner[close + 1..])
    } else if quirks.quirk_missing_brackets {
        match after.find(' ') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        }
    } else {
        return Err(bad);
    };
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(bad);
    }
    if raw.len() + 2 > MAX_PATH {
        return Err(CommandError::BadAddress("address too long"));
    }
    let path = path(raw, mail)?;
    let params = params
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    Ok((path, params))
}

/// The `>` closing a path: the first one outside a quoted local part.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// `Path = "<" [ A-d-l ":" ] Mailbox ">"`; the source route is dropped (RFC 5321 §4.1.1.3
/// and appendix C: servers SHOULD ignore it). `<Postmaster>` is allowed for RCPT only.
fn path(raw: &str, mail: bool) -> Result<String, CommandError> {
    if raw.is_empty() {
        return if mail {
            Ok(String::new())
        } else {
            Err(CommandError::BadAddress("empty address"))
        };
    }
    let mailbox = if raw.starts_with('@') {
        raw.split_once(':')
            .map(|(_, m)| m)
            .ok_or(CommandError::BadAddress("bad source route"))?
    } else {
        raw
    };
    if !mail && mailbox.eq_ignore_ascii_case("postmaster") {
        return Ok(mailbox.to_string());
    }
    let at = mailbox
        .rfind('@')
        .ok_or(CommandError::BadAddress("address without a domain"))?;
    let (local, domain) = (&mailbox[..at], &mailbox[at + 1..]);
    if local.is_empty() || local.len() > MAX_LOCAL_PART + 2 {
        return Err(CommandError::BadAddress("bad local part"));
    }
    if local.starts_with('"') {
        if local.len() < 2 || !local.ends_with('"') {
            return Err(CommandError::BadAddress("bad quoted local part"));
        }
        if !local.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(CommandError::BadAddress("bad quoted local part"));
        }
    } else if !local.bytes().all(atext_or_dot) || local.len() > MAX_LOCAL_PART {
        return Err(CommandError::BadAddress("bad local part"));
    }
    if !valid_domain(domain) {
        return Err(CommandError::BadAddress("bad domain"));
    }
    Ok(mailbox.to_string())
}

/// RFC 5321 `atext` plus `.`, and 8-bit bytes (RFC 6531 mailers send UTF-8 local parts).
fn atext_or_dot(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b) || b >= 0x80
}

/// `Domain` (letters, digits, hyphens, dots, UTF-8) or an `address-literal` in brackets.
fn valid_domain(d: &str) -> bool {
    if d.is_empty() || d.len() > MAX_DOMAIN {
        return false;
    }
    if let Some(lit) = d.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return match lit.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    !d.starts_with('.')
        && !d.contains("..")
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80)
}

/// `xtext` decoding (RFC 3461 §4): `+XX` is a hex-coded byte.
fn xtext(v: &str) -> Result<String, ()> {
    if v.len() > MAX_XTEXT {
        return Err(());
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            let hex = v.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else if (b'!'..=b'~').contains(&b[i]) && b[i] != b'=' {
            out.push(b[i]);
            i += 1;
        } else {
            return Err(());
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

fn split_param(p: &str) -> (String, Option<&str>) {
    match p.split_once('=') {
        Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
        None => (p.to_ascii_uppercase(), None),
    }
}

/// MAIL parameters: `SIZE`, `BODY`, `RET`, `ENVID`, `AUTH`; each at most once.
fn mail_params(params: &[String]) -> Result<MailParams, CommandError> {
    let mut m = MailParams::default();
    for p in params {
        let bad = || CommandError::Parameter(p.clone());
        let (key, value) = split_param(p);
        let value = value.ok_or_else(bad)?;
        match key.as_str() {
            "SIZE" if m.size.is_none() => {
                m.size = Some(value.parse().map_err(|_| bad())?);
            }
            "BODY" if m.body.is_none() => {
                m.body = Some(match value.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    _ => return Err(bad()),
                });
            }
            "RET" if m.ret.is_none() => {
                m.ret = Some(match value.to_ascii_uppercase().as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Headers,
                    _ => return Err(bad()),
                });
            }
            "ENVID" if m.envid.is_none() => {
                m.envid = Some(xtext(value).map_err(|_| bad())?);
            }
            "AUTH" if m.auth.is_none() => {
                m.auth = Some(xtext(value).map_err(|_| bad())?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(m)
}

/// RCPT parameters: `NOTIFY` (`NEVER` alone, or any of `SUCCESS`, `FAILURE`, `DELAY`), `ORCPT`.
fn rcpt_params(params: &[String]) -> Result<RcptParams, CommandError> {
    let mut r = RcptParams::default();
    let mut seen_notify = false;
    for p in params {
        let bad = || CommandError::Parameter(p.clone());
        let (key, value) = split_param(p);
        let value = value.ok_or_else(bad)?;
        match key.as_str() {
            "NOTIFY" if !seen_notify => {
                seen_notify = true;
                for word in value.split(',') {
                    match word.to_ascii_uppercase().as_str() {
                        "NEVER" => r.notify.never = true,
                        "SUCCESS" => r.notify.success = true,
                        "FAILURE" => r.notify.failure = true,
                        "DELAY" => r.notify.delay = true,
                        _ => return Err(bad()),
                    }
                }
                let n = r.notify;
                if n.never && (n.success || n.failure || n.delay) {
                    return Err(bad());
                }
            }
            "ORCPT" if r.orcpt.is_none() => {
                let v = xtext(value).map_err(|_| bad())?;
                // RFC 3461 §4.2: `addr-type ";" xtext`.
                if !v.contains(';') {
                    return Err(bad());
                }
                r.orcpt = Some(v);
            }
            _ => return Err(bad()),
        }
    }
    Ok(r)
}

// ------------------------------------------------------------------------------------ replies

/// A reply: `code`, an enhanced status code (RFC 3463; "" for none) and text; each `\n` in the
/// text starts a continuation line (`250-...`).
pub fn reply(code: u16, enhanced: &str, text: &str) -> Vec<u8> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::with_capacity(text.len() + 16 * lines.len());
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{sep}").as_bytes());
        if !enhanced.is_empty() {
            out.extend_from_slice(enhanced.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Text from the peer made safe to echo in a reply or a log line (printable ASCII, capped).
pub fn printable(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}
