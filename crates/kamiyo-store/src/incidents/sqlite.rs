//! The incident repository's I/O on SQLite. rusqlite is synchronous: each operation is
//! one closure on a pooled connection. The ingest path's transaction is taken with
//! `BEGIN IMMEDIATE` (the write lock), so concurrent importers decide one after the
//! other; with no network between us and the database, its reads and writes are one
//! prepared statement per row.

use kamiyo_db::sqlite::SqlitePool;
use kamiyo_db::DbError;
use kamiyo_domain::IncidentDraft;
use rusqlite::{Connection, TransactionBehavior};

use super::claims::StoredClaimRow;
use super::ingest::{self, complete_now, Decided, IngestIo, Rules};
use super::join::JoinReason;
use super::read;
use super::replay::{Changes, ClaimWrite, HashKey, IncidentRow, Needs, Owners};
use super::{Incident, IncidentSummary, IngestOutcome};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{sqlite_time, Fields};

const DIALECT: Dialect = Dialect::Sqlite;

/// A driver error, classified, as the store's.
pub(super) fn driver(pool: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |error| StoreError::Database(DbError::from_sqlite(pool, error))
}

/// Ingests `drafts` in one write transaction; one outcome per draft, in order. Any
/// failure rolls the whole batch back.
pub(super) async fn ingest_batch(
    pool: &SqlitePool,
    drafts: &[IncidentDraft],
    rules: &Rules,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let conn = pool.acquire().await?;
    let pool_name = pool.name().to_owned();
    let drafts = drafts.to_vec();
    let rules = rules.clone();
    conn.run(move |c| Ok(ingest_in(c, &pool_name, &drafts, &rules)))
        .await?
}

/// [`super::postgres::ingest_then`] on SQLite.
pub(super) async fn ingest_then(
    pool: &SqlitePool,
    draft: &IncidentDraft,
    rules: &Rules,
    follow: &super::Follow,
    commit: bool,
) -> Result<IngestOutcome, StoreError> {
    let conn = pool.acquire().await?;
    let pool_name = pool.name().to_owned();
    let draft = draft.clone();
    let rules = rules.clone();
    let follow = std::sync::Arc::clone(follow);
    conn.run(move |c| {
        Ok((|| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(driver(&pool_name))?;
            let mut io = SqliteIngest {
                conn: &tx,
                pool: &pool_name,
            };
            let Decided { mut outcomes, .. } = complete_now(ingest::ingest(
                &mut io,
                std::slice::from_ref(&draft),
                &rules,
            ))??;
            let outcome = outcomes
                .pop()
                .ok_or_else(|| StoreError::Invariant("a batch of one gave no outcome".into()))?;
            crate::statement::run_steps_sqlite(&tx, &pool_name, follow(&outcome)?)?;
            if commit {
                tx.commit().map_err(driver(&pool_name))?;
            } else {
                tx.rollback().map_err(driver(&pool_name))?;
            }
            Ok(outcome)
        })())
    })
    .await?
}

fn ingest_in(
    c: &mut Connection,
    pool: &str,
    drafts: &[IncidentDraft],
    rules: &Rules,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(driver(pool))?;
    let mut io = SqliteIngest { conn: &tx, pool };
    let Decided { outcomes, wrote } = complete_now(ingest::ingest(&mut io, drafts, rules))??;
    if wrote {
        tx.commit().map_err(driver(pool))?;
    } else {
        tx.rollback().map_err(driver(pool))?;
    }
    Ok(outcomes)
}

pub(super) struct SqliteIngest<'c> {
    pub(super) conn: &'c Connection,
    pub(super) pool: &'c str,
}

impl SqliteIngest<'_> {
    /// Runs `sql` (prepared once per connection) for each parameter set, collecting the
    /// rows `read` makes.
    pub(super) fn rows<P: rusqlite::Params, T>(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = P>,
        mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(driver(self.pool))?;
        let mut out = Vec::new();
        for p in params {
            let mut rows = statement.query(p).map_err(driver(self.pool))?;
            while let Some(row) = rows.next().map_err(driver(self.pool))? {
                out.push(read(row)?);
            }
        }
        Ok(out)
    }

    /// Runs `sql` for each parameter set; the rows changed, in all.
    pub(super) fn execute<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = P>,
    ) -> Result<usize, StoreError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(driver(self.pool))?;
        let mut changed = 0;
        for p in params {
            changed += statement.execute(p).map_err(driver(self.pool))?;
        }
        Ok(changed)
    }
}

impl IngestIo for SqliteIngest<'_> {
    async fn lock(&mut self, _protocols: &[String]) -> Result<(), StoreError> {
        // `BEGIN IMMEDIATE` already holds the database's one write lock.
        Ok(())
    }

    async fn hash_owners(&mut self, hashes: &[HashKey]) -> Result<Owners, StoreError> {
        let rows = self.rows(
            "SELECT h.chain, h.tx_hash, h.exploit_id, e.protocol_key \
             FROM exploit_tx_hashes h JOIN exploits e ON e.id = h.exploit_id \
             WHERE h.chain = ?1 AND h.tx_hash = ?2",
            hashes
                .iter()
                .map(|(chain, hash)| (chain.as_str(), hash.as_str())),
            |row| {
                let f = Fields::of("exploit_tx_hashes", row);
                Ok((
                    (f.text("chain")?, f.text("tx_hash")?),
                    (f.int("exploit_id")?, f.text("protocol_key")?),
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    async fn incidents_near(&mut self, needs: &Needs) -> Result<Vec<i64>, StoreError> {
        let id = |row: &rusqlite::Row<'_>| Fields::of("exploits", row).int("id");
        let mut ids = self.rows(
            "SELECT id FROM exploits WHERE protocol_key = ?1 AND occurred_at BETWEEN ?2 AND ?3",
            needs
                .windows
                .iter()
                .map(|(key, from, to)| (key.as_str(), sqlite_time(*from), sqlite_time(*to))),
            id,
        )?;
        ids.extend(self.rows(
            "SELECT exploit_id AS id FROM exploit_sources WHERE source_name = ?1 AND claim_key = ?2",
            needs
                .claim_keys
                .iter()
                .map(|(source, key)| (source.as_str(), key.as_str())),
            id,
        )?);
        ids.extend(self.rows(
            "SELECT s.exploit_id AS id FROM exploit_sources s JOIN exploits e ON e.id = s.exploit_id \
             WHERE s.source_url = ?1 AND e.occurred_at BETWEEN ?2 AND ?3",
            needs
                .urls
                .iter()
                .map(|(url, from, to)| (url.as_str(), sqlite_time(*from), sqlite_time(*to))),
            id,
        )?);
        Ok(ids)
    }

    async fn claims_of(&mut self, ids: &[i64]) -> Result<Vec<StoredClaimRow>, StoreError> {
        // `ids` ascend, so the rows come ordered by incident, then first seen.
        self.rows(
            &read::claims_sql(DIALECT),
            ids.iter().map(|id| [id]),
            |row| StoredClaimRow::read(row),
        )
    }

    async fn allocate_incident_ids(&mut self, n: usize) -> Result<Vec<i64>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        // The write lock is held: nobody else can take these ids. AUTOINCREMENT's
        // sequence may be ahead of max(id) (deleted rows); ids are never reused.
        let last = self.rows(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'exploits'), 0), \
                        coalesce((SELECT max(id) FROM exploits), 0)) AS last",
            [()],
            |row| Fields::of("exploits", row).int("last"),
        )?;
        let last = last.first().copied().unwrap_or(0);
        let n = i64::try_from(n).map_err(|e| StoreError::Invariant(e.to_string()))?;
        Ok((1..=n).map(|i| last + i).collect())
    }

    async fn apply(&mut self, changes: &Changes) -> Result<(), StoreError> {
        self.execute(
            "UPDATE exploits SET protocol = ?2, protocol_key = ?3, chain = ?4, tx_hash = ?5, amount_usd = ?6, \
                 recovered_usd = ?7, attack_class = ?8, attack_type = ?9, attack_technique_raw = ?10, \
                 description = ?11, status = ?12, occurred_at = ?13, source_url = ?14, flash_loan = ?15, \
                 bridge = ?16 \
             WHERE id = ?1",
            changes
                .updated
                .iter()
                .map(|row| rusqlite::params_from_iter(exploit_params(row))),
        )?;
        let updated = changes.updated.iter().map(|row| [row.id]);
        self.execute(
            "DELETE FROM exploit_tx_hashes WHERE exploit_id = ?1",
            updated.clone(),
        )?;
        self.execute("DELETE FROM exploit_chains WHERE exploit_id = ?1", updated)?;
        self.execute(
            "INSERT INTO exploits (id, protocol, protocol_key, chain, tx_hash, amount_usd, recovered_usd, \
                 attack_class, attack_type, attack_technique_raw, description, status, occurred_at, source_url, \
                 flash_loan, bridge, dedup_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            changes.created.iter().map(|(key, row)| {
                let mut p = exploit_params(row);
                p.push(rusqlite::types::Value::Text(key.clone()));
                rusqlite::params_from_iter(p)
            }),
        )?;
        let inserted = self.execute(
            "INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash) VALUES (?1, ?2, ?3) \
             ON CONFLICT (chain, tx_hash) DO NOTHING",
            changes
                .hashes
                .iter()
                .map(|(id, chain, hash)| (*id, chain.as_str(), hash.as_str())),
        )?;
        // The write lock makes this impossible on SQLite; checked as on PostgreSQL.
        if inserted != changes.hashes.len() {
            return Err(StoreError::Raced);
        }
        self.execute(
            "INSERT INTO exploit_chains (exploit_id, chain) VALUES (?1, ?2)",
            changes
                .chains
                .iter()
                .map(|(id, chain)| (*id, chain.as_str())),
        )?;
        self.execute(
            "INSERT INTO exploit_sources (exploit_id, source_name, claim_key, source_url, external_id, \
                 reported_name, reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, \
                 attack_class, attack_type, attack_text, classification, status, description, flash_loan, bridge, \
                 joined_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            changes.new_claims.iter().map(|w| {
                let mut values = claim_values(w, w.exploit_id);
                values.push(opt_text(w.joined_by.and_then(JoinReason::column).map(str::to_owned).as_ref()));
                rusqlite::params_from_iter(values)
            }),
        )?;
        self.execute(
            "INSERT INTO alert_events (kind, exploit_id, occurred_at, changes) VALUES (?1, ?2, ?3, ?4)",
            changes.events.iter().map(|e| {
                (
                    e.kind.as_str(),
                    e.exploit_id,
                    crate::row::sqlite_time(e.occurred_at),
                    e.changes_text(),
                )
            }),
        )?;
        self.execute(
            "UPDATE exploit_sources SET exploit_id = ?1, source_name = ?2, claim_key = ?3, source_url = ?4, \
                 external_id = ?5, reported_name = ?6, reported_date = ?7, occurred_at = ?8, amount_usd = ?9, \
                 recovered_usd = ?10, chains = ?11, tx_hashes = ?12, attack_class = ?13, attack_type = ?14, \
                 attack_text = ?15, classification = ?16, status = ?17, description = ?18, flash_loan = ?19, \
                 bridge = ?20, last_seen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE id = ?21",
            changes.updated_claims.iter().map(|w| {
                let mut p = claim_values(w, w.exploit_id);
                p.push(rusqlite::types::Value::Integer(w.id));
                rusqlite::params_from_iter(p)
            }),
        )?;
        Ok(())
    }
}

fn text(value: &str) -> rusqlite::types::Value {
    rusqlite::types::Value::Text(value.to_owned())
}

fn opt_text(value: Option<&String>) -> rusqlite::types::Value {
    value.map_or(rusqlite::types::Value::Null, |v| text(v))
}

/// `exploits` values in the order of the UPDATE above: id, then the incident's columns.
fn exploit_params(r: &IncidentRow) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value;
    vec![
        Value::Integer(r.id),
        text(&r.protocol),
        text(&r.protocol_key),
        text(&r.chain),
        opt_text(r.tx_hash.as_ref()),
        opt_text(r.amount_usd.as_ref()),
        opt_text(r.recovered_usd.as_ref()),
        text(&r.attack_class),
        text(&r.attack_type),
        opt_text(r.attack_text.as_ref()),
        opt_text(r.description.as_ref()),
        text(&r.status),
        Value::Text(sqlite_time(r.occurred_at)),
        opt_text(r.source_url.as_ref()),
        Value::Integer(i64::from(r.flash_loan)),
        Value::Integer(i64::from(r.bridge)),
    ]
}

/// A claim's values in `exploit_sources` column order, from `exploit_id` to `bridge`.
fn claim_values(w: &ClaimWrite, exploit_id: i64) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value;
    let c = &w.columns;
    vec![
        Value::Integer(exploit_id),
        text(&c.source_name),
        text(&w.claim_key),
        opt_text(c.source_url.as_ref()),
        opt_text(c.external_id.as_ref()),
        text(&c.reported_name),
        text(&c.reported_date),
        Value::Text(sqlite_time(c.occurred_at)),
        opt_text(c.amount_usd.as_ref()),
        opt_text(c.recovered_usd.as_ref()),
        text(&c.chains),
        text(&c.tx_hashes),
        text(&c.attack_class),
        text(&c.attack_type),
        opt_text(c.attack_text.as_ref()),
        opt_text(c.classification.as_ref()),
        text(&c.status),
        opt_text(c.description.as_ref()),
        Value::Integer(i64::from(c.flash_loan)),
        Value::Integer(i64::from(c.bridge)),
    ]
}

/// Runs `work` with a connection of `pool`, on its blocking thread.
async fn on_connection<T: Send + 'static>(
    pool: &SqlitePool,
    work: impl FnOnce(&SqliteIngest<'_>) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let conn = pool.acquire().await?;
    let pool_name = pool.name().to_owned();
    conn.run(move |c| {
        Ok(work(&SqliteIngest {
            conn: c,
            pool: &pool_name,
        }))
    })
    .await?
}

pub(super) async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Incident>, StoreError> {
    on_connection(pool, move |io| get_in(io, id)).await
}

fn get_in(io: &SqliteIngest<'_>, id: i64) -> Result<Option<Incident>, StoreError> {
    let mut found = io.rows(read::incident_sql(DIALECT), [[id]], |row| {
        let chains = io.rows(read::chains_sql(DIALECT), [[id]], |r| read::chain(r))?;
        let hashes = io.rows(read::hashes_sql(DIALECT), [[id]], |r| read::tx_hash(r))?;
        let claims = io.rows(&read::claims_sql(DIALECT), [[id]], |r| {
            StoredClaimRow::read(r)
        })?;
        let merged = io.rows(read::merged_ids_sql(DIALECT), [[id]], |r| {
            read::merged_id(r)
        })?;
        read::incident(row, chains, hashes, claims, merged)
    })?;
    Ok(found.pop())
}

/// The incident `id` was merged into, when it was.
pub(super) async fn redirect(pool: &SqlitePool, id: i64) -> Result<Option<i64>, StoreError> {
    on_connection(pool, move |io| {
        let mut found = io.rows(read::redirect_sql(DIALECT), [[id]], |row| {
            Fields::of("incident_redirects", row).int("exploit_id")
        })?;
        Ok(found.pop())
    })
    .await
}

pub(super) async fn ids_by_hash(
    pool: &SqlitePool,
    forms: &[String; kamiyo_domain::tx::LOOKUP_FORMS],
) -> Result<Vec<i64>, StoreError> {
    let forms = forms.clone();
    on_connection(pool, move |io| {
        io.rows(
            read::ids_by_hash_sql(DIALECT),
            [(forms[0].as_str(), forms[1].as_str(), forms[2].as_str())],
            |row| read::exploit_id(row),
        )
    })
    .await
}

pub(super) async fn count(pool: &SqlitePool) -> Result<i64, StoreError> {
    single_count(
        pool,
        "SELECT count(*) AS count FROM exploits".to_owned(),
        Vec::new(),
    )
    .await
}

/// One page: the listing's statements in order (`query::page_statements`), on one
/// connection, until `limit + 1` rows are read.
pub(super) async fn list(
    pool: &SqlitePool,
    request: &super::ListRequest,
    limit: usize,
) -> Result<Vec<IncidentSummary>, StoreError> {
    let statements =
        super::query::page_statements(request, limit, DIALECT, read::summary_columns(DIALECT));
    on_connection(pool, move |io| {
        let mut items = Vec::with_capacity(limit + 1);
        for statement in statements {
            if items.len() > limit {
                break;
            }
            let params = rusqlite::params_from_iter(statement.params);
            items.extend(io.rows(&statement.sql, [params], |row| read::summary(row))?);
        }
        Ok(items)
    })
    .await
}

/// How many incidents the listing's filters match (`query::count_statement`).
pub(super) async fn count_matching(
    pool: &SqlitePool,
    filter: &super::IncidentFilter,
) -> Result<i64, StoreError> {
    let statement = super::query::count_statement(filter, DIALECT);
    single_count(pool, statement.sql, statement.params).await
}

/// The `count` column of a statement's one row.
async fn single_count(
    pool: &SqlitePool,
    sql: String,
    params: Vec<String>,
) -> Result<i64, StoreError> {
    on_connection(pool, move |io| {
        io.rows(&sql, [rusqlite::params_from_iter(params)], |row| {
            Fields::of("exploits", row).int("count")
        })?
        .first()
        .copied()
        .ok_or_else(|| StoreError::Invariant("count(*) returned no row".into()))
    })
    .await
}
