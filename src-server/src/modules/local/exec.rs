//! The `Execute` rule action for account Rules (guide.txt:10961-11030): run a command with the
//! message on its standard input, wait at most [`TIMEOUT`], judge it by its exit code.
//!
//! Security: the command text comes from the account's Rules, which run `Execute` only when the
//! account's effective `RulesAllowed` is `Any` (the rules engine checks, guide.txt:8804-8815). The
//! return-path appended by `[RETPATH]` comes from the network, so it is shell-quoted. Output is
//! read in full (so the child never blocks on a full pipe) but only [`MAX_OUTPUT`] bytes are kept.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::kernel::rules::ExecSpec;

/// A task still running after this is killed (guide.txt:11027-11029: 2 minutes).
pub const TIMEOUT: Duration = Duration::from_secs(120);
/// Most bytes of stdout/stderr kept for the log and the error text (guide.txt:11022-11024: 4K).
pub const MAX_OUTPUT: usize = 4096;
/// The rejection text of a failed task (guide.txt:11013-11016).
pub const FAILED: &str = "automated processing failed";

/// How a task ended badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFailure {
    /// What the log records (exit code, stderr).
    pub log: String,
    /// The rejection text: stderr with `[STDERR]`, else [`FAILED`].
    pub reject: String,
}

/// `'text'` for `/bin/sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Reads a pipe to its end, keeping the first [`MAX_OUTPUT`] bytes.
fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = MAX_OUTPUT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

/// Runs `spec` for queued message `id` (`Queue/<id>.msg` for `[FILE]`) in `base`; `Ok` carries
/// the task's stdout for the log.
pub fn run(
    spec: &ExecSpec,
    message: &[u8],
    return_path: &str,
    base: &Path,
    id: u64,
    timeout: Duration,
) -> Result<String, ExecFailure> {
    let mut line = spec.command.clone();
    if spec.file {
        line.push_str(&format!(" -f Queue/{id}.msg"));
    }
    if spec.retpath {
        line.push_str(&format!(" -p {}", shell_quote(return_path)));
    }
    let fail = |log: String| ExecFailure {
        log,
        reject: FAILED.to_string(),
    };
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&line)
        .current_dir(base)
        .stdin(if spec.file {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills the programs the shell started too (they
        // hold the output pipes open).
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot start {line:?}: {e}")))?;
    let writer = child.stdin.take().map(|mut stdin| {
        let bytes = message.to_vec();
        // A task that exits without reading gets EPIPE here; its exit code decides.
        std::thread::spawn(move || stdin.write_all(&bytes))
    });
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if started.elapsed() >= timeout => {
                if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: kill(2) on the group we created; no memory is touched.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("{line:?} did not complete in {timeout:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("cannot wait for {line:?}: {e}")),
        }
    };
    let stdin_result = writer.and_then(|w| w.join().ok());
    let text = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default()
    };
    let (stdout, stderr) = (text(out), text(err));
    let status = status.map_err(fail)?;
    if !status.success() {
        return Err(ExecFailure {
            log: format!("{line:?} exited with {status}: {stderr}"),
            reject: if spec.stderr && !stderr.is_empty() {
                stderr
            } else {
                FAILED.to_string()
            },
        });
    }
    // guide.txt:10965-10966: the task must read the whole message.
    if let Some(Err(e)) = stdin_result {
        return Err(fail(format!("{line:?} did not read the message: {e}")));
    }
    Ok(stdout)
}
