use serde::Serialize;

/// A snapshot of a pool, read from the pool itself at the moment of asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PoolState {
    /// Most connections the pool may open.
    pub max_size: usize,
    /// Connections currently open (idle plus in use).
    pub open: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Connections handed out and not yet returned.
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl PoolState {
    pub(crate) fn from_status(status: deadpool::Status) -> Self {
        PoolState {
            max_size: status.max_size,
            open: status.size,
            idle: status.available,
            in_use: status.size - status.available,
            waiting: status.waiting,
        }
    }
}
