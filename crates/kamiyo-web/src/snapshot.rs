//! Figures the dashboard shows that cost a scan of every incident (totals, breakdowns,
//! each source's counts: 0.1–0.4 s at 100,000 incidents), kept and rebuilt in the
//! background. A page never waits for a rebuild while it holds figures at most
//! `web.overview_max_stale` old: past `web.overview_refresh` it is answered with what it
//! holds and one rebuild starts; only a key never built, or older than
//! `web.overview_max_stale`, is built while the page waits. The API's stats answer from
//! their own caches, which block on expiry; a page that renders a dozen of them at once
//! would pay every expiry.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kamiyo_db::Clock;
use parking_lot::Mutex;

/// Kept figures, by key (what they depend on: a window and a tier's visibility rule).
pub struct Snapshots<K, V> {
    inner: Arc<Inner<K, V>>,
}

struct Inner<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    refresh_after: Duration,
    max_stale: Duration,
    max_entries: usize,
    clock: Clock,
}

enum Plan<V> {
    Kept(Arc<V>),
    KeptAndRebuild(Arc<V>),
    Build,
}

struct Slot<V> {
    value: Arc<V>,
    built_at: DateTime<Utc>,
    /// A background rebuild is running: no second one starts.
    refreshing: bool,
}

impl<K, V> Snapshots<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(
        refresh_after: Duration,
        max_stale: Duration,
        max_entries: usize,
        clock: Clock,
    ) -> Self {
        Snapshots {
            inner: Arc::new(Inner {
                slots: Mutex::new(HashMap::new()),
                refresh_after,
                max_stale,
                max_entries: max_entries.max(1),
                clock,
            }),
        }
    }

    /// The figures of `key`: kept ones when young enough (starting one background
    /// rebuild once they are older than the refresh age), or built now by `build`.
    pub async fn get<F, Fut, E>(&self, key: K, build: F) -> Result<Arc<V>, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let now = self.inner.clock.now_utc();
        let plan = {
            let mut slots = self.inner.slots.lock();
            match slots.get_mut(&key) {
                Some(slot) => {
                    let age = (now - slot.built_at).to_std().unwrap_or_default();
                    if age >= self.inner.max_stale {
                        Plan::Build
                    } else if age >= self.inner.refresh_after && !slot.refreshing {
                        slot.refreshing = true;
                        Plan::KeptAndRebuild(Arc::clone(&slot.value))
                    } else {
                        Plan::Kept(Arc::clone(&slot.value))
                    }
                }
                None => Plan::Build,
            }
        };
        match plan {
            Plan::Kept(value) => Ok(value),
            Plan::KeptAndRebuild(value) => {
                self.rebuild_in_background(key, build);
                Ok(value)
            }
            Plan::Build => {
                let value = Arc::new(build().await?);
                self.inner.store(key, Arc::clone(&value), now);
                Ok(value)
            }
        }
    }

    fn rebuild_in_background<F, Fut, E>(&self, key: K, build: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let started = inner.clock.now_utc();
            match build().await {
                Ok(value) => inner.store(key, Arc::new(value), started),
                Err(error) => {
                    // The kept figures stay, and the next request past the refresh age
                    // tries again.
                    tracing::warn!(%error, "rebuilding the dashboard's figures failed");
                    if let Some(slot) = inner.slots.lock().get_mut(&key) {
                        slot.refreshing = false;
                    }
                }
            }
        });
    }
}

impl<K: Eq + Hash + Clone, V> Inner<K, V> {
    /// Keeps `value`, built from data read at `built_at`; the oldest entry makes room.
    fn store(&self, key: K, value: Arc<V>, built_at: DateTime<Utc>) {
        let mut slots = self.slots.lock();
        if !slots.contains_key(&key) && slots.len() >= self.max_entries {
            let oldest = slots
                .iter()
                .min_by_key(|(_, slot)| slot.built_at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        slots.insert(
            key,
            Slot {
                value,
                built_at,
                refreshing: false,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use kamiyo_db::ManualClock;
    use tokio::sync::Notify;

    use super::*;

    const REFRESH: Duration = Duration::from_secs(5);
    const STALE: Duration = Duration::from_secs(60);

    /// A builder returning `value`, counting its runs and telling `done` when it ends.
    fn builder(
        value: u32,
        runs: &Arc<AtomicUsize>,
        done: &Arc<Notify>,
    ) -> impl FnOnce() -> std::future::Ready<Result<u32, String>> + Send + 'static {
        let (runs, done) = (Arc::clone(runs), Arc::clone(done));
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            done.notify_one();
            std::future::ready(Ok(value))
        }
    }

    #[tokio::test]
    async fn kept_figures_answer_at_once_and_one_rebuild_runs_in_the_background() {
        let clock = ManualClock::new();
        let snapshots = Snapshots::new(REFRESH, STALE, 8, clock.clock());
        let runs = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        assert_eq!(
            *snapshots
                .get("k", builder(1, &runs, &done))
                .await
                .unwrap_or_default(),
            1
        );
        assert_eq!(
            *snapshots
                .get("k", builder(2, &runs, &done))
                .await
                .unwrap_or_default(),
            1
        );
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "young figures are not rebuilt"
        );

        clock.advance(REFRESH);
        let rebuilt = Arc::new(Notify::new());
        assert_eq!(
            *snapshots
                .get("k", builder(3, &runs, &rebuilt))
                .await
                .unwrap_or_default(),
            1,
            "past the refresh age the kept figures answer"
        );
        // A second request while the rebuild runs starts no other.
        let _ = snapshots.get("k", builder(4, &runs, &done)).await;
        rebuilt.notified().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // The rebuild is stored by the time it has run; poll the store, not the clock.
        let mut seen = 0;
        for _ in 0..1000 {
            seen = *snapshots
                .get("k", builder(5, &runs, &done))
                .await
                .unwrap_or_default();
            if seen == 3 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(seen, 3, "the background rebuild's figures are kept");
    }

    #[tokio::test]
    async fn figures_older_than_the_stale_limit_are_built_while_the_page_waits() {
        let clock = ManualClock::new();
        let snapshots = Snapshots::new(REFRESH, STALE, 8, clock.clock());
        let runs = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let _ = snapshots.get("k", builder(1, &runs, &done)).await;
        clock.advance(STALE);
        assert_eq!(
            *snapshots
                .get("k", builder(2, &runs, &done))
                .await
                .unwrap_or_default(),
            2
        );
        let failed: Result<Arc<u32>, String> = snapshots
            .get("other", || {
                std::future::ready(Err("database down".to_owned()))
            })
            .await;
        assert!(failed.is_err(), "a first build's error reaches the page");
    }

    #[tokio::test]
    async fn the_oldest_key_makes_room_for_a_new_one() {
        let clock = ManualClock::new();
        let snapshots = Snapshots::new(REFRESH, STALE, 2, clock.clock());
        let runs = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        for key in ["a", "b", "c"] {
            let _ = snapshots.get(key, builder(1, &runs, &done)).await;
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(snapshots.inner.slots.lock().len(), 2);
        assert!(!snapshots.inner.slots.lock().contains_key("a"));
    }
}
