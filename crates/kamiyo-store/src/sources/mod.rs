//! Source health: the source registry (`sources`), the fetch log (`source_fetches`, one
//! row per attempt to collect a source: a fetcher's run, or an import of a file of the
//! source's records) and the report `GET /api/sources` and `kamiyo source list` show,
//! with each source's success rate over a rolling window (migration 0004,
//! docs/SCHEMA.md).
//!
//! `fetch` validates what is recorded, `registry` writes, `report` reads; the SQL that
//! differs between the backends sits side by side in the last two, chosen by `Dialect`.

mod fetch;
mod registry;
mod report;

use chrono::{DateTime, Utc};
use kamiyo_db::Database;

use crate::error::StoreError;

pub use fetch::{
    SourceFetch, DEFAULT_SOURCE_FETCH_RETENTION, DEFAULT_SOURCE_HEALTH_WINDOW,
    MAX_FETCH_ERROR_CHARS,
};
pub use report::SourceReport;

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
}
