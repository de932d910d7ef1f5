//! One fetch of a source against a loopback server that misbehaves as scripted
//! (`kamiyo_testkit::FixtureServer`): validators and 304, an unchanged body, 429 with
//! Retry-After, 5xx, 4xx, a slow body, an oversized one, one cut short, a closed
//! connection, nothing listening. Each ends as it must, within its bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kamiyo_db::Clock;
use kamiyo_ingest::fetch::{
    FetchError, FetchLimits, Fetched, HttpFetcher, RetryPolicy, Validators, USER_AGENT,
};
use kamiyo_testkit::{FixtureServer, Reply};

const BODY: &[u8] = br#"[{"date": 1711065600, "name": "Examplefi"}]"#;

fn limits() -> FetchLimits {
    FetchLimits {
        timeout: Duration::from_millis(500),
        max_body_bytes: 1024,
        deadline: Duration::from_secs(5),
        retry: RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
        },
    }
}

fn fetcher() -> HttpFetcher {
    HttpFetcher::new(Duration::from_millis(500), Clock::system()).unwrap()
}

fn with_etag() -> Reply {
    Reply::Body {
        body: BODY.to_vec(),
        content_type: "application/json",
        etag: Some("\"v1\"".into()),
        last_modified: Some("Wed, 02 Dec 2026 10:00:00 GMT".into()),
    }
}

#[tokio::test]
async fn a_second_fetch_sends_the_validators_and_a_304_brings_nothing_new() {
    let server = FixtureServer::start(with_etag()).await;
    let first = fetcher()
        .fetch(&server.url("/hacks"), &Validators::default(), &limits())
        .await;
    let Ok(Fetched::Body { body, validators }) = first.result else {
        panic!("{first:?}");
    };
    assert_eq!((body.as_slice(), first.status), (BODY, Some(200)));
    assert_eq!(validators.etag.as_deref(), Some("\"v1\""));
    assert!(validators.body_sha256.is_some());
    let second = fetcher()
        .fetch(&server.url("/hacks"), &validators, &limits())
        .await;
    assert!(
        matches!(second.result, Ok(Fetched::NotModified { .. })),
        "{second:?}"
    );
    assert_eq!(second.status, Some(304));
    let heads = server.heads();
    assert!(heads[1].contains("if-none-match: \"v1\""), "{}", heads[1]);
    assert!(
        heads[1].contains("if-modified-since: Wed, 02 Dec 2026"),
        "{}",
        heads[1]
    );
    assert!(heads[0].contains(USER_AGENT), "{}", heads[0]);
}

#[tokio::test]
async fn the_same_body_without_validators_is_unchanged_by_its_hash() {
    let server = FixtureServer::start(Reply::json(BODY)).await;
    let first = fetcher()
        .fetch(&server.url("/"), &Validators::default(), &limits())
        .await;
    let Ok(Fetched::Body { validators, .. }) = first.result else {
        panic!("{first:?}");
    };
    let second = fetcher()
        .fetch(&server.url("/"), &validators, &limits())
        .await;
    assert!(
        matches!(second.result, Ok(Fetched::Unchanged { bytes, .. }) if bytes == BODY.len()),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_the_wait_it_asks_for() {
    let server = FixtureServer::start(Reply::json(BODY)).await;
    server.script([Reply::Status {
        status: 429,
        retry_after: Some("0".into()),
    }]);
    let report = fetcher()
        .fetch(&server.url("/"), &Validators::default(), &limits())
        .await;
    assert!(
        matches!(report.result, Ok(Fetched::Body { .. })),
        "{report:?}"
    );
    assert_eq!((report.attempts, server.requests()), (2, 2));
}

#[tokio::test]
async fn a_source_asking_for_a_long_wait_is_left_to_the_next_slot() {
    let server = FixtureServer::start(Reply::Status {
        status: 503,
        retry_after: Some("120".into()),
    })
    .await;
    let report = fetcher()
        .fetch(&server.url("/"), &Validators::default(), &limits())
        .await;
    assert_eq!(report.result, Err(FetchError::Status { status: 503 }));
    assert_eq!(
        server.requests(),
        1,
        "no retry storm against a source that is down"
    );
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_attempts_and_client_errors_not_at_all() {
    let server = FixtureServer::start(Reply::status(500)).await;
    let report = fetcher()
        .fetch(&server.url("/"), &Validators::default(), &limits())
        .await;
    assert_eq!(report.result, Err(FetchError::Status { status: 500 }));
    assert_eq!((report.attempts, server.requests()), (3, 3));

    let gone = FixtureServer::start(Reply::status(404)).await;
    let report = fetcher()
        .fetch(&gone.url("/"), &Validators::default(), &limits())
        .await;
    assert_eq!(report.result, Err(FetchError::Status { status: 404 }));
    assert_eq!(gone.requests(), 1);
}

#[tokio::test]
async fn a_body_trickling_past_the_timeout_ends_the_attempt_at_its_deadline() {
    let server = FixtureServer::start(Reply::Slow {
        body: BODY.to_vec(),
        chunk: 4,
        pause: Duration::from_millis(200),
    })
    .await;
    let limits = FetchLimits {
        retry: RetryPolicy {
            attempts: 1,
            ..limits().retry
        },
        ..limits()
    };
    let report = fetcher()
        .fetch(&server.url("/"), &Validators::default(), &limits)
        .await;
    assert_eq!(
        report.result,
        Err(FetchError::Timeout(Duration::from_millis(500)))
    );
    // Generous: the mechanism, not a figure (the attempt's deadline fired).
    assert!(report.duration < Duration::from_secs(3), "{report:?}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_not_fetched_again() {
    let server = FixtureServer::start(Reply::json(vec![b' '; 4096])).await;
    let report = fetcher()
        .fetch(&server.url("/"), &Validators::default(), &limits())
        .await;
    assert_eq!(report.result, Err(FetchError::TooLarge { limit: 1024 }));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_body_cut_short_and_a_closed_connection_are_failures_retried_then_reported() {
    let server = FixtureServer::start(Reply::Truncated {
        declared: 500,
        body: BODY.to_vec(),
    })
    .await;
    let report = fetcher()
        .fetch(&server.url("/"), &Validators::default(), &limits())
        .await;
    assert!(
        matches!(report.result, Err(FetchError::Body(_))),
        "{report:?}"
    );
    assert_eq!(server.requests(), 3);

    let closing = FixtureServer::start(Reply::Close).await;
    closing.script([Reply::Close]);
    closing.answer_with(Reply::json(BODY));
    let report = fetcher()
        .fetch(&closing.url("/"), &Validators::default(), &limits())
        .await;
    assert!(
        matches!(report.result, Ok(Fetched::Body { .. })),
        "{report:?}"
    );
    assert_eq!(report.attempts, 2, "the closed connection was retried");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_that_names_no_url() {
    let server = FixtureServer::start(Reply::Close).await;
    let url = server.url("/hacks?token=s3cret");
    drop(server);
    let report = fetcher()
        .fetch(&url, &Validators::default(), &limits())
        .await;
    let Err(FetchError::Connect(reason)) = &report.result else {
        panic!("{report:?}");
    };
    assert!(!reason.contains("s3cret"), "{reason}");
    assert_eq!(report.attempts, 3);
}

/// A redirect within the origin asked is followed; one to another origin (another port
/// is another origin) is not: the fetch fails with the redirect's status, and the other
/// server never sees a request.
#[tokio::test]
async fn redirects_are_followed_within_the_origin_only() {
    let elsewhere = FixtureServer::start(Reply::json(BODY.to_vec())).await;
    let server = FixtureServer::start(Reply::json(BODY.to_vec())).await;
    server.script([Reply::Redirect {
        status: 302,
        location: server.url("/moved"),
    }]);
    let moved = fetcher()
        .fetch(&server.url("/hacks"), &Validators::default(), &limits())
        .await;
    assert!(
        matches!(moved.result, Ok(Fetched::Body { .. })),
        "{moved:?}"
    );
    assert_eq!(server.requests(), 2);

    server.script([Reply::Redirect {
        status: 302,
        location: elsewhere.url("/internal"),
    }]);
    let away = fetcher()
        .fetch(&server.url("/hacks"), &Validators::default(), &limits())
        .await;
    assert_eq!(
        (away.result.clone().err(), away.status),
        (Some(FetchError::Status { status: 302 }), Some(302)),
        "{away:?}"
    );
    assert_eq!(elsewhere.requests(), 0, "the other origin was never asked");
}
