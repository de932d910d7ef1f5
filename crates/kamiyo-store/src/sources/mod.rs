//! Source health: the source registry (`sources`), the fetch log (`source_fetches`, one
//! row per attempt to collect a source: a fetcher's run, or an import of a file of the
//! source's records) and the report `GET /api/sources` and `kamiyo source list` show,
//! with each source's success rate over a rolling window (migration 0004,
//! docs/SCHEMA.md).
//!
//! Fetchers on any number of instances share a source's schedule through fetch slots
//! (`source_fetch_slots`, migration 0005): the instance that claims a slot fetches it,
//! under a lease the others take over once it expires.
//!
//! `fetch` and `response` validate what is recorded, `registry` writes it, `log` and
//! `report` read it, `slots` claims, renews and ends slots; the SQL that differs between
//! the backends sits side by side in each, chosen by `Dialect`.

mod fetch;
mod log;
mod metrics;
mod registry;
mod report;
mod response;
mod schedule;
mod slots;

use chrono::{DateTime, Utc};
use kamiyo_db::Database;

use crate::error::StoreError;

pub use fetch::{
    SourceFetch, DEFAULT_SOURCE_FETCH_RETENTION, DEFAULT_SOURCE_HEALTH_WINDOW,
    MAX_FETCH_ERROR_CHARS,
};
pub use metrics::SourceMetrics;
pub use report::SourceReport;
pub use response::{FetchCounts, FetchResponse, Validators, MAX_VALIDATOR_CHARS};
pub use schedule::{SourceSchedule, STALE_AFTER_INTERVALS};
pub use slots::{FetchSlot, SlotClaim, SlotHolder, SlotOutcome, MAX_SLOT_LEASE};

use slots::SlotKey;

/// Sources and their fetches in the database behind a [`Database`].
#[derive(Clone)]
pub struct SourceStore {
    db: Database,
}

impl SourceStore {
    pub fn new(db: Database) -> Self {
        SourceStore { db }
    }

    /// Every source with what it contributed to incidents that occurred within
    /// `since..=until` (the caller's visibility; `None`: unbounded), and its fetch health
    /// over the fetches that finished within the last `window`. Most incidents first.
    pub async fn report(
        &self,
        window: std::time::Duration,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<SourceReport>, StoreError> {
        let start = fetch::window_start(Utc::now(), window);
        self.db
            .read(|pool| async move { report::report(&pool, start, since, until).await })
            .await
    }

    /// Marks a source active or inactive (registering one known only by its claims);
    /// `false` when no source of that name has claims or a registry row.
    pub async fn set_active(&self, source: &str, active: bool) -> Result<bool, StoreError> {
        registry::set_active(self.db.primary(), source, active).await
    }

    /// Records one attempt to collect a source (creating its registry row when it has
    /// none), and deletes its fetches that finished more than `keep` ago (keep at least
    /// the window [`SourceStore::report`] is asked for).
    pub async fn record_fetch(
        &self,
        fetch: &SourceFetch,
        keep: std::time::Duration,
    ) -> Result<(), StoreError> {
        let keep_since = fetch::window_start(Utc::now(), keep);
        registry::record(self.db.primary(), fetch, keep_since).await
    }

    /// The source's `limit` latest recorded fetches, newest first.
    pub async fn last_fetches(
        &self,
        source: &str,
        limit: u32,
    ) -> Result<Vec<SourceFetch>, StoreError> {
        log::last_fetches(self.db.primary(), source, limit).await
    }

    /// What to send with the next conditional request for `source`: the validators of
    /// its latest successful fetch that recorded any. `None` means fetch it in full.
    /// Read from the primary: a replica's lag could hand back validators older than the
    /// last fetch and bring its records again.
    pub async fn last_validators(&self, source: &str) -> Result<Option<Validators>, StoreError> {
        log::last_validators(self.db.primary(), source).await
    }

    /// Claims the slot of `source` starting at `slot_start` (kept to the millisecond)
    /// for `holder` (an instance id) at `now` for `lease` (at most [`MAX_SLOT_LEASE`]):
    /// see [`SlotClaim`]. Exactly one of any number of concurrent claimers gets a slot;
    /// once its lease has expired unfinished, the next claim takes it over. `now` comes
    /// from the caller's clock, never the database's. Creates the source's registry row
    /// when it has none.
    pub async fn claim_slot(
        &self,
        source: &str,
        slot_start: DateTime<Utc>,
        holder: &str,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<SlotClaim, StoreError> {
        let key = SlotKey::new(source, slot_start);
        let lease_until = slots::lease_end(now, lease)?;
        slots::claim(self.db.primary(), &key, holder, now, lease_until).await
    }

    /// Extends `holder`'s lease on the slot to `now + lease` (never shortens it);
    /// `false` when `holder` no longer has it in its attempt (taken over, or finished):
    /// stop fetching.
    pub async fn renew_slot(
        &self,
        source: &str,
        slot_start: DateTime<Utc>,
        holder: &SlotHolder<'_>,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = SlotKey::new(source, slot_start);
        let lease_until = slots::lease_end(now, lease)?;
        slots::renew(self.db.primary(), &key, holder, lease_until).await
    }

    /// Ends `holder`'s slot with `outcome` at `now`; `false` when `holder` no longer has
    /// it in its attempt (another instance, or a later attempt, took it over, and its
    /// outcome is the one that counts).
    pub async fn finish_slot(
        &self,
        source: &str,
        slot_start: DateTime<Utc>,
        holder: &SlotHolder<'_>,
        outcome: SlotOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = SlotKey::new(source, slot_start);
        slots::finish(self.db.primary(), &key, holder, outcome, now).await
    }

    /// The slot of `source` starting at `slot_start`, if claimed.
    pub async fn slot(
        &self,
        source: &str,
        slot_start: DateTime<Utc>,
    ) -> Result<Option<FetchSlot>, StoreError> {
        slots::read(self.db.primary(), &SlotKey::new(source, slot_start)).await
    }

    /// The latest slot of `source` and its state, if any was claimed (for a scheduler
    /// deciding what is due, and for reports).
    pub async fn last_slot(&self, source: &str) -> Result<Option<FetchSlot>, StoreError> {
        slots::last(self.db.primary(), source).await
    }
}
