//! The dedup rule, as a decision over facts read from the database, shared by both
//! backends (docs/DEDUP.md):
//!
//! 1. A claim already stored under the same source and claim key is that claim again:
//!    unchanged if it says the same, an update of that claim otherwise.
//! 2. A transaction hash held by an incident whose name matches the claim's
//!    (`kamiyo_domain::identity`) and whose date is within the merge window is the same
//!    incident: one hash pasted onto two unrelated incidents, or onto a later exploit of
//!    the same protocol, must not merge them.
//!    A page both cite (a post-mortem, an article, a tweet: `identity::url_key`) is the
//!    same incident too, whatever the names, within ±7 days and with compatible amounts:
//!    a news site's editorial title meets the protocol's name that way.
//! 3. Without a shared hash, an incident within ±3 days of the same name (key, core or
//!    alias), an overlapping chain (the unknown chain of a record that named none
//!    overlaps any) and compatible amounts (within a factor of 2, when both are known);
//!    or, at most a day apart on a named chain both share, whatever the amounts say (one
//!    source's 10x typo or partial count must not split a hack). An incident the claim's own source already reported is a candidate only when that
//!    record is this one listed twice: the same name, a day apart at most, amounts that
//!    agree (within 5 %) or are unknown, and no disjoint hashes. Otherwise a source
//!    listing two records means two hacks. The closest date wins, then the oldest
//!    incident.
//! 4. Otherwise it is a new incident.

use chrono::{DateTime, Duration, Utc};
use kamiyo_domain::identity::{core, SHARED_URL_WINDOW_DAYS};

use super::join::JoinReason;
use kamiyo_domain::{Aliases, IncidentDraft, NameMatch, Usd, UNKNOWN_CHAIN};

pub use kamiyo_domain::canonical::MERGE_WINDOW_DAYS;

/// How far apart two datings of one hack commonly are (UTC, exploit or discovery): a
/// source's record listed twice, and the day within which the amounts are not asked.
const NEIGHBOUR_DAYS: i64 = 1;

/// The dates of incidents a claim can share a cited page with
/// (`kamiyo_domain::identity::SHARED_URL_WINDOW_DAYS` either side).
pub(crate) fn url_window(draft: &IncidentDraft) -> (DateTime<Utc>, DateTime<Utc>) {
    let days = Duration::days(SHARED_URL_WINDOW_DAYS);
    (draft.occurred_at - days, draft.occurred_at + days)
}

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
    /// What each of its claims says that the rule weighs.
    pub claims: Vec<CandidateClaim>,
}

#[derive(Debug, Clone)]
pub(crate) struct CandidateClaim {
    pub source: String,
    pub protocol_key: String,
    pub occurred_at: DateTime<Utc>,
    pub loss_usd: Option<Usd>,
    /// `chain:hash` of each hash it lists.
    pub hashes: Vec<String>,
}

impl Candidate {
    /// The best match of the claim's name with any of this incident's claims' names.
    fn name_match(&self, draft: &IncidentDraft, aliases: &Aliases) -> NameMatch {
        self.claims
            .iter()
            .map(|c| aliases.name_match(&c.protocol_key, draft.protocol.key()))
            .max()
            .unwrap_or(NameMatch::None)
    }

    /// Whether the claim's own source already reported this incident, and if so whether
    /// the claim is that record listed twice.
    fn own_source(&self, draft: &IncidentDraft, aliases: &Aliases) -> OwnSource {
        let own: Vec<&CandidateClaim> = self
            .claims
            .iter()
            .filter(|c| c.source == draft.source.name)
            .collect();
        if own.is_empty() {
            return OwnSource::Absent;
        }
        let hashes: Vec<String> = draft
            .tx_hashes
            .iter()
            .map(|h| format!("{}:{}", h.chain, h.hash))
            .collect();
        let listed_twice = own.iter().any(|c| {
            aliases.name_match(&c.protocol_key, draft.protocol.key()) == NameMatch::Same
                && (c.occurred_at - draft.occurred_at).num_days().abs() <= NEIGHBOUR_DAYS
                && match (c.loss_usd, draft.loss_usd) {
                    (Some(a), Some(b)) => a.agrees_with(&b),
                    _ => true,
                }
                && (c.hashes.is_empty()
                    || hashes.is_empty()
                    || c.hashes.iter().any(|h| hashes.contains(h)))
        });
        if listed_twice {
            OwnSource::ListedTwice
        } else {
            OwnSource::Another
        }
    }
}

impl Candidate {
    /// Why rule 3 joins the claim to this candidate: its own source's record listed
    /// twice, the same core, or an alias.
    fn reason(&self, draft: &IncidentDraft, aliases: &Aliases) -> JoinReason {
        if matches!(self.own_source(draft, aliases), OwnSource::ListedTwice) {
            return JoinReason::ListedTwice;
        }
        let own = core(draft.protocol.key());
        if self.claims.iter().any(|c| core(&c.protocol_key) == own) {
            JoinReason::Name
        } else {
            JoinReason::Alias
        }
    }
}

enum OwnSource {
    Absent,
    ListedTwice,
    Another,
}

/// The incident holding one of the claim's hashes, as a candidate (its name and date
/// decide whether the hash joins them).
pub(crate) type HashOwner = Candidate;

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
    Merge { exploit_id: i64, by: JoinReason },
    Insert,
}

pub(crate) fn decide(
    draft: &IncidentDraft,
    existing: Option<&StoredClaim>,
    owners: &[HashOwner],
    citing: &[Candidate],
    candidates: &[Candidate],
    aliases: &Aliases,
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
    let (from, to) = window(draft);
    let within = |c: &Candidate| c.occurred_at >= from && c.occurred_at <= to;
    if let Some(owner) = owners
        .iter()
        .find(|o| within(o) && o.name_match(draft, aliases) != NameMatch::None)
    {
        return Plan::Merge {
            exploit_id: owner.id,
            by: JoinReason::Hash,
        };
    }
    // Rule 2b: an incident with a claim that cites the same page, whatever its name.
    let (url_from, url_to) = url_window(draft);
    if let Some(cited) = citing
        .iter()
        .filter(|c| c.occurred_at >= url_from && c.occurred_at <= url_to)
        .filter(|c| match (c.loss_usd, draft.loss_usd) {
            (Some(a), Some(b)) => a.compatible_with(&b),
            _ => true,
        })
        .filter(|c| !matches!(c.own_source(draft, aliases), OwnSource::Another))
        .min_by_key(|c| {
            (
                (c.occurred_at - draft.occurred_at).num_seconds().abs(),
                c.id,
            )
        })
    {
        return Plan::Merge {
            exploit_id: cited.id,
            by: JoinReason::Page,
        };
    }
    let best = candidates
        .iter()
        .filter(|c| within(c))
        .filter_map(|c| {
            let name = c.name_match(draft, aliases);
            (name != NameMatch::None && joins(c, draft, name, aliases)).then_some((c, name))
        })
        .min_by_key(|(c, name)| {
            (
                std::cmp::Reverse(*name),
                (c.occurred_at - draft.occurred_at).num_seconds().abs(),
                c.id,
            )
        });
    match best {
        Some((candidate, _)) => Plan::Merge {
            exploit_id: candidate.id,
            by: candidate.reason(draft, aliases),
        },
        None => Plan::Insert,
    }
}

/// Rule 3 for a candidate within the window whose name matches.
fn joins(c: &Candidate, draft: &IncidentDraft, name: NameMatch, aliases: &Aliases) -> bool {
    match c.own_source(draft, aliases) {
        OwnSource::Another => return false,
        OwnSource::ListedTwice => return true,
        OwnSource::Absent => {}
    }
    let named_shared_chain = draft
        .chains
        .iter()
        .any(|chain| !chain.is_unknown() && c.chains.iter().any(|o| o == chain.slug()));
    // A claim or an incident on the unknown chain shares a chain with any.
    let chains_overlap = named_shared_chain
        || draft.chains.iter().any(|chain| chain.is_unknown())
        || c.chains.iter().any(|o| o == UNKNOWN_CHAIN);
    let amounts_compatible = match (c.loss_usd, draft.loss_usd) {
        (Some(a), Some(b)) => a.compatible_with(&b),
        _ => true,
    };
    // Sources date one hack a day apart (UTC, exploit or discovery).
    let days_apart = (c.occurred_at.date_naive() - draft.occurred_at.date_naive())
        .num_days()
        .abs();
    match name {
        NameMatch::Same => {
            chains_overlap
                && (amounts_compatible || (days_apart <= NEIGHBOUR_DAYS && named_shared_chain))
        }
        NameMatch::None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_testkit::claim;

    fn aliases() -> Aliases {
        Aliases::shipped().unwrap()
    }

    fn draft(name: &str, date: &str, loss: Option<&str>, hash: Option<&str>) -> IncidentDraft {
        let claim = claim(name).source("s").date(date).loss(loss);
        match hash {
            Some(hash) => claim.hash(hash),
            None => claim,
        }
        .build()
    }

    fn candidate_of(id: i64, source: &str, d: &IncidentDraft) -> Candidate {
        Candidate {
            id,
            occurred_at: d.occurred_at,
            chains: d.chains.iter().map(|c| c.slug().to_owned()).collect(),
            loss_usd: d.loss_usd,
            claims: vec![CandidateClaim {
                source: source.into(),
                protocol_key: d.protocol.key().into(),
                occurred_at: d.occurred_at,
                loss_usd: d.loss_usd,
                hashes: d
                    .tx_hashes
                    .iter()
                    .map(|h| format!("{}:{}", h.chain, h.hash))
                    .collect(),
            }],
        }
    }

    fn candidate(id: i64, d: &IncidentDraft) -> Candidate {
        candidate_of(id, "other", d)
    }

    fn decide_among(claim: &IncidentDraft, candidates: &[Candidate]) -> Plan {
        decide(claim, None, &[], &[], candidates, &aliases())
    }

    #[test]
    fn a_sources_own_second_record_is_not_merged_into_its_first() {
        let stored = draft("Ooki", "2020-02-15", Some("350000"), None);
        let second = draft("Ooki", "2020-02-18", Some("650000"), None);
        let same_source = candidate_of(4, &second.source.name, &stored);
        assert_eq!(decide_among(&second, &[same_source]), Plan::Insert);
    }

    #[test]
    fn a_source_listing_one_hack_twice_gives_one_incident_and_two_hacks_a_day_stay_two() {
        let first = draft("Merlin Labs", "2021-05-26", Some("680000"), None);
        let again = draft("Merlin", "2021-05-27", Some("680000"), None);
        let unknown = draft("Merlin", "2021-05-26", None, None);
        let other_hack = draft("Merlin", "2021-05-26", Some("550000"), None);
        let own = candidate_of(2, &first.source.name, &first);
        assert_eq!(
            decide_among(&again, std::slice::from_ref(&own)),
            Plan::Merge {
                exploit_id: 2,
                by: JoinReason::ListedTwice
            }
        );
        assert_eq!(
            decide_among(&unknown, std::slice::from_ref(&own)),
            Plan::Merge {
                exploit_id: 2,
                by: JoinReason::ListedTwice
            }
        );
        assert_eq!(decide_among(&other_hack, &[own]), Plan::Insert);
        // Different hashes: two hacks, whatever the amounts.
        let h = |b: &str| format!("0x{}", b.repeat(32));
        let hashed = draft("Merlin", "2021-05-26", Some("680000"), Some(&h("aa")));
        let other = draft("Merlin", "2021-05-26", Some("680000"), Some(&h("bb")));
        let own = candidate_of(3, &hashed.source.name, &hashed);
        assert_eq!(decide_among(&other, &[own]), Plan::Insert);
    }

    #[test]
    fn same_protocol_two_days_apart_merges_and_a_month_apart_does_not() {
        let stored = draft("Euler Finance", "2023-03-13", Some("197000000"), None);
        let near = draft("EulerFinance", "2023-03-15", Some("195000000"), None);
        let far = draft("Euler", "2023-04-20", Some("1000000"), None);
        assert_eq!(
            decide_among(&near, &[candidate(7, &stored)]),
            Plan::Merge {
                exploit_id: 7,
                by: JoinReason::Name
            }
        );
        assert_eq!(decide_among(&far, &[candidate(7, &stored)]), Plan::Insert);
    }

    #[test]
    fn incompatible_amounts_do_not_merge_unless_the_name_day_and_chain_agree() {
        let stored = draft("Euler", "2023-03-13", Some("197000000"), None);
        let two_days = draft("Euler", "2023-03-15", Some("19700000"), None);
        assert_eq!(
            decide_among(&two_days, &[candidate(1, &stored)]),
            Plan::Insert
        );
        let typo = draft("Euler Finance", "2023-03-13", Some("19700000"), None);
        assert_eq!(
            decide_among(&typo, &[candidate(1, &stored)]),
            Plan::Merge {
                exploit_id: 1,
                by: JoinReason::Name
            }
        );
    }

    #[test]
    fn names_meet_by_core_and_alias_and_only_so() {
        let stored = draft("Templedao", "2022-10-11", Some("2300000"), None);
        let camel = draft("TempleDAO", "2022-10-12", Some("2340000"), None);
        assert_eq!(
            decide_among(&camel, &[candidate(5, &stored)]),
            Plan::Merge {
                exploit_id: 5,
                by: JoinReason::Name
            }
        );
        let mim = draft("MIMSpell", "2024-01-30", Some("6500000"), None);
        let abra = draft("Abracadabra", "2024-01-31", Some("6490000"), None);
        assert_eq!(
            decide_among(&abra, &[candidate(6, &mim)]),
            Plan::Merge {
                exploit_id: 6,
                by: JoinReason::Alias
            }
        );
        let unrelated = draft("Eulith", "2023-03-13", Some("197000000"), None);
        let euler = draft("Euler", "2023-03-13", Some("197000000"), None);
        assert_eq!(
            decide_among(&unrelated, &[candidate(9, &euler)]),
            Plan::Insert
        );
    }

    #[test]
    fn a_shared_hash_merges_only_a_matching_name_within_the_window() {
        let hash = format!("0x{}", "ab".repeat(32));
        let claim = draft("Euler", "2023-03-13", None, Some(&hash));
        let owner = |name: &str, date: &str| candidate(3, &draft(name, date, None, None));
        let merge = |owner: Candidate| decide(&claim, None, &[owner], &[], &[], &aliases());
        assert_eq!(
            merge(owner("Euler", "2023-03-14")),
            Plan::Merge {
                exploit_id: 3,
                by: JoinReason::Hash
            }
        );
        assert_eq!(merge(owner("Curve", "2023-03-13")), Plan::Insert);
        assert_eq!(
            merge(owner("Euler", "2023-04-13")),
            Plan::Insert,
            "a hash pasted onto a claim a month away"
        );
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
            decide(&claim, Some(&stored), &[], &[], &[], &aliases()),
            Plan::Unchanged { exploit_id: 9 }
        );
        let changed = draft("Euler", "2023-03-13", Some("2"), None);
        assert_eq!(
            decide(&changed, Some(&stored), &[], &[], &[], &aliases()),
            Plan::UpdateClaim {
                claim_id: 5,
                exploit_id: 9
            }
        );
    }
}
