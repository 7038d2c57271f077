//! `gatehouse-bench imap` and `gatehouse-bench imap-idle`: IMAP4rev1 (RFC 3501, IDLE RFC 2177)
//! load against any server, in plain text.
//!
//! `imap`: N clients, each doing `--rounds` sessions of connect, LOGIN, SELECT, APPEND (a message
//! of `--size` bytes), FETCH of the newest message, STORE `\Seen \Deleted` on it, CLOSE (which
//! expunges it, so the mailbox does not grow) and LOGOUT; every step is timed.
//!
//! `imap-idle`: opens N sessions that log in, select and IDLE (or just stay selected), then reads
//! the server's resident memory (`VmRSS` in `/proc/<pid>/status`) and open files before and after
//! and prints the cost per session. It raises its own open-file limit to fit N connections.

use std::time::{Duration, Instant};

use super::common::{message, run_clients, user_for, Conn, Flags, Stats};

/// The `imap` usage line.
pub const USAGE: &str = "gatehouse-bench imap --server HOST:PORT --user PATTERN --password PW \
[--clients N] [--rounds M] [--size BYTES] [--mailbox NAME]   (%d in PATTERN = client number)";
/// The `imap-idle` usage line.
pub const IDLE_USAGE: &str = "gatehouse-bench imap-idle --server HOST:PORT --user PATTERN \
--password PW --pid SERVER_PID [--sessions N] [--mode idle|selected] [--mailbox NAME] \
[--settle SECONDS] [--hold SECONDS]";

/// One IMAP connection with its tag counter.
struct Imap {
    c: Conn,
    n: u32,
    /// The last `* n EXISTS` seen.
    exists: u64,
}

/// `"text"` with `\` and `"` escaped (RFC 3501 §4.3 quoted).
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The size of a literal that ends a line (`{123}` or `{123+}`).
fn literal_len(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let start = inner.rfind('{')?;
    inner[start + 1..].trim_end_matches('+').parse().ok()
}

impl Imap {
    async fn connect(server: &str) -> Result<Imap, String> {
        let mut c = Conn::connect(server).await?;
        let greeting = c.line().await?;
        if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
            return Err(format!("greeting: {greeting}"));
        }
        Ok(Imap { c, n: 0, exists: 0 })
    }

    fn tag(&mut self) -> String {
        self.n += 1;
        format!("b{}", self.n)
    }

    /// Reads responses up to the tagged one; literals are read and dropped.
    async fn finish(&mut self, tag: &str) -> Result<(), String> {
        loop {
            let line = self.c.line().await?;
            if let Some(n) = literal_len(&line) {
                self.c.skip(n).await?;
                continue;
            }
            if let Some(rest) = line.strip_prefix("* ") {
                let mut w = rest.split_ascii_whitespace();
                if let (Some(n), Some(kw)) = (w.next(), w.next()) {
                    if kw.eq_ignore_ascii_case("EXISTS") {
                        self.exists = n.parse().unwrap_or(self.exists);
                    }
                }
                continue;
            }
            if let Some(status) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                return if status.starts_with("OK") {
                    Ok(())
                } else {
                    Err(status.to_string())
                };
            }
            if line.starts_with('+') {
                return Err(format!("unexpected continuation: {line}"));
            }
        }
    }

    async fn cmd(&mut self, command: &str) -> Result<(), String> {
        let tag = self.tag();
        self.c
            .send(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.finish(&tag).await
    }

    /// `APPEND mailbox {n}` with a synchronising literal.
    async fn append(&mut self, mailbox: &str, msg: &[u8]) -> Result<(), String> {
        let tag = self.tag();
        self.c
            .send(format!("{tag} APPEND {} {{{}}}\r\n", quoted(mailbox), msg.len()).as_bytes())
            .await?;
        let go = self.c.line().await?;
        if !go.starts_with('+') {
            return Err(format!("no continuation: {go}"));
        }
        self.c.send(msg).await?;
        self.c.send(b"\r\n").await?;
        self.finish(&tag).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        self.cmd(&format!("LOGIN {} {}", quoted(user), quoted(password)))
            .await
    }
}

/// The options of `imap` and of `imap-idle`.
struct Target {
    server: String,
    user: String,
    password: String,
    mailbox: String,
}

impl Target {
    fn from(f: &Flags) -> Result<Target, String> {
        Ok(Target {
            server: f.required("server")?,
            user: f.required("user")?,
            password: f.required("password")?,
            mailbox: f.text("mailbox", "INBOX"),
        })
    }
}

/// `gatehouse-bench imap ...`.
pub async fn imap(args: &[String]) -> Result<(), String> {
    let f = Flags::parse(
        args,
        &[
            "server", "user", "password", "clients", "rounds", "size", "mailbox",
        ],
        USAGE,
    )?;
    let t = std::sync::Arc::new(Target::from(&f)?);
    let clients = f.num("clients", 10, 1)?;
    let rounds = f.num("rounds", 20, 1)?;
    let msg = std::sync::Arc::new(message(f.num("size", 4096, 0)?, "gatehouse-bench imap"));
    println!(
        "imap: {clients} client(s) x {rounds} session(s) against {}, {} byte messages",
        t.server,
        msg.len()
    );
    run_clients("imap", clients, |i| {
        let (t, msg) = (t.clone(), msg.clone());
        async move {
            let user = user_for(&t.user, i);
            let mut s = Stats::default();
            for _ in 0..rounds {
                let mut c = s.time("connect", Imap::connect(&t.server)).await?;
                s.time("login", c.login(&user, &t.password)).await?;
                s.time("select", c.cmd(&format!("SELECT {}", quoted(&t.mailbox))))
                    .await?;
                s.time("append", c.append(&t.mailbox, &msg)).await?;
                if c.exists == 0 {
                    // The new message is announced at the latest by the next command.
                    c.cmd("NOOP").await?;
                }
                s.time("fetch", c.cmd("FETCH * (FLAGS BODY.PEEK[])"))
                    .await?;
                s.time("store", c.cmd("STORE * +FLAGS.SILENT (\\Seen \\Deleted)"))
                    .await?;
                s.time("close", c.cmd("CLOSE")).await?;
                s.time("logout", c.cmd("LOGOUT")).await?;
            }
            Ok(s)
        }
    })
    .await
}

/// Resident memory (kB) and open files of a process, from `/proc`.
fn usage(pid: u32) -> Result<(u64, usize), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    Ok((rss, fds))
}

/// Raises this process's open-file limit to at least `want` (up to the hard limit).
fn raise_nofile(want: u64) -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err("getrlimit failed".into());
        }
        if lim.rlim_cur >= want {
            return Ok(lim.rlim_cur);
        }
        lim.rlim_cur = want.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err("setrlimit failed".into());
        }
    }
    Ok(lim.rlim_cur)
}

/// How many sessions are being opened at once.
const OPEN_AT_ONCE: usize = 50;

/// `gatehouse-bench imap-idle ...`.
pub async fn imap_idle(args: &[String]) -> Result<(), String> {
    let f = Flags::parse(
        args,
        &[
            "server", "user", "password", "mailbox", "pid", "sessions", "mode", "settle", "hold",
        ],
        IDLE_USAGE,
    )?;
    let t = std::sync::Arc::new(Target::from(&f)?);
    let pid: u32 = f
        .required("pid")?
        .parse()
        .map_err(|_| "--pid: not a process id".to_string())?;
    let sessions = f.num("sessions", 1000, 1)?;
    let idle = match f.text("mode", "idle").as_str() {
        "idle" => true,
        "selected" => false,
        m => return Err(format!("--mode: {m} is not idle or selected")),
    };
    let settle = Duration::from_secs(f.num("settle", 2, 0)? as u64);
    let hold = Duration::from_secs(f.num("hold", 0, 0)? as u64);
    let limit = raise_nofile(sessions as u64 + 64)?;
    if limit < sessions as u64 + 16 {
        return Err(format!(
            "the open-file limit is {limit}: too low for {sessions} sessions (raise ulimit -n)"
        ));
    }
    let (rss0, fds0) = usage(pid)?;
    println!(
        "imap-idle: {sessions} session(s) ({}) against {}; server pid {pid}",
        if idle { "IDLE" } else { "selected" },
        t.server
    );
    println!("before: VmRSS {rss0} kB, {fds0} open files");
    let started = Instant::now();
    let mut open: Vec<Imap> = Vec::with_capacity(sessions);
    let mut i = 0;
    while i < sessions {
        let batch: Vec<_> = (i..(i + OPEN_AT_ONCE).min(sessions))
            .map(|k| {
                let t = t.clone();
                tokio::spawn(async move {
                    let mut c = Imap::connect(&t.server).await?;
                    c.login(&user_for(&t.user, k), &t.password).await?;
                    c.cmd(&format!("SELECT {}", quoted(&t.mailbox))).await?;
                    if idle {
                        let tag = c.tag();
                        c.c.send(format!("{tag} IDLE\r\n").as_bytes()).await?;
                        let go = c.c.line().await?;
                        if !go.starts_with('+') {
                            return Err(format!("IDLE refused: {go}"));
                        }
                    }
                    Ok::<Imap, String>(c)
                })
            })
            .collect();
        for (k, b) in batch.into_iter().enumerate() {
            let c = b
                .await
                .map_err(|e| format!("session {}: {e}", i + k))?
                .map_err(|e| format!("session {} ({} open): {e}", i + k, open.len()))?;
            open.push(c);
        }
        i += OPEN_AT_ONCE;
    }
    let opened = started.elapsed();
    tokio::time::sleep(settle).await;
    let (rss1, fds1) = usage(pid)?;
    println!(
        "after:  VmRSS {rss1} kB, {fds1} open files ({} sessions opened in {:.2} s)",
        open.len(),
        opened.as_secs_f64()
    );
    let per = (rss1 as f64 - rss0 as f64) / open.len() as f64;
    println!(
        "per session: {per:.1} kB of server memory, {:.2} open files",
        (fds1 as f64 - fds0 as f64) / open.len() as f64
    );
    tokio::time::sleep(hold).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_quoting() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {120}"), Some(120));
        assert_eq!(literal_len("* 1 FETCH (BODY[] {7+}"), Some(7));
        assert_eq!(literal_len("* 1 FETCH (FLAGS ())"), None);
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
