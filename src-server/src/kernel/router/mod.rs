//! The Router: where each address goes (guide.txt:10010-10436). It implements
//! [`Route`](crate::kernel::mail::Route) for the SMTP module (RCPT time), the Dequeuer and the CLI
//! `Route` command.
//!
//! One routing pass, repeated on every rewrite (guide.txt:10108-10112), at most [`MAX_STEPS`]
//! times (the guide sets no bound; more is a loop, spec C gap 9):
//! 1. the Main Domain name is cut to an empty domain and the local part is split again
//!    (guide.txt:10059-10066);
//! 2. the Routing Table, top to bottom, first match wins ([`table`]);
//! 3. special addresses: `NULL`, `MAILER-DAEMON` → discard; `ERROR`, `BlackListed` → error
//!    "Blacklisted Address"; `spamtrap` → error "spamtrap"; `.here` names a local domain
//!    (guide.txt:10283-10324). They come after the table so that records can catch them (the
//!    default white-hole record `<blacklist-admin*@blacklisted>`, guide.txt:10396-10398);
//! 4. IP domains: a bare IP is bracketed; the server's own IP becomes the main domain; other IP
//!    literals (`[ip]`, `[ip:port]`) go to SMTP (guide.txt:10326-10337, 11955-11969);
//! 5. "obvious" module routes: `.smtp` (suffix removed, `host.port.smtp` kept for the SMTP
//!    module), `.local` and `.domain` (Unified Domain-Wide Accounts), `pipe` (guide.txt:10339-10376,
//!    11887-11901, 12077-12097, 13897-13915);
//! 6. "final" routes: local domains (main, secondary, domain aliases) → the domain's objects;
//!    any other domain with a dot → SMTP.
//!
//! In a local domain a name is, in order: `mailbox#account` when Direct Mailbox Addressing is on
//! (guide.txt:12226-12248); `all` when the domain's `MailToAllAction` is not `Rejected`
//! (guide.txt:7992-8051; routed to the LIST module as the group `all`, which the LIST channel
//! expands to every account with `MailToAll`); an account, account alias, group or forwarder
//! (one name space, guide.txt:8851-8864; a forwarder is an implicit `Relay:` alias,
//! guide.txt:9201-9236); `account+detail` per `AccountDetail` (guide.txt:12269-12289; when the
//! base name is no object, the address without the detail is routed again); else the
//! domain's `MailToUnknown` (Rejected, Discarded, Rerouted to `MailRerouteAddress` with `*` → the
//! name, Accepted and Bounced; guide.txt:7935-7990, 12120-12150).
//!
//! Relaying (guide.txt:3332-3405): a `Relay:` rewrite to a simple address (no route in the local
//! part) sets [`Routed::relay`]; `RelayAll:` sets it always; `NoRelay:` leaves it as it was.
//!
//! Security: addresses come from anyone. Parsing is bounded ([`address`]); a name becomes an
//! object name only after `store::names` accepted it (no `/`, `..`, NUL), and a mailbox name only
//! after `mailbox::names::validate`; otherwise the address is a `BadAddress`, never a path.
//!
//! Settings: the table is the server setting `RouterTable` (a string; never written = the
//! default records, guide.txt:10378-10401), re-parsed when its text changes. Local Delivery's
//! routing settings are read from the `LOCAL` module settings ([`LOCAL_ROUTING_SETTINGS`]).
//!
//! todo: All-Domain Aliases (guide.txt:12300-12326), `alldomains@` (guide.txt:8043-8051), dedicated
//! IP addresses of secondary domains, non-qualified name extension (guide.txt:10403-10426), the
//! X-Real-To local part of Unified Domain-Wide Accounts (`Target::Local` has no field for it).

pub mod address;
pub mod table;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::format::{Dict, Value};
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::{Route, RouteError, Routed, Target};
use crate::store::settings::SettingDecl;
use crate::store::{names, Object, Store};

use address::Parsed;
use table::{RelayMode, Table};

/// Most routing steps (rewrites) for one address before it is a loop.
pub const MAX_STEPS: usize = 32;
/// The server setting holding the Routing Table text.
pub const TABLE_SETTING: &str = "RouterTable";
/// The module settings file holding Local Delivery's routing settings.
pub const LOCAL_MODULE: &str = "LOCAL";
/// Local Delivery's routing settings (guide.txt:12250-12289; our key names, the guide names only
/// the form fields). The Local Delivery module declares them with its own.
pub const LOCAL_ROUTING_SETTINGS: &[SettingDecl] = &[
    SettingDecl {
        key: "DirectMailbox",
        default: "YES",
        doc: "Direct Mailbox (mailbox#account) addressing (YES/NO)",
    },
    SettingDecl {
        key: "AccountDetail",
        default: "Enabled",
        doc: "Account Detail (account+detail): Disabled, Enabled or Direct Mailbox",
    },
];

/// The Router over a store.
pub struct Router {
    store: Store,
    logger: Option<Logger>,
    local_ips: Vec<IpAddr>,
    cache: Mutex<Option<(String, Arc<Table>)>>,
}

/// What one routing step ended with.
enum Step {
    /// The address was rewritten: route it again.
    Again,
    /// Routed.
    Done(Target),
}

fn text(d: &Dict, key: &str) -> Option<String> {
    d.get(key.as_bytes())
        .and_then(Value::as_text)
        .map(|t| t.trim().to_string())
}

impl Router {
    /// A Router over `store`, logging with the `ROUTER` tag when a logger is given.
    pub fn new(store: Store, logger: Option<Logger>) -> Router {
        Router {
            store,
            logger,
            local_ips: Vec::new(),
            cache: Mutex::new(None),
        }
    }

    /// Adds IP addresses that are this server's own: mail to `user@[ip]` is local
    /// (guide.txt:10334-10337). Loopback addresses always are.
    pub fn with_local_ips(mut self, ips: Vec<IpAddr>) -> Router {
        self.local_ips = ips;
        self
    }

    fn log(&self, level: Level, text: impl std::fmt::Display) {
        if let Some(l) = &self.logger {
            l.log(level, "ROUTER", text);
        }
    }

    /// The current table, parsed once per text.
    fn table(&self) -> Arc<Table> {
        let text = match self.store.server_settings(TABLE_SETTING) {
            Ok(Value::Str(s)) => String::from_utf8_lossy(&s).into_owned(),
            Ok(_) => table::DEFAULT_TABLE.to_string(),
            Err(e) => {
                self.log(
                    Level::Failures,
                    format_args!("cannot read the Router Table: {e}"),
                );
                table::DEFAULT_TABLE.to_string()
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, t)) = cache.as_ref() {
            if *cached == text {
                return t.clone();
            }
        }
        let (t, errors) = table::parse(&text);
        for e in &errors {
            self.log(Level::Failures, format_args!("Router Table: {e} (ignored)"));
        }
        let t = Arc::new(t);
        *cache = Some((text, t.clone()));
        t
    }

    fn is_local_ip(&self, ip: &IpAddr) -> bool {
        ip.is_loopback() || self.local_ips.contains(ip)
    }

    /// One routing step on `cur` (see the module header for the order).
    fn step(
        &self,
        table: &Table,
        main: &str,
        cur: &mut Parsed,
        relay: &mut bool,
    ) -> Result<Step, RouteError> {
        // 1. Main Domain cut-off, then split the local part again (guide.txt:10059-10066).
        if cur.domain.eq_ignore_ascii_case(main) {
            cur.domain.clear();
        }
        if cur.domain.is_empty() {
            let again = address::parse(&cur.local)?;
            if !again.domain.is_empty() {
                *cur = again;
                return Ok(Step::Again);
            }
        }
        // 2. The Routing Table.
        if let Some(rewrite) = table.apply(cur) {
            let rewrite = rewrite?;
            self.log(
                Level::LowLevel,
                format_args!(
                    "{} -> {} (record at line {})",
                    address::join(&cur.local, &cur.domain),
                    address::join(&rewrite.address.local, &rewrite.address.domain),
                    rewrite.line
                ),
            );
            mark(relay, rewrite.relay, &rewrite.address);
            *cur = rewrite.address;
            return Ok(Step::Again);
        }
        // 3. Special addresses (guide.txt:10283-10324).
        if let Some(t) = special(cur) {
            return Ok(Step::Done(t));
        }
        if let Some(here) = strip_suffix_ci(&cur.domain, ".here") {
            let d = self
                .store
                .resolve_domain(here)
                .ok_or_else(|| RouteError::BadAddress(format!("{here} is not a local domain")))?;
            return self.local(&d, cur, relay);
        }
        // 4. IP-address domains (guide.txt:10326-10337).
        if address::bare_ip(&cur.domain) {
            cur.domain = format!("[{}]", cur.domain);
            return Ok(Step::Again);
        }
        if let Some((ip, port)) = address::ip_literal(&cur.domain) {
            if port.is_none() && self.is_local_ip(&ip) {
                cur.domain.clear();
                return Ok(Step::Again);
            }
            let literal = match ip {
                IpAddr::V4(v4) => format!("[{v4}]"),
                IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
            };
            return Ok(Step::Done(Target::Smtp {
                host: cur.domain.clone(),
                address: address::join(&cur.local, &literal),
            }));
        }
        // 5. "Obvious" module routes.
        if let Some(t) = self.obvious(cur)? {
            return Ok(Step::Done(t));
        }
        // 6. "Final" routes: local domains, then any dotted domain to SMTP.
        if cur.domain.is_empty() {
            return self.local(main, cur, relay);
        }
        if let Some(d) = self.store.resolve_domain(&cur.domain) {
            if d.eq_ignore_ascii_case(main) {
                // A main-domain alias: main-domain records (`<name>`) apply to it too.
                cur.domain.clear();
                return Ok(Step::Again);
            }
            if d != cur.domain {
                cur.domain = d;
                return Ok(Step::Again);
            }
            return self.local(&d, cur, relay);
        }
        if cur.domain.contains('.') {
            return Ok(Step::Done(Target::Smtp {
                host: cur.domain.to_ascii_lowercase(),
                address: address::join(&cur.local, &cur.domain),
            }));
        }
        Err(RouteError::BadAddress(format!(
            "no route to the domain {}",
            cur.domain
        )))
    }

    /// `.smtp`, `.local`, `.domain` and `pipe` (the modules' first-attempt routes).
    fn obvious(&self, cur: &Parsed) -> Result<Option<Target>, RouteError> {
        if let Some(rest) = strip_suffix_ci(&cur.domain, ".smtp") {
            // guide.txt:11889-11901, 11963-11969: `host.smtp` is sent to host; `host.port.smtp`
            // keeps its form for the SMTP module (no MX lookup, that port).
            let (host, queue) = match rest.rsplit_once('.') {
                Some((h, port)) if port.parse::<u16>().is_ok_and(|p| p != 0) => {
                    (h.to_string(), cur.domain.clone())
                }
                _ => (rest.to_string(), rest.to_string()),
            };
            let rcpt = match address::unquoted_positions(&cur.local, b'%').last() {
                Some(&p) => format!("{}@{}", &cur.local[..p], &cur.local[p + 1..]),
                None => address::join(&cur.local, &host),
            };
            return Ok(Some(Target::Smtp {
                host: queue.to_ascii_lowercase(),
                address: rcpt,
            }));
        }
        if let Some(account) = strip_suffix_ci(&cur.domain, ".local") {
            // guide.txt:12079-12087: `x@name.local` is the main-domain account `name`.
            let main = self.store.main_domain();
            return self.account(&main, account).map(Some);
        }
        if let Some(domain) = strip_suffix_ci(&cur.domain, ".domain") {
            // guide.txt:12089-12097: `x%name@dom.domain`: account `name` in domain `dom`.
            let d = self
                .store
                .resolve_domain(domain)
                .ok_or_else(|| RouteError::BadAddress(format!("{domain} is not a local domain")))?;
            let name = address::unquote(&cur.local);
            let account = name.rsplit('%').next().unwrap_or(&name);
            return self.account(&d, account).map(Some);
        }
        if cur.domain.eq_ignore_ascii_case("pipe") {
            return Ok(Some(Target::Pipe {
                program: address::unquote(&cur.local),
                address: address::join(&cur.local, &cur.domain),
            }));
        }
        Ok(None)
    }

    /// An existing account (or account alias) named `name` in domain `d`.
    fn account(&self, d: &str, name: &str) -> Result<Target, RouteError> {
        check_name(name)?;
        match self.store.lookup(d, name) {
            Some(Object::Account(a)) | Some(Object::Alias { account: a }) => Ok(Target::Local {
                domain: d.to_string(),
                account: a,
                mailbox: None,
                detail: None,
            }),
            _ => Err(RouteError::UnknownUser(format!("{name}@{d}"))),
        }
    }

    /// A name in the local domain `d` (canonical).
    fn local(&self, d: &str, cur: &mut Parsed, relay: &mut bool) -> Result<Step, RouteError> {
        let name = address::unquote(&cur.local);
        let local = match self.store.server_settings(LOCAL_MODULE) {
            Ok(Value::Dict(d)) => d,
            _ => Dict::new(),
        };
        let setting = |key: &str| {
            text(&local, key).unwrap_or_else(|| {
                LOCAL_ROUTING_SETTINGS
                    .iter()
                    .find(|s| s.key == key)
                    .map(|s| s.default.to_string())
                    .unwrap_or_default()
            })
        };
        let direct = setting("DirectMailbox").eq_ignore_ascii_case("YES");
        let detail_mode = setting("AccountDetail");
        let domain = self.store.domain_effective_settings(d).unwrap_or_default();

        if direct {
            if let Some((mailbox, account)) = name.split_once('#') {
                return self.direct(d, mailbox, account).map(Step::Done);
            }
        }
        check_name(&name)?;
        if name.eq_ignore_ascii_case("all")
            && text(&domain, "MailToAllAction")
                .is_some_and(|a| !a.eq_ignore_ascii_case("Rejected") && !a.is_empty())
        {
            return Ok(Step::Done(Target::List {
                domain: d.to_string(),
                group: "all".into(),
            }));
        }
        if let Some(step) = self.object(d, &name, None, cur, relay)? {
            return Ok(step);
        }
        if !detail_mode.eq_ignore_ascii_case("Disabled") {
            if let Some((base, detail)) = name.split_once('+').filter(|(b, _)| !b.is_empty()) {
                if direct && detail_mode.eq_ignore_ascii_case("Direct Mailbox") {
                    return self.direct(d, detail, base).map(Step::Done);
                }
                if let Some(step) = self.object(d, base, Some(detail), cur, relay)? {
                    return Ok(step);
                }
                // guide.txt:12279-12282: "delete the first plus sign and all following symbols
                // from the address, then it will re-route the address" (so table aliases apply).
                let main = self.store.main_domain();
                *cur = Parsed {
                    local: address::escape(base),
                    domain: if d.eq_ignore_ascii_case(&main) {
                        String::new()
                    } else {
                        d.to_string()
                    },
                };
                return Ok(Step::Again);
            }
        }
        self.unknown(d, &name, &domain, cur, relay)
    }

    /// The object `name` in `d`, if there is one.
    fn object(
        &self,
        d: &str,
        name: &str,
        detail: Option<&str>,
        cur: &mut Parsed,
        relay: &mut bool,
    ) -> Result<Option<Step>, RouteError> {
        Ok(Some(match self.store.lookup(d, name) {
            None => return Ok(None),
            Some(Object::Account(a)) | Some(Object::Alias { account: a }) => {
                Step::Done(Target::Local {
                    domain: d.to_string(),
                    account: a,
                    mailbox: None,
                    detail: detail.map(str::to_string),
                })
            }
            Some(Object::Group(g)) => Step::Done(Target::List {
                domain: d.to_string(),
                group: g,
            }),
            Some(Object::Forwarder(to)) => {
                // guide.txt:9205-9214: a forwarder is a `Relay:` alias record.
                let to = address::parse(&to)?;
                mark(relay, RelayMode::Relay, &to);
                *cur = to;
                Step::Again
            }
        }))
    }

    /// `mailbox#account` (guide.txt:12226-12248).
    fn direct(&self, d: &str, mailbox: &str, account: &str) -> Result<Target, RouteError> {
        let mailbox = crate::mailbox::names::validate(mailbox)
            .map_err(|e| RouteError::BadAddress(e.to_string()))?;
        match self.account(d, account)? {
            Target::Local {
                domain, account, ..
            } => Ok(Target::Local {
                domain,
                account,
                mailbox: Some(mailbox),
                detail: None,
            }),
            other => Ok(other),
        }
    }

    /// An unknown name in `d`: the domain's `MailToUnknown` (guide.txt:7935-7990).
    fn unknown(
        &self,
        d: &str,
        name: &str,
        settings: &Dict,
        cur: &mut Parsed,
        relay: &mut bool,
    ) -> Result<Step, RouteError> {
        let mode = text(settings, "MailToUnknown").unwrap_or_default();
        let lower = mode.to_ascii_lowercase();
        if lower.starts_with("discard") {
            return Ok(Step::Done(Target::Discard));
        }
        if lower.starts_with("reroute") || lower.starts_with("redirect") {
            let to = text(settings, "MailRerouteAddress").unwrap_or_default();
            if !to.is_empty() {
                let to = address::parse(&to.replace('*', &address::escape(name)))?;
                mark(relay, RelayMode::Relay, &to);
                *cur = to;
                return Ok(Step::Again);
            }
        }
        if lower.starts_with("accept") {
            // Local Delivery finds no account and bounces it (guide.txt:7981-7985).
            return Ok(Step::Done(Target::Local {
                domain: d.to_string(),
                account: name.to_ascii_lowercase(),
                mailbox: None,
                detail: None,
            }));
        }
        Err(RouteError::UnknownUser(format!("{name}@{d}")))
    }
}

/// Refuses names that cannot be object names (so never a path).
fn check_name(name: &str) -> Result<(), RouteError> {
    names::validate("account", name).map_err(|e| RouteError::BadAddress(e.to_string()))
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    (cut > 0 && tail.eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

/// Sets the relay marker per the applied record's prefix (guide.txt:3344-3366).
fn mark(relay: &mut bool, mode: RelayMode, result: &Parsed) {
    match mode {
        RelayMode::RelayAll => *relay = true,
        RelayMode::Relay if !address::has_route(&result.local) => *relay = true,
        _ => {}
    }
}

/// `NULL`, `MAILER-DAEMON`, `ERROR`, `BlackListed`, `spamtrap` (guide.txt:10283-10310).
fn special(cur: &Parsed) -> Option<Target> {
    let is = |s: &str, w: &str| s.eq_ignore_ascii_case(w);
    let word = if cur.domain.is_empty() {
        address::unquote(&cur.local)
    } else {
        cur.domain.clone()
    };
    let bare = cur.domain.is_empty();
    if is(&word, "NULL") || (bare && is(&word, "MAILER-DAEMON")) {
        Some(Target::Discard)
    } else if is(&word, "ERROR") || is(&word, "BlackListed") {
        Some(Target::Error("Blacklisted Address".into()))
    } else if bare && is(&word, "spamtrap") {
        Some(Target::Error("spamtrap".into()))
    } else {
        None
    }
}

impl Route for Router {
    fn route(&self, addr: &str) -> Result<Routed, RouteError> {
        let table = self.table();
        let main = self.store.main_domain();
        let result = (|| {
            let mut cur = address::parse(addr)?;
            let mut relay = false;
            for _ in 0..MAX_STEPS {
                if let Step::Done(target) = self.step(&table, &main, &mut cur, &mut relay)? {
                    return Ok(Routed { target, relay });
                }
            }
            Err(RouteError::Loop(addr.to_string()))
        })();
        match &result {
            Ok(r) => {
                let [m, h, a] = r.cli_triple();
                self.log(
                    Level::Major,
                    format_args!(
                        "{addr} routed to {m} {h} {a}{}",
                        if r.relay { " (relay)" } else { "" }
                    ),
                );
            }
            Err(e) => self.log(Level::Major, format_args!("{e}")),
        }
        result
    }
}
