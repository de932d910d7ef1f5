//! Fixed-size keys for values that hold user input.
//!
//! A listing's filters are user text of any length, so a cache keyed by the filters
//! themselves would hold as much text per entry as callers send. Such keys are kept as
//! the SHA-256 of the typed value's `Hash` encoding instead: 32 bytes per entry whatever
//! the filter, so `max_entries` alone bounds the memory of keys, and a byte bound counts
//! values only, without estimating the heap size of nested strings. The `Hash` encoding
//! is unambiguous for the key types used (strings end with a byte UTF-8 never contains,
//! enums and options write their discriminant), unlike `Debug` text, whose layout is
//! not a contract. It is stable within a process, which is all a cache needs.

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn of<T: Hash + ?Sized>(value: &T) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        value.hash(&mut hasher);
        KeyDigest(hasher.0.finalize().into())
    }
}

/// Feeds `Hash` into SHA-256; `finish` is never what is kept (see [`KeyDigest::of`]).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_a_digest_and_text_boundaries_count() {
        assert_eq!(KeyDigest::of(&("ab", "c")), KeyDigest::of(&("ab", "c")));
        assert_ne!(KeyDigest::of(&("ab", "c")), KeyDigest::of(&("a", "bc")));
        assert_ne!(KeyDigest::of(&Some("")), KeyDigest::of(&None::<&str>));
    }
}
