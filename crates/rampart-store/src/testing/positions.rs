//! Saved source positions.

use std::sync::Arc;

use crate::{Position, PositionStore};

/// Positions are saved per source and path, replaced on save, and keep
/// full u64 values.
pub async fn positions_upsert_and_load<S: PositionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    assert!(store.load_positions("ssh").await.expect("load").is_empty());

    let auth = Position {
        source: "ssh".to_owned(),
        path: "/var/log/auth.log".to_owned(),
        dev: 2049,
        inode: 131_072,
        offset: 4096,
        fingerprint: Some(0x1234_5678_9abc_def0),
        cursor: None,
    };
    let secure = Position {
        path: "/var/log/secure".to_owned(),
        dev: u64::MAX,
        inode: u64::MAX - 1,
        offset: i64::MAX.unsigned_abs() + 7,
        fingerprint: Some(u64::MAX),
        ..auth.clone()
    };
    let journal = Position {
        source: "journal".to_owned(),
        path: "journal".to_owned(),
        dev: 0,
        inode: 0,
        offset: 0,
        fingerprint: None,
        cursor: Some("s=abc;i=1f;b=def;m=42;t=5f;x=9".to_owned()),
    };
    for p in [&auth, &secure, &journal] {
        store.save_position(p).await.expect("save_position");
    }
    assert_eq!(
        store.load_positions("ssh").await.expect("load"),
        vec![auth.clone(), secure.clone()]
    );
    assert_eq!(
        store.load_positions("journal").await.expect("load"),
        vec![journal]
    );

    // Saving again replaces, field by field, including back to None.
    let rotated = Position {
        inode: 131_073,
        offset: 10,
        fingerprint: None,
        cursor: Some("c".to_owned()),
        ..auth.clone()
    };
    store.save_position(&rotated).await.expect("save_position");
    assert_eq!(
        store.load_positions("ssh").await.expect("load"),
        vec![rotated, secure]
    );
    assert!(
        store
            .load_positions("nginx")
            .await
            .expect("load")
            .is_empty()
    );
}
