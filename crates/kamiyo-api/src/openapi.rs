//! The OpenAPI 3.1 document, served at `/api/openapi.json`: generated from the handlers'
//! own annotations and types, then completed here with what every operation of one kind
//! shares (see [`Access`]): security, the 401/403/429/500/503 answers and their headers.
//!
//! The document states what the server does, so a client or a fuzzer (schemathesis, run
//! by the test command) can hold the server to it: tests/openapi.rs checks every
//! operation's statuses and enums against the router, and crates/kamiyo/tests/
//! schemathesis.rs fuzzes a running server with it.

use axum::Json;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::error::{ApiError, Result};

/// Who may call an operation, which decides its security and shared answers. Mirrors the
/// authentication middleware (`auth::guard`): every path authenticates and is
/// rate-limited except those named here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// `/healthz`: the process answers, from memory alone. No authentication (the
    /// `Authorization` header is ignored), no rate limit, nothing that can fail.
    Liveness,
    /// `/api/health/database`, for probes: no authentication, no rate limit.
    Probe,
    /// Anyone; a key, when sent, must be valid and sets the caller's tier.
    Public,
    /// A valid API key or the admin token.
    Key,
    /// An admin: a key of a user with the admin role, or `server.admin_token` (and, for
    /// `/api/review/submissions`, a reviewer).
    Admin,
    /// An admin, or `server.metrics_token`.
    Metrics,
}

impl Access {
    fn of(method: &str, path: &str) -> Access {
        match (method, path) {
            (_, "/healthz") => Access::Liveness,
            (_, "/api/health/database") => Access::Probe,
            (_, "/metrics") => Access::Metrics,
            (_, p) if p.starts_with("/api/metrics/") => Access::Metrics,
            ("post", "/api/exploits") => Access::Admin,
            (_, p) if p.starts_with("/api/admin/") || p.starts_with("/api/review/") => {
                Access::Admin
            }
            (_, "/api/me") => Access::Key,
            (_, p) if p.starts_with("/api/subscriptions") => Access::Key,
            (_, p) if p.starts_with("/api/submissions") => Access::Key,
            _ => Access::Public,
        }
    }

    /// Whether a request can be refused for its credentials (a wrong key whatever the
    /// operation, none where one is required), and so also for too many failed ones.
    fn authenticates(self) -> bool {
        !matches!(self, Access::Liveness | Access::Probe)
    }

    /// Whether answers carry the caller's `X-RateLimit-*` counters.
    fn counts_requests(self) -> bool {
        matches!(self, Access::Public | Access::Key | Access::Admin)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kamiyo",
        description = "Exploit-intelligence API: confirmed crypto and DeFi exploit incidents, deduplicated across sources.\n\nErrors share one JSON envelope, `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`, whose message names the parameter or field at fault. A query parameter the operation does not know, a repeated one, a value with control characters and an empty value are 400, except that an empty free-text filter (`chain`, `protocol`, `q`: marked `allowEmptyValue`) is the same as leaving it out."
    ),
    paths(
        crate::exploits::list,
        crate::exploits::get,
        crate::exploits::by_tx_hash,
        crate::ingest::create,
        crate::curation::merge,
        crate::curation::split,
        crate::curation::list_aliases,
        crate::curation::add_alias,
        crate::curation::remove_alias,
        crate::curation::candidates,
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
        crate::health::service,
        crate::metrics::database,
        crate::metrics::queries,
        crate::metrics::prometheus,
        crate::me::me,
        crate::subscriptions::create,
        crate::subscriptions::list,
        crate::subscriptions::get,
        crate::subscriptions::update,
        crate::subscriptions::delete,
        crate::subscriptions::rotate_secret,
        crate::subscriptions::test,
        crate::subscriptions::deliveries,
        crate::subscriptions::replay,
        crate::subscriptions::audit,
        crate::submissions::create,
        crate::submissions::get,
        crate::submissions::queue,
        crate::submissions::review,
        crate::submissions::bounties,
        crate::submissions::pay,
    ),
    components(schemas(
        crate::error::ErrorEnvelope,
        crate::error::ErrorDetail,
        kamiyo_domain::AttackType,
        kamiyo_domain::AttackClass,
        kamiyo_domain::IncidentStatus,
        // Named by `IncidentInput.tx_hashes`, whose schema is written by hand (its maximum).
        kamiyo_domain::TxHashInput,
        kamiyo_store::incidents::SortKey,
        kamiyo_store::incidents::Order,
        crate::metrics::QueriesSort,
    ))
)]
struct ApiDoc;

/// The whole document as JSON.
pub fn document_json() -> std::result::Result<Value, serde_json::Error> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    complete(&mut doc);
    Ok(doc)
}

pub async fn document() -> Result<Json<Value>> {
    document_json()
        .map(Json)
        .map_err(|e| ApiError::Unexpected(format!("serialising the OpenAPI document: {e}")))
}

/// Adds what utoipa cannot say from the annotations: header objects' `required` and a
/// parameter's `allowEmptyValue` have no field in its types, and the answers shared by
/// every operation of an [`Access`] kind are written once, here.
fn complete(doc: &mut Value) {
    if let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) {
        components.insert("securitySchemes".into(), security_schemes());
        components.insert("responses".into(), shared_responses());
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            if let Some(operation) = operation.as_object_mut() {
                complete_operation(Access::of(method, path), operation);
            }
        }
    }
}

fn complete_operation(access: Access, operation: &mut Map<String, Value>) {
    if let Some(security) = security(access) {
        operation.insert("security".into(), security);
    }
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut().filter_map(Value::as_object_mut) {
            let free_text = parameter.get("in") == Some(&json!("query"))
                && parameter
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| crate::params::FREE_TEXT.contains(&name));
            if free_text {
                parameter.insert("allowEmptyValue".into(), json!(true));
            }
        }
    }
    let Some(responses) = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    if access.counts_requests() {
        for (status, response) in responses.iter_mut() {
            if let Some(headers) = status
                .starts_with('2')
                .then(|| headers_of(response))
                .flatten()
            {
                headers.extend(rate_limit_headers(true));
            }
        }
    }
    // Every 503 says when to come back, whoever answers it (the shared one says so too).
    if let Some(headers) = responses.get_mut("503").and_then(headers_of) {
        headers.insert("Retry-After".into(), retry_after());
    }
    let mut shared = Vec::new();
    if access.authenticates() {
        shared.extend([("401", "Unauthorized"), ("429", "TooManyRequests")]);
    }
    if matches!(access, Access::Admin | Access::Metrics) {
        shared.push(("403", "Forbidden"));
    }
    if access != Access::Liveness {
        shared.push(("500", "InternalError"));
    }
    // The probe answers its own 503 (annotated on it).
    if access.authenticates() {
        shared.push(("503", "Unavailable"));
    }
    for (status, name) in shared {
        responses
            .entry(status)
            .or_insert_with(|| json!({ "$ref": format!("#/components/responses/{name}") }));
    }
}

/// The headers of an inline response object, created empty; `None` for a `$ref`.
fn headers_of(response: &mut Value) -> Option<&mut Map<String, Value>> {
    let response = response.as_object_mut()?;
    if response.contains_key("$ref") {
        return None;
    }
    response
        .entry("headers")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn security(access: Access) -> Option<Value> {
    Some(match access {
        Access::Liveness | Access::Probe => return None,
        // `{}`: no credentials at all is one of the accepted ways.
        Access::Public => json!([{}, { "api_key": [] }, { "admin_token": [] }]),
        Access::Key => json!([{ "api_key": [] }, { "admin_token": [] }]),
        Access::Admin => json!([{ "admin_token": [] }, { "api_key": [] }]),
        Access::Metrics => {
            json!([{ "admin_token": [] }, { "metrics_token": [] }, { "api_key": [] }])
        }
    })
}

fn security_schemes() -> Value {
    let bearer = |description: &str| json!({ "type": "http", "scheme": "bearer", "description": description });
    json!({
        "api_key": bearer("A user's API key (`kamiyo key create`), as `Authorization: Bearer <key>`. Its user's tier sets the rate limits and what is visible; an admin user's key may also write and read the metrics. A wrong, revoked or malformed key is refused (401), never taken for an anonymous call."),
        "admin_token": bearer("`server.admin_token`: an admin with the enterprise tier's limits."),
        "metrics_token": bearer("`server.metrics_token`: reads the metrics endpoints only."),
    })
}

fn header(description: &str, schema: Value, required: bool) -> Value {
    json!({ "description": description, "required": required, "schema": schema })
}

fn retry_after() -> Value {
    header(
        "Seconds to wait before trying again.",
        json!({ "type": "integer", "minimum": 1 }),
        true,
    )
}

fn rate_limit_headers(required: bool) -> Map<String, Value> {
    let count = json!({ "type": "integer", "minimum": 0 });
    let mut headers = Map::new();
    headers.insert(
        "X-RateLimit-Limit".into(),
        header(
            "Requests this caller may make per minute.",
            count.clone(),
            required,
        ),
    );
    headers.insert(
        "X-RateLimit-Remaining".into(),
        header(
            "Requests left in the current minute.",
            count.clone(),
            required,
        ),
    );
    headers.insert(
        "X-RateLimit-Reset".into(),
        header(
            "Seconds until the minute's allowance is whole again.",
            count,
            required,
        ),
    );
    headers
}

/// The answers every operation of a kind shares.
fn shared_responses() -> Value {
    let envelope = json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ErrorEnvelope" } } });
    let mut too_many = Map::new();
    too_many.insert("Retry-After".into(), retry_after());
    // Absent when the budget of failed authentications refused the request: no caller
    // was identified, so there is no caller's allowance to count.
    too_many.extend(rate_limit_headers(false));
    json!({
        "Unauthorized": {
            "description": "A wrong, revoked or malformed key (whatever the operation), or no key where one is required.",
            "headers": {
                "WWW-Authenticate": header(
                    "`Bearer`: how to authenticate.",
                    json!({ "type": "string", "pattern": "^Bearer" }),
                    true,
                ),
            },
            "content": envelope,
        },
        "Forbidden": {
            "description": "The key is valid but its user is not an admin (or writes are off: no admin is configured).",
            "content": envelope,
        },
        "TooManyRequests": {
            "description": "Too many requests from this caller in the current minute, hour or day, or too many failed authentications from this address (`server.auth_failures_per_minute`).",
            "headers": Value::Object(too_many),
            "content": envelope,
        },
        "InternalError": {
            "description": "An internal error; its details are logged, never sent.",
            "content": envelope,
        },
        "Unavailable": {
            "description": "The database is unavailable, or the request outlived `server.request_timeout`.",
            "headers": { "Retry-After": retry_after() },
            "content": envelope,
        },
    })
}
