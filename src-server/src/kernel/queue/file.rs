//! The queue file format: `Queue/<id>.msg` (envelope, end marker, message) and its state
//! sidecar `Queue/<id>.sta` (one record per recipient state change).
//!
//! guide.txt:9851-9889: "The message envelope is a set of text lines. Each line specifies either
//! the message return-path, or one message recipient address, or message delivery options"; the
//! line syntax is ours. Every line is `Name: value` where the value is one object of the text data
//! format (so any byte, newline included, is escaped and the parser is bounded):
//!
//! ```text
//! Gatehouse-Queue: 1
//! Id: 1732646400000001
//! Arrived: 1732646400
//! Source: {Kind=SMTP;Peer="127.0.0.1";Helo=client;TLS=NO;}
//! Return-Path: "sender@example.com"
//! ENVID: "abc"                                   (optional)
//! RET: FULL                                      (optional, FULL or HDRS)
//! Rcpt: {Address="a@b";ORCPT="rfc822;a@b";Notify=(SUCCESS,FAILURE);}   (one per recipient)
//! End: 1234                                      (the message size; required)
//! <exactly 1234 bytes of message>
//! ```
//!
//! The sidecar is append-only; each line is one data-format dictionary:
//! `{Rcpt=0;State=Delivered;Time=..;}`, `{Rcpt=0;State=Relayed;Time=..;}` (handed to a next
//! hop without DSN), `{Rcpt=0;State=PassedOn;Time=..;}` (to one that reports itself), `{Rcpt=0;State=Failed;Time=..;Text=..;}`,
//! `{Rcpt=0;State=Deferred;Time=..;Next=..;Attempts=..;Text=..;}`, `{Reported=(0,1);}` (a report
//! covering these recipients' final states was submitted) and `{Warned=(0);}` (a delay notice was
//! submitted). Only a line ending in `\n` counts: a torn last line from a crash is ignored and
//! cut off before the next append, so a state change is either durable or never happened.
//!
//! Security: both files are read back from disk after a crash; the parser is bounded (line length,
//! recipient count) and never panics; a file it cannot read is moved to `BadFiles/` by the caller.

use std::borrow::Cow;

use crate::format::{self, dict, Dict, Value};
use crate::kernel::mail::{MessageId, NewRecipient, Notify, Ret, Source};

/// The first line of every queue file.
pub const MAGIC: &[u8] = b"Gatehouse-Queue: 1\n";
/// Longest envelope line accepted.
const MAX_LINE: usize = 64 * 1024;
/// Most recipients of one queued message.
pub const MAX_RECIPIENTS: usize = 100_000;

/// A queued message's envelope (the message bytes are read separately, when delivering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The message id (its file name).
    pub id: MessageId,
    /// Arrival time, seconds since the Unix epoch.
    pub arrived: i64,
    /// Who submitted it.
    pub source: Source,
    /// Return-path; empty for `<>`.
    pub return_path: String,
    /// DSN ENVID.
    pub env_id: Option<String>,
    /// DSN RET.
    pub ret: Option<Ret>,
    /// The envelope recipients, in submission order (a state record names one by index).
    pub recipients: Vec<NewRecipient>,
}

/// Why a queue file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadFile(pub String);

fn bad(msg: impl Into<String>) -> BadFile {
    BadFile(msg.into())
}

fn notify_value(n: &Notify) -> Value {
    let mut v = Vec::new();
    for (on, name) in [
        (n.success, "SUCCESS"),
        (n.failure, "FAILURE"),
        (n.delay, "DELAY"),
        (n.never, "NEVER"),
    ] {
        if on {
            v.push(Value::str(name));
        }
    }
    Value::Array(v)
}

fn notify_from(v: Option<&Value>) -> Result<Notify, BadFile> {
    let mut n = Notify::default();
    for item in v.and_then(Value::as_array).unwrap_or_default() {
        match item.as_bytes().unwrap_or_default() {
            b"SUCCESS" => n.success = true,
            b"FAILURE" => n.failure = true,
            b"DELAY" => n.delay = true,
            b"NEVER" => n.never = true,
            _ => return Err(bad("unknown NOTIFY value")),
        }
    }
    Ok(n)
}

fn yes(b: bool) -> Value {
    Value::str(if b { "YES" } else { "NO" })
}

/// The envelope's `Source` record.
pub fn source_value(s: &Source) -> Value {
    match s {
        Source::Smtp {
            peer,
            helo,
            auth,
            tls,
        } => {
            let mut d: Dict = Dict::new();
            d.insert(b"Kind".to_vec(), Value::str("SMTP"));
            d.insert(b"Peer".to_vec(), Value::from(peer.to_string()));
            d.insert(b"Helo".to_vec(), Value::str(helo));
            if let Some(a) = auth {
                d.insert(b"Auth".to_vec(), Value::str(a));
            }
            d.insert(b"TLS".to_vec(), yes(*tls));
            Value::Dict(d)
        }
        Source::Pipe => dict([("Kind", Value::str("PIPE"))]),
        Source::User(a) => dict([("Kind", Value::str("USER")), ("Name", Value::str(a))]),
        Source::Rpop => dict([("Kind", Value::str("RPOP"))]),
        Source::List(a) => dict([("Kind", Value::str("LIST")), ("Name", Value::str(a))]),
        Source::Dsn => dict([("Kind", Value::str("DSN"))]),
        Source::Rules(a) => dict([("Kind", Value::str("RULES")), ("Name", Value::str(a))]),
        Source::Cli => dict([("Kind", Value::str("CLI"))]),
    }
}

fn source_from(v: &Value) -> Result<Source, BadFile> {
    let text = |k: &str| v.get_text(k).ok_or_else(|| bad(format!("Source: no {k}")));
    Ok(match text("Kind")?.as_str() {
        "SMTP" => Source::Smtp {
            peer: text("Peer")?
                .parse()
                .map_err(|_| bad("Source: bad Peer address"))?,
            helo: text("Helo")?,
            auth: v.get_text("Auth"),
            tls: v.get_text("TLS").as_deref() == Some("YES"),
        },
        "PIPE" => Source::Pipe,
        "USER" => Source::User(text("Name")?),
        "RPOP" => Source::Rpop,
        "LIST" => Source::List(text("Name")?),
        "DSN" => Source::Dsn,
        "RULES" => Source::Rules(text("Name")?),
        "CLI" => Source::Cli,
        k => return Err(bad(format!("Source: unknown kind {k}"))),
    })
}

fn line(out: &mut Vec<u8>, name: &str, v: &Value) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(&format::to_bytes(v));
    out.push(b'\n');
}

/// The envelope lines and end marker for a message of `message_len` bytes.
pub fn encode_envelope(env: &Envelope, message_len: usize) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    line(&mut out, "Id", &Value::from(env.id.to_string()));
    line(&mut out, "Arrived", &Value::from(env.arrived.to_string()));
    line(&mut out, "Source", &source_value(&env.source));
    line(&mut out, "Return-Path", &Value::str(&env.return_path));
    if let Some(e) = &env.env_id {
        line(&mut out, "ENVID", &Value::str(e));
    }
    if let Some(r) = env.ret {
        let r = match r {
            Ret::Full => "FULL",
            Ret::Headers => "HDRS",
        };
        line(&mut out, "RET", &Value::str(r));
    }
    for r in &env.recipients {
        let mut d = Dict::new();
        d.insert(b"Address".to_vec(), Value::str(&r.address));
        if let Some(o) = &r.orcpt {
            d.insert(b"ORCPT".to_vec(), Value::str(o));
        }
        if r.notify != Notify::default() {
            d.insert(b"Notify".to_vec(), notify_value(&r.notify));
        }
        line(&mut out, "Rcpt", &Value::Dict(d));
    }
    line(&mut out, "End", &Value::from(message_len.to_string()));
    out
}

fn number<T: std::str::FromStr>(v: &Value, what: &str) -> Result<T, BadFile> {
    v.as_text()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(format!("{what}: not a number")))
}

/// Reads a whole queue file: the envelope and the offset where the message starts.
pub fn decode(file: &[u8]) -> Result<(Envelope, usize), BadFile> {
    let mut rest = file
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not a queue file (no Gatehouse-Queue line)"))?;
    let mut id = None;
    let mut arrived = None;
    let mut source = None;
    let mut return_path = None;
    let mut env_id = None;
    let mut ret = None;
    let mut recipients = Vec::new();
    loop {
        let end = rest
            .iter()
            .take(MAX_LINE)
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("truncated or overlong envelope line"))?;
        let (l, tail) = rest.split_at(end);
        rest = tail.get(1..).unwrap_or_default();
        let colon = l
            .windows(2)
            .position(|w| w == b": ")
            .ok_or_else(|| bad("envelope line without a name"))?;
        let (name, value) = (&l[..colon], &l[colon + 2..]);
        let v = format::parse(value).map_err(|e| bad(format!("envelope line: {e}")))?;
        match name {
            b"Id" => id = Some(number::<MessageId>(&v, "Id")?),
            b"Arrived" => arrived = Some(number::<i64>(&v, "Arrived")?),
            b"Source" => source = Some(source_from(&v)?),
            b"Return-Path" => return_path = v.as_text().map(Cow::into_owned),
            b"ENVID" => env_id = v.as_text().map(Cow::into_owned),
            b"RET" => {
                ret = Some(match v.as_bytes().unwrap_or_default() {
                    b"FULL" => Ret::Full,
                    b"HDRS" => Ret::Headers,
                    _ => return Err(bad("RET: not FULL or HDRS")),
                })
            }
            b"Rcpt" => {
                if recipients.len() >= MAX_RECIPIENTS {
                    return Err(bad("too many recipients"));
                }
                recipients.push(NewRecipient {
                    address: v
                        .get_text("Address")
                        .ok_or_else(|| bad("Rcpt: no Address"))?,
                    orcpt: v.get_text("ORCPT"),
                    notify: notify_from(v.get("Notify"))?,
                });
            }
            b"End" => {
                let size: usize = number(&v, "End")?;
                if rest.len() != size {
                    return Err(bad(format!(
                        "message is {} bytes, the envelope says {size}",
                        rest.len()
                    )));
                }
                let env = Envelope {
                    id: id.ok_or_else(|| bad("no Id"))?,
                    arrived: arrived.ok_or_else(|| bad("no Arrived"))?,
                    source: source.ok_or_else(|| bad("no Source"))?,
                    return_path: return_path.ok_or_else(|| bad("no Return-Path"))?,
                    env_id,
                    ret,
                    recipients,
                };
                if env.recipients.is_empty() {
                    return Err(bad("no recipients"));
                }
                return Ok((env, file.len() - size));
            }
            _ => return Err(bad("unknown envelope line")),
        }
    }
}

/// A recipient's delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptState {
    /// Not tried yet.
    Pending,
    /// Delivered (or handed on); final.
    Delivered,
    /// Handed to a next hop without DSN, a "relayed" report owed for NOTIFY=SUCCESS (RFC 3461
    /// §5.2.2); final.
    Relayed,
    /// Handed to a next hop that took NOTIFY=SUCCESS on and reports itself (RFC 3461 §5.2.1);
    /// final, no report of ours.
    PassedOn,
    /// Failed for good, with the reason; final.
    Failed(String),
    /// Failed for now: the reason and when to try again (Unix seconds).
    Deferred {
        /// The last error.
        text: String,
        /// Next attempt.
        next_try: i64,
    },
}

impl RcptState {
    /// Delivered or failed: nothing more to try.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            RcptState::Delivered | RcptState::Relayed | RcptState::PassedOn | RcptState::Failed(_)
        )
    }
}

/// Everything the sidecar says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptStatus {
    /// The current state.
    pub state: RcptState,
    /// When it last changed (Unix seconds; the arrival time while pending).
    pub since: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Its final state has been reported (or needs no report).
    pub reported: bool,
    /// A delay notice for it has been sent.
    pub warned: bool,
}

/// One sidecar record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    /// Recipient `rcpt` changed state at `time` after `attempts` attempts.
    State {
        /// Recipient index.
        rcpt: usize,
        /// The new state.
        state: RcptState,
        /// When.
        time: i64,
        /// Attempts so far.
        attempts: u32,
    },
    /// A report covering these recipients' final states was submitted.
    Reported(Vec<usize>),
    /// A delay notice covering these recipients was submitted.
    Warned(Vec<usize>),
}

fn indexes(v: &[usize]) -> Value {
    Value::Array(v.iter().map(|i| Value::from(i.to_string())).collect())
}

impl StateRecord {
    /// The record as one sidecar line (with its `\n`).
    pub fn encode(&self) -> Vec<u8> {
        let v = match self {
            StateRecord::State {
                rcpt,
                state,
                time,
                attempts,
            } => {
                let mut d = Dict::new();
                d.insert(b"Rcpt".to_vec(), Value::from(rcpt.to_string()));
                let (name, text, next) = match state {
                    RcptState::Pending => ("Pending", None, None),
                    RcptState::Delivered => ("Delivered", None, None),
                    RcptState::Relayed => ("Relayed", None, None),
                    RcptState::PassedOn => ("PassedOn", None, None),
                    RcptState::Failed(t) => ("Failed", Some(t), None),
                    RcptState::Deferred { text, next_try } => {
                        ("Deferred", Some(text), Some(*next_try))
                    }
                };
                d.insert(b"State".to_vec(), Value::str(name));
                d.insert(b"Time".to_vec(), Value::from(time.to_string()));
                d.insert(b"Attempts".to_vec(), Value::from(attempts.to_string()));
                if let Some(n) = next {
                    d.insert(b"Next".to_vec(), Value::from(n.to_string()));
                }
                if let Some(t) = text {
                    d.insert(b"Text".to_vec(), Value::str(t));
                }
                Value::Dict(d)
            }
            StateRecord::Reported(v) => dict([("Reported", indexes(v))]),
            StateRecord::Warned(v) => dict([("Warned", indexes(v))]),
        };
        let mut out = format::to_bytes(&v);
        out.push(b'\n');
        out
    }

    fn decode(l: &[u8]) -> Result<StateRecord, BadFile> {
        let v = format::parse(l).map_err(|e| bad(format!("state record: {e}")))?;
        let list = |v: &Value| -> Result<Vec<usize>, BadFile> {
            v.as_array()
                .unwrap_or_default()
                .iter()
                .map(|i| number(i, "state record index"))
                .collect()
        };
        if let Some(r) = v.get("Reported") {
            return Ok(StateRecord::Reported(list(r)?));
        }
        if let Some(r) = v.get("Warned") {
            return Ok(StateRecord::Warned(list(r)?));
        }
        let field = |k: &str| v.get(k).ok_or_else(|| bad(format!("state record: no {k}")));
        let text = v.get_text("Text").unwrap_or_default();
        let state = match v.get_text("State").as_deref() {
            Some("Pending") => RcptState::Pending,
            Some("Delivered") => RcptState::Delivered,
            Some("Relayed") => RcptState::Relayed,
            Some("PassedOn") => RcptState::PassedOn,
            Some("Failed") => RcptState::Failed(text),
            Some("Deferred") => RcptState::Deferred {
                text,
                next_try: number(field("Next")?, "Next")?,
            },
            _ => return Err(bad("state record: unknown State")),
        };
        Ok(StateRecord::State {
            rcpt: number(field("Rcpt")?, "Rcpt")?,
            state,
            time: number(field("Time")?, "Time")?,
            attempts: number(field("Attempts")?, "Attempts")?,
        })
    }
}

/// The fresh status of `n` recipients that arrived at `arrived`.
pub fn initial_status(n: usize, arrived: i64) -> Vec<RcptStatus> {
    vec![
        RcptStatus {
            state: RcptState::Pending,
            since: arrived,
            attempts: 0,
            reported: false,
            warned: false,
        };
        n
    ]
}

/// Applies one record to the statuses.
pub fn apply(status: &mut [RcptStatus], rec: &StateRecord) -> Result<(), BadFile> {
    let get = |status: &mut [RcptStatus], i: usize| {
        status
            .get_mut(i)
            .map(|_| ())
            .ok_or_else(|| bad("state record names no recipient"))
    };
    match rec {
        StateRecord::State {
            rcpt,
            state,
            time,
            attempts,
        } => {
            get(status, *rcpt)?;
            if let Some(s) = status.get_mut(*rcpt) {
                s.state = state.clone();
                s.since = *time;
                s.attempts = *attempts;
            }
        }
        StateRecord::Reported(v) | StateRecord::Warned(v) => {
            let warned = matches!(rec, StateRecord::Warned(_));
            for &i in v {
                get(status, i)?;
                if let Some(s) = status.get_mut(i) {
                    if warned {
                        s.warned = true;
                    } else {
                        s.reported = true;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Replays a sidecar; returns the statuses and the length of its complete lines (a torn tail
/// beyond it is ignored and must be cut before appending).
pub fn replay(sidecar: &[u8], n: usize, arrived: i64) -> Result<(Vec<RcptStatus>, usize), BadFile> {
    let mut status = initial_status(n, arrived);
    let mut pos = 0;
    while let Some(end) = sidecar[pos..].iter().position(|&b| b == b'\n') {
        let l = &sidecar[pos..pos + end];
        apply(&mut status, &StateRecord::decode(l)?)?;
        pos += end + 1;
    }
    Ok((status, pos))
}

/// The message's header section (up to and without the empty line), for RET=HDRS and header
/// lookups.
pub fn header_section(message: &[u8]) -> &[u8] {
    let mut pos = 0;
    while pos < message.len() {
        let end = message[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |e| pos + e + 1);
        let l = &message[pos..end];
        if l == b"\n" || l == b"\r\n" {
            return &message[..pos];
        }
        pos = end;
    }
    message
}

/// The unfolded values of every header field named `name` (case-insensitive).
pub fn header_values(message: &[u8], name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for l in header_section(message).split(|&b| b == b'\n') {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if let Some(c) = current.as_mut() {
                c.push(' ');
                c.push_str(String::from_utf8_lossy(l).trim());
            }
            continue;
        }
        out.extend(current.take());
        if let Some(colon) = l.iter().position(|&b| b == b':') {
            if l[..colon].eq_ignore_ascii_case(name.as_bytes()) {
                current = Some(String::from_utf8_lossy(&l[colon + 1..]).trim().to_string());
            }
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            id: 42,
            arrived: 1_700_000_000,
            source: Source::Smtp {
                peer: "127.0.0.1".parse().unwrap(),
                helo: "client \"x\"".into(),
                auth: Some("bob@example.com".into()),
                tls: true,
            },
            return_path: "sender@example.com".into(),
            env_id: Some("env\nid".into()),
            ret: Some(Ret::Headers),
            recipients: vec![
                NewRecipient::new("a@example.com"),
                NewRecipient {
                    address: "b@example.com".into(),
                    orcpt: Some("rfc822;B@example.com".into()),
                    notify: Notify {
                        success: true,
                        failure: true,
                        ..Notify::default()
                    },
                },
            ],
        }
    }

    #[test]
    fn envelope_round_trips() {
        let env = sample();
        let msg = b"Subject: hi\r\n\r\nbody\r\n";
        let mut file = encode_envelope(&env, msg.len());
        file.extend_from_slice(msg);
        let (back, at) = decode(&file).unwrap();
        assert_eq!(back, env);
        assert_eq!(&file[at..], msg);
        for s in [
            Source::Pipe,
            Source::User("u@d".into()),
            Source::Rpop,
            Source::List("g@d".into()),
            Source::Dsn,
            Source::Rules("server".into()),
            Source::Cli,
        ] {
            assert_eq!(source_from(&source_value(&s)).unwrap(), s);
        }
    }

    #[test]
    fn truncated_files_are_bad() {
        let env = sample();
        let msg = b"Subject: hi\r\n\r\nbody\r\n";
        let mut file = encode_envelope(&env, msg.len());
        file.extend_from_slice(msg);
        for cut in 0..file.len() {
            assert!(decode(&file[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(b"garbage").is_err());
        let mut longer = file.clone();
        longer.push(b'x');
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn sidecar_replays_and_ignores_a_torn_tail() {
        let recs = [
            StateRecord::State {
                rcpt: 0,
                state: RcptState::Deferred {
                    text: "busy".into(),
                    next_try: 5,
                },
                time: 1,
                attempts: 1,
            },
            StateRecord::State {
                rcpt: 1,
                state: RcptState::Failed("no \"such\" user".into()),
                time: 2,
                attempts: 1,
            },
            StateRecord::Reported(vec![1]),
            StateRecord::Warned(vec![0]),
        ];
        let mut side: Vec<u8> = recs.iter().flat_map(StateRecord::encode).collect();
        let complete = side.len();
        side.extend_from_slice(b"{Rcpt=0;State=Deliv");
        let (st, used) = replay(&side, 2, 0).unwrap();
        assert_eq!(used, complete);
        assert_eq!(
            st[0].state,
            RcptState::Deferred {
                text: "busy".into(),
                next_try: 5
            }
        );
        assert!(st[0].warned && !st[0].reported);
        assert_eq!(st[1].state, RcptState::Failed("no \"such\" user".into()));
        assert!(st[1].reported && st[1].state.is_final());
        assert!(replay(b"{Rcpt=7;State=Delivered;Time=1;Attempts=1;}\n", 2, 0).is_err());
        assert!(replay(b"junk\n", 2, 0).is_err());
    }

    #[test]
    fn headers_are_unfolded() {
        let m = b"Received: a\r\nreceived: b\r\n  c\r\nTo: x\r\n\r\nReceived: body\r\n";
        assert_eq!(header_values(m, "Received"), ["a", "b c"]);
        assert!(header_section(m).ends_with(b"To: x\r\n"));
    }
}
