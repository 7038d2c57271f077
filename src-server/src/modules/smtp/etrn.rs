//! Serving dial-up client hosts: Hold Mail for Domains, ETRN and ATRN (we are the provider).
//!
//! Standards: RFC 1985 (ETRN: `node`, `@domain` for a domain and its subdomains, `#queue` for
//! a queue name; replies 250/251/253/458/459), RFC 2645 (ATRN / ODMR: after AUTH, the server
//! turns into the SMTP client on the same connection; replies 250/450/453/530; port 366).
//! Guide: guide.txt:11681-11746 (ETRN, ATRN, waking up via e-mail, holding mail), 11777-11786
//! (Accept Wakeups from, Hold Mail for Domains), FAQ 21885-21920 and 21976-22027 (the recipes),
//! 23293 (`*` wildcards in Hold Mail names), 24347 (an ATRN domain must be held).
//!
//! How it works: the SMTP sending channel asks [`Holds::is_held`] before connecting; a held
//! recipient is deferred with no connection attempt. ETRN (or a wake-up e-mail) marks the node
//! released for [`RELEASE_SPAN`] and makes its deferred recipients due, so the normal sending
//! channel delivers them to the domain's route; a delivery deferred again ends the release. ATRN
//! attaches the customer's connection under the queue name: while it is attached the sending
//! channel delivers that queue's recipients over it ([`super::client::transaction`], the same
//! client code as a fresh connection), and the session waits until none is due, then says QUIT.
//!
//! A node names recipients by the queue the Router gave them (`Target::Smtp::host`) or by their
//! domain, so both `Hold Mail for Domains = mail.client.com` (the guide's recipe) and the plain
//! domain work.
//!
//! Security: ETRN only starts deliveries that would happen anyway, so it is open to anybody unless
//! `AcceptWakeupsFrom` is `Clients`. ATRN needs AUTH, an account named as the domain in the Main
//! Domain (guide.txt:11714-11719), one domain only, and that domain held. TURN stays refused
//! (RFC 2645 §1: it hands mail to an unauthenticated peer). Node names are checked for length
//! and characters before they reach the Router.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::client::{Conn, Io};
use crate::format::Dict;
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::{Route, Target};
use crate::kernel::queue::Queue;
use crate::net::sasl::{AccountId, Secret};
use crate::store::settings::{self, SettingDecl};
use crate::store::Store;

/// How long an ETRN release lets a held queue go out (a deferral ends it sooner).
pub const RELEASE_SPAN: Duration = Duration::from_secs(15 * 60);
/// How often an ATRN session looks whether anything is left to deliver.
const ATRN_POLL: Duration = Duration::from_millis(200);
/// The longest an ATRN session may take.
const ATRN_MAX: Duration = Duration::from_secs(3600);
/// Longest node name (RFC 1035 domain length).
const MAX_NODE: usize = 255;

/// The dial-up settings of the SMTP module, both sides (see [`setting_decls`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialupSettings {
    /// `HoldMailForDomains`: hosts or domains (lower case, `*` wildcards) whose queues are held.
    pub hold: Vec<String>,
    /// `AcceptWakeupsFrom` = `Clients`: ETRN and wake-up e-mails only from Client IP Addresses.
    pub wakeups_from_clients_only: bool,
    /// `SendWakeupsTo`: the backup server (host, port).
    pub wakeups_to: Option<(String, u16)>,
    /// `SendWakeupsEvery`: the period of wake-ups inside a window; `None` = only when a window
    /// opens and on Wake Up Now.
    pub wakeups_every: Option<Duration>,
    /// `UseATRN`: ATRN instead of ETRN.
    pub use_atrn: bool,
    /// `ATRNLoginName` / `ATRNPassword`: sent with AUTH before ATRN.
    pub atrn_login: Option<(String, Secret)>,
    /// `WakeupDomains`: the domains named in ETRN/ATRN; empty = the main domain for ETRN, the
    /// login name for ATRN.
    pub domains: Vec<String>,
}

/// The declarations, appended to the module's (guide.txt:11624-11679, 11777-11786).
pub fn setting_decls() -> Vec<SettingDecl> {
    let s = |key, default, doc| SettingDecl { key, default, doc };
    vec![
        s("HoldMailForDomains", "", "Hold Mail for Domains: hosts or domains (comma-separated, * wildcards) whose mail waits in the queue until ETRN, ATRN or a wake-up e-mail (guide.txt:11783-11786)"),
        s("AcceptWakeupsFrom", "Anybody", "Accept Wakeups from: Anybody or Clients; ETRN and wake-up e-mails (ATRN needs AUTH and is always accepted) (guide.txt:11777-11780)"),
        s("SendWakeupsTo", "", "Send Wakeups To: the backup server, host or host:port (e.g. mail.provider.dom:366); empty = no wake-ups (guide.txt:11624-11632, 11671-11674)"),
        s("SendWakeupsEvery", "never", "Send Wakeups Every: seconds between wake-ups inside a TCP Activity Schedule window (never: only when a window opens and on WakeUpNow); at most one per Pause"),
        s("UseATRN", "No", "Use ATRN: Yes to send AUTH and ATRN and receive on the same connection, No to send ETRN (guide.txt:11643-11663)"),
        s("ATRNLoginName", "", "login name sent with AUTH before ATRN (guide.txt:11665-11666)"),
        s("ATRNPassword", "", "password sent with AUTH before ATRN"),
        s("WakeupDomains", "", "domains named in ETRN/ATRN (comma-separated); empty = the main domain for ETRN, the login name's queue for ATRN"),
    ]
}

/// Reads the dial-up settings from the module's effective settings.
pub fn dialup_settings_from(eff: &Dict) -> Result<DialupSettings, String> {
    let text = |k: &str| settings::text(eff, k);
    let list = |k: &str| -> Vec<String> {
        settings::list(eff, k)
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect()
    };
    let yes = |k: &str| match text(k).to_ascii_lowercase().as_str() {
        "" | "no" => Ok(false),
        "yes" => Ok(true),
        other => Err(format!("{k}: {other:?} is not Yes or No")),
    };
    let wakeups_from_clients_only = match text("AcceptWakeupsFrom").to_ascii_lowercase().as_str() {
        "" | "anybody" | "everybody" => false,
        "clients" => true,
        other => {
            return Err(format!(
                "AcceptWakeupsFrom: {other:?} is not Anybody or Clients"
            ))
        }
    };
    let to = text("SendWakeupsTo");
    let wakeups_to = if to.is_empty() {
        None
    } else {
        Some(
            super::client::host_port(&to, 25)
                .ok_or_else(|| format!("SendWakeupsTo: {to:?} is not host or host:port"))?,
        )
    };
    let every = text("SendWakeupsEvery");
    let wakeups_every = match every.to_ascii_lowercase().as_str() {
        "" | "never" | "0" => None,
        t => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
            format!("SendWakeupsEvery: {every:?} is not a number of seconds or never")
        })?)),
    };
    let user = text("ATRNLoginName");
    let domains = list("WakeupDomains");
    for d in &domains {
        match node(d) {
            Ok(Node::Host(_)) => {}
            _ => return Err(format!("WakeupDomains: {d:?} is not a domain name")),
        }
    }
    Ok(DialupSettings {
        hold: list("HoldMailForDomains"),
        wakeups_from_clients_only,
        wakeups_to,
        wakeups_every,
        use_atrn: yes("UseATRN")?,
        atrn_login: (!user.is_empty()).then(|| (user, Secret::new(text("ATRNPassword")))),
        domains,
    })
}

/// An ETRN argument (RFC 1985 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `node`: one host or domain, resolved through the Router as `wakeup@node` (guide.txt:11695).
    Host(String),
    /// `@domain`: the domain and all its subdomains.
    Subdomains(String),
    /// `#queue`: a queue by its name (a host, `[ip]` or `[ip:port]`).
    Queue(String),
}

/// Parses an ETRN argument, lower-cased.
///
/// ```text
/// etrn-arg = node / "@" domain / "#" queue-name     ; RFC 1985 §5
/// ```
pub fn node(arg: &str) -> Result<Node, &'static str> {
    let arg = arg.trim();
    if arg.is_empty() || arg.len() > MAX_NODE {
        return Err("a node name is required");
    }
    let name_ok = |s: &str, literal: bool| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.contains("..")
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || b == b'.'
                    || b == b'-'
                    || b == b'_'
                    || (literal && matches!(b, b'[' | b']' | b':'))
            })
    };
    let lower = arg.to_ascii_lowercase();
    if let Some(d) = lower.strip_prefix('@') {
        return name_ok(d, false)
            .then(|| Node::Subdomains(d.to_string()))
            .ok_or("bad domain name");
    }
    if let Some(q) = lower.strip_prefix('#') {
        return name_ok(q, true)
            .then(|| Node::Queue(q.to_string()))
            .ok_or("bad queue name");
    }
    name_ok(&lower, false)
        .then(|| Node::Host(lower.clone()))
        .ok_or("bad node name")
}

/// A set of recipients named by queue name or recipient domain: each pattern (lower case, `*`
/// wildcards) is matched against both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    patterns: Vec<String>,
}

impl Selection {
    /// Recipients whose queue or domain matches one of `patterns`.
    pub fn new(patterns: Vec<String>) -> Selection {
        Selection {
            patterns: patterns
                .into_iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether a recipient routed to `queue` (if known) in `domain` is selected.
    pub fn hits(&self, queue: Option<&str>, domain: &str) -> bool {
        let m = |t: &str| {
            let t = t.to_ascii_lowercase();
            self.patterns.iter().any(|p| super::wildcard(p, &t))
        };
        queue.is_some_and(m) || (!domain.is_empty() && m(domain))
    }
}

/// The domain a wake-up address names: `<domain>-wakeup@<main domain>` (guide.txt:11733-11740).
pub fn wakeup_address(address: &str, main_domain: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(main_domain) {
        return None;
    }
    let lower = local.to_ascii_lowercase();
    match node(lower.strip_suffix("-wakeup")?) {
        Ok(Node::Host(h)) => Some(h),
        _ => None,
    }
}

/// The queue of a wake-up node (`wakeup@node` through the Router, guide.txt:11695-11703).
pub enum Resolved {
    /// An SMTP queue with this name.
    Queue(String),
    /// The node does not route to SMTP (a local domain, an error).
    NotRemote(String),
}

/// Routes `wakeup@domain` (blocking).
pub fn resolve(route: &dyn Route, domain: &str) -> Resolved {
    match route.route(&format!("wakeup@{domain}")) {
        Ok(r) => match r.target {
            Target::Smtp { host, .. } => Resolved::Queue(host.to_ascii_lowercase()),
            _ => Resolved::NotRemote("it is not a remote host".into()),
        },
        Err(e) => Resolved::NotRemote(e.to_string()),
    }
}

/// The held queues, the ETRN releases and the ATRN connections; shared by the sending channel
/// and the SMTP sessions.
pub struct Holds {
    queue: Arc<Queue>,
    settings: Arc<dyn Fn() -> DialupSettings + Send + Sync>,
    released: Mutex<Vec<(Selection, Instant)>>,
    attached: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Conn>>>>,
}

impl Holds {
    /// Holds over `queue`, reading the settings from `settings` at every check.
    pub fn new(
        queue: Arc<Queue>,
        settings: Arc<dyn Fn() -> DialupSettings + Send + Sync>,
    ) -> Holds {
        Holds {
            queue,
            settings,
            released: Mutex::new(Vec::new()),
            attached: Mutex::new(HashMap::new()),
        }
    }

    /// The holds gatehoused runs: settings from `Settings/SMTP.settings` over the defaults.
    pub fn from_store(queue: Arc<Queue>, store: Store) -> Holds {
        Holds::new(
            queue,
            Arc::new(move || {
                dialup_settings_from(&super::stored_settings(&store)).unwrap_or_default()
            }),
        )
    }

    /// The current settings.
    pub fn settings(&self) -> DialupSettings {
        (self.settings)()
    }

    /// Whether mail for `queue` (recipient domain `domain`) waits for a release now.
    pub fn is_held(&self, queue: &str, domain: &str) -> bool {
        let held = Selection::new(self.settings().hold);
        if !held.hits(Some(queue), domain) {
            return false;
        }
        let mut released = self.released.lock().unwrap_or_else(PoisonError::into_inner);
        released.retain(|(_, at)| at.elapsed() < RELEASE_SPAN);
        !released.iter().any(|(s, _)| s.hits(Some(queue), domain))
    }

    /// Whether `queue` or `domain` is in Hold Mail for Domains.
    pub fn in_hold_list(&self, queue: &str, domain: &str) -> bool {
        Selection::new(self.settings().hold).hits(Some(queue), domain)
    }

    /// ETRN: lets the selection go out by the normal route and makes it due now; returns how many
    /// messages were released.
    pub fn release(&self, sel: Selection) -> usize {
        // Marked before the wake, so no worker sees the recipient still held. Expired and
        // repeated releases are dropped first: a client repeating ETRN cannot grow the list.
        {
            let mut released = self.released.lock().unwrap_or_else(PoisonError::into_inner);
            released.retain(|(s, at)| at.elapsed() < RELEASE_SPAN && *s != sel);
            released.push((sel.clone(), Instant::now()));
        }
        self.wake(&sel)
    }

    /// Ends the releases that cover `queue` / `domain` (its host is unreachable again).
    pub fn end_release(&self, queue: &str, domain: &str) {
        self.released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(s, _)| !s.hits(Some(queue), domain));
    }

    /// Makes the selection's deferred recipients due now.
    fn wake(&self, sel: &Selection) -> usize {
        self.queue.release_where(|_, q, d| sel.hits(q, d))
    }

    /// Recipients of the selection not yet done (`due_only`: due now or being delivered).
    pub fn waiting(&self, sel: &Selection, due_only: bool) -> usize {
        self.queue.count_where(due_only, |q, d| sel.hits(q, d))
    }

    /// The ATRN connection attached under `queue`, if any.
    pub(super) fn attached(&self, queue: &str) -> Option<Arc<tokio::sync::Mutex<Conn>>> {
        self.attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&queue.to_ascii_lowercase())
            .cloned()
    }

    /// Attaches an ATRN connection; false when one is attached already (RFC 2645 §4: 450).
    fn attach(&self, queue: &str, conn: Arc<tokio::sync::Mutex<Conn>>) -> bool {
        let mut a = self.attached.lock().unwrap_or_else(PoisonError::into_inner);
        let key = queue.to_ascii_lowercase();
        if a.contains_key(&key) {
            return false;
        }
        a.insert(key, conn);
        true
    }

    fn detach(&self, queue: &str) {
        self.attached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&queue.to_ascii_lowercase());
    }
}

/// An SMTP reply: code, enhanced code, text.
pub type Reply = (u16, &'static str, String);

/// ETRN node (RFC 1985): releases the node's queue; the reply to send. Blocking (Router, queue).
pub fn etrn(holds: &Holds, route: &dyn Route, arg: &str, logger: &Logger, tag: &str) -> Reply {
    let n = match node(arg) {
        Ok(n) => n,
        Err(e) => return (501, "5.5.4", format!("ETRN: {e}")),
    };
    let (shown, patterns) = match &n {
        Node::Queue(q) => (format!("#{q}"), vec![q.clone()]),
        Node::Host(h) => match resolve(route, h) {
            Resolved::Queue(q) => (h.clone(), vec![q, h.clone()]),
            Resolved::NotRemote(why) => {
                return (459, "", format!("Node {h} not allowed: {why}"));
            }
        },
        Node::Subdomains(d) => {
            let mut p = vec![d.clone(), format!("*.{d}")];
            if let Resolved::Queue(q) = resolve(route, d) {
                p.push(q);
            }
            (format!("@{d}"), p)
        }
    };
    let sel = Selection::new(patterns);
    let waiting = holds.waiting(&sel, false);
    holds.release(sel);
    logger.log(
        Level::Major,
        tag,
        format_args!("ETRN {shown}: {waiting} waiting recipient(s) released"),
    );
    if waiting == 0 {
        (251, "", format!("OK, no messages waiting for node {shown}"))
    } else {
        (
            253,
            "",
            format!("OK, {waiting} pending messages for node {shown} started"),
        )
    }
}

/// What an accepted ATRN hands to the reversal: the queue and the recipients it covers.
#[derive(Debug, Clone)]
pub struct Reversal {
    /// The queue name the connection is attached under.
    pub queue: String,
    /// The recipients to deliver.
    pub selection: Selection,
}

/// ATRN [domain] (RFC 2645 §4, guide.txt:11708-11727): checks who may take which queue; the
/// refusal, or what to deliver. Blocking (Router, queue).
pub fn atrn(
    holds: &Holds,
    route: &dyn Route,
    account: &AccountId,
    main_domain: &str,
    arg: &str,
) -> Result<Reversal, Reply> {
    // guide.txt:11712: only one parameter is allowed (RFC 2645 permits a list).
    if arg.contains(',') {
        return Err((501, "5.5.4", "Only one domain per ATRN is allowed".into()));
    }
    // guide.txt:11720: no parameter means the queue named after the user.
    let domain = if arg.trim().is_empty() {
        account.name.to_ascii_lowercase()
    } else {
        match node(arg) {
            Ok(Node::Host(h)) => h,
            _ => return Err((501, "5.5.4", "ATRN: bad domain name".into())),
        }
    };
    let queue = match resolve(route, &domain) {
        Resolved::Queue(q) => q,
        Resolved::NotRemote(why) => {
            return Err((
                450,
                "4.7.1",
                format!("ATRN request refused: {domain}: {why}"),
            ))
        }
    };
    // guide.txt:11714-11719: the queue is named after the authenticated Main Domain account.
    let name = account.name.to_ascii_lowercase();
    if !account.domain.eq_ignore_ascii_case(main_domain) || (name != domain && name != queue) {
        return Err((
            450,
            "4.7.1",
            format!("ATRN request refused: {account} may not take mail for {domain}"),
        ));
    }
    // guide.txt:11721-11722, 24347: the domain must be in Hold Mail for Domains.
    if !holds.in_hold_list(&queue, &domain) {
        return Err((
            450,
            "4.7.1",
            format!("ATRN request refused: {domain} is not in Hold Mail for Domains"),
        ));
    }
    if holds.attached(&queue).is_some() {
        return Err((
            450,
            "4.2.1",
            format!("Lock busy: mail for {domain} is being sent"),
        ));
    }
    let selection = Selection::new(vec![queue.clone(), domain]);
    if holds.waiting(&selection, false) == 0 {
        return Err((453, "", "You have no mail".into()));
    }
    Ok(Reversal { queue, selection })
}

/// The provider's half of an accepted ATRN, after `250`: reads the customer's greeting, says
/// EHLO, attaches the connection for the sending channel, releases the queue, waits until nothing
/// is due for it, and says QUIT.
pub(super) async fn reversed(
    holds: Arc<Holds>,
    rev: Reversal,
    stream: Box<dyn Io>,
    helo: &str,
    timeout: Duration,
    logger: &Logger,
    tag: &str,
) {
    let mut conn = Conn::over(stream);
    let greeted = match conn.read_reply(timeout).await {
        Ok(r) if r.code / 100 == 2 => conn.ehlo(helo, timeout).await.map(|r| r.code / 100 == 2),
        Ok(r) => Err(format!("greeting: {}", r.text())),
        Err(e) => Err(e),
    };
    match greeted {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            logger.log(
                Level::Problems,
                tag,
                format_args!("ATRN: the customer did not take the turn ({greeted:?})"),
            );
            return;
        }
    }
    let conn = Arc::new(tokio::sync::Mutex::new(conn));
    if !holds.attach(&rev.queue, conn.clone()) {
        // Another ATRN session took the queue between the check and now.
        logger.log(
            Level::Problems,
            tag,
            format_args!("ATRN: {} is being sent by another session", rev.queue),
        );
        conn.lock().await.quit(timeout).await;
        return;
    }
    let released = holds.wake(&rev.selection);
    logger.log(
        Level::Major,
        tag,
        format_args!(
            "ATRN: sending {released} message(s) of {} over this connection",
            rev.queue
        ),
    );
    let started = Instant::now();
    loop {
        tokio::time::sleep(ATRN_POLL).await;
        let h = holds.clone();
        let sel = rev.selection.clone();
        let due = tokio::task::spawn_blocking(move || h.waiting(&sel, true))
            .await
            .unwrap_or(0);
        if due == 0 || conn.lock().await.broken || started.elapsed() > ATRN_MAX {
            break;
        }
    }
    holds.detach(&rev.queue);
    let mut c = conn.lock().await;
    if !c.broken {
        c.quit(timeout).await;
    }
    logger.log(Level::Major, tag, format_args!("ATRN: {} done", rev.queue));
}

/// A stream with bytes already read from it put back in front (the connection changes hands
/// with input in a buffer).
pub struct Prefixed<S> {
    rest: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, whose next bytes are `rest`.
    pub fn new(rest: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed { rest, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.rest.len() {
            let n = (self.rest.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.rest[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "etrn_tests.rs"]
mod tests;
