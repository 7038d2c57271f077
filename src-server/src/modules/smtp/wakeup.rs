//! Waking up the backup server (we are the dial-up client): ETRN or ATRN to `SendWakeupsTo`.
//!
//! Standards: RFC 1985 (ETRN), RFC 2645 (ATRN: AUTH, ATRN, then we are the SMTP server on the
//! same connection), RFC 2195 (CRAM-MD5, with LOGIN as the fall-back).
//! Guide: guide.txt:11611-11679 (Send Wakeups, Use ATRN, login name and password, Wake Up Now),
//! 5253-5303 (the TCP Activity Schedule limits wake-ups; Pause is the least time between two).
//! Log tag `SMTPW` (guide.txt:11320).
//!
//! When: on `WakeUpNow`, when a schedule window opens, and every `SendWakeupsEvery` inside a
//! window, never twice within the window's Pause ([`due`]); never while the link is closed. The
//! server's schedule watcher calls [`Wakeups::tick`]; times come from the link's clock, so
//! tests move time by hand.
//!
//! How: the connection is opened by the sending side's own code (`client::open`: greeting, EHLO,
//! STARTTLS as `SendTLS`/`SendEncryptedTo` say, AUTH for ATRN). ETRN names each domain and says
//! QUIT: the backup then connects to our SMTP listener. After `250` to ATRN the connection is
//! served by the receiving session ([`super::session::serve`]) exactly as an accepted one, so the
//! mail goes through the same checks and the Enqueuer.
//!
//! Security: the backup's replies are read with the client's bounded reader; the reversed
//! session is an ordinary SMTP session (relaying rules apply; the backup is not trusted more).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::NaiveDateTime;
use tokio::runtime::Handle;

use super::client::{self, Candidate, Open, SendSettings, SendTls};
use super::etrn::DialupSettings;
use super::session::{self, Endpoint};
use super::{wildcard, Config};
use crate::dialup::Link;
use crate::kernel::log::{Level, Logger};
use crate::store::Store;

/// The log tag of wake-ups (guide.txt:11320).
pub const TAG: &str = "SMTPW";

/// What the wake-up timing remembers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// When the last wake-up was sent.
    pub last: Option<NaiveDateTime>,
    /// Whether the link was open at the previous look (`None` before the first).
    pub was_open: Option<bool>,
}

/// Whether a wake-up is due at `now`: never with the link closed, never within `pause` of the
/// last one; when a window opens (or at the first look inside one); then every `every`.
pub fn due(
    t: &Timing,
    now: NaiveDateTime,
    open: bool,
    every: Option<Duration>,
    pause: Duration,
) -> bool {
    if !open {
        return false;
    }
    let since = |last: NaiveDateTime| (now - last).to_std().unwrap_or(Duration::ZERO);
    if t.last.is_some_and(|l| since(l) < pause) {
        return false;
    }
    if t.was_open != Some(true) {
        return true;
    }
    match (every, t.last) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(e), Some(l)) => since(l) >= e,
    }
}

/// The wake-up client of one server.
pub struct Wakeups {
    config: Arc<Config>,
    link: Arc<Link>,
    store: Store,
    handle: Handle,
    logger: Logger,
    timing: Mutex<Timing>,
    busy: Arc<AtomicBool>,
}

impl Wakeups {
    /// Wake-ups for the server whose SMTP sessions run with `config` (the reversed ATRN
    /// connection is served with it), gated by `link`, with settings read from `store`.
    pub fn new(config: Arc<Config>, link: Arc<Link>, store: Store, handle: Handle) -> Wakeups {
        Wakeups {
            logger: config.logger.clone(),
            config,
            link,
            store,
            handle,
            timing: Mutex::new(Timing::default()),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    fn settings(&self) -> Result<(DialupSettings, SendSettings), String> {
        let eff = super::stored_settings(&self.store);
        Ok((
            super::etrn::dialup_settings_from(&eff)?,
            client::send_settings_from(&eff)?,
        ))
    }

    /// One look of the schedule watcher (blocking: reads the settings): sends a wake-up when
    /// [`due`] says so. `open` is the link's state now.
    pub fn tick(self: &Arc<Self>, open: bool) {
        let now = self.link.now();
        let mut t = *self.timing.lock().unwrap_or_else(PoisonError::into_inner);
        let settings = self.settings();
        let send = match &settings {
            Ok((d, _)) if d.wakeups_to.is_some() => {
                due(&t, now, open, d.wakeups_every, self.link.pause())
            }
            _ => false,
        };
        t.was_open = Some(open);
        if send {
            t.last = Some(now);
        }
        *self.timing.lock().unwrap_or_else(PoisonError::into_inner) = t;
        if let (true, Ok((d, s))) = (send, settings) {
            self.start(d, s);
        }
    }

    /// Wake Up Now (guide.txt:11678-11679), blocking: starts a wake-up session at once; false
    /// when no backup server is set. The caller checked the link.
    pub fn wake_up_now(self: &Arc<Self>) -> Result<bool, String> {
        let (d, s) = self.settings()?;
        if d.wakeups_to.is_none() {
            return Ok(false);
        }
        self.timing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last = Some(self.link.now());
        self.start(d, s);
        Ok(true)
    }

    /// Runs one session in the background; one at a time.
    fn start(self: &Arc<Self>, d: DialupSettings, s: SendSettings) {
        if self.busy.swap(true, Ordering::SeqCst) {
            self.logger
                .log(Level::LowLevel, TAG, "a wake-up session is running already");
            return;
        }
        let me = Arc::clone(self);
        self.handle.spawn(async move {
            let result = me.session(&d, &s).await;
            match result {
                Ok(what) => me.logger.log(Level::Major, TAG, what),
                Err(e) => me
                    .logger
                    .log(Level::Failures, TAG, format_args!("wake-up failed: {e}")),
            }
            me.busy.store(false, Ordering::SeqCst);
        });
    }

    /// Connects to the backup server and sends ETRN or ATRN.
    async fn session(&self, d: &DialupSettings, s: &SendSettings) -> Result<String, String> {
        let Some((host, port)) = d.wakeups_to.clone() else {
            return Err("no backup server (SendWakeupsTo)".into());
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        // guide.txt:11675-11676: the backup in Send Encrypted To means TLS or nothing.
        let tls = if s
            .encrypted_to
            .iter()
            .any(|p| wildcard(&p.to_ascii_lowercase(), &host))
        {
            SendTls::Required
        } else {
            s.tls
        };
        let auth = if d.use_atrn {
            Some(
                d.atrn_login
                    .clone()
                    .ok_or("Use ATRN needs ATRNLoginName and ATRNPassword")?,
            )
        } else {
            None
        };
        let mut last = format!("{host} has no address");
        for addr in addrs {
            let c = Candidate {
                name: host.clone(),
                addr,
                relay: false,
            };
            self.logger.log(
                Level::LowLevel,
                TAG,
                format_args!("connecting to {host} [{addr}]"),
            );
            match client::open(&c, &self.config.host, &host, tls, auth.as_ref(), s).await {
                Ok(conn) if d.use_atrn => return self.atrn(conn, d, addr, s).await,
                Ok(conn) => return self.etrn(conn, d, s).await,
                Err(Open::Fatal(e)) => return Err(format!("{host} [{addr}]: {e}")),
                Err(Open::Next(e)) => last = format!("{host} [{addr}]: {e}"),
            }
        }
        Err(last)
    }

    /// ETRN for each domain (RFC 1985), then QUIT.
    async fn etrn(
        &self,
        mut conn: client::Conn,
        d: &DialupSettings,
        s: &SendSettings,
    ) -> Result<String, String> {
        let domains = if d.domains.is_empty() {
            vec![self.config.host.clone()]
        } else {
            d.domains.clone()
        };
        let mut said = Vec::new();
        for domain in &domains {
            let r = conn.cmd(&format!("ETRN {domain}"), s.reply_timeout).await?;
            // RFC 1985 §5: 250-253 mean the queue was started or is empty.
            if !(250..=253).contains(&r.code) {
                conn.quit(s.reply_timeout).await;
                return Err(format!("ETRN {domain}: {}", r.text()));
            }
            said.push(format!("ETRN {domain}: {}", r.text()));
        }
        conn.quit(s.reply_timeout).await;
        Ok(said.join("; "))
    }

    /// ATRN (RFC 2645 §4); after `250` we serve SMTP on the same connection until the backup
    /// says QUIT.
    async fn atrn(
        &self,
        mut conn: client::Conn,
        d: &DialupSettings,
        peer: SocketAddr,
        s: &SendSettings,
    ) -> Result<String, String> {
        let line = if d.domains.is_empty() {
            "ATRN".to_string()
        } else {
            format!("ATRN {}", d.domains.join(","))
        };
        let r = conn.cmd(&line, s.reply_timeout).await?;
        match r.code {
            250 => {}
            453 => {
                conn.quit(s.reply_timeout).await;
                return Ok(format!("{line}: no mail waiting ({})", r.text()));
            }
            _ => {
                conn.quit(s.reply_timeout).await;
                return Err(format!("{line}: {}", r.text()));
            }
        }
        self.logger.log(
            Level::Major,
            TAG,
            format_args!("{line}: the connection is turned around; receiving"),
        );
        let ep = Endpoint {
            peer,
            local: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls: conn.tls,
        };
        session::serve(Box::new(conn.into_stream()), ep, Arc::clone(&self.config))
            .await
            .map_err(|e| format!("{line}: the reversed session failed: {e}"))?;
        Ok(format!("{line}: the reversed session ended"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 23)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .expect("valid time")
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn nothing_while_the_link_is_closed() {
        let t = Timing::default();
        assert!(!due(&t, at(9, 0), false, Some(MIN), Duration::ZERO));
        let t = Timing {
            last: None,
            was_open: Some(false),
        };
        assert!(!due(&t, at(9, 0), false, None, Duration::ZERO));
    }

    #[test]
    fn a_window_opening_sends_one() {
        let closed = Timing {
            last: Some(at(7, 0)),
            was_open: Some(false),
        };
        assert!(due(&closed, at(9, 0), true, None, Duration::ZERO));
        // The first look after start, inside a window, counts as an opening.
        assert!(due(
            &Timing::default(),
            at(9, 0),
            true,
            None,
            Duration::ZERO
        ));
        // Inside the window without a period: no more.
        let open = Timing {
            last: Some(at(9, 0)),
            was_open: Some(true),
        };
        assert!(!due(&open, at(9, 30), true, None, Duration::ZERO));
    }

    #[test]
    fn periodic_inside_the_window() {
        let t = Timing {
            last: Some(at(9, 0)),
            was_open: Some(true),
        };
        assert!(!due(&t, at(9, 9), true, Some(10 * MIN), Duration::ZERO));
        assert!(due(&t, at(9, 10), true, Some(10 * MIN), Duration::ZERO));
    }

    #[test]
    fn at_most_once_per_pause() {
        // A period shorter than Pause: Pause wins.
        let t = Timing {
            last: Some(at(9, 0)),
            was_open: Some(true),
        };
        assert!(!due(&t, at(9, 10), true, Some(MIN), 30 * MIN));
        assert!(due(&t, at(9, 30), true, Some(MIN), 30 * MIN));
        // A window reopening within Pause of the last wake-up waits too.
        let reopened = Timing {
            last: Some(at(9, 0)),
            was_open: Some(false),
        };
        assert!(!due(&reopened, at(9, 5), true, None, 30 * MIN));
        assert!(due(&reopened, at(9, 31), true, None, 30 * MIN));
    }
}
