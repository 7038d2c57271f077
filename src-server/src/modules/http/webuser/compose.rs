//! Composing: new messages, Reply, Reply All, Forward, drafts, attachments (guide.txt:20789-20973;
//! spec E §6.4).
//!
//! A sent message is built with mail-builder (RFC 5322 headers, RFC 2047 encoded words, base64
//! attachments, RFC 2231 names), gets a `Received:` field with the user's address (History
//! 25206), is submitted through the Enqueuer as the account (Source `USER`; the Enqueuer fsyncs
//! it before "sent" is shown), and is then appended to `Sent` with `\Seen` (History 23667,
//! 25066). Drafts are appended to `Drafts` with `\Draft \Seen`; sending or re-saving a draft
//! removes the old one. Reply (guide.txt:20861-20897): To is the original Reply-To, else From;
//! Reply All adds the original To and Cc (less the user). Forward (20899-20906) attaches the
//! original unmodified as `message/rfc822`. Attachments of a draft or of the original are
//! carried by reference (`Keep`), so nothing is re-uploaded.
//!
//! Security: uploads are capped by the body limit; their names are cleaned to one path
//! component, their declared type reduced to `type/subtype` tokens. Every address must have an
//! `@`; header values are single lines (mail-builder encodes them).

use axum::http::StatusCode;
use axum::response::Response;
use mail_builder::headers::address::Address as BAddress;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;
use maud::html;

use super::form::{Posted, Upload};
use super::mail::{clone_user, open, open_or_create, remove};
use super::mime::{self, safe_filename};
use super::{blocking, enc, error_page, page, param, see_other, User, Web, MODULE};
use crate::kernel::log::Level;
use crate::kernel::mail::{NewRecipient, Source, Submission};
use crate::mailbox::{Flags, SetMode};
use crate::modules::http::html::{csrf_field, message as notice};

/// The Sent mailbox.
pub const SENT: &str = "Sent";
/// The Drafts mailbox.
pub const DRAFTS: &str = "Drafts";
/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 100;

/// What the Compose form holds.
#[derive(Default, Clone)]
struct Draft {
    to: String,
    cc: String,
    bcc: String,
    subject: String,
    body: String,
    /// `Mailbox/UID` whose attachments go along (a draft being edited).
    keep: String,
    /// `Mailbox/UID` attached whole as `message/rfc822` (forward).
    forward: String,
    /// `Mailbox/UID` this replies to (In-Reply-To, References, `\Answered`).
    reply: String,
    /// `Mailbox/UID` of the draft this replaces.
    draft: String,
}

fn split_ref(r: &str) -> Option<(&str, u32)> {
    let (m, u) = r.rsplit_once('/')?;
    Some((m, u.parse().ok()?))
}

/// `Compose.wssp` (GET): an empty form, or one prepared from a message.
pub async fn get(web: &Web, user: &User, q: &[(String, String)]) -> Response {
    let op = param(q, "Op");
    let mailbox = match param(q, "Mailbox") {
        "" => "INBOX",
        m => m,
    };
    let mut d = Draft {
        to: param(q, "To").to_string(),
        ..Draft::default()
    };
    if !op.is_empty() {
        let Ok(uid) = param(q, "UID").parse::<u32>() else {
            return error_page(StatusCode::BAD_REQUEST, "No such message.");
        };
        let (w, u, m) = (web.clone(), clone_user(user), mailbox.to_string());
        let bytes =
            match blocking(move || open(&w, &u, &m)?.read(uid).map_err(|e| e.to_string())).await {
                Ok(b) => b,
                Err(e) => return error_page(StatusCode::NOT_FOUND, &e),
            };
        let Some(msg) = mime::parse(&bytes) else {
            return error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This message cannot be read.",
            );
        };
        let me = user.address().to_lowercase();
        let subject = msg.subject().unwrap_or("");
        let mref = format!("{mailbox}/{uid}");
        match op {
            "Reply" | "ReplyAll" => {
                let to = if msg.reply_to().is_some() {
                    mime::addresses(msg.reply_to())
                } else {
                    mime::addresses(msg.from())
                };
                d.to = to.join(", ");
                if op == "ReplyAll" {
                    let others = |a| {
                        mime::addresses(a)
                            .into_iter()
                            .filter(|x| !x.to_lowercase().contains(&me))
                            .collect::<Vec<_>>()
                    };
                    let mut to = vec![d.to.clone()];
                    to.extend(others(msg.to()));
                    d.to = to
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(", ");
                    d.cc = others(msg.cc()).join(", ");
                }
                d.subject = mime::reply_subject(subject);
                d.body = mime::quote(&msg);
                d.reply = mref;
            }
            "Forward" => {
                d.subject = mime::forward_subject(subject);
                d.forward = mref;
            }
            "Draft" => {
                d.to = mime::addresses(msg.to()).join(", ");
                d.cc = mime::addresses(msg.cc()).join(", ");
                d.bcc = mime::addresses(msg.bcc()).join(", ");
                d.subject = subject.to_string();
                d.body = msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
                d.keep = mref.clone();
                d.draft = mref;
            }
            _ => return error_page(StatusCode::BAD_REQUEST, "Unknown operation."),
        }
    }
    form(web, user, &d, None).await
}

async fn form(web: &Web, user: &User, d: &Draft, error: Option<&str>) -> Response {
    let contacts = super::prefs::load(web, user).await.contacts;
    let body = html! {
        h1 { "Compose" }
        (notice(error, None))
        section.panel.compose {
            form method="post" action=(user.url("Compose.wssp")) enctype="multipart/form-data" {
                (csrf_field(&user.csrf))
                input type="hidden" name="Keep" value=(d.keep);
                input type="hidden" name="Forward" value=(d.forward);
                input type="hidden" name="Reply" value=(d.reply);
                input type="hidden" name="DraftRef" value=(d.draft);
                label for="to" { "To" }
                input #to type="text" name="To" value=(d.to) list="contacts" autocomplete="off";
                label for="cc" { "Cc" }
                input #cc type="text" name="Cc" value=(d.cc) list="contacts" autocomplete="off";
                label for="bcc" { "Bcc" }
                input #bcc type="text" name="Bcc" value=(d.bcc) list="contacts" autocomplete="off";
                datalist #contacts { @for c in &contacts { option value=(format!("{} <{}>", c.name, c.email)) {} } }
                label for="subject" { "Subject" }
                input #subject type="text" name="Subject" value=(d.subject);
                label for="body" { "Message" }
                textarea #body name="Body" { (d.body) }
                @if !d.forward.is_empty() { p.notice { "The original message is attached." } }
                @if !d.keep.is_empty() { p.notice { "The draft's attachments are kept." } }
                label for="attachments" { "Attachments" }
                input #attachments type="file" name="Attachment" multiple;
                div.toolbar.mt {
                    button #send type="submit" name="Send" value="1" { "Send" }
                    button.secondary #savedraft type="submit" name="SaveDraft" value="1" { "Save draft" }
                }
            }
        }
    };
    page(user, "Compose", "Compose.wssp", body)
}

/// `Compose.wssp` (POST): Send or Save Draft.
pub async fn post(web: &Web, user: &User, p: &Posted) -> Response {
    let d = Draft {
        to: p.get("To").to_string(),
        cc: p.get("Cc").to_string(),
        bcc: p.get("Bcc").to_string(),
        subject: p.get("Subject").to_string(),
        body: p.get("Body").replace("\r\n", "\n"),
        keep: p.get("Keep").to_string(),
        forward: p.get("Forward").to_string(),
        reply: p.get("Reply").to_string(),
        draft: p.get("DraftRef").to_string(),
    };
    let sending = !p.has("SaveDraft");
    let result = compose(web, user, &d, &p.files, sending).await;
    match result {
        Ok(done) => see_other(&format!(
            "{}?Mailbox={}&Done={done}",
            user.url("Mailbox.wssp"),
            enc(if sending { "INBOX" } else { DRAFTS })
        )),
        Err(e) => form(web, user, &d, Some(&e)).await,
    }
}

/// A declared upload type reduced to `type/subtype` tokens.
fn clean_type(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match t.split_once('/') {
        Some((a, b)) if ok(a) && ok(b) => t,
        _ => "application/octet-stream".into(),
    }
}

/// An attachment part: base64 (mail-builder's choice for binary data), except a message, which
/// RFC 2046 §5.2.1 allows only unencoded: it goes as it is, lines ended with CRLF.
fn attachment(content_type: &str, name: &str, data: Vec<u8>) -> MimePart<'static> {
    let name = safe_filename(name);
    if content_type.eq_ignore_ascii_case("message/rfc822") {
        let mut crlf = Vec::with_capacity(data.len() + data.len() / 40);
        let mut prev = 0u8;
        for &b in &data {
            if b == b'\n' && prev != b'\r' {
                crlf.push(b'\r');
            }
            crlf.push(b);
            prev = b;
        }
        if !crlf.ends_with(b"\r\n") {
            crlf.extend_from_slice(b"\r\n");
        }
        let cte = if crlf.is_ascii() { "7bit" } else { "8bit" };
        return MimePart::new("message/rfc822", BodyPart::Binary(crlf.into()))
            .transfer_encoding(cte)
            .attachment(name);
    }
    MimePart::new(clean_type(content_type), BodyPart::Binary(data.into())).attachment(name)
}

/// Builds the message and sends it or stores it as a draft.
async fn compose(
    web: &Web,
    user: &User,
    d: &Draft,
    uploads: &[Upload],
    sending: bool,
) -> Result<&'static str, String> {
    let to = mime::parse_address_list(&d.to);
    let cc = mime::parse_address_list(&d.cc);
    let bcc = mime::parse_address_list(&d.bcc);
    let all: Vec<String> = to.iter().chain(&cc).chain(&bcc).cloned().collect();
    if sending {
        if all.is_empty() {
            return Err("Enter at least one recipient.".into());
        }
        if let Some(bad) = all
            .iter()
            .find(|a| !a.contains('@') || a.contains(char::is_whitespace))
        {
            return Err(format!("'{bad}' is not an e-mail address."));
        }
        if all.len() > MAX_RECIPIENTS {
            return Err(format!("At most {MAX_RECIPIENTS} recipients."));
        }
    }
    let (w, u, d, uploads) = (web.clone(), clone_user(user), d.clone(), uploads.to_vec());
    blocking(move || {
        // The messages this one refers to.
        let load = |r: &str| -> Result<Option<Vec<u8>>, String> {
            match split_ref(r) {
                Some((m, uid)) => Ok(Some(open(&w, &u, m)?.read(uid).map_err(|e| e.to_string())?)),
                None => Ok(None),
            }
        };
        let kept = load(&d.keep)?;
        let forwarded = load(&d.forward)?;
        let replied = load(&d.reply)?;
        let real_name = w
            .cli
            .store
            .account_effective_settings(&u.id.domain, &u.id.name)
            .ok()
            .and_then(|s| {
                s.get(b"RealName".as_slice())
                    .and_then(|v| v.as_text())
                    .map(|t| t.into_owned())
            })
            .unwrap_or_default();
        let me = u.address();
        let from = if real_name.is_empty() {
            BAddress::new_address(None::<String>, me.clone())
        } else {
            BAddress::new_address(Some(real_name), me.clone())
        };
        let list = |v: &[String]| {
            BAddress::new_list(
                v.iter()
                    .map(|a| BAddress::new_address(None::<String>, a.clone()))
                    .collect(),
            )
        };
        let host = w.cli.store.main_domain();
        let now = chrono::Utc::now();
        let received = format!(
            "from [{}] by {host} with HTTP (WebMail) for <{}>; {}",
            u.peer,
            to.first()
                .or(cc.first())
                .map_or(me.as_str(), String::as_str),
            now.to_rfc2822()
        );
        let mut b = MessageBuilder::new().from(from).subject(d.subject.clone());
        if sending {
            b = b.header("Received", Raw::new(received));
        }
        if !to.is_empty() {
            b = b.to(list(&to));
        }
        if !cc.is_empty() {
            b = b.cc(list(&cc));
        }
        if !sending && !bcc.is_empty() {
            // A draft remembers its Bcc; a sent message never shows it.
            b = b.bcc(list(&bcc));
        }
        let text_list = |v: &mail_parser::HeaderValue<'_>| -> Vec<String> {
            v.as_text_list()
                .map(|l| l.iter().map(|s| s.to_string()).collect())
                .or_else(|| v.as_text().map(|t| vec![t.to_string()]))
                .unwrap_or_default()
        };
        if let Some(orig) = replied.as_deref().and_then(mime::parse) {
            if let Some(id) = orig.message_id() {
                let mut refs = text_list(orig.references());
                refs.push(id.to_string());
                b = b.in_reply_to(id.to_string()).references(refs);
            }
        } else if let Some(draft) = kept.as_deref().and_then(mime::parse) {
            // A draft of a reply keeps answering the same message.
            let irt = text_list(draft.in_reply_to());
            if let Some(id) = irt.first() {
                b = b
                    .in_reply_to(id.clone())
                    .references(text_list(draft.references()));
            }
        }
        let body_text = d.body.replace('\n', "\r\n");
        let mut parts = vec![MimePart::new("text/plain", body_text)];
        if let Some(k) = kept.as_deref().and_then(mime::parse) {
            for a in mime::attachments(&k) {
                if let Some(part) = k.parts.get(a.part as usize) {
                    parts.push(attachment(&a.mime, &a.name, part.contents().to_vec()));
                }
            }
        }
        if let Some(f) = &forwarded {
            let name = mime::parse(f)
                .and_then(|m| m.subject().map(|s| format!("{}.eml", safe_filename(s))))
                .unwrap_or_else(|| "forwarded.eml".into());
            parts.push(attachment("message/rfc822", &name, f.clone()));
        }
        for up in &uploads {
            parts.push(attachment(&up.content_type, &up.filename, up.data.clone()));
        }
        b = if parts.len() == 1 {
            b.body(parts.remove(0))
        } else {
            b.body(MimePart::new("multipart/mixed", parts))
        };
        let bytes = b
            .write_to_vec()
            .map_err(|e| format!("cannot build the message: {e}"))?;
        let now_s = now.timestamp();
        if sending {
            let sub = Submission {
                return_path: me.clone(),
                recipients: all.iter().map(|a| NewRecipient::new(a.clone())).collect(),
                source: Source::User(me.clone()),
                env_id: None,
                ret: None,
            };
            let id = w
                .enqueuer
                .submit(sub, &bytes)
                .map_err(|e| format!("The message was not sent: {e}"))?;
            w.logger.log(
                Level::Major,
                MODULE,
                format_args!(
                    "{me} sent message {id} to {} recipient(s) from {}",
                    all.len(),
                    u.peer
                ),
            );
            open_or_create(&w, &u, SENT)?
                .append(&bytes, Flags::SEEN, now_s)
                .map_err(|e| format!("Sent, but not copied to {SENT}: {e}"))?;
            if let Some((m, uid)) = split_ref(&d.reply) {
                let _ = open(&w, &u, m).and_then(|mb| {
                    mb.set_flags(&[uid], Flags::ANSWERED, SetMode::Add)
                        .map_err(|e| e.to_string())
                });
            }
        } else {
            open_or_create(&w, &u, DRAFTS)?
                .append(&bytes, Flags::SEEN | Flags::DRAFT, now_s)
                .map_err(|e| format!("The draft was not saved: {e}"))?;
        }
        // The edited draft is replaced by what was just sent or saved.
        if let Some((m, uid)) = split_ref(&d.draft) {
            remove(&*open(&w, &u, m)?, &[uid])?;
        }
        Ok(if sending { "sent" } else { "saved" })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_types_are_tokens() {
        assert_eq!(clean_type("image/PNG"), "image/png");
        assert_eq!(clean_type("text/html\r\nX: y"), "application/octet-stream");
        assert_eq!(clean_type(""), "application/octet-stream");
        assert_eq!(clean_type("a/b; x=y"), "application/octet-stream");
    }

    #[test]
    fn refs() {
        assert_eq!(split_ref("INBOX/7"), Some(("INBOX", 7)));
        assert_eq!(split_ref("A/B/12"), Some(("A/B", 12)));
        assert_eq!(split_ref("INBOX"), None);
        assert_eq!(split_ref(""), None);
    }
}
