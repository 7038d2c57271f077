//! PWD session one-liners over an in-memory stream.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

use super::*;
use crate::cli::tests::fixture;

struct T {
    r: BufReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
    greeting: String,
    _dir: tempfile::TempDir,
}

impl T {
    async fn start() -> T {
        let (dir, ctx) = fixture();
        T::with(Arc::new(ctx), dir).await
    }

    /// Another connection to the same server (same context and base directory).
    async fn again(&self, ctx: &Arc<CliContext>) -> T {
        T::with(Arc::clone(ctx), tempfile::tempdir().unwrap()).await
    }

    async fn with(ctx: Arc<CliContext>, dir: tempfile::TempDir) -> T {
        let (client, server) = tokio::io::duplex(1 << 16);
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        tokio::spawn(serve(server, peer, ctx));
        let (r, w) = tokio::io::split(client);
        let mut t = T {
            r: BufReader::new(r),
            w,
            greeting: String::new(),
            _dir: dir,
        };
        t.greeting = t.line().await;
        t
    }

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

    async fn login(&mut self) {
        self.cmd("USER postmaster", "300 please send the PASS")
            .await;
        self.cmd("PASS secret", "200 login OK").await;
    }
}

/// guide.txt:5349-5371 replayed; only the product name in the greeting and closing differ.
#[tokio::test]
async fn guide_sample_session() {
    let mut t = T::start().await;
    assert!(t
        .greeting
        .starts_with("200 Gatehouse at mail.example.com PWD Server ready <"));
    assert!(t.greeting.ends_with("@mail.example.com>"));
    t.cmd("USER postmaster", "300 please send the PASS").await;
    t.cmd("PASS secret", "200 login OK").await;
    t.cmd("CreateAccount \"user1\"", "200 OK").await;
    let dup = t.cmd("CreateAccount \"user1\"", "501").await;
    assert_eq!(dup, "501 Account with this name already exists");
    t.cmd("RenameAccount \"user1\" into \"user2\"", "200 OK")
        .await;
    t.cmd("CreateDomain \"client2.com\"", "200 OK").await;
    t.cmd("CreateAccount \"user1@client2.com\" TextMailbox", "200 OK")
        .await;
    let bye = t.cmd("QUIT", "200").await;
    assert_eq!(bye, "200 Gatehouse PWD connection closed");
}

#[tokio::test]
async fn lf_only_lines_and_data_replies() {
    let mut t = T::start().await;
    t.send(b"user postmaster\npass secret\nMainDomainName\n")
        .await;
    assert_eq!(t.line().await, "300 please send the PASS");
    assert_eq!(t.line().await, "200 login OK");
    assert_eq!(t.line().await, "200 data follow");
    assert_eq!(t.line().await, "\"example.com\"");
}

#[tokio::test(start_paused = true)]
async fn failed_logins_share_one_message_and_lock_out() {
    let mut t = T::start().await;
    t.cmd("USER nobody", "300").await;
    let unknown = t.cmd("PASS x", "500").await;
    t.cmd("USER postmaster", "300").await;
    let wrong = t.cmd("PASS x", "500").await;
    assert_eq!(unknown, wrong);
    assert_eq!(wrong, "500 Incorrect Account Name or Password");
    for _ in 0..4 {
        t.cmd("USER postmaster@example.com", "300").await;
        t.cmd("PASS x", "500").await;
    }
    // Five failures: now even the right password is refused, for every spelling of the name.
    t.cmd("USER postmaster", "300").await;
    t.cmd("PASS secret", "500 Incorrect Account Name or Password")
        .await;
    // Other accounts are not affected.
    t.cmd("USER joe@client1.com", "300").await;
    t.cmd("PASS j", "200 login OK").await;
}

#[tokio::test]
async fn bad_input_keeps_the_session() {
    let mut t = T::start().await;
    t.cmd("ListDomains", "500 please log in first").await;
    let long = "A".repeat(MAX_LINE_ANONYMOUS + 10);
    t.cmd(&long, "500 line too long").await;
    t.login().await;
    t.cmd("CreateAccount x {a=b;", "501 Syntax error").await;
    t.cmd("SetAccountAliases x ((a)", "501 Syntax error").await;
    t.cmd("NoSuchCommand", "501 Unknown command").await;
    t.cmd("GetDomainAlerts", "501 Unknown command").await;
    t.send(b"Create\x00\xff\xfe binary\r\n").await;
    assert!(t.line().await.starts_with("501 "));
    // A Master user may send lines up to 1 MB.
    let big = format!("SetRouterTable \"{}\"", "a.com = b.com\\e".repeat(15_000));
    t.cmd(&big, "200 OK").await;
    let huge = "B".repeat(MAX_LINE_SETTINGS + 1);
    t.cmd(&huge, "500 line too long").await;
    t.cmd("MainDomainName", "200 data follow").await;
    assert_eq!(t.line().await, "\"example.com\"");
}

#[tokio::test]
async fn missing_rights_are_501_and_the_session_continues() {
    let mut t = T::start().await;
    t.cmd("USER joe@client1.com", "300").await;
    t.cmd("PASS j", "200 login OK").await;
    t.cmd("ListDomains", "501 Not enough access rights").await;
    t.cmd("GetAccountSettings *", "200 data follow").await;
    t.line().await;
    t.cmd("QUIT", "200 Gatehouse PWD connection closed").await;
}

#[tokio::test]
async fn auth_plain_login_and_cancel() {
    let mut t = T::start().await;
    // "\0postmaster\0secret"
    t.cmd("AUTH PLAIN AHBvc3RtYXN0ZXIAc2VjcmV0", "200 login OK")
        .await;
    let mut t = T::start().await;
    t.cmd("AUTH LOGIN", "+ VXNlcm5hbWU6").await;
    t.cmd("cG9zdG1hc3Rlcg==", "+ UGFzc3dvcmQ6").await;
    t.cmd("c2VjcmV0", "200 login OK").await;
    let mut t = T::start().await;
    t.cmd("AUTH PLAIN", "+ ").await;
    t.cmd("*", "500 Authentication cancelled").await;
    t.cmd("AUTH DIGEST-MD5", "500 Unsupported").await;
    t.login().await;
}

#[tokio::test]
async fn newpass_honours_pwd_allowed() {
    let (dir, ctx) = fixture();
    let ctx = Arc::new(ctx);
    let mut t = T::with(Arc::clone(&ctx), dir).await;
    t.cmd("USER joe@client1.com", "300").await;
    t.cmd("PASS j", "200 login OK").await;
    t.cmd("NEWPASS j2", "200 password changed").await;
    let mut admin = t.again(&ctx).await;
    admin.login().await;
    admin
        .cmd(
            "VerifyAccountPassword joe@client1.com PASSWORD j2",
            "200 OK",
        )
        .await;
    admin
        .cmd(
            "UpdateAccountSettings joe@client1.com {PWDAllowed=NO;}",
            "200 OK",
        )
        .await;
    t.cmd("NEWPASS j3", "501 Password modification is not allowed")
        .await;
    admin
        .cmd(
            "VerifyAccountPassword joe@client1.com PASSWORD j2",
            "200 OK",
        )
        .await;
}

/// The blocking client library against the server over real loopback TCP.
#[test]
fn blocking_client_round_trip() {
    use crate::cli::client::{Client, ClientError};
    use crate::format::Value;

    let (_dir, ctx) = fixture();
    let ctx = Arc::new(ctx);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            tokio::spawn(serve(stream, peer, Arc::clone(&ctx)));
        }
    });
    let mut c = Client::connect(&addr.to_string(), Duration::from_secs(10)).unwrap();
    assert!(c.greeting().contains("PWD Server ready"));
    c.login("postmaster", b"secret").unwrap();
    assert_eq!(
        c.command("MainDomainName").unwrap(),
        Some(Value::str("example.com"))
    );
    assert!(matches!(
        c.command("CreateAccount \"../x\""),
        Err(ClientError::Command(t)) if t.starts_with("Illegal account name")
    ));
    match c.command("NoSuchCommand") {
        Err(ClientError::Command(text)) => assert_eq!(text, "Unknown command"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.command("CreateAccount zed").unwrap(), None);
    c.quit().unwrap();
    let mut bad = Client::connect(&addr.to_string(), Duration::from_secs(10)).unwrap();
    assert!(matches!(
        bad.login("postmaster", b"wrong"),
        Err(ClientError::Login(_))
    ));
}
