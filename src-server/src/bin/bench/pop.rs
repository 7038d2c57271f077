//! `gatehouse-bench pop`: POP3 (RFC 1939) load against any server, in plain text.
//!
//! N clients, each doing `--rounds` sessions of connect, USER/PASS, STAT, RETR 1, DELE 1 and QUIT;
//! every step is timed. Each session takes one message away, so the mailboxes must hold
//! `--rounds` messages per client first (e.g. with `gatehouse-bench smtp`); a session that finds
//! its mailbox empty skips RETR and DELE and is counted apart.

use super::common::{run_clients, user_for, Conn, Flags, Stats, MAX_LITERAL};

/// The usage line.
pub const USAGE: &str = "gatehouse-bench pop --server HOST:PORT --user PATTERN --password PW \
[--clients N] [--rounds M]   (%d in PATTERN = client number)";

/// One POP3 command: the `+OK` line, or the `-ERR` as an error.
async fn cmd(c: &mut Conn, line: &str) -> Result<String, String> {
    c.send(format!("{line}\r\n").as_bytes()).await?;
    ok(c).await
}

async fn ok(c: &mut Conn) -> Result<String, String> {
    let reply = c.line().await?;
    if reply.starts_with("+OK") {
        Ok(reply)
    } else {
        Err(reply)
    }
}

/// A multi-line response after its `+OK` line, up to the lone `.` (RFC 1939 §3).
async fn multi_line(c: &mut Conn) -> Result<usize, String> {
    let mut total = 0;
    loop {
        let line = c.line().await?;
        if line == "." {
            return Ok(total);
        }
        total += line.len() + 2;
        if total > MAX_LITERAL {
            return Err("the message is too large".into());
        }
    }
}

/// `gatehouse-bench pop ...`.
pub async fn pop(args: &[String]) -> Result<(), String> {
    let f = Flags::parse(
        args,
        &["server", "user", "password", "clients", "rounds"],
        USAGE,
    )?;
    let server = f.required("server")?;
    let pattern = f.required("user")?;
    let password = f.required("password")?;
    let clients = f.num("clients", 10, 1)?;
    let rounds = f.num("rounds", 20, 1)?;
    println!("pop: {clients} client(s) x {rounds} session(s) against {server}");
    run_clients("pop", clients, |i| {
        let (server, user, password) = (server.clone(), user_for(&pattern, i), password.clone());
        async move {
            let mut s = Stats::default();
            for _ in 0..rounds {
                let mut c = s
                    .time("connect", async {
                        let mut c = Conn::connect(&server).await?;
                        ok(&mut c).await?;
                        Ok(c)
                    })
                    .await?;
                s.time("login", async {
                    cmd(&mut c, &format!("USER {user}")).await?;
                    cmd(&mut c, &format!("PASS {password}")).await
                })
                .await?;
                let stat = s.time("stat", cmd(&mut c, "STAT")).await?;
                let count: u64 = stat
                    .split_ascii_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("STAT: {stat}"))?;
                if count == 0 {
                    s.count("sessions that found the mailbox empty");
                } else {
                    s.time("retr", async {
                        cmd(&mut c, "RETR 1").await?;
                        multi_line(&mut c).await
                    })
                    .await?;
                    s.time("dele", cmd(&mut c, "DELE 1")).await?;
                }
                s.time("quit", cmd(&mut c, "QUIT")).await?;
            }
            Ok(s)
        }
    })
    .await
}
