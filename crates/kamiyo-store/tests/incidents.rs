//! The incident repository's conformance suite: every test runs on PostgreSQL and on
//! SQLite and must see the same behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{TimeZone, Utc};
use kamiyo_db::{Database, Pool};
use kamiyo_domain::{AttackClass, AttackType};
use kamiyo_store::{IncidentStore, IngestAction};
use kamiyo_testkit::{claim, ClaimBuilder};

type Backend = common::Backend<IncidentStore>;

kamiyo_testkit::per_backend! {
    IncidentStore::new => [
        the_same_hash_from_two_sources_is_one_incident_with_two_source_references,
        one_hack_under_two_names_two_days_apart_without_hashes_is_merged,
        one_protocol_hacked_twice_a_month_apart_is_two_incidents,
        a_hash_pasted_onto_two_different_protocols_does_not_merge_them,
        importing_the_same_claims_again_changes_nothing,
        a_changed_description_updates_its_claim_and_nothing_else,
        an_unknown_amount_is_stored_as_unknown_not_zero,
        concurrent_imports_of_one_hack_create_one_incident,
        a_sources_own_two_records_days_apart_stay_two_incidents,
        a_corrected_amount_from_the_same_source_updates_its_claim,
        a_batch_stores_every_claim_but_the_one_the_database_refuses,
        a_claim_stored_before_a_limit_was_tightened_still_merges_with_new_ones,
        hash_lookups_ignore_case_for_hex_hashes_only,
        a_chainless_record_merges_by_name_and_date_and_the_named_chain_is_the_incident_s,
        a_hash_given_without_a_chain_meets_the_same_hash_on_its_family_s_chain,
        a_hash_pasted_onto_a_claim_weeks_away_does_not_pull_it_in,
        an_editorial_title_citing_the_same_page_joins_the_incident,
        disagreements_between_sources_are_shown_as_conflicts,
        every_claim_says_why_it_joined_its_incident,
        a_hash_held_on_the_unknown_chain_is_not_taken_by_another_protocol_on_a_named_one,
        chainless_records_are_listed_under_the_unknown_chain,
    ],
}

fn hash(byte: &str) -> String {
    format!("0x{}", byte.repeat(32))
}

/// A claim of `source` as the claims of these tests look: on Ethereum (the default), an oracle
/// manipulation, with a page of the source's own; validated against a fixed time.
fn reported(source: &str, protocol: &str) -> ClaimBuilder {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
    claim(protocol)
        .source(source)
        .source_url(format!("https://{source}.example/{protocol}"))
        .technique("Price oracle manipulation")
        .now(now)
}

async fn the_same_hash_from_two_sources_is_one_incident_with_two_source_references(b: Backend) {
    let h = hash("aa");
    let first = b
        .store
        .ingest(
            &reported("defillama", "Euler Finance")
                .date("2023-03-13")
                .loss_usd("197000000")
                .hash(h.clone())
                .build(),
        )
        .await
        .unwrap();
    let second = b
        .store
        .ingest(
            &reported("rekt", "Euler")
                .date("2023-03-15")
                .loss_usd("195000000")
                .hash(h.clone())
                .build(),
        )
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
        incident.loss_usd.map(|usd| usd.to_string()).as_deref(),
        Some("195000000.00"),
        "{}: lower median of two",
        b.name
    );
    assert_eq!(incident.tx_hashes.len(), 1, "{}", b.name);
    assert_eq!(incident.attack_type, AttackType::OracleManipulation);
    assert_eq!(incident.attack_class, AttackClass::Economic);
    // Merging never drops a source's claim: both amounts are still there.
    let amounts: Vec<_> = incident
        .sources
        .iter()
        .map(|s| s.loss_usd.unwrap().to_string())
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
        .ingest(
            &reported("defillama", "EulerFinance")
                .date("2023-03-13")
                .loss_usd("197000000")
                .build(),
        )
        .await
        .unwrap();
    let c = b
        .store
        .ingest(
            &reported("rekt", "Euler Finance")
                .date("2023-03-15")
                .loss_usd("196000000")
                .build(),
        )
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
        .ingest(
            &reported("defillama", "Examplefi")
                .date("2023-03-13")
                .loss_usd("1000000")
                .build(),
        )
        .await
        .unwrap();
    let c = b
        .store
        .ingest(
            &reported("defillama", "Examplefi")
                .date("2023-04-14")
                .loss_usd("1000000")
                .build(),
        )
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
        .ingest(
            &reported("defillama", "Alphafi")
                .date("2023-05-01")
                .loss_usd("5000000")
                .hash(h.clone())
                .build(),
        )
        .await
        .unwrap();
    let c = b
        .store
        .ingest(
            &reported("rekt", "Betaswap")
                .date("2023-05-01")
                .loss_usd("5000000")
                .hash(h.clone())
                .build(),
        )
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

/// Two claims of one source: Euler (with a hash), then Examplefi (loss unknown).
fn two_claims() -> [kamiyo_domain::IncidentDraft; 2] {
    [
        reported("defillama", "Euler")
            .date("2023-03-13")
            .loss_usd("197000000")
            .hash(hash("cc"))
            .build(),
        reported("defillama", "Examplefi")
            .date("2023-06-01")
            .unknown_loss()
            .build(),
    ]
}

async fn importing_the_same_claims_again_changes_nothing(b: Backend) {
    let claims = two_claims();
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
}

async fn a_changed_description_updates_its_claim_and_nothing_else(b: Backend) {
    let [euler, examplefi] = two_claims();
    b.store.ingest(&euler).await.unwrap();
    let other = b.store.ingest(&examplefi).await.unwrap().exploit_id;
    let other_before = b.store.get(other).await.unwrap();
    let mut corrected = euler;
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
    assert_eq!(
        b.store.get(other).await.unwrap(),
        other_before,
        "{}: the other incident is untouched",
        b.name
    );
}

async fn an_unknown_amount_is_stored_as_unknown_not_zero(b: Backend) {
    let outcome = b
        .store
        .ingest(
            &reported("defillama", "Mysteryfi")
                .date("2024-01-01")
                .unknown_loss()
                .build(),
        )
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
        let c = reported(source, "Racefi")
            .date("2024-02-02")
            .loss_usd("3000000")
            .build();
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

async fn a_sources_own_two_records_days_apart_stay_two_incidents(b: Backend) {
    let first = b
        .store
        .ingest(
            &reported("defillama", "Ooki")
                .date("2020-02-15")
                .loss_usd("350000")
                .build(),
        )
        .await
        .unwrap();
    let second = b
        .store
        .ingest(
            &reported("defillama", "Ooki")
                .date("2020-02-18")
                .loss_usd("650000")
                .build(),
        )
        .await
        .unwrap();
    assert_ne!(
        first.exploit_id, second.exploit_id,
        "{}: one source, two records, two incidents",
        b.name
    );
    let other_source = b
        .store
        .ingest(
            &reported("rekt", "Ooki")
                .date("2020-02-16")
                .loss_usd("360000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(other_source.action, IngestAction::Merged, "{}", b.name);
}

async fn a_corrected_amount_from_the_same_source_updates_its_claim(b: Backend) {
    let typo = b
        .store
        .ingest(
            &reported("defillama", "Samurai")
                .date("2024-03-22")
                .loss_usd("48000000")
                .build(),
        )
        .await
        .unwrap();
    let fixed = b
        .store
        .ingest(
            &reported("defillama", "Samurai")
                .date("2024-03-22")
                .loss_usd("4800000")
                .build(),
        )
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
    assert_eq!(
        incident.loss_usd.map(|usd| usd.to_string()).as_deref(),
        Some("4800000.00")
    );
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
        reported("alpha", "Alphafi")
            .date("2024-01-01")
            .loss_usd("100")
            .hash(hash("a1").clone())
            .build(),
        reported("alpha", "Refused")
            .date("2024-01-02")
            .loss_usd("200")
            .hash(hash("b2").clone())
            .build(),
        reported("beta", "Alphafi")
            .date("2024-01-02")
            .loss_usd("110")
            .build(),
        reported("alpha", "Gammaswap")
            .date("2024-02-01")
            .unknown_loss()
            .build(),
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
        .ingest(
            &reported("rekt", "Oldrulefi")
                .date("2023-05-01")
                .loss_usd("5000000")
                .build(),
        )
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
        .ingest(
            &reported("defillama", "Oldrulefi")
                .date("2023-05-01")
                .loss_usd("5000000")
                .build(),
        )
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
        let draft = claim(protocol)
            .chain(chain)
            .date("2024-05-01")
            .unknown_loss()
            .hash(hash)
            .now(now)
            .build();
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

async fn a_chainless_record_merges_by_name_and_date_and_the_named_chain_is_the_incident_s(
    b: Backend,
) {
    let news = b
        .store
        .ingest(
            &reported("rekt", "Examplefi")
                .no_chain()
                .date("2024-03-23")
                .unknown_loss()
                .build(),
        )
        .await
        .unwrap();
    let listed = b
        .store
        .ingest(
            &reported("defillama", "Examplefi")
                .chain("BSC")
                .date("2024-03-22")
                .loss_usd("4800000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        (news.action, listed.action),
        (IngestAction::Inserted, IngestAction::Merged),
        "{}",
        b.name
    );
    let incident = b.store.get(news.exploit_id).await.unwrap().unwrap();
    let chains: Vec<&str> = incident.chains.iter().map(|c| c.slug()).collect();
    assert_eq!(chains, ["bsc"], "{}: the unknown chain gives way", b.name);
    assert_eq!(incident.sources.len(), 2, "{}", b.name);
}

async fn a_hash_given_without_a_chain_meets_the_same_hash_on_its_family_s_chain(b: Backend) {
    let h = hash("c4");
    let placed = b
        .store
        .ingest(
            &reported("defillama", "Hashfi")
                .chain("Arbitrum")
                .date("2024-05-01")
                .loss_usd("1000000")
                .hash(h.clone())
                .build(),
        )
        .await
        .unwrap();
    // A source that names no chain, a day later, with a 10x amount: only the hash joins.
    let bare = b
        .store
        .ingest(
            &reported("defihacklabs", "Hashfi")
                .no_chain()
                .date("2024-05-02")
                .loss_usd("10000000")
                .hash(h.to_uppercase().replace("0X", "0x"))
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(bare.action, IngestAction::Merged, "{}: {bare:?}", b.name);
    assert_eq!(bare.exploit_id, placed.exploit_id, "{}", b.name);
    let incident = b.store.get(placed.exploit_id).await.unwrap().unwrap();
    let hashes: Vec<(String, String)> = incident
        .tx_hashes
        .iter()
        .map(|t| (t.chain.slug().to_owned(), t.hash.clone()))
        .collect();
    assert_eq!(
        hashes,
        [("arbitrum".to_owned(), h.clone())],
        "{}: one hash, on the chain a source placed it",
        b.name
    );
    // And the other way round: a hash stored on the unknown chain is found by a claim
    // that places it.
    let g = hash("d5");
    let first = b
        .store
        .ingest(
            &reported("defihacklabs", "Otherhash")
                .no_chain()
                .date("2024-06-01")
                .loss_usd("1000000")
                .hash(g.clone())
                .build(),
        )
        .await
        .unwrap();
    let second = b
        .store
        .ingest(
            &reported("defillama", "Otherhash")
                .chain("Base")
                .date("2024-06-02")
                .loss_usd("10000000")
                .hash(g.clone())
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        (second.action, second.exploit_id),
        (IngestAction::Merged, first.exploit_id),
        "{}",
        b.name
    );
}

async fn chainless_records_are_listed_under_the_unknown_chain(b: Backend) {
    use kamiyo_store::incidents::{IncidentFilter, ListRequest};
    b.store
        .ingest(
            &reported("rekt", "Nochainfi")
                .no_chain()
                .date("2024-02-02")
                .build(),
        )
        .await
        .unwrap();
    b.store
        .ingest(&reported("defillama", "Chainfi").date("2024-02-02").build())
        .await
        .unwrap();
    let page = b
        .store
        .list(&ListRequest {
            filter: IncidentFilter {
                chain: Some(kamiyo_domain::Chain::parse("unknown").unwrap()),
                ..IncidentFilter::default()
            },
            ..ListRequest::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = page.items.iter().map(|i| i.protocol.as_str()).collect();
    assert_eq!(names, ["Nochainfi"], "{}", b.name);
}

async fn a_hash_pasted_onto_a_claim_weeks_away_does_not_pull_it_in(b: Backend) {
    let h = hash("e6");
    let earlier = b
        .store
        .ingest(
            &reported("defillama", "Twicefi")
                .date("2024-07-01")
                .loss_usd("2000000")
                .hash(h.clone())
                .build(),
        )
        .await
        .unwrap();
    // The same protocol's later exploit, with the first one's hash pasted onto it.
    let later = b
        .store
        .ingest(
            &reported("defihacklabs", "Twicefi")
                .date("2024-07-25")
                .loss_usd("500000")
                .hash(h)
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        later.action,
        IngestAction::Inserted,
        "{}: {later:?}",
        b.name
    );
    assert_ne!(later.exploit_id, earlier.exploit_id, "{}", b.name);
    assert!(
        later
            .warnings
            .iter()
            .any(|w| w.contains("another incident")),
        "{}: the report says the hash stayed where it was: {later:?}",
        b.name
    );
    let first = b.store.get(earlier.exploit_id).await.unwrap().unwrap();
    assert_eq!(
        first.occurred_at.date_naive().to_string(),
        "2024-07-01",
        "{}: the earlier incident's date did not move",
        b.name
    );
}

async fn an_editorial_title_citing_the_same_page_joins_the_incident(b: Backend) {
    let page = "https://rekt.news/plenty-of-phish/";
    let listed = b
        .store
        .ingest(
            &claim("Examplefi")
                .source("defillama")
                .source_url(page)
                .date("2024-03-20")
                .loss_usd("4800000")
                .build(),
        )
        .await
        .unwrap();
    // The news site's own title, its article dated days later, its link written
    // without the trailing slash.
    let article = b
        .store
        .ingest(
            &claim("Plenty of Phish")
                .source("rekt")
                .source_url("https://rekt.news/plenty-of-phish")
                .no_chain()
                .date("2024-03-25")
                .unknown_loss()
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        (article.action, article.exploit_id),
        (IngestAction::Merged, listed.exploit_id),
        "{}",
        b.name
    );
    // A site's home page proves nothing; a page cited for a loss 100x apart is another
    // hack it also covers.
    for (name, url, loss) in [
        ("Other Title", "https://rekt.news/", "4800000"),
        ("Third Title", page, "48000000000"),
    ] {
        let other = b
            .store
            .ingest(
                &claim(name)
                    .source("rekt")
                    .source_url(url)
                    .date("2024-03-21")
                    .loss_usd(loss)
                    .build(),
            )
            .await
            .unwrap();
        assert_eq!(other.action, IngestAction::Inserted, "{}: {name}", b.name);
    }
}

async fn disagreements_between_sources_are_shown_as_conflicts(b: Backend) {
    let first = b
        .store
        .ingest(
            &reported("defillama", "Conflictfi")
                .chain("BSC")
                .date("2024-08-01")
                .loss_usd("2000000")
                .build(),
        )
        .await
        .unwrap();
    let second = b
        .store
        .ingest(
            &reported("defihacklabs", "Conflictfi")
                .chain("BSC")
                .chain("Ethereum")
                .date("2024-08-03")
                .loss_usd("3000000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(second.exploit_id, first.exploit_id, "{}", b.name);
    let incident = b.store.get(first.exploit_id).await.unwrap().unwrap();
    let fields: Vec<&str> = incident
        .conflicts
        .iter()
        .map(|c| c.field.as_str())
        .collect();
    assert_eq!(fields, ["loss_usd", "occurred_at", "chains"], "{}", b.name);
    let losses: Vec<(&str, &str)> = incident.conflicts[0]
        .values
        .iter()
        .map(|v| (v.source.as_str(), v.value.as_str()))
        .collect();
    assert_eq!(
        losses,
        [("defillama", "2000000.00"), ("defihacklabs", "3000000.00")],
        "{}",
        b.name
    );
    // One source alone never conflicts with itself.
    let alone = b
        .store
        .ingest(&reported("rekt", "Lonefi").date("2024-09-01").build())
        .await
        .unwrap();
    let lone = b.store.get(alone.exploit_id).await.unwrap().unwrap();
    assert!(
        lone.conflicts.is_empty(),
        "{}: {:?}",
        b.name,
        lone.conflicts
    );
}

async fn every_claim_says_why_it_joined_its_incident(b: Backend) {
    use kamiyo_store::incidents::JoinReason;
    let h = hash("f7");
    let page = "https://rekt.news/why-joined-rekt/";
    let first = b
        .store
        .ingest(
            &reported("defillama", "Abracadabra")
                .source_url(page)
                .date("2024-01-30")
                .loss_usd("6500000")
                .hash(h.clone())
                .build(),
        )
        .await
        .unwrap();
    for claim in [
        // The same hash, under a name only the alias table joins.
        reported("defihacklabs", "MIMSpell")
            .date("2024-01-30")
            .unknown_loss()
            .hash(h),
        // The page, under an editorial title.
        claim("Magic Money Meltdown")
            .source("rekt")
            .source_url(page)
            .date("2024-02-02")
            .unknown_loss(),
        // The same name, within the window.
        reported("peckshield", "Abracadabra Money")
            .date("2024-01-31")
            .loss_usd("6400000"),
        // An alias none of its claims spells, without hash or page.
        reported("certik", "Magic Internet Money")
            .date("2024-01-31")
            .loss_usd("6450000"),
    ] {
        let joined = b.store.ingest(&claim.build()).await.unwrap();
        assert_eq!(
            joined.exploit_id, first.exploit_id,
            "{}: {joined:?}",
            b.name
        );
    }
    let incident = b.store.get(first.exploit_id).await.unwrap().unwrap();
    let reasons: Vec<(&str, Option<JoinReason>)> = incident
        .sources
        .iter()
        .map(|s| (s.source.as_str(), s.joined_by))
        .collect();
    assert_eq!(
        reasons,
        [
            ("defillama", Some(JoinReason::First)),
            ("defihacklabs", Some(JoinReason::Hash)),
            ("rekt", Some(JoinReason::Page)),
            ("peckshield", Some(JoinReason::Name)),
            ("certik", Some(JoinReason::Alias)),
        ],
        "{}",
        b.name
    );
    assert_eq!(incident.sources_count, 5, "{}", b.name);
}

async fn a_hash_held_on_the_unknown_chain_is_not_taken_by_another_protocol_on_a_named_one(
    b: Backend,
) {
    let h = hash("a9");
    let first = b
        .store
        .ingest(
            &reported("defihacklabs", "Foofi")
                .no_chain()
                .date("2024-10-01")
                .hash(h.clone())
                .build(),
        )
        .await
        .unwrap();
    let other = b
        .store
        .ingest(
            &reported("defillama", "Barfi")
                .chain("Ethereum")
                .date("2024-10-01")
                .hash(h.clone())
                .build(),
        )
        .await
        .unwrap();
    assert_ne!(other.exploit_id, first.exploit_id, "{}", b.name);
    assert!(
        other
            .warnings
            .iter()
            .any(|w| w.contains("another incident")),
        "{}: {other:?}",
        b.name
    );
    let holders = b.store.find_by_tx_hash(&h).await.unwrap();
    let ids: Vec<i64> = holders.iter().map(|i| i.id).collect();
    assert_eq!(ids, [first.exploit_id], "{}: one holder", b.name);
}
