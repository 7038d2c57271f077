//! Session commands, an extension (issue 6; the guide has none): `ListAccountSessions` and
//! `KillAccountSessions` over the server's session registry (`kernel::sessions`), which the IMAP
//! POP and WebUser modules fill at login. `GETMAILBOXSESSIONS` is with the other mailbox commands in
//! `cmd_mailbox`.
//!
//! Rights: an account may list and end its own sessions; other accounts need "All Accounts and
//! Domains" or administration of their domain (the same as `GetAccountSettings`).
//!
//! Implementation notes: killing only signals the sessions; each says goodbye on the wire (IMAP
//! `* BYE`, POP `-ERR`) and closes within moments, so a listing right after the command may
//! still show them. A WebMail session has no connection to close: it ends at its next request.

use chrono::{DateTime, Local};

use super::args::Args;
use super::cmd_account::{object_ref, require_admin};
use super::{CliContext, CliError, CmdResult, Session};
use crate::format::{dict, Value};
use crate::kernel::sessions::SessionInfo;
use crate::store::{Object, StoreError};

/// The account named by `accountName` (following account aliases), after the rights check.
fn account(ctx: &CliContext, s: &Session, a: &mut Args) -> Result<(String, String), CliError> {
    let (domain, name) = object_ref(ctx, s, &a.text("accountName")?)?;
    let name = match ctx.store.lookup(&domain, &name) {
        Some(Object::Account(n)) => n,
        Some(Object::Alias { account }) => account,
        _ => return Err(StoreError::UnknownAccount.into()),
    };
    if !s.is_self(&domain, &name) {
        require_admin(ctx, s, &domain, None)?;
    }
    Ok((domain, name))
}

/// One session as a dictionary: Module, Address, Since (local time), Mailbox when one is open;
/// `Account` too when `with_account`.
pub(super) fn session_dict(i: SessionInfo, with_account: bool) -> Value {
    let since: DateTime<Local> = i.since.into();
    let mut d = Vec::with_capacity(5);
    if with_account {
        d.push(("Account", Value::from(i.account)));
    }
    d.push(("Module", Value::from(i.module)));
    d.push(("Address", Value::from(i.address.to_string())));
    d.push((
        "Since",
        Value::from(since.format("%Y-%m-%d %H:%M:%S").to_string()),
    ));
    if let Some(m) = i.mailbox {
        d.push(("Mailbox", Value::from(m)));
    }
    dict(d)
}

/// `ListAccountSessions accountName` — own account, or DomainAdmin.
pub(super) fn list_account_sessions(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (domain, name) = account(ctx, s, a)?;
    a.end()?;
    let list = ctx.sessions.list(&domain, &name);
    Ok(Some(Value::Array(
        list.into_iter().map(|i| session_dict(i, false)).collect(),
    )))
}

/// `KillAccountSessions accountName` — own account, or DomainAdmin.
pub(super) fn kill_account_sessions(ctx: &CliContext, s: &Session, a: &mut Args) -> CmdResult {
    let (domain, name) = account(ctx, s, a)?;
    a.end()?;
    ctx.sessions.kill(&domain, &name);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use crate::cli::tests::fixture;
    use crate::cli::{execute, reply_lines, CliContext, Session, SessionRefused};
    use crate::mailbox::account::AccountMailboxes;
    use crate::net::sasl::AccountId;

    fn run(ctx: &CliContext, s: &Session, line: &str) -> String {
        String::from_utf8(reply_lines(&execute(ctx, s, line.as_bytes()))).unwrap()
    }

    fn joe() -> AccountId {
        AccountId {
            name: "joe".into(),
            domain: "client1.com".into(),
        }
    }

    fn ip() -> IpAddr {
        IpAddr::from([127, 0, 0, 2])
    }

    #[test]
    fn list_and_kill_with_rights() {
        let (_d, ctx) = fixture();
        let s = |u: &str, d: &str| Session::load(&ctx.store, u, d).unwrap();
        let (joe_s, boss) = (s("joe", "client1.com"), s("boss", "client1.com"));
        let pm = s("postmaster", "example.com");
        assert_eq!(
            run(&ctx, &joe_s, "ListAccountSessions joe"),
            "200 data follow\r\n()"
        );
        let imap = ctx.sessions.register(&joe(), "IMAP", ip(), None).unwrap();
        let pop = ctx.sessions.register(&joe(), "POP", ip(), None).unwrap();
        let own = run(&ctx, &joe_s, "ListAccountSessions *");
        assert!(
            own.starts_with("200 data follow\r\n({Module=IMAP;Address=\"127.0.0.2\";Since="),
            "{own}"
        );
        assert!(own.contains("{Module=POP;"), "{own}");
        // The domain administrator may; a user may not look at another account.
        assert!(run(&ctx, &boss, "ListAccountSessions joe").contains("({Module"));
        assert!(run(&ctx, &joe_s, "ListAccountSessions boss").starts_with("5"));
        assert!(run(&ctx, &joe_s, "KillAccountSessions boss").starts_with("5"));
        assert!(run(&ctx, &pm, "ListAccountSessions nobody@client1.com").starts_with("5"));
        assert_eq!(
            run(&ctx, &pm, "KillAccountSessions joe@client1.com"),
            "200 OK"
        );
        assert!(imap.is_killed() && pop.is_killed());
    }

    #[test]
    fn mailbox_sessions_by_storage() {
        let (_d, ctx) = fixture();
        let joe_s = Session::load(&ctx.store, "joe", "client1.com").unwrap();
        assert_eq!(
            run(&ctx, &joe_s, "CREATEMAILBOX joe MAILBOX Sent"),
            "200 OK"
        );
        let boxes = AccountMailboxes::open(&ctx.store, "client1.com", "joe").unwrap();
        let (path, _) = boxes.find("Sent").unwrap().unwrap();
        let g = ctx.sessions.register(&joe(), "IMAP", ip(), None).unwrap();
        let line = "GETMAILBOXSESSIONS joe MAILBOX Sent";
        assert_eq!(run(&ctx, &joe_s, line), "200 data follow\r\n()");
        g.set_mailbox(Some(("Sent", &path)));
        let out = run(&ctx, &joe_s, line);
        assert!(
            out.starts_with("200 data follow\r\n({Account=\"joe@client1.com\";Module=IMAP;Address=\"127.0.0.2\";"),
            "{out}"
        );
        assert!(out.ends_with("Mailbox=Sent;})"), "{out}");
        assert!(run(&ctx, &joe_s, "GETMAILBOXSESSIONS joe MAILBOX Nope").starts_with("5"));
    }

    #[tokio::test]
    async fn max_account_sessions_is_read_at_login() {
        let (_d, ctx) = fixture();
        let ctx = Arc::new(ctx);
        let pm = Session::load(&ctx.store, "postmaster", "example.com").unwrap();
        let set = |v: &str| {
            let line = format!("UpdateAccountSettings joe@client1.com {{MaxAccountSessions={v};}}");
            assert_eq!(run(&ctx, &pm, &line), "200 OK");
        };
        set("1");
        let first = ctx.open_session(&joe(), "IMAP", ip()).await.unwrap();
        assert!(matches!(
            ctx.open_session(&joe(), "POP", ip()).await,
            Err(SessionRefused::Limit(_))
        ));
        drop(first);
        let _again = ctx.open_session(&joe(), "POP", ip()).await.unwrap();
        set("0");
        let _more = ctx.open_session(&joe(), "IMAP", ip()).await.unwrap();
        set("lots");
        assert!(matches!(
            ctx.open_session(&joe(), "IMAP", ip()).await,
            Err(SessionRefused::Server(_))
        ));
    }
}
