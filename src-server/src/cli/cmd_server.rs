//! Server commands: module settings, protection lists, Router Table, Shutdown, WRITELOG
//! (guide.txt:7029-7240, 7356-7369; spec B §3.11-3.12, §3.15) and the extensions GetServerStatus,
//! ReadLog and Get/SetDialupSchedule (docs/cli.md).
//!
//! Storage: server settings files `Settings/<Name>.settings` — one per module (its name), and
//! `ClientIPs`, `BlacklistedIPs`, `WhiteHoleIPs`, `RouterTable` (strings), `Protection`, `Banned`
//! (dictionaries), `Schedule` (the TCP Activity Schedule array), `ServerRules` (the Server-Wide
//! Rules array, `kernel::rules`).
//!
//! IP lists are checked with `net::iplist` (guide.txt:4697-4712) and stored as written.
//!
//! The Router Table is checked with `kernel::router::table::validate` before it is stored; a bad
//! table keeps the old one and the error names the line.

use super::args::Args;
use super::{CliContext, CliError, CmdResult, LogQuery, LogRecord, Session};
use crate::dialup::schedule::{Schedule, SETTINGS as SCHEDULE};
use crate::format::{Dict, Value};
use crate::kernel::rules::{rules_to_value, validate_rules, SERVER_RULES};
use crate::net::IpList;

// ---------------------------------------------------------------- modules

fn module(ctx: &CliContext, a: &mut Args) -> Result<super::ModuleDecl, CliError> {
    let name = a.text("moduleName")?;
    ctx.modules
        .get(&name)
        .ok_or_else(|| CliError::new(format!("Unknown module: {name}")))
}

fn stored(ctx: &CliContext, m: &super::ModuleDecl) -> Result<Dict, CliError> {
    ctx.server_dict(&m.name)
}

/// The declared defaults with the stored settings over them.
pub fn effective(m: &super::ModuleDecl, explicit: &Dict) -> Dict {
    let mut out: Dict = m
        .settings
        .iter()
        .map(|s| (s.key.as_bytes().to_vec(), default_value(s.default)))
        .collect();
    for (k, v) in explicit {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// A declared default: data-format text, so a default may be a dictionary or an array.
fn default_value(text: &str) -> Value {
    crate::format::parse(text.as_bytes()).unwrap_or_else(|_| Value::str(text))
}

/// A module's effective settings: its declared defaults with the stored settings over them.
pub fn effective_module_settings(ctx: &CliContext, m: &super::ModuleDecl) -> Dict {
    effective(m, &stored(ctx, m).unwrap_or_default())
}

/// Checks and stores a module's new explicit settings (a failed check keeps the old ones).
fn store_module(ctx: &CliContext, m: &super::ModuleDecl, explicit: Dict) -> CmdResult {
    if let Some(k) = explicit
        .keys()
        .find(|k| !m.settings.iter().any(|s| s.key.as_bytes() == k.as_slice()))
    {
        return Err(CliError::new(format!(
            "Unknown setting for module {}: {}",
            m.name,
            String::from_utf8_lossy(k)
        )));
    }
    let eff = effective(m, &explicit);
    if let Some(validate) = &m.validate {
        validate(&eff).map_err(CliError::new)?;
    }
    ctx.store
        .set_server_settings(&m.name, &Value::Dict(explicit))?;
    if let Some(changed) = &m.changed {
        changed(&eff);
    }
    Ok(None)
}

/// `GetModule moduleName` — Settings.
pub(super) fn get_module(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let m = module(ctx, a)?;
    a.end()?;
    Ok(Some(Value::Dict(effective(&m, &stored(ctx, &m)?))))
}

/// `SetModule moduleName newSettings` — Settings.
pub(super) fn set_module(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let m = module(ctx, a)?;
    let new = a.dict("newSettings")?;
    a.end()?;
    let new = new.into_iter().filter(|(_, v)| !is_default(v)).collect();
    store_module(ctx, &m, new)
}

/// `UpdateModule moduleName newSettings` — Settings; `default` removes a key.
pub(super) fn update_module(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let m = module(ctx, a)?;
    let new = a.dict("newSettings")?;
    a.end()?;
    let mut cur = stored(ctx, &m)?;
    for (k, v) in new {
        if is_default(&v) {
            cur.shift_remove(&k);
        } else {
            cur.insert(k, v);
        }
    }
    store_module(ctx, &m, cur)
}

fn is_default(v: &Value) -> bool {
    v.as_bytes() == Some(b"default")
}

// ---------------------------------------------------------------- protection

fn get_text(ctx: &CliContext, name: &str, a: &mut Args) -> CmdResult {
    a.end()?;
    Ok(Some(match ctx.store.server_settings(name)? {
        v @ Value::Str(_) => v,
        _ => Value::str(""),
    }))
}

fn get_dict(ctx: &CliContext, name: &str, a: &mut Args) -> CmdResult {
    a.end()?;
    Ok(Some(Value::Dict(ctx.server_dict(name)?)))
}

fn set_dict(ctx: &CliContext, name: &str, a: &mut Args) -> CmdResult {
    let d = a.dict("newSettings")?;
    a.end()?;
    ctx.store.set_server_settings(name, &Value::Dict(d))?;
    Ok(None)
}

fn set_ip_list(ctx: &CliContext, name: &str, a: &mut Args) -> CmdResult {
    let text = a.text("newAddresses")?;
    a.end()?;
    IpList::parse(&text).map_err(CliError::new)?;
    ctx.store.set_server_settings(name, &Value::from(text))?;
    Ok(None)
}

/// `GetBlacklistedIPs` — Settings.
pub(super) fn get_blacklisted_ips(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    get_text(ctx, "BlacklistedIPs", a)
}
/// `GetClientIPs` — Settings.
pub(super) fn get_client_ips(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    get_text(ctx, "ClientIPs", a)
}
/// `GetWhiteHoleIPs` — Settings.
pub(super) fn get_white_hole_ips(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    get_text(ctx, "WhiteHoleIPs", a)
}
/// `SetBlacklistedIPs newAddresses` — Settings.
pub(super) fn set_blacklisted_ips(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    set_ip_list(ctx, "BlacklistedIPs", a)
}
/// `SetClientIPs newAddresses` — Settings.
pub(super) fn set_client_ips(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    set_ip_list(ctx, "ClientIPs", a)
}
/// `SetWhiteHoleIPs newAddresses` — Settings.
pub(super) fn set_white_hole_ips(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    set_ip_list(ctx, "WhiteHoleIPs", a)
}
/// `GetProtection` — Settings.
pub(super) fn get_protection(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    get_dict(ctx, "Protection", a)
}
/// `SetProtection newSettings` — Settings. The DNS options are checked before they are stored
/// (`modules::smtp::dns::Protection`).
pub(super) fn set_protection(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let d = a.dict("newSettings")?;
    a.end()?;
    crate::modules::smtp::dns::Protection::from_dict(&d).map_err(CliError::new)?;
    ctx.store
        .set_server_settings("Protection", &Value::Dict(d))?;
    Ok(None)
}
/// `GetBanned` — Settings.
pub(super) fn get_banned(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    get_dict(ctx, "Banned", a)
}
/// `SetBanned newSettings` — Settings.
pub(super) fn set_banned(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    set_dict(ctx, "Banned", a)
}
/// `GetRouterTable` — Settings. A table never set shows the default records the Router uses.
pub(super) fn get_router_table(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    Ok(Some(match ctx.store.server_settings("RouterTable")? {
        v @ Value::Str(_) => v,
        _ => Value::str(crate::kernel::router::table::DEFAULT_TABLE),
    }))
}
/// `SetRouterTable newTable` — Settings (lines separated with `\e`, guide.txt:7181).
pub(super) fn set_router_table(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let text = a.text("newTable")?;
    a.end()?;
    crate::kernel::router::table::validate(&text).map_err(CliError::new)?;
    ctx.store
        .set_server_settings("RouterTable", &Value::from(text))?;
    Ok(None)
}

/// `Route address` — Server Settings or Account Settings (guide.txt:7196-7219): the Router's
/// (module, host/queue, address) for `address`.
pub(super) fn route(ctx: &CliContext, session: &Session, a: &mut Args) -> CmdResult {
    if !session.server(super::rights::SETTINGS) && !session.all_domains() {
        return Err(super::rights::denied());
    }
    let address = a.text("address")?;
    a.end()?;
    let router = ctx
        .router
        .as_ref()
        .ok_or_else(|| CliError::new("The Router is not available"))?;
    let routed = router
        .route(&address)
        .map_err(|e| CliError::new(e.to_string()))?;
    Ok(Some(Value::Array(
        routed.cli_triple().into_iter().map(Value::from).collect(),
    )))
}

/// `GetServerRules` — Settings (guide.txt:7146-7149): the Server-Wide Rules array.
pub(super) fn get_server_rules(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    Ok(Some(match ctx.store.server_settings(SERVER_RULES)? {
        v @ Value::Array(_) => v,
        _ => Value::Array(Vec::new()),
    }))
}

/// `SetServerRules newRules` — Settings (guide.txt:7150-7157): checked with the rules parser
/// and stored in the canonical form.
pub(super) fn set_server_rules(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let rules = a.array("newRules")?;
    a.end()?;
    let rules = validate_rules(&Value::Array(rules), true).map_err(|e| CliError::new(e.0))?;
    ctx.store
        .set_server_settings(SERVER_RULES, &rules_to_value(&rules))?;
    Ok(None)
}

// ---------------------------------------------------------------- monitoring, misc

/// `Shutdown` — Monitor (guide.txt:7237-7240).
pub(super) fn shutdown(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    let f = ctx
        .shutdown
        .as_ref()
        .ok_or_else(|| CliError::new("Shutdown is not available here"))?;
    f();
    Ok(None)
}

fn log(ctx: &CliContext) -> Result<&dyn super::LogAccess, CliError> {
    ctx.log
        .as_deref()
        .ok_or_else(|| CliError::new("The System Log is not available"))
}

fn level(text: &str) -> Result<u8, CliError> {
    text.parse::<u8>()
        .ok()
        .filter(|l| *l <= 5)
        .ok_or_else(|| CliError::new("Log level must be a number from 0 to 5"))
}

/// `WRITELOG logLevel logRecord` — Monitor (guide.txt:7356-7369).
pub(super) fn write_log(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let lvl = level(&a.text("logLevel")?)?;
    let text = String::from_utf8_lossy(&a.bytes("logRecord")?).into_owned();
    a.end()?;
    log(ctx)?.write(lvl, &text);
    Ok(None)
}

/// Largest and default number of records `ReadLog` returns.
const READLOG_MAX: usize = 10_000;
const READLOG_DEFAULT: usize = 1_000;

/// `ReadLog [DAY d] [LEVEL n] [TAG p] [TEXT s] [AFTER id] [LIMIT n]` — Monitor (extension).
pub(super) fn read_log(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let mut q = LogQuery::default();
    while a.remaining() > 0 {
        let kw = a.text("keyword")?.to_ascii_uppercase();
        let v = a.text(&kw)?;
        let dup = || CliError::new(format!("{kw} is given twice"));
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| CliError::new(format!("{kw} must be a number")))
        };
        match kw.as_str() {
            "DAY" => {
                chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                    .map_err(|_| CliError::new("DAY must be yyyy-mm-dd"))?;
                q.day.replace(v).map_or(Ok(()), |_| Err(dup()))?;
            }
            "FROM" | "TO" => {
                time_of_day(&v)
                    .ok_or_else(|| CliError::new(format!("{kw} must be HH:MM or HH:MM:SS")))?;
                let slot = if kw == "FROM" { &mut q.from } else { &mut q.to };
                slot.replace(v).map_or(Ok(()), |_| Err(dup()))?;
            }
            "LEVEL" => q.level.replace(level(&v)?).map_or(Ok(()), |_| Err(dup()))?,
            "TAG" => q.tag.replace(v).map_or(Ok(()), |_| Err(dup()))?,
            "TEXT" => q.text.replace(v).map_or(Ok(()), |_| Err(dup()))?,
            "AFTER" => q.after.replace(v).map_or(Ok(()), |_| Err(dup()))?,
            "LIMIT" | "LAST" => {
                let n = usize::try_from(num(&v)?).unwrap_or(usize::MAX);
                q.last |= kw == "LAST";
                q.limit.replace(n.min(READLOG_MAX)).map_or(Ok(()), |_| {
                    Err(CliError::new("LIMIT and LAST are given together or twice"))
                })?
            }
            _ => return Err(CliError::new(format!("Unknown ReadLog keyword: {kw}"))),
        }
    }
    q.limit.get_or_insert(READLOG_DEFAULT);
    let records = log(ctx)?.read(&q).map_err(CliError::new)?;
    Ok(Some(Value::Array(records.iter().map(record).collect())))
}

/// A ReadLog `FROM`/`TO` time of day.
pub fn time_of_day(v: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(v, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(v, "%H:%M"))
        .ok()
}

fn record(r: &LogRecord) -> Value {
    crate::format::dict([
        ("Id", Value::from(r.id.clone())),
        ("Time", Value::str(&r.time)),
        ("Level", Value::from(r.level.to_string())),
        ("Tag", Value::str(&r.tag)),
        ("Text", Value::str(&r.text)),
    ])
}

/// `GetServerStatus` — Monitor (extension).
pub(super) fn get_server_status(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    let f = ctx
        .status
        .as_ref()
        .ok_or_else(|| CliError::new("Server status is not available"))?;
    Ok(Some(Value::Dict(f())))
}

// ---------------------------------------------------------------- dial-up schedule

/// `Days` values (guide.txt:5253-5306: "Day(s) of Week").
/// `GetDialupSchedule` — Settings (extension).
pub(super) fn get_dialup_schedule(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    Ok(Some(match ctx.store.server_settings(SCHEDULE)? {
        v @ Value::Array(_) => v,
        _ => Value::Array(Vec::new()),
    }))
}

/// `SetDialupSchedule newSchedule` — Settings (extension): checked element by element and stored
/// in the canonical form (`dialup::schedule`).
pub(super) fn set_dialup_schedule(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let items = a.array("newSchedule")?;
    a.end()?;
    let schedule = Schedule::from_value(&Value::Array(items)).map_err(CliError::new)?;
    ctx.store
        .set_server_settings(SCHEDULE, &schedule.to_value())?;
    Ok(None)
}
