//! An incident as a source claims it: `IncidentInput` is what arrives (strings, from a
//! file line or an API body), `IncidentDraft` is the same claim validated and normalised.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::attack::{classify, mentions_flash_loan, AttackClass, AttackType};
use crate::chain::Chain;
use crate::error::FieldError;
use crate::input_rules::{at_most_entries, check_claim};
use crate::limits::MAX_CHAINS_PER_CLAIM;
use crate::money::Usd;
use crate::protocol::ProtocolName;
use crate::tx::TxHash;
use crate::when::parse_incident_date;

/// Whether a loss is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Suspected,
    Confirmed,
    Disputed,
    NotALoss,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 4] = [
        IncidentStatus::Suspected,
        IncidentStatus::Confirmed,
        IncidentStatus::Disputed,
        IncidentStatus::NotALoss,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Suspected => "suspected",
            IncidentStatus::Confirmed => "confirmed",
            IncidentStatus::Disputed => "disputed",
            IncidentStatus::NotALoss => "not_a_loss",
        }
    }

    pub fn parse(text: &str) -> Result<IncidentStatus, FieldError> {
        let key = text.trim().to_lowercase().replace([' ', '-'], "_");
        IncidentStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == key)
            .ok_or_else(|| {
                FieldError::new(
                    "status",
                    format!("{text:?} is not one of suspected, confirmed, disputed, not_a_loss"),
                )
            })
    }
}

/// A hash as given: with its chain, or alone when the incident has one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxHashInput {
    #[serde(default)]
    #[schema(schema_with = crate::input_schema::tx_chain)]
    pub chain: Option<String>,
    #[schema(schema_with = crate::input_schema::tx_hash)]
    pub hash: String,
}

/// One source's claim about one incident, before validation. `source`, `protocol`, `date`
/// and a chain (in `chains` or `tx_hashes`) are required. Every text field is trimmed,
/// holds no control characters (`description` may hold tab, line feed and carriage
/// return) and stays within its maximum ([`crate::limits`]); `source_url` is an `http` or
/// `https` URL with a host. The schema of each field is in [`crate::input_schema`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
#[schema(example = json!({
    "source": "rekt",
    "source_url": "https://rekt.news/euler-rekt/",
    "protocol": "Euler Finance",
    "chains": ["ethereum"],
    "date": "2023-03-13",
    "loss_usd": "197000000",
    "technique": "flash loan, donation to reserves",
    "tx_hashes": [{"hash": "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d"}]
}))]
pub struct IncidentInput {
    #[schema(schema_with = crate::input_schema::source, required = true)]
    pub source: Option<String>,
    #[schema(schema_with = crate::input_schema::source_url)]
    pub source_url: Option<String>,
    /// The source's own id for the record; makes re-imports recognisable.
    #[schema(schema_with = crate::input_schema::external_id)]
    pub external_id: Option<String>,
    #[schema(schema_with = crate::input_schema::protocol, required = true)]
    pub protocol: Option<String>,
    #[schema(schema_with = crate::input_schema::chains)]
    pub chains: Vec<String>,
    #[schema(schema_with = crate::input_schema::date, required = true)]
    pub date: Option<String>,
    /// Decimal text or a JSON number, e.g. `"197000000"`; absent when unknown (never 0
    /// for unknown).
    #[serde(deserialize_with = "text_or_number")]
    #[schema(schema_with = crate::input_schema::amount)]
    pub loss_usd: Option<String>,
    #[serde(deserialize_with = "text_or_number")]
    #[schema(schema_with = crate::input_schema::amount)]
    pub recovered_usd: Option<String>,
    /// Taxonomy type (`oracle_manipulation`); derived from `technique` when absent.
    #[schema(schema_with = crate::input_schema::attack_type)]
    pub attack_type: Option<String>,
    /// The source's own category (DeFiLlama's `classification`), kept as written.
    #[schema(schema_with = crate::input_schema::attack_class)]
    pub attack_class: Option<String>,
    /// The source's technique text, kept as written.
    #[schema(schema_with = crate::input_schema::technique)]
    pub technique: Option<String>,
    #[schema(schema_with = crate::input_schema::tx_hashes)]
    pub tx_hashes: Vec<TxHashInput>,
    #[schema(schema_with = crate::input_schema::status)]
    pub status: Option<String>,
    #[schema(schema_with = crate::input_schema::description)]
    pub description: Option<String>,
    pub flash_loan: Option<bool>,
    pub bridge: Option<bool>,
}

/// An amount given as a string or a JSON number; kept as text either way.
pub(crate) fn text_or_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Amount {
        Text(String),
        Integer(u64),
        Number(f64),
    }
    Ok(match Option::<Amount>::deserialize(deserializer)? {
        None => None,
        Some(Amount::Text(text)) => Some(text),
        Some(Amount::Integer(n)) => Some(n.to_string()),
        Some(Amount::Number(n)) => Some(n.to_string()),
    })
}

/// Where a claim came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRef {
    pub name: String,
    pub url: Option<String>,
    pub external_id: Option<String>,
    /// The date exactly as the source wrote it.
    pub reported_date: String,
    /// The source's id names this incident alone (a news article's slug), not a protocol
    /// that may have several (DeFiLlama's `defillamaId`): the id alone then keys the
    /// claim, so a corrected name or date updates it. Set by the source's parser, never
    /// by an API caller.
    pub id_names_incident: bool,
}

/// A validated, normalised claim.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentDraft {
    pub protocol: ProtocolName,
    /// At least one; the first is the primary chain.
    pub chains: Vec<Chain>,
    pub occurred_at: DateTime<Utc>,
    pub loss_usd: Option<Usd>,
    pub recovered_usd: Option<Usd>,
    pub attack_type: AttackType,
    pub attack_text: Option<String>,
    pub classification: Option<String>,
    pub flash_loan: bool,
    pub bridge: bool,
    pub tx_hashes: Vec<TxHash>,
    pub status: IncidentStatus,
    pub description: Option<String>,
    pub source: SourceRef,
}

/// Whether a claim comes in (every edge rule applies) or is read back from storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Enforced,
    Stored,
}

/// The claim key of an id that names the incident alone starts with this.
const INCIDENT_KEY_PREFIX: &str = "inc:";

impl IncidentDraft {
    /// Validates every field; the first refusal names its field. `now` bounds dates.
    /// Every text field is checked first against the rules of `input_rules` (no control
    /// characters, the maximums of [`crate::limits`], web URLs only).
    ///
    /// What is dropped rather than refused (a hash that does not fit its record's chain)
    /// is lost here without a word: a caller that reports to a person uses
    /// [`IncidentDraft::from_input_with_warnings`].
    pub fn from_input(
        input: IncidentInput,
        now: DateTime<Utc>,
    ) -> Result<IncidentDraft, FieldError> {
        IncidentDraft::from_input_with_warnings(input, now).map(|(draft, _)| draft)
    }

    /// [`IncidentDraft::from_input`], with what was dropped from the claim so that the
    /// record could be kept: each the refusal of the value dropped, naming its field
    /// (`tx_hashes`). An importer keeps the record and reports them; the API refuses a
    /// request that has any (its caller can correct it).
    pub fn from_input_with_warnings(
        input: IncidentInput,
        now: DateTime<Utc>,
    ) -> Result<(IncidentDraft, Vec<FieldError>), FieldError> {
        check_claim(&input)?;
        IncidentDraft::parse(input, now, Edge::Enforced)
    }

    /// A claim read back from storage. It passed the edge's rules of its day when it was
    /// written; those rules (the maximums of [`crate::limits`], control characters, web
    /// URLs) are not applied again, so that tightening them never locks an incident's
    /// stored claims out of later merges. Fields are still parsed as on the way in.
    pub fn from_stored(
        input: IncidentInput,
        now: DateTime<Utc>,
    ) -> Result<IncidentDraft, FieldError> {
        IncidentDraft::parse(input, now, Edge::Stored).map(|(draft, _)| draft)
    }

    fn parse(
        input: IncidentInput,
        now: DateTime<Utc>,
        edge: Edge,
    ) -> Result<(IncidentDraft, Vec<FieldError>), FieldError> {
        let source_name = input
            .source
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FieldError::new("source", "is required"))?;
        let protocol = ProtocolName::parse(input.protocol.as_deref().unwrap_or_default())?;
        let mut chains: Vec<Chain> = Vec::new();
        for text in &input.chains {
            let chain = Chain::parse(text).map_err(|e| FieldError::new("chains", e.message))?;
            if !chains.contains(&chain) {
                chains.push(chain);
            }
        }
        let mut tx_hashes: Vec<TxHash> = Vec::new();
        let mut warnings = Vec::new();
        for given in &input.tx_hashes {
            let chain = match (&given.chain, chains.as_slice()) {
                (Some(text), _) => {
                    Chain::parse(text).map_err(|e| FieldError::new("tx_hashes", e.message))?
                }
                (None, [only]) => only.clone(),
                // No chain for the hash: the record's one chain whose family its format
                // fits, else the unknown chain, where it meets the same hash on any chain
                // of that family.
                (None, several) => {
                    let mut fitting = several.iter().filter(|c| c.family().fits(&given.hash));
                    match (fitting.next(), fitting.next()) {
                        (Some(one), None) => one.clone(),
                        _ => Chain::unknown(),
                    }
                }
            };
            // A hash that does not fit its chain (an `0x` hash on a Solana record) is
            // dropped from the claim, and the record kept.
            let hash = match TxHash::parse(chain.clone(), &given.hash) {
                Ok(hash) => hash,
                Err(refusal) => {
                    warnings.push(refusal);
                    continue;
                }
            };
            // The unknown chain joins the claim's chains only when they are empty.
            let named = !chain.is_unknown() || chains.is_empty();
            if named && !chains.contains(&chain) {
                chains.push(chain);
            }
            if !tx_hashes.contains(&hash) {
                tx_hashes.push(hash);
            }
        }
        // A record that names no chain is kept, on the unknown chain.
        if chains.is_empty() {
            chains.push(Chain::unknown());
        }
        // Hashes can name chains the list does not; the maximum is on the claim's chains.
        if edge == Edge::Enforced {
            at_most_entries("chains", chains.len(), MAX_CHAINS_PER_CLAIM)?;
        }
        let date_text = input
            .date
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .ok_or_else(|| FieldError::new("date", "is required"))?;
        let occurred_at = parse_incident_date(date_text, now)?;
        let loss_usd = optional_usd("loss_usd", input.loss_usd.as_deref())?;
        let recovered_usd = optional_usd("recovered_usd", input.recovered_usd.as_deref())?;
        let technique = clean(input.technique);
        let classification = clean(input.attack_class);
        let attack_type = match input
            .attack_type
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            Some(name) => AttackType::parse(name)?,
            None => classify(technique.as_deref(), classification.as_deref()),
        };
        let status = match input
            .status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(text) => IncidentStatus::parse(text)?,
            None => IncidentStatus::Confirmed,
        };
        let description = clean(input.description);
        let flash_loan = input.flash_loan.unwrap_or(false)
            || technique.as_deref().is_some_and(mentions_flash_loan);
        let draft = IncidentDraft {
            protocol,
            chains,
            occurred_at,
            loss_usd,
            recovered_usd,
            attack_type,
            attack_text: technique,
            classification,
            flash_loan,
            bridge: input.bridge.unwrap_or(false),
            tx_hashes,
            status,
            description,
            source: SourceRef {
                name: source_name.to_owned(),
                url: clean(input.source_url),
                external_id: clean(input.external_id),
                reported_date: date_text.to_owned(),
                id_names_incident: false,
            },
        };
        Ok((draft, warnings))
    }

    /// Whether a stored claim key is one [`IncidentDraft::claim_key`] made from an id that
    /// names the incident alone (`SourceRef::id_names_incident` is not stored: this is).
    pub fn key_names_incident(claim_key: &str) -> bool {
        claim_key.starts_with(INCIDENT_KEY_PREFIX)
    }

    pub fn attack_class(&self) -> AttackClass {
        self.attack_type.class()
    }

    /// Identifies this claim within its source across re-imports, from what a source
    /// keeps stable when it corrects a record: its own id (with the protocol and the day,
    /// because some sources' ids name the protocol, not the incident, as DeFiLlama's
    /// `defillamaId` does), or else the protocol, the day and the primary chain. Amounts,
    /// hashes and texts are not part of it: a corrected amount updates the claim instead
    /// of creating a second one.
    ///
    /// The day is the parsed date's UTC day (`2023-03-13`), not the text the source
    /// wrote: one source publishing one record in two shapes (DeFiLlama's CSV export
    /// writes `3/13/23`, its API unix seconds) keeps one claim. Migration 0006 rewrote
    /// the keys stored before.
    ///
    /// An id that names the incident alone (`SourceRef::id_names_incident`) is the whole
    /// key: a news article read first from its feed (dated by publication) and then from
    /// its page (dated by the hack) stays one claim.
    pub fn claim_key(&self) -> String {
        let date = self.occurred_at.format("%Y-%m-%d");
        let protocol = self.protocol.key();
        match &self.source.external_id {
            Some(id) if self.source.id_names_incident => format!("{INCIDENT_KEY_PREFIX}{id}"),
            Some(id) => format!("id:{protocol}:{id}@{date}"),
            None => format!(
                "k:{protocol}@{date}@{}",
                self.chains.first().map(Chain::slug).unwrap_or_default()
            ),
        }
    }
}

fn optional_usd(field: &str, text: Option<&str>) -> Result<Option<Usd>, FieldError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => Usd::parse(field, text).map(Some),
        None => Ok(None),
    }
}

fn clean(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn euler() -> IncidentInput {
        IncidentInput {
            source: Some("defillama".into()),
            protocol: Some("Euler Finance".into()),
            chains: vec!["Ethereum".into()],
            date: Some("3/13/23".into()),
            loss_usd: Some("197000000".into()),
            technique: Some("Flashloan donation attack, price manipulation".into()),
            tx_hashes: vec![TxHashInput {
                chain: None,
                hash: format!("0x{}", "c3".repeat(32)),
            }],
            ..IncidentInput::default()
        }
    }

    #[test]
    fn a_claim_is_normalised() {
        let draft = IncidentDraft::from_input(euler(), now()).unwrap();
        assert_eq!(draft.protocol.key(), "euler");
        assert_eq!(draft.chains[0].slug(), "ethereum");
        assert_eq!(draft.loss_usd.unwrap().to_string(), "197000000.00");
        assert_eq!(draft.attack_type, AttackType::OracleManipulation);
        assert!(draft.flash_loan);
        assert_eq!(draft.status, IncidentStatus::Confirmed);
        assert_eq!(draft.tx_hashes[0].chain.slug(), "ethereum");
        assert_eq!(
            draft.claim_key(),
            IncidentDraft::from_input(euler(), now())
                .unwrap()
                .claim_key()
        );
    }

    #[test]
    fn unknown_amount_stays_unknown_and_refusals_name_fields() {
        let mut input = euler();
        input.loss_usd = Some("  ".into());
        assert_eq!(
            IncidentDraft::from_input(input, now()).unwrap().loss_usd,
            None
        );
        type Breaker = fn(&mut IncidentInput);
        let cases: Vec<(Breaker, &str)> = vec![
            (|i| i.protocol = Some(" ".into()), "protocol"),
            (|i| i.loss_usd = Some("-1".into()), "loss_usd"),
            (|i| i.date = Some("someday".into()), "date"),
            (|i| i.tx_hashes[0].chain = Some("\u{7}".into()), "tx_hashes"),
            (|i| i.status = Some("rumour".into()), "status"),
            (|i| i.source = None, "source"),
        ];
        for (break_it, field) in cases {
            let mut input = euler();
            break_it(&mut input);
            assert_eq!(
                IncidentDraft::from_input(input, now()).unwrap_err().field,
                field
            );
        }
    }

    fn with_hash(chains: &[&str], chain: Option<&str>, hash: &str) -> IncidentInput {
        IncidentInput {
            chains: chains.iter().map(|c| (*c).to_owned()).collect(),
            tx_hashes: vec![TxHashInput {
                chain: chain.map(str::to_owned),
                hash: hash.to_owned(),
            }],
            ..euler()
        }
    }

    #[test]
    fn a_record_without_a_chain_is_kept_on_the_unknown_chain() {
        let input = IncidentInput {
            chains: Vec::new(),
            tx_hashes: Vec::new(),
            ..euler()
        };
        let draft = IncidentDraft::from_input(input, now()).unwrap();
        assert_eq!(draft.chains, [Chain::unknown()]);
        assert_eq!(draft.chains[0].display_name(), "Unknown chain");
    }

    #[test]
    fn a_hash_without_a_chain_takes_the_chain_its_format_fits_or_the_unknown_one() {
        let evm = format!("0x{}", "AB".repeat(32));
        let signature = "5".repeat(80);
        // No chain at all: the unknown chain, the hash normalised as an EVM one.
        let (draft, dropped) =
            IncidentDraft::from_input_with_warnings(with_hash(&[], None, &evm), now()).unwrap();
        assert!(dropped.is_empty());
        assert_eq!(draft.chains, [Chain::unknown()]);
        assert_eq!(draft.tx_hashes[0].chain, Chain::unknown());
        assert_eq!(
            draft.tx_hashes[0].hash,
            evm.to_lowercase().replace("0X", "0x")
        );
        // Two chains of different families: the one the format fits.
        let draft =
            IncidentDraft::from_input(with_hash(&["Ethereum", "Solana"], None, &signature), now())
                .unwrap();
        assert_eq!(draft.tx_hashes[0].chain.slug(), "solana");
        // Two EVM chains: either could be it, so the unknown chain; the claim's chains
        // stay as named.
        let draft =
            IncidentDraft::from_input(with_hash(&["Ethereum", "BSC"], None, &evm), now()).unwrap();
        assert_eq!(draft.tx_hashes[0].chain, Chain::unknown());
        assert_eq!(
            draft.chains.iter().map(Chain::slug).collect::<Vec<_>>(),
            ["ethereum", "bsc"]
        );
    }

    #[test]
    fn a_hash_that_does_not_fit_its_chain_is_dropped_with_a_warning_and_the_record_kept() {
        let evm = format!("0x{}", "ab".repeat(32));
        let (draft, dropped) =
            IncidentDraft::from_input_with_warnings(with_hash(&["Solana"], None, &evm), now())
                .unwrap();
        assert!(draft.tx_hashes.is_empty());
        assert_eq!(draft.chains[0].slug(), "solana");
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].field, "tx_hashes");
        assert!(dropped[0].message.contains("Solana"), "{}", dropped[0]);
    }

    #[test]
    fn numeric_chain_ids_resolve_to_their_chains() {
        for (id, slug) in [
            ("1", "ethereum"),
            ("10", "optimism"),
            ("56", "bsc"),
            ("137", "polygon"),
            ("146", "sonic"),
            ("250", "fantom"),
            ("369", "pulsechain"),
            ("8453", "base"),
            ("42161", "arbitrum"),
            ("43114", "avalanche"),
            ("59144", "linea"),
            ("80094", "berachain"),
        ] {
            let chain = Chain::parse(id).unwrap();
            assert_eq!(chain.slug(), slug, "{id}");
            assert_eq!(chain.family(), crate::ChainFamily::Evm, "{id}");
        }
    }
}
