//! `gatehouse-bench`: load generators that print throughput and latency, pointed at any server.
//!
//! `gatehouse-bench smtp --server HOST:PORT --from ADDR --to ADDR [--connections N]
//! [--messages M] [--size BYTES] [--helo NAME]`: N connections in parallel, each sending M
//! messages of about BYTES bytes (RFC 5321 plain SMTP: EHLO once, then MAIL, RCPT, DATA per
//! message); prints messages per second and the latency of each message (MAIL to the final
//! 250) at p50/p90/p99. It connects only to the given server and stops at the first refusal.
//!
//! `gatehouse-bench local [--messages N] [--size BYTES] [--submitters N] [--processors N]
//! [--base DIR]`: the queue in-process, fsync on (`gatehouse::kernel::queue::bench`): submits
//! per second and end-to-end delivery latency, for 1 KB and 100 KB messages by default.
//!
//! `gatehouse-bench imap`, `pop` and `imap-idle`: IMAP and POP sessions against any server, with
//! operations per second and latency per operation, and the server's memory per idle IMAP
//! session (`bench/imap.rs`, `bench/pop.rs`; docs/testing.md §Benchmarks).

use std::process::ExitCode;

#[path = "bench/common.rs"]
mod common;
#[path = "bench/imap.rs"]
mod imap;
#[path = "bench/pop.rs"]
mod pop;

use gatehouse::kernel::queue::bench;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USAGE: &str = "usage: gatehouse-bench smtp --server HOST:PORT --from ADDR --to ADDR \
[--connections N] [--messages M] [--size BYTES] [--helo NAME]";

/// How long any one reply may take before the run is abandoned.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("smtp") => SmtpArgs::parse(&args[1..]).and_then(|a| run(smtp(a))),
        Some("local") => bench::LocalArgs::parse(&args[1..]).and_then(|a| bench::run(&a)),
        Some("imap") => run(imap::imap(&args[1..])),
        Some("imap-idle") => run(imap::imap_idle(&args[1..])),
        Some("pop") => run(pop::pop(&args[1..])),
        _ => Err(format!(
            "{USAGE}\n   or: {}\n   or: {}\n   or: {}\n   or: {}",
            bench::USAGE,
            imap::USAGE,
            pop::USAGE,
            imap::IDLE_USAGE
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run<F: std::future::Future<Output = Result<(), String>>>(f: F) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?
        .block_on(f)
}

struct SmtpArgs {
    server: String,
    from: String,
    to: String,
    connections: usize,
    messages: usize,
    size: usize,
    helo: String,
}

impl SmtpArgs {
    fn parse(args: &[String]) -> Result<SmtpArgs, String> {
        let mut a = SmtpArgs {
            server: String::new(),
            from: String::new(),
            to: String::new(),
            connections: 10,
            messages: 100,
            size: 4096,
            helo: "gatehouse-bench".into(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let num = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: {value} is not a number"))
            };
            match flag.as_str() {
                "--server" => a.server = value.clone(),
                "--from" => a.from = value.clone(),
                "--to" => a.to = value.clone(),
                "--helo" => a.helo = value.clone(),
                "--connections" => a.connections = num()?.max(1),
                "--messages" => a.messages = num()?.max(1),
                "--size" => a.size = num()?,
                _ => return Err(format!("unknown option {flag}\n{USAGE}")),
            }
        }
        if a.server.is_empty() || a.from.is_empty() || a.to.is_empty() {
            return Err(USAGE.to_string());
        }
        Ok(a)
    }
}

/// A message of about `size` bytes: a few headers and 76-character body lines.
fn message(size: usize, from: &str, to: &str) -> Vec<u8> {
    let mut m =
        format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: gatehouse-bench\r\n\r\n").into_bytes();
    let line = [b'x'; 76];
    while m.len() < size {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    m
}

async fn smtp(a: SmtpArgs) -> Result<(), String> {
    let msg = message(a.size, &a.from, &a.to);
    println!(
        "smtp: {} connection(s) x {} message(s) of {} bytes to {}",
        a.connections,
        a.messages,
        msg.len(),
        a.server
    );
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        let (server, from, to, helo, msg) = (
            a.server.clone(),
            a.from.clone(),
            a.to.clone(),
            a.helo.clone(),
            msg.clone(),
        );
        let n = a.messages;
        tasks.push(tokio::spawn(async move {
            connection(&server, &helo, &from, &to, &msg, n).await
        }));
    }
    let mut latencies = Vec::with_capacity(a.connections * a.messages);
    for t in tasks {
        let l = t
            .await
            .map_err(|e| format!("a connection task failed: {e}"))??;
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "sent {} messages in {:.2} s: {:.1} messages/s, {:.2} MB/s",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        (latencies.len() * msg.len()) as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "latency per message: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(50)),
        ms(pct(90)),
        ms(pct(99)),
        ms(latencies[latencies.len() - 1])
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One connection: EHLO, then `n` messages; returns each message's latency.
async fn connection(
    server: &str,
    helo: &str,
    from: &str,
    to: &str,
    msg: &[u8],
    n: usize,
) -> Result<Vec<Duration>, String> {
    let stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    stream.set_nodelay(true).ok();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    expect(&mut r, "2", "greeting").await?;
    send(&mut w, format!("EHLO {helo}\r\n").as_bytes()).await?;
    expect(&mut r, "2", "EHLO").await?;
    let mut data = Vec::with_capacity(msg.len() + 8);
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    data.extend_from_slice(b".\r\n");
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        send(&mut w, format!("MAIL FROM:<{from}>\r\n").as_bytes()).await?;
        expect(&mut r, "2", "MAIL").await?;
        send(&mut w, format!("RCPT TO:<{to}>\r\n").as_bytes()).await?;
        expect(&mut r, "2", "RCPT").await?;
        send(&mut w, b"DATA\r\n").await?;
        expect(&mut r, "3", "DATA").await?;
        send(&mut w, &data).await?;
        expect(&mut r, "2", "end of data").await?;
        latencies.push(t0.elapsed());
    }
    send(&mut w, b"QUIT\r\n").await?;
    Ok(latencies)
}

async fn send(w: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) -> Result<(), String> {
    w.write_all(bytes)
        .await
        .map_err(|e| format!("write failed: {e}"))
}

/// Reads one (possibly multi-line) reply and checks its first digit.
async fn expect(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    class: &str,
    what: &str,
) -> Result<(), String> {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(REPLY_TIMEOUT, r.read_line(&mut line))
            .await
            .map_err(|_| format!("{what}: no reply within {REPLY_TIMEOUT:?}"))?
            .map_err(|e| format!("{what}: read failed: {e}"))?;
        if n == 0 {
            return Err(format!("{what}: the server closed the connection"));
        }
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return if line.starts_with(class) {
            Ok(())
        } else {
            Err(format!("{what}: {}", line.trim_end()))
        };
    }
}
