//! How long a connection may wait for a request head before it is closed.
//!
//! hyper 1.x starts its header-read timer whenever it waits for a head: when the
//! connection opens, and again as soon as an answer has been sent on a keep-alive
//! connection. On its own, `header_read_timeout` therefore also closes idle keep-alive
//! connections, after the same time. The timer given to hyper here splits that wait in
//! two:
//!
//! - the first request of a connection: `header_read_timeout` from the moment the
//!   connection opens (a client that connects and sends nothing is not an idle
//!   keep-alive client);
//! - every later request: up to `keep_alive_timeout` while nothing of it has arrived,
//!   then `header_read_timeout` from its first byte.
//!
//! A byte is noticed through [`Counted`], the connection's IO, which counts what it
//! reads. A head already partly read when the wait begins (pipelined behind the previous
//! request) counts as idle until more of it arrives: still bounded, by
//! `keep_alive_timeout`. hyper's HTTP/1 server uses its timer for this wait and nothing else; the tests
//! in `tests/connections.rs` fail if an upgrade of hyper changes that.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bytes read so far on one connection, shared by its IO and its timer.
#[derive(Debug, Clone, Default)]
pub(super) struct ReadCount(Arc<AtomicU64>);

impl ReadCount {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A connection's IO, counting the bytes it reads.
#[derive(Debug)]
pub(super) struct Counted<T> {
    inner: T,
    read: ReadCount,
}

impl<T> Counted<T> {
    pub(super) fn new(inner: T, read: ReadCount) -> Self {
        Counted { inner, read }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.read.add(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// hyper's timer for one connection (see the module documentation).
#[derive(Debug, Clone)]
pub(super) struct HeadTimer {
    read: ReadCount,
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
}

impl HeadTimer {
    pub(super) fn new(
        read: ReadCount,
        header_read_timeout: Duration,
        keep_alive_timeout: Duration,
    ) -> Self {
        HeadTimer {
            read,
            header_read_timeout,
            keep_alive_timeout,
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadWait {
            sleep: Box::pin(tokio::time::sleep(duration)),
            idle: None,
        })
    }

    /// hyper asks for `now + header_read_timeout` as it starts waiting for a head.
    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let read_so_far = self.read.get();
        let wait = if read_so_far == 0 {
            HeadWait {
                sleep: Box::pin(tokio::time::sleep(
                    deadline.saturating_duration_since(std::time::Instant::now()),
                )),
                idle: None,
            }
        } else {
            HeadWait {
                sleep: Box::pin(tokio::time::sleep(self.keep_alive_timeout)),
                idle: Some(Idle {
                    read: self.read.clone(),
                    read_at_start: read_so_far,
                    header_read_timeout: self.header_read_timeout,
                }),
            }
        };
        Box::pin(wait)
    }
}

/// A keep-alive connection waiting for the first byte of its next request.
#[derive(Debug)]
struct Idle {
    read: ReadCount,
    read_at_start: u64,
    header_read_timeout: Duration,
}

/// One wait for a request head. Boxed inside, so that it is `Unpin`.
#[derive(Debug)]
struct HeadWait {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Set while the connection is idle; cleared by the first byte of the next request.
    idle: Option<Idle>,
}

impl Future for HeadWait {
    type Output = ();

    // hyper polls this after each read that left the head incomplete, so the first byte
    // of a request is seen here as soon as it has been read.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(idle) = &this.idle {
            if idle.read.get() != idle.read_at_start {
                let deadline = Instant::now() + idle.header_read_timeout;
                this.sleep.as_mut().reset(deadline);
                this.idle = None;
            }
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadWait {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    //! On tokio's paused clock: time advances only when every task waits, straight to
    //! the next deadline, so the figures below are exact and nothing really sleeps.

    use super::*;
    use hyper::rt::Timer;

    const HEAD: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    fn timer() -> (HeadTimer, ReadCount) {
        let read = ReadCount::default();
        (HeadTimer::new(read.clone(), HEAD, IDLE), read)
    }

    fn hypers_deadline() -> std::time::Instant {
        std::time::Instant::now() + HEAD
    }

    /// How long `wait` takes to fire, on the paused clock.
    async fn fires_after(wait: &mut Pin<Box<dyn hyper::rt::Sleep>>) -> Duration {
        let start = Instant::now();
        wait.await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_header_read_timeout_from_its_opening_even_after_a_byte() {
        let (timer, read) = timer();
        let mut wait = timer.sleep_until(hypers_deadline());
        read.add(3);
        let waited = fires_after(&mut wait).await;
        // hyper's deadline was taken on the real clock, a few microseconds before.
        assert!(
            waited <= HEAD && waited > HEAD - Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_gets_the_keep_alive_timeout_not_the_header_one() {
        let (timer, read) = timer();
        read.add(100);
        let mut wait = timer.sleep_until(hypers_deadline());
        assert_eq!(fires_after(&mut wait).await, IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_heads_first_byte_starts_the_header_read_timeout() {
        let (timer, read) = timer();
        read.add(100);
        let mut wait = timer.sleep_until(hypers_deadline());
        let idle_for = Duration::from_secs(30);
        assert!(tokio::time::timeout(idle_for, &mut wait).await.is_err());
        read.add(1);
        assert_eq!(fires_after(&mut wait).await, HEAD);
    }

    #[tokio::test(start_paused = true)]
    async fn a_plain_sleep_is_unaffected_by_reads() {
        let (timer, read) = timer();
        read.add(100);
        let mut wait = timer.sleep(Duration::from_secs(5));
        assert_eq!(fires_after(&mut wait).await, Duration::from_secs(5));
    }
}
