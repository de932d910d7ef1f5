//! A configured source fetched end to end from a loopback server (`FixtureServer`), on
//! each backend: its records go through the same ingest path as an import, every fetch
//! is recorded, a 304 or an unchanged body writes nothing, and a changed format (HTML
//! in place of JSON, no records) is a failed fetch that says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use kamiyo_db::{BackendKind, Clock, RetryPolicy};
use kamiyo_ingest::fetch::{HttpFetcher, Validators};
use kamiyo_ingest::job::{self, RunContext, RunOutcome, SourceRun};
use kamiyo_ingest::sources::{SourceSettings, SourcesConfig};
use kamiyo_testkit::{FixtureServer, Reply};

type Backend = common::Backend<common::Stores>;

kamiyo_testkit::per_backend! {
    common::Stores::on => [
        a_fetched_source_is_ingested_like_an_import_and_its_fetch_recorded,
        a_304_after_a_fetch_writes_nothing_and_counts_as_a_success,
        html_in_place_of_the_source_s_json_is_a_failed_fetch_that_names_what_was_expected,
        a_news_feed_s_articles_give_their_hack_s_date_and_loss_and_a_bad_page_keeps_the_item,
    ],
}

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/defillama_api_sample.json"
    ))
    .unwrap()
}

fn with_etag(body: Vec<u8>) -> Reply {
    Reply::Body {
        body,
        content_type: "application/json",
        etag: Some("\"v1\"".into()),
        last_modified: None,
    }
}

/// The built-in source `name`, pointed at `url`.
fn built_in_at(name: &str, url: String) -> kamiyo_ingest::sources::Source {
    let mut config = SourcesConfig::default();
    config.sources.insert(
        name.into(),
        SourceSettings {
            url: Some(url),
            timeout: Some(Duration::from_secs(2)),
            ..SourceSettings::default()
        },
    );
    let sources = config.resolve().unwrap();
    sources.into_iter().find(|s| s.name == name).unwrap()
}

async fn fetch(b: &Backend, url: String, previous: &Validators) -> SourceRun {
    run_source(b, &built_in_at("defillama", url), previous).await
}

async fn run_source(
    b: &Backend,
    source: &kamiyo_ingest::sources::Source,
    previous: &Validators,
) -> SourceRun {
    let retry = RetryPolicy::default();
    let fetcher = HttpFetcher::new(Duration::from_secs(1), Clock::system()).unwrap();
    let clock = Clock::system();
    let context = RunContext {
        incidents: &b.store.incidents,
        sources: &b.store.sources,
        retry: &retry,
        fetcher: &fetcher,
        clock: &clock,
        backend: if b.name == "sqlite" {
            BackendKind::Sqlite
        } else {
            BackendKind::Postgres
        },
        fetch_log_keep: kamiyo_store::DEFAULT_SOURCE_FETCH_RETENTION,
    };
    job::run(&context, source, previous, None).await
}

async fn report_of(b: &Backend) -> kamiyo_store::SourceReport {
    b.store
        .sources
        .report(kamiyo_store::DEFAULT_SOURCE_HEALTH_WINDOW, None, None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.source == "defillama")
        .expect("defillama is listed")
}

async fn a_fetched_source_is_ingested_like_an_import_and_its_fetch_recorded(b: Backend) {
    let server = FixtureServer::start(Reply::json(sample())).await;
    let run = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert_eq!(
        (run.outcome, run.error.as_deref()),
        (RunOutcome::Imported, None),
        "{run:?}"
    );
    let report = run.report.as_ref().unwrap();
    // Samplswap names no chain: kept on the unknown chain, as in an import.
    assert_eq!(
        (report.records, report.inserted, report.rejected.len()),
        (3, 3, 0)
    );
    assert_eq!(b.store.incidents.count().await.unwrap(), 3);
    let health = report_of(&b).await;
    assert_eq!(
        (health.fetches_in_window, health.claims),
        (1, 3),
        "{health:?}"
    );

    // The same answer again (no validators): unchanged by its hash, nothing written.
    let again = fetch(&b, server.url("/hacks"), &run.validators).await;
    assert_eq!(again.outcome, RunOutcome::Unchanged, "{again:?}");
    assert!(again.report.is_none());
    assert_eq!(report_of(&b).await.fetches_in_window, 2);
    let logged = b
        .store
        .sources
        .last_fetches("defillama", 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        logged.is_success() && logged.is_not_modified(),
        "{logged:?}"
    );
}

async fn a_304_after_a_fetch_writes_nothing_and_counts_as_a_success(b: Backend) {
    let server = FixtureServer::start(with_etag(sample())).await;
    let first = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert_eq!(first.outcome, RunOutcome::Imported, "{first:?}");
    let second = fetch(&b, server.url("/hacks"), &first.validators).await;
    assert_eq!(
        (second.outcome, second.status, second.error.as_deref()),
        (RunOutcome::NotModified, Some(304), None)
    );
    assert_eq!(second.validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(report_of(&b).await.success_rate_pct, Some(100.0));
}

async fn html_in_place_of_the_source_s_json_is_a_failed_fetch_that_names_what_was_expected(
    b: Backend,
) {
    let server = FixtureServer::start(Reply::Body {
        body: b"<!DOCTYPE html><html><body>Just a moment...</body></html>".to_vec(),
        content_type: "text/html",
        etag: None,
        last_modified: None,
    })
    .await;
    let run = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert_eq!(run.outcome, RunOutcome::Failed);
    let error = run.error.as_deref().unwrap();
    assert!(error.contains("HTML"), "{error}");
    assert!(
        error.contains("JSON array of DeFiLlama hack records"),
        "{error}"
    );
    assert_eq!(b.store.incidents.count().await.unwrap(), 0);

    server.answer_with(Reply::json("[]"));
    let empty = fetch(&b, server.url("/hacks"), &Validators::default()).await;
    assert!(
        empty
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no record")),
        "{empty:?}"
    );
    let health = report_of(&b).await;
    assert_eq!(
        (health.fetches_in_window, health.success_rate_pct),
        (2, Some(0.0))
    );
}

/// A rekt.news-shaped feed on loopback whose items link to pages of the same server: one
/// article in markdown, one as an HTML page with its Next.js data, one that answers 404
/// and one on another host (never fetched). Each item is stored; the two read articles
/// carry the hack's own date and loss; the others stay as the feed gave them.
async fn a_news_feed_s_articles_give_their_hack_s_date_and_loss_and_a_bad_page_keeps_the_item(
    b: Backend,
) {
    let server = FixtureServer::start(Reply::status(404)).await;
    let item = |title: &str, link: &str, day: &str| {
        format!(
            "<item><title>{title}</title><link>{link}</link><pubDate>{day} Mar 2024 12:00:00 GMT</pubDate><description>News.</description></item>"
        )
    };
    let feed = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Rekt</title>{}{}{}{}</channel></rss>",
        item("Markdownfi - REKT", &server.url("/markdownfi-rekt/"), "Mon, 25"),
        item("Pagefi - REKT", &server.url("/pagefi-rekt/"), "Tue, 26"),
        item("Missingfi - REKT", &server.url("/missingfi-rekt/"), "Wed, 27"),
        item("Elsewherefi - REKT", "https://elsewhere.example/elsewherefi-rekt/", "Thu, 28"),
    );
    let markdown = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rekt_article.md"
    ))
    .unwrap();
    let page = br#"<!DOCTYPE html><html><body><article>Pagefi</article>
<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"post":{"rekt":{"amount":"1,250,000","audit":"Unaudited","date":"03/20/2024"},"tags":["Pagefi"]}}}}</script></body></html>"#;
    let body = |bytes: Vec<u8>, content_type| Reply::Body {
        body: bytes,
        content_type,
        etag: None,
        last_modified: None,
    };
    let feed_bytes = feed.into_bytes();
    server.script([
        body(feed_bytes.clone(), "application/rss+xml"),
        body(markdown, "text/markdown"),
        body(page.to_vec(), "text/html"),
    ]);
    let rekt = built_in_at("rekt", server.url("/rss/feed.xml"));
    let run = run_source(&b, &rekt, &Validators::default()).await;
    assert_eq!(
        (run.outcome, run.error.as_deref()),
        (RunOutcome::Imported, None),
        "{run:?}"
    );
    let articles = run.articles.clone().unwrap();
    assert_eq!((articles.read, articles.skipped), (2, 0), "{articles:?}");
    assert_eq!(articles.failed.len(), 2, "{articles:?}");
    assert!(articles.failed[0].contains("404"), "{articles:?}");
    assert!(articles.failed[1].contains("origin"), "{articles:?}");
    assert_eq!(
        server.requests(),
        4,
        "the feed and three pages of its own origin"
    );
    assert_eq!(run.report.as_ref().unwrap().inserted, 4, "{run:?}");

    let listed = b
        .store
        .incidents
        .list(&kamiyo_store::incidents::ListRequest::default())
        .await
        .unwrap();
    let mut seen: Vec<(String, String, Option<String>)> = listed
        .items
        .iter()
        .map(|i| {
            (
                i.protocol.clone(),
                i.occurred_at.date_naive().to_string(),
                i.loss_usd.map(|usd| usd.to_string()),
            )
        })
        .collect();
    seen.sort();
    let row = |name: &str, day: &str, loss: Option<&str>| {
        (name.to_owned(), day.to_owned(), loss.map(str::to_owned))
    };
    assert_eq!(
        seen,
        [
            row("Elsewherefi", "2024-03-28", None),
            row("Markdownfi", "2024-03-22", Some("4800000.00")),
            row("Missingfi", "2024-03-27", None),
            row("Pagefi", "2024-03-20", Some("1250000.00")),
        ],
        "{}: read articles date the hack; the others keep the article's day",
        b.name
    );

    // The same feed again: unchanged by its hash, and no page is read.
    server.script([body(feed_bytes, "application/rss+xml")]);
    let again = run_source(&b, &rekt, &run.validators).await;
    assert_eq!(again.outcome, RunOutcome::Unchanged, "{again:?}");
    assert_eq!(server.requests(), 5, "only the feed");
}
