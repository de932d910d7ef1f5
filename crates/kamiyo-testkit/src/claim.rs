//! [`claim`]: one source's claim about an incident, with defaults for everything a test
//! is not about, so that each test states only what matters to it.
//!
//! ```ignore
//! let draft = claim("Alphafi").chain("bsc").date("2024-02-10").loss_usd("250000").build();
//! let hidden = claim("Freshfi").ago(chrono::Duration::hours(2)).build();
//! ```
//!
//! Defaults: source `fixture`, chain `ethereum`, date `2024-01-01`, a loss of 1,000 USD,
//! no hash, no technique, and the draft validated against the current time.

use chrono::{DateTime, Utc};
use kamiyo_domain::{FieldError, IncidentDraft, IncidentInput, TxHashInput};

/// A claim about `protocol`, with the defaults of this module.
pub fn claim(protocol: &str) -> ClaimBuilder {
    ClaimBuilder {
        input: IncidentInput {
            source: Some("fixture".into()),
            protocol: Some(protocol.into()),
            date: Some("2024-01-01".into()),
            loss_usd: Some("1000".into()),
            ..IncidentInput::default()
        },
        chains: None,
        now: None,
    }
}

/// Builds an [`IncidentInput`] (what a source or `POST /api/exploits` sends) and the
/// validated [`IncidentDraft`] the store ingests.
#[derive(Debug, Clone)]
#[must_use = "a claim is only a value until built"]
pub struct ClaimBuilder {
    input: IncidentInput,
    /// `None` until a chain is named: then `ethereum`.
    chains: Option<Vec<String>>,
    /// `None`: validated against the time of `build`.
    now: Option<DateTime<Utc>>,
}

impl ClaimBuilder {
    pub fn source(mut self, source: &str) -> Self {
        self.input.source = Some(source.into());
        self
    }

    pub fn source_url(mut self, url: impl Into<String>) -> Self {
        self.input.source_url = Some(url.into());
        self
    }

    pub fn external_id(mut self, id: impl Into<String>) -> Self {
        self.input.external_id = Some(id.into());
        self
    }

    /// Adds a chain; the first one named replaces the default `ethereum`.
    pub fn chain(mut self, chain: &str) -> Self {
        self.chains.get_or_insert_with(Vec::new).push(chain.into());
        self
    }

    /// A claim that names no chain at all.
    pub fn no_chain(mut self) -> Self {
        self.chains = Some(Vec::new());
        self
    }

    /// The date as the source writes it (`2024-01-05`, RFC 3339, ...).
    pub fn date(mut self, date: impl Into<String>) -> Self {
        self.input.date = Some(date.into());
        self
    }

    /// An exact time.
    pub fn at(self, when: DateTime<Utc>) -> Self {
        self.date(when.to_rfc3339())
    }

    /// `age` before now: for tests about tier windows (delays and history).
    pub fn ago(self, age: chrono::Duration) -> Self {
        self.at(Utc::now() - age)
    }

    pub fn loss_usd(mut self, usd: impl Into<String>) -> Self {
        self.input.loss_usd = Some(usd.into());
        self
    }

    /// `Some(usd)`, or `None` for a loss that is not known.
    pub fn loss(mut self, usd: Option<&str>) -> Self {
        self.input.loss_usd = usd.map(Into::into);
        self
    }

    /// A claim whose loss is not known (stored as unknown, never 0).
    pub fn unknown_loss(mut self) -> Self {
        self.input.loss_usd = None;
        self
    }

    pub fn recovered_usd(mut self, usd: impl Into<String>) -> Self {
        self.input.recovered_usd = Some(usd.into());
        self
    }

    /// A transaction hash on `chain`.
    pub fn tx(mut self, chain: &str, hash: impl Into<String>) -> Self {
        self.input.tx_hashes.push(TxHashInput {
            chain: Some(chain.into()),
            hash: hash.into(),
        });
        self
    }

    /// A transaction hash without a chain (the claim's chain is assumed).
    pub fn hash(mut self, hash: impl Into<String>) -> Self {
        self.input.tx_hashes.push(TxHashInput {
            chain: None,
            hash: hash.into(),
        });
        self
    }

    /// The taxonomy type (`oracle_manipulation`).
    pub fn attack(mut self, attack_type: &str) -> Self {
        self.input.attack_type = Some(attack_type.into());
        self
    }

    /// The source's own category, kept as written.
    pub fn attack_class(mut self, class: &str) -> Self {
        self.input.attack_class = Some(class.into());
        self
    }

    /// The source's technique text (the type is derived from it when not given).
    pub fn technique(mut self, technique: &str) -> Self {
        self.input.technique = Some(technique.into());
        self
    }

    pub fn status(mut self, status: &str) -> Self {
        self.input.status = Some(status.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.input.description = Some(description.into());
        self
    }

    /// The time the claim is validated against (dates after it are refused); for tests
    /// that need the same draft on every run.
    pub fn now(mut self, now: DateTime<Utc>) -> Self {
        self.now = Some(now);
        self
    }

    /// The claim as a source sends it, before validation.
    pub fn input(self) -> IncidentInput {
        IncidentInput {
            chains: self.chains.unwrap_or_else(|| vec!["ethereum".into()]),
            ..self.input
        }
    }

    /// The validated draft, or the refusal naming its field.
    pub fn try_build(self) -> Result<IncidentDraft, FieldError> {
        let now = self.now.unwrap_or_else(Utc::now);
        IncidentDraft::from_input(self.input(), now)
    }

    /// The validated draft; panics with the refusal when the claim is invalid.
    pub fn build(self) -> IncidentDraft {
        let shown = format!("{:?}", self.input);
        self.try_build()
            .unwrap_or_else(|e| panic!("invalid test claim ({e}): {shown}"))
    }
}
