//! Token buckets per caller (API key, or client address for anonymous callers) for the
//! minute, hour and day windows. A request is admitted only when every window has a
//! token, and only then is one taken from each: a request denied by one window costs
//! nothing in the others. Buckets of callers idle for a day (full again by then) are
//! reclaimed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

#[derive(Debug, Default)]
pub struct RateLimiter {
    entries: Mutex<HashMap<String, Entry>>,
    checks: AtomicU64,
}

fn limits_of(limits: &TierLimits) -> [u32; 3] {
    [limits.per_minute, limits.per_hour, limits.per_day]
}

impl RateLimiter {
    pub fn check(&self, caller: &str, limits: &TierLimits) -> Decision {
        self.check_at(caller, limits, Instant::now())
    }

    pub fn check_at(&self, caller: &str, limits: &TierLimits, now: Instant) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(now);
        }
        let capacity = limits_of(limits);
        let mut entries = self.entries.lock();
        let entry = entries.entry(caller.to_owned()).or_insert_with(|| Entry {
            buckets: std::array::from_fn(|i| Bucket {
                tokens: f64::from(capacity[i]),
                updated: now,
            }),
            last_seen: now,
        });
        entry.last_seen = now;
        let mut retry_after: f64 = 0.0;
        for (i, bucket) in entry.buckets.iter_mut().enumerate() {
            let rate = f64::from(capacity[i]) / WINDOWS[i].as_secs_f64();
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(f64::from(capacity[i]));
            bucket.updated = now;
            if bucket.tokens < 1.0 {
                retry_after = retry_after.max((1.0 - bucket.tokens) / rate);
            }
        }
        let allowed = retry_after == 0.0;
        if allowed {
            for bucket in &mut entry.buckets {
                bucket.tokens -= 1.0;
            }
        }
        let minute = entry.buckets[0];
        let minute_rate = f64::from(capacity[0]) / WINDOWS[0].as_secs_f64();
        Decision {
            allowed,
            limit: capacity[0],
            remaining: minute.tokens.max(0.0).floor() as u32,
            reset_secs: ((f64::from(capacity[0]) - minute.tokens) / minute_rate)
                .ceil()
                .max(0.0) as u64,
            retry_after_secs: retry_after.ceil() as u64,
        }
    }

    /// Remaining tokens per window (minute, hour, day) without taking one.
    pub fn usage(&self, caller: &str, limits: &TierLimits) -> [u32; 3] {
        let capacity = limits_of(limits);
        let now = Instant::now();
        let entries = self.entries.lock();
        match entries.get(caller) {
            None => capacity,
            Some(entry) => std::array::from_fn(|i| {
                let rate = f64::from(capacity[i]) / WINDOWS[i].as_secs_f64();
                let elapsed = now
                    .saturating_duration_since(entry.buckets[i].updated)
                    .as_secs_f64();
                (entry.buckets[i].tokens + elapsed * rate)
                    .min(f64::from(capacity[i]))
                    .floor() as u32
            }),
        }
    }

    fn sweep(&self, now: Instant) {
        self.entries
            .lock()
            .retain(|_, entry| now.saturating_duration_since(entry.last_seen) < IDLE);
    }

    pub fn tracked(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32, per_hour: u32) -> TierLimits {
        TierLimits {
            per_minute,
            per_hour,
            per_day: 1000,
            ..kamiyo_domain::Tier::Pro.limits()
        }
    }

    #[test]
    fn the_n_plus_first_request_in_a_minute_is_denied_and_headers_count_down() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let l = limits(3, 100);
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.check_at("k", &l, now).remaining)
            .collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let denied = limiter.check_at("k", &l, now);
        assert!(!denied.allowed);
        assert_eq!(
            denied.retry_after_secs, 20,
            "one token per 20 s at 3 per minute"
        );
        assert!(
            limiter
                .check_at("k", &l, now + Duration::from_secs(20))
                .allowed,
            "refilled"
        );
        assert!(
            limiter.check_at("other", &l, now).allowed,
            "callers are independent"
        );
    }

    #[test]
    fn a_denial_in_the_minute_window_takes_nothing_from_hour_or_day() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let l = limits(2, 100);
        for _ in 0..2 {
            assert!(limiter.check_at("k", &l, now).allowed);
        }
        for _ in 0..10 {
            assert!(!limiter.check_at("k", &l, now).allowed);
        }
        let [_, hour, day] = limiter.usage("k", &l);
        assert!(
            (97..=98).contains(&hour) && (997..=998).contains(&day),
            "hour {hour} day {day}: only admitted requests count"
        );
    }

    #[test]
    fn idle_callers_are_reclaimed() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        limiter.check_at("idle", &limits(5, 5), start);
        limiter.sweep(start + IDLE + Duration::from_secs(1));
        assert_eq!(limiter.tracked(), 0);
    }
}
