//! The session registry: who is logged in to which account, over which module, from where,
//! since when, and (IMAP) with which mailbox selected.
//!
//! An extension: the guide keeps no per-account session list and no per-account session limit
//! (the modules' Channels limit whole modules, guide.txt:14490 and 14740; the listeners' per-IP
//! limit is in `net::listener`). Issue 6 asks for both: the account setting `MaxAccountSessions`
//! (our name, `store::settings`) is checked here at registration, and the CLI commands
//! `ListAccountSessions`, `GetMailboxSessions` and `KillAccountSessions` read and end sessions.
//!
//! IMAP and POP register a connection after a successful login, WebUser a WebMail session (kept
//! with it in `http::auth::Sessions`, so it leaves the registry when it ends or times out; a
//! timed-out one at the next WebUser request). A module registers a session after a successful login and keeps the returned [`SessionGuard`]
//! for as long as the session lives; dropping the guard unregisters it, so a session that ends in
//! any way (LOGOUT, I/O error, panic unwinding) leaves the registry. Killing a session only
//! signals its guard ([`SessionGuard::killed`]); the session itself says goodbye on the wire in
//! its protocol's way and drops the guard.
//!
//! Implementation notes: one `std::sync::Mutex` over a map; it is held only to insert, remove,
//! update or copy entries, never across I/O or an `.await`. The limit check and the insertion
//! happen under the same lock, so two logins racing for the last slot cannot both get it.
//! Accounts are keyed by (domain, name) in lower case, as the store treats names.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::net::sasl::AccountId;

/// One session as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The module's name (`IMAP`, `POP`, `WebMail`).
    pub module: &'static str,
    /// The client's address.
    pub address: IpAddr,
    /// When the login succeeded.
    pub since: SystemTime,
    /// The selected (IMAP) or open (POP) mailbox as the client named it, if any.
    pub mailbox: Option<String>,
    /// Where that mailbox is stored: sessions of other accounts on a shared mailbox and
    /// sessions naming it through an alias are found by this.
    pub path: Option<PathBuf>,
    /// The account, `name@domain`.
    pub account: String,
}

/// A login refused because the account already has `limit` sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the account has too many sessions open (the limit is {limit})")]
pub struct LimitReached {
    /// The limit in force.
    pub limit: usize,
}

struct Entry {
    account: (String, String),
    info: SessionInfo,
    kill: watch::Sender<bool>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    live: BTreeMap<u64, Entry>,
}

/// Every logged-in session of the server (one per server, in `CliContext::sessions`).
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

fn key(account: &AccountId) -> (String, String) {
    key_of(&account.domain, &account.name)
}

fn key_of(domain: &str, name: &str) -> (String, String) {
    (domain.to_ascii_lowercase(), name.to_ascii_lowercase())
}

impl Registry {
    /// A registry with no sessions.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held cannot leave the map half-updated (each change is one
        // insert or remove), so a poisoned lock is still good to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session of `account` unless it already has `limit` sessions (`None`: no limit).
    pub fn register(
        self: &Arc<Self>,
        account: &AccountId,
        module: &'static str,
        address: IpAddr,
        limit: Option<usize>,
    ) -> Result<SessionGuard, LimitReached> {
        let shown = account.to_string();
        let account = key(account);
        let mut inner = self.lock();
        if let Some(limit) = limit {
            let open = inner.live.values().filter(|e| e.account == account).count();
            if open >= limit {
                return Err(LimitReached { limit });
            }
        }
        inner.next += 1;
        let id = inner.next;
        let (kill, killed) = watch::channel(false);
        let info = SessionInfo {
            module,
            address,
            since: SystemTime::now(),
            mailbox: None,
            path: None,
            account: shown,
        };
        inner.live.insert(
            id,
            Entry {
                account,
                info,
                kill,
            },
        );
        Ok(SessionGuard {
            registry: Arc::clone(self),
            id,
            killed,
        })
    }

    /// The sessions of an account, oldest first.
    pub fn list(&self, domain: &str, name: &str) -> Vec<SessionInfo> {
        let account = key_of(domain, name);
        self.lock()
            .live
            .values()
            .filter(|e| e.account == account)
            .map(|e| e.info.clone())
            .collect()
    }

    /// The sessions, of any account, that have the mailbox stored at `path` selected or open.
    pub fn on_mailbox(&self, path: &Path) -> Vec<SessionInfo> {
        self.lock()
            .live
            .values()
            .filter(|e| e.info.path.as_deref() == Some(path))
            .map(|e| e.info.clone())
            .collect()
    }

    /// Asks every session of an account to end; returns how many were asked.
    pub fn kill(&self, domain: &str, name: &str) -> usize {
        let account = key_of(domain, name);
        let inner = self.lock();
        let mut n = 0;
        for e in inner.live.values().filter(|e| e.account == account) {
            e.kill.send_replace(true);
            n += 1;
        }
        n
    }

    /// Number of sessions open, all accounts.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// True when no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A registered session; dropping it unregisters the session.
pub struct SessionGuard {
    registry: Arc<Registry>,
    id: u64,
    killed: watch::Receiver<bool>,
}

impl SessionGuard {
    /// Records the selected or open mailbox: its name as the client gave it and where it is
    /// stored (`None` after CLOSE or UNSELECT).
    pub fn set_mailbox(&self, mailbox: Option<(&str, &Path)>) {
        let mut inner = self.registry.lock();
        if let Some(e) = inner.live.get_mut(&self.id) {
            if e.info.path.as_deref() != mailbox.map(|m| m.1)
                || e.info.mailbox.as_deref() != mailbox.map(|m| m.0)
            {
                e.info.mailbox = mailbox.map(|m| m.0.to_string());
                e.info.path = mailbox.map(|m| m.1.to_path_buf());
            }
        }
    }

    /// True once the session has been killed.
    pub fn is_killed(&self) -> bool {
        *self.killed.borrow()
    }

    /// Completes when the session is killed (never before).
    pub async fn killed(&mut self) {
        // The sender lives in the registry entry, which lives as long as this guard: the channel
        // cannot close while we wait, and if it somehow did, waiting forever is the right answer.
        if self.killed.wait_for(|k| *k).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.registry.lock().live.remove(&self.id);
    }
}

/// Parses a `MaxAccountSessions` value: a number, `0` or `unlimited` for no limit.
pub fn parse_limit(text: &str) -> Option<Option<usize>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Some(None);
    }
    match t.parse::<usize>() {
        Ok(0) => Some(None),
        Ok(n) => Some(Some(n)),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> AccountId {
        AccountId {
            name: name.into(),
            domain: "example.com".into(),
        }
    }

    fn ip() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn register_list_and_drop() {
        let r = Registry::new();
        let a = r.register(&id("ann"), "IMAP", ip(), None).unwrap();
        let b = r.register(&id("ann"), "POP", ip(), None).unwrap();
        let _c = r.register(&id("bob"), "IMAP", ip(), None).unwrap();
        let list = r.list("Example.COM", "Ann");
        assert_eq!(
            list.iter().map(|s| s.module).collect::<Vec<_>>(),
            ["IMAP", "POP"]
        );
        assert!(list
            .iter()
            .all(|s| s.mailbox.is_none() && s.address == ip()));
        drop(a);
        assert_eq!(r.list("example.com", "ann").len(), 1);
        drop(b);
        assert!(r.list("example.com", "ann").is_empty());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_limit_counts_only_that_account() {
        let r = Registry::new();
        let _a = r.register(&id("ann"), "IMAP", ip(), Some(2)).unwrap();
        let b = r.register(&id("ann"), "POP", ip(), Some(2)).unwrap();
        assert_eq!(
            r.register(&id("ann"), "IMAP", ip(), Some(2)).err(),
            Some(LimitReached { limit: 2 })
        );
        // Another account is not affected; no limit means no limit.
        assert!(r.register(&id("bob"), "IMAP", ip(), Some(2)).is_ok());
        let _more = r.register(&id("ann"), "IMAP", ip(), None).unwrap();
        // A slot freed is a slot available again (3 open with no limit, so 2 is still too few).
        drop(b);
        assert!(r.register(&id("ann"), "IMAP", ip(), Some(2)).is_err());
        assert!(r.register(&id("ann"), "IMAP", ip(), Some(3)).is_ok());
    }

    #[test]
    fn mailbox_is_tracked_and_found() {
        let r = Registry::new();
        let a = r.register(&id("ann"), "IMAP", ip(), None).unwrap();
        let b = r.register(&id("ann"), "IMAP", ip(), None).unwrap();
        let c = r.register(&id("bob"), "IMAP", ip(), None).unwrap();
        let (inbox, sent) = (
            Path::new("/b/ann/INBOX.mbox"),
            Path::new("/b/ann/Sent.mbox"),
        );
        a.set_mailbox(Some(("INBOX", inbox)));
        b.set_mailbox(Some(("Sent", sent)));
        // Bob has Ann's INBOX open through an alias: found by where it is stored.
        c.set_mailbox(Some(("annbox", inbox)));
        let on = r.on_mailbox(inbox);
        assert_eq!(
            on.iter().map(|s| s.account.as_str()).collect::<Vec<_>>(),
            ["ann@example.com", "bob@example.com"]
        );
        assert_eq!(on[1].mailbox.as_deref(), Some("annbox"));
        assert_eq!(r.on_mailbox(sent).len(), 1);
        a.set_mailbox(None);
        assert_eq!(r.on_mailbox(inbox).len(), 1);
        assert_eq!(
            r.list("example.com", "ann")[1].mailbox.as_deref(),
            Some("Sent")
        );
    }

    #[tokio::test]
    async fn kill_signals_only_that_account() {
        let r = Registry::new();
        let mut a = r.register(&id("ann"), "IMAP", ip(), None).unwrap();
        let b = r.register(&id("bob"), "POP", ip(), None).unwrap();
        assert!(!a.is_killed());
        assert_eq!(r.kill("example.com", "ANN"), 1);
        assert!(a.is_killed() && !b.is_killed());
        tokio::time::timeout(std::time::Duration::from_secs(5), a.killed())
            .await
            .unwrap();
        // Killing is a request: the entry stays until the session drops its guard.
        assert_eq!(r.list("example.com", "ann").len(), 1);
        drop(a);
        assert_eq!(r.kill("example.com", "ann"), 0);
    }

    #[test]
    fn limits_parse() {
        assert_eq!(parse_limit("50"), Some(Some(50)));
        assert_eq!(parse_limit(" 0 "), Some(None));
        assert_eq!(parse_limit("Unlimited"), Some(None));
        assert_eq!(parse_limit("many"), None);
        assert_eq!(parse_limit("-1"), None);
    }
}
