//! The database probe's shared answer (see `health`): one probe per
//! `server.health_cache_ttl`, and probes arriving while one runs wait for it instead of
//! starting their own. The rules are those of `kamiyo_store::cache`, on the injected
//! clock; an unhealthy answer is an answer, shared like a healthy one.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use kamiyo_db::Clock;
use kamiyo_store::cache::{CacheLimits, Failure, TtlCache};

/// A probe's answer, as sent.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) unhealthy: bool,
    pub(crate) body: Bytes,
}

/// The answer is one value: the key is `()`.
#[derive(Debug)]
pub struct HealthCache {
    cache: TtlCache<(), Probe, Infallible>,
}

impl HealthCache {
    /// `ttl` zero probes on every call.
    pub fn new(ttl: Duration, clock: Clock) -> Self {
        HealthCache {
            cache: TtlCache::new(CacheLimits::new(ttl, 1), clock),
        }
    }

    /// The answer of a probe less than `ttl` old (counted from when it ended, so a slow
    /// probe is not reused for longer than the TTL), or of a new one run by `probe`.
    pub(crate) async fn get_or_probe<F, Fut>(&self, probe: F) -> Probe
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Probe>,
    {
        let outcome = self
            .cache
            .get_or_compute((), || async { Ok(probe().await) }, |never| match *never {})
            .await;
        match outcome {
            Ok(answer) => answer,
            Err(Failure::Own(never) | Failure::Waited(never)) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use kamiyo_db::ManualClock;

    use super::*;

    fn answer() -> Probe {
        Probe {
            unhealthy: false,
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn probes_within_the_ttl_share_one_database_probe() {
        let time = ManualClock::new();
        let ttl = Duration::from_secs(1);
        let cache = Arc::new(HealthCache::new(ttl, time.clock()));
        let probes = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        // Ten concurrent callers while the first probe is still running: one probe.
        let mut waiters = Vec::new();
        for _ in 0..10 {
            let (cache, probes, mut released) =
                (Arc::clone(&cache), Arc::clone(&probes), released.clone());
            waiters.push(tokio::spawn(async move {
                cache
                    .get_or_probe(|| async move {
                        probes.fetch_add(1, Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                        answer()
                    })
                    .await
            }));
        }
        let _ = release.send(true);
        for waiter in waiters {
            assert!(waiter.await.is_ok());
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        let count = || {
            let probes = Arc::clone(&probes);
            move || async move {
                probes.fetch_add(1, Ordering::SeqCst);
                answer()
            }
        };
        time.advance(ttl / 2);
        cache.get_or_probe(count()).await;
        assert_eq!(probes.load(Ordering::SeqCst), 1, "still fresh");
        time.advance(ttl / 2);
        cache.get_or_probe(count()).await;
        assert_eq!(probes.load(Ordering::SeqCst), 2, "expired: probed again");
        let off = HealthCache::new(Duration::ZERO, time.clock());
        off.get_or_probe(count()).await;
        off.get_or_probe(count()).await;
        assert_eq!(
            probes.load(Ordering::SeqCst),
            4,
            "a zero TTL probes every time"
        );
    }
}
