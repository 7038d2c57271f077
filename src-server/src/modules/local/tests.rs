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
    let local = LocalDelivery::new(store.clone(), mgr.clone(), logger, "mail.example.com");
    Fixture {
        _dir: dir,
        store,
        mgr,
        local,
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
fn direct_mailbox_and_detail_use_existing_mailbox_else_inbox() {
    let f = fixture();
    let boxes = AccountMailboxes::open(&f.store, "example.com", "joe").unwrap();
    boxes.create(&f.mgr, "sales", Format::Mbox).unwrap();
    boxes.create(&f.mgr, "lists/jokes", Format::Mbox).unwrap();
    assert_eq!(
        deliver(&f, &local("joe", Some("sales"), None), MSG),
        Outcome::Delivered
    );
    assert_eq!(
        deliver(&f, &local("joe", None, Some("lists/jokes")), MSG),
        Outcome::Delivered
    );
    // Missing mailboxes (and a traversal attempt) fall back to INBOX.
    for m in ["nosuch", "../../x", "Sales"] {
        assert_eq!(
            deliver(&f, &local("joe", Some(m), None), MSG),
            Outcome::Delivered
        );
    }
    assert_eq!(messages(&f, "joe", "sales").len(), 1);
    assert_eq!(messages(&f, "joe", "lists/jokes").len(), 1);
    assert_eq!(messages(&f, "joe", "INBOX").len(), 3);
}

#[test]
fn detail_goes_to_inbox_when_account_detail_is_enabled() {
    let f = fixture();
    let boxes = AccountMailboxes::open(&f.store, "example.com", "joe").unwrap();
    boxes.create(&f.mgr, "jokes", Format::Mbox).unwrap();
    let mut s = Dict::new();
    s.insert(b"AccountDetail".to_vec(), Value::str("Enabled"));
    f.store.set_server_settings(NAME, &Value::Dict(s)).unwrap();
    assert_eq!(
        deliver(&f, &local("joe", None, Some("jokes")), MSG),
        Outcome::Delivered
    );
    assert_eq!(messages(&f, "joe", "jokes").len(), 0);
    assert_eq!(messages(&f, "joe", "INBOX").len(), 1);
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
    let out = with_trace_fields(m, "", "r@x", "h", 1, "date");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "Return-Path: <>\nReceived: by h (Gatehouse LOCAL)\n\tid 1 for <r@x>; date\n\
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
}
