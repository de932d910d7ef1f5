//! The incident repository on SQLite. rusqlite is synchronous: each operation is one
//! closure on a pooled connection, its transaction taken with `BEGIN IMMEDIATE` (the
//! write lock) so that concurrent importers decide one after the other.

use chrono::{DateTime, Utc};
use kamiyo_db::sqlite::SqlitePool;
use kamiyo_db::DbError;
use kamiyo_domain::canonical::{self, Canonical};
use kamiyo_domain::{IncidentDraft, TxHash, Usd};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::decide::{
    decide, foreign_hash_warning, window, Candidate, HashOwner, Plan, StoredClaim,
};
use super::rows::{parse_sqlite_time, source_claim, sqlite_time, ClaimColumns};
use super::{dedup_key, Incident, IngestAction, IngestOutcome, TxHashView};

const CLAIM_COLUMNS: &str = "id, exploit_id, source_name, source_url, external_id, reported_name, reported_date, \
     occurred_at, amount_usd, recovered_usd, chains, tx_hashes, attack_class, attack_type, attack_text, \
     classification, status, description, flash_loan, bridge, first_seen_at, last_seen_at";

/// Errors inside the closure: the driver's, or ours (a stored value that no longer
/// parses), carried through rusqlite's error type and unpacked outside.
fn ours(error: DbError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

fn unpack(error: DbError) -> DbError {
    match error {
        DbError::Other {
            message,
            source: Some(source),
        } => match source.downcast::<rusqlite::Error>() {
            Ok(driver) => match *driver {
                rusqlite::Error::ToSqlConversionFailure(inner) => match inner.downcast::<DbError>()
                {
                    Ok(ours) => *ours,
                    Err(inner) => DbError::Other {
                        message,
                        source: Some(Box::new(rusqlite::Error::ToSqlConversionFailure(inner))),
                    },
                },
                driver => DbError::Other {
                    message,
                    source: Some(Box::new(driver)),
                },
            },
            Err(source) => DbError::Other {
                message,
                source: Some(source),
            },
        },
        error => error,
    }
}

pub(super) async fn ingest(
    pool: &SqlitePool,
    draft: IncidentDraft,
) -> Result<IngestOutcome, DbError> {
    let conn = pool.acquire().await?;
    conn.run(move |c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = ingest_in(&tx, &draft)?;
        if outcome.action == IngestAction::Unchanged {
            tx.rollback()?;
        } else {
            tx.commit()?;
        }
        Ok(outcome)
    })
    .await
    .map_err(unpack)
}

/// Many claims in one write transaction, each under its own savepoint: a claim the
/// database refuses is rolled back alone and reported in its place; a failure of the
/// database itself (busy, I/O) rolls back the whole batch and is returned.
pub(super) async fn ingest_batch(
    pool: &SqlitePool,
    drafts: Vec<IncidentDraft>,
) -> Result<Vec<Result<IngestOutcome, DbError>>, DbError> {
    let conn = pool.acquire().await?;
    let pool_name = pool.name().to_owned();
    conn.run(move |c| {
        let mut tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(drafts.len());
        for draft in &drafts {
            let savepoint = tx.savepoint()?;
            match ingest_in(&savepoint, draft) {
                Ok(outcome) => {
                    savepoint.commit()?;
                    outcomes.push(Ok(outcome));
                }
                Err(error) => {
                    // Dropping the savepoint rolls back what this claim wrote.
                    drop(savepoint);
                    let error = unpack(DbError::from_sqlite(&pool_name, error));
                    if error.is_transient() || error.is_unavailable() {
                        return Err(ours(error));
                    }
                    outcomes.push(Err(error));
                }
            }
        }
        tx.commit()?;
        Ok(outcomes)
    })
    .await
    .map_err(unpack)
}

fn ingest_in(tx: &Connection, draft: &IncidentDraft) -> rusqlite::Result<IngestOutcome> {
    let columns = ClaimColumns::from_draft(draft);
    let claim_key = draft.claim_key();
    let existing = tx
        .query_row(
            &format!("SELECT {CLAIM_COLUMNS} FROM exploit_sources WHERE source_name = ?1 AND claim_key = ?2"),
            params![columns.source_name, claim_key],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, claim_from_row(row)?)),
        )
        .optional()?
        .map(|(claim_id, exploit_id, stored)| {
            Ok::<_, rusqlite::Error>(StoredClaim {
                claim_id,
                exploit_id,
                draft: stored.into_draft().map_err(ours)?,
            })
        })
        .transpose()?;
    let mut owners = Vec::new();
    for hash in &draft.tx_hashes {
        let mut statement = tx.prepare_cached(
            "SELECT h.exploit_id, e.protocol_key FROM exploit_tx_hashes h JOIN exploits e ON e.id = h.exploit_id \
             WHERE h.chain = ?1 AND h.tx_hash = ?2",
        )?;
        let rows = statement.query_map(params![hash.chain.slug(), hash.hash], |row| {
            Ok(HashOwner {
                exploit_id: row.get(0)?,
                protocol_key: row.get(1)?,
            })
        })?;
        for owner in rows {
            owners.push(owner?);
        }
    }
    let (from, to) = window(draft);
    let mut statement = tx.prepare_cached(
        "SELECT e.id, e.occurred_at, e.amount_usd, (SELECT json_group_array(c.chain) FROM exploit_chains c WHERE c.exploit_id = e.id), \
                (SELECT json_group_array(DISTINCT s.source_name) FROM exploit_sources s WHERE s.exploit_id = e.id) \
         FROM exploits e WHERE e.protocol_key = ?1 AND e.occurred_at BETWEEN ?2 AND ?3",
    )?;
    let candidates = statement
        .query_map(
            params![draft.protocol.key(), sqlite_time(from), sqlite_time(to)],
            |row| {
                let occurred: String = row.get(1)?;
                let amount: Option<String> = row.get(2)?;
                let chains: String = row.get(3)?;
                let sources: String = row.get(4)?;
                Ok(Candidate {
                    sources: serde_json::from_str(&sources)
                        .map_err(|e| ours(DbError::other(e.to_string())))?,
                    id: row.get(0)?,
                    occurred_at: parse_sqlite_time(&occurred).map_err(ours)?,
                    loss_usd: amount
                        .map(|a| {
                            Usd::parse("amount_usd", &a)
                                .map_err(|e| ours(DbError::other(e.to_string())))
                        })
                        .transpose()?,
                    chains: serde_json::from_str(&chains)
                        .map_err(|e| ours(DbError::other(e.to_string())))?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(statement);

    let (exploit_id, action) = match decide(draft, existing.as_ref(), &owners, &candidates) {
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
            update_claim(tx, claim_id, &columns)?;
            (exploit_id, IngestAction::Updated)
        }
        Plan::Merge { exploit_id } => {
            insert_claim(tx, exploit_id, &claim_key, &columns)?;
            (exploit_id, IngestAction::Merged)
        }
        Plan::Insert => {
            let c = canonical::derive(std::slice::from_ref(draft))
                .ok_or_else(|| ours(DbError::other("a claim must derive an incident")))?;
            let exploit_id = insert_exploit(tx, &c, &dedup_key(draft))?;
            insert_claim(tx, exploit_id, &claim_key, &columns)?;
            (exploit_id, IngestAction::Inserted)
        }
    };
    let warnings = rederive(tx, exploit_id)?;
    Ok(IngestOutcome {
        exploit_id,
        action,
        warnings,
    })
}

fn claim_from_row(row: &Row<'_>) -> rusqlite::Result<ClaimColumns> {
    let occurred: String = row.get(7)?;
    Ok(ClaimColumns {
        source_name: row.get(2)?,
        source_url: row.get(3)?,
        external_id: row.get(4)?,
        reported_name: row.get(5)?,
        reported_date: row.get::<_, Option<String>>(6)?.unwrap_or_default(),
        occurred_at: parse_sqlite_time(&occurred).map_err(ours)?,
        amount_usd: row.get(8)?,
        recovered_usd: row.get(9)?,
        chains: row.get(10)?,
        tx_hashes: row.get(11)?,
        attack_class: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
        attack_type: row
            .get::<_, Option<String>>(13)?
            .unwrap_or_else(|| "unknown".into()),
        attack_text: row.get(14)?,
        classification: row.get(15)?,
        status: row
            .get::<_, Option<String>>(16)?
            .unwrap_or_else(|| "confirmed".into()),
        description: row.get(17)?,
        flash_loan: row.get::<_, Option<bool>>(18)?.unwrap_or(false),
        bridge: row.get::<_, Option<bool>>(19)?.unwrap_or(false),
    })
}

fn insert_claim(
    tx: &Connection,
    exploit_id: i64,
    claim_key: &str,
    c: &ClaimColumns,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO exploit_sources (exploit_id, source_name, claim_key, source_url, external_id, reported_name, \
             reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, attack_class, attack_type, \
             attack_text, classification, status, description, flash_loan, bridge) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        exploit_id,
        c.source_name,
        claim_key,
        c.source_url,
        c.external_id,
        c.reported_name,
        c.reported_date,
        sqlite_time(c.occurred_at),
        c.amount_usd,
        c.recovered_usd,
        c.chains,
        c.tx_hashes,
        c.attack_class,
        c.attack_type,
        c.attack_text,
        c.classification,
        c.status,
        c.description,
        c.flash_loan,
        c.bridge,
    ])
    .map(drop)
}

fn update_claim(tx: &Connection, claim_id: i64, c: &ClaimColumns) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE exploit_sources SET source_url = ?2, external_id = ?3, reported_name = ?4, reported_date = ?5, \
             occurred_at = ?6, amount_usd = ?7, recovered_usd = ?8, chains = ?9, tx_hashes = ?10, attack_class = ?11, \
             attack_type = ?12, attack_text = ?13, classification = ?14, status = ?15, description = ?16, \
             flash_loan = ?17, bridge = ?18, last_seen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
         WHERE id = ?1",
    )?
    .execute(params![
        claim_id,
        c.source_url,
        c.external_id,
        c.reported_name,
        c.reported_date,
        sqlite_time(c.occurred_at),
        c.amount_usd,
        c.recovered_usd,
        c.chains,
        c.tx_hashes,
        c.attack_class,
        c.attack_type,
        c.attack_text,
        c.classification,
        c.status,
        c.description,
        c.flash_loan,
        c.bridge,
    ])
    .map(drop)
}

fn insert_exploit(tx: &Connection, c: &Canonical, dedup_key: &str) -> rusqlite::Result<i64> {
    let primary = c
        .chains
        .first()
        .map(|chain| chain.slug().to_owned())
        .unwrap_or_default();
    tx.prepare_cached(
        "INSERT INTO exploits (protocol, protocol_key, chain, dedup_key, occurred_at, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
    )?
    .query_row(
        params![
            c.protocol,
            c.protocol_key,
            primary,
            dedup_key,
            sqlite_time(c.occurred_at),
            c.status.as_str()
        ],
        |row| row.get(0),
    )
}

fn rederive(tx: &Connection, exploit_id: i64) -> rusqlite::Result<Vec<String>> {
    let claims = {
        let mut statement = tx.prepare_cached(&format!(
            "SELECT {CLAIM_COLUMNS} FROM exploit_sources WHERE exploit_id = ?1 ORDER BY first_seen_at, id"
        ))?;
        let rows = statement.query_map(params![exploit_id], claim_from_row)?;
        let mut claims = Vec::new();
        for row in rows {
            claims.push(row?.into_draft().map_err(ours)?);
        }
        claims
    };
    let c = canonical::derive(&claims).ok_or_else(|| {
        ours(DbError::other(format!(
            "incident {exploit_id} has no claims"
        )))
    })?;
    let primary = c
        .chains
        .first()
        .map(|chain| chain.slug().to_owned())
        .unwrap_or_default();

    tx.execute(
        "DELETE FROM exploit_tx_hashes WHERE exploit_id = ?1",
        params![exploit_id],
    )?;
    let mut owned: Vec<&TxHash> = Vec::new();
    let mut warnings = Vec::new();
    for hash in &c.tx_hashes {
        let inserted = tx.execute(
            "INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash) VALUES (?1, ?2, ?3) ON CONFLICT (chain, tx_hash) DO NOTHING",
            params![exploit_id, hash.chain.slug(), hash.hash],
        )?;
        if inserted == 1 {
            owned.push(hash);
        } else {
            warnings.push(foreign_hash_warning(hash));
        }
    }
    tx.execute(
        "DELETE FROM exploit_chains WHERE exploit_id = ?1",
        params![exploit_id],
    )?;
    for chain in &c.chains {
        tx.execute(
            "INSERT INTO exploit_chains (exploit_id, chain) VALUES (?1, ?2)",
            params![exploit_id, chain.slug()],
        )?;
    }
    let primary_hash = owned
        .iter()
        .find(|h| h.chain.slug() == primary)
        .map(|h| h.hash.clone());
    tx.prepare_cached(
        "UPDATE exploits SET protocol = ?2, protocol_key = ?3, chain = ?4, tx_hash = ?5, amount_usd = ?6, recovered_usd = ?7, \
             attack_class = ?8, attack_type = ?9, attack_technique_raw = ?10, description = ?11, status = ?12, \
             occurred_at = ?13, source_url = ?14, flash_loan = ?15, bridge = ?16 \
         WHERE id = ?1",
    )?
    .execute(params![
        exploit_id,
        c.protocol,
        c.protocol_key,
        primary,
        primary_hash,
        c.loss_usd.map(|u| u.to_string()),
        c.recovered_usd.map(|u| u.to_string()),
        c.attack_type.class().as_str(),
        c.attack_type.as_str(),
        c.attack_text,
        c.description,
        c.status.as_str(),
        sqlite_time(c.occurred_at),
        c.source_url,
        c.flash_loan,
        c.bridge,
    ])?;
    Ok(warnings)
}

pub(super) async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Incident>, DbError> {
    let conn = pool.acquire().await?;
    conn.run(move |c| get_in(c, id)).await.map_err(unpack)
}

fn get_in(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Incident>> {
    let Some(mut incident) = c
        .query_row(
            "SELECT id, protocol, protocol_key, chain, occurred_at, amount_usd, recovered_usd, attack_class, \
                    attack_type, attack_technique_raw, flash_loan, bridge, status, description, source_url, \
                    created_at, updated_at \
             FROM exploits WHERE id = ?1",
            params![id],
            |row| {
                let time = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
                    parse_sqlite_time(&row.get::<_, String>(i)?).map_err(ours)
                };
                Ok(Incident {
                    id: row.get(0)?,
                    protocol: row.get(1)?,
                    protocol_key: row.get(2)?,
                    chains: vec![row.get(3)?],
                    occurred_at: time(4)?,
                    loss_usd: row.get(5)?,
                    recovered_usd: row.get(6)?,
                    attack_class: row.get::<_, Option<String>>(7)?.unwrap_or_else(|| "other".into()),
                    attack_type: row.get::<_, Option<String>>(8)?.unwrap_or_else(|| "unknown".into()),
                    attack_text: row.get(9)?,
                    flash_loan: row.get(10)?,
                    bridge: row.get(11)?,
                    tx_hashes: Vec::new(),
                    status: row.get(12)?,
                    description: row.get(13)?,
                    source_url: row.get(14)?,
                    created_at: time(15)?,
                    updated_at: time(16)?,
                    sources: Vec::new(),
                })
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let primary = incident.chains.remove(0);
    let mut chains: Vec<String> = c
        .prepare_cached("SELECT chain FROM exploit_chains WHERE exploit_id = ?1 ORDER BY chain")?
        .query_map(params![id], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    chains.sort_by_key(|chain| chain != &primary);
    incident.chains = chains;
    incident.tx_hashes = c
        .prepare_cached("SELECT chain, tx_hash FROM exploit_tx_hashes WHERE exploit_id = ?1 ORDER BY chain, tx_hash")?
        .query_map(params![id], |row| Ok(TxHashView { chain: row.get(0)?, hash: row.get(1)? }))?
        .collect::<rusqlite::Result<_>>()?;
    let mut statement = c.prepare_cached(&format!(
        "SELECT {CLAIM_COLUMNS} FROM exploit_sources WHERE exploit_id = ?1 ORDER BY first_seen_at, id"
    ))?;
    let rows = statement.query_map(params![id], |row| {
        let first: String = row.get(20)?;
        let last: String = row.get(21)?;
        source_claim(
            claim_from_row(row)?,
            parse_sqlite_time(&first).map_err(ours)?,
            parse_sqlite_time(&last).map_err(ours)?,
        )
        .map_err(ours)
    })?;
    for claim in rows {
        incident.sources.push(claim?);
    }
    Ok(Some(incident))
}

/// Incidents holding a stored hash equal to one of `forms` (`TxHash::lookup_forms`).
pub(super) async fn ids_by_hash(
    pool: &SqlitePool,
    forms: &[String; kamiyo_domain::tx::LOOKUP_FORMS],
) -> Result<Vec<i64>, DbError> {
    let conn = pool.acquire().await?;
    let forms = forms.clone();
    conn.run(move |c| {
        c.prepare_cached(
            "SELECT DISTINCT exploit_id FROM exploit_tx_hashes WHERE tx_hash IN (?1, ?2, ?3) ORDER BY exploit_id",
        )?
        .query_map(params![forms[0], forms[1], forms[2]], |row| row.get(0))?
        .collect()
    })
    .await
}

pub(super) async fn count(pool: &SqlitePool) -> Result<i64, DbError> {
    let conn = pool.acquire().await?;
    conn.run(|c| c.query_row("SELECT count(*) FROM exploits", [], |row| row.get(0)))
        .await
}

/// One page: the listing's statements in order (`query::page_statements`), on one
/// connection, until `limit + 1` rows are read.
pub(super) async fn list(
    pool: &SqlitePool,
    request: &super::ListRequest,
    limit: usize,
) -> Result<Vec<super::IncidentSummary>, DbError> {
    // The chains subquery's alias is not `fc`, the chain filter's.
    const COLUMNS: &str = "e.id, e.protocol, \
        (SELECT json_group_array(c.chain) FROM exploit_chains c WHERE c.exploit_id = e.id), \
        e.occurred_at, e.amount_usd, e.recovered_usd, e.attack_class, e.attack_type, e.status, \
        e.flash_loan, e.bridge, e.source_url, e.chain";
    let statements = super::query::page_statements(request, limit, false, COLUMNS);
    let conn = pool.acquire().await?;
    let mut items = Vec::with_capacity(limit + 1);
    for statement in statements {
        if items.len() > limit {
            break;
        }
        let rows = conn
            .query(&statement.sql, text_values(statement.params), summary)
            .await
            .map_err(unpack)?;
        items.extend(rows);
    }
    Ok(items)
}

/// How many incidents the listing's filters match (`query::count_statement`).
pub(super) async fn count_matching(
    pool: &SqlitePool,
    filter: &super::IncidentFilter,
) -> Result<i64, DbError> {
    let statement = super::query::count_statement(filter, false);
    let conn = pool.acquire().await?;
    let rows = conn
        .query(&statement.sql, text_values(statement.params), |row| {
            row.get::<_, i64>(0)
        })
        .await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| DbError::other("count(*) returned no row"))
}

fn text_values(params: Vec<String>) -> Vec<rusqlite::types::Value> {
    params
        .into_iter()
        .map(rusqlite::types::Value::Text)
        .collect()
}

fn summary(row: &Row<'_>) -> rusqlite::Result<super::IncidentSummary> {
    let chains: String = row.get(2)?;
    let mut chains: Vec<String> =
        serde_json::from_str(&chains).map_err(|e| ours(DbError::other(e.to_string())))?;
    let primary: String = row.get(12)?;
    // The primary chain first, the others by name, as on PostgreSQL.
    chains.sort_by(|a, b| (a != &primary, a).cmp(&(b != &primary, b)));
    let occurred: String = row.get(3)?;
    Ok(super::IncidentSummary {
        id: row.get(0)?,
        protocol: row.get(1)?,
        chains,
        occurred_at: parse_sqlite_time(&occurred).map_err(ours)?,
        loss_usd: row.get(4)?,
        recovered_usd: row.get(5)?,
        attack_class: row
            .get::<_, Option<String>>(6)?
            .unwrap_or_else(|| "other".into()),
        attack_type: row
            .get::<_, Option<String>>(7)?
            .unwrap_or_else(|| "unknown".into()),
        status: row.get(8)?,
        flash_loan: row.get(9)?,
        bridge: row.get(10)?,
        source_url: row.get(11)?,
    })
}
