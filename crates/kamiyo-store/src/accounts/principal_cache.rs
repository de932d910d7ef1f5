//! A short-lived memory of verified API keys.
//!
//! Every authenticated request looked its key up in the database: under the listing
//! benchmark that was about 97 % of the database's statement time (BENCHMARKS.md). A key
//! verified less than `ttl` ago is taken as still valid, with the user, tier and role it
//! had then.
//!
//! What that costs: a key revoked, a user disabled or a tier changed by *another* process
//! (`kamiyo key revoke` is one) takes effect here within `ttl`. The same changes made
//! through this process's `AccountStore` (or a clone of it) empty the cache at once. A
//! verification that raced with such a change is not kept: the generation it started
//! under no longer matches. Unknown and revoked keys are never remembered, so a wrong key
//! always costs a lookup and gets its 401.
//!
//! Entries are keyed by the key's SHA-256 hash, never by the key itself. At most
//! `max_entries` keys are remembered; when full, expired entries are dropped, and if
//! none has expired the new one is simply not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Principal;

/// How long a verified key is taken as valid without asking the database, unless
/// configured (`server.auth_cache_ttl`).
pub const DEFAULT_AUTH_CACHE_TTL: Duration = Duration::from_secs(2);
/// Most keys remembered at once, unless configured (`server.auth_cache_max_entries`).
pub const DEFAULT_AUTH_CACHE_MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub(crate) struct PrincipalCache {
    ttl: Duration,
    max_entries: usize,
    /// Moves on with every change to keys or users made through this process.
    generation: AtomicU64,
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl PrincipalCache {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        PrincipalCache {
            ttl,
            max_entries,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_entries > 0
    }

    /// The principal of a key hash verified less than `ttl` ago.
    pub(crate) fn get(&self, hash: &str) -> Option<Principal> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.lock();
        let (principal, verified) = entries.get(hash)?;
        (verified.elapsed() < self.ttl).then(|| principal.clone())
    }

    /// To be read before a verification starts and handed to [`PrincipalCache::keep`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers a verification that started under `generation`, unless keys or users
    /// changed since.
    pub(crate) fn keep(&self, hash: String, principal: Principal, generation: u64) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.entries.lock();
        // Checked under the lock: `invalidate` clears under it after moving the
        // generation, so an entry kept here is either cleared or from after the change.
        if self.generation() != generation {
            return;
        }
        if entries.len() >= self.max_entries && !entries.contains_key(&hash) {
            let ttl = self.ttl;
            entries.retain(|_, (_, verified)| verified.elapsed() < ttl);
            if entries.len() >= self.max_entries {
                return;
            }
        }
        entries.insert(hash, (principal, Instant::now()));
    }

    /// Forgets every key: a key, a user or a tier changed.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.lock().clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Role;
    use kamiyo_domain::Tier;

    fn principal(key_id: i64) -> Principal {
        Principal {
            user_id: 1,
            key_id,
            email: "analyst@example.com".into(),
            tier: Tier::Pro,
            role: Role::User,
        }
    }

    #[test]
    fn a_verified_key_is_served_until_something_changes() {
        let cache = PrincipalCache::new(Duration::from_secs(60), 10);
        let generation = cache.generation();
        cache.keep("h1".into(), principal(1), generation);
        assert_eq!(cache.get("h1"), Some(principal(1)));
        assert_eq!(cache.get("h2"), None);
        cache.invalidate();
        assert_eq!(cache.get("h1"), None);
    }

    #[test]
    fn a_verification_that_raced_with_a_change_is_not_kept() {
        let cache = PrincipalCache::new(Duration::from_secs(60), 10);
        let started = cache.generation();
        cache.invalidate();
        cache.keep("h1".into(), principal(1), started);
        assert_eq!(cache.get("h1"), None);
    }

    #[test]
    fn an_expired_entry_is_not_served_and_zero_ttl_keeps_nothing() {
        let cache = PrincipalCache::new(Duration::from_nanos(1), 10);
        cache.keep("h1".into(), principal(1), cache.generation());
        assert_eq!(cache.get("h1"), None, "older than a nanosecond");
        let off = PrincipalCache::new(Duration::ZERO, 10);
        off.keep("h1".into(), principal(1), off.generation());
        assert_eq!((off.get("h1"), off.len()), (None, 0));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_and_otherwise_keeps_what_it_has() {
        let cache = PrincipalCache::new(Duration::from_secs(60), 2);
        for (hash, id) in [("h1", 1), ("h2", 2), ("h3", 3)] {
            cache.keep(hash.into(), principal(id), cache.generation());
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(
            (cache.get("h1"), cache.get("h3")),
            (Some(principal(1)), None)
        );

        let short = PrincipalCache::new(Duration::from_nanos(1), 2);
        for (hash, id) in [("h1", 1), ("h2", 2), ("h3", 3)] {
            short.keep(hash.into(), principal(id), short.generation());
        }
        assert_eq!(short.len(), 1, "the expired two made room for the third");
    }
}
