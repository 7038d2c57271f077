//! Local Delivery over a temporary store: INBOX, `mailbox#account`, `+detail`, the Mail Storage
//! limit, trace fields, single-mailbox accounts, and a `.mbox` read back by Python's `mailbox`.

use std::process::Command;

use super::*;
use crate::format::Dict;
use crate::kernel::clock::SystemClock;
use crate::kernel::log::LogSettings;
use crate::kernel::mail::Source;
use crate::store::AccountType;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    mgr: Arc<MailboxManager>,
    local: LocalDelivery,
    logger: Logger,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "example.com").unwrap();
    store
        .create_account("example.com", "joe", AccountType::MultiMailbox, Dict::new())
        .unwrap();
    let logger = Logger::open(
        dir.path().join("SystemLogs"),
        LogSettings::default(),
        SystemClock::shared(),
    )
    .unwrap();
    let mgr = Arc::new(MailboxManager::new());
    let local = LocalDelivery::new(
        store.clone(),
        mgr.clone(),
        logger.clone(),
        "mail.example.com",
    );
    Fixture {
        _dir: dir,
        store,
        mgr,
        local,
        logger,
    }
}

const MSG: &[u8] = b"Return-Path: <forged@evil.test>\r\n\
From: a@b.test\r\nSubject: hi\r\n\r\nbody line\r\n\r\nFrom the start\r\n";

fn local(account: &str, mailbox: Option<&str>, detail: Option<&str>) -> Target {
    Target::Local {
        domain: "example.com".into(),
        account: account.into(),
        mailbox: mailbox.map(Into::into),
        detail: detail.map(Into::into),
    }
}

fn deliver(f: &Fixture, target: &Target, msg: &[u8]) -> Outcome {
    let job = Job {
        id: 42,
        message: msg,
        return_path: "sender@remote.test",
        recipient: "joe@example.com",
        target,
        source: &Source::Cli,
        dsn: Default::default(),
    };
    f.local.deliver(&job)
}

fn messages(f: &Fixture, account: &str, mailbox: &str) -> Vec<Vec<u8>> {
    let boxes = AccountMailboxes::open(&f.store, "example.com", account).unwrap();
    let mb = boxes.open_mailbox(&f.mgr, mailbox).unwrap();
    mb.list().iter().map(|m| mb.read(m.uid).unwrap()).collect()
}

#[test]
fn delivers_to_inbox_with_trace_fields() {
    let f = fixture();
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    let got = messages(&f, "joe", "INBOX");
    assert_eq!(got.len(), 1);
    let text = String::from_utf8(got[0].clone()).unwrap();
    assert!(
        text.starts_with("Return-Path: <sender@remote.test>\r\nReceived: by mail.example.com"),
        "{text}"
    );
    assert!(text.contains("\tid 42 for <joe@example.com>; "), "{text}");
    assert!(!text.contains("forged@evil.test"), "{text}");
    assert!(text.contains("Subject: hi\r\n\r\nbody line"), "{text}");
}

#[test]
fn creates_inbox_on_first_delivery_in_default_format() {
    let f = fixture();
    let mut s = Dict::new();
    s.insert(b"DefaultMailboxType".to_vec(), Value::str("MailDir"));
    f.store
        .create_account("example.com", "md", AccountType::MultiMailbox, s)
        .unwrap();
    assert_eq!(
        deliver(&f, &local("md", None, None), MSG),
        Outcome::Delivered
    );
    let (_, dd) = f.store.account_location("example.com", "md").unwrap();
    assert!(dd.join("INBOX.mdir").is_dir());
}

#[test]
fn direct_mailbox_uses_existing_mailbox_else_inbox_and_detail_goes_to_inbox() {
    let f = fixture();
    let boxes = AccountMailboxes::open(&f.store, "example.com", "joe").unwrap();
    boxes.create(&f.mgr, "sales", Format::Mbox).unwrap();
    boxes.create(&f.mgr, "lists/jokes", Format::Mbox).unwrap();
    set_rules(&f, "joe", "((5, D, (), ((Discard))))");
    // mailbox#account (and Direct Mailbox mode +detail, which the Router turns into it): no Rules.
    for m in ["sales", "lists/jokes"] {
        assert_eq!(
            deliver(&f, &local("joe", Some(m), None), MSG),
            Outcome::Delivered
        );
    }
    // Missing mailboxes (and a traversal attempt) fall back to INBOX, still without Rules.
    for m in ["nosuch", "../../x", "Sales"] {
        assert_eq!(
            deliver(&f, &local("joe", Some(m), None), MSG),
            Outcome::Delivered
        );
    }
    assert_eq!(messages(&f, "joe", "sales").len(), 1);
    assert_eq!(messages(&f, "joe", "lists/jokes").len(), 1);
    assert_eq!(messages(&f, "joe", "INBOX").len(), 3);
    // +detail in Enabled mode: the Rules run (here: discard), the detail names no mailbox.
    assert_eq!(
        deliver(&f, &local("joe", None, Some("sales")), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "joe", "sales").len(), 1);
    assert_eq!(messages(&f, "joe", "INBOX").len(), 3);
}

#[test]
fn over_the_mail_storage_limit_fails() {
    let f = fixture();
    let mut s = Dict::new();
    s.insert(b"MaxAccountSize".to_vec(), Value::str("1K"));
    f.store
        .update_account_settings("example.com", "joe", s)
        .unwrap();
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    let big = [MSG, &vec![b'x'; 2000][..]].concat();
    assert_eq!(
        deliver(&f, &local("joe", None, None), &big),
        Outcome::Failed(ACCOUNT_FULL.into())
    );
    assert_eq!(messages(&f, "joe", "INBOX").len(), 1);
    let mut s = Dict::new();
    s.insert(b"MaxAccountSize".to_vec(), Value::str("unlimited"));
    f.store
        .update_account_settings("example.com", "joe", s)
        .unwrap();
    assert_eq!(
        deliver(&f, &local("joe", None, None), &big),
        Outcome::Delivered
    );
}

#[test]
fn unknown_account_and_disabled_mail_fail() {
    let f = fixture();
    assert_eq!(
        deliver(&f, &local("nobody", None, None), MSG),
        Outcome::Failed("unknown account".into())
    );
    let mut s = Dict::new();
    s.insert(
        b"AccessModes".to_vec(),
        Value::Array(vec![Value::str("POP"), Value::str("IMAP")]),
    );
    f.store
        .update_account_settings("example.com", "joe", s)
        .unwrap();
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Failed(MAIL_DISABLED.into())
    );
    let other = Target::Discard;
    assert!(matches!(deliver(&f, &other, MSG), Outcome::Failed(_)));
}

#[test]
fn single_mailbox_accounts() {
    let f = fixture();
    for (name, t, ext) in [
        ("txt", AccountType::TextMailbox, "mbox"),
        ("dir", AccountType::MailDirMailbox, "mdir"),
    ] {
        f.store
            .create_account("example.com", name, t, Dict::new())
            .unwrap();
        assert_eq!(
            deliver(&f, &local(name, Some("other"), None), MSG),
            Outcome::Delivered
        );
        assert_eq!(messages(&f, name, "INBOX").len(), 1);
        let (_, dd) = f.store.account_location("example.com", name).unwrap();
        assert!(dd.join(format!("{name}.{ext}")).exists());
    }
}

#[test]
fn mbox_is_readable_by_python_mailbox() {
    let f = fixture();
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert_eq!(
        deliver(&f, &local("joe", None, None), b"Subject: two\n\nsecond\n"),
        Outcome::Delivered
    );
    let (_, dir) = f.store.account_location("example.com", "joe").unwrap();
    let path = dir.join("INBOX.mbox");
    let script = "import mailbox,sys\n\
        msgs = list(mailbox.mbox(sys.argv[1]))\n\
        print(len(msgs))\n\
        for m in msgs: print(m['Return-Path'], '|', m['Subject'], '|', m.get_payload().count('>From'))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    let out = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"2"), "{out}");
    assert_eq!(lines[1], "<sender@remote.test> | hi | 1", "{out}");
    assert_eq!(lines[2], "<sender@remote.test> | two | 0", "{out}");
}

#[test]
fn trace_fields_keep_lf_messages_lf_and_drop_folded_return_path() {
    let m = b"Return-Path:\n <x@y>\nSubject: s\n\nReturn-Path: body\n";
    let t = TraceFields {
        return_path: "",
        added: "X-A: 1\r\nX-B: 2\r\n",
        recipient: "r@x",
        host: "h",
        id: 1,
        date: "date",
    };
    let text = String::from_utf8(with_trace_fields(m, &t)).unwrap();
    assert_eq!(
        text,
        "Return-Path: <>\nX-A: 1\nX-B: 2\nReceived: by h (Gatehouse LOCAL)\n\tid 1 for <r@x>; date\n\
         Subject: s\n\nReturn-Path: body\n"
    );
}

#[test]
fn limits_and_settings_parse() {
    assert_eq!(parse_limit("unlimited"), Some(Limit::Unlimited));
    assert_eq!(parse_limit(""), Some(Limit::Unlimited));
    assert_eq!(parse_limit("10M"), Some(Limit::Bytes(10 << 20)));
    assert_eq!(parse_limit("64k"), Some(Limit::Bytes(64 << 10)));
    assert_eq!(parse_limit("123"), Some(Limit::Bytes(123)));
    assert_eq!(parse_limit("12X"), None);
    assert_eq!(parse_limit("99999999999999G"), None);
    assert!(Config::from(&Dict::new()).is_ok());
    let mut bad = Dict::new();
    bad.insert(b"AccountDetail".to_vec(), Value::str("maybe"));
    assert!(Config::from(&bad).is_err());
    let mut good = Dict::new();
    good.insert(b"AccountDetail".to_vec(), Value::str("Direct Mailbox"));
    good.insert(b"DirectMailbox".to_vec(), Value::str("NO"));
    assert!(Config::from(&good).is_ok());
}

// ------------------------------------------------------------------ account Rules

fn set_rules(f: &Fixture, account: &str, rules: &str) {
    let v = crate::format::parse(rules.as_bytes()).unwrap();
    crate::kernel::rules::parse_rules(&v).unwrap();
    f.store
        .set_account_rules("example.com", account, v)
        .unwrap();
}

fn flags_of(f: &Fixture, account: &str, mailbox: &str) -> Vec<Flags> {
    let boxes = AccountMailboxes::open(&f.store, "example.com", account).unwrap();
    let mb = boxes.open_mailbox(&f.mgr, mailbox).unwrap();
    mb.list().iter().map(|m| m.flags).collect()
}

#[derive(Default)]
struct FakeQueue(std::sync::Mutex<Vec<(crate::kernel::mail::Submission, Vec<u8>)>>);

impl Submit for FakeQueue {
    fn submit(
        &self,
        s: crate::kernel::mail::Submission,
        m: &[u8],
    ) -> Result<u64, crate::kernel::mail::EnqueueError> {
        let mut q = self.0.lock().unwrap();
        q.push((s, m.to_vec()));
        Ok(q.len() as u64)
    }
}

#[test]
fn rules_store_mark_add_headers_and_stop() {
    let f = fixture();
    let boxes = AccountMailboxes::open(&f.store, "example.com", "joe").unwrap();
    boxes.create(&f.mgr, "Sales", Format::Mbox).unwrap();
    set_rules(
        &f,
        "joe",
        r#"((5, A, ((Subject, is, "*hi*")), ((Mark, Flagged), ("Add Headers", "X-Tag: yes"), ("Store in", Sales), ("Stop Processing"))), (3, B, (), ((Discard))))"#,
    );
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    let sales = messages(&f, "joe", "Sales");
    assert_eq!(sales.len(), 1);
    let text = String::from_utf8(sales[0].clone()).unwrap();
    assert!(
        text.starts_with("Return-Path: <sender@remote.test>\r\nX-Tag: yes\r\nReceived: "),
        "{text}"
    );
    assert_eq!(
        flags_of(&f, "joe", "Sales"),
        [Flags::FLAGGED | Flags::RECENT]
    );
    // Stop Processing: rule B's Discard never runs, so INBOX gets it too, flagged.
    assert_eq!(messages(&f, "joe", "INBOX").len(), 1);
    assert_eq!(
        flags_of(&f, "joe", "INBOX"),
        [Flags::FLAGGED | Flags::RECENT]
    );
    // Not matching rule A: rule B discards.
    assert_eq!(
        deliver(
            &f,
            &local("joe", None, None),
            b"Subject: other\r\n\r\nx\r\n"
        ),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "joe", "INBOX").len(), 1);
    // A missing mailbox is skipped; the message still reaches INBOX.
    set_rules(&f, "joe", r#"((5, A, (), (("Store in", Nope))))"#);
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "joe", "INBOX").len(), 2);
}

#[test]
fn rules_reject_discard_and_direct_mailbox_bypass() {
    let f = fixture();
    set_rules(&f, "joe", r#"((5, R, (), ((Reject, "go away"))))"#);
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Failed("go away".into())
    );
    // guide.txt:12230: mailbox#account bypasses the Rules.
    assert_eq!(
        deliver(&f, &local("joe", Some("INBOX"), None), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "joe", "INBOX").len(), 1);
    set_rules(&f, "joe", "((5, D, (), ((Discard))))");
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "joe", "INBOX").len(), 1);
    // A broken rule set does not lose mail.
    f.store
        .set_account_rules(
            "example.com",
            "joe",
            crate::format::parse(b"((x))").unwrap(),
        )
        .unwrap();
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "joe", "INBOX").len(), 2);
}

#[test]
fn rules_redirect_and_reply_go_to_the_enqueuer() {
    let f = fixture();
    let queue = Arc::new(FakeQueue::default());
    set_rules(
        &f,
        "joe",
        r#"((5, R, (), (("Redirect to", "boss@remote.test"), ("Reply with", "Away"))))"#,
    );
    f.local.set_submitter(queue.clone());
    let msg = b"From: a@b.test\r\nTo: joe@example.com\r\nSubject: hi\r\n\r\nbody\r\n";
    assert_eq!(
        deliver(&f, &local("joe", None, None), msg),
        Outcome::Delivered
    );
    let sent = queue.0.lock().unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].0.recipients[0].address, "boss@remote.test");
    assert_eq!(
        sent[0].0.source,
        crate::kernel::mail::Source::Rules("joe@example.com".into())
    );
    assert!(sent[1]
        .0
        .recipients
        .iter()
        .any(|r| r.address == "sender@remote.test" || r.address == "a@b.test"));
    // Without an Enqueuer the message is still stored; the sends are logged as failed.
    let g = fixture();
    set_rules(
        &g,
        "joe",
        r#"((5, R, (), (("Redirect to", "boss@remote.test"))))"#,
    );
    assert_eq!(
        deliver(&g, &local("joe", None, None), msg),
        Outcome::Delivered
    );
    assert_eq!(messages(&g, "joe", "INBOX").len(), 1);
}

#[test]
fn rules_execute_only_when_allowed() {
    let f = fixture();
    let base = f.store.base().to_path_buf();
    set_rules(&f, "joe", r#"((5, X, (), ((Execute, "tee exec-out"))))"#);
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert!(
        !base.join("exec-out").exists(),
        "RulesAllowed=No must not run programs"
    );
    let mut s = Dict::new();
    s.insert(b"RulesAllowed".to_vec(), Value::str("Any"));
    f.store
        .update_account_settings("example.com", "joe", s)
        .unwrap();
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert_eq!(std::fs::read(base.join("exec-out")).unwrap(), MSG);
    set_rules(
        &f,
        "joe",
        r#"((5, X, (), ((Execute, "[STDERR] [RETPATH] ls /nonexistent-dir"))))"#,
    );
    match deliver(&f, &local("joe", None, None), MSG) {
        Outcome::Failed(t) => assert!(t.contains("nonexistent-dir"), "{t}"),
        o => panic!("{o:?}"),
    }
    set_rules(&f, "joe", r#"((5, X, (), ((Execute, "false"))))"#);
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Failed(run::EXEC_FAILED.into())
    );
    assert_eq!(messages(&f, "joe", "INBOX").len(), 2);
}

#[test]
fn rules_write_to_log() {
    let f = fixture();
    let mut records = f.logger.subscribe();
    set_rules(&f, "joe", r#"((5, L, (), (("Write To Log", "seen it"))))"#);
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    f.logger.flush();
    let mut texts = Vec::new();
    while let Ok(r) = records.try_recv() {
        texts.push(format!("{} {}", r.tag, r.text));
    }
    assert!(texts.iter().any(|t| t == "LOCAL 42: seen it"), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("LOCAL 42: stored for joe@example.com in INBOX")),
        "{texts:?}"
    );
}

#[test]
fn rules_store_in_foreign_mailbox_needs_insert_right() {
    let f = fixture();
    f.store
        .create_account(
            "example.com",
            "postmaster",
            AccountType::MultiMailbox,
            Dict::new(),
        )
        .unwrap();
    let pm = AccountMailboxes::open(&f.store, "example.com", "postmaster").unwrap();
    pm.create(&f.mgr, "abuse", Format::Mbox).unwrap();
    set_rules(
        &f,
        "joe",
        r#"((5, A, (), (("Store in", "~postmaster/abuse"))))"#,
    );
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "postmaster", "abuse").len(), 0);
    let mut changes = Dict::new();
    changes.insert(b"joe".to_vec(), Value::str("i"));
    let mut list = acl::Acl::new();
    acl::modify(&mut list, &changes).unwrap();
    f.store
        .set_account_info(
            "example.com",
            "postmaster",
            acl::INFO_KEY,
            acl::put(None, "abuse", &list),
        )
        .unwrap();
    assert_eq!(
        deliver(&f, &local("joe", None, None), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "postmaster", "abuse").len(), 1);
    assert_eq!(messages(&f, "joe", "INBOX").len(), 2);
}
