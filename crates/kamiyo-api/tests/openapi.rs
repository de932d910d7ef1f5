//! The OpenAPI document matches the server: every documented operation reaches a route,
//! the listing's documented parameters are exactly the ones it accepts, every operation
//! documents each status it can answer, and documented enums, bounds and empty values
//! are what the router accepts. (crates/kamiyo/tests/schemathesis.rs fuzzes a running
//! server with the same document.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use axum::http::{HeaderMap, Method, StatusCode};
use common::TestApp;
use kamiyo_domain::Tier;
use kamiyo_store::accounts::Role;
use kamiyo_testkit::Client;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_parameters_match() {
    let t = TestApp::builder()
        .sqlite()
        .user(Tier::Enterprise, Role::User)
        .start()
        .await;
    let answer = t.get("/api/openapi.json").await;
    assert_eq!(answer.status, 200);
    let doc = answer.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 16, "{}", paths.len());
    for (path, operations) in paths {
        for (method, _) in operations.as_object().unwrap() {
            let uri = path.replace("{id}", "1").replace("{hash}", "0xabc");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let text = t.call(method.clone(), &uri).await.text;
            assert!(
                !text.contains("no route for this path"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    let documented: Vec<&str> = paths["/api/exploits"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in &documented {
        let text = t.get(&format!("/api/exploits?{name}=")).await.text;
        assert!(
            !text.contains("unknown parameter"),
            "documented parameter {name} is refused as unknown: {text}"
        );
    }
    let undocumented = t.get("/api/exploits?nonsense=1").await;
    assert_eq!(undocumented.status, 400);
    assert!(doc["components"]["schemas"]["Incident"].is_object());
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
}

const ADMIN: &str = "openapi-test-admin-token-0123456789abcdef";

/// The router on a fresh SQLite database with an admin token, and the app that owns the
/// database (it must outlive the client).
async fn admin_app() -> (Client, TestApp) {
    let t = TestApp::builder().sqlite().admin_token(ADMIN).start().await;
    (t.client.clone(), t)
}

/// Status, headers and body of `method uri` as the admin.
async fn call(app: &Client, method: &str, uri: &str) -> (StatusCode, HeaderMap, String) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let answer = app.request(method, uri).bearer(ADMIN).await;
    (answer.status, answer.headers, answer.text)
}

/// `(path, method, operation)` of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    all
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling reference {pointer}")),
        None => value,
    }
}

fn sample(path: &str) -> String {
    path.replace("{id}", "1").replace("{hash}", "0xabc")
}

fn query_parameters(operation: &Value) -> Vec<Value> {
    operation["parameters"]
        .as_array()
        .map(|all| all.iter().filter(|p| p["in"] == "query").cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_documents_each_status_it_can_answer_with_its_headers() {
    let doc = kamiyo_api::openapi::document_json().unwrap();
    let (app, _dir) = admin_app().await;
    for (path, method, operation) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        let responses = operation["responses"].as_object().unwrap();
        let documents = |status: &str| responses.contains_key(status);
        let header_required = |status: &str, header: &str| {
            let response = resolve(&doc, &responses[status]);
            response["headers"][header]["required"] == true
        };
        if path == "/healthz" {
            assert_eq!(
                responses.keys().collect::<Vec<_>>(),
                ["200"],
                "{name} answers from the process alone"
            );
            continue;
        }
        for status in ["500", "503"] {
            assert!(documents(status), "{name} does not document {status}");
        }
        assert!(
            header_required("503", "Retry-After"),
            "{name}: 503 without Retry-After"
        );
        let takes_parameters = operation["parameters"]
            .as_array()
            .is_some_and(|p| !p.is_empty());
        assert!(
            !takes_parameters || documents("400"),
            "{name} takes parameters but does not document 400"
        );
        // An unknown query parameter, or an empty body: whatever the server refuses as
        // malformed must be documented.
        let (status, _, body) = call(&app, &method, &format!("{}?nonsense=1", sample(&path))).await;
        if status == StatusCode::BAD_REQUEST {
            assert!(documents("400"), "{name} answers 400 undocumented: {body}");
        }
        if path == "/api/health/database" {
            assert!(
                !documents("401") && operation.get("security").is_none(),
                "{name} ignores credentials, for probes"
            );
            continue;
        }
        for status in ["401", "429"] {
            assert!(documents(status), "{name} does not document {status}");
        }
        assert!(header_required("401", "WWW-Authenticate"), "{name}: 401");
        assert!(header_required("429", "Retry-After"), "{name}: 429");
        assert!(
            operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty()),
            "{name} authenticates but documents no security"
        );
        let admin_only = path.starts_with("/api/metrics/")
            || path == "/metrics"
            || path.starts_with("/api/admin/")
            || path.starts_with("/api/review/")
            || (method == "post" && path == "/api/exploits");
        // Submitting is closed to a user whose reputation is below zero (docs/COMMUNITY.md).
        let closed_to_some = method == "post" && path == "/api/submissions";
        assert_eq!(
            documents("403"),
            admin_only || closed_to_some,
            "{name}: 403 is for a valid key without the admin role"
        );
        // Rate-limited reads stamp the caller's counters on their answers.
        let rate_limited = !path.starts_with("/api/metrics/") && path != "/metrics";
        if rate_limited && method == "get" {
            let ok = responses
                .iter()
                .find(|(status, _)| status.starts_with('2'))
                .map(|(_, response)| response)
                .unwrap();
            assert_eq!(
                ok["headers"]["X-RateLimit-Remaining"]["required"], true,
                "{name}"
            );
            let (status, headers, body) = call(&app, &method, &sample(&path)).await;
            if status.is_success() {
                for header in [
                    "x-ratelimit-limit",
                    "x-ratelimit-remaining",
                    "x-ratelimit-reset",
                ] {
                    assert!(headers.contains_key(header), "{name}: no {header}: {body}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_enums_are_exactly_the_values_the_server_accepts() {
    let doc = kamiyo_api::openapi::document_json().unwrap();
    let (app, _dir) = admin_app().await;
    let mut checked = Vec::new();
    for (path, method, operation) in operations(&doc) {
        for parameter in query_parameters(&operation) {
            let name = parameter["name"].as_str().unwrap();
            let Some(values) = resolve(&doc, &parameter["schema"])["enum"].as_array() else {
                continue;
            };
            let uri = |value: &str| format!("{}?{name}={value}", sample(&path));
            for value in values {
                let value = value.as_str().unwrap();
                let (status, _, body) = call(&app, &method, &uri(value)).await;
                assert_ne!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "{path}: documented {name}={value} is refused: {body}"
                );
            }
            let (status, _, body) = call(&app, &method, &uri("not_documented")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{name}: {body}");
            assert!(body.contains(&format!("parameter {name}")), "{body}");
            checked.push(format!("{path}?{name}"));
        }
    }
    for expected in [
        "/api/exploits?sort",
        "/api/exploits?order",
        "/api/exploits?status",
        "/api/exploits?attack_class",
        "/api/exploits?attack_type",
        "/api/exploits.csv?sort",
        "/api/feed.atom?status",
        "/api/metrics/queries?sort",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} is not documented as an enum: {checked:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_value_is_refused_by_name_unless_the_document_allows_it() {
    let doc = kamiyo_api::openapi::document_json().unwrap();
    let (app, _dir) = admin_app().await;
    let mut allowed = Vec::new();
    for (path, method, operation) in operations(&doc) {
        for parameter in query_parameters(&operation) {
            let name = parameter["name"].as_str().unwrap();
            let (status, _, body) =
                call(&app, &method, &format!("{}?{name}=", sample(&path))).await;
            if parameter["allowEmptyValue"] == true {
                assert_eq!(status, StatusCode::OK, "{path}?{name}=: {body}");
                allowed.push(name.to_owned());
            } else {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{name}=: {body}");
                assert!(body.contains(&format!("parameter {name}")), "{body}");
            }
        }
    }
    allowed.sort();
    allowed.dedup();
    assert_eq!(allowed, ["chain", "protocol", "q"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_integer_bounds_are_the_server_s_bounds() {
    let doc = kamiyo_api::openapi::document_json().unwrap();
    let (app, _dir) = admin_app().await;
    let mut checked = Vec::new();
    for (path, method, operation) in operations(&doc) {
        for parameter in query_parameters(&operation) {
            let name = parameter["name"].as_str().unwrap();
            let schema = resolve(&doc, &parameter["schema"]);
            if schema["type"] != "integer" {
                continue;
            }
            let (Some(min), Some(max)) = (schema["minimum"].as_i64(), schema["maximum"].as_i64())
            else {
                panic!("{path}?{name} is an integer without bounds: {schema}");
            };
            for (value, inside) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
                let uri = format!("{}?{name}={value}", sample(&path));
                let (status, _, body) = call(&app, &method, &uri).await;
                assert_eq!(status == StatusCode::BAD_REQUEST, !inside, "{uri}: {body}");
            }
            checked.push(format!("{path}?{name}={min}..={max}"));
        }
    }
    for expected in [
        "/api/exploits?limit=1..=500",
        "/api/exploits.csv?limit=1..=500",
        "/api/stats?days=1..=3650",
        "/api/metrics/queries?limit=1..=1000",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected}: {checked:?}"
        );
    }
    let id = &doc["paths"]["/api/exploits/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(
        (id["minimum"].as_i64(), id["format"].as_str()),
        (Some(1), Some("int64"))
    );
    assert_eq!(
        call(&app, "get", "/api/exploits/0").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&app, "get", "/api/exploits/1").await.0,
        StatusCode::NOT_FOUND
    );
    let beyond = format!("/api/exploits/{}", i64::MAX as u64 + 1);
    assert_eq!(call(&app, "get", &beyond).await.0, StatusCode::BAD_REQUEST);
}
