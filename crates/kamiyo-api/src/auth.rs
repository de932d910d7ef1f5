//! Who is calling, and how much they may do. `Authorization: Bearer <key>` names a user
//! (through its hashed API key); no header is an anonymous caller, identified by its
//! address for rate limiting. A malformed header or an unknown, revoked or disabled key
//! is a 401: a caller who meant to authenticate is never silently downgraded.
//!
//! The order matters, and each step has its reason:
//! 1. Probes (`/healthz`, `/api/health/*`) skip everything: a load balancer with a stale
//!    header must not mark a healthy instance dead, and probes cost no key lookup.
//! 2. An address that has used up its failed-authentication budget gets 429 before any
//!    lookup: wrong keys cost a database query each, so guessing is throttled.
//! 3. The caller is identified; a failure spends from that budget.
//! 4. Monitoring paths need an admin or the metrics token; everything else is
//!    rate-limited per caller.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound, Utc};
use kamiyo_domain::{Tier, TierLimits, TierTable};
use kamiyo_store::accounts::{Principal, Role};
use secrecy::ExposeSecret;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::ratelimit::{capacity_of, per_minute};
use crate::AppState;

/// Who is calling, with the limits of their tier resolved from the configured table
/// (`tiers.*`) when the caller is identified: every later read of the limits (the rate
/// limit, visibility, `/api/me`) sees the same row, and no handler needs the table.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous {
        client: String,
        limits: TierLimits,
    },
    /// A key's user, with the limits of the user's tier.
    User(Principal, TierLimits),
    /// The bootstrap `server.admin_token`: the enterprise tier's limits.
    AdminToken(TierLimits),
    /// `server.metrics_token`, presented on a monitoring path (it is no key elsewhere).
    /// Anonymous limits: it reads no incidents, and monitoring is not rate-limited.
    MetricsReader(TierLimits),
}

impl Caller {
    fn anonymous(client: String, tiers: &TierTable) -> Caller {
        Caller::Anonymous {
            client,
            limits: tiers.anonymous,
        }
    }

    fn user(principal: Principal, tiers: &TierTable) -> Caller {
        let limits = *tiers.of(principal.tier);
        Caller::User(principal, limits)
    }

    pub fn limits(&self) -> TierLimits {
        match self {
            Caller::Anonymous { limits, .. }
            | Caller::User(_, limits)
            | Caller::AdminToken(limits)
            | Caller::MetricsReader(limits) => *limits,
        }
    }

    pub fn tier(&self) -> Option<Tier> {
        match self {
            Caller::Anonymous { .. } | Caller::MetricsReader(_) => None,
            Caller::User(p, _) => Some(p.tier),
            Caller::AdminToken(_) => Some(Tier::Enterprise),
        }
    }

    /// Admins and the metrics token may read the monitor (pool configuration,
    /// normalised SQL naming tables and columns).
    pub fn may_read_metrics(&self) -> bool {
        self.is_admin() || matches!(self, Caller::MetricsReader(_))
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::AdminToken(_))
            || matches!(self, Caller::User(p, _) if p.role == Role::Admin)
    }

    /// The rate-limit identity: the key, or the client address.
    pub fn identity(&self) -> String {
        match self {
            Caller::Anonymous { client, .. } => format!("ip:{client}"),
            Caller::User(p, _) => format!("key:{}", p.key_id),
            Caller::AdminToken(_) => "admin-token".into(),
            Caller::MetricsReader(_) => "metrics-token".into(),
        }
    }

    /// The occurred-at bounds this caller may see at `now` (the service's clock,
    /// [`crate::AppState::now`]): `(not before, not after)`. Rounded to the minute, so
    /// that repeated listings share cached totals.
    pub fn visibility(&self, now: DateTime<Utc>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let now = now
            .duration_trunc(chrono::Duration::minutes(1))
            .unwrap_or(now);
        self.limits().visible_window(now)
    }

    pub fn can_see(&self, occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let (from, until) = self.visibility(now);
        from.is_none_or(|f| occurred_at >= f) && until.is_none_or(|u| occurred_at <= u)
    }
}

/// Probes: never authenticated, never rate-limited (the database probe's answer is
/// cached instead, see `health`).
fn is_probe(path: &str) -> bool {
    // Exact paths: a route added under /api/health/ later is not unauthenticated by
    // accident.
    matches!(path, "/healthz" | "/api/health/database")
}

/// The monitor's paths: admins and the metrics token only, not rate-limited (a scraper
/// polls on its own schedule).
fn is_monitoring(path: &str, metrics_on_listen: bool) -> bool {
    (path == "/metrics" && metrics_on_listen) || path.starts_with("/api/metrics/")
}

/// Authenticates, rate-limits, and stamps the rate-limit headers on the answer.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_probe(&path) {
        return next.run(request).await;
    }
    // Read what identification needs before awaiting: a request is not `Sync`, so a
    // reference to it cannot be held across an await in a `Send` future.
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned));
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = client_address(&state.server, request.headers(), peer);
    let monitoring = is_monitoring(&path, state.server.metrics_listen.is_none());
    let caller = match identify(&state, authorization, client, monitoring).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if monitoring {
        if !caller.may_read_metrics() {
            return match caller {
                Caller::Anonymous { .. } => ApiError::Unauthorized(
                    "monitoring needs an admin key or server.metrics_token: Authorization: Bearer <token>",
                ),
                _ => ApiError::Forbidden("monitoring needs an admin key or server.metrics_token"),
            }
            .into_response();
        }
        request.extensions_mut().insert(caller);
        return next.run(request).await;
    }
    request.extensions_mut().insert(caller.clone());
    let decision = state
        .rate_limiter
        .check(&caller.identity(), capacity_of(&caller.limits()))
        .await;
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
    monitoring: bool,
) -> Result<Caller, ApiError> {
    let Some(value) = authorization else {
        return Ok(Caller::anonymous(client, &state.tiers));
    };
    let value = value.unwrap_or_default();
    let token = bearer(&value);
    // A key verified within the key cache's TTL costs nothing to accept, so it does not
    // touch the failure budget either (most authenticated requests end here).
    if let Some(principal) = token.and_then(|t| state.accounts.authenticate_cached(t)) {
        return Ok(Caller::user(principal, &state.tiers));
    }
    let failures = state.auth_failures.as_ref();
    let budget = per_minute(state.server.auth_failures_per_minute);
    let failure_key = format!("ip:{client}");
    // Spent before anything is compared or looked up, and given back on success:
    // concurrent guesses cannot all pass on the budget's last token, and a throttled
    // address learns nothing from comparing a guess with the configured tokens.
    let spent = failures.check(&failure_key, budget);
    if !spent.allowed {
        // Throttled: no lookup, except for a key the database has verified before, so
        // that a guesser behind the same address (a NAT, a proxy) does not lock out the
        // callers who hold valid keys. A guess cannot be such a key.
        let known = token.is_some_and(|t| state.accounts.is_known_key(t));
        if !known {
            return Err(ApiError::RateLimited {
                retry_after_secs: spent.retry_after_secs.max(1),
            });
        }
    }
    let succeeded = |caller: Caller| {
        if spent.allowed {
            failures.refund(&failure_key, budget);
        }
        Ok(caller)
    };
    let failed = |message: &'static str| {
        tracing::info!(client = %client, "authentication failed");
        Err(ApiError::InvalidCredentials(message))
    };
    let Some(token) = token else {
        return failed("malformed Authorization header: expected `Bearer <key>`");
    };
    if spent.allowed {
        if matches_secret(token, state.server.admin_token.as_ref()) {
            return succeeded(Caller::AdminToken(state.tiers.enterprise));
        }
        if monitoring && matches_secret(token, state.server.metrics_token.as_ref()) {
            return succeeded(Caller::MetricsReader(state.tiers.anonymous));
        }
    }
    match state.accounts.authenticate(token).await {
        Ok(Some(principal)) => succeeded(Caller::user(principal, &state.tiers)),
        Ok(None) => failed("the API key is not valid (unknown, revoked, or its user is disabled)"),
        Err(error) => {
            // The database failed, not the caller.
            if spent.allowed {
                failures.refund(&failure_key, budget);
            }
            Err(error.into())
        }
    }
}

/// Identifies `key` as if it came in `Authorization: Bearer <key>` from the request with
/// `headers` and `peer`: the same lookup, and the same failed-attempt budget per address
/// (the dashboard's sign-in form, which must not be a way around that budget).
pub async fn authenticate_key(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    key: &str,
) -> Result<Caller, ApiError> {
    let client = client_address(&state.server, headers, peer);
    identify(state, Some(Ok(format!("Bearer {key}"))), client, false).await
}

fn matches_secret(token: &str, secret: Option<&crate::config::BearerToken>) -> bool {
    secret.is_some_and(|secret| {
        crate::ingest::constant_time_eq(token.as_bytes(), secret.0.expose_secret().as_bytes())
    })
}

/// The token of `Bearer <token>`.
fn bearer(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The address anonymous callers are limited by: the peer, or behind trusted proxies
/// (`server.trusted_proxy_header`) the entry `server.trusted_proxy_hops` places from the
/// right of that header. Proxies append the address they saw on the right; everything
/// further left was written by the client, so the leftmost entry is never trusted. An
/// entry that is not an IP address, or too few entries, falls back to the peer.
///
/// IPv6 callers are identified by their /64: one subscriber usually holds a whole /64,
/// and could otherwise take a fresh bucket for every request.
pub(crate) fn client_address(
    server: &ServerConfig,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> String {
    let forwarded = server
        .trusted_proxy_header
        .as_deref()
        .and_then(|name| forwarded_client(headers, name, server.trusted_proxy_hops));
    // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`: one identity per
    // address, not one /64 for every IPv4 caller.
    match forwarded.or(peer.map(|ip| ip.to_canonical())) {
        Some(ip) => identity_of(ip),
        None => "unknown".to_owned(),
    }
}

fn forwarded_client(headers: &HeaderMap, name: &str, hops: usize) -> Option<IpAddr> {
    // Several headers of one name are one list, in order (RFC 9110, section 5.3).
    // Split as bytes: one entry that is not text (written by the client, on the left)
    // must not discard the entries the proxies appended.
    let mut entries: Vec<&[u8]> = Vec::new();
    for value in headers.get_all(name) {
        entries.extend(value.as_bytes().split(|b| *b == b','));
    }
    let index = entries.len().checked_sub(hops.max(1))?;
    parse_ip(std::str::from_utf8(entries.get(index)?).ok()?.trim())
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]`, with or without a port.
fn parse_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })
        .map(|ip| ip.to_canonical())
}

fn identity_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let network = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behind(header: &str, hops: usize) -> ServerConfig {
        ServerConfig {
            trusted_proxy_header: Some(header.to_owned()),
            trusted_proxy_hops: hops,
            ..ServerConfig::default()
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        map
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)));

    #[test]
    fn the_entry_a_trusted_proxy_appended_is_used_not_the_one_the_client_wrote() {
        let one = behind("x-forwarded-for", 1);
        let spoofed = headers(&["1.1.1.1, 203.0.113.7"]);
        assert_eq!(client_address(&one, &spoofed, PEER), "203.0.113.7");
        let two = behind("x-forwarded-for", 2);
        let chain = headers(&["6.6.6.6, 203.0.113.7, 10.0.0.2"]);
        assert_eq!(client_address(&two, &chain, PEER), "203.0.113.7");
        let split = headers(&["6.6.6.6, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(
            client_address(&two, &split, PEER),
            "203.0.113.7",
            "repeated headers form one list"
        );
    }

    #[test]
    fn a_non_ip_entry_or_too_few_entries_fall_back_to_the_peer() {
        let one = behind("x-forwarded-for", 1);
        assert_eq!(client_address(&one, &headers(&["evil"]), PEER), "10.0.0.9");
        assert_eq!(client_address(&one, &headers(&[""]), PEER), "10.0.0.9");
        assert_eq!(client_address(&one, &HeaderMap::new(), PEER), "10.0.0.9");
        let two = behind("x-forwarded-for", 2);
        assert_eq!(
            client_address(&two, &headers(&["203.0.113.7"]), PEER),
            "10.0.0.9"
        );
        assert_eq!(
            client_address(&one, &headers(&["1.1.1.1"]), None),
            "1.1.1.1"
        );
        assert_eq!(client_address(&one, &HeaderMap::new(), None), "unknown");
    }

    #[test]
    fn an_ipv4_peer_seen_by_a_dual_stack_listener_is_its_ipv4_address() {
        let mapped: IpAddr = "::ffff:198.51.100.7"
            .parse()
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let direct = ServerConfig::default();
        assert_eq!(
            client_address(&direct, &HeaderMap::new(), Some(mapped)),
            "198.51.100.7"
        );
    }

    #[test]
    fn an_entry_that_is_not_text_on_the_left_does_not_hide_the_proxys_entry() {
        let one = behind("x-forwarded-for", 1);
        let mut map = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.7") {
            map.append("x-forwarded-for", value);
        }
        assert_eq!(client_address(&one, &map, PEER), "203.0.113.7");
    }

    #[test]
    fn without_a_configured_header_the_forwarded_header_is_ignored() {
        let direct = ServerConfig::default();
        assert_eq!(
            client_address(&direct, &headers(&["1.1.1.1"]), PEER),
            "10.0.0.9"
        );
    }

    #[test]
    fn addresses_with_ports_brackets_and_mapped_forms_are_one_identity() {
        let one = behind("x-forwarded-for", 1);
        for (entry, identity) in [
            ("203.0.113.7:5555", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("[2001:db8:1:2::7]:443", "2001:db8:1:2::/64"),
            ("[2001:db8:1:2::8]", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:aaaa::9", "2001:db8:1:2::/64"),
        ] {
            assert_eq!(
                client_address(&one, &headers(&[entry]), PEER),
                identity,
                "{entry}"
            );
        }
    }
}
