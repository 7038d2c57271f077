//! Reading and writing the stored rule set (grammar in the parent module's header).

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::{
    Action, Condition, DatePrecision, DateSpec, ExecSpec, Field, MarkOp, Op, Rule, MAX_ELEMENTS,
    MAX_PARAMETER, MAX_RULES,
};
use crate::format::Value;

/// Why a rule set was refused: which rule, which element, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

fn err<T>(rule: &str, msg: impl std::fmt::Display) -> Result<T, RuleError> {
    Err(RuleError(format!("Rule '{rule}': {msg}")))
}

/// Reads a stored rule set (an array of rules). An empty dictionary (the store's "absent") is
/// an empty set.
pub fn parse_rules(v: &Value) -> Result<Vec<Rule>, RuleError> {
    let items = match v {
        Value::Array(a) => a.as_slice(),
        Value::Dict(d) if d.is_empty() => &[],
        _ => return Err(RuleError("Rules must be an array".into())),
    };
    if items.len() > MAX_RULES {
        return Err(RuleError(format!("Too many rules (at most {MAX_RULES})")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(i, r))
        .collect()
}

/// Reads a rule set for Server-Wide (`server`) or Account Rules and refuses, in account rules,
/// the elements the guide reserves for Server-Wide Rules (`Any Route`, `Each Route`,
/// `ExternalFilter`, `Execute [FILE]`/`[RCPT]`; guide.txt:10735, 10979-10980, 11000, 11055-11057).
pub fn validate_rules(v: &Value, server: bool) -> Result<Vec<Rule>, RuleError> {
    let rules = parse_rules(v)?;
    if !server {
        for r in &rules {
            for c in &r.conditions {
                if let Condition::Text { field, .. } = c {
                    if field.server_only() {
                        return err(
                            &r.name,
                            format!("'{}' is for Server-Wide Rules only", field.keyword()),
                        );
                    }
                }
            }
            if let Some(a) = r.actions.iter().find(|a| a.server_only()) {
                return err(
                    &r.name,
                    format!(
                        "'{}' (as written) is for Server-Wide Rules only",
                        a.keyword()
                    ),
                );
            }
        }
    }
    Ok(rules)
}

/// Writes a rule set in the stored form.
pub fn rules_to_value(rules: &[Rule]) -> Value {
    Value::Array(rules.iter().map(rule_to_value).collect())
}

fn text(v: &Value) -> Option<String> {
    v.as_bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn parse_rule(index: usize, v: &Value) -> Result<Rule, RuleError> {
    let label = format!("#{}", index + 1);
    let Some(parts) = v.as_array() else {
        return err(
            &label,
            "a rule must be (priority, name, conditions, actions)",
        );
    };
    if parts.len() != 4 {
        return err(
            &label,
            "a rule must be (priority, name, conditions, actions)",
        );
    }
    let name = text(&parts[1]).unwrap_or_default();
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return err(&label, "the rule name must be 1-256 printable characters");
    }
    let priority = match text(&parts[0]).as_deref().map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("disabled") => 0,
        Some(p) if p.len() == 1 && p.as_bytes()[0].is_ascii_digit() => p.as_bytes()[0] - b'0',
        _ => return err(&name, "priority must be 0 (disabled) to 9"),
    };
    let (Some(conds), Some(acts)) = (parts[2].as_array(), parts[3].as_array()) else {
        return err(&name, "conditions and actions must be arrays");
    };
    if conds.len() > MAX_ELEMENTS || acts.len() > MAX_ELEMENTS {
        return err(
            &name,
            format!("at most {MAX_ELEMENTS} conditions and actions"),
        );
    }
    let conditions = conds
        .iter()
        .enumerate()
        .map(|(i, c)| {
            parse_condition(c).or_else(|e| err(&name, format!("condition {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let actions = acts
        .iter()
        .enumerate()
        .map(|(i, a)| parse_action(a).or_else(|e| err(&name, format!("action {}: {e}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    // guide.txt:10786-10814: a terminal action "should be the last one in a Rule".
    if let Some(pos) = actions.iter().position(Action::is_terminal) {
        if pos + 1 != actions.len() {
            return err(
                &name,
                format!("'{}' must be the last action", actions[pos].keyword()),
            );
        }
    }
    Ok(Rule {
        priority,
        name,
        conditions,
        actions,
    })
}

/// The element's strings: keyword first. Each is bounded.
fn strings(v: &Value) -> Result<Vec<String>, String> {
    let Some(items) = v.as_array() else {
        return Err("must be an array (keyword, ...)".into());
    };
    if items.is_empty() || items.len() > 3 {
        return Err("must be an array of 1 to 3 strings".into());
    }
    items
        .iter()
        .map(|i| match i.as_bytes() {
            Some(b) if b.len() <= MAX_PARAMETER => Ok(String::from_utf8_lossy(b).into_owned()),
            Some(_) => Err(format!("parameter longer than {MAX_PARAMETER} bytes")),
            None => Err("elements must be strings".into()),
        })
        .collect()
}

fn field(keyword: &str) -> Option<Field> {
    Field::ALL
        .into_iter()
        .find(|f| f.keyword().eq_ignore_ascii_case(keyword.trim()))
}

fn op(s: &str) -> Option<Op> {
    [
        Op::Is,
        Op::IsNot,
        Op::In,
        Op::NotIn,
        Op::LessThan,
        Op::GreaterThan,
    ]
    .into_iter()
    .find(|o| o.keyword().eq_ignore_ascii_case(s.trim()))
}

fn parse_condition(v: &Value) -> Result<Condition, String> {
    let s = strings(v)?;
    let f = field(&s[0]).ok_or_else(|| format!("unknown condition '{}'", s[0]))?;
    if f == Field::HumanGenerated {
        return match s.get(1).map(|o| o.trim()) {
            None | Some("---") | Some("") if s.len() <= 2 => Ok(Condition::HumanGenerated),
            _ => Err("'Human Generated' takes no operation".into()),
        };
    }
    if s.len() != 3 {
        return Err(format!(
            "'{}' needs an operation and a parameter",
            f.keyword()
        ));
    }
    let o = op(&s[1]).ok_or_else(|| format!("unknown operation '{}'", s[1]))?;
    let param = s[2].clone();
    let ordered = matches!(
        f,
        Field::MessageSize | Field::TimeOfDay | Field::CurrentDate
    );
    let allowed = if ordered {
        matches!(o, Op::Is | Op::IsNot | Op::LessThan | Op::GreaterThan)
    } else {
        matches!(o, Op::Is | Op::IsNot | Op::In | Op::NotIn)
    };
    if !allowed {
        return Err(format!(
            "'{}' cannot be used with '{}'",
            o.keyword(),
            f.keyword()
        ));
    }
    Ok(match f {
        Field::MessageSize => Condition::Size {
            op: o,
            bytes: parse_size(&param).ok_or_else(|| format!("bad size '{param}'"))?,
            param,
        },
        Field::TimeOfDay => Condition::TimeOfDay {
            op: o,
            seconds: parse_time(&param)
                .ok_or_else(|| format!("bad time '{param}' (hh:mm[:ss] [am|pm])"))?,
            param,
        },
        Field::CurrentDate => Condition::CurrentDate {
            op: o,
            date: parse_date(&param)
                .ok_or_else(|| format!("bad date '{param}' (DD Mon YYYY [hh:mm[:ss] [+ZZZZ]])"))?,
            param,
        },
        Field::CurrentDay => {
            let pictures: Vec<&str> = if matches!(o, Op::In | Op::NotIn) && !param.starts_with('#')
            {
                param.split(',').collect()
            } else {
                vec![param.as_str()]
            };
            if !param.starts_with('#') || !matches!(o, Op::In | Op::NotIn) {
                for p in pictures {
                    if !p.contains('*') && parse_day(p).is_none() {
                        return Err(format!("bad day '{p}' (0-6 or Sun..Sat)"));
                    }
                }
            }
            Condition::Text {
                field: f,
                op: o,
                param,
            }
        }
        _ => Condition::Text {
            field: f,
            op: o,
            param,
        },
    })
}

/// A byte count, optionally with a `K` or `M` suffix (as the guide's size settings).
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// `hh:mm[:ss]` with an optional `am`/`pm` suffix → seconds since midnight.
pub(super) fn parse_time(s: &str) -> Option<u32> {
    let lower = s.trim().to_ascii_lowercase();
    let (clock, half) = if let Some(c) = lower.strip_suffix("am") {
        (c.trim(), Some(false))
    } else if let Some(c) = lower.strip_suffix("pm") {
        (c.trim(), Some(true))
    } else {
        (lower.as_str(), None)
    };
    let parts: Vec<&str> = clock.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let num = |p: &str| -> Option<u32> {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let mut h = num(parts[0])?;
    let m = num(parts[1])?;
    let sec = match parts.get(2) {
        Some(p) => num(p)?,
        None => 0,
    };
    if m > 59 || sec > 59 {
        return None;
    }
    match half {
        Some(pm) => {
            if !(1..=12).contains(&h) {
                return None;
            }
            h = (h % 12) + if pm { 12 } else { 0 };
        }
        None if h > 23 => return None,
        None => {}
    }
    Some(h * 3600 + m * 60 + sec)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `DD Mon YYYY [hh:mm[:ss] [+ZZZZ|-ZZZZ]]` (guide.txt:10707-10730).
pub(super) fn parse_date(s: &str) -> Option<DateSpec> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if !(3..=5).contains(&words.len()) {
        return None;
    }
    let day: u32 = words[0].parse().ok()?;
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(words[1]))? as u32
        + 1;
    let year: i32 = words[2]
        .parse()
        .ok()
        .filter(|y| (1000..=9999).contains(y))?;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let (time, precision) = match words.get(3) {
        None => (NaiveTime::MIN, DatePrecision::Day),
        Some(t) => {
            let secs = parse_time(t)?;
            let precision = if t.matches(':').count() == 2 {
                DatePrecision::Second
            } else {
                DatePrecision::Minute
            };
            (
                NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)?,
                precision,
            )
        }
    };
    let offset = match words.get(4) {
        None => None,
        Some(z) => {
            if words.len() == 5 && precision != DatePrecision::Second {
                return None;
            }
            let b = z.as_bytes();
            if b.len() != 5 || !b[1..].iter().all(u8::is_ascii_digit) {
                return None;
            }
            let sign = match b[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hh: i32 = z[1..3].parse().ok()?;
            let mm: i32 = z[3..5].parse().ok()?;
            if hh > 23 || mm > 59 {
                return None;
            }
            Some(sign * (hh * 3600 + mm * 60))
        }
    };
    Some(DateSpec {
        local: NaiveDateTime::new(date, time),
        offset,
        precision,
    })
}

/// `0`-`6` (Sunday = 0) or `Sun`..`Sat` → day number.
pub(super) fn parse_day(s: &str) -> Option<u32> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return (n < 7).then_some(n);
    }
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(s))
        .map(|p| p as u32)
}

/// Comma-separated addresses; empty items dropped, each trimmed (an address has no spaces).
fn addresses(s: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = s
        .split(',')
        .map(|a| {
            a.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|a| !a.is_empty())
        .collect();
    if list.is_empty() {
        return Err("needs at least one address".into());
    }
    if let Some(bad) = list
        .iter()
        .find(|a| a.len() > 512 || a.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(format!("bad address '{bad}'"));
    }
    Ok(list)
}

fn mark_op(s: &str) -> Option<MarkOp> {
    [
        MarkOp::Read,
        MarkOp::Unread,
        MarkOp::Flagged,
        MarkOp::Unflagged,
        MarkOp::Answered,
        MarkOp::Unanswered,
    ]
    .into_iter()
    .find(|m| m.keyword().eq_ignore_ascii_case(s.trim()))
}

/// `[FILE]`, `[RETPATH]`, `[RCPT]`, `[STDERR]` in any order, then the command line.
fn exec_spec(s: &str) -> Result<ExecSpec, String> {
    let mut e = ExecSpec::default();
    let mut rest = s.trim_start();
    while let Some(after) = rest.strip_prefix('[') {
        let Some(end) = after.find(']') else { break };
        match after[..end].to_ascii_uppercase().as_str() {
            "FILE" => e.file = true,
            "RETPATH" => e.retpath = true,
            "RCPT" => e.rcpt = true,
            "STDERR" => e.stderr = true,
            other => return Err(format!("unknown Execute prefix [{other}]")),
        }
        rest = after[end + 1..].trim_start();
    }
    if rest.trim().is_empty() {
        return Err("'Execute' needs a command line".into());
    }
    e.command = rest.trim_end().to_string();
    Ok(e)
}

const ACTION_KEYWORDS: [&str; 19] = [
    "Stop Processing",
    "Discard",
    "Reject",
    "Reject with",
    "Mark",
    "Add Headers",
    "Add Header",
    "Store in",
    "Redirect to",
    "Forward to",
    "Mirror to",
    "Reply with",
    "Reply to All with",
    "React with",
    "Execute",
    "FingerNotify",
    "ExternalFilter",
    "Write To Log",
    "Remember 'From' in",
];

fn parse_action(v: &Value) -> Result<Action, String> {
    let s = strings(v)?;
    if s.len() > 2 {
        return Err("an action is (keyword [, parameter])".into());
    }
    let key = ACTION_KEYWORDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s[0].trim()))
        .ok_or_else(|| format!("unknown action '{}'", s[0]))?;
    let param = s.get(1).cloned().unwrap_or_default();
    let needs = |what: &str| -> Result<String, String> {
        if param.trim().is_empty() {
            Err(format!("'{key}' needs {what}"))
        } else {
            Ok(param.clone())
        }
    };
    let no_param = |a: Action| -> Result<Action, String> {
        if param.trim().is_empty() {
            Ok(a)
        } else {
            Err(format!("'{key}' takes no parameter"))
        }
    };
    Ok(match key.to_ascii_lowercase().as_str() {
        "stop processing" => no_param(Action::StopProcessing)?,
        "discard" => no_param(Action::Discard)?,
        "externalfilter" => no_param(Action::ExternalFilter)?,
        "reject" | "reject with" => Action::Reject(param.trim().to_string()),
        "mark" => Action::Mark(
            needs("flags")?
                .split(',')
                .map(|m| mark_op(m).ok_or_else(|| format!("unknown Mark operation '{}'", m.trim())))
                .collect::<Result<_, _>>()?,
        ),
        "add headers" | "add header" => {
            let h = needs("header fields")?;
            for line in h.lines().filter(|l| !l.trim().is_empty()) {
                let folded = line.starts_with([' ', '\t']);
                let named = line
                    .split_once(':')
                    .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()));
                if line.chars().any(|c| c.is_control() && c != '\t') {
                    return Err("header fields cannot hold control characters".into());
                }
                if !folded && !named {
                    return Err(format!("bad header field '{line}'"));
                }
            }
            Action::AddHeaders(h)
        }
        "store in" => {
            let m = needs("a mailbox name")?.trim().to_string();
            if m.contains("..") || m.chars().any(char::is_control) {
                return Err(format!("bad mailbox name '{m}'"));
            }
            Action::StoreIn(m)
        }
        "redirect to" => Action::RedirectTo(addresses(&param)?),
        "forward to" => Action::ForwardTo(addresses(&param)?),
        "mirror to" => Action::MirrorTo(addresses(&param)?),
        "reply with" => Action::ReplyWith(needs("a message text")?),
        "reply to all with" => Action::ReplyToAllWith(needs("a message text")?),
        "react with" => Action::ReactWith(needs("a message text")?),
        "execute" => Action::Execute(exec_spec(&param)?),
        "fingernotify" => {
            let a = param.trim();
            Action::FingerNotify((!a.is_empty()).then(|| a.to_string()))
        }
        "write to log" => Action::WriteToLog(needs("a text")?),
        _ => {
            let list = needs("a string list name")?
                .trim()
                .trim_start_matches('#')
                .to_string();
            if list.is_empty() || list.chars().any(|c| c.is_control() || c == ',') {
                return Err(format!("bad string list name '{list}'"));
            }
            Action::RememberFromIn(list)
        }
    })
}

fn rule_to_value(r: &Rule) -> Value {
    Value::Array(vec![
        Value::str(r.priority.to_string()),
        Value::str(&r.name),
        Value::Array(r.conditions.iter().map(condition_to_value).collect()),
        Value::Array(r.actions.iter().map(action_to_value).collect()),
    ])
}

fn condition_to_value(c: &Condition) -> Value {
    let (f, o, p) = match c {
        Condition::HumanGenerated => {
            return Value::Array(vec![Value::str(Field::HumanGenerated.keyword())])
        }
        Condition::Text { field, op, param } => (*field, *op, param),
        Condition::Size { op, param, .. } => (Field::MessageSize, *op, param),
        Condition::TimeOfDay { op, param, .. } => (Field::TimeOfDay, *op, param),
        Condition::CurrentDate { op, param, .. } => (Field::CurrentDate, *op, param),
    };
    Value::Array(vec![
        Value::str(f.keyword()),
        Value::str(o.keyword()),
        Value::str(p),
    ])
}

fn action_to_value(a: &Action) -> Value {
    let param = match a {
        Action::StopProcessing | Action::Discard | Action::ExternalFilter => None,
        Action::FingerNotify(addr) => addr.clone(),
        Action::Reject(t) => (!t.is_empty()).then(|| t.clone()),
        Action::Mark(ops) => Some(
            ops.iter()
                .map(|m| m.keyword())
                .collect::<Vec<_>>()
                .join(","),
        ),
        Action::AddHeaders(t)
        | Action::StoreIn(t)
        | Action::ReplyWith(t)
        | Action::ReplyToAllWith(t)
        | Action::ReactWith(t)
        | Action::WriteToLog(t)
        | Action::RememberFromIn(t) => Some(t.clone()),
        Action::RedirectTo(l) | Action::ForwardTo(l) | Action::MirrorTo(l) => Some(l.join(",")),
        Action::Execute(e) => {
            let mut s = String::new();
            for (on, tag) in [
                (e.file, "[FILE] "),
                (e.retpath, "[RETPATH] "),
                (e.rcpt, "[RCPT] "),
                (e.stderr, "[STDERR] "),
            ] {
                if on {
                    s.push_str(tag);
                }
            }
            s.push_str(&e.command);
            Some(s)
        }
    };
    let mut v = vec![Value::str(a.keyword())];
    v.extend(param.map(Value::str));
    Value::Array(v)
}
