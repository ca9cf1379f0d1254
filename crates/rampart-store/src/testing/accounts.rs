//! Users and tokens.

use std::sync::Arc;

use super::*;
use crate::{AccountStore, Role, StoreError};

/// Users: created once per name, updated, listed by name. Tokens: found by
/// their secret's hash, revoked once, names unique.
pub async fn users_and_tokens<S: AccountStore + ?Sized + 'static>(store: Arc<S>) {
    let id = store
        .create_user("zoe", Role::Admin, "$argon2id$v=19$a", t(0))
        .await
        .expect("create");
    assert!(id > 0);
    store
        .create_user("amy", Role::Viewer, "$argon2id$v=19$b", t(1))
        .await
        .expect("create");
    assert!(matches!(
        store.create_user("zoe", Role::Viewer, "x", t(2)).await,
        Err(StoreError::Conflict(_))
    ));
    let names: Vec<String> = store
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["amy", "zoe"]);
    assert!(
        store
            .update_user("amy", Some(Role::Operator), None, t(3))
            .await
            .expect("update")
    );
    assert!(
        store
            .update_user("amy", None, Some("$argon2id$v=19$c"), t(4))
            .await
            .expect("update")
    );
    assert!(
        !store
            .update_user("nobody", None, Some("x"), t(4))
            .await
            .expect("update")
    );
    let amy = store.get_user("amy").await.expect("get").expect("amy");
    assert_eq!(amy.role, Role::Operator);
    assert_eq!(amy.password_hash, "$argon2id$v=19$c");
    assert_eq!(amy.created_at, t(1));
    assert_eq!(amy.updated_at, t(4));
    assert!(store.get_user("nobody").await.expect("get").is_none());

    store
        .create_token("agent-1", Role::Agent, "aa11", "zoe", t(5))
        .await
        .expect("token");
    assert!(matches!(
        store
            .create_token("agent-1", Role::Agent, "bb22", "zoe", t(5))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let found = store
        .token_by_hash("aa11")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.name, "agent-1");
    assert_eq!(found.role, Role::Agent);
    assert_eq!(found.created_by, "zoe");
    assert!(found.revoked_at.is_none());
    assert!(store.token_by_hash("ffff").await.expect("find").is_none());
    assert!(store.revoke_token("agent-1", t(6)).await.expect("revoke"));
    assert!(
        !store
            .revoke_token("agent-1", t(7))
            .await
            .expect("revoke twice")
    );
    let found = store
        .token_by_hash("aa11")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.revoked_at, Some(t(6)));
    assert_eq!(store.list_tokens().await.expect("list").len(), 1);
}
