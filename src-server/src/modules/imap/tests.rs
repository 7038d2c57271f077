//! IMAP session tests over an in-memory stream: one-liners, a state sweep, two sessions on one
//! mailbox, IDLE, bounds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf,
};

use super::*;
use crate::cli::CliContext;
use crate::format::{Dict, Value};
use crate::kernel::clock::SystemClock;
use crate::kernel::log::{LogSettings, Logger};
use crate::mailbox::{names, Flags, Format, Mailbox, MailboxManager};
use crate::store::{AccountType, Store};

const DOMAIN: &str = "example.com";
const MSG: &str = "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n";

struct Server {
    ctx: Arc<ImapContext>,
    _dir: tempfile::TempDir,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("base"), DOMAIN).unwrap();
    let mut d = Dict::new();
    d.insert(b"Password".to_vec(), Value::str("pw"));
    store
        .create_account(DOMAIN, "joe", AccountType::MultiMailbox, d.clone())
        .unwrap();
    d.insert(
        b"AccessModes".to_vec(),
        Value::Array(vec![Value::str("POP")]),
    );
    store
        .create_account(DOMAIN, "noimap", AccountType::MultiMailbox, d)
        .unwrap();
    let logger = Logger::open(
        dir.path().join("logs"),
        LogSettings::default(),
        SystemClock::shared(),
    )
    .unwrap();
    let cli = Arc::new(CliContext::new(store, DOMAIN));
    let mut ctx = ImapContext::new(cli, Arc::new(MailboxManager::new()), logger);
    ctx.literal_cap = 1024;
    Server {
        ctx: Arc::new(ctx),
        _dir: dir,
    }
}

impl Server {
    fn inbox(&self) -> Arc<Mailbox> {
        let (_, dir) = self.ctx.cli.store.account_location(DOMAIN, "joe").unwrap();
        let path = names::storage_path(&dir, "INBOX", Format::Mbox).unwrap();
        self.ctx
            .mailboxes
            .open_or_create(&path, Format::Mbox)
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
        };
        let greeting = t.line().await;
        assert!(
            greeting.starts_with("* OK [CAPABILITY IMAP4rev1"),
            "{greeting}"
        );
        t
    }

    async fn login(&self) -> T {
        let mut t = self.connect().await;
        t.ok("a LOGIN joe pw").await;
        t
    }
}

struct T {
    r: BufReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
}

impl T {
    async fn line(&mut self) -> String {
        let mut s = String::new();
        tokio::time::timeout(Duration::from_secs(5), self.r.read_line(&mut s))
            .await
            .expect("reply within 5 s")
            .unwrap();
        assert!(s.ends_with("\r\n"), "reply without CRLF: {s:?}");
        s.truncate(s.len() - 2);
        s
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).await.unwrap();
    }

    /// Sends `tag rest`, returns the untagged lines and checks the tagged one starts with `want`.
    async fn cmd(&mut self, line: &str, want: &str) -> Vec<String> {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let tag = line.split(' ').next().unwrap().to_string();
        let mut out = Vec::new();
        loop {
            let l = self.line().await;
            if let Some(rest) = l.strip_prefix(&format!("{tag} ")) {
                assert!(
                    rest.starts_with(want),
                    "{line}: want {want:?}, got {l:?} after {out:?}"
                );
                return out;
            }
            out.push(l);
        }
    }

    async fn ok(&mut self, line: &str) -> Vec<String> {
        self.cmd(line, "OK").await
    }
}

#[tokio::test]
async fn login_refusals() {
    let s = server();
    let mut t = s.connect().await;
    t.cmd("a LOGIN joe wrong", "NO [AUTHENTICATIONFAILED]")
        .await;
    t.cmd("b LOGIN noimap pw", "NO [AUTHENTICATIONFAILED]")
        .await;
    t.send(b"x AUTHENTICATE LOGIN\r\n").await;
    assert_eq!(t.line().await, "+ VXNlcm5hbWU6");
    t.send(b"*\r\n").await;
    assert!(t.line().await.starts_with("x BAD"));
    t.cmd("y AUTHENTICATE PLAIN =", "BAD").await;
    t.cmd("c AUTHENTICATE PLAIN AGpvZQBwdw==", "OK").await;
    t.cmd("d LOGIN joe pw", "BAD").await;
}

#[tokio::test]
async fn state_sweep() {
    let s = server();
    let mut t = s.connect().await;
    for cmd in [
        "SELECT INBOX",
        "LIST \"\" *",
        "STATUS INBOX (MESSAGES)",
        "CREATE x",
        "FETCH 1 FLAGS",
        "EXPUNGE",
        "NAMESPACE",
    ] {
        t.cmd(&format!("n {cmd}"), "BAD").await;
    }
    t.ok("n NOOP").await;
    t.ok("a LOGIN joe pw").await;
    for cmd in [
        "FETCH 1 FLAGS",
        "STORE 1 +FLAGS (\\Seen)",
        "SEARCH ALL",
        "EXPUNGE",
        "CLOSE",
        "UID COPY 1 INBOX",
        "CHECK",
    ] {
        t.cmd(&format!("s {cmd}"), "BAD").await;
    }
    t.cmd("s STARTTLS", "BAD").await;
}

#[tokio::test]
async fn select_fetch_store_expunge() {
    let s = server();
    s.inbox().append(MSG.as_bytes(), Flags::RECENT, 0).unwrap();
    s.inbox().append(MSG.as_bytes(), Flags::SEEN, 0).unwrap();
    let mut t = s.login().await;
    let sel = t.ok("b SELECT INBOX").await;
    assert!(sel.contains(&"* 2 EXISTS".to_string()), "{sel:?}");
    assert!(sel.contains(&"* 1 RECENT".to_string()), "{sel:?}");
    assert!(sel.iter().any(|l| l.starts_with("* OK [UIDVALIDITY ")));
    assert!(sel.contains(&"* OK [UNSEEN 1] first unseen".to_string()));
    let f = t.ok("c FETCH 1:* (FLAGS UID)").await;
    assert_eq!(
        f,
        [
            "* 1 FETCH (FLAGS (\\Recent) UID 1)",
            "* 2 FETCH (FLAGS (\\Seen) UID 2)"
        ]
    );
    assert_eq!(
        t.ok("d STORE 1 +FLAGS (\\Deleted)").await,
        ["* 1 FETCH (FLAGS (\\Deleted \\Recent))"]
    );
    assert_eq!(t.ok("e UID SEARCH DELETED").await, ["* SEARCH 1"]);
    assert_eq!(t.ok("f EXPUNGE").await, ["* 1 EXPUNGE"]);
    assert_eq!(t.ok("g SEARCH ALL").await, ["* SEARCH 1"]);
    // BODY[] (not PEEK) of an unseen message sets \Seen and says so.
    s.inbox().append(MSG.as_bytes(), Flags::empty(), 0).unwrap();
    t.ok("h NOOP").await;
    let f = t.ok("i FETCH 2 BODY[TEXT]").await;
    assert_eq!(f[0], "* 2 FETCH (BODY[TEXT] {6}");
    assert_eq!(f[1], "body");
    assert_eq!(f[2], " FLAGS (\\Seen))");
    let f = t
        .ok("j FETCH 2 (ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (Subject x.y)])")
        .await;
    let a = "((NIL NIL \"a\" \"example.com\"))";
    assert_eq!(
        f[0],
        format!(
            "* 2 FETCH (ENVELOPE (NIL \"hi\" {a} {a} {a} NIL NIL NIL NIL NIL) BODYSTRUCTURE \
             (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 6 1 NIL NIL NIL) \
             BODY[HEADER.FIELDS (SUBJECT \"X.Y\")] {{15}}"
        )
    );
    assert_eq!(f[1], "Subject: hi");
}

#[tokio::test]
async fn two_sessions_and_idle() {
    let s = server();
    s.inbox().append(MSG.as_bytes(), Flags::empty(), 0).unwrap();
    let mut a = s.login().await;
    let mut b = s.login().await;
    a.ok("s SELECT INBOX").await;
    b.ok("s SELECT INBOX").await;
    a.ok("t STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    assert_eq!(b.ok("n NOOP").await, ["* 1 FETCH (FLAGS (\\Flagged))"]);
    b.send(b"i IDLE\r\n").await;
    assert!(b.line().await.starts_with("+ "));
    a.ok("x APPEND INBOX {5+}\r\nhello").await;
    assert_eq!(b.line().await, "* 2 EXISTS");
    assert_eq!(b.line().await, "* 1 RECENT");
    a.ok("y STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(b.line().await, "* 1 FETCH (FLAGS (\\Flagged \\Deleted))");
    a.ok("z EXPUNGE").await;
    assert_eq!(b.line().await, "* 1 EXPUNGE");
    b.send(b"DONE\r\n").await;
    assert_eq!(b.line().await, "i OK IDLE terminated");
}

#[tokio::test]
async fn bounds_and_bad_input() {
    let s = server();
    let mut t = s.login().await;
    t.send(b"a APPEND INBOX {2000}\r\n").await;
    assert!(t.line().await.starts_with("a NO [TOOBIG]"));
    t.send(&[b'x'; 9000]).await;
    t.send(b"\r\n").await;
    assert!(t.line().await.starts_with("* BAD"));
    t.cmd("b FETCH 1:* (FLAGS", "BAD").await;
    t.send(b"d APPEND INBOX (\\Seen) {3}\r\n").await;
    assert!(t.line().await.starts_with("+ "));
    t.send(b"abc\r\n").await;
    assert!(t.line().await.starts_with("d OK [APPENDUID "));
    t.send(b"e APPEND INBOX {3000+}\r\n").await;
    assert!(t.line().await.starts_with("* BYE"));
    let mut rest = Vec::new();
    let _ = t.r.read_to_end(&mut rest).await;
}

#[test]
fn acl_rights() {
    use super::acl::{self, Rights};
    let s = server();
    let store = &s.ctx.cli.store;
    let id = |n: &str| crate::net::sasl::AccountId {
        name: n.into(),
        domain: DOMAIN.into(),
    };
    let (joe, ann) = (id("joe"), id("ann"));
    assert_eq!(
        acl::rights(store, &joe, "INBOX", &joe).unwrap(),
        Rights::all()
    );
    assert_eq!(
        acl::rights(store, &joe, "INBOX", &ann).unwrap(),
        Rights::parse("")
    );
    acl::set(store, &joe, "INBOX", "anyone", Some("lr")).unwrap();
    acl::set(store, &joe, "INBOX", "ann", Some("+sw")).unwrap();
    acl::set(store, &joe, "INBOX", "-ann", Some("w")).unwrap();
    // Effective: anyone + ann - (-ann); a submailbox inherits.
    assert_eq!(
        acl::rights(store, &joe, "INBOX", &ann).unwrap().to_string(),
        "lrs"
    );
    assert_eq!(
        acl::rights(store, &joe, "INBOX/sub", &ann)
            .unwrap()
            .to_string(),
        "lrs"
    );
    acl::set(store, &joe, "INBOX", "anyone", None).unwrap();
    assert_eq!(
        acl::rights(store, &joe, "INBOX", &ann).unwrap().to_string(),
        "s"
    );
}
