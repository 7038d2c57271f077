//! SMTP session one-liners over an in-memory stream, with a fake Enqueuer and Router.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

use super::*;
use crate::cli::tests::fixture;
use crate::kernel::clock::SystemClock;
use crate::kernel::log::LogSettings;
use crate::kernel::mail::{
    EnqueueError, MessageId, RouteError, Routed, Source, Submission, Target,
};

/// Records what was submitted.
#[derive(Default)]
struct FakeQueue {
    got: Mutex<Vec<(Submission, Vec<u8>)>>,
}

impl Submit for FakeQueue {
    fn submit(&self, s: Submission, message: &[u8]) -> Result<MessageId, EnqueueError> {
        let mut got = self.got.lock().unwrap();
        got.push((s, message.to_vec()));
        Ok(got.len() as MessageId)
    }
}

/// `*@example.com` is local (`nobody` unknown, `spamtrap` the trap as the Router gives it), `*@err.example` routes to
/// ERROR, `*@relayed.example` is an SMTP target with the Relay marker, anything else is remote.
struct FakeRouter;

impl Route for FakeRouter {
    fn route(&self, address: &str) -> Result<Routed, RouteError> {
        let (local, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| RouteError::BadAddress(address.into()))?;
        let target = match domain {
            "example.com" if local == "nobody" => {
                return Err(RouteError::UnknownUser(address.into()))
            }
            "example.com" if local == "spamtrap" => Target::Error("spamtrap".into()),
            "example.com" => Target::Local {
                domain: domain.into(),
                account: local.into(),
                mailbox: None,
                detail: None,
            },
            "err.example" => Target::Error("Go away".into()),
            _ => Target::Smtp {
                host: domain.into(),
                address: address.into(),
            },
        };
        Ok(Routed {
            target,
            relay: domain == "relayed.example",
        })
    }
}

struct T {
    r: BufReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
    queue: Arc<FakeQueue>,
    _dir: tempfile::TempDir,
}

fn policy() -> Policy {
    Policy {
        settings: SmtpSettings {
            size_limit: Some(2000),
            recipients_limit: 3,
            max_errors: 20,
            ..SmtpSettings::default()
        },
        client_ips: IpList::parse("10.0.0.1").unwrap(),
        blacklisted: IpList::parse("192.0.2.66").unwrap(),
        ..Policy::default()
    }
}

impl T {
    /// A connection from `peer` to local port `port`.
    async fn start(peer: &str, port: u16, p: Policy) -> T {
        let (dir, ctx) = fixture();
        T::with_context(ctx, dir, peer, port, p).await
    }

    /// A connection to a server over this CLI context (its store) and base directory.
    async fn with_context(
        ctx: crate::cli::CliContext,
        dir: tempfile::TempDir,
        peer: &str,
        port: u16,
        p: Policy,
    ) -> T {
        let logger = Logger::open(
            dir.path().join("SystemLogs"),
            LogSettings::default(),
            SystemClock::shared(),
        )
        .unwrap();
        let queue = Arc::new(FakeQueue::default());
        let cfg = Config {
            host: "mail.example.com".into(),
            submit: queue.clone(),
            route: Arc::new(FakeRouter),
            auth: Arc::new(ctx),
            tls: None,
            dns: Arc::new(dns::Dns::new(logger.clone())),
            logger,
            policy: Arc::new(move || p.clone()),
            port_offset: 0,
            holds: None,
        };
        let (client, server) = tokio::io::duplex(1 << 16);
        let ep = session::Endpoint {
            peer: format!("{peer}:4000").parse::<SocketAddr>().unwrap(),
            local: format!("127.0.0.1:{port}").parse().unwrap(),
            tls: false,
        };
        tokio::spawn(session::serve(Box::new(server), ep, Arc::new(cfg)));
        let (r, w) = tokio::io::split(client);
        let mut t = T {
            r: BufReader::new(r),
            w,
            queue,
            _dir: dir,
        };
        let greeting = t.reply().await;
        assert!(greeting.starts_with("220 mail.example.com"), "{greeting}");
        t
    }

    async fn stranger() -> T {
        T::start("192.0.2.1", 25, policy()).await
    }

    /// One whole reply (all its lines), CRLFs kept between lines.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut s = String::new();
            self.r.read_line(&mut s).await.unwrap();
            assert!(
                s.ends_with("\r\n"),
                "reply without CRLF: {s:?} after {all:?}"
            );
            let last = s.as_bytes().get(3) != Some(&b'-');
            all.push_str(&s);
            if last {
                all.truncate(all.len() - 2);
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    /// Sends `cmd` with CRLF and checks the reply starts with `want`.
    async fn cmd(&mut self, cmd: &str, want: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes()).await;
        let got = self.reply().await;
        assert!(got.starts_with(want), "{cmd}: want {want:?}, got {got:?}");
        got
    }

    fn submitted(&self) -> Vec<(Submission, Vec<u8>)> {
        self.queue.got.lock().unwrap().clone()
    }
}

fn plain(user: &str, pw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pw}"))
}

#[tokio::test]
async fn local_delivery_with_dot_stuffing_and_received_header() {
    let mut t = T::stranger().await;
    let ehlo = t.cmd("EHLO client.test", "250-mail.example.com").await;
    for ext in [
        "SIZE 2000",
        "PIPELINING",
        "8BITMIME",
        "DSN",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.contains(ext), "{ext} missing: {ehlo}");
    }
    // CRAM-MD5 is offered only with AdvertiseSecureSASL (passwords are hashed by default).
    assert!(ehlo.contains("AUTH PLAIN LOGIN"));
    assert!(!ehlo.contains("STARTTLS"), "no TLS configured");
    t.cmd("MAIL FROM:<a@far.example> RET=HDRS ENVID=e1", "250 2.1.0")
        .await;
    t.cmd("RCPT TO:<joe@example.com> NOTIFY=FAILURE", "250 2.1.5")
        .await;
    t.cmd("DATA", "354").await;
    t.cmd("Subject: hi\r\n\r\n..dot\r\nline\r\n.", "250 2.6.0")
        .await;
    let got = t.submitted();
    assert_eq!(got.len(), 1);
    let (s, msg) = &got[0];
    assert_eq!(s.return_path, "a@far.example");
    assert_eq!(s.env_id.as_deref(), Some("e1"));
    assert_eq!(s.ret, Some(crate::kernel::mail::Ret::Headers));
    assert_eq!(s.recipients[0].address, "joe@example.com");
    assert!(s.recipients[0].notify.failure);
    let msg = String::from_utf8_lossy(msg);
    assert!(msg.starts_with("Received: from client.test ([192.0.2.1])\r\n\tby mail.example.com (Gatehouse) with ESMTP\r\n\tfor <joe@example.com>;"), "{msg}");
    assert!(
        msg.ends_with("\r\nSubject: hi\r\n\r\n.dot\r\nline\r\n"),
        "{msg}"
    );
    t.cmd("QUIT", "221 2.0.0").await;
}

#[tokio::test]
async fn relaying_refused_for_strangers_allowed_for_clients_auth_and_relay_routes() {
    let mut t = T::stranger().await;
    t.cmd("EHLO x", "250").await;
    t.cmd("MAIL FROM:<a@far.example>", "250").await;
    t.cmd("RCPT TO:<b@other.example>", "550 5.7.1 Relaying denied")
        .await;
    t.cmd("RCPT TO:<b@relayed.example>", "250").await;
    t.cmd("RSET", "250").await;
    // guide.txt:3300-3312: a local Return-Path gets a temporary refusal.
    t.cmd("MAIL FROM:<joe@example.com>", "250").await;
    t.cmd("RCPT TO:<b@other.example>", "450 4.7.1").await;
    t.cmd("RSET", "250").await;
    t.cmd(
        &format!("AUTH PLAIN {}", plain("postmaster", "secret")),
        "235 2.7.0",
    )
    .await;
    t.cmd("MAIL FROM:<postmaster@example.com>", "250").await;
    t.cmd("RCPT TO:<b@other.example>", "250").await;

    let mut c = T::start("10.0.0.1", 25, policy()).await;
    c.cmd("HELO lan", "250 mail.example.com").await;
    c.cmd("MAIL FROM:<a@b.example>", "250").await;
    c.cmd("RCPT TO:<b@other.example>", "250").await;
}

#[tokio::test]
async fn unknown_users_errors_and_spam_traps() {
    // Return-Path verification's checks that need no DNS.
    let p = policy();
    let verifying = Policy {
        settings: SmtpSettings {
            verify_return_path: Whom::NonClients,
            ..p.settings.clone()
        },
        ..p
    };
    let mut t = T::start("192.0.2.1", 25, verifying).await;
    t.cmd("EHLO x", "250").await;
    t.cmd("RCPT TO:<joe@example.com>", "503 5.5.1").await;
    t.cmd("MAIL FROM:<a@err.example>", "550 5.7.1").await;
    t.cmd("MAIL FROM:<a@[192.0.2.9]>", "550 5.7.1").await;
    t.cmd("MAIL FROM:<>", "250").await;
    t.cmd("MAIL FROM:<a@b.example>", "503 5.5.1").await;
    t.cmd("RCPT TO:<nobody@example.com>", "550 5.1.1").await;
    t.cmd("DATA", "554 5.5.1").await;
    t.cmd("RCPT TO:<joe@err.example>", "550 5.7.1 Go away")
        .await;
    t.cmd("RCPT TO:<joe@example.com>", "250").await;
    t.cmd("RCPT TO:<spamtrap@example.com>", "250").await;
    t.cmd("DATA", "554 5.7.1").await;
    assert!(t.submitted().is_empty());
}

#[tokio::test]
async fn blacklisted_hosts_may_talk_but_every_recipient_is_refused() {
    let mut t = T::start("192.0.2.66", 25, policy()).await;
    t.cmd("EHLO x", "250").await;
    t.cmd("MAIL FROM:<a@b.example>", "250").await;
    t.cmd("RCPT TO:<joe@example.com>", "550 5.7.1").await;
}

#[tokio::test]
async fn auth_mechanisms_and_failures() {
    let mut t = T::stranger().await;
    t.cmd("AUTH PLAIN", "503 5.5.1").await;
    t.cmd("EHLO x", "250").await;
    t.cmd("AUTH FOO", "504 5.5.4").await;
    t.cmd("AUTH PLAIN", "334 ").await;
    t.cmd("*", "501 5.0.0").await;
    t.cmd(
        &format!("AUTH PLAIN {}", plain("postmaster", "wrong")),
        "535 5.7.8",
    )
    .await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    t.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    t.cmd(&b64("postmaster"), "334 UGFzc3dvcmQ6").await;
    t.cmd(&b64("secret"), "235 2.7.0").await;
    t.cmd("AUTH PLAIN", "503 5.5.1 Already").await;
}

#[tokio::test]
async fn submission_port_requires_auth() {
    let mut t = T::start("10.0.0.1", 587, policy()).await;
    let ehlo = t.cmd("EHLO x", "250").await;
    assert!(ehlo.contains("AUTH "));
    t.cmd("MAIL FROM:<joe@example.com>", "530 5.7.0").await;
    t.cmd(
        &format!("AUTH PLAIN {}", plain("postmaster", "secret")),
        "235",
    )
    .await;
    t.cmd("MAIL FROM:<postmaster@example.com>", "250").await;
    t.cmd("RCPT TO:<x@far.example>", "250").await;
    t.cmd("DATA", "354").await;
    let msg = t.cmd("Subject: s\r\n\r\nbody\r\n.", "250").await;
    assert!(msg.contains("accepted"));
    let (s, m) = &t.submitted()[0];
    assert!(
        matches!(&s.source, Source::Smtp { auth: Some(a), .. } if a == "postmaster@example.com")
    );
    assert!(String::from_utf8_lossy(m).contains("with ESMTPA"));
}

#[tokio::test]
async fn size_limits_declared_and_actual() {
    let mut t = T::stranger().await;
    t.cmd("EHLO x", "250").await;
    t.cmd("MAIL FROM:<a@b.example> SIZE=5000", "552 5.3.4")
        .await;
    t.cmd("MAIL FROM:<a@b.example> SIZE=100", "250").await;
    t.cmd("RCPT TO:<joe@example.com>", "250").await;
    t.cmd("DATA", "354").await;
    let big = "x".repeat(100);
    let mut body = String::new();
    for _ in 0..30 {
        body.push_str(&big);
        body.push_str("\r\n");
    }
    t.cmd(&format!("{body}."), "552 5.3.4").await;
    // The session is still usable and the transaction is over.
    t.cmd("RCPT TO:<joe@example.com>", "503").await;
    t.cmd("NOOP", "250").await;
    assert!(t.submitted().is_empty());
}

#[tokio::test]
async fn recipients_limit() {
    let mut t = T::stranger().await;
    t.cmd("EHLO x", "250").await;
    t.cmd("MAIL FROM:<a@b.example>", "250").await;
    for u in ["a", "b", "c"] {
        t.cmd(&format!("RCPT TO:<{u}@example.com>"), "250").await;
    }
    t.cmd("RCPT TO:<d@example.com>", "452 4.5.3").await;
}

#[tokio::test]
async fn pipelined_commands_get_replies_in_order() {
    let mut t = T::stranger().await;
    t.cmd("EHLO x", "250").await;
    t.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<joe@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n")
        .await;
    for want in ["250 2.1.0", "250 2.1.5", "550 5.1.1", "354"] {
        let got = t.reply().await;
        assert!(got.starts_with(want), "want {want}, got {got}");
    }
    t.send(b"hello\r\n.\r\nNOOP\r\n").await;
    assert!(t.reply().await.starts_with("250 2.6.0"));
    assert!(t.reply().await.starts_with("250 2.0.0"));
}

#[tokio::test]
async fn long_lines_bare_lf_and_error_limit() {
    let mut p = policy();
    p.settings.max_errors = 5;
    let mut t = T::start("192.0.2.1", 25, p).await;
    t.cmd(&format!("NOOP {}", "x".repeat(2000)), "500 5.5.2")
        .await;
    t.send(b"EHLO lf\n").await;
    assert!(t.reply().await.starts_with("250-"));
    t.cmd("NOOP", "250").await;
    t.cmd("VRFY joe", "252").await;
    t.cmd("TURN", "502").await;
    t.cmd("ETRN example.com", "502").await;
    t.cmd("BOGUS", "500 5.5.1").await;
    // Five errors so far (the long line, TURN, ETRN, BOGUS, this one) reach the limit of 5.
    t.send(b"BOGUS\r\n").await;
    assert!(t.reply().await.starts_with("500"));
    assert!(t.reply().await.starts_with("421 4.7.0"));
}

#[test]
fn settings_and_banned_lines() {
    let decl = module_decl();
    let eff: Dict = decl
        .settings
        .iter()
        .map(|s| (s.key.as_bytes().to_vec(), Value::str(s.default)))
        .collect();
    let s = settings_from(&eff).unwrap();
    assert_eq!(s.size_limit, Some(10 << 20));
    assert_eq!(s.verify_return_path, Whom::Nobody);
    let mut bad = eff.clone();
    bad.insert(b"ForceAUTH".to_vec(), Value::str("sometimes"));
    assert!(settings_from(&bad).is_err());

    let banned = Banned {
        header: vec!["X-Mailer: SpamBot*".into(), "Subject: a\n b".into()],
        body: vec!["*click here*".into()],
    };
    assert!(banned.check(b"X-Mailer: SpamBot 2\r\n\r\nhi\r\n").is_some());
    assert!(banned.check(b"X-Mailer: spambot 2\r\n\r\nhi\r\n").is_none());
    assert!(banned.check(b"Subject: a\r\n b\r\n\r\nhi\r\n").is_some());
    assert!(banned
        .check(b"Subject: ok\r\n\r\nplease click here now\r\n")
        .is_some());
    assert!(wildcard("a*b*c", "axxbyyc"));
    assert!(!wildcard("a*b*c", "axxbyy"));
    assert!(wildcard("*", ""));
}

#[tokio::test]
async fn banned_lines_refuse_the_message() {
    let mut p = policy();
    p.banned.header = vec!["X-Mailer: SpamBot*".into()];
    let mut t = T::start("192.0.2.1", 25, p).await;
    t.cmd("EHLO x", "250").await;
    t.cmd("MAIL FROM:<a@b.example>", "250").await;
    t.cmd("RCPT TO:<joe@example.com>", "250").await;
    t.cmd("DATA", "354").await;
    t.cmd("X-Mailer: SpamBot 1\r\n\r\nbuy\r\n.", "554 5.7.1")
        .await;
    assert!(t.submitted().is_empty());
}

#[tokio::test]
async fn state_sweep() {
    let mut t = T::stranger().await;
    // Fresh: nothing of a transaction before HELO/EHLO.
    t.cmd("MAIL FROM:<a@b.example>", "503 5.5.1").await;
    t.cmd("RCPT TO:<joe@example.com>", "503 5.5.1").await;
    t.cmd("DATA", "503 5.5.1").await;
    t.cmd("AUTH PLAIN", "503 5.5.1").await;
    t.cmd("STARTTLS", "502 5.5.1").await;
    t.cmd("RSET", "250").await;
    t.cmd("NOOP", "250").await;
    t.cmd("HELP", "214").await;
    // Greeted: RCPT and DATA still need MAIL.
    t.cmd("HELO x", "250").await;
    t.cmd("RCPT TO:<joe@example.com>", "503 5.5.1").await;
    t.cmd("DATA", "503 5.5.1").await;
    // In a transaction: no nested MAIL, no AUTH; EHLO and RSET end it.
    t.cmd("MAIL FROM:<a@b.example>", "250").await;
    t.cmd("MAIL FROM:<a@b.example>", "503 5.5.1").await;
    t.cmd(
        &format!("AUTH PLAIN {}", plain("postmaster", "secret")),
        "503 5.5.1",
    )
    .await;
    t.cmd("EHLO again", "250").await;
    t.cmd("RCPT TO:<joe@example.com>", "503 5.5.1").await;
    t.cmd("MAIL FROM:<a@b.example>", "250").await;
    t.cmd("RSET", "250").await;
    t.cmd("RCPT TO:<joe@example.com>", "503 5.5.1").await;
    t.cmd("QUIT", "221").await;
}

#[tokio::test]
async fn secure_method_required_refuses_clear_text_auth_without_tls() {
    let mut eff = Dict::new();
    eff.insert(b"RequireAPOP".to_vec(), Value::str("YES"));
    let (dir, ctx) = fixture();
    ctx.store
        .update_account_settings("example.com", "postmaster", eff)
        .unwrap();
    let mut t = T::with_context(ctx, dir, "192.0.2.1", 25, policy()).await;
    t.cmd("EHLO x", "250").await;
    t.cmd(
        &format!("AUTH PLAIN {}", plain("postmaster", "secret")),
        "535 5.7.8",
    )
    .await;
}
