//! A remerge's reads and writes on SQLite, in the ingest path's write transaction.

use std::collections::HashMap;

use kamiyo_db::sqlite::SqlitePool;
use rusqlite::{Connection, TransactionBehavior};

use super::claims::{self, StoredClaimRow};
use super::curation::Decision;
use super::ingest::{complete_now, IngestIo, Rules};
use super::regroup::{self, NewDecision, Regroup, RegroupIo, Remerged, StoredIncident, Trigger};
use super::sqlite::{driver, SqliteIngest};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::Fields;
use crate::statement::Step;

/// A remerge in one write transaction (see `regroup::remerge`).
pub(super) async fn remerge(
    pool: &SqlitePool,
    rules: &Rules,
    apply: bool,
    trigger: &Trigger,
) -> Result<Option<Remerged>, StoreError> {
    let conn = pool.acquire().await?;
    let pool_name = pool.name().to_owned();
    let rules = rules.clone();
    let trigger = trigger.clone();
    conn.run(move |c| Ok(remerge_in(c, &pool_name, &rules, apply, &trigger)))
        .await?
}

fn remerge_in(
    c: &mut Connection,
    pool: &str,
    rules: &Rules,
    apply: bool,
    trigger: &Trigger,
) -> Result<Option<Remerged>, StoreError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(driver(pool))?;
    let mut io = SqliteIngest { conn: &tx, pool };
    let outcome = complete_now(regroup::remerge(&mut io, rules, apply, trigger))??;
    if outcome.as_ref().is_some_and(|o| o.wrote) {
        tx.commit().map_err(driver(pool))?;
    } else {
        tx.rollback().map_err(driver(pool))?;
    }
    Ok(outcome)
}

impl RegroupIo for SqliteIngest<'_> {
    async fn lock_all(&mut self) -> Result<(), StoreError> {
        // `BEGIN IMMEDIATE` already holds the database's one write lock.
        Ok(())
    }

    async fn take_task(&mut self, name: &str) -> Result<bool, StoreError> {
        let deleted = self.execute("DELETE FROM maintenance_tasks WHERE name = ?1", [[name]])?;
        Ok(deleted > 0)
    }

    async fn all_claims(&mut self) -> Result<Vec<StoredClaimRow>, StoreError> {
        self.rows(
            &format!(
                "SELECT {} FROM exploit_sources ORDER BY first_seen_at, id",
                claims::SQLITE_COLUMNS
            ),
            [()],
            |row| StoredClaimRow::read(row),
        )
    }

    async fn stored_incidents(&mut self) -> Result<HashMap<i64, StoredIncident>, StoreError> {
        let rows = self.rows(
            &format!("SELECT {} FROM exploits", regroup::SQLITE_INCIDENT_COLUMNS),
            [()],
            |row| regroup::stored_row(row),
        )?;
        let hashes = self.rows(
            "SELECT exploit_id, chain, tx_hash FROM exploit_tx_hashes",
            [()],
            |row| {
                let f = Fields::of("exploit_tx_hashes", row);
                Ok((f.int("exploit_id")?, f.text("chain")?, f.text("tx_hash")?))
            },
        )?;
        let chains = self.rows(
            "SELECT exploit_id, chain FROM exploit_chains",
            [()],
            |row| {
                let f = Fields::of("exploit_chains", row);
                Ok((f.int("exploit_id")?, f.text("chain")?))
            },
        )?;
        Ok(regroup::stored_incidents(rows, hashes, chains))
    }

    async fn decisions(&mut self) -> Result<Vec<Decision>, StoreError> {
        self.rows(regroup::DECISIONS.sqlite, [()], |row| {
            regroup::decision_row(row)
        })
    }

    async fn insert_decision(&mut self, decision: &NewDecision) -> Result<i64, StoreError> {
        let json = decision.json();
        let ids = self.rows(
            "INSERT INTO curation_decisions \
             (kind, claims, others, claim_ids, other_ids, incident_ids, reason, decided_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            [(
                decision.kind.as_str(),
                json.claims.as_str(),
                json.others.as_deref(),
                json.claim_ids.as_str(),
                json.other_ids.as_deref(),
                json.incident_ids.as_str(),
                decision.reason.as_str(),
                decision.decided_by.as_str(),
            )],
            |row| Fields::of("curation_decisions", row).int("id"),
        )?;
        ids.first()
            .copied()
            .ok_or_else(|| StoreError::Invariant("an insert returned no id".into()))
    }

    async fn apply_regroup(&mut self, regroup: &Regroup) -> Result<(), StoreError> {
        // First: an incident left without claims may hold hashes the changes give to
        // another incident.
        self.execute(
            "DELETE FROM exploits WHERE id = ?1",
            regroup.emptied.iter().map(|id| [*id]),
        )?;
        let released = || regroup.released.iter().map(|id| [*id]);
        self.execute(
            "DELETE FROM exploit_tx_hashes WHERE exploit_id = ?1",
            released(),
        )?;
        self.execute(
            "DELETE FROM exploit_chains WHERE exploit_id = ?1",
            released(),
        )?;
        self.execute(
            "UPDATE exploits SET tx_hash = NULL WHERE id = ?1 AND tx_hash IS NOT NULL",
            released(),
        )?;
        self.apply(&regroup.changes).await?;
        self.execute(
            "UPDATE exploit_sources SET exploit_id = ?2, joined_by = ?3, curated_by = ?4 WHERE id = ?1",
            regroup
                .moves
                .iter()
                .map(|m| (m.claim, m.exploit_id, m.joined_by, m.curated_by)),
        )?;
        self.run_steps(regroup::repoint_community(
            &regroup.retired,
            Dialect::Sqlite,
        ))
        .await?;
        self.execute(
            "UPDATE incident_redirects SET exploit_id = ?2 WHERE exploit_id = ?1",
            regroup.retired.iter().copied(),
        )?;
        self.execute(
            "INSERT INTO incident_redirects (old_id, exploit_id, reason) VALUES (?1, ?2, ?3)",
            regroup
                .retired
                .iter()
                .map(|(old, survivor)| (*old, *survivor, regroup.reason)),
        )?;
        self.execute(
            "DELETE FROM exploits WHERE id = ?1",
            regroup.retired.iter().map(|(old, _)| [*old]),
        )?;
        Ok(())
    }

    async fn run_steps(&mut self, steps: Vec<Step>) -> Result<u64, StoreError> {
        crate::statement::run_steps_sqlite(self.conn, self.pool, steps)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}
