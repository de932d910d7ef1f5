//! One short-lived, single-flight cache, used wherever an answer is expensive and may be
//! a little old: listing totals and stats answers (`incidents`), verified API keys
//! (`accounts`), and in the API the listing's first pages and the database probe. Why
//! each exists, and what its staleness costs, is written where it is used.
//!
//! - **Lifetime**: an answer is served for `ttl` after it was computed, as read from the
//!   injected [`Clock`] (tests advance a manual one). A zero `ttl` turns the cache off:
//!   every call computes, nothing is shared.
//! - **Write generation**: an answer is served only under the [`Generation`] it was
//!   computed under, read before computing; a write moves it on, so nothing read before
//!   a write is served after it.
//! - **Single flight**: concurrent misses of one key wait for one computation. If the
//!   computing caller is dropped mid-way (a cancelled request), the next waiter computes.
//!   A failure goes to the computing caller with its cause, and to the waiters as a
//!   shared summary (`S`, made by the caller's `share`); it is never served afterwards.
//! - **Bounds**: at most `max_entries` entries and, when set, `max_bytes` of values (as
//!   the cache's size function counts them). When full, entries that can no longer be
//!   served are dropped; if it is still full, the new answer is computed and served but
//!   not kept, and so is an answer larger than `max_bytes`. An entry in use is never
//!   displaced by a newcomer: a flood of distinct keys (filters are user input) cannot
//!   evict the answers everyone asks for, and a newcomer waits at most `ttl` for room.
//!   Keys that hold user text are [`KeyDigest`]s, so a key costs 32 bytes.

mod digest;
mod generation;
mod state;

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use kamiyo_db::Clock;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

pub use digest::KeyDigest;
pub use generation::Generation;
use state::{Cell, State};

/// How long answers live and how many are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Zero turns the cache off.
    pub ttl: Duration,
    /// Zero turns the cache off.
    pub max_entries: usize,
    /// Bytes of values, as the cache's size function counts them; `None`: no byte bound.
    /// Zero turns the cache off.
    pub max_bytes: Option<usize>,
}

impl CacheLimits {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        CacheLimits {
            ttl,
            max_entries,
            max_bytes: None,
        }
    }

    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        CacheLimits {
            max_bytes: Some(max_bytes),
            ..self
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0 && self.max_bytes != Some(0)
    }
}

/// Why [`TtlCache::get_or_compute`] has no answer.
#[derive(Debug)]
pub enum Failure<E, S> {
    /// This caller computed, and its computation failed: the error with its cause.
    Own(E),
    /// The computation this caller waited for failed: what it shared.
    Waited(S),
}

/// Counts a value against `max_bytes`.
pub type SizeOf<V> = fn(&V) -> usize;

#[derive(Debug)]
pub struct TtlCache<K, V, S = ()> {
    limits: CacheLimits,
    clock: Clock,
    generation: Generation,
    size_of: SizeOf<V>,
    state: Mutex<State<K, V, S>>,
}

impl<K: Hash + Eq + Clone, V: Clone, S: Clone> TtlCache<K, V, S> {
    /// A cache with a generation of its own ([`TtlCache::invalidate`] moves it on).
    pub fn new(limits: CacheLimits, clock: Clock) -> Self {
        Self::with_generation(limits, clock, Generation::default())
    }

    /// A cache whose answers go stale when `generation` (shared with a writer) moves on.
    pub fn with_generation(limits: CacheLimits, clock: Clock, generation: Generation) -> Self {
        TtlCache {
            limits,
            clock,
            generation,
            size_of: |_| 0,
            state: Mutex::new(State::default()),
        }
    }

    /// What `max_bytes` counts of each value.
    pub fn sized_by(self, size_of: SizeOf<V>) -> Self {
        TtlCache { size_of, ..self }
    }

    pub fn enabled(&self) -> bool {
        self.limits.enabled()
    }

    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    /// Stops serving everything cached so far, and frees it.
    pub fn invalidate(&self) {
        self.generation.advance();
        self.state.lock().clear();
    }

    /// The answer for `key` if one is kept and servable: never waits, never computes.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled() {
            return None;
        }
        let generation = self.generation.current();
        let now = self.clock.now();
        let state = self.state.lock();
        match state.servable(key, generation, self.limits.ttl, now)?.get() {
            Some(Ok((value, _))) => Some(value.clone()),
            _ => None,
        }
    }

    /// Keeps `value`, computed by a caller that read [`Generation::current`] as
    /// `generation` before it started, unless a write happened since.
    pub fn insert(&self, key: K, value: V, generation: u64) {
        if !self.enabled() {
            return;
        }
        let size = (self.size_of)(&value);
        let cell = Arc::new(OnceCell::new_with(Some(Ok((value, self.clock.now())))));
        let mut state = self.state.lock();
        // Under the lock, as `invalidate` clears under it after moving the generation:
        // what is kept here is either cleared by it or from after the write.
        if self.generation.current() != generation {
            return;
        }
        state.remove(&key);
        if state.make_room(&self.limits, generation, self.clock.now(), size) {
            state.insert(key, generation, cell, size);
        }
    }

    /// The answer for `key`: kept, or the one being computed for it, or `compute` run now
    /// by this caller while later callers wait. `share` makes, from a failure, what the
    /// waiters of the failed computation get.
    pub async fn get_or_compute<E, F, Fut>(
        &self,
        key: K,
        compute: F,
        share: impl FnOnce(&E) -> S,
    ) -> Result<V, Failure<E, S>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if !self.enabled() {
            return compute().await.map_err(Failure::Own);
        }
        let generation = self.generation.current();
        let Some(cell) = self.slot(&key, generation) else {
            return compute().await.map_err(Failure::Own);
        };
        let mut own_error = None;
        let mut computed = false;
        let outcome = cell
            .get_or_init(|| async {
                match compute().await {
                    Ok(value) => {
                        computed = true;
                        Ok((value, self.clock.now()))
                    }
                    Err(error) => {
                        let shared = share(&error);
                        own_error = Some(error);
                        Err(shared)
                    }
                }
            })
            .await;
        if let Some(error) = own_error {
            self.state.lock().remove_cell(&key, &cell);
            return Err(Failure::Own(error));
        }
        match outcome {
            Ok((value, _)) => {
                if computed {
                    self.account(&key, &cell, (self.size_of)(value));
                }
                Ok(value.clone())
            }
            Err(shared) => Err(Failure::Waited(shared.clone())),
        }
    }

    /// The cell to wait on for `key`, made anew when missing or no longer servable;
    /// `None` when there is no room. Taken synchronously, so callers that arrive
    /// together all find the first one's cell.
    fn slot(&self, key: &K, generation: u64) -> Option<Cell<V, S>> {
        let now = self.clock.now();
        let mut state = self.state.lock();
        if let Some(cell) = state.servable(key, generation, self.limits.ttl, now) {
            return Some(Arc::clone(cell));
        }
        state.remove(key);
        if !state.make_room(&self.limits, generation, now, 0) {
            return None;
        }
        let cell: Cell<V, S> = Arc::new(OnceCell::new());
        state.insert(key.clone(), generation, Arc::clone(&cell), 0);
        Some(cell)
    }

    /// Counts a computed value against `max_bytes`, or drops it when it does not fit.
    fn account(&self, key: &K, cell: &Cell<V, S>, size: usize) {
        let Some(max_bytes) = self.limits.max_bytes else {
            return;
        };
        let mut state = self.state.lock();
        // The generation it was computed under: a write meanwhile leaves it unservable.
        let Some(computed_under) = state.holds(key, cell) else {
            return;
        };
        state.remove(key);
        let current = self.generation.current();
        if size <= max_bytes && state.make_room(&self.limits, current, self.clock.now(), size) {
            state.insert(key.clone(), computed_under, Arc::clone(cell), size);
        }
    }

    #[cfg(test)]
    pub(crate) fn usage(&self) -> (usize, usize) {
        self.state.lock().usage()
    }
}

#[cfg(test)]
mod tests;
