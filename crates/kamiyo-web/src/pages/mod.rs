//! The dashboard's pages, each in its own file.

mod home;
mod incident;
mod incidents;
mod signin;
mod sources;
mod status;
mod subscriptions;
mod table;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use kamiyo_api::AppState;
use maud::Markup;

use crate::Dashboard;

pub(crate) use home::{Overview, OverviewKey};
pub(crate) use sources::SourcesKey;

/// Every page path, as routed.
pub const PATHS: &[&str] = &[
    "/",
    "/incidents",
    "/incidents.csv",
    "/incidents/{id}",
    "/sources",
    "/status",
    "/signin",
    "/signout",
    "/subscriptions",
    "/subscriptions/{id}/delete",
    "/subscriptions/{id}/enabled",
];

pub fn routes(dashboard: Arc<Dashboard>) -> Router<AppState> {
    Router::new()
        .route("/", get(home::show))
        .route("/incidents", get(incidents::show))
        // The API's export under a page path, so that the session cookie applies: the
        // file is what the signed-in visitor's page shows.
        .route("/incidents.csv", get(kamiyo_api::export::csv))
        .route("/incidents/{id}", get(incident::show))
        .route("/sources", get(sources::show))
        .route("/status", get(status::show))
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route(
            "/subscriptions",
            get(subscriptions::show).post(subscriptions::create),
        )
        .route("/subscriptions/{id}/delete", post(subscriptions::delete))
        .route(
            "/subscriptions/{id}/enabled",
            post(subscriptions::set_enabled),
        )
        .layer(Extension(dashboard))
}

/// An HTML answer with `status`.
pub(crate) fn html(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}
