//! The fetch log: one row per attempt to collect a source (a fetcher's run, or an import
//! of a file of the source's records), from which `GET /api/sources` computes a success
//! rate over a rolling window (migration 0004, docs/SCHEMA.md).
//!
//! Recording a fetch is one transaction: the source's registry row (`sources`: created
//! when missing; cumulative counters, last fetch, last success, last error), the fetch
//! row, and the deletion of the source's fetch rows older than the retention the caller
//! gives (`server.source_fetch_retention`), so the log stays bounded per source.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kamiyo_db::{DbError, Pool};
use kamiyo_domain::FieldError;

use crate::row::sqlite_time;

/// How far back `GET /api/sources` looks for a source's success rate, unless configured
/// (`server.source_health_window`).
pub const DEFAULT_SOURCE_HEALTH_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How long fetch outcomes are kept, unless configured (`server.source_fetch_retention`).
/// Well above the window, so that a server configured with a longer window than the
/// process that records fetches (an import run with other settings) still finds them.
/// Three months as humantime counts them (30.44 days each, about 91 days), so that
/// `kamiyo config` prints `3months` rather than `2months 29days 2h 52m 48s`.
pub const DEFAULT_SOURCE_FETCH_RETENTION: Duration = Duration::from_secs(3 * 2_630_016);

/// Longest error text kept for a failed fetch (in characters); longer texts are cut, so
/// that a fetcher that quotes a whole response cannot grow the log without bound.
pub const MAX_FETCH_ERROR_CHARS: usize = 1_000;

/// One attempt to collect a source, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFetch {
    source: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    records: u64,
    error: Option<String>,
}

impl SourceFetch {
    /// A fetch that worked and brought `records` records.
    pub fn succeeded(
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        records: u64,
    ) -> Result<Self, FieldError> {
        Self::new(source, started_at, finished_at, records, None)
    }

    /// A fetch that failed with `error` (after bringing `records` records, if any).
    pub fn failed(
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        records: u64,
        error: &str,
    ) -> Result<Self, FieldError> {
        let error = error.trim();
        if error.is_empty() {
            return Err(FieldError::new(
                "error",
                "a failed fetch must say why it failed",
            ));
        }
        let error: String = error.chars().take(MAX_FETCH_ERROR_CHARS).collect();
        Self::new(source, started_at, finished_at, records, Some(error))
    }

    fn new(
        source: &str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        records: u64,
        error: Option<String>,
    ) -> Result<Self, FieldError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(FieldError::new("source", "must not be empty"));
        }
        if finished_at < started_at {
            return Err(FieldError::new(
                "finished_at",
                format!("{finished_at} is before started_at {started_at}"),
            ));
        }
        if i64::try_from(records).is_err() {
            return Err(FieldError::new("records", "is too large"));
        }
        Ok(SourceFetch {
            source: source.to_owned(),
            started_at,
            finished_at,
            records,
            error,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// The start of a window of length `window` that ends at `now` (the epoch when the
/// window reaches past it).
pub(crate) fn window_start(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(window)
        .ok()
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Marks a source active or not (`/api/sources` shows it; fetchers are to skip inactive
/// ones, and none exists yet). A source known only by its claims gets its registry row
/// here. `false` when no source of that name has claims or a registry row.
pub(crate) async fn set_active(pool: &Pool, source: &str, active: bool) -> Result<bool, DbError> {
    let changed = match pool {
        Pool::Postgres(pool) => {
            pool.acquire()
                .await?
                .execute(
                    "INSERT INTO sources (name, is_active) \
                     SELECT $1::text, $2::boolean \
                      WHERE EXISTS (SELECT 1 FROM sources WHERE name = $1::text) \
                         OR EXISTS (SELECT 1 FROM exploit_sources WHERE source_name = $1::text) \
                     ON CONFLICT (name) DO UPDATE SET is_active = excluded.is_active",
                    &[&source, &active],
                )
                .await?
        }
        Pool::Sqlite(pool) => {
            pool.acquire()
                .await?
                .execute(
                    "INSERT INTO sources (name, is_active) \
                     SELECT ?1, ?2 \
                      WHERE EXISTS (SELECT 1 FROM sources WHERE name = ?1) \
                         OR EXISTS (SELECT 1 FROM exploit_sources WHERE source_name = ?1) \
                     ON CONFLICT (name) DO UPDATE SET is_active = excluded.is_active",
                    vec![
                        rusqlite::types::Value::Text(source.to_owned()),
                        rusqlite::types::Value::Integer(i64::from(active)),
                    ],
                )
                .await? as u64
        }
    };
    Ok(changed > 0)
}

/// Records `fetch` and deletes the source's fetches that finished before `keep_since`.
pub(crate) async fn record(
    pool: &Pool,
    fetch: &SourceFetch,
    keep_since: DateTime<Utc>,
) -> Result<(), DbError> {
    let records = i64::try_from(fetch.records)
        .map_err(|_| DbError::other("a fetch's record count does not fit the column"))?;
    match pool {
        Pool::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let tx = conn.transaction().await?;
            // GREATEST ignores NULLs, and a fetch recorded late never moves the times back.
            tx.execute(
                "INSERT INTO sources (name, last_fetch_at, last_success_at, last_error, success_count, error_count) \
                 VALUES ($1::text, $2::timestamptz, CASE WHEN $3::text IS NULL THEN $2::timestamptz END, $3::text, \
                         CASE WHEN $3::text IS NULL THEN 1 ELSE 0 END, CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END) \
                 ON CONFLICT (name) DO UPDATE SET \
                     last_fetch_at = GREATEST(sources.last_fetch_at, excluded.last_fetch_at), \
                     last_success_at = GREATEST(sources.last_success_at, excluded.last_success_at), \
                     last_error = coalesce(excluded.last_error, sources.last_error), \
                     success_count = sources.success_count + excluded.success_count, \
                     error_count = sources.error_count + excluded.error_count",
                &[&fetch.source, &fetch.finished_at, &fetch.error],
            )
            .await?;
            tx.execute(
                "INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, records, error) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &fetch.source,
                    &fetch.started_at,
                    &fetch.finished_at,
                    &fetch.error.is_none(),
                    &records,
                    &fetch.error,
                ],
            )
            .await?;
            tx.execute(
                "DELETE FROM source_fetches WHERE source_name = $1 AND finished_at < $2",
                &[&fetch.source, &keep_since],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        Pool::Sqlite(pool) => {
            let fetch = fetch.clone();
            let keep_since = sqlite_time(keep_since);
            pool.acquire()
                .await?
                .run(move |c| {
                    let tx =
                        c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let finished = sqlite_time(fetch.finished_at);
                    // max() of SQLite returns NULL when an argument is NULL, hence the
                    // coalesce on both sides.
                    tx.execute(
                        "INSERT INTO sources (name, last_fetch_at, last_success_at, last_error, success_count, error_count) \
                         VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN ?2 END, ?3, \
                                 CASE WHEN ?3 IS NULL THEN 1 ELSE 0 END, CASE WHEN ?3 IS NULL THEN 0 ELSE 1 END) \
                         ON CONFLICT (name) DO UPDATE SET \
                             last_fetch_at = max(coalesce(sources.last_fetch_at, excluded.last_fetch_at), excluded.last_fetch_at), \
                             last_success_at = CASE WHEN excluded.last_success_at IS NULL THEN sources.last_success_at \
                                 ELSE max(coalesce(sources.last_success_at, excluded.last_success_at), excluded.last_success_at) END, \
                             last_error = coalesce(excluded.last_error, sources.last_error), \
                             success_count = sources.success_count + excluded.success_count, \
                             error_count = sources.error_count + excluded.error_count, \
                             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                        rusqlite::params![fetch.source, finished, fetch.error],
                    )?;
                    tx.execute(
                        "INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, records, error) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        rusqlite::params![
                            fetch.source,
                            sqlite_time(fetch.started_at),
                            finished,
                            fetch.error.is_none(),
                            records,
                            fetch.error
                        ],
                    )?;
                    tx.execute(
                        "DELETE FROM source_fetches WHERE source_name = ?1 AND finished_at < ?2",
                        rusqlite::params![fetch.source, keep_since],
                    )?;
                    tx.commit()
                })
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, hour, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    #[test]
    fn a_fetch_names_the_field_it_gets_wrong() {
        let field = |r: Result<SourceFetch, FieldError>| r.err().map(|e| e.field);
        assert_eq!(
            field(SourceFetch::succeeded(" ", at(1), at(2), 0)),
            Some("source".into())
        );
        assert_eq!(
            field(SourceFetch::succeeded("rekt", at(2), at(1), 0)),
            Some("finished_at".into())
        );
        assert_eq!(
            field(SourceFetch::failed("rekt", at(1), at(2), 0, "  ")),
            Some("error".into())
        );
        assert_eq!(
            field(SourceFetch::succeeded("rekt", at(1), at(2), u64::MAX)),
            Some("records".into())
        );
        assert_eq!(field(SourceFetch::succeeded("rekt", at(1), at(1), 3)), None);
    }

    #[test]
    fn a_long_error_is_cut_and_the_name_trimmed() {
        let long = "x".repeat(MAX_FETCH_ERROR_CHARS * 3);
        let fetch = SourceFetch::failed(" rekt ", at(1), at(2), 0, &long);
        assert_eq!(
            fetch
                .as_ref()
                .map(|f| (f.source(), f.error().map(str::len))),
            Ok(("rekt", Some(MAX_FETCH_ERROR_CHARS)))
        );
    }

    #[test]
    fn a_window_past_the_epoch_starts_at_the_epoch() {
        assert_eq!(
            window_start(at(5), Duration::from_secs(3600)),
            at(4),
            "an hour before"
        );
        assert_eq!(
            window_start(at(5), Duration::MAX),
            DateTime::<Utc>::UNIX_EPOCH
        );
    }
}
