//! The alert outbox's events (`alert_events`, migration 0012): what changed about an
//! incident, written by the transaction that changed it (an ingest batch, a remerge, a
//! curator's decision), so that a crash can neither lose an alert nor invent one.
//!
//! An update is an event only when something a subscriber reads changed: the amount, the
//! amount recovered, the chains, the status, the name, the attack, or a new source. A
//! claim seen again unchanged, or a value a claim confirms, is not news.

use chrono::{DateTime, Utc};
use kamiyo_domain::canonical::Canonical;
use serde::Serialize;

/// The PostgreSQL notification channel a committed event wakes dispatchers on.
pub const CHANNEL: &str = "kamiyo_alert_events";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum EventKind {
    #[serde(rename = "incident.created")]
    Created,
    #[serde(rename = "incident.updated")]
    Updated,
    #[serde(rename = "incident.merged")]
    Merged,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [EventKind::Created, EventKind::Updated, EventKind::Merged];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "incident.created",
            EventKind::Updated => "incident.updated",
            EventKind::Merged => "incident.merged",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One value that changed, with what it was and what it is (JSON: a string, a list of
/// strings, or null for unknown).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    #[schema(value_type = Object)]
    pub old: serde_json::Value,
    #[schema(value_type = Object)]
    pub new: serde_json::Value,
}

/// An event as a write transaction inserts it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewEvent {
    pub kind: EventKind,
    pub exploit_id: i64,
    pub occurred_at: DateTime<Utc>,
    /// `incident.updated`: the values that changed; `incident.merged`: the ids merged in.
    pub changes: Option<serde_json::Value>,
}

impl NewEvent {
    pub fn changes_text(&self) -> Option<String> {
        self.changes.as_ref().map(serde_json::Value::to_string)
    }
}

/// What a subscriber reads of an incident, to tell whether it changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    protocol: String,
    loss_usd: Option<String>,
    recovered_usd: Option<String>,
    chains: Vec<String>,
    status: String,
    attack: String,
    sources: Vec<String>,
}

impl Seen {
    /// `sources`: the names of the sources with a claim on it.
    pub fn of<'a>(canonical: &Canonical, sources: impl Iterator<Item = &'a str>) -> Seen {
        let mut sources: Vec<String> = sources.map(str::to_owned).collect();
        sources.sort_unstable();
        sources.dedup();
        Seen {
            protocol: canonical.protocol.clone(),
            loss_usd: canonical.loss_usd.map(|u| u.to_string()),
            recovered_usd: canonical.recovered_usd.map(|u| u.to_string()),
            chains: canonical
                .chains
                .iter()
                .map(|c| c.slug().to_owned())
                .collect(),
            status: canonical.status.as_str().to_owned(),
            attack: canonical.attack_type.as_str().to_owned(),
            sources,
        }
    }

    /// What a subscriber reads of an incident as stored (`chains` in any order).
    pub fn of_row<'a>(
        row: &super::replay::IncidentRow,
        chains: &[String],
        sources: impl Iterator<Item = &'a str>,
    ) -> Seen {
        let mut sources: Vec<String> = sources.map(str::to_owned).collect();
        sources.sort_unstable();
        sources.dedup();
        let mut chains = chains.to_vec();
        chains.sort_unstable();
        Seen {
            protocol: row.protocol.clone(),
            loss_usd: row.amount_usd.clone(),
            recovered_usd: row.recovered_usd.clone(),
            chains,
            status: row.status.clone(),
            attack: row.attack_type.clone(),
            sources,
        }
    }

    /// What changed from `self` to `now`, in a fixed field order.
    pub fn changes_to(&self, now: &Seen) -> Vec<FieldChange> {
        let mut changes = Vec::new();
        let mut push = |field: &str, old: serde_json::Value, new: serde_json::Value| {
            if old != new {
                changes.push(FieldChange {
                    field: field.to_owned(),
                    old,
                    new,
                });
            }
        };
        push(
            "loss_usd",
            self.loss_usd.clone().into(),
            now.loss_usd.clone().into(),
        );
        push(
            "recovered_usd",
            self.recovered_usd.clone().into(),
            now.recovered_usd.clone().into(),
        );
        push(
            "chains",
            self.chains.clone().into(),
            now.chains.clone().into(),
        );
        push(
            "status",
            self.status.clone().into(),
            now.status.clone().into(),
        );
        push(
            "protocol",
            self.protocol.clone().into(),
            now.protocol.clone().into(),
        );
        push(
            "attack_type",
            self.attack.clone().into(),
            now.attack.clone().into(),
        );
        push(
            "sources",
            self.sources.clone().into(),
            now.sources.clone().into(),
        );
        changes
    }
}

/// The `incident.updated` event of incident `exploit_id` going from `before` to `now`,
/// when anything a subscriber reads changed.
pub(crate) fn updated(
    exploit_id: i64,
    occurred_at: DateTime<Utc>,
    before: &Seen,
    now: &Seen,
) -> Option<NewEvent> {
    let changes = before.changes_to(now);
    (!changes.is_empty()).then(|| NewEvent {
        kind: EventKind::Updated,
        exploit_id,
        occurred_at,
        changes: serde_json::to_value(changes).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_testkit::claim;

    fn canonical(loss: &str, chain: &str) -> Canonical {
        let draft = claim("Euler").chain(chain).loss_usd(loss).build();
        kamiyo_domain::canonical::derive(&[draft]).unwrap()
    }

    #[test]
    fn an_amount_and_a_new_source_are_changes_with_old_and_new_values() {
        let before = Seen::of(&canonical("195000000", "ethereum"), ["rekt"].into_iter());
        let now = Seen::of(
            &canonical("197000000", "ethereum"),
            ["rekt", "defillama"].into_iter(),
        );
        let changes = before.changes_to(&now);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["loss_usd", "sources"]);
        assert_eq!(changes[0].old, "195000000.00");
        assert_eq!(changes[0].new, "197000000.00");
        assert_eq!(changes[1].new, serde_json::json!(["defillama", "rekt"]));
    }

    #[test]
    fn nothing_changed_is_no_event() {
        let seen = Seen::of(&canonical("1000", "bsc"), ["rekt", "rekt"].into_iter());
        assert_eq!(updated(1, Utc::now(), &seen, &seen.clone()), None);
        let other_chain = Seen::of(&canonical("1000", "ethereum"), ["rekt"].into_iter());
        let event = updated(1, Utc::now(), &seen, &other_chain).unwrap();
        assert_eq!(event.kind, EventKind::Updated);
        assert_eq!(
            event.changes.unwrap()[0]["field"],
            serde_json::json!("chains")
        );
    }
}
