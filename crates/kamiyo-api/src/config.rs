//! Limits of the HTTP server, each finite by default. Layered like the database settings
//! (`[server]` in the TOML file, `KAMIYO_SERVER_*` in the environment, flags).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
pub const DEFAULT_EXPORT_MAX_ROWS: usize = 10_000;
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
pub const DEFAULT_PAGE_CACHE_TTL: Duration = Duration::from_secs(1);
pub const DEFAULT_PAGE_CACHE_MAX_ENTRIES: usize = 1024;
pub const DEFAULT_PAGE_CACHE_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Longest `server.auth_cache_ttl` accepted: beyond it a revocation by another process
/// (the command line) would take effect too late to be called a revocation.
pub const MAX_AUTH_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TRUSTED_PROXY_HOPS: usize = 1;
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 10;
pub const DEFAULT_RATE_LIMIT_MAX_CALLERS: usize = 100_000;
/// How long after the account-change listener's session ends before listening again.
pub const DEFAULT_AUTH_RELISTEN_AFTER: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTH_CACHE_TTL: Duration = Duration::from_secs(1);
/// Longest `server.health_cache_ttl`: a load balancer must learn of an outage soon.
pub const MAX_HEALTH_CACHE_TTL: Duration = Duration::from_secs(60);
/// Longest header-read and keep-alive deadlines accepted: past an hour they no longer
/// bound anything an attacker cares about.
pub const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);
/// Shortest `server.admin_token` and `server.metrics_token`: they are compared without a
/// per-guess cost once an address has budget left, so they must be unguessable (32
/// random characters, e.g. `openssl rand -hex 16`, carry 128 bits).
pub const MIN_TOKEN_CHARS: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Whole-request deadline; a request still running is answered 503. Keep it above
    /// the database's acquire and statement timeouts so those report first, with detail.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// On SIGTERM, how long in-flight requests may take to finish before the server
    /// stops anyway.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// A client must send a whole request head (request line and headers) within this
    /// time of the connection opening (its first request) or of the head's first byte
    /// (a later request on a keep-alive connection), or the connection is closed
    /// unanswered. Too high lets slow clients hold connections (and file descriptors);
    /// too low cuts off clients on slow links.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection is closed when this long passes after an answer without
    /// a byte of the next request. Too high keeps idle sockets open; too low makes
    /// clients reconnect more often.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// A client that accepts no byte of its answer for this long is disconnected (the
    /// whole-request deadline ends when the answer is built, not when it is read). Too
    /// high lets a client that stopped reading hold its connection; too low cuts off
    /// clients that pause on a slow link.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Most client connections open at once. Past it a new connection is closed at once,
    /// before it is read, so that file descriptors and memory stay bounded. Lowered at
    /// start to fit the process's file-descriptor limit (logged). The `metrics_listen`
    /// listener has a small cap of its own.
    pub max_connections: usize,
    /// How long a listing's `total`, and a stats answer, is reused for the same filters
    /// when this instance wrote nothing since (counting costs a scan). Other instances'
    /// writes show within it. Stats are read from the replica when there is one, so a
    /// stats answer can also be as old as the replica's lag. `0s` computes on every
    /// request.
    #[serde(with = "humantime_serde")]
    pub total_cache_ttl: Duration,
    /// Distinct filters whose totals are remembered, and as many stats answers (filters
    /// are user input: more costs memory, fewer recounts more often under varied
    /// traffic).
    pub total_cache_max_entries: usize,
    /// How long the serialised first page of a listing (no cursor) is served again to
    /// identical requests of the same tier, unless this instance wrote since. Other
    /// instances' writes show within it; too high serves a stale first page that long,
    /// too low rebuilds the page (a query and a serialisation) more often. `0s` turns it
    /// off.
    #[serde(with = "humantime_serde")]
    pub page_cache_ttl: Duration,
    /// Most first pages kept at once.
    pub page_cache_max_entries: usize,
    /// Most bytes of page bodies (and their keys) kept at once (a page of 500 incidents
    /// is about 160 KB).
    pub page_cache_max_bytes: usize,
    /// How long a verified API key is taken as valid without asking the database (every
    /// authenticated request did). A key revoked, a user disabled or a tier changed by
    /// another process (`kamiyo key revoke`) takes effect within it; through this
    /// process, at once. `0s` asks the database on every request.
    #[serde(with = "humantime_serde")]
    pub auth_cache_ttl: Duration,
    /// Most verified keys remembered at once.
    pub auth_cache_max_entries: usize,
    /// `GET /api/sources` rates each source's fetches over this rolling window (a source
    /// failing now shows within it). Longer smooths a brief outage away, shorter forgets
    /// sooner. At most `source_fetch_retention`.
    #[serde(with = "humantime_serde")]
    pub source_health_window: Duration,
    /// How long fetch outcomes are kept: recording one (each `kamiyo import`) deletes
    /// that source's outcomes older than this.
    #[serde(with = "humantime_serde")]
    pub source_fetch_retention: Duration,
    /// Bearer token for write endpoints (`POST /api/exploits`); unset turns writes off.
    /// At least `MIN_TOKEN_CHARS` characters. Never shown: `kamiyo config` prints `***`.
    pub admin_token: Option<BearerToken>,
    /// Header holding the client address when behind a trusted proxy (e.g.
    /// `x-forwarded-for`); unset: the peer address identifies anonymous callers.
    pub trusted_proxy_header: Option<String>,
    /// How many trusted proxies append to `trusted_proxy_header`: the client address is
    /// the entry this many places from the right (proxies append on the right; whatever
    /// is further left was written by the client). An entry that is not an IP address,
    /// or a header with fewer entries, falls back to the peer address.
    pub trusted_proxy_hops: usize,
    /// Failed authentications (a wrong, revoked or malformed key) allowed per client
    /// address per minute (a bucket of this size refilling over a minute); past it the
    /// address gets 429 without a key lookup, except for keys the database has verified
    /// before. Keys are random, so a legitimate client needs very few.
    pub auth_failures_per_minute: u32,
    /// After the session that listens for account changes made by other processes (a key
    /// revoked, a user disabled, a tier changed: PostgreSQL only) ends or cannot be
    /// opened, how long before listening again. Meanwhile such changes apply within
    /// `auth_cache_ttl`.
    #[serde(with = "humantime_serde")]
    pub auth_relisten_after: Duration,
    /// Most callers (keys and addresses) the rate limiter remembers; the least recently
    /// seen is forgotten first (about 250 bytes each). A forgotten caller starts again
    /// with full buckets, so keep it well above the number of callers active per day.
    pub rate_limit_max_callers: usize,
    /// Bearer token that may read `/metrics` and `/api/metrics/*` (as may admins); it
    /// grants nothing else. At least `MIN_TOKEN_CHARS` characters. Never shown: `kamiyo config` prints `***`. `/metrics` on
    /// `metrics_listen` needs no token.
    pub metrics_token: Option<BearerToken>,
    /// `/api/health/database` answers from one probe of the database this long, however
    /// many probes arrive; `0s` probes on every request.
    #[serde(with = "humantime_serde")]
    pub health_cache_ttl: Duration,
    /// Most rows one CSV export returns (it walks the listing page by page).
    pub export_max_rows: usize,
    /// When set, `/metrics` is served only on this address (keep it private) and not on
    /// `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `Retry-After` sent with 503 answers.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            retry_after: DEFAULT_RETRY_AFTER,
            metrics_listen: None,
            admin_token: None,
            trusted_proxy_header: None,
            trusted_proxy_hops: DEFAULT_TRUSTED_PROXY_HOPS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            rate_limit_max_callers: DEFAULT_RATE_LIMIT_MAX_CALLERS,
            auth_relisten_after: DEFAULT_AUTH_RELISTEN_AFTER,
            metrics_token: None,
            health_cache_ttl: DEFAULT_HEALTH_CACHE_TTL,
            export_max_rows: DEFAULT_EXPORT_MAX_ROWS,
            total_cache_ttl: kamiyo_store::incidents::DEFAULT_TOTAL_CACHE_TTL,
            total_cache_max_entries: kamiyo_store::incidents::DEFAULT_TOTAL_CACHE_MAX_ENTRIES,
            page_cache_ttl: DEFAULT_PAGE_CACHE_TTL,
            page_cache_max_entries: DEFAULT_PAGE_CACHE_MAX_ENTRIES,
            page_cache_max_bytes: DEFAULT_PAGE_CACHE_MAX_BYTES,
            source_health_window: kamiyo_store::DEFAULT_SOURCE_HEALTH_WINDOW,
            source_fetch_retention: kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION,
            auth_cache_ttl: kamiyo_store::accounts::DEFAULT_AUTH_CACHE_TTL,
            auth_cache_max_entries: kamiyo_store::accounts::DEFAULT_AUTH_CACHE_MAX_ENTRIES,
        }
    }
}

impl ServerConfig {
    /// Refuses zero deadlines; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in [
            ("request_timeout", self.request_timeout),
            ("drain_timeout", self.drain_timeout),
            ("retry_after", self.retry_after),
            ("header_read_timeout", self.header_read_timeout),
            ("keep_alive_timeout", self.keep_alive_timeout),
            ("write_timeout", self.write_timeout),
            ("source_health_window", self.source_health_window),
            ("source_fetch_retention", self.source_fetch_retention),
            ("auth_relisten_after", self.auth_relisten_after),
        ] {
            if value.is_zero() {
                return Err(format!("server.{field} must be greater than zero"));
            }
        }
        if self.source_health_window > self.source_fetch_retention {
            return Err(format!(
                "server.source_health_window ({}) must not exceed server.source_fetch_retention ({}): the window would reach past the kept fetches",
                humantime::format_duration(self.source_health_window),
                humantime::format_duration(self.source_fetch_retention)
            ));
        }
        if self.auth_cache_ttl > MAX_AUTH_CACHE_TTL {
            return Err(format!(
                "server.auth_cache_ttl ({}) must be at most {}: a key revoked by the command line keeps working that long",
                humantime::format_duration(self.auth_cache_ttl),
                humantime::format_duration(MAX_AUTH_CACHE_TTL)
            ));
        }
        for (field, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("keep_alive_timeout", self.keep_alive_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if value > MAX_CONNECTION_TIMEOUT {
                return Err(format!(
                    "server.{field} ({}) must be at most {}",
                    humantime::format_duration(value),
                    humantime::format_duration(MAX_CONNECTION_TIMEOUT)
                ));
            }
        }
        if self.health_cache_ttl > MAX_HEALTH_CACHE_TTL {
            return Err(format!(
                "server.health_cache_ttl ({}) must be at most {}: probes would miss an outage that long",
                humantime::format_duration(self.health_cache_ttl),
                humantime::format_duration(MAX_HEALTH_CACHE_TTL)
            ));
        }
        for (field, token) in [
            ("admin_token", &self.admin_token),
            ("metrics_token", &self.metrics_token),
        ] {
            if let Some(token) = token {
                let text = secrecy::ExposeSecret::expose_secret(&token.0);
                if text.trim() != text || text.chars().count() < MIN_TOKEN_CHARS {
                    return Err(format!(
                        "server.{field} must be at least {MIN_TOKEN_CHARS} characters without surrounding spaces (e.g. `openssl rand -hex 16`)"
                    ));
                }
            }
        }
        if let Some(name) = &self.trusted_proxy_header {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!(
                    "server.trusted_proxy_header ({name:?}) is not a header name"
                ));
            }
        }
        if self.export_max_rows == 0 {
            return Err("server.export_max_rows must be greater than zero".into());
        }
        for (field, value) in [
            ("body_limit_bytes", self.body_limit_bytes),
            ("total_cache_max_entries", self.total_cache_max_entries),
            ("page_cache_max_entries", self.page_cache_max_entries),
            ("page_cache_max_bytes", self.page_cache_max_bytes),
            ("auth_cache_max_entries", self.auth_cache_max_entries),
            ("max_connections", self.max_connections),
            ("trusted_proxy_hops", self.trusted_proxy_hops),
            ("rate_limit_max_callers", self.rate_limit_max_callers),
            (
                "auth_failures_per_minute",
                self.auth_failures_per_minute as usize,
            ),
        ] {
            if value == 0 {
                return Err(format!("server.{field} must be greater than zero"));
            }
        }
        Ok(())
    }
}

/// A secret that serialises as `***` and prints as `BearerToken(***)`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct BearerToken(pub secrecy::SecretString);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

impl Serialize for BearerToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listen_address_is_loopback_8080() {
        assert_eq!(ServerConfig::default().listen.to_string(), DEFAULT_LISTEN);
        assert!(ServerConfig::default().validate().is_ok());
    }

    #[test]
    fn a_window_past_the_retention_and_a_long_key_cache_are_refused_by_name() {
        let day = Duration::from_secs(24 * 60 * 60);
        let window = ServerConfig {
            source_health_window: 100 * day,
            ..ServerConfig::default()
        };
        let error = window.validate().err().unwrap_or_default();
        assert!(
            error.contains("server.source_health_window")
                && error.contains("source_fetch_retention"),
            "{error}"
        );
        let cache = ServerConfig {
            auth_cache_ttl: day,
            ..ServerConfig::default()
        };
        let error = cache.validate().err().unwrap_or_default();
        assert!(error.contains("server.auth_cache_ttl"), "{error}");
        let token = ServerConfig {
            admin_token: Some(BearerToken("short".to_owned().into())),
            ..ServerConfig::default()
        };
        let error = token.validate().err().unwrap_or_default();
        assert!(error.contains("server.admin_token"), "{error}");
        let header = ServerConfig {
            trusted_proxy_header: Some("x forwarded".into()),
            ..ServerConfig::default()
        };
        let error = header.validate().err().unwrap_or_default();
        assert!(error.contains("server.trusted_proxy_header"), "{error}");
        let probe = ServerConfig {
            health_cache_ttl: 2 * MAX_HEALTH_CACHE_TTL,
            ..ServerConfig::default()
        };
        let error = probe.validate().err().unwrap_or_default();
        assert!(error.contains("server.health_cache_ttl"), "{error}");
        let fine = ServerConfig {
            source_health_window: 90 * day,
            auth_cache_ttl: MAX_AUTH_CACHE_TTL,
            ..ServerConfig::default()
        };
        assert_eq!(fine.validate(), Ok(()));
    }
}
