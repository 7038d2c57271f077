//! The commands that need no mid-command dialogue, run synchronously (on a blocking thread)
//! against the session state: one `cmd_<verb>` per verb, and the change reporting of the
//! Selected state. Errors: [`CmdError`] maps to `BAD` (syntax/state), `NO` (user) or `NO
//! [SERVERBUG]` (server, logged) in one place, [`run`].

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::TryRecvError};

use super::acl::{self, Rights};
use super::message::{self, Loaded};
use super::proto::{Command, FetchAtt, Flag, SearchKey, SeqSet, StatusItem, StoreMode};
use super::ImapContext;
use crate::format::{Dict, Value};
use crate::kernel::log::Level;
use crate::mailbox::{
    names, subscription, Change, Flags, Format, Mailbox, MailboxError, MessageMeta, SetMode, Update,
};
use crate::net::sasl::AccountId;
use crate::store::AccountType;

/// The logged-in account (or, for `~account/...` names, the owner of a mailbox).
#[derive(Clone)]
pub(super) struct Authed {
    id: AccountId,
    kind: AccountType,
    dir: PathBuf,
    /// RFC 7162 §3.1: CONDSTORE was enabled in this session (by ENABLE or a command using it).
    condstore: Cell<bool>,
}

impl Authed {
    /// Looks up where the account keeps its mailboxes.
    pub(super) fn new(ctx: &ImapContext, id: AccountId) -> Result<Authed, String> {
        let (kind, dir) = ctx
            .cli
            .store
            .account_location(&id.domain, &id.name)
            .map_err(|e| e.to_string())?;
        Ok(Authed {
            id,
            kind,
            dir,
            condstore: Cell::new(false),
        })
    }
}

/// One message as the session numbers it.
#[derive(Clone, Copy)]
pub(super) struct Msg {
    pub(super) uid: u32,
    pub(super) flags: Flags,
    pub(super) size: u64,
    pub(super) date: i64,
    pub(super) keywords: u64,
    pub(super) modseq: u64,
}

impl From<MessageMeta> for Msg {
    fn from(m: MessageMeta) -> Msg {
        Msg {
            uid: m.uid,
            flags: m.flags,
            size: m.size,
            date: m.internal_date,
            keywords: m.keywords,
            modseq: m.modseq,
        }
    }
}

/// The selected mailbox: the session's view (message `n` is `msgs[n - 1]`) and its change feed.
pub(super) struct Selected {
    /// The name the client selected it by (the session registry shows it).
    name: String,
    mailbox: Arc<Mailbox>,
    read_only: bool,
    rights: Rights,
    msgs: Vec<Msg>,
    /// The keyword table as last announced in FLAGS.
    keywords: Vec<String>,
    /// CONDSTORE is on: flag changes report MODSEQ (RFC 7162 §3.1.4).
    condstore: bool,
    pub(super) changes: broadcast::Receiver<Change>,
    /// Changes were lost: compare with a fresh listing at the next sync.
    pub(super) lagged: bool,
}

/// The RFC 3501 §3 states; Logout is the end of the connection.
pub(super) enum State {
    NotAuthenticated,
    Authenticated(Box<Authed>),
    Selected(Box<Authed>, Box<Selected>),
}

/// A failed command.
enum CmdError {
    /// `BAD`: wrong state or arguments.
    Bad(String),
    /// `NO`: the client asked for something refused or absent (with its response code).
    No(String),
    /// `NO`: our problem; logged.
    Server(String),
}

impl From<MailboxError> for CmdError {
    fn from(e: MailboxError) -> CmdError {
        match e {
            MailboxError::Name(n) => CmdError::No(n.to_string()),
            MailboxError::NotFound => CmdError::No("[NONEXISTENT] Mailbox does not exist".into()),
            MailboxError::Exists => CmdError::No("[ALREADYEXISTS] Mailbox already exists".into()),
            MailboxError::InUse => CmdError::No("[INUSE] Mailbox is in use".into()),
            e => CmdError::Server(e.to_string()),
        }
    }
}

type Res = Result<String, CmdError>;

fn no<T>(text: &str) -> Result<T, CmdError> {
    Err(CmdError::No(text.to_string()))
}

/// Runs one command; returns the next state and everything to send (untagged lines and the tagged
/// completion).
pub(super) fn run(
    ctx: &ImapContext,
    state: State,
    tag: &str,
    command: Command,
) -> (State, Vec<u8>) {
    let mut out = Vec::new();
    let (state, result) = dispatch(ctx, state, command, &mut out);
    let line = match result {
        Ok(text) => format!("{tag} OK {text}\r\n"),
        Err(CmdError::Bad(text)) => format!("{tag} BAD {text}\r\n"),
        Err(CmdError::No(text)) => format!("{tag} NO {text}\r\n"),
        Err(CmdError::Server(text)) => {
            ctx.logger
                .log(Level::Failures, super::TAG, format_args!("{text}"));
            format!("{tag} NO [SERVERBUG] {text}\r\n")
        }
    };
    out.extend_from_slice(line.as_bytes());
    (state, out)
}

fn dispatch(
    ctx: &ImapContext,
    state: State,
    command: Command,
    out: &mut Vec<u8>,
) -> (State, Result<String, CmdError>) {
    // RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE or SEARCH (their UID forms may).
    let allow_expunge = !matches!(
        command,
        Command::Fetch(false, ..) | Command::Store(false, ..) | Command::Search(false, ..)
    );
    let mut state = state;
    if let State::Selected(a, s) = &mut state {
        s.condstore = a.condstore.get();
        if allow_expunge && !matches!(command, Command::Noop | Command::Idle) {
            // Report others' changes first, so this command works on fresh flags and modseqs.
            s.sync(None, true, out);
        }
    }
    let (state, r) = match (state, command) {
        (s, Command::Noop) => (s, Ok("NOOP completed".into())),
        (s, Command::Id) => {
            out.extend_from_slice(
                format!(
                    "* ID (\"name\" \"Gatehouse\" \"version\" \"{}\")\r\n",
                    env!("CARGO_PKG_VERSION")
                )
                .as_bytes(),
            );
            (s, Ok("ID completed".into()))
        }
        (State::NotAuthenticated, _) => (
            State::NotAuthenticated,
            Err(CmdError::Bad("log in first".into())),
        ),
        (State::Authenticated(a), c) => {
            let mut sel = None;
            let r = authenticated(ctx, &a, &mut sel, c, out);
            match sel {
                Some(s) => (State::Selected(a, s), r),
                None => (State::Authenticated(a), r),
            }
        }
        (State::Selected(a, mut s), c) => match c {
            Command::Select(..) => {
                // RFC 3501 §6.3.1: a SELECT first deselects, without expunging.
                let mut sel = None;
                let r = authenticated(ctx, &a, &mut sel, c, out);
                match sel {
                    Some(s) => (State::Selected(a, s), r),
                    None => (State::Authenticated(a), r),
                }
            }
            Command::Close => {
                if !s.read_only {
                    // RFC 3501 §6.4.2: expunge silently.
                    if let Err(e) = s.mailbox.expunge() {
                        return (State::Selected(a, s), Err(e.into()));
                    }
                }
                (State::Authenticated(a), Ok("CLOSE completed".into()))
            }
            Command::Unselect => (State::Authenticated(a), Ok("UNSELECT completed".into())),
            c => {
                let r = selected(ctx, &a, &mut s, c, out);
                (State::Selected(a, s), r)
            }
        },
    };
    let mut state = state;
    if let State::Selected(a, s) = &mut state {
        s.condstore = a.condstore.get();
        s.sync(None, allow_expunge, out);
    }
    (state, r)
}

/// Commands of the Authenticated state (also valid when Selected). A SELECT puts the new
/// selection in `sel`.
fn authenticated(
    ctx: &ImapContext,
    a: &Authed,
    sel: &mut Option<Box<Selected>>,
    c: Command,
    out: &mut Vec<u8>,
) -> Res {
    match c {
        Command::Select(name, read_only, condstore) => {
            if condstore {
                a.condstore.set(true);
            }
            let s = cmd_select(ctx, a, &name, read_only, out)?;
            let code = if s.read_only {
                "[READ-ONLY]"
            } else {
                "[READ-WRITE]"
            };
            *sel = Some(Box::new(s));
            Ok(format!("{code} SELECT completed"))
        }
        Command::Create(name) => cmd_create(ctx, a, &name),
        Command::Delete(name) => cmd_delete(ctx, a, &name),
        Command::Rename(from, to) => cmd_rename(ctx, a, &from, &to),
        Command::Subscribe(name) => cmd_subscribe(ctx, a, &name, true),
        Command::Unsubscribe(name) => cmd_subscribe(ctx, a, &name, false),
        Command::List(reference, pattern, lsub) => {
            cmd_list(ctx, a, &reference, &pattern, lsub, out)
        }
        Command::Status(name, items) => cmd_status(ctx, a, &name, &items, out),
        Command::Append(name, flags, date, msg) => cmd_append(ctx, a, &name, &flags, date, &msg),
        Command::Namespace => {
            // RFC 2342: the personal namespace, other users' (`~account/`, guide.txt:14339) and,
            // when the domain has a `public` account, the shared one (guide.txt:14365-14374).
            let shared = match public_prefix(ctx, a) {
                Some(p) => format!("((\"{p}\" \"/\"))"),
                None => "NIL".into(),
            };
            out.extend_from_slice(
                format!("* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) {shared}\r\n").as_bytes(),
            );
            Ok("NAMESPACE completed".into())
        }
        Command::Enable(caps) => {
            // RFC 5161: only CONDSTORE needs enabling; unknown ones are ignored.
            let mut line = String::from("* ENABLED");
            if caps.iter().any(|c| c == "CONDSTORE") {
                a.condstore.set(true);
                line.push_str(" CONDSTORE");
            }
            out.extend_from_slice(format!("{line}\r\n").as_bytes());
            Ok("ENABLE completed".into())
        }
        Command::GetQuotaRoot(name) => {
            locate(a, &name)?.ok_or(CmdError::No("[NONEXISTENT] Mailbox does not exist".into()))?;
            out.extend_from_slice(format!("* QUOTAROOT {} \"\"\r\n", quote(&name)).as_bytes());
            quota(ctx, a, out)?;
            Ok("GETQUOTAROOT completed".into())
        }
        Command::SetAcl(name, id, r) => cmd_setacl(ctx, a, &name, &id, Some(&r)),
        Command::DeleteAcl(name, id) => cmd_setacl(ctx, a, &name, &id, None),
        Command::GetAcl(name) => {
            let (owner, local, rights) = resolve(ctx, a, &name)?;
            if !rights.has('a') {
                return no("[NOPERM] the 'a' right is needed");
            }
            let list = acl::entries(&ctx.cli.store, &owner.id, &local).map_err(CmdError::Server)?;
            let mut line = format!(
                "* ACL {} {} {}",
                quote(&name),
                quote(&owner.id.name),
                acl::ALL
            );
            for (id, r) in list {
                line.push_str(&format!(" {} \"{r}\"", quote(&id)));
            }
            out.extend_from_slice(format!("{line}\r\n").as_bytes());
            Ok("GETACL completed".into())
        }
        Command::ListRights(name, id) => {
            let (_, _, rights) = resolve(ctx, a, &name)?;
            if !rights.has('a') {
                return no("[NOPERM] the 'a' right is needed");
            }
            out.extend_from_slice(
                format!(
                    "* LISTRIGHTS {} {} \"\" l r s w i p c d a\r\n",
                    quote(&name),
                    quote(&id)
                )
                .as_bytes(),
            );
            Ok("LISTRIGHTS completed".into())
        }
        Command::MyRights(name) => {
            let (_, _, rights) = resolve(ctx, a, &name)?;
            out.extend_from_slice(
                format!("* MYRIGHTS {} \"{rights}\"\r\n", quote(&name)).as_bytes(),
            );
            Ok("MYRIGHTS completed".into())
        }
        Command::GetQuota(root) => {
            if !root.is_empty() {
                return no("[NONEXISTENT] no such quota root");
            }
            quota(ctx, a, out)?;
            Ok("GETQUOTA completed".into())
        }
        Command::Check
        | Command::Close
        | Command::Unselect
        | Command::Expunge(_)
        | Command::Search(..)
        | Command::Fetch(..)
        | Command::Store(..)
        | Command::Copy(..) => Err(CmdError::Bad("no mailbox selected".into())),
        _ => Err(CmdError::Bad("command not valid here".into())),
    }
}

/// Commands of the Selected state.
fn selected(ctx: &ImapContext, a: &Authed, s: &mut Selected, c: Command, out: &mut Vec<u8>) -> Res {
    match c {
        Command::Check => Ok("CHECK completed".into()),
        Command::Expunge(uids) => {
            if s.read_only {
                return no("[READ-ONLY] the mailbox is read-only");
            }
            if !s.rights.has('d') {
                return no("[NOPERM] the 'd' right is needed");
            }
            s.expunge(uids.as_ref(), out)?;
            Ok("EXPUNGE completed".into())
        }
        Command::Search(uid, key) => {
            let by_modseq = uses_modseq(&key);
            if by_modseq {
                a.condstore.set(true);
            }
            let mut hits = Vec::new();
            let mut highest = 0;
            for (i, m) in s.msgs.iter().enumerate() {
                let mut loaded = Loaded::new(&s.mailbox, m.uid);
                if matches(&key, i as u32 + 1, m, s, &mut loaded) {
                    hits.push(if uid { m.uid } else { i as u32 + 1 });
                    highest = highest.max(m.modseq);
                }
            }
            out.extend_from_slice(b"* SEARCH");
            for h in &hits {
                out.extend_from_slice(format!(" {h}").as_bytes());
            }
            if by_modseq && !hits.is_empty() {
                // RFC 7162 §3.1.5: the highest mod-sequence of the messages found.
                out.extend_from_slice(format!(" (MODSEQ {highest})").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            Ok("SEARCH completed".into())
        }
        Command::Fetch(uid, set, items, changed_since) => {
            if changed_since.is_some() || items.contains(&FetchAtt::ModSeq) {
                a.condstore.set(true);
                s.condstore = true;
            }
            s.refresh_keywords(out);
            let mut gone = false;
            for i in s.resolve(&set, uid) {
                if changed_since.is_some_and(|n| s.msgs[i].modseq <= n) {
                    continue;
                }
                let sets_seen = !s.read_only && message::sets_seen(&items);
                if sets_seen && !s.msgs[i].flags.contains(Flags::SEEN) {
                    // RFC 3501 §6.4.5: BODY[] (not PEEK) sets \Seen.
                    let u = Update {
                        flags: Flags::SEEN,
                        keywords: &[],
                        mode: SetMode::Add,
                        unchanged_since: None,
                    };
                    for c in s.mailbox.store(&[s.msgs[i].uid], &u)?.changed {
                        s.msgs[i].flags = keep_recent(s.msgs[i].flags, c.flags);
                        s.msgs[i].modseq = c.modseq;
                    }
                }
                let m = s.msgs[i];
                let mut loaded = Loaded::new(&s.mailbox, m.uid);
                let flags = s.flag_list(&m);
                let mut data = match message::fetch(&items, &m, &flags, &mut loaded) {
                    Ok(d) => d,
                    // RFC 2180 §4.1.2: expunged by another session, not yet reported here.
                    Err(_) if !s.mailbox.list().iter().any(|x| x.uid == m.uid) => {
                        gone = true;
                        continue;
                    }
                    Err(e) => return Err(CmdError::Server(e)),
                };
                if sets_seen && !items.contains(&FetchAtt::Flags) {
                    data.extend_from_slice(format!(" FLAGS {flags}").as_bytes());
                    if s.condstore && !items.contains(&FetchAtt::ModSeq) {
                        data.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
                    }
                }
                out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
                out.extend_from_slice(&data);
                out.extend_from_slice(b")\r\n");
            }
            if gone {
                return no("some messages were expunged by another session");
            }
            Ok("FETCH completed".into())
        }
        Command::Store(uid, set, mode, silent, flags, unchanged_since) => {
            if s.read_only {
                return no("[READ-ONLY] the mailbox is read-only");
            }
            if unchanged_since.is_some() {
                a.condstore.set(true);
                s.condstore = true;
            }
            let idx = s.resolve(&set, uid);
            let uids: Vec<u32> = idx.iter().map(|&i| s.msgs[i].uid).collect();
            let mode = match mode {
                StoreMode::Add => SetMode::Add,
                StoreMode::Remove => SetMode::Remove,
                StoreMode::Replace => SetMode::Replace,
            };
            let want = system_flags(&flags).without(Flags::RECENT);
            let keywords = keyword_names(&flags);
            // RFC 4314 §4: \Seen needs 's', \Deleted 'd', the other flags and keywords 'w'.
            for (f, r) in [(Flags::SEEN, 's'), (Flags::DELETED, 'd')] {
                if (want.contains(f) || mode == SetMode::Replace) && !s.rights.has(r) {
                    return no(&format!("[NOPERM] the '{r}' right is needed"));
                }
            }
            let others = want.without(Flags::SEEN).without(Flags::DELETED);
            if (others != Flags::empty() || !keywords.is_empty() || mode == SetMode::Replace)
                && !s.rights.has('w')
            {
                return no("[NOPERM] the 'w' right is needed");
            }
            // \Recent cannot be changed by the client (RFC 3501 §2.3.2): keep it in a replace.
            let u = Update {
                flags: want,
                keywords: &keywords,
                mode,
                unchanged_since,
            };
            let stored = match s.mailbox.store(&uids, &u) {
                Err(MailboxError::KeywordLimit) => {
                    return no("[LIMIT] too many keywords in this mailbox")
                }
                r => r?,
            };
            s.refresh_keywords(out);
            let mut touched = Vec::new();
            for c in &stored.changed {
                if let Ok(i) = s.msgs.binary_search_by_key(&c.uid, |m| m.uid) {
                    s.msgs[i].flags = keep_recent(s.msgs[i].flags, c.flags);
                    s.msgs[i].keywords = c.keywords;
                    s.msgs[i].modseq = c.modseq;
                    touched.push(c.uid);
                }
            }
            for i in idx {
                let m = s.msgs[i];
                if stored.modified.contains(&m.uid) {
                    continue;
                }
                // RFC 7162 §3.1.3: with CONDSTORE a changed message is reported with its
                // MODSEQ even under .SILENT.
                let report_modseq = s.condstore && touched.contains(&m.uid);
                if silent && !report_modseq {
                    continue;
                }
                let mut items = Vec::new();
                if uid {
                    items.push(format!("UID {}", m.uid));
                }
                if !silent {
                    items.push(format!("FLAGS {}", s.flag_list(&m)));
                }
                if s.condstore {
                    items.push(format!("MODSEQ ({})", m.modseq));
                }
                out.extend_from_slice(
                    format!("* {} FETCH ({})\r\n", i + 1, items.join(" ")).as_bytes(),
                );
            }
            if !stored.modified.is_empty() {
                let mut ids: Vec<u32> = if uid {
                    stored.modified.clone()
                } else {
                    stored
                        .modified
                        .iter()
                        .filter_map(|u| s.msgs.binary_search_by_key(u, |m| m.uid).ok())
                        .map(|i| i as u32 + 1)
                        .collect()
                };
                ids.sort_unstable();
                return Ok(format!(
                    "[MODIFIED {}] conditional STORE failed",
                    uid_set(&ids)
                ));
            }
            Ok("STORE completed".into())
        }
        Command::Copy(uid, set, target, mv) => {
            if mv && (s.read_only || !s.rights.has('d')) {
                return no("[READ-ONLY] the mailbox is read-only");
            }
            let dest = match open(ctx, a, &target, 'i') {
                Err(CmdError::No(t)) if t.starts_with("[NONEXISTENT]") => {
                    return no("[TRYCREATE] Mailbox does not exist")
                }
                r => r?.0,
            };
            let idx = s.resolve(&set, uid);
            let mut src = Vec::new();
            let mut dst = Vec::new();
            for &i in &idx {
                let m = s.msgs[i];
                let bytes = match s.mailbox.read(m.uid) {
                    Ok(b) => b,
                    // Expunged by another session meanwhile: nothing to copy (RFC 2180 §4.4).
                    Err(MailboxError::NoSuchMessage(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                let keywords = keyword_list(&s.keywords, m.keywords);
                dst.push(dest.append_with(
                    &bytes,
                    m.flags.without(Flags::DELETED) | Flags::RECENT,
                    &keywords,
                    m.date,
                )?);
                src.push(m.uid);
            }
            let code = if src.is_empty() {
                String::new()
            } else {
                format!(
                    "[COPYUID {} {} {}] ",
                    dest.uid_validity(),
                    uid_set(&src),
                    uid_set(&dst)
                )
            };
            if !mv {
                return Ok(format!("{code}COPY completed"));
            }
            // RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
            out.extend_from_slice(format!("* OK {code}moved\r\n").as_bytes());
            let moved = SeqSet(
                src.iter()
                    .map(|&u| (super::proto::SeqNum::Num(u), super::proto::SeqNum::Num(u)))
                    .collect(),
            );
            s.mailbox.set_flags(&src, Flags::DELETED, SetMode::Add)?;
            s.expunge(Some(&moved), out)?;
            Ok("MOVE completed".into())
        }
        c => authenticated(ctx, a, &mut None, c, out),
    }
}

fn system_flags(flags: &[Flag]) -> Flags {
    flags.iter().fold(Flags::empty(), |acc, f| match f {
        Flag::System(s) => acc | *s,
        Flag::Keyword(_) => acc,
    })
}

fn keyword_names(flags: &[Flag]) -> Vec<String> {
    flags
        .iter()
        .filter_map(|f| match f {
            Flag::Keyword(k) => Some(k.clone()),
            Flag::System(_) => None,
        })
        .collect()
}

/// The names of the keywords in `mask`, with `table` the mailbox's keyword table.
fn keyword_list(table: &[String], mask: u64) -> Vec<String> {
    table
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, k)| k.clone())
        .collect()
}

/// `(\Seen \Flagged $Junk)`: system flags, then keywords.
pub(super) fn flag_list(f: Flags, keywords: &[String]) -> String {
    let names = [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
        (Flags::RECENT, "\\Recent"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(x, _)| f.contains(*x))
        .map(|(_, n)| *n)
        .chain(keywords.iter().map(String::as_str))
        .collect();
    format!("({})", v.join(" "))
}

/// The FLAGS and PERMANENTFLAGS responses of a selected mailbox (RFC 3501 §7.2.6, §7.1): the
/// system flags and the mailbox's keywords; `\*` while keywords can be added.
fn flags_responses(s: &Selected, out: &mut Vec<u8>) {
    let base = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
    let mut all = String::from(base);
    for k in &s.keywords {
        all.push(' ');
        all.push_str(k);
    }
    out.extend_from_slice(format!("* FLAGS ({all})\r\n").as_bytes());
    let perm = if s.read_only {
        String::new()
    } else if s.rights.has('w') && !s.mailbox.keywords_full() {
        format!("{all} \\*")
    } else {
        all
    };
    out.extend_from_slice(format!("* OK [PERMANENTFLAGS ({perm})] permanent flags\r\n").as_bytes());
}

/// UIDs as a compact set: `3:5,9`.
fn uid_set(uids: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// A mailbox name on the wire: a quoted string, or a literal when it holds CR, LF or non-ASCII.
pub(super) fn quote(s: &str) -> String {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b >= 0x80) {
        return format!("{{{}}}\r\n{s}", s.len());
    }
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The storage of mailbox `name` of the account, if it exists. Names of other accounts' mailboxes
/// (`~account/...`) are refused: sharing needs the ACLs (todo).
fn locate(a: &Authed, name: &str) -> Result<Option<(PathBuf, Format)>, CmdError> {
    if name.starts_with('~') {
        return no("[NOPERM] other accounts' mailboxes are not available");
    }
    let name = names::validate(name).map_err(|e| CmdError::No(e.to_string()))?;
    let inbox = name == "INBOX";
    let candidates: Vec<(PathBuf, Format)> = match a.kind {
        AccountType::MultiMailbox => [Format::Mbox, Format::Mdir]
            .into_iter()
            .filter_map(|f| Some((names::storage_path(&a.dir, &name, f).ok()?, f)))
            .collect(),
        // A single-mailbox account is its INBOX (guide.txt:9237-9253).
        AccountType::TextMailbox if inbox => {
            vec![(a.dir.join(format!("{}.mbox", a.id.name)), Format::Mbox)]
        }
        AccountType::MailDirMailbox if inbox => {
            vec![(a.dir.join(format!("{}.mdir", a.id.name)), Format::Mdir)]
        }
        _ => Vec::new(),
    };
    if let Some(found) = candidates.iter().find(|(p, _)| p.exists()) {
        return Ok(Some(found.clone()));
    }
    // INBOX always exists: it is created on first use (as POP and delivery do).
    Ok(candidates.into_iter().next().filter(|_| inbox))
}

/// Who owns mailbox `name`, its name in the owner's account, and the user's rights on it.
/// `~account/mailbox` (guide.txt:14339-14381) names another account's mailbox; the account part
/// is resolved like a login name (aliases, `@domain`). Without the lookup or read right the
/// mailbox is reported as absent, so its existence is not revealed.
fn resolve(
    ctx: &ImapContext,
    a: &Authed,
    name: &str,
) -> Result<(Authed, String, Rights), CmdError> {
    let absent = || CmdError::No("[NONEXISTENT] Mailbox does not exist".into());
    let expanded = expand_alias(ctx, a, name)?;
    let name = expanded.as_deref().unwrap_or(name);
    let Some(rest) = name.strip_prefix('~') else {
        return Ok((a.clone(), name.to_string(), Rights::all()));
    };
    let (account, mailbox) = rest.split_once('/').ok_or_else(absent)?;
    let id = ctx.cli.login_account(account).ok_or_else(absent)?;
    let mailbox = names::validate(mailbox).map_err(|e| CmdError::No(e.to_string()))?;
    if id == a.id {
        return Ok((a.clone(), mailbox, Rights::all()));
    }
    let owner = Authed::new(ctx, id).map_err(CmdError::Server)?;
    let rights =
        acl::rights(&ctx.cli.store, &owner.id, &mailbox, &a.id).map_err(CmdError::Server)?;
    if !rights.has('l') && !rights.has('r') {
        return Err(absent());
    }
    Ok((owner, mailbox, rights))
}

/// The account's Mailbox Aliases (guide.txt:9491-9522): top-level name → mailbox name, kept by
/// `SETMAILBOXALIASES` in the account's `.info`.
fn aliases(ctx: &ImapContext, a: &Authed) -> Result<Vec<(String, String)>, CmdError> {
    let v = ctx
        .cli
        .store
        .account_info(&a.id.domain, &a.id.name, crate::cli::MAILBOX_ALIASES_KEY)
        .map_err(|e| CmdError::Server(e.to_string()))?;
    let Some(Value::Dict(d)) = v else {
        return Ok(Vec::new());
    };
    Ok(d.iter()
        .filter_map(|(k, v)| {
            Some((
                String::from_utf8(k.to_vec()).ok()?,
                v.as_text()?.to_string(),
            ))
        })
        .collect())
}

/// `name` with a leading mailbox alias replaced by what it points to: `salesBox` →
/// `~sales/INBOX`, `boss/Pending` → `~chief/Pending` for `boss` = `~chief`. One level only, so
/// aliases cannot loop; the target then goes through the ACL checks of a foreign name.
fn expand_alias(ctx: &ImapContext, a: &Authed, name: &str) -> Result<Option<String>, CmdError> {
    let (head, rest) = match name.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (name, None),
    };
    if head.starts_with('~') || head.eq_ignore_ascii_case("INBOX") {
        return Ok(None);
    }
    let found = aliases(ctx, a)?.into_iter().find(|(k, _)| k == head);
    Ok(found.map(|(_, target)| match rest {
        Some(r) => format!("{}/{r}", target.trim_end_matches('/')),
        None => target,
    }))
}

/// The shared namespace prefix: `~public/` when the user's domain has a `public` account
/// (guide.txt:14365-14374), `~public@domain/` in a secondary domain.
fn public_prefix(ctx: &ImapContext, a: &Authed) -> Option<String> {
    let main = ctx.cli.store.main_domain();
    let login = format!("public@{}", a.id.domain);
    let id = ctx.cli.login_account(&login)?;
    if id.name != "public" {
        return None;
    }
    Some(if a.id.domain == main {
        "~public/".into()
    } else {
        format!("~{login}/")
    })
}

/// Opens mailbox `name` for a user who needs right `need`.
fn open(
    ctx: &ImapContext,
    a: &Authed,
    name: &str,
    need: char,
) -> Result<(Arc<Mailbox>, Rights), CmdError> {
    let (owner, local, rights) = resolve(ctx, a, name)?;
    if !rights.has(need) {
        return no(&format!("[NOPERM] the '{need}' right is needed"));
    }
    let (path, format) = locate(&owner, &local)?
        .ok_or(CmdError::No("[NONEXISTENT] Mailbox does not exist".into()))?;
    if local == "INBOX" {
        return Ok((ctx.mailboxes.open_or_create(&path, format)?, rights));
    }
    Ok((ctx.mailboxes.open(&path, format)?, rights))
}

/// SELECT / EXAMINE (RFC 3501 §6.3.1-2).
fn cmd_select(
    ctx: &ImapContext,
    a: &Authed,
    name: &str,
    read_only: bool,
    out: &mut Vec<u8>,
) -> Result<Selected, CmdError> {
    let (mailbox, rights) = open(ctx, a, name, 'r')?;
    // RFC 4314 §4: without a right that changes the mailbox, SELECT is read-only.
    let read_only = read_only || !(rights.has('s') || rights.has('w') || rights.has('d'));
    let changes = mailbox.subscribe();
    let msgs: Vec<Msg> = mailbox.list().into_iter().map(Msg::from).collect();
    let validity = mailbox.uid_validity();
    let recent: Vec<u32> = msgs
        .iter()
        .filter(|m| m.flags.contains(Flags::RECENT))
        .map(|m| m.uid)
        .collect();
    if !read_only && !recent.is_empty() {
        // RFC 3501 §2.3.2: this session is the first to see them; later sessions will not.
        mailbox.set_flags(&recent, Flags::RECENT, SetMode::Remove)?;
    }
    let unseen = msgs.iter().position(|m| !m.flags.contains(Flags::SEEN));
    let mut sel = Selected {
        name: name.to_string(),
        keywords: mailbox.keywords(),
        mailbox,
        read_only,
        rights,
        msgs,
        condstore: a.condstore.get(),
        changes,
        lagged: false,
    };
    let (mailbox, msgs) = (&sel.mailbox, &sel.msgs);
    out.extend_from_slice(
        format!("* {} EXISTS\r\n* {} RECENT\r\n", msgs.len(), recent.len()).as_bytes(),
    );
    if let Some(u) = unseen {
        out.extend_from_slice(format!("* OK [UNSEEN {}] first unseen\r\n", u + 1).as_bytes());
    }
    out.extend_from_slice(
        format!(
            "* OK [UIDVALIDITY {validity}] UIDs valid\r\n* OK [UIDNEXT {}] next UID\r\n",
            mailbox.uid_next()
        )
        .as_bytes(),
    );
    // RFC 7162 §3.1.2: every mailbox keeps mod-sequences, so HIGHESTMODSEQ is always sent.
    out.extend_from_slice(
        format!(
            "* OK [HIGHESTMODSEQ {}] highest mod-sequence\r\n",
            mailbox.highest_modseq()
        )
        .as_bytes(),
    );
    flags_responses(&sel, out);
    // Our own RECENT clearing is not news to us.
    sel.drain_own();
    Ok(sel)
}

impl Selected {
    /// The selected mailbox: the name the client used and where it is stored.
    pub(super) fn open_mailbox(&self) -> (&str, &std::path::Path) {
        (&self.name, self.mailbox.path())
    }

    /// The FLAGS list of message `m`.
    fn flag_list(&self, m: &Msg) -> String {
        flag_list(m.flags, &keyword_list(&self.keywords, m.keywords))
    }

    /// Announces keywords added since the last FLAGS response (RFC 3501 §7.2.6).
    fn refresh_keywords(&mut self, out: &mut Vec<u8>) {
        let now = self.mailbox.keywords();
        if now != self.keywords {
            self.keywords = now;
            flags_responses(self, out);
        }
    }

    /// The unsolicited FETCH of message number `i + 1` after a flag change.
    fn flags_changed(&self, i: usize, out: &mut Vec<u8>) {
        let m = &self.msgs[i];
        let modseq = if self.condstore {
            format!(" MODSEQ ({})", m.modseq)
        } else {
            String::new()
        };
        out.extend_from_slice(
            format!(
                "* {} FETCH (FLAGS {}{modseq})\r\n",
                i + 1,
                self.flag_list(m)
            )
            .as_bytes(),
        );
    }

    /// Discards queued changes that the listing already shows.
    fn drain_own(&mut self) {
        while let Ok(c) = self.changes.try_recv() {
            if !matches!(c, Change::FlagsChanged { .. }) {
                self.lagged = true;
            }
        }
    }

    /// Indexes (0-based) of the messages in `set`, by sequence number or by UID.
    fn resolve(&self, set: &SeqSet, uid: bool) -> Vec<usize> {
        if uid {
            let last = self.msgs.last().map_or(0, |m| m.uid);
            self.msgs
                .iter()
                .enumerate()
                .filter(|(_, m)| set.contains(m.uid, last))
                .map(|(i, _)| i)
                .collect()
        } else {
            let last = self.msgs.len() as u32;
            (0..self.msgs.len())
                .filter(|&i| set.contains(i as u32 + 1, last))
                .collect()
        }
    }

    /// EXPUNGE / UID EXPUNGE (RFC 4315 §2.1): only `\Deleted` messages in `uids` when given.
    fn expunge(&mut self, uids: Option<&SeqSet>, out: &mut Vec<u8>) -> Result<(), CmdError> {
        let keep: Vec<u32> = match uids {
            None => Vec::new(),
            Some(set) => {
                let last = self.msgs.last().map_or(0, |m| m.uid);
                self.mailbox
                    .list()
                    .iter()
                    .filter(|m| m.flags.contains(Flags::DELETED) && !set.contains(m.uid, last))
                    .map(|m| m.uid)
                    .collect()
            }
        };
        // Spare the others' \Deleted messages for the moment of the expunge.
        if !keep.is_empty() {
            self.mailbox
                .set_flags(&keep, Flags::DELETED, SetMode::Remove)?;
        }
        let gone = self.mailbox.expunge();
        if !keep.is_empty() {
            self.mailbox
                .set_flags(&keep, Flags::DELETED, SetMode::Add)?;
        }
        for uid in gone? {
            if let Ok(i) = self.msgs.binary_search_by_key(&uid, |m| m.uid) {
                self.msgs.remove(i);
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
            }
        }
        Ok(())
    }

    /// Reports what other sessions changed: `FETCH (FLAGS)`, `EXPUNGE` (when allowed) and
    /// `EXISTS`/`RECENT`. When expunges may not be reported, everything waits in the queue.
    pub(super) fn sync(&mut self, first: Option<Change>, allow_expunge: bool, out: &mut Vec<u8>) {
        if !allow_expunge && first.is_none() {
            // Flag changes could be sent, but the queue is ordered; all of it waits.
            return;
        }
        let mut relist = std::mem::take(&mut self.lagged);
        let mut pending: Vec<Change> = first.into_iter().collect();
        loop {
            match self.changes.try_recv() {
                Ok(c) => pending.push(c),
                Err(TryRecvError::Lagged(_)) => relist = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if !pending.is_empty() || relist {
            self.refresh_keywords(out);
        }
        for c in pending {
            match c {
                Change::FlagsChanged {
                    uid,
                    flags,
                    keywords,
                    modseq,
                } => {
                    if let Ok(i) = self.msgs.binary_search_by_key(&uid, |m| m.uid) {
                        let m = self.msgs[i];
                        if m.flags.without(Flags::RECENT) != flags.without(Flags::RECENT)
                            || m.keywords != keywords
                            || m.modseq < modseq
                        {
                            self.msgs[i].flags = keep_recent(m.flags, flags);
                            self.msgs[i].keywords = keywords;
                            self.msgs[i].modseq = self.msgs[i].modseq.max(modseq);
                            self.flags_changed(i, out);
                        }
                    }
                }
                Change::Expunged { uids } => {
                    for uid in uids {
                        if let Ok(i) = self.msgs.binary_search_by_key(&uid, |m| m.uid) {
                            self.msgs.remove(i);
                            out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                        }
                    }
                }
                Change::Appended { .. } => relist = true,
            }
        }
        if !relist {
            return;
        }
        let now = self.mailbox.list();
        // Lost changes: anything we show that is gone was expunged.
        let mut i = 0;
        while i < self.msgs.len() {
            let uid = self.msgs[i].uid;
            match now.binary_search_by_key(&uid, |m| m.uid) {
                Err(_) => {
                    self.msgs.remove(i);
                    out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                }
                Ok(j) => {
                    let n = now[j];
                    let old = self.msgs[i];
                    if old.flags.without(Flags::RECENT) != n.flags.without(Flags::RECENT)
                        || old.keywords != n.keywords
                        || old.modseq < n.modseq
                    {
                        self.msgs[i].flags = keep_recent(old.flags, n.flags);
                        self.msgs[i].keywords = n.keywords;
                        self.msgs[i].modseq = n.modseq;
                        self.flags_changed(i, out);
                    }
                    i += 1;
                }
            }
        }
        let max = self.msgs.last().map_or(0, |m| m.uid);
        let new: Vec<Msg> = now
            .into_iter()
            .filter(|m| m.uid > max)
            .map(Msg::from)
            .collect();
        if !new.is_empty() {
            let recent = new
                .iter()
                .filter(|m| m.flags.contains(Flags::RECENT))
                .count()
                + self
                    .msgs
                    .iter()
                    .filter(|m| m.flags.contains(Flags::RECENT))
                    .count();
            self.msgs.extend(new);
            out.extend_from_slice(
                format!("* {} EXISTS\r\n* {recent} RECENT\r\n", self.msgs.len()).as_bytes(),
            );
        }
    }
}

/// The stored flags `new` with the session's own `\Recent` from `old` (RFC 3501 §2.3.2: recent
/// is per session).
fn keep_recent(old: Flags, new: Flags) -> Flags {
    let new = new.without(Flags::RECENT);
    if old.contains(Flags::RECENT) {
        new | Flags::RECENT
    } else {
        new
    }
}

/// Whether a SEARCH uses MODSEQ (RFC 7162 §3.1.5: then the response reports the highest).
fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(keys) => keys.iter().any(uses_modseq),
        _ => false,
    }
}

/// Whether message `seq` matches a SEARCH key (RFC 3501 §6.4.4).
fn matches(key: &SearchKey, seq: u32, m: &Msg, s: &Selected, loaded: &mut Loaded) -> bool {
    use std::cmp::Ordering;
    let day = |t: i64| t.div_euclid(86_400);
    let date_ok = |d: i64, want: i64, ord: Ordering, or_equal: bool| {
        let c = d.cmp(&want);
        c == ord || (or_equal && c == Ordering::Equal)
    };
    match key {
        SearchKey::All => true,
        SearchKey::Flag(f, on) => m.flags.contains(*f) == *on,
        SearchKey::New => m.flags.contains(Flags::RECENT) && !m.flags.contains(Flags::SEEN),
        SearchKey::Old => !m.flags.contains(Flags::RECENT),
        SearchKey::Keyword(name, on) => {
            let bit = s.keywords.iter().position(|k| k.eq_ignore_ascii_case(name));
            bit.is_some_and(|b| m.keywords & (1u64 << b) != 0) == *on
        }
        SearchKey::ModSeq(n) => m.modseq >= *n,
        SearchKey::Header(field, needle) => loaded.header_contains(field, needle),
        SearchKey::Body(needle) => loaded.body_contains(needle),
        SearchKey::Text(needle) => loaded.text_contains(needle),
        SearchKey::Date(d, ord, eq) => date_ok(day(m.date), *d, *ord, *eq),
        SearchKey::SentDate(d, ord, eq) => loaded
            .sent_date()
            .is_some_and(|t| date_ok(day(t), *d, *ord, *eq)),
        SearchKey::Larger(n) => m.size > *n,
        SearchKey::Smaller(n) => m.size < *n,
        SearchKey::Uid(set) => set.contains(m.uid, s.msgs.last().map_or(0, |l| l.uid)),
        SearchKey::Seq(set) => set.contains(seq, s.msgs.len() as u32),
        SearchKey::Not(k) => !matches(k, seq, m, s, loaded),
        SearchKey::Or(a, b) => matches(a, seq, m, s, loaded) || matches(b, seq, m, s, loaded),
        SearchKey::And(keys) => keys.iter().all(|k| matches(k, seq, m, s, loaded)),
    }
}

/// Special-use attribute of a top-level mailbox by its conventional name (RFC 6154).
fn special_use(name: &str) -> Option<&'static str> {
    match name {
        "Sent" | "Sent Items" | "Sent Messages" => Some("\\Sent"),
        "Drafts" => Some("\\Drafts"),
        "Trash" | "Deleted Items" | "Deleted Messages" => Some("\\Trash"),
        "Junk" | "Spam" => Some("\\Junk"),
        _ => None,
    }
}

/// Every mailbox of the account: name and whether it holds messages (else a directory only).
fn all_mailboxes(a: &Authed) -> Vec<(String, bool)> {
    let mut out = vec![("INBOX".to_string(), true)];
    if a.kind != AccountType::MultiMailbox {
        return out;
    }
    fn walk(dir: &std::path::Path, prefix: &str, depth: usize, out: &mut Vec<(String, bool)>) {
        if depth >= names::MAX_DEPTH || out.len() > 10_000 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            let full = |n: &str| {
                if prefix.is_empty() {
                    n.to_string()
                } else {
                    format!("{prefix}/{n}")
                }
            };
            match names::classify_entry(&fname) {
                Some(names::Entry::Storage(n, _)) => {
                    let name = full(&n);
                    match out.iter_mut().find(|(x, _)| *x == name) {
                        Some(e) => e.1 = true,
                        None => out.push((name, true)),
                    }
                }
                Some(names::Entry::Directory(n)) => {
                    let name = full(&n);
                    if !out.iter().any(|(x, _)| *x == name) {
                        out.push((name.clone(), false));
                    }
                    walk(&e.path(), &name, depth + 1, out);
                }
                None => {}
            }
        }
    }
    walk(&a.dir, "", 0, &mut out);
    out.sort();
    out
}

/// LIST wildcard match (RFC 3501 §6.3.8): `*` matches anything, `%` anything but `/`.
pub(super) fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    // Dynamic programming over (pattern, name) prefixes: linear memory, no backtracking blow-up.
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; name.len() + 1];
        match p {
            b'*' | b'%' => {
                let mut reach = false;
                for j in 0..=name.len() {
                    if row[j] {
                        reach = true;
                    }
                    next[j] = reach;
                    if p == b'%' && j < name.len() && name[j] == b'/' {
                        reach = false;
                    }
                }
            }
            c => {
                for j in 0..name.len() {
                    next[j + 1] = row[j] && name[j] == c;
                }
            }
        }
        row = next;
    }
    row[name.len()]
}

/// LIST / LSUB (RFC 3501 §6.3.8-9, RFC 3348 CHILDREN, RFC 6154 SPECIAL-USE).
fn cmd_list(
    ctx: &ImapContext,
    a: &Authed,
    reference: &str,
    pattern: &str,
    lsub: bool,
    out: &mut Vec<u8>,
) -> Res {
    let verb = if lsub { "LSUB" } else { "LIST" };
    if pattern.is_empty() && !lsub {
        out.extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
        return Ok("LIST completed".into());
    }
    let full = format!("{reference}{pattern}");
    if full.len() > names::MAX_NAME_LEN + 64 {
        // Matching costs pattern length times name length per mailbox; no name is this long.
        return Ok(format!("{verb} completed"));
    }
    if let (Some(rest), false) = (full.strip_prefix('~'), lsub) {
        if let Some((account, _)) = rest.split_once('/') {
            list_foreign(ctx, a, account, &full, &format!("~{account}"), out)?;
        }
        return Ok("LIST completed".into());
    }
    if !lsub {
        list_aliases(ctx, a, &full, out)?;
    }
    let boxes = all_mailboxes(a);
    let subscribed = if lsub {
        subscriptions(ctx, a)?
    } else {
        Vec::new()
    };
    let matches_name = |n: &str| {
        if n == "INBOX" || n.starts_with("INBOX/") {
            // INBOX is case-insensitive (RFC 3501 §5.1).
            let upper = full
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("INBOX"));
            if upper {
                return wildcard(format!("INBOX{}", &full[5..]).as_bytes(), n.as_bytes());
            }
        }
        wildcard(full.as_bytes(), n.as_bytes())
    };
    let names: Vec<(String, bool)> = if lsub {
        subscribed
            .into_iter()
            .map(|n| {
                // Other accounts' mailboxes are not listed here; a subscribed one is shown selectable.
                let sel = n.starts_with('~') || boxes.iter().any(|(b, s)| *b == n && *s);
                (n, sel)
            })
            .collect()
    } else {
        boxes.clone()
    };
    for (name, selectable) in &names {
        if !matches_name(name) {
            continue;
        }
        let children = boxes
            .iter()
            .any(|(b, _)| b.starts_with(&format!("{name}/")));
        let mut attrs = vec![if children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        }];
        if !selectable {
            attrs.push("\\Noselect");
        }
        if let Some(u) = special_use(name) {
            attrs.push(u);
        }
        out.extend_from_slice(
            format!("* {verb} ({}) \"/\" {}\r\n", attrs.join(" "), quote(name)).as_bytes(),
        );
    }
    Ok(format!("{verb} completed"))
}

/// LIST of another account's mailboxes that this user may look up ('l' right), shown under
/// `shown` (`~account`, or an alias of it), whose shown names match `pattern`.
fn list_foreign(
    ctx: &ImapContext,
    a: &Authed,
    account: &str,
    pattern: &str,
    shown: &str,
    out: &mut Vec<u8>,
) -> Result<(), CmdError> {
    let Some(id) = ctx.cli.login_account(account) else {
        return Ok(());
    };
    let owner = Authed::new(ctx, id).map_err(CmdError::Server)?;
    let boxes = all_mailboxes(&owner);
    for (name, selectable) in &boxes {
        let shown = format!("{shown}/{name}");
        if !wildcard(pattern.as_bytes(), shown.as_bytes()) {
            continue;
        }
        let rights =
            acl::rights(&ctx.cli.store, &owner.id, name, &a.id).map_err(CmdError::Server)?;
        if !rights.has('l') {
            continue;
        }
        let mut attrs = vec![];
        if !selectable || !rights.has('r') {
            attrs.push("\\Noselect");
        }
        out.extend_from_slice(
            format!("* LIST ({}) \"/\" {}\r\n", attrs.join(" "), quote(&shown)).as_bytes(),
        );
    }
    Ok(())
}

/// LIST of the Mailbox Aliases matching `pattern` (guide.txt:9503-9522): an alias of a mailbox
/// is shown as a mailbox when the user may look it up; an alias of an account (`~chief`) is an
/// unselectable name with that account's visible mailboxes under it.
fn list_aliases(ctx: &ImapContext, a: &Authed, pattern: &str, out: &mut Vec<u8>) -> Res {
    for (alias, target) in aliases(ctx, a)? {
        let account = target
            .strip_prefix('~')
            .filter(|t| !t.trim_end_matches('/').contains('/'));
        if let Some(account) = account {
            if wildcard(pattern.as_bytes(), alias.as_bytes()) {
                out.extend_from_slice(
                    format!(
                        "* LIST (\\Noselect \\HasChildren) \"/\" {}\r\n",
                        quote(&alias)
                    )
                    .as_bytes(),
                );
            }
            list_foreign(ctx, a, account.trim_end_matches('/'), pattern, &alias, out)?;
            continue;
        }
        if !wildcard(pattern.as_bytes(), alias.as_bytes()) {
            continue;
        }
        let visible = match resolve(ctx, a, &alias) {
            Ok((owner, local, rights)) => rights.has('l') && locate(&owner, &local)?.is_some(),
            Err(CmdError::No(_)) => false,
            Err(e) => return Err(e),
        };
        if visible {
            out.extend_from_slice(
                format!("* LIST (\\HasNoChildren) \"/\" {}\r\n", quote(&alias)).as_bytes(),
            );
        }
    }
    Ok("LIST completed".into())
}

fn subscriptions(ctx: &ImapContext, a: &Authed) -> Result<Vec<String>, CmdError> {
    let v = ctx
        .cli
        .store
        .account_info(&a.id.domain, &a.id.name, subscription::KEY)
        .map_err(|e| CmdError::Server(e.to_string()))?;
    let mut d = Dict::new();
    if let Some(v) = v {
        d.insert(subscription::KEY.as_bytes().to_vec(), v);
    }
    Ok(subscription::list(&d))
}

/// SETACL / DELETEACL (RFC 4314 §3.1-2): needs the administer right.
fn cmd_setacl(ctx: &ImapContext, a: &Authed, name: &str, id: &str, spec: Option<&str>) -> Res {
    let (owner, local, rights) = resolve(ctx, a, name)?;
    if !rights.has('a') {
        return no("[NOPERM] the 'a' right is needed");
    }
    locate(&owner, &local)?.ok_or(CmdError::No("[NONEXISTENT] Mailbox does not exist".into()))?;
    acl::set(&ctx.cli.store, &owner.id, &local, id, spec).map_err(CmdError::No)?;
    Ok(if spec.is_some() {
        "SETACL completed"
    } else {
        "DELETEACL completed"
    }
    .into())
}

/// SUBSCRIBE / UNSUBSCRIBE (RFC 3501 §6.3.6-7), kept in the account's `.info` (guide.txt:9464-9489).
fn cmd_subscribe(ctx: &ImapContext, a: &Authed, name: &str, on: bool) -> Res {
    let mut d = Dict::new();
    let current = subscriptions(ctx, a)?;
    subscription::set(&mut d, &current).map_err(|e| CmdError::Server(e.to_string()))?;
    if on {
        subscription::subscribe(&mut d, name).map_err(|e| CmdError::No(e.to_string()))?;
    } else if !subscription::unsubscribe(&mut d, name) {
        return no("not subscribed");
    }
    let v = d
        .get(subscription::KEY.as_bytes())
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    ctx.cli
        .store
        .set_account_info(&a.id.domain, &a.id.name, subscription::KEY, v)
        .map_err(|e| CmdError::Server(e.to_string()))?;
    Ok(if on {
        "SUBSCRIBE completed"
    } else {
        "UNSUBSCRIBE completed"
    }
    .into())
}

/// CREATE (RFC 3501 §6.3.3; guide.txt:9274-9279: `name/` makes a directory only, `.mdir`/`.mbox`
/// picks the format).
fn cmd_create(ctx: &ImapContext, a: &Authed, raw: &str) -> Res {
    if a.kind != AccountType::MultiMailbox {
        return no("[CANNOT] this account has one mailbox only");
    }
    if raw.starts_with('~') {
        return no("[NOPERM] other accounts' mailboxes are not available");
    }
    if expand_alias(ctx, a, raw)?.is_some() {
        // A mailbox under an alias name would be hidden by the alias (guide.txt:9503-9504).
        return no("[ALREADYEXISTS] the name is a mailbox alias");
    }
    let req = names::parse_create_name(raw).map_err(|e| CmdError::No(format!("[CANNOT] {e}")))?;
    if req.name == "INBOX" {
        return no("[ALREADYEXISTS] INBOX exists");
    }
    if req.directory_only {
        let dir =
            names::directory_path(&a.dir, &req.name).map_err(|e| CmdError::No(e.to_string()))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| CmdError::Server(format!("cannot create {}: {e}", dir.display())))?;
        return Ok("CREATE completed".into());
    }
    if locate(a, &req.name)?.is_some() {
        return no("[ALREADYEXISTS] Mailbox already exists");
    }
    let format = req.format.unwrap_or(Format::Mbox);
    let path =
        names::storage_path(&a.dir, &req.name, format).map_err(|e| CmdError::No(e.to_string()))?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| CmdError::Server(format!("cannot create {}: {e}", parent.display())))?;
    }
    ctx.mailboxes.open_or_create(&path, format)?;
    Ok("CREATE completed".into())
}

/// DELETE (RFC 3501 §6.3.4): INBOX cannot be deleted; a directory entity goes only when empty.
fn cmd_delete(ctx: &ImapContext, a: &Authed, name: &str) -> Res {
    let name = names::validate(name).map_err(|e| CmdError::No(e.to_string()))?;
    if name == "INBOX" {
        return no("[CANNOT] INBOX cannot be deleted");
    }
    match locate(a, &name)? {
        Some((path, format)) => ctx.mailboxes.delete(&path, format)?,
        None => {
            let dir =
                names::directory_path(&a.dir, &name).map_err(|e| CmdError::No(e.to_string()))?;
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return no("[NONEXISTENT] Mailbox does not exist")
                }
                Err(_) => return no("[HASCHILDREN] the mailbox has submailboxes"),
            }
        }
    }
    Ok("DELETE completed".into())
}

/// RENAME (RFC 3501 §6.3.5): the mailbox and its submailboxes; INBOX in [`rename_inbox`].
fn cmd_rename(ctx: &ImapContext, a: &Authed, from: &str, to: &str) -> Res {
    let from = names::validate(from).map_err(|e| CmdError::No(e.to_string()))?;
    let to = names::validate(to).map_err(|e| CmdError::No(e.to_string()))?;
    if to == "INBOX" {
        return no("[CANNOT] cannot rename to INBOX");
    }
    if locate(a, &to)?.is_some() {
        return no("[ALREADYEXISTS] Mailbox already exists");
    }
    if from == "INBOX" {
        return rename_inbox(ctx, a, &to);
    }
    let (path, format) =
        locate(a, &from)?.ok_or(CmdError::No("[NONEXISTENT] Mailbox does not exist".into()))?;
    let target =
        names::storage_path(&a.dir, &to, format).map_err(|e| CmdError::No(e.to_string()))?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| CmdError::Server(format!("cannot create {}: {e}", parent.display())))?;
    }
    ctx.mailboxes.rename(&path, &target, format)?;
    let (dir_from, dir_to) = (
        names::directory_path(&a.dir, &from).map_err(|e| CmdError::No(e.to_string()))?,
        names::directory_path(&a.dir, &to).map_err(|e| CmdError::No(e.to_string()))?,
    );
    if dir_from.exists() {
        std::fs::rename(&dir_from, &dir_to)
            .map_err(|e| CmdError::Server(format!("cannot rename {}: {e}", dir_from.display())))?;
    }
    Ok("RENAME completed".into())
}

/// RENAME INBOX (RFC 3501 §6.3.5): the messages move to a new mailbox and INBOX stays, empty;
/// its submailboxes stay where they are. Messages that arrive meanwhile remain in INBOX.
fn rename_inbox(ctx: &ImapContext, a: &Authed, to: &str) -> Res {
    cmd_create(ctx, a, to)?;
    let (inbox, _) = open(ctx, a, "INBOX", 'r')?;
    let (dest, _) = open(ctx, a, to, 'i')?;
    let mut moved = Vec::new();
    let table = inbox.keywords();
    for m in inbox.list() {
        let bytes = match inbox.read(m.uid) {
            Ok(b) => b,
            Err(MailboxError::NoSuchMessage(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        dest.append_with(
            &bytes,
            m.flags,
            &keyword_list(&table, m.keywords),
            m.internal_date,
        )?;
        moved.push(m.uid);
    }
    let moved_set = SeqSet(
        moved
            .iter()
            .map(|&u| (super::proto::SeqNum::Num(u), super::proto::SeqNum::Num(u)))
            .collect(),
    );
    // Only the moved messages go; others' \Deleted flags are spared as in UID EXPUNGE.
    let last = moved.last().copied().unwrap_or(0);
    let spare: Vec<u32> = inbox
        .list()
        .iter()
        .filter(|m| m.flags.contains(Flags::DELETED) && !moved_set.contains(m.uid, last))
        .map(|m| m.uid)
        .collect();
    inbox.set_flags(&spare, Flags::DELETED, SetMode::Remove)?;
    inbox.set_flags(&moved, Flags::DELETED, SetMode::Add)?;
    let r = inbox.expunge();
    inbox.set_flags(&spare, Flags::DELETED, SetMode::Add)?;
    r?;
    Ok("RENAME completed".into())
}

/// STATUS (RFC 3501 §6.3.10; INTERNALSIZE and OLDEST from guide.txt:14880-14900).
fn cmd_status(
    ctx: &ImapContext,
    a: &Authed,
    name: &str,
    items: &[StatusItem],
    out: &mut Vec<u8>,
) -> Res {
    let (mb, _) = open(ctx, a, name, 'r')?;
    let list = mb.list();
    let mut parts = Vec::new();
    for item in items {
        match item {
            StatusItem::Messages => parts.push(format!("MESSAGES {}", list.len())),
            StatusItem::Recent => parts.push(format!(
                "RECENT {}",
                list.iter()
                    .filter(|m| m.flags.contains(Flags::RECENT))
                    .count()
            )),
            StatusItem::UidNext => parts.push(format!("UIDNEXT {}", mb.uid_next())),
            StatusItem::HighestModSeq => {
                a.condstore.set(true);
                parts.push(format!("HIGHESTMODSEQ {}", mb.highest_modseq()));
            }
            StatusItem::UidValidity => parts.push(format!("UIDVALIDITY {}", mb.uid_validity())),
            StatusItem::Unseen => parts.push(format!(
                "UNSEEN {}",
                list.iter()
                    .filter(|m| !m.flags.contains(Flags::SEEN))
                    .count()
            )),
            StatusItem::InternalSize => parts.push(format!(
                "INTERNALSIZE {}",
                list.iter().map(|m| m.size).sum::<u64>()
            )),
            StatusItem::Oldest => {
                if let Some(t) = list.iter().map(|m| m.internal_date).min() {
                    parts.push(format!("OLDEST \"{}\"", message::date_time(t)));
                }
            }
        }
    }
    out.extend_from_slice(format!("* STATUS {} ({})\r\n", quote(name), parts.join(" ")).as_bytes());
    Ok("STATUS completed".into())
}

/// APPEND (RFC 3501 §6.3.11, RFC 4315 APPENDUID).
fn cmd_append(
    ctx: &ImapContext,
    a: &Authed,
    name: &str,
    flags: &[Flag],
    date: Option<i64>,
    msg: &[u8],
) -> Res {
    let mb = match open(ctx, a, name, 'i').map(|(m, _)| m) {
        Err(CmdError::No(t)) if t.starts_with("[NONEXISTENT]") => {
            return no("[TRYCREATE] Mailbox does not exist")
        }
        r => r?,
    };
    let date = date.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let uid = match mb.append_with(
        msg,
        system_flags(flags) | Flags::RECENT,
        &keyword_names(flags),
        date,
    ) {
        Err(MailboxError::KeywordLimit) => return no("[LIMIT] too many keywords in this mailbox"),
        r => r?,
    };
    Ok(format!(
        "[APPENDUID {} {uid}] APPEND completed",
        mb.uid_validity()
    ))
}

/// The quota of the account (RFC 2087): `MaxAccountSize` in KB against the mailboxes' sizes.
fn quota(ctx: &ImapContext, a: &Authed, out: &mut Vec<u8>) -> Result<(), CmdError> {
    let settings = ctx
        .cli
        .store
        .account_effective_settings(&a.id.domain, &a.id.name)
        .map_err(|e| CmdError::Server(e.to_string()))?;
    let limit = settings
        .get(b"MaxAccountSize".as_slice())
        .and_then(Value::as_text)
        .and_then(|t| parse_size_kb(&t));
    let used: u64 = all_mailboxes(a)
        .iter()
        .filter(|(_, s)| *s)
        .filter_map(|(n, _)| locate(a, n).ok().flatten())
        .filter_map(|(p, f)| ctx.mailboxes.open(&p, f).ok())
        .map(|mb| mb.list().iter().map(|m| m.size).sum::<u64>())
        .sum();
    match limit {
        Some(kb) => out.extend_from_slice(
            format!("* QUOTA \"\" (STORAGE {} {kb})\r\n", used / 1024).as_bytes(),
        ),
        None => out.extend_from_slice(b"* QUOTA \"\" ()\r\n"),
    }
    Ok(())
}

/// `unlimited` → `None`; `100K`, `10M`, `1G`, or a byte count → kilobytes.
fn parse_size_kb(t: &str) -> Option<u64> {
    let t = t.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return None;
    }
    let (num, mult) = match t.chars().last()? {
        'K' | 'k' => (&t[..t.len() - 1], 1024u64),
        'M' | 'm' => (&t[..t.len() - 1], 1024 * 1024),
        'G' | 'g' => (&t[..t.len() - 1], 1024 * 1024 * 1024),
        _ => (t, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult).map(|b| b / 1024)
}
