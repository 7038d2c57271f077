//! Personal Web Site Administration commands (guide.txt:6503-6597; spec B §3.7, #94-99):
//! GETWEBFILE, PUTWEBFILE, RENAMEWEBFILE, DELETEWEBFILE, LISTWEBFILES, GETWEBFILESINFO.
//!
//! Rights (guide.txt:6524-6526): the account owner, or "Can Modify All Domains and Account
//! Settings" (`Users`), or a domain administrator of the account's domain with the `WebSite`
//! sub-right. Storage, path checks and limits are `store::website`'s; file contents travel as
//! base64 strings (spec B §2: no datablocks in this version of the guide).
//!
//! Output choices the guide leaves open: LISTWEBFILES gives each file the dictionary
//! `{Size = bytes; Modified = ACAP time;}`; dates are ACAP time (RFC 2244 §6.5:
//! `YYYYMMDDHHMMSS`, UTC). GETWEBFILESINFO counts files and folders, as the limits do
//! (guide.txt:9541-9542).

use std::time::SystemTime;

use base64::Engine;

use super::args::Args;
use super::cmd_account::{object_ref, require_admin};
use super::{CliContext, CliError, CmdResult, Session};
use crate::format::{Dict, Value};
use crate::net::sasl::AccountId;
use crate::store::website::{Entry, Limits, Site, WebError};
use crate::store::{Object, StoreError};

impl From<WebError> for CliError {
    fn from(e: WebError) -> CliError {
        CliError::new(e.to_string())
    }
}

/// The site `accountName` names, after the rights check, with the account's limits.
fn site(ctx: &CliContext, s: &Session, a: &mut Args) -> Result<(Site, Limits), CliError> {
    let (domain, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let name = match ctx.store.lookup(&domain, &name) {
        Some(Object::Account(n)) => n,
        Some(Object::Alias { account }) => account,
        _ => return Err(StoreError::UnknownAccount.into()),
    };
    if !s.is_self(&domain, &name) {
        require_admin(ctx, s, &domain, Some("WebSite"))?;
    }
    let limits = Limits::from_settings(&ctx.store.account_effective_settings(&domain, &name)?);
    Ok((Site::of(&ctx.store, &domain, &name)?, limits))
}

/// Whether account `who` may manage the web sites of domain `domain` as an administrator ("All
/// Domains", or domain administration with `WebSite`); owners always may.
pub fn may_manage_site(ctx: &CliContext, who: &AccountId, domain: &str) -> bool {
    Session::load(&ctx.store, &who.name, &who.domain)
        .is_ok_and(|s| require_admin(ctx, &s, domain, Some("WebSite")).is_ok())
}

/// A time in ACAP format (RFC 2244 §6.5), UTC.
pub fn acap_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// `GETWEBFILE accountName FILE fileName` (guide.txt:6508-6527).
pub(super) fn get_web_file(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (site, _) = site(ctx, s, a)?;
    a.expect_keyword("FILE")?;
    let file = a.text("fileName")?;
    a.end()?;
    let (data, modified) = site.get(&file)?;
    Ok(Some(Value::Array(vec![
        Value::str(base64::engine::general_purpose::STANDARD.encode(data)),
        Value::str(acap_time(modified)),
    ])))
}

/// `PUTWEBFILE accountName FILE fileName DATA encodedData` (guide.txt:6528-6543).
pub(super) fn put_web_file(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (site, limits) = site(ctx, s, a)?;
    a.expect_keyword("FILE")?;
    let file = a.text("fileName")?;
    a.expect_keyword("DATA")?;
    let encoded = a.bytes("encodedData")?;
    a.end()?;
    let clean: Vec<u8> = encoded
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let data = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|_| CliError::new("encodedData is not base64"))?;
    site.put(&file, &data, limits)?;
    Ok(None)
}

/// `RENAMEWEBFILE accountName FILE oldFileName INTO newFileName` (guide.txt:6544-6558).
pub(super) fn rename_web_file(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (site, _) = site(ctx, s, a)?;
    a.expect_keyword("FILE")?;
    let old = a.text("oldFileName")?;
    a.expect_keyword("INTO")?;
    let new = a.text("newFileName")?;
    a.end()?;
    site.rename(&old, &new)?;
    Ok(None)
}

/// `DELETEWEBFILE accountName FILE fileName` (guide.txt:6559-6569).
pub(super) fn delete_web_file(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (site, _) = site(ctx, s, a)?;
    a.expect_keyword("FILE")?;
    let file = a.text("fileName")?;
    a.end()?;
    site.delete(&file)?;
    Ok(None)
}

/// `LISTWEBFILES accountName [ PATH filePath ]` (guide.txt:6570-6586).
pub(super) fn list_web_files(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (site, _) = site(ctx, s, a)?;
    let path = if a.keyword("PATH") {
        a.text("filePath")?
    } else {
        String::new()
    };
    a.end()?;
    let mut out = Dict::new();
    for (name, entry) in site.list(&path)? {
        let v = match entry {
            Entry::Folder => Value::Array(Vec::new()),
            Entry::File { size, modified } => {
                let mut d = Dict::new();
                d.insert(b"Size".to_vec(), Value::str(size.to_string()));
                d.insert(b"Modified".to_vec(), Value::str(acap_time(modified)));
                Value::Dict(d)
            }
        };
        out.insert(name.into_bytes(), v);
    }
    Ok(Some(Value::Dict(out)))
}

/// `GETWEBFILESINFO accountName` (guide.txt:6587-6597).
pub(super) fn get_web_files_info(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (site, _) = site(ctx, s, a)?;
    a.end()?;
    let t = site.totals()?;
    Ok(Some(Value::Array(vec![
        Value::str(t.size.to_string()),
        Value::str(t.count.to_string()),
    ])))
}

#[cfg(test)]
mod tests {
    use super::super::tests::fixture;
    use super::super::{execute, reply_lines};
    use super::*;

    fn run(ctx: &CliContext, s: &Session, line: &str) -> String {
        String::from_utf8_lossy(&reply_lines(&execute(ctx, s, line.as_bytes()))).into_owned()
    }

    fn session(ctx: &CliContext, user: &str, domain: &str) -> Session {
        Session::load(&ctx.store, user, domain).expect("session")
    }

    #[test]
    fn owner_manages_the_site_within_its_limits() {
        let (_d, ctx) = fixture();
        let joe = session(&ctx, "joe", "client1.com");
        // MaxWebSize defaults to 0: the site is disabled.
        assert_eq!(
            run(&ctx, &joe, r#"PUTWEBFILE * FILE "a.txt" DATA "aGk=""#),
            "501 the Personal Web Site is disabled"
        );
        let pm = session(&ctx, "postmaster", "example.com");
        assert_eq!(
            run(
                &ctx,
                &pm,
                r#"UpdateAccountSettings joe@client1.com {MaxWebSize = 1K; MaxWebFiles = 3;}"#
            ),
            "200 OK"
        );
        assert_eq!(
            run(&ctx, &joe, r#"PUTWEBFILE * FILE "docs/a.txt" DATA "aGk=""#),
            "200 OK"
        );
        let got = run(&ctx, &joe, r#"GETWEBFILE joe FILE "docs/a.txt""#);
        assert!(got.starts_with("200 data follow\r\n(\"aGk=\",2"), "{got}");
        let listed = run(&ctx, &joe, "LISTWEBFILES *");
        assert_eq!(listed, "200 data follow\r\n{docs=();}");
        let listed = run(&ctx, &joe, r#"LISTWEBFILES * PATH "docs""#);
        assert!(listed.contains("\"a.txt\"={Size=2;Modified=2"), "{listed}");
        assert_eq!(
            run(&ctx, &joe, "GETWEBFILESINFO *"),
            "200 data follow\r\n(2,2)"
        );
        assert_eq!(
            run(&ctx, &joe, "INFOWEBFILES *"),
            "200 data follow\r\n(2,2)"
        );
        assert_eq!(
            run(
                &ctx,
                &joe,
                r#"RENAMEWEBFILE * FILE "docs/a.txt" INTO "b.txt""#
            ),
            "200 OK"
        );
        assert_eq!(
            run(&ctx, &joe, r#"PUTWEBFILE * FILE "x/y/z" DATA """#),
            "501 Web Files limit exceeded"
        );
        assert_eq!(
            run(&ctx, &joe, r#"PUTWEBFILE * FILE "big" DATA "QUFB""#),
            "200 OK"
        );
        let big = base64::engine::general_purpose::STANDARD.encode([0u8; 2000]);
        assert_eq!(
            run(
                &ctx,
                &joe,
                &format!(r#"PUTWEBFILE * FILE "big" DATA "{big}""#)
            ),
            "501 Web Storage limit exceeded"
        );
        assert_eq!(run(&ctx, &joe, r#"DELETEWEBFILE * FILE "docs""#), "200 OK");
        assert_eq!(
            run(&ctx, &joe, r#"GETWEBFILE * FILE "docs/a.txt""#),
            "501 web file is not found"
        );
        for bad in ["../x", "/../x", "a/../../x", ".hidden", "index.html"] {
            let r = run(
                &ctx,
                &joe,
                &format!(r#"PUTWEBFILE * FILE "{bad}" DATA "aGk=""#),
            );
            assert!(r.starts_with("501 illegal web file name"), "{bad}: {r}");
        }
        assert_eq!(
            run(&ctx, &joe, r#"PUTWEBFILE * FILE "a" DATA "not base64!""#),
            "501 encodedData is not base64"
        );
    }

    #[test]
    fn others_need_the_website_right() {
        let (_d, ctx) = fixture();
        let boss = session(&ctx, "boss", "client1.com");
        assert_eq!(
            run(&ctx, &boss, "LISTWEBFILES joe"),
            "501 Not enough access rights"
        );
        ctx.store
            .set_account_rights(
                "client1.com",
                "boss",
                vec!["Domain".into(), "WebSite".into()],
            )
            .expect("rights");
        let boss = session(&ctx, "boss", "client1.com");
        assert_eq!(
            run(&ctx, &boss, "LISTWEBFILES joe"),
            "200 data follow\r\n{}"
        );
        let joe = session(&ctx, "joe", "client1.com");
        assert_eq!(
            run(&ctx, &joe, "LISTWEBFILES boss"),
            "501 Not enough access rights"
        );
        let pm = session(&ctx, "postmaster", "example.com");
        assert_eq!(
            run(&ctx, &pm, "GETWEBFILESINFO joe@client1.com"),
            "200 data follow\r\n(0,0)"
        );
        assert_eq!(
            run(&ctx, &pm, "GETWEBFILESINFO nobody@client1.com"),
            "501 Unknown account"
        );
    }

    #[test]
    fn acap_time_is_utc_digits() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400 + 3_661);
        assert_eq!(acap_time(t), "19700102010101");
    }
}
