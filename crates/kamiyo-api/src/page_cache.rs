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
//! Memory: at most `max_entries` pages and `max_bytes` of bodies and keys; a page larger
//! than `max_bytes` is served but not kept. The filters in a key are user input of any
//! length, so the key is kept as a 32-byte digest of the typed request
//! (`kamiyo_store::cache::KeyDigest`), counted with its body.
//!
//! The rules (lifetime on the injected clock, generation, single flight, bounds) are
//! those of `kamiyo_store::cache`; what is particular here is the key and what a failed
//! build means for its waiters.

use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use kamiyo_db::Clock;
use kamiyo_domain::Tier;
use kamiyo_store::cache::{CacheLimits, Failure, Generation, KeyDigest, TtlCache};
use kamiyo_store::incidents::ListRequest;

/// Everything a first page's body depends on: the request (filters, the caller's
/// visibility window, sort, order, limit) and the caller's tier (`None` for callers
/// without one, as `Caller::tier` gives it). Built once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageKey(KeyDigest);

impl PageKey {
    pub fn new(tier: Option<Tier>, request: &ListRequest) -> Self {
        PageKey(KeyDigest::of(&(tier, request)))
    }
}

/// Bytes a kept page costs: its body and its key.
fn size_of(body: &Bytes) -> usize {
    body.len() + std::mem::size_of::<PageKey>()
}

#[derive(Debug)]
pub struct PageCache {
    cache: TtlCache<PageKey, Bytes>,
}

impl PageCache {
    /// `ttl` zero turns the cache off. Pages go stale when `writes` (the store's write
    /// generation) moves on.
    pub fn new(
        ttl: Duration,
        max_entries: usize,
        max_bytes: usize,
        clock: Clock,
        writes: Generation,
    ) -> Self {
        let limits = CacheLimits::new(ttl, max_entries).with_max_bytes(max_bytes);
        PageCache {
            cache: TtlCache::with_generation(limits, clock, writes).sized_by(size_of),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cache.enabled()
    }

    /// The body for `key`: kept, or the one being built for it, or built now by `build`
    /// (the other callers wait). The write generation is read before building: a write
    /// that lands meanwhile makes the page stale.
    pub async fn get_or_build<F, Fut, E>(&self, key: PageKey, build: F) -> Result<Bytes, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        match self.cache.get_or_compute(key, &build, |_| ()).await {
            Ok(body) => Ok(body),
            Err(Failure::Own(error)) => Err(error),
            // The build this caller waited for failed: it builds its own, uncached (rare,
            // and the expensive part behind a page, its total, is single-flighted by the
            // store, which shares the failure).
            Err(Failure::Waited(())) => build().await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use kamiyo_db::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const TTL: Duration = Duration::from_secs(1);

    fn key(name: &str) -> PageKey {
        let request = ListRequest {
            filter: kamiyo_store::incidents::IncidentFilter {
                q: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        PageKey::new(Some(Tier::Free), &request)
    }

    async fn page(cache: &PageCache, name: &str, builds: &AtomicUsize) -> Bytes {
        cache
            .get_or_build::<_, _, ()>(key(name), || async {
                let n = builds.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(format!("{name}#{n}")))
            })
            .await
            .unwrap()
    }

    fn cache(max_entries: usize, max_bytes: usize) -> (PageCache, ManualClock, Generation) {
        let (time, writes) = (ManualClock::new(), Generation::default());
        let cache = PageCache::new(TTL, max_entries, max_bytes, time.clock(), writes.clone());
        (cache, time, writes)
    }

    #[tokio::test]
    async fn a_page_is_kept_until_a_write_or_its_ttl_and_zero_ttl_keeps_nothing() {
        let builds = AtomicUsize::new(0);
        let (cache, time, writes) = cache(8, 1 << 20);
        assert_eq!(page(&cache, "a", &builds).await, "a#0");
        assert_eq!(page(&cache, "a", &builds).await, "a#0");
        assert_eq!(page(&cache, "b", &builds).await, "b#1");
        writes.advance();
        assert_eq!(page(&cache, "a", &builds).await, "a#2", "a write happened");
        time.advance(TTL);
        assert_eq!(page(&cache, "a", &builds).await, "a#3", "expired");

        let off = PageCache::new(
            Duration::ZERO,
            8,
            1 << 20,
            time.clock(),
            Generation::default(),
        );
        assert_eq!(page(&off, "a", &builds).await, "a#4");
        assert_eq!(page(&off, "a", &builds).await, "a#5");
    }

    #[tokio::test]
    async fn different_tiers_never_share_a_page() {
        let request = ListRequest::default();
        assert_ne!(
            PageKey::new(Some(Tier::Free), &request),
            PageKey::new(Some(Tier::Pro), &request)
        );
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_build_and_a_failed_build_is_not_kept() {
        let builds = &AtomicUsize::new(0);
        let (cache, _time, _writes) = cache(8, 1 << 20);
        let call = || {
            cache.get_or_build::<_, _, ()>(key("k"), move || async move {
                builds.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok(Bytes::from_static(b"body"))
            })
        };
        let (a, b, c) = tokio::join!(call(), call(), call());
        assert_eq!([a.unwrap(), b.unwrap(), c.unwrap()], [&b"body"[..]; 3]);
        assert_eq!(builds.load(Ordering::SeqCst), 1);

        let failing = cache
            .get_or_build(key("f"), || async { Err::<Bytes, _>("refused") })
            .await;
        assert_eq!(failing, Err("refused"));
        assert_eq!(page(&cache, "f", builds).await, "f#1", "built again");
    }

    #[tokio::test]
    async fn a_page_bigger_than_max_bytes_is_served_but_not_kept() {
        let (cache, _time, _writes) = cache(4, 128);
        let big = || async { Ok::<_, ()>(Bytes::from(vec![b'x'; 129])) };
        assert_eq!(
            cache.get_or_build(key("big"), big).await.unwrap().len(),
            129
        );
        let runs = AtomicUsize::new(0);
        let counted = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(Bytes::from(vec![b'x'; 129]))
        };
        cache.get_or_build(key("big"), counted).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "built again: not kept");
    }
}
