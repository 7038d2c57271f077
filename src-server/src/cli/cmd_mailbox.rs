//! Mailbox Administration commands (guide.txt:6174-6411; spec B §3.5, #70-81): list, create,
//! delete, rename, information, ACLs and effective rights, subscription, mailbox aliases.
//!
//! Rights (guide.txt:6176-6178, spec B §4.3): the caller must be the mailbox owner, or hold "All
//! Accounts and Domains" (`Users`), or administer the owner's domain with `CanAccessMailboxes`.
//! `AUTH authAccountName` then runs the operation on behalf of that account with its mailbox
//! rights (guide.txt:9312-9320): the owner and administrators have all rights, anyone else the
//! ACL's effective rights (`mailbox::acl`).
//!
//! Storage: mailboxes through the shared Mailbox Manager (`mailbox::account`); ACLs, the
//! subscription list and mailbox aliases in the account `.info` (`MailboxACL`, `Subscription`
//! (guide.txt:9488-9489), `MailboxAliases`; the first and last are our names).
//!
//! Security: every mailbox name is validated by `mailbox::names` before it becomes a path
//! (`..`, absolute names and hidden files are refused). Listing filters are matched without
//! backtracking blow-ups (bounded dynamic programming).
//!
//! todo: the ACL, subscription and alias updates are read-modify-write of one `.info` key, each
//! step under the store lock but not the pair; two concurrent admins can lose one update.

use std::borrow::Cow;

use super::args::Args;
use super::cmd_account::{object_ref, require_admin};
use super::rights::denied;
use super::{CliContext, CliError, CmdResult, Session};
use crate::format::{Dict, Value};
use crate::mailbox::account::{AccountBoxError, AccountMailboxes, Listed};
use crate::mailbox::acl::{self, right, Rights};
use crate::mailbox::{names, subscription, Format, MailboxError};
use crate::store::{AccountType, Object, StoreError};

/// `.info` key of the mailbox aliases (our name).
pub const ALIASES_KEY: &str = "MailboxAliases";
/// Most mailbox aliases per account.
const MAX_ALIASES: usize = 1000;
/// Longest listing filter.
const MAX_FILTER: usize = 1024;

impl From<AccountBoxError> for CliError {
    fn from(e: AccountBoxError) -> CliError {
        CliError::new(e.to_string())
    }
}

impl From<names::NameError> for CliError {
    fn from(e: names::NameError) -> CliError {
        CliError::new(e.to_string())
    }
}

impl From<MailboxError> for CliError {
    fn from(e: MailboxError) -> CliError {
        CliError::new(e.to_string())
    }
}

/// The account whose mailboxes a command works on, after the section's rights check.
struct Owner {
    domain: String,
    name: String,
    boxes: AccountMailboxes,
}

/// Who the operation runs for: `None` = the caller (all rights, it passed the section check).
struct Auth {
    domain: String,
    name: String,
    /// The account is the owner or an administrator of the owner's mailboxes.
    all: bool,
}

/// Resolves `accountName` and checks the section rights (guide.txt:6176-6178).
fn owner(ctx: &CliContext, s: &Session, text: &str) -> Result<Owner, CliError> {
    let (domain, name) = object_ref(ctx, s, text)?;
    let name = real_account(ctx, &domain, &name)?;
    if !s.is_self(&domain, &name) {
        require_admin(ctx, s, &domain, Some("CanAccessMailboxes"))?;
    }
    let boxes = AccountMailboxes::open(&ctx.store, &domain, &name)?;
    Ok(Owner {
        domain,
        name,
        boxes,
    })
}

/// The real account name behind a name or account alias.
fn real_account(ctx: &CliContext, domain: &str, name: &str) -> Result<String, CliError> {
    match ctx.store.lookup(domain, name) {
        Some(Object::Account(n)) => Ok(n),
        Some(Object::Alias { account }) => Ok(account),
        _ => Err(StoreError::UnknownAccount.into()),
    }
}

/// Reads an optional `AUTH authAccountName`.
fn auth(ctx: &CliContext, s: &Session, a: &mut Args, o: &Owner) -> Result<Option<Auth>, CliError> {
    if !a.keyword("AUTH") {
        return Ok(None);
    }
    auth_account(ctx, s, &a.text("authAccountName")?, o).map(Some)
}

fn auth_account(ctx: &CliContext, s: &Session, text: &str, o: &Owner) -> Result<Auth, CliError> {
    let (domain, name) = object_ref(ctx, s, text)?;
    let name = real_account(ctx, &domain, &name)?;
    let is_owner = domain == o.domain && name == o.name;
    // guide.txt:9318-9320: server and domain administrators have every right.
    let admin = Session::load(&ctx.store, &name, &domain)?;
    let admin_domain = ctx.store.domain_settings(&o.domain).ok().and_then(|d| {
        d.get(b"AdminDomainName".as_slice())
            .and_then(Value::as_text)
            .map(Cow::into_owned)
    });
    let all = is_owner
        || admin.may_admin(
            &o.domain,
            admin_domain.as_deref(),
            Some("CanAccessMailboxes"),
        );
    Ok(Auth { domain, name, all })
}

/// The rights `auth` has on mailbox `mailbox` of `o`.
fn rights(
    ctx: &CliContext,
    o: &Owner,
    auth: Option<&Auth>,
    mailbox: &str,
) -> Result<Rights, CliError> {
    match auth {
        None => Ok(Rights::ALL),
        Some(x) if x.all => Ok(Rights::ALL),
        Some(x) => {
            let stored = ctx.store.account_info(&o.domain, &o.name, acl::INFO_KEY)?;
            let list = acl::get(stored.as_ref(), mailbox);
            Ok(acl::effective(&list, &o.domain, &x.name, &x.domain))
        }
    }
}

/// Fails unless `auth` has every right in `letters` on `mailbox`.
fn require(
    ctx: &CliContext,
    o: &Owner,
    auth: Option<&Auth>,
    mailbox: &str,
    letters: &str,
) -> Result<(), CliError> {
    let need = letters.chars().fold(Rights::NONE, |r, c| r.union(right(c)));
    if rights(ctx, o, auth, mailbox)?.contains(need) {
        Ok(())
    } else {
        Err(denied())
    }
}

/// The mailbox one level up (`A/B` → `A`); `None` at the top level.
fn parent_of(name: &str) -> Option<&str> {
    name.rsplit_once('/').map(|(p, _)| p)
}

/// guide.txt:6224-6228: creating `Archive/March` needs Create on `Archive`; a top-level mailbox
/// has no outer mailbox, so only the owner and administrators create one.
fn require_create(
    ctx: &CliContext,
    o: &Owner,
    auth: Option<&Auth>,
    name: &str,
) -> Result<(), CliError> {
    match (auth, parent_of(name)) {
        (None, _) | (Some(Auth { all: true, .. }), _) => Ok(()),
        (Some(_), Some(p)) => require(ctx, o, auth, p, "c"),
        (Some(_), None) => Err(denied()),
    }
}

fn mailbox_name(a: &mut Args) -> Result<String, CliError> {
    let raw = a.text("mailboxName")?;
    Ok(names::validate(&raw)?)
}

/// `MAILBOX` or `MAILBOXES`; true for the latter.
fn mailbox_keyword(a: &mut Args) -> Result<bool, CliError> {
    if a.keyword("MAILBOXES") {
        return Ok(true);
    }
    a.expect_keyword("MAILBOX")?;
    Ok(false)
}

/// The information dictionary of one mailbox (GETMAILBOXINFO, LISTMAILBOXES; the guide leaves the
/// keys open, guide.txt:6279-6283).
fn info(ctx: &CliContext, o: &Owner, name: &str) -> Result<Value, CliError> {
    let (path, format) = o.boxes.find(name)?.ok_or(MailboxError::NotFound)?;
    let mb = ctx.mailboxes.open(&path, format)?;
    let list = mb.list();
    let size: u64 = list.iter().map(|m| m.size).sum();
    let unseen = list
        .iter()
        .filter(|m| !m.flags.contains(crate::mailbox::Flags::SEEN))
        .count();
    Ok(crate::format::dict([
        ("Format", Value::str(format.extension())),
        ("Messages", Value::str(list.len().to_string())),
        ("Unseen", Value::str(unseen.to_string())),
        ("Size", Value::str(size.to_string())),
        ("UIDNext", Value::str(mb.uid_next().to_string())),
        ("UIDValidity", Value::str(mb.uid_validity().to_string())),
    ]))
}

/// IMAP LIST wildcards (RFC 3501 §6.3.8): `*` matches anything, `%` anything but `/`.
fn matches_filter(filter: &str, name: &str) -> bool {
    let p: Vec<char> = filter.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // ok[j]: the pattern read so far matches name[..j].
    let mut ok = vec![false; n.len() + 1];
    ok[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' | '%' => {
                for j in 0..=n.len() {
                    next[j] = ok[j] || (j > 0 && next[j - 1] && (pc == '*' || n[j - 1] != '/'));
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = ok[j - 1] && n[j - 1] == c;
                }
            }
        }
        ok = next;
    }
    ok[n.len()]
}

/// `LISTMAILBOXES accountName [ FILTER filter ] [ AUTH authAccountName ]` (guide.txt:6180-6210).
pub(super) fn list_mailboxes(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    let filter = if a.keyword("FILTER") {
        a.text("filter")?
    } else {
        "*".to_string()
    };
    if filter.len() > MAX_FILTER {
        return Err(CliError::new("Filter too long"));
    }
    let who = auth(ctx, s, a, &o)?;
    a.end()?;
    let mut out = Dict::new();
    for Listed {
        name,
        storage,
        folder,
    } in o.boxes.list()?
    {
        if !matches_filter(&filter, &name) {
            continue;
        }
        let r = rights(ctx, &o, who.as_ref(), &name)?;
        if !r.contains(right('l')) {
            continue;
        }
        let own = match storage {
            Some(_) if r.contains(right('r')) => info(ctx, &o, &name)?,
            Some(_) => Value::Array(Vec::new()),
            None => Value::Array(Vec::new()),
        };
        let v = match (storage.is_some(), folder) {
            (true, true) => Value::Array(vec![own]),
            _ => own,
        };
        out.insert(name.into_bytes(), v);
    }
    Ok(Some(Value::Dict(out)))
}

/// The effective `MaxMailboxes` limit of the account (guide.txt:8771-8773).
fn check_mailbox_limit(ctx: &CliContext, o: &Owner) -> Result<(), CliError> {
    let eff = ctx.store.account_effective_settings(&o.domain, &o.name)?;
    let limit = eff
        .get(b"MaxMailboxes".as_slice())
        .and_then(Value::as_text)
        .unwrap_or(Cow::Borrowed("unlimited"));
    if limit.eq_ignore_ascii_case("unlimited") {
        return Ok(());
    }
    let max: usize = limit
        .parse()
        .map_err(|_| CliError::new(format!("MaxMailboxes: {limit:?} is not a number")))?;
    let used = o
        .boxes
        .list()?
        .iter()
        .filter(|l| l.storage.is_some())
        .count();
    if used >= max {
        return Err(CliError::new("Too many mailboxes in this account"));
    }
    Ok(())
}

/// `CREATEMAILBOX accountName MAILBOX mailboxName [ AUTH authAccountName ]` (guide.txt:6211-6230).
pub(super) fn create_mailbox(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("MAILBOX")?;
    let raw = a.text("mailboxName")?;
    let req = names::parse_create_name(&raw)?;
    let who = auth(ctx, s, a, &o)?;
    a.end()?;
    require_create(ctx, &o, who.as_ref(), &req.name)?;
    if o.boxes.kind() == AccountType::MultiMailbox && !req.directory_only {
        check_mailbox_limit(ctx, &o)?;
    }
    let eff = ctx.store.account_effective_settings(&o.domain, &o.name)?;
    let default = match eff
        .get(b"DefaultMailboxType".as_slice())
        .and_then(Value::as_text)
    {
        Some(t) if t.eq_ignore_ascii_case("MailDir") => Format::Mdir,
        _ => Format::Mbox,
    };
    let name = o.boxes.create(&ctx.mailboxes, &raw, default)?;
    // guide.txt:9363-9366: a new submailbox inherits its parent's ACL.
    if let Some(p) = parent_of(&name) {
        let stored = ctx.store.account_info(&o.domain, &o.name, acl::INFO_KEY)?;
        let inherited = acl::get(stored.as_ref(), p);
        if !inherited.is_empty() {
            let v = acl::put(stored, &name, &inherited);
            ctx.store
                .set_account_info(&o.domain, &o.name, acl::INFO_KEY, v)?;
        }
    }
    Ok(None)
}

/// `DELETEMAILBOX accountName MAILBOX[ES] mailboxName [ AUTH authAccountName ]` (guide.txt:6231-6253).
pub(super) fn delete_mailbox(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    let children = mailbox_keyword(a)?;
    let name = mailbox_name(a)?;
    let who = auth(ctx, s, a, &o)?;
    a.end()?;
    require_create(ctx, &o, who.as_ref(), &name)?;
    require(ctx, &o, who.as_ref(), &name, "d")?;
    let deleted = o.boxes.delete(&ctx.mailboxes, &name, children)?;
    let stored = ctx.store.account_info(&o.domain, &o.name, acl::INFO_KEY)?;
    if stored.is_some() {
        let v = acl::rename(stored, &[], &deleted);
        ctx.store
            .set_account_info(&o.domain, &o.name, acl::INFO_KEY, v)?;
    }
    Ok(None)
}

/// `RENAMEMAILBOX accountName MAILBOX[ES] mailboxName INTO newMailboxName [ AUTH authAccountName ]`
/// (guide.txt:6254-6278).
pub(super) fn rename_mailbox(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    let children = mailbox_keyword(a)?;
    let from = mailbox_name(a)?;
    a.expect_keyword("INTO")?;
    let to = {
        let raw = a.text("newMailboxName")?;
        names::validate(&raw)?
    };
    let who = auth(ctx, s, a, &o)?;
    a.end()?;
    require_create(ctx, &o, who.as_ref(), &from)?;
    require(ctx, &o, who.as_ref(), &from, "d")?;
    require_create(ctx, &o, who.as_ref(), &to)?;
    let moved = o.boxes.rename(&ctx.mailboxes, &from, &to, children)?;
    let stored = ctx.store.account_info(&o.domain, &o.name, acl::INFO_KEY)?;
    if stored.is_some() {
        let v = acl::rename(stored, &moved, &[]);
        ctx.store
            .set_account_info(&o.domain, &o.name, acl::INFO_KEY, v)?;
    }
    Ok(None)
}

/// `GETMAILBOXINFO accountName MAILBOX mailboxName [ AUTH authAccountName ]` (guide.txt:6279-6296).
pub(super) fn get_mailbox_info(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("MAILBOX")?;
    let name = mailbox_name(a)?;
    let who = auth(ctx, s, a, &o)?;
    a.end()?;
    require(ctx, &o, who.as_ref(), &name, "r")?;
    info(ctx, &o, &name).map(Some)
}

/// `GETMAILBOXSESSIONS accountName MAILBOX mailboxName` (an extension, issue 6): the sessions
/// of any account that have the mailbox selected (IMAP) or open (POP), found by where it is
/// stored, so sessions on a shared mailbox or through an alias are included.
pub(super) fn get_mailbox_sessions(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("MAILBOX")?;
    let name = mailbox_name(a)?;
    a.end()?;
    let (path, _) = o.boxes.find(&name)?.ok_or(MailboxError::NotFound)?;
    let list = ctx.sessions.on_mailbox(&path);
    Ok(Some(Value::Array(
        list.into_iter()
            .map(|i| super::cmd_session::session_dict(i, true))
            .collect(),
    )))
}

/// Fails unless the mailbox exists.
fn existing(o: &Owner, name: &str) -> Result<(), CliError> {
    match o.boxes.find(name)? {
        Some(_) => Ok(()),
        None => Err(MailboxError::NotFound.into()),
    }
}

/// `GETMAILBOXACL accountName MAILBOX mailboxName [ AUTH authAccountName ]` (guide.txt:6297-6315).
pub(super) fn get_mailbox_acl(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("MAILBOX")?;
    let name = mailbox_name(a)?;
    let who = auth(ctx, s, a, &o)?;
    a.end()?;
    existing(&o, &name)?;
    require(ctx, &o, who.as_ref(), &name, "a")?;
    let stored = ctx.store.account_info(&o.domain, &o.name, acl::INFO_KEY)?;
    let out: Dict = acl::get(stored.as_ref(), &name)
        .into_iter()
        .map(|(id, r)| (id.into_bytes(), Value::str(r.to_string())))
        .collect();
    Ok(Some(Value::Dict(out)))
}

/// `SETMAILBOXACL accountName MAILBOX mailboxName [ AUTH authAccountName ] newACL`
/// (guide.txt:6316-6351).
pub(super) fn set_mailbox_acl(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("MAILBOX")?;
    let name = mailbox_name(a)?;
    let who = auth(ctx, s, a, &o)?;
    let changes = a.dict("newACL")?;
    a.end()?;
    existing(&o, &name)?;
    require(ctx, &o, who.as_ref(), &name, "a")?;
    let stored = ctx.store.account_info(&o.domain, &o.name, acl::INFO_KEY)?;
    let mut list = acl::get(stored.as_ref(), &name);
    acl::modify(&mut list, &changes).map_err(CliError::new)?;
    let v = acl::put(stored, &name, &list);
    ctx.store
        .set_account_info(&o.domain, &o.name, acl::INFO_KEY, v)?;
    Ok(None)
}

/// `GETMAILBOXRIGHTS accountName MAILBOX mailboxName AUTH authAccountName` (guide.txt:6352-6369).
pub(super) fn get_mailbox_rights(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("MAILBOX")?;
    let name = mailbox_name(a)?;
    a.expect_keyword("AUTH")?;
    let who = auth_account(ctx, s, &a.text("authAccountName")?, &o)?;
    a.end()?;
    existing(&o, &name)?;
    let r = rights(ctx, &o, Some(&who), &name)?;
    Ok(Some(Value::str(r.to_string())))
}

/// `GETACCOUNTSUBSCRIPTION accountName` (guide.txt:6370-6378).
pub(super) fn get_account_subscription(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    let stored = ctx
        .store
        .account_info(&o.domain, &o.name, subscription::KEY)?;
    let mut d = Dict::new();
    if let Some(v) = stored {
        d.insert(subscription::KEY.as_bytes().to_vec(), v);
    }
    Ok(Some(Value::Array(
        subscription::list(&d).into_iter().map(Value::str).collect(),
    )))
}

/// `SETACCOUNTSUBSCRIPTION accountName newSubscription` (guide.txt:6379-6390).
pub(super) fn set_account_subscription(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    let list = a.string_array("newSubscription")?;
    a.end()?;
    let mut d = Dict::new();
    subscription::set(&mut d, &list)?;
    let v = d
        .shift_remove(subscription::KEY.as_bytes())
        .unwrap_or(Value::Array(Vec::new()));
    ctx.store
        .set_account_info(&o.domain, &o.name, subscription::KEY, v)?;
    Ok(None)
}

/// `GETMAILBOXALIASES accountName` (guide.txt:6391-6400).
pub(super) fn get_mailbox_aliases(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    let stored = ctx.store.account_info(&o.domain, &o.name, ALIASES_KEY)?;
    Ok(Some(match stored {
        Some(v @ Value::Dict(_)) => v,
        _ => Value::Dict(Dict::new()),
    }))
}

/// `SETMAILBOXALIASES accountName newAliases` (guide.txt:6401-6411; 9491-9522: an alias is a
/// top-level name pointing at a mailbox name such as `~sales/INBOX`).
pub(super) fn set_mailbox_aliases(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let o = owner(ctx, s, &a.text("accountName")?)?;
    let aliases = a.dict("newAliases")?;
    a.end()?;
    if aliases.len() > MAX_ALIASES {
        return Err(CliError::new("Too many mailbox aliases"));
    }
    for (k, v) in &aliases {
        let alias = std::str::from_utf8(k).map_err(|_| CliError::new("Illegal mailbox alias"))?;
        let alias = names::validate(alias)?;
        if alias.contains('/') {
            return Err(CliError::new(
                "A mailbox alias cannot contain '/' (top level only)",
            ));
        }
        let target = v
            .as_text()
            .ok_or_else(|| CliError::new("A mailbox alias must point to a mailbox name"))?;
        if target.is_empty()
            || target.len() > names::MAX_NAME_LEN
            || target.chars().any(char::is_control)
        {
            return Err(CliError::new(format!(
                "Illegal mailbox alias target: {target:?}"
            )));
        }
    }
    ctx.store
        .set_account_info(&o.domain, &o.name, ALIASES_KEY, Value::Dict(aliases))?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::matches_filter;
    use crate::cli::tests::fixture;
    use crate::cli::{execute, reply_lines, CliContext, Session};
    use crate::format::Dict;
    use crate::store::AccountType;

    fn run(ctx: &CliContext, s: &Session, line: &str) -> String {
        String::from_utf8(reply_lines(&execute(ctx, s, line.as_bytes()))).unwrap()
    }

    fn data(ctx: &CliContext, s: &Session, line: &str) -> String {
        let r = run(ctx, s, line);
        r.strip_prefix("200 data follow\r\n")
            .unwrap_or_else(|| panic!("{line}: {r}"))
            .to_string()
    }

    #[test]
    fn create_list_rename_delete() {
        let (_d, ctx) = fixture();
        let pm = Session::load(&ctx.store, "postmaster", "example.com").unwrap();
        for name in ["Sent", "Archive/2024", "Folder/", "Box.mdir"] {
            assert_eq!(
                run(
                    &ctx,
                    &pm,
                    &format!("CREATEMAILBOX postmaster MAILBOX \"{name}\"")
                ),
                "200 OK",
                "{name}"
            );
        }
        assert_eq!(
            run(&ctx, &pm, "CREATEMAILBOX postmaster MAILBOX Sent"),
            "501 Mailbox already exists"
        );
        // INBOX does not exist before the first delivery; Archive is a folder only.
        let list = data(&ctx, &pm, "LISTMAILBOXES postmaster");
        assert!(list.contains("Archive=()"), "{list}");
        assert!(list.contains("Folder=()"), "{list}");
        assert!(
            list.contains("\"Archive/2024\"={Format=mbox;Messages=0;"),
            "{list}"
        );
        assert!(list.contains("Box={Format=mdir;"), "{list}");
        assert_eq!(
            data(&ctx, &pm, "LISTMAILBOXES postmaster FILTER %"),
            data(&ctx, &pm, "LISTMAILBOXES postmaster FILTER \"%\"")
        );
        assert!(!data(&ctx, &pm, "LISTMAILBOXES postmaster FILTER %").contains("Archive/2024"));
        assert_eq!(
            run(
                &ctx,
                &pm,
                "RENAMEMAILBOX postmaster MAILBOXES Archive INTO Old"
            ),
            "200 OK"
        );
        let list = data(&ctx, &pm, "LISTMAILBOXES postmaster");
        assert!(list.contains("\"Old/2024\"="), "{list}");
        assert!(!list.contains("Archive"), "{list}");
        assert_eq!(
            run(
                &ctx,
                &pm,
                "RENAMEMAILBOX postmaster MAILBOX Sent INTO Old/Sent"
            ),
            "200 OK"
        );
        assert_eq!(
            run(&ctx, &pm, "DELETEMAILBOX postmaster MAILBOX INBOX"),
            "501 INBOX cannot be deleted"
        );
        assert_eq!(
            run(&ctx, &pm, "DELETEMAILBOX postmaster MAILBOXES Old"),
            "200 OK"
        );
        let list = data(&ctx, &pm, "LISTMAILBOXES postmaster");
        assert!(!list.contains("Old"), "{list}");
        assert_eq!(
            run(&ctx, &pm, "DELETEMAILBOX postmaster MAILBOX Old"),
            "501 Mailbox does not exist"
        );
        assert!(data(&ctx, &pm, "GETMAILBOXINFO postmaster MAILBOX Box").contains("Messages=0"));
    }

    #[test]
    fn traversal_names_are_refused() {
        let (dir, ctx) = fixture();
        let pm = Session::load(&ctx.store, "postmaster", "example.com").unwrap();
        for name in [
            "../x",
            "/etc",
            "a/../../b",
            ".hidden",
            "a//b",
            "~joe/INBOX",
            "a\\\\b",
        ] {
            let r = run(
                &ctx,
                &pm,
                &format!("CREATEMAILBOX postmaster MAILBOX \"{name}\""),
            );
            assert!(r.starts_with("501 Illegal mailbox name"), "{name}: {r}");
            let r = run(
                &ctx,
                &pm,
                &format!("RENAMEMAILBOX postmaster MAILBOX INBOX INTO \"{name}\""),
            );
            assert!(r.starts_with("501 Illegal mailbox name"), "{name}: {r}");
        }
        assert!(!dir.path().join("Accounts/x.mbox").exists());
    }

    #[test]
    fn acl_rights_and_auth() {
        let (_d, ctx) = fixture();
        let boss = Session::load(&ctx.store, "boss", "client1.com").unwrap();
        let joe = Session::load(&ctx.store, "joe", "client1.com").unwrap();
        // joe manages his own mailboxes; boss lacks CanAccessMailboxes.
        assert_eq!(run(&ctx, &joe, "CREATEMAILBOX * MAILBOX Shared"), "200 OK");
        assert_eq!(
            run(&ctx, &boss, "LISTMAILBOXES joe"),
            "501 Not enough access rights"
        );
        assert_eq!(
            run(
                &ctx,
                &joe,
                "SETMAILBOXACL joe MAILBOX Shared {anyone=l; boss=\"+rs\"; -boss=s;}"
            ),
            "200 OK"
        );
        assert_eq!(
            data(&ctx, &joe, "GETMAILBOXACL joe MAILBOX Shared"),
            "{anyone=l;boss=rs;\"-boss\"=s;}"
        );
        assert_eq!(
            data(&ctx, &joe, "GETMAILBOXRIGHTS joe MAILBOX Shared AUTH boss"),
            "lr"
        );
        assert_eq!(
            data(&ctx, &joe, "GETMAILBOXRIGHTS joe MAILBOX Shared AUTH joe"),
            "lrswdipca"
        );
        assert_eq!(
            data(
                &ctx,
                &joe,
                "GETMAILBOXRIGHTS joe MAILBOX Shared AUTH postmaster@example.com"
            ),
            "lrswdipca"
        );
        ctx.store
            .create_account("example.com", "eve", AccountType::MultiMailbox, Dict::new())
            .unwrap();
        assert_eq!(
            data(
                &ctx,
                &joe,
                "GETMAILBOXRIGHTS joe MAILBOX Shared AUTH eve@example.com"
            ),
            "l"
        );
        // On behalf of boss: Shared is listed, Select works, Admin does not.
        assert_eq!(run(&ctx, &joe, "CREATEMAILBOX * MAILBOX Private"), "200 OK");
        let list = data(&ctx, &joe, "LISTMAILBOXES joe AUTH boss");
        assert!(list.starts_with("{Shared={Format=mbox;"), "{list}");
        assert!(!list.contains("Private"), "{list}");
        assert!(
            data(&ctx, &joe, "GETMAILBOXINFO joe MAILBOX Shared AUTH boss").contains("UIDNext")
        );
        assert_eq!(
            run(&ctx, &joe, "GETMAILBOXACL joe MAILBOX Shared AUTH boss"),
            "501 Not enough access rights"
        );
        assert_eq!(
            run(&ctx, &joe, "CREATEMAILBOX joe MAILBOX Shared/Sub AUTH boss"),
            "501 Not enough access rights"
        );
        assert_eq!(
            run(
                &ctx,
                &joe,
                "SETMAILBOXACL joe MAILBOX Shared {boss=\"+c\";}"
            ),
            "200 OK"
        );
        assert_eq!(
            run(&ctx, &joe, "CREATEMAILBOX joe MAILBOX Shared/Sub AUTH boss"),
            "200 OK"
        );
        // The submailbox inherited Shared's ACL; a rename carries it along.
        assert_eq!(
            data(&ctx, &joe, "GETMAILBOXACL joe MAILBOX Shared/Sub"),
            "{anyone=l;boss=rsc;\"-boss\"=s;}"
        );
        assert_eq!(
            run(
                &ctx,
                &joe,
                "RENAMEMAILBOX joe MAILBOX Shared/Sub INTO Shared/Sub2"
            ),
            "200 OK"
        );
        assert_eq!(
            data(&ctx, &joe, "GETMAILBOXACL joe MAILBOX Shared/Sub2"),
            "{anyone=l;boss=rsc;\"-boss\"=s;}"
        );
        assert_eq!(
            run(&ctx, &joe, "SETMAILBOXACL joe MAILBOX Shared {boss=x;}"),
            "501 Illegal access right letter: 'x'"
        );
        assert_eq!(
            run(&ctx, &joe, "SETMAILBOXACL joe MAILBOX Nope {boss=l;}"),
            "501 Mailbox does not exist"
        );
        assert_eq!(
            run(&ctx, &joe, "GETMAILBOXRIGHTS joe MAILBOX Shared"),
            "501 Syntax error: 'AUTH' expected"
        );
        // A user cannot reach another account's mailboxes, even with AUTH.
        assert_eq!(
            run(&ctx, &joe, "LISTMAILBOXES boss AUTH joe"),
            "501 Not enough access rights"
        );
    }

    #[test]
    fn subscription_and_aliases() {
        let (_d, ctx) = fixture();
        let joe = Session::load(&ctx.store, "joe", "client1.com").unwrap();
        assert_eq!(data(&ctx, &joe, "GETACCOUNTSUBSCRIPTION *"), "()");
        assert_eq!(
            run(
                &ctx,
                &joe,
                "SETACCOUNTSUBSCRIPTION * (INBOX, \"~boss/INBOX\")"
            ),
            "200 OK"
        );
        assert_eq!(
            data(&ctx, &joe, "GETACCOUNTSUBSCRIPTION joe"),
            "(INBOX,\"~boss/INBOX\")"
        );
        assert_eq!(data(&ctx, &joe, "GETMAILBOXALIASES *"), "{}");
        assert_eq!(
            run(
                &ctx,
                &joe,
                "SETMAILBOXALIASES * {salesBox=\"~sales/INBOX\";}"
            ),
            "200 OK"
        );
        assert_eq!(
            data(&ctx, &joe, "GETMAILBOXALIASES *"),
            "{salesBox=\"~sales/INBOX\";}"
        );
        assert!(run(&ctx, &joe, "SETMAILBOXALIASES * {\"a/b\"=x;}").starts_with("501 "));
        assert!(run(&ctx, &joe, "SETMAILBOXALIASES * {\"..\"=x;}").starts_with("501 "));
    }

    #[test]
    fn imap_wildcards() {
        assert!(matches_filter("*", "INBOX/a/b"));
        assert!(matches_filter("%", "INBOX"));
        assert!(!matches_filter("%", "INBOX/a"));
        assert!(matches_filter("INBOX/%", "INBOX/a"));
        assert!(!matches_filter("INBOX/%", "INBOX/a/b"));
        assert!(matches_filter("I*X", "INBOX"));
        assert!(!matches_filter("I*Y", "INBOX"));
        assert!(matches_filter("", ""));
        let long = "*".repeat(1000);
        assert!(matches_filter(&long, &"a".repeat(1000)));
    }
}
