//! Reading stored messages for WebMail with mail-parser (RFC 5322, RFC 2045-2049, RFC 2231):
//! list summaries, the parts a message page shows, reply quoting, and safe download names.
//!
//! Security: message bytes are untrusted. mail-parser is bounded and does not panic; every text
//! taken from a message is escaped by the page templates (maud) or goes through the HTML
//! sanitiser. File names from messages and uploads are reduced to one harmless path component
//! by [`safe_filename`] before they reach a `Content-Disposition` header or a MIME part.

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};

/// What the message list shows of one message.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The first From: display name, else its address.
    pub from: String,
    /// The From: address.
    pub from_addr: String,
    /// The To: addresses, comma-separated.
    pub to: String,
    /// The Subject (decoded).
    pub subject: String,
    /// The Date: header as Unix seconds, when it parses.
    pub date: Option<i64>,
    /// Whether the message has attachments.
    pub attachments: bool,
}

/// Parses a message, or `None` when it is not a message at all.
pub fn parse(bytes: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(bytes)
}

/// The list summary of a message.
pub fn summary(bytes: &[u8]) -> Summary {
    let Some(m) = parse(bytes) else {
        return Summary::default();
    };
    let first = m.from().and_then(Address::first);
    Summary {
        from: first
            .and_then(|a| a.name().or(a.address()))
            .unwrap_or("")
            .to_string(),
        from_addr: first.and_then(|a| a.address()).unwrap_or("").to_string(),
        to: addresses(m.to()).join(", "),
        subject: m.subject().unwrap_or("").to_string(),
        date: m.date().map(|d| d.to_timestamp()),
        attachments: m.attachment_count() > 0,
    }
}

/// The addresses of a header, as `Name <addr>` or `addr`.
pub fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                let addr = x.address()?;
                Some(match x.name() {
                    Some(n) if !n.is_empty() => format!("{} <{addr}>", quote_name(n)),
                    _ => addr.to_string(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

/// A display name as an RFC 5322 phrase: quoted when it has specials.
fn quote_name(n: &str) -> String {
    if n.chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '.' || c == '\'')
    {
        n.to_string()
    } else {
        format!("\"{}\"", n.replace(['\\', '"'], ""))
    }
}

/// Parses what a user typed in To/Cc/Bcc (`a@b, "Name" <c@d>; e@f`) into bare addresses, with
/// mail-parser's RFC 5322 address-list grammar. Entries without `@` are returned too, so the
/// caller can refuse them by name.
pub fn parse_address_list(text: &str) -> Vec<String> {
    let clean: String = text
        .chars()
        .map(|c| {
            if c == '\r' || c == '\n' || c == ';' {
                ','
            } else {
                c
            }
        })
        .collect();
    if clean.trim().is_empty() {
        return Vec::new();
    }
    let header = format!("To: {clean}\r\n\r\n");
    let Some(m) = parse(header.as_bytes()) else {
        return vec![clean];
    };
    // An entry with no address (a bare phrase) comes back as typed, for the caller to refuse.
    m.to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address().or(x.name()))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_else(|| vec![clean])
}

/// Whether `a` is a plain `local@domain` address as it may go into an envelope and a header:
/// one `@`, both sides non-empty, no spaces, controls, quotes or RFC 5322 specials.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && a.len() <= 320
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c))
        && !local.contains('@')
}

/// The last path component of an untrusted file name, with control characters, separators,
/// quotes and leading dots removed, at most 100 characters; `attachment` when nothing is left.
pub fn safe_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '"' | ':' | '<' | '>' | '|' | '?' | '*')
                // Bidirectional overrides and invisible marks could disguise the extension.
                && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .take(100)
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        "attachment".to_string()
    } else {
        trimmed.to_string()
    }
}

/// `Content-Disposition` for a download: the ASCII fallback and the RFC 6266 / RFC 5987
/// UTF-8 name.
pub fn content_disposition(kind: &str, name: &str) -> String {
    let name = safe_filename(name);
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii() && c != '%' { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// `type/subtype` of a part, lowercased.
pub fn mime_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match &ct.c_subtype {
            Some(s) => format!("{}/{}", ct.c_type, s).to_ascii_lowercase(),
            None => ct.c_type.to_ascii_lowercase(),
        },
        None => match part.body {
            PartType::Text(_) => "text/plain".into(),
            PartType::Html(_) => "text/html".into(),
            PartType::Message(_) => "message/rfc822".into(),
            _ => "application/octet-stream".into(),
        },
    }
}

/// Image types a browser may show inline from a message; everything else is a download.
pub fn is_inline_image(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/gif" | "image/jpeg" | "image/jpg" | "image/webp"
    )
}

/// One attachment of a message page.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Index of the part in the parsed message (the `Part` URL parameter).
    pub part: u32,
    /// Its (cleaned) name.
    pub name: String,
    /// Its type.
    pub mime: String,
    /// Decoded size in bytes.
    pub size: usize,
}

/// The attachments of a message.
pub fn attachments(m: &Message<'_>) -> Vec<Attachment> {
    m.attachments
        .iter()
        .filter_map(|&id| {
            let p = m.parts.get(id as usize)?;
            let mime = mime_type(p);
            let name = p
                .attachment_name()
                .map(str::to_string)
                .or_else(|| match &p.body {
                    PartType::Message(inner) => {
                        Some(format!("{}.eml", inner.subject().unwrap_or("message")))
                    }
                    _ => None,
                })
                .unwrap_or_else(|| format!("part{id}"));
            Some(Attachment {
                part: id,
                name: safe_filename(&name),
                mime,
                size: p.contents().len(),
            })
        })
        .collect()
}

/// The `Content-ID` → part index map for `cid:` references (RFC 2392).
pub fn content_ids(m: &Message<'_>) -> Vec<(String, u32)> {
    m.parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let cid = p.content_id()?;
            let cid = cid.trim().trim_start_matches('<').trim_end_matches('>');
            Some((cid.to_string(), u32::try_from(i).ok()?))
        })
        .collect()
}

/// The plain text of a message for quoting and searching: its first text body (mail-parser
/// turns an HTML-only body into text).
pub fn plain_text(m: &Message<'_>) -> String {
    m.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}

/// `Re: subject` (no second `Re:`).
pub fn reply_subject(s: &str) -> String {
    if s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:")) {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

/// `Fwd: subject`.
pub fn forward_subject(s: &str) -> String {
    format!("Fwd: {s}")
}

/// The quoted original for a reply (guide.txt:20861-20897: a reply header, then each line
/// with the quoting prefix).
pub fn quote(m: &Message<'_>) -> String {
    let from = addresses(m.from()).join(", ");
    let date = m.date().map(|d| d.to_rfc822()).unwrap_or_default();
    let mut out = format!("\n\nOn {date}, {from} wrote:\n");
    for line in plain_text(m).lines().take(5000) {
        out.push_str("> ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subject_on_any_text() {
        assert_eq!(reply_subject("Привет"), "Re: Привет");
        assert_eq!(reply_subject("a€"), "Re: a€");
        assert_eq!(reply_subject("RE: x"), "RE: x");
        assert_eq!(reply_subject("Re"), "Re: Re");
    }

    #[test]
    fn filenames_cannot_traverse() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_filename(".."), "attachment");
        assert_eq!(safe_filename("/"), "attachment");
        assert_eq!(safe_filename(".hidden"), "hidden");
        assert_eq!(safe_filename("a\"b\r\nc.txt"), "abc.txt");
        assert_eq!(safe_filename("résumé.pdf"), "résumé.pdf");
        assert_eq!(safe_filename("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
    }

    #[test]
    fn disposition_is_one_safe_header() {
        let d = content_disposition("attachment", "../x\"y;\r\nz é.txt");
        assert!(!d.contains(['\r', '\n']));
        assert_eq!(
            d,
            "attachment; filename=\"xy;z _.txt\"; filename*=UTF-8''xy%3Bz%20%C3%A9.txt"
        );
    }

    #[test]
    fn address_lists() {
        assert_eq!(
            parse_address_list("a@b.test, \"X, Y\" <c@d.test>; e@f.test\n"),
            vec!["a@b.test", "c@d.test", "e@f.test"]
        );
        assert!(parse_address_list("  ").is_empty());
        assert_eq!(parse_address_list("not an address"), vec!["not an address"]);
        assert!(valid_address("a.b+c@x.test"));
        for bad in [
            "",
            "a",
            "@x",
            "a@",
            "a b@x",
            "a@b>c",
            "a@b@c",
            "a@b\r\nX: y",
            "\"a\"@x",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
    }

    #[test]
    fn summary_and_attachments() {
        let msg = b"From: Ann <ann@x.test>\r\nTo: bob@y.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\
Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b\r\nContent-Type: application/pdf; name=\"../r.pdf\"\r\nContent-Disposition: attachment\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n";
        let s = summary(msg);
        assert_eq!(s.from, "Ann");
        assert_eq!(s.subject, "café");
        assert!(s.attachments);
        let m = parse(msg).unwrap();
        let a = attachments(&m);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].name, "r.pdf");
        assert_eq!(a[0].size, 3);
        assert!(quote(&m).contains("> hello"));
    }

    proptest::proptest! {
        #[test]
        fn safe_filenames_are_one_harmless_component(name in "\\PC{0,300}") {
            let f = safe_filename(&name);
            proptest::prop_assert!(!f.is_empty() && f.chars().count() <= 100);
            proptest::prop_assert!(!f.contains(['/', '\\', '"']) && !f.starts_with('.'));
            proptest::prop_assert!(!f.chars().any(char::is_control));
            let d = content_disposition("attachment", &name);
            proptest::prop_assert!(d.is_ascii() && !d.contains(['\r', '\n']));
        }

        #[test]
        fn any_message_bytes_summarise_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let _ = summary(&bytes);
            if let Some(m) = parse(&bytes) {
                let _ = attachments(&m);
                let _ = content_ids(&m);
                let _ = quote(&m);
            }
        }
    }
}
