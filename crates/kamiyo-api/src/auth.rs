//! Who is calling, and how much they may do. `Authorization: Bearer <key>` names a user
//! (through its hashed API key); no header is an anonymous caller, identified by its
//! address for rate limiting. A malformed header or an unknown, revoked or disabled key
//! is a 401: a caller who meant to authenticate is never silently downgraded.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound, Utc};
use kamiyo_domain::{anonymous_limits, Tier, TierLimits};
use kamiyo_store::accounts::{Principal, Role};
use secrecy::ExposeSecret;

use crate::error::ApiError;
use crate::AppState;

#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous {
        client: String,
    },
    User(Principal),
    /// The bootstrap `server.admin_token`.
    AdminToken,
}

impl Caller {
    pub fn limits(&self) -> TierLimits {
        match self {
            Caller::Anonymous { .. } => anonymous_limits(),
            Caller::User(p) => p.tier.limits(),
            Caller::AdminToken => Tier::Enterprise.limits(),
        }
    }

    pub fn tier(&self) -> Option<Tier> {
        match self {
            Caller::Anonymous { .. } => None,
            Caller::User(p) => Some(p.tier),
            Caller::AdminToken => Some(Tier::Enterprise),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::AdminToken)
            || matches!(self, Caller::User(p) if p.role == Role::Admin)
    }

    /// The rate-limit identity: the key, or the client address.
    pub fn identity(&self) -> String {
        match self {
            Caller::Anonymous { client } => format!("ip:{client}"),
            Caller::User(p) => format!("key:{}", p.key_id),
            Caller::AdminToken => "admin-token".into(),
        }
    }

    /// The occurred-at bounds this caller may see: `(not before, not after)`. Rounded to
    /// the minute, so that repeated listings share cached totals.
    pub fn visibility(&self) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let limits = self.limits();
        let now = Utc::now()
            .duration_trunc(chrono::Duration::minutes(1))
            .unwrap_or_else(|_| Utc::now());
        let until = (!limits.delay.is_zero())
            .then(|| now - chrono::Duration::from_std(limits.delay).unwrap_or_default());
        let from = limits
            .history
            .map(|h| now - chrono::Duration::from_std(h).unwrap_or_default());
        (from, until)
    }

    pub fn can_see(&self, occurred_at: DateTime<Utc>) -> bool {
        let (from, until) = self.visibility();
        from.is_none_or(|f| occurred_at >= f) && until.is_none_or(|u| occurred_at <= u)
    }
}

/// Paths every caller may reach without counting against a limit.
fn exempt(path: &str) -> bool {
    path == "/healthz"
        || path == "/metrics"
        || path.starts_with("/api/health/")
        || path.starts_with("/api/metrics/")
}

/// Authenticates, rate-limits, and stamps the rate-limit headers on the answer.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // Read what identification needs before awaiting: a request is not `Sync`, so a
    // reference to it cannot be held across an await in a `Send` future.
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned));
    let client = client_address(&state, &request);
    let caller = match identify(&state, authorization, client).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let path = request.uri().path().to_owned();
    request.extensions_mut().insert(caller.clone());
    if exempt(&path) {
        return next.run(request).await;
    }
    let limits = caller.limits();
    let decision = state.rate_limiter.check(&caller.identity(), &limits);
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        ApiError::RateLimited {
            retry_after_secs: decision.retry_after_secs.max(1),
        }
        .into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", decision.limit.to_string()),
        ("x-ratelimit-remaining", decision.remaining.to_string()),
        ("x-ratelimit-reset", decision.reset_secs.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

async fn identify(
    state: &AppState,
    authorization: Option<Result<String, axum::http::header::ToStrError>>,
    client: String,
) -> Result<Caller, ApiError> {
    let Some(value) = authorization else {
        return Ok(Caller::Anonymous { client });
    };
    let value = value.unwrap_or_default();
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized(
            "malformed Authorization header: expected `Bearer <key>`",
        ))?;
    if let Some(admin) = &state.server.admin_token {
        if crate::ingest::constant_time_eq(token.as_bytes(), admin.0.expose_secret().as_bytes()) {
            return Ok(Caller::AdminToken);
        }
    }
    match state.accounts.authenticate(token).await {
        Ok(Some(principal)) => Ok(Caller::User(principal)),
        Ok(None) => Err(ApiError::Unauthorized(
            "the API key is not valid (unknown, revoked, or its user is disabled)",
        )),
        Err(error) => Err(ApiError::from_db(error, state.server.retry_after)),
    }
}

/// The peer address, or the first address of the trusted proxy header when one is
/// configured (off by default: a client could otherwise pick its own identity).
fn client_address(state: &AppState, request: &Request) -> String {
    if let Some(name) = &state.server.trusted_proxy_header {
        if let Some(forwarded) = first_forwarded(request.headers(), name) {
            return forwarded;
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "unknown".to_owned(),
            |ConnectInfo(addr)| addr.ip().to_string(),
        )
}

fn first_forwarded(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}
