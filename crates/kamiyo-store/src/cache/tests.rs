//! The cache's rules, on a manual clock: time passes only when a test says so.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kamiyo_db::ManualClock;

use super::*;

const TTL: Duration = Duration::from_secs(2);

fn cache(limits: CacheLimits) -> (TtlCache<String, String, &'static str>, ManualClock) {
    let time = ManualClock::new();
    (
        TtlCache::new(limits, time.clock()).sized_by(String::len),
        time,
    )
}

/// `key`'s answer: `key#n`, where `n` counts the computations of every key so far.
async fn answer(
    cache: &TtlCache<String, String, &'static str>,
    key: &str,
    runs: &AtomicUsize,
) -> String {
    cache
        .get_or_compute(
            key.to_owned(),
            || async { Ok::<_, ()>(format!("{key}#{}", runs.fetch_add(1, Ordering::SeqCst))) },
            |_| "failed",
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_answer_is_served_for_its_ttl_then_computed_again() {
    let runs = AtomicUsize::new(0);
    let (cache, time) = cache(CacheLimits::new(TTL, 8));
    assert_eq!(answer(&cache, "k", &runs).await, "k#0");
    time.advance(TTL - Duration::from_millis(1));
    assert_eq!(answer(&cache, "k", &runs).await, "k#0", "still fresh");
    time.advance(Duration::from_millis(1));
    assert_eq!(answer(&cache, "k", &runs).await, "k#1", "expired");
}

#[tokio::test]
async fn a_write_generation_invalidates_and_a_zero_ttl_computes_every_time() {
    let runs = AtomicUsize::new(0);
    let (cache, _time) = cache(CacheLimits::new(TTL, 8));
    assert_eq!(answer(&cache, "k", &runs).await, "k#0");
    cache.generation().advance();
    assert_eq!(answer(&cache, "k", &runs).await, "k#1", "a write happened");
    cache.invalidate();
    assert_eq!(answer(&cache, "k", &runs).await, "k#2");

    let (off, _time) = self::cache(CacheLimits::new(Duration::ZERO, 8));
    assert_eq!(answer(&off, "k", &runs).await, "k#3");
    assert_eq!(answer(&off, "k", &runs).await, "k#4");
    assert_eq!(off.usage(), (0, 0));
}

#[tokio::test]
async fn concurrent_callers_share_one_computation() {
    let runs = &AtomicUsize::new(0);
    let (cache, _time) = cache(CacheLimits::new(TTL, 8));
    let (release, released) = tokio::sync::watch::channel(false);
    let call = || {
        let mut released = released.clone();
        cache.get_or_compute(
            "k".to_owned(),
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                // The computation cannot finish before every caller has asked.
                released.wait_for(|r| *r).await.map_err(|_| ())?;
                Ok("42".to_owned())
            },
            |_: &()| "failed",
        )
    };
    let opener = async {
        tokio::task::yield_now().await;
        release.send(true).unwrap();
    };
    let (a, b, c, d, ()) = tokio::join!(call(), call(), call(), call(), opener);
    for outcome in [a, b, c, d] {
        assert_eq!(outcome.unwrap(), "42");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn waiters_get_the_shared_failure_which_is_never_served_again() {
    let runs = &AtomicUsize::new(0);
    let (cache, _time) = cache(CacheLimits::new(TTL, 8));
    let call = || {
        cache.get_or_compute(
            "k".to_owned(),
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Err::<String, _>("timed out, with its cause")
            },
            |_| "timed out",
        )
    };
    let (a, b, c) = tokio::join!(call(), call(), call());
    let mut own = 0;
    for outcome in [a, b, c] {
        match outcome {
            Err(Failure::Own(error)) => {
                own += 1;
                assert_eq!(error, "timed out, with its cause");
            }
            Err(Failure::Waited(shared)) => assert_eq!(shared, "timed out"),
            Ok(value) => panic!("{value}"),
        }
    }
    assert_eq!(
        (own, runs.load(Ordering::SeqCst)),
        (1, 1),
        "one computation"
    );
    assert_eq!(answer(&cache, "k", runs).await, "k#1", "computed again");
}

/// Polls `future` once; it must not be ready yet.
async fn started<F: Future>(future: &mut std::pin::Pin<Box<F>>) {
    std::future::poll_fn(|cx| {
        assert!(future.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_computation_is_taken_over_by_a_waiter() {
    let (cache, _time) = cache(CacheLimits::new(TTL, 8));
    let runs = &AtomicUsize::new(0);
    let mut first = Box::pin(cache.get_or_compute(
        "k".to_owned(),
        || async {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<String, ()>>().await
        },
        |_| "failed",
    ));
    started(&mut first).await;
    let mut second = Box::pin(answer(&cache, "k", runs));
    started(&mut second).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the second waits");
    // The first caller is dropped mid-way, as a cancelled request is.
    drop(first);
    assert_eq!(second.await, "k#1");
}

#[tokio::test]
async fn when_full_of_live_answers_a_new_one_is_served_but_not_kept() {
    let runs = AtomicUsize::new(0);
    let (cache, time) = cache(CacheLimits::new(TTL, 2));
    answer(&cache, "a", &runs).await;
    answer(&cache, "b", &runs).await;
    assert_eq!(answer(&cache, "c", &runs).await, "c#2", "served");
    assert_eq!(answer(&cache, "c", &runs).await, "c#3", "not kept");
    assert_eq!(answer(&cache, "a", &runs).await, "a#0", "the old ones stay");
    time.advance(TTL);
    assert_eq!(
        answer(&cache, "c", &runs).await,
        "c#4",
        "room once they expired"
    );
    assert_eq!(answer(&cache, "c", &runs).await, "c#4");
    assert_eq!(cache.usage().0, 1);
}

#[tokio::test]
async fn entries_and_bytes_are_bounded_and_an_oversized_answer_is_served_but_not_kept() {
    let runs = AtomicUsize::new(0);
    let (cache, time) = cache(CacheLimits::new(TTL, 4).with_max_bytes(16));
    for i in 0..40 {
        answer(&cache, &format!("key{i}"), &runs).await;
        let (entries, bytes) = cache.usage();
        assert!(
            entries <= 4 && bytes <= 16,
            "{entries} entries, {bytes} bytes"
        );
        if i % 8 == 7 {
            time.advance(TTL);
        }
    }
    time.advance(TTL);
    let long = "x".repeat(17);
    let first = answer(&cache, &long, &runs).await;
    assert_eq!(first.len(), 20, "served");
    assert_ne!(answer(&cache, &long, &runs).await, first, "not kept");
    assert!(cache.usage().1 <= 16);
}

#[test]
fn insert_keeps_only_what_was_computed_under_the_current_generation() {
    let (cache, time) = cache(CacheLimits::new(TTL, 2));
    let started = cache.generation().current();
    cache.insert("h1".into(), "p1".into(), started);
    assert_eq!(cache.get("h1"), Some("p1".into()));
    assert_eq!(cache.get("h2"), None);

    // A computation that raced with a write is not kept.
    cache.invalidate();
    assert_eq!(cache.get("h1"), None);
    cache.insert("h2".into(), "p2".into(), started);
    assert_eq!(cache.get("h2"), None);

    let now = cache.generation().current();
    for key in ["h1", "h2", "h3"] {
        cache.insert(key.into(), key.into(), now);
    }
    assert_eq!(
        (cache.get("h1"), cache.get("h3")),
        (Some("h1".into()), None),
        "full: keeps what it has"
    );
    time.advance(TTL);
    assert_eq!(cache.get("h1"), None, "expired");
    cache.insert("h3".into(), "h3".into(), now);
    assert_eq!(
        cache.usage().0,
        1,
        "the expired two made room for the third"
    );
}
