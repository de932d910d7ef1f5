//! An incident's canonical values, derived from every source's claim about it. Merging
//! never overwrites a claim; it re-derives these values from all of them:
//!
//! - protocol name: the first claim's (claims in the order they were first seen);
//! - occurred at: the earliest claimed time (exploit before disclosure) among the claims
//!   within the merge window of the median claim's: one claim dated a year off (a typo, a
//!   hash pasted from another exploit) never moves the incident's date;
//! - loss: the lower median of the known amounts (robust to one source's 10x typo once
//!   three sources speak; with two, the lower, since over-reporting is the common
//!   error); unknown when no claim knows it;
//! - recovered: the largest known amount;
//! - chains and hashes: the union, the first claim's primary chain first; the unknown
//!   chain only when no claim names one, and a hash on the unknown chain only when no
//!   claim places it on a chain;
//! - attack type: the first claim's that is not `unknown`; its raw text with it;
//! - flags: set when any claim sets them; status and description: the first claim's
//!   (description: the first non-empty one).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::attack::AttackType;
use crate::chain::Chain;
use crate::incident::{IncidentDraft, IncidentStatus};
use crate::money::Usd;
use crate::tx::TxHash;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canonical {
    pub protocol: String,
    pub protocol_key: String,
    pub chains: Vec<Chain>,
    pub occurred_at: DateTime<Utc>,
    pub loss_usd: Option<Usd>,
    pub recovered_usd: Option<Usd>,
    pub attack_type: AttackType,
    pub attack_text: Option<String>,
    pub flash_loan: bool,
    pub bridge: bool,
    pub tx_hashes: Vec<TxHash>,
    pub status: IncidentStatus,
    pub description: Option<String>,
    pub source_url: Option<String>,
}

/// How far apart two claims' dates may be and still be one incident: sources date the
/// exploit, its discovery or its disclosure.
pub const MERGE_WINDOW_DAYS: i64 = 3;

/// The earliest claimed time within [`MERGE_WINDOW_DAYS`] of the (lower) median one.
fn occurred_at(claims: &[IncidentDraft]) -> Option<DateTime<Utc>> {
    let mut dates: Vec<DateTime<Utc>> = claims.iter().map(|c| c.occurred_at).collect();
    dates.sort();
    let median = *dates.get(dates.len().checked_sub(1)? / 2)?;
    dates
        .into_iter()
        .find(|date| median - *date <= chrono::Duration::days(MERGE_WINDOW_DAYS))
}

/// Derives the canonical values; `claims` in first-seen order, at least one.
pub fn derive(claims: &[IncidentDraft]) -> Option<Canonical> {
    let first = claims.first()?;
    let mut chains: Vec<Chain> = Vec::new();
    let mut tx_hashes: Vec<TxHash> = Vec::new();
    for claim in claims {
        for chain in &claim.chains {
            if !chains.contains(chain) {
                chains.push(chain.clone());
            }
        }
        for hash in &claim.tx_hashes {
            if !tx_hashes.contains(hash) {
                tx_hashes.push(hash.clone());
            }
        }
    }
    // The unknown chain says only that some claim named none: once another claim names
    // a chain it is not one of the incident's, and a hash it holds that another claim
    // places on a chain is that one.
    if chains.iter().any(|c| !c.is_unknown()) {
        chains.retain(|c| !c.is_unknown());
    }
    let placed: Vec<String> = tx_hashes
        .iter()
        .filter(|h| !h.chain.is_unknown())
        .map(|h| h.hash.clone())
        .collect();
    tx_hashes.retain(|h| !h.chain.is_unknown() || !placed.contains(&h.hash));
    let mut losses: Vec<Usd> = claims.iter().filter_map(|c| c.loss_usd).collect();
    losses.sort();
    let loss_usd = losses.get(losses.len().saturating_sub(1) / 2).copied();
    let attack = claims
        .iter()
        .find(|c| c.attack_type != AttackType::Unknown)
        .unwrap_or(first);
    Some(Canonical {
        protocol: first.protocol.display().to_owned(),
        protocol_key: first.protocol.key().to_owned(),
        chains,
        occurred_at: occurred_at(claims).unwrap_or(first.occurred_at),
        loss_usd,
        recovered_usd: claims.iter().filter_map(|c| c.recovered_usd).max(),
        attack_type: attack.attack_type,
        attack_text: attack.attack_text.clone(),
        flash_loan: claims.iter().any(|c| c.flash_loan),
        bridge: claims.iter().any(|c| c.bridge),
        tx_hashes,
        status: first.status,
        description: claims.iter().find_map(|c| c.description.clone()),
        source_url: claims.iter().find_map(|c| c.source.url.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::IncidentInput;
    use chrono::TimeZone;

    fn claim(source: &str, name: &str, date: &str, loss: Option<&str>) -> IncidentDraft {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        IncidentDraft::from_input(
            IncidentInput {
                source: Some(source.into()),
                protocol: Some(name.into()),
                chains: vec!["ethereum".into()],
                date: Some(date.into()),
                loss_usd: loss.map(Into::into),
                ..IncidentInput::default()
            },
            now,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn earliest_date_lower_median_loss_first_name() {
        let claims = [
            claim("a", "Euler Finance", "2023-03-14", Some("197000000")),
            claim("b", "EulerFinance", "2023-03-13", Some("1970000000")),
            claim("c", "Euler", "2023-03-15", Some("195000000")),
        ];
        let canonical = derive(&claims).unwrap();
        assert_eq!(canonical.protocol, "Euler Finance");
        assert_eq!(
            canonical.occurred_at.format("%Y-%m-%d").to_string(),
            "2023-03-13"
        );
        assert_eq!(
            canonical.loss_usd.unwrap().to_string(),
            "197000000.00",
            "the 10x typo is outvoted"
        );
    }

    #[test]
    fn unknown_loss_stays_unknown() {
        let canonical = derive(&[claim("a", "X", "2023-01-01", None)]).unwrap();
        assert_eq!(canonical.loss_usd, None);
        assert!(derive(&[]).is_none());
    }

    #[test]
    fn a_claim_dated_a_year_off_does_not_move_the_incident_s_date() {
        let claims = [
            claim("a", "Euler", "2023-03-14", None),
            claim("b", "Euler", "2022-03-13", None),
            claim("c", "Euler", "2023-03-13", None),
        ];
        let canonical = derive(&claims).unwrap();
        assert_eq!(
            canonical.occurred_at.format("%Y-%m-%d").to_string(),
            "2023-03-13",
            "the earliest date near the median, not the outlier"
        );
    }
}
