//! WebAdmin's pages. Each GET renders from CLI commands; each POST runs exactly one CLI command
//! (so nothing is half-saved) and renders the page again with the command's error text, or
//! redirects on success.
//!
//! Every handler takes [`Login`] (GET) or [`Posted`] (POST: login and CSRF token checked) as an
//! argument, so the checks live in one place. The dial-up forms (SMTP wake-ups and holds, Wake Up
//! Now, RPOP rows) are in [`dialup`]. Passwords are only ever written, never shown
//! (`html::is_secret`, the RPOP rows).

mod dialup;

use std::sync::Arc;

use axum::extract::{
    DefaultBodyLimit, Form, FromRequest, FromRequestParts, Path, Query, Request, State,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{html, Markup};

use super::auth::{self, Admin, Denied};
use super::html::{self, csrf_field, message, page, settings_changes, settings_form, value_text};
use super::{ConnInfo, WebAdmin, MAX_BODY};
use crate::cli::{self, CmdResult};
use crate::format::{self, Dict, Value};

type Web = Arc<WebAdmin>;
type FormData = Form<Vec<(String, String)>>;

/// Accounts listed per page.
const PAGE_SIZE: usize = 50;

/// All WebAdmin routes.
pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/MainAdmin/", get(home))
        .route("/Admin/{domain}/", get(domain_admin_home))
        .route("/static/style.css", get(style))
        .route("/login", get(login_page).post(login_post))
        .route("/logout", post(logout))
        .route("/Status", get(status).post(status_post))
        .route("/Domains", get(domains).post(domains_post))
        .route("/Defaults", get(defaults).post(defaults_post))
        .route("/Domain/{d}", get(domain).post(domain_post))
        .route("/Domain/{d}/Accounts", get(accounts).post(accounts_post))
        .route("/Domain/{d}/Account/{a}", get(account).post(account_post))
        .route("/Domain/{d}/Groups", get(groups).post(groups_post))
        .route("/Domain/{d}/Group/{g}", get(group).post(group_post))
        .route(
            "/Domain/{d}/Forwarders",
            get(forwarders).post(forwarders_post),
        )
        .route("/Router", get(router_page).post(router_post))
        .route("/Protection", get(protection).post(protection_post))
        .route("/Modules", get(modules))
        .route("/Module/{m}", get(module).post(module_post))
        .route("/Schedule", get(schedule).post(schedule_post))
        .route("/Queue", get(queue).post(queue_post))
        .route("/Logs", get(logs))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(web)
}

// ------------------------------------------------------------------ plumbing

/// Runs one CLI command for the logged-in account: `name` followed by `args`, each written in
/// the data format (so any text is quoted, never parsed as syntax).
async fn run(web: &Web, admin: &Admin, name: &str, args: Vec<Value>) -> CmdResult {
    let mut line = name.as_bytes().to_vec();
    for a in &args {
        line.push(b' ');
        line.extend_from_slice(&format::to_bytes(a));
    }
    let ctx = web.cli.clone();
    let session = admin.session.clone();
    tokio::task::spawn_blocking(move || cli::execute(&ctx, &session, &line))
        .await
        .unwrap_or_else(|e| Err(cli::CliError::new(format!("internal error: {e}"))))
}

fn s(text: &str) -> Value {
    Value::str(text)
}

fn kw(word: &'static str) -> Value {
    Value::str(word)
}

fn dict_of(r: &CmdResult) -> Dict {
    match r {
        Ok(Some(Value::Dict(d))) => d.clone(),
        _ => Dict::new(),
    }
}

fn strings_of(r: &CmdResult) -> Vec<String> {
    match r {
        Ok(Some(Value::Array(a))) => a.iter().map(value_text).collect(),
        _ => Vec::new(),
    }
}

fn error_of(r: &CmdResult) -> Option<String> {
    r.as_ref().err().map(|e| e.0.clone())
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Lines of a textarea as an array of strings (blank lines dropped).
fn lines_array(text: &str) -> Value {
    Value::Array(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(Value::str)
            .collect(),
    )
}

/// A multi-line string for the CLI (`\e`-separated lines).
fn lines_string(text: &str) -> Value {
    Value::str(text.replace("\r\n", "\n"))
}

/// The logged-in account, or the response for a request that is not logged in: a browser is
/// sent to the login form, another client gets the guide's `401` with a Basic challenge.
async fn require(web: &Web, headers: &HeaderMap, info: &ConnInfo) -> Result<Admin, Response> {
    match auth::authenticate(web, headers, info.peer.ip()).await {
        Ok(a) => Ok(a),
        Err(denied) => {
            let refused = match &denied {
                Denied::Refused(t) => Some(t.clone()),
                Denied::Anonymous => None,
            };
            let wants_html = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            if wants_html && refused.is_none() {
                return Err(Redirect::to("/login").into_response());
            }
            let mut resp =
                (StatusCode::UNAUTHORIZED, login_markup(refused.as_deref())).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Gatehouse WebAdmin\", charset=\"UTF-8\""),
            );
            Err(resp)
        }
    }
}

/// Like [`require`], and the form's CSRF token must match.
async fn require_post(
    web: &Web,
    headers: &HeaderMap,
    info: &ConnInfo,
    form: &[(String, String)],
) -> Result<Admin, Response> {
    let admin = require(web, headers, info).await?;
    let token = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    if !auth::csrf_ok(&admin, token) {
        web.logger.log(
            crate::kernel::log::Level::Problems,
            "HTTPA",
            format_args!(
                "form from {} refused: missing or wrong CSRF token",
                info.peer
            ),
        );
        return Err((
            StatusCode::FORBIDDEN,
            page(
                "Refused",
                None,
                "",
                html! { (message(Some("This form has expired or did not come from WebAdmin. Reload the page and try again."), None)) },
            ),
        )
            .into_response());
    }
    Ok(admin)
}

/// Where the connection came from (put there by the listener's handler for every request).
fn conn_info(parts: &Parts) -> Result<ConnInfo, StatusCode> {
    parts
        .extensions
        .get::<ConnInfo>()
        .copied()
        .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The logged-in account of a request ([`require`]), as a handler argument: every page's
/// handler starts from it, so no page can forget the login check.
struct Login(Admin);

impl FromRequestParts<Web> for Login {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Login, Response> {
        let info = conn_info(parts).map_err(IntoResponse::into_response)?;
        require(web, &parts.headers, &info).await.map(Login)
    }
}

/// A form posted by the logged-in account with the right CSRF token ([`require_post`]): the
/// account and the form's fields. The last argument of every POST handler.
struct Posted(Admin, Vec<(String, String)>);

impl FromRequest<Web> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, web: &Web) -> Result<Posted, Response> {
        let (parts, body) = req.into_parts();
        let info = conn_info(&parts).map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let Form(form) = FormData::from_request(Request::from_parts(parts, body), web)
            .await
            .map_err(IntoResponse::into_response)?;
        let admin = require_post(web, &headers, &info, &form).await?;
        Ok(Posted(admin, form))
    }
}

fn frame(admin: &Admin, title: &str, active: &str, body: Markup) -> Response {
    let mut resp = page(title, Some((&admin.session, &admin.csrf)), active, body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    resp
}

/// The message shown after a POST: the command's error, or a success text, shown next to the
/// form it came from (`at`, a form's action name) or at the top of the page.
struct Notice {
    error: Option<String>,
    ok: Option<String>,
    at: String,
}

impl Notice {
    fn none() -> Notice {
        Notice {
            error: None,
            ok: None,
            at: String::new(),
        }
    }

    fn from(r: &CmdResult, ok: &str) -> Notice {
        match r {
            Ok(_) => Notice {
                ok: Some(ok.to_string()),
                ..Notice::none()
            },
            Err(e) => Notice {
                error: Some(e.0.clone()),
                ..Notice::none()
            },
        }
    }

    fn error(text: impl Into<String>) -> Notice {
        Notice {
            error: Some(text.into()),
            ..Notice::none()
        }
    }

    /// The same notice, shown next to form `at`.
    fn at(self, at: &str) -> Notice {
        Notice {
            at: at.to_string(),
            ..self
        }
    }

    /// The notice, if it belongs at the top of the page.
    fn show(&self) -> Markup {
        self.show_for("")
    }

    /// The notice, if it belongs next to form `at`.
    fn show_for(&self, at: &str) -> Markup {
        if self.at != at {
            return html! {};
        }
        message(self.error.as_deref(), self.ok.as_deref())
    }
}

// ------------------------------------------------------------------ login

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CSS,
    )
}

fn login_markup(error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        "",
        html! {
            section.panel.login {
                h1 { "WebAdmin" }
                (message(error, None))
                form method="post" action="/login" {
                    label { "Account" input type="text" name="user" autocomplete="username" autofocus required; }
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    button type="submit" { "Log in" }
                }
                p.muted { "Use an account with administration rights, e.g. postmaster." }
            }
        },
    )
}

async fn login_page() -> Markup {
    login_markup(None)
}

async fn login_post(
    State(web): State<Web>,
    Extension(info): Extension<ConnInfo>,
    Form(form): FormData,
) -> Response {
    let user = field(&form, "user").trim().to_string();
    match auth::login(&web, &user, field(&form, "password").as_bytes()).await {
        Ok(account) => {
            web.logger.log(
                crate::kernel::log::Level::LowLevel,
                "HTTPA",
                format_args!("{account} logged in from {}", info.peer),
            );
            let id = web.sessions.create(account, info.peer.ip());
            let secure = if info.tls { "; Secure" } else { "" };
            let mut resp = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{}={id}; Path=/; HttpOnly; SameSite=Strict{secure}",
                auth::COOKIE
            )) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(Denied::Refused(text)) => {
            (StatusCode::UNAUTHORIZED, login_markup(Some(&text))).into_response()
        }
        Err(Denied::Anonymous) => login_markup(None).into_response(),
    }
}

async fn logout(State(web): State<Web>, Posted(admin, _): Posted) -> Response {
    if let Some(id) = &admin.session_id {
        web.sessions.remove(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("GatehouseAdmin=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    );
    resp
}

async fn home(Login(a): Login) -> Response {
    if a.session.all_domains() || a.session.server("Monitor") {
        Redirect::to("/Status").into_response()
    } else if a.session.domain_admin() {
        Redirect::to(&format!("/Domain/{}/Accounts", a.session.domain)).into_response()
    } else {
        frame(
            &a,
            "No rights",
            "",
            html! { (message(Some("This account has no administration rights."), None)) },
        )
    }
}

async fn domain_admin_home(Path(domain): Path<String>) -> Redirect {
    Redirect::to(&format!("/Domain/{}/Accounts", url_part(&domain)))
}

/// A path segment, percent-encoded where needed.
fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ------------------------------------------------------------------ status and general

async fn status(State(web): State<Web>, Login(a): Login) -> Response {
    render_status(&web, &a, Notice::none()).await
}

async fn status_post(State(web): State<Web>, Posted(a, form): Posted) -> Response {
    let notice = match settings_changes(&form) {
        Ok(changes) => {
            let r = run(
                &web,
                &a,
                "UpdateModule",
                vec![kw("Log"), Value::Dict(changes)],
            )
            .await;
            Notice::from(&r, "Log settings updated.")
        }
        Err(e) => Notice::error(e),
    };
    render_status(&web, &a, notice).await
}

async fn render_status(web: &Web, a: &Admin, notice: Notice) -> Response {
    let status = run(web, a, "GetServerStatus", vec![]).await;
    let st = dict_of(&status);
    let text = |k: &str| st.get(k.as_bytes()).map(value_text).unwrap_or_default();
    let listeners = st
        .get(b"Listeners".as_slice())
        .and_then(Value::as_dict)
        .cloned()
        .unwrap_or_default();
    let sub = |k: &str| {
        st.get(k.as_bytes())
            .and_then(Value::as_dict)
            .cloned()
            .unwrap_or_default()
    };
    let (per_domain, remotes) = (sub("QueuedPerDomain"), sub("RemoteServers"));
    let log_module = run(web, a, "GetModule", vec![kw("Log")]).await;
    let main = run(web, a, "MainDomainName", vec![]).await;
    let body = html! {
        h1 { "Status" }
        (notice.show())
        @if let Some(e) = error_of(&status) { (message(Some(&e), None)) }
        div.grid {
            section.panel { div.muted { "Main domain" } div.stat { (main.as_ref().ok().and_then(Option::as_ref).map(value_text).unwrap_or_default()) } }
            section.panel { div.muted { "Queued messages" } div.stat { (text("QueueSize")) } }
            section.panel { div.muted { "Connections" } div.stat { (text("Connections")) } }
            section.panel { div.muted { "Uptime" } div.stat { (uptime(&text("Uptime"))) } }
        }
        section.panel {
            h2 { "Dial-up link" }
            p {
                "TCP Activity Schedule window: " strong { (text("DialupWindow")) }
                @if !text("NextWindow").is_empty() { ", opens " (text("NextWindow")) }
                @if !text("LastSession").is_empty() { "; last session " (text("LastSession")) }
            }
            @if !per_domain.is_empty() {
                table {
                    thead { tr { th { "Domain" } th { "Queued messages" } } }
                    tbody {
                        @for (d, n) in &per_domain {
                            tr { td { (String::from_utf8_lossy(d)) } td { (value_text(n)) } }
                        }
                    }
                }
            }
            @if !remotes.is_empty() {
                table {
                    thead { tr { th { "Remote server" } th { "Module" } th { "Last session" } th { "Result" } th { "Messages" } } }
                    tbody {
                        @for r in remotes.values() {
                            tr {
                                td.mono { (r.get_text("Server").unwrap_or_default()) }
                                td { (r.get_text("Module").unwrap_or_default()) }
                                td { (r.get_text("Time").unwrap_or_default()) }
                                td { (r.get_text("Result").unwrap_or_default()) }
                                td { (r.get_text("Messages").unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "Listeners" }
            table {
                thead { tr { th { "Module" } th { "Port" } th { "TLS" } th { "State" } th.opt { "Address" } } }
                tbody {
                    @for (name, l) in &listeners {
                        @for sock in l.get("Sockets").and_then(Value::as_array).unwrap_or(&[]) {
                            tr {
                                td { a href={"/Module/" (String::from_utf8_lossy(name))} { (String::from_utf8_lossy(name)) } }
                                td { (sock.get_text("Port").unwrap_or_default()) }
                                td { (sock.get_text("TLS").unwrap_or_default()) }
                                td { (sock.get_text("State").unwrap_or_default()) }
                                td.mono.opt { (sock.get_text("Address").unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        @if let Ok(Some(Value::Dict(log))) = &log_module {
            section.panel {
                h2 { "Log engine" }
                (settings_form("/Status", &a.csrf, html! {}, log, log))
            }
        }
        p.muted { "Gatehouse " (text("Version")) }
    };
    frame(a, "Status", "/Status", body)
}

fn uptime(secs: &str) -> String {
    let Ok(s) = secs.parse::<u64>() else {
        return secs.to_string();
    };
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

// ------------------------------------------------------------------ domains

async fn domains(State(web): State<Web>, Login(a): Login) -> Response {
    render_domains(&web, &a, Notice::none()).await
}

async fn domains_post(State(web): State<Web>, Posted(a, form): Posted) -> Response {
    let name = field(&form, "name").trim().to_string();
    let r = run(&web, &a, "CreateDomain", vec![s(&name)]).await;
    if r.is_ok() {
        return Redirect::to(&format!("/Domain/{}", url_part(&name))).into_response();
    }
    render_domains(&web, &a, Notice::from(&r, "")).await
}

async fn render_domains(web: &Web, a: &Admin, notice: Notice) -> Response {
    let list = run(web, a, "ListDomains", vec![]).await;
    let body = html! {
        h1 { "Domains" }
        (notice.show())
        @if let Some(e) = error_of(&list) { (message(Some(&e), None)) }
        section.panel {
            table {
                thead { tr { th { "Domain" } th { "" } } }
                tbody {
                    @for d in strings_of(&list) {
                        tr {
                            td { a href={"/Domain/" (url_part(&d))} { (d) } }
                            td { a href={"/Domain/" (url_part(&d)) "/Accounts"} { "Accounts" } " · "
                                 a href={"/Domain/" (url_part(&d)) "/Groups"} { "Groups" } " · "
                                 a href={"/Domain/" (url_part(&d)) "/Forwarders"} { "Forwarders" } }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "Create a domain" }
            form.inline method="post" action="/Domains" {
                (csrf_field(&a.csrf))
                label { "Domain name" input type="text" name="name" required; }
                button type="submit" { "Create" }
            }
        }
        p { a href="/Defaults" { "Server-wide default domain and account settings" } }
    };
    frame(a, "Domains", "/Domains", body)
}

async fn defaults(State(web): State<Web>, Login(a): Login) -> Response {
    render_defaults(&web, &a, Notice::none()).await
}

async fn defaults_post(State(web): State<Web>, Posted(a, form): Posted) -> Response {
    let command = match field(&form, "which") {
        "domain" => "UpdateDomainDefaults",
        _ => "UpdateAllAccountsDefaults",
    };
    let notice = match settings_changes(&form) {
        Ok(changes) => Notice::from(
            &run(&web, &a, command, vec![Value::Dict(changes)]).await,
            "Defaults updated.",
        ),
        Err(e) => Notice::error(e),
    };
    render_defaults(&web, &a, notice).await
}

async fn render_defaults(web: &Web, a: &Admin, notice: Notice) -> Response {
    let domain = dict_of(&run(web, a, "GetDomainDefaults", vec![]).await);
    let accounts = dict_of(&run(web, a, "GetAllAccountsDefaults", vec![]).await);
    let body = html! {
        h1 { "Server-wide defaults" }
        (notice.show())
        section.panel {
            h2 { "Default domain settings" }
            (settings_form("/Defaults", &a.csrf, hidden("which", "domain"), &domain, &domain))
        }
        section.panel {
            h2 { "Default account settings" }
            (settings_form("/Defaults", &a.csrf, hidden("which", "accounts"), &accounts, &accounts))
        }
    };
    frame(a, "Defaults", "/Domains", body)
}

/// A hidden form field.
fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

async fn domain(State(web): State<Web>, Login(a): Login, Path(d): Path<String>) -> Response {
    render_domain(&web, &a, &d, Notice::none()).await
}

async fn domain_post(
    State(web): State<Web>,
    Path(d): Path<String>,
    Posted(a, form): Posted,
) -> Response {
    let notice = match field(&form, "action") {
        "aliases" => Notice::from(
            &run(
                &web,
                &a,
                "SetDomainAliases",
                vec![s(&d), lines_array(field(&form, "aliases"))],
            )
            .await,
            "Aliases saved.",
        ),
        "rename" => {
            let new = field(&form, "new").trim().to_string();
            let r = run(&web, &a, "RenameDomain", vec![s(&d), kw("into"), s(&new)]).await;
            if r.is_ok() {
                return Redirect::to(&format!("/Domain/{}", url_part(&new))).into_response();
            }
            Notice::from(&r, "")
        }
        "delete" => {
            let mut args = vec![s(&d)];
            if field(&form, "force") == "yes" {
                args.push(kw("force"));
            }
            let r = run(&web, &a, "DeleteDomain", args).await;
            if r.is_ok() {
                return Redirect::to("/Domains").into_response();
            }
            Notice::from(&r, "")
        }
        "accountdefaults" | "template" => {
            let command = if field(&form, "action") == "template" {
                "UpdateAccountTemplate"
            } else {
                "UpdateAccountDefaults"
            };
            match settings_changes(&form) {
                Ok(c) => Notice::from(
                    &run(&web, &a, command, vec![s(&d), Value::Dict(c)]).await,
                    "Saved.",
                ),
                Err(e) => Notice::error(e),
            }
        }
        _ => match settings_changes(&form) {
            Ok(c) => Notice::from(
                &run(
                    &web,
                    &a,
                    "UpdateDomainSettings",
                    vec![s(&d), Value::Dict(c)],
                )
                .await,
                "Domain settings updated.",
            ),
            Err(e) => Notice::error(e),
        },
    };
    let at = match field(&form, "action") {
        "" => "settings",
        other => other,
    };
    render_domain(&web, &a, &d, notice.at(at)).await
}

async fn render_domain(web: &Web, a: &Admin, d: &str, notice: Notice) -> Response {
    let explicit = run(web, a, "GetDomainSettings", vec![s(d)]).await;
    let effective = dict_of(&run(web, a, "GetDomainEffectiveSettings", vec![s(d)]).await);
    let aliases = strings_of(&run(web, a, "GetDomainAliases", vec![s(d)]).await);
    let acc_defaults = dict_of(&run(web, a, "GetAccountDefaults", vec![s(d)]).await);
    let template = dict_of(&run(web, a, "GetAccountTemplate", vec![s(d)]).await);
    let url = format!("/Domain/{}", url_part(d));
    let body = html! {
        h1 { "Domain " (d) }
        p { a href={(url) "/Accounts"} { "Accounts" } " · " a href={(url) "/Groups"} { "Groups" } " · " a href={(url) "/Forwarders"} { "Forwarders" } }
        (notice.show())
        @if let Some(e) = error_of(&explicit) { (message(Some(&e), None)) }
        section.panel {
            h2 { "Settings" }
            (notice.show_for("settings"))
            (settings_form(&url, &a.csrf, html! {}, &dict_of(&explicit), &effective))
        }
        section.panel {
            h2 { "Domain aliases" }
            (notice.show_for("aliases"))
            form method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="aliases";
                textarea name="aliases" aria-label="aliases, one per line" { (aliases.join("\n")) }
                p { button type="submit" { "Save aliases" } " " span.muted { "One per line." } }
            }
        }
        section.panel {
            h2 { "Default account settings of this domain" }
            (notice.show_for("accountdefaults"))
            (settings_form(&url, &a.csrf, hidden("action", "accountdefaults"), &acc_defaults, &acc_defaults))
        }
        section.panel {
            h2 { "Account template" }
            (notice.show_for("template"))
            (settings_form(&url, &a.csrf, hidden("action", "template"), &template, &template))
        }
        @if a.session.all_domains() {
            section.panel {
                h2 { "Rename or delete" }
                (notice.show_for("rename"))
                (notice.show_for("delete"))
                form.inline method="post" action=(url) {
                    (csrf_field(&a.csrf))
                    input type="hidden" name="action" value="rename";
                    label { "New name" input type="text" name="new" required; }
                    button type="submit" { "Rename" }
                }
                form.inline.mt method="post" action=(url) {
                    (csrf_field(&a.csrf))
                    input type="hidden" name="action" value="delete";
                    label { span { input type="checkbox" name="force" value="yes"; " with all its accounts" } }
                    button.danger type="submit" { "Delete domain" }
                }
            }
        }
    };
    frame(a, d, "/Domains", body)
}

// ------------------------------------------------------------------ accounts

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    page: Option<usize>,
}

async fn accounts(
    State(web): State<Web>,
    Login(a): Login,
    Path(d): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    render_accounts(&web, &a, &d, &q, Notice::none()).await
}

async fn accounts_post(
    State(web): State<Web>,
    Path(d): Path<String>,
    Posted(a, form): Posted,
) -> Response {
    let name = field(&form, "name").trim().to_string();
    let mut settings = Dict::new();
    for (key, f) in [("Password", "password"), ("RealName", "realname")] {
        if !field(&form, f).is_empty() {
            settings.insert(key.as_bytes().to_vec(), s(field(&form, f)));
        }
    }
    let r = run(
        &web,
        &a,
        "CreateAccount",
        vec![
            s(&format!("{name}@{d}")),
            s(field(&form, "type")),
            Value::Dict(settings),
        ],
    )
    .await;
    if r.is_ok() {
        return Redirect::to(&format!(
            "/Domain/{}/Account/{}",
            url_part(&d),
            url_part(&name)
        ))
        .into_response();
    }
    render_accounts(&web, &a, &d, &ListQuery::default(), Notice::from(&r, "")).await
}

async fn render_accounts(web: &Web, a: &Admin, d: &str, q: &ListQuery, notice: Notice) -> Response {
    let list = run(web, a, "ListAccounts", vec![s(d)]).await;
    let all = dict_of(&list);
    let needle = q.q.clone().unwrap_or_default().to_lowercase();
    let matching: Vec<(String, String)> = all
        .iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), value_text(v)))
        .filter(|(k, _)| needle.is_empty() || k.to_lowercase().contains(&needle))
        .collect();
    let pages = matching.len().div_ceil(PAGE_SIZE).max(1);
    let page_no = q.page.unwrap_or(1).clamp(1, pages);
    let url = format!("/Domain/{}/Accounts", url_part(d));
    let qs = |p: usize| format!("{url}?q={}&page={p}", url_part(&needle));
    let body = html! {
        h1 { "Accounts in " (d) }
        (notice.show())
        @if let Some(e) = error_of(&list) { (message(Some(&e), None)) }
        section.panel {
            form.inline method="get" action=(url) role="search" {
                label { "Search" input type="search" name="q" value=(needle); }
                button.secondary type="submit" { "Find" }
            }
            table {
                thead { tr { th { "Account" } th { "Type" } } }
                tbody {
                    @for (name, kind) in matching.iter().skip((page_no - 1) * PAGE_SIZE).take(PAGE_SIZE) {
                        tr { td { a href={"/Domain/" (url_part(d)) "/Account/" (url_part(name))} { (name) } } td { (kind) } }
                    }
                }
            }
            div.pager {
                @if page_no > 1 { a.button href=(qs(page_no - 1)) { "Previous" } }
                span.muted { (matching.len()) " accounts · page " (page_no) " of " (pages) }
                @if page_no < pages { a.button href=(qs(page_no + 1)) { "Next" } }
            }
        }
        section.panel {
            h2 { "Create an account" }
            form.inline method="post" action=(url) {
                (csrf_field(&a.csrf))
                label { "Name" input type="text" name="name" required; }
                label { "Type" select name="type" {
                    option value="MultiMailbox" { "MultiMailbox" }
                    option value="TextMailbox" { "TextMailbox" }
                    option value="MailDirMailbox" { "MailDirMailbox" }
                } }
                label { "Real name" input type="text" name="realname"; }
                label { "Password" input type="password" name="password" autocomplete="new-password"; }
                button type="submit" { "Create" }
            }
        }
    };
    frame(
        a,
        &format!("Accounts in {d}"),
        &format!("/Domain/{d}/Accounts"),
        body,
    )
}

async fn account(
    State(web): State<Web>,
    Login(a): Login,
    Path((d, acc)): Path<(String, String)>,
) -> Response {
    render_account(&web, &a, &d, &acc, Notice::none(), &[]).await
}

async fn account_post(
    State(web): State<Web>,
    Path((d, acc)): Path<(String, String)>,
    Posted(a, form): Posted,
) -> Response {
    let full = format!("{acc}@{d}");
    let notice = match field(&form, "action") {
        "password" => Notice::from(
            &run(
                &web,
                &a,
                "SetAccountPassword",
                vec![s(&full), kw("To"), s(field(&form, "password"))],
            )
            .await,
            "Password changed.",
        ),
        "aliases" => Notice::from(
            &run(
                &web,
                &a,
                "SetAccountAliases",
                vec![s(&full), lines_array(field(&form, "aliases"))],
            )
            .await,
            "Aliases saved.",
        ),
        "rules" => match html::text_value(field(&form, "rules")) {
            Ok(v @ Value::Array(_)) => Notice::from(
                &run(&web, &a, "SetAccountRules", vec![s(&full), v]).await,
                "Rules saved.",
            ),
            Ok(_) => Notice::error("Rules must be an array: (rule, rule, ...)"),
            Err(e) => Notice::error(format!("Rules: {e}")),
        },
        "rename" => {
            let new = field(&form, "new").trim().to_string();
            let r = run(
                &web,
                &a,
                "RenameAccount",
                vec![s(&full), kw("into"), s(&format!("{new}@{d}"))],
            )
            .await;
            if r.is_ok() {
                return Redirect::to(&format!(
                    "/Domain/{}/Account/{}",
                    url_part(&d),
                    url_part(&new)
                ))
                .into_response();
            }
            Notice::from(&r, "")
        }
        "rpop" => match run(&web, &a, "GetAccountRPOP", vec![s(&full)]).await {
            Ok(current) => {
                let stored = match current {
                    Some(Value::Array(rows)) => rows,
                    _ => Vec::new(),
                };
                let records = dialup::account_records(&form, &stored);
                Notice::from(
                    &run(
                        &web,
                        &a,
                        "SetAccountRPOP",
                        vec![s(&full), Value::Array(records)],
                    )
                    .await,
                    "RPOP records saved.",
                )
            }
            Err(e) => Notice::error(e.0),
        },
        "delete" => {
            let r = run(&web, &a, "DeleteAccount", vec![s(&full)]).await;
            if r.is_ok() {
                return Redirect::to(&format!("/Domain/{}/Accounts", url_part(&d))).into_response();
            }
            Notice::from(&r, "")
        }
        _ => match settings_changes(&form) {
            Ok(c) => Notice::from(
                &run(
                    &web,
                    &a,
                    "UpdateAccountSettings",
                    vec![s(&full), Value::Dict(c)],
                )
                .await,
                "Account settings updated.",
            ),
            Err(e) => Notice::error(e),
        },
    };
    let at = match field(&form, "action") {
        "" => "settings",
        other => other,
    };
    let kept: &[(String, String)] = if notice.error.is_some() { &form } else { &[] };
    render_account(&web, &a, &d, &acc, notice.at(at), kept).await
}

/// An account's page; `kept` is a refused RPOP form, shown again as typed.
async fn render_account(
    web: &Web,
    a: &Admin,
    d: &str,
    acc: &str,
    notice: Notice,
    kept: &[(String, String)],
) -> Response {
    let full = format!("{acc}@{d}");
    let explicit = run(web, a, "GetAccountSettings", vec![s(&full)]).await;
    let mut shown = dict_of(&explicit);
    // The stored password hash is no one's business on a web page.
    shown.shift_remove(b"Password".as_slice());
    let mut effective = dict_of(&run(web, a, "GetAccountEffectiveSettings", vec![s(&full)]).await);
    effective.shift_remove(b"Password".as_slice());
    let aliases = strings_of(&run(web, a, "GetAccountAliases", vec![s(&full)]).await);
    let rules = run(web, a, "GetAccountRules", vec![s(&full)]).await;
    let rules_text = rules
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|v| String::from_utf8_lossy(&format::to_pretty(v)).into_owned())
        .unwrap_or_else(|| "()".into());
    let rpop = run(web, a, "GetAccountRPOP", vec![s(&full)]).await;
    let url = format!("/Domain/{}/Account/{}", url_part(d), url_part(acc));
    let body = html! {
        h1 { "Account " (full) }
        p { a href={"/Domain/" (url_part(d)) "/Accounts"} { "← Accounts in " (d) } }
        (notice.show())
        @if let Some(e) = error_of(&explicit) { (message(Some(&e), None)) }
        section.panel {
            h2 { "Settings" }
            (notice.show_for("settings"))
            (settings_form(&url, &a.csrf, html! {}, &shown, &effective))
        }
        section.panel {
            h2 { "Password" }
            (notice.show_for("password"))
            form.inline method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="password";
                label { "New password" input type="password" name="password" autocomplete="new-password" required; }
                button type="submit" { "Set password" }
            }
        }
        section.panel {
            h2 { "Aliases" }
            (notice.show_for("aliases"))
            form method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="aliases";
                textarea name="aliases" aria-label="aliases, one per line" { (aliases.join("\n")) }
                p { button type="submit" { "Save aliases" } " " span.muted { "One per line." } }
            }
        }
        section.panel {
            h2 { "Rules" }
            (notice.show_for("rules"))
            form method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="rules";
                textarea name="rules" aria-label="rules" { (rules_text) }
                p { button type="submit" { "Save rules" } " " span.muted { "An array of (priority, name, conditions, actions), guide format." } }
            }
        }
        @match &rpop {
            Ok(Some(Value::Array(records))) => (dialup::account_section(a, &url, records, &notice, kept)),
            Ok(_) => (dialup::account_section(a, &url, &[], &notice, kept)),
            Err(e) => section.panel { h2 { "Remote POP accounts (RPOP)" } (message(Some(&e.0), None)) },
        }
        section.panel {
            h2 { "Rename or delete" }
            (notice.show_for("rename"))
            (notice.show_for("delete"))
            form.inline method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="rename";
                label { "New name" input type="text" name="new" required; }
                button type="submit" { "Rename" }
            }
            form.inline.mt method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="delete";
                button.danger type="submit" { "Delete account" }
            }
        }
    };
    frame(a, &full, &format!("/Domain/{d}/Accounts"), body)
}

// ------------------------------------------------------------------ groups and forwarders

async fn groups(State(web): State<Web>, Login(a): Login, Path(d): Path<String>) -> Response {
    render_groups(&web, &a, &d, Notice::none()).await
}

async fn groups_post(
    State(web): State<Web>,
    Path(d): Path<String>,
    Posted(a, form): Posted,
) -> Response {
    let name = field(&form, "name").trim().to_string();
    let r = run(&web, &a, "CreateGroup", vec![s(&format!("{name}@{d}"))]).await;
    if r.is_ok() {
        return Redirect::to(&format!(
            "/Domain/{}/Group/{}",
            url_part(&d),
            url_part(&name)
        ))
        .into_response();
    }
    render_groups(&web, &a, &d, Notice::from(&r, "")).await
}

async fn render_groups(web: &Web, a: &Admin, d: &str, notice: Notice) -> Response {
    let list = run(web, a, "ListGroups", vec![s(d)]).await;
    let url = format!("/Domain/{}/Groups", url_part(d));
    let body = html! {
        h1 { "Groups in " (d) }
        (notice.show())
        @if let Some(e) = error_of(&list) { (message(Some(&e), None)) }
        section.panel {
            table { tbody { @for g in strings_of(&list) { tr { td { a href={"/Domain/" (url_part(d)) "/Group/" (url_part(&g))} { (g) } } } } } }
        }
        section.panel {
            h2 { "Create a group" }
            form.inline method="post" action=(url) {
                (csrf_field(&a.csrf))
                label { "Name" input type="text" name="name" required; }
                button type="submit" { "Create" }
            }
        }
    };
    frame(
        a,
        &format!("Groups in {d}"),
        &format!("/Domain/{d}/Accounts"),
        body,
    )
}

async fn group(
    State(web): State<Web>,
    Login(a): Login,
    Path((d, g)): Path<(String, String)>,
) -> Response {
    render_group(&web, &a, &d, &g, Notice::none()).await
}

async fn group_post(
    State(web): State<Web>,
    Path((d, g)): Path<(String, String)>,
    Posted(a, form): Posted,
) -> Response {
    let full = format!("{g}@{d}");
    let notice = match field(&form, "action") {
        "delete" => {
            let r = run(&web, &a, "DeleteGroup", vec![s(&full)]).await;
            if r.is_ok() {
                return Redirect::to(&format!("/Domain/{}/Groups", url_part(&d))).into_response();
            }
            Notice::from(&r, "")
        }
        _ => {
            // SetGroup replaces the whole dictionary: the current one with the form's changes.
            let mut current = dict_of(&run(&web, &a, "GetGroup", vec![s(&full)]).await);
            current.insert(b"Members".to_vec(), lines_array(field(&form, "members")));
            match settings_changes(&form) {
                Ok(changes) => {
                    for (k, v) in changes {
                        if v.as_bytes() == Some(b"default") {
                            current.shift_remove(&k);
                        } else {
                            current.insert(k, v);
                        }
                    }
                    Notice::from(
                        &run(&web, &a, "SetGroup", vec![s(&full), Value::Dict(current)]).await,
                        "Group saved.",
                    )
                }
                Err(e) => Notice::error(e),
            }
        }
    };
    render_group(&web, &a, &d, &g, notice).await
}

async fn render_group(web: &Web, a: &Admin, d: &str, g: &str, notice: Notice) -> Response {
    let full = format!("{g}@{d}");
    let r = run(web, a, "GetGroup", vec![s(&full)]).await;
    let mut settings = dict_of(&r);
    let members: Vec<String> = settings
        .shift_remove(b"Members".as_slice())
        .and_then(|v| v.as_array().map(|a| a.iter().map(value_text).collect()))
        .unwrap_or_default();
    let url = format!("/Domain/{}/Group/{}", url_part(d), url_part(g));
    let members_field = html! {
        h2 { "Members" }
        textarea name="members" aria-label="members, one per line" { (members.join("\n")) }
        h2 { "Settings" }
    };
    let body = html! {
        h1 { "Group " (full) }
        p { a href={"/Domain/" (url_part(d)) "/Groups"} { "← Groups in " (d) } }
        (notice.show())
        @if let Some(e) = error_of(&r) { (message(Some(&e), None)) }
        section.panel { (settings_form(&url, &a.csrf, members_field, &settings, &settings)) }
        section.panel {
            form method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="delete";
                button.danger type="submit" { "Delete group" }
            }
        }
    };
    frame(a, &full, &format!("/Domain/{d}/Accounts"), body)
}

async fn forwarders(State(web): State<Web>, Login(a): Login, Path(d): Path<String>) -> Response {
    render_forwarders(&web, &a, &d, Notice::none()).await
}

async fn forwarders_post(
    State(web): State<Web>,
    Path(d): Path<String>,
    Posted(a, form): Posted,
) -> Response {
    let name = format!("{}@{d}", field(&form, "name").trim());
    let r = if field(&form, "action") == "delete" {
        run(&web, &a, "DeleteForwarder", vec![s(&name)]).await
    } else {
        run(
            &web,
            &a,
            "CreateForwarder",
            vec![s(&name), kw("TO"), s(field(&form, "to").trim())],
        )
        .await
    };
    render_forwarders(&web, &a, &d, Notice::from(&r, "Saved.")).await
}

async fn render_forwarders(web: &Web, a: &Admin, d: &str, notice: Notice) -> Response {
    let list = run(web, a, "ListForwarders", vec![s(d)]).await;
    let mut rows = Vec::new();
    for f in strings_of(&list) {
        let to = run(web, a, "GetForwarder", vec![s(&format!("{f}@{d}"))]).await;
        rows.push((
            f,
            to.ok()
                .flatten()
                .map(|v| value_text(&v))
                .unwrap_or_default(),
        ));
    }
    let url = format!("/Domain/{}/Forwarders", url_part(d));
    let body = html! {
        h1 { "Forwarders in " (d) }
        (notice.show())
        @if let Some(e) = error_of(&list) { (message(Some(&e), None)) }
        section.panel {
            table {
                thead { tr { th { "Name" } th { "Forwards to" } th {} } }
                tbody {
                    @for (f, to) in &rows {
                        tr {
                            td { (f) } td.mono { (to) }
                            td { form method="post" action=(url) {
                                (csrf_field(&a.csrf))
                                input type="hidden" name="action" value="delete";
                                input type="hidden" name="name" value=(f);
                                button.secondary type="submit" { "Delete" }
                            } }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "Create a forwarder" }
            form.inline method="post" action=(url) {
                (csrf_field(&a.csrf))
                label { "Name" input type="text" name="name" required; }
                label { "Forward to" input type="text" name="to" required; }
                button type="submit" { "Create" }
            }
        }
    };
    frame(
        a,
        &format!("Forwarders in {d}"),
        &format!("/Domain/{d}/Accounts"),
        body,
    )
}

// ------------------------------------------------------------------ server settings

async fn router_page(State(web): State<Web>, Login(a): Login) -> Response {
    render_text_setting(&web, &a, "Router", "GetRouterTable", None, Notice::none()).await
}

async fn router_post(State(web): State<Web>, Posted(a, form): Posted) -> Response {
    let text = field(&form, "text").to_string();
    let r = run(&web, &a, "SetRouterTable", vec![lines_string(&text)]).await;
    let keep = r.is_err().then_some(text);
    render_text_setting(
        &web,
        &a,
        "Router",
        "GetRouterTable",
        keep,
        Notice::from(&r, "Router table saved."),
    )
    .await
}

/// A page editing one multi-line text setting (the Router table).
async fn render_text_setting(
    web: &Web,
    a: &Admin,
    title: &str,
    get: &str,
    keep: Option<String>,
    notice: Notice,
) -> Response {
    let current = run(web, a, get, vec![]).await;
    let text = keep.unwrap_or_else(|| {
        current
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .map(value_text)
            .unwrap_or_default()
    });
    let body = html! {
        h1 { (title) }
        (notice.show())
        @if let Some(e) = error_of(&current) { (message(Some(&e), None)) }
        section.panel {
            form method="post" action={"/" (title)} {
                (csrf_field(&a.csrf))
                textarea name="text" rows="16" aria-label=(title) { (text) }
                p { button type="submit" { "Save" } }
            }
        }
    };
    frame(a, title, &format!("/{title}"), body)
}

/// The address lists of the Protection page: (CLI name, the guide's title, what they do).
const IP_LISTS: [(&str, &str, &str); 3] = [
    (
        "ClientIPs",
        "Client IP Addresses",
        "may relay and are trusted as local clients",
    ),
    (
        "BlacklistedIPs",
        "Blacklisted IP Addresses",
        "every recipient from these is refused",
    ),
    (
        "WhiteHoleIPs",
        "UnBlacklistable IP Addresses",
        "never blacklisted",
    ),
];

/// The DNS options of the `Protection` settings (`SetProtection`, `modules::smtp::dns`): (the
/// option, its table, the guide's title, what the table holds).
const DNS_OPTIONS: [(&str, &str, &str, &str); 4] = [
    (
        "DetectClientsByDNSName",
        "ClientDNSNames",
        "Detect Clients by DNS Name",
        "PTR names (* wildcards) of addresses treated as Client IP Addresses when the name's own address lookup holds the address (guide.txt:3190-3208)",
    ),
    (
        "UseRBL",
        "RBLServers",
        "Use Blacklisting DNS (RBL)",
        "RBL server domain names, not addresses; an address they list is blacklisted unless it is a Client or UnBlacklistable (guide.txt:3480-3514)",
    ),
    (
        "BlacklistByDNSName",
        "BlacklistedDNSNames",
        "Blacklist by DNS Name",
        "PTR names (* wildcards) of addresses treated as blacklisted (guide.txt:3515-3530)",
    ),
    (
        "UnBlacklistByDNSName",
        "UnBlacklistedDNSNames",
        "UnBlacklist by DNS Name",
        "PTR names (* wildcards) never blacklisted by RBL or DNS name; explicitly Blacklisted IP Addresses stay blacklisted (guide.txt:3539-3551)",
    ),
];

async fn protection(State(web): State<Web>, Login(a): Login) -> Response {
    render_protection(&web, &a, &[], Notice::none()).await
}

/// Saves one address list (`Set<list>`) or one DNS option with its table (`SetProtection`
/// with the current settings and this option changed).
async fn protection_post(State(web): State<Web>, Posted(a, form): Posted) -> Response {
    let which = field(&form, "which");
    let r = if let Some((name, _, _)) = IP_LISTS.iter().find(|(n, _, _)| *n == which) {
        run(
            &web,
            &a,
            &format!("Set{name}"),
            vec![lines_string(field(&form, "text"))],
        )
        .await
    } else if let Some((flag, table, _, _)) = DNS_OPTIONS.iter().find(|o| o.0 == which) {
        match run(&web, &a, "GetProtection", vec![]).await {
            Ok(current) => {
                let mut d = match current {
                    Some(Value::Dict(d)) => d,
                    _ => Dict::new(),
                };
                let on = field(&form, "on") == "Yes";
                d.insert(flag.as_bytes().to_vec(), kw(if on { "Yes" } else { "No" }));
                let items = all_fields(&form, "item")
                    .into_iter()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Value::str)
                    .collect();
                d.insert(table.as_bytes().to_vec(), Value::Array(items));
                run(&web, &a, "SetProtection", vec![Value::Dict(d)]).await
            }
            Err(e) => Err(e),
        }
    } else {
        return render_protection(&web, &a, &[], Notice::error("Unknown list")).await;
    };
    let label = IP_LISTS
        .iter()
        .map(|l| (l.0, l.1))
        .chain(DNS_OPTIONS.iter().map(|o| (o.0, o.2)))
        .find(|(n, _)| *n == which)
        .map_or("", |(_, l)| l);
    // What was typed stays for correction when the command refused it.
    let kept: &[(String, String)] = if r.is_err() { &form } else { &[] };
    let notice = Notice::from(&r, &format!("{label} saved.")).at(which);
    render_protection(&web, &a, kept, notice).await
}

/// Every value of a repeated form field, in order.
fn all_fields<'a>(form: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The items of a DNS option's table as stored: an array, or text with commas or lines.
fn table_items(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(value_text).collect(),
        Some(v) => value_text(v)
            .split([',', '\n'])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    }
}

/// The Protection page in the guide's order (guide.txt:3154-3551): Client IP Addresses and
/// Detect Clients by DNS Name, Blacklisted IP Addresses, RBL, Blacklist by DNS Name,
/// UnBlacklistable IP Addresses, UnBlacklist by DNS Name. `kept` is a refused form, shown again
/// in place of its section's stored value.
async fn render_protection(
    web: &Web,
    a: &Admin,
    kept: &[(String, String)],
    notice: Notice,
) -> Response {
    let kept_for = |name: &str| (field(kept, "which") == name).then_some(kept);
    let mut refused = None;
    let mut lists = Vec::new();
    for (name, label, doc) in IP_LISTS {
        let text = match kept_for(name) {
            Some(f) => field(f, "text").to_string(),
            None => {
                let r = run(web, a, &format!("Get{name}"), vec![]).await;
                refused = refused.or_else(|| error_of(&r));
                r.ok().flatten().map(|v| value_text(&v)).unwrap_or_default()
            }
        };
        lists.push(html! {
            section.panel {
                h2 { (label) }
                (notice.show_for(name))
                p.muted { "One address or range a.b.c.d-e.f.g.h per line; comments after ; — " (doc) "." }
                form method="post" action="/Protection" {
                    (csrf_field(&a.csrf))
                    input type="hidden" name="which" value=(name);
                    textarea name="text" aria-label=(label) { (text) }
                    p { button type="submit" { "Save" } }
                }
            }
        });
    }
    let protection = run(web, a, "GetProtection", vec![]).await;
    refused = refused.or_else(|| error_of(&protection));
    let settings = dict_of(&protection);
    let mut options = Vec::new();
    for (flag, table, label, doc) in DNS_OPTIONS {
        let (on, items) = match kept_for(flag) {
            Some(f) => (
                field(f, "on") == "Yes",
                all_fields(f, "item")
                    .into_iter()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            None => (
                settings
                    .get(flag.as_bytes())
                    .map(value_text)
                    .is_some_and(|t| t.eq_ignore_ascii_case("yes")),
                table_items(settings.get(table.as_bytes())),
            ),
        };
        options.push(html! {
            section.panel {
                h2 { (label) }
                (notice.show_for(flag))
                p.muted { (doc) ". Add one in the empty last row; blank a row to remove it." }
                form method="post" action="/Protection" {
                    (csrf_field(&a.csrf))
                    input type="hidden" name="which" value=(flag);
                    p { label { input type="checkbox" name="on" value="Yes" checked[on] aria-label=(flag); " " (label) } }
                    table {
                        tbody {
                            @for item in items.iter().chain(std::iter::once(&String::new())) {
                                tr { td { input type="text" name="item" value=(item) aria-label=(table); } }
                            }
                        }
                    }
                    p { button type="submit" { "Save" } }
                }
            }
        });
    }
    let order = [
        (&lists, 0),
        (&options, 0),
        (&lists, 1),
        (&options, 1),
        (&options, 2),
        (&lists, 2),
        (&options, 3),
    ];
    let body = html! {
        h1 { "Protection" }
        (notice.show())
        @if let Some(e) = &refused { (message(Some(e), None)) }
        @for (sections, i) in order { @if let Some(m) = sections.get(i) { (m) } }
    };
    frame(a, "Protection", "/Protection", body)
}

async fn modules(State(web): State<Web>, Login(a): Login) -> Response {
    let mut names = web.cli.modules.names();
    names.sort();
    let body = html! {
        h1 { "Listeners & Modules" }
        section.panel {
            table { tbody { @for m in &names { tr { td { a href={"/Module/" (url_part(m))} { (m) } } } } } }
        }
    };
    frame(&a, "Modules", "/Modules", body)
}

async fn module(State(web): State<Web>, Login(a): Login, Path(m): Path<String>) -> Response {
    render_module(&web, &a, &m, Notice::none(), &[]).await
}

async fn module_post(
    State(web): State<Web>,
    Path(m): Path<String>,
    Posted(a, form): Posted,
) -> Response {
    let notice = match dialup::module_post(&web, &a, &m, &form).await {
        Some(n) => n,
        None => match settings_changes(&form) {
            Ok(c) => Notice::from(
                &run(&web, &a, "UpdateModule", vec![s(&m), Value::Dict(c)]).await,
                "Module settings updated.",
            ),
            Err(e) => Notice::error(e),
        },
    };
    let kept: &[(String, String)] = if notice.error.is_some() { &form } else { &[] };
    render_module(&web, &a, &m, notice, kept).await
}

/// A module's page: the generic settings table, and the module's own sections
/// ([`dialup::module_sections`]) for the settings they edit.
async fn render_module(
    web: &Web,
    a: &Admin,
    m: &str,
    notice: Notice,
    kept: &[(String, String)],
) -> Response {
    let effective = run(web, a, "GetModule", vec![s(m)]).await;
    let all = dict_of(&effective);
    let own = dialup::own_keys(m);
    let eff: Dict = all
        .iter()
        .filter(|(k, _)| !own.iter().any(|o| o.as_bytes() == k.as_slice()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // What differs from the declared default is what this server sets explicitly.
    let defaults: Dict = web
        .cli
        .modules
        .get(m)
        .map(|d| {
            d.settings
                .iter()
                .filter(|s| !own.contains(&s.key))
                .map(|s| {
                    (
                        s.key.as_bytes().to_vec(),
                        html::text_value(s.default).unwrap_or_else(|_| Value::str(s.default)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let explicit: Dict = eff
        .iter()
        .filter(|(k, v)| defaults.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let docs: Vec<(String, String)> = web
        .cli
        .modules
        .get(m)
        .map(|d| {
            d.settings
                .iter()
                .map(|s| (s.key.to_string(), s.doc.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let url = format!("/Module/{}", url_part(m));
    let body = html! {
        h1 { "Module " (m) }
        (notice.show())
        @if let Some(e) = error_of(&effective) { (message(Some(&e), None)) }
        section.panel {
            (settings_form(&url, &a.csrf, html! {}, &explicit, &defaults_over(&defaults, &eff)))
        }
        (dialup::module_sections(a, m, &url, &all, &notice, kept))
        section.panel {
            h2 { "About these settings" }
            table { tbody { @for (k, d) in &docs { tr { td.mono { (k) } td { (d) } } } } }
            p.muted { "Listener: {Sockets=({Port=N; Address=all|IP; SSL=Yes|No; Restrict=Grant|Deny; Addresses=\"...\";}, ...); MaxPerAddress=N|unlimited;}" }
        }
    };
    frame(a, m, "/Modules", body)
}

/// The "Effective (default)" column of a module: its effective values, keyed like the defaults.
fn defaults_over(defaults: &Dict, effective: &Dict) -> Dict {
    let mut out = defaults.clone();
    for (k, v) in effective {
        out.insert(k.clone(), v.clone());
    }
    out
}

// ------------------------------------------------------------------ TCP Activity Schedule

use crate::dialup::schedule::DAYS;

async fn schedule(State(web): State<Web>, Login(a): Login) -> Response {
    render_schedule(&web, &a, None, Notice::none()).await
}

async fn schedule_post(State(web): State<Web>, Posted(a, form): Posted) -> Response {
    let days: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "days")
        .map(|(_, v)| v.as_str())
        .collect();
    let whens: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "when")
        .map(|(_, v)| v.as_str())
        .collect();
    let pauses: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "pause")
        .map(|(_, v)| v.as_str())
        .collect();
    // A row with an empty When is the table's blank row, or a row the admin cleared: removed.
    let rows: Vec<(String, String, String)> = days
        .iter()
        .zip(&whens)
        .zip(&pauses)
        .filter(|((_, w), _)| !w.trim().is_empty())
        .map(|((d, w), p)| (d.to_string(), w.trim().to_string(), p.trim().to_string()))
        .collect();
    let value = Value::Array(
        rows.iter()
            .map(|(d, w, p)| {
                format::dict([
                    ("Days", s(d)),
                    ("When", s(w)),
                    ("Pause", s(if p.is_empty() { "0" } else { p })),
                ])
            })
            .collect(),
    );
    let r = run(&web, &a, "SetDialupSchedule", vec![value]).await;
    let keep = r.is_err().then_some(rows);
    render_schedule(&web, &a, keep, Notice::from(&r, "Schedule saved.")).await
}

async fn render_schedule(
    web: &Web,
    a: &Admin,
    keep: Option<Vec<(String, String, String)>>,
    notice: Notice,
) -> Response {
    let current = run(web, a, "GetDialupSchedule", vec![]).await;
    let rows = keep.unwrap_or_else(|| match &current {
        Ok(Some(Value::Array(items))) => items
            .iter()
            .map(|i| {
                (
                    i.get_text("Days").unwrap_or_default(),
                    i.get_text("When").unwrap_or_default(),
                    i.get_text("Pause").unwrap_or_default(),
                )
            })
            .collect(),
        _ => Vec::new(),
    });
    let blank = (DAYS[0].to_string(), String::new(), String::new());
    let body = html! {
        h1 { "TCP Activity Schedule" }
        p.muted { "When outgoing mail, ETRN/ATRN wake-ups and RPOP polls may use the link. An empty schedule means no restriction. A period may cross midnight (19:30-07:30). Clear a row's When to remove it." }
        (notice.show())
        section.panel {
            form method="post" action="/Schedule" {
                (csrf_field(&a.csrf))
                table {
                    thead { tr { th { "Day(s) of week" } th { "When (HH:MM-HH:MM)" } th { "Pause (seconds)" } } }
                    tbody {
                        @for (d, w, p) in rows.iter().chain(std::iter::once(&blank)) {
                            tr {
                                td { select name="days" aria-label="days" { @for opt in DAYS { option value=(opt) selected[*opt == d.as_str()] { (opt) } } } }
                                td { input type="text" name="when" value=(w) placeholder="08:00-18:00" aria-label="when"; }
                                td { input type="text" name="pause" value=(p) placeholder="0" aria-label="pause"; }
                            }
                        }
                    }
                }
                p { button type="submit" { "Save schedule" } }
            }
        }
    };
    frame(a, "Schedule", "/Schedule", body)
}

// ------------------------------------------------------------------ queue and logs

async fn queue(State(web): State<Web>, Login(a): Login) -> Response {
    render_queue(&web, &a, Notice::none()).await
}

/// Retry (`RetryQueue id`) or delete one message, release one domain's queue (`ReleaseQueue
/// domain`), or retry everything (`RetryQueue`).
async fn queue_post(State(web): State<Web>, Posted(a, form): Posted) -> Response {
    let id = field(&form, "id").to_string();
    let (r, done) = match field(&form, "action") {
        "delete" => (
            run(&web, &a, "DeleteQueuedMessage", vec![s(&id)]).await,
            format!("Message {id} deleted."),
        ),
        "retry" => (
            run(&web, &a, "RetryQueue", vec![s(&id)]).await,
            format!("Message {id} will be tried now."),
        ),
        "release" => {
            let domain = field(&form, "domain");
            (
                run(&web, &a, "ReleaseQueue", vec![s(domain)]).await,
                format!("The queue of {domain} is released."),
            )
        }
        _ => (
            run(&web, &a, "RetryQueue", vec![]).await,
            "Every deferred recipient will be tried now.".to_string(),
        ),
    };
    render_queue(&web, &a, Notice::from(&r, &done)).await
}

/// Why a domain's mail waits, picked from its messages' `ListQueue` States: a suspension
/// after a failed connection, a hold (Hold Mail for Domains, the TCP Activity Schedule), other
/// deferrals, then the rest.
fn domain_state<'a>(states: &[&'a str]) -> &'a str {
    let rank = |t: &str| {
        if t.contains("suspended until") {
            0
        } else if t.contains("held for") || t.contains("keeps the link closed") {
            1
        } else if t.starts_with("Deferred") {
            2
        } else {
            3
        }
    };
    states.iter().copied().min_by_key(|t| rank(t)).unwrap_or("")
}

async fn render_queue(web: &Web, a: &Admin, notice: Notice) -> Response {
    let list = run(web, a, "ListQueue", vec![]).await;
    let unavailable = matches!(&list, Err(e) if e.0 == cli::UNKNOWN_COMMAND);
    let items = match &list {
        Ok(Some(Value::Array(items))) => items.clone(),
        _ => Vec::new(),
    };
    // Per destination domain of the open recipients: its messages and their States.
    let mut domains: Vec<(String, Vec<String>)> = Vec::new();
    for m in &items {
        let state = m.get_text("State").unwrap_or_default();
        let rcpts = m.get("Recipients").and_then(Value::as_array).unwrap_or(&[]);
        let mut seen = Vec::new();
        for r in rcpts {
            let domain = value_text(r)
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            if domain.is_empty() || seen.contains(&domain) {
                continue;
            }
            seen.push(domain.clone());
            match domains.iter_mut().find(|(d, _)| *d == domain) {
                Some((_, states)) => states.push(state.clone()),
                None => domains.push((domain, vec![state.clone()])),
            }
        }
    }
    domains.sort();
    let cols = [
        "Id",
        "From",
        "Recipients",
        "Size",
        "Arrived",
        "State",
        "NextTry",
    ];
    let body = html! {
        h1 { "Queue" }
        (notice.show())
        @if unavailable {
            (message(Some("The queue commands are not available on this server version."), None))
        } @else {
            @if let Some(e) = error_of(&list) { (message(Some(&e), None)) }
            @if !domains.is_empty() {
                section.panel {
                    h2 { "Domains" }
                    p.muted { "A domain whose connection failed is suspended until its retry time; mail for a domain in Hold Mail for Domains waits for its ETRN or ATRN. Release tries the domain's mail now." }
                    table.domains {
                        thead { tr { th { "Domain" } th { "Messages" } th { "State" } th {} } }
                        tbody {
                            @for (d, states) in &domains {
                                @let refs: Vec<&str> = states.iter().map(String::as_str).collect();
                                tr {
                                    td.mono { (d) }
                                    td { (states.len()) }
                                    td { (domain_state(&refs).strip_prefix("Deferred: ").unwrap_or(domain_state(&refs))) }
                                    td {
                                        form method="post" action="/Queue" {
                                            (csrf_field(&a.csrf))
                                            input type="hidden" name="domain" value=(d);
                                            button.secondary type="submit" name="action" value="release" { "Release" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.panel {
                h2 { "Messages" }
                @if items.is_empty() { p.muted { "The queue is empty." } }
                @else {
                    table.messages {
                        thead { tr { @for c in cols { th { (c) } } th {} } }
                        tbody {
                            @for m in &items {
                                @let id = m.get_text("Id").unwrap_or_default();
                                tr {
                                    @for c in cols { td.mono { (m.get(c).map(value_text).unwrap_or_default()) } }
                                    td {
                                        form method="post" action="/Queue" {
                                            (csrf_field(&a.csrf))
                                            input type="hidden" name="id" value=(id);
                                            button.secondary type="submit" name="action" value="retry" { "Retry" } " "
                                            button.danger type="submit" name="action" value="delete" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form.mt method="post" action="/Queue" {
                    (csrf_field(&a.csrf))
                    button type="submit" name="action" value="retryall" { "Retry all now" }
                }
            }
        }
    };
    frame(a, "Queue", "/Queue", body)
}

#[derive(serde::Deserialize, Default)]
struct LogFilter {
    day: Option<String>,
    from: Option<String>,
    to: Option<String>,
    level: Option<String>,
    tag: Option<String>,
    text: Option<String>,
    live: Option<String>,
}

async fn logs(State(web): State<Web>, Login(a): Login, Query(f): Query<LogFilter>) -> Response {
    let nonempty = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut args = Vec::new();
    for (key, v) in [
        ("DAY", nonempty(&f.day)),
        ("FROM", nonempty(&f.from)),
        ("TO", nonempty(&f.to)),
        ("LEVEL", nonempty(&f.level)),
        ("TAG", nonempty(&f.tag)),
        ("TEXT", nonempty(&f.text)),
    ] {
        if let Some(v) = v {
            args.push(kw(key));
            args.push(s(&v));
        }
    }
    args.push(kw("LAST"));
    args.push(s("300"));
    let records = run(&web, &a, "ReadLog", args).await;
    let live = f.live.as_deref() == Some("1");
    let rows = match &records {
        Ok(Some(Value::Array(r))) => r.clone(),
        _ => Vec::new(),
    };
    let value = |o: &Option<String>| o.clone().unwrap_or_default();
    let body = html! {
        @if live { meta http-equiv="refresh" content="2"; }
        h1 { "Logs" }
        @if let Some(e) = error_of(&records) { (message(Some(&e), None)) }
        section.panel {
            form.inline method="get" action="/Logs" {
                label { "Day" input type="text" name="day" value=(value(&f.day)) placeholder="today (yyyy-mm-dd)"; }
                label { "From" input type="text" name="from" value=(value(&f.from)) placeholder="hh:mm"; }
                label { "To" input type="text" name="to" value=(value(&f.to)) placeholder="hh:mm"; }
                label { "Level up to" select name="level" {
                    @for (n, name) in [("", "all"), ("1", "1 Failures"), ("2", "2 Major"), ("3", "3 Problems"), ("4", "4 Low-Level"), ("5", "5 All Info")] {
                        option value=(n) selected[value(&f.level) == n] { (name) }
                    }
                } }
                label { "Tag" input type="text" name="tag" value=(value(&f.tag)) placeholder="e.g. PWD or SMTPI-12"; }
                label { "Text" input type="text" name="text" value=(value(&f.text)); }
                label { span { input type="checkbox" name="live" value="1" checked[live]; " live" } }
                button type="submit" { "Show" }
            }
        }
        section.panel {
            @if rows.is_empty() { p.muted { "No records." } }
            @else {
                table.log {
                    thead { tr { th { "Time" } th { "Level" } th { "Tag" } th { "Text" } } }
                    tbody {
                        @for r in rows.iter().rev() {
                            @let lvl = r.get_text("Level").unwrap_or_default();
                            tr class={"lvl" (lvl)} {
                                td.mono { (r.get_text("Time").unwrap_or_default()) }
                                td { (lvl) }
                                td.mono { (r.get_text("Tag").unwrap_or_default()) }
                                td.mono { (r.get_text("Text").unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    };
    frame(&a, "Logs", "/Logs", body)
}
