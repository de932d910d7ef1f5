//! The request limiter every request passes (`rate_limit.*`, docs/DEPLOYMENT.md): the
//! buckets of [`crate::ratelimit`] kept in this process (`memory`), or shared by every
//! instance on PostgreSQL or Redis, so that behind N instances a caller gets its limit
//! once, not N times.
//!
//! **Fail-open.** A shared backend that fails or does not answer within
//! `rate_limit.timeout` does not refuse anyone: the request is checked against this
//! instance's own buckets, the instance says so in `/api/health` (`degraded`, with the
//! error) and in one warning, and for `rate_limit.retry_interval` it does not try the
//! shared backend again; then one request probes it (a down backend costs one timeout per
//! interval, not one per request). The first probe that succeeds ends the outage. Limits are then
//! per instance: a caller may get up to N times its limit across N instances while the
//! shared backend is down. Refusing everyone instead would turn a limiter outage into a
//! service outage.

pub mod config;
mod redis;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kamiyo_db::monitor::prometheus::Exposition;
use kamiyo_db::{Clock, DbConfig};
use kamiyo_store::rate_limits::SharedBuckets;
use parking_lot::Mutex;
use serde::Serialize;

pub use config::{LimiterBackend, RateLimitConfig};

use crate::ratelimit::{decision, Capacity, Decision, RateLimiter};

/// Checks between two sweeps of idle callers from the shared table.
const SWEEP_EVERY: u64 = 16_384;
/// Callers idle this long have full buckets again.
const IDLE: Duration = Duration::from_secs(86_400);

enum Shared {
    Postgres(SharedBuckets),
    Redis(Box<redis::RedisBuckets>),
}

impl Shared {
    async fn take(&self, caller: &str, capacity: Capacity) -> Result<(bool, [f64; 3]), String> {
        match self {
            Shared::Postgres(buckets) => buckets
                .take(caller, capacity)
                .await
                .map(|t| (t.allowed, t.tokens))
                .map_err(|e| e.to_string()),
            Shared::Redis(buckets) => buckets
                .run(caller, capacity, true)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Forgets a connection that did not answer in time, so that the next check opens a
    /// new one: a dead connection that was never closed (the server moved, a NAT forgot
    /// it) would otherwise be reused until the kernel gives up on it.
    async fn reset(&self) {
        if let Shared::Redis(buckets) = self {
            buckets.reset().await;
        }
    }

    async fn peek(&self, caller: &str, capacity: Capacity) -> Result<[f64; 3], String> {
        match self {
            Shared::Postgres(buckets) => buckets
                .peek(caller, capacity)
                .await
                .map_err(|e| e.to_string()),
            Shared::Redis(buckets) => buckets
                .run(caller, capacity, false)
                .await
                .map(|(_, tokens)| tokens)
                .map_err(|e| e.to_string()),
        }
    }
}

/// The shared backend failing: since when, until when this instance does not try it,
/// and why.
struct Outage {
    since: DateTime<Utc>,
    retry_at: Instant,
    error: String,
}

/// What `/api/health` says of the limiter.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LimiterHealth {
    /// `memory`, `postgres` or `redis` (`rate_limit.backend`).
    pub backend: &'static str,
    /// Whether limits are shared by every instance now: false for `memory`, and while
    /// the shared backend fails (limits are this instance's own meanwhile).
    pub shared: bool,
    /// Since when the shared backend fails.
    pub failing_since: Option<DateTime<Utc>>,
    /// Its last error.
    pub error: Option<String>,
}

pub struct RequestLimiter {
    /// This instance's buckets: the `memory` backend, and every backend's fallback.
    local: RateLimiter,
    shared: Option<Shared>,
    backend: LimiterBackend,
    timeout: Duration,
    retry_interval: Duration,
    clock: Clock,
    outage: Mutex<Option<Outage>>,
    /// Checks answered by this instance's buckets because the shared backend failed.
    fallbacks: AtomicU64,
    checks: AtomicU64,
}

impl RequestLimiter {
    /// The `memory` backend: this instance's buckets only.
    pub fn memory(max_callers: usize, clock: Clock) -> RequestLimiter {
        RequestLimiter {
            local: RateLimiter::new(max_callers, clock.clone()),
            shared: None,
            backend: LimiterBackend::Memory,
            timeout: config::DEFAULT_TIMEOUT,
            retry_interval: config::DEFAULT_RETRY_INTERVAL,
            clock,
            outage: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }

    /// The backend `config` names. `database` is the service's database settings: the
    /// `postgres` backend uses `rate_limit.postgres_url`, else its direct URL, else its
    /// URL, with its connection settings. Nothing is connected yet: a backend that is down at start is
    /// an outage like any other, not a refusal to start.
    pub fn new(
        config: &RateLimitConfig,
        database: &DbConfig,
        max_callers: usize,
        clock: Clock,
    ) -> Result<RequestLimiter, String> {
        config.validate()?;
        let shared = match config.backend {
            LimiterBackend::Memory => None,
            LimiterBackend::Postgres => {
                // Its own sessions, straight to the primary when a direct URL is known:
                // behind a pooler in transaction mode a check would queue with the
                // queries for a server session.
                let url = config
                    .postgres_url
                    .clone()
                    .or_else(|| database.direct_url.clone())
                    .unwrap_or_else(|| database.url.clone());
                if !url.expose().starts_with("postgres") {
                    return Err(
                        "rate_limit.backend = \"postgres\" needs PostgreSQL: set rate_limit.postgres_url, or use a postgres:// database.url"
                            .into(),
                    );
                }
                let pool_config = DbConfig {
                    url,
                    read_url: None,
                    // `database.transaction_pooling` requires `database.direct_url`, so
                    // this URL never goes through the pooler.
                    transaction_pooling: false,
                    pool_max_size: config.pool_size,
                    acquire_timeout: config.timeout,
                    application_name: "kamiyo-rate-limit".into(),
                    ..database.clone()
                };
                let pool = kamiyo_db::postgres::PgPool::new("rate_limit", &pool_config)
                    .map_err(|e| format!("rate_limit: {e}"))?;
                Some(Shared::Postgres(SharedBuckets::new(pool)))
            }
            LimiterBackend::Redis => {
                let url = config.redis_url.as_ref().ok_or(
                    "rate_limit.redis_url is required when rate_limit.backend is \"redis\"",
                )?;
                Some(Shared::Redis(Box::new(redis::RedisBuckets::new(
                    url,
                    &config.key_prefix,
                    config.timeout,
                )?)))
            }
        };
        Ok(RequestLimiter {
            shared,
            backend: config.backend,
            timeout: config.timeout,
            retry_interval: config.retry_interval,
            ..RequestLimiter::memory(max_callers, clock)
        })
    }

    /// Takes a token from every window of `caller` if each has one: on the shared
    /// backend, or on this instance's buckets while it fails.
    pub async fn check(&self, caller: &str, capacity: Capacity) -> Decision {
        let Some(shared) = self.usable() else {
            return self.local.check(caller, capacity);
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep(shared);
        }
        match tokio::time::timeout(self.timeout, shared.take(caller, capacity)).await {
            Ok(Ok((allowed, tokens))) => {
                self.recovered();
                decision(capacity, tokens, allowed)
            }
            Ok(Err(error)) => {
                self.failed(error);
                self.local.check(caller, capacity)
            }
            Err(_) => {
                shared.reset().await;
                self.failed(format!(
                    "no answer within rate_limit.timeout ({})",
                    humantime::format_duration(self.timeout)
                ));
                self.local.check(caller, capacity)
            }
        }
    }

    /// Tokens left per window (minute, hour, day), taking none. Only while the shared
    /// backend is known to answer: this read never probes a failing one.
    pub async fn usage(&self, caller: &str, capacity: Capacity) -> [u32; 3] {
        let answering = self.outage.lock().is_none();
        if let Some(shared) = self.shared.as_ref().filter(|_| answering) {
            if let Ok(Ok(tokens)) =
                tokio::time::timeout(self.timeout, shared.peek(caller, capacity)).await
            {
                return tokens.map(|t| t.max(0.0).floor() as u32);
            }
        }
        self.local.usage(caller, capacity)
    }

    /// The shared backend, unless it failed within the retry interval. Once the interval
    /// has passed, one request probes it: it moves the next try a whole interval on at
    /// once, so the requests arriving meanwhile stay on local buckets instead of each
    /// waiting out a timeout.
    fn usable(&self) -> Option<&Shared> {
        let shared = self.shared.as_ref()?;
        let now = self.clock.now();
        let mut outage = self.outage.lock();
        if let Some(known) = outage.as_mut() {
            if now < known.retry_at {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            known.retry_at = now + self.retry_interval;
        }
        Some(shared)
    }

    fn failed(&self, error: String) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let retry_at = self.clock.now() + self.retry_interval;
        let mut outage = self.outage.lock();
        match outage.as_mut() {
            Some(known) => {
                known.retry_at = retry_at;
                known.error = error;
            }
            None => {
                tracing::warn!(
                    backend = self.backend.as_str(),
                    %error,
                    retry_interval = %humantime::format_duration(self.retry_interval),
                    "shared rate limits unavailable: each instance limits on its own until the backend answers"
                );
                *outage = Some(Outage {
                    since: self.clock.now_utc(),
                    retry_at,
                    error,
                });
            }
        }
    }

    fn recovered(&self) {
        let mut outage = self.outage.lock();
        if let Some(ended) = outage.take() {
            tracing::info!(
                backend = self.backend.as_str(),
                failing_since = %ended.since,
                "shared rate limits available again"
            );
        }
    }

    /// Deletes callers idle for a day from the shared table, in the background.
    fn sweep(&self, shared: &Shared) {
        if let Shared::Postgres(buckets) = shared {
            let buckets = buckets.clone();
            tokio::spawn(async move {
                if let Err(error) = buckets.sweep(IDLE).await {
                    tracing::debug!(%error, "sweeping idle rate-limit buckets failed");
                }
            });
        }
    }

    pub fn health(&self) -> LimiterHealth {
        let outage = self.outage.lock();
        LimiterHealth {
            backend: self.backend.as_str(),
            shared: self.shared.is_some() && outage.is_none(),
            failing_since: outage.as_ref().map(|o| o.since),
            error: outage.as_ref().map(|o| o.error.clone()),
        }
    }

    /// This instance's own buckets (the `memory` backend, and the fallback).
    pub fn local(&self) -> &RateLimiter {
        &self.local
    }

    /// For `/metrics`: whether limits are shared now, and the checks answered locally
    /// because the shared backend failed.
    pub fn write_metrics(&self, exposition: &mut Exposition) {
        let backend = [("backend", self.backend.as_str())];
        exposition.gauge(
            "kamiyo_rate_limit_shared",
            "1 while request limits are shared by every instance (rate_limit.backend answers), 0 otherwise.",
            &[(&backend[..], if self.health().shared { 1.0 } else { 0.0 })],
        );
        exposition.counter(
            "kamiyo_rate_limit_fallbacks_total",
            "Requests limited by this instance's own buckets because the shared backend failed or did not answer in time.",
            &[(&backend[..], self.fallbacks.load(Ordering::Relaxed))],
        );
    }
}
