//! Queue commands: the guide's `RELEASESMTPQUEUE` (guide.txt:7370-7380; spec B §3.15) and the
//! extensions `ListQueue`, `ReleaseQueue`, `RetryQueue` and `DeleteQueuedMessage` (docs/cli.md),
//! the queue inspector of the manager and WebAdmin.
//!
//! They work on the running server's queue (`CliContext::queue`); without one (a context built
//! for tests or tools) they answer that the queue is not available.

use chrono::{TimeZone, Utc};

use super::args::Args;
use super::{CliContext, CliError, CmdResult, Session};
use crate::format::{dict, Value};
use crate::kernel::mail::MessageId;
use crate::kernel::queue::Queue;

fn queue(ctx: &CliContext) -> Result<&Queue, CliError> {
    ctx.queue
        .as_deref()
        .ok_or_else(|| CliError::new("The queue is not available"))
}

/// A queue time as `yyyy-mm-dd hh:mm:ss` in the server's local time zone.
fn time(q: &Queue, t: i64) -> String {
    let offset = *q.clock().now().offset();
    Utc.timestamp_opt(t, 0)
        .single()
        .unwrap_or_default()
        .with_timezone(&offset)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `ListQueue [ domainName ]` — Can Monitor.
pub(super) fn list_queue(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let domain = if a.remaining() > 0 {
        Some(a.text("domainName")?)
    } else {
        None
    };
    a.end()?;
    let q = queue(ctx)?;
    let items = q
        .list(domain.as_deref())
        .into_iter()
        .map(|i| {
            dict([
                ("Id", Value::from(i.id.to_string())),
                ("From", Value::from(i.from)),
                (
                    "Recipients",
                    Value::Array(i.recipients.into_iter().map(Value::from).collect()),
                ),
                ("Size", Value::from(i.size.to_string())),
                ("Arrived", Value::from(time(q, i.arrived))),
                ("State", Value::from(i.state)),
                ("NextTry", Value::from(time(q, i.next_try))),
                ("Source", Value::from(i.source)),
            ])
        })
        .collect();
    Ok(Some(Value::Array(items)))
}

/// `ReleaseQueue [ target ]` — Can Monitor: deferred recipients (of one domain or module
/// queue) are tried now.
pub(super) fn release_queue(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let target = if a.remaining() > 0 {
        Some(a.text("target")?)
    } else {
        None
    };
    a.end()?;
    queue(ctx)?.release(target.as_deref());
    Ok(None)
}

/// `RetryQueue [ id ]` — Can Monitor: every deferred recipient (of message `id`) is tried now.
pub(super) fn retry_queue(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let id = if a.remaining() > 0 {
        Some(a.text("id")?)
    } else {
        None
    };
    a.end()?;
    let q = queue(ctx)?;
    if let Some(id) = &id {
        if !q.list(None).iter().any(|m| m.id.to_string() == *id) {
            return Err(CliError::new(format!("No queued message {id}")));
        }
    }
    q.release(id.as_deref());
    Ok(None)
}

/// `RELEASESMTPQUEUE queueName` — Can Monitor (guide.txt:7370-7380): the SMTP queue of this
/// domain or relay is tried now.
pub(super) fn release_smtp_queue(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let name = a.text("queueName")?;
    a.end()?;
    queue(ctx)?.release(Some(&name));
    Ok(None)
}

/// `DeleteQueuedMessage id` — Can Monitor: removes a message from the queue without delivery
/// or report.
pub(super) fn delete_queued_message(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let id = a.text("id")?;
    a.end()?;
    let id: MessageId = id
        .parse()
        .map_err(|_| CliError::new(format!("Not a message id: {id}")))?;
    queue(ctx)?.delete(id).map_err(CliError::new)?;
    Ok(None)
}

/// `WakeUpNow` — Can Monitor (extension): where the TCP Activity Schedule lets the link open, a
/// link session starts at once (the queue is flushed, wake-ups sent, remote accounts polled),
/// whatever the Pause, and the answer names the actions that ran (an ETRN/ATRN wake-up only with
/// a backup server, RPOP only with records to poll); where it does not, it says until when.
pub(super) fn wake_up_now(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    a.end()?;
    let link = ctx
        .link
        .as_ref()
        .ok_or_else(|| CliError::new("The dial-up link is not available"))?;
    let actions = link.wake_up_now().map_err(CliError::new)?;
    Ok(Some(Value::Array(
        actions.into_iter().map(Value::from).collect(),
    )))
}

/// `SetTestClock time` — Settings (extension, test only): sets the link's clock of a server
/// started with `--test-clock` to this RFC 3339 time; it runs on from there.
pub(super) fn set_test_clock(ctx: &CliContext, _: &Session, a: &mut Args) -> CmdResult {
    let t = a.text("time")?;
    a.end()?;
    let clock = ctx
        .test_clock
        .as_ref()
        .ok_or_else(|| CliError::new("The server was not started with --test-clock"))?;
    let at = chrono::DateTime::parse_from_rfc3339(&t)
        .map_err(|_| CliError::new(format!("Not an RFC 3339 time: {t}")))?;
    clock.set(at);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use crate::cli::{execute, reply_lines, CliContext, Session};
    use crate::kernel::clock::SystemClock;
    use crate::kernel::log::{LogSettings, Logger};
    use crate::kernel::mail::{NewRecipient, Source, Submission, Submit};
    use crate::kernel::queue::{Enqueuer, Queue, QueueSettings};
    use crate::store::{AccountType, Store};

    fn run(ctx: &CliContext, s: &Session, line: &str) -> String {
        String::from_utf8(reply_lines(&execute(ctx, s, line.as_bytes()))).unwrap()
    }

    #[test]
    fn list_release_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "example.com").unwrap();
        store
            .create_account(
                "example.com",
                "postmaster",
                AccountType::MultiMailbox,
                Default::default(),
            )
            .unwrap();
        store
            .set_account_rights("example.com", "postmaster", vec!["Master".into()])
            .unwrap();
        let logger = Logger::open(
            dir.path().join("SystemLogs"),
            LogSettings::default(),
            SystemClock::shared(),
        )
        .unwrap();
        let q = Queue::open(
            dir.path(),
            "example.com",
            SystemClock::shared(),
            logger,
            QueueSettings::default(),
        )
        .unwrap();
        let enq = Enqueuer::new(q.clone());
        let id = enq
            .submit(
                Submission {
                    return_path: "a@example.com".into(),
                    recipients: vec![NewRecipient::new("b@far.example")],
                    source: Source::Cli,
                    env_id: None,
                    ret: None,
                },
                b"Subject: x\r\n\r\ny\r\n",
            )
            .unwrap();
        let mut ctx = CliContext::new(store.clone(), "example.com");
        let pm = Session::load(&store, "postmaster", "example.com").unwrap();
        assert_eq!(
            run(&ctx, &pm, "ListQueue"),
            "501 The queue is not available"
        );
        ctx.queue = Some(q.clone());
        let out = run(&ctx, &pm, "ListQueue");
        assert!(out.starts_with(&format!("200 data follow\r\n({{Id={id};From=\"a@example.com\";Recipients=(\"b@far.example\");Size=17;")), "{out}");
        assert!(
            out.contains("State=Queued;") && out.contains("Source=CLI;"),
            "{out}"
        );
        assert_eq!(
            run(&ctx, &pm, "ListQueue other.example"),
            "200 data follow\r\n()"
        );
        assert_eq!(run(&ctx, &pm, "ReleaseQueue far.example"), "200 OK");
        assert_eq!(run(&ctx, &pm, "RetryQueue"), "200 OK");
        assert_eq!(run(&ctx, &pm, "RELEASESMTPQUEUE far.example"), "200 OK");
        assert_eq!(
            run(&ctx, &pm, "DeleteQueuedMessage x"),
            "501 Not a message id: x"
        );
        assert_eq!(
            run(&ctx, &pm, &format!("DeleteQueuedMessage {id}")),
            "200 OK"
        );
        assert_eq!(
            run(&ctx, &pm, &format!("DeleteQueuedMessage {id}")),
            "501 Unknown message"
        );
        assert!(q.is_empty());
    }
}
