//! Running an external application for one PIPE delivery (guide.txt:13897-13998, 14033-14048).
//!
//! The command is the local part of a `...@pipe` address (the Router's `Target::Pipe::program`),
//! e.g. `[RCPT] [STDERR] queue[ARCH] appendfile /var/archive`:
//!
//! ```text
//! command = *( tag / queue ) application *( SP parameter )
//! tag     = "[FILE]" / "[RETPATH]" / "[RCPT]" / "[STDERR]"     ; any order, blanks optional
//! queue   = "queue[" 1*ALNUM "]"
//! ```
//!
//! Whatever the tags' order, `-f Queue/<id>.msg`, then `-p <return-path>`, then
//! `-r <recipient>` are appended (guide.txt:13987-13991).
//!
//! Security: parts of the command can come from the sender (the Router's `*` substitution,
//! guide.txt:13908-13911), so no shell ever sees it: the application is started directly with
//! the blank-separated parameters as its arguments, and its name may not contain `/` or `\` nor
//! start with `.` (guide.txt:13917-13921), so only files in the Application Directory run. The
//! environment is cleared except `PATH` (the server's own environment may hold secrets such as
//! `GATEHOUSE_POSTMASTER_PASSWORD`). The working directory is the base directory, so the
//! `[FILE]` path `Queue/<id>.msg` resolves (the guide gives it "relative to the base directory").
//! Each application runs in its own process group; at the time limit the whole group is killed.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest queue name in `queue[name]`.
const MAX_QUEUE_NAME: usize = 64;
/// Standard error bytes kept for the report and the log; the rest is read and dropped.
const MAX_STDERR: usize = 4096;
/// The `PATH` the application gets.
const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A parsed PIPE command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeCommand {
    /// `[FILE]`: stdin closed, `-f Queue/<id>.msg` appended.
    pub file: bool,
    /// `[RETPATH]`: `-p <return-path>` appended.
    pub retpath: bool,
    /// `[RCPT]`: `-r <original recipient>` appended.
    pub rcpt: bool,
    /// `[STDERR]`: the whole standard error text is the error report.
    pub stderr: bool,
    /// `queue[name]`: deliveries of this name run one at a time.
    pub queue: Option<String>,
    /// The application's file name in the Application Directory.
    pub application: String,
    /// Its parameters.
    pub parameters: Vec<String>,
}

impl PipeCommand {
    /// Parses a command; `Err` says why it is refused. A command still in its address quotes
    /// (`"execjoe -l store"`) is unquoted first.
    pub fn parse(text: &str) -> Result<PipeCommand, String> {
        let unquoted;
        let mut rest = text.trim();
        if rest.len() >= 2 && rest.starts_with('"') && rest.ends_with('"') {
            unquoted = unquote(&rest[1..rest.len() - 1]);
            rest = unquoted.as_str();
        }
        let mut cmd = PipeCommand {
            file: false,
            retpath: false,
            rcpt: false,
            stderr: false,
            queue: None,
            application: String::new(),
            parameters: Vec::new(),
        };
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or("unterminated tag")?;
                let tag = &after[..end];
                let flag = match tag.to_ascii_uppercase().as_str() {
                    "FILE" => &mut cmd.file,
                    "RETPATH" => &mut cmd.retpath,
                    "RCPT" => &mut cmd.rcpt,
                    "STDERR" => &mut cmd.stderr,
                    _ => return Err(format!("unknown tag [{tag}]")),
                };
                *flag = true;
                rest = &after[end + 1..];
            } else if rest.len() > 6 && rest[..6].eq_ignore_ascii_case("queue[") {
                let after = &rest[6..];
                let end = after.find(']').ok_or("unterminated queue name")?;
                let name = &after[..end];
                if name.is_empty()
                    || name.len() > MAX_QUEUE_NAME
                    || !name.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(format!("bad queue name {name:?}"));
                }
                cmd.queue = Some(name.to_string());
                rest = &after[end + 1..];
            } else {
                break;
            }
        }
        let mut words = rest.split_whitespace();
        let application = words.next().ok_or("no application name")?;
        if application.contains(['/', '\\']) || application.starts_with('.') {
            return Err(format!("application name {application:?} is not allowed"));
        }
        cmd.application = application.to_string();
        cmd.parameters = words.map(str::to_string).collect();
        Ok(cmd)
    }

    /// The arguments: the parameters, then `-f`, `-p`, `-r` as the tags ask (guide.txt:13987).
    pub fn arguments(&self, message_id: u64, return_path: &str, recipient: &str) -> Vec<String> {
        let mut args = self.parameters.clone();
        if self.file {
            args.push("-f".into());
            args.push(format!("Queue/{message_id}.msg"));
        }
        if self.retpath {
            args.push("-p".into());
            args.push(return_path.to_string());
        }
        if self.rcpt {
            args.push("-r".into());
            args.push(recipient.to_string());
        }
        args
    }
}

/// RFC 5322 quoted-string content: `\x` is `x`.
fn unquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The application could not be started.
    SpawnFailed(io::Error),
    /// It did not complete within the time limit and was killed.
    TimedOut,
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// How it ended.
    pub end: RunEnd,
    /// The start of its standard error (at most [`MAX_STDERR`] bytes).
    pub stderr: Vec<u8>,
    /// Whether it wrote anything to standard error.
    pub wrote_stderr: bool,
    /// Writing the message to its stdin failed (it did not read it all).
    pub stdin_failed: bool,
}

/// Runs `program` with `args` in `cwd`, `input` on its stdin (`None`: stdin closed), stdout
/// discarded, standard error collected, killed with its process group after `limit` (blocking).
pub fn run(
    program: &Path,
    args: &[String],
    cwd: &Path,
    input: Option<&[u8]>,
    limit: Duration,
) -> RunResult {
    let deadline = Instant::now() + limit;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", CHILD_PATH)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut tries = 0;
    let mut child = loop {
        match command.spawn() {
            Ok(c) => break c,
            // ETXTBSY: the application file is still open for writing somewhere (an admin just
            // replaced it, or another thread forked while writing it); it passes in a moment.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return RunResult {
                    end: RunEnd::SpawnFailed(e),
                    stderr: Vec::new(),
                    wrote_stderr: false,
                    stdin_failed: false,
                }
            }
        }
    };
    let pid = child.id();

    // Stdin and stderr are served by their own threads so neither side can block the other.
    let (stdin_tx, stdin_rx) = mpsc::channel();
    if let (Some(mut stdin), Some(bytes)) = (child.stdin.take(), input) {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let ok = stdin.write_all(&bytes).and_then(|_| stdin.flush()).is_ok();
            let _ = stdin_tx.send(ok);
        });
    } else {
        let _ = stdin_tx.send(true);
    }
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut any = false;
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        any = true;
                        let room = MAX_STDERR.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = err_tx.send((kept, any));
        });
    } else {
        let _ = err_tx.send((Vec::new(), false));
    }

    let mut pause = Duration::from_millis(1);
    let mut end = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                break match (status.code(), status.signal()) {
                    (Some(code), _) => RunEnd::Exited(code),
                    (None, Some(sig)) => RunEnd::Signaled(sig),
                    (None, None) => RunEnd::Signaled(0),
                };
            }
            Ok(None) => {}
            Err(e) => break RunEnd::SpawnFailed(e),
        }
        if Instant::now() >= deadline {
            kill_group(pid);
            let _ = child.kill();
            let _ = child.wait();
            break RunEnd::TimedOut;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };

    // A descendant may still hold stdin or stderr open: wait for them until the deadline, then
    // kill the group and give up on what they hold.
    let stdin_ok = collect(&stdin_rx, deadline, pid, &mut end).unwrap_or(false);
    let (stderr, wrote_stderr) = collect(&err_rx, deadline, pid, &mut end).unwrap_or_default();
    RunResult {
        end,
        stderr,
        wrote_stderr,
        stdin_failed: !stdin_ok,
    }
}

/// A helper thread's result. A descendant may still hold stdin or stderr open: wait until the
/// deadline, then kill the group (the run counts as timed out) and give up on what it holds.
fn collect<T>(rx: &mpsc::Receiver<T>, deadline: Instant, pid: u32, end: &mut RunEnd) -> Option<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(v) => Some(v),
        Err(_) => {
            kill_group(pid);
            *end = RunEnd::TimedOut;
            rx.recv_timeout(Duration::from_secs(1)).ok()
        }
    }
}

/// SIGKILL to the application's process group.
fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory preconditions; the group is the child's own (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}
