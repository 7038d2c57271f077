//! POP session one-liners over an in-memory stream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

use super::*;
use crate::cli::CliContext;
use crate::format::{Dict, Value};
use crate::kernel::clock::SystemClock;
use crate::kernel::log::{LogSettings, Logger};
use crate::kernel::mail::{EnqueueError, MessageId, Submission, Submit};
use crate::mailbox::{names, Flags, Format, Mailbox, MailboxManager};
use crate::net::sasl::{self, AccountId};
use crate::store::{AccountType, Store};

const DOMAIN: &str = "example.com";

struct Server {
    ctx: Arc<PopContext>,
    _dir: tempfile::TempDir,
}

/// Accounts: `joe` (password `pw`, one-way), `ann` (clear `apw`, for APOP and CRAM-MD5),
/// `nopop` (POP disabled).
fn server_with(f: impl FnOnce(&mut PopContext)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("base"), DOMAIN).unwrap();
    let settings = |pairs: &[(&str, &str)]| {
        let mut d = Dict::new();
        for (k, v) in pairs {
            d.insert(k.as_bytes().to_vec(), Value::str(v));
        }
        d
    };
    store
        .create_account(
            DOMAIN,
            "joe",
            AccountType::MultiMailbox,
            settings(&[("Password", "pw")]),
        )
        .unwrap();
    store
        .create_account(
            DOMAIN,
            "ann",
            AccountType::MultiMailbox,
            settings(&[("PasswordEncryption", "clear"), ("Password", "apw")]),
        )
        .unwrap();
    let mut nopop = settings(&[("Password", "pw")]);
    nopop.insert(
        b"AccessModes".to_vec(),
        Value::Array(vec![Value::str("IMAP")]),
    );
    store
        .create_account(DOMAIN, "nopop", AccountType::MultiMailbox, nopop)
        .unwrap();
    let logger = Logger::open(
        dir.path().join("logs"),
        LogSettings::default(),
        SystemClock::shared(),
    )
    .unwrap();
    let cli = Arc::new(CliContext::new(store, DOMAIN));
    let mut ctx = PopContext::new(cli, Arc::new(MailboxManager::new()), logger);
    f(&mut ctx);
    Server {
        ctx: Arc::new(ctx),
        _dir: dir,
    }
}

fn server() -> Server {
    server_with(|_| {})
}

impl Server {
    fn inbox(&self, account: &str) -> Arc<Mailbox> {
        self.mailbox(account, "INBOX")
    }

    fn mailbox(&self, account: &str, name: &str) -> Arc<Mailbox> {
        let (_, dir) = self
            .ctx
            .cli
            .store
            .account_location(DOMAIN, account)
            .unwrap();
        let path = names::storage_path(&dir, name, Format::Mbox).unwrap();
        self.ctx
            .mailboxes
            .open_or_create(&path, Format::Mbox)
            .unwrap()
    }

    fn deliver(&self, account: &str, text: &str) -> u32 {
        self.inbox(account)
            .append(text.as_bytes(), Flags::empty(), 0)
            .unwrap()
    }

    async fn connect(&self) -> T {
        let (client, server) = tokio::io::duplex(1 << 16);
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        tokio::spawn(serve(Box::new(server), peer, false, Arc::clone(&self.ctx)));
        let (r, w) = tokio::io::split(client);
        let mut t = T {
            r: BufReader::new(r),
            w,
            greeting: String::new(),
        };
        t.greeting = t.line().await;
        t
    }

    async fn login(&self, user: &str, pw: &str) -> T {
        let mut t = self.connect().await;
        t.cmd(&format!("USER {user}"), "+OK").await;
        t.cmd(&format!("PASS {pw}"), "+OK").await;
        t
    }
}

struct T {
    r: BufReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
    greeting: String,
}

impl T {
    async fn line(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).await.unwrap();
        assert!(s.ends_with("\r\n"), "reply without CRLF: {s:?}");
        s.truncate(s.len() - 2);
        s
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    /// Sends `cmd` with CRLF and checks the reply starts with `want`.
    async fn cmd(&mut self, cmd: &str, want: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes()).await;
        let got = self.line().await;
        assert!(got.starts_with(want), "{cmd}: want {want:?}, got {got:?}");
        got
    }

    /// Sends `cmd`, expects `+OK` and returns the multi-line body (unstuffed).
    async fn multi(&mut self, cmd: &str) -> Vec<String> {
        self.cmd(cmd, "+OK").await;
        let mut out = Vec::new();
        loop {
            let l = self.line().await;
            if l == "." {
                return out;
            }
            out.push(l.strip_prefix('.').map(str::to_string).unwrap_or(l));
        }
    }

    async fn eof(&mut self) -> bool {
        let mut s = String::new();
        self.r.read_line(&mut s).await.unwrap() == 0
    }
}

const MSG1: &str = "Subject: one\r\n\r\nbody one\r\n.dotted\r\n";
const MSG2: &str = "Subject: two\n\nl1\nl2\nl3\n";

#[tokio::test]
async fn greeting_and_capa() {
    let s = server();
    let mut t = s.connect().await;
    assert!(t.greeting.starts_with("+OK "), "{}", t.greeting);
    assert!(t.greeting.ends_with('>') && t.greeting.contains("@example.com>"));
    let caps = t.multi("CAPA").await;
    for c in ["TOP", "UIDL", "USER", "SASL PLAIN LOGIN", "PIPELINING"] {
        assert!(caps.iter().any(|x| x == c), "{c} missing in {caps:?}");
    }
    // No TLS setup and no Enqueuer: neither is offered.
    assert!(!caps.iter().any(|x| x == "STLS" || x == "XTND XMIT"));
    t.cmd("STLS", "-ERR").await;
    assert_eq!(t.multi("AUTH").await, ["PLAIN", "LOGIN"]);
    t.cmd("QUIT", "+OK").await;
    assert!(t.eof().await);
}

#[tokio::test]
async fn user_pass_stat_list_uidl_retr_top() {
    let s = server();
    let u1 = s.deliver("joe", MSG1);
    let u2 = s.deliver("joe", MSG2);
    let validity = s.inbox("joe").uid_validity();
    let mut t = s.connect().await;
    t.cmd("user joe", "+OK").await;
    t.cmd("pass pw", "+OK 2 message(s)").await;
    let total = MSG1.len() + MSG2.len();
    t.cmd("STAT", &format!("+OK 2 {total}")).await;
    assert_eq!(
        t.multi("LIST").await,
        [format!("1 {}", MSG1.len()), format!("2 {}", MSG2.len())]
    );
    t.cmd("LIST 2", &format!("+OK 2 {}", MSG2.len())).await;
    t.cmd("LIST 3", "-ERR no such message").await;
    assert_eq!(
        t.multi("UIDL").await,
        [format!("1 {validity}.{u1}"), format!("2 {validity}.{u2}")]
    );
    t.cmd("UIDL 1", &format!("+OK 1 {validity}.{u1}")).await;
    assert_eq!(
        t.multi("RETR 1").await,
        ["Subject: one", "", "body one", ".dotted"]
    );
    assert_eq!(t.multi("TOP 2 1").await, ["Subject: two", "", "l1"]);
    assert_eq!(t.multi("TOP 2 0").await, ["Subject: two", ""]);
    t.cmd("LAST", "+OK 1").await;
    // RETR set \Seen, TOP did not (guide.txt:14524-14528).
    let flags: Vec<Flags> = s.inbox("joe").list().iter().map(|m| m.flags).collect();
    assert!(flags[0].contains(Flags::SEEN));
    assert!(!flags[1].contains(Flags::SEEN));
    t.cmd("NOOP", "+OK").await;
    t.cmd("QUIT", "+OK").await;
    assert_eq!(s.inbox("joe").list().len(), 2);
    // RFC 1225: LAST starts at what previous sessions accessed (the \Seen messages); RSET
    // returns to it. fetchmail relies on this to skip kept messages.
    let mut t = s.login("joe", "pw").await;
    t.cmd("LAST", "+OK 1").await;
    assert_eq!(t.multi("RETR 2").await[0], "Subject: two");
    t.cmd("LAST", "+OK 2").await;
    t.cmd("RSET", "+OK").await;
    t.cmd("LAST", "+OK 1").await;
    t.cmd("QUIT", "+OK").await;
}

#[tokio::test]
async fn dele_rset_and_update_state() {
    let s = server();
    s.deliver("joe", MSG1);
    s.deliver("joe", MSG2);
    let mut t = s.login("joe", "pw").await;
    t.cmd("DELE 1", "+OK").await;
    t.cmd("DELE 1", "-ERR message is deleted").await;
    t.cmd("RETR 1", "-ERR").await;
    t.cmd("STAT", &format!("+OK 1 {}", MSG2.len())).await;
    assert_eq!(t.multi("LIST").await, [format!("2 {}", MSG2.len())]);
    t.cmd("RSET", "+OK 2").await;
    t.cmd("STAT", "+OK 2").await;
    t.cmd("DELE 2", "+OK").await;
    // Deletion happens only at QUIT: the mailbox still holds both.
    assert_eq!(s.inbox("joe").list().len(), 2);
    t.cmd("QUIT", "+OK").await;
    let left = s.inbox("joe").list();
    assert_eq!(left.len(), 1);
    assert_eq!(s.inbox("joe").read(left[0].uid).unwrap(), MSG1.as_bytes());

    // A connection that drops without QUIT deletes nothing (RFC 1939 §6).
    let mut t = s.login("joe", "pw").await;
    t.cmd("DELE 1", "+OK").await;
    drop(t);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.inbox("joe").list().len(), 1);
}

#[tokio::test]
async fn snapshot_and_zombies() {
    let s = server();
    s.deliver("joe", MSG1);
    s.deliver("joe", MSG2);
    let mut a = s.login("joe", "pw").await;
    let mut b = s.login("joe", "pw").await;
    // New mail during the session is not shown (guide.txt:14517-14519).
    s.deliver("joe", "Subject: three\r\n\r\nx\r\n");
    a.cmd("STAT", "+OK 2").await;
    // Another session removes message 1: it stays as a zombie of size 0.
    b.cmd("DELE 1", "+OK").await;
    b.cmd("QUIT", "+OK").await;
    assert_eq!(
        a.multi("LIST").await,
        ["1 0".to_string(), format!("2 {}", MSG2.len())]
    );
    a.cmd("RETR 1", "-ERR message was deleted by another session")
        .await;
    a.cmd("DELE 1", "+OK").await;
    a.cmd("QUIT", "+OK").await;
    // The next login sees the new message.
    let mut c = s.login("joe", "pw").await;
    c.cmd("STAT", "+OK 2").await;
    c.cmd("QUIT", "+OK").await;
}

#[tokio::test]
async fn login_failures_look_alike() {
    let s = server();
    let mut t = s.connect().await;
    let unknown = {
        t.cmd("USER nobody", "+OK").await;
        t.cmd("PASS pw", "-ERR").await
    };
    t.cmd("USER joe", "+OK").await;
    let wrong = t.cmd("PASS wrong", "-ERR").await;
    assert_eq!(unknown, wrong);
    assert_eq!(wrong, format!("-ERR [AUTH] {}", sasl::INCORRECT_LOGIN));
    // POP not among the Enabled Services: the same answer.
    t.cmd("USER nopop", "+OK").await;
    assert_eq!(t.cmd("PASS pw", "-ERR").await, wrong);
    // Still in AUTHORIZATION: transaction commands are refused, login still works.
    t.cmd("STAT", "-ERR").await;
    t.cmd("PASS pw", "-ERR send USER first").await;
    t.cmd("USER joe@example.com", "+OK").await;
    t.cmd("PASS pw", "+OK").await;
    t.cmd("USER joe", "-ERR already logged in").await;
}

#[tokio::test]
async fn lockout_after_failures() {
    let s = server();
    let mut t = s.connect().await;
    for _ in 0..5 {
        t.cmd("USER joe", "+OK").await;
        t.cmd("PASS wrong", "-ERR").await;
    }
    // Suspended: even the right password fails.
    t.cmd("USER joe", "+OK").await;
    t.cmd("PASS pw", "-ERR [AUTH]").await;
}

#[tokio::test]
async fn apop_and_sasl() {
    let s = server();
    s.deliver("ann", MSG1);
    let mut t = s.connect().await;
    let token = &t.greeting[t.greeting.find('<').unwrap()..];
    let digest = |tok: &str, pw: &str| {
        use md5::{Digest, Md5};
        Md5::digest(format!("{tok}{pw}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let good = digest(token, "apw");
    let bad = digest(token, "nope");
    t.cmd(&format!("APOP ann {bad}"), "-ERR [AUTH]").await;
    t.cmd(&format!("APOP ann {good}"), "+OK 1 message(s)").await;

    // AUTH PLAIN with an initial response.
    let b64 = |s: &[u8]| sasl::encode_challenge(s);
    let mut t = s.connect().await;
    t.cmd(&format!("AUTH PLAIN {}", b64(b"\0joe\0pw")), "+OK")
        .await;
    // AUTH PLAIN with a challenge, and a cancelled exchange.
    let mut t = s.connect().await;
    t.cmd("AUTH PLAIN", "+ ").await;
    t.cmd("*", "-ERR").await;
    t.cmd("AUTH PLAIN", "+ ").await;
    t.cmd(&b64(b"\0joe\0wrong"), "-ERR [AUTH]").await;
    t.cmd("AUTH LOGIN", "+ ").await;
    t.cmd(&b64(b"joe"), "+ ").await;
    t.cmd(&b64(b"pw"), "+OK").await;

    // CRAM-MD5 (needs the clear password).
    let mut t = s.connect().await;
    let ch = t.cmd("AUTH CRAM-MD5", "+ ").await;
    let challenge = base64_decode(&ch[2..]);
    let mac = {
        use hmac::{Hmac, Mac};
        let mut m = Hmac::<md5::Md5>::new_from_slice(b"apw").unwrap();
        m.update(&challenge);
        m.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    t.cmd(&b64(format!("ann {mac}").as_bytes()), "+OK 1 message(s)")
        .await;
    t.cmd("AUTH XYZ", "-ERR already logged in").await;
    let mut t = s.connect().await;
    t.cmd("AUTH XYZ", "-ERR Unsupported").await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    sasl::decode_response(s.as_bytes()).unwrap().unwrap()
}

#[tokio::test]
async fn other_mailboxes() {
    let s = server();
    s.mailbox("joe", "private")
        .append(MSG2.as_bytes(), Flags::empty(), 0)
        .unwrap();
    s.deliver("joe", MSG1);
    let mut t = s.login("private#joe", "pw").await;
    t.cmd("RETR 1", &format!("+OK {} octets", MSG2.len())).await;
    let mut t = s.login("private#joe@example.com", "pw").await;
    t.cmd("STAT", "+OK 1").await;
    // SASL names take the same form.
    let mut t = s.connect().await;
    let resp = sasl::encode_challenge(b"\0private#joe\0pw");
    t.cmd(&format!("AUTH PLAIN {resp}"), "+OK 1").await;
    let mut t = s.connect().await;
    t.cmd("USER nothere#joe", "+OK").await;
    t.cmd("PASS pw", "-ERR Mailbox nothere does not exist")
        .await;
    t.cmd("USER ~boss/INBOX#joe", "+OK").await;
    t.cmd("PASS pw", "-ERR").await;
    t.cmd("USER ../x#joe", "+OK").await;
    t.cmd("PASS pw", "-ERR Illegal mailbox name").await;
}

struct OneAlert(Mutex<Vec<String>>);

impl Alerts for OneAlert {
    fn take_next(&self, _: &AccountId) -> Option<String> {
        self.0.lock().unwrap().pop()
    }
}

#[tokio::test]
async fn alert_rejects_the_login_once() {
    let s = server_with(|c| {
        c.alerts = Some(Arc::new(OneAlert(Mutex::new(vec!["over quota".into()]))));
    });
    let mut t = s.connect().await;
    t.cmd("USER joe", "+OK").await;
    t.cmd("PASS pw", "-ERR ALERT: over quota").await;
    assert!(t.eof().await);
    s.login("joe", "pw").await.cmd("STAT", "+OK 0 0").await;
}

#[tokio::test]
async fn bad_commands_and_long_lines() {
    let s = server();
    let mut t = s.connect().await;
    t.cmd("HELO", "-ERR unknown command").await;
    t.cmd("RETR x", "-ERR").await;
    t.cmd(&"X".repeat(300), "-ERR command line too long").await;
    t.cmd("NOOP", "-ERR log in first").await;
    // Bare LF line endings are accepted.
    t.send(b"USER joe\n").await;
    assert_eq!(t.line().await, "+OK send the PASS");
    t.cmd("PASS pw", "+OK").await;
    t.cmd("RETR 0", "-ERR invalid message number").await;
    t.cmd("NOOP", "+OK").await;
    // Too many errors close the connection.
    for _ in 0..30 {
        t.send(b"BOGUS\r\n").await;
    }
    let mut last = String::new();
    loop {
        let mut l = String::new();
        if t.r.read_line(&mut l).await.unwrap() == 0 {
            break;
        }
        last = l;
    }
    assert_eq!(last, "-ERR too many errors, closing\r\n");
}

#[tokio::test]
async fn pipelined_commands() {
    let s = server();
    s.deliver("joe", MSG1);
    let mut t = s.connect().await;
    t.send(b"USER joe\r\nPASS pw\r\nSTAT\r\nQUIT\r\n").await;
    assert_eq!(t.line().await, "+OK send the PASS");
    assert!(t.line().await.starts_with("+OK 1"));
    assert!(t.line().await.starts_with("+OK 1 "));
    assert!(t.line().await.starts_with("+OK"));
    assert!(t.eof().await);
}

#[tokio::test]
async fn idle_timeout_closes_without_update() {
    let s = server_with(|c| c.idle_timeout = Duration::from_millis(100));
    s.deliver("joe", MSG1);
    let mut t = s.login("joe", "pw").await;
    t.cmd("DELE 1", "+OK").await;
    assert_eq!(t.line().await, "-ERR idle timeout, closing");
    assert!(t.eof().await);
    assert_eq!(s.inbox("joe").list().len(), 1);
}

#[derive(Default)]
struct FakeQueue(Mutex<Vec<(Submission, Vec<u8>)>>);

impl Submit for FakeQueue {
    fn submit(&self, s: Submission, m: &[u8]) -> Result<MessageId, EnqueueError> {
        let mut q = self.0.lock().unwrap();
        q.push((s, m.to_vec()));
        Ok(q.len() as MessageId)
    }
}

#[tokio::test]
async fn xtnd_xmit() {
    let s = server();
    let mut t = s.login("joe", "pw").await;
    t.cmd("XTND XMIT", "-ERR XTND XMIT is not available").await;

    let queue = Arc::new(FakeQueue::default());
    let q = Arc::clone(&queue);
    let s = server_with(move |c| c.submit = Some(q));
    let mut t = s.login("joe", "pw").await;
    assert!(t.multi("CAPA").await.iter().any(|c| c == "XTND XMIT"));
    t.cmd("XTND XMIT", "+OK").await;
    t.send(b"To: Bob <bob@b.test>\r\nBcc: eve@c.test\r\n\r\n..hi\r\n.\r\n")
        .await;
    assert_eq!(t.line().await, "+OK message 1 accepted for delivery");
    t.cmd("XTND XMIT", "+OK").await;
    t.send(b"Subject: nobody\r\n\r\n.\r\n").await;
    assert!(t.line().await.starts_with("-ERR no recipients"));
    let q = queue.0.lock().unwrap();
    let (sub, msg) = &q[0];
    assert_eq!(sub.return_path, "joe@example.com");
    let rcpts: Vec<&str> = sub.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(rcpts, ["bob@b.test", "eve@c.test"]);
    assert_eq!(msg, b"To: Bob <bob@b.test>\r\n\r\n.hi\r\n");
}

#[tokio::test]
async fn state_sweep() {
    let s = server();
    s.deliver("joe", MSG1);
    let mut t = s.connect().await;
    for cmd in [
        "STAT",
        "LIST",
        "LIST 1",
        "RETR 1",
        "DELE 1",
        "NOOP",
        "RSET",
        "TOP 1 1",
        "UIDL",
        "LAST",
        "XTND XMIT",
    ] {
        t.cmd(cmd, "-ERR log in first").await;
    }
    t.cmd("USER joe", "+OK").await;
    t.cmd("PASS pw", "+OK").await;
    for cmd in ["USER joe", "PASS pw", "APOP joe 0123", "AUTH PLAIN", "STLS"] {
        t.cmd(cmd, "-ERR already logged in").await;
    }
    // CAPA in TRANSACTION drops the login capabilities (RFC 2449 §5).
    let caps = t.multi("CAPA").await;
    assert!(caps.iter().any(|c| c == "TOP"));
    assert!(!caps.iter().any(|c| c == "USER" || c.starts_with("SASL")));
}

#[tokio::test]
async fn byte_by_byte_input() {
    let s = server();
    s.deliver("joe", MSG1);
    let mut t = s.connect().await;
    for b in b"USER joe\r\nPASS pw\r\nSTAT\r\n" {
        t.send(&[*b]).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(t.line().await, "+OK send the PASS");
    assert_eq!(t.line().await, "+OK 1 message(s)");
    assert_eq!(t.line().await, format!("+OK 1 {}", MSG1.len()));
}

#[tokio::test]
async fn single_mailbox_accounts() {
    let s = server();
    let store = &s.ctx.cli.store;
    store
        .create_account(DOMAIN, "txt", AccountType::TextMailbox, {
            let mut d = Dict::new();
            d.insert(b"Password".to_vec(), Value::str("pw"));
            d
        })
        .unwrap();
    let mut t = s.login("txt", "pw").await;
    t.cmd("STAT", "+OK 0 0").await;
    let (_, dir) = store.account_location(DOMAIN, "txt").unwrap();
    assert!(dir.join("txt.mbox").is_file());
    // A single-mailbox account has no other mailboxes.
    let mut t = s.connect().await;
    t.cmd("USER private#txt", "+OK").await;
    t.cmd("PASS pw", "-ERR Mailbox private does not exist")
        .await;
}
