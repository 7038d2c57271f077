//! The message queue: `Queue/` in the base directory, the Enqueuer that fills it, the Dequeuer
//! that empties it, and the delivery reports (DSNs) it sends (guide.txt:9791-10008, "Message
//! Transfer"; DESIGN.md §Mail flow).
//!
//! Files: one message per file. A message is composed as `<id>.tmp`, fsynced, renamed to
//! `<id>.msg` and the directory fsynced (guide.txt:9851-9889); only then does `submit` return.
//! Beside it, `<id>.sta` records each recipient's state change, appended and fsynced before the
//! next recipient is tried (format in [`file`]). On start every `.msg` is resubmitted, leftover
//! `.tmp` files are deleted (a composition that never completed), and a file that cannot be read
//! goes to `BadFiles/` with its sidecar, never deleted. A message's files are removed once every
//! recipient is delivered or failed and reported: `.msg` first (directory fsynced), then `.sta`.
//!
//! Guarantee: at least once. A crash between a delivery and its state record delivers that
//! recipient again after restart; nothing else is repeated and nothing accepted is lost.
//!
//! Message ids are `unix milliseconds << 10` plus a counter at start, then increase by one: unique
//! across restarts as long as the clock does not step back past the last id.
//!
//! Lock order: the index mutex is never held across file I/O or a channel call.
//!
//! Holding: a channel defers each recipient it may not send yet (the SMTP module's Hold Mail for
//! Domains, the dial-up link); `release_where` makes a chosen set due again (ETRN, ATRN) and
//! `count_where` says how many wait.
//!
//! Per-domain suspension after a failed SMTP connection is the SMTP channel's
//! (`modules::smtp::suspend`): it defers without connecting and releases the domain's messages
//! here (`release`) when the domain answers again.

pub mod bench;
pub mod dequeuer;
pub mod dsn;
pub mod enqueuer;
pub mod file;
pub mod group;
pub mod settings;

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use crate::kernel::clock::SharedClock;
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::MessageId;
use crate::store::fsutil::sync_dir;

pub use dequeuer::{ChannelKind, Dequeuer};
pub use enqueuer::Enqueuer;
use file::{Envelope, RcptState, RcptStatus, StateRecord};
pub use settings::QueueSettings;

/// Log tag of the Enqueuer (guide.txt:9917).
pub const ENQUEUER: &str = "ENQUEUER";
/// Log tag of the Dequeuer (guide.txt:9967).
pub const DEQUEUER: &str = "DEQUEUER";

/// One queued message in memory (the message bytes stay on disk).
struct Entry {
    env: Arc<Envelope>,
    status: Vec<RcptStatus>,
    /// Per recipient: the queue (module host) it was last routed to, for ReleaseQueue.
    targets: Vec<Option<String>>,
    size: u64,
    due: i64,
    busy: bool,
}

#[derive(Default)]
struct Index {
    entries: HashMap<MessageId, Entry>,
    due: BTreeSet<(i64, MessageId)>,
}

/// A message taken for delivery by one worker.
pub struct Taken {
    /// Its envelope.
    pub env: Arc<Envelope>,
    /// Its recipients' states.
    pub status: Vec<RcptStatus>,
    /// Where each recipient was last routed.
    pub targets: Vec<Option<String>>,
}

/// A queued message as `ListQueue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// Message id.
    pub id: MessageId,
    /// Return-path.
    pub from: String,
    /// Recipients not yet done.
    pub recipients: Vec<String>,
    /// Size of the message in bytes.
    pub size: u64,
    /// Arrival (Unix seconds).
    pub arrived: i64,
    /// `Delivering`, `Deferred: <last error>` or `Waiting` (reports pending).
    pub state: String,
    /// Next attempt (Unix seconds).
    pub next_try: i64,
    /// Who submitted it.
    pub source: String,
}

/// The queue directory and its index; shared by the Enqueuer, the Dequeuer and the CLI.
pub struct Queue {
    dir: PathBuf,
    bad_dir: PathBuf,
    host: String,
    clock: SharedClock,
    logger: Logger,
    settings: RwLock<QueueSettings>,
    next_id: AtomicU64,
    index: Mutex<Index>,
    wake: Condvar,
    stopping: AtomicBool,
}

fn io_other(msg: String) -> io::Error {
    io::Error::other(msg)
}

impl Queue {
    /// Opens `<base>/Queue` (creating it and `BadFiles/`), loads every `.msg`, deletes leftover
    /// `.tmp` files and orphan sidecars, and moves unreadable files to `BadFiles/`.
    pub fn open(
        base: &Path,
        host: &str,
        clock: SharedClock,
        logger: Logger,
        settings: QueueSettings,
    ) -> io::Result<Arc<Queue>> {
        let dir = base.join("Queue");
        let bad_dir = base.join("BadFiles");
        fs::create_dir_all(&dir)?;
        fs::create_dir_all(&bad_dir)?;
        let now_ms = u64::try_from(clock.now().timestamp_millis()).unwrap_or(0);
        let q = Arc::new(Queue {
            dir,
            bad_dir,
            host: host.to_string(),
            clock,
            logger,
            settings: RwLock::new(settings),
            next_id: AtomicU64::new(now_ms << 10),
            index: Mutex::new(Index::default()),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        q.load()?;
        Ok(q)
    }

    fn load(&self) -> io::Result<()> {
        let mut msgs = Vec::new();
        let mut others = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            match name.rsplit_once('.') {
                Some((stem, "msg")) => match stem.parse::<MessageId>() {
                    Ok(id) => msgs.push(id),
                    Err(_) => self.to_bad_files(&name),
                },
                Some((_, "tmp")) => {
                    // guide.txt:9868-9871: a composition that did not complete is discarded.
                    let _ = fs::remove_file(self.dir.join(&name));
                }
                _ => others.push(name),
            }
        }
        let known: std::collections::HashSet<MessageId> = msgs.iter().copied().collect();
        for name in others {
            let orphan = name
                .strip_suffix(".sta")
                .and_then(|s| s.parse::<MessageId>().ok())
                .is_some_and(|id| !known.contains(&id));
            if orphan {
                let _ = fs::remove_file(self.dir.join(&name));
            } else if !name.ends_with(".sta") {
                self.to_bad_files(&name);
            }
        }
        let mut max_id = 0;
        let now = self.now();
        let mut loaded = 0usize;
        for id in msgs {
            max_id = max_id.max(id);
            match self.load_one(id) {
                Ok(entry) => {
                    let mut ix = self.lock();
                    ix.due.insert((now, id));
                    ix.entries.insert(id, Entry { due: now, ..entry });
                    loaded += 1;
                }
                Err(e) => {
                    self.logger.log(
                        Level::Failures,
                        DEQUEUER,
                        format_args!("queue file {id}.msg is unreadable ({e}); moved to BadFiles"),
                    );
                    self.to_bad_files(&format!("{id}.msg"));
                    self.to_bad_files(&format!("{id}.sta"));
                }
            }
        }
        self.next_id.fetch_max(max_id + 1, Ordering::SeqCst);
        if loaded > 0 {
            self.logger.log(
                Level::Major,
                DEQUEUER,
                format_args!("resubmitted {loaded} queued messages"),
            );
        }
        Ok(())
    }

    fn load_one(&self, id: MessageId) -> Result<Entry, String> {
        let bytes = fs::read(self.msg_path(id)).map_err(|e| e.to_string())?;
        let (env, at) = file::decode(&bytes).map_err(|e| e.to_string())?;
        if env.id != id {
            return Err(format!("the file says it is message {}", env.id));
        }
        let sta = self.sta_path(id);
        let side = match fs::read(&sta) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        let (status, used) = file::replay(&side, env.recipients.len(), env.arrived)
            .map_err(|e| format!("{id}.sta: {e}"))?;
        if used < side.len() {
            // A torn record from a crash: cut it so the next append starts a clean line.
            let f = OpenOptions::new()
                .write(true)
                .open(&sta)
                .map_err(|e| e.to_string())?;
            f.set_len(used as u64).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
        }
        let n = env.recipients.len();
        Ok(Entry {
            env: Arc::new(env),
            status,
            targets: vec![None; n],
            size: (bytes.len() - at) as u64,
            due: 0,
            busy: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server name used in reports and trace headers.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The logger.
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// Now, in Unix seconds, by the queue's clock.
    pub fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The current settings.
    pub fn settings(&self) -> QueueSettings {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the settings (the `Queue` module changed) and wakes the workers.
    pub fn set_settings(&self, s: QueueSettings) {
        let mut ls = self.logger.settings();
        ls.levels.insert(DEQUEUER.to_string(), s.log_level);
        ls.levels.insert(ENQUEUER.to_string(), s.log_level);
        self.logger.set_settings(ls);
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = s;
        self.wake.notify_all();
    }

    fn msg_path(&self, id: MessageId) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    fn sta_path(&self, id: MessageId) -> PathBuf {
        self.dir.join(format!("{id}.sta"))
    }

    fn tmp_path(&self, id: MessageId) -> PathBuf {
        self.dir.join(format!("{id}.tmp"))
    }

    fn new_id(&self) -> MessageId {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Moves `Queue/<name>` to `BadFiles/` (under a fresh name if one is there already).
    fn to_bad_files(&self, name: &str) {
        let from = self.dir.join(name);
        if !from.exists() {
            return;
        }
        let mut to = self.bad_dir.join(name);
        let mut n = 1;
        while to.exists() {
            to = self.bad_dir.join(format!("{name}.{n}"));
            n += 1;
        }
        if let Err(e) = fs::rename(&from, &to) {
            self.logger.log(
                Level::Failures,
                DEQUEUER,
                format_args!("cannot move {name} to BadFiles: {e}"),
            );
        }
        let _ = sync_dir(&self.bad_dir);
        let _ = sync_dir(&self.dir);
    }

    /// Adds a freshly written message to the index and wakes a worker.
    fn insert(&self, env: Envelope, size: u64) {
        let now = self.now();
        let n = env.recipients.len();
        let id = env.id;
        let entry = Entry {
            status: file::initial_status(n, env.arrived),
            env: Arc::new(env),
            targets: vec![None; n],
            size,
            due: now,
            busy: false,
        };
        let mut ix = self.lock();
        ix.due.insert((now, id));
        ix.entries.insert(id, entry);
        drop(ix);
        self.wake.notify_one();
    }

    /// Takes the message due soonest if it is due at `now`; it stays busy until [`Queue::finish`].
    pub fn take_due(&self, now: i64) -> Option<(MessageId, Taken)> {
        let mut ix = self.lock();
        let &(due, id) = ix.due.first()?;
        if due > now {
            return None;
        }
        ix.due.remove(&(due, id));
        let e = ix.entries.get_mut(&id)?;
        e.busy = true;
        Some((
            id,
            Taken {
                env: e.env.clone(),
                status: e.status.clone(),
                targets: e.targets.clone(),
            },
        ))
    }

    /// Waits until a message may be due (a submit, a release, a settings change) or `max`.
    pub fn wait(&self, max: Duration) {
        let ix = self.lock();
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let now = self.now();
        let wait = match ix.due.first() {
            Some(&(due, _)) if due <= now => return,
            Some(&(due, _)) => Duration::from_secs(u64::try_from(due - now).unwrap_or(1)).min(max),
            None => max,
        };
        let _ = self
            .wake
            .wait_timeout(ix, wait)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Ends a worker's turn on a message: new states, and when to look at it again (`None`:
    /// it is done and its files are removed now).
    pub fn finish(&self, id: MessageId, taken: Taken, due: Option<i64>) {
        if due.is_none() {
            self.remove_files(id);
        }
        let mut ix = self.lock();
        match due {
            None => {
                ix.entries.remove(&id);
            }
            Some(due) => {
                if let Some(e) = ix.entries.get_mut(&id) {
                    // A release while busy asked for "now"; keep the earlier time.
                    let due = if e.due < 0 { due.min(self.now()) } else { due };
                    e.status = taken.status;
                    e.targets = taken.targets;
                    e.busy = false;
                    e.due = due;
                    ix.due.insert((due, id));
                }
            }
        }
        drop(ix);
        self.wake.notify_one();
    }

    /// Drops a message whose file turned out unreadable: its files go to `BadFiles/`.
    pub fn quarantine(&self, id: MessageId, why: &str) {
        self.logger.log(
            Level::Failures,
            DEQUEUER,
            format_args!("queue file {id}.msg is unreadable ({why}); moved to BadFiles"),
        );
        self.to_bad_files(&format!("{id}.msg"));
        self.to_bad_files(&format!("{id}.sta"));
        self.lock().entries.remove(&id);
    }

    fn remove_files(&self, id: MessageId) {
        match fs::remove_file(self.msg_path(id)) {
            Ok(()) => {
                // The .msg must be gone for good before its states are, or a crash could
                // deliver every recipient again.
                let _ = sync_dir(&self.dir);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.logger.log(
                    Level::Failures,
                    DEQUEUER,
                    format_args!("cannot remove {id}.msg: {e}"),
                );
                return;
            }
        }
        let _ = fs::remove_file(self.sta_path(id));
    }

    /// The message bytes of a queued message (re-read and checked from its file).
    pub fn read_message(&self, id: MessageId) -> Result<Vec<u8>, ReadError> {
        let mut bytes = fs::read(self.msg_path(id)).map_err(ReadError::Io)?;
        let (_, at) = file::decode(&bytes).map_err(|e| ReadError::Bad(e.0))?;
        bytes.drain(..at);
        Ok(bytes)
    }

    /// Appends a state record to the message's sidecar and fsyncs it.
    pub fn record(&self, id: MessageId, rec: &StateRecord) -> io::Result<()> {
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.sta_path(id))?;
        f.write_all(&rec.encode())?;
        f.sync_data()
    }

    /// Stops the workers (they finish the recipient in hand).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ix = self.lock();
        self.wake.notify_all();
    }

    /// Whether [`Queue::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queued messages (for `ListQueue`), oldest first; with `domain`, only those with a
    /// recipient not yet done in that domain (case-insensitive).
    pub fn list(&self, domain: Option<&str>) -> Vec<QueueItem> {
        let ix = self.lock();
        let mut out: Vec<QueueItem> = ix
            .entries
            .iter()
            .filter_map(|(&id, e)| {
                let open: Vec<(usize, &RcptStatus)> = e
                    .status
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !s.state.is_final())
                    .collect();
                let recipients: Vec<String> = open
                    .iter()
                    .filter_map(|(i, _)| e.env.recipients.get(*i).map(|r| r.address.clone()))
                    .collect();
                if let Some(d) = domain {
                    let matches = recipients.iter().any(|a| {
                        a.rsplit_once('@')
                            .is_some_and(|(_, ad)| ad.eq_ignore_ascii_case(d))
                    }) || open.iter().any(|(i, _)| {
                        e.targets
                            .get(*i)
                            .and_then(Option::as_ref)
                            .is_some_and(|t| t.eq_ignore_ascii_case(d))
                    });
                    if !matches {
                        return None;
                    }
                }
                let deferred = open.iter().find_map(|(_, s)| match &s.state {
                    RcptState::Deferred { text, .. } => Some(text.clone()),
                    _ => None,
                });
                let state = if e.busy {
                    "Delivering".to_string()
                } else if let Some(t) = deferred {
                    format!("Deferred: {t}")
                } else if open.is_empty() {
                    "Reporting".to_string()
                } else {
                    "Queued".to_string()
                };
                Some(QueueItem {
                    id,
                    from: e.env.return_path.clone(),
                    recipients,
                    size: e.size,
                    arrived: e.env.arrived,
                    state,
                    next_try: e.due.max(0),
                    source: e.env.source.to_string(),
                })
            })
            .collect();
        out.sort_by_key(|i| (i.arrived, i.id));
        out
    }

    /// Makes deferred recipients due now: all of them, or those whose domain or last routed
    /// queue is `target` (case-insensitive). Returns how many messages were released.
    pub fn release(&self, target: Option<&str>) -> usize {
        self.release_where(|id, queue, domain| match target {
            None => true,
            // A message's own id names it (RetryQueue id, from the queue monitor).
            Some(t) if t == id.to_string() => true,
            Some(t) => {
                queue.is_some_and(|q| q.eq_ignore_ascii_case(t)) || domain.eq_ignore_ascii_case(t)
            }
        })
    }

    /// Makes due now every deferred recipient for which `hit(message id, last routed queue,
    /// recipient domain)` holds; returns how many messages were released (ETRN and ATRN release
    /// a queue by a name pattern).
    pub fn release_where(&self, hit: impl Fn(MessageId, Option<&str>, &str) -> bool) -> usize {
        let now = self.now();
        let mut ix = self.lock();
        let mut released = Vec::new();
        for (&id, e) in ix.entries.iter_mut() {
            let mut any = false;
            for (i, s) in e.status.iter_mut().enumerate() {
                let RcptState::Deferred { next_try, .. } = &mut s.state else {
                    continue;
                };
                let queue = e.targets.get(i).and_then(Option::as_deref);
                let domain = e
                    .env
                    .recipients
                    .get(i)
                    .and_then(|r| r.address.rsplit_once('@'))
                    .map_or("", |(_, d)| d);
                if hit(id, queue, domain) {
                    *next_try = now;
                    any = true;
                }
            }
            if any {
                released.push((id, e.due, e.busy));
                if e.busy {
                    // The worker's finish() sees this and keeps "now".
                    e.due = -1;
                } else {
                    e.due = now;
                }
            }
        }
        for &(id, old, busy) in &released {
            if !busy {
                ix.due.remove(&(old, id));
                ix.due.insert((now, id));
            }
        }
        drop(ix);
        self.wake.notify_all();
        released.len()
    }

    /// Counts the recipients not yet done for which `hit(last routed queue, recipient domain)`
    /// holds; with `due_only`, only those due now or in a worker's hands (an ATRN session waits
    /// until none is left).
    pub fn count_where(&self, due_only: bool, hit: impl Fn(Option<&str>, &str) -> bool) -> usize {
        let now = self.now();
        let ix = self.lock();
        let mut n = 0;
        for e in ix.entries.values() {
            for (i, s) in e.status.iter().enumerate() {
                let due = match &s.state {
                    RcptState::Pending => true,
                    RcptState::Deferred { next_try, .. } => *next_try <= now,
                    _ => continue,
                };
                if due_only && !due && !e.busy {
                    continue;
                }
                let queue = e.targets.get(i).and_then(Option::as_deref);
                let domain = e
                    .env
                    .recipients
                    .get(i)
                    .and_then(|r| r.address.rsplit_once('@'))
                    .map_or("", |(_, d)| d);
                if hit(queue, domain) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Removes a queued message without delivering it or reporting (`DeleteQueuedMessage`).
    pub fn delete(&self, id: MessageId) -> Result<(), String> {
        let mut ix = self.lock();
        let Some(e) = ix.entries.get(&id) else {
            return Err("Unknown message".into());
        };
        if e.busy {
            return Err("The message is being delivered; try again".into());
        }
        let due = e.due;
        ix.due.remove(&(due, id));
        ix.entries.remove(&id);
        drop(ix);
        self.remove_files(id);
        self.logger.log(
            Level::Major,
            DEQUEUER,
            format_args!("message {id} deleted from the queue by the administrator"),
        );
        Ok(())
    }

    /// A text dump of one queued message's envelope and states (the inspector's view and the
    /// tests' oracle).
    pub fn dump(&self, id: MessageId) -> Option<String> {
        let ix = self.lock();
        let e = ix.entries.get(&id)?;
        Some(dump_entry(&e.env, &e.status, e.size))
    }
}

/// The dump text of one message.
pub fn dump_entry(env: &Envelope, status: &[RcptStatus], size: u64) -> String {
    let mut out = format!(
        "Message {}\nFrom: <{}>\nSource: {}\nArrived: {}\nSize: {size}\n",
        env.id, env.return_path, env.source, env.arrived
    );
    if let Some(e) = &env.env_id {
        out.push_str(&format!("ENVID: {e}\n"));
    }
    if let Some(r) = env.ret {
        out.push_str(&format!("RET: {r:?}\n"));
    }
    for (r, s) in env.recipients.iter().zip(status) {
        let state = match &s.state {
            RcptState::Pending => "pending".to_string(),
            RcptState::Delivered => "delivered".to_string(),
            RcptState::Relayed => "relayed".to_string(),
            RcptState::PassedOn => "relayed (the next hop reports)".to_string(),
            RcptState::Failed(t) => format!("failed ({t})"),
            RcptState::Deferred { text, next_try } => {
                format!("deferred until {next_try} ({text})")
            }
        };
        out.push_str(&format!(
            "Rcpt <{}>: {state}; attempts {}{}{}\n",
            r.address,
            s.attempts,
            if s.reported { "; reported" } else { "" },
            if s.warned { "; warned" } else { "" },
        ));
    }
    out
}

/// Why a queued message cannot be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file system failed (try later).
    Io(io::Error),
    /// The file is damaged (it goes to `BadFiles/`).
    Bad(String),
}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        match e {
            ReadError::Io(e) => e,
            ReadError::Bad(m) => io_other(m),
        }
    }
}

#[cfg(test)]
mod tests;
