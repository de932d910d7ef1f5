//! A short-lived memory of verified API keys.
//!
//! Every authenticated request looked its key up in the database: under the listing
//! benchmark that was about 97 % of the database's statement time (BENCHMARKS.md). A key
//! verified less than `ttl` ago is taken as still valid, with the user, tier and role it
//! had then.
//!
//! What that costs: a key revoked, a user disabled or a tier changed by *another* process
//! (`kamiyo key revoke` is one) takes effect here within `ttl`, unless the process
//! follows account changes (`AccountStore::follow_changes`, PostgreSQL), which empties
//! the cache as such a change commits. The same changes made through this process's
//! `AccountStore` (or a clone of it) empty the cache at once. A
//! verification that raced with such a change is not kept: the generation it started
//! under no longer matches. Unknown and revoked keys are never remembered, so a wrong key
//! always costs a lookup and gets its 401.
//!
//! Entries are keyed by the key's SHA-256 hash, never by the key itself. At most
//! `max_entries` keys are remembered; when full, expired entries are dropped, and if
//! none has expired the new one is simply not kept (the rules of `crate::cache`).

use std::time::Duration;

use kamiyo_db::Clock;

use super::Principal;
use crate::cache::{CacheLimits, TtlCache};

/// How long a verified key is taken as valid without asking the database, unless
/// configured (`server.auth_cache_ttl`).
pub const DEFAULT_AUTH_CACHE_TTL: Duration = Duration::from_secs(2);
/// Most keys remembered at once, unless configured (`server.auth_cache_max_entries`).
pub const DEFAULT_AUTH_CACHE_MAX_ENTRIES: usize = 10_000;

/// Principals by key hash (64 hex characters: fixed size, kept as they are). Not single
/// flight: a verification of an unknown key is not to be kept, and each request's own
/// lookup is what gives it its 401.
#[derive(Debug)]
pub(crate) struct PrincipalCache {
    cache: TtlCache<String, Principal>,
}

impl PrincipalCache {
    pub(crate) fn new(ttl: Duration, max_entries: usize, clock: Clock) -> Self {
        PrincipalCache {
            cache: TtlCache::new(CacheLimits::new(ttl, max_entries), clock),
        }
    }

    /// The principal of a key hash verified less than `ttl` ago.
    pub(crate) fn get(&self, hash: &str) -> Option<Principal> {
        self.cache.get(hash)
    }

    /// To be read before a verification starts and handed to [`PrincipalCache::keep`].
    pub(crate) fn generation(&self) -> u64 {
        self.cache.generation().current()
    }

    /// Remembers a verification that started under `generation`, unless keys or users
    /// changed since.
    pub(crate) fn keep(&self, hash: String, principal: Principal, generation: u64) {
        self.cache.insert(hash, principal, generation);
    }

    /// Forgets every key: a key, a user or a tier changed.
    pub(crate) fn invalidate(&self) {
        self.cache.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Role;
    use kamiyo_db::ManualClock;
    use kamiyo_domain::Tier;

    const TTL: Duration = Duration::from_secs(60);

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
    fn a_verified_key_is_served_until_something_changes_or_its_ttl_passes() {
        let time = ManualClock::new();
        let cache = PrincipalCache::new(TTL, 10, time.clock());
        cache.keep("h1".into(), principal(1), cache.generation());
        assert_eq!(cache.get("h1"), Some(principal(1)));
        assert_eq!(cache.get("h2"), None);
        cache.invalidate();
        assert_eq!(cache.get("h1"), None);

        cache.keep("h1".into(), principal(1), cache.generation());
        time.advance(TTL - Duration::from_millis(1));
        assert_eq!(cache.get("h1"), Some(principal(1)));
        time.advance(Duration::from_millis(1));
        assert_eq!(cache.get("h1"), None, "expired");
    }

    #[test]
    fn a_verification_that_raced_with_a_change_is_not_kept() {
        let cache = PrincipalCache::new(TTL, 10, ManualClock::new().clock());
        let started = cache.generation();
        cache.invalidate();
        cache.keep("h1".into(), principal(1), started);
        assert_eq!(cache.get("h1"), None);
    }

    #[test]
    fn zero_ttl_or_zero_entries_keeps_nothing() {
        for (ttl, max_entries) in [(Duration::ZERO, 10), (TTL, 0)] {
            let off = PrincipalCache::new(ttl, max_entries, ManualClock::new().clock());
            off.keep("h1".into(), principal(1), off.generation());
            assert_eq!(off.get("h1"), None);
        }
    }

    #[test]
    fn a_full_cache_drops_expired_entries_and_otherwise_keeps_what_it_has() {
        let time = ManualClock::new();
        let cache = PrincipalCache::new(TTL, 2, time.clock());
        for (hash, id) in [("h1", 1), ("h2", 2), ("h3", 3)] {
            cache.keep(hash.into(), principal(id), cache.generation());
        }
        assert_eq!(
            (cache.get("h1"), cache.get("h3")),
            (Some(principal(1)), None)
        );
        time.advance(TTL);
        cache.keep("h3".into(), principal(3), cache.generation());
        assert_eq!(
            cache.get("h3"),
            Some(principal(3)),
            "the expired two made room"
        );
    }
}
