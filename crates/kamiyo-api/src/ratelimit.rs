//! Token buckets per caller (API key, or client address for anonymous callers) for the
//! minute, hour and day windows. A request is admitted only when every window has a
//! token, and only then is one taken from each: a request denied by one window costs
//! nothing in the others.
//!
//! Memory is bounded twice: callers idle for a day (full again by then, so forgetting
//! them changes nothing) are dropped, and past `max_callers` the least recently seen
//! caller is forgotten first (it starts again with full buckets). An attacker cycling
//! through addresses can therefore only reset the oldest callers' buckets, never grow
//! the process.
//!
//! Time comes from the injected [`Clock`]: tests refill buckets by advancing a manual one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hashlink::LruCache;
use kamiyo_db::monitor::prometheus::Exposition;
use kamiyo_db::Clock;
use kamiyo_domain::TierLimits;
use parking_lot::Mutex;

const WINDOWS: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(3600),
    Duration::from_secs(86_400),
];
/// A caller idle this long has full buckets again: forgetting it changes nothing.
const IDLE: Duration = Duration::from_secs(86_400);
/// How many checks between sweeps of idle callers.
const SWEEP_EVERY: u64 = 4096;

/// Tokens per window: minute, hour, day.
pub type Capacity = [u32; 3];

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
struct Entry {
    buckets: [Bucket; 3],
    last_seen: Instant,
}

impl Entry {
    fn full(capacity: Capacity, now: Instant) -> Entry {
        Entry {
            buckets: std::array::from_fn(|i| Bucket {
                tokens: f64::from(capacity[i]),
                updated: now,
            }),
            last_seen: now,
        }
    }

    /// Refills every window to `now`, then takes a token from each if each has one.
    fn take(&mut self, capacity: Capacity, now: Instant) -> Decision {
        let mut tokens = self.refilled(capacity, now);
        self.last_seen = now;
        let allowed = tokens.iter().all(|t| *t >= 1.0);
        if allowed {
            for t in &mut tokens {
                *t -= 1.0;
            }
        }
        for (bucket, t) in self.buckets.iter_mut().zip(tokens) {
            bucket.tokens = t;
            bucket.updated = now;
        }
        decision(capacity, tokens, allowed)
    }

    /// Tokens of each window at `now`, refilled since the last update.
    fn refilled(&self, capacity: Capacity, now: Instant) -> [f64; 3] {
        std::array::from_fn(|i| {
            let elapsed = now
                .saturating_duration_since(self.buckets[i].updated)
                .as_secs_f64();
            (self.buckets[i].tokens + elapsed * rate(capacity, i)).min(f64::from(capacity[i]))
        })
    }
}

/// The answer to a check that left `tokens` in the windows (minute, hour, day), having
/// taken one from each when `allowed`: the headers' figures, and when denied the wait
/// until every window has a token again. The same for every backend.
pub fn decision(capacity: Capacity, tokens: [f64; 3], allowed: bool) -> Decision {
    let retry_after = if allowed {
        0.0
    } else {
        (0..3)
            .filter(|&i| tokens[i] < 1.0)
            .map(|i| (1.0 - tokens[i]) / rate(capacity, i))
            .fold(0.0, f64::max)
    };
    let minute = tokens[0];
    Decision {
        allowed,
        limit: capacity[0],
        remaining: minute.max(0.0).floor() as u32,
        reset_secs: ((f64::from(capacity[0]) - minute) / rate(capacity, 0))
            .ceil()
            .max(0.0) as u64,
        retry_after_secs: retry_after.ceil() as u64,
    }
}

fn rate(capacity: Capacity, window: usize) -> f64 {
    f64::from(capacity[window]) / WINDOWS[window].as_secs_f64()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The minute window's limit, remaining tokens and seconds until it is full again.
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    /// When denied: seconds until every window has a token again.
    pub retry_after_secs: u64,
}

#[derive(Debug)]
pub struct RateLimiter {
    clock: Clock,
    entries: Mutex<LruCache<String, Entry>>,
    checks: AtomicU64,
    evictions: AtomicU64,
}

/// For `/metrics`, each limiter by name: callers remembered, and callers forgotten
/// because it was full (a rising count says `server.rate_limit_max_callers` is too small).
pub fn write_metrics(limiters: &[(&str, &RateLimiter)], exposition: &mut Exposition) {
    let labels: Vec<[(&str, &str); 1]> = limiters
        .iter()
        .map(|(name, _)| [("limiter", *name)])
        .collect();
    let tracked: Vec<_> = labels
        .iter()
        .zip(limiters)
        .map(|(l, (_, limiter))| (&l[..], limiter.tracked() as f64))
        .collect();
    exposition.gauge(
        "kamiyo_rate_limit_callers",
        "Callers the rate limiter remembers.",
        &tracked,
    );
    let evicted: Vec<_> = labels
        .iter()
        .zip(limiters)
        .map(|(l, (_, limiter))| (&l[..], limiter.evictions()))
        .collect();
    exposition.counter(
        "kamiyo_rate_limit_evictions_total",
        "Callers forgotten because the rate limiter was full (server.rate_limit_max_callers).",
        &evicted,
    );
}

pub fn capacity_of(limits: &TierLimits) -> Capacity {
    [limits.per_minute, limits.per_hour, limits.per_day]
}

/// `per_minute` tokens refilled over a minute, and nothing more restrictive over the
/// hour or the day.
pub fn per_minute(per_minute: u32) -> Capacity {
    [
        per_minute,
        per_minute.saturating_mul(60),
        per_minute.saturating_mul(1440),
    ]
}

impl RateLimiter {
    /// Remembers at most `max_callers` callers (at least one).
    pub fn new(max_callers: usize, clock: Clock) -> Self {
        RateLimiter {
            clock,
            entries: Mutex::new(LruCache::new(max_callers.max(1))),
            checks: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub fn check(&self, caller: &str, capacity: Capacity) -> Decision {
        self.check_at(caller, capacity, self.clock.now())
    }

    /// Takes a token from every window of `caller` if each has one.
    pub fn check_at(&self, caller: &str, capacity: Capacity, now: Instant) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(now);
        }
        let mut entries = self.entries.lock();
        // `get_mut` makes a known caller the most recently seen, in place: the common
        // case allocates nothing.
        if let Some(entry) = entries.get_mut(caller) {
            return entry.take(capacity, now);
        }
        if entries.len() >= entries.capacity() {
            entries.remove_lru();
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let mut entry = Entry::full(capacity, now);
        let decision = entry.take(capacity, now);
        entries.insert(caller.to_owned(), entry);
        decision
    }

    /// Gives back the token an admitted check took, when the request turned out not to
    /// count (an authentication that succeeded).
    pub fn refund(&self, caller: &str, capacity: Capacity) {
        if let Some(entry) = self.entries.lock().peek_mut(caller) {
            for (i, bucket) in entry.buckets.iter_mut().enumerate() {
                bucket.tokens = (bucket.tokens + 1.0).min(f64::from(capacity[i]));
            }
        }
    }

    /// Remaining tokens per window (minute, hour, day) without taking one.
    pub fn usage(&self, caller: &str, capacity: Capacity) -> [u32; 3] {
        let entries = self.entries.lock();
        match entries.peek(caller) {
            None => capacity,
            Some(entry) => entry
                .refilled(capacity, self.clock.now())
                .map(|tokens| tokens.floor() as u32),
        }
    }

    /// Drops callers idle for `IDLE`: the least recently seen are at the front.
    fn sweep(&self, now: Instant) {
        let mut entries = self.entries.lock();
        while let Some((_, entry)) = entries.iter().next() {
            if now.saturating_duration_since(entry.last_seen) < IDLE {
                break;
            }
            entries.remove_lru();
        }
    }

    pub fn tracked(&self) -> usize {
        self.entries.lock().len()
    }

    /// Callers forgotten because the limiter was full.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_db::ManualClock;

    /// A limiter on a manual clock, and that clock's time.
    fn limiter(max_callers: usize) -> (RateLimiter, Instant) {
        let clock = ManualClock::new().clock();
        let now = clock.now();
        (RateLimiter::new(max_callers, clock), now)
    }

    fn limits(per_minute: u32, per_hour: u32) -> Capacity {
        [per_minute, per_hour, 1000]
    }

    #[test]
    fn the_n_plus_first_request_in_a_minute_is_denied_and_headers_count_down() {
        let (limiter, now) = limiter(100);
        let l = limits(3, 100);
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.check_at("k", l, now).remaining)
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let denied = limiter.check_at("k", l, now);
        assert!(!denied.allowed);
        assert_eq!(
            denied.retry_after_secs, 20,
            "one token per 20 s at 3 per minute"
        );
        assert!(
            limiter
                .check_at("k", l, now + Duration::from_secs(20))
                .allowed,
            "refilled"
        );
        assert!(
            limiter.check_at("other", l, now).allowed,
            "callers are independent"
        );
    }

    #[test]
    fn buckets_refill_as_the_injected_clock_moves() {
        let time = ManualClock::new();
        let limiter = RateLimiter::new(10, time.clock());
        let l = limits(3, 100);
        for _ in 0..3 {
            assert!(limiter.check("k", l).allowed);
        }
        assert!(!limiter.check("k", l).allowed);
        time.advance(Duration::from_secs(19));
        assert!(!limiter.check("k", l).allowed, "one token per 20 s");
        time.advance(Duration::from_secs(1));
        assert!(limiter.check("k", l).allowed, "refilled");
    }

    #[test]
    fn a_denial_in_the_minute_window_takes_nothing_from_hour_or_day() {
        let (limiter, now) = limiter(100);
        let l = limits(2, 100);
        for _ in 0..2 {
            assert!(limiter.check_at("k", l, now).allowed);
        }
        for _ in 0..10 {
            assert!(!limiter.check_at("k", l, now).allowed);
        }
        let [_, hour, day] = limiter.usage("k", l);
        assert_eq!((hour, day), (98, 998), "only admitted requests count");
    }

    #[test]
    fn idle_callers_are_reclaimed() {
        let (limiter, start) = limiter(100);
        limiter.check_at("idle", limits(5, 5), start);
        limiter.sweep(start + IDLE + Duration::from_secs(1));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn past_its_bound_the_least_recently_seen_caller_is_forgotten_first() {
        let (limiter, now) = limiter(3);
        let l = limits(1, 100);
        for caller in ["a", "b", "c"] {
            assert!(limiter.check_at(caller, l, now).allowed);
        }
        // "a" is seen again (denied, but seen), so "b" is now the least recent.
        assert!(!limiter.check_at("a", l, now).allowed);
        assert!(limiter.check_at("d", l, now).allowed);
        assert_eq!(limiter.tracked(), 3, "the bound holds");
        assert_eq!(limiter.evictions(), 1);
        assert!(
            !limiter.check_at("a", l, now).allowed,
            "a recently seen caller keeps its empty bucket"
        );
        assert!(
            limiter.check_at("b", l, now).allowed,
            "the forgotten caller starts again full"
        );
    }

    #[test]
    fn a_million_distinct_callers_never_hold_more_than_the_bound() {
        let (limiter, now) = limiter(1000);
        for i in 0..1_000_000u32 {
            limiter.check_at(&format!("ip:{i}"), limits(10, 100), now);
        }
        assert_eq!(limiter.tracked(), 1000);
    }

    #[test]
    fn a_refund_gives_back_what_a_check_took_and_never_more_than_the_capacity() {
        let (limiter, now) = limiter(10);
        let l = limits(2, 100);
        limiter.check_at("k", l, now);
        limiter.check_at("k", l, now);
        assert!(!limiter.check_at("k", l, now).allowed);
        limiter.refund("k", l);
        assert!(limiter.check_at("k", l, now).allowed);
        limiter.refund("k", l);
        limiter.refund("k", l);
        limiter.refund("k", l);
        assert_eq!(limiter.usage("k", l)[0], 2, "capped at the capacity");
    }
}
