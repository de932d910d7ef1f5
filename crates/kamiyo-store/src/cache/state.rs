//! The entries of a [`TtlCache`](super::TtlCache) and their byte count, always changed
//! together under the cache's lock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::CacheLimits;

/// A computation's outcome: the value and when it was computed, or what its failure
/// shares with the callers that waited for it.
pub(super) type Outcome<V, S> = Result<(V, Instant), S>;
/// Empty while the computation runs.
pub(super) type Cell<V, S> = Arc<OnceCell<Outcome<V, S>>>;

#[derive(Debug)]
struct Slot<V, S> {
    generation: u64,
    cell: Cell<V, S>,
    /// Counted in `State::bytes`.
    bytes: usize,
}

impl<V, S> Slot<V, S> {
    /// In flight, or computed less than `ttl` ago, under `generation`. A failure is never
    /// served.
    fn servable(&self, generation: u64, ttl: Duration, now: Instant) -> bool {
        self.generation == generation
            && match self.cell.get() {
                None => true,
                Some(Ok((_, at))) => now.saturating_duration_since(*at) < ttl,
                Some(Err(_)) => false,
            }
    }
}

#[derive(Debug)]
pub(super) struct State<K, V, S> {
    entries: HashMap<K, Slot<V, S>>,
    bytes: usize,
}

impl<K, V, S> Default for State<K, V, S> {
    fn default() -> Self {
        State {
            entries: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<K: Hash + Eq, V, S> State<K, V, S> {
    pub(super) fn servable<Q>(
        &self,
        key: &Q,
        generation: u64,
        ttl: Duration,
        now: Instant,
    ) -> Option<&Cell<V, S>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .get(key)
            .filter(|slot| slot.servable(generation, ttl, now))
            .map(|slot| &slot.cell)
    }

    /// The generation `cell` was made under, if it is still `key`'s.
    pub(super) fn holds(&self, key: &K, cell: &Cell<V, S>) -> Option<u64> {
        self.entries
            .get(key)
            .filter(|slot| Arc::ptr_eq(&slot.cell, cell))
            .map(|slot| slot.generation)
    }

    pub(super) fn insert(&mut self, key: K, generation: u64, cell: Cell<V, S>, bytes: usize) {
        self.remove(&key);
        self.bytes += bytes;
        self.entries.insert(
            key,
            Slot {
                generation,
                cell,
                bytes,
            },
        );
    }

    pub(super) fn remove(&mut self, key: &K) {
        if let Some(slot) = self.entries.remove(key) {
            self.bytes -= slot.bytes;
        }
    }

    /// Removes `key` only if it still holds `cell` (a newer computation may have
    /// replaced it).
    pub(super) fn remove_cell(&mut self, key: &K, cell: &Cell<V, S>) {
        if self.holds(key, cell).is_some() {
            self.remove(key);
        }
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Whether one more entry of `bytes` fits, after dropping what can no longer be
    /// served if it does not fit as things are. Waiters hold their cells, so dropping an
    /// entry never strands them.
    pub(super) fn make_room(
        &mut self,
        limits: &CacheLimits,
        generation: u64,
        now: Instant,
        bytes: usize,
    ) -> bool {
        let fits = |state: &Self| {
            state.entries.len() < limits.max_entries
                && limits
                    .max_bytes
                    .is_none_or(|max| state.bytes.saturating_add(bytes) <= max)
        };
        if fits(self) {
            return true;
        }
        let mut freed = 0;
        self.entries.retain(|_, slot| {
            let keep = slot.servable(generation, limits.ttl, now);
            if !keep {
                freed += slot.bytes;
            }
            keep
        });
        self.bytes -= freed;
        fits(self)
    }

    #[cfg(test)]
    pub(super) fn usage(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }
}
