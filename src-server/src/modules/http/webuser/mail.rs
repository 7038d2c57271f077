//! The mail pages: the mailbox list, a mailbox's message list, the message page, its sanitised
//! HTML body and its parts (guide.txt:20408-20788; spec E §6.2, §6.3).
//!
//! Mailboxes are the account's own, opened through `AccountMailboxes` and the shared Mailbox
//! Manager (names validated there). Creating, renaming, deleting mailboxes and the subscription
//! list go through the CLI's mailbox commands as the user. Moving a message appends it to the
//! target (fsynced) before it is removed from the source; deleting moves it to Trash, and in
//! Trash removes it at once (the guide's "Move To Trash" method, guide.txt:20579-20599).

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maud::{html, PreEscaped};

use super::form::Posted;
use super::{
    blocking, enc, error_page, page, param, prefs, respond, run, see_other, Csp, User, Web,
};
use crate::format::Value;
use crate::mailbox::account::{AccountMailboxes, INBOX};
use crate::mailbox::{Flags, Mailbox, MessageMeta, SetMode};
use crate::modules::http::html::{csrf_field, message as notice};
use crate::modules::http::sanitize::{self, SanitizeOptions};

/// The Trash mailbox (guide.txt:20583-20586: created on first use).
pub const TRASH: &str = "Trash";

/// The account's mailbox storage.
pub fn account(web: &Web, user: &User) -> Result<AccountMailboxes, String> {
    AccountMailboxes::open(&web.cli.store, &user.id.domain, &user.id.name)
        .map_err(|e| e.to_string())
}

/// Opens one of the account's mailboxes (blocking).
pub fn open(web: &Web, user: &User, name: &str) -> Result<Arc<Mailbox>, String> {
    let acc = account(web, user)?;
    if name.eq_ignore_ascii_case(INBOX) {
        let format = crate::mailbox::Format::Mbox;
        return acc
            .open_inbox(&web.mailboxes, format)
            .map_err(|e| e.to_string());
    }
    acc.open_mailbox(&web.mailboxes, name)
        .map_err(|e| format!("{name}: {e}"))
}

/// Opens a mailbox, creating it when missing (Sent, Drafts, Trash; blocking).
pub fn open_or_create(web: &Web, user: &User, name: &str) -> Result<Arc<Mailbox>, String> {
    let acc = account(web, user)?;
    if acc.find(name).map_err(|e| e.to_string())?.is_none() {
        let format = crate::mailbox::Format::Mbox;
        acc.create(&web.mailboxes, name, format)
            .map_err(|e| format!("{name}: {e}"))?;
        // History 23667: mailboxes WebMail creates are subscribed.
        let _ = subscribe_blocking(web, user, name);
    }
    acc.open_mailbox(&web.mailboxes, name)
        .map_err(|e| format!("{name}: {e}"))
}

fn subscribe_blocking(web: &Web, user: &User, name: &str) -> Result<(), String> {
    let ctx = web.cli.clone();
    let mut list = match crate::cli::execute(
        &ctx,
        &user.cli,
        format!("GETACCOUNTSUBSCRIPTION {}", quoted(&user.address())).as_bytes(),
    ) {
        Ok(Some(Value::Array(a))) => a,
        _ => Vec::new(),
    };
    if list.iter().any(|v| v.as_text().is_some_and(|t| t == name)) {
        return Ok(());
    }
    list.push(Value::str(name));
    let mut line = format!("SETACCOUNTSUBSCRIPTION {} ", quoted(&user.address())).into_bytes();
    line.extend_from_slice(&crate::format::to_bytes(&Value::Array(list)));
    crate::cli::execute(&ctx, &user.cli, &line)
        .map(|_| ())
        .map_err(|e| e.0)
}

fn quoted(s: &str) -> String {
    String::from_utf8_lossy(&crate::format::to_bytes(&Value::str(s))).into_owned()
}

/// One row of the mailbox list.
struct BoxRow {
    name: String,
    messages: usize,
    unseen: usize,
    size: u64,
    subscribed: bool,
    selectable: bool,
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1024 * 1024 => format!("{:.1}M", n as f64 / 1048576.0),
        n if n >= 1024 => format!("{}K", n / 1024),
        n => n.to_string(),
    }
}

/// `Mailboxes.wssp`: every mailbox with its counts; management forms.
pub async fn mailboxes(web: &Web, user: &User, posted: Option<&Posted>) -> Response {
    let mut error = None;
    if let Some(p) = posted {
        let me = Value::str(user.address());
        let mb = |n: &str| Value::str(n.trim());
        let result = match p.get("action") {
            "create" => {
                run(
                    web,
                    user,
                    "CREATEMAILBOX",
                    vec![me, Value::str("MAILBOX"), mb(p.get("name"))],
                )
                .await
            }
            "rename" => {
                run(
                    web,
                    user,
                    "RENAMEMAILBOX",
                    vec![
                        me,
                        Value::str("MAILBOXES"),
                        mb(p.get("name")),
                        Value::str("INTO"),
                        mb(p.get("newname")),
                    ],
                )
                .await
            }
            "delete" => {
                run(
                    web,
                    user,
                    "DELETEMAILBOX",
                    vec![me, Value::str("MAILBOXES"), mb(p.get("name"))],
                )
                .await
            }
            "subscribe" | "unsubscribe" => {
                let current = run(web, user, "GETACCOUNTSUBSCRIPTION", vec![me.clone()]).await;
                let mut list: Vec<String> = match current {
                    Ok(Some(Value::Array(a))) => a
                        .iter()
                        .filter_map(|v| v.as_text().map(|t| t.into_owned()))
                        .collect(),
                    _ => Vec::new(),
                };
                let name = p.get("name").trim().to_string();
                list.retain(|n| n != &name);
                if p.get("action") == "subscribe" {
                    list.push(name);
                }
                run(
                    web,
                    user,
                    "SETACCOUNTSUBSCRIPTION",
                    vec![me, Value::Array(list.into_iter().map(Value::str).collect())],
                )
                .await
            }
            _ => Err(crate::cli::CliError::new("Unknown action")),
        };
        match result {
            Ok(_) => return see_other(&user.url("Mailboxes.wssp")),
            Err(e) => error = Some(e.0),
        }
    }
    let subscribed: Vec<String> = match run(
        web,
        user,
        "GETACCOUNTSUBSCRIPTION",
        vec![Value::str(user.address())],
    )
    .await
    {
        Ok(Some(Value::Array(a))) => a
            .iter()
            .filter_map(|v| v.as_text().map(|t| t.into_owned()))
            .collect(),
        _ => Vec::new(),
    };
    let (w, u) = (web.clone(), clone_user(user));
    let listed = blocking(move || {
        let acc = account(&w, &u)?;
        // The INBOX exists from the first page on, as after the first delivery.
        let _ = acc.open_inbox(&w.mailboxes, crate::mailbox::Format::Mbox);
        let list = acc.list().map_err(|e| e.to_string())?;
        let total = acc.total_size();
        let mut rows = Vec::new();
        for l in list {
            let (messages, unseen, size) = match l.storage {
                Some(_) => match acc.open_mailbox(&w.mailboxes, &l.name) {
                    Ok(m) => {
                        let metas = m.list();
                        let unseen = metas
                            .iter()
                            .filter(|x| !x.flags.contains(Flags::SEEN))
                            .count();
                        (metas.len(), unseen, metas.iter().map(|x| x.size).sum())
                    }
                    Err(_) => (0, 0, 0),
                },
                None => (0, 0, 0),
            };
            rows.push(BoxRow {
                name: l.name,
                messages,
                unseen,
                size,
                subscribed: false,
                selectable: l.storage.is_some(),
            });
        }
        Ok((rows, total))
    })
    .await;
    let (mut rows, total) = match listed {
        Ok(x) => x,
        Err(e) => {
            error = Some(e);
            (Vec::new(), 0)
        }
    };
    for r in &mut rows {
        r.subscribed = subscribed.contains(&r.name);
    }
    let body = html! {
        h1 { "Mailboxes" }
        (notice(error.as_deref(), None))
        section.panel {
            p.muted { "Used " (human_size(total)) }
            table #mailboxes {
                thead { tr { th { "Mailbox" } th { "Messages" } th { "New" } th.size { "Size" } th { "Subscribed" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td {
                                @if r.selectable {
                                    a href=(format!("{}?Mailbox={}", user.url("Mailbox.wssp"), enc(&r.name))) { (r.name) }
                                } @else { span.muted { (r.name) "/" } }
                            }
                            td { (r.messages) }
                            td { @if r.unseen > 0 { strong { (r.unseen) } } @else { "0" } }
                            td.size { (human_size(r.size)) }
                            td {
                                form method="post" action=(user.url("Mailboxes.wssp")) {
                                    (csrf_field(&user.csrf))
                                    input type="hidden" name="name" value=(r.name);
                                    @if r.subscribed {
                                        input type="hidden" name="action" value="unsubscribe";
                                        button.secondary type="submit" title="Unsubscribe" { "✓ Subscribed" }
                                    } @else {
                                        input type="hidden" name="action" value="subscribe";
                                        button.secondary type="submit" { "Subscribe" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "Manage" }
            form.inline method="post" action=(user.url("Mailboxes.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="create";
                label { "New mailbox" input type="text" name="name" placeholder="Projects/2026" required; }
                button type="submit" { "Create" }
            }
            form.inline.mt method="post" action=(user.url("Mailboxes.wssp")) {
                (csrf_field(&user.csrf))
                input type="hidden" name="action" value="rename";
                label { "Rename" select name="name" { @for r in &rows { option { (r.name) } } } }
                label { "to" input type="text" name="newname" required; }
                button type="submit" { "Rename" }
            }
            @if rows.iter().any(|r| r.name != INBOX) {
                form.inline.mt method="post" action=(user.url("Mailboxes.wssp")) {
                    (csrf_field(&user.csrf))
                    input type="hidden" name="action" value="delete";
                    label { "Delete" select name="name" { @for r in rows.iter().filter(|r| r.name != INBOX) { option { (r.name) } } } }
                    button.danger type="submit" { "Delete with its messages" }
                }
            }
        }
    };
    page(user, "Mailboxes", "Mailboxes.wssp", body)
}

/// A copy of the request's user for blocking closures.
pub fn clone_user(u: &User) -> User {
    User {
        id: u.id.clone(),
        cli: u.cli.clone(),
        csrf: u.csrf.clone(),
        sid: u.sid.clone(),
        peer: u.peer,
    }
}

/// The summary of a listed message, from the cache or by parsing it.
fn summary_of(
    web: &Web,
    m: &Mailbox,
    validity: u32,
    meta: &MessageMeta,
) -> Arc<super::mime::Summary> {
    let key = (m.path().to_path_buf(), validity, meta.uid);
    if let Some(s) = web
        .summaries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return s.clone();
    }
    let s = Arc::new(
        m.read(meta.uid)
            .map(|b| super::mime::summary(&b))
            .unwrap_or_default(),
    );
    let mut cache = web.summaries.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= 50_000 {
        cache.clear();
    }
    cache.insert(key, s.clone());
    s
}

/// The uids a list form selected.
fn selected(p: &Posted) -> Vec<u32> {
    p.all("uid").iter().filter_map(|u| u.parse().ok()).collect()
}

/// Applies a message action (read, flag, delete, move) to `uids` of mailbox `name`; returns
/// a text for the user on failure.
async fn act(
    web: &Web,
    user: &User,
    name: &str,
    uids: Vec<u32>,
    action: &str,
    target: &str,
) -> Result<(), String> {
    if uids.is_empty() {
        return Err("Select one or more messages first.".into());
    }
    let (w, u, name, action, target) = (
        web.clone(),
        clone_user(user),
        name.to_string(),
        action.to_string(),
        target.to_string(),
    );
    blocking(move || {
        let m = open(&w, &u, &name)?;
        let flag = |f: Flags, mode| {
            m.set_flags(&uids, f, mode)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match action.as_str() {
            "read" => flag(Flags::SEEN, SetMode::Add),
            "unread" => flag(Flags::SEEN, SetMode::Remove),
            "flag" => flag(Flags::FLAGGED, SetMode::Add),
            "unflag" => flag(Flags::FLAGGED, SetMode::Remove),
            "delete" if name == TRASH => remove(&m, &uids),
            "delete" => {
                let trash = open_or_create(&w, &u, TRASH)?;
                move_to(&m, &trash, &uids)
            }
            "move" => {
                if target.is_empty() || target == name {
                    return Err("Choose another mailbox to move to.".into());
                }
                let to = open(&w, &u, &target)?;
                move_to(&m, &to, &uids)
            }
            _ => Err("Unknown action".into()),
        }
    })
    .await
}

/// Copies messages into `to` (each append fsynced) and then removes them from `from`.
fn move_to(from: &Mailbox, to: &Mailbox, uids: &[u32]) -> Result<(), String> {
    let metas = from.list();
    for uid in uids {
        let Some(meta) = metas.iter().find(|x| x.uid == *uid) else {
            continue;
        };
        let bytes = from.read(*uid).map_err(|e| e.to_string())?;
        to.append(
            &bytes,
            meta.flags.without(Flags::RECENT | Flags::DELETED),
            meta.internal_date,
        )
        .map_err(|e| e.to_string())?;
    }
    remove(from, uids)
}

/// Removes these messages: marks them `\Deleted` and expunges, sparing other messages an IMAP
/// client marked `\Deleted` but has not expunged (as IMAP's UID EXPUNGE does, RFC 4315 §2.1).
pub fn remove(m: &Mailbox, uids: &[u32]) -> Result<(), String> {
    let spare: Vec<u32> = m
        .list()
        .iter()
        .filter(|x| x.flags.contains(Flags::DELETED) && !uids.contains(&x.uid))
        .map(|x| x.uid)
        .collect();
    let e = |e: crate::mailbox::MailboxError| e.to_string();
    m.set_flags(&spare, Flags::DELETED, SetMode::Remove)
        .map_err(e)?;
    m.set_flags(uids, Flags::DELETED, SetMode::Add).map_err(e)?;
    let r = m.expunge();
    m.set_flags(&spare, Flags::DELETED, SetMode::Add)
        .map_err(e)?;
    r.map(|_| ()).map_err(e)
}

/// Sort orders of the message list (guide.txt:20446-20460).
#[derive(Clone, Copy, PartialEq)]
enum Sort {
    Date,
    From,
    Subject,
    Size,
}

/// `Mailbox.wssp`: the message list with paging, sorting and search; actions on selections.
pub async fn mailbox(
    web: &Web,
    user: &User,
    q: &[(String, String)],
    posted: Option<&Posted>,
) -> Response {
    let name = match param(q, "Mailbox") {
        "" => INBOX.to_string(),
        n => n.to_string(),
    };
    let mut error = None;
    if let Some(p) = posted {
        match act(
            web,
            user,
            &name,
            selected(p),
            p.get("action"),
            p.get("target"),
        )
        .await
        {
            Ok(()) => {
                let back = format!("{}?{}", user.url("Mailbox.wssp"), query_string(q));
                return see_other(&back);
            }
            Err(e) => error = Some(e),
        }
    }
    let prefs = prefs::load(web, user).await;
    let sort = match param(q, "Sort") {
        "from" => Sort::From,
        "subject" => Sort::Subject,
        "size" => Sort::Size,
        _ => Sort::Date,
    };
    // Newest first unless the user flips it.
    let reverse = param(q, "Reverse") != "0";
    let search = param(q, "Search").trim().to_string();
    let page_no: usize = param(q, "Page").parse().unwrap_or(0);
    let per_page = prefs.page_size;
    let (w, u, n, s) = (web.clone(), clone_user(user), name.clone(), search.clone());
    let listed = blocking(move || {
        let m = open(&w, &u, &n)?;
        let validity = m.uid_validity();
        let mut rows: Vec<(MessageMeta, Arc<super::mime::Summary>)> = m
            .list()
            .into_iter()
            .map(|meta| {
                let s = summary_of(&w, &m, validity, &meta);
                (meta, s)
            })
            .collect();
        if !s.is_empty() {
            let needle = s.to_lowercase();
            rows.retain(|(meta, sum)| {
                let head = format!("{} {} {} {}", sum.from, sum.from_addr, sum.to, sum.subject)
                    .to_lowercase();
                head.contains(&needle)
                    || m.read(meta.uid).is_ok_and(|b| {
                        super::mime::parse(&b).is_some_and(|msg| {
                            super::mime::plain_text(&msg)
                                .to_lowercase()
                                .contains(&needle)
                        })
                    })
            });
        }
        let others = account(&w, &u)?
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|l| l.storage.is_some() && l.name != n)
            .map(|l| l.name)
            .collect::<Vec<_>>();
        Ok((rows, others))
    })
    .await;
    let (mut rows, others) = match listed {
        Ok(x) => x,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &e),
    };
    rows.sort_by(|(am, a), (bm, b)| {
        let o = match sort {
            Sort::Date => a
                .date
                .unwrap_or(am.internal_date)
                .cmp(&b.date.unwrap_or(bm.internal_date)),
            Sort::From => a.from.to_lowercase().cmp(&b.from.to_lowercase()),
            Sort::Subject => a.subject.to_lowercase().cmp(&b.subject.to_lowercase()),
            Sort::Size => am.size.cmp(&bm.size),
        };
        o.then(am.uid.cmp(&bm.uid))
    });
    if reverse {
        rows.reverse();
    }
    let total = rows.len();
    let pages = total.div_ceil(per_page).max(1);
    let page_no = page_no.min(pages - 1);
    let shown = &rows[(page_no * per_page).min(total)..((page_no + 1) * per_page).min(total)];
    let base = |sort_key: &str, rev: bool, page: usize| {
        format!(
            "{}?Mailbox={}&Sort={}&Reverse={}&Page={}{}",
            user.url("Mailbox.wssp"),
            enc(&name),
            sort_key,
            u8::from(rev),
            page,
            if search.is_empty() {
                String::new()
            } else {
                format!("&Search={}", enc(&search))
            }
        )
    };
    let sort_key = match sort {
        Sort::Date => "date",
        Sort::From => "from",
        Sort::Subject => "subject",
        Sort::Size => "size",
    };
    let header_link = |key: &'static str, label: &'static str| {
        let rev = if key == sort_key {
            !reverse
        } else {
            key == "date" || key == "size"
        };
        let arrow = if key == sort_key {
            if reverse {
                " ▼"
            } else {
                " ▲"
            }
        } else {
            ""
        };
        html! { a href=(base(key, rev, 0)) { (label) (arrow) } }
    };
    let action_url = format!("{}?{}", user.url("Mailbox.wssp"), query_string(q));
    let done = match param(q, "Done") {
        "sent" => Some("Message sent."),
        "saved" => Some("Draft saved."),
        _ => None,
    };
    let body = html! {
        h1 { (name) }
        (notice(error.as_deref(), done))
        section.panel {
            form.toolbar method="get" action=(user.url("Mailbox.wssp")) role="search" {
                input type="hidden" name="Mailbox" value=(name);
                input type="hidden" name="Sort" value=(sort_key);
                input type="hidden" name="Reverse" value=(u8::from(reverse));
                input type="search" name="Search" value=(search) placeholder="Search messages" aria-label="Search";
                button.secondary type="submit" { "Search" }
                a href=(format!("{}?Mailbox={}", user.url("Compose.wssp"), enc(&name))) .button { "Compose" }
            }
            form method="post" action=(action_url) {
                (csrf_field(&user.csrf))
                div.toolbar {
                    select name="action" aria-label="Action" {
                        option value="read" { "Mark read" }
                        option value="unread" { "Mark unread" }
                        option value="flag" { "Flag" }
                        option value="unflag" { "Unflag" }
                        option value="delete" { "Delete" }
                        option value="move" { "Move to…" }
                    }
                    select name="target" aria-label="Target mailbox" {
                        option value="" { "—" }
                        @for o in &others { option value=(o) { (o) } }
                    }
                    button type="submit" { "Apply" }
                    span.muted { (total) " messages" }
                }
                table #messages {
                    thead { tr {
                        th.check {}
                        th.flag {}
                        th { (header_link("from", "From")) }
                        th { (header_link("subject", "Subject")) }
                        th.size { (header_link("size", "Size")) }
                        th.date2 { (header_link("date", "Received")) }
                    } }
                    tbody {
                        @for (meta, s) in shown {
                            tr class=@if !meta.flags.contains(Flags::SEEN) { "unseen" } @else { "" } {
                                td.check { input type="checkbox" name="uid" value=(meta.uid) aria-label="Select"; }
                                td.flag {
                                    @if meta.flags.contains(Flags::FLAGGED) { span title="Flagged" { "⚑" } }
                                    @if s.attachments { span.att title="Has attachments" { "+" } }
                                }
                                td { (s.from) }
                                td { a.subject href=(format!("{}?Mailbox={}&UID={}", user.url("Message.wssp"), enc(&name), meta.uid)) {
                                    @if s.subject.is_empty() { span.muted { "(no subject)" } } @else { (s.subject) }
                                } }
                                td.size { (human_size(meta.size)) }
                                td.date2 { (prefs.format_time(s.date.unwrap_or(meta.internal_date))) }
                            }
                        }
                    }
                }
            }
            div.pager {
                @if page_no > 0 { a href=(base(sort_key, reverse, page_no - 1)) rel="prev" { "← Newer" } }
                span.muted { "Page " (page_no + 1) " of " (pages) }
                @if page_no + 1 < pages { a href=(base(sort_key, reverse, page_no + 1)) rel="next" { "Older →" } }
            }
        }
    };
    page(user, &name, "", body)
}

/// The query pairs back as a query string.
fn query_string(q: &[(String, String)]) -> String {
    q.iter()
        .filter(|(k, _)| k != "Done")
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Reads message `uid` of mailbox `name` (blocking).
fn read_message(
    web: &Web,
    user: &User,
    name: &str,
    uid: u32,
    mark_seen: bool,
) -> Result<Vec<u8>, String> {
    let m = open(web, user, name)?;
    let bytes = m.read(uid).map_err(|e| e.to_string())?;
    if mark_seen {
        // RFC 3501 §6.4.5 by analogy: opening a message sets \Seen.
        m.set_flags(&[uid], Flags::SEEN, SetMode::Add)
            .map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

/// The mailbox and UID a message URL names.
fn message_ref(q: &[(String, String)]) -> Option<(String, u32)> {
    let name = match param(q, "Mailbox") {
        "" => INBOX.to_string(),
        n => n.to_string(),
    };
    Some((name, param(q, "UID").parse::<u32>().ok()?))
}

/// `Message.wssp`: headers, body, attachments and actions of one message.
pub async fn message(
    web: &Web,
    user: &User,
    q: &[(String, String)],
    posted: Option<&Posted>,
) -> Response {
    let Some((name, uid)) = message_ref(q) else {
        return error_page(StatusCode::BAD_REQUEST, "No such message.");
    };
    let mut error = None;
    if let Some(p) = posted {
        let action = p.get("action");
        match act(web, user, &name, vec![uid], action, p.get("target")).await {
            // "Close as Unread" (guide.txt:20702-20763): back to the list, or the page would
            // mark it read again.
            Ok(()) if matches!(action, "delete" | "move" | "unread") => {
                return see_other(&format!(
                    "{}?Mailbox={}",
                    user.url("Mailbox.wssp"),
                    enc(&name)
                ));
            }
            Ok(()) => {
                return see_other(&format!("{}?{}", user.url("Message.wssp"), query_string(q)));
            }
            Err(e) => error = Some(e),
        }
    }
    let remote = param(q, "Remote") == "1";
    let (w, u, n) = (web.clone(), clone_user(user), name.clone());
    let loaded = blocking(move || {
        let bytes = read_message(&w, &u, &n, uid, true)?;
        let flags = open(&w, &u, &n)?
            .list()
            .into_iter()
            .find(|m| m.uid == uid)
            .map(|m| m.flags)
            .unwrap_or_default();
        let others = account(&w, &u)?
            .list()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|l| l.storage.is_some() && l.name != n)
            .map(|l| l.name)
            .collect::<Vec<_>>();
        Ok((bytes, flags, others))
    })
    .await;
    let (bytes, flags, others) = match loaded {
        Ok(x) => x,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &e),
    };
    let prefs = prefs::load(web, user).await;
    let Some(msg) = super::mime::parse(&bytes) else {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This message cannot be read.",
        );
    };
    let mref = format!("Mailbox={}&UID={uid}", enc(&name));
    let attachments = super::mime::attachments(&msg);
    // A text/html part is shown (sanitised, framed); a plain text one as text.
    let has_html = msg
        .html_part(0)
        .is_some_and(|p| matches!(p.body, mail_parser::PartType::Html(_)));
    let has_remote = has_html
        && msg.body_html(0).is_some_and(|h| {
            sanitize::sanitize(&h, &sanitize_options(user, &name, uid, false)).remote_blocked
        });
    let text = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let is_draft = flags.contains(Flags::DRAFT);
    let subject = msg.subject().unwrap_or("").to_string();
    let body = html! {
        (notice(error.as_deref(), None))
        section.panel {
            h1 #subject { @if subject.is_empty() { "(no subject)" } @else { (subject) } }
            dl.headers {
                dt { "From" } dd #from { (super::mime::addresses(msg.from()).join(", ")) }
                dt { "To" } dd #to { (super::mime::addresses(msg.to()).join(", ")) }
                @let cc = super::mime::addresses(msg.cc());
                @if !cc.is_empty() { dt { "Cc" } dd { (cc.join(", ")) } }
                @if let Some(d) = msg.date() { dt { "Date" } dd { (prefs.format_time(d.to_timestamp())) } }
            }
            div.toolbar {
                a.button href=(format!("{}?Op=Reply&{mref}", user.url("Compose.wssp"))) { "Reply" }
                a.button href=(format!("{}?Op=ReplyAll&{mref}", user.url("Compose.wssp"))) { "Reply all" }
                a.button href=(format!("{}?Op=Forward&{mref}", user.url("Compose.wssp"))) { "Forward" }
                @if is_draft { a.button href=(format!("{}?Op=Draft&{mref}", user.url("Compose.wssp"))) { "Edit draft" } }
                form.inline method="post" action=(user.url("Contacts.wssp")) {
                    (csrf_field(&user.csrf))
                    input type="hidden" name="action" value="add";
                    input type="hidden" name="email" value=(msg.from().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or(""));
                    input type="hidden" name="name" value=(msg.from().and_then(|a| a.first()).and_then(|a| a.name()).unwrap_or(""));
                    button.secondary type="submit" { "Take address" }
                }
            }
            form.toolbar method="post" action=(format!("{}?{mref}", user.url("Message.wssp"))) {
                (csrf_field(&user.csrf))
                select name="action" aria-label="Action" {
                    option value="delete" { "Delete" }
                    option value="move" { "Move to…" }
                    @if flags.contains(Flags::FLAGGED) { option value="unflag" { "Unflag" } } @else { option value="flag" { "Flag" } }
                    option value="unread" { "Mark unread" }
                }
                select name="target" aria-label="Target mailbox" {
                    option value="" { "—" }
                    @for o in &others { option value=(o) { (o) } }
                }
                button type="submit" { "Apply" }
                a href=(format!("{}?Mailbox={}", user.url("Mailbox.wssp"), enc(&name))) { "Back to " (name) }
            }
        }
        section.panel {
            @if has_html {
                @if has_remote && !remote {
                    p.notice #remote-notice {
                        "Remote content in this message is blocked. "
                        a href=(format!("{}?{mref}&Remote=1", user.url("Message.wssp"))) { "Show remote content" }
                    }
                }
                iframe.body #htmlbody title="Message" sandbox="allow-popups allow-popups-to-escape-sandbox"
                    src=(format!("{}?{mref}{}", user.url("MessageBody.wssp"), if remote { "&Remote=1" } else { "" })) {}
            } @else {
                pre.body #textbody { (text) }
            }
        }
        @if !attachments.is_empty() {
            section.panel {
                h2 { "Attachments" }
                ul.attachments #attachments {
                    @for a in &attachments {
                        li { a href=(format!("{}?{mref}&Part={}", user.url("Part.wssp"), a.part)) download=(a.name) {
                            (a.name) " " span.muted { "(" (human_size(a.size as u64)) ", " (a.mime) ")" }
                        } }
                    }
                }
            }
        }
    };
    page(user, &subject, "", body)
}

/// `MessageBody.wssp`: the message's HTML, sanitised, for the sandboxed frame of the message
/// page. `cid:` references become `Part.wssp` URLs of this message.
pub async fn message_body(web: &Web, user: &User, q: &[(String, String)]) -> Response {
    let Some((name, uid)) = message_ref(q) else {
        return error_page(StatusCode::BAD_REQUEST, "No such message.");
    };
    let remote = param(q, "Remote") == "1";
    let (w, u, n) = (web.clone(), clone_user(user), name.clone());
    let bytes = match blocking(move || read_message(&w, &u, &n, uid, false)).await {
        Ok(b) => b,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &e),
    };
    let Some(msg) = super::mime::parse(&bytes) else {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This message cannot be read.",
        );
    };
    let html_src = msg.body_html(0).map(|h| h.into_owned()).unwrap_or_default();
    let opts = sanitize_options(user, &name, uid, remote);
    let rendered = PreEscaped(sanitize::sanitize_html(&html_src, &opts));
    let doc = html! {
        (maud::DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                meta name="referrer" content="no-referrer";
                base target="_blank";
            }
            body { (rendered) }
        }
    };
    respond(
        StatusCode::OK,
        doc,
        Csp::MessageBody(sanitize::content_security_policy(&opts)),
    )
}

/// The sanitiser's options for a message: remote images as asked, `cid:` references turned
/// into `Part.wssp` URLs of this message.
fn sanitize_options(user: &User, name: &str, uid: u32, remote: bool) -> SanitizeOptions {
    SanitizeOptions {
        allow_remote: remote,
        cid_url: Some(format!(
            "{}?Mailbox={}&UID={uid}&Inline=1&CID=",
            user.url("Part.wssp"),
            enc(name)
        )),
    }
}

/// `Part.wssp`: one part of a message, decoded: a download (`Content-Disposition: attachment`,
/// cleaned name), or with `Inline=1` an image shown in place (other types still download).
pub async fn part(web: &Web, user: &User, q: &[(String, String)]) -> Response {
    let Some((name, uid)) = message_ref(q) else {
        return error_page(StatusCode::BAD_REQUEST, "No such message.");
    };
    let inline = param(q, "Inline") == "1";
    let cid = param(q, "CID").to_string();
    let (w, u, n) = (web.clone(), clone_user(user), name.clone());
    let bytes = match blocking(move || read_message(&w, &u, &n, uid, false)).await {
        Ok(b) => b,
        Err(e) => return error_page(StatusCode::NOT_FOUND, &e),
    };
    let Some(msg) = super::mime::parse(&bytes) else {
        return error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This message cannot be read.",
        );
    };
    // A part by number, or by Content-ID for `cid:` references (RFC 2392).
    let part_no = if cid.is_empty() {
        param(q, "Part").parse::<usize>().ok()
    } else {
        super::mime::content_ids(&msg)
            .into_iter()
            .find(|(c, _)| *c == cid)
            .map(|(_, p)| p as usize)
    };
    let Some((part_no, p)) = part_no.and_then(|n| Some((n, msg.parts.get(n)?))) else {
        return error_page(StatusCode::NOT_FOUND, "No such part.");
    };
    if matches!(p.body, mail_parser::PartType::Multipart(_)) {
        return error_page(StatusCode::NOT_FOUND, "No such part.");
    }
    let mime = super::mime::mime_type(p);
    use mail_parser::MimeHeaders;
    let filename = p
        .attachment_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("part{part_no}"));
    let data = match &p.body {
        mail_parser::PartType::Message(_) => {
            bytes[p.offset_body as usize..(p.offset_end as usize).min(bytes.len())].to_vec()
        }
        _ => p.contents().to_vec(),
    };
    let show_inline = inline && super::mime::is_inline_image(&mime);
    let content_type = if show_inline {
        mime.clone()
    } else {
        "application/octet-stream".to_string()
    };
    let mut r = respond(StatusCode::OK, data, Csp::Page);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let disposition = super::mime::content_disposition(
        if show_inline { "inline" } else { "attachment" },
        &filename,
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
