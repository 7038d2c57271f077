//! Dial-up: the TCP Activity Schedule and the link state it gives (guide.txt:5223-5313).
//!
//! The SMTP sending channel asks [`Link::is_open`] before every connection; while the schedule
//! keeps the link closed, outgoing mail waits in the queue ("Deferred"). The server watches the
//! schedule and releases the queue when a window opens, and reports the state in
//! `GetServerStatus` (`DialupWindow`, `NextWindow`). Log tag `TCP`.
//!
//! ETRN/ATRN wake-ups (`modules::smtp::wakeup`) ask the same `Link`, and its `pause`.
//!
//! todo: RPOP polls (issue 7) will ask the same `Link`.

pub mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDateTime;

use crate::format::Value;
use crate::kernel::clock::SharedClock;
use crate::store::Store;

use schedule::Schedule;

/// The link as the schedule and the clock say it is.
pub struct Link {
    store: Store,
    clock: SharedClock,
    /// Something was kept back because the link was closed (released when it opens).
    held: AtomicBool,
}

impl Link {
    /// The link of the server whose settings are in `store`, at the times `clock` gives.
    pub fn new(store: Store, clock: SharedClock) -> Link {
        Link {
            store,
            clock,
            held: AtomicBool::new(false),
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

    /// The schedule's Pause now: the least time between two wake-ups.
    pub fn pause(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.schedule().pause_at(self.now())))
    }

    /// When the link opens next (now when it is open).
    pub fn next_open(&self) -> Option<NaiveDateTime> {
        self.schedule().next_open(self.now())
    }
}
