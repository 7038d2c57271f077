//! Automated Mail Processing Rules: the rule model, its stored form, and the engine that checks a
//! message against a rule set and says what to do with it.
//!
//! Guide: guide.txt:10437-11247 (model 10437-10497, operators 10499-10513, conditions
//! 10515-10761, string lists 10763-10777, actions 10779-11066, Auto-Reply 11068-11102, Redirect
//! All 11104-11139); stored form guide.txt:9058-9062; user rights guide.txt:8789-8823. RFC 3834
//! (automatic responses), RFC 5322 (header fields).
//!
//! Stored form (the guide gives the rule tuple, not its elements; ours follows it in kind):
//! ```text
//! rules     ::= ( [rule [, rule ...]] )
//! rule      ::= ( priority , name , ( [condition, ...] ) , ( [action, ...] ) )
//! priority  ::= "0" .. "9"          0 = disabled (kept, not applied)
//! condition ::= ( keyword [, operation , parameter] )    e.g. (From, "is", "*@stalker.com")
//! action    ::= ( keyword [, parameter] )                e.g. ("Store in", Junk), (Discard)
//! ```
//! Keywords and operations are matched case-insensitively and written with the guide's spelling.
//! `Human Generated` takes no operation; `("Human Generated", "---")` is read too.
//!
//! Decisions where the guide is silent (spec C §11, "Manual gaps" 5 and 10):
//! - Pictures match case-insensitively (ASCII): addresses and subjects are compared as people
//!   read them, and the guide's samples (`*@thatdomain*`) make no case promise.
//! - `Header Field` matches its picture against each whole unfolded field, `Name: value`.
//! - A missing Subject, Message-ID or 'From' Name is tested as the empty string (the Message-ID
//!   sample, guide.txt:10598-10600, matches "messages without the Message-ID").
//! - `Reply with` and `Reply to All with` answer one address at most once per
//!   [`REPLY_PERIOD`] (RFC 3834 §2: "once per period", 7 days recommended); the built-in
//!   Auto-Reply adds the guide's `RepliedAddresses` list on top (once per author until cleared).
//! - String lists and the reply memory live in the account's `.info` (keys `StringLists`,
//!   `RepliedTimes`): volatile account data, as the guide puts the subscription list there.
//! - A terminal action (`Stop Processing`, `Discard`, `Reject`) "should be the last one": a rule
//!   with one elsewhere is refused when read, not silently cut.
//! - `Redirect to` prepends `Resent-*` fields (RFC 5322 §3.6.6); a copy that already passed this
//!   account's redirect/forward/mirror, or ten of them, is not sent on again (mail loops).
//!
//! todo: `[charsetName]` texts are sent as UTF-8; account `Execute` runs as the server's user;
//! the ExternalFilter program, Domain-Wide and Cluster-Wide Rules are not here (the caller or
//! later issues).
//!
//! Use (Local Delivery, per account a message reaches; the Enqueuer with [`server_rules`]):
//! ```text
//! let msg = MessageView::new(bytes, return_path, recipients_routed_here, source);
//! let out = account_rules(&store, &*clock, host, domain, account, &msg)?;
//! for effect in out.effects { Store{..} → append a copy; Submit{..} → Submit::submit;
//!     Execute(spec) → execute(..) and on failure stop, reject with its error;
//!     FingerNotify / ExternalFilter / Log → as named }
//! match out.disposition { Deliver → INBOX with out.flags, Return-Path + out.headers;
//!     Discard → nothing (positive DSN if asked); Reject(text) → failure with text }
//! ```
//!
//! Security: rules come from administrators and, within their rights, from users; the parser is
//! bounded ([`MAX_RULES`], [`MAX_ELEMENTS`], [`MAX_PARAMETER`]) and never panics. Messages are
//! untrusted: headers are read with caps (see [`message`]).

pub mod builtin;
pub mod compose;
pub mod eval;
pub mod message;
mod parse;
pub mod pattern;
pub mod run;
#[cfg(test)]
mod tests;

pub use eval::{evaluate, Disposition, Effect, Env, MemoryData, Outcome, RulesData, Scope};
pub use message::{EnvelopeRecipient, HeaderAddress, MessageView};
pub use parse::{parse_rules, rules_to_value, validate_rules, RuleError};
pub use run::{account_rules, execute, finger_notify, server_rules, ExecReport, RunError};

use chrono::TimeDelta;

/// The server settings file (`Settings/ServerRules.settings`) holding the Server-Wide Rules.
pub const SERVER_RULES: &str = "ServerRules";

/// Most rules in one set.
pub const MAX_RULES: usize = 1000;
/// Most conditions or actions in one rule.
pub const MAX_ELEMENTS: usize = 100;
/// Longest parameter (a reply text, a header block) in bytes.
pub const MAX_PARAMETER: usize = 64 * 1024;
/// How long a `Reply with` remembers whom it answered (RFC 3834 §2 recommends 7 days).
pub const REPLY_PERIOD: TimeDelta = TimeDelta::days(7);

/// One rule (guide.txt:10454-10457, stored as guide.txt:9058-9062).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1 (lowest) to 9 (highest); 0 = disabled (guide.txt:10484-10486).
    pub priority: u8,
    /// The rule name (names starting with `#` are the built-in rules, see [`builtin`]).
    pub name: String,
    /// Checked in order; all must hold; none = every message.
    pub conditions: Vec<Condition>,
    /// Performed in order when the conditions hold.
    pub actions: Vec<Action>,
}

impl Rule {
    /// Whether the rule is applied at all.
    pub fn enabled(&self) -> bool {
        self.priority > 0
    }
}

/// What a condition looks at (guide.txt:10515-10761).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `From` address.
    From,
    /// `Sender` address.
    Sender,
    /// `Reply-To` address.
    ReplyTo,
    /// `To` address.
    To,
    /// `Cc` address.
    Cc,
    /// `Any To or Cc`: met if one To/Cc address matches; not met without any.
    AnyToOrCc,
    /// `Each To or Cc`: met if every To/Cc address matches, or there is none.
    EachToOrCc,
    /// `Return-Path`: the envelope MAIL FROM.
    ReturnPath,
    /// `'From' Name`: the real name of the From address.
    FromName,
    /// `Subject`.
    Subject,
    /// `Message-ID`.
    MessageId,
    /// `Message Size` in bytes (numeric).
    MessageSize,
    /// `Human Generated` (no operation).
    HumanGenerated,
    /// `Header Field`: any field of the header, added ones included.
    HeaderField,
    /// `Any Recipient`: envelope recipients as `<addr>`, one must match.
    AnyRecipient,
    /// `Each Recipient`: all must match.
    EachRecipient,
    /// `Time Of Day`, server local time.
    TimeOfDay,
    /// `Current Date`.
    CurrentDate,
    /// `Current Day` of the week.
    CurrentDay,
    /// `Any Route` (server-wide only): local part of a routed address, one must match.
    AnyRoute,
    /// `Each Route` (server-wide only): all must match.
    EachRoute,
}

impl Field {
    /// Every field, in the guide's order.
    pub const ALL: [Field; 21] = [
        Field::From,
        Field::Sender,
        Field::ReplyTo,
        Field::To,
        Field::Cc,
        Field::AnyToOrCc,
        Field::EachToOrCc,
        Field::ReturnPath,
        Field::FromName,
        Field::Subject,
        Field::MessageId,
        Field::MessageSize,
        Field::HumanGenerated,
        Field::HeaderField,
        Field::AnyRecipient,
        Field::EachRecipient,
        Field::TimeOfDay,
        Field::CurrentDate,
        Field::CurrentDay,
        Field::AnyRoute,
        Field::EachRoute,
    ];

    /// The guide's keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Field::From => "From",
            Field::Sender => "Sender",
            Field::ReplyTo => "Reply-To",
            Field::To => "To",
            Field::Cc => "Cc",
            Field::AnyToOrCc => "Any To or Cc",
            Field::EachToOrCc => "Each To or Cc",
            Field::ReturnPath => "Return-Path",
            Field::FromName => "'From' Name",
            Field::Subject => "Subject",
            Field::MessageId => "Message-ID",
            Field::MessageSize => "Message Size",
            Field::HumanGenerated => "Human Generated",
            Field::HeaderField => "Header Field",
            Field::AnyRecipient => "Any Recipient",
            Field::EachRecipient => "Each Recipient",
            Field::TimeOfDay => "Time Of Day",
            Field::CurrentDate => "Current Date",
            Field::CurrentDay => "Current Day",
            Field::AnyRoute => "Any Route",
            Field::EachRoute => "Each Route",
        }
    }

    /// Only usable in Server-Wide Rules (guide.txt:10735-10736).
    pub fn server_only(self) -> bool {
        matches!(self, Field::AnyRoute | Field::EachRoute)
    }
}

/// A condition operation (guide.txt:10499-10513).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `is`: the picture matches.
    Is,
    /// `is not`.
    IsNot,
    /// `in`: one picture of the comma list (or of a `#` string list) matches.
    In,
    /// `not in`: none matches.
    NotIn,
    /// `less than` (numbers, times, dates).
    LessThan,
    /// `greater than`.
    GreaterThan,
}

impl Op {
    /// The guide's spelling.
    pub fn keyword(self) -> &'static str {
        match self {
            Op::Is => "is",
            Op::IsNot => "is not",
            Op::In => "in",
            Op::NotIn => "not in",
            Op::LessThan => "less than",
            Op::GreaterThan => "greater than",
        }
    }
}

/// One condition: `field operation parameter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `Human Generated` (no parameter).
    HumanGenerated,
    /// A string test on an address, header, recipient, route or the day of the week.
    Text {
        /// What is tested.
        field: Field,
        /// is / is not / in / not in.
        op: Op,
        /// The picture, or comma-separated pictures, or `#ListName`.
        param: String,
    },
    /// `Message Size` against a byte count.
    Size {
        /// is / is not / less than / greater than.
        op: Op,
        /// Bytes.
        bytes: u64,
        /// The parameter as written (kept for the stored form).
        param: String,
    },
    /// `Time Of Day` against seconds since local midnight.
    TimeOfDay {
        /// is / is not / less than / greater than.
        op: Op,
        /// Seconds since midnight.
        seconds: u32,
        /// The parameter as written.
        param: String,
    },
    /// `Current Date` against an instant.
    CurrentDate {
        /// is / is not / less than / greater than.
        op: Op,
        /// The date; without a zone it is read in the server's zone at evaluation.
        date: DateSpec,
        /// The parameter as written.
        param: String,
    },
}

/// A `Current Date` parameter (guide.txt:10707-10730).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateSpec {
    /// The local date and time given.
    pub local: chrono::NaiveDateTime,
    /// The zone offset in seconds east of UTC, if given.
    pub offset: Option<i32>,
    /// How much was given: the date only, or down to minutes or seconds (sets `is` granularity).
    pub precision: DatePrecision,
}

/// How precise a [`DateSpec`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePrecision {
    /// `DD MM YYYY`.
    Day,
    /// `DD MM YYYY hh:mm`.
    Minute,
    /// `... hh:mm:ss`.
    Second,
}

/// A `Mark` operation (guide.txt:10822-10843).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkOp {
    /// `Read`: set Seen.
    Read,
    /// `Unread`: clear Seen.
    Unread,
    /// `Flagged`.
    Flagged,
    /// `Unflagged`.
    Unflagged,
    /// `Answered`.
    Answered,
    /// `Unanswered`.
    Unanswered,
}

impl MarkOp {
    /// The guide's spelling.
    pub fn keyword(self) -> &'static str {
        match self {
            MarkOp::Read => "Read",
            MarkOp::Unread => "Unread",
            MarkOp::Flagged => "Flagged",
            MarkOp::Unflagged => "Unflagged",
            MarkOp::Answered => "Answered",
            MarkOp::Unanswered => "Unanswered",
        }
    }
}

/// `Execute` prefixes (guide.txt:10967-11006).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// `[FILE]`: stdin closed, `-f Queue/<id>.msg` appended (server-wide only).
    pub file: bool,
    /// `[RETPATH]`: `-p return-path` appended.
    pub retpath: bool,
    /// `[RCPT]`: `-r recipients...` appended (server-wide only).
    pub rcpt: bool,
    /// `[STDERR]`: stderr becomes the error report.
    pub stderr: bool,
    /// The command line after the prefixes.
    pub command: String,
}

/// One action (guide.txt:10779-11066).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `Stop Processing`: terminal; the message is stored in INBOX.
    StopProcessing,
    /// `Discard`: terminal; not stored in INBOX; a positive DSN if requested.
    Discard,
    /// `Reject [text]`: terminal; a negative DSN with this text (empty = the default text).
    Reject(String),
    /// `Mark op, op...`: changes the flag set used by every later store.
    Mark(Vec<MarkOp>),
    /// `Add Headers fields`: header lines (`\n`-separated) added at every later store.
    AddHeaders(String),
    /// `Store in mailbox` (`~user/mailbox` for a foreign one).
    StoreIn(String),
    /// `Redirect to a, b`.
    RedirectTo(Vec<String>),
    /// `Forward to a, b`: From becomes the account's address.
    ForwardTo(Vec<String>),
    /// `Mirror to a, b`: headers kept, X-Mirrored-by added.
    MirrorTo(Vec<String>),
    /// `Reply with text`: to Reply-To, else From.
    ReplyWith(String),
    /// `Reply to All with text`: to every To and Cc.
    ReplyToAllWith(String),
    /// `React with text`: header with recipients, empty line, body.
    ReactWith(String),
    /// `Execute command`.
    Execute(ExecSpec),
    /// `FingerNotify [address]`.
    FingerNotify(Option<String>),
    /// `ExternalFilter` (server-wide only).
    ExternalFilter,
    /// `Write To Log text` (server administrator only).
    WriteToLog(String),
    /// `Remember 'From' in list` (the Auto-Reply rule's action, guide.txt:11079-11081).
    RememberFromIn(String),
}

/// Classes of actions, for the `Automated Rules` user right (guide.txt:8804-8815).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionClass {
    /// Discard, Reject, Stop Processing, Mark, Add Header(s), Store in: `Filter Only`.
    Filter,
    /// Everything else but execute-type: `All But Exec`.
    Other,
    /// Execute, FingerNotify: `Any`.
    Exec,
    /// Write To Log: the server administrator only (guide.txt:11062-11064).
    Admin,
}

impl Action {
    /// The guide's keyword for the action.
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::StopProcessing => "Stop Processing",
            Action::Discard => "Discard",
            Action::Reject(_) => "Reject",
            Action::Mark(_) => "Mark",
            Action::AddHeaders(_) => "Add Headers",
            Action::StoreIn(_) => "Store in",
            Action::RedirectTo(_) => "Redirect to",
            Action::ForwardTo(_) => "Forward to",
            Action::MirrorTo(_) => "Mirror to",
            Action::ReplyWith(_) => "Reply with",
            Action::ReplyToAllWith(_) => "Reply to All with",
            Action::ReactWith(_) => "React with",
            Action::Execute(_) => "Execute",
            Action::FingerNotify(_) => "FingerNotify",
            Action::ExternalFilter => "ExternalFilter",
            Action::WriteToLog(_) => "Write To Log",
            Action::RememberFromIn(_) => "Remember 'From' in",
        }
    }

    /// Stop, Discard and Reject end the rule and all rule processing (guide.txt:10786-10814).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Action::StopProcessing | Action::Discard | Action::Reject(_)
        )
    }

    /// Which user right the action needs.
    pub fn class(&self) -> ActionClass {
        match self {
            Action::StopProcessing
            | Action::Discard
            | Action::Reject(_)
            | Action::Mark(_)
            | Action::AddHeaders(_)
            | Action::StoreIn(_)
            | Action::RememberFromIn(_) => ActionClass::Filter,
            Action::Execute(_) | Action::FingerNotify(_) => ActionClass::Exec,
            Action::WriteToLog(_) => ActionClass::Admin,
            _ => ActionClass::Other,
        }
    }

    /// Only usable in Server-Wide Rules (guide.txt:10979-10980, 11000, 11055-11057).
    pub fn server_only(&self) -> bool {
        match self {
            Action::ExternalFilter => true,
            Action::Execute(e) => e.file || e.rcpt,
            _ => false,
        }
    }
}

/// The account setting `Automated Rules` (guide.txt:8804-8815): what a user may put in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RulesRight {
    /// `No`: only the administrator sets rules.
    No,
    /// `Filter Only`.
    FilterOnly,
    /// `All But Exec`.
    AllButExec,
    /// `Any`.
    Any,
}

impl RulesRight {
    /// Reads the setting's value; `None` if it is not one of the guide's four.
    pub fn parse(s: &str) -> Option<RulesRight> {
        [
            ("No", RulesRight::No),
            ("Filter Only", RulesRight::FilterOnly),
            ("All But Exec", RulesRight::AllButExec),
            ("Any", RulesRight::Any),
        ]
        .into_iter()
        .find(|(k, _)| {
            // "AllButExec" and "All But Exec" alike.
            let squeeze = |x: &str| x.replace(' ', "").to_ascii_lowercase();
            squeeze(k) == squeeze(s)
        })
        .map(|(_, r)| r)
    }

    /// Whether a rule holding `action` runs for an account with this right. `Write To Log` is
    /// the server administrator's and never runs in account rules.
    pub fn allows(self, action: &Action) -> bool {
        match action.class() {
            ActionClass::Filter => self >= RulesRight::FilterOnly,
            ActionClass::Other => self >= RulesRight::AllButExec,
            ActionClass::Exec => self == RulesRight::Any,
            ActionClass::Admin => false,
        }
    }
}
