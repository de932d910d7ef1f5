//! The dispatcher: matches each new event against the subscriptions, on the merged
//! incident as it is now, and records its deliveries (not before the subscriber's tier
//! may see the incident) with the body they all send.

use chrono::{DateTime, Utc};
use kamiyo_domain::alert_filter::{AlertFacts, AlertFilter};
use kamiyo_store::alerts::{PlannedDelivery, Subscriber};
use kamiyo_store::{AlertStore, Incident, IncidentStore, StoreError};

/// Matches events to subscriptions.
#[derive(Clone)]
pub struct Dispatcher {
    pub alerts: AlertStore,
    pub incidents: IncidentStore,
    pub batch_size: i64,
    /// Events of a batch matched at once: each reads its incident and records its
    /// deliveries in a few round trips, and one at a time a burst waited on them.
    pub concurrency: usize,
    /// `tiers.*`, the table the API reads: a subscriber is alerted when the API would
    /// show it the incident.
    pub tiers: kamiyo_domain::TierTable,
}

impl Dispatcher {
    /// Dispatches up to one batch of pending events; how many it read (another
    /// instance may have recorded some of them first: a batch read in full means more
    /// may be waiting).
    pub async fn dispatch_once(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let events = self.alerts.pending_events(self.batch_size).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let subscribers: Vec<(Subscriber, AlertFilter)> = self
            .alerts
            .subscribers()
            .await?
            .into_iter()
            .filter_map(|s| match AlertFilter::from_input(&s.filter) {
                Ok(filter) => Some((s, filter)),
                Err(error) => {
                    tracing::warn!(subscription = s.subscription_id, %error, "a stored filter no longer reads; the subscription gets nothing");
                    None
                }
            })
            .collect();
        let aliases = self.incidents.alias_table().await?;
        let subscribers = std::sync::Arc::new(subscribers);
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(self.concurrency.max(1)));
        let read = events.len();
        let mut running = tokio::task::JoinSet::new();
        for event in events {
            let (this, subscribers, aliases, permits) = (
                self.clone(),
                std::sync::Arc::clone(&subscribers),
                std::sync::Arc::clone(&aliases),
                std::sync::Arc::clone(&permits),
            );
            running.spawn(async move {
                let _permit = permits.acquire_owned().await;
                this.dispatch_event(&event, &subscribers, &aliases, now)
                    .await
            });
        }
        // One event that cannot be dispatched (its incident unreadable, say) stays
        // pending and is tried again next round; the others go on.
        while let Some(done) = running.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "an event could not be dispatched; trying again next round")
                }
                Err(error) => tracing::error!(%error, "a dispatch task failed"),
            }
        }
        Ok(read)
    }

    async fn dispatch_event(
        &self,
        event: &kamiyo_store::alerts::AlertEvent,
        subscribers: &[(Subscriber, AlertFilter)],
        aliases: &kamiyo_domain::Aliases,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        {
            let incident = self.incident(event.exploit_id).await?;
            let body = crate::payload::body(event, incident.as_ref());
            let planned: Vec<PlannedDelivery> = match &incident {
                None => Vec::new(),
                Some(incident) => {
                    let chains: Vec<String> = incident
                        .chains
                        .iter()
                        .map(|c| c.slug().to_owned())
                        .collect();
                    let facts = AlertFacts {
                        protocol: &incident.protocol,
                        chains: &chains,
                        attack_type: incident.attack_type,
                        status: incident.status,
                        loss_usd: incident.loss_usd,
                        independent_sources: usize::try_from(incident.sources_count)
                            .unwrap_or_default(),
                    };
                    subscribers
                        .iter()
                        .filter(|(s, filter)| {
                            s.events.contains(&event.kind) && filter.matches(&facts, aliases)
                        })
                        .filter_map(|(s, _)| {
                            // The one visibility rule: never earlier than the tier may
                            // see the incident in the API; never when it never may.
                            self.tiers
                                .of(s.tier)
                                .visible_from(incident.occurred_at, now)
                                .map(|not_before| PlannedDelivery {
                                    subscription_id: s.subscription_id,
                                    not_before,
                                })
                        })
                        .collect()
                }
            };
            self.alerts
                .record_dispatch(event.id, &body, &planned, now)
                .await?;
        }
        Ok(())
    }

    /// The incident as it is now, following a merge that retired it.
    async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        if let Some(found) = self.incidents.get_fresh(id).await? {
            return Ok(Some(found));
        }
        match self.incidents.redirect_fresh(id).await? {
            Some(survivor) => self.incidents.get_fresh(survivor).await,
            None => Ok(None),
        }
    }
}
