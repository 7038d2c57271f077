//! E-mail address parsing for the Router: splitting an address into its domain part and its local
//! part (guide.txt:10025-10066).
//!
//! Grammar (RFC 5321 §4.1.2 paths, RFC 822 `%` and UUCP `!` routes as the guide reads them):
//! ```text
//! address      = [ "<" ] ( source-route / plain ) [ ">" ]
//! source-route = "@" domain *( "," "@" domain ) ":" plain     ; domain part = first hop
//! plain        = local "@" domain                              ; rightmost unquoted "@"
//!              / host *( "!" host ) "!" local                  ; domain part = first host
//!              / local "%" domain                              ; rightmost "%" becomes "@"
//!              / local                                         ; empty domain part
//! ```
//! In every routed form the rest of the route stays in the local part in `%` notation:
//! `<@zzzz:xxxx@yyyyy>`, `zzzz!yyyyy!xxxx` and `xxxx%yyyyy@zzzz` all give domain `zzzz` and local
//! part `xxxx%yyyyy` (guide.txt:10031-10052).
//!
//! The local part is kept *raw* (quotes and `\` escapes as written) so that a quoted `@` or `%`
//! never becomes a route separator when the Router re-parses a local part; [`unquote`] gives the
//! name form used for lookups.
//!
//! Security: the input comes from SMTP clients, message files and the CLI. It is bounded
//! ([`MAX_ADDRESS`]); control bytes (NUL included) are refused; domains may hold only letters,
//! digits, `-`, `_`, `.` or an IP literal in brackets, so no domain can name a path.

use std::net::IpAddr;

use crate::kernel::mail::RouteError;

/// Longest address accepted, in bytes (RFC 5321 §4.5.3.1.3 allows 256 for a path; routes and
/// quoting need some more).
pub const MAX_ADDRESS: usize = 1024;
/// Longest domain part (RFC 1035 §2.3.4 plus brackets and a port).
pub const MAX_DOMAIN: usize = 255;

/// An address split into its parts; `domain` is empty for "this server's main domain".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The local part, raw (quotes and escapes as written).
    pub local: String,
    /// The domain part, as written (case kept).
    pub domain: String,
}

fn bad(why: &str, address: &str) -> RouteError {
    let shown: String = address.chars().take(80).collect();
    RouteError::BadAddress(format!("{why}: {shown}"))
}

/// Positions of `wanted` bytes outside quoted strings and not escaped with `\`.
pub(super) fn unquoted_positions(s: &str, wanted: u8) -> Vec<usize> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == wanted && !quoted {
            out.push(i);
        }
    }
    out
}

/// Whether `s` has a quoted string that never closes (or ends in a lone `\`).
fn unbalanced(s: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for b in s.bytes() {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        }
    }
    quoted || escaped
}

/// The name form of a raw local part: quotes removed, `\x` turned into `x`.
pub fn unquote(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c != '"' {
            out.push(c);
        }
    }
    out
}

/// `text` escaped so that, put into an address, it stays one plain piece of a local part: a
/// wildcard match substituted into a routing record must not add routes (`a@evil.com` → `a\@evil.com`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '"' | '\\' | '@' | '%' | '!' | ',' | ':' | ';' | '<' | '>' | ' '
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a raw local part holds a route (`%`, `@` or `!` outside quotes): the address is then
/// not "simple" (guide.txt:3352-3358).
pub fn has_route(raw_local: &str) -> bool {
    [b'%', b'@', b'!']
        .iter()
        .any(|&c| !unquoted_positions(raw_local, c).is_empty())
}

/// Checks a domain part: a dotted name of letters, digits, `-` and `_`, or an IP literal
/// (`[1.2.3.4]`, `[IPv6:::1]`, with an optional `:port`).
pub fn check_domain(domain: &str, address: &str) -> Result<(), RouteError> {
    if domain.len() > MAX_DOMAIN {
        return Err(bad("domain too long", address));
    }
    if domain.starts_with('[') {
        return ip_literal(domain)
            .map(|_| ())
            .ok_or_else(|| bad("bad IP address literal", address));
    }
    let ok = domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !domain.starts_with('.')
        && !domain.contains("..");
    if ok {
        Ok(())
    } else {
        Err(bad("bad domain name", address))
    }
}

/// The IP address and port of an IP literal `[1.2.3.4]`, `[1.2.3.4:26]`, `[IPv6:::1]`.
pub fn ip_literal(domain: &str) -> Option<(IpAddr, Option<u16>)> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    if let Some(v6) = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
    {
        return Some((IpAddr::V6(v6.parse().ok()?), None));
    }
    if let Ok(ip) = inner.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let (ip, port) = inner.rsplit_once(':')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some((IpAddr::V4(ip), Some(port)))
}

/// Whether a domain is a bare (unbracketed) dotted-quad IPv4 address (guide.txt:10328-10333).
pub fn bare_ip(domain: &str) -> bool {
    domain.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Splits `address` into its domain and local parts (see the module grammar). An empty domain
/// part means the local part alone was given.
pub fn parse(address: &str) -> Result<Parsed, RouteError> {
    if address.len() > MAX_ADDRESS {
        return Err(bad("address too long", address));
    }
    if address.chars().any(|c| c.is_control()) {
        return Err(bad("control characters in address", address));
    }
    let mut a = address.trim();
    if let Some(inner) = a.strip_prefix('<') {
        a = inner
            .strip_suffix('>')
            .ok_or_else(|| bad("unbalanced angle brackets", address))?
            .trim();
    }
    if a.is_empty() {
        return Err(bad("empty address", address));
    }
    if unbalanced(a) {
        return Err(bad("unbalanced quotes", address));
    }
    if a.starts_with('@') {
        return source_route(a, address);
    }
    let parsed = plain(a, address)?;
    if parsed.local.is_empty() {
        return Err(bad("empty local part", address));
    }
    if !parsed.domain.is_empty() {
        check_domain(&parsed.domain, address)?;
    }
    Ok(parsed)
}

/// `@a,@b:x@y` → domain `a`, local `x%y%b`.
fn source_route(a: &str, address: &str) -> Result<Parsed, RouteError> {
    let colon = *unquoted_positions(a, b':')
        .first()
        .ok_or_else(|| bad("source route without ':'", address))?;
    let (route, rest) = (&a[..colon], &a[colon + 1..]);
    let mut hops = Vec::new();
    for hop in route.split(',') {
        let hop = hop
            .trim()
            .strip_prefix('@')
            .ok_or_else(|| bad("bad source route", address))?;
        check_domain(hop, address)?;
        if hop.is_empty() {
            return Err(bad("empty source route hop", address));
        }
        hops.push(hop);
    }
    let inner = plain(rest.trim(), address)?;
    if inner.local.is_empty() {
        return Err(bad("empty local part", address));
    }
    let mut local = inner.local;
    if !inner.domain.is_empty() {
        check_domain(&inner.domain, address)?;
        local = format!("{local}%{}", inner.domain);
    }
    for hop in hops.iter().skip(1).rev() {
        local = format!("{local}%{hop}");
    }
    Ok(Parsed {
        local,
        domain: hops[0].to_string(),
    })
}

/// The three unrouted forms: `local@domain`, `a!b!local`, `local%domain`, or a bare local part.
fn plain(a: &str, address: &str) -> Result<Parsed, RouteError> {
    if let Some(&at) = unquoted_positions(a, b'@').last() {
        let local = &a[..at];
        if at + 1 == a.len() {
            return Err(bad("empty domain part", address));
        }
        // Other unquoted '@' in the local part are routes too: `%` notation (guide.txt:10054-10057).
        let mut raw = String::with_capacity(local.len());
        let ats = unquoted_positions(local, b'@');
        for (i, c) in local.char_indices() {
            raw.push(if ats.contains(&i) { '%' } else { c });
        }
        return Ok(Parsed {
            local: raw,
            domain: a[at + 1..].to_string(),
        });
    }
    let bangs = unquoted_positions(a, b'!');
    if let Some(&first) = bangs.first() {
        // host1!host2!...!user: first hop host1, then host2 ... (guide.txt:10031-10036).
        let mut parts: Vec<&str> = Vec::new();
        let mut start = 0;
        for &p in &bangs {
            parts.push(&a[start..p]);
            start = p + 1;
        }
        parts.push(&a[start..]);
        let user = parts.last().copied().unwrap_or_default();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty element in a '!' path", address));
        }
        let mut local = user.to_string();
        for host in parts[1..parts.len() - 1].iter().rev() {
            check_domain(host, address)?;
            local = format!("{local}%{host}");
        }
        return Ok(Parsed {
            local,
            domain: a[..first].to_string(),
        });
    }
    if let Some(&pct) = unquoted_positions(a, b'%').last() {
        // guide.txt:11953-11954: with no '@', the rightmost '%' is the '@'.
        if pct + 1 == a.len() {
            return Err(bad("empty domain part", address));
        }
        return Ok(Parsed {
            local: a[..pct].to_string(),
            domain: a[pct + 1..].to_string(),
        });
    }
    Ok(Parsed {
        local: a.to_string(),
        domain: String::new(),
    })
}

/// The local part (raw, as written) and the domain joined back into one address.
pub fn join(raw_local: &str, domain: &str) -> String {
    if domain.is_empty() {
        raw_local.to_string()
    } else {
        format!("{raw_local}@{domain}")
    }
}
