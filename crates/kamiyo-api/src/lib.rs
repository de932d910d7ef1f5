//! Kamiyo's HTTP API. It translates between HTTP and the store; it holds no SQL.
//!
//! - [`router`] builds the whole application from an [`AppState`]; tests call it with
//!   `oneshot`, the binary serves it with [`serve`].
//! - [`error`]: one error type, one JSON envelope.

mod auth;
pub mod config;
mod curation;
pub mod error;
pub mod exploits;
pub mod export;
pub mod health;
mod health_cache;
mod http_metrics;
mod ingest;
mod me;
mod metrics;
pub mod openapi;
mod page_cache;
pub mod params;
mod query_schema;
mod ratelimit;
pub mod request_limits;
mod serve;
pub mod stats;
pub mod submissions;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use kamiyo_db::Database;
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::{IncidentStore, SourceStore};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use auth::{authenticate_key, Caller};
pub use config::ServerConfig;
pub use error::ApiError;
pub use http_metrics::HttpMetrics;
pub use page_cache::{PageCache, PageKey};
pub use serve::{serve, ConnectionLimits, ConnectionStats};

/// What every handler can reach, behind one `Arc`.
///
/// Axum clones the state for every extractor and middleware that takes it, several times
/// a request. Cloned field by field, that was a score of reference-count updates (each
/// store holds its own `Database` handle, itself a few `Arc`s) on cache lines both cores
/// fight over, and dropping them as many again: about a quarter of the server's CPU
/// under the listing benchmark (BENCHMARKS.md, section 6). One `Arc` makes a clone one
/// increment; the fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind an [`AppState`].
pub struct Services {
    pub db: Database,
    pub incidents: IncidentStore,
    /// Source health (`/api/sources`).
    pub sources: SourceStore,
    pub accounts: AccountStore,
    /// Every request's limits (`rate_limit.*`): this instance's buckets, or buckets
    /// shared by every instance.
    pub rate_limiter: Arc<request_limits::RequestLimiter>,
    /// Failed authentications per client address, in buckets of their own
    /// (`server.auth_failures_per_minute`).
    pub auth_failures: Arc<ratelimit::RateLimiter>,
    pub server: Arc<ServerConfig>,
    pub http_metrics: Arc<HttpMetrics>,
    /// Serialised first pages of the listing (see `page_cache`).
    pub pages: Arc<PageCache>,
    /// The database probe's shared answer (see `health`).
    pub health: Arc<health_cache::HealthCache>,
    /// Counts of the connections [`serve`] holds, when it is given this instance.
    pub connections: Arc<ConnectionStats>,
    /// The sources this instance fetches, for `/api/health` (empty: none).
    pub schedule: Vec<kamiyo_store::sources::SourceSchedule>,
    /// When this instance started: a source never fetched is stale only after three of
    /// its intervals from here.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// This instance's fetches, for `/metrics` (its scheduler writes them).
    pub source_metrics: Arc<kamiyo_store::sources::SourceMetrics>,
    /// Alert subscriptions and their deliveries.
    pub alerts: kamiyo_store::AlertStore,
    /// `alerts.*`: the address guard and delivery settings a test send uses.
    pub alerts_config: Arc<kamiyo_alerts::config::AlertsConfig>,
    /// This instance's deliveries, for `/metrics` (its alert service counts them).
    pub alert_metrics: Arc<kamiyo_alerts::metrics::AlertMetrics>,
    /// `tiers.*`: what anonymous callers and each tier may do (the auth guard resolves a
    /// caller's row once per request).
    pub tiers: kamiyo_domain::TierTable,
    /// Community submissions, their reviews and reputation.
    pub community: kamiyo_store::community::CommunityStore,
    /// `community.*`: points, caps, thresholds, bounties.
    pub community_rules: Arc<kamiyo_domain::ReputationRules>,
}

impl AppState {
    /// The time by the service's clock: what tier windows and stats windows are
    /// measured from.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.db.clock().now_utc()
    }

    /// Everything that decides by elapsed time (caches, rate limits) reads the
    /// database's clock ([`Database::clock`]): tests give it a manual one.
    pub fn new(db: Database, server: ServerConfig) -> Self {
        Self::with_sources(db, server, Vec::new())
    }

    /// [`AppState::new`] for an instance that fetches `schedule`'s sources.
    pub fn with_sources(
        db: Database,
        server: ServerConfig,
        schedule: Vec<kamiyo_store::sources::SourceSchedule>,
    ) -> Self {
        let limiter = request_limits::RequestLimiter::memory(
            server.rate_limit_max_callers,
            db.clock().clone(),
        );
        Self::build(
            db,
            server,
            schedule,
            kamiyo_alerts::config::AlertsConfig::default(),
            kamiyo_domain::TierTable::default(),
            kamiyo_domain::ReputationRules::default(),
            limiter,
        )
    }

    /// [`AppState::with_sources`] with the `alerts.*` settings, the tier table
    /// (`tiers.*`; the shorter constructors use the default table), the community rules
    /// and the request limiter (`rate_limit.*`, [`request_limits::RequestLimiter::new`];
    /// the shorter constructors keep limits in this process).
    pub fn build(
        db: Database,
        server: ServerConfig,
        schedule: Vec<kamiyo_store::sources::SourceSchedule>,
        alerts: kamiyo_alerts::config::AlertsConfig,
        tiers: kamiyo_domain::TierTable,
        community: kamiyo_domain::ReputationRules,
        limiter: request_limits::RequestLimiter,
    ) -> Self {
        let clock = db.clock().clone();
        let clock_now = clock.now_utc();
        if clock.is_manual() {
            tracing::warn!("time is read from a manual clock: it moves only when advanced");
        }
        let incidents = IncidentStore::with_total_cache(
            db.clone(),
            server.total_cache_ttl,
            server.total_cache_max_entries,
        );
        let alert_store = kamiyo_store::AlertStore::new(db.clone());
        let community_store =
            kamiyo_store::community::CommunityStore::new(db.clone(), incidents.clone());
        AppState(Arc::new(Services {
            pages: Arc::new(PageCache::new(
                server.page_cache_ttl,
                server.page_cache_max_entries,
                server.page_cache_max_bytes,
                clock.clone(),
                incidents.writes().clone(),
            )),
            incidents,
            sources: SourceStore::new(db.clone()),
            accounts: AccountStore::with_principal_cache(
                db.clone(),
                server.auth_cache_ttl,
                server.auth_cache_max_entries,
            ),
            rate_limiter: Arc::new(limiter),
            auth_failures: Arc::new(ratelimit::RateLimiter::new(
                server.rate_limit_max_callers,
                clock.clone(),
            )),
            health: Arc::new(health_cache::HealthCache::new(
                server.health_cache_ttl,
                clock,
            )),
            db,
            server: Arc::new(server),
            http_metrics: Arc::new(HttpMetrics::default()),
            connections: Arc::new(ConnectionStats::default()),
            started_at: clock_now,
            schedule,
            source_metrics: Arc::default(),
            alerts: alert_store,
            alerts_config: Arc::new(alerts),
            alert_metrics: Arc::default(),
            tiers,
            community: community_store,
            community_rules: Arc::new(community),
        }))
    }
}

/// The whole API. `/metrics` is part of it unless `server.metrics_listen` moves it to a
/// listener of its own ([`metrics_router`]).
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] with `pages` besides the API's routes, behind the same guard (identity,
/// rate limits), deadline, metrics and tracing: the dashboard's pages are served this way,
/// so a page and the API can never apply different rules to one caller.
pub fn router_with(state: AppState, pages: Router<AppState>) -> Router {
    let request_timeout = state.server.request_timeout;
    let body_limit = state.server.body_limit_bytes;
    let mut routes = api_routes().router.merge(pages);
    if state.server.metrics_listen.is_none() {
        routes = routes.route("/metrics", get(metrics::prometheus));
    }
    routes
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(middleware::from_fn_with_state(request_timeout, deadline))
        .layer(middleware::from_fn_with_state(
            state.server.retry_after,
            error::stamp_retry_after,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.http_metrics),
            http_metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The router's paths and the list of them, built side by side so that the list is
/// the router's own (tests enumerate it: a route added without its visibility check
/// fails them).
struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn route(mut self, path: &'static str, handler: MethodRouter<AppState>) -> Routes {
        self.router = self.router.route(path, handler);
        self.paths.push(path);
        self
    }
}

/// Every route but `/metrics` (which `server.metrics_listen` may move elsewhere).
fn api_routes() -> Routes {
    Routes {
        router: Router::new(),
        paths: Vec::new(),
    }
    .route("/healthz", get(health::liveness))
    .route("/api/health", get(health::service))
    .route("/api/health/database", get(health::database))
    .route("/api/metrics/database", get(metrics::database))
    .route("/api/metrics/queries", get(metrics::queries))
    .route("/api/exploits", get(exploits::list).post(ingest::create))
    .route("/api/exploits/{id}", get(exploits::get))
    .route("/api/admin/incidents/merge", post(curation::merge))
    .route("/api/admin/incidents/{id}/split", post(curation::split))
    .route(
        "/api/admin/aliases",
        get(curation::list_aliases).post(curation::add_alias),
    )
    .route("/api/admin/aliases/{alias}", delete(curation::remove_alias))
    .route("/api/review/candidates", get(curation::candidates))
    .route("/api/exploits/tx/{hash}", get(exploits::by_tx_hash))
    .route("/api/exploits.csv", get(export::csv))
    .route("/api/feed.atom", get(export::atom))
    .route("/api/stats", get(stats::summary))
    .route("/api/stats/by-chain", get(stats::by_chain))
    .route("/api/stats/by-attack-type", get(stats::by_attack_type))
    .route("/api/stats/by-month", get(stats::by_month))
    .route("/api/chains", get(stats::chains))
    .route("/api/sources", get(stats::sources))
    .route("/api/me", get(me::me))
    .route(
        "/api/subscriptions",
        get(subscriptions::list).post(subscriptions::create),
    )
    .route(
        "/api/subscriptions/{id}",
        get(subscriptions::get)
            .patch(subscriptions::update)
            .delete(subscriptions::delete),
    )
    .route(
        "/api/subscriptions/{id}/rotate-secret",
        post(subscriptions::rotate_secret),
    )
    .route("/api/subscriptions/{id}/test", post(subscriptions::test))
    .route(
        "/api/subscriptions/{id}/deliveries",
        get(subscriptions::deliveries),
    )
    .route(
        "/api/subscriptions/{id}/replay",
        post(subscriptions::replay),
    )
    .route("/api/admin/alerts/audit", get(subscriptions::audit))
    .route("/api/submissions", post(submissions::create))
    .route("/api/submissions/{id}", get(submissions::get))
    .route("/api/review/submissions", get(submissions::queue))
    .route("/api/review/submissions/{id}", post(submissions::review))
    .route("/api/admin/bounties", get(submissions::bounties))
    .route("/api/admin/bounties/{id}/paid", post(submissions::pay))
    .route("/api/openapi.json", get(openapi::document))
}

/// Every path [`router`] serves, as written in the router (`{id}` for parameters).
pub fn route_paths() -> Vec<&'static str> {
    let mut paths = api_routes().paths;
    paths.push("/metrics");
    paths
}

/// `/metrics` alone, for a private listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::prometheus))
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(
            state.server.retry_after,
            error::stamp_retry_after,
        ))
        .with_state(state)
}

/// Ends any request that outlives the configured deadline with the JSON envelope.
/// A 503 like every other (`Retry-After` stamped by `error::stamp_retry_after`).
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(limit).into_response(),
    }
}
