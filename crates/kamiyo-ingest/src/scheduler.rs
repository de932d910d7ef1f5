//! Fetching every enabled source on its interval, from any number of `kamiyo serve`
//! instances on one database, with no leader.
//!
//! Time is cut into slots of each source's interval, aligned to the Unix epoch, so every
//! instance computes the same slot for the same moment. At a slot's start each instance
//! claims `(source, slot start)` in the database (`SourceStore::claim_slot`: one
//! compare-and-set statement, no session state, so it works behind a transaction-mode
//! pooler); one wins and fetches, the others learn who holds it. A claim has a lease
//! (twice the fetch's deadline, at least `sources.min_lease`), renewed every third of it while the
//! fetch and its ingest run: the others come back when it ends, and if the holder died
//! without finishing, the next claim takes the slot over. A slot
//! done is not fetched again; the next chance is the next slot.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kamiyo_db::{BackendKind, Clock, RetryPolicy};
use kamiyo_store::{IncidentStore, SlotClaim, SlotHolder, SlotOutcome, SourceStore};

use crate::fetch::HttpFetcher;
use crate::job::{self, RunContext, RunOutcome};
use crate::sources::Source;

/// What the fetch loops share.
#[derive(Clone)]
pub struct Scheduler {
    pub incidents: IncidentStore,
    pub sources: SourceStore,
    pub retry: RetryPolicy,
    pub fetcher: HttpFetcher,
    pub clock: Clock,
    pub backend: BackendKind,
    pub fetch_log_keep: Duration,
    /// This instance's name in the slots it claims (host, process and a random part).
    pub holder: Arc<str>,
    /// What `/metrics` reports of this instance's fetches.
    pub metrics: Arc<kamiyo_store::sources::SourceMetrics>,
    /// The shortest lease of a claimed slot (`sources.min_lease`).
    pub min_lease: Duration,
}

impl Scheduler {
    /// Fetches each enabled source on its interval until the returned tasks are aborted
    /// (a fetch cut off part-way leaves whole batches or none: the ingest is
    /// transactional, and the slot's lease hands it to the next claimer).
    pub fn spawn(&self, sources: Vec<Source>) -> Vec<tokio::task::JoinHandle<()>> {
        sources
            .into_iter()
            .filter(|source| source.enabled)
            .map(|source| {
                self.metrics.schedule(&source.name, source.interval);
                let scheduler = self.clone();
                tokio::spawn(async move { scheduler.fetch_forever(source).await })
            })
            .collect()
    }

    async fn fetch_forever(&self, source: Source) {
        tracing::info!(source = %source.name, interval = ?source.interval, "fetching on schedule");
        loop {
            let now = self.clock.now_utc();
            let slot = slot_start(now, source.interval);
            let wait = self.try_slot(&source, slot).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// Claims and fetches `slot` when it is this instance's to fetch; returns how long to
    /// wait before looking again (the lease's end while another holds it, else the next
    /// slot's start).
    async fn try_slot(&self, source: &Source, slot: DateTime<Utc>) -> Duration {
        let now = self.clock.now_utc();
        let next_slot = until(
            now,
            slot_start(now, source.interval) + to_chrono(source.interval),
        );
        let lease = lease_of(source, self.min_lease);
        match self
            .sources
            .claim_slot(&source.name, slot, &self.holder, lease, now)
            .await
        {
            Ok(SlotClaim::Claimed { attempt }) => {
                tracing::debug!(source = %source.name, %slot, attempt, "slot claimed");
                let holder = SlotHolder {
                    holder: &self.holder,
                    attempt,
                };
                self.fetch(source, slot, &holder).await;
                let now = self.clock.now_utc();
                until(
                    now,
                    slot_start(now, source.interval) + to_chrono(source.interval),
                )
            }
            Ok(SlotClaim::HeldByOther { lease_until, .. }) => {
                // Back when the lease ends, in case its holder died; not past the slot.
                until(now, lease_until)
                    .saturating_add(Duration::from_millis(10))
                    .min(next_slot)
            }
            Ok(SlotClaim::AlreadyDone { .. }) => next_slot,
            Err(error) => {
                tracing::warn!(source = %source.name, %error, "cannot claim the source's slot; trying at the next one");
                next_slot
            }
        }
    }

    async fn fetch(&self, source: &Source, slot: DateTime<Utc>, holder: &SlotHolder<'_>) {
        let previous = match self.sources.last_validators(&source.name).await {
            Ok(previous) => previous.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(source = %source.name, %error, "cannot read the last fetch; fetching unconditionally");
                Default::default()
            }
        };
        let context = RunContext {
            incidents: &self.incidents,
            sources: &self.sources,
            retry: &self.retry,
            fetcher: &self.fetcher,
            clock: &self.clock,
            backend: self.backend,
            fetch_log_keep: self.fetch_log_keep,
        };
        // The lease is renewed while the fetch and its ingest run, so a long ingest is
        // never taken over by another instance while it is still going.
        let lease = lease_of(source, self.min_lease);
        let renew = async {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = self.clock.now_utc();
                match self
                    .sources
                    .renew_slot(&source.name, slot, holder, lease, now)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(source = %source.name, %slot, "lost the slot's lease while fetching");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(source = %source.name, %error, "cannot renew the slot's lease")
                    }
                }
            }
            // Never ends: the fetch below does.
            std::future::pending::<std::convert::Infallible>().await
        };
        let run = tokio::select! {
            biased;
            run = job::run(&context, source, &previous, Some(slot)) => run,
            never = renew => match never {},
        };
        let outcome = match run.outcome {
            RunOutcome::Imported => SlotOutcome::Succeeded,
            RunOutcome::NotModified | RunOutcome::Unchanged => SlotOutcome::Unchanged,
            RunOutcome::Failed => SlotOutcome::Failed,
        };
        self.metrics
            .fetched(&source.name, outcome.as_str(), run.finished_at);
        let finished = self
            .sources
            .finish_slot(&source.name, slot, holder, outcome, self.clock.now_utc())
            .await;
        match finished {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(source = %source.name, %slot, "the slot's lease ran out before its fetch ended; another instance may have taken it over")
            }
            Err(error) => {
                tracing::warn!(source = %source.name, %error, "cannot mark the slot done; its lease will expire")
            }
        }
    }
}

/// A name for this instance in the slots it holds.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The start of the slot of `interval` holding `now`, slots aligned to the Unix epoch
/// (so every instance computes the same one), kept to the millisecond.
pub fn slot_start(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = interval.as_millis().max(1) as i64;
    let millis = now.timestamp_millis();
    let start = millis - millis.rem_euclid(step);
    DateTime::from_timestamp_millis(start).unwrap_or(now)
}

fn lease_of(source: &Source, min_lease: Duration) -> Duration {
    (source.limits.deadline * 2)
        .max(min_lease)
        .min(kamiyo_store::sources::MAX_SLOT_LEASE)
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn until(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (then - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_to_the_epoch_so_every_instance_agrees() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let quarter = Duration::from_secs(15 * 60);
        assert_eq!(
            slot_start(at("2026-12-03T10:14:59.999Z"), quarter),
            at("2026-12-03T10:00:00Z")
        );
        assert_eq!(
            slot_start(at("2026-12-03T10:15:00Z"), quarter),
            at("2026-12-03T10:15:00Z")
        );
        assert_eq!(
            slot_start(at("2026-12-03T10:15:01.5Z"), Duration::from_secs(1)),
            at("2026-12-03T10:15:01Z")
        );
    }
}
