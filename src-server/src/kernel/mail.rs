//! The types every part of the mail path shares (DESIGN.md §Mail flow, guide.txt:9791-10009):
//! what an entry point hands the Enqueuer, where the Router sends an address, and what a delivery
//! channel reports back to the Dequeuer.
//!
//! Entry points (SMTP, PIPE, WebMail, RPOP, LIST, Rules, DSNs) hold an `Arc<dyn Submit>`; the
//! queue implements it. The Router implements [`Route`]; SMTP asks it at RCPT time, the Dequeuer
//! for every recipient. Each destination module implements [`Channel`].

use std::fmt;
use std::net::IpAddr;

/// A message in the queue (its file is `Queue/<id>.msg`).
pub type MessageId = u64;

/// DSN `NOTIFY` of one recipient (RFC 3461 §4.1); all false = the sender did not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    /// `NOTIFY=SUCCESS`.
    pub success: bool,
    /// `NOTIFY=FAILURE`.
    pub failure: bool,
    /// `NOTIFY=DELAY`.
    pub delay: bool,
    /// `NOTIFY=NEVER`.
    pub never: bool,
}

/// DSN `RET` (RFC 3461 §4.3): what a failure report carries of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// The whole message.
    Full,
    /// Only its headers.
    Headers,
}

/// One envelope recipient as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    /// The address, without angle brackets.
    pub address: String,
    /// DSN `ORCPT`, as given.
    pub orcpt: Option<String>,
    /// DSN `NOTIFY`.
    pub notify: Notify,
}

impl NewRecipient {
    /// A recipient with no DSN parameters.
    pub fn new(address: impl Into<String>) -> NewRecipient {
        NewRecipient {
            address: address.into(),
            orcpt: None,
            notify: Notify::default(),
        }
    }
}

/// Who submitted a message (kept in the envelope, shown by the queue inspector and the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Received over SMTP.
    Smtp {
        /// The client's address.
        peer: IpAddr,
        /// The HELO/EHLO name it gave.
        helo: String,
        /// The account it authenticated as.
        auth: Option<String>,
        /// Whether the session was encrypted.
        tls: bool,
    },
    /// Dropped in `Submitted/` or given to the PIPE module.
    Pipe,
    /// Sent by a user through WebMail or XTND XMIT (the account, `name@domain`).
    User(String),
    /// Pulled in by RPOP.
    Rpop,
    /// Distributed by the LIST module (the group or list address).
    List(String),
    /// A delivery report made by the Dequeuer.
    Dsn,
    /// Made by a Rule (redirect, forward, reply) of this account or `server`.
    Rules(String),
    /// Submitted through the CLI.
    Cli,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Smtp { peer, .. } => write!(f, "SMTP [{peer}]"),
            Source::Pipe => f.write_str("PIPE"),
            Source::User(a) => write!(f, "USER {a}"),
            Source::Rpop => f.write_str("RPOP"),
            Source::List(l) => write!(f, "LIST {l}"),
            Source::Dsn => f.write_str("DSN"),
            Source::Rules(a) => write!(f, "RULES {a}"),
            Source::Cli => f.write_str("CLI"),
        }
    }
}

/// What an entry point hands the Enqueuer together with the message bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The return-path, without angle brackets; empty for the null sender `<>`.
    pub return_path: String,
    /// The envelope recipients (at least one).
    pub recipients: Vec<NewRecipient>,
    /// Who submitted it.
    pub source: Source,
    /// DSN `ENVID`.
    pub env_id: Option<String>,
    /// DSN `RET`.
    pub ret: Option<Ret>,
}

/// Why the Enqueuer did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The submission names no recipient.
    #[error("no recipients")]
    NoRecipients,
    /// The message went through too many hops: a mail loop (RFC 5321 §6.3).
    #[error("too many hops (mail loop)")]
    TooManyHops,
    /// The message is larger than the server accepts.
    #[error("message too large")]
    TooLarge,
    /// A Server-Wide Rule rejected it, with this text (guide.txt:9896-9932).
    #[error("{0}")]
    Rejected(String),
    /// The queue could not store it durably; the submitter must not report success.
    #[error("cannot store the message: {0}")]
    Io(#[from] std::io::Error),
}

/// The Enqueuer, as entry points see it. `submit` returns only once the message and its
/// envelope are fsynced in `Queue/`: only then may a submitter say "accepted".
pub trait Submit: Send + Sync {
    /// Stores the message durably and schedules its delivery (blocking).
    fn submit(&self, submission: Submission, message: &[u8]) -> Result<MessageId, EnqueueError>;
}

/// Where the Router sends one address (guide.txt:10010-10436). `Route address` in the CLI shows it
/// as (module, host, address) with [`Routed::cli_triple`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Local Delivery to an account, optionally into a given mailbox (`mailbox#account`) and with
    /// an `account+detail` part (guide.txt:12226-12289).
    Local {
        /// The account's domain (canonical name).
        domain: String,
        /// The account's own name (aliases resolved).
        account: String,
        /// A mailbox named by direct mailbox addressing.
        mailbox: Option<String>,
        /// The `+detail` of the address.
        detail: Option<String>,
    },
    /// The SMTP module: `host` is the Internet domain (or relay `[ip:port]` / `host.port.smtp`)
    /// whose queue it joins; `address` is the address sent in RCPT TO.
    Smtp {
        /// The queue: domain or relay host.
        host: String,
        /// The recipient address.
        address: String,
    },
    /// The PIPE module: an external program named by the routing table.
    Pipe {
        /// The program (the routing table's text after `pipe`).
        program: String,
        /// The address handed to it.
        address: String,
    },
    /// The LIST module: a group (resubmitted to its members) in a domain. The group `all` is the
    /// domain's virtual all-accounts list when its `MailToAllAction` allows it (guide.txt:7992-8051).
    List {
        /// The group's domain.
        domain: String,
        /// The group's name.
        group: String,
    },
    /// `SYSTEM` NULL: accepted and dropped.
    Discard,
    /// `SYSTEM` ERROR: refused permanently with this text.
    Error(String),
}

/// A routed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Where it goes.
    pub target: Target,
    /// A `Relay:` record applied, so even a non-client may send to it (guide.txt:3332-3405).
    pub relay: bool,
}

impl Routed {
    /// The `Route` CLI command's three strings: module, host/queue, address.
    pub fn cli_triple(&self) -> [String; 3] {
        match &self.target {
            Target::Local {
                domain,
                account,
                mailbox,
                ..
            } => [
                "LOCAL".into(),
                format!("{account}@{domain}"),
                mailbox.clone().unwrap_or_else(|| "INBOX".into()),
            ],
            Target::Smtp { host, address } => ["SMTP".into(), host.clone(), address.clone()],
            Target::Pipe { program, address } => ["PIPE".into(), program.clone(), address.clone()],
            Target::List { domain, group } => {
                ["LIST".into(), format!("{group}@{domain}"), group.clone()]
            }
            Target::Discard => ["SYSTEM".into(), "NULL".into(), String::new()],
            Target::Error(text) => ["SYSTEM".into(), "ERROR".into(), text.clone()],
        }
    }
}

/// Why an address cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such local user and the domain's unknown-name processing rejects it.
    #[error("unknown user account: {0}")]
    UnknownUser(String),
    /// The address does not parse.
    #[error("bad address: {0}")]
    BadAddress(String),
    /// Aliases or forwarders point at each other.
    #[error("routing loop for {0}")]
    Loop(String),
}

/// The Router, as the SMTP module and the Dequeuer see it.
pub trait Route: Send + Sync {
    /// Routes one address (blocking; reads the store).
    fn route(&self, address: &str) -> Result<Routed, RouteError>;
}

/// One recipient of one message, as the Dequeuer hands it to a channel.
#[derive(Debug)]
pub struct Job<'a> {
    /// The queued message.
    pub id: MessageId,
    /// The whole message (headers and body) as submitted.
    pub message: &'a [u8],
    /// The envelope return-path ("" = `<>`).
    pub return_path: &'a str,
    /// The envelope recipient as submitted.
    pub recipient: &'a str,
    /// Where the Router sent it.
    pub target: &'a Target,
    /// Who submitted the message.
    pub source: &'a Source,
    /// The DSN parameters to pass on to the next hop (RFC 3461 §5.2).
    pub dsn: JobDsn<'a>,
}

/// The DSN parameters of one job (RFC 3461), as the envelope keeps them (decoded, not xtext).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobDsn<'a> {
    /// The message's `ENVID`.
    pub env_id: Option<&'a str>,
    /// The message's `RET`.
    pub ret: Option<Ret>,
    /// The recipient's `NOTIFY`.
    pub notify: Notify,
    /// The recipient's `ORCPT` (`addr-type;address`).
    pub orcpt: Option<&'a str>,
}

/// What a channel did with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (or, for a group, resubmitted to its members).
    Delivered,
    /// Handed to a next hop that does not advertise DSN, for a recipient with NOTIFY=SUCCESS:
    /// done, and the sender gets a "relayed" report, as no further one will come (RFC 3461
    /// §5.2.2). Without NOTIFY=SUCCESS the same hand-over is `Delivered`: nothing differs.
    Relayed,
    /// Handed to a next hop that advertises DSN, with the recipient's NOTIFY=SUCCESS passed on:
    /// done, and the success report is that hop's to send, not ours (RFC 3461 §5.2.1).
    PassedOn,
    /// Failed for good: the Dequeuer reports it (DSN) and drops the recipient.
    Failed(String),
    /// Failed for now: the Dequeuer retries later.
    Deferred(String),
    /// Cut short because the server is stopping ([`Channel::stop`]): not an attempt; the
    /// recipient stays as it was, to be tried after restart.
    Interrupted,
}

/// A destination module (Local Delivery, SMTP, PIPE, LIST).
pub trait Channel: Send + Sync {
    /// Delivers one recipient of one message (blocking; called from a worker thread).
    fn deliver(&self, job: &Job<'_>) -> Outcome;

    /// The server is stopping: deliveries in progress that may wait on the network end now
    /// with [`Outcome::Interrupted`], and so do later ones. Channels that finish quickly on
    /// their own keep the default (nothing).
    fn stop(&self) {}
}
