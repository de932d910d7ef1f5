//! What an audit of the alerts reads (`kamiyo alert audit`): the events since a time with
//! the body they were dispatched with, which (subscription, event) pairs have a delivery,
//! and the deliveries not finished yet. The judging is in `kamiyo-alerts` (it needs the
//! filters' matching).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AlertStore;
use crate::error::StoreError;
use crate::row::Fields;
use crate::statement::{self, Param, Sql};

/// An event and the body it was dispatched with (none while undispatched).
#[derive(Debug, Clone)]
pub struct AuditedEvent {
    pub event: super::AlertEvent,
    pub payload: Option<serde_json::Value>,
}

/// A delivery not finished: waiting for its first attempt or for a retry.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Unfinished {
    pub delivery_id: i64,
    pub subscription_id: i64,
    pub event_id: i64,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

impl AlertStore {
    /// Events written since `since`, oldest first, with their bodies.
    pub async fn events_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<AuditedEvent>, StoreError> {
        const EVENTS: Sql = Sql {
            postgres: "SELECT id, kind, exploit_id, occurred_at, changes::text AS changes, created_at, \
                       dispatched_at, payload::text AS payload FROM alert_events WHERE created_at >= $1 ORDER BY id",
            sqlite: "SELECT id, kind, exploit_id, occurred_at, changes, created_at, dispatched_at, payload \
                     FROM alert_events WHERE created_at >= ?1 ORDER BY id",
        };
        let pool = self.db().primary();
        statement::query(
            pool,
            EVENTS.for_pool(pool),
            vec![Param::Time(since)],
            |row| {
                let payload = Fields::of("alert_events", row)
                    .opt_text("payload")?
                    .map(|text| {
                        serde_json::from_str(&text).map_err(|e| {
                            StoreError::corrupt("alert_events", "payload", format!("not JSON: {e}"))
                        })
                    })
                    .transpose()?;
                Ok(AuditedEvent {
                    event: super::outbox::read_event(row)?,
                    payload,
                })
            },
        )
        .await
    }

    /// `(subscription, event)` of every delivery of an event written since `since`.
    pub async fn delivered_pairs(
        &self,
        since: DateTime<Utc>,
    ) -> Result<HashSet<(i64, i64)>, StoreError> {
        const PAIRS: Sql = Sql {
            postgres: "SELECT d.subscription_id, d.event_id FROM alert_deliveries d \
                       JOIN alert_events e ON e.id = d.event_id WHERE e.created_at >= $1",
            sqlite: "SELECT d.subscription_id, d.event_id FROM alert_deliveries d \
                     JOIN alert_events e ON e.id = d.event_id WHERE e.created_at >= ?1",
        };
        let pool = self.db().primary();
        Ok(statement::query(
            pool,
            PAIRS.for_pool(pool),
            vec![Param::Time(since)],
            |row| {
                let f = Fields::of("alert_deliveries", row);
                Ok((f.int("subscription_id")?, f.int("event_id")?))
            },
        )
        .await?
        .into_iter()
        .collect())
    }

    /// Every delivery still pending, the earliest due first.
    pub async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        const UNFINISHED: Sql = Sql {
            postgres:
                "SELECT id, subscription_id, event_id, attempts, next_attempt_at, last_error \
                       FROM alert_deliveries WHERE status = 'pending' ORDER BY next_attempt_at, id",
            sqlite: "SELECT id, subscription_id, event_id, attempts, next_attempt_at, last_error \
                     FROM alert_deliveries WHERE status = 'pending' ORDER BY next_attempt_at, id",
        };
        let pool = self.db().primary();
        statement::query(pool, UNFINISHED.for_pool(pool), Vec::new(), |row| {
            let f = Fields::of("alert_deliveries", row);
            Ok(Unfinished {
                delivery_id: f.int("id")?,
                subscription_id: f.int("subscription_id")?,
                event_id: f.int("event_id")?,
                attempts: i32::try_from(f.int("attempts")?).unwrap_or(i32::MAX),
                next_attempt_at: f.time("next_attempt_at")?,
                last_error: f.opt_text("last_error")?,
            })
        })
        .await
    }

    /// Events no dispatcher has matched yet (the outbox's backlog).
    pub async fn outbox_pending(&self) -> Result<i64, StoreError> {
        let pool = self.db().primary();
        statement::query_one(
            pool,
            "SELECT count(*) AS n FROM alert_events WHERE dispatched_at IS NULL",
            Vec::new(),
            |row| Fields::of("alert_events", row).int("n"),
        )
        .await
    }
}
