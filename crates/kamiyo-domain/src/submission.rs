//! A community submission (`POST /api/submissions`, docs/COMMUNITY.md): a person's claim
//! about an incident, with the evidence for it.
//!
//! [`SubmissionInput`] is what arrives. [`SubmissionInput::validate`] checks the evidence
//! URLs and addresses, then every claim field exactly as any source's claim is checked
//! (through [`IncidentDraft::from_input_with_warnings`], a hash that does not suit its
//! chain refused as the API refuses it), and gives a [`ValidSubmission`]: the claim of
//! the source `community`, the claim validated (for matching), and the fingerprint under
//! which the same submission twice is one.
//!
//! - `claim`: which entry of a claim's lists a refusal is about.
//! - `evidence`: evidence URLs and addresses.
//! - `fingerprint`: what makes two submissions the same.
//! - `schema`: the JSON Schema of the fields a claim does not have.
//!
//! Evidence URLs are kept and shown as text: nothing fetches them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::incident::{IncidentDraft, IncidentInput, TxHashInput};

mod claim;
mod evidence;
mod fingerprint;
mod schema;

pub use evidence::{MAX_ADDRESSES, MAX_ADDRESS_CHARS, MAX_EVIDENCE_URLS, MAX_EVIDENCE_URL_CHARS};

/// The source of every claim a submission becomes.
pub const COMMUNITY_SOURCE: &str = "community";

/// A verified submission's claim has the external id `submission-<id>`: the claim of one
/// submission, recognisable and never confused with another's.
pub const EXTERNAL_ID_PREFIX: &str = "submission-";

/// A submission as it arrives: the claim fields of `POST /api/exploits` that a person
/// gives, and the evidence. The service sets the rest of the claim (`source`,
/// `source_url`, `external_id`, `status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(example = json!({
    "protocol": "Euler Finance",
    "chains": ["ethereum"],
    "date": "2023-03-13",
    "loss_usd": "197000000",
    "tx_hashes": [{"chain": "ethereum", "hash": "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d"}],
    "description": "Donation to reserves, then a self-liquidation.",
    "evidence_urls": ["https://etherscan.io/tx/0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d"],
    "attacker_addresses": ["0x5f259d0b76665c337c6104145894f4d1d2758b8c"]
}))]
pub struct SubmissionInput {
    #[schema(schema_with = crate::input_schema::protocol, required = true)]
    pub protocol: Option<String>,
    #[schema(schema_with = crate::input_schema::chains)]
    pub chains: Vec<String>,
    #[schema(schema_with = crate::input_schema::date, required = true)]
    pub date: Option<String>,
    /// Decimal text or a JSON number; absent when unknown.
    #[serde(deserialize_with = "crate::incident::text_or_number")]
    #[schema(schema_with = crate::input_schema::amount)]
    pub loss_usd: Option<String>,
    #[schema(schema_with = crate::input_schema::tx_hashes)]
    pub tx_hashes: Vec<TxHashInput>,
    #[schema(schema_with = crate::input_schema::description)]
    pub description: Option<String>,
    #[schema(schema_with = crate::input_schema::attack_type)]
    pub attack_type: Option<String>,
    #[schema(schema_with = crate::input_schema::technique)]
    pub technique: Option<String>,
    #[schema(schema_with = schema::evidence_urls, required = true)]
    pub evidence_urls: Vec<String>,
    #[schema(schema_with = schema::attacker_addresses)]
    pub attacker_addresses: Vec<String>,
    #[schema(schema_with = schema::victim_addresses)]
    pub victim_addresses: Vec<String>,
}

/// A submission that passed every rule.
#[derive(Debug, Clone, Serialize)]
pub struct ValidSubmission {
    /// The claim as the source `community` makes it: the submitted fields as written,
    /// `source_url` the first evidence URL, no `external_id` (see
    /// [`ValidSubmission::claim_for`]). What is stored, and ingested once verified.
    pub claim: IncidentInput,
    /// The claim validated at `now`, for matching the submission against incidents.
    pub draft: IncidentDraft,
    /// Trimmed, in the order given, each at most once (told apart as the fingerprint reads a URL).
    pub evidence_urls: Vec<String>,
    /// Trimmed, EVM addresses lower-cased, each at most once.
    pub attacker_addresses: Vec<String>,
    pub victim_addresses: Vec<String>,
    /// Hex SHA-256 of what makes two submissions the same (see `fingerprint`).
    pub fingerprint: String,
}

impl SubmissionInput {
    /// Validates every field; the first refusal names its field as the submission does
    /// (`loss_usd`, `tx_hashes[0].hash`, `evidence_urls[2]`). Evidence URLs and addresses
    /// are checked first (cheap, and the first URL is the claim's `source_url`), then the
    /// claim. `now` bounds the date.
    pub fn validate(self, now: DateTime<Utc>) -> Result<ValidSubmission, FieldError> {
        let evidence_urls = evidence::urls(&self.evidence_urls)?;
        let attacker_addresses =
            evidence::addresses("attacker_addresses", &self.attacker_addresses)?;
        let victim_addresses = evidence::addresses("victim_addresses", &self.victim_addresses)?;
        let claim = IncidentInput {
            source: Some(COMMUNITY_SOURCE.to_owned()),
            source_url: evidence_urls.first().cloned(),
            protocol: self.protocol,
            chains: self.chains,
            date: self.date,
            loss_usd: self.loss_usd,
            tx_hashes: self.tx_hashes,
            description: self.description,
            attack_type: self.attack_type,
            technique: self.technique,
            ..IncidentInput::default()
        };
        let draft = claim::validate(&claim, now)?;
        let fingerprint = fingerprint::of(&draft, &evidence_urls);
        Ok(ValidSubmission {
            claim,
            draft,
            evidence_urls,
            attacker_addresses,
            victim_addresses,
            fingerprint,
        })
    }
}

impl ValidSubmission {
    /// The claim to ingest once submission `submission_id` is verified: [`Self::claim`]
    /// with the external id `submission-<id>`.
    pub fn claim_for(&self, submission_id: i64) -> IncidentInput {
        IncidentInput {
            external_id: Some(external_id(submission_id)),
            ..self.claim.clone()
        }
    }
}

/// The external id of submission `submission_id`'s claim: `submission-<id>`.
pub fn external_id(submission_id: i64) -> String {
    format!("{EXTERNAL_ID_PREFIX}{submission_id}")
}

#[cfg(test)]
mod tests;
