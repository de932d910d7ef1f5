//! Serving the router on a TCP listener, with every connection bounded, and stopping:
//! graceful shutdown with a bounded drain.
//!
//! - `connection`: one connection over hyper's HTTP/1.1 (HTTP/2 is not offered);
//! - `head_timer`: when a connection waiting for a request head is closed;
//! - `stats`: counts read by `/metrics`;
//! - `throttle`: rate-limited warnings;
//! - `write_deadline`: when a client that stops reading its answer is cut off.
//!
//! axum's own `serve` has no header-read timeout and no connection cap, hence hyper
//! directly.

mod connection;
mod head_timer;
mod stats;
mod throttle;
mod write_deadline;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tower_http::catch_panic::CatchPanicLayer;

use crate::ServerConfig;
pub use stats::ConnectionStats;
use throttle::LogThrottle;

/// After an accept error other than a connection's own (no file descriptor left, no
/// memory), the listener waits this long: retrying at once would spin on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Refused connections and accept errors are logged at most this often.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// How `serve` bounds its connections; see `ServerConfig` for each.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
    pub write_timeout: Duration,
    pub drain_timeout: Duration,
}

impl From<&ServerConfig> for ConnectionLimits {
    fn from(config: &ServerConfig) -> Self {
        ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            keep_alive_timeout: config.keep_alive_timeout,
            max_connections: config.max_connections,
            write_timeout: config.write_timeout,
            drain_timeout: config.drain_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then closes the listener
/// (new connections are refused; logged as "listener closed"), closes idle connections
/// and lets in-flight requests finish for at most `limits.drain_timeout`; connections
/// still open then are cut. Returns whether the drain completed. `stats` counts the
/// connections.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
) -> bool
where
    F: Future<Output = ()>,
{
    // A handler that panics answers 500 in the envelope (logged) instead of dropping
    // its connection without a word.
    let router = router.layer(CatchPanicLayer::custom(crate::error::panicked));
    let max_connections = limits.max_connections.min(Semaphore::MAX_PERMITS);
    let places = Arc::new(Semaphore::new(max_connections));
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusals = LogThrottle::new(WARN_INTERVAL);
    let mut accept_errors = LogThrottle::new(WARN_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                note_panic(ended);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match Arc::clone(&places).try_acquire_owned() {
                    Ok(permit) => {
                        let slot = stats.opened(permit);
                        connections.spawn(connection::run(
                            stream,
                            peer,
                            router.clone(),
                            limits,
                            closing.clone(),
                            slot,
                        ));
                    }
                    // Closed unread: a refused client holds neither a file descriptor
                    // nor a place in the listen backlog.
                    Err(_) => {
                        stats.count_refused();
                        drop(stream);
                        if let Some(refused) = refusals.record(Instant::now()) {
                            tracing::warn!(
                                refused,
                                max_connections,
                                "connection limit reached: new connections are closed unread"
                            );
                        }
                    }
                },
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(%error, "a connection failed before it was accepted");
                }
                Err(error) => {
                    if let Some(errors) = accept_errors.record(Instant::now()) {
                        tracing::error!(%error, errors, "accept error; retrying shortly");
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }

    tracing::info!(
        drain_timeout_ms = limits.drain_timeout.as_millis() as u64,
        open_connections = connections.len(),
        "shutting down: draining in-flight requests"
    );
    drop(listener);
    // Operators (and the tests) rely on a connect being refused once this is logged.
    tracing::info!("listener closed: new connections are refused");
    closing_tx.send_replace(true);
    let drain = async {
        while let Some(ended) = connections.join_next().await {
            note_panic(ended);
        }
    };
    let drained = tokio::time::timeout(limits.drain_timeout, drain)
        .await
        .is_ok();
    if !drained {
        tracing::warn!(
            remaining = connections.len(),
            "drain timeout reached; closing remaining connections"
        );
        connections.shutdown().await;
    }
    drained
}

/// Errors of one connection, aborted or reset before it was accepted: the next accept
/// is unaffected.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

fn note_panic(ended: Result<(), JoinError>) {
    if let Err(error) = ended {
        if error.is_panic() {
            tracing::error!(%error, "a connection task panicked");
        }
    }
}
