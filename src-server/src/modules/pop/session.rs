//! One POP3 connection: the I/O loop (line framing, idle timeout, STLS), the login, and one
//! `cmd_<verb>` per transaction command. See the module header for the standards and guide lines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::proto::{self, Command, ParseError};
use crate::cli::{CliContext, SessionRefused};
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::{NewRecipient, Source, Submission, Submit};
use crate::kernel::sessions::SessionGuard;
use crate::mailbox::{names, Change, Flags, Format, Mailbox, MailboxManager, SetMode};
use crate::net::lines::{Line, LineReader};
use crate::net::listener::AsyncStream;
use crate::net::sasl::{self, AccountId, Credentials, Exchange, Failure, Secret, Step};
use crate::net::tls::TlsSetup;
use crate::store::AccountType;

/// Log tag (guide.txt:14483).
pub const TAG: &str = "POP";
/// RFC 1939 §3: the autologout timer is at least 10 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Bad commands tolerated before the connection is closed.
pub const MAX_ERRORS: u32 = 20;
/// Longest SASL response line (RFC 5034 §4 lets these exceed the 255-octet command limit).
const MAX_AUTH_LINE: usize = 8 * 1024;
/// Most AUTH round trips before the exchange is abandoned.
const MAX_AUTH_STEPS: usize = 8;
/// Longest line of a message sent with XTND XMIT (RFC 5322 §2.1.1 allows 998 plus CRLF).
const MAX_XMIT_LINE: usize = 8 * 1024;
/// Largest message accepted with XTND XMIT.
pub const MAX_XMIT_SIZE: usize = 32 * 1024 * 1024;

/// Pending notification alerts of an account (guide.txt:4893-4959, 14544-14554).
pub trait Alerts: Send + Sync {
    /// The next alert not yet shown to this account, marked shown; `None` when there is none.
    fn take_next(&self, account: &AccountId) -> Option<String>;
}

/// What every POP session shares.
pub struct PopContext {
    /// Accounts, passwords, login security and Enabled Services.
    pub cli: Arc<CliContext>,
    /// The server's one mailbox manager.
    pub mailboxes: Arc<MailboxManager>,
    /// The TLS setup for STLS; `None` hides STLS.
    pub tls: Option<TlsSetup>,
    /// The Enqueuer for XTND XMIT; `None` answers XTND XMIT with `-ERR`.
    pub submit: Option<Arc<dyn Submit>>,
    /// Where pending alerts come from; `None` when the server keeps no alerts.
    pub alerts: Option<Arc<dyn Alerts>>,
    /// The System Log.
    pub logger: Logger,
    /// A silent client is disconnected after this ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
}

impl PopContext {
    /// A context with the default delays.
    pub fn new(cli: Arc<CliContext>, mailboxes: Arc<MailboxManager>, logger: Logger) -> PopContext {
        PopContext {
            cli,
            mailboxes,
            tls: None,
            submit: None,
            alerts: None,
            logger,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// The connection: the stream (plain or TLS) and its read buffer.
struct Conn {
    stream: Box<dyn AsyncStream>,
    peer: SocketAddr,
    reader: LineReader,
    secure: bool,
    tag: String,
}

impl Conn {
    /// The next line of at most `max` bytes (the shared reader: a longer one is skipped whole).
    async fn line(&mut self, max: usize) -> std::io::Result<Line> {
        self.reader.next(&mut self.stream, max).await
    }

    /// [`Conn::line`] within `limit`; a silent client is an error that ends the session.
    async fn line_within(&mut self, max: usize, limit: Duration) -> std::io::Result<Line> {
        tokio::time::timeout(limit, self.line(max))
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }
}

/// The open mailbox of the TRANSACTION state (RFC 1939 §5).
struct Maildrop {
    account: AccountId,
    /// The session's registry entry (`kernel::sessions`): listed, counted, killable.
    session: SessionGuard,
    mailbox: Arc<Mailbox>,
    validity: u32,
    /// The snapshot taken at login (guide.txt:14517-14519): message `n` is `messages[n - 1]`.
    messages: Vec<Msg>,
    changes: broadcast::Receiver<Change>,
    /// LAST (RFC 1225 §"LAST", RFC 1460): the highest message number accessed.
    last: u32,
    /// The value of `last` at login: the highest message already `\Seen` ("accessed during
    /// previous transactions"); RSET returns to it.
    last_at_login: u32,
}

struct Msg {
    uid: u32,
    size: u64,
    deleted: bool,
    /// Expunged by another session: shown with size 0, RETR fails (guide.txt:14520-14522).
    zombie: bool,
}

enum State {
    /// AUTHORIZATION, with the name from USER if one was given.
    Authorization(Option<String>),
    Transaction(Box<Maildrop>),
}

/// What a command leaves the connection in.
enum Next {
    Stay(State),
    Close,
}

/// Serves one POP3 connection until QUIT, end of input, an I/O error, too many errors or the
/// idle timeout. `secure` is true on a TLS-on-connect socket.
pub async fn serve(
    stream: Box<dyn AsyncStream>,
    peer: SocketAddr,
    secure: bool,
    ctx: Arc<PopContext>,
) -> std::io::Result<()> {
    let mut conn = Conn {
        stream,
        peer,
        reader: LineReader::default(),
        secure,
        tag: format!("{TAG}-{}", peer.port()),
    };
    ctx.logger.log(
        Level::LowLevel,
        &conn.tag,
        format_args!("connection from {peer}"),
    );
    let token = sasl::new_token(&ctx.cli.host);
    conn.send(&proto::ok(&format!("Gatehouse POP3 server ready {token}")))
        .await?;
    let mut state = State::Authorization(None);
    let mut errors = 0;
    loop {
        if let State::Transaction(d) = &state {
            if d.session.is_killed() {
                return say_killed(&ctx, &mut conn).await;
            }
        }
        let next_line = tokio::select! {
            l = tokio::time::timeout(ctx.idle_timeout, conn.line(proto::MAX_COMMAND_LINE - 2)) => l,
            () = killed(&mut state) => return say_killed(&ctx, &mut conn).await,
        };
        let line = match next_line {
            Err(_) => {
                // RFC 1939 §3: an autologout timer ends the session without entering UPDATE.
                conn.send(&proto::err("idle timeout, closing")).await?;
                return Ok(());
            }
            Ok(Ok(Line::Eof)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Line::TooLong)) => {
                errors += 1;
                conn.send(&proto::err("command line too long")).await?;
                if errors >= MAX_ERRORS {
                    return close_for_errors(&mut conn).await;
                }
                continue;
            }
            Ok(Ok(Line::Text(l))) => l,
        };
        let cmd = match proto::parse_command(&line) {
            Ok(c) => c,
            Err(e) => {
                errors += 1;
                let text = match e {
                    ParseError::Unknown => "unknown command".to_string(),
                    ParseError::Syntax(s) => s.to_string(),
                };
                conn.send(&proto::err(&text)).await?;
                if errors >= MAX_ERRORS {
                    return close_for_errors(&mut conn).await;
                }
                continue;
            }
        };
        // CAPA, NOOP and QUIT are allowed in every state; the rest belong to one of them.
        let next = match (state, cmd) {
            (state, Command::Capa) => {
                let reply = capabilities(&ctx, &conn, &state);
                conn.send(&reply).await?;
                Next::Stay(state)
            }
            (State::Authorization(_), Command::Quit) => {
                conn.send(&proto::ok("Gatehouse POP3 server signing off"))
                    .await?;
                Next::Close
            }
            (State::Transaction(drop), Command::Quit) => {
                update(&ctx, &mut conn, *drop).await?;
                Next::Close
            }
            (State::Authorization(_), Command::User(name)) => {
                conn.send(&proto::ok("send the PASS")).await?;
                Next::Stay(State::Authorization(Some(name)))
            }
            (State::Authorization(Some(name)), Command::Pass(pw)) => {
                let result = password_login(&ctx, &name, pw).await;
                login(&ctx, &mut conn, &name, result).await?
            }
            (State::Authorization(_), Command::Apop { name, digest }) => {
                let result = apop_login(&ctx, &name, &token, &digest).await;
                login(&ctx, &mut conn, &name, result).await?
            }
            (State::Authorization(_), Command::Auth { mechanism, initial }) => match mechanism {
                // guide.txt:14530-14532: a bare AUTH lists the mechanisms (Microsoft clients).
                None => {
                    conn.send(&proto::multi_line(
                        "SASL mechanisms follow",
                        ctx.cli.advertised_mechanisms(),
                    ))
                    .await?;
                    Next::Stay(State::Authorization(None))
                }
                Some(mech) => {
                    let (name, result) = auth(&ctx, &mut conn, &mech, initial).await?;
                    login(&ctx, &mut conn, &name, result).await?
                }
            },
            (State::Authorization(_), Command::Stls) => match (&ctx.tls, conn.secure) {
                (Some(tls), false) => {
                    conn.send(&proto::ok("begin TLS negotiation")).await?;
                    // RFC 2595 §4: anything the client sent after STLS is discarded.
                    conn.reader.discard_buffered();
                    let plain = std::mem::replace(&mut conn.stream, Box::new(tokio::io::empty()));
                    let tls = tls.upgrade(plain).await?;
                    conn.stream = Box::new(tls);
                    conn.secure = true;
                    Next::Stay(State::Authorization(None))
                }
                (_, true) => {
                    conn.send(&proto::err("TLS is already active")).await?;
                    Next::Stay(State::Authorization(None))
                }
                (None, false) => {
                    conn.send(&proto::err("TLS is not available")).await?;
                    Next::Stay(State::Authorization(None))
                }
            },
            (State::Authorization(user), Command::Pass(_)) => {
                debug_assert!(user.is_none());
                errors += 1;
                conn.send(&proto::err("send USER first")).await?;
                Next::Stay(State::Authorization(None))
            }
            (State::Authorization(_), _) => {
                errors += 1;
                conn.send(&proto::err("log in first")).await?;
                Next::Stay(State::Authorization(None))
            }
            (State::Transaction(mut drop), cmd) => {
                let reply = transaction(&ctx, &mut conn, &mut drop, cmd).await?;
                if reply.starts_with(b"-ERR") {
                    errors += 1;
                }
                conn.send(&reply).await?;
                Next::Stay(State::Transaction(drop))
            }
        };
        state = match next {
            Next::Stay(s) => s,
            Next::Close => return Ok(()),
        };
        if errors >= MAX_ERRORS {
            return close_for_errors(&mut conn).await;
        }
    }
}

async fn close_for_errors(conn: &mut Conn) -> std::io::Result<()> {
    conn.send(&proto::err("too many errors, closing")).await
}

/// Completes when the logged-in session is killed (`KillAccountSessions`).
async fn killed(state: &mut State) {
    match state {
        State::Transaction(d) => d.session.killed().await,
        State::Authorization(_) => std::future::pending().await,
    }
}

/// Ends a killed session as the autologout timer does (RFC 1939 §3): without the UPDATE state,
/// so nothing marked with DELE is deleted; the `-ERR` answers whatever the client sends next.
async fn say_killed(ctx: &PopContext, conn: &mut Conn) -> std::io::Result<()> {
    ctx.logger.log(
        Level::Major,
        &conn.tag,
        format_args!("session ended by KillAccountSessions"),
    );
    conn.send(&proto::err("session ended by the administrator"))
        .await
}

/// The CAPA list (RFC 2449 §5, RFC 2595 §4, RFC 5034 §5).
fn capabilities(ctx: &PopContext, conn: &Conn, state: &State) -> Vec<u8> {
    let mut caps = vec![
        "TOP".to_string(),
        "UIDL".to_string(),
        "RESP-CODES".to_string(),
        "AUTH-RESP-CODE".to_string(),
        "PIPELINING".to_string(),
        "EXPIRE NEVER".to_string(),
        "LOGIN-DELAY 0".to_string(),
    ];
    if matches!(state, State::Authorization(_)) {
        caps.push("USER".to_string());
        caps.push(format!(
            "SASL {}",
            ctx.cli.advertised_mechanisms().join(" ")
        ));
        if ctx.tls.is_some() && !conn.secure {
            caps.push("STLS".to_string());
        }
    }
    if ctx.submit.is_some() {
        caps.push("XTND XMIT".to_string());
    }
    caps.push(format!(
        "IMPLEMENTATION Gatehouse {}",
        env!("CARGO_PKG_VERSION")
    ));
    proto::multi_line("Capability list follows", caps)
}

/// `mailbox#account` (guide.txt:14566-14584): the mailbox part, if any, and the login name.
fn split_login(login: &str) -> (Option<&str>, &str) {
    match login.rsplit_once('#') {
        Some((mailbox, account)) if !mailbox.is_empty() => (Some(mailbox), account),
        Some((_, account)) => (None, account),
        None => (None, login),
    }
}

/// The store as SASL sees it, with the `mailbox#` prefix taken off the login name and kept.
struct LoginCredentials {
    cli: Arc<CliContext>,
    mailbox: Mutex<Option<String>>,
}

impl LoginCredentials {
    fn strip(&self, login: &str) -> String {
        let (mailbox, account) = split_login(login);
        *self.mailbox.lock().unwrap_or_else(PoisonError::into_inner) = mailbox.map(str::to_string);
        account.to_string()
    }
}

impl Credentials for LoginCredentials {
    fn check_password(
        &self,
        login: &str,
        password: &Secret,
    ) -> Result<Option<AccountId>, sasl::AuthError> {
        let login = self.strip(login);
        self.cli.check_password(&login, password)
    }

    fn recoverable_password(
        &self,
        login: &str,
    ) -> Result<Option<(AccountId, Secret)>, sasl::AuthError> {
        let login = self.strip(login);
        self.cli.recoverable_password(&login)
    }
}

/// A login's outcome: the account, and the mailbox named with `mailbox#account`.
type LoginResult = Result<(AccountId, Option<String>), Failure>;

fn checked(
    login: &str,
    r: Result<Option<AccountId>, sasl::AuthError>,
    mailbox: Option<&str>,
) -> LoginResult {
    match r {
        Ok(Some(id)) => Ok((id, mailbox.map(str::to_string))),
        Ok(None) => Err(Failure::BadCredentials(login.to_string())),
        Err(e) => Err(Failure::Server(e)),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Failure::Server(sasl::AuthError(e.to_string()))))
}

async fn password_login(ctx: &Arc<PopContext>, login: &str, pw: Secret) -> LoginResult {
    let cli = Arc::clone(&ctx.cli);
    let login = login.to_string();
    blocking(move || {
        let (mailbox, account) = split_login(&login);
        checked(account, cli.check_password(account, &pw), mailbox)
    })
    .await
}

async fn apop_login(ctx: &Arc<PopContext>, login: &str, token: &str, digest: &str) -> LoginResult {
    let cli = Arc::clone(&ctx.cli);
    let (login, token, digest) = (login.to_string(), token.to_string(), digest.to_string());
    blocking(move || {
        let (mailbox, account) = split_login(&login);
        checked(
            account,
            sasl::apop_check(&*cli, account, &token, &digest),
            mailbox,
        )
    })
    .await
}

/// RFC 5034 §4: `+ base64` challenges, base64 answers, `*` cancels. Returns the login name
/// (for the lockout counter) and the outcome.
async fn auth(
    ctx: &Arc<PopContext>,
    conn: &mut Conn,
    mech: &str,
    initial: Option<String>,
) -> std::io::Result<(String, LoginResult)> {
    let initial = match initial.map(|i| sasl::decode_response(i.as_bytes())) {
        None => None,
        Some(Ok(Some(bytes))) => Some(bytes),
        Some(Ok(None)) => return Ok((String::new(), Err(Failure::Cancelled))),
        Some(Err(f)) => return Ok((String::new(), Err(f))),
    };
    let creds = Arc::new(LoginCredentials {
        cli: Arc::clone(&ctx.cli),
        mailbox: Mutex::new(None),
    });
    let (c, mech, host) = (Arc::clone(&creds), mech.to_string(), ctx.cli.host.clone());
    let started =
        tokio::task::spawn_blocking(move || Exchange::start(&mech, initial.as_deref(), &host, &*c))
            .await;
    let (mut ex, mut step) = match started {
        Ok(s) => s,
        Err(e) => {
            let f = Failure::Server(sasl::AuthError(e.to_string()));
            return Ok((String::new(), Err(f)));
        }
    };
    for _ in 0..MAX_AUTH_STEPS {
        let challenge = match step {
            Step::Done(id) => {
                let mailbox = creds
                    .mailbox
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                return Ok((id.to_string(), Ok((id, mailbox))));
            }
            Step::Failed(f) => {
                let name = match &f {
                    Failure::BadCredentials(n) => split_login(n).1.to_string(),
                    _ => String::new(),
                };
                return Ok((name, Err(f)));
            }
            Step::Challenge(c) => c,
        };
        conn.send(format!("+ {}\r\n", sasl::encode_challenge(&challenge)).as_bytes())
            .await?;
        let line = match conn.line_within(MAX_AUTH_LINE, ctx.idle_timeout).await? {
            Line::Text(l) => l,
            Line::TooLong => return Ok((String::new(), Err(Failure::Malformed))),
            Line::Eof => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        };
        let bytes = match sasl::decode_response(&line) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok((String::new(), Err(Failure::Cancelled))),
            Err(f) => return Ok((String::new(), Err(f))),
        };
        let c = Arc::clone(&creds);
        let stepped = tokio::task::spawn_blocking(move || {
            let s = ex.step(&bytes, &*c);
            (ex, s)
        })
        .await;
        (ex, step) = match stepped {
            Ok(next) => next,
            Err(e) => {
                let f = Failure::Server(sasl::AuthError(e.to_string()));
                return Ok((String::new(), Err(f)));
            }
        };
    }
    Ok((String::new(), Err(Failure::Malformed)))
}

/// Finishes a login: lockout and Enabled Services, pending alerts, then the mailbox snapshot.
async fn login(
    ctx: &Arc<PopContext>,
    conn: &mut Conn,
    login: &str,
    result: LoginResult,
) -> std::io::Result<Next> {
    let mailbox = result.as_ref().ok().and_then(|(_, m)| m.clone());
    // The shared policy: lockout, Enabled Services, failure counting and delay.
    let result = ctx
        .cli
        .finish_login(split_login(login).1, Some("POP"), result.map(|(id, _)| id))
        .await;
    let id = match result {
        Ok(id) => id,
        Err(f) => {
            let text = match &f {
                Failure::BadCredentials(name) => {
                    ctx.logger.log(
                        Level::Problems,
                        &conn.tag,
                        format_args!("login failed for {name:?}"),
                    );
                    format!("[AUTH] {f}")
                }
                Failure::Server(e) => {
                    ctx.logger.log(
                        Level::Failures,
                        &conn.tag,
                        format_args!("cannot check credentials: {e}"),
                    );
                    format!("[SYS/TEMP] {f}")
                }
                _ => f.to_string(),
            };
            conn.send(&proto::err(&text)).await?;
            return Ok(Next::Stay(State::Authorization(None)));
        }
    };
    // guide.txt:14544-14554: a pending alert rejects the login with its text, one per attempt.
    if let Some(alerts) = &ctx.alerts {
        let (alerts, who) = (Arc::clone(alerts), id.clone());
        if let Ok(Some(text)) = tokio::task::spawn_blocking(move || alerts.take_next(&who)).await {
            conn.send(&proto::err(&format!("ALERT: {text}"))).await?;
            return Ok(Next::Close);
        }
    }
    let session = match ctx.cli.open_session(&id, TAG, conn.peer.ip()).await {
        Ok(g) => g,
        Err(SessionRefused::Limit(e)) => {
            // Major, not Problems: the default log level records it, and an admin who set a
            // limit wants to see it bite.
            ctx.logger.log(
                Level::Major,
                &conn.tag,
                format_args!("login of {id} refused: {e}"),
            );
            // RFC 2449 §8.1.1: IN-USE, the credentials are good but the maildrop cannot be
            // opened now; the client may try again later.
            conn.send(&proto::err(&format!("[IN-USE] {e}"))).await?;
            return Ok(Next::Stay(State::Authorization(None)));
        }
        Err(SessionRefused::Server(e)) => {
            ctx.logger.log(
                Level::Failures,
                &conn.tag,
                format_args!("cannot register the session of {id}: {e}"),
            );
            conn.send(&proto::err("[SYS/TEMP] cannot open the mailbox"))
                .await?;
            return Ok(Next::Stay(State::Authorization(None)));
        }
    };
    let name = mailbox.clone().unwrap_or_else(|| "INBOX".into());
    let (c, who) = (Arc::clone(ctx), id.clone());
    let opened = tokio::task::spawn_blocking(move || open_mailbox(&c, &who, mailbox.as_deref()))
        .await
        .unwrap_or_else(|e| Err(OpenError::Server(e.to_string())));
    match opened {
        Ok(mailbox) => {
            let changes = mailbox.subscribe();
            let mb = Arc::clone(&mailbox);
            let Ok((list, validity)) =
                tokio::task::spawn_blocking(move || (mb.list(), mb.uid_validity())).await
            else {
                conn.send(&proto::err("[SYS/TEMP] cannot list the mailbox"))
                    .await?;
                return Ok(Next::Stay(State::Authorization(None)));
            };
            let last_at_login = list
                .iter()
                .rposition(|m| m.flags.contains(Flags::SEEN))
                .map_or(0, |i| i as u32 + 1);
            let messages: Vec<Msg> = list
                .into_iter()
                .map(|m| Msg {
                    uid: m.uid,
                    size: m.size,
                    deleted: false,
                    zombie: false,
                })
                .collect();
            ctx.logger.log(
                Level::Major,
                &conn.tag,
                format_args!(
                    "{id} logged in, {} message(s) in {}",
                    messages.len(),
                    mailbox.path().display()
                ),
            );
            session.set_mailbox(Some((&name, mailbox.path())));
            conn.send(&proto::ok(&format!("{} message(s)", messages.len())))
                .await?;
            Ok(Next::Stay(State::Transaction(Box::new(Maildrop {
                account: id,
                session,
                mailbox,
                validity,
                messages,
                changes,
                last: last_at_login,
                last_at_login,
            }))))
        }
        Err(OpenError::Refused(text)) => {
            conn.send(&proto::err(&text)).await?;
            Ok(Next::Stay(State::Authorization(None)))
        }
        Err(OpenError::Server(text)) => {
            ctx.logger.log(
                Level::Failures,
                &conn.tag,
                format_args!("cannot open the mailbox of {id}: {text}"),
            );
            conn.send(&proto::err("[SYS/TEMP] cannot open the mailbox"))
                .await?;
            Ok(Next::Stay(State::Authorization(None)))
        }
    }
}

enum OpenError {
    /// The client asked for something that is not there or not allowed.
    Refused(String),
    /// A server-side problem (logged).
    Server(String),
}

/// Opens the account's INBOX, or the mailbox named with `mailbox#account` (guide.txt:14455-14457,
/// 14556-14584). INBOX is created when missing; other mailboxes must exist.
fn open_mailbox(
    ctx: &PopContext,
    id: &AccountId,
    mailbox: Option<&str>,
) -> Result<Arc<Mailbox>, OpenError> {
    let name = mailbox.unwrap_or("INBOX");
    if name.starts_with('~') {
        // todo: foreign and public mailboxes need the Sharing ACLs (guide.txt:14586-14602).
        return Err(OpenError::Refused(
            "other accounts' mailboxes are not available over POP".into(),
        ));
    }
    let name = names::validate(name).map_err(|e| OpenError::Refused(e.to_string()))?;
    let (kind, dir) = ctx
        .cli
        .store
        .account_location(&id.domain, &id.name)
        .map_err(|e| OpenError::Server(e.to_string()))?;
    let inbox = name == "INBOX";
    let candidates: Vec<(PathBuf, Format)> = match kind {
        AccountType::MultiMailbox => [Format::Mbox, Format::Mdir]
            .into_iter()
            .filter_map(|f| Some((names::storage_path(&dir, &name, f).ok()?, f)))
            .collect(),
        // A single-mailbox account is its INBOX (guide.txt:9237-9253).
        AccountType::TextMailbox if inbox => {
            vec![(dir.join(format!("{}.mbox", id.name)), Format::Mbox)]
        }
        AccountType::MailDirMailbox if inbox => {
            vec![(dir.join(format!("{}.mdir", id.name)), Format::Mdir)]
        }
        _ => Vec::new(),
    };
    let open = |(path, format): &(PathBuf, Format)| {
        ctx.mailboxes
            .open(path, *format)
            .map_err(|e| OpenError::Server(e.to_string()))
    };
    if let Some(existing) = candidates.iter().find(|(p, _)| p.exists()) {
        return open(existing);
    }
    match candidates.first() {
        Some((path, format)) if inbox => ctx
            .mailboxes
            .open_or_create(path, *format)
            .map_err(|e| OpenError::Server(e.to_string())),
        _ => Err(OpenError::Refused(format!("Mailbox {name} does not exist"))),
    }
}

impl Maildrop {
    /// Applies what other sessions did since the last command: expunged messages become zombies.
    fn catch_up(&mut self) {
        loop {
            match self.changes.try_recv() {
                Ok(Change::Expunged { uids }) => {
                    for m in &mut self.messages {
                        if uids.binary_search(&m.uid).is_ok() {
                            m.zombie = true;
                        }
                    }
                }
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => {
                    // Too much happened to replay: compare with a fresh listing.
                    let present: Vec<u32> = self.mailbox.list().iter().map(|m| m.uid).collect();
                    for m in &mut self.messages {
                        if present.binary_search(&m.uid).is_err() {
                            m.zombie = true;
                        }
                    }
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// The index of message `n` unless it is out of range or marked deleted (RFC 1939 §5).
    fn index(&self, n: u32) -> Result<usize, &'static str> {
        let i = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .ok_or("no such message")?;
        match self.messages.get(i) {
            None => Err("no such message"),
            Some(m) if m.deleted => Err("message is deleted"),
            Some(_) => Ok(i),
        }
    }

    /// Message `n`, as [`Maildrop::index`] allows.
    fn get(&self, n: u32) -> Result<&Msg, &'static str> {
        self.index(n).map(|i| &self.messages[i])
    }

    fn size(m: &Msg) -> u64 {
        if m.zombie {
            0
        } else {
            m.size
        }
    }

    /// The unique-id listing value: UIDVALIDITY and UID, so a rebuilt mailbox (new UIDVALIDITY)
    /// never makes a client skip new messages as already seen (RFC 1939 §7 UIDL).
    fn unique_id(&self, m: &Msg) -> String {
        format!("{}.{}", self.validity, m.uid)
    }

    fn numbered(&self) -> impl Iterator<Item = (usize, &Msg)> {
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| (i + 1, m))
            .filter(|(_, m)| !m.deleted)
    }
}

/// One TRANSACTION-state command; returns the reply.
async fn transaction(
    ctx: &Arc<PopContext>,
    conn: &mut Conn,
    drop: &mut Maildrop,
    cmd: Command,
) -> std::io::Result<Vec<u8>> {
    drop.catch_up();
    Ok(match cmd {
        Command::Stat => cmd_stat(drop),
        Command::List(n) => cmd_list(drop, n),
        Command::Uidl(n) => cmd_uidl(drop, n),
        Command::Retr(n) => cmd_retr(ctx, drop, n, None).await,
        Command::Top { msg, lines } => cmd_retr(ctx, drop, msg, Some(lines)).await,
        Command::Dele(n) => cmd_dele(drop, n),
        Command::Noop => proto::ok(""),
        Command::Rset => cmd_rset(drop),
        Command::Last => proto::ok(&drop.last.to_string()),
        Command::XtndXmit => cmd_xtnd_xmit(ctx, conn, drop).await?,
        Command::User(_)
        | Command::Pass(_)
        | Command::Apop { .. }
        | Command::Auth { .. }
        | Command::Stls => proto::err("already logged in"),
        Command::Capa | Command::Quit => {
            debug_assert!(false, "handled by the caller");
            proto::err("unexpected command")
        }
    })
}

/// `STAT` (TRANSACTION): count and size of the messages not marked deleted.
fn cmd_stat(d: &Maildrop) -> Vec<u8> {
    let (count, size) = d.numbered().fold((0u64, 0u64), |(c, s), (_, m)| {
        (c + 1, s + Maildrop::size(m))
    });
    proto::ok(&format!("{count} {size}"))
}

/// `LIST [msg]` (TRANSACTION).
fn cmd_list(d: &Maildrop, n: Option<u32>) -> Vec<u8> {
    match n {
        Some(n) => match d.get(n) {
            Ok(m) => proto::ok(&format!("{n} {}", Maildrop::size(m))),
            Err(e) => proto::err(e),
        },
        None => {
            let lines: Vec<String> = d
                .numbered()
                .map(|(i, m)| format!("{i} {}", Maildrop::size(m)))
                .collect();
            proto::multi_line(&format!("{} message(s)", lines.len()), lines)
        }
    }
}

/// `UIDL [msg]` (TRANSACTION).
fn cmd_uidl(d: &Maildrop, n: Option<u32>) -> Vec<u8> {
    match n {
        Some(n) => match d.get(n) {
            Ok(m) => proto::ok(&format!("{n} {}", d.unique_id(m))),
            Err(e) => proto::err(e),
        },
        None => {
            let lines: Vec<String> = d
                .numbered()
                .map(|(i, m)| format!("{i} {}", d.unique_id(m)))
                .collect();
            proto::multi_line("unique-id listing follows", lines)
        }
    }
}

/// `RETR msg` and `TOP msg n` (TRANSACTION). guide.txt:14524-14528: RETR sets `\Seen`, TOP does not.
async fn cmd_retr(ctx: &Arc<PopContext>, d: &mut Maildrop, n: u32, top: Option<u32>) -> Vec<u8> {
    let index = match d.index(n) {
        Ok(i) => i,
        Err(e) => return proto::err(e),
    };
    let m = &d.messages[index];
    if m.zombie {
        return proto::err("message was deleted by another session");
    }
    let (uid, size) = (m.uid, m.size);
    let mb = Arc::clone(&d.mailbox);
    let read = tokio::task::spawn_blocking(move || {
        let bytes = mb.read(uid)?;
        if top.is_none() {
            mb.set_flags(&[uid], Flags::SEEN, SetMode::Add)?;
        }
        Ok::<_, crate::mailbox::MailboxError>(bytes)
    })
    .await;
    match read {
        Ok(Ok(bytes)) => {
            // LAST counts what RETR and DELE touched; TOP is a peek, like its \Seen rule.
            if top.is_none() {
                d.last = d.last.max(n);
            }
            let mut out = proto::ok(&format!("{size} octets"));
            out.extend_from_slice(&proto::message_body(&bytes, top));
            out
        }
        Ok(Err(crate::mailbox::MailboxError::NoSuchMessage(_))) => {
            d.messages[index].zombie = true;
            proto::err("message was deleted by another session")
        }
        Ok(Err(e)) => {
            ctx.logger.log(
                Level::Failures,
                TAG,
                format_args!("cannot read message {uid} of {}: {e}", d.account),
            );
            proto::err("[SYS/TEMP] cannot read the message")
        }
        Err(e) => proto::err(&format!("[SYS/TEMP] {e}")),
    }
}

/// `DELE msg` (TRANSACTION): marks the message; QUIT removes it (guide.txt:14459-14461).
fn cmd_dele(d: &mut Maildrop, n: u32) -> Vec<u8> {
    match d.index(n) {
        Ok(i) => d.messages[i].deleted = true,
        Err(e) => return proto::err(e),
    }
    d.last = d.last.max(n);
    proto::ok(&format!("message {n} deleted"))
}

/// `RSET` (TRANSACTION): unmarks every message.
fn cmd_rset(d: &mut Maildrop) -> Vec<u8> {
    for m in &mut d.messages {
        m.deleted = false;
    }
    d.last = d.last_at_login;
    proto::ok(&format!("{} message(s)", d.messages.len()))
}

/// `QUIT` in TRANSACTION: the UPDATE state (RFC 1939 §6) flags the marked messages `\Deleted`
/// and expunges. Messages another session already removed are skipped by the mailbox.
async fn update(ctx: &Arc<PopContext>, conn: &mut Conn, d: Maildrop) -> std::io::Result<()> {
    let uids: Vec<u32> = d
        .messages
        .iter()
        .filter(|m| m.deleted && !m.zombie)
        .map(|m| m.uid)
        .collect();
    let left = d
        .messages
        .iter()
        .filter(|m| !m.deleted && !m.zombie)
        .count();
    if uids.is_empty() {
        return conn
            .send(&proto::ok(&format!("signing off ({left} message(s) left)")))
            .await;
    }
    let mb = Arc::clone(&d.mailbox);
    let count = uids.len();
    let done = tokio::task::spawn_blocking(move || {
        mb.set_flags(&uids, Flags::DELETED, SetMode::Add)?;
        mb.expunge()
    })
    .await;
    match done {
        Ok(Ok(_)) => {
            ctx.logger.log(
                Level::Major,
                &conn.tag,
                format_args!("{}: {count} message(s) removed", d.account),
            );
            conn.send(&proto::ok(&format!(
                "signing off ({count} message(s) deleted, {left} left)"
            )))
            .await
        }
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
                Ok(Ok(_)) => String::new(),
            };
            ctx.logger.log(
                Level::Failures,
                &conn.tag,
                format_args!("{}: cannot remove deleted messages: {why}", d.account),
            );
            conn.send(&proto::err(
                "[SYS/TEMP] some deleted messages were not removed",
            ))
            .await
        }
    }
}

/// `XTND XMIT` (TRANSACTION): `+OK`, the message dot-terminated, then the submission's result.
/// The sender is the logged-in account (an authenticated submission, guide.txt:12807); the
/// recipients are the message's To, Cc and Bcc (the Eudora convention).
async fn cmd_xtnd_xmit(
    ctx: &Arc<PopContext>,
    conn: &mut Conn,
    d: &Maildrop,
) -> std::io::Result<Vec<u8>> {
    let Some(submit) = ctx.submit.clone() else {
        return Ok(proto::err("XTND XMIT is not available"));
    };
    conn.send(&proto::ok("start sending the message")).await?;
    let mut message = Vec::new();
    let mut too_big = false;
    loop {
        let line = match conn.line_within(MAX_XMIT_LINE, ctx.idle_timeout).await? {
            Line::Eof => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Line::TooLong => {
                too_big = true;
                continue;
            }
            Line::Text(l) => l,
        };
        let Some(line) = proto::unstuff(&line) else {
            break;
        };
        if message.len() + line.len() + 2 > MAX_XMIT_SIZE {
            too_big = true;
        }
        if !too_big {
            message.extend_from_slice(line);
            message.extend_from_slice(b"\r\n");
        }
    }
    if too_big {
        return Ok(proto::err("message too large or has too long lines"));
    }
    let (recipients, message) = proto::xmit_envelope(&message);
    if recipients.is_empty() {
        return Ok(proto::err("no recipients in To, Cc or Bcc"));
    }
    let account = d.account.to_string();
    let submission = Submission {
        return_path: account.clone(),
        recipients: recipients.iter().map(NewRecipient::new).collect(),
        source: Source::User(account.clone()),
        env_id: None,
        ret: None,
    };
    let result = tokio::task::spawn_blocking(move || submit.submit(submission, &message)).await;
    Ok(match result {
        Ok(Ok(id)) => {
            ctx.logger.log(
                Level::Major,
                &conn.tag,
                format_args!(
                    "{account} submitted message {id} for {} recipient(s) with XTND XMIT",
                    recipients.len()
                ),
            );
            proto::ok(&format!("message {id} accepted for delivery"))
        }
        Ok(Err(e)) => proto::err(&e.to_string()),
        Err(e) => proto::err(&format!("[SYS/TEMP] {e}")),
    })
}
