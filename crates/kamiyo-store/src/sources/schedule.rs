//! When a source is stale: what the scheduler promises (a fetch per interval) against
//! what the fetch log says (the last success). Shared by the API's health and the
//! command line.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Intervals without a successful fetch after which a source is stale.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// A configured source as its health sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSchedule {
    pub name: String,
    pub interval: Duration,
    pub enabled: bool,
}

impl SourceSchedule {
    /// Whether no fetch succeeded within [`STALE_AFTER_INTERVALS`] intervals before
    /// `now`. `watching_since` is when this process started to fetch: a source it never
    /// fetched successfully is stale only once it has had that long. A disabled source
    /// is never stale.
    pub fn is_stale(
        &self,
        last_success: Option<DateTime<Utc>>,
        watching_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let Ok(window) = chrono::Duration::from_std(self.interval * STALE_AFTER_INTERVALS) else {
            return false;
        };
        let reference = last_success.map_or(watching_since, |at| at.max(watching_since));
        self.enabled && now - reference > window
    }
}
