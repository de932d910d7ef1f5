//! Subscriptions, dispatch and deliveries in the store: what the dispatcher records,
//! what workers claim under a lease, and what an attempt changes. Every story runs on
//! PostgreSQL and on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use kamiyo_domain::alert_filter::AlertFilterInput;
use kamiyo_domain::{Role, Tier};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::alerts::{
    AttemptOutcome, AttemptRecord, DueDelivery, EventKind, NewSubscription, PlannedDelivery,
    SubscriptionPatch,
};
use kamiyo_store::{AlertStore, IncidentStore};
use kamiyo_testkit::claim;

type Backend = common::Backend<AlertStore>;

kamiyo_testkit::per_backend! {
    AlertStore::new => [
        a_subscription_is_stored_listed_changed_and_deleted_without_its_secret,
        a_rotated_secret_signs_beside_the_new_one_for_a_day,
        an_event_is_dispatched_once_and_its_deliveries_are_claimed_by_one_worker_at_a_time,
        an_expired_lease_lets_another_worker_take_the_delivery_and_the_first_cannot_record,
        failures_retry_then_disable_after_days_and_gone_disables_at_once,
        a_failure_after_a_quiet_week_starts_a_new_streak,
        a_replay_sends_the_deliveries_since_a_time_again_with_their_ids,
    ],
}

fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(hours)
}

async fn user(b: &Backend, email: &str) -> i64 {
    AccountStore::new(b.db.clone())
        .create_user(email, Tier::Pro, Role::User)
        .await
        .unwrap()
        .id
}

fn webhook(user_id: i64, name: &str) -> NewSubscription {
    NewSubscription {
        user_id,
        name: name.into(),
        channel: "webhook".into(),
        target: "https://hooks.example/in".into(),
        secret: Some("whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0".into()),
        filter: AlertFilterInput {
            chains: vec!["ethereum".into()],
            ..AlertFilterInput::default()
        },
        events: vec![EventKind::Created, EventKind::Updated],
    }
}

async fn a_subscription_is_stored_listed_changed_and_deleted_without_its_secret(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let bob = user(&b, "bob@example.com").await;
    let created = b
        .store
        .create_subscription(&webhook(alice, "big"))
        .await
        .unwrap();
    b.store
        .create_subscription(&webhook(bob, "bob's"))
        .await
        .unwrap();
    assert_eq!(created.filter.chains, ["ethereum"]);
    assert_eq!(created.events, [EventKind::Created, EventKind::Updated]);
    assert!(created.enabled);
    let shown = serde_json::to_string(&created).unwrap();
    assert!(
        !shown.contains("whsec_"),
        "the secret is never shown: {shown}"
    );

    assert_eq!(
        b.store.subscriptions(Some(alice)).await.unwrap(),
        std::slice::from_ref(&created)
    );
    assert_eq!(b.store.subscriptions(None).await.unwrap().len(), 2);
    assert_eq!(b.store.count_subscriptions(alice).await.unwrap(), 1);

    let changed = b
        .store
        .update_subscription(
            created.id,
            &SubscriptionPatch {
                name: Some("renamed".into()),
                enabled: Some(false),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((changed.name.as_str(), changed.enabled), ("renamed", false));
    assert_eq!(
        changed.target, created.target,
        "what the patch leaves stays"
    );
    assert!(b
        .store
        .update_subscription(999_999, &SubscriptionPatch::default())
        .await
        .unwrap()
        .is_none());

    assert!(b.store.delete_subscription(created.id).await.unwrap());
    assert!(!b.store.delete_subscription(created.id).await.unwrap());
    assert!(b.store.subscription(created.id).await.unwrap().is_none());
}

async fn a_rotated_secret_signs_beside_the_new_one_for_a_day(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let s = b
        .store
        .create_subscription(&webhook(alice, "s"))
        .await
        .unwrap();
    let old = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0".to_owned();
    assert_eq!(
        b.store.signing_secrets(s.id, at(0)).await.unwrap(),
        std::slice::from_ref(&old)
    );
    assert!(b
        .store
        .rotate_secret(s.id, "whsec_bmV3", at(0))
        .await
        .unwrap());
    assert_eq!(
        b.store.signing_secrets(s.id, at(23)).await.unwrap(),
        ["whsec_bmV3".to_owned(), old]
    );
    assert_eq!(
        b.store.signing_secrets(s.id, at(25)).await.unwrap(),
        ["whsec_bmV3".to_owned()]
    );
}

/// One incident created through the store of the same database: one pending event.
async fn one_event(b: &Backend) -> i64 {
    let incidents = IncidentStore::new(b.db.clone());
    incidents
        .ingest(&claim("Euler").source("rekt").loss_usd("197000000").build())
        .await
        .unwrap();
    let pending = b.store.pending_events(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    pending[0].id
}

async fn dispatched(b: &Backend, subscriptions: &[i64], not_before: DateTime<Utc>) -> i64 {
    let event = one_event(b).await;
    let planned: Vec<PlannedDelivery> = subscriptions
        .iter()
        .map(|&subscription_id| PlannedDelivery {
            subscription_id,
            not_before,
        })
        .collect();
    let payload = serde_json::json!({"type": "incident.created", "data": {"id": 1}});
    assert!(b
        .store
        .record_dispatch(event, &payload, &planned, at(0))
        .await
        .unwrap());
    event
}

async fn an_event_is_dispatched_once_and_its_deliveries_are_claimed_by_one_worker_at_a_time(
    b: Backend,
) {
    let alice = user(&b, "alice@example.com").await;
    let now_one = b
        .store
        .create_subscription(&webhook(alice, "now"))
        .await
        .unwrap();
    let later = b
        .store
        .create_subscription(&webhook(alice, "later"))
        .await
        .unwrap();
    let subscribers = b.store.subscribers().await.unwrap();
    assert_eq!(subscribers.len(), 2);
    assert_eq!(subscribers[0].tier, Tier::Pro);

    let event = one_event(&b).await;
    let payload = serde_json::json!({"type": "incident.created"});
    let planned = [
        PlannedDelivery {
            subscription_id: now_one.id,
            not_before: at(0),
        },
        PlannedDelivery {
            subscription_id: later.id,
            not_before: at(24),
        },
    ];
    assert!(b
        .store
        .record_dispatch(event, &payload, &planned, at(0))
        .await
        .unwrap());
    assert!(
        !b.store
            .record_dispatch(event, &payload, &planned, at(0))
            .await
            .unwrap(),
        "a second dispatcher finds it done"
    );
    assert!(b.store.pending_events(10).await.unwrap().is_empty());

    let lease = Duration::from_secs(60);
    let first = b.store.claim_due(at(1), lease, 10).await.unwrap();
    assert_eq!(first.len(), 1, "the delayed one is not due");
    assert_eq!(first[0].subscription_id, now_one.id);
    assert_eq!(first[0].payload, payload);
    assert_eq!(first[0].message_id, format!("msg_{event}_{}", now_one.id));
    assert_eq!(first[0].secrets.len(), 1);
    assert!(
        b.store
            .claim_due(at(1), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased: no other worker gets it"
    );
    assert_eq!(
        b.store.next_due().await.unwrap(),
        Some(at(1) + chrono::Duration::seconds(60)),
        "a leased delivery is due for another worker when its lease runs out"
    );

    assert!(b
        .store
        .record_attempt(
            &first[0],
            &attempt(at(1), AttemptOutcome::Delivered),
            days(5),
            days(3),
        )
        .await
        .unwrap());
    assert_eq!(b.store.next_due().await.unwrap(), Some(at(24)));
    let due_tomorrow = b.store.claim_due(at(24), lease, 10).await.unwrap();
    assert_eq!(due_tomorrow.len(), 1);
    assert_eq!(due_tomorrow[0].subscription_id, later.id);

    let log = b.store.deliveries(now_one.id, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].status.as_str(), log[0].attempts), ("succeeded", 1));
    assert_eq!(log[0].log.len(), 1);
    assert_eq!(log[0].log[0].status_code, Some(200));
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

fn attempt(when: DateTime<Utc>, outcome: AttemptOutcome) -> AttemptRecord {
    let status = match outcome {
        AttemptOutcome::Delivered => 200,
        AttemptOutcome::Gone => 410,
        _ => 500,
    };
    AttemptRecord {
        attempted_at: when,
        duration_ms: 12,
        status_code: Some(status),
        error: (status != 200).then(|| format!("HTTP {status}")),
        response_body: Some("ok".into()),
        outcome,
    }
}

async fn an_expired_lease_lets_another_worker_take_the_delivery_and_the_first_cannot_record(
    b: Backend,
) {
    let alice = user(&b, "alice@example.com").await;
    let s = b
        .store
        .create_subscription(&webhook(alice, "s"))
        .await
        .unwrap();
    dispatched(&b, &[s.id], at(0)).await;
    let lease = Duration::from_secs(60);
    let stale: DueDelivery = b.store.claim_due(at(1), lease, 10).await.unwrap().remove(0);
    let later = at(1) + chrono::Duration::seconds(61);
    let taken = b.store.claim_due(later, lease, 10).await.unwrap();
    assert_eq!(taken.len(), 1, "the lease ran out: another worker takes it");
    assert!(
        !b.store
            .record_attempt(
                &stale,
                &attempt(later, AttemptOutcome::Delivered),
                days(5),
                days(3)
            )
            .await
            .unwrap(),
        "the first worker's lease is gone"
    );
    assert!(b
        .store
        .record_attempt(
            &taken[0],
            &attempt(later, AttemptOutcome::Delivered),
            days(5),
            days(3),
        )
        .await
        .unwrap());
    let log = b.store.deliveries(s.id, 10).await.unwrap();
    assert_eq!(log[0].status, "succeeded");
    assert_eq!(
        log[0].log.len(),
        2,
        "both attempts the receiver saw are logged"
    );
}

async fn failures_retry_then_disable_after_days_and_gone_disables_at_once(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let flaky = b
        .store
        .create_subscription(&webhook(alice, "flaky"))
        .await
        .unwrap();
    let gone = b
        .store
        .create_subscription(&webhook(alice, "gone"))
        .await
        .unwrap();
    dispatched(&b, &[flaky.id, gone.id], at(0)).await;
    let lease = Duration::from_secs(60);
    let claimed = b.store.claim_due(at(0), lease, 10).await.unwrap();
    let (f, g) = if claimed[0].subscription_id == flaky.id {
        (&claimed[0], &claimed[1])
    } else {
        (&claimed[1], &claimed[0])
    };
    b.store
        .record_attempt(g, &attempt(at(0), AttemptOutcome::Gone), days(5), days(3))
        .await
        .unwrap();
    let gone_now = b.store.subscription(gone.id).await.unwrap().unwrap();
    assert!(!gone_now.enabled);
    assert_eq!(
        gone_now.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );

    b.store
        .record_attempt(
            f,
            &attempt(at(0), AttemptOutcome::Retry(at(1))),
            days(5),
            days(3),
        )
        .await
        .unwrap();
    let failing = b.store.subscription(flaky.id).await.unwrap().unwrap();
    assert_eq!(failing.failing_since, Some(at(0)));
    assert!(failing.enabled);
    assert!(b
        .store
        .claim_due(at(0), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let retry = b.store.claim_due(at(1), lease, 10).await.unwrap().remove(0);
    assert_eq!(retry.attempts, 1);
    assert_eq!(retry.first_attempt_at, Some(at(0)));

    // Failing every two days since: a streak. Five days after the first failure it is
    // disabled, with why.
    b.store
        .record_attempt(
            &retry,
            &attempt(at(48), AttemptOutcome::Retry(at(96))),
            days(5),
            days(3),
        )
        .await
        .unwrap();
    let again = b
        .store
        .claim_due(at(96), lease, 10)
        .await
        .unwrap()
        .remove(0);
    b.store
        .record_attempt(
            &again,
            &attempt(at(96), AttemptOutcome::Retry(at(120))),
            days(5),
            days(3),
        )
        .await
        .unwrap();
    assert!(
        b.store
            .subscription(flaky.id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    let last = b
        .store
        .claim_due(at(120), lease, 10)
        .await
        .unwrap()
        .remove(0);
    let five_days = at(5 * 24);
    b.store
        .record_attempt(
            &last,
            &attempt(five_days, AttemptOutcome::Retry(at(200))),
            days(5),
            days(3),
        )
        .await
        .unwrap();
    let disabled = b.store.subscription(flaky.id).await.unwrap().unwrap();
    assert!(!disabled.enabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("every delivery failed for 5 days")
    );
    assert!(
        b.store
            .claim_due(at(300), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "a disabled subscription's deliveries wait"
    );

    // Enabled again by its owner: the streak starts over and the delivery resumes.
    let enabled = b
        .store
        .update_subscription(
            flaky.id,
            &SubscriptionPatch {
                enabled: Some(true),
                ..SubscriptionPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        enabled.enabled && enabled.disabled_reason.is_none() && enabled.failing_since.is_none()
    );
    assert_eq!(
        b.store.claim_due(at(300), lease, 10).await.unwrap().len(),
        1
    );
}

async fn a_replay_sends_the_deliveries_since_a_time_again_with_their_ids(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let s = b
        .store
        .create_subscription(&webhook(alice, "s"))
        .await
        .unwrap();
    dispatched(&b, &[s.id], at(0)).await;
    let lease = Duration::from_secs(60);
    let first = b.store.claim_due(at(0), lease, 10).await.unwrap().remove(0);
    b.store
        .record_attempt(
            &first,
            &attempt(at(0), AttemptOutcome::Delivered),
            days(5),
            days(3),
        )
        .await
        .unwrap();
    assert!(b
        .store
        .claim_due(at(2), lease, 10)
        .await
        .unwrap()
        .is_empty());

    let since = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(b.store.replay(s.id, since, at(2)).await.unwrap(), 1);
    let again = b.store.claim_due(at(2), lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, first.message_id);
    assert_eq!(
        b.store
            .replay(s.id, Utc::now() + chrono::Duration::hours(1), at(2))
            .await
            .unwrap(),
        0,
        "nothing written since then"
    );
}

async fn a_failure_after_a_quiet_week_starts_a_new_streak(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let s = b
        .store
        .create_subscription(&webhook(alice, "quiet"))
        .await
        .unwrap();
    dispatched(&b, &[s.id], at(0)).await;
    let lease = Duration::from_secs(60);
    let first = b.store.claim_due(at(0), lease, 10).await.unwrap().remove(0);
    b.store
        .record_attempt(
            &first,
            &attempt(at(0), AttemptOutcome::Retry(at(24 * 10))),
            days(5),
            days(3),
        )
        .await
        .unwrap();
    // Ten days without a failure (nothing was sent), then one: not five days of failing.
    let later = b
        .store
        .claim_due(at(24 * 10), lease, 10)
        .await
        .unwrap()
        .remove(0);
    b.store
        .record_attempt(
            &later,
            &attempt(at(24 * 10), AttemptOutcome::Retry(at(24 * 11))),
            days(5),
            days(3),
        )
        .await
        .unwrap();
    let now = b.store.subscription(s.id).await.unwrap().unwrap();
    assert!(now.enabled, "{now:?}");
    assert_eq!(now.failing_since, Some(at(24 * 10)), "a new streak");
}
