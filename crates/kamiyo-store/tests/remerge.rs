//! Remerge: the stored claims decided again under the current rules. Every story runs on
//! PostgreSQL and on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use kamiyo_db::{Database, Migrations, Pool};
use kamiyo_domain::{Aliases, IncidentDraft};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::claim;

type Backend = common::Backend<IncidentStore>;

kamiyo_testkit::per_backend! {
    IncidentStore::new => [
        remerging_a_database_filled_under_an_older_rule_gives_what_an_import_under_the_new_one_gives,
        a_remerge_splits_what_the_rules_no_longer_join_and_the_split_piece_takes_its_hash,
        the_migration_that_ships_the_rule_remerges_the_stored_incidents_once,
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

async fn the_migration_that_ships_the_rule_remerges_the_stored_incidents_once(b: Backend) {
    // A database at the schema before this rule (migration 0008), filled by its rule.
    let before = Migrations {
        postgres: &MIGRATIONS.postgres[..8],
        sqlite: &MIGRATIONS.sqlite[..8],
    };
    let old = common::same_kind(b.name, &before, |db| {
        IncidentStore::new(db).with_aliases(Aliases::default())
    })
    .await;
    ingest_all(&old.store, &reports()[..4]).await;
    assert_eq!(incident_ids(&old.db).await.len(), 4);

    old.db.migrate(&MIGRATIONS).await.unwrap();
    let upgraded = IncidentStore::new(old.db.clone());
    let report = upgraded.run_pending_remerge().await.unwrap().unwrap();
    assert!(report.applied);
    assert_eq!(report.merges.len(), 2, "{report:#?}");
    assert_eq!(incident_ids(&old.db).await.len(), 2);
    assert_eq!(
        upgraded.run_pending_remerge().await.unwrap(),
        None,
        "the task ran once"
    );
}
