//! Remerge: the stored claims decided again under the current rules. Every story runs on
//! PostgreSQL and on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use kamiyo_db::{Database, Migrations, Pool};
use kamiyo_domain::{Aliases, IncidentDraft};
use kamiyo_store::{Curate, DecisionKind, IncidentStore, IngestAction, StoreError, MIGRATIONS};
use kamiyo_testkit::claim;

type Backend = common::Backend<IncidentStore>;

kamiyo_testkit::per_backend! {
    IncidentStore::new => [
        remerging_a_database_filled_under_an_older_rule_gives_what_an_import_under_the_new_one_gives,
        a_remerge_splits_what_the_rules_no_longer_join_and_the_split_piece_takes_its_hash,
        the_migration_that_ships_the_rule_remerges_the_stored_incidents_once,
        a_curated_merge_joins_what_the_rules_keep_apart_and_later_remerges_and_imports_keep_it,
        a_curated_split_takes_claims_out_and_a_remerge_keeps_them_out,
        a_split_holds_after_its_source_corrects_the_claim_it_took_out,
        a_decision_stored_by_the_previous_release_names_its_claims_by_key,
        the_migration_to_claim_ids_backfills_the_decisions_taken_before_it,
        a_curation_the_stored_incidents_do_not_allow_is_refused_naming_the_field_and_stores_nothing,
        an_incident_says_which_claim_gave_each_value_and_how_strongly_each_claim_is_tied,
        the_review_queue_lists_near_misses_best_first_and_not_what_a_curator_split,
    ],
}

/// Real-shaped reports of five hacks by two or three sources: two pairs that only the
/// shipped alias table joins (Abracadabra/MIMSpell, Multichain/Anyswap), one that the
/// names join (Euler Finance/Euler), and one protocol hacked twice months apart.
fn reports() -> Vec<IncidentDraft> {
    let c = |source: &str, name: &str, date: &str, loss: &str| {
        claim(name)
            .source(source)
            .source_url(format!(
                "https://{source}.example/{}",
                name.replace(' ', "-")
            ))
            .date(date)
            .loss_usd(loss)
            .build()
    };
    vec![
        c("defillama", "Abracadabra", "2024-01-30", "6500000"),
        c("defihacklabs", "MIMSpell", "2024-01-30", "6500000"),
        c("defillama", "Multichain", "2023-07-06", "126000000"),
        c("defihacklabs", "Anyswap", "2023-07-07", "126000000"),
        c("defillama", "Euler Finance", "2023-03-13", "197000000"),
        c("rekt", "Euler", "2023-03-14", "195000000"),
        c("defillama", "Platypus", "2023-02-16", "8500000"),
        c("defillama", "Platypus", "2023-10-12", "2200000"),
        c("defihacklabs", "Platypus Finance", "2023-10-12", "2200000"),
    ]
}

async fn ingest_all(store: &IncidentStore, drafts: &[IncidentDraft]) -> Vec<i64> {
    let mut ids = Vec::new();
    for draft in drafts {
        ids.push(store.ingest(draft).await.unwrap().exploit_id);
    }
    ids
}

async fn incident_ids(db: &Database) -> Vec<i64> {
    let mut ids: Vec<i64> = match db.primary() {
        Pool::Postgres(pool) => pool
            .acquire()
            .await
            .unwrap()
            .query("SELECT id FROM exploits", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, i64>("id"))
            .collect(),
        Pool::Sqlite(pool) => pool
            .acquire()
            .await
            .unwrap()
            .run(|c| {
                let mut statement = c.prepare("SELECT id FROM exploits")?;
                let ids = statement
                    .query_map([], |row| row.get::<_, i64>(0))?
                    .collect::<Result<Vec<i64>, _>>()?;
                Ok(ids)
            })
            .await
            .unwrap(),
    };
    ids.sort_unstable();
    ids
}

/// Every incident as a comparable value, whatever its id: its claims (source, name,
/// date, why they joined), its canonical name, date, loss and chains.
async fn snapshot(store: &IncidentStore, db: &Database) -> Vec<String> {
    let mut incidents = Vec::new();
    for id in incident_ids(db).await {
        let incident = store.get_fresh(id).await.unwrap().unwrap();
        let mut claims: Vec<String> = incident
            .sources
            .iter()
            .map(|c| {
                format!(
                    "{}:{}:{}:{:?}",
                    c.source,
                    c.reported_name,
                    c.occurred_at.date_naive(),
                    c.joined_by
                )
            })
            .collect();
        claims.sort();
        incidents.push(format!(
            "{} | {} | {} | {:?} | {:?} | {:?}",
            claims.join(", "),
            incident.protocol,
            incident.protocol_key,
            incident.occurred_at,
            incident.loss_usd,
            incident.chains
        ));
    }
    incidents.sort();
    incidents
}

async fn remerging_a_database_filled_under_an_older_rule_gives_what_an_import_under_the_new_one_gives(
    b: Backend,
) {
    // The older rule: names joined by their keys alone, no alias table.
    let old = common::same_kind(b.name, &MIGRATIONS, |db| {
        IncidentStore::new(db).with_aliases(Aliases::default())
    })
    .await;
    let old_ids = ingest_all(&old.store, &reports()).await;
    ingest_all(&b.store, &reports()).await;
    let new_rule = snapshot(&b.store, &b.db).await;
    assert_eq!(new_rule.len(), 5, "{new_rule:#?}");
    assert_eq!(incident_ids(&old.db).await.len(), 7);

    let upgraded = IncidentStore::new(old.db.clone());
    let dry = upgraded.remerge(true).await.unwrap();
    assert!(!dry.applied);
    assert_eq!(
        (dry.claims, dry.incidents_before, dry.incidents_after),
        (9, 7, 5)
    );
    assert_eq!(dry.merges.len(), 2, "{dry:#?}");
    assert!(dry.splits.is_empty(), "{dry:#?}");
    assert_eq!(
        incident_ids(&old.db).await.len(),
        7,
        "a dry run writes nothing"
    );

    let report = upgraded.remerge(false).await.unwrap();
    assert!(report.applied);
    assert_eq!(report.merges, dry.merges, "the dry run said what happens");
    assert_eq!(snapshot(&upgraded, &old.db).await, new_rule);

    // MIMSpell's incident (the second report) went into Abracadabra's, and still answers.
    let (abracadabra, mimspell) = (old_ids[0], old_ids[1]);
    assert_ne!(abracadabra, mimspell);
    assert_eq!(
        upgraded.redirect(mimspell).await.unwrap(),
        Some(abracadabra)
    );
    assert!(upgraded.get_fresh(mimspell).await.unwrap().is_none());
    let survivor = upgraded.get_fresh(abracadabra).await.unwrap().unwrap();
    assert_eq!(survivor.merged_ids, vec![mimspell]);
    assert_eq!(upgraded.redirect(abracadabra).await.unwrap(), None);

    let again = upgraded.remerge(false).await.unwrap();
    assert!(
        !again.applied && again.merges.is_empty() && again.splits.is_empty(),
        "a second remerge finds nothing to do: {again:#?}"
    );
    assert_eq!(again.rewritten, 0);
}

async fn a_remerge_splits_what_the_rules_no_longer_join_and_the_split_piece_takes_its_hash(
    b: Backend,
) {
    // A wrong alias line, since removed, joined two protocols' hacks of one day.
    let wrong = Aliases::parse("Platypus, Pangolin | wrong: two protocols").unwrap();
    let old = common::same_kind(b.name, &MIGRATIONS, |db| {
        IncidentStore::new(db).with_aliases(wrong.clone())
    })
    .await;
    let hash = format!("0x{}", "ab".repeat(32));
    let platypus = claim("Platypus")
        .source("defillama")
        .date("2023-02-16")
        .loss_usd("8500000")
        .build();
    let pangolin = claim("Pangolin")
        .source("defihacklabs")
        .date("2023-02-16")
        .loss_usd("8000000")
        .hash(&hash)
        .build();
    let ids = ingest_all(&old.store, &[platypus, pangolin]).await;
    assert_eq!(ids[0], ids[1], "the wrong alias merged them");
    let held = old.store.find_by_tx_hash(&hash).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].id, ids[0]);

    let upgraded = IncidentStore::new(old.db.clone());
    let report = upgraded.remerge(false).await.unwrap();
    assert!(report.merges.is_empty(), "{report:#?}");
    assert_eq!(report.splits.len(), 1, "{report:#?}");
    let parts = &report.splits[0].parts;
    assert_eq!(parts.len(), 2);
    // The first-seen report keeps the id; the piece split off gets a new one.
    assert_eq!(parts[0].id, Some(ids[0]));
    assert_eq!(parts[0].protocol, "Platypus");
    let split_off = parts[1].id.unwrap();
    assert!(split_off > ids[0]);
    assert_eq!(parts[1].protocol, "Pangolin");

    let kept = upgraded.get_fresh(ids[0]).await.unwrap().unwrap();
    assert_eq!(kept.sources.len(), 1);
    assert!(kept.tx_hashes.is_empty(), "{:?}", kept.tx_hashes);
    let piece = upgraded.get_fresh(split_off).await.unwrap().unwrap();
    assert_eq!(piece.protocol, "Pangolin");
    assert_eq!(piece.sources.len(), 1);
    assert_eq!(piece.tx_hashes.len(), 1);
    let held = upgraded.find_by_tx_hash(&hash).await.unwrap();
    assert_eq!(
        held.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![split_off]
    );
}

async fn pending_tasks(db: &Database) -> i64 {
    let sql = "SELECT count(*) FROM maintenance_tasks";
    match db.primary() {
        Pool::Postgres(pool) => pool
            .acquire()
            .await
            .unwrap()
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0),
        Pool::Sqlite(pool) => pool
            .acquire()
            .await
            .unwrap()
            .run(move |c| c.query_row(sql, [], |row| row.get(0)))
            .await
            .unwrap(),
    }
}

async fn the_migration_that_ships_the_rule_remerges_the_stored_incidents_once(b: Backend) {
    // Migration 0009 leaves the task where incidents are stored, and only there.
    let before = Migrations {
        postgres: &MIGRATIONS.postgres[..8],
        sqlite: &MIGRATIONS.sqlite[..8],
    };
    let at_0008 = common::same_kind(b.name, &before, |_| ()).await;
    common::execute_batch(
        &at_0008.db,
        "INSERT INTO exploits (protocol, protocol_key, chain, dedup_key, occurred_at) \
         VALUES ('Euler', 'euler', 'ethereum', 'old:1', '2023-03-13T00:00:00.000Z')",
    )
    .await;
    at_0008.db.migrate(&MIGRATIONS).await.unwrap();
    assert_eq!(pending_tasks(&at_0008.db).await, 1);
    assert_eq!(pending_tasks(&b.db).await, 0, "a new database is current");

    // Filled by the older rule, with the task the migration left: it runs once.
    let old = common::same_kind(b.name, &MIGRATIONS, |db| {
        IncidentStore::new(db).with_aliases(Aliases::default())
    })
    .await;
    ingest_all(&old.store, &reports()[..4]).await;
    assert_eq!(incident_ids(&old.db).await.len(), 4);
    common::execute_batch(
        &old.db,
        "INSERT INTO maintenance_tasks (name) VALUES ('remerge')",
    )
    .await;

    let upgraded = IncidentStore::new(old.db.clone());
    let report = upgraded.run_pending_remerge().await.unwrap().unwrap();
    assert!(report.applied);
    assert_eq!(report.merges.len(), 2, "{report:#?}");
    assert_eq!(incident_ids(&old.db).await.len(), 2);
    assert_eq!(pending_tasks(&old.db).await, 0);
    assert_eq!(
        upgraded.run_pending_remerge().await.unwrap(),
        None,
        "the task ran once"
    );
}

fn curate(kind: DecisionKind, incidents: &[i64], claims: &[i64], reason: &str) -> Curate {
    Curate {
        kind,
        incidents: incidents.to_vec(),
        claims: claims.to_vec(),
        reason: reason.to_owned(),
        decided_by: "curator@example.com".to_owned(),
    }
}

/// The Ronin bridge hack, reported under the bridge's name and under the game's, six
/// days apart: no rule joins them (different names, beyond the window).
fn ronin() -> Vec<IncidentDraft> {
    vec![
        claim("Ronin Network")
            .source("defillama")
            .date("2022-03-23")
            .loss_usd("624000000")
            .build(),
        claim("Axie Infinity")
            .source("rekt")
            .date("2022-03-29")
            .loss_usd("625000000")
            .build(),
    ]
}

async fn a_curated_merge_joins_what_the_rules_keep_apart_and_later_remerges_and_imports_keep_it(
    b: Backend,
) {
    let ids = ingest_all(&b.store, &ronin()).await;
    assert_ne!(ids[0], ids[1], "the rules keep them apart");

    let done = b
        .store
        .curate(curate(
            DecisionKind::Merge,
            &[ids[1], ids[0]],
            &[],
            "Ronin is Axie Infinity's bridge",
        ))
        .await
        .unwrap();
    assert_eq!(done.report.merges.len(), 1, "{:#?}", done.report);
    assert_eq!(
        done.report.merges[0].into,
        Some(ids[0]),
        "ties keep the lower id"
    );
    let merged = b.store.get_fresh(ids[0]).await.unwrap().unwrap();
    assert_eq!(merged.sources.len(), 2);
    let axie = merged.sources.iter().find(|c| c.source == "rekt").unwrap();
    assert_eq!(
        axie.joined_by,
        Some(kamiyo_store::incidents::JoinReason::Curated)
    );
    assert_eq!(axie.decision, Some(done.decision));
    assert_eq!(merged.merged_ids, vec![ids[1]]);
    assert_eq!(b.store.redirect(ids[1]).await.unwrap(), Some(ids[0]));

    let again = b.store.remerge(false).await.unwrap();
    assert!(
        again.merges.is_empty() && again.splits.is_empty(),
        "{again:#?}"
    );
    for draft in ronin() {
        let outcome = b.store.ingest(&draft).await.unwrap();
        assert_eq!(
            (outcome.exploit_id, outcome.action),
            (ids[0], IngestAction::Unchanged)
        );
    }
}

async fn a_curated_split_takes_claims_out_and_a_remerge_keeps_them_out(b: Backend) {
    // Two exploits of one protocol on one day that the rule took for one.
    let drafts = vec![
        claim("Platypus")
            .source("defillama")
            .date("2023-02-16")
            .loss_usd("8500000")
            .build(),
        claim("Platypus Finance")
            .source("rekt")
            .date("2023-02-16")
            .loss_usd("8500000")
            .build(),
        claim("Platypus")
            .source("defihacklabs")
            .date("2023-02-17")
            .loss_usd("9000000")
            .build(),
    ];
    let ids = ingest_all(&b.store, &drafts).await;
    assert!(ids.iter().all(|id| *id == ids[0]));
    let incident = b.store.get_fresh(ids[0]).await.unwrap().unwrap();
    let taken = incident
        .sources
        .iter()
        .find(|c| c.source == "defihacklabs")
        .unwrap()
        .id;

    let done = b
        .store
        .curate(curate(
            DecisionKind::Split,
            &[ids[0]],
            &[taken],
            "a second exploit",
        ))
        .await
        .unwrap();
    assert_eq!(done.report.splits.len(), 1, "{:#?}", done.report);
    let parts = &done.report.splits[0].parts;
    assert_eq!(parts[0].id, Some(ids[0]), "the larger part keeps the id");
    let piece = parts[1].id.unwrap();
    let split_off = b.store.get_fresh(piece).await.unwrap().unwrap();
    assert_eq!(split_off.sources.len(), 1);
    assert_eq!(split_off.sources[0].id, taken);
    assert_eq!(split_off.sources[0].decision, Some(done.decision));
    assert_eq!(
        b.store
            .get_fresh(ids[0])
            .await
            .unwrap()
            .unwrap()
            .sources
            .len(),
        2
    );

    let again = b.store.remerge(false).await.unwrap();
    assert!(
        again.merges.is_empty() && again.splits.is_empty(),
        "{again:#?}"
    );
    assert!(!again.applied);
}

/// Two exploits of Platypus a day apart that the rule takes for one; defihacklabs
/// numbers its record, so a later export can correct it.
fn platypus_twice() -> Vec<IncidentDraft> {
    vec![
        claim("Platypus")
            .source("defillama")
            .date("2023-02-16")
            .loss_usd("8500000")
            .build(),
        claim("Platypus")
            .source("defihacklabs")
            .external_id("platypus-second")
            .date("2023-02-17")
            .loss_usd("9000000")
            .build(),
    ]
}

/// Splits the defihacklabs claim off; (kept incident, split-off incident, decision).
async fn split_platypus(b: &Backend) -> (i64, i64, i64) {
    let ids = ingest_all(&b.store, &platypus_twice()).await;
    assert_eq!(ids[0], ids[1], "the rule joins them");
    let incident = b.store.get_fresh(ids[0]).await.unwrap().unwrap();
    let taken = incident
        .sources
        .iter()
        .find(|c| c.source == "defihacklabs")
        .unwrap()
        .id;
    let done = b
        .store
        .curate(curate(
            DecisionKind::Split,
            &[ids[0]],
            &[taken],
            "a second exploit",
        ))
        .await
        .unwrap();
    let piece = done.report.splits[0].parts[1].id.unwrap();
    (ids[0], piece, done.decision)
}

async fn a_split_holds_after_its_source_corrects_the_claim_it_took_out(b: Backend) {
    let (kept, piece, _) = split_platypus(&b).await;

    // The source's next export moves its record a day: the same claim, a new claim key.
    let mut corrected = platypus_twice();
    corrected[1] = claim("Platypus")
        .source("defihacklabs")
        .external_id("platypus-second")
        .date("2023-02-18")
        .loss_usd("9000000")
        .build();
    let listed: std::sync::Arc<kamiyo_store::incidents::Listed> = std::sync::Arc::new(
        corrected
            .iter()
            .map(|d| (d.source.name.clone(), d.claim_key()))
            .collect(),
    );
    let outcomes = b.store.ingest_listed(&corrected, &listed).await.unwrap();
    assert_eq!(outcomes[1].as_ref().unwrap().exploit_id, piece);
    let moved = b.store.get_fresh(piece).await.unwrap().unwrap();
    assert_eq!(moved.sources.len(), 1, "corrected in place, not added");
    assert_eq!(moved.occurred_at.date_naive().to_string(), "2023-02-18");

    let again = b.store.remerge(false).await.unwrap();
    assert!(
        again.merges.is_empty() && again.splits.is_empty(),
        "the decision still names the corrected claim: {again:#?}"
    );
    assert_eq!(
        b.store
            .get_fresh(kept)
            .await
            .unwrap()
            .unwrap()
            .sources
            .len(),
        1
    );
    assert_eq!(
        b.store
            .get_fresh(piece)
            .await
            .unwrap()
            .unwrap()
            .sources
            .len(),
        1
    );
}

async fn a_decision_stored_by_the_previous_release_names_its_claims_by_key(b: Backend) {
    let (kept, piece, decision) = split_platypus(&b).await;
    // What a binary of the release before migration 0011 stores: keys, no ids.
    common::execute_batch(
        &b.db,
        "UPDATE curation_decisions SET claim_ids = NULL, other_ids = NULL",
    )
    .await;
    let again = b.store.remerge(false).await.unwrap();
    assert!(
        again.merges.is_empty() && again.splits.is_empty(),
        "{again:#?}"
    );
    let split_off = b.store.get_fresh(piece).await.unwrap().unwrap();
    assert_eq!(split_off.sources[0].decision, Some(decision));
    assert_eq!(
        b.store
            .get_fresh(kept)
            .await
            .unwrap()
            .unwrap()
            .sources
            .len(),
        1
    );
}

async fn one_text(db: &Database, sql: &'static str) -> String {
    match db.primary() {
        Pool::Postgres(pool) => pool
            .acquire()
            .await
            .unwrap()
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0),
        Pool::Sqlite(pool) => pool
            .acquire()
            .await
            .unwrap()
            .run(move |c| c.query_row(sql, [], |row| row.get(0)))
            .await
            .unwrap(),
    }
}

async fn the_migration_to_claim_ids_backfills_the_decisions_taken_before_it(b: Backend) {
    // A database as the release before 0011 left it: claims, and a decision naming
    // them by key only. (The store of this release writes tables 0011 does not have, so
    // the claims are stored by it and the ids taken away again.)
    let drafts = platypus_twice();
    ingest_all(&b.store, &drafts).await;
    let pair = |d: &IncidentDraft| format!("[\"{}\", \"{}\"]", d.source.name, d.claim_key());
    let insert = format!(
        "INSERT INTO curation_decisions (kind, claims, others, incident_ids, reason, decided_by) \
         VALUES ('split', '[{}]', '[{}]', '[1]', 'a second exploit', 'cli')",
        pair(&drafts[1]),
        pair(&drafts[0]),
    );
    common::execute_batch(&b.db, &insert).await;
    let migration = if b.name == "postgres" {
        include_str!("../migrations/postgres/0011_decision_claim_ids.sql")
    } else {
        include_str!("../migrations/sqlite/0011_decision_claim_ids.sql")
    };
    let backfill = &migration[migration.find("UPDATE curation_decisions").unwrap()..];
    common::execute_batch(&b.db, backfill).await;

    let ids = one_text(
        &b.db,
        "SELECT (SELECT id FROM exploit_sources WHERE source_name = 'defihacklabs') || ',' || \
                (SELECT id FROM exploit_sources WHERE source_name = 'defillama')",
    )
    .await;
    let (taken, left) = ids.split_once(',').unwrap();
    let stored = one_text(
        &b.db,
        if b.name == "postgres" {
            "SELECT claim_ids::text || ' ' || other_ids::text FROM curation_decisions"
        } else {
            "SELECT claim_ids || ' ' || other_ids FROM curation_decisions"
        },
    )
    .await;
    assert_eq!(stored, format!("[{taken}] [{left}]"));
}

async fn a_curation_the_stored_incidents_do_not_allow_is_refused_naming_the_field_and_stores_nothing(
    b: Backend,
) {
    let ids = ingest_all(&b.store, &ronin()).await;
    let refused = |error: StoreError| match error {
        StoreError::Refused { field, .. } => field,
        other => panic!("not refused: {other}"),
    };
    for (request, field) in [
        (
            curate(DecisionKind::Merge, &[ids[0], ids[0]], &[], "why"),
            "incidents",
        ),
        (
            curate(DecisionKind::Merge, &[ids[0], 999], &[], "why"),
            "incidents",
        ),
        (
            curate(DecisionKind::Merge, &[ids[0], ids[1]], &[], "  "),
            "reason",
        ),
        (
            curate(DecisionKind::Split, &[ids[0]], &[999], "why"),
            "claims",
        ),
        (
            curate(DecisionKind::Split, &[ids[0], ids[1]], &[1], "why"),
            "incidents",
        ),
    ] {
        let error = b.store.curate(request.clone()).await.unwrap_err();
        assert_eq!(refused(error), field, "{request:?}");
    }
    // A lone claim cannot be split off itself: "some, not all".
    let own = b.store.get_fresh(ids[0]).await.unwrap().unwrap().sources[0].id;
    let error = b
        .store
        .curate(curate(DecisionKind::Split, &[ids[0]], &[own], "why"))
        .await
        .unwrap_err();
    assert_eq!(refused(error), "claims");
    // Nothing was stored: the first decision that is taken is number 1.
    let done = b
        .store
        .curate(curate(
            DecisionKind::Merge,
            &[ids[0], ids[1]],
            &[],
            "one hack",
        ))
        .await
        .unwrap();
    assert_eq!(done.decision, 1);
}

async fn an_incident_says_which_claim_gave_each_value_and_how_strongly_each_claim_is_tied(
    b: Backend,
) {
    let hash = format!("0x{}", "cd".repeat(32));
    let drafts = vec![
        claim("Euler Finance")
            .source("defillama")
            .date("2023-03-13")
            .loss_usd("197000000")
            .build(),
        // The same transaction, a day later, a lower figure.
        claim("Euler")
            .source("rekt")
            .date("2023-03-14")
            .loss_usd("195000000")
            .hash(&hash)
            .build(),
        claim("Euler")
            .source("defihacklabs")
            .date("2023-03-13")
            .loss_usd("197000000")
            .hash(&hash)
            .build(),
    ];
    let ids = ingest_all(&b.store, &drafts).await;
    let incident = b.store.get_fresh(ids[0]).await.unwrap().unwrap();
    let claim_of = |source: &str| {
        incident
            .sources
            .iter()
            .find(|c| c.source == source)
            .unwrap()
            .id
    };
    let given = |field: &str| {
        incident
            .provenance
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.claim)
    };
    assert_eq!(given("protocol"), Some(claim_of("defillama")));
    assert_eq!(
        given("occurred_at"),
        Some(claim_of("defillama")),
        "the earliest date"
    );
    // The lower median of 195M, 197M, 197M is 197M: the first claim holding it.
    assert_eq!(given("loss_usd"), Some(claim_of("defillama")));
    assert_eq!(given("recovered_usd"), None, "no claim knows a recovery");

    use kamiyo_store::incidents::provenance::points;
    let evidence = |source: &str| {
        incident
            .sources
            .iter()
            .find(|c| c.source == source)
            .unwrap()
            .evidence
            .unwrap()
    };
    // rekt and DeFiHackLabs share the hash, the key, a chain, a day apart, amounts
    // within 5 %.
    assert_eq!(
        evidence("rekt"),
        points::SHARED_HASH
            + points::SAME_NAME
            + points::WITHIN_A_DAY
            + points::SHARED_CHAIN
            + points::AMOUNTS_AGREE,
    );
    // DeFiLlama's closest is DeFiHackLabs: the same key (a separate `Finance` folds
    // away), day, chain and amount.
    assert_eq!(
        evidence("defillama"),
        points::SAME_NAME + points::SAME_DAY + points::SHARED_CHAIN + points::AMOUNTS_AGREE,
    );
    assert!(incident
        .sources
        .iter()
        .all(|c| c.evidence.unwrap() >= points::THRESHOLD));
}

async fn the_review_queue_lists_near_misses_best_first_and_not_what_a_curator_split(b: Backend) {
    let c = |source: &str, name: &str, date: &str, loss: &str| {
        claim(name).source(source).date(date).loss_usd(loss).build()
    };
    let ids = ingest_all(
        &b.store,
        &[
            // One name five days apart: beyond the window, so two incidents.
            c("defillama", "Ronin Network", "2022-03-23", "624000000"),
            c("rekt", "Ronin", "2022-03-28", "625000000"),
            // Alike names on one day, different amounts: a person should look.
            c("defillama", "Curve", "2023-07-30", "70000000"),
            c("rekt", "Curvance", "2023-07-30", "2000000"),
            // Unrelated names on one day: not a question.
            c("defillama", "Euler", "2023-03-13", "197000000"),
            c("rekt", "Sentiment", "2023-03-13", "1000000"),
        ],
    )
    .await;
    assert_eq!(incident_ids(&b.db).await.len(), 6);
    let queue = b.store.candidates(7, 25, 50).await.unwrap();
    let pairs: Vec<(i64, i64, u32)> = queue.iter().map(|p| (p.a.id, p.b.id, p.score)).collect();
    assert_eq!(pairs.len(), 2, "{queue:#?}");
    assert_eq!(
        (pairs[0].0, pairs[0].1),
        (ids[0], ids[1]),
        "the stronger pair first"
    );
    assert_eq!((pairs[1].0, pairs[1].1), (ids[2], ids[3]));
    assert!(pairs[0].2 > pairs[1].2);
    assert!(
        queue[0].evidence.iter().any(|e| e == "5 days apart"),
        "{:?}",
        queue[0].evidence
    );
    assert_eq!(
        b.store.candidates(7, 25, 1).await.unwrap().len(),
        1,
        "the limit"
    );

    // A curator who splits a pair apart has answered it: it leaves the queue.
    b.store
        .curate(curate(
            DecisionKind::Merge,
            &[ids[2], ids[3]],
            &[],
            "checked",
        ))
        .await
        .unwrap();
    let merged = b.store.get_fresh(ids[2]).await.unwrap().unwrap();
    let curvance = merged
        .sources
        .iter()
        .find(|c| c.source == "rekt")
        .unwrap()
        .id;
    b.store
        .curate(curate(
            DecisionKind::Split,
            &[ids[2]],
            &[curvance],
            "two protocols",
        ))
        .await
        .unwrap();
    let queue = b.store.candidates(7, 25, 50).await.unwrap();
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert_eq!(queue[0].a.id, ids[0]);
}
