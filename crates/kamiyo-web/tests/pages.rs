//! The dashboard in process: pages agree with the API, hostile text stays text, forms
//! are CSRF-protected, sessions sign in and out, and every page has its security headers.

mod common;

use chrono::Duration;
use common::{Site, ADMIN_TOKEN};
use kamiyo_domain::Tier;
use kamiyo_store::accounts::Role;
use kamiyo_testkit::claim;
use kamiyo_testkit::http::Response;

/// Incident ids of the listing's table, in order (the `#results` region only).
fn listed_ids(page: &str) -> Vec<i64> {
    let results = page
        .split_once(r#"id="results""#)
        .map_or("", |(_, rest)| rest);
    let body = results.split_once("<tbody>").map_or("", |(_, rest)| rest);
    let body = body.split_once("</tbody>").map_or(body, |(b, _)| b);
    body.split(r#"href="/incidents/"#)
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// The total the listing states (`<strong>1,234</strong> incidents match`).
fn stated_total(page: &str) -> i64 {
    page.split_once("</strong> incidents match")
        .and_then(|(before, _)| before.rsplit_once("<strong>"))
        .map(|(_, n)| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in the page: {page}"))
}

fn api_ids(answer: &Response) -> Vec<i64> {
    answer.json()["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", answer.text))
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect()
}

/// The value of `name` in the answer's `Set-Cookie` headers.
fn set_cookie<'a>(answer: &'a Response, name: &str) -> Option<&'a str> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The CSRF cookie a first visit gets, and the token its forms carry.
async fn csrf(site: &Site, cookies: &str) -> (String, String) {
    let page = site.client.get("/signin").header("cookie", cookies).await;
    let cookie = set_cookie(&page, "kamiyo_csrf")
        .map(cookie_pair)
        .unwrap_or_else(|| {
            cookies
                .split("; ")
                .find(|c| c.starts_with("kamiyo_csrf="))
                .unwrap_or_default()
                .to_owned()
        });
    let token = page
        .text
        .split_once(r#"name="csrf" value=""#)
        .and_then(|(_, rest)| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field: {}", page.text))
        .to_owned();
    (cookie, token)
}

/// A visitor signed in through the form: their cookies, and the token their forms carry
/// now (the nonce is rotated and tokens are bound to the session).
struct Visitor {
    cookies: String,
    token: String,
}

async fn sign_in(site: &Site, key: &str) -> (Visitor, Response) {
    let (nonce, token) = csrf(site, "").await;
    let signed = site
        .client
        .post_form("/signin", &[("key", key), ("csrf", &token)])
        .header("cookie", nonce.clone())
        .await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let session = set_cookie(&signed, "kamiyo_session")
        .map(cookie_pair)
        .unwrap_or_else(|| panic!("no session cookie"));
    let rotated = set_cookie(&signed, "kamiyo_csrf")
        .map(cookie_pair)
        .unwrap_or_else(|| panic!("the nonce is not rotated at sign-in"));
    assert_ne!(rotated, nonce);
    let cookies = format!("{rotated}; {session}");
    let (_, token) = csrf(site, &cookies).await;
    (Visitor { cookies, token }, signed)
}

async fn seeded() -> Site {
    seed(Site::open().await).await
}

async fn seed(site: Site) -> Site {
    let rows = [
        ("Euler Finance", "ethereum", "197000000", "2023-03-13"),
        ("Mango Markets", "solana", "114000000", "2022-10-11"),
        ("Ronin Bridge", "ronin", "624000000", "2022-03-23"),
        ("Nomad Bridge", "ethereum", "190000000", "2022-08-01"),
        ("Beanstalk", "ethereum", "182000000", "2022-04-17"),
        ("Ankr", "bsc", "5000000", "2022-12-02"),
        ("Platypus", "avalanche", "8500000", "2023-02-16"),
    ];
    for (name, chain, loss, date) in rows {
        site.incident(claim(name).chain(chain).loss_usd(loss).date(date))
            .await;
    }
    site
}

#[tokio::test]
async fn the_listing_shows_the_same_rows_and_total_as_the_api_for_the_same_query() {
    let site = seeded().await;
    assert_eq!(
        stated_total(&site.client.get("/incidents").await.text),
        7,
        "every seeded incident is visible on an open site"
    );
    for query in [
        "",
        "chain=ethereum",
        "sort=amount&order=desc",
        "min_amount=100000000&sort=amount&order=asc",
        "q=bridge",
        "limit=2",
        "from=2022-06-01&to=2023-12-31",
    ] {
        let suffix = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let page = site.client.get(&format!("/incidents{suffix}")).await;
        assert_eq!(page.status, 200, "{query}: {}", page.text);
        let api = site.client.get(&format!("/api/exploits{suffix}")).await;
        assert_eq!(api.status, 200, "{query}: {}", api.text);
        assert_eq!(listed_ids(&page.text), api_ids(&api), "rows of {query:?}");
        assert_eq!(
            stated_total(&page.text),
            api.json()["total"].as_i64().unwrap_or(-1),
            "total of {query:?}"
        );
    }
    // The next page link carries the API's cursor: page two is the API's page two.
    let first = site.client.get("/incidents?limit=3").await;
    let next = first
        .text
        .split_once(r#"rel="next""#)
        .map(|(before, _)| before)
        .and_then(|b| b.rsplit_once(r#"href=""#))
        .and_then(|(_, href)| href.split('"').next())
        .map(|h| h.replace("&amp;", "&"))
        .unwrap_or_else(|| panic!("no next link: {}", first.text));
    let cursor = site.client.get("/api/exploits?limit=3").await.json()["next_cursor"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    assert_eq!(next, format!("/incidents?limit=3&cursor={cursor}"));
    let two = site.client.get(&next).await;
    let api_two = site
        .client
        .get(&format!("/api/exploits?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(listed_ids(&two.text), api_ids(&api_two));
}

#[tokio::test]
async fn a_plain_form_submission_is_redirected_to_the_apis_query_string() {
    let site = seeded().await;
    let answer = site
        .client
        .get("/incidents?q=&protocol=&chain=ethereum&attack_class=&min_amount=&sort=amount")
        .await;
    assert_eq!(answer.status, 303, "{}", answer.text);
    assert_eq!(
        answer.header("location"),
        Some("/incidents?chain=ethereum&sort=amount")
    );
    let all_empty = site.client.get("/incidents?q=&chain=").await;
    assert_eq!(all_empty.header("location"), Some("/incidents"));
}

#[tokio::test]
async fn a_bad_filter_shows_the_form_again_with_the_apis_message_naming_it() {
    let site = seeded().await;
    let answer = site.client.get("/incidents?min_amount=lots").await;
    assert_eq!(answer.status, 400);
    assert!(answer.text.contains("min_amount:"), "{}", answer.text);
    assert!(answer.text.contains(r#"<form class="filters""#));
    let unknown = site.client.get("/incidents?colour=red").await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text.contains("colour"), "{}", unknown.text);
}

#[tokio::test]
async fn hostile_names_and_descriptions_render_as_text_everywhere() {
    let site = Site::open().await;
    let id = site
        .incident(
            claim("<script>window.__pwned=1</script>Evil")
                .date("2024-02-02")
                .description("<img src=x onerror=alert(1)> \"quoted\" & <b>bold</b>"),
        )
        .await;
    for path in [
        "/".to_owned(),
        "/incidents".into(),
        format!("/incidents/{id}"),
    ] {
        let page = site.client.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(!page.text.contains("<script>window.__pwned"), "{path}");
        assert!(!page.text.contains("<img src=x"), "{path}");
        assert!(
            page.text
                .contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;Evil"),
            "{path}: the name is shown as text"
        );
    }
    let detail = site.client.get(&format!("/incidents/{id}")).await;
    assert!(detail.text.contains(
        "&lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;"
    ));
}

#[tokio::test]
async fn every_page_has_a_strict_policy_and_assets_are_immutable() {
    let site = seeded().await;
    for path in [
        "/",
        "/incidents",
        "/sources",
        "/status",
        "/signin",
        "/nowhere",
    ] {
        let page = site.client.get(path).await;
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert!(
            page.header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{path}"
        );
        // No inline script or style anywhere: the policy would block it.
        assert!(!page.text.contains("<script>"), "{path}");
        assert!(!page.text.contains(" style="), "{path}");
    }
    let missing = site.client.get("/nowhere").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.text.contains("<h1>404 Not Found</h1>"),
        "{}",
        missing.text
    );
    // The API keeps its JSON.
    let api_missing = site.client.get("/api/nowhere").await;
    assert_eq!(api_missing.status, 404);
    assert!(api_missing.json()["error"]["code"].is_string());

    let home = site.client.get("/").await;
    let css = home
        .text
        .split_once(r#"rel="stylesheet" href=""#)
        .and_then(|(_, rest)| rest.split('"').next())
        .unwrap_or_else(|| panic!("no stylesheet link"))
        .to_owned();
    let asset = site.client.get(&css).await;
    assert_eq!(asset.status, 200);
    assert_eq!(
        asset.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(asset
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/css"));
    assert_eq!(
        site.client
            .get("/assets/kamiyo-0000000000000000.css")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn forms_refuse_a_post_without_the_visitors_csrf_token() {
    let site = seeded().await;
    let key = site.key("pro@example.com", Tier::Pro, Role::User).await;
    let no_token = site.client.post_form("/signin", &[("key", &key)]).await;
    assert_eq!(no_token.status, 403, "{}", no_token.text);
    assert!(set_cookie(&no_token, "kamiyo_session").is_none());
    // Another visitor's token does not fit this visitor's nonce.
    let (_, their_token) = csrf(&site, "").await;
    let (mine, _) = csrf(&site, "").await;
    let crossed = site
        .client
        .post_form("/signin", &[("key", &key), ("csrf", &their_token)])
        .header("cookie", mine.clone())
        .await;
    assert_eq!(crossed.status, 403);
    // A nonce another site planted (not of our making) is replaced, not trusted.
    let planted = site
        .client
        .get("/signin")
        .header("cookie", "kamiyo_csrf=planted")
        .await;
    assert!(set_cookie(&planted, "kamiyo_csrf").is_some_and(|c| !c.contains("=planted;")));

    let (visitor, _) = sign_in(&site, &key).await;
    let id = site
        .client
        .post(
            "/api/subscriptions",
            serde_json::json!({"name": "n", "channel": {"kind": "webhook", "url": "https://hooks.example.com/a"}}),
        )
        .bearer(&key)
        .await
        .json()["id"]
        .as_i64()
        .unwrap_or(-1);
    // Every state-changing form: no token, and the token of the signed-out page (tokens
    // are bound to the session), are both refused.
    for path in [
        "/signout".to_owned(),
        "/subscriptions".into(),
        format!("/subscriptions/{id}/delete"),
        format!("/subscriptions/{id}/enabled"),
    ] {
        for token in ["", their_token.as_str()] {
            let answer = site
                .client
                .post_form(
                    &path,
                    &[
                        ("csrf", token),
                        ("name", "x"),
                        ("url", "https://hooks.example.com/b"),
                        ("enabled", "false"),
                    ],
                )
                .header("cookie", visitor.cookies.clone())
                .await;
            assert_eq!(answer.status, 403, "{path} with {token:?}: {}", answer.text);
        }
    }
    let still = site
        .client
        .get(&format!("/api/subscriptions/{id}"))
        .bearer(&key)
        .await;
    assert_eq!(still.json()["enabled"], true, "nothing changed");
}

#[tokio::test]
async fn signing_in_shows_the_tiers_incidents_and_signing_out_hides_them_again() {
    // The shipped rules: an anonymous visitor sees incidents a day late.
    let site = seed(Site::start().await).await;
    let fresh = site
        .incident(claim("Fresh Protocol").at(chrono::Utc::now() - Duration::hours(1)))
        .await;
    let key = site.key("pro@example.com", Tier::Pro, Role::User).await;
    let fresh_link = format!(r#"href="/incidents/{fresh}""#);

    let anonymous = site.client.get("/incidents").await;
    assert!(!anonymous.text.contains(&fresh_link));
    assert!(anonymous
        .text
        .contains("Without signing in, you see incidents 1 day after"));
    assert_eq!(
        site.client.get(&format!("/incidents/{fresh}")).await.status,
        404
    );

    let (visitor, signed) = sign_in(&site, &key).await;
    let session = set_cookie(&signed, "kamiyo_session").unwrap_or_default();
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    // The key is sealed: not there in clear, nor in the encodings a reader would try.
    let value = cookie_pair(session).replace("kamiyo_session=", "");
    use base64::Engine;
    for encoded in [
        key.clone(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key),
        base64::engine::general_purpose::STANDARD.encode(&key),
    ] {
        assert!(
            !value.contains(&encoded[..encoded.len().min(16)]),
            "{value}"
        );
    }
    let cookies = visitor.cookies.clone();

    let listing = site
        .client
        .get("/incidents")
        .header("cookie", cookies.clone())
        .await;
    assert!(listing.text.contains(&fresh_link), "a pro user sees it");
    assert!(listing
        .text
        .contains("Signed in as <strong>pro@example.com</strong> (pro)"));
    assert!(!listing.text.contains(&key), "no page shows the key");
    assert_eq!(listing.header("cache-control"), Some("no-store"));
    let detail = site
        .client
        .get(&format!("/incidents/{fresh}"))
        .header("cookie", cookies.clone())
        .await;
    assert_eq!(detail.status, 200);
    // The API never reads the cookie: another site cannot spend the key through it.
    let api = site
        .client
        .get("/api/exploits")
        .header("cookie", cookies.clone())
        .await;
    assert!(!api_ids(&api).contains(&fresh));
    // The CSV of the page's path is the signed-in visitor's.
    let csv = site
        .client
        .get("/incidents.csv")
        .header("cookie", cookies.clone())
        .await;
    assert!(csv.text.contains("Fresh Protocol"), "{}", csv.text);

    let out = site
        .client
        .post_form("/signout", &[("csrf", &visitor.token)])
        .header("cookie", cookies.clone())
        .await;
    assert_eq!(out.status, 303, "{}", out.text);
    let cleared = set_cookie(&out, "kamiyo_session").unwrap_or_default();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(
        set_cookie(&out, "kamiyo_csrf").is_some(),
        "a new nonce at sign-out"
    );
    let after = site.client.get("/incidents").await;
    assert!(!after.text.contains(&fresh_link));
}

#[tokio::test]
async fn a_wrong_key_or_the_admin_token_is_refused_and_a_revoked_key_ends_the_session() {
    let site = seeded().await;
    let (nonce, token) = csrf(&site, "").await;
    for (key, says) in [
        ("kmy_not_a_key", "key: the API key is not valid"),
        (ADMIN_TOKEN, "key: server.admin_token cannot sign in"),
    ] {
        let refused = site
            .client
            .post_form("/signin", &[("key", key), ("csrf", &token)])
            .header("cookie", nonce.clone())
            .await;
        assert_eq!(refused.status, 422);
        assert!(refused.text.contains(says), "{}", refused.text);
        assert!(set_cookie(&refused, "kamiyo_session").is_none());
    }

    let key = site.key("gone@example.com", Tier::Pro, Role::User).await;
    let (visitor, _) = sign_in(&site, &key).await;
    site.state
        .accounts
        .disable_user("gone@example.com")
        .await
        .unwrap_or_else(|e| panic!("cannot disable: {e}"));
    let after = site
        .client
        .get("/incidents")
        .header("cookie", visitor.cookies.clone())
        .await;
    assert_eq!(after.status, 303);
    assert_eq!(after.header("location"), Some("/signin?expired=1"));
    assert!(set_cookie(&after, "kamiyo_session").is_some_and(|c| c.contains("Max-Age=0")));
    // A forged or foreign session cookie is dropped, and the visitor is anonymous.
    let forged = site
        .client
        .get("/incidents")
        .header(
            "cookie",
            "kamiyo_session=v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .await;
    assert_eq!(forged.status, 200);
    assert!(forged.text.contains("Not signed in"));
    assert!(set_cookie(&forged, "kamiyo_session").is_some_and(|c| c.contains("Max-Age=0")));
}

#[tokio::test]
async fn the_incident_page_shows_every_claim_its_sources_and_linked_hashes() {
    let site = Site::open().await;
    let hash = format!("0x{}", "ab".repeat(32));
    let id = site
        .incident(
            claim("Euler Finance")
                .source("rekt")
                .source_url("https://rekt.news/euler-rekt/")
                .chain("ethereum")
                .date("2023-03-13")
                .loss_usd("197000000")
                .tx("ethereum", hash.clone()),
        )
        .await;
    let same = site
        .incident(
            claim("Euler")
                .source("defillama")
                .chain("ethereum")
                .date("2023-03-13")
                .loss_usd("160000000")
                .tx("ethereum", hash.clone()),
        )
        .await;
    assert_eq!(id, same, "one incident of two claims");
    // Another hack of the same protocol, a year earlier: a related incident.
    let earlier = site
        .incident(
            claim("Euler Finance")
                .source("rekt")
                .chain("ethereum")
                .date("2022-01-05")
                .loss_usd("1000000"),
        )
        .await;
    assert_ne!(earlier, id);
    let page = site.client.get(&format!("/incidents/{id}")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.text.matches(r#"<tr id="claim-"#).count(),
        2,
        "{}",
        page.text
    );
    assert!(page
        .text
        .contains(&format!(r#"href="https://etherscan.io/tx/{hash}""#)));
    assert!(page
        .text
        .contains(r#"href="https://rekt.news/euler-rekt/""#));
    assert!(
        page.text.contains("Where the sources disagree"),
        "the losses differ"
    );
    assert!(
        page.text.contains(r#"class="source-tag""#),
        "values name their source"
    );
    assert!(
        page.text.contains(r#"title="$197,000,000.00""#)
            || page.text.contains(r#"title="$160,000,000.00""#)
    );
    let related = page
        .text
        .split_once("Other incidents of")
        .map_or("", |(_, rest)| rest);
    assert!(
        related.contains(&format!(r#"href="/incidents/{earlier}""#)),
        "{related}"
    );
    assert!(
        !related.contains(&format!(r#"href="/incidents/{id}""#)),
        "not itself"
    );
    assert_eq!(site.client.get("/incidents/0").await.status, 400);
    assert_eq!(site.client.get("/incidents/999999").await.status, 404);
}

#[tokio::test]
async fn status_and_sources_show_admins_more_than_anonymous_visitors() {
    let site = seeded().await;
    let anonymous = site.client.get("/status").await;
    assert_eq!(anonymous.status, 200);
    assert!(
        anonymous
            .text
            .contains(r#"<span class="value ok">healthy</span>"#),
        "{}",
        anonymous.text
    );
    assert!(!anonymous.text.contains("<h2>Pools</h2>"));
    let admin = site.client.get("/status").bearer(ADMIN_TOKEN).await;
    assert!(admin.text.contains("<h2>Pools</h2>"), "{}", admin.text);
    assert!(admin.text.contains("<h2>Slowest statements</h2>"));

    let sources = site.client.get("/sources").await;
    assert!(sources.text.contains("fixture"), "{}", sources.text);
    assert!(!sources.text.contains("Last error"));
    let admin_sources = site.client.get("/sources").bearer(ADMIN_TOKEN).await;
    assert!(admin_sources.text.contains("Last error"));
}

#[tokio::test]
async fn the_overview_totals_agree_with_the_stats_api() {
    let site = seeded().await;
    let page = site.client.get("/?days=3650").await;
    assert_eq!(page.status, 200, "{}", page.text);
    let stats = site.client.get("/api/stats?days=3650").await.json();
    let incidents = stats["incidents"].as_i64().unwrap_or(-1);
    assert!(
        page.text
            .contains(&format!(r#"<span class="value">{incidents}</span>"#)),
        "{}",
        page.text
    );
    let loss: rust_decimal::Decimal = stats["total_loss_usd"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    assert!(page.text.contains(&format!(
        r#"title="{}""#,
        kamiyo_web::format::usd_exact(loss)
    )));
    for chart in ["by-month", "by-class", "by-chain"] {
        assert!(page
            .text
            .contains(&format!(r#"aria-labelledby="{chart}-title {chart}-desc""#)));
    }
    assert_eq!(site.client.get("/?days=0").await.status, 400);
}

#[tokio::test]
async fn a_signed_in_user_manages_subscriptions_from_the_page() {
    let site = seeded().await;
    let key = site.key("alerts@example.com", Tier::Pro, Role::User).await;
    let (visitor, _) = sign_in(&site, &key).await;
    let (cookies, token) = (visitor.cookies.clone(), visitor.token.clone());
    let anonymous = site.client.get("/subscriptions").await;
    assert_eq!(anonymous.status, 303, "anonymous: sent to sign in");
    assert_eq!(anonymous.header("location"), Some("/signin"));
    let admin = site.client.get("/subscriptions").bearer(ADMIN_TOKEN).await;
    assert_eq!(admin.status, 403, "the admin token is no user");

    let created = site
        .client
        .post_form(
            "/subscriptions",
            &[
                ("csrf", &token),
                ("name", "Big ones"),
                ("kind", "webhook"),
                ("url", "https://hooks.example.com/kamiyo"),
                ("chains", "ethereum, BNB Chain"),
                ("min_loss_usd", "1000000"),
                ("min_sources", ""),
            ],
        )
        .header("cookie", cookies.clone())
        .await;
    // Post, redirect, get: a reload cannot create it twice.
    assert_eq!(created.status, 303, "{}", created.text);
    assert_eq!(created.header("location"), Some("/subscriptions"));
    let flash = set_cookie(&created, "kamiyo_flash")
        .map(cookie_pair)
        .unwrap_or_else(|| panic!("the secret crosses the redirect"));
    assert!(!flash.contains("whsec_"), "sealed, not in clear");
    let shown = site
        .client
        .get("/subscriptions")
        .header("cookie", format!("{cookies}; {flash}"))
        .await;
    assert!(shown.text.contains("whsec_"), "the secret is shown once");
    assert!(set_cookie(&shown, "kamiyo_flash").is_some_and(|c| c.contains("Max-Age=0")));
    let api = site
        .client
        .get("/api/subscriptions")
        .bearer(&key)
        .await
        .json();
    assert_eq!(api["items"].as_array().map(Vec::len), Some(1));
    let id = api["items"][0]["id"].as_i64().unwrap_or(-1);
    assert_eq!(api["items"][0]["name"], "Big ones");
    assert_eq!(api["items"][0]["filter"]["min_loss_usd"], "1000000.00");
    let again = site
        .client
        .get("/subscriptions")
        .header("cookie", cookies.clone())
        .await;
    assert!(!again.text.contains("whsec_"), "shown once only");
    assert!(again.text.contains("Big ones"));

    let refused = site
        .client
        .post_form(
            "/subscriptions",
            &[
                ("csrf", &token),
                ("name", "x"),
                ("kind", "webhook"),
                ("url", "http://127.0.0.1/x"),
            ],
        )
        .header("cookie", cookies.clone())
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains(r#"role="alert""#));

    let disabled = site
        .client
        .post_form(
            &format!("/subscriptions/{id}/enabled"),
            &[("csrf", &token), ("enabled", "false")],
        )
        .header("cookie", cookies.clone())
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.text);
    let api = site
        .client
        .get(&format!("/api/subscriptions/{id}"))
        .bearer(&key)
        .await
        .json();
    assert_eq!(api["enabled"], false);
    let deleted = site
        .client
        .post_form(&format!("/subscriptions/{id}/delete"), &[("csrf", &token)])
        .header("cookie", cookies)
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(
        site.client
            .get(&format!("/api/subscriptions/{id}"))
            .bearer(&key)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_delayed_tiers_page_shows_what_the_api_shows_the_same_key() {
    // The shipped rules: the free tier sees a week of incidents, a day late.
    let site = Site::start().await;
    let now = chrono::Utc::now();
    for (name, age) in [
        ("An hour old", Duration::hours(1)),
        ("Two days old", Duration::days(2)),
        ("Three days old", Duration::days(3)),
        ("Ten days old", Duration::days(10)),
    ] {
        site.incident(claim(name).at(now - age)).await;
    }
    let key = site.key("free@example.com", Tier::Free, Role::User).await;
    for query in ["", "?sort=amount", "?q=days"] {
        let page = site
            .client
            .get(&format!("/incidents{query}"))
            .bearer(&key)
            .await;
        let api = site
            .client
            .get(&format!("/api/exploits{query}"))
            .bearer(&key)
            .await;
        assert_eq!(listed_ids(&page.text), api_ids(&api), "{query}");
        assert_eq!(
            stated_total(&page.text),
            2,
            "{query}: two of four are visible"
        );
    }
    let anonymous = site.client.get("/incidents").await;
    assert_eq!(stated_total(&anonymous.text), 2);
    assert!(anonymous
        .text
        .contains("Newer and older incidents are hidden."));
}

#[tokio::test]
async fn every_page_renders_on_sqlite_the_default_backend() {
    let site = seed(Site::sqlite().await).await;
    let api = site.client.get("/api/exploits?sort=amount").await;
    let page = site.client.get("/incidents?sort=amount").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(listed_ids(&page.text), api_ids(&api));
    assert_eq!(stated_total(&page.text), 7);
    let id = api_ids(&api)[0];
    for path in [
        "/".to_owned(),
        "/?days=365".into(),
        format!("/incidents/{id}"),
        "/sources".into(),
        "/status".into(),
        "/signin".into(),
    ] {
        let answer = site.client.get(&path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
    }
    let status = site.client.get("/status").await;
    assert!(status.text.contains("sqlite"), "{}", status.text);
}
