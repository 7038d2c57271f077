//! Table tests from the guide's rule examples (guide.txt:10515-11139), one per condition and per
//! action, plus priorities, Stop, the reply memory, never-reply cases, parse errors, round trips.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta};

use super::builtin::{self, RedirectAll};
use super::pattern::matches;
use super::*;
use crate::format;
use crate::kernel::clock::ManualClock;
use crate::kernel::mail::{Source, Submission};
use crate::mailbox::Flags;

const ME: &str = "me@example.com";

/// Wednesday 2024-03-06 10:30:15 +01:00.
fn t0() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2024-03-06T10:30:15+01:00").unwrap()
}

const PLAIN: &str = "From: Bill <bill@stalker.com>\r\n\
To: me@example.com, boss@mycompany.com\r\n\
Cc: Ann <ann@mydept.mycompany.com>\r\n\
Subject: we urgently need your assistance\r\n\
Date: Tue, 5 Mar 2024 09:00:00 +0000\r\n\
Message-ID: <abc@stalker.com>\r\n\
\r\n\
Hello.\r\n";

fn rules(text: &str) -> Vec<Rule> {
    parse_rules(&format::parse(text.as_bytes()).unwrap()).unwrap()
}

struct Case {
    clock: Arc<ManualClock>,
    data: MemoryData,
    scope: Scope,
    allow_exec: bool,
    return_path: String,
    recipients: Vec<EnvelopeRecipient>,
}

impl Case {
    fn new() -> Case {
        Case {
            clock: ManualClock::new(t0()),
            data: MemoryData::new(),
            scope: Scope::Account(ME.into()),
            allow_exec: false,
            return_path: "bill@stalker.com".into(),
            recipients: vec![EnvelopeRecipient::new(ME)],
        }
    }

    fn run(&self, rules_text: &str, raw: &str) -> Outcome {
        let msg = MessageView::new(
            raw.as_bytes(),
            self.return_path.clone(),
            self.recipients.clone(),
            Source::Pipe,
        );
        let env = Env {
            scope: self.scope.clone(),
            clock: &*self.clock,
            data: &self.data,
            allow_exec: self.allow_exec,
            host: "mail.example.com".into(),
        };
        evaluate(&rules(rules_text), &msg, &env)
    }

    /// Whether a rule with this one condition matches (its action is Discard).
    fn met(&self, cond: &str, raw: &str) -> bool {
        let o = self.run(&format!("((5, T, ({cond}), ((Discard))))"), raw);
        o.disposition == Disposition::Discard
    }
}

fn met(cond: &str, raw: &str) -> bool {
    Case::new().met(cond, raw)
}

fn with_header(extra: &str) -> String {
    format!("{extra}\r\n{PLAIN}")
}

fn submitted(o: &Outcome) -> Vec<(&'static str, &Submission, String)> {
    o.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Submit {
                action,
                submission,
                message,
            } => Some((
                *action,
                submission,
                String::from_utf8_lossy(message).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------------ pictures and operators

#[test]
fn pictures_follow_the_guide() {
    // guide.txt:10503-10506: "is *@thatdomain*" = contains; "is not *somedomain.com" = not ends.
    assert!(matches("*@thatdomain*", "joe@thatdomain.org"));
    assert!(!matches("*@thatdomain*", "joe@other.org"));
    assert!(matches("*somedomain.com", "a@SomeDomain.COM"));
    assert!(!matches("*somedomain.com", "a@somedomain.com.evil"));
    assert!(matches("", ""));
    assert!(!matches("", "x"));
    assert!(matches("*", ""));
    assert!(matches("a*b*c", "aXXbYYc"));
    assert!(!matches("a*b*c", "aXXbYYcd"));
    assert!(matches("**", "anything"));
}

#[test]
fn in_lists_keep_spaces_around_commas() {
    // guide.txt:10511-10513: spaces around commas belong to the pictures.
    assert!(met(r#"(Subject, in, "x,*assistance")"#, PLAIN));
    assert!(!met(r#"(Subject, in, "x, *assistance ")"#, PLAIN));
    assert!(met(r#"(Subject, "not in", "x,y")"#, PLAIN));
    assert!(!met(r#"(Subject, "not in", "x,*urgent*")"#, PLAIN));
}

#[test]
fn string_lists_by_hash_name() {
    // guide.txt:10763-10777: Sender in #BlockedSenders.
    let c = Case::new();
    let raw = with_header("Sender: spam@bad.example");
    assert!(!c.met(r##"(Sender, in, "#BlockedSenders")"##, &raw));
    c.data
        .add_to_string_list("BlockedSenders", "*@bad.example")
        .unwrap();
    assert!(c.met(r##"(Sender, in, "#BlockedSenders")"##, &raw));
    assert!(!c.met(r##"(Sender, "not in", "#BlockedSenders")"##, &raw));
}

// ------------------------------------------------------------------ conditions

#[test]
fn from_any_stalker_subdomain() {
    // guide.txt:10528-10532 sample: any account on any of the stalker.com subdomains.
    assert!(met(r#"(From, is, "*@*stalker.com")"#, PLAIN));
    assert!(!met(
        r#"(From, is, "*@*stalker.com")"#,
        &PLAIN.replace("stalker.com>", "other.com>")
    ));
    assert!(met(r#"(From, "is not", "*@other.com")"#, PLAIN));
    assert!(met(r#"(From, in, "x@y,bill@*")"#, PLAIN));
    assert!(met(r#"(From, "not in", "x@y,z@*")"#, PLAIN));
}

#[test]
fn address_conditions_need_an_address_of_that_type() {
    // guide.txt:10545-10547: several addresses → true for one; none → not met.
    assert!(met(r#"(To, is, "boss@*")"#, PLAIN));
    assert!(met(r#"(Cc, is, "*@mydept.mycompany.com")"#, PLAIN));
    assert!(!met(r#"(Sender, "is not", "nobody")"#, PLAIN));
    assert!(!met(r#"("Reply-To", "is not", "nobody")"#, PLAIN));
    let raw = with_header("Reply-To: list@x.org\r\nSender: owner@x.org");
    assert!(met(r#"("Reply-To", is, "list@*")"#, &raw));
    assert!(met(r#"(Sender, is, "owner@x.org")"#, &raw));
    // "is not" with two To addresses: met when one of them differs.
    assert!(met(r#"(To, "is not", "me@example.com")"#, PLAIN));
}

#[test]
fn any_and_each_to_or_cc() {
    // guide.txt:10554-10566 sample: every To and Cc in mycompany.com or mydept.mycompany.com.
    let c = r#"("Each To or Cc", in, "*@mycompany.com,*@mydept.mycompany.com")"#;
    assert!(!met(c, PLAIN)); // me@example.com is outside
    assert!(met(c, &PLAIN.replace("me@example.com, ", "")));
    let none = "From: a@b.c\r\nSubject: x\r\n\r\nbody";
    assert!(met(c, none)); // no To/Cc: met
    assert!(!met(r#"("Any To or Cc", is, "*")"#, none)); // no To/Cc: not met
    assert!(met(r#"("Any To or Cc", is, "ann@*")"#, PLAIN));
}

#[test]
fn return_path_is_the_envelope() {
    let mut c = Case::new();
    assert!(c.met(r#"("Return-Path", is, "bill@*")"#, PLAIN));
    c.return_path = String::new();
    assert!(c.met(r#"("Return-Path", is, "")"#, PLAIN));
}

#[test]
fn from_name_samples() {
    // guide.txt:10577-10585: all three From forms carry a real name ending in "J. Smith".
    for from in [
        "From: jsmith@company.com (John J. Smith)",
        "From: \"Bill J. Smith\" <b.smith@othercompany.com>",
        "From: Susan J. Smith <susan@thirdcompany.com>",
    ] {
        let raw = format!("{from}\r\nSubject: s\r\n\r\nbody");
        assert!(met(r#"("'From' Name", is, "*J. Smith")"#, &raw), "{from}");
    }
    assert!(met(r#"("'From' Name", is, "")"#, "From: x@y.z\r\n\r\nb"));
}

#[test]
fn subject_samples() {
    // guide.txt:10590-10596: both subjects match "*urgent*" (case-insensitive).
    assert!(met(r#"(Subject, is, "*urgent*")"#, PLAIN));
    assert!(met(
        r#"(Subject, is, "*urgent*")"#,
        "Subject: Urgent!\r\n\r\n"
    ));
    assert!(!met(
        r#"(Subject, is, "*urgent*")"#,
        "Subject: calm\r\n\r\n"
    ));
}

#[test]
fn message_id_sample() {
    // guide.txt:10598-10604: no Message-ID, or one without "@".
    let c = r#"("Message-ID", "is not", "*@*")"#;
    assert!(!met(c, PLAIN));
    assert!(met(c, "Subject: x\r\n\r\nbody"));
    assert!(met(c, "Message-ID: <local-only>\r\n\r\nbody"));
}

#[test]
fn message_size() {
    // guide.txt:10606-10612 sample: larger than 100 kilobytes.
    let big = format!("{PLAIN}{}", "x".repeat(100 * 1024));
    assert!(met(r#"("Message Size", "greater than", "100K")"#, &big));
    assert!(!met(r#"("Message Size", "greater than", "100K")"#, PLAIN));
    assert!(met(r#"("Message Size", "less than", 102400)"#, PLAIN));
    let n = PLAIN.len().to_string();
    assert!(met(&format!(r#"("Message Size", is, "{n}")"#), PLAIN));
    assert!(!met(
        &format!(r#"("Message Size", "is not", "{n}")"#),
        PLAIN
    ));
}

#[test]
fn human_generated() {
    // guide.txt:10614-10631.
    assert!(met(r#"("Human Generated")"#, PLAIN));
    assert!(met(r#"("Human Generated", "---")"#, PLAIN));
    for h in [
        "Precedence: bulk",
        "Precedence: junk",
        "Precedence: LIST",
        "X-List-Member: x",
        "X-Mirrored-by: <a@b>",
        "X-Autoreply: yes",
        "X-Mailing-List: foo",
    ] {
        assert!(!met(r#"("Human Generated")"#, &with_header(h)), "{h}");
    }
    assert!(met(
        r#"("Human Generated")"#,
        &with_header("Precedence: first-class")
    ));
    let mut c = Case::new();
    c.return_path = String::new();
    assert!(!c.met(r#"("Human Generated")"#, PLAIN));
}

#[test]
fn header_field_sees_added_headers() {
    let raw = with_header("X-Spam-Flag: YES");
    assert!(met(r#"("Header Field", is, "X-Spam-Flag: yes")"#, &raw));
    assert!(!met(r#"("Header Field", is, "X-Spam-Flag: yes")"#, PLAIN));
    assert!(met(r#"("Header Field", "is not", "X-Spam-Flag:*")"#, PLAIN));
    assert!(!met(r#"("Header Field", "is not", "X-Spam-Flag:*")"#, &raw));
    assert!(met(
        r#"("Header Field", in, "X-Nothing*,Subject: *assistance")"#,
        PLAIN
    ));
    // guide.txt:10636-10638: fields from Add Headers count too.
    let o = Case::new().run(
        r#"((9, A, (), (("Add Headers", "X-Tag: seen"))), (5, B, (("Header Field", is, "X-Tag: seen")), ((Discard))))"#,
        PLAIN,
    );
    assert_eq!(o.disposition, Disposition::Discard);
}

#[test]
fn any_and_each_recipient_with_orcpt() {
    // guide.txt:10662-10689: the ORCPT address replaces the routed one, in angle brackets.
    let mut c = Case::new();
    c.recipients = vec![
        EnvelopeRecipient {
            address: "user2@domain2.com".into(),
            orcpt: Some("rfc822;user1@domain1.com".into()),
            routed: None,
        },
        EnvelopeRecipient::new("user2@domain2.com"),
    ];
    assert!(c.met(r#"("Any Recipient", is, "<user1@domain1.com>")"#, PLAIN));
    assert!(c.met(r#"("Any Recipient", is, "<user2@domain2.com>")"#, PLAIN));
    assert!(!c.met(r#"("Each Recipient", is, "<user2@*>")"#, PLAIN));
    assert!(c.met(r#"("Each Recipient", in, "<user1@*>,<user2@*>")"#, PLAIN));
}

#[test]
fn time_of_day() {
    // The clock shows 10:30:15.
    assert!(met(r#"("Time Of Day", "greater than", "10:00")"#, PLAIN));
    assert!(met(r#"("Time Of Day", "less than", "11:00am")"#, PLAIN));
    assert!(!met(r#"("Time Of Day", "greater than", "1:00pm")"#, PLAIN));
    assert!(met(r#"("Time Of Day", is, "10:30")"#, PLAIN));
    assert!(!met(r#"("Time Of Day", is, "10:30:00")"#, PLAIN));
    assert!(met(r#"("Time Of Day", is, "10:30:15")"#, PLAIN));
    let c = Case::new();
    c.clock.advance(TimeDelta::hours(10));
    assert!(c.met(r#"("Time Of Day", "greater than", "8:00 pm")"#, PLAIN));
}

#[test]
fn current_date() {
    // Each of the guide's five formats (guide.txt:10707-10730).
    assert!(met(
        r#"("Current Date", "greater than", "01 Mar 2024")"#,
        PLAIN
    ));
    assert!(met(r#"("Current Date", is, "06 Mar 2024")"#, PLAIN));
    assert!(met(
        r#"("Current Date", "less than", "06 Mar 2024 11:00")"#,
        PLAIN
    ));
    assert!(met(
        r#"("Current Date", is, "06 Mar 2024 10:30:15")"#,
        PLAIN
    ));
    // 09:30:15 UTC = 10:30:15 +0100.
    assert!(met(
        r#"("Current Date", is, "06 Mar 2024 09:30:15 +0000")"#,
        PLAIN
    ));
    assert!(met(
        r#"("Current Date", "greater than", "06 Mar 2024 04:00:00 -0500")"#,
        PLAIN
    ));
    assert!(!met(r#"("Current Date", "is not", "06 mar 2024")"#, PLAIN));
}

#[test]
fn current_day() {
    // 2024-03-06 is a Wednesday: 3.
    assert!(met(r#"("Current Day", is, Wed)"#, PLAIN));
    assert!(met(r#"("Current Day", is, 3)"#, PLAIN));
    assert!(met(r#"("Current Day", "is not", Sun)"#, PLAIN));
    assert!(met(r#"("Current Day", "not in", "Sat,Sun")"#, PLAIN));
    assert!(met(r#"("Current Day", in, "1,2,3,4,5")"#, PLAIN));
    let c = Case::new();
    c.clock.advance(TimeDelta::days(4));
    assert!(c.met(r#"("Current Day", in, "Sat,Sun")"#, PLAIN));
}

#[test]
fn any_and_each_route_are_server_wide_only() {
    // guide.txt:10735-10755: only the local part of the routed address.
    let mut c = Case::new();
    c.scope = Scope::Server;
    c.recipients = vec![
        EnvelopeRecipient {
            address: "user@client.com".into(),
            orcpt: None,
            routed: Some("user@relay.host".into()),
        },
        EnvelopeRecipient {
            address: "sales@example.com".into(),
            orcpt: None,
            routed: Some("bob".into()),
        },
    ];
    assert!(c.met(r#"("Any Route", is, user)"#, PLAIN));
    assert!(!c.met(r#"("Any Route", is, "user@relay.host")"#, PLAIN));
    assert!(!c.met(r#"("Each Route", is, user)"#, PLAIN));
    assert!(c.met(r#"("Each Route", in, "user,bob")"#, PLAIN));
    c.scope = Scope::Account(ME.into());
    assert!(!c.met(r#"("Any Route", is, user)"#, PLAIN));
}

#[test]
fn conditions_are_anded_and_none_matches_all() {
    let c = Case::new();
    assert!(c.met(r#"(From, is, "bill@*"), (Subject, is, "*urgent*")"#, PLAIN));
    assert!(!c.met(r#"(From, is, "bill@*"), (Subject, is, "*calm*")"#, PLAIN));
    assert_eq!(
        c.run("((5, All, (), ((Discard))))", PLAIN).disposition,
        Disposition::Discard
    );
}

// ------------------------------------------------------------------ actions

#[test]
fn stop_processing_keeps_the_message_and_stops() {
    let o = Case::new().run(
        r#"((9, First, (), (("Stop Processing"))), (5, Second, (), ((Discard))))"#,
        PLAIN,
    );
    assert_eq!(o.disposition, Disposition::Deliver);
    assert_eq!(o.applied, vec!["First".to_string()]);
}

#[test]
fn discard_sample() {
    // guide.txt:10797-10800.
    let r = r#"((5, Annoying, ((From, is, "*that_annoying_guy@*")), ((Discard))))"#;
    let raw = PLAIN.replace("bill@stalker.com>", "that_annoying_guy@x.org>");
    assert_eq!(Case::new().run(r, &raw).disposition, Disposition::Discard);
    assert_eq!(Case::new().run(r, PLAIN).disposition, Disposition::Deliver);
}

#[test]
fn reject_sample_and_default_text() {
    // guide.txt:10808-10812.
    let r = r#"((5, UCE, ((Subject, is, "*UCE*")), ((Reject, "please do not send such messages here"))))"#;
    let raw = PLAIN.replace("we urgently", "UCE: we urgently");
    assert_eq!(
        Case::new().run(r, &raw).disposition,
        Disposition::Reject("please do not send such messages here".into())
    );
    let o = Case::new().run("((5, R, (), ((\"Reject with\"))))", PLAIN);
    assert_eq!(
        o.disposition,
        Disposition::Reject(eval::DEFAULT_REJECT.into())
    );
    // Store in before Reject is allowed (guide.txt:10806).
    let o = Case::new().run(r#"((5, R, (), (("Store in", Rejected), (Reject))))"#, PLAIN);
    assert!(matches!(&o.effects[0], Effect::Store { mailbox, .. } if mailbox == "Rejected"));
}

#[test]
fn mark_sample_and_flag_snapshots() {
    // guide.txt:10838-10841: IF Sender is *list* THEN Mark Flagged.
    let raw = with_header("Sender: list-owner@x.org");
    let o = Case::new().run(
        r#"((5, L, ((Sender, is, "*list*")), ((Mark, Flagged))))"#,
        &raw,
    );
    assert_eq!(o.flags, Flags::FLAGGED);
    let o = Case::new().run(
        r#"((5, M, (), ((Mark, "Read,Answered"), ("Store in", A), (Mark, "Unread, Unanswered, Flagged"), ("Store in", B))))"#,
        PLAIN,
    );
    let stores: Vec<Flags> = o
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Store { flags, .. } => Some(*flags),
            _ => None,
        })
        .collect();
    assert_eq!(stores, vec![Flags::SEEN | Flags::ANSWERED, Flags::FLAGGED]);
    assert_eq!(o.flags, Flags::FLAGGED);
}

#[test]
fn add_headers_sample() {
    // guide.txt:10855-10858.
    let raw = PLAIN.replace("we urgently", "purchase order");
    let o = Case::new().run(
        r#"((5, PO, ((Subject, is, "*purchase*order*")), (("Add Headers", "X-Special-Processing: order"), ("Store in", Orders))))"#,
        &raw,
    );
    assert_eq!(o.headers, "X-Special-Processing: order\r\n");
    assert!(
        matches!(&o.effects[0], Effect::Store { headers, .. } if headers == "X-Special-Processing: order\r\n")
    );
}

#[test]
fn store_in_sample() {
    // guide.txt:10869-10873: Store in ~postmaster/abuse, Discard.
    let raw = PLAIN.replace("we urgently", "Make $$$");
    let o = Case::new().run(
        r#"((5, Abuse, ((Subject, is, "*Make*$*")), (("Store in", "~postmaster/abuse"), (Discard))))"#,
        &raw,
    );
    assert_eq!(o.disposition, Disposition::Discard);
    assert_eq!(
        o.effects,
        vec![Effect::Store {
            mailbox: "~postmaster/abuse".into(),
            flags: Flags::empty(),
            headers: String::new()
        }]
    );
}

#[test]
fn redirect_keeps_header_and_return_path() {
    let o = Case::new().run(
        r#"((5, R, (), (("Redirect to", "a@x.org, b@y.org"))))"#,
        PLAIN,
    );
    assert_eq!(o.disposition, Disposition::Deliver); // not an implicit Discard
    let s = submitted(&o);
    assert_eq!(s.len(), 1);
    let (action, sub, text) = &s[0];
    assert_eq!(*action, "Redirect to");
    assert_eq!(sub.return_path, "bill@stalker.com");
    let to: Vec<&str> = sub.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(to, vec!["a@x.org", "b@y.org"]);
    assert_eq!(sub.source, Source::Rules(ME.into()));
    assert!(
        text.starts_with("Resent-From: <me@example.com>\r\nResent-To: <a@x.org>, <b@y.org>\r\n")
    );
    assert!(text.contains("\r\nFrom: Bill <bill@stalker.com>\r\n"));
    assert!(text.ends_with("\r\n\r\nHello.\r\n"));
}

#[test]
fn forward_changes_from() {
    let o = Case::new().run(r#"((5, F, (), (("Forward to", "a@x.org"))))"#, PLAIN);
    let (_, sub, text) = &submitted(&o)[0];
    assert_eq!(sub.return_path, ME);
    assert!(text.contains("\r\nFrom: <me@example.com>\r\nTo: me@example.com"));
    assert!(text.starts_with("Resent-From: <me@example.com>\r\n"));
    assert!(!text.contains("bill@stalker.com"));
}

#[test]
fn mirror_removes_receipt_fields_and_marks() {
    let raw = with_header("Return-Receipt-To: bill@stalker.com\r\nErrors-To: bill@stalker.com");
    let o = Case::new().run(
        r#"((5, M, (), (("Mirror to", "a@x.org"), (Discard))))"#,
        &raw,
    );
    assert_eq!(o.disposition, Disposition::Discard);
    let (_, sub, text) = &submitted(&o)[0];
    assert_eq!(sub.return_path, "bill@stalker.com");
    assert!(!text.contains("Return-Receipt-To"));
    assert!(!text.contains("Errors-To"));
    assert!(text.contains("To: me@example.com, boss@mycompany.com\r\n"));
    assert!(text.contains("X-Mirrored-by: <me@example.com>\r\n\r\nHello."));
}

#[test]
fn reply_with_goes_to_reply_to_else_from() {
    let o = Case::new().run(
        r#"((5, R, (), (("Reply with", "About ^S from ^F sent ^T as ^I: away."))))"#,
        PLAIN,
    );
    let (_, sub, text) = &submitted(&o)[0];
    assert_eq!(sub.return_path, ""); // RFC 3834 §3.3
    assert_eq!(sub.recipients[0].address, "bill@stalker.com");
    assert!(text.contains("Subject: Re: we urgently need your assistance\r\n"));
    assert!(text.contains("In-Reply-To: <abc@stalker.com>\r\n"));
    assert!(text.contains("References: <abc@stalker.com>\r\n"));
    assert!(text.contains("Auto-Submitted: auto-replied\r\n"));
    assert!(
        text.contains("From: <me@example.com>\r\n") || text.contains("From: me@example.com\r\n")
    );
    let parsed = mail_parser::MessageParser::new()
        .parse(text.as_bytes())
        .unwrap();
    assert_eq!(
        parsed.body_text(0).unwrap().trim_end(),
        "About we urgently need your assistance from bill@stalker.com sent Tue, 5 Mar 2024 09:00:00 +0000 as <abc@stalker.com>: away."
    );
    let raw = with_header("Reply-To: desk@stalker.com");
    let o = Case::new().run(r#"((5, R, (), (("Reply with", "away"))))"#, &raw);
    assert_eq!(submitted(&o)[0].1.recipients[0].address, "desk@stalker.com");
}

#[test]
fn reply_with_header_text() {
    // guide.txt:10898-10909: "+" then header fields, an empty line, the body.
    let o = Case::new().run(
        "((5, R, (), ((\"Reply with\", \"+Subject: Got ^S\\eCc: boss@example.com\\eBcc: log@example.com\\e\\eThanks.\"))))",
        PLAIN,
    );
    let (_, sub, text) = &submitted(&o)[0];
    let to: Vec<&str> = sub.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        to,
        vec!["bill@stalker.com", "boss@example.com", "log@example.com"]
    );
    assert!(text.contains("Subject: Got we urgently need your assistance\r\n"));
    assert!(!text.contains("Bcc"));
    assert!(!text.contains("In-Reply-To"));
    assert!(text.contains("From: <me@example.com>\r\n"));
    assert!(text.ends_with("\r\n\r\nThanks."));
    // With its own From, the account becomes Sender.
    let o = Case::new().run(
        "((5, R, (), ((\"Reply with\", \"[utf-8]+From: Desk <desk@example.com>\\eSubject: x\\e\\ebody\"))))",
        PLAIN,
    );
    let text = &submitted(&o)[0].2;
    assert!(text.contains("From: Desk <desk@example.com>\r\n"));
    assert!(!text.contains("From: <me@example.com>"));
    assert!(text.contains("Sender: <me@example.com>\r\n"));
}

#[test]
fn reply_to_all_skips_the_account_itself() {
    let o = Case::new().run(r#"((5, R, (), (("Reply to All with", "noted"))))"#, PLAIN);
    let to: Vec<String> = submitted(&o)[0]
        .1
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    assert_eq!(to, vec!["boss@mycompany.com", "ann@mydept.mycompany.com"]);
}

#[test]
fn reply_once_per_sender_per_period() {
    let c = Case::new();
    let r = r#"((5, R, (), (("Reply with", "away"))))"#;
    assert_eq!(submitted(&c.run(r, PLAIN)).len(), 1);
    assert_eq!(submitted(&c.run(r, PLAIN)).len(), 0);
    c.clock.advance(TimeDelta::days(6));
    assert_eq!(submitted(&c.run(r, PLAIN)).len(), 0);
    c.clock.advance(TimeDelta::days(2));
    assert_eq!(submitted(&c.run(r, PLAIN)).len(), 1);
    // Another sender is answered at once.
    let other = PLAIN.replace("bill@stalker.com>", "ann@other.org>");
    assert_eq!(submitted(&c.run(r, &other)).len(), 1);
}

#[test]
fn never_reply_to_automatic_mail() {
    let r = r#"((5, R, (), (("Reply with", "away"), ("Reply to All with", "away"))))"#;
    let mut c = Case::new();
    c.return_path = String::new();
    assert!(submitted(&c.run(r, PLAIN)).is_empty());
    for h in [
        "Precedence: bulk",
        "Precedence: list",
        "List-Id: <team.example.com>",
        "Auto-Submitted: auto-replied",
        "X-Mailing-List: x",
    ] {
        let o = Case::new().run(r, &with_header(h));
        assert!(submitted(&o).is_empty(), "{h}");
        assert!(!o.notes.is_empty());
    }
    let mut c = Case::new();
    c.return_path = "MAILER-DAEMON@stalker.com".into();
    assert!(submitted(&c.run(r, PLAIN)).is_empty());
    let mut c = Case::new();
    c.return_path = "team-request@stalker.com".into();
    assert!(submitted(&c.run(r, PLAIN)).is_empty());
    assert_eq!(
        submitted(&Case::new().run(r, &with_header("Auto-Submitted: no"))).len(),
        2
    );
}

#[test]
fn react_with_sends_to_its_own_header() {
    let o = Case::new().run(
        "((5, R, (), ((\"React with\", \"To: ops@example.com\\eSubject: mail from ^F\\e\\eSee ^I.\"))))",
        PLAIN,
    );
    let (_, sub, text) = &submitted(&o)[0];
    assert_eq!(sub.recipients[0].address, "ops@example.com");
    assert!(text.contains("Subject: mail from bill@stalker.com\r\n"));
    assert!(text.contains("From: <me@example.com>\r\n"));
    assert!(text.ends_with("See <abc@stalker.com>."));
    let o = Case::new().run(
        "((5, R, (), ((\"React with\", \"Subject: x\\e\\ey\"))))",
        PLAIN,
    );
    assert!(submitted(&o).is_empty());
}

#[test]
fn execute_needs_the_right() {
    let r = r#"((5, X, (), ((Execute, "[RETPATH] [STDERR] /usr/bin/filter -q"), (FingerNotify, "10.0.0.1"))))"#;
    let o = Case::new().run(r, PLAIN);
    assert!(o.effects.is_empty());
    assert_eq!(o.notes.len(), 2);
    let mut c = Case::new();
    c.allow_exec = true;
    let o = c.run(r, PLAIN);
    assert_eq!(
        o.effects,
        vec![
            Effect::Execute(ExecSpec {
                file: false,
                retpath: true,
                rcpt: false,
                stderr: true,
                command: "/usr/bin/filter -q".into()
            }),
            Effect::FingerNotify(Some("10.0.0.1".into()))
        ]
    );
    // [FILE] and [RCPT] are for Server-Wide Rules only.
    let r = r#"((5, X, (), ((Execute, "[FILE] [RCPT] scan"))))"#;
    assert!(c.run(r, PLAIN).effects.is_empty());
    c.scope = Scope::Server;
    assert!(matches!(&c.run(r, PLAIN).effects[0], Effect::Execute(e) if e.file && e.rcpt));
}

#[test]
fn external_filter_and_write_to_log() {
    let r = r#"((5, Scan, (), ((ExternalFilter), ("Write To Log", "scanned"))))"#;
    let o = Case::new().run(r, PLAIN);
    assert_eq!(o.effects, vec![Effect::Log("scanned".into())]); // ExternalFilter: server only
    let mut c = Case::new();
    c.scope = Scope::Server;
    assert_eq!(
        c.run(r, PLAIN).effects,
        vec![Effect::ExternalFilter, Effect::Log("scanned".into())]
    );
}

#[test]
fn built_in_auto_reply_answers_each_author_once() {
    // guide.txt:11068-11102.
    let c = Case::new();
    let set = rules_to_value(&[builtin::auto_reply("I am away until ^T.", true)]);
    let text = String::from_utf8(format::to_bytes(&set)).unwrap();
    assert_eq!(submitted(&c.run(&text, PLAIN)).len(), 1);
    assert_eq!(
        c.data.string_list(builtin::REPLIED_ADDRESSES),
        vec!["bill@stalker.com"]
    );
    // Even after the reply period: the author is in RepliedAddresses.
    c.clock.advance(TimeDelta::days(30));
    assert_eq!(submitted(&c.run(&text, PLAIN)).len(), 0);
    // Disabled: kept, not applied.
    let off = rules_to_value(&[builtin::auto_reply("away", false)]);
    let off = String::from_utf8(format::to_bytes(&off)).unwrap();
    let other = PLAIN.replace("bill@stalker.com>", "ann@other.org>");
    assert_eq!(submitted(&Case::new().run(&off, &other)).len(), 0);
    let parsed = rules(&off);
    assert_eq!(
        builtin::read_auto_reply(&parsed),
        Some((false, "away".into()))
    );
}

#[test]
fn built_in_redirect_all() {
    // guide.txt:11104-11139.
    let o = RedirectAll {
        enabled: true,
        to: vec!["home@x.org".into()],
        keep_copy: false,
        human_only: true,
        preserve_to_cc: true,
    };
    let rule = builtin::redirect_all(&o);
    assert_eq!(rule.priority, 1);
    let set = [rule];
    assert_eq!(builtin::read_redirect_all(&set), Some(o.clone()));
    let text = String::from_utf8(format::to_bytes(&rules_to_value(&set))).unwrap();
    let out = Case::new().run(&text, PLAIN);
    assert_eq!(out.disposition, Disposition::Discard);
    assert_eq!(submitted(&out)[0].0, "Mirror to");
    // Automatic messages are not redirected, and stay in INBOX.
    let out = Case::new().run(&text, &with_header("Precedence: bulk"));
    assert_eq!(out.disposition, Disposition::Deliver);
    assert!(out.effects.is_empty());
    let plain = RedirectAll {
        keep_copy: true,
        human_only: false,
        preserve_to_cc: false,
        ..o
    };
    let mut set = set.to_vec();
    builtin::replace_rule(&mut set, builtin::redirect_all(&plain));
    assert_eq!(set.len(), 1);
    assert_eq!(
        set[0].actions,
        vec![Action::RedirectTo(vec!["home@x.org".into()])]
    );
    assert!(set[0].conditions.is_empty());
}

// ------------------------------------------------------------------ priorities

#[test]
fn higher_priority_first_disabled_skipped_equal_kept_in_order() {
    let o = Case::new().run(
        r#"((1, Low, (), (("Store in", Low))), (0, Off, (), ((Discard))), (9, High, (), (("Store in", High))), (5, MidA, (), (("Store in", A))), (5, MidB, (), (("Store in", B))))"#,
        PLAIN,
    );
    assert_eq!(o.applied, vec!["High", "MidA", "MidB", "Low"]);
    assert_eq!(o.disposition, Disposition::Deliver);
    let o = Case::new().run(
        r#"((1, Low, (), (("Store in", Low))), (disabled, Off, (), ((Discard))), (7, Stop, ((Subject, is, "*urgent*")), (("Store in", Urgent), ("Stop Processing"))))"#,
        PLAIN,
    );
    assert_eq!(o.applied, vec!["Stop"]);
    assert_eq!(o.effects.len(), 1);
}

// ------------------------------------------------------------------ stored form

#[test]
fn parse_errors_name_the_rule_and_element() {
    let cases = [
        ("x", "Rules must be an array"),
        ("((5, A, ()))", "Rule '#1': a rule must be"),
        ("((12, A, (), ()))", "Rule 'A': priority must be"),
        ("((5, \"\", (), ()))", "Rule '#1': the rule name"),
        (
            "((5, A, ((Colour, is, red)), ()))",
            "Rule 'A': condition 1: unknown condition 'Colour'",
        ),
        (
            "((5, A, ((From, equals, x)), ()))",
            "Rule 'A': condition 1: unknown operation 'equals'",
        ),
        (
            "((5, A, ((From, \"less than\", x)), ()))",
            "Rule 'A': condition 1: 'less than' cannot be used with 'From'",
        ),
        (
            "((5, A, ((\"Message Size\", in, 5)), ()))",
            "cannot be used with 'Message Size'",
        ),
        (
            "((5, A, ((\"Message Size\", is, big)), ()))",
            "bad size 'big'",
        ),
        (
            "((5, A, ((\"Time Of Day\", is, \"25:00\")), ()))",
            "bad time '25:00'",
        ),
        (
            "((5, A, ((\"Current Date\", is, \"31 Feb 2024\")), ()))",
            "bad date",
        ),
        (
            "((5, A, ((\"Current Day\", is, Someday)), ()))",
            "bad day 'Someday'",
        ),
        ("((5, A, ((From)), ()))", "'From' needs an operation"),
        (
            "((5, A, ((\"Human Generated\", is, x)), ()))",
            "takes no operation",
        ),
        (
            "((5, B, (), ((Fly, away))))",
            "Rule 'B': action 1: unknown action 'Fly'",
        ),
        (
            "((5, B, (), ((Discard), (Mark, Read))))",
            "Rule 'B': 'Discard' must be the last action",
        ),
        (
            "((5, B, (), ((Discard, now))))",
            "'Discard' takes no parameter",
        ),
        (
            "((5, B, (), ((Mark, Shiny))))",
            "unknown Mark operation 'Shiny'",
        ),
        (
            "((5, B, (), ((\"Redirect to\", \" , \"))))",
            "needs at least one address",
        ),
        (
            "((5, B, (), ((\"Redirect to\", \"a b@c\"))))",
            "bad address 'a b@c'",
        ),
        (
            "((5, B, (), ((\"Store in\", \"../x\"))))",
            "bad mailbox name",
        ),
        (
            "((5, B, (), ((Execute, \"[SUDO] x\"))))",
            "unknown Execute prefix [SUDO]",
        ),
        (
            "((5, B, (), ((Execute, \"[FILE]\"))))",
            "needs a command line",
        ),
        (
            "((5, B, (), ((\"Add Headers\", \"no colon here\"))))",
            "bad header field",
        ),
        (
            "((5, B, (), ((\"Reply with\"))))",
            "'Reply with' needs a message text",
        ),
    ];
    for (text, want) in cases {
        let v = format::parse(text.as_bytes()).unwrap();
        let e = parse_rules(&v).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: got {e:?}, want {want:?}");
    }
}

#[test]
fn round_trip_is_stable() {
    let text = r##"((9, "Spam filter", (("Header Field", is, "X-Spam-Flag: YES"), ("Human Generated")), (("Store in", Junk), (Mark, "Read,Flagged"), ("Stop Processing"))), (5, Boss, ((From, in, "boss@*,ceo@*"), ("Current Day", "not in", "Sat,Sun"), ("Time Of Day", "less than", "6:00pm"), ("Current Date", "greater than", "01 Jan 2024 09:00:00 +0100"), ("Message Size", "less than", 10K)), (("Forward to", "me@phone.example"), (Execute, "[RETPATH] [STDERR] notify -x"), ("Add Headers", "X-Boss: yes"), (Reject, "not today"))), (0, Off, (), ((FingerNotify), (ExternalFilter), ("Write To Log", hello), ("Reply to All with", hi), ("React with", "To: a@b\e\ebody"), ("Mirror to", "a@b,c@d"), ("Redirect to", x@y), ("Remember 'From' in", Seen), ("Reply with", bye), (Discard))))"##;
    let first = rules(text);
    assert_eq!(first.len(), 3);
    let v = rules_to_value(&first);
    let again = parse_rules(&v).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        format::to_bytes(&rules_to_value(&again)),
        format::to_bytes(&v)
    );
    // Keywords are read in any case and written in the guide's spelling.
    let lower = rules(r#"((3, a, ((from, "IS NOT", x)), (("store IN", y))))"#);
    let out = String::from_utf8(format::to_bytes(&rules_to_value(&lower))).unwrap();
    assert_eq!(out, r#"((3,a,((From,"is not",x)),(("Store in",y))))"#);
    // The store's "absent" (an empty dictionary) is an empty set.
    assert!(parse_rules(&format::Value::empty_dict())
        .unwrap()
        .is_empty());
}

#[test]
fn rights_tiers() {
    use super::RulesRight as R;
    assert_eq!(R::parse("all but exec"), Some(R::AllButExec));
    assert_eq!(R::parse("bogus"), None);
    let discard = Action::Discard;
    let redirect = Action::RedirectTo(vec!["a@b".into()]);
    let exec = Action::Execute(ExecSpec {
        command: "x".into(),
        ..ExecSpec::default()
    });
    assert!(!R::No.allows(&discard));
    assert!(R::FilterOnly.allows(&discard) && !R::FilterOnly.allows(&redirect));
    assert!(R::AllButExec.allows(&redirect) && !R::AllButExec.allows(&exec));
    assert!(R::Any.allows(&exec));
    assert!(!R::Any.allows(&Action::WriteToLog("x".into())));
}

#[test]
fn header_reader_is_bounded() {
    let mut raw = String::new();
    for i in 0..(message::MAX_FIELDS + 50) {
        raw.push_str(&format!("X-F{i}: v\r\n"));
    }
    raw.push_str("\r\nbody");
    let m = MessageView::new(raw.as_bytes(), "a@b", vec![], Source::Pipe);
    assert_eq!(m.fields().len(), message::MAX_FIELDS);
    assert_eq!(m.body(), b"body");
    // Folded fields are unfolded; LF-only messages work.
    let m = MessageView::new(b"Subject: a\n b\nX: 1\n\nbody\n", "", vec![], Source::Pipe);
    assert_eq!(m.field("subject"), Some("a b"));
    assert_eq!(m.body(), b"body\n");
    // No header at all.
    let m = MessageView::new(b"", "", vec![], Source::Pipe);
    assert!(m.fields().is_empty());
}

// ------------------------------------------------------------------ store-backed runs, Execute

#[test]
fn account_rules_from_the_store_remember_in_account_info() {
    use crate::store::{AccountType, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "example.com").unwrap();
    store
        .create_account(
            "example.com",
            "me",
            AccountType::MultiMailbox,
            format::Dict::new(),
        )
        .unwrap();
    let set = rules_to_value(&[
        builtin::auto_reply("away", true),
        rules(r#"((5, X, (), ((Execute, "notify"))))"#).remove(0),
    ]);
    store.set_account_rules("example.com", "me", set).unwrap();
    let clock = ManualClock::new(t0());
    let msg = MessageView::new(PLAIN.as_bytes(), "bill@stalker.com", vec![], Source::Pipe);
    let o = run::account_rules(
        &store,
        &*clock,
        "mail.example.com",
        "example.com",
        "me",
        &msg,
    )
    .unwrap();
    assert_eq!(submitted(&o).len(), 1);
    // RulesAllowed defaults to No: Execute is skipped.
    assert!(!o.effects.iter().any(|e| matches!(e, Effect::Execute(_))));
    let again = run::account_rules(
        &store,
        &*clock,
        "mail.example.com",
        "example.com",
        "me",
        &msg,
    )
    .unwrap();
    assert!(submitted(&again).is_empty());
    let data = eval::StoreData::new(store.clone(), "example.com", "me");
    assert_eq!(
        data.string_list(builtin::REPLIED_ADDRESSES),
        vec!["bill@stalker.com"]
    );
    assert!(data.last_reply("bill@stalker.com").is_some());
    // "Clear 'Replied Addresses' List" (guide.txt:11097-11100).
    data.clear_string_list(builtin::REPLIED_ADDRESSES).unwrap();
    assert!(data.string_list(builtin::REPLIED_ADDRESSES).is_empty());
    // With RulesAllowed = Any, Execute runs.
    let mut s = format::Dict::new();
    s.insert(b"RulesAllowed".to_vec(), format::Value::str("Any"));
    store
        .update_account_settings("example.com", "me", s)
        .unwrap();
    let o = run::account_rules(
        &store,
        &*clock,
        "mail.example.com",
        "example.com",
        "me",
        &msg,
    )
    .unwrap();
    assert!(o.effects.iter().any(|e| matches!(e, Effect::Execute(_))));
    // Server-Wide Rules from Settings/ServerRules.settings; absent = none.
    let o = run::server_rules(&store, &*clock, "mail.example.com", &msg).unwrap();
    assert!(o.applied.is_empty());
    store
        .set_server_settings(
            SERVER_RULES,
            &rules_to_value(&rules("((5, S, (), ((Discard))))")),
        )
        .unwrap();
    let o = run::server_rules(&store, &*clock, "mail.example.com", &msg).unwrap();
    assert_eq!(o.disposition, Disposition::Discard);
}

fn script(dir: &std::path::Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("task.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

fn exec_msg() -> MessageView<'static> {
    let mut m = MessageView::new(
        PLAIN.as_bytes(),
        "bill@stalker.com",
        vec![
            EnvelopeRecipient::new("a@x.org"),
            EnvelopeRecipient::new("b@y.org"),
        ],
        Source::Pipe,
    );
    m.queue_id = Some(12002345);
    m
}

#[test]
fn execute_passes_the_message_and_the_arguments_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let prog = script(
        dir.path(),
        "cat > in.txt; echo \"$@\" > args.txt; echo done",
    );
    let spec = ExecSpec {
        file: false,
        retpath: true,
        rcpt: true,
        stderr: false,
        command: format!("{prog} parm1"),
    };
    let r = run::execute(&spec, &exec_msg(), dir.path(), Duration::from_secs(20));
    assert!(r.ok, "{r:?}");
    assert_eq!(r.log, "stdout: done");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("in.txt")).unwrap(),
        PLAIN
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("args.txt")).unwrap(),
        "parm1 -p bill@stalker.com -r a@x.org b@y.org\n"
    );
    // [FILE]: stdin closed, -f first (guide.txt:10996-11001).
    let spec = ExecSpec {
        file: true,
        retpath: true,
        ..spec
    };
    assert_eq!(
        run::exec_argv(&spec, &exec_msg())[1..].join(" "),
        "parm1 -f Queue/12002345.msg -p bill@stalker.com -r a@x.org b@y.org"
    );
}

#[test]
fn execute_failures_reject() {
    let dir = tempfile::tempdir().unwrap();
    let prog = script(
        dir.path(),
        "cat > /dev/null; echo 'no such user' >&2; exit 3",
    );
    let mut spec = ExecSpec {
        command: prog,
        ..ExecSpec::default()
    };
    let r = run::execute(&spec, &exec_msg(), dir.path(), Duration::from_secs(20));
    assert!(!r.ok);
    assert_eq!(r.code, Some(3));
    assert_eq!(r.error.as_deref(), Some(run::EXEC_FAILED));
    assert!(r.log.contains("exit code 3") && r.log.contains("no such user"));
    spec.stderr = true;
    let r = run::execute(&spec, &exec_msg(), dir.path(), Duration::from_secs(20));
    assert_eq!(r.error.as_deref(), Some("no such user"));
    // Killed when it runs too long.
    spec.command = script(dir.path(), "cat > /dev/null; sleep 30");
    let r = run::execute(&spec, &exec_msg(), dir.path(), Duration::from_millis(300));
    assert!(!r.ok);
    assert!(r.log.contains("killed after"), "{r:?}");
    // A program that does not exist.
    spec.command = "/nonexistent/program".into();
    assert!(!run::execute(&spec, &exec_msg(), dir.path(), Duration::from_secs(5)).ok);
}

// ------------------------------------------------------------------ properties

mod props {
    use proptest::prelude::*;

    use super::super::pattern::matches;
    use super::super::{parse_rules, rules_to_value};
    use crate::format::{self, Value};

    const CONDITIONS: [&str; 10] = [
        r#"(From, is, "*@x*")"#,
        r#"("Any To or Cc", "not in", "a,b ,c")"#,
        r#"("Message Size", "greater than", 10K)"#,
        r#"("Human Generated")"#,
        r#"("Time Of Day", "less than", "9:15pm")"#,
        r#"("Current Date", is, "01 Jan 2030 10:00:00 -0330")"#,
        r#"("Current Day", in, "Sat,0")"#,
        r##"(Sender, in, "#List")"##,
        r#"("Header Field", "is not", "X-*: *")"#,
        r#"("Each Route", is, "u*")"#,
    ];
    const ACTIONS: [&str; 10] = [
        r#"(Mark, "Read,Unflagged")"#,
        r#"("Add Headers", "X-A: 1\eX-B: 2")"#,
        r#"("Store in", "a/b")"#,
        r#"("Redirect to", "a@b,c@d")"#,
        r#"("Reply with", "+Subject: x\e\ey")"#,
        r#"(Execute, "[RCPT] [FILE] x -y")"#,
        r#"(FingerNotify)"#,
        r#"("Write To Log", "t")"#,
        r#"("Remember 'From' in", L)"#,
        r#"("Mirror to", "m@n")"#,
    ];

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 '#*,:-]{0,12}".prop_map(Value::str),
            Just(Value::str("is")),
            Just(Value::str("From")),
            Just(Value::str("Discard")),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop::collection::vec(inner, 0..5).prop_map(Value::Array)
        })
    }

    proptest! {
        #[test]
        fn any_value_is_read_without_panic(v in arb_value()) {
            let _ = parse_rules(&v);
        }

        #[test]
        fn valid_sets_round_trip(
            picks in prop::collection::vec(
                (0u8..10, prop::sample::subsequence(CONDITIONS.to_vec(), 0..4),
                 prop::sample::subsequence(ACTIONS.to_vec(), 0..4), any::<bool>()),
                0..5)
        ) {
            let text = format!("({})", picks
                .iter()
                .enumerate()
                .map(|(i, (p, c, a, stop))| format!(
                    "({p}, \"r{i}\", ({}), ({}{}))",
                    c.join(","),
                    a.join(","),
                    if *stop { if a.is_empty() { "(\"Stop Processing\")" } else { ",(\"Stop Processing\")" } } else { "" }
                ))
                .collect::<Vec<_>>()
                .join(","));
            let rules = parse_rules(&format::parse(text.as_bytes()).unwrap()).unwrap();
            let v = rules_to_value(&rules);
            prop_assert_eq!(parse_rules(&v).unwrap(), rules);
        }

        #[test]
        fn starred_text_matches_itself(s in "[a-zA-Z0-9@.]{0,20}", mask in prop::collection::vec(any::<bool>(), 20)) {
            let picture: String = s
                .chars()
                .zip(mask.iter().chain(std::iter::repeat(&false)))
                .map(|(c, star)| if *star { '*' } else { c })
                .collect();
            prop_assert!(matches(&picture, &s));
            prop_assert!(matches(&s.to_ascii_uppercase(), &s));
            prop_assert!(matches("*", &s));
        }
    }
}

#[test]
fn message_data_cannot_inject_header_fields() {
    // An encoded Subject that decodes to a line break and a Bcc field.
    let raw = PLAIN.replace(
        "Subject: we urgently need your assistance",
        "Subject: =?utf-8?q?hi=0D=0ABcc:_victim@x.org?=",
    );
    let o = Case::new().run(
        "((5, R, (), ((\"Reply with\", \"+Subject: Re ^S\\e\\ebody\"))))",
        &raw,
    );
    let (_, sub, text) = &submitted(&o)[0];
    assert_eq!(sub.recipients.len(), 1);
    assert!(!text.contains("\r\nBcc:"));
    assert!(text.contains("Subject: Re hi  Bcc: victim@x.org\r\n"));
    let v = format::parse(b"((5, B, (), ((\"Add Headers\", \"X-A: 1\\rBcc: x\"))))").unwrap();
    assert!(parse_rules(&v)
        .unwrap_err()
        .0
        .contains("control characters"));
}

#[test]
fn sending_on_stops_at_loops() {
    let r = r#"((5, R, (), (("Redirect to", "a@x.org"), ("Mirror to", "b@x.org"), ("Forward to", "c@x.org"))))"#;
    let o = Case::new().run(r, PLAIN);
    assert_eq!(submitted(&o).len(), 3);
    // A copy that already went through this account is not sent on again.
    let (_, _, redirected) = &submitted(&o)[0];
    let o = Case::new().run(r, redirected);
    assert!(submitted(&o).is_empty());
    assert_eq!(o.notes.len(), 3);
    let first = Case::new().run(r, PLAIN);
    let (_, _, mirrored) = &submitted(&first)[1];
    assert!(submitted(&Case::new().run(r, mirrored)).is_empty());
    // Nor one that went through too many others.
    let many: String = (0..compose::MAX_RESENDS)
        .map(|i| format!("Resent-From: <u{i}@x.org>\r\n"))
        .collect();
    assert!(submitted(&Case::new().run(r, &format!("{many}{PLAIN}"))).is_empty());
}

#[test]
fn finger_notify_sends_the_notifier_string() {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        got
    });
    run::finger_notify(&addr, Duration::from_secs(5)).unwrap();
    assert_eq!(t.join().unwrap(), "nm_notifyuser\r\n");
}
