//! One error type for the API and one JSON envelope for every error answer:
//! `{"error": {"code": "...", "message": "..."}}`. Internals are logged, never sent.
//!
//! Handlers return store and database errors with `?` (the `From` impls below map them
//! once). Every 503, whoever answers it, gets its `Retry-After` from
//! [`stamp_retry_after`], the one place that knows `server.retry_after`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kamiyo_db::DbError;
use kamiyo_store::StoreError;
use serde::Serialize;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no route for this path")]
    NotFound,
    #[error("this path does not accept this method")]
    MethodNotAllowed,
    #[error("no such {0}")]
    NotFoundItem(&'static str),
    /// A query parameter is malformed; the message names it.
    #[error("invalid parameter {parameter}: {message}")]
    BadParameter {
        parameter: &'static str,
        message: String,
    },
    /// The request outlived its deadline; the client may retry later.
    #[error("the request did not complete within {}", humantime_secs(*.0))]
    RequestTimeout(Duration),
    /// The database could not serve the request (or a write lost a race worth running
    /// again); the client may retry later.
    #[error("{}", DATABASE_UNAVAILABLE)]
    DatabaseUnavailable(#[source] StoreError),
    /// A request body that is not what the endpoint accepts; the message names the field
    /// or position.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// A well-formed value that a rule refuses (422), naming its field.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("request body larger than the limit")]
    PayloadTooLarge,
    /// The change conflicts with what is stored (a unique rule); details are logged.
    #[error("the request conflicts with an existing record")]
    Conflict(#[source] StoreError),
    /// No credentials where they are needed.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Credentials were presented and are not valid (malformed, unknown, revoked).
    #[error("{0}")]
    InvalidCredentials(&'static str),
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Forbidden(&'static str),
    /// The store failed in a way the client cannot fix (corrupt data, a broken rule, an
    /// unexpected database error).
    #[error("internal error")]
    Internal(#[source] StoreError),
    /// The server failed outside the store (a value that would not serialise); the text
    /// is logged.
    #[error("internal error")]
    Unexpected(String),
    /// A handler panicked (logged with its message where it is caught).
    #[error("internal error")]
    Panicked,
}

/// The answer to a handler's panic (tower-http's `CatchPanicLayer`): logged with the
/// panic's message, answered 500 in the envelope like any internal error.
pub fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not text)".to_owned());
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::Panicked.into_response()
}

const DATABASE_UNAVAILABLE: &str = "the database is unavailable";

/// The envelope of every error answer, including the database probe's 503 (`health`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_parameter`, `bad_body`, `invalid`, `not_found`,
    /// `method_not_allowed`, `unauthorized`, `forbidden`, `rate_limited`,
    /// `payload_too_large`, `conflict`, `request_timeout`, `database_unavailable`,
    /// `internal_error`.
    pub code: &'static str,
    /// For a person; names the parameter or field at fault.
    pub message: String,
}

/// Maps a store failure once, for every handler: unavailable (and a lost race, worth
/// running again) is 503, a unique rule is 409, anything else is a 500 that says nothing
/// of internals. Corrupt stored data is a 500 like any internal failure (its table and
/// column are logged, not sent).
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Refused { field, reason } = error {
            return ApiError::Invalid {
                field: field.to_owned(),
                message: reason,
            };
        }
        if error.is_unavailable() || matches!(error, StoreError::Raced) {
            ApiError::DatabaseUnavailable(error)
        } else if error.is_conflict() {
            ApiError::Conflict(error)
        } else {
            ApiError::Internal(error)
        }
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        StoreError::from(error).into()
    }
}

impl ErrorDetail {
    /// What the database probe answers when the database does not (`health`), as any
    /// other 503 of the database says it.
    pub fn database_unavailable() -> Self {
        ErrorDetail {
            code: "database_unavailable",
            message: DATABASE_UNAVAILABLE.to_owned(),
        }
    }
}

impl ApiError {
    /// The envelope this error is answered with.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        }
    }

    /// A body the JSON extractor refused: too large (413), not JSON or the wrong shape
    /// (400, with serde's message naming the field and position).
    pub fn from_json_rejection(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        ApiError::BadBody(rejection.body_text())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::NotFoundItem(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::RequestTimeout(..) | ApiError::DatabaseUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) | ApiError::InvalidCredentials(_) => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) | ApiError::Unexpected(_) | ApiError::Panicked => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound | ApiError::NotFoundItem(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::BadParameter { .. } => "bad_parameter",
            ApiError::RequestTimeout(..) => "request_timeout",
            ApiError::DatabaseUnavailable { .. } => "database_unavailable",
            ApiError::BadBody(_) => "bad_body",
            ApiError::Invalid { .. } => "invalid",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized(_) | ApiError::InvalidCredentials(_) => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Internal(_) | ApiError::Unexpected(_) | ApiError::Panicked => {
                "internal_error"
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::DatabaseUnavailable(source) => {
                tracing::warn!(error = %source, "request failed: database unavailable");
            }
            ApiError::Internal(source) => tracing::error!(error = %source, "request failed"),
            ApiError::Unexpected(what) => tracing::error!(error = %what, "request failed"),
            ApiError::Conflict(source) => {
                tracing::info!(error = %source, "request conflicts with stored data")
            }
            _ => {}
        }
        let mut response = (self.status(), Json(self.envelope())).into_response();
        // A 503's Retry-After is stamped by `stamp_retry_after`; a 429's is the caller's.
        let retry = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        // RFC 6750: a 401 names the scheme, and says when the token given was the problem.
        let challenge = match &self {
            ApiError::Unauthorized(_) => Some(r#"Bearer realm="kamiyo""#),
            ApiError::InvalidCredentials(_) => {
                Some(r#"Bearer realm="kamiyo", error="invalid_token""#)
            }
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(seconds) = retry {
            let seconds = seconds.to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Gives every 503 that has none a `Retry-After` of `server.retry_after` (at least a
/// second): the database's, the deadline's and the probe's alike.
pub async fn stamp_retry_after(
    axum::extract::State(retry_after): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after.as_secs().max(1)),
        );
    }
    response
}

fn humantime_secs(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_failures_map_to_their_status_without_internals() {
        let conflict = ApiError::from(DbError::Conflict {
            constraint: "exploits_dedup_key_key".into(),
            message: "duplicate key value".into(),
        });
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert!(!conflict.to_string().contains("dedup_key"));
        let down = ApiError::from(DbError::Unavailable {
            pool: "primary".into(),
            reason: "refused".into(),
            source: None,
        });
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            ApiError::from(StoreError::Raced).status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "a lost race is worth running again"
        );
        assert_eq!(
            ApiError::from(DbError::other("boom")).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let corrupt = ApiError::from(StoreError::corrupt("exploits", "status", "\"nope\""));
        assert_eq!(corrupt.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !corrupt.to_string().contains("exploits"),
            "internals stay in the log"
        );
    }
}
