//! Ingesting many claims in one PostgreSQL transaction, for imports.
//!
//! The one-claim path (`postgres::ingest`) costs a dozen round trips per claim. Here a
//! batch reads every fact its decisions need in five bulk queries, replays the claims in
//! file order against an in-memory copy of the incidents they can touch (so each
//! decision sees the effect of the ones before it, exactly as one-by-one ingestion
//! would), then writes the result with one multi-row statement per table.
//!
//! The decisions are the shared [`decide`] rule; the in-memory re-derivation mirrors
//! `rederive` (canonical values from every claim in first-seen order; a hash another
//! incident holds stays with that incident and becomes a warning). The conformance tests
//! check that a file imported in batches leaves the same incidents as one imported claim
//! by claim.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use kamiyo_db::postgres::{PgPool, PgTransaction};
use kamiyo_db::DbError;
use kamiyo_domain::canonical::{self, Canonical};
use kamiyo_domain::IncidentDraft;

use super::decide::{decide, foreign_hash_warning, window, Candidate, HashOwner, Plan};
use super::postgres::{claim_from_row, lock_buckets, CLAIM_COLUMNS, LOCK_CLASS};
use super::rows::ClaimColumns;
use super::{dedup_key, IngestAction, IngestOutcome};

/// Ids handed to incidents created in this batch until the database allocates real
/// ones: above every real id (so that ties in the dedup rule still favour older
/// incidents) and in creation order.
const PROVISIONAL_BASE: i64 = 1 << 62;

type HashKey = (String, String);

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
}

impl Incident {
    fn candidate(&self) -> Candidate {
        let mut sources: Vec<String> = Vec::new();
        for claim in &self.claims {
            if !sources.contains(&claim.draft.source.name) {
                sources.push(claim.draft.source.name.clone());
            }
        }
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
            sources,
        }
    }
}

/// The in-memory picture of every incident the batch can touch.
#[derive(Debug, Default)]
struct Workspace {
    incidents: HashMap<i64, Incident>,
    by_protocol: HashMap<String, Vec<i64>>,
    /// (source, claim key) -> (incident, index in its claims).
    claims: HashMap<(String, String), (i64, usize)>,
    /// Who holds each hash, for every hash the batch can meet.
    owners: HashMap<HashKey, (i64, String)>,
    created: i64,
}

impl Workspace {
    fn add(&mut self, incident: Incident) {
        for (index, claim) in incident.claims.iter().enumerate() {
            self.claims.insert(
                (claim.draft.source.name.clone(), claim.claim_key.clone()),
                (incident.id, index),
            );
        }
        self.by_protocol
            .entry(incident.canonical.protocol_key.clone())
            .or_default()
            .push(incident.id);
        self.incidents.insert(incident.id, incident);
    }

    fn ingest(&mut self, draft: &IncidentDraft) -> Result<IngestOutcome, DbError> {
        let claim_key = draft.claim_key();
        let existing = self
            .claims
            .get(&(draft.source.name.clone(), claim_key.clone()))
            .and_then(|&(exploit_id, index)| {
                let claim = self.incidents.get(&exploit_id)?.claims.get(index)?;
                Some(super::decide::StoredClaim {
                    claim_id: claim.id,
                    exploit_id,
                    draft: claim.draft.clone(),
                })
            });
        let owners: Vec<HashOwner> = draft
            .tx_hashes
            .iter()
            .filter_map(|h| self.owners.get(&hash_key(h)))
            .map(|(exploit_id, protocol_key)| HashOwner {
                exploit_id: *exploit_id,
                protocol_key: protocol_key.clone(),
            })
            .collect();
        let candidates: Vec<Candidate> = self
            .by_protocol
            .get(draft.protocol.key())
            .into_iter()
            .flatten()
            .filter_map(|id| self.incidents.get(id))
            .map(Incident::candidate)
            .collect();
        let (exploit_id, action) = match decide(draft, existing.as_ref(), &owners, &candidates) {
            Plan::Unchanged { exploit_id } => {
                return Ok(IngestOutcome {
                    exploit_id,
                    action: IngestAction::Unchanged,
                    warnings: Vec::new(),
                })
            }
            Plan::UpdateClaim { exploit_id, .. } => {
                let &(_, index) = self
                    .claims
                    .get(&(draft.source.name.clone(), claim_key))
                    .ok_or_else(|| DbError::other("an updated claim is not in the batch"))?;
                let claim = self
                    .incident(exploit_id)?
                    .claims
                    .get_mut(index)
                    .ok_or_else(|| DbError::other("an updated claim is not in its incident"))?;
                claim.draft = draft.clone();
                if claim.state == ClaimState::Stored {
                    claim.state = ClaimState::Updated;
                }
                (exploit_id, IngestAction::Updated)
            }
            Plan::Merge { exploit_id } => {
                self.push_claim(exploit_id, draft, claim_key)?;
                (exploit_id, IngestAction::Merged)
            }
            Plan::Insert => {
                let canonical = canonical::derive(std::slice::from_ref(draft))
                    .ok_or_else(|| DbError::other("a claim must derive an incident"))?;
                self.created += 1;
                let id = PROVISIONAL_BASE + self.created;
                self.add(Incident {
                    id,
                    dedup_key: Some(dedup_key(draft)),
                    claims: Vec::new(),
                    canonical,
                    touched: true,
                });
                self.push_claim(id, draft, claim_key)?;
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

    fn incident(&mut self, id: i64) -> Result<&mut Incident, DbError> {
        self.incidents
            .get_mut(&id)
            .ok_or_else(|| DbError::other(format!("incident {id} was not loaded for the batch")))
    }

    fn push_claim(
        &mut self,
        exploit_id: i64,
        draft: &IncidentDraft,
        claim_key: String,
    ) -> Result<(), DbError> {
        let incident = self.incident(exploit_id)?;
        incident.claims.push(Claim {
            id: 0,
            claim_key: claim_key.clone(),
            draft: draft.clone(),
            state: ClaimState::New,
        });
        let index = incident.claims.len() - 1;
        self.claims
            .insert((draft.source.name.clone(), claim_key), (exploit_id, index));
        Ok(())
    }

    /// `rederive` in memory: canonical values from all claims, and the hashes this
    /// incident may hold (those nobody else holds).
    fn rederive(&mut self, exploit_id: i64) -> Result<Vec<String>, DbError> {
        let incident = self.incident(exploit_id)?;
        let drafts: Vec<IncidentDraft> = incident.claims.iter().map(|c| c.draft.clone()).collect();
        let canonical = canonical::derive(&drafts)
            .ok_or_else(|| DbError::other(format!("incident {exploit_id} has no claims")))?;
        let protocol_key = canonical.protocol_key.clone();
        let hashes = canonical.tx_hashes.clone();
        incident.touched = true;
        incident.canonical = canonical;
        let wanted: HashSet<HashKey> = hashes.iter().map(hash_key).collect();
        self.owners
            .retain(|key, (owner, _)| *owner != exploit_id || wanted.contains(key));
        let mut warnings = Vec::new();
        for hash in &hashes {
            match self.owners.get(&hash_key(hash)) {
                Some((owner, _)) if *owner != exploit_id => {
                    warnings.push(foreign_hash_warning(hash));
                }
                _ => {
                    self.owners
                        .insert(hash_key(hash), (exploit_id, protocol_key.clone()));
                }
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
}

fn hash_key(hash: &kamiyo_domain::TxHash) -> HashKey {
    (hash.chain.slug().to_owned(), hash.hash.clone())
}

/// Ingests `drafts` in one transaction; one outcome per draft, in order. Any failure
/// rolls the whole batch back (the caller decides whether to retry it or to fall back
/// to one claim at a time).
pub(super) async fn ingest_batch(
    pool: &PgPool,
    drafts: &[IncidentDraft],
) -> Result<Vec<IngestOutcome>, DbError> {
    let mut conn = pool.acquire().await?;
    let tx = conn.transaction().await?;
    let buckets = lock_buckets(drafts.iter().map(|d| d.protocol.key()));
    tx.execute(
        "SELECT pg_advisory_xact_lock($1::int4, b) FROM unnest($2::int4[]) AS b",
        &[&LOCK_CLASS, &buckets],
    )
    .await?;

    let mut work = load(&tx, drafts).await?;
    let mut outcomes = Vec::with_capacity(drafts.len());
    for draft in drafts {
        outcomes.push(work.ingest(draft)?);
    }
    if outcomes.iter().all(|o| o.action == IngestAction::Unchanged) {
        tx.rollback().await?;
        return Ok(outcomes);
    }
    let ids = allocate_ids(&tx, &mut work).await?;
    for outcome in &mut outcomes {
        outcome.exploit_id = real_id(&ids, outcome.exploit_id)?;
    }
    write(&tx, &work, &ids).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Reads every incident the batch's claims can touch: those holding one of their hashes,
/// those within the merge window of one of them, and those holding one of their claims;
/// then who holds every hash those incidents' claims list.
async fn load(tx: &PgTransaction<'_>, drafts: &[IncidentDraft]) -> Result<Workspace, DbError> {
    let mut chains = Vec::new();
    let mut hashes = Vec::new();
    for draft in drafts {
        for hash in &draft.tx_hashes {
            chains.push(hash.chain.slug().to_owned());
            hashes.push(hash.hash.clone());
        }
    }
    let mut owners: HashMap<HashKey, (i64, String)> = HashMap::new();
    read_owners(tx, &chains, &hashes, &mut owners).await?;

    let keys: Vec<&str> = drafts.iter().map(|d| d.protocol.key()).collect();
    let (froms, tos): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = drafts.iter().map(window).unzip();
    let sources: Vec<&str> = drafts.iter().map(|d| d.source.name.as_str()).collect();
    let claim_keys: Vec<String> = drafts.iter().map(IncidentDraft::claim_key).collect();
    let batch_keys: HashSet<&str> = keys.iter().copied().collect();
    let mut ids: Vec<i64> = tx
        .query(
            // One index probe per claim, forced by the OFFSET 0 fences: while an import
            // grows the tables faster than autovacuum re-analyses them, the planner
            // otherwise hash-joins against a full scan (60 ms a batch at 100k rows,
            // against 4 ms).
            "SELECT x.id FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS w(k, f, t) \
             CROSS JOIN LATERAL (SELECT e.id FROM exploits e \
               WHERE e.protocol_key = w.k AND e.occurred_at BETWEEN w.f AND w.t OFFSET 0) x \
             UNION \
             SELECT x.exploit_id FROM unnest($4::text[], $5::text[]) AS c(source_name, claim_key) \
             CROSS JOIN LATERAL (SELECT s.exploit_id FROM exploit_sources s \
               WHERE s.source_name = c.source_name AND s.claim_key = c.claim_key OFFSET 0) x",
            &[&keys, &froms, &tos, &sources, &claim_keys],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Only a same-protocol holder can be merged into; the others matter as owners only.
    ids.extend(
        owners
            .values()
            .filter(|(_, key)| batch_keys.contains(key.as_str()))
            .map(|(id, _)| *id),
    );
    ids.sort_unstable();
    ids.dedup();

    let rows = tx
        .query(
            &format!(
                "SELECT {CLAIM_COLUMNS}, claim_key FROM exploit_sources WHERE exploit_id = ANY($1) \
                 ORDER BY exploit_id, first_seen_at, id"
            ),
            &[&ids],
        )
        .await?;
    let mut claims: HashMap<i64, Vec<Claim>> = HashMap::new();
    for row in &rows {
        let exploit_id: i64 = row.get(1);
        claims.entry(exploit_id).or_default().push(Claim {
            id: row.get(0),
            claim_key: row.get(22),
            draft: claim_from_row(row)?.into_draft()?,
            state: ClaimState::Stored,
        });
    }
    let mut work = Workspace::default();
    let (mut more_chains, mut more_hashes) = (Vec::new(), Vec::new());
    for id in ids {
        let claims = claims.remove(&id).unwrap_or_default();
        let drafts: Vec<IncidentDraft> = claims.iter().map(|c| c.draft.clone()).collect();
        let canonical = canonical::derive(&drafts)
            .ok_or_else(|| DbError::other(format!("incident {id} has no claims")))?;
        for hash in &canonical.tx_hashes {
            if !owners.contains_key(&hash_key(hash)) {
                more_chains.push(hash.chain.slug().to_owned());
                more_hashes.push(hash.hash.clone());
            }
        }
        work.add(Incident {
            id,
            dedup_key: None,
            claims,
            canonical,
            touched: false,
        });
    }
    read_owners(tx, &more_chains, &more_hashes, &mut owners).await?;
    work.owners = owners;
    Ok(work)
}

async fn read_owners(
    tx: &PgTransaction<'_>,
    chains: &[String],
    hashes: &[String],
    owners: &mut HashMap<HashKey, (i64, String)>,
) -> Result<(), DbError> {
    if hashes.is_empty() {
        return Ok(());
    }
    let rows = tx
        .query(
            // Fenced per hash, for the reason given in `load`.
            "SELECT x.chain, x.tx_hash, x.exploit_id, x.protocol_key \
             FROM unnest($1::text[], $2::text[]) AS q(chain, tx_hash) \
             CROSS JOIN LATERAL (SELECT h.chain, h.tx_hash, h.exploit_id, e.protocol_key \
               FROM exploit_tx_hashes h JOIN exploits e ON e.id = h.exploit_id \
               WHERE h.chain = q.chain AND h.tx_hash = q.tx_hash OFFSET 0) x",
            &[&chains, &hashes],
        )
        .await?;
    for row in &rows {
        owners.insert((row.get(0), row.get(1)), (row.get(2), row.get(3)));
    }
    Ok(())
}

/// Real ids for the incidents this batch created, in creation order. (New claims take
/// theirs from the column default as they are inserted, in order: nothing refers to
/// them within the batch.)
struct Allocated {
    incidents: Vec<i64>,
}

async fn allocate_ids(tx: &PgTransaction<'_>, work: &mut Workspace) -> Result<Allocated, DbError> {
    let next = |table: &'static str, n: i64| async move {
        let mut ids: Vec<i64> = tx
            .query(
                "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2::int8)",
                &[&table, &n],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        ids.sort_unstable();
        Ok::<_, DbError>(ids)
    };
    if work.created == 0 {
        return Ok(Allocated {
            incidents: Vec::new(),
        });
    }
    let incidents = next("exploits", work.created).await?;
    Ok(Allocated { incidents })
}

fn real_id(ids: &Allocated, id: i64) -> Result<i64, DbError> {
    if id <= PROVISIONAL_BASE {
        return Ok(id);
    }
    usize::try_from(id - PROVISIONAL_BASE - 1)
        .ok()
        .and_then(|index| ids.incidents.get(index).copied())
        .ok_or_else(|| DbError::other("the batch allocated too few incident ids"))
}

/// Column arrays of one multi-row statement.
#[derive(Default)]
struct ExploitRows {
    id: Vec<i64>,
    protocol: Vec<String>,
    protocol_key: Vec<String>,
    chain: Vec<String>,
    tx_hash: Vec<Option<String>>,
    dedup_key: Vec<String>,
    amount_usd: Vec<Option<String>>,
    recovered_usd: Vec<Option<String>>,
    attack_class: Vec<String>,
    attack_type: Vec<String>,
    attack_text: Vec<Option<String>>,
    description: Vec<Option<String>>,
    status: Vec<String>,
    occurred_at: Vec<DateTime<Utc>>,
    source_url: Vec<Option<String>>,
    flash_loan: Vec<bool>,
    bridge: Vec<bool>,
}

impl ExploitRows {
    fn push(&mut self, id: i64, dedup_key: String, c: &Canonical, held: &[HashKey]) {
        let primary = c
            .chains
            .first()
            .map(|chain| chain.slug().to_owned())
            .unwrap_or_default();
        self.tx_hash.push(
            held.iter()
                .find(|(chain, _)| *chain == primary)
                .map(|(_, hash)| hash.clone()),
        );
        self.id.push(id);
        self.protocol.push(c.protocol.clone());
        self.protocol_key.push(c.protocol_key.clone());
        self.chain.push(primary);
        self.dedup_key.push(dedup_key);
        self.amount_usd.push(c.loss_usd.map(|u| u.to_string()));
        self.recovered_usd
            .push(c.recovered_usd.map(|u| u.to_string()));
        self.attack_class
            .push(c.attack_type.class().as_str().to_owned());
        self.attack_type.push(c.attack_type.as_str().to_owned());
        self.attack_text.push(c.attack_text.clone());
        self.description.push(c.description.clone());
        self.status.push(c.status.as_str().to_owned());
        self.occurred_at.push(c.occurred_at);
        self.source_url.push(c.source_url.clone());
        self.flash_loan.push(c.flash_loan);
        self.bridge.push(c.bridge);
    }
}

/// Claims as the column arrays of one multi-row statement ([`insert_claims`],
/// [`update_claims`]); the one-claim path sends a single row through the same statements.
#[derive(Default)]
pub(super) struct ClaimRows {
    id: Vec<i64>,
    exploit_id: Vec<i64>,
    source_name: Vec<String>,
    claim_key: Vec<String>,
    source_url: Vec<Option<String>>,
    external_id: Vec<Option<String>>,
    reported_name: Vec<String>,
    reported_date: Vec<String>,
    occurred_at: Vec<DateTime<Utc>>,
    amount_usd: Vec<Option<String>>,
    recovered_usd: Vec<Option<String>>,
    chains: Vec<String>,
    tx_hashes: Vec<String>,
    attack_class: Vec<String>,
    attack_type: Vec<String>,
    attack_text: Vec<Option<String>>,
    classification: Vec<Option<String>>,
    status: Vec<String>,
    description: Vec<Option<String>>,
    flash_loan: Vec<bool>,
    bridge: Vec<bool>,
}

impl ClaimRows {
    /// `id` is the stored claim's (for an update; unused by an insert).
    pub(super) fn push(&mut self, id: i64, exploit_id: i64, claim_key: &str, c: ClaimColumns) {
        self.id.push(id);
        self.exploit_id.push(exploit_id);
        self.source_name.push(c.source_name);
        self.claim_key.push(claim_key.to_owned());
        self.source_url.push(c.source_url);
        self.external_id.push(c.external_id);
        self.reported_name.push(c.reported_name);
        self.reported_date.push(c.reported_date);
        self.occurred_at.push(c.occurred_at);
        self.amount_usd.push(c.amount_usd);
        self.recovered_usd.push(c.recovered_usd);
        self.chains.push(c.chains);
        self.tx_hashes.push(c.tx_hashes);
        self.attack_class.push(c.attack_class);
        self.attack_type.push(c.attack_type);
        self.attack_text.push(c.attack_text);
        self.classification.push(c.classification);
        self.status.push(c.status);
        self.description.push(c.description);
        self.flash_loan.push(c.flash_loan);
        self.bridge.push(c.bridge);
    }
}

/// Writes what the batch changed: new incidents, re-derived existing ones, their chains
/// and hashes, new and updated claims.
async fn write(tx: &PgTransaction<'_>, work: &Workspace, ids: &Allocated) -> Result<(), DbError> {
    let mut touched: Vec<&Incident> = work.incidents.values().filter(|i| i.touched).collect();
    touched.sort_by_key(|i| i.id);
    let (mut new_rows, mut old_rows) = (ExploitRows::default(), ExploitRows::default());
    let (mut new_claims, mut updated_claims) = (ClaimRows::default(), ClaimRows::default());
    let mut old_ids = Vec::new();
    let (mut hash_ids, mut hash_chains, mut hash_values) = (Vec::new(), Vec::new(), Vec::new());
    let (mut chain_ids, mut chain_slugs) = (Vec::new(), Vec::new());
    for incident in touched {
        let id = real_id(ids, incident.id)?;
        let held = work.held_hashes(incident);
        match &incident.dedup_key {
            Some(key) => new_rows.push(id, key.clone(), &incident.canonical, &held),
            None => {
                old_ids.push(id);
                old_rows.push(id, String::new(), &incident.canonical, &held);
            }
        }
        for (chain, hash) in held {
            hash_ids.push(id);
            hash_chains.push(chain);
            hash_values.push(hash);
        }
        for chain in &incident.canonical.chains {
            chain_ids.push(id);
            chain_slugs.push(chain.slug().to_owned());
        }
        for claim in &incident.claims {
            let columns = ClaimColumns::from_draft(&claim.draft);
            match claim.state {
                ClaimState::Stored => {}
                ClaimState::Updated => updated_claims.push(claim.id, id, &claim.claim_key, columns),
                ClaimState::New => new_claims.push(0, id, &claim.claim_key, columns),
            }
        }
    }

    // Existing incidents first: one that gave up a hash must do so before a new one
    // takes it as its primary hash.
    if !old_rows.id.is_empty() {
        let r = &old_rows;
        tx.execute(
            "UPDATE exploits e SET protocol = u.protocol, protocol_key = u.protocol_key, chain = u.chain, \
                 tx_hash = u.tx_hash, amount_usd = u.amount_usd::numeric, recovered_usd = u.recovered_usd::numeric, \
                 attack_class = u.attack_class, attack_type = u.attack_type, \
                 attack_technique_raw = u.attack_text, description = u.description, status = u.status, \
                 occurred_at = u.occurred_at, source_url = u.source_url, flash_loan = u.flash_loan, \
                 bridge = u.bridge \
             FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], \
                 $14::text[], $15::bool[], $16::bool[]) \
               AS u(id, protocol, protocol_key, chain, tx_hash, amount_usd, recovered_usd, attack_class, \
                 attack_type, attack_text, description, status, occurred_at, source_url, flash_loan, bridge) \
             WHERE e.id = u.id",
            &[
                &r.id, &r.protocol, &r.protocol_key, &r.chain, &r.tx_hash, &r.amount_usd,
                &r.recovered_usd, &r.attack_class, &r.attack_type, &r.attack_text, &r.description,
                &r.status, &r.occurred_at, &r.source_url, &r.flash_loan, &r.bridge,
            ],
        )
        .await?;
    }
    if !new_rows.id.is_empty() {
        let r = &new_rows;
        tx.execute(
            "INSERT INTO exploits (id, protocol, protocol_key, chain, tx_hash, dedup_key, amount_usd, \
                 recovered_usd, attack_class, attack_type, attack_technique_raw, description, status, \
                 occurred_at, source_url, flash_loan, bridge) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[]::numeric[], $8::text[]::numeric[], $9::text[], $10::text[], $11::text[], \
                 $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::bool[], $17::bool[])",
            &[
                &r.id, &r.protocol, &r.protocol_key, &r.chain, &r.tx_hash, &r.dedup_key,
                &r.amount_usd, &r.recovered_usd, &r.attack_class, &r.attack_type, &r.attack_text,
                &r.description, &r.status, &r.occurred_at, &r.source_url, &r.flash_loan, &r.bridge,
            ],
        )
        .await?;
    }
    if !old_ids.is_empty() {
        tx.execute(
            "DELETE FROM exploit_tx_hashes WHERE exploit_id = ANY($1)",
            &[&old_ids],
        )
        .await?;
        tx.execute(
            "DELETE FROM exploit_chains WHERE exploit_id = ANY($1)",
            &[&old_ids],
        )
        .await?;
    }
    if !hash_ids.is_empty() {
        let inserted = tx
            .execute(
                "INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash) \
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[]) \
                 ON CONFLICT (chain, tx_hash) DO NOTHING",
                &[&hash_ids, &hash_chains, &hash_values],
            )
            .await?;
        // Only another writer, between our read and this insert, can take a hash: the
        // batch's picture is then stale, and the whole batch is refused.
        if usize::try_from(inserted).ok() != Some(hash_ids.len()) {
            return Err(DbError::other(
                "a transaction hash was taken by a concurrent writer during the batch",
            ));
        }
    }
    if !chain_ids.is_empty() {
        tx.execute(
            "INSERT INTO exploit_chains (exploit_id, chain) SELECT * FROM unnest($1::int8[], $2::text[])",
            &[&chain_ids, &chain_slugs],
        )
        .await?;
    }
    insert_claims(tx, &new_claims).await?;
    update_claims(tx, &updated_claims).await?;
    Ok(())
}

/// Inserts new claims; their ids come from the column default, in order.
pub(super) async fn insert_claims(tx: &PgTransaction<'_>, c: &ClaimRows) -> Result<(), DbError> {
    if c.exploit_id.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO exploit_sources (exploit_id, source_name, claim_key, source_url, external_id, \
             reported_name, reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, \
             attack_class, attack_type, attack_text, classification, status, description, flash_loan, bridge) \
         SELECT exploit_id, source_name, claim_key, source_url, external_id, reported_name, \
             reported_date, occurred_at, amount_usd::numeric, recovered_usd::numeric, chains::jsonb, \
             tx_hashes::jsonb, attack_class, attack_type, attack_text, classification, status, description, \
             flash_loan, bridge \
         FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
             $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bool[], $20::bool[]) \
           AS u(exploit_id, source_name, claim_key, source_url, external_id, reported_name, \
             reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, attack_class, \
             attack_type, attack_text, classification, status, description, flash_loan, bridge)",
        &[
            &c.exploit_id, &c.source_name, &c.claim_key, &c.source_url, &c.external_id,
            &c.reported_name, &c.reported_date, &c.occurred_at, &c.amount_usd, &c.recovered_usd,
            &c.chains, &c.tx_hashes, &c.attack_class, &c.attack_type, &c.attack_text,
            &c.classification, &c.status, &c.description, &c.flash_loan, &c.bridge,
        ],
    )
    .await
    .map(drop)
}

/// Updates stored claims (`id`) with what a re-import said, and moves `last_seen_at`.
pub(super) async fn update_claims(tx: &PgTransaction<'_>, c: &ClaimRows) -> Result<(), DbError> {
    if c.id.is_empty() {
        return Ok(());
    }
    tx.execute(
        "UPDATE exploit_sources s SET source_url = u.source_url, external_id = u.external_id, \
             reported_name = u.reported_name, reported_date = u.reported_date, occurred_at = u.occurred_at, \
             amount_usd = u.amount_usd::numeric, recovered_usd = u.recovered_usd::numeric, \
             chains = u.chains::jsonb, tx_hashes = u.tx_hashes::jsonb, attack_class = u.attack_class, \
             attack_type = u.attack_type, attack_text = u.attack_text, classification = u.classification, \
             status = u.status, description = u.description, flash_loan = u.flash_loan, \
             bridge = u.bridge, last_seen_at = now() \
         FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
             $14::text[], $15::text[], $16::text[], $17::bool[], $18::bool[]) \
           AS u(id, source_url, external_id, reported_name, reported_date, occurred_at, amount_usd, \
             recovered_usd, chains, tx_hashes, attack_class, attack_type, attack_text, classification, \
             status, description, flash_loan, bridge) \
         WHERE s.id = u.id",
        &[
            &c.id, &c.source_url, &c.external_id, &c.reported_name, &c.reported_date, &c.occurred_at,
            &c.amount_usd, &c.recovered_usd, &c.chains, &c.tx_hashes, &c.attack_class, &c.attack_type,
            &c.attack_text, &c.classification, &c.status, &c.description, &c.flash_loan, &c.bridge,
        ],
    )
    .await
    .map(drop)
}
