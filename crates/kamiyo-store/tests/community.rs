//! Community submissions: matched when they arrive, reviewed, and a verification stored
//! through the ingest path together with its review, reputation and bounty, or nothing
//! at all. Every story runs on PostgreSQL and on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::community::{
    count, decide, ingest, now, rewards, store, submission, submit, user, Backend, HASH,
};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::community::{Decision, Rewards, Submitted};
use kamiyo_store::{IncidentStore, StoreError};
use kamiyo_testkit::claim;

kamiyo_testkit::per_backend! {
    store => [
        a_submission_matches_an_incident_candidates_or_none,
        the_same_submission_twice_is_one_row,
        verifying_stores_a_community_claim_with_its_review_points_and_bounty,
        a_second_verified_report_of_one_incident_earns_points_but_no_second_bounty,
        rejecting_costs_points_and_records_the_reason,
        a_submission_is_reviewed_once_and_never_by_its_submitter,
        gains_are_capped_per_day_and_losses_are_not,
        a_bounty_is_paid_once_with_its_reference,
        a_disabled_users_pending_submissions_leave_the_queue,
    ],
}

async fn a_submission_matches_an_incident_candidates_or_none(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let euler = ingest(
        &b,
        claim("Euler Finance")
            .chain("ethereum")
            .date("2023-03-13")
            .loss_usd("197000000")
            .tx("ethereum", HASH),
    )
    .await;
    let by_hash = submit(&b, &submission(alice, "Euler", "2023-03-13", Some(HASH))).await;
    assert_eq!(by_hash.matched, "incident");
    assert_eq!(by_hash.exploit_id, Some(euler));
    assert_eq!(by_hash.status, "pending");

    let alpha = ingest(
        &b,
        claim("Alpha Protocol").chain("ethereum").date("2023-01-01"),
    )
    .await;
    let near = submit(&b, &submission(alice, "Alpha Protocol", "2023-01-25", None)).await;
    assert_eq!(near.matched, "candidates", "{near:?}");
    assert_eq!(near.candidate_ids, [alpha]);
    assert_eq!(near.exploit_id, None);

    let fresh = submit(
        &b,
        &submission(alice, "Nobody Heard Of", "2023-06-01", None),
    )
    .await;
    assert_eq!(fresh.matched, "none");
    assert!(fresh.candidate_ids.is_empty());
    // Matching stored nothing: the dry run's incident was rolled back.
    assert_eq!(count(&b, "SELECT count(*) FROM exploits").await, 2);
}

async fn the_same_submission_twice_is_one_row(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let first = submit(&b, &submission(alice, "Twice", "2023-06-01", None)).await;
    match b
        .store
        .submit(&submission(alice, "Twice", "2023-06-01", None), now())
        .await
        .unwrap()
    {
        Submitted::Duplicate(s) => assert_eq!(s.id, first.id),
        Submitted::New(s) => panic!("a second row {}", s.id),
    }
    assert_eq!(
        count(&b, "SELECT count(*) FROM community_submissions").await,
        1
    );
}

async fn verifying_stores_a_community_claim_with_its_review_points_and_bounty(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let reviewer = user(&b, "rita@example.com").await;
    let s = submit(
        &b,
        &submission(alice, "Brand New Hack", "2023-06-01", Some(HASH)),
    )
    .await;
    let reviewed = decide(
        &b,
        s.id,
        Some(reviewer),
        Decision::Verify,
        "tx checked on Etherscan",
    )
    .await
    .unwrap();
    let incident = reviewed.ingest.unwrap().exploit_id;
    assert_eq!(reviewed.submission.status, "verified");
    assert_eq!(reviewed.submission.exploit_id, Some(incident));
    let stored = IncidentStore::new(b.db.clone())
        .get(incident)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.sources.len(), 1);
    assert_eq!(stored.sources[0].source, "community");
    assert_eq!(
        stored.sources[0].external_id.as_deref(),
        Some(&*format!("submission-{}", s.id))
    );
    assert_eq!(
        count(
            &b,
            &format!(
                "SELECT count(*) FROM community_submissions WHERE claim_id = {}",
                stored.sources[0].id
            )
        )
        .await,
        1,
        "the submission names the claim it became"
    );
    let rep = b.store.reputation(alice, now()).await.unwrap();
    assert_eq!(
        (rep.score, rep.submissions_verified, rep.gained_today),
        (10, 1, 10)
    );
    assert_eq!(
        count(
            &b,
            &format!("SELECT score FROM user_reputation WHERE user_id = {alice}")
        )
        .await,
        10
    );
    let bounties = b.store.bounties(Some(alice)).await.unwrap();
    assert_eq!(bounties.len(), 1);
    assert_eq!(
        (bounties[0].amount_usd.as_str(), bounties[0].status.as_str()),
        ("50.00", "owed")
    );
    assert_eq!(bounties[0].exploit_id, Some(incident));
    assert_eq!(
        count(&b, "SELECT count(*) FROM submission_reviews WHERE decision = 'verify' AND reason = 'tx checked on Etherscan'").await,
        1
    );
    // The same alert events as any source's claim.
    assert_eq!(
        count(&b, &format!("SELECT count(*) FROM alert_events WHERE exploit_id = {incident} AND kind = 'incident.created'")).await,
        1
    );
}

async fn a_second_verified_report_of_one_incident_earns_points_but_no_second_bounty(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let bob = user(&b, "bob@example.com").await;
    let reviewer = user(&b, "rita@example.com").await;
    let first = submit(
        &b,
        &submission(alice, "Shared Hack", "2023-06-01", Some(HASH)),
    )
    .await;
    let second = submit(
        &b,
        &submission(bob, "Shared Hack", "2023-06-01", Some(HASH)),
    )
    .await;
    let one = decide(&b, first.id, Some(reviewer), Decision::Verify, "ok")
        .await
        .unwrap();
    let two = decide(&b, second.id, Some(reviewer), Decision::Verify, "ok")
        .await
        .unwrap();
    assert_eq!(
        one.submission.exploit_id, two.submission.exploit_id,
        "one incident"
    );
    assert_eq!(
        b.store.reputation(bob, now()).await.unwrap().score,
        5,
        "evidence points"
    );
    assert!(
        b.store.bounties(Some(bob)).await.unwrap().is_empty(),
        "never twice for one incident"
    );
    assert_eq!(b.store.bounties(None).await.unwrap().len(), 1);
}

async fn rejecting_costs_points_and_records_the_reason(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let reviewer = user(&b, "rita@example.com").await;
    let s = submit(&b, &submission(alice, "Made Up", "2023-06-01", None)).await;
    let reviewed = decide(
        &b,
        s.id,
        Some(reviewer),
        Decision::Reject,
        "no such transaction",
    )
    .await
    .unwrap();
    assert_eq!(reviewed.submission.status, "rejected");
    assert_eq!(
        reviewed.submission.review_note.as_deref(),
        Some("no such transaction")
    );
    assert!(reviewed.ingest.is_none());
    let rep = b.store.reputation(alice, now()).await.unwrap();
    assert_eq!((rep.score, rep.submissions_rejected), (-10, 1));
    assert_eq!(count(&b, "SELECT count(*) FROM exploits").await, 0);
    assert!(b.store.bounties(None).await.unwrap().is_empty());
}

async fn a_submission_is_reviewed_once_and_never_by_its_submitter(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let reviewer = user(&b, "rita@example.com").await;
    let s = submit(&b, &submission(alice, "Once", "2023-06-01", None)).await;
    let own = decide(&b, s.id, Some(alice), Decision::Verify, "mine")
        .await
        .unwrap_err();
    assert!(
        matches!(own, StoreError::Refused { field: "id", .. }),
        "{own}"
    );
    decide(
        &b,
        s.id,
        Some(reviewer),
        Decision::Duplicate,
        "already known",
    )
    .await
    .unwrap();
    let again = decide(
        &b,
        s.id,
        Some(reviewer),
        Decision::Verify,
        "changed my mind",
    )
    .await
    .unwrap_err();
    assert!(again.to_string().contains("already reviewed"), "{again}");
    assert_eq!(
        count(&b, "SELECT count(*) FROM submission_reviews").await,
        1
    );
    assert_eq!(count(&b, "SELECT count(*) FROM exploits").await, 0);
}

async fn gains_are_capped_per_day_and_losses_are_not(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let reviewer = user(&b, "rita@example.com").await;
    let capped = Rewards {
        daily_cap: 12,
        ..rewards()
    };
    for (i, protocol) in ["Cap One", "Cap Two"].into_iter().enumerate() {
        let hash = format!("0x{}", format!("{i}").repeat(64));
        let s = submit(&b, &submission(alice, protocol, "2023-06-01", Some(&hash))).await;
        b.store
            .review(s.id, Some(reviewer), Decision::Verify, "ok", capped, now())
            .await
            .unwrap();
    }
    assert_eq!(
        b.store.reputation(alice, now()).await.unwrap().score,
        12,
        "10 + 2 of 10"
    );
    let s = submit(&b, &submission(alice, "Cap Three", "2023-06-02", None)).await;
    b.store
        .review(
            s.id,
            Some(reviewer),
            Decision::Reject,
            "false",
            capped,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        b.store.reputation(alice, now()).await.unwrap().score,
        2,
        "a loss is whole"
    );
    // A new day, a new cap.
    let tomorrow = now() + chrono::Duration::days(1);
    let s = submit(&b, &submission(alice, "Cap Four", "2023-06-03", None)).await;
    b.store
        .review(
            s.id,
            Some(reviewer),
            Decision::Verify,
            "ok",
            capped,
            tomorrow,
        )
        .await
        .unwrap();
    assert_eq!(b.store.reputation(alice, tomorrow).await.unwrap().score, 12);
}

/// A failure at the last step of a verification (the bounty, refused by a trigger here)
/// leaves nothing of it: no incident, no claim, no review, no points, still pending.
#[tokio::test]
async fn a_verification_that_fails_at_its_last_step_leaves_nothing_on_postgres() {
    let b = common::postgres(store).await;
    let alice = user(&b, "alice@example.com").await;
    let reviewer = user(&b, "rita@example.com").await;
    let s = submit(
        &b,
        &submission(alice, "Half Written", "2023-06-01", Some(HASH)),
    )
    .await;
    common::execute_batch(
        &b.db,
        "CREATE FUNCTION refuse_bounty() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'injected failure on bounties'; END $$; \
         CREATE TRIGGER refuse_bounty BEFORE INSERT ON bounties \
         FOR EACH ROW EXECUTE FUNCTION refuse_bounty();",
    )
    .await;
    let error = decide(&b, s.id, Some(reviewer), Decision::Verify, "ok")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("injected failure") || matches!(error, StoreError::Database(_)),
        "{error}"
    );
    for (table, rows) in [
        ("exploits", 0),
        ("exploit_sources", 0),
        ("submission_reviews", 0),
        ("reputation_events", 0),
        ("alert_events", 0),
    ] {
        assert_eq!(
            count(&b, &format!("SELECT count(*) FROM {table}")).await,
            rows,
            "{table}"
        );
    }
    assert_eq!(b.store.get(s.id).await.unwrap().unwrap().status, "pending");
    // Once the fault is gone the same review goes through whole.
    common::execute_batch(&b.db, "DROP TRIGGER refuse_bounty ON bounties;").await;
    decide(&b, s.id, Some(reviewer), Decision::Verify, "ok")
        .await
        .unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM bounties").await, 1);
}

async fn a_bounty_is_paid_once_with_its_reference(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let admin = user(&b, "ada@example.com").await;
    let s = submit(
        &b,
        &submission(alice, "Paid Hack", "2023-06-01", Some(HASH)),
    )
    .await;
    decide(&b, s.id, Some(admin), Decision::Verify, "ok")
        .await
        .unwrap();
    let owed = b.store.bounties(Some(alice)).await.unwrap().remove(0);
    let paid = b
        .store
        .pay_bounty(owed.id, Some(admin), "wire-2026-12-04", now())
        .await
        .unwrap();
    assert_eq!(paid.status, "paid");
    assert_eq!(paid.payment_reference.as_deref(), Some("wire-2026-12-04"));
    assert!(paid.paid_at.is_some());
    let twice = b
        .store
        .pay_bounty(owed.id, Some(admin), "wire-again", now())
        .await
        .unwrap_err();
    assert!(
        matches!(twice, StoreError::Refused { field: "id", .. }),
        "{twice}"
    );
    let missing = b
        .store
        .pay_bounty(999_999, Some(admin), "wire", now())
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::Refused { .. }), "{missing}");
}

async fn a_disabled_users_pending_submissions_leave_the_queue(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let bob = user(&b, "bob@example.com").await;
    submit(&b, &submission(alice, "Alice Report", "2023-06-01", None)).await;
    submit(&b, &submission(bob, "Bob Report", "2023-06-02", None)).await;
    assert_eq!(b.store.pending(50).await.unwrap().len(), 2);
    AccountStore::new(b.db.clone())
        .disable_user("bob@example.com")
        .await
        .unwrap();
    let queue = b.store.pending(50).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].submitted_by, Some(alice));
}
