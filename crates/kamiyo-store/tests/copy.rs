#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

//! `copy::sqlite_to_postgres`: a SQLite deployment moved onto PostgreSQL keeps every id
//! and reference, or the target stays exactly as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use kamiyo_db::{Database, DbConfig, Migrations};
use kamiyo_domain::Tier;
use kamiyo_store::accounts::{AccountStore, Role};
use kamiyo_store::copy::{self, CopyError, CopyOptions, CopyReport, NoProgress, Side};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use kamiyo_testkit::{claim, ClaimBuilder, TestDatabase};

// --- fixture ---------------------------------------------------------------------------

/// Ids the fixture handed out, for assertions about references.
struct Fixture {
    path: PathBuf,
    /// Surviving incidents, by protocol name.
    exploits: BTreeMap<String, i64>,
    /// The highest incident id ever handed out (deleted since).
    deleted_top_exploit: i64,
    alice: i64,
}

fn sqlite(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
    conn
}

/// A claim of `source` with every text column filled (quotes and non-ASCII included),
/// so that a copy that mangled text would show; validated against a fixed time.
fn claim_of(source: &str, protocol: &str) -> ClaimBuilder {
    claim(protocol)
        .source(source)
        .source_url(format!(
            "https://{source}.example/{}",
            protocol.replace(' ', "-")
        ))
        .technique("Price oracle manipulation")
        .description(format!(
            "{protocol}: “drained” — ünïcødé, 'quotes' and \"more\""
        ))
        .now(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap())
}

/// A Kamiyo SQLite database filled through the store's repositories where they exist and
/// plain SQL elsewhere, with ids that start high and have gaps, so that a copy that
/// renumbered anything would break a reference. `size` varies the content.
async fn fixture(dir: &Path, name: &str, size: usize) -> Fixture {
    assert!(
        size >= 5,
        "the fixture needs incidents 0..=3 to survive and a newest to delete"
    );
    let path = dir.join(name);
    let db = Database::open(DbConfig::for_url(format!("sqlite://{}", path.display())))
        .await
        .unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    let conn = sqlite(&path);
    for (table, start) in [
        ("sources", 100),
        ("exploits", 5_000),
        ("exploit_sources", 7_000),
        ("users", 300),
        ("api_keys", 400),
        ("alert_preferences", 600),
        ("alerts_sent", 700),
        ("payments", 800),
        ("subscription_changes", 900),
        ("community_submissions", 1_000),
    ] {
        conn.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [table])
            .unwrap();
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
            rusqlite::params![table, start],
        )
        .unwrap();
    }

    conn.execute_batch(
        "INSERT INTO sources (name, url, kind, is_active, success_count, error_count, last_fetch_at, last_success_at, last_error) VALUES
            ('defillama', 'https://defillama.com', 'api', 1, 10, 2, '2024-01-02T03:04:05.678Z', '2024-01-02T03:04:05.678Z', NULL),
            ('gone', NULL, NULL, 1, 0, 0, NULL, NULL, NULL),
            ('rekt', 'https://rekt.news', 'scrape', 0, 0, 3, '2024-02-03T04:05:06.789Z', NULL, 'timeout after \"30s\"');
         DELETE FROM sources WHERE name = 'gone';
         INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, records, error) VALUES
            ('defillama', '2024-01-02T03:04:00.000Z', '2024-01-02T03:04:05.678Z', 1, 120, NULL),
            ('rekt', '2024-02-03T04:05:00.000Z', '2024-02-03T04:05:06.789Z', 0, 0, 'timeout after \"30s\"');
         INSERT INTO source_fetches (source_name, started_at, finished_at, succeeded, records, http_status, bytes, duration_ms,
                                     etag, last_modified, body_sha256, inserted, merged, updated, unchanged, rejected, not_modified, slot_start) VALUES
            ('defillama', '2024-01-03T03:00:01.000Z', '2024-01-03T03:00:02.500Z', 1, 0, 304, 0, 1500, 'W/\"abc\"',
             'Wed, 03 Jan 2024 02:00:00 GMT', '00000000000000000000000000000000000000000000000000000000000000ff', 0, 0, 0, 0, 0, 1,
             '2024-01-03T03:00:00.000Z');
         INSERT INTO source_fetch_slots (source_name, slot_start, holder, claimed_at, lease_until, attempt, finished_at, outcome) VALUES
            ('defillama', '2024-01-03T03:00:00.000Z', 'instance-a', '2024-01-03T03:00:00.500Z', '2024-01-03T03:05:00.500Z', 2,
             '2024-01-03T03:00:02.500Z', 'unchanged'),
            ('rekt', '2024-02-03T04:00:00.000Z', 'instance-b', '2024-02-03T04:05:00.000Z', '2024-02-03T04:10:00.000Z', 1, NULL, NULL);",
    )
    .unwrap();

    let incidents = IncidentStore::new(db.clone());
    let mut exploits = BTreeMap::new();
    let mut ids = Vec::new();
    for i in 0..size {
        let protocol = format!("Protocol {i}");
        let chains: &[&str] = if i % 4 == 2 {
            &["Ethereum", "Arbitrum"]
        } else {
            &["Ethereum"]
        };
        let loss = match i % 3 {
            0 => None,
            1 => Some(format!("{}", (i + 1) * 1_000_000)),
            _ => Some("0.50".to_owned()),
        };
        let hash = (i % 5 != 0).then(|| format!("0x{:064x}", i + 1));
        let date = format!("2023-{:02}-{:02}", i % 12 + 1, i % 28 + 1);
        let mut draft = claim_of("defillama", &protocol)
            .date(date)
            .loss(loss.as_deref());
        for chain in chains {
            draft = draft.chain(chain);
        }
        if let Some(hash) = hash {
            draft = draft.tx(chains[0], hash);
        }
        let outcome = incidents.ingest(&draft.build()).await.unwrap();
        exploits.insert(protocol, outcome.exploit_id);
        ids.push(outcome.exploit_id);
    }
    // A second source for an incident with a hash: merged, two claims.
    incidents
        .ingest(
            &claim_of("rekt", "Protocol 1")
                .chain("Ethereum")
                .date("2023-02-02")
                .loss_usd("1999999.99")
                .tx("Ethereum", format!("0x{:064x}", 2))
                .build(),
        )
        .await
        .unwrap();
    // Gaps: an incident in the middle and the newest one are deleted (with their claims,
    // chains and hashes), so SQLite's high-water mark is above max(id).
    let deleted_top_exploit = *ids.last().unwrap();
    for victim in [ids[3], deleted_top_exploit] {
        conn.execute("DELETE FROM exploits WHERE id = ?1", [victim])
            .unwrap();
        exploits.retain(|_, id| *id != victim);
    }
    conn.execute(
        "UPDATE exploits SET source_id = (SELECT id FROM sources WHERE name = 'defillama'), \
         updated_at = '2024-05-06T07:08:09.010Z' WHERE id = ?1",
        [ids[0]],
    )
    .unwrap();

    let accounts = AccountStore::new(db.clone());
    let alice = accounts
        .create_user("alice@example.com", Tier::Pro, Role::User)
        .await
        .unwrap();
    conn.execute_batch(
        "INSERT INTO users (email) VALUES ('gone@example.com');
         DELETE FROM users WHERE email = 'gone@example.com';",
    )
    .unwrap();
    let bob = accounts
        .create_user("Bob@Example.org", Tier::Free, Role::Admin)
        .await
        .unwrap();
    let carol = accounts
        .create_user("carol@example.net", Tier::Team, Role::User)
        .await
        .unwrap();
    accounts
        .set_tier("alice@example.com", Tier::Enterprise, "upgraded by support")
        .await
        .unwrap();
    let (alice_key, _) = accounts
        .create_key("alice@example.com", "laptop")
        .await
        .unwrap();
    accounts
        .create_key(&bob.id.to_string(), "ci")
        .await
        .unwrap();
    accounts.create_key("carol@example.net", "").await.unwrap();
    accounts
        .revoke_key(&alice_key.id.to_string())
        .await
        .unwrap();
    accounts
        .record_payment(
            "alice@example.com",
            "49.00",
            "USD",
            "succeeded",
            "stripe",
            Some("ch_1"),
        )
        .await
        .unwrap();
    accounts
        .record_payment(
            &bob.id.to_string(),
            "0.50",
            "EUR",
            "refunded",
            "manual",
            None,
        )
        .await
        .unwrap();
    accounts.disable_user("carol@example.net").await.unwrap();

    let first = ids[0];
    let third = ids[2];
    conn.execute_batch(&format!(
        "INSERT INTO alert_preferences (user_id, channel, target, min_amount_usd, chains, enabled) VALUES
            ({a}, 'email', 'alice@example.com', '1000000.00', '[\"ethereum\",\"bsc\"]', 1),
            ({a}, 'webhook', 'https://hooks.example/a', NULL, NULL, 0),
            ({b}, 'discord', '123456', '0.50', '[\"arbitrum\"]', 1);
         INSERT INTO alerts_sent (exploit_id, user_id, channel, status, error, sent_at) VALUES
            ({first}, {a}, 'email', 'sent', NULL, '2024-03-01T00:00:00.001Z'),
            ({third}, {a}, 'webhook', 'failed', 'HTTP 500: \"boom\"', '2024-03-01T00:00:01.000Z'),
            ({third}, {b}, 'slack', 'sent', NULL, '2024-03-01T00:00:02.000Z'),
            ({first}, {b}, 'discord', 'sent', NULL, '2024-03-02T10:11:12.131Z');
         DELETE FROM alerts_sent WHERE channel = 'slack';
         INSERT INTO community_submissions (submitted_by, exploit_id, protocol, amount_usd, description, claim, evidence_urls, attacker_addresses, fingerprint, matched, candidate_ids, status, reviewed_by, reviewed_at, review_note) VALUES
            ({a}, {first}, 'Protocol 0', '12.34', 'Ünïcødé “quotes”', '{{\"protocol\":\"Protocol 0\",\"chains\":[\"ethereum\"],\"date\":\"2024-03-01\"}}', '[\"https://evidence.example/1\"]', '[\"0xattacker\"]', 'f1', 'incident', '[{first}]', 'verified', {b}, '2024-04-01T12:00:00.000Z', 'ok'),
            ({c}, NULL, 'Other', NULL, NULL, '{{\"protocol\":\"Other\",\"chains\":[\"bsc\"],\"tx_hashes\":[{{\"chain\":\"bsc\",\"hash\":\"0xabc\"}}]}}', '[\"https://evidence.example/2\"]', '[]', 'f2', 'none', '[]', 'pending', NULL, NULL, NULL);
         INSERT INTO submission_reviews (submission_id, reviewer_id, decision, reason, created_at) VALUES
            ((SELECT min(id) FROM community_submissions), {b}, 'verify', 'matches the explorer', '2024-04-01T12:00:00.000Z');
         INSERT INTO reputation_events (user_id, submission_id, review_id, points, reason, created_at) VALUES
            ({a}, (SELECT min(id) FROM community_submissions), (SELECT max(id) FROM submission_reviews), 5, 'evidence', '2024-04-01T12:00:00.000Z');
         INSERT INTO bounties (submission_id, exploit_id, user_id, amount_usd, status, paid_at, paid_by, payment_reference) VALUES
            ((SELECT min(id) FROM community_submissions), {first}, {a}, '20.00', 'paid', '2024-04-02T00:00:00.000Z', {b}, 'wire-1');
         INSERT INTO reviewers (user_id, granted_at) VALUES ({b}, '2024-03-01T00:00:00.000Z');
         INSERT INTO user_reputation (user_id, score, submissions_total, submissions_approved, submissions_rejected) VALUES
            ({a}, 5, 2, 1, 1),
            ({c}, -3, 1, 0, 1);
         INSERT INTO incident_redirects (old_id, exploit_id, reason, created_at) VALUES
            (1000000, {first}, 'remerge', '2024-05-01T00:00:00.000Z');
         INSERT INTO maintenance_tasks (name, requested_at) VALUES ('remerge', '2024-05-01T00:00:00.000Z');
         INSERT INTO curation_decisions (kind, claims, others, incident_ids, reason, decided_by, decided_at) VALUES
            ('split', '[[\"fixture\",\"k1\"]]', '[[\"fixture\",\"k2\"]]', '[{first}]', 'two hacks', 'alice@example.com', '2024-05-02T00:00:00.000Z');
         UPDATE exploit_sources SET curated_by = (SELECT max(id) FROM curation_decisions)
            WHERE id = (SELECT min(id) FROM exploit_sources);
         INSERT INTO protocol_aliases (alias_key, name, alias, reason, added_by, added_at) VALUES
            ('roninnetwork', 'Axie Infinity', 'Ronin Network', 'Ronin is Axie''s bridge', 'cli', '2024-05-03T00:00:00.000Z');
         INSERT INTO alert_subscriptions (user_id, name, channel, target, secret, previous_secret, previous_secret_expires_at,
            filter, events, enabled, disabled_reason, failing_since, created_at, updated_at) VALUES
            ({a}, 'big ones', 'webhook', 'https://hooks.example/k', 'whsec_c2VjcmV0', 'whsec_b2xk', '2024-06-02T00:00:00.000Z',
             '{{\"min_loss_usd\":\"1000000\",\"chains\":[\"ethereum\"]}}', '[\"incident.created\"]', 1, NULL, NULL,
             '2024-06-01T00:00:00.000Z', '2024-06-01T00:00:00.000Z'),
            ({b}, 'chat', 'telegram', '-100123', 'bot:token', NULL, NULL, '{{}}', '[\"incident.updated\",\"incident.merged\"]', 0,
             'failing for 5 days', '2024-05-27T00:00:00.000Z', '2024-05-01T00:00:00.000Z', '2024-06-01T00:00:00.000Z');
         INSERT INTO alert_events (kind, exploit_id, occurred_at, changes, payload, created_at, dispatched_at) VALUES
            ('incident.created', {first}, '2024-01-01T00:00:00.000Z', NULL, '{{\"type\":\"incident.created\"}}',
             '2024-06-01T00:00:01.000Z', '2024-06-01T00:00:02.000Z'),
            ('incident.updated', {first}, '2024-01-01T00:00:00.000Z', '[{{\"field\":\"loss_usd\",\"old\":null,\"new\":\"1.00\"}}]', NULL,
             '2024-06-01T00:00:03.000Z', NULL);
         INSERT INTO alert_deliveries (subscription_id, event_id, message_id, status, attempts, next_attempt_at, leased_until,
            first_attempt_at, last_status, last_error, created_at, updated_at) VALUES
            ((SELECT min(id) FROM alert_subscriptions), (SELECT min(id) FROM alert_events), 'msg_1_1', 'pending', 2,
             '2024-06-01T00:05:00.000Z', NULL, '2024-06-01T00:00:02.500Z', 500, 'HTTP 500', '2024-06-01T00:00:02.000Z',
             '2024-06-01T00:00:04.000Z');
         INSERT INTO alert_attempts (delivery_id, attempted_at, duration_ms, status_code, error, response_body, next_attempt_at) VALUES
            ((SELECT min(id) FROM alert_deliveries), '2024-06-01T00:00:02.500Z', 31, 500, 'HTTP 500', 'boom', '2024-06-01T00:05:00.000Z');",
        a = alice.id,
        b = bob.id,
        c = carol.id,
    ))
    .unwrap();
    drop(conn);
    db.close();
    Fixture {
        path,
        exploits,
        deleted_top_exploit,
        alice: alice.id,
    }
}

// --- helpers ---------------------------------------------------------------------------

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn copy(
    source: &Path,
    pg: &TestDatabase,
    options: &CopyOptions,
) -> Result<CopyReport, CopyError> {
    copy::sqlite_to_postgres(
        &url(source),
        &DbConfig::for_url(pg.url()),
        options,
        &NoProgress,
    )
    .await
}

fn force() -> CopyOptions {
    CopyOptions {
        force: true,
        ..CopyOptions::default()
    }
}

async fn rows_in(pg: &tokio_postgres::Client, table: &str) -> i64 {
    pg.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Tables of the target's schema, but the migrations bookkeeping and the rate-limit
/// buckets (which the copy leaves alone), with their columns.
async fn target_tables(pg: &tokio_postgres::Client) -> BTreeMap<String, Vec<(String, String)>> {
    let mut tables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in pg
        .query(
            "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
             FROM information_schema.columns c JOIN information_schema.tables t \
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
               AND c.table_name <> 'kamiyo_schema_migrations' \
               AND c.table_name <> 'rate_limit_buckets' \
             ORDER BY c.table_name, c.ordinal_position",
            &[],
        )
        .await
        .unwrap()
    {
        tables
            .entry(row.get(0))
            .or_default()
            .push((row.get(1), row.get(2)));
    }
    tables
}

type Rows = Vec<Vec<Option<String>>>;

fn normalise_json(rows: &mut Rows, json_columns: &[usize]) {
    for row in rows.iter_mut() {
        for &i in json_columns {
            if let Some(text) = &row[i] {
                let value: serde_json::Value = serde_json::from_str(text).unwrap();
                row[i] = Some(value.to_string());
            }
        }
    }
    rows.sort();
}

/// Every row of every table, compared column by column: SQLite's stored text against
/// PostgreSQL's values printed in SQLite's formats (independently of the copy's code).
async fn assert_same_rows(source: &Path, pg: &tokio_postgres::Client) -> BTreeMap<String, usize> {
    let conn = sqlite(source);
    let mut counts = BTreeMap::new();
    for (table, columns) in target_tables(pg).await {
        let pg_select: Vec<String> = columns
            .iter()
            .map(|(c, t)| match t.as_str() {
                "timestamp with time zone" => format!(
                    "to_char(\"{c}\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                ),
                "boolean" => format!("\"{c}\"::int::text"),
                _ => format!("\"{c}\"::text"),
            })
            .collect();
        let sqlite_select: Vec<String> = columns
            .iter()
            .map(|(c, _)| format!("CAST(\"{c}\" AS TEXT)"))
            .collect();
        let json: Vec<usize> = columns
            .iter()
            .enumerate()
            .filter(|(_, (_, t))| t == "jsonb" || t == "json")
            .map(|(i, _)| i)
            .collect();
        let mut target: Rows = pg
            .query(
                &format!("SELECT {} FROM \"{table}\"", pg_select.join(", ")),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (0..columns.len()).map(|i| row.get(i)).collect())
            .collect();
        let mut statement = conn
            .prepare(&format!(
                "SELECT {} FROM \"{table}\"",
                sqlite_select.join(", ")
            ))
            .unwrap();
        let mut expected: Rows = statement
            .query_map([], |row| (0..columns.len()).map(|i| row.get(i)).collect())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        normalise_json(&mut target, &json);
        normalise_json(&mut expected, &json);
        assert!(!expected.is_empty(), "the fixture leaves {table} empty");
        assert_eq!(target, expected, "rows of {table} differ");
        counts.insert(table, expected.len());
    }
    counts
}

/// Everything a failed copy must not change: each table's rows, each sequence, the
/// applied migrations, the set of tables.
async fn snapshot(pg: &tokio_postgres::Client) -> String {
    let mut text = String::new();
    let tables: Vec<String> = pg
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in tables {
        let rows: String = pg
            .query_one(
                &format!(
                    "SELECT coalesce(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY to_jsonb(t)::text), '') FROM \"{table}\" AS t"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        text.push_str(&format!("== {table}\n{rows}\n"));
    }
    for row in pg
        .query(
            "SELECT sequencename::text, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
    {
        text.push_str(&format!("seq {} {:?}\n", row.get::<_, String>(0), row.get::<_, Option<i64>>(1)));
    }
    text
}

// --- tests -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_keeps_every_row_id_and_reference_and_the_next_insert_gets_a_fresh_id() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(dir.path(), "k.db", 9).await;
    let pg = TestDatabase::create().await;
    // Tiny batches and samples: many messages per table, and a sample that is a subset.
    let options = CopyOptions {
        batch_rows: 2,
        read_ahead_batches: 1,
        sample_rows: 3,
        ..CopyOptions::default()
    };
    let report = copy(&source.path, &pg, &options).await.unwrap();

    assert!(report.verified, "{report}");
    assert!(!report.replaced_existing_data);
    assert_eq!(
        report.schema_version,
        MIGRATIONS.postgres.last().unwrap().version
    );
    assert!(!report.target.is_empty() && !report.source.is_empty());
    let client = pg.client().await;
    let counts = assert_same_rows(&source.path, &client).await;
    assert_eq!(report.tables.len(), counts.len(), "{report}");
    for table in &report.tables {
        assert_eq!(
            counts[&table.table] as u64, table.target_rows,
            "{}",
            table.table
        );
        assert_eq!(table.source_rows, table.copied_rows);
        assert!(table.mismatches.is_empty(), "{table:?}");
        assert!(
            table.sampled_rows > 0 && table.sampled_rows <= 3,
            "{table:?}"
        );
    }
    assert!(report.foreign_keys.len() >= 13, "{report}");
    assert!(report.foreign_keys.iter().all(|fk| fk.orphans == 0));
    let position = |name: &str| report.tables.iter().position(|t| t.table == name).unwrap();
    assert!(position("users") < position("payments"));
    assert!(position("exploits") < position("alerts_sent"));
    assert!(position("sources") < position("exploits"));

    // References name the same incidents as before, not merely the same numbers.
    let protocol_of_alert: Vec<String> = client
        .query(
            "SELECT e.protocol FROM alerts_sent a JOIN exploits e ON e.id = a.exploit_id ORDER BY a.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        protocol_of_alert,
        ["Protocol 0", "Protocol 2", "Protocol 0"]
    );
    assert_eq!(
        source.exploits["Protocol 0"],
        *source.exploits.values().min().unwrap()
    );

    // Sequences: past SQLite's high-water mark, which is above max(id) here.
    let exploits_next = report
        .sequences
        .iter()
        .find(|s| s.table == "exploits" && s.column == "id")
        .unwrap()
        .next_value;
    assert_eq!(exploits_next, source.deleted_top_exploit + 1, "{report}");
    let db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    let fresh = IncidentStore::new(db.clone())
        .ingest(
            &claim_of("defillama", "Brand New")
                .date("2025-01-01")
                .unknown_loss()
                .build(),
        )
        .await
        .unwrap();
    assert!(fresh.exploit_id > source.deleted_top_exploit, "{fresh:?}");
    let user = AccountStore::new(db.clone())
        .create_user("dave@example.com", Tier::Free, Role::User)
        .await
        .unwrap();
    let max_user: i64 = client
        .query_one("SELECT max(id) FROM users WHERE id <> $1", &[&user.id])
        .await
        .unwrap()
        .get(0);
    assert!(user.id > max_user && user.id > source.alice);
    // The trail of the copied users continues where SQLite's stopped.
    let history = AccountStore::new(db.clone())
        .subscription_history("alice@example.com")
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    db.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_holds_data_is_refused_without_force_and_replaced_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = fixture(dir.path(), "first.db", 6).await;
    let second = fixture(dir.path(), "second.db", 5).await;
    let pg = TestDatabase::create().await;
    copy(&first.path, &pg, &CopyOptions::default())
        .await
        .unwrap();
    let client = pg.client().await;
    let before = snapshot(&client).await;

    let refused = copy(&second.path, &pg, &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CopyError::TargetNotEmpty { .. }),
        "{refused}"
    );
    let text = refused.with_causes();
    assert!(
        text.contains("--force") && text.contains("exploits"),
        "{text}"
    );
    assert_eq!(snapshot(&client).await, before);

    let report = copy(&second.path, &pg, &force()).await.unwrap();
    assert!(report.verified && report.replaced_existing_data, "{report}");
    assert_same_rows(&second.path, &client).await;
    let incidents = rows_in(&client, "exploits").await;
    assert_eq!(incidents as usize, second.exploits.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_the_last_table_rolls_back_everything_including_the_emptying() {
    let dir = tempfile::tempdir().unwrap();
    let first = fixture(dir.path(), "first.db", 5).await;
    let second = fixture(dir.path(), "second.db", 7).await;
    let pg = TestDatabase::create().await;
    let report = copy(&first.path, &pg, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report.tables.last().unwrap().table,
        "user_reputation",
        "{report}"
    );
    let client = pg.client().await;
    // A target-side trigger that refuses one row of the last table copied.
    let victim = second.alice;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION refuse_one_row() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.user_id = {victim} THEN
                     RAISE EXCEPTION 'injected failure on user_reputation %', NEW.user_id;
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_one_row BEFORE INSERT ON user_reputation
                 FOR EACH ROW EXECUTE FUNCTION refuse_one_row();"
        ))
        .await
        .unwrap();
    let before = snapshot(&client).await;

    let error = copy(&second.path, &pg, &force()).await.unwrap_err();
    let text = error.with_causes();
    assert!(
        matches!(error, CopyError::Copy { ref table, .. } if table == "user_reputation"),
        "{text}"
    );
    assert!(
        text.contains("injected failure") && text.contains("rolled back"),
        "{text}"
    );
    assert_eq!(snapshot(&client).await, before);
    assert_same_rows(&first.path, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_failure_rolls_back_and_reports_the_differing_fields() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(dir.path(), "k.db", 5).await;
    let pg = TestDatabase::create().await;
    let db = Database::open(DbConfig::for_url(pg.url())).await.unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    db.close();
    let client = pg.client().await;
    // The target silently rewrites a field: counts and references stay right, only the
    // field-by-field comparison can notice.
    client
        .batch_execute(
            "CREATE FUNCTION rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN NEW.protocol := NEW.protocol || ' (altered)'; RETURN NEW; END $$;
             CREATE TRIGGER rewrite BEFORE INSERT ON exploits FOR EACH ROW EXECUTE FUNCTION rewrite();",
        )
        .await
        .unwrap();
    let before = snapshot(&client).await;

    let error = copy(&source.path, &pg, &CopyOptions::default())
        .await
        .unwrap_err();
    let CopyError::Verification { report } = &error else {
        panic!(
            "expected a verification failure, got {}",
            error.with_causes()
        );
    };
    assert!(!report.verified);
    let exploits = report
        .tables
        .iter()
        .find(|t| t.table == "exploits")
        .unwrap();
    assert_eq!(exploits.mismatches.len() as u64, exploits.sampled_rows);
    assert!(exploits
        .mismatches
        .iter()
        .all(|m| m.column == "protocol" && m.target.contains("(altered)")));
    assert!(error.to_string().contains("exploits: "), "{error}");
    assert!(
        report.to_string().contains("verification FAILED"),
        "{report}"
    );
    assert_eq!(snapshot(&client).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_at_another_schema_version_is_refused_before_the_target_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let pg = TestDatabase::create().await;
    let client = pg.client().await;
    let before = snapshot(&client).await;

    let older = dir.path().join("older.db");
    let db = Database::open(DbConfig::for_url(url(&older)))
        .await
        .unwrap();
    db.migrate(&Migrations {
        postgres: &MIGRATIONS.postgres[..1],
        sqlite: &MIGRATIONS.sqlite[..1],
    })
    .await
    .unwrap();
    db.close();
    let error = copy(&older, &pg, &force()).await.unwrap_err();
    assert!(
        matches!(error, CopyError::SchemaVersion { found: Some(1), .. }),
        "{}",
        error.with_causes()
    );
    assert!(error.to_string().contains("kamiyo migrate"), "{error}");

    let newer = fixture(dir.path(), "newer.db", 5).await;
    sqlite(&newer.path)
        .execute(
            "INSERT INTO kamiyo_schema_migrations (version, name, checksum, execution_ms) VALUES (99, 'future', 'x', 0)",
            [],
        )
        .unwrap();
    let error = copy(&newer.path, &pg, &force()).await.unwrap_err();
    assert!(
        matches!(
            error,
            CopyError::SchemaVersion {
                found: Some(99),
                ..
            }
        ),
        "{}",
        error.with_causes()
    );
    assert!(error.to_string().contains("newer Kamiyo"), "{error}");

    assert_eq!(snapshot(&client).await, before);
    assert_eq!(before, "", "the target had no table and still has none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_kamiyo_database_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let pg = TestDatabase::create().await;

    let missing = copy(&dir.path().join("nope.db"), &pg, &force())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, CopyError::SourceMissing { .. }),
        "{missing}"
    );
    // Read-only: a missing file is not created.
    assert!(!dir.path().join("nope.db").exists());

    let text_file = dir.path().join("notes.txt");
    std::fs::write(
        &text_file,
        "this is not a database, just some text ".repeat(100),
    )
    .unwrap();
    let garbage = copy(&text_file, &pg, &force()).await.unwrap_err();
    assert!(
        matches!(garbage, CopyError::NotKamiyo { .. }),
        "{}",
        garbage.with_causes()
    );
    assert!(
        garbage.to_string().contains("not a SQLite database"),
        "{garbage}"
    );

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    let other_error = copy(&other, &pg, &force()).await.unwrap_err();
    assert!(
        matches!(other_error, CopyError::NotKamiyo { .. }),
        "{}",
        other_error.with_causes()
    );
    assert!(
        other_error.to_string().contains("kamiyo_schema_migrations"),
        "{other_error}"
    );

    let client = pg.client().await;
    assert_eq!(snapshot(&client).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_value_the_target_cannot_take_exactly_is_named_and_nothing_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(dir.path(), "k.db", 5).await;
    let victim = source.exploits["Protocol 2"];
    // Only a damaged file holds this: the CHECK is bypassed on purpose.
    let conn = sqlite(&source.path);
    conn.execute_batch("PRAGMA ignore_check_constraints = ON")
        .unwrap();
    conn.execute("UPDATE exploits SET flash_loan = 2 WHERE id = ?1", [victim])
        .unwrap();
    drop(conn);
    let pg = TestDatabase::create().await;
    let error = copy(&source.path, &pg, &CopyOptions::default())
        .await
        .unwrap_err();
    let text = error.with_causes();
    assert!(
        matches!(error, CopyError::BadValue { ref table, ref column, .. } if table == "exploits" && column == "flash_loan"),
        "{text}"
    );
    assert!(
        text.contains(&format!("id={victim}")) && text.contains("not a boolean"),
        "{text}"
    );
    let client = pg.client().await;
    let rows = rows_in(&client, "sources").await;
    assert_eq!(rows, 0, "sources, copied before exploits, was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_bookkeeping_value_of_another_type_is_named_before_the_target_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(dir.path(), "k.db", 5).await;
    // sqlite_sequence declares no column types, so SQLite keeps text where the
    // high-water mark belongs; only a damaged or hand-edited file holds this.
    sqlite(&source.path)
        .execute(
            "UPDATE sqlite_sequence SET seq = 'a lot' WHERE name = 'exploits'",
            [],
        )
        .unwrap();
    let pg = TestDatabase::create().await;
    let error = copy(&source.path, &pg, &CopyOptions::default())
        .await
        .unwrap_err();
    let text = error.with_causes();
    assert!(
        matches!(
            &error,
            CopyError::Unreadable(u)
                if u.side == Side::Source && u.table == "sqlite_sequence" && u.column == "seq"
        ),
        "{text}"
    );
    assert!(
        text.contains("source's sqlite_sequence.seq cannot be read"),
        "{text}"
    );
    let client = pg.client().await;
    assert_eq!(snapshot(&client).await, "", "the target was not migrated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_on_one_side_only_stops_the_copy_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(dir.path(), "k.db", 5).await;
    sqlite(&source.path)
        .execute_batch("ALTER TABLE exploits ADD COLUMN severity TEXT")
        .unwrap();
    let pg = TestDatabase::create().await;
    let error = copy(&source.path, &pg, &CopyOptions::default())
        .await
        .unwrap_err();
    let CopyError::SchemaMismatch { differences } = &error else {
        panic!("expected a schema mismatch, got {}", error.with_causes());
    };
    assert_eq!(
        differences,
        &["column exploits.severity exists in the source only"]
    );
    let client = pg.client().await;
    let rows = rows_in(&client, "exploits").await;
    assert_eq!(rows, 0, "the migrated target stays empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture(dir.path(), "k.db", 5).await;
    let mut target = DbConfig::for_url("postgres://kamiyo:s3cr3t-pw@127.0.0.1:1/kamiyo");
    target.connect_timeout = std::time::Duration::from_secs(1);
    let error = copy::sqlite_to_postgres(
        &url(&source.path),
        &target,
        &CopyOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    let text = error.with_causes();
    assert!(matches!(error, CopyError::Target { .. }), "{text}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(text.contains("kamiyo:***@127.0.0.1:1"), "{text}");

    let sqlite_target = DbConfig::for_url(url(&source.path));
    let error = copy::sqlite_to_postgres(
        &url(&source.path),
        &sqlite_target,
        &CopyOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, CopyError::TargetUrl { .. }), "{error}");
}
