//! Kamiyo's dashboard: server-rendered pages over the API's own query layer, so that a
//! page and the API can never disagree.
//!
//! - [`app`] is the whole service: the API's router with the pages merged in (behind the
//!   same guard, so identity, tiers and rate limits are the API's), the embedded assets,
//!   and [`gate`] in front (session cookie, CSRF nonce, security headers, HTML errors).
//! - Pages are maud templates, which escape every value they interpolate: incident names
//!   and descriptions come from the internet.
//! - Charts are SVG drawn here ([`chart`]); the one script ([`assets`]) only enhances the
//!   filter form, which works without it.

pub mod assets;
pub mod chart;
pub mod config;
mod ctx;
pub mod explorer;
pub mod format;
pub mod gate;
mod layout;
mod pages;
pub mod session;
pub mod snapshot;

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::{middleware, Router};
use kamiyo_api::AppState;

pub use config::WebConfig;

/// What every page can reach besides the API's state.
pub struct Dashboard {
    pub config: WebConfig,
    pub signer: session::Signer,
    pub assets: assets::Assets,
    /// `server.trusted_proxy_header` is set: `X-Forwarded-Proto` may be believed.
    pub behind_proxy: bool,
    /// The service's clock (the database's): session expiry is read from it, as every
    /// other deadline is.
    pub clock: kamiyo_db::Clock,
    /// The overview's figures, rebuilt in the background (`snapshot`).
    pub(crate) overview: snapshot::Snapshots<pages::OverviewKey, pages::Overview>,
    /// The sources page's reports, likewise.
    pub(crate) source_health:
        snapshot::Snapshots<pages::SourcesKey, Vec<kamiyo_store::SourceReport>>,
}

impl Dashboard {
    pub fn new(config: WebConfig, behind_proxy: bool, clock: kamiyo_db::Clock) -> Dashboard {
        if config.secure_cookie == config::SecureCookie::Auto && !behind_proxy {
            tracing::info!(
                "dashboard cookies are marked Secure only for requests made over TLS to this \
                 process; behind a TLS-terminating proxy set server.trusted_proxy_header, or \
                 web.secure_cookie = \"always\""
            );
        }
        let (refresh, stale, entries) = (
            config.overview_refresh,
            config.overview_max_stale,
            config.overview_max_entries,
        );
        Dashboard {
            signer: session::Signer::new(&config),
            overview: snapshot::Snapshots::new(refresh, stale, entries, clock.clone()),
            source_health: snapshot::Snapshots::new(refresh, stale, entries, clock.clone()),
            config,
            assets: assets::Assets::new(),
            behind_proxy,
            clock,
        }
    }
}

/// The API and the dashboard in one router, for `kamiyo serve`.
pub fn app(state: AppState, config: WebConfig) -> Router {
    let dashboard = Arc::new(Dashboard::new(
        config,
        state.server.trusted_proxy_header.is_some(),
        state.db.clock().clone(),
    ));
    let api = kamiyo_api::router_with(state, pages::routes(Arc::clone(&dashboard)));
    let assets = Arc::clone(&dashboard);
    Router::new()
        // Outside the guard: a page's stylesheet and script must not spend the
        // visitor's rate limit, and are the same for everyone.
        .route(
            "/assets/{file}",
            get(move |file: Path<String>| {
                let assets = Arc::clone(&assets);
                async move { assets.assets.serve(file) }
            }),
        )
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(dashboard, gate::front))
}

/// Every page path, as routed (`{id}` for parameters): tests walk them.
pub fn page_paths() -> Vec<&'static str> {
    pages::PATHS.to_vec()
}
