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
    let answer = state.health.get_or_probe(probe).await;
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
