//! Liveness (`/healthz`: the process answers) and database health
//! (`/api/health/database`: the database answers within its deadline).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use kamiyo_db::PoolState;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{ApiError, Result};
use crate::AppState;

pub async fn liveness() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Serialize)]
pub struct DatabaseHealth {
    status: &'static str,
    backend: String,
    schema_version: Option<i64>,
    pool: PoolState,
}

pub async fn database(State(state): State<AppState>) -> Result<(StatusCode, Json<DatabaseHealth>)> {
    let db = &state.db;
    let deadline = db.config().acquire_timeout;
    let retry_after = state.server.retry_after;
    db.ping(deadline)
        .await
        .map_err(|e| ApiError::from_db(e, retry_after))?;
    let schema_version = db
        .schema_version()
        .await
        .map_err(|e| ApiError::from_db(e, retry_after))?;
    Ok((
        StatusCode::OK,
        Json(DatabaseHealth {
            status: "healthy",
            backend: db.backend().to_string(),
            schema_version,
            pool: db.pool_state(),
        }),
    ))
}
