//! The dedup rule, as a decision over facts read from the database, shared by both
//! backends (docs/DEDUP.md):
//!
//! 1. A claim already stored under the same source and claim key is that claim again:
//!    unchanged if it says the same, an update of that claim otherwise.
//! 2. The same chain and transaction hash is the same incident, but only when the
//!    incident holding the hash is of the same protocol: one hash pasted onto two
//!    unrelated incidents (it happens in real data) must not merge two protocols.
//! 3. Without a shared hash: the same normalised protocol, an overlapping chain (the
//!    unknown chain of a record that named none overlaps any), dates
//!    within ±3 days and compatible amounts (within a factor of 2, when both are known)
//!    are the same incident; the closest date wins. An incident the claim's own source
//!    already reported is never a candidate: a source listing two records means two.
//! 4. Otherwise it is a new incident.

use chrono::{DateTime, Duration, Utc};
use kamiyo_domain::{IncidentDraft, Usd, UNKNOWN_CHAIN};

/// How far apart two claims' dates may be and still be one incident: sources date the
/// exploit, its discovery or its disclosure.
pub const MERGE_WINDOW_DAYS: i64 = 3;

pub(crate) fn window(draft: &IncidentDraft) -> (DateTime<Utc>, DateTime<Utc>) {
    let days = Duration::days(MERGE_WINDOW_DAYS);
    (draft.occurred_at - days, draft.occurred_at + days)
}

/// What a claim's ingestion reports for a hash that another incident already holds.
pub(crate) fn foreign_hash_warning(hash: &kamiyo_domain::TxHash) -> String {
    format!(
        "transaction {}:{} belongs to another incident; kept in this claim only",
        hash.chain, hash.hash
    )
}

/// An incident the new claim might belong to.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub chains: Vec<String>,
    pub loss_usd: Option<Usd>,
    /// Sources that already have a claim on this incident.
    pub sources: Vec<String>,
}

/// The incident holding one of the claim's hashes.
#[derive(Debug, Clone)]
pub(crate) struct HashOwner {
    pub exploit_id: i64,
    pub protocol_key: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredClaim {
    pub claim_id: i64,
    pub exploit_id: i64,
    pub draft: IncidentDraft,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    Unchanged { exploit_id: i64 },
    UpdateClaim { claim_id: i64, exploit_id: i64 },
    Merge { exploit_id: i64 },
    Insert,
}

pub(crate) fn decide(
    draft: &IncidentDraft,
    existing: Option<&StoredClaim>,
    owners: &[HashOwner],
    candidates: &[Candidate],
) -> Plan {
    if let Some(stored) = existing {
        return if stored.draft == *draft {
            Plan::Unchanged {
                exploit_id: stored.exploit_id,
            }
        } else {
            Plan::UpdateClaim {
                claim_id: stored.claim_id,
                exploit_id: stored.exploit_id,
            }
        };
    }
    if let Some(owner) = owners
        .iter()
        .find(|o| o.protocol_key == draft.protocol.key())
    {
        return Plan::Merge {
            exploit_id: owner.exploit_id,
        };
    }
    let (from, to) = window(draft);
    let best = candidates
        .iter()
        .filter(|c| c.occurred_at >= from && c.occurred_at <= to)
        // A source that lists two records separately means two incidents: its own
        // second record never merges into an incident it already reported.
        .filter(|c| !c.sources.contains(&draft.source.name))
        // A claim or an incident on the unknown chain shares a chain with any.
        .filter(|c| {
            draft.chains.iter().any(|chain| {
                chain.is_unknown()
                    || c.chains
                        .iter()
                        .any(|other| other == chain.slug() || other == UNKNOWN_CHAIN)
            })
        })
        .filter(|c| match (c.loss_usd, draft.loss_usd) {
            (Some(a), Some(b)) => a.compatible_with(&b),
            _ => true,
        })
        // Hash-holding incidents of other protocols were excluded by rule 2; a candidate
        // that holds a different hash on a shared chain is still the same hack if all
        // else agrees (sources list different transactions of one attack).
        .min_by_key(|c| {
            (
                (c.occurred_at - draft.occurred_at).num_seconds().abs(),
                c.id,
            )
        });
    match best {
        Some(candidate) => Plan::Merge {
            exploit_id: candidate.id,
        },
        None => Plan::Insert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_testkit::claim;

    fn draft(name: &str, date: &str, loss: Option<&str>, hash: Option<&str>) -> IncidentDraft {
        let claim = claim(name).source("s").date(date).loss(loss);
        match hash {
            Some(hash) => claim.hash(hash),
            None => claim,
        }
        .build()
    }

    fn candidate(id: i64, d: &IncidentDraft) -> Candidate {
        Candidate {
            id,
            occurred_at: d.occurred_at,
            chains: d.chains.iter().map(|c| c.slug().to_owned()).collect(),
            loss_usd: d.loss_usd,
            sources: vec!["other".into()],
        }
    }

    #[test]
    fn a_sources_own_second_record_is_not_merged_into_its_first() {
        let stored = draft("Ooki", "2020-02-15", Some("350000"), None);
        let second = draft("Ooki", "2020-02-18", Some("650000"), None);
        let mut same_source = candidate(4, &stored);
        same_source.sources = vec![second.source.name.clone()];
        assert_eq!(decide(&second, None, &[], &[same_source]), Plan::Insert);
    }

    #[test]
    fn same_protocol_two_days_apart_merges_and_a_month_apart_does_not() {
        let stored = draft("Euler Finance", "2023-03-13", Some("197000000"), None);
        let near = draft("EulerFinance", "2023-03-15", Some("195000000"), None);
        let far = draft("Euler", "2023-04-20", Some("1000000"), None);
        assert_eq!(
            decide(&near, None, &[], &[candidate(7, &stored)]),
            Plan::Merge { exploit_id: 7 }
        );
        assert_eq!(
            decide(&far, None, &[], &[candidate(7, &stored)]),
            Plan::Insert
        );
    }

    #[test]
    fn incompatible_amounts_do_not_merge() {
        let stored = draft("Euler", "2023-03-13", Some("197000000"), None);
        let other = draft("Euler", "2023-03-14", Some("20000"), None);
        assert_eq!(
            decide(&other, None, &[], &[candidate(1, &stored)]),
            Plan::Insert
        );
    }

    #[test]
    fn a_shared_hash_merges_only_within_one_protocol() {
        let hash = format!("0x{}", "ab".repeat(32));
        let claim = draft("Euler", "2023-03-13", None, Some(&hash));
        let owner = |key: &str| HashOwner {
            exploit_id: 3,
            protocol_key: key.into(),
        };
        assert_eq!(
            decide(&claim, None, &[owner("euler")], &[]),
            Plan::Merge { exploit_id: 3 }
        );
        assert_eq!(decide(&claim, None, &[owner("curve")], &[]), Plan::Insert);
    }

    #[test]
    fn the_same_claim_again_is_unchanged_and_a_changed_one_an_update() {
        let claim = draft("Euler", "2023-03-13", Some("1"), None);
        let stored = StoredClaim {
            claim_id: 5,
            exploit_id: 9,
            draft: claim.clone(),
        };
        assert_eq!(
            decide(&claim, Some(&stored), &[], &[]),
            Plan::Unchanged { exploit_id: 9 }
        );
        let changed = draft("Euler", "2023-03-13", Some("2"), None);
        assert_eq!(
            decide(&changed, Some(&stored), &[], &[]),
            Plan::UpdateClaim {
                claim_id: 5,
                exploit_id: 9
            }
        );
    }
}
