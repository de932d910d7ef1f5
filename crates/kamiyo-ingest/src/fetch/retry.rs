//! When to try a failed request again: bounded attempts, exponential backoff with full
//! jitter (so that instances that failed together do not come back together), and a
//! server's `Retry-After` honoured. A wait longer than what is left of the fetch's
//! deadline is not waited: the fetch gives up and the next slot tries again, so a source
//! that is down sees one request per slot, not a storm.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The retry budget of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The backoff ceiling of the first retry; doubled for each one after.
    pub backoff: Duration,
    /// The longest wait between attempts, a server's `Retry-After` included: asked to
    /// wait longer, the fetch gives up instead.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `next` (2 for the first retry), given the
    /// server's `Retry-After` and what is left of the deadline; `None`: do not retry.
    /// `jitter` is a number in `[0, 1)` (random in use, fixed in tests).
    pub fn wait_before(
        &self,
        next: u32,
        retry_after: Option<Duration>,
        left: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        if next > self.attempts {
            return None;
        }
        let exponent = next.saturating_sub(2).min(16);
        let ceiling = self
            .backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let jittered = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
        let wait = match retry_after {
            Some(asked) if asked > self.max_backoff => return None,
            Some(asked) => asked.max(jittered),
            None => jittered,
        };
        (wait < left).then_some(wait)
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (then relative to `now`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        attempts: 3,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
    };
    const PLENTY: Duration = Duration::from_secs(3600);

    #[test]
    fn backoff_doubles_with_full_jitter_up_to_the_ceiling_and_the_attempts() {
        assert_eq!(
            POLICY.wait_before(2, None, PLENTY, 0.5),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            POLICY.wait_before(3, None, PLENTY, 0.5),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            POLICY.wait_before(4, None, PLENTY, 0.5),
            None,
            "3 attempts in all"
        );
        let many = RetryPolicy {
            attempts: 50,
            ..POLICY
        };
        assert_eq!(
            many.wait_before(40, None, PLENTY, 0.999_999),
            Some(Duration::from_secs(10).mul_f64(0.999_999)),
            "capped"
        );
    }

    #[test]
    fn retry_after_is_honoured_unless_it_asks_for_too_long() {
        let asked = Some(Duration::from_secs(7));
        assert_eq!(
            POLICY.wait_before(2, asked, PLENTY, 0.0),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            POLICY.wait_before(2, Some(Duration::from_secs(60)), PLENTY, 0.0),
            None,
            "a source asking for a minute is left to the next slot"
        );
        assert_eq!(
            POLICY.wait_before(2, asked, Duration::from_secs(5), 0.0),
            None,
            "never past the fetch's deadline"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
