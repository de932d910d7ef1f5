//! The one ingest path, for both backends and for batches of any size (one claim is a
//! batch of one): read the facts the claims need, decide them in memory ([`Replay`]),
//! write what changed. A backend implements [`IngestIo`], which only reads and writes.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use kamiyo_domain::{Aliases, IncidentDraft};

use super::claims::StoredClaimRow;
use super::curation::Curation;
use super::replay::{Changes, HashKey, Needs, Owners, Replay};
use super::{IngestAction, IngestOutcome};
use crate::error::StoreError;

/// `(source, claim key)` of every claim an input lists: a whole file, or a fetched
/// source's whole answer.
pub type Listed = HashSet<(String, String)>;

/// What decides, besides the claims and the facts read: the protocol aliases and, for a
/// whole input, the claims it lists. A claim of the input's source that the input no
/// longer lists may be the old form of one of its records, corrected (`Replay`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    pub aliases: Arc<Aliases>,
    pub listed: Option<Arc<Listed>>,
    /// Curators' decisions, for a remerge (a new claim is in none: imports need none).
    pub curation: Option<Arc<Curation>>,
}

/// What a backend does for the ingest path, inside one write transaction that the
/// backend opened and will end.
pub(crate) trait IngestIo {
    /// Serialises decisions about protocols of these lock keys (`Aliases::lock_key`)
    /// with every other writer's.
    fn lock(&mut self, locks: &[String]) -> impl Future<Output = Result<(), StoreError>>;

    /// Who holds each of `hashes` (hashes nobody holds are absent).
    fn hash_owners(
        &mut self,
        hashes: &[HashKey],
    ) -> impl Future<Output = Result<Owners, StoreError>>;

    /// Incidents stored under one of a claim's lookup keys within its window, and
    /// incidents holding one of the claims (by source and claim key).
    fn incidents_near(
        &mut self,
        needs: &Needs,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>>;

    /// Every claim of `ids`, ordered by incident, then first seen, then id.
    fn claims_of(
        &mut self,
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<StoredClaimRow>, StoreError>>;

    /// `n` new incident ids, ascending.
    fn allocate_incident_ids(
        &mut self,
        n: usize,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>>;

    /// Writes `changes` in the order [`Changes`] gives. A hash that turns out to be
    /// held already (another writer took it since it was read) is [`StoreError::Raced`].
    fn apply(&mut self, changes: &Changes) -> impl Future<Output = Result<(), StoreError>>;
}

/// One outcome per claim, in order, and whether anything was written (when nothing
/// was, the backend may roll back instead of committing).
pub(crate) struct Decided {
    pub outcomes: Vec<IngestOutcome>,
    pub wrote: bool,
}

/// Decides and writes `drafts` through `io`.
pub(crate) async fn ingest<B: IngestIo>(
    io: &mut B,
    drafts: &[IncidentDraft],
    rules: &Rules,
) -> Result<Decided, StoreError> {
    let needs = Needs::of(drafts, &rules.aliases);
    io.lock(&needs.locks).await?;
    let owners = io.hash_owners(&needs.hashes).await?;
    let near = io.incidents_near(&needs).await?;
    let ids = needs.incidents_to_load(near, &owners);
    let claims = io.claims_of(&ids).await?;
    let mut replay = Replay::new(&ids, claims, owners, rules.clone())?;
    let unresolved = replay.hashes_to_resolve();
    if !unresolved.is_empty() {
        replay.add_owners(io.hash_owners(&unresolved).await?);
    }

    let mut outcomes = drafts
        .iter()
        .map(|draft| replay.ingest(draft))
        .collect::<Result<Vec<_>, _>>()?;
    if outcomes.iter().all(|o| o.action == IngestAction::Unchanged) {
        return Ok(Decided {
            outcomes,
            wrote: false,
        });
    }
    let created = io.allocate_incident_ids(replay.created()).await?;
    for outcome in &mut outcomes {
        outcome.exploit_id = replay.real_id(&created, outcome.exploit_id)?;
    }
    io.apply(&replay.changes(&created)?).await?;
    Ok(Decided {
        outcomes,
        wrote: true,
    })
}

/// Runs a future that never waits to completion on the current thread.
///
/// SQLite's [`IngestIo`] is synchronous (rusqlite on a blocking thread), but the path
/// above is written once, as `async`, for both backends. Its futures then complete on
/// their first poll; one that does not is a bug, reported rather than spun on.
pub(crate) fn complete_now<F: Future>(future: F) -> Result<F::Output, StoreError> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err(StoreError::Invariant(
            "a synchronous backend's future waited".into(),
        )),
    }
}
