//! The window's `#[tauri::command]`s: each builds one CLI line (docs/cli.md), sends it over the
//! shared connection off the event loop (`spawn_blocking`), and returns the data as JSON or a
//! [`CallError`] the window shows as it is (service down, wrong password, not available on this
//! server, or the server's own message).
//!
//! Security: arguments from the window are quoted with `cli::client::quote` or serialized with
//! the data-format writer, so no argument can add a second command or keyword to a line.

use std::sync::Arc;

use gatehouse::cli::client::quote;
use gatehouse::format::{self, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tauri::{ipc::Invoke, Runtime, State};

use crate::conn::{from_json, to_json, CallError, Secret, Target};
use crate::Shared;

type Res<T> = Result<T, CallError>;

/// Runs `f` on a blocking thread with the shared state.
async fn blocking<T: Send + 'static>(
    s: State<'_, Arc<Shared>>,
    f: impl FnOnce(&Shared) -> Res<T> + Send + 'static,
) -> Res<T> {
    let shared = Arc::clone(&s);
    tauri::async_runtime::spawn_blocking(move || f(&shared))
        .await
        .map_err(|e| CallError::Failed(format!("internal error: {e}")))?
}

/// Sends one line; the data as JSON (`null` for none).
async fn call(s: State<'_, Arc<Shared>>, line: String) -> Res<Json> {
    blocking(s, move |sh| {
        Ok(sh.conn.call(&line)?.as_ref().map_or(Json::Null, to_json))
    })
    .await
}

/// A data-format value as CLI argument text.
fn arg(v: &Value) -> String {
    String::from_utf8_lossy(&format::to_bytes(v)).into_owned()
}

/// `name@domain`, the way CLI commands name an object in a domain.
fn qualified(name: &str, domain: &str) -> String {
    quote(&format!("{name}@{domain}"))
}

/// Where the window is connected, for the connect dialog and the status bar.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    server: String,
    user: String,
    has_password: bool,
    from_args: bool,
    can_save: bool,
}

/// The current connection target.
#[tauri::command]
pub fn connection_info(s: State<'_, Arc<Shared>>) -> ConnectionInfo {
    let t = s.conn.target();
    ConnectionInfo {
        server: t.server,
        user: t.user,
        has_password: t.password.is_some(),
        from_args: s.from_args,
        can_save: s.saved.is_some(),
    }
}

/// The connect dialog: switches to this server and login, checks it, and saves it when asked.
#[tauri::command]
pub async fn connect(
    s: State<'_, Arc<Shared>>,
    server: String,
    user: String,
    password: String,
    remember: bool,
) -> Res<()> {
    blocking(s, move |sh| {
        let server = server.trim();
        let user = user.trim();
        if server.is_empty() || user.is_empty() {
            return Err(CallError::Failed(
                "Enter a server and an account name".into(),
            ));
        }
        let t = Target {
            server: server.to_string(),
            user: user.to_string(),
            password: Some(Secret(password.into_bytes())),
        };
        sh.conn.set_target(t.clone());
        sh.conn.connect()?;
        if remember {
            if let Some(saved) = &sh.saved {
                saved.store(&t).map_err(CallError::Failed)?;
            }
        }
        Ok(())
    })
    .await
}

/// `GetServerStatus`.
#[tauri::command]
pub async fn server_status(s: State<'_, Arc<Shared>>) -> Res<Json> {
    call(s, "GetServerStatus".into()).await
}

/// The last 20 records at level 3 (problems) or more important today, newest last.
#[tauri::command]
pub async fn recent_problems(s: State<'_, Arc<Shared>>) -> Res<Json> {
    blocking(s, |sh| {
        // ReadLog returns the oldest first: page through today's problems and keep the tail.
        let mut tail: Vec<Json> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let line = match &after {
                Some(id) => format!("ReadLog LEVEL 3 LIMIT 1000 AFTER {}", quote(id)),
                None => "ReadLog LEVEL 3 LIMIT 1000".to_string(),
            };
            let page = match sh.conn.call(&line)? {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            let full = page.len() == 1000;
            after = page.last().and_then(|r| r.get_text("Id"));
            tail.extend(page.iter().map(to_json));
            let keep = tail.len().saturating_sub(20);
            tail.drain(..keep);
            if !full || after.is_none() {
                return Ok(Json::Array(tail));
            }
        }
    })
    .await
}

/// `ListDomains`.
#[tauri::command]
pub async fn list_domains(s: State<'_, Arc<Shared>>) -> Res<Json> {
    call(s, "ListDomains".into()).await
}

/// `CreateDomain name`.
#[tauri::command]
pub async fn create_domain(s: State<'_, Arc<Shared>>, name: String) -> Res<Json> {
    call(s, format!("CreateDomain {}", quote(name.trim()))).await
}

/// `RenameDomain old into new`.
#[tauri::command]
pub async fn rename_domain(s: State<'_, Arc<Shared>>, old: String, new: String) -> Res<Json> {
    call(
        s,
        format!("RenameDomain {} into {}", quote(&old), quote(new.trim())),
    )
    .await
}

/// `DeleteDomain name [force]`.
#[tauri::command]
pub async fn delete_domain(s: State<'_, Arc<Shared>>, name: String, force: bool) -> Res<Json> {
    let force = if force { " force" } else { "" };
    call(s, format!("DeleteDomain {}{force}", quote(&name))).await
}

/// `GetDomainSettings name` and `GetDomainEffectiveSettings name`: `{settings, effective}`.
#[tauri::command]
pub async fn domain_settings(s: State<'_, Arc<Shared>>, name: String) -> Res<Json> {
    blocking(s, move |sh| {
        let d = quote(&name);
        let own = sh.conn.call(&format!("GetDomainSettings {d}"))?;
        let eff = sh.conn.call(&format!("GetDomainEffectiveSettings {d}"))?;
        Ok(serde_json::json!({
            "settings": own.as_ref().map_or(Json::Null, to_json),
            "effective": eff.as_ref().map_or(Json::Null, to_json),
        }))
    })
    .await
}

/// `UpdateDomainSettings name {...}` (a value `default` removes a setting).
#[tauri::command]
pub async fn update_domain_settings(
    s: State<'_, Arc<Shared>>,
    name: String,
    settings: Json,
) -> Res<Json> {
    let line = format!(
        "UpdateDomainSettings {} {}",
        quote(&name),
        arg(&from_json(&settings))
    );
    call(s, line).await
}

/// `GetDomainAliases name`.
#[tauri::command]
pub async fn domain_aliases(s: State<'_, Arc<Shared>>, name: String) -> Res<Json> {
    call(s, format!("GetDomainAliases {}", quote(&name))).await
}

/// `SetDomainAliases name (aliases)`.
#[tauri::command]
pub async fn set_domain_aliases(
    s: State<'_, Arc<Shared>>,
    name: String,
    aliases: Vec<String>,
) -> Res<Json> {
    let list = Value::Array(aliases.iter().map(|a| Value::str(a.trim())).collect());
    call(
        s,
        format!("SetDomainAliases {} {}", quote(&name), arg(&list)),
    )
    .await
}

/// `ListAccounts domain`.
#[tauri::command]
pub async fn list_accounts(s: State<'_, Arc<Shared>>, domain: String) -> Res<Json> {
    call(s, format!("ListAccounts {}", quote(&domain))).await
}

/// `CreateAccount name@domain type`, then `SetAccountPassword` when a password is given.
#[tauri::command]
pub async fn create_account(
    s: State<'_, Arc<Shared>>,
    domain: String,
    name: String,
    kind: String,
    password: String,
) -> Res<Json> {
    blocking(s, move |sh| {
        let kind = match kind.as_str() {
            "TextMailbox" | "MailDirMailbox" | "MultiMailbox" => kind.as_str(),
            _ => "MultiMailbox",
        };
        let who = qualified(name.trim(), &domain);
        sh.conn.call(&format!("CreateAccount {who} {kind}"))?;
        if !password.is_empty() {
            sh.conn
                .call(&format!("SetAccountPassword {who} To {}", quote(&password)))
                .map_err(|e| {
                    CallError::Failed(format!(
                        "The account was created, but its password was not set: {e}"
                    ))
                })?;
        }
        Ok(Json::Null)
    })
    .await
}

/// `SetAccountPassword name@domain To password`.
#[tauri::command]
pub async fn set_account_password(
    s: State<'_, Arc<Shared>>,
    domain: String,
    name: String,
    password: String,
) -> Res<Json> {
    let line = format!(
        "SetAccountPassword {} To {}",
        qualified(&name, &domain),
        quote(&password)
    );
    call(s, line).await
}

/// `RenameAccount name@domain into new@domain`.
#[tauri::command]
pub async fn rename_account(
    s: State<'_, Arc<Shared>>,
    domain: String,
    old: String,
    new: String,
) -> Res<Json> {
    let line = format!(
        "RenameAccount {} into {}",
        qualified(&old, &domain),
        qualified(new.trim(), &domain)
    );
    call(s, line).await
}

/// `DeleteAccount name@domain`.
#[tauri::command]
pub async fn delete_account(s: State<'_, Arc<Shared>>, domain: String, name: String) -> Res<Json> {
    call(s, format!("DeleteAccount {}", qualified(&name, &domain))).await
}

/// `GetAccountSettings` and `GetAccountEffectiveSettings`: `{settings, effective}`.
#[tauri::command]
pub async fn account_settings(
    s: State<'_, Arc<Shared>>,
    domain: String,
    name: String,
) -> Res<Json> {
    blocking(s, move |sh| {
        let who = qualified(&name, &domain);
        let own = sh.conn.call(&format!("GetAccountSettings {who}"))?;
        let eff = sh
            .conn
            .call(&format!("GetAccountEffectiveSettings {who}"))?;
        Ok(serde_json::json!({
            "settings": own.as_ref().map_or(Json::Null, to_json),
            "effective": eff.as_ref().map_or(Json::Null, to_json),
        }))
    })
    .await
}

/// `UpdateAccountSettings name@domain {...}`.
#[tauri::command]
pub async fn update_account_settings(
    s: State<'_, Arc<Shared>>,
    domain: String,
    name: String,
    settings: Json,
) -> Res<Json> {
    let line = format!(
        "UpdateAccountSettings {} {}",
        qualified(&name, &domain),
        arg(&from_json(&settings))
    );
    call(s, line).await
}

/// `GetAccountAliases name@domain`.
#[tauri::command]
pub async fn account_aliases(s: State<'_, Arc<Shared>>, domain: String, name: String) -> Res<Json> {
    call(
        s,
        format!("GetAccountAliases {}", qualified(&name, &domain)),
    )
    .await
}

/// `SetAccountAliases name@domain (aliases)`.
#[tauri::command]
pub async fn set_account_aliases(
    s: State<'_, Arc<Shared>>,
    domain: String,
    name: String,
    aliases: Vec<String>,
) -> Res<Json> {
    let list = Value::Array(aliases.iter().map(|a| Value::str(a.trim())).collect());
    let line = format!(
        "SetAccountAliases {} {}",
        qualified(&name, &domain),
        arg(&list)
    );
    call(s, line).await
}

/// `GetAccountRPOP name@domain` (the RPOP module; "not available" without it).
#[tauri::command]
pub async fn account_rpop(s: State<'_, Arc<Shared>>, domain: String, name: String) -> Res<Json> {
    call(s, format!("GetAccountRPOP {}", qualified(&name, &domain))).await
}

/// `SetAccountRPOP name@domain {...}`.
#[tauri::command]
pub async fn set_account_rpop(
    s: State<'_, Arc<Shared>>,
    domain: String,
    name: String,
    records: Json,
) -> Res<Json> {
    let line = format!(
        "SetAccountRPOP {} {}",
        qualified(&name, &domain),
        arg(&from_json(&records))
    );
    call(s, line).await
}

/// `GetDialupSchedule`.
#[tauri::command]
pub async fn get_schedule(s: State<'_, Arc<Shared>>) -> Res<Json> {
    call(s, "GetDialupSchedule".into()).await
}

/// One row of the TCP Activity Schedule as the window edits it.
#[derive(Debug, Deserialize)]
pub struct ScheduleRow {
    #[serde(rename = "Days")]
    days: String,
    #[serde(rename = "When")]
    when: String,
    #[serde(rename = "Pause")]
    pause: String,
}

/// `SetDialupSchedule (...)`; the server's "element N: ..." error names the faulty row.
#[tauri::command]
pub async fn set_schedule(s: State<'_, Arc<Shared>>, rows: Vec<ScheduleRow>) -> Res<Json> {
    let list = Value::Array(
        rows.iter()
            .map(|r| {
                format::dict([
                    ("Days", Value::str(r.days.trim())),
                    ("When", Value::str(r.when.trim())),
                    ("Pause", Value::str(r.pause.trim())),
                ])
            })
            .collect(),
    );
    call(s, format!("SetDialupSchedule {}", arg(&list))).await
}

/// `WakeUpNow` (the dial-up module; "not available" without it).
#[tauri::command]
pub async fn wake_up_now(s: State<'_, Arc<Shared>>) -> Res<Json> {
    call(s, "WakeUpNow".into()).await
}

/// The filters of the Logs view.
#[derive(Debug, Default, Deserialize)]
pub struct LogFilter {
    day: Option<String>,
    level: Option<u8>,
    tag: Option<String>,
    text: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// The `ReadLog` line for a filter (empty filters left out).
pub fn read_log_line(f: &LogFilter) -> String {
    let mut line = "ReadLog".to_string();
    let mut add = |kw: &str, v: &str| {
        if !v.trim().is_empty() {
            line.push_str(&format!(" {kw} {}", quote(v.trim())));
        }
    };
    add("DAY", f.day.as_deref().unwrap_or_default());
    add("LEVEL", &f.level.map(|l| l.to_string()).unwrap_or_default());
    add("TAG", f.tag.as_deref().unwrap_or_default());
    add("TEXT", f.text.as_deref().unwrap_or_default());
    add("AFTER", f.after.as_deref().unwrap_or_default());
    add("LIMIT", &f.limit.map(|l| l.to_string()).unwrap_or_default());
    line
}

/// `ReadLog` with the view's filters.
#[tauri::command]
pub async fn read_log(s: State<'_, Arc<Shared>>, filter: LogFilter) -> Res<Json> {
    call(s, read_log_line(&filter)).await
}

/// `ListQueue` (the queue module; "not available" without it).
#[tauri::command]
pub async fn list_queue(s: State<'_, Arc<Shared>>) -> Res<Json> {
    call(s, "ListQueue".into()).await
}

/// `ReleaseQueue name`: deliver a held queue now.
#[tauri::command]
pub async fn release_queue(s: State<'_, Arc<Shared>>, name: String) -> Res<Json> {
    call(s, format!("ReleaseQueue {}", quote(&name))).await
}

/// `DeleteQueuedMessage id`.
#[tauri::command]
pub async fn delete_queued_message(s: State<'_, Arc<Shared>>, id: String) -> Res<Json> {
    call(s, format!("DeleteQueuedMessage {}", quote(&id))).await
}

/// `RetryQueue [id]`: retry one message, or every waiting one.
#[tauri::command]
pub async fn retry_queue(s: State<'_, Arc<Shared>>, id: Option<String>) -> Res<Json> {
    let line = match id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => format!("RetryQueue {}", quote(id)),
        _ => "RetryQueue".to_string(),
    };
    call(s, line).await
}

/// The invoke handler with every command above.
pub fn handler<R: Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        connection_info,
        connect,
        server_status,
        recent_problems,
        list_domains,
        create_domain,
        rename_domain,
        delete_domain,
        domain_settings,
        update_domain_settings,
        domain_aliases,
        set_domain_aliases,
        list_accounts,
        create_account,
        set_account_password,
        rename_account,
        delete_account,
        account_settings,
        update_account_settings,
        account_aliases,
        set_account_aliases,
        account_rpop,
        set_account_rpop,
        get_schedule,
        set_schedule,
        wake_up_now,
        read_log,
        list_queue,
        release_queue,
        delete_queued_message,
        retry_queue,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Conn;
    use crate::tray::ServiceControl;
    use serde_json::json;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Mutex;
    use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime};
    use tauri::webview::InvokeRequest;
    use tauri::{WebviewUrl, WebviewWindow, WebviewWindowBuilder};

    type Lines = Arc<Mutex<Vec<String>>>;

    /// A fake PWD server on loopback: logs in anyone, records every command line and answers
    /// from `reply` (the reply lines without CRLF).
    fn fake_server(reply: fn(&str) -> Vec<String>) -> (String, Lines) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let lines: Lines = Arc::default();
        let seen = Arc::clone(&lines);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().expect("clone");
                    let _ = out.write_all(b"200 fake PWD ready\r\n");
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let answer = if line.starts_with("USER ") {
                            vec!["300 send the PASS".to_string()]
                        } else if line.starts_with("PASS ") {
                            vec!["200 login OK".to_string()]
                        } else {
                            seen.lock().expect("lines").push(line.clone());
                            reply(&line)
                        };
                        for a in answer {
                            let _ = out.write_all(format!("{a}\r\n").as_bytes());
                        }
                    }
                });
            }
        });
        (addr, lines)
    }

    fn app(server: String) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
        let shared = Shared::new(
            Conn::new(Target {
                server,
                user: "postmaster".into(),
                password: Some(Secret(b"pw".to_vec())),
            }),
            None,
            ServiceControl::Unavailable("test".into()),
            Box::new(|_: &[&str]| Ok(())),
        );
        let app = mock_builder()
            .manage(Arc::new(shared))
            .invoke_handler(handler())
            .build(mock_context(noop_assets()))
            .expect("mock app");
        let webview = WebviewWindowBuilder::new(&app, "main", WebviewUrl::default())
            .build()
            .expect("webview");
        (app, webview)
    }

    fn invoke(w: &WebviewWindow<MockRuntime>, cmd: &str, body: Json) -> Result<Json, Json> {
        let req = InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            // On Linux the mock treats the http://tauri.localhost form as remote.
            url: "tauri://localhost".parse().expect("url"),
            body: tauri::ipc::InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        };
        get_ipc_response(w, req).map(|b| b.deserialize::<Json>().expect("json"))
    }

    fn replies(line: &str) -> Vec<String> {
        match line.split(' ').next().unwrap_or_default() {
            "ListDomains" => vec!["200 data follow".into(), "(a.test, \"b test\")".into()],
            "SetDialupSchedule" => vec!["501 element 1: When must be HH:MM-HH:MM".into()],
            "CreateDomain" => vec!["200 OK".into()],
            _ => vec!["501 Unknown command".into()],
        }
    }

    #[test]
    fn commands_send_one_quoted_line_and_classify_answers() {
        let (addr, lines) = fake_server(replies);
        let (_app, w) = app(addr);
        assert_eq!(
            invoke(&w, "list_domains", json!({})),
            Ok(json!(["a.test", "b test"]))
        );
        assert_eq!(
            invoke(&w, "create_domain", json!({"name": " new domain "})),
            Ok(Json::Null)
        );
        assert_eq!(
            invoke(&w, "wake_up_now", json!({})),
            Err(
                json!({"kind": "unavailable", "message": "WakeUpNow is not available on this server"})
            )
        );
        let rows = json!({"rows": [{"Days": "Mon-Fri", "When": "25:00-26:00", "Pause": "600"}]});
        assert_eq!(
            invoke(&w, "set_schedule", rows),
            Err(json!({"kind": "failed", "message": "element 1: When must be HH:MM-HH:MM"}))
        );
        let info = invoke(&w, "connection_info", json!({})).expect("info");
        assert_eq!(
            (info["user"].as_str(), info["hasPassword"].as_bool()),
            (Some("postmaster"), Some(true))
        );
        assert_eq!(
            *lines.lock().expect("lines"),
            vec![
                "ListDomains".to_string(),
                "CreateDomain \"new domain\"".to_string(),
                "WakeUpNow".to_string(),
                "SetDialupSchedule ({Days=\"Mon-Fri\";When=\"25:00-26:00\";Pause=600;})"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_down_service_answers_down_over_ipc() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let (_app, w) = app(format!("127.0.0.1:{port}"));
        let err = invoke(&w, "server_status", json!({})).expect_err("down");
        assert_eq!(err["kind"], "down");
    }

    #[test]
    fn read_log_lines_quote_and_skip_empty_filters() {
        assert_eq!(read_log_line(&LogFilter::default()), "ReadLog");
        let f = LogFilter {
            day: Some("2026-11-26".into()),
            level: Some(3),
            tag: Some(" ".into()),
            text: Some("two words".into()),
            after: Some("2026-11-26:120".into()),
            limit: Some(500),
        };
        assert_eq!(
            read_log_line(&f),
            "ReadLog DAY 2026-11-26 LEVEL 3 TEXT \"two words\" AFTER 2026-11-26:120 LIMIT 500"
        );
    }

    #[test]
    fn names_are_qualified_and_quoted() {
        assert_eq!(qualified("bob", "example.test"), "bob@example.test");
        assert_eq!(qualified("a b", "x"), "\"a b@x\"");
    }
}
