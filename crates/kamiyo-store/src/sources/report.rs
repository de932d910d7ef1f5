//! The sources report: what each source contributed to incidents and how its fetches
//! went, one query per dialect side by side and one mapping for both.

use chrono::{DateTime, Utc};
use kamiyo_db::Pool;
use serde::Serialize;

use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, time_bounds, Param};

/// What one source has contributed, and how its fetches went: every source with a claim
/// or a registry row (`sources`, created when its first fetch is recorded).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceReport {
    pub source: String,
    /// Distinct incidents this source has a claim on.
    pub incidents: i64,
    pub claims: i64,
    /// When its first claim was stored; null while it has none.
    pub first_seen_at: Option<String>,
    /// When a claim of this source was last stored or updated (its last import); null
    /// while it has none.
    pub last_seen_at: Option<String>,
    /// From the `sources` registry; null for a source no fetch was recorded for.
    pub active: Option<bool>,
    /// When its last recorded fetch finished, successful or not.
    pub last_fetch_at: Option<String>,
    /// When its last successful fetch finished.
    pub last_success_at: Option<String>,
    /// Why its last failed fetch failed (the registry's `last_error`). Shown to admin
    /// callers only: an error text can name internal hosts or paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Fetches that finished within the rolling window (`server.source_health_window`).
    pub fetches_in_window: i64,
    /// 100 × successful / all fetches within the window, to two decimals; null when no
    /// fetch finished within it.
    pub success_rate_pct: Option<f64>,
    /// When its latest attempt started: the later of its last recorded fetch's start and
    /// its latest slot's claim (a fetch under way, or one whose holder died, has a claim
    /// and no fetch yet); null when it has neither.
    pub last_attempt_at: Option<String>,
    /// Failed fetches that finished after its last successful one (in the kept log);
    /// 0 when the last fetch succeeded or there is none.
    pub consecutive_failures: i64,
    /// Records its last recorded fetch brought; null when it has none.
    pub records_last_fetch: Option<i64>,
    /// For a source the answering instance fetches on schedule: no successful fetch
    /// within three of its intervals (`SourceSchedule::is_stale`). Absent for the others
    /// (a source known only by imports, or fetching turned off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
}

impl SourceReport {
    /// When its last successful fetch finished, as a time (`None`: never, or text that
    /// does not read as RFC 3339).
    pub fn last_success(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.last_success_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// Fetches that finished at or after `$1`; claims on incidents within `$2..=$3` (the
/// caller's visibility). A source appears when it has claims, a registry row, or both
/// (FULL JOIN): a source whose every fetch fails has no claims, and is the one to show.
/// The latest fetch, the failures since the last success and the latest claim come from
/// the kept log and slots, each through its source's index (`latest`, one row per
/// registry row: every fetch and slot has one). Times are text in SQLite's stored form
/// on both backends.
fn report_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "WITH claims AS ( \
             SELECT c.source_name, count(DISTINCT c.exploit_id) AS incidents, count(*) AS claims, \
                    min(c.first_seen_at) AS first_seen_at, max(c.last_seen_at) AS last_seen_at \
               FROM exploit_sources c JOIN exploits e ON e.id = c.exploit_id \
              WHERE e.occurred_at >= $2 AND e.occurred_at <= $3 \
              GROUP BY c.source_name), \
         fetches AS ( \
             SELECT source_name, count(*) AS fetches, count(*) FILTER (WHERE succeeded) AS succeeded \
               FROM source_fetches WHERE finished_at >= $1 GROUP BY source_name), \
         latest AS ( \
             SELECT s.name, \
                    (SELECT f.records FROM source_fetches f WHERE f.source_name = s.name \
                      ORDER BY f.finished_at DESC, f.id DESC LIMIT 1) AS records_last_fetch, \
                    (SELECT count(*) FROM source_fetches f \
                      WHERE f.source_name = s.name AND NOT f.succeeded \
                        AND f.finished_at > coalesce((SELECT max(g.finished_at) FROM source_fetches g \
                             WHERE g.source_name = s.name AND g.succeeded), '-infinity')) AS consecutive_failures, \
                    GREATEST((SELECT f.started_at FROM source_fetches f WHERE f.source_name = s.name \
                               ORDER BY f.finished_at DESC, f.id DESC LIMIT 1), \
                             (SELECT t.claimed_at FROM source_fetch_slots t WHERE t.source_name = s.name \
                               ORDER BY t.slot_start DESC LIMIT 1)) AS last_attempt_at \
               FROM sources s) \
         SELECT coalesce(c.source_name, s.name) AS source, coalesce(c.incidents, 0) AS incidents, \
                coalesce(c.claims, 0) AS claims, \
                to_char(c.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS first_seen_at, \
                to_char(c.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS last_seen_at, \
                s.is_active AS active, \
                to_char(s.last_fetch_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS last_fetch_at, \
                to_char(s.last_success_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS last_success_at, \
                coalesce(f.fetches, 0) AS fetches_in_window, \
                round(100.0 * f.succeeded / f.fetches, 2)::float8 AS success_rate_pct, \
                s.last_error AS last_error, \
                to_char(l.last_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS last_attempt_at, \
                coalesce(l.consecutive_failures, 0) AS consecutive_failures, \
                l.records_last_fetch::text AS records_last_fetch \
           FROM claims c \
           FULL JOIN sources s ON s.name = c.source_name \
           LEFT JOIN fetches f ON f.source_name = coalesce(c.source_name, s.name) \
           LEFT JOIN latest l ON l.name = s.name \
          ORDER BY 2 DESC, 1",
        "WITH claims AS ( \
             SELECT c.source_name, count(DISTINCT c.exploit_id) AS incidents, count(*) AS claims, \
                    min(c.first_seen_at) AS first_seen_at, max(c.last_seen_at) AS last_seen_at \
               FROM exploit_sources c JOIN exploits e ON e.id = c.exploit_id \
              WHERE e.occurred_at >= ?2 AND e.occurred_at <= ?3 \
              GROUP BY c.source_name), \
         fetches AS ( \
             SELECT source_name, count(*) AS fetches, sum(succeeded) AS succeeded \
               FROM source_fetches WHERE finished_at >= ?1 GROUP BY source_name), \
         latest AS ( \
             SELECT s.name, \
                    (SELECT f.records FROM source_fetches f WHERE f.source_name = s.name \
                      ORDER BY f.finished_at DESC, f.id DESC LIMIT 1) AS records_last_fetch, \
                    (SELECT count(*) FROM source_fetches f \
                      WHERE f.source_name = s.name AND NOT f.succeeded \
                        AND f.finished_at > coalesce((SELECT max(g.finished_at) FROM source_fetches g \
                             WHERE g.source_name = s.name AND g.succeeded), '')) AS consecutive_failures, \
                    (SELECT f.started_at FROM source_fetches f WHERE f.source_name = s.name \
                      ORDER BY f.finished_at DESC, f.id DESC LIMIT 1) AS fetch_started_at, \
                    (SELECT t.claimed_at FROM source_fetch_slots t WHERE t.source_name = s.name \
                      ORDER BY t.slot_start DESC LIMIT 1) AS slot_claimed_at \
               FROM sources s) \
         SELECT coalesce(c.source_name, s.name) AS source, coalesce(c.incidents, 0) AS incidents, \
                coalesce(c.claims, 0) AS claims, c.first_seen_at AS first_seen_at, \
                c.last_seen_at AS last_seen_at, s.is_active AS active, s.last_fetch_at AS last_fetch_at, \
                s.last_success_at AS last_success_at, coalesce(f.fetches, 0) AS fetches_in_window, \
                round(100.0 * f.succeeded / f.fetches, 2) AS success_rate_pct, s.last_error AS last_error, \
                max(coalesce(l.fetch_started_at, l.slot_claimed_at), coalesce(l.slot_claimed_at, l.fetch_started_at)) \
                    AS last_attempt_at, \
                coalesce(l.consecutive_failures, 0) AS consecutive_failures, \
                CAST(l.records_last_fetch AS TEXT) AS records_last_fetch \
           FROM claims c \
           FULL JOIN sources s ON s.name = c.source_name \
           LEFT JOIN fetches f ON f.source_name = coalesce(c.source_name, s.name) \
           LEFT JOIN latest l ON l.name = s.name \
          ORDER BY 2 DESC, 1",
    )
}

fn report_row(row: &dyn DriverRow) -> Result<SourceReport, StoreError> {
    let f = Fields::of("sources", row);
    Ok(SourceReport {
        source: f.text("source")?,
        incidents: f.int("incidents")?,
        claims: f.int("claims")?,
        first_seen_at: f.opt_text("first_seen_at")?,
        last_seen_at: f.opt_text("last_seen_at")?,
        active: f.opt_boolean("active")?,
        last_fetch_at: f.opt_text("last_fetch_at")?,
        last_success_at: f.opt_text("last_success_at")?,
        last_error: f.opt_text("last_error")?,
        fetches_in_window: f.int("fetches_in_window")?,
        success_rate_pct: f.opt_float("success_rate_pct")?,
        last_attempt_at: f.opt_text("last_attempt_at")?,
        consecutive_failures: f.int("consecutive_failures")?,
        // Nullable, so selected as text (the row reader reads integers only where they
        // are required).
        records_last_fetch: f.opt_parse("records_last_fetch", str::parse::<i64>)?,
        // Known to the caller that holds the schedule, not to the database.
        stale: None,
    })
}

/// Every source, most incidents first, then by name; fetch health over the fetches that
/// finished at or after `window_start`.
pub(super) async fn report(
    pool: &Pool,
    window_start: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<SourceReport>, StoreError> {
    let dialect = statement::dialect(pool);
    let mut params = vec![Param::Time(window_start)];
    params.extend(time_bounds(dialect, since, until));
    statement::query(pool, report_sql(dialect), params, report_row).await
}
