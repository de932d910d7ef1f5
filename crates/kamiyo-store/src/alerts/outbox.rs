//! Reading the outbox: the events incident changes wrote, in the order they were written.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AlertStore;
use crate::error::StoreError;
use crate::incidents::events::EventKind;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql};

/// One change that can trigger alerts, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub id: i64,
    pub kind: EventKind,
    pub exploit_id: i64,
    /// The incident's, when the event was written.
    pub occurred_at: DateTime<Utc>,
    /// `incident.updated`: the values that changed; `incident.merged`: `merged_ids`.
    pub changes: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// When a dispatcher matched it against the subscriptions.
    pub dispatched_at: Option<DateTime<Utc>>,
}

const EVENTS_AFTER: Sql = Sql {
    postgres: "SELECT id, kind, exploit_id, occurred_at, changes::text AS changes, created_at, \
               dispatched_at FROM alert_events WHERE id > $1 ORDER BY id LIMIT $2",
    sqlite: "SELECT id, kind, exploit_id, occurred_at, changes, created_at, dispatched_at \
             FROM alert_events WHERE id > ?1 ORDER BY id LIMIT ?2",
};

pub(super) fn read_event(row: &dyn DriverRow) -> Result<AlertEvent, StoreError> {
    let f = Fields::of("alert_events", row);
    Ok(AlertEvent {
        id: f.int("id")?,
        kind: f.parse("kind", |text: &str| {
            EventKind::parse(text).ok_or_else(|| format!("{text:?} is not an event kind"))
        })?,
        exploit_id: f.int("exploit_id")?,
        occurred_at: f.time("occurred_at")?,
        changes: f
            .opt_text("changes")?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    StoreError::corrupt("alert_events", "changes", format!("not JSON: {e}"))
                })
            })
            .transpose()?,
        created_at: f.time("created_at")?,
        dispatched_at: f.opt_time("dispatched_at")?,
    })
}

impl AlertStore {
    /// Events with an id above `after`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AlertEvent>, StoreError> {
        let pool = self.db().primary();
        statement::query(
            pool,
            EVENTS_AFTER.for_pool(pool),
            vec![Param::Int(after), Param::Int(limit)],
            read_event,
        )
        .await
    }
}
