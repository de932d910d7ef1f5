//! Aggregates over incidents: a summary, breakdowns by chain, attack type and month, and
//! the chain list. One query each, its SQL side by side per dialect and its rows read
//! once for both. Zeros, never nulls, when nothing matches.
//!
//! Money sums are exact decimals on both backends. PostgreSQL sums NUMERIC in SQL; on
//! SQLite, whose SUM would go through floating point, the query gives the amounts
//! themselves and they are added here. So that one mapping reads both, a money column is
//! a list of amounts to add up (or to take the largest of): PostgreSQL's holds the one
//! amount it computed, SQLite's every amount.

use chrono::{DateTime, Utc};
use kamiyo_db::Pool;
use kamiyo_domain::{Chain, Usd};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};
use crate::statement::{self, time_bounds};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub incidents: i64,
    pub total_loss_usd: String,
    pub recovered_usd: String,
    pub mean_loss_usd: String,
    pub max_loss_usd: String,
    /// Incidents whose loss is known (the mean is over these).
    pub incidents_with_known_loss: i64,
    pub chains_affected: i64,
    pub protocols_affected: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// The chain slug, the attack type, or the month (`YYYY-MM`).
    pub key: String,
    pub incidents: i64,
    pub total_loss_usd: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Chain,
    AttackType,
    Month,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChainCount {
    pub chain: String,
    pub name: String,
    pub incidents: i64,
}

fn money(value: Decimal) -> String {
    Usd::from_decimal("total", value)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| value.round_dp(2).to_string())
}

/// Counts and money over incidents within `$1..=$2` (`?1..=?2`). PostgreSQL: DISTINCT in
/// subqueries rather than count(DISTINCT ...), a hash aggregate and an index-only scan
/// instead of sorting every row; chains read the incident's date copied onto each chain
/// row (migration 0003, kept equal by triggers), as the listing does: no join.
fn summary_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT count(*) AS incidents, \
                ARRAY[coalesce(sum(e.amount_usd), 0)::text] AS total_loss_usd, \
                ARRAY[coalesce(sum(e.recovered_usd), 0)::text] AS recovered_usd, \
                ARRAY[coalesce(max(e.amount_usd), 0)::text] AS max_loss_usd, \
                count(e.amount_usd) AS known, \
                (SELECT count(*) FROM (SELECT DISTINCT p.protocol_key FROM exploits p \
                  WHERE p.occurred_at >= $1 AND p.occurred_at <= $2) protocols) AS protocols, \
                (SELECT count(*) FROM (SELECT DISTINCT c.chain FROM exploit_chains c \
                  WHERE c.occurred_at >= $1 AND c.occurred_at <= $2) chains) AS chains \
         FROM exploits e WHERE e.occurred_at >= $1 AND e.occurred_at <= $2",
        "SELECT count(*) AS incidents, \
                json_group_array(e.amount_usd) FILTER (WHERE e.amount_usd IS NOT NULL) AS total_loss_usd, \
                json_group_array(e.recovered_usd) FILTER (WHERE e.recovered_usd IS NOT NULL) AS recovered_usd, \
                json_group_array(e.amount_usd) FILTER (WHERE e.amount_usd IS NOT NULL) AS max_loss_usd, \
                count(e.amount_usd) AS known, \
                count(DISTINCT e.protocol_key) AS protocols, \
                (SELECT count(DISTINCT c.chain) FROM exploit_chains c \
                  WHERE c.occurred_at >= ?1 AND c.occurred_at <= ?2) AS chains \
         FROM exploits e WHERE e.occurred_at >= ?1 AND e.occurred_at <= ?2",
    )
}

/// One row per group: `bucket`, `incidents`, `total_loss_usd`, over `t`, incidents or
/// (by chain) the chain rows alone, which carry their incident's date and loss
/// (migration 0003): no join with `exploits`. (incident, chain) pairs are unique, so
/// `count(*)` counts incidents and each incident's loss is counted once per group.
fn breakdown_sql(dialect: Dialect, dimension: Dimension) -> String {
    let (from, key) = match dimension {
        Dimension::Chain => ("exploit_chains t", "t.chain"),
        Dimension::AttackType => ("exploits t", "coalesce(t.attack_type, 'unknown')"),
        Dimension::Month => (
            "exploits t",
            dialect.pick(
                "to_char(t.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')",
                "substr(t.occurred_at, 1, 7)",
            ),
        ),
    };
    let (loss, since, until) = dialect.pick(
        ("ARRAY[coalesce(sum(t.amount_usd), 0)::text]", "$1", "$2"),
        (
            "json_group_array(t.amount_usd) FILTER (WHERE t.amount_usd IS NOT NULL)",
            "?1",
            "?2",
        ),
    );
    format!(
        "SELECT {key} AS bucket, count(*) AS incidents, {loss} AS total_loss_usd FROM {from} \
         WHERE t.occurred_at >= {since} AND t.occurred_at <= {until} GROUP BY 1"
    )
}

/// Every chain with its incident count. exploit_chains carries its incident's
/// occurred_at (migration 0003): the caller's visibility applies without a join.
fn chains_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT chain, count(*) AS incidents FROM exploit_chains \
          WHERE occurred_at >= $1 AND occurred_at <= $2 \
          GROUP BY chain ORDER BY count(*) DESC, chain",
        "SELECT chain, count(*) AS incidents FROM exploit_chains \
          WHERE occurred_at >= ?1 AND occurred_at <= ?2 \
          GROUP BY chain ORDER BY count(*) DESC, chain",
    )
}

fn summary_row(row: &dyn DriverRow) -> Result<Summary, StoreError> {
    let f = Fields::of("exploits", row);
    let total: Decimal = f.decimal_list("total_loss_usd")?.into_iter().sum();
    let known = f.int("known")?;
    let mean = if known == 0 {
        Decimal::ZERO
    } else {
        total / Decimal::from(known)
    };
    let max = f.decimal_list("max_loss_usd")?.into_iter().max();
    Ok(Summary {
        incidents: f.int("incidents")?,
        total_loss_usd: money(total),
        recovered_usd: money(f.decimal_list("recovered_usd")?.into_iter().sum()),
        mean_loss_usd: money(mean),
        max_loss_usd: money(max.unwrap_or(Decimal::ZERO)),
        incidents_with_known_loss: known,
        chains_affected: f.int("chains")?,
        protocols_affected: f.int("protocols")?,
    })
}

fn bucket_row(row: &dyn DriverRow) -> Result<Bucket, StoreError> {
    let f = Fields::of("exploits", row);
    Ok(Bucket {
        key: f.text("bucket")?,
        incidents: f.int("incidents")?,
        total_loss_usd: money(f.decimal_list("total_loss_usd")?.into_iter().sum()),
    })
}

fn chain_row(row: &dyn DriverRow) -> Result<ChainCount, StoreError> {
    let f = Fields::of("exploit_chains", row);
    let chain = f.text("chain")?;
    Ok(ChainCount {
        name: Chain::parse(&chain)
            .map(|c| c.display_name())
            .unwrap_or_else(|_| chain.clone()),
        chain,
        incidents: f.int("incidents")?,
    })
}

/// Count, loss, recovered, mean (over known losses) and max loss, chains and protocols
/// affected, over incidents that occurred within `since..=until`.
pub(crate) async fn summary(
    pool: &Pool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Summary, StoreError> {
    let dialect = statement::dialect(pool);
    let params = Vec::from(time_bounds(dialect, since, until));
    statement::query_one(pool, summary_sql(dialect), params, summary_row).await
}

/// Largest group first (by incidents, then key); months in calendar order.
pub(crate) async fn breakdown(
    pool: &Pool,
    dimension: Dimension,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<Bucket>, StoreError> {
    let dialect = statement::dialect(pool);
    let params = Vec::from(time_bounds(dialect, since, until));
    let sql = breakdown_sql(dialect, dimension);
    let mut buckets = statement::query(pool, &sql, params, bucket_row).await?;
    if dimension == Dimension::Month {
        buckets.sort_by(|a, b| a.key.cmp(&b.key));
    } else {
        buckets.sort_by(|a, b| {
            b.incidents
                .cmp(&a.incidents)
                .then_with(|| a.key.cmp(&b.key))
        });
    }
    Ok(buckets)
}

/// Every chain with its incident count, most incidents first.
pub(crate) async fn chains(
    pool: &Pool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<ChainCount>, StoreError> {
    let dialect = statement::dialect(pool);
    let params = Vec::from(time_bounds(dialect, since, until));
    statement::query(pool, chains_sql(dialect), params, chain_row).await
}
