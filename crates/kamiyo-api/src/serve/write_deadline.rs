//! A deadline on a client that stops reading its answer.
//!
//! The whole-request deadline (`server.request_timeout`) ends when the handler has built
//! its answer; hyper then writes the body for as long as the socket accepts it. A client
//! that stops reading (a large CSV export, a slow-read attack) would hold its connection,
//! and its place under `max_connections`, forever. Every write that cannot proceed starts
//! this deadline; any byte accepted by the socket clears it. So the deadline bounds how
//! long a client may accept nothing, not how long a big answer may take.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The message of the error that ends a stalled connection (also how it is recognised).
pub(super) const STALLED: &str =
    "the client accepted no bytes of the answer within server.write_timeout";

#[derive(Debug)]
pub(super) struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    /// Running while a write waits on the socket.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub(super) fn new(inner: T, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write that could not proceed: still waiting, or past the deadline.
    fn waiting<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, STALLED))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn outcome<R>(
        &mut self,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.outcome(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.outcome(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.outcome(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.outcome(polled, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_nothing_ends_the_write_after_the_deadline() {
        // A pipe of 16 bytes whose other end never reads.
        let (writer, _reader) = tokio::io::duplex(16);
        let mut io = WriteDeadline::new(writer, Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let error = io.write_all(&[0u8; 64]).await.err();
        assert_eq!(
            error.as_ref().map(io::Error::kind),
            Some(io::ErrorKind::TimedOut),
            "{error:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_accepting_bytes_is_not_cut() {
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut io = WriteDeadline::new(writer, Duration::from_secs(30));
        // Drains 16 bytes every 20 s: each stall is shorter than the deadline.
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let mut total = 0;
            while total < 64 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += tokio::io::AsyncReadExt::read(&mut reader, &mut buf)
                    .await
                    .unwrap_or(0);
            }
        });
        assert!(io.write_all(&[0u8; 64]).await.is_ok());
        assert!(drain.await.is_ok());
    }
}
