//! Every answer the server gives is the answer its OpenAPI document describes: for every
//! documented operation, requests that succeed, are malformed, name nothing, carry a
//! wrong key or lack the admin role are sent, and each answer's status must be documented
//! for the operation, its content type must be the documented one, and a JSON body must
//! validate against the documented schema with no property the schema does not declare.
//! (tests/openapi.rs checks statuses, parameters and enums against the router.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use kamiyo_api::ServerConfig;
use kamiyo_db::DbConfig;
use kamiyo_domain::Tier;
use kamiyo_store::accounts::Role;
use kamiyo_testkit::Response;
use serde_json::{json, Map, Value};

const ADMIN: &str = "openapi-responses-admin-token-0123456789";
const TX: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// Each request comes from an address of its own, so that the anonymous and failed
/// authentication budgets (per address) never answer in place of the operation.
struct Caller {
    requests: std::sync::atomic::AtomicU32,
}

impl Caller {
    async fn call(
        &self,
        app: &TestApp,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let n = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let peer = format!(
            "10.{}.{}.{}:40000",
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8
        );
        let mut request = app.call(method, uri).bearer_opt(key).from(&peer);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await
    }
}

fn settings() -> ServerConfig {
    ServerConfig {
        admin_token: common::token(ADMIN),
        ..ServerConfig::default()
    }
}

/// A SQLite app with an admin token and a user's key, holding two incidents.
async fn fixture() -> (TestApp, Caller) {
    let app = TestApp::builder()
        .sqlite()
        .settings(settings())
        .user(Tier::Enterprise, Role::User)
        .start()
        .await;
    let caller = Caller {
        requests: std::sync::atomic::AtomicU32::new(1),
    };
    for (protocol, loss) in [("Alpha Finance", "1200000"), ("Beta Bridge", "350000")] {
        let answer = caller
            .call(
                &app,
                Method::POST,
                "/api/exploits",
                Some(ADMIN),
                Some(incident(protocol, loss)),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "seeding {protocol}");
    }
    (app, caller)
}

fn incident(protocol: &str, loss: &str) -> Value {
    let tx = if protocol == "Alpha Finance" {
        json!([{ "chain": "ethereum", "hash": TX }])
    } else {
        json!([])
    };
    json!({
        "protocol": protocol,
        "chains": ["ethereum"],
        "date": "2024-03-05",
        "loss_usd": loss,
        "technique": "price oracle manipulation",
        "tx_hashes": tx,
        "source": "openapi-test",
        "source_url": format!("https://example.com/{}", protocol.replace(' ', "-")),
        "description": "seeded for the response check",
    })
}

/// The requests sent to one operation: each answer is checked, whatever its status.
fn requests(path: &str, method: &str) -> Vec<(String, Option<Value>, &'static str)> {
    let real = path.replace("{id}", "1").replace("{hash}", TX);
    let missing = path.replace("{id}", "999999").replace(
        "{hash}",
        "0x2222222222222222222222222222222222222222222222222222222222222222",
    );
    let mut all = vec![
        (real.clone(), None, "as documented"),
        (format!("{real}?nonsense=1"), None, "an unknown parameter"),
    ];
    if missing != real {
        all.push((missing, None, "naming nothing"));
    }
    if path.contains("{id}") {
        all.push((path.replace("{id}", "x"), None, "a malformed id"));
    }
    if path == "/api/exploits" && method == "get" {
        all.push((
            "/api/exploits?limit=1&sort=amount".into(),
            None,
            "a page with a cursor",
        ));
    }
    if method == "post" {
        all = vec![
            (real.clone(), Some(incident("Gamma Lend", "5000")), "new"),
            (real.clone(), Some(incident("Gamma Lend", "5000")), "again"),
            (real.clone(), Some(json!({ "protocol": 5 })), "a wrong type"),
            (real.clone(), Some(json!({ "protocol": " " })), "refused"),
        ];
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_documented_with_the_body_it_has() {
    let doc = kamiyo_api::openapi::document_json().unwrap();
    let (app, caller) = fixture().await;
    let user_key = app.user_key.clone().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let callers: [(Option<&str>, &str); 4] = [
                (Some(ADMIN), "the admin"),
                (Some(user_key.as_str()), "a user"),
                (None, "anonymous"),
                (
                    Some("kmy_not_a_real_key_at_all_000000000000"),
                    "a wrong key",
                ),
            ];
            for (uri, body, what) in requests(path, method) {
                for (key, who) in callers {
                    let answer = caller.call(&app, m.clone(), &uri, key, body.clone()).await;
                    let name = format!("{method} {uri} ({what}, {who}): {}", answer.status);
                    if let Err(problem) = check(&doc, operation, &answer) {
                        failures.push(format!("{name}: {problem}"));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} answers checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} answers differ from the document:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The database gone (every connection to it reset): the 503s and the probe's answer
/// are the documented ones too, each with its `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_while_the_database_is_down_are_documented_too() {
    let doc = kamiyo_api::openapi::document_json().unwrap();
    let test_db = kamiyo_testkit::TestDatabase::create().await;
    let proxy = kamiyo_testkit::FaultProxy::start(test_db.server_addr()).await;
    let mut config = DbConfig::for_url(proxy.url_through(test_db.url()));
    config.acquire_timeout = std::time::Duration::from_millis(500);
    config.connect_timeout = std::time::Duration::from_millis(500);
    config.liveness_check_after = std::time::Duration::ZERO;
    let db = kamiyo_db::Database::open(config).await.unwrap();
    db.migrate(&kamiyo_store::MIGRATIONS).await.unwrap();
    let app = TestApp::builder()
        .database(db)
        .settings(settings())
        .start()
        .await;
    let caller = Caller {
        requests: std::sync::atomic::AtomicU32::new(1),
    };
    proxy.set_mode(kamiyo_testkit::FaultMode::Reset).await;
    let mut unavailable = 0;
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let (uri, body, _) = requests(path, method).remove(0);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = caller.call(&app, m, &uri, Some(ADMIN), body).await;
            if answer.status == StatusCode::SERVICE_UNAVAILABLE {
                unavailable += 1;
                if answer.header("retry-after").is_none() {
                    failures.push(format!("{method} {uri}: 503 without Retry-After"));
                }
            }
            if let Err(problem) = check(&doc, operation, &answer) {
                failures.push(format!("{method} {uri}: {}: {problem}", answer.status));
            }
        }
    }
    assert!(
        unavailable >= 10,
        "only {unavailable} operations answered 503 with the database gone"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `Ok` when the answer is one the operation documents, in content type and body.
fn check(doc: &Value, operation: &Value, answer: &Response) -> Result<(), String> {
    let status = answer.status.as_str();
    let documented = operation["responses"]
        .get(status)
        .ok_or_else(|| "status not documented".to_owned())?;
    let documented = resolve(doc, documented);
    let content = documented["content"].as_object();
    let media = answer
        .header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let Some(content) = content else {
        return if answer.text.is_empty() {
            Ok(())
        } else {
            Err(format!("a body of {media} where none is documented"))
        };
    };
    let Some(media_type) = content.get(media) else {
        return Err(format!(
            "content type {media:?}, documented: {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    if media != "application/json" {
        return Ok(());
    }
    let body: Value = serde_json::from_str(&answer.text)
        .map_err(|e| format!("not JSON ({e}): {}", answer.text))?;
    let schema = &media_type["schema"];
    let mut root = Map::new();
    root.insert("components".into(), doc["components"].clone());
    root.insert("allOf".into(), json!([schema]));
    let validator = jsonschema::validator_for(&Value::Object(root))
        .map_err(|e| format!("the documented schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    let mut problems = errors;
    undeclared(doc, schema, &body, "", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n    body: {body}", problems.join("; ")))
    }
}

/// Follows a local `$ref`.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(pointer) => resolve(
            doc,
            doc.pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling reference {pointer}")),
        ),
        None => value,
    }
}

/// The schemas `schema` is made of (itself, and its `allOf`/`anyOf`/`oneOf` members).
fn members<'a>(doc: &'a Value, schema: &'a Value, out: &mut Vec<&'a Value>) {
    let schema = resolve(doc, schema);
    out.push(schema);
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for member in schema[keyword].as_array().into_iter().flatten() {
            members(doc, member, out);
        }
    }
}

/// Reports every property of `instance` that `schema` does not declare, and every object
/// documented as free-form (a body the document does not describe).
fn undeclared(doc: &Value, schema: &Value, instance: &Value, at: &str, out: &mut Vec<String>) {
    let mut parts = Vec::new();
    members(doc, schema, &mut parts);
    match instance {
        Value::Object(object) => {
            let open = parts.iter().any(|p| p["additionalProperties"].is_object());
            let declared: Vec<&Map<String, Value>> = parts
                .iter()
                .filter_map(|p| p["properties"].as_object())
                .collect();
            if declared.is_empty() && !open {
                out.push(format!("{at}: an object documented without its properties"));
                return;
            }
            for (name, value) in object {
                let property = declared.iter().find_map(|d| d.get(name));
                match property {
                    Some(property) => {
                        undeclared(doc, property, value, &format!("{at}/{name}"), out)
                    }
                    None if open => {
                        let extra = parts
                            .iter()
                            .find(|p| p["additionalProperties"].is_object())
                            .map(|p| &p["additionalProperties"]);
                        if let Some(extra) = extra {
                            undeclared(doc, extra, value, &format!("{at}/{name}"), out);
                        }
                    }
                    None => out.push(format!("{at}/{name}: not declared")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = parts.iter().find_map(|p| p.get("items")) {
                for (i, item) in items.iter().enumerate() {
                    undeclared(doc, item_schema, item, &format!("{at}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}
