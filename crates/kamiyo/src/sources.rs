//! `kamiyo source`: the sources incidents come from, their fetch health, and whether they
//! are active.

use std::process::ExitCode;

use anyhow::Context;
use kamiyo_store::SourceStore;

use crate::cli::SourceAction;
use crate::settings::Settings;
use crate::startup::prepare_kamiyo_database;

pub async fn source(settings: Settings, action: SourceAction) -> anyhow::Result<ExitCode> {
    let database = prepare_kamiyo_database(&settings.database).await?;
    let store = SourceStore::new(database.clone());
    match action {
        SourceAction::List { json } => {
            let mut sources = store
                .report(settings.server.source_health_window, None, None)
                .await
                .context("cannot read the sources")?;
            // Staleness of the configured sources (a source never fetched successfully
            // is stale: no process start to count from here).
            let now = database.clock().now_utc();
            for configured in settings.sources.resolve()? {
                if let Some(row) = sources.iter_mut().find(|r| r.source == configured.name) {
                    row.stale = Some(configured.is_stale(
                        row.last_success(),
                        chrono::DateTime::<chrono::Utc>::MIN_UTC,
                        now,
                    ));
                }
            }
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
        SourceAction::Fetch { name, json } => {
            let outcome = fetch(&settings, &database, &name, json).await;
            database.close();
            return outcome.map(|()| ExitCode::SUCCESS);
        }
        SourceAction::Health { json } => {
            let outcome = health(&settings, &store, database.clock().now_utc(), json).await;
            database.close();
            return outcome;
        }
        SourceAction::Enable { name } => set_active(&store, &name, true).await?,
        SourceAction::Disable { name } => set_active(&store, &name, false).await?,
    }
    database.close();
    Ok(ExitCode::SUCCESS)
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

/// `kamiyo source fetch NAME`: one fetch now, reported like an import.
async fn fetch(
    settings: &Settings,
    database: &kamiyo_db::Database,
    name: &str,
    json: bool,
) -> anyhow::Result<()> {
    let configured = settings.sources.resolve()?;
    let Some(source) = configured.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = configured.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!(
            "no source named {name:?} in [sources]: configured are {}",
            names.join(", ")
        );
    };
    let clock = database.clock().clone();
    let fetcher =
        kamiyo_ingest::fetch::HttpFetcher::new(settings.database.connect_timeout, clock.clone())?;
    let incidents = kamiyo_store::IncidentStore::new(database.clone());
    let sources = SourceStore::new(database.clone());
    let context = kamiyo_ingest::job::RunContext {
        incidents: &incidents,
        sources: &sources,
        retry: &settings.database.retry,
        fetcher: &fetcher,
        clock: &clock,
        backend: database.backend(),
        fetch_log_keep: settings.server.source_fetch_retention,
    };
    // Conditional on the last success's validators: an unchanged source costs nothing.
    let previous = sources
        .last_validators(name)
        .await
        .context("cannot read the source's last fetch")?
        .unwrap_or_default();
    let run = kamiyo_ingest::job::run(&context, source, &previous, None).await;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "source": run.source,
                "outcome": run.outcome,
                "status": run.status,
                "attempts": run.attempts,
                "bytes": run.bytes,
                "report": run.report,
                "articles": run.articles,
                "error": run.error,
            })
        );
    } else {
        let counts = run.report.as_ref().map_or_else(String::new, |r| {
            format!(
                ": {} records: {} inserted, {} merged, {} updated, {} unchanged, {} rejected",
                r.records,
                r.inserted,
                r.merged,
                r.updated,
                r.unchanged,
                r.rejected.len()
            )
        });
        println!(
            "{} {:?} (HTTP {}, {} bytes, {} attempt(s)){counts}",
            run.source,
            run.outcome,
            run.status.map_or("-".to_owned(), |s| s.to_string()),
            run.bytes,
            run.attempts
        );
        if let Some(articles) = &run.articles {
            println!(
                "articles: {} read, {} not read, {} skipped (deadline)",
                articles.read,
                articles.failed.len(),
                articles.skipped
            );
            for failure in &articles.failed {
                // Escaped: the text names a remote page and what it answered.
                println!("article not read: {}", failure.escape_debug());
            }
        }
        for rejection in run.report.iter().flat_map(|r| &r.rejected) {
            println!("rejected {rejection}");
        }
    }
    match run.error {
        None => Ok(()),
        // Escaped: an error text from a remote source must not drive the terminal.
        Some(error) => anyhow::bail!("fetch of {name} failed: {}", error.escape_debug()),
    }
}

/// `kamiyo source health`: each configured, enabled source's freshness.
async fn health(
    settings: &Settings,
    store: &SourceStore,
    now: chrono::DateTime<chrono::Utc>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = store
        .report(settings.server.source_health_window, None, None)
        .await
        .context("cannot read the sources")?;
    let mut rows = Vec::new();
    for source in settings.sources.resolve()?.iter().filter(|s| s.enabled) {
        let row = report.iter().find(|r| r.source == source.name);
        let last_success_at = row.and_then(|r| r.last_success_at.clone());
        let last_success = row.and_then(kamiyo_store::SourceReport::last_success);
        // No process start to count from here: a source never fetched is stale.
        let stale = source.is_stale(last_success, chrono::DateTime::<chrono::Utc>::MIN_UTC, now);
        rows.push(serde_json::json!({
            "source": source.name,
            "interval_seconds": source.interval.as_secs(),
            "last_success_at": last_success_at,
            "consecutive_failures": row.map_or(0, |r| r.consecutive_failures),
            "stale": stale,
        }));
    }
    let stale: Vec<&str> = rows
        .iter()
        .filter(|r| r["stale"] == true)
        .filter_map(|r| r["source"].as_str())
        .collect();
    let status = if stale.is_empty() {
        "healthy"
    } else {
        "degraded"
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "status": status, "sources": rows })
        );
    } else {
        for r in &rows {
            println!(
                "{:<24} {:<6} last success {}  failures since {}",
                r["source"].as_str().unwrap_or_default(),
                if r["stale"] == true { "STALE" } else { "fresh" },
                r["last_success_at"].as_str().unwrap_or("never"),
                r["consecutive_failures"]
            );
        }
        println!("{status}");
    }
    Ok(if stale.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
