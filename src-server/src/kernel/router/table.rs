//! The Routing Table: its text syntax, its records and how one record applies to an address
//! (guide.txt:10086-10281; prefixes guide.txt:3332-3405; default records guide.txt:10378-10401).
//!
//! ```text
//! table   = *( line LF )                       ; CR before LF is ignored
//! line    = [ prefix ] left "=" right [ ";" comment ] / ";" comment / blank
//! prefix  = "Relay:" / "R:" / "NoRelay:" / "N:" / "RelayAll:"   ; none = "Relay:"
//! left    = domain-pattern / "<" local-pattern [ "@" domain ] ">"
//! ```
//! A pattern holds at most one `*` ("Only one wildcard symbol is allowed in one routing record",
//! guide.txt:10177); in an alias record it may stand only in the local part (guide.txt:10261-10262).
//! A `*` in the right part is replaced by what the left `*` matched. An empty right part of a
//! domain record means the main domain (`localhost = `).
//!
//! Security: the table is admin input, but it is applied to addresses from anyone, so a wildcard
//! match is escaped before it is put into the right part (a matched `a@evil.com` must not become
//! a route). Lines and the whole table are bounded.

use super::address;

/// The records placed in a new server's table (guide.txt:10380-10398); used while the
/// `RouterTable` setting has never been written.
pub const DEFAULT_TABLE: &str =
    "<root> = postmaster\nlocalhost = \nmailhost = \n<blacklist-admin*@blacklisted> = postmaster\n";

/// Longest accepted table, in bytes.
pub const MAX_TABLE: usize = 1 << 20;
/// Longest accepted line, in bytes.
pub const MAX_LINE: usize = 4096;

/// A record's relaying prefix (guide.txt:3332-3405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// `Relay:` / `R:` / no prefix: marks a rewritten simple address as relayable.
    Relay,
    /// `NoRelay:` / `N:`: neither sets nor clears the marker.
    NoRelay,
    /// `RelayAll:`: marks the rewritten address whatever its form.
    RelayAll,
}

/// What a record's left part matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// A domain-level record: a domain name pattern.
    Domain(String),
    /// An account-level (alias) record: a local-part pattern (name form) and a domain (empty =
    /// the main domain, already cut off).
    Alias {
        /// The local-part pattern, unquoted.
        local: String,
        /// The domain, as written; empty for main-domain aliases.
        domain: String,
    },
}

/// One routing record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number in the table text.
    pub line: usize,
    /// The relaying prefix.
    pub relay: RelayMode,
    /// The left part.
    pub left: Left,
    /// The right part, as written.
    pub right: String,
}

/// A parsed table: its records, top to bottom.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// The records in table order.
    pub records: Vec<Record>,
}

/// The result of applying a matching record: the new address text and the record's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The rewritten address (empty domain part = main domain).
    pub address: address::Parsed,
    /// The record's prefix.
    pub relay: RelayMode,
    /// The record's line (for the log).
    pub line: usize,
}

/// Checks a whole table; `Err` names every bad line (`line N: why`).
pub fn validate(text: &str) -> Result<(), String> {
    let (_, errors) = parse(text);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Parses a table; bad lines are left out and reported as `line N: why`.
pub fn parse(text: &str) -> (Table, Vec<String>) {
    let mut table = Table::default();
    let mut errors = Vec::new();
    if text.len() > MAX_TABLE {
        errors.push(format!("the table is longer than {MAX_TABLE} bytes"));
        return (table, errors);
    }
    for (i, line) in text.split('\n').enumerate() {
        match record(line.strip_suffix('\r').unwrap_or(line), i + 1) {
            Ok(Some(r)) => table.records.push(r),
            Ok(None) => {}
            Err(e) => errors.push(format!("line {}: {e}", i + 1)),
        }
    }
    (table, errors)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// One line: `Ok(None)` for blank and comment lines.
fn record(line: &str, number: usize) -> Result<Option<Record>, String> {
    if line.len() > MAX_LINE {
        return Err(format!("longer than {MAX_LINE} bytes"));
    }
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err("control characters".into());
    }
    let line = line.trim();
    if line.is_empty() || line.starts_with(';') {
        return Ok(None);
    }
    let mut relay = RelayMode::Relay;
    let mut rest = line;
    for (p, mode) in [
        ("RelayAll:", RelayMode::RelayAll),
        ("NoRelay:", RelayMode::NoRelay),
        ("Relay:", RelayMode::Relay),
        ("N:", RelayMode::NoRelay),
        ("R:", RelayMode::Relay),
    ] {
        if let Some(r) = strip_prefix_ci(rest, p) {
            relay = mode;
            rest = r.trim_start();
            break;
        }
    }
    let eq = *address::unquoted_positions(rest, b'=')
        .first()
        .ok_or("no '=' between the left and the right part")?;
    let left_text = rest[..eq].trim();
    let mut right = &rest[eq + 1..];
    if let Some(&semi) = address::unquoted_positions(right, b';').first() {
        right = &right[..semi];
    }
    let right = right.trim().to_string();
    let left = left_part(left_text)?;
    let left_stars = left_text.matches('*').count();
    if right.contains('*') && left_stars == 0 {
        return Err("'*' in the right part needs a '*' in the left part".into());
    }
    // Check the right part as the Router will use it, with a sample wildcard match.
    let sample = right.replace('*', "x");
    match &left {
        Left::Domain(_) if sample.is_empty() => {}
        Left::Domain(_) => {
            address::parse(&format!("x@{sample}")).map_err(|e| format!("right part: {e}"))?;
        }
        Left::Alias { .. } if sample.is_empty() => {
            return Err("an alias record needs an address in the right part".into())
        }
        Left::Alias { .. } => {
            address::parse(&sample).map_err(|e| format!("right part: {e}"))?;
        }
    }
    Ok(Some(Record {
        line: number,
        relay,
        left,
        right,
    }))
}

fn left_part(text: &str) -> Result<Left, String> {
    if text.is_empty() {
        return Err("empty left part".into());
    }
    if text.matches('*').count() > 1 {
        return Err("only one '*' is allowed in a record".into());
    }
    if let Some(inner) = text.strip_prefix('<') {
        let inner = inner
            .strip_suffix('>')
            .ok_or("an alias left part must end with '>'")?
            .trim();
        let (local, domain) = match address::unquoted_positions(inner, b'@').last() {
            Some(&at) => (&inner[..at], &inner[at + 1..]),
            None => (inner, ""),
        };
        if local.is_empty() {
            return Err("empty local part in the alias".into());
        }
        if domain.contains('*') {
            return Err("'*' may stand only in the local part of an alias".into());
        }
        if !domain.is_empty() {
            address::check_domain(domain, text).map_err(|e| e.to_string())?;
        }
        return Ok(Left::Alias {
            local: address::unquote(local),
            domain: domain.to_string(),
        });
    }
    if text.contains(['@', '<', '>', '"', ' ']) {
        return Err(format!(
            "'{text}' is neither a domain name nor an address in angle brackets"
        ));
    }
    address::check_domain(&text.replace('*', "x"), text).map_err(|e| e.to_string())?;
    Ok(Left::Domain(text.to_string()))
}

/// Matches `text` against `pattern` (at most one `*`, ASCII case-insensitive); returns what the
/// `*` matched (empty when the pattern has none).
pub fn wild_match(pattern: &str, text: &str) -> Option<String> {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(text).then(String::new),
        Some((pre, post)) => {
            if text.len() < pre.len() + post.len() {
                return None;
            }
            let head = text.get(..pre.len())?;
            let tail = text.get(text.len() - post.len()..)?;
            (head.eq_ignore_ascii_case(pre) && tail.eq_ignore_ascii_case(post))
                .then(|| {
                    text.get(pre.len()..text.len() - post.len())
                        .map(str::to_string)
                })
                .flatten()
        }
    }
}

impl Table {
    /// The first record that applies to `addr` (guide.txt:10108-10112), with the rewrite.
    pub fn apply(&self, addr: &address::Parsed) -> Option<Result<Rewrite, super::RouteError>> {
        let name = address::unquote(&addr.local);
        for r in &self.records {
            let rewritten = match &r.left {
                Left::Domain(pattern) => {
                    if addr.domain.is_empty() {
                        continue;
                    }
                    let Some(m) = wild_match(pattern, &addr.domain) else {
                        continue;
                    };
                    if r.right.is_empty() {
                        // guide.txt:10391-10395: an empty right part is the main domain.
                        Ok(address::Parsed {
                            local: addr.local.clone(),
                            domain: String::new(),
                        })
                    } else {
                        // The matched text is a checked domain fragment: nothing to escape.
                        let right = r.right.replace('*', &m);
                        address::parse(&address::join(&addr.local, &right))
                    }
                }
                Left::Alias { local, domain } => {
                    let same_domain = if domain.is_empty() {
                        addr.domain.is_empty()
                    } else {
                        domain.eq_ignore_ascii_case(&addr.domain)
                    };
                    if !same_domain {
                        continue;
                    }
                    let Some(m) = wild_match(local, &name) else {
                        continue;
                    };
                    address::parse(&r.right.replace('*', &address::escape(&m)))
                }
            };
            return Some(rewritten.map(|address| Rewrite {
                address,
                relay: r.relay,
                line: r.line,
            }));
        }
        None
    }
}
