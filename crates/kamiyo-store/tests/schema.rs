//! The schema on both backends, through Kamiyo's own pools and migration runner: what a
//! fresh deployment gets, and the original's defects, each with a test that catches it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use kamiyo_db::{Database, DbError, Pool};
use kamiyo_store::MIGRATIONS;
use tokio_postgres::SimpleQueryMessage;

type Backend = common::Backend<Fixture>;

kamiyo_testkit::per_backend! {
    Fixture::on => [
        a_fresh_database_gets_every_table_view_index_and_trigger_and_a_second_start_changes_nothing,
        updating_a_user_succeeds_and_moves_updated_at,
        tiers_and_statuses_are_constrained,
        financial_and_audit_records_block_deleting_their_user,
        a_transaction_hash_is_unique_per_chain,
        incidents_without_a_hash_may_share_a_chain_and_unknown_amounts_stay_null,
        alerts_reference_their_user_and_are_sent_once_per_exploit_user_and_channel,
        the_stats_view_of_an_empty_database_gives_zeros_not_nulls,
        source_health_stays_within_0_to_100,
        a_fetch_row_has_an_error_exactly_when_it_failed,
        claim_keys_stored_before_0006_name_their_day_after_it,
    ],
}

/// A database of either backend, migrated by Kamiyo (`common` makes a fresh one per
/// test), with a way to run SQL through Kamiyo's pool and read every result as text.
struct Fixture {
    database: Database,
}

impl Fixture {
    fn on(database: Database) -> Fixture {
        Fixture { database }
    }

    fn name(&self) -> &'static str {
        match self.database.primary() {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    async fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        match self.database.primary() {
            Pool::Postgres(pool) => {
                let conn = pool.acquire().await?;
                let messages = conn.simple_query(sql).await?;
                Ok(messages
                    .iter()
                    .filter_map(|message| match message {
                        SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_owned))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect())
            }
            Pool::Sqlite(pool) => {
                let conn = pool.acquire().await?;
                let sql = sql.to_owned();
                conn.run(move |c| {
                    let mut statement = c.prepare(&sql)?;
                    let columns = statement.column_count();
                    let mut rows = statement.query([])?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        let mut values = Vec::new();
                        for i in 0..columns {
                            values.push(match row.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                                rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                                rusqlite::types::ValueRef::Text(v)
                                | rusqlite::types::ValueRef::Blob(v) => {
                                    Some(String::from_utf8_lossy(v).into_owned())
                                }
                            });
                        }
                        out.push(values);
                    }
                    Ok(out)
                })
                .await
            }
        }
    }

    async fn column(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.name()))
            .into_iter()
            .map(|row| row.into_iter().next().flatten().unwrap_or_default())
            .collect()
    }

    async fn value(&self, sql: &str) -> String {
        self.column(sql)
            .await
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    async fn exec(&self, sql: &str) -> Result<(), DbError> {
        self.rows(sql).await.map(|_| ())
    }

    /// Tables, views, indexes and triggers, by name.
    async fn catalog(&self) -> [Vec<String>; 4] {
        let queries = match self.database.primary() {
            Pool::Postgres(_) => [
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'kamiyo_schema_migrations' ORDER BY 1",
                "SELECT table_name FROM information_schema.views WHERE table_schema = 'public' ORDER BY 1",
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey' ORDER BY 1",
                "SELECT DISTINCT trigger_name || ' ON ' || event_object_table FROM information_schema.triggers WHERE trigger_schema = 'public' ORDER BY 1",
            ],
            Pool::Sqlite(_) => [
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'kamiyo_schema_migrations' ORDER BY 1",
                "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY 1",
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY 1",
                "SELECT name || ' ON ' || tbl_name FROM sqlite_master WHERE type = 'trigger' ORDER BY 1",
            ],
        };
        let mut out: [Vec<String>; 4] = Default::default();
        for (slot, sql) in out.iter_mut().zip(queries) {
            *slot = self.column(sql).await;
        }
        out
    }

    async fn updated_at(&self, table: &str, key: &str) -> String {
        let sql = match self.database.primary() {
            Pool::Postgres(_) => format!(
                "SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM {table} WHERE {key}"
            ),
            Pool::Sqlite(_) => format!("SELECT updated_at FROM {table} WHERE {key}"),
        };
        self.value(&sql).await
    }
}

const TABLES: [&str; 28] = [
    "alert_attempts",
    "alert_deliveries",
    "alert_events",
    "alert_preferences",
    "alert_subscriptions",
    "alerts_sent",
    "api_keys",
    "bounties",
    "community_submissions",
    "curation_decisions",
    "exploit_chains",
    "exploit_sources",
    "exploit_tx_hashes",
    "exploits",
    "incident_redirects",
    "maintenance_tasks",
    "payments",
    "protocol_aliases",
    "rate_limit_buckets",
    "reputation_events",
    "reviewers",
    "source_fetch_slots",
    "source_fetches",
    "sources",
    "submission_reviews",
    "subscription_changes",
    "user_reputation",
    "users",
];
const VIEWS: [&str; 4] = [
    "v_recent_exploits",
    "v_source_health",
    "v_stats_24h",
    "v_user_stats",
];
const TRIGGER_TABLES: [&str; 5] = [
    "exploits",
    "sources",
    "users",
    "alert_preferences",
    "user_reputation",
];

async fn a_fresh_database_gets_every_table_view_index_and_trigger_and_a_second_start_changes_nothing(
    b: Backend,
) {
    let fixture = &b.store;
    let [tables, views, indexes, triggers] = fixture.catalog().await;
    assert_eq!(tables, TABLES, "{}", fixture.name());
    assert_eq!(views, VIEWS, "{}", fixture.name());
    assert!(
        indexes.len() >= 16,
        "{}: only {} indexes: {indexes:?}",
        fixture.name(),
        indexes.len()
    );
    for table in TRIGGER_TABLES {
        assert!(
            triggers
                .iter()
                .any(|t| t.ends_with(&format!(" ON {table}")) && t.contains("updated_at")),
            "{}: no updated_at trigger on {table}: {triggers:?}",
            fixture.name()
        );
    }

    let again = fixture.database.migrate(&MIGRATIONS).await.unwrap();
    assert!(again.applied.is_empty(), "{}", fixture.name());
    assert_eq!(
        fixture.catalog().await,
        [tables, views, indexes, triggers],
        "{}",
        fixture.name()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_foreign_key_column_is_indexed() {
    let backend = common::postgres(Fixture::on).await;
    let fixture = &backend.store;
    // Foreign-key columns that are not the leading column of any index.
    let unindexed = fixture
        .column(
            "SELECT c.conrelid::regclass || '.' || a.attname
               FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
              WHERE c.contype = 'f'
                AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])
              ORDER BY 1",
        )
        .await;
    assert!(
        unindexed.is_empty(),
        "unindexed foreign keys: {unindexed:?}"
    );
}

async fn updating_a_user_succeeds_and_moves_updated_at(b: Backend) {
    let fixture = &b.store;
    fixture
        .exec("INSERT INTO users (email) VALUES ('analyst@example.com')")
        .await
        .unwrap();
    let before = fixture
        .updated_at("users", "email = 'analyst@example.com'")
        .await;
    fixture
        .exec("UPDATE users SET tier = 'pro' WHERE email = 'analyst@example.com'")
        .await
        .unwrap_or_else(|e| panic!("{}: updating a user failed: {e}", fixture.name()));
    let after = fixture
        .updated_at("users", "email = 'analyst@example.com'")
        .await;
    assert!(
        after > before,
        "{}: updated_at did not move ({before} -> {after})",
        fixture.name()
    );
    assert_eq!(fixture.value("SELECT tier FROM users").await, "pro");
}

async fn tiers_and_statuses_are_constrained(b: Backend) {
    let fixture = &b.store;
    let bad_tier = fixture
        .exec("INSERT INTO users (email, tier) VALUES ('x@example.com', 'platinum')")
        .await;
    assert!(
        matches!(bad_tier, Err(DbError::Conflict { .. })),
        "{}: {bad_tier:?}",
        fixture.name()
    );
    let bad_status = fixture
            .exec(
                "INSERT INTO exploits (protocol, protocol_key, chain, dedup_key, occurred_at, status) \
                 VALUES ('Euler', 'euler', 'ethereum', 'k1', '2023-03-13T08:50:00.000Z', 'rumoured')",
            )
            .await;
    assert!(
        matches!(bad_status, Err(DbError::Conflict { .. })),
        "{}: {bad_status:?}",
        fixture.name()
    );
}

async fn financial_and_audit_records_block_deleting_their_user(b: Backend) {
    let fixture = &b.store;
    fixture
        .exec("INSERT INTO users (email) VALUES ('payer@example.com')")
        .await
        .unwrap();
    let id = fixture
        .value("SELECT id FROM users WHERE email = 'payer@example.com'")
        .await;
    fixture
            .exec(&format!(
                "INSERT INTO payments (user_id, amount, currency, status, provider) VALUES ({id}, '49.00', 'USD', 'succeeded', 'manual')"
            ))
            .await
            .unwrap();
    fixture
            .exec(&format!(
                "INSERT INTO subscription_changes (user_id, old_tier, new_tier, reason) VALUES ({id}, 'free', 'pro', 'upgrade')"
            ))
            .await
            .unwrap();
    let deleted = fixture
        .exec(&format!("DELETE FROM users WHERE id = {id}"))
        .await;
    assert!(
        matches!(deleted, Err(DbError::Conflict { .. })),
        "{}: {deleted:?}",
        fixture.name()
    );
    assert_eq!(fixture.value("SELECT count(*) FROM payments").await, "1");
    assert_eq!(
        fixture
            .value("SELECT count(*) FROM subscription_changes")
            .await,
        "1"
    );
}

async fn a_transaction_hash_is_unique_per_chain(b: Backend) {
    let fixture = &b.store;
    fixture
        .exec(&insert_exploit("a", "ethereum", "'0xabc'"))
        .await
        .unwrap();
    fixture
        .exec(&insert_exploit("b", "arbitrum", "'0xabc'"))
        .await
        .unwrap();
    let duplicate = fixture
        .exec(&insert_exploit("c", "ethereum", "'0xabc'"))
        .await;
    assert!(
        matches!(duplicate, Err(DbError::Conflict { .. })),
        "{}: {duplicate:?}",
        fixture.name()
    );
}

async fn incidents_without_a_hash_may_share_a_chain_and_unknown_amounts_stay_null(b: Backend) {
    let fixture = &b.store;
    for key in ["a", "d", "e", "f"] {
        fixture
            .exec(&insert_exploit(key, "ethereum", "NULL"))
            .await
            .unwrap();
    }
    let null_amounts = fixture
        .value("SELECT count(*) FROM exploits WHERE amount_usd IS NULL")
        .await;
    assert_eq!(null_amounts, "4", "{}", fixture.name());
}

/// An incident row written straight to the table, with no amount.
fn insert_exploit(key: &str, chain: &str, hash: &str) -> String {
    format!(
        "INSERT INTO exploits (protocol, protocol_key, chain, tx_hash, dedup_key, occurred_at) \
         VALUES ('Demo', 'demo', '{chain}', {hash}, '{key}', '2024-01-01T00:00:00.000Z')"
    )
}

async fn alerts_reference_their_user_and_are_sent_once_per_exploit_user_and_channel(b: Backend) {
    let fixture = &b.store;
    fixture
        .exec("INSERT INTO users (email) VALUES ('watcher@example.com')")
        .await
        .unwrap();
    fixture
        .exec(
            "INSERT INTO exploits (protocol, protocol_key, chain, dedup_key, occurred_at) \
                 VALUES ('Demo', 'demo', 'ethereum', 'k', '2024-01-01T00:00:00.000Z')",
        )
        .await
        .unwrap();
    let user = fixture.value("SELECT id FROM users").await;
    let exploit = fixture.value("SELECT id FROM exploits").await;
    let alert = format!("INSERT INTO alerts_sent (exploit_id, user_id, channel) VALUES ({exploit}, {user}, 'email')");
    fixture.exec(&alert).await.unwrap();
    let twice = fixture.exec(&alert).await;
    assert!(
        matches!(twice, Err(DbError::Conflict { .. })),
        "{}: {twice:?}",
        fixture.name()
    );
    let orphan = fixture
            .exec(&format!("INSERT INTO alerts_sent (exploit_id, user_id, channel) VALUES ({exploit}, 999999, 'webhook')"))
            .await;
    assert!(
        matches!(orphan, Err(DbError::Conflict { .. })),
        "{}: foreign key not enforced: {orphan:?}",
        fixture.name()
    );
}

async fn the_stats_view_of_an_empty_database_gives_zeros_not_nulls(b: Backend) {
    let fixture = &b.store;
    let stats = fixture.rows("SELECT * FROM v_stats_24h").await.unwrap();
    assert_eq!(stats.len(), 1, "{}", fixture.name());
    for value in &stats[0] {
        let value = value
            .as_deref()
            .unwrap_or_else(|| panic!("{}: NULL in v_stats_24h", fixture.name()));
        assert_eq!(value.parse::<f64>().unwrap(), 0.0, "{}", fixture.name());
    }
}

async fn source_health_stays_within_0_to_100(b: Backend) {
    let fixture = &b.store;
    fixture
            .exec(
                "INSERT INTO sources (name, success_count, error_count) VALUES ('good', 10, 0), ('mixed', 1, 2), ('bad', 0, 5)",
            )
            .await
            .unwrap();
    let rates = fixture
        .column("SELECT success_rate_pct FROM v_source_health")
        .await;
    assert_eq!(rates.len(), 3, "{}: {rates:?}", fixture.name());
    for rate in rates {
        let rate: f64 = rate.parse().unwrap();
        assert!(
            (0.0..=100.0).contains(&rate),
            "{}: rate {rate}",
            fixture.name()
        );
    }
}

async fn a_fetch_row_has_an_error_exactly_when_it_failed(b: Backend) {
    let fixture = &b.store;
    fixture
        .exec("INSERT INTO sources (name) VALUES ('feed')")
        .await
        .unwrap();
    let row = |succeeded: &str, error: &str| {
        format!(
                "INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, error) \
                 VALUES ('feed', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z', {succeeded}, {error})"
            )
    };
    let (yes, no) = match fixture.database.primary() {
        Pool::Postgres(_) => ("true", "false"),
        Pool::Sqlite(_) => ("1", "0"),
    };
    for (succeeded, error, accepted) in [
        (yes, "NULL", true),
        (no, "'HTTP 502'", true),
        (no, "NULL", false),
        (no, "''", false),
        (yes, "'HTTP 502'", false),
    ] {
        let outcome = fixture.exec(&row(succeeded, error)).await;
        assert_eq!(
            outcome.is_ok(),
            accepted,
            "{}: succeeded={succeeded} error={error}: {outcome:?}",
            fixture.name()
        );
        if let Err(refusal) = outcome {
            assert!(
                refusal.to_string().contains("source_fetches_error_check"),
                "{}: {refusal}",
                fixture.name()
            );
        }
    }
}

/// Keys as a binary before 0006 wrote them (the date as the source wrote it) are rewritten
/// to name the UTC day, so the next import of a record in another date form finds its
/// claim; two stored claims that would share a key keep the oldest's as the new one and
/// leave the other as it was.
async fn claim_keys_stored_before_0006_name_their_day_after_it(b: Backend) {
    use kamiyo_store::{IncidentStore, IngestAction};
    let fixture = &b.store;
    let store = IncidentStore::new(fixture.database.clone());
    let defillama = |protocol: &str, id: Option<&str>, date: &str| {
        let builder = kamiyo_testkit::claim(protocol)
            .source("defillama")
            .date(date)
            .chain("Ethereum");
        match id {
            Some(id) => builder.external_id(id).build(),
            None => builder.build(),
        }
    };
    for draft in [
        defillama("Euler Finance", Some("9001"), "3/13/23"),
        defillama("Otherfi", None, "1/2/24"),
        defillama("Samplswap", Some("77"), "3/22/24"),
        defillama("Samplswap", Some("77"), "3/23/24"),
    ] {
        store.ingest(&draft).await.unwrap();
    }
    // Back to the keys and, for the last claim, the record a second shape stored for the
    // same hack as the third before 0006.
    let day = match fixture.name() {
        "postgres" => "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        _ => "substr(occurred_at, 1, 10)",
    };
    fixture
        .exec(&format!(
            "UPDATE exploit_sources SET claim_key = replace(claim_key, '@' || {day}, '@' || reported_date)"
        ))
        .await
        .unwrap();
    fixture
        .exec(
            "UPDATE exploit_sources SET occurred_at = '2024-03-22T00:00:00.000Z', \
             reported_date = '1711065600', claim_key = 'id:samplswap:77@1711065600' \
             WHERE reported_date = '3/23/24'",
        )
        .await
        .unwrap();
    let keys = || fixture.column("SELECT claim_key FROM exploit_sources ORDER BY id");
    assert_eq!(
        keys().await,
        [
            "id:euler:9001@3/13/23",
            "k:otherfi@1/2/24@ethereum",
            "id:samplswap:77@3/22/24",
            "id:samplswap:77@1711065600"
        ],
        "{}: the keys as they were",
        fixture.name()
    );
    fixture
        .exec("DELETE FROM kamiyo_schema_migrations WHERE version = 6")
        .await
        .unwrap();
    fixture.database.migrate(&MIGRATIONS).await.unwrap();
    assert_eq!(
        keys().await,
        [
            "id:euler:9001@2023-03-13",
            "k:otherfi@2024-01-02@ethereum",
            "id:samplswap:77@2024-03-22",
            "id:samplswap:77@1711065600"
        ],
        "{}",
        fixture.name()
    );
    // The API's form of the first record finds its claim.
    let again = store
        .ingest(&defillama("Euler Finance", Some("9001"), "2023-03-13"))
        .await
        .unwrap();
    assert!(
        matches!(
            again.action,
            IngestAction::Updated | IngestAction::Unchanged
        ),
        "{}: {again:?}",
        fixture.name()
    );
    assert_eq!(
        fixture.value("SELECT count(*) FROM exploit_sources").await,
        "4"
    );
}
