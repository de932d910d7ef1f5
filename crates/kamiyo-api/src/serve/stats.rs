//! Counts of the server's connections, read by `/metrics` when it is scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kamiyo_db::monitor::prometheus::Exposition;
use tokio::sync::OwnedSemaphorePermit;

/// Shared by the server, which counts, and the metrics endpoint, which reads.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

impl ConnectionStats {
    /// Client connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections closed unread because `max_connections` were open.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Connections closed because no request head arrived in time (slow or idle), or
    /// because the client stopped reading its answer (`server.write_timeout`).
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::SeqCst)
    }

    pub(super) fn count_refused(&self) {
        self.refused.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn count_timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::SeqCst);
    }

    /// A connection taking `permit`: counted open until the returned slot is dropped.
    pub(super) fn opened(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        self.open.fetch_add(1, Ordering::SeqCst);
        Slot {
            _permit: permit,
            stats: Arc::clone(self),
        }
    }

    pub fn write(&self, exposition: &mut Exposition) {
        exposition.gauge(
            "http_server_open_connections",
            "Client connections open.",
            &[(&[], self.open() as f64)],
        );
        exposition.counter(
            "http_server_refused_connections_total",
            "Connections closed unread because server.max_connections were open.",
            &[(&[], self.refused())],
        );
        exposition.counter(
            "http_server_connection_timeouts_total",
            "Connections closed because no request head arrived in time (slow or idle), or the client accepted no bytes of its answer for server.write_timeout.",
            &[(&[], self.timed_out())],
        );
    }
}

/// One open connection's place under the cap; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    stats: Arc<ConnectionStats>,
}

impl Slot {
    pub(super) fn stats(&self) -> &ConnectionStats {
        &self.stats
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::SeqCst);
    }
}
