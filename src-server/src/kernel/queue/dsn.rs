//! Delivery Status Notifications (RFC 3464; RFC 3461 for NOTIFY/RET/ORCPT/ENVID): the reports
//! the Dequeuer sends back to a message's return-path (guide.txt:9960-10008).
//!
//! A report is `multipart/report; report-type=delivery-status` with three parts: a text for
//! people, the `message/delivery-status` fields, and the message (`message/rfc822`) or only its
//! headers (`text/rfc822-headers`). Built with `mail-builder`.
//!
//! Security: the recipients' error texts come from remote servers; they are put on one line
//! (control characters replaced) before they enter a header-like field.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId as MsgIdHeader;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

use super::file::{header_section, header_values, Envelope};

/// RFC 3464 §2.3.3 `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Delivery failed for good.
    Failed,
    /// Delivery is delayed; it will be retried.
    Delayed,
    /// Delivered (reported because NOTIFY=SUCCESS).
    Delivered,
    /// Handed to a next hop that takes no DSN request (NOTIFY=SUCCESS; RFC 3461 §5.2.2).
    Relayed,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient in a report.
#[derive(Debug, Clone)]
pub struct Item {
    /// Recipient index in the envelope.
    pub rcpt: usize,
    /// What happened.
    pub action: Action,
    /// The channel's text (an SMTP reply or our reason).
    pub text: String,
    /// When it happened (Unix seconds).
    pub time: i64,
}

/// What one report says and carries.
pub struct Report<'a> {
    /// The server's name (Reporting-MTA, From domain).
    pub host: &'a str,
    /// The reported message's envelope.
    pub envelope: &'a Envelope,
    /// The reported message.
    pub message: &'a [u8],
    /// The recipients reported.
    pub items: &'a [Item],
    /// Return the whole message (else only its headers).
    pub full: bool,
    /// Queue lifetime end for delayed recipients (Unix seconds).
    pub retry_until: Option<i64>,
    /// Now.
    pub now: DateTime<FixedOffset>,
    /// A unique token for the Message-ID.
    pub token: u64,
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn date(t: i64, like: &DateTime<FixedOffset>) -> String {
    Utc.timestamp_opt(t, 0)
        .single()
        .unwrap_or_default()
        .with_timezone(like.offset())
        .to_rfc2822()
}

/// The RFC 3463 status code in an error text (`5.1.1`), or the class default.
fn status(action: Action, text: &str) -> String {
    let found = text.split([' ', '\t', ':', ';', ',']).find(|w| {
        let p: Vec<&str> = w.split('.').collect();
        p.len() == 3
            && matches!(p[0], "2" | "4" | "5")
            && p[1..]
                .iter()
                .all(|x| (1..=3).contains(&x.len()) && x.bytes().all(|b| b.is_ascii_digit()))
    });
    let class = match action {
        Action::Failed => '5',
        Action::Delayed => '4',
        Action::Delivered | Action::Relayed => '2',
    };
    match found {
        Some(code) if code.starts_with(class) => code.to_string(),
        _ => format!("{class}.0.0"),
    }
}

/// The report's `message/delivery-status` body.
fn status_fields(r: &Report<'_>) -> String {
    let env = r.envelope;
    let mut out = format!("Reporting-MTA: dns; {}\r\n", r.host);
    if let Some(e) = &env.env_id {
        out.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(e)));
    }
    out.push_str(&format!("Arrival-Date: {}\r\n", date(env.arrived, &r.now)));
    for item in r.items {
        let Some(rcpt) = env.recipients.get(item.rcpt) else {
            continue;
        };
        out.push_str("\r\n");
        if let Some(o) = &rcpt.orcpt {
            out.push_str(&format!("Original-Recipient: {}\r\n", one_line(o)));
        }
        out.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\nAction: {}\r\nStatus: {}\r\n",
            one_line(&rcpt.address),
            item.action.name(),
            status(item.action, &item.text)
        ));
        let text = one_line(&item.text);
        if !text.is_empty() {
            // RFC 3464 §2.3.6: an SMTP reply is type smtp; our own reasons are X-Gatehouse.
            let kind = if text.len() >= 3 && text.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                "smtp"
            } else {
                "X-Gatehouse"
            };
            out.push_str(&format!("Diagnostic-Code: {kind}; {text}\r\n"));
        }
        out.push_str(&format!(
            "Last-Attempt-Date: {}\r\n",
            date(item.time, &r.now)
        ));
        if let (Action::Delayed, Some(until)) = (item.action, r.retry_until) {
            out.push_str(&format!("Will-Retry-Until: {}\r\n", date(until, &r.now)));
        }
    }
    out
}

fn human_text(r: &Report<'_>) -> String {
    let mut out = String::new();
    let failed = r.items.iter().any(|i| i.action == Action::Failed);
    let delayed = r.items.iter().any(|i| i.action == Action::Delayed);
    let relayed = r.items.iter().any(|i| i.action == Action::Relayed);
    out.push_str(if failed {
        "Your message could not be delivered to one or more recipients.\r\n"
    } else if delayed {
        "Your message has not been delivered yet; the server keeps trying.\r\n"
    } else if relayed {
        "Your message has been relayed to a server that sends no delivery reports: \
         no further report will come.\r\n"
    } else {
        "Your message has been delivered.\r\n"
    });
    out.push_str("\r\n");
    for item in r.items {
        if let Some(rcpt) = r.envelope.recipients.get(item.rcpt) {
            out.push_str(&format!(
                "{}: {}",
                one_line(&rcpt.address),
                item.action.name()
            ));
            if !item.text.is_empty() {
                out.push_str(&format!(": {}", one_line(&item.text)));
            }
            out.push_str("\r\n");
        }
    }
    out
}

/// The subject of a report.
fn subject(r: &Report<'_>) -> String {
    let original = header_values(r.message, "Subject")
        .into_iter()
        .next()
        .map(|s| one_line(&s))
        .unwrap_or_default();
    let what = if r.items.iter().any(|i| i.action == Action::Failed) {
        "Undeliverable mail"
    } else if r.items.iter().any(|i| i.action == Action::Delayed) {
        "Delayed mail (still trying)"
    } else {
        "Delivery report"
    };
    if original.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {original}")
    }
}

/// The report message, ready to submit with return-path `<>`.
pub fn build(r: &Report<'_>, to: &str) -> Vec<u8> {
    let returned = if r.full {
        r.message
    } else {
        header_section(r.message)
    };
    let cte = if returned.is_ascii() { "7bit" } else { "8bit" };
    let kind = if r.full {
        "message/rfc822"
    } else {
        "text/rfc822-headers"
    };
    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", human_text(r)),
            MimePart::new(
                ContentType::new("message/delivery-status"),
                status_fields(r).into_bytes(),
            )
            .header("Content-Transfer-Encoding", Raw::new("7bit")),
            MimePart::new(ContentType::new(kind), returned)
                .header("Content-Transfer-Encoding", Raw::new(cte)),
        ],
    );
    let from = format!("MAILER-DAEMON@{}", r.host);
    MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(to)
        .subject(subject(r))
        .message_id(MsgIdHeader::new(format!(
            "dsn-{}-{}@{}",
            r.envelope.id, r.token, r.host
        )))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .date(r.now.timestamp())
        .body(body)
        .write_to_vec()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::mail::{NewRecipient, Source};

    fn report<'a>(env: &'a Envelope, msg: &'a [u8], items: &'a [Item], full: bool) -> Vec<u8> {
        build(
            &Report {
                host: "example.com",
                envelope: env,
                message: msg,
                items,
                full,
                retry_until: Some(1_700_400_000),
                now: DateTime::parse_from_rfc3339("2024-03-01T10:00:00+01:00").unwrap(),
                token: 7,
            },
            "sender@example.org",
        )
    }

    #[test]
    fn failure_report_has_the_rfc3464_parts() {
        let env = Envelope {
            id: 9,
            arrived: 1_700_000_000,
            source: Source::Pipe,
            return_path: "sender@example.org".into(),
            env_id: Some("E1".into()),
            ret: None,
            recipients: vec![
                NewRecipient {
                    orcpt: Some("rfc822;Bob@example.com".into()),
                    ..NewRecipient::new("bob@example.com")
                },
                NewRecipient::new("amy@example.com"),
            ],
        };
        let msg = b"Subject: hello\r\nFrom: s@example.org\r\n\r\nthe body\r\n";
        let items = [
            Item {
                rcpt: 0,
                action: Action::Failed,
                text: "550 5.1.1 no such user\r\nbad".into(),
                time: 1_700_000_100,
            },
            Item {
                rcpt: 1,
                action: Action::Delayed,
                text: "host down".into(),
                time: 1_700_000_100,
            },
        ];
        let out = String::from_utf8(report(&env, msg, &items, false)).unwrap();
        assert!(out.contains("multipart/report"), "{out}");
        assert!(
            out.contains("report-type=\"delivery-status\"")
                || out.contains("report-type=delivery-status"),
            "{out}"
        );
        assert!(out.contains("Subject: Undeliverable mail: hello"));
        assert!(out.contains("Content-Type: message/delivery-status"));
        assert!(out.contains("Reporting-MTA: dns; example.com"));
        assert!(out.contains("Original-Envelope-Id: E1"));
        assert!(out.contains("Original-Recipient: rfc822;Bob@example.com"));
        assert!(out.contains(
            "Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.1.1"
        ));
        assert!(out.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user  bad"));
        assert!(out.contains("Action: delayed\r\nStatus: 4.0.0"));
        assert!(out.contains("Will-Retry-Until:"));
        assert!(out.contains("Content-Type: text/rfc822-headers"));
        assert!(!out.contains("the body"));
        let full = String::from_utf8(report(&env, msg, &items, true)).unwrap();
        assert!(full.contains("Content-Type: message/rfc822"));
        assert!(full.contains("the body"));
    }

    #[test]
    fn status_codes() {
        assert_eq!(status(Action::Failed, "550 5.7.1 denied"), "5.7.1");
        assert_eq!(status(Action::Failed, "451 4.3.0 later"), "5.0.0");
        assert_eq!(status(Action::Delayed, "x"), "4.0.0");
        assert_eq!(status(Action::Delivered, ""), "2.0.0");
        assert_eq!(status(Action::Relayed, "250 ok"), "2.0.0");
    }
}
