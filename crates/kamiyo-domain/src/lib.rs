//! Kamiyo's domain: pure types and rules, no I/O. Every value here is validated on the
//! way in (`parse`, `TryFrom`), so code holding one never re-checks it.
//!
//! - [`chain`]: chains and their aliases, hash families.
//! - [`protocol`]: protocol display names and the keys under which spellings meet.
//! - [`money`]: non-negative decimal USD amounts.
//! - [`attack`]: the two-level attack taxonomy and the classifier for source text.
//! - [`tx`]: transaction hashes tied to a chain.
//! - [`incident`]: a source's claim, as input and validated; [`when`]: source dates.
//! - [`tier`]: tiers, their limits and the configured tier table.
//! - [`limits`]: the most one claim may carry; `input_rules`: the rules every text field
//!   of a claim obeys (no control characters, those limits, web URLs only).

pub mod account;
pub mod alert_filter;
pub mod attack;
pub mod canonical;
pub mod chain;
mod error;
pub mod identity;
pub mod incident;
mod input_rules;
pub mod input_schema;
pub mod limits;
pub mod money;
pub mod protocol;
pub mod reputation;
pub mod submission;
pub mod tier;
pub mod tx;
pub mod when;

pub use account::{Currency, Email, PaymentStatus, Role};
pub use attack::{AttackClass, AttackType};
pub use chain::{Chain, ChainFamily, UNKNOWN_CHAIN};
pub use error::FieldError;
pub use identity::{Aliases, NameMatch};
pub use incident::{IncidentDraft, IncidentInput, IncidentStatus, SourceRef, TxHashInput};
pub use money::Usd;
pub use protocol::ProtocolName;
pub use reputation::{ReputationRules, SubmissionStep};
pub use submission::{SubmissionInput, ValidSubmission};
pub use tier::{Tier, TierLimits, TierTable, TierTableError};
pub use tx::TxHash;
