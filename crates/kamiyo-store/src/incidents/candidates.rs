//! The review queue: pairs of incidents the rules keep apart although the evidence
//! between them comes close to what joins (docs/DEDUP.md, "Review queue"), for a person
//! to merge (`kamiyo incident merge`) or leave apart.
//!
//! Incidents are compared with the ones within `window_days` of them, by their canonical
//! values, on the points of the evidence score (`provenance::points`) plus a point band
//! for names that are alike without matching (`identity::similarity`). Pairs a curator
//! already split apart are left out.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use kamiyo_domain::identity::{core, similarity};
use kamiyo_domain::{Aliases, NameMatch, Usd};
use serde::Serialize;

use super::curation::{Curation, Decision};
use super::provenance::points;
use crate::error::StoreError;

/// Names at least this alike (`identity::similarity`) are evidence.
pub const SIMILAR_NAMES: f64 = 0.85;
/// Points for alike names that do not match.
pub const SIMILAR_NAME_POINTS: u32 = 10;
/// Pairs scoring at least this (and kept apart) are listed.
pub const DEFAULT_MIN_SCORE: u32 = 25;
pub const DEFAULT_WINDOW_DAYS: i64 = 7;
pub const MAX_WINDOW_DAYS: i64 = 30;

/// An incident as the queue shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CandidateIncident {
    pub id: i64,
    pub protocol: String,
    pub occurred_at: DateTime<Utc>,
    #[schema(value_type = Option<String>)]
    pub loss_usd: Option<Usd>,
    pub chains: Vec<String>,
}

/// Two incidents that may be one hack.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MergeCandidate {
    pub a: CandidateIncident,
    pub b: CandidateIncident,
    /// The evidence points they share (the merge threshold is `points::THRESHOLD`).
    pub score: u32,
    /// What they share, in words.
    pub evidence: Vec<String>,
}

/// The facts about one stored incident that the queue weighs.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub incident: CandidateIncident,
    pub protocol_key: String,
}

/// The pairs scoring at least `min_score` among `incidents` within `window_days` of each
/// other, best first (then the older pair), at most `limit`; pairs `decisions` keep apart
/// are left out (`claims` maps claim ids to their incidents).
pub(crate) fn find(
    mut incidents: Vec<Facts>,
    aliases: &Aliases,
    decisions: &[Decision],
    claims: &HashMap<i64, i64>,
    window_days: i64,
    min_score: u32,
    limit: usize,
) -> Vec<MergeCandidate> {
    let apart = separated(decisions, claims);
    incidents.sort_by_key(|f| (f.incident.occurred_at, f.incident.id));
    let window = Duration::days(window_days);
    let mut found = Vec::new();
    for (i, a) in incidents.iter().enumerate() {
        for b in incidents[i + 1..]
            .iter()
            .take_while(|b| b.incident.occurred_at - a.incident.occurred_at <= window)
        {
            let pair = (
                a.incident.id.min(b.incident.id),
                a.incident.id.max(b.incident.id),
            );
            if apart.contains(&pair) {
                continue;
            }
            let (score, evidence) = weigh(a, b, aliases);
            if score >= min_score {
                found.push(MergeCandidate {
                    a: a.incident.clone(),
                    b: b.incident.clone(),
                    score,
                    evidence,
                });
            }
        }
    }
    found.sort_by(|x, y| {
        y.score
            .cmp(&x.score)
            .then(x.a.occurred_at.cmp(&y.a.occurred_at))
            .then(x.a.id.cmp(&y.a.id))
    });
    found.truncate(limit);
    found
}

/// Pairs of incidents holding claims a split keeps apart.
fn separated(decisions: &[Decision], claims: &HashMap<i64, i64>) -> HashSet<(i64, i64)> {
    let curation: Curation<i64> = Curation::new(decisions);
    let mut by_group: HashMap<usize, HashSet<i64>> = HashMap::new();
    for (claim, incident) in claims {
        if let Some(group) = curation.group(claim) {
            by_group.entry(group).or_default().insert(*incident);
        }
    }
    let mut apart = HashSet::new();
    for (g, left) in &by_group {
        for (h, right) in &by_group {
            if g < h && curation.are_apart(*g, *h) {
                for a in left {
                    for b in right {
                        apart.insert(((*a).min(*b), (*a).max(*b)));
                    }
                }
            }
        }
    }
    apart
}

/// The points two incidents share, and what they are.
fn weigh(a: &Facts, b: &Facts, aliases: &Aliases) -> (u32, Vec<String>) {
    let mut score = 0;
    let mut evidence = Vec::new();
    let (ka, kb) = (&a.protocol_key, &b.protocol_key);
    if ka == kb {
        score += points::SAME_NAME;
        evidence.push("the same protocol key".to_owned());
    } else if core(ka) == core(kb) {
        score += points::SAME_CORE;
        evidence.push(format!("names of one core (`{}`)", core(ka)));
    } else if aliases.name_match(ka, kb) == NameMatch::Same {
        score += points::ALIAS;
        evidence.push("aliases of one protocol".to_owned());
    } else {
        let alike = similarity(ka, kb);
        if alike < SIMILAR_NAMES {
            // Without any name evidence a pair is two hacks on one day, not a question.
            return (0, evidence);
        }
        score += SIMILAR_NAME_POINTS;
        evidence.push(format!("alike names ({alike:.2})"));
    }
    let days = (a.incident.occurred_at - b.incident.occurred_at)
        .num_days()
        .abs();
    let same_day = a.incident.occurred_at.date_naive() == b.incident.occurred_at.date_naive();
    score += match days {
        0 if same_day => points::SAME_DAY,
        0 | 1 => points::WITHIN_A_DAY,
        d if d <= kamiyo_domain::canonical::MERGE_WINDOW_DAYS => points::WITHIN_THE_WINDOW,
        _ => 0,
    };
    evidence.push(match days {
        0 if same_day => "the same day".to_owned(),
        d => format!("{d} days apart"),
    });
    let named = |f: &Facts| {
        f.incident
            .chains
            .iter()
            .filter(|c| c.as_str() != kamiyo_domain::UNKNOWN_CHAIN)
            .cloned()
            .collect::<Vec<_>>()
    };
    let shared: Vec<String> = named(a)
        .into_iter()
        .filter(|c| named(b).contains(c))
        .collect();
    if !shared.is_empty() {
        score += points::SHARED_CHAIN;
        evidence.push(format!("on {}", shared.join(", ")));
    }
    match (a.incident.loss_usd, b.incident.loss_usd) {
        (Some(x), Some(y)) if x.agrees_with(&y) => {
            score += points::AMOUNTS_AGREE;
            evidence.push("losses within 5 %".to_owned());
        }
        (Some(x), Some(y)) if x.compatible_with(&y) => {
            score += points::AMOUNTS_COMPATIBLE;
            evidence.push("losses within a factor of 2".to_owned());
        }
        (Some(_), Some(_)) => evidence.push("losses more than 2x apart".to_owned()),
        _ => {}
    }
    (score, evidence)
}

/// Reads back an `exploits` row as the queue needs it.
pub(crate) fn facts_row(row: &dyn crate::row::DriverRow) -> Result<Facts, StoreError> {
    let f = crate::row::Fields::of("exploits", row);
    let loss = f
        .opt_text("amount_usd")?
        .map(|t| {
            Usd::parse("amount_usd", &t)
                .map_err(|e| StoreError::corrupt("exploits", "amount_usd", format!("{t:?}: {e}")))
        })
        .transpose()?;
    Ok(Facts {
        incident: CandidateIncident {
            id: f.int("id")?,
            protocol: f.text("protocol")?,
            occurred_at: f.time("occurred_at")?,
            loss_usd: loss,
            chains: vec![f.text("chain")?],
        },
        protocol_key: f.text("protocol_key")?,
    })
}
