//! Domain commands: settings, defaults, template, aliases, and the System Administrator's domain
//! lifecycle (guide.txt:5801-6163; spec B §3.4, commands #30-44, #48-50, #54-56, #60, #65-68).
//!
//! `[ domainName ]` defaults to the caller's domain; `*` names it too.

use super::args::Args;
use super::cmd_account::{domain_ref, require_admin};
use super::{CliContext, CliError, CmdResult, Session};
use crate::format::{Dict, Value};
use crate::store::Defaults;

/// Reads `[ domainName ]` when it is the only (optional) argument, checks domain administration.
fn domain_only(ctx: &CliContext, s: &Session, a: &mut Args) -> Result<String, CliError> {
    let d = a.optional_text(0, "domainName")?;
    a.end()?;
    let d = domain_ref(ctx, s, d.as_deref())?;
    require_admin(ctx, s, &d, None)?;
    Ok(d)
}

/// Reads `[ domainName ] newSettings`, checks domain administration.
fn domain_and_dict(
    ctx: &CliContext,
    s: &Session,
    a: &mut Args,
) -> Result<(String, Dict), CliError> {
    let d = a.optional_text(1, "domainName")?;
    let settings = a.dict("newSettings")?;
    a.end()?;
    let d = domain_ref(ctx, s, d.as_deref())?;
    require_admin(ctx, s, &d, None)?;
    Ok((d, settings))
}

fn dict(d: Dict) -> CmdResult {
    Ok(Some(Value::Dict(d)))
}

/// `GetDomainSettings [ domainName ]` — DomainAdmin.
pub(super) fn get_domain_settings(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = domain_only(ctx, s, a)?;
    dict(ctx.store.domain_settings(&d)?)
}

/// `GetDomainEffectiveSettings [ domainName ]` — DomainAdmin.
pub(super) fn get_domain_effective_settings(
    ctx: &CliContext,
    s: &Session,
    a: &mut Args,
) -> CmdResult {
    let d = domain_only(ctx, s, a)?;
    dict(ctx.store.domain_effective_settings(&d)?)
}

/// `UpdateDomainSettings [ domainName ] newSettings` — DomainAdmin (allowed keys only).
pub(super) fn update_domain_settings(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, settings) = domain_and_dict(ctx, s, a)?;
    let settings = s.filter_settings(settings);
    let mut merged = ctx.store.domain_settings(&d)?;
    for (k, v) in &settings {
        if v.as_bytes() == Some(b"default") {
            merged.shift_remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    check_domain_settings(ctx, &d, &merged)?;
    ctx.store.update_domain_settings(&d, settings)?;
    Ok(None)
}

/// Domain settings the server acts on are checked before they are stored: the domain's
/// certificate and key (`SSLCertificate`, `SSLPrivateKey`, PEM; guide.txt:4077-4379) must parse
/// and belong together; `IPAddresses` (Assigned IP Addresses, 7836-7860) are addresses, for a
/// secondary domain only, not assigned to any other domain.
fn check_domain_settings(ctx: &CliContext, d: &str, settings: &Dict) -> Result<(), CliError> {
    if let Some(v) = settings.get(b"IPAddresses".as_slice()) {
        let mine = crate::store::settings::ip_addresses(v).map_err(CliError::new)?;
        if !mine.is_empty() && d.eq_ignore_ascii_case(&ctx.store.main_domain()) {
            return Err(CliError::new(
                "IPAddresses: the main domain has All Available addresses",
            ));
        }
        for ip in mine {
            if let Some(other) = ctx
                .store
                .domain_with_address(ip)
                .filter(|o| !o.eq_ignore_ascii_case(d))
            {
                return Err(CliError::new(format!(
                    "IPAddresses: {ip} is already assigned to {other}"
                )));
            }
        }
    }
    let pem = |k: &str| settings.get(k.as_bytes()).and_then(Value::as_text);
    match (pem("SSLCertificate"), pem("SSLPrivateKey")) {
        (None, None) => Ok(()),
        (Some(cert), Some(key)) => crate::net::tls::check_certificate(&cert, &key)
            .map_err(|e| CliError::new(format!("SSLCertificate: {e}"))),
        _ => Err(CliError::new(
            "SSLCertificate and SSLPrivateKey must be set together",
        )),
    }
}

/// `SetDomainSettings domainName newSettings` — SysAdmin.
pub(super) fn set_domain_settings(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = a.text("domainName")?;
    let settings = a.dict("newSettings")?;
    a.end()?;
    let d = domain_ref(ctx, s, Some(&d))?;
    check_domain_settings(ctx, &d, &settings)?;
    ctx.store.set_domain_settings(&d, settings)?;
    Ok(None)
}

/// `GetAccountDefaults [ domainName ]` — DomainAdmin.
pub(super) fn get_account_defaults(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = domain_only(ctx, s, a)?;
    dict(ctx.store.defaults(Defaults::AccountDefaults(d))?)
}

/// `UpdateAccountDefaults [ domainName ] newSettings` — DomainAdmin (allowed keys only).
pub(super) fn update_account_defaults(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, settings) = domain_and_dict(ctx, s, a)?;
    ctx.store.set_defaults(
        Defaults::AccountDefaults(d),
        s.filter_settings(settings),
        true,
    )?;
    Ok(None)
}

/// `SetAccountDefaults [ domainName ] newSettings` — SysAdmin.
pub(super) fn set_account_defaults(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, settings) = domain_and_dict(ctx, s, a)?;
    ctx.store
        .set_defaults(Defaults::AccountDefaults(d), settings, false)?;
    Ok(None)
}

/// `GetWebUserDefaults [ domainName ]` — DomainAdmin.
pub(super) fn get_web_user_defaults(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = domain_only(ctx, s, a)?;
    dict(ctx.store.defaults(Defaults::WebUserDefaults(d))?)
}

/// `SetWebUserDefaults [ domainName ] newSettings` — DomainAdmin.
pub(super) fn set_web_user_defaults(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, settings) = domain_and_dict(ctx, s, a)?;
    ctx.store
        .set_defaults(Defaults::WebUserDefaults(d), settings, false)?;
    Ok(None)
}

/// `GetAccountTemplate [ domainName ]` — DomainAdmin.
pub(super) fn get_account_template(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = domain_only(ctx, s, a)?;
    dict(ctx.store.defaults(Defaults::AccountTemplate(d))?)
}

/// `UpdateAccountTemplate [ domainName ] newSettings` — DomainAdmin (allowed keys only).
pub(super) fn update_account_template(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, settings) = domain_and_dict(ctx, s, a)?;
    ctx.store.set_defaults(
        Defaults::AccountTemplate(d),
        s.filter_settings(settings),
        true,
    )?;
    Ok(None)
}

/// `SetAccountTemplate [ domainName ] newSettings` — SysAdmin.
pub(super) fn set_account_template(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (d, settings) = domain_and_dict(ctx, s, a)?;
    ctx.store
        .set_defaults(Defaults::AccountTemplate(d), settings, false)?;
    Ok(None)
}

/// `GetDomainAliases domainName` — DomainAdmin (the name is required, guide.txt:5926-5934).
pub(super) fn get_domain_aliases(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = a.text("domainName")?;
    a.end()?;
    let d = domain_ref(ctx, s, Some(&d))?;
    require_admin(ctx, s, &d, None)?;
    let aliases = ctx.store.domain_aliases(&d)?;
    Ok(Some(Value::Array(
        aliases.into_iter().map(Value::from).collect(),
    )))
}

/// `SetDomainAliases domainName newAliases` — SysAdmin.
pub(super) fn set_domain_aliases(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let d = a.text("domainName")?;
    let aliases = a.string_array("newAliases")?;
    a.end()?;
    let d = domain_ref(ctx, s, Some(&d))?;
    ctx.store.set_domain_aliases(&d, aliases)?;
    Ok(None)
}

/// `ListDomains` — SysAdmin.
pub(super) fn list_domains(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    let list = ctx.store.list_domains();
    Ok(Some(Value::Array(
        list.into_iter().map(Value::from).collect(),
    )))
}

/// `MainDomainName` — SysAdmin.
pub(super) fn main_domain_name(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    Ok(Some(Value::from(ctx.store.main_domain())))
}

fn get_defaults(ctx: &CliContext, a: &mut Args, which: Defaults) -> CmdResult {
    a.end()?;
    dict(ctx.store.defaults(which)?)
}

fn put_defaults(ctx: &CliContext, a: &mut Args, which: Defaults, merge: bool) -> CmdResult {
    let settings = a.dict("newSettings")?;
    a.end()?;
    ctx.store.set_defaults(which, settings, merge)?;
    Ok(None)
}

/// `GetDomainDefaults` — SysAdmin.
pub(super) fn get_domain_defaults(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    get_defaults(ctx, a, Defaults::DomainDefaults)
}

/// `UpdateDomainDefaults newSettings` — SysAdmin.
pub(super) fn update_domain_defaults(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    put_defaults(ctx, a, Defaults::DomainDefaults, true)
}

/// `SetDomainDefaults newSettings` — SysAdmin.
pub(super) fn set_domain_defaults(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    put_defaults(ctx, a, Defaults::DomainDefaults, false)
}

/// `GetAllAccountsDefaults` — SysAdmin.
pub(super) fn get_all_accounts_defaults(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    get_defaults(ctx, a, Defaults::AllAccountsDefaults)
}

/// `UpdateAllAccountsDefaults newSettings` — SysAdmin.
pub(super) fn update_all_accounts_defaults(
    ctx: &CliContext,
    _: &Session,
    a: &mut Args,
) -> CmdResult {
    put_defaults(ctx, a, Defaults::AllAccountsDefaults, true)
}

/// `SetAllAccountsDefaults newSettings` — SysAdmin.
pub(super) fn set_all_accounts_defaults(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    put_defaults(ctx, a, Defaults::AllAccountsDefaults, false)
}

/// `CreateDomain domainName [ settings ]` — SysAdmin.
pub(super) fn create_domain(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let name = a.text("domainName")?;
    let settings = if a.remaining() > 0 {
        a.dict("settings")?
    } else {
        Dict::new()
    };
    a.end()?;
    check_domain_settings(ctx, &name, &settings)?;
    ctx.store.create_domain(&name, settings)?;
    Ok(None)
}

/// `RenameDomain oldDomainName into newDomainName` — SysAdmin; `into` may be omitted
/// (guide.txt:6025 prints the alias form without it).
pub(super) fn rename_domain(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let old = a.text("oldDomainName")?;
    a.keyword("into");
    let new = a.text("newDomainName")?;
    a.end()?;
    ctx.store.rename_domain(&old, &new)?;
    Ok(None)
}

/// `DeleteDomain oldDomainName [ force ]` — SysAdmin.
pub(super) fn delete_domain(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let name = a.text("oldDomainName")?;
    let force = a.keyword("force");
    a.end()?;
    ctx.store.delete_domain(&name, force)?;
    Ok(None)
}
