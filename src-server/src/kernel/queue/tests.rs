//! Queue tests: file round trips through the real directory, crash-restart, BadFiles, recipient
//! states, the retry schedule on a manual clock, reports parsed back, group expansion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta};

use super::file::{RcptState, StateRecord};
use super::group::GroupChannel;
use super::*;
use crate::kernel::clock::{Clock, ManualClock};
use crate::kernel::log::LogSettings;
use crate::kernel::mail::{
    Channel, EnqueueError, Job, NewRecipient, Notify, Outcome, Ret, Route, RouteError, Routed,
    Source, Submission, Submit, Target,
};

struct Env {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    logger: Logger,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let clock =
            ManualClock::new(DateTime::parse_from_rfc3339("2024-03-01T10:00:00+00:00").unwrap());
        let logger = Logger::open(
            dir.path().join("SystemLogs"),
            LogSettings::default(),
            clock.clone(),
        )
        .unwrap();
        Env { dir, clock, logger }
    }

    fn open(&self, s: QueueSettings) -> (Arc<Queue>, Arc<Enqueuer>, Arc<Dequeuer>) {
        let q = Queue::open(
            self.dir.path(),
            "example.com",
            self.clock.clone(),
            self.logger.clone(),
            s,
        )
        .unwrap();
        let enq = Arc::new(Enqueuer::new(q.clone()));
        let deq = Dequeuer::new(q.clone(), enq.clone());
        (q, enq, deq)
    }

    fn files(&self, ext: &str) -> usize {
        std::fs::read_dir(self.dir.path().join("Queue"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(ext)
            })
            .count()
    }
}

/// Routes `x@local` to Local, `x@remote` to SMTP, `group@local` to List, `null@...` to
/// Discard, `error@...` to Error, `bad...` fails.
struct FakeRouter;

impl Route for FakeRouter {
    fn route(&self, address: &str) -> Result<Routed, RouteError> {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, "local"));
        let target = match (local, domain) {
            ("null", _) => Target::Discard,
            ("error", _) => Target::Error(String::new()),
            (l, _) if l.starts_with("bad") => return Err(RouteError::UnknownUser(address.into())),
            (l, "local") if l.starts_with("group") => Target::List {
                domain: "local".into(),
                group: l.into(),
            },
            (l, "local") => Target::Local {
                domain: "local".into(),
                account: l.into(),
                mailbox: None,
                detail: None,
            },
            (_, d) => Target::Smtp {
                host: d.into(),
                address: address.into(),
            },
        };
        Ok(Routed {
            target,
            relay: false,
        })
    }
}

/// One delivery seen by a fake channel: id, recipient, message, return-path.
type Delivered = (MessageId, String, Vec<u8>, String);

/// The queue, its Enqueuer and Dequeuer, and the fake Local and SMTP channels.
type Wired = (
    Arc<Queue>,
    Arc<Enqueuer>,
    Arc<Dequeuer>,
    Arc<FakeChannel>,
    Arc<FakeChannel>,
);

/// Records deliveries; answers per recipient from a script (default Delivered).
#[derive(Default)]
struct FakeChannel {
    delivered: Mutex<Vec<Delivered>>,
    answers: Mutex<HashMap<String, Outcome>>,
}

impl FakeChannel {
    fn answer(&self, rcpt: &str, o: Outcome) {
        self.answers.lock().unwrap().insert(rcpt.into(), o);
    }

    fn got(&self) -> Vec<String> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.1.clone())
            .collect()
    }
}

impl Channel for FakeChannel {
    fn deliver(&self, job: &Job<'_>) -> Outcome {
        let o = self
            .answers
            .lock()
            .unwrap()
            .get(job.recipient)
            .cloned()
            .unwrap_or(Outcome::Delivered);
        if o == Outcome::Delivered {
            self.delivered.lock().unwrap().push((
                job.id,
                job.recipient.to_string(),
                job.message.to_vec(),
                job.return_path.to_string(),
            ));
        }
        o
    }
}

fn sub(from: &str, to: &[&str]) -> Submission {
    Submission {
        return_path: from.into(),
        recipients: to.iter().map(|a| NewRecipient::new(*a)).collect(),
        source: Source::Pipe,
        env_id: None,
        ret: None,
    }
}

const MSG: &[u8] = b"From: s@remote\r\nTo: a@local\r\nSubject: test\r\n\r\nHello\r\n";

fn wired(e: &Env, s: QueueSettings) -> Wired {
    let (q, enq, deq) = e.open(s);
    let local = Arc::new(FakeChannel::default());
    let smtp = Arc::new(FakeChannel::default());
    deq.set_router(Arc::new(FakeRouter));
    deq.set_channel(ChannelKind::Local, local.clone());
    deq.set_channel(ChannelKind::Smtp, smtp.clone());
    (q, enq, deq, local, smtp)
}

#[test]
fn submit_writes_a_msg_file_and_delivery_removes_it() {
    let e = Env::new();
    let (q, enq, deq, local, _) = wired(&e, QueueSettings::default());
    let id = enq
        .submit(sub("s@remote", &["a@local", "b@local"]), MSG)
        .unwrap();
    assert_eq!(e.files(".msg"), 1);
    assert_eq!(e.files(".tmp"), 0);
    let dump = q.dump(id).unwrap();
    assert!(dump.contains("From: <s@remote>\nSource: PIPE\n"), "{dump}");
    assert!(
        dump.contains("Rcpt <a@local>: pending; attempts 0\nRcpt <b@local>: pending"),
        "{dump}"
    );
    deq.run_due();
    assert_eq!(local.got(), ["a@local", "b@local"]);
    assert_eq!(local.delivered.lock().unwrap()[0].2, MSG);
    assert_eq!(e.files(".msg") + e.files(".sta"), 0);
    assert!(q.is_empty());
}

#[test]
fn submit_validates() {
    let e = Env::new();
    let (_, enq, _, _, _) = wired(&e, QueueSettings::default());
    assert!(matches!(
        enq.submit(sub("s@x", &[]), MSG),
        Err(EnqueueError::NoRecipients)
    ));
    let mut looped = b"Received: x\r\n".repeat(31);
    looped.extend_from_slice(MSG);
    assert!(matches!(
        enq.submit(sub("s@x", &["a@local"]), &looped),
        Err(EnqueueError::TooManyHops)
    ));
    let ok = &looped[14..];
    assert!(enq.submit(sub("s@x", &["a@local"]), ok).is_ok());
}

#[test]
fn ids_are_unique_across_restarts() {
    let e = Env::new();
    let (_, enq, _, _, _) = wired(&e, QueueSettings::default());
    let a = enq.submit(sub("s@x", &["a@local"]), MSG).unwrap();
    drop(enq);
    let (_, enq2, _) = e.open(QueueSettings::default());
    let b = enq2.submit(sub("s@x", &["a@local"]), MSG).unwrap();
    assert!(b > a);
}

#[test]
fn restart_resumes_and_skips_recorded_recipients() {
    let e = Env::new();
    let (q, enq, _) = e.open(QueueSettings::default());
    let id = enq
        .submit(sub("s@remote", &["a@local", "b@local", "c@local"]), MSG)
        .unwrap();
    // A crash after "a" was recorded and "b" delivered but not recorded, with a torn record.
    q.record(
        id,
        &StateRecord::State {
            rcpt: 0,
            state: RcptState::Delivered,
            time: 1,
            attempts: 1,
        },
    )
    .unwrap();
    let sta = e.dir.path().join(format!("Queue/{id}.sta"));
    let mut side = std::fs::read(&sta).unwrap();
    side.extend_from_slice(b"{Rcpt=1;State=Deliv");
    std::fs::write(&sta, side).unwrap();
    std::fs::write(e.dir.path().join("Queue/999.tmp"), b"half").unwrap();
    drop((q, enq));
    let (q, _, deq, local, _) = {
        let (q, enq, deq) = e.open(QueueSettings::default());
        let local = Arc::new(FakeChannel::default());
        deq.set_router(Arc::new(FakeRouter));
        deq.set_channel(ChannelKind::Local, local.clone());
        (q, enq, deq, local, ())
    };
    assert_eq!(e.files(".tmp"), 0);
    deq.run_due();
    assert_eq!(local.got(), ["b@local", "c@local"]);
    assert!(q.is_empty());
}

#[test]
fn damaged_files_go_to_bad_files() {
    let e = Env::new();
    let (q, enq, _) = e.open(QueueSettings::default());
    let id = enq.submit(sub("s@x", &["a@local"]), MSG).unwrap();
    drop((q, enq));
    let path = e.dir.path().join(format!("Queue/{id}.msg"));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    std::fs::write(e.dir.path().join("Queue/junk.msg"), b"x").unwrap();
    let (q, _, _) = e.open(QueueSettings::default());
    assert!(q.is_empty());
    let bad: Vec<String> = std::fs::read_dir(e.dir.path().join("BadFiles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(bad.contains(&format!("{id}.msg")), "{bad:?}");
    assert!(bad.contains(&format!("{id}.sta")), "{bad:?}");
    assert!(bad.contains(&"junk.msg".to_string()), "{bad:?}");
}

/// The reports queued (return-path <>), as text.
fn reports(q: &Queue) -> Vec<(QueueItem, String)> {
    q.list(None)
        .into_iter()
        .filter(|i| i.source == "DSN")
        .map(|i| {
            let m = q.read_message(i.id).ok().unwrap();
            (i, String::from_utf8_lossy(&m).into_owned())
        })
        .collect()
}

#[test]
fn states_retry_schedule_and_reports() {
    let e = Env::new();
    let s = QueueSettings {
        send_warnings_after: Some(3 * 3600),
        ..QueueSettings::default()
    };
    let (q, enq, deq, local, smtp) = wired(&e, s);
    smtp.answer("d@remote", Outcome::Deferred("421 4.4.1 host down".into()));
    smtp.answer("s@remote", Outcome::Deferred("hold the reports".into()));
    let id = enq
        .submit(
            sub(
                "s@remote",
                &[
                    "a@local",
                    "bad@local",
                    "null@x",
                    "error@x",
                    "d@remote",
                    "dpipe@local",
                ],
            ),
            MSG,
        )
        .unwrap();
    local.answer(
        "dpipe@local",
        Outcome::Failed("550 5.2.2 mailbox full".into()),
    );
    deq.run_due();
    let dump = q.dump(id).unwrap();
    assert!(
        dump.contains("Rcpt <a@local>: delivered; attempts 1\n"),
        "{dump}"
    );
    assert!(
        dump.contains("Rcpt <bad@local>: failed (unknown user account: bad@local); attempts 1\n"),
        "{dump}"
    );
    assert!(dump.contains("Rcpt <null@x>: delivered"), "{dump}");
    assert!(
        dump.contains("Rcpt <error@x>: failed (Blacklisted Address)"),
        "{dump}"
    );
    let t0 = e.clock.now().timestamp();
    assert!(
        dump.contains(&format!(
            "Rcpt <d@remote>: deferred until {} (421 4.4.1 host down)",
            t0 + 600
        )),
        "{dump}"
    );
    // Not all final: the failures wait up to the Reporting Delay (1m).
    assert!(reports(&q).is_empty());
    e.clock.advance(TimeDelta::seconds(60));
    deq.run_due();
    let r = reports(&q);
    assert_eq!(r.len(), 1);
    let (item, text) = &r[0];
    assert_eq!(item.from, "");
    assert_eq!(item.recipients, ["s@remote"]);
    assert!(
        text.contains("Final-Recipient: rfc822; bad@local\r\nAction: failed"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; dpipe@local\r\nAction: failed\r\nStatus: 5.2.2")
    );
    assert!(text.contains("Final-Recipient: rfc822; error@x\r\nAction: failed"));
    assert!(!text.contains("rfc822; a@local"));
    // Retry schedule: nothing before 10m, then retried.
    let attempts = |q: &Queue| q.dump(id).unwrap();
    e.clock.advance(TimeDelta::seconds(500));
    deq.run_due();
    assert!(
        attempts(&q).contains("attempts 1\nRcpt <dpipe@local>"),
        "{}",
        attempts(&q)
    );
    e.clock.advance(TimeDelta::seconds(100));
    deq.run_due();
    assert!(
        attempts(&q).contains("(421 4.4.1 host down); attempts 2"),
        "{}",
        attempts(&q)
    );
    // Delay notice after 3h, once.
    e.clock.advance(TimeDelta::hours(3));
    deq.run_due();
    let warnings: Vec<_> = reports(&q)
        .into_iter()
        .filter(|(_, t)| t.contains("Action: delayed"))
        .collect();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0]
        .1
        .contains("Final-Recipient: rfc822; d@remote\r\nAction: delayed\r\nStatus: 4.4.1"));
    assert!(q.dump(id).unwrap().contains("; warned"));
    e.clock.advance(TimeDelta::hours(1));
    deq.run_due();
    assert_eq!(
        reports(&q)
            .iter()
            .filter(|(_, t)| t.contains("Action: delayed"))
            .count(),
        1
    );
    // Keep Trying for 5d: then it fails and the message is done.
    smtp.answer("s@remote", Outcome::Delivered);
    e.clock.advance(TimeDelta::days(5));
    q.release(None);
    deq.run_due();
    assert!(q.dump(id).is_none());
    assert!(q.is_empty(), "{:?}", q.list(None));
}

#[test]
fn no_report_for_null_sender_and_notify_never() {
    let e = Env::new();
    let (q, enq, deq, _, _) = wired(&e, QueueSettings::default());
    enq.submit(sub("", &["bad@local"]), MSG).unwrap();
    let mut s = sub("s@remote", &["bad2@local"]);
    s.recipients[0].notify = Notify {
        never: true,
        ..Notify::default()
    };
    enq.submit(s, MSG).unwrap();
    deq.run_due();
    assert!(q.is_empty());
}

#[test]
fn success_reports_and_ret_full() {
    let e = Env::new();
    let (q, enq, deq, _, smtp) = wired(&e, QueueSettings::default());
    smtp.answer("s@remote", Outcome::Deferred("hold reports".into()));
    let mut s = sub("s@remote", &["a@local", "bad@local"]);
    s.recipients[0].notify = Notify {
        success: true,
        failure: true,
        ..Notify::default()
    };
    s.recipients[0].orcpt = Some("rfc822;A@local".into());
    s.ret = Some(Ret::Full);
    s.env_id = Some("ENV42".into());
    enq.submit(s, MSG).unwrap();
    deq.run_due();
    let r = reports(&q);
    assert_eq!(r.len(), 1);
    let t = &r[0].1;
    assert!(t.contains("Original-Envelope-Id: ENV42"));
    assert!(t.contains("Original-Recipient: rfc822;A@local\r\nFinal-Recipient: rfc822; a@local\r\nAction: delivered\r\nStatus: 2.0.0"), "{t}");
    assert!(t.contains("Action: failed"));
    assert!(t.contains("Content-Type: message/rfc822"));
    assert!(t.contains("Hello"));
}

#[test]
fn copy_failure_reports_and_always_headers() {
    let e = Env::new();
    let s = QueueSettings {
        copy_failure_reports_to: Some("pm@local".into()),
        on_failure_return: settings::OnFailureReturn::AlwaysHeaders,
        ..QueueSettings::default()
    };
    let (q, enq, deq, local, smtp) = wired(&e, s);
    smtp.answer("s@remote", Outcome::Deferred("hold".into()));
    let mut s = sub("s@remote", &["bad@local"]);
    s.ret = Some(Ret::Full);
    enq.submit(s, MSG).unwrap();
    deq.run_due();
    let r = reports(&q);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0.recipients, ["s@remote"]);
    assert!(r[0].1.contains("text/rfc822-headers"));
    assert!(!r[0].1.contains("Hello"));
    assert_eq!(local.got(), ["pm@local"]);
}

#[test]
fn missing_module_defers_with_its_name_and_release_retries() {
    let e = Env::new();
    let (q, enq, deq) = e.open(QueueSettings::default());
    deq.set_router(Arc::new(FakeRouter));
    let id = enq
        .submit(sub("s@remote", &["a@local", "x@far.example"]), MSG)
        .unwrap();
    deq.run_due();
    let d = q.dump(id).unwrap();
    assert!(
        d.contains("(no LOCAL module)") && d.contains("(no SMTP module)"),
        "{d}"
    );
    let listed = q.list(Some("far.example"));
    assert_eq!(listed.len(), 1);
    assert!(listed[0].state.starts_with("Deferred: "));
    assert!(q.list(Some("elsewhere")).is_empty());
    let local = Arc::new(FakeChannel::default());
    deq.set_channel(ChannelKind::Local, local.clone());
    assert_eq!(q.release(Some("far.example")), 1);
    deq.run_due();
    assert_eq!(local.got(), ["a@local"]);
    q.delete(id).unwrap();
    assert!(q.is_empty());
    assert_eq!(e.files(".msg"), 0);
    assert!(q.delete(id).is_err());
}

#[test]
fn worker_threads_deliver() {
    let e = Env::new();
    let s = QueueSettings {
        processors: 3,
        ..QueueSettings::default()
    };
    let (q, enq, deq, local, _) = wired(&e, s);
    deq.start();
    for i in 0..50 {
        enq.submit(sub("s@remote", &[&format!("u{i}@local")]), MSG)
            .unwrap();
    }
    for _ in 0..500 {
        if q.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    deq.stop();
    assert!(q.is_empty());
    assert_eq!(local.got().len(), 50);
}

#[test]
fn group_expansion_and_resubmission() {
    use crate::format::{dict, Value};
    use crate::store::Store;
    let e = Env::new();
    let store = Store::open(e.dir.path(), "local").unwrap();
    let members = |m: &[&str]| Value::Array(m.iter().map(|x| Value::str(*x)).collect());
    let g = |pairs: Vec<(&str, Value)>| match dict(pairs) {
        Value::Dict(d) => d,
        _ => unreachable!(),
    };
    store
        .create_group(
            "local",
            "sub",
            g(vec![(
                "Members",
                members(&["carol", "bob", "ext@far.example"]),
            )]),
        )
        .unwrap();
    store
        .create_group(
            "local",
            "group1",
            g(vec![
                ("Members", members(&["alice", "bob", "sub", "s@remote"])),
                ("Expand", Value::str("YES")),
                ("SetReplyTo", Value::str("YES")),
                ("RealName", Value::str("Group One")),
            ]),
        )
        .unwrap();
    let (q, enq, deq, local, smtp) = wired(&e, QueueSettings::default());
    let channel = GroupChannel::new(store.clone(), enq.clone(), "local");
    assert_eq!(
        channel.expand("local", "group1").unwrap(),
        [
            "alice@local",
            "bob@local",
            "carol@local",
            "ext@far.example",
            "s@remote"
        ]
    );
    deq.set_channel(ChannelKind::List, Arc::new(channel));
    enq.submit(sub("s@remote", &["group1@local"]), MSG).unwrap();
    deq.run_due();
    assert_eq!(local.got(), ["alice@local", "bob@local", "carol@local"]);
    assert_eq!(smtp.got(), ["ext@far.example"]);
    let copy = String::from_utf8(local.delivered.lock().unwrap()[0].2.clone()).unwrap();
    assert!(
        copy.starts_with("Received: by local (Gatehouse LIST) for <group1@local>;"),
        "{copy}"
    );
    assert!(
        copy.contains("Reply-To: \"Group One\" <group1@local>\r\nFrom: s@remote"),
        "{copy}"
    );
    assert_eq!(local.delivered.lock().unwrap()[0].3, "s@remote");
    assert!(q.is_empty());
}

#[test]
fn concurrent_submits_share_directory_fsyncs() {
    let e = Env::new();
    let (q, enq, _) = e.open(QueueSettings::default());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let enq = enq.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| {
                        enq.submit(sub("s@remote", &[&format!("u{t}-{i}@local")]), MSG)
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<MessageId> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    assert_eq!(e.files(".msg"), 200);
    assert_eq!(q.len(), 200);
}

#[test]
fn an_interrupted_delivery_is_no_attempt_and_stays_queued() {
    let e = Env::new();
    let (q, enq, deq, local, _) = wired(&e, QueueSettings::default());
    // NOTIFY=FAILURE,DELAY would report anything that counted as a failure or a delay.
    let mut s = sub("s@remote", &["a@local", "b@local"]);
    for r in &mut s.recipients {
        r.notify.failure = true;
        r.notify.delay = true;
    }
    let id = enq.submit(s, MSG).unwrap();
    local.answer("a@local", Outcome::Interrupted);
    deq.run_due();
    let dump = q.dump(id).unwrap();
    assert!(
        dump.contains("Rcpt <a@local>: pending; attempts 0\nRcpt <b@local>: pending; attempts 0"),
        "the rest of the message waits for the restart too: {dump}"
    );
    let sta = e.dir.path().join(format!("Queue/{id}.sta"));
    let side = std::fs::read_to_string(sta).unwrap_or_default();
    assert!(!side.contains("State="), "nothing recorded: {side}");
    assert_eq!(q.len(), 1, "no report queued");
    assert!(local.got().is_empty());
}

#[test]
fn relayed_recipients_get_a_relayed_report_that_survives_a_restart() {
    let e = Env::new();
    let id = {
        let (q, enq, deq, _, smtp) = wired(&e, QueueSettings::default());
        // The report waits for the other recipient (deferred), so the state is read back.
        smtp.answer("x@far", Outcome::Relayed);
        smtp.answer("y@far", Outcome::Deferred("later".into()));
        smtp.answer("z@far", Outcome::PassedOn);
        let mut s = sub("s@local", &["x@far", "y@far", "z@far"]);
        for i in [0, 2] {
            s.recipients[i].notify = Notify {
                success: true,
                ..Notify::default()
            };
        }
        let id = enq.submit(s, MSG).unwrap();
        deq.run_due();
        assert!(q
            .dump(id)
            .unwrap()
            .contains("Rcpt <x@far>: relayed; attempts 1"));
        assert!(reports(&q).is_empty(), "within the Reporting Delay");
        id
    };
    let (q, _, deq) = e.open(QueueSettings {
        reporting_delay: 0,
        ..QueueSettings::default()
    });
    deq.set_router(Arc::new(FakeRouter));
    assert!(q.dump(id).unwrap().contains("Rcpt <x@far>: relayed"));
    q.release(None);
    deq.run_due();
    let r = reports(&q);
    assert_eq!(r.len(), 1, "one report");
    let t = &r[0].1;
    assert!(
        t.contains("Final-Recipient: rfc822; x@far\r\nAction: relayed\r\nStatus: 2.0.0"),
        "{t}"
    );
    assert!(t.contains("x@far: relayed"), "{t}");
    // RFC 3461 §5.2.1: z's next hop took NOTIFY=SUCCESS on and reports; we do not.
    assert!(!t.contains("z@far"), "{t}");
    assert!(q
        .dump(id)
        .unwrap()
        .contains("Rcpt <z@far>: relayed (the next hop reports)"));
}
