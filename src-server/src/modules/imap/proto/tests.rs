//! Codec tables (RFC 3501 examples), both line endings, chunked feeding, bounds.

use super::frame::{Event, Framer, MAX_LINE};
use super::*;

fn parse(s: &str) -> Command {
    parse_command(s.as_bytes()).unwrap().command
}

fn frame_all(input: &[u8], chunk: usize) -> Vec<Event> {
    let mut f = Framer::new(1024);
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        f.feed(piece);
        while let Some(e) = f.poll() {
            out.push(e);
        }
    }
    out
}

#[test]
fn rfc3501_examples() {
    assert_eq!(parse("a001 CAPABILITY"), Command::Capability);
    assert_eq!(
        parse("a001 LOGIN SMITH SESAME"),
        Command::Login("SMITH".into(), b"SESAME".to_vec())
    );
    assert_eq!(
        parse("a002 LOGIN \"fred foo\" \"a\\\"b\""),
        Command::Login("fred foo".into(), b"a\"b".to_vec())
    );
    assert_eq!(
        parse("A142 SELECT inbox"),
        Command::Select("INBOX".into(), false, false)
    );
    assert_eq!(
        parse("A932 EXAMINE blurdybloop"),
        Command::Select("blurdybloop".into(), true, false)
    );
    assert_eq!(
        parse("A682 LIST \"\" *"),
        Command::List(String::new(), "*".into(), false)
    );
    assert_eq!(
        parse("A042 STATUS blurdybloop (UIDNEXT MESSAGES)"),
        Command::Status(
            "blurdybloop".into(),
            vec![StatusItem::UidNext, StatusItem::Messages]
        )
    );
    assert_eq!(
        parse("A003 STORE 2:4 +FLAGS (\\Deleted)"),
        Command::Store(
            false,
            SeqSet(vec![(SeqNum::Num(2), SeqNum::Num(4))]),
            StoreMode::Add,
            false,
            vec![Flag::System(Flags::DELETED)],
            None
        )
    );
    assert_eq!(
        parse("A999 UID FETCH 4827313:* FLAGS"),
        Command::Fetch(
            true,
            SeqSet(vec![(SeqNum::Num(4827313), SeqNum::Last)]),
            vec![FetchAtt::Uid, FetchAtt::Flags],
            None
        )
    );
    assert!(matches!(
        parse("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])"),
        Command::Fetch(false, _, ref items, None) if items.len() == 2
    ));
    assert!(matches!(
        parse("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
        Command::Search(false, SearchKey::And(ref k)) if k.len() == 3
    ));
    assert!(matches!(
        parse("A283 SEARCH CHARSET UTF-8 TEXT {3}\r\nXXX"),
        Command::Search(false, SearchKey::And(ref k)) if k == &vec![SearchKey::Text(b"XXX".to_vec())]
    ));
    assert_eq!(
        parse("A003 APPEND saved-messages (\\Seen) {5}\r\nhello"),
        Command::Append(
            "saved-messages".into(),
            vec![Flag::System(Flags::SEEN)],
            None,
            b"hello".to_vec()
        )
    );
    assert!(matches!(
        parse("A004 APPEND x \" 7-Feb-1994 21:52:25 -0800\" {1+}\r\nx"),
        Command::Append(_, _, Some(t), _) if t == 760686745
    ));
    assert_eq!(
        parse("t AUTHENTICATE PLAIN AGpvZQBwdw=="),
        Command::Authenticate("PLAIN".into(), Some(b"AGpvZQBwdw==".to_vec()))
    );
    assert_eq!(
        parse("t UID EXPUNGE 3"),
        Command::Expunge(Some(SeqSet(vec![(SeqNum::Num(3), SeqNum::Num(3))])))
    );
    assert_eq!(parse("t ID (\"name\" \"x\")"), Command::Id);
    assert!(matches!(
        parse("t UID MOVE 1:2 Trash"),
        Command::Copy(true, _, _, true)
    ));
}

#[test]
fn partial_and_sections() {
    match parse("t FETCH 1 BODY.PEEK[1.2.MIME]<10.20>") {
        Command::Fetch(_, _, items, _) => assert_eq!(
            items,
            vec![FetchAtt::Section {
                section: Section {
                    part: vec![1, 2],
                    text: SectionText::Mime
                },
                partial: Some((10, 20)),
                peek: true
            }]
        ),
        c => panic!("{c:?}"),
    }
}

#[test]
fn bad_commands_keep_the_tag() {
    for bad in [
        "t FROB",
        "t FETCH 0 FLAGS",
        "t FETCH 1 (FLAGS",
        "t LOGIN a",
        "t SELECT \"unterminated",
        "t APPEND x {10}\r\nshort",
        "t SEARCH OR ALL",
        "t STORE 1 FLAGZ (\\Seen)",
        "t NOOP extra",
    ] {
        let e = parse_command(bad.as_bytes()).unwrap_err();
        assert_eq!(e.tag.as_deref(), Some("t"), "{bad}");
    }
    assert_eq!(parse_command(b"").unwrap_err().tag, None);
    let deep = format!("t SEARCH {}ALL{}", "(".repeat(40), ")".repeat(40));
    assert!(parse_command(deep.as_bytes()).is_err());
    let long = format!("t SEARCH {}", "NOT ".repeat(40) + "ALL");
    assert!(parse_command(long.as_bytes()).is_err());
}

#[test]
fn framing_both_line_ends_and_chunks() {
    let input = b"a LOGIN {3}\r\nbob {2+}\r\npw\r\nb NOOP\nc LOGOUT\r\n";
    let want = vec![
        Event::Continue,
        Event::Command(b"a LOGIN {3}\r\nbob {2+}\r\npw".to_vec()),
        Event::Command(b"b NOOP".to_vec()),
        Event::Command(b"c LOGOUT".to_vec()),
    ];
    for chunk in 1..=64 {
        assert_eq!(frame_all(input, chunk), want, "chunk {chunk}");
    }
    assert_eq!(
        parse_command(b"a LOGIN {3}\r\nbob {2+}\r\npw")
            .unwrap()
            .command,
        Command::Login("bob".into(), b"pw".to_vec())
    );
}

#[test]
fn framing_bounds() {
    let mut long = vec![b'a'; MAX_LINE + 10];
    long.extend_from_slice(b"\r\nb NOOP\r\n");
    for chunk in [1, 7, 512, 100_000] {
        assert_eq!(
            frame_all(&long, chunk),
            vec![Event::TooLong, Event::Command(b"b NOOP".to_vec())]
        );
    }
    assert_eq!(
        frame_all(b"t APPEND x {5000}\r\nt2 NOOP\r\n", 3),
        vec![
            Event::LiteralTooBig(b"t".to_vec()),
            Event::Command(b"t2 NOOP".to_vec())
        ]
    );
    assert_eq!(frame_all(b"t APPEND x {5000+}\r\n", 3), vec![Event::Fatal]);
}

#[test]
fn wildcards() {
    use crate::modules::imap::cmd::wildcard;
    assert!(wildcard(b"*", b"a/b"));
    assert!(wildcard(b"%", b"a"));
    assert!(!wildcard(b"%", b"a/b"));
    assert!(wildcard(b"a/%", b"a/b"));
    assert!(wildcard(b"INBOX", b"INBOX"));
    assert!(!wildcard(b"IN", b"INBOX"));
    assert!(wildcard(b"*b", b"a/b"));
    assert!(wildcard(b"a%c", b"abc"));
    assert!(!wildcard(b"a%c", b"ab/c"));
}

#[test]
fn keywords_and_condstore_syntax() {
    assert_eq!(
        parse("t SELECT INBOX (CONDSTORE)"),
        Command::Select("INBOX".into(), false, true)
    );
    assert_eq!(
        parse("t STORE 1 (UNCHANGEDSINCE 12) +FLAGS.SILENT ($Junk \\Seen)"),
        Command::Store(
            false,
            SeqSet(vec![(SeqNum::Num(1), SeqNum::Num(1))]),
            StoreMode::Add,
            true,
            vec![Flag::Keyword("$Junk".into()), Flag::System(Flags::SEEN)],
            Some(12)
        )
    );
    // RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ.
    assert_eq!(
        parse("t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 7)"),
        Command::Fetch(
            true,
            SeqSet(vec![(SeqNum::Num(1), SeqNum::Last)]),
            vec![FetchAtt::Uid, FetchAtt::Flags, FetchAtt::ModSeq],
            Some(7)
        )
    );
    assert!(matches!(
        parse("t SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 KEYWORD Work"),
        Command::Search(false, SearchKey::And(ref k))
            if k == &vec![SearchKey::ModSeq(620162338), SearchKey::Keyword("Work".into(), true)]
    ));
    assert_eq!(
        parse("t STATUS x (HIGHESTMODSEQ)"),
        Command::Status("x".into(), vec![StatusItem::HighestModSeq])
    );
    for bad in [
        "t STORE 1 +FLAGS (\\Bogus)",
        "t STORE 1 +FLAGS (a]b)",
        "t SELECT INBOX (QRESYNC)",
        "t FETCH 1 FLAGS (CHANGEDSINCE x)",
        "t STORE 1 (UNCHANGEDSINCE) FLAGS x",
    ] {
        assert!(parse_command(bad.as_bytes()).is_err(), "{bad}");
    }
}
