//! Remerge: every stored claim decided again, from nothing, under the current rules and
//! aliases, in the order the claims were first seen (so the grouping is the one an
//! import of the same inputs into an empty database gives), then written as the
//! difference from what is stored, in one transaction.
//!
//! Ids are kept where they can be: a new group takes the stored id that held most of
//! its claims (ties: the lower id); a stored incident none of the groups took is retired
//! into the group that took most of its claims and stays resolvable through
//! `incident_redirects`; a group with no stored id left (a piece split off) gets a new
//! one. Groups whose claims and values are unchanged are not written at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use kamiyo_domain::IncidentDraft;
use serde::Serialize;

use super::claims::StoredClaimRow;
use super::curation::{ClaimRef, Curation, Decision, DecisionKind};
use super::events::{self, EventKind, NewEvent, Seen};
use super::ingest::{IngestIo, Rules};
use super::join::JoinReason;
use super::replay::{Changes, Group, HashKey, IncidentRow, Owners, Replay};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{Param, Sql, Step};

/// An incident as stored: its row, the hashes it holds and its chains (both sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredIncident {
    pub row: IncidentRow,
    pub held: Vec<HashKey>,
    pub chains: Vec<String>,
}

/// What a backend does for a remerge, inside one write transaction it opened.
pub(crate) trait RegroupIo: IngestIo {
    /// Holds off every ingest until the transaction ends (readers are not blocked).
    fn lock_all(&mut self) -> impl Future<Output = Result<(), StoreError>>;

    /// Deletes the pending maintenance task `name`; whether it was pending.
    fn take_task(&mut self, name: &str) -> impl Future<Output = Result<bool, StoreError>>;

    /// Every claim, in first-seen order (then by id).
    fn all_claims(&mut self) -> impl Future<Output = Result<Vec<StoredClaimRow>, StoreError>>;

    /// Every incident as stored.
    fn stored_incidents(
        &mut self,
    ) -> impl Future<Output = Result<HashMap<i64, StoredIncident>, StoreError>>;

    /// Every curator's decision, in the order they were taken.
    fn decisions(&mut self) -> impl Future<Output = Result<Vec<Decision>, StoreError>>;

    /// Stores a decision; its id.
    fn insert_decision(
        &mut self,
        decision: &NewDecision,
    ) -> impl Future<Output = Result<i64, StoreError>>;

    /// Writes `regroup`: releases, then [`Regroup::changes`], moves, the community rows
    /// of retired incidents handed to their survivors ([`repoint_community`]),
    /// retirements, and emptied incidents deleted.
    fn apply_regroup(&mut self, regroup: &Regroup) -> impl Future<Output = Result<(), StoreError>>;

    /// `steps` in order in this transaction; the rows the last changed. A guarded step
    /// that finds the database otherwise refuses the whole.
    fn run_steps(&mut self, steps: Vec<Step>) -> impl Future<Output = Result<u64, StoreError>>;

    /// The SQL dialect the transaction speaks.
    fn dialect(&self) -> Dialect;
}

/// The writes of a remerge, in the order a backend makes them.
#[derive(Debug, Default)]
pub(crate) struct Regroup {
    /// Stored incidents rewritten or retired: their hashes and chains are deleted and
    /// their primary hash cleared first, so that a hash can change hands in any order.
    pub released: Vec<i64>,
    /// Rows of rewritten incidents and new ones, with their hashes and chains.
    pub changes: Changes,
    /// Every claim that changes incident.
    pub moves: Vec<Move>,
    /// `(retired id, surviving id)`: the retired row is deleted once its claims moved,
    /// and redirects to it (and it) point to the survivor.
    pub retired: Vec<(i64, i64)>,
    /// Why the retired incidents were retired, as `incident_redirects.reason` says it.
    pub reason: &'static str,
    /// Stored incidents left without a claim (their last one withdrawn): deleted, with
    /// nothing to redirect to.
    pub emptied: Vec<i64>,
}

/// A claim moved to another incident: why it joins there, as the columns hold it.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub claim: i64,
    pub exploit_id: i64,
    /// `exploit_sources.joined_by` (none for a claim a curator placed).
    pub joined_by: Option<&'static str>,
    /// `exploit_sources.curated_by`.
    pub curated_by: Option<i64>,
}

/// What a remerge runs for.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    /// An operator's `kamiyo incidents remerge`.
    Command,
    /// The maintenance task of this name, when it is pending.
    Task(&'static str),
    /// A curator's decision, stored and then respected.
    Curate(Curate),
    /// One claim taken back (a reversed community submission): `follow` runs first
    /// (its guards refuse a withdrawal made meanwhile before anything else changes), then
    /// the claim is deleted and the rest are decided again without it, in the same
    /// transaction. Its incident is written even when its values stay, with the
    /// claim's source among those it had, so that subscribers hear the source left.
    Withdraw { claim: i64, follow: Vec<Step> },
}

/// A curator's request: merge `incidents`, or split `claims` off the one incident named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curate {
    pub kind: DecisionKind,
    pub incidents: Vec<i64>,
    /// A split's claims (by id) to take out.
    pub claims: Vec<i64>,
    pub reason: String,
    /// Who decided (a user's email, or `cli` for an operator at the console).
    pub decided_by: String,
}

/// A decision as stored.
#[derive(Debug, Clone)]
pub(crate) struct NewDecision {
    pub kind: DecisionKind,
    /// Claim ids.
    pub claims: Vec<i64>,
    pub others: Vec<i64>,
    /// The same claims by source and stored claim key, for the columns a binary of the
    /// previous release reads (migration 0011).
    pub claim_pairs: Vec<ClaimRef>,
    pub other_pairs: Vec<ClaimRef>,
    pub incident_ids: Vec<i64>,
    pub reason: String,
    pub decided_by: String,
}

impl Curate {
    /// The decision this request stores, checked against the stored claims: every
    /// incident named exists, and a split's claims are some, not all, of its incident's.
    fn decision(&self, claims: &[StoredClaimRow]) -> Result<NewDecision, StoreError> {
        if self.reason.trim().is_empty() {
            return Err(StoreError::refused("reason", "must say why"));
        }
        let of = |id: i64| -> Vec<&StoredClaimRow> {
            claims.iter().filter(|c| c.exploit_id == id).collect()
        };
        for &id in &self.incidents {
            if of(id).is_empty() {
                return Err(StoreError::refused(
                    "incidents",
                    format!("incident {id} does not exist (or was merged away)"),
                ));
            }
        }
        let pair = |c: &StoredClaimRow| (c.columns.source_name.clone(), c.claim_key.clone());
        let (chosen, others): (Vec<&StoredClaimRow>, Vec<&StoredClaimRow>) = match self.kind {
            DecisionKind::Merge => {
                let distinct: BTreeSet<i64> = self.incidents.iter().copied().collect();
                if distinct.len() < 2 {
                    return Err(StoreError::refused(
                        "incidents",
                        "a merge names at least two different incidents",
                    ));
                }
                let chosen = distinct.iter().flat_map(|&id| of(id)).collect();
                (chosen, Vec::new())
            }
            DecisionKind::Split => {
                let [id] = self.incidents[..] else {
                    return Err(StoreError::refused(
                        "incidents",
                        "a split names one incident",
                    ));
                };
                let own = of(id);
                if let Some(stranger) = self
                    .claims
                    .iter()
                    .find(|c| !own.iter().any(|o| o.id == **c))
                {
                    return Err(StoreError::refused(
                        "claims",
                        format!("claim {stranger} is not a claim of incident {id}"),
                    ));
                }
                let (taken, left): (Vec<&StoredClaimRow>, Vec<&StoredClaimRow>) =
                    own.into_iter().partition(|c| self.claims.contains(&c.id));
                if taken.is_empty() || left.is_empty() {
                    return Err(StoreError::refused(
                        "claims",
                        format!("a split takes some of incident {id}'s claims, not none or all"),
                    ));
                }
                (taken, left)
            }
        };
        Ok(NewDecision {
            kind: self.kind,
            claims: chosen.iter().map(|c| c.id).collect(),
            others: others.iter().map(|c| c.id).collect(),
            claim_pairs: chosen.iter().map(|c| pair(c)).collect(),
            other_pairs: others.iter().map(|c| pair(c)).collect(),
            incident_ids: self.incidents.clone(),
            reason: self.reason.trim().to_owned(),
            decided_by: self.decided_by.clone(),
        })
    }
}

/// What a remerge changes (or, dry, would change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RemergeReport {
    /// Claims decided.
    pub claims: usize,
    pub incidents_before: usize,
    pub incidents_after: usize,
    /// Incidents that now hold claims of several stored incidents.
    pub merges: Vec<RemergeMerge>,
    /// Stored incidents whose claims now go to several incidents.
    pub splits: Vec<RemergeSplit>,
    /// Incidents that keep their claims but whose canonical values change (a rule that
    /// derives them differently, such as the protocol key they are stored under).
    pub rewritten: usize,
    /// Stored incidents left without any claim (a withdrawn claim was their last):
    /// deleted.
    pub removed: Vec<i64>,
    /// Whether it was written (false for a dry run, or when nothing changes).
    pub applied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RemergeMerge {
    /// The surviving incident (absent in a dry run when it is a new one).
    pub into: Option<i64>,
    pub protocol: String,
    /// The stored incidents whose claims it takes (other than itself).
    pub from: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RemergeSplit {
    pub from: i64,
    pub parts: Vec<RemergePart>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RemergePart {
    /// The incident the claims go to (absent in a dry run when it is a new one).
    pub id: Option<i64>,
    pub protocol: String,
    /// `source:claim key` of the stored incident's claims that go there.
    pub claims: Vec<String>,
}

/// Where one stored claim goes.
#[derive(Debug)]
struct Placed {
    claim_id: i64,
    stored_in: i64,
    label: String,
    key: (String, String),
    /// Index into `Planned::groups`.
    group: usize,
}

/// Claims of each stored incident, by the group they go to.
type Spread<'a> = HashMap<i64, HashMap<usize, Vec<&'a Placed>>>;

/// Where a group's id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupId {
    Kept(i64),
    /// The n-th new id.
    New(usize),
}

/// A remerge decided in memory, before ids are allocated.
#[derive(Debug)]
pub(crate) struct Planned {
    groups: Vec<Group>,
    ids: Vec<GroupId>,
    placed: Vec<Placed>,
    /// Indices into `placed` of each group's claims: asking every group for its claims
    /// by scanning `placed` cost a minute at 100,000 incidents.
    by_group: Vec<Vec<usize>>,
    stored: HashMap<i64, StoredIncident>,
    new_groups: usize,
    curation: Option<Arc<Curation>>,
    /// The decision this remerge runs for: what it retires is retired by curation.
    curated: Option<i64>,
    /// The claim a withdrawal took out: the incident that held it and its source.
    withdrawn: Option<(i64, String)>,
}

/// Decides every claim again from nothing (see the module's comment).
///
/// `decisions` (as stored) name claims by id; the replay knows a claim by its source and
/// the claim key it computes, which is what the decisions are translated to.
pub(crate) fn plan(
    claims: Vec<StoredClaimRow>,
    stored: HashMap<i64, StoredIncident>,
    rules: &Rules,
    decisions: &[Decision],
) -> Result<Planned, StoreError> {
    let mut drafts = Vec::with_capacity(claims.len());
    for row in claims {
        let mut draft = row.columns.into_draft()?;
        // Not a column: its claim key says it.
        draft.source.id_names_incident = IncidentDraft::key_names_incident(&row.claim_key);
        let key: ClaimRef = (draft.source.name.clone(), draft.claim_key());
        drafts.push((row.id, row.exploit_id, row.claim_key, draft, key));
    }
    let rules = if decisions.is_empty() {
        rules.clone()
    } else {
        let names: HashMap<i64, &ClaimRef> =
            drafts.iter().map(|(id, _, _, _, key)| (*id, key)).collect();
        let named: Vec<Decision<ClaimRef>> = decisions
            .iter()
            .map(|d| d.named(|id| names.get(&id).map(|key| (*key).clone())))
            .collect();
        Rules {
            curation: Some(Arc::new(Curation::new(&named))).filter(|c| !c.is_empty()),
            ..rules.clone()
        }
    };
    let mut replay = Replay::new(&[], Vec::new(), Owners::new(), rules.clone())?;
    let mut outcomes = Vec::with_capacity(drafts.len());
    for (claim_id, stored_in, claim_key, draft, key) in drafts {
        let outcome = replay.ingest(&draft)?;
        outcomes.push((claim_id, stored_in, key, outcome.exploit_id, claim_key));
    }
    let groups = replay.groups();
    let index: HashMap<i64, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.row.id, i))
        .collect();
    let placed = outcomes
        .into_iter()
        .map(|(claim_id, stored_in, key, replayed, claim_key)| {
            let group = *index
                .get(&replayed)
                .ok_or_else(|| StoreError::Invariant("a replayed claim has no incident".into()))?;
            Ok(Placed {
                claim_id,
                stored_in,
                label: format!("{}:{claim_key}", key.0),
                key,
                group,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let (ids, new_groups) = assign_ids(groups.len(), &placed);
    let mut by_group = vec![Vec::new(); groups.len()];
    for (i, p) in placed.iter().enumerate() {
        by_group[p.group].push(i);
    }
    Ok(Planned {
        groups,
        ids,
        placed,
        by_group,
        stored,
        new_groups,
        curation: rules.curation.clone(),
        curated: None,
        withdrawn: None,
    })
}

/// Each group takes the stored id that held most of its claims, most claims first, then
/// the lower id; the rest get new ids in group order.
fn assign_ids(groups: usize, placed: &[Placed]) -> (Vec<GroupId>, usize) {
    let mut votes: HashMap<(usize, i64), usize> = HashMap::new();
    for p in placed {
        *votes.entry((p.group, p.stored_in)).or_default() += 1;
    }
    let mut votes: Vec<((usize, i64), usize)> = votes.into_iter().collect();
    votes.sort_by_key(|&((group, old), count)| (std::cmp::Reverse(count), old, group));
    let mut ids: Vec<Option<GroupId>> = vec![None; groups];
    let mut taken = BTreeSet::new();
    for ((group, old), _) in votes {
        if ids[group].is_none() && taken.insert(old) {
            ids[group] = Some(GroupId::Kept(old));
        }
    }
    let mut new_groups = 0;
    let ids = ids
        .into_iter()
        .map(|id| {
            id.unwrap_or_else(|| {
                new_groups += 1;
                GroupId::New(new_groups - 1)
            })
        })
        .collect();
    (ids, new_groups)
}

impl Planned {
    /// How many new ids [`Planned::regroup`] needs.
    pub fn new_groups(&self) -> usize {
        self.new_groups
    }

    fn id(&self, group: usize, new_ids: Option<&[i64]>) -> Option<i64> {
        match self.ids.get(group)? {
            GroupId::Kept(id) => Some(*id),
            GroupId::New(n) => new_ids.and_then(|ids| ids.get(*n).copied()),
        }
    }

    /// Claims of each stored incident, by group.
    fn stored_spread(&self) -> Spread<'_> {
        let mut spread: Spread<'_> = HashMap::new();
        for p in &self.placed {
            spread
                .entry(p.stored_in)
                .or_default()
                .entry(p.group)
                .or_default()
                .push(p);
        }
        spread
    }

    /// Stored incidents that each group's claims come from.
    fn group_sources(&self) -> Vec<BTreeSet<i64>> {
        let mut sources = vec![BTreeSet::new(); self.groups.len()];
        for p in &self.placed {
            sources[p.group].insert(p.stored_in);
        }
        sources
    }

    /// Whether group `g` is stored exactly as it would be written (an incident a
    /// withdrawal took a claim from never is: its sources changed).
    fn unchanged(&self, g: usize, spread: &Spread<'_>) -> bool {
        match self.ids[g] {
            GroupId::Kept(id) => {
                self.withdrawn.as_ref().is_none_or(|(from, _)| *from != id)
                    && self.same_claims(g, spread)
                    && self.stored.get(&id) == Some(&self.written(g, id))
            }
            GroupId::New(_) => false,
        }
    }

    /// Whether group `g` keeps a stored incident's id and exactly its claims.
    fn same_claims(&self, g: usize, spread: &Spread<'_>) -> bool {
        let GroupId::Kept(id) = self.ids[g] else {
            return false;
        };
        spread
            .get(&id)
            .is_some_and(|by_group| by_group.len() == 1 && by_group.contains_key(&g))
            && self.by_group[g]
                .iter()
                .all(|&i| self.placed[i].stored_in == id)
    }

    /// Group `g` as stored under `id`.
    fn written(&self, g: usize, id: i64) -> StoredIncident {
        let group = &self.groups[g];
        let mut held = group.held.clone();
        held.sort_unstable();
        let mut chains = group.chains.clone();
        chains.sort_unstable();
        StoredIncident {
            row: IncidentRow {
                id,
                ..group.row.clone()
            },
            held,
            chains,
        }
    }

    /// Whether writing would change nothing.
    pub fn is_noop(&self) -> bool {
        let spread = self.stored_spread();
        (0..self.groups.len()).all(|g| self.unchanged(g, &spread))
            && self.stored.keys().all(|id| spread.contains_key(id))
    }

    /// The survivor of each stored incident no group kept: the group that took most of
    /// its claims (ties: the earlier group).
    fn retired(&self, spread: &Spread<'_>) -> Vec<(i64, usize)> {
        let kept: BTreeSet<i64> = self
            .ids
            .iter()
            .filter_map(|id| match id {
                GroupId::Kept(id) => Some(*id),
                GroupId::New(_) => None,
            })
            .collect();
        let mut retired: Vec<(i64, usize)> = spread
            .iter()
            .filter(|(old, _)| !kept.contains(old))
            .filter_map(|(old, by_group)| {
                by_group
                    .iter()
                    .max_by_key(|(group, claims)| (claims.len(), std::cmp::Reverse(**group)))
                    .map(|(group, _)| (*old, *group))
            })
            .collect();
        retired.sort_unstable();
        retired
    }

    /// The writes, with `new_ids` ([`Planned::new_groups`] of them) for new groups.
    pub fn regroup(&self, new_ids: &[i64]) -> Result<Regroup, StoreError> {
        let spread = self.stored_spread();
        let id_of = |g: usize| {
            self.id(g, Some(new_ids))
                .ok_or_else(|| StoreError::Invariant("too few incident ids allocated".into()))
        };
        let mut regroup = Regroup {
            reason: if self.curated.is_some() {
                "curated"
            } else {
                "remerge"
            },
            ..Regroup::default()
        };
        let joined: HashMap<&(String, String), Option<JoinReason>> = self
            .groups
            .iter()
            .flat_map(|g| g.claims.iter().map(|(key, by)| (key, *by)))
            .collect();
        for g in 0..self.groups.len() {
            if self.unchanged(g, &spread) {
                continue;
            }
            let id = id_of(g)?;
            let written = self.written(g, id);
            match self.ids[g] {
                GroupId::Kept(old) => {
                    // A kept incident whose values or sources the remerge changed (a
                    // split took claims out, an alias brought some in) is news too.
                    let sources_of = |placed: &mut dyn Iterator<Item = &Placed>| {
                        placed.map(|p| p.key.0.clone()).collect::<Vec<String>>()
                    };
                    let mut before_sources =
                        sources_of(&mut self.placed.iter().filter(|p| p.stored_in == old));
                    if let Some((_, source)) =
                        self.withdrawn.as_ref().filter(|(from, _)| *from == old)
                    {
                        before_sources.push(source.clone());
                    }
                    let after_sources =
                        sources_of(&mut self.by_group[g].iter().map(|&i| &self.placed[i]));
                    let after = Seen::of_row(
                        &written.row,
                        &self.groups[g].chains,
                        after_sources.iter().map(String::as_str),
                    );
                    if let Some(event) = self.stored.get(&old).and_then(|stored| {
                        let before = Seen::of_row(
                            &stored.row,
                            &stored.chains,
                            before_sources.iter().map(String::as_str),
                        );
                        events::updated(id, written.row.occurred_at, &before, &after)
                    }) {
                        regroup.changes.events.push(event);
                    }
                    regroup.released.push(old);
                    regroup.changes.updated.push(written.row);
                }
                GroupId::New(_) => {
                    // A piece split off is news: an incident subscribers did not know.
                    regroup.changes.events.push(NewEvent {
                        kind: EventKind::Created,
                        exploit_id: id,
                        occurred_at: written.row.occurred_at,
                        changes: None,
                    });
                    regroup
                        .changes
                        .created
                        .push((format!("split:{id}"), written.row));
                }
            }
            regroup.changes.hashes.extend(
                written
                    .held
                    .into_iter()
                    .map(|(chain, hash)| (id, chain, hash)),
            );
            regroup
                .changes
                .chains
                .extend(self.groups[g].chains.iter().map(|c| (id, c.clone())));
            for p in self.by_group[g]
                .iter()
                .map(|&i| &self.placed[i])
                .filter(|p| p.stored_in != id)
            {
                let by = joined.get(&p.key).copied().flatten();
                // Placed by a decision: it joined a claim it must share an incident
                // with, or the decision being taken names it.
                let decided = self
                    .curation
                    .as_deref()
                    .and_then(|c| c.group(&p.key).and_then(|group| c.decision(group)));
                let curated_by = decided.filter(|decision| {
                    by == Some(JoinReason::Curated) || Some(*decision) == self.curated
                });
                regroup.moves.push(Move {
                    claim: p.claim_id,
                    exploit_id: id,
                    joined_by: by.and_then(JoinReason::column),
                    curated_by,
                });
            }
        }
        let mut merged_into: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        for (old, group) in self.retired(&spread) {
            regroup.released.push(old);
            regroup.retired.push((old, id_of(group)?));
            merged_into.entry(group).or_default().push(old);
        }
        for (group, merged) in merged_into {
            regroup.changes.events.push(NewEvent {
                kind: EventKind::Merged,
                exploit_id: id_of(group)?,
                occurred_at: self.groups[group].row.occurred_at,
                changes: Some(serde_json::json!({ "merged_ids": merged })),
            });
        }
        regroup.released.sort_unstable();
        regroup.emptied = self.emptied(&spread);
        Ok(regroup)
    }

    /// Stored incidents that no claim is placed from.
    fn emptied(&self, spread: &Spread<'_>) -> Vec<i64> {
        let mut emptied: Vec<i64> = self
            .stored
            .keys()
            .filter(|id| !spread.contains_key(id))
            .copied()
            .collect();
        emptied.sort_unstable();
        emptied
    }

    /// What the plan does; `new_ids` when they were allocated (a dry run has none).
    pub fn report(&self, new_ids: Option<&[i64]>, applied: bool) -> RemergeReport {
        let spread = self.stored_spread();
        let sources = self.group_sources();
        let merges = sources
            .iter()
            .enumerate()
            .filter(|(_, from)| from.len() > 1)
            .map(|(g, from)| {
                let into = self.id(g, new_ids);
                RemergeMerge {
                    into,
                    protocol: self.groups[g].row.protocol.clone(),
                    from: from
                        .iter()
                        .copied()
                        .filter(|id| Some(*id) != into)
                        .collect(),
                }
            })
            .collect();
        let mut splits: Vec<RemergeSplit> = spread
            .iter()
            .filter(|(_, by_group)| by_group.len() > 1)
            .map(|(old, by_group)| {
                let mut parts: Vec<(usize, RemergePart)> = by_group
                    .iter()
                    .map(|(g, claims)| {
                        (
                            *g,
                            RemergePart {
                                id: self.id(*g, new_ids),
                                protocol: self.groups[*g].row.protocol.clone(),
                                claims: claims.iter().map(|p| p.label.clone()).collect(),
                            },
                        )
                    })
                    .collect();
                parts.sort_by_key(|(g, _)| *g);
                RemergeSplit {
                    from: *old,
                    parts: parts.into_iter().map(|(_, part)| part).collect(),
                }
            })
            .collect();
        splits.sort_by_key(|s| s.from);
        let rewritten = (0..self.groups.len())
            .filter(|&g| self.same_claims(g, &spread) && !self.unchanged(g, &spread))
            .count();
        RemergeReport {
            claims: self.placed.len(),
            incidents_before: self.stored.len(),
            incidents_after: self.groups.len(),
            merges,
            splits,
            rewritten,
            removed: self.emptied(&spread),
            applied,
        }
    }
}

/// What a remerge through `io` did: its report, the decision it stored (when run for
/// one), and whether anything was written (else the transaction is rolled back).
pub(crate) struct Remerged {
    pub report: RemergeReport,
    pub decision: Option<i64>,
    pub wrote: bool,
}

/// Runs a remerge through `io` under `rules` and every stored decision: `None` when run
/// for a maintenance task that is not pending (nothing was done).
pub(crate) async fn remerge<B: RegroupIo>(
    io: &mut B,
    rules: &Rules,
    apply: bool,
    trigger: &Trigger,
) -> Result<Option<Remerged>, StoreError> {
    io.lock_all().await?;
    if let Trigger::Task(name) = *trigger {
        if !io.take_task(name).await? {
            return Ok(None);
        }
    }
    let mut claims = io.all_claims().await?;
    let mut withdrawn = None;
    if let Trigger::Withdraw { claim, follow } = trigger {
        io.run_steps(follow.clone()).await?;
        let at = claims
            .iter()
            .position(|c| c.id == *claim)
            .ok_or_else(|| StoreError::refused("claim", "no such claim (withdrawn already?)"))?;
        let taken = claims.remove(at);
        io.run_steps(vec![Step::new(
            io.dialect().pick(
                "DELETE FROM exploit_sources WHERE id = $1",
                "DELETE FROM exploit_sources WHERE id = ?1",
            ),
            vec![Param::Int(*claim)],
        )
        .must_change(1, "claim", "no such claim (withdrawn already?)")])
            .await?;
        withdrawn = Some((taken.exploit_id, taken.columns.source_name));
    }
    let decision = match trigger {
        Trigger::Curate(curate) => Some(io.insert_decision(&curate.decision(&claims)?).await?),
        Trigger::Command | Trigger::Task(_) | Trigger::Withdraw { .. } => None,
    };
    let decisions = io.decisions().await?;
    let stored = io.stored_incidents().await?;
    let mut planned = plan(claims, stored, rules, &decisions)?;
    planned.curated = decision;
    planned.withdrawn = withdrawn;
    // A task done, a decision taken or a claim withdrawn is written even when no
    // incident changes.
    let must_write = !matches!(trigger, Trigger::Command);
    if !apply || planned.is_noop() {
        return Ok(Some(Remerged {
            report: planned.report(None, false),
            decision,
            wrote: apply && must_write,
        }));
    }
    let ids = io.allocate_incident_ids(planned.new_groups()).await?;
    let regroup = planned.regroup(&ids)?;
    io.apply_regroup(&regroup).await?;
    Ok(Some(Remerged {
        report: planned.report(Some(&ids), true),
        decision,
        wrote: true,
    }))
}

/// Community rows that name a retired incident, handed to its survivor before the row
/// is deleted (the foreign keys would clear them): submissions, and bounties under the
/// rule that an incident has one live bounty. Of the live bounties of the two, a paid
/// one is kept before an owed one, then the earliest; the other owed ones are cancelled
/// (a merge found them to be bounties for one hack). Two paid before the merge both
/// stay paid; the merged-away one keeps no incident (its submission names the
/// survivor). Last, every verified submission names the incident its claim is in now
/// (a split or a move may have taken the claim elsewhere).
pub(crate) fn repoint_community(retired: &[(i64, i64)], dialect: Dialect) -> Vec<Step> {
    const SUBMISSIONS: Sql = Sql {
        postgres: "UPDATE community_submissions SET exploit_id = $2 WHERE exploit_id = $1",
        sqlite: "UPDATE community_submissions SET exploit_id = ?2 WHERE exploit_id = ?1",
    };
    const CANCEL_OWED: Sql = Sql {
        postgres: "UPDATE bounties SET status = 'cancelled' \
            WHERE exploit_id IN ($1, $2) AND status = 'owed' \
              AND id <> (SELECT id FROM bounties WHERE exploit_id IN ($1, $2) AND status <> 'cancelled' \
                         ORDER BY status = 'paid' DESC, created_at, id LIMIT 1)",
        sqlite: "UPDATE bounties SET status = 'cancelled' \
            WHERE exploit_id IN (?1, ?2) AND status = 'owed' \
              AND id <> (SELECT id FROM bounties WHERE exploit_id IN (?1, ?2) AND status <> 'cancelled' \
                         ORDER BY status = 'paid' DESC, created_at, id LIMIT 1)",
    };
    const UNLINK_SECOND_PAID: Sql = Sql {
        postgres:
            "UPDATE bounties SET exploit_id = NULL WHERE exploit_id = $1 AND status = 'paid' \
            AND EXISTS (SELECT 1 FROM bounties WHERE exploit_id = $2 AND status <> 'cancelled')",
        sqlite: "UPDATE bounties SET exploit_id = NULL WHERE exploit_id = ?1 AND status = 'paid' \
            AND EXISTS (SELECT 1 FROM bounties WHERE exploit_id = ?2 AND status <> 'cancelled')",
    };
    const BOUNTIES: Sql = Sql {
        postgres: "UPDATE bounties SET exploit_id = $2 WHERE exploit_id = $1",
        sqlite: "UPDATE bounties SET exploit_id = ?2 WHERE exploit_id = ?1",
    };
    const FOLLOW_CLAIMS: Sql = Sql {
        postgres: "UPDATE community_submissions s SET exploit_id = c.exploit_id \
            FROM exploit_sources c \
            WHERE c.id = s.claim_id AND s.exploit_id IS DISTINCT FROM c.exploit_id",
        sqlite: "UPDATE community_submissions \
            SET exploit_id = (SELECT exploit_id FROM exploit_sources WHERE id = claim_id) \
            WHERE claim_id IS NOT NULL \
              AND exploit_id IS NOT (SELECT exploit_id FROM exploit_sources WHERE id = claim_id)",
    };
    retired
        .iter()
        .flat_map(|&(old, survivor)| {
            [SUBMISSIONS, CANCEL_OWED, UNLINK_SECOND_PAID, BOUNTIES].map(|sql| {
                Step::new(
                    dialect.pick(sql.postgres, sql.sqlite),
                    vec![Param::Int(old), Param::Int(survivor)],
                )
            })
        })
        .chain(std::iter::once(Step::new(
            dialect.pick(FOLLOW_CLAIMS.postgres, FOLLOW_CLAIMS.sqlite),
            Vec::new(),
        )))
        .collect()
}

/// The columns [`stored_row`] reads, as each backend selects them (money as text).
pub(crate) const POSTGRES_INCIDENT_COLUMNS: &str = "id, protocol, protocol_key, chain, tx_hash, \
     amount_usd::text AS amount_usd, recovered_usd::text AS recovered_usd, attack_class, attack_type, \
     attack_technique_raw, description, status, occurred_at, source_url, flash_loan, bridge";
pub(crate) const SQLITE_INCIDENT_COLUMNS: &str = "id, protocol, protocol_key, chain, tx_hash, \
     amount_usd, recovered_usd, attack_class, attack_type, attack_technique_raw, description, status, \
     occurred_at, source_url, flash_loan, bridge";

/// An `exploits` row selected with one of the column lists above.
pub(crate) fn stored_row<R: DriverRow + ?Sized>(row: &R) -> Result<IncidentRow, StoreError> {
    let f = Fields::of("exploits", row);
    Ok(IncidentRow {
        id: f.int("id")?,
        protocol: f.text("protocol")?,
        protocol_key: f.text("protocol_key")?,
        chain: f.text("chain")?,
        tx_hash: f.opt_text("tx_hash")?,
        amount_usd: f.opt_text("amount_usd")?,
        recovered_usd: f.opt_text("recovered_usd")?,
        attack_class: f.opt_text("attack_class")?.unwrap_or_default(),
        attack_type: f.opt_text("attack_type")?.unwrap_or_default(),
        attack_text: f.opt_text("attack_technique_raw")?,
        description: f.opt_text("description")?,
        status: f.text("status")?,
        occurred_at: f.time("occurred_at")?,
        source_url: f.opt_text("source_url")?,
        flash_loan: f.flag("flash_loan")?,
        bridge: f.flag("bridge")?,
    })
}

/// Stored incidents from their rows, held hashes `(incident, chain, hash)` and chains
/// `(incident, chain)`.
pub(crate) fn stored_incidents(
    rows: Vec<IncidentRow>,
    hashes: Vec<(i64, String, String)>,
    chains: Vec<(i64, String)>,
) -> HashMap<i64, StoredIncident> {
    let mut stored: HashMap<i64, StoredIncident> = rows
        .into_iter()
        .map(|row| {
            (
                row.id,
                StoredIncident {
                    row,
                    held: Vec::new(),
                    chains: Vec::new(),
                },
            )
        })
        .collect();
    for (id, chain, hash) in hashes {
        if let Some(incident) = stored.get_mut(&id) {
            incident.held.push((chain, hash));
        }
    }
    for (id, chain) in chains {
        if let Some(incident) = stored.get_mut(&id) {
            incident.chains.push(chain);
        }
    }
    for incident in stored.values_mut() {
        incident.held.sort_unstable();
        incident.chains.sort_unstable();
    }
    stored
}

/// Every decision, in the order taken, as [`decision_row`] reads it: claims by id. A
/// decision a binary of the previous release stored has no ids; its pairs name the
/// claims that hold those keys now.
pub(crate) const DECISIONS: Sql = Sql {
    postgres: "SELECT d.id, d.kind, \
         COALESCE(d.claim_ids, (SELECT COALESCE(jsonb_agg(s.id), '[]'::jsonb) \
           FROM jsonb_array_elements(d.claims) AS p \
           JOIN exploit_sources s ON s.source_name = p ->> 0 AND s.claim_key = p ->> 1))::text AS claims, \
         (CASE WHEN d.others IS NULL THEN NULL ELSE COALESCE(d.other_ids, \
           (SELECT COALESCE(jsonb_agg(s.id), '[]'::jsonb) FROM jsonb_array_elements(d.others) AS p \
           JOIN exploit_sources s ON s.source_name = p ->> 0 AND s.claim_key = p ->> 1)) END)::text AS others \
         FROM curation_decisions d ORDER BY d.id",
    sqlite: "SELECT d.id, d.kind, \
         COALESCE(d.claim_ids, (SELECT COALESCE(json_group_array(s.id), '[]') \
           FROM json_each(d.claims) AS p JOIN exploit_sources s \
           ON s.source_name = json_extract(p.value, '$[0]') AND s.claim_key = json_extract(p.value, '$[1]'))) AS claims, \
         CASE WHEN d.others IS NULL THEN NULL ELSE COALESCE(d.other_ids, \
           (SELECT COALESCE(json_group_array(s.id), '[]') FROM json_each(d.others) AS p JOIN exploit_sources s \
           ON s.source_name = json_extract(p.value, '$[0]') AND s.claim_key = json_extract(p.value, '$[1]'))) END AS others \
         FROM curation_decisions d ORDER BY d.id",
};

/// A row of [`DECISIONS`].
pub(crate) fn decision_row<R: DriverRow + ?Sized>(row: &R) -> Result<Decision, StoreError> {
    let f = Fields::of("curation_decisions", row);
    let refs = |column: &'static str, text: Option<String>| -> Result<Vec<i64>, StoreError> {
        text.map_or(Ok(Vec::new()), |t| {
            serde_json::from_str(&t).map_err(|e| {
                StoreError::corrupt(
                    "curation_decisions",
                    column,
                    format!("not a list of claim ids: {e}"),
                )
            })
        })
    };
    Ok(Decision {
        id: f.int("id")?,
        kind: match f.text("kind")?.as_str() {
            "merge" => DecisionKind::Merge,
            "split" => DecisionKind::Split,
            other => {
                return Err(StoreError::corrupt(
                    "curation_decisions",
                    "kind",
                    format!("{other:?}"),
                ))
            }
        },
        claims: refs("claims", Some(f.text("claims")?))?,
        others: refs("others", f.opt_text("others")?)?,
    })
}

impl NewDecision {
    /// The columns as JSON text (`others` and `other_ids` none for a merge).
    pub fn json(&self) -> DecisionJson {
        let ids = |ids: &[i64]| serde_json::Value::from(ids.to_vec()).to_string();
        let pairs = |refs: &[ClaimRef]| {
            serde_json::Value::from(
                refs.iter()
                    .map(|(source, key)| {
                        serde_json::Value::from(vec![source.as_str(), key.as_str()])
                    })
                    .collect::<Vec<_>>(),
            )
            .to_string()
        };
        let split = self.kind == DecisionKind::Split;
        DecisionJson {
            claims: pairs(&self.claim_pairs),
            others: split.then(|| pairs(&self.other_pairs)),
            claim_ids: ids(&self.claims),
            other_ids: split.then(|| ids(&self.others)),
            incident_ids: ids(&self.incident_ids),
        }
    }
}

/// A decision's `curation_decisions` columns as JSON text.
pub(crate) struct DecisionJson {
    pub claims: String,
    pub others: Option<String>,
    pub claim_ids: String,
    pub other_ids: Option<String>,
    pub incident_ids: String,
}
