//! The alert outbox: every change that can trigger an alert is an event written in the
//! transaction of the change, and nothing else is. Every story runs on PostgreSQL and on
//! SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use kamiyo_store::alerts::{AlertEvent, EventKind};
use kamiyo_store::{AlertStore, Curate, DecisionKind, IncidentStore};
use kamiyo_testkit::claim;

type Backend = common::Backend<IncidentStore>;

kamiyo_testkit::per_backend! {
    IncidentStore::new => [
        a_new_incident_is_created_and_a_correcting_source_an_update_with_old_and_new_values,
        a_claim_seen_again_unchanged_is_no_event,
        a_curated_merge_is_a_merged_event_naming_the_ids_merged_in,
        an_incident_whose_event_cannot_be_written_is_not_stored,
        a_split_is_an_update_of_the_incident_kept_and_a_creation_of_the_piece,
    ],
}

async fn events(b: &Backend) -> Vec<AlertEvent> {
    AlertStore::new(b.db.clone())
        .events_after(0, 100)
        .await
        .unwrap()
}

fn kinds(events: &[AlertEvent]) -> Vec<(EventKind, i64)> {
    events.iter().map(|e| (e.kind, e.exploit_id)).collect()
}

async fn a_new_incident_is_created_and_a_correcting_source_an_update_with_old_and_new_values(
    b: Backend,
) {
    let first = claim("Euler Finance")
        .source("rekt")
        .date("2023-03-13")
        .loss_usd("195000000")
        .build();
    let id = b.store.ingest(&first).await.unwrap().exploit_id;
    assert_eq!(kinds(&events(&b).await), [(EventKind::Created, id)]);

    let second = claim("Euler")
        .source("defillama")
        .date("2023-03-13")
        .loss_usd("197000000")
        .build();
    assert_eq!(b.store.ingest(&second).await.unwrap().exploit_id, id);
    let all = events(&b).await;
    assert_eq!(
        kinds(&all),
        [(EventKind::Created, id), (EventKind::Updated, id)]
    );
    let changes = all[1].changes.clone().unwrap();
    let sources = changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "sources")
        .expect("a new source is a change");
    assert_eq!(sources["old"], serde_json::json!(["rekt"]));
    assert_eq!(sources["new"], serde_json::json!(["defillama", "rekt"]));
    assert!(all.iter().all(|e| e.dispatched_at.is_none()));
    assert_eq!(
        all[1].occurred_at.date_naive().to_string(),
        "2023-03-13",
        "the incident's date, for the tiers' delay"
    );
}

async fn a_claim_seen_again_unchanged_is_no_event(b: Backend) {
    let report = claim("Platypus")
        .source("defillama")
        .date("2023-02-16")
        .loss_usd("8500000")
        .build();
    b.store.ingest(&report).await.unwrap();
    b.store.ingest(&report).await.unwrap();
    b.store
        .ingest_batch(&[report.clone(), report])
        .await
        .unwrap();
    assert_eq!(events(&b).await.len(), 1, "only its creation");
}

async fn a_curated_merge_is_a_merged_event_naming_the_ids_merged_in(b: Backend) {
    let ronin = claim("Ronin Network")
        .source("defillama")
        .date("2022-03-23")
        .loss_usd("624000000")
        .build();
    let axie = claim("Axie Infinity")
        .source("rekt")
        .date("2022-03-29")
        .loss_usd("625000000")
        .build();
    let a = b.store.ingest(&ronin).await.unwrap().exploit_id;
    let c = b.store.ingest(&axie).await.unwrap().exploit_id;
    b.store
        .curate(Curate {
            kind: DecisionKind::Merge,
            incidents: vec![a, c],
            claims: Vec::new(),
            reason: "Ronin is Axie Infinity's bridge".into(),
            decided_by: "curator@example.com".into(),
        })
        .await
        .unwrap();
    let all = events(&b).await;
    let merged: Vec<&AlertEvent> = all.iter().filter(|e| e.kind == EventKind::Merged).collect();
    assert_eq!(merged.len(), 1, "{all:#?}");
    assert_eq!(merged[0].exploit_id, a);
    assert_eq!(
        merged[0].changes,
        Some(serde_json::json!({ "merged_ids": [c] }))
    );
}

async fn an_incident_whose_event_cannot_be_written_is_not_stored(b: Backend) {
    // The outbox refuses the event (as a full disk would): the change goes with it.
    let sql = if b.name == "postgres" {
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           RAISE EXCEPTION 'refused by the test'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON alert_events FOR EACH ROW EXECUTE FUNCTION refuse();"
    } else {
        "CREATE TRIGGER refuse BEFORE INSERT ON alert_events \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
    };
    common::execute_batch(&b.db, sql).await;
    let report = claim("Mango Markets")
        .source("rekt")
        .date("2022-10-11")
        .loss_usd("114000000")
        .build();
    let outcomes = b.store.ingest_batch(&[report]).await.unwrap();
    assert!(outcomes[0].is_err(), "{outcomes:?}");
    assert_eq!(
        b.store.count().await.unwrap(),
        0,
        "no incident without its event"
    );
}

async fn a_split_is_an_update_of_the_incident_kept_and_a_creation_of_the_piece(b: Backend) {
    let first = claim("Platypus")
        .source("defillama")
        .date("2023-02-16")
        .loss_usd("8500000")
        .build();
    let second = claim("Platypus")
        .source("rekt")
        .date("2023-02-17")
        .loss_usd("9000000")
        .build();
    let id = b.store.ingest(&first).await.unwrap().exploit_id;
    assert_eq!(b.store.ingest(&second).await.unwrap().exploit_id, id);
    let incident = b.store.get_fresh(id).await.unwrap().unwrap();
    let taken = incident
        .sources
        .iter()
        .find(|c| c.source == "rekt")
        .unwrap()
        .id;
    let before = events(&b).await.len();
    let done = b
        .store
        .curate(Curate {
            kind: DecisionKind::Split,
            incidents: vec![id],
            claims: vec![taken],
            reason: "a second exploit".into(),
            decided_by: "curator@example.com".into(),
        })
        .await
        .unwrap();
    let piece = done.report.splits[0].parts[1].id.unwrap();
    let new: Vec<AlertEvent> = events(&b).await.split_off(before);
    let mut seen = kinds(&new);
    seen.sort_by_key(|(_, id)| *id);
    assert_eq!(
        seen,
        [(EventKind::Updated, id), (EventKind::Created, piece)],
        "{new:#?}"
    );
    let update = new.iter().find(|e| e.kind == EventKind::Updated).unwrap();
    let sources = update
        .changes
        .as_ref()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "sources")
        .unwrap()
        .clone();
    assert_eq!(sources["new"], serde_json::json!(["defillama"]));
}
