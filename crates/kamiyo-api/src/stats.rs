//! `GET /api/stats?days=N`, `/api/stats/by-chain`, `/api/stats/by-attack-type`,
//! `/api/stats/by-month` (all with `days`), `GET /api/chains` and `GET /api/sources`.

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, DurationRound, Utc};
use kamiyo_store::incidents::stats::{Bucket, ChainCount, Dimension, Summary};
use kamiyo_store::SourceReport;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::Result;
use crate::params::Params;
use crate::AppState;

/// Ten years of days: enough for every incident on record, small enough to subtract.
pub const MAX_DAYS: i64 = 3650;

/// `(days asked, since, until)`.
type Window = (Option<i64>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The window asked for (`days`), narrowed to what the caller's tier may see.
fn window(query: RawQuery, caller: &Caller, now: DateTime<Utc>) -> Result<Window> {
    let params = Params::from_query(query, &["days"])?;
    let days = params.integer("days", 1, MAX_DAYS)?;
    let (since, until) = visible_window(days, caller, now);
    Ok((days, since, until))
}

/// The last `days` days (all time when `None`) narrowed to what `caller` may see:
/// `(since, until)`, the bounds every stats query of the API and the dashboard takes.
pub fn visible_window(
    days: Option<i64>,
    caller: &Caller,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    // To the minute, as the tier's bounds are: requests within one minute then share a
    // cached answer (the store caches stats by their exact bounds).
    let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let asked = days.map(|d| minute - Duration::days(d));
    let (visible_from, visible_until) = caller.visibility(now);
    let since = match (asked, visible_from) {
        (Some(a), Some(v)) => Some(a.max(v)),
        (a, v) => a.or(v),
    };
    (since, visible_until)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SummaryResponse {
    /// The window in days; absent for all time.
    days: Option<i64>,
    #[serde(flatten)]
    summary: Summary,
}

#[utoipa::path(get, path = "/api/stats", tag = "stats",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "Only incidents of the last N days; all when absent")),
    responses((status = 200, description = "Totals; zeros when nothing matches", body = SummaryResponse),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn summary(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<SummaryResponse>> {
    let (days, since, until) = window(query, &caller, state.now())?;
    let summary = state.incidents.summary(since, until).await?;
    Ok(Json(SummaryResponse { days, summary }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BreakdownResponse {
    /// The window in days; absent for all time.
    days: Option<i64>,
    /// Largest first (months: in calendar order).
    buckets: Vec<Bucket>,
}

async fn breakdown(
    state: AppState,
    caller: Caller,
    query: RawQuery,
    dimension: Dimension,
) -> Result<Json<BreakdownResponse>> {
    let (days, since, until) = window(query, &caller, state.now())?;
    let buckets = state.incidents.breakdown(dimension, since, until).await?;
    Ok(Json(BreakdownResponse { days, buckets }))
}

#[utoipa::path(get, path = "/api/stats/by-chain", tag = "stats",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "Only incidents of the last N days; all when absent")),
    responses((status = 200, description = "Incidents and loss per group", body = BreakdownResponse),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn by_chain(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<BreakdownResponse>> {
    breakdown(state, caller, query, Dimension::Chain).await
}

#[utoipa::path(get, path = "/api/stats/by-attack-type", tag = "stats",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "Only incidents of the last N days; all when absent")),
    responses((status = 200, description = "Incidents and loss per group", body = BreakdownResponse),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn by_attack_type(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<BreakdownResponse>> {
    breakdown(state, caller, query, Dimension::AttackType).await
}

#[utoipa::path(get, path = "/api/stats/by-month", tag = "stats",
    params(("days" = Option<i64>, Query, minimum = 1, maximum = 3650, description = "Only incidents of the last N days; all when absent")),
    responses((status = 200, description = "Incidents and loss per group", body = BreakdownResponse),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn by_month(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<BreakdownResponse>> {
    breakdown(state, caller, query, Dimension::Month).await
}

#[utoipa::path(get, path = "/api/chains", tag = "stats",
    responses((status = 200, description = "Every chain with its incident count", body = Vec<ChainCount>),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn chains(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<Vec<ChainCount>>> {
    Params::from_query(query, &[])?;
    let (since, until) = caller.visibility(state.now());
    let chains = state.incidents.chains(since, until).await?;
    Ok(Json(chains))
}

#[utoipa::path(get, path = "/api/sources", tag = "stats",
    responses((status = 200, description = "What each source contributed, and its fetches' success rate over the rolling window server.source_health_window; `last_error` for admin callers only; `stale` for the sources this instance fetches", body = Vec<SourceReport>),
        (status = 400, description = "A parameter is malformed, empty, repeated or unknown; the message names it", body = crate::error::ErrorEnvelope),))]
pub async fn sources(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
) -> Result<Json<Vec<SourceReport>>> {
    Params::from_query(query, &[])?;
    Ok(Json(source_reports(&state, &caller).await?))
}

/// Each source's report as `caller` may read it: claims counted within their tier's
/// window, the last error for admins only, staleness for the sources this instance
/// fetches. `/api/sources` and the dashboard's sources page show the same.
pub async fn source_reports(state: &AppState, caller: &Caller) -> Result<Vec<SourceReport>> {
    let (since, until) = caller.visibility(state.now());
    let mut sources = state
        .sources
        .report(state.server.source_health_window, since, until)
        .await?;
    let now = state.now();
    for source in &mut sources {
        if !caller.is_admin() {
            source.last_error = None;
        }
        if let Some(schedule) = state.schedule.iter().find(|s| s.name == source.source) {
            source.stale = Some(schedule.is_stale(source.last_success(), state.started_at, now));
        }
    }
    Ok(sources)
}
