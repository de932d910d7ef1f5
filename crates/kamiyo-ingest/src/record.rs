/// One incident as a source reported it: text as given (trimmed), nothing normalised.
///
/// Empty values are `None` (or an empty list); everything else is for `kamiyo-domain` to
/// validate.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RawIncident {
    /// 1-based line the record starts on (for CSV the header is line 1).
    pub line: usize,
    /// Source name, e.g. `"defillama"`; the caller's default when the record names none.
    pub source: Option<String>,
    pub source_url: Option<String>,
    /// The source's own id (DeFiLlama `defillamaId`).
    pub external_id: Option<String>,
    /// The id names this incident alone (rekt.news's article slug), not a protocol
    /// (`kamiyo_domain::SourceRef::id_names_incident`).
    pub id_names_incident: bool,
    /// Reported protocol name, as given.
    pub protocol: Option<String>,
    /// Chain names as given, split from lists, trimmed, empty entries and exact repeats
    /// dropped, in the order given.
    pub chains: Vec<String>,
    /// As given, trimmed (DeFiLlama writes `M/D/YY`).
    pub date: Option<String>,
    /// As given, trimmed; a JSON number keeps its exact text.
    pub loss_usd: Option<String>,
    pub recovered_usd: Option<String>,
    /// The source's classification text (DeFiLlama `classification`).
    pub attack_class: Option<String>,
    /// The source's technique text (DeFiLlama `technique`).
    pub technique: Option<String>,
    pub tx_hashes: Vec<RawTxHash>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub flash_loan: Option<bool>,
    pub bridge: Option<bool>,
    pub target_type: Option<String>,
}

/// A transaction hash, with the chain when the source named one (`chain:hash`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RawTxHash {
    pub chain: Option<String>,
    pub hash: String,
}

/// A record that could not be read; the rest of the file is unaffected.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize)]
#[error("line {line}: {message}")]
pub struct Rejection {
    /// 1-based line the record starts on.
    pub line: usize,
    /// The field (JSON key or CSV column) at fault, when one is.
    pub field: Option<String>,
    /// What is wrong, naming the field when there is one.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        Rejection {
            line,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn field(line: usize, field: &str, message: impl Into<String>) -> Self {
        Rejection {
            line,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}
