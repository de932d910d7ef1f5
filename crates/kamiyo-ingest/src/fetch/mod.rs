//! One fetch of a source over HTTP: a conditional `GET` (the last success's `ETag` and
//! `Last-Modified`), bounded in time and size, retried on what is worth retrying.
//!
//! - **Conditional.** A `304`, or a body whose SHA-256 equals the last success's, is a
//!   successful fetch that brings nothing new ([`Fetched::NotModified`],
//!   [`Fetched::Unchanged`]): the caller writes no claim.
//! - **Bounded.** Each attempt has `timeout` for the whole exchange, body included (a
//!   server that trickles bytes cannot hold a fetch open), and the body may hold at most
//!   `max_body_bytes` (refused from `Content-Length` when announced, else while read).
//!   The whole fetch, retries and waits included, ends within `deadline`.
//! - **Retried.** `429`, `5xx`, timeouts, refused or dropped connections and bodies cut
//!   short are retried by [`RetryPolicy`] (jittered exponential backoff, `Retry-After`
//!   honoured); a `4xx` other than `429` is not: asking again would get the same answer.
//! - Every request names the service in its `User-Agent`.

mod retry;

use std::time::{Duration, Instant};

use kamiyo_db::Clock;
use sha2::{Digest, Sha256};

pub use retry::{parse_retry_after, RetryPolicy};

/// The `User-Agent` of every fetch.
pub const USER_AGENT: &str = concat!(
    "kamiyo/",
    env!("CARGO_PKG_VERSION"),
    " (exploit-intelligence aggregator)"
);

/// The limits of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// One attempt, from sending the request to the body's last byte.
    pub timeout: Duration,
    /// The largest body accepted.
    pub max_body_bytes: usize,
    /// The whole fetch, every attempt and wait included.
    pub deadline: Duration,
    pub retry: RetryPolicy,
}

impl Default for FetchLimits {
    fn default() -> Self {
        FetchLimits {
            timeout: Duration::from_secs(30),
            max_body_bytes: 32 * 1024 * 1024,
            deadline: Duration::from_secs(120),
            retry: RetryPolicy::default(),
        }
    }
}

/// What the last successful fetch saw, sent back to ask "has it changed?" (the fetch
/// log keeps them: `SourceStore::last_validators`).
pub use kamiyo_store::Validators;

/// A successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// `304 Not Modified`.
    NotModified { validators: Validators },
    /// A body identical to the last success's (a server without validators).
    Unchanged {
        bytes: usize,
        validators: Validators,
    },
    /// A new body.
    Body {
        body: Vec<u8>,
        validators: Validators,
    },
}

/// A fetch's result with what it cost.
#[derive(Debug)]
pub struct FetchReport {
    pub result: Result<Fetched, FetchError>,
    /// The last answer's status, when there was one.
    pub status: Option<u16>,
    pub attempts: u32,
    pub duration: Duration,
}

/// Why a fetch failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the source answered HTTP {status}")]
    Status { status: u16 },
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("cannot reach the source: {0}")]
    Connect(String),
    #[error("the body was cut short or unreadable: {0}")]
    Body(String),
    #[error("not a valid source URL: {0}")]
    Url(String),
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status { status } => *status == 429 || *status >= 500,
            FetchError::Timeout(_) | FetchError::Connect(_) | FetchError::Body(_) => true,
            FetchError::TooLarge { .. } | FetchError::Url(_) => false,
        }
    }
}

/// Fetches sources over HTTP. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    clock: Clock,
}

/// Redirects are followed up to 5 times, and only within the origin first asked: a
/// source (or a feed's article link) that redirects elsewhere is answered by its
/// redirect, a failed fetch that says so, never a request to a host nobody configured
/// (an internal address a tampered page names).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(url::Url::origin);
        if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else if first.is_some_and(|origin| origin == attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// One attempt's outcome: the status seen and, on failure, the server's `Retry-After`.
struct Attempt {
    status: Option<u16>,
    result: Result<Fetched, FetchError>,
    retry_after: Option<Duration>,
}

impl HttpFetcher {
    /// A client with `connect_timeout` for opening connections; `clock` reads the
    /// calendar time an HTTP-date `Retry-After` is measured from.
    ///
    /// # Errors
    ///
    /// When the TLS backend cannot be set up.
    pub fn new(connect_timeout: Duration, clock: Clock) -> Result<HttpFetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(connect_timeout)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| FetchError::Connect(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpFetcher { client, clock })
    }

    /// Fetches `url`, conditionally on `previous` (the last success's validators).
    pub async fn fetch(
        &self,
        url: &str,
        previous: &Validators,
        limits: &FetchLimits,
    ) -> FetchReport {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = limits.deadline.saturating_sub(started.elapsed());
            let timeout = limits.timeout.min(left);
            let attempt = match tokio::time::timeout(
                timeout,
                self.attempt(url, previous, limits.max_body_bytes),
            )
            .await
            {
                Ok(attempt) => attempt,
                Err(_) => Attempt {
                    status: None,
                    result: Err(FetchError::Timeout(timeout)),
                    retry_after: None,
                },
            };
            let retry = match &attempt.result {
                Err(error) if error.retryable() => limits.retry.wait_before(
                    attempts + 1,
                    attempt.retry_after,
                    limits.deadline.saturating_sub(started.elapsed()),
                    rand::random::<f64>(),
                ),
                _ => None,
            };
            match retry {
                Some(wait) => {
                    tracing::info!(url, attempt = attempts, error = ?attempt.result.as_ref().err(), wait_ms = wait.as_millis() as u64, "source fetch failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                None => {
                    return FetchReport {
                        result: attempt.result,
                        status: attempt.status,
                        attempts,
                        duration: started.elapsed(),
                    }
                }
            }
        }
    }

    async fn attempt(&self, url: &str, previous: &Validators, max_body: usize) -> Attempt {
        let mut request = self.client.get(url);
        if let Some(etag) = &previous.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &previous.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
        }
        let failed = |status, error| Attempt {
            status,
            result: Err(error),
            retry_after: None,
        };
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_builder() => return failed(None, FetchError::Url(e.to_string())),
            Err(e) => return failed(None, FetchError::Connect(without_url(&e))),
        };
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut validators = Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
            body_sha256: None,
        };
        if status == 304 {
            // A 304 may omit the validators; the ones sent still hold.
            validators.etag = validators.etag.or_else(|| previous.etag.clone());
            validators.last_modified = validators
                .last_modified
                .or_else(|| previous.last_modified.clone());
            validators.body_sha256 = previous.body_sha256.clone();
            return Attempt {
                status: Some(status),
                result: Ok(Fetched::NotModified { validators }),
                retry_after: None,
            };
        }
        if !response.status().is_success() {
            let retry_after = header(reqwest::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(&v, self.clock.now_utc()));
            return Attempt {
                status: Some(status),
                result: Err(FetchError::Status { status }),
                retry_after,
            };
        }
        if response
            .content_length()
            .is_some_and(|length| length > max_body as u64)
        {
            return failed(Some(status), FetchError::TooLarge { limit: max_body });
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > max_body {
                        return failed(Some(status), FetchError::TooLarge { limit: max_body });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return failed(Some(status), FetchError::Body(without_url(&e))),
            }
        }
        let digest = hex::encode(Sha256::digest(&body));
        let unchanged = previous.body_sha256.as_deref() == Some(digest.as_str());
        validators.body_sha256 = Some(digest);
        let result = if unchanged {
            Fetched::Unchanged {
                bytes: body.len(),
                validators,
            }
        } else {
            Fetched::Body { body, validators }
        };
        Attempt {
            status: Some(status),
            result: Ok(result),
            retry_after: None,
        }
    }
}

/// reqwest's message, with its causes, without the URL it names (a source URL may carry
/// a token in its query string: it is never logged or stored).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    match error.url() {
        Some(url) => text.replace(url.as_str(), "<source URL>"),
        None => text,
    }
}
