//! The `Queue` module settings: the guide's Queue page (Enqueuer and Dequeuer, guide.txt:9896-10008)
//! plus the retry schedule and warnings the guide puts on each delivery module's page
//! (SMTP "Retry Every / Keep Trying for / then Every ... After / Send Warnings After",
//! guide.txt:11335-11370), kept here once for every channel.

use std::sync::Arc;

use crate::cli::ModuleDecl;
use crate::format::{Dict, Value};
use crate::kernel::log::Level;
use crate::store::settings::SettingDecl;

/// What a failure report carries of the message (guide.txt:9982-9998, "On Failure, Return").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailureReturn {
    /// Headers unless the sender asked for RET=FULL.
    HeadersByDefault,
    /// The whole message unless the sender asked for RET=HDRS.
    BodyByDefault,
    /// Headers whatever the sender asked.
    AlwaysHeaders,
    /// The whole message whatever the sender asked.
    AlwaysBody,
}

/// The queue's effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Dequeuer `Log` level (tag DEQUEUER; ENQUEUER records use it too).
    pub log_level: Level,
    /// Dequeuer `Processors`: delivery worker threads.
    pub processors: usize,
    /// `Retry Every`: seconds between attempts while the message is young.
    pub retry_every: i64,
    /// `then Every`: seconds between attempts once it is older than `after`.
    pub then_every: i64,
    /// `After`: queue age (seconds) at which the retry interval changes.
    pub after: i64,
    /// `Keep Trying for`: queue age (seconds) after which a deferred recipient fails.
    pub keep_trying_for: i64,
    /// `Send Warnings After`: queue age (seconds) for a delay notice; `None` = never.
    pub send_warnings_after: Option<i64>,
    /// `Reporting Delay`: the most seconds a report waits to cover more recipients.
    pub reporting_delay: i64,
    /// `On Failure, Return`.
    pub on_failure_return: OnFailureReturn,
    /// `Copy Failure Reports to`: also send every failure report here.
    pub copy_failure_reports_to: Option<String>,
    /// Most `Received:` headers a message may carry (loop detection; our name `MaxHops`).
    pub max_hops: usize,
}

impl Default for QueueSettings {
    fn default() -> QueueSettings {
        let decl = module_decl();
        let eff: Dict = decl
            .settings
            .iter()
            .map(|s| (s.key.as_bytes().to_vec(), Value::str(s.default)))
            .collect();
        // The declared defaults always parse (tested); fall back to fixed values regardless.
        QueueSettings::from_dict(&eff).unwrap_or(QueueSettings {
            log_level: Level::Major,
            processors: 1,
            retry_every: 600,
            then_every: 3600,
            after: 7200,
            keep_trying_for: 5 * 86400,
            send_warnings_after: Some(4 * 3600),
            reporting_delay: 60,
            on_failure_return: OnFailureReturn::HeadersByDefault,
            copy_failure_reports_to: None,
            max_hops: 30,
        })
    }
}

/// A duration in the guide's notation: `30` (seconds), `30s`, `10m`, `2h`, `5d`.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86400),
        _ => (s, 1),
    };
    digits.trim().parse::<i64>().ok()?.checked_mul(mult)
}

impl QueueSettings {
    /// Reads the effective settings; `Err` says which one is wrong.
    pub fn from_dict(eff: &Dict) -> Result<QueueSettings, String> {
        let text = |k: &str| crate::store::settings::text(eff, k);
        let dur = |k: &str| {
            let t = text(k);
            parse_duration(&t)
                .filter(|d| *d >= 0)
                .ok_or_else(|| format!("{k}: {t:?} is not a time (30s, 10m, 2h, 5d)"))
        };
        let num = |k: &str| {
            let t = text(k);
            t.parse::<usize>()
                .map_err(|_| format!("{k}: {t:?} is not a number"))
        };
        let level = text("LogLevel");
        let log_level = level
            .parse::<Level>()
            .map_err(|_| format!("LogLevel: {level:?} is not a log level"))?;
        let processors = num("Processors")?;
        if !(1..=64).contains(&processors) {
            return Err("Processors: from 1 to 64".into());
        }
        let warn = text("SendWarningsAfter");
        let send_warnings_after = if warn.eq_ignore_ascii_case("never") {
            None
        } else {
            Some(dur("SendWarningsAfter")?)
        };
        let ret = text("OnFailureReturn");
        let on_failure_return = match ret.to_ascii_lowercase().as_str() {
            "headers by default" => OnFailureReturn::HeadersByDefault,
            "body by default" => OnFailureReturn::BodyByDefault,
            "always headers" => OnFailureReturn::AlwaysHeaders,
            "always body" => OnFailureReturn::AlwaysBody,
            _ => {
                return Err(format!(
                    "OnFailureReturn: {ret:?} is not one of: headers by default, body by default, always headers, always body"
                ))
            }
        };
        let copy = text("CopyFailureReportsTo");
        if !copy.is_empty() && !copy.contains('@') {
            return Err(format!("CopyFailureReportsTo: {copy:?} is not an address"));
        }
        let retry_every = dur("RetryEvery")?.max(1);
        let then_every = dur("ThenRetryEvery")?.max(1);
        Ok(QueueSettings {
            log_level,
            processors,
            retry_every,
            then_every,
            after: dur("RetryAfter")?,
            keep_trying_for: dur("KeepTryingFor")?,
            send_warnings_after,
            reporting_delay: dur("ReportingDelay")?,
            on_failure_return,
            copy_failure_reports_to: (!copy.is_empty()).then_some(copy),
            max_hops: num("MaxHops")?,
        })
    }

    /// When to try a recipient again after a failed attempt at `now`, or `None` when it has been
    /// queued longer than `Keep Trying for` and fails for good.
    pub fn next_try(&self, arrived: i64, now: i64) -> Option<i64> {
        let age = now - arrived;
        if age >= self.keep_trying_for {
            return None;
        }
        let every = if age >= self.after {
            self.then_every
        } else {
            self.retry_every
        };
        Some(now + every)
    }
}

const fn decl(key: &'static str, default: &'static str, doc: &'static str) -> SettingDecl {
    SettingDecl { key, default, doc }
}

/// The `Queue` module declaration (GetModule Queue / UpdateModule Queue {...}).
pub fn module_decl() -> ModuleDecl {
    ModuleDecl {
        name: "Queue".into(),
        settings: vec![
            decl("LogLevel", "2", "Dequeuer Log: what the Enqueuer and Dequeuer record (tags ENQUEUER, DEQUEUER), 0-5"),
            decl("Processors", "1", "Dequeuer Processors: delivery threads (guide.txt:9973-9977)"),
            decl("RetryEvery", "10m", "Retry Every: wait between attempts for a deferred recipient (guide.txt:11346)"),
            decl("ThenRetryEvery", "1h", "then Every: wait between attempts once the message is older than RetryAfter"),
            decl("RetryAfter", "2h", "After: queue age at which ThenRetryEvery applies (guide.txt:11359-11362)"),
            decl("KeepTryingFor", "5d", "Keep Trying for: a recipient still deferred this long after arrival fails (guide.txt:11353-11357)"),
            decl("SendWarningsAfter", "4h", "Send Warnings After: a delay notice (DSN) once a recipient is deferred this long; never = none"),
            decl("ReportingDelay", "1m", "Reporting Delay: the most a report waits to cover more recipients (guide.txt:9979-9983)"),
            decl("OnFailureReturn", "headers by default", "On Failure, Return: headers by default, body by default, always headers, always body"),
            decl("CopyFailureReportsTo", "", "Copy Failure Reports to: an address that gets a copy of every failure report"),
            decl("MaxHops", "30", "most Received: headers a message may carry before it is refused as a loop (our name)"),
        ],
        validate: Some(Arc::new(|eff: &Dict| QueueSettings::from_dict(eff).map(|_| ()))),
        changed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let s = QueueSettings::default();
        assert_eq!(s.processors, 1);
        assert_eq!(s.retry_every, 600);
        assert_eq!(s.keep_trying_for, 5 * 86400);
        assert_eq!(s.max_hops, 30);
        assert_eq!(s.on_failure_return, OnFailureReturn::HeadersByDefault);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Some(30));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("5d"), Some(432_000));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn retry_schedule() {
        let s = QueueSettings::default();
        assert_eq!(s.next_try(0, 60), Some(660));
        assert_eq!(s.next_try(0, 7200), Some(10800));
        assert_eq!(s.next_try(0, 5 * 86400), None);
    }
}
