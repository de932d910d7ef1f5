//! The incident repository: ingest claims (dedup and merge in one transaction), read an
//! incident with every source's claim, list and count them.
//!
//! The rules live once, above the backends: `decide` (which incident a claim belongs
//! to), `replay` (a batch of claims decided in memory, in order) and `ingest` (the one
//! path: read the facts, decide, write). A backend (`postgres.rs`, `sqlite.rs`) only
//! reads and writes; the SQL that differs between them sits side by side in `read.rs`
//! and `query.rs`, chosen by `Dialect`. One conformance suite (`tests/incidents.rs`)
//! runs against both.

pub mod aliases;
pub mod candidates;
pub(crate) mod claims;
mod conflicts;
mod curation;
mod decide;
pub mod events;
mod ingest;
mod join;
mod postgres;
pub mod provenance;
pub mod query;
mod read;
mod regroup;
mod regroup_postgres;
mod regroup_sqlite;
mod replay;
mod sqlite;
pub mod stats;
mod totals;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kamiyo_db::{Database, Pool};
use kamiyo_domain::{Aliases, AttackType, Chain, IncidentDraft, Usd};
use serde::Serialize;

use crate::cache::{CacheLimits, Generation, TtlCache};
use crate::error::StoreError;

pub use aliases::ProtocolAlias;
pub use conflicts::{ClaimValue, Conflict};
pub use curation::DecisionKind;
pub use decide::MERGE_WINDOW_DAYS;
pub use ingest::Listed;
use ingest::Rules;
pub use join::JoinReason;
pub use postgres::lock_bucket;
pub use query::{
    Cursor, IncidentFilter, IncidentSummary, ListRequest, Order, Page, PageLimit, SortKey,
};
pub use regroup::{Curate, RemergeMerge, RemergePart, RemergeReport, RemergeSplit};
use regroup::{Remerged, Trigger};

/// What a curator's decision did: the decision's id and the remerge under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Curated {
    pub decision: i64,
    pub report: RemergeReport,
}

/// What ingesting one claim did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IngestAction {
    /// A new incident.
    Inserted,
    /// The claim was added to an existing incident.
    Merged,
    /// A claim seen before said something new; it was updated.
    Updated,
    /// The claim was already stored as it is.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    pub exploit_id: i64,
    pub action: IngestAction,
    /// Things the caller should know, e.g. a hash already held by another protocol's
    /// incident (kept in the claim, not given to this incident).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TxHashView {
    #[schema(value_type = String)]
    pub chain: Chain,
    pub hash: String,
}

/// One source's claim, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceClaim {
    /// The claim's id (what `kamiyo incident split --claims` names).
    pub id: i64,
    pub source: String,
    pub url: Option<String>,
    pub external_id: Option<String>,
    /// The protocol's name as the source wrote it.
    pub reported_name: String,
    /// The date as the source wrote it.
    pub reported_date: String,
    pub occurred_at: DateTime<Utc>,
    /// Decimal text with two decimals; absent when the source gives none.
    #[schema(value_type = Option<String>)]
    pub loss_usd: Option<Usd>,
    #[schema(value_type = Option<String>)]
    pub recovered_usd: Option<Usd>,
    #[schema(value_type = Vec<String>)]
    pub chains: Vec<Chain>,
    /// `chain:hash`.
    pub tx_hashes: Vec<String>,
    pub attack_type: AttackType,
    pub technique: Option<String>,
    pub classification: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Why this claim is part of the incident (absent for claims stored before this was
    /// recorded); `curated` when a curator's decision placed it.
    pub joined_by: Option<JoinReason>,
    /// The curator's decision that placed it, when one did.
    pub decision: Option<i64>,
    /// How strongly it is tied to the incident's other claims: the evidence points it
    /// shares with the closest of them (docs/DEDUP.md, "Evidence score"); absent for an
    /// incident of one claim.
    pub evidence: Option<u32>,
}

/// An incident with its canonical values and every claim behind them: what a listing
/// row shows ([`IncidentSummary`], flattened into the same JSON object, and reached
/// through `Deref`) and the rest.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Incident {
    #[serde(flatten)]
    pub summary: IncidentSummary,
    pub protocol_key: String,
    pub attack_text: Option<String>,
    pub tx_hashes: Vec<TxHashView>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sources: Vec<SourceClaim>,
    /// Where the sources disagree: the loss, the date, the chains, with each claim's
    /// value and source (empty when they agree).
    pub conflicts: Vec<Conflict>,
    /// Ids of incidents merged into this one, which now redirect here.
    pub merged_ids: Vec<i64>,
    /// Which claim gave each canonical value.
    pub provenance: Vec<provenance::FieldSource>,
}

impl std::ops::Deref for Incident {
    type Target = IncidentSummary;

    fn deref(&self) -> &IncidentSummary {
        &self.summary
    }
}

/// Incidents in the database behind a [`Database`].
#[derive(Clone)]
pub struct IncidentStore {
    db: Database,
    /// Moves on with every write through this store and its clones; the caches below,
    /// and the API's page cache, serve nothing read under an earlier one.
    writes: Generation,
    totals: std::sync::Arc<totals::TotalCache>,
    /// Stats answers, cached and single-flighted like totals (same TTL and bound).
    stats: std::sync::Arc<totals::StatsCache>,
    /// Which protocol names are one protocol (kamiyo_domain::identity).
    aliases: Arc<aliases::AliasTable>,
}

/// Forgets the caches again when a write ends (see [`IncidentStore::write_guard`]).
struct WriteGuard<'a>(&'a IncidentStore);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.0.invalidate_caches();
    }
}

/// The writes that follow a claim's ingest in its transaction, made from its outcome
/// (see [`IncidentStore::ingest_then`]).
/// An `Err` refuses the whole transaction (the claim is not stored either).
pub(crate) type Follow = Arc<
    dyn Fn(&IngestOutcome) -> Result<Vec<crate::statement::Step>, StoreError>
        + Send
        + Sync
        + 'static,
>;

/// How many times a batch is decided again after losing a race for a transaction hash
/// to another writer (each loss means that writer committed, so progress is made).
const RACE_ATTEMPTS: u32 = 5;

/// The maintenance task migration 0009 leaves for the binary: a remerge.
const REMERGE_TASK: &str = "remerge";

/// How long a listing's `total` may be reused by this process when it wrote nothing in
/// between (see [`IncidentStore::with_total_cache`]).
pub const DEFAULT_TOTAL_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);
pub use totals::DEFAULT_TOTAL_CACHE_MAX_ENTRIES;

impl IncidentStore {
    pub fn new(db: Database) -> Self {
        Self::with_total_cache(db, DEFAULT_TOTAL_CACHE_TTL, DEFAULT_TOTAL_CACHE_MAX_ENTRIES)
    }

    /// Counting every match of a filter costs a scan; a listing's `total` is reused for
    /// the same filter for up to `ttl`, and concurrent listings of one filter share one
    /// count. A write through this store invalidates every cached total at once, so this
    /// process never shows a total older than its own writes; another instance's writes
    /// show within `ttl`. Zero turns the cache off. At most `max_entries` filters are
    /// remembered. Time is read from the database's clock ([`Database::clock`]).
    pub fn with_total_cache(db: Database, ttl: std::time::Duration, max_entries: usize) -> Self {
        let writes = Generation::default();
        let limits = CacheLimits::new(ttl, max_entries);
        let clock = db.clock();
        IncidentStore {
            totals: std::sync::Arc::new(TtlCache::with_generation(
                limits,
                clock.clone(),
                writes.clone(),
            )),
            stats: std::sync::Arc::new(TtlCache::with_generation(
                limits,
                clock.clone(),
                writes.clone(),
            )),
            writes,
            db,
            aliases: Arc::new(aliases::AliasTable::new(
                shipped_aliases(),
                aliases::DEFAULT_ALIAS_REFRESH,
            )),
        }
    }

    /// The same store deciding with `aliases` instead of the shipped table (operators'
    /// aliases still added to it).
    pub fn with_aliases(mut self, aliases: Aliases) -> Self {
        self.aliases = Arc::new(aliases::AliasTable::new(
            aliases,
            aliases::DEFAULT_ALIAS_REFRESH,
        ));
        self
    }

    /// How long operators' aliases read from the database are used before being read
    /// again ([`aliases::DEFAULT_ALIAS_REFRESH`] by default): another instance's change
    /// is decided with within this long; this store's own change at once.
    pub fn with_alias_refresh(mut self, refresh: std::time::Duration) -> Self {
        self.aliases = Arc::new(self.aliases.with_refresh(refresh));
        self
    }

    /// Declares `alias` a name of `name`'s protocol, with why and who, for every later
    /// decision (a remerge applies it to what is stored). Refused, naming the field,
    /// when the alias is one already or the names key alike.
    pub async fn add_alias(
        &self,
        name: &str,
        alias: &str,
        reason: &str,
        added_by: &str,
    ) -> Result<ProtocolAlias, StoreError> {
        self.aliases
            .add(&self.db, name, alias, reason, added_by)
            .await
    }

    /// Removes an alias an operator added (a shipped one is code: it is changed by a
    /// release); whether there was one.
    pub async fn remove_alias(&self, alias: &str) -> Result<bool, StoreError> {
        self.aliases.remove(&self.db, alias).await
    }

    /// The aliases operators added, oldest first, and how many groups the shipped
    /// table has.
    pub async fn aliases(&self) -> Result<(Vec<ProtocolAlias>, usize), StoreError> {
        let shipped = self.aliases.base().groups();
        Ok((aliases::list(&self.db).await?, shipped))
    }

    /// Reads the operators' aliases when this store's copy is stale, so that
    /// [`IncidentStore::lock_key`] uses them (an ingest reads them by itself).
    pub async fn load_aliases(&self) -> Result<(), StoreError> {
        self.aliases.current(&self.db).await.map(|_| ())
    }

    /// The alias table as it is now (shipped and operators'), for matching names the
    /// way the store does (alert filters).
    pub async fn alias_table(&self) -> Result<Arc<kamiyo_domain::Aliases>, StoreError> {
        self.aliases.current(&self.db).await
    }

    /// The lock key of a protocol key (`kamiyo_domain::Aliases::lock_key`): claims of
    /// different lock keys never decide each other, so importers split their streams
    /// along them.
    pub fn lock_key(&self, protocol_key: &str) -> String {
        self.aliases.snapshot().lock_key(protocol_key)
    }

    /// Stores one claim: a new incident, a merge into an existing one, an update of a
    /// claim seen before, or nothing when it is already stored. All in one transaction:
    /// a failure leaves nothing half-written. (A batch of one: the same path as
    /// [`IncidentStore::ingest_batch`].)
    pub async fn ingest(&self, draft: &IncidentDraft) -> Result<IngestOutcome, StoreError> {
        let _write = self.write_guard();
        self.decide_one(draft, &self.rules(None).await?).await
    }

    /// Stores one claim through the ingest path, and in the same transaction the writes
    /// `follow` makes of its outcome (a reviewed submission's record, say): all of them or
    /// nothing. A guarded step that finds the database otherwise refuses the whole.
    pub(crate) async fn ingest_then(
        &self,
        draft: &IncidentDraft,
        follow: Follow,
    ) -> Result<IngestOutcome, StoreError> {
        let _write = self.write_guard();
        self.ingest_and_follow(draft, &follow, true).await
    }

    /// What storing `draft` would do (insert, merge into which incident), without storing
    /// it: the ingest path in a transaction that is rolled back.
    pub async fn dry_run(&self, draft: &IncidentDraft) -> Result<IngestOutcome, StoreError> {
        let nothing: Follow = Arc::new(|_| Ok(Vec::new()));
        self.ingest_and_follow(draft, &nothing, false).await
    }

    async fn ingest_and_follow(
        &self,
        draft: &IncidentDraft,
        follow: &Follow,
        commit: bool,
    ) -> Result<IngestOutcome, StoreError> {
        let rules = self.rules(None).await?;
        let mut attempt = 1;
        loop {
            let result = match self.db.primary() {
                Pool::Postgres(pool) => {
                    postgres::ingest_then(pool, draft, &rules, follow, commit).await
                }
                Pool::Sqlite(pool) => {
                    sqlite::ingest_then(pool, draft, &rules, follow, commit).await
                }
            };
            match result {
                Err(StoreError::Raced) if attempt < RACE_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    async fn decide_one(
        &self,
        draft: &IncidentDraft,
        rules: &Rules,
    ) -> Result<IngestOutcome, StoreError> {
        self.decide_and_write(std::slice::from_ref(draft), rules)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Invariant("a batch of one gave no outcome".into()))
    }

    /// Stores many claims, as an import sends them, with the same decisions as
    /// [`IncidentStore::ingest`] one after the other: one result per claim, in order. The
    /// batch is one transaction with a handful of statements per table on PostgreSQL
    /// (one prepared statement per row on SQLite); when the database refuses anything in
    /// it, the batch is rolled back and its claims are ingested one at a time, so that
    /// only the refused claim is refused. `Err` means the database itself failed
    /// (unreachable, busy): nothing of the batch is stored, except claims already stored
    /// one at a time after a refused batch, and running it again is safe.
    pub async fn ingest_batch(
        &self,
        drafts: &[IncidentDraft],
    ) -> Result<Vec<Result<IngestOutcome, StoreError>>, StoreError> {
        self.ingest_with(drafts, &self.rules(None).await?).await
    }

    /// [`IncidentStore::ingest_batch`] for a part of a whole input (a file, a fetched
    /// source's answer) that lists the claims `listed`: a claim of one of its sources
    /// that the input no longer lists, with the source's id of a new claim, the same
    /// name and a date within the merge window, is that record corrected (its date, or
    /// the name's spelling), and is updated instead of a second claim being added.
    pub async fn ingest_listed(
        &self,
        drafts: &[IncidentDraft],
        listed: &Arc<Listed>,
    ) -> Result<Vec<Result<IngestOutcome, StoreError>>, StoreError> {
        self.ingest_with(drafts, &self.rules(Some(Arc::clone(listed))).await?)
            .await
    }

    async fn rules(&self, listed: Option<Arc<Listed>>) -> Result<Rules, StoreError> {
        Ok(Rules {
            aliases: self.aliases.current(&self.db).await?,
            listed,
            curation: None,
        })
    }

    async fn ingest_with(
        &self,
        drafts: &[IncidentDraft],
        rules: &Rules,
    ) -> Result<Vec<Result<IngestOutcome, StoreError>>, StoreError> {
        let _write = self.write_guard();
        match self.decide_and_write(drafts, rules).await {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            Err(error) if error.is_transient() || error.is_unavailable() => Err(error),
            Err(error) => {
                tracing::warn!(%error, claims = drafts.len(), "batch refused; ingesting its claims one at a time");
                let mut outcomes = Vec::with_capacity(drafts.len());
                for draft in drafts {
                    match self.decide_one(draft, rules).await {
                        Err(error) if error.is_transient() || error.is_unavailable() => {
                            return Err(error)
                        }
                        outcome => outcomes.push(outcome),
                    }
                }
                Ok(outcomes)
            }
        }
    }

    /// One batch through the backend's [`ingest::IngestIo`]; a batch that lost a race
    /// for a transaction hash to another writer is decided again on fresh reads.
    async fn decide_and_write(
        &self,
        drafts: &[IncidentDraft],
        rules: &Rules,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut attempt = 1;
        loop {
            let result = match self.db.primary() {
                Pool::Postgres(pool) => postgres::ingest_batch(pool, drafts, rules).await,
                Pool::Sqlite(pool) => sqlite::ingest_batch(pool, drafts, rules).await,
            };
            match result {
                Err(StoreError::Raced) if attempt < RACE_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    /// Reads go to the replica when one is in use (see [`Database::read`]); use
    /// [`IncidentStore::get_fresh`] right after a write.
    pub async fn get(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let incident = self.db.read(|pool| get_on(pool, id)).await?;
        Ok(incident.map(|i| self.scored(i)))
    }

    /// [`IncidentStore::get`] on the primary: sees this process's own writes.
    pub async fn get_fresh(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let incident = get_on(self.db.primary().clone(), id).await?;
        Ok(incident.map(|i| self.scored(i)))
    }

    /// The incident with each claim's evidence score, under the current alias table.
    fn scored(&self, mut incident: Incident) -> Incident {
        let aliases = self.aliases.snapshot();
        let same_group = |a: &str, b: &str| {
            let (a, b) = (
                kamiyo_domain::protocol::protocol_key(a),
                kamiyo_domain::protocol::protocol_key(b),
            );
            aliases.name_match(&a, &b) == kamiyo_domain::NameMatch::Same
        };
        let scores = provenance::scores(&incident.sources, same_group);
        for (claim, score) in incident.sources.iter_mut().zip(scores) {
            claim.evidence = score;
        }
        incident
    }

    /// [`IncidentStore::redirect`] on the primary: right after a remerge (a replica may
    /// not have it yet).
    pub async fn redirect_fresh(&self, id: i64) -> Result<Option<i64>, StoreError> {
        match self.db.primary() {
            Pool::Postgres(pool) => postgres::redirect(pool, id).await,
            Pool::Sqlite(pool) => sqlite::redirect(pool, id).await,
        }
    }

    /// The incident that `id` was merged into, when `id` was merged away (by a remerge
    /// or a curator): the API answers its old id with a redirect there.
    pub async fn redirect(&self, id: i64) -> Result<Option<i64>, StoreError> {
        self.db
            .read(|pool| async move {
                match pool {
                    Pool::Postgres(pool) => postgres::redirect(&pool, id).await,
                    Pool::Sqlite(pool) => sqlite::redirect(&pool, id).await,
                }
            })
            .await
    }

    /// Decides every stored claim again, from nothing, under the current rules and
    /// aliases, and (unless `dry_run`) writes the difference in one transaction:
    /// incidents merged, split, or rewritten; ids merged away redirect to their
    /// survivor. Ingests wait while it runs; readers do not.
    pub async fn remerge(&self, dry_run: bool) -> Result<RemergeReport, StoreError> {
        let _write = self.write_guard();
        self.remerge_with(!dry_run, &Trigger::Command)
            .await?
            .map(|done| done.report)
            .ok_or_else(|| StoreError::Invariant("a remerge without a task gave no report".into()))
    }

    /// Stores a curator's decision (merge incidents, or split claims off one) with who
    /// and why, and remerges under it in the same transaction: this and every later
    /// remerge respect it. [`StoreError::Refused`] names what the request got wrong.
    pub async fn curate(&self, request: Curate) -> Result<Curated, StoreError> {
        let _write = self.write_guard();
        let done = self
            .remerge_with(true, &Trigger::Curate(request))
            .await?
            .ok_or_else(|| StoreError::Invariant("a curation gave no report".into()))?;
        Ok(Curated {
            decision: done
                .decision
                .ok_or_else(|| StoreError::Invariant("a curation stored no decision".into()))?,
            report: done.report,
        })
    }

    /// Takes stored claim `claim` back (a reversed community submission): deletes it,
    /// decides every other claim again without it as [`IncidentStore::remerge`] does (its
    /// incident rewritten, split where it was the bridge, deleted when it was the only
    /// claim), then runs `follow`; all in one transaction.
    pub(crate) async fn withdraw_then(
        &self,
        claim: i64,
        follow: Vec<crate::statement::Step>,
    ) -> Result<RemergeReport, StoreError> {
        let _write = self.write_guard();
        self.remerge_with(true, &Trigger::Withdraw { claim, follow })
            .await?
            .map(|done| done.report)
            .ok_or_else(|| StoreError::Invariant("a withdrawal gave no report".into()))
    }

    /// The remerge a migration asked for (`maintenance_tasks`), when one is pending:
    /// run once, in the transaction that marks it done.
    pub async fn run_pending_remerge(&self) -> Result<Option<RemergeReport>, StoreError> {
        let _write = self.write_guard();
        Ok(self
            .remerge_with(true, &Trigger::Task(REMERGE_TASK))
            .await?
            .map(|done| done.report))
    }

    async fn remerge_with(
        &self,
        apply: bool,
        trigger: &Trigger,
    ) -> Result<Option<Remerged>, StoreError> {
        let rules = self.rules(None).await?;
        match self.db.primary() {
            Pool::Postgres(pool) => {
                let timeout = self.db.config().maintenance_timeout;
                regroup_postgres::remerge(pool, timeout, &rules, apply, trigger).await
            }
            Pool::Sqlite(pool) => regroup_sqlite::remerge(pool, &rules, apply, trigger).await,
        }
    }

    /// The review queue: pairs of incidents the rules keep apart whose evidence scores
    /// at least `min_score` (`candidates::DEFAULT_MIN_SCORE`), within `window_days` of
    /// each other, best first, at most `limit`; pairs a curator split apart are left out.
    pub async fn candidates(
        &self,
        window_days: i64,
        min_score: u32,
        limit: usize,
    ) -> Result<Vec<candidates::MergeCandidate>, StoreError> {
        use crate::statement::{self, Sql};
        const FACTS: Sql = Sql {
            postgres: "SELECT id, protocol, protocol_key, occurred_at, amount_usd::text AS amount_usd, chain \
                       FROM exploits",
            sqlite: "SELECT id, protocol, protocol_key, occurred_at, amount_usd, chain FROM exploits",
        };
        // The primary: a curator reads the queue right after deciding.
        let pool = self.db.primary();
        let mut incidents = statement::query(
            pool,
            FACTS.for_pool(pool),
            Vec::new(),
            candidates::facts_row,
        )
        .await?;
        let chains = statement::query(
            pool,
            "SELECT exploit_id, chain FROM exploit_chains",
            Vec::new(),
            |row| {
                let f = crate::row::Fields::of("exploit_chains", row);
                Ok((f.int("exploit_id")?, f.text("chain")?))
            },
        )
        .await?;
        let mut by_incident: std::collections::HashMap<i64, Vec<String>> =
            std::collections::HashMap::new();
        for (id, chain) in chains {
            by_incident.entry(id).or_default().push(chain);
        }
        for facts in &mut incidents {
            for chain in by_incident.remove(&facts.incident.id).unwrap_or_default() {
                if !facts.incident.chains.contains(&chain) {
                    facts.incident.chains.push(chain);
                }
            }
        }
        let decisions =
            statement::query(pool, regroup::DECISIONS.for_pool(pool), Vec::new(), |row| {
                regroup::decision_row(row)
            })
            .await?;
        let claims = if decisions.is_empty() {
            std::collections::HashMap::new()
        } else {
            statement::query(
                pool,
                "SELECT id, exploit_id FROM exploit_sources",
                Vec::new(),
                |row| {
                    let f = crate::row::Fields::of("exploit_sources", row);
                    Ok((f.int("id")?, f.int("exploit_id")?))
                },
            )
            .await?
            .into_iter()
            .collect()
        };
        let aliases = self.aliases.current(&self.db).await?;
        Ok(candidates::find(
            incidents,
            &aliases,
            &decisions,
            &claims,
            window_days.clamp(1, candidates::MAX_WINDOW_DAYS),
            min_score,
            limit,
        ))
    }

    /// Incidents holding a transaction hash (on any chain; normally one).
    pub async fn find_by_tx_hash(&self, hash: &str) -> Result<Vec<Incident>, StoreError> {
        let forms = &kamiyo_domain::TxHash::lookup_forms(hash);
        let ids = self
            .db
            .read(|pool| async move {
                match pool {
                    Pool::Postgres(pool) => postgres::ids_by_hash(&pool, forms).await,
                    Pool::Sqlite(pool) => sqlite::ids_by_hash(&pool, forms).await,
                }
            })
            .await?;
        let mut incidents = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(incident) = self.get(id).await? {
                incidents.push(incident);
            }
        }
        Ok(incidents)
    }

    /// One page of incidents matching the filters, with the total they match. The page
    /// and the total are read at the same time, on two connections; the total comes from
    /// the total cache when it can (see [`IncidentStore::with_total_cache`]).
    pub async fn list(&self, request: &ListRequest) -> Result<Page, StoreError> {
        let limit = request.limit.get();
        let key = totals::total_key(&request.filter);
        let page = async {
            match self.db.primary() {
                Pool::Postgres(pool) => postgres::list(pool, request, limit).await,
                Pool::Sqlite(pool) => sqlite::list(pool, request, limit).await,
            }
        };
        let total = async {
            totals::cached(&self.totals, key, || async {
                match self.db.primary() {
                    Pool::Postgres(pool) => postgres::count_matching(pool, &request.filter).await,
                    Pool::Sqlite(pool) => sqlite::count_matching(pool, &request.filter).await,
                }
                // The total cache shares one failure among its waiters as a DbError.
                .map_err(StoreError::into_db)
            })
            .await
            .map_err(StoreError::from)
        };
        let (mut items, total) = tokio::try_join!(page, total)?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| query::cursor_after(request, last))
        } else {
            None
        };
        Ok(Page {
            items,
            total,
            next_cursor,
        })
    }

    /// Cached totals and stats are from before a write: they are forgotten when it starts
    /// and again when it ends, however it ends (an error part-way, or the caller dropping
    /// the future after a commit). An answer computed during the write is then never
    /// reused after it.
    fn write_guard(&self) -> WriteGuard<'_> {
        self.invalidate_caches();
        WriteGuard(self)
    }

    fn invalidate_caches(&self) {
        self.writes.advance();
    }

    /// Moves on with every write through this store (and its clones). A cache of
    /// anything read from the store keeps what it read under the generation it read
    /// before, and stops using it once the generation differs: build it on this one
    /// ([`TtlCache::with_generation`]).
    pub fn writes(&self) -> &Generation {
        &self.writes
    }

    /// Count, loss, recovered, mean and max loss, chains and protocols affected, over
    /// incidents that occurred within `since..=until` (unbounded where `None`).
    pub async fn summary(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<stats::Summary, StoreError> {
        let key = totals::StatsKey::Summary { since, until };
        let answer = totals::cached(&self.stats, key, || async {
            self.db
                .read(|pool| async move { stats::summary(&pool, since, until).await })
                .await
                .map(totals::StatsAnswer::Summary)
                // The stats cache shares one failure among its waiters as a DbError.
                .map_err(StoreError::into_db)
        })
        .await?;
        match answer {
            totals::StatsAnswer::Summary(summary) => Ok(summary),
            totals::StatsAnswer::Buckets(_) => Err(StoreError::Invariant(
                "a stats key held another answer".into(),
            )),
        }
    }

    /// Incidents and loss per chain, attack type or month, over incidents that occurred
    /// within `since..=until`: largest first, months in calendar order.
    pub async fn breakdown(
        &self,
        dimension: stats::Dimension,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<stats::Bucket>, StoreError> {
        let key = totals::StatsKey::Breakdown {
            dimension,
            since,
            until,
        };
        let answer = totals::cached(&self.stats, key, || async {
            self.db
                .read(|pool| async move { stats::breakdown(&pool, dimension, since, until).await })
                .await
                .map(totals::StatsAnswer::Buckets)
                .map_err(StoreError::into_db)
        })
        .await?;
        match answer {
            totals::StatsAnswer::Buckets(buckets) => Ok(buckets),
            totals::StatsAnswer::Summary(_) => Err(StoreError::Invariant(
                "a stats key held another answer".into(),
            )),
        }
    }

    /// Every chain with its number of incidents that occurred within `since..=until`.
    pub async fn chains(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<stats::ChainCount>, StoreError> {
        self.db
            .read(|pool| async move { stats::chains(&pool, since, until).await })
            .await
    }

    pub async fn count(&self) -> Result<i64, StoreError> {
        self.db
            .read(|pool| async move {
                match pool {
                    Pool::Postgres(pool) => postgres::count(&pool).await,
                    Pool::Sqlite(pool) => sqlite::count(&pool).await,
                }
            })
            .await
    }
}

async fn get_on(pool: Pool, id: i64) -> Result<Option<Incident>, StoreError> {
    match pool {
        Pool::Postgres(pool) => postgres::get(&pool, id).await,
        Pool::Sqlite(pool) => sqlite::get(&pool, id).await,
    }
}

/// The shipped alias table. A test reads the file, so a failure here is a build that
/// skipped its tests: the service then runs on keys alone and says so.
fn shipped_aliases() -> Aliases {
    Aliases::shipped().unwrap_or_else(|error| {
        tracing::error!(%error, "the shipped protocol alias table cannot be read; matching names by their keys alone");
        Aliases::default()
    })
}
