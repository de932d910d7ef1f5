//! The incident repository's I/O on PostgreSQL: the ingest path's reads and writes as a
//! handful of multi-row statements per batch, and the reads of incidents and pages.

use chrono::{DateTime, Utc};
use kamiyo_db::postgres::{PgPool, PgTransaction};
use kamiyo_domain::IncidentDraft;

use super::claims::{self, ClaimColumns, StoredClaimRow};
use super::ingest::{self, Decided, IngestIo, Rules};
use super::join::JoinReason;
use super::read;
use super::replay::{Changes, ClaimWrite, HashKey, IncidentRow, Needs, Owners};
use super::{Incident, IncidentSummary};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::Fields;

const DIALECT: Dialect = Dialect::Postgres;

/// The advisory lock space (two-key form) of incident decisions; the migration lock
/// uses the one-key form, a separate space.
pub(super) const LOCK_CLASS: i32 = 0x4b4d_4931; // "KMI1"

/// Protocols share a fixed number of lock buckets rather than one lock each: a batch
/// of thousands of protocols then takes at most this many locks, well inside
/// PostgreSQL's shared lock table (64 per connection by default). Two protocols in one
/// bucket only wait for each other.
pub(super) const LOCK_BUCKETS: u32 = 256;

/// The lock bucket of a protocol: importers that write in parallel split their work
/// along these, so that their transactions never wait for each other's locks.
pub fn lock_bucket(protocol_key: &str) -> i32 {
    // FNV-1a: stable across processes and releases, unlike Rust's default hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in protocol_key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::try_from(hash % LOCK_BUCKETS).unwrap_or(0)
}

/// Ingests `drafts` in one transaction; one outcome per draft, in order. Any failure
/// rolls the whole batch back (the caller decides whether to retry it or to fall back
/// to one claim at a time).
pub(super) async fn ingest_batch(
    pool: &PgPool,
    drafts: &[IncidentDraft],
    rules: &Rules,
) -> Result<Vec<super::IngestOutcome>, StoreError> {
    let mut conn = pool.acquire().await?;
    let tx = conn.transaction().await?;
    let Decided { outcomes, wrote } =
        ingest::ingest(&mut PgIngest { tx: &tx }, drafts, rules).await?;
    if wrote {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(outcomes)
}

/// Ingests `draft` and runs the steps `follow` makes of its outcome, in one transaction;
/// `commit` false rolls everything back (what a claim would do, without doing it).
pub(super) async fn ingest_then(
    pool: &PgPool,
    draft: &IncidentDraft,
    rules: &Rules,
    follow: &super::Follow,
    commit: bool,
) -> Result<super::IngestOutcome, StoreError> {
    let mut conn = pool.acquire().await?;
    let tx = conn.transaction().await?;
    let Decided { mut outcomes, .. } = ingest::ingest(
        &mut PgIngest { tx: &tx },
        std::slice::from_ref(draft),
        rules,
    )
    .await?;
    let outcome = outcomes
        .pop()
        .ok_or_else(|| StoreError::Invariant("a batch of one gave no outcome".into()))?;
    crate::statement::run_steps_postgres(&tx, &follow(&outcome)?).await?;
    if commit {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(outcome)
}

pub(super) struct PgIngest<'t> {
    pub(super) tx: &'t PgTransaction<'t>,
}

impl IngestIo for PgIngest<'_> {
    async fn lock(&mut self, protocols: &[String]) -> Result<(), StoreError> {
        // Each bucket once, ascending: every writer that takes several takes them in the
        // same order, so two batches cannot deadlock.
        let mut buckets: Vec<i32> = protocols.iter().map(|p| lock_bucket(p)).collect();
        buckets.sort_unstable();
        buckets.dedup();
        self.tx
            .execute(
                "SELECT pg_advisory_xact_lock($1::int4, b) FROM unnest($2::int4[]) AS b",
                &[&LOCK_CLASS, &buckets],
            )
            .await?;
        Ok(())
    }

    async fn hash_owners(&mut self, hashes: &[HashKey]) -> Result<Owners, StoreError> {
        let mut owners = Owners::new();
        if hashes.is_empty() {
            return Ok(owners);
        }
        let (chains, values): (Vec<&str>, Vec<&str>) = hashes
            .iter()
            .map(|(chain, hash)| (chain.as_str(), hash.as_str()))
            .unzip();
        let rows = self
            .tx
            .query(
                // Fenced per hash, for the reason given in `incidents_near`.
                "SELECT x.chain, x.tx_hash, x.exploit_id, x.protocol_key \
                 FROM unnest($1::text[], $2::text[]) AS q(chain, tx_hash) \
                 CROSS JOIN LATERAL (SELECT h.chain, h.tx_hash, h.exploit_id, e.protocol_key \
                   FROM exploit_tx_hashes h JOIN exploits e ON e.id = h.exploit_id \
                   WHERE h.chain = q.chain AND h.tx_hash = q.tx_hash OFFSET 0) x",
                &[&chains, &values],
            )
            .await?;
        for row in &rows {
            let f = Fields::of("exploit_tx_hashes", row);
            owners.insert(
                (f.text("chain")?, f.text("tx_hash")?),
                (f.int("exploit_id")?, f.text("protocol_key")?),
            );
        }
        Ok(owners)
    }

    async fn incidents_near(&mut self, needs: &Needs) -> Result<Vec<i64>, StoreError> {
        let keys: Vec<&str> = needs.windows.iter().map(|(k, _, _)| k.as_str()).collect();
        let froms: Vec<DateTime<Utc>> = needs.windows.iter().map(|(_, f, _)| *f).collect();
        let tos: Vec<DateTime<Utc>> = needs.windows.iter().map(|(_, _, t)| *t).collect();
        let urls: Vec<&str> = needs.urls.iter().map(|(u, _, _)| u.as_str()).collect();
        let url_froms: Vec<DateTime<Utc>> = needs.urls.iter().map(|(_, f, _)| *f).collect();
        let url_tos: Vec<DateTime<Utc>> = needs.urls.iter().map(|(_, _, t)| *t).collect();
        let (sources, claim_keys): (Vec<&str>, Vec<&str>) = needs
            .claim_keys
            .iter()
            .map(|(s, k)| (s.as_str(), k.as_str()))
            .unzip();
        let rows = self
            .tx
            .query(
                // One index probe per claim, forced by the OFFSET 0 fences: while an
                // import grows the tables faster than autovacuum re-analyses them, the
                // planner otherwise hash-joins against a full scan (60 ms a batch at 100k
                // rows, against 4 ms).
                "SELECT x.id FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS w(k, f, t) \
                 CROSS JOIN LATERAL (SELECT e.id FROM exploits e \
                   WHERE e.protocol_key = w.k AND e.occurred_at BETWEEN w.f AND w.t OFFSET 0) x \
                 UNION \
                 SELECT x.id FROM unnest($4::text[], $5::text[]) AS c(source_name, claim_key) \
                 CROSS JOIN LATERAL (SELECT s.exploit_id AS id FROM exploit_sources s \
                   WHERE s.source_name = c.source_name AND s.claim_key = c.claim_key OFFSET 0) x \
                 UNION \
                 SELECT x.id FROM unnest($6::text[], $7::timestamptz[], $8::timestamptz[]) AS u(url, f, t) \
                 CROSS JOIN LATERAL (SELECT s.exploit_id AS id FROM exploit_sources s \
                   JOIN exploits e ON e.id = s.exploit_id \
                   WHERE s.source_url = u.url AND e.occurred_at BETWEEN u.f AND u.t OFFSET 0) x",
                &[&keys, &froms, &tos, &sources, &claim_keys, &urls, &url_froms, &url_tos],
            )
            .await?;
        rows.iter()
            .map(|row| Fields::of("exploits", row).int("id"))
            .collect()
    }

    async fn claims_of(&mut self, ids: &[i64]) -> Result<Vec<StoredClaimRow>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .tx
            .query(
                &format!(
                    "SELECT {} FROM exploit_sources WHERE exploit_id = ANY($1) \
                     ORDER BY exploit_id, first_seen_at, id",
                    claims::POSTGRES_COLUMNS
                ),
                &[&ids],
            )
            .await?;
        rows.iter().map(StoredClaimRow::read).collect()
    }

    async fn allocate_incident_ids(&mut self, n: usize) -> Result<Vec<i64>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let n = i64::try_from(n).map_err(|e| StoreError::Invariant(e.to_string()))?;
        let rows = self
            .tx
            .query(
                "SELECT nextval(pg_get_serial_sequence('exploits', 'id')) AS id \
                 FROM generate_series(1, $1::int8)",
                &[&n],
            )
            .await?;
        let mut ids = rows
            .iter()
            .map(|row| Fields::of("exploits", row).int("id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn apply(&mut self, changes: &Changes) -> Result<(), StoreError> {
        let tx = self.tx;
        if !changes.updated.is_empty() {
            let r = ExploitColumns::of(changes.updated.iter());
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
            let ids: Vec<i64> = changes.updated.iter().map(|row| row.id).collect();
            tx.execute(
                "DELETE FROM exploit_tx_hashes WHERE exploit_id = ANY($1)",
                &[&ids],
            )
            .await?;
            tx.execute(
                "DELETE FROM exploit_chains WHERE exploit_id = ANY($1)",
                &[&ids],
            )
            .await?;
        }
        if !changes.created.is_empty() {
            let r = ExploitColumns::of(changes.created.iter().map(|(_, row)| row));
            let dedup_keys: Vec<&str> = changes.created.iter().map(|(k, _)| k.as_str()).collect();
            tx.execute(
                "INSERT INTO exploits (id, protocol, protocol_key, chain, tx_hash, dedup_key, amount_usd, \
                     recovered_usd, attack_class, attack_type, attack_technique_raw, description, status, \
                     occurred_at, source_url, flash_loan, bridge) \
                 SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::text[]::numeric[], $8::text[]::numeric[], $9::text[], $10::text[], $11::text[], \
                     $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::bool[], $17::bool[])",
                &[
                    &r.id, &r.protocol, &r.protocol_key, &r.chain, &r.tx_hash, &dedup_keys,
                    &r.amount_usd, &r.recovered_usd, &r.attack_class, &r.attack_type, &r.attack_text,
                    &r.description, &r.status, &r.occurred_at, &r.source_url, &r.flash_loan, &r.bridge,
                ],
            )
            .await?;
        }
        if !changes.hashes.is_empty() {
            let ids: Vec<i64> = changes.hashes.iter().map(|(id, _, _)| *id).collect();
            let chains: Vec<&str> = changes.hashes.iter().map(|(_, c, _)| c.as_str()).collect();
            let hashes: Vec<&str> = changes.hashes.iter().map(|(_, _, h)| h.as_str()).collect();
            let inserted = tx
                .execute(
                    "INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash) \
                     SELECT * FROM unnest($1::int8[], $2::text[], $3::text[]) \
                     ON CONFLICT (chain, tx_hash) DO NOTHING",
                    &[&ids, &chains, &hashes],
                )
                .await?;
            // Only another writer, between our read and this insert, can take a hash.
            if usize::try_from(inserted).ok() != Some(ids.len()) {
                return Err(StoreError::Raced);
            }
        }
        if !changes.chains.is_empty() {
            let ids: Vec<i64> = changes.chains.iter().map(|(id, _)| *id).collect();
            let chains: Vec<&str> = changes.chains.iter().map(|(_, c)| c.as_str()).collect();
            tx.execute(
                "INSERT INTO exploit_chains (exploit_id, chain) SELECT * FROM unnest($1::int8[], $2::text[])",
                &[&ids, &chains],
            )
            .await?;
        }
        insert_claims(tx, &ClaimArrays::of(&changes.new_claims)).await?;
        update_claims(tx, &ClaimArrays::of(&changes.updated_claims)).await?;
        insert_events(tx, &changes.events).await
    }
}

/// The alert outbox's events, in the caller's transaction; the notification reaches the
/// alert dispatchers listening (`LISTEN kamiyo_alert_events`) when it commits, and
/// never if it rolls back.
pub(super) async fn insert_events(
    tx: &PgTransaction<'_>,
    events: &[super::events::NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let ids: Vec<i64> = events.iter().map(|e| e.exploit_id).collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let changes: Vec<Option<String>> = events.iter().map(|e| e.changes_text()).collect();
    tx.execute(
        "INSERT INTO alert_events (kind, exploit_id, occurred_at, changes) \
         SELECT k, i, o, c::jsonb FROM unnest($1::text[], $2::int8[], $3::timestamptz[], $4::text[]) \
           AS u(k, i, o, c)",
        &[&kinds, &ids, &times, &changes],
    )
    .await?;
    tx.execute("SELECT pg_notify($1, '')", &[&super::events::CHANNEL])
        .await?;
    Ok(())
}

/// `exploits` rows as the column arrays of one multi-row statement.
struct ExploitColumns<'a> {
    id: Vec<i64>,
    protocol: Vec<&'a str>,
    protocol_key: Vec<&'a str>,
    chain: Vec<&'a str>,
    tx_hash: Vec<Option<&'a str>>,
    amount_usd: Vec<Option<&'a str>>,
    recovered_usd: Vec<Option<&'a str>>,
    attack_class: Vec<&'a str>,
    attack_type: Vec<&'a str>,
    attack_text: Vec<Option<&'a str>>,
    description: Vec<Option<&'a str>>,
    status: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
    source_url: Vec<Option<&'a str>>,
    flash_loan: Vec<bool>,
    bridge: Vec<bool>,
}

impl<'a> ExploitColumns<'a> {
    fn of(rows: impl Iterator<Item = &'a IncidentRow>) -> Self {
        let mut c = ExploitColumns {
            id: Vec::new(),
            protocol: Vec::new(),
            protocol_key: Vec::new(),
            chain: Vec::new(),
            tx_hash: Vec::new(),
            amount_usd: Vec::new(),
            recovered_usd: Vec::new(),
            attack_class: Vec::new(),
            attack_type: Vec::new(),
            attack_text: Vec::new(),
            description: Vec::new(),
            status: Vec::new(),
            occurred_at: Vec::new(),
            source_url: Vec::new(),
            flash_loan: Vec::new(),
            bridge: Vec::new(),
        };
        for r in rows {
            c.id.push(r.id);
            c.protocol.push(&r.protocol);
            c.protocol_key.push(&r.protocol_key);
            c.chain.push(&r.chain);
            c.tx_hash.push(r.tx_hash.as_deref());
            c.amount_usd.push(r.amount_usd.as_deref());
            c.recovered_usd.push(r.recovered_usd.as_deref());
            c.attack_class.push(&r.attack_class);
            c.attack_type.push(&r.attack_type);
            c.attack_text.push(r.attack_text.as_deref());
            c.description.push(r.description.as_deref());
            c.status.push(&r.status);
            c.occurred_at.push(r.occurred_at);
            c.source_url.push(r.source_url.as_deref());
            c.flash_loan.push(r.flash_loan);
            c.bridge.push(r.bridge);
        }
        c
    }
}

/// Claims as the column arrays of one multi-row statement.
#[derive(Default)]
struct ClaimArrays<'a> {
    id: Vec<i64>,
    exploit_id: Vec<i64>,
    source_name: Vec<&'a str>,
    claim_key: Vec<&'a str>,
    source_url: Vec<Option<&'a str>>,
    external_id: Vec<Option<&'a str>>,
    reported_name: Vec<&'a str>,
    reported_date: Vec<&'a str>,
    occurred_at: Vec<DateTime<Utc>>,
    amount_usd: Vec<Option<&'a str>>,
    recovered_usd: Vec<Option<&'a str>>,
    chains: Vec<&'a str>,
    tx_hashes: Vec<&'a str>,
    attack_class: Vec<&'a str>,
    attack_type: Vec<&'a str>,
    attack_text: Vec<Option<&'a str>>,
    classification: Vec<Option<&'a str>>,
    status: Vec<&'a str>,
    description: Vec<Option<&'a str>>,
    flash_loan: Vec<bool>,
    bridge: Vec<bool>,
    joined_by: Vec<Option<&'static str>>,
}

impl<'a> ClaimArrays<'a> {
    fn of(writes: &'a [ClaimWrite]) -> Self {
        let mut a = ClaimArrays::default();
        for w in writes {
            let c: &ClaimColumns = &w.columns;
            a.id.push(w.id);
            a.exploit_id.push(w.exploit_id);
            a.source_name.push(&c.source_name);
            a.claim_key.push(&w.claim_key);
            a.source_url.push(c.source_url.as_deref());
            a.external_id.push(c.external_id.as_deref());
            a.reported_name.push(&c.reported_name);
            a.reported_date.push(&c.reported_date);
            a.occurred_at.push(c.occurred_at);
            a.amount_usd.push(c.amount_usd.as_deref());
            a.recovered_usd.push(c.recovered_usd.as_deref());
            a.chains.push(&c.chains);
            a.tx_hashes.push(&c.tx_hashes);
            a.attack_class.push(&c.attack_class);
            a.attack_type.push(&c.attack_type);
            a.attack_text.push(c.attack_text.as_deref());
            a.classification.push(c.classification.as_deref());
            a.status.push(&c.status);
            a.description.push(c.description.as_deref());
            a.flash_loan.push(c.flash_loan);
            a.bridge.push(c.bridge);
            a.joined_by.push(w.joined_by.and_then(JoinReason::column));
        }
        a
    }
}

/// Inserts new claims; their ids come from the column default, in order.
async fn insert_claims(tx: &PgTransaction<'_>, c: &ClaimArrays<'_>) -> Result<(), StoreError> {
    if c.exploit_id.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO exploit_sources (exploit_id, source_name, claim_key, source_url, external_id, \
             reported_name, reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, \
             attack_class, attack_type, attack_text, classification, status, description, flash_loan, bridge, \
             joined_by) \
         SELECT exploit_id, source_name, claim_key, source_url, external_id, reported_name, \
             reported_date, occurred_at, amount_usd::numeric, recovered_usd::numeric, chains::jsonb, \
             tx_hashes::jsonb, attack_class, attack_type, attack_text, classification, status, description, \
             flash_loan, bridge, joined_by \
         FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
             $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bool[], $20::bool[], \
             $21::text[]) \
           AS u(exploit_id, source_name, claim_key, source_url, external_id, reported_name, \
             reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, attack_class, \
             attack_type, attack_text, classification, status, description, flash_loan, bridge, joined_by)",
        &[
            &c.exploit_id, &c.source_name, &c.claim_key, &c.source_url, &c.external_id,
            &c.reported_name, &c.reported_date, &c.occurred_at, &c.amount_usd, &c.recovered_usd,
            &c.chains, &c.tx_hashes, &c.attack_class, &c.attack_type, &c.attack_text,
            &c.classification, &c.status, &c.description, &c.flash_loan, &c.bridge,
            &c.joined_by,
        ],
    )
    .await?;
    Ok(())
}

/// Updates stored claims (`id`) with what a re-import said (a corrected record's key
/// too), and moves `last_seen_at`.
async fn update_claims(tx: &PgTransaction<'_>, c: &ClaimArrays<'_>) -> Result<(), StoreError> {
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
             bridge = u.bridge, claim_key = u.claim_key, last_seen_at = now() \
         FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
             $14::text[], $15::text[], $16::text[], $17::bool[], $18::bool[], $19::text[]) \
           AS u(id, source_url, external_id, reported_name, reported_date, occurred_at, amount_usd, \
             recovered_usd, chains, tx_hashes, attack_class, attack_type, attack_text, classification, \
             status, description, flash_loan, bridge, claim_key) \
         WHERE s.id = u.id",
        &[
            &c.id, &c.source_url, &c.external_id, &c.reported_name, &c.reported_date, &c.occurred_at,
            &c.amount_usd, &c.recovered_usd, &c.chains, &c.tx_hashes, &c.attack_class, &c.attack_type,
            &c.attack_text, &c.classification, &c.status, &c.description, &c.flash_loan, &c.bridge,
            &c.claim_key,
        ],
    )
    .await?;
    Ok(())
}

/// One snapshot for all five statements: a remerge committing between them would
/// otherwise show an incident without the claims it just moved in.
pub(super) async fn get(pool: &PgPool, id: i64) -> Result<Option<Incident>, StoreError> {
    let mut conn = pool.acquire().await?;
    let tx = conn.snapshot().await?;
    let Some(row) = tx.query_opt(read::incident_sql(DIALECT), &[&id]).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let chains = tx.query(read::chains_sql(DIALECT), &[&id]).await?;
    let hashes = tx.query(read::hashes_sql(DIALECT), &[&id]).await?;
    let claims = tx.query(&read::claims_sql(DIALECT), &[&id]).await?;
    let merged = tx.query(read::merged_ids_sql(DIALECT), &[&id]).await?;
    tx.commit().await?;
    Ok(Some(read::incident(
        &row,
        chains.iter().map(read::chain).collect::<Result<_, _>>()?,
        hashes.iter().map(read::tx_hash).collect::<Result<_, _>>()?,
        claims
            .iter()
            .map(StoredClaimRow::read)
            .collect::<Result<_, _>>()?,
        merged
            .iter()
            .map(read::merged_id)
            .collect::<Result<_, _>>()?,
    )?))
}

/// The incident `id` was merged into, when it was.
pub(super) async fn redirect(pool: &PgPool, id: i64) -> Result<Option<i64>, StoreError> {
    let conn = pool.acquire().await?;
    conn.query_opt(read::redirect_sql(DIALECT), &[&id])
        .await?
        .map(|row| Fields::of("incident_redirects", &row).int("exploit_id"))
        .transpose()
}

pub(super) async fn ids_by_hash(
    pool: &PgPool,
    forms: &[String; kamiyo_domain::tx::LOOKUP_FORMS],
) -> Result<Vec<i64>, StoreError> {
    let conn = pool.acquire().await?;
    conn.query(
        read::ids_by_hash_sql(DIALECT),
        &[&forms[0], &forms[1], &forms[2]],
    )
    .await?
    .iter()
    .map(read::exploit_id)
    .collect()
}

pub(super) async fn count(pool: &PgPool) -> Result<i64, StoreError> {
    let conn = pool.acquire().await?;
    let row = conn
        .query_one("SELECT count(*) AS n FROM exploits", &[])
        .await?;
    Fields::of("exploits", &row).int("n")
}

/// One page: the listing's statements in order (`query::page_statements`), on one
/// connection, until `limit + 1` rows are read.
pub(super) async fn list(
    pool: &PgPool,
    request: &super::ListRequest,
    limit: usize,
) -> Result<Vec<IncidentSummary>, StoreError> {
    let statements =
        super::query::page_statements(request, limit, DIALECT, read::summary_columns(DIALECT));
    let conn = pool.acquire().await?;
    let mut items = Vec::with_capacity(limit + 1);
    for statement in statements {
        if items.len() > limit {
            break;
        }
        let rows = conn
            .query(&statement.sql, &text_params(&statement.params))
            .await?;
        for row in &rows {
            items.push(read::summary(row)?);
        }
    }
    Ok(items)
}

/// How many incidents the listing's filters match (`query::count_statement`).
pub(super) async fn count_matching(
    pool: &PgPool,
    filter: &super::IncidentFilter,
) -> Result<i64, StoreError> {
    let statement = super::query::count_statement(filter, DIALECT);
    let conn = pool.acquire().await?;
    let row = conn
        .query_one(&statement.sql, &text_params(&statement.params))
        .await?;
    Fields::of("exploits", &row).int("count")
}

fn text_params(params: &[String]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}
