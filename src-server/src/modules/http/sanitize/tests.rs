//! Tests of the mail HTML sanitiser over the hostile corpus in `tests/e2e/data/hostile/` (the
//! same messages the browser test delivers), table tests, and a property test that glues hostile
//! fragments together at random. Each output is checked by an oracle written apart from the
//! sanitiser's configuration: it scans the serialised output's tags and attributes.

use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

/// The port the corpus's `@PORT@` placeholder becomes here (nothing listens: nothing is fetched).
const PORT: &str = "9";
/// The cid prefix used by these tests.
const CID: &str = "/cid/";

/// Elements the oracle accepts in output.
const OUT_TAGS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "article",
    "aside",
    "b",
    "bdi",
    "bdo",
    "big",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "data",
    "dd",
    "del",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "font",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "rp",
    "rt",
    "rtc",
    "ruby",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "wbr",
];

/// One start tag of the output: its name and attributes (values unescaped).
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
}

/// Scans html5ever's serialisation (attribute values always in double quotes) for start tags.
/// Panics (the test fails) on anything it does not expect, such as a comment.
fn scan(html: &str) -> Vec<Tag> {
    let b = html.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        i += 1;
        assert!(
            b.get(i) != Some(&b'!'),
            "comment or doctype in output: {html}"
        );
        if b.get(i) == Some(&b'/') {
            while i < b.len() && b[i] != b'>' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b':') {
            i += 1;
        }
        assert!(i > start, "a bare '<' in output: {html}");
        let mut tag = Tag {
            name: html[start..i].to_ascii_lowercase(),
            attrs: Vec::new(),
        };
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                None => break,
                Some(b'>') => {
                    i += 1;
                    break;
                }
                Some(b'/') => {
                    i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name_start = i;
            while i < b.len() && !matches!(b[i], b'=' | b'>' | b' ' | b'/') {
                i += 1;
            }
            let name = html[name_start..i].to_ascii_lowercase();
            let mut value = String::new();
            if b.get(i) == Some(&b'=') {
                assert_eq!(b.get(i + 1), Some(&b'"'), "unquoted attribute in {html}");
                let value_start = i + 2;
                let end = html[value_start..]
                    .find('"')
                    .map(|n| value_start + n)
                    .unwrap_or(b.len());
                value = html[value_start..end]
                    .replace("&quot;", "\"")
                    .replace("&nbsp;", "\u{a0}")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&");
                i = end + 1;
            }
            tag.attrs.push((name, value));
        }
        tags.push(tag);
    }
    tags
}

/// The oracle: what may appear in sanitised output.
fn check(html: &str, allow_remote: bool, what: &str) {
    for tag in scan(html) {
        assert!(
            OUT_TAGS.contains(&tag.name.as_str()),
            "{what}: element <{}> in {html}",
            tag.name
        );
        for (name, value) in &tag.attrs {
            let lower = value.to_ascii_lowercase();
            assert!(!name.starts_with("on"), "{what}: handler {name} in {html}");
            assert!(
                !matches!(
                    name.as_str(),
                    "id" | "name"
                        | "class"
                        | "srcset"
                        | "background"
                        | "action"
                        | "formaction"
                        | "ping"
                        | "poster"
                        | "xlink:href"
                        | "data"
                        | "srcdoc"
                        | "http-equiv"
                ),
                "{what}: attribute {name} in {html}"
            );
            match name.as_str() {
                "href" => assert!(
                    ["http://", "https://", "mailto:"]
                        .iter()
                        .any(|s| lower.starts_with(s)),
                    "{what}: href {value}"
                ),
                "src" => assert!(
                    value.starts_with(CID)
                        || ["png", "gif", "jpeg", "webp"]
                            .iter()
                            .any(|k| lower.starts_with(&format!("data:image/{k}")))
                        || (allow_remote && lower.starts_with("http://127.0.0.1:")),
                    "{what}: src {value}"
                ),
                "style" => {
                    for bad in [
                        "url",
                        "expression",
                        "position",
                        "behavior",
                        "binding",
                        "\\",
                        "image",
                        "z-index",
                    ] {
                        assert!(!lower.contains(bad), "{what}: style {value}");
                    }
                }
                "rel" => assert_eq!(value, "noopener noreferrer", "{what}"),
                "target" => assert_eq!(value, "_blank", "{what}"),
                _ => assert!(
                    !lower.contains("127.0.0.1") && !lower.contains("script:"),
                    "{what}: {name}={value}"
                ),
            }
            if lower.contains("127.0.0.1") {
                assert!(
                    name == "href" || (allow_remote && name == "src"),
                    "{what}: remote URL in {name}={value}"
                );
            }
        }
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/data/hostile")
}

/// Every corpus message: file name and its HTML part, the port placeholder filled in.
fn corpus() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    entries.sort();
    for path in entries {
        let raw = std::fs::read(&path).expect("corpus file");
        let msg = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("corpus message parses");
        let html = msg.body_html(0).expect("corpus message has an HTML part");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, html.replace("@PORT@", PORT)));
    }
    out
}

fn opts(allow_remote: bool) -> SanitizeOptions {
    SanitizeOptions {
        allow_remote,
        cid_url: Some(CID.into()),
    }
}

fn corpus_file(prefix: &str) -> String {
    corpus()
        .into_iter()
        .find(|(name, _)| name.starts_with(prefix))
        .map(|(_, html)| html)
        .expect("corpus file present")
}

#[test]
fn corpus_is_complete() {
    let names: Vec<String> = corpus().into_iter().map(|(n, _)| n).collect();
    assert!(names.len() >= 17, "{names:?}");
}

#[test]
fn corpus_is_neutralised_without_remote_content() {
    for (name, html) in corpus() {
        let out = sanitize(&html, &opts(false));
        check(&out.html, false, &name);
        assert!(
            out.html.contains("after") || !html.contains("after"),
            "{name}: text lost: {}",
            out.html
        );
    }
}

#[test]
fn corpus_is_neutralised_with_remote_content() {
    for (name, html) in corpus() {
        let out = sanitize(&html, &opts(true));
        check(&out.html, true, &name);
        assert!(!out.remote_blocked, "{name}");
    }
}

#[test]
fn remote_images_are_blocked_and_reported() {
    let html = corpus_file("09-");
    let out = sanitize(&html, &opts(false));
    assert!(out.remote_blocked);
    assert!(!out.html.contains("src=\"http"), "{}", out.html);
    assert!(out.html.contains("alt=\"Logo\""), "{}", out.html);
    let out = sanitize(&html, &opts(true));
    assert!(
        out.html.contains("src=\"http://127.0.0.1:9/pixel.gif\""),
        "{}",
        out.html
    );
    assert!(
        out.html
            .contains("src=\"http://127.0.0.1:9/upper-scheme.png\"")
            || out
                .html
                .contains("src=\"HTTP://127.0.0.1:9/upper-scheme.png\""),
        "{}",
        out.html
    );
    // Protocol-relative: relative, so never fetched, not even with remote content on.
    assert!(!out.html.contains("protocol-relative.png"), "{}", out.html);
    for gone in [
        "srcset=",
        "table-bg",
        "td-bg",
        "body-bg",
        "poster",
        "video.mp4",
        "audio.mp3",
        "ping=",
    ] {
        assert!(!out.html.contains(gone), "{gone} in {}", out.html);
    }
}

#[test]
fn text_only_mail_reports_nothing_blocked() {
    let out = sanitize("<p>hi</p>", &opts(false));
    assert_eq!(
        out,
        Sanitized {
            html: "<p>hi</p>".into(),
            remote_blocked: false
        }
    );
}

#[test]
fn links_open_apart_and_safely() {
    let out = sanitize_html(&corpus_file("03-"), &opts(false));
    assert!(
        out.contains(r#"<a href="https://example.test/ok" rel="noopener noreferrer" target="_blank">a fine link</a>"#)
            || out.contains(r#"<a href="https://example.test/ok" target="_blank" rel="noopener noreferrer">a fine link</a>"#),
        "{out}"
    );
    assert_eq!(out.matches("href=").count(), 1, "{out}");
    let out = sanitize_html(&corpus_file("17-"), &opts(false));
    assert!(
        out.contains("href=\"mailto:someone@example.test\""),
        "{out}"
    );
    assert!(
        !out.contains("/Session/steal") && !out.contains("#top") && !out.contains("_self"),
        "{out}"
    );
    assert!(!out.contains("\"opener\""), "{out}");
}

#[test]
fn safe_styles_survive_and_dangerous_ones_go() {
    let out = sanitize_html(&corpus_file("05-"), &opts(true));
    assert!(
        out.contains("style=\"color:blue;font-weight:bold\""),
        "{out}"
    );
    assert!(!out.contains("fixed") && !out.contains("99999"), "{out}");
    assert!(
        out.contains("overlay: enter your password"),
        "the text stays: {out}"
    );
    assert!(!out.contains("import"), "{out}");
}

#[test]
fn cid_images_map_through_the_prefix_and_data_images_stay() {
    let out = sanitize_html(&corpus_file("16-"), &opts(false));
    assert!(out.contains("src=\"/cid/logo%40example%2Etest\""), "{out}");
    assert!(out.contains("src=\"data:image/png;base64,"), "{out}");
    assert!(!out.contains("data:text"), "{out}");
    assert!(!out.contains("href=\"cid:"), "{out}");
    let none = SanitizeOptions {
        allow_remote: false,
        cid_url: None,
    };
    let out = sanitize_html(&corpus_file("16-"), &none);
    assert!(!out.contains("cid:") && !out.contains("/cid/"), "{out}");
}

#[test]
fn cid_cannot_climb_out_of_the_prefix() {
    for id in ["..", "%2e%2e", "../../x", "a/b", "a%2Fb", "?x=1", "#f"] {
        let out = sanitize_html(&format!("<img src=\"cid:{id}\">"), &opts(false));
        for tag in scan(&out) {
            for (name, value) in tag.attrs {
                if name == "src" {
                    let rest = value.strip_prefix(CID).expect("under the prefix");
                    assert!(
                        rest.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"%-_~".contains(&b)),
                        "{id}: {value}"
                    );
                }
            }
        }
    }
}

#[test]
fn svg_data_images_are_refused() {
    let out = sanitize_html(&corpus_file("04-"), &opts(true));
    assert!(!out.contains("svg"), "{out}");
}

#[test]
fn table_examples() {
    let o = opts(false);
    for (input, want) in [
        ("<b>bold</b>", "<b>bold</b>"),
        ("<script>alert(1)</script>x", "x"),
        ("<IMG SRC=x ONERROR=alert(1)>", "<img>"),
        (
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a rel=\"noopener noreferrer\" target=\"_blank\">x</a>",
        ),
        (
            "<font color=red face=Arial>x</font>",
            "<font color=\"red\" face=\"Arial\">x</font>",
        ),
        (
            "<p style=\"color: red; position: fixed\">x</p>",
            "<p style=\"color:red\">x</p>",
        ),
        (
            "<p style=\"color: red; background: url(http://x/)\">x</p>",
            "<p>x</p>",
        ),
        ("<iframe src=http://x/>inside</iframe>after", "after"),
        ("<form action=http://x/><input name=a>text</form>", "text"),
        ("<!-- c --><![CDATA[x]]>y", "y"),
    ] {
        let out = sanitize_html(input, &o);
        let ok = out == want
            || (want.contains("rel=")
                && out
                    == want.replace(
                        " rel=\"noopener noreferrer\" target=\"_blank\"",
                        " target=\"_blank\" rel=\"noopener noreferrer\"",
                    ));
        assert!(ok, "{input} gave {out}, want {want}");
    }
}

#[test]
fn huge_input_is_cut_at_a_character_boundary() {
    let s = "é".repeat(MAX_HTML);
    assert!(cut(&s, MAX_HTML).len() <= MAX_HTML);
    assert_eq!(cut("abc", 2), "ab");
    assert_eq!(cut("é", 1), "");
}

#[test]
fn percent_coding() {
    assert_eq!(percent_encode(b"a.b@c/d"), "a%2Eb%40c%2Fd");
    assert_eq!(percent_decode("a%40b%zz%4"), b"a@b%zz%4".to_vec());
}

#[test]
fn csp_follows_the_remote_switch() {
    let strict = content_security_policy(&opts(false));
    assert!(strict.contains("default-src 'none'") && !strict.contains("http:"));
    assert!(!strict.contains("script-src"));
    assert!(content_security_policy(&opts(true)).contains("img-src 'self' data: http: https:"));
}

/// Pieces of hostile markup, glued in random order by the property test.
const PIECES: &[&str] = &[
    "<",
    ">",
    "/",
    "\"",
    "'",
    "`",
    "=",
    " ",
    "\n",
    "\t",
    "&#",
    "x6A;",
    "&lt;",
    "&quot;",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "script",
    "img",
    "svg",
    "style",
    "a",
    "iframe",
    "form",
    "math",
    "mtext",
    "table",
    "td",
    "noscript",
    "textarea",
    "title",
    "src",
    "href",
    "onerror",
    "onload",
    "style=",
    "url(",
    "expression(",
    "javascript:",
    "java\tscript:",
    "data:",
    "data:image/png,",
    "vbscript:",
    "cid:",
    "http://127.0.0.1:9/x",
    "//127.0.0.1:9/x",
    "srcset",
    "position:fixed",
    "color:red",
    "\\75rl(",
    "@import",
    "alert(1)",
    "base",
    "meta",
    "object",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn random_hostile_glue_stays_safe(idx in proptest::collection::vec(0..PIECES.len(), 0..60), remote in any::<bool>()) {
        let input: String = idx.iter().map(|&i| PIECES[i]).collect();
        let out = sanitize(&input, &opts(remote));
        check(&out.html, remote, &input);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let out = sanitize(&s, &opts(false));
        check(&out.html, false, &s);
    }
}
