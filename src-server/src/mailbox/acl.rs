//! Mailbox Access Control Lists (guide.txt:9290-9381, spec C §6.3; RFC 2086 letters).
//!
//! Each mailbox has an ACL: identifier → rights. Identifiers are `anyone`, `accountname` (same
//! domain as the mailbox owner), `accountname@domain` (another domain) and `-accountname` (rights
//! revoked). The owner has every right; for anyone else the effective rights are
//! `anyone` + `name` − `-name` (guide.txt:9312-9317).
//!
//! Storage: the guide does not say where ACLs live. Ours: the account `.info` dictionary, key
//! `MailboxACL` (our name), a dictionary mailbox name → {identifier = rights;}. It moves with the
//! account on rename and with the mailbox on mailbox rename (the caller calls [`rename`]).
//!
//! Security: identifiers and rights come from CLI and IMAP clients; identifiers are bounded and
//! free of control bytes, rights are only the nine letters.

use std::fmt;

use crate::format::{Dict, Value};

/// The `.info` key of the account's ACLs (our name).
pub const INFO_KEY: &str = "MailboxACL";
/// Longest identifier accepted.
pub const MAX_IDENTIFIER: usize = 256;
/// Most elements in one ACL.
pub const MAX_ELEMENTS: usize = 1000;

/// The rights letters in the guide's order (guide.txt:9322-9362).
pub const LETTERS: &str = "lrswdipca";

/// A set of mailbox access rights.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Rights(u16);

impl Rights {
    /// No right.
    pub const NONE: Rights = Rights(0);
    /// Every right (the owner's).
    pub const ALL: Rights = Rights((1 << 9) - 1);

    /// The right named by one letter.
    pub fn letter(c: char) -> Option<Rights> {
        LETTERS.find(c).map(|i| Rights(1 << i))
    }

    /// Parses a string of letters; the first unknown letter is the error.
    pub fn parse(s: &str) -> Result<Rights, char> {
        s.chars().try_fold(Rights::NONE, |acc, c| {
            Rights::letter(c).map(|r| acc.union(r)).ok_or(c)
        })
    }

    /// Both sets.
    pub fn union(self, o: Rights) -> Rights {
        Rights(self.0 | o.0)
    }

    /// `self` without `o`.
    pub fn minus(self, o: Rights) -> Rights {
        Rights(self.0 & !o.0)
    }

    /// Whether every right of `o` is in `self`.
    pub fn contains(self, o: Rights) -> bool {
        self.0 & o.0 == o.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in LETTERS.chars().enumerate() {
            if self.0 & (1 << i) != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The right of one letter (`right('l')`); an unknown letter gives no right.
pub fn right(c: char) -> Rights {
    Rights::letter(c).unwrap_or(Rights::NONE)
}

/// One mailbox's ACL, in stored order.
pub type Acl = Vec<(String, Rights)>;

/// Checks an identifier (`anyone`, `name`, `name@domain`, `-name`).
pub fn check_identifier(id: &str) -> Result<(), String> {
    let bare = id.strip_prefix('-').unwrap_or(id);
    if bare.is_empty()
        || id.len() > MAX_IDENTIFIER
        || id.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!("Illegal ACL identifier: {id:?}"));
    }
    Ok(())
}

/// The ACL of `mailbox` from the account's `.info` `MailboxACL` value.
pub fn get(all: Option<&Value>, mailbox: &str) -> Acl {
    let Some(d) = all
        .and_then(Value::as_dict)
        .and_then(|d| d.get(mailbox.as_bytes()))
        .and_then(Value::as_dict)
    else {
        return Acl::new();
    };
    d.iter()
        .filter_map(|(k, v)| {
            let id = String::from_utf8(k.clone()).ok()?;
            let r = Rights::parse(&v.as_text()?).ok()?;
            Some((id, r))
        })
        .collect()
}

/// The `MailboxACL` value with `mailbox`'s ACL replaced (removed when empty).
pub fn put(all: Option<Value>, mailbox: &str, acl: &Acl) -> Value {
    let mut d = all.and_then(|v| v.as_dict().cloned()).unwrap_or_default();
    if acl.is_empty() {
        d.shift_remove(mailbox.as_bytes());
    } else {
        let inner: Dict = acl
            .iter()
            .map(|(id, r)| (id.clone().into_bytes(), Value::str(r.to_string())))
            .collect();
        d.insert(mailbox.as_bytes().to_vec(), Value::Dict(inner));
    }
    Value::Dict(d)
}

/// The `MailboxACL` value after mailboxes were renamed (old → new pairs) or removed.
pub fn rename(all: Option<Value>, renamed: &[(String, String)], removed: &[String]) -> Value {
    let mut d = all.and_then(|v| v.as_dict().cloned()).unwrap_or_default();
    for (old, new) in renamed {
        if let Some(v) = d.shift_remove(old.as_bytes()) {
            d.insert(new.as_bytes().to_vec(), v);
        }
    }
    for name in removed {
        d.shift_remove(name.as_bytes());
    }
    Value::Dict(d)
}

/// Applies a `SETMAILBOXACL` change set (guide.txt:6337-6348): a value starting with `-` removes
/// its rights, with `+` adds them, else replaces; an element left empty is removed.
pub fn modify(acl: &mut Acl, changes: &Dict) -> Result<(), String> {
    for (k, v) in changes {
        let id = String::from_utf8(k.clone()).map_err(|_| "Illegal ACL identifier".to_string())?;
        check_identifier(&id)?;
        let text = v
            .as_text()
            .ok_or_else(|| format!("ACL rights for {id} must be a string"))?;
        let (op, letters) = match text.chars().next() {
            Some(c @ ('+' | '-')) => (Some(c), &text[1..]),
            _ => (None, &text[..]),
        };
        let given =
            Rights::parse(letters).map_err(|c| format!("Illegal access right letter: {c:?}"))?;
        let pos = acl.iter().position(|(i, _)| *i == id);
        let old = pos.map_or(Rights::NONE, |p| acl[p].1);
        let new = match op {
            Some('+') => old.union(given),
            Some(_) => old.minus(given),
            None => given,
        };
        match (pos, new.is_empty()) {
            (Some(p), true) => {
                acl.remove(p);
            }
            (Some(p), false) => acl[p].1 = new,
            (None, true) => {}
            (None, false) => {
                if acl.len() >= MAX_ELEMENTS {
                    return Err("Too many ACL elements".into());
                }
                acl.push((id, new));
            }
        }
    }
    Ok(())
}

/// The effective rights of account `name@domain` (not the owner) on a mailbox of an account in
/// `owner_domain` (guide.txt:9312-9317). Names compare case-insensitively.
pub fn effective(acl: &Acl, owner_domain: &str, name: &str, domain: &str) -> Rights {
    let full = format!("{name}@{domain}");
    let same = domain.eq_ignore_ascii_case(owner_domain);
    let is_me =
        |id: &str| id.eq_ignore_ascii_case(&full) || (same && id.eq_ignore_ascii_case(name));
    let mut granted = Rights::NONE;
    let mut revoked = Rights::NONE;
    for (id, r) in acl {
        if id.eq_ignore_ascii_case("anyone") || is_me(id) {
            granted = granted.union(*r);
        } else if id.strip_prefix('-').is_some_and(is_me) {
            revoked = revoked.union(*r);
        }
    }
    granted.minus(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&str, &str)]) -> Dict {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), Value::str(v)))
            .collect()
    }

    #[test]
    fn letters_round_trip_in_guide_order() {
        assert_eq!(Rights::parse("acl").unwrap().to_string(), "lca");
        assert_eq!(Rights::ALL.to_string(), LETTERS);
        assert_eq!(Rights::parse("lx"), Err('x'));
    }

    #[test]
    fn modify_adds_removes_replaces_and_drops_empty() {
        let mut acl = Acl::new();
        modify(&mut acl, &changes(&[("anyone", "lr"), ("bob", "+lrs")])).unwrap();
        modify(&mut acl, &changes(&[("bob", "-s"), ("anyone", "-lr")])).unwrap();
        assert_eq!(acl, vec![("bob".to_string(), Rights::parse("lr").unwrap())]);
        modify(&mut acl, &changes(&[("bob", "wi")])).unwrap();
        assert_eq!(acl[0].1.to_string(), "wi");
        assert!(modify(&mut acl, &changes(&[("bob", "+z")])).is_err());
        assert!(modify(&mut acl, &changes(&[("bad id", "l")])).is_err());
    }

    #[test]
    fn effective_is_anyone_plus_name_minus_revoked() {
        let acl: Acl = vec![
            ("anyone".into(), Rights::parse("l").unwrap()),
            ("bob".into(), Rights::parse("rsw").unwrap()),
            ("-bob".into(), Rights::parse("w").unwrap()),
            ("eve@other.com".into(), Rights::parse("r").unwrap()),
        ];
        assert_eq!(effective(&acl, "x.com", "bob", "x.com").to_string(), "lrs");
        assert_eq!(effective(&acl, "x.com", "bob", "y.com").to_string(), "l");
        assert_eq!(
            effective(&acl, "x.com", "eve", "other.com").to_string(),
            "lr"
        );
    }

    #[test]
    fn stored_value_put_get_rename() {
        let acl: Acl = vec![("bob".into(), Rights::parse("lr").unwrap())];
        let v = put(None, "A", &acl);
        assert_eq!(get(Some(&v), "A"), acl);
        let v = rename(Some(v), &[("A".into(), "B".into())], &[]);
        assert!(get(Some(&v), "A").is_empty());
        assert_eq!(get(Some(&v), "B"), acl);
        let v = rename(Some(v), &[], &["B".into()]);
        assert!(get(Some(&v), "B").is_empty());
    }
}
