//! Reviewer grants and roles on both backends: a grant is idempotent, a revocation says
//! whether there was one, an admin is no reviewer by grant, and a change of access moves
//! role and grant together and is seen at once by a store that caches verified keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use kamiyo_db::Database;
use kamiyo_domain::Tier;
use kamiyo_store::accounts::{Access, AccountError, AccountStore, Role};

type Backend = common::Backend<AccountStore>;

/// A store that keeps verified keys for an hour: a change of role must still apply at once.
fn caching(db: Database) -> AccountStore {
    AccountStore::with_principal_cache(db, std::time::Duration::from_secs(3600), 100)
}

kamiyo_testkit::per_backend! {
    AccountStore::new => [
        granting_twice_is_one_grant_and_revoking_says_whether_there_was_one,
        granting_or_revoking_for_an_unknown_email_is_refused_as_no_such_user,
        an_admin_holds_no_grant_unless_given_one,
        setting_access_moves_the_role_and_the_grant_together,
    ],
    caching => [
        a_key_verified_before_a_promotion_carries_the_new_role_at_once,
    ],
}

async fn user(b: &Backend, email: &str, role: Role) -> i64 {
    b.store
        .create_user(email, Tier::Free, role)
        .await
        .unwrap()
        .id
}

async fn grants(b: &Backend) -> i64 {
    common::count(&b.db, "SELECT count(*) FROM reviewers").await
}

async fn granting_twice_is_one_grant_and_revoking_says_whether_there_was_one(b: Backend) {
    let alice = user(&b, "alice@example.com", Role::User).await;
    assert!(!b.store.is_reviewer(alice).await.unwrap(), "{}", b.name);

    b.store.grant_reviewer("alice@example.com").await.unwrap();
    b.store.grant_reviewer("ALICE@example.com").await.unwrap();
    assert!(b.store.is_reviewer(alice).await.unwrap(), "{}", b.name);
    assert_eq!(grants(&b).await, 1, "{}", b.name);
    assert_eq!(
        b.store.reviewer_ids().await.unwrap(),
        vec![alice],
        "{}",
        b.name
    );

    assert!(
        b.store.revoke_reviewer("alice@example.com").await.unwrap(),
        "{}",
        b.name
    );
    assert!(
        !b.store.revoke_reviewer("alice@example.com").await.unwrap(),
        "a second revocation finds nothing: {}",
        b.name
    );
    assert!(!b.store.is_reviewer(alice).await.unwrap(), "{}", b.name);
}

async fn granting_or_revoking_for_an_unknown_email_is_refused_as_no_such_user(b: Backend) {
    let granted = b.store.grant_reviewer("nobody@example.com").await;
    assert!(
        matches!(&granted, Err(AccountError::NoSuchUser(who)) if who == "nobody@example.com"),
        "{}: {granted:?}",
        b.name
    );
    let revoked = b.store.revoke_reviewer("nobody@example.com").await;
    assert!(
        matches!(revoked, Err(AccountError::NoSuchUser(_))),
        "{}: {revoked:?}",
        b.name
    );
    let set = b
        .store
        .set_access("nobody@example.com", Access::Reviewer)
        .await;
    assert!(
        matches!(set, Err(AccountError::NoSuchUser(_))),
        "{}: {set:?}",
        b.name
    );
    assert_eq!(grants(&b).await, 0, "{}", b.name);
}

async fn an_admin_holds_no_grant_unless_given_one(b: Backend) {
    let admin = user(&b, "ops@example.com", Role::Admin).await;
    assert!(!b.store.is_reviewer(admin).await.unwrap(), "{}", b.name);
    assert!(
        !b.store.is_reviewer(admin + 1000).await.unwrap(),
        "an unknown id holds no grant: {}",
        b.name
    );
}

async fn setting_access_moves_the_role_and_the_grant_together(b: Backend) {
    let bob = user(&b, "bob@example.com", Role::User).await;
    let role_of = |id: i64| {
        let store = b.store.clone();
        async move { store.find_user(&id.to_string()).await.unwrap().role }
    };

    let reviewer = b
        .store
        .set_access("bob@example.com", Access::Reviewer)
        .await
        .unwrap();
    assert_eq!(reviewer.role, Role::User, "{}", b.name);
    assert!(b.store.is_reviewer(bob).await.unwrap(), "{}", b.name);

    let admin = b
        .store
        .set_access(&bob.to_string(), Access::Admin)
        .await
        .unwrap();
    assert_eq!(
        (admin.role, role_of(bob).await),
        (Role::Admin, Role::Admin),
        "{}",
        b.name
    );
    assert!(
        !b.store.is_reviewer(bob).await.unwrap(),
        "an admin reviews by role, without a grant: {}",
        b.name
    );

    b.store
        .set_access("bob@example.com", Access::Reviewer)
        .await
        .unwrap();
    let user = b
        .store
        .set_access("bob@example.com", Access::User)
        .await
        .unwrap();
    assert_eq!(
        (user.role, role_of(bob).await),
        (Role::User, Role::User),
        "{}",
        b.name
    );
    assert!(!b.store.is_reviewer(bob).await.unwrap(), "{}", b.name);
    assert_eq!(grants(&b).await, 0, "{}", b.name);
}

async fn a_key_verified_before_a_promotion_carries_the_new_role_at_once(b: Backend) {
    user(&b, "carol@example.com", Role::User).await;
    let (_, key) = b
        .store
        .create_key("carol@example.com", "laptop")
        .await
        .unwrap();
    let before = b.store.authenticate(&key).await.unwrap().unwrap();
    assert_eq!(before.role, Role::User, "{}", b.name);

    b.store
        .set_access("carol@example.com", Access::Admin)
        .await
        .unwrap();
    let after = b.store.authenticate(&key).await.unwrap().unwrap();
    assert_eq!(after.role, Role::Admin, "{}", b.name);
}

#[test]
fn a_role_is_user_reviewer_or_admin_and_anything_else_is_refused_by_field() {
    for access in [Access::User, Access::Reviewer, Access::Admin] {
        assert_eq!(Access::parse(access.as_str()).unwrap(), access);
        assert_eq!(
            Access::of(access.role(), access == Access::Reviewer),
            access
        );
    }
    let refused = Access::parse("moderator").unwrap_err();
    assert_eq!(refused.field, "role");
}
