//! The claim table (`exploit_sources`): a claim's stored columns, converted from a
//! draft on the way in and back to a draft (or to the read model) on the way out. The
//! stored form is text where the backends differ (money, JSON lists), so one
//! conversion serves both.

use chrono::{DateTime, Utc};
use kamiyo_domain::{AttackType, Chain, IncidentDraft, IncidentInput, TxHashInput, Usd};

use super::join::JoinReason;
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};

const TABLE: &str = "exploit_sources";

/// The columns every read of a claim selects, by name. Money and the JSON lists are
/// read as text on both backends (PostgreSQL casts them; a cast keeps the column name).
pub(crate) const POSTGRES_COLUMNS: &str = "id, exploit_id, claim_key, source_name, source_url, external_id, \
     reported_name, reported_date, occurred_at, amount_usd::text AS amount_usd, \
     recovered_usd::text AS recovered_usd, chains::text AS chains, tx_hashes::text AS tx_hashes, attack_class, \
     attack_type, attack_text, classification, status, description, flash_loan, bridge, first_seen_at, last_seen_at, joined_by, \
     curated_by";
pub(crate) const SQLITE_COLUMNS: &str = "id, exploit_id, claim_key, source_name, source_url, external_id, \
     reported_name, reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, attack_class, \
     attack_type, attack_text, classification, status, description, flash_loan, bridge, first_seen_at, last_seen_at, joined_by, \
     curated_by";

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

/// A stored claim with its identity and times.
#[derive(Debug, Clone)]
pub(crate) struct StoredClaimRow {
    pub id: i64,
    pub exploit_id: i64,
    pub claim_key: String,
    pub columns: ClaimColumns,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// NULL for claims stored before migration 0008, and for claims a curator placed.
    pub joined_by: Option<JoinReason>,
    /// The curator's decision that placed it (migration 0010).
    pub curated_by: Option<i64>,
}

impl StoredClaimRow {
    /// A row selected with [`POSTGRES_COLUMNS`] or [`SQLITE_COLUMNS`].
    pub fn read<R: DriverRow + ?Sized>(row: &R) -> Result<StoredClaimRow, StoreError> {
        let f = Fields::of(TABLE, row);
        Ok(StoredClaimRow {
            id: f.int("id")?,
            exploit_id: f.int("exploit_id")?,
            claim_key: f.text("claim_key")?,
            first_seen_at: f.time("first_seen_at")?,
            last_seen_at: f.time("last_seen_at")?,
            joined_by: f
                .opt_text("joined_by")?
                .map(|t| JoinReason::parse(&t))
                .transpose()?,
            curated_by: f.opt_int("curated_by")?,
            columns: ClaimColumns {
                source_name: f.text("source_name")?,
                source_url: f.opt_text("source_url")?,
                external_id: f.opt_text("external_id")?,
                reported_name: f.text("reported_name")?,
                reported_date: f.opt_text("reported_date")?.unwrap_or_default(),
                occurred_at: f.time("occurred_at")?,
                amount_usd: f.opt_text("amount_usd")?,
                recovered_usd: f.opt_text("recovered_usd")?,
                chains: f.text("chains")?,
                tx_hashes: f.text("tx_hashes")?,
                attack_class: f.opt_text("attack_class")?.unwrap_or_default(),
                attack_type: f
                    .opt_text("attack_type")?
                    .unwrap_or_else(|| "unknown".into()),
                attack_text: f.opt_text("attack_text")?,
                classification: f.opt_text("classification")?,
                status: f.opt_text("status")?.unwrap_or_else(|| "confirmed".into()),
                description: f.opt_text("description")?,
                flash_loan: f.flag("flash_loan")?,
                bridge: f.flag("bridge")?,
            },
        })
    }
}

fn json_list(column: &'static str, json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::corrupt(TABLE, column, format!("not a JSON list of text: {e}")))
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
    pub fn into_draft(self) -> Result<IncidentDraft, StoreError> {
        let tx_hashes = json_list("tx_hashes", &self.tx_hashes)?
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
            chains: json_list("chains", &self.chains)?,
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
        let mut draft =
            IncidentDraft::from_stored(input, DateTime::<Utc>::MAX_UTC).map_err(|e| {
                StoreError::corrupt(TABLE, "(claim)", format!("no longer validates: {e}"))
            })?;
        draft.source.reported_date = self.reported_date;
        Ok(draft)
    }
}

/// A stored claim as the API shows it.
pub(crate) fn source_claim(row: StoredClaimRow) -> Result<super::SourceClaim, StoreError> {
    // A curator's decision, not the rule, placed it.
    let joined_by = match row.curated_by {
        Some(_) => Some(JoinReason::Curated),
        None => row.joined_by,
    };
    let c = row.columns;
    let usd = |column: &'static str, text: Option<String>| {
        text.map(|t| {
            Usd::parse(column, &t)
                .map_err(|e| StoreError::corrupt(TABLE, column, format!("{t:?}: {e}")))
        })
        .transpose()
    };
    let chains = json_list("chains", &c.chains)?
        .into_iter()
        .map(|slug| {
            Chain::parse(&slug)
                .map_err(|e| StoreError::corrupt(TABLE, "chains", format!("{slug:?}: {e}")))
        })
        .collect::<Result<Vec<Chain>, StoreError>>()?;
    Ok(super::SourceClaim {
        id: row.id,
        decision: row.curated_by,
        // Scored against the other claims once the incident is read whole.
        evidence: None,
        joined_by,
        chains,
        tx_hashes: json_list("tx_hashes", &c.tx_hashes)?,
        source: c.source_name,
        url: c.source_url,
        external_id: c.external_id,
        reported_name: c.reported_name,
        reported_date: c.reported_date,
        occurred_at: c.occurred_at,
        loss_usd: usd("amount_usd", c.amount_usd)?,
        recovered_usd: usd("recovered_usd", c.recovered_usd)?,
        attack_type: AttackType::parse(&c.attack_type).map_err(|e| {
            StoreError::corrupt(TABLE, "attack_type", format!("{:?}: {e}", c.attack_type))
        })?,
        technique: c.attack_text,
        classification: c.classification,
        first_seen_at: row.first_seen_at,
        last_seen_at: row.last_seen_at,
    })
}
