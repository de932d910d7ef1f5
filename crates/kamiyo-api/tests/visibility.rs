//! One visibility rule, checked on every route: for each tier, no route shows an incident
//! outside the tier's window (24-hour delay and 7-day history for anonymous and free
//! callers), whether as an item, a count, a chain, a source or a hash. The routes come
//! from the router itself (`kamiyo_api::route_paths`): a route added without a row in
//! `check` fails this test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Duration;
use common::{token, TestApp};
use kamiyo_api::ServerConfig;
use kamiyo_domain::Tier;
use kamiyo_store::accounts::Role;
use kamiyo_testkit::claim;
use serde_json::Value;

static PEERS: AtomicU32 = AtomicU32::new(0);

const ADMIN: &str = "visibility-admin-token-0123456789abcdef";
const METRICS: &str = "visibility-metrics-token-0123456789abcdef";

/// One incident of the fixture and everything that could give it away.
struct Stored {
    id: i64,
    age: Duration,
    protocol: &'static str,
    chain: &'static str,
    source: &'static str,
    hash: &'static str,
}

impl Stored {
    fn markers(&self) -> [&'static str; 4] {
        [self.protocol, self.chain, self.source, self.hash]
    }
}

struct Caller {
    name: &'static str,
    /// Several keys of one user, used in turn: each key has its tier's rate limit, and
    /// this test makes more requests than a free key may in a minute.
    tokens: Vec<String>,
    /// Whether the 1-hour-old and the 30-day-old incidents are visible.
    sees_all: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_shows_any_tier_an_incident_outside_its_window() {
    let t = TestApp::start(ServerConfig {
        admin_token: token(ADMIN),
        metrics_token: token(METRICS),
        ..ServerConfig::default()
    })
    .await;
    let mut stored = Vec::new();
    for (protocol, chain, source, hash, age) in [
        (
            "Hiddenfreshfi",
            "arbitrum",
            "freshsource",
            "0x1111111111111111111111111111111111111111111111111111111111111111",
            Duration::hours(1),
        ),
        (
            "Visiblefi",
            "ethereum",
            "visiblesource",
            "0x2222222222222222222222222222222222222222222222222222222222222222",
            Duration::days(3),
        ),
        (
            "Hiddenoldfi",
            "polygon",
            "oldsource",
            "0x3333333333333333333333333333333333333333333333333333333333333333",
            Duration::days(30),
        ),
    ] {
        let id = t
            .incident(
                claim(protocol)
                    .source(source)
                    .chain(chain)
                    .ago(age)
                    .tx(chain, hash),
            )
            .await;
        stored.push(Stored {
            id,
            age,
            protocol,
            chain,
            source,
            hash,
        });
    }
    let callers = [
        Caller {
            name: "anonymous",
            tokens: Vec::new(),
            sees_all: false,
        },
        Caller {
            name: "free",
            tokens: keys(&t, "free@example.com", Tier::Free).await,
            sees_all: false,
        },
        Caller {
            name: "pro",
            tokens: keys(&t, "pro@example.com", Tier::Pro).await,
            sees_all: true,
        },
        Caller {
            name: "admin token",
            tokens: vec![ADMIN.to_owned()],
            sees_all: true,
        },
    ];

    let routes = kamiyo_api::route_paths();
    assert!(routes.len() >= 18, "{routes:?}");
    let mut failures = Vec::new();
    for caller in &callers {
        let (visible, hidden): (Vec<&Stored>, Vec<&Stored>) = stored
            .iter()
            .partition(|s| caller.sees_all || s.protocol == "Visiblefi");
        for route in &routes {
            for problem in check(&t, route, caller, &visible, &hidden).await {
                failures.push(format!("{} {route}: {problem}", caller.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Four keys of a new user of `tier`.
async fn keys(t: &TestApp, email: &str, tier: Tier) -> Vec<String> {
    let mut keys = vec![t.key(email, tier, Role::User).await];
    for _ in 0..3 {
        keys.push(t.another_key(email).await);
    }
    keys
}

/// Listing queries, each with how many of `visible` it should show.
fn listing_variants(visible: &[&Stored]) -> Vec<(String, i64)> {
    let count = |keep: &dyn Fn(&Stored) -> bool| visible.iter().filter(|s| keep(s)).count() as i64;
    let mut variants = vec![
        (String::new(), count(&|_| true)),
        ("sort=amount".to_owned(), count(&|_| true)),
        ("order=asc".to_owned(), count(&|_| true)),
        ("from=2000-01-01".to_owned(), count(&|_| true)),
        ("protocol=fi".to_owned(), count(&|_| true)),
    ];
    for chain in ["arbitrum", "ethereum", "polygon"] {
        variants.push((format!("chain={chain}"), count(&|s| s.chain == chain)));
    }
    variants
}

/// What `caller` gets from `route`, against what it may see. Every route of the router
/// has a row; a new route fails here until it has one.
async fn check(
    t: &TestApp,
    route: &str,
    caller: &Caller,
    visible: &[&Stored],
    hidden: &[&Stored],
) -> Vec<String> {
    let get = |uri: String| {
        let n = PEERS.fetch_add(1, Ordering::Relaxed);
        let token = (!caller.tokens.is_empty())
            .then(|| caller.tokens[n as usize % caller.tokens.len()].clone());
        async move {
            // Anonymous callers are limited per address (10 a minute): each request
            // comes from an address of its own, so that this test checks visibility only.
            let peer = format!("10.9.{}.{}:4000", n / 250, n % 250 + 1);
            let answer = t.get(&uri).from(&peer).bearer_opt(token.as_deref()).await;
            // Only a hidden incident's own lookup may be refused (404); anything else
            // (a 429 above all) would make the counts below meaningless.
            assert!(
                answer.status == 200 || answer.status == 404,
                "{} {uri}: {} {}",
                caller.name,
                answer.status,
                answer.text
            );
            answer
        }
    };
    let mut problems = Vec::new();
    // A body that names a hidden incident in any way gives it away.
    let leaks = |body: &str, problems: &mut Vec<String>| {
        for stored in hidden {
            for marker in stored.markers() {
                if body.contains(marker) {
                    problems.push(format!("shows {marker:?} of a hidden incident"));
                }
            }
        }
    };
    let counts = |what: &str, got: i64, problems: &mut Vec<String>| {
        if got != visible.len() as i64 {
            problems.push(format!("{what} is {got}, {} visible", visible.len()));
        }
    };
    let sum = |items: &Value, field: &str| -> i64 {
        items
            .as_array()
            .map(|a| a.iter().filter_map(|i| i[field].as_i64()).sum())
            .unwrap_or(-1)
    };
    match route {
        // No incident data: health, the monitor (pool state and normalised SQL, never
        // values), the caller's own account, the API's description.
        "/healthz"
        | "/api/health"
        | "/api/health/database"
        | "/api/metrics/database"
        | "/api/metrics/queries"
        | "/metrics"
        | "/api/me"
        | "/api/openapi.json" => {}
        // Admins only (tests/curation.rs: anyone else is refused before anything is
        // read); an admin sees every incident whatever its age.
        "/api/admin/incidents/merge"
        | "/api/admin/incidents/{id}/split"
        | "/api/admin/aliases"
        | "/api/admin/aliases/{alias}"
        | "/api/review/candidates" => {}
        // The caller's own alert subscriptions: a delivery of an incident its tier may
        // not see yet is not listed until it is due (tests/subscriptions.rs).
        "/api/subscriptions"
        | "/api/subscriptions/{id}"
        | "/api/subscriptions/{id}/rotate-secret"
        | "/api/subscriptions/{id}/test"
        | "/api/subscriptions/{id}/deliveries"
        | "/api/subscriptions/{id}/replay"
        // Admins only: ids and times of changes and deliveries.
        | "/api/admin/alerts/audit" => {}
        // A submitter's own reports: the answer names the incident a report matched (its
        // id only; reading it follows the tier, tests/submissions.rs). Reviewers and
        // admins see the matched incident whatever its age: they must to decide.
        "/api/submissions"
        | "/api/submissions/{id}"
        | "/api/review/submissions"
        | "/api/review/submissions/{id}"
        // Admins only: bounties name submissions and incidents by id.
        | "/api/admin/bounties"
        | "/api/admin/bounties/{id}/paid" => {}
        "/api/exploits" => {
            // Each filter and sort takes another SQL path (the chain filter reads
            // exploit_chains' copy of the date), so each is checked.
            for (query, expected) in listing_variants(visible) {
                let answer = get(format!("/api/exploits?limit=500&{query}")).await;
                let body = answer.json();
                let mut found = Vec::new();
                leaks(&answer.text, &mut found);
                let total = body["total"].as_i64().unwrap_or(-1);
                let items = body["items"].as_array().map_or(-1, |a| a.len() as i64);
                if total != expected || items != expected {
                    found.push(format!("total {total}, items {items}, {expected} visible"));
                }
                problems.extend(found.into_iter().map(|p| format!("?{query}: {p}")));
            }
            // Page by page, one incident a page, following next_cursor.
            let mut seen = 0;
            let mut uri = "/api/exploits?limit=1".to_owned();
            for _ in 0..10 {
                let answer = get(uri.clone()).await;
                leaks(&answer.text, &mut problems);
                let body = answer.json();
                seen += body["items"].as_array().map_or(0, Vec::len);
                match body["next_cursor"].as_str() {
                    Some(cursor) => uri = format!("/api/exploits?limit=1&cursor={cursor}"),
                    None => break,
                }
            }
            counts("incidents over cursor pages", seen as i64, &mut problems);
        }
        "/api/exploits/{id}" | "/api/exploits/tx/{hash}" => {
            for stored in visible.iter().chain(hidden) {
                let uri = if route.ends_with("{id}") {
                    format!("/api/exploits/{}", stored.id)
                } else {
                    format!("/api/exploits/tx/{}", stored.hash)
                };
                let answer = get(uri).await;
                let shown = answer.status == 200;
                let may = visible.iter().any(|v| v.id == stored.id);
                if shown != may {
                    problems.push(format!(
                        "{} answered {} (visible: {may})",
                        stored.protocol, answer.status
                    ));
                }
                if shown {
                    leaks(&answer.text, &mut problems);
                }
            }
        }
        "/api/exploits.csv" | "/api/feed.atom" => {
            for (query, expected) in listing_variants(visible) {
                let answer = get(format!("{route}?{query}")).await;
                let mut found = Vec::new();
                leaks(&answer.text, &mut found);
                let got = if route.ends_with("csv") {
                    answer.text.lines().count() as i64 - 1
                } else {
                    answer.text.matches("<entry>").count() as i64
                };
                if got != expected {
                    found.push(format!("{got} incidents, {expected} visible"));
                }
                problems.extend(found.into_iter().map(|p| format!("?{query}: {p}")));
            }
        }
        "/api/stats"
        | "/api/stats/by-chain"
        | "/api/stats/by-attack-type"
        | "/api/stats/by-month" => {
            // All time, and a window that ends inside the hidden ones' ages.
            for (query, expected) in [
                ("", visible.len()),
                (
                    "?days=10",
                    visible
                        .iter()
                        .filter(|s| s.age < Duration::days(10))
                        .count(),
                ),
            ] {
                let answer = get(format!("{route}{query}")).await;
                leaks(&answer.text, &mut problems);
                let body = answer.json();
                let got = if route == "/api/stats" {
                    body["incidents"].as_i64().unwrap_or(-1)
                } else {
                    sum(&body["buckets"], "incidents")
                };
                if got != expected as i64 {
                    problems.push(format!("{query}: {got} incidents, {expected} visible"));
                }
            }
        }
        "/api/chains" | "/api/sources" => {
            let answer = get(route.into()).await;
            leaks(&answer.text, &mut problems);
            counts("incidents", sum(&answer.json(), "incidents"), &mut problems);
        }
        other => problems.push(format!(
            "route {other} has no visibility check: add it to `check` in tests/visibility.rs"
        )),
    }
    problems
}
