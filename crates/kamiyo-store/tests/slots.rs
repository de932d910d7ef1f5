//! Fetch slots on both backends: one claimer per slot however many ask at once, leases
//! taken over only once expired, slots ended only by their holder, and migration 0005
//! on a database that already holds 0004's fetch log. Time is a manual clock's, passed
//! to every call: no test waits for a lease to run out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use kamiyo_db::{BackendKind, Database, DbConfig, ManualClock, Migrations};
use kamiyo_store::{
    FetchSlot, SlotClaim, SlotHolder, SlotOutcome, SourceFetch, SourceStore, MIGRATIONS,
};
use kamiyo_testkit::TestDatabase;
use tokio::sync::Barrier;

type Backend = common::Backend<SourceStore>;

kamiyo_testkit::per_backend! {
    SourceStore::new => [
        a_slot_is_claimed_once_and_a_second_claimer_is_told_who_holds_it,
        eight_concurrent_claims_of_one_slot_give_exactly_one_claimed,
        eight_concurrent_takeovers_of_an_expired_lease_give_exactly_one_claimed,
        an_expired_lease_is_taken_over_as_attempt_2_and_the_old_holder_can_no_longer_finish,
        a_holder_that_claims_its_own_expired_slot_again_goes_on_in_the_new_attempt_only,
        a_finished_slot_is_already_done_even_after_its_lease_has_expired,
        only_the_holder_renews_and_a_renewed_lease_keeps_others_out,
        the_last_slot_is_the_latest_one_with_its_state,
        recording_a_fetch_deletes_the_sources_slots_older_than_it_keeps,
        migration_0005_applies_to_a_database_at_0004_that_holds_fetches,
    ],
}

/// `holder` in its claim's `attempt`.
fn h(holder: &str, attempt: u32) -> SlotHolder<'_> {
    SlotHolder { holder, attempt }
}

const MINUTE: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_secs(5 * 60);

/// A slot on the hour, far from any real clock's now.
fn slot(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
}

/// A manual clock and its now; it stands still until the test advances it.
fn clock() -> (ManualClock, impl Fn() -> DateTime<Utc>) {
    let manual = ManualClock::new();
    let clock = manual.clock();
    (manual, move || clock.now_utc())
}

async fn a_slot_is_claimed_once_and_a_second_claimer_is_told_who_holds_it(b: Backend) {
    let (_manual, now) = clock();
    let first = b
        .store
        .claim_slot("defillama", slot(10), "instance-a", LEASE, now())
        .await
        .unwrap();
    assert_eq!(first, SlotClaim::Claimed { attempt: 1 }, "{}", b.name);
    let second = b
        .store
        .claim_slot("defillama", slot(10), "instance-b", LEASE, now())
        .await
        .unwrap();
    let stored = b.store.slot("defillama", slot(10)).await.unwrap().unwrap();
    assert_eq!(
        second,
        SlotClaim::HeldByOther {
            holder: "instance-a".into(),
            lease_until: stored.lease_until
        },
        "{}",
        b.name
    );
    assert_eq!(
        b.store
            .claim_slot("defillama", slot(11), "instance-b", LEASE, now())
            .await
            .unwrap(),
        SlotClaim::Claimed { attempt: 1 },
        "{}: the next slot is a slot of its own",
        b.name
    );
}

/// Eight claims of one slot at `at`, released together. On PostgreSQL each claimer has a
/// database (and so a session) of its own, as instances do; on SQLite they share the
/// pool of one process.
async fn eight_claims_at_once(b: &Backend, at: DateTime<Utc>) -> Vec<(String, SlotClaim)> {
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(match b.db.backend() {
            BackendKind::Postgres => {
                let config = DbConfig {
                    pool_max_size: 1,
                    ..b.db.config().clone()
                };
                SourceStore::new(Database::open(config).await.unwrap())
            }
            BackendKind::Sqlite => b.store.clone(),
        });
    }
    let start = Arc::new(Barrier::new(stores.len()));
    let claims: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, store)| {
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let holder = format!("instance-{i}");
                let claim = store.claim_slot("rekt", slot(10), &holder, LEASE, at).await;
                (holder, claim.unwrap())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for claim in claims {
        outcomes.push(claim.await.unwrap());
    }
    outcomes
}

/// Exactly one claim is `Claimed { attempt }`, and every other one names its holder.
fn assert_one_winner(b: &Backend, outcomes: &[(String, SlotClaim)], attempt: u32) {
    let winners: Vec<&String> = outcomes
        .iter()
        .filter(|(_, claim)| matches!(claim, SlotClaim::Claimed { .. }))
        .map(|(holder, _)| holder)
        .collect();
    assert_eq!(winners.len(), 1, "{}: {outcomes:?}", b.name);
    for (_, claim) in outcomes {
        match claim {
            SlotClaim::Claimed { attempt: got } => assert_eq!(*got, attempt, "{}", b.name),
            SlotClaim::HeldByOther { holder, .. } => {
                assert_eq!(holder, winners[0], "{}: {outcomes:?}", b.name)
            }
            SlotClaim::AlreadyDone { .. } => panic!("{}: {outcomes:?}", b.name),
        }
    }
}

async fn eight_concurrent_claims_of_one_slot_give_exactly_one_claimed(b: Backend) {
    let (_manual, now) = clock();
    let outcomes = eight_claims_at_once(&b, now()).await;
    assert_one_winner(&b, &outcomes, 1);
}

async fn eight_concurrent_takeovers_of_an_expired_lease_give_exactly_one_claimed(b: Backend) {
    let (manual, now) = clock();
    b.store
        .claim_slot("rekt", slot(10), "died", LEASE, now())
        .await
        .unwrap();
    manual.advance(2 * LEASE);
    let outcomes = eight_claims_at_once(&b, now()).await;
    assert_one_winner(&b, &outcomes, 2);
}

async fn an_expired_lease_is_taken_over_as_attempt_2_and_the_old_holder_can_no_longer_finish(
    b: Backend,
) {
    let (manual, now) = clock();
    let s = &b.store;
    s.claim_slot("feed", slot(10), "a", LEASE, now())
        .await
        .unwrap();
    manual.advance(LEASE);
    assert!(
        matches!(
            s.claim_slot("feed", slot(10), "b", LEASE, now())
                .await
                .unwrap(),
            SlotClaim::HeldByOther { .. }
        ),
        "{}: a lease is live up to and including its end",
        b.name
    );
    manual.advance(Duration::from_millis(1));
    assert_eq!(
        s.claim_slot("feed", slot(10), "b", LEASE, now())
            .await
            .unwrap(),
        SlotClaim::Claimed { attempt: 2 },
        "{}",
        b.name
    );
    assert!(
        !s.renew_slot("feed", slot(10), &h("a", 1), LEASE, now())
            .await
            .unwrap(),
        "{}: a holder taken over cannot renew",
        b.name
    );
    assert!(
        !s.finish_slot("feed", slot(10), &h("a", 1), SlotOutcome::Succeeded, now())
            .await
            .unwrap(),
        "{}: nor finish",
        b.name
    );
    assert!(
        s.finish_slot("feed", slot(10), &h("b", 2), SlotOutcome::Failed, now())
            .await
            .unwrap(),
        "{}",
        b.name
    );
    let stored = s.slot("feed", slot(10)).await.unwrap().unwrap();
    assert_eq!(
        (stored.holder.as_str(), stored.attempt, stored.outcome),
        ("b", 2, Some(SlotOutcome::Failed)),
        "{}",
        b.name
    );
}

async fn a_holder_that_claims_its_own_expired_slot_again_goes_on_in_the_new_attempt_only(
    b: Backend,
) {
    let (manual, now) = clock();
    let s = &b.store;
    s.claim_slot("feed", slot(10), "a", LEASE, now())
        .await
        .unwrap();
    manual.advance(LEASE + MINUTE);
    assert_eq!(
        s.claim_slot("feed", slot(10), "a", LEASE, now())
            .await
            .unwrap(),
        SlotClaim::Claimed { attempt: 2 },
        "{}",
        b.name
    );
    assert!(
        !s.renew_slot("feed", slot(10), &h("a", 1), LEASE, now())
            .await
            .unwrap(),
        "{}: the first attempt's fetch must stop",
        b.name
    );
    assert!(
        !s.finish_slot("feed", slot(10), &h("a", 1), SlotOutcome::Failed, now())
            .await
            .unwrap(),
        "{}: and cannot end the slot",
        b.name
    );
    assert!(s
        .renew_slot("feed", slot(10), &h("a", 2), LEASE, now())
        .await
        .unwrap());
    assert!(s
        .finish_slot("feed", slot(10), &h("a", 2), SlotOutcome::Succeeded, now())
        .await
        .unwrap());
}

async fn a_finished_slot_is_already_done_even_after_its_lease_has_expired(b: Backend) {
    let (manual, now) = clock();
    let s = &b.store;
    s.claim_slot("feed", slot(10), "a", LEASE, now())
        .await
        .unwrap();
    assert!(s
        .finish_slot("feed", slot(10), &h("a", 1), SlotOutcome::Unchanged, now())
        .await
        .unwrap());
    assert!(
        !s.finish_slot("feed", slot(10), &h("a", 1), SlotOutcome::Failed, now())
            .await
            .unwrap(),
        "{}: a slot ends once",
        b.name
    );
    manual.advance(2 * LEASE);
    assert_eq!(
        s.claim_slot("feed", slot(10), "b", LEASE, now())
            .await
            .unwrap(),
        SlotClaim::AlreadyDone {
            outcome: SlotOutcome::Unchanged
        },
        "{}",
        b.name
    );
}

async fn only_the_holder_renews_and_a_renewed_lease_keeps_others_out(b: Backend) {
    let (manual, now) = clock();
    let s = &b.store;
    s.claim_slot("feed", slot(10), "a", LEASE, now())
        .await
        .unwrap();
    assert!(
        !s.renew_slot("feed", slot(10), &h("b", 1), LEASE, now())
            .await
            .unwrap(),
        "{}: renewed by a non-holder",
        b.name
    );
    manual.advance(LEASE - MINUTE);
    assert!(s
        .renew_slot("feed", slot(10), &h("a", 1), LEASE, now())
        .await
        .unwrap());
    manual.advance(2 * MINUTE);
    assert!(
        matches!(
            s.claim_slot("feed", slot(10), "b", LEASE, now())
                .await
                .unwrap(),
            SlotClaim::HeldByOther { ref holder, .. } if holder == "a"
        ),
        "{}: past the first lease, within the renewed one",
        b.name
    );
    let lease_until = |slot: Option<FetchSlot>| slot.map(|slot| slot.lease_until);
    let before = lease_until(s.slot("feed", slot(10)).await.unwrap());
    assert!(s
        .renew_slot(
            "feed",
            slot(10),
            &h("a", 1),
            Duration::ZERO,
            now() - TimeDelta::hours(1)
        )
        .await
        .unwrap());
    assert_eq!(
        lease_until(s.slot("feed", slot(10)).await.unwrap()),
        before,
        "{}: a renewal never shortens a lease",
        b.name
    );
    assert!(
        !s.renew_slot("nothing", slot(10), &h("a", 1), LEASE, now())
            .await
            .unwrap(),
        "{}: no slot, nothing to renew",
        b.name
    );
}

async fn the_last_slot_is_the_latest_one_with_its_state(b: Backend) {
    let (_manual, now) = clock();
    let s = &b.store;
    assert_eq!(s.last_slot("feed").await.unwrap(), None, "{}", b.name);
    let at = now().duration_trunc(TimeDelta::milliseconds(1)).unwrap();
    for hour in [9, 11, 10] {
        s.claim_slot("feed", slot(hour), "a", LEASE, at)
            .await
            .unwrap();
    }
    s.finish_slot("feed", slot(11), &h("a", 1), SlotOutcome::Succeeded, at)
        .await
        .unwrap();
    let last = s.last_slot("feed").await.unwrap();
    assert_eq!(
        last,
        Some(FetchSlot {
            source: "feed".into(),
            slot_start: slot(11),
            holder: "a".into(),
            claimed_at: at,
            lease_until: at + TimeDelta::minutes(5),
            attempt: 1,
            finished_at: Some(at),
            outcome: Some(SlotOutcome::Succeeded),
        }),
        "{}",
        b.name
    );
    assert!(
        !last.unwrap().is_abandoned(at + TimeDelta::hours(1)),
        "{}: a finished slot is never abandoned",
        b.name
    );
}

async fn recording_a_fetch_deletes_the_sources_slots_older_than_it_keeps(b: Backend) {
    let s = &b.store;
    let now = Utc::now();
    let day = TimeDelta::days(1);
    for (source, age) in [("feed", 20), ("feed", 2), ("other", 20)] {
        let start = (now - day * age).duration_trunc(day).unwrap();
        s.claim_slot(source, start, "a", LEASE, now).await.unwrap();
    }
    let fetch = SourceFetch::succeeded("feed", now, now, 1).unwrap();
    s.record_fetch(&fetch, Duration::from_secs(5 * 24 * 60 * 60))
        .await
        .unwrap();
    let kept_since = now - day * 5;
    let last = s.last_slot("feed").await.unwrap().unwrap();
    assert!(last.slot_start > kept_since, "{}", b.name);
    assert_eq!(
        s.slot("feed", (now - day * 20).duration_trunc(day).unwrap())
            .await
            .unwrap(),
        None,
        "{}: the 20-day-old slot is gone",
        b.name
    );
    assert!(
        s.last_slot("other").await.unwrap().is_some(),
        "{}: another source's slots are its own to prune",
        b.name
    );
}

/// A database of `kind` that nothing has migrated; it lives as long as the first value.
async fn fresh(kind: BackendKind) -> ((Option<TestDatabase>, Option<tempfile::TempDir>), Database) {
    let (keep, url) = match kind {
        BackendKind::Postgres => {
            let pg = TestDatabase::create().await;
            let url = pg.url().to_owned();
            ((Some(pg), None), url)
        }
        BackendKind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("k.db").display());
            ((None, Some(dir)), url)
        }
    };
    (keep, Database::open(DbConfig::for_url(url)).await.unwrap())
}

async fn migration_0005_applies_to_a_database_at_0004_that_holds_fetches(b: Backend) {
    let (_keep, db) = fresh(b.db.backend()).await;
    let up_to_0004 = Migrations {
        postgres: &MIGRATIONS.postgres[..4],
        sqlite: &MIGRATIONS.sqlite[..4],
    };
    db.migrate(&up_to_0004).await.unwrap();
    let succeeded = match b.db.backend() {
        BackendKind::Postgres => "true",
        BackendKind::Sqlite => "1",
    };
    common::execute_batch(&db, "INSERT INTO sources (name) VALUES ('feed')").await;
    let insert = format!(
        "INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, records) \
         VALUES ('feed', '2026-11-30T10:00:00.000Z', '2026-11-30T10:00:05.000Z', {succeeded}, 42)"
    );
    common::execute_batch(&db, &insert).await;

    let up_to_0005 = Migrations {
        postgres: &MIGRATIONS.postgres[..5],
        sqlite: &MIGRATIONS.sqlite[..5],
    };
    let report = db.migrate(&up_to_0005).await.unwrap();
    assert_eq!(report.applied.len(), 1, "{}", b.name);
    let store = SourceStore::new(db);
    let fetches = store.last_fetches("feed", 10).await.unwrap();
    let old = SourceFetch::succeeded(
        "feed",
        Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 5).unwrap(),
        42,
    )
    .unwrap();
    assert_eq!(
        fetches,
        [old],
        "{}: the old fetch reads back with every new field at its default",
        b.name
    );
    assert_eq!(
        store
            .claim_slot("feed", slot(10), "a", LEASE, Utc::now())
            .await
            .unwrap(),
        SlotClaim::Claimed { attempt: 1 },
        "{}",
        b.name
    );
}
