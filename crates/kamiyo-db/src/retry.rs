//! Retries of idempotent operations after transient failures, with capped exponential
//! backoff and jitter. Only failures a retry can cure are retried: a unique violation,
//! a syntax error or a statement that ran out of time would fail the same way again.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::database::AsDbError;
use crate::error::DbError;

pub const DEFAULT_RETRY_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_RETRY_INITIAL_BACKOFF: Duration = Duration::from_millis(50);
pub const DEFAULT_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 turns retrying off.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles after each attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Cap on any single backoff.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_RETRY_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_RETRY_INITIAL_BACKOFF,
            max_backoff: DEFAULT_RETRY_MAX_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1-based): half of the capped exponential
    /// step plus a random share of the other half, so that clients failing together do
    /// not come back together, and no pause is ever zero.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(20);
        let step = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let half = step / 2;
        let jitter_ns = rand::rng().random_range(0..=half.as_nanos() as u64);
        half + Duration::from_nanos(jitter_ns)
    }

    /// Runs `operation` until it succeeds, fails with a non-transient error, or has used
    /// `max_attempts`. Call it only for operations that are safe to run twice.
    /// The error may be a caller's own wrapping a [`DbError`] (see [`AsDbError`]).
    pub async fn run<T, E, F, Fut>(&self, operation_name: &str, mut operation: F) -> Result<T, E>
    where
        E: AsDbError + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error)
                    if error.as_db_error().is_some_and(DbError::is_transient)
                        && attempt < self.max_attempts =>
                {
                    let pause = self.backoff(attempt);
                    tracing::warn!(
                        operation = operation_name,
                        attempt,
                        max_attempts = self.max_attempts,
                        backoff_ms = pause.as_millis() as u64,
                        %error,
                        "transient database failure, retrying"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = policy.backoff(9);
            assert!(late >= Duration::from_millis(200) && late <= Duration::from_millis(400));
        }
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let mut calls = 0;
        let result: Result<(), DbError> = policy
            .run("test", || {
                calls += 1;
                async {
                    Err(DbError::TransactionConflict {
                        code: "40001".into(),
                        message: "could not serialize access".into(),
                    })
                }
            })
            .await;
        assert!(matches!(result, Err(DbError::TransactionConflict { .. })));
        assert_eq!(calls, 3);
    }
}
