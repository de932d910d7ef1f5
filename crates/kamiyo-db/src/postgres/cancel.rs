//! What happens to a statement that its caller stops waiting for: a client-side deadline
//! that passed, or a future dropped by a deadline above this layer (the HTTP request
//! timeout). Dropping the driver's future does not stop the query: the server keeps
//! running it, holding its locks and its CPU, until `statement_timeout`. So the
//! statement is cancelled on the server (the protocol's CancelRequest, on a connection
//! of its own) and the session is discarded instead of reused: the abandoned answer is
//! still owed on it, and when the server does not answer at all, the next caller of the
//! session would wait behind it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;
use tokio_postgres::{CancelToken, NoTls};

use crate::error::DbError;

/// How long past `statement_timeout` the client waits for an answer. A reachable server
/// cancels the statement itself at `statement_timeout` and says so (`StatementTimeout`);
/// the grace covers that answer's way back on a busy server, so the client-side deadline
/// only fires when the server does not answer at all.
pub const CLIENT_DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Per-session state for abandoning statements.
pub(crate) struct SessionControl {
    /// `None` behind a pooler in transaction mode: PgBouncer 1.18 crashed (`FATAL ...
    /// disconnect_client(): bad client state`) forwarding a cancel request whose client
    /// had already gone, under load (`bench/deploy.sh`). There the abandoned session is
    /// only closed; PgBouncer then closes the server session it was using, and the
    /// role's `statement_timeout` bounds the statement.
    cancel: Option<CancelToken>,
    /// Set once a statement was abandoned: the session is closed instead of reused.
    abandoned: AtomicBool,
    /// `statement_timeout` plus [`CLIENT_DEADLINE_GRACE`], in nanoseconds: a
    /// maintenance session raises it ([`SessionControl::lengthen`]).
    statement_deadline: AtomicU64,
    /// Set when the session's settings were changed for one long job: it is closed
    /// when returned instead of handed to a request with them.
    retired: AtomicBool,
    /// Bound on delivering a cancel request (the connect timeout): a hung server accepts
    /// the TCP connection and never reads it.
    cancel_timeout: Duration,
    /// The statement deadline's timer, kept between statements and re-armed by each.
    /// A fresh timer per statement registered and removed a timer-wheel entry every
    /// time (a few hundred instructions per statement under callgrind); re-arming one that
    /// is still registered to a later instant only moves its expiry forward. Taken by
    /// the statement in flight; a second statement running at the same time on the
    /// same session (pipelining) gets a timer of its own.
    timer: parking_lot::Mutex<Option<Pin<Box<Sleep>>>>,
}

impl SessionControl {
    pub(crate) fn new(
        cancel: Option<CancelToken>,
        statement_deadline: Duration,
        cancel_timeout: Duration,
    ) -> Self {
        SessionControl {
            cancel,
            abandoned: AtomicBool::new(false),
            statement_deadline: AtomicU64::new(nanos(statement_deadline)),
            retired: AtomicBool::new(false),
            cancel_timeout,
            timer: parking_lot::Mutex::new(None),
        }
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Whether the session must be closed rather than reused.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// The client-side deadline of every later statement becomes `deadline`, and the
    /// session is closed when returned.
    pub(crate) fn lengthen(&self, deadline: Duration) {
        self.retired.store(true, Ordering::Release);
        self.statement_deadline
            .store(nanos(deadline), Ordering::Release);
    }

    pub(crate) fn statement_deadline(&self) -> Duration {
        Duration::from_nanos(self.statement_deadline.load(Ordering::Acquire))
    }

    /// A guard to hold while a statement that started at `started` is in flight; its
    /// client-side deadline is `started` plus the statement deadline.
    pub(crate) fn start(&self, started: Instant) -> InFlight<'_> {
        let deadline = tokio::time::Instant::from_std(started + self.statement_deadline());
        let kept = self.timer.lock().take();
        let timer = match kept {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        InFlight {
            control: self,
            answered: false,
            timer: Some(timer),
        }
    }

    /// Resolves when the timer kept between statements has gone off (at once when none
    /// is kept). The timer is a tokio timer racing a real socket, so time cannot be
    /// faked for it; this is the event a test awaits instead of sleeping past it.
    pub(crate) async fn kept_timer_elapsed(&self) {
        let Some(mut timer) = self.timer.lock().take() else {
            return;
        };
        timer.as_mut().await;
        let mut kept = self.timer.lock();
        if kept.is_none() {
            *kept = Some(timer);
        }
    }

    fn abandon(&self) {
        if self.abandoned.swap(true, Ordering::AcqRel) {
            return;
        }
        // Drop cannot await; without a runtime (a process shutting down) there is nothing
        // to send the request with, and closing the session is all that is left.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(cancel) = self.cancel.clone() else {
            return;
        };
        let limit = self.cancel_timeout;
        runtime.spawn(async move {
            match tokio::time::timeout(limit, cancel.cancel_query(NoTls)).await {
                Ok(Ok(())) => tracing::debug!("abandoned statement cancelled on the server"),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "cannot send the cancel request for an abandoned statement");
                }
                Err(_) => tracing::debug!(
                    "the cancel request for an abandoned statement was not delivered in time"
                ),
            }
        });
    }
}

/// Armed while a statement waits for its answer. Dropped armed (the caller's future was
/// dropped) or [`expired`](InFlight::expired), it cancels the statement on the server and
/// marks the session for closing.
pub(crate) struct InFlight<'a> {
    control: &'a SessionControl,
    answered: bool,
    /// Always `Some` until dropped, when it goes back to the session.
    timer: Option<Pin<Box<Sleep>>>,
}

/// Runs `statement` until its answer (`Some`) or its client-side deadline (`None`). Takes
/// the statement pinned where the caller awaits it, so the statement's state is not
/// moved once more into a wrapper.
pub(crate) fn within_deadline<'f, 'a, F: Future>(
    in_flight: &'f mut InFlight<'a>,
    statement: Pin<&'f mut F>,
) -> WithinDeadline<'f, 'a, F> {
    WithinDeadline {
        in_flight,
        statement,
    }
}

pub(crate) struct WithinDeadline<'f, 'a, F> {
    in_flight: &'f mut InFlight<'a>,
    statement: Pin<&'f mut F>,
}

impl<F: Future> Future for WithinDeadline<'_, '_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.statement.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending => self.in_flight.poll_deadline(cx).map(|()| None),
        }
    }
}

impl InFlight<'_> {
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    pub(crate) fn answered(mut self) {
        self.answered = true;
    }

    /// The client-side deadline passed: the statement is abandoned, and the caller gets
    /// `Unavailable` (transient: a new session may well be answered).
    pub(crate) fn expired(self, pool: &str) -> DbError {
        let deadline = self.control.statement_deadline();
        drop(self);
        DbError::Unavailable {
            pool: pool.to_owned(),
            reason: format!(
                "no answer within the client-side statement deadline ({})",
                humantime::format_duration(deadline)
            ),
            source: None,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.control.abandon();
            // The session is closed, not reused: its timer goes with it.
            return;
        }
        // Left registered: if the session then stays idle past the deadline, the timer
        // fires once and wakes the last statement's task for nothing, which tasks
        // tolerate; the next statement re-registers it.
        if let Some(timer) = self.timer.take() {
            let mut kept = self.control.timer.lock();
            if kept.is_none() {
                *kept = Some(timer);
            }
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
