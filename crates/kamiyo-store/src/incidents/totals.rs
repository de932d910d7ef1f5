//! Short-lived, single-flight caches of listing totals and of stats answers (both cost a
//! scan per request), on the generic [`TtlCache`].
//!
//! Counting every match of a filter is most of the database's work behind a listing
//! (BENCHMARKS.md), so a total is reused for `ttl`, and while one request counts a filter,
//! the others asking for the same filter wait for that count instead of starting their
//! own: without that, every request arriving while an entry is refreshed counts too, and
//! those counts slow each other down (the herd behind the seconds-long p99 measured).
//!
//! Entries carry the write generation they were counted under; any write through the
//! store moves the generation on, so this process never serves a total that predates its
//! own writes, and a request that starts after a write never joins a count from before it.
//! (Listing totals are counted on the primary. Stats read the replica when there is one,
//! so a stats answer can predate this process's writes by the replica's lag.)

use std::future::Future;

use chrono::{DateTime, Utc};
use kamiyo_db::DbError;

use super::query::IncidentFilter;
use super::stats::{Bucket, Dimension, Summary};
use crate::cache::{Failure, KeyDigest, TtlCache};

/// Distinct filters remembered by default (filters are user input).
pub const DEFAULT_TOTAL_CACHE_MAX_ENTRIES: usize = 1024;

/// A filter's total. The filter holds user text of any length, so its key is a digest
/// (see `cache::digest`).
pub(crate) type TotalCache = TtlCache<KeyDigest, i64, SharedFailure>;

pub(crate) fn total_key(filter: &IncidentFilter) -> KeyDigest {
    KeyDigest::of(filter)
}

/// A stats question: its window and what is asked. Fixed-size, so kept as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StatsKey {
    Summary {
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    },
    Breakdown {
        dimension: Dimension,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    },
}

/// A cached stats answer.
#[derive(Debug, Clone)]
pub(crate) enum StatsAnswer {
    Summary(Summary),
    Buckets(Vec<Bucket>),
}

pub(crate) type StatsCache = TtlCache<StatsKey, StatsAnswer, SharedFailure>;

/// A failed count as its waiters get it: a copy without the cause chain (`DbError` is not
/// `Clone`), so a count that timed out under load is not run again by each of them.
#[derive(Debug, Clone)]
pub(crate) struct SharedFailure(std::sync::Arc<DbError>);

/// The answer for `key` from `cache`, or `count` run once for all concurrent callers.
/// The counting caller gets its own error, with its cause chain; the others one of the
/// same kind.
pub(crate) async fn cached<K, V, F, Fut>(
    cache: &TtlCache<K, V, SharedFailure>,
    key: K,
    count: F,
) -> Result<V, DbError>
where
    K: std::hash::Hash + Eq + Clone,
    V: Clone,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, DbError>>,
{
    cache
        .get_or_compute(key, count, |error| {
            SharedFailure(std::sync::Arc::new(same_failure(error)))
        })
        .await
        .map_err(|failure| match failure {
            Failure::Own(error) => error,
            Failure::Waited(SharedFailure(error)) => same_failure(&error),
        })
}

/// An error of the same kind, for the callers that waited on a failed count: the same
/// variant (so the API answers them as it answers the one that counted: 503 for an
/// unavailable database or a statement timeout) without the cause chain, which stays
/// with the original and its log line.
pub(crate) fn same_failure(error: &DbError) -> DbError {
    match error {
        DbError::AcquireTimeout {
            pool,
            deadline,
            state,
        } => DbError::AcquireTimeout {
            pool: pool.clone(),
            deadline: *deadline,
            state: *state,
        },
        DbError::StatementTimeout { pool } => DbError::StatementTimeout { pool: pool.clone() },
        DbError::Unavailable { pool, reason, .. } => DbError::Unavailable {
            pool: pool.clone(),
            reason: reason.clone(),
            source: None,
        },
        DbError::TransactionConflict { code, message } => DbError::TransactionConflict {
            code: code.clone(),
            message: message.clone(),
        },
        DbError::NotFound { what } => DbError::NotFound { what: what.clone() },
        DbError::Conflict {
            constraint,
            message,
        } => DbError::Conflict {
            constraint: constraint.clone(),
            message: message.clone(),
        },
        DbError::ReadOnly { message } => DbError::ReadOnly {
            message: message.clone(),
        },
        DbError::Config { field, message } => DbError::Config {
            field: field.clone(),
            message: message.clone(),
        },
        DbError::Migration(_) | DbError::Other { .. } => DbError::other(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::cache::CacheLimits;

    #[tokio::test]
    async fn waiters_of_a_failed_count_get_an_error_of_the_same_kind_and_the_next_caller_counts() {
        let runs = &AtomicUsize::new(0);
        let cache: TotalCache = TtlCache::new(
            CacheLimits::new(Duration::from_secs(3600), 8),
            kamiyo_db::ManualClock::new().clock(),
        );
        let key = total_key(&IncidentFilter::default());
        let call = || {
            cached(&cache, key, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Err(DbError::StatementTimeout { pool: "p".into() })
            })
        };
        let (a, b, c) = tokio::join!(call(), call(), call());
        for outcome in [a, b, c] {
            assert!(matches!(outcome, Err(DbError::StatementTimeout { .. })));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one count, one failure");
        let total = cached(&cache, key, || async { Ok(5) }).await.unwrap();
        assert_eq!(total, 5);
    }

    #[test]
    fn filters_that_differ_have_different_keys() {
        let plain = IncidentFilter::default();
        let searched = IncidentFilter {
            q: Some("bridge".into()),
            ..IncidentFilter::default()
        };
        assert_eq!(total_key(&plain), total_key(&IncidentFilter::default()));
        assert_ne!(total_key(&plain), total_key(&searched));
    }
}
