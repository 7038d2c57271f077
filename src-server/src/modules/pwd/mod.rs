//! The PWD module: the poppwd password-change protocol and the CLI channel (port 106).
//!
//! Guide: PWD module guide.txt:15828-15903; CLI transport guide.txt:5336-5386 (spec B §2);
//! login security guide.txt:3935-3964; 1 MB input for Server Settings users guide.txt:23887-23888.
//!
//! ```text
//! S: 200 Gatehouse at <host> PWD Server ready <token@host>
//! C: USER name            S: 300 please send the PASS
//! C: PASS password        S: 200 login OK            | 500 Incorrect Account Name or Password
//! C: APOP name md5hex     S: 200 login OK            (RFC 1939 digest over the greeting token)
//! C: AUTH mech [initial]  S: + base64-challenge      (repeated; C: base64 line, or * to cancel)
//!                         S: 200 login OK            | 500 <reason>
//! C: NEWPASS newpassword  S: 200 password changed    (after login; poppassd)
//! C: <CLI command>        S: 200 OK | 200 data follow CRLF <object> | 501 <message>
//! C: QUIT                 S: 200 Gatehouse PWD connection closed
//! ```
//! `AUTH` follows RFC 4954's shape on this line protocol: the optional initial response is base64
//! (`=` for empty), challenges are `+ ` lines, and `*` cancels.
//!
//! Security: everything before login is untrusted; lines are capped at 4 KB before login, 64 KB
//! for logged-in users, 1 MB for users with the Server Settings right; a longer line gets
//! `500 line too long` and is skipped. A failed login is answered after [`cli::FAILURE_DELAY`], is
//! counted per login name, and suspends the name after the `LoginSecurity` limit; unknown names
//! and bad passwords get the same text. Passwords never reach a log.
//!
//! todo: log records (tag `PWD`); the `Channels` limit is the listener's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::cli::rights::SETTINGS;
use crate::cli::{self, CliContext, CliError, Session};
use crate::format::Value;
use crate::net::lines::{Line, LineReader};
use crate::net::sasl::{self, AccountId, Exchange, Failure, Secret, Step};

#[cfg(test)]
mod tests;

/// Longest line before login.
pub const MAX_LINE_ANONYMOUS: usize = 4 * 1024;
/// Longest line after login.
pub const MAX_LINE_USER: usize = 64 * 1024;
/// Longest line for a user with the Server Settings right (guide.txt:23887-23888).
pub const MAX_LINE_SETTINGS: usize = 1024 * 1024;
/// A connection silent this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Most AUTH round trips before the exchange is abandoned.
const MAX_AUTH_STEPS: usize = 8;

/// The module's settings declaration for `GetModule PWD` (guide.txt:15866-15893).
pub fn module_decl() -> cli::ModuleDecl {
    use crate::store::settings::SettingDecl;
    cli::ModuleDecl {
        name: "PWD".into(),
        settings: vec![
            SettingDecl {
                key: "LogLevel",
                default: "2",
                doc: "Log: what the PWD module records in the System Log (tag PWD), 0-5",
            },
            SettingDecl {
                key: "Channels",
                default: "10",
                doc: "Channels: most simultaneous PWD connections; 0 closes the listener",
            },
        ],
        validate: None,
        changed: None,
    }
}

enum State {
    /// Waiting for USER, APOP or AUTH.
    Anonymous,
    /// USER was given; waiting for PASS.
    User(String),
    /// Logged in as this account.
    Authenticated(Session),
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, line: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(line.len() + 2);
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out).await?;
    w.flush().await
}

/// The listener entry point: serves each accepted connection with [`serve`].
pub fn handler(ctx: Arc<CliContext>) -> crate::net::Handler {
    Arc::new(move |conn: crate::net::Connection| {
        let ctx = Arc::clone(&ctx);
        Box::pin(async move {
            // An I/O error ends the session; there is no one left to tell.
            let _ = serve(conn.stream, conn.peer, ctx).await;
        })
    })
}

/// Serves one PWD connection until QUIT, end of input, an I/O error or the idle timeout.
/// `_peer` is the client's address, kept for the log records (see the module's todo).
pub async fn serve<S>(mut stream: S, _peer: SocketAddr, ctx: Arc<CliContext>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let token = sasl::new_token(&ctx.host);
    send(
        &mut stream,
        format!("200 Gatehouse at {} PWD Server ready {token}", ctx.host).as_bytes(),
    )
    .await?;
    let mut reader = LineReader::default();
    let mut state = State::Anonymous;
    loop {
        let max = match &state {
            State::Authenticated(s) if s.server(SETTINGS) => MAX_LINE_SETTINGS,
            State::Authenticated(_) => MAX_LINE_USER,
            _ => MAX_LINE_ANONYMOUS,
        };
        let line = match tokio::time::timeout(IDLE_TIMEOUT, reader.next(&mut stream, max)).await {
            Err(_) | Ok(Ok(Line::Eof)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Line::TooLong)) => {
                send(&mut stream, b"500 line too long").await?;
                continue;
            }
            Ok(Ok(Line::Text(l))) => l,
        };
        let (verb, rest) = cli::args::split_command(&line);
        let rest = rest.trim_ascii();
        let verb = String::from_utf8_lossy(verb).to_ascii_uppercase();
        if verb == "QUIT" {
            send(&mut stream, b"200 Gatehouse PWD connection closed").await?;
            return Ok(());
        }
        state = match state {
            State::Authenticated(session) => {
                // Rights are re-read before each command, so a revoked right stops at once; an
                // account that vanished keeps its session but no rights.
                let session = match reload(&ctx, &session).await {
                    Some(fresh) => fresh,
                    None => Session {
                        rights: Vec::new(),
                        ..session
                    },
                };
                let reply = if verb == "NEWPASS" {
                    new_password(&ctx, &session, rest).await
                } else {
                    command(&ctx, &session, line).await
                };
                send(&mut stream, &reply).await?;
                State::Authenticated(session)
            }
            State::User(name) if verb == "PASS" => {
                let login = ctx.password_login(&name, rest).await;
                finish_login(&mut stream, &ctx, &name, login).await?
            }
            _ if verb == "USER" => match std::str::from_utf8(rest) {
                Ok(name) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                    send(&mut stream, b"300 please send the PASS").await?;
                    State::User(name.to_string())
                }
                _ => {
                    send(&mut stream, b"500 USER needs an account name").await?;
                    State::Anonymous
                }
            },
            _ if verb == "APOP" => {
                let text = String::from_utf8_lossy(rest).into_owned();
                let (name, digest) = text.split_once(' ').unwrap_or((&text, ""));
                let name = name.to_string();
                let login = cli::checked(&name, || {
                    sasl::apop_check(&*ctx, &name, &token, digest.trim())
                });
                finish_login(&mut stream, &ctx, &name, login).await?
            }
            _ if verb == "AUTH" => {
                let login = auth(&mut stream, &mut reader, &ctx, rest).await?;
                let name = match &login {
                    Err(Failure::BadCredentials(n)) => n.clone(),
                    _ => String::new(),
                };
                finish_login(&mut stream, &ctx, &name, login).await?
            }
            _ => {
                send(&mut stream, b"500 please log in first (USER, APOP or AUTH)").await?;
                State::Anonymous
            }
        };
    }
}

/// The AUTH exchange: `+ base64` challenges, base64 answers, `*` cancels.
async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    reader: &mut LineReader,
    ctx: &CliContext,
    rest: &[u8],
) -> std::io::Result<Result<AccountId, Failure>> {
    let text = String::from_utf8_lossy(rest).into_owned();
    let mut parts = text.split_whitespace();
    let mech = parts.next().unwrap_or("");
    let initial = match parts.next().map(|s| sasl::decode_response(s.as_bytes())) {
        None => None,
        Some(Ok(Some(bytes))) => Some(bytes),
        Some(Ok(None)) => return Ok(Err(Failure::Cancelled)),
        Some(Err(f)) => return Ok(Err(f)),
    };
    let (mut ex, mut step) = Exchange::start(mech, initial.as_deref(), &ctx.host, ctx);
    for _ in 0..MAX_AUTH_STEPS {
        let challenge = match step {
            Step::Done(id) => return Ok(Ok(id)),
            Step::Failed(f) => return Ok(Err(f)),
            Step::Challenge(c) => c,
        };
        send(
            stream,
            format!("+ {}", sasl::encode_challenge(&challenge)).as_bytes(),
        )
        .await?;
        let line = match reader.next(stream, MAX_LINE_ANONYMOUS).await? {
            Line::Text(l) => l,
            Line::TooLong => return Ok(Err(Failure::Malformed)),
            Line::Eof => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        };
        step = match sasl::decode_response(&line) {
            Ok(Some(bytes)) => ex.step(&bytes, ctx),
            Ok(None) => Step::Failed(Failure::Cancelled),
            Err(f) => Step::Failed(f),
        };
    }
    Ok(Err(Failure::Malformed))
}

/// Applies the shared login policy and answers: `200 login OK` or `500 <reason>`.
async fn finish_login<S: AsyncWrite + Unpin>(
    stream: &mut S,
    ctx: &Arc<CliContext>,
    login: &str,
    result: Result<AccountId, Failure>,
) -> std::io::Result<State> {
    match ctx.finish_login(login, Some("PWD"), result).await {
        Ok(id) => match Session::load(&ctx.store, &id.name, &id.domain) {
            Ok(session) => {
                send(stream, b"200 login OK").await?;
                Ok(State::Authenticated(session))
            }
            Err(e) => {
                send(stream, format!("500 {e}").as_bytes()).await?;
                Ok(State::Anonymous)
            }
        },
        Err(f) => {
            send(stream, format!("500 {f}").as_bytes()).await?;
            Ok(State::Anonymous)
        }
    }
}

async fn reload(ctx: &Arc<CliContext>, s: &Session) -> Option<Session> {
    let ctx = Arc::clone(ctx);
    let (user, domain) = (s.user.clone(), s.domain.clone());
    tokio::task::spawn_blocking(move || Session::load(&ctx.store, &user, &domain).ok())
        .await
        .ok()
        .flatten()
}

/// Runs one CLI command off the async threads (the store does blocking file I/O).
async fn command(ctx: &Arc<CliContext>, s: &Session, line: Vec<u8>) -> Vec<u8> {
    let ctx = Arc::clone(ctx);
    let s = s.clone();
    let result = tokio::task::spawn_blocking(move || cli::execute(&ctx, &s, &line))
        .await
        .unwrap_or_else(|e| Err(CliError::new(format!("Internal error: {e}"))));
    cli::reply_lines(&result)
}

/// `NEWPASS newPassword`: poppassd password change, refused unless the account's effective
/// `PWDAllowed` ("Allow to Modify", guide.txt:8669-8671, 15854-15855) is YES.
async fn new_password(ctx: &Arc<CliContext>, s: &Session, pw: &[u8]) -> Vec<u8> {
    if pw.is_empty() {
        return b"501 NEWPASS needs the new password".to_vec();
    }
    let ctx = Arc::clone(ctx);
    let (user, domain, pw) = (s.user.clone(), s.domain.clone(), Secret::new(pw));
    let result = tokio::task::spawn_blocking(move || -> Result<(), CliError> {
        let eff = ctx.store.account_effective_settings(&domain, &user)?;
        let allowed = eff
            .get(&b"PWDAllowed"[..])
            .and_then(Value::as_bytes)
            .is_some_and(|v| v.eq_ignore_ascii_case(b"YES"));
        if !allowed {
            return Err(CliError::new("Password modification is not allowed"));
        }
        ctx.store.set_password(&domain, &user, pw.expose())?;
        Ok(())
    })
    .await
    .unwrap_or_else(|e| Err(CliError::new(format!("Internal error: {e}"))));
    match result {
        Ok(()) => b"200 password changed".to_vec(),
        Err(e) => cli::reply_lines(&Err(e)),
    }
}
