use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::names::{self, CreateRequest};
use super::*;
use crate::format;

const DATE: i64 = 1_000_000_000; // Sun Sep  9 01:46:40 2001 GMT

fn msg(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Return-Path: <alice@example.com>\nFrom: alice@example.com\nSubject: {subject}\n\n{body}"
    )
    .into_bytes()
}

fn open(path: &Path, format: Format) -> Arc<Mailbox> {
    MailboxManager::new()
        .open_or_create(path, format)
        .expect("open")
}

#[test]
fn mbox_from_line_vector() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mbox");
    let mb = open(&p, Format::Mbox);
    let uid = mb
        .append(&msg("hi", "Hello\n"), Flags::SEEN | Flags::FLAGGED, DATE)
        .unwrap();
    assert_eq!(uid, 1);
    let m2 = b"Subject: no return path\n\nbody".to_vec();
    assert_eq!(
        mb.append(&m2, Flags::empty(), DATE + 86_400 * 30).unwrap(),
        2
    );
    let expected = concat!(
        "From <alice@example.com>(S_F_____-0000000001) Sun Sep  9 01:46:40 2001\n",
        "Return-Path: <alice@example.com>\nFrom: alice@example.com\nSubject: hi\n\nHello\n",
        "\n",
        "From <>(________-0000000002) Tue Oct  9 01:46:40 2001\n",
        "Subject: no return path\n\nbody\n",
        "\n",
    );
    assert_eq!(String::from_utf8(fs::read(&p).unwrap()).unwrap(), expected);
    // A message without a final line break gets one.
    assert_eq!(mb.read(2).unwrap(), b"Subject: no return path\n\nbody\n");
    let list = mb.list();
    assert_eq!(list[0].flags, Flags::SEEN | Flags::FLAGGED);
    assert_eq!(list[0].internal_date, DATE);
    assert_eq!(list[0].size, msg("hi", "Hello\n").len() as u64);
}

#[test]
fn flags_encoding() {
    let all = Flags::SEEN
        | Flags::ANSWERED
        | Flags::FLAGGED
        | Flags::DELETED
        | Flags::DRAFT
        | Flags::RECENT;
    assert_eq!(&all.encode(), b"SRFTDN__");
    assert_eq!(Flags::decode(b"SRFTDN__"), Some(all));
    assert_eq!(Flags::decode(b"________"), Some(Flags::empty()));
    assert_eq!(Flags::decode(b"RS______"), None);
    assert_eq!(Flags::decode(b"S"), None);
}

#[test]
fn mbox_from_escaping_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mbox");
    let mb = open(&p, Format::Mbox);
    let body = "line\n\nFrom here on\n>From quoted\n>>From deeper\nFromage\nmid From x\r\n\r\nFrom crlf\r\n";
    let m = msg("esc", body);
    let uid = mb.append(&m, Flags::empty(), DATE).unwrap();
    let raw = String::from_utf8(fs::read(&p).unwrap()).unwrap();
    assert!(raw.contains("\n\n>From here on\n>>From quoted\n>>>From deeper\nFromage\n"));
    assert!(raw.contains("\r\n\r\n>From crlf\r\n"));
    assert_eq!(mb.read(uid).unwrap(), m);
    assert_eq!(mb.list()[0].size, m.len() as u64);
    drop(mb);
    // The size computed by a rescan agrees.
    fs::remove_file(mbox::index_path(&p)).unwrap();
    let mb = open(&p, Format::Mbox);
    assert_eq!(mb.list()[0].size, m.len() as u64);
    assert_eq!(mb.read(uid).unwrap(), m);
}

#[test]
fn legacy_mbox_without_comments() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Old.mbox");
    let legacy = concat!(
        "From bob@example.com Wed Jan  3 01:05:34 1996\n",
        "Subject: one\n\nfirst\n>From escaped\n\n",
        "From carol@example.com Mon Feb  5 10:00:00 2001\n",
        "Subject: two\n\nsecond\n",
    );
    fs::write(&p, legacy).unwrap();
    let mb = MailboxManager::new().open(&p, Format::Mbox).unwrap();
    let list = mb.list();
    assert_eq!(list.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(list[0].internal_date, 820_631_134);
    assert_eq!(
        mb.read(1).unwrap(),
        b"Subject: one\n\nfirst\nFrom escaped\n"
    );
    assert_eq!(mb.read(2).unwrap(), b"Subject: two\n\nsecond\n");
    // Flags of legacy messages are kept in the index only; the file is not touched.
    mb.set_flags(&[1], Flags::SEEN, SetMode::Add).unwrap();
    assert_eq!(fs::read_to_string(&p).unwrap(), legacy);
    // A new message goes after them with our From-line.
    assert_eq!(
        mb.append(&msg("three", "x\n"), Flags::empty(), DATE)
            .unwrap(),
        3
    );
    let v = mb.uid_validity();
    drop(mb);
    let mb = MailboxManager::new().open(&p, Format::Mbox).unwrap();
    assert_eq!(mb.uid_validity(), v);
    assert_eq!(mb.list()[0].flags, Flags::SEEN | Flags::RECENT);
    assert_eq!(
        mb.list().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    drop(mb);
    // A legacy tool appends one more: indexed with a new UID, the others keep theirs.
    let mut bytes = fs::read(&p).unwrap();
    bytes.extend_from_slice(
        b"From dave@example.com Mon Feb  5 10:00:00 2001\nSubject: four\n\nfourth\n\n",
    );
    fs::write(&p, &bytes).unwrap();
    let mb = MailboxManager::new().open(&p, Format::Mbox).unwrap();
    assert_eq!(mb.uid_validity(), v);
    assert_eq!(
        mb.list().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(mb.read(4).unwrap(), b"Subject: four\n\nfourth\n");
    assert_eq!(mb.read(3).unwrap(), msg("three", "x\n"));
}

#[test]
fn python_mailbox_reads_our_mbox() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mbox");
    let mb = open(&p, Format::Mbox);
    mb.append(&msg("first", "hello\n"), Flags::empty(), DATE)
        .unwrap();
    mb.append(
        &msg("second", "a\n\nFrom the start\nFrom again\n"),
        Flags::SEEN,
        DATE,
    )
    .unwrap();
    mb.append(&msg("third", "bye\n"), Flags::empty(), DATE)
        .unwrap();
    let script = "import mailbox,sys\n\
                  m=mailbox.mbox(sys.argv[1])\n\
                  ms=list(m)\n\
                  print(len(ms))\n\
                  print('|'.join(x['Subject'] for x in ms))\n\
                  print(ms[1].get_payload().count('>From '))\n\
                  print(ms[0].get_from())\n";
    let out = match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&p)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("python3 missing: skipped");
            return;
        }
        Err(e) => panic!("python3: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "3");
    assert_eq!(lines[1], "first|second|third");
    assert_eq!(lines[2], "2");
    assert_eq!(
        lines[3],
        "<alice@example.com>(________-0000000001) Sun Sep  9 01:46:40 2001"
    );
}

#[test]
fn torn_tail_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mbox");
    let mb = open(&p, Format::Mbox);
    mb.append(&msg("a", "1\n"), Flags::empty(), DATE).unwrap();
    mb.append(&msg("b", "2\n"), Flags::empty(), DATE).unwrap();
    drop(mb);
    let good = fs::read(&p).unwrap();
    // A crash in the middle of writing the From-line.
    let mut torn = good.clone();
    torn.extend_from_slice(b"From <alice@example.com>(________-00000");
    fs::write(&p, &torn).unwrap();
    let mb = open(&p, Format::Mbox);
    assert_eq!(mb.list().len(), 2);
    assert_eq!(fs::read(&p).unwrap(), good);
    assert_eq!(
        mb.append(&msg("c", "3\n"), Flags::empty(), DATE).unwrap(),
        3
    );
    drop(mb);
    let good = fs::read(&p).unwrap();
    // A crash after the message body was partly written, before the index commit.
    let (rec, _) = mbox::encode_record(&msg("d", "a long body\n"), Flags::empty(), 4, DATE, 0);
    let mut torn = good.clone();
    torn.extend_from_slice(&rec[..rec.len() - 8]);
    fs::write(&p, &torn).unwrap();
    let mb = open(&p, Format::Mbox);
    assert_eq!(
        mb.list().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(fs::read(&p).unwrap(), good);
    assert_eq!(mb.read(3).unwrap(), msg("c", "3\n"));
}

#[test]
fn uids_stable_across_reopen_and_expunge() {
    for format in [Format::Mbox, Format::Mdir] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(format!("INBOX.{}", format.extension()));
        let mb = open(&p, format);
        for i in 0..5 {
            mb.append(&msg(&format!("m{i}"), "x\n"), Flags::empty(), DATE)
                .unwrap();
        }
        let v = mb.uid_validity();
        mb.set_flags(&[4, 5], Flags::DELETED, SetMode::Add).unwrap();
        assert_eq!(mb.expunge().unwrap(), vec![4, 5]);
        assert_eq!(mb.uid_next(), 6);
        drop(mb);
        let mb = open(&p, format);
        assert_eq!(mb.uid_validity(), v, "{format:?}");
        assert_eq!(mb.uid_next(), 6, "{format:?}");
        assert_eq!(
            mb.list().iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            mb.append(&msg("new", "y\n"), Flags::empty(), DATE).unwrap(),
            6
        );
        assert_eq!(mb.read(2).unwrap(), msg("m1", "x\n"));
        assert_eq!(mb.read(6).unwrap(), msg("new", "y\n"));
        assert!(matches!(mb.read(4), Err(MailboxError::NoSuchMessage(4))));
    }
}

#[test]
fn mbox_flag_change_rewrites_only_the_comment() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mbox");
    let mb = open(&p, Format::Mbox);
    mb.append(&msg("a", "1\n"), Flags::RECENT, DATE).unwrap();
    mb.append(&msg("b", "2\n"), Flags::empty(), DATE).unwrap();
    let before = fs::read(&p).unwrap();
    let changed = mb
        .set_flags(&[2, 99], Flags::SEEN | Flags::ANSWERED, SetMode::Add)
        .unwrap();
    assert_eq!(changed, vec![(2, Flags::SEEN | Flags::ANSWERED)]);
    let after = fs::read(&p).unwrap();
    assert_eq!(before.len(), after.len());
    let diff: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert_eq!(diff.len(), 2);
    assert!(String::from_utf8_lossy(&after).contains("(SR______-0000000002)"));
    mb.set_flags(&[1], Flags::SEEN, SetMode::Replace).unwrap();
    mb.set_flags(&[2], Flags::SEEN, SetMode::Remove).unwrap();
    drop(mb);
    fs::remove_file(mbox::index_path(&p)).unwrap();
    let mb = open(&p, Format::Mbox);
    let flags: Vec<Flags> = mb.list().iter().map(|m| m.flags).collect();
    assert_eq!(flags, vec![Flags::SEEN, Flags::ANSWERED]);
}

#[test]
fn index_makes_reopen_fast() {
    const N: u32 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Big.mbox");
    let mut bytes = Vec::new();
    for uid in 1..=N {
        let (rec, _) = mbox::encode_record(
            &msg(&format!("n{uid}"), "small body\n"),
            Flags::SEEN,
            uid,
            DATE,
            0,
        );
        bytes.extend_from_slice(&rec);
    }
    fs::write(&p, &bytes).unwrap();
    let t = Instant::now();
    let mb = MailboxManager::new().open(&p, Format::Mbox).unwrap();
    let first = t.elapsed();
    assert_eq!(mb.list().len(), N as usize);
    let v = mb.uid_validity();
    drop(mb);
    let t = Instant::now();
    let mb = MailboxManager::new().open(&p, Format::Mbox).unwrap();
    let second = t.elapsed();
    println!(
        "open {N}-message mbox ({} bytes): scan {first:?}, with index {second:?}",
        bytes.len()
    );
    assert_eq!(mb.list().len(), N as usize);
    assert_eq!(mb.uid_validity(), v);
    assert_eq!(mb.uid_next(), N + 1);
    assert_eq!(
        mb.read(N / 2).unwrap(),
        msg(&format!("n{}", N / 2), "small body\n")
    );
}

#[test]
fn expunge_is_crash_safe() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mbox");
    let mb = open(&p, Format::Mbox);
    for i in 0..4 {
        mb.append(&msg(&format!("m{i}"), "x\n"), Flags::empty(), DATE)
            .unwrap();
    }
    drop(mb);
    let original = fs::read(&p).unwrap();
    // A crash while the compacted copy was being written: the temp is left behind.
    let tmp = fsutil::temp_name(&p);
    fs::write(&tmp, b"From <>(________-0000000001) half a compacted mail").unwrap();
    let mb = open(&p, Format::Mbox);
    assert!(!tmp.exists());
    assert_eq!(fs::read(&p).unwrap(), original);
    assert_eq!(mb.list().len(), 4);
    // A crash after the rename but before the new index: the old index is stale.
    let old_index = fs::read(mbox::index_path(&p)).unwrap();
    mb.set_flags(&[3, 4], Flags::DELETED, SetMode::Add).unwrap();
    assert_eq!(mb.expunge().unwrap(), vec![3, 4]);
    drop(mb);
    fs::write(mbox::index_path(&p), old_index).unwrap();
    let mb = open(&p, Format::Mbox);
    assert_eq!(
        mb.list().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(mb.uid_next(), 5);
    assert_eq!(mb.read(2).unwrap(), msg("m1", "x\n"));
    // A damaged index is rebuilt from the mailbox.
    drop(mb);
    fs::write(mbox::index_path(&p), b"garbage").unwrap();
    let mb = open(&p, Format::Mbox);
    assert_eq!(
        mb.list().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[test]
fn concurrent_appends_from_threads() {
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Mbox, Format::Mdir] {
        let p = dir.path().join(format!("Shared.{}", format.extension()));
        let mgr = Arc::new(MailboxManager::new());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let mgr = Arc::clone(&mgr);
                let p = p.clone();
                std::thread::spawn(move || {
                    let mb = mgr.open_or_create(&p, format).unwrap();
                    (0..25)
                        .map(|i| {
                            mb.append(&msg(&format!("t{t}-{i}"), "x\n"), Flags::empty(), DATE)
                                .unwrap()
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        let mut uids: Vec<u32> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        uids.sort_unstable();
        assert_eq!(uids, (1..=200).collect::<Vec<u32>>());
        let mb = MailboxManager::new().open(&p, format).unwrap();
        assert_eq!(mb.list().len(), 200);
        for m in mb.list() {
            assert!(mb.read(m.uid).unwrap().starts_with(b"Return-Path:"));
        }
    }
}

#[test]
fn manager_shares_one_handle_per_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mbox");
    let mgr = MailboxManager::new();
    let a = mgr.open_or_create(&p, Format::Mbox).unwrap();
    let b = mgr
        .open(&dir.path().join(".").join("INBOX.mbox"), Format::Mbox)
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(matches!(
        mgr.open(&p, Format::Mdir),
        Err(MailboxError::WrongFormat)
    ));
    assert!(matches!(
        mgr.open(&dir.path().join("none.mbox"), Format::Mbox),
        Err(MailboxError::NotFound)
    ));
}

#[tokio::test]
async fn notifications() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("INBOX.mdir");
    let mgr = MailboxManager::new();
    let mb = mgr.open_or_create(&p, Format::Mdir).unwrap();
    let mut rx = mgr.open(&p, Format::Mdir).unwrap().subscribe();
    let uid = mb.append(&msg("a", "b\n"), Flags::empty(), DATE).unwrap();
    mb.set_flags(&[uid], Flags::DELETED, SetMode::Add).unwrap();
    mb.expunge().unwrap();
    assert_eq!(rx.recv().await.unwrap(), Change::Appended { uid });
    assert_eq!(
        rx.recv().await.unwrap(),
        Change::FlagsChanged {
            uid,
            flags: Flags::DELETED,
            keywords: 0,
            modseq: mb.highest_modseq() - 1
        }
    );
    assert_eq!(
        rx.recv().await.unwrap(),
        Change::Expunged { uids: vec![uid] }
    );
}

/// Keywords and mod-sequences persist across a reopen in both formats; a mailbox without a
/// journal (written before keywords existed) opens with every message at one mod-sequence.
#[test]
fn keywords_and_modseqs_persist() {
    for format in [Format::Mbox, Format::Mdir] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(format!("INBOX.{}", format.extension()));
        let mgr = MailboxManager::new();
        let mb = mgr.open_or_create(&p, format).unwrap();
        let a = mb.append(&msg("a", "b\n"), Flags::empty(), DATE).unwrap();
        let b = mb.append(&msg("c", "d\n"), Flags::empty(), DATE).unwrap();
        drop(mb);
        // An old mailbox: no journal.
        fs::remove_file(meta::meta_path(&p, format == Format::Mdir)).unwrap();
        let mb = mgr.open(&p, format).unwrap();
        let base = mb.highest_modseq();
        assert!(mb
            .list()
            .iter()
            .all(|m| m.modseq == base && m.keywords == 0));
        let kws = ["$Junk".to_string(), "Work".to_string()];
        let u = Update {
            flags: Flags::FLAGGED,
            keywords: &kws,
            mode: SetMode::Add,
            unchanged_since: None,
        };
        let st = mb.store(&[a], &u).unwrap();
        assert_eq!(st.changed.len(), 1);
        assert_eq!(st.changed[0].modseq, base + 1);
        // UNCHANGEDSINCE: `a` changed after 1, `b` did not.
        let rm = ["work".to_string()];
        let u = Update {
            flags: Flags::empty(),
            keywords: &rm,
            mode: SetMode::Remove,
            unchanged_since: Some(base),
        };
        let st = mb.store(&[a, b], &u).unwrap();
        assert_eq!(st.modified, vec![a]);
        assert!(st.changed.is_empty());
        drop(mb);
        let mb = mgr.open(&p, format).unwrap();
        assert_eq!(mb.keywords(), kws.to_vec());
        let l = mb.list();
        assert_eq!((l[0].keywords, l[0].modseq), (3, base + 1));
        assert!(l[0].flags.contains(Flags::FLAGGED));
        assert_eq!(mb.highest_modseq(), base + 1);
        mb.set_flags(&[a], Flags::DELETED, SetMode::Add).unwrap();
        mb.expunge().unwrap();
        assert_eq!(mb.highest_modseq(), base + 3);
        drop(mb);
        let mb = mgr.open(&p, format).unwrap();
        assert_eq!(mb.highest_modseq(), base + 3);
        assert_eq!(mb.list().len(), 1);
    }
}

fn mdir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn mdir_file_names_and_flag_renames() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Proposals.mdir");
    let mb = open(&p, Format::Mdir);
    let m = msg("doc", "attachment\n");
    let uid = mb.append(&m, Flags::RECENT, DATE).unwrap();
    assert_eq!(
        mdir_names(&p),
        vec!["1-_____N__-20010909014640".to_string()]
    );
    mb.set_flags(&[uid], Flags::SEEN, SetMode::Replace).unwrap();
    assert_eq!(
        mdir_names(&p),
        vec!["1-S_______-20010909014640".to_string()]
    );
    assert_eq!(mb.read(uid).unwrap(), m);
    assert_eq!(mb.list()[0].size, m.len() as u64);
    // Stray files and interrupted writes are not messages.
    fs::write(p.join("README"), b"x").unwrap();
    fs::write(p.join(".tmp-1-1"), b"x").unwrap();
    drop(mb);
    let mb = open(&p, Format::Mdir);
    assert_eq!(mb.list().len(), 1);
    assert!(!p.join(".tmp-1-1").exists());
    assert_eq!(
        mdir::parse_name("7-S_______-20010909014640"),
        Some((7, Flags::SEEN, DATE))
    );
    assert_eq!(mdir::parse_name("7-S_______-2001090901464"), None);
    assert_eq!(mdir::parse_name("0-S_______-20010909014640"), None);
}

#[test]
fn mdir_hard_link_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| dir.path().join(format!("{n}.mdir")))
        .collect();
    let mgr = MailboxManager::new();
    let pre = mgr.open_or_create(&paths[1], Format::Mdir).unwrap();
    pre.append(&msg("earlier", "x\n"), Flags::empty(), DATE)
        .unwrap();
    let m = msg("to all", "shared\n");
    let uids = mgr.append_linked(&paths, &m, Flags::RECENT, DATE).unwrap();
    assert_eq!(uids, vec![1, 2, 1]);
    for (p, uid) in paths.iter().zip(&uids) {
        let names = mdir_names(p);
        let name = names
            .iter()
            .find(|n| n.starts_with(&format!("{uid}-")))
            .unwrap();
        assert_eq!(fs::metadata(p.join(name)).unwrap().nlink(), 3);
        assert_eq!(mgr.open(p, Format::Mdir).unwrap().read(*uid).unwrap(), m);
        // No staging file is left behind (`.uidstate` and `.meta` are).
        assert_eq!(fs::read_dir(p).unwrap().count(), names.len() + 2);
    }
    // Expunging in one mailbox leaves the others' links.
    let a = mgr.open(&paths[0], Format::Mdir).unwrap();
    a.set_flags(&[1], Flags::DELETED, SetMode::Add).unwrap();
    a.expunge().unwrap();
    let c = mgr.open(&paths[2], Format::Mdir).unwrap();
    let name = mdir_names(&paths[2]).remove(0);
    assert_eq!(fs::metadata(paths[2].join(name)).unwrap().nlink(), 2);
    assert_eq!(c.read(1).unwrap(), m);
}

#[test]
fn names_refuse_traversal() {
    for bad in [
        "",
        "..",
        "../x",
        "INBOX/..",
        "/INBOX",
        "a//b",
        "a/",
        ".hidden",
        "a/.idx",
        "a\\b",
        "a\0b",
        "a\nb",
        "a\x7fb",
        "~bob/INBOX",
        "a*",
        "a%b",
    ] {
        assert!(names::validate(bad).is_err(), "{bad:?} accepted");
    }
    assert!(names::validate(&"x".repeat(names::MAX_COMPONENT_LEN + 1)).is_err());
    assert!(names::validate(&vec!["a"; names::MAX_DEPTH + 1].join("/")).is_err());
    assert_eq!(
        names::validate("inbox/important").unwrap(),
        "INBOX/important"
    );
    assert_eq!(names::validate("Inbox").unwrap(), "INBOX");
    assert_eq!(names::validate("foo/inbox").unwrap(), "foo/inbox");
    assert_eq!(names::validate("Foo").unwrap(), "Foo");
    let acct = Path::new("/base/Accounts/john.macnt");
    assert_eq!(
        names::storage_path(acct, "INBOX/important", Format::Mbox).unwrap(),
        acct.join("INBOX.folder/important.mbox")
    );
    assert_eq!(
        names::storage_path(acct, "INBOX", Format::Mdir).unwrap(),
        acct.join("INBOX.mdir")
    );
    assert_eq!(
        names::directory_path(acct, "a/b").unwrap(),
        acct.join("a.folder/b.folder")
    );
    assert!(names::storage_path(acct, "../../etc/passwd", Format::Mbox).is_err());
    assert_eq!(
        names::parse_create_name("newmailbox.mdir").unwrap(),
        CreateRequest {
            name: "newmailbox".into(),
            directory_only: false,
            format: Some(Format::Mdir)
        }
    );
    assert_eq!(
        names::parse_create_name("ABCDEF/").unwrap(),
        CreateRequest {
            name: "ABCDEF".into(),
            directory_only: true,
            format: None
        }
    );
    assert!(names::parse_create_name(".mdir").is_err());
    assert!(names::parse_create_name("/").is_err());
    assert_eq!(
        names::classify_entry("INBOX.mbox"),
        Some(names::Entry::Storage("INBOX".into(), Format::Mbox))
    );
    assert_eq!(
        names::classify_entry("INBOX.folder"),
        Some(names::Entry::Directory("INBOX".into()))
    );
    assert_eq!(names::classify_entry(".INBOX.mbox.idx"), None);
    assert_eq!(names::classify_entry("account.settings"), None);
}

#[test]
fn subscription_in_info_file() {
    let dir = tempfile::tempdir().unwrap();
    let info = dir.path().join("account.info");
    fs::write(&info, b"{LastLogin=\"x\";}").unwrap();
    let l = subscription::update(&info, |d| {
        subscription::subscribe(d, "INBOX/important").map(|_| ())
    })
    .unwrap();
    assert_eq!(l, vec!["INBOX/important"]);
    subscription::update(&info, |d| {
        subscription::subscribe(d, "~sales/INBOX").map(|_| ())
    })
    .unwrap();
    let d = subscription::read_info(&info).unwrap();
    assert_eq!(
        subscription::list(&d),
        vec!["INBOX/important", "~sales/INBOX"]
    );
    assert!(d.contains_key(b"LastLogin".as_slice()));
    let l = subscription::update(&info, |d| {
        subscription::unsubscribe(d, "INBOX/important");
        Ok(())
    })
    .unwrap();
    assert_eq!(l, vec!["~sales/INBOX"]);
    let mut d = format::Dict::new();
    assert!(subscription::subscribe(&mut d, "a\nb").is_err());
    // A damaged .info reads as empty rather than failing.
    fs::write(&info, b"{{{").unwrap();
    assert!(subscription::list(&subscription::read_info(&info).unwrap()).is_empty());
}

#[test]
fn rename_and_delete_move_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("A.mbox");
    let b = dir.path().join("B.mbox");
    let mgr = MailboxManager::new();
    let mb = mgr.open_or_create(&a, Format::Mbox).unwrap();
    mb.append(&msg("a", "x\n"), Flags::empty(), DATE).unwrap();
    let v = mb.uid_validity();
    assert!(matches!(
        mgr.rename(&a, &b, Format::Mbox),
        Err(MailboxError::InUse)
    ));
    drop(mb);
    mgr.rename(&a, &b, Format::Mbox).unwrap();
    assert!(!mbox::index_path(&a).exists());
    let mb = mgr.open(&b, Format::Mbox).unwrap();
    assert_eq!(mb.uid_validity(), v);
    drop(mb);
    mgr.delete(&b, Format::Mbox).unwrap();
    assert!(!b.exists() && !mbox::index_path(&b).exists());
    assert!(matches!(
        mgr.delete(&b, Format::Mbox),
        Err(MailboxError::NotFound)
    ));
    let d = dir.path().join("D.mdir");
    mgr.open_or_create(&d, Format::Mdir)
        .unwrap()
        .append(b"x\n", Flags::empty(), DATE)
        .unwrap();
    mgr.delete(&d, Format::Mdir).unwrap();
    assert!(!d.exists());
}

#[test]
fn expunge_keeps_damaged_legacy_records_apart() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("Old.mbox");
    // The last legacy message has no final line break and no blank line.
    fs::write(
        &p,
        "From a Wed Jan  3 01:05:34 1996\nSubject: 1\n\none\n\nFrom b Wed Jan  3 01:05:34 1996\nSubject: 2\n\ntwo",
    )
    .unwrap();
    let mgr = MailboxManager::new();
    let mb = mgr.open(&p, Format::Mbox).unwrap();
    assert_eq!(mb.read(2).unwrap(), b"Subject: 2\n\ntwo");
    mb.append(&msg("three", "3\n"), Flags::empty(), DATE)
        .unwrap();
    assert_eq!(mb.list().len(), 3);
    assert!(fs::read_to_string(&p)
        .unwrap()
        .contains("\ntwo\n\nFrom <alice@example.com>"));
    mb.set_flags(&[1], Flags::DELETED, SetMode::Add).unwrap();
    assert_eq!(mb.expunge().unwrap(), vec![1]);
    assert_eq!(
        mb.list().iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(mb.read(3).unwrap(), msg("three", "3\n"));
    drop(mb);
    fs::remove_file(mbox::index_path(&p)).unwrap();
    let mb = mgr.open(&p, Format::Mbox).unwrap();
    assert_eq!(mb.list().len(), 2);
    assert_eq!(mb.read(mb.list()[1].uid).unwrap(), msg("three", "3\n"));
}
