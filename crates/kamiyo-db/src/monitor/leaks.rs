//! Leak detection: every checked-out connection is registered with where (file and line)
//! and when it was taken. A watchdog reports those held past the threshold once each
//! (WARN), and says when they come back (INFO); the current list is always available.

use std::panic::Location;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

#[derive(Debug)]
struct Checkout {
    site: &'static Location<'static>,
    since: Instant,
    reported: bool,
}

/// Open checkouts in slots reused through a free list: a checkout's id is its slot, so
/// registering and releasing (once per acquisition, on every query's path) hash nothing.
/// The slots never outnumber the connections that were out at the same time.
#[derive(Debug, Default)]
pub struct Checkouts {
    open: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<Checkout>>,
    free: Vec<usize>,
}

impl Slots {
    fn open(&self) -> impl Iterator<Item = &Checkout> {
        self.slots.iter().flatten()
    }
}

/// A connection held longer than the leak threshold.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LeakWarning {
    pub pool: String,
    /// `file:line` of the `acquire()` call that took the connection.
    pub acquired_at: String,
    pub held_ms: u64,
    pub threshold_ms: u64,
}

impl Checkouts {
    /// Registers a checkout taken at `site` at `since`; returns its id for `release`.
    pub fn register(&self, site: &'static Location<'static>, since: Instant) -> u64 {
        let checkout = Some(Checkout {
            site,
            since,
            reported: false,
        });
        let mut open = self.open.lock();
        let slot = match open.free.pop() {
            Some(slot) => {
                open.slots[slot] = checkout;
                slot
            }
            None => {
                open.slots.push(checkout);
                open.slots.len() - 1
            }
        };
        slot as u64
    }

    /// Removes the checkout; logs its return when it had been reported as a leak.
    pub fn release(&self, pool: &str, id: u64) {
        let checkout = {
            let mut open = self.open.lock();
            let Ok(slot) = usize::try_from(id) else {
                return;
            };
            let Some(checkout) = open.slots.get_mut(slot).and_then(Option::take) else {
                return;
            };
            open.free.push(slot);
            checkout
        };
        if checkout.reported {
            tracing::info!(
                pool,
                acquired_at = %site(checkout.site),
                held_ms = checkout.since.elapsed().as_millis() as u64,
                "connection reported as leaked was returned"
            );
        }
    }

    /// Connections held longer than `threshold` right now, oldest first.
    pub fn leaks(&self, pool: &str, threshold: Duration) -> Vec<LeakWarning> {
        let now = Instant::now();
        let mut leaks: Vec<LeakWarning> = self
            .open
            .lock()
            .open()
            .filter(|c| now.duration_since(c.since) >= threshold)
            .map(|c| LeakWarning {
                pool: pool.to_owned(),
                acquired_at: site(c.site),
                held_ms: now.duration_since(c.since).as_millis() as u64,
                threshold_ms: threshold.as_millis() as u64,
            })
            .collect();
        leaks.sort_by_key(|leak| std::cmp::Reverse(leak.held_ms));
        leaks
    }

    /// Logs one WARN per connection newly past the threshold; returns how many.
    pub fn report_new_leaks(&self, pool: &str, threshold: Duration) -> usize {
        let now = Instant::now();
        let mut open = self.open.lock();
        let mut reported = 0;
        for checkout in open.slots.iter_mut().flatten() {
            let held = now.duration_since(checkout.since);
            if !checkout.reported && held >= threshold {
                checkout.reported = true;
                reported += 1;
                tracing::warn!(
                    pool,
                    acquired_at = %site(checkout.site),
                    held_ms = held.as_millis() as u64,
                    threshold_ms = threshold.as_millis() as u64,
                    "connection held longer than the leak threshold"
                );
            }
        }
        reported
    }
}

fn site(location: &Location<'_>) -> String {
    format!("{}:{}", location.file(), location.line())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_checkout_is_reported_once_with_its_site_and_clears_on_release() {
        let checkouts = Checkouts::default();
        let line = line!() + 1;
        let id = checkouts.register(Location::caller(), Instant::now());
        assert!(checkouts.leaks("p", Duration::from_secs(60)).is_empty());
        let leaks = checkouts.leaks("p", Duration::ZERO);
        assert_eq!(leaks.len(), 1);
        assert!(
            leaks[0].acquired_at.ends_with(&format!("leaks.rs:{line}")),
            "{:?}",
            leaks[0]
        );
        assert_eq!(checkouts.report_new_leaks("p", Duration::ZERO), 1);
        assert_eq!(
            checkouts.report_new_leaks("p", Duration::ZERO),
            0,
            "reported once"
        );
        checkouts.release("p", id);
        assert!(checkouts.leaks("p", Duration::ZERO).is_empty());
    }

    #[test]
    fn released_slots_are_reused_and_a_stale_release_is_ignored() {
        let checkouts = Checkouts::default();
        let first = checkouts.register(Location::caller(), Instant::now());
        let second = checkouts.register(Location::caller(), Instant::now());
        checkouts.release("p", first);
        let third = checkouts.register(Location::caller(), Instant::now());
        assert_eq!(third, first, "the freed slot is reused");
        checkouts.release("p", second);
        checkouts.release("p", second);
        assert_eq!(checkouts.leaks("p", Duration::ZERO).len(), 1);
        assert_eq!(checkouts.open.lock().slots.len(), 2);
    }
}
