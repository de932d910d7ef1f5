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
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kamiyo_db::monitor::HealthWarning;
use kamiyo_db::{HealthStatus, PoolState};
use serde::Serialize;
use serde_json::{json, Value};

use crate::health_cache::Probe;
use crate::AppState;

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers: `{\"status\": \"ok\"}`", body = Object)))]
pub async fn liveness() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Serialize)]
struct DatabaseHealth {
    status: HealthStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<HealthWarning>,
    backend: String,
    schema_version: Option<i64>,
    pool: PoolState,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

/// 200 healthy, 200 degraded (with warnings), 503 unhealthy (with `Retry-After`). An
/// exhausted pool is degraded, not unhealthy: the database answers, the pool is full.
#[utoipa::path(get, path = "/api/health/database", tag = "health",
    responses((status = 200, description = "healthy, or degraded with warnings", body = Object),
        (status = 503, description = "unhealthy: the database does not answer", body = Object)))]
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
            error: unhealthy.then(
                || json!({ "code": "database_unavailable", "message": "the database is unavailable" }),
            ),
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
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    if answer.unhealthy {
        let seconds = state.server.retry_after.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}
