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

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use kamiyo_domain::IncidentDraft;
use serde::Serialize;

use super::claims::StoredClaimRow;
use super::ingest::{IngestIo, Rules};
use super::join::JoinReason;
use super::replay::{Changes, Group, HashKey, IncidentRow, Owners, Replay};
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};

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

    /// Writes `regroup`: releases, then [`Regroup::changes`], moves and retirements.
    fn apply_regroup(&mut self, regroup: &Regroup) -> impl Future<Output = Result<(), StoreError>>;
}

/// The writes of a remerge, in the order a backend makes them.
#[derive(Debug, Default)]
pub(crate) struct Regroup {
    /// Stored incidents rewritten or retired: their hashes and chains are deleted and
    /// their primary hash cleared first, so that a hash can change hands in any order.
    pub released: Vec<i64>,
    /// Rows of rewritten incidents and new ones, with their hashes and chains.
    pub changes: Changes,
    /// `(claim, incident, why it joined)` for every claim that changes incident.
    pub moves: Vec<(i64, i64, Option<JoinReason>)>,
    /// `(retired id, surviving id)`: the retired row is deleted once its claims moved,
    /// and redirects to it (and it) point to the survivor.
    pub retired: Vec<(i64, i64)>,
    /// Why the retired incidents were retired, as `incident_redirects.reason` says it.
    pub reason: &'static str,
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
    stored: HashMap<i64, StoredIncident>,
    new_groups: usize,
}

/// Decides every claim again from nothing (see the module's comment).
pub(crate) fn plan(
    claims: Vec<StoredClaimRow>,
    stored: HashMap<i64, StoredIncident>,
    rules: &Rules,
) -> Result<Planned, StoreError> {
    let mut replay = Replay::new(&[], Vec::new(), Owners::new(), rules.clone())?;
    let mut outcomes = Vec::with_capacity(claims.len());
    for row in claims {
        let mut draft = row.columns.into_draft()?;
        // Not a column: its claim key says it.
        draft.source.id_names_incident = IncidentDraft::key_names_incident(&row.claim_key);
        let outcome = replay.ingest(&draft)?;
        let key = (draft.source.name.clone(), draft.claim_key());
        outcomes.push((
            row.id,
            row.exploit_id,
            key,
            outcome.exploit_id,
            row.claim_key,
        ));
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
    Ok(Planned {
        groups,
        ids,
        placed,
        stored,
        new_groups,
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

    /// Whether group `g` is stored exactly as it would be written.
    fn unchanged(&self, g: usize, spread: &Spread<'_>) -> bool {
        match self.ids[g] {
            GroupId::Kept(id) => {
                self.same_claims(g, spread) && self.stored.get(&id) == Some(&self.written(g, id))
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
            && self
                .placed
                .iter()
                .filter(|p| p.group == g)
                .all(|p| p.stored_in == id)
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
            reason: "remerge",
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
                    regroup.released.push(old);
                    regroup.changes.updated.push(written.row);
                }
                GroupId::New(_) => regroup
                    .changes
                    .created
                    .push((format!("split:{id}"), written.row)),
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
            for p in self
                .placed
                .iter()
                .filter(|p| p.group == g && p.stored_in != id)
            {
                let by = joined.get(&p.key).copied().flatten();
                regroup.moves.push((p.claim_id, id, by));
            }
        }
        for (old, group) in self.retired(&spread) {
            regroup.released.push(old);
            regroup.retired.push((old, id_of(group)?));
        }
        regroup.released.sort_unstable();
        Ok(regroup)
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
            applied,
        }
    }
}

/// Runs a remerge through `io`: `None` when `task` names a maintenance task that is not
/// pending (nothing was done), otherwise the report and whether anything was written.
pub(crate) async fn remerge<B: RegroupIo>(
    io: &mut B,
    rules: &Rules,
    apply: bool,
    task: Option<&str>,
) -> Result<Option<(RemergeReport, bool)>, StoreError> {
    io.lock_all().await?;
    let took_task = match task {
        Some(name) => {
            if !io.take_task(name).await? {
                return Ok(None);
            }
            true
        }
        None => false,
    };
    let claims = io.all_claims().await?;
    let stored = io.stored_incidents().await?;
    let planned = plan(claims, stored, rules)?;
    if !apply || planned.is_noop() {
        return Ok(Some((planned.report(None, false), apply && took_task)));
    }
    let ids = io.allocate_incident_ids(planned.new_groups()).await?;
    let regroup = planned.regroup(&ids)?;
    io.apply_regroup(&regroup).await?;
    Ok(Some((planned.report(Some(&ids), true), true)))
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
