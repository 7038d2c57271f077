//! Codec tables: RFC 5321 / 3461 / 1870 examples, both line ends, chunked feeding.

use super::*;

fn cmd(s: &str) -> Result<Command, CommandError> {
    command(s.as_bytes(), Quirks::default())
}

#[test]
fn commands_from_the_rfcs() {
    let table: Vec<(&str, Command)> = vec![
        ("EHLO bar.com", Command::Ehlo("bar.com".into())),
        ("HELO [192.0.2.1]", Command::Helo("[192.0.2.1]".into())),
        ("ehlo bar.com extra", Command::Ehlo("bar.com".into())),
        (
            "MAIL FROM:<Smith@bar.com>",
            Command::Mail("Smith@bar.com".into(), MailParams::default()),
        ),
        (
            "MAIL FROM:<>",
            Command::Mail(String::new(), MailParams::default()),
        ),
        (
            "mail from:<a@b.example> SIZE=1000 BODY=8BITMIME",
            Command::Mail(
                "a@b.example".into(),
                MailParams {
                    size: Some(1000),
                    body: Some(Body::EightBitMime),
                    ..MailParams::default()
                },
            ),
        ),
        // RFC 3461 §6 example.
        (
            "MAIL FROM:<Alice@Pure-Heart.ORG> RET=HDRS ENVID=QQ314159",
            Command::Mail(
                "Alice@Pure-Heart.ORG".into(),
                MailParams {
                    ret: Some(Ret::Headers),
                    envid: Some("QQ314159".into()),
                    ..MailParams::default()
                },
            ),
        ),
        (
            "RCPT TO:<Jones@foo.com>",
            Command::Rcpt("Jones@foo.com".into(), RcptParams::default()),
        ),
        (
            "RCPT TO:<Bob@Big-Box.COM> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@Big-Box.COM",
            Command::Rcpt(
                "Bob@Big-Box.COM".into(),
                RcptParams {
                    notify: Notify {
                        success: true,
                        failure: true,
                        ..Notify::default()
                    },
                    orcpt: Some("rfc822;Bob@Big-Box.COM".into()),
                },
            ),
        ),
        (
            "RCPT TO:<x@y.example> ORCPT=rfc822;a+2Bb@c",
            Command::Rcpt(
                "x@y.example".into(),
                RcptParams {
                    orcpt: Some("rfc822;a+b@c".into()),
                    ..RcptParams::default()
                },
            ),
        ),
        (
            "RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>",
            Command::Rcpt("userc@d.bar.org".into(), RcptParams::default()),
        ),
        (
            "RCPT TO:<Postmaster>",
            Command::Rcpt("Postmaster".into(), RcptParams::default()),
        ),
        (
            "RCPT TO:<\"John Q. Public\"@example.com>",
            Command::Rcpt(
                "\"John Q. Public\"@example.com".into(),
                RcptParams::default(),
            ),
        ),
        (
            "MAIL FROM: <a@b.c>",
            Command::Mail("a@b.c".into(), MailParams::default()),
        ),
        (
            "MAIL FROM:a@b.c",
            Command::Mail("a@b.c".into(), MailParams::default()),
        ),
        ("DATA", Command::Data),
        ("rset", Command::Rset),
        ("NOOP hello", Command::Noop),
        ("QUIT", Command::Quit),
        ("VRFY Smith", Command::Vrfy),
        ("HELP", Command::Help),
        ("STARTTLS", Command::StartTls),
        ("AUTH PLAIN", Command::Auth("PLAIN".into(), None)),
        (
            "auth plain AHRlc3QAdGVzdA==",
            Command::Auth("PLAIN".into(), Some(b"AHRlc3QAdGVzdA==".to_vec())),
        ),
        ("ETRN @example.com", Command::Etrn("@example.com".into())),
        (
            "ATRN a.example,b.example",
            Command::Atrn("a.example,b.example".into()),
        ),
        ("ATRN", Command::Atrn(String::new())),
        ("TURN", Command::Turn),
    ];
    for (line, want) in table {
        assert_eq!(cmd(line), Ok(want), "{line}");
    }
}

#[test]
fn command_errors() {
    let table: Vec<(&str, &str)> = vec![
        ("FOO", "500 5.5.1"),
        ("", "500 5.5.1"),
        ("EHLO", "501 5.5.4"),
        ("DATA now", "501 5.5.4"),
        ("MAIL TO:<a@b>", "501 5.5.4"),
        ("MAIL FROM:<a@b", "501 5.1.7"),
        ("MAIL FROM:<ab>", "501 5.1.7"),
        ("RCPT TO:<>", "501 5.1.3"),
        ("RCPT TO:<a b@c>", "501 5.1.3"),
        ("RCPT TO:<a@b..c>", "501 5.1.3"),
        ("RCPT TO:<a@[999.1.1.1]>", "501 5.1.3"),
        ("MAIL FROM:<a@b> SIZE=big", "555 5.5.4"),
        ("MAIL FROM:<a@b> FOO=1", "555 5.5.4"),
        ("MAIL FROM:<a@b> SIZE=1 SIZE=2", "555 5.5.4"),
        ("RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS", "555 5.5.4"),
        ("RCPT TO:<a@b> ORCPT=noaddrtype", "555 5.5.4"),
        ("AUTH", "501 5.5.4"),
        ("ETRN", "501 5.5.4"),
    ];
    for (line, want) in table {
        let mail = line.to_ascii_uppercase().starts_with("MAIL");
        let got = match cmd(line) {
            Ok(c) => panic!("{line}: parsed as {c:?}"),
            Err(e) => String::from_utf8(e.reply(mail)).unwrap(),
        };
        assert!(got.starts_with(want), "{line}: want {want}, got {got}");
    }
    let long_path = format!("RCPT TO:<{}@b.example>", "a".repeat(300));
    assert!(matches!(cmd(&long_path), Err(CommandError::BadAddress(_))));
}

#[test]
fn replies() {
    assert_eq!(reply(250, "2.1.0", "OK"), b"250 2.1.0 OK\r\n");
    assert_eq!(reply(220, "", "ready"), b"220 ready\r\n");
    assert_eq!(
        reply(250, "", "host\nSIZE 10\nPIPELINING"),
        b"250-host\r\n250-SIZE 10\r\n250 PIPELINING\r\n"
    );
    assert_eq!(printable("a\r\nb\u{7}"), "a??b?");
}

/// Feeds `input` to a fresh buffer in pieces of `n` bytes, collecting command lines.
fn lines_chunked(input: &[u8], n: usize, max: usize) -> Vec<Line> {
    let mut inp = Input::new();
    let mut out = Vec::new();
    for piece in input.chunks(n) {
        inp.push(piece);
        while let Some(l) = inp.line(max) {
            out.push(l);
        }
    }
    out
}

#[test]
fn lines_both_endings_any_chunking() {
    for eol in ["\r\n", "\n"] {
        let text = format!(
            "EHLO a{eol}MAIL FROM:<x@y>{eol}{}{eol}QUIT{eol}",
            "x".repeat(40)
        );
        for n in 1..=64 {
            let got = lines_chunked(text.as_bytes(), n, 20);
            assert_eq!(
                got,
                vec![
                    Line::Text(b"EHLO a".to_vec()),
                    Line::Text(b"MAIL FROM:<x@y>".to_vec()),
                    Line::TooLong,
                    Line::Text(b"QUIT".to_vec()),
                ],
                "eol {eol:?} chunk {n}"
            );
        }
    }
}

fn data_chunked(input: &[u8], n: usize, max: usize) -> (Option<DataEnd>, Vec<u8>, Vec<u8>) {
    let mut inp = Input::new();
    let mut d = DataReader::new(max);
    let mut end = None;
    for piece in input.chunks(n) {
        inp.push(piece);
        if end.is_none() {
            end = inp.data(&mut d);
        }
    }
    let mut rest = Vec::new();
    while let Some(Line::Text(l)) = inp.line(MAX_LINE) {
        rest.extend_from_slice(&l);
    }
    (end, d.message, rest)
}

#[test]
fn data_unstuffing_both_endings_any_chunking() {
    for eol in ["\r\n", "\n"] {
        let input = format!("Subject: t{eol}{eol}..leading dot{eol}.{eol}QUIT{eol}");
        for n in 1..=512 {
            let (end, msg, rest) = data_chunked(input.as_bytes(), n, 1000);
            assert_eq!(end, Some(DataEnd::Complete), "chunk {n}");
            assert_eq!(msg, b"Subject: t\r\n\r\n.leading dot\r\n", "chunk {n}");
            assert_eq!(rest, b"QUIT");
        }
    }
}

#[test]
fn data_over_the_cap_is_read_to_the_end_and_refused() {
    let mut input = Vec::new();
    for _ in 0..100 {
        input.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    input.extend_from_slice(&vec![b'y'; 5000]);
    input.extend_from_slice(b".\r\n.\r\nNOOP\r\n");
    for n in [1, 7, 100, 4096] {
        let (end, msg, rest) = data_chunked(&input, n, 500);
        assert_eq!(end, Some(DataEnd::TooLarge), "chunk {n}");
        assert!(msg.is_empty());
        assert_eq!(rest, b"NOOP", "chunk {n}");
    }
}

#[test]
fn data_exactly_at_the_cap_is_accepted() {
    let (end, msg, _) = data_chunked(b"abc\r\n.\r\n", 3, 5);
    assert_eq!(end, Some(DataEnd::Complete));
    assert_eq!(msg, b"abc\r\n");
    let (end, _, _) = data_chunked(b"abcd\r\n.\r\n", 3, 5);
    assert_eq!(end, Some(DataEnd::TooLarge));
}

proptest::proptest! {
    /// Any bytes: the parser answers without panicking, and a parsed command's path fits the caps.
    #[test]
    fn command_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..1200)) {
        if let Ok(Command::Mail(p, _) | Command::Rcpt(p, _)) = command(&line, Quirks::default()) {
            proptest::prop_assert!(p.len() <= MAX_PATH);
        }
    }

    /// Any input split anywhere frames into the same lines and the same DATA.
    #[test]
    fn framing_is_independent_of_chunking(
        input in proptest::collection::vec(
            proptest::sample::select(vec![b'a', b'.', b'\r', b'\n', b' ']), 0..600),
        n in 1usize..64,
    ) {
        proptest::prop_assert_eq!(lines_chunked(&input, n, 40), lines_chunked(&input, input.len().max(1), 40));
        let whole = data_chunked(&input, input.len().max(1), 200);
        proptest::prop_assert_eq!(data_chunked(&input, n, 200), whole);
    }
}
