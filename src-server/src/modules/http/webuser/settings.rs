//! The user's settings pages: address book, password and preferences, Rules (Auto-Reply and
//! Redirect All) and RPOP accounts (guide.txt:20306-20407, 20945-20972, 11068-11139).
//!
//! Password, rules and RPOP records go through the CLI commands (`SetAccountPassword`,
//! `GetAccountRules`/`SetAccountRules`, `GetAccountRPOP`/`SetAccountRPOP`) as the user, so the
//! account's own rights (`PWDAllowed`, `RulesAllowed`, `RPOPAllowed`) decide; their error text
//! is shown as it is. Preferences and contacts are this module's file (`prefs`).

use axum::response::Response;
use maud::html;

use super::form::Posted;
use super::prefs::{self, Contact, PAGE_SIZES};
use super::{enc, page, run, see_other, User, Web};
use crate::format::{self, Value};
use crate::kernel::rules::builtin::{self, RedirectAll};
use crate::kernel::rules::{parse_rules, rules_to_value};
use crate::modules::http::html::{csrf_field, message as notice};

/// `Contacts.wssp`: the address book; add (also "Take Address" from a message) and delete.
pub async fn contacts(web: &Web, user: &User, posted: Option<&Posted>) -> Response {
    let mut error = None;
    let mut p = prefs::load(web, user).await;
    if let Some(f) = posted {
        let email = f.get("email").trim().to_string();
        let result = match f.get("action") {
            "add" => {
                let name = f.get("name").trim().to_string();
                if !super::mime::valid_address(&email) {
                    Err(format!("'{email}' is not an e-mail address."))
                } else if p.contacts.len() >= prefs::MAX_CONTACTS {
                    Err("The address book is full.".into())
                } else {
                    p.contacts.retain(|c| !c.email.eq_ignore_ascii_case(&email));
                    p.contacts.push(Contact { name, email });
                    prefs::save(web, user, &p).await
                }
            }
            "delete" => {
                p.contacts.retain(|c| !c.email.eq_ignore_ascii_case(&email));
                prefs::save(web, user, &p).await
            }
            _ => Err("Unknown action".into()),
        };
        match result {
            Ok(()) => return see_other(&user.url("Contacts.wssp")),
            Err(e) => error = Some(e),
        }
    }
    let body = html! {
        h1 { "Contacts" }
        (notice(error.as_deref(), None))
        section.panel {
            table #contacts {
                thead { tr { th { "Name" } th { "E-mail" } th {} } }
                tbody {
                    @for c in &p.contacts {
                        tr {
                            td { (c.name) }
                            td { a href=(format!("{}?To={}", user.url("Compose.wssp"), enc(&c.email))) { (c.email) } }
                            td {
                                form method="post" action=(user.url("Contacts.wssp")) {
                                    (csrf_field(&user.csrf))
                                    input type="hidden" name="action" value="delete";
                                    input type="hidden" name="email" value=(c.email);
                                    button.secondary type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
            form.inline.mt method="post" action=(user.url("Contacts.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="add";
                label { "Name" input type="text" name="name"; }
                label { "E-mail" input type="text" name="email" required; }
                button type="submit" { "Add" }
            }
        }
    };
    page(user, "Contacts", "Contacts.wssp", body)
}

/// `Settings.wssp`: password change (Old, New, Reenter; guide.txt:20320-20335) and the
/// preferences (time zone, page size).
pub async fn settings(web: &Web, user: &User, posted: Option<&Posted>) -> Response {
    let mut error = None;
    let mut ok = None;
    let mut p = prefs::load(web, user).await;
    if let Some(f) = posted {
        match f.get("action") {
            "password" => {
                let (old, new, again) = (f.get("old"), f.get("new"), f.get("again"));
                let checked = web
                    .cli
                    .password_login(&user.address(), old.as_bytes())
                    .await;
                if checked.is_err() {
                    error = Some("The old password is not correct.".to_string());
                } else if new.is_empty() || new != again {
                    error = Some("The new passwords differ, or are empty.".to_string());
                } else {
                    match run(
                        web,
                        user,
                        "SetAccountPassword",
                        vec![
                            Value::str(user.address()),
                            Value::str("To"),
                            Value::str(new),
                        ],
                    )
                    .await
                    {
                        Ok(_) => ok = Some("Your password has been changed."),
                        Err(e) => error = Some(e.0),
                    }
                }
            }
            "prefs" => match prefs::parse_tz(f.get("tz")) {
                None => {
                    error = Some(
                        "Write the time zone as +HHMM or -HHMM (e.g. +0100), UTC, or a zone name such as Europe/Paris.".to_string(),
                    )
                }
                Some(tz) => {
                    p.tz = tz;
                    p.fixed_address = Some(f.has("fixed"));
                    p.page_size = f
                        .get("pagesize")
                        .parse::<usize>()
                        .unwrap_or(20)
                        .clamp(5, 200);
                    p.signature = f
                        .get("signature")
                        .replace("\r\n", "\n")
                        .trim_end()
                        .chars()
                        .take(prefs::MAX_SIGNATURE)
                        .collect();
                    match prefs::save(web, user, &p).await {
                        Ok(()) => {
                            // This session follows the new choice at once (bound to this address).
                            web.sessions.set_fixed(&user.sid, user.peer, f.has("fixed"));
                            return see_other(&user.url("Settings.wssp"));
                        }
                        Err(e) => error = Some(e),
                    }
                }
            },
            _ => error = Some("Unknown action".to_string()),
        }
    }
    let fixed = prefs::fixed_address(web, &user.id).await;
    let body = html! {
        h1 { "Settings" }
        (notice(error.as_deref(), ok))
        section.panel {
            h2 { "Preferences" }
            form.inline method="post" action=(user.url("Settings.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="prefs";
                label { "Time zone" input #tz type="text" name="tz" value=(p.tz.text()) size="14"; }
                label { "Messages per page"
                    select #pagesize name="pagesize" {
                        @for n in PAGE_SIZES { option value=(n) selected[*n == p.page_size] { (n) } }
                    }
                }
                label { "Signature" textarea #signature name="signature" rows="3" { (p.signature) } }
                label { input #fixed type="checkbox" name="fixed" checked[fixed];
                    " Require Fixed Network Address (turn off if your requests come through several proxies)" }
                button type="submit" { "Save" }
            }
        }
        section.panel {
            h2 { "Password" }
            form.inline method="post" action=(user.url("Settings.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="password";
                label { "Old password" input type="password" name="old" autocomplete="current-password" required; }
                label { "New password" input type="password" name="new" autocomplete="new-password" required; }
                label { "Again" input type="password" name="again" autocomplete="new-password" required; }
                button type="submit" { "Modify" }
            }
        }
    };
    page(user, "Settings", "Settings.wssp", body)
}

/// `Rules.wssp`: the Auto-Reply (vacation) and Redirect All rules (guide.txt:11068-11139).
pub async fn rules(web: &Web, user: &User, posted: Option<&Posted>) -> Response {
    let me = Value::str(user.address());
    let mut error = None;
    let mut ok = None;
    let loaded = run(web, user, "GetAccountRules", vec![me.clone()]).await;
    let mut current = match &loaded {
        Ok(Some(v)) => parse_rules(v).unwrap_or_default(),
        Ok(None) => Vec::new(),
        Err(e) => {
            error = Some(e.0.clone());
            Vec::new()
        }
    };
    if let (Some(f), true) = (posted, loaded.is_ok()) {
        match f.get("action") {
            "autoreply" => {
                let text = f.get("text").replace("\r\n", "\n");
                builtin::replace_rule(&mut current, builtin::auto_reply(&text, f.has("enabled")));
            }
            "redirect" => {
                let to = super::mime::parse_address_list(f.get("to"));
                if let Some(bad) = to.iter().find(|a| !super::mime::valid_address(a)) {
                    error = Some(format!("'{bad}' is not an e-mail address."));
                }
                builtin::replace_rule(
                    &mut current,
                    builtin::redirect_all(&RedirectAll {
                        enabled: f.has("enabled"),
                        to,
                        keep_copy: f.has("keep"),
                        human_only: f.has("human"),
                        preserve_to_cc: f.has("preserve"),
                    }),
                );
            }
            _ => error = Some("Unknown action".into()),
        }
        if error.is_none() {
            match run(
                web,
                user,
                "SetAccountRules",
                vec![me.clone(), rules_to_value(&current)],
            )
            .await
            {
                Ok(_) => ok = Some("Saved."),
                Err(e) => error = Some(e.0),
            }
        }
    }
    let (reply_on, reply_text) =
        builtin::read_auto_reply(&current).unwrap_or((false, String::new()));
    let redirect = builtin::read_redirect_all(&current).unwrap_or(RedirectAll {
        enabled: false,
        to: Vec::new(),
        keep_copy: true,
        human_only: true,
        preserve_to_cc: false,
    });
    let others: Vec<_> = current
        .iter()
        .filter(|r| !r.name.starts_with('#'))
        .collect();
    let body = html! {
        h1 { "Rules" }
        (notice(error.as_deref(), ok))
        section.panel {
            h2 { "Auto-Reply (vacation)" }
            form method="post" action=(user.url("Rules.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="autoreply";
                p { label { input #autoreply-on type="checkbox" name="enabled" checked[reply_on]; " Answer every message with this text" } }
                textarea #autoreply-text name="text" aria-label="Auto-Reply text" { (reply_text) }
                p.muted { "Each sender is answered once a week at most; automatic messages are not answered." }
                button #autoreply-save type="submit" { "Save Auto-Reply" }
            }
        }
        section.panel {
            h2 { "Redirect all mail" }
            form method="post" action=(user.url("Rules.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="redirect";
                p { label { input type="checkbox" name="enabled" checked[redirect.enabled]; " Redirect all mail to" } }
                input type="text" name="to" value=(redirect.to.join(", ")) aria-label="Redirect to";
                p {
                    label { input type="checkbox" name="keep" checked[redirect.keep_copy]; " Keep a copy" } " "
                    label { input type="checkbox" name="human" checked[redirect.human_only]; " Do not redirect automatic messages" } " "
                    label { input type="checkbox" name="preserve" checked[redirect.preserve_to_cc]; " Preserve To/Cc fields" }
                }
                button type="submit" { "Save Redirect" }
            }
        }
        @if !others.is_empty() {
            section.panel {
                h2 { "Other rules" }
                p.muted { "Set by your administrator or a mail client." }
                ul { @for r in &others { li { (r.name) " (priority " (r.priority) ")" } } }
            }
        }
    };
    page(user, "Rules", "Rules.wssp", body)
}

/// Most rows the RPOP form reads (the module's own cap on records is higher than any user limit).
const MAX_RPOP_ROWS: usize = 100;

/// One row of the RPOP form, as shown.
struct RpopRow {
    host: String,
    account: String,
    password: String,
    leave: bool,
    apop: bool,
    every: String,
    last: String,
}

impl RpopRow {
    fn from_record(v: &Value) -> RpopRow {
        let t = |k: &str| v.get_text(k).unwrap_or_default();
        let yes = |k: &str| t(k).eq_ignore_ascii_case("yes");
        RpopRow {
            host: t("Host"),
            account: t("Account"),
            password: t("Password"),
            leave: yes("Leave"),
            apop: yes("APOP"),
            every: short_duration(&t("PollEvery")),
            last: t("Last"),
        }
    }

    fn to_record(&self) -> Value {
        let yn = |b: bool| Value::str(if b { "Yes" } else { "No" });
        format::dict([
            ("PollEvery", Value::str(&self.every)),
            ("Account", Value::str(&self.account)),
            ("Host", Value::str(&self.host)),
            ("Password", Value::str(&self.password)),
            ("Leave", yn(self.leave)),
            ("APOP", yn(self.apop)),
        ])
    }
}

/// `600s` as `10m`, `3600s` as `1h`: how people write a Poll Every.
fn short_duration(stored: &str) -> String {
    match crate::kernel::queue::settings::parse_duration(stored) {
        Some(s) if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        Some(s) if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        Some(s) => format!("{s}s"),
        None => stored.to_string(),
    }
}

/// The rows of a posted RPOP form. A row left without a password keeps the stored one of the
/// same remote account (passwords are never sent back to the browser); a row marked Delete and
/// the empty "add" row are dropped.
fn posted_rows(f: &Posted, old: &[RpopRow]) -> Vec<RpopRow> {
    let count = f
        .get("rows")
        .parse::<usize>()
        .unwrap_or(0)
        .min(MAX_RPOP_ROWS);
    (0..count)
        .filter(|i| !f.has(&format!("delete{i}")))
        .filter_map(|i| {
            let field = |k: &str| f.get(&format!("{k}{i}")).trim().to_string();
            let (host, account) = (field("host"), field("account"));
            if host.is_empty() && account.is_empty() {
                return None;
            }
            let mut password = f.get(&format!("password{i}")).to_string();
            if password.is_empty() {
                if let Some(o) = old
                    .iter()
                    .find(|o| o.account == account && o.host.eq_ignore_ascii_case(&host))
                {
                    password.clone_from(&o.password);
                }
            }
            Some(RpopRow {
                every: field("every"),
                leave: f.has(&format!("leave{i}")),
                apop: f.has(&format!("apop{i}")),
                host,
                account,
                password,
                last: String::new(),
            })
        })
        .collect()
}

/// `RPOP.wssp`: the remote POP accounts polled for the user (guide.txt:20400-20406, 12436-12497),
/// read and replaced with `GetAccountRPOP`/`SetAccountRPOP` as the user (their `RPOPAllowed` and
/// the module's user limits decide). One row per account and an empty one to add; passwords
/// are not echoed; Last shows the time of the last poll or its error (12584-12588).
pub async fn rpop(web: &Web, user: &User, posted: Option<&Posted>) -> Response {
    let me = Value::str(user.address());
    let mut error = None;
    let mut ok = None;
    let load = |v: Result<Option<Value>, crate::cli::CliError>| match v {
        Ok(Some(Value::Array(a))) => Ok(a.iter().map(RpopRow::from_record).collect::<Vec<_>>()),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(e.0),
    };
    let mut shown = None;
    if let Some(f) = posted {
        let old = load(run(web, user, "GetAccountRPOP", vec![me.clone()]).await);
        match old {
            Ok(old) => {
                let rows = posted_rows(f, &old);
                let records = Value::Array(rows.iter().map(RpopRow::to_record).collect());
                match run(web, user, "SetAccountRPOP", vec![me.clone(), records]).await {
                    Ok(_) => ok = Some("Saved."),
                    Err(e) => {
                        error = Some(e.0);
                        // Show what was typed, so a refused change can be corrected.
                        shown = Some(rows);
                    }
                }
            }
            Err(e) => error = Some(e),
        }
    }
    let loaded = load(run(web, user, "GetAccountRPOP", vec![me]).await);
    let (rows, load_error) = match (shown, loaded) {
        (Some(rows), Ok(_)) => (rows, None),
        (_, Ok(rows)) => (rows, None),
        (_, Err(e)) => (Vec::new(), Some(e)),
    };
    let blank = RpopRow {
        host: String::new(),
        account: String::new(),
        password: String::new(),
        leave: true,
        apop: false,
        every: "1h".into(),
        last: String::new(),
    };
    let body = html! {
        h1 { "Remote POP accounts" }
        (notice(error.as_deref().or(load_error.as_deref()), ok))
        @if load_error.is_none() {
            section.panel {
                p.muted { "Mailboxes elsewhere that this server collects into your INBOX. Leave the password empty to keep the saved one." }
                form method="post" action=(user.url("RPOP.wssp")) {
                    (csrf_field(&user.csrf))
                    input type="hidden" name="rows" value=(rows.len() + 1);
                    table.rpop {
                        thead { tr { th { "Host[:port]" } th { "Account" } th { "Password" } th { "Leave" } th { "APOP" } th { "Poll every" } th { "Last" } th { "Delete" } } }
                        tbody {
                            @for (i, r) in rows.iter().chain(std::iter::once(&blank)).enumerate() {
                                @let new = i == rows.len();
                                tr {
                                    td { input type="text" name=(format!("host{i}")) value=(r.host) aria-label="Host" placeholder=[new.then_some("pop.example.com")]; }
                                    td { input type="text" name=(format!("account{i}")) value=(r.account) aria-label="Account"; }
                                    td { input type="password" name=(format!("password{i}")) value="" autocomplete="off" aria-label="Password"
                                        placeholder=[(!new && !r.password.is_empty()).then_some("(saved)")]; }
                                    td { input type="checkbox" name=(format!("leave{i}")) checked[r.leave] aria-label="Leave on server"; }
                                    td { input type="checkbox" name=(format!("apop{i}")) checked[r.apop] aria-label="APOP"; }
                                    td { input type="text" name=(format!("every{i}")) value=(r.every) size="5" aria-label="Poll every"; }
                                    td.muted { (r.last) }
                                    td { @if !new { input type="checkbox" name=(format!("delete{i}")) aria-label="Delete"; } }
                                }
                            }
                        }
                    }
                    p.muted { "Poll every: 30m, 2h, 1d, or never (removes the row). Fill in the last row to add an account." }
                    p { button type="submit" { "Save" } }
                }
            }
        }
    };
    page(user, "RPOP", "RPOP.wssp", body)
}
