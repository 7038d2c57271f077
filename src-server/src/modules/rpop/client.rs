//! The RPOP module's POP3 client (RFC 1939; guide.txt:12327-12497): greeting, CAPA and STLS
//! (RFC 2449, RFC 2595), USER/PASS or APOP, UIDL, LIST, RETR, DELE, QUIT.
//!
//! Security: everything the remote server sends is untrusted. Reply lines are capped at
//! [`MAX_LINE`] through the one line reader, a message at the caller's byte limit; every read
//! and the connect have a timeout, so a silent or endless server cannot hold a polling channel.
//! Passwords are never logged. STLS accepts any certificate (as the SMTP module's Opportunistic
//! Send Encrypted does): it keeps passwords and mail from passive listeners, not from an active
//! attacker; after STLS, bytes read before the handshake are discarded (RFC 2595 §4).

use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

use crate::net::lines::{Line, LineReader};

/// Longest reply or message line accepted (RFC 1939 §3 says 512 for replies; messages may
/// carry longer lines than RFC 5322's 998, so the cap is generous).
pub const MAX_LINE: usize = 64 * 1024;
/// Time allowed for the connection and for each reply line.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a poll stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PopError {
    /// No connection could be made: the host is "failed" (guide.txt:12399-12403).
    Host(String),
    /// The mailbox could not be opened or the connection failed during retrieval: the account
    /// is "failed" (guide.txt:12405-12409).
    Account(String),
}

impl std::fmt::Display for PopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PopError::Host(e) | PopError::Account(e) => f.write_str(e),
        }
    }
}

fn account(e: impl std::fmt::Display) -> PopError {
    PopError::Account(e.to_string())
}

/// The connection: TCP, or TLS over it after STLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One POP3 session with a remote server.
pub struct Pop3 {
    stream: BufWriter<Box<dyn Io>>,
    lines: LineReader,
    /// The host name, for TLS.
    host: String,
    /// The APOP `<timestamp>` of the greeting (RFC 1939 §7), if the server offered one.
    apop_token: Option<String>,
    tls: bool,
}

/// `<...>` in the greeting: the server's APOP timestamp.
fn apop_token(greeting: &str) -> Option<String> {
    let start = greeting.find('<')?;
    let end = start + greeting[start..].find('>')?;
    let token = &greeting[start..=end];
    (token.len() > 2 && token.is_ascii() && !token.contains(' ')).then(|| token.to_string())
}

/// RFC 1939 §7: the APOP digest, lower-case hex MD5 of the timestamp and the password.
pub fn apop_digest(token: &str, password: &str) -> String {
    Md5::digest(format!("{token}{password}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Pop3 {
    /// Connects to `host:port` and reads the greeting.
    pub async fn connect(host: &str, port: u16) -> Result<Pop3, PopError> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| PopError::Host(format!("connecting to {host}:{port} timed out")))?
            .map_err(|e| PopError::Host(format!("cannot connect to {host}:{port}: {e}")))?;
        let mut pop = Pop3 {
            stream: BufWriter::new(Box::new(stream)),
            lines: LineReader::default(),
            host: host.to_string(),
            apop_token: None,
            tls: false,
        };
        let greeting = pop
            .reply()
            .await
            .map_err(|e| PopError::Host(format!("greeting: {e}")))?;
        pop.apop_token = apop_token(&greeting);
        Ok(pop)
    }

    /// Whether the greeting offered APOP.
    pub fn offers_apop(&self) -> bool {
        self.apop_token.is_some()
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `CAPA` (RFC 2449): the capability names, upper case; none when the server has no CAPA.
    pub async fn capa(&mut self) -> Result<Vec<String>, PopError> {
        if self.command("CAPA").await.is_err() {
            return Ok(Vec::new());
        }
        let body = self.body(64 * 1024).await?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_ascii_uppercase)
            .collect())
    }

    /// `STLS` (RFC 2595 §4), then the TLS handshake; any certificate is accepted.
    pub async fn stls(mut self) -> Result<Pop3, PopError> {
        self.command("STLS").await?;
        let (connector, sni) = crate::modules::smtp::client::tls_connector(&self.host, None)
            .map_err(|e| account(format!("TLS: {e}")))?;
        // RFC 2595 §4: whatever came before the handshake is not part of the session.
        let stream = self.stream.into_inner();
        let tls = tokio::time::timeout(TIMEOUT, connector.connect(sni, stream))
            .await
            .map_err(|_| account("the TLS handshake timed out"))?
            .map_err(|e| account(format!("TLS handshake: {e}")))?;
        Ok(Pop3 {
            stream: BufWriter::new(Box::new(tls)),
            lines: LineReader::default(),
            host: self.host,
            apop_token: self.apop_token,
            tls: true,
        })
    }

    async fn line(&mut self) -> Result<Vec<u8>, PopError> {
        let stream = self.stream.get_mut();
        match tokio::time::timeout(TIMEOUT, self.lines.next(stream, MAX_LINE)).await {
            Err(_) => Err(account("the server did not answer in time")),
            Ok(Err(e)) => Err(account(format!("connection failed: {e}"))),
            Ok(Ok(Line::Eof)) => Err(account("the server closed the connection")),
            Ok(Ok(Line::TooLong)) => Err(account("the server sent a line that is too long")),
            Ok(Ok(Line::Text(t))) => Ok(t),
        }
    }

    /// One status line: the text after `+OK`, or the `-ERR` text as an account error.
    async fn reply(&mut self) -> Result<String, PopError> {
        let l = self.line().await?;
        let text = String::from_utf8_lossy(&l).into_owned();
        if let Some(rest) = text.strip_prefix("+OK") {
            Ok(rest.trim().to_string())
        } else {
            Err(account(format!(
                "the server answered: {}",
                text.chars().take(200).collect::<String>()
            )))
        }
    }

    async fn command(&mut self, cmd: &str) -> Result<String, PopError> {
        self.stream
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .map_err(|e| account(format!("connection failed: {e}")))?;
        self.stream
            .flush()
            .await
            .map_err(|e| account(format!("connection failed: {e}")))?;
        self.reply().await
    }

    /// A multi-line body after `+OK`, dot-unstuffed (RFC 1939 §3), at most `max` bytes.
    async fn body(&mut self, max: usize) -> Result<Vec<u8>, PopError> {
        let mut out = Vec::new();
        loop {
            let l = self.line().await?;
            if l == b"." {
                return Ok(out);
            }
            let l = l.strip_prefix(b".").unwrap_or(&l);
            if out.len() + l.len() + 2 > max {
                return Err(account(format!("a message is larger than {max} bytes")));
            }
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Logs in: APOP when `apop` and the greeting offered it, else USER/PASS.
    pub async fn login(&mut self, user: &str, password: &str, apop: bool) -> Result<(), PopError> {
        if user.is_empty() || user.contains(['\r', '\n', ' ']) || password.contains(['\r', '\n']) {
            return Err(account("the account name or password cannot be sent"));
        }
        match self.apop_token.clone().filter(|_| apop) {
            Some(token) => {
                let digest = apop_digest(&token, password);
                self.command(&format!("APOP {user} {digest}")).await?;
            }
            None => {
                self.command(&format!("USER {user}")).await?;
                self.command(&format!("PASS {password}")).await?;
            }
        }
        Ok(())
    }

    /// `UIDL`: (message number, unique id) of every message; `None` when the server has no UIDL.
    pub async fn uidl(&mut self) -> Result<Option<Vec<(u32, String)>>, PopError> {
        if self.command("UIDL").await.is_err() {
            return Ok(None);
        }
        let body = self.body(64 * 1024 * 1024).await?;
        Ok(Some(
            String::from_utf8_lossy(&body)
                .lines()
                .filter_map(|l| {
                    let (n, uid) = l.trim().split_once(' ')?;
                    let uid = uid.trim();
                    // RFC 1939 §7: 1 to 70 printable characters.
                    (!uid.is_empty()
                        && uid.len() <= 70
                        && uid.bytes().all(|b| b.is_ascii_graphic()))
                    .then(|| Some((n.parse().ok()?, uid.to_string())))?
                })
                .collect(),
        ))
    }

    /// `LIST`: (message number, size) of every message.
    pub async fn list(&mut self) -> Result<Vec<(u32, u64)>, PopError> {
        self.command("LIST").await?;
        let body = self.body(64 * 1024 * 1024).await?;
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| {
                let (n, size) = l.trim().split_once(' ')?;
                Some((n.parse().ok()?, size.trim().parse().ok()?))
            })
            .collect())
    }

    /// `RETR n`: the message, with CRLF line ends, at most `max` bytes.
    pub async fn retr(&mut self, n: u32, max: usize) -> Result<Vec<u8>, PopError> {
        self.command(&format!("RETR {n}")).await?;
        self.body(max).await
    }

    /// `DELE n` (applied by the server at QUIT).
    pub async fn dele(&mut self, n: u32) -> Result<(), PopError> {
        self.command(&format!("DELE {n}")).await.map(|_| ())
    }

    /// `QUIT`: the server applies the deletions (RFC 1939 §6).
    pub async fn quit(mut self) -> Result<(), PopError> {
        self.command("QUIT").await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpListener;

    #[test]
    fn rfc1939_apop_example() {
        // RFC 1939 §7.
        assert_eq!(
            apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
        assert_eq!(
            apop_token("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>").as_deref(),
            Some("<1896.697170952@dbc.mtview.ca.us>")
        );
        assert_eq!(apop_token("+OK ready"), None);
    }

    /// A scripted server: answers each command with the next canned reply.
    async fn scripted(replies: Vec<&'static str>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut seen = Vec::new();
            let mut replies = replies.into_iter();
            w.write_all(replies.next().unwrap().as_bytes())
                .await
                .unwrap();
            for reply in replies {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                seen.push(line.trim_end().to_string());
                w.write_all(reply.as_bytes()).await.unwrap();
            }
            seen
        });
        (port, h)
    }

    #[tokio::test]
    async fn apop_uidl_retr_with_dot_stuffing() {
        let (port, h) = scripted(vec![
            "+OK hi <1.2@x>\r\n",
            "+OK\r\n",
            "+OK\r\n1 a1\r\n2 b2\r\n.\r\n",
            "+OK\r\nSubject: x\r\n\r\n..dot\r\nend\r\n.\r\n",
            "+OK\r\n",
            "+OK bye\r\n",
        ])
        .await;
        let mut p = Pop3::connect("127.0.0.1", port).await.unwrap();
        assert!(p.offers_apop());
        p.login("u", "pw", true).await.unwrap();
        let u = p.uidl().await.unwrap().unwrap();
        assert_eq!(u, vec![(1, "a1".to_string()), (2, "b2".to_string())]);
        let m = p.retr(1, 1000).await.unwrap();
        assert_eq!(m, b"Subject: x\r\n\r\n.dot\r\nend\r\n");
        p.dele(1).await.unwrap();
        p.quit().await.unwrap();
        let seen = h.await.unwrap();
        assert_eq!(seen[0], format!("APOP u {}", apop_digest("<1.2@x>", "pw")));
        assert_eq!(&seen[1..], ["UIDL", "RETR 1", "DELE 1", "QUIT"]);
    }

    #[tokio::test]
    async fn wrong_password_and_oversized_messages_are_account_errors() {
        let (port, _h) = scripted(vec!["+OK hi\r\n", "+OK\r\n", "-ERR no\r\n"]).await;
        let mut p = Pop3::connect("127.0.0.1", port).await.unwrap();
        assert!(matches!(
            p.login("u", "pw", true).await,
            Err(PopError::Account(_))
        ));
        let (port, _h) = scripted(vec!["+OK hi\r\n", "+OK\r\n0123456789\r\n.\r\n"]).await;
        let mut p = Pop3::connect("127.0.0.1", port).await.unwrap();
        assert!(matches!(p.retr(1, 8).await, Err(PopError::Account(_))));
    }

    #[tokio::test]
    async fn refused_connection_is_a_host_error() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert!(matches!(
            Pop3::connect("127.0.0.1", port).await,
            Err(PopError::Host(_))
        ));
    }
}
