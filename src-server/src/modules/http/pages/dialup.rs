//! WebAdmin's dial-up forms: the SMTP module's wake-up and hold settings with Wake Up Now
//! (guide.txt:11611-11679, 11777-11786; `modules::smtp::etrn`, `modules::smtp::wakeup`), and
//! the RPOP records, both the module's Unified Domain-Wide Accounts (guide.txt:12436-12497) and
//! an account's own (`GetAccountRPOP`/`SetAccountRPOP`, guide.txt:12584-12621), edited as rows.
//!
//! Every save is one CLI command (`UpdateModule`, `SetAccountRPOP`, `WakeUpNow`).
//!
//! Security: passwords are write-only here. `ATRNPassword` and the RPOP passwords are never put
//! into a page; an empty password field keeps the stored one (an RPOP row finds its stored
//! password by the row's original account and host, carried in a hidden field), and only a
//! checkbox or a typed password changes it.

use maud::{html, Markup};

use super::{all_fields, field, kw, run, s, Notice, Web};
use crate::format::{Dict, Value};
use crate::modules::http::auth::Admin;
use crate::modules::http::html::{csrf_field, settings_changes, value_text};

/// The SMTP module's dial-up settings, in the guide's order: (key, the guide's label, choices
/// for a list box; empty for a text field).
const DIALUP: [(&str, &str, &[&str]); 8] = [
    ("SendWakeupsTo", "Send Wakeups To (host or host:port)", &[]),
    (
        "SendWakeupsEvery",
        "Send Wakeups Every (seconds or never)",
        &[],
    ),
    ("UseATRN", "Use ATRN", &["No", "Yes"]),
    ("ATRNLoginName", "ATRN Login Name", &[]),
    ("ATRNPassword", "ATRN Password", &[]),
    ("WakeupDomains", "Wakeup Domains (comma-separated)", &[]),
    (
        "AcceptWakeupsFrom",
        "Accept Wakeups from",
        &["Anybody", "Clients"],
    ),
    (
        "HoldMailForDomains",
        "Hold Mail for Domains (comma-separated, * wildcards)",
        &[],
    ),
];

/// The setting the Unified Domain-Wide Accounts are kept in.
const UNIFIED: &str = "UnifiedAccounts";

/// The settings of module `m` that its own sections edit, left out of the generic table.
pub(super) fn own_keys(m: &str) -> Vec<&'static str> {
    if m.eq_ignore_ascii_case("SMTP") {
        DIALUP.iter().map(|(k, _, _)| *k).collect()
    } else if m.eq_ignore_ascii_case("RPOP") {
        vec![UNIFIED]
    } else {
        Vec::new()
    }
}

/// Runs a post of one of module `m`'s own forms (by its `action`); `None` for the generic table.
pub(super) async fn module_post(
    web: &Web,
    a: &Admin,
    m: &str,
    form: &[(String, String)],
) -> Option<Notice> {
    let smtp = m.eq_ignore_ascii_case("SMTP");
    let rpop = m.eq_ignore_ascii_case("RPOP");
    let notice = match field(form, "action") {
        "wakeup" if smtp => match run(web, a, "WakeUpNow", vec![]).await {
            Ok(reply) => {
                let actions: Vec<String> = match &reply {
                    Some(Value::Array(items)) => items.iter().map(value_text).collect(),
                    _ => Vec::new(),
                };
                Notice {
                    ok: Some(if actions.is_empty() {
                        "Wake Up Now: the link session had nothing to do.".to_string()
                    } else {
                        format!("Wake Up Now: {}", actions.join("; "))
                    }),
                    ..Notice::none()
                }
            }
            Err(e) => Notice::error(format!("Wake Up Now: {}", e.0)),
        },
        "dialup" if smtp => match settings_changes(form) {
            Ok(mut c) => {
                if field(form, "forget") == "Yes" {
                    c.insert(b"ATRNPassword".to_vec(), kw("default"));
                }
                Notice::from(
                    &run(web, a, "UpdateModule", vec![s(m), Value::Dict(c)]).await,
                    "Dial-up settings updated.",
                )
            }
            Err(e) => Notice::error(e),
        },
        "unified" if rpop => {
            let current = match run(web, a, "GetModule", vec![s(m)]).await {
                Ok(Some(Value::Dict(d))) => d,
                Ok(_) => Dict::new(),
                Err(e) => return Some(Notice::error(e.0).at("unified")),
            };
            let stored = records_of(current.get(UNIFIED.as_bytes()));
            let records = posted_records(form, &stored, true);
            let mut change = Dict::new();
            change.insert(UNIFIED.as_bytes().to_vec(), Value::Array(records));
            Notice::from(
                &run(web, a, "UpdateModule", vec![s(m), Value::Dict(change)]).await,
                "Unified Domain-Wide Accounts saved.",
            )
        }
        _ => return None,
    };
    Some(notice.at(field(form, "action")))
}

/// The sections of module `m` beyond the generic table, from its effective settings `eff`.
/// `kept` is a refused form of these sections, shown again as typed (passwords excepted).
pub(super) fn module_sections(
    a: &Admin,
    m: &str,
    url: &str,
    eff: &Dict,
    notice: &Notice,
    kept: &[(String, String)],
) -> Markup {
    if m.eq_ignore_ascii_case("SMTP") {
        dialup_section(a, url, eff, notice, kept)
    } else if m.eq_ignore_ascii_case("RPOP") {
        let stored = records_of(eff.get(UNIFIED.as_bytes()));
        let rows = if field(kept, "action") == "unified" {
            kept_rows(kept, &stored)
        } else {
            stored_rows(&stored)
        };
        html! {
            section.panel {
                h2 { "Unified Domain-Wide Accounts" }
                (notice.show_for("unified"))
                p.muted { "Remote mailboxes whose messages go to the recipients named in their Special Header (X-Real-To when not changed; empty: the domain's postmaster rules apply)." }
                (rows_form(a, url, "unified", &rows, true))
            }
        }
    } else {
        html! {}
    }
}

fn dialup_section(
    a: &Admin,
    url: &str,
    eff: &Dict,
    notice: &Notice,
    kept: &[(String, String)],
) -> Markup {
    let keep = field(kept, "action") == "dialup";
    let shown = |k: &str| {
        if keep {
            field(kept, &format!("k:{k}")).to_string()
        } else {
            eff.get(k.as_bytes()).map(value_text).unwrap_or_default()
        }
    };
    let original = |k: &str| eff.get(k.as_bytes()).map(value_text).unwrap_or_default();
    let has_password = !original("ATRNPassword").is_empty();
    html! {
        section.panel {
            h2 { "Dial-up: wake-ups and held mail" }
            (notice.show_for("dialup"))
            p.muted { "Wake-ups (ETRN, or AUTH and ATRN) ask the backup server to send the mail it holds for us; they are sent only while the TCP Activity Schedule lets the link open. Hold Mail for Domains keeps mail for those hosts in the queue until they send ETRN or ATRN." }
            form method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="dialup";
                table {
                    tbody {
                        @for (key, label, choices) in DIALUP {
                            tr {
                                td { label for={"dialup-" (key)} { (label) } }
                                td {
                                    @if key == "ATRNPassword" {
                                        input type="password" id={"dialup-" (key)} name={"k:" (key)} value="" autocomplete="new-password"
                                            placeholder=(if has_password { "stored; empty keeps it" } else { "none stored" });
                                        input type="hidden" name={"o:" (key)} value="";
                                        @if has_password {
                                            label { input type="checkbox" name="forget" value="Yes"; " forget the stored password" }
                                        }
                                    } @else if choices.is_empty() {
                                        input type="text" id={"dialup-" (key)} name={"k:" (key)} value=(shown(key));
                                        input type="hidden" name={"o:" (key)} value=(original(key));
                                    } @else {
                                        select id={"dialup-" (key)} name={"k:" (key)} {
                                            @for c in choices.iter() {
                                                option value=(c) selected[c.eq_ignore_ascii_case(&shown(key))] { (c) }
                                            }
                                        }
                                        input type="hidden" name={"o:" (key)} value=(original(key));
                                    }
                                }
                            }
                        }
                    }
                }
                p { button type="submit" { "Update" } " " span.muted { "Empty means default." } }
            }
        }
        section.panel {
            h2 { "Wake Up Now" }
            (notice.show_for("wakeup"))
            p.muted { "Starts a link session at once if the TCP Activity Schedule lets the link open: the queue is flushed, a wake-up is sent to the backup server, remote (RPOP) accounts are polled." }
            form method="post" action=(url) {
                (csrf_field(&a.csrf))
                input type="hidden" name="action" value="wakeup";
                button type="submit" { "Wake Up Now" }
            }
        }
    }
}

/// An account's RPOP records as a section of its page (`records`: `GetAccountRPOP`'s reply).
pub(super) fn account_section(
    a: &Admin,
    url: &str,
    records: &[Value],
    notice: &Notice,
    kept: &[(String, String)],
) -> Markup {
    let rows = if field(kept, "action") == "rpop" {
        kept_rows(kept, records)
    } else {
        stored_rows(records)
    };
    html! {
        section.panel {
            h2 { "Remote POP accounts (RPOP)" }
            (notice.show_for("rpop"))
            p.muted { "Mail polled from these mailboxes is delivered to this account, inside the TCP Activity Schedule." }
            (rows_form(a, url, "rpop", &rows, false))
        }
    }
}

/// The `SetAccountRPOP` records of a posted account form, its passwords filled in from the
/// stored `records` where left empty.
pub(super) fn account_records(form: &[(String, String)], records: &[Value]) -> Vec<Value> {
    posted_records(form, records, false)
}

/// One row as shown: no password, only whether one is stored.
struct Row {
    /// `account host` of the stored record the row shows (empty for a new row).
    orig: String,
    every: String,
    account: String,
    host: String,
    has_password: bool,
    leave: bool,
    apop: bool,
    header: String,
    last: String,
}

/// The key a stored record is found by when its row is posted back.
fn key_of(r: &Value) -> String {
    format!(
        "{} {}",
        r.get_text("Account").unwrap_or_default(),
        r.get_text("Host").unwrap_or_default()
    )
}

fn records_of(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

fn yes(v: Option<String>) -> bool {
    v.is_some_and(|t| t.trim().eq_ignore_ascii_case("yes"))
}

fn stored_rows(records: &[Value]) -> Vec<Row> {
    records
        .iter()
        .map(|r| Row {
            orig: key_of(r),
            every: r.get_text("PollEvery").unwrap_or_default(),
            account: r.get_text("Account").unwrap_or_default(),
            host: r.get_text("Host").unwrap_or_default(),
            has_password: r.get_text("Password").is_some_and(|p| !p.is_empty()),
            leave: yes(r.get_text("Leave")),
            apop: yes(r.get_text("APOP")),
            header: r
                .get_text("SpecialHeader")
                .unwrap_or_else(|| crate::modules::rpop::DEFAULT_SPECIAL_HEADER.to_string()),
            last: r.get_text("Last").unwrap_or_default(),
        })
        .collect()
}

/// The rows of a posted form, by index: every repeated field has one value per row.
fn form_rows(form: &[(String, String)]) -> Vec<Vec<&str>> {
    let cols = [
        "orig", "every", "account", "host", "password", "leave", "apop", "header",
    ];
    let values: Vec<Vec<&str>> = cols.iter().map(|c| all_fields(form, c)).collect();
    let n = values[0].len();
    (0..n)
        .map(|i| {
            values
                .iter()
                .map(|v| v.get(i).copied().unwrap_or(""))
                .collect()
        })
        .filter(|r: &Vec<&str>| !r[2].trim().is_empty())
        .collect()
}

fn stored_password(stored: &[Value], orig: &str) -> Option<String> {
    stored
        .iter()
        .find(|r| !orig.is_empty() && key_of(r) == orig)
        .and_then(|r| r.get_text("Password"))
}

/// The posted rows as records; a row with an empty Account is dropped (PollEvery=never drops
/// one too, in the CLI).
fn posted_records(form: &[(String, String)], stored: &[Value], unified: bool) -> Vec<Value> {
    form_rows(form)
        .into_iter()
        .map(|r| {
            let password = if r[4].is_empty() {
                stored_password(stored, r[0]).unwrap_or_default()
            } else {
                r[4].to_string()
            };
            let mut d = Dict::new();
            let mut put = |k: &str, v: &str| {
                d.insert(k.as_bytes().to_vec(), Value::str(v));
            };
            put(
                "PollEvery",
                if r[1].trim().is_empty() {
                    "10m"
                } else {
                    r[1].trim()
                },
            );
            put("Account", r[2].trim());
            put("Host", r[3].trim());
            put("Password", &password);
            put("Leave", r[5]);
            put("APOP", r[6]);
            if unified {
                put("SpecialHeader", r[7].trim());
            }
            Value::Dict(d)
        })
        .collect()
}

fn kept_rows(form: &[(String, String)], stored: &[Value]) -> Vec<Row> {
    form_rows(form)
        .into_iter()
        .map(|r| Row {
            orig: r[0].to_string(),
            every: r[1].to_string(),
            account: r[2].to_string(),
            host: r[3].to_string(),
            has_password: stored_password(stored, r[0]).is_some_and(|p| !p.is_empty()),
            leave: r[5] == "Yes",
            apop: r[6] == "Yes",
            header: r[7].to_string(),
            last: String::new(),
        })
        .collect()
}

/// The rows as a form posting `action` to `url`, with an empty last row to add one.
fn rows_form(a: &Admin, url: &str, action: &str, rows: &[Row], unified: bool) -> Markup {
    let blank = Row {
        orig: String::new(),
        every: String::new(),
        account: String::new(),
        host: String::new(),
        has_password: false,
        leave: false,
        apop: false,
        header: crate::modules::rpop::DEFAULT_SPECIAL_HEADER.to_string(),
        last: String::new(),
    };
    let yes_no = |name: &str, on: bool| {
        html! {
            select name=(name) aria-label=(name) {
                option value="No" selected[!on] { "No" }
                option value="Yes" selected[on] { "Yes" }
            }
        }
    };
    html! {
        form method="post" action=(url) {
            (csrf_field(&a.csrf))
            input type="hidden" name="action" value=(action);
            table {
                thead { tr {
                    th { "Poll Every" } th { "Account" } th { "Host[:port]" } th { "Password" }
                    th { "Leave" } th { "APOP" }
                    @if unified { th { "Special Header" } }
                    @if !unified { th.opt { "Last poll" } }
                } }
                tbody {
                    @for r in rows.iter().chain(std::iter::once(&blank)) {
                        tr {
                            td {
                                input type="hidden" name="orig" value=(r.orig);
                                input type="text" name="every" value=(r.every) placeholder="10m" aria-label="every";
                            }
                            td { input type="text" name="account" value=(r.account) aria-label="account"; }
                            td { input type="text" name="host" value=(r.host) placeholder="pop.example.com" aria-label="host"; }
                            td { input type="password" name="password" value="" autocomplete="new-password" aria-label="password"
                                    placeholder=(if r.has_password { "(stored)" } else { "" })
                                    title="empty keeps the stored password"; }
                            td { (yes_no("leave", r.leave)) }
                            td { (yes_no("apop", r.apop)) }
                            @if unified { td { input type="text" name="header" value=(r.header) aria-label="header"; } }
                            @else { td.opt.mono { input type="hidden" name="header" value=""; (r.last) } }
                        }
                    }
                }
            }
            p { button type="submit" { "Save" } " " span.muted { "Add one in the empty last row; clear a row's Account (or set Poll Every to never) to remove it. A time is 30s, 10m, 2h." } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format;

    fn form(rows: &[[&str; 8]]) -> Vec<(String, String)> {
        let cols = [
            "orig", "every", "account", "host", "password", "leave", "apop", "header",
        ];
        rows.iter()
            .flat_map(|r| {
                cols.iter()
                    .zip(r)
                    .map(|(c, v)| (c.to_string(), v.to_string()))
            })
            .collect()
    }

    #[test]
    fn an_empty_password_keeps_the_stored_one_of_the_same_row() {
        let stored = vec![
            format::parse(
                b"{PollEvery=600s;Account=a;Host=h1;Password=secret-a;Leave=No;APOP=No;}",
            )
            .unwrap(),
            format::parse(
                b"{PollEvery=600s;Account=b;Host=h2;Password=secret-b;Leave=No;APOP=No;}",
            )
            .unwrap(),
        ];
        let posted = form(&[
            // Reordered and with a new host: still row "b h2"'s password.
            ["b h2", "1h", "b", "h3", "", "Yes", "No", ""],
            // Account cleared: removed.
            ["a h1", "10m", "", "h1", "", "No", "No", ""],
            // A new row with a password typed; a forged orig finds nothing.
            ["", "", "c", "h4", "pc", "No", "Yes", ""],
            ["x y", "", "d", "h5", "", "No", "No", ""],
        ]);
        let records = account_records(&posted, &stored);
        let got: Vec<(String, String, String, String)> = records
            .iter()
            .map(|r| {
                let t = |k| r.get_text(k).unwrap_or_default();
                (t("Account"), t("Host"), t("Password"), t("PollEvery"))
            })
            .collect();
        let want = [
            ("b", "h3", "secret-b", "1h"),
            ("c", "h4", "pc", "10m"),
            ("d", "h5", "", "10m"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
        );
        // An account's record has no SpecialHeader; the rows shown carry no password.
        assert!(records[0].get("SpecialHeader").is_none());
        let admin = Admin {
            session: crate::cli::Session {
                user: "postmaster".into(),
                domain: "example.com".into(),
                rights: Vec::new(),
                main_domain: true,
            },
            csrf: "t".into(),
            session_id: None,
        };
        let page = rows_form(&admin, "/x", "rpop", &stored_rows(&stored), false).into_string();
        assert!(page.contains(r#"value="b h2""#), "{page}");
        assert!(!page.contains("secret-"), "{page}");
    }
}
