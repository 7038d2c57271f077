//! The Local Delivery module (LOCAL): stores messages routed to accounts of this server in their
//! mailboxes, through the shared Mailbox Manager.
//!
//! Guide: Local Delivery module guide.txt:11970-12326 (spec D §2): settings 11990-12060, storing
//! and the storage check 12204-12224, Direct Mailbox addressing 12226-12267, Account Detail
//! 12269-12289; Mail Storage limit guide.txt:8757-8787 (spec C §3.5); mailbox files
//! guide.txt:9383-9453, 9717-9740. Trace fields: RFC 5321 §4.4 (`Return-Path:` at final
//! delivery, `Received:`).
//!
//! Flow for one recipient ([`LocalDelivery::deliver`], called by the Dequeuer on a worker thread):
//! find the account's storage, refuse it if its Mail service is disabled, then:
//! - `mailbox#account` (and `account+detail` when the Router's `AccountDetail` is `Direct
//!   Mailbox`: both arrive as `Target::Local { mailbox }`): store in that mailbox when it exists,
//!   else in INBOX, without Rules (guide.txt:12226-12248, 12286-12289);
//! - otherwise run the account Rules (`kernel::rules`, guide.txt:12204-12224; the built-in
//!   Auto-Reply and Redirect All are ordinary rules there) and perform their effects in order:
//!   `Store in` (an existing mailbox, or `~user/box` with the Insert right), redirect / forward /
//!   mirror / reply through the Enqueuer ([`LocalDelivery::set_submitter`], `Source::Rules`),
//!   `Execute` (only when the account's `RulesAllowed` is `Any`; a failure rejects), `Write To
//!   Log`; then store in INBOX with the rules' flags and added fields, or discard, or reject
//!   (`Outcome::Failed` with the rule's text).
//!
//! Every store prepends `Return-Path:` and `Received:`, checks the Mail Storage limit
//! (`MaxAccountSize`; full = `Outcome::Failed("account is full")`) and appends; the append returns
//! once the message is fsynced, so `Delivered` is only said after that. INBOX is created on the
//! first delivery, in the account's `DefaultMailboxType`.
//!
//! Security: the message bytes are untrusted; only the header block is scanned (bounded by the
//! message length) to drop `Return-Path:` fields a sender put there. Mailbox names from the
//! envelope and from Rules go through `mailbox::names::validate` before they become paths.
//! Programs run by `Execute`: see `kernel::rules::run` (no shell, 2-minute limit).
//!
//! Implementation notes: a delivery that is deferred after some rule effects ran (a store failed
//! on I/O) repeats them on the retry: at-least-once, as the queue promises.
//!
//! todo: "Keep if the account is full" / "Keep if Mail Service is disabled" delays, warnings and
//! quota alerts (guide.txt:12031-12060); Message Flow Control (guide.txt:12062-12075); the
//! `X-Real-To` field of Unified Domain-Wide Accounts (guide.txt:12152-12202); `FingerNotify`.

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cli::ModuleDecl;
use crate::format::{Dict, Value};
use crate::kernel::clock::{SharedClock, SystemClock};
use crate::kernel::log::{Level, Logger};
use crate::kernel::mail::{Channel, Job, Outcome, Submit, Target};
use crate::kernel::router;
use crate::kernel::rules::{run, Disposition, Effect, EnvelopeRecipient, MessageView};
use crate::mailbox::account::{AccountBoxError, AccountMailboxes, INBOX};
use crate::mailbox::{acl, names, Flags, Format, MailboxError, MailboxManager};
use crate::store::settings::SettingDecl;
use crate::store::{Object, Store, StoreError};

/// The module's name: its settings file `Settings/LOCAL.settings` and its log tag (guide.txt:12020).
pub const NAME: &str = "LOCAL";

/// The failure text when the Mail Storage limit would be exceeded (guide.txt:12038).
pub const ACCOUNT_FULL: &str = "account is full";
/// The failure text when the account's or domain's Mail service is disabled (guide.txt:12041-12046).
pub const MAIL_DISABLED: &str = "Mail service is disabled for this account";

/// The LOCAL settings of delivery itself, each once with the guide's name, our default and what
/// it does. The routing settings (`DirectMailbox`, `AccountDetail`) are the Router's
/// ([`router::LOCAL_ROUTING_SETTINGS`]): it turns `mailbox#account` and, in Direct Mailbox mode,
/// `account+detail` into `Target::Local { mailbox }`.
pub const SETTINGS: &[SettingDecl] = &[
    SettingDecl {
        key: "LogLevel",
        default: "2",
        doc: "Log: what the LOCAL module records in the System Log (tag LOCAL), 0-5",
    },
    SettingDecl {
        key: "Processes",
        default: "1",
        doc: "Processes: simultaneous delivery threads of the LOCAL queue, read by the Dequeuer \
              (guide.txt:12023-12028)",
    },
    SettingDecl {
        key: "SuspendAfterMessages",
        default: "unlimited",
        doc: "Flow Control: suspend an account's queue if it received this many messages \
              (guide.txt:12062-12075; a number or unlimited)",
    },
    SettingDecl {
        key: "SuspendWithin",
        default: "60",
        doc: "Flow Control: ... within this many seconds (mail-loop protection)",
    },
];

/// The settings declaration for `GetModule LOCAL`; a change of `LogLevel` applies to `logger` at once.
pub fn module_decl(logger: Logger) -> ModuleDecl {
    ModuleDecl {
        name: NAME.into(),
        settings: SETTINGS
            .iter()
            .chain(router::LOCAL_ROUTING_SETTINGS)
            .copied()
            .collect(),
        validate: Some(Arc::new(|eff: &Dict| Config::from(eff).map(|_| ()))),
        changed: Some(Arc::new(move |eff: &Dict| {
            if let Ok(c) = Config::from(eff) {
                set_log_level(&logger, c.log_level);
            }
        })),
    }
}

fn set_log_level(logger: &Logger, level: Level) {
    let mut s = logger.settings();
    s.levels.insert(NAME.to_string(), level);
    logger.set_settings(s);
}

/// The LOCAL settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    log_level: Level,
    processes: usize,
    /// Flow Control: at most this many messages per account within `flow_window`.
    flow_limit: Option<usize>,
    flow_window: Duration,
}

impl Config {
    /// Reads effective settings (explicit over the declared defaults).
    fn from(eff: &Dict) -> Result<Config, String> {
        let text = |k: &str| setting(eff, k);
        let level = text("LogLevel");
        let log_level = level
            .parse::<Level>()
            .map_err(|_| format!("LogLevel: {level:?} is not a log level"))?;
        let p = text("Processes");
        let processes = p
            .parse::<usize>()
            .map_err(|_| format!("Processes: {p:?} is not a number"))?;
        let direct = text("DirectMailbox");
        if !["YES", "NO"].iter().any(|v| direct.eq_ignore_ascii_case(v)) {
            return Err(format!("DirectMailbox: {direct:?} is not YES or NO"));
        }
        let detail = text("AccountDetail");
        if !["Disabled", "Enabled", "Direct Mailbox"]
            .iter()
            .any(|v| detail.eq_ignore_ascii_case(v))
        {
            return Err(format!(
                "AccountDetail: {detail:?} is not Disabled, Enabled or Direct Mailbox"
            ));
        }
        let limit = text("SuspendAfterMessages");
        let flow_limit = match limit.as_str() {
            "unlimited" => None,
            n => Some(n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("SuspendAfterMessages: {n:?} is not a number or unlimited")
            })?),
        };
        let within = text("SuspendWithin");
        let flow_window = within
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("SuspendWithin: {within:?} is not a number of seconds"))?;
        Ok(Config {
            log_level,
            processes,
            flow_limit,
            flow_window,
        })
    }

    /// The stored settings, with the declared defaults where a key is absent or the file is broken.
    fn load(store: &Store) -> Config {
        let stored = match store.server_settings(NAME) {
            Ok(Value::Dict(d)) => d,
            _ => Dict::new(),
        };
        Config::from(&stored).unwrap_or_else(|_| {
            Config::from(&Dict::new()).unwrap_or(Config {
                log_level: Level::Major,
                processes: 1,
                flow_limit: None,
                flow_window: Duration::from_secs(60),
            })
        })
    }
}

/// An effective setting as text: the explicit value, else the declared default.
fn setting(eff: &Dict, key: &str) -> String {
    eff.get(key.as_bytes())
        .and_then(Value::as_text)
        .map(|t| t.into_owned())
        .or_else(|| {
            SETTINGS
                .iter()
                .chain(router::LOCAL_ROUTING_SETTINGS)
                .find(|s| s.key == key)
                .map(|s| s.default.to_string())
        })
        .unwrap_or_default()
}

/// The Local Delivery channel: one per server, shared by the Dequeuer's worker threads.
pub struct LocalDelivery {
    store: Store,
    mailboxes: Arc<MailboxManager>,
    logger: Logger,
    host: String,
    clock: SharedClock,
    submitter: OnceLock<Arc<dyn Submit>>,
    /// Flow Control: when each account's recent messages came (guide.txt:12062-12075).
    received: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Why a store into a mailbox did not happen.
enum StoreFailure {
    /// The Mail Storage limit would be exceeded.
    Full,
    /// The mailbox does not exist, or the name is not usable.
    NoMailbox(String),
    /// A file system or store failure: try again later.
    Io(String),
}

/// What one delivery works with.
struct Delivery<'a> {
    job: &'a Job<'a>,
    domain: &'a str,
    account: &'a str,
    boxes: AccountMailboxes,
    settings: Dict,
    date: String,
}

impl LocalDelivery {
    /// A channel storing into `store`'s accounts through the server's one `mailboxes` manager;
    /// `host` is the name the `Received:` field gives for this server. Applies the stored
    /// `LogLevel` to `logger`. Rules that send mail need [`set_submitter`](Self::set_submitter).
    pub fn new(
        store: Store,
        mailboxes: Arc<MailboxManager>,
        logger: Logger,
        host: impl Into<String>,
    ) -> LocalDelivery {
        set_log_level(&logger, Config::load(&store).log_level);
        LocalDelivery {
            store,
            mailboxes,
            logger,
            host: host.into(),
            clock: SystemClock::shared(),
            submitter: OnceLock::new(),
            received: Mutex::new(HashMap::new()),
        }
    }

    /// Flow Control: counts a message for the account and says whether its queue is suspended
    /// (more than the limit within the period). Every message counts, stored or not, as the
    /// guide says; a suspended message waits in the queue (Deferred) rather than bouncing.
    fn flow_suspended(&self, account: &str) -> Option<String> {
        let config = Config::load(&self.store);
        let limit = config.flow_limit?;
        let now = Instant::now();
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let times = received.entry(account.to_string()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= config.flow_window)
        {
            times.pop_front();
        }
        if times.len() >= limit {
            return Some(format!(
                "the account queue is suspended: {limit} messages within {} s (Flow Control)",
                config.flow_window.as_secs()
            ));
        }
        times.push_back(now);
        None
    }

    /// The Enqueuer that Rules hand their redirects, forwards, mirrors and replies to (set once,
    /// when the queue exists; later calls are ignored).
    pub fn set_submitter(&self, submitter: Arc<dyn Submit>) {
        let _ = self.submitter.set(submitter);
    }

    /// The `Processes` setting: how many delivery threads the Dequeuer should run for LOCAL.
    pub fn processes(&self) -> usize {
        Config::load(&self.store).processes
    }

    fn deliver_local(
        &self,
        job: &Job<'_>,
        domain: &str,
        account: &str,
        mailbox: Option<&str>,
    ) -> Outcome {
        let boxes = match AccountMailboxes::open(&self.store, domain, account) {
            Ok(b) => b,
            Err(e @ (StoreError::UnknownAccount | StoreError::UnknownDomain)) => {
                return Outcome::Failed(e.to_string().to_lowercase())
            }
            Err(e) => return Outcome::Deferred(e.to_string()),
        };
        let settings = match self.store.account_effective_settings(domain, account) {
            Ok(s) => s,
            Err(e) => return Outcome::Deferred(e.to_string()),
        };
        let domain_settings = self
            .store
            .domain_effective_settings(domain)
            .unwrap_or_default();
        if !service_allows(&settings, "AccessModes", "Mail")
            || !service_allows(&domain_settings, "DomainAccessModes", "Mail")
        {
            return Outcome::Failed(MAIL_DISABLED.into());
        }
        let d = Delivery {
            job,
            domain,
            account,
            boxes,
            settings,
            date: chrono::Utc::now().to_rfc2822(),
        };
        // guide.txt:12230, 12286-12289: direct mailbox addressing bypasses the account Rules; a
        // named mailbox that does not exist falls back to INBOX (guide.txt:12226-12248).
        if let Some(m) = mailbox {
            let exists = d.boxes.find(m).ok().flatten().is_some();
            return self.final_store(&d, if exists { m } else { INBOX }, Flags::RECENT, "");
        }
        // `account+detail` in Enabled mode (guide.txt:12279-12285): INBOX, Rules applied (their
        // Recipient conditions see the detail in the envelope recipient).
        self.apply_rules(&d)
    }

    /// The account Rules (guide.txt:12204-12224), then the store in INBOX unless they discarded
    /// or rejected the message.
    fn apply_rules(&self, d: &Delivery<'_>) -> Outcome {
        let job = d.job;
        let mut view = MessageView::new(
            job.message,
            job.return_path,
            vec![EnvelopeRecipient::new(job.recipient)],
            job.source.clone(),
        );
        view.queue_id = Some(job.id);
        let out = match run::account_rules(
            &self.store,
            &*self.clock,
            &self.host,
            d.domain,
            d.account,
            &view,
        ) {
            Ok(out) => out,
            Err(e) => {
                // A broken rule set must not lose mail: store as if there were no rules.
                self.logger.log(
                    Level::Problems,
                    NAME,
                    format_args!(
                        "{}: the Rules of {}@{} are not usable: {e}",
                        job.id, d.account, d.domain
                    ),
                );
                return self.final_store(d, INBOX, Flags::RECENT, "");
            }
        };
        for name in &out.applied {
            self.logger.log(
                Level::LowLevel,
                NAME,
                format_args!("{}: rule '{name}' applied", job.id),
            );
        }
        for note in &out.notes {
            self.logger
                .log(Level::Problems, NAME, format_args!("{}: {note}", job.id));
        }
        for effect in &out.effects {
            if let Some(stop) = self.perform(d, &view, effect) {
                return stop;
            }
        }
        match &out.disposition {
            Disposition::Deliver => {
                self.final_store(d, INBOX, out.flags | Flags::RECENT, &out.headers)
            }
            Disposition::Discard => {
                self.logger.log(
                    Level::Major,
                    NAME,
                    format_args!(
                        "{}: discarded by the Rules of {}@{}",
                        job.id, d.account, d.domain
                    ),
                );
                Outcome::Delivered
            }
            Disposition::Reject(text) => {
                self.logger.log(
                    Level::Major,
                    NAME,
                    format_args!(
                        "{}: rejected by the Rules of {}@{}: {text}",
                        job.id, d.account, d.domain
                    ),
                );
                Outcome::Failed(text.clone())
            }
        }
    }

    /// Performs one rule effect; `Some` ends the delivery with that outcome.
    fn perform(
        &self,
        d: &Delivery<'_>,
        view: &MessageView<'_>,
        effect: &Effect,
    ) -> Option<Outcome> {
        let id = d.job.id;
        match effect {
            Effect::Store {
                mailbox,
                flags,
                headers,
            } => match self.rule_store(d, mailbox, *flags | Flags::RECENT, headers) {
                Ok(()) => None,
                Err(StoreFailure::Full) => Some(Outcome::Failed(ACCOUNT_FULL.into())),
                Err(StoreFailure::NoMailbox(why) | StoreFailure::Io(why)) => {
                    self.logger.log(
                        Level::Problems,
                        NAME,
                        format_args!("{id}: 'Store in' {mailbox} failed: {why}"),
                    );
                    None
                }
            },
            Effect::Submit {
                action,
                submission,
                message,
            } => {
                let result = match self.submitter.get() {
                    Some(s) => s
                        .submit(submission.clone(), message)
                        .map(|qid| format!("queued as {qid}"))
                        .map_err(|e| e.to_string()),
                    None => Err("no Enqueuer is connected".to_string()),
                };
                let (level, text) = match result {
                    Ok(t) => (Level::Major, t),
                    Err(e) => (Level::Failures, format!("not sent: {e}")),
                };
                self.logger
                    .log(level, NAME, format_args!("{id}: rule '{action}' {text}"));
                None
            }
            Effect::Execute(spec) => {
                let report = run::execute(spec, view, self.store.base(), run::EXEC_TIMEOUT);
                if report.ok {
                    self.logger.log(
                        Level::LowLevel,
                        NAME,
                        format_args!("{id}: Execute {:?} done: {}", spec.command, report.log),
                    );
                    None
                } else {
                    self.logger.log(
                        Level::Problems,
                        NAME,
                        format_args!("{id}: Execute {:?} failed: {}", spec.command, report.log),
                    );
                    Some(Outcome::Failed(
                        report.error.unwrap_or_else(|| run::EXEC_FAILED.into()),
                    ))
                }
            }
            Effect::Log(text) => {
                self.logger
                    .log(Level::Major, NAME, format_args!("{id}: {text}"));
                None
            }
            Effect::FingerNotify(_) | Effect::ExternalFilter => {
                self.logger.log(
                    Level::Problems,
                    NAME,
                    format_args!("{id}: {effect:?} is not available in account Rules; skipped"),
                );
                None
            }
        }
    }

    /// `Store in` (guide.txt:10856-10870): an existing mailbox of the account, or `~user/box` of
    /// another account where this account has the Insert right.
    fn rule_store(
        &self,
        d: &Delivery<'_>,
        mailbox: &str,
        flags: Flags,
        headers: &str,
    ) -> Result<(), StoreFailure> {
        let Some(foreign) = mailbox.strip_prefix('~') else {
            return self.store_in(d, &d.boxes, &d.settings, mailbox, flags, headers);
        };
        let (user, name) = foreign
            .split_once('/')
            .ok_or_else(|| StoreFailure::NoMailbox("no mailbox name after the account".into()))?;
        let (user, domain) = match user.rsplit_once('@') {
            Some((u, dom)) => (
                u,
                self.store
                    .resolve_domain(dom)
                    .ok_or_else(|| StoreFailure::NoMailbox("unknown domain".into()))?,
            ),
            None => (user, d.domain.to_string()),
        };
        let owner = match self.store.lookup(&domain, user) {
            Some(Object::Account(n)) | Some(Object::Alias { account: n }) => n,
            _ => return Err(StoreFailure::NoMailbox("unknown account".into())),
        };
        let boxes = AccountMailboxes::open(&self.store, &domain, &owner)
            .map_err(|e| StoreFailure::NoMailbox(e.to_string()))?;
        let name = names::validate(name).map_err(|e| StoreFailure::NoMailbox(e.to_string()))?;
        if !(domain == d.domain && owner == d.account) {
            let stored = self
                .store
                .account_info(&domain, &owner, acl::INFO_KEY)
                .map_err(|e| StoreFailure::Io(e.to_string()))?;
            let rights = acl::effective(
                &acl::get(stored.as_ref(), &name),
                &domain,
                d.account,
                d.domain,
            );
            if !rights.contains(acl::right('i')) {
                return Err(StoreFailure::NoMailbox(
                    "no Insert right for that mailbox".into(),
                ));
            }
        }
        let settings = self
            .store
            .account_effective_settings(&domain, &owner)
            .map_err(|e| StoreFailure::Io(e.to_string()))?;
        self.store_in(d, &boxes, &settings, &name, flags, headers)
    }

    /// The last store of a delivery, and its outcome.
    fn final_store(&self, d: &Delivery<'_>, mailbox: &str, flags: Flags, headers: &str) -> Outcome {
        match self.store_in(d, &d.boxes, &d.settings, mailbox, flags, headers) {
            Ok(()) => Outcome::Delivered,
            Err(StoreFailure::Full) => Outcome::Failed(ACCOUNT_FULL.into()),
            Err(StoreFailure::NoMailbox(e)) => Outcome::Failed(e),
            Err(StoreFailure::Io(e)) => Outcome::Deferred(e),
        }
    }

    /// Appends the message, with its trace fields and `headers`, to `mailbox` of `boxes` after
    /// the Mail Storage check; INBOX is created when missing (first delivery).
    fn store_in(
        &self,
        d: &Delivery<'_>,
        boxes: &AccountMailboxes,
        settings: &Dict,
        mailbox: &str,
        flags: Flags,
        headers: &str,
    ) -> Result<(), StoreFailure> {
        let job = d.job;
        let message = with_trace_fields(
            job.message,
            &TraceFields {
                return_path: job.return_path,
                added: headers,
                recipient: job.recipient,
                host: &self.host,
                id: job.id,
                date: &d.date,
            },
        );
        let limit = crate::store::settings::text(settings, "MaxAccountSize");
        match parse_limit(&limit) {
            Some(Limit::Bytes(max)) => {
                let used = boxes.total_size();
                if used.saturating_add(message.len() as u64) > max {
                    self.logger.log(
                        Level::Problems,
                        NAME,
                        format_args!(
                            "{}: mailbox {mailbox} is in a full account ({used} of {max} bytes used)",
                            job.id
                        ),
                    );
                    return Err(StoreFailure::Full);
                }
            }
            Some(Limit::Unlimited) => {}
            None => {
                return Err(StoreFailure::Io(format!(
                    "MaxAccountSize: {limit:?} is not a size"
                )))
            }
        }
        let opened = if mailbox == INBOX {
            boxes.open_inbox(&self.mailboxes, new_mailbox_format(settings))
        } else {
            boxes.open_mailbox(&self.mailboxes, mailbox)
        };
        let stored = opened.and_then(|mb| {
            mb.append(&message, flags, chrono::Utc::now().timestamp())
                .map_err(AccountBoxError::from)
        });
        match stored {
            Ok(uid) => {
                self.logger.log(
                    Level::Major,
                    NAME,
                    format_args!(
                        "{}: stored for {}@{} in {mailbox} (UID {uid}, {} bytes)",
                        job.id,
                        d.account,
                        d.domain,
                        message.len()
                    ),
                );
                Ok(())
            }
            Err(e @ AccountBoxError::Mailbox(MailboxError::Name(_) | MailboxError::NotFound)) => {
                Err(StoreFailure::NoMailbox(e.to_string()))
            }
            Err(e) => {
                self.logger.log(
                    Level::Failures,
                    NAME,
                    format_args!("{}: cannot store in {mailbox}: {e}", job.id),
                );
                Err(StoreFailure::Io(e.to_string()))
            }
        }
    }
}

impl Channel for LocalDelivery {
    fn deliver(&self, job: &Job<'_>) -> Outcome {
        match job.target {
            Target::Local {
                domain,
                account,
                mailbox,
                detail: _,
            } => {
                if let Some(why) = self.flow_suspended(&format!("{account}@{domain}")) {
                    self.logger.log(
                        Level::Problems,
                        NAME,
                        format_args!("{account}@{domain}: {why}"),
                    );
                    return Outcome::Deferred(why);
                }
                self.deliver_local(job, domain, account, mailbox.as_deref())
            }
            other => Outcome::Failed(format!("LOCAL cannot deliver to {other:?}")),
        }
    }
}

/// Whether an `AccessModes`-style setting (`All`, `None`, or an array of service names) allows
/// `service` (guide.txt:7773-7787, 8737-8755). Absent means All.
fn service_allows(d: &Dict, key: &str, service: &str) -> bool {
    match d.get(key.as_bytes()) {
        None => true,
        Some(Value::Str(s)) => s.eq_ignore_ascii_case(b"All"),
        Some(Value::Array(a)) => a.iter().any(|v| {
            v.as_bytes()
                .is_some_and(|b| b.eq_ignore_ascii_case(service.as_bytes()))
        }),
        Some(Value::Dict(_)) => false,
    }
}

/// The format of a new INBOX: the account's `DefaultMailboxType` (`MailBox` or `MailDir`).
fn new_mailbox_format(settings: &Dict) -> Format {
    if crate::store::settings::text(settings, "DefaultMailboxType").eq_ignore_ascii_case("MailDir")
    {
        Format::Mdir
    } else {
        Format::Mbox
    }
}

/// A storage limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Unlimited,
    Bytes(u64),
}

/// `unlimited` (or empty), `1234`, `64K`, `10M`, `1G` (the guide's size notation).
fn parse_limit(s: &str) -> Option<Limit> {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("unlimited") {
        return Some(Limit::Unlimited);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).map(Limit::Bytes)
}

/// The trace fields a stored message gets.
struct TraceFields<'a> {
    return_path: &'a str,
    /// Header fields added by Rules (CRLF-terminated lines), placed after `Return-Path:`.
    added: &'a str,
    recipient: &'a str,
    host: &'a str,
    id: u64,
    date: &'a str,
}

/// The message as stored: `Return-Path:`, the fields Rules added (guide.txt:10849-10851) and
/// `Received:` first (RFC 5321 §4.4), any `Return-Path:` fields of the original header dropped,
/// in the message's own line ending.
fn with_trace_fields(message: &[u8], t: &TraceFields<'_>) -> Vec<u8> {
    let eol: &[u8] = match message.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && message[i - 1] == b'\r' => b"\r\n",
        _ => b"\n",
    };
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let mut out = Vec::with_capacity(message.len() + 256);
    out.extend_from_slice(format!("Return-Path: <{}>", clean(t.return_path)).as_bytes());
    out.extend_from_slice(eol);
    for line in t.added.lines().filter(|l| !l.is_empty()) {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(format!("Received: by {} (Gatehouse LOCAL)", clean(t.host)).as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(
        format!(
            "\tid {} for <{}>; {}",
            t.id,
            clean(t.recipient),
            clean(t.date)
        )
        .as_bytes(),
    );
    out.extend_from_slice(eol);
    let mut pos = 0;
    let mut dropping = false;
    while pos < message.len() {
        let end = message[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        if line == b"\n" || line == b"\r\n" {
            // End of the header: the rest is copied as it is.
            out.extend_from_slice(&message[pos..]);
            return out;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            dropping = line.len() >= 12 && line[..12].eq_ignore_ascii_case(b"return-path:");
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        pos = end;
    }
    out
}
