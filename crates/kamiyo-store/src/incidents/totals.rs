//! A short-lived cache of listing totals. Entries carry the write generation they were
//! counted under; any write through the store moves the generation on, so this process
//! never serves a total that predates its own writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Distinct filters remembered; past it the cache is emptied (filters are user input).
const MAX_ENTRIES: usize = 1024;

#[derive(Debug)]
pub(crate) struct TotalCache {
    ttl: Duration,
    generation: AtomicU64,
    entries: Mutex<HashMap<String, (u64, Instant, i64)>>,
}

impl TotalCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        TotalCache {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn get(&self, key: &str) -> Option<i64> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation();
        let entries = self.entries.lock();
        let (counted_under, at, total) = entries.get(key)?;
        (*counted_under == generation && at.elapsed() < self.ttl).then_some(*total)
    }

    /// Stores a total counted under `generation` (read before counting).
    pub(crate) fn put(&self, key: String, generation: u64, total: i64) {
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (generation, Instant::now(), total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_invalidates_and_zero_disables() {
        let cache = TotalCache::new(Duration::from_secs(60));
        let g = cache.generation();
        cache.put("k".into(), g, 7);
        assert_eq!(cache.get("k"), Some(7));
        cache.invalidate();
        assert_eq!(cache.get("k"), None);
        cache.put("k".into(), g, 7);
        assert_eq!(
            cache.get("k"),
            None,
            "a count from before the write is not stored"
        );
        let off = TotalCache::new(Duration::ZERO);
        off.put("k".into(), off.generation(), 1);
        assert_eq!(off.get("k"), None);
    }
}
