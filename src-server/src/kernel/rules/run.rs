//! Running rule sets from the store, and the `Execute` action (guide.txt:10961-11033).
//!
//! [`account_rules`] is what Local Delivery calls for each account a message reaches;
//! [`server_rules`] is what the Enqueuer calls. Both read the rules on every call (the store
//! caches nothing; rule sets are small), so a `SetAccountRules` applies to the next message.
//!
//! Security of `Execute`: the command line is split at white space and run without a shell, so
//! message data never reaches a shell. stdin is the message (or closed with `[FILE]`); stdout is
//! kept up to [`MAX_STDOUT`] bytes for the log, stderr up to [`MAX_STDERR`]; the task is killed
//! after [`EXEC_TIMEOUT`]. It runs in its own process group, which is killed when it ends, so
//! nothing it started can keep the delivery thread waiting on its pipes.
//!
//! todo: account-level `Execute` runs in the server's own environment; switching to the account's
//! `OSUserName` uid/gid and home directory (guide.txt:11018-11026) needs a privileged helper.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::eval::{evaluate, Env, MemoryData, Outcome, Scope, StoreData};
use super::message::MessageView;
use super::parse::parse_rules;
use super::{ExecSpec, RuleError, RulesRight, SERVER_RULES};
use crate::format::Value;
use crate::kernel::clock::Clock;
use crate::store::Store;

/// How long an `Execute` task may run (guide.txt:11030-11031: 2 minutes).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);
/// Most stdout bytes kept (guide.txt:11027-11028: "should not exceed 4Kbytes").
pub const MAX_STDOUT: usize = 4096;
/// Most stderr bytes kept for the log and the error report.
pub const MAX_STDERR: usize = 4096;
/// The rejection text when an `Execute` task fails (guide.txt:11008-11010).
pub const EXEC_FAILED: &str = "automated processing failed";

/// Why a rule set could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The account or the settings could not be read.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// The stored rules do not parse (they were written by hand, or by an older version).
    #[error("{0}")]
    Rules(#[from] RuleError),
}

/// Runs the Account Rules of `account@domain` on `msg` (Local Delivery, guide.txt:10446-10447).
/// `Execute` and `FingerNotify` run only when the account's effective `RulesAllowed` is `Any`.
pub fn account_rules(
    store: &Store,
    clock: &dyn Clock,
    host: &str,
    domain: &str,
    account: &str,
    msg: &MessageView<'_>,
) -> Result<Outcome, RunError> {
    let rules = parse_rules(&store.account_rules(domain, account)?)?;
    let settings = store.account_effective_settings(domain, account)?;
    let right = settings
        .get(b"RulesAllowed".as_slice())
        .and_then(Value::as_text)
        .and_then(|t| RulesRight::parse(&t))
        .unwrap_or(RulesRight::No);
    let data = StoreData::new(store.clone(), domain, account);
    let env = Env {
        scope: Scope::Account(format!("{account}@{domain}")),
        clock,
        data: &data,
        allow_exec: right == RulesRight::Any,
        host: host.to_string(),
    };
    Ok(evaluate(&rules, msg, &env))
}

/// Runs the Server-Wide Rules (`Settings/ServerRules.settings`) on `msg` (the Enqueuer,
/// guide.txt:10443-10445). String lists are empty at this level.
pub fn server_rules(
    store: &Store,
    clock: &dyn Clock,
    host: &str,
    msg: &MessageView<'_>,
) -> Result<Outcome, RunError> {
    let rules = parse_rules(&store.server_settings(SERVER_RULES)?)?;
    let data = MemoryData::new();
    let env = Env {
        scope: Scope::Server,
        clock,
        data: &data,
        allow_exec: true,
        host: host.to_string(),
    };
    Ok(evaluate(&rules, msg, &env))
}

/// The finger port `FingerNotify` connects to (guide.txt:11037-11040).
pub const FINGER_PORT: u16 = 79;

/// `FingerNotify`: connects to `address` (an IP address or host name, optionally `:port`, port
/// 79 by default) and sends `nm_notifyuser` (guide.txt:11035-11048). Blocking, bounded by
/// `timeout` for the connection and the write.
pub fn finger_notify(address: &str, timeout: Duration) -> std::io::Result<()> {
    use std::net::{TcpStream, ToSocketAddrs};
    let address = address.trim();
    let bare = address.trim_start_matches('[').trim_end_matches(']');
    let target = if let Ok(sa) = address.parse::<std::net::SocketAddr>() {
        sa
    } else if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        std::net::SocketAddr::new(ip, FINGER_PORT)
    } else {
        let with_port = if address.contains(':') {
            address.to_string()
        } else {
            format!("{address}:{FINGER_PORT}")
        };
        with_port.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host")
        })?
    };
    let mut s = TcpStream::connect_timeout(&target, timeout)?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"nm_notifyuser\r\n")?;
    s.flush()
}

/// What an `Execute` task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecReport {
    /// Whether it succeeded (exit code 0, all of stdin read, in time).
    pub ok: bool,
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The rejection text when it failed: stderr with `[STDERR]`, else [`EXEC_FAILED`].
    pub error: Option<String>,
    /// For the log: stdout (at most [`MAX_STDOUT`] bytes), stderr, and what went wrong.
    pub log: String,
}

/// The argument vector of an `Execute` action: the command split at white space, then `-f
/// Queue/<id>.msg`, `-p return-path`, `-r recipients...` in that order (guide.txt:10996-11001).
pub fn exec_argv(spec: &ExecSpec, msg: &MessageView<'_>) -> Vec<String> {
    let mut argv: Vec<String> = spec.command.split_whitespace().map(String::from).collect();
    if spec.file {
        argv.push("-f".into());
        argv.push(format!("Queue/{}.msg", msg.queue_id.unwrap_or(0)));
    }
    if spec.retpath {
        argv.push("-p".into());
        argv.push(msg.return_path.clone());
    }
    if spec.rcpt {
        argv.push("-r".into());
        argv.extend(msg.recipients.iter().map(|r| r.address.clone()));
    }
    argv
}

/// Reads a pipe to the end, keeping at most `cap` bytes (so the task never blocks on a full pipe).
fn drain(mut r: impl Read, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// Runs an `Execute` action in `cwd` (the base directory for Server-Wide Rules) and waits at
/// most `timeout` (blocking: call it from a worker thread).
pub fn execute(
    spec: &ExecSpec,
    msg: &MessageView<'_>,
    cwd: &Path,
    timeout: Duration,
) -> ExecReport {
    let argv = exec_argv(spec, msg);
    let fail = |log: String| ExecReport {
        ok: false,
        code: None,
        error: Some(EXEC_FAILED.into()),
        log,
    };
    let Some((program, args)) = argv.split_first() else {
        return fail("empty command line".into());
    };
    let mut child = match Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(if spec.file {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills the programs it started too (they would
        // hold the pipes open).
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start {program}: {e}")),
    };
    let stdin = child.stdin.take();
    let message = msg.bytes().to_vec();
    let writer = std::thread::spawn(move || match stdin {
        Some(mut s) => s.write_all(&message).is_ok(),
        None => true,
    });
    let out = child
        .stdout
        .take()
        .map(|o| std::thread::spawn(move || drain(o, MAX_STDOUT)));
    let err = child
        .stderr
        .take()
        .map(|e| std::thread::spawn(move || drain(e, MAX_STDERR)));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    // Programs the task left running in its group would hold the pipes open: the task is over.
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals only the process group created above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let read_all = writer.join().unwrap_or(false);
    let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr_text = String::from_utf8_lossy(&stderr).trim().to_string();
    let mut log = String::new();
    if !stdout.is_empty() {
        log.push_str(&format!(
            "stdout: {}",
            String::from_utf8_lossy(&stdout).trim()
        ));
    }
    if !stderr_text.is_empty() {
        log.push_str(&format!(
            "{}stderr: {stderr_text}",
            if log.is_empty() { "" } else { "; " }
        ));
    }
    let code = status.and_then(|s| s.code());
    let problem = match (status, read_all) {
        (None, _) => Some(format!("killed after {}s", timeout.as_secs())),
        (Some(s), _) if !s.success() => Some(match code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".into(),
        }),
        (Some(_), false) => Some("the task did not read the whole message".into()),
        _ => None,
    };
    match problem {
        None => ExecReport {
            ok: true,
            code,
            error: None,
            log,
        },
        Some(p) => {
            log = if log.is_empty() {
                p
            } else {
                format!("{p}; {log}")
            };
            let error = if spec.stderr && !stderr_text.is_empty() {
                stderr_text
            } else {
                EXEC_FAILED.to_string()
            };
            ExecReport {
                ok: false,
                code,
                error: Some(error),
                log,
            }
        }
    }
}
