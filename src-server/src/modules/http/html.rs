//! WebAdmin's page frame, style sheet and the widgets pages share (settings tables, forms,
//! messages). Pages are server-rendered with maud (escaped by default) and work without
//! JavaScript; the layout narrows to one column on a phone.

use maud::{html, Markup, DOCTYPE};

use crate::cli::Session;
use crate::format::{self, Dict, Value};

/// The style sheet, served at `/static/style.css`.
pub const CSS: &str = r#"
:root { --bg:#f6f7f9; --panel:#fff; --text:#1d2330; --muted:#5b6475; --line:#dde1e8; --accent:#2456c9;
  --accent-text:#fff; --bad:#b3261e; --bad-bg:#fdecea; --ok:#1e6b34; --ok-bg:#e6f4ea; color-scheme: light dark; }
@media (prefers-color-scheme: dark) { :root { --bg:#15181e; --panel:#1d2129; --text:#e3e6ec; --muted:#9aa3b2;
  --line:#2e3440; --accent:#6b9bff; --accent-text:#0b0f18; --bad:#ffb4ab; --bad-bg:#3b1d1b; --ok:#a6e3b5; --ok-bg:#16301f; } }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--text); }
header { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1.5rem; padding:.6rem 1.2rem; background:var(--panel); border-bottom:1px solid var(--line); }
header .brand { font-weight:700; letter-spacing:.02em; }
header nav { display:flex; flex-wrap:wrap; gap:.2rem; flex:1; }
header nav a { padding:.3rem .6rem; border-radius:6px; color:var(--text); text-decoration:none; }
header nav a.on, header nav a:hover { background:var(--bg); }
header .who { color:var(--muted); font-size:.9em; display:flex; gap:.6rem; align-items:center; }
main { max-width:1100px; margin:1.2rem auto; padding:0 1rem; }
h1 { font-size:1.4rem; margin:.2rem 0 1rem; }
h2 { font-size:1.1rem; margin:1.4rem 0 .6rem; }
section.panel { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:1rem 1.2rem; margin-bottom:1rem; overflow-x:auto; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:.4rem .5rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:.9em; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.9em; word-break:break-all; }
input[type=text], input[type=password], input[type=search], select, textarea { font:inherit; color:inherit; background:var(--bg);
  border:1px solid var(--line); border-radius:6px; padding:.35rem .5rem; width:100%; }
td select { min-width:4.5rem; }
textarea { min-height:8rem; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.9em; }
button, .button { font:inherit; border:1px solid var(--accent); background:var(--accent); color:var(--accent-text); border-radius:6px;
  padding:.35rem .9rem; cursor:pointer; text-decoration:none; display:inline-block; }
button.secondary { background:transparent; color:var(--accent); }
button.danger { background:var(--bad); border-color:var(--bad); color:var(--panel); }
form.inline { display:flex; flex-wrap:wrap; gap:.5rem; align-items:end; }
form.inline label { display:flex; flex-direction:column; gap:.2rem; font-size:.9em; color:var(--muted); }
.msg { padding:.6rem .9rem; border-radius:8px; margin-bottom:1rem; }
.msg.error { background:var(--bad-bg); color:var(--bad); }
.msg.ok { background:var(--ok-bg); color:var(--ok); }
.muted { color:var(--muted); }
.field-error { color:var(--bad); font-size:.9em; margin-top:.3rem; }
.mt { margin-top:.8rem; }
.pager { display:flex; gap:.5rem; align-items:center; margin-top:.8rem; }
.login { max-width:360px; margin:12vh auto; }
.login form { display:flex; flex-direction:column; gap:.7rem; }
.grid { display:grid; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); gap:1rem; }
.stat { font-size:1.6rem; font-weight:650; }
.log td { white-space:pre-wrap; }
.lvl1, .lvl2 { color:var(--bad); }
@media (max-width:640px) { header { padding:.5rem .7rem; } main { padding:0 .5rem; } th.opt, td.opt { display:none; } }
"#;

/// One entry of the navigation bar.
pub struct Nav {
    /// Link target.
    pub href: String,
    /// Label.
    pub label: &'static str,
}

/// The navigation a login may use, by its rights (the CLI still checks every command).
pub fn navigation(s: &Session) -> Vec<Nav> {
    let mut nav = Vec::new();
    let link = |href: &str, label| Nav {
        href: href.to_string(),
        label,
    };
    if s.server("Monitor") || s.server("Settings") || s.all_domains() {
        nav.push(link("/Status", "Status"));
    }
    if s.all_domains() {
        nav.push(link("/Domains", "Domains"));
    } else if s.domain_admin() {
        nav.push(Nav {
            href: format!("/Domain/{}/Accounts", s.domain),
            label: "Accounts",
        });
        nav.push(Nav {
            href: format!("/Domain/{}", s.domain),
            label: "Domain",
        });
    }
    if s.server("Settings") {
        nav.push(link("/Modules", "Listeners & Modules"));
        nav.push(link("/Router", "Router"));
        nav.push(link("/Protection", "Protection"));
        nav.push(link("/Schedule", "Schedule"));
    }
    if s.server("Monitor") {
        nav.push(link("/Queue", "Queue"));
        nav.push(link("/Logs", "Logs"));
    }
    nav
}

/// The whole page around `body`.
pub fn page(title: &str, admin: Option<(&Session, &str)>, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Gatehouse WebAdmin" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    span.brand { "Gatehouse" }
                    @if let Some((s, csrf)) = admin {
                        nav {
                            @for n in navigation(s) {
                                a href=(n.href) class=@if n.href == active { "on" } { (n.label) }
                            }
                        }
                        span.who {
                            (s.user) "@" (s.domain)
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(csrf);
                                button.secondary type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An error or success message.
pub fn message(error: Option<&str>, ok: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { div.msg.error role="alert" { (e) } }
        @if let Some(o) = ok { div.msg.ok role="status" { (o) } }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A value as an administrator edits it: strings as they are, arrays and dictionaries in the
/// data format.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
        other => String::from_utf8_lossy(&format::to_bytes(other)).into_owned(),
    }
}

/// Reads back what [`value_text`] showed: text starting with `(` or `{` is the data format.
pub fn text_value(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if t.starts_with('(') || t.starts_with('{') {
        format::parse(t.as_bytes()).map_err(|e| e.to_string())
    } else {
        Ok(Value::str(text))
    }
}

/// The settings that hold a password: their values are never put into a page. (`UseAppPassword`
/// and the like are switches, not secrets.)
const SECRETS: [&str; 3] = ["Password", "RelayPassword", "ATRNPassword"];

/// Whether a setting holds a password ([`SECRETS`]).
pub fn is_secret(key: &str) -> bool {
    SECRETS.iter().any(|s| s.eq_ignore_ascii_case(key))
}

/// A settings table: each setting with its effective value and this level's explicit value,
/// editable (a password only written, see [`is_secret`]). Posting sends `k:<key>` fields (empty = `default`) and the original `o:<key>`;
/// `extra` (hidden fields, other inputs) goes in the same form, before the table.
pub fn settings_form(
    action: &str,
    csrf: &str,
    extra: Markup,
    explicit: &Dict,
    effective: &Dict,
) -> Markup {
    let mut keys: Vec<&Vec<u8>> = effective.keys().collect();
    for k in explicit.keys() {
        if !effective.contains_key(k) {
            keys.push(k);
        }
    }
    html! {
        form method="post" action=(action) {
            (csrf_field(csrf))
            (extra)
            table {
                thead { tr { th { "Setting" } th.opt { "Effective (default)" } th { "Set here" } } }
                tbody {
                    @for k in keys {
                        @let key = String::from_utf8_lossy(k).into_owned();
                        @let own = explicit.get(k).map(value_text).unwrap_or_default();
                        @let eff = effective.get(k).map(value_text).unwrap_or_default();
                        tr {
                            td.mono { (key) }
                            @if is_secret(&key) {
                                // Write-only: an empty field (the original "") changes nothing.
                                td.opt.muted { @if !eff.is_empty() { "(stored)" } }
                                td {
                                    input type="password" name={"k:" (key)} value="" autocomplete="new-password"
                                        placeholder="unchanged (default clears)" aria-label=(key);
                                    input type="hidden" name={"o:" (key)} value="";
                                }
                            } @else {
                                td.mono.opt { (eff) }
                                td {
                                    input type="text" name={"k:" (key)} value=(own) placeholder="default" aria-label=(key);
                                    input type="hidden" name={"o:" (key)} value=(own);
                                }
                            }
                        }
                    }
                    tr {
                        td { input type="text" name="newkey" placeholder="new setting" aria-label="new setting name"; }
                        td.opt {}
                        td { input type="text" name="newvalue" placeholder="value" aria-label="new setting value"; }
                    }
                }
            }
            p { button type="submit" { "Update" } " " span.muted { "Empty means default." } }
        }
    }
}

/// The changes a [`settings_form`] post asks for, as an Update dictionary (`default` removes).
pub fn settings_changes(form: &[(String, String)]) -> Result<Dict, String> {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut changes = Dict::new();
    for (name, value) in form {
        let Some(key) = name.strip_prefix("k:") else {
            continue;
        };
        if get(&format!("o:{key}")) == Some(value.as_str()) {
            continue;
        }
        let v = if value.trim().is_empty() {
            Value::str("default")
        } else {
            text_value(value).map_err(|e| format!("{key}: {e}"))?
        };
        changes.insert(key.as_bytes().to_vec(), v);
    }
    if let (Some(k), Some(v)) = (get("newkey"), get("newvalue")) {
        if !k.trim().is_empty() {
            let v = text_value(v).map_err(|e| format!("{k}: {e}"))?;
            changes.insert(k.trim().as_bytes().to_vec(), v);
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&str, &str)]) -> Dict {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Value::str(*v)))
            .collect()
    }

    #[test]
    fn a_password_is_never_shown_and_an_empty_field_keeps_it() {
        let explicit = dict(&[("ATRNPassword", "s3cret"), ("UseAppPassword", "Yes")]);
        let page = settings_form("/m", "t", html! {}, &explicit, &explicit).into_string();
        assert!(!page.contains("s3cret"), "{page}");
        assert!(page.contains(r#"value="Yes""#), "a switch is not a secret");
        // What the browser posts back untouched changes nothing.
        let form = vec![
            ("k:ATRNPassword".to_string(), String::new()),
            ("o:ATRNPassword".to_string(), String::new()),
            ("k:UseAppPassword".to_string(), "Yes".to_string()),
            ("o:UseAppPassword".to_string(), "Yes".to_string()),
        ];
        assert_eq!(settings_changes(&form), Ok(Dict::new()));
        let typed = vec![
            ("k:ATRNPassword".to_string(), "new".to_string()),
            ("o:ATRNPassword".to_string(), String::new()),
        ];
        assert_eq!(
            settings_changes(&typed),
            Ok(dict(&[("ATRNPassword", "new")]))
        );
    }
}
