//! WebUser preferences and the address book: one data-format dictionary, `WebUser.settings`, in
//! the account directory (`TimeZone`, `PageSize`, `Signature`, `AddressBook` = array of
//! `{Name; Email}`, `RequireFixedNetworkAddress` = YES|NO, absent until the user sets it: then
//! the account's setting of that name decides, guide.txt:22346-22354);
//! our names, after the guide's WebUser Preferences, guide.txt:20306-20316, and its address
//! book, 20945-20972). Written whole with `store::fsutil::write_atomic`.
//!
//! Security: the file name is fixed; the directory is the account's own, from the store.
//! Single-mailbox accounts have no directory of their own and keep no preferences.

use std::path::PathBuf;

use super::{blocking, User, Web};
use crate::format::{self, Dict, Value};
use crate::net::sasl::AccountId;
use crate::store::AccountType;

/// The preferences file name.
const FILE: &str = "WebUser.settings";
/// Most address book entries.
pub const MAX_CONTACTS: usize = 2000;
/// Longest signature kept, in characters.
pub const MAX_SIGNATURE: usize = 2000;
/// Page sizes offered.
pub const PAGE_SIZES: &[usize] = &[10, 20, 50, 100];

/// One address book entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// The preferences of one account.
#[derive(Debug, Clone)]
pub struct Prefs {
    /// Offset from UTC in minutes (`TimeZone` is `+HHMM` / `-HHMM`).
    pub tz_minutes: i32,
    /// Messages per page.
    pub page_size: usize,
    /// The address book, sorted by name (History 23782).
    pub contacts: Vec<Contact>,
    /// The Signature added to composed messages (guide.txt:20813-20859).
    pub signature: String,
    /// Require Fixed Network Address, when the user has set it (guide.txt:15007-15016).
    pub fixed_address: Option<bool>,
}

impl Default for Prefs {
    fn default() -> Prefs {
        Prefs {
            tz_minutes: 0,
            page_size: 20,
            contacts: Vec::new(),
            signature: String::new(),
            fixed_address: None,
        }
    }
}

/// Parses `+HHMM`, `-HH:MM` or `UTC` into minutes east of UTC.
pub fn parse_tz(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("gmt") || s.is_empty() {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// Minutes as `+HHMM`.
pub fn tz_text(min: i32) -> String {
    let sign = if min < 0 { '-' } else { '+' };
    let a = min.abs();
    format!("{sign}{:02}{:02}", a / 60, a % 60)
}

impl Prefs {
    /// A time in the user's zone.
    pub fn format_time(&self, unix: i64) -> String {
        use chrono::Offset;
        let offset = chrono::FixedOffset::east_opt(self.tz_minutes * 60)
            .unwrap_or_else(|| chrono::Utc.fix());
        match chrono::DateTime::from_timestamp(unix, 0) {
            Some(t) => t
                .with_timezone(&offset)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            None => String::new(),
        }
    }

    fn from_dict(d: &Dict) -> Prefs {
        let text = |k: &str| {
            d.get(k.as_bytes())
                .and_then(|v| v.as_text())
                .map(|t| t.into_owned())
        };
        let mut p = Prefs::default();
        if let Some(tz) = text("TimeZone").as_deref().and_then(parse_tz) {
            p.tz_minutes = tz;
        }
        if let Some(n) = text("PageSize").and_then(|t| t.parse::<usize>().ok()) {
            p.page_size = n.clamp(5, 200);
        }
        p.fixed_address = text("RequireFixedNetworkAddress").map(|t| !t.eq_ignore_ascii_case("no"));
        if let Some(sig) = text("Signature") {
            p.signature = sig.chars().take(MAX_SIGNATURE).collect();
        }
        if let Some(Value::Array(a)) = d.get(b"AddressBook".as_slice()) {
            for e in a.iter().take(MAX_CONTACTS) {
                if let Value::Dict(e) = e {
                    let get = |k: &str| {
                        e.get(k.as_bytes())
                            .and_then(|v| v.as_text())
                            .map(|t| t.into_owned())
                            .unwrap_or_default()
                    };
                    p.contacts.push(Contact {
                        name: get("Name"),
                        email: get("Email"),
                    });
                }
            }
        }
        p
    }

    fn to_dict(&self) -> Dict {
        let mut d = Dict::new();
        d.insert(b"TimeZone".to_vec(), Value::str(tz_text(self.tz_minutes)));
        d.insert(b"PageSize".to_vec(), Value::str(self.page_size.to_string()));
        if !self.signature.is_empty() {
            d.insert(b"Signature".to_vec(), Value::str(&self.signature));
        }
        if let Some(fixed) = self.fixed_address {
            let yn = if fixed { "YES" } else { "NO" };
            d.insert(b"RequireFixedNetworkAddress".to_vec(), Value::str(yn));
        }
        let book = self
            .contacts
            .iter()
            .map(|c| {
                let mut e = Dict::new();
                e.insert(b"Name".to_vec(), Value::str(&c.name));
                e.insert(b"Email".to_vec(), Value::str(&c.email));
                Value::Dict(e)
            })
            .collect();
        d.insert(b"AddressBook".to_vec(), Value::Array(book));
        d
    }
}

/// The preferences file of an account, if it has a directory.
fn path(web: &Web, id: &AccountId) -> Result<PathBuf, String> {
    let (kind, dir) = web
        .cli
        .store
        .account_location(&id.domain, &id.name)
        .map_err(|e| e.to_string())?;
    if kind != AccountType::MultiMailbox {
        return Err("This account type keeps no WebUser preferences".into());
    }
    Ok(dir.join(FILE))
}

/// Loads the preferences (defaults when there are none or the file is damaged).
pub async fn load(web: &Web, user: &User) -> Prefs {
    load_for(web, &user.id).await
}

/// Whether the sessions of account `id` are bound to their login address: its Require Fixed
/// Network Address preference, else its account setting of that name (which the Domain and
/// Server Account Defaults provide, guide.txt:22346-22354), else YES.
pub async fn fixed_address(web: &Web, id: &AccountId) -> bool {
    if let Some(own) = load_for(web, id).await.fixed_address {
        return own;
    }
    let store = web.cli.store.clone();
    let id = id.clone();
    blocking(move || {
        Ok(store
            .account_effective_settings(&id.domain, &id.name)
            .ok()
            .and_then(|e| {
                e.get(b"RequireFixedNetworkAddress".as_slice())
                    .and_then(|v| v.as_text())
                    .map(|t| !t.trim().eq_ignore_ascii_case("no"))
            })
            .unwrap_or(true))
    })
    .await
    .unwrap_or(true)
}

async fn load_for(web: &Web, id: &AccountId) -> Prefs {
    let Ok(p) = path(web, id) else {
        return Prefs::default();
    };
    blocking(move || {
        Ok(match std::fs::read(&p) {
            Ok(b) => match format::parse(&b) {
                Ok(Value::Dict(d)) => Prefs::from_dict(&d),
                _ => Prefs::default(),
            },
            Err(_) => Prefs::default(),
        })
    })
    .await
    .unwrap_or_default()
}

/// Stores the preferences durably.
pub async fn save(web: &Web, user: &User, prefs: &Prefs) -> Result<(), String> {
    let p = path(web, &user.id)?;
    let mut prefs = prefs.clone();
    prefs
        .contacts
        .sort_by_key(|c| (c.name.to_lowercase(), c.email.to_lowercase()));
    prefs.contacts.truncate(MAX_CONTACTS);
    let bytes = format::to_bytes(&Value::Dict(prefs.to_dict()));
    blocking(move || {
        crate::store::fsutil::write_atomic(&p, &bytes)
            .map_err(|e| format!("cannot store the preferences: {e}"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones() {
        assert_eq!(parse_tz("+0200"), Some(120));
        assert_eq!(parse_tz("-05:30"), Some(-330));
        assert_eq!(parse_tz("UTC"), Some(0));
        assert_eq!(parse_tz("+2500"), None);
        assert_eq!(parse_tz("Europe/Paris"), None);
        assert_eq!(tz_text(-330), "-0530");
        let p = Prefs {
            tz_minutes: 120,
            ..Prefs::default()
        };
        assert_eq!(p.format_time(0), "1970-01-01 02:00");
    }

    #[test]
    fn round_trip() {
        let p = Prefs {
            tz_minutes: -60,
            page_size: 50,
            contacts: vec![Contact {
                name: "Ann \"A\"".into(),
                email: "ann@x.test".into(),
            }],
            signature: "Ann\nOffice".into(),
            fixed_address: Some(false),
        };
        let d = match format::parse(&format::to_bytes(&Value::Dict(p.to_dict()))) {
            Ok(Value::Dict(d)) => d,
            other => panic!("{other:?}"),
        };
        let q = Prefs::from_dict(&d);
        assert_eq!(q.tz_minutes, -60);
        assert_eq!(q.page_size, 50);
        assert_eq!(q.contacts, p.contacts);
        assert_eq!(q.signature, p.signature);
        assert_eq!(q.fixed_address, Some(false));
        assert_eq!(Prefs::from_dict(&Dict::new()).fixed_address, None);
    }
}
