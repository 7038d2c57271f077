//! ETRN/ATRN: argument parsing, settings, holds over a real queue, and session one-liners.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::DateTime;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::cli::tests::fixture;
use crate::format::Value;
use crate::kernel::clock::ManualClock;
use crate::kernel::log::LogSettings;
use crate::kernel::mail::{NewRecipient, RouteError, Routed, Source, Submission, Submit, Target};
use crate::kernel::queue::{Enqueuer, QueueSettings};
use crate::modules::smtp::{session, Config, Policy};
use crate::store::AccountType;

#[test]
fn etrn_arguments() {
    let ok = [
        ("client.test", Node::Host("client.test".into())),
        (" Client.Test ", Node::Host("client.test".into())),
        ("@client.test", Node::Subdomains("client.test".into())),
        ("#mail.client.test", Node::Queue("mail.client.test".into())),
        ("#[127.0.0.1:2525]", Node::Queue("[127.0.0.1:2525]".into())),
    ];
    for (arg, want) in ok {
        assert_eq!(node(arg), Ok(want), "{arg}");
    }
    let long = "a".repeat(300);
    for bad in [
        "",
        "@",
        "#",
        "a b",
        "../x",
        "x/y",
        "a..b",
        ".a",
        "@[1.2.3.4]",
        long.as_str(),
    ] {
        assert!(node(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn wakeup_addresses() {
    let main = "example.com";
    assert_eq!(
        wakeup_address("client.test-wakeup@Example.com", main),
        Some("client.test".into())
    );
    assert_eq!(
        wakeup_address("Client.Test-WAKEUP@example.com", main),
        Some("client.test".into())
    );
    for no in [
        "client.test-wakeup@other.com",
        "wakeup@example.com",
        "-wakeup@example.com",
        "a b-wakeup@example.com",
        "client.test@example.com",
    ] {
        assert_eq!(wakeup_address(no, main), None, "{no}");
    }
}

#[test]
fn settings_parse_and_refuse() {
    let eff = |pairs: &[(&str, &str)]| -> Dict {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Value::str(v)))
            .collect()
    };
    let d = dialup_settings_from(&eff(&[
        ("HoldMailForDomains", "Mail.Client.Test, *.hold.test"),
        ("AcceptWakeupsFrom", "Clients"),
        ("SendWakeupsTo", "mail.provider.test:366"),
        ("SendWakeupsEvery", "600"),
        ("UseATRN", "Yes"),
        ("ATRNLoginName", "office.test"),
        ("ATRNPassword", "pw"),
        ("WakeupDomains", "office.test"),
    ]))
    .unwrap();
    assert_eq!(d.hold, ["mail.client.test", "*.hold.test"]);
    assert!(d.wakeups_from_clients_only && d.use_atrn);
    assert_eq!(d.wakeups_to, Some(("mail.provider.test".into(), 366)));
    assert_eq!(d.wakeups_every, Some(Duration::from_secs(600)));
    assert_eq!(
        d.atrn_login,
        Some(("office.test".into(), crate::net::sasl::Secret::new("pw")))
    );
    assert!(
        !format!("{d:?}").contains("\"pw\""),
        "the password stays out of Debug"
    );
    assert_eq!(
        dialup_settings_from(&Dict::new()).unwrap(),
        DialupSettings::default()
    );
    for (k, v) in [
        ("AcceptWakeupsFrom", "some"),
        ("SendWakeupsTo", "a b:x"),
        ("SendWakeupsEvery", "often"),
        ("UseATRN", "maybe"),
        ("WakeupDomains", "#q"),
    ] {
        let e = dialup_settings_from(&eff(&[(k, v)])).unwrap_err();
        assert!(e.starts_with(k), "{e}");
    }
}

#[test]
fn selections_match_queue_or_domain() {
    let s = Selection::new(vec!["mail.client.test".into(), "*.Sub.Test".into()]);
    assert!(s.hits(Some("MAIL.client.test"), "other.test"));
    assert!(s.hits(None, "a.sub.test"));
    assert!(!s.hits(None, "sub.test"));
    assert!(!s.hits(Some("x.test"), ""));
}

/// `*@client.test` and `*@office.test` are remote (queue `mail.client.test` for the first, as in
/// the guide's recipe), `*@local.test` is local.
struct Router;

impl Route for Router {
    fn route(&self, address: &str) -> Result<Routed, RouteError> {
        let (_, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| RouteError::BadAddress(address.into()))?;
        let target = match domain {
            "local.test" | "example.com" => Target::Local {
                domain: domain.into(),
                account: "x".into(),
                mailbox: None,
                detail: None,
            },
            "client.test" => Target::Smtp {
                host: "mail.client.test".into(),
                address: address.into(),
            },
            "nowhere.test" => return Err(RouteError::UnknownUser(address.into())),
            d => Target::Smtp {
                host: d.into(),
                address: address.into(),
            },
        };
        Ok(Routed {
            target,
            relay: false,
        })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    logger: Logger,
    holds: Arc<Holds>,
    enq: Arc<Enqueuer>,
}

fn env(hold: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock =
        ManualClock::new(DateTime::parse_from_rfc3339("2026-11-23T10:00:00+00:00").unwrap());
    let logger = Logger::open(
        dir.path().join("SystemLogs"),
        LogSettings::default(),
        clock.clone(),
    )
    .unwrap();
    let q = Queue::open(
        dir.path(),
        "example.com",
        clock,
        logger.clone(),
        QueueSettings::default(),
    )
    .unwrap();
    let settings = DialupSettings {
        hold: hold
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        ..DialupSettings::default()
    };
    let holds = Arc::new(Holds::new(q.clone(), Arc::new(move || settings.clone())));
    Env {
        _dir: dir,
        logger,
        holds,
        enq: Arc::new(Enqueuer::new(q)),
    }
}

impl Env {
    fn queue_mail(&self, to: &str) {
        self.enq
            .submit(
                Submission {
                    return_path: "a@far.test".into(),
                    recipients: vec![NewRecipient::new(to)],
                    source: Source::Cli,
                    env_id: None,
                    ret: None,
                },
                b"Subject: x\r\n\r\nbody\r\n",
            )
            .unwrap();
    }

    fn etrn(&self, arg: &str) -> Reply {
        etrn(&self.holds, &Router, arg, &self.logger, "SMTP-1")
    }
}

#[test]
fn hold_until_etrn_then_until_a_deferral() {
    let e = env("mail.client.test");
    assert!(e.holds.is_held("mail.client.test", "client.test"));
    assert!(!e.holds.is_held("other.test", "other.test"));
    assert_eq!(e.etrn("client.test").0, 251, "nothing waits yet");
    e.holds.end_release("mail.client.test", "client.test");
    e.queue_mail("u@client.test");
    let (code, _, text) = e.etrn("client.test");
    assert_eq!(
        (code, text.as_str()),
        (253, "OK, 1 pending messages for node client.test started")
    );
    assert!(
        !e.holds.is_held("mail.client.test", "client.test"),
        "released"
    );
    e.holds.end_release("mail.client.test", "client.test");
    assert!(
        e.holds.is_held("mail.client.test", "client.test"),
        "held again"
    );
    // By queue name (a message not routed yet is known by its domain only) and by domain with
    // its subdomains.
    assert_eq!(e.etrn("#mail.client.test").0, 251);
    assert_eq!(e.etrn("#client.test").0, 253);
    e.holds.end_release("mail.client.test", "client.test");
    assert_eq!(e.etrn("@client.test").0, 253);
}

#[test]
fn etrn_refusals() {
    let e = env("");
    assert_eq!(e.etrn("local.test").0, 459, "a local domain is no node");
    assert_eq!(e.etrn("nowhere.test").0, 459);
    assert_eq!(e.etrn("a b").0, 501);
    assert_eq!(
        e.etrn("unheld.test").0,
        251,
        "a remote domain with nothing waiting"
    );
}

fn account(name: &str, domain: &str) -> AccountId {
    AccountId {
        name: name.into(),
        domain: domain.into(),
    }
}

#[test]
fn who_may_atrn_what() {
    let e = env("mail.client.test,office.test");
    let me = account("client.test", "example.com");
    let refused = |r: Result<Reversal, Reply>| r.map(|_| ()).unwrap_err().0;
    assert_eq!(
        refused(atrn(&e.holds, &Router, &me, "example.com", "a.test,b.test")),
        501
    );
    assert_eq!(
        refused(atrn(&e.holds, &Router, &me, "example.com", "client.test")),
        453
    );
    e.queue_mail("u@client.test");
    e.queue_mail("u@office.test");
    e.queue_mail("u@free.test");
    let rev = atrn(&e.holds, &Router, &me, "example.com", "client.test").unwrap();
    assert_eq!(rev.queue, "mail.client.test");
    // No parameter: the queue named after the account.
    assert!(atrn(&e.holds, &Router, &me, "example.com", "").is_ok());
    // Another customer's domain; the right name in another domain; a domain not held.
    assert_eq!(
        refused(atrn(&e.holds, &Router, &me, "example.com", "office.test")),
        450
    );
    let elsewhere = account("client.test", "other.com");
    assert_eq!(
        refused(atrn(
            &e.holds,
            &Router,
            &elsewhere,
            "example.com",
            "client.test"
        )),
        450
    );
    let free = account("free.test", "example.com");
    assert_eq!(
        refused(atrn(&e.holds, &Router, &free, "example.com", "free.test")),
        450
    );
    assert_eq!(
        refused(atrn(&e.holds, &Router, &me, "example.com", "local.test")),
        450
    );
}

#[tokio::test]
async fn prefixed_gives_back_what_was_read_ahead() {
    use tokio::io::AsyncReadExt;
    let (a, mut b) = tokio::io::duplex(64);
    let mut p = Prefixed::new(b"220 ready\r\n".to_vec(), a);
    b.write_all(b"250 ok\r\n").await.unwrap();
    let mut got = vec![0u8; 19];
    p.read_exact(&mut got).await.unwrap();
    assert_eq!(got, b"220 ready\r\n250 ok\r\n");
}

type Reader = BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>;
type Writer = tokio::io::WriteHalf<tokio::io::DuplexStream>;

/// A session over an in-memory stream with the holds of `e`; the account `client.test` (password
/// `pw`) is in the main domain. The directory is the store's.
async fn session_with(e: &Env, peer: &str, port: u16) -> (Reader, Writer, tempfile::TempDir) {
    let (dir, ctx) = fixture();
    ctx.store
        .create_account("example.com", "client.test", AccountType::MultiMailbox, {
            let mut d = Dict::new();
            d.insert(b"Password".to_vec(), Value::str("pw"));
            d
        })
        .unwrap();
    let cfg = Config {
        host: "mail.example.com".into(),
        submit: e.enq.clone(),
        route: Arc::new(Router),
        auth: Arc::new(ctx),
        tls: None,
        logger: e.logger.clone(),
        policy: Arc::new(Policy::default),
        port_offset: 0,
        holds: Some(e.holds.clone()),
        dns: Arc::new(crate::modules::smtp::dns::Dns::new(e.logger.clone())),
    };
    let (client, server) = tokio::io::duplex(1 << 16);
    let ep = session::Endpoint {
        peer: format!("{peer}:4000").parse::<SocketAddr>().unwrap(),
        local: format!("127.0.0.1:{port}").parse().unwrap(),
        tls: false,
    };
    tokio::spawn(session::serve(Box::new(server), ep, Arc::new(cfg)));
    let (r, w) = tokio::io::split(client);
    let mut r = BufReader::new(r);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220 "));
    (r, w, dir)
}

async fn cmd(r: &mut Reader, w: &mut Writer, line: &str) -> String {
    w.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    let mut all = String::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).await.unwrap();
        let last = l.as_bytes().get(3) != Some(&b'-');
        all.push_str(&l);
        if last || l.is_empty() {
            return all;
        }
    }
}

#[tokio::test]
async fn session_state_sweep() {
    let e = env("mail.client.test");
    e.queue_mail("u@client.test");
    let (mut r, mut w, _dir) = session_with(&e, "192.0.2.1", 25).await;
    assert!(cmd(&mut r, &mut w, "ETRN client.test")
        .await
        .starts_with("503"));
    assert!(cmd(&mut r, &mut w, "ATRN").await.starts_with("503"));
    let ehlo = cmd(&mut r, &mut w, "EHLO office.test").await;
    assert!(
        ehlo.contains("\r\n250-ETRN\r\n") && ehlo.contains("\r\n250-ATRN\r\n"),
        "{ehlo}"
    );
    assert!(cmd(&mut r, &mut w, "TURN").await.starts_with("502"));
    assert!(cmd(&mut r, &mut w, "ATRN client.test")
        .await
        .starts_with("530"));
    assert!(cmd(&mut r, &mut w, "ETRN local.test")
        .await
        .starts_with("459"));
    assert!(cmd(&mut r, &mut w, "ETRN client.test")
        .await
        .starts_with("253"));
    assert!(cmd(&mut r, &mut w, "MAIL FROM:<a@b.test>")
        .await
        .starts_with("250"));
    assert!(cmd(&mut r, &mut w, "ETRN client.test")
        .await
        .starts_with("503"));
    assert!(cmd(&mut r, &mut w, "RSET").await.starts_with("250"));
    let plain = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "\0client.test\0pw",
    );
    assert!(cmd(&mut r, &mut w, &format!("AUTH PLAIN {plain}"))
        .await
        .starts_with("235"));
    assert!(cmd(&mut r, &mut w, "ATRN a.test,b.test")
        .await
        .starts_with("501"));
    assert!(cmd(&mut r, &mut w, "ATRN client.test")
        .await
        .starts_with("250"));
    // The roles are reversed: we greet, the server says EHLO.
    let hello = cmd(&mut r, &mut w, "220 office.test ready").await;
    assert!(hello.starts_with("EHLO mail.example.com"), "{hello}");
}

#[tokio::test]
async fn a_wakeup_message_releases_the_queue() {
    let e = env("mail.client.test");
    e.queue_mail("u@client.test");
    assert!(e.holds.is_held("mail.client.test", "client.test"));
    let (mut r, mut w, _dir) = session_with(&e, "192.0.2.1", 25).await;
    cmd(&mut r, &mut w, "EHLO office.test").await;
    assert!(cmd(&mut r, &mut w, "MAIL FROM:<a@client.test>")
        .await
        .starts_with("250"));
    let rcpt = cmd(
        &mut r,
        &mut w,
        "RCPT TO:<client.test-wakeup@mail.example.com>",
    )
    .await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(cmd(&mut r, &mut w, "DATA").await.starts_with("354"));
    let done = cmd(&mut r, &mut w, "Subject: wake up\r\n\r\n.").await;
    assert!(done.starts_with("250 2.0.0 Wake-up"), "{done}");
    assert!(
        !e.holds.is_held("mail.client.test", "client.test"),
        "released"
    );
}

#[tokio::test]
async fn the_odmr_port_wants_auth_and_takes_only_atrn() {
    let e = env("mail.client.test");
    let (mut r, mut w, _dir) = session_with(&e, "192.0.2.1", super::super::ODMR_PORT).await;
    let ehlo = cmd(&mut r, &mut w, "EHLO office.test").await;
    assert!(ehlo.contains("AUTH "), "{ehlo}");
    assert!(cmd(&mut r, &mut w, "MAIL FROM:<a@b.test>")
        .await
        .starts_with("530"));
    assert!(cmd(&mut r, &mut w, "ETRN client.test")
        .await
        .starts_with("502"));
}

#[tokio::test]
async fn wakeups_only_from_clients_when_so_set() {
    let e = env("");
    let clients_only = DialupSettings {
        wakeups_from_clients_only: true,
        ..DialupSettings::default()
    };
    let (_dir, ctx) = fixture();
    let cfg = Config {
        host: "mail.example.com".into(),
        submit: e.enq.clone(),
        route: Arc::new(Router),
        auth: Arc::new(ctx),
        tls: None,
        logger: e.logger.clone(),
        policy: Arc::new(move || Policy {
            dialup: clients_only.clone(),
            ..Policy::default()
        }),
        port_offset: 0,
        holds: Some(e.holds.clone()),
        dns: Arc::new(crate::modules::smtp::dns::Dns::new(e.logger.clone())),
    };
    let (client, server) = tokio::io::duplex(1 << 16);
    let ep = session::Endpoint {
        peer: "192.0.2.1:4000".parse().unwrap(),
        local: "127.0.0.1:25".parse().unwrap(),
        tls: false,
    };
    tokio::spawn(session::serve(Box::new(server), ep, Arc::new(cfg)));
    let (r, mut w) = tokio::io::split(client);
    let mut r = BufReader::new(r);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.unwrap();
    let ehlo = cmd(&mut r, &mut w, "EHLO x.test").await;
    assert!(!ehlo.contains("ETRN") && ehlo.contains("ATRN"), "{ehlo}");
    assert!(cmd(&mut r, &mut w, "ETRN client.test")
        .await
        .starts_with("459"));
    assert!(cmd(&mut r, &mut w, "MAIL FROM:<a@b.test>")
        .await
        .starts_with("250"));
    let rcpt = cmd(
        &mut r,
        &mut w,
        "RCPT TO:<client.test-wakeup@mail.example.com>",
    )
    .await;
    assert!(rcpt.starts_with("550 5.7.1"), "{rcpt}");
}
