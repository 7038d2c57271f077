//! The SMTP module, sending side: the delivery channel the Dequeuer calls for every recipient
//! routed to `Target::Smtp`.
//!
//! Standards: RFC 5321 (§5.1 MX lookup with the implicit MX, §4.5.2 dot-stuffing, §4.2 replies),
//! RFC 3207 STARTTLS, RFC 4954 AUTH (CRAM-MD5, PLAIN, LOGIN), RFC 1870 SIZE.
//! Guide: sending guide.txt:11322-11443 (Forward to with fail-over, Send AUTH, Channels), TLS
//! guide.txt:11452-11509, non-standard ports guide.txt:11955-11969.
//!
//! Where a message goes, from the Router's queue name (`Target::Smtp::host`):
//! - `[ip]`, `[ip:port]`, `[IPv6:…]`: straight to that address, even with Forward to set
//!   (guide.txt:11397-11399);
//! - `host.port.smtp`: the host's A/AAAA records at that port, no MX lookup (guide.txt:11963);
//! - any other domain: the `ForwardTo` hosts in order when set (guide.txt:11385-11392), else its MX
//!   records by preference, else its A/AAAA records (RFC 5321 §5.1).
//!
//! Replies: 2xx = Delivered; 5xx to MAIL/RCPT/DATA = Failed with the remote reply; 4xx and
//! connection trouble = Deferred. A connection failure or a 4xx/5xx greeting moves on to the next
//! address or host.
//!
//! TLS (guide.txt:11452-11509): `SendTLS` = `Opportunistic` uses STARTTLS when offered, accepts any
//! certificate and falls back to plain text if the handshake fails; `Required` (or a domain matching
//! `SendEncryptedTo`) refuses to send in clear and checks that the certificate names the domain or
//! the relay host (not the forwarder's, guide.txt:11498-11500); `Never` sends in clear.
//!
//! Security: everything read from the peer is untrusted: replies are read line by line with a
//! length and line-count cap, and never panic. Relay credentials are sent only over a connection
//! to a `ForwardTo` host.
//!
//! Implementation notes: the channel is blocking (called from the Dequeuer's worker threads); it
//! runs the async client on the server's tokio runtime with `Handle::block_on`. One idle
//! connection per queue is kept for `IdleTimeout` seconds and reused after RSET.
//!
//! A destination that takes no connection is suspended until the queue's retry time
//! ([`super::suspend`], guide.txt:11346-11351).
//!
//! Shutdown: [`Channel::stop`] ends every delivery where it waits (DNS, connect, a reply) with
//! `Outcome::Interrupted`: the recipient stays queued as it was, and a remote server that had
//! already taken the message before the cut gets it again after restart (at least once).
//!
//! DSN (RFC 3461 §5.2): to a server that advertises DSN, RET/ENVID go on MAIL FROM and
//! NOTIFY/ORCPT on RCPT TO, as the envelope keeps them.
//!
//! To a server that does not advertise DSN, a recipient with NOTIFY=SUCCESS that it takes is
//! `Outcome::Relayed`: the Dequeuer sends the sender a "relayed" report (RFC 3461 §5.2.2). To
//! one that does, it is `Outcome::PassedOn`: that server reports, so we do not (§5.2.1).
//!
//! todo: Channels/Host and "Add Channel after".

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioAsyncResolver;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use super::etrn::Holds;
use super::suspend::Suspensions;
use super::wildcard;
use crate::dialup::Link;
use crate::format::Dict;
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::{Channel, Job, JobDsn, Outcome, Ret, Target};
use crate::kernel::queue::Queue;
use crate::store::Store;

/// The log tag of the sending side.
const TAG: &str = "SMTP";
/// Longest reply line we read (RFC 5321 §4.5.3.1.5 says 512; some servers exceed it).
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 100;

/// When to use STARTTLS (guide.txt:11452-11509).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTls {
    /// Never: always plain text.
    Never,
    /// "Wherever possible": STARTTLS when offered, any certificate, plain text on failure.
    Opportunistic,
    /// Always: STARTTLS or no delivery, with the certificate's name checked.
    Required,
}

/// The sending settings of the SMTP module (see [`setting_decls`]).
#[derive(Debug, Clone)]
pub struct SendSettings {
    /// `ForwardTo`: relay hosts (`host` or `host:port`) tried in order; empty = send directly.
    pub forward_to: Vec<String>,
    /// `RelayUser` / `RelayPassword`: Send AUTH to the relay.
    pub relay_auth: Option<(String, String)>,
    /// `SendTLS`.
    pub tls: SendTls,
    /// `SendEncryptedTo`: domains (with `*`) that always need TLS with a checked certificate.
    pub encrypted_to: Vec<String>,
    /// `DNSServers`: empty = the system's resolv.conf.
    pub dns_servers: Vec<SocketAddr>,
    /// `SendingChannels`: most simultaneous outgoing transactions.
    pub channels: usize,
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// `ReplyTimeout`: for each reply, and for the DATA transfer.
    pub reply_timeout: Duration,
    /// `IdleTimeout`: how long an idle connection is kept for reuse (0 = none).
    pub idle_timeout: Duration,
}

impl Default for SendSettings {
    fn default() -> SendSettings {
        SendSettings {
            forward_to: Vec::new(),
            relay_auth: None,
            tls: SendTls::Opportunistic,
            encrypted_to: Vec::new(),
            dns_servers: Vec::new(),
            channels: 10,
            connect_timeout: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The sending settings' declarations, appended to the module's (guide.txt:11328-11339).
pub fn setting_decls() -> Vec<crate::store::settings::SettingDecl> {
    let s = |key, default, doc| crate::store::settings::SettingDecl { key, default, doc };
    vec![
        s("ForwardTo", "", "Forward to: relay hosts (host or host:port, comma-separated, tried in order); empty = Send Directly to Recipients (guide.txt:11372-11399)"),
        s("RelayUser", "", "Send AUTH name for the relay (guide.txt:11401-11408)"),
        s("RelayPassword", "", "Send AUTH password for the relay"),
        s("SendTLS", "Opportunistic", "Send Encrypted: Never, Opportunistic (wherever possible, any certificate) or Required (certificate name checked) (guide.txt:11452-11509)"),
        s("SendEncryptedTo", "", "Send Encrypted (SSL/TLS) To Domains: comma-separated, * wildcards; never sent in clear (guide.txt:11457-11469)"),
        s("DNSServers", "", "DNS servers for MX and A lookups (ip or ip:port, comma-separated); empty = /etc/resolv.conf"),
        s("SendingChannels", "10", "Channels: most simultaneous outgoing SMTP transactions (guide.txt:11341-11343)"),
        s("ConnectTimeout", "30", "seconds to wait for a TCP connection and the greeting"),
        s("ReplyTimeout", "300", "seconds to wait for each reply of the remote server (RFC 5321 §4.5.3.2)"),
        s("IdleTimeout", "30", "seconds an idle outgoing connection is kept for the next message to the same host; 0 = none"),
    ]
}

/// Reads the sending settings from the module's effective settings.
pub fn send_settings_from(eff: &Dict) -> Result<SendSettings, String> {
    let text = |k: &str| crate::store::settings::text(eff, k);
    let list = |k: &str| crate::store::settings::list(eff, k);
    let d = SendSettings::default();
    let secs = |k: &str, def: Duration| -> Result<Duration, String> {
        let t = text(k);
        if t.is_empty() {
            return Ok(def);
        }
        t.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{k}: {t:?} is not a number of seconds"))
    };
    let tls = match text("SendTLS").to_ascii_lowercase().as_str() {
        "" | "opportunistic" => SendTls::Opportunistic,
        "never" | "no" => SendTls::Never,
        "required" => SendTls::Required,
        other => {
            return Err(format!(
                "SendTLS: {other:?} is not Never, Opportunistic or Required"
            ))
        }
    };
    let mut dns_servers = Vec::new();
    for s in list("DNSServers") {
        dns_servers.push(
            host_port(&s, 53)
                .and_then(|(h, p)| h.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, p)))
                .ok_or_else(|| format!("DNSServers: {s:?} is not ip or ip:port"))?,
        );
    }
    for h in list("ForwardTo") {
        host_port(&h, 25).ok_or_else(|| format!("ForwardTo: {h:?} is not host or host:port"))?;
    }
    let user = text("RelayUser");
    let channels = match text("SendingChannels").as_str() {
        "" => d.channels,
        t => t
            .parse::<usize>()
            .map_err(|_| format!("SendingChannels: {t:?} is not a number"))?
            .max(1),
    };
    Ok(SendSettings {
        forward_to: list("ForwardTo"),
        relay_auth: (!user.is_empty()).then(|| (user, text("RelayPassword"))),
        tls,
        encrypted_to: list("SendEncryptedTo"),
        dns_servers,
        channels,
        connect_timeout: secs("ConnectTimeout", d.connect_timeout)?.max(Duration::from_secs(1)),
        reply_timeout: secs("ReplyTimeout", d.reply_timeout)?.max(Duration::from_secs(1)),
        idle_timeout: secs("IdleTimeout", d.idle_timeout)?,
    })
}

/// `host`, `host:port`, `[v6]:port`, `v4`, `v6` → (host, port).
pub(super) fn host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip.to_string(), default_port));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    let (h, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => (s, default_port),
    };
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then(|| (h.to_ascii_lowercase(), port))
}

/// Where one queue's mail goes, before DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An address literal (`[ip]`, `[ip:port]`).
    Literal(SocketAddr),
    /// Hosts resolved by A/AAAA only, in order (`host.port.smtp`, or the `ForwardTo` relays).
    Hosts {
        /// (host, port) pairs.
        hosts: Vec<(String, u16)>,
        /// The relays of `ForwardTo` (AUTH is sent to them; their certificate name is not checked).
        relay: bool,
    },
    /// A mail domain: its MX records, or its A/AAAA records when it has none.
    Mx(String),
}

impl Route {
    /// What a suspension applies to: the domain, the relay hosts, or the address.
    pub fn destination(&self) -> String {
        match self {
            Route::Literal(a) => format!("[{a}]"),
            Route::Hosts { hosts, .. } => hosts
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(","),
            Route::Mx(domain) => domain.clone(),
        }
    }
}

/// Whether a delivery got a connection (for per-destination suspension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// A server took the connection (whatever it said to the message).
    Yes,
    /// Every address was tried and none took a connection.
    No,
    /// No connection was tried (a DNS answer or a setting decided first).
    NotTried,
}

/// The route for a queue name (`Target::Smtp::host`).
pub fn route_of(queue: &str, s: &SendSettings) -> Result<Route, String> {
    let q = queue.trim();
    if let Some(inner) = q.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let inner = inner
            .strip_prefix("IPv6:")
            .or_else(|| inner.strip_prefix("ipv6:"))
            .unwrap_or(inner);
        if let Ok(ip) = inner.parse::<IpAddr>() {
            return Ok(Route::Literal(SocketAddr::new(ip, 25)));
        }
        if let Ok(sa) = inner.parse::<SocketAddr>() {
            return Ok(Route::Literal(sa));
        }
        // `[1.2.3.4:26]` is v4 with a port; SocketAddr parses that; anything else is bad.
        return Err(format!("bad address literal {q}"));
    }
    let lower = q.to_ascii_lowercase();
    if let Some(rest) = lower.strip_suffix(".smtp") {
        if let Some((host, port)) = rest.rsplit_once('.') {
            if let Ok(port) = port.parse::<u16>() {
                if port != 0 && !host.is_empty() {
                    return Ok(Route::Hosts {
                        hosts: vec![(host.to_string(), port)],
                        relay: false,
                    });
                }
            }
        }
    }
    if !s.forward_to.is_empty() {
        return Ok(Route::Hosts {
            hosts: s
                .forward_to
                .iter()
                .filter_map(|h| host_port(h, 25))
                .collect(),
            relay: true,
        });
    }
    if lower.is_empty() {
        return Err("empty domain".into());
    }
    Ok(Route::Mx(lower))
}

/// One server to try: its name (for TLS) and its address.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) name: String,
    pub(super) addr: SocketAddr,
    pub(super) relay: bool,
}

/// A blocking `Channel` for `Target::Smtp` (see the module header).
pub struct SmtpChannel {
    handle: Handle,
    helo: String,
    settings: Arc<dyn Fn() -> SendSettings + Send + Sync>,
    logger: Logger,
    resolver: Mutex<Option<(Vec<SocketAddr>, TokioAsyncResolver)>>,
    pool: Mutex<HashMap<String, (Instant, Conn)>>,
    active: Mutex<usize>,
    freed: Condvar,
    /// The dial-up link: no connection is made while the TCP Activity Schedule keeps it closed.
    link: Option<Arc<Link>>,
    /// Hold Mail for Domains, and the connections ATRN turned around.
    holds: Option<Arc<Holds>>,
    /// Destinations suspended after a failed connection (with the queue, see `suspend`).
    suspensions: Option<Suspensions>,
    /// Set by [`Channel::stop`]: every delivery in progress or to come ends at once.
    stopping: watch::Sender<bool>,
}

impl SmtpChannel {
    /// A channel that runs on `handle`, says `EHLO helo`, and reads its settings from `settings`
    /// before every delivery (so a change applies to the next message).
    pub fn new(
        handle: Handle,
        helo: String,
        settings: Arc<dyn Fn() -> SendSettings + Send + Sync>,
        logger: Logger,
    ) -> SmtpChannel {
        SmtpChannel {
            handle,
            helo,
            settings,
            logger,
            resolver: Mutex::new(None),
            pool: Mutex::new(HashMap::new()),
            active: Mutex::new(0),
            freed: Condvar::new(),
            link: None,
            holds: None,
            suspensions: None,
            stopping: watch::channel(false).0,
        }
    }

    /// The same channel, gated by the TCP Activity Schedule of `link` (guide.txt:5253-5303).
    pub fn with_link(self, link: Arc<Link>) -> SmtpChannel {
        SmtpChannel {
            link: Some(link),
            ..self
        }
    }

    /// The same channel, holding the queues of Hold Mail for Domains until ETRN or ATRN
    /// releases them, and delivering over the connections ATRN turned around.
    pub fn with_holds(self, holds: Arc<Holds>) -> SmtpChannel {
        SmtpChannel {
            holds: Some(holds),
            ..self
        }
    }

    /// The same channel, suspending a destination after a failed connection until the queue's
    /// retry time, and releasing its messages from `queue` when it answers again.
    pub fn with_queue(self, queue: Arc<Queue>) -> SmtpChannel {
        SmtpChannel {
            suspensions: Some(Suspensions::new(queue)),
            ..self
        }
    }

    /// The channel gatehoused runs: `EHLO` with the main domain, settings read from
    /// `Settings/SMTP.settings` over the declared defaults before every delivery.
    pub fn from_store(handle: Handle, store: Store, logger: Logger) -> SmtpChannel {
        let helo = store.main_domain();
        let log = logger.clone();
        let settings = move || {
            let eff = super::stored_settings(&store);
            send_settings_from(&eff).unwrap_or_else(|e| {
                log.log(
                    Level::Failures,
                    TAG,
                    format_args!(
                        "the SMTP sending settings are not usable ({e}); using the defaults"
                    ),
                );
                SendSettings::default()
            })
        };
        SmtpChannel::new(handle, helo, Arc::new(settings), logger)
    }

    fn resolver(&self, servers: &[SocketAddr]) -> Result<TokioAsyncResolver, String> {
        let mut cached = self.resolver.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, r)) = cached.as_ref() {
            if s == servers {
                return Ok(r.clone());
            }
        }
        let _guard = self.handle.enter();
        let r = if servers.is_empty() {
            TokioAsyncResolver::tokio_from_system_conf()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?
        } else {
            let mut config = ResolverConfig::new();
            for &addr in servers {
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            let mut opts = ResolverOpts::default();
            opts.timeout = Duration::from_secs(5);
            opts.attempts = 2;
            TokioAsyncResolver::tokio(config, opts)
        };
        *cached = Some((servers.to_vec(), r.clone()));
        Ok(r)
    }

    /// Runs `work` unless the server stops first (`None`): a DNS lookup, a connection or a
    /// transaction is dropped where it waits, and its recipient stays queued as it was.
    async fn unless_stopped<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        let mut stop = self.stopping.subscribe();
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopping| *stopping) => None,
            done = work => Some(done),
        }
    }

    /// Waits for a free sending channel (`SendingChannels`).
    fn acquire(&self, limit: usize) {
        let mut n = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        while *n >= limit {
            n = self.freed.wait(n).unwrap_or_else(PoisonError::into_inner);
        }
        *n += 1;
    }

    fn release(&self) {
        let mut n = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        self.freed.notify_one();
    }

    fn take_pooled(&self, queue: &str, idle: Duration) -> Option<Conn> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let (since, conn) = pool.remove(queue)?;
        (since.elapsed() < idle).then_some(conn)
    }

    fn put_pooled(&self, queue: &str, conn: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        // Connections idle too long are dropped (closed without QUIT, which RFC 5321 tolerates).
        pool.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(600));
        pool.insert(queue.to_string(), (Instant::now(), conn));
    }

    async fn candidates(&self, route: &Route, s: &SendSettings) -> Result<Vec<Candidate>, Outcome> {
        let resolve_host = |r: TokioAsyncResolver, host: String, port: u16| async move {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Ok(vec![SocketAddr::new(ip, port)]);
            }
            match r.lookup_ip(format!("{host}.")).await {
                Ok(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
                Err(e) => Err(e),
            }
        };
        match route {
            Route::Literal(addr) => Ok(vec![Candidate {
                name: addr.ip().to_string(),
                addr: *addr,
                relay: false,
            }]),
            Route::Hosts { hosts, relay } => {
                let r = self.resolver(&s.dns_servers).map_err(Outcome::Deferred)?;
                let mut out = Vec::new();
                let mut last = String::new();
                for (h, port) in hosts {
                    match resolve_host(r.clone(), h.clone(), *port).await {
                        Ok(addrs) => out.extend(addrs.into_iter().map(|addr| Candidate {
                            name: h.clone(),
                            addr,
                            relay: *relay,
                        })),
                        Err(e) => last = format!("cannot resolve {h}: {e}"),
                    }
                }
                if out.is_empty() {
                    return Err(Outcome::Deferred(last));
                }
                Ok(out)
            }
            Route::Mx(domain) => {
                let r = self.resolver(&s.dns_servers).map_err(Outcome::Deferred)?;
                let mut exchanges: Vec<(u16, String)> = match r
                    .mx_lookup(format!("{domain}."))
                    .await
                {
                    Ok(mx) => mx
                        .iter()
                        .map(|m| {
                            let n = m.exchange().to_ascii();
                            (m.preference(), n.trim_end_matches('.').to_ascii_lowercase())
                        })
                        .collect(),
                    Err(e) => match e.kind() {
                        // NXDOMAIN: the domain does not exist; mail to it can never go.
                        ResolveErrorKind::NoRecordsFound {
                            response_code: ResponseCode::NXDomain,
                            ..
                        } => {
                            return Err(Outcome::Failed(format!(
                                "the domain {domain} does not exist"
                            )))
                        }
                        // No MX records (NOERROR): the implicit MX. SERVFAIL and the like are
                        // no answer at all: try later (RFC 5321 §5.1), not the A record.
                        ResolveErrorKind::NoRecordsFound {
                            response_code: ResponseCode::NoError,
                            ..
                        } => Vec::new(),
                        _ => return Err(Outcome::Deferred(format!("MX lookup for {domain}: {e}"))),
                    },
                };
                // RFC 5321 §5.1: a null MX ("." ) means the domain takes no mail.
                if exchanges.len() == 1 && exchanges[0].1.is_empty() {
                    return Err(Outcome::Failed(format!(
                        "{domain} accepts no mail (null MX)"
                    )));
                }
                exchanges.sort_by_key(|(p, _)| *p);
                if exchanges.is_empty() {
                    // RFC 5321 §5.1: no MX records, the domain itself is the implicit MX.
                    exchanges.push((0, domain.clone()));
                }
                let mut out = Vec::new();
                let mut last = String::new();
                for (_, h) in exchanges {
                    match resolve_host(r.clone(), h.clone(), 25).await {
                        Ok(addrs) => out.extend(addrs.into_iter().map(|addr| Candidate {
                            name: h.clone(),
                            addr,
                            relay: false,
                        })),
                        Err(e) => last = format!("cannot resolve {h}: {e}"),
                    }
                }
                if out.is_empty() {
                    return Err(Outcome::Deferred(last));
                }
                Ok(out)
            }
        }
    }

    /// Delivers one recipient over `route`; also says whether a connection was made.
    async fn deliver_async(
        &self,
        job: &Job<'_>,
        queue: &str,
        route: Route,
        address: &str,
        s: &SendSettings,
    ) -> (Outcome, Reached) {
        let domain = address
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let tls = if s
            .encrypted_to
            .iter()
            .any(|p| wildcard(&p.to_ascii_lowercase(), &domain))
        {
            SendTls::Required
        } else {
            s.tls
        };
        // A pooled connection is reused only for the same route and TLS policy, so a settings
        // change (a new relay, TLS now required) never rides on an old connection.
        let key = format!("{queue} {route:?} {tls:?}");
        if let Some(mut conn) = self.take_pooled(&key, s.idle_timeout) {
            if conn.rset(s.reply_timeout).await.is_ok() {
                let out = transaction(&mut conn, job, address, s).await;
                self.finish(&key, conn, &out, s).await;
                return (out, Reached::Yes);
            }
        }
        let candidates = match self.candidates(&route, s).await {
            Ok(c) => c,
            Err(out) => return (out, Reached::NotTried),
        };
        let mut last = String::from("no mail server to try");
        for c in candidates {
            let auth = if c.relay { s.relay_auth.as_ref() } else { None };
            match open(&c, &self.helo, &domain, tls, auth, s).await {
                Ok(mut conn) => {
                    self.logger.log(
                        Level::LowLevel,
                        TAG,
                        format_args!(
                            "connected to {} [{}]{}",
                            c.name,
                            c.addr,
                            if conn.tls { " with TLS" } else { "" }
                        ),
                    );
                    let out = transaction(&mut conn, job, address, s).await;
                    self.finish(&key, conn, &out, s).await;
                    return (out, Reached::Yes);
                }
                Err(Open::Fatal(e)) => return (Outcome::Failed(e), Reached::NotTried),
                Err(Open::Next(e)) => {
                    self.logger.log(
                        Level::Problems,
                        TAG,
                        format_args!("{} [{}]: {e}", c.name, c.addr),
                    );
                    last = format!("{} [{}]: {e}", c.name, c.addr);
                }
            }
        }
        (Outcome::Deferred(last), Reached::No)
    }

    /// Keeps a healthy connection for the next message to the same queue, or says QUIT.
    async fn finish(&self, queue: &str, mut conn: Conn, out: &Outcome, s: &SendSettings) {
        if !conn.broken && !s.idle_timeout.is_zero() && !matches!(out, Outcome::Deferred(_)) {
            self.put_pooled(queue, conn);
        } else if !conn.broken {
            conn.quit(s.reply_timeout).await;
        }
    }
}

impl Channel for SmtpChannel {
    fn stop(&self) {
        self.stopping.send_replace(true);
    }

    fn deliver(&self, job: &Job<'_>) -> Outcome {
        let Target::Smtp { host, address } = job.target else {
            return Outcome::Failed("not an SMTP target".into());
        };
        // Holds name the domain of the recipient as submitted (the Router may rewrite it).
        let domain = job.recipient.rsplit_once('@').map_or("", |(_, d)| d);
        if let Some(holds) = &self.holds {
            // RFC 2645: the customer is connected and waits for its mail on this connection.
            if let Some(conn) = holds.attached(host) {
                let s = (self.settings)();
                let sent = self.handle.block_on(self.unless_stopped(async {
                    let mut conn = conn.lock().await;
                    if conn.broken {
                        let lost = Outcome::Deferred("the ATRN connection was lost".into());
                        return (lost, conn.delivered);
                    }
                    let out = transaction(&mut conn, job, address, &s).await;
                    if taken(&out) {
                        conn.delivered += 1;
                    }
                    (out, conn.delivered)
                }));
                let Some((out, delivered)) = sent else {
                    // Cut mid-transaction: the connection can carry nothing more.
                    if let Ok(mut c) = conn.try_lock() {
                        c.broken = true;
                    }
                    return Outcome::Interrupted;
                };
                // The customer's session so far: its last result and the messages it took.
                if let Some(link) = &self.link {
                    link.note_remote(TAG, domain, result_text(&out), delivered);
                }
                self.logger.log(
                    Level::Major,
                    TAG,
                    format_args!(
                        "message {} to <{address}> via {host} (ATRN): {}",
                        job.id,
                        describe(&out)
                    ),
                );
                return out;
            }
            // guide.txt:11742-11746, 11783-11786: no connection is tried until a release.
            if holds.is_held(host, domain) {
                return Outcome::Deferred(format!(
                    "held for {host} until ETRN or ATRN (Hold Mail for Domains)"
                ));
            }
        }
        if let Some(link) = self.link.as_ref().filter(|l| !l.is_open()) {
            link.hold();
            let until = link.next_open().map_or_else(
                || "further notice".to_string(),
                |t| t.format("%a %H:%M").to_string(),
            );
            return Outcome::Deferred(format!(
                "the TCP Activity Schedule keeps the link closed until {until}"
            ));
        }
        let s = (self.settings)();
        let route = match route_of(host, &s) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        let dest = route.destination();
        if let Some(text) = self.suspensions.as_ref().and_then(|x| x.check(&dest, host)) {
            return Outcome::Deferred(text);
        }
        self.acquire(s.channels);
        let done = self
            .handle
            .block_on(self.unless_stopped(self.deliver_async(job, host, route, address, &s)));
        self.release();
        // Stopping: neither a failure of the destination nor an attempt.
        let Some((mut out, reached)) = done else {
            return Outcome::Interrupted;
        };
        if let Some(x) = &self.suspensions {
            match (reached, &out) {
                (Reached::No, Outcome::Deferred(text)) => {
                    let note = x.failed(&dest, host, text);
                    self.logger
                        .log(Level::Problems, TAG, format_args!("{note}: {text}"));
                    out = Outcome::Deferred(format!("{text}; {note}"));
                }
                (Reached::Yes, _) => {
                    let n = x.connected(&dest);
                    if n > 0 {
                        self.logger.log(
                            Level::Major,
                            TAG,
                            format_args!("{dest} answers again: {n} waiting message(s) released"),
                        );
                    }
                }
                _ => {}
            }
        }
        if let (Some(holds), Outcome::Deferred(_)) = (&self.holds, &out) {
            // The released host is unreachable again: its mail waits for the next wake-up.
            holds.end_release(host, domain);
        }
        if let Some(link) = &self.link {
            let delivered = usize::from(taken(&out));
            link.note_remote(TAG, host, result_text(&out), delivered);
        }
        let level = if taken(&out) {
            Level::Major
        } else {
            Level::Failures
        };
        self.logger.log(
            level,
            TAG,
            format_args!(
                "message {} to <{address}> via {host}: {}",
                job.id,
                describe(&out)
            ),
        );
        out
    }
}

/// Whether the remote server took the message.
fn taken(o: &Outcome) -> bool {
    matches!(o, Outcome::Delivered | Outcome::Relayed | Outcome::PassedOn)
}

/// The `Result` noted in `RemoteServers`.
fn result_text(o: &Outcome) -> String {
    if taken(o) {
        "OK".into()
    } else {
        describe(o)
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Delivered => "delivered".into(),
        Outcome::Failed(e) => format!("failed: {e}"),
        Outcome::Deferred(e) => format!("deferred: {e}"),
        Outcome::Relayed => "relayed (the next hop takes no DSN request)".into(),
        Outcome::PassedOn => "relayed (the next hop reports on it)".into(),
        Outcome::Interrupted => "interrupted by the shutdown".into(),
    }
}

/// A byte stream, plain or TLS.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One remote SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line (after the code and separator).
    pub lines: Vec<String>,
}

impl Reply {
    /// `code text` on one line, for error reports.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
}

/// Parses one reply line: `ddd[ -]text`; returns (code, last line?, text).
pub fn reply_line(line: &[u8]) -> Option<(u16, bool, String)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..600).contains(&code) {
        return None;
    }
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return None,
    };
    Some((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// The server's EHLO extensions that matter to us.
#[derive(Debug, Default, Clone)]
struct Ext {
    starttls: bool,
    size: bool,
    dsn: bool,
    auth: Vec<String>,
}

/// An open SMTP connection past EHLO.
pub(super) struct Conn {
    io: BufReader<Box<dyn Io>>,
    ext: Ext,
    /// The stream is encrypted.
    pub(super) tls: bool,
    /// A read or write failed: the connection is unusable.
    pub(super) broken: bool,
    /// Messages delivered over it (noted for an ATRN connection, `RemoteServers`).
    delivered: usize,
}

/// Why a connection attempt did not get to MAIL.
pub(super) enum Open {
    /// Try the next address.
    Next(String),
    /// Stop: no address will do (e.g. TLS required and refused).
    Fatal(String),
}

impl Conn {
    /// A connection over a stream that is already open (ATRN turned it around, RFC 2645 §4);
    /// the greeting is still to be read.
    pub(super) fn over(stream: Box<dyn Io>) -> Conn {
        Conn {
            io: BufReader::new(stream),
            ext: Ext::default(),
            tls: false,
            broken: false,
            delivered: 0,
        }
    }

    /// The stream, with whatever was read ahead still in front of it (for the ATRN reversal).
    pub(super) fn into_stream(self) -> super::etrn::Prefixed<Box<dyn Io>> {
        let rest = self.io.buffer().to_vec();
        super::etrn::Prefixed::new(rest, self.io.into_inner())
    }

    pub(super) async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, String> {
        let read = async {
            let mut lines = Vec::new();
            loop {
                let mut buf = Vec::new();
                let n = (&mut self.io)
                    .take(MAX_REPLY_LINE as u64)
                    .read_until(b'\n', &mut buf)
                    .await
                    .map_err(|e| format!("read error: {e}"))?;
                if n == 0 {
                    return Err("connection closed by the server".to_string());
                }
                if !buf.ends_with(b"\n") {
                    return Err("reply line too long".to_string());
                }
                let (code, last, text) = reply_line(&buf).ok_or_else(|| {
                    format!("bad reply: {}", String::from_utf8_lossy(&buf).trim_end())
                })?;
                lines.push(text);
                if last {
                    return Ok(Reply { code, lines });
                }
                if lines.len() >= MAX_REPLY_LINES {
                    return Err("reply has too many lines".to_string());
                }
            }
        };
        let r = tokio::time::timeout(timeout, read)
            .await
            .unwrap_or_else(|_| Err("timed out waiting for a reply".to_string()));
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let r = self.io.get_mut().write_all(bytes).await;
        let r = match r {
            Ok(()) => self.io.get_mut().flush().await,
            Err(e) => Err(e),
        };
        r.map_err(|e| {
            self.broken = true;
            format!("write error: {e}")
        })
    }

    pub(super) async fn cmd(&mut self, line: &str, timeout: Duration) -> Result<Reply, String> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(timeout).await
    }

    pub(super) async fn ehlo(&mut self, helo: &str, timeout: Duration) -> Result<Reply, String> {
        let r = self.cmd(&format!("EHLO {helo}"), timeout).await?;
        if r.code / 100 == 2 {
            let mut ext = Ext::default();
            for l in r.lines.iter().skip(1) {
                let mut words = l.split_ascii_whitespace();
                match words.next().map(str::to_ascii_uppercase).as_deref() {
                    Some("STARTTLS") => ext.starttls = true,
                    Some("SIZE") => ext.size = true,
                    Some("DSN") => ext.dsn = true,
                    Some("AUTH") => ext.auth = words.map(str::to_ascii_uppercase).collect(),
                    _ => {}
                }
            }
            self.ext = ext;
            return Ok(r);
        }
        // RFC 5321 §3.2: an old server answers EHLO with 500/502; fall back to HELO.
        self.ext = Ext::default();
        self.cmd(&format!("HELO {helo}"), timeout).await
    }

    async fn rset(&mut self, timeout: Duration) -> Result<(), String> {
        let r = self.cmd("RSET", timeout).await?;
        if r.code / 100 == 2 {
            Ok(())
        } else {
            Err(r.text())
        }
    }

    pub(super) async fn quit(&mut self, timeout: Duration) {
        let _ = self.cmd("QUIT", timeout.min(Duration::from_secs(10))).await;
    }
}

/// Connects to one candidate: greeting, EHLO, STARTTLS, AUTH.
pub(super) async fn open(
    c: &Candidate,
    helo: &str,
    domain: &str,
    tls: SendTls,
    auth: Option<&(String, String)>,
    s: &SendSettings,
) -> Result<Conn, Open> {
    let tcp = tokio::time::timeout(s.connect_timeout, TcpStream::connect(c.addr))
        .await
        .map_err(|_| Open::Next("connection timed out".into()))?
        .map_err(|e| Open::Next(format!("cannot connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn {
        io: BufReader::new(Box::new(tcp) as Box<dyn Io>),
        ext: Ext::default(),
        tls: false,
        broken: false,
        delivered: 0,
    };
    let greeting = conn
        .read_reply(s.connect_timeout)
        .await
        .map_err(Open::Next)?;
    if greeting.code / 100 != 2 {
        conn.quit(s.reply_timeout).await;
        return Err(Open::Next(format!("greeting: {}", greeting.text())));
    }
    let r = conn.ehlo(helo, s.reply_timeout).await.map_err(Open::Next)?;
    if r.code / 100 != 2 {
        return Err(Open::Next(format!("HELO: {}", r.text())));
    }
    if tls != SendTls::Never && conn.ext.starttls {
        let r = conn
            .cmd("STARTTLS", s.reply_timeout)
            .await
            .map_err(Open::Next)?;
        if r.code == 220 {
            // Only the relay's name is exempt from the check (guide.txt:11498-11500).
            let names = if tls == SendTls::Required && !c.relay {
                Some(vec![domain.to_string(), c.name.clone()])
            } else {
                None
            };
            conn = starttls(conn, &c.name, names).await.map_err(|e| {
                if tls == SendTls::Required {
                    Open::Fatal(format!("TLS: {e}"))
                } else {
                    // The stream is unusable after a failed handshake; the next try reconnects.
                    Open::Next(format!("TLS: {e}"))
                }
            })?;
            let r = conn.ehlo(helo, s.reply_timeout).await.map_err(Open::Next)?;
            if r.code / 100 != 2 {
                return Err(Open::Next(format!("EHLO after STARTTLS: {}", r.text())));
            }
        } else if tls == SendTls::Required {
            return Err(Open::Fatal(format!("STARTTLS refused: {}", r.text())));
        }
    } else if tls == SendTls::Required {
        conn.quit(s.reply_timeout).await;
        return Err(Open::Fatal(format!(
            "{} does not offer STARTTLS and TLS is required",
            c.name
        )));
    }
    if let Some((user, password)) = auth {
        authenticate(&mut conn, user, password, s.reply_timeout)
            .await
            .map_err(Open::Next)?;
    }
    Ok(conn)
}

/// A TLS client for outgoing connections (SMTP STARTTLS, RPOP STLS) and the name to send as SNI:
/// with `check`, the certificate must name one of them; without, any certificate is accepted
/// (see [`NameVerifier`]).
pub(crate) fn tls_connector(
    name: &str,
    check: Option<Vec<String>>,
) -> Result<(TlsConnector, ServerName<'static>), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(NameVerifier {
        provider: provider.clone(),
        names: check,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let sni = match name.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?,
    };
    Ok((TlsConnector::from(Arc::new(config)), sni))
}

async fn starttls(conn: Conn, name: &str, check: Option<Vec<String>>) -> Result<Conn, String> {
    let (connector, sni) = tls_connector(name, check)?;
    // RFC 3207 §4.2: anything buffered before the handshake is discarded.
    let io = conn.io.into_inner();
    let tls = connector
        .connect(sni, io)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Conn {
        io: BufReader::new(Box::new(tls) as Box<dyn Io>),
        ext: Ext::default(),
        tls: true,
        broken: false,
        delivered: 0,
    })
}

/// The certificate check of guide.txt:11494-11507: with `names`, the certificate must be valid
/// for one of them (its chain is not checked: the guide checks the name only); without, any
/// certificate is accepted. Handshake signatures are always verified.
#[derive(Debug)]
struct NameVerifier {
    provider: Arc<CryptoProvider>,
    names: Option<Vec<String>>,
}

impl ServerCertVerifier for NameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(names) = &self.names else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::General(format!("bad certificate: {e}")))?;
        let ok = names.iter().any(|n| {
            ServerName::try_from(n.as_str())
                .is_ok_and(|sn| cert.verify_is_valid_for_subject_name(&sn).is_ok())
        });
        if ok {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the certificate does not name {}",
                names.join(" or ")
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// AUTH to the relay: CRAM-MD5, then PLAIN, then LOGIN, as offered (guide.txt:11665-11666).
async fn authenticate(
    conn: &mut Conn,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<(), String> {
    let has = |m: &str| conn.ext.auth.iter().any(|a| a == m);
    let r = if has("CRAM-MD5") {
        let c = conn.cmd("AUTH CRAM-MD5", timeout).await?;
        if c.code != 334 {
            return Err(format!("AUTH: {}", c.text()));
        }
        let challenge = B64
            .decode(c.lines.first().map_or("", |l| l.trim()))
            .map_err(|_| "AUTH: bad CRAM-MD5 challenge".to_string())?;
        let digest = cram_md5(password.as_bytes(), &challenge);
        conn.cmd(&B64.encode(format!("{user} {digest}")), timeout)
            .await?
    } else if has("PLAIN") {
        let token = B64.encode(format!("\0{user}\0{password}"));
        conn.cmd(&format!("AUTH PLAIN {token}"), timeout).await?
    } else if has("LOGIN") {
        let c = conn.cmd("AUTH LOGIN", timeout).await?;
        if c.code != 334 {
            return Err(format!("AUTH: {}", c.text()));
        }
        let c = conn.cmd(&B64.encode(user), timeout).await?;
        if c.code != 334 {
            return Err(format!("AUTH: {}", c.text()));
        }
        conn.cmd(&B64.encode(password), timeout).await?
    } else {
        return Err("the relay offers no AUTH method we know".into());
    };
    if r.code == 235 {
        Ok(())
    } else {
        Err(format!("AUTH: {}", r.text()))
    }
}

/// RFC 2195: the hex HMAC-MD5 of the challenge keyed with the password.
fn cram_md5(key: &[u8], challenge: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<md5::Md5>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(challenge);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The message as DATA content: dot-stuffed, CRLF line ends, ending with `CRLF.CRLF`
/// (RFC 5321 §4.5.2).
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// MAIL, RCPT, DATA on an open connection; maps the replies to an outcome.
pub(super) async fn transaction(
    conn: &mut Conn,
    job: &Job<'_>,
    address: &str,
    s: &SendSettings,
) -> Outcome {
    let t = s.reply_timeout;
    let step = |r: Result<Reply, String>, what: &str| -> Result<(), Outcome> {
        match r {
            Ok(r) if r.code / 100 == 2 || r.code / 100 == 3 => Ok(()),
            Ok(r) if r.code / 100 == 5 => Err(Outcome::Failed(format!("{what}: {}", r.text()))),
            Ok(r) => Err(Outcome::Deferred(format!("{what}: {}", r.text()))),
            Err(e) => Err(Outcome::Deferred(format!("{what}: {e}"))),
        }
    };
    let data = dot_stuff(job.message);
    let mut mail = format!("MAIL FROM:<{}>", job.return_path);
    if conn.ext.size {
        mail.push_str(&format!(" SIZE={}", job.message.len()));
    }
    let mut rcpt = format!("RCPT TO:<{address}>");
    // RFC 3461 §5.2.1: to a server that takes DSN parameters, they go on as they came.
    if conn.ext.dsn {
        let (m, r) = dsn_params(&job.dsn);
        mail.push_str(&m);
        rcpt.push_str(&r);
    }
    let r = conn.cmd(&mail, t).await;
    if let Err(o) = step(r, "MAIL FROM") {
        return o;
    }
    let r = conn.cmd(&rcpt, t).await;
    if let Err(o) = step(r, "RCPT TO") {
        if !conn.broken {
            let _ = conn.rset(t).await;
        }
        return o;
    }
    match conn.cmd("DATA", t).await {
        Ok(r) if r.code == 354 => {}
        Ok(r) if r.code / 100 == 5 => return Outcome::Failed(format!("DATA: {}", r.text())),
        Ok(r) => return Outcome::Deferred(format!("DATA: {}", r.text())),
        Err(e) => return Outcome::Deferred(format!("DATA: {e}")),
    }
    if let Err(e) = conn.send(&data).await {
        return Outcome::Deferred(format!("sending the message: {e}"));
    }
    match conn.read_reply(t).await {
        // RFC 3461 §5.2.2: the next hop took no NOTIFY, so no success report will come from it;
        // §5.2.1: it took NOTIFY=SUCCESS on, so the success report is its to send.
        Ok(r) if r.code / 100 == 2 && job.dsn.notify.success && !conn.ext.dsn => Outcome::Relayed,
        Ok(r) if r.code / 100 == 2 && job.dsn.notify.success => Outcome::PassedOn,
        Ok(r) if r.code / 100 == 2 => Outcome::Delivered,
        Ok(r) if r.code / 100 == 5 => Outcome::Failed(format!("after DATA: {}", r.text())),
        Ok(r) => Outcome::Deferred(format!("after DATA: {}", r.text())),
        Err(e) => Outcome::Deferred(format!("after DATA: {e}")),
    }
}

/// The DSN parameters of MAIL FROM (`RET`, `ENVID`) and of RCPT TO (`NOTIFY`, `ORCPT`), each
/// with its leading space (RFC 3461 §4.1-4.4; values in xtext).
fn dsn_params(d: &JobDsn<'_>) -> (String, String) {
    let mut mail = String::new();
    match d.ret {
        Some(Ret::Full) => mail.push_str(" RET=FULL"),
        Some(Ret::Headers) => mail.push_str(" RET=HDRS"),
        None => {}
    }
    if let Some(e) = d.env_id.filter(|e| !e.is_empty()) {
        mail.push_str(&format!(" ENVID={}", xtext(e)));
    }
    let mut rcpt = String::new();
    let n = d.notify;
    let words: Vec<&str> = if n.never {
        vec!["NEVER"]
    } else {
        [
            (n.success, "SUCCESS"),
            (n.failure, "FAILURE"),
            (n.delay, "DELAY"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect()
    };
    if !words.is_empty() {
        rcpt.push_str(&format!(" NOTIFY={}", words.join(",")));
    }
    // RFC 3461 §4.2: `addr-type ";" xtext`; the type is an atom and stays as it is.
    if let Some((kind, addr)) = d.orcpt.and_then(|o| o.split_once(';')) {
        let atom = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if atom && !addr.is_empty() {
            rcpt.push_str(&format!(" ORCPT={kind};{}", xtext(addr)));
        }
    }
    (mail, rcpt)
}

/// `xtext` (RFC 3461 §4): `+`, `=`, and bytes outside `!`..`~` as `+XX`.
fn xtext(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
