//! One IMAP connection: the I/O loop (framing, idle timeout), the commands that talk to the
//! client mid-command (STARTTLS, LOGIN, AUTHENTICATE, IDLE, LOGOUT), and the hand-off of every
//! other command to `cmd::run` on a blocking thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

use super::cmd::{self, State};
use super::proto::frame::{Event, Framer, MAX_LINE};
use super::proto::{self, Command};
use super::{ImapContext, TAG};
use crate::cli::SessionRefused;
use crate::kernel::log::Level;
use crate::kernel::sessions::SessionGuard;
use crate::net::listener::AsyncStream;
use crate::net::sasl::{self, AccountId, Exchange, Failure, Step};

/// Bad commands tolerated before the connection is closed.
pub const MAX_ERRORS: u32 = 30;
/// Most AUTHENTICATE round trips.
const MAX_AUTH_STEPS: usize = 8;

struct Conn {
    stream: Box<dyn AsyncStream>,
    peer: SocketAddr,
    framer: Framer,
    secure: bool,
    tag: String,
}

impl Conn {
    /// Reads more bytes into the framer; false at end of input.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.framer.feed(&chunk[..n]);
        Ok(n > 0)
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// One raw line within the idle timeout; `None` at end of input, `Some(Err)` if too long.
    async fn raw_line(&mut self, limit: Duration) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
        loop {
            if let Some(l) = self.framer.raw_line(MAX_LINE) {
                return Ok(Some(l));
            }
            let more = tokio::time::timeout(limit, self.fill())
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
            if !more {
                return Ok(None);
            }
        }
    }
}

/// Serves one IMAP connection until LOGOUT, end of input, an I/O error, too many errors or the
/// idle timeout. `secure` is true on a TLS-on-connect socket.
pub async fn serve(
    stream: Box<dyn AsyncStream>,
    peer: SocketAddr,
    secure: bool,
    ctx: Arc<ImapContext>,
) -> std::io::Result<()> {
    let mut conn = Conn {
        stream,
        framer: Framer::new(ctx.literal_cap),
        peer,
        secure,
        tag: format!("{TAG}-{}", peer.port()),
    };
    ctx.logger.log(
        Level::LowLevel,
        &conn.tag,
        format_args!("connection from {peer}"),
    );
    let caps = capabilities(&ctx, &conn, false);
    conn.send(format!("* OK [CAPABILITY {caps}] Gatehouse IMAP4rev1 server ready\r\n").as_bytes())
        .await?;
    let mut state = State::NotAuthenticated;
    // The session's entry in the registry, from login on (`kernel::sessions`).
    let mut session: Option<SessionGuard> = None;
    let mut errors = 0;
    loop {
        if session.as_ref().is_some_and(SessionGuard::is_killed) {
            return say_killed(&ctx, &mut conn).await;
        }
        let event = match conn.framer.poll() {
            Some(e) => e,
            None => {
                let more = tokio::select! {
                    more = tokio::time::timeout(ctx.idle_timeout, conn.fill()) => more,
                    () = killed(&mut session) => return say_killed(&ctx, &mut conn).await,
                };
                match more {
                    Err(_) => {
                        // RFC 3501 §5.4: the autologout timer.
                        conn.send(b"* BYE Autologout; idle for too long\r\n")
                            .await?;
                        return Ok(());
                    }
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => return Ok(()),
                    Ok(Err(e)) => return Err(e),
                }
                continue;
            }
        };
        let line = match event {
            Event::Continue => {
                conn.send(b"+ Ready for literal data\r\n").await?;
                continue;
            }
            Event::TooLong => {
                errors += 1;
                conn.send(b"* BAD command line too long\r\n").await?;
                if errors >= MAX_ERRORS {
                    return close_for_errors(&mut conn).await;
                }
                continue;
            }
            Event::LiteralTooBig(tag) => {
                errors += 1;
                let tag = String::from_utf8_lossy(&tag).into_owned();
                conn.send(format!("{tag} NO [TOOBIG] literal too big\r\n").as_bytes())
                    .await?;
                if errors >= MAX_ERRORS {
                    return close_for_errors(&mut conn).await;
                }
                continue;
            }
            Event::Fatal => {
                conn.send(b"* BYE literal too big\r\n").await?;
                return Ok(());
            }
            Event::Command(line) => line,
        };
        let req = match proto::parse_command(&line) {
            Ok(r) => r,
            Err(e) => {
                errors += 1;
                let tag = e.tag.unwrap_or_else(|| "*".into());
                conn.send(format!("{tag} BAD {}\r\n", e.why).as_bytes())
                    .await?;
                if errors >= MAX_ERRORS {
                    return close_for_errors(&mut conn).await;
                }
                continue;
            }
        };
        let tag = req.tag;
        match req.command {
            Command::Capability => {
                let caps = capabilities(&ctx, &conn, !matches!(state, State::NotAuthenticated));
                conn.send(
                    format!("* CAPABILITY {caps}\r\n{tag} OK CAPABILITY completed\r\n").as_bytes(),
                )
                .await?;
            }
            Command::Logout => {
                conn.send(
                    format!(
                        "* BYE Gatehouse IMAP server signing off\r\n{tag} OK LOGOUT completed\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
                return Ok(());
            }
            Command::StartTls => match (&ctx.tls, conn.secure, &state) {
                (Some(tls), false, State::NotAuthenticated) => {
                    conn.send(format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes())
                        .await?;
                    // RFC 3501 §6.2.1: nothing the client sent before the handshake is kept.
                    conn.framer.reset();
                    let plain = std::mem::replace(&mut conn.stream, Box::new(tokio::io::empty()));
                    conn.stream = Box::new(tls.upgrade(plain).await?);
                    conn.secure = true;
                }
                (_, true, _) => {
                    conn.send(format!("{tag} BAD TLS is already active\r\n").as_bytes())
                        .await?
                }
                (None, _, _) => {
                    conn.send(format!("{tag} BAD TLS is not available\r\n").as_bytes())
                        .await?
                }
                _ => {
                    conn.send(format!("{tag} BAD already logged in\r\n").as_bytes())
                        .await?
                }
            },
            Command::Login(user, password) => {
                if !matches!(state, State::NotAuthenticated) {
                    errors += 1;
                    conn.send(format!("{tag} BAD already logged in\r\n").as_bytes())
                        .await?;
                    continue;
                }
                let result = ctx.cli.password_login(&user, &password).await;
                (state, session) = login(&ctx, &mut conn, &tag, &user, result).await?;
            }
            Command::Authenticate(mech, initial) => {
                if !matches!(state, State::NotAuthenticated) {
                    errors += 1;
                    conn.send(format!("{tag} BAD already logged in\r\n").as_bytes())
                        .await?;
                    continue;
                }
                let (name, result) = authenticate(&ctx, &mut conn, &mech, initial).await?;
                (state, session) = login(&ctx, &mut conn, &tag, &name, result).await?;
            }
            Command::Idle if !matches!(state, State::NotAuthenticated) => {
                state = idle(&ctx, &mut conn, &tag, state, &mut session).await?;
            }
            command => {
                let c = Arc::clone(&ctx);
                let t = tag.clone();
                let done =
                    tokio::task::spawn_blocking(move || cmd::run(&c, state, &t, command)).await;
                let (next, out) = match done {
                    Ok(r) => r,
                    Err(e) => {
                        ctx.logger.log(
                            Level::Failures,
                            &conn.tag,
                            format_args!("command failed: {e}"),
                        );
                        conn.send(b"* BYE internal error\r\n").await?;
                        return Ok(());
                    }
                };
                state = next;
                if let Some(g) = &session {
                    g.set_mailbox(match &state {
                        State::Selected(_, sel) => Some(sel.open_mailbox()),
                        _ => None,
                    });
                }
                if bad_reply(&out, &tag) {
                    errors += 1;
                }
                conn.send(&out).await?;
            }
        }
        if errors >= MAX_ERRORS {
            return close_for_errors(&mut conn).await;
        }
    }
}

/// True when the tagged line of `out` is `BAD`.
fn bad_reply(out: &[u8], tag: &str) -> bool {
    let needle = format!("{tag} BAD ");
    out.split(|&b| b == b'\n')
        .any(|l| l.starts_with(needle.as_bytes()))
}

async fn close_for_errors(conn: &mut Conn) -> std::io::Result<()> {
    conn.send(b"* BYE too many errors, closing\r\n").await
}

/// Completes when the session is killed (`KillAccountSessions`); never before login.
async fn killed(session: &mut Option<SessionGuard>) {
    match session {
        Some(g) => g.killed().await,
        None => std::future::pending().await,
    }
}

/// RFC 3501 §7.1.5: an unsolicited BYE, then the server closes the connection.
async fn say_killed(ctx: &ImapContext, conn: &mut Conn) -> std::io::Result<()> {
    ctx.logger.log(
        Level::Major,
        &conn.tag,
        format_args!("session ended by KillAccountSessions"),
    );
    conn.send(b"* BYE session ended by the administrator\r\n")
        .await
}

/// The CAPABILITY list (RFC 3501 §6.1.1 and each extension's RFC).
fn capabilities(ctx: &ImapContext, conn: &Conn, authenticated: bool) -> String {
    let mut caps = vec!["IMAP4rev1".to_string(), "LITERAL+".into(), "SASL-IR".into()];
    if !authenticated {
        if ctx.tls.is_some() && !conn.secure {
            caps.push("STARTTLS".into());
        }
        for m in ctx.cli.advertised_mechanisms() {
            caps.push(format!("AUTH={m}"));
        }
    }
    for c in [
        "IDLE",
        "UIDPLUS",
        "NAMESPACE",
        "UNSELECT",
        "MOVE",
        "CHILDREN",
        "ID",
        "ENABLE",
        "SPECIAL-USE",
        "QUOTA",
        "ACL",
        "CONDSTORE",
    ] {
        caps.push(c.into());
    }
    caps.join(" ")
}

/// Finishes LOGIN or AUTHENTICATE: lockout, Enabled Services, the failure delay (all in
/// `finish_login`), the account's session limit (`MaxAccountSessions`, our extension), then the
/// Authenticated state and the session's registry entry.
async fn login(
    ctx: &Arc<ImapContext>,
    conn: &mut Conn,
    tag: &str,
    name: &str,
    result: Result<AccountId, Failure>,
) -> std::io::Result<(State, Option<SessionGuard>)> {
    const REFUSED: (State, Option<SessionGuard>) = (State::NotAuthenticated, None);
    let result = ctx.cli.finish_login(name, Some("IMAP"), result).await;
    let id = match result {
        Ok(id) => id,
        Err(f) => {
            let code = match &f {
                Failure::BadCredentials(name) => {
                    ctx.logger.log(
                        Level::Problems,
                        &conn.tag,
                        format_args!("login failed for {name:?}"),
                    );
                    "[AUTHENTICATIONFAILED] "
                }
                Failure::Server(e) => {
                    ctx.logger.log(
                        Level::Failures,
                        &conn.tag,
                        format_args!("cannot check credentials: {e}"),
                    );
                    "[UNAVAILABLE] "
                }
                // RFC 3501 §6.2.2: a cancelled exchange gets BAD, as does a broken one.
                Failure::Malformed | Failure::UnknownMechanism | Failure::Cancelled => {
                    conn.send(format!("{tag} BAD {f}\r\n").as_bytes()).await?;
                    return Ok(REFUSED);
                }
                _ => "",
            };
            conn.send(format!("{tag} NO {code}{f}\r\n").as_bytes())
                .await?;
            return Ok(REFUSED);
        }
    };
    let guard = match ctx.cli.open_session(&id, TAG, conn.peer.ip()).await {
        Ok(g) => g,
        Err(SessionRefused::Limit(e)) => {
            // Major, not Problems: the default log level records it, and an admin who set a
            // limit wants to see it bite.
            ctx.logger.log(
                Level::Major,
                &conn.tag,
                format_args!("login of {id} refused: {e}"),
            );
            // RFC 5530 §3: LIMIT, "an operation was refused because a limit was reached".
            conn.send(format!("{tag} NO [LIMIT] {e}\r\n").as_bytes())
                .await?;
            return Ok(REFUSED);
        }
        Err(SessionRefused::Server(e)) => {
            ctx.logger.log(
                Level::Failures,
                &conn.tag,
                format_args!("cannot register the session of {id}: {e}"),
            );
            conn.send(format!("{tag} NO [UNAVAILABLE] cannot open the account\r\n").as_bytes())
                .await?;
            return Ok(REFUSED);
        }
    };
    let c = Arc::clone(ctx);
    let who = id.clone();
    let authed = tokio::task::spawn_blocking(move || cmd::Authed::new(&c, who)).await;
    match authed {
        Ok(Ok(a)) => {
            ctx.logger
                .log(Level::Major, &conn.tag, format_args!("{id} logged in"));
            let caps = capabilities(ctx, conn, true);
            conn.send(format!("{tag} OK [CAPABILITY {caps}] logged in\r\n").as_bytes())
                .await?;
            Ok((State::Authenticated(Box::new(a)), Some(guard)))
        }
        Ok(Err(e)) => {
            ctx.logger.log(
                Level::Failures,
                &conn.tag,
                format_args!("cannot open the account {id}: {e}"),
            );
            conn.send(format!("{tag} NO [UNAVAILABLE] cannot open the account\r\n").as_bytes())
                .await?;
            Ok(REFUSED)
        }
        Err(e) => {
            ctx.logger
                .log(Level::Failures, &conn.tag, format_args!("{e}"));
            conn.send(format!("{tag} NO [UNAVAILABLE] cannot open the account\r\n").as_bytes())
                .await?;
            Ok(REFUSED)
        }
    }
}

/// RFC 3501 §6.2.2: `+ base64` challenges, base64 answers, `*` cancels; RFC 4959: the initial
/// response on the command line, `=` for an empty one. Returns the login name and the outcome.
async fn authenticate(
    ctx: &Arc<ImapContext>,
    conn: &mut Conn,
    mech: &str,
    initial: Option<Vec<u8>>,
) -> std::io::Result<(String, Result<AccountId, Failure>)> {
    let initial = match initial.map(|i| sasl::decode_response(&i)) {
        None => None,
        Some(Ok(Some(bytes))) => Some(bytes),
        Some(Ok(None)) => return Ok((String::new(), Err(Failure::Cancelled))),
        Some(Err(f)) => return Ok((String::new(), Err(f))),
    };
    let (c, mech, host) = (Arc::clone(&ctx.cli), mech.to_string(), ctx.cli.host.clone());
    let started =
        tokio::task::spawn_blocking(move || Exchange::start(&mech, initial.as_deref(), &host, &*c))
            .await;
    let (mut ex, mut step) = match started {
        Ok(s) => s,
        Err(e) => {
            return Ok((
                String::new(),
                Err(Failure::Server(sasl::AuthError(e.to_string()))),
            ))
        }
    };
    for _ in 0..MAX_AUTH_STEPS {
        let challenge = match step {
            Step::Done(id) => return Ok((id.to_string(), Ok(id))),
            Step::Failed(f) => {
                let name = match &f {
                    Failure::BadCredentials(n) => n.clone(),
                    _ => String::new(),
                };
                return Ok((name, Err(f)));
            }
            Step::Challenge(c) => c,
        };
        conn.send(format!("+ {}\r\n", sasl::encode_challenge(&challenge)).as_bytes())
            .await?;
        let line = match conn.raw_line(ctx.idle_timeout).await? {
            Some(Ok(l)) => l,
            Some(Err(())) => return Ok((String::new(), Err(Failure::Malformed))),
            None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        };
        let bytes = match sasl::decode_response(&line) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok((String::new(), Err(Failure::Cancelled))),
            Err(f) => return Ok((String::new(), Err(f))),
        };
        let c = Arc::clone(&ctx.cli);
        let stepped = tokio::task::spawn_blocking(move || {
            let s = ex.step(&bytes, &*c);
            (ex, s)
        })
        .await;
        (ex, step) = match stepped {
            Ok(next) => next,
            Err(e) => {
                return Ok((
                    String::new(),
                    Err(Failure::Server(sasl::AuthError(e.to_string()))),
                ))
            }
        };
    }
    Ok((String::new(), Err(Failure::Malformed)))
}

/// IDLE (RFC 2177): report changes as they happen until the client sends `DONE`.
async fn idle(
    ctx: &Arc<ImapContext>,
    conn: &mut Conn,
    tag: &str,
    mut state: State,
    session: &mut Option<SessionGuard>,
) -> std::io::Result<State> {
    conn.send(b"+ idling\r\n").await?;
    loop {
        if let Some(line) = conn.framer.raw_line(MAX_LINE) {
            let reply = match line {
                Ok(l) if l.eq_ignore_ascii_case(b"DONE") => format!("{tag} OK IDLE terminated\r\n"),
                _ => format!("{tag} BAD expected DONE\r\n"),
            };
            conn.send(reply.as_bytes()).await?;
            return Ok(state);
        }
        let change = async {
            match &mut state {
                State::Selected(_, sel) => Some(sel.changes.recv().await),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = killed(session) => {
                say_killed(ctx, conn).await?;
                return Err(std::io::ErrorKind::ConnectionAborted.into());
            }
            more = tokio::time::timeout(ctx.idle_timeout, conn.fill()) => {
                match more {
                    Err(_) => {
                        conn.send(b"* BYE Autologout; idle for too long\r\n").await?;
                        return Err(std::io::ErrorKind::TimedOut.into());
                    }
                    Ok(r) => if !r? {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
            c = change => {
                let first = match c {
                    Some(Ok(c)) => Some(c),
                    Some(Err(RecvError::Lagged(_))) => None,
                    Some(Err(RecvError::Closed)) | None => continue,
                };
                let done = tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    if let State::Selected(_, sel) = &mut state {
                        sel.lagged |= first.is_none();
                        sel.sync(first, true, &mut out);
                    }
                    (state, out)
                })
                .await;
                let (s, out) = done.map_err(|e| std::io::Error::other(e.to_string()))?;
                state = s;
                conn.send(&out).await?;
            }
        }
    }
}
