use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::program::PipeCommand;
use super::submitted::{parse, SubError, MAX_HEADER};
use super::*;
use crate::format::Value;
use crate::kernel::clock::SystemClock;
use crate::kernel::log::LogSettings;
use crate::kernel::mail::{EnqueueError, MessageId, Source, Submission};

const DOMAIN: &str = "example.test";

fn recipients(s: &Submission) -> Vec<&str> {
    s.recipients.iter().map(|r| r.address.as_str()).collect()
}

fn parsed(text: &str) -> (Submission, String) {
    let p = parse(text.as_bytes(), DOMAIN).unwrap();
    (p.submission, String::from_utf8(p.message).unwrap())
}

// ---- the .sub codec ----

#[test]
fn to_cc_bcc_make_the_envelope_and_bcc_is_removed() {
    for eol in ["\n", "\r\n"] {
        let text = "From: Joe <joe@example.test>\nTo: a@x.test, \"B, Bee\" <b@y.test>\nCc: c@z.test\nBcc: hidden@w.test\nSubject: hi\n\nbody\n.\nline\n"
            .replace('\n', eol);
        let (s, msg) = parsed(&text);
        assert_eq!(
            recipients(&s),
            ["a@x.test", "b@y.test", "c@z.test", "hidden@w.test"]
        );
        assert_eq!(s.return_path, "joe@example.test");
        assert_eq!(s.source, Source::Pipe);
        assert_eq!(s.env_id, None);
        assert_eq!(
            msg,
            "From: Joe <joe@example.test>\r\nTo: a@x.test, \"B, Bee\" <b@y.test>\r\nCc: c@z.test\r\nSubject: hi\r\n\r\nbody\r\n.\r\nline\r\n"
        );
    }
}

#[test]
fn envelope_to_fields_replace_to_cc_bcc_and_are_removed() {
    let (s, msg) = parsed(
        "Envelope-To: one@x.test\nTo: visible@x.test\nBcc: b@x.test\nenvelope-to: two@x.test,\n three@x.test\nSubject: s\n\nb\n",
    );
    assert_eq!(recipients(&s), ["one@x.test", "two@x.test", "three@x.test"]);
    assert_eq!(msg, "To: visible@x.test\r\nSubject: s\r\n\r\nb\r\n");
}

#[test]
fn envelope_ignore_excludes_addresses() {
    let (s, msg) = parsed(
        "To: a@x.test, me@x.test\nCc: ME@X.test, c@x.test\nEnvelope-Ignore: me@x.test\nEnvelope-Ignore: c@x.test\n\nb\n",
    );
    assert_eq!(recipients(&s), ["a@x.test"]);
    assert!(!msg.contains("Envelope-Ignore"));
    // Envelope-To wins over Envelope-Ignore.
    let (s, _) = parsed("Envelope-To: me@x.test\nEnvelope-Ignore: me@x.test\n\nb\n");
    assert_eq!(recipients(&s), ["me@x.test"]);
}

#[test]
fn return_path_header_is_the_sender_and_is_removed() {
    let (s, msg) = parsed("Return-Path: <bounce@x.test>\nFrom: joe@x.test\nTo: a@x.test\n\nb\n");
    assert_eq!(s.return_path, "bounce@x.test");
    assert_eq!(msg, "From: joe@x.test\r\nTo: a@x.test\r\n\r\nb\r\n");
    let (s, _) = parsed("Return-Path: <>\nFrom: joe@x.test\nTo: a@x.test\n\nb\n");
    assert_eq!(s.return_path, "");
    assert_eq!(
        parse(b"Return-Path: a@x.test, b@x.test\nTo: a@x.test\n\n", DOMAIN).unwrap_err(),
        SubError::BadReturnPath
    );
}

#[test]
fn sender_when_from_is_not_one_mailbox_and_null_without_either() {
    let (s, _) = parsed("From: a@x.test, b@x.test\nSender: sec@x.test\nTo: r@x.test\n\nb\n");
    assert_eq!(s.return_path, "sec@x.test");
    let (s, _) = parsed("To: r@x.test\n\nb\n");
    assert_eq!(s.return_path, "");
}

#[test]
fn addresses_without_domain_get_the_server_domain() {
    let (s, msg) = parsed("From: Joe Q (the boss) <joe>\nSender: ops\nTo: anna, b@x.test\n\nb\n");
    assert_eq!(s.return_path, "joe@example.test");
    assert_eq!(recipients(&s), ["anna@example.test", "b@x.test"]);
    assert!(msg.starts_with(
        "From: Joe Q (the boss) <joe@example.test>\r\nSender: ops@example.test\r\nTo: anna, b@x.test\r\n"
    ));
}

#[test]
fn envelope_id_groups_and_duplicates() {
    let (s, msg) = parsed(
        "Envelope-ID: QQ314159\nTo: team: a@x.test, b@x.test;, a@X.TEST\nCc: undisclosed-recipients:;\n\n",
    );
    assert_eq!(s.env_id.as_deref(), Some("QQ314159"));
    assert_eq!(recipients(&s), ["a@x.test", "b@x.test"]);
    assert!(!msg.contains("Envelope-ID"));
    let (s, _) = parsed("To: <@relay.test,@r2.test:a@x.test>, b@[127.0.0.1] (lit)\n\n");
    assert_eq!(recipients(&s), ["a@x.test", "b@[127.0.0.1]"]);
    // A `:` inside a domain literal is not a group's display name.
    let (s, _) = parsed("To: x@[127.0.0.1:9], team: y@x.test;\n\n");
    assert_eq!(recipients(&s), ["x@[127.0.0.1:9]", "y@x.test"]);
    assert!(msg.ends_with("\r\n\r\n"));
}

#[test]
fn failures() {
    assert_eq!(
        parse(b"Subject: nobody\n\nb\n", DOMAIN).unwrap_err(),
        SubError::NoRecipients
    );
    assert_eq!(
        parse(b"\x00\x01garbage without a colon\n", DOMAIN).unwrap_err(),
        SubError::BadHeaderLine(1)
    );
    assert_eq!(
        parse(b" continuation first\nTo: a@x.test\n\n", DOMAIN).unwrap_err(),
        SubError::BadHeaderLine(1)
    );
    assert!(matches!(
        parse(b"To: a b c\n\n", DOMAIN).unwrap_err(),
        SubError::BadAddress { .. }
    ));
    assert!(matches!(
        parse(b"To: <a@x.test\n\n", DOMAIN).unwrap_err(),
        SubError::BadAddress { .. }
    ));
    let mut big = b"To: a@x.test\nX-Long: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEADER + 10));
    big.extend_from_slice(b"\n\nbody\n");
    assert_eq!(parse(&big, DOMAIN).unwrap_err(), SubError::HeaderTooLarge);
    let long_id = format!("Envelope-ID: {}\nTo: a@x.test\n\n", "i".repeat(101));
    assert_eq!(
        parse(long_id.as_bytes(), DOMAIN).unwrap_err(),
        SubError::EnvelopeIdTooLong
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    use proptest::prelude::*;
    proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..400))| {
        let _ = parse(&bytes, DOMAIN);
    });
    proptest!(|(s in "[ -~\n]{0,200}")| {
        let _ = parse(format!("To: {s}\n\n").as_bytes(), DOMAIN);
    });
}

// ---- the Submitted folder ----

struct FakeSubmit {
    got: Mutex<Vec<(Submission, Vec<u8>)>>,
    /// Files that must still exist while `submit` runs (delete-after-submit ordering).
    watch: Mutex<Vec<PathBuf>>,
    seen_present: Mutex<Vec<bool>>,
    fail: Mutex<Option<fn() -> EnqueueError>>,
}

impl FakeSubmit {
    fn new() -> Arc<FakeSubmit> {
        Arc::new(FakeSubmit {
            got: Mutex::new(Vec::new()),
            watch: Mutex::new(Vec::new()),
            seen_present: Mutex::new(Vec::new()),
            fail: Mutex::new(None),
        })
    }
}

impl Submit for FakeSubmit {
    fn submit(&self, submission: Submission, message: &[u8]) -> Result<MessageId, EnqueueError> {
        for p in self.watch.lock().unwrap().iter() {
            self.seen_present.lock().unwrap().push(p.exists());
        }
        if let Some(f) = *self.fail.lock().unwrap() {
            return Err(f());
        }
        let mut got = self.got.lock().unwrap();
        got.push((submission, message.to_vec()));
        Ok(got.len() as MessageId)
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    fake: Arc<FakeSubmit>,
    pipe: Arc<Pipe>,
}

fn fixture(settings: PipeSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let logger = Logger::open(
        dir.path().join("SystemLogs"),
        LogSettings::default(),
        SystemClock::shared(),
    )
    .unwrap();
    let fake = FakeSubmit::new();
    let pipe = Pipe::new(dir.path(), DOMAIN, logger, fake.clone(), settings);
    fs::create_dir_all(pipe.submitted_dir()).unwrap();
    Fixture { dir, fake, pipe }
}

impl Fixture {
    fn sub(&self, name: &str) -> PathBuf {
        self.pipe.submitted_dir().join(name)
    }
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.pipe.submitted_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

#[test]
fn sub_files_are_submitted_then_deleted() {
    let f = fixture(PipeSettings::default());
    fs::write(f.sub("1.sub"), "To: a@x.test\nSubject: one\n\nbody\n").unwrap();
    fs::write(f.sub("2.sub"), "Envelope-To: b@x.test\n\nbody\n").unwrap();
    f.fake.watch.lock().unwrap().push(f.sub("1.sub"));
    let r = f.pipe.scan_submitted();
    assert_eq!(
        r,
        ScanReport {
            submitted: 2,
            bad: 0,
            left: 0
        }
    );
    assert!(f.names().is_empty());
    let got = f.fake.got.lock().unwrap();
    assert_eq!(recipients(&got[0].0), ["a@x.test"]);
    assert_eq!(got[0].1, b"To: a@x.test\r\nSubject: one\r\n\r\nbody\r\n");
    assert_eq!(recipients(&got[1].0), ["b@x.test"]);
    // 1.sub was still there while it was being submitted.
    assert!(f.fake.seen_present.lock().unwrap()[0]);
}

#[test]
fn partial_and_foreign_names_are_left_alone() {
    let f = fixture(PipeSettings::default());
    for n in [
        "1.tmp",
        "2.sub.tmp",
        ".hidden.sub",
        "..sub",
        ".sub",
        "sp ace.sub",
        "x.SUB",
    ] {
        fs::write(f.sub(n), "To: a@x.test\n\nb\n").unwrap();
    }
    fs::create_dir(f.sub("dir.d")).unwrap();
    let r = f.pipe.scan_submitted();
    assert_eq!(r, ScanReport::default());
    assert!(f.fake.got.lock().unwrap().is_empty());
    assert_eq!(f.names().len(), 8);
}

#[test]
fn links_and_non_files_become_bad_without_being_read() {
    let f = fixture(PipeSettings::default());
    let secret = f.dir.path().join("secret");
    fs::write(&secret, "To: a@x.test\n\nsecret\n").unwrap();
    std::os::unix::fs::symlink(&secret, f.sub("link.sub")).unwrap();
    fs::create_dir(f.sub("dir.sub")).unwrap();
    let r = f.pipe.scan_submitted();
    assert_eq!(r.bad, 2);
    assert!(f.fake.got.lock().unwrap().is_empty());
    assert_eq!(f.names(), ["dir.bad", "link.bad"]);
    assert!(secret.exists());
}

#[test]
fn garbage_becomes_bad_and_names_do_not_collide() {
    let f = fixture(PipeSettings::default());
    fs::write(f.sub("g.bad"), "an older bad file").unwrap();
    fs::write(f.sub("g.sub"), b"\xff\xfe not a message\n").unwrap();
    fs::write(f.sub("n.sub"), "Subject: no recipients\n\nb\n").unwrap();
    let r = f.pipe.scan_submitted();
    assert_eq!(r.bad, 2);
    assert_eq!(f.names(), ["g-2.bad", "g.bad", "n.bad"]);
    assert_eq!(fs::read(f.sub("g.bad")).unwrap(), b"an older bad file");
}

#[test]
fn too_large_files_become_bad() {
    let f = fixture(PipeSettings {
        max_submitted_size: 64,
        ..PipeSettings::default()
    });
    fs::write(
        f.sub("big.sub"),
        format!("To: a@x.test\n\n{}\n", "x".repeat(100)),
    )
    .unwrap();
    assert_eq!(f.pipe.scan_submitted().bad, 1);
    assert_eq!(f.names(), ["big.bad"]);
}

#[test]
fn a_failing_enqueuer_leaves_the_file_for_the_next_scan() {
    let f = fixture(PipeSettings::default());
    fs::write(f.sub("1.sub"), "To: a@x.test\n\nb\n").unwrap();
    fs::write(f.sub("2.sub"), "To: b@x.test\n\nb\n").unwrap();
    *f.fake.fail.lock().unwrap() = Some(|| EnqueueError::Io(std::io::Error::other("disk full")));
    let r = f.pipe.scan_submitted();
    assert_eq!(r.left, 2);
    assert_eq!(f.names(), ["1.sub", "2.sub"]);
    *f.fake.fail.lock().unwrap() = None;
    assert_eq!(f.pipe.scan_submitted().submitted, 2);
    assert!(f.names().is_empty());
    // A permanent refusal is a .bad file.
    fs::write(f.sub("3.sub"), "To: b@x.test\n\nb\n").unwrap();
    *f.fake.fail.lock().unwrap() = Some(|| EnqueueError::TooManyHops);
    assert_eq!(f.pipe.scan_submitted().bad, 1);
    assert_eq!(f.names(), ["3.bad"]);
}

async fn wait_for(fake: &FakeSubmit, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.got.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "not submitted in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_scans_at_start_and_then_periodically() {
    let f = fixture(PipeSettings::default());
    fs::write(f.sub("early.sub"), "To: a@x.test\n\nb\n").unwrap();
    let watcher = f.pipe.spawn_watcher();
    wait_for(&f.fake, 1).await;
    let tmp = f.sub("late.tmp");
    fs::write(&tmp, "To: b@x.test\n\nb\n").unwrap();
    fs::rename(&tmp, f.sub("late.sub")).unwrap();
    wait_for(&f.fake, 2).await;
    f.pipe.stop();
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn settings_parse_and_validate() {
    let d = module_decl();
    let eff: Dict = d
        .settings
        .iter()
        .map(|s| (s.key.as_bytes().to_vec(), Value::from(s.default)))
        .collect();
    assert_eq!(
        PipeSettings::from_dict(&eff).unwrap(),
        PipeSettings::default()
    );
    let mut eff2 = eff.clone();
    eff2.insert(b"ProcessingTimeLimit".to_vec(), Value::from("30 sec"));
    eff2.insert(b"Processes".to_vec(), Value::from("4"));
    eff2.insert(b"ApplicationDirectory".to_vec(), Value::from("PipeApps"));
    let s = PipeSettings::from_dict(&eff2).unwrap();
    assert_eq!(s.time_limit, Duration::from_secs(30));
    assert_eq!(s.processes, 4);
    assert_eq!(s.application_directory, "PipeApps");
    for (k, v) in [
        ("Processes", "0"),
        ("CheckSubmittedDirectoryEvery", "0"),
        ("ProcessingTimeLimit", "soon"),
        ("MaxSubmittedSize", "10Q"),
        ("LogLevel", "loud"),
    ] {
        let mut bad = eff.clone();
        bad.insert(k.as_bytes().to_vec(), Value::from(v));
        let validate = d.validate.as_ref().unwrap();
        assert!(validate(&bad).unwrap_err().starts_with(k), "{k}");
    }
}

// ---- commands ----

#[test]
fn commands_parse_with_tags_in_any_order() {
    let c = PipeCommand::parse("execjoe -l store").unwrap();
    assert_eq!(c.application, "execjoe");
    assert_eq!(c.parameters, ["-l", "store"]);
    assert!(!c.file && !c.retpath && !c.rcpt && !c.stderr && c.queue.is_none());

    let c = PipeCommand::parse("[RCPT][FILE] [stderr] queue[PROC1] procin -mark").unwrap();
    assert!(c.file && c.rcpt && c.stderr && !c.retpath);
    assert_eq!(c.queue.as_deref(), Some("PROC1"));
    assert_eq!(c.application, "procin");
    assert_eq!(
        c.arguments(12002345, "ret@x.test", "rcpt@y.test"),
        ["-mark", "-f", "Queue/12002345.msg", "-r", "rcpt@y.test"]
    );
    let c = PipeCommand::parse("[RCPT] [RETPATH] [FILE] app").unwrap();
    assert_eq!(
        c.arguments(7, "", "r@y.test"),
        ["-f", "Queue/7.msg", "-p", "", "-r", "r@y.test"]
    );
    // Still in its address quotes (guide.txt:13908: "execall\ -u\ *"@pipe).
    let c = PipeCommand::parse("\"execall\\ -u\\ joe\"").unwrap();
    assert_eq!(c.application, "execall");
    assert_eq!(c.parameters, ["-u", "joe"]);

    for bad in [
        "",
        "[FILE]",
        "../bin/sh",
        "/bin/sh",
        "sub\\dir",
        ".hidden",
        "[BOGUS] app",
        "[FILE app",
        "queue[a b] app",
        "queue[] app",
    ] {
        assert!(PipeCommand::parse(bad).is_err(), "{bad:?}");
    }
}

// ---- delivery to applications ----

fn app_fixture(limit: Duration) -> Fixture {
    let f = fixture(PipeSettings {
        application_directory: "PipeApps".into(),
        time_limit: limit,
        ..PipeSettings::default()
    });
    fs::create_dir(f.dir.path().join("PipeApps")).unwrap();
    f
}

impl Fixture {
    fn app(&self, name: &str, script: &str) {
        let p = self.dir.path().join("PipeApps").join(name);
        fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fn deliver(&self, program: &str, message: &[u8]) -> Outcome {
        let target = Target::Pipe {
            program: program.into(),
            address: format!("{program}@pipe"),
        };
        self.pipe.deliver(&Job {
            id: 42,
            message,
            return_path: "from@x.test",
            recipient: "rcpt@example.test",
            target: &target,
            source: &Source::Pipe,
            dsn: Default::default(),
        })
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

#[test]
fn cat_gets_the_message_on_stdin_in_the_base_directory() {
    let f = app_fixture(Duration::from_secs(20));
    f.app("store", "cat > \"$1\"");
    let msg = b"Subject: x\r\n\r\nhello\r\n";
    assert_eq!(f.deliver("store out.eml", msg), Outcome::Delivered);
    assert_eq!(fs::read(f.path("out.eml")).unwrap(), msg);
}

#[test]
fn arguments_follow_the_guide_order_and_file_closes_stdin() {
    let f = app_fixture(Duration::from_secs(20));
    f.app(
        "args",
        "printf '%s|' \"$@\" > args.txt; wc -c < /dev/stdin | tr -d ' ' > stdin.txt; env | grep -c -v '^PATH=\\|^PWD=\\|^SHLVL=\\|^_=' > env.txt; exit 0",
    );
    assert_eq!(
        f.deliver("[RCPT] [FILE] [RETPATH] args -x", b"m\r\n"),
        Outcome::Delivered
    );
    assert_eq!(
        fs::read_to_string(f.path("args.txt")).unwrap(),
        "-x|-f|Queue/42.msg|-p|from@x.test|-r|rcpt@example.test|"
    );
    assert_eq!(fs::read_to_string(f.path("stdin.txt")).unwrap().trim(), "0");
    // No variable of the server's environment reaches the application.
    assert_eq!(fs::read_to_string(f.path("env.txt")).unwrap().trim(), "0");
}

#[test]
fn exit_codes_and_stderr() {
    let f = app_fixture(Duration::from_secs(20));
    f.app("tempfail", "cat >/dev/null; echo 'try later' >&2; exit 75");
    f.app(
        "fail",
        "cat >/dev/null; echo 'no such user' >&2; echo second >&2; exit 67",
    );
    f.app("quiet", "cat >/dev/null; exit 3");
    f.app(
        "warn",
        "cat >/dev/null; echo 'first line' >&2; echo 'second line' >&2",
    );
    assert_eq!(
        f.deliver("tempfail", b"m\r\n"),
        Outcome::Deferred("try later".into())
    );
    assert_eq!(
        f.deliver("fail", b"m\r\n"),
        Outcome::Failed("no such user".into())
    );
    assert_eq!(
        f.deliver("quiet", b"m\r\n"),
        Outcome::Failed("quiet exited with code 3".into())
    );
    // guide.txt:13955: anything on stderr fails the delivery, even with exit code 0.
    assert_eq!(
        f.deliver("warn", b"m\r\n"),
        Outcome::Failed("first line".into())
    );
    assert_eq!(
        f.deliver("[STDERR] warn", b"m\r\n"),
        Outcome::Failed("first line\nsecond line".into())
    );
}

#[test]
fn the_time_limit_kills_the_application() {
    let f = app_fixture(Duration::from_millis(500));
    f.app("slow", "cat >/dev/null; sleep 30; touch finished");
    let t0 = Instant::now();
    let out = f.deliver("slow", b"m\r\n");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(
        matches!(out, Outcome::Failed(ref t) if t.contains("Processing Time Limit")),
        "{out:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(!f.path("finished").exists());
}

#[test]
fn an_application_that_does_not_read_its_input_fails() {
    let f = app_fixture(Duration::from_secs(20));
    f.app("deaf", "exit 0");
    // Larger than any pipe buffer, so the unread part is noticed.
    let big = vec![b'x'; 4 << 20];
    assert!(
        matches!(f.deliver("deaf", &big), Outcome::Failed(ref t) if t.contains("did not read"))
    );
}

#[test]
fn refusals() {
    let f = fixture(PipeSettings::default());
    // guide.txt:14040-14043: an empty Application Directory rejects every delivery.
    assert!(
        matches!(f.deliver("anything", b"m"), Outcome::Failed(ref t) if t.contains("Application Directory"))
    );
    let f = app_fixture(Duration::from_secs(20));
    assert!(
        matches!(f.deliver("missing", b"m"), Outcome::Failed(ref t) if t.contains("not found"))
    );
    assert!(
        matches!(f.deliver("../../bin/sh -c id", b"m"), Outcome::Failed(ref t) if t.contains("not allowed"))
    );
    let other = Target::Discard;
    assert!(matches!(
        f.pipe.deliver(&Job {
            id: 1,
            message: b"m",
            return_path: "",
            recipient: "r@x.test",
            target: &other,
            source: &Source::Pipe,
            dsn: Default::default(),
        }),
        Outcome::Failed(_)
    ));
}

#[test]
fn named_queues_run_one_at_a_time() {
    let f = Arc::new(app_fixture(Duration::from_secs(20)));
    // Fails if another instance is inside the critical section.
    f.app(
        "serial",
        "cat >/dev/null; if ! mkdir lock.d 2>/dev/null; then echo overlap >&2; exit 1; fi; sleep 0.2; rmdir lock.d",
    );
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || f.deliver("queue[ONE] serial", b"m\r\n"))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Outcome::Delivered);
    }
    assert!(f.pipe.queues.lock().unwrap().is_empty());
}
