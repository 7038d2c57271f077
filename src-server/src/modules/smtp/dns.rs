//! DNS-based Protection for the SMTP receiver: RBL (DNS blacklists), blacklisting, un-blacklisting
//! and client detection by the PTR name of the peer, and the DNS part of HELO and Return-Path
//! verification.
//!
//! Guide: RBL guide.txt:3480-3514, Blacklist/UnBlacklist by DNS Name 3515-3551, Detect Clients by
//! DNS Name 3190-3208, Return-Path verification 3406-3448, HELO names 11558-11568 and 25637, the
//! resolver 2779-2845. RFC 5782 (DNSBL
//! query names, IPv6 nibbles), RFC 7505 (null MX), RFC 5321 §5.1 (implicit MX).
//!
//! Settings: the server-wide `Protection` dictionary ([`Protection`], `GetProtection`/
//! `SetProtection`), and the SMTP module's `DNSServers` (the same servers the sending side uses).
//!
//! Order at connect ([`screen`]): Client IP Addresses, then Client by DNS name (PTR name matches
//! `ClientDNSNames` and its forward lookup holds the address); clients are never checked further
//! (guide.txt:3538). Then the explicit Blacklist (White Holes override it; DNS names cannot,
//! guide.txt:3549), the White Holes, UnBlacklist by DNS Name, Blacklist by DNS Name, then each RBL
//! server in order. A blacklisted host may talk, but its recipients are refused (guide.txt:3449),
//! except, for a DNS listing, after AUTH: RBLs list unauthenticated sources such as dynamic
//! addresses. The submission port (AUTH required) asks the DNS nothing.
//!
//! Timeouts: RBL queries are sent at most twice with the short time-out (guide.txt:3511-3513):
//! [`RBL_TIMEOUT`] each; other queries [`QUERY_TIMEOUT`], twice. A query that fails (time-out,
//! SERVFAIL) leaves an RBL check "not listed" and makes a Return-Path check a temporary refusal
//! (guide.txt:3444-3448).
//!
//! Cache: answers (records, NXDOMAIN, no records; never failures) are kept for [`CACHE_TIME`], at
//! most [`CACHE_ENTRIES`] of them, so a peer that reconnects does not cost another query.
//!
//! Security: every name and record comes from the network. Names we build are checked for length
//! before they are sent; TXT texts shown to the peer are cut to printable ASCII and bounded.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::{ResolveError, ResolveErrorKind};
use hickory_resolver::name_server::{NameServerPool, TokioConnectionProvider};
use hickory_resolver::proto::op::{Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::proto::xfer::{DnsHandle, DnsRequestOptions, FirstAnswer};
use hickory_resolver::TokioAsyncResolver;

use super::Policy;
use crate::format::{Dict, Value};
use crate::kernel::log::{Level, Logger};

/// The log tag of the resolver (spec A §11: DNR).
const TAG: &str = "DNR";
/// The wait for one RBL reply; an RBL query is sent at most twice.
pub const RBL_TIMEOUT: Duration = Duration::from_secs(2);
/// The wait for one reply to any other query; sent at most twice.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer is kept.
pub const CACHE_TIME: Duration = Duration::from_secs(60);
/// Most cached answers; the cache is emptied when it is full.
pub const CACHE_ENTRIES: usize = 4096;
/// Longest TXT text passed on to the peer.
const MAX_TXT: usize = 200;

/// The DNS options of the server-wide `Protection` settings (guide.txt:3190-3551).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protection {
    /// `UseRBL` with `RBLServers`: the RBL server domain names, checked in order.
    pub rbl_servers: Vec<String>,
    /// `BlacklistByDNSName` with `BlacklistedDNSNames`: PTR name patterns (`*`).
    pub blacklisted_names: Vec<String>,
    /// `UnBlacklistByDNSName` with `UnBlacklistedDNSNames`.
    pub unblacklisted_names: Vec<String>,
    /// `DetectClientsByDNSName` with `ClientDNSNames`.
    pub client_names: Vec<String>,
}

impl Protection {
    /// Reads and checks the `Protection` dictionary. Each table is used only when its option is
    /// `Yes`; a table is an array of strings or one comma-separated string.
    pub fn from_dict(d: &Dict) -> Result<Protection, String> {
        let flag = |k: &str| -> Result<bool, String> {
            match d.get(k.as_bytes()).and_then(Value::as_text) {
                None => Ok(false),
                Some(t) => match t.trim().to_ascii_lowercase().as_str() {
                    "yes" | "1" | "true" => Ok(true),
                    "no" | "0" | "false" | "" => Ok(false),
                    _ => Err(format!("{k}: {t:?} is not Yes or No")),
                },
            }
        };
        let table = |on: &str, k: &str| -> Result<Vec<String>, String> {
            let items: Vec<String> = match d.get(k.as_bytes()) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_text().map(|t| t.trim().to_ascii_lowercase()))
                    .collect(),
                Some(v) => v
                    .as_text()
                    .map(|t| {
                        t.split([',', '\n'])
                            .map(|s| s.trim().to_ascii_lowercase())
                            .collect()
                    })
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
            for i in &items {
                let ok = i.len() <= 253
                    && i.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._*".contains(&b));
                if !ok {
                    return Err(format!("{k}: {i:?} is not a domain name"));
                }
            }
            Ok(if flag(on)? { items } else { Vec::new() })
        };
        let rbl_servers = table("UseRBL", "RBLServers")?;
        if let Some(bad) = rbl_servers.iter().find(|s| s.contains('*')) {
            return Err(format!("RBLServers: {bad:?} is not a domain name"));
        }
        Ok(Protection {
            rbl_servers,
            blacklisted_names: table("BlacklistByDNSName", "BlacklistedDNSNames")?,
            unblacklisted_names: table("UnBlacklistByDNSName", "UnBlacklistedDNSNames")?,
            client_names: table("DetectClientsByDNSName", "ClientDNSNames")?,
        })
    }

    fn needs_ptr(&self) -> bool {
        !(self.blacklisted_names.is_empty()
            && self.unblacklisted_names.is_empty()
            && self.client_names.is_empty())
    }
}

/// Why a query has no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// The name exists without records of the type.
    NoRecords,
    /// No answer (time-out, SERVFAIL, no server): try again later.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// IPv4 addresses, for RBL names.
    A,
    /// IPv4 and IPv6 addresses.
    Ip,
    /// `preference host` strings.
    Mx,
    /// TXT texts, for RBL reasons.
    Txt,
    /// The name is an address; the answer its PTR names.
    Ptr,
}

type Answer = Result<Vec<String>, DnsError>;

/// The receiver's resolver: hickory over `DNSServers`, with the answer cache.
pub struct Dns {
    resolvers: Mutex<Option<Arc<Resolvers>>>,
    cache: Mutex<HashMap<(Kind, String), (Instant, Answer)>>,
    logger: Logger,
}

/// The resolver configuration for `servers` (the system's when empty), with our time-out.
fn config(
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<(ResolverConfig, ResolverOpts), String> {
    let (config, mut opts) = if servers.is_empty() {
        hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?
    } else {
        let mut config = ResolverConfig::new();
        for &addr in servers {
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
        }
        for &addr in servers {
            // Used when a UDP reply is truncated, and as the next try.
            config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
        }
        (config, ResolverOpts::default())
    };
    opts.timeout = timeout;
    // One resend: "not more than twice" (guide.txt:3511-3513).
    opts.attempts = 1;
    opts.num_concurrent_reqs = 1;
    opts.positive_max_ttl = Some(CACHE_TIME);
    opts.negative_max_ttl = Some(CACHE_TIME);
    Ok((config, opts))
}

/// The resolvers for one set of servers: `normal` and `rbl` (shorter time-out), and `ptr`, the
/// bare server pool for PTR queries: the resolver answers 127/8 and ::1 itself as `localhost`
/// (RFC 6761 §6.3), while the name tables need the servers' own answer (and tests run there).
struct Resolvers {
    servers: Vec<SocketAddr>,
    normal: TokioAsyncResolver,
    rbl: TokioAsyncResolver,
    ptr: Arc<NameServerPool<TokioConnectionProvider>>,
}

impl Resolvers {
    fn new(servers: &[SocketAddr]) -> Result<Resolvers, String> {
        let (c, o) = config(servers, QUERY_TIMEOUT)?;
        let ptr = NameServerPool::from_config(
            c.name_servers().to_vec().into(),
            o.clone(),
            TokioConnectionProvider::default(),
        );
        let normal = TokioAsyncResolver::tokio(c, o);
        let (c, o) = config(servers, RBL_TIMEOUT)?;
        Ok(Resolvers {
            servers: servers.to_vec(),
            normal,
            rbl: TokioAsyncResolver::tokio(c, o),
            ptr: Arc::new(ptr),
        })
    }
}

/// A PTR query straight to the servers (see [`Resolvers`]).
async fn ptr_query(
    pool: &NameServerPool<TokioConnectionProvider>,
    ip: IpAddr,
) -> Result<Vec<String>, ResolveError> {
    let query = Query::query(Name::from(ip), RecordType::PTR);
    let response = pool
        .lookup(query, DnsRequestOptions::default())
        .first_answer()
        .await?;
    match response.response_code() {
        ResponseCode::NoError => {}
        code => {
            return Err(ResolveErrorKind::NoRecordsFound {
                query: Box::new(Query::query(Name::from(ip), RecordType::PTR)),
                soa: None,
                negative_ttl: None,
                response_code: code,
                trusted: false,
            }
            .into())
        }
    }
    Ok(response
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            Some(RData::PTR(n)) => Some(n.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect())
}

fn classify(e: &ResolveError) -> DnsError {
    match e.kind() {
        ResolveErrorKind::NoRecordsFound {
            response_code: ResponseCode::NXDomain,
            ..
        } => DnsError::NoSuchName,
        ResolveErrorKind::NoRecordsFound {
            response_code: ResponseCode::NoError,
            ..
        } => DnsError::NoRecords,
        _ => DnsError::Failed(e.to_string()),
    }
}

/// `ddd.ccc.bbb.aaa.<zone>` for IPv4, the reversed nibbles for IPv6 (RFC 5782 §2.1, §2.4).
pub fn rbl_name(ip: IpAddr, zone: &str) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(64 + zone.len());
            for b in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            out.push_str(zone);
            out
        }
    }
}

/// guide.txt:3497: a listing is an address in 127.0.0.2-127.1.255.255.
fn is_listing(ip: &str) -> bool {
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(a) => {
            let n = u32::from(a);
            (0x7f00_0002..=0x7f01_ffff).contains(&n)
        }
        Err(_) => false,
    }
}

fn name_matches(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| super::wildcard(p, name))
}

/// Printable ASCII, bounded: text from a TXT record shown in a reply.
fn shown(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_TXT)
        .collect()
}

/// What [`screen`] decided about a connecting address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screen {
    /// A Client IP Address, listed or detected by its DNS name.
    pub client: bool,
    /// Blacklisted: the text every RCPT gets.
    pub blacklisted: Option<String>,
    /// Blacklisted through the DNS (an RBL or the PTR name), not by the explicit list.
    pub by_dns: bool,
}

/// The explicit Blacklist's refusal.
const BLACKLISTED: &str = "Your host is blacklisted. No mail will be accepted";

/// Decides whether `ip` is a client and whether it is blacklisted (order in the module header).
/// Without `use_dns` only the address lists count (no PTR, no RBL query).
pub async fn screen(dns: &Dns, policy: &Policy, ip: IpAddr, use_dns: bool) -> Screen {
    let ip = ip.to_canonical();
    let servers = &policy.dns_servers;
    let p = &policy.protection;
    if policy.client_ips.contains(ip) {
        return Screen {
            client: true,
            ..Screen::default()
        };
    }
    let explicit = policy.blacklisted.contains(ip);
    let white_hole = policy.white_holes.contains(ip);
    let ptr = if use_dns && p.needs_ptr() {
        dns.ptr(servers, ip).await
    } else {
        None
    };
    if let Some(name) = &ptr {
        // guide.txt:3190-3208: the PTR name must match and must resolve back to the address.
        if name_matches(&p.client_names, name) && dns.has_address(servers, name, ip).await {
            return Screen {
                client: true,
                ..Screen::default()
            };
        }
    }
    if explicit && !white_hole {
        return Screen {
            client: false,
            blacklisted: Some(BLACKLISTED.into()),
            by_dns: false,
        };
    }
    let unlisted = Screen::default();
    if white_hole {
        return unlisted;
    }
    if let Some(name) = &ptr {
        if name_matches(&p.unblacklisted_names, name) {
            return unlisted;
        }
        if name_matches(&p.blacklisted_names, name) {
            return Screen {
                client: false,
                blacklisted: Some(format!(
                    "Your host {} is blacklisted. No mail will be accepted",
                    shown(name)
                )),
                by_dns: true,
            };
        }
    }
    let zones = if use_dns { &p.rbl_servers[..] } else { &[] };
    for zone in zones {
        if let Some(text) = dns.rbl(servers, ip, zone).await {
            return Screen {
                client: false,
                blacklisted: Some(text),
                by_dns: true,
            };
        }
    }
    unlisted
}

/// A Return-Path domain refused by [`Dns::verify_domain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The DNS did not answer: a 4xx (guide.txt:3444-3448).
    pub temporary: bool,
    /// The reply text.
    pub text: String,
}

impl Dns {
    /// A resolver that logs its failures to `logger`.
    pub fn new(logger: Logger) -> Dns {
        Dns {
            resolvers: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            logger,
        }
    }

    fn resolvers(&self, servers: &[SocketAddr]) -> Result<Arc<Resolvers>, String> {
        let mut cached = self
            .resolvers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = cached.as_ref() {
            if r.servers == servers {
                return Ok(Arc::clone(r));
            }
        }
        let r = Arc::new(Resolvers::new(servers)?);
        *cached = Some(Arc::clone(&r));
        // New servers give new answers.
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(r)
    }

    fn cached(&self, key: &(Kind, String)) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        match cache.get(key) {
            Some((at, answer)) if at.elapsed() < CACHE_TIME => Some(answer.clone()),
            _ => None,
        }
    }

    fn remember(&self, key: (Kind, String), answer: &Answer) {
        if matches!(answer, Err(DnsError::Failed(_))) {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TIME);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), answer.clone()));
    }

    /// One query, through the cache. `name` is absolute (no search domains).
    async fn query(&self, servers: &[SocketAddr], kind: Kind, name: &str) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return Err(DnsError::NoSuchName);
        }
        let key = (kind, name.clone());
        if let Some(a) = self.cached(&key) {
            return a;
        }
        let all = match self.resolvers(servers) {
            Ok(r) => r,
            Err(e) => return Err(DnsError::Failed(e)),
        };
        let fqdn = format!("{name}.");
        let (r, wait) = match kind {
            Kind::A | Kind::Txt => (&all.rbl, RBL_TIMEOUT),
            _ => (&all.normal, QUERY_TIMEOUT),
        };
        let lookup = async {
            match kind {
                Kind::A => r
                    .ipv4_lookup(fqdn)
                    .await
                    .map(|l| l.iter().map(|a| a.0.to_string()).collect()),
                Kind::Ip => r
                    .lookup_ip(fqdn)
                    .await
                    .map(|l| l.iter().map(|a| a.to_string()).collect()),
                Kind::Mx => r.mx_lookup(fqdn).await.map(|l| {
                    l.iter()
                        .map(|m| {
                            let host = m.exchange().to_ascii();
                            format!("{} {}", m.preference(), host.trim_end_matches('.'))
                        })
                        .collect()
                }),
                Kind::Txt => r.txt_lookup(fqdn).await.map(|l| {
                    l.iter()
                        .map(|t| {
                            t.txt_data()
                                .iter()
                                .map(|s| String::from_utf8_lossy(s).into_owned())
                                .collect::<String>()
                        })
                        .collect()
                }),
                Kind::Ptr => match name.parse::<IpAddr>() {
                    Ok(ip) => ptr_query(&all.ptr, ip).await,
                    Err(_) => Err(ResolveError::from("not an address")),
                },
            }
            .map_err(|e| classify(&e))
        };
        // Two sends of `wait` each, and a little for the TCP try: a bound whatever the library does.
        let answer = match tokio::time::timeout(wait * 3, lookup).await {
            Ok(a) => a,
            Err(_) => Err(DnsError::Failed(format!("no answer for {name}"))),
        };
        self.note(&name, &answer);
        self.remember(key, &answer);
        answer
    }

    fn note(&self, name: &str, answer: &Answer) {
        if let Err(DnsError::Failed(e)) = answer {
            self.logger
                .log(Level::Problems, TAG, format_args!("{name}: {e}"));
        }
    }

    /// The PTR name of `ip`, if it has one (the first).
    pub async fn ptr(&self, servers: &[SocketAddr], ip: IpAddr) -> Option<String> {
        let names = self.query(servers, Kind::Ptr, &ip.to_string()).await.ok()?;
        names.into_iter().next()
    }

    /// Whether `name`'s A/AAAA records hold `ip` (the forward check of a PTR name).
    async fn has_address(&self, servers: &[SocketAddr], name: &str, ip: IpAddr) -> bool {
        match self.query(servers, Kind::Ip, name).await {
            Ok(ips) => ips
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .any(|a| a.to_canonical() == ip),
            Err(_) => false,
        }
    }

    /// Asks the RBL `zone` about `ip`: `Some(reply text)` when listed (guide.txt:3490-3498).
    /// A failed query means "not listed" (and is logged).
    pub async fn rbl(&self, servers: &[SocketAddr], ip: IpAddr, zone: &str) -> Option<String> {
        let name = rbl_name(ip, zone);
        let ips = self.query(servers, Kind::A, &name).await.ok()?;
        if !ips.iter().any(|a| is_listing(a)) {
            return None;
        }
        let why = match self.query(servers, Kind::Txt, &name).await {
            Ok(texts) => texts
                .first()
                .map(|t| format!(": {}", shown(t)))
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        Some(format!(
            "Your host [{}] is blacklisted by {zone}{why}",
            ip.to_canonical()
        ))
    }

    /// HELO name verification (guide.txt:11558-11568): a qualified name must exist in the DNS
    /// with an address or an MX record. Names without a dot and address literals are not
    /// looked up (guide.txt:25637).
    pub async fn verify_helo(&self, servers: &[SocketAddr], name: &str) -> Result<(), Refusal> {
        let name = name.trim_end_matches('.');
        if !name.contains('.') || name.starts_with('[') {
            return Ok(());
        }
        let failed = |e: String| Refusal {
            temporary: true,
            text: format!("cannot verify the HELO name now ({e})"),
        };
        let unknown = || Refusal {
            temporary: false,
            text: format!("the HELO name {} does not resolve", shown(name)),
        };
        match self.query(servers, Kind::Ip, name).await {
            Ok(ips) if !ips.is_empty() => return Ok(()),
            Ok(_) | Err(DnsError::NoRecords) => {}
            Err(DnsError::NoSuchName) => return Err(unknown()),
            Err(DnsError::Failed(e)) => return Err(failed(e)),
        }
        match self.query(servers, Kind::Mx, name).await {
            Ok(mx) if !mx.is_empty() => Ok(()),
            Err(DnsError::Failed(e)) => Err(failed(e)),
            _ => Err(unknown()),
        }
    }

    /// The DNS part of Return-Path verification (guide.txt:3416-3427): the domain must have MX or
    /// A records, its best MX must have an address, and that address (or the domain's A) must not
    /// be a Blacklisted IP Address.
    pub async fn verify_domain(
        &self,
        servers: &[SocketAddr],
        domain: &str,
        blacklisted: &crate::net::IpList,
    ) -> Result<(), Refusal> {
        let refuse = |temporary: bool, text: String| Refusal { temporary, text };
        let failed = |e: String| {
            refuse(
                true,
                format!("cannot verify the Return-Path domain now ({e})"),
            )
        };
        let mut mx: Vec<(u16, String)> = match self.query(servers, Kind::Mx, domain).await {
            Ok(list) => list
                .iter()
                .filter_map(|l| {
                    let (p, h) = l.split_once(' ')?;
                    Some((p.parse().ok()?, h.to_ascii_lowercase()))
                })
                .collect(),
            Err(DnsError::NoSuchName) => {
                return Err(refuse(
                    false,
                    format!("the Return-Path domain {domain} does not exist"),
                ))
            }
            Err(DnsError::NoRecords) => Vec::new(),
            Err(DnsError::Failed(e)) => return Err(failed(e)),
        };
        // RFC 7505 §4.2: a domain with a null MX sends no mail either.
        if mx.len() == 1 && mx[0].1.is_empty() {
            return Err(refuse(
                false,
                format!("the Return-Path domain {domain} takes no mail (null MX)"),
            ));
        }
        mx.sort_by_key(|(p, _)| *p);
        let (host, what) = match mx.first() {
            Some((_, h)) => (h.clone(), "its MX host"),
            None => (domain.to_string(), "it"),
        };
        let ips: Vec<IpAddr> = match self.query(servers, Kind::Ip, &host).await {
            Ok(list) => list.iter().filter_map(|a| a.parse().ok()).collect(),
            Err(DnsError::Failed(e)) => return Err(failed(e)),
            Err(_) => Vec::new(),
        };
        if ips.is_empty() {
            let text = if mx.is_empty() {
                format!("the Return-Path domain {domain} has no MX or A records")
            } else {
                format!("the MX host {host} of the Return-Path domain {domain} has no address")
            };
            return Err(refuse(false, text));
        }
        if let Some(ip) = ips.iter().find(|ip| blacklisted.contains(**ip)) {
            return Err(refuse(
                false,
                format!(
                    "the Return-Path domain {domain}: {what} is at a blacklisted address [{ip}]"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbl_names_reverse_the_address() {
        assert_eq!(
            rbl_name("192.0.2.99".parse().unwrap(), "rbl.test"),
            "99.2.0.192.rbl.test"
        );
        // RFC 5782 §2.4's example.
        assert_eq!(
            rbl_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"
        );
        assert_eq!(
            rbl_name("::ffff:127.0.0.2".parse().unwrap(), "z"),
            "2.0.0.127.z"
        );
    }

    #[test]
    fn listings_are_127_0_0_2_to_127_1_255_255() {
        assert!(!is_listing("127.0.0.1"));
        assert!(is_listing("127.0.0.2"));
        assert!(is_listing("127.1.255.255"));
        assert!(!is_listing("127.2.0.0"));
        assert!(!is_listing("10.0.0.2"));
        assert!(!is_listing("not an address"));
    }

    #[test]
    fn protection_tables_count_only_when_enabled() {
        let d = |text: &str| match crate::format::parse(text.as_bytes()) {
            Ok(Value::Dict(d)) => d,
            other => panic!("{other:?}"),
        };
        let p = Protection::from_dict(&d(
            "{UseRBL=Yes;RBLServers=(RBL.Test,\"bl.example\");BlacklistByDNSName=No;BlacklistedDNSNames=(\"*.dyn.example\");}",
        ))
        .unwrap();
        assert_eq!(p.rbl_servers, ["rbl.test", "bl.example"]);
        assert!(p.blacklisted_names.is_empty());
        let p = Protection::from_dict(&d(
            "{DetectClientsByDNSName=Yes;ClientDNSNames=\"*.lan.example, host.example\";}",
        ))
        .unwrap();
        assert_eq!(p.client_names, ["*.lan.example", "host.example"]);
        assert!(Protection::from_dict(&d("{UseRBL=Maybe;}")).is_err());
        assert!(Protection::from_dict(&d("{UseRBL=Yes;RBLServers=(\"a b\");}")).is_err());
        assert!(Protection::from_dict(&d("{UseRBL=Yes;RBLServers=(\"*.x\");}")).is_err());
    }

    #[test]
    fn txt_texts_are_cut_to_printable() {
        assert_eq!(shown("a\r\nb\u{7}c"), "abc");
        assert_eq!(shown(&"x".repeat(500)).len(), MAX_TXT);
    }
}
