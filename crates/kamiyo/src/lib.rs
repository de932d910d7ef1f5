//! The `kamiyo` command: configuration, telemetry and wiring. The only crate that uses
//! `anyhow`; everything below it returns typed errors.

mod accounts;
mod alerts;
pub mod cli;
mod commands;
mod copy;
mod fdlimit;
mod incidents;
pub mod settings;
mod sources;
pub mod startup;
mod submissions;
mod telemetry;

use std::process::ExitCode;

use cli::{Cli, Command, DbAction, MigrateAction};
use settings::Overrides;

/// Runs one command; the exit code is 0 unless the command reports otherwise
/// (`kamiyo db health`).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (listen, no_migrate) = match &cli.command {
        Command::Serve {
            listen, no_migrate, ..
        } => (*listen, *no_migrate),
        _ => (None, false),
    };
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        listen,
        no_migrate,
        log_format: cli.log_format,
    };
    let settings = settings::load(cli.config.as_deref(), &overrides)?;
    telemetry::init(&settings.log);
    match cli.command {
        Command::Serve { no_fetch, .. } => {
            let fetch = settings.sources.enabled && !no_fetch;
            commands::serve(settings, fetch).await?
        }
        Command::Migrate { action: None } => commands::migrate(settings).await?,
        Command::Migrate {
            action: Some(MigrateAction::Status),
        } => commands::migrate_status(settings).await?,
        Command::Config => commands::print_config(&settings)?,
        Command::User { action } => accounts::user(settings, action).await?,
        Command::Submission { action } => submissions::submission(settings, action).await?,
        Command::Bounty { action } => submissions::bounty(settings, action).await?,
        Command::Key { action } => accounts::key(settings, action).await?,
        Command::Payment { action } => accounts::payment(settings, action).await?,
        Command::Source { action } => return sources::source(settings, action).await,
        Command::Incidents { action } => return incidents::incidents(settings, action).await,
        Command::Incident { action } => return incidents::incident(settings, action).await,
        Command::Protocol { action } => return incidents::protocol(settings, action).await,
        Command::Alert { action } => alerts::alert(settings, action).await?,
        Command::Import {
            file,
            format,
            source,
            json,
            batch_size,
            streams,
        } => {
            let shape = commands::ImportShape {
                batch_size,
                streams,
            };
            return commands::import(settings, &file, format, source.as_deref(), json, shape).await;
        }
        Command::Db {
            action: DbAction::Health { json },
        } => return commands::db_health(settings, json).await,
        Command::Db {
            action: DbAction::Fingerprint { sql },
        } => commands::fingerprint(&sql),
        Command::Db {
            action: DbAction::Copy(args),
        } => return copy::run(settings, args).await,
    }
    Ok(ExitCode::SUCCESS)
}
