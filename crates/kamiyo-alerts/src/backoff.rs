//! When a failed delivery is tried again, and when it is given up.
//!
//! Exponential backoff with *full* jitter: the n-th retry waits a uniformly random time
//! between zero and `min(cap, base · 2^(n-1))`. Without jitter, every delivery that failed
//! during a receiver's outage would come back at the same instants and knock it over
//! again as it recovers; full jitter spreads them over the whole interval. A receiver's
//! `Retry-After` replaces the computed delay, since it knows its own load best, but is
//! clamped so a hostile or broken value cannot park a delivery for years. Attempts stop
//! once the next one would fall outside a window counted from the first attempt, so an
//! endpoint that is gone for good costs a bounded number of requests.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;

/// Ceiling of the first retry's delay. Smaller retries a blip sooner but hammers a
/// receiver that is restarting; larger delays every alert after a single dropped packet.
pub const DEFAULT_BASE: Duration = Duration::from_secs(5);
/// The most one delay's ceiling grows to. Larger leaves an endpoint that has recovered
/// without alerts for longer; smaller spends more requests on one that stays down.
pub const DEFAULT_CAP: Duration = Duration::from_secs(6 * 3600);
/// How long after its first attempt a delivery is still tried: three days, so a receiver
/// broken over a weekend still gets its alerts. Larger delivers alerts too stale to act
/// on; smaller drops them during ordinary outages.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(72 * 3600);
/// The longest `Retry-After` honoured as given; longer values are clamped to it.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The shortest wait before any retry, so a zero draw or `Retry-After: 0` never becomes a
/// tight loop against the receiver.
pub const MIN_DELAY: Duration = Duration::from_secs(1);

/// The retry schedule's parameters; [`Default`] gives the documented constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub window: Duration,
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: DEFAULT_BASE,
            cap: DEFAULT_CAP,
            window: DEFAULT_WINDOW,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// The largest delay the retry after `attempt` attempts may draw: `min(cap, base ·
    /// 2^(attempt-1))`, never below [`MIN_DELAY`]. Saturates instead of overflowing, so
    /// any attempt count is safe.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let grown = 2u32
            .checked_pow(doublings)
            .and_then(|factor| self.base.checked_mul(factor))
            .unwrap_or(Duration::MAX);
        grown.min(self.cap).max(MIN_DELAY)
    }

    /// The wait before the next attempt: the receiver's `Retry-After` when it gave one
    /// (clamped to `max_retry_after`), else a uniform draw from `[0, ceiling(attempt)]`;
    /// at least [`MIN_DELAY`] either way.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let delay = match retry_after {
            Some(asked) => asked.min(self.max_retry_after),
            None => {
                let ceiling_ms =
                    u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(rng.random_range(0..=ceiling_ms))
            }
        };
        delay.max(MIN_DELAY)
    }

    /// When to try again after `attempt` attempts (the first counts as 1) that began at
    /// `first_attempt_at`, the last having just failed at `now`; `None` to give up,
    /// because that time would fall after `first_attempt_at + window`.
    pub fn next_attempt(
        &self,
        attempt: u32,
        first_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<DateTime<Utc>> {
        let delay = TimeDelta::from_std(self.delay(attempt, retry_after, rng)).ok()?;
        // A time past chrono's range is past any window too.
        let next = now.checked_add_signed(delay)?;
        let deadline = TimeDelta::from_std(self.window)
            .ok()
            .and_then(|window| first_attempt_at.checked_add_signed(window));
        match deadline {
            Some(deadline) if next > deadline => None,
            // A window too large for chrono has no deadline within reach.
            _ => Some(next),
        }
    }
}

/// Reads a `Retry-After` value: delta-seconds (`120`) or an HTTP-date in any of the
/// three forms RFC 9110 §5.6.7 obliges recipients to accept (IMF-fixdate, RFC 850,
/// asctime), all in GMT. A date already past gives zero. `None` for anything else, so a
/// malformed header falls back to the computed backoff.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than u64 holds is still a (very long) delay; the policy clamps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    // IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, is a subset of RFC 2822.
    if let Ok(date) = DateTime::parse_from_rfc2822(value) {
        return Some(date.with_timezone(&Utc));
    }
    let naive_formats = [
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`.
        "%A, %d-%b-%y %H:%M:%S GMT",
        // asctime: `Sun Nov  6 08:49:37 1994`.
        "%a %b %e %H:%M:%S %Y",
    ];
    naive_formats.iter().find_map(|format| {
        chrono::NaiveDateTime::parse_from_str(value, format)
            .ok()
            .map(|naive| naive.and_utc())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Attempt times of a delivery that always fails at once, until the policy gives up.
    fn schedule(policy: &RetryPolicy, seed: u64) -> Vec<DateTime<Utc>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = t0();
        let mut times = vec![first];
        let mut now = first;
        while let Some(next) = policy.next_attempt(times.len() as u32, first, now, None, &mut rng) {
            assert!(times.len() < 10_000, "the schedule does not end");
            times.push(next);
            now = next;
        }
        times
    }

    #[test]
    fn the_ceiling_doubles_from_base_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), Duration::from_secs(5));
        assert_eq!(policy.ceiling(2), Duration::from_secs(10));
        assert_eq!(policy.ceiling(3), Duration::from_secs(20));
        assert_eq!(policy.ceiling(13), Duration::from_secs(5 * 4096));
        assert_eq!(policy.ceiling(14), DEFAULT_CAP);
        assert_eq!(policy.ceiling(u32::MAX), DEFAULT_CAP);
    }

    #[test]
    fn delays_never_exceed_the_ceiling_nor_fall_below_one_second() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=40 {
            let ceiling = policy.ceiling(attempt);
            let mut largest = Duration::ZERO;
            for _ in 0..500 {
                let delay = policy.delay(attempt, None, &mut rng);
                assert!(
                    delay <= ceiling,
                    "attempt {attempt}: {delay:?} > {ceiling:?}"
                );
                assert!(delay >= MIN_DELAY);
                largest = largest.max(delay);
            }
            // Full jitter: draws reach well into the upper part of the interval, which a
            // constant or halved ("equal jitter") delay would not show at low attempts.
            assert!(
                largest > ceiling.mul_f64(0.9),
                "attempt {attempt}: max {largest:?}"
            );
        }
    }

    #[test]
    fn jitter_spreads_delays_instead_of_repeating_one_value() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(11);
        let draws: std::collections::BTreeSet<_> =
            (0..50).map(|_| policy.delay(10, None, &mut rng)).collect();
        assert!(draws.len() > 40, "{} distinct delays", draws.len());
    }

    #[test]
    fn huge_attempt_numbers_neither_overflow_nor_panic() {
        let policy = RetryPolicy {
            base: Duration::MAX,
            cap: Duration::MAX,
            window: Duration::MAX,
            max_retry_after: Duration::MAX,
        };
        let mut rng = StdRng::seed_from_u64(1);
        for attempt in [0, 1, 33, 64, u32::MAX] {
            let _ = policy.next_attempt(attempt, t0(), t0(), None, &mut rng);
            let _ = policy.next_attempt(attempt, t0(), t0(), Some(Duration::MAX), &mut rng);
        }
        let default = RetryPolicy::default();
        let next = default
            .next_attempt(u32::MAX, t0(), t0(), None, &mut rng)
            .unwrap();
        assert!(next <= t0() + TimeDelta::hours(6));
    }

    #[test]
    fn retries_stop_once_the_next_attempt_would_leave_the_window() {
        let policy = RetryPolicy::default();
        for seed in 0..20 {
            let times = schedule(&policy, seed);
            let deadline = t0() + TimeDelta::hours(72);
            let last = *times.last().unwrap();
            assert!(
                last <= deadline,
                "seed {seed}: last attempt {last} after the window"
            );
            // Giving up was not premature: the last attempt is within one cap of the end.
            assert!(
                deadline - last <= TimeDelta::hours(6),
                "seed {seed}: gave up at {last}, {} before the deadline",
                deadline - last
            );
            assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
        }
        let late = policy.next_attempt(
            3,
            t0(),
            t0() + TimeDelta::hours(72),
            None,
            &mut StdRng::seed_from_u64(0),
        );
        assert_eq!(late, None);
    }

    #[test]
    fn three_days_of_failures_make_a_few_dozen_attempts() {
        // Summary: 13 doublings reach the 6 h cap after about 5.7 h of (mean, halved)
        // waits; the remaining ~66 h at a mean of 3 h add ~22. Printed for the record
        // with `--nocapture`.
        let policy = RetryPolicy::default();
        let counts: Vec<usize> = (0..50).map(|seed| schedule(&policy, seed).len()).collect();
        let min = counts.iter().copied().min().unwrap();
        let max = counts.iter().copied().max().unwrap();
        let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
        println!("attempts over 72 h: min {min}, mean {mean:.1}, max {max}");
        assert!((25..=55).contains(&min), "min {min}");
        assert!((25..=55).contains(&max), "max {max}");
        assert!((30.0..=45.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn retry_after_is_honoured_instead_of_the_backoff() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(3);
        let asked = Duration::from_secs(90 * 60);
        // Attempt 1 alone would wait at most 5 s.
        let next = policy
            .next_attempt(1, t0(), t0(), Some(asked), &mut rng)
            .unwrap();
        assert_eq!(next, t0() + TimeDelta::minutes(90));
    }

    #[test]
    fn retry_after_is_clamped_to_the_maximum_and_to_one_second() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(3);
        let week = Duration::from_secs(7 * 24 * 3600);
        let next = policy
            .next_attempt(1, t0(), t0(), Some(week), &mut rng)
            .unwrap();
        assert_eq!(next, t0() + TimeDelta::hours(24));
        let zero = policy
            .next_attempt(1, t0(), t0(), Some(Duration::ZERO), &mut rng)
            .unwrap();
        assert_eq!(zero, t0() + TimeDelta::seconds(1));
    }

    #[test]
    fn a_retry_after_beyond_the_window_gives_up() {
        let policy = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(3);
        let now = t0() + TimeDelta::hours(60);
        let next = policy.next_attempt(
            20,
            t0(),
            now,
            Some(Duration::from_secs(13 * 3600)),
            &mut rng,
        );
        assert_eq!(next, None);
        let within = policy.next_attempt(
            20,
            t0(),
            now,
            Some(Duration::from_secs(11 * 3600)),
            &mut rng,
        );
        assert_eq!(within, Some(now + TimeDelta::hours(11)));
    }

    #[test]
    fn retry_after_parses_delta_seconds() {
        assert_eq!(
            parse_retry_after("120", t0()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", t0()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", t0()),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-5", "1.5", "soon", "12 s", "+30"] {
            assert_eq!(parse_retry_after(bad, t0()), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_parses_the_three_http_date_forms() {
        let now = DateTime::parse_from_rfc3339("1994-11-06T08:47:37Z")
            .unwrap()
            .with_timezone(&Utc);
        let two_minutes = Some(Duration::from_secs(120));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            two_minutes
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            two_minutes
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994", now),
            two_minutes
        );
    }

    #[test]
    fn a_retry_after_date_in_the_past_means_now() {
        let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Wed, 32 May 2024 11:00:00 GMT", now),
            None
        );
    }
}
