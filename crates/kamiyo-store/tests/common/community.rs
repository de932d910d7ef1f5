//! What the community stories share: a store, users, a submission of a protocol on a
//! date, the rewards the stories review under.

use chrono::{DateTime, TimeZone, Utc};
use kamiyo_db::Database;
use kamiyo_domain::{IncidentDraft, IncidentInput, Role, Tier, TxHashInput, Usd};
use kamiyo_store::accounts::AccountStore;
use kamiyo_store::community::{CommunityStore, NewSubmission, Rewards, Submitted};
use kamiyo_store::IncidentStore;

pub type Backend = super::Backend<CommunityStore>;

pub fn store(db: Database) -> CommunityStore {
    CommunityStore::new(db.clone(), IncidentStore::new(db))
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
}

pub const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

pub fn rewards() -> Rewards {
    Rewards {
        new_incident: (10, Some(Usd::parse("bounty", "50").unwrap())),
        evidence: (5, Some(Usd::parse("bounty", "20").unwrap())),
        penalty: -10,
        daily_cap: 50,
    }
}

pub async fn user(b: &Backend, email: &str) -> i64 {
    AccountStore::new(b.db.clone())
        .create_user(email, Tier::Free, Role::User)
        .await
        .unwrap()
        .id
}

/// A submission of `protocol` on `date` with an optional hash.
pub fn submission(user_id: i64, protocol: &str, date: &str, hash: Option<&str>) -> NewSubmission {
    let input = IncidentInput {
        source: Some("community".into()),
        source_url: Some(format!("https://evidence.example/{protocol}")),
        protocol: Some(protocol.into()),
        chains: vec!["ethereum".into()],
        date: Some(date.into()),
        loss_usd: Some("1000000".into()),
        tx_hashes: hash
            .map(|h| {
                vec![TxHashInput {
                    chain: Some("ethereum".into()),
                    hash: h.into(),
                }]
            })
            .unwrap_or_default(),
        ..IncidentInput::default()
    };
    let draft = IncidentDraft::from_input(input.clone(), now()).unwrap();
    NewSubmission {
        user_id,
        protocol: protocol.into(),
        claim: serde_json::to_value(&input).unwrap(),
        draft,
        evidence_urls: vec![format!("https://evidence.example/{protocol}")],
        attacker_addresses: vec!["0xattacker".into()],
        victim_addresses: Vec::new(),
        fingerprint: format!("{protocol}|{date}|{hash:?}"),
    }
}

pub async fn submit(b: &Backend, new: &NewSubmission) -> kamiyo_store::community::Submission {
    match b.store.submit(new, now()).await.unwrap() {
        Submitted::New(s) => s,
        Submitted::Duplicate(s) => panic!("unexpected duplicate of {}", s.id),
    }
}

pub async fn ingest(b: &Backend, claim: kamiyo_testkit::ClaimBuilder) -> i64 {
    IncidentStore::new(b.db.clone())
        .ingest(&claim.build())
        .await
        .unwrap()
        .exploit_id
}

pub async fn count(b: &Backend, sql: &str) -> i64 {
    super::count(&b.db, sql).await
}

/// `decision` on submission `id` by `reviewer` with `reason`, under [`rewards`] at [`now`].
pub async fn decide(
    b: &Backend,
    id: i64,
    reviewer: Option<i64>,
    decision: kamiyo_store::community::Decision,
    reason: &str,
) -> Result<kamiyo_store::community::Reviewed, kamiyo_store::StoreError> {
    b.store
        .review(id, reviewer, decision, reason, rewards(), now())
        .await
}
