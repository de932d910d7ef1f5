//! Converting a claim to the columns both backends store and back. The stored form is
//! text where the backends differ (timestamps, money, JSON lists), so one conversion
//! serves both.

use chrono::{DateTime, Utc};
use kamiyo_domain::{IncidentDraft, IncidentInput, TxHashInput};

use kamiyo_db::DbError;

/// A claim's columns, as stored.
#[derive(Debug, Clone)]
pub(crate) struct ClaimColumns {
    pub source_name: String,
    pub source_url: Option<String>,
    pub external_id: Option<String>,
    pub reported_name: String,
    pub reported_date: String,
    pub occurred_at: DateTime<Utc>,
    pub amount_usd: Option<String>,
    pub recovered_usd: Option<String>,
    /// JSON array of chain slugs.
    pub chains: String,
    /// JSON array of `chain:hash`.
    pub tx_hashes: String,
    pub attack_class: String,
    pub attack_type: String,
    pub attack_text: Option<String>,
    pub classification: Option<String>,
    pub status: String,
    pub description: Option<String>,
    pub flash_loan: bool,
    pub bridge: bool,
}

impl ClaimColumns {
    pub fn from_draft(draft: &IncidentDraft) -> ClaimColumns {
        let chains: Vec<&str> = draft.chains.iter().map(|c| c.slug()).collect();
        let hashes: Vec<String> = draft
            .tx_hashes
            .iter()
            .map(|h| format!("{}:{}", h.chain, h.hash))
            .collect();
        ClaimColumns {
            source_name: draft.source.name.clone(),
            source_url: draft.source.url.clone(),
            external_id: draft.source.external_id.clone(),
            reported_name: draft.protocol.display().to_owned(),
            reported_date: draft.source.reported_date.clone(),
            occurred_at: draft.occurred_at,
            amount_usd: draft.loss_usd.map(|u| u.to_string()),
            recovered_usd: draft.recovered_usd.map(|u| u.to_string()),
            chains: serde_json::Value::from(chains).to_string(),
            tx_hashes: serde_json::Value::from(hashes).to_string(),
            attack_class: draft.attack_class().as_str().to_owned(),
            attack_type: draft.attack_type.as_str().to_owned(),
            attack_text: draft.attack_text.clone(),
            classification: draft.classification.clone(),
            status: draft.status.as_str().to_owned(),
            description: draft.description.clone(),
            flash_loan: draft.flash_loan,
            bridge: draft.bridge,
        }
    }

    /// The claim back as a draft, parsed as on the way in (but not held to edge limits
    /// tightened since it was written: `IncidentDraft::from_stored`).
    pub fn into_draft(self) -> Result<IncidentDraft, DbError> {
        let list = |json: &str, field: &str| -> Result<Vec<String>, DbError> {
            serde_json::from_str(json)
                .map_err(|e| DbError::other(format!("stored claim has a malformed {field}: {e}")))
        };
        let tx_hashes = list(&self.tx_hashes, "tx_hashes")?
            .into_iter()
            .map(|text| match text.split_once(':') {
                Some((chain, hash)) => TxHashInput {
                    chain: Some(chain.to_owned()),
                    hash: hash.to_owned(),
                },
                None => TxHashInput {
                    chain: None,
                    hash: text,
                },
            })
            .collect();
        let input = IncidentInput {
            source: Some(self.source_name),
            source_url: self.source_url,
            external_id: self.external_id,
            protocol: Some(self.reported_name),
            chains: list(&self.chains, "chains")?,
            date: Some(self.occurred_at.to_rfc3339()),
            loss_usd: self.amount_usd,
            recovered_usd: self.recovered_usd,
            attack_type: Some(self.attack_type),
            attack_class: self.classification,
            technique: self.attack_text,
            tx_hashes,
            status: Some(self.status),
            description: self.description,
            flash_loan: Some(self.flash_loan),
            bridge: Some(self.bridge),
        };
        // Stored claims were validated when written; "now" only bounds future dates.
        let mut draft = IncidentDraft::from_stored(input, DateTime::<Utc>::MAX_UTC)
            .map_err(|e| DbError::other(format!("stored claim no longer validates: {e}")))?;
        draft.source.reported_date = self.reported_date;
        Ok(draft)
    }
}

/// `2023-03-13T08:50:00.000Z`: SQLite's stored form (text comparison is time order).
pub(crate) fn sqlite_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) fn parse_sqlite_time(text: &str) -> Result<DateTime<Utc>, DbError> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| DbError::other(format!("stored timestamp {text:?} is malformed: {e}")))
}

/// A stored claim as the API shows it.
pub(crate) fn source_claim(
    c: ClaimColumns,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
) -> Result<super::SourceClaim, DbError> {
    let list = |json: &str| -> Result<Vec<String>, DbError> {
        serde_json::from_str(json)
            .map_err(|e| DbError::other(format!("stored claim has a malformed list: {e}")))
    };
    Ok(super::SourceClaim {
        chains: list(&c.chains)?,
        tx_hashes: list(&c.tx_hashes)?,
        source: c.source_name,
        url: c.source_url,
        external_id: c.external_id,
        reported_name: c.reported_name,
        reported_date: c.reported_date,
        occurred_at: c.occurred_at,
        loss_usd: c.amount_usd,
        recovered_usd: c.recovered_usd,
        attack_type: c.attack_type,
        technique: c.attack_text,
        classification: c.classification,
        first_seen_at,
        last_seen_at,
    })
}
