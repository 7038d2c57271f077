//! The sending side against an in-process fake SMTP server on 127.0.0.1.

use super::*;
use crate::format::Value;
use crate::kernel::mail::{Job, Notify, Source};
use std::sync::Arc;
use tokio::net::TcpListener;

/// How the fake server answers.
#[derive(Clone, Default)]
struct Script {
    greeting: Option<&'static str>,
    rcpt: Option<&'static str>,
    after_data: Option<&'static str>,
    starttls: Option<crate::net::TlsSetup>,
    auth: bool,
    no_ehlo: bool,
    dsn: bool,
}

/// Runs a fake server for `conns` connections; returns its address and the transcript of
/// everything the client sent (commands and DATA).
async fn fake(script: Script, conns: usize) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        for _ in 0..conns {
            let Ok((s, _)) = l.accept().await else { return };
            let script = script.clone();
            let log = log2.clone();
            tokio::spawn(async move {
                let _ = serve(Box::new(s), script, log).await;
            });
        }
    });
    (addr, log)
}

async fn serve(
    s: Box<dyn Io>,
    script: Script,
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(s);
    let greeting = script.greeting.unwrap_or("220 fake ESMTP");
    io.get_mut()
        .write_all(format!("{greeting}\r\n").as_bytes())
        .await?;
    let mut tls_done = false;
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        log.lock().unwrap().push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") && script.no_ehlo {
            "500 what is EHLO".into()
        } else if upper.starts_with("HELO") {
            "250 fake".into()
        } else if upper.starts_with("EHLO") {
            let mut r = String::from("250-fake\r\n250-SIZE 1000000\r\n");
            if script.starttls.is_some() && !tls_done {
                r.push_str("250-STARTTLS\r\n");
            }
            if script.auth {
                r.push_str("250-AUTH LOGIN PLAIN\r\n");
            }
            if script.dsn {
                r.push_str("250-DSN\r\n");
            }
            r.push_str("250 8BITMIME");
            r
        } else if upper == "STARTTLS" {
            io.get_mut().write_all(b"220 go ahead\r\n").await?;
            let tls = script.starttls.clone().unwrap();
            let stream = io.into_inner();
            let t = tls.upgrade(stream).await?;
            io = BufReader::new(Box::new(t) as Box<dyn Io>);
            tls_done = true;
            log.lock().unwrap().push("<TLS>".into());
            continue;
        } else if upper.starts_with("AUTH PLAIN") {
            "235 ok".into()
        } else if upper.starts_with("MAIL") {
            "250 ok".into()
        } else if upper.starts_with("RCPT") {
            script.rcpt.unwrap_or("250 ok").into()
        } else if upper == "DATA" {
            io.get_mut().write_all(b"354 go\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if io.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                data.extend_from_slice(&l);
            }
            log.lock()
                .unwrap()
                .push(format!("DATA:{}", String::from_utf8_lossy(&data)));
            script.after_data.unwrap_or("250 queued").into()
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" {
            "250 ok".into()
        } else {
            "502 no".into()
        };
        io.get_mut()
            .write_all(format!("{reply}\r\n").as_bytes())
            .await?;
    }
}

fn channel(settings: SendSettings) -> SmtpChannel {
    let dir = tempfile::tempdir().unwrap();
    let logger = Logger::open(
        dir.keep().join("logs"),
        Default::default(),
        crate::kernel::clock::SystemClock::shared(),
    )
    .unwrap();
    SmtpChannel::new(
        Handle::current(),
        "gatehouse.test".into(),
        Arc::new(move || settings.clone()),
        logger,
    )
}

/// Delivers `message` to `rcpt` via queue `host` on a worker thread (the Dequeuer's way).
async fn send(ch: Arc<SmtpChannel>, host: String, rcpt: &str, message: &'static [u8]) -> Outcome {
    send_with(ch, host, rcpt, message, JobDsn::default()).await
}

/// [`send`] with the recipient's DSN parameters.
async fn send_with(
    ch: Arc<SmtpChannel>,
    host: String,
    rcpt: &str,
    message: &'static [u8],
    dsn: JobDsn<'static>,
) -> Outcome {
    let rcpt = rcpt.to_string();
    tokio::task::spawn_blocking(move || {
        let target = Target::Smtp {
            host,
            address: rcpt.clone(),
        };
        let job = Job {
            id: 1,
            message,
            return_path: "sender@gatehouse.test",
            recipient: &rcpt,
            target: &target,
            source: &Source::Cli,
            dsn,
        };
        ch.deliver(&job)
    })
    .await
    .unwrap()
}

fn quick() -> SendSettings {
    SendSettings {
        connect_timeout: Duration::from_secs(5),
        reply_timeout: Duration::from_secs(5),
        ..SendSettings::default()
    }
}

#[test]
fn reply_lines() {
    assert_eq!(reply_line(b"250 ok\r\n"), Some((250, true, "ok".into())));
    assert_eq!(
        reply_line(b"250-SIZE 10\r\n"),
        Some((250, false, "SIZE 10".into()))
    );
    assert_eq!(reply_line(b"220\n"), Some((220, true, String::new())));
    assert_eq!(reply_line(b"2x0 ok\r\n"), None);
    assert_eq!(reply_line(b"250xok\r\n"), None);
    assert_eq!(reply_line(b"099 ok\r\n"), None);
    assert_eq!(reply_line(b""), None);
}

#[test]
fn dot_stuffing() {
    assert_eq!(dot_stuff(b"a\n.b\n..\nc"), b"a\r\n..b\r\n...\r\nc\r\n.\r\n");
    assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
    assert_eq!(dot_stuff(b""), b".\r\n");
}

#[test]
fn routes() {
    let s = SendSettings::default();
    assert_eq!(
        route_of("[127.0.0.1]", &s),
        Ok(Route::Literal("127.0.0.1:25".parse().unwrap()))
    );
    assert_eq!(
        route_of("[127.0.0.1:2526]", &s),
        Ok(Route::Literal("127.0.0.1:2526".parse().unwrap()))
    );
    assert_eq!(
        route_of("[IPv6:::1]", &s),
        Ok(Route::Literal("[::1]:25".parse().unwrap()))
    );
    assert_eq!(
        route_of("127.0.0.2.2526.smtp", &s),
        Ok(Route::Hosts {
            hosts: vec![("127.0.0.2".into(), 2526)],
            relay: false
        })
    );
    assert_eq!(
        route_of("Remote.Test", &s),
        Ok(Route::Mx("remote.test".into()))
    );
    assert!(route_of("[nonsense]", &s).is_err());
    let relay = SendSettings {
        forward_to: vec!["127.0.0.3".into(), "relay.test:2525".into()],
        ..SendSettings::default()
    };
    assert_eq!(
        route_of("remote.test", &relay),
        Ok(Route::Hosts {
            hosts: vec![("127.0.0.3".into(), 25), ("relay.test".into(), 2525)],
            relay: true
        })
    );
    // guide.txt:11397-11399: address literals skip the relay.
    assert!(matches!(
        route_of("[10.0.0.1]", &relay),
        Ok(Route::Literal(_))
    ));
}

#[test]
fn settings_parse() {
    let mut d = Dict::new();
    d.insert(
        b"ForwardTo".to_vec(),
        Value::str("127.0.0.3, 127.0.0.2:2525"),
    );
    d.insert(b"DNSServers".to_vec(), Value::str("127.0.0.1:5353"));
    d.insert(b"SendTLS".to_vec(), Value::str("Required"));
    d.insert(b"RelayUser".to_vec(), Value::str("u"));
    let s = send_settings_from(&d).unwrap();
    assert_eq!(s.forward_to.len(), 2);
    assert_eq!(s.dns_servers, vec!["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(s.tls, SendTls::Required);
    assert_eq!(s.relay_auth, Some(("u".into(), String::new())));
    d.insert(b"SendTLS".to_vec(), Value::str("maybe"));
    assert!(send_settings_from(&d).is_err());
    d.insert(b"SendTLS".to_vec(), Value::str("never"));
    d.insert(b"DNSServers".to_vec(), Value::str("dns.example"));
    assert!(send_settings_from(&d).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_with_dot_stuffing_and_size() {
    let (addr, log) = fake(Script::default(), 1).await;
    let ch = Arc::new(channel(quick()));
    let out = send(
        ch,
        format!("[{addr}]"),
        "u@remote.test",
        b"Subject: x\n\n.dot\nend\n",
    )
    .await;
    assert_eq!(out, Outcome::Delivered);
    let log = log.lock().unwrap().clone();
    assert_eq!(log[0], "EHLO gatehouse.test");
    assert!(
        log[1].starts_with("MAIL FROM:<sender@gatehouse.test> SIZE="),
        "{log:?}"
    );
    assert_eq!(log[2], "RCPT TO:<u@remote.test>");
    assert_eq!(log[4], "DATA:Subject: x\r\n\r\n..dot\r\nend\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helo_when_ehlo_is_refused() {
    let script = Script {
        no_ehlo: true,
        ..Script::default()
    };
    let (addr, log) = fake(script, 1).await;
    let ch = Arc::new(channel(quick()));
    let out = send(ch, format!("[{addr}]"), "u@remote.test", b"x\n").await;
    assert_eq!(out, Outcome::Delivered);
    let log = log.lock().unwrap().clone();
    assert_eq!(&log[..2], &["EHLO gatehouse.test", "HELO gatehouse.test"]);
    // No SIZE without the extension (RFC 1870).
    assert_eq!(log[2], "MAIL FROM:<sender@gatehouse.test>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_mapping() {
    let (a5, _) = fake(
        Script {
            rcpt: Some("550 5.1.1 no such user"),
            ..Script::default()
        },
        1,
    )
    .await;
    let (a4, _) = fake(
        Script {
            after_data: Some("451 try later"),
            ..Script::default()
        },
        1,
    )
    .await;
    let ch = Arc::new(channel(SendSettings {
        idle_timeout: Duration::ZERO,
        ..quick()
    }));
    match send(ch.clone(), format!("[{a5}]"), "u@remote.test", b"x\n").await {
        Outcome::Failed(t) => assert!(t.contains("550 5.1.1 no such user"), "{t}"),
        o => panic!("{o:?}"),
    }
    match send(ch.clone(), format!("[{a4}]"), "u@remote.test", b"x\n").await {
        Outcome::Deferred(t) => assert!(t.contains("451 try later"), "{t}"),
        o => panic!("{o:?}"),
    }
    // Nothing listens there: deferred.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(matches!(
        send(ch, format!("[{closed}]"), "u@remote.test", b"x\n").await,
        Outcome::Deferred(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_fail_over_and_auth() {
    let bad = fake(
        Script {
            greeting: Some("421 busy"),
            ..Script::default()
        },
        1,
    )
    .await
    .0;
    let (good, log) = fake(
        Script {
            auth: true,
            ..Script::default()
        },
        1,
    )
    .await;
    let ch = Arc::new(channel(SendSettings {
        forward_to: vec![bad.to_string(), good.to_string()],
        relay_auth: Some(("user".into(), "pw".into())),
        ..quick()
    }));
    let out = send(ch, "remote.test".into(), "u@remote.test", b"x\n").await;
    assert_eq!(out, Outcome::Delivered);
    let log = log.lock().unwrap().clone();
    assert_eq!(log[1], format!("AUTH PLAIN {}", B64.encode("\0user\0pw")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuses_the_connection() {
    let (addr, log) = fake(Script::default(), 1).await;
    let ch = Arc::new(channel(quick()));
    let q = format!("[{addr}]");
    assert_eq!(
        send(ch.clone(), q.clone(), "a@remote.test", b"x\n").await,
        Outcome::Delivered
    );
    assert_eq!(
        send(ch, q, "b@remote.test", b"x\n").await,
        Outcome::Delivered
    );
    let log = log.lock().unwrap().clone();
    assert!(log.contains(&"RSET".to_string()), "{log:?}");
    assert!(log.contains(&"RCPT TO:<b@remote.test>".to_string()));
}

fn tls_setup(name: &str) -> crate::net::TlsSetup {
    let dir = tempfile::tempdir().unwrap();
    crate::net::TlsSetup::load_or_create(&dir.keep(), name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_opportunistic_and_required() {
    let script = Script {
        starttls: Some(tls_setup("remote.test")),
        ..Script::default()
    };
    let (addr, log) = fake(script.clone(), 1).await;
    let ch = Arc::new(channel(SendSettings {
        idle_timeout: Duration::ZERO,
        ..quick()
    }));
    assert_eq!(
        send(ch, format!("[{addr}]"), "u@remote.test", b"x\n").await,
        Outcome::Delivered
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(
        &log[..3],
        &["EHLO gatehouse.test", "STARTTLS", "<TLS>"],
        "{log:?}"
    );

    // Required: the certificate names remote.test (and 127.0.0.1), so it goes.
    let required = SendSettings {
        tls: SendTls::Required,
        idle_timeout: Duration::ZERO,
        ..quick()
    };
    let (addr, log) = fake(script.clone(), 1).await;
    let ch = Arc::new(channel(required.clone()));
    assert_eq!(
        send(ch, format!("[{addr}]"), "u@remote.test", b"x\n").await,
        Outcome::Delivered
    );
    assert!(log.lock().unwrap().iter().any(|l| l == "<TLS>"));
    // Required and no STARTTLS offered: never sent in clear.
    let (plain, log) = fake(Script::default(), 1).await;
    let ch = Arc::new(channel(required));
    assert!(matches!(
        send(ch, format!("[{plain}]"), "u@remote.test", b"x\n").await,
        Outcome::Failed(_)
    ));
    assert!(!log.lock().unwrap().iter().any(|l| l.starts_with("MAIL")));
}

#[test]
fn certificate_name_check() {
    let ck = rcgen::generate_simple_self_signed(vec!["remote.test".to_string()]).unwrap();
    let der = ck.cert.der().clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = |names: Option<Vec<String>>| {
        let v = NameVerifier {
            provider: provider.clone(),
            names,
        };
        let sn = ServerName::try_from("ignored.test").unwrap();
        v.verify_server_cert(&der, &[], &sn, &[], UnixTime::now())
            .is_ok()
    };
    assert!(check(None));
    assert!(check(Some(vec!["other.test".into(), "remote.test".into()])));
    assert!(!check(Some(vec![
        "other.test".into(),
        "mx.other.test".into()
    ])));
}

#[test]
fn dsn_parameters_in_xtext() {
    let d = JobDsn {
        env_id: Some("id=1+a b"),
        ret: Some(Ret::Headers),
        notify: Notify {
            success: true,
            delay: true,
            ..Notify::default()
        },
        orcpt: Some("rfc822;Bob=x@example.com"),
    };
    assert_eq!(
        dsn_params(&d),
        (
            " RET=HDRS ENVID=id+3D1+2Ba+20b".to_string(),
            " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+3Dx@example.com".to_string()
        )
    );
    let never = JobDsn {
        notify: Notify {
            never: true,
            ..Notify::default()
        },
        orcpt: Some("bad type;x"),
        ..JobDsn::default()
    };
    assert_eq!(dsn_params(&never), (String::new(), " NOTIFY=NEVER".into()));
    assert_eq!(
        dsn_params(&JobDsn::default()),
        (String::new(), String::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_or_passed_on_by_whether_the_next_hop_takes_notify() {
    let success = JobDsn {
        notify: Notify {
            success: true,
            ..Notify::default()
        },
        ..JobDsn::default()
    };
    let ch = Arc::new(channel(quick()));
    // RFC 3461 §5.2.2: no DSN at the next hop, NOTIFY=SUCCESS asked: "relayed".
    let (addr, _) = fake(Script::default(), 1).await;
    let out = send_with(ch.clone(), format!("[{addr}]"), "u@r.test", b"x\n", success).await;
    assert_eq!(out, Outcome::Relayed);
    // §5.2.1: the next hop takes the request on (and reports); without SUCCESS nothing differs.
    let (addr, log) = fake(
        Script {
            dsn: true,
            ..Script::default()
        },
        1,
    )
    .await;
    let out = send_with(ch.clone(), format!("[{addr}]"), "u@r.test", b"x\n", success).await;
    assert_eq!(out, Outcome::PassedOn);
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.ends_with("NOTIFY=SUCCESS")));
    let (addr, _) = fake(Script::default(), 1).await;
    let out = send(ch, format!("[{addr}]"), "u@r.test", b"x\n").await;
    assert_eq!(out, Outcome::Delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_interrupts_a_delivery_waiting_on_the_network() {
    // A server that accepts and never greets: the delivery waits for the greeting.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let held = tokio::spawn(async move { l.accept().await });
    let settings = SendSettings {
        connect_timeout: Duration::from_secs(60),
        reply_timeout: Duration::from_secs(60),
        ..SendSettings::default()
    };
    let ch = Arc::new(channel(settings));
    let sending = tokio::spawn(send(ch.clone(), format!("[{addr}]"), "u@r.test", b"x\n"));
    let _conn = held.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!sending.is_finished());
    let asked = Instant::now();
    ch.stop();
    let out = tokio::time::timeout(Duration::from_secs(2), sending)
        .await
        .expect("the delivery ends at once")
        .unwrap();
    assert_eq!(out, Outcome::Interrupted);
    assert!(asked.elapsed() < Duration::from_secs(1));
    // Later deliveries do not start.
    let out = send(ch, format!("[{addr}]"), "u@r.test", b"x\n").await;
    assert_eq!(out, Outcome::Interrupted);
}
