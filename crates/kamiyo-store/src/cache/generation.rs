//! A write generation: a counter that every write moves on, so that a cache can tell an
//! answer read before a write from one read after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Cheap to clone; clones share the counter, which is how the listing's page cache (in
/// the API) sees the store's writes without the store knowing of it.
#[derive(Debug, Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Everything cached under an earlier generation stops being served.
    pub fn advance(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}
