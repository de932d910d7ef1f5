//! The ingest decisions, replayed in memory: no database here.
//!
//! A batch of claims (one claim is a batch of one) is decided against an in-memory copy
//! of every incident it can touch, in order, so that each decision sees the effect of
//! the ones before it exactly as one-by-one ingestion would. What it changed comes out
//! as [`Changes`] for a backend to write. The rules themselves are `decide` (which
//! incident a claim belongs to) and `canonical::derive` (an incident's values from its
//! claims, in first-seen order); a transaction hash another incident holds stays with
//! that incident and becomes a warning.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use kamiyo_domain::canonical::{self, Canonical};
use kamiyo_domain::identity::{core, url_key, url_variants};
use kamiyo_domain::{Aliases, IncidentDraft, NameMatch};

use super::claims::{ClaimColumns, StoredClaimRow};
use super::decide::{
    decide, foreign_hash_warning, url_window, window, Candidate, CandidateClaim, HashOwner, Plan,
    StoredClaim,
};
use super::events::{self, EventKind, NewEvent, Seen};
use super::ingest::Rules;
use super::join::JoinReason;
use super::{IngestAction, IngestOutcome};
use crate::error::StoreError;

/// Ids handed to incidents created in a batch until the backend allocates real ones:
/// above every real id (so that ties in the dedup rule still favour older incidents)
/// and in creation order.
const PROVISIONAL_BASE: i64 = 1 << 62;

/// `(chain slug, hash)` as stored.
pub(crate) type HashKey = (String, String);

/// Who holds a hash: the incident and its protocol key.
pub(crate) type Owners = HashMap<HashKey, (i64, String)>;

/// The dedup key of a new incident: stable, unique, and meaningful without a hash.
fn dedup_key(draft: &IncidentDraft) -> String {
    format!("src:{}:{}", draft.source.name, draft.claim_key())
}

fn hash_key(hash: &kamiyo_domain::TxHash) -> HashKey {
    (hash.chain.slug().to_owned(), hash.hash.clone())
}

/// Where the incident holding a claim's hash may keep it: on its chain, or on the
/// unknown chain (a source gave the hash without one); a hash on the unknown chain, on
/// any chain of the family its format fits.
fn holder_keys(hash: &kamiyo_domain::TxHash) -> Vec<HashKey> {
    let unknown = (kamiyo_domain::UNKNOWN_CHAIN.to_owned(), hash.hash.clone());
    if !hash.chain.is_unknown() {
        return vec![hash_key(hash), unknown];
    }
    let mut keys: Vec<HashKey> = kamiyo_domain::ChainFamily::of_hash(&hash.hash)
        .into_iter()
        .flat_map(kamiyo_domain::Chain::known_in)
        .map(|chain| (chain.slug().to_owned(), hash.hash.clone()))
        .collect();
    keys.push(unknown);
    keys
}

/// The facts a batch of claims needs read before it can be decided.
#[derive(Debug, Default)]
pub(crate) struct Needs {
    /// Every hash the claims name.
    pub hashes: Vec<HashKey>,
    /// Per claim and stored key its name can match (`Aliases::lookups`): that key and
    /// the claim's merge window.
    pub windows: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    /// Per claim: `(source, claim key)`.
    pub claim_keys: Vec<(String, String)>,
    /// The claims' lock keys (`Aliases::lock_key`), each once.
    pub locks: Vec<String>,
    /// Every stored key the claims' names can match.
    pub lookups: HashSet<String>,
    /// Per claim citing a page and form its URL may be stored in: that form and the
    /// claim's shared-URL window.
    pub urls: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
}

impl Needs {
    pub fn of(drafts: &[IncidentDraft], aliases: &Aliases) -> Needs {
        let mut needs = Needs::default();
        let mut locks = HashSet::new();
        for draft in drafts {
            needs
                .hashes
                .extend(draft.tx_hashes.iter().flat_map(holder_keys));
            let (from, to) = window(draft);
            for key in aliases.lookups(draft.protocol.key()) {
                needs.windows.push((key.clone(), from, to));
                needs.lookups.insert(key);
            }
            let lock = aliases.lock_key(draft.protocol.key());
            if locks.insert(lock.clone()) {
                needs.locks.push(lock);
            }
            // Claims that cite one page decide each other too, whatever their names.
            if let Some(url) = draft.source.url.as_deref() {
                if let Some(key) = url_key(url) {
                    let (from, to) = url_window(draft);
                    needs
                        .urls
                        .extend(url_variants(url).into_iter().map(|v| (v, from, to)));
                    if locks.insert(format!("url:{key}")) {
                        needs.locks.push(format!("url:{key}"));
                    }
                }
            }
            needs
                .claim_keys
                .push((draft.source.name.clone(), draft.claim_key()));
        }
        needs
    }

    /// The incidents to load: those the backend found near a claim or holding one of
    /// its claims, plus the holders of the claims' hashes that are of a claim's protocol
    /// (those whose name can match: the others matter as owners only).
    pub fn incidents_to_load(&self, mut near: Vec<i64>, owners: &Owners) -> Vec<i64> {
        near.extend(
            owners
                .values()
                .filter(|(_, key)| self.lookups.contains(key))
                .map(|(id, _)| *id),
        );
        near.sort_unstable();
        near.dedup();
        near
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimState {
    /// Stored and untouched by this batch.
    Stored,
    /// Stored; this batch changed what it says.
    Updated,
    /// New in this batch.
    New,
}

#[derive(Debug)]
struct Claim {
    id: i64,
    claim_key: String,
    draft: IncidentDraft,
    state: ClaimState,
    /// Why it joined its incident (kept as stored; set when the claim is new).
    joined_by: Option<JoinReason>,
}

#[derive(Debug)]
struct Incident {
    id: i64,
    /// `dedup_key` of a new incident (existing ones keep theirs).
    dedup_key: Option<String>,
    /// Claims in first-seen order.
    claims: Vec<Claim>,
    canonical: Canonical,
    touched: bool,
    /// What a subscriber saw of a stored incident before the batch: its update event
    /// says what changed since.
    before: Option<Seen>,
}

impl Incident {
    fn candidate(&self) -> Candidate {
        let claims = self
            .claims
            .iter()
            .map(|claim| CandidateClaim {
                source: claim.draft.source.name.clone(),
                protocol_key: claim.draft.protocol.key().to_owned(),
                occurred_at: claim.draft.occurred_at,
                loss_usd: claim.draft.loss_usd,
                hashes: claim
                    .draft
                    .tx_hashes
                    .iter()
                    .map(|h| format!("{}:{}", h.chain, h.hash))
                    .collect(),
            })
            .collect();
        Candidate {
            id: self.id,
            occurred_at: self.canonical.occurred_at,
            chains: self
                .canonical
                .chains
                .iter()
                .map(|c| c.slug().to_owned())
                .collect(),
            loss_usd: self.canonical.loss_usd,
            claims,
        }
    }
}

/// The in-memory picture of every incident a batch can touch.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    incidents: HashMap<i64, Incident>,
    /// Incidents by the core of their first claim's protocol key, the key they are
    /// stored under, as the database finds them (`Needs::windows`): so a batch sees what
    /// one claim at a time would.
    by_core: HashMap<String, Vec<i64>>,
    /// Incidents by the page links their claims cite, as stored.
    by_url: HashMap<String, Vec<i64>>,
    rules: Rules,
    /// (source, claim key) -> (incident, index in its claims).
    claims: HashMap<(String, String), (i64, usize)>,
    /// Who holds each hash, for every hash the batch can meet.
    owners: Owners,
    /// The hashes each incident held as the database said (`owners` given or added):
    /// with its canonical hashes, every key it can own, so that re-deriving it visits
    /// those instead of every owner (a remerge of 100,000 incidents spent most of its
    /// time there).
    owned_as_stored: HashMap<i64, Vec<HashKey>>,
    created: i64,
}

impl Replay {
    /// The incidents `ids` with their stored claims (in first-seen order per incident),
    /// and the owners of the batch's own hashes. Call [`Replay::hashes_to_resolve`] and
    /// [`Replay::add_owners`] before deciding anything.
    pub fn new(
        ids: &[i64],
        claims: Vec<StoredClaimRow>,
        owners: Owners,
        rules: Rules,
    ) -> Result<Replay, StoreError> {
        let mut by_incident: HashMap<i64, Vec<Claim>> = HashMap::new();
        for row in claims {
            let joined_by = row.joined_by;
            let mut draft = row.columns.into_draft()?;
            // Not a column: its claim key says it.
            draft.source.id_names_incident = IncidentDraft::key_names_incident(&row.claim_key);
            by_incident.entry(row.exploit_id).or_default().push(Claim {
                joined_by,
                id: row.id,
                claim_key: row.claim_key,
                draft,
                state: ClaimState::Stored,
            });
        }
        let mut replay = Replay {
            rules,
            ..Replay::default()
        };
        replay.add_owners(owners);
        for &id in ids {
            let claims = by_incident.remove(&id).unwrap_or_default();
            let drafts: Vec<IncidentDraft> = claims.iter().map(|c| c.draft.clone()).collect();
            let canonical = canonical::derive(&drafts).ok_or_else(|| {
                StoreError::corrupt("exploits", "id", format!("incident {id} has no claims"))
            })?;
            let before = Seen::of(
                &canonical,
                claims.iter().map(|c| c.draft.source.name.as_str()),
            );
            replay.add(Incident {
                id,
                dedup_key: None,
                claims,
                canonical,
                touched: false,
                before: Some(before),
            });
        }
        Ok(replay)
    }

    /// Hashes the loaded incidents list whose holder is not known yet.
    pub fn hashes_to_resolve(&self) -> Vec<HashKey> {
        let mut wanted: Vec<HashKey> = self
            .incidents
            .values()
            .flat_map(|i| i.canonical.tx_hashes.iter().map(hash_key))
            .filter(|key| !self.owners.contains_key(key))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }

    pub fn add_owners(&mut self, owners: Owners) {
        for (key, (owner, _)) in &owners {
            self.owned_as_stored
                .entry(*owner)
                .or_default()
                .push(key.clone());
        }
        self.owners.extend(owners);
    }

    fn add(&mut self, incident: Incident) {
        for (index, claim) in incident.claims.iter().enumerate() {
            self.claims.insert(
                (claim.draft.source.name.clone(), claim.claim_key.clone()),
                (incident.id, index),
            );
        }
        self.by_core
            .entry(core(&incident.canonical.protocol_key))
            .or_default()
            .push(incident.id);
        for claim in &incident.claims {
            self.index_url(incident.id, &claim.draft);
        }
        self.incidents.insert(incident.id, incident);
    }

    fn index_url(&mut self, exploit_id: i64, draft: &IncidentDraft) {
        // As stored: a claim finds it through the forms of its own link (`url_variants`),
        // exactly as the database's lookup does.
        if let Some(url) = draft.source.url.as_deref().filter(|u| url_key(u).is_some()) {
            let ids = self.by_url.entry(url.to_owned()).or_default();
            if !ids.contains(&exploit_id) {
                ids.push(exploit_id);
            }
        }
    }

    /// The stored claim that `draft` corrects, when the input is a whole one (its
    /// `Rules::listed`): a claim of the same source with the same id of the source's
    /// own (not one the input numbered `#2`), a matching name and a date within the
    /// merge window, that the input no longer lists. The closest in date, then the
    /// oldest claim. Without a whole input there is nothing to tell a correction from a
    /// second record, and nothing is.
    fn corrected(&self, draft: &IncidentDraft, near: &[i64]) -> Option<StoredClaim> {
        let listed = self.rules.listed.as_deref()?;
        let id = draft
            .source
            .external_id
            .as_deref()
            .filter(|id| !id.contains('#'))?;
        let (from, to) = window(draft);
        near.iter()
            .filter_map(|id| self.incidents.get(id).map(|incident| (*id, incident)))
            // The incident as the database finds it near the claim: by its date.
            .filter(|(_, incident)| {
                incident.canonical.occurred_at >= from && incident.canonical.occurred_at <= to
            })
            .flat_map(|(exploit_id, incident)| {
                incident.claims.iter().map(move |claim| (exploit_id, claim))
            })
            .filter(|(_, claim)| {
                let stored = &claim.draft;
                claim.state != ClaimState::New
                    && stored.source.name == draft.source.name
                    && stored.source.external_id.as_deref() == Some(id)
                    && stored.occurred_at >= from
                    && stored.occurred_at <= to
                    // A moved date or a respelt name, not another hack of the protocol
                    // (nor a claim migration 0006 left under an old key).
                    && match (stored.loss_usd, draft.loss_usd) {
                        (Some(a), Some(b)) => a.agrees_with(&b),
                        _ => true,
                    }
                    && !listed.contains(&(stored.source.name.clone(), claim.claim_key.clone()))
                    && self
                        .rules
                        .aliases
                        .name_match(stored.protocol.key(), draft.protocol.key())
                        == NameMatch::Same
            })
            .min_by_key(|(exploit_id, claim)| {
                (
                    (claim.draft.occurred_at - draft.occurred_at)
                        .num_seconds()
                        .abs(),
                    claim.id,
                    *exploit_id,
                )
            })
            .map(|(exploit_id, claim)| StoredClaim {
                claim_id: claim.id,
                exploit_id,
                draft: claim.draft.clone(),
            })
    }

    /// Decides one claim and applies the decision in memory.
    pub fn ingest(&mut self, draft: &IncidentDraft) -> Result<IngestOutcome, StoreError> {
        let claim_key = draft.claim_key();
        // Only what the database would find for this claim alone (`Needs`): incidents
        // stored under one of its lookup keys, and by its page; so that a batch decides
        // as one claim at a time, whatever else the batch loaded.
        let lookups = self.rules.aliases.lookups(draft.protocol.key());
        let mut near: Vec<i64> = lookups
            .iter()
            .filter_map(|key| self.by_core.get(key))
            .flatten()
            .copied()
            .collect();
        near.sort_unstable();
        near.dedup();
        let existing = self
            .claims
            .get(&(draft.source.name.clone(), claim_key.clone()))
            .and_then(|&(exploit_id, index)| {
                let claim = self.incidents.get(&exploit_id)?.claims.get(index)?;
                Some(StoredClaim {
                    claim_id: claim.id,
                    exploit_id,
                    draft: claim.draft.clone(),
                })
            })
            .or_else(|| self.corrected(draft, &near));
        // Holders of the claim's hashes that a claim of its name loads.
        let owners: Vec<HashOwner> = draft
            .tx_hashes
            .iter()
            .flat_map(holder_keys)
            .filter_map(|key| self.owners.get(&key))
            .filter(|(_, protocol_key)| lookups.contains(protocol_key))
            .filter_map(|(exploit_id, _)| self.incidents.get(exploit_id))
            .map(Incident::candidate)
            .collect();
        let candidates: Vec<Candidate> = near
            .iter()
            .filter_map(|id| self.incidents.get(id))
            .map(Incident::candidate)
            .collect();
        let mut cited: Vec<i64> = draft
            .source
            .url
            .as_deref()
            .filter(|u| url_key(u).is_some())
            .map(url_variants)
            .unwrap_or_default()
            .iter()
            .filter_map(|form| self.by_url.get(form))
            .flatten()
            .copied()
            .collect();
        cited.sort_unstable();
        cited.dedup();
        let citing: Vec<Candidate> = cited
            .iter()
            .filter_map(|id| self.incidents.get(id))
            .map(Incident::candidate)
            .collect();
        let curated = self.curated_plan(draft, &claim_key, existing.is_some());
        let allowed = |c: &Candidate| curated.allows(c.id);
        let plan = match curated.mate {
            Some(exploit_id) => Plan::Merge {
                exploit_id,
                by: JoinReason::Curated,
            },
            None => decide(
                draft,
                existing.as_ref(),
                &owners.into_iter().filter(allowed).collect::<Vec<_>>(),
                &citing.into_iter().filter(allowed).collect::<Vec<_>>(),
                &candidates.into_iter().filter(allowed).collect::<Vec<_>>(),
                &self.rules.aliases,
            ),
        };
        let (exploit_id, action) = match plan {
            Plan::Unchanged { exploit_id } => {
                return Ok(IngestOutcome {
                    exploit_id,
                    action: IngestAction::Unchanged,
                    warnings: Vec::new(),
                })
            }
            Plan::UpdateClaim {
                claim_id,
                exploit_id,
            } => {
                let source = draft.source.name.clone();
                let (index, old_key) = match self.claims.get(&(source.clone(), claim_key.clone())) {
                    Some(&(_, index)) => (index, None),
                    // A corrected record: its stored claim is found by id and re-keyed.
                    None => {
                        let index = self
                            .incident(exploit_id)?
                            .claims
                            .iter()
                            .position(|c| c.id == claim_id && c.state != ClaimState::New)
                            .ok_or_else(|| invariant("an updated claim is not in the batch"))?;
                        let old = self.incident(exploit_id)?.claims[index].claim_key.clone();
                        (index, Some(old))
                    }
                };
                let claim = self
                    .incident(exploit_id)?
                    .claims
                    .get_mut(index)
                    .ok_or_else(|| invariant("an updated claim is not in its incident"))?;
                claim.draft = draft.clone();
                claim.claim_key = claim_key.clone();
                if claim.state == ClaimState::Stored {
                    claim.state = ClaimState::Updated;
                }
                if let Some(old) = old_key {
                    self.claims.remove(&(source.clone(), old));
                    self.claims.insert((source, claim_key), (exploit_id, index));
                }
                self.index_url(exploit_id, draft);
                (exploit_id, IngestAction::Updated)
            }
            Plan::Merge { exploit_id, by } => {
                self.push_claim(exploit_id, draft, claim_key, by)?;
                (exploit_id, IngestAction::Merged)
            }
            Plan::Insert => {
                let canonical = canonical::derive(std::slice::from_ref(draft))
                    .ok_or_else(|| invariant("a claim must derive an incident"))?;
                self.created += 1;
                let id = PROVISIONAL_BASE + self.created;
                self.add(Incident {
                    id,
                    dedup_key: Some(dedup_key(draft)),
                    claims: Vec::new(),
                    canonical,
                    touched: true,
                    before: None,
                });
                self.push_claim(id, draft, claim_key, JoinReason::First)?;
                (id, IngestAction::Inserted)
            }
        };
        let warnings = self.rederive(exploit_id)?;
        Ok(IngestOutcome {
            exploit_id,
            action,
            warnings,
        })
    }

    /// What curators decided about this claim (a remerge's `Rules::curation`): the
    /// incident a claim it must share one with is in, and the incidents holding claims
    /// it must stay apart from.
    fn curated_plan(&self, draft: &IncidentDraft, claim_key: &str, existing: bool) -> Curated {
        let Some(curation) = self.rules.curation.as_deref() else {
            return Curated::default();
        };
        let me = (draft.source.name.clone(), claim_key.to_owned());
        let Some(group) = curation.group(&me) else {
            return Curated::default();
        };
        let mate = curation
            .members(group)
            .filter(|m| **m != me)
            .find_map(|m| self.claims.get(m).map(|(exploit_id, _)| *exploit_id))
            .filter(|_| !existing);
        // Through the groups kept apart from this one and where their claims are: a
        // scan of every incident per curated claim cost seconds at 100,000 claims.
        let forbidden = curation
            .apart_from(group)
            .flat_map(|other| curation.members(other))
            .filter_map(|m| self.claims.get(m).map(|(exploit_id, _)| *exploit_id))
            .collect();
        Curated { mate, forbidden }
    }

    /// How many incidents the batch created: the backend allocates that many ids.
    pub fn created(&self) -> usize {
        usize::try_from(self.created).unwrap_or(usize::MAX)
    }

    fn incident(&mut self, id: i64) -> Result<&mut Incident, StoreError> {
        self.incidents
            .get_mut(&id)
            .ok_or_else(|| invariant(format!("incident {id} was not loaded for the batch")))
    }

    fn push_claim(
        &mut self,
        exploit_id: i64,
        draft: &IncidentDraft,
        claim_key: String,
        joined_by: JoinReason,
    ) -> Result<(), StoreError> {
        let incident = self.incident(exploit_id)?;
        incident.claims.push(Claim {
            joined_by: Some(joined_by),
            id: 0,
            claim_key: claim_key.clone(),
            draft: draft.clone(),
            state: ClaimState::New,
        });
        let index = incident.claims.len() - 1;
        self.claims
            .insert((draft.source.name.clone(), claim_key), (exploit_id, index));
        self.index_url(exploit_id, draft);
        Ok(())
    }

    /// Canonical values from all claims, and the hashes this incident may hold (those
    /// nobody else holds).
    fn rederive(&mut self, exploit_id: i64) -> Result<Vec<String>, StoreError> {
        let incident = self.incident(exploit_id)?;
        let drafts: Vec<IncidentDraft> = incident.claims.iter().map(|c| c.draft.clone()).collect();
        let canonical = canonical::derive(&drafts)
            .ok_or_else(|| invariant(format!("incident {exploit_id} has no claims")))?;
        // As `exploits.protocol_key` holds it, so that owners read from the database and
        // owners recorded here compare alike.
        let protocol_key = core(&canonical.protocol_key);
        let hashes = canonical.tx_hashes.clone();
        incident.touched = true;
        let before: Vec<HashKey> = incident.canonical.tx_hashes.iter().map(hash_key).collect();
        incident.canonical = canonical;
        let wanted: HashSet<HashKey> = hashes.iter().map(hash_key).collect();
        // It owns only what it held before (its canonical hashes) or what the database
        // said it held: those it no longer wants are released.
        let stale: Vec<HashKey> = before
            .into_iter()
            .chain(
                self.owned_as_stored
                    .get(&exploit_id)
                    .into_iter()
                    .flatten()
                    .cloned(),
            )
            .filter(|key| {
                !wanted.contains(key)
                    && self
                        .owners
                        .get(key)
                        .is_some_and(|(owner, _)| *owner == exploit_id)
            })
            .collect();
        for key in stale {
            self.owners.remove(&key);
        }
        let mut warnings = Vec::new();
        for hash in &hashes {
            // Held by another incident on its chain, or across the unknown chain of its
            // family (the same transaction, placed by one source and not by another).
            let foreign = holder_keys(hash).iter().any(
                |key| matches!(self.owners.get(key), Some((owner, _)) if *owner != exploit_id),
            );
            if foreign {
                warnings.push(foreign_hash_warning(hash));
            } else {
                self.owners
                    .insert(hash_key(hash), (exploit_id, protocol_key.clone()));
            }
        }
        Ok(warnings)
    }

    /// The hashes this incident holds, in canonical order.
    fn held_hashes(&self, incident: &Incident) -> Vec<HashKey> {
        incident
            .canonical
            .tx_hashes
            .iter()
            .map(hash_key)
            .filter(|key| self.owners.get(key).map(|(owner, _)| *owner) == Some(incident.id))
            .collect()
    }

    /// What the batch changed, with the real ids of the incidents it created
    /// (`created_ids`, [`Replay::created`] of them, in creation order).
    pub fn changes(&self, created_ids: &[i64]) -> Result<Changes, StoreError> {
        let ids = RealIds(created_ids);
        let mut touched: Vec<&Incident> = self.incidents.values().filter(|i| i.touched).collect();
        touched.sort_by_key(|i| i.id);
        let mut changes = Changes::default();
        for incident in touched {
            let id = ids.of(incident.id)?;
            let held = self.held_hashes(incident);
            let row = IncidentRow::new(id, &incident.canonical, &held);
            let occurred_at = incident.canonical.occurred_at;
            match &incident.dedup_key {
                Some(key) => {
                    changes.created.push((key.clone(), row));
                    changes.events.push(NewEvent {
                        kind: EventKind::Created,
                        exploit_id: id,
                        occurred_at,
                        changes: None,
                    });
                }
                None => {
                    changes.updated.push(row);
                    let now = Seen::of(
                        &incident.canonical,
                        incident.claims.iter().map(|c| c.draft.source.name.as_str()),
                    );
                    if let Some(event) = incident
                        .before
                        .as_ref()
                        .and_then(|before| events::updated(id, occurred_at, before, &now))
                    {
                        changes.events.push(event);
                    }
                }
            }
            changes
                .hashes
                .extend(held.into_iter().map(|(chain, hash)| (id, chain, hash)));
            changes.chains.extend(
                incident
                    .canonical
                    .chains
                    .iter()
                    .map(|chain| (id, chain.slug().to_owned())),
            );
            for claim in &incident.claims {
                let write = || ClaimWrite {
                    id: claim.id,
                    exploit_id: id,
                    claim_key: claim.claim_key.clone(),
                    columns: ClaimColumns::from_draft(&claim.draft),
                    joined_by: claim.joined_by,
                };
                match claim.state {
                    ClaimState::Stored => {}
                    ClaimState::Updated => changes.updated_claims.push(write()),
                    ClaimState::New => changes.new_claims.push(write()),
                }
            }
        }
        Ok(changes)
    }

    /// Every incident of the replay as a remerge writes it: its row (under its
    /// provisional or stored id), the hashes it holds, its chains and its claims by
    /// `(source, claim key)` with why each joined. In id order (creation order for
    /// incidents the replay created).
    pub fn groups(&self) -> Vec<Group> {
        let mut incidents: Vec<&Incident> = self.incidents.values().collect();
        incidents.sort_by_key(|i| i.id);
        incidents
            .into_iter()
            .map(|incident| {
                let held = self.held_hashes(incident);
                Group {
                    row: IncidentRow::new(incident.id, &incident.canonical, &held),
                    held,
                    chains: incident
                        .canonical
                        .chains
                        .iter()
                        .map(|chain| chain.slug().to_owned())
                        .collect(),
                    claims: incident
                        .claims
                        .iter()
                        .map(|claim| {
                            (
                                (claim.draft.source.name.clone(), claim.claim_key.clone()),
                                claim.joined_by,
                            )
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// An outcome's id as the database knows it.
    pub fn real_id(&self, created_ids: &[i64], id: i64) -> Result<i64, StoreError> {
        RealIds(created_ids).of(id)
    }
}

/// A claim's curated constraints (see [`Replay::curated_plan`]).
#[derive(Debug, Default)]
struct Curated {
    /// The incident a claim it must share one with is already in.
    mate: Option<i64>,
    /// Incidents it must not join.
    forbidden: HashSet<i64>,
}

impl Curated {
    fn allows(&self, incident: i64) -> bool {
        !self.forbidden.contains(&incident)
    }
}

struct RealIds<'a>(&'a [i64]);

impl RealIds<'_> {
    fn of(&self, id: i64) -> Result<i64, StoreError> {
        if id <= PROVISIONAL_BASE {
            return Ok(id);
        }
        usize::try_from(id - PROVISIONAL_BASE - 1)
            .ok()
            .and_then(|index| self.0.get(index).copied())
            .ok_or_else(|| invariant("the backend allocated too few incident ids"))
    }
}

fn invariant(message: impl Into<String>) -> StoreError {
    StoreError::Invariant(message.into())
}

/// An incident's row in `exploits`, as both backends write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncidentRow {
    pub id: i64,
    pub protocol: String,
    pub protocol_key: String,
    /// The primary chain.
    pub chain: String,
    /// The primary chain's hash, when this incident holds one.
    pub tx_hash: Option<String>,
    pub amount_usd: Option<String>,
    pub recovered_usd: Option<String>,
    pub attack_class: String,
    pub attack_type: String,
    pub attack_text: Option<String>,
    pub description: Option<String>,
    pub status: String,
    pub occurred_at: DateTime<Utc>,
    pub source_url: Option<String>,
    pub flash_loan: bool,
    pub bridge: bool,
}

impl IncidentRow {
    fn new(id: i64, c: &Canonical, held: &[HashKey]) -> IncidentRow {
        let chain = c
            .chains
            .first()
            .map(|chain| chain.slug().to_owned())
            .unwrap_or_default();
        IncidentRow {
            id,
            tx_hash: held
                .iter()
                .find(|(held_chain, _)| *held_chain == chain)
                .map(|(_, hash)| hash.clone()),
            chain,
            protocol: c.protocol.clone(),
            // Stored under its core, where every name that matches it looks.
            protocol_key: core(&c.protocol_key),
            amount_usd: c.loss_usd.map(|u| u.to_string()),
            recovered_usd: c.recovered_usd.map(|u| u.to_string()),
            attack_class: c.attack_type.class().as_str().to_owned(),
            attack_type: c.attack_type.as_str().to_owned(),
            attack_text: c.attack_text.clone(),
            description: c.description.clone(),
            status: c.status.as_str().to_owned(),
            occurred_at: c.occurred_at,
            source_url: c.source_url.clone(),
            flash_loan: c.flash_loan,
            bridge: c.bridge,
        }
    }
}

/// An incident as [`Replay::groups`] gives it.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub row: IncidentRow,
    pub held: Vec<HashKey>,
    pub chains: Vec<String>,
    /// `((source, claim key), joined_by)` in first-seen order.
    pub claims: Vec<((String, String), Option<JoinReason>)>,
}

/// A claim to insert (`id` unused) or update (`id` the stored claim's).
#[derive(Debug, Clone)]
pub(crate) struct ClaimWrite {
    pub id: i64,
    pub exploit_id: i64,
    pub claim_key: String,
    pub columns: ClaimColumns,
    /// Written with a new claim; an update leaves the stored one.
    pub joined_by: Option<JoinReason>,
}

/// What a batch changed, for a backend to write in this order: `updated` incidents
/// first (one that gave up a hash must do so before a new one takes it as its primary
/// hash), then `created` ones, then the touched incidents' hashes and chains (replacing
/// what they held), then claims.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub updated: Vec<IncidentRow>,
    /// New incidents with their dedup keys.
    pub created: Vec<(String, IncidentRow)>,
    /// `(incident, chain, hash)` for every touched incident.
    pub hashes: Vec<(i64, String, String)>,
    /// `(incident, chain)` for every touched incident.
    pub chains: Vec<(i64, String)>,
    /// In the order they must take their ids (first-seen order within an incident).
    pub new_claims: Vec<ClaimWrite>,
    pub updated_claims: Vec<ClaimWrite>,
    /// The alert outbox's events for these changes, written with them.
    pub events: Vec<NewEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamiyo_testkit::claim;

    fn draft(source: &str, name: &str, date: &str, loss: &str) -> IncidentDraft {
        claim(name).source(source).date(date).loss_usd(loss).build()
    }

    fn stored(id: i64, exploit_id: i64, d: &IncidentDraft) -> StoredClaimRow {
        StoredClaimRow {
            id,
            exploit_id,
            claim_key: d.claim_key(),
            columns: ClaimColumns::from_draft(d),
            first_seen_at: d.occurred_at,
            last_seen_at: d.occurred_at,
            joined_by: Some(JoinReason::First),
            curated_by: None,
        }
    }

    #[test]
    fn a_batch_sees_its_own_earlier_claims_and_writes_one_incident_for_them() {
        let first = draft("defillama", "Euler Finance", "2023-03-13", "197000000");
        let second = draft("rekt", "Euler", "2023-03-14", "195000000");
        let mut replay =
            Replay::new(&[], Vec::new(), Owners::new(), Rules::default()).unwrap_or_default();
        let a = replay.ingest(&first).unwrap_or_else(|e| panic!("{e}"));
        let b = replay.ingest(&second).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.action, IngestAction::Inserted);
        assert_eq!(b.action, IngestAction::Merged);
        assert_eq!(a.exploit_id, b.exploit_id);
        assert_eq!(replay.created(), 1);

        let changes = replay.changes(&[41]).unwrap_or_else(|e| panic!("{e}"));
        assert!(changes.updated.is_empty());
        assert_eq!(changes.created.len(), 1);
        assert_eq!(changes.created[0].1.id, 41);
        // The canonical loss is the median of the two claims (the lower middle value).
        assert_eq!(
            changes.created[0].1.amount_usd.as_deref(),
            Some("195000000.00")
        );
        assert_eq!(changes.new_claims.len(), 2);
        assert!(changes.new_claims.iter().all(|c| c.exploit_id == 41));
        assert_eq!(replay.real_id(&[41], a.exploit_id).ok(), Some(41));
    }

    #[test]
    fn a_stored_claim_sent_again_changes_nothing_and_a_changed_one_updates_it() {
        let claim = draft("defillama", "Euler", "2023-03-13", "197000000");
        let mut replay = Replay::new(
            &[7],
            vec![stored(3, 7, &claim)],
            Owners::new(),
            Rules::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let again = replay.ingest(&claim).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (again.exploit_id, again.action),
            (7, IngestAction::Unchanged)
        );

        let corrected = draft("defillama", "Euler", "2023-03-13", "200000000");
        let update = replay.ingest(&corrected).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (update.exploit_id, update.action),
            (7, IngestAction::Updated)
        );
        let changes = replay.changes(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(changes.updated.len(), 1);
        assert_eq!(
            changes.updated[0].amount_usd.as_deref(),
            Some("200000000.00")
        );
        assert_eq!(changes.updated_claims.len(), 1);
        assert_eq!(changes.updated_claims[0].id, 3);
        assert!(changes.new_claims.is_empty() && changes.created.is_empty());
    }

    #[test]
    fn an_incident_without_claims_is_corrupt_data_not_a_panic() {
        let error = Replay::new(&[9], Vec::new(), Owners::new(), Rules::default()).err();
        assert!(
            matches!(
                error,
                Some(StoreError::Corrupt {
                    table: "exploits",
                    ..
                })
            ),
            "{error:?}"
        );
    }
}
