//! The HTTP Admin module: WebAdmin, administration from a browser (guide.txt:2846-3021,
//! 2287-2336, 2631-2746; spec E §1, spec A §12).
//!
//! Listens on 8010 and 9010 (TLS) by default. Every page acts through the CLI command layer
//! in-process (`cli::execute`), so WebAdmin can do exactly what the CLI allows the logged-in
//! account to do, with the same rights checks and the same error texts; there is no second
//! code path that changes anything.
//!
//! Security: requests are untrusted. Login with HTTP Basic (as the guide) or a login form;
//! form sessions live in memory, bound to the client address, in a cookie that is HttpOnly,
//! SameSite=Strict and Secure on TLS. Every POST carries a CSRF token tied to the session (or,
//! for Basic authentication, to the account) and is refused without it. Request bodies are
//! capped. Host names, paths and form fields only ever become CLI arguments, quoted by the data
//! format's serializer, never file names.
//!
//! todo: the guide's Host-name routing (`LoginPage@host` through the Router) and per-domain
//! WebAdmin customisation files.

mod auth;
mod html;
mod pages;
pub mod sanitize;
pub mod website;
pub mod webuser;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;

use crate::cli::{self, CliContext};
use crate::kernel::log::{Level, Logger};
use crate::net::listener::{Connection, Handler};
use crate::store::settings::SettingDecl;

pub use auth::Sessions;

/// Largest request body accepted (a Router table or certificate fits easily).
pub const MAX_BODY: usize = 1024 * 1024;

/// Where a request came from, put into each request's extensions by [`handler`].
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// What every WebAdmin page needs.
pub struct WebAdmin {
    /// The command layer.
    pub cli: Arc<CliContext>,
    /// The System Log (tag `HTTPA`).
    pub logger: Logger,
    /// Logged-in form sessions.
    pub sessions: Sessions,
}

/// The module's settings declaration for `GetModule HTTPA` (guide.txt:2964-2990).
pub fn module_decl() -> cli::ModuleDecl {
    cli::ModuleDecl {
        name: "HTTPA".into(),
        settings: vec![
            SettingDecl {
                key: "LogLevel",
                default: "2",
                doc: "Log: what WebAdmin records in the System Log (tag HTTPA), 0-5",
            },
            SettingDecl {
                key: "Channels",
                default: "20",
                doc: "Channels: most simultaneous WebAdmin connections (browsers open several; at least 5)",
            },
            SettingDecl {
                key: "SessionTimeout",
                default: "1800",
                doc: "seconds of inactivity after which a WebAdmin login session ends",
            },
        ],
        validate: None,
        changed: None,
    }
}

/// The listener's handler: HTTP/1.1 with keep-alive over each accepted connection.
pub fn handler(web: Arc<WebAdmin>) -> Handler {
    serve(pages::router(web.clone()), web.logger.clone(), "HTTPA")
}

/// Serves `app` over each accepted connection (HTTP/1.1 with keep-alive), logging under `tag`.
/// WebAdmin and WebUser share it.
fn serve(app: axum::Router, logger: Logger, tag: &'static str) -> Handler {
    Arc::new(move |conn: Connection| {
        let app = app.clone();
        let logger = logger.clone();
        Box::pin(async move {
            let info = ConnInfo {
                peer: conn.peer,
                tls: conn.tls,
            };
            let service = app.layer(axum::Extension(info));
            let result = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(conn.stream), TowerToHyperService::new(service))
                .await;
            if let Err(e) = result {
                logger.log(
                    Level::LowLevel,
                    tag,
                    format_args!("connection from {} ended: {e}", info.peer),
                );
            }
        })
    })
}
