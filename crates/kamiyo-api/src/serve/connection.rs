//! One client connection, served over HTTP/1.1 until the client leaves, a head deadline
//! passes, or the server shuts down.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::Service;

use super::head_timer::{Counted, HeadTimer, ReadCount};
use super::stats::Slot;
use super::write_deadline::WriteDeadline;
use super::ConnectionLimits;

/// Serves `stream` while it holds `slot`. `closing` turns true at shutdown: an idle
/// connection is then closed at once, a busy one after its answer.
/// Most bytes hyper buffers per connection (a request head must fit; bodies stream).
const MAX_BUF_SIZE: usize = 64 * 1024;

pub(super) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
    slot: Slot,
) {
    let read = ReadCount::default();
    let io = TokioIo::new(WriteDeadline::new(
        Counted::new(stream, read.clone()),
        limits.write_timeout,
    ));
    // The peer address identifies anonymous callers for rate limiting.
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().call(request)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(HeadTimer::new(
            read,
            limits.header_read_timeout,
            limits.keep_alive_timeout,
        ))
        .header_read_timeout(limits.header_read_timeout)
        // Bounds the memory one connection's buffers may take (hyper's default is about
        // 400 KB, 1.6 GB at the default connection cap); a larger request head is 431.
        .max_buf_size(MAX_BUF_SIZE);
    let mut connection = Box::pin(builder.serve_connection(io, service));
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = closed(&mut closing) => {
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    // Counted before the socket is closed, so that a client that sees the close also
    // sees the count; the place under the cap is freed once the socket is closed.
    match outcome {
        Ok(()) => {}
        Err(error) if error.is_timeout() => {
            slot.stats().count_timed_out();
            tracing::debug!(%peer, "connection closed: no request head in time");
        }
        Err(error) if stalled(&error) => {
            slot.stats().count_timed_out();
            tracing::debug!(%peer, "connection closed: the client stopped reading its answer");
        }
        Err(error) => tracing::debug!(%peer, %error, "connection ended with an error"),
    }
    drop(connection);
    drop(slot);
}

/// Completes once the server shuts down (or is gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// Whether the connection ended because the client accepted nothing for
/// `write_timeout` (`write_deadline`).
fn stalled(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut
                && io.to_string() == super::write_deadline::STALLED;
        }
        source = cause.source();
    }
    false
}
