//! Account, group, forwarder and access-rights commands (guide.txt:5388-5800, 6123-6135,
//! 6164-6173, 7241-7262; spec B §3.1-3.3, §3.13).
//!
//! Names (spec B §2.7): `name@domain` (domain or domain alias), `name` (the caller's domain), or
//! `*` (the caller's own account) where the guide allows it.

use std::borrow::Cow;

use super::args::Args;
use super::rights::{denied, MASTER, SETTINGS};
use super::{CliContext, CliError, CmdResult, Session};
use crate::format::{Dict, Value};
use crate::kernel::rules::builtin::AUTO_REPLY;
use crate::kernel::rules::{parse_rules, rules_to_value, validate_rules, Action, Rule, RulesRight};
use crate::store::{AccountType, StoreError};

/// Splits `name[@domain]` (or `*`) into the real domain and the name.
pub(super) fn object_ref(
    ctx: &CliContext,
    s: &Session,
    text: &str,
) -> Result<(String, String), CliError> {
    if text == "*" {
        return Ok((s.domain.clone(), s.user.clone()));
    }
    match text.rsplit_once('@') {
        Some((name, domain)) => {
            let d = ctx
                .store
                .resolve_domain(domain)
                .ok_or_else(|| CliError::from(StoreError::UnknownDomain))?;
            Ok((d, name.to_string()))
        }
        None => Ok((s.domain.clone(), text.to_string())),
    }
}

/// The real domain for an optional `domainName` argument (`*` or absent: the caller's domain).
pub(super) fn domain_ref(
    ctx: &CliContext,
    s: &Session,
    name: Option<&str>,
) -> Result<String, CliError> {
    match name {
        None | Some("*") => Ok(s.domain.clone()),
        Some(n) => ctx
            .store
            .resolve_domain(n)
            .ok_or_else(|| StoreError::UnknownDomain.into()),
    }
}

/// Fails unless the session administers domain `d` (with sub-right `sub` for a domain admin).
pub(super) fn require_admin(
    ctx: &CliContext,
    s: &Session,
    d: &str,
    sub: Option<&str>,
) -> Result<(), CliError> {
    let admin_domain = if s.all_domains() {
        None
    } else {
        ctx.store
            .domain_settings(d)
            .ok()
            .and_then(|ds| dict_text(&ds, "AdminDomainName").map(Cow::into_owned))
    };
    if s.may_admin(d, admin_domain.as_deref(), sub) {
        Ok(())
    } else {
        Err(denied())
    }
}

fn string_list(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::from).collect())
}

/// `ListAccounts [ domainName ]` — DomainAdmin.
pub(super) fn list_accounts(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = a.optional_text(0, "domainName")?;
    a.end()?;
    let d = domain_ref(ctx, s, d.as_deref())?;
    require_admin(ctx, s, &d, None)?;
    let list: Dict = ctx
        .store
        .list_accounts(&d)?
        .into_iter()
        .map(|(n, t)| (n.into_bytes(), Value::str(t.name())))
        .collect();
    Ok(Some(Value::Dict(list)))
}

/// `CreateAccount accountName [accountType] [external] [settings]` — DomainAdmin + CanCreateAccounts.
pub(super) fn create_account(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let mut kind = AccountType::MultiMailbox;
    for t in ["MultiMailbox", "TextMailbox", "MailDirMailbox"] {
        if a.keyword(t) {
            kind = AccountType::parse(t).unwrap_or(kind);
            break;
        }
    }
    if a.keyword("external") {
        // guide.txt:5421-5424: an INBOX in the legacy mail spool; the store keeps none.
        return Err(CliError::new("External INBOX is not supported"));
    }
    let settings = if a.remaining() > 0 {
        a.dict("settings")?
    } else {
        Dict::new()
    };
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateAccounts"))?;
    ctx.store
        .create_account(&d, &name, kind, s.filter_settings(settings))?;
    Ok(None)
}

/// `RenameAccount oldAccountName into newAccountName` — DomainAdmin + CanCreateAccounts on both.
pub(super) fn rename_account(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, old) = object_ref(ctx, s, &a.text("oldAccountName")?)?;
    a.expect_keyword("into")?;
    let (nd, new) = object_ref(ctx, s, &a.text("newAccountName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateAccounts"))?;
    require_admin(ctx, s, &nd, Some("CanCreateAccounts"))?;
    ctx.store.rename_account(&d, &old, &nd, &new)?;
    Ok(None)
}

/// `DeleteAccount oldAccountName` — DomainAdmin + CanCreateAccounts.
pub(super) fn delete_account(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateAccounts"))?;
    if s.is_self(&d, &name) {
        return Err(CliError::new("You cannot remove your own account"));
    }
    ctx.store.delete_account(&d, &name)?;
    Ok(None)
}

/// The account named by the only argument, readable by its owner or an administrator.
fn own_or_admin(ctx: &CliContext, s: &Session, a: &mut Args) -> Result<(String, String), CliError> {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    if !s.is_self(&d, &name) {
        require_admin(ctx, s, &d, None)?;
    }
    Ok((d, name))
}

/// `GetAccountSettings accountName` — own account, or DomainAdmin.
pub(super) fn get_account_settings(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = own_or_admin(ctx, s, a)?;
    a.end()?;
    Ok(Some(Value::Dict(ctx.store.account_settings(&d, &name)?)))
}

/// `GetAccountEffectiveSettings accountName` — own account, or DomainAdmin.
pub(super) fn get_account_effective_settings(
    ctx: &CliContext,
    s: &Session,
    a: &mut Args,
) -> CmdResult {
    let (d, name) = own_or_admin(ctx, s, a)?;
    a.end()?;
    Ok(Some(Value::Dict(
        ctx.store.account_effective_settings(&d, &name)?,
    )))
}

/// `GetAccountInfo accountName Key keyName` — own account, or DomainAdmin.
pub(super) fn get_account_info(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = own_or_admin(ctx, s, a)?;
    a.expect_keyword("Key")?;
    let key = a.text("keyName")?;
    a.end()?;
    // guide.txt:5628-5629: a missing element is the empty string.
    Ok(Some(
        ctx.store
            .account_info(&d, &name, &key)?
            .unwrap_or_else(|| Value::str("")),
    ))
}

/// `UpdateAccountSettings accountName newSettings` — DomainAdmin (allowed keys only).
pub(super) fn update_account_settings(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let settings = a.dict("newSettings")?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    ctx.store
        .update_account_settings(&d, &name, s.filter_settings(settings))?;
    Ok(None)
}

/// `SetAccountSettings accountName newSettings` — SysAdmin.
pub(super) fn set_account_settings(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let settings = a.dict("newSettings")?;
    a.end()?;
    ctx.store.set_account_settings(&d, &name, settings)?;
    Ok(None)
}

/// `SetAccountPassword accountName To newPassword` — DomainAdmin + BasicSettings.
pub(super) fn set_account_password(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("To")?;
    let pw = a.bytes("newPassword")?;
    a.end()?;
    if !(s.is_self(&d, &name) && own_password_allowed(ctx, &d, &name)) {
        require_admin(ctx, s, &d, Some("BasicSettings"))?;
    }
    ctx.store.set_password(&d, &name, &pw)?;
    Ok(None)
}

/// Whether a user may change their own password: the account's effective `PWDAllowed`
/// ("Allow to Modify", through PWD and the WebUser Interface, guide.txt:8669-8671).
fn own_password_allowed(ctx: &CliContext, d: &str, name: &str) -> bool {
    ctx.store
        .account_effective_settings(d, name)
        .ok()
        .and_then(|e| dict_text(&e, "PWDAllowed").map(|v| v.eq_ignore_ascii_case("YES")))
        .unwrap_or(false)
}

/// `VerifyAccountPassword accountName PASSWORD password` — DomainAdmin.
pub(super) fn verify_account_password(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.expect_keyword("PASSWORD")?;
    let pw = a.bytes("password")?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    if ctx.store.check_password(&d, &name, &pw)? {
        Ok(None)
    } else {
        Err(CliError::new("Incorrect password"))
    }
}

/// `GetAccountAliases accountName` — DomainAdmin.
pub(super) fn get_account_aliases(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    Ok(Some(string_list(ctx.store.account_aliases(&d, &name)?)))
}

/// `SetAccountAliases accountName newAliases` — DomainAdmin + CanCreateAliases.
pub(super) fn set_account_aliases(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let aliases = a.string_array("newAliases")?;
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateAliases"))?;
    ctx.store.set_account_aliases(&d, &name, aliases)?;
    Ok(None)
}

/// `GetAccountRules accountName` — DomainAdmin.
pub(super) fn get_account_rules(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = own_or_admin(ctx, s, a)?;
    a.end()?;
    Ok(Some(ctx.store.account_rules(&d, &name)?))
}

/// `SetAccountRules accountName newRules` — DomainAdmin + CanModifyRules, or the account itself
/// within its `Automated Rules` right (guide.txt:8804-8815, 20389-20398): every rule it adds,
/// changes or removes must use only actions that right allows, except the built-in Auto-Reply
/// rule, which the user may always switch and edit (guide.txt:20395-20396).
pub(super) fn set_account_rules(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let rules = a.array("newRules")?;
    a.end()?;
    let as_admin = require_admin(ctx, s, &d, Some("CanModifyRules"));
    // guide.txt:9058-9061, 10515-11066: checked and stored in the canonical form.
    let rules = validate_rules(&Value::Array(rules), false).map_err(|e| CliError::new(e.0))?;
    if let Err(e) = as_admin {
        if !s.is_self(&d, &name) {
            return Err(e);
        }
        own_rules_allowed(ctx, &d, &name, &rules)?;
    }
    // guide.txt:11062-11064: Write To Log is the Server Administrator's.
    let logs = rules
        .iter()
        .find(|r| r.actions.iter().any(|a| matches!(a, Action::WriteToLog(_))));
    if let (Some(r), false) = (logs, s.server(SETTINGS)) {
        return Err(CliError::new(format!(
            "Rule '{}': only the Server Administrator may use 'Write To Log'",
            r.name
        )));
    }
    ctx.store
        .set_account_rules(&d, &name, rules_to_value(&rules))?;
    Ok(None)
}

/// `GetAccountRPOP accountName` — DomainAdmin, or the account itself when its `RPOPAllowed`
/// is YES (guide.txt:8794-8797): the account's remote POP records, each with `Last` once polled
/// (guide.txt:5589-5598, 12567-12594).
pub(super) fn get_account_rpop(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    if require_admin(ctx, s, &d, None).is_err() {
        own_rpop_allowed(ctx, s, &d, &name)?;
    }
    ctx.store.account_settings(&d, &name)?;
    let records =
        crate::modules::rpop::account_records(&ctx.store, &d, &name).map_err(CliError::new)?;
    Ok(Some(Value::Array(records)))
}

/// `SetAccountRPOP accountName newRecords` — DomainAdmin + CanModifyRPOP (guide.txt:5599-5613),
/// or the account itself when its `RPOPAllowed` is YES, within the RPOP module's Minimum Poll
/// Period for Users and Maximum Number of Accounts per User (guide.txt:12419-12432; the
/// administrator is not limited): replaces the records; a row with `PollEvery=never` is dropped.
pub(super) fn set_account_rpop(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let records = a.array("newRecords")?;
    a.end()?;
    let limits = match require_admin(ctx, s, &d, Some("CanModifyRPOP")) {
        Ok(()) => None,
        Err(_) => {
            own_rpop_allowed(ctx, s, &d, &name)?;
            let module = ctx
                .modules
                .get(crate::modules::rpop::NAME)
                .map(|m| super::effective_module_settings(ctx, &m))
                .ok_or_else(|| CliError::new("the RPOP module is not running"))?;
            Some(crate::modules::rpop::UserLimits::from(&module).map_err(CliError::new)?)
        }
    };
    let records = crate::modules::rpop::validate_account_records(&records, limits.as_ref())
        .map_err(CliError::new)?;
    ctx.store.set_account_rpop(&d, &name, records)?;
    Ok(None)
}

/// Fails unless `s` is account `name@d` and its effective `RPOPAllowed` is YES ("RPOP
/// Accounts": otherwise only the administrator specifies them, guide.txt:8794-8797).
fn own_rpop_allowed(ctx: &CliContext, s: &Session, d: &str, name: &str) -> Result<(), CliError> {
    let allowed = s.is_self(d, name)
        && ctx
            .store
            .account_effective_settings(d, name)
            .ok()
            .and_then(|e| dict_text(&e, "RPOPAllowed").map(|v| v.eq_ignore_ascii_case("YES")))
            .unwrap_or(false);
    if allowed {
        Ok(())
    } else {
        Err(denied())
    }
}

/// Refuses a user's own rule change that its `Automated Rules` right does not cover.
fn own_rules_allowed(ctx: &CliContext, d: &str, name: &str, new: &[Rule]) -> Result<(), CliError> {
    let right = ctx
        .store
        .account_effective_settings(d, name)
        .ok()
        .and_then(|e| dict_text(&e, "RulesAllowed").and_then(|v| RulesRight::parse(&v)))
        .unwrap_or(RulesRight::No);
    let old = parse_rules(&ctx.store.account_rules(d, name)?).unwrap_or_default();
    let changed = new
        .iter()
        .filter(|r| !old.contains(r))
        .chain(old.iter().filter(|r| !new.contains(r)));
    for r in changed {
        if r.name == AUTO_REPLY {
            continue;
        }
        if right == RulesRight::No || !r.actions.iter().all(|a| right.allows(a)) {
            return Err(CliError::new(format!(
                "Rule '{}': your account may not modify this rule",
                r.name
            )));
        }
    }
    Ok(())
}

/// `GetAccountRights accountName` — DomainAdmin.
pub(super) fn get_account_rights(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    Ok(Some(string_list(ctx.store.account_rights(&d, &name)?)))
}

/// `SetAccountRights accountName newRights` — Master; `Users` suffices outside the main domain
/// (guide.txt:7260-7261).
pub(super) fn set_account_rights(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let rights = a.string_array("newRights")?;
    a.end()?;
    let main = d.eq_ignore_ascii_case(&ctx.store.main_domain());
    if main && !s.server(MASTER) {
        return Err(denied());
    }
    ctx.store.set_account_rights(&d, &name, rights)?;
    Ok(None)
}

/// `GetWebUser accountName` — DomainAdmin.
pub(super) fn get_web_user(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    Ok(Some(Value::Dict(ctx.store.web_user(&d, &name)?)))
}

/// `SetWebUser accountName newSettings` — DomainAdmin.
pub(super) fn set_web_user(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let settings = a.dict("newSettings")?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    ctx.store.set_web_user(&d, &name, settings)?;
    Ok(None)
}

/// `GetAccountLocation accountName` — SysAdmin.
pub(super) fn get_account_location(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    a.end()?;
    let (kind, _) = ctx.store.account_location(&d, &name)?;
    let name = name.to_ascii_lowercase();
    // guide.txt:6164-6173: relative to the domain directory.
    let rel = match kind {
        AccountType::MultiMailbox => format!("{name}.macnt"),
        AccountType::TextMailbox => format!("{name}.mbox"),
        AccountType::MailDirMailbox => format!("{name}.mdir"),
    };
    Ok(Some(Value::from(rel)))
}

// ---------------------------------------------------------------- groups

/// `ListGroups [ domainName ]` — DomainAdmin.
pub(super) fn list_groups(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = a.optional_text(0, "domainName")?;
    a.end()?;
    let d = domain_ref(ctx, s, d.as_deref())?;
    require_admin(ctx, s, &d, None)?;
    Ok(Some(string_list(ctx.store.list_groups(&d)?)))
}

/// `CreateGroup groupName [ settings ]` — DomainAdmin + CanCreateGroups.
pub(super) fn create_group(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("groupName")?)?;
    let settings = if a.remaining() > 0 {
        a.dict("settings")?
    } else {
        Dict::new()
    };
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateGroups"))?;
    ctx.store.create_group(&d, &name, settings)?;
    Ok(None)
}

/// `RenameGroup oldGroupName into newGroupName` — DomainAdmin + CanCreateGroups.
pub(super) fn rename_group(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, old) = object_ref(ctx, s, &a.text("oldGroupName")?)?;
    a.expect_keyword("into")?;
    let (nd, new) = object_ref(ctx, s, &a.text("newGroupName")?)?;
    a.end()?;
    if nd != d {
        return Err(CliError::new("A group cannot be moved to another domain"));
    }
    require_admin(ctx, s, &d, Some("CanCreateGroups"))?;
    ctx.store.rename_group(&d, &old, &new)?;
    Ok(None)
}

/// `DeleteGroup groupName` — DomainAdmin + CanCreateGroups.
pub(super) fn delete_group(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("groupName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateGroups"))?;
    ctx.store.delete_group(&d, &name)?;
    Ok(None)
}

/// `GetGroup groupName` — DomainAdmin.
pub(super) fn get_group(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("groupName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    Ok(Some(Value::Dict(ctx.store.group(&d, &name)?)))
}

/// `SetGroup groupName newSettings` — DomainAdmin + CanCreateGroups (guide.txt:23237: without it
/// an administrator cannot modify groups).
pub(super) fn set_group(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("groupName")?)?;
    let settings = a.dict("newSettings")?;
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateGroups"))?;
    ctx.store.set_group(&d, &name, settings)?;
    Ok(None)
}

// ---------------------------------------------------------------- forwarders

/// `ListForwarders [ domainName ]` — DomainAdmin.
pub(super) fn list_forwarders(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = a.optional_text(0, "domainName")?;
    a.end()?;
    let d = domain_ref(ctx, s, d.as_deref())?;
    require_admin(ctx, s, &d, None)?;
    Ok(Some(string_list(ctx.store.list_forwarders(&d)?)))
}

/// `CreateForwarder forwarderName TO address` — DomainAdmin + CanCreateForwarders.
pub(super) fn create_forwarder(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("forwarderName")?)?;
    a.expect_keyword("TO")?;
    let address = a.text("address")?;
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateForwarders"))?;
    ctx.store.create_forwarder(&d, &name, &address)?;
    Ok(None)
}

/// `DeleteForwarder forwarderName` — DomainAdmin + CanCreateForwarders.
pub(super) fn delete_forwarder(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("forwarderName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, Some("CanCreateForwarders"))?;
    ctx.store.delete_forwarder(&d, &name)?;
    Ok(None)
}

/// `GetForwarder forwarderName` — DomainAdmin.
pub(super) fn get_forwarder(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, name) = object_ref(ctx, s, &a.text("forwarderName")?)?;
    a.end()?;
    require_admin(ctx, s, &d, None)?;
    Ok(Some(Value::from(ctx.store.forwarder(&d, &name)?)))
}

/// Reads a dictionary's text value (used by the domain commands too).
pub(super) fn dict_text<'a>(d: &'a Dict, key: &str) -> Option<Cow<'a, str>> {
    d.get(key.as_bytes()).and_then(Value::as_text)
}
