//! Hashes of the keys the database has verified since the process started (the most
//! recent `max_entries`).
//!
//! An address that used up its failed-authentication budget is refused before any key
//! lookup, so that wrong keys stop costing queries. Callers at that address who hold valid
//! keys (behind the same NAT or proxy as the guesser) must not be locked out with it: a key
//! in this set still gets its lookup. Membership grants nothing by itself (a key revoked
//! since is refused by that lookup), and a guesser cannot add to the set: only keys the
//! database accepted are kept. Entries are SHA-256 hashes, never keys.

use hashlink::LruCache;
use parking_lot::Mutex;

#[derive(Debug)]
pub(crate) struct KnownKeys {
    hashes: Mutex<LruCache<String, ()>>,
}

impl KnownKeys {
    pub(crate) fn new(max_entries: usize) -> Self {
        KnownKeys {
            hashes: Mutex::new(LruCache::new(max_entries.max(1))),
        }
    }

    /// Past the bound, the least recently verified key is forgotten first.
    pub(crate) fn remember(&self, hash: &str) {
        let mut hashes = self.hashes.lock();
        if hashes.get(hash).is_none() {
            hashes.insert(hash.to_owned(), ());
        }
    }

    pub(crate) fn contains(&self, hash: &str) -> bool {
        self.hashes.lock().contains_key(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_verified_key_is_forgotten_past_the_bound() {
        let known = KnownKeys::new(2);
        known.remember("a");
        known.remember("b");
        known.remember("a");
        known.remember("c");
        assert!(known.contains("a") && known.contains("c"));
        assert!(!known.contains("b"));
    }
}
