//! Bulk loading of synthetic incidents: one transaction, multi-row `INSERT ... SELECT
//! FROM unnest($1::bigint[], ...)` statements (one array parameter per column, so a batch
//! of thousands of rows is one round trip), then `VACUUM (ANALYZE)` so the planner has
//! statistics and index-only scans have a visibility map, as on a long-running database.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Datelike, Utc};
use kamiyo_db::{Database, DbConfig, DbError, Pool};
use serde::Serialize;
use tokio_postgres::types::ToSql;

use crate::synth::{Incident, Synth};

pub struct Options {
    pub database_url: String,
    pub incidents: u32,
    pub seed: u64,
    pub protocols: usize,
    pub batch_size: usize,
    pub vacuum: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub database: String,
    pub seed: u64,
    pub migrations_applied: Vec<i64>,
    pub first_id: i64,
    pub last_id: i64,
    pub inserted: Inserted,
    pub distribution: Distribution,
    pub elapsed_ms: Elapsed,
    pub method: &'static str,
}

#[derive(Debug, Default, Serialize)]
pub struct Inserted {
    pub exploits: u64,
    pub exploit_chains: u64,
    pub exploit_tx_hashes: u64,
    pub exploit_sources: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Distribution {
    pub distinct_protocols: usize,
    pub primary_chain: BTreeMap<&'static str, u64>,
    pub multi_chain: u64,
    pub year: BTreeMap<i32, u64>,
    pub status: BTreeMap<&'static str, u64>,
    pub attack_type: BTreeMap<&'static str, u64>,
    pub loss_unknown: u64,
    pub with_tx_hash: u64,
    pub flash_loan: u64,
    pub bridge: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Elapsed {
    pub migrate: u128,
    pub generate: u128,
    pub insert: u128,
    pub vacuum_analyze: u128,
    pub total: u128,
}

pub async fn run(options: Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    anyhow::ensure!(options.batch_size > 0, "--batch-size must be at least 1");
    let mut config = DbConfig::for_url(&options.database_url);
    config.pool_max_size = 2;
    // Batches and VACUUM take longer than the service's 10 s statement budget may allow
    // on a slow disk.
    config.statement_timeout = Duration::from_secs(600);
    let database = Database::open(config).await?;
    let redacted = database.config().url.redacted();
    let Pool::Postgres(pool) = database.primary() else {
        bail!("kamiyo-bench seed needs a postgres:// URL, not {redacted}");
    };

    let migrate_started = Instant::now();
    let migrations = database
        .migrate(&kamiyo_store::MIGRATIONS)
        .await
        .with_context(|| format!("migrating {redacted}"))?;
    let migrate_ms = migrate_started.elapsed().as_millis();

    let mut synth = Synth::new(options.seed, options.protocols)?;
    let mut conn = pool.acquire().await?;
    let max_id: i64 = conn
        .query_one("SELECT coalesce(max(id), 0) FROM exploits", &[])
        .await?
        .get(0);
    let first_id = max_id + 1;
    let last_id = max_id + i64::from(options.incidents);

    let mut inserted = Inserted::default();
    let mut distribution = Distribution {
        distinct_protocols: synth.protocol_count(),
        ..Distribution::default()
    };
    let mut generate = Duration::ZERO;
    let insert_started = Instant::now();
    let tx = conn.transaction().await?;
    let mut next = first_id;
    while next <= last_id {
        let end = (next + options.batch_size as i64 - 1).min(last_id);
        let generate_started = Instant::now();
        let batch: Vec<Incident> = (next..=end).map(|id| synth.next(id)).collect();
        generate += generate_started.elapsed();
        for incident in &batch {
            count(&mut distribution, incident);
        }
        insert_batch(&tx, &batch, &mut inserted).await?;
        next = end + 1;
    }
    // Explicit ids were inserted: move the identity past them so that the service's own
    // inserts (imports) do not collide.
    tx.query_one(
        "SELECT setval(pg_get_serial_sequence('exploits', 'id'), (SELECT max(id) FROM exploits))",
        &[],
    )
    .await?;
    tx.commit().await?;
    let insert_elapsed = insert_started.elapsed();

    let vacuum_started = Instant::now();
    if options.vacuum {
        conn.batch_execute(
            "VACUUM (ANALYZE) exploits, exploit_chains, exploit_tx_hashes, exploit_sources",
        )
        .await?;
    }
    let vacuum_ms = vacuum_started.elapsed().as_millis();
    drop(conn);
    pool.close();

    Ok(Report {
        database: redacted,
        seed: options.seed,
        migrations_applied: migrations.applied,
        first_id,
        last_id,
        inserted,
        distribution,
        elapsed_ms: Elapsed {
            migrate: migrate_ms,
            generate: generate.as_millis(),
            insert: insert_elapsed.saturating_sub(generate).as_millis(),
            vacuum_analyze: vacuum_ms,
            total: started.elapsed().as_millis(),
        },
        method: "bulk INSERT ... SELECT FROM unnest(arrays) in one transaction, explicit ids, \
                 dedup path bypassed",
    })
}

fn count(d: &mut Distribution, i: &Incident) {
    *d.primary_chain.entry(i.chains[0]).or_default() += 1;
    *d.year.entry(i.occurred_at.year()).or_default() += 1;
    *d.status.entry(i.status).or_default() += 1;
    *d.attack_type.entry(i.attack_type.as_str()).or_default() += 1;
    d.multi_chain += u64::from(i.chains.len() > 1);
    d.loss_unknown += u64::from(i.loss_usd.is_none());
    d.with_tx_hash += u64::from(i.tx_hash.is_some());
    d.flash_loan += u64::from(i.flash_loan);
    d.bridge += u64::from(i.bridge);
}

async fn insert_batch(
    tx: &kamiyo_db::postgres::PgTransaction<'_>,
    batch: &[Incident],
    inserted: &mut Inserted,
) -> Result<(), DbError> {
    let ids: Vec<i64> = batch.iter().map(|i| i.id).collect();
    let protocols: Vec<&str> = batch.iter().map(|i| i.protocol.as_str()).collect();
    let keys: Vec<&str> = batch.iter().map(|i| i.protocol_key.as_str()).collect();
    let primary: Vec<&str> = batch.iter().map(|i| i.chains[0]).collect();
    let tx_hashes: Vec<Option<&str>> = batch.iter().map(|i| i.tx_hash.as_deref()).collect();
    let dedup_keys: Vec<String> = batch.iter().map(Incident::dedup_key).collect();
    let losses: Vec<Option<&str>> = batch.iter().map(|i| i.loss_usd.as_deref()).collect();
    let recovered: Vec<Option<&str>> = batch.iter().map(|i| i.recovered_usd.as_deref()).collect();
    let classes: Vec<&str> = batch
        .iter()
        .map(|i| i.attack_type.class().as_str())
        .collect();
    let types: Vec<&str> = batch.iter().map(|i| i.attack_type.as_str()).collect();
    let techniques: Vec<&str> = batch.iter().map(|i| i.technique.as_str()).collect();
    let descriptions: Vec<Option<&str>> = batch.iter().map(|i| i.description.as_deref()).collect();
    let statuses: Vec<&str> = batch.iter().map(|i| i.status).collect();
    let occurred: Vec<DateTime<Utc>> = batch.iter().map(|i| i.occurred_at).collect();
    let urls: Vec<&str> = batch.iter().map(|i| i.source_url.as_str()).collect();
    let flash: Vec<bool> = batch.iter().map(|i| i.flash_loan).collect();
    let bridge: Vec<bool> = batch.iter().map(|i| i.bridge).collect();

    inserted.exploits += tx
        .execute(
            "INSERT INTO exploits (id, protocol, protocol_key, chain, tx_hash, dedup_key, amount_usd, \
                 recovered_usd, attack_class, attack_type, attack_technique_raw, description, status, \
                 occurred_at, source_url, flash_loan, bridge) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[]::numeric[], $8::text[]::numeric[], $9::text[], $10::text[], $11::text[], \
                 $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::bool[], $17::bool[])",
            &[
                &ids as &(dyn ToSql + Sync),
                &protocols,
                &keys,
                &primary,
                &tx_hashes,
                &dedup_keys,
                &losses,
                &recovered,
                &classes,
                &types,
                &techniques,
                &descriptions,
                &statuses,
                &occurred,
                &urls,
                &flash,
                &bridge,
            ],
        )
        .await?;

    let (chain_ids, chains): (Vec<i64>, Vec<&str>) = batch
        .iter()
        .flat_map(|i| i.chains.iter().map(move |c| (i.id, *c)))
        .unzip();
    inserted.exploit_chains += tx
        .execute(
            "INSERT INTO exploit_chains (exploit_id, chain) SELECT * FROM unnest($1::bigint[], $2::text[])",
            &[&chain_ids, &chains],
        )
        .await?;

    let hashed: Vec<&Incident> = batch.iter().filter(|i| i.tx_hash.is_some()).collect();
    let hash_ids: Vec<i64> = hashed.iter().map(|i| i.id).collect();
    let hash_chains: Vec<&str> = hashed.iter().map(|i| i.chains[0]).collect();
    let hashes: Vec<&str> = hashed.iter().filter_map(|i| i.tx_hash.as_deref()).collect();
    inserted.exploit_tx_hashes += tx
        .execute(
            "INSERT INTO exploit_tx_hashes (exploit_id, chain, tx_hash) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
            &[&hash_ids, &hash_chains, &hashes],
        )
        .await?;

    let sources: Vec<&str> = batch.iter().map(|i| i.source).collect();
    let claim_keys: Vec<String> = batch.iter().map(Incident::claim_key).collect();
    let external_ids: Vec<String> = batch.iter().map(Incident::external_id).collect();
    let reported_dates: Vec<&str> = batch.iter().map(|i| i.reported_date.as_str()).collect();
    let chains_json: Vec<String> = batch.iter().map(Incident::chains_json).collect();
    let hashes_json: Vec<String> = batch.iter().map(Incident::tx_hashes_json).collect();
    inserted.exploit_sources += tx
        .execute(
            "INSERT INTO exploit_sources (exploit_id, source_name, claim_key, source_url, external_id, \
                 reported_name, reported_date, occurred_at, amount_usd, recovered_usd, chains, tx_hashes, \
                 attack_class, attack_type, attack_text, classification, status, description, flash_loan, bridge) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::timestamptz[], $9::text[]::numeric[], $10::text[]::numeric[], \
                 $11::text[]::jsonb[], $12::text[]::jsonb[], $13::text[], $14::text[], $15::text[], \
                 $16::text[], $17::text[], $18::text[], $19::bool[], $20::bool[])",
            &[
                &ids as &(dyn ToSql + Sync),
                &sources,
                &claim_keys,
                &urls,
                &external_ids,
                &protocols,
                &reported_dates,
                &occurred,
                &losses,
                &recovered,
                &chains_json,
                &hashes_json,
                &classes,
                &types,
                &techniques,
                // The source's own category, in its words: the taxonomy class here.
                &classes,
                &statuses,
                &descriptions,
                &flash,
                &bridge,
            ],
        )
        .await?;
    Ok(())
}
