//! Liveness (`/healthz`: the process answers) and database health
//! (`/api/health/database`: the database answers within its deadline, and the monitor's
//! window shows nothing wrong).
//!
//! The database probe is open to anyone (load balancers carry no key), so its answer is
//! shared: one probe per `server.health_cache_ttl`, and probes arriving while one runs
//! wait for it instead of starting their own (`health_cache`). However many callers ask,
//! the database sees at most one probe per TTL.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kamiyo_db::monitor::HealthWarning;
use kamiyo_db::{HealthStatus, PoolState};
use serde::Serialize;

use crate::error::ErrorDetail;
use crate::health_cache::Probe;
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

/// 200 healthy, 200 degraded (with warnings), 503 unhealthy (with `Retry-After`). An
/// exhausted pool is degraded, not unhealthy: the database answers, the pool is full.
#[utoipa::path(get, path = "/api/health/database", tag = "health",
    responses((status = 200, description = "healthy, or degraded with warnings", body = DatabaseHealth),
        (status = 503, description = "unhealthy: the database does not answer (`error` says so in the error envelope's words)", body = DatabaseHealth)))]
pub async fn database(State(state): State<AppState>) -> Response {
    let answer = database_probe(&state).await;
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

/// What `/api/health/database` answers now (the same shared probe), as JSON: the
/// dashboard's status page shows it.
pub async fn database_health(state: &AppState) -> serde_json::Value {
    serde_json::from_slice(&database_probe(state).await.body).unwrap_or_default()
}

/// The database probe's answer, shared (see `health_cache`).
async fn database_probe(state: &AppState) -> Probe {
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
            unhealthy,
            body: serde_json::to_vec(&body)
                .map(Bytes::from)
                .unwrap_or_default(),
        }
    };
    state.health.get_or_probe(probe).await
}

/// `GET /api/health`'s answer: the database's health and each configured source's.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServiceHealth {
    /// `degraded` while the database is, while any enabled source is stale, or while the
    /// shared rate-limit backend fails.
    status: HealthStatus,
    /// What `/api/health/database` answers.
    #[schema(value_type = DatabaseHealth)]
    database: serde_json::Value,
    sources: Vec<SourceHealth>,
    /// The request limiter (`rate_limit.*`): `degraded` while a shared backend fails and
    /// limits are this instance's own.
    rate_limit: crate::request_limits::LimiterHealth,
}

/// One configured source's freshness.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SourceHealth {
    source: String,
    enabled: bool,
    /// Seconds between fetches.
    interval_seconds: u64,
    last_success_at: Option<String>,
    /// Failed fetches since the last success.
    consecutive_failures: i64,
    /// No successful fetch within three intervals (counted from this process's start
    /// for a source it never fetched).
    stale: bool,
}

/// The service's health: the database (the same shared probe as
/// `/api/health/database`) and each configured source's freshness. 200 `healthy` or
/// `degraded` (a stale source, a degraded database, shared rate limits unavailable);
/// 503 when the database does not answer.
#[utoipa::path(get, path = "/api/health", tag = "health",
    responses((status = 200, description = "healthy, or degraded: the database is, a source is stale, or the shared rate-limit backend fails (limits are per instance meanwhile)", body = ServiceHealth)))]
pub async fn service(State(state): State<AppState>) -> crate::error::Result<Json<ServiceHealth>> {
    let probe = database_probe(&state).await;
    if probe.unhealthy {
        // The probe's own finding: the database does not answer.
        return Err(crate::ApiError::DatabaseUnavailable(
            kamiyo_db::DbError::Unavailable {
                pool: kamiyo_db::PRIMARY_POOL.into(),
                reason: "the health probe got no answer".into(),
                source: None,
            }
            .into(),
        ));
    }
    let database: serde_json::Value = serde_json::from_slice(&probe.body)
        .map_err(|e| crate::ApiError::Unexpected(format!("reading the probe's answer: {e}")))?;
    let report = state
        .sources
        .report(state.server.source_health_window, None, None)
        .await?;
    let now = state.now();
    let sources: Vec<SourceHealth> = state
        .schedule
        .iter()
        .map(|schedule| {
            let row = report.iter().find(|r| r.source == schedule.name);
            let last_success_at = row.and_then(|r| r.last_success_at.clone());
            let last_success = row.and_then(kamiyo_store::SourceReport::last_success);
            SourceHealth {
                source: schedule.name.clone(),
                enabled: schedule.enabled,
                interval_seconds: schedule.interval.as_secs(),
                last_success_at,
                consecutive_failures: row.map_or(0, |r| r.consecutive_failures),
                stale: schedule.is_stale(last_success, state.started_at, now),
            }
        })
        .collect();
    let database_status = match database["status"].as_str() {
        Some("healthy") => HealthStatus::Healthy,
        _ => HealthStatus::Degraded,
    };
    let rate_limit = state.rate_limiter.health();
    let limits_as_configured = rate_limit.shared || rate_limit.backend == "memory";
    let status = if database_status == HealthStatus::Healthy
        && !sources.iter().any(|s| s.stale)
        && limits_as_configured
    {
        HealthStatus::Healthy
    } else {
        HealthStatus::Degraded
    };
    Ok(Json(ServiceHealth {
        status,
        database,
        sources,
        rate_limit,
    }))
}
