//! Aggregates over incidents: a summary, breakdowns by chain, attack type and month, and
//! the chain list. Money sums are exact decimals on both backends (PostgreSQL sums
//! NUMERIC; on SQLite, whose SUM would go through floating point, the amounts are summed
//! here). Zeros, never nulls, when nothing matches.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kamiyo_db::{DbError, Pool};
use kamiyo_domain::{Chain, Usd};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::row::sqlite_time;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// (group key, id, protocol key, amount, recovered) as SQLite returns them.
type FactRow = (String, i64, String, Option<String>, Option<String>);

/// One incident's contribution to an aggregate.
struct Fact {
    key: String,
    amount: Option<Decimal>,
    recovered: Option<Decimal>,
    protocol_key: String,
    id: i64,
}

fn money(value: Decimal) -> String {
    Usd::from_decimal("total", value)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| value.round_dp(2).to_string())
}

fn decimal(text: Option<String>) -> Result<Option<Decimal>, DbError> {
    text.map(|t| {
        t.parse::<Decimal>()
            .map_err(|e| DbError::other(format!("stored amount {t:?}: {e}")))
    })
    .transpose()
}

/// SQLite: rows of (group key, id, protocol key, amount, recovered) within
/// `since..=until`; one row per incident and group (an incident on two chains counts for
/// each chain). The sums are taken here, in exact decimals: SQLite's SUM would go through
/// floating point. PostgreSQL aggregates in SQL (`pg_summary`, `pg_breakdown`).
async fn sqlite_facts(
    pool: &kamiyo_db::sqlite::SqlitePool,
    dimension: Option<Dimension>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<Fact>, DbError> {
    let key = sqlite_group_key(dimension);
    let join = if dimension == Some(Dimension::Chain) {
        "JOIN exploit_chains c ON c.exploit_id = e.id"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {key}, e.id, e.protocol_key, e.amount_usd, e.recovered_usd FROM exploits e {join} WHERE e.occurred_at >= ?1 AND e.occurred_at <= ?2"
    );
    let conn = pool.acquire().await?;
    let rows: Vec<FactRow> = conn
        .query(&sql, sqlite_bounds(since, until), |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .await?;
    rows.into_iter()
        .map(|(key, id, protocol_key, amount, recovered)| {
            Ok(Fact {
                key,
                id,
                protocol_key,
                amount: decimal(amount)?,
                recovered: decimal(recovered)?,
            })
        })
        .collect()
}

/// PostgreSQL's bounds for "unbounded".
fn pg_bounds(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    // PostgreSQL's timestamptz ends in year 294276; chrono's maximum is beyond it.
    (
        since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
        until.unwrap_or_else(|| Utc::now() + chrono::Duration::days(365 * 100)),
    )
}

/// The same bounds as `pg_bounds`, as SQLite's stored text.
fn sqlite_bounds(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Vec<rusqlite::types::Value> {
    // 'Z' sorts after every digit: no stored timestamp is above it.
    vec![
        rusqlite::types::Value::Text(since.map(sqlite_time).unwrap_or_default()),
        rusqlite::types::Value::Text(until.map(sqlite_time).unwrap_or_else(|| "Z".into())),
    ]
}

fn sqlite_group_key(dimension: Option<Dimension>) -> &'static str {
    match dimension {
        None => "''",
        Some(Dimension::Chain) => "c.chain",
        Some(Dimension::AttackType) => "coalesce(e.attack_type, 'unknown')",
        Some(Dimension::Month) => "substr(e.occurred_at, 1, 7)",
    }
}

fn amount(text: String) -> Result<Decimal, DbError> {
    Ok(decimal(Some(text))?.unwrap_or(Decimal::ZERO))
}

/// One aggregate query: counts and exact NUMERIC sums, no row per incident.
async fn pg_summary(
    pool: &kamiyo_db::postgres::PgPool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Summary, DbError> {
    let (since, until) = pg_bounds(since, until);
    let conn = pool.acquire().await?;
    let row = conn
        .query_one(
            // DISTINCT in subqueries rather than count(DISTINCT ...): a hash aggregate and
            // an index-only scan instead of sorting every row (137 -> 60 ms at 100k
            // incidents). Chains read the incident's date copied onto each chain row
            // (migration 0003, kept equal by triggers), as the listing does: no join.
            "SELECT count(*), coalesce(sum(e.amount_usd), 0)::text, \
                    coalesce(sum(e.recovered_usd), 0)::text, coalesce(max(e.amount_usd), 0)::text, \
                    count(e.amount_usd), \
                    (SELECT count(*) FROM (SELECT DISTINCT p.protocol_key FROM exploits p \
                      WHERE p.occurred_at >= $1 AND p.occurred_at <= $2) protocols), \
                    (SELECT count(*) FROM (SELECT DISTINCT c.chain FROM exploit_chains c \
                      WHERE c.occurred_at >= $1 AND c.occurred_at <= $2) chains) \
             FROM exploits e WHERE e.occurred_at >= $1 AND e.occurred_at <= $2",
            &[&since, &until],
        )
        .await?;
    let total = amount(row.get(1))?;
    let known: i64 = row.get(4);
    Ok(summary_of(
        row.get(0),
        total,
        amount(row.get(2))?,
        amount(row.get(3))?,
        known,
        row.get(6),
        row.get(5),
    ))
}

/// Mean over known losses, in exact decimals.
fn summary_of(
    incidents: i64,
    total: Decimal,
    recovered: Decimal,
    max: Decimal,
    known: i64,
    chains: i64,
    protocols: i64,
) -> Summary {
    let mean = if known == 0 {
        Decimal::ZERO
    } else {
        total / Decimal::from(known)
    };
    Summary {
        incidents,
        total_loss_usd: money(total),
        recovered_usd: money(recovered),
        mean_loss_usd: money(mean),
        max_loss_usd: money(max),
        incidents_with_known_loss: known,
        chains_affected: chains,
        protocols_affected: protocols,
    }
}

/// One row per group. (incident, chain) pairs are unique, so `count(*)` counts incidents
/// and the sum counts each incident's loss once per group.
async fn pg_breakdown(
    pool: &kamiyo_db::postgres::PgPool,
    dimension: Dimension,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<BTreeMap<String, (i64, Decimal)>, DbError> {
    let (since, until) = pg_bounds(since, until);
    // By chain: the chain rows alone, with the incident's date and loss copied onto them
    // (migration 0003), so no join with `exploits`.
    let by_incident = |key: &str| {
        format!(
            "SELECT {key}, count(*), coalesce(sum(e.amount_usd), 0)::text FROM exploits e \
             WHERE e.occurred_at >= $1 AND e.occurred_at <= $2 GROUP BY 1"
        )
    };
    let sql = match dimension {
        Dimension::Chain => "SELECT c.chain, count(*), coalesce(sum(c.amount_usd), 0)::text \
             FROM exploit_chains c WHERE c.occurred_at >= $1 AND c.occurred_at <= $2 GROUP BY 1"
            .to_owned(),
        Dimension::AttackType => by_incident("coalesce(e.attack_type, 'unknown')"),
        Dimension::Month => by_incident("to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')"),
    };
    let conn = pool.acquire().await?;
    let rows = conn.query(&sql, &[&since, &until]).await?;
    rows.iter()
        .map(|row| Ok((row.get(0), (row.get(1), amount(row.get(2))?))))
        .collect()
}

pub(crate) async fn summary(
    pool: &Pool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Summary, DbError> {
    let pool = match pool {
        Pool::Postgres(pool) => return pg_summary(pool, since, until).await,
        Pool::Sqlite(pool) => pool,
    };
    let facts = sqlite_facts(pool, None, since, until).await?;
    let by_chain = sqlite_facts(pool, Some(Dimension::Chain), since, until).await?;
    let chains: std::collections::HashSet<&str> = by_chain.iter().map(|f| f.key.as_str()).collect();
    let known: Vec<Decimal> = facts.iter().filter_map(|f| f.amount).collect();
    let protocols: std::collections::HashSet<&str> =
        facts.iter().map(|f| f.protocol_key.as_str()).collect();
    Ok(summary_of(
        facts.len() as i64,
        known.iter().copied().sum(),
        facts.iter().filter_map(|f| f.recovered).sum(),
        known.iter().copied().max().unwrap_or(Decimal::ZERO),
        known.len() as i64,
        chains.len() as i64,
        protocols.len() as i64,
    ))
}

pub(crate) async fn breakdown(
    pool: &Pool,
    dimension: Dimension,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<Bucket>, DbError> {
    let groups = match pool {
        Pool::Postgres(pool) => pg_breakdown(pool, dimension, since, until).await?,
        Pool::Sqlite(pool) => {
            let mut groups: BTreeMap<String, (std::collections::HashSet<i64>, Decimal)> =
                BTreeMap::new();
            for fact in sqlite_facts(pool, Some(dimension), since, until).await? {
                let entry = groups.entry(fact.key).or_default();
                if entry.0.insert(fact.id) {
                    entry.1 += fact.amount.unwrap_or(Decimal::ZERO);
                }
            }
            groups
                .into_iter()
                .map(|(key, (ids, total))| (key, (ids.len() as i64, total)))
                .collect()
        }
    };
    let mut buckets: Vec<Bucket> = groups
        .into_iter()
        .map(|(key, (incidents, total))| Bucket {
            key,
            incidents,
            total_loss_usd: money(total),
        })
        .collect();
    if dimension != Dimension::Month {
        buckets.sort_by(|a, b| {
            b.incidents
                .cmp(&a.incidents)
                .then_with(|| a.key.cmp(&b.key))
        });
    }
    Ok(buckets)
}

/// Every chain with its incident count, in one query.
pub(crate) async fn chains(
    pool: &Pool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<ChainCount>, DbError> {
    // exploit_chains carries its incident's occurred_at (migration 0003): the caller's
    // visibility applies without a join.
    let rows: Vec<(String, i64)> = match pool {
        Pool::Postgres(pool) => {
            let (since, until) = pg_bounds(since, until);
            let conn = pool.acquire().await?;
            conn.query(
                "SELECT chain, count(*) FROM exploit_chains \
                  WHERE occurred_at >= $1 AND occurred_at <= $2 \
                  GROUP BY chain ORDER BY count(*) DESC, chain",
                &[&since, &until],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        }
        Pool::Sqlite(pool) => {
            let conn = pool.acquire().await?;
            conn.query(
                "SELECT chain, count(*) FROM exploit_chains \
                  WHERE occurred_at >= ?1 AND occurred_at <= ?2 \
                  GROUP BY chain ORDER BY count(*) DESC, chain",
                sqlite_bounds(since, until),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(chain, incidents)| ChainCount {
            name: Chain::parse(&chain)
                .map(|c| c.display_name())
                .unwrap_or_else(|_| chain.clone()),
            chain,
            incidents,
        })
        .collect())
}

/// What one source has contributed, and how its fetches went: every source with a claim
/// or a registry row (`sources`, created when its first fetch is recorded).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceReport {
    pub source: String,
    /// Distinct incidents this source has a claim on.
    pub incidents: i64,
    pub claims: i64,
    /// When its first claim was stored; null while it has none.
    pub first_seen_at: Option<String>,
    /// When a claim of this source was last stored or updated (its last import); null
    /// while it has none.
    pub last_seen_at: Option<String>,
    /// From the `sources` registry; null for a source no fetch was recorded for.
    pub active: Option<bool>,
    /// When its last recorded fetch finished, successful or not.
    pub last_fetch_at: Option<String>,
    /// When its last successful fetch finished.
    pub last_success_at: Option<String>,
    /// Why its last failed fetch failed (the registry's `last_error`). Shown to admin
    /// callers only: an error text can name internal hosts or paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Fetches that finished within the rolling window (`server.source_health_window`).
    pub fetches_in_window: i64,
    /// 100 × successful / all fetches within the window, to two decimals; null when no
    /// fetch finished within it.
    pub success_rate_pct: Option<f64>,
}

/// Every source, most incidents first; fetch health over the fetches that finished at
/// or after `window_start`.
pub(crate) async fn sources(
    pool: &Pool,
    window_start: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<SourceReport>, DbError> {
    // A source appears when it has claims, a registry row, or both (FULL JOIN): a source
    // whose every fetch fails has no claims, and is the one to show. Only claims on
    // incidents within `since..=until` (the caller's visibility) are counted.
    match pool {
        Pool::Postgres(pool) => {
            let (since, until) = pg_bounds(since, until);
            let conn = pool.acquire().await?;
            let rows = conn
                .query(
                    "WITH claims AS ( \
                         SELECT c.source_name, count(DISTINCT c.exploit_id) AS incidents, count(*) AS claims, \
                                min(c.first_seen_at) AS first_seen_at, max(c.last_seen_at) AS last_seen_at \
                           FROM exploit_sources c JOIN exploits e ON e.id = c.exploit_id \
                          WHERE e.occurred_at >= $2 AND e.occurred_at <= $3 \
                          GROUP BY c.source_name), \
                     fetches AS ( \
                         SELECT source_name, count(*) AS fetches, count(*) FILTER (WHERE succeeded) AS succeeded \
                           FROM source_fetches WHERE finished_at >= $1 GROUP BY source_name) \
                     SELECT coalesce(c.source_name, s.name), coalesce(c.incidents, 0), coalesce(c.claims, 0), \
                            to_char(c.first_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                            to_char(c.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                            s.is_active, \
                            to_char(s.last_fetch_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                            to_char(s.last_success_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                            coalesce(f.fetches, 0), round(100.0 * f.succeeded / f.fetches, 2)::float8, \
                            s.last_error \
                       FROM claims c \
                       FULL JOIN sources s ON s.name = c.source_name \
                       LEFT JOIN fetches f ON f.source_name = coalesce(c.source_name, s.name) \
                      ORDER BY 2 DESC, 1",
                    &[&window_start, &since, &until],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| SourceReport {
                    source: r.get(0),
                    incidents: r.get(1),
                    claims: r.get(2),
                    first_seen_at: r.get(3),
                    last_seen_at: r.get(4),
                    active: r.get(5),
                    last_fetch_at: r.get(6),
                    last_success_at: r.get(7),
                    fetches_in_window: r.get(8),
                    success_rate_pct: r.get(9),
                    last_error: r.get(10),
                })
                .collect())
        }
        Pool::Sqlite(pool) => {
            let conn = pool.acquire().await?;
            conn.query(
                "WITH claims AS ( \
                     SELECT c.source_name, count(DISTINCT c.exploit_id) AS incidents, count(*) AS claims, \
                            min(c.first_seen_at) AS first_seen_at, max(c.last_seen_at) AS last_seen_at \
                       FROM exploit_sources c JOIN exploits e ON e.id = c.exploit_id \
                      WHERE e.occurred_at >= ?2 AND e.occurred_at <= ?3 \
                      GROUP BY c.source_name), \
                 fetches AS ( \
                     SELECT source_name, count(*) AS fetches, sum(succeeded) AS succeeded \
                       FROM source_fetches WHERE finished_at >= ?1 GROUP BY source_name) \
                 SELECT coalesce(c.source_name, s.name), coalesce(c.incidents, 0), coalesce(c.claims, 0), \
                        c.first_seen_at, c.last_seen_at, s.is_active, s.last_fetch_at, s.last_success_at, \
                        coalesce(f.fetches, 0), round(100.0 * f.succeeded / f.fetches, 2), s.last_error \
                   FROM claims c \
                   FULL JOIN sources s ON s.name = c.source_name \
                   LEFT JOIN fetches f ON f.source_name = coalesce(c.source_name, s.name) \
                  ORDER BY 2 DESC, 1",
                std::iter::once(rusqlite::types::Value::Text(sqlite_time(window_start)))
                    .chain(sqlite_bounds(since, until))
                    .collect(),
                |r| {
                    Ok(SourceReport {
                        source: r.get(0)?,
                        incidents: r.get(1)?,
                        claims: r.get(2)?,
                        first_seen_at: r.get(3)?,
                        last_seen_at: r.get(4)?,
                        active: r.get(5)?,
                        last_fetch_at: r.get(6)?,
                        last_success_at: r.get(7)?,
                        fetches_in_window: r.get(8)?,
                        success_rate_pct: r.get(9)?,
                        last_error: r.get(10)?,
                    })
                },
            )
            .await
        }
    }
}
