//! Workers: claim due deliveries under a lease, send each (outside any transaction),
//! record the attempt and schedule the next one.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kamiyo_store::alerts::{AttemptOutcome, AttemptRecord, DueDelivery};
use kamiyo_store::{AlertStore, StoreError};

use crate::config::AlertsConfig;
use crate::send::{send, Sent};

/// Sends what is due.
#[derive(Clone)]
pub struct Deliverer {
    pub alerts: AlertStore,
    pub client: reqwest::Client,
    pub config: Arc<AlertsConfig>,
    pub clock: kamiyo_db::Clock,
    pub metrics: Arc<crate::metrics::AlertMetrics>,
}

impl Deliverer {
    /// How many deliveries one round claims: no more than can be in flight at once, so
    /// that every claimed delivery is sent at once, well within its lease (a claimed row
    /// waiting for a free slot could outlive its lease and be sent by another instance).
    pub fn claim_size(&self) -> usize {
        usize::try_from(self.config.batch_size)
            .unwrap_or(usize::MAX)
            .min(self.config.concurrency)
            .max(1)
    }

    /// Claims up to [`Deliverer::claim_size`] deliveries due at `now` and makes one
    /// attempt at each, all at once; how many it attempted.
    pub async fn deliver_once(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let claim = i64::try_from(self.claim_size()).unwrap_or(i64::MAX);
        let due = self.alerts.claim_due(now, self.config.lease, claim).await?;
        let count = due.len();
        let permits = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency));
        let mut running = tokio::task::JoinSet::new();
        for delivery in due {
            let worker = self.clone();
            let permits = Arc::clone(&permits);
            running.spawn(async move {
                let _permit = permits.acquire_owned().await;
                worker.attempt(delivery).await
            });
        }
        while let Some(done) = running.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "an attempt's outcome could not be recorded; its lease hands it on")
                }
                Err(error) => tracing::error!(%error, "a delivery task failed"),
            }
        }
        Ok(count)
    }

    async fn attempt(&self, delivery: DueDelivery) -> Result<(), StoreError> {
        let attempted_at = self.clock.now_utc();
        let sent = send(&self.client, &self.config, &delivery, attempted_at).await;
        let outcome = self.outcome(&delivery, &sent, attempted_at);
        tracing::debug!(
            delivery = delivery.id,
            subscription = delivery.subscription_id,
            status = sent.status,
            ?outcome,
            "delivery attempted"
        );
        let label = match outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry(_) => "retry",
            AttemptOutcome::GaveUp => "failed",
            AttemptOutcome::Gone => "gone",
        };
        // From the change's commit (the event's `timestamp`) to this 2xx.
        let latency = (outcome == AttemptOutcome::Delivered)
            .then(|| delivery.payload["timestamp"].as_str())
            .flatten()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            // Clocks of two hosts can disagree: a negative span counts as none.
            .map(|written| {
                (self.clock.now_utc() - written.with_timezone(&Utc))
                    .to_std()
                    .unwrap_or(std::time::Duration::ZERO)
            });
        self.metrics.attempted(&delivery.channel, label, latency);
        let record = AttemptRecord {
            attempted_at,
            duration_ms: i64::try_from(sent.duration.as_millis()).unwrap_or(i64::MAX),
            status_code: sent.status.map(i32::from),
            error: sent.error,
            response_body: sent.body,
            outcome,
        };
        let streak_gap =
            chrono::Duration::from_std(self.config.retry_window).unwrap_or(chrono::Duration::MAX);
        let disable_after =
            chrono::Duration::from_std(self.config.disable_after).unwrap_or(chrono::Duration::MAX);
        if !self
            .alerts
            .record_attempt(&delivery, &record, disable_after, streak_gap)
            .await?
        {
            tracing::warn!(
                delivery = delivery.id,
                "the lease ran out during the attempt: another worker may send it again"
            );
        }
        Ok(())
    }

    fn outcome(&self, delivery: &DueDelivery, sent: &Sent, now: DateTime<Utc>) -> AttemptOutcome {
        if sent.delivered() {
            return AttemptOutcome::Delivered;
        }
        if sent.status == Some(410) {
            return AttemptOutcome::Gone;
        }
        if sent.permanent {
            return AttemptOutcome::GaveUp;
        }
        let attempts = u32::try_from(delivery.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let first = delivery.first_attempt_at.unwrap_or(now);
        match self.config.retry().next_attempt(
            attempts,
            first,
            now,
            sent.retry_after,
            &mut rand::rng(),
        ) {
            Some(at) => AttemptOutcome::Retry(at),
            None => AttemptOutcome::GaveUp,
        }
    }
}
