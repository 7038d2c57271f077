//! Checking a message against a rule set (guide.txt:10437-10497, 10779-11066).
//!
//! [`evaluate`] runs the rules, higher priority first (equal priorities keep their stored
//! order), skips disabled ones, and returns an [`Outcome`]: the ordered [`Effect`]s the caller
//! performs (stores, messages to submit, programs, log lines) and what happens to the message at
//! the end ([`Disposition`]). The engine itself delivers nothing; its only side effects are
//! through [`RulesData`] (string lists and the reply memory).
//!
//! Order matters: `Mark` and `Add Headers` affect the stores that come after them, so each
//! [`Effect::Store`] carries the flags and header fields of its moment. The caller performs the
//! effects in order; when an [`Effect::Execute`] fails, it stops and rejects the message with
//! "automated processing failed" (guide.txt:11008-11016).

use std::sync::Mutex;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Timelike};

use super::compose;
use super::message::MessageView;
use super::parse::parse_day;
use super::pattern;
use super::{Action, Condition, DatePrecision, DateSpec, ExecSpec, Field, MarkOp, Op, Rule};
use crate::format::Value;
use crate::kernel::clock::Clock;
use crate::kernel::mail::Submission;
use crate::mailbox::Flags;
use crate::store::Store;

/// Whose rules are running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Server-Wide Rules, run by the Enqueuer.
    Server,
    /// Account Rules, run by Local Delivery for this account (`name@domain`).
    Account(String),
}

/// Account data the rules read and write: string lists (guide.txt:10763-10777) and the memory
/// of whom `Reply with` answered. Errors are texts for the log; the rules go on without.
pub trait RulesData {
    /// The strings of a list (empty when absent).
    fn string_list(&self, name: &str) -> Vec<String>;
    /// Adds a string to a list unless it is already there.
    fn add_to_string_list(&self, name: &str, item: &str) -> Result<(), String>;
    /// When this address was last sent an automatic reply.
    fn last_reply(&self, address: &str) -> Option<DateTime<FixedOffset>>;
    /// Records a reply sent now; entries older than `keep` may be dropped.
    fn record_reply(
        &self,
        address: &str,
        now: DateTime<FixedOffset>,
        keep: chrono::TimeDelta,
    ) -> Result<(), String>;
}

/// [`RulesData`] kept in memory (server-wide rules have no account dataset; tests).
#[derive(Debug, Default)]
pub struct MemoryData {
    lists: Mutex<Vec<(String, Vec<String>)>>,
    replies: Mutex<Vec<(String, DateTime<FixedOffset>)>>,
}

impl MemoryData {
    /// Empty lists, empty memory.
    pub fn new() -> MemoryData {
        MemoryData::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RulesData for MemoryData {
    fn string_list(&self, name: &str) -> Vec<String> {
        lock(&self.lists)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }
    fn add_to_string_list(&self, name: &str, item: &str) -> Result<(), String> {
        let mut lists = lock(&self.lists);
        match lists.iter_mut().find(|(n, _)| n == name) {
            Some((_, l)) if l.iter().any(|x| x.eq_ignore_ascii_case(item)) => {}
            Some((_, l)) => l.push(item.to_string()),
            None => lists.push((name.to_string(), vec![item.to_string()])),
        }
        Ok(())
    }
    fn last_reply(&self, address: &str) -> Option<DateTime<FixedOffset>> {
        lock(&self.replies)
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(address))
            .map(|(_, t)| *t)
    }
    fn record_reply(
        &self,
        address: &str,
        now: DateTime<FixedOffset>,
        _keep: chrono::TimeDelta,
    ) -> Result<(), String> {
        let mut r = lock(&self.replies);
        r.retain(|(a, _)| !a.eq_ignore_ascii_case(address));
        r.push((address.to_string(), now));
        Ok(())
    }
}

/// `.info` key of the string lists: `{ListName = (string, ...); ...}`.
pub const INFO_STRING_LISTS: &str = "StringLists";
/// `.info` key of the reply memory: `{address = "RFC 3339 time"; ...}`.
pub const INFO_REPLIED: &str = "RepliedTimes";
/// Most entries kept in one string list or in the reply memory.
pub const MAX_LIST_ITEMS: usize = 10_000;

/// [`RulesData`] in an account's `.info` (guide.txt:9725-9729: `.info` holds volatile account
/// data). Read-modify-write under the store's lock per call; two deliveries to the same account
/// at the same instant may each miss the other's entry (at worst one duplicate reply).
#[derive(Clone)]
pub struct StoreData {
    store: Store,
    domain: String,
    account: String,
}

impl StoreData {
    /// The data of `account` in `domain`.
    pub fn new(store: Store, domain: &str, account: &str) -> StoreData {
        StoreData {
            store,
            domain: domain.to_string(),
            account: account.to_string(),
        }
    }

    fn dict(&self, key: &str) -> crate::format::Dict {
        match self.store.account_info(&self.domain, &self.account, key) {
            Ok(Some(Value::Dict(d))) => d,
            _ => crate::format::Dict::new(),
        }
    }

    /// Removes a string list (WebUser's "Clear 'Replied Addresses' List", guide.txt:11097-11100).
    pub fn clear_string_list(&self, name: &str) -> Result<(), String> {
        let mut d = self.dict(INFO_STRING_LISTS);
        d.shift_remove(name.as_bytes());
        self.store
            .set_account_info(
                &self.domain,
                &self.account,
                INFO_STRING_LISTS,
                Value::Dict(d),
            )
            .map_err(|e| e.to_string())
    }
}

impl RulesData for StoreData {
    fn string_list(&self, name: &str) -> Vec<String> {
        self.dict(INFO_STRING_LISTS)
            .get(name.as_bytes())
            .and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_text().map(|t| t.into_owned()))
            .collect()
    }

    fn add_to_string_list(&self, name: &str, item: &str) -> Result<(), String> {
        let mut d = self.dict(INFO_STRING_LISTS);
        let entry = d
            .entry(name.as_bytes().to_vec())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !matches!(entry, Value::Array(_)) {
            *entry = Value::Array(Vec::new());
        }
        if let Value::Array(items) = entry {
            let known = items
                .iter()
                .any(|v| v.as_text().is_some_and(|t| t.eq_ignore_ascii_case(item)));
            if known {
                return Ok(());
            }
            if items.len() >= MAX_LIST_ITEMS {
                items.remove(0);
            }
            items.push(Value::str(item));
        }
        self.store
            .set_account_info(
                &self.domain,
                &self.account,
                INFO_STRING_LISTS,
                Value::Dict(d),
            )
            .map_err(|e| e.to_string())
    }

    fn last_reply(&self, address: &str) -> Option<DateTime<FixedOffset>> {
        let d = self.dict(INFO_REPLIED);
        let t = d.get(address.to_ascii_lowercase().as_bytes())?.as_text()?;
        DateTime::parse_from_rfc3339(&t).ok()
    }

    fn record_reply(
        &self,
        address: &str,
        now: DateTime<FixedOffset>,
        keep: chrono::TimeDelta,
    ) -> Result<(), String> {
        let mut d = self.dict(INFO_REPLIED);
        d.retain(|_, v| {
            v.as_text()
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .is_some_and(|t| now - t < keep)
        });
        while d.len() >= MAX_LIST_ITEMS {
            d.shift_remove_index(0);
        }
        d.insert(
            address.to_ascii_lowercase().into_bytes(),
            Value::str(now.to_rfc3339()),
        );
        self.store
            .set_account_info(&self.domain, &self.account, INFO_REPLIED, Value::Dict(d))
            .map_err(|e| e.to_string())
    }
}

/// Everything the rules need besides the message.
pub struct Env<'a> {
    /// Server-wide or whose account.
    pub scope: Scope,
    /// The time source for `Time Of Day`, `Current Date`, `Current Day` and the reply memory.
    pub clock: &'a dyn Clock,
    /// String lists and reply memory.
    pub data: &'a dyn RulesData,
    /// Whether execute-type actions (`Execute`, `FingerNotify`) may run: always for server-wide
    /// rules; for an account, when its effective `Automated Rules` is `Any` (guide.txt:8804-8815).
    pub allow_exec: bool,
    /// The server's host name (Message-IDs of composed messages).
    pub host: String,
}

/// What finally happens to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Stored in INBOX (account) or passed on to its routes (server), with the final flags and
    /// added header fields of the [`Outcome`].
    Deliver,
    /// Dropped; a positive DSN if the sender asked for one (guide.txt:10794-10798).
    Discard,
    /// Refused with this text; a negative DSN (guide.txt:10802-10806).
    Reject(String),
}

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `Store in`: append a copy to this mailbox (`~user/box` = another account's, with the `i`
    /// right); prepend `headers` (CRLF-terminated lines) after the Return-Path.
    Store {
        /// The mailbox name as written in the rule.
        mailbox: String,
        /// Flags of this moment.
        flags: Flags,
        /// Added header fields of this moment.
        headers: String,
    },
    /// A message to hand to the Enqueuer (redirect, forward, mirror, reply, react).
    Submit {
        /// Which action made it.
        action: &'static str,
        /// Its envelope.
        submission: Submission,
        /// Its bytes.
        message: Vec<u8>,
    },
    /// `Execute` (allowed by the rights): run it; on failure stop and reject.
    Execute(ExecSpec),
    /// `FingerNotify` (allowed by the rights).
    FingerNotify(Option<String>),
    /// `ExternalFilter` (server-wide).
    ExternalFilter,
    /// `Write To Log`: a Major (level 2) record with the message id and this text.
    Log(String),
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Effects, in order.
    pub effects: Vec<Effect>,
    /// What happens at the end.
    pub disposition: Disposition,
    /// Flags for the final store.
    pub flags: Flags,
    /// Header fields added by `Add Headers` (CRLF-terminated lines) for the final store; they go
    /// after the Return-Path field (guide.txt:10849-10851).
    pub headers: String,
    /// Names of the rules whose actions ran, in order (for the Low-Level log).
    pub applied: Vec<String>,
    /// Notes for the log: actions skipped (rights, scope, reply memory) and data errors.
    pub notes: Vec<String>,
}

/// The default text of a `Reject` without one.
pub const DEFAULT_REJECT: &str = "rejected by automated rules";

/// Runs `rules` on `msg`.
pub fn evaluate(rules: &[Rule], msg: &MessageView<'_>, env: &Env<'_>) -> Outcome {
    let mut order: Vec<&Rule> = rules.iter().filter(|r| r.enabled()).collect();
    order.sort_by_key(|r| std::cmp::Reverse(r.priority));
    let now = env.clock.now();
    let mut st = State {
        out: Outcome {
            effects: Vec::new(),
            disposition: Disposition::Deliver,
            flags: Flags::empty(),
            headers: String::new(),
            applied: Vec::new(),
            notes: Vec::new(),
        },
        added: Vec::new(),
    };
    for rule in order {
        if !rule
            .conditions
            .iter()
            .all(|c| condition_met(c, msg, env, now, &st.added))
        {
            continue;
        }
        st.out.applied.push(rule.name.clone());
        for action in &rule.actions {
            if run_action(action, &rule.name, msg, env, now, &mut st) {
                return st.out;
            }
        }
    }
    st.out
}

struct State {
    out: Outcome,
    added: Vec<(String, String)>,
}

/// Performs one action; true when it ends all processing.
fn run_action(
    action: &Action,
    rule: &str,
    msg: &MessageView<'_>,
    env: &Env<'_>,
    now: DateTime<FixedOffset>,
    st: &mut State,
) -> bool {
    let server = env.scope == Scope::Server;
    if action.server_only() && !server {
        st.out.notes.push(format!(
            "rule '{rule}': '{}' is for Server-Wide Rules only; skipped",
            action.keyword()
        ));
        return false;
    }
    match action {
        Action::StopProcessing => return true,
        Action::Discard => {
            st.out.disposition = Disposition::Discard;
            return true;
        }
        Action::Reject(text) => {
            let text = if text.is_empty() {
                DEFAULT_REJECT
            } else {
                text
            };
            st.out.disposition = Disposition::Reject(text.to_string());
            return true;
        }
        Action::Mark(ops) => {
            for op in ops {
                let f = &mut st.out.flags;
                *f = match op {
                    MarkOp::Read => *f | Flags::SEEN,
                    MarkOp::Unread => f.without(Flags::SEEN),
                    MarkOp::Flagged => *f | Flags::FLAGGED,
                    MarkOp::Unflagged => f.without(Flags::FLAGGED),
                    MarkOp::Answered => *f | Flags::ANSWERED,
                    MarkOp::Unanswered => f.without(Flags::ANSWERED),
                };
            }
        }
        Action::AddHeaders(text) => {
            for line in text.lines().map(|l| l.trim_end_matches('\r')) {
                if line.trim().is_empty() {
                    continue;
                }
                st.out.headers.push_str(line);
                st.out.headers.push_str("\r\n");
                if line.starts_with([' ', '\t']) {
                    if let Some((_, v)) = st.added.last_mut() {
                        v.push(' ');
                        v.push_str(line.trim());
                    }
                } else if let Some((n, v)) = line.split_once(':') {
                    st.added.push((n.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        Action::StoreIn(mailbox) => st.out.effects.push(Effect::Store {
            mailbox: mailbox.clone(),
            flags: st.out.flags,
            headers: st.out.headers.clone(),
        }),
        Action::RedirectTo(to) | Action::ForwardTo(to) | Action::MirrorTo(to) => {
            let mode = match action {
                Action::RedirectTo(_) => compose::Resend::Redirect,
                Action::ForwardTo(_) => compose::Resend::Forward,
                _ => compose::Resend::Mirror,
            };
            if let Some(why) = compose::resend_loop(msg, &env.scope, &env.host) {
                st.out.notes.push(format!(
                    "rule '{rule}': '{}' skipped: {why}",
                    action.keyword()
                ));
                return false;
            }
            let (submission, message) = compose::resend(mode, msg, &env.scope, to, now, &env.host);
            st.out.effects.push(Effect::Submit {
                action: action.keyword(),
                submission,
                message,
            });
        }
        Action::ReplyWith(text) | Action::ReplyToAllWith(text) => {
            let all = matches!(action, Action::ReplyToAllWith(_));
            reply(action.keyword(), text, all, rule, msg, env, now, st);
        }
        Action::ReactWith(text) => match compose::react(text, msg, &env.scope, now, &env.host) {
            Some((submission, message)) => st.out.effects.push(Effect::Submit {
                action: action.keyword(),
                submission,
                message,
            }),
            None => st.out.notes.push(format!(
                "rule '{rule}': 'React with' names no recipient; skipped"
            )),
        },
        Action::Execute(spec) => {
            if server || env.allow_exec {
                st.out.effects.push(Effect::Execute(spec.clone()));
            } else {
                st.out.notes.push(format!(
                    "rule '{rule}': 'Execute' is not allowed for this account; skipped"
                ));
            }
        }
        Action::FingerNotify(addr) => {
            if server || env.allow_exec {
                st.out.effects.push(Effect::FingerNotify(addr.clone()));
            } else {
                st.out.notes.push(format!(
                    "rule '{rule}': 'FingerNotify' is not allowed for this account; skipped"
                ));
            }
        }
        Action::ExternalFilter => st.out.effects.push(Effect::ExternalFilter),
        Action::WriteToLog(text) => st.out.effects.push(Effect::Log(text.clone())),
        Action::RememberFromIn(list) => {
            if let Some(from) = msg.from_address() {
                if let Err(e) = env.data.add_to_string_list(list, from) {
                    st.out
                        .notes
                        .push(format!("rule '{rule}': cannot update list {list}: {e}"));
                }
            }
        }
    }
    false
}

/// `Reply with` / `Reply to All with`: never to automatic mail (RFC 3834 §2), and at most once
/// per address per [`super::REPLY_PERIOD`].
#[allow(clippy::too_many_arguments)]
fn reply(
    keyword: &'static str,
    text: &str,
    all: bool,
    rule: &str,
    msg: &MessageView<'_>,
    env: &Env<'_>,
    now: DateTime<FixedOffset>,
    st: &mut State,
) {
    if msg.automatic() {
        st.out.notes.push(format!(
            "rule '{rule}': no '{keyword}' to an automatic message (RFC 3834)"
        ));
        return;
    }
    let targets: Vec<String> = compose::reply_targets(msg, all, &env.scope)
        .into_iter()
        .filter(|a| {
            env.data
                .last_reply(a)
                .is_none_or(|t| now - t >= super::REPLY_PERIOD)
        })
        .collect();
    if targets.is_empty() {
        st.out.notes.push(format!(
            "rule '{rule}': '{keyword}': already replied within the period, or no address"
        ));
        return;
    }
    let Some((submission, message)) =
        compose::reply(text, msg, &targets, &env.scope, now, &env.host)
    else {
        return;
    };
    for t in &targets {
        if let Err(e) = env.data.record_reply(t, now, super::REPLY_PERIOD) {
            st.out
                .notes
                .push(format!("rule '{rule}': cannot record reply: {e}"));
        }
    }
    st.out.effects.push(Effect::Submit {
        action: keyword,
        submission,
        message,
    });
}

/// Applies `op` with `param` to one tested string.
fn test_text(op: Op, param: &str, text: &str, data: &dyn RulesData) -> bool {
    match op {
        Op::Is => pattern::matches(param, text),
        Op::IsNot => !pattern::matches(param, text),
        Op::In | Op::NotIn => {
            let hit = match param.strip_prefix('#') {
                Some(list) => pattern::matches_any(&data.string_list(list), text),
                None => pattern::matches_any(&pattern::picture_list(param), text),
            };
            hit == (op == Op::In)
        }
        Op::LessThan | Op::GreaterThan => false,
    }
}

fn condition_met(
    c: &Condition,
    msg: &MessageView<'_>,
    env: &Env<'_>,
    now: DateTime<FixedOffset>,
    added: &[(String, String)],
) -> bool {
    let (field, op, param) = match c {
        Condition::HumanGenerated => return msg.human_generated(),
        Condition::Size { op, bytes, .. } => return compare(*op, msg.size().cmp(bytes)),
        Condition::TimeOfDay { op, seconds, param } => {
            let mut secs = now.num_seconds_from_midnight();
            // `is 10:30` means that minute: compare at the precision written.
            if param.matches(':').count() < 2 {
                secs -= secs % 60;
            }
            return compare(*op, secs.cmp(seconds));
        }
        Condition::CurrentDate { op, date, .. } => return date_met(*op, date, now),
        Condition::Text { field, op, param } => (*field, *op, param.as_str()),
    };
    let t = |s: &str| test_text(op, param, s, env.data);
    let any_addr = |list: &[super::message::HeaderAddress]| {
        !list.is_empty() && list.iter().any(|a| t(&a.address))
    };
    match field {
        Field::From => any_addr(msg.from()),
        Field::Sender => any_addr(msg.sender()),
        Field::ReplyTo => any_addr(msg.reply_to()),
        Field::To => any_addr(msg.to()),
        Field::Cc => any_addr(msg.cc()),
        Field::AnyToOrCc => msg.to().iter().chain(msg.cc()).any(|a| t(&a.address)),
        Field::EachToOrCc => msg.to().iter().chain(msg.cc()).all(|a| t(&a.address)),
        Field::ReturnPath => t(&msg.return_path),
        Field::FromName => t(msg
            .from()
            .first()
            .and_then(|a| a.name.as_deref())
            .unwrap_or("")),
        Field::Subject => t(msg.subject().unwrap_or("")),
        Field::MessageId => t(msg.field("Message-ID").unwrap_or("")),
        Field::HeaderField => {
            // "contains (or does not contain)": the negative operations mean no field matches.
            let positive = match op {
                Op::IsNot => Op::Is,
                Op::NotIn => Op::In,
                o => o,
            };
            let found = msg
                .fields()
                .iter()
                .chain(added)
                .any(|(n, v)| test_text(positive, param, &format!("{n}: {v}"), env.data));
            found == (positive == op)
        }
        Field::AnyRecipient => msg.recipients.iter().any(|r| t(&r.tested())),
        Field::EachRecipient => msg.recipients.iter().all(|r| t(&r.tested())),
        Field::AnyRoute | Field::EachRoute => {
            if env.scope != Scope::Server {
                return false;
            }
            let mut parts = msg.recipients.iter().map(|r| {
                r.route_local_part().map(str::to_string).unwrap_or_else(|| {
                    r.address
                        .rsplit_once('@')
                        .map_or(r.address.clone(), |(l, _)| l.to_string())
                })
            });
            if field == Field::AnyRoute {
                parts.any(|p| t(&p))
            } else {
                parts.all(|p| t(&p))
            }
        }
        Field::CurrentDay => {
            let today = now.weekday().num_days_from_sunday();
            let day_is = |p: &str| parse_day(p) == Some(today);
            match op {
                Op::Is => day_is(param),
                Op::IsNot => !day_is(param),
                Op::In | Op::NotIn => {
                    let hit = match param.strip_prefix('#') {
                        Some(list) => env.data.string_list(list).iter().any(|p| day_is(p)),
                        None => param.split(',').any(day_is),
                    };
                    hit == (op == Op::In)
                }
                _ => false,
            }
        }
        Field::MessageSize | Field::HumanGenerated | Field::TimeOfDay | Field::CurrentDate => false,
    }
}

fn compare(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Is => ord == Equal,
        Op::IsNot => ord != Equal,
        Op::LessThan => ord == Less,
        Op::GreaterThan => ord == Greater,
        Op::In | Op::NotIn => false,
    }
}

fn date_met(op: Op, d: &DateSpec, now: DateTime<FixedOffset>) -> bool {
    let offset = d
        .offset
        .and_then(FixedOffset::east_opt)
        .unwrap_or(*now.offset());
    // The current time seen in the zone of the parameter, cut to the parameter's precision.
    let local: NaiveDateTime = now.with_timezone(&offset).naive_local();
    let cut = match d.precision {
        DatePrecision::Day => local.date().and_hms_opt(0, 0, 0),
        DatePrecision::Minute => local.date().and_hms_opt(local.hour(), local.minute(), 0),
        DatePrecision::Second => local.with_nanosecond(0),
    };
    let Some(cut) = cut else { return false };
    compare(op, cut.cmp(&d.local))
}
