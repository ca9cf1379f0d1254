//! Stored whitelist entries.

use std::sync::Arc;

use super::*;
use crate::{StoreError, WhitelistEntry, WhitelistStore};

/// A network is whitelisted once (however it is written); entries are
/// listed by id and deleted by id.
pub async fn whitelist_add_list_delete<S: WhitelistStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let v4 = net("192.0.2.0/24");
    let id = store
        .add_whitelist(&v4, "office", "alice", t(0))
        .await
        .expect("add");
    assert!(matches!(
        store.add_whitelist(&v4, "again", "bob", t(1)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .add_whitelist(&net("192.0.2.9/24"), "same network", "bob", t(1))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let v6 = store
        .add_whitelist(&net("2001:db8::/32"), "lab", "bob", t(2))
        .await
        .expect("add");
    let host = store
        .add_whitelist(&net("192.0.2.7/32"), "inside the /24", "bob", t(3))
        .await
        .expect("a narrower network is another entry");
    let list = store.list_whitelist().await.expect("list");
    assert_eq!(
        list,
        vec![
            WhitelistEntry {
                id,
                target: v4,
                comment: "office".into(),
                created_by: "alice".into(),
                created_at: t(0),
            },
            WhitelistEntry {
                id: v6,
                target: net("2001:db8::/32"),
                comment: "lab".into(),
                created_by: "bob".into(),
                created_at: t(2),
            },
            WhitelistEntry {
                id: host,
                target: net("192.0.2.7/32"),
                comment: "inside the /24".into(),
                created_by: "bob".into(),
                created_at: t(3),
            },
        ]
    );
    assert!(store.delete_whitelist(id).await.expect("delete"));
    assert!(!store.delete_whitelist(id).await.expect("delete twice"));
    assert_eq!(store.list_whitelist().await.expect("list").len(), 2);
    let again = store
        .add_whitelist(&v4, "back", "alice", t(4))
        .await
        .expect("listed again once deleted");
    assert!(again > host);
}
