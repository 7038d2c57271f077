//! The IMAP module: an IMAP4rev1 server on the account mailboxes (ports 143 and 993).
//!
//! Standards: RFC 3501 (IMAP4rev1), RFC 2177 (IDLE), RFC 4315 (UIDPLUS), RFC 2342 (NAMESPACE),
//! RFC 3691 (UNSELECT), RFC 6851 (MOVE), RFC 3348 (CHILDREN), RFC 2971 (ID), RFC 5161 (ENABLE),
//! RFC 7888 (LITERAL+), RFC 6154 (SPECIAL-USE), RFC 2087 (QUOTA), RFC 4959 (SASL-IR), RFC 7162
//! §3.1 (CONDSTORE), RFC 4314 (ACL), RFC 4616 / RFC 2195 (PLAIN, CRAM-MD5) through `net::sasl`. Guide: IMAP module guide.txt:14686-14925
//! (spec D §9; settings 14725-14747, multi-access 14752-14758, STATUS extensions 14872-14900), Access to Accounts guide.txt:14071-14293 (spec D §6).
//!
//! Layout: [`proto`] is the codec (framing with literal caps, the command parser); `session` is
//! the I/O loop (framing, timeouts, STARTTLS, AUTHENTICATE, IDLE); `cmd` runs every other command
//! synchronously on a blocking thread against the session state; `message` renders FETCH data
//! and evaluates SEARCH keys on message bytes.
//!
//! Security: everything the client sends is untrusted. Lines are capped at 8 KB, literals at
//! [`ImapContext::literal_cap`], search nesting and set sizes in [`proto`]; a malformed command gets
//! `BAD` and the session goes on until [`session::MAX_ERRORS`]. Failed logins are delayed and counted
//! for the lockout by `CliContext::finish_login`, and `Enabled Services` must allow IMAP. The
//! session reaches only the logged-in account's own mailboxes, through the shared
//! `MailboxManager`, with paths built by `mailbox::names::storage_path` after validation; names
//! beginning with `~` (other accounts) are refused. After STARTTLS the read buffer is discarded.
//!
//! Implementation notes: all sessions on one mailbox share one `Mailbox`; its change channel tells
//! every session about appends, flag changes and expunges by the others, reported as untagged
//! `EXISTS`, `FETCH (FLAGS)` and `EXPUNGE` at the next command that allows them (RFC 3501 §7.4.1:
//! never during FETCH, STORE, SEARCH) and immediately while IDLE; commands that may report
//! expunges first report what others changed, so they work on fresh flags and mod-sequences.
//!
//! Keywords and mod-sequences are kept by the mailbox (`mailbox::meta`): up to 64 keywords per
//! mailbox, atoms of at most 64 bytes; FLAGS and PERMANENTFLAGS list them, with `\*` while the
//! table has room, and a new keyword is announced to every session with a new FLAGS response.
//! Every mailbox persists mod-sequences, so HIGHESTMODSEQ is in every SELECT and NOMODSEQ never
//! needed; CONDSTORE is enabled by ENABLE or by the first command that uses it (RFC 7162 §3.1),
//! after which unsolicited FETCH responses carry MODSEQ.
//!
//! Other accounts' mailboxes are reached as `~account/mailbox` under the mailbox ACLs (`acl`:
//! RFC 4314 commands with the guide's rights letters; the same ACLs as the CLI's). A domain's
//! `public` account is the shared namespace `~public/` (guide.txt:14365-14374). The account's
//! Mailbox Aliases (guide.txt:9491-9522, set by `SETMAILBOXALIASES`) name a mailbox or a whole
//! account elsewhere, resolved before the ACL check.
//!
//! todo: LIST `*` reaching into other accounts without an alias (only `~account/pattern` does);
//! [ALERT] notifications; QRESYNC.
//!
//! Sessions (an extension, issue 6): a login registers the connection in the server's session
//! registry (`kernel::sessions`), which also tracks the selected mailbox after every command.
//! The guide has no per-account session limit (only the module's Channels, guide.txt:14740); the
//! account setting `MaxAccountSessions` (our name) refuses a login beyond it with `NO [LIMIT]`
//! (RFC 5530) and the connection stays not authenticated. `KillAccountSessions` ends a session
//! with an untagged `* BYE` (RFC 3501 §7.1.5) between commands or in IDLE.

mod acl;
mod cmd;
mod message;
pub mod proto;
mod session;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use session::serve;

use crate::cli::{self, CliContext};
use crate::kernel::log::Logger;
use crate::mailbox::MailboxManager;
use crate::net::tls::TlsSetup;

/// Log tag (guide.txt:14738).
pub const TAG: &str = "IMAP";
/// RFC 3501 §5.4: the autologout timer is at least 30 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default cap of one literal (APPEND message size).
pub const LITERAL_CAP: usize = 32 * 1024 * 1024;

/// What every IMAP session shares.
pub struct ImapContext {
    /// Accounts, passwords, login security and Enabled Services.
    pub cli: Arc<CliContext>,
    /// The server's one mailbox manager.
    pub mailboxes: Arc<MailboxManager>,
    /// The TLS setup for STARTTLS; `None` hides STARTTLS.
    pub tls: Option<TlsSetup>,
    /// The System Log.
    pub logger: Logger,
    /// A silent client is disconnected after this ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// Largest literal accepted ([`LITERAL_CAP`]).
    pub literal_cap: usize,
}

impl ImapContext {
    /// A context with the default limits.
    pub fn new(
        cli: Arc<CliContext>,
        mailboxes: Arc<MailboxManager>,
        logger: Logger,
    ) -> ImapContext {
        ImapContext {
            cli,
            mailboxes,
            tls: None,
            logger,
            idle_timeout: IDLE_TIMEOUT,
            literal_cap: LITERAL_CAP,
        }
    }
}

/// The module's settings declaration for `GetModule IMAP` (guide.txt:14725-14747).
pub fn module_decl() -> cli::ModuleDecl {
    use crate::store::settings::SettingDecl;
    cli::ModuleDecl {
        name: "IMAP".into(),
        settings: vec![
            SettingDecl {
                key: "LogLevel",
                default: "2",
                doc: "Log: what the IMAP module records in the System Log (tag IMAP), 0-5",
            },
            SettingDecl {
                key: "Channels",
                default: "100",
                doc: "Channels: most simultaneous IMAP connections; 0 closes the listener",
            },
            SettingDecl {
                key: "MaxLiteralSize",
                default: "33554432",
                doc: "Largest literal (APPEND message) in bytes, read at start; larger ones get NO [TOOBIG]",
            },
        ],
        validate: None,
        changed: None,
    }
}

/// The listener entry point: serves each accepted connection with [`serve`].
pub fn handler(ctx: Arc<ImapContext>) -> crate::net::Handler {
    Arc::new(move |conn: crate::net::Connection| {
        let ctx = Arc::clone(&ctx);
        Box::pin(async move {
            // An I/O error ends the session; there is no one left to tell.
            let _ = serve(conn.stream, conn.peer, conn.tls, ctx).await;
        })
    })
}
