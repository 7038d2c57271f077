//! The envelope of a retrieved message (guide.txt:12499-12594): who it is from and to whom it
//! goes, for a user's remote account and for a Unified Domain-Wide Account (UDWA).
//!
//! - `Return-Path:` becomes the envelope sender and is removed (Local Delivery writes it again).
//! - A user's account: every message goes to that user, with "do not report failures".
//! - A UDWA with a Special Header (`X-Real-To` unless the row says otherwise): its addresses are
//!   the recipients, with "report on failure", and the header is removed. A message that lacks
//!   the header (the provider did not add it) is distributed by To/Cc/Bcc as below: the guide
//!   does not say what to do with it, and this loses nothing.
//! - A UDWA without one: the To, Cc and Bcc addresses that the Router sends to a local account,
//!   silently ignoring the others, with "do not report failures"; none: `postmaster` of the
//!   Main Domain.
//!
//! Security: the message is untrusted; header parsing is bounded by the message size, and the
//! recipients it names go through the Enqueuer and the Router like any other.

use crate::kernel::mail::{NewRecipient, Notify, Route, Target};
use crate::kernel::queue::file::{header_section, header_values};
use crate::modules::pipe::submitted::address_list;

/// Most recipients one message may name through its headers.
const MAX_RECIPIENTS: usize = 1000;

/// A retrieved message ready for the Enqueuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// Envelope sender ("" for `<>`).
    pub return_path: String,
    /// Envelope recipients.
    pub recipients: Vec<NewRecipient>,
    /// The message with the consumed header fields removed.
    pub message: Vec<u8>,
}

fn recipient(address: String, report: bool) -> NewRecipient {
    let mut r = NewRecipient::new(address);
    r.notify = Notify {
        failure: report,
        never: !report,
        ..Notify::default()
    };
    r
}

/// The message without any header field named in `names` (folded lines included).
pub fn remove_fields(message: &[u8], names: &[&str]) -> Vec<u8> {
    let header_len = header_section(message).len();
    let mut out = Vec::with_capacity(message.len());
    let mut dropping = false;
    let mut pos = 0;
    while pos < header_len {
        let end = message[pos..header_len]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header_len, |e| pos + e + 1);
        let l = &message[pos..end];
        let continuation = l.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            dropping = l.iter().position(|&b| b == b':').is_some_and(|c| {
                names
                    .iter()
                    .any(|n| l[..c].trim_ascii_end().eq_ignore_ascii_case(n.as_bytes()))
            });
        }
        if !dropping {
            out.extend_from_slice(l);
        }
        pos = end;
    }
    out.extend_from_slice(&message[header_len..]);
    out
}

/// The envelope sender from `Return-Path:` ("" for `<>` or none).
fn return_path(message: &[u8]) -> String {
    header_values(message, "Return-Path")
        .into_iter()
        .next()
        .and_then(|v| address_list(&v).ok()?.into_iter().next().map(|(a, _)| a))
        .unwrap_or_default()
}

/// The addresses of every `name` field, at most [`MAX_RECIPIENTS`].
fn addresses(message: &[u8], names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        for v in header_values(message, n) {
            for (a, _) in address_list(&v).unwrap_or_default() {
                if out.len() < MAX_RECIPIENTS && !out.iter().any(|x| x.eq_ignore_ascii_case(&a)) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// A message retrieved for a user's account goes to that user (guide.txt:12584-12594).
pub fn for_account(message: &[u8], address: &str) -> Distribution {
    Distribution {
        return_path: return_path(message),
        recipients: vec![recipient(address.to_string(), false)],
        message: remove_fields(message, &["Return-Path"]),
    }
}

/// A message retrieved from a Unified Domain-Wide Account (guide.txt:12499-12565).
pub fn unified(
    message: &[u8],
    special_header: Option<&str>,
    router: &dyn Route,
    postmaster: &str,
) -> Distribution {
    let sender = return_path(message);
    // Only addresses served here: the headers come from whoever wrote the message, and a
    // polled message must never make the server relay (a forged `X-Real-To: x@elsewhere`).
    // (An unknown local user stays: its failure report goes back to the sender.)
    let relayed = |a: &String| {
        router
            .route(a)
            .is_ok_and(|r| matches!(r.target, Target::Smtp { .. }))
    };
    if let Some(h) = special_header.filter(|h| !h.is_empty()) {
        let named = addresses(message, &[h]);
        if !named.is_empty() {
            let mut recipients: Vec<NewRecipient> = named
                .into_iter()
                .filter(|a| !relayed(a))
                .map(|a| recipient(a, true))
                .collect();
            if recipients.is_empty() {
                recipients.push(recipient(postmaster.to_string(), true));
            }
            return Distribution {
                return_path: sender,
                recipients,
                message: remove_fields(message, &["Return-Path", h]),
            };
        }
    }
    let mut local: Vec<NewRecipient> = addresses(message, &["To", "Cc", "Bcc"])
        .into_iter()
        .filter(|a| {
            router
                .route(a)
                .is_ok_and(|r| matches!(r.target, Target::Local { .. }))
        })
        .map(|a| recipient(a, false))
        .collect();
    if local.is_empty() {
        local.push(recipient(postmaster.to_string(), false));
    }
    Distribution {
        return_path: sender,
        recipients: local,
        message: remove_fields(message, &["Return-Path"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::mail::{RouteError, Routed};

    struct Locals;
    impl Route for Locals {
        fn route(&self, a: &str) -> Result<Routed, RouteError> {
            let (user, domain) = a.split_once('@').unwrap_or((a, "example.test"));
            let target = match (user, domain) {
                ("ann" | "bob", "example.test") => Target::Local {
                    domain: domain.into(),
                    account: user.into(),
                    mailbox: None,
                    detail: None,
                },
                (_, "example.test") => return Err(RouteError::UnknownUser(a.into())),
                _ => Target::Smtp {
                    host: domain.into(),
                    address: a.into(),
                },
            };
            Ok(Routed {
                target,
                relay: false,
            })
        }
    }

    const MSG: &str = "Return-Path: <s@far.test>\r\nX-Real-To: bob@example.test,\r\n ann@example.test\r\nTo: Ann <ann@example.test>, x@far.test\r\nCc: nobody@example.test, bob@example.test\r\nSubject: hi\r\n\r\nbody\r\nTo: not a header\r\n";

    #[test]
    fn a_special_header_never_makes_the_server_relay() {
        let m = b"X-Real-To: victim@far.test, ann@example.test\r\nSubject: s\r\n\r\nb\r\n";
        let d = unified(m, Some("X-Real-To"), &Locals, "postmaster@example.test");
        assert_eq!(addrs(&d), ["ann@example.test"]);
        let m = b"X-Real-To: victim@far.test\r\nSubject: s\r\n\r\nb\r\n";
        let d = unified(m, Some("X-Real-To"), &Locals, "postmaster@example.test");
        assert_eq!(addrs(&d), ["postmaster@example.test"]);
    }

    fn addrs(d: &Distribution) -> Vec<&str> {
        d.recipients.iter().map(|r| r.address.as_str()).collect()
    }

    #[test]
    fn special_header_names_the_recipients_and_is_removed() {
        let d = unified(
            MSG.as_bytes(),
            Some("X-Real-To"),
            &Locals,
            "postmaster@example.test",
        );
        assert_eq!(d.return_path, "s@far.test");
        assert_eq!(addrs(&d), ["bob@example.test", "ann@example.test"]);
        assert!(d
            .recipients
            .iter()
            .all(|r| r.notify.failure && !r.notify.never));
        let text = String::from_utf8(d.message).unwrap();
        assert!(text.starts_with("To: Ann"), "{text}");
        assert!(!text.contains("X-Real-To") && !text.contains("Return-Path"));
        assert!(text.ends_with("body\r\nTo: not a header\r\n"));
    }

    #[test]
    fn without_it_the_local_to_cc_addresses_and_no_reports() {
        for special in [None, Some(""), Some("X-Envelope-To")] {
            let d = unified(MSG.as_bytes(), special, &Locals, "postmaster@example.test");
            assert_eq!(addrs(&d), ["ann@example.test", "bob@example.test"]);
            assert!(d.recipients.iter().all(|r| r.notify.never));
            assert!(String::from_utf8(d.message).unwrap().contains("X-Real-To"));
        }
    }

    #[test]
    fn nothing_local_goes_to_the_postmaster() {
        let m = b"To: x@far.test\r\nBcc: nobody@example.test\r\n\r\nb\r\n";
        let d = unified(m, None, &Locals, "postmaster@example.test");
        assert_eq!(addrs(&d), ["postmaster@example.test"]);
        assert_eq!(d.return_path, "");
    }

    #[test]
    fn a_user_account_gets_everything() {
        let d = for_account(MSG.as_bytes(), "ann@example.test");
        assert_eq!(addrs(&d), ["ann@example.test"]);
        assert!(d.recipients[0].notify.never);
        assert_eq!(
            remove_fields(b"A: 1\nB: 2\n 3\nC: 4\n\nB: x\n", &["b"]),
            b"A: 1\nC: 4\n\nB: x\n"
        );
    }
}
