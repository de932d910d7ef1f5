//! The monitor over HTTP: `/api/metrics/database`, `/api/metrics/queries` and the
//! Prometheus `/metrics`.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use kamiyo_db::monitor::prometheus::{Exposition, CONTENT_TYPE};
use kamiyo_db::monitor::{LeakWarning, PoolReport, QuerySort, SlowQuery, StatementReport};
use kamiyo_db::HealthReport;
use serde::Serialize;

use crate::error::{ApiError, Result};
use crate::params::Params;
use crate::AppState;

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1000;

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatabaseMetrics {
    monitoring_enabled: bool,
    health_status: HealthReport,
    pools: Vec<PoolReport>,
    slow_queries: Vec<SlowQuery>,
    pool_config: PoolConfig,
    leak_warnings: Vec<LeakWarning>,
    /// The read replica, when one is configured: state, lag, and reads the primary
    /// served instead.
    replica: Option<ReplicaMetrics>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct ReplicaMetrics {
    #[serde(flatten)]
    status: kamiyo_db::ReplicaStatus,
    /// Reads the primary served instead, by reason.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    fallbacks: std::collections::BTreeMap<&'static str, u64>,
}

/// The limits in force, so a reader can judge the numbers against them.
#[derive(Serialize, utoipa::ToSchema)]
struct PoolConfig {
    backend: String,
    max_size: usize,
    acquire_timeout_ms: u128,
    connect_timeout_ms: u128,
    statement_timeout_ms: u128,
    idle_timeout_ms: u128,
    max_lifetime_ms: u128,
    slow_query_threshold_ms: u128,
    leak_detection: bool,
    leak_threshold_ms: u128,
    health_window_ms: u128,
}

/// Monitor state without touching the database: health here is the windowed view
/// (`/api/health/database` also pings).
#[utoipa::path(get, path = "/api/metrics/database", tag = "monitoring",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Slow queries shown, default 10")),
    responses((status = 200, description = "Pool state, acquisitions, slow queries, configuration, leaks, health", body = DatabaseMetrics),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope)))]
pub async fn database(
    State(state): State<AppState>,
    query: RawQuery,
) -> Result<Json<DatabaseMetrics>> {
    let params = Params::from_query(query, &["limit"])?;
    let limit = limit(&params)?;
    let db = &state.db;
    let config = db.config();
    let monitors = db.monitors();
    let mut slow_queries: Vec<SlowQuery> = monitors
        .iter()
        .flat_map(|(m, _)| m.slow_queries(limit))
        .collect();
    slow_queries.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
    slow_queries.truncate(limit);
    let ms = |d: Duration| d.as_millis();
    Ok(Json(DatabaseMetrics {
        monitoring_enabled: config.monitor.enabled,
        health_status: db.health_report(None),
        pools: monitors.iter().map(|(m, s)| m.report(*s)).collect(),
        slow_queries,
        pool_config: PoolConfig {
            backend: db.backend().to_string(),
            max_size: config.pool_max_size,
            acquire_timeout_ms: ms(config.acquire_timeout),
            connect_timeout_ms: ms(config.connect_timeout),
            statement_timeout_ms: ms(config.statement_timeout),
            idle_timeout_ms: ms(config.idle_timeout),
            max_lifetime_ms: ms(config.max_lifetime),
            slow_query_threshold_ms: ms(config.monitor.slow_query_threshold),
            leak_detection: config.monitor.leak_detection,
            leak_threshold_ms: ms(config.monitor.leak_threshold),
            health_window_ms: ms(config.monitor.health_window),
        },
        leak_warnings: monitors.iter().flat_map(|(m, _)| m.leaks()).collect(),
        replica: db.replica_status().map(|status| ReplicaMetrics {
            status,
            fallbacks: db
                .replica_fallbacks()
                .into_iter()
                .map(|(reason, count)| (reason.label(), count))
                .collect(),
        }),
    }))
}

/// `sort` of `/api/metrics/queries`, for the OpenAPI document: the handler matches the
/// same names (tests/openapi.rs checks that each is accepted).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum QueriesSort {
    Total,
    Mean,
    Max,
    Calls,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QueryMetrics {
    sort: &'static str,
    limit: usize,
    statements: Vec<StatementReport>,
}

#[utoipa::path(get, path = "/api/metrics/queries", tag = "monitoring",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Statements shown, default 10"),
        ("sort" = Option<QueriesSort>, Query, description = "Largest first by this; `total` when absent")),
    responses((status = 200, description = "Per-statement statistics", body = QueryMetrics),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope)))]
pub async fn queries(State(state): State<AppState>, query: RawQuery) -> Result<Json<QueryMetrics>> {
    let params = Params::from_query(query, &["limit", "sort"])?;
    let limit = limit(&params)?;
    let (sort, sort_name) = match params.text("sort")?.as_deref() {
        None | Some("total") => (QuerySort::Total, "total"),
        Some("mean") => (QuerySort::Mean, "mean"),
        Some("max") => (QuerySort::Max, "max"),
        Some("calls") => (QuerySort::Calls, "calls"),
        Some(other) => {
            return Err(ApiError::BadParameter {
                parameter: "sort",
                message: format!("{other:?} is not one of total, mean, max, calls"),
            })
        }
    };
    let mut statements: Vec<StatementReport> = state
        .db
        .monitors()
        .iter()
        .flat_map(|(m, _)| m.statements(sort, limit))
        .collect();
    let key = |r: &StatementReport| match sort {
        QuerySort::Total => r.total_ms,
        QuerySort::Mean => r.mean_ms,
        QuerySort::Max => r.max_ms,
        QuerySort::Calls => r.calls as f64,
    };
    statements.sort_by(|a, b| key(b).total_cmp(&key(a)));
    statements.truncate(limit);
    Ok(Json(QueryMetrics {
        sort: sort_name,
        limit,
        statements,
    }))
}

/// Prometheus text exposition of the database monitor, the HTTP requests and the
/// connections.
#[utoipa::path(get, path = "/metrics", tag = "monitoring",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    let mut exposition = Exposition::new();
    state.db.write_metrics(&mut exposition);
    state.http_metrics.write(&mut exposition);
    state.connections.write(&mut exposition);
    state.source_metrics.write(&mut exposition);
    // The backlog is shared by every instance: read where it is (a database that does
    // not answer leaves it out rather than failing the scrape).
    let pending = state.alerts.outbox_pending().await.ok();
    state.alert_metrics.write(&mut exposition, pending);
    crate::ratelimit::write_metrics(
        &[
            ("requests", state.rate_limiter.local()),
            ("auth_failures", &state.auth_failures),
        ],
        &mut exposition,
    );
    state.rate_limiter.write_metrics(&mut exposition);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], exposition.finish())
}

fn limit(params: &Params) -> Result<usize> {
    Ok(params
        .integer("limit", 1, MAX_LIMIT as i64)?
        .map_or(DEFAULT_LIMIT, |n| n as usize))
}
