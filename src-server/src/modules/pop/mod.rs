//! The POP module: a POP3 server on the account mailboxes (ports 110 and 995).
//!
//! Standards: RFC 1939 (POP3: USER/PASS, APOP, STAT, LIST, RETR, DELE, NOOP, RSET, QUIT and the
//! UPDATE state, TOP, UIDL), RFC 1725 §5 (LAST), RFC 2449 (CAPA, 255-octet command lines),
//! RFC 2595 §4 (STLS), RFC 5034 (AUTH with PLAIN, LOGIN, CRAM-MD5 through `net::sasl`),
//! RFC 3206 (`[AUTH]`, `[SYS/TEMP]` response codes). Guide: POP module guide.txt:14430-14605
//! (spec D §8), Access to Accounts guide.txt:14071-14293 (spec D §6).
//!
//! ```text
//! S: +OK Gatehouse POP3 server ready <token@host>     (the token is APOP's timestamp)
//! C: USER private#jsmith@client1.com    S: +OK send the PASS
//! C: PASS secret                        S: +OK 2 message(s)  | -ERR [AUTH] Incorrect Account Name or Password
//! C: STAT / LIST / UIDL / TOP / RETR / DELE / RSET / NOOP / LAST
//! C: QUIT                               S: +OK signing off (1 message(s) deleted, 1 left)
//! ```
//!
//! The guide's special features:
//! - login names `mailboxname#accountname` open another mailbox of the account
//!   (guide.txt:14556-14584); the account part is resolved like every login name (`name`,
//!   `name@domain`, `name%domain`, aliases: `CliContext::login_account`);
//! - the mailbox is not locked; the session shows the snapshot taken at login, new mail waits
//!   for the next login, and messages another session removed stay as zombies of size 0 whose
//!   RETR fails (guide.txt:14509-14522);
//! - RETR sets `\Seen`, TOP does not (guide.txt:14524-14528);
//! - a bare `AUTH` lists the SASL mechanisms (guide.txt:14530-14532);
//! - a pending alert rejects the login with `-ERR ALERT: text`, one alert per attempt
//!   (guide.txt:14544-14554), through the [`Alerts`] source;
//! - `XTND XMIT` submits a message through the Enqueuer (guide.txt:14534-14542).
//!
//! Security: everything the client sends is untrusted. Command lines are capped at 255 octets
//! (RFC 2449 §4), SASL lines at 8 KB, XTND XMIT messages at [`session::MAX_XMIT_SIZE`]; a bad
//! command gets `-ERR` and the session goes on, until [`session::MAX_ERRORS`]. A silent client is
//! dropped after [`session::IDLE_TIMEOUT`] without the UPDATE state. A failed login is answered
//! after a delay, counted per name for the `LoginSecurity` lockout, and worded the same for an
//! unknown name and a wrong password; passwords never reach the log. After STLS the read buffer
//! is discarded (RFC 2595 §4). The session reaches mailboxes only through the shared
//! `MailboxManager`, with paths built by `mailbox::names::storage_path`.
//!
//! Implementation notes: DELE only marks the message in the session; QUIT flags the marked ones
//! `\Deleted` and expunges them, so a dropped connection deletes nothing (RFC 1939 §6). Sizes are
//! the stored sizes (the mailbox keeps messages as appended; CRLF conversion on the wire can make
//! them a little larger, which RFC 1939 §11 tolerates for LIST). UIDL is `uidvalidity.uid`.
//!
//! Sessions (an extension, issue 6): a login registers the session with its mailbox in the
//! server's session registry (`kernel::sessions`). Beyond the account's `MaxAccountSessions`
//! (our name; the guide has no per-account limit) a login gets `-ERR [IN-USE]` (RFC 2449 §8.1.1)
//! and the session stays in AUTHORIZATION. `KillAccountSessions` ends it as the autologout timer
//! does: `-ERR`, close, no UPDATE state, so nothing is deleted.
//!
//! todo: foreign and public mailboxes (`~other/mailbox#account`) and the delete right need the
//! Sharing ACLs (guide.txt:14586-14602); Direct Mailbox Addressing (14604); UDWA filtering
//! (14606-14685); per-IP multihoming of unqualified names (14152-14163).

pub mod proto;
mod session;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use session::{serve, Alerts, PopContext};

use crate::cli;

/// The module's settings declaration for `GetModule POP` (guide.txt:14467-14489).
pub fn module_decl() -> cli::ModuleDecl {
    use crate::store::settings::SettingDecl;
    cli::ModuleDecl {
        name: "POP".into(),
        settings: vec![
            SettingDecl {
                key: "LogLevel",
                default: "2",
                doc: "Log: what the POP module records in the System Log (tag POP), 0-5",
            },
            SettingDecl {
                key: "Channels",
                default: "100",
                doc: "Channels: most simultaneous POP connections; 0 closes the listener",
            },
        ],
        validate: None,
        changed: None,
    }
}

/// The listener entry point: serves each accepted connection with [`serve`].
pub fn handler(ctx: Arc<PopContext>) -> crate::net::Handler {
    Arc::new(move |conn: crate::net::Connection| {
        let ctx = Arc::clone(&ctx);
        Box::pin(async move {
            // An I/O error ends the session; there is no one left to tell.
            let _ = serve(conn.stream, conn.peer, conn.tls, ctx).await;
        })
    })
}
