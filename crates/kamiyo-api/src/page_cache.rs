//! A short-lived cache of serialised first pages of the listing.
//!
//! Repeated identical listings are the common case (a dashboard, a feed reader, a crawler
//! polling the newest incidents), and even with the total cached the page costs a query
//! and a JSON serialisation per request: about four times what this machine can afford
//! per request at the throughput target (BENCHMARKS.md). So the body of a first page is
//! kept as bytes for `ttl`, and concurrent requests for a page being built wait for it
//! instead of building it too.
//!
//! What may be served to whom: the key is everything the body depends on, i.e. the whole
//! `ListRequest` (filters, the caller's visibility window, sort, order, limit) and the
//! caller's tier besides, so that one tier's page is never served to another even if two
//! tiers come to see the same window. Only first pages (no cursor) are cached.
//!
//! Freshness: an entry is used only under the store's write generation it was built
//! under, so a write through this process (`POST /api/exploits`, an import in the same
//! process) is visible to the next request; another instance's writes show within `ttl`.
//!
//! Memory: at most `max_entries` pages and `max_bytes` of bodies and keys (a key holds the
//! filters, which are user input of any length); a page larger than `max_bytes` is served
//! but not kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

/// A built page: its body and when it was built. `None`: building it failed, and the
/// callers that waited for it build their own (rare, and the expensive part behind a page,
/// its total, is single-flighted by the store).
type Built = Option<(Bytes, Instant)>;

#[derive(Debug)]
struct Slot {
    generation: u64,
    cell: Arc<OnceCell<Built>>,
    /// Body and key size once built, counted in `State::bytes`.
    bytes: usize,
}

impl Slot {
    fn usable(&self, generation: u64, ttl: Duration) -> bool {
        self.generation == generation
            && match self.cell.get() {
                None => true,
                Some(Some((_, at))) => at.elapsed() < ttl,
                Some(None) => false,
            }
    }
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Slot>,
    bytes: usize,
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some(slot) = self.entries.remove(key) {
            self.bytes -= slot.bytes;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Drops what can no longer be served.
    fn sweep(&mut self, generation: u64, ttl: Duration) {
        let mut freed = 0;
        self.entries.retain(|_, slot| {
            let keep = slot.usable(generation, ttl);
            if !keep {
                freed += slot.bytes;
            }
            keep
        });
        self.bytes -= freed;
    }
}

#[derive(Debug)]
pub struct PageCache {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

impl PageCache {
    /// `ttl` zero turns the cache off.
    pub fn new(ttl: Duration, max_entries: usize, max_bytes: usize) -> Self {
        PageCache {
            ttl,
            max_entries: max_entries.max(1),
            max_bytes,
            state: Mutex::new(State::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_bytes > 0
    }

    /// The body for `key`: kept, or the one being built for it, or built now by `build`
    /// (the other callers wait). `generation` is the store's write generation, read before
    /// calling this.
    pub async fn get_or_build<F, Fut, E>(
        &self,
        key: String,
        generation: u64,
        build: F,
    ) -> Result<Bytes, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if !self.enabled() {
            return build().await;
        }
        let cell = self.slot(&key, generation);
        let mut own = None;
        let built = cell
            .get_or_init(|| async {
                match build().await {
                    Ok(body) => Some((body, Instant::now())),
                    Err(error) => {
                        own = Some(error);
                        None
                    }
                }
            })
            .await;
        if let Some(error) = own {
            self.forget(&key, &cell);
            return Err(error);
        }
        match built {
            Some((body, _)) => {
                self.account(&key, &cell, body.len() + key.len());
                Ok(body.clone())
            }
            // The build this caller waited for failed: build its own, uncached.
            None => build().await,
        }
    }

    fn slot(&self, key: &str, generation: u64) -> Arc<OnceCell<Built>> {
        let mut state = self.state.lock();
        if let Some(slot) = state.entries.get(key) {
            if slot.usable(generation, self.ttl) {
                return Arc::clone(&slot.cell);
            }
        }
        state.remove(key);
        if state.entries.len() >= self.max_entries {
            state.sweep(generation, self.ttl);
            if state.entries.len() >= self.max_entries {
                // Full of live pages: start over rather than track recency. Waiters keep
                // the pages they wait for; only later requests rebuild.
                state.clear();
            }
        }
        let cell = Arc::new(OnceCell::new());
        state.entries.insert(
            key.to_owned(),
            Slot {
                generation,
                cell: Arc::clone(&cell),
                bytes: 0,
            },
        );
        cell
    }

    /// Counts a built page (body and key) against `max_bytes`, once per slot, or drops it
    /// when it does not fit.
    fn account(&self, key: &str, cell: &Arc<OnceCell<Built>>, size: usize) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let Some(slot) = state.entries.get_mut(key) else {
            return;
        };
        if !Arc::ptr_eq(&slot.cell, cell) || slot.bytes > 0 {
            return;
        }
        if size > self.max_bytes {
            state.remove(key);
            return;
        }
        slot.bytes = size;
        let generation = slot.generation;
        state.bytes += size;
        if state.bytes > self.max_bytes {
            state.sweep(generation, self.ttl);
            if state.bytes > self.max_bytes {
                state.clear();
            }
        }
    }

    fn forget(&self, key: &str, cell: &Arc<OnceCell<Built>>) {
        let mut state = self.state.lock();
        if state
            .entries
            .get(key)
            .is_some_and(|slot| Arc::ptr_eq(&slot.cell, cell))
        {
            state.remove(key);
        }
    }

    #[cfg(test)]
    fn usage(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.entries.len(), state.bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const HOUR: Duration = Duration::from_secs(3600);

    async fn page(cache: &PageCache, key: &str, generation: u64, builds: &AtomicUsize) -> Bytes {
        cache
            .get_or_build::<_, _, ()>(key.into(), generation, || async {
                let n = builds.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(format!("{key}#{n}")))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_page_is_kept_until_the_generation_moves_and_zero_ttl_keeps_nothing() {
        let builds = AtomicUsize::new(0);
        let cache = PageCache::new(HOUR, 8, 1 << 20);
        assert_eq!(page(&cache, "a", 0, &builds).await, "a#0");
        assert_eq!(page(&cache, "a", 0, &builds).await, "a#0");
        assert_eq!(page(&cache, "b", 0, &builds).await, "b#1");
        assert_eq!(
            page(&cache, "a", 1, &builds).await,
            "a#2",
            "a write happened"
        );

        let off = PageCache::new(Duration::ZERO, 8, 1 << 20);
        assert_eq!(page(&off, "a", 0, &builds).await, "a#3");
        assert_eq!(page(&off, "a", 0, &builds).await, "a#4");
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_build_and_a_failed_build_is_not_kept() {
        let builds = &AtomicUsize::new(0);
        let cache = PageCache::new(HOUR, 8, 1 << 20);
        let call = || {
            cache.get_or_build::<_, _, ()>("k".into(), 0, move || async move {
                builds.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(Bytes::from_static(b"body"))
            })
        };
        let (a, b, c) = tokio::join!(call(), call(), call());
        assert_eq!([a.unwrap(), b.unwrap(), c.unwrap()], [&b"body"[..]; 3]);
        assert_eq!(builds.load(Ordering::SeqCst), 1);

        let failing = cache
            .get_or_build("f".into(), 0, || async { Err::<Bytes, _>("refused") })
            .await;
        assert_eq!(failing, Err("refused"));
        assert_eq!(page(&cache, "f", 0, builds).await, "f#1", "built again");
    }

    #[tokio::test]
    async fn entries_and_bytes_are_bounded() {
        let builds = AtomicUsize::new(0);
        let cache = PageCache::new(HOUR, 4, 64);
        for i in 0..40 {
            page(&cache, &format!("key{i}"), 0, &builds).await;
            let (entries, bytes) = cache.usage();
            assert!(
                entries <= 4 && bytes <= 64,
                "{entries} entries, {bytes} bytes"
            );
        }
        let big = cache
            .get_or_build::<_, _, ()>("big".into(), 0, || async {
                Ok(Bytes::from(vec![b'x'; 65]))
            })
            .await
            .unwrap();
        assert_eq!(big.len(), 65, "served");
        assert!(cache.usage().1 <= 64, "not kept");
        // Keys count too: filters are user input of any length.
        page(&cache, &"q".repeat(100), 0, &builds).await;
        assert!(cache.usage().1 <= 64, "a long key is not kept either");
    }
}
