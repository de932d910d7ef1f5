//! Where an incident's sources disagree (docs/DEDUP.md, "Conflicts"). Merging keeps
//! every claim; the canonical values pick one answer; `conflicts` shows the question:
//! for the loss, the date and the chains, each claim's value and its source, whenever
//! the claims do not agree.
//!
//! - loss: known amounts more than 5 % apart (sources round; a larger gap is a
//!   disagreement about the loss);
//! - date: days more than one apart (sources a day apart date the exploit and its
//!   discovery);
//! - chains: claims that name chains and name different sets (a claim on the unknown
//!   chain names none).

use std::collections::BTreeSet;

use chrono::Duration;
use serde::Serialize;

use super::SourceClaim;

/// One field the claims disagree on, with every claim's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    /// `loss_usd`, `occurred_at` or `chains`.
    pub field: String,
    pub values: Vec<ClaimValue>,
}

/// What one claim says about a field in conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClaimValue {
    pub source: String,
    /// As the incident's own fields write it: decimal text, an RFC 3339 time, chain
    /// slugs joined by `,`.
    pub value: String,
}

/// The conflicts among `claims`, in the order loss, date, chains.
pub(crate) fn of(claims: &[SourceClaim]) -> Vec<Conflict> {
    let mut conflicts = Vec::new();
    let losses: Vec<(&SourceClaim, _)> = claims
        .iter()
        .filter_map(|c| c.loss_usd.map(|usd| (c, usd)))
        .collect();
    let disagree = losses
        .iter()
        .any(|(_, a)| losses.iter().any(|(_, b)| !a.agrees_with(b)));
    if disagree {
        conflicts.push(conflict(
            "loss_usd",
            losses.iter().map(|(c, usd)| (*c, usd.to_string())),
        ));
    }
    let days: Vec<_> = claims.iter().map(|c| c.occurred_at).collect();
    if let (Some(first), Some(last)) = (days.iter().min(), days.iter().max()) {
        if *last - *first > Duration::days(1) {
            conflicts.push(conflict(
                "occurred_at",
                claims.iter().map(|c| (c, c.occurred_at.to_rfc3339())),
            ));
        }
    }
    let named: Vec<(&SourceClaim, BTreeSet<&str>)> = claims
        .iter()
        .map(|c| {
            let chains: BTreeSet<&str> = c
                .chains
                .iter()
                .filter(|chain| !chain.is_unknown())
                .map(|chain| chain.slug())
                .collect();
            (c, chains)
        })
        .filter(|(_, chains)| !chains.is_empty())
        .collect();
    if named.windows(2).any(|pair| pair[0].1 != pair[1].1) {
        conflicts.push(conflict(
            "chains",
            named
                .iter()
                .map(|(c, chains)| (*c, chains.iter().copied().collect::<Vec<_>>().join(","))),
        ));
    }
    conflicts
}

fn conflict<'a>(field: &str, values: impl Iterator<Item = (&'a SourceClaim, String)>) -> Conflict {
    Conflict {
        field: field.to_owned(),
        values: values
            .map(|(claim, value)| ClaimValue {
                source: claim.source.clone(),
                value,
            })
            .collect(),
    }
}
