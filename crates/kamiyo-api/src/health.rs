//! Liveness (`/healthz`: the process answers) and database health
//! (`/api/health/database`: the database answers within its deadline, and the monitor's
//! window shows nothing wrong).
//!
//! The database probe is open to anyone (load balancers carry no key), so its answer is
//! shared: one probe per `server.health_cache_ttl`, and probes arriving while one runs
//! wait for it instead of starting their own. However many callers ask, the database
//! sees at most one probe per TTL.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kamiyo_db::monitor::HealthWarning;
use kamiyo_db::{HealthStatus, PoolState};
use serde::Serialize;

use crate::error::ErrorDetail;
use crate::AppState;

/// `/healthz`'s answer: the process answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers: `{\"status\": \"ok\"}`", body = Liveness)))]
pub async fn liveness() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// The database probe's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatabaseHealth {
    status: HealthStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<HealthWarning>,
    backend: String,
    schema_version: Option<i64>,
    pool: PoolState,
    /// The error envelope's detail, as every other 503 answers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

/// The last probe's answer, and the lock that makes concurrent probes share one.
#[derive(Debug, Default)]
pub struct HealthCache {
    last: tokio::sync::Mutex<Option<Probe>>,
}

#[derive(Debug, Clone)]
struct Probe {
    at: Instant,
    unhealthy: bool,
    body: Bytes,
}

impl HealthCache {
    /// The answer of a probe at most `ttl` old, or of a new one run by `probe`.
    async fn get_or_probe<F, Fut>(&self, ttl: Duration, now: Instant, probe: F) -> Probe
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Probe>,
    {
        let mut last = self.last.lock().await;
        if let Some(answer) = last.as_ref() {
            if now.saturating_duration_since(answer.at) < ttl {
                return answer.clone();
            }
        }
        let answer = probe().await;
        *last = Some(answer.clone());
        answer
    }
}

/// 200 healthy, 200 degraded (with warnings), 503 unhealthy (with `Retry-After`). An
/// exhausted pool is degraded, not unhealthy: the database answers, the pool is full.
#[utoipa::path(get, path = "/api/health/database", tag = "health",
    responses((status = 200, description = "healthy, or degraded with warnings", body = DatabaseHealth),
        (status = 503, description = "unhealthy: the database does not answer (`error` says so in the error envelope's words)", body = DatabaseHealth)))]
pub async fn database(State(state): State<AppState>) -> Response {
    let probe = || async {
        let db = &state.db;
        let check = db.health_check().await;
        let (report, schema_version) = (check.report, check.schema_version);
        let unhealthy = report.status == HealthStatus::Unhealthy;
        let body = DatabaseHealth {
            status: report.status,
            warnings: report.warnings,
            backend: db.backend().to_string(),
            schema_version,
            pool: db.pool_state(),
            error: unhealthy.then(ErrorDetail::database_unavailable),
        };
        Probe {
            // When the probe ended: a slow probe is not reused for longer than the TTL.
            at: Instant::now(),
            unhealthy,
            body: serde_json::to_vec(&body)
                .map(Bytes::from)
                .unwrap_or_default(),
        }
    };
    let answer = state
        .health
        .get_or_probe(state.server.health_cache_ttl, Instant::now(), probe)
        .await;
    let status = if answer.unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    // A 503 gets its Retry-After from `error::stamp_retry_after`.
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn answer(at: Instant) -> Probe {
        Probe {
            at,
            unhealthy: false,
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn probes_within_the_ttl_share_one_database_probe() {
        let cache = Arc::new(HealthCache::default());
        let probes = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let ttl = Duration::from_secs(1);
        let (release, released) = tokio::sync::watch::channel(false);
        // Ten concurrent callers while the first probe is still running: one probe.
        let mut waiters = Vec::new();
        for _ in 0..10 {
            let (cache, probes, mut released) =
                (Arc::clone(&cache), Arc::clone(&probes), released.clone());
            waiters.push(tokio::spawn(async move {
                cache
                    .get_or_probe(ttl, start, || async move {
                        probes.fetch_add(1, Ordering::SeqCst);
                        let _ = released.wait_for(|r| *r).await;
                        answer(start)
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
                answer(start + ttl)
            }
        };
        cache.get_or_probe(ttl, start + ttl / 2, count()).await;
        assert_eq!(probes.load(Ordering::SeqCst), 1, "still fresh");
        cache.get_or_probe(ttl, start + ttl, count()).await;
        assert_eq!(probes.load(Ordering::SeqCst), 2, "expired: probed again");
        cache
            .get_or_probe(Duration::ZERO, start + ttl, count())
            .await;
        assert_eq!(
            probes.load(Ordering::SeqCst),
            3,
            "a zero TTL probes every time"
        );
    }
}
