//! Mailbox access control lists (RFC 4314 commands, with the guide's rights letters `lrswipcda`:
//! lookup, read, seen, write, insert, post, create, delete, administer; spec C §6 and notes 12).
//!
//! Identifiers are `anyone`, `name`, `name@domain` and `-name` (a negative entry removes rights);
//! the effective rights are anyone's plus the name's minus the negative ones, and the owner has
//! every right. A mailbox without its own list uses its nearest parent's (`INBOX/sales` gets
//! INBOX's). The guide leaves the storage open; ours is the one the CLI's `SETMAILBOXACL` uses
//! (`mailbox::acl`): the owner's account `.info`, key `MailboxACL`, a dictionary of mailbox name →
//! dictionary of identifier → rights string.

use crate::format::{Dict, Value};
use crate::net::sasl::AccountId;
use crate::store::Store;

/// The `.info` key, shared with the CLI.
const KEY: &str = crate::mailbox::acl::INFO_KEY;
/// Every right, in the guide's order.
pub(super) const ALL: &str = "lrswipcda";
/// Most entries kept on one mailbox.
const MAX_ENTRIES: usize = 256;

/// A set of rights letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rights(u16);

impl Rights {
    /// Every right (the owner's).
    pub(super) fn all() -> Rights {
        Rights::parse(ALL)
    }

    /// The known letters of `s`; others are ignored.
    pub(super) fn parse(s: &str) -> Rights {
        Rights(
            s.chars()
                .filter_map(|c| ALL.find(c))
                .fold(0, |acc, i| acc | (1 << i)),
        )
    }

    /// Whether right `c` is granted.
    pub(super) fn has(self, c: char) -> bool {
        ALL.find(c).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    fn union(self, o: Rights) -> Rights {
        Rights(self.0 | o.0)
    }

    fn minus(self, o: Rights) -> Rights {
        Rights(self.0 & !o.0)
    }
}

impl std::fmt::Display for Rights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in ALL.chars().filter(|&c| self.has(c)) {
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

fn all_lists(store: &Store, owner: &AccountId) -> Result<Dict, String> {
    Ok(store
        .account_info(&owner.domain, &owner.name, KEY)
        .map_err(|e| e.to_string())?
        .and_then(|v| v.as_dict().cloned())
        .unwrap_or_default())
}

/// The list that applies to `mailbox`: its own, or its nearest parent's.
pub(super) fn entries(
    store: &Store,
    owner: &AccountId,
    mailbox: &str,
) -> Result<Vec<(String, Rights)>, String> {
    let lists = all_lists(store, owner)?;
    let mut name = mailbox;
    loop {
        if let Some(d) = lists.get(name.as_bytes()).and_then(Value::as_dict) {
            return Ok(d
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        String::from_utf8_lossy(k).into_owned(),
                        Rights::parse(&v.as_text()?),
                    ))
                })
                .collect());
        }
        match name.rsplit_once('/') {
            Some((parent, _)) => name = parent,
            None => return Ok(Vec::new()),
        }
    }
}

/// The rights of `who` on `owner`'s `mailbox`.
pub(super) fn rights(
    store: &Store,
    owner: &AccountId,
    mailbox: &str,
    who: &AccountId,
) -> Result<Rights, String> {
    if who == owner {
        return Ok(Rights::all());
    }
    let names = |id: &str| {
        id.eq_ignore_ascii_case(&format!("{}@{}", who.name, who.domain))
            || (who.domain.eq_ignore_ascii_case(&owner.domain)
                && id.eq_ignore_ascii_case(&who.name))
    };
    let mut granted = Rights(0);
    let mut denied = Rights(0);
    for (id, r) in entries(store, owner, mailbox)? {
        if id.eq_ignore_ascii_case("anyone") || names(&id) {
            granted = granted.union(r);
        } else if let Some(neg) = id.strip_prefix('-') {
            if names(neg) {
                denied = denied.union(r);
            }
        }
    }
    Ok(granted.minus(denied))
}

/// SETACL (`+`/`-` prefixes change the entry; RFC 4314 §3.1) and DELETEACL (`rights` `None`).
pub(super) fn set(
    store: &Store,
    owner: &AccountId,
    mailbox: &str,
    id: &str,
    spec: Option<&str>,
) -> Result<(), String> {
    if id.is_empty() || id.len() > 256 || id.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("bad identifier".into());
    }
    let mut lists = all_lists(store, owner)?;
    let mut list: Vec<(String, Rights)> = entries(store, owner, mailbox)?;
    let old = list
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(id))
        .map_or(Rights(0), |(_, r)| *r);
    list.retain(|(k, _)| !k.eq_ignore_ascii_case(id));
    let new = match spec {
        None => Rights(0),
        Some(s) => match (s.strip_prefix('+'), s.strip_prefix('-')) {
            (Some(add), _) => old.union(Rights::parse(add)),
            (_, Some(del)) => old.minus(Rights::parse(del)),
            _ => Rights::parse(s),
        },
    };
    if new != Rights(0) {
        list.push((id.to_string(), new));
    }
    if list.len() > MAX_ENTRIES {
        return Err("too many entries".into());
    }
    let d: Dict = list
        .into_iter()
        .map(|(k, r)| (k.into_bytes(), Value::str(r.to_string())))
        .collect();
    lists.insert(mailbox.as_bytes().to_vec(), Value::Dict(d));
    store
        .set_account_info(&owner.domain, &owner.name, KEY, Value::Dict(lists))
        .map_err(|e| e.to_string())
}
