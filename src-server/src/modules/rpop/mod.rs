//! The RPOP module: polls remote POP3 mailboxes into the server (guide.txt:12327-12621, spec D
//! §3): the Unified Domain-Wide Accounts (module setting `UnifiedAccounts`, distributed by
//! [`distribute::unified`]) and each user's remote accounts (`RPOP.data` of the user's domain,
//! guide.txt:9694-9696, with `GetAccountRPOP`/`SetAccountRPOP`). Log tag `RPOP` (12384).
//!
//! A remote account is a record `{PollEvery="10m"; Account=name; Host="host[:port]";
//! Password=...; Leave=Yes|No; APOP=Yes|No;}` with, for a unified account, `SpecialHeader`
//! (`X-Real-To` when absent, `""` for none). `PollEvery=never` removes the row (12448-12450).
//!
//! Polls run only in link sessions (crate::dialup): the module is a [`WakeUp`] action that is due
//! when an account's Poll Every has run out, so polls happen only while the TCP Activity
//! Schedule lets the link open, at most once per Pause (12358-12359); a window opening or
//! `WakeUpNow` polls every account. `Channels` (Polling Channels Limit) caps simultaneous polls,
//! 0 turns polling off (12387-12391). A host that cannot be reached is skipped for Delay Failed
//! Hosts, an account that fails for Delay Failed Accounts (12399-12409); Allow Self-Poll off
//! refuses hosts that resolve to this machine's own addresses (12410-12417). `UseTLS` (an
//! extension; the 3.5 guide's RPOP has no TLS) upgrades with STLS where the server offers it.
//!
//! Durability: each retrieved message is submitted through the Enqueuer (fsynced) before its
//! UID is recorded or `DELE` is sent, so a crash at any point loses nothing; at worst a message
//! comes again. The UIDs already retrieved from each remote account are kept in
//! `RPOP/<sha256 of owner, account, host>.state` (written atomically), in both modes: Leave needs
//! them (12474-12480), and in delete mode they stop a session that broke before `QUIT` from
//! delivering its messages twice.
//!
//! Security: the remote server and its messages are untrusted (see [`client`]); names from the
//! network never reach a path (state files are named by a hash). Passwords are not logged, and
//! `GetAccountRPOP` shows them only to those who may set them.
//!
//! Users set their own records (through WebMail or the CLI) when their `RPOPAllowed` setting
//! ("RPOP Accounts", guide.txt:8794-8797) is YES, within [`UserLimits`] (Minimum Poll Period for
//! Users, Maximum Number of Accounts per User, 12419-12432); administrators are not limited.

pub mod client;
pub mod distribute;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use crate::cli::ModuleDecl;
use crate::dialup::{Link, WakeUp};
use crate::format::{dict, Dict, Value};
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::{Route, Source, Submission, Submit};
use crate::kernel::queue::settings::parse_duration;
use crate::store::settings::SettingDecl;
use crate::store::{fsutil, Store};

use client::{Pop3, PopError};
use distribute::Distribution;

/// The module's name, settings file and log tag.
pub const NAME: &str = "RPOP";
/// The Special Header of a unified account whose record does not name one (guide.txt:12531-12534).
pub const DEFAULT_SPECIAL_HEADER: &str = "X-Real-To";
/// Largest message retrieved (a larger one fails the account rather than fill the disk).
const MAX_MESSAGE: usize = 100 * 1024 * 1024;
/// Most remote accounts one user may have.
const MAX_RECORDS: usize = 100;
/// Most UIDs remembered per remote account.
const MAX_UIDS: usize = 100_000;

const SETTINGS: &[SettingDecl] = &[
    SettingDecl {
        key: "LogLevel",
        default: "2",
        doc: "Log: what the RPOP module records in the System Log (tag RPOP), 0-5 (guide.txt:12375-12384)",
    },
    SettingDecl {
        key: "Channels",
        default: "2",
        doc: "Polling Channels Limit: most simultaneous polls; 0 turns polling off (guide.txt:12386-12391)",
    },
    SettingDecl {
        key: "UseAPOP",
        default: "Yes",
        doc: "Use APOP: with hosts that offer it and rows that ask for it; No always sends clear-text passwords (guide.txt:12393-12397)",
    },
    SettingDecl {
        key: "UseTLS",
        default: "Yes",
        doc: "Use TLS (extension, guide.txt:23426): STLS with hosts that offer it, any certificate; No keeps polls in clear text",
    },
    SettingDecl {
        key: "DelayFailedHosts",
        default: "10m",
        doc: "Delay Failed Hosts for: a host that cannot be reached is not polled for this long (guide.txt:12399-12403)",
    },
    SettingDecl {
        key: "DelayFailedAccounts",
        default: "10m",
        doc: "Delay Failed Accounts for: an account that cannot be opened or read is not polled for this long (guide.txt:12405-12409)",
    },
    SettingDecl {
        key: "AllowSelfPoll",
        default: "No",
        doc: "Allow Self-Poll: No refuses hosts whose address is one of this server's own (guide.txt:12410-12417)",
    },
    SettingDecl {
        key: "MinPollPeriodForUsers",
        default: "10m",
        doc: "Minimum Poll Period for Users: the shortest Poll Every a user may set for their own remote accounts; administrators are not limited (guide.txt:12419-12425)",
    },
    SettingDecl {
        key: "MaxAccountsPerUser",
        default: "10",
        doc: "Maximum Number of Accounts per User: the most remote accounts a user may set for themselves; administrators are not limited (guide.txt:12427-12432)",
    },
    SettingDecl {
        key: "UnifiedAccounts",
        default: "()",
        doc: "Unified Domain-Wide Accounts: array of {PollEvery; Account; Host; Password; Leave; APOP; SpecialHeader} (guide.txt:12436-12497)",
    },
];

/// The module settings in force.
#[derive(Debug, Clone)]
struct Config {
    log_level: Level,
    channels: usize,
    use_apop: bool,
    use_tls: bool,
    delay_hosts: i64,
    delay_accounts: i64,
    allow_self_poll: bool,
    unified: Vec<Remote>,
}

fn yes(v: Option<&Value>, key: &str) -> Result<bool, String> {
    match v.and_then(Value::as_text).as_deref() {
        None => Ok(false),
        Some(t) if t.eq_ignore_ascii_case("yes") || t == "1" => Ok(true),
        Some(t) if t.eq_ignore_ascii_case("no") || t == "0" || t.is_empty() => Ok(false),
        Some(t) => Err(format!("{key}: {t:?} is not Yes or No")),
    }
}

impl Config {
    fn from(eff: &Dict) -> Result<Config, String> {
        let text = |k: &str| crate::store::settings::text(eff, k);
        let level = text("LogLevel");
        let duration = |k: &str| {
            let t = text(k);
            parse_duration(&t)
                .filter(|d| *d >= 0)
                .ok_or_else(|| format!("{k}: {t:?} is not a time (30s, 10m, 2h)"))
        };
        let channels = text("Channels");
        let unified = match eff.get(b"UnifiedAccounts".as_slice()) {
            Some(Value::Array(rows)) => rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Remote::parse(r, true)
                        .map_err(|e| format!("UnifiedAccounts row {}: {e}", i + 1))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Dict(d)) if d.is_empty() => Vec::new(),
            None => Vec::new(),
            _ => return Err("UnifiedAccounts must be an array".into()),
        };
        UserLimits::from(eff)?;
        Ok(Config {
            log_level: level
                .parse()
                .map_err(|_| format!("LogLevel: {level:?} is not a log level"))?,
            channels: channels
                .parse()
                .map_err(|_| format!("Channels: {channels:?} is not a number"))?,
            use_apop: yes(eff.get(b"UseAPOP".as_slice()), "UseAPOP")?,
            use_tls: yes(eff.get(b"UseTLS".as_slice()), "UseTLS")?,
            delay_hosts: duration("DelayFailedHosts")?,
            delay_accounts: duration("DelayFailedAccounts")?,
            allow_self_poll: yes(eff.get(b"AllowSelfPoll".as_slice()), "AllowSelfPoll")?,
            unified: unified.into_iter().flatten().collect(),
        })
    }
}

/// The `GetModule RPOP` declaration; a `LogLevel` change applies to `logger` at once.
pub fn module_decl(logger: Logger) -> ModuleDecl {
    ModuleDecl {
        name: NAME.into(),
        settings: SETTINGS.to_vec(),
        validate: Some(Arc::new(|eff: &Dict| Config::from(eff).map(|_| ()))),
        changed: Some(Arc::new(move |eff: &Dict| {
            if let Ok(c) = Config::from(eff) {
                let mut s = logger.settings();
                s.levels.insert(NAME.to_string(), c.log_level);
                logger.set_settings(s);
            }
        })),
    }
}

/// One remote POP account to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Poll Every, in seconds.
    pub poll_every: i64,
    /// The remote account name.
    pub account: String,
    /// The POP server's host name or address.
    pub host: String,
    /// Its port (110 unless `host:port`, guide.txt:12458-12468).
    pub port: u16,
    /// The remote password.
    pub password: String,
    /// Leave the messages on the server (and skip known UIDs).
    pub leave: bool,
    /// Use APOP when the server offers it.
    pub apop: bool,
    /// For a unified account: the header naming the envelope recipients (`None` = no such header).
    pub special_header: Option<String>,
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && (h.parse::<IpAddr>().is_ok()
            || h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
}

impl Remote {
    /// Reads a record; `Ok(None)` for a row with `PollEvery=never` (it removes the row).
    pub fn parse(v: &Value, unified: bool) -> Result<Option<Remote>, String> {
        let d = v.as_dict().ok_or("an RPOP record must be a dictionary")?;
        let allowed: &[&str] = &[
            "PollEvery",
            "Account",
            "Host",
            "Password",
            "Leave",
            "APOP",
            "SpecialHeader",
            "Last",
        ];
        if let Some(k) = d
            .keys()
            .find(|k| !allowed.iter().any(|a| a.as_bytes() == k.as_slice()))
        {
            return Err(format!("unknown key {}", String::from_utf8_lossy(k)));
        }
        let text = |k: &str| v.get_text(k).map(|t| t.trim().to_string());
        let every = text("PollEvery").unwrap_or_else(|| "10m".into());
        if every.eq_ignore_ascii_case("never") {
            return Ok(None);
        }
        let poll_every = parse_duration(&every).filter(|s| *s > 0).ok_or(format!(
            "PollEvery: {every:?} is not a time (30s, 10m, 2h) or never"
        ))?;
        let account = text("Account").unwrap_or_default();
        if account.is_empty() || account.len() > 255 || account.contains(['\r', '\n', ' ']) {
            return Err("Account must be a remote account name".into());
        }
        let host = text("Host").unwrap_or_default();
        let (host, port) = match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (
                h.to_string(),
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or(format!("Host: {p:?} is not a port"))?,
            ),
            _ => (host, 110),
        };
        if !valid_host(&host) {
            return Err(format!("Host: {host:?} is not a host name"));
        }
        let password = v.get_text("Password").unwrap_or_default();
        if password.contains(['\r', '\n']) {
            return Err("Password cannot hold line breaks".into());
        }
        let special_header = match (unified, text("SpecialHeader")) {
            (false, Some(_)) => return Err("SpecialHeader is for unified accounts only".into()),
            (false, None) => None,
            (true, None) => Some(DEFAULT_SPECIAL_HEADER.to_string()),
            (true, Some(h)) if h.is_empty() => None,
            (true, Some(h)) => {
                if !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') || h.len() > 76 {
                    return Err(format!("SpecialHeader: {h:?} is not a header name"));
                }
                Some(h)
            }
        };
        Ok(Some(Remote {
            poll_every,
            account,
            host,
            port,
            password,
            leave: yes(d.get(b"Leave".as_slice()), "Leave")?,
            apop: yes(d.get(b"APOP".as_slice()), "APOP")?,
            special_header,
        }))
    }

    /// The record in its stored form.
    pub fn to_value(&self, unified: bool) -> Value {
        let yn = |b: bool| Value::str(if b { "Yes" } else { "No" });
        let host = if self.port == 110 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut v = dict([
            ("PollEvery", Value::from(format!("{}s", self.poll_every))),
            ("Account", Value::from(self.account.clone())),
            ("Host", Value::from(host)),
            ("Password", Value::from(self.password.clone())),
            ("Leave", yn(self.leave)),
            ("APOP", yn(self.apop)),
        ]);
        if let (true, Some(d)) = (unified, v.as_dict_mut()) {
            d.insert(
                b"SpecialHeader".to_vec(),
                Value::from(self.special_header.clone().unwrap_or_default()),
            );
        }
        v
    }

    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Whose mail a remote account holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    /// A Unified Domain-Wide Account.
    Unified,
    /// A user: `name@domain`.
    Account(String),
}

/// One thing to poll.
#[derive(Debug, Clone)]
struct Job {
    owner: Owner,
    remote: Remote,
}

impl Job {
    /// Identifies the remote account across polls (and names its state file).
    fn key(&self) -> String {
        let owner = match &self.owner {
            Owner::Unified => "unified".to_string(),
            Owner::Account(a) => a.to_ascii_lowercase(),
        };
        format!(
            "{owner}\n{}\n{}",
            self.remote.account,
            self.remote.server().to_ascii_lowercase()
        )
    }
}

/// The limits on the records users set for themselves (guide.txt:12419-12432).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLimits {
    /// Minimum Poll Period for Users, in seconds.
    pub min_poll: i64,
    /// Maximum Number of Accounts per User.
    pub max_accounts: usize,
}

impl UserLimits {
    /// The limits in the module's effective settings.
    pub fn from(eff: &Dict) -> Result<UserLimits, String> {
        let text = |k: &str| crate::store::settings::text(eff, k);
        let min = text("MinPollPeriodForUsers");
        let max = text("MaxAccountsPerUser");
        Ok(UserLimits {
            min_poll: parse_duration(&min).filter(|d| *d >= 0).ok_or(format!(
                "MinPollPeriodForUsers: {min:?} is not a time (30s, 10m, 2h)"
            ))?,
            max_accounts: max
                .parse()
                .map_err(|_| format!("MaxAccountsPerUser: {max:?} is not a number"))?,
        })
    }
}

/// Checks `SetAccountRPOP`'s records, within `user`'s limits when a user sets their own; returns
/// them in their stored form (`never` rows dropped).
pub fn validate_account_records(
    records: &[Value],
    user: Option<&UserLimits>,
) -> Result<Vec<Value>, String> {
    if records.len() > MAX_RECORDS {
        return Err(format!("at most {MAX_RECORDS} RPOP records per account"));
    }
    let mut kept = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let remote = match Remote::parse(r, false) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => return Err(format!("RPOP record {}: {e}", i + 1)),
        };
        if let Some(l) = user.filter(|l| remote.poll_every < l.min_poll) {
            return Err(format!(
                "RPOP record {}: Poll Every {}s is shorter than the Minimum Poll Period for Users ({}s)",
                i + 1,
                remote.poll_every,
                l.min_poll
            ));
        }
        kept.push(remote.to_value(false));
    }
    if let Some(l) = user.filter(|l| kept.len() > l.max_accounts) {
        return Err(format!(
            "{} RPOP accounts are more than the Maximum Number of Accounts per User ({})",
            kept.len(),
            l.max_accounts
        ));
    }
    Ok(kept)
}

/// `GetAccountRPOP`: the account's records, each with `Last` (the time of the last successful
/// poll or the last error, guide.txt:12584-12588) when it was polled.
pub fn account_records(store: &Store, domain: &str, name: &str) -> Result<Vec<Value>, String> {
    let all = store.domain_rpop(domain).map_err(|e| e.to_string())?;
    let owner = Owner::Account(format!("{name}@{domain}"));
    let rows = match all.get(name.as_bytes()) {
        Some(Value::Array(rows)) => rows.clone(),
        _ => Vec::new(),
    };
    Ok(rows
        .into_iter()
        .map(|mut row| {
            if let Ok(Some(remote)) = Remote::parse(&row, false) {
                let job = Job {
                    owner: owner.clone(),
                    remote,
                };
                let last = State::load(&state_path(store, &job))
                    .unwrap_or_else(|e| State {
                        last: Some(format!("error: state file unreadable: {e}")),
                        ..State::default()
                    })
                    .last;
                if let (Some(last), Some(d)) = (last, row.as_dict_mut()) {
                    d.insert(b"Last".to_vec(), Value::from(last));
                }
            }
            row
        })
        .collect())
}

/// What is remembered of one remote account.
#[derive(Debug, Default)]
struct State {
    /// The UIDs retrieved (and still on the server when last seen).
    uids: Vec<String>,
    /// The last poll: its local time, or its error.
    last: Option<String>,
}

impl State {
    /// The state of one remote account; none yet is an empty state. An unreadable or damaged
    /// file is an error, never an empty state: that would fetch a kept mailbox again.
    fn load(path: &std::path::Path) -> std::io::Result<State> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(e),
        };
        let v = crate::format::parse(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(State {
            uids: v
                .get("UIDs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_text)
                        .map(|t| t.into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            last: v.get_text("Last"),
        })
    }

    fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            fsutil::create_dir_durable(dir)?;
        }
        let mut d = Dict::new();
        if let Some(l) = &self.last {
            d.insert(b"Last".to_vec(), Value::from(l.clone()));
        }
        d.insert(
            b"UIDs".to_vec(),
            Value::Array(self.uids.iter().map(|u| Value::from(u.clone())).collect()),
        );
        fsutil::write_atomic(path, &crate::format::to_pretty(&Value::Dict(d)))
    }
}

fn state_path(store: &Store, job: &Job) -> PathBuf {
    let hash: String = Sha256::digest(job.key().as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    store.base().join("RPOP").join(format!("{hash}.state"))
}

#[derive(Default)]
struct Poller {
    /// When each remote account was last polled (link time).
    last_poll: HashMap<String, NaiveDateTime>,
    /// Remote accounts being polled now.
    running: HashSet<String>,
    /// Failed hosts and accounts, until when.
    failed_hosts: HashMap<String, NaiveDateTime>,
    failed_accounts: HashMap<String, NaiveDateTime>,
}

/// The RPOP module: a [`WakeUp`] action of the dial-up link.
pub struct Rpop {
    store: Store,
    decl: ModuleDecl,
    submit: Arc<dyn Submit>,
    router: Arc<dyn Route>,
    logger: Logger,
    link: Arc<Link>,
    runtime: tokio::runtime::Handle,
    poller: Mutex<Poller>,
    this: std::sync::Weak<Rpop>,
}

impl Rpop {
    /// The module over the server's store, Enqueuer, Router, log and link; register it with
    /// `link.add_wake_up`.
    pub fn new(
        store: Store,
        submit: Arc<dyn Submit>,
        router: Arc<dyn Route>,
        logger: Logger,
        link: Arc<Link>,
        runtime: tokio::runtime::Handle,
    ) -> Arc<Rpop> {
        let decl = module_decl(logger.clone());
        let rpop = Arc::new_cyclic(|this| Rpop {
            store,
            decl,
            submit,
            router,
            logger,
            link,
            runtime,
            poller: Mutex::new(Poller::default()),
            this: this.clone(),
        });
        if let Some(c) = rpop.config() {
            let mut s = rpop.logger.settings();
            s.levels.insert(NAME.to_string(), c.log_level);
            rpop.logger.set_settings(s);
        }
        rpop
    }

    /// The settings in force; `None` (and nothing polled) if the stored ones are broken.
    fn config(&self) -> Option<Config> {
        let stored = match self.store.server_settings(NAME) {
            Ok(Value::Dict(d)) => d,
            _ => Dict::new(),
        };
        Config::from(&crate::cli::effective(&self.decl, &stored)).ok()
    }

    fn poller(&self) -> std::sync::MutexGuard<'_, Poller> {
        self.poller.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every remote account: the unified ones, then each domain's users'.
    fn jobs(&self, config: &Config) -> Vec<Job> {
        let mut jobs: Vec<Job> = config
            .unified
            .iter()
            .map(|r| Job {
                owner: Owner::Unified,
                remote: r.clone(),
            })
            .collect();
        for domain in self.store.list_domains() {
            let Ok(all) = self.store.domain_rpop(&domain) else {
                continue;
            };
            for (name, rows) in all {
                let name = String::from_utf8_lossy(&name).into_owned();
                // The records of an account deleted since are not polled: the mail would
                // have nowhere to go.
                if self.store.lookup(&domain, &name).is_none() {
                    continue;
                }
                for row in rows.as_array().unwrap_or_default() {
                    if let Ok(Some(remote)) = Remote::parse(row, false) {
                        jobs.push(Job {
                            owner: Owner::Account(format!("{name}@{domain}")),
                            remote,
                        });
                    }
                }
            }
        }
        jobs
    }

    /// The jobs to start at `now`: those due (or all, with `all`) that are not running or failed.
    /// With `claim`, the picked jobs are marked running under the same lock, so two link
    /// sessions at once (the watcher and WakeUpNow) never poll one account twice.
    fn pick(&self, now: NaiveDateTime, all: bool, claim: bool) -> Vec<Job> {
        let Some(config) = self.config().filter(|c| c.channels > 0) else {
            return Vec::new();
        };
        let jobs = self.jobs(&config);
        let mut p = self.poller();
        let picked: Vec<Job> = jobs
            .into_iter()
            .filter(|j| {
                let key = j.key();
                let host = j.remote.server().to_ascii_lowercase();
                !p.running.contains(&key)
                    && p.failed_hosts.get(&host).is_none_or(|t| now >= *t)
                    && p.failed_accounts.get(&key).is_none_or(|t| now >= *t)
                    && (all
                        || p.last_poll.get(&key).is_none_or(|t| {
                            now < *t || (now - *t).num_seconds() >= j.remote.poll_every
                        }))
            })
            .collect();
        if claim {
            for j in &picked {
                p.running.insert(j.key());
            }
        }
        picked
    }

    /// Polls `jobs`, at most `Channels` at a time.
    async fn poll_all(self: Arc<Self>, jobs: Vec<Job>) {
        let Some(config) = self.config() else { return };
        let gate = Arc::new(tokio::sync::Semaphore::new(config.channels.max(1)));
        let mut tasks = Vec::new();
        for job in jobs {
            let (me, gate, config) = (self.clone(), gate.clone(), config.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(_permit) = gate.acquire_owned().await else {
                    return;
                };
                me.poll_one(&config, job).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn poll_one(&self, config: &Config, job: Job) {
        let key = job.key();
        let server = job.remote.server().to_ascii_lowercase();
        let what = format!("{}@{}", job.remote.account, server);
        self.logger.log(
            Level::LowLevel,
            NAME,
            format_args!("polling {what} for {}", owner_name(&job.owner)),
        );
        let result = self.retrieve(config, &job).await;
        let now = self.link.now();
        let path = state_path(&self.store, &job);
        let last = match &result {
            Ok(_) => now.format("%Y-%m-%d %H:%M:%S").to_string(),
            Err((e, _)) => format!("error: {e}"),
        };
        let save = tokio::task::spawn_blocking(move || {
            let mut s = State::load(&path)?;
            s.last = Some(last);
            s.save(&path)
        })
        .await;
        if !matches!(save, Ok(Ok(()))) {
            self.logger.log(
                Level::Problems,
                NAME,
                format_args!("cannot record the poll of {what}"),
            );
        }
        let mut p = self.poller();
        p.running.remove(&key);
        p.last_poll.insert(key.clone(), now);
        let (text, messages) = match result {
            Ok(n) => {
                self.logger.log(
                    Level::Major,
                    NAME,
                    format_args!(
                        "{what}: {n} message(s) retrieved for {}",
                        owner_name(&job.owner)
                    ),
                );
                ("OK".to_string(), n)
            }
            Err((e, n)) => {
                let delay = match e {
                    PopError::Host(_) => {
                        p.failed_hosts.insert(
                            server.clone(),
                            now + chrono::TimeDelta::seconds(config.delay_hosts),
                        );
                        config.delay_hosts
                    }
                    PopError::Account(_) => {
                        p.failed_accounts.insert(
                            key.clone(),
                            now + chrono::TimeDelta::seconds(config.delay_accounts),
                        );
                        config.delay_accounts
                    }
                };
                self.logger.log(
                    Level::Problems,
                    NAME,
                    format_args!(
                        "{what}: {e} ({n} message(s) retrieved); not polled again for {delay}s"
                    ),
                );
                (format!("error: {e}"), n)
            }
        };
        drop(p);
        self.link.note_remote(NAME, &server, text, messages);
    }

    /// One poll: the number of messages retrieved, or the error with how many came before it.
    async fn retrieve(&self, config: &Config, job: &Job) -> Result<usize, (PopError, usize)> {
        let r = &job.remote;
        if !config.allow_self_poll && self_address(&r.host, r.port).await {
            return Err((
                PopError::Host(format!(
                    "{} is this server's own address and Allow Self-Poll is off",
                    r.host
                )),
                0,
            ));
        }
        let mut pop = Pop3::connect(&r.host, r.port).await.map_err(|e| (e, 0))?;
        if config.use_tls
            && pop
                .capa()
                .await
                .map_err(|e| (e, 0))?
                .iter()
                .any(|c| c == "STLS")
        {
            pop = pop.stls().await.map_err(|e| (e, 0))?;
        }
        self.logger.log(
            Level::LowLevel,
            NAME,
            format_args!(
                "{}:{}: connected{}",
                r.host,
                r.port,
                if pop.is_tls() { " with TLS" } else { "" }
            ),
        );
        pop.login(&r.account, &r.password, r.apop && config.use_apop)
            .await
            .map_err(|e| (e, 0))?;
        let uids = pop.uidl().await.map_err(|e| (e, 0))?;
        let list = pop.list().await.map_err(|e| (e, 0))?;
        if r.leave && uids.is_none() {
            return Err((
                PopError::Account("the server has no UIDL, which Leave needs".into()),
                0,
            ));
        }
        let path = state_path(&self.store, job);
        let state = {
            let p = path.clone();
            tokio::task::spawn_blocking(move || State::load(&p))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map_err(|e| {
                    (
                        PopError::Account(format!("cannot read the retrieved UIDs: {e}")),
                        0,
                    )
                })?
        };
        let uid_of: HashMap<u32, String> = uids.clone().unwrap_or_default().into_iter().collect();
        let remote: HashSet<&str> = uid_of.values().map(String::as_str).collect();
        // Forget UIDs the server no longer has, so the state stays as small as the mailbox.
        let mut known: Vec<String> = state
            .uids
            .into_iter()
            .filter(|u| remote.contains(u.as_str()))
            .collect();
        let mut seen_uids: HashSet<String> = known.iter().cloned().collect();
        let mut count = 0;
        for (n, _) in list {
            let uid = uid_of.get(&n).cloned();
            let seen = uid.as_ref().is_some_and(|u| seen_uids.contains(u));
            if !seen {
                if uid.is_some() && known.len() >= MAX_UIDS {
                    // Past what the state keeps, a kept message would be fetched on every poll.
                    return Err((
                        PopError::Account(format!(
                            "more than {MAX_UIDS} messages left on the server"
                        )),
                        count,
                    ));
                }
                let message = pop.retr(n, MAX_MESSAGE).await.map_err(|e| (e, count))?;
                self.submit(job, message).await.map_err(|e| (e, count))?;
                count += 1;
                if let Some(u) = uid {
                    seen_uids.insert(u.clone());
                    known.push(u);
                    // Recorded only after the message is safe in the queue.
                    let (p, k) = (path.clone(), known.clone());
                    tokio::task::spawn_blocking(move || {
                        let mut s = State::load(&p)?;
                        s.uids = k;
                        s.save(&p)
                    })
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|e| {
                        (
                            PopError::Account(format!("cannot record the retrieved UIDs: {e}")),
                            count,
                        )
                    })?;
                }
            }
            if !r.leave {
                pop.dele(n).await.map_err(|e| (e, count))?;
            }
        }
        pop.quit().await.map_err(|e| (e, count))?;
        Ok(count)
    }

    /// Submits one retrieved message through the Enqueuer; returns once it is fsynced.
    async fn submit(&self, job: &Job, message: Vec<u8>) -> Result<(), PopError> {
        let (submit, router, owner, special) = (
            self.submit.clone(),
            self.router.clone(),
            job.owner.clone(),
            job.remote.special_header.clone(),
        );
        let postmaster = format!("postmaster@{}", self.store.main_domain());
        tokio::task::spawn_blocking(move || {
            let d: Distribution = match &owner {
                Owner::Unified => {
                    distribute::unified(&message, special.as_deref(), &*router, &postmaster)
                }
                Owner::Account(a) => distribute::for_account(&message, a),
            };
            let submission = Submission {
                return_path: d.return_path,
                recipients: d.recipients,
                source: Source::Rpop,
                env_id: None,
                ret: None,
            };
            submit.submit(submission, &d.message)
        })
        .await
        .map_err(|e| PopError::Account(format!("the queue failed: {e}")))?
        .map(|_| ())
        .map_err(|e| PopError::Account(format!("the queue did not take a message: {e}")))
    }
}

fn owner_name(o: &Owner) -> String {
    match o {
        Owner::Unified => "the Unified Domain-Wide Account".into(),
        Owner::Account(a) => a.clone(),
    }
}

/// Whether `host` resolves to one of this machine's own addresses (an address it can bind).
async fn self_address(host: &str, port: u16) -> bool {
    let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
        return false;
    };
    addrs.into_iter().any(|a| {
        a.ip().is_loopback()
            || a.ip().is_unspecified()
            || std::net::UdpSocket::bind((a.ip(), 0)).is_ok()
    })
}

impl WakeUp for Rpop {
    fn name(&self) -> &str {
        NAME
    }

    fn due(&self, now: NaiveDateTime) -> bool {
        !self.pick(now, false, false).is_empty()
    }

    /// Runs when some record is due (all of them with `all`); none, nothing to name.
    fn run(&self, now: NaiveDateTime, all: bool) -> bool {
        let jobs = self.pick(now, all, true);
        if jobs.is_empty() {
            return false;
        }
        // The WakeUp trait lends &self; the polling task owns the module through `this`.
        match self.this.upgrade() {
            Some(me) => {
                self.runtime.spawn(me.poll_all(jobs));
                true
            }
            None => {
                let mut p = self.poller();
                for j in &jobs {
                    p.running.remove(&j.key());
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
