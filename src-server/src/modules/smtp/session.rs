//! One SMTP server connection: the I/O loop (timeouts, pipelined replies, STARTTLS), the command
//! dispatch and one handler per command. See the module header (`modules::smtp`) for the
//! standards and guide lines; decisions are cited where they are made.
//!
//! Invariants: the `250` after DATA is sent only after `Submit::submit` returned Ok (it fsyncs);
//! blocking calls (Router, Enqueuer, credential checks, the policy read) run on
//! `spawn_blocking`. Replies are buffered and written when no further complete command is
//! waiting (RFC 2920 §3) and always before the session waits for input.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::proto::{self, Command, DataEnd, DataReader, Input, Line, Quirks};
use super::{Config, Policy, NAME};
use crate::kernel::log::Level;
use crate::kernel::mail::{
    EnqueueError, NewRecipient, RouteError, Routed, Source, Submission, Target,
};
use crate::net::sasl::{self, AccountId, Exchange, Failure, Step};
use crate::net::AsyncStream;

/// Most AUTH round trips before the exchange is abandoned.
const MAX_AUTH_STEPS: usize = 8;
/// Longest AUTH response line (base64 of a name and a password, with room to spare).
const MAX_AUTH_LINE: usize = 12 * 1024;

static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// Where a connection came in.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// The client.
    pub peer: SocketAddr,
    /// The local socket it connected to.
    pub local: SocketAddr,
    /// True on a TLS-on-connect socket (465): the stream is already encrypted.
    pub tls: bool,
}

/// The mail transaction in progress (RFC 5321 §3.3).
struct Transaction {
    return_path: String,
    params: proto::MailParams,
    recipients: Vec<NewRecipient>,
    /// A recipient is (or routes to) `spamtrap`: the whole message is refused (guide.txt:3552-3579).
    spamtrap: bool,
    /// Domains named by `<domain>-wakeup@<main domain>` recipients (guide.txt:11733-11740).
    wakeups: Vec<String>,
}

/// Where the session stands; the transaction lives only inside `Mail`.
enum State {
    /// No HELO/EHLO yet.
    Fresh,
    /// Greeted; no transaction.
    Ready,
    /// After MAIL FROM.
    Mail(Transaction),
}

/// What a handler tells the loop.
enum Flow {
    Continue,
    Close,
    StartTls,
    /// ATRN accepted: the connection turns around (RFC 2645 §4).
    Reverse(super::etrn::Reversal),
}

struct Session {
    cfg: Arc<Config>,
    policy: Policy,
    ep: Endpoint,
    tag: String,
    client: bool,
    /// The refusal every RCPT gets (explicit Blacklist, DNS name or RBL).
    blacklisted: Option<String>,
    /// Blacklisted through the DNS rather than by the explicit list.
    blacklisted_by_dns: bool,
    submission: bool,
    /// On the ODMR port (RFC 2645 §6): AUTH before MAIL, as on the submission port.
    odmr: bool,
    tls: bool,
    helo: Option<(String, bool)>,
    auth: Option<AccountId>,
    /// The authenticated account's `Relay` service is enabled (guide.txt:3321-3328).
    auth_relay: bool,
    state: State,
    errors: u32,
    input: Input,
    out: Vec<u8>,
}

/// Serves one connection until QUIT, an error limit, a timeout or end of input.
pub async fn serve(
    stream: Box<dyn AsyncStream>,
    ep: Endpoint,
    cfg: Arc<Config>,
) -> std::io::Result<()> {
    let policy = {
        let source = Arc::clone(&cfg.policy);
        tokio::task::spawn_blocking(move || source())
            .await
            .unwrap_or_default()
    };
    let ip = ep.peer.ip().to_canonical();
    let submission = policy.settings.submission_port != 0
        && u32::from(ep.local.port())
            == u32::from(policy.settings.submission_port) + u32::from(cfg.port_offset);
    let odmr =
        u32::from(ep.local.port()) == u32::from(super::ODMR_PORT) + u32::from(cfg.port_offset);
    // Client IPs, the Blacklist, White Holes, DNS names and RBLs (order in `dns`). The
    // submission and ODMR ports take mail only after AUTH, which DNS listings do not stop: no queries.
    let super::dns::Screen {
        client,
        blacklisted,
        by_dns: blacklisted_by_dns,
    } = super::dns::screen(&cfg.dns, &policy, ip, !(submission || odmr)).await;
    let n = SESSIONS.fetch_add(1, Ordering::Relaxed) + 1;
    let s = Session {
        tag: format!("{NAME}-{n}"),
        cfg,
        policy,
        ep,
        client,
        blacklisted,
        blacklisted_by_dns,
        submission,
        odmr,
        tls: ep.tls,
        helo: None,
        auth: None,
        auth_relay: false,
        state: State::Fresh,
        errors: 0,
        input: Input::new(),
        out: Vec::new(),
    };
    // Blacklisted through the DNS (RBL, PTR name): the admin sees who and why.
    if let Some(why) = s.blacklisted.as_deref().filter(|_| s.blacklisted_by_dns) {
        s.log(Level::Major, format_args!("[{ip}] blacklisted: {why}"));
    }
    s.log(
        Level::LowLevel,
        format_args!(
            "connection from [{}] to {}{}{}",
            ip,
            ep.local,
            if client { ", a client" } else { "" },
            match &s.blacklisted {
                Some(why) => format!(", blacklisted: {why}"),
                None => String::new(),
            }
        ),
    );
    s.run(stream).await
}

impl Session {
    fn log(&self, level: Level, text: impl std::fmt::Display) {
        self.cfg.logger.log(level, &self.tag, text);
    }

    fn reply(&mut self, code: u16, enhanced: &str, text: &str) {
        self.out
            .extend_from_slice(&proto::reply(code, enhanced, text));
    }

    /// A refused command: counts towards `ErrorsBeforeDisconnect`.
    fn error(&mut self, code: u16, enhanced: &str, text: &str) {
        self.errors += 1;
        self.reply(code, enhanced, text);
    }

    async fn flush(&mut self, stream: &mut Box<dyn AsyncStream>) -> std::io::Result<()> {
        if !self.out.is_empty() {
            stream.write_all(&self.out).await?;
            stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes pending replies and reads more input; false at end of input or timeout.
    async fn fill(
        &mut self,
        stream: &mut Box<dyn AsyncStream>,
        timeout: Duration,
    ) -> std::io::Result<bool> {
        self.flush(stream).await?;
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
            Err(_) => {
                self.reply(421, "4.4.2", &format!("{} timeout, closing", self.cfg.host));
                self.flush(stream).await?;
                self.log(Level::LowLevel, "timed out");
                Ok(false)
            }
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                self.input.push(&chunk[..n]);
                Ok(true)
            }
            Ok(Err(e)) => Err(e),
        }
    }

    async fn run(mut self, mut stream: Box<dyn AsyncStream>) -> std::io::Result<()> {
        let greeting = format!("{} ESMTP Gatehouse ready", self.cfg.host);
        self.reply(220, "", &greeting);
        loop {
            let line = loop {
                match self.input.line(proto::MAX_LINE) {
                    Some(l) => break l,
                    None => {
                        let timeout = self.policy.settings.command_timeout;
                        if !self.fill(&mut stream, timeout).await? {
                            return Ok(());
                        }
                    }
                }
            };
            let flow = match line {
                // RFC 5321 §4.5.3.1.4: a line over the limit is refused; the session goes on.
                Line::TooLong => {
                    self.error(500, "5.5.2", "Line too long");
                    Flow::Continue
                }
                Line::Text(l) => self.command(&l, &mut stream).await?,
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    self.flush(&mut stream).await?;
                    return Ok(());
                }
                Flow::Reverse(rev) => {
                    self.flush(&mut stream).await?;
                    let Some(holds) = self.cfg.holds.clone() else {
                        return Ok(());
                    };
                    // Anything the customer sent ahead belongs to its greeting.
                    let rest = self.input.take_rest();
                    let stream = super::etrn::Prefixed::new(rest, stream);
                    super::etrn::reversed(
                        holds,
                        rev,
                        Box::new(stream),
                        &self.cfg.host,
                        self.policy.settings.command_timeout,
                        &self.cfg.logger,
                        &self.tag,
                    )
                    .await;
                    return Ok(());
                }
                Flow::StartTls => {
                    self.flush(&mut stream).await?;
                    let Some(tls) = self.cfg.tls.clone() else {
                        return Ok(());
                    };
                    stream = match tls.upgrade(stream).await {
                        Ok(s) => Box::new(s),
                        Err(e) => {
                            self.log(Level::Problems, format_args!("STARTTLS failed: {e}"));
                            return Ok(());
                        }
                    };
                    // RFC 3207 §4.2: forget everything learnt before the handshake, including
                    // any pipelined input (no command injection across the upgrade).
                    self.input.clear();
                    self.tls = true;
                    self.helo = None;
                    self.auth = None;
                    self.auth_relay = false;
                    self.state = State::Fresh;
                }
            }
            if self.errors >= self.policy.settings.max_errors {
                self.reply(421, "4.7.0", "Too many errors, closing the connection");
                self.flush(&mut stream).await?;
                self.log(Level::Problems, "too many errors; disconnected");
                return Ok(());
            }
        }
    }

    async fn command(
        &mut self,
        line: &[u8],
        stream: &mut Box<dyn AsyncStream>,
    ) -> std::io::Result<Flow> {
        if self.cfg.logger.enabled(Level::AllInfo, NAME) {
            // AUTH lines may carry credentials: only the verb and mechanism are recorded.
            let text = String::from_utf8_lossy(line);
            let shown = if text.len() >= 4 && text[..4].eq_ignore_ascii_case("AUTH") {
                text.split(' ').take(2).collect::<Vec<_>>().join(" ")
            } else {
                text.into_owned()
            };
            self.log(
                Level::AllInfo,
                format_args!("<- {}", proto::printable(&shown)),
            );
        }
        let cmd = match proto::command(line, Quirks::default()) {
            Ok(c) => c,
            Err(e) => {
                let mail = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"MAIL");
                self.errors += 1;
                self.out.extend_from_slice(&e.reply(mail));
                return Ok(Flow::Continue);
            }
        };
        match cmd {
            Command::Helo(name) => self.cmd_helo(name, false),
            Command::Ehlo(name) => self.cmd_helo(name, true),
            Command::Mail(path, params) => self.cmd_mail(path, params).await,
            Command::Rcpt(path, params) => self.cmd_rcpt(path, params).await,
            Command::Data => return self.cmd_data(stream).await,
            Command::Rset => {
                // RFC 5321 §4.1.1.5: RSET ends the transaction but keeps the greeting.
                if !matches!(self.state, State::Fresh) {
                    self.state = State::Ready;
                }
                self.reply(250, "2.0.0", "OK");
            }
            Command::Noop => self.reply(250, "2.0.0", "OK"),
            Command::Quit => {
                let bye = format!("{} closing connection", self.cfg.host);
                self.reply(221, "2.0.0", &bye);
                return Ok(Flow::Close);
            }
            // RFC 5321 §3.5.3: 252 when the server will not verify but will accept.
            Command::Vrfy => self.reply(
                252,
                "2.1.5",
                "Cannot VRFY user, but will accept the message and attempt delivery",
            ),
            Command::Expn => self.error(502, "5.5.1", "EXPN is not available"),
            Command::Help => self.reply(
                214,
                "2.0.0",
                "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
            ),
            Command::StartTls => return Ok(self.cmd_starttls()),
            Command::Auth(mech, initial) => return self.cmd_auth(&mech, initial, stream).await,
            // RFC 2645 §1: TURN hands mail to whoever asks; it is refused (ATRN needs AUTH).
            Command::Turn => self.error(502, "5.5.1", "TURN is not supported; use ATRN"),
            Command::Etrn(node) => self.cmd_etrn(&node).await,
            Command::Atrn(arg) => return Ok(self.cmd_atrn(&arg).await),
        }
        Ok(Flow::Continue)
    }

    /// HELO/EHLO — any state; resets the transaction (RFC 5321 §4.1.4).
    fn cmd_helo(&mut self, name: String, esmtp: bool) {
        let peer = self.ep.peer.ip().to_canonical();
        let hello = format!(
            "{} Hello {} [{}]",
            self.cfg.host,
            proto::printable(&name),
            peer
        );
        self.helo = Some((name, esmtp));
        self.state = State::Ready;
        if !esmtp {
            self.reply(250, "", &hello);
            return;
        }
        let s = &self.policy.settings;
        let mut lines = vec![hello];
        lines.push(match s.size_limit {
            Some(n) => format!("SIZE {n}"),
            None => "SIZE".into(),
        });
        lines.push("PIPELINING".into());
        if s.advertise_8bitmime {
            lines.push("8BITMIME".into());
        }
        lines.push("DSN".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        // fetchmail's ETRN and ODMR clients go on only when these are listed.
        if self.cfg.holds.is_some() {
            if self.wakeups_allowed() {
                lines.push("ETRN".into());
            }
            lines.push("ATRN".into());
        }
        if self.cfg.tls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        // guide.txt:11572-11578: Advertise AUTH hides the capability, it does not disable AUTH;
        // on the submission and ODMR ports it is always shown, since AUTH is required there.
        if self.submission || self.odmr || s.advertise_auth.applies(self.client) {
            lines.push(format!(
                "AUTH {}",
                self.cfg.auth.advertised_mechanisms().join(" ")
            ));
        }
        lines.push("HELP".into());
        self.reply(250, "", &lines.join("\n"));
    }

    /// Accept Wakeups from (guide.txt:11777-11780): ETRN and wake-up e-mails from anybody, or
    /// only from Client IP Addresses.
    fn wakeups_allowed(&self) -> bool {
        !self.policy.dialup.wakeups_from_clients_only || self.client
    }

    /// ETRN node — greeted, outside a transaction (RFC 1985 §3); not on the ODMR port.
    async fn cmd_etrn(&mut self, node: &str) {
        match self.state {
            State::Fresh => return self.error(503, "5.5.1", "Send HELO or EHLO first"),
            State::Mail(_) => {
                return self.error(503, "5.5.1", "ETRN is not allowed inside a transaction")
            }
            State::Ready => {}
        }
        let Some(holds) = self.cfg.holds.clone() else {
            return self.error(502, "5.5.1", "ETRN is not available on this server");
        };
        if self.odmr {
            return self.error(502, "5.5.1", "Only ATRN is served on this port");
        }
        if !self.wakeups_allowed() {
            return self.error(
                459,
                "",
                &format!(
                    "Node {} not allowed: you are not a client",
                    proto::printable(node)
                ),
            );
        }
        let route = Arc::clone(&self.cfg.route);
        let logger = self.cfg.logger.clone();
        let (tag, node) = (self.tag.clone(), node.to_string());
        let reply = tokio::task::spawn_blocking(move || {
            super::etrn::etrn(&holds, &*route, &node, &logger, &tag)
        })
        .await
        .unwrap_or_else(|_| (458, "", "Unable to queue messages now".into()));
        let text = proto::printable(&reply.2);
        if reply.0 / 100 == 2 {
            self.reply(reply.0, reply.1, &text);
        } else {
            self.error(reply.0, reply.1, &text);
        }
    }

    /// ATRN [domain] — authenticated, outside a transaction (RFC 2645 §4); on success the
    /// connection turns around.
    async fn cmd_atrn(&mut self, arg: &str) -> Flow {
        match self.state {
            State::Fresh => {
                self.error(503, "5.5.1", "Send HELO or EHLO first");
                return Flow::Continue;
            }
            State::Mail(_) => {
                self.error(503, "5.5.1", "ATRN is not allowed inside a transaction");
                return Flow::Continue;
            }
            State::Ready => {}
        }
        let Some(holds) = self.cfg.holds.clone() else {
            self.error(502, "5.5.1", "ATRN is not available on this server");
            return Flow::Continue;
        };
        let Some(account) = self.auth.clone() else {
            self.error(530, "5.7.0", "Authentication required");
            return Flow::Continue;
        };
        let route = Arc::clone(&self.cfg.route);
        let (ctx, arg) = (Arc::clone(&self.cfg.auth), arg.to_string());
        let checked = tokio::task::spawn_blocking(move || {
            let main = ctx.store.main_domain();
            super::etrn::atrn(&holds, &*route, &account, &main, &arg)
        })
        .await
        .unwrap_or_else(|_| Err((451, "4.3.0", "Unable to process ATRN request now".into())));
        match checked {
            Ok(rev) => {
                self.log(
                    Level::Major,
                    format_args!("ATRN for {}: reversing the connection", rev.queue),
                );
                self.reply(250, "2.0.0", "OK, now reversing the connection");
                Flow::Reverse(rev)
            }
            Err((code, enhanced, text)) => {
                self.log(Level::LowLevel, format_args!("ATRN refused: {text}"));
                let text = proto::printable(&text);
                if code == 453 {
                    self.reply(code, enhanced, &text);
                } else {
                    self.error(code, enhanced, &text);
                }
                Flow::Continue
            }
        }
    }

    /// STARTTLS — greeted, outside a transaction, not yet encrypted.
    fn cmd_starttls(&mut self) -> Flow {
        if self.tls || self.cfg.tls.is_none() {
            self.error(502, "5.5.1", "STARTTLS is not available");
            return Flow::Continue;
        }
        if matches!(self.state, State::Mail(_)) {
            self.error(503, "5.5.1", "STARTTLS is not allowed inside a transaction");
            return Flow::Continue;
        }
        self.reply(220, "2.0.0", "Ready to start TLS");
        Flow::StartTls
    }

    /// Routes an address on a worker thread.
    async fn route(&self, address: &str) -> Result<Routed, RouteError> {
        let router = Arc::clone(&self.cfg.route);
        let a = address.to_string();
        tokio::task::spawn_blocking(move || router.route(&a))
            .await
            .unwrap_or_else(|e| Err(RouteError::BadAddress(format!("internal error: {e}"))))
    }

    /// MAIL FROM — greeted, no transaction; on 587 only after AUTH.
    async fn cmd_mail(&mut self, path: String, params: proto::MailParams) {
        match self.state {
            State::Fresh => return self.error(503, "5.5.1", "Send HELO or EHLO first"),
            State::Mail(_) => return self.error(503, "5.5.1", "Nested MAIL command"),
            State::Ready => {}
        }
        // RFC 6409 §4.3, RFC 2645 §6: the submission and ODMR ports take mail only from
        // authenticated users.
        if (self.submission || self.odmr) && self.auth.is_none() {
            return self.error(530, "5.7.0", "Authentication required");
        }
        let s = self.policy.settings.clone();
        // RFC 1870 §6.2: a declared size over the limit is refused at once.
        if let (Some(limit), Some(size)) = (s.size_limit, params.size) {
            if size > limit {
                return self.error(552, "5.3.4", "Message size exceeds the fixed limit");
            }
        }
        let force_auth = self.auth.is_none() && s.force_auth.applies(self.client);
        let verify = s.verify_return_path.applies(self.client);
        if verify {
            if let Err(r) = self.verify_helo().await {
                self.log(Level::LowLevel, format_args!("MAIL refused: {}", r.text));
                return if r.temporary {
                    self.error(451, "4.4.3", &r.text)
                } else {
                    self.error(550, "5.7.1", &r.text)
                };
            }
        }
        if !path.is_empty() && (force_auth || verify) {
            let routed = self.route(&path).await;
            // guide.txt:11599-11609: Force AUTH — a local Return-Path needs AUTH.
            if force_auth
                && matches!(
                    routed,
                    Ok(Routed {
                        target: Target::Local { .. },
                        ..
                    })
                )
            {
                return self.error(530, "5.7.0", "Authentication required for local senders");
            }
            if verify {
                if let Err(text) = self.verify_return_path(&path, &routed) {
                    self.log(
                        Level::LowLevel,
                        format_args!("MAIL FROM:<{}> refused: {text}", proto::printable(&path)),
                    );
                    return self.error(550, "5.7.1", text);
                }
                if let Err(r) = self.verify_return_path_dns(&path, &routed).await {
                    self.log(
                        Level::LowLevel,
                        format_args!(
                            "MAIL FROM:<{}> refused: {}",
                            proto::printable(&path),
                            r.text
                        ),
                    );
                    return if r.temporary {
                        self.error(451, "4.4.3", &r.text)
                    } else {
                        self.error(550, "5.7.1", &r.text)
                    };
                }
            }
        }
        self.state = State::Mail(Transaction {
            return_path: path,
            params,
            recipients: Vec::new(),
            spamtrap: false,
            wakeups: Vec::new(),
        });
        self.reply(250, "2.1.0", "Sender OK");
    }

    /// Return-Path verification without DNS (guide.txt:3406-3448): an address routed to ERROR,
    /// and an IP-literal domain that is not a Client IP Address, are refused.
    fn verify_return_path(
        &self,
        path: &str,
        routed: &Result<Routed, RouteError>,
    ) -> Result<(), &'static str> {
        if let Ok(Routed {
            target: Target::Error(_),
            ..
        }) = routed
        {
            return Err("Return-Path refused by the Router");
        }
        let domain = path.rsplit_once('@').map_or("", |(_, d)| d);
        if domain.is_empty() {
            return Err("Return-Path without a domain");
        }
        if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let ip = lit
                .strip_prefix("IPv6:")
                .unwrap_or(lit)
                .parse::<IpAddr>()
                .map_err(|_| "bad IP address in the Return-Path")?;
            if !self.policy.client_ips.contains(ip) {
                return Err("Return-Path IP address is not a client address");
            }
        }
        Ok(())
    }

    /// HELO name verification (with the Return-Path's, guide.txt:11558-11568).
    async fn verify_helo(&self) -> Result<(), super::dns::Refusal> {
        let Some((name, _)) = &self.helo else {
            return Ok(());
        };
        self.cfg
            .dns
            .verify_helo(&self.policy.dns_servers, name)
            .await
    }

    /// Return-Path verification through the DNS (guide.txt:3416-3448), for an address the Router
    /// sends out unchanged: an address it knows (local, rerouted with the Relay marker) needs no
    /// DNS (guide.txt:3429-3432).
    async fn verify_return_path_dns(
        &self,
        path: &str,
        routed: &Result<Routed, RouteError>,
    ) -> Result<(), super::dns::Refusal> {
        let Ok(Routed {
            target: Target::Smtp { .. },
            relay: false,
        }) = routed
        else {
            return Ok(());
        };
        let domain = path.rsplit_once('@').map_or("", |(_, d)| d);
        if domain.starts_with('[') {
            return Ok(());
        }
        self.cfg
            .dns
            .verify_domain(&self.policy.dns_servers, domain, &self.policy.blacklisted)
            .await
    }

    /// RCPT TO — inside a transaction.
    async fn cmd_rcpt(&mut self, path: String, params: proto::RcptParams) {
        let (count, return_path) = match &self.state {
            // Wake-up addresses count too: each one runs a release at DATA.
            State::Mail(t) => (t.recipients.len() + t.wakeups.len(), t.return_path.clone()),
            _ => return self.error(503, "5.5.1", "Send MAIL FROM first"),
        };
        // guide.txt:3449-3479: a blacklisted host may talk, but every recipient is refused
        // permanently, so it does not retry through backup MXs.
        // A DNS listing (an RBL, a PTR name) names unauthenticated sources such as dynamic
        // addresses; a user who authenticated from one may still send. The explicit Blacklist
        // holds for everybody.
        let excused = self.blacklisted_by_dns && self.auth.is_some();
        if let Some(why) = self.blacklisted.clone().filter(|_| !excused) {
            return self.error(550, "5.7.1", &why);
        }
        // RFC 5321 §4.5.3.1.10: 452 for too many recipients.
        if count >= self.policy.settings.recipients_limit {
            return self.reply(452, "4.5.3", "Too many recipients");
        }
        // guide.txt:11889-11891: `<domain>-wakeup` addresses are taken on the first look.
        if let (Some(domain), true) = (
            super::etrn::wakeup_address(&path, &self.cfg.host),
            self.cfg.holds.is_some(),
        ) {
            if !self.wakeups_allowed() {
                return self.error(
                    550,
                    "5.7.1",
                    "Wake-up requests are accepted from clients only",
                );
            }
            if let State::Mail(t) = &mut self.state {
                if !t.wakeups.contains(&domain) {
                    t.wakeups.push(domain);
                }
            }
            return self.reply(250, "2.1.5", "Wake-up request accepted");
        }
        let routed = match self.route(&path).await {
            Ok(r) => r,
            Err(RouteError::UnknownUser(_)) => {
                return self.error(550, "5.1.1", "Unknown user account")
            }
            Err(RouteError::BadAddress(_)) => return self.error(553, "5.1.3", "Bad address"),
            Err(RouteError::Loop(_)) => return self.error(554, "5.4.6", "Routing loop detected"),
        };
        let shown = proto::printable(&path);
        let mut spamtrap = false;
        match &routed.target {
            // guide.txt:3552-3579: the Router's special address `spamtrap` (it routes it to
            // ERROR "spamtrap"); the recipient is taken so the whole message can be refused.
            Target::Error(text) if text.eq_ignore_ascii_case("spamtrap") => spamtrap = true,
            Target::Error(text) => {
                let text = proto::printable(text);
                return self.error(550, "5.7.1", &text);
            }
            Target::Smtp { .. } | Target::Pipe { .. } => {
                if !(self.client || self.auth_relay || routed.relay) {
                    return self.relay_denied(&shown, &return_path).await;
                }
            }
            Target::Local { .. } | Target::List { .. } | Target::Discard => {}
        }
        if let State::Mail(t) = &mut self.state {
            t.spamtrap |= spamtrap;
            t.recipients.push(NewRecipient {
                address: path,
                orcpt: params.orcpt,
                notify: params.notify,
            });
        }
        self.reply(250, "2.1.5", "Recipient OK");
    }

    /// Relaying refused (guide.txt:3209-3252). guide.txt:3300-3312: when the Return-Path is a
    /// local account the refusal is temporary, so the user's mailer can authenticate and retry.
    async fn relay_denied(&mut self, shown: &str, return_path: &str) {
        self.log(
            Level::LowLevel,
            format_args!("relaying to <{shown}> denied"),
        );
        let local_sender = !return_path.is_empty()
            && matches!(
                self.route(return_path).await,
                Ok(Routed {
                    target: Target::Local { .. },
                    ..
                })
            );
        if local_sender {
            self.error(450, "4.7.1", "Relaying denied; try to authenticate first");
        } else {
            self.error(550, "5.7.1", "Relaying denied");
        }
    }

    /// DATA — after at least one accepted RCPT.
    async fn cmd_data(&mut self, stream: &mut Box<dyn AsyncStream>) -> std::io::Result<Flow> {
        let mut t = match std::mem::replace(&mut self.state, State::Ready) {
            State::Mail(t) if !t.recipients.is_empty() || !t.wakeups.is_empty() => t,
            State::Mail(t) => {
                self.state = State::Mail(t);
                self.error(554, "5.5.1", "No valid recipients");
                return Ok(Flow::Continue);
            }
            other => {
                self.state = other;
                self.error(503, "5.5.1", "Send MAIL FROM and RCPT TO first");
                return Ok(Flow::Continue);
            }
        };
        if t.spamtrap {
            self.log(Level::Major, "message to a spam trap refused");
            self.error(554, "5.7.1", "Message refused");
            return Ok(Flow::Continue);
        }
        self.reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
        let limit = self
            .policy
            .settings
            .size_limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(usize::MAX);
        let received = self.received_header(&t);
        let mut data = DataReader::new(limit.saturating_add(received.len()));
        data.message.extend_from_slice(received.as_bytes());
        let end = loop {
            if let Some(end) = self.input.data(&mut data) {
                break end;
            }
            let timeout = self.policy.settings.data_timeout;
            if !self.fill(stream, timeout).await? {
                return Ok(Flow::Close);
            }
        };
        if end == DataEnd::TooLarge {
            self.error(552, "5.3.4", "Message size exceeds the fixed limit");
            return Ok(Flow::Continue);
        }
        let wakeups = std::mem::take(&mut t.wakeups);
        if let (false, Some(holds)) = (wakeups.is_empty(), self.cfg.holds.clone()) {
            // guide.txt:11735-11737: the message itself is the request; it releases the queues.
            let route = Arc::clone(&self.cfg.route);
            let logger = self.cfg.logger.clone();
            let tag = self.tag.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for d in wakeups {
                    super::etrn::etrn(&holds, &*route, &d, &logger, &tag);
                }
            })
            .await;
            if t.recipients.is_empty() {
                self.reply(250, "2.0.0", "Wake-up request processed");
                return Ok(Flow::Continue);
            }
        }
        let message = data.message;
        let banned = self.policy.banned.clone();
        let submit = Arc::clone(&self.cfg.submit);
        let submission = Submission {
            return_path: t.return_path.clone(),
            recipients: t.recipients,
            source: Source::Smtp {
                peer: self.ep.peer.ip().to_canonical(),
                helo: self.helo.as_ref().map(|h| h.0.clone()).unwrap_or_default(),
                auth: self.auth.as_ref().map(ToString::to_string),
                tls: self.tls,
            },
            env_id: t.params.envid,
            ret: t.params.ret,
        };
        let count = submission.recipients.len();
        let size = message.len();
        let result = tokio::task::spawn_blocking(move || {
            // guide.txt:3580-3607: a banned header or body line rejects the message.
            if let Some(line) = banned.check(&message) {
                return Err(Refused::Banned(line.to_string()));
            }
            submit
                .submit(submission, &message)
                .map_err(Refused::Enqueue)
        })
        .await
        .unwrap_or_else(|e| {
            Err(Refused::Enqueue(EnqueueError::Io(std::io::Error::other(
                e.to_string(),
            ))))
        });
        match result {
            Ok(id) => {
                self.log(
                    Level::Major,
                    format_args!(
                        "message {id} from <{}> to {count} recipient(s), {size} bytes, queued",
                        proto::printable(&t.return_path)
                    ),
                );
                self.reply(250, "2.6.0", &format!("Message {id} accepted for delivery"));
            }
            Err(Refused::Banned(line)) => {
                self.log(
                    Level::Major,
                    format_args!("message refused: banned line {}", proto::printable(&line)),
                );
                self.error(554, "5.7.1", "Message contains a banned line");
            }
            Err(Refused::Enqueue(e)) => {
                let (code, enhanced, level) = match &e {
                    EnqueueError::NoRecipients => (554, "5.5.1", Level::LowLevel),
                    EnqueueError::TooManyHops => (554, "5.4.6", Level::Problems),
                    EnqueueError::TooLarge => (552, "5.3.4", Level::LowLevel),
                    EnqueueError::Rejected(_) => (554, "5.7.1", Level::LowLevel),
                    EnqueueError::Io(_) => (451, "4.3.0", Level::Failures),
                };
                self.log(level, format_args!("message not queued: {e}"));
                let text = match &e {
                    EnqueueError::Io(_) => "Local error in processing; try again later".into(),
                    other => other.to_string(),
                };
                self.error(code, enhanced, &text);
            }
        }
        Ok(Flow::Continue)
    }

    /// The trace field (RFC 5321 §4.4; RFC 3848 for the `with` keyword).
    fn received_header(&self, t: &Transaction) -> String {
        let (helo, esmtp) = self.helo.clone().unwrap_or_else(|| (String::new(), false));
        let with = match (esmtp, self.tls, self.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let mut comments = String::new();
        if self.tls {
            comments.push_str("\r\n\t(using TLS)");
        }
        if let Some(id) = &self.auth {
            comments.push_str(&format!("\r\n\t(authenticated as {id})"));
        }
        let rcpt = match t.recipients.as_slice() {
            [one] => format!("\r\n\tfor <{}>", proto::printable(&one.address)),
            _ => String::new(),
        };
        format!(
            "Received: from {} ([{}])\r\n\tby {} (Gatehouse) with {with}{comments}{rcpt};\r\n\t{}\r\n",
            proto::printable(&helo),
            self.ep.peer.ip().to_canonical(),
            self.cfg.host,
            chrono::Local::now().to_rfc2822()
        )
    }

    /// AUTH — greeted, not authenticated, outside a transaction (RFC 4954 §4).
    async fn cmd_auth(
        &mut self,
        mech: &str,
        initial: Option<Vec<u8>>,
        stream: &mut Box<dyn AsyncStream>,
    ) -> std::io::Result<Flow> {
        if self.helo.is_none() {
            self.error(503, "5.5.1", "Send EHLO first");
            return Ok(Flow::Continue);
        }
        if self.auth.is_some() {
            self.error(503, "5.5.1", "Already authenticated");
            return Ok(Flow::Continue);
        }
        if matches!(self.state, State::Mail(_)) {
            self.error(503, "5.5.1", "AUTH is not allowed inside a transaction");
            return Ok(Flow::Continue);
        }
        let initial = match initial.map(|i| sasl::decode_response(&i)) {
            None => None,
            Some(Ok(Some(b))) => Some(b),
            Some(Ok(None)) => return Ok(self.auth_failed(Failure::Cancelled)),
            Some(Err(f)) => return Ok(self.auth_failed(f)),
        };
        let ctx = Arc::clone(&self.cfg.auth);
        let name = mech.to_string();
        let host = self.cfg.host.clone();
        let started = tokio::task::spawn_blocking(move || {
            let (ex, step) = Exchange::start(&name, initial.as_deref(), &host, &*ctx);
            (ex, step)
        })
        .await;
        let Ok((mut ex, mut step)) = started else {
            return Ok(self.auth_failed(Failure::Server(sasl::AuthError("internal error".into()))));
        };
        let mut steps = 0;
        let result = loop {
            let challenge = match step {
                Step::Done(id) => break Ok(id),
                Step::Failed(f) => break Err(f),
                Step::Challenge(c) => c,
            };
            steps += 1;
            if steps > MAX_AUTH_STEPS {
                break Err(Failure::Malformed);
            }
            let text = sasl::encode_challenge(&challenge);
            self.reply(334, "", &text);
            let line = loop {
                match self.input.line(MAX_AUTH_LINE) {
                    Some(l) => break l,
                    None => {
                        let timeout = self.policy.settings.command_timeout;
                        if !self.fill(stream, timeout).await? {
                            return Ok(Flow::Close);
                        }
                    }
                }
            };
            let bytes = match line {
                Line::TooLong => break Err(Failure::Malformed),
                Line::Text(l) => match sasl::decode_response(&l) {
                    Ok(Some(b)) => b,
                    Ok(None) => break Err(Failure::Cancelled),
                    Err(f) => break Err(f),
                },
            };
            let ctx = Arc::clone(&self.cfg.auth);
            match tokio::task::spawn_blocking(move || {
                let step = ex.step(&bytes, &*ctx);
                (ex, step)
            })
            .await
            {
                Ok((e, s)) => {
                    ex = e;
                    step = s;
                }
                Err(_) => break Err(Failure::Server(sasl::AuthError("internal error".into()))),
            }
        };
        let clear_text = !self.tls && matches!(mech, "PLAIN" | "LOGIN");
        Ok(self.finish_auth(result, clear_text).await)
    }

    /// The login policy every module shares (`CliContext::finish_login`: lockout, failure
    /// counting and delay), with SMTP's own checks folded in.
    async fn finish_auth(&mut self, result: Result<AccountId, Failure>, clear_text: bool) -> Flow {
        let ctx = Arc::clone(&self.cfg.auth);
        // Secure Method Required (account setting `RequireAPOP`, guide.txt:3650-3690): PLAIN and
        // LOGIN carry the password in clear, acceptable only inside TLS.
        let result = match result {
            Ok(id) if clear_text => {
                let (c, check) = (Arc::clone(&ctx), id.clone());
                let refused =
                    tokio::task::spawn_blocking(move || requires_secure_method(&c, &check))
                        .await
                        .unwrap_or(true);
                if refused {
                    Err(Failure::BadCredentials(id.to_string()))
                } else {
                    Ok(id)
                }
            }
            other => other,
        };
        // guide.txt:3314-3320: without the Mobile service only Client IP Addresses may log in.
        let service = (!self.client).then_some("Mobile");
        match ctx.finish_login("", service, result).await {
            Ok(id) => {
                // guide.txt:3321-3328: without the Relay service AUTH does not grant relaying.
                let check = id.clone();
                self.auth_relay =
                    tokio::task::spawn_blocking(move || ctx.service_enabled(&check, "Relay"))
                        .await
                        .unwrap_or(false);
                self.log(Level::LowLevel, format_args!("authenticated as {id}"));
                self.auth = Some(id);
                self.reply(235, "2.7.0", "Authentication successful");
            }
            Err(f) => {
                self.auth_failed(f);
            }
        }
        Flow::Continue
    }

    /// Answers a failed AUTH (counting and delay are `finish_auth`'s).
    fn auth_failed(&mut self, f: Failure) -> Flow {
        match &f {
            Failure::BadCredentials(_) => {
                self.log(Level::LowLevel, "AUTH failed: bad credentials");
                self.error(535, "5.7.8", sasl::INCORRECT_LOGIN);
            }
            Failure::Cancelled => self.error(501, "5.0.0", "Authentication cancelled"),
            Failure::UnknownMechanism => {
                self.error(504, "5.5.4", "Unsupported authentication mechanism")
            }
            Failure::Malformed => self.error(501, "5.5.2", "Malformed authentication data"),
            Failure::NotAuthorized => {
                self.error(535, "5.7.8", "Not authorized to act as that user")
            }
            Failure::Server(e) => {
                self.log(Level::Problems, format_args!("AUTH check failed: {e}"));
                self.error(454, "4.7.0", "Temporary authentication failure");
            }
        }
        Flow::Continue
    }
}

/// Why a received message was not queued.
enum Refused {
    Banned(String),
    Enqueue(EnqueueError),
}

/// The account's effective "Secure Method Required" (`RequireAPOP`); unreadable settings count
/// as required, so an error never lets a clear-text password through.
fn requires_secure_method(ctx: &crate::cli::CliContext, id: &AccountId) -> bool {
    match ctx.store.account_effective_settings(&id.domain, &id.name) {
        Ok(eff) => eff
            .get(b"RequireAPOP".as_slice())
            .and_then(crate::format::Value::as_bytes)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"YES")),
        Err(_) => true,
    }
}
