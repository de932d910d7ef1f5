//! Liveness (`/healthz`: the process answers) and database health
//! (`/api/health/database`: the database answers within its deadline, and the monitor's
//! window shows nothing wrong).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kamiyo_db::monitor::HealthWarning;
use kamiyo_db::{HealthStatus, PoolState};
use serde::Serialize;
use serde_json::{json, Value};

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
    if !unhealthy {
        return (StatusCode::OK, Json(body)).into_response();
    }
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    let seconds = state.server.retry_after.as_secs().max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
