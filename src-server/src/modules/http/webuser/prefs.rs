//! WebUser preferences and the address book: one data-format dictionary, `WebUser.settings`, in
//! the account directory (`TimeZone` = `+HHMM` or a zone name of the system's database,
//! `/usr/share/zoneinfo`, read through `jiff`; `PageSize`, `Signature`, `AddressBook` = array of
//! `{Name; Email}`, `RequireFixedNetworkAddress` = YES|NO, absent until the user sets it: then
//! the account's setting of that name decides, guide.txt:22346-22354);
//! our names, after the guide's WebUser Preferences, guide.txt:20306-20316, and its address
//! book, 20945-20972). Written whole with `store::fsutil::write_atomic`.
//!
//! Security: the file name is fixed; the directory is the account's own, from the store. A zone
//! name is looked up only when made of plain name parts (`named_zone`), so it stays inside the
//! zone database.
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

/// A time zone preference (guide.txt:20306-20316).
#[derive(Debug, Clone)]
pub enum Zone {
    /// A fixed offset east of UTC, in minutes (`+HHMM` / `-HHMM`, or `UTC`).
    Offset(i32),
    /// A named zone of the system's time zone database (`Europe/Paris`), with its rules.
    Named(String, jiff::tz::TimeZone),
}

impl Zone {
    /// The zone as the user writes it (and as `TimeZone` stores it).
    pub fn text(&self) -> String {
        match self {
            Zone::Offset(min) => tz_text(*min),
            Zone::Named(name, _) => name.clone(),
        }
    }
}

/// Longest zone name looked up.
const MAX_ZONE_NAME: usize = 64;

/// The named zone `name` from the system's database (`/usr/share/zoneinfo`). Only names made
/// of letters, digits, `_`, `+`, `-` and `/`-separated parts that do not start with a dot are
/// looked up, so no name reaches outside the database.
fn named_zone(name: &str) -> Option<Zone> {
    let plausible = !name.is_empty()
        && name.len() <= MAX_ZONE_NAME
        && name.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with(['.', '-'])
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b))
        });
    if !plausible {
        return None;
    }
    let tz = jiff::tz::db().get(name).ok()?;
    let canonical = tz.iana_name().unwrap_or(name).to_string();
    Some(Zone::Named(canonical, tz))
}

/// The preferences of one account.
#[derive(Debug, Clone)]
pub struct Prefs {
    /// The time zone times are shown in (`TimeZone`).
    pub tz: Zone,
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
            tz: Zone::Offset(0),
            page_size: 20,
            contacts: Vec::new(),
            signature: String::new(),
            fixed_address: None,
        }
    }
}

/// Parses `+HHMM`, `-HH:MM` or `UTC` (an offset), or a zone name such as `Europe/Paris`.
pub fn parse_tz(s: &str) -> Option<Zone> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("gmt") || s.is_empty() {
        return Some(Zone::Offset(0));
    }
    match s.as_bytes().first()? {
        b'+' | b'-' => parse_offset(s).map(Zone::Offset),
        _ => named_zone(s),
    }
}

/// `+HHMM` or `-HH:MM` in minutes east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
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
        let min = match &self.tz {
            Zone::Offset(min) => *min,
            Zone::Named(_, tz) => {
                return jiff::Timestamp::from_second(unix)
                    .map(|t| {
                        t.to_zoned(tz.clone())
                            .strftime("%Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default()
            }
        };
        let offset = chrono::FixedOffset::east_opt(min * 60).unwrap_or_else(|| chrono::Utc.fix());
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
            p.tz = tz;
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
        d.insert(b"TimeZone".to_vec(), Value::str(self.tz.text()));
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
        let off = |s: &str| match parse_tz(s) {
            Some(Zone::Offset(m)) => Some(m),
            _ => None,
        };
        assert_eq!(off("+0200"), Some(120));
        assert_eq!(off("-05:30"), Some(-330));
        assert_eq!(off("UTC"), Some(0));
        assert_eq!(off("+2500"), None);
        assert_eq!(tz_text(-330), "-0530");
        let p = Prefs {
            tz: Zone::Offset(120),
            ..Prefs::default()
        };
        assert_eq!(p.format_time(0), "1970-01-01 02:00");
        // Names that could leave the zone database are not looked up.
        for bad in [
            "../etc/passwd",
            "/etc/localtime",
            "Europe/../../x",
            "a//b",
            ".hidden",
            "Nowhere/Land",
        ] {
            assert!(parse_tz(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn named_time_zones_follow_their_rules() {
        // Needs the system's zone database (Debian: tzdata); without it names are refused.
        let Some(zone) = parse_tz("Europe/Paris") else {
            assert!(jiff::tz::db().get("Europe/Paris").is_err());
            return;
        };
        assert_eq!(zone.text(), "Europe/Paris");
        let p = Prefs {
            tz: zone,
            ..Prefs::default()
        };
        // Winter (UTC+1) and summer (UTC+2) time.
        assert_eq!(p.format_time(1_767_225_600), "2026-01-01 01:00");
        assert_eq!(p.format_time(1_782_864_000), "2026-07-01 02:00");
    }

    #[test]
    fn round_trip() {
        let p = Prefs {
            tz: Zone::Offset(-60),
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
        assert_eq!(q.tz.text(), "-0100");
        assert_eq!(q.page_size, 50);
        assert_eq!(q.contacts, p.contacts);
        assert_eq!(q.signature, p.signature);
        assert_eq!(q.fixed_address, Some(false));
        assert_eq!(Prefs::from_dict(&Dict::new()).fixed_address, None);
    }
}
