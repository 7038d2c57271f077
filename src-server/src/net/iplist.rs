//! The guide's IP address list: the multi-line text used by listener Grant/Deny restrictions,
//! Client IP Addresses, Blacklisted and UnBlacklistable IP Addresses and the SNMP Restriction.
//!
//! Guide: guide.txt:4697-4712 (listener restrictions), 3449-3479 (Blacklisted IPs), 3154-3189
//! (Client IPs), 5010-5018 (SNMP Restriction). Each line holds one address or one inclusive range
//! `a.b.c.d-e.f.g.h`, then an optional comment. Comment separators are `;` and `%` anywhere, and `-`
//! (guide.txt:4709-4711). The `-` clashes with the range syntax: here a `-` is a range separator
//! only when an address of the same family follows it; otherwise it starts a comment
//! (spec A, "Ambiguities" 5). Lines that are empty or start with a separator are comments.
//!
//! IPv4 octets may carry leading zeros and are read as decimal: the guide's own example is
//! `10.34.50.01-10.34.59.99` (guide.txt:3470). IPv6 addresses use the RFC 4291 text forms.
//! An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers)
//! matches the IPv4 entries.
//!
//! Security: the text comes from administrators (settings, CLI). Parsing is bounded by
//! [`MAX_TEXT`] bytes and never panics.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest list text accepted, in bytes.
pub const MAX_TEXT: usize = 1 << 20;

/// One line of a list: an address range, a comment, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    range: Option<(IpAddr, IpAddr)>,
    comment: Option<String>,
}

/// A parsed IP address list (see the module header for the text format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList {
    lines: Vec<Line>,
}

impl IpList {
    /// Parse the list text; the error names the first bad line (`line 3: ...`).
    pub fn parse(text: &str) -> Result<IpList, String> {
        if text.len() > MAX_TEXT {
            return Err(format!("the IP list is longer than {MAX_TEXT} bytes"));
        }
        let mut lines = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            match parse_line(raw) {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => {}
                Err(e) => return Err(format!("line {}: {e}", n + 1)),
            }
        }
        Ok(IpList { lines })
    }

    /// True when the list has no address entries (comments do not count).
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.range.is_none())
    }

    /// True when `ip` is one of the listed addresses or inside a listed range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.lines
            .iter()
            .filter_map(|l| l.range)
            .any(|(lo, hi)| match (ip, lo, hi) {
                (IpAddr::V4(a), IpAddr::V4(lo), IpAddr::V4(hi)) => lo <= a && a <= hi,
                (IpAddr::V6(a), IpAddr::V6(lo), IpAddr::V6(hi)) => lo <= a && a <= hi,
                _ => false,
            })
    }
}

/// Writes one entry per line as `a` or `a-b`, with comments after `; `.
impl fmt::Display for IpList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line.range {
                Some((lo, hi)) if lo == hi => write!(f, "{lo}")?,
                Some((lo, hi)) => write!(f, "{lo}-{hi}")?,
                None => {}
            }
            if let Some(c) = &line.comment {
                if line.range.is_some() {
                    f.write_str(" ")?;
                }
                write!(f, "; {c}")?;
            }
            f.write_str("\n")?;
        }
        Ok(())
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ';' | '%' | '-')
}

/// Characters an address token may contain (IPv4 dotted, IPv6 hex and colons).
fn is_addr_char(c: char) -> bool {
    c.is_ascii_hexdigit() || c == '.' || c == ':'
}

/// Split off the longest run of address characters.
fn addr_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_addr_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// The text after a comment separator, or `None` when it is empty.
fn comment(rest: &str) -> Option<String> {
    let c = rest.get(1..).unwrap_or("").trim();
    (!c.is_empty()).then(|| c.to_string())
}

/// `line = [address ["-" address]] [separator comment]`
fn parse_line(raw: &str) -> Result<Option<Line>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.starts_with(is_separator) {
        return Ok(comment(s).map(|c| Line {
            range: None,
            comment: Some(c),
        }));
    }
    let (tok, rest) = addr_token(s);
    let lo = address(tok).ok_or_else(|| format!("'{}' is not an IP address", first_word(s)))?;
    let rest = rest.trim_start();
    let (hi, rest) = match rest.strip_prefix('-') {
        Some(after) => {
            let after = after.trim_start();
            let (tok2, rest2) = addr_token(after);
            match address(tok2) {
                // A '-' followed by an address is a range only if the token ends cleanly;
                // "1.2.3.4-1.2.3.5x" is an error, not a comment.
                Some(hi) => (hi, rest2.trim_start()),
                None => (lo, rest),
            }
        }
        None => (lo, rest),
    };
    if !rest.is_empty() && !rest.starts_with(is_separator) {
        return Err(format!("unexpected text '{}'", first_word(rest)));
    }
    match (lo, hi) {
        (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => {
            return Err(format!("range {lo}-{hi} mixes IPv4 and IPv6"));
        }
        _ if lo > hi => return Err(format!("range {lo}-{hi} ends before it starts")),
        _ => {}
    }
    Ok(Some(Line {
        range: Some((lo, hi)),
        comment: if rest.is_empty() { None } else { comment(rest) },
    }))
}

fn first_word(s: &str) -> &str {
    let w = s.split_whitespace().next().unwrap_or("");
    // Keep error messages short on hostile input.
    match w.char_indices().nth(64) {
        Some((i, _)) => &w[..i],
        None => w,
    }
}

/// An IPv4 address (leading zeros allowed, decimal) or an IPv6 address.
fn address(tok: &str) -> Option<IpAddr> {
    if tok.contains(':') {
        return tok
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| IpAddr::V6(a).to_canonical());
    }
    let mut octets = [0u8; 4];
    let mut parts = tok.split('.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn guide_examples() {
        // guide.txt:3466-3475 and 26831
        let l = IpList::parse(
            "10.34.56.78\n10.34.50.01-10.34.59.99\n; a comment line\n\
             192.168.0.4-192.168.0.8 ; this is a comment\n",
        )
        .unwrap();
        assert!(l.contains(ip("10.34.56.78")));
        assert!(!l.contains(ip("10.34.60.1")));
        assert!(!l.contains(ip("10.34.50.0")));
        assert!(l.contains(ip("10.34.50.1")));
        assert!(l.contains(ip("10.34.59.99")));
        assert!(!l.contains(ip("10.34.59.100")));
        assert!(l.contains(ip("192.168.0.6")));
        assert!(!l.contains(ip("192.168.0.9")));
    }

    #[test]
    fn comment_separators() {
        let l = IpList::parse(
            "% percent line\n- dash line\n1.1.1.1 % pct\n2.2.2.2 - dash comment\n\
             3.3.3.3-3.3.3.5 - dash after range\n4.4.4.4 -10 is not an address\n\r\n",
        )
        .unwrap();
        for a in ["1.1.1.1", "2.2.2.2", "3.3.3.4", "4.4.4.4"] {
            assert!(l.contains(ip(a)), "{a}");
        }
        assert!(!l.contains(ip("2.2.2.3")));
        assert!(!l.contains(ip("4.4.4.5")));
        assert_eq!(
            l.to_string(),
            "; percent line\n; dash line\n1.1.1.1 ; pct\n2.2.2.2 ; dash comment\n\
             3.3.3.3-3.3.3.5 ; dash after range\n4.4.4.4 ; 10 is not an address\n"
        );
    }

    #[test]
    fn spaced_range_and_crlf() {
        let l = IpList::parse("10.0.0.1 - 10.0.0.3\r\n").unwrap();
        assert!(l.contains(ip("10.0.0.2")));
        assert_eq!(l.to_string(), "10.0.0.1-10.0.0.3\n");
    }

    #[test]
    fn ipv6_and_mapped() {
        let l = IpList::parse("::1\n2001:db8::-2001:db8::ffff ; doc\n127.0.0.0-127.255.255.255")
            .unwrap();
        assert!(l.contains(ip("::1")));
        assert!(l.contains(ip("2001:db8::12")));
        assert!(!l.contains(ip("2001:db8::1:0")));
        assert!(l.contains(ip("::ffff:127.0.0.5")));
        assert!(!l.contains(ip("::2")));
    }

    #[test]
    fn errors_name_the_line() {
        let e = IpList::parse("1.2.3.4\nfoo.example\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(IpList::parse("1.2.3.256").is_err());
        assert!(IpList::parse("1.2.3").is_err());
        assert!(IpList::parse("1.2.3.4.5").is_err());
        assert!(IpList::parse("1.2.3.0004").is_err());
        assert!(IpList::parse("1.2.3.9-1.2.3.1")
            .unwrap_err()
            .contains("ends before"));
        assert!(IpList::parse("1.2.3.4-::1").unwrap_err().contains("mixes"));
        assert!(IpList::parse("1.2.3.4 5.6.7.8")
            .unwrap_err()
            .contains("unexpected"));
        assert!(IpList::parse("1.2.3.4-1.2.3.5x").is_err());
        assert!(IpList::parse(&"1.1.1.1\n".repeat(MAX_TEXT)).is_err());
    }

    #[test]
    fn empty_and_round_trip() {
        assert!(IpList::parse("").unwrap().is_empty());
        assert!(IpList::parse("; only\n\n").unwrap().is_empty());
        let l = IpList::parse("10.0.0.1-10.0.0.9 ; a\n::1\n; c\n").unwrap();
        assert_eq!(IpList::parse(&l.to_string()).unwrap(), l);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "[0-9a-f.:;% \\-\\n]{0,80}") {
            let _ = IpList::parse(&s);
        }

        #[test]
        fn round_trips(a in proptest::prelude::any::<u32>(), b in proptest::prelude::any::<u32>(),
                       c in proptest::prelude::any::<u128>()) {
            let (lo, hi) = (a.min(b), a.max(b));
            let text = format!("{}-{} ; x\n{}\n", Ipv4Addr::from(lo), Ipv4Addr::from(hi), Ipv6Addr::from(c));
            let l = IpList::parse(&text).unwrap();
            proptest::prop_assert!(l.contains(IpAddr::V4(Ipv4Addr::from(hi))));
            proptest::prop_assert_eq!(IpList::parse(&l.to_string()).unwrap(), l);
        }
    }
}
