//! Why a claim is part of its incident, as the merge rule decided it (docs/DEDUP.md,
//! "When is a claim the same incident?"), kept with the claim
//! (`exploit_sources.joined_by`, migration 0008) and shown with it.

use serde::Serialize;

use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinReason {
    /// The claim created the incident.
    First,
    /// A transaction hash the incident holds (rule 2).
    Hash,
    /// A page both cite (rule 2).
    Page,
    /// The same name (key or core), within the window, on an overlapping chain (rule 3).
    Name,
    /// An alias of the incident's name (rule 3, through the alias table).
    Alias,
    /// The claim's own source listed this record twice (rule 3).
    ListedTwice,
    /// A curator's decision put it here (`exploit_sources.curated_by` names it; not a
    /// `joined_by` value: the rule did not join it).
    Curated,
}

impl JoinReason {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinReason::First => "first",
            JoinReason::Hash => "hash",
            JoinReason::Page => "page",
            JoinReason::Name => "name",
            JoinReason::Alias => "alias",
            JoinReason::ListedTwice => "listed_twice",
            JoinReason::Curated => "curated",
        }
    }

    /// As `exploit_sources.joined_by` holds it: a curated claim has none there.
    pub(crate) fn column(self) -> Option<&'static str> {
        match self {
            JoinReason::Curated => None,
            other => Some(other.as_str()),
        }
    }

    /// A stored value; anything else is corrupt data, named.
    pub(crate) fn parse(text: &str) -> Result<JoinReason, StoreError> {
        [
            JoinReason::First,
            JoinReason::Hash,
            JoinReason::Page,
            JoinReason::Name,
            JoinReason::Alias,
            JoinReason::ListedTwice,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
        .ok_or_else(|| StoreError::corrupt("exploit_sources", "joined_by", format!("{text:?}")))
    }
}
