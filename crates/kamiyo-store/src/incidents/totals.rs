//! A short-lived, single-flight cache of listing totals (and of stats answers, which cost
//! a scan the same way: `AnswerCache<V>` caches any cloneable answer; `V = i64` for totals).
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

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kamiyo_db::DbError;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

/// Distinct filters remembered by default (filters are user input).
pub const DEFAULT_TOTAL_CACHE_MAX_ENTRIES: usize = 1024;

/// A filter's key: the SHA-256 of its description. Filters are user input of any length
/// (a search text of kilobytes); a fixed-size key bounds the memory per entry.
pub(crate) type Key = [u8; 32];

pub(crate) fn key_of(description: &str) -> Key {
    Sha256::digest(description.as_bytes()).into()
}

/// A count's outcome, shared by everyone who waited for it. A failure is kept as a copy
/// (`DbError` holds its cause chain and is not `Clone`): waiters get the same kind of
/// error, so a count that timed out under load is not run again by each of them.
type Counted<V> = Result<(V, Instant), DbError>;

#[derive(Debug)]
struct Slot<V> {
    generation: u64,
    cell: Arc<OnceCell<Counted<V>>>,
}

impl<V> Slot<V> {
    /// In flight, or counted less than `ttl` ago. A failed count is never reused.
    fn usable(&self, generation: u64, ttl: Duration) -> bool {
        self.generation == generation
            && match self.cell.get() {
                None => true,
                Some(Ok((_, at))) => at.elapsed() < ttl,
                Some(Err(_)) => false,
            }
    }
}

#[derive(Debug)]
pub(crate) struct AnswerCache<V = i64> {
    ttl: Duration,
    max_entries: usize,
    generation: AtomicU64,
    entries: Mutex<HashMap<Key, Slot<V>>>,
}

impl<V: Clone> AnswerCache<V> {
    /// `ttl` zero counts every time (no reuse, no sharing); `max_entries` is at least 1.
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        AnswerCache {
            ttl,
            max_entries: max_entries.max(1),
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The answer for `key` (a total, a stats answer): cached, or the outcome of the count
    /// already running for it, or `count` run now (by this caller, with the others
    /// waiting). When the caller that counts is dropped mid-count (its request was
    /// cancelled), the next waiter counts.
    pub(crate) async fn get_or_compute<F, Fut>(&self, key: Key, count: F) -> Result<V, DbError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, DbError>>,
    {
        if self.ttl.is_zero() {
            return count().await;
        }
        let cell = self.slot(key);
        // The counting caller returns its own error, with its cause chain; the others a
        // copy of it.
        let mut own_error = None;
        let outcome = cell
            .get_or_init(|| async {
                match count().await {
                    Ok(total) => Ok((total, Instant::now())),
                    Err(error) => {
                        let copy = same_failure(&error);
                        own_error = Some(error);
                        Err(copy)
                    }
                }
            })
            .await;
        if let Some(error) = own_error {
            return Err(error);
        }
        match outcome {
            Ok((total, _)) => Ok(total.clone()),
            Err(error) => Err(same_failure(error)),
        }
    }

    /// The slot to wait on for `key`, made anew when missing, stale or failed. Taken
    /// synchronously, so callers that arrive together all find the first one's slot.
    fn slot(&self, key: Key) -> Arc<OnceCell<Counted<V>>> {
        let generation = self.generation();
        let mut entries = self.entries.lock();
        if let Some(slot) = entries.get(&key) {
            if slot.usable(generation, self.ttl) {
                return Arc::clone(&slot.cell);
            }
        }
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, slot| slot.usable(generation, self.ttl));
            if entries.len() >= self.max_entries {
                // Still full of live entries: start over rather than track recency. Waiters
                // keep their slots (they hold them), only later lookups count again.
                entries.clear();
            }
        }
        let cell = Arc::new(OnceCell::new());
        entries.insert(
            key,
            Slot {
                generation,
                cell: Arc::clone(&cell),
            },
        );
        cell
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().len()
    }
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
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const HOUR: Duration = Duration::from_secs(3600);

    async fn counted(cache: &AnswerCache<i64>, key: &str, runs: &AtomicUsize, total: i64) -> i64 {
        cache
            .get_or_compute(key_of(key), || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(total)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_total_is_reused_until_a_write_and_zero_ttl_counts_every_time() {
        let runs = AtomicUsize::new(0);
        let cache = AnswerCache::new(HOUR, 8);
        assert_eq!(counted(&cache, "k", &runs, 7).await, 7);
        assert_eq!(counted(&cache, "k", &runs, 8).await, 7, "reused");
        cache.invalidate();
        assert_eq!(counted(&cache, "k", &runs, 9).await, 9, "counted again");
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        let off = AnswerCache::new(Duration::ZERO, 8);
        assert_eq!(counted(&off, "k", &runs, 1).await, 1);
        assert_eq!(counted(&off, "k", &runs, 2).await, 2);
        assert_eq!(off.len(), 0);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_count() {
        let runs = &AtomicUsize::new(0);
        let cache = AnswerCache::new(HOUR, 8);
        let (release, released) = tokio::sync::watch::channel(false);
        let call = || {
            let mut released = released.clone();
            cache.get_or_compute(key_of("k"), move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // The count cannot finish before every caller has asked.
                released
                    .wait_for(|r| *r)
                    .await
                    .map_err(|_| DbError::other("gone"))?;
                Ok(42)
            })
        };
        let opener = async {
            tokio::task::yield_now().await;
            release.send(true).unwrap();
        };
        let (a, b, c, d, ()) = tokio::join!(call(), call(), call(), call(), opener);
        assert_eq!([a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()], [42; 4]);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waiters_get_the_failure_of_the_count_they_waited_for_and_the_next_caller_counts_again()
    {
        let runs = &AtomicUsize::new(0);
        let cache = AnswerCache::new(HOUR, 8);
        let call = || {
            cache.get_or_compute(key_of("k"), move || async move {
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
        assert_eq!(counted(&cache, "k", runs, 5).await, 5);
    }

    /// Polls `future` once; it must not be ready yet.
    async fn started<F: Future>(future: &mut std::pin::Pin<Box<F>>) {
        std::future::poll_fn(|cx| {
            assert!(future.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
    }

    #[tokio::test]
    async fn a_cancelled_count_is_taken_over_by_a_waiter() {
        let cache = AnswerCache::new(HOUR, 8);
        let runs = &AtomicUsize::new(0);
        let mut first = Box::pin(cache.get_or_compute(key_of("k"), || async {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<i64, DbError>>().await
        }));
        started(&mut first).await;
        let mut second = Box::pin(counted(&cache, "k", runs, 3));
        started(&mut second).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the second waits");
        // The first caller is dropped mid-count, as a cancelled request is.
        drop(first);
        assert_eq!(second.await, 3);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn memory_is_bounded_by_max_entries() {
        let runs = AtomicUsize::new(0);
        let cache = AnswerCache::new(HOUR, 4);
        for i in 0..20 {
            counted(&cache, &format!("k{i}"), &runs, i).await;
            assert!(cache.len() <= 4);
        }
        cache.invalidate();
        counted(&cache, "fresh", &runs, 1).await;
        assert!(cache.len() <= 4);
    }
}
