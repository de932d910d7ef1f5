//! The incident repository on PostgreSQL.

use chrono::{DateTime, Utc};
use kamiyo_db::postgres::{PgPool, PgTransaction};
use kamiyo_db::DbError;
use kamiyo_domain::canonical::{self, Canonical};
use kamiyo_domain::{IncidentDraft, TxHash, Usd};
use tokio_postgres::Row;

use super::batch::{insert_claims, update_claims, ClaimRows};
use super::decide::{
    decide, foreign_hash_warning, window, Candidate, HashOwner, Plan, StoredClaim,
};
use super::rows::ClaimColumns;
use super::{dedup_key, Incident, IngestAction, IngestOutcome, SourceClaim, TxHashView};

pub(super) const CLAIM_COLUMNS: &str = "id, exploit_id, source_name, source_url, external_id, reported_name, reported_date, \
     occurred_at, amount_usd::text, recovered_usd::text, chains::text, tx_hashes::text, attack_class, attack_type, \
     attack_text, classification, status, description, flash_loan, bridge, first_seen_at, last_seen_at";

/// The advisory lock space (two-key form) of incident decisions; the migration lock
/// uses the one-key form, a separate space.
pub(super) const LOCK_CLASS: i32 = 0x4b4d_4931; // "KMI1"

/// Protocols share a fixed number of lock buckets rather than one lock each: a batch
/// of thousands of protocols then takes at most this many locks, well inside
/// PostgreSQL's shared lock table (64 per connection by default). Two protocols in one
/// bucket only wait for each other.
const LOCK_BUCKETS: u32 = 256;

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

/// The buckets of `keys`, each once, in ascending order: every writer that takes
/// several takes them in the same order, so two batches cannot deadlock.
pub(super) fn lock_buckets<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<i32> {
    let mut buckets: Vec<i32> = keys.map(lock_bucket).collect();
    buckets.sort_unstable();
    buckets.dedup();
    buckets
}

pub(super) async fn ingest(pool: &PgPool, draft: &IncidentDraft) -> Result<IngestOutcome, DbError> {
    let mut conn = pool.acquire().await?;
    let tx = conn.transaction().await?;
    // Claims about one protocol are decided one at a time, so two importers cannot both
    // decide "new incident" for the same hack.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1::int4, $2::int4)",
        &[&LOCK_CLASS, &lock_bucket(draft.protocol.key())],
    )
    .await?;

    let columns = ClaimColumns::from_draft(draft);
    let claim_key = draft.claim_key();
    let existing = match tx
        .query_opt(
            &format!("SELECT {CLAIM_COLUMNS} FROM exploit_sources WHERE source_name = $1 AND claim_key = $2"),
            &[&columns.source_name, &claim_key],
        )
        .await?
    {
        Some(row) => Some(StoredClaim {
            claim_id: row.get(0),
            exploit_id: row.get(1),
            draft: claim_from_row(&row)?.into_draft()?,
        }),
        None => None,
    };
    let mut owners = Vec::new();
    for hash in &draft.tx_hashes {
        let rows = tx
            .query(
                "SELECT h.exploit_id, e.protocol_key FROM exploit_tx_hashes h JOIN exploits e ON e.id = h.exploit_id \
                 WHERE h.chain = $1 AND h.tx_hash = $2",
                &[&hash.chain.slug(), &hash.hash],
            )
            .await?;
        owners.extend(rows.iter().map(|row| HashOwner {
            exploit_id: row.get(0),
            protocol_key: row.get(1),
        }));
    }
    let (from, to) = window(draft);
    let candidates = tx
        .query(
            "SELECT e.id, e.occurred_at, e.amount_usd::text, \
                    ARRAY(SELECT c.chain FROM exploit_chains c WHERE c.exploit_id = e.id), \
                    ARRAY(SELECT DISTINCT s.source_name FROM exploit_sources s WHERE s.exploit_id = e.id) \
             FROM exploits e WHERE e.protocol_key = $1 AND e.occurred_at BETWEEN $2 AND $3",
            &[&draft.protocol.key(), &from, &to],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(Candidate {
                id: row.get(0),
                occurred_at: row.get(1),
                loss_usd: money(row.get(2))?,
                chains: row.get(3),
                sources: row.get(4),
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;

    let plan = decide(draft, existing.as_ref(), &owners, &candidates);
    let (exploit_id, action) = match plan {
        Plan::Unchanged { exploit_id } => {
            tx.rollback().await?;
            return Ok(IngestOutcome {
                exploit_id,
                action: IngestAction::Unchanged,
                warnings: Vec::new(),
            });
        }
        Plan::UpdateClaim {
            claim_id,
            exploit_id,
        } => {
            let mut row = ClaimRows::default();
            row.push(claim_id, exploit_id, &claim_key, columns);
            update_claims(&tx, &row).await?;
            (exploit_id, IngestAction::Updated)
        }
        Plan::Merge { exploit_id } => {
            insert_claim(&tx, exploit_id, &claim_key, columns).await?;
            (exploit_id, IngestAction::Merged)
        }
        Plan::Insert => {
            let canonical = canonical::derive(std::slice::from_ref(draft))
                .ok_or_else(|| DbError::other("a claim must derive an incident"))?;
            let exploit_id = insert_exploit(&tx, &canonical, &dedup_key(draft)).await?;
            insert_claim(&tx, exploit_id, &claim_key, columns).await?;
            (exploit_id, IngestAction::Inserted)
        }
    };
    let warnings = rederive(&tx, exploit_id).await?;
    tx.commit().await?;
    Ok(IngestOutcome {
        exploit_id,
        action,
        warnings,
    })
}

fn money(text: Option<String>) -> Result<Option<Usd>, DbError> {
    text.map(|t| Usd::parse("amount_usd", &t).map_err(|e| DbError::other(e.to_string())))
        .transpose()
}

pub(super) fn claim_from_row(row: &Row) -> Result<ClaimColumns, DbError> {
    Ok(ClaimColumns {
        source_name: row.get(2),
        source_url: row.get(3),
        external_id: row.get(4),
        reported_name: row.get(5),
        reported_date: row.get::<_, Option<String>>(6).unwrap_or_default(),
        occurred_at: row.get(7),
        amount_usd: row.get(8),
        recovered_usd: row.get(9),
        chains: row.get(10),
        tx_hashes: row.get(11),
        attack_class: row.get::<_, Option<String>>(12).unwrap_or_default(),
        attack_type: row
            .get::<_, Option<String>>(13)
            .unwrap_or_else(|| "unknown".into()),
        attack_text: row.get(14),
        classification: row.get(15),
        status: row
            .get::<_, Option<String>>(16)
            .unwrap_or_else(|| "confirmed".into()),
        description: row.get(17),
        flash_loan: row.get::<_, Option<bool>>(18).unwrap_or(false),
        bridge: row.get::<_, Option<bool>>(19).unwrap_or(false),
    })
}

/// One claim through the batch writer's statement (one SQL text for both paths).
async fn insert_claim(
    tx: &PgTransaction<'_>,
    exploit_id: i64,
    claim_key: &str,
    columns: ClaimColumns,
) -> Result<(), DbError> {
    let mut row = ClaimRows::default();
    row.push(0, exploit_id, claim_key, columns);
    insert_claims(tx, &row).await
}

async fn insert_exploit(
    tx: &PgTransaction<'_>,
    c: &Canonical,
    dedup_key: &str,
) -> Result<i64, DbError> {
    let primary = c
        .chains
        .first()
        .map(|chain| chain.slug().to_owned())
        .unwrap_or_default();
    let row = tx
        .query_one(
            "INSERT INTO exploits (protocol, protocol_key, chain, dedup_key, occurred_at, status) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &c.protocol,
                &c.protocol_key,
                &primary,
                &dedup_key,
                &c.occurred_at,
                &c.status.as_str(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Re-derives the incident's canonical values, chains and hashes from all its claims.
/// Returns warnings for hashes another incident holds.
async fn rederive(tx: &PgTransaction<'_>, exploit_id: i64) -> Result<Vec<String>, DbError> {
    let rows = tx
        .query(
            &format!("SELECT {CLAIM_COLUMNS} FROM exploit_sources WHERE exploit_id = $1 ORDER BY first_seen_at, id"),
            &[&exploit_id],
        )
        .await?;
    let claims = rows
        .iter()
        .map(|row| claim_from_row(row)?.into_draft())
        .collect::<Result<Vec<_>, DbError>>()?;
    let c = canonical::derive(&claims)
        .ok_or_else(|| DbError::other(format!("incident {exploit_id} has no claims")))?;
    let primary = c
        .chains
        .first()
        .map(|chain| chain.slug().to_owned())
        .unwrap_or_default();

    tx.execute(
        "DELETE FROM exploit_tx_hashes WHERE exploit_id = $1",
        &[&exploit_id],
    )
    .await?;
    let mut owned: Vec<&TxHash> = Vec::new();
    let mut warnings = Vec::new();
    for hash in &c.tx_hashes {
        let inserted = tx
            .execute(
                "INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash) VALUES ($1, $2, $3) \
                 ON CONFLICT (chain, tx_hash) DO NOTHING",
                &[&exploit_id, &hash.chain.slug(), &hash.hash],
            )
            .await?;
        if inserted == 1 {
            owned.push(hash);
        } else {
            warnings.push(foreign_hash_warning(hash));
        }
    }
    tx.execute(
        "DELETE FROM exploit_chains WHERE exploit_id = $1",
        &[&exploit_id],
    )
    .await?;
    for chain in &c.chains {
        tx.execute(
            "INSERT INTO exploit_chains (exploit_id, chain) VALUES ($1, $2)",
            &[&exploit_id, &chain.slug()],
        )
        .await?;
    }
    let primary_hash = owned
        .iter()
        .find(|h| h.chain.slug() == primary)
        .map(|h| h.hash.clone());
    tx.execute(
        "UPDATE exploits SET protocol = $2, protocol_key = $3, chain = $4, tx_hash = $5, amount_usd = $6::text::numeric, \
             recovered_usd = $7::text::numeric, attack_class = $8, attack_type = $9, attack_technique_raw = $10, \
             description = $11, status = $12, occurred_at = $13, source_url = $14, flash_loan = $15, bridge = $16 \
         WHERE id = $1",
        &[
            &exploit_id,
            &c.protocol,
            &c.protocol_key,
            &primary,
            &primary_hash,
            &c.loss_usd.map(|u| u.to_string()),
            &c.recovered_usd.map(|u| u.to_string()),
            &c.attack_type.class().as_str(),
            &c.attack_type.as_str(),
            &c.attack_text,
            &c.description,
            &c.status.as_str(),
            &c.occurred_at,
            &c.source_url,
            &c.flash_loan,
            &c.bridge,
        ],
    )
    .await?;
    Ok(warnings)
}

pub(super) async fn get(pool: &PgPool, id: i64) -> Result<Option<Incident>, DbError> {
    let conn = pool.acquire().await?;
    let Some(row) = conn
        .query_opt(
            "SELECT id, protocol, protocol_key, chain, occurred_at, amount_usd::text, recovered_usd::text, \
                    attack_class, attack_type, attack_technique_raw, flash_loan, bridge, status, description, \
                    source_url, created_at, updated_at \
             FROM exploits WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let primary: String = row.get(3);
    let mut chains: Vec<String> = conn
        .query(
            "SELECT chain FROM exploit_chains WHERE exploit_id = $1 ORDER BY chain",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    chains.sort_by_key(|chain| chain != &primary);
    let tx_hashes = conn
        .query(
            "SELECT chain, tx_hash FROM exploit_tx_hashes WHERE exploit_id = $1 ORDER BY chain, tx_hash",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| TxHashView { chain: r.get(0), hash: r.get(1) })
        .collect();
    let sources = conn
        .query(
            &format!("SELECT {CLAIM_COLUMNS} FROM exploit_sources WHERE exploit_id = $1 ORDER BY first_seen_at, id"),
            &[&id],
        )
        .await?
        .iter()
        .map(source_claim)
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(Some(Incident {
        id: row.get(0),
        protocol: row.get(1),
        protocol_key: row.get(2),
        chains,
        occurred_at: row.get(4),
        loss_usd: row.get(5),
        recovered_usd: row.get(6),
        attack_class: row
            .get::<_, Option<String>>(7)
            .unwrap_or_else(|| "other".into()),
        attack_type: row
            .get::<_, Option<String>>(8)
            .unwrap_or_else(|| "unknown".into()),
        attack_text: row.get(9),
        flash_loan: row.get(10),
        bridge: row.get(11),
        tx_hashes,
        status: row.get(12),
        description: row.get(13),
        source_url: row.get(14),
        created_at: row.get(15),
        updated_at: row.get(16),
        sources,
    }))
}

fn source_claim(row: &Row) -> Result<SourceClaim, DbError> {
    let c = claim_from_row(row)?;
    let first_seen_at: DateTime<Utc> = row.get(20);
    let last_seen_at: DateTime<Utc> = row.get(21);
    super::rows::source_claim(c, first_seen_at, last_seen_at)
}

/// Incidents holding a stored hash equal to one of `forms` (`TxHash::lookup_forms`).
pub(super) async fn ids_by_hash(
    pool: &PgPool,
    forms: &[String; kamiyo_domain::tx::LOOKUP_FORMS],
) -> Result<Vec<i64>, DbError> {
    let conn = pool.acquire().await?;
    Ok(conn
        .query(
            "SELECT DISTINCT exploit_id FROM exploit_tx_hashes WHERE tx_hash IN ($1, $2, $3) ORDER BY exploit_id",
            &[&forms[0], &forms[1], &forms[2]],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

pub(super) async fn count(pool: &PgPool) -> Result<i64, DbError> {
    let conn = pool.acquire().await?;
    Ok(conn
        .query_one("SELECT count(*) FROM exploits", &[])
        .await?
        .get(0))
}

/// One page: the listing's statements in order (`query::page_statements`), on one
/// connection, until `limit + 1` rows are read.
pub(super) async fn list(
    pool: &PgPool,
    request: &super::ListRequest,
    limit: usize,
) -> Result<Vec<super::IncidentSummary>, DbError> {
    // The chains subquery's alias is not `fc`, the chain filter's.
    const COLUMNS: &str = "e.id, e.protocol, \
        ARRAY(SELECT c.chain FROM exploit_chains c WHERE c.exploit_id = e.id), \
        e.occurred_at, e.amount_usd::text, e.recovered_usd::text, e.attack_class, e.attack_type, e.status, \
        e.flash_loan, e.bridge, e.source_url, e.chain";
    let statements = super::query::page_statements(request, limit, true, COLUMNS);
    let conn = pool.acquire().await?;
    let mut items = Vec::with_capacity(limit + 1);
    for statement in statements {
        if items.len() > limit {
            break;
        }
        let rows = conn
            .query(&statement.sql, &text_params(&statement.params))
            .await?;
        items.extend(rows.iter().map(summary));
    }
    Ok(items)
}

/// How many incidents the listing's filters match (`query::count_statement`).
pub(super) async fn count_matching(
    pool: &PgPool,
    filter: &super::IncidentFilter,
) -> Result<i64, DbError> {
    let statement = super::query::count_statement(filter, true);
    let conn = pool.acquire().await?;
    Ok(conn
        .query_one(&statement.sql, &text_params(&statement.params))
        .await?
        .get(0))
}

fn text_params(params: &[String]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

fn summary(row: &Row) -> super::IncidentSummary {
    let primary: String = row.get(12);
    let mut chains: Vec<String> = row.get(2);
    // The primary chain first, the others by name (sorted here, not in SQL).
    chains.sort_by(|a, b| (a != &primary, a).cmp(&(b != &primary, b)));
    super::IncidentSummary {
        id: row.get(0),
        protocol: row.get(1),
        chains,
        occurred_at: row.get(3),
        loss_usd: row.get(4),
        recovered_usd: row.get(5),
        attack_class: row
            .get::<_, Option<String>>(6)
            .unwrap_or_else(|| "other".into()),
        attack_type: row
            .get::<_, Option<String>>(7)
            .unwrap_or_else(|| "unknown".into()),
        status: row.get(8),
        flash_loan: row.get(9),
        bridge: row.get(10),
        source_url: row.get(11),
    }
}
