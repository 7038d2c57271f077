//! The PIPE module (guide.txt:13832-14048): messages submitted by dropping files in the
//! `Submitted/` folder, and delivery to external applications (addresses in the `pipe` domain).
//!
//! - [`folder`]: the `Submitted/` scan (at start, then every "Check Submitted Directory Every");
//!   [`submitted`]: the `.sub` file codec (envelope from headers). Submissions are trusted
//!   (guide.txt:13892-13893) and carry `Source::Pipe`.
//! - [`program`]: running an application; [`Pipe`] is the [`Channel`] for `Target::Pipe`.
//!
//! Delivery outcome (guide.txt:13922-13927, 13955-13958, 13997-13999, 14045-14048):
//! exit code 0 with nothing on standard error → delivered; exit code 75 (`EX_TEMPFAIL`,
//! sysexits.h; not in the guide) → deferred, retried later; the Processing Time Limit passed →
//! the process group is killed and the message rejected (failed, as the guide says); any other
//! exit code, a signal, anything written to standard error, or stdin not read to the end →
//! failed. The report text is the first line of standard error (or the exit code); with the
//! `[STDERR]` tag it is the whole standard error text (up to 4 KB): the guide's two passages on
//! stderr overlap, this is the reading where the tag still changes something. Standard error is
//! always logged. "Processes" bounds the applications running at once; `queue[name]` deliveries
//! run one at a time per name.
//!
//! Settings (`Settings/PIPE.settings`): `LogLevel`, `CheckSubmittedDirectoryEvery`, `Processes`,
//! `ApplicationDirectory` (relative to the base directory unless absolute; empty = every PIPE
//! delivery is rejected, guide.txt:14040-14043), `ProcessingTimeLimit`, and `MaxSubmittedSize`
//! (ours: the largest `.sub` file taken). Periods are `N` seconds or `Ns`, `Nm`, `Nh`.
//!
//! Security: see [`folder`] (names, links, sizes) and [`program`] (no shell, sandboxed names,
//! cleared environment). Log tag `PIPE`.
//!
//! todo: `queue[name]` serialises deliveries but the Dequeuer's order across its threads is not
//! guaranteed; a message small enough for the pipe buffer that the application never reads is
//! not detected as unread; Foreign Queue Processing (guide.txt:14050-14068) is not done.

pub mod folder;
pub mod program;
pub mod submitted;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::cli::{self, CliContext, ModuleDecl};
use crate::format::Dict;
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::{Channel, Job, Outcome, Submit, Target};
use crate::store::settings::SettingDecl;

pub use folder::ScanReport;
use program::{PipeCommand, RunEnd};

/// The module's name, settings file name and log tag.
pub const TAG: &str = "PIPE";
/// sysexits.h `EX_TEMPFAIL`: the application asks to try again later.
const EX_TEMPFAIL: i32 = 75;

/// The PIPE settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeSettings {
    /// Log.
    pub log_level: Level,
    /// Check Submitted Directory Every.
    pub check_every: Duration,
    /// Processes: applications running at once.
    pub processes: usize,
    /// Application Directory as set ("" rejects every delivery).
    pub application_directory: String,
    /// Processing Time Limit.
    pub time_limit: Duration,
    /// Largest `.sub` file taken, in bytes.
    pub max_submitted_size: u64,
}

impl Default for PipeSettings {
    fn default() -> PipeSettings {
        PipeSettings {
            log_level: Level::Major,
            check_every: Duration::from_secs(1),
            processes: 2,
            application_directory: String::new(),
            time_limit: Duration::from_secs(600),
            max_submitted_size: 10 << 20,
        }
    }
}

impl PipeSettings {
    /// The settings from the module's effective settings dictionary; `Err` names the bad one.
    pub fn from_dict(eff: &Dict) -> Result<PipeSettings, String> {
        let text = |k: &str| crate::store::settings::text(eff, k);
        let d = PipeSettings::default();
        let level = text("LogLevel");
        let log_level = if level.is_empty() {
            d.log_level
        } else {
            level
                .parse()
                .map_err(|_| format!("LogLevel: {level:?} is not a log level"))?
        };
        let period = |k: &str, dflt: Duration| {
            let v = text(k);
            if v.is_empty() {
                return Ok(dflt);
            }
            parse_period(&v)
                .filter(|p| !p.is_zero())
                .ok_or_else(|| format!("{k}: {v:?} is not a period (N, Ns, Nm, Nh)"))
        };
        let processes = match text("Processes").as_str() {
            "" => d.processes,
            p => p
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| format!("Processes: {p:?} is not a number from 1 to 1000"))?,
        };
        let size = text("MaxSubmittedSize");
        let max_submitted_size = if size.is_empty() {
            d.max_submitted_size
        } else {
            parse_size(&size).ok_or_else(|| format!("MaxSubmittedSize: {size:?} is not a size"))?
        };
        Ok(PipeSettings {
            log_level,
            check_every: period("CheckSubmittedDirectoryEvery", d.check_every)?,
            processes,
            application_directory: text("ApplicationDirectory"),
            time_limit: period("ProcessingTimeLimit", d.time_limit)?,
            max_submitted_size,
        })
    }
}

/// `30`, `30s`, `5m`, `1h` (also `sec`, `min`, `hour`, with a blank before the unit).
fn parse_period(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let mult = match s[split..].trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// `123`, `64K`, `10M`, `1G`, or `unlimited` (the guide's size notation).
fn parse_size(s: &str) -> Option<u64> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Some(u64::MAX);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let mult = match s[split..].to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The PIPE settings declaration (guide.txt:14003-14048).
pub fn module_decl() -> ModuleDecl {
    ModuleDecl {
        name: TAG.into(),
        settings: vec![
            SettingDecl {
                key: "LogLevel",
                default: "2",
                doc: "Log: what the PIPE module records in the System Log (tag PIPE), 0-5",
            },
            SettingDecl {
                key: "CheckSubmittedDirectoryEvery",
                default: "1s",
                doc: "Check Submitted Directory Every: how often Submitted/ is scanned for .sub files",
            },
            SettingDecl {
                key: "Processes",
                default: "2",
                doc: "Processes: how many external applications may run at once",
            },
            SettingDecl {
                key: "ApplicationDirectory",
                default: "",
                doc: "Application Directory: where PIPE applications are (relative to the base directory); empty rejects every PIPE delivery",
            },
            SettingDecl {
                key: "ProcessingTimeLimit",
                default: "10m",
                doc: "Processing Time Limit: an application still running then is killed and the message rejected",
            },
            SettingDecl {
                key: "MaxSubmittedSize",
                default: "10M",
                doc: "largest .sub file taken from Submitted/ (extension); larger files are renamed .bad",
            },
        ],
        validate: Some(Arc::new(|eff: &Dict| {
            PipeSettings::from_dict(eff).map(|_| ())
        })),
        changed: None,
    }
}

/// The PIPE module: the `Submitted/` watcher and the [`Channel`] for `Target::Pipe`.
pub struct Pipe {
    base: PathBuf,
    server_domain: String,
    logger: Logger,
    submit: Arc<dyn Submit>,
    settings: RwLock<PipeSettings>,
    running: Mutex<usize>,
    freed: Condvar,
    queues: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    scanning: Mutex<()>,
    stop: tokio::sync::Notify,
}

impl Pipe {
    /// A PIPE module on `base` (made absolute); `server_domain` qualifies addresses without a
    /// domain in `.sub` files; `submit` is the Enqueuer.
    pub fn new(
        base: &Path,
        server_domain: impl Into<String>,
        logger: Logger,
        submit: Arc<dyn Submit>,
        settings: PipeSettings,
    ) -> Arc<Pipe> {
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let pipe = Arc::new(Pipe {
            base,
            server_domain: server_domain.into(),
            logger,
            submit,
            settings: RwLock::new(PipeSettings::default()),
            running: Mutex::new(0),
            freed: Condvar::new(),
            queues: Mutex::new(HashMap::new()),
            scanning: Mutex::new(()),
            stop: tokio::sync::Notify::new(),
        });
        pipe.set_settings(settings);
        pipe
    }

    /// The settings in force.
    pub fn settings(&self) -> PipeSettings {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts new settings in force (the log level at once, the rest from the next scan/delivery).
    pub fn set_settings(&self, s: PipeSettings) {
        let mut log = self.logger.settings();
        log.levels.insert(TAG.to_string(), s.log_level);
        self.logger.set_settings(log);
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = s;
        self.freed.notify_all();
    }

    /// The `Submitted/` folder.
    pub fn submitted_dir(&self) -> PathBuf {
        self.base.join("Submitted")
    }

    /// Scans `Submitted/` once (blocking; one scan at a time).
    pub fn scan_submitted(&self) -> ScanReport {
        let _one = self.scanning.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = self.submitted_dir();
        // guide.txt:13847-13848: the module creates the folder.
        if let Err(e) = std::fs::create_dir_all(&dir) {
            self.logger.log(
                Level::Failures,
                TAG,
                format_args!("cannot create {}: {e}", dir.display()),
            );
            return ScanReport::default();
        }
        folder::scan(self, &dir)
    }

    /// Registers the `PIPE` settings with the CLI, puts the stored ones in force and starts the
    /// watcher: the server glue's one call.
    pub fn start(self: &Arc<Self>, cli: &CliContext) -> tokio::task::JoinHandle<()> {
        let mut decl = module_decl();
        let weak = Arc::downgrade(self);
        decl.changed = Some(Arc::new(move |eff: &Dict| {
            if let (Some(pipe), Ok(s)) = (weak.upgrade(), PipeSettings::from_dict(eff)) {
                pipe.set_settings(s);
            }
        }));
        cli.modules.register(decl.clone());
        match PipeSettings::from_dict(&cli::effective_module_settings(cli, &decl)) {
            Ok(s) => self.set_settings(s),
            Err(e) => self.logger.log(
                Level::Failures,
                TAG,
                format_args!("the stored module settings are not usable: {e}"),
            ),
        }
        self.spawn_watcher()
    }

    /// Scans `Submitted/` now and then every "Check Submitted Directory Every" until
    /// [`Pipe::stop`].
    pub fn spawn_watcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let pipe = self.clone();
        tokio::spawn(async move {
            loop {
                let p = pipe.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || p.scan_submitted()).await {
                    pipe.logger.log(
                        Level::Failures,
                        TAG,
                        format_args!("the Submitted scan failed: {e}"),
                    );
                }
                let period = pipe.settings().check_every;
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = pipe.stop.notified() => break,
                }
            }
        })
    }

    /// Stops the watcher after its current scan.
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    /// Delivers one message to the application `command` names (blocking).
    fn deliver_to(&self, command: &str, job: &Job<'_>) -> Outcome {
        let settings = self.settings();
        let cmd = match PipeCommand::parse(command) {
            Ok(c) => c,
            Err(e) => return self.failed(job, command, format!("bad PIPE address: {e}")),
        };
        if settings.application_directory.is_empty() {
            return self.failed(
                job,
                command,
                "PIPE delivery is disabled: the Application Directory is not set".into(),
            );
        }
        let program = self
            .base
            .join(&settings.application_directory)
            .join(&cmd.application);
        let args = cmd.arguments(job.id, job.return_path, job.recipient);

        // queue[name]: one delivery at a time per name; taken before a process slot so a waiting
        // delivery never holds a slot.
        let queue = cmd.queue.as_ref().map(|name| {
            self.queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(name.clone())
                .or_default()
                .clone()
        });
        let serial = queue
            .as_ref()
            .map(|q| q.lock().unwrap_or_else(PoisonError::into_inner));
        let slot = self.process_slot(settings.processes);

        let input = (!cmd.file).then_some(job.message);
        let result = program::run(&program, &args, &self.base, input, settings.time_limit);
        drop(slot);
        drop(serial);
        if let Some(name) = &cmd.queue {
            self.forget_queue(name, queue);
        }

        let stderr = clean(&result.stderr);
        if result.wrote_stderr {
            self.logger.log(
                Level::Problems,
                TAG,
                format_args!(
                    "message {} to {}: {} wrote on standard error: {stderr}",
                    job.id, job.recipient, cmd.application
                ),
            );
        }
        let first_line = stderr.lines().next().unwrap_or("").trim().to_string();
        let report = |dflt: String| {
            if cmd.stderr && !stderr.trim().is_empty() {
                stderr.trim().to_string()
            } else if first_line.is_empty() {
                dflt
            } else {
                first_line.clone()
            }
        };
        let app = &cmd.application;
        match result.end {
            RunEnd::SpawnFailed(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.failed(job, command, format!("application {app} not found"))
            }
            RunEnd::SpawnFailed(e) if e.kind() == std::io::ErrorKind::PermissionDenied => self
                .failed(
                    job,
                    command,
                    format!("application {app} cannot be started: {e}"),
                ),
            RunEnd::SpawnFailed(e) => {
                self.deferred(job, command, format!("cannot start {app}: {e}"))
            }
            RunEnd::TimedOut => self.failed(
                job,
                command,
                format!(
                    "{app} did not complete within the Processing Time Limit ({} s)",
                    settings.time_limit.as_secs()
                ),
            ),
            RunEnd::Exited(EX_TEMPFAIL) => {
                self.deferred(job, command, report(format!("{app}: temporary failure")))
            }
            RunEnd::Exited(0) if result.stdin_failed => self.failed(
                job,
                command,
                format!("{app} did not read the entire message"),
            ),
            RunEnd::Exited(0) if result.wrote_stderr => self.failed(
                job,
                command,
                report(format!("{app} wrote on standard error")),
            ),
            RunEnd::Exited(0) => {
                self.logger.log(
                    Level::Major,
                    TAG,
                    format_args!(
                        "message {} to {} delivered to {command}",
                        job.id, job.recipient
                    ),
                );
                Outcome::Delivered
            }
            RunEnd::Exited(code) => self.failed(
                job,
                command,
                report(format!("{app} exited with code {code}")),
            ),
            RunEnd::Signaled(sig) => self.failed(
                job,
                command,
                report(format!("{app} killed by signal {sig}")),
            ),
        }
    }

    fn failed(&self, job: &Job<'_>, command: &str, why: String) -> Outcome {
        self.logger.log(
            Level::Problems,
            TAG,
            format_args!(
                "message {} to {} via {command} failed: {why}",
                job.id, job.recipient
            ),
        );
        Outcome::Failed(why)
    }

    fn deferred(&self, job: &Job<'_>, command: &str, why: String) -> Outcome {
        self.logger.log(
            Level::Problems,
            TAG,
            format_args!(
                "message {} to {} via {command} deferred: {why}",
                job.id, job.recipient
            ),
        );
        Outcome::Deferred(why)
    }

    /// Waits for one of the "Processes" slots.
    fn process_slot(&self, limit: usize) -> Slot<'_> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running >= limit.max(1) {
            running = self
                .freed
                .wait(running)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *running += 1;
        Slot(self)
    }

    /// Drops a named queue's lock when no delivery uses it (names come and go with the table).
    fn forget_queue(&self, name: &str, held: Option<Arc<Mutex<()>>>) {
        drop(held);
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if queues.get(name).is_some_and(|q| Arc::strong_count(q) == 1) {
            queues.remove(name);
        }
    }
}

/// One running application; frees its slot when dropped.
struct Slot<'a>(&'a Pipe);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut running = self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *running = running.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

impl Channel for Pipe {
    /// Delivers to `Target::Pipe` (the program is the `...@pipe` local part).
    fn deliver(&self, job: &Job<'_>) -> Outcome {
        match job.target {
            Target::Pipe { program, .. } => self.deliver_to(program, job),
            other => Outcome::Failed(format!("not a PIPE target: {other:?}")),
        }
    }
}

/// Standard error as log- and report-safe text: lossy UTF-8, controls other than LF as blanks.
fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}
