//! What the IMAP and POP load generators share: `--flag value` options, a line connection with
//! time-outs and caps, and latency statistics per operation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long any one reply may take before the run is abandoned.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest response line read (a FETCH line is short; the literal is read apart).
const MAX_LINE: u64 = 64 * 1024;
/// Largest literal or multi-line response read.
pub const MAX_LITERAL: usize = 64 << 20;

/// `--flag value` options, checked against the known flags.
pub struct Flags {
    map: HashMap<String, String>,
    usage: &'static str,
}

impl Flags {
    /// Reads `--flag value` pairs; any flag not in `known` is an error.
    pub fn parse(args: &[String], known: &[&str], usage: &'static str) -> Result<Flags, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .filter(|n| known.contains(n))
                .ok_or_else(|| format!("unknown option {flag}\n{usage}"))?;
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
            map.insert(name.to_string(), value.clone());
        }
        Ok(Flags { map, usage })
    }

    /// A flag's value, or `default`.
    pub fn text(&self, name: &str, default: &str) -> String {
        self.map
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    /// A flag that must be given.
    pub fn required(&self, name: &str) -> Result<String, String> {
        self.map
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required\n{}", self.usage))
    }

    /// A number, at least `min`.
    pub fn num(&self, name: &str, default: usize, min: usize) -> Result<usize, String> {
        match self.map.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map(|n| n.max(min))
                .map_err(|_| format!("--{name}: {v} is not a number")),
        }
    }
}

/// The login name of client `i`: `%d` in the pattern becomes `i` (`bench%d` → `bench0`, ...).
pub fn user_for(pattern: &str, i: usize) -> String {
    pattern.replace("%d", &i.to_string())
}

/// A message of about `size` bytes: a few headers and 76-character body lines, CRLF endings.
pub fn message(size: usize, subject: &str) -> Vec<u8> {
    let mut m = format!(
        "From: <bench@gatehouse.test>\r\nTo: <bench@gatehouse.test>\r\nSubject: {subject}\r\n\r\n"
    )
    .into_bytes();
    let line = [b'x'; 76];
    while m.len() < size {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// A plain TCP connection read line by line.
pub struct Conn {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Conn {
    /// Connects to `server` (`host:port`).
    pub async fn connect(server: &str) -> Result<Conn, String> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(server))
            .await
            .map_err(|_| format!("cannot connect to {server}: timed out"))?
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        stream.set_nodelay(true).ok();
        let (r, w) = stream.into_split();
        Ok(Conn {
            r: BufReader::new(r),
            w,
        })
    }

    /// One line, CRLF removed.
    pub async fn line(&mut self) -> Result<String, String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            REPLY_TIMEOUT,
            (&mut self.r).take(MAX_LINE).read_until(b'\n', &mut buf),
        )
        .await
        .map_err(|_| format!("no reply within {REPLY_TIMEOUT:?}"))?
        .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        if buf.last() != Some(&b'\n') {
            return Err("a reply line is too long".into());
        }
        let text = String::from_utf8_lossy(&buf);
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Reads and drops `n` bytes (an IMAP literal).
    pub async fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > MAX_LITERAL {
            return Err(format!("a literal of {n} bytes is too large"));
        }
        let mut left = (&mut self.r).take(n as u64);
        let copied = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio::io::copy(&mut left, &mut tokio::io::sink()),
        )
        .await
        .map_err(|_| format!("no data within {REPLY_TIMEOUT:?}"))?
        .map_err(|e| format!("read failed: {e}"))?;
        if copied < n as u64 {
            return Err("the server closed the connection in a literal".into());
        }
        Ok(())
    }

    /// Sends bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.w
            .write_all(bytes)
            .await
            .map_err(|e| format!("write failed: {e}"))
    }
}

/// Latencies per operation, in the order the operations were first seen.
#[derive(Default)]
pub struct Stats {
    ops: Vec<(&'static str, Vec<Duration>)>,
    events: Vec<(&'static str, usize)>,
}

impl Stats {
    /// Records one operation's latency.
    pub fn add(&mut self, op: &'static str, d: Duration) {
        match self.ops.iter_mut().find(|(name, _)| *name == op) {
            Some((_, v)) => v.push(d),
            None => self.ops.push((op, vec![d])),
        }
    }

    /// Counts an event that has no latency (e.g. an empty mailbox).
    pub fn count(&mut self, what: &'static str) {
        match self.events.iter_mut().find(|(name, _)| *name == what) {
            Some((_, n)) => *n += 1,
            None => self.events.push((what, 1)),
        }
    }

    /// Runs `f` and records its time under `op`.
    pub async fn time<T, F>(&mut self, op: &'static str, f: F) -> Result<T, String>
    where
        F: std::future::Future<Output = Result<T, String>>,
    {
        let t0 = Instant::now();
        let out = f.await.map_err(|e| format!("{op}: {e}"))?;
        self.add(op, t0.elapsed());
        Ok(out)
    }

    /// Adds another client's figures.
    pub fn merge(&mut self, other: Stats) {
        for (op, v) in other.ops {
            for d in v {
                self.add(op, d);
            }
        }
        for (what, n) in other.events {
            for _ in 0..n {
                self.count(what);
            }
        }
    }

    /// Prints a table: per operation, the count, operations per second over the run, and the
    /// latency percentiles.
    pub fn print(&mut self, elapsed: Duration) {
        println!(
            "{:<8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "op", "count", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let secs = elapsed.as_secs_f64().max(1e-9);
        for (op, v) in &mut self.ops {
            v.sort();
            let pct = |p: usize| ms(v[(v.len() * p / 100).min(v.len() - 1)]);
            println!(
                "{:<8} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                op,
                v.len(),
                v.len() as f64 / secs,
                pct(50),
                pct(90),
                pct(99),
                ms(v[v.len() - 1])
            );
        }
        for (what, n) in &self.events {
            println!("{what}: {n}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `clients` copies of `client(i)` in parallel and prints the merged statistics.
pub async fn run_clients<F, Fut>(what: &str, clients: usize, client: F) -> Result<(), String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Stats, String>> + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients).map(|i| tokio::spawn(client(i))).collect();
    let mut all = Stats::default();
    let mut failures = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(s)) => all.merge(s),
            Ok(Err(e)) => failures.push(format!("client {i}: {e}")),
            Err(e) => failures.push(format!("client {i}: {e}")),
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{what}: {clients} client(s), {:.2} s",
        elapsed.as_secs_f64()
    );
    all.print(elapsed);
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(format!("{} client(s) failed; {first}", failures.len())),
    }
}
