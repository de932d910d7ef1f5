//! `kamiyo alert audit --since T` (and `GET /api/admin/alerts/audit`): every incident
//! change since T that matches a subscription and has no delivery, and every delivery not
//! finished. On a healthy system the first list is empty (an event is dispatched within
//! the poll interval of being written; younger ones are not counted).
//!
//! A change matches as the dispatcher matched it: the subscription existed when the
//! change was written, asked for its event, its filter passes the incident in the
//! event's body, and its tier could see the incident when it was dispatched. It is judged
//! under the subscriptions as they are now (a filter changed since can show a false
//! miss, which the list names for a person to judge).

use chrono::{DateTime, Utc};
use kamiyo_domain::alert_filter::{AlertFacts, AlertFilter};
use kamiyo_domain::{AttackType, IncidentStatus, TierTable, Usd};
use kamiyo_store::alerts::{EventKind, Unfinished};
use kamiyo_store::{AlertStore, IncidentStore, StoreError};
use serde::Serialize;

/// A change with no delivery where one was due.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Missing {
    pub event_id: i64,
    pub event: EventKind,
    pub exploit_id: i64,
    pub written_at: DateTime<Utc>,
    /// The subscription that should have a delivery; absent while the event is not
    /// dispatched at all.
    pub subscription_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditReport {
    pub since: DateTime<Utc>,
    pub events: usize,
    /// Changes that matched a subscription and have no delivery (or were not dispatched
    /// within the grace): empty on a healthy system.
    pub missing: Vec<Missing>,
    /// Deliveries not finished: waiting for their first attempt or a retry.
    pub unfinished: Vec<Unfinished>,
}

/// Audits the events written since `since`, at `now`; an event younger than `grace` may
/// still be on its way and is not counted as missing. `tiers` is the table the
/// dispatcher applies (`tiers.*`).
pub async fn audit(
    alerts: &AlertStore,
    incidents: &IncidentStore,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: std::time::Duration,
    tiers: &TierTable,
) -> Result<AuditReport, StoreError> {
    let events = alerts.events_since(since).await?;
    let delivered = alerts.delivered_pairs(since).await?;
    let aliases = incidents.alias_table().await?;
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let subscribers: Vec<_> = alerts
        .subscribers()
        .await?
        .into_iter()
        .filter_map(|s| AlertFilter::from_input(&s.filter).ok().map(|f| (s, f)))
        .collect();
    let mut missing = Vec::new();
    for audited in &events {
        let event = &audited.event;
        let (Some(dispatched_at), Some(payload)) = (event.dispatched_at, &audited.payload) else {
            if event.created_at + grace < now {
                missing.push(Missing {
                    event_id: event.id,
                    event: event.kind,
                    exploit_id: event.exploit_id,
                    written_at: event.created_at,
                    subscription_id: None,
                });
            }
            continue;
        };
        let incident = &payload["data"]["incident"];
        let Some(protocol) = incident["protocol"].as_str() else {
            continue;
        };
        let chains: Vec<String> = incident["chains"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let (Some(attack_type), Some(status), Some(occurred_at)) = (
            incident["attack_type"]
                .as_str()
                .and_then(|t| AttackType::parse(t).ok()),
            incident["status"]
                .as_str()
                .and_then(|t| IncidentStatus::parse(t).ok()),
            incident["occurred_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        ) else {
            continue;
        };
        let facts = AlertFacts {
            protocol,
            chains: &chains,
            attack_type,
            status,
            loss_usd: incident["loss_usd"]
                .as_str()
                .and_then(|t| Usd::parse("loss_usd", t).ok()),
            independent_sources: usize::try_from(incident["sources_count"].as_i64().unwrap_or(0))
                .unwrap_or(0),
        };
        for (s, filter) in &subscribers {
            let due = s.created_at <= event.created_at
                && s.events.contains(&event.kind)
                && filter.matches(&facts, &aliases)
                && tiers
                    .of(s.tier)
                    .visible_from(occurred_at, dispatched_at)
                    .is_some();
            if due && !delivered.contains(&(s.subscription_id, event.id)) {
                missing.push(Missing {
                    event_id: event.id,
                    event: event.kind,
                    exploit_id: event.exploit_id,
                    written_at: event.created_at,
                    subscription_id: Some(s.subscription_id),
                });
            }
        }
    }
    Ok(AuditReport {
        since,
        events: events.len(),
        missing,
        unfinished: alerts.unfinished().await?,
    })
}
