//! A remerge's reads and writes on SQLite, in the ingest path's write transaction.

use std::collections::HashMap;

use kamiyo_db::sqlite::SqlitePool;
use rusqlite::{Connection, TransactionBehavior};

use super::claims::{self, StoredClaimRow};
use super::ingest::{complete_now, IngestIo, Rules};
use super::regroup::{self, Regroup, RegroupIo, RemergeReport, StoredIncident};
use super::sqlite::{driver, SqliteIngest};
use crate::error::StoreError;
use crate::row::Fields;

/// A remerge in one write transaction (see `regroup::remerge`).
pub(super) async fn remerge(
    pool: &SqlitePool,
    rules: &Rules,
    apply: bool,
    task: Option<&str>,
) -> Result<Option<RemergeReport>, StoreError> {
    let conn = pool.acquire().await?;
    let pool_name = pool.name().to_owned();
    let rules = rules.clone();
    let task = task.map(str::to_owned);
    conn.run(move |c| Ok(remerge_in(c, &pool_name, &rules, apply, task.as_deref())))
        .await?
}

fn remerge_in(
    c: &mut Connection,
    pool: &str,
    rules: &Rules,
    apply: bool,
    task: Option<&str>,
) -> Result<Option<RemergeReport>, StoreError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(driver(pool))?;
    let mut io = SqliteIngest { conn: &tx, pool };
    let outcome = complete_now(regroup::remerge(&mut io, rules, apply, task))??;
    match outcome {
        Some((report, true)) => {
            tx.commit().map_err(driver(pool))?;
            Ok(Some(report))
        }
        Some((report, false)) => {
            tx.rollback().map_err(driver(pool))?;
            Ok(Some(report))
        }
        None => {
            tx.rollback().map_err(driver(pool))?;
            Ok(None)
        }
    }
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

    async fn apply_regroup(&mut self, regroup: &Regroup) -> Result<(), StoreError> {
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
            "UPDATE exploit_sources SET exploit_id = ?2, joined_by = ?3 WHERE id = ?1",
            regroup
                .moves
                .iter()
                .map(|(claim, incident, by)| (*claim, *incident, by.map(|b| b.as_str()))),
        )?;
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
}
