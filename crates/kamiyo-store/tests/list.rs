//! Listing on both backends: each filter against a known fixture, both sorts and orders,
//! totals that respect filters, and a cursor walk that sees every row once while rows are
//! being inserted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use kamiyo_db::Database;
use kamiyo_domain::{AttackClass, AttackType, Chain, IncidentStatus, Usd};
use kamiyo_store::incidents::{IncidentFilter, ListRequest, Order, PageLimit, SortKey};
use kamiyo_store::IncidentStore;
use kamiyo_testkit::{claim, ClaimBuilder};

type Backend = common::Backend<IncidentStore>;

/// (protocol, chain, date, loss, technique, status, description)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
);
const FIXTURE: &[Row] = &[
    (
        "Alphafi",
        "Ethereum",
        "2024-01-05",
        Some("1000000"),
        "reentrancy",
        "confirmed",
        "Reentrancy in vault",
    ),
    (
        "Betaswap",
        "BSC",
        "2024-02-10",
        Some("250000"),
        "price oracle manipulation",
        "confirmed",
        "Oracle pumped",
    ),
    (
        "Gammalend",
        "Arbitrum",
        "2024-03-15",
        None,
        "private key compromised",
        "suspected",
        "Deployer key leaked",
    ),
    (
        "Deltabridge",
        "Ethereum",
        "2024-04-20",
        Some("50000000"),
        "bridge validator keys",
        "confirmed",
        "Bridge drained 50%",
    ),
    (
        "Epsilon_Finance",
        "BNB Chain",
        "2024-05-25",
        Some("75000"),
        "rug pull",
        "disputed",
        "Team vanished",
    ),
    (
        "Alphafi",
        "Polygon",
        "2024-06-30",
        Some("3000000"),
        "logic error",
        "confirmed",
        "Second hack",
    ),
];

kamiyo_testkit::per_backend! {
    IncidentStore::new => [
        incidents_are_counted_and_filtered_by_their_independent_sources,
        every_filter_matches_the_fixture_and_total_respects_it,
        sorting_by_amount_and_date_in_both_orders_puts_unknown_amounts_last_in_both_orders,
        a_cursor_walk_sees_every_row_once_while_rows_are_inserted,
        pages_stay_full_and_the_last_has_no_cursor,
        amount_pages_cross_from_known_to_unknown_amounts_in_both_orders,
        the_chain_path_follows_an_incident_whose_date_or_loss_changes,
        concurrent_listings_of_one_uncached_filter_count_once,
        protocol_and_text_search_fold_case_beyond_ascii,
    ],
    cached_for_an_hour => [stats_are_reused_until_this_store_writes],
}

/// A store whose totals and stats are cached for an hour: within a test, only its own
/// writes make it count again.
fn cached_for_an_hour(db: Database) -> IncidentStore {
    IncidentStore::with_total_cache(db, std::time::Duration::from_secs(3600), 16)
}

/// Stores the fixture's incidents, ids 1 to 6 in its order.
async fn seed(b: &Backend) {
    for (protocol, chain, date, loss, technique, status, description) in FIXTURE {
        let draft = listed(protocol)
            .chain(chain)
            .date(*date)
            .loss(*loss)
            .technique(technique)
            .status(status)
            .description(*description)
            .build();
        b.store.ingest(&draft).await.unwrap();
    }
}

/// Both backends, seeded; for the test that compares them.
async fn seeded() -> Vec<Backend> {
    let backends = common::backends(IncidentStore::new).await;
    for b in &backends {
        seed(b).await;
    }
    backends
}

/// A claim of these tests' source, validated against a fixed time.
fn listed(protocol: &str) -> ClaimBuilder {
    claim(protocol).now(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap())
}

fn request(filter: IncidentFilter) -> ListRequest {
    ListRequest {
        filter,
        limit: PageLimit::new(100).unwrap(),
        ..ListRequest::default()
    }
}

async fn protocols(b: &Backend, req: ListRequest) -> (Vec<String>, i64) {
    let page = b.store.list(&req).await.unwrap();
    (
        page.items.into_iter().map(|i| i.protocol).collect(),
        page.total,
    )
}

async fn every_filter_matches_the_fixture_and_total_respects_it(b: Backend) {
    seed(&b).await;
    let usd = |s: &str| Some(Usd::parse("x", s).unwrap());
    let day = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single();
    let cases: Vec<(&str, IncidentFilter, Vec<&str>)> = vec![
        (
            "none",
            IncidentFilter::default(),
            vec![
                "Alphafi",
                "Epsilon_Finance",
                "Deltabridge",
                "Gammalend",
                "Betaswap",
                "Alphafi",
            ],
        ),
        (
            "chain alias",
            IncidentFilter {
                chain: Some(Chain::parse("bnb chain").unwrap()),
                ..Default::default()
            },
            vec!["Epsilon_Finance", "Betaswap"],
        ),
        (
            "protocol substring, any case",
            IncidentFilter {
                protocol: Some("ALPHA".into()),
                ..Default::default()
            },
            vec!["Alphafi", "Alphafi"],
        ),
        (
            "protocol with LIKE metacharacter",
            IncidentFilter {
                protocol: Some("n_f".into()),
                ..Default::default()
            },
            vec!["Epsilon_Finance"],
        ),
        (
            "attack type",
            IncidentFilter {
                attack_type: Some(AttackType::OracleManipulation),
                ..Default::default()
            },
            vec!["Betaswap"],
        ),
        (
            "attack class",
            IncidentFilter {
                attack_class: Some(AttackClass::KeyInfra),
                ..Default::default()
            },
            vec!["Deltabridge", "Gammalend"],
        ),
        (
            "min amount",
            IncidentFilter {
                min_amount: usd("1000000"),
                ..Default::default()
            },
            vec!["Alphafi", "Deltabridge", "Alphafi"],
        ),
        (
            "amount range",
            IncidentFilter {
                min_amount: usd("100000"),
                max_amount: usd("1000000"),
                ..Default::default()
            },
            vec!["Betaswap", "Alphafi"],
        ),
        (
            "date range",
            IncidentFilter {
                from: day(2024, 2, 1),
                to: day(2024, 4, 30),
                ..Default::default()
            },
            vec!["Deltabridge", "Gammalend", "Betaswap"],
        ),
        (
            "status",
            IncidentFilter {
                status: Some(IncidentStatus::Disputed),
                ..Default::default()
            },
            vec!["Epsilon_Finance"],
        ),
        (
            "text in description",
            IncidentFilter {
                q: Some("50%".into()),
                ..Default::default()
            },
            vec!["Deltabridge"],
        ),
        (
            "sql metacharacters in q",
            IncidentFilter {
                q: Some("'; DROP TABLE exploits; --".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            "combined",
            IncidentFilter {
                chain: Some(Chain::parse("eth").unwrap()),
                min_amount: usd("2000000"),
                from: day(2024, 1, 1),
                ..Default::default()
            },
            vec!["Deltabridge"],
        ),
    ];
    for (name, filter, expected) in &cases {
        let (got, total) = protocols(&b, request(filter.clone())).await;
        assert_eq!(&got, expected, "{}: {name}", b.name);
        assert_eq!(total, expected.len() as i64, "{}: {name} total", b.name);
    }
}

async fn sorting_by_amount_and_date_in_both_orders_puts_unknown_amounts_last_in_both_orders(
    b: Backend,
) {
    seed(&b).await;
    let by = |sort, order| ListRequest {
        sort,
        order,
        limit: PageLimit::new(100).unwrap(),
        ..ListRequest::default()
    };
    let (amount_desc, _) = protocols(&b, by(SortKey::Amount, Order::Desc)).await;
    assert_eq!(
        amount_desc,
        [
            "Deltabridge",
            "Alphafi",
            "Alphafi",
            "Betaswap",
            "Epsilon_Finance",
            "Gammalend"
        ],
        "{}",
        b.name
    );
    let (amount_asc, _) = protocols(&b, by(SortKey::Amount, Order::Asc)).await;
    assert_eq!(
        amount_asc,
        [
            "Epsilon_Finance",
            "Betaswap",
            "Alphafi",
            "Alphafi",
            "Deltabridge",
            "Gammalend"
        ],
        "{}: an unknown loss is not the smallest",
        b.name
    );
    let (date_asc, _) = protocols(&b, by(SortKey::Date, Order::Asc)).await;
    assert_eq!(
        date_asc,
        [
            "Alphafi",
            "Betaswap",
            "Gammalend",
            "Deltabridge",
            "Epsilon_Finance",
            "Alphafi"
        ],
        "{}",
        b.name
    );
}

async fn a_cursor_walk_sees_every_row_once_while_rows_are_inserted(b: Backend) {
    seed(&b).await;
    for sort in [SortKey::Date, SortKey::Amount] {
        let mut seen = Vec::new();
        let mut req = ListRequest {
            sort,
            limit: PageLimit::new(2).unwrap(),
            ..ListRequest::default()
        };
        let mut inserted = 0;
        loop {
            let page = b.store.list(&req).await.unwrap();
            assert!(page.items.len() <= 2);
            seen.extend(page.items.iter().map(|i| i.id));
            // New incidents arrive mid-walk, dated after everything walked so far.
            inserted += 1;
            let name = format!("Newcomer{sort:?}{inserted}");
            b.store
                .ingest(
                    &listed(&name)
                        .chain("Base")
                        .date("2025-01-01")
                        .loss_usd("10")
                        .build(),
                )
                .await
                .unwrap();
            match page.next_cursor {
                Some(cursor) => {
                    // As a client sends it back: the text it was given.
                    req.cursor = Cursor::decode(&cursor.encode(), sort, Order::Desc)
                }
                None => break,
            }
        }
        let unique: HashSet<i64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{}: {sort:?} repeated a row: {seen:?}",
            b.name
        );
        for original in 1..=6 {
            assert!(
                unique.contains(&original),
                "{}: {sort:?} skipped {original}: {seen:?}",
                b.name
            );
        }
    }
}

async fn pages_stay_full_and_the_last_has_no_cursor(b: Backend) {
    seed(&b).await;
    let first = b
        .store
        .list(&ListRequest {
            limit: PageLimit::new(4).unwrap(),
            ..ListRequest::default()
        })
        .await
        .unwrap();
    assert_eq!((first.items.len(), first.total), (4, 6), "{}", b.name);
    let cursor = Cursor::decode(
        &first.next_cursor.as_ref().unwrap().encode(),
        SortKey::Date,
        Order::Desc,
    );
    let second = b
        .store
        .list(&ListRequest {
            limit: PageLimit::new(4).unwrap(),
            cursor,
            ..ListRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2, "{}", b.name);
    assert!(second.next_cursor.is_none());
    assert_eq!(first.items[0].chains, [Chain::parse("polygon").unwrap()]);
}

use kamiyo_store::incidents::Cursor;

/// Not a story: it compares the two backends' numbers with each other, so it needs both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_agree_on_both_backends_and_are_exact_decimals() {
    use kamiyo_store::incidents::stats::Dimension;
    let mut summaries = Vec::new();
    for b in seeded().await {
        let summary = b.store.summary(None, None).await.unwrap();
        assert_eq!(summary.incidents, 6, "{}", b.name);
        assert_eq!(summary.total_loss_usd, "54325000.00", "{}", b.name);
        assert_eq!(summary.incidents_with_known_loss, 5, "{}", b.name);
        assert_eq!(summary.mean_loss_usd, "10865000.00", "{}", b.name);
        assert_eq!(
            summary.chains_affected, 4,
            "{}: bsc once, ethereum, arbitrum, polygon",
            b.name
        );
        assert_eq!(summary.protocols_affected, 5, "{}", b.name);
        let by_chain = b
            .store
            .breakdown(Dimension::Chain, None, None)
            .await
            .unwrap();
        assert_eq!(
            (by_chain[0].key.as_str(), by_chain[0].incidents),
            ("bsc", 2),
            "{}",
            b.name
        );
        let sources = kamiyo_store::SourceStore::new(b.db.clone())
            .report(kamiyo_store::DEFAULT_SOURCE_HEALTH_WINDOW, None, None)
            .await
            .unwrap();
        assert_eq!(
            (sources.len(), sources[0].incidents, sources[0].claims),
            (1, 6, 6),
            "{}",
            b.name
        );
        assert_eq!(sources[0].active, None, "{}", b.name);
        let since = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).single();
        assert_eq!(
            b.store.summary(since, None).await.unwrap().incidents,
            2,
            "{}",
            b.name
        );
        summaries.push((
            summary,
            by_chain,
            b.store
                .breakdown(Dimension::Month, None, None)
                .await
                .unwrap(),
            b.store.chains(None, None).await.unwrap(),
        ));
    }
    assert_eq!(
        summaries[0], summaries[1],
        "both backends give the same numbers"
    );
}

/// Every page of a keyset walk, `limit` rows at a time.
async fn walk(store: &IncidentStore, first: ListRequest) -> Vec<(i64, Option<String>)> {
    let mut request = first;
    let mut seen = Vec::new();
    loop {
        let page = store.list(&request).await.unwrap();
        assert!(page.items.len() <= request.limit.get());
        seen.extend(
            page.items
                .iter()
                .map(|i| (i.id, i.loss_usd.map(|usd| usd.to_string()))),
        );
        match page.next_cursor {
            Some(cursor) => {
                request.cursor = Cursor::decode(&cursor.encode(), request.sort, request.order);
                assert!(request.cursor.is_some(), "a cursor of this listing");
            }
            None => return seen,
        }
    }
}

async fn amount_pages_cross_from_known_to_unknown_amounts_in_both_orders(b: Backend) {
    seed(&b).await;
    // More unknown amounts than a page, and a tie on a known amount (id breaks it).
    for (protocol, loss) in [
        ("Unknowna", None),
        ("Unknownb", None),
        ("Tiedswap", Some("1000000")),
        ("Unknownc", None),
    ] {
        b.store
            .ingest(&listed(protocol).date("2024-07-01").loss(loss).build())
            .await
            .unwrap();
    }
    let everything = walk(
        &b.store,
        ListRequest {
            limit: PageLimit::new(500).unwrap(),
            ..ListRequest::default()
        },
    )
    .await;
    let amount = |loss: &Option<String>| loss.as_ref().map(|l| l.parse::<f64>().unwrap());
    for order in [Order::Desc, Order::Asc] {
        // Known amounts in the order asked, ties by id the same way, unknown ones last
        // by id the same way.
        let mut expected = everything.clone();
        expected.sort_by(|x, y| {
            let known = amount(&x.1).is_none().cmp(&amount(&y.1).is_none());
            let by_value = amount(&x.1)
                .partial_cmp(&amount(&y.1))
                .unwrap()
                .then(x.0.cmp(&y.0));
            known.then(match order {
                Order::Desc => by_value.reverse(),
                Order::Asc => by_value,
            })
        });
        assert!(expected.last().unwrap().1.is_none());
        for limit in [1, 2, 3, 4, 100] {
            let walked = walk(
                &b.store,
                ListRequest {
                    sort: SortKey::Amount,
                    order,
                    limit: PageLimit::new(limit).unwrap(),
                    ..ListRequest::default()
                },
            )
            .await;
            assert_eq!(walked, expected, "{}: {order:?} by {limit}", b.name);
        }
        // The same through the chain path (ethereum: three known, three unknown).
        let on_ethereum = walk(
            &b.store,
            ListRequest {
                filter: IncidentFilter {
                    chain: Some(Chain::parse("ethereum").unwrap()),
                    ..Default::default()
                },
                sort: SortKey::Amount,
                order,
                limit: PageLimit::new(2).unwrap(),
                ..ListRequest::default()
            },
        )
        .await;
        assert_eq!(on_ethereum.len(), 6, "{}", b.name);
        let expected_on_ethereum: Vec<_> = expected
            .iter()
            .filter(|row| on_ethereum.contains(row))
            .cloned()
            .collect();
        assert_eq!(on_ethereum, expected_on_ethereum, "{}: {order:?}", b.name);
    }
    // An amount bound never matches an unknown amount, on either path.
    for chain in [None, Some(Chain::parse("ethereum").unwrap())] {
        let bounded = walk(
            &b.store,
            ListRequest {
                filter: IncidentFilter {
                    chain,
                    min_amount: Some(Usd::parse("x", "1").unwrap()),
                    ..Default::default()
                },
                sort: SortKey::Amount,
                order: Order::Asc,
                limit: PageLimit::new(1).unwrap(),
                ..ListRequest::default()
            },
        )
        .await;
        assert!(bounded.iter().all(|(_, loss)| loss.is_some()), "{}", b.name);
    }
}

/// Runs one statement outside the store, as another process would.
async fn execute(db: &Database, postgres: &str, sqlite: &str) {
    match db.primary() {
        kamiyo_db::Pool::Postgres(pool) => {
            let conn = pool.acquire().await.unwrap();
            conn.execute(postgres, &[]).await.unwrap();
        }
        kamiyo_db::Pool::Sqlite(pool) => {
            let conn = pool.acquire().await.unwrap();
            conn.execute(sqlite, vec![]).await.unwrap();
        }
    }
}

async fn the_chain_path_follows_an_incident_whose_date_or_loss_changes(b: Backend) {
    seed(&b).await;
    let on_arbitrum = |from: &str, to: &str, min: Option<&str>| {
        let day = |d: &str| {
            Some(
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    .and_utc(),
            )
        };
        request(IncidentFilter {
            chain: Some(Chain::parse("arbitrum").unwrap()),
            from: day(from),
            to: day(to),
            min_amount: min.map(|m| Usd::parse("x", m).unwrap()),
            ..Default::default()
        })
    };
    // Gammalend (arbitrum, 2024-03-15, unknown loss), changed behind the store's back:
    // each request below uses a filter not listed before, so no total is cached.
    execute(
        &b.db,
        "UPDATE exploits SET occurred_at = '2025-06-01T00:00:00Z', amount_usd = 7.00 WHERE protocol = 'Gammalend'",
        "UPDATE exploits SET occurred_at = '2025-06-01T00:00:00.000Z', amount_usd = '7.00' WHERE protocol = 'Gammalend'",
    )
    .await;
    let (found, total) = protocols(&b, on_arbitrum("2025-01-01", "2025-12-31", Some("5"))).await;
    assert_eq!(
        (found, total),
        (vec!["Gammalend".to_owned()], 1),
        "{}",
        b.name
    );
    let (found, total) = protocols(&b, on_arbitrum("2024-01-01", "2024-12-31", None)).await;
    assert_eq!(
        (found.len(), total),
        (0, 0),
        "{}: not at its old date",
        b.name
    );
    // A chain row written after the incident takes the incident's values.
    execute(
        &b.db,
        "INSERT INTO exploit_chains (exploit_id, chain) SELECT id, 'arbitrum' FROM exploits WHERE protocol = 'Betaswap'",
        "INSERT INTO exploit_chains (exploit_id, chain) SELECT id, 'arbitrum' FROM exploits WHERE protocol = 'Betaswap'",
    )
    .await;
    let (found, total) =
        protocols(&b, on_arbitrum("2024-02-01", "2024-02-28", Some("200000"))).await;
    assert_eq!(
        (found, total),
        (vec!["Betaswap".to_owned()], 1),
        "{}",
        b.name
    );
}

/// Executions of the listing's count so far (the pool monitor's statement statistics).
fn count_executions(db: &Database) -> u64 {
    db.monitors()
        .iter()
        .flat_map(|(monitor, _)| monitor.statements(kamiyo_db::monitor::QuerySort::Calls, 1000))
        // The total's own statement; a page's rows count their sources as a subquery.
        .filter(|s| s.statement.to_lowercase().contains("select count(*)"))
        .map(|s| s.calls)
        .sum()
}

async fn concurrent_listings_of_one_uncached_filter_count_once(b: Backend) {
    seed(&b).await;
    // A long TTL: the only way to a second count would be a second flight.
    let store =
        IncidentStore::with_total_cache(b.db.clone(), std::time::Duration::from_secs(3600), 64);
    let filter = IncidentFilter {
        min_amount: Some(Usd::parse("x", "100000").unwrap()),
        ..Default::default()
    };
    let before = count_executions(&b.db);
    let listing = request(filter);
    let list = || store.list(&listing);
    // Polled together: every call asks for the total before the first count can end.
    let pages = tokio::join!(
        list(),
        list(),
        list(),
        list(),
        list(),
        list(),
        list(),
        list()
    );
    let totals = [
        pages.0.unwrap().total,
        pages.1.unwrap().total,
        pages.2.unwrap().total,
        pages.3.unwrap().total,
        pages.4.unwrap().total,
        pages.5.unwrap().total,
        pages.6.unwrap().total,
        pages.7.unwrap().total,
    ];
    assert_eq!(totals, [4; 8], "{}", b.name);
    assert_eq!(count_executions(&b.db) - before, 1, "{}", b.name);
    // A write through the store invalidates: the next listing counts again.
    store
        .ingest(
            &listed("Omega")
                .date("2024-08-01")
                .loss_usd("900000")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(list().await.unwrap().total, 5, "{}", b.name);
    assert_eq!(count_executions(&b.db) - before, 2, "{}", b.name);
}

async fn protocol_and_text_search_fold_case_beyond_ascii(b: Backend) {
    for (protocol, description) in [
        ("Ünïswap", "Drained through a forged ÉCHANGE message"),
        ("Plainswap", "Nothing special"),
    ] {
        b.store
            .ingest(
                &listed(protocol)
                    .date("2024-01-05")
                    .description(description)
                    .build(),
            )
            .await
            .unwrap();
    }
    for (filter, what) in [
        (
            IncidentFilter {
                protocol: Some("ÜNÏ".into()),
                ..IncidentFilter::default()
            },
            "protocol=ÜNÏ",
        ),
        (
            IncidentFilter {
                q: Some("échange".into()),
                ..IncidentFilter::default()
            },
            "q=échange",
        ),
    ] {
        let (names, total) = protocols(&b, request(filter)).await;
        assert_eq!(
            (names, total),
            (vec!["Ünïswap".to_owned()], 1),
            "{}: {what}",
            b.name
        );
    }
}

async fn stats_are_reused_until_this_store_writes(b: Backend) {
    let claim = |protocol: &str| listed(protocol).date("2024-01-05").build();
    b.store.ingest(&claim("Firstfi")).await.unwrap();
    let counts = |s: &IncidentStore| {
        let s = s.clone();
        async move {
            let summary = s.summary(None, None).await.unwrap();
            let by_chain = s
                .breakdown(kamiyo_store::incidents::stats::Dimension::Chain, None, None)
                .await
                .unwrap();
            (summary.incidents, by_chain[0].incidents)
        }
    };
    assert_eq!(counts(&b.store).await, (1, 1), "{}", b.name);
    // Another process writes: this store's answers are reused (within the TTL).
    IncidentStore::new(b.db.clone())
        .ingest(&claim("Secondfi"))
        .await
        .unwrap();
    assert_eq!(counts(&b.store).await, (1, 1), "{}: cached", b.name);
    // This store writes: everything is counted again.
    b.store.ingest(&claim("Thirdfi")).await.unwrap();
    assert_eq!(counts(&b.store).await, (3, 3), "{}: after a write", b.name);
}

async fn incidents_are_counted_and_filtered_by_their_independent_sources(b: Backend) {
    for (source, name, loss) in [
        ("defillama", "Twosourcefi", "1000000"),
        ("rekt", "Twosourcefi", "1100000"),
        ("defillama", "Onesourcefi", "5000000"),
    ] {
        b.store
            .ingest(
                &listed(name)
                    .source(source)
                    .date("2025-06-01")
                    .loss_usd(loss)
                    .build(),
            )
            .await
            .unwrap();
    }
    let all = b
        .store
        .list(&request(IncidentFilter::default()))
        .await
        .unwrap();
    let mut counts: Vec<(String, i64)> = all
        .items
        .iter()
        .map(|i| (i.protocol.clone(), i.sources_count))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [("Onesourcefi".to_owned(), 1), ("Twosourcefi".to_owned(), 2)],
        "{}",
        b.name
    );
    // Alone, and with a chain filter (the total then counts from the chain table).
    for chain in [None, Some(kamiyo_domain::Chain::parse("ethereum").unwrap())] {
        let filter = IncidentFilter {
            chain: chain.clone(),
            min_sources: Some(2),
            ..IncidentFilter::default()
        };
        let (names, total) = protocols(&b, request(filter)).await;
        assert_eq!(
            (names, total),
            (vec!["Twosourcefi".to_owned()], 1),
            "{}: chain {chain:?}",
            b.name
        );
    }
    let id = all
        .items
        .iter()
        .find(|i| i.protocol == "Twosourcefi")
        .unwrap()
        .id;
    let incident = b.store.get(id).await.unwrap().unwrap();
    assert_eq!(incident.sources_count, 2, "{}", b.name);
}
