//! The System Log: one text log shared by every component of the server.
//!
//! Guide: "Server Logs", guide.txt:3022-3140 (records, daily files, Log Engine options, viewer
//! filters); guide.txt:2446-2447 (time stamps are the server's local time); guide.txt:2484
//! (`--LogAll`); guide.txt:7356-7369 (`WRITELOG`, `SYSTEM` tag); guide.txt:11063 (Level 2 = Major).
//!
//! Log levels. The guide names the levels but gives numbers only for Major (2, guide.txt:11063),
//! Problems (3) and All Info (5, guide.txt:3125-3128). The rest of the scale is ours, chosen so
//! the names keep their order of detail: 0 Nothing, 1 Failures, 2 Major ("Major & Failures",
//! guide.txt:9977), 3 Problems, 4 Low-Level, 5 All Info. A record is written when its level is
//! at most its component's configured level; `Nothing` is a setting only (writes nothing).
//!
//! Record format, one record per line, UTF-8, in the server's local time:
//!
//! ```text
//! HH:MM:SS.mmm L TAG text
//! 14:03:07.512 2 SMTPI-12 message 1234 received from <a@b.c>
//! ```
//!
//! `L` is the level digit; `TAG` is the component name, optionally with `-` and a session number
//! (`POP-12357`, guide.txt:3127); bytes other than printable ASCII and `-` in a tag become `_`.
//! In the text, `\` is written `\\`, LF `\n`, CR `\r`, TAB `\t`, other ASCII controls `\xHH`, and
//! C1 controls and U+2028/U+2029 `\uHHHH`, so a record is always exactly one line and a reader can
//! undo the escaping. Overlong texts are cut and end with ` [truncated]`.
//!
//! Files: `SystemLogs/YYYY-MM-DD.log`, a new one at local midnight. When the file would exceed
//! "or if Larger than", or is older than "Start New File every", the log continues in
//! `YYYY-MM-DD-2.log`, `-3`, ... A file is named in the viewer by its stem (`2001-04-04`,
//! `2001-04-04-2`). Shortly after a new file is started, files whose day lies more than
//! "Delete Old Files in" days before today are removed; the active file never is.
//! A [`RecordId`] (`YYYY-MM-DD-N:offset`, the file and the byte offset of the record) is stable
//! and ordered, so a client can poll "everything after X" across file changes.
//!
//! Security: records carry text from the network (addresses, commands); the escaping above keeps
//! a peer from forging records with embedded line breaks. Readers only open names that parse as
//! log file names, so no path from a query reaches the file system.
//!
//! Implementation: callers never touch files. [`Logger::log`] stamps the record and puts it on a
//! bounded queue; one writer thread drains the queue in batches, writes, flushes after each batch,
//! mirrors to stderr (`--log-to-console`) and to live subscribers. When the queue is full a caller
//! waits at most [`QUEUE_FULL_WAIT`], then the record is counted as dropped and the writer reports
//! the count in a `SYSTEM` record. Logs are appended, not written via temp file and rename, and
//! are not fsynced per record (a crash may lose the last batch); [`Logger::shutdown`] flushes and
//! fsyncs. The file date never goes backwards: a record stamped before the active file's day
//! (clock stepped back over midnight) is written to the active file. Reading is blocking file
//! I/O: async callers use `spawn_blocking`.
//!
//! todo: the Log Engine settings are not stored here (the owner of `Settings/` passes them in and
//! calls [`Logger::set_settings`]); the viewer's streaming "future end time" is left to WebAdmin,
//! on top of [`Logger::subscribe`].

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Display, Write as _};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use tokio::sync::broadcast;

use super::clock::SharedClock;

/// Records waiting for the writer before callers start to wait and then drop.
const QUEUE_CAPACITY: usize = 16 * 1024;
/// How long [`Logger::log`] may wait for room in a full queue.
pub const QUEUE_FULL_WAIT: Duration = Duration::from_millis(20);
/// How often the idle writer wakes to start a new file at midnight or after the period.
const WRITER_TICK: Duration = Duration::from_secs(1);
/// Longest record line written and read (bytes, without the line end).
const MAX_LINE: usize = 64 * 1024;
/// Longest tag kept.
const MAX_TAG: usize = 64;
/// Records buffered for slow live subscribers.
const LIVE_CAPACITY: usize = 1024;
/// Most records one [`Logger::read`] returns.
pub const MAX_READ_LIMIT: usize = 100_000;
const TRUNCATED: &str = " [truncated]";

/// A log level (guide.txt:3125-3128); lower numbers are more important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// 0: record nothing (a setting, never a record's level).
    Nothing = 0,
    /// 1: failures only (e.g. file system errors).
    Failures = 1,
    /// 2: major events and failures ("Major & Failures").
    Major = 2,
    /// 3: problems.
    Problems = 3,
    /// 4: low-level (protocol and link level) details.
    LowLevel = 4,
    /// 5: everything.
    AllInfo = 5,
}

impl Level {
    /// Every level, least detailed first.
    pub const ALL: [Level; 6] = [
        Level::Nothing,
        Level::Failures,
        Level::Major,
        Level::Problems,
        Level::LowLevel,
        Level::AllInfo,
    ];

    /// The level with this number (0-5).
    pub fn from_number(n: u32) -> Option<Level> {
        Level::ALL.get(usize::try_from(n).ok()?).copied()
    }

    /// The level's number, as written in records.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The guide's name of the level.
    pub fn name(self) -> &'static str {
        match self {
            Level::Nothing => "Nothing",
            Level::Failures => "Failures",
            Level::Major => "Major",
            Level::Problems => "Problems",
            Level::LowLevel => "Low-Level",
            Level::AllInfo => "All Info",
        }
    }
}

impl Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not a log level name or number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level")]
pub struct ParseLevelError;

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Accepts the number or the guide's name, case-insensitively, with the variants the guide
    /// uses ("Major & Failures", "Low Level", "AllInfo"; "None" for Nothing).
    fn from_str(s: &str) -> Result<Level, ParseLevelError> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u32>() {
            return Level::from_number(n).ok_or(ParseLevelError);
        }
        let key: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '&')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "nothing" | "none" => Ok(Level::Nothing),
            "failures" => Ok(Level::Failures),
            "major" | "major&failures" => Ok(Level::Major),
            "problems" => Ok(Level::Problems),
            "lowlevel" => Ok(Level::LowLevel),
            "allinfo" => Ok(Level::AllInfo),
            _ => Err(ParseLevelError),
        }
    }
}

/// The Log Engine options (guide.txt:3043-3055) and the per-component Log levels.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    /// Level of components without an entry in `levels`.
    pub default_level: Level,
    /// Each component's "Log" setting, keyed by its tag as spelled in records (`SMTP`, `POP`).
    pub levels: HashMap<String, Level>,
    /// `--LogAll` (guide.txt:2484): ignore the levels and record everything.
    pub log_all: bool,
    /// `--log-to-console`: mirror records to stderr.
    pub log_to_console: bool,
    /// "Start New File every": start a new file when the active one is this old.
    pub start_new_file_every: Option<Duration>,
    /// "or if Larger than": start a new file before the active one would exceed this many bytes.
    pub max_file_size: Option<u64>,
    /// "Delete Old Files in": remove files whose day is more than this many days before today.
    pub delete_old_files_in: Option<u32>,
}

impl Default for LogSettings {
    fn default() -> LogSettings {
        LogSettings {
            default_level: Level::Major,
            levels: HashMap::new(),
            log_all: false,
            log_to_console: false,
            start_new_file_every: None,
            max_file_size: None,
            delete_old_files_in: None,
        }
    }
}

impl LogSettings {
    /// The configured level of a component (the tag up to its first `-`).
    pub fn level_for(&self, component: &str) -> Level {
        self.levels
            .get(component)
            .copied()
            .unwrap_or(self.default_level)
    }

    /// Whether a record of this level from this component is written.
    pub fn enabled(&self, level: Level, component: &str) -> bool {
        level != Level::Nothing && (self.log_all || level <= self.level_for(component))
    }
}

/// One log file: its day and its number within the day (1 for `YYYY-MM-DD.log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogFileId {
    /// The local day of the file's records.
    pub date: NaiveDate,
    /// 1 for the day's first file, 2 for `YYYY-MM-DD-2.log`, ...
    pub seq: u32,
}

impl LogFileId {
    /// Parses a file stem (`2001-04-04`, `2001-04-04-2`), with or without `.log`.
    pub fn parse(name: &str) -> Option<LogFileId> {
        let stem = name.strip_suffix(".log").unwrap_or(name);
        let date_part = stem.get(..10)?;
        if !date_part.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()?;
        let seq = match stem.get(10..)? {
            "" => 1,
            rest => {
                let digits = rest.strip_prefix('-')?;
                if digits.is_empty()
                    || digits.len() > 9
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                let seq: u32 = digits.parse().ok()?;
                if seq < 2 {
                    return None;
                }
                seq
            }
        };
        let id = LogFileId { date, seq };
        // Only the canonical spelling names a file, so one file has one id.
        (id.to_string() == stem).then_some(id)
    }

    /// The file's name in `SystemLogs/`.
    pub fn file_name(&self) -> String {
        format!("{self}.log")
    }
}

impl Display for LogFileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date.format("%Y-%m-%d"))?;
        if self.seq > 1 {
            write!(f, "-{}", self.seq)?;
        }
        Ok(())
    }
}

/// Where a record lies: its file and the byte offset of its line. Orders as the log does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    /// The file holding the record.
    pub file: LogFileId,
    /// Byte offset of the record's line in the file.
    pub offset: u64,
}

impl Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

/// A string that is not a record id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad log record id")]
pub struct ParseRecordIdError;

impl FromStr for RecordId {
    type Err = ParseRecordIdError;

    fn from_str(s: &str) -> Result<RecordId, ParseRecordIdError> {
        let (file, offset) = s.rsplit_once(':').ok_or(ParseRecordIdError)?;
        if offset.is_empty() || offset.len() > 20 || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseRecordIdError);
        }
        Ok(RecordId {
            file: LogFileId::parse(file)
                .filter(|_| !file.ends_with(".log"))
                .ok_or(ParseRecordIdError)?,
            offset: offset.parse().map_err(|_| ParseRecordIdError)?,
        })
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the record was written.
    pub id: RecordId,
    /// Local time stamp (millisecond precision once written).
    pub time: NaiveDateTime,
    /// The record's level.
    pub level: Level,
    /// Component tag, optionally with a session number (`POP-12357`).
    pub tag: String,
    /// The record data, unescaped.
    pub text: String,
}

impl Display for Record {
    /// The record as its line in the file (without the line end).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = String::with_capacity(self.text.len() + 32);
        push_line(&mut line, self.time, self.level, &self.tag, &self.text);
        f.write_str(&line)
    }
}

/// A file in the log list (guide.txt:3060-3075).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileInfo {
    /// The file's stem, e.g. `2001-04-04` or `2001-04-04-2`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The active file (marked `*` in the list).
    pub current: bool,
}

/// What [`Logger::read`] returns (the viewer's Level, Filter and Interval, guide.txt:3089-3133).
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    /// Only files of this day.
    pub day: Option<NaiveDate>,
    /// Only this file (its stem, `.log` optional).
    pub file: Option<String>,
    /// Hide records more detailed than this level.
    pub max_level: Option<Level>,
    /// Only this component or session: the tag equals it or continues it after a `-`
    /// (`POP` matches `POP` and `POP-12`; `POP-12` does not match `POP-123`). ASCII case ignored.
    pub tag_prefix: Option<String>,
    /// Only records whose tag or text contains this string (ASCII case ignored).
    pub text: Option<String>,
    /// Only records at or after this local time.
    pub from: Option<NaiveDateTime>,
    /// Only records at or before this local time.
    pub to: Option<NaiveDateTime>,
    /// Only records after this one.
    pub after: Option<RecordId>,
    /// At most this many records (capped at [`MAX_READ_LIMIT`]).
    pub limit: usize,
    /// Return the last `limit` matching records instead of the first.
    pub last: bool,
}

impl Default for LogQuery {
    fn default() -> LogQuery {
        LogQuery {
            day: None,
            file: None,
            max_level: None,
            tag_prefix: None,
            text: None,
            from: None,
            to: None,
            after: None,
            limit: 1000,
            last: false,
        }
    }
}

impl LogQuery {
    fn matches(&self, r: &Record) -> bool {
        self.max_level.is_none_or(|l| r.level <= l)
            && self.from.is_none_or(|t| r.time >= t)
            && self.to.is_none_or(|t| r.time <= t)
            && self
                .tag_prefix
                .as_deref()
                .is_none_or(|p| tag_matches(&r.tag, p))
            && self
                .text
                .as_deref()
                .is_none_or(|s| contains_ci(&r.tag, s) || contains_ci(&r.text, s))
    }
}

fn tag_matches(tag: &str, prefix: &str) -> bool {
    let (t, p) = (tag.as_bytes(), prefix.as_bytes());
    t.len() >= p.len()
        && t[..p.len()].eq_ignore_ascii_case(p)
        && (t.len() == p.len() || t[p.len()] == b'-' || p.is_empty())
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The System Log. Cheap to clone; all clones write to the same files.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by callers and the writer thread.
struct Shared {
    settings: RwLock<LogSettings>,
    clock: SharedClock,
    /// Records dropped since the writer last reported.
    dropped: AtomicU64,
    /// Records dropped since the log was opened.
    dropped_total: AtomicU64,
    live: broadcast::Sender<Record>,
    current: Mutex<Option<LogFileId>>,
}

impl Logger {
    /// Opens the log in `system_logs_dir` (created if missing), continuing today's newest file,
    /// and starts the writer thread.
    pub fn open(
        system_logs_dir: impl Into<PathBuf>,
        settings: LogSettings,
        clock: SharedClock,
    ) -> io::Result<Logger> {
        let dir = system_logs_dir.into();
        fs::create_dir_all(&dir)?;
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let shared = Arc::new(Shared {
            settings: RwLock::new(settings),
            clock,
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            live,
            current: Mutex::new(None),
        });
        let queue = Arc::new(Queue::new(QUEUE_CAPACITY));
        let mut writer = Writer {
            dir: dir.clone(),
            shared: Arc::clone(&shared),
            queue: Arc::clone(&queue),
            file: None,
            notes: Vec::new(),
            failing: false,
        };
        writer.open_at_start()?;
        let handle = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run())?;
        Ok(Logger {
            inner: Arc::new(Inner {
                dir,
                shared,
                queue,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Whether a record of `level` from `component` (a tag up to its first `-`) would be written.
    pub fn enabled(&self, level: Level, component: &str) -> bool {
        self.settings_read().enabled(level, component)
    }

    /// Writes a record if its component's level allows. `tag` is the component's tag, optionally
    /// with `-` and a session number (`SMTPI-12`). Never blocks for long (see module notes).
    pub fn log(&self, level: Level, tag: &str, text: impl Display) {
        let component = tag.split('-').next().unwrap_or(tag);
        if !self.enabled(level, component) {
            return;
        }
        let pending = Pending {
            time: self.inner.shared.clock.now(),
            level,
            tag: sanitize_tag(tag),
            text: text.to_string(),
        };
        if !self.inner.queue.push_record(pending) {
            self.inner.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.inner
                .shared
                .dropped_total
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the queue stayed full or the log was shut down.
    pub fn dropped(&self) -> u64 {
        self.inner.shared.dropped_total.load(Ordering::Relaxed)
    }

    /// The current settings.
    pub fn settings(&self) -> LogSettings {
        self.settings_read().clone()
    }

    /// Replaces the settings; levels apply to the next `log` call, file options to the next batch.
    pub fn set_settings(&self, settings: LogSettings) {
        *self
            .inner
            .shared
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
    }

    /// A live feed of records as they are written (the viewer's future end time, guide.txt:3100).
    pub fn subscribe(&self) -> broadcast::Receiver<Record> {
        self.inner.shared.live.subscribe()
    }

    /// Waits until every record logged before this call is written and flushed (blocking).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.inner.queue.push_control(Msg::Flush(tx)) {
            // An error means the writer is gone, so there is nothing left to wait for.
            let _ = rx.recv();
        }
    }

    /// Stops accepting records, lets the writer write, flush and fsync what is queued, and waits
    /// for it. Records logged afterwards are dropped.
    pub fn shutdown(&self) {
        self.inner.stop();
    }

    /// The log files, oldest first (guide.txt:3031-3075).
    pub fn list_files(&self) -> io::Result<Vec<LogFileInfo>> {
        let current = self.current();
        let mut out = Vec::new();
        for id in list_ids(&self.inner.dir)? {
            let size = match fs::metadata(self.inner.dir.join(id.file_name())) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(LogFileInfo {
                name: id.to_string(),
                size,
                current: current == Some(id),
            });
        }
        Ok(out)
    }

    /// The active file.
    pub fn current(&self) -> Option<LogFileId> {
        *self
            .inner
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Deletes a log file ("Delete Marked Logs", guide.txt:3056-3058); the active one is refused.
    pub fn delete_file(&self, name: &str) -> io::Result<()> {
        let id = LogFileId::parse(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a log file name"))?;
        let current = self
            .inner
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current == Some(id) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the active log file cannot be deleted",
            ));
        }
        fs::remove_file(self.inner.dir.join(id.file_name()))
    }

    /// Reads records matching `q`, in log order. Streams the files line by line; a torn last
    /// line (being written) and unreadable lines are skipped.
    pub fn read(&self, q: &LogQuery) -> io::Result<Vec<Record>> {
        let limit = q.limit.min(MAX_READ_LIMIT);
        let mut out = VecDeque::new();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ids = match &q.file {
            Some(name) => vec![LogFileId::parse(name).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "not a log file name")
            })?],
            None => list_ids(&self.inner.dir)?,
        };
        for id in ids {
            if q.day.is_some_and(|d| d != id.date) || q.after.is_some_and(|a| id < a.file) {
                continue;
            }
            let file = match File::open(self.inner.dir.join(id.file_name())) {
                Ok(f) => f,
                // Deleted by age since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound && q.file.is_none() => continue,
                Err(e) => return Err(e),
            };
            let mut r = BufReader::new(file);
            let mut offset = 0;
            let mut line = Vec::new();
            if let Some(after) = q.after.filter(|a| a.file == id) {
                // Skip the record `after` itself: seek to it and read past its line end.
                offset = r.seek(SeekFrom::Start(after.offset))?;
                match next_line(&mut r, &mut line)? {
                    (Line::Full | Line::TooLong, n) => offset += n,
                    (Line::Torn | Line::Eof, _) => continue,
                }
            }
            loop {
                let (kind, n) = next_line(&mut r, &mut line)?;
                let id = RecordId { file: id, offset };
                offset += n;
                match kind {
                    Line::Full => {}
                    Line::TooLong => continue,
                    Line::Torn | Line::Eof => break,
                }
                let Some(rec) = parse_line(&line, id) else {
                    continue;
                };
                if !q.matches(&rec) {
                    continue;
                }
                out.push_back(rec);
                if out.len() > limit {
                    out.pop_front();
                }
                if !q.last && out.len() == limit {
                    return Ok(out.into());
                }
            }
        }
        Ok(out.into())
    }

    fn settings_read(&self) -> std::sync::RwLockReadGuard<'_, LogSettings> {
        self.inner
            .shared
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn stop(&self) {
        self.queue.close();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            // A panicked writer has nothing left to flush.
            let _ = h.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The log file names in `dir`, oldest first; other files are ignored.
fn list_ids(dir: &Path) -> io::Result<Vec<LogFileId>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(id) = name
            .to_str()
            .filter(|n| n.ends_with(".log"))
            .and_then(LogFileId::parse)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// A tag kept to printable ASCII without spaces, so it stays one field of the line.
fn sanitize_tag(tag: &str) -> String {
    let mut out: String = tag
        .chars()
        .take(MAX_TAG)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Appends `HH:MM:SS.mmm L TAG text` (text escaped, cut to fit [`MAX_LINE`]).
fn push_line(out: &mut String, time: NaiveDateTime, level: Level, tag: &str, text: &str) {
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{} {} {} ",
        time.format("%H:%M:%S%.3f"),
        level.number(),
        tag
    );
    let budget = MAX_LINE.saturating_sub(out.len() + TRUNCATED.len());
    if escape_into(out, text, budget) {
        out.push_str(TRUNCATED);
    }
}

/// Escapes `text` into `out` (see the module notes); returns true if it was cut at `budget` bytes.
fn escape_into(out: &mut String, text: &str, budget: usize) -> bool {
    let start = out.len();
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let mut esc = String::new();
        let piece: &str = match c {
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c.is_ascii_control() => {
                let _ = write!(esc, "\\x{:02X}", c as u32);
                &esc
            }
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(esc, "\\u{:04X}", c as u32);
                &esc
            }
            c => c.encode_utf8(&mut buf),
        };
        if out.len() - start + piece.len() > budget {
            return true;
        }
        out.push_str(piece);
    }
    false
}

/// Undoes [`escape_into`]; an unknown or broken escape is kept as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (c, used) = match rest.as_bytes().get(1) {
            Some(b'\\') => (Some('\\'), 2),
            Some(b'n') => (Some('\n'), 2),
            Some(b'r') => (Some('\r'), 2),
            Some(b't') => (Some('\t'), 2),
            Some(b'x') => (hex_char(rest.get(2..4)), 4),
            Some(b'u') => (hex_char(rest.get(2..6)), 6),
            _ => (None, 1),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('\\');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn hex_char(digits: Option<&str>) -> Option<char> {
    let d = digits?;
    if !d.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    char::from_u32(u32::from_str_radix(d, 16).ok()?)
}

/// Parses one line (without its end) of file `id.file` into a record.
fn parse_line(line: &[u8], id: RecordId) -> Option<Record> {
    let s = std::str::from_utf8(line).ok()?;
    let time = NaiveTime::parse_from_str(s.get(..12)?, "%H:%M:%S%.3f").ok()?;
    let rest = s.get(12..)?.strip_prefix(' ')?;
    let mut level_digit = rest.chars();
    let level = Level::from_number(level_digit.next()?.to_digit(10)?)?;
    let rest = level_digit.as_str().strip_prefix(' ')?;
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    if tag.is_empty() {
        return None;
    }
    Some(Record {
        id,
        time: id.file.date.and_time(time),
        level,
        tag: tag.to_owned(),
        text: unescape(text),
    })
}

enum Line {
    /// A complete line (in the buffer, without `\n`).
    Full,
    /// A complete line longer than [`MAX_LINE`] (buffer emptied).
    TooLong,
    /// Bytes at the end of the file without a line end.
    Torn,
    /// End of file.
    Eof,
}

/// Reads the next line into `buf`, keeping at most [`MAX_LINE`] bytes; returns its kind and the
/// bytes consumed.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<(Line, u64)> {
    buf.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            let kind = if consumed == 0 { Line::Eof } else { Line::Torn };
            return Ok((kind, consumed));
        }
        let (chunk, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if !too_long && buf.len() + chunk.len() > MAX_LINE {
            too_long = true;
            buf.clear();
        }
        if !too_long {
            buf.extend_from_slice(chunk);
        }
        let n = done.unwrap_or(avail.len());
        r.consume(n);
        consumed += n as u64;
        if done.is_some() {
            let kind = if too_long { Line::TooLong } else { Line::Full };
            return Ok((kind, consumed));
        }
    }
}

/// A record on its way to the writer.
struct Pending {
    time: DateTime<FixedOffset>,
    level: Level,
    tag: String,
    text: String,
}

enum Msg {
    Record(Pending),
    Flush(mpsc::Sender<()>),
}

/// A bounded queue of records; control messages bypass the bound.
struct Queue {
    state: Mutex<QueueState>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

struct QueueState {
    items: Vec<Msg>,
    records: usize,
    closed: bool,
}

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                items: Vec::new(),
                records: 0,
                closed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a record, waiting at most [`QUEUE_FULL_WAIT`] for room; false if not queued.
    fn push_record(&self, p: Pending) -> bool {
        let deadline = Instant::now() + QUEUE_FULL_WAIT;
        let mut st = self.lock();
        while st.records >= self.capacity && !st.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .not_full
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if st.closed {
            return false;
        }
        st.items.push(Msg::Record(p));
        st.records += 1;
        self.not_empty.notify_one();
        true
    }

    fn push_control(&self, m: Msg) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        st.items.push(m);
        self.not_empty.notify_one();
        true
    }

    fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Takes everything queued, waiting up to `timeout` for something; `None` once closed and empty.
    fn take(&self, timeout: Duration) -> Option<Vec<Msg>> {
        let mut st = self.lock();
        if st.items.is_empty() && !st.closed {
            st = self
                .not_empty
                .wait_timeout(st, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if st.items.is_empty() && st.closed {
            return None;
        }
        st.records = 0;
        let batch = std::mem::take(&mut st.items);
        self.not_full.notify_all();
        Some(batch)
    }
}

/// The file options the writer applies to one batch.
struct FileRules {
    max_file_size: Option<u64>,
    period: Option<TimeDelta>,
    delete_after_days: Option<u32>,
    console: bool,
    system_level: Level,
    log_all: bool,
}

struct OpenFile {
    id: LogFileId,
    out: BufWriter<File>,
    size: u64,
    opened: DateTime<FixedOffset>,
}

/// The writer thread's state: the only owner of the files.
struct Writer {
    dir: PathBuf,
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    file: Option<OpenFile>,
    /// The writer's own records, written after the message that caused them.
    notes: Vec<Pending>,
    /// The last file operation failed (reported once per streak on stderr).
    failing: bool,
}

impl Writer {
    fn rules(&self) -> FileRules {
        let s = self
            .shared
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        FileRules {
            max_file_size: s.max_file_size,
            period: s
                .start_new_file_every
                .and_then(|p| TimeDelta::from_std(p).ok()),
            delete_after_days: s.delete_old_files_in,
            console: s.log_to_console,
            system_level: s.level_for("SYSTEM"),
            log_all: s.log_all,
        }
    }

    /// Opens today's newest file to continue it, or starts a new one.
    fn open_at_start(&mut self) -> io::Result<()> {
        let rules = self.rules();
        let now = self.shared.clock.now();
        let today = now.date_naive();
        let last = list_ids(&self.dir)?
            .into_iter()
            .rfind(|id| id.date == today);
        if let Some(id) = last {
            let path = self.dir.join(id.file_name());
            let size = fs::metadata(&path)?.len();
            if rules.max_file_size.is_none_or(|m| size < m) {
                let mut file = OpenOptions::new().read(true).append(true).open(&path)?;
                let mut size = size;
                if size > 0 {
                    // A crash may have left a torn line; end it so the next record starts a line.
                    let mut last_byte = [0u8];
                    file.seek(SeekFrom::Start(size - 1))?;
                    file.read_exact(&mut last_byte)?;
                    if last_byte[0] != b'\n' {
                        file.write_all(b"\n")?;
                        size += 1;
                    }
                }
                self.install(id, file, size, now);
                self.delete_old(today, &rules);
                return Ok(());
            }
        }
        self.start_file(today, now, &rules)
    }

    fn install(&mut self, id: LogFileId, file: File, size: u64, opened: DateTime<FixedOffset>) {
        self.file = Some(OpenFile {
            id,
            out: BufWriter::with_capacity(64 * 1024, file),
            size,
            opened,
        });
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(id);
    }

    /// Starts the next file of `date`, then deletes old files.
    fn start_file(
        &mut self,
        date: NaiveDate,
        now: DateTime<FixedOffset>,
        rules: &FileRules,
    ) -> io::Result<()> {
        if let Some(mut old) = self.file.take() {
            if let Err(e) = old.out.flush() {
                self.report_failure(&format!("flushing {}: {e}", old.id.file_name()));
            }
        }
        let newest = list_ids(&self.dir)?
            .into_iter()
            .filter(|id| id.date == date)
            .map(|id| id.seq)
            .max()
            .unwrap_or(0);
        let mut id = LogFileId {
            date,
            seq: newest + 1,
        };
        let file = loop {
            match OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(self.dir.join(id.file_name()))
            {
                Ok(f) => break f,
                // Created by someone else since the listing: take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && id.seq < u32::MAX => {
                    id.seq += 1
                }
                Err(e) => return Err(e),
            }
        };
        self.install(id, file, 0, now);
        self.delete_old(date, rules);
        Ok(())
    }

    /// guide.txt:3050-3052: after a new file, delete files older than "Delete Old Files in".
    fn delete_old(&mut self, today: NaiveDate, rules: &FileRules) {
        let Some(days) = rules.delete_after_days else {
            return;
        };
        let Some(cutoff) = today.checked_sub_days(chrono::Days::new(u64::from(days))) else {
            return;
        };
        let current = self.file.as_ref().map(|f| f.id);
        let ids = match list_ids(&self.dir) {
            Ok(ids) => ids,
            Err(e) => return self.report_failure(&format!("listing log files: {e}")),
        };
        for id in ids
            .into_iter()
            .filter(|id| id.date < cutoff && Some(*id) != current)
        {
            let text = match fs::remove_file(self.dir.join(id.file_name())) {
                Ok(()) => (Level::LowLevel, format!("old log file {id} deleted")),
                Err(e) => (Level::Problems, format!("deleting old log file {id}: {e}")),
            };
            self.note(text.0, text.1, rules);
        }
    }

    fn note(&mut self, level: Level, text: String, rules: &FileRules) {
        if level != Level::Nothing && (rules.log_all || level <= rules.system_level) {
            self.notes.push(Pending {
                time: self.shared.clock.now(),
                level,
                tag: "SYSTEM".into(),
                text,
            });
        }
    }

    fn report_failure(&mut self, what: &str) {
        if !self.failing {
            eprintln!("gatehouse: System Log: {what}");
        }
        self.failing = true;
    }

    fn run(mut self) {
        while let Some(batch) = self.queue.take(WRITER_TICK) {
            let rules = self.rules();
            if batch.is_empty() {
                // Idle: start the new day's (or period's) file even without records.
                self.rotate_if_due(self.shared.clock.now(), 0, &rules);
            }
            for msg in batch {
                match msg {
                    // Records rotate by their own time stamps, which are earlier than now.
                    Msg::Record(p) => self.write(p, &rules),
                    Msg::Flush(done) => {
                        self.rotate_if_due(self.shared.clock.now(), 0, &rules);
                        self.write_notes(&rules);
                        self.flush();
                        // The flusher may have stopped waiting.
                        let _ = done.send(());
                    }
                }
            }
            let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                let text = format!("log queue full: {dropped} record(s) dropped");
                self.note(Level::Problems, text, &rules);
            }
            self.write_notes(&rules);
            self.flush();
        }
        if let Some(f) = self.file.as_mut() {
            let result = f.out.flush().and_then(|()| f.out.get_ref().sync_all());
            if let Err(e) = result {
                self.report_failure(&format!("closing: {e}"));
            }
        }
    }

    fn write_notes(&mut self, rules: &FileRules) {
        // Bounded: a note is only added when a new file deletes an old one.
        while !self.notes.is_empty() {
            for p in std::mem::take(&mut self.notes) {
                self.write(p, rules);
            }
        }
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.out.flush() {
                let name = f.id.file_name();
                self.report_failure(&format!("writing {name}: {e}"));
                self.file = None;
            }
        }
    }

    /// Starts a new file if the day changed, the period passed, or `len` more bytes would
    /// exceed the size limit (guide.txt:3046-3049).
    fn rotate_if_due(&mut self, time: DateTime<FixedOffset>, len: u64, rules: &FileRules) {
        let date = time.date_naive();
        let next_date = match &self.file {
            None => Some(date),
            Some(f) if date > f.id.date => Some(date),
            Some(f)
                if rules.period.is_some_and(|p| time - f.opened >= p)
                    || rules
                        .max_file_size
                        .is_some_and(|m| f.size > 0 && f.size + len > m) =>
            {
                Some(f.id.date)
            }
            Some(_) => None,
        };
        if let Some(d) = next_date {
            if let Err(e) = self.start_file(d, time, rules) {
                self.report_failure(&format!("starting a new log file: {e}"));
            }
        }
    }

    fn write(&mut self, p: Pending, rules: &FileRules) {
        let local = p.time.naive_local();
        let mut line = String::with_capacity(p.text.len() + 32);
        push_line(&mut line, local, p.level, &p.tag, &p.text);
        line.push('\n');
        self.rotate_if_due(p.time, line.len() as u64, rules);
        if rules.console {
            eprint!("{line}");
        }
        let Some(f) = self.file.as_mut() else {
            if !rules.console {
                eprint!("{line}");
            }
            return;
        };
        let id = RecordId {
            file: f.id,
            offset: f.size,
        };
        if let Err(e) = f.out.write_all(line.as_bytes()) {
            let name = f.id.file_name();
            self.file = None;
            self.report_failure(&format!("writing {name}: {e}"));
            return;
        }
        f.size += line.len() as u64;
        self.failing = false;
        if self.shared.live.receiver_count() > 0 {
            // Subscribers get the record exactly as a reader of the file will.
            if let Some(rec) = parse_line(line.trim_end_matches('\n').as_bytes(), id) {
                // No receiver left is not an error.
                let _ = self.shared.live.send(rec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::ManualClock;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn open(settings: LogSettings, start: &str) -> (tempfile::TempDir, Arc<ManualClock>, Logger) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(at(start));
        let log = Logger::open(dir.path().join("SystemLogs"), settings, clock.clone()).unwrap();
        (dir, clock, log)
    }

    fn all(log: &Logger) -> Vec<Record> {
        log.read(&LogQuery {
            limit: MAX_READ_LIMIT,
            ..LogQuery::default()
        })
        .unwrap()
    }

    fn names(log: &Logger) -> Vec<String> {
        log.list_files()
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    fn texts(recs: &[Record]) -> Vec<&str> {
        recs.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn level_numbers_and_names() {
        assert_eq!(Level::from_number(2), Some(Level::Major));
        assert_eq!(Level::from_number(6), None);
        for l in Level::ALL {
            assert_eq!(Level::from_number(u32::from(l.number())), Some(l));
            assert_eq!(l.name().parse::<Level>(), Ok(l));
            assert_eq!(l.number().to_string().parse::<Level>(), Ok(l));
        }
        assert_eq!("Major & Failures".parse(), Ok(Level::Major));
        assert_eq!("low level".parse(), Ok(Level::LowLevel));
        assert_eq!("ALL INFO".parse(), Ok(Level::AllInfo));
        assert_eq!("None".parse(), Ok(Level::Nothing));
        assert_eq!("7".parse::<Level>(), Err(ParseLevelError));
        assert_eq!("Loud".parse::<Level>(), Err(ParseLevelError));
        assert_eq!(Level::LowLevel.to_string(), "Low-Level");
        assert!(Level::Major < Level::Problems);
    }

    #[test]
    fn levels_filter_per_component_and_change_live() {
        let mut s = LogSettings::default();
        s.levels.insert("POP".into(), Level::AllInfo);
        s.levels.insert("SMTP".into(), Level::Nothing);
        let (_d, _c, log) = open(s.clone(), "2024-03-01T10:00:00+01:00");
        assert!(log.enabled(Level::AllInfo, "POP"));
        assert!(!log.enabled(Level::Failures, "SMTP"));
        assert!(log.enabled(Level::Major, "IMAP"));
        assert!(!log.enabled(Level::Problems, "IMAP"));
        assert!(!log.enabled(Level::Nothing, "POP"));
        log.log(Level::AllInfo, "POP-12357", "pop detail");
        log.log(Level::Major, "SMTP-1", "smtp major");
        log.log(Level::Problems, "IMAP-3", "imap problem");
        log.log(Level::Major, "IMAP", "imap major");
        log.flush();
        assert_eq!(texts(&all(&log)), ["pop detail", "imap major"]);

        s.log_all = true;
        log.set_settings(s.clone());
        assert!(log.enabled(Level::AllInfo, "SMTP"));
        log.log(Level::AllInfo, "SMTP-2", "forced");
        s.log_all = false;
        s.default_level = Level::AllInfo;
        log.set_settings(s.clone());
        assert_eq!(log.settings(), s);
        log.log(Level::AllInfo, "IMAP-4", "now on");
        log.flush();
        assert_eq!(texts(&all(&log))[2..], ["forced", "now on"]);
    }

    #[test]
    fn record_format_and_escaping() {
        let (d, _c, log) = open(LogSettings::default(), "2024-03-01T23:59:58.123456+01:00");
        log.log(
            Level::Major,
            "SMTPI-12",
            "a\r\nb\\c\x01\x7f\u{85}d\u{2028}é\te",
        );
        log.log(Level::Failures, "BAD TAG\n", "");
        log.log(Level::Major, "", "x");
        log.log(Level::Major, "BIG", "y".repeat(MAX_LINE + 10));
        log.flush();
        let raw = fs::read_to_string(d.path().join("SystemLogs/2024-03-01.log")).unwrap();
        let lines: Vec<&str> = raw.split_terminator('\n').collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "23:59:58.123 2 SMTPI-12 a\\r\\nb\\\\c\\x01\\x7F\\u0085d\\u2028é\\te"
        );
        assert_eq!(lines[1], "23:59:58.123 1 BAD_TAG_ ");
        assert_eq!(lines[2], "23:59:58.123 2 _ x");
        assert!(lines[3].len() <= MAX_LINE && lines[3].ends_with(TRUNCATED));

        let recs = all(&log);
        assert_eq!(recs[0].text, "a\r\nb\\c\x01\x7f\u{85}d\u{2028}é\te");
        assert_eq!(recs[0].tag, "SMTPI-12");
        assert_eq!(recs[0].level, Level::Major);
        assert_eq!(recs[0].time.to_string(), "2024-03-01 23:59:58.123");
        assert_eq!(recs[0].to_string(), lines[0]);
        assert_eq!(
            (recs[1].tag.as_str(), recs[1].text.as_str()),
            ("BAD_TAG_", "")
        );
        assert_eq!(recs[3].id.offset, (raw.len() - lines[3].len() - 1) as u64);
    }

    #[test]
    fn unescape_keeps_broken_escapes() {
        assert_eq!(unescape("a\\qb"), "a\\qb");
        assert_eq!(unescape("\\x4"), "\\x4");
        assert_eq!(unescape("\\uD800x"), "\\uD800x");
        assert_eq!(unescape("end\\"), "end\\");
        assert_eq!(unescape("\\x41\\u00e9"), "Aé");
    }

    proptest! {
        #[test]
        fn escape_round_trips_and_stays_one_line(text in "\\PC*|[\\x00-\\x20\\\\\u{80}-\u{a0}\u{2028}]*") {
            let mut out = String::new();
            prop_assert!(!escape_into(&mut out, &text, usize::MAX));
            let breaks = ['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}'];
            prop_assert!(!out.contains(breaks), "line break in {:?}", out);
            prop_assert_eq!(unescape(&out), text);
        }
    }

    #[test]
    fn midnight_starts_a_new_file_with_or_without_records() {
        let (d, clock, log) = open(LogSettings::default(), "2024-03-01T23:59:59.500+01:00");
        log.log(Level::Major, "SYSTEM", "before");
        clock.advance(TimeDelta::seconds(1));
        log.log(Level::Major, "SYSTEM", "after");
        log.flush();
        assert_eq!(names(&log), ["2024-03-01", "2024-03-02"]);
        assert_eq!(log.current().unwrap().to_string(), "2024-03-02");
        let recs = all(&log);
        assert_eq!(texts(&recs), ["before", "after"]);
        assert_eq!(recs[1].time.to_string(), "2024-03-02 00:00:00.500");

        // An idle log also moves to the new day (the writer checks on every wake-up).
        clock.set(at("2024-03-03T00:00:01+01:00"));
        log.flush();
        assert_eq!(log.current().unwrap().to_string(), "2024-03-03");
        assert!(d.path().join("SystemLogs/2024-03-03.log").exists());

        // A clock stepped back keeps writing to the active file.
        clock.set(at("2024-03-02T12:00:00+01:00"));
        log.log(Level::Major, "SYSTEM", "stepped back");
        log.flush();
        assert_eq!(log.current().unwrap().to_string(), "2024-03-03");
        let last = all(&log).pop().unwrap();
        assert_eq!(last.id.file.to_string(), "2024-03-03");
    }

    #[test]
    fn size_and_period_start_new_files() {
        let settings = LogSettings {
            max_file_size: Some(100),
            ..LogSettings::default()
        };
        let (d, clock, log) = open(settings, "2024-03-01T10:00:00+01:00");
        for i in 0..5 {
            log.log(Level::Major, "SYSTEM", format_args!("record number {i:02}"));
        }
        log.flush();
        // Each line is 41 bytes: two fit under 100.
        assert_eq!(names(&log), ["2024-03-01", "2024-03-01-2", "2024-03-01-3"]);
        for f in log.list_files().unwrap() {
            assert!(f.size <= 100, "{f:?}");
            assert_eq!(f.current, f.name == "2024-03-01-3");
        }
        assert_eq!(all(&log).len(), 5);
        log.shutdown();

        // Reopening continues the newest file while it has room.
        let settings = LogSettings {
            start_new_file_every: Some(Duration::from_secs(60)),
            ..LogSettings::default()
        };
        let log = Logger::open(d.path().join("SystemLogs"), settings, clock.clone()).unwrap();
        assert_eq!(log.current().unwrap().to_string(), "2024-03-01-3");
        log.log(Level::Major, "SYSTEM", "same file");
        clock.advance(TimeDelta::seconds(61));
        log.log(Level::Major, "SYSTEM", "next period");
        log.flush();
        assert_eq!(log.current().unwrap().to_string(), "2024-03-01-4");
        let recs = all(&log);
        assert_eq!(recs[5].id.file.to_string(), "2024-03-01-3");
        assert_eq!(recs[6].id.file.to_string(), "2024-03-01-4");
    }

    #[test]
    fn old_files_are_deleted_but_never_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("SystemLogs");
        fs::create_dir_all(&logs).unwrap();
        for name in [
            "2024-02-20.log",
            "2024-02-27.log",
            "2024-02-28-2.log",
            "notes.txt",
        ] {
            fs::write(logs.join(name), "x\n").unwrap();
        }
        let clock = ManualClock::new(at("2024-03-01T09:00:00+01:00"));
        let mut settings = LogSettings {
            delete_old_files_in: Some(2),
            default_level: Level::AllInfo,
            ..LogSettings::default()
        };
        let log = Logger::open(&logs, settings.clone(), clock.clone()).unwrap();
        log.flush();
        assert_eq!(names(&log), ["2024-02-28-2", "2024-03-01"]);
        assert!(logs.join("notes.txt").exists());
        let notes = all(&log);
        assert_eq!(
            texts(&notes),
            [
                "old log file 2024-02-20 deleted",
                "old log file 2024-02-27 deleted"
            ]
        );

        settings.delete_old_files_in = Some(0);
        log.set_settings(settings);
        clock.advance(TimeDelta::days(1));
        log.log(Level::Major, "SYSTEM", "new day");
        log.flush();
        assert_eq!(names(&log), ["2024-03-02"]);
        assert_eq!(log.current().unwrap().to_string(), "2024-03-02");

        let err = log.delete_file("2024-03-02").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let err = log.delete_file("../notes.txt").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        clock.advance(TimeDelta::days(1));
        log.flush();
        assert_eq!(names(&log), ["2024-03-03"]);
    }

    #[test]
    fn delete_file_removes_an_inactive_file() {
        let (d, _c, log) = open(LogSettings::default(), "2024-03-01T10:00:00+01:00");
        fs::write(d.path().join("SystemLogs/2024-02-01.log"), "").unwrap();
        log.delete_file("2024-02-01").unwrap();
        assert_eq!(names(&log), ["2024-03-01"]);
    }

    #[test]
    fn read_filters_and_polls_after_an_id_across_files() {
        let (_d, clock, log) = open(LogSettings::default(), "2024-03-01T23:59:58+01:00");
        let mut s = log.settings();
        s.default_level = Level::AllInfo;
        log.set_settings(s);
        log.log(Level::Major, "POP-12357", "session start");
        log.log(Level::AllInfo, "POP-12357", "USER bob");
        log.log(Level::Problems, "POP-123", "protocol FAULT");
        log.log(Level::Major, "SMTPI-1", "received");
        clock.advance(TimeDelta::seconds(3));
        log.log(Level::Major, "POPX", "other component");
        log.log(Level::Failures, "SYSTEM", "disk full");
        log.flush();
        let everything = all(&log);
        assert_eq!(everything.len(), 6);
        assert!(everything.windows(2).all(|w| w[0].id < w[1].id));

        let q = |f: &dyn Fn(&mut LogQuery)| {
            let mut q = LogQuery::default();
            f(&mut q);
            texts(&log.read(&q).unwrap())
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(&|q| q.max_level = Some(Level::Major)),
            ["session start", "received", "other component", "disk full"]
        );
        assert_eq!(q(&|q| q.tag_prefix = Some("pop".into())).len(), 3);
        assert_eq!(
            q(&|q| q.tag_prefix = Some("POP-12357".into())),
            ["session start", "USER bob"]
        );
        assert_eq!(q(&|q| q.text = Some("fault".into())), ["protocol FAULT"]);
        assert_eq!(q(&|q| q.text = Some("smtpi".into())), ["received"]);
        assert_eq!(
            q(&|q| q.day = Some(day("2024-03-02"))),
            ["other component", "disk full"]
        );
        assert_eq!(q(&|q| q.file = Some("2024-03-02.log".into())).len(), 2);
        assert_eq!(q(&|q| q.limit = 2), ["session start", "USER bob"]);
        assert_eq!(
            q(&|q| {
                q.limit = 2;
                q.last = true;
            }),
            ["other component", "disk full"]
        );
        assert_eq!(
            q(&|q| q.from = Some(day("2024-03-02").and_hms_opt(0, 0, 0).unwrap())),
            ["other component", "disk full"]
        );
        assert_eq!(
            q(&|q| q.to = Some(day("2024-03-01").and_hms_opt(23, 59, 59).unwrap())).len(),
            4
        );
        assert!(q(&|q| q.limit = 0).is_empty());

        // Poll: everything after an id, across the midnight file change.
        let after: RecordId = everything[2].id.to_string().parse().unwrap();
        assert_eq!(after, everything[2].id);
        assert_eq!(
            q(&|q| q.after = Some(after)),
            ["received", "other component", "disk full"]
        );
        assert!(q(&|q| q.after = Some(everything[5].id)).is_empty());
        log.log(Level::Major, "SYSTEM", "later");
        log.flush();
        assert_eq!(q(&|q| q.after = Some(everything[5].id)), ["later"]);

        let err = log
            .read(&LogQuery {
                file: Some("../../etc/passwd".into()),
                ..LogQuery::default()
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn ids_parse_only_canonical_names() {
        let id = LogFileId::parse("2024-03-01-2.log").unwrap();
        assert_eq!((id.date, id.seq), (day("2024-03-01"), 2));
        for bad in [
            "2024-03-01-1",
            "2024-03-01-02",
            "2024-3-01",
            "2024-03-01-",
            "x",
            "2024-03-01-2x",
        ] {
            assert_eq!(LogFileId::parse(bad), None, "{bad}");
        }
        let rid: RecordId = "2024-03-01-10:42".parse().unwrap();
        assert_eq!(rid.to_string(), "2024-03-01-10:42");
        assert!(rid > "2024-03-01-9:99999".parse().unwrap());
        for bad in [
            "2024-03-01",
            "2024-03-01:",
            "2024-03-01.log:1",
            "2024-03-01:-1",
            ":1",
        ] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn torn_last_line_is_skipped_then_ended_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("SystemLogs");
        fs::create_dir_all(&logs).unwrap();
        fs::write(
            logs.join("2024-03-01.log"),
            "10:00:00.000 2 SYSTEM ok\ngarbage line\n10:00:01.000 2 SYSTEM to",
        )
        .unwrap();
        let clock = ManualClock::new(at("2024-03-01T11:00:00+01:00"));
        let log = Logger::open(&logs, LogSettings::default(), clock).unwrap();
        log.log(Level::Major, "SYSTEM", "appended");
        log.flush();
        assert_eq!(texts(&all(&log)), ["ok", "to", "appended"]);

        let more = "\n10:00:02.000 2 SYSTEM torn";
        let mut f = OpenOptions::new()
            .append(true)
            .open(logs.join("2024-03-01.log"))
            .unwrap();
        f.write_all(more.as_bytes()).unwrap();
        assert_eq!(texts(&all(&log)), ["ok", "to", "appended"]);
    }

    #[test]
    fn subscribers_receive_records_as_written() {
        let (_d, _c, log) = open(LogSettings::default(), "2024-03-01T10:00:00.25+01:00");
        let mut rx = log.subscribe();
        log.log(Level::Major, "TCP", "line\nbreak");
        log.log(Level::AllInfo, "TCP", "filtered out");
        log.flush();
        let live = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err());
        assert_eq!(live, all(&log)[0]);
        assert_eq!(live.text, "line\nbreak");
    }

    #[test]
    fn concurrent_logging_loses_nothing() {
        let (_d, _c, log) = open(LogSettings::default(), "2024-03-01T10:00:00+01:00");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        log.log(Level::Major, &format!("T-{t}"), i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        log.flush();
        let recs = all(&log);
        assert_eq!(recs.len(), 8000);
        assert_eq!(log.dropped(), 0);
        for t in 0..8 {
            let mine: Vec<String> = recs
                .iter()
                .filter(|r| r.tag == format!("T-{t}"))
                .map(|r| r.text.clone())
                .collect();
            let want: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
            assert_eq!(mine, want);
        }
    }

    #[test]
    fn shutdown_writes_everything_and_later_records_are_counted() {
        let (d, _c, log) = open(LogSettings::default(), "2024-03-01T10:00:00+01:00");
        let clone = log.clone();
        log.log(Level::Major, "SYSTEM", "last words");
        log.shutdown();
        clone.log(Level::Major, "SYSTEM", "too late");
        clone.flush();
        assert_eq!(clone.dropped(), 1);
        let raw = fs::read_to_string(d.path().join("SystemLogs/2024-03-01.log")).unwrap();
        assert_eq!(raw, "10:00:00.000 2 SYSTEM last words\n");
    }
}
