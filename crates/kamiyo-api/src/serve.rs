//! Serving the router on a TCP listener, and stopping: graceful shutdown with a bounded
//! drain.

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until `shutdown` completes, then closes the listener
/// (new connections are refused; logged as "listener closed") and lets in-flight
/// requests finish for at most `drain_timeout`. Returns whether the drain completed.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    drain_timeout: Duration,
) -> std::io::Result<bool>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    // The peer address identifies anonymous callers for rate limiting. axum provides it
    // for its own `TapIo` wrapper around any listener, hence the no-op tap.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = ClosingListener {
        inner: listener,
        _closed: closed_tx,
    }
    .tap_io(|_| {});
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = signalled_tx.send(());
    });
    let server = server.into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map(|()| true),
        _ = signalled_rx => {}
    }
    tracing::info!(
        drain_timeout_ms = drain_timeout.as_millis() as u64,
        "shutting down: draining in-flight requests"
    );
    // axum drops the listener as soon as it sees the signal, before it waits for the
    // connections in flight. Once "listener closed" is logged a connect is refused, which
    // operators (and the tests) can rely on.
    let listener_closed = async {
        let _ = closed_rx.await;
        tracing::info!("listener closed: new connections are refused");
    };
    let drain = async { tokio::join!(server, listener_closed).0 };
    match tokio::time::timeout(drain_timeout, drain).await {
        Ok(result) => result.map(|()| true),
        Err(_) => {
            tracing::warn!("drain timeout reached; closing remaining connections");
            Ok(false)
        }
    }
}

/// The server's listener, telling `serve` when axum drops it. Fields drop in declaration
/// order, so the socket is closed before the sender's drop wakes the receiver.
struct ClosingListener {
    inner: TcpListener,
    _closed: tokio::sync::oneshot::Sender<()>,
}

impl axum::serve::Listener for ClosingListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        axum::serve::Listener::accept(&mut self.inner).await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
