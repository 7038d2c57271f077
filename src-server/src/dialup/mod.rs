//! Dial-up: the TCP Activity Schedule, the link state it gives, and link sessions
//! (guide.txt:5223-5313).
//!
//! The SMTP sending channel asks [`Link::is_open`] before every connection; while the schedule
//! keeps the link closed, outgoing mail waits in the queue ("Deferred"). The server's schedule
//! watcher starts a *link session* when the link is open and there is work: a window just opened,
//! mail waited for the link, or a [`WakeUp`] action says it is due. A session runs every
//! registered action: the queue flush ([`QueueFlush`]), RPOP polls, ETRN/ATRN wake-ups.
//! guide.txt:5296-5298: sessions start at most once per `Pause` of the open schedule row.
//! `WakeUpNow` (the administrator) starts a session at once whatever the Pause, but never while
//! the schedule keeps the link closed. State is shown by `GetServerStatus` (`DialupWindow`,
//! `NextWindow`, `LastSession`, and `RemoteServers`: the last session of each module with each
//! remote server, noted with [`Link::note_remote`]). Log tag `TCP`.
//!
//! Hooking in (ETRN/ATRN wake-ups, RPOP): implement [`WakeUp`] (`name`, `due(now)`,
//! `run(now, all)`, non-blocking) and register it once with [`Link::add_wake_up`] at start-up.
//!
//! Times are the link's clock: the system clock, or `--test-clock` in end-to-end tests.

pub mod schedule;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::NaiveDateTime;

use crate::format::{dict, Dict, Value};
use crate::kernel::clock::SharedClock;
use crate::kernel::log::Level;
use crate::kernel::queue::Queue;
use crate::store::Store;

use schedule::Schedule;

/// One thing a link session does (the queue flush, RPOP polls, ETRN/ATRN wake-ups). Register it
/// with [`Link::add_wake_up`]; the schedule watcher and `WakeUpNow` call it.
pub trait WakeUp: Send + Sync {
    /// Its name in the log and in `WakeUpNow`'s answer (`queue`, `RPOP`, `ETRN`...).
    fn name(&self) -> &str;
    /// Whether it has work of its own at `now` (link time), so that a session should start:
    /// e.g. an RPOP account's Poll Every or the SMTP Send Wakeups Every has run out. Cheap.
    fn due(&self, now: NaiveDateTime) -> bool;
    /// Does its work for a session started at `now`; `all` when a window just opened or the
    /// administrator asked (`WakeUpNow`): everything, not only what is due. Must not block: it
    /// spawns its work (a tokio task or a thread). Returns whether it started anything (only
    /// those are named in the session's list).
    fn run(&self, now: NaiveDateTime, all: bool) -> bool;
}

/// The link as the schedule and the clock say it is.
pub struct Link {
    store: Store,
    clock: SharedClock,
    /// Something was kept back because the link was closed (released when it opens).
    held: AtomicBool,
    /// When the last session started (link time).
    last_session: Mutex<Option<NaiveDateTime>>,
    wake_ups: RwLock<Vec<Arc<dyn WakeUp>>>,
    /// The last session with each remote server, by `MODULE server`.
    remotes: Mutex<BTreeMap<String, RemoteSession>>,
}

/// The last session with one remote server (`GetServerStatus` `RemoteServers`).
#[derive(Debug, Clone)]
struct RemoteSession {
    module: String,
    server: String,
    time: NaiveDateTime,
    result: String,
    messages: usize,
}

impl Link {
    /// The link of the server whose settings are in `store`, at the times `clock` gives.
    pub fn new(store: Store, clock: SharedClock) -> Link {
        Link {
            store,
            clock,
            held: AtomicBool::new(false),
            last_session: Mutex::new(None),
            wake_ups: RwLock::new(Vec::new()),
            remotes: Mutex::new(BTreeMap::new()),
        }
    }

    /// The stored schedule; a broken one (it can only be written validated) counts as none.
    pub fn schedule(&self) -> Schedule {
        match self.store.server_settings(schedule::SETTINGS) {
            Ok(v @ Value::Array(_)) => Schedule::from_value(&v).unwrap_or_default(),
            _ => Schedule::default(),
        }
    }

    /// The local time now.
    pub fn now(&self) -> NaiveDateTime {
        self.clock.now().naive_local()
    }

    /// The link's clock (RPOP's Poll Every and Last use it too).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Whether outgoing connections may be made now.
    pub fn is_open(&self) -> bool {
        self.schedule().is_open(self.now())
    }

    /// Notes that a delivery waits for the link to open.
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// Whether anything waited since the last call (and forgets it).
    pub fn take_held(&self) -> bool {
        self.held.swap(false, Ordering::SeqCst)
    }

    /// When the link opens next (now when it is open).
    pub fn next_open(&self) -> Option<NaiveDateTime> {
        self.schedule().next_open(self.now())
    }

    /// Records a session of `module` with a remote `server` now: its result (`OK` or the error)
    /// and the messages it moved.
    pub fn note_remote(&self, module: &str, server: &str, result: String, messages: usize) {
        let entry = RemoteSession {
            module: module.to_string(),
            server: server.to_ascii_lowercase(),
            time: self.now(),
            result,
            messages,
        };
        self.remotes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(format!("{module} {}", entry.server), entry);
    }

    /// `RemoteServers`: `MODULE server` to {Module; Server; Time; Result; Messages}.
    pub fn remotes(&self) -> Dict {
        self.remotes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, r)| {
                (
                    k.clone().into_bytes(),
                    dict([
                        ("Module", Value::from(r.module.clone())),
                        ("Server", Value::from(r.server.clone())),
                        (
                            "Time",
                            Value::from(r.time.format("%Y-%m-%d %H:%M:%S").to_string()),
                        ),
                        ("Result", Value::from(r.result.clone())),
                        ("Messages", Value::from(r.messages.to_string())),
                    ]),
                )
            })
            .collect()
    }

    /// Adds an action every session runs (in the order added).
    pub fn add_wake_up(&self, w: Arc<dyn WakeUp>) {
        self.wake_ups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(w);
    }

    fn actions(&self) -> Vec<Arc<dyn WakeUp>> {
        self.wake_ups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether some action has work of its own now.
    pub fn any_due(&self) -> bool {
        let now = self.now();
        self.actions().iter().any(|w| w.due(now))
    }

    /// When the last session started.
    pub fn last_session(&self) -> Option<NaiveDateTime> {
        *self
            .last_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a session may start now: the link is open and the Pause of the open row has
    /// passed since the last session started (a clock set back counts as passed).
    pub fn session_allowed(&self) -> bool {
        let now = self.now();
        let Some(pause) = self.schedule().pause(now) else {
            return false;
        };
        match self.last_session() {
            Some(last) if now >= last => (now - last).num_seconds() >= i64::from(pause),
            _ => true,
        }
    }

    /// Starts a session now: records its time and runs every action. Returns the names of
    /// those that started something.
    pub fn start_session(&self, all: bool) -> Vec<String> {
        let now = self.now();
        *self
            .last_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now);
        self.actions()
            .iter()
            .filter(|w| w.run(now, all))
            .map(|w| w.name().to_string())
            .collect()
    }

    /// `WakeUpNow`: a session at once with everything, where the schedule lets the link open
    /// (the Pause does not hold back the administrator); otherwise why not.
    pub fn wake_up_now(&self) -> Result<Vec<String>, String> {
        if !self.is_open() {
            let until = self.next_open().map_or_else(
                || "further notice".to_string(),
                |t| t.format("%Y-%m-%d %H:%M").to_string(),
            );
            return Err(format!(
                "The TCP Activity Schedule keeps the link closed until {until}"
            ));
        }
        Ok(self.start_session(true))
    }
}

/// The session action that sends the mail waiting in the queue (guide.txt:11447-11450: when
/// the schedule allows, all queued mail is sent).
pub struct QueueFlush(pub Arc<Queue>);

impl WakeUp for QueueFlush {
    fn name(&self) -> &str {
        "queue"
    }

    /// The queue asks for a session only through [`Link::hold`].
    fn due(&self, _: NaiveDateTime) -> bool {
        false
    }

    /// Always runs: releasing nothing is still a look at the queue.
    fn run(&self, _: NaiveDateTime, _: bool) -> bool {
        let released = self.0.release(None);
        self.0.logger().log(
            if released > 0 {
                Level::Major
            } else {
                Level::LowLevel
            },
            "TCP",
            format_args!("the link is open; {released} waiting message(s) released"),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::ManualClock;
    use std::sync::atomic::AtomicUsize;

    struct Counter(AtomicUsize, AtomicBool);
    impl WakeUp for Counter {
        fn name(&self) -> &str {
            "counter"
        }
        fn due(&self, _: NaiveDateTime) -> bool {
            self.1.load(Ordering::SeqCst)
        }
        fn run(&self, _: NaiveDateTime, _: bool) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            true
        }
    }

    /// An action with nothing to do (no backup server, no remote account).
    struct Idle;
    impl WakeUp for Idle {
        fn name(&self) -> &str {
            "idle"
        }
        fn due(&self, _: NaiveDateTime) -> bool {
            false
        }
        fn run(&self, _: NaiveDateTime, _: bool) -> bool {
            false
        }
    }

    #[test]
    fn sessions_at_most_once_per_pause_and_wake_up_now() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "example.test").unwrap();
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00+00:00").unwrap();
        let clock = ManualClock::new(t0);
        let link = Link::new(store.clone(), clock.clone());
        let c = Arc::new(Counter(AtomicUsize::new(0), AtomicBool::new(true)));
        link.add_wake_up(c.clone());
        link.add_wake_up(Arc::new(Idle));
        assert!(link.any_due());
        let sched =
            crate::format::parse(br#"({Days="Every Day"; When="08:00-10:00"; Pause=600;})"#)
                .unwrap();
        store
            .set_server_settings(schedule::SETTINGS, &sched)
            .unwrap();
        assert!(link.session_allowed());
        assert_eq!(link.start_session(false), vec!["counter"]);
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        clock.advance(chrono::TimeDelta::seconds(599));
        assert!(!link.session_allowed(), "within the Pause");
        assert_eq!(
            link.wake_up_now(),
            Ok(vec!["counter".to_string()]),
            "the administrator is not held back; only actions that ran are named"
        );
        assert_eq!(c.0.load(Ordering::SeqCst), 2);
        clock.advance(chrono::TimeDelta::seconds(600));
        assert!(link.session_allowed());
        clock.advance(chrono::TimeDelta::hours(2));
        assert!(!link.session_allowed(), "closed");
        let e = link.wake_up_now().unwrap_err();
        assert!(e.contains("closed until"), "{e}");
        assert_eq!(c.0.load(Ordering::SeqCst), 2);
    }
}
