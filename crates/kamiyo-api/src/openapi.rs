//! The OpenAPI 3 document, generated from the handlers' own annotations and types, served
//! at `/api/openapi.json`. A test checks that every documented path answers and every
//! route is documented.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The error envelope every error answer uses.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `bad_parameter`, `not_found`.
    pub code: String,
    pub message: String,
}

/// `{"days": N, "buckets": [...]}`.
#[derive(Serialize, ToSchema)]
pub struct Breakdown {
    pub days: Option<i64>,
    pub buckets: Vec<kamiyo_store::incidents::stats::Bucket>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Kamiyo", description = "Exploit-intelligence API: confirmed crypto and DeFi exploit incidents, deduplicated across sources."),
    paths(
        crate::exploits::list,
        crate::exploits::get,
        crate::exploits::by_tx_hash,
        crate::ingest::create,
        crate::stats::summary,
        crate::stats::by_chain,
        crate::stats::by_attack_type,
        crate::stats::by_month,
        crate::stats::chains,
        crate::stats::sources,
        crate::export::csv,
        crate::export::atom,
        crate::health::liveness,
        crate::health::database,
        crate::metrics::database,
        crate::metrics::queries,
        crate::metrics::prometheus,
        crate::me::me,
    ),
    components(schemas(ErrorBody, ErrorDetail, Breakdown)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
