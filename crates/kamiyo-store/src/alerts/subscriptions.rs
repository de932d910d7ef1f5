//! Alert subscriptions: who wants what, delivered where. The channel's target and secret
//! are validated above (`kamiyo-alerts`); here they are stored. A secret (a webhook's
//! signing secret, a Telegram bot token) is never part of [`Subscription`]: only the
//! sender reads it, with the delivery it signs.

use chrono::{DateTime, Utc};
use kamiyo_domain::alert_filter::AlertFilterInput;
use serde::Serialize;

use super::AlertStore;
use crate::error::StoreError;
use crate::incidents::events::EventKind;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, Param, Sql};

/// How long a rotated-out secret still signs beside the new one.
pub const SECRET_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// A subscription as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// `webhook`, `slack`, `discord`, `telegram` or `email`.
    pub channel: String,
    /// The URL, chat id or address delivered to.
    pub target: String,
    pub filter: AlertFilterInput,
    pub events: Vec<EventKind>,
    pub enabled: bool,
    /// Why it was disabled by the service (`410 Gone`, failing for days), when it was.
    pub disabled_reason: Option<String>,
    /// Since when every delivery failed, while they do.
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A subscription to store.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub user_id: i64,
    pub name: String,
    pub channel: String,
    pub target: String,
    pub secret: Option<String>,
    pub filter: AlertFilterInput,
    pub events: Vec<EventKind>,
}

/// Changes to a subscription; `None` keeps the stored value. Enabling one clears why it
/// was disabled and its failure streak.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionPatch {
    pub name: Option<String>,
    pub target: Option<String>,
    pub filter: Option<AlertFilterInput>,
    pub events: Option<Vec<EventKind>>,
    pub enabled: Option<bool>,
}

const COLUMNS: &str =
    "id, user_id, name, channel, target, filter, events, enabled, disabled_reason, \
                       failing_since, created_at, updated_at";
const PG_COLUMNS: &str = "id, user_id, name, channel, target, filter::text AS filter, \
                          events::text AS events, enabled, disabled_reason, failing_since, created_at, \
                          updated_at";

pub(super) fn events_json(events: &[EventKind]) -> String {
    serde_json::Value::from(
        events
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
    .to_string()
}

pub(super) fn read_events(table: &'static str, text: &str) -> Result<Vec<EventKind>, StoreError> {
    let names: Vec<String> = serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt(table, "events", format!("not a JSON list: {e}")))?;
    names
        .iter()
        .map(|name| {
            EventKind::parse(name).ok_or_else(|| {
                StoreError::corrupt(table, "events", format!("{name:?} is not an event"))
            })
        })
        .collect()
}

pub(super) fn read_filter(table: &'static str, text: &str) -> Result<AlertFilterInput, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt(table, "filter", format!("not a filter: {e}")))
}

fn read_subscription(row: &dyn DriverRow) -> Result<Subscription, StoreError> {
    let f = Fields::of("alert_subscriptions", row);
    Ok(Subscription {
        id: f.int("id")?,
        user_id: f.int("user_id")?,
        name: f.text("name")?,
        channel: f.text("channel")?,
        target: f.text("target")?,
        filter: read_filter("alert_subscriptions", &f.text("filter")?)?,
        events: read_events("alert_subscriptions", &f.text("events")?)?,
        enabled: f.flag("enabled")?,
        disabled_reason: f.opt_text("disabled_reason")?,
        failing_since: f.opt_time("failing_since")?,
        created_at: f.time("created_at")?,
        updated_at: f.time("updated_at")?,
    })
}

fn filter_json(filter: &AlertFilterInput) -> Result<String, StoreError> {
    serde_json::to_string(filter).map_err(|e| StoreError::Invariant(format!("filter: {e}")))
}

impl AlertStore {
    pub async fn create_subscription(
        &self,
        new: &NewSubscription,
    ) -> Result<Subscription, StoreError> {
        const INSERT: Sql = Sql {
            postgres: "INSERT INTO alert_subscriptions (user_id, name, channel, target, secret, filter, events) \
                       VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb) RETURNING id",
            sqlite: "INSERT INTO alert_subscriptions (user_id, name, channel, target, secret, filter, events) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        };
        let pool = self.db().primary();
        let id = statement::query_one(
            pool,
            INSERT.for_pool(pool),
            vec![
                Param::Int(new.user_id),
                Param::Text(new.name.clone()),
                Param::Text(new.channel.clone()),
                Param::Text(new.target.clone()),
                Param::OptText(new.secret.clone()),
                Param::Text(filter_json(&new.filter)?),
                Param::Text(events_json(&new.events)),
            ],
            |row| Fields::of("alert_subscriptions", row).int("id"),
        )
        .await?;
        self.subscription(id)
            .await?
            .ok_or_else(|| StoreError::Invariant("a subscription just stored is gone".into()))
    }

    pub async fn subscription(&self, id: i64) -> Result<Option<Subscription>, StoreError> {
        let pool = self.db().primary();
        let sql = match statement::dialect(pool) {
            crate::dialect::Dialect::Postgres => {
                format!("SELECT {PG_COLUMNS} FROM alert_subscriptions WHERE id = $1")
            }
            crate::dialect::Dialect::Sqlite => {
                format!("SELECT {COLUMNS} FROM alert_subscriptions WHERE id = ?1")
            }
        };
        statement::query_opt(pool, &sql, vec![Param::Int(id)], read_subscription).await
    }

    /// A user's subscriptions (every user's when `user` is `None`), oldest first.
    pub async fn subscriptions(&self, user: Option<i64>) -> Result<Vec<Subscription>, StoreError> {
        let pool = self.db().primary();
        let sql = match statement::dialect(pool) {
            crate::dialect::Dialect::Postgres => format!(
                "SELECT {PG_COLUMNS} FROM alert_subscriptions WHERE ($1::int8 IS NULL OR user_id = $1) ORDER BY id"
            ),
            crate::dialect::Dialect::Sqlite => format!(
                "SELECT {COLUMNS} FROM alert_subscriptions WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id"
            ),
        };
        statement::query(pool, &sql, vec![Param::OptInt(user)], read_subscription).await
    }

    /// How many subscriptions a user has (the tiers cap it).
    pub async fn count_subscriptions(&self, user: i64) -> Result<i64, StoreError> {
        const COUNT: Sql = Sql {
            postgres: "SELECT count(*) AS n FROM alert_subscriptions WHERE user_id = $1",
            sqlite: "SELECT count(*) AS n FROM alert_subscriptions WHERE user_id = ?1",
        };
        let pool = self.db().primary();
        statement::query_one(pool, COUNT.for_pool(pool), vec![Param::Int(user)], |row| {
            Fields::of("alert_subscriptions", row).int("n")
        })
        .await
    }

    /// Applies `patch`; the subscription as it is now, `None` when there is none.
    pub async fn update_subscription(
        &self,
        id: i64,
        patch: &SubscriptionPatch,
    ) -> Result<Option<Subscription>, StoreError> {
        const UPDATE: Sql = Sql {
            postgres: "UPDATE alert_subscriptions SET name = coalesce($2, name), \
                       target = coalesce($3, target), filter = coalesce($4::text::jsonb, filter), \
                       events = coalesce($5::text::jsonb, events), enabled = coalesce($6, enabled), \
                       disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END, \
                       failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END, \
                       updated_at = now() WHERE id = $1",
            sqlite: "UPDATE alert_subscriptions SET name = coalesce(?2, name), \
                     target = coalesce(?3, target), filter = coalesce(?4, filter), \
                     events = coalesce(?5, events), enabled = coalesce(?6, enabled), \
                     disabled_reason = CASE WHEN ?6 THEN NULL ELSE disabled_reason END, \
                     failing_since = CASE WHEN ?6 THEN NULL ELSE failing_since END, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
        };
        let pool = self.db().primary();
        let changed = statement::execute(
            pool,
            UPDATE.for_pool(pool),
            vec![
                Param::Int(id),
                Param::OptText(patch.name.clone()),
                Param::OptText(patch.target.clone()),
                Param::OptText(patch.filter.as_ref().map(filter_json).transpose()?),
                Param::OptText(patch.events.as_deref().map(events_json)),
                Param::OptBool(patch.enabled),
            ],
        )
        .await?;
        if changed == 0 {
            return Ok(None);
        }
        self.subscription(id).await
    }

    /// Deletes a subscription with its deliveries and their attempts; whether it existed.
    pub async fn delete_subscription(&self, id: i64) -> Result<bool, StoreError> {
        const DELETE: Sql = Sql {
            postgres: "DELETE FROM alert_subscriptions WHERE id = $1",
            sqlite: "DELETE FROM alert_subscriptions WHERE id = ?1",
        };
        let pool = self.db().primary();
        Ok(statement::execute(pool, DELETE.for_pool(pool), vec![Param::Int(id)]).await? > 0)
    }

    /// Makes `secret` the one that signs; the one it replaces still signs beside it until
    /// `now + SECRET_OVERLAP`. Whether the subscription exists.
    pub async fn rotate_secret(
        &self,
        id: i64,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const ROTATE: Sql = Sql {
            postgres: "UPDATE alert_subscriptions SET previous_secret = secret, \
                       previous_secret_expires_at = $3, secret = $2, updated_at = now() WHERE id = $1",
            sqlite: "UPDATE alert_subscriptions SET previous_secret = secret, \
                     previous_secret_expires_at = ?3, secret = ?2, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
        };
        let pool = self.db().primary();
        let changed = statement::execute(
            pool,
            ROTATE.for_pool(pool),
            vec![
                Param::Int(id),
                Param::Text(secret.to_owned()),
                Param::Time(now + SECRET_OVERLAP),
            ],
        )
        .await?;
        Ok(changed > 0)
    }

    /// The secrets that sign a subscription's deliveries at `now`: the current one, then
    /// the previous one while it still overlaps.
    pub async fn signing_secrets(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        const SECRETS: Sql = Sql {
            postgres: "SELECT secret, previous_secret, previous_secret_expires_at \
                       FROM alert_subscriptions WHERE id = $1",
            sqlite: "SELECT secret, previous_secret, previous_secret_expires_at \
                     FROM alert_subscriptions WHERE id = ?1",
        };
        let pool = self.db().primary();
        let found =
            statement::query_opt(pool, SECRETS.for_pool(pool), vec![Param::Int(id)], |row| {
                let f = Fields::of("alert_subscriptions", row);
                Ok((
                    f.opt_text("secret")?,
                    f.opt_text("previous_secret")?,
                    f.opt_time("previous_secret_expires_at")?,
                ))
            })
            .await?;
        Ok(found
            .map(|(current, previous, until)| secrets_at(current, previous, until, now))
            .unwrap_or_default())
    }
}

pub(super) fn secrets_at(
    current: Option<String>,
    previous: Option<String>,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    current
        .into_iter()
        .chain(previous.filter(|_| until.is_some_and(|u| now < u)))
        .collect()
}
