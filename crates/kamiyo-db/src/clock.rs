//! The time source of everything that decides by elapsed time: cache lifetimes, rate-limit
//! buckets, the monitor's health window.
//!
//! It is a value passed in (held by [`DbConfig`](crate::DbConfig), and so by the
//! `Database`, the stores and the API state), never read from a global: a test gives its
//! code a [`ManualClock`] and moves time on itself, so that "the entry has expired" is a
//! statement the test makes, not a sleep it hopes was long enough.
//!
//! Not for deadlines on real I/O (socket and statement timeouts, acquisition deadlines):
//! those race against the network and the kernel, which follow the real clock, and stay
//! on tokio's timers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Cheap to clone: the system clock is a unit, a manual one an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

#[derive(Debug)]
struct Manual {
    /// The real instants this clock started from; it moves only when advanced.
    origin: Instant,
    origin_utc: DateTime<Utc>,
    /// Nanoseconds advanced since `origin`. A u64 holds 584 years of advances.
    advanced_nanos: AtomicU64,
}

impl Manual {
    fn advanced(&self) -> Duration {
        Duration::from_nanos(self.advanced_nanos.load(Ordering::Acquire))
    }
}

impl Clock {
    /// The system's clocks: [`Instant::now`] and [`Utc::now`].
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// The monotonic time, for measuring how long ago something happened.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(manual) => manual.origin + manual.advanced(),
        }
    }

    /// The calendar time, for what is compared with stored timestamps.
    pub fn now_utc(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(manual) => {
                // A clock cannot be advanced by more than chrono's range (262,000 years).
                let advanced =
                    chrono::Duration::from_std(manual.advanced()).unwrap_or(chrono::Duration::MAX);
                manual.origin_utc + advanced
            }
        }
    }

    /// Whether time only moves when a test says so (logged at start-up, so that a
    /// manual clock can never pass unnoticed in a running service).
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it: for tests. Its
/// [`ManualClock::clock`] goes wherever a [`Clock`] is taken, and every copy of it sees
/// each advance at once.
#[derive(Debug, Clone)]
pub struct ManualClock {
    manual: Arc<Manual>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// Starts at the real time of the call.
    pub fn new() -> Self {
        ManualClock {
            manual: Arc::new(Manual {
                origin: Instant::now(),
                origin_utc: Utc::now(),
                advanced_nanos: AtomicU64::new(0),
            }),
        }
    }

    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(Arc::clone(&self.manual)),
        }
    }

    /// Moves time on by `by` (saturating at 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .manual
            .advanced_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(nanos))
            });
    }
}

impl From<&ManualClock> for Clock {
    fn from(manual: &ManualClock) -> Self {
        manual.clock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_every_copy_sees_it() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        let copy = clock.clone();
        let (start, start_utc) = (clock.now(), clock.now_utc());
        assert_eq!(clock.now(), start);
        manual.advance(Duration::from_secs(90));
        assert_eq!(copy.now() - start, Duration::from_secs(90));
        assert_eq!(copy.now_utc() - start_utc, chrono::Duration::seconds(90));
        assert!(copy.is_manual() && !Clock::system().is_manual());
    }

    #[test]
    fn the_system_clock_moves_on_its_own() {
        let clock = Clock::system();
        let before = clock.now();
        assert!(clock.now() >= before);
    }
}
