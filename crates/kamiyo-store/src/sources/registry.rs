//! Writes to the source registry (`sources`) and the fetch log (`source_fetches`),
//! the SQL of each dialect side by side.
//!
//! Recording a fetch is one transaction: the source's registry row (created when
//! missing; cumulative counters, last fetch, last success, last error), the fetch row,
//! and the deletion of the source's fetch rows and fetch slots older than the retention
//! the caller gives (`server.source_fetch_retention`), so both stay bounded per source.

use chrono::{DateTime, Utc};
use kamiyo_db::Pool;

use super::response::to_i64;
use super::slots::prune_slots_sql;
use super::SourceFetch;
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::sqlite_time;
use crate::statement::{self, Param};

/// Registers the source `$1` as active or not (`$2`), only when it has a registry row or
/// a claim.
fn set_active_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "INSERT INTO sources (name, is_active) \
         SELECT $1::text, $2::boolean \
          WHERE EXISTS (SELECT 1 FROM sources WHERE name = $1::text) \
             OR EXISTS (SELECT 1 FROM exploit_sources WHERE source_name = $1::text) \
         ON CONFLICT (name) DO UPDATE SET is_active = excluded.is_active",
        "INSERT INTO sources (name, is_active) \
         SELECT ?1, ?2 \
          WHERE EXISTS (SELECT 1 FROM sources WHERE name = ?1) \
             OR EXISTS (SELECT 1 FROM exploit_sources WHERE source_name = ?1) \
         ON CONFLICT (name) DO UPDATE SET is_active = excluded.is_active",
    )
}

/// The registry row of source `$1` after a fetch that finished at `$2` with error `$3`
/// (NULL: it succeeded). A fetch recorded late never moves the last times back.
fn register_fetch_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        // GREATEST ignores NULLs.
        "INSERT INTO sources (name, last_fetch_at, last_success_at, last_error, success_count, error_count) \
         VALUES ($1::text, $2::timestamptz, CASE WHEN $3::text IS NULL THEN $2::timestamptz END, $3::text, \
                 CASE WHEN $3::text IS NULL THEN 1 ELSE 0 END, CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END) \
         ON CONFLICT (name) DO UPDATE SET \
             last_fetch_at = GREATEST(sources.last_fetch_at, excluded.last_fetch_at), \
             last_success_at = GREATEST(sources.last_success_at, excluded.last_success_at), \
             last_error = coalesce(excluded.last_error, sources.last_error), \
             success_count = sources.success_count + excluded.success_count, \
             error_count = sources.error_count + excluded.error_count",
        // max() of SQLite returns NULL when an argument is NULL, hence the coalesce on
        // both sides.
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
    )
}

fn insert_fetch_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, records, error, \
             http_status, bytes, duration_ms, etag, last_modified, body_sha256, \
             inserted, merged, updated, unchanged, rejected, not_modified, slot_start) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::int8::int4, $8, $9, $10, $11, $12, \
                 $13, $14, $15, $16, $17, $18, $19::text::timestamptz)",
        "INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, records, error, \
             http_status, bytes, duration_ms, etag, last_modified, body_sha256, \
             inserted, merged, updated, unchanged, rejected, not_modified, slot_start) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                 ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )
}

/// The parameters of [`insert_fetch_sql`].
fn fetch_params(fetch: &SourceFetch) -> Vec<Param> {
    let response = &fetch.response;
    let validators = &response.validators;
    let counts = fetch.counts;
    let opt_int = |value: Option<u64>| Param::OptInt(value.map(to_i64));
    vec![
        Param::Text(fetch.source.clone()),
        Param::Time(fetch.started_at),
        Param::Time(fetch.finished_at),
        Param::Bool(fetch.error.is_none()),
        Param::Int(to_i64(fetch.records)),
        Param::OptText(fetch.error.clone()),
        Param::OptInt(response.status.map(i64::from)),
        opt_int(response.bytes),
        opt_int(response.duration_ms),
        Param::OptText(validators.etag.clone()),
        Param::OptText(validators.last_modified.clone()),
        Param::OptText(validators.body_sha256.clone()),
        Param::Int(to_i64(counts.inserted)),
        Param::Int(to_i64(counts.merged)),
        Param::Int(to_i64(counts.updated)),
        Param::Int(to_i64(counts.unchanged)),
        Param::Int(to_i64(counts.rejected)),
        Param::Bool(fetch.not_modified),
        // An optional time goes as SQLite's text form, which PostgreSQL's cast reads.
        Param::OptText(fetch.slot_start.map(sqlite_time)),
    ]
}

fn prune_fetches_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "DELETE FROM source_fetches WHERE source_name = $1 AND finished_at < $2",
        "DELETE FROM source_fetches WHERE source_name = ?1 AND finished_at < ?2",
    )
}

/// Marks a source active or not (`/api/sources` shows it; fetchers are to skip inactive
/// ones, and none exists yet). A source known only by its claims gets its registry row
/// here. `false` when no source of that name has claims or a registry row.
pub(super) async fn set_active(
    pool: &Pool,
    source: &str,
    active: bool,
) -> Result<bool, StoreError> {
    let dialect = statement::dialect(pool);
    let params = vec![Param::Text(source.to_owned()), Param::Bool(active)];
    Ok(statement::execute(pool, set_active_sql(dialect), params).await? > 0)
}

/// Records `fetch` and deletes the source's fetches that finished, and slots that
/// started, before `keep_since`.
pub(super) async fn record(
    pool: &Pool,
    fetch: &SourceFetch,
    keep_since: DateTime<Utc>,
) -> Result<(), StoreError> {
    let dialect = statement::dialect(pool);
    let source = || Param::Text(fetch.source.clone());
    let error = || Param::OptText(fetch.error.clone());
    statement::execute_all(
        pool,
        vec![
            (
                register_fetch_sql(dialect),
                vec![source(), Param::Time(fetch.finished_at), error()],
            ),
            (insert_fetch_sql(dialect), fetch_params(fetch)),
            (
                prune_fetches_sql(dialect),
                vec![source(), Param::Time(keep_since)],
            ),
            (
                prune_slots_sql(dialect),
                vec![source(), Param::Time(keep_since)],
            ),
        ],
    )
    .await
}
