//! The in-process local-delivery benchmark behind `gatehouse-bench local` (issue 4 item 8):
//! submitters push messages through the real Enqueuer (fsync on) into a queue in a scratch base
//! directory; the real Dequeuer routes each to a channel that appends it to one mailbox file and
//! fsyncs it (the cost Local Delivery pays per message). Prints submits per second with the
//! submit latency, and end-to-end deliveries per second with the latency from submit to the
//! mailbox fsync, at p50/p90/p99.
//!
//! It writes only under its own directory (`--base`, default a fresh one in the system temp
//! directory, removed afterwards).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{ChannelKind, Dequeuer, Enqueuer, Queue, QueueSettings};
use crate::kernel::clock::SystemClock;
use crate::kernel::log::{Level, LogSettings, Logger};
use crate::kernel::mail::{
    Channel, Job, MessageId, NewRecipient, Outcome, Route, RouteError, Routed, Source, Submission,
    Submit, Target,
};

/// Usage of the `local` subcommand.
pub const USAGE: &str = "gatehouse-bench local [--messages N] [--size BYTES] [--submitters N] \
[--processors N] [--rate PER_SECOND] [--base DIR]   (without --size: 1 KB and 100 KB runs; \
--rate paces the submits, so end-to-end latency is measured without a backlog)";

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct LocalArgs {
    /// Messages per run.
    pub messages: usize,
    /// Message sizes, one run each.
    pub sizes: Vec<usize>,
    /// Submitting threads.
    pub submitters: usize,
    /// Dequeuer processors.
    pub processors: usize,
    /// Submits per second over all submitters; 0 = as fast as they can.
    pub rate: usize,
    /// Scratch base directory (kept when given).
    pub base: Option<PathBuf>,
}

impl LocalArgs {
    /// Parses the flags after `local`.
    pub fn parse(args: &[String]) -> Result<LocalArgs, String> {
        let mut a = LocalArgs {
            messages: 2000,
            sizes: vec![1024, 100 * 1024],
            submitters: 4,
            processors: 2,
            rate: 0,
            base: None,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\nusage: {USAGE}"))?;
            let num = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: {value} is not a number"))
            };
            match flag.as_str() {
                "--messages" => a.messages = num()?.max(1),
                "--size" => a.sizes = vec![num()?],
                "--submitters" => a.submitters = num()?.clamp(1, 256),
                "--processors" => a.processors = num()?.clamp(1, 64),
                "--rate" => a.rate = num()?,
                "--base" => a.base = Some(PathBuf::from(value)),
                _ => return Err(format!("unknown flag {flag}\nusage: {USAGE}")),
            }
        }
        Ok(a)
    }
}

/// Every address goes to one local account.
struct OneAccount;

impl Route for OneAccount {
    fn route(&self, _: &str) -> Result<Routed, RouteError> {
        Ok(Routed {
            target: Target::Local {
                domain: "bench.example".into(),
                account: "bench".into(),
                mailbox: None,
                detail: None,
            },
            relay: false,
        })
    }
}

/// Appends each message to one file and fsyncs it; notes when each message was delivered.
struct AppendChannel {
    file: Mutex<File>,
    done: Mutex<HashMap<MessageId, Instant>>,
    count: AtomicUsize,
}

impl Channel for AppendChannel {
    fn deliver(&self, job: &Job<'_>) -> Outcome {
        let written = {
            let mut f = self.file.lock().unwrap_or_else(PoisonError::into_inner);
            f.write_all(job.message).and_then(|_| f.sync_data())
        };
        match written {
            Ok(()) => {
                self.done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(job.id, Instant::now());
                self.count.fetch_add(1, Ordering::SeqCst);
                Outcome::Delivered
            }
            Err(e) => Outcome::Deferred(e.to_string()),
        }
    }
}

fn message(size: usize) -> Vec<u8> {
    let mut m =
        b"From: <bench@bench.example>\r\nTo: <bench@bench.example>\r\nSubject: gatehouse-bench local\r\n\r\n"
            .to_vec();
    while m.len() < size {
        m.extend_from_slice(&[b'x'; 76]);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// `(p50, p90, p99)` in milliseconds of sorted durations.
fn percentiles(sorted: &[Duration]) -> (f64, f64, f64) {
    let pct = |p: usize| {
        sorted
            .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (pct(50), pct(90), pct(99))
}

/// Runs the benchmark and prints its figures.
pub fn run(a: &LocalArgs) -> Result<(), String> {
    for &size in &a.sizes {
        let scratch = match &a.base {
            Some(b) => b.join(format!("bench-{size}")),
            None => {
                std::env::temp_dir().join(format!("gatehouse-bench-{}-{size}", std::process::id()))
            }
        };
        let result = run_one(a, size, &scratch);
        if a.base.is_none() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        result?;
    }
    Ok(())
}

fn run_one(a: &LocalArgs, size: usize, base: &std::path::Path) -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(base).map_err(err)?;
    let logger = Logger::open(
        base.join("SystemLogs"),
        LogSettings {
            default_level: Level::Failures,
            ..LogSettings::default()
        },
        SystemClock::shared(),
    )
    .map_err(err)?;
    let settings = QueueSettings {
        processors: a.processors,
        log_level: Level::Failures,
        ..QueueSettings::default()
    };
    let queue = Queue::open(
        base,
        "bench.example",
        SystemClock::shared(),
        logger.clone(),
        settings,
    )
    .map_err(err)?;
    let enqueuer = Arc::new(Enqueuer::new(queue.clone()));
    let dequeuer = Dequeuer::new(queue.clone(), enqueuer.clone());
    let channel = Arc::new(AppendChannel {
        file: Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(base.join("INBOX.mbox"))
                .map_err(err)?,
        ),
        done: Mutex::new(HashMap::new()),
        count: AtomicUsize::new(0),
    });
    dequeuer.set_router(Arc::new(OneAccount));
    dequeuer.set_channel(ChannelKind::Local, channel.clone());
    dequeuer.start();

    let msg = Arc::new(message(size));
    let started_at: Arc<Mutex<HashMap<MessageId, Instant>>> = Arc::default();
    let start = Instant::now();
    let per = a.messages.div_ceil(a.submitters);
    let mut threads = Vec::new();
    for t in 0..a.submitters {
        let n = per.min(a.messages.saturating_sub(t * per));
        let (enqueuer, msg, started_at) = (enqueuer.clone(), msg.clone(), started_at.clone());
        let (submitters, rate) = (a.submitters, a.rate);
        threads.push(std::thread::spawn(
            move || -> Result<Vec<Duration>, String> {
                let mut lat = Vec::with_capacity(n);
                for k in 0..n {
                    if rate > 0 {
                        let at = Duration::from_secs_f64((k * submitters + t) as f64 / rate as f64);
                        if let Some(wait) = (start + at).checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let t0 = Instant::now();
                    let id = enqueuer
                        .submit(
                            Submission {
                                return_path: "bench@bench.example".into(),
                                recipients: vec![NewRecipient::new("bench@bench.example")],
                                source: Source::Cli,
                                env_id: None,
                                ret: None,
                            },
                            &msg,
                        )
                        .map_err(|e| e.to_string())?;
                    lat.push(t0.elapsed());
                    started_at
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id, t0);
                }
                Ok(lat)
            },
        ));
    }
    let mut submit_lat = Vec::new();
    for t in threads {
        submit_lat.extend(t.join().map_err(|_| "a submitter panicked".to_string())??);
    }
    let submitted_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while channel.count.load(Ordering::SeqCst) < submit_lat.len() || !queue.is_empty() {
        if Instant::now() > deadline {
            dequeuer.stop();
            return Err("deliveries did not finish within 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let delivered_in = start.elapsed();
    dequeuer.stop();
    logger.shutdown();

    let started_at = started_at.lock().unwrap_or_else(PoisonError::into_inner);
    let done = channel.done.lock().unwrap_or_else(PoisonError::into_inner);
    let mut e2e: Vec<Duration> = started_at
        .iter()
        .filter_map(|(id, t0)| done.get(id).map(|t1| t1.duration_since(*t0)))
        .collect();
    submit_lat.sort();
    e2e.sort();
    let n = submit_lat.len() as f64;
    let (s50, s90, s99) = percentiles(&submit_lat);
    let (e50, e90, e99) = percentiles(&e2e);
    println!(
        "local: {} messages of {} bytes, {} submitter(s), {} processor(s), rate {}, fsync on, in {}",
        submit_lat.len(),
        msg.len(),
        a.submitters,
        a.processors,
        if a.rate > 0 {
            format!("{}/s", a.rate)
        } else {
            "unlimited".to_string()
        },
        base.display()
    );
    println!(
        "  submit:     {:.1} messages/s; latency p50 {s50:.2} ms, p90 {s90:.2} ms, p99 {s99:.2} ms",
        n / submitted_in.as_secs_f64()
    );
    println!(
        "  end to end: {:.1} messages/s; latency p50 {e50:.2} ms, p90 {e90:.2} ms, p99 {e99:.2} ms",
        n / delivered_in.as_secs_f64()
    );
    Ok(())
}
