//! `gatehouse`: the command-line client. Sends CLI commands to a Gatehouse server over the PWD
//! channel (port 106), one-shot or from an interactive prompt.
//!
//! ```text
//! gatehouse [--server HOST:PORT] [--user NAME] [--password-file FILE] [--json] [COMMAND ARGS...]
//! ```
//! The password comes from `--password-file` (its first line) or the `GATEHOUSE_PASSWORD`
//! environment variable. Exit status: 0 ok, 1 the command failed (server text on stderr),
//! 2 connection or login error.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use gatehouse::cli::client::{join_args, Client, ClientError};
use gatehouse::cli::table;
use gatehouse::format::{self, Value};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

const USAGE: &str = "usage: gatehouse [--server HOST:PORT] [--user NAME] [--password-file FILE] [--json] [COMMAND ARGS...]";
const TIMEOUT: Duration = Duration::from_secs(60);

struct Options {
    server: String,
    user: String,
    password_file: Option<String>,
    json: bool,
    command: Vec<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        server: "127.0.0.1:106".into(),
        user: "postmaster".into(),
        password_file: None,
        json: false,
        command: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--server" => o.server = value("--server")?,
            "--user" => o.user = value("--user")?,
            "--password-file" => o.password_file = Some(value("--password-file")?),
            "--json" => o.json = true,
            "--help" | "-h" => return Err(String::new()),
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ => {
                o.command.push(a);
                o.command.extend(args.by_ref());
            }
        }
    }
    Ok(o)
}

fn password(o: &Options) -> Result<Vec<u8>, String> {
    if let Some(path) = &o.password_file {
        let text = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
        return Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec());
    }
    std::env::var_os("GATEHOUSE_PASSWORD")
        .map(|p| p.into_encoded_bytes())
        .ok_or_else(|| "no password: use --password-file FILE or set GATEHOUSE_PASSWORD".into())
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => serde_json::Value::String(String::from_utf8_lossy(s).into_owned()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Dict(d) => serde_json::Value::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_json(v)))
                .collect(),
        ),
    }
}

fn print(v: &Value, json: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(out, "{}", to_json(v))
    } else {
        match v {
            // A string prints as its text (Router Table, IP lists are multi-line text).
            Value::Str(s) => writeln!(out, "{}", String::from_utf8_lossy(s)),
            _ => out.write_all(&format::to_pretty(v)),
        }
    };
}

fn main() -> ExitCode {
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("gatehouse: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let pw = match password(&o) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    let mut client = match Client::connect(&o.server, TIMEOUT).and_then(|mut c| {
        c.login(&o.user, &pw)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {}: {e}", o.server);
            return ExitCode::from(2);
        }
    };
    if o.command.is_empty() {
        return interactive(client, o.json);
    }
    let code = run(&mut client, &join_args(&o.command), o.json);
    let _ = client.quit();
    code
}

fn run(client: &mut Client, line: &str, json: bool) -> ExitCode {
    match client.command(line) {
        Ok(Some(v)) => {
            print(&v, json);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(ClientError::Command(text)) => {
            eprintln!("{text}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(2)
        }
    }
}

/// Completes the first word with command names and aliases.
struct Names(Vec<&'static str>);

impl Completer for Names {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        if head.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let lower = head.to_ascii_lowercase();
        let found = self
            .0
            .iter()
            .filter(|n| n.to_ascii_lowercase().starts_with(&lower))
            .map(|n| Pair {
                display: n.to_string(),
                replacement: format!("{n} "),
            })
            .collect();
        Ok((0, found))
    }
}
impl Hinter for Names {
    type Hint = String;
}
impl Highlighter for Names {}
impl Validator for Names {}
impl Helper for Names {}

fn interactive(mut client: Client, json: bool) -> ExitCode {
    let mut ed: Editor<Names, rustyline::history::DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    ed.set_helper(Some(Names(table::names())));
    let history = directories::ProjectDirs::from("", "", "gatehouse")
        .map(|d| d.data_dir().join("cli-history"));
    if let Some(h) = &history {
        let _ = ed.load_history(h);
    }
    println!("{}", client.greeting());
    loop {
        match ed.readline("gatehouse> ") {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = ed.add_history_entry(line);
                if line.eq_ignore_ascii_case("quit") || line.eq_ignore_ascii_case("exit") {
                    break;
                }
                if run(&mut client, line, json) == ExitCode::from(2) {
                    return ExitCode::from(2);
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = ed.save_history(h);
    }
    let _ = client.quit();
    ExitCode::SUCCESS
}
