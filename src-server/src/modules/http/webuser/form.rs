//! Posted forms: `application/x-www-form-urlencoded` (WHATWG URL §5) and `multipart/form-data`
//! (RFC 7578) for the Compose page's attachments.
//!
//! Security: the body is untrusted and already capped by the router's body limit. Multipart
//! bodies are framed by mail-parser (a proven MIME parser, bounded and panic-free on bad input)
//! after a synthetic `Content-Type` header; field and file names are only ever looked up or, for
//! file names, cleaned by [`super::mime::safe_filename`] before use.

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Most fields taken from one form.
const MAX_FIELDS: usize = 2000;

/// One uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The name the browser gave (untrusted; clean before use).
    pub filename: String,
    /// Its declared type, `application/octet-stream` when none.
    pub content_type: String,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A posted form: text fields in order, and files.
#[derive(Debug, Default)]
pub struct Posted {
    /// Text fields, in the order sent (a name may repeat, e.g. checkboxes).
    pub fields: Vec<(String, String)>,
    /// Uploaded files with a name and content.
    pub files: Vec<Upload>,
}

impl Posted {
    /// The first value of field `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether field `name` was sent (a pressed submit button).
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }

    /// Every value of field `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Parses a body by its `Content-Type`.
pub fn parse(content_type: &str, body: &[u8]) -> Posted {
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("multipart/form-data") {
        multipart(content_type, body)
    } else {
        Posted {
            fields: urlencoded(body),
            files: Vec::new(),
        }
    }
}

/// `a=1&b=x+y%21` as pairs (`+` is a space; bad escapes are kept as they are).
pub fn urlencoded(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .take(MAX_FIELDS)
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `multipart/form-data` body, read as a MIME entity.
fn multipart(content_type: &str, body: &[u8]) -> Posted {
    let mut entity = Vec::with_capacity(body.len() + content_type.len() + 32);
    entity.extend_from_slice(b"Content-Type: ");
    // The header value comes from the client: keep it on one line.
    entity.extend(content_type.bytes().filter(|&b| b != b'\r' && b != b'\n'));
    entity.extend_from_slice(b"\r\n\r\n");
    entity.extend_from_slice(body);
    let mut posted = Posted::default();
    let Some(msg) = MessageParser::default().parse(&entity) else {
        return posted;
    };
    let Some(PartType::Multipart(ids)) = msg.parts.first().map(|p| &p.body) else {
        return posted;
    };
    for &id in ids.iter().take(MAX_FIELDS) {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        let Some(cd) = part.content_disposition() else {
            continue;
        };
        let Some(name) = cd.attribute("name") else {
            continue;
        };
        match cd.attribute("filename") {
            Some(filename) => {
                let data = part.contents().to_vec();
                if filename.is_empty() && data.is_empty() {
                    continue; // an empty file field
                }
                let content_type = part
                    .content_type()
                    .map(|ct| match &ct.c_subtype {
                        Some(s) => format!("{}/{}", ct.c_type, s),
                        None => ct.c_type.to_string(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".into());
                posted.files.push(Upload {
                    filename: filename.to_string(),
                    content_type,
                    data,
                });
            }
            None => {
                let value = match &part.body {
                    PartType::Text(t) | PartType::Html(t) => t.to_string(),
                    _ => String::from_utf8_lossy(part.contents()).into_owned(),
                };
                posted.fields.push((name.to_string(), value));
            }
        }
    }
    posted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_pairs() {
        let f = urlencoded(b"a=1&b=x+y%21&c&d=%zz&e=%4");
        assert_eq!(
            f,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y!".into()),
                ("c".into(), "".into()),
                ("d".into(), "%zz".into()),
                ("e".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn multipart_fields_and_files() {
        let body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"To\"\r\n\r\nbob@example.test\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"Body\"\r\n\r\nline 1\r\nline 2\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"Attachment\"; filename=\"../../a.bin\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\xff\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"Attachment\"; filename=\"\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\r\n--XyZ--\r\n";
        let p = parse("multipart/form-data; boundary=XyZ", body);
        assert_eq!(p.get("To"), "bob@example.test");
        assert_eq!(p.get("Body"), "line 1\r\nline 2");
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].filename, "../../a.bin");
        assert_eq!(p.files[0].data, vec![0, 1, 2, 0xff]);
    }

    #[test]
    fn garbage_is_empty_not_a_panic() {
        for body in [&b""[..], b"--", b"\xff\xfe", b"--a\r\n\r\n--a--"] {
            let _ = parse("multipart/form-data; boundary=a", body);
            let _ = parse("application/x-www-form-urlencoded", body);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_body_parses_without_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            boundary in "[a-zA-Z0-9'()+_,./:=?-]{1,70}",
        ) {
            let _ = parse(&format!("multipart/form-data; boundary={boundary}"), &body);
            let _ = parse("application/x-www-form-urlencoded", &body);
        }
    }
}
