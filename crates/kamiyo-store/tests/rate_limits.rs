//! The shared rate-limit buckets on PostgreSQL (`kamiyo_rate_limit_take`, migration
//! 0015): a token per window per check, none taken from any window when one is empty,
//! exactly the capacity admitted however many checks arrive at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use kamiyo_db::Pool;
use kamiyo_store::rate_limits::SharedBuckets;

async fn buckets() -> (common::Backend<()>, SharedBuckets) {
    let b = common::postgres(|_| ()).await;
    let Pool::Postgres(pool) = b.db.primary().clone() else {
        unreachable!("a PostgreSQL backend")
    };
    (b, SharedBuckets::new(pool))
}

#[tokio::test]
async fn a_caller_gets_its_capacity_then_a_denial_that_costs_no_window_anything() {
    let (_b, buckets) = buckets().await;
    let capacity = [3, 100, 1000];
    for left in [2.0, 1.0, 0.0] {
        let taken = buckets.take("ip:192.0.2.1", capacity).await.unwrap();
        assert!(taken.allowed);
        // Refilled by the time elapsed between checks: a little over what is left.
        assert!((left..left + 0.5).contains(&taken.tokens[0]), "{taken:?}");
    }
    let denied = buckets.take("ip:192.0.2.1", capacity).await.unwrap();
    assert!(!denied.allowed, "{denied:?}");
    let hour_before = denied.tokens[1];
    let again = buckets.take("ip:192.0.2.1", capacity).await.unwrap();
    assert!(!again.allowed);
    assert!(
        again.tokens[1] >= hour_before,
        "a denial takes nothing from the hour: {denied:?} then {again:?}"
    );
    // Another caller's buckets are its own.
    assert!(
        buckets
            .take("ip:192.0.2.2", capacity)
            .await
            .unwrap()
            .allowed
    );
    let peeked = buckets.peek("ip:192.0.2.1", capacity).await.unwrap();
    assert!(peeked[0] < 1.0, "{peeked:?}");
    assert_eq!(
        buckets.peek("ip:never-seen", capacity).await.unwrap(),
        [3.0, 100.0, 1000.0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_arriving_at_once_admit_exactly_the_capacity() {
    let (_b, buckets) = buckets().await;
    // Per minute 10; at 10 per minute a token refills every 6 s, far longer than the
    // checks take.
    let capacity = [10, 600, 14_400];
    let checks = (0..40).map(|_| {
        let buckets = buckets.clone();
        tokio::spawn(async move { buckets.take("key:7", capacity).await.unwrap().allowed })
    });
    let mut admitted = 0;
    for check in checks {
        if check.await.unwrap() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
}

#[tokio::test]
async fn callers_idle_for_a_day_are_swept() {
    let (b, buckets) = buckets().await;
    buckets.take("ip:old", [5, 5, 5]).await.unwrap();
    buckets.take("ip:new", [5, 5, 5]).await.unwrap();
    common::execute_batch(
        &b.db,
        "UPDATE rate_limit_buckets SET updated_at = now() - interval '25 hours' WHERE key = 'ip:old'",
    )
    .await;
    assert_eq!(
        buckets
            .sweep(std::time::Duration::from_secs(86_400))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        common::count(&b.db, "SELECT count(*) FROM rate_limit_buckets").await,
        1
    );
}
