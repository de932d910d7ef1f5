//! [`eventually`]: the one sanctioned poll loop of the tests.
//!
//! A test awaits events wherever one exists. Where none does (a reading of the recent
//! past, a cancel the server handles asynchronously, a background task's progress), it
//! polls the state through `eventually`, which bounds the wait and, on failure, says what
//! was awaited and what was seen last, instead of a bare "timed out".

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// The first pause between two checks; it doubles up to [`MAX_PAUSE`]. Short, because
/// most conditions hold within milliseconds and a test should not wait longer than they do.
pub const FIRST_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between two checks: small against every deadline the tests use,
/// large enough not to flood a server that is being polled over the network.
pub const MAX_PAUSE: Duration = Duration::from_millis(50);

/// What one check saw: done with a value, or not yet, with what it observed.
pub trait Observation<T> {
    /// `Ok` when the condition holds; `Err` with a description of the state otherwise.
    fn into_outcome(self) -> Result<T, String>;
}

impl<T> Observation<T> for Option<T> {
    fn into_outcome(self) -> Result<T, String> {
        self.ok_or_else(|| "None".to_owned())
    }
}

/// `Err(observed)`: not yet, and the panic message shows the last `observed` (pretty
/// `Debug`: a list of rows prints one a line).
impl<T, E: Debug> Observation<T> for Result<T, E> {
    fn into_outcome(self) -> Result<T, String> {
        self.map_err(|observed| format!("{observed:#?}"))
    }
}

/// Calls `check` until it gives `Some(value)` (or `Ok(value)`), pausing between calls
/// with a short backoff, and returns the value. Panics once `deadline` has passed,
/// naming `what` was awaited and the last observation (return `Err(observed)` from
/// `check` to have it shown).
///
/// ```ignore
/// let healthy = eventually("health to say healthy", Duration::from_secs(10), || async {
///     let answer = app.get("/api/health/database").await;
///     if answer.json()["status"] == "healthy" { Ok(answer) } else { Err(answer.text) }
/// })
/// .await;
/// ```
pub async fn eventually<T, O, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    O: Observation<T>,
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
{
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let observed = match check().await.into_outcome() {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        let waited = started.elapsed();
        assert!(
            waited < deadline,
            "not {what} within {deadline:?} (waited {waited:?}); last seen: {observed}"
        );
        tokio::time::sleep(pause.min(deadline.saturating_sub(waited))).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
