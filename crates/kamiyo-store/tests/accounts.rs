//! Accounts on both backends: keys hashed and revocable, tier changes recorded with
//! their history atomically, disabled users locked out, financial records kept.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use kamiyo_db::{Database, Pool};
use kamiyo_domain::Tier;
use kamiyo_store::accounts::{hash_key, AccountError, AccountStore, Role};

type Backend = common::Backend<AccountStore>;

kamiyo_testkit::per_backend! {
    AccountStore::new => [
        a_key_works_once_created_and_only_its_hash_is_stored,
        a_revoked_key_stops_working_and_cannot_be_revoked_twice,
        every_key_of_a_disabled_user_stops_working,
        a_tier_change_is_recorded_with_its_history,
        a_taken_email_in_another_case_or_a_malformed_one_is_refused_by_field,
        a_tier_change_of_an_unknown_user_is_refused,
        a_payment_is_recorded_and_a_negative_amount_is_refused_by_field,
        a_tier_change_and_its_history_row_commit_together_or_not_at_all,
    ],
}

/// Every stored key hash, straight from the table.
async fn stored_hashes(db: &Database) -> Vec<String> {
    match db.primary() {
        Pool::Postgres(pool) => pool
            .acquire()
            .await
            .unwrap()
            .query("SELECT key_hash FROM api_keys", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect(),
        Pool::Sqlite(pool) => pool
            .acquire()
            .await
            .unwrap()
            .query("SELECT key_hash FROM api_keys", Vec::new(), |r| r.get(0))
            .await
            .unwrap(),
    }
}

/// A Pro user `analyst@example.com` and a key of theirs.
async fn analyst_with_a_key(b: &Backend) -> (kamiyo_store::accounts::User, String, String) {
    let user = b
        .store
        .create_user("analyst@example.com", Tier::Pro, Role::User)
        .await
        .unwrap();
    let (info, key) = b
        .store
        .create_key("analyst@example.com", "laptop")
        .await
        .unwrap();
    (user, info.prefix, key)
}

async fn a_key_works_once_created_and_only_its_hash_is_stored(b: Backend) {
    let (user, prefix, key) = analyst_with_a_key(&b).await;
    assert!(
        key.starts_with("kmy_") && key.starts_with(&prefix),
        "{}",
        b.name
    );
    let principal = b.store.authenticate(&key).await.unwrap().unwrap();
    assert_eq!(
        (principal.user_id, principal.tier),
        (user.id, Tier::Pro),
        "{}",
        b.name
    );
    assert_eq!(
        stored_hashes(&b.db).await,
        vec![hash_key(&key)],
        "{}: only the hash is stored",
        b.name
    );
    assert!(b.store.authenticate("kmy_wrong").await.unwrap().is_none());
    let listed = b
        .store
        .list_keys(Some("analyst@example.com"))
        .await
        .unwrap();
    assert!(
        listed[0].last_used_at.is_some(),
        "{}: use is recorded",
        b.name
    );
}

async fn a_revoked_key_stops_working_and_cannot_be_revoked_twice(b: Backend) {
    let (_, prefix, key) = analyst_with_a_key(&b).await;
    assert!(b.store.authenticate(&key).await.unwrap().is_some());
    b.store.revoke_key(&prefix).await.unwrap();
    assert!(
        b.store.authenticate(&key).await.unwrap().is_none(),
        "{}: revoked",
        b.name
    );
    assert!(matches!(
        b.store.revoke_key(&prefix).await,
        Err(AccountError::NoSuchKey(_))
    ));
}

async fn every_key_of_a_disabled_user_stops_working(b: Backend) {
    let (user, _, first) = analyst_with_a_key(&b).await;
    // A key is made for a user named by id as well as by e-mail.
    let (_, second) = b
        .store
        .create_key(&user.id.to_string(), "ci")
        .await
        .unwrap();
    assert!(b.store.authenticate(&second).await.unwrap().is_some());
    b.store.disable_user("ANALYST@example.com").await.unwrap();
    for key in [&first, &second] {
        assert!(
            b.store.authenticate(key).await.unwrap().is_none(),
            "{}: disabled user",
            b.name
        );
    }
}

async fn a_tier_change_is_recorded_with_its_history(b: Backend) {
    b.store
        .create_user("buyer@example.com", Tier::Free, Role::User)
        .await
        .unwrap();
    let user = b
        .store
        .set_tier("buyer@example.com", Tier::Team, "upgraded by sales")
        .await
        .unwrap();
    assert_eq!(user.tier, Tier::Team);
    assert_eq!(
        b.store.find_user("buyer@example.com").await.unwrap().tier,
        Tier::Team,
        "{}",
        b.name
    );
    let history = b
        .store
        .subscription_history("buyer@example.com")
        .await
        .unwrap();
    let steps: Vec<(Option<Tier>, Tier)> =
        history.iter().map(|h| (h.old_tier, h.new_tier)).collect();
    assert_eq!(
        steps,
        vec![(None, Tier::Free), (Some(Tier::Free), Tier::Team)],
        "{}",
        b.name
    );
    assert_eq!(history[1].reason, "upgraded by sales");
}

async fn a_taken_email_in_another_case_or_a_malformed_one_is_refused_by_field(b: Backend) {
    b.store
        .create_user("buyer@example.com", Tier::Free, Role::User)
        .await
        .unwrap();
    assert!(
        matches!(
            b.store
                .create_user("buyer@EXAMPLE.com", Tier::Free, Role::User)
                .await,
            Err(AccountError::EmailTaken(_))
        ),
        "{}",
        b.name
    );
    match b
        .store
        .create_user("not-an-email", Tier::Free, Role::User)
        .await
    {
        Err(AccountError::Invalid(e)) => assert_eq!(e.field, "email"),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.store.list_users().await.unwrap().len(), 1);
}

async fn a_tier_change_of_an_unknown_user_is_refused(b: Backend) {
    assert!(matches!(
        b.store.set_tier("nobody@example.com", Tier::Pro, "x").await,
        Err(AccountError::NoSuchUser(_))
    ));
}

async fn a_payment_is_recorded_and_a_negative_amount_is_refused_by_field(b: Backend) {
    b.store
        .create_user("buyer@example.com", Tier::Free, Role::User)
        .await
        .unwrap();
    let payment = b
        .store
        .record_payment(
            "buyer@example.com",
            "49.00",
            "usd",
            "succeeded",
            "manual",
            Some("inv-1"),
        )
        .await
        .unwrap();
    assert!(payment > 0);
    match b
        .store
        .record_payment(
            "buyer@example.com",
            "-3",
            "USD",
            "succeeded",
            "manual",
            None,
        )
        .await
    {
        Err(AccountError::Invalid(e)) => assert_eq!(e.field, "amount"),
        other => panic!("{other:?}"),
    }
}

async fn a_tier_change_and_its_history_row_commit_together_or_not_at_all(b: Backend) {
    b.store
        .create_user("atomic@example.com", Tier::Free, Role::User)
        .await
        .unwrap();
    // Make the history insert fail: the tier change must not survive it.
    let sabotage = match b.db.primary() {
        Pool::Postgres(_) => "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'history refused'; END $$; \
                              CREATE TRIGGER refuse_history BEFORE INSERT ON subscription_changes FOR EACH ROW EXECUTE FUNCTION refuse();",
        Pool::Sqlite(_) => "CREATE TRIGGER refuse_history BEFORE INSERT ON subscription_changes BEGIN SELECT RAISE(ABORT, 'history refused'); END;",
    };
    match b.db.primary() {
        Pool::Postgres(pool) => pool
            .acquire()
            .await
            .unwrap()
            .batch_execute(sabotage)
            .await
            .unwrap(),
        Pool::Sqlite(pool) => {
            let sql = sabotage.to_owned();
            pool.acquire()
                .await
                .unwrap()
                .run(move |c| c.execute_batch(&sql))
                .await
                .unwrap()
        }
    }
    assert!(
        b.store
            .set_tier("atomic@example.com", Tier::Enterprise, "should fail")
            .await
            .is_err(),
        "{}",
        b.name
    );
    assert_eq!(
        b.store.find_user("atomic@example.com").await.unwrap().tier,
        Tier::Free,
        "{}: rolled back",
        b.name
    );
    assert_eq!(
        b.store
            .subscription_history("atomic@example.com")
            .await
            .unwrap()
            .len(),
        1,
        "{}",
        b.name
    );
}
