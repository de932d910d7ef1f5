//! The community review queue as an operator works it with the `kamiyo` executable, on
//! PostgreSQL and on SQLite: reviewers made with `user create --role` and `user set-role`,
//! a submission listed, shown and reviewed, and the incident, reputation and bounty the
//! decision left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use chrono::Utc;
use kamiyo_db::{Database, DbConfig};
use kamiyo_domain::{SubmissionInput, TxHashInput};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::community::{CommunityStore, NewSubmission, Submitted};
use kamiyo_store::{IncidentStore, MIGRATIONS};
use serde_json::Value;

const KAMIYO: &str = env!("CARGO_BIN_EXE_kamiyo");
const HASH: &str = "0xc310a0affe2169d1f6feec1c63dbc7f7c62a887fa48795d327d4d2da2d6b111d";

/// The backends `per_backend!` runs each story on: a fresh migrated database and the URL
/// the executable is given for it.
mod common {
    use super::*;
    use kamiyo_testkit::TestDatabase;

    pub struct Backend<S> {
        pub name: &'static str,
        pub url: String,
        pub db: Database,
        pub store: S,
        /// The executable's working directory (and the SQLite file's).
        pub dir: tempfile::TempDir,
        _pg: Option<TestDatabase>,
    }

    async fn open<S>(
        name: &'static str,
        url: String,
        dir: tempfile::TempDir,
        pg: Option<TestDatabase>,
        make: impl Fn(Database) -> S,
    ) -> Backend<S> {
        let db = Database::open(DbConfig::for_url(url.clone()))
            .await
            .unwrap();
        db.migrate(&MIGRATIONS).await.unwrap();
        Backend {
            name,
            url,
            store: make(db.clone()),
            db,
            dir,
            _pg: pg,
        }
    }

    pub async fn postgres<S>(make: impl Fn(Database) -> S) -> Backend<S> {
        let pg = TestDatabase::create().await;
        let url = pg.url().to_owned();
        open(
            "postgres",
            url,
            tempfile::tempdir().unwrap(),
            Some(pg),
            make,
        )
        .await
    }

    pub async fn sqlite<S>(make: impl Fn(Database) -> S) -> Backend<S> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        open("sqlite", url, dir, None, make).await
    }
}

type Backend = common::Backend<CommunityStore>;

fn community(db: Database) -> CommunityStore {
    CommunityStore::new(db.clone(), IncidentStore::new(db))
}

kamiyo_testkit::per_backend! {
    community => [
        an_operator_makes_reviewers_and_verifies_a_submission_into_an_incident_and_a_bounty,
        a_rejection_keeps_its_reason_costs_points_and_a_second_review_is_refused,
        unknown_users_roles_and_submissions_are_refused_naming_them,
    ],
}

/// `kamiyo --database-url <backend> args...`, seeing none of the developer's own
/// configuration: exit code, stdout, stderr.
async fn kamiyo(b: &Backend, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(KAMIYO);
    command.current_dir(b.dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMIYO_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    let out = command
        .env("KAMIYO_SOURCES_ENABLED", "false")
        .arg("--database-url")
        .arg(&b.url)
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The stdout of a command that must succeed.
async fn ok(b: &Backend, args: &[&str]) -> String {
    let (code, stdout, stderr) = kamiyo(b, args).await;
    assert_eq!(code, Some(0), "{}: {args:?}: {stderr}", b.name);
    stdout
}

async fn ok_json(b: &Backend, args: &[&str]) -> Value {
    let stdout = ok(b, args).await;
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{}: {args:?}: {e}: {stdout}", b.name))
}

fn accounts(b: &Backend) -> AccountStore {
    AccountStore::new(b.db.clone())
}

async fn user_id(b: &Backend, email: &str) -> i64 {
    accounts(b).find_user(email).await.unwrap().id
}

/// `user_id`'s report of the Euler Finance hack, submitted as the API submits one.
async fn submit_euler(b: &Backend, user_id: i64) -> i64 {
    let valid = SubmissionInput {
        protocol: Some("Euler Finance".into()),
        chains: vec!["ethereum".into()],
        date: Some("2023-03-13".into()),
        loss_usd: Some("197000000".into()),
        tx_hashes: vec![TxHashInput {
            chain: Some("ethereum".into()),
            hash: HASH.into(),
        }],
        description: Some("Donation to reserves, then a self-liquidation.".into()),
        evidence_urls: vec![format!("https://etherscan.io/tx/{HASH}")],
        attacker_addresses: vec!["0x5f259d0b76665c337c6104145894f4d1d2758b8c".into()],
        ..SubmissionInput::default()
    }
    .validate(Utc::now())
    .unwrap();
    let new = NewSubmission {
        user_id,
        protocol: valid.claim.protocol.clone().unwrap(),
        claim: serde_json::to_value(&valid.claim).unwrap(),
        draft: valid.draft,
        evidence_urls: valid.evidence_urls,
        attacker_addresses: valid.attacker_addresses,
        victim_addresses: valid.victim_addresses,
        fingerprint: valid.fingerprint,
    };
    match b.store.submit(&new, Utc::now()).await.unwrap() {
        Submitted::New(s) => s.id,
        Submitted::Duplicate(s) => panic!("{}: unexpected duplicate of {}", b.name, s.id),
    }
}

async fn an_operator_makes_reviewers_and_verifies_a_submission_into_an_incident_and_a_bounty(
    b: Backend,
) {
    let created = ok(&b, &["user", "create", "--email", "alice@example.com"]).await;
    assert!(created.contains("role user"), "{}: {created}", b.name);
    let created = ok(
        &b,
        &[
            "user",
            "create",
            "--email",
            "rita@example.com",
            "--role",
            "reviewer",
        ],
    )
    .await;
    assert!(created.contains("role reviewer"), "{}: {created}", b.name);
    let created = ok(
        &b,
        &["user", "create", "--email", "ops@example.com", "--admin"],
    )
    .await;
    assert!(created.contains("role admin"), "{}: {created}", b.name);
    ok(&b, &["user", "create", "--email", "bob@example.com"]).await;
    let set = ok(&b, &["user", "set-role", "bob@example.com", "reviewer"]).await;
    assert!(set.contains("role reviewer"), "{}: {set}", b.name);

    let (rita, bob, ops) = (
        user_id(&b, "rita@example.com").await,
        user_id(&b, "bob@example.com").await,
        user_id(&b, "ops@example.com").await,
    );
    let store = accounts(&b);
    assert!(store.is_reviewer(rita).await.unwrap(), "{}", b.name);
    assert!(store.is_reviewer(bob).await.unwrap(), "{}", b.name);
    assert!(
        !store.is_reviewer(ops).await.unwrap(),
        "an admin reviews by role, without a grant: {}",
        b.name
    );
    let listing = ok(&b, &["user", "list"]).await;
    let bob_row = listing
        .lines()
        .find(|l| l.contains("bob@example.com"))
        .unwrap();
    assert!(bob_row.contains("reviewer"), "{}: {listing}", b.name);

    ok(&b, &["user", "set-role", "bob@example.com", "user"]).await;
    assert!(
        !store.is_reviewer(bob).await.unwrap(),
        "back to user, the grant is gone: {}",
        b.name
    );

    let alice = user_id(&b, "alice@example.com").await;
    let id = submit_euler(&b, alice).await;

    let queue = ok_json(&b, &["submission", "list", "--json"]).await;
    assert_eq!(queue.as_array().unwrap().len(), 1, "{}: {queue}", b.name);
    assert_eq!(
        (
            &queue[0]["id"],
            &queue[0]["submitted_by"],
            &queue[0]["claim"]["protocol"],
            &queue[0]["matched"],
        ),
        (
            &Value::from(id),
            &Value::from(alice),
            &Value::from("Euler Finance"),
            &Value::from("none"),
        ),
        "{}: {queue}",
        b.name
    );
    let table = ok(&b, &["submission", "list"]).await;
    assert!(
        table.contains("Euler Finance") && table.contains("none"),
        "{}: {table}",
        b.name
    );
    let shown = ok_json(&b, &["submission", "show", &id.to_string()]).await;
    assert_eq!(shown["status"], "pending", "{}: {shown}", b.name);

    let reviewed = ok_json(
        &b,
        &[
            "submission",
            "review",
            &id.to_string(),
            "--decision",
            "verify",
            "--reason",
            "the transaction is the exploit",
        ],
    )
    .await;
    assert_eq!(reviewed["status"], "verified", "{}: {reviewed}", b.name);
    assert_eq!(
        reviewed["review_note"], "the transaction is the exploit",
        "{}",
        b.name
    );
    let exploit_id = reviewed["exploit_id"].as_i64().unwrap();
    let incident = IncidentStore::new(b.db.clone())
        .get_fresh(exploit_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        incident.sources.iter().any(|s| s.source == "community"
            && s.external_id.as_deref() == Some(&format!("submission-{id}"))),
        "{}: {incident:?}",
        b.name
    );
    let queue = ok_json(&b, &["submission", "list", "--json"]).await;
    assert_eq!(queue, Value::Array(Vec::new()), "{}", b.name);

    let bounties = ok_json(
        &b,
        &["bounty", "list", "--user", "alice@example.com", "--json"],
    )
    .await;
    let bounties = bounties.as_array().unwrap();
    assert_eq!(bounties.len(), 1, "{}: {bounties:?}", b.name);
    assert_eq!(
        (
            &bounties[0]["submission_id"],
            &bounties[0]["exploit_id"],
            &bounties[0]["status"],
        ),
        (
            &Value::from(id),
            &Value::from(exploit_id),
            &Value::from("owed")
        ),
        "{}: {bounties:?}",
        b.name
    );
    // The default bounty for the first report of a new incident: $50.
    let amount: f64 = bounties[0]["amount_usd"].as_str().unwrap().parse().unwrap();
    assert_eq!(amount, 50.0, "{}: {bounties:?}", b.name);
    let others = ok_json(
        &b,
        &["bounty", "list", "--user", "rita@example.com", "--json"],
    )
    .await;
    assert_eq!(others, Value::Array(Vec::new()), "{}", b.name);
    let table = ok(&b, &["bounty", "list"]).await;
    assert!(table.contains("owed"), "{}: {table}", b.name);
    let bounty_id = bounties[0]["id"].to_string();
    let paid = ok_json(&b, &["bounty", "pay", &bounty_id, "--reference", "wire-7"]).await;
    assert_eq!(paid["status"], "paid", "{}: {paid}", b.name);
    assert_eq!(paid["payment_reference"], "wire-7", "{}", b.name);
    let (code, _, again) =
        kamiyo(&b, &["bounty", "pay", &bounty_id, "--reference", "wire-8"]).await;
    assert_eq!(code, Some(1), "{}: paid twice", b.name);
    assert!(again.contains("no owed bounty"), "{}: {again}", b.name);

    // Found false after payment: reversed; the claim and points go, the payment stays on
    // record.
    let reversed = ok_json(
        &b,
        &[
            "submission",
            "review",
            &id.to_string(),
            "--decision",
            "reverse",
            "--reason",
            "the transaction was a test",
        ],
    )
    .await;
    assert_eq!(reversed["status"], "reversed", "{}: {reversed}", b.name);
    assert!(
        IncidentStore::new(b.db.clone())
            .get_fresh(exploit_id)
            .await
            .unwrap()
            .is_none(),
        "{}: its only claim withdrawn",
        b.name
    );
    let kept = ok_json(&b, &["bounty", "list", "--json"]).await;
    assert_eq!(kept[0]["status"], "paid", "{}: {kept}", b.name);
}

async fn a_rejection_keeps_its_reason_costs_points_and_a_second_review_is_refused(b: Backend) {
    ok(&b, &["user", "create", "--email", "alice@example.com"]).await;
    let alice = user_id(&b, "alice@example.com").await;
    let id = submit_euler(&b, alice).await.to_string();

    let rejected = ok_json(
        &b,
        &[
            "submission",
            "review",
            &id,
            "--decision",
            "reject",
            "--reason",
            "no such transaction",
        ],
    )
    .await;
    assert_eq!(
        (&rejected["status"], &rejected["review_note"]),
        (
            &Value::from("rejected"),
            &Value::from("no such transaction")
        ),
        "{}: {rejected}",
        b.name
    );
    let reputation = b.store.reputation(alice, Utc::now()).await.unwrap();
    assert_eq!(
        (reputation.score, reputation.submissions_rejected),
        (-10, 1),
        "the default false-report penalty: {}",
        b.name
    );

    let (code, _, stderr) = kamiyo(
        &b,
        &[
            "submission",
            "review",
            &id,
            "--decision",
            "verify",
            "--reason",
            "second thoughts",
        ],
    )
    .await;
    assert_eq!(code, Some(1), "{}: {stderr}", b.name);
    assert!(stderr.contains("already reviewed"), "{}: {stderr}", b.name);
    let bounties = ok_json(&b, &["bounty", "list", "--json"]).await;
    assert_eq!(bounties, Value::Array(Vec::new()), "{}", b.name);
}

async fn unknown_users_roles_and_submissions_are_refused_naming_them(b: Backend) {
    let refused = |args: &'static [&'static str], expected: &'static str| {
        let b = &b;
        async move {
            let (code, _, stderr) = kamiyo(b, args).await;
            assert_ne!(code, Some(0), "{}: {args:?}", b.name);
            assert!(stderr.contains(expected), "{}: {args:?}: {stderr}", b.name);
        }
    };
    refused(
        &["user", "set-role", "nobody@example.com", "reviewer"],
        "no user nobody@example.com",
    )
    .await;
    refused(
        &[
            "user",
            "create",
            "--email",
            "x@example.com",
            "--role",
            "moderator",
        ],
        "\"moderator\" is not a role",
    )
    .await;
    refused(
        &[
            "user",
            "create",
            "--email",
            "y@example.com",
            "--admin",
            "--role",
            "user",
        ],
        "cannot be used with",
    )
    .await;
    refused(
        &[
            "submission",
            "review",
            "999",
            "--decision",
            "verify",
            "--reason",
            "x",
        ],
        "no submission 999",
    )
    .await;
    refused(
        &[
            "submission",
            "review",
            "1",
            "--decision",
            "approve",
            "--reason",
            "x",
        ],
        "approve",
    )
    .await;
    refused(&["submission", "show", "999"], "no submission 999").await;
    refused(
        &["bounty", "list", "--user", "nobody@example.com"],
        "no user nobody@example.com",
    )
    .await;
    assert!(
        accounts(&b).list_users().await.unwrap().is_empty(),
        "{}: nothing was created",
        b.name
    );
}
