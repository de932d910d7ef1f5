//! `kamiyo source`: the sources incidents come from, their fetch health, and whether they
//! are active.

use anyhow::Context;
use kamiyo_store::{SourceStore, MIGRATIONS};

use crate::cli::SourceAction;
use crate::settings::Settings;
use crate::startup::prepare_database;

pub async fn source(settings: Settings, action: SourceAction) -> anyhow::Result<()> {
    let database = prepare_database(&settings.database, &MIGRATIONS).await?;
    let store = SourceStore::new(database.clone());
    match action {
        SourceAction::List { json } => {
            let sources = store
                .report(settings.server.source_health_window, None, None)
                .await
                .context("cannot read the sources")?;
            if json {
                println!("{}", serde_json::to_string(&sources)?);
            } else {
                println!(
                    "{:<24} {:>9} {:>7} {:<7} {:>8} {:>8} {:<25} LAST ERROR",
                    "SOURCE", "INCIDENTS", "CLAIMS", "ACTIVE", "FETCHES", "SUCCESS", "LAST FETCH"
                );
                for s in &sources {
                    println!(
                        "{:<24} {:>9} {:>7} {:<7} {:>8} {:>8} {:<25} {}",
                        s.source,
                        s.incidents,
                        s.claims,
                        s.active.map_or("-".to_owned(), |a| a.to_string()),
                        s.fetches_in_window,
                        s.success_rate_pct
                            .map_or("-".to_owned(), |r| format!("{r:.2}%")),
                        s.last_fetch_at.as_deref().unwrap_or("-"),
                        // Escaped: an error text from a remote source must not drive
                        // the terminal (control characters, newlines).
                        s.last_error
                            .as_deref()
                            .map_or("-".to_owned(), |e| e.escape_debug().to_string())
                    );
                }
                println!(
                    "fetches and success over the last {}",
                    humantime::format_duration(settings.server.source_health_window)
                );
            }
        }
        SourceAction::Enable { name } => set_active(&store, &name, true).await?,
        SourceAction::Disable { name } => set_active(&store, &name, false).await?,
    }
    database.close();
    Ok(())
}

async fn set_active(store: &SourceStore, name: &str, active: bool) -> anyhow::Result<()> {
    let found = store
        .set_active(name, active)
        .await
        .context("cannot change the source")?;
    if !found {
        anyhow::bail!(
            "no source named {name:?}: `kamiyo source list` shows the sources with claims or recorded fetches"
        );
    }
    println!(
        "source {name} {}",
        if active { "enabled" } else { "disabled" }
    );
    Ok(())
}
