//! Where each canonical value came from, and how strongly each claim is tied to the rest
//! of its incident (docs/DEDUP.md, "Why a claim joined"). Both are computed when an
//! incident is read, from its claims in first-seen order, as `canonical::derive` reads
//! them: nothing is stored twice.

use kamiyo_domain::identity::{core, url_key};
use kamiyo_domain::protocol::protocol_key;
use serde::Serialize;

use super::{IncidentSummary, SourceClaim};

/// Which claim gave one canonical value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldSource {
    /// `protocol`, `occurred_at`, `loss_usd`, `recovered_usd`, `chain` (the primary
    /// chain) or `attack_type`.
    pub field: String,
    /// The claim's id (`sources[].id`).
    pub claim: i64,
    pub source: String,
}

/// The first claim, in first-seen order, holding each canonical value (the one
/// `canonical::derive` takes it from: the first name, the earliest date of the window,
/// the lower median loss, the largest recovery, the first claim naming the primary chain,
/// the first known attack type). A value no claim holds (none known) has no entry.
pub(crate) fn of(incident: &IncidentSummary, claims: &[SourceClaim]) -> Vec<FieldSource> {
    let mut sources = Vec::new();
    let mut from = |field: &str, found: Option<&SourceClaim>| {
        if let Some(claim) = found {
            sources.push(FieldSource {
                field: field.to_owned(),
                claim: claim.id,
                source: claim.source.clone(),
            });
        }
    };
    from("protocol", claims.first());
    from(
        "occurred_at",
        claims
            .iter()
            .find(|c| c.occurred_at == incident.occurred_at),
    );
    from(
        "loss_usd",
        incident
            .loss_usd
            .and_then(|loss| claims.iter().find(|c| c.loss_usd == Some(loss))),
    );
    from(
        "recovered_usd",
        incident
            .recovered_usd
            .and_then(|usd| claims.iter().find(|c| c.recovered_usd == Some(usd))),
    );
    from(
        "chain",
        incident
            .chains
            .first()
            .and_then(|chain| claims.iter().find(|c| c.chains.contains(chain))),
    );
    from(
        "attack_type",
        claims
            .iter()
            .find(|c| c.attack_type == incident.attack_type),
    );
    sources
}

/// Points each kind of evidence gives (docs/DEDUP.md, "Evidence score").
pub mod points {
    pub const SHARED_HASH: u32 = 40;
    pub const SHARED_PAGE: u32 = 35;
    pub const SAME_NAME: u32 = 30;
    pub const SAME_CORE: u32 = 25;
    pub const ALIAS: u32 = 20;
    pub const SAME_DAY: u32 = 15;
    pub const WITHIN_A_DAY: u32 = 10;
    pub const WITHIN_THE_WINDOW: u32 = 5;
    pub const SHARED_CHAIN: u32 = 10;
    pub const AMOUNTS_AGREE: u32 = 10;
    pub const AMOUNTS_COMPATIBLE: u32 = 5;
    /// What the rule's weakest join by name scores: the same core, within the window, a
    /// shared chain (25 + 5 + 10).
    pub const THRESHOLD: u32 = 40;
}

/// How strongly two claims say they are one hack: the sum of the evidence points they
/// share (a claim with itself is not scored).
pub(crate) fn pair_score(a: &SourceClaim, b: &SourceClaim, same_alias_group: bool) -> u32 {
    use points::*;
    let mut score = 0;
    if a.tx_hashes.iter().any(|h| b.tx_hashes.contains(h)) {
        score += SHARED_HASH;
    }
    let page = |c: &SourceClaim| c.url.as_deref().and_then(url_key);
    if page(a).is_some() && page(a) == page(b) {
        score += SHARED_PAGE;
    }
    let (key_a, key_b) = (
        protocol_key(&a.reported_name),
        protocol_key(&b.reported_name),
    );
    score += if key_a == key_b {
        SAME_NAME
    } else if core(&key_a) == core(&key_b) {
        SAME_CORE
    } else if same_alias_group {
        ALIAS
    } else {
        0
    };
    let days = (a.occurred_at - b.occurred_at).num_days().abs();
    score += match days {
        0 if a.occurred_at.date_naive() == b.occurred_at.date_naive() => SAME_DAY,
        0 | 1 => WITHIN_A_DAY,
        d if d <= kamiyo_domain::canonical::MERGE_WINDOW_DAYS => WITHIN_THE_WINDOW,
        _ => 0,
    };
    let named = |c: &SourceClaim| {
        c.chains
            .iter()
            .filter(|ch| !ch.is_unknown())
            .cloned()
            .collect::<Vec<_>>()
    };
    if named(a).iter().any(|ch| named(b).contains(ch)) {
        score += SHARED_CHAIN;
    }
    if let (Some(x), Some(y)) = (a.loss_usd, b.loss_usd) {
        if x.agrees_with(&y) {
            score += AMOUNTS_AGREE;
        } else if x.compatible_with(&y) {
            score += AMOUNTS_COMPATIBLE;
        }
    }
    score
}

/// Each claim's evidence score: its best pair score with another claim of the incident
/// (none for an incident of one claim). `same_group` says whether two reported names are
/// one protocol by the alias table.
pub(crate) fn scores(
    claims: &[SourceClaim],
    same_group: impl Fn(&str, &str) -> bool,
) -> Vec<Option<u32>> {
    claims
        .iter()
        .enumerate()
        .map(|(i, a)| {
            claims
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, b)| pair_score(a, b, same_group(&a.reported_name, &b.reported_name)))
                .max()
        })
        .collect()
}
