//! Reading incidents back: the SQL each backend needs, side by side, and one mapping
//! from a row (read by column name) to the read model for both.

use kamiyo_domain::{AttackClass, AttackType, Chain, IncidentStatus, Usd};

use super::claims::{self, StoredClaimRow};
use super::query::sources_count_sql;
use super::{Incident, IncidentSummary, SourceClaim, TxHashView};
use crate::dialect::Dialect;
use crate::error::StoreError;
use crate::row::{DriverRow, Fields};

/// `exploits` columns of [`Incident`], by name; `$1`/`?1` is the id.
pub(crate) fn incident_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        concat!(
            "SELECT id, protocol, protocol_key, chain, occurred_at, amount_usd::text AS amount_usd, \
                recovered_usd::text AS recovered_usd, attack_class, attack_type, attack_technique_raw, \
                flash_loan, bridge, status, description, source_url, created_at, updated_at, ",
            sources_count_sql!(),
            " AS sources_count FROM exploits e WHERE id = $1"
        ),
        concat!(
            "SELECT id, protocol, protocol_key, chain, occurred_at, amount_usd, recovered_usd, attack_class, \
                attack_type, attack_technique_raw, flash_loan, bridge, status, description, source_url, \
                created_at, updated_at, ",
            sources_count_sql!(),
            " AS sources_count FROM exploits e WHERE id = ?1"
        ),
    )
}

pub(crate) fn chains_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT chain FROM exploit_chains WHERE exploit_id = $1 ORDER BY chain",
        "SELECT chain FROM exploit_chains WHERE exploit_id = ?1 ORDER BY chain",
    )
}

/// Ids of incidents merged into this one (`incident_redirects`).
pub(crate) fn merged_ids_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT old_id FROM incident_redirects WHERE exploit_id = $1 ORDER BY old_id",
        "SELECT old_id FROM incident_redirects WHERE exploit_id = ?1 ORDER BY old_id",
    )
}

/// The incident an id merged away now belongs to.
pub(crate) fn redirect_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT exploit_id FROM incident_redirects WHERE old_id = $1",
        "SELECT exploit_id FROM incident_redirects WHERE old_id = ?1",
    )
}

pub(crate) fn merged_id<R: DriverRow + ?Sized>(row: &R) -> Result<i64, StoreError> {
    Fields::of("incident_redirects", row).int("old_id")
}

pub(crate) fn hashes_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT chain, tx_hash FROM exploit_tx_hashes WHERE exploit_id = $1 ORDER BY chain, tx_hash",
        "SELECT chain, tx_hash FROM exploit_tx_hashes WHERE exploit_id = ?1 ORDER BY chain, tx_hash",
    )
}

/// Every claim of one incident (`$1`/`?1`), in first-seen order.
pub(crate) fn claims_sql(dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!(
            "SELECT {} FROM exploit_sources WHERE exploit_id = $1 ORDER BY first_seen_at, id",
            claims::POSTGRES_COLUMNS
        ),
        Dialect::Sqlite => format!(
            "SELECT {} FROM exploit_sources WHERE exploit_id = ?1 ORDER BY first_seen_at, id",
            claims::SQLITE_COLUMNS
        ),
    }
}

/// Incidents holding a stored hash equal to one of three forms (`TxHash::lookup_forms`).
pub(crate) fn ids_by_hash_sql(dialect: Dialect) -> &'static str {
    dialect.pick(
        "SELECT DISTINCT exploit_id FROM exploit_tx_hashes WHERE tx_hash IN ($1, $2, $3) ORDER BY exploit_id",
        "SELECT DISTINCT exploit_id FROM exploit_tx_hashes WHERE tx_hash IN (?1, ?2, ?3) ORDER BY exploit_id",
    )
}

/// The listing's columns (`query::page_statements`). The chains subquery's alias is not
/// `fc`, the chain filter's.
pub(crate) fn summary_columns(dialect: Dialect) -> &'static str {
    dialect.pick(
        concat!(
            "e.id, e.protocol, ARRAY(SELECT c.chain FROM exploit_chains c WHERE c.exploit_id = e.id) AS chains, \
             e.occurred_at, e.amount_usd::text AS amount_usd, e.recovered_usd::text AS recovered_usd, \
             e.attack_class, e.attack_type, e.status, e.flash_loan, e.bridge, e.source_url, e.chain, ",
            sources_count_sql!(),
            " AS sources_count"
        ),
        concat!(
            "e.id, e.protocol, (SELECT json_group_array(c.chain) FROM exploit_chains c WHERE c.exploit_id = e.id) AS chains, \
             e.occurred_at, e.amount_usd, e.recovered_usd, e.attack_class, e.attack_type, e.status, \
             e.flash_loan, e.bridge, e.source_url, e.chain, ",
            sources_count_sql!(),
            " AS sources_count"
        ),
    )
}

/// The primary chain first, the others by name.
fn order_chains(chains: &mut [Chain], primary: &str) {
    chains.sort_by(|a, b| (a.slug() != primary, a).cmp(&(b.slug() != primary, b)));
}

/// Stored chain slugs as chains; one that no longer reads as a chain is corrupt data.
fn chains_of(
    table: &'static str,
    column: &'static str,
    slugs: Vec<String>,
) -> Result<Vec<Chain>, StoreError> {
    slugs
        .into_iter()
        .map(|slug| {
            Chain::parse(&slug)
                .map_err(|e| StoreError::corrupt(table, column, format!("{slug:?}: {e}")))
        })
        .collect()
}

/// An incident from its `exploits` row ([`incident_sql`]) and the rows of its chains,
/// hashes and claims.
pub(crate) fn incident<R: DriverRow + ?Sized>(
    row: &R,
    chains: Vec<String>,
    tx_hashes: Vec<TxHashView>,
    claims: Vec<StoredClaimRow>,
    merged_ids: Vec<i64>,
) -> Result<Incident, StoreError> {
    let f = Fields::of("exploits", row);
    let mut chains = chains_of("exploit_chains", "chain", chains)?;
    order_chains(&mut chains, &f.text("chain")?);
    let summary = summary_of(&f, chains)?;
    let sources = claims
        .into_iter()
        .map(claims::source_claim)
        .collect::<Result<Vec<SourceClaim>, _>>()?;
    Ok(Incident {
        protocol_key: f.text("protocol_key")?,
        attack_text: f.opt_text("attack_technique_raw")?,
        tx_hashes,
        description: f.opt_text("description")?,
        created_at: f.time("created_at")?,
        updated_at: f.time("updated_at")?,
        conflicts: super::conflicts::of(&sources),
        provenance: super::provenance::of(&summary, &sources),
        summary,
        sources,
        merged_ids,
    })
}

pub(crate) fn chain<R: DriverRow + ?Sized>(row: &R) -> Result<String, StoreError> {
    Fields::of("exploit_chains", row).text("chain")
}

pub(crate) fn tx_hash<R: DriverRow + ?Sized>(row: &R) -> Result<TxHashView, StoreError> {
    let f = Fields::of("exploit_tx_hashes", row);
    Ok(TxHashView {
        chain: f.parse("chain", Chain::parse)?,
        hash: f.text("tx_hash")?,
    })
}

pub(crate) fn exploit_id<R: DriverRow + ?Sized>(row: &R) -> Result<i64, StoreError> {
    Fields::of("exploit_tx_hashes", row).int("exploit_id")
}

/// One listing row ([`summary_columns`]).
pub(crate) fn summary<R: DriverRow + ?Sized>(row: &R) -> Result<IncidentSummary, StoreError> {
    let f = Fields::of("exploits", row);
    let mut chains = chains_of("exploit_chains", "chain", f.text_list("chains")?)?;
    order_chains(&mut chains, &f.text("chain")?);
    summary_of(&f, chains)
}

/// The columns an incident and a listing row share.
fn summary_of<R: DriverRow + ?Sized>(
    f: &Fields<'_, R>,
    chains: Vec<Chain>,
) -> Result<IncidentSummary, StoreError> {
    Ok(IncidentSummary {
        id: f.int("id")?,
        protocol: f.text("protocol")?,
        chains,
        occurred_at: f.time("occurred_at")?,
        loss_usd: f.opt_parse("amount_usd", |t| Usd::parse("amount_usd", t))?,
        recovered_usd: f.opt_parse("recovered_usd", |t| Usd::parse("recovered_usd", t))?,
        attack_class: f
            .opt_parse("attack_class", AttackClass::parse)?
            .unwrap_or(AttackClass::Other),
        attack_type: f
            .opt_parse("attack_type", AttackType::parse)?
            .unwrap_or(AttackType::Unknown),
        status: f.parse("status", IncidentStatus::parse)?,
        flash_loan: f.boolean("flash_loan")?,
        bridge: f.boolean("bridge")?,
        source_url: f.opt_text("source_url")?,
        sources_count: f.int("sources_count")?,
    })
}
