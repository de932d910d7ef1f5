//! A remerge's reads and writes on PostgreSQL, in the ingest path's transaction type.

use std::collections::HashMap;

use kamiyo_db::postgres::PgPool;

use super::claims::{self, StoredClaimRow};
use super::curation::Decision;
use super::ingest::{IngestIo, Rules};
use super::postgres::{PgIngest, LOCK_BUCKETS, LOCK_CLASS};
use super::regroup::{self, NewDecision, Regroup, RegroupIo, Remerged, StoredIncident, Trigger};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::Fields;
use crate::statement::Step;

/// A remerge in one transaction (see `regroup::remerge`).
pub(super) async fn remerge(
    pool: &PgPool,
    maintenance_timeout: std::time::Duration,
    rules: &Rules,
    apply: bool,
    trigger: &Trigger,
) -> Result<Option<Remerged>, StoreError> {
    let mut conn = pool.acquire().await?;
    // Reading every claim, deciding in memory and writing the difference outlasts a
    // request's timeouts at scale; this session then closes instead of being reused.
    conn.lengthen_timeouts(maintenance_timeout).await?;
    let tx = conn.transaction().await?;
    let outcome = regroup::remerge(&mut PgIngest { tx: &tx }, rules, apply, trigger).await?;
    if outcome.as_ref().is_some_and(|o| o.wrote) {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(outcome)
}

impl RegroupIo for PgIngest<'_> {
    async fn lock_all(&mut self) -> Result<(), StoreError> {
        // Every bucket an ingest can take, ascending as ingests take theirs: a remerge
        // waits for running ingests and they wait for it, without deadlock.
        let buckets = i32::try_from(LOCK_BUCKETS).unwrap_or(i32::MAX);
        self.tx
            .execute(
                "SELECT pg_advisory_xact_lock($1::int4, b) FROM generate_series(0, $2::int4 - 1) AS b",
                &[&LOCK_CLASS, &buckets],
            )
            .await?;
        Ok(())
    }

    async fn take_task(&mut self, name: &str) -> Result<bool, StoreError> {
        let deleted = self
            .tx
            .execute("DELETE FROM maintenance_tasks WHERE name = $1", &[&name])
            .await?;
        Ok(deleted > 0)
    }

    async fn all_claims(&mut self) -> Result<Vec<StoredClaimRow>, StoreError> {
        let rows = self
            .tx
            .query(
                &format!(
                    "SELECT {} FROM exploit_sources ORDER BY first_seen_at, id",
                    claims::POSTGRES_COLUMNS
                ),
                &[],
            )
            .await?;
        rows.iter().map(StoredClaimRow::read).collect()
    }

    async fn stored_incidents(&mut self) -> Result<HashMap<i64, StoredIncident>, StoreError> {
        let rows = self
            .tx
            .query(
                &format!(
                    "SELECT {} FROM exploits",
                    regroup::POSTGRES_INCIDENT_COLUMNS
                ),
                &[],
            )
            .await?
            .iter()
            .map(regroup::stored_row)
            .collect::<Result<Vec<_>, _>>()?;
        let hashes = self
            .tx
            .query(
                "SELECT exploit_id, chain, tx_hash FROM exploit_tx_hashes",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                let f = Fields::of("exploit_tx_hashes", row);
                Ok((f.int("exploit_id")?, f.text("chain")?, f.text("tx_hash")?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let chains = self
            .tx
            .query("SELECT exploit_id, chain FROM exploit_chains", &[])
            .await?
            .iter()
            .map(|row| {
                let f = Fields::of("exploit_chains", row);
                Ok((f.int("exploit_id")?, f.text("chain")?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(regroup::stored_incidents(rows, hashes, chains))
    }

    async fn decisions(&mut self) -> Result<Vec<Decision>, StoreError> {
        self.tx
            .query(regroup::DECISIONS.postgres, &[])
            .await?
            .iter()
            .map(regroup::decision_row)
            .collect()
    }

    async fn insert_decision(&mut self, decision: &NewDecision) -> Result<i64, StoreError> {
        let json = decision.json();
        let row = self
            .tx
            .query_one(
                "INSERT INTO curation_decisions \
                 (kind, claims, others, claim_ids, other_ids, incident_ids, reason, decided_by) \
                 VALUES ($1, $2::text::jsonb, $3::text::jsonb, $4::text::jsonb, $5::text::jsonb, \
                 $6::text::jsonb, $7, $8) RETURNING id",
                &[
                    &decision.kind.as_str(),
                    &json.claims,
                    &json.others,
                    &json.claim_ids,
                    &json.other_ids,
                    &json.incident_ids,
                    &decision.reason,
                    &decision.decided_by,
                ],
            )
            .await?;
        Fields::of("curation_decisions", &row).int("id")
    }

    async fn apply_regroup(&mut self, regroup: &Regroup) -> Result<(), StoreError> {
        let tx = self.tx;
        // First: an incident left without claims may hold hashes the changes give to
        // another incident.
        if !regroup.emptied.is_empty() {
            tx.execute(
                "DELETE FROM exploits WHERE id = ANY($1)",
                &[&regroup.emptied],
            )
            .await?;
        }
        if !regroup.released.is_empty() {
            let ids = &regroup.released;
            tx.execute(
                "DELETE FROM exploit_tx_hashes WHERE exploit_id = ANY($1)",
                &[ids],
            )
            .await?;
            tx.execute(
                "DELETE FROM exploit_chains WHERE exploit_id = ANY($1)",
                &[ids],
            )
            .await?;
            tx.execute(
                "UPDATE exploits SET tx_hash = NULL WHERE id = ANY($1) AND tx_hash IS NOT NULL",
                &[ids],
            )
            .await?;
        }
        self.apply(&regroup.changes).await?;
        if !regroup.moves.is_empty() {
            let claims: Vec<i64> = regroup.moves.iter().map(|m| m.claim).collect();
            let incidents: Vec<i64> = regroup.moves.iter().map(|m| m.exploit_id).collect();
            let joined: Vec<Option<&str>> = regroup.moves.iter().map(|m| m.joined_by).collect();
            let curated: Vec<Option<i64>> = regroup.moves.iter().map(|m| m.curated_by).collect();
            tx.execute(
                "UPDATE exploit_sources s SET exploit_id = u.exploit_id, joined_by = u.joined_by, \
                     curated_by = u.curated_by \
                 FROM unnest($1::int8[], $2::int8[], $3::text[], $4::int8[]) \
                   AS u(id, exploit_id, joined_by, curated_by) \
                 WHERE s.id = u.id",
                &[&claims, &incidents, &joined, &curated],
            )
            .await?;
        }
        crate::statement::run_steps_postgres(
            tx,
            &regroup::repoint_community(&regroup.retired, Dialect::Postgres),
        )
        .await?;
        if !regroup.retired.is_empty() {
            let old: Vec<i64> = regroup.retired.iter().map(|(o, _)| *o).collect();
            let survivors: Vec<i64> = regroup.retired.iter().map(|(_, s)| *s).collect();
            tx.execute(
                "UPDATE incident_redirects r SET exploit_id = u.survivor \
                 FROM unnest($1::int8[], $2::int8[]) AS u(old_id, survivor) \
                 WHERE r.exploit_id = u.old_id",
                &[&old, &survivors],
            )
            .await?;
            tx.execute(
                "INSERT INTO incident_redirects (old_id, exploit_id, reason) \
                 SELECT old_id, survivor, $3 FROM unnest($1::int8[], $2::int8[]) AS u(old_id, survivor)",
                &[&old, &survivors, &regroup.reason],
            )
            .await?;
            tx.execute("DELETE FROM exploits WHERE id = ANY($1)", &[&old])
                .await?;
        }
        Ok(())
    }

    async fn run_steps(&mut self, steps: Vec<Step>) -> Result<u64, StoreError> {
        crate::statement::run_steps_postgres(self.tx, &steps).await
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}
