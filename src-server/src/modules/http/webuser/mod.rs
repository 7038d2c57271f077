//! The HTTP User module: WebUser and WebMail, a user's mail in a browser (guide.txt:14926-15073
//! WebUser, 18238-18481 URL realms, 20254-20973 WebMail; spec E §2, §3.1, §6).
//!
//! Listens on 8100 and 9100 (TLS) by default, log tag `HTTPU`. URL space (spec E §3.1):
//! - `GET /`, `POST /` (`username`, `password`, `logintoken`): the Login page of the domain the Host name picks
//!   (guide.txt:14955-14979: a domain name or alias, an IP address means the secondary domain
//!   it is dedicated to (the domain setting `IPAddresses`) or else the main domain, an
//!   unknown name gets an error page; `user@domain` is accepted on every login page). A login
//!   redirects to the session realm.
//! - `/Signup.wssp`: Auto Sign-up, when the domain's `AutoSignup` setting is YES (15066-15073).
//! - `/Session/<id>/<Page>.wssp`: the session realm. Pages (names case-insensitive, 18351):
//!   `Mailboxes.wssp` (list with counts and quota; create, rename, delete, subscribe),
//!   `Mailbox.wssp?Mailbox=M&Page=N&Sort=date|from|subject|size&Reverse=1&Search=text`,
//!   `Message.wssp?Mailbox=M&UID=U[&Remote=1]` (the message page; HTML bodies are shown in a
//!   sandboxed frame loaded from `MessageBody.wssp?Mailbox=M&UID=U[&Remote=1]`),
//!   `Part.wssp?Mailbox=M&UID=U&Part=P[&Inline=1]` and `Part.wssp?...&Inline=1&CID=id` (part P,
//!   or the part with that Content-ID, of the parsed message: a download with
//!   `Content-Disposition: attachment` and `application/octet-stream`, or with `Inline=1` a PNG,
//!   GIF, JPEG or WebP image shown in place, for `cid:` references and previews),
//!   `Compose.wssp[?Op=Reply|ReplyAll|Forward|Draft&Mailbox=M&UID=U][&To=addr]`,
//!   `Contacts.wssp` (address book), `Settings.wssp` (password, time zone (an offset or a name of the system's
//!   zone database), page size, signature, Require Fixed Network Address),
//!   `Rules.wssp` (Auto-Reply and Redirect All), `RPOP.wssp` (remote POP accounts: a form of
//!   rows, for users whose `RPOPAllowed` is YES), and
//!   `Bye.wssp` (logout, 18273).
//! - `/static/style.css`: the shared style sheet (WebAdmin's, plus WebMail's rules).
//!
//! Security: requests and stored messages are untrusted.
//! - Sessions (guide.txt:14989-15016): a 192-bit random id in the URL, bound to the client
//!   address at login (a request from another address is "disconnected") while the account's
//!   Require Fixed Network Address is on (the default; `prefs::fixed_address`), ended by Bye, by the
//!   Inactivity Time-Out and by the Session Time Limit. `Referrer-Policy: no-referrer` keeps the
//!   id out of `Referer`. Each session is registered as `WebMail` in the server's session
//!   registry (`kernel::sessions`, an extension): it counts against the account's
//!   `MaxAccountSessions` (a login beyond it gets an error page) and `KillAccountSessions` ends
//!   it at its next request.
//! - Every POST carries the session's CSRF token (compared in constant time) or is refused.
//!   The login form, before any session, carries a double-submit token: its hidden field must
//!   repeat the `HttpOnly`, `SameSite=Strict` pre-login cookie (`login`; Sign-up too), so a foreign page
//!   cannot log a browser into an account of its choosing (login CSRF).
//! - Every page sends a strict Content-Security-Policy: no script at all, images from this
//!   server and `data:` only. The HTML of a message is shown only through the sanitiser
//!   (`super::sanitize`) inside a frame whose own policy adds `sandbox` (no script, opaque
//!   origin); remote images are allowed there only after the user asks, per message.
//! - Mailbox names go through `mailbox::names::validate` (via `AccountMailboxes`), part numbers
//!   are integers, download names are cleaned by `mime::safe_filename`: nothing from the
//!   network becomes a path. Only the account's own mailboxes are reached (the owner has every
//!   right, so ACLs do not restrict it; foreign mailboxes are not offered).
//! - Settings, password, rules, RPOP records and mailbox management go through the CLI command
//!   layer in-process with the logged-in account's own rights, like WebAdmin; mail is sent
//!   through the Enqueuer (fsynced before "sent" is shown), then appended to Sent.
//!
//! Storage of our own: the WebUser preferences and the address book are one data-format
//! dictionary, `WebUser.settings` in the account directory (`TimeZone`, `PageSize`, `Signature`,
//! `RequireFixedNetworkAddress`,
//! `AddressBook` = array of `{Name; Email}`), written with `store::fsutil::write_atomic`
//! (single-mailbox accounts, which have no directory, keep none).
//!
//! todo: not built yet: skins and WSSP templates (pages are built in code), list archives,
//! Alerts, foreign (shared) mailboxes and Mailbox Aliases, the ACL editor, the "Mark" and
//! "Immediately" delete methods (Delete moves to Trash), HTML composing, the DSN checkbox,
//! Personal/Public Info.

mod compose;
mod form;
mod login;
mod mail;
mod mime;
mod prefs;
mod settings;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use maud::{html, Markup, DOCTYPE};

use super::auth::{self, Sessions};
use super::html::{csrf_field, message};
use super::ConnInfo;
use crate::cli::{self, CliContext, CmdResult};
use crate::format::{self, Value};
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::Submit;
use crate::mailbox::MailboxManager;
use crate::net::listener::Handler;
use crate::net::sasl::AccountId;
use crate::store::settings::SettingDecl;

/// The module name: settings file, `GetModule` name and log tag (guide.txt:2980-2981).
pub const MODULE: &str = "HTTPU";
/// Largest request body: a composed message with its attachments.
const MAX_UPLOAD: usize = 25 * 1024 * 1024;

/// What every WebUser page needs.
pub struct WebUser {
    /// The command layer.
    pub cli: Arc<CliContext>,
    /// The Mailbox Manager shared with IMAP, POP and Local Delivery.
    pub mailboxes: Arc<MailboxManager>,
    /// The Enqueuer, for sending.
    pub enqueuer: Arc<dyn Submit>,
    /// The System Log (tag `HTTPU`).
    pub logger: Logger,
    /// Live sessions.
    pub sessions: Sessions,
    /// Message list summaries by (mailbox file, UIDVALIDITY, UID): parsing every message of a
    /// mailbox on each list page would be slow.
    summaries: Mutex<HashMap<(std::path::PathBuf, u32, u32), Arc<mime::Summary>>>,
}

impl WebUser {
    /// The module over these services.
    pub fn new(
        cli: Arc<CliContext>,
        mailboxes: Arc<MailboxManager>,
        enqueuer: Arc<dyn Submit>,
        logger: Logger,
    ) -> WebUser {
        WebUser {
            cli,
            mailboxes,
            enqueuer,
            logger,
            sessions: Sessions::default(),
            summaries: Mutex::new(HashMap::new()),
        }
    }
}

/// The module's settings (guide.txt:15017-15052 and the listener panel of every module).
pub fn module_decl() -> cli::ModuleDecl {
    cli::ModuleDecl {
        name: MODULE.into(),
        settings: vec![
            SettingDecl {
                key: "LogLevel",
                default: "2",
                doc: "Log: what WebUser records in the System Log (tag HTTPU), 0-5",
            },
            SettingDecl {
                key: "Channels",
                default: "100",
                doc: "Channels: most simultaneous WebUser HTTP connections",
            },
            SettingDecl {
                key: "SessionsLimit",
                default: "5000",
                doc: "Sessions Limit: most concurrent WebUser sessions; a login beyond it is refused",
            },
            SettingDecl {
                key: "InactivityTimeout",
                default: "1800",
                doc: "Inactivity Time-Out: seconds between requests after which a session ends",
            },
            SettingDecl {
                key: "SessionTimeLimit",
                default: "43200",
                doc: "Session Time Limit: seconds a session may last at most, checked on each request",
            },
        ],
        validate: None,
        changed: None,
    }
}

/// The listener's handler.
pub fn handler(web: Arc<WebUser>) -> Handler {
    let sites = Arc::new(super::website::WebSites::new(
        web.cli.clone(),
        web.logger.clone(),
    ));
    let app = super::website::mount(router(web.clone()), sites);
    super::serve(app, web.logger.clone(), MODULE)
}

type Web = Arc<WebUser>;

/// Largest login or sign-up form read.
const MAX_LOGIN_FORM: usize = 64 * 1024;

fn router(web: Web) -> Router {
    Router::new()
        // Before a login, only a small form is read: no one buffers uploads without a session.
        .route(
            "/",
            get(login::page)
                .post(login::post)
                .layer(DefaultBodyLimit::max(MAX_LOGIN_FORM)),
        )
        .route("/default.html", get(login::page))
        .route(
            "/Signup.wssp",
            get(login::signup_page)
                .post(login::signup_post)
                .layer(DefaultBodyLimit::max(MAX_LOGIN_FORM)),
        )
        .route("/static/style.css", get(style))
        .route("/Session/{sid}/{page}", get(session_get).post(session_post))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .with_state(web)
}

async fn style() -> Response {
    let css = format!("{}{}", super::html::CSS, CSS);
    let mut r = css.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

// ------------------------------------------------------------------ sessions

/// A logged-in request.
pub struct User {
    /// The account.
    pub id: AccountId,
    /// Its CLI session (its own rights).
    pub cli: cli::Session,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session id (in every URL).
    pub sid: String,
    /// The client address.
    pub peer: std::net::IpAddr,
}

impl User {
    /// The URL of a session page.
    pub fn url(&self, page: &str) -> String {
        format!("/Session/{}/{page}", self.sid)
    }

    /// `name@domain`.
    pub fn address(&self) -> String {
        self.id.to_string()
    }
}

/// A number setting of this module.
fn setting(web: &WebUser, key: &str, default: u64) -> u64 {
    web.cli
        .modules
        .get(MODULE)
        .map(|m| cli::effective_module_settings(&web.cli, &m))
        .and_then(|d| {
            d.get(key.as_bytes())
                .and_then(|v| v.as_text())
                .and_then(|t| t.trim().parse::<u64>().ok())
        })
        .unwrap_or(default)
}

/// (Inactivity Time-Out, Session Time Limit). At least a minute each: a zero would end every
/// session at its first page.
fn timeouts(web: &WebUser) -> (Duration, Duration) {
    (
        Duration::from_secs(setting(web, "InactivityTimeout", 1800).max(60)),
        Duration::from_secs(setting(web, "SessionTimeLimit", 43200).max(60)),
    )
}

/// The session of a request, or the "disconnected" page (guide.txt:19464-19468: an unknown
/// session or a request from another address).
fn find_session(web: &Web, sid: &str, info: &ConnInfo) -> Result<User, Box<Response>> {
    let (idle, limit) = timeouts(web);
    let peer = info.peer.ip();
    let found = web.sessions.lookup_limited(sid, peer, idle, Some(limit));
    let Some((id, csrf)) = found else {
        web.logger.log(
            Level::LowLevel,
            MODULE,
            format_args!("request from {peer} for an unknown or foreign session"),
        );
        return Err(Box::new(disconnected()));
    };
    let session = cli::Session::load(&web.cli.store, &id.name, &id.domain)
        .map_err(|e| Box::new(error_page(StatusCode::FORBIDDEN, &e.0)))?;
    Ok(User {
        id,
        cli: session,
        csrf,
        sid: sid.to_string(),
        peer,
    })
}

fn disconnected() -> Response {
    respond(
        StatusCode::FORBIDDEN,
        bare_page(
            "Disconnected",
            html! {
                section.panel.login {
                    h1 { "Your session has ended" }
                    p { "You have logged out, the session timed out, or it was opened from another network address." }
                    p { a.button href="/" { "Log in again" } }
                }
            },
        ),
        Csp::Page,
    )
}

/// The query string as pairs.
type Q = Query<Vec<(String, String)>>;

/// One query or form value by name, or "".
pub fn param<'a>(q: &'a [(String, String)], name: &str) -> &'a str {
    q.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn session_get(
    State(web): State<Web>,
    Extension(info): Extension<ConnInfo>,
    Path((sid, page)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let user = match find_session(&web, &sid, &info) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    match page.to_ascii_lowercase().as_str() {
        "bye.wssp" => login::bye(&web, &user),
        "mailboxes.wssp" => mail::mailboxes(&web, &user, None).await,
        "mailbox.wssp" => mail::mailbox(&web, &user, &q, None).await,
        "message.wssp" => mail::message(&web, &user, &q, None).await,
        "messagebody.wssp" => mail::message_body(&web, &user, &q).await,
        "part.wssp" => mail::part(&web, &user, &q).await,
        "compose.wssp" => compose::get(&web, &user, &q).await,
        "contacts.wssp" => settings::contacts(&web, &user, None).await,
        "settings.wssp" => settings::settings(&web, &user, None).await,
        "rules.wssp" => settings::rules(&web, &user, None).await,
        "rpop.wssp" => settings::rpop(&web, &user, None).await,
        _ => error_page(StatusCode::NOT_FOUND, "There is no such page."),
    }
}

async fn session_post(
    State(web): State<Web>,
    Extension(info): Extension<ConnInfo>,
    Path((sid, page)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match find_session(&web, &sid, &info) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let posted = form::parse(ct, &body);
    if !auth::same(posted.get("csrf"), &user.csrf) || user.csrf.is_empty() {
        web.logger.log(
            Level::Problems,
            MODULE,
            format_args!(
                "form from {} for {} refused: missing or wrong CSRF token",
                user.peer, user.id
            ),
        );
        return error_page(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from WebMail. Reload the page and try again.",
        );
    }
    match page.to_ascii_lowercase().as_str() {
        "bye.wssp" => login::bye(&web, &user),
        "mailboxes.wssp" => mail::mailboxes(&web, &user, Some(&posted)).await,
        "mailbox.wssp" => mail::mailbox(&web, &user, &q, Some(&posted)).await,
        "message.wssp" => mail::message(&web, &user, &q, Some(&posted)).await,
        "compose.wssp" => compose::post(&web, &user, &posted).await,
        "contacts.wssp" => settings::contacts(&web, &user, Some(&posted)).await,
        "settings.wssp" => settings::settings(&web, &user, Some(&posted)).await,
        "rules.wssp" => settings::rules(&web, &user, Some(&posted)).await,
        "rpop.wssp" => settings::rpop(&web, &user, Some(&posted)).await,
        _ => error_page(StatusCode::NOT_FOUND, "There is no such page."),
    }
}

// ------------------------------------------------------------------ plumbing

/// Runs one CLI command as the logged-in account: `name` followed by `args` in the data format.
pub async fn run(web: &Web, user: &User, name: &str, args: Vec<Value>) -> CmdResult {
    let mut line = name.as_bytes().to_vec();
    for a in &args {
        line.push(b' ');
        line.extend_from_slice(&format::to_bytes(a));
    }
    let ctx = web.cli.clone();
    let session = user.cli.clone();
    tokio::task::spawn_blocking(move || cli::execute(&ctx, &session, &line))
        .await
        .unwrap_or_else(|e| Err(cli::CliError::new(format!("internal error: {e}"))))
}

/// Runs blocking work (mailbox, store) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("internal error: {e}")))
}

/// Which Content-Security-Policy a response gets.
#[derive(Clone)]
pub enum Csp {
    /// Every application page: no script, own images.
    Page,
    /// A sanitised message body in its frame: the sanitiser's policy for these options (no
    /// script, inline styles, own images, remote ones only when asked) plus `sandbox`.
    MessageBody(String),
}

/// Sends `body` with the security headers every WebUser response carries.
pub fn respond(status: StatusCode, body: impl IntoResponse, csp: Csp) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    let policy = match csp {
        Csp::Page => HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"),
        Csp::MessageBody(p) => HeaderValue::from_str(&format!("{p}; sandbox allow-popups allow-popups-to-escape-sandbox"))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; sandbox")),
    };
    h.insert(header::CONTENT_SECURITY_POLICY, policy);
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // guide.txt:25339: WebUser pages are not cached.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A redirect after a successful POST.
pub fn see_other(location: &str) -> Response {
    let mut r = respond(StatusCode::SEE_OTHER, (), Csp::Page);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// An error page outside any session frame.
pub fn error_page(status: StatusCode, text: &str) -> Response {
    respond(
        status,
        bare_page(
            "Error",
            html! { section.panel.login { (message(Some(text), None)) p.muted { "Use the browser's Back button, or " a href="/" { "log in" } "." } } },
        ),
        Csp::Page,
    )
}

/// Percent-encodes a URL query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// WebMail's own style rules, after WebAdmin's.
const CSS: &str = r#"
tr.unseen td { font-weight:650; }
td.flag { width:1.5rem; color:var(--bad); }
td.check { width:1.8rem; }
.toolbar { display:flex; flex-wrap:wrap; gap:.4rem; align-items:center; margin:.5rem 0; }
.toolbar select, .toolbar input[type=text], .toolbar input[type=search] { width:auto; }
.headers dt { color:var(--muted); float:left; clear:left; width:5rem; }
.headers dd { margin:0 0 .2rem 5.5rem; word-break:break-word; }
dl.headers { overflow:hidden; }
.att { display:inline-block; font-size:.75em; font-weight:700; color:var(--muted); border:1px solid var(--line); border-radius:4px; padding:0 .25rem; }
pre.body { white-space:pre-wrap; word-break:break-word; font: 14px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; margin:0; }
iframe.body { width:100%; height:65vh; border:1px solid var(--line); border-radius:8px; background:#fff; }
ul.attachments { list-style:none; padding:0; display:flex; flex-wrap:wrap; gap:.5rem; }
ul.attachments li { display:flex; flex-direction:column; gap:.3rem; }
img.preview { max-width:240px; max-height:180px; border:1px solid var(--line); border-radius:6px; }
ul.attachments li a { display:inline-block; padding:.3rem .6rem; border:1px solid var(--line); border-radius:6px; text-decoration:none; }
.compose label { display:block; margin:.4rem 0 .2rem; color:var(--muted); font-size:.9em; }
.compose textarea { min-height:16rem; }
a.subject { color:var(--text); text-decoration:none; display:block; }
.notice { padding:.5rem .8rem; border-radius:8px; background:var(--bg); border:1px dashed var(--line); margin:.5rem 0; }
@media (max-width:640px) { td.size, th.size { display:none; } td.date2 { font-size:.85em; }
  iframe.body { height:55vh; } header nav { flex-wrap:nowrap; overflow-x:auto; order:3; flex-basis:100%; } header .brand { flex:1; } }
"#;

/// A page without the session frame (login, errors).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " — Gatehouse WebMail" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header { span.brand { "Gatehouse WebMail" } }
                main { (body) }
            }
        }
    }
}

/// A session page: navigation, the account and Log out around `body`.
pub fn page(user: &User, title: &str, active: &str, body: Markup) -> Response {
    let nav = [
        ("Mailboxes.wssp", "Mailboxes"),
        ("Compose.wssp", "Compose"),
        ("Contacts.wssp", "Contacts"),
        ("Rules.wssp", "Rules"),
        ("RPOP.wssp", "RPOP"),
        ("Settings.wssp", "Settings"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " — Gatehouse WebMail" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    span.brand { "Gatehouse WebMail" }
                    nav {
                        @for (p, label) in nav {
                            a href=(user.url(p)) class=@if p == active { "on" } { (label) }
                        }
                    }
                    span.who {
                        span #account { (user.address()) }
                        form method="post" action=(user.url("Bye.wssp")) {
                            (csrf_field(&user.csrf))
                            button.secondary type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    respond(StatusCode::OK, markup, Csp::Page)
}
