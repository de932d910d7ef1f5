//! Bringing the database up for the server: open the pool, apply pending migrations
//! (unless switched off), and refuse to serve a database that is not fully migrated.

use anyhow::Context;
use kamiyo_db::{Database, DbConfig, Migrations};

/// The database, migrated, or the reason it cannot be served. A failed migration stops
/// start-up here: the service never serves a half-migrated schema.
pub async fn prepare_database(
    config: &DbConfig,
    migrations: &Migrations,
) -> anyhow::Result<Database> {
    let database = Database::open(config.clone())
        .await
        .context("cannot open the database")?;
    if config.migrate_on_start {
        let report = database
            .migrate(migrations)
            .await
            .context("cannot migrate the database; fix the cause and start again")?;
        tracing::info!(applied = ?report.applied, already_applied = report.already_applied.len(), "database schema is current");
    } else {
        // The same checks as migrating: an edited or unknown applied migration stops
        // start-up here too, not only pending ones.
        let pending: Vec<String> = database
            .pending_migrations(migrations)
            .await
            .context("the database's migration history does not match this binary")?
            .into_iter()
            .map(|m| format!("{:04}_{}", m.version, m.name))
            .collect();
        if !pending.is_empty() {
            anyhow::bail!(
                "the database has pending migrations ({}) and migrate_on_start is off; run `kamiyo migrate` first",
                pending.join(", ")
            );
        }
        tracing::info!("automatic migration is off; schema is current");
    }
    Ok(database)
}

/// Kamiyo's database, migrated ([`prepare_database`] with its migrations), with the work
/// its migrations left for the binary done when it migrates.
pub async fn prepare_kamiyo_database(config: &DbConfig) -> anyhow::Result<Database> {
    let database = prepare_database(config, &kamiyo_store::MIGRATIONS).await?;
    if config.migrate_on_start {
        run_pending_tasks(&database).await?;
    }
    Ok(database)
}

/// Work a migration left for the binary (`maintenance_tasks`): the remerge of every
/// stored claim under the rule a release ships. Runs once, in the transaction that
/// marks it done; another instance starting at the same time waits, then finds it done.
pub async fn run_pending_tasks(database: &Database) -> anyhow::Result<()> {
    let store = kamiyo_store::IncidentStore::new(database.clone());
    if let Some(report) = store
        .run_pending_remerge()
        .await
        .context("cannot remerge the stored incidents after migrating")?
    {
        tracing::info!(
            claims = report.claims,
            incidents_before = report.incidents_before,
            incidents_after = report.incidents_after,
            merges = report.merges.len(),
            splits = report.splits.len(),
            rewritten = report.rewritten,
            removed = ?report.removed,
            "stored incidents remerged under the current rules"
        );
    }
    Ok(())
}
