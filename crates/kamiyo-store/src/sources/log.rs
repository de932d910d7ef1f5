//! Reads of the fetch log (`source_fetches`): a source's last fetches as recorded, and
//! the validators a fetcher sends with its next conditional request.

use kamiyo_db::Pool;

use super::response::{FetchCounts, FetchResponse, Validators};
use super::SourceFetch;
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param};

/// Source `$1`'s `$2` latest fetches, newest first (its index, read backwards). The
/// nullable numbers come as text, parsed on the way out: the row reader reads integers
/// only where they are required.
fn last_fetches_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT source_name, started_at, finished_at, records, error, http_status::text AS http_status, \
                bytes::text AS bytes, duration_ms::text AS duration_ms, etag, last_modified, body_sha256, inserted, merged, updated, \
                unchanged, rejected, not_modified, slot_start \
           FROM source_fetches WHERE source_name = $1 \
          ORDER BY finished_at DESC, id DESC LIMIT $2",
        "SELECT source_name, started_at, finished_at, records, error, \
                CAST(http_status AS TEXT) AS http_status, CAST(bytes AS TEXT) AS bytes, \
                CAST(duration_ms AS TEXT) AS duration_ms, etag, last_modified, body_sha256, inserted, merged, updated, \
                unchanged, rejected, not_modified, slot_start \
           FROM source_fetches WHERE source_name = ?1 \
          ORDER BY finished_at DESC, id DESC LIMIT ?2",
    )
}

/// The validators of source `$1`'s latest successful fetch that has any. Fetches
/// without validators (imports, a 304 that repeated none) are passed over: they say
/// nothing about the remote resource, whose last validators still hold.
fn last_validators_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT etag, last_modified, body_sha256 FROM source_fetches \
          WHERE source_name = $1 AND succeeded \
            AND (etag IS NOT NULL OR last_modified IS NOT NULL OR body_sha256 IS NOT NULL) \
          ORDER BY finished_at DESC, id DESC LIMIT 1",
        "SELECT etag, last_modified, body_sha256 FROM source_fetches \
          WHERE source_name = ?1 AND succeeded \
            AND (etag IS NOT NULL OR last_modified IS NOT NULL OR body_sha256 IS NOT NULL) \
          ORDER BY finished_at DESC, id DESC LIMIT 1",
    )
}

const TABLE: &str = "source_fetches";

fn count<R: DriverRow + ?Sized>(
    f: &Fields<'_, R>,
    column: &'static str,
) -> Result<u64, StoreError> {
    let value = f.int(column)?;
    u64::try_from(value).map_err(|_| StoreError::corrupt(TABLE, column, value))
}

/// A nullable number, selected as text (see [`last_fetches_sql`]).
fn opt_number<T: std::str::FromStr, R: DriverRow + ?Sized>(
    f: &Fields<'_, R>,
    column: &'static str,
) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    f.opt_parse(column, str::parse::<T>)
}

fn validators<R: DriverRow + ?Sized>(f: &Fields<'_, R>) -> Result<Validators, StoreError> {
    Ok(Validators {
        etag: f.opt_text("etag")?,
        last_modified: f.opt_text("last_modified")?,
        body_sha256: f.opt_text("body_sha256")?,
    })
}

fn validators_row(row: &dyn DriverRow) -> Result<Validators, StoreError> {
    validators(&Fields::of(TABLE, row))
}

fn fetch_row(row: &dyn DriverRow) -> Result<SourceFetch, StoreError> {
    let f = Fields::of(TABLE, row);
    Ok(SourceFetch {
        source: f.text("source_name")?,
        started_at: f.time("started_at")?,
        finished_at: f.time("finished_at")?,
        records: count(&f, "records")?,
        error: f.opt_text("error")?,
        response: FetchResponse {
            status: opt_number(&f, "http_status")?,
            bytes: opt_number(&f, "bytes")?,
            duration_ms: opt_number(&f, "duration_ms")?,
            validators: validators(&f)?,
        },
        counts: FetchCounts {
            inserted: count(&f, "inserted")?,
            merged: count(&f, "merged")?,
            updated: count(&f, "updated")?,
            unchanged: count(&f, "unchanged")?,
            rejected: count(&f, "rejected")?,
        },
        not_modified: f.boolean("not_modified")?,
        slot_start: f.opt_time("slot_start")?,
    })
}

/// The source's `limit` latest fetches, newest first.
pub(super) async fn last_fetches(
    pool: &Pool,
    source: &str,
    limit: u32,
) -> Result<Vec<SourceFetch>, StoreError> {
    let sql = last_fetches_sql(statement::dialect(pool));
    let params = vec![
        Param::Text(source.trim().to_owned()),
        Param::Int(i64::from(limit)),
    ];
    statement::query(pool, sql, params, fetch_row).await
}

/// The validators of the source's latest successful fetch that recorded any.
pub(super) async fn last_validators(
    pool: &Pool,
    source: &str,
) -> Result<Option<Validators>, StoreError> {
    let sql = last_validators_sql(statement::dialect(pool));
    let params = vec![Param::Text(source.trim().to_owned())];
    statement::query_opt(pool, sql, params, validators_row).await
}
