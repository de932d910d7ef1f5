//! Deliveries: one per (subscription, event), created by the dispatcher when it matches
//! an event, claimed by workers under a lease, and closed by recording an attempt.
//!
//! Nothing here holds a row lock or a transaction across a network call: a worker claims
//! rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so any number of instances share the
//! work; SQLite's write lock in one process), commits the lease, calls out, then records
//! the attempt in one transaction that checks the lease is still its own.

use chrono::{DateTime, Utc};
use kamiyo_db::Pool;
use kamiyo_domain::alert_filter::AlertFilterInput;
use kamiyo_domain::Tier;
use serde::Serialize;

use super::subscriptions::{read_events, read_filter, secrets_at};
use super::AlertStore;
use crate::error::StoreError;
use crate::incidents::events::EventKind;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql};

/// The PostgreSQL channel a dispatch that created deliveries notifies workers on.
pub const DELIVERIES_CHANNEL: &str = "kamiyo_alert_deliveries";

/// An enabled subscription of an active user, as the dispatcher matches it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscriber {
    pub subscription_id: i64,
    pub user_id: i64,
    pub tier: Tier,
    pub filter: AlertFilterInput,
    pub events: Vec<EventKind>,
    pub created_at: DateTime<Utc>,
}

/// A delivery the dispatcher decided on: to whom, and not before when (the tier's delay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedDelivery {
    pub subscription_id: i64,
    pub not_before: DateTime<Utc>,
}

/// A delivery a worker claimed, with what it needs to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: i64,
    /// The lease, as stored: recording the attempt checks it is still this one.
    pub leased_until: DateTime<Utc>,
    /// Attempts made before this one.
    pub attempts: i32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// `webhook-id`: the same for every attempt of this delivery.
    pub message_id: String,
    pub event_id: i64,
    pub kind: EventKind,
    /// The body every attempt sends.
    pub payload: serde_json::Value,
    pub subscription_id: i64,
    pub channel: String,
    pub target: String,
    /// The secrets that sign it now (the current one first).
    pub secrets: Vec<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptOutcome {
    /// A 2xx: done.
    Delivered,
    /// Failed; tried again at this time.
    Retry(DateTime<Utc>),
    /// Failed, and the retry schedule is spent: the delivery fails.
    GaveUp,
    /// `410 Gone`: the delivery fails and the subscription is disabled.
    Gone,
}

/// One attempt, as the worker recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub attempted_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// The response body, already cut to the stored limit.
    pub response_body: Option<String>,
    pub outcome: AttemptOutcome,
}

/// A delivery as its subscription's owner sees it, with every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub event_id: i64,
    pub event: EventKind,
    pub exploit_id: i64,
    pub message_id: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub log: Vec<Attempt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempted_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

const SUBSCRIBERS: Sql = Sql {
    postgres: "SELECT s.id, s.user_id, u.tier, s.filter::text AS filter, s.events::text AS events, s.created_at \
               FROM alert_subscriptions s JOIN users u ON u.id = s.user_id \
               WHERE s.enabled AND u.is_active ORDER BY s.id",
    sqlite: "SELECT s.id, s.user_id, u.tier, s.filter, s.events, s.created_at \
             FROM alert_subscriptions s JOIN users u ON u.id = s.user_id \
             WHERE s.enabled AND u.is_active ORDER BY s.id",
};

const PENDING_EVENTS: Sql = Sql {
    postgres: "SELECT id, kind, exploit_id, occurred_at, changes::text AS changes, created_at, dispatched_at \
               FROM alert_events WHERE dispatched_at IS NULL ORDER BY id LIMIT $1",
    sqlite: "SELECT id, kind, exploit_id, occurred_at, changes, created_at, dispatched_at \
             FROM alert_events WHERE dispatched_at IS NULL ORDER BY id LIMIT ?1",
};

/// A delivery leased by another worker is due for this one when its lease runs out.
const NEXT_DUE: Sql = Sql {
    postgres: "SELECT min(GREATEST(d.next_attempt_at, coalesce(d.leased_until, d.next_attempt_at))) AS due \
               FROM alert_deliveries d \
               JOIN alert_subscriptions s ON s.id = d.subscription_id AND s.enabled \
               JOIN users u ON u.id = s.user_id AND u.is_active \
               WHERE d.status = 'pending'",
    sqlite: "SELECT min(max(d.next_attempt_at, coalesce(d.leased_until, d.next_attempt_at))) AS due \
             FROM alert_deliveries d \
             JOIN alert_subscriptions s ON s.id = d.subscription_id AND s.enabled \
             JOIN users u ON u.id = s.user_id AND u.is_active \
             WHERE d.status = 'pending'",
};

/// Columns of a claimed delivery, its event and its subscription (`d`, `e`, `s`).
const DUE_COLUMNS: &str = "d.id, d.leased_until, d.attempts, d.first_attempt_at, d.message_id, \
     e.id AS event_id, e.kind, {payload} AS payload, s.id AS subscription_id, s.channel, s.target, \
     s.secret, s.previous_secret, s.previous_secret_expires_at";

fn read_due(row: &dyn DriverRow, now: DateTime<Utc>) -> Result<DueDelivery, StoreError> {
    let f = Fields::of("alert_deliveries", row);
    let payload = f.opt_text("payload")?.ok_or_else(|| {
        StoreError::corrupt(
            "alert_events",
            "payload",
            "a delivered event has no payload",
        )
    })?;
    Ok(DueDelivery {
        id: f.int("id")?,
        leased_until: f.time("leased_until")?,
        attempts: i32::try_from(f.int("attempts")?).unwrap_or(i32::MAX),
        first_attempt_at: f.opt_time("first_attempt_at")?,
        message_id: f.text("message_id")?,
        event_id: f.int("event_id")?,
        kind: f.parse("kind", |text: &str| {
            EventKind::parse(text).ok_or_else(|| format!("{text:?} is not an event kind"))
        })?,
        payload: serde_json::from_str(&payload).map_err(|e| {
            StoreError::corrupt("alert_events", "payload", format!("not JSON: {e}"))
        })?,
        subscription_id: f.int("subscription_id")?,
        channel: f.text("channel")?,
        target: f.text("target")?,
        secrets: secrets_at(
            f.opt_text("secret")?,
            f.opt_text("previous_secret")?,
            f.opt_time("previous_secret_expires_at")?,
            now,
        ),
    })
}

impl AlertStore {
    /// Every enabled subscription of an active user.
    pub async fn subscribers(&self) -> Result<Vec<Subscriber>, StoreError> {
        let pool = self.db().primary();
        let rows = statement::query(pool, SUBSCRIBERS.for_pool(pool), Vec::new(), |row| {
            let f = Fields::of("alert_subscriptions", row);
            let id = f.int("id")?;
            // One row that does not read (written by a newer release, say) must not stop
            // every other subscription's alerts: it is left out, and says why.
            let read = || -> Result<Subscriber, StoreError> {
                Ok(Subscriber {
                    subscription_id: id,
                    user_id: f.int("user_id")?,
                    tier: f.parse("tier", Tier::parse)?,
                    filter: read_filter("alert_subscriptions", &f.text("filter")?)?,
                    events: read_events("alert_subscriptions", &f.text("events")?)?,
                    created_at: f.time("created_at")?,
                })
            };
            Ok(read().map_err(|error| (id, error.to_string())))
        })
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| match row {
                Ok(subscriber) => Some(subscriber),
                Err((id, error)) => {
                    tracing::warn!(subscription = id, %error, "a subscription does not read; it gets no alerts");
                    None
                }
            })
            .collect())
    }

    /// Events no dispatcher has matched yet, oldest first, at most `limit`.
    pub async fn pending_events(&self, limit: i64) -> Result<Vec<super::AlertEvent>, StoreError> {
        let pool = self.db().primary();
        statement::query(
            pool,
            PENDING_EVENTS.for_pool(pool),
            vec![Param::Int(limit)],
            super::outbox::read_event,
        )
        .await
    }

    /// Records that event `event_id` was matched: its `payload` (what every delivery of
    /// it sends) and one delivery per `planned` entry, in one transaction. Only the first
    /// dispatcher to record an event does anything (another one racing it finds it
    /// dispatched); whether this call was that one.
    pub async fn record_dispatch(
        &self,
        event_id: i64,
        payload: &serde_json::Value,
        planned: &[PlannedDelivery],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let payload = payload.to_string();
        match self.db().primary() {
            Pool::Postgres(pool) => {
                let subscriptions: Vec<i64> = planned.iter().map(|p| p.subscription_id).collect();
                let times: Vec<DateTime<Utc>> = planned.iter().map(|p| p.not_before).collect();
                let mut conn = pool.acquire().await?;
                let tx = conn.transaction().await?;
                let won = tx
                    .execute(
                        "UPDATE alert_events SET payload = $2::text::jsonb, dispatched_at = $3 \
                         WHERE id = $1 AND dispatched_at IS NULL",
                        &[&event_id, &payload, &now],
                    )
                    .await?
                    == 1;
                if won && !planned.is_empty() {
                    tx.execute(
                        "INSERT INTO alert_deliveries (subscription_id, event_id, message_id, next_attempt_at) \
                         SELECT s, $1::int8, 'msg_' || $1::int8::text || '_' || s::text, t FROM unnest($2::int8[], $3::timestamptz[]) AS u(s, t) \
                         ON CONFLICT (subscription_id, event_id) DO NOTHING",
                        &[&event_id, &subscriptions, &times],
                    )
                    .await?;
                    tx.execute("SELECT pg_notify($1, '')", &[&DELIVERIES_CHANNEL])
                        .await?;
                }
                tx.commit().await?;
                Ok(won)
            }
            Pool::Sqlite(pool) => {
                let planned = planned.to_vec();
                let conn = pool.acquire().await?;
                Ok(conn
                    .run(move |c| {
                        let tx =
                            c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                        let won = tx.execute(
                            "UPDATE alert_events SET payload = ?2, dispatched_at = ?3 \
                             WHERE id = ?1 AND dispatched_at IS NULL",
                            rusqlite::params![event_id, payload, crate::row::sqlite_time(now)],
                        )? == 1;
                        if won {
                            let mut insert = tx.prepare(
                                "INSERT INTO alert_deliveries (subscription_id, event_id, message_id, next_attempt_at) \
                                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (subscription_id, event_id) DO NOTHING",
                            )?;
                            for p in &planned {
                                insert.execute(rusqlite::params![
                                    p.subscription_id,
                                    event_id,
                                    format!("msg_{event_id}_{}", p.subscription_id),
                                    crate::row::sqlite_time(p.not_before),
                                ])?;
                            }
                        }
                        tx.commit()?;
                        Ok(won)
                    })
                    .await?)
            }
        }
    }

    /// Claims up to `limit` deliveries due at `now` of enabled subscriptions, leasing
    /// them until `now + lease`; another worker takes none of them until the lease runs
    /// out (a worker that dies mid-call leaves the delivery to the next one).
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        match self.db().primary() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "UPDATE alert_deliveries d SET leased_until = $2, updated_at = now() \
                     FROM (SELECT dd.id FROM alert_deliveries dd \
                           JOIN alert_subscriptions ss ON ss.id = dd.subscription_id AND ss.enabled \
                           JOIN users uu ON uu.id = ss.user_id AND uu.is_active \
                           WHERE dd.status = 'pending' AND dd.next_attempt_at <= $1 \
                             AND (dd.leased_until IS NULL OR dd.leased_until <= $1) \
                           ORDER BY dd.next_attempt_at, dd.id LIMIT $3 \
                           FOR UPDATE OF dd SKIP LOCKED) due, alert_events e, alert_subscriptions s \
                     WHERE d.id = due.id AND e.id = d.event_id AND s.id = d.subscription_id \
                     RETURNING {}",
                    DUE_COLUMNS.replace("{payload}", "e.payload::text")
                );
                let conn = pool.acquire().await?;
                let rows = conn.query(&sql, &[&now, &until, &limit]).await?;
                rows.iter().map(|row| read_due(row, now)).collect()
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let select = format!(
                    "SELECT {} FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id \
                     JOIN alert_subscriptions s ON s.id = d.subscription_id WHERE d.id = ?1",
                    DUE_COLUMNS.replace("{payload}", "e.payload")
                );
                let (now_text, until_text) =
                    (crate::row::sqlite_time(now), crate::row::sqlite_time(until));
                let rows = conn
                    .run(move |c| {
                        let tx =
                            c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                        let ids: Vec<i64> = tx
                            .prepare(
                                "UPDATE alert_deliveries SET leased_until = ?2, \
                                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                                 WHERE id IN (SELECT dd.id FROM alert_deliveries dd \
                                   JOIN alert_subscriptions ss ON ss.id = dd.subscription_id AND ss.enabled \
                                   JOIN users uu ON uu.id = ss.user_id AND uu.is_active \
                                   WHERE dd.status = 'pending' AND dd.next_attempt_at <= ?1 \
                                     AND (dd.leased_until IS NULL OR dd.leased_until <= ?1) \
                                   ORDER BY dd.next_attempt_at, dd.id LIMIT ?3) \
                                 RETURNING id",
                            )?
                            .query_map(rusqlite::params![now_text, until_text, limit], |r| {
                                r.get(0)
                            })?
                            .collect::<Result<_, _>>()?;
                        let mut found = Vec::with_capacity(ids.len());
                        {
                            let mut read = tx.prepare(&select)?;
                            for id in ids {
                                let mut rows = read.query([id])?;
                                if let Some(row) = rows.next()? {
                                    found.push(read_due(row, now));
                                }
                            }
                        }
                        tx.commit()?;
                        Ok(found)
                    })
                    .await?;
                let mut due: Vec<DueDelivery> = rows.into_iter().collect::<Result<_, _>>()?;
                due.sort_by_key(|d| d.id);
                Ok(due)
            }
        }
    }

    /// When the earliest pending delivery of an enabled subscription is due (for one
    /// leased by a worker: when its lease runs out).
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let pool = self.db().primary();
        statement::query_one(pool, NEXT_DUE.for_pool(pool), Vec::new(), |row| {
            Fields::of("alert_deliveries", row).opt_time("due")
        })
        .await
    }

    /// Records an attempt at `delivery` and what follows from it, in one transaction:
    /// the attempt's row, the delivery's state (only while the lease is still this
    /// worker's), and its subscription's health: a success ends a failure streak; a
    /// failure starts one (or a new one, more than `streak_gap` after the last failure)
    /// or, once it has lasted `disable_after`, disables the subscription; `410 Gone` disables it at once. Whether the lease was still held.
    pub async fn record_attempt(
        &self,
        delivery: &DueDelivery,
        attempt: &AttemptRecord,
        disable_after: chrono::Duration,
        streak_gap: chrono::Duration,
    ) -> Result<bool, StoreError> {
        const ATTEMPT: Sql = Sql {
            postgres: "INSERT INTO alert_attempts (delivery_id, attempted_at, duration_ms, status_code, error, \
                       response_body, next_attempt_at) VALUES ($1, $2, $3, $4::int8, $5, $6, $7)",
            sqlite: "INSERT INTO alert_attempts (delivery_id, attempted_at, duration_ms, status_code, error, \
                     response_body, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        };
        const DELIVERY: Sql = Sql {
            postgres: "UPDATE alert_deliveries SET attempts = attempts + 1, status = $3, \
                       next_attempt_at = coalesce($4, next_attempt_at), leased_until = NULL, \
                       first_attempt_at = coalesce(first_attempt_at, $5), last_status = $6::int8, last_error = $7, \
                       updated_at = now() WHERE id = $1 AND leased_until = $2",
            sqlite: "UPDATE alert_deliveries SET attempts = attempts + 1, status = ?3, \
                     next_attempt_at = coalesce(?4, next_attempt_at), leased_until = NULL, \
                     first_attempt_at = coalesce(first_attempt_at, ?5), last_status = ?6, last_error = ?7, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1 AND leased_until = ?2",
        };
        const HEALTHY: Sql = Sql {
            postgres:
                "UPDATE alert_subscriptions SET failing_since = NULL, last_failure_at = NULL \
                       WHERE id = $1 AND failing_since IS NOT NULL",
            sqlite: "UPDATE alert_subscriptions SET failing_since = NULL, last_failure_at = NULL \
                     WHERE id = ?1 AND failing_since IS NOT NULL",
        };
        // The streak goes on while failures come within `$5` (the retry window) of each
        // other; a failure after a longer quiet starts a new one.
        const FAILING: Sql = Sql {
            postgres: "UPDATE alert_subscriptions SET \
                       failing_since = CASE WHEN failing_since IS NULL OR last_failure_at IS NULL \
                         OR last_failure_at < $5 THEN $2 ELSE failing_since END, \
                       last_failure_at = $2, \
                       enabled = CASE WHEN failing_since IS NOT NULL AND last_failure_at >= $5 \
                         AND failing_since <= $3 THEN false ELSE enabled END, \
                       disabled_reason = CASE WHEN failing_since IS NOT NULL AND last_failure_at >= $5 \
                         AND failing_since <= $3 THEN $4 ELSE disabled_reason END \
                       WHERE id = $1",
            sqlite: "UPDATE alert_subscriptions SET \
                     failing_since = CASE WHEN failing_since IS NULL OR last_failure_at IS NULL \
                       OR last_failure_at < ?5 THEN ?2 ELSE failing_since END, \
                     last_failure_at = ?2, \
                     enabled = CASE WHEN failing_since IS NOT NULL AND last_failure_at >= ?5 \
                       AND failing_since <= ?3 THEN 0 ELSE enabled END, \
                     disabled_reason = CASE WHEN failing_since IS NOT NULL AND last_failure_at >= ?5 \
                       AND failing_since <= ?3 THEN ?4 ELSE disabled_reason END \
                     WHERE id = ?1",
        };
        const GONE: Sql = Sql {
            postgres: "UPDATE alert_subscriptions SET enabled = false, disabled_reason = $2, \
                       failing_since = coalesce(failing_since, $3), last_failure_at = $3 WHERE id = $1",
            sqlite: "UPDATE alert_subscriptions SET enabled = 0, disabled_reason = ?2, \
                     failing_since = coalesce(failing_since, ?3), last_failure_at = ?3 WHERE id = ?1",
        };
        let pool = self.db().primary();
        let (status, next) = match attempt.outcome {
            AttemptOutcome::Delivered => ("succeeded", None),
            AttemptOutcome::Retry(at) => ("pending", Some(at)),
            AttemptOutcome::GaveUp | AttemptOutcome::Gone => ("failed", None),
        };
        let at = attempt.attempted_at;
        let mut statements = vec![(
            ATTEMPT.for_pool(pool),
            vec![
                Param::Int(delivery.id),
                Param::Time(at),
                Param::Int(attempt.duration_ms),
                Param::OptInt(attempt.status_code.map(i64::from)),
                Param::OptText(attempt.error.clone()),
                Param::OptText(attempt.response_body.clone()),
                Param::OptTime(next),
            ],
        )];
        let health = match attempt.outcome {
            AttemptOutcome::Delivered => (
                HEALTHY.for_pool(pool),
                vec![Param::Int(delivery.subscription_id)],
            ),
            AttemptOutcome::Gone => (
                GONE.for_pool(pool),
                vec![
                    Param::Int(delivery.subscription_id),
                    Param::Text("the endpoint answered 410 Gone".into()),
                    Param::Time(at),
                ],
            ),
            AttemptOutcome::Retry(_) | AttemptOutcome::GaveUp => (
                FAILING.for_pool(pool),
                vec![
                    Param::Int(delivery.subscription_id),
                    Param::Time(at),
                    Param::Time(at - disable_after),
                    Param::Text(format!(
                        "every delivery failed for {} days",
                        disable_after.num_days()
                    )),
                    Param::Time(at - streak_gap),
                ],
            ),
        };
        statements.push(health);
        // The delivery's row last: its row count says whether the lease was still held,
        // and a lost lease must not undo the attempt the receiver saw.
        let held = statement::execute_all_counted(
            pool,
            statements,
            (
                DELIVERY.for_pool(pool),
                vec![
                    Param::Int(delivery.id),
                    Param::Time(delivery.leased_until),
                    Param::Text(status.into()),
                    Param::OptTime(next),
                    Param::Time(at),
                    Param::OptInt(attempt.status_code.map(i64::from)),
                    Param::OptText(attempt.error.clone()),
                ],
            ),
        )
        .await?;
        Ok(held == 1)
    }

    /// A subscription's deliveries, newest first, at most `limit`, with their attempts.
    pub async fn deliveries(
        &self,
        subscription_id: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        const DELIVERIES: Sql = Sql {
            postgres: "SELECT d.id, d.event_id, e.kind, e.exploit_id, d.message_id, d.status, d.attempts, \
                       d.next_attempt_at, d.created_at FROM alert_deliveries d \
                       JOIN alert_events e ON e.id = d.event_id \
                       WHERE d.subscription_id = $1 ORDER BY d.id DESC LIMIT $2",
            sqlite: "SELECT d.id, d.event_id, e.kind, e.exploit_id, d.message_id, d.status, d.attempts, \
                     d.next_attempt_at, d.created_at FROM alert_deliveries d \
                     JOIN alert_events e ON e.id = d.event_id \
                     WHERE d.subscription_id = ?1 ORDER BY d.id DESC LIMIT ?2",
        };
        const ATTEMPTS: Sql = Sql {
            postgres:
                "SELECT a.delivery_id, a.attempted_at, a.duration_ms, a.status_code, a.error, \
                       a.response_body, a.next_attempt_at FROM alert_attempts a \
                       JOIN alert_deliveries d ON d.id = a.delivery_id \
                       WHERE d.subscription_id = $1 AND a.delivery_id >= $2 ORDER BY a.id",
            sqlite: "SELECT a.delivery_id, a.attempted_at, a.duration_ms, a.status_code, a.error, \
                     a.response_body, a.next_attempt_at FROM alert_attempts a \
                     JOIN alert_deliveries d ON d.id = a.delivery_id \
                     WHERE d.subscription_id = ?1 AND a.delivery_id >= ?2 ORDER BY a.id",
        };
        let pool = self.db().primary();
        let mut deliveries = statement::query(
            pool,
            DELIVERIES.for_pool(pool),
            vec![Param::Int(subscription_id), Param::Int(limit)],
            |row| {
                let f = Fields::of("alert_deliveries", row);
                let status = f.text("status")?;
                Ok(Delivery {
                    id: f.int("id")?,
                    event_id: f.int("event_id")?,
                    event: f.parse("kind", |text: &str| {
                        EventKind::parse(text).ok_or_else(|| format!("{text:?} is not an event"))
                    })?,
                    exploit_id: f.int("exploit_id")?,
                    message_id: f.text("message_id")?,
                    attempts: i32::try_from(f.int("attempts")?).unwrap_or(i32::MAX),
                    next_attempt_at: if status == "pending" {
                        Some(f.time("next_attempt_at")?)
                    } else {
                        None
                    },
                    status,
                    created_at: f.time("created_at")?,
                    log: Vec::new(),
                })
            },
        )
        .await?;
        let Some(oldest) = deliveries.last().map(|d| d.id) else {
            return Ok(deliveries);
        };
        let attempts = statement::query(
            pool,
            ATTEMPTS.for_pool(pool),
            vec![Param::Int(subscription_id), Param::Int(oldest)],
            |row| {
                let f = Fields::of("alert_attempts", row);
                Ok((
                    f.int("delivery_id")?,
                    Attempt {
                        attempted_at: f.time("attempted_at")?,
                        duration_ms: f.int("duration_ms")?,
                        status_code: f
                            .opt_int("status_code")?
                            .and_then(|c| i32::try_from(c).ok()),
                        error: f.opt_text("error")?,
                        response_body: f.opt_text("response_body")?,
                        next_attempt_at: f.opt_time("next_attempt_at")?,
                    },
                ))
            },
        )
        .await?;
        for (delivery_id, attempt) in attempts {
            if let Some(d) = deliveries.iter_mut().find(|d| d.id == delivery_id) {
                d.log.push(attempt);
            }
        }
        Ok(deliveries)
    }

    /// Sends a subscription's deliveries of events written since `since` again, now (the
    /// same `webhook-id`: a receiver that already has one can tell); how many.
    pub async fn replay(
        &self,
        subscription_id: i64,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        const REPLAY: Sql = Sql {
            // Never earlier than it was due (a tier's delay), never one in flight, and
            // with a whole retry window again.
            postgres: "UPDATE alert_deliveries SET status = 'pending', \
                       next_attempt_at = GREATEST(next_attempt_at, $3), attempts = 0, first_attempt_at = NULL, \
                       updated_at = now() WHERE subscription_id = $1 \
                       AND (leased_until IS NULL OR leased_until <= $3) \
                       AND (status <> 'pending' OR attempts > 0) \
                       AND event_id IN (SELECT id FROM alert_events WHERE created_at >= $2)",
            sqlite: "UPDATE alert_deliveries SET status = 'pending', \
                     next_attempt_at = max(next_attempt_at, ?3), attempts = 0, first_attempt_at = NULL, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE subscription_id = ?1 \
                     AND (leased_until IS NULL OR leased_until <= ?3) \
                     AND (status <> 'pending' OR attempts > 0) \
                     AND event_id IN (SELECT id FROM alert_events WHERE created_at >= ?2)",
        };
        let pool = self.db().primary();
        statement::execute(
            pool,
            REPLAY.for_pool(pool),
            vec![
                Param::Int(subscription_id),
                Param::Time(since),
                Param::Time(now),
            ],
        )
        .await
    }
}
