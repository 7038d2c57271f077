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
use crate::modules::http::html::{csrf_field, message as notice, value_text};

/// `Contacts.wssp`: the address book; add (also "Take Address" from a message) and delete.
pub async fn contacts(web: &Web, user: &User, posted: Option<&Posted>) -> Response {
    let mut error = None;
    let mut p = prefs::load(web, user).await;
    if let Some(f) = posted {
        let email = f.get("email").trim().to_string();
        let result = match f.get("action") {
            "add" => {
                let name = f.get("name").trim().to_string();
                if !email.contains('@')
                    || email.contains(char::is_whitespace)
                    || email.contains(['<', '>', ','])
                {
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
                        "Write the time zone as +HHMM or -HHMM (e.g. +0100), or UTC.".to_string(),
                    )
                }
                Some(tz) => {
                    p.tz_minutes = tz;
                    p.page_size = f
                        .get("pagesize")
                        .parse::<usize>()
                        .unwrap_or(20)
                        .clamp(5, 200);
                    match prefs::save(web, user, &p).await {
                        Ok(()) => return see_other(&user.url("Settings.wssp")),
                        Err(e) => error = Some(e),
                    }
                }
            },
            _ => error = Some("Unknown action".to_string()),
        }
    }
    let body = html! {
        h1 { "Settings" }
        (notice(error.as_deref(), ok))
        section.panel {
            h2 { "Preferences" }
            form.inline method="post" action=(user.url("Settings.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="prefs";
                label { "Time zone" input #tz type="text" name="tz" value=(prefs::tz_text(p.tz_minutes)) size="6"; }
                label { "Messages per page"
                    select #pagesize name="pagesize" {
                        @for n in PAGE_SIZES { option value=(n) selected[*n == p.page_size] { (n) } }
                    }
                }
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
                if let Some(bad) = to.iter().find(|a| !a.contains('@')) {
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

/// `RPOP.wssp`: the remote POP accounts polled for the user (guide.txt:20400-20406), read and
/// replaced with `GetAccountRPOP`/`SetAccountRPOP`, shown and edited in the data format.
pub async fn rpop(web: &Web, user: &User, posted: Option<&Posted>) -> Response {
    let me = Value::str(user.address());
    let mut error = None;
    let mut ok = None;
    if let Some(f) = posted {
        match format::parse(f.get("records").trim().as_bytes()) {
            Ok(v @ Value::Dict(_)) => {
                match run(web, user, "SetAccountRPOP", vec![me.clone(), v]).await {
                    Ok(_) => ok = Some("Saved."),
                    Err(e) => error = Some(e.0),
                }
            }
            Ok(_) => error = Some("The records must be a dictionary: {name={...};}".into()),
            Err(e) => error = Some(format!("The records are not in the data format: {e}")),
        }
    }
    let loaded = run(web, user, "GetAccountRPOP", vec![me]).await;
    let (text, load_error) = match loaded {
        Ok(Some(v)) => (value_text(&v), None),
        Ok(None) => ("{}".to_string(), None),
        Err(e) => (String::new(), Some(e.0)),
    };
    let body = html! {
        h1 { "Remote POP accounts" }
        (notice(error.as_deref().or(load_error.as_deref()), ok))
        section.panel {
            p.muted { "Mailboxes elsewhere that this server collects for you. Each record: "
                code { "name = {authName=user; domain=pop.example.com; password=secret; mailbox=INBOX; period=3600; leave=NO;};" } }
            @if load_error.is_none() {
                form method="post" action=(user.url("RPOP.wssp")) {
                    (csrf_field(&user.csrf))
                    textarea #rpop name="records" aria-label="RPOP records" { (text) }
                    p { button type="submit" { "Save" } }
                }
            }
        }
    };
    page(user, "RPOP", "RPOP.wssp", body)
}
