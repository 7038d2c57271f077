//! Personal Web Sites over HTTP on the WebUser port (guide.txt:2953-2961, 9545-9661; spec E
//! §3.1 `/~<account>` row): `GET /~account/path` serves the account's web files
//! (`store::website`), `default.html` for a folder; the `private` folder only to the owner and
//! administrators; `index.html` is the owner's management page (file list, upload, new folder,
//! delete); HTTP `PUT`, `DELETE` and `MOVE` with authentication (guide.txt:9649-9655). HTML
//! files start with the domain's Web Banner Text when the account has Add Web Banner
//! (guide.txt:8087-8089, 8845-8847).
//!
//! Standards: RFC 9110 (methods, `WWW-Authenticate`/`Authorization: Basic` per RFC 7617),
//! RFC 3986 percent-decoding of the path, RFC 4918 §9.9 for `MOVE` and its `Destination`.
//!
//! Security: the URL is untrusted. The path is percent-decoded once, then every segment goes
//! through `store::website::segments` (no `..`, no leading `.`, no control bytes; symbolic links
//! are never followed), so `/~u/../`, `%2e%2e` and `%2f` tricks name nothing. The account part
//! names an account of the Host's domain (or `name@domain`); the site must be enabled (Web
//! Storage not 0, the WebSite service on for the account and its domain, guide.txt:9535-9538).
//! Reading `private/`, the management page, `PUT` and `DELETE` need HTTP Basic credentials of the
//! owner or of an administrator with "All Domains" or the domain's `WebSite` right, checked with
//! the shared login policy (lockout). The site shares WebMail's origin, so every file is served
//! with `Content-Security-Policy: sandbox` (an opaque origin: a user's script cannot reach WebMail
//! or another user's pages through the browser) and `X-Content-Type-Options: nosniff`; the
//! management page allows no script at all and its forms carry a per-account CSRF token.
//!
//! todo: Site Prefix other than `~` (a WebUser setting), prefix-less sites chosen by
//! `LoginPage@host` routing, and `MOVE` with `Overwrite: T` onto an existing name (refused).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use maud::{html, DOCTYPE};
use sha2::Sha256;

use super::ConnInfo;
use crate::cli::{self, CliContext};
use crate::kernel::log::{Level, Logger};
use crate::net::sasl::AccountId;
use crate::store::website::{self, Entry, Limits, Site, WebError};
use crate::store::Object;

/// Largest file served or uploaded over HTTP.
pub const MAX_FILE: usize = 64 * 1024 * 1024;
/// Log tag (the WebUser module's).
const TAG: &str = "HTTPU";
/// The policy of every site file: script may run, but in an opaque origin.
const FILE_CSP: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox";
/// The policy of the management page: no script, no remote anything.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// What serving personal sites needs.
pub struct WebSites {
    /// The command layer (store, logins, rights).
    pub cli: Arc<CliContext>,
    /// The System Log.
    pub logger: Logger,
    /// Key of the management page's CSRF tokens (random per process).
    csrf_key: [u8; 32],
}

impl WebSites {
    /// The service over `cli`.
    pub fn new(cli: Arc<CliContext>, logger: Logger) -> WebSites {
        WebSites {
            cli,
            logger,
            csrf_key: rand::random(),
        }
    }

    /// The management page's CSRF token of an authenticated account for one site.
    fn csrf(&self, who: &AccountId, site: &AccountId) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.csrf_key) else {
            return String::new();
        };
        mac.update(format!("{who}\n{site}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// Puts personal sites in front of `app`: requests for `/~...` are answered here, all others go
/// on to `app` (the WebUser router).
pub fn mount(app: Router, sites: Arc<WebSites>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(sites, intercept))
}

async fn intercept(State(sites): State<Arc<WebSites>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/~") {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map(|i| i.peer.to_string())
        .unwrap_or_default();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let response = serve(&sites, req).await;
    sites.logger.log(
        Level::LowLevel,
        TAG,
        format_args!("{peer} {method} {path} {}", response.status().as_u16()),
    );
    response
}

/// A parsed `/~account/path` request target.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The account part (`name` or `name@domain`), decoded.
    account: String,
    /// The path inside the site, decoded; `None` for `/~account` without the slash.
    path: Option<String>,
}

/// Splits and percent-decodes `/~account[/path]`; `None` for a bad encoding.
fn target(uri_path: &str) -> Option<Target> {
    let rest = uri_path.strip_prefix("/~")?;
    let (account, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    Some(Target {
        account: percent_decode(account)?,
        path: match path {
            Some(p) => Some(percent_decode(p)?),
            None => None,
        },
    })
}

/// RFC 3986 percent-decoding to UTF-8; `None` for a broken escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A plain-text error response.
fn status(code: StatusCode, text: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

fn unauthorized(account: &str) -> Response {
    let mut r = status(StatusCode::UNAUTHORIZED, "authentication required");
    let realm = format!("Basic realm=\"~{}\"", account.replace(['"', '\\'], ""));
    if let Ok(v) = HeaderValue::from_str(&realm) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The account a site URL names: `name@domain`, or `name` in the Host's domain (an address or
/// an unknown name means the main domain), through account aliases.
fn site_owner(cli: &CliContext, account: &str, headers: &HeaderMap) -> Option<AccountId> {
    let (name, domain) = match account.rsplit_once('@') {
        Some((n, d)) => (n.to_string(), cli.store.resolve_domain(d)?),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            let domain = cli
                .store
                .resolve_domain(host)
                .unwrap_or_else(|| cli.store.main_domain());
            (account.to_string(), domain)
        }
    };
    let name = match cli.store.lookup(&domain, &name)? {
        Object::Account(n) => n,
        Object::Alias { account } => account,
        _ => return None,
    };
    Some(AccountId { name, domain })
}

/// Who may manage the site: the owner or an administrator with the `WebSite` right.
async fn manager(sites: &WebSites, owner: &AccountId, headers: &HeaderMap) -> Option<AccountId> {
    let (user, password) = super::auth::basic_credentials(headers)?;
    let result = sites.cli.password_login(&user, &password).await;
    let who = sites.cli.finish_login(&user, None, result).await.ok()?;
    (who == *owner || cli::may_manage_site(&sites.cli, &who, &owner.domain)).then_some(who)
}

async fn serve(sites: &Arc<WebSites>, req: Request) -> Response {
    let Some(t) = target(req.uri().path()) else {
        return status(StatusCode::BAD_REQUEST, "bad URL encoding");
    };
    let Some(owner) = site_owner(&sites.cli, &t.account, req.headers()) else {
        return status(StatusCode::NOT_FOUND, "no such site");
    };
    let Some(path) = t.path else {
        return redirect(&format!("{}/", req.uri().path()));
    };
    let segs = match website::segments(&path) {
        Ok(s) => s.into_iter().map(str::to_string).collect::<Vec<_>>(),
        Err(e) => return status(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let enabled = {
        let settings = sites
            .cli
            .store
            .account_effective_settings(&owner.domain, &owner.name)
            .unwrap_or_default();
        Limits::from_settings(&settings).enabled() && sites.cli.service_enabled(&owner, "WebSite")
    };
    if !enabled {
        return status(StatusCode::NOT_FOUND, "no such site");
    }
    let site = match Site::of(&sites.cli.store, &owner.domain, &owner.name) {
        Ok(s) => s,
        Err(e) => return status(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let seg_refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let is_index = seg_refs.len() == 1 && seg_refs[0].eq_ignore_ascii_case(website::INDEX);
    let needs_auth = is_index
        || website::is_private(&seg_refs)
        || !matches!(*req.method(), Method::GET | Method::HEAD);
    let who = if needs_auth {
        match manager(sites, &owner, req.headers()).await {
            Some(w) => Some(w),
            None => return unauthorized(&owner.name),
        }
    } else {
        None
    };
    let rel = segs.join("/");
    match (req.method().clone(), who) {
        (Method::GET | Method::HEAD, Some(who)) if is_index => {
            let query = req.uri().query().unwrap_or("").to_string();
            manage_page(sites, &site, &owner, &who, &query).await
        }
        (Method::POST, Some(who)) if is_index => manage_post(sites, site, &owner, &who, req).await,
        (Method::GET | Method::HEAD, _) => {
            let banner = banner(sites, &owner);
            get_file(
                site,
                rel,
                path.is_empty() || path.ends_with('/'),
                req.uri().path(),
                banner,
            )
            .await
        }
        (ref m, Some(_)) if m.as_str() == "MOVE" => {
            let Some(to) = destination(req.headers(), &t.account) else {
                return status(
                    StatusCode::BAD_REQUEST,
                    "Destination must be a file of the same site",
                );
            };
            blocking(move || {
                site.rename(&rel, &to)
                    .map(|_| StatusCode::CREATED.into_response())
            })
            .await
        }
        (Method::PUT, Some(_)) => put_file(sites, site, &owner, rel, req).await,
        (Method::DELETE, Some(_)) => {
            blocking(move || {
                site.delete(&rel)
                    .map(|_| StatusCode::NO_CONTENT.into_response())
            })
            .await
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// Runs store work off the async threads; maps its errors to HTTP.
async fn blocking<F>(f: F) -> Response
where
    F: FnOnce() -> Result<Response, WebError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => web_error(e),
        Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

fn web_error(e: WebError) -> Response {
    let code = match e {
        WebError::NotFound | WebError::Name(_) | WebError::Kind(_) => StatusCode::NOT_FOUND,
        WebError::Exists => StatusCode::CONFLICT,
        WebError::Disabled => StatusCode::FORBIDDEN,
        WebError::StorageFull | WebError::TooManyFiles => StatusCode::INSUFFICIENT_STORAGE,
        WebError::Store(_) | WebError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    status(code, &e.to_string())
}

/// `GET`: a file, or a folder's `default.html` (a folder named without its slash is redirected).
async fn get_file(
    site: Site,
    rel: String,
    folder_url: bool,
    uri_path: &str,
    banner: Option<String>,
) -> Response {
    let uri_path = uri_path.to_string();
    blocking(move || {
        let file = match site.stat(&rel)? {
            Some((_, Entry::Folder)) if !folder_url => {
                return Ok(redirect(&format!("{uri_path}/")));
            }
            Some((_, Entry::Folder)) => {
                if rel.is_empty() {
                    website::HOME.to_string()
                } else {
                    format!("{rel}/{}", website::HOME)
                }
            }
            Some((_, Entry::File { size, .. })) if size > MAX_FILE as u64 => {
                return Ok(status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "file too large to serve",
                ));
            }
            Some(_) => rel,
            None => return Err(WebError::NotFound),
        };
        let (mut data, modified) = site.get(&file)?;
        let kind = content_type(&file);
        // guide.txt:8845-8847, 8087-8089: the domain's banner opens every HTML file.
        if let Some(b) = banner.filter(|_| kind == "text/html") {
            data.splice(0..0, b.into_bytes());
        }
        let mut r = Response::new(Body::from(data));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        let date = chrono::DateTime::<chrono::Utc>::from(modified)
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        if let Ok(v) = HeaderValue::from_str(&date) {
            h.insert(header::LAST_MODIFIED, v);
        }
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(FILE_CSP),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        Ok(r)
    })
    .await
}

/// `PUT`: stores the body as the file (guide.txt:9649-9655).
async fn put_file(
    sites: &WebSites,
    site: Site,
    owner: &AccountId,
    rel: String,
    req: Request,
) -> Response {
    let limits = limits(sites, owner);
    let cap = limits
        .max_size
        .map_or(MAX_FILE, |m| (m as usize).min(MAX_FILE));
    // Refuse a declared oversize body before reading it (and before `100 Continue`).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "Web Storage limit exceeded");
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), cap).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "Web Storage limit exceeded");
    };
    blocking(move || {
        site.put(&rel, &body, limits)
            .map(|_| StatusCode::CREATED.into_response())
    })
    .await
}

fn limits(sites: &WebSites, owner: &AccountId) -> Limits {
    Limits::from_settings(
        &sites
            .cli
            .store
            .account_effective_settings(&owner.domain, &owner.name)
            .unwrap_or_default(),
    )
}

/// The domain's Web Banner Text when the owner's `AddWebBanner` is on and the text is not empty.
fn banner(sites: &WebSites, owner: &AccountId) -> Option<String> {
    let store = &sites.cli.store;
    let account = store
        .account_effective_settings(&owner.domain, &owner.name)
        .ok()?;
    let on = account
        .get(b"AddWebBanner".as_slice())
        .and_then(|v| v.as_text())
        .is_some_and(|v| v.eq_ignore_ascii_case("YES"));
    let domain = store.domain_effective_settings(&owner.domain).ok()?;
    let text = domain
        .get(b"WebBanner".as_slice())
        .and_then(|v| v.as_text())?
        .into_owned();
    (on && !text.is_empty()).then_some(text)
}

/// The site path of a `MOVE` request's `Destination` (RFC 4918 §10.3: an absolute URL or an
/// absolute path), which must be in the same site.
fn destination(headers: &HeaderMap, account: &str) -> Option<String> {
    let d = headers.get("destination")?.to_str().ok()?;
    let path = match d.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/')?..],
        None => d,
    };
    let t = target(path)?;
    (t.account == account).then_some(t.path?)
}

/// The content type of a file name by its extension.
fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "txt" => "text/plain",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "csv" => "text/csv",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

// ------------------------------------------------------------------ management page

/// The value of `key` in a query string or form body, decoded (`+` is a space).
fn form_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(&v.replace('+', " ")))?
    })
}

/// `index.html`: the folder's files with sizes and dates, totals and limits, and forms to upload,
/// create a folder and delete marked names (guide.txt:9612-9640).
async fn manage_page(
    sites: &WebSites,
    site: &Site,
    owner: &AccountId,
    who: &AccountId,
    query: &str,
) -> Response {
    let sub = form_value(query, "SubDir").unwrap_or_default();
    let message = form_value(query, "Message");
    let token = sites.csrf(who, owner);
    let limits = limits(sites, owner);
    let site = site.clone();
    let sub2 = sub.clone();
    let listed = tokio::task::spawn_blocking(move || -> Result<_, WebError> {
        Ok((site.list(&sub2)?, site.totals()?))
    })
    .await;
    let (entries, totals) = match listed {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return web_error(e),
        Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let base = format!("/~{}", owner_url(owner));
    let folder_size: u64 = entries
        .iter()
        .map(|(_, e)| match e {
            Entry::File { size, .. } => *size,
            Entry::Folder => 0,
        })
        .sum();
    let limit = |v: Option<u64>| v.map_or("Unlimited".to_string(), |n| n.to_string());
    let up = sub
        .rsplit_once('/')
        .map_or(String::new(), |(p, _)| p.to_string());
    let page = html! {
        (DOCTYPE)
        html { head { meta charset="utf-8"; title { "Web Site of " (owner) } }
        body {
            h1 { "Web Site of " (owner) }
            @if let Some(m) = &message { p { strong { (m) } } }
            @if !sub.is_empty() {
                p { "Subdirectory " (sub) " " a href={ (base) "/index.html?SubDir=" (url_encode(&up)) } { "UP" } }
            }
            form method="post" action={ (base) "/index.html" } enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="SubDir" value=(sub);
                table border="1" cellpadding="3" {
                    tr { th { "Marker" } th { "File Name" } th { "Size" } th { "Modified" } }
                    @for (name, entry) in &entries {
                        @let rel = if sub.is_empty() { name.clone() } else { format!("{sub}/{name}") };
                        tr {
                            td { input type="checkbox" name="Mark" value=(rel); }
                            @match entry {
                                Entry::Folder => {
                                    td { a href={ (base) "/index.html?SubDir=" (url_encode(&rel)) } { (name) } }
                                    td { "-->" } td {}
                                }
                                Entry::File { size, modified } => {
                                    td { a href={ (base) "/" (path_encode(&rel)) } { (name) } }
                                    td { (size) }
                                    td { (cli::acap_time(*modified)) }
                                }
                            }
                        }
                    }
                    tr { td {} td { "This Folder:" } td { (entries.len()) } td { (folder_size) } }
                    tr { td {} td { "Totals:" } td { (totals.count) } td { (totals.size) } }
                    tr { td {} td { "Limits:" } td { (limit(limits.max_files)) } td { (limit(limits.max_size)) } }
                }
                p { input type="file" name="File"; " " button type="submit" name="Op" value="Upload" { "Upload File" } }
                p { button type="submit" name="Op" value="Delete" { "Delete Marked" } }
                p { input type="text" name="Folder"; " " button type="submit" name="Op" value="Folder" { "Create Folder" } }
            }
        } }
    };
    let mut r = page.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The management form's actions: Upload, Delete (marked names), Folder (create).
async fn manage_post(
    sites: &WebSites,
    site: Site,
    owner: &AccountId,
    who: &AccountId,
    req: Request,
) -> Response {
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| {
            ct.split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
        })
        .map(|b| b.trim_matches('"').to_string());
    let Some(boundary) = boundary else {
        return status(StatusCode::BAD_REQUEST, "multipart/form-data expected");
    };
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_FILE + 64 * 1024).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "upload too large");
    };
    let fields = multipart(&body, &boundary);
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
    };
    if !field("csrf").is_some_and(|t| super::auth::same(&t, &sites.csrf(who, owner))) {
        return status(StatusCode::FORBIDDEN, "the form is stale: reload the page");
    }
    let sub = field("SubDir").unwrap_or_default();
    let join = |name: &str| {
        if sub.is_empty() {
            name.to_string()
        } else {
            format!("{sub}/{name}")
        }
    };
    let limits = limits(sites, owner);
    let op = field("Op").unwrap_or_default();
    let result: Result<(), WebError> = match op.as_str() {
        "Upload" => match fields
            .iter()
            .find(|f| f.name == "File" && f.filename.is_some())
        {
            Some(f) => {
                // Browsers may send a full client path: keep its last component only.
                let fname = f.filename.clone().unwrap_or_default();
                let base = fname.rsplit(['/', '\\']).next().unwrap_or("").to_string();
                let (rel, data, site) = (join(&base), f.data.clone(), site.clone());
                run(move || site.put(&rel, &data, limits)).await
            }
            None => Err(WebError::Name("no file chosen")),
        },
        "Delete" => {
            let marked: Vec<String> = fields
                .iter()
                .filter(|f| f.name == "Mark")
                .map(|f| String::from_utf8_lossy(&f.data).into_owned())
                .collect();
            let site = site.clone();
            run(move || marked.iter().try_for_each(|m| site.delete(m))).await
        }
        "Folder" => {
            let rel = join(field("Folder").unwrap_or_default().trim());
            let site = site.clone();
            run(move || site.make_folder(&rel, limits)).await
        }
        _ => Err(WebError::Name("unknown operation")),
    };
    let message = match result {
        Ok(()) => "Done".to_string(),
        Err(e) => e.to_string(),
    };
    redirect_see_other(&format!(
        "/~{}/index.html?SubDir={}&Message={}",
        owner_url(owner),
        url_encode(&sub),
        url_encode(&message)
    ))
}

async fn run<F>(f: F) -> Result<(), WebError>
where
    F: FnOnce() -> Result<(), WebError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(WebError::Io("internal error".into())))
}

fn redirect_see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `name@domain` of a site owner, for URLs.
fn owner_url(owner: &AccountId) -> String {
    url_encode(&owner.to_string())
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Percent-encodes each segment of a path, keeping the slashes.
fn path_encode(s: &str) -> String {
    s.split('/').map(url_encode).collect::<Vec<_>>().join("/")
}

/// One part of a `multipart/form-data` body (RFC 7578).
struct Field {
    name: String,
    filename: Option<String>,
    data: Vec<u8>,
}

/// Splits a `multipart/form-data` body; parts without a name are skipped.
fn multipart(body: &[u8], boundary: &str) -> Vec<Field> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut out = Vec::new();
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(p) = find(&body[i..], d) {
        starts.push(i + p);
        i += p + d.len();
    }
    for w in starts.windows(2) {
        let part = &body[w[0] + d.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(hend) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let headers = String::from_utf8_lossy(&part[..hend]);
        let data = part[hend + 4..].to_vec();
        let mut name = None;
        let mut filename = None;
        for line in headers.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                continue;
            }
            for p in v.split(';').map(str::trim) {
                if let Some(n) = p.strip_prefix("name=") {
                    name = Some(n.trim_matches('"').to_string());
                } else if let Some(f) = p.strip_prefix("filename=") {
                    filename = Some(f.trim_matches('"').to_string());
                }
            }
        }
        if let Some(name) = name {
            out.push(Field {
                name,
                filename,
                data,
            });
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_decode_once() {
        assert_eq!(
            target("/~joe/a%20b.html"),
            Some(Target {
                account: "joe".into(),
                path: Some("a b.html".into())
            })
        );
        assert_eq!(
            target("/~joe"),
            Some(Target {
                account: "joe".into(),
                path: None
            })
        );
        assert_eq!(target("/~joe/%zz"), None);
        assert_eq!(target("/~joe/%ff"), None);
        // Decoded traversal is still traversal, and is refused by the site's path check.
        let t = target("/~joe/%2e%2e/%2e%2e/etc/passwd").and_then(|t| t.path);
        assert_eq!(t.as_deref(), Some("../../etc/passwd"));
        assert!(website::segments("../../etc/passwd").is_err());
        let t = target("/~joe/a%2f..%2f..%2fx").and_then(|t| t.path);
        assert!(website::segments(t.as_deref().unwrap_or("")).is_err());
    }

    #[test]
    fn move_destination_stays_in_the_site() {
        let mut h = HeaderMap::new();
        let mut dest = |v: &'static str| {
            h.insert("destination", HeaderValue::from_static(v));
            destination(&h, "joe")
        };
        assert_eq!(
            dest("http://host:8100/~joe/b%20c.txt").as_deref(),
            Some("b c.txt")
        );
        assert_eq!(dest("/~joe/new.txt").as_deref(), Some("new.txt"));
        assert_eq!(dest("http://host/~ann/x"), None);
        assert_eq!(dest("http://host/~joe"), None);
        assert_eq!(dest("http://host"), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("default.html"), "text/html");
        assert_eq!(content_type("X.PNG"), "image/png");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn multipart_fields() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n--XX\r\nContent-Disposition: form-data; name=\"File\"; filename=\"C:\\\\dir\\\\a.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XX--\r\n";
        let f = multipart(body, "XX");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "csrf");
        assert_eq!(f[0].data, b"tok");
        assert_eq!(f[1].data, b"line1\r\nline2");
        assert!(f[1].filename.is_some());
    }

    #[test]
    fn form_values_decode() {
        assert_eq!(
            form_value("SubDir=a%2Fb&Message=Done+ok", "SubDir").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            form_value("SubDir=a%2Fb&Message=Done+ok", "Message").as_deref(),
            Some("Done ok")
        );
        assert_eq!(form_value("x", "SubDir"), None);
    }
}
