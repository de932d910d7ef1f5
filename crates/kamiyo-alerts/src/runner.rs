//! The alert service inside `kamiyo serve`: dispatch new events, deliver what is due,
//! then wait for a `NOTIFY` (PostgreSQL: a transaction wrote events, or a dispatcher
//! created deliveries) or for the next due retry, at most `alerts.poll_interval`. A lost
//! notification (a killed listening session, another instance's writes on SQLite) costs
//! at most that interval.
//!
//! Any number of instances run this against one database: deliveries are claimed with
//! `SKIP LOCKED` under a lease, events are recorded by the first dispatcher only.

use std::sync::Arc;
use std::time::Duration;

use kamiyo_db::{Database, Pool};
use kamiyo_domain::TierTable;
use kamiyo_store::alerts::DELIVERIES_CHANNEL;
use kamiyo_store::{AlertStore, IncidentStore, StoreError};

use crate::config::AlertsConfig;
use crate::deliver::Deliverer;
use crate::dispatch::Dispatcher;

const EVENTS_CHANNEL: &str = kamiyo_store::incidents::events::CHANNEL;

/// Wait before opening a new listening session after one failed or ended.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

pub struct AlertService {
    pub db: Database,
    pub dispatcher: Dispatcher,
    pub deliverer: Deliverer,
    pub config: Arc<AlertsConfig>,
}

impl AlertService {
    /// The service under the default tier table (tests, benchmarks).
    pub fn new(
        db: &Database,
        config: AlertsConfig,
    ) -> Result<AlertService, crate::target::TargetError> {
        Self::with_metrics(db, config, TierTable::default(), Arc::default())
    }

    /// [`AlertService::new`] under the configured tier table (`tiers.*`, the one the API
    /// reads), counting into `metrics` (the API's `/metrics` writes them).
    pub fn with_metrics(
        db: &Database,
        config: AlertsConfig,
        tiers: TierTable,
        metrics: Arc<crate::metrics::AlertMetrics>,
    ) -> Result<AlertService, crate::target::TargetError> {
        let client = crate::target::http_client(&config.client())?;
        let alerts = AlertStore::new(db.clone());
        let config = Arc::new(config);
        Ok(AlertService {
            db: db.clone(),
            dispatcher: Dispatcher {
                alerts: alerts.clone(),
                incidents: IncidentStore::new(db.clone()),
                batch_size: config.batch_size,
                concurrency: config.concurrency,
                tiers,
            },
            deliverer: Deliverer {
                alerts,
                client,
                config: Arc::clone(&config),
                clock: db.clock().clone(),
                metrics,
            },
            config,
        })
    }

    /// Dispatches and delivers until nothing more is due now; how many attempts. A
    /// dispatch that fails does not hold deliveries back.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let batch = usize::try_from(self.config.batch_size).unwrap_or(usize::MAX);
        loop {
            match self
                .dispatcher
                .dispatch_once(self.db.clock().now_utc())
                .await
            {
                Ok(read) if read >= batch => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "dispatching failed; delivering what is due");
                    break;
                }
            }
        }
        let claim = self.deliverer.claim_size();
        let mut attempts = 0;
        loop {
            let made = self
                .deliverer
                .deliver_once(self.db.clock().now_utc())
                .await?;
            attempts += made;
            if made < claim {
                return Ok(attempts);
            }
        }
    }

    /// Runs until the task is aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let mut listener: Option<kamiyo_db::postgres::Listener> = None;
        let mut relisten_at = tokio::time::Instant::now();
        loop {
            if let Err(error) = self.run_once().await {
                tracing::warn!(%error, "alert round failed; trying again after the poll interval");
            }
            if listener.is_none() && tokio::time::Instant::now() >= relisten_at {
                listener = self.listen().await;
                relisten_at = tokio::time::Instant::now() + RELISTEN_AFTER;
            }
            let wait = self.wait().await;
            match listener.as_mut() {
                Some(active) => {
                    tokio::select! {
                        heard = active.next() => {
                            if heard.is_none() {
                                tracing::info!("the alert listener's session ended; polling until it is back");
                                listener = None;
                            }
                        }
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    }

    async fn listen(&self) -> Option<kamiyo_db::postgres::Listener> {
        let Pool::Postgres(pool) = self.db.primary() else {
            return None;
        };
        if !self.config.listen {
            return None;
        }
        match pool.listen(&[EVENTS_CHANNEL, DELIVERIES_CHANNEL]).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for alert notifications; polling");
                None
            }
        }
    }

    /// Until the next due retry, at most the poll interval.
    async fn wait(&self) -> Duration {
        let poll = self.config.poll_interval;
        match self.deliverer.alerts.next_due().await {
            Ok(Some(due)) => (due - self.db.clock().now_utc())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll),
            Ok(None) | Err(_) => poll,
        }
    }
}
