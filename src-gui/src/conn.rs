//! The manager's one connection to `gatehoused`: where to connect (command line or the saved
//! connection), and a shared, self-healing CLI session over `gatehouse::cli::client`.
//!
//! Security: the password is read from a file (`--password-file`, or the saved `password` file,
//! written with mode 0600) and kept in a [`Secret`] whose `Debug` prints nothing. The PWD channel
//! sends it in clear text (docs/cli.md), so the default server is loopback.
//!
//! Implementation notes: every call holds the session's mutex for one command round trip, so the
//! tray poller and the window's commands never interleave lines on the socket. A broken
//! connection (I/O or protocol error, e.g. the service restarted) is dropped and the command is
//! sent once more on a fresh login; a refused login is not retried.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use gatehouse::cli::client::{Client, ClientError};
use gatehouse::cli::UNKNOWN_COMMAND;
use gatehouse::format::{self, Value};
use gatehouse::store::fsutil;
use serde::Serialize;

/// The server used when neither the command line nor a saved connection names one.
pub const DEFAULT_SERVER: &str = "127.0.0.1:106";
/// The account used when neither the command line nor a saved connection names one.
pub const DEFAULT_USER: &str = "postmaster";
/// Bounds connecting and every read and write of one command.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest password file read.
const MAX_PASSWORD_FILE: u64 = 4096;

/// A password; `Debug` prints nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where and as whom the manager connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` of the PWD listener.
    pub server: String,
    /// The account name to log in as.
    pub user: String,
    /// The password; `None` until the user gives one.
    pub password: Option<Secret>,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            server: DEFAULT_SERVER.into(),
            user: DEFAULT_USER.into(),
            password: None,
        }
    }
}

impl Target {
    /// The host part of `server` (brackets of an IPv6 literal removed).
    pub fn host(&self) -> &str {
        let h = self
            .server
            .rsplit_once(':')
            .map_or(self.server.as_str(), |(h, _)| h);
        h.trim_start_matches('[').trim_end_matches(']')
    }

    /// The port part of `server`, if it has one.
    pub fn port(&self) -> Option<u16> {
        self.server.rsplit_once(':')?.1.parse().ok()
    }
}

/// The command line: `--server HOST:PORT --user NAME --password-file FILE`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// `--server`.
    pub server: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--password-file`.
    pub password_file: Option<PathBuf>,
}

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
        let mut out = Args::default();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                "--server" => out.server = Some(value("--server")?),
                "--user" => out.user = Some(value("--user")?),
                "--password-file" => out.password_file = Some(value("--password-file")?.into()),
                _ => return Err(format!("unknown argument {a}")),
            }
        }
        Ok(out)
    }

    /// True when the command line names a connection (it then wins over the saved one).
    pub fn given(&self) -> bool {
        self.server.is_some() || self.user.is_some() || self.password_file.is_some()
    }
}

/// Reads a password file: its first line, without the line end.
pub fn read_password_file(path: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PASSWORD_FILE).read_to_end(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(Secret(line.strip_suffix(b"\r").unwrap_or(line).to_vec()))
}

/// The saved connection: `connection.settings` ({Server; User}) and `password` (mode 0600) in a
/// directory (the user's config directory for the manager).
#[derive(Debug, Clone)]
pub struct Saved {
    dir: PathBuf,
}

impl Saved {
    /// The saved connection in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Saved {
        Saved { dir: dir.into() }
    }

    /// The user's config directory for the manager (`~/.config/gatehouse-manager` on Linux).
    pub fn user_default() -> Option<Saved> {
        directories::ProjectDirs::from("org", "gatehouse", "gatehouse-manager")
            .map(|d| Saved::new(d.config_dir()))
    }

    fn settings_path(&self) -> PathBuf {
        self.dir.join("connection.settings")
    }

    fn password_path(&self) -> PathBuf {
        self.dir.join("password")
    }

    /// The saved target, or `None` when nothing was saved (or the file is unreadable).
    pub fn load(&self) -> Option<Target> {
        let bytes = std::fs::read(self.settings_path()).ok()?;
        let v = format::parse(&bytes).ok()?;
        let password = read_password_file(&self.password_path()).ok();
        Some(Target {
            server: v.get_text("Server")?,
            user: v.get_text("User").unwrap_or_else(|| DEFAULT_USER.into()),
            password,
        })
    }

    /// Saves the target; the password file is written only the user can read.
    pub fn store(&self, t: &Target) -> Result<(), String> {
        let err = |p: &Path, e: std::io::Error| format!("cannot save {}: {e}", p.display());
        fsutil::create_dir_durable(&self.dir).map_err(|e| err(&self.dir, e))?;
        let settings = format::dict([
            ("Server", Value::str(&t.server)),
            ("User", Value::str(&t.user)),
        ]);
        let path = self.settings_path();
        fsutil::write_atomic_mode(&path, &format::to_pretty(&settings), 0o600)
            .map_err(|e| err(&path, e))?;
        let path = self.password_path();
        match &t.password {
            Some(pw) => {
                let mut bytes = pw.0.clone();
                bytes.push(b'\n');
                fsutil::write_atomic_mode(&path, &bytes, 0o600).map_err(|e| err(&path, e))
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(&path, e)),
                _ => Ok(()),
            },
        }
    }
}

/// Why a call to the service failed, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "lowercase")]
pub enum CallError {
    /// No password is known yet: the connect dialog must ask.
    NoPassword(String),
    /// The service cannot be reached (not running, wrong address, network).
    Down(String),
    /// The server refused the login.
    Login(String),
    /// The server does not know the command (its module is not in this server).
    Unavailable(String),
    /// The command failed; the server's text.
    Failed(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoPassword(m)
            | CallError::Down(m)
            | CallError::Login(m)
            | CallError::Unavailable(m)
            | CallError::Failed(m) => f.write_str(m),
        }
    }
}

/// The shared connection: a target and, once logged in, a session.
pub struct Conn {
    target: Mutex<Target>,
    session: Mutex<Option<Client>>,
}

impl Conn {
    /// A connection to `target`; nothing is opened until the first call.
    pub fn new(target: Target) -> Conn {
        Conn {
            target: Mutex::new(target),
            session: Mutex::new(None),
        }
    }

    /// The current target.
    pub fn target(&self) -> Target {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Switches to another target (the connect dialog); the open session is closed.
    pub fn set_target(&self, t: Target) {
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        *session = None;
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = t;
    }

    fn open(&self) -> Result<Client, CallError> {
        let t = self.target();
        let pw = t.password.clone().ok_or_else(|| {
            CallError::NoPassword(format!("Enter the password of {} to connect", t.user))
        })?;
        let mut c = Client::connect(&t.server, TIMEOUT).map_err(|e| {
            CallError::Down(format!(
                "The Gatehouse service at {} cannot be reached ({}). Is it running?",
                t.server,
                plain(&e)
            ))
        })?;
        match c.login(&t.user, &pw.0) {
            Ok(()) => Ok(c),
            Err(ClientError::Login(m)) => Err(CallError::Login(format!(
                "The server refused the login of {}: {m}",
                t.user
            ))),
            Err(e) => Err(CallError::Down(format!(
                "The connection to {} broke during login ({})",
                t.server,
                plain(&e)
            ))),
        }
    }

    /// Opens a session now (the connect dialog's check); replaces any open one.
    pub fn connect(&self) -> Result<(), CallError> {
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        *session = None;
        *session = Some(self.open()?);
        Ok(())
    }

    /// Sends one CLI command line and returns its data. Blocking: call it off the UI thread.
    pub fn call(&self, line: &str) -> Result<Option<Value>, CallError> {
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let mut retried = false;
        loop {
            let client = match session.as_mut() {
                Some(c) => c,
                None => session.insert(self.open()?),
            };
            match client.command(line) {
                Ok(v) => return Ok(v),
                Err(ClientError::Command(m)) if m == UNKNOWN_COMMAND => {
                    let verb = line.split(' ').next().unwrap_or(line);
                    return Err(CallError::Unavailable(format!(
                        "{verb} is not available on this server"
                    )));
                }
                Err(ClientError::Command(m)) => return Err(CallError::Failed(m)),
                Err(e) => {
                    *session = None;
                    if retried {
                        return Err(CallError::Down(format!(
                            "The connection to the service broke ({})",
                            plain(&e)
                        )));
                    }
                    retried = true;
                }
            }
        }
    }
}

/// A client error's text without the "connection error:" prefix the client adds.
fn plain(e: &ClientError) -> String {
    match e {
        ClientError::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// A data-format value as JSON for the window (strings, arrays, objects).
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => serde_json::Value::String(String::from_utf8_lossy(s).into_owned()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Dict(d) => serde_json::Value::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_json(v)))
                .collect(),
        ),
    }
}

/// JSON from the window as a data-format value: strings stay strings; a string that is a
/// data-format array or dictionary (`(...)`, `{...}`) is parsed, so settings editors can give
/// structured values as text; numbers and booleans become their text, `null` an empty string.
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::String(s) => {
            let t = s.trim_start();
            if t.starts_with('(') || t.starts_with('{') {
                if let Ok(parsed) = format::parse(s.as_bytes()) {
                    return parsed;
                }
            }
            Value::str(s)
        }
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            format::dict(o.iter().map(|(k, v)| (k.as_bytes(), from_json(v))))
        }
        serde_json::Value::Null => Value::str(""),
        serde_json::Value::Bool(b) => Value::str(if *b { "YES" } else { "NO" }),
        serde_json::Value::Number(n) => Value::str(n.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn args() {
        let a = Args::parse(
            [
                "--server",
                "h:1",
                "--user",
                "u",
                "--password-file",
                "/tmp/p",
            ]
            .map(String::from),
        )
        .expect("parse");
        assert_eq!(a.server.as_deref(), Some("h:1"));
        assert_eq!(a.user.as_deref(), Some("u"));
        assert!(a.given());
        assert!(!Args::default().given());
        assert!(Args::parse(["--server".to_string()]).is_err());
        assert!(Args::parse(["--bogus".to_string()]).is_err());
    }

    #[test]
    fn host_and_port() {
        let t = Target {
            server: "[::1]:10106".into(),
            ..Target::default()
        };
        assert_eq!((t.host(), t.port()), ("::1", Some(10106)));
        let t = Target::default();
        assert_eq!((t.host(), t.port()), ("127.0.0.1", Some(106)));
    }

    #[test]
    fn saved_connection_round_trip_and_private_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let saved = Saved::new(dir.path().join("cfg"));
        assert_eq!(saved.load(), None);
        let t = Target {
            server: "127.0.0.1:10106".into(),
            user: "admin".into(),
            password: Some(Secret(b"s3cret pw".to_vec())),
        };
        saved.store(&t).expect("store");
        assert_eq!(saved.load(), Some(t));
        let mode = std::fs::metadata(dir.path().join("cfg/password"))
            .expect("password file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn secret_debug_hides_the_password() {
        assert_eq!(format!("{:?}", Secret(b"pw".to_vec())), "Secret(..)");
    }

    #[test]
    fn json_conversions() {
        let v =
            from_json(&serde_json::json!({"A": "x", "B": "(1, 2)", "C": "{K=V;}", "D": "(broken"}));
        assert_eq!(v.get_text("A").as_deref(), Some("x"));
        assert_eq!(
            v.get("B").and_then(Value::as_array).map(<[Value]>::len),
            Some(2)
        );
        assert_eq!(
            v.get("C").and_then(|c| c.get_text("K")).as_deref(),
            Some("V")
        );
        assert_eq!(v.get_text("D").as_deref(), Some("(broken"));
        assert_eq!(
            to_json(&format::parse(b"{A=(x,y);}").expect("parse")),
            serde_json::json!({"A": ["x", "y"]})
        );
    }

    #[test]
    fn a_down_service_is_reported_as_down() {
        // A port nobody listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let conn = Conn::new(Target {
            server: format!("127.0.0.1:{port}"),
            user: "postmaster".into(),
            password: Some(Secret(b"x".to_vec())),
        });
        assert!(matches!(conn.call("ListDomains"), Err(CallError::Down(_))));
        conn.set_target(Target::default());
        assert!(matches!(
            conn.call("ListDomains"),
            Err(CallError::NoPassword(_))
        ));
    }
}
