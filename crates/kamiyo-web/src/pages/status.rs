//! `/status`: the database's health for everyone; the pools, slowest statements and
//! settings (what `/api/metrics/database` says) for admins and the metrics token, like
//! the API.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use kamiyo_api::params::Params;
use kamiyo_api::{ApiError, AppState};
use kamiyo_db::monitor::{QuerySort, SlowQuery, StatementReport};
use maud::{html, Markup};

use super::html;
use crate::ctx::Ctx;
use crate::layout;

/// Rows of each table.
const SHOWN: usize = 10;

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    query: RawQuery,
) -> Result<Response, ApiError> {
    Params::from_query(query, &[])?;
    let db = &state.db;
    // The same shared probe as `/api/health/database`: it reaches the database, so an
    // outage shows here as it does there.
    let probe = kamiyo_api::health::database_health(&state).await;
    let status = probe["status"].as_str().unwrap_or("unhealthy").to_owned();
    let class = if status == "healthy" { "ok" } else { "bad" };
    let health = db.health_report(None);
    let label = status.as_str();
    let schema = probe["schema_version"].as_i64();
    let details = if ctx.caller.may_read_metrics() {
        monitor(&state)
    } else {
        html! {
            p.muted { "Pools, slow statements and settings are shown to admins: "
                a href="/signin" { "sign in" } " with an admin user's key." }
        }
    };
    let body = html! {
        h1 { "Status" }
        ul.cards aria-label="Database" {
            li { span.label { "Database" } span class=(format!("value {class}")) { (label) } }
            li { span.label { "Pool in use" } span.value { (format!("{:.0} %", health.utilization_pct)) } }
            li { span.label { "Backend" } span.value { (db.backend().to_string()) } }
            @if let Some(version) = schema { li { span.label { "Schema version" } span.value { (version) } } }
        }
        @if !health.warnings.is_empty() {
            h2 { "Warnings" }
            ul { @for w in &health.warnings { li { strong { (w.check) } " (" (w.pool) "): " (w.message) } } }
        }
        (details)
    };
    Ok(html(StatusCode::OK, layout::page(&ctx, "Status", body)))
}

fn monitor(state: &AppState) -> Markup {
    let db = &state.db;
    let config = db.config();
    let monitors = db.monitors();
    let pools: Vec<_> = monitors.iter().map(|(m, s)| m.report(*s)).collect();
    let mut slow: Vec<SlowQuery> = monitors
        .iter()
        .flat_map(|(m, _)| m.slow_queries(SHOWN))
        .collect();
    slow.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
    slow.truncate(SHOWN);
    let mut statements: Vec<StatementReport> = monitors
        .iter()
        .flat_map(|(m, _)| m.statements(QuerySort::Total, SHOWN))
        .collect();
    statements.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    statements.truncate(SHOWN);
    let ms = |d: std::time::Duration| format!("{} ms", d.as_millis());
    html! {
        h2 { "Pools" }
        div.table-wrap { table {
            caption { "Connections and waits per pool" }
            thead { tr {
                th scope="col" { "Pool" } th.num scope="col" { "Open" } th.num scope="col" { "In use" }
                th.num scope="col" { "Idle" } th.num scope="col" { "Waiting" } th.num scope="col" { "Max" }
                th.num scope="col" { "Wait p99" } th.num scope="col" { "Timeouts" }
            } }
            tbody { @for p in &pools { tr {
                th scope="row" { (p.name) }
                td.num { (p.state.open) } td.num { (p.state.in_use) } td.num { (p.state.idle) }
                td.num { (p.state.waiting) } td.num { (p.state.max_size) }
                td.num { (format!("{:.1} ms", p.acquisitions.wait.p99_ms)) }
                td.num { (p.acquisitions.timeouts) }
            } } }
        } }
        h2 { "Slowest statements" }
        div.table-wrap { table {
            caption { "Statements by total time" }
            thead { tr {
                th scope="col" { "Statement" } th.num scope="col" { "Calls" } th.num scope="col" { "Mean" }
                th.num scope="col" { "p95" } th.num scope="col" { "Total" } th.num scope="col" { "Errors" }
            } }
            tbody {
                @for s in &statements { tr {
                    td { code { (s.summary) } }
                    td.num { (s.calls) } td.num { (format!("{:.2} ms", s.mean_ms)) }
                    td.num { (format!("{:.2} ms", s.p95_ms)) } td.num { (format!("{:.0} ms", s.total_ms)) }
                    td.num { (s.errors) }
                } }
                @if statements.is_empty() { tr { td colspan="6" { "Nothing recorded yet." } } }
            }
        } }
        h2 { "Slow queries" }
        p.muted { "Statements slower than " (ms(config.monitor.slow_query_threshold)) ", slowest first." }
        div.table-wrap { table {
            caption { "Recent slow queries" }
            thead { tr { th scope="col" { "When" } th scope="col" { "Statement" } th.num scope="col" { "Took" } th scope="col" { "Failed" } } }
            tbody {
                @for q in &slow { tr {
                    td { (q.at) } td { code { (q.statement) } }
                    td.num { (format!("{:.1} ms", q.duration_ms)) } td { (if q.failed { "yes" } else { "no" }) }
                } }
                @if slow.is_empty() { tr { td colspan="4" { "None." } } }
            }
        } }
        h2 { "Settings" }
        dl.facts {
            dt { "Pool size" } dd { (config.pool_max_size) }
            dt { "Acquire timeout" } dd { (ms(config.acquire_timeout)) }
            dt { "Statement timeout" } dd { (ms(config.statement_timeout)) }
            dt { "Monitoring" } dd { (if config.monitor.enabled { "on" } else { "off" }) }
        }
        p.muted { "The same as JSON: " code { "GET /api/metrics/database" } " with an admin key or the metrics token." }
    }
}
