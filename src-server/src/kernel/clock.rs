//! A wall clock that can be replaced in tests.
//!
//! Everything that depends on the local date or time of day (log file names and midnight rollover,
//! the dial-up TCP Activity Schedule, file retention) asks a [`Clock`] instead of calling
//! `Local::now()`, so tests can cross midnight or age files out without waiting.
//! guide.txt:2446-2447: time stamps are the server's local time, so the clock returns local time
//! with its UTC offset.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, FixedOffset, Local, TimeDelta, Utc};

/// A source of the current local time.
pub trait Clock: Send + Sync + 'static {
    /// The current local time, with its offset from UTC.
    fn now(&self) -> DateTime<FixedOffset>;
}

/// A clock shared between threads and components.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock in the server's local time zone.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// A [`SharedClock`] reading the system clock.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<FixedOffset> {
        Local::now().fixed_offset()
    }
}

/// A clock that stands still until it is set or advanced (for tests and simulations).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<FixedOffset>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<FixedOffset>) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: Mutex::new(start),
        })
    }

    /// Sets the time shown.
    pub fn set(&self, t: DateTime<FixedOffset>) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = t;
    }

    /// Moves the time shown forward (or back, with a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<FixedOffset> {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The clock of `gatehoused --test-clock TIME` (end-to-end tests only): it starts at `TIME`, runs
/// on with the system clock, and the test-only CLI command `SetTestClock` moves it, so a test can
/// step into or out of a TCP Activity Schedule window without waiting for one.
#[derive(Debug)]
pub struct TestClock {
    /// (shown time - system time, the UTC offset shown).
    shift: Mutex<(TimeDelta, FixedOffset)>,
}

impl TestClock {
    /// A clock showing `at` now.
    pub fn starting(at: DateTime<FixedOffset>) -> Arc<TestClock> {
        let c = Arc::new(TestClock {
            shift: Mutex::new((TimeDelta::zero(), *at.offset())),
        });
        c.set(at);
        c
    }

    /// Makes the clock show `at` now (and run on from there).
    pub fn set(&self, at: DateTime<FixedOffset>) {
        *self.shift.lock().unwrap_or_else(PoisonError::into_inner) =
            (at.to_utc() - Utc::now(), *at.offset());
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<FixedOffset> {
        let (delta, offset) = *self.shift.lock().unwrap_or_else(PoisonError::into_inner);
        (Utc::now() + delta).with_timezone(&offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_sets_and_advances() {
        let t0 = DateTime::parse_from_rfc3339("2024-03-01T23:59:59+02:00").unwrap();
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(TimeDelta::seconds(2));
        assert_eq!(c.now().date_naive().to_string(), "2024-03-02");
        c.set(t0);
        assert_eq!(c.now(), t0);
    }

    #[test]
    fn test_clock_starts_at_the_time_given_and_runs() {
        let t0 = DateTime::parse_from_rfc3339("2030-01-07T03:00:00+05:00").unwrap();
        let c = TestClock::starting(t0);
        let d = c.now() - t0;
        assert!(d >= TimeDelta::zero() && d < TimeDelta::seconds(5));
        assert_eq!(c.now().offset(), t0.offset());
        let t1 = DateTime::parse_from_rfc3339("2030-01-07T21:00:00+05:00").unwrap();
        c.set(t1);
        assert!((c.now() - t1).num_seconds().abs() < 5);
    }

    #[test]
    fn system_clock_is_close_to_utc_now() {
        let d = SystemClock.now().to_utc() - chrono::Utc::now();
        assert!(d.num_seconds().abs() < 5);
    }
}
