//! Server-side authentication shared by the PWD, SMTP, POP and IMAP modules: the SASL mechanisms
//! PLAIN, LOGIN and CRAM-MD5 as a step machine, the APOP digest check, and the failed-login counter.
//!
//! Standards: RFC 4616 (PLAIN), draft-murchison-sasl-login (LOGIN), RFC 2195 (CRAM-MD5), RFC 1939 §7
//! (APOP). Guide: authentication methods guide.txt:3683-3716, account-name harvesting and password
//! attacks guide.txt:3935-3964 (spec A §15.1, §15.4, §15.5).
//!
//! Framing is the caller's: [`Exchange::step`] takes the client's bytes after base64 decoding and
//! [`Step::Challenge`] holds raw bytes the caller base64-encodes (see [`decode_response`] and
//! [`encode_challenge`] for the `*` cancel and `=` empty-response conventions). Credentials are
//! checked through the [`Credentials`] trait, so this module never touches files.
//!
//! Security: every byte here comes from an unauthenticated peer. Passwords and client responses
//! are held in [`Secret`], whose `Debug` prints nothing of the value. Digests are compared in
//! constant time. A failure never says whether the account exists (guide.txt:3944-3950); callers
//! show [`INCORRECT_LOGIN`] for every [`Failure::BadCredentials`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// The one message shown for an unknown account and for a wrong password (guide.txt:3946-3950).
pub const INCORRECT_LOGIN: &str = "Incorrect Account Name or Password";

/// The mechanisms offered, in the order servers should advertise them.
pub const MECHANISMS: [&str; 3] = ["CRAM-MD5", "PLAIN", "LOGIN"];

/// Longest client response a mechanism accepts (a name and a password with room to spare).
const MAX_RESPONSE: usize = 4096;

/// Bytes that must not leak into logs or debug output (passwords, SASL responses).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    /// The bytes, for the one place that must use them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret")
    }
}

/// An authenticated account: its name and domain as the store spells them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId {
    /// Account name without the domain.
    pub name: String,
    /// The account's domain (the real domain, not an alias).
    pub domain: String,
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.domain)
    }
}

/// A server-side problem while checking credentials (disk, corrupt settings); not the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Where passwords are checked; the store implements it. Login names are as the client sent them
/// (`name`, `name@domain`, `name%domain`, an alias); the implementation resolves them.
pub trait Credentials: Send + Sync {
    /// The account if `login` names one and `password` is its password; `None` otherwise.
    fn check_password(
        &self,
        login: &str,
        password: &Secret,
    ) -> Result<Option<AccountId>, AuthError>;
    /// The account and its clear password when stored recoverably (for CRAM-MD5 and APOP); `None`
    /// when the login names no account or its password is stored one-way.
    fn recoverable_password(&self, login: &str) -> Result<Option<(AccountId, Secret)>, AuthError>;
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The mechanism name is not one of [`MECHANISMS`].
    UnknownMechanism,
    /// The client's bytes break the mechanism's grammar.
    Malformed,
    /// The client sent `*` (RFC 4954 §4 and its IMAP/POP equivalents).
    Cancelled,
    /// Unknown account or wrong password; shown to the client as [`INCORRECT_LOGIN`].
    BadCredentials(String),
    /// The credentials are right but the authorization identity names someone else.
    NotAuthorized,
    /// The credentials could not be checked.
    Server(AuthError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::UnknownMechanism => f.write_str("Unsupported authentication mechanism"),
            Failure::Malformed => f.write_str("Malformed authentication data"),
            Failure::Cancelled => f.write_str("Authentication cancelled"),
            Failure::BadCredentials(_) => f.write_str(INCORRECT_LOGIN),
            Failure::NotAuthorized => f.write_str("Not authorized to act as that user"),
            Failure::Server(_) => f.write_str("Authentication is temporarily unavailable"),
        }
    }
}

/// What the server does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes (base64-encoded by the caller) and wait for the client's answer.
    Challenge(Vec<u8>),
    /// Authenticated.
    Done(AccountId),
    /// Failed; the exchange is over. `BadCredentials` carries the login name for the lockout counter.
    Failed(Failure),
}

enum State {
    /// PLAIN waiting for its one message (no initial response was given).
    Plain,
    /// LOGIN waiting for the user name.
    LoginUser,
    /// LOGIN waiting for the password of this user.
    LoginPassword(String),
    /// CRAM-MD5 waiting for `user digest` to this challenge.
    CramMd5(Vec<u8>),
    /// The exchange is over; further steps fail.
    Finished,
}

/// One SASL exchange in progress.
pub struct Exchange {
    state: State,
}

impl Exchange {
    /// Starts mechanism `name` (case-insensitive) with an optional initial response; `host` goes
    /// into the CRAM-MD5 challenge.
    pub fn start(
        name: &str,
        initial: Option<&[u8]>,
        host: &str,
        creds: &dyn Credentials,
    ) -> (Exchange, Step) {
        let mut ex = Exchange {
            state: State::Finished,
        };
        let step = match name.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                ex.state = State::Plain;
                match initial {
                    Some(bytes) => ex.step(bytes, creds),
                    // RFC 4616 §2: the server sends an empty challenge when there is no initial response.
                    None => Step::Challenge(Vec::new()),
                }
            }
            "LOGIN" => {
                ex.state = State::LoginUser;
                match initial {
                    Some(bytes) => ex.step(bytes, creds),
                    None => Step::Challenge(b"Username:".to_vec()),
                }
            }
            "CRAM-MD5" => match initial {
                // RFC 2195 §2: the server speaks first; an initial response is a protocol error.
                Some(_) => Step::Failed(Failure::Malformed),
                None => {
                    let challenge = new_token(host).into_bytes();
                    ex.state = State::CramMd5(challenge.clone());
                    Step::Challenge(challenge)
                }
            },
            _ => Step::Failed(Failure::UnknownMechanism),
        };
        (ex, step)
    }

    /// Feeds the client's (decoded) answer to the last challenge.
    pub fn step(&mut self, client: &[u8], creds: &dyn Credentials) -> Step {
        let state = std::mem::replace(&mut self.state, State::Finished);
        if client.len() > MAX_RESPONSE {
            return Step::Failed(Failure::Malformed);
        }
        match state {
            State::Plain => plain(client, creds),
            State::LoginUser => match std::str::from_utf8(client) {
                Ok(user) if !user.is_empty() => {
                    self.state = State::LoginPassword(user.to_string());
                    Step::Challenge(b"Password:".to_vec())
                }
                _ => Step::Failed(Failure::Malformed),
            },
            State::LoginPassword(user) => check(creds, &user, &Secret::new(client)),
            State::CramMd5(challenge) => cram_md5(&challenge, client, creds),
            State::Finished => Step::Failed(Failure::Malformed),
        }
    }
}

fn check(creds: &dyn Credentials, login: &str, password: &Secret) -> Step {
    match creds.check_password(login, password) {
        Ok(Some(id)) => Step::Done(id),
        Ok(None) => Step::Failed(Failure::BadCredentials(login.to_string())),
        Err(e) => Step::Failed(Failure::Server(e)),
    }
}

/// RFC 4616 §2: `message = [authzid] UTF8NUL authcid UTF8NUL passwd`.
fn plain(message: &[u8], creds: &dyn Credentials) -> Step {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed(Failure::Malformed);
    };
    let (Ok(authzid), Ok(authcid)) = (std::str::from_utf8(authzid), std::str::from_utf8(authcid))
    else {
        return Step::Failed(Failure::Malformed);
    };
    if authcid.is_empty() {
        return Step::Failed(Failure::Malformed);
    }
    match check(creds, authcid, &Secret::new(passwd)) {
        // RFC 4616 §2: acting as another identity needs authorization; we grant none, so the
        // authzid must name the authenticated account itself.
        Step::Done(id) if !authzid.is_empty() && !same_identity(authzid, authcid, &id) => {
            Step::Failed(Failure::NotAuthorized)
        }
        other => other,
    }
}

fn same_identity(authzid: &str, authcid: &str, id: &AccountId) -> bool {
    authzid.eq_ignore_ascii_case(authcid)
        || authzid.eq_ignore_ascii_case(&id.to_string())
        || authzid.eq_ignore_ascii_case(&id.name)
}

/// RFC 2195 §2: the client answers `user SP hex(HMAC-MD5(secret, challenge))`.
fn cram_md5(challenge: &[u8], response: &[u8], creds: &dyn Credentials) -> Step {
    let Some(space) = response.iter().rposition(|&b| b == b' ') else {
        return Step::Failed(Failure::Malformed);
    };
    let (Ok(user), Ok(digest)) = (
        std::str::from_utf8(&response[..space]),
        std::str::from_utf8(&response[space + 1..]),
    ) else {
        return Step::Failed(Failure::Malformed);
    };
    if user.is_empty() || digest.len() != 32 {
        return Step::Failed(Failure::Malformed);
    }
    match creds.recoverable_password(user) {
        Ok(Some((id, secret))) => {
            let Ok(mut mac) = Hmac::<Md5>::new_from_slice(secret.expose()) else {
                return Step::Failed(Failure::BadCredentials(user.to_string()));
            };
            mac.update(challenge);
            let expected = hex(&mac.finalize().into_bytes());
            if constant_time_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes()) {
                Step::Done(id)
            } else {
                Step::Failed(Failure::BadCredentials(user.to_string()))
            }
        }
        Ok(None) => Step::Failed(Failure::BadCredentials(user.to_string())),
        Err(e) => Step::Failed(Failure::Server(e)),
    }
}

/// RFC 1939 §7 APOP: true-case check of `digest = hex(MD5(token + password))`, where `token` is
/// the `<...@host>` string from the greeting. Returns the account on success.
pub fn apop_check(
    creds: &dyn Credentials,
    login: &str,
    token: &str,
    digest: &str,
) -> Result<Option<AccountId>, AuthError> {
    if digest.len() != 32 {
        return Ok(None);
    }
    let Some((id, secret)) = creds.recoverable_password(login)? else {
        return Ok(None);
    };
    let mut md5 = Md5::new();
    md5.update(token.as_bytes());
    md5.update(secret.expose());
    let expected = hex(&md5.finalize());
    Ok(constant_time_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes()).then_some(id))
}

/// A fresh `<random.seconds@host>` token, unique per connection (APOP greeting, CRAM-MD5 challenge).
pub fn new_token(host: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("<{}.{}@{}>", rand::random::<u64>(), secs, host)
}

/// Decodes one client SASL line: `Ok(None)` is the `*` cancel, `=` is an empty response
/// (RFC 4954 §4), anything else must be base64.
pub fn decode_response(line: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
    let line = line.trim_ascii();
    match line {
        b"*" => Ok(None),
        b"=" => Ok(Some(Vec::new())),
        _ => base64::engine::general_purpose::STANDARD
            .decode(line)
            .map(Some)
            .map_err(|_| Failure::Malformed),
    }
}

/// Base64 of a challenge, as sent after `+ ` or `334 `.
pub fn encode_challenge(challenge: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(challenge)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Most login names the failed-login counter remembers; beyond it the oldest are dropped, so a
/// flood of random names cannot grow memory without bound.
const MAX_TRACKED: usize = 10_000;

/// Counts failed logins per login name and suspends a name after `limit` failures within
/// `period`, for `period` after the last one (guide.txt:3956-3964: "re-enabled after the same
/// period"). One instance is shared by every module so all login types are suspended together.
pub struct FailedLogins {
    inner: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Default for FailedLogins {
    fn default() -> Self {
        FailedLogins::new()
    }
}

impl FailedLogins {
    /// An empty counter.
    pub fn new() -> FailedLogins {
        FailedLogins {
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn key(login: &str) -> String {
        login.to_ascii_lowercase()
    }

    /// Whether `login` is suspended now. A `limit` of 0 disables suspension.
    pub fn is_locked(&self, login: &str, limit: usize, period: Duration, now: Instant) -> bool {
        if limit == 0 {
            return false;
        }
        let Ok(map) = self.inner.lock() else {
            return false;
        };
        map.get(&Self::key(login)).is_some_and(|times| {
            times.len() >= limit
                && times
                    .back()
                    .is_some_and(|&t| now.duration_since(t) < period)
        })
    }

    /// Records one failure of `login`.
    pub fn record_failure(&self, login: &str, limit: usize, period: Duration, now: Instant) {
        let Ok(mut map) = self.inner.lock() else {
            return;
        };
        if map.len() >= MAX_TRACKED {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|&t| now.duration_since(t) < period)
            });
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let times = map.entry(Self::key(login)).or_default();
        times.push_back(now);
        while times.len() > limit.max(1)
            || times
                .front()
                .is_some_and(|&t| now.duration_since(t) >= period)
        {
            times.pop_front();
        }
    }

    /// Forgets the failures of `login` after a successful login.
    pub fn clear(&self, login: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(&Self::key(login));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tim/tanstaaftanstaaf (RFC 2195 and RFC 4616 examples) and Kurt/xipj3plmq (RFC 4616).
    struct Fixed;

    impl Fixed {
        fn password(login: &str) -> Option<(AccountId, &'static [u8])> {
            let (name, pw): (&str, &[u8]) = match login.to_ascii_lowercase().as_str() {
                "tim" | "tim@example.com" => ("tim", b"tanstaaftanstaaf"),
                "kurt" => ("kurt", b"xipj3plmq"),
                _ => return None,
            };
            Some((
                AccountId {
                    name: name.into(),
                    domain: "example.com".into(),
                },
                pw,
            ))
        }
    }

    impl Credentials for Fixed {
        fn check_password(&self, login: &str, pw: &Secret) -> Result<Option<AccountId>, AuthError> {
            Ok(Fixed::password(login).and_then(|(id, p)| (p == pw.expose()).then_some(id)))
        }
        fn recoverable_password(
            &self,
            login: &str,
        ) -> Result<Option<(AccountId, Secret)>, AuthError> {
            Ok(Fixed::password(login).map(|(id, p)| (id, Secret::new(p))))
        }
    }

    fn tim() -> AccountId {
        AccountId {
            name: "tim".into(),
            domain: "example.com".into(),
        }
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>".to_vec();
        let mut ex = Exchange {
            state: State::CramMd5(challenge),
        };
        assert_eq!(
            ex.step(b"tim b913a602c7eda7a495b4e6e7334d3890", &Fixed),
            Step::Done(tim())
        );
        // RFC 2195 §2 gives the response base64-encoded too.
        let decoded = decode_response(b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw").unwrap();
        assert_eq!(
            decoded.as_deref(),
            Some(&b"tim b913a602c7eda7a495b4e6e7334d3890"[..])
        );
        let mut ex = Exchange {
            state: State::CramMd5(b"<1896.697170952@postoffice.reston.mci.net>".to_vec()),
        };
        assert!(matches!(
            ex.step(b"tim b913a602c7eda7a495b4e6e7334d3891", &Fixed),
            Step::Failed(Failure::BadCredentials(_))
        ));
    }

    #[test]
    fn cram_md5_start_sends_token_and_refuses_initial_response() {
        let (_, step) = Exchange::start("cram-md5", None, "mail.example.com", &Fixed);
        let Step::Challenge(c) = step else {
            panic!("challenge expected")
        };
        assert!(c.starts_with(b"<") && c.ends_with(b"@mail.example.com>"));
        let (_, step) = Exchange::start("CRAM-MD5", Some(b"x"), "h", &Fixed);
        assert_eq!(step, Step::Failed(Failure::Malformed));
    }

    #[test]
    fn plain_rfc4616_examples() {
        let (_, step) = Exchange::start("PLAIN", Some(b"\0tim\0tanstaaftanstaaf"), "h", &Fixed);
        assert_eq!(step, Step::Done(tim()));
        // authzid Ursel, authcid Kurt: right password, but acting as Ursel is not granted.
        let (_, step) = Exchange::start("PLAIN", Some(b"Ursel\0Kurt\0xipj3plmq"), "h", &Fixed);
        assert_eq!(step, Step::Failed(Failure::NotAuthorized));
        // authzid equal to the authenticated identity is fine.
        let (_, step) = Exchange::start("PLAIN", Some(b"Kurt\0Kurt\0xipj3plmq"), "h", &Fixed);
        assert!(matches!(step, Step::Done(_)));
        let (_, step) = Exchange::start("PLAIN", Some(b"\0tim\0wrong"), "h", &Fixed);
        assert_eq!(step, Step::Failed(Failure::BadCredentials("tim".into())));
    }

    #[test]
    fn plain_without_initial_response_and_malformed() {
        let (mut ex, step) = Exchange::start("plain", None, "h", &Fixed);
        assert_eq!(step, Step::Challenge(Vec::new()));
        assert_eq!(
            ex.step(b"\0tim\0tanstaaftanstaaf", &Fixed),
            Step::Done(tim())
        );
        for bad in [
            &b"tim"[..],
            b"\0tim",
            b"a\0b\0c\0d",
            b"\0\0pw",
            b"\0\xff\0pw",
        ] {
            let (_, step) = Exchange::start("PLAIN", Some(bad), "h", &Fixed);
            assert_eq!(step, Step::Failed(Failure::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn login_mechanism() {
        let (mut ex, step) = Exchange::start("LOGIN", None, "h", &Fixed);
        assert_eq!(step, Step::Challenge(b"Username:".to_vec()));
        assert_eq!(
            ex.step(b"tim", &Fixed),
            Step::Challenge(b"Password:".to_vec())
        );
        assert_eq!(ex.step(b"tanstaaftanstaaf", &Fixed), Step::Done(tim()));
        assert_eq!(ex.step(b"again", &Fixed), Step::Failed(Failure::Malformed));
        let (mut ex, step) = Exchange::start("login", Some(b"nobody"), "h", &Fixed);
        assert_eq!(step, Step::Challenge(b"Password:".to_vec()));
        assert_eq!(
            ex.step(b"x", &Fixed),
            Step::Failed(Failure::BadCredentials("nobody".into()))
        );
    }

    #[test]
    fn unknown_mechanism_and_oversized_response() {
        let (_, step) = Exchange::start("DIGEST-MD5", None, "h", &Fixed);
        assert_eq!(step, Step::Failed(Failure::UnknownMechanism));
        let (mut ex, _) = Exchange::start("PLAIN", None, "h", &Fixed);
        assert_eq!(
            ex.step(&vec![b'a'; MAX_RESPONSE + 1], &Fixed),
            Step::Failed(Failure::Malformed)
        );
    }

    #[test]
    fn apop_rfc1939_example() {
        // RFC 1939 §7: token and secret give c4c9334bac560ecc979e58001b3e22fb.
        struct Mrose;
        impl Credentials for Mrose {
            fn check_password(&self, _: &str, _: &Secret) -> Result<Option<AccountId>, AuthError> {
                Ok(None)
            }
            fn recoverable_password(
                &self,
                login: &str,
            ) -> Result<Option<(AccountId, Secret)>, AuthError> {
                Ok((login == "mrose").then(|| {
                    (
                        AccountId {
                            name: "mrose".into(),
                            domain: "d".into(),
                        },
                        Secret::new(&b"tanstaaf"[..]),
                    )
                }))
            }
        }
        let token = "<1896.697170952@dbc.mtview.ca.us>";
        let ok = apop_check(&Mrose, "mrose", token, "c4c9334bac560ecc979e58001b3e22fb").unwrap();
        assert_eq!(ok.map(|id| id.name), Some("mrose".to_string()));
        assert!(
            apop_check(&Mrose, "mrose", token, "C4C9334BAC560ECC979E58001B3E22FB")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            apop_check(&Mrose, "mrose", token, "c4c9334bac560ecc979e58001b3e22fc").unwrap(),
            None
        );
        assert_eq!(apop_check(&Mrose, "other", token, "x").unwrap(), None);
    }

    #[test]
    fn response_decoding() {
        assert_eq!(decode_response(b"*"), Ok(None));
        assert_eq!(decode_response(b"=\r\n"), Ok(Some(Vec::new())));
        assert_eq!(decode_response(b"!!"), Err(Failure::Malformed));
        assert_eq!(encode_challenge(b"Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn secret_debug_hides_value() {
        assert_eq!(format!("{:?}", Secret::new(&b"hunter2"[..])), "Secret");
    }

    #[test]
    fn lockout_after_limit_within_period() {
        let f = FailedLogins::new();
        let t0 = Instant::now();
        let period = Duration::from_secs(60);
        for i in 0..3 {
            assert!(!f.is_locked("Tim", 3, period, t0));
            f.record_failure("tim", 3, period, t0 + Duration::from_secs(i));
        }
        assert!(f.is_locked("TIM", 3, period, t0 + Duration::from_secs(10)));
        assert!(!f.is_locked("tim", 3, period, t0 + Duration::from_secs(70)));
        assert!(!f.is_locked("tim", 0, period, t0 + Duration::from_secs(10)));
        f.clear("tim");
        assert!(!f.is_locked("tim", 3, period, t0 + Duration::from_secs(10)));
        // Failures spread wider than the period do not add up.
        for i in 0..3 {
            f.record_failure("kurt", 3, period, t0 + Duration::from_secs(i * 61));
        }
        assert!(!f.is_locked("kurt", 3, period, t0 + Duration::from_secs(123)));
    }
}
