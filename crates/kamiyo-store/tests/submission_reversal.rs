//! Taking a verified community submission back (a reversal), and what merges do to the
//! community rows of the incidents they retire. Every decision changes the claim, the
//! incident, the reputation and the bounty together or not at all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::community::{
    count, decide, ingest, now, store, submission, submit, user, Backend, HASH,
};
use kamiyo_store::community::{Decision, Submission};
use kamiyo_store::incidents::{Curate, DecisionKind};
use kamiyo_store::{IncidentStore, StoreError};
use kamiyo_testkit::claim;

kamiyo_testkit::per_backend! {
    store => [
        reversing_a_new_incident_removes_it_with_the_points_and_the_owed_bounty,
        reversing_evidence_rederives_the_incident_from_the_other_sources,
        only_a_verified_submission_is_reversed_and_only_once,
        a_reversal_that_fails_at_its_last_step_changes_nothing,
        a_rejection_that_fails_at_its_last_step_changes_nothing,
        a_merge_hands_submissions_and_one_live_bounty_to_the_survivor,
        two_reviewers_deciding_one_submission_at_once_record_one_decision,
        two_reversals_at_once_take_back_once,
        reversing_a_false_report_hands_its_hash_to_the_real_incident,
        reversing_evidence_that_changed_no_value_still_tells_subscribers,
        a_merge_keeps_a_paid_bounty_before_an_owed_one,
    ],
}

/// `protocol`'s report by `submitter`, verified by `reviewer`.
async fn verified(
    b: &Backend,
    submitter: i64,
    reviewer: i64,
    protocol: &str,
    hash: Option<&str>,
) -> Submission {
    let s = submit(b, &submission(submitter, protocol, "2023-06-01", hash)).await;
    decide(b, s.id, Some(reviewer), Decision::Verify, "tx checked")
        .await
        .unwrap()
        .submission
}

async fn reverse(b: &Backend, id: i64, reviewer: i64) -> Result<Submission, StoreError> {
    decide(
        b,
        id,
        Some(reviewer),
        Decision::Reverse,
        "the transaction was a test",
    )
    .await
    .map(|r| r.submission)
}

/// Trigger SQL that makes every `op` on `table` fail, in `b`'s dialect.
fn refuse(b: &Backend, table: &str, op: &str) -> String {
    if b.name == "postgres" {
        format!(
            "CREATE FUNCTION refuse_it() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure on {table}'; END $$; \
             CREATE TRIGGER refuse_it BEFORE {op} ON {table} \
             FOR EACH ROW EXECUTE FUNCTION refuse_it();"
        )
    } else {
        format!(
            "CREATE TRIGGER refuse_it BEFORE {op} ON {table} \
             BEGIN SELECT RAISE(ABORT, 'injected failure on {table}'); END;"
        )
    }
}

fn allow(b: &Backend, table: &str) -> String {
    if b.name == "postgres" {
        format!("DROP TRIGGER refuse_it ON {table}; DROP FUNCTION refuse_it();")
    } else {
        "DROP TRIGGER refuse_it;".into()
    }
}

/// The rows a decision touches, to compare before and after a refused one.
async fn snapshot(b: &Backend) -> Vec<i64> {
    let mut seen = Vec::new();
    for sql in [
        "SELECT count(*) FROM exploits",
        "SELECT count(*) FROM exploit_sources",
        "SELECT count(*) FROM exploit_tx_hashes",
        "SELECT count(*) FROM exploits WHERE tx_hash IS NOT NULL",
        "SELECT count(*) FROM submission_reviews",
        "SELECT count(*) FROM reputation_events",
        "SELECT coalesce(sum(points), 0) FROM reputation_events",
        "SELECT count(*) FROM bounties WHERE status = 'owed'",
        "SELECT count(*) FROM alert_events",
        "SELECT count(*) FROM community_submissions WHERE status = 'pending'",
        "SELECT count(*) FROM community_submissions WHERE status = 'verified'",
    ] {
        seen.push(count(b, sql).await);
    }
    seen
}

async fn reversing_a_new_incident_removes_it_with_the_points_and_the_owed_bounty(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let s = verified(&b, alice, rita, "Invented Hack", Some(HASH)).await;
    let incident = s.exploit_id.unwrap();
    assert!(s.claim_id.is_some());
    assert_eq!(b.store.reputation(alice, now()).await.unwrap().score, 10);

    let reversed = reverse(&b, s.id, rita).await.unwrap();
    assert_eq!(reversed.status, "reversed");
    assert_eq!(reversed.claim_id, None);
    assert_eq!(
        reversed.review_note.as_deref(),
        Some("the transaction was a test")
    );
    let incidents = IncidentStore::new(b.db.clone());
    assert!(
        incidents.get_fresh(incident).await.unwrap().is_none(),
        "its only claim withdrawn, the incident is gone"
    );
    assert_eq!(count(&b, "SELECT count(*) FROM exploit_sources").await, 0);
    assert_eq!(
        count(&b, "SELECT count(*) FROM exploit_tx_hashes").await,
        0,
        "its hash is free for the next report"
    );
    let rep = b.store.reputation(alice, now()).await.unwrap();
    assert_eq!((rep.score, rep.submissions_verified), (0, 0));
    assert_eq!(
        count(
            &b,
            "SELECT coalesce(sum(points), 0) FROM reputation_events WHERE reason = 'reversal'"
        )
        .await,
        -10
    );
    let bounty = b.store.bounties(Some(alice)).await.unwrap().remove(0);
    assert_eq!(bounty.status, "cancelled");
    assert_eq!(
        count(
            &b,
            "SELECT count(*) FROM submission_reviews WHERE decision = 'reverse'"
        )
        .await,
        1
    );
    // The same hash reported again later is a new incident, not a ghost of the old one.
    let again = ingest(
        &b,
        claim("Invented Hack")
            .date("2023-06-01")
            .tx("ethereum", HASH),
    )
    .await;
    assert_ne!(again, incident);
}

async fn reversing_evidence_rederives_the_incident_from_the_other_sources(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let euler = ingest(
        &b,
        claim("Euler Finance")
            .source("rekt")
            .chain("ethereum")
            .date("2023-03-13")
            .unknown_loss()
            .tx("ethereum", HASH),
    )
    .await;
    // The submission brings the only loss figure (its helper claims 1,000,000).
    let s = submit(&b, &submission(alice, "Euler", "2023-03-13", Some(HASH))).await;
    let s = decide(&b, s.id, Some(rita), Decision::Verify, "ok")
        .await
        .unwrap()
        .submission;
    assert_eq!(s.exploit_id, Some(euler));
    let incidents = IncidentStore::new(b.db.clone());
    let before = incidents.get_fresh(euler).await.unwrap().unwrap();
    assert_eq!(before.sources.len(), 2);
    assert!(before.loss_usd.is_some(), "{before:?}");
    let updates = format!(
        "SELECT count(*) FROM alert_events WHERE exploit_id = {euler} AND kind = 'incident.updated'"
    );
    let (events_before, updates_before) = (
        count(&b, "SELECT count(*) FROM alert_events").await,
        count(&b, &updates).await,
    );

    reverse(&b, s.id, rita).await.unwrap();
    let after = incidents.get_fresh(euler).await.unwrap().unwrap();
    assert_eq!(after.id, euler, "the incident keeps its id");
    assert_eq!(
        after
            .sources
            .iter()
            .map(|c| c.source.as_str())
            .collect::<Vec<_>>(),
        ["rekt"]
    );
    assert_eq!(after.loss_usd, None, "the community's figure left with it");
    assert_eq!(
        (
            count(&b, "SELECT count(*) FROM alert_events").await - events_before,
            count(&b, &updates).await - updates_before
        ),
        (1, 1),
        "subscribers hear of the change as of any other"
    );
    assert_eq!(b.store.reputation(alice, now()).await.unwrap().score, 0);
}

async fn only_a_verified_submission_is_reversed_and_only_once(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let pending = submit(&b, &submission(alice, "Pending One", "2023-06-01", None)).await;
    let refused = reverse(&b, pending.id, rita).await.unwrap_err();
    assert!(refused.to_string().contains("only a verified"), "{refused}");

    let s = verified(&b, alice, rita, "Reversed Once", Some(HASH)).await;
    let own = decide(&b, s.id, Some(alice), Decision::Reverse, "mine")
        .await
        .unwrap_err();
    assert!(own.to_string().contains("own submission"), "{own}");
    reverse(&b, s.id, rita).await.unwrap();
    let twice = reverse(&b, s.id, rita).await.unwrap_err();
    assert!(twice.to_string().contains("only a verified"), "{twice}");
    assert_eq!(
        count(
            &b,
            "SELECT count(*) FROM reputation_events WHERE reason = 'reversal'"
        )
        .await,
        1,
        "points are taken back once"
    );
    // A reversed submission is not pending again: it cannot be verified a second time.
    let verify = decide(&b, s.id, Some(rita), Decision::Verify, "again")
        .await
        .unwrap_err();
    assert!(verify.to_string().contains("already reviewed"), "{verify}");
}

/// The bounty's cancellation is the reversal's last step: refused there, the claim, the
/// incident, the points and the status stay as they were; once allowed, all change.
async fn a_reversal_that_fails_at_its_last_step_changes_nothing(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let s = verified(&b, alice, rita, "Half Reversed", Some(HASH)).await;
    let before = snapshot(&b).await;
    common::execute_batch(&b.db, &refuse(&b, "bounties", "UPDATE")).await;
    let error = reverse(&b, s.id, rita).await.unwrap_err();
    assert!(error.to_string().contains("injected failure"), "{error}");
    assert_eq!(snapshot(&b).await, before);
    let kept = b.store.get(s.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.status.as_str(), kept.claim_id),
        ("verified", s.claim_id)
    );
    assert!(IncidentStore::new(b.db.clone())
        .get_fresh(s.exploit_id.unwrap())
        .await
        .unwrap()
        .is_some());

    common::execute_batch(&b.db, &allow(&b, "bounties")).await;
    reverse(&b, s.id, rita).await.unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM exploits").await, 0);
    assert_eq!(b.store.reputation(alice, now()).await.unwrap().score, 0);
}

async fn a_rejection_that_fails_at_its_last_step_changes_nothing(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let s = submit(&b, &submission(alice, "False Alarm", "2023-06-01", None)).await;
    let before = snapshot(&b).await;
    // The recount of the submitter's reputation is the last write of a rejection.
    common::execute_batch(&b.db, &refuse(&b, "user_reputation", "UPDATE")).await;
    for decision in [Decision::Reject, Decision::Duplicate] {
        let error = decide(&b, s.id, Some(rita), decision, "no")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("injected failure"), "{error}");
        assert_eq!(snapshot(&b).await, before, "{decision:?}");
    }
    common::execute_batch(&b.db, &allow(&b, "user_reputation")).await;
    decide(&b, s.id, Some(rita), Decision::Reject, "no")
        .await
        .unwrap();
    assert_eq!(b.store.reputation(alice, now()).await.unwrap().score, -10);
}

async fn a_merge_hands_submissions_and_one_live_bounty_to_the_survivor(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let bob = user(&b, "bob@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    // Two reports the rules keep apart (different names, no shared hash), each a new
    // incident with a bounty owed, until a curator finds them one hack.
    let first = verified(&b, alice, rita, "Ronin Bridge", None).await;
    let second = verified(&b, bob, rita, "Axie Infinity", None).await;
    let (a, c) = (first.exploit_id.unwrap(), second.exploit_id.unwrap());
    assert_ne!(a, c);
    assert_eq!(
        count(&b, "SELECT count(*) FROM bounties WHERE status = 'owed'").await,
        2
    );
    IncidentStore::new(b.db.clone())
        .curate(Curate {
            kind: DecisionKind::Merge,
            incidents: vec![a, c],
            claims: Vec::new(),
            reason: "Ronin is Axie Infinity's bridge".into(),
            decided_by: "curator@example.com".into(),
        })
        .await
        .unwrap();
    // The lower id survives a tie.
    let survivor = a;
    assert_eq!(
        IncidentStore::new(b.db.clone())
            .redirect_fresh(c)
            .await
            .unwrap(),
        Some(survivor)
    );
    for id in [first.id, second.id] {
        assert_eq!(
            b.store.get(id).await.unwrap().unwrap().exploit_id,
            Some(survivor),
            "submission {id} names the surviving incident"
        );
    }
    let bounties = b.store.bounties(None).await.unwrap();
    let live: Vec<_> = bounties
        .iter()
        .filter(|x| x.status != "cancelled")
        .collect();
    assert_eq!(live.len(), 1, "one live bounty per incident: {bounties:#?}");
    assert_eq!(live[0].submission_id, first.id, "the first report keeps it");
    assert_eq!(live[0].exploit_id, Some(survivor));
    assert!(bounties.iter().all(|x| x.exploit_id == Some(survivor)));
    // A reversal of the merged-away report still finds its claim.
    reverse(&b, second.id, rita).await.unwrap();
    let incident = IncidentStore::new(b.db.clone())
        .get_fresh(survivor)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.sources.len(), 1);
}

async fn two_reviewers_deciding_one_submission_at_once_record_one_decision(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let ray = user(&b, "ray@example.com").await;
    let s = submit(
        &b,
        &submission(alice, "Contested", "2023-06-01", Some(HASH)),
    )
    .await;
    let (one, two) = tokio::join!(
        decide(&b, s.id, Some(rita), Decision::Verify, "true"),
        decide(&b, s.id, Some(ray), Decision::Reject, "false"),
    );
    assert!(
        one.is_ok() != two.is_ok(),
        "exactly one decision wins: {one:?} / {two:?}"
    );
    assert_eq!(
        count(&b, "SELECT count(*) FROM submission_reviews").await,
        1
    );
    assert_eq!(count(&b, "SELECT count(*) FROM reputation_events").await, 1);
    let stored = b.store.get(s.id).await.unwrap().unwrap();
    let (exploits, bounties) = if one.is_ok() {
        assert_eq!(stored.status, "verified");
        (1, 1)
    } else {
        assert_eq!(stored.status, "rejected");
        (0, 0)
    };
    assert_eq!(count(&b, "SELECT count(*) FROM exploits").await, exploits);
    assert_eq!(count(&b, "SELECT count(*) FROM bounties").await, bounties);
}

async fn two_reversals_at_once_take_back_once(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let ray = user(&b, "ray@example.com").await;
    let s = verified(&b, alice, rita, "Reversed Twice", Some(HASH)).await;
    let (one, two) = tokio::join!(reverse(&b, s.id, rita), reverse(&b, s.id, ray));
    assert!(one.is_ok() != two.is_ok(), "{one:?} / {two:?}");
    let refused = one.err().or(two.err()).unwrap();
    assert!(
        matches!(refused, StoreError::Refused { field: "id", .. }),
        "the loser is told about the submission: {refused}"
    );
    assert_eq!(
        count(
            &b,
            "SELECT count(*) FROM submission_reviews WHERE decision = 'reverse'"
        )
        .await,
        1
    );
    assert_eq!(b.store.reputation(alice, now()).await.unwrap().score, 0);
}

/// A false report of "Foo" carried the hash of the real "Bar" hack: it made an incident
/// holding the hash, and the real report of Bar, joining Bar's incident by name, could
/// only list it. Reversed, Foo's incident goes and Bar's takes its hash.
async fn reversing_a_false_report_hands_its_hash_to_the_real_incident(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let bar = ingest(
        &b,
        claim("Bar Protocol")
            .source("defillama")
            .chain("ethereum")
            .date("2023-06-01"),
    )
    .await;
    let false_report = verified(&b, alice, rita, "Foo Finance", Some(HASH)).await;
    let foo_incident = false_report.exploit_id.unwrap();
    assert_ne!(foo_incident, bar);
    let rekt = ingest(
        &b,
        claim("Bar Protocol")
            .source("rekt")
            .chain("ethereum")
            .date("2023-06-01")
            .tx("ethereum", HASH),
    )
    .await;
    assert_eq!(
        rekt, bar,
        "the real report joins Bar by its name, listing the hash"
    );

    reverse(&b, false_report.id, rita).await.unwrap();
    let incidents = IncidentStore::new(b.db.clone());
    assert!(incidents.get_fresh(foo_incident).await.unwrap().is_none());
    let holder = incidents.get_fresh(rekt).await.unwrap().unwrap();
    assert!(
        holder.sources.iter().any(|c| c.source == "rekt"),
        "{holder:?}"
    );
    assert_eq!(
        count(
            &b,
            &format!(
                "SELECT count(*) FROM exploit_tx_hashes WHERE exploit_id = {} AND tx_hash = '{HASH}'",
                holder.id
            )
        )
        .await,
        1,
        "the real incident holds the hash now"
    );
}

async fn reversing_evidence_that_changed_no_value_still_tells_subscribers(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    // The same name, date, chain, loss and hash as the submission helper's claim: the
    // community claim adds a source and nothing else.
    let euler = ingest(
        &b,
        claim("Euler")
            .source("rekt")
            .chain("ethereum")
            .date("2023-03-13")
            .loss_usd("1000000")
            .tx("ethereum", HASH),
    )
    .await;
    let s = submit(&b, &submission(alice, "Euler", "2023-03-13", Some(HASH))).await;
    decide(&b, s.id, Some(rita), Decision::Verify, "ok")
        .await
        .unwrap();
    let updates = format!(
        "SELECT count(*) FROM alert_events WHERE exploit_id = {euler} AND kind = 'incident.updated'"
    );
    let before = count(&b, &updates).await;
    reverse(&b, s.id, rita).await.unwrap();
    assert_eq!(count(&b, &updates).await, before + 1);
    let changes = count(
        &b,
        &format!(
            "SELECT count(*) FROM alert_events WHERE exploit_id = {euler} \
             AND kind = 'incident.updated' AND CAST(changes AS TEXT) LIKE '%community%'"
        ),
    )
    .await;
    assert!(changes >= 2, "the community source arriving, then leaving");
    let after = IncidentStore::new(b.db.clone())
        .get_fresh(euler)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.sources.len(), 1);
}

async fn a_merge_keeps_a_paid_bounty_before_an_owed_one(b: Backend) {
    let alice = user(&b, "alice@example.com").await;
    let bob = user(&b, "bob@example.com").await;
    let rita = user(&b, "rita@example.com").await;
    let first = verified(&b, alice, rita, "Ronin Bridge", None).await;
    let second = verified(&b, bob, rita, "Axie Infinity", None).await;
    // The later report's bounty was paid; the earlier one's is still owed.
    let paid = b.store.bounties(Some(bob)).await.unwrap().remove(0);
    b.store
        .pay_bounty(paid.id, Some(rita), "wire-1", now())
        .await
        .unwrap();
    IncidentStore::new(b.db.clone())
        .curate(Curate {
            kind: DecisionKind::Merge,
            incidents: vec![first.exploit_id.unwrap(), second.exploit_id.unwrap()],
            claims: Vec::new(),
            reason: "one hack".into(),
            decided_by: "curator@example.com".into(),
        })
        .await
        .unwrap();
    let bounties = b.store.bounties(None).await.unwrap();
    let status = |submission: i64| {
        bounties
            .iter()
            .find(|x| x.submission_id == submission)
            .map(|x| x.status.clone())
            .unwrap()
    };
    assert_eq!(status(second.id), "paid");
    assert_eq!(status(first.id), "cancelled", "{bounties:#?}");
}
