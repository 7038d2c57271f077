//! WebAdmin logins: HTTP Basic (guide.txt:2873-2875) and form sessions, and the CSRF token.
//! WebUser keeps its sessions in the same [`Sessions`] (its id travels in the URL instead of a
//! cookie, guide.txt:14989-15016).
//!
//! A form session is a random id in a cookie, kept in memory with the account, the client
//! address it was made from (a cookie replayed from elsewhere is refused), its CSRF token and
//! the time of its last use. A request with valid Basic credentials is authenticated by itself;
//! its CSRF token is an HMAC of the account name under a key made at start, so forms rendered
//! for a Basic user post back without server-side state.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::cli::{self, Session};
use crate::net::sasl::{AccountId, Failure};

/// Name of the session cookie.
pub const COOKIE: &str = "GatehouseAdmin";
/// Most live form sessions; the oldest are dropped beyond it.
const MAX_SESSIONS: usize = 10_000;

struct WebSession {
    account: AccountId,
    peer: IpAddr,
    csrf: String,
    created: Instant,
    last_used: Instant,
}

/// Logged-in form sessions and the key for Basic users' CSRF tokens.
pub struct Sessions {
    live: Mutex<HashMap<String, WebSession>>,
    key: [u8; 32],
}

impl Default for Sessions {
    fn default() -> Sessions {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Sessions {
            live: Mutex::new(HashMap::new()),
            key,
        }
    }
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Constant-time comparison of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Who a request is from, once logged in.
pub struct Admin {
    /// The CLI session: the account and its rights.
    pub session: Session,
    /// The token every form of this login must send back.
    pub csrf: String,
    /// The form session's id (None for HTTP Basic).
    pub session_id: Option<String>,
}

impl Sessions {
    /// Starts a form session for `account` from `peer`; returns the cookie value.
    pub fn create(&self, account: AccountId, peer: IpAddr) -> String {
        let id = random_token();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        Self::insert(&mut live, id.clone(), account, peer);
        id
    }

    /// Starts a session unless `limit` sessions are live after those idle longer than `idle`
    /// are dropped (WebUser's Sessions Limit, guide.txt:15021-15027); returns its id.
    pub fn try_create(
        &self,
        account: AccountId,
        peer: IpAddr,
        limit: usize,
        idle: Duration,
    ) -> Option<String> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        live.retain(|_, s| now.duration_since(s.last_used) < idle);
        if live.len() >= limit {
            return None;
        }
        let id = random_token();
        Self::insert(&mut live, id.clone(), account, peer);
        Some(id)
    }

    fn insert(
        live: &mut HashMap<String, WebSession>,
        id: String,
        account: AccountId,
        peer: IpAddr,
    ) {
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
        }
        let now = Instant::now();
        live.insert(
            id,
            WebSession {
                account,
                peer,
                csrf: random_token(),
                created: now,
                last_used: now,
            },
        );
    }

    /// Ends a form session.
    pub fn remove(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The account and CSRF token of a live session used from `peer`, refreshing its timer.
    fn lookup(&self, id: &str, peer: IpAddr, timeout: Duration) -> Option<(AccountId, String)> {
        self.lookup_limited(id, peer, timeout, None)
    }

    /// Like `lookup`, also ending a session older than `limit` (WebUser's Session Time Limit,
    /// checked on each request, guide.txt:15046-15052). A session used from another address is
    /// not found (guide.txt:15007-15016).
    pub fn lookup_limited(
        &self,
        id: &str,
        peer: IpAddr,
        idle: Duration,
        limit: Option<Duration>,
    ) -> Option<(AccountId, String)> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        live.retain(|_, s| {
            now.duration_since(s.last_used) < idle
                && limit.is_none_or(|l| now.duration_since(s.created) < l)
        });
        let s = live.get_mut(id)?;
        if s.peer != peer {
            return None;
        }
        s.last_used = now;
        Some((s.account.clone(), s.csrf.clone()))
    }

    /// The CSRF token of a Basic-authenticated account.
    fn basic_csrf(&self, account: &AccountId) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return random_token();
        };
        mac.update(account.to_string().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Authorization: Basic` credentials, if the request carries them.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Why a request is not logged in.
pub enum Denied {
    /// No credentials at all.
    Anonymous,
    /// Credentials were given and refused (the text says why, without telling which part).
    Refused(String),
}

/// Authenticates a request by its session cookie or its Basic credentials.
pub async fn authenticate(
    web: &super::WebAdmin,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<Admin, Denied> {
    if let Some(id) = cookie(headers, COOKIE) {
        if let Some((account, csrf)) = web.sessions.lookup(id, peer, session_timeout(web)) {
            return admin(web, account, csrf, Some(id.to_string()));
        }
    }
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(Denied::Anonymous);
    };
    let account = login(web, &user, &password).await?;
    let csrf = web.sessions.basic_csrf(&account);
    admin(web, account, csrf, None)
}

/// Checks a password login with the shared login policy (lockout, Enabled Services, delay).
pub async fn login(
    web: &super::WebAdmin,
    user: &str,
    password: &[u8],
) -> Result<AccountId, Denied> {
    let result = web.cli.password_login(user, password).await;
    web.cli
        .finish_login(user, None, result)
        .await
        .map_err(|f| match f {
            Failure::Server(e) => Denied::Refused(format!("Login is unavailable: {e}")),
            other => Denied::Refused(other.to_string()),
        })
}

fn admin(
    web: &super::WebAdmin,
    account: AccountId,
    csrf: String,
    session_id: Option<String>,
) -> Result<Admin, Denied> {
    let session = Session::load(&web.cli.store, &account.name, &account.domain)
        .map_err(|e| Denied::Refused(e.0))?;
    Ok(Admin {
        session,
        csrf,
        session_id,
    })
}

fn session_timeout(web: &super::WebAdmin) -> Duration {
    let secs = web
        .cli
        .modules
        .get("HTTPA")
        .map(|m| cli::effective_module_settings(&web.cli, &m))
        .and_then(|d| {
            d.get(b"SessionTimeout".as_slice())
                .and_then(|v| v.as_text())
                .and_then(|t| t.parse::<u64>().ok())
        })
        .unwrap_or(1800);
    Duration::from_secs(secs)
}

/// Whether a posted form's token matches the login's.
pub fn csrf_ok(admin: &Admin, token: Option<&str>) -> bool {
    token.is_some_and(|t| same(t, &admin.csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct() -> AccountId {
        AccountId {
            name: "u1".into(),
            domain: "example.test".into(),
        }
    }

    #[test]
    fn sessions_are_bound_to_the_address_and_limited() {
        let s = Sessions::default();
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let there: IpAddr = "127.0.0.2".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let id = s.try_create(acct(), here, 2, hour).unwrap();
        assert!(id.len() >= 32);
        assert!(s.lookup_limited(&id, there, hour, None).is_none());
        let (who, csrf) = s.lookup_limited(&id, here, hour, None).unwrap();
        assert_eq!(who, acct());
        assert!(!csrf.is_empty());
        // The Sessions Limit refuses a third login.
        assert!(s.try_create(acct(), here, 2, hour).is_some());
        assert!(s.try_create(acct(), here, 2, hour).is_none());
        // The Session Time Limit and the Inactivity Time-Out end a session.
        std::thread::sleep(Duration::from_millis(20));
        assert!(s
            .lookup_limited(&id, here, hour, Some(Duration::from_millis(10)))
            .is_none());
        let id2 = s.try_create(acct(), here, 5, hour).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(s
            .lookup_limited(&id2, here, Duration::from_millis(10), None)
            .is_none());
        s.remove(&id2);
    }
}
