//! Fetch slots (`source_fetch_slots`, migration 0005): which instance fetches a source
//! for one slot of its schedule, with no leader and no session lock.
//!
//! A claim is one statement, `INSERT ... ON CONFLICT (source_name, slot_start) DO UPDATE
//! ... WHERE <unfinished and lease expired> RETURNING attempt`: a compare-and-set on the
//! slot's row. PostgreSQL serialises concurrent claims on the row (the losers wait for
//! the winner's insert, then see its live lease and update nothing); SQLite's single
//! writer runs them one after the other. Session-level advisory locks are avoided on
//! purpose: behind a transaction-mode pooler a session lock is taken on one server
//! connection and released (or held forever) on another.
//!
//! Every time is the caller's, bound as a parameter (the caller holds an injected
//! `kamiyo_db::Clock`): the database's clock never decides whether a lease has expired,
//! so tests move time by advancing a manual clock.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kamiyo_db::Pool;

use super::fetch::to_millisecond;
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param};

/// Longest lease a claim or a renewal gets; a longer one is cut to it. A holder that
/// dies blocks its slot until the lease expires, so a lease is meant to be renewed, not
/// long.
pub const MAX_SLOT_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// How a slot's fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOutcome {
    /// New or changed records were fetched.
    Succeeded,
    Failed,
    /// The source had nothing new (a 304, or the same body as last time).
    Unchanged,
}

impl SlotOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SlotOutcome::Succeeded => "succeeded",
            SlotOutcome::Failed => "failed",
            SlotOutcome::Unchanged => "unchanged",
        }
    }
}

impl FromStr for SlotOutcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "succeeded" => Ok(SlotOutcome::Succeeded),
            "failed" => Ok(SlotOutcome::Failed),
            "unchanged" => Ok(SlotOutcome::Unchanged),
            other => Err(format!("{other:?} is not a slot outcome")),
        }
    }
}

/// Who holds a slot: an instance and the attempt its claim got
/// ([`SlotClaim::Claimed`]). Renewing and finishing name both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotHolder<'a> {
    pub holder: &'a str,
    pub attempt: u32,
}

/// What a claim got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotClaim {
    /// The caller holds the slot and is to fetch; `attempt` is 1 for the first claim and
    /// grows with each takeover of an expired lease.
    Claimed { attempt: u32 },
    /// Another claim's lease is live. `holder` is the caller itself when it claims a
    /// slot it already holds: it is fetching that slot already.
    HeldByOther {
        holder: String,
        lease_until: DateTime<Utc>,
    },
    /// The slot's fetch has ended; the next slot is the next chance.
    AlreadyDone { outcome: SlotOutcome },
}

/// One slot as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSlot {
    pub source: String,
    pub slot_start: DateTime<Utc>,
    /// The instance that holds the slot, or held it when it finished.
    pub holder: String,
    pub claimed_at: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub attempt: u32,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<SlotOutcome>,
}

impl FetchSlot {
    /// Whether a claim at `now` would take the slot over: unfinished, lease expired.
    pub fn is_abandoned(&self, now: DateTime<Utc>) -> bool {
        self.finished_at.is_none() && self.lease_until < now
    }

    /// What a claim that did not get this slot is told.
    fn refusal(self) -> SlotClaim {
        match self.outcome {
            Some(outcome) => SlotClaim::AlreadyDone { outcome },
            None => SlotClaim::HeldByOther {
                holder: self.holder,
                lease_until: self.lease_until,
            },
        }
    }
}

/// One slot of one source, as the statements below bind it.
#[derive(Debug, Clone)]
pub(super) struct SlotKey {
    pub source: String,
    pub slot_start: DateTime<Utc>,
}

impl SlotKey {
    pub fn new(source: &str, slot_start: DateTime<Utc>) -> Self {
        SlotKey {
            source: source.trim().to_owned(),
            slot_start: to_millisecond(slot_start),
        }
    }

    fn params(&self) -> Vec<Param> {
        vec![
            Param::Text(self.source.clone()),
            Param::Time(self.slot_start),
        ]
    }
}

/// The end of a lease of length `lease` (at most [`MAX_SLOT_LEASE`]) taken at `now`.
pub(super) fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<DateTime<Utc>, StoreError> {
    chrono::Duration::from_std(lease.min(MAX_SLOT_LEASE))
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .ok_or_else(|| StoreError::Invariant(format!("a lease from {now} ends past the calendar")))
}

/// Gives source `$1` a registry row when it has none: the slot's foreign key needs it.
/// The `NOT EXISTS` spares the identity a value on every claim of a known source.
fn register_source_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "INSERT INTO sources (name) SELECT $1::text \
          WHERE NOT EXISTS (SELECT 1 FROM sources WHERE name = $1::text) \
         ON CONFLICT (name) DO NOTHING",
        "INSERT INTO sources (name) SELECT ?1 \
          WHERE NOT EXISTS (SELECT 1 FROM sources WHERE name = ?1) \
         ON CONFLICT (name) DO NOTHING",
    )
}

/// Claims slot `($1, $2)` for holder `$3` at `$4` until `$5`: inserts it, or takes it
/// over when it is unfinished and its lease ended before `$4`. A row comes back only
/// when the caller got the slot.
fn claim_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "INSERT INTO source_fetch_slots (source_name, slot_start, holder, claimed_at, lease_until) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (source_name, slot_start) DO UPDATE SET \
             holder = excluded.holder, claimed_at = excluded.claimed_at, \
             lease_until = excluded.lease_until, attempt = source_fetch_slots.attempt + 1 \
          WHERE source_fetch_slots.finished_at IS NULL \
            AND source_fetch_slots.lease_until < excluded.claimed_at \
         RETURNING attempt",
        "INSERT INTO source_fetch_slots (source_name, slot_start, holder, claimed_at, lease_until) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (source_name, slot_start) DO UPDATE SET \
             holder = excluded.holder, claimed_at = excluded.claimed_at, \
             lease_until = excluded.lease_until, attempt = source_fetch_slots.attempt + 1 \
          WHERE source_fetch_slots.finished_at IS NULL \
            AND source_fetch_slots.lease_until < excluded.claimed_at \
         RETURNING attempt",
    )
}

fn slot_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT source_name, slot_start, holder, claimed_at, lease_until, attempt, finished_at, outcome \
           FROM source_fetch_slots WHERE source_name = $1 AND slot_start = $2",
        "SELECT source_name, slot_start, holder, claimed_at, lease_until, attempt, finished_at, outcome \
           FROM source_fetch_slots WHERE source_name = ?1 AND slot_start = ?2",
    )
}

/// The source's slot with the latest start (the primary key, read backwards).
fn last_slot_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT source_name, slot_start, holder, claimed_at, lease_until, attempt, finished_at, outcome \
           FROM source_fetch_slots WHERE source_name = $1 ORDER BY slot_start DESC LIMIT 1",
        "SELECT source_name, slot_start, holder, claimed_at, lease_until, attempt, finished_at, outcome \
           FROM source_fetch_slots WHERE source_name = ?1 ORDER BY slot_start DESC LIMIT 1",
    )
}

/// Extends the lease of slot `($1, $2)` to `$4` if holder `$3` still has it unfinished,
/// in the attempt `$5` it claimed (the same holder claiming again after its lease ran out
/// is another attempt, and only the newest one may go on).
/// An expired lease nobody took over is still the holder's to extend: nobody else has
/// started the slot. Never shortened, so `lease_until >= claimed_at` holds even if the
/// holder's clock steps back.
fn renew_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "UPDATE source_fetch_slots SET lease_until = GREATEST(lease_until, $4) \
          WHERE source_name = $1 AND slot_start = $2 AND holder = $3 AND attempt = $5::bigint \
            AND finished_at IS NULL",
        "UPDATE source_fetch_slots SET lease_until = max(lease_until, ?4) \
          WHERE source_name = ?1 AND slot_start = ?2 AND holder = ?3 AND attempt = ?5 \
            AND finished_at IS NULL",
    )
}

/// Ends slot `($1, $2)` at `$4` with outcome `$5` if holder `$3` still has it, in the
/// attempt `$6` it claimed.
fn finish_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "UPDATE source_fetch_slots SET finished_at = $4, outcome = $5 \
          WHERE source_name = $1 AND slot_start = $2 AND holder = $3 AND attempt = $6::bigint \
            AND finished_at IS NULL",
        "UPDATE source_fetch_slots SET finished_at = ?4, outcome = ?5 \
          WHERE source_name = ?1 AND slot_start = ?2 AND holder = ?3 AND attempt = ?6 \
            AND finished_at IS NULL",
    )
}

fn attempt_row(row: &dyn DriverRow) -> Result<u32, StoreError> {
    let f = Fields::of("source_fetch_slots", row);
    let attempt = f.int("attempt")?;
    u32::try_from(attempt)
        .map_err(|_| StoreError::corrupt("source_fetch_slots", "attempt", attempt))
}

fn slot_row(row: &dyn DriverRow) -> Result<FetchSlot, StoreError> {
    let f = Fields::of("source_fetch_slots", row);
    Ok(FetchSlot {
        source: f.text("source_name")?,
        slot_start: f.time("slot_start")?,
        holder: f.text("holder")?,
        claimed_at: f.time("claimed_at")?,
        lease_until: f.time("lease_until")?,
        attempt: attempt_row(row)?,
        finished_at: f.opt_time("finished_at")?,
        outcome: f.opt_parse("outcome", SlotOutcome::from_str)?,
    })
}

/// How many times a claim is tried when the slot it lost to vanishes before it can be
/// read (its source deleted, or the slot pruned, in between): a bound, not a retry
/// policy.
const CLAIM_TRIES: usize = 3;

/// Claims `key` for `holder` at `now` until `lease_until`. The claim decides in one
/// statement; only a caller that did not get the slot reads it afterwards, to say who
/// has it. That read is a statement of its own on purpose: on PostgreSQL a conflicting
/// row committed by a concurrent claimer is invisible to the claiming statement's own
/// snapshot, so a read folded into it would find nothing.
pub(super) async fn claim(
    pool: &Pool,
    key: &SlotKey,
    holder: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<SlotClaim, StoreError> {
    let dialect = statement::dialect(pool);
    let source = vec![Param::Text(key.source.clone())];
    statement::execute(pool, register_source_sql(dialect), source).await?;
    let mut params = key.params();
    params.extend([
        Param::Text(holder.to_owned()),
        Param::Time(now),
        Param::Time(lease_until),
    ]);
    for _ in 0..CLAIM_TRIES {
        let claimed =
            statement::query_opt(pool, claim_sql(dialect), params.clone(), attempt_row).await?;
        if let Some(attempt) = claimed {
            return Ok(SlotClaim::Claimed { attempt });
        }
        if let Some(slot) = read(pool, key).await? {
            return Ok(slot.refusal());
        }
    }
    Err(StoreError::Invariant(format!(
        "slot {} of {} neither claimed nor found {CLAIM_TRIES} times",
        key.slot_start, key.source
    )))
}

/// The slot `key`, if it has been claimed.
pub(super) async fn read(pool: &Pool, key: &SlotKey) -> Result<Option<FetchSlot>, StoreError> {
    let sql = slot_sql(statement::dialect(pool));
    statement::query_opt(pool, sql, key.params(), slot_row).await
}

/// The source's latest slot, if any was claimed.
pub(super) async fn last(pool: &Pool, source: &str) -> Result<Option<FetchSlot>, StoreError> {
    let sql = last_slot_sql(statement::dialect(pool));
    let params = vec![Param::Text(source.trim().to_owned())];
    statement::query_opt(pool, sql, params, slot_row).await
}

/// Extends `holder`'s lease on `key` to `lease_until`; `false` when it lost the slot.
pub(super) async fn renew(
    pool: &Pool,
    key: &SlotKey,
    holder: &SlotHolder<'_>,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut params = key.params();
    params.extend([
        Param::Text(holder.holder.to_owned()),
        Param::Time(lease_until),
        Param::Int(i64::from(holder.attempt)),
    ]);
    let sql = renew_sql(statement::dialect(pool));
    Ok(statement::execute(pool, sql, params).await? > 0)
}

/// Ends `holder`'s slot `key` at `now`; `false` when it lost the slot or it had ended.
pub(super) async fn finish(
    pool: &Pool,
    key: &SlotKey,
    holder: &SlotHolder<'_>,
    outcome: SlotOutcome,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut params = key.params();
    params.extend([
        Param::Text(holder.holder.to_owned()),
        Param::Time(now),
        Param::Text(outcome.as_str().to_owned()),
        Param::Int(i64::from(holder.attempt)),
    ]);
    let sql = finish_sql(statement::dialect(pool));
    Ok(statement::execute(pool, sql, params).await? > 0)
}

/// Deletes the source `$1`'s slots that started before `$2`; run with the pruning of
/// its fetches, under the same retention.
pub(super) fn prune_slots_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "DELETE FROM source_fetch_slots WHERE source_name = $1 AND slot_start < $2",
        "DELETE FROM source_fetch_slots WHERE source_name = ?1 AND slot_start < ?2",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT_COLUMNS: &str =
        "source_name, slot_start, holder, claimed_at, lease_until, attempt, finished_at, outcome";

    #[test]
    fn every_outcome_reads_back_as_itself() {
        for outcome in [
            SlotOutcome::Succeeded,
            SlotOutcome::Failed,
            SlotOutcome::Unchanged,
        ] {
            assert_eq!(outcome.as_str().parse(), Ok(outcome));
        }
        assert!("done".parse::<SlotOutcome>().is_err());
    }

    #[test]
    fn a_lease_is_cut_to_the_longest_allowed() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let end = lease_end(now, Duration::MAX).ok();
        assert_eq!(end, Some(now + chrono::Duration::seconds(24 * 60 * 60)));
    }

    #[test]
    fn the_slot_columns_are_those_every_read_selects() {
        for sql in [
            slot_sql(Dialect::Postgres),
            slot_sql(Dialect::Sqlite),
            last_slot_sql(Dialect::Postgres),
            last_slot_sql(Dialect::Sqlite),
        ] {
            assert!(sql.contains(SLOT_COLUMNS), "{sql}");
        }
    }
}
