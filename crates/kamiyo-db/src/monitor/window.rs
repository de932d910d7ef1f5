//! A rolling window of recent acquisitions: health looks at the last few minutes, never
//! at everything since start (one bad hour must not mark the process sick forever).
//!
//! Events are placed by the injected [`Clock`], so a test moves the window on by
//! advancing its manual clock instead of sleeping through it.

use std::time::{Duration, Instant};

use crate::clock::Clock;

use parking_lot::Mutex;
use serde::Serialize;

const SLOTS: usize = 30;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    epoch: u64,
    acquisitions: u64,
    wait_nanos: u64,
    timeouts: u64,
    failures: u64,
}

#[derive(Debug)]
pub struct RollingWindow {
    clock: Clock,
    started: Instant,
    slot_nanos: u64,
    window: Duration,
    slots: Mutex<[Slot; SLOTS]>,
}

/// Totals over the window, as of the moment of asking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WindowTotals {
    pub window_seconds: f64,
    pub acquisitions: u64,
    pub timeouts: u64,
    /// Failed acquisitions of every kind, timeouts included.
    pub failures: u64,
    pub mean_wait_ms: f64,
}

impl RollingWindow {
    pub fn new(window: Duration, clock: Clock) -> Self {
        let slot_nanos = (window.as_nanos() / SLOTS as u128).max(1);
        RollingWindow {
            started: clock.now(),
            clock,
            slot_nanos: u64::try_from(slot_nanos).unwrap_or(u64::MAX),
            window,
            slots: Mutex::new([Slot::default(); SLOTS]),
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed =
            u64::try_from(now.duration_since(self.started).as_nanos()).unwrap_or(u64::MAX);
        // Epoch 0 is reserved for "never used", so counting starts at 1.
        elapsed / self.slot_nanos + 1
    }

    fn with_slot(&self, now: Instant, update: impl FnOnce(&mut Slot)) {
        let epoch = self.epoch(now);
        let mut slots = self.slots.lock();
        let slot = &mut slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch != epoch {
            *slot = Slot {
                epoch,
                ..Slot::default()
            };
        }
        update(slot);
    }

    /// An acquisition that succeeded now after waiting `wait`.
    pub fn record_acquisition(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.with_slot(self.clock.now(), |slot| {
            slot.acquisitions += 1;
            slot.wait_nanos = slot.wait_nanos.saturating_add(nanos);
        });
    }

    pub fn record_failure(&self, timed_out: bool) {
        self.with_slot(self.clock.now(), |slot| {
            slot.failures += 1;
            if timed_out {
                slot.timeouts += 1;
            }
        });
    }

    pub fn totals(&self) -> WindowTotals {
        let current = self.epoch(self.clock.now());
        let oldest = current.saturating_sub(SLOTS as u64 - 1);
        let slots = self.slots.lock();
        let mut totals = (0u64, 0u64, 0u64, 0u64);
        for slot in slots
            .iter()
            .filter(|s| s.epoch >= oldest && s.epoch <= current && s.epoch != 0)
        {
            totals.0 += slot.acquisitions;
            totals.1 = totals.1.saturating_add(slot.wait_nanos);
            totals.2 += slot.timeouts;
            totals.3 += slot.failures;
        }
        WindowTotals {
            window_seconds: self.window.as_secs_f64(),
            acquisitions: totals.0,
            timeouts: totals.2,
            failures: totals.3,
            mean_wait_ms: if totals.0 == 0 {
                0.0
            } else {
                totals.1 as f64 / totals.0 as f64 / 1e6
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn totals_cover_recent_events() {
        let window = RollingWindow::new(Duration::from_secs(300), Clock::system());
        window.record_acquisition(Duration::from_millis(10));
        window.record_acquisition(Duration::from_millis(30));
        window.record_failure(true);
        window.record_failure(false);
        let totals = window.totals();
        assert_eq!(
            (totals.acquisitions, totals.timeouts, totals.failures),
            (2, 1, 2)
        );
        assert!((totals.mean_wait_ms - 20.0).abs() < 1e-9);
    }

    #[test]
    fn events_older_than_the_window_are_forgotten() {
        let time = ManualClock::new();
        let window = RollingWindow::new(Duration::from_millis(60), time.clock());
        window.record_failure(true);
        time.advance(Duration::from_millis(59));
        assert_eq!(window.totals().timeouts, 1, "still within the window");
        time.advance(Duration::from_millis(3));
        assert_eq!(window.totals().timeouts, 0);
    }
}
