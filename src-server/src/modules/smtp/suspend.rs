//! Per-domain suspension of outgoing SMTP: after a failed connection, every message for that
//! domain (or for the `ForwardTo` relay) waits until the retry time, instead of each message
//! trying to connect on its own schedule (guide.txt:11346-11351: "every message for that domain
//! is suspended for this interval").
//!
//! What suspends: no address of the destination took a connection (refused, timed out, or a
//! 4xx/5xx greeting). A 4xx to MAIL/RCPT/DATA is about one message and suspends nothing.
//! The interval is the Queue's `RetryEvery`.
//!
//! When the time is up, the next message for the destination tries to connect (the one that
//! failed first is due then, as its own retry is one `RetryEvery` after the failure). If the
//! connection works, the suspension is lifted and the queues it held are released
//! (`Queue::release`), so the waiting messages go at once; if not, it is suspended again.
//!
//! Times are the queue's clock (Unix seconds); the text shown in `ListQueue` gives the local time.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::kernel::queue::Queue;

/// One suspended destination.
#[derive(Debug, Clone)]
struct Suspension {
    /// Unix seconds; no connection is tried before.
    until: i64,
    /// The failure that suspended it.
    reason: String,
    /// The queue names (Router hosts) of the messages held back, released when it is lifted.
    queues: BTreeSet<String>,
}

/// The suspended destinations of the SMTP channel.
pub struct Suspensions {
    queue: Arc<Queue>,
    map: Mutex<HashMap<String, Suspension>>,
}

impl Suspensions {
    /// Suspensions timed and released through `queue`.
    pub fn new(queue: Arc<Queue>) -> Suspensions {
        Suspensions {
            queue,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn until_text(&self, until: i64) -> String {
        let now = self.queue.clock().now();
        let at = now + chrono::Duration::seconds(until.saturating_sub(now.timestamp()));
        at.format("%H:%M:%S").to_string()
    }

    /// Why a message for `dest` (queue `queue_name`) must wait now, or `None` when it may try.
    pub fn check(&self, dest: &str, queue_name: &str) -> Option<String> {
        let now = self.queue.now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let s = map.get_mut(dest)?;
        if now >= s.until {
            return None;
        }
        s.queues.insert(queue_name.to_ascii_lowercase());
        let (until, reason) = (s.until, s.reason.clone());
        drop(map);
        Some(format!(
            "{dest} is suspended until {} after a failed connection: {reason}",
            self.until_text(until)
        ))
    }

    /// A connection to `dest` failed: suspends it for `RetryEvery`. Returns the note for the
    /// deferred recipient's text.
    pub fn failed(&self, dest: &str, queue_name: &str, reason: &str) -> String {
        let until = self.queue.now() + self.queue.settings().retry_every;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let s = map.entry(dest.to_string()).or_insert_with(|| Suspension {
            until,
            reason: String::new(),
            queues: BTreeSet::new(),
        });
        s.until = until;
        s.reason = reason.to_string();
        s.queues.insert(queue_name.to_ascii_lowercase());
        drop(map);
        format!("{dest} suspended until {}", self.until_text(until))
    }

    /// A connection to `dest` worked: lifts its suspension and releases the messages it held.
    /// Returns how many messages were released.
    pub fn connected(&self, dest: &str) -> usize {
        let lifted = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(dest);
        lifted.map_or(0, |s| {
            s.queues.iter().map(|q| self.queue.release(Some(q))).sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::clock::ManualClock;
    use crate::kernel::log::{LogSettings, Logger};
    use crate::kernel::queue::QueueSettings;
    use chrono::{DateTime, TimeDelta};

    #[test]
    fn a_failed_connection_holds_the_destination_until_retry_every() {
        let dir = tempfile::tempdir().unwrap();
        let clock =
            ManualClock::new(DateTime::parse_from_rfc3339("2024-03-01T10:00:00+00:00").unwrap());
        let logger = Logger::open(
            dir.path().join("SystemLogs"),
            LogSettings::default(),
            clock.clone(),
        )
        .unwrap();
        let settings = QueueSettings {
            retry_every: 600,
            ..QueueSettings::default()
        };
        let q = Queue::open(dir.path(), "example.com", clock.clone(), logger, settings).unwrap();
        let s = Suspensions::new(q);
        assert_eq!(s.check("far.example", "far.example"), None);
        let note = s.failed("far.example", "far.example", "connection refused");
        assert_eq!(note, "far.example suspended until 10:10:00");
        clock.advance(TimeDelta::seconds(599));
        let why = s.check("far.example", "far.example").unwrap();
        assert!(why.contains("until 10:10:00") && why.contains("connection refused"));
        // Another destination is not held.
        assert_eq!(s.check("near.example", "near.example"), None);
        clock.advance(TimeDelta::seconds(1));
        assert_eq!(s.check("far.example", "far.example"), None);
        // It failed again: held again from now.
        s.failed("far.example", "far.example", "timed out");
        assert!(s.check("far.example", "far.example").is_some());
        assert_eq!(s.connected("far.example"), 0);
        assert_eq!(s.check("far.example", "far.example"), None);
    }
}
