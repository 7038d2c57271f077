//! The POP3 codec: command lines in, typed [`Command`]s out; replies and multi-line bodies out.
//! Pure (no I/O, no store), so it can become its own crate.
//!
//! Standards: RFC 1939 (POP3), RFC 1725 §5 (`LAST`), RFC 2449 (`CAPA`, the 255-octet command
//! line), RFC 2595 §4 (`STLS`), RFC 5034 (`AUTH`), the Eudora/qpopper `XTND XMIT` convention
//! (the guide names it, guide.txt:14534-14542, but gives no wire format).
//!
//! ```text
//! command  = keyword *(SP argument) CRLF      ; keyword 3-4 letters, case-insensitive
//! USER name | PASS string | APOP name digest | AUTH [mechanism [initial-response]]
//! STAT | LIST [msg] | RETR msg | DELE msg | NOOP | RSET | QUIT | LAST
//! TOP msg n | UIDL [msg] | CAPA | STLS | XTND XMIT
//! msg      = 1*DIGIT                            ; 1-based message number, no leading sign
//! ```
//!
//! Security: every byte here is untrusted. Lines are framed (and capped) by the session before
//! they reach [`parse_command`]; the parser only splits on spaces and converts numbers with
//! checked arithmetic. `PASS` keeps the rest of the line (passwords may hold spaces) in a
//! [`Secret`]. The `XTND XMIT` envelope reader is bounded by the message the session framed.

use crate::net::sasl::Secret;

/// RFC 2449 §4: a command line is at most 255 octets including the CRLF.
pub const MAX_COMMAND_LINE: usize = 255;

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name` (RFC 1939 §7).
    User(String),
    /// `PASS string` (RFC 1939 §7).
    Pass(Secret),
    /// `APOP name digest` (RFC 1939 §7).
    Apop {
        /// The login name.
        name: String,
        /// The hex MD5 digest.
        digest: String,
    },
    /// `AUTH [mechanism [initial-response]]` (RFC 5034); no mechanism lists them (guide.txt:14530-14532).
    Auth {
        /// The SASL mechanism, if given.
        mechanism: Option<String>,
        /// The base64 initial response, if given (`=` for empty).
        initial: Option<String>,
    },
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<u32>),
    /// `RETR msg`.
    Retr(u32),
    /// `DELE msg`.
    Dele(u32),
    /// `NOOP`.
    Noop,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
    /// `TOP msg n`.
    Top {
        /// The message.
        msg: u32,
        /// Body lines after the header.
        lines: u32,
    },
    /// `UIDL [msg]`.
    Uidl(Option<u32>),
    /// `LAST` (RFC 1725 §5; the guide's appendix lists it).
    Last,
    /// `CAPA` (RFC 2449).
    Capa,
    /// `STLS` (RFC 2595 §4); `STARTTLS` is taken as its alias (the guide uses both names, 14495, 14505).
    Stls,
    /// `XTND XMIT`: the client sends a message to submit.
    XtndXmit,
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The keyword is not one we know.
    Unknown,
    /// A known keyword with wrong arguments; the text says what was expected.
    Syntax(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Unknown => f.write_str("unknown command"),
            ParseError::Syntax(s) => f.write_str(s),
        }
    }
}

/// Parses one command line (without its line ending).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let keyword = keyword.to_ascii_uppercase();
    // PASS keeps its argument verbatim: RFC 1939 §7 lets a password hold spaces.
    if keyword == b"PASS" {
        return match rest.strip_suffix(b"\r").unwrap_or(rest) {
            b"" => Err(ParseError::Syntax("PASS needs a password")),
            pw => Ok(Command::Pass(Secret::new(pw))),
        };
    }
    let text =
        std::str::from_utf8(rest).map_err(|_| ParseError::Syntax("arguments are not UTF-8"))?;
    let args: Vec<&str> = text.split_ascii_whitespace().collect();
    let cmd = match (&keyword[..], &args[..]) {
        (b"USER", [name]) => Command::User((*name).to_string()),
        (b"USER", _) => return Err(ParseError::Syntax("USER needs one account name")),
        (b"APOP", [name, digest]) => Command::Apop {
            name: (*name).to_string(),
            digest: (*digest).to_string(),
        },
        (b"APOP", _) => return Err(ParseError::Syntax("APOP needs a name and a digest")),
        (b"AUTH", []) => Command::Auth {
            mechanism: None,
            initial: None,
        },
        (b"AUTH", [m]) => Command::Auth {
            mechanism: Some((*m).to_string()),
            initial: None,
        },
        (b"AUTH", [m, i]) => Command::Auth {
            mechanism: Some((*m).to_string()),
            initial: Some((*i).to_string()),
        },
        (b"AUTH", _) => return Err(ParseError::Syntax("AUTH takes a mechanism and a response")),
        (b"STAT", []) => Command::Stat,
        (b"LIST", []) => Command::List(None),
        (b"LIST", [m]) => Command::List(Some(msg(m)?)),
        (b"RETR", [m]) => Command::Retr(msg(m)?),
        (b"DELE", [m]) => Command::Dele(msg(m)?),
        (b"NOOP", []) => Command::Noop,
        (b"RSET", []) => Command::Rset,
        (b"QUIT", []) => Command::Quit,
        (b"TOP", [m, n]) => Command::Top {
            msg: msg(m)?,
            lines: number(n).ok_or(ParseError::Syntax("TOP needs a line count"))?,
        },
        (b"UIDL", []) => Command::Uidl(None),
        (b"UIDL", [m]) => Command::Uidl(Some(msg(m)?)),
        (b"LAST", []) => Command::Last,
        (b"CAPA", []) => Command::Capa,
        (b"STLS" | b"STARTTLS", []) => Command::Stls,
        (b"XTND", [x]) if x.eq_ignore_ascii_case("XMIT") => Command::XtndXmit,
        (
            b"STAT" | b"LIST" | b"RETR" | b"DELE" | b"NOOP" | b"RSET" | b"QUIT" | b"TOP" | b"UIDL"
            | b"LAST" | b"CAPA" | b"STLS" | b"STARTTLS" | b"XTND",
            _,
        ) => return Err(ParseError::Syntax("wrong arguments")),
        _ => return Err(ParseError::Unknown),
    };
    Ok(cmd)
}

/// `1*DIGIT` as a u32, no sign, no overflow.
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A message number: 1 or more.
fn msg(s: &str) -> Result<u32, ParseError> {
    match number(s) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(ParseError::Syntax("invalid message number")),
    }
}

/// `+OK text` CRLF.
pub fn ok(text: &str) -> Vec<u8> {
    status(b"+OK", text)
}

/// `-ERR text` CRLF.
pub fn err(text: &str) -> Vec<u8> {
    status(b"-ERR", text)
}

fn status(word: &[u8], text: &str) -> Vec<u8> {
    let mut out = word.to_vec();
    if !text.is_empty() {
        out.push(b' ');
        // Our texts are one line; anything else (a store error) is flattened, not split.
        out.extend(
            text.bytes()
                .map(|b| if b.is_ascii_control() { b' ' } else { b }),
        );
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A multi-line reply: `+OK text`, the lines, `.`; each line dot-stuffed (RFC 1939 §3).
pub fn multi_line<I, L>(text: &str, lines: I) -> Vec<u8>
where
    I: IntoIterator<Item = L>,
    L: AsRef<[u8]>,
{
    let mut out = ok(text);
    for l in lines {
        push_line(&mut out, l.as_ref());
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    if line.first() == Some(&b'.') {
        out.push(b'.');
    }
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// A message as a multi-line body (RFC 1939 §3, §7 TOP): every line ending becomes CRLF, lines
/// are dot-stuffed, and the terminating `.` is added. With `body_lines`, only the header, the
/// blank line and that many body lines are sent.
pub fn message_body(message: &[u8], body_lines: Option<u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    let mut in_header = true;
    let mut left = body_lines;
    let mut lines = message.split(|&b| b == b'\n').peekable();
    while let Some(raw) = lines.next() {
        // split() yields one empty piece after a final LF; it is not a line.
        if raw.is_empty() && lines.peek().is_none() {
            break;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if !in_header {
            match left.as_mut() {
                Some(0) => break,
                Some(n) => *n -= 1,
                None => {}
            }
        }
        if in_header && line.is_empty() {
            in_header = false;
        }
        push_line(&mut out, line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Framing of a multi-line block the client sends (XTND XMIT): one line in, and whether it was
/// the terminating `.`; the line with dot-stuffing undone.
pub fn unstuff(line: &[u8]) -> Option<&[u8]> {
    match line {
        b"." => None,
        l => Some(
            l.strip_prefix(b".")
                .filter(|_| l.starts_with(b".."))
                .unwrap_or(l),
        ),
    }
}

/// Longest header section the XTND XMIT envelope reader looks at.
const MAX_HEADER: usize = 256 * 1024;

/// The envelope of an XTND XMIT message: the recipients named in its `To`, `Cc` and `Bcc`
/// headers, and the message with any `Bcc` header removed (the Eudora convention).
pub fn xmit_envelope(message: &[u8]) -> (Vec<String>, Vec<u8>) {
    let header_end = find_header_end(message);
    let (header, body) = message.split_at(header_end);
    let mut recipients = Vec::new();
    let mut kept = Vec::with_capacity(message.len());
    for field in header_fields(header) {
        let name_end = field.iter().position(|&b| b == b':').unwrap_or(0);
        let name = field[..name_end].trim_ascii();
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"To") || is(b"Cc") || is(b"Bcc") {
            let value = String::from_utf8_lossy(&field[name_end + 1..]);
            for a in addresses(&value) {
                if !recipients
                    .iter()
                    .any(|r: &String| r.eq_ignore_ascii_case(&a))
                {
                    recipients.push(a);
                }
            }
        }
        if !is(b"Bcc") {
            kept.extend_from_slice(field);
        }
    }
    kept.extend_from_slice(body);
    (recipients, kept)
}

/// Offset just past the header section (its blank line included when there is one), capped.
fn find_header_end(m: &[u8]) -> usize {
    let limit = m.len().min(MAX_HEADER);
    let mut i = 0;
    while i < limit {
        let line_end = m[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(m.len(), |p| i + p + 1);
        let line = &m[i..line_end];
        if line == b"\n" || line == b"\r\n" {
            return i;
        }
        i = line_end;
    }
    limit
}

/// Header fields with their continuation lines and line endings, in order.
fn header_fields(header: &[u8]) -> Vec<&[u8]> {
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < header.len() {
        let line_end = header[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header.len(), |p| i + p + 1);
        let next_is_continuation = matches!(header.get(line_end), Some(b' ' | b'\t'));
        if !next_is_continuation {
            fields.push(&header[start..line_end]);
            start = line_end;
        }
        i = line_end;
    }
    if start < header.len() {
        fields.push(&header[start..]);
    }
    fields
}

/// The addresses in an RFC 5322 address-list: `<addr>` where given, else a bare `local@domain`;
/// group names, display names and comments are skipped.
fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut part = String::new();
    let (mut quoted, mut angle, mut comment) = (false, false, 0usize);
    let mut flush = |part: &mut String| {
        let p = std::mem::take(part);
        let addr = match (p.find('<'), p.rfind('>')) {
            (Some(a), Some(b)) if a < b => p[a + 1..b].trim().to_string(),
            _ => p
                .split_whitespace()
                .find(|w| w.contains('@'))
                .unwrap_or("")
                .to_string(),
        };
        // `group: a@b, c@d;` leaves `group:` in front of the first member.
        let addr = addr
            .rsplit(':')
            .next()
            .unwrap_or("")
            .trim_end_matches(';')
            .trim();
        if addr.contains('@') && !addr.chars().any(|c| c.is_control() || c == ' ') {
            out.push(addr.to_string());
        }
    };
    for c in value.chars() {
        if comment > 0 {
            match c {
                '(' => comment += 1,
                ')' => comment -= 1,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                quoted = !quoted;
                continue;
            }
            '(' if !quoted => {
                comment = 1;
                continue;
            }
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                flush(&mut part);
                continue;
            }
            _ => {}
        }
        part.push(c);
    }
    flush(&mut part);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_from_rfc_1939_examples() {
        let table: &[(&str, Command)] = &[
            ("USER mrose", Command::User("mrose".into())),
            ("user mrose", Command::User("mrose".into())),
            ("PASS secret", Command::Pass(Secret::new("secret"))),
            ("PASS with space", Command::Pass(Secret::new("with space"))),
            (
                "APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                Command::Apop {
                    name: "mrose".into(),
                    digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
                },
            ),
            ("STAT", Command::Stat),
            ("LIST", Command::List(None)),
            ("LIST 2", Command::List(Some(2))),
            ("RETR 1", Command::Retr(1)),
            ("DELE 1", Command::Dele(1)),
            ("NOOP", Command::Noop),
            ("RSET", Command::Rset),
            ("QUIT", Command::Quit),
            ("TOP 1 10", Command::Top { msg: 1, lines: 10 }),
            ("TOP 1 0", Command::Top { msg: 1, lines: 0 }),
            ("UIDL", Command::Uidl(None)),
            ("UIDL 2", Command::Uidl(Some(2))),
            ("LAST", Command::Last),
            ("CAPA", Command::Capa),
            ("STLS", Command::Stls),
            ("starttls", Command::Stls),
            ("XTND XMIT", Command::XtndXmit),
            (
                "AUTH",
                Command::Auth {
                    mechanism: None,
                    initial: None,
                },
            ),
            (
                "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=",
                Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("dGVzdAB0ZXN0AHRlc3Q=".into()),
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(parse_command(line.as_bytes()).as_ref(), Ok(want), "{line}");
        }
    }

    #[test]
    fn bad_commands() {
        for line in ["", "FOO", "XYZZY 1", "HELO x"] {
            assert_eq!(
                parse_command(line.as_bytes()),
                Err(ParseError::Unknown),
                "{line:?}"
            );
        }
        for line in [
            "RETR",
            "RETR 0",
            "RETR -1",
            "RETR +1",
            "RETR x",
            "RETR 99999999999",
            "DELE 1 2",
            "STAT 1",
            "TOP 1",
            "TOP 1 x",
            "USER",
            "USER a b",
            "PASS",
            "APOP a",
            "XTND FOO",
            "AUTH a b c",
        ] {
            assert!(
                matches!(parse_command(line.as_bytes()), Err(ParseError::Syntax(_))),
                "{line:?}"
            );
        }
        assert!(parse_command(b"USER \xff").is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(ok("2 320"), b"+OK 2 320\r\n");
        assert_eq!(err("no such message"), b"-ERR no such message\r\n");
        assert_eq!(ok(""), b"+OK\r\n");
        assert_eq!(err("a\r\nb"), b"-ERR a  b\r\n");
        assert_eq!(
            multi_line("2 messages", ["1 120", ".x"]),
            b"+OK 2 messages\r\n1 120\r\n..x\r\n.\r\n"
        );
    }

    #[test]
    fn message_bodies() {
        for eol in ["\r\n", "\n"] {
            let m = "Subject: a\n\nline1\n.dot\nline3\n".replace('\n', eol);
            assert_eq!(
                message_body(m.as_bytes(), None),
                b"Subject: a\r\n\r\nline1\r\n..dot\r\nline3\r\n.\r\n"
            );
            assert_eq!(
                message_body(m.as_bytes(), Some(0)),
                b"Subject: a\r\n\r\n.\r\n"
            );
            assert_eq!(
                message_body(m.as_bytes(), Some(2)),
                b"Subject: a\r\n\r\nline1\r\n..dot\r\n.\r\n"
            );
            assert_eq!(
                message_body(m.as_bytes(), Some(99)),
                message_body(m.as_bytes(), None)
            );
        }
        // No final line break, no body.
        assert_eq!(message_body(b"Subject: a", Some(0)), b"Subject: a\r\n.\r\n");
        assert_eq!(message_body(b"", None), b".\r\n");
    }

    #[test]
    fn unstuffing() {
        assert_eq!(unstuff(b"."), None);
        assert_eq!(unstuff(b"..x"), Some(&b".x"[..]));
        assert_eq!(unstuff(b".x"), Some(&b".x"[..]));
        assert_eq!(unstuff(b"x"), Some(&b"x"[..]));
    }

    #[test]
    fn xmit_envelopes() {
        let m = b"From: me@a.test\r\nTo: Bob <bob@b.test>, \"Smith, J\" <js@c.test>\r\nCc: carol@d.test (Carol)\r\nBcc: hidden@e.test,\r\n  bob@b.test\r\nSubject: hi\r\n\r\nBcc: not-a-header@x.test\r\n";
        let (rcpts, msg) = xmit_envelope(m);
        assert_eq!(
            rcpts,
            ["bob@b.test", "js@c.test", "carol@d.test", "hidden@e.test"]
        );
        assert_eq!(
            msg,
            b"From: me@a.test\r\nTo: Bob <bob@b.test>, \"Smith, J\" <js@c.test>\r\nCc: carol@d.test (Carol)\r\nSubject: hi\r\n\r\nBcc: not-a-header@x.test\r\n"
        );
        let (rcpts, _) = xmit_envelope(b"To: team: a@x.test, b@x.test;\n\nbody\n");
        assert_eq!(rcpts, ["a@x.test", "b@x.test"]);
        let (rcpts, _) = xmit_envelope(b"Subject: none\n\n");
        assert!(rcpts.is_empty());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_command(&line);
        }

        #[test]
        fn envelope_never_panics(m in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let (_, kept) = xmit_envelope(&m);
            prop_assert!(kept.len() <= m.len());
        }

        #[test]
        fn body_round_trips(lines in proptest::collection::vec("[ -~]{0,20}", 0..20)) {
            let msg: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
            let wire = message_body(msg.as_bytes(), None);
            let mut back = Vec::new();
            for l in wire.split(|&b| b == b'\n') {
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                match unstuff(l) {
                    None => break,
                    Some(l) => { back.extend_from_slice(l); back.extend_from_slice(b"\r\n"); }
                }
            }
            prop_assert_eq!(back, msg.into_bytes());
        }
    }
}
