//! Waking up the backup server (we are the dial-up client): ETRN or ATRN to `SendWakeupsTo`.
//!
//! Standards: RFC 1985 (ETRN), RFC 2645 (ATRN: AUTH, ATRN, then we are the SMTP server on the
//! same connection), RFC 2195 (CRAM-MD5, with LOGIN as the fall-back).
//! Guide: guide.txt:11611-11679 (Send Wakeups, Use ATRN, login name and password, Wake Up Now),
//! 5253-5303 (the TCP Activity Schedule limits wake-ups; Pause is the least time between two).
//! Log tag `SMTPW` (guide.txt:11320).
//!
//! When: [`Wakeups`] is a link session action (`dialup::WakeUp`): the link starts sessions only
//! inside the TCP Activity Schedule's windows and at most once per Pause; a session sends the
//! wake-up when a window opened or on `WakeUpNow` (`all`), and otherwise when `SendWakeupsEvery`
//! has run out since the last one ([`due`]). Times are the link's clock (`--test-clock` in tests).
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
use crate::dialup::{Link, WakeUp};
use crate::kernel::log::{Level, Logger};
use crate::store::Store;

/// The log tag of wake-ups (guide.txt:11320).
pub const TAG: &str = "SMTPW";

/// Whether the periodic wake-up is due at `now`: `every` has passed since the last one (or there
/// was none). The link keeps sessions inside the schedule's windows and at most once per Pause.
pub fn due(last: Option<NaiveDateTime>, now: NaiveDateTime, every: Option<Duration>) -> bool {
    match (every, last) {
        (None, _) => false,
        (Some(_), None) => true,
        // A clock set back counts as passed, as for the link's Pause.
        (Some(e), Some(l)) => now < l || (now - l).to_std().is_ok_and(|d| d >= e),
    }
}

/// The wake-up client of one server: a link session action (`dialup::WakeUp`).
pub struct Wakeups {
    config: Arc<Config>,
    store: Store,
    handle: Handle,
    logger: Logger,
    /// Each session is noted in `GetServerStatus` `RemoteServers`.
    link: Arc<Link>,
    /// When the last wake-up was sent (link time).
    last: Mutex<Option<NaiveDateTime>>,
    busy: Arc<AtomicBool>,
}

impl Wakeups {
    /// Wake-ups for the server whose SMTP sessions run with `config` (the reversed ATRN
    /// connection is served with it), with settings read from `store`, run on `handle`, noted
    /// on `link`.
    pub fn new(config: Arc<Config>, store: Store, handle: Handle, link: Arc<Link>) -> Wakeups {
        Wakeups {
            logger: config.logger.clone(),
            config,
            store,
            handle,
            link,
            last: Mutex::new(None),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The settings, or `None` (logged) when they are not usable or name no backup server.
    fn settings(&self) -> Option<(DialupSettings, SendSettings)> {
        let eff = super::stored_settings(&self.store);
        let read = super::etrn::dialup_settings_from(&eff)
            .and_then(|d| Ok((d, client::send_settings_from(&eff)?)));
        match read {
            Ok((d, s)) => d.wakeups_to.is_some().then_some((d, s)),
            Err(e) => {
                self.logger.log(
                    Level::Failures,
                    TAG,
                    format_args!("the wake-up settings are not usable: {e}"),
                );
                None
            }
        }
    }

    fn last(&self) -> Option<NaiveDateTime> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WakeUp for Wakeups {
    fn name(&self) -> &str {
        "ETRN/ATRN"
    }

    /// `SendWakeupsEvery` has run out (guide.txt:11624-11632).
    fn due(&self, now: NaiveDateTime) -> bool {
        self.settings()
            .is_some_and(|(d, _)| due(self.last(), now, d.wakeups_every))
    }

    /// Sends the wake-up when a window opened or the administrator asked (`all`), or when it is
    /// due; one session at a time, in the background. False when no backup server is set, the
    /// wake-up is not due, or one is still running: nothing was started.
    fn run(&self, now: NaiveDateTime, all: bool) -> bool {
        let Some((d, s)) = self.settings() else {
            return false;
        };
        if !all && !due(self.last(), now, d.wakeups_every) {
            return false;
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(now);
        if self.busy.swap(true, Ordering::SeqCst) {
            self.logger
                .log(Level::LowLevel, TAG, "a wake-up session is running already");
            return false;
        }
        let client = Client {
            config: Arc::clone(&self.config),
            logger: self.logger.clone(),
        };
        let busy = Arc::clone(&self.busy);
        let link = Arc::clone(&self.link);
        self.handle.spawn(async move {
            let result = match client.session(&d, &s).await {
                Ok(what) => {
                    client.logger.log(Level::Major, TAG, what);
                    "OK".to_string()
                }
                Err(e) => {
                    client
                        .logger
                        .log(Level::Failures, TAG, format_args!("wake-up failed: {e}"));
                    e
                }
            };
            if let Some((host, _)) = &d.wakeups_to {
                // The wake-up moves no message itself: they come later by the backup's own
                // delivery (ETRN) or arrive in the reversed session (ATRN).
                link.note_remote(remote_module(d.use_atrn), host, result, 0);
            }
            busy.store(false, Ordering::SeqCst);
        });
        true
    }
}

/// The module name a wake-up session is noted under in `RemoteServers`.
fn remote_module(use_atrn: bool) -> &'static str {
    if use_atrn {
        "ATRN"
    } else {
        "ETRN"
    }
}

/// One wake-up session's side of things.
struct Client {
    config: Arc<Config>,
    logger: Logger,
}

impl Client {
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
        let auth = match (&d.atrn_login, d.use_atrn) {
            (_, false) => None,
            (Some((user, password)), true) => Some((
                user.clone(),
                String::from_utf8_lossy(password.expose()).into_owned(),
            )),
            (None, true) => return Err("Use ATRN needs ATRNLoginName and ATRNPassword".into()),
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
    use crate::net::sasl::Secret;
    use chrono::NaiveDate;

    fn at(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 23)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .expect("valid time")
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn periodic_wakeups() {
        assert!(
            !due(None, at(9, 0), None),
            "never: only windows and WakeUpNow"
        );
        assert!(!due(Some(at(8, 0)), at(9, 0), None));
        assert!(due(None, at(9, 0), Some(10 * MIN)), "the first");
        assert!(!due(Some(at(9, 0)), at(9, 9), Some(10 * MIN)));
        assert!(due(Some(at(9, 0)), at(9, 10), Some(10 * MIN)));
        assert!(
            due(Some(at(9, 0)), at(8, 0), Some(10 * MIN)),
            "a clock set back"
        );
    }

    /// A backup server that answers each expected command with a canned reply, then (with
    /// `reverse`) plays the SMTP client: it reads our greeting and sends `reverse` line by line.
    async fn backup(
        script: Vec<(&'static str, &'static str)>,
        reverse: Vec<&'static str>,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (sock, _) = l.accept().await.unwrap();
            let (r, mut w) = tokio::io::split(sock);
            let mut r = BufReader::new(r);
            let mut seen = Vec::new();
            let mut line = String::new();
            w.write_all(b"220 backup ready\r\n").await.unwrap();
            for (want, answer) in script {
                line.clear();
                r.read_line(&mut line).await.unwrap();
                assert!(line.starts_with(want), "want {want:?}, got {line:?}");
                seen.push(line.trim_end().to_string());
                w.write_all(answer.as_bytes()).await.unwrap();
            }
            if reverse.is_empty() {
                return seen;
            }
            // Roles reversed: every reply we read until the end is recorded.
            line.clear();
            r.read_line(&mut line).await.unwrap();
            seen.push(line.trim_end().to_string());
            for cmd in reverse {
                w.write_all(cmd.as_bytes()).await.unwrap();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap() == 0 {
                        return seen;
                    }
                    seen.push(line.trim_end().to_string());
                    if line.as_bytes().get(3) != Some(&b'-') {
                        break;
                    }
                }
            }
            seen
        });
        (port, task)
    }

    /// Every address is a local account.
    struct AllLocal;

    impl crate::kernel::mail::Route for AllLocal {
        fn route(
            &self,
            a: &str,
        ) -> Result<crate::kernel::mail::Routed, crate::kernel::mail::RouteError> {
            Ok(crate::kernel::mail::Routed {
                target: crate::kernel::mail::Target::Local {
                    domain: "example.com".into(),
                    account: a.split('@').next().unwrap_or(a).into(),
                    mailbox: None,
                    detail: None,
                },
                relay: false,
            })
        }
    }

    /// A wake-up client over a queue in `dir`; the store's directory comes back too (it must
    /// outlive the client).
    fn client(
        dir: &std::path::Path,
    ) -> (Client, Arc<crate::kernel::queue::Queue>, tempfile::TempDir) {
        let clock = crate::kernel::clock::SystemClock::shared();
        let logger = Logger::open(
            dir.join("SystemLogs"),
            crate::kernel::log::LogSettings::default(),
            clock.clone(),
        )
        .unwrap();
        let q = crate::kernel::queue::Queue::open(
            dir,
            "example.com",
            clock,
            logger.clone(),
            crate::kernel::queue::QueueSettings::default(),
        )
        .unwrap();
        let (store_dir, ctx) = crate::cli::tests::fixture();
        let config = Config::new(
            Arc::new(ctx),
            Arc::new(crate::kernel::queue::Enqueuer::new(q.clone())),
            Arc::new(AllLocal),
            None,
            logger.clone(),
            0,
        );
        (
            Client {
                config: Arc::new(config),
                logger,
            },
            q,
            store_dir,
        )
    }

    fn settings(port: u16, atrn: bool) -> (DialupSettings, SendSettings) {
        (
            DialupSettings {
                wakeups_to: Some(("127.0.0.1".into(), port)),
                use_atrn: atrn,
                atrn_login: atrn.then(|| ("office.test".into(), Secret::new("pw"))),
                domains: vec!["office.test".into()],
                ..DialupSettings::default()
            },
            SendSettings {
                tls: SendTls::Never,
                ..SendSettings::default()
            },
        )
    }

    #[tokio::test]
    async fn etrn_names_each_domain_then_quits() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _store) = client(dir.path());
        let (port, seen) = backup(
            vec![
                ("EHLO ", "250-backup\r\n250 ETRN\r\n"),
                (
                    "ETRN office.test",
                    "253 OK, 2 pending messages for node office.test started\r\n",
                ),
                ("QUIT", "221 bye\r\n"),
            ],
            vec![],
        )
        .await;
        let (d, s) = settings(port, false);
        let said = c.session(&d, &s).await.unwrap();
        assert!(said.contains("ETRN office.test: 253"), "{said}");
        assert_eq!(seen.await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn atrn_authenticates_then_serves_smtp_on_the_same_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (c, q, _store) = client(dir.path());
        let plain = "AUTH PLAIN AG9mZmljZS50ZXN0AHB3";
        let (port, seen) = backup(
            vec![
                ("EHLO ", "250-backup\r\n250-AUTH PLAIN\r\n250 ATRN\r\n"),
                (plain, "235 ok\r\n"),
                (
                    "ATRN office.test",
                    "250 OK, now reversing the connection\r\n",
                ),
            ],
            vec![
                "EHLO backup.test\r\n",
                "MAIL FROM:<a@far.test>\r\n",
                "RCPT TO:<joe@example.com>\r\n",
                "DATA\r\n",
                "Subject: held\r\n\r\nbody\r\n.\r\n",
                "QUIT\r\n",
            ],
        )
        .await;
        let (d, s) = settings(port, true);
        let said = c.session(&d, &s).await.unwrap();
        assert!(said.contains("reversed session ended"), "{said}");
        let seen = seen.await.unwrap();
        assert!(
            seen[3].starts_with("220 "),
            "we greet after the turn: {seen:?}"
        );
        assert!(seen.iter().any(|l| l.starts_with("250 2.6.0")), "{seen:?}");
        assert_eq!(q.len(), 1, "the message went to the Enqueuer");
    }

    #[tokio::test]
    async fn atrn_with_no_mail_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _store) = client(dir.path());
        let plain = "AUTH PLAIN AG9mZmljZS50ZXN0AHB3";
        let (port, _seen) = backup(
            vec![
                ("EHLO", "250-backup\r\n250-AUTH PLAIN\r\n250 ATRN\r\n"),
                (plain, "235 ok\r\n"),
                ("ATRN office.test", "453 You have no mail\r\n"),
                ("QUIT", "221 bye\r\n"),
            ],
            vec![],
        )
        .await;
        let (d, s) = settings(port, true);
        assert!(c.session(&d, &s).await.unwrap().contains("no mail waiting"));
        let (port, _seen) = backup(
            vec![
                ("EHLO", "250-backup\r\n250-AUTH PLAIN\r\n250 ATRN\r\n"),
                (plain, "235 ok\r\n"),
                ("ATRN office.test", "450 ATRN request refused\r\n"),
                ("QUIT", "221 bye\r\n"),
            ],
            vec![],
        )
        .await;
        let (d, s) = settings(port, true);
        let e = c.session(&d, &s).await.unwrap_err();
        assert!(e.contains("450"), "{e}");
        let (d, s) = settings(port, true);
        let no_login = DialupSettings {
            atrn_login: None,
            ..d
        };
        assert!(c.session(&no_login, &s).await.is_err());
    }
}
