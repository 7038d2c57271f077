//! The command layer: every administrative action of Gatehouse is one CLI command here. The PWD
//! listener, WebAdmin and the desktop manager only move text to and from [`execute`].
//!
//! Guide: Command Line Interface guide.txt:5314-7448 (spec B §2.6-§4); access rights
//! guide.txt:2305-2331, 2631-2670, 3965-4012. Extension commands and the right codes are
//! documented in `docs/cli.md`.
//!
//! Security: the command line comes from an authenticated client that may hold no rights at all.
//! Every command checks the caller's rights before touching the store (see [`rights`]); a
//! refusal leaves state unchanged. Arguments are parsed by the bounded `format` parser.
//!
//! Output (spec B §2.6): `Ok(None)` is `200 OK`; `Ok(Some(v))` is `200 data follow`, then `v` on
//! one line; an error is `501 <message>`.

pub mod args;
pub mod client;
mod cmd_account;
mod cmd_domain;
mod cmd_mailbox;
mod cmd_queue;
mod cmd_server;
mod cmd_session;
mod cmd_webfile;
pub mod rights;
pub mod table;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::{Arc, RwLock};

use crate::format::{self, Dict, Value};
use crate::kernel::mail::Route;
use crate::mailbox::MailboxManager;
use crate::net::sasl;
use crate::store::settings::SettingDecl;
use crate::store::{Store, StoreError};

pub use cmd_mailbox::ALIASES_KEY as MAILBOX_ALIASES_KEY;
pub use cmd_server::{effective, effective_module_settings, time_of_day};
pub use cmd_webfile::{acap_time, may_manage_site};
pub use rights::Session;

/// A command failure; its text is what the `501` line shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl CliError {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> CliError {
        CliError(msg.into())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> CliError {
        CliError(e.to_string())
    }
}

/// What a command returns.
pub type CmdResult = Result<Option<Value>, CliError>;

/// The text of the unknown-command error (also for commands whose module does not exist yet).
pub const UNKNOWN_COMMAND: &str = "Unknown command";

/// One log record as `ReadLog` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The record's id (`YYYY-MM-DD[-N]:offset`): stable and ordered across log files.
    pub id: String,
    /// Time stamp as the log writes it.
    pub time: String,
    /// Log level (guide.txt:3109-3128: 1 = Failures … 5 = All Info).
    pub level: u8,
    /// Component tag, e.g. `SMTPI-12` or `SYSTEM`.
    pub tag: String,
    /// The record text.
    pub text: String,
}

/// The filters of a `ReadLog` command; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Day `yyyy-mm-dd`; today when absent.
    pub day: Option<String>,
    /// Only records at or after this time of the day (`HH:MM` or `HH:MM:SS`).
    pub from: Option<String>,
    /// Only records at or before this time of the day.
    pub to: Option<String>,
    /// Only records at this level or more important (a lower number).
    pub level: Option<u8>,
    /// Only records whose tag starts with this prefix (case-insensitive).
    pub tag: Option<String>,
    /// Only records containing this substring (case-insensitive).
    pub text: Option<String>,
    /// Only records after this record id.
    pub after: Option<String>,
    /// At most this many records (the oldest first).
    pub limit: Option<usize>,
    /// Return the newest `limit` matching records rather than the oldest (`LAST n`).
    pub last: bool,
}

/// The system log as the CLI sees it; the server glue implements it over the logger.
pub trait LogAccess: Send + Sync {
    /// `WRITELOG`: writes `text` at `level` with the `SYSTEM` tag (guide.txt:7356-7369).
    fn write(&self, level: u8, text: &str);
    /// `ReadLog`: the records matching `q`, or why they cannot be read.
    fn read(&self, q: &LogQuery) -> Result<Vec<LogRecord>, String>;
}

/// Returns the `GetServerStatus` dictionary (version, uptime, listeners, connections, queue size).
pub type StatusFn = Arc<dyn Fn() -> Dict + Send + Sync>;
/// Starts a graceful shutdown of the server (`Shutdown`).
pub type ShutdownFn = Arc<dyn Fn() + Send + Sync>;
/// Checks a module's new effective settings; `Err` keeps the previous ones and says why.
pub type ValidateFn = Arc<dyn Fn(&Dict) -> Result<(), String> + Send + Sync>;
/// Tells a module its settings changed (argument: the new effective settings).
pub type ChangedFn = Arc<dyn Fn(&Dict) + Send + Sync>;

/// A module's settings as `GetModule`/`SetModule`/`UpdateModule` see them.
#[derive(Clone)]
pub struct ModuleDecl {
    /// Module name as the guide spells it (`SMTP`, `POP`, `PWD`, ...); also the settings file name.
    pub name: String,
    /// Each setting once: guide name, default, doc.
    pub settings: Vec<SettingDecl>,
    /// Optional extra validation of the whole new dictionary.
    pub validate: Option<ValidateFn>,
    /// Optional notification after a change is stored.
    pub changed: Option<ChangedFn>,
}

/// The modules that exist; the server glue registers them at start.
#[derive(Default)]
pub struct ModuleRegistry {
    modules: RwLock<Vec<ModuleDecl>>,
}

impl ModuleRegistry {
    /// Adds (or replaces) a module.
    pub fn register(&self, decl: ModuleDecl) {
        if let Ok(mut m) = self.modules.write() {
            m.retain(|x| !x.name.eq_ignore_ascii_case(&decl.name));
            m.push(decl);
        }
    }

    /// The module named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<ModuleDecl> {
        self.modules
            .read()
            .ok()?
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The registered module names.
    pub fn names(&self) -> Vec<String> {
        self.modules
            .read()
            .map(|m| m.iter().map(|d| d.name.clone()).collect())
            .unwrap_or_default()
    }
}

/// Everything a command may reach: the store, the module registry and the server's callbacks.
pub struct CliContext {
    /// The base directory.
    pub store: Store,
    /// The server's name (greeting, APOP/CRAM-MD5 tokens).
    pub host: String,
    /// Modules and their settings declarations.
    pub modules: ModuleRegistry,
    /// The system log (`WriteLog`, `ReadLog`), once the logger exists.
    pub log: Option<Arc<dyn LogAccess>>,
    /// `GetServerStatus`.
    pub status: Option<StatusFn>,
    /// `Shutdown`.
    pub shutdown: Option<ShutdownFn>,
    /// Failed logins per name, shared by every module that authenticates (guide.txt:3956-3964).
    pub failed_logins: sasl::FailedLogins,
    /// The server's one Mailbox Manager (Mailbox Administration commands; shared with delivery
    /// and the access modules so open mailboxes stay synchronised).
    pub mailboxes: Arc<MailboxManager>,
    /// The Router (`Route`), once the server has one.
    pub router: Option<Arc<dyn Route>>,
    /// The message queue (`ListQueue` and the other queue commands), in the running server.
    pub queue: Option<Arc<crate::kernel::queue::Queue>>,
    /// The dial-up link (`WakeUpNow`), in the running server.
    pub link: Option<Arc<crate::dialup::Link>>,
    /// The link's clock when `gatehoused --test-clock` runs it (`SetTestClock`); `None` otherwise.
    pub test_clock: Option<Arc<crate::kernel::clock::TestClock>>,
    /// Every logged-in IMAP, POP and WebMail session (`ListAccountSessions`, `MaxAccountSessions`).
    pub sessions: Arc<crate::kernel::sessions::Registry>,
}

impl CliContext {
    /// A context over `store` with no callbacks and its own Mailbox Manager (the server replaces
    /// it with the shared one); its only module is `LoginSecurity`.
    pub fn new(store: Store, host: impl Into<String>) -> CliContext {
        let modules = ModuleRegistry::default();
        modules.register(login_security_decl());
        CliContext {
            store,
            host: host.into(),
            modules,
            log: None,
            status: None,
            shutdown: None,
            failed_logins: sasl::FailedLogins::new(),
            mailboxes: Arc::new(MailboxManager::new()),
            router: None,
            queue: None,
            link: None,
            test_clock: None,
            sessions: crate::kernel::sessions::Registry::new(),
        }
    }

    /// A server-level settings file as a dictionary (empty if absent or not a dictionary).
    pub fn server_dict(&self, name: &str) -> Result<Dict, CliError> {
        Ok(match self.store.server_settings(name)? {
            Value::Dict(d) => d,
            _ => Dict::new(),
        })
    }
}

/// Runs one command line for `session` and returns its result.
pub fn execute(ctx: &CliContext, session: &Session, line: &[u8]) -> CmdResult {
    let (name, rest) = args::split_command(line);
    let name = std::str::from_utf8(name).map_err(|_| CliError::new(UNKNOWN_COMMAND))?;
    let cmd = table::find(name).ok_or_else(|| CliError::new(UNKNOWN_COMMAND))?;
    let handler = match cmd.state {
        table::State::Implemented(h) => h,
        table::State::Planned(_) => return Err(CliError::new(UNKNOWN_COMMAND)),
    };
    session.require(cmd.need)?;
    let mut a = args::Args::parse(rest)?;
    handler(ctx, session, &mut a)
}

/// The protocol lines (without the final CRLF) for a command's result (spec B §2.6).
pub fn reply_lines(result: &CmdResult) -> Vec<u8> {
    match result {
        Ok(None) => b"200 OK".to_vec(),
        Ok(Some(v)) => {
            let mut out = b"200 data follow\r\n".to_vec();
            out.extend_from_slice(&format::to_bytes(v));
            out
        }
        Err(e) => {
            // The message is ours or the store's; keep it on one line whatever it holds.
            let msg: String =
                e.0.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
            format!("501 {msg}").into_bytes()
        }
    }
}

/// Server settings file holding the login-security settings (guide.txt:3935-3964; our name).
pub const LOGIN_SECURITY: &str = "LoginSecurity";

/// The Obscure page's Login Security settings as a module (`GetModule LoginSecurity`).
fn login_security_decl() -> ModuleDecl {
    ModuleDecl {
        name: LOGIN_SECURITY.into(),
        settings: vec![
            SettingDecl {
                key: "SuspendAfterFailures",
                default: "5",
                doc: "Suspend Account after this many failed logins (0: never; guide.txt:3956-3964)",
            },
            SettingDecl {
                key: "SuspendPeriod",
                default: "600",
                doc: "seconds: the failures are counted within, and the suspension lasts, this long",
            },
            SettingDecl {
                key: "AdvertiseSecureSASL",
                default: "NO",
                doc: "Advertise Secure SASL methods (CRAM-MD5): YES only when passwords are stored clear (guide.txt:3700-3708)",
            },
        ],
        validate: Some(Arc::new(|d: &Dict| {
            let text = |k: &str| d.get(k.as_bytes()).and_then(Value::as_text).unwrap_or_default().into_owned();
            for k in ["SuspendAfterFailures", "SuspendPeriod"] {
                text(k).parse::<u64>().map_err(|_| format!("{k} must be a number"))?;
            }
            match text("AdvertiseSecureSASL").to_ascii_uppercase().as_str() {
                "YES" | "NO" => Ok(()),
                _ => Err("AdvertiseSecureSASL must be YES or NO".into()),
            }
        })),
        changed: None,
    }
}

impl CliContext {
    /// "Suspend Account after N failed logins within T": `(N, T)` from the `LoginSecurity`
    /// server settings `SuspendAfterFailures` (default 5; 0 disables) and `SuspendPeriod`
    /// (seconds, default 600).
    pub fn login_limits(&self) -> (usize, std::time::Duration) {
        let d = self.server_dict(LOGIN_SECURITY).unwrap_or_default();
        let num = |k: &str, def: u64| {
            d.get(k.as_bytes())
                .and_then(Value::as_text)
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(def)
        };
        (
            usize::try_from(num("SuspendAfterFailures", 5)).unwrap_or(usize::MAX),
            std::time::Duration::from_secs(num("SuspendPeriod", 600)),
        )
    }

    /// The SASL mechanisms a module offers (POP CAPA, SMTP EHLO, IMAP CAPABILITY). CRAM-MD5
    /// needs a recoverable password, and passwords are hashed by default, so clients that pick
    /// the "most secure" mechanism offered would fail: it is offered only when the
    /// `LoginSecurity` setting `AdvertiseSecureSASL` is `YES` (guide.txt:3700-3708, "Advertise
    /// Secure SASL methods"). It is still accepted when a client asks for it.
    pub fn advertised_mechanisms(&self) -> Vec<&'static str> {
        let on = self
            .server_dict(LOGIN_SECURITY)
            .ok()
            .and_then(|d| d.get(b"AdvertiseSecureSASL".as_slice()).cloned())
            .is_some_and(|v| v.as_bytes().is_some_and(|b| b.eq_ignore_ascii_case(b"YES")));
        sasl::MECHANISMS
            .into_iter()
            .filter(|m| on || *m != "CRAM-MD5")
            .collect()
    }

    /// Whether `service` (`PWD`, `POP`, `IMAP`, ...) is enabled for the account: its effective
    /// `AccessModes` and its domain's `DomainAccessModes` must both allow it (guide.txt:7773-7787,
    /// 8737-8755). Each is `All`, `None`, or an array of service names.
    pub fn service_enabled(&self, id: &sasl::AccountId, service: &str) -> bool {
        let allows = |d: Result<Dict, StoreError>, key: &str| match d {
            Ok(d) => match d.get(key.as_bytes()) {
                None => true,
                Some(Value::Str(s)) => s.eq_ignore_ascii_case(b"All"),
                Some(Value::Array(a)) => a.iter().any(|v| {
                    v.as_bytes()
                        .is_some_and(|b| b.eq_ignore_ascii_case(service.as_bytes()))
                }),
                Some(Value::Dict(_)) => false,
            },
            Err(_) => false,
        };
        allows(
            self.store.account_effective_settings(&id.domain, &id.name),
            "AccessModes",
        ) && allows(
            self.store.domain_effective_settings(&id.domain),
            "DomainAccessModes",
        )
    }

    /// The account a login name denotes: `name`, `name@domain` or `name%domain` (the main
    /// domain when none is given; guide.txt:26091-26092), following account aliases.
    pub fn login_account(&self, login: &str) -> Option<sasl::AccountId> {
        let (name, domain) = match login.rsplit_once(['@', '%']) {
            Some((n, d)) => (n, self.store.resolve_domain(d)?),
            None => (login, self.store.main_domain()),
        };
        let name = match self.store.lookup(&domain, name)? {
            crate::store::Object::Account(n) => n,
            crate::store::Object::Alias { account } => account,
            _ => return None,
        };
        Some(sasl::AccountId { name, domain })
    }
}

/// Pause before answering a failed login (guide.txt:3956-3964: slows password guessing).
pub const FAILURE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Maps a credential check to a login result.
pub fn checked(
    login: &str,
    check: impl FnOnce() -> Result<Option<sasl::AccountId>, sasl::AuthError>,
) -> Result<sasl::AccountId, sasl::Failure> {
    match check() {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(sasl::Failure::BadCredentials(login.to_string())),
        Err(e) => Err(sasl::Failure::Server(e)),
    }
}

impl CliContext {
    /// Checks a clear-text password login (USER/PASS, LOGIN, HTTP Basic) off the async threads.
    pub async fn password_login(
        self: &Arc<Self>,
        login: &str,
        password: &[u8],
    ) -> Result<sasl::AccountId, sasl::Failure> {
        let ctx = Arc::clone(self);
        let login = login.to_string();
        let password = sasl::Secret::new(password);
        tokio::task::spawn_blocking(move || {
            checked(&login, || {
                sasl::Credentials::check_password(&*ctx, &login, &password)
            })
        })
        .await
        .unwrap_or_else(|e| Err(sasl::Failure::Server(sasl::AuthError(e.to_string()))))
    }

    /// The login policy every module applies after checking credentials: a suspended account
    /// cannot log in even with the right password (guide.txt:3956-3964); a service disabled for
    /// the account or domain looks like a failed login (guide.txt:7773-7787; `None` for
    /// WebAdmin, which the guide does not list as a service); failures are counted for the
    /// lockout and answered only after [`FAILURE_DELAY`].
    pub async fn finish_login(
        &self,
        login: &str,
        service: Option<&str>,
        result: Result<sasl::AccountId, sasl::Failure>,
    ) -> Result<sasl::AccountId, sasl::Failure> {
        let (limit, period) = self.login_limits();
        let now = std::time::Instant::now();
        let result = result.and_then(|id| {
            let key = id.to_string();
            if self.failed_logins.is_locked(&key, limit, period, now)
                || service.is_some_and(|s| !self.service_enabled(&id, s))
            {
                Err(sasl::Failure::BadCredentials(key))
            } else {
                Ok(id)
            }
        });
        match &result {
            Ok(id) => self.failed_logins.clear(&id.to_string()),
            Err(sasl::Failure::BadCredentials(name)) => {
                let name = if name.is_empty() { login } else { name };
                let key = self
                    .login_account(name)
                    .map_or_else(|| name.to_ascii_lowercase(), |id| id.to_string());
                self.failed_logins.record_failure(&key, limit, period, now);
                tokio::time::sleep(FAILURE_DELAY).await;
            }
            Err(_) => {}
        }
        result
    }
}

/// Why [`CliContext::open_session`] refused a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionRefused {
    /// The account has `MaxAccountSessions` sessions already.
    #[error(transparent)]
    Limit(#[from] crate::kernel::sessions::LimitReached),
    /// The limit could not be read (store error or a value that is not a number); logged.
    #[error("{0}")]
    Server(String),
}

impl CliContext {
    /// Registers a logged-in session of `id` with `module` from `address`, unless the account
    /// already has its effective `MaxAccountSessions` (our name, an extension: issue 6) open.
    pub async fn open_session(
        self: &Arc<Self>,
        id: &sasl::AccountId,
        module: &'static str,
        address: std::net::IpAddr,
    ) -> Result<crate::kernel::sessions::SessionGuard, SessionRefused> {
        let (ctx, who) = (Arc::clone(self), id.clone());
        let settings = tokio::task::spawn_blocking(move || {
            ctx.store.account_effective_settings(&who.domain, &who.name)
        })
        .await
        .map_err(|e| SessionRefused::Server(e.to_string()))?
        .map_err(|e| SessionRefused::Server(e.to_string()))?;
        let text = settings
            .get(b"MaxAccountSessions".as_slice())
            .and_then(Value::as_text)
            .unwrap_or_default();
        let limit = crate::kernel::sessions::parse_limit(&text).ok_or_else(|| {
            SessionRefused::Server(format!("MaxAccountSessions: {text:?} is not a number"))
        })?;
        Ok(self.sessions.register(id, module, address, limit)?)
    }
}

/// The store as the SASL mechanisms see it.
impl sasl::Credentials for CliContext {
    fn check_password(
        &self,
        login: &str,
        password: &sasl::Secret,
    ) -> Result<Option<sasl::AccountId>, sasl::AuthError> {
        let Some(id) = self.login_account(login) else {
            return Ok(None);
        };
        match self
            .store
            .check_password(&id.domain, &id.name, password.expose())
        {
            Ok(true) => Ok(Some(id)),
            Ok(false) => Ok(None),
            Err(e) => Err(sasl::AuthError(e.to_string())),
        }
    }

    fn recoverable_password(
        &self,
        login: &str,
    ) -> Result<Option<(sasl::AccountId, sasl::Secret)>, sasl::AuthError> {
        let Some(id) = self.login_account(login) else {
            return Ok(None);
        };
        // The same "Allow to Use" gate the store applies to clear-text checks (guide.txt:8654).
        let usable = self
            .store
            .account_effective_settings(&id.domain, &id.name)
            .ok()
            .and_then(|d| {
                d.get(&b"UseAppPassword"[..])
                    .and_then(Value::as_bytes)
                    .map(|b| b.eq_ignore_ascii_case(b"YES"))
            })
            .unwrap_or(false);
        if !usable {
            return Ok(None);
        }
        match self.store.recoverable_password(&id.domain, &id.name) {
            Ok(Some(pw)) if !pw.is_empty() => Ok(Some((id, sasl::Secret::new(pw)))),
            Ok(_) => Ok(None),
            Err(e) => Err(sasl::AuthError(e.to_string())),
        }
    }
}
