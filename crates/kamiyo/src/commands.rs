//! What each subcommand does, given the loaded settings.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use kamiyo_api::{AppState, ConnectionLimits};
use kamiyo_db::Database;
use kamiyo_store::MIGRATIONS;

use crate::fdlimit;
use crate::settings::Settings;
use crate::startup::prepare_kamiyo_database;

/// Most connections the metrics listener holds at once: it serves a scraper or two, and
/// its descriptors come out of `fdlimit::RESERVED_DESCRIPTORS`.
const METRICS_MAX_CONNECTIONS: usize = 16;

/// Serves the API and, when `fetch`, fetches the configured sources on schedule.
pub async fn serve(mut settings: Settings, fetch: bool) -> anyhow::Result<()> {
    let open_files = fdlimit::raise_to_hard_limit();
    settings.server.max_connections = fit_connection_cap(&settings, open_files);
    let database = prepare_kamiyo_database(&settings.database).await?;
    let listener = tokio::net::TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::info!(
        %addr,
        backend = %database.backend(),
        max_connections = settings.server.max_connections,
        "listening"
    );
    let limits = ConnectionLimits::from(&settings.server);
    let metrics_listen = settings.server.metrics_listen;
    let min_lease = settings.sources.min_lease;
    let (retry, connect_timeout) = (settings.database.retry, settings.database.connect_timeout);
    // What /api/health judges: the sources this instance fetches.
    // Resolved once: the scheduler fetches these, /api/health judges them.
    let fetched = if fetch {
        settings.sources.resolve()?
    } else {
        Vec::new()
    };
    let schedule = fetched
        .iter()
        .map(kamiyo_ingest::sources::Source::schedule)
        .collect();
    let fetch_log_keep = settings.server.source_fetch_retention;
    let alerts = settings.alerts.clone();
    let tiers = settings.tiers;
    let web = settings.web.clone();
    let community = settings.community.clone();
    let limiter = kamiyo_api::request_limits::RequestLimiter::new(
        &settings.rate_limit,
        &settings.database,
        settings.server.rate_limit_max_callers,
        database.clock().clone(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(
        backend = settings.rate_limit.backend.as_str(),
        "request limits kept in {}",
        match settings.rate_limit.backend {
            kamiyo_api::request_limits::LimiterBackend::Memory => "this process",
            _ => "a backend shared by every instance",
        }
    );
    let state = AppState::build(
        database.clone(),
        settings.server,
        schedule,
        alerts.clone(),
        tiers,
        community,
        limiter,
    );
    // Keys revoked and users changed by other processes, heard at once (PostgreSQL).
    let account_changes = state
        .accounts
        .follow_changes(state.server.auth_relisten_after);
    let alert_service = if alerts.enabled {
        let service = kamiyo_alerts::runner::AlertService::with_metrics(
            &database,
            alerts,
            tiers,
            Arc::clone(&state.alert_metrics),
        )
        .context("cannot build the alert sender")?;
        Some(service.spawn())
    } else {
        tracing::info!("alert delivery is off (alerts.enabled = false)");
        None
    };
    let fetchers = if fetch {
        let scheduler = kamiyo_ingest::scheduler::Scheduler {
            incidents: kamiyo_store::IncidentStore::new(database.clone()),
            sources: kamiyo_store::SourceStore::new(database.clone()),
            retry,
            fetcher: kamiyo_ingest::fetch::HttpFetcher::new(
                connect_timeout,
                database.clock().clone(),
            )?,
            clock: database.clock().clone(),
            backend: database.backend(),
            fetch_log_keep,
            holder: kamiyo_ingest::scheduler::instance_name().into(),
            metrics: Arc::clone(&state.source_metrics),
            min_lease,
        };
        // An unreachable network is no reason not to serve: each fetch fails, is
        // recorded, and says why in the source's health.
        scheduler.spawn(fetched)
    } else {
        tracing::info!("fetching on schedule is off (sources.enabled = false or --no-fetch)");
        Vec::new()
    };

    // One signal stops both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let metrics_server = match metrics_listen {
        Some(metrics_addr) => {
            let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("cannot listen on {metrics_addr} for /metrics"))?;
            tracing::info!(addr = %metrics_listener.local_addr().context("cannot read the metrics address")?, "metrics listening");
            let router = kamiyo_api::metrics_router(state.clone());
            let metrics_limits = ConnectionLimits {
                max_connections: METRICS_MAX_CONNECTIONS.min(limits.max_connections),
                ..limits
            };
            Some(tokio::spawn(kamiyo_api::serve(
                metrics_listener,
                router,
                stopped(stop_rx.clone()),
                metrics_limits,
                Arc::default(),
            )))
        }
        None => None,
    };
    let stats = Arc::clone(&state.connections);
    let app = if web.enabled {
        kamiyo_web::app(state, web)
    } else {
        tracing::info!("the dashboard is off (web.enabled = false): serving the API only");
        kamiyo_api::router(state)
    };
    let drained = kamiyo_api::serve(listener, app, stopped(stop_rx), limits, stats).await;
    // A fetch cut off here leaves whole batches or none, and its slot's lease hands it
    // to another instance.
    for fetcher in &fetchers {
        fetcher.abort();
    }
    // A delivery cut off here keeps its lease; when it runs out, any instance sends it
    // again with the same webhook-id (at least once).
    if let Some(alert_service) = &alert_service {
        alert_service.abort();
    }
    if let Some(account_changes) = &account_changes {
        account_changes.abort();
    }
    if let Some(metrics_server) = metrics_server {
        metrics_server
            .await
            .context("the metrics server task failed")?;
    }
    database.close();
    tracing::info!(drained, "stopped");
    Ok(())
}

/// `server.max_connections`, lowered (with a warning) if the database pools, the
/// reserve and the cap together would pass the open-file limit.
fn fit_connection_cap(settings: &Settings, open_files: Option<u64>) -> usize {
    let configured = settings.server.max_connections;
    let reserve = fdlimit::database_descriptors(&settings.database) + fdlimit::RESERVED_DESCRIPTORS;
    let fitting = fdlimit::fitting_max_connections(configured, open_files, reserve);
    if fitting < configured {
        tracing::warn!(
            configured,
            max_connections = fitting,
            open_file_limit = open_files,
            reserve,
            "server.max_connections lowered to fit the open-file limit"
        );
    }
    fitting
}

pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let database = open(&settings).await?;
    let report = database
        .migrate(&MIGRATIONS)
        .await
        .context("migration failed")?;
    crate::startup::run_pending_tasks(&database).await?;
    if report.applied.is_empty() {
        println!(
            "database is up to date ({} migrations applied)",
            report.already_applied.len()
        );
    } else {
        for version in &report.applied {
            println!("applied migration {version:04}");
        }
    }
    database.close();
    Ok(())
}

pub async fn migrate_status(settings: Settings) -> anyhow::Result<()> {
    let database = open(&settings).await?;
    let status = database
        .migration_status(&MIGRATIONS)
        .await
        .context("cannot read the migration status")?;
    println!(
        "{:<8} {:<32} {:<8} {:<64} APPLIED_AT",
        "VERSION", "NAME", "STATE", "CHECKSUM"
    );
    for row in status {
        let state = row.state;
        println!(
            "{:<8} {:<32} {:<8} {:<64} {}",
            format!("{:04}", row.version),
            row.name,
            state,
            row.checksum,
            row.applied_at.as_deref().unwrap_or("-")
        );
    }
    database.close();
    Ok(())
}

/// Pings the database and prints its health; the exit code tells the status.
pub async fn db_health(settings: Settings, json: bool) -> anyhow::Result<ExitCode> {
    let database = open(&settings).await?;
    let report = database.health().await;
    let state = database.pool_state();
    if json {
        let body = serde_json::json!({
            "status": report.status,
            "utilization_pct": report.utilization_pct,
            "warnings": report.warnings,
            "backend": database.backend().to_string(),
            "pool": state,
        });
        println!("{body}");
    } else {
        println!(
            "status: {}",
            serde_json::to_value(report.status)?
                .as_str()
                .unwrap_or("unknown")
        );
        println!("backend: {}", database.backend());
        println!(
            "pool: max {} open {} idle {} in use {} waiting {} (utilisation {:.1}%)",
            state.max_size,
            state.open,
            state.idle,
            state.in_use,
            state.waiting,
            report.utilization_pct
        );
        for warning in &report.warnings {
            println!("warning: {}", warning.message);
        }
    }
    database.close();
    Ok(ExitCode::from(report.status.exit_code()))
}

/// Imports a file and prints the report; exit code 1 when any line was rejected, so a
/// script notices.
/// How `kamiyo import` writes: claims per transaction, transactions at once; `None`:
/// the backend's default ([`kamiyo_ingest::default_shape`]).
#[derive(Debug, Clone, Copy)]
pub struct ImportShape {
    pub batch_size: Option<usize>,
    pub streams: Option<usize>,
}

pub async fn import(
    settings: Settings,
    file: &std::path::Path,
    format: Option<kamiyo_ingest::Format>,
    source: Option<&str>,
    json: bool,
    shape: ImportShape,
) -> anyhow::Result<ExitCode> {
    if shape.batch_size == Some(0) {
        anyhow::bail!("--batch-size must be at least 1");
    }
    if shape.streams == Some(0) {
        anyhow::bail!("--streams must be at least 1");
    }
    let format = match format.or_else(|| kamiyo_ingest::Format::from_path(file)) {
        Some(format) => format,
        None => anyhow::bail!(
            "cannot tell the format of {} from its extension; pass --format {}",
            file.display(),
            kamiyo_ingest::format_names("|")
        ),
    };
    let default_source = match (source, format) {
        (Some(source), _) => Some(source.to_owned()),
        (
            None,
            kamiyo_ingest::Format::Defillama
            | kamiyo_ingest::Format::DefillamaApi
            | kamiyo_ingest::Format::Defihacklabs
            | kamiyo_ingest::Format::RektRss,
        ) => None,
        (None, _) => file
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned()),
    };
    let database = prepare_kamiyo_database(&settings.database).await?;
    let store = kamiyo_store::IncidentStore::new(database.clone());
    let sources = kamiyo_store::SourceStore::new(database.clone());
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !json {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {elapsed}")
        {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let (default_batch_size, default_streams) =
        kamiyo_ingest::default_shape(settings.database.url.backend()?);
    let options = kamiyo_ingest::ImportOptions {
        format,
        default_source: default_source.as_deref(),
        batch_size: shape.batch_size.unwrap_or(default_batch_size),
        streams: shape.streams.unwrap_or(default_streams),
        fetch_log_keep: settings.server.source_fetch_retention,
    };
    let report = kamiyo_ingest::import(
        &store,
        &sources,
        &settings.database.retry,
        &options,
        file,
        |done, total| {
            if let Some(bar) = &bar {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
        },
    )
    .await
    .with_context(|| format!("import of {} failed", file.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    database.close();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{}: {} records: {} inserted, {} merged into existing incidents, {} updated, {} unchanged, {} rejected",
            file.display(),
            report.records,
            report.inserted,
            report.merged,
            report.updated,
            report.unchanged,
            report.rejected.len()
        );
        for rejection in &report.rejected {
            println!("rejected {rejection}");
        }
        for warning in &report.warnings {
            println!("warning line {}: {}", warning.line, warning.message);
        }
    }
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn fingerprint(sql: &str) {
    let fingerprint = kamiyo_db::monitor::fingerprint::Fingerprint::of(sql);
    println!("fingerprint: {}", fingerprint.id);
    println!("normalized: {}", fingerprint.normalized);
    println!("summary: {}", fingerprint.summary);
}

pub fn print_config(settings: &Settings) -> anyhow::Result<()> {
    // DbConfig serialises its URL redacted, so this never prints a password.
    let text = toml::to_string_pretty(settings).context("cannot render the configuration")?;
    print!("{text}");
    Ok(())
}

async fn open(settings: &Settings) -> anyhow::Result<Database> {
    Database::open(settings.database.clone())
        .await
        .context("cannot open the database")
}

/// Completes on SIGTERM (how service managers stop us) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
