//! What an alert says: the webhook body (the merged incident with every source's claim,
//! and what changed), and the summary chat and email messages are written from.

use std::str::FromStr;

use kamiyo_store::alerts::{AlertEvent, EventKind};
use kamiyo_store::Incident;
use serde_json::{json, Value};

use crate::message::{AlertSummary, Change};

/// The body of every delivery of `event`: Standard Webhooks' `type`, `timestamp` and
/// `data`, with the incident as `GET /api/exploits/{id}` shows it (absent when it was
/// deleted before the event was dispatched).
pub fn body(event: &AlertEvent, incident: Option<&Incident>) -> Value {
    let mut data = json!({ "incident": incident });
    if let Some(changes) = &event.changes {
        match event.kind {
            EventKind::Merged => {
                data["merged_ids"] = changes["merged_ids"].clone();
            }
            EventKind::Updated | EventKind::Created => {
                data["changes"] = changes.clone();
            }
        }
    }
    json!({
        "type": event.kind.as_str(),
        "timestamp": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
}

/// The summary of a body [`body`] wrote; `public_url` links to the incident.
pub fn summary(body: &Value, public_url: Option<&str>) -> AlertSummary {
    let incident = &body["data"]["incident"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let id = incident["id"].as_i64().unwrap_or_default();
    let changes = body["data"]["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|c| Change {
                    field: c["field"].as_str().unwrap_or_default().to_owned(),
                    old: display(&c["old"]),
                    new: display(&c["new"]),
                })
                .collect()
        })
        .unwrap_or_default();
    AlertSummary {
        event: body["type"].as_str().unwrap_or_default().to_owned(),
        incident_id: id,
        protocol: text(&incident["protocol"]).unwrap_or_else(|| {
            if body["type"] == "test" {
                "Test alert from Kamiyo".into()
            } else {
                "(deleted incident)".into()
            }
        }),
        chains: incident["chains"]
            .as_array()
            .map(|c| c.iter().filter_map(&text).collect())
            .unwrap_or_default(),
        loss_usd: incident["loss_usd"]
            .as_str()
            .and_then(|t| rust_decimal::Decimal::from_str(t).ok()),
        occurred_at: incident["occurred_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default(),
        attack: text(&incident["attack_type"]),
        sources: usize::try_from(incident["sources_count"].as_i64().unwrap_or_default())
            .unwrap_or_default(),
        url: public_url.map(|base| format!("{}/api/exploits/{id}", base.trim_end_matches('/'))),
        changes,
    }
}

fn display(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        other => Some(other.to_string()),
    }
}
