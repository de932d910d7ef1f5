//! The incident repository's conformance suite: every test runs on PostgreSQL and on
//! SQLite and must see the same behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{TimeZone, Utc};
use kamiyo_db::{Database, Pool};
use kamiyo_domain::{IncidentDraft, IncidentInput, TxHashInput};
use kamiyo_store::{IncidentStore, IngestAction};

type Backend = common::Backend<IncidentStore>;

common::per_backend! {
    IncidentStore::new => [
        the_same_hash_from_two_sources_is_one_incident_with_two_source_references,
        one_hack_under_two_names_two_days_apart_without_hashes_is_merged,
        one_protocol_hacked_twice_a_month_apart_is_two_incidents,
        a_hash_pasted_onto_two_different_protocols_does_not_merge_them,
        importing_the_same_claims_again_changes_nothing_and_a_changed_claim_updates_only_itself,
        an_unknown_amount_is_stored_as_unknown_not_zero,
        concurrent_imports_of_one_hack_create_one_incident,
        a_sources_own_two_records_days_apart_stay_two_and_a_corrected_amount_updates_its_claim,
        a_batch_stores_every_claim_but_the_one_the_database_refuses,
        a_claim_stored_before_a_limit_was_tightened_still_merges_with_new_ones,
        hash_lookups_ignore_case_for_hex_hashes_only,
    ],
}

fn hash(byte: &str) -> String {
    format!("0x{}", byte.repeat(32))
}

fn claim(
    source: &str,
    protocol: &str,
    date: &str,
    loss: Option<&str>,
    hashes: &[&str],
) -> IncidentDraft {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
    IncidentDraft::from_input(
        IncidentInput {
            source: Some(source.into()),
            source_url: Some(format!("https://{source}.example/{protocol}")),
            protocol: Some(protocol.into()),
            chains: vec!["Ethereum".into()],
            date: Some(date.into()),
            loss_usd: loss.map(Into::into),
            technique: Some("Price oracle manipulation".into()),
            tx_hashes: hashes
                .iter()
                .map(|h| TxHashInput {
                    chain: None,
                    hash: (*h).into(),
                })
                .collect(),
            ..IncidentInput::default()
        },
        now,
    )
    .unwrap()
}

async fn the_same_hash_from_two_sources_is_one_incident_with_two_source_references(b: Backend) {
    let h = hash("aa");
    let first = b
        .store
        .ingest(&claim(
            "defillama",
            "Euler Finance",
            "2023-03-13",
            Some("197000000"),
            &[&h],
        ))
        .await
        .unwrap();
    let second = b
        .store
        .ingest(&claim(
            "rekt",
            "Euler",
            "2023-03-20",
            Some("195000000"),
            &[&h],
        ))
        .await
        .unwrap();
    assert_eq!(first.action, IngestAction::Inserted, "{}", b.name);
    assert_eq!(second.action, IngestAction::Merged, "{}", b.name);
    assert_eq!(first.exploit_id, second.exploit_id, "{}", b.name);
    let incident = b.store.get(first.exploit_id).await.unwrap().unwrap();
    assert_eq!(incident.sources.len(), 2, "{}", b.name);
    assert_eq!(incident.protocol, "Euler Finance", "{}", b.name);
    assert_eq!(
        incident.occurred_at.format("%Y-%m-%d").to_string(),
        "2023-03-13",
        "{}",
        b.name
    );
    assert_eq!(
        incident.loss_usd.as_deref(),
        Some("195000000.00"),
        "{}: lower median of two",
        b.name
    );
    assert_eq!(incident.tx_hashes.len(), 1, "{}", b.name);
    assert_eq!(incident.attack_type, "oracle_manipulation");
    assert_eq!(incident.attack_class, "economic");
    // Merging never drops a source's claim: both amounts are still there.
    let amounts: Vec<_> = incident
        .sources
        .iter()
        .map(|s| s.loss_usd.clone().unwrap())
        .collect();
    assert_eq!(amounts, vec!["197000000.00", "195000000.00"], "{}", b.name);
    assert_eq!(b.store.count().await.unwrap(), 1);
    assert_eq!(
        b.store
            .find_by_tx_hash(&h.to_uppercase().replace("0X", "0x"))
            .await
            .unwrap()
            .len(),
        1,
        "{}",
        b.name
    );
}

async fn one_hack_under_two_names_two_days_apart_without_hashes_is_merged(b: Backend) {
    let a = b
        .store
        .ingest(&claim(
            "defillama",
            "EulerFinance",
            "2023-03-13",
            Some("197000000"),
            &[],
        ))
        .await
        .unwrap();
    let c = b
        .store
        .ingest(&claim(
            "rekt",
            "Euler Finance",
            "2023-03-15",
            Some("196000000"),
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(
        (a.action, c.action),
        (IngestAction::Inserted, IngestAction::Merged),
        "{}",
        b.name
    );
    assert_eq!(a.exploit_id, c.exploit_id, "{}", b.name);
}

async fn one_protocol_hacked_twice_a_month_apart_is_two_incidents(b: Backend) {
    let a = b
        .store
        .ingest(&claim(
            "defillama",
            "Examplefi",
            "2023-03-13",
            Some("1000000"),
            &[],
        ))
        .await
        .unwrap();
    let c = b
        .store
        .ingest(&claim(
            "defillama",
            "Examplefi",
            "2023-04-14",
            Some("1000000"),
            &[],
        ))
        .await
        .unwrap();
    assert_ne!(a.exploit_id, c.exploit_id, "{}", b.name);
    assert_eq!(c.action, IngestAction::Inserted, "{}", b.name);
    assert_eq!(b.store.count().await.unwrap(), 2, "{}", b.name);
}

async fn a_hash_pasted_onto_two_different_protocols_does_not_merge_them(b: Backend) {
    let h = hash("bb");
    let a = b
        .store
        .ingest(&claim(
            "defillama",
            "Alphafi",
            "2023-05-01",
            Some("5000000"),
            &[&h],
        ))
        .await
        .unwrap();
    let c = b
        .store
        .ingest(&claim(
            "rekt",
            "Betaswap",
            "2023-05-01",
            Some("5000000"),
            &[&h],
        ))
        .await
        .unwrap();
    assert_ne!(a.exploit_id, c.exploit_id, "{}", b.name);
    assert_eq!(c.action, IngestAction::Inserted, "{}", b.name);
    assert!(
        c.warnings.iter().any(|w| w.contains(&h)),
        "{}: {:?}",
        b.name,
        c.warnings
    );
    let beta = b.store.get(c.exploit_id).await.unwrap().unwrap();
    assert!(
        beta.tx_hashes.is_empty(),
        "{}: the hash stays with its first incident",
        b.name
    );
    assert_eq!(
        beta.sources[0].tx_hashes.len(),
        1,
        "{}: but the claim keeps it",
        b.name
    );
    assert_eq!(
        b.store.find_by_tx_hash(&h).await.unwrap()[0].id,
        a.exploit_id
    );
}

async fn importing_the_same_claims_again_changes_nothing_and_a_changed_claim_updates_only_itself(
    b: Backend,
) {
    let claims = [
        claim(
            "defillama",
            "Euler",
            "2023-03-13",
            Some("197000000"),
            &[&hash("cc")],
        ),
        claim("defillama", "Examplefi", "2023-06-01", None, &[]),
    ];
    for c in &claims {
        b.store.ingest(c).await.unwrap();
    }
    let before = b.store.get(1).await.unwrap();
    for c in &claims {
        let again = b.store.ingest(c).await.unwrap();
        assert_eq!(again.action, IngestAction::Unchanged, "{}", b.name);
    }
    assert_eq!(
        b.store.get(1).await.unwrap(),
        before,
        "{}: nothing changed, updated_at included",
        b.name
    );

    let mut corrected = claim(
        "defillama",
        "Euler",
        "2023-03-13",
        Some("197000000"),
        &[&hash("cc")],
    );
    corrected.description = Some("Donation attack on eTokens".into());
    let outcome = b.store.ingest(&corrected).await.unwrap();
    // The description is not part of the claim key, so this is the same claim, updated.
    assert_eq!(outcome.action, IngestAction::Updated, "{}", b.name);
    let incident = b.store.get(outcome.exploit_id).await.unwrap().unwrap();
    assert_eq!(incident.sources.len(), 1);
    assert_eq!(
        incident.description.as_deref(),
        Some("Donation attack on eTokens")
    );
}

async fn an_unknown_amount_is_stored_as_unknown_not_zero(b: Backend) {
    let outcome = b
        .store
        .ingest(&claim("defillama", "Mysteryfi", "2024-01-01", None, &[]))
        .await
        .unwrap();
    let incident = b.store.get(outcome.exploit_id).await.unwrap().unwrap();
    assert_eq!(incident.loss_usd, None, "{}", b.name);
    assert_eq!(incident.sources[0].loss_usd, None, "{}", b.name);
    assert!(b.store.get(999_999).await.unwrap().is_none());
}

async fn concurrent_imports_of_one_hack_create_one_incident(b: Backend) {
    let mut tasks = Vec::new();
    for source in ["s1", "s2", "s3", "s4", "s5", "s6"] {
        let store = b.store.clone();
        let c = claim(source, "Racefi", "2024-02-02", Some("3000000"), &[]);
        tasks.push(tokio::spawn(async move { store.ingest(&c).await }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap().exploit_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{}: {ids:?}", b.name);
    assert_eq!(
        b.store.get(ids[0]).await.unwrap().unwrap().sources.len(),
        6,
        "{}",
        b.name
    );
}

async fn a_sources_own_two_records_days_apart_stay_two_and_a_corrected_amount_updates_its_claim(
    b: Backend,
) {
    let first = b
        .store
        .ingest(&claim(
            "defillama",
            "Ooki",
            "2020-02-15",
            Some("350000"),
            &[],
        ))
        .await
        .unwrap();
    let second = b
        .store
        .ingest(&claim(
            "defillama",
            "Ooki",
            "2020-02-18",
            Some("650000"),
            &[],
        ))
        .await
        .unwrap();
    assert_ne!(
        first.exploit_id, second.exploit_id,
        "{}: one source, two records, two incidents",
        b.name
    );
    let other_source = b
        .store
        .ingest(&claim("rekt", "Ooki", "2020-02-16", Some("360000"), &[]))
        .await
        .unwrap();
    assert_eq!(other_source.action, IngestAction::Merged, "{}", b.name);

    let typo = b
        .store
        .ingest(&claim(
            "defillama",
            "Samurai",
            "2024-03-22",
            Some("48000000"),
            &[],
        ))
        .await
        .unwrap();
    let fixed = b
        .store
        .ingest(&claim(
            "defillama",
            "Samurai",
            "2024-03-22",
            Some("4800000"),
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(
        (fixed.exploit_id, fixed.action),
        (typo.exploit_id, IngestAction::Updated),
        "{}",
        b.name
    );
    let incident = b.store.get(fixed.exploit_id).await.unwrap().unwrap();
    assert_eq!(
        incident.sources.len(),
        1,
        "{}: the claim was corrected, not duplicated",
        b.name
    );
    assert_eq!(incident.loss_usd.as_deref(), Some("4800000.00"));
}

/// Makes the database refuse the claims on a protocol named "Refused", as a constraint
/// would: a claim valid for the domain that the database refuses.
async fn refuse_claims_named_refused(db: &Database) {
    match db.primary() {
        Pool::Postgres(pool) => pool
            .acquire()
            .await
            .unwrap()
            .batch_execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF NEW.reported_name = 'Refused' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                   RETURN NEW; END $$; \
                 CREATE TRIGGER refuse BEFORE INSERT ON exploit_sources FOR EACH ROW EXECUTE FUNCTION refuse();",
            )
            .await
            .unwrap(),
        Pool::Sqlite(pool) => pool
            .acquire()
            .await
            .unwrap()
            .run(|c| {
                c.execute_batch(
                    "CREATE TRIGGER refuse BEFORE INSERT ON exploit_sources WHEN NEW.reported_name = 'Refused' \
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
                )
            })
            .await
            .unwrap(),
    }
}

async fn a_batch_stores_every_claim_but_the_one_the_database_refuses(b: Backend) {
    refuse_claims_named_refused(&b.db).await;
    let (name, store) = (b.name, &b.store);
    let drafts = vec![
        claim(
            "alpha",
            "Alphafi",
            "2024-01-01",
            Some("100"),
            &[&hash("a1")],
        ),
        claim(
            "alpha",
            "Refused",
            "2024-01-02",
            Some("200"),
            &[&hash("b2")],
        ),
        claim("beta", "Alphafi", "2024-01-02", Some("110"), &[]),
        claim("alpha", "Gammaswap", "2024-02-01", None, &[]),
    ];
    let results = store.ingest_batch(&drafts).await.unwrap();
    let actions: Vec<Option<IngestAction>> = results
        .iter()
        .map(|r| r.as_ref().ok().map(|o| o.action))
        .collect();
    assert_eq!(
        actions,
        [
            Some(IngestAction::Inserted),
            None,
            Some(IngestAction::Merged),
            Some(IngestAction::Inserted)
        ],
        "{name}: {results:?}"
    );
    let refusal = results[1].as_ref().unwrap_err().to_string();
    assert!(refusal.contains("refused by the test"), "{name}: {refusal}");
    // Nothing of the refused claim is left: no incident, no hash.
    assert_eq!(store.count().await.unwrap(), 2, "{name}");
    assert!(store.find_by_tx_hash(&hash("b2")).await.unwrap().is_empty());
    let alpha = results[0].as_ref().unwrap().exploit_id;
    assert_eq!(store.get(alpha).await.unwrap().unwrap().sources.len(), 2);
}

async fn a_claim_stored_before_a_limit_was_tightened_still_merges_with_new_ones(b: Backend) {
    let first = b
        .store
        .ingest(&claim(
            "rekt",
            "Oldrulefi",
            "2023-05-01",
            Some("5000000"),
            &[],
        ))
        .await
        .unwrap();
    // As if written under looser rules: a technique far past today's maximum.
    let long = "x".repeat(kamiyo_domain::limits::MAX_TECHNIQUE_CHARS * 3);
    let sql = format!("UPDATE exploit_sources SET attack_text = '{long}'");
    match b.db.primary() {
        kamiyo_db::Pool::Postgres(pool) => {
            pool.acquire()
                .await
                .unwrap()
                .execute(&sql, &[])
                .await
                .unwrap();
        }
        kamiyo_db::Pool::Sqlite(pool) => {
            pool.acquire()
                .await
                .unwrap()
                .execute(&sql, Vec::new())
                .await
                .unwrap();
        }
    }
    let second = b
        .store
        .ingest(&claim(
            "defillama",
            "Oldrulefi",
            "2023-05-01",
            Some("5000000"),
            &[],
        ))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", b.name));
    assert_eq!(second.exploit_id, first.exploit_id, "{}", b.name);
    assert_eq!(second.action, IngestAction::Merged, "{}", b.name);
}

/// A mixed-case hash looked up in another case: found on an EVM chain (hex hashes are
/// compared in their canonical lower case), not on Solana (base58 is case-sensitive), the
/// same on every backend.
async fn hash_lookups_ignore_case_for_hex_hashes_only(b: Backend) {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
    let solana =
        "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW";
    let evm = format!("0x{}", "Ab".repeat(32));
    let mut ids = Vec::new();
    for (chain, protocol, hash) in [
        ("solana", "Casefi", solana),
        ("ethereum", "Hexfi", evm.as_str()),
    ] {
        let draft = IncidentDraft::from_input(
            IncidentInput {
                source: Some("fixture".into()),
                protocol: Some(protocol.into()),
                chains: vec![chain.into()],
                date: Some("2024-05-01".into()),
                tx_hashes: vec![TxHashInput {
                    chain: None,
                    hash: hash.into(),
                }],
                ..IncidentInput::default()
            },
            now,
        )
        .unwrap();
        ids.push(b.store.ingest(&draft).await.unwrap().exploit_id);
    }
    let found = |hash: String| {
        let store = &b.store;
        async move {
            store
                .find_by_tx_hash(&hash)
                .await
                .unwrap()
                .iter()
                .map(|i| i.id)
                .collect::<Vec<_>>()
        }
    };
    let name = b.name;
    assert_eq!(
        found(solana.to_owned()).await,
        vec![ids[0]],
        "{name}: as written"
    );
    assert!(
        found(solana.to_lowercase()).await.is_empty(),
        "{name}: a base58 signature in another case is another signature"
    );
    assert!(found(solana.to_uppercase()).await.is_empty(), "{name}");
    for query in [
        evm.clone(),
        evm.to_uppercase().replace("0X", "0x"),
        evm.to_lowercase(),
        evm[2..].to_owned(),
    ] {
        assert_eq!(found(query.clone()).await, vec![ids[1]], "{name}: {query}");
    }
}
