//! The Login page, logout (Bye) and Auto Sign-up (guide.txt:14946-14988, 15066-15073,
//! 8091-8100, 19162-19299).
//!
//! The Host name picks the domain: a domain name or alias opens its login page, an IP address
//! the secondary domain it is dedicated to (`IPAddresses`) or else the main domain, any other name an error page ("does not provide Web Access to this domain",
//! guide.txt:14964-14970). A name without `@` logs into that domain; `user@domain` is always
//! accepted. Logins go through the shared login policy (lockout, Enabled Services `WebMail`).
//!
//! Login CSRF: there is no session before login, so the login form is protected by a
//! double-submit token. `GET /` sets the pre-login cookie `GatehouseLogin` (random, `HttpOnly`,
//! `SameSite=Strict`, `Secure` over TLS) and puts the same value in the form's hidden
//! `logintoken` field; `POST /` without both, equal, is refused. The Sign-up form is guarded
//! the same way. A foreign page can neither read
//! the cookie nor make the browser send it with a cross-site POST.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};

use super::{bare_page, error_page, form, respond, see_other, setting, Csp, User, Web, MODULE};
use crate::cli::SessionRefused;
use crate::format::Value;
use crate::kernel::log::Level;
use crate::modules::http::html::message;
use crate::modules::http::{auth, ConnInfo};
use crate::net::sasl::Failure;
use crate::store::AccountType;

/// The domain a request's Host header names, or `Err(host)` when it names none of ours.
fn domain_of(web: &Web, headers: &HeaderMap) -> Result<String, String> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Strip the port; `[v6]:port` keeps its address.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return Ok(web.cli.store.main_domain());
    }
    // guide.txt:14971-14974: an address shows the secondary domain it is dedicated to
    // (`IPAddresses`), otherwise the main domain.
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(web
            .cli
            .store
            .domain_with_address(ip)
            .unwrap_or_else(|| web.cli.store.main_domain()));
    }
    web.cli
        .store
        .resolve_domain(name)
        .ok_or_else(|| name.to_string())
}

fn no_domain(host: &str) -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        &format!("This server does not provide Web Access to the domain {host}."),
    )
}

/// Whether the domain's Auto Sign-up is on (guide.txt:8091-8100).
fn signup_enabled(web: &Web, domain: &str) -> bool {
    web.cli
        .store
        .domain_effective_settings(domain)
        .ok()
        .and_then(|d| {
            d.get(b"AutoSignup".as_slice())
                .and_then(|v| v.as_text())
                .map(|t| t.eq_ignore_ascii_case("yes"))
        })
        .unwrap_or(false)
}

/// The pre-login cookie holding the login form's token.
const LOGIN_COOKIE: &str = "GatehouseLogin";

/// The login token of this browser: its pre-login cookie when it holds one of ours (so two tabs
/// share it), else a fresh one.
fn login_token(headers: &HeaderMap) -> String {
    auth::cookie(headers, LOGIN_COOKIE)
        .filter(|t| {
            t.len() == 32
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(auth::random_token, str::to_string)
}

/// A login-form response that (re)sets the pre-login cookie to `token`.
fn with_login_cookie(mut r: Response, token: &str, tls: bool) -> Response {
    let secure = if tls { "; Secure" } else { "" };
    let cookie = format!("{LOGIN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Login CSRF: whether the form's hidden `logintoken` repeats the pre-login cookie (double
/// submit).
fn token_posted(headers: &HeaderMap, fields: &[(String, String)]) -> bool {
    let cookie = auth::cookie(headers, LOGIN_COOKIE).unwrap_or("");
    !cookie.is_empty() && auth::same(super::param(fields, "logintoken"), cookie)
}

/// A Login page answer: the form with `token` in its hidden field and in the cookie.
fn login_response(
    status: StatusCode,
    form: (&str, bool, Option<&str>, &str),
    token: &str,
    tls: bool,
) -> Response {
    let (domain, signup, error, user) = form;
    with_login_cookie(
        respond(
            status,
            bare_page("Log in", login_form(domain, signup, error, user, token)),
            Csp::Page,
        ),
        token,
        tls,
    )
}

fn login_form(domain: &str, signup: bool, error: Option<&str>, user: &str, token: &str) -> Markup {
    html! {
        section.panel.login {
            h1 { "Log in to " (domain) }
            (message(error, None))
            form method="post" action="/" {
                input type="hidden" name="logintoken" value=(token);
                label for="username" { "Name" }
                input #username type="text" name="username" value=(user) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
            @if signup {
                p.muted.mt { "No account yet? " a href="/Signup.wssp" { "Sign up" } }
            }
        }
    }
}

/// `GET /`: the Login page of the addressed domain.
pub async fn page(
    State(web): State<Web>,
    Extension(info): Extension<ConnInfo>,
    headers: HeaderMap,
) -> Response {
    match domain_of(&web, &headers) {
        Ok(d) => {
            let signup = signup_enabled(&web, &d);
            let token = login_token(&headers);
            login_response(StatusCode::OK, (&d, signup, None, ""), &token, info.tls)
        }
        Err(host) => no_domain(&host),
    }
}

/// `POST /`: checks the name and password and starts a session (guide.txt:19162-19219).
pub async fn post(
    State(web): State<Web>,
    Extension(info): Extension<ConnInfo>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let domain = match domain_of(&web, &headers) {
        Ok(d) => d,
        Err(host) => return no_domain(&host),
    };
    let fields = form::urlencoded(&body);
    let user = super::param(&fields, "username").trim().to_string();
    let signup = signup_enabled(&web, &domain);
    let token = login_token(&headers);
    if !token_posted(&headers, &fields) {
        web.logger.log(
            Level::Problems,
            MODULE,
            format_args!(
                "login form from {} refused: missing or wrong login token",
                info.peer.ip()
            ),
        );
        let text = "This login form has expired or did not come from this server. Try again.";
        return login_response(
            StatusCode::FORBIDDEN,
            (&domain, signup, Some(text), &user),
            &token,
            info.tls,
        );
    }
    let password = super::param(&fields, "password").to_string();
    let login = if user.contains(['@', '%']) {
        user.clone()
    } else {
        format!("{user}@{domain}")
    };
    let result = web.cli.password_login(&login, password.as_bytes()).await;
    let result = web.cli.finish_login(&login, Some("WebMail"), result).await;
    let id = match result {
        Ok(id) => id,
        Err(f) => {
            let text = match f {
                Failure::Server(e) => format!("Login is unavailable: {e}"),
                other => other.to_string(),
            };
            web.logger.log(
                Level::Major,
                MODULE,
                format_args!("login as {login} from {} refused: {text}", info.peer.ip()),
            );
            return login_response(
                StatusCode::UNAUTHORIZED,
                (&domain, signup, Some(&text), &user),
                &token,
                info.tls,
            );
        }
    };
    // The account's MaxAccountSessions (our extension, `kernel::sessions`) counts WebMail too.
    let registered = match web.cli.open_session(&id, "WebMail", info.peer.ip()).await {
        Ok(g) => g,
        Err(e) => {
            let level = match e {
                SessionRefused::Limit(_) => Level::Major,
                SessionRefused::Server(_) => Level::Failures,
            };
            web.logger
                .log(level, MODULE, format_args!("login as {id} refused: {e}"));
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sessions are open for this account. Log out of one and try again.",
            );
        }
    };
    let (idle, _) = super::timeouts(&web);
    let limit = usize::try_from(setting(&web, "SessionsLimit", 5000)).unwrap_or(usize::MAX);
    // guide.txt:15007-15016: bound to the login address unless the user turned that off.
    let fixed = super::prefs::fixed_address(&web, &id).await;
    let Some(sid) = web
        .sessions
        .try_create(id.clone(), info.peer.ip(), fixed, limit, idle)
    else {
        web.logger.log(
            Level::Problems,
            MODULE,
            format_args!("login as {id} refused: the Sessions Limit ({limit}) is reached"),
        );
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many WebMail sessions are open. Try again later.",
        );
    };
    web.sessions.attach(&sid, registered);
    web.logger.log(
        Level::Major,
        MODULE,
        format_args!("{id} logged in from {}", info.peer.ip()),
    );
    see_other(&format!("/Session/{sid}/Mailboxes.wssp"))
}

/// `Bye.wssp`: ends the session (guide.txt:20056-20070).
pub fn bye(web: &Web, user: &User) -> Response {
    web.sessions.remove(&user.sid);
    web.logger
        .log(Level::Major, MODULE, format_args!("{} logged out", user.id));
    respond(
        StatusCode::OK,
        bare_page(
            "Logged out",
            html! {
                section.panel.login {
                    h1 { "You have logged out" }
                    p { a.button href="/" { "Log in again" } }
                }
            },
        ),
        Csp::Page,
    )
}

fn signup_form(domain: &str, error: Option<&str>, name: &str, real: &str, token: &str) -> Markup {
    html! {
        section.panel.login {
            h1 { "Sign up at " (domain) }
            (message(error, None))
            form method="post" action="/Signup.wssp" {
                input type="hidden" name="logintoken" value=(token);
                label for="username" { "Account name" }
                input #username type="text" name="username" value=(name) required;
                label for="realName" { "Your name" }
                input #realName type="text" name="realName" value=(real);
                label for="password1" { "Password" }
                input #password1 type="password" name="password1" autocomplete="new-password" required;
                label for="password2" { "Password again" }
                input #password2 type="password" name="password2" autocomplete="new-password" required;
                button type="submit" { "Create account" }
            }
        }
    }
}

/// `GET /Signup.wssp`: the Auto Sign-up form, when the domain allows it.
pub async fn signup_page(
    State(web): State<Web>,
    Extension(info): Extension<ConnInfo>,
    headers: HeaderMap,
) -> Response {
    match domain_of(&web, &headers) {
        Ok(d) if signup_enabled(&web, &d) => {
            let token = login_token(&headers);
            with_login_cookie(
                respond(
                    StatusCode::OK,
                    bare_page("Sign up", signup_form(&d, None, "", "", &token)),
                    Csp::Page,
                ),
                &token,
                info.tls,
            )
        }
        Ok(_) => error_page(
            StatusCode::NOT_FOUND,
            "This domain does not allow signing up.",
        ),
        Err(host) => no_domain(&host),
    }
}

/// `POST /Signup.wssp`: creates the account from the domain's Account Template
/// (guide.txt:15066-15073, 19248-19299). No user is logged in, so the module acts for the
/// domain itself, with the same store call `CreateAccount` makes.
pub async fn signup_post(
    State(web): State<Web>,
    Extension(info): Extension<ConnInfo>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let domain = match domain_of(&web, &headers) {
        Ok(d) if signup_enabled(&web, &d) => d,
        Ok(_) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "This domain does not allow signing up.",
            )
        }
        Err(host) => return no_domain(&host),
    };
    let fields = form::urlencoded(&body);
    let name = super::param(&fields, "username").trim().to_string();
    let real = super::param(&fields, "realName").trim().to_string();
    let p1 = super::param(&fields, "password1").to_string();
    let p2 = super::param(&fields, "password2").to_string();
    let token = login_token(&headers);
    let again = |e: &str| {
        with_login_cookie(
            respond(
                StatusCode::BAD_REQUEST,
                bare_page(
                    "Sign up",
                    signup_form(&domain, Some(e), &name, &real, &token),
                ),
                Csp::Page,
            ),
            &token,
            info.tls,
        )
    };
    // The same double-submit token as the login form: a foreign page cannot create accounts
    // through a visitor's browser.
    if !token_posted(&headers, &fields) {
        return again("This form has expired or did not come from this server. Try again.");
    }
    if name.is_empty() || name.contains(['@', '%']) {
        return again("Enter an account name without a domain.");
    }
    if p1.is_empty() || p1 != p2 {
        return again("The two passwords differ, or are empty.");
    }
    let mut settings = crate::format::Dict::new();
    settings.insert(b"Password".to_vec(), Value::str(&p1));
    if !real.is_empty() {
        settings.insert(b"RealName".to_vec(), Value::str(&real));
    }
    let store = web.cli.store.clone();
    let (d, n) = (domain.clone(), name.clone());
    let created = super::blocking(move || {
        store
            .create_account(&d, &n, AccountType::MultiMailbox, settings)
            .map_err(|e| e.to_string())
    })
    .await;
    if let Err(e) = created {
        return again(&e);
    }
    web.logger.log(
        Level::Major,
        MODULE,
        format_args!(
            "auto sign-up: {name}@{domain} created from {}",
            info.peer.ip()
        ),
    );
    let token = login_token(&headers);
    login_response(
        StatusCode::OK,
        (&domain, false, None, &name),
        &token,
        info.tls,
    )
}
