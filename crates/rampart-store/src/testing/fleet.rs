//! Fleet members, pushed events, uploads and actions.

use std::sync::Arc;

use super::*;
use crate::{ActionLog, ActionRecord, AgentRecord, EventRecord, FleetRegistry, UploadBatch};

/// Events keep every field and come back by id; agents are replaced by
/// their heartbeat; actions and uploads newest first; retention purges all
/// three by time.
pub async fn events_agents_actions_uploads<S: FleetRegistry + ActionLog + ?Sized + 'static>(
    store: Arc<S>,
) {
    let store = &*store;
    assert!(store.insert_events(&[]).await.expect("none").is_empty());
    let event = |minutes: i64, kind: &str, ip: Option<&str>| EventRecord {
        time: t(minutes),
        node: "agent-1".into(),
        kind: kind.into(),
        source_ip: ip.map(|ip| ip.parse().expect("address")),
        label: (kind == "finding").then(|| "ssh-bruteforce".to_owned()),
        payload: serde_json::json!({"kind": kind, "n": minutes, "nested": [1, 2.5, null]}),
    };
    // Newest first in the batch: ids still follow the batch's order.
    let events = vec![
        event(3, "finding", Some("192.0.2.7")),
        event(2, "login_failure", Some("2001:db8::1")),
        event(1, "event", None),
    ];
    let ids = store.insert_events(&events).await.expect("insert");
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let all = store.events_after(0, 10).await.expect("after");
    assert_eq!(
        all,
        ids.iter()
            .copied()
            .zip(events.iter().cloned())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.events_after(ids[0], 1).await.expect("after"),
        vec![(ids[1], events[1].clone())]
    );
    let more = store
        .insert_events(&[event(4, "event", None)])
        .await
        .expect("insert");
    assert!(more[0] > ids[2]);

    let agent = |id: &str, seen: i64, processed: u64| AgentRecord {
        id: id.into(),
        kind: "gateway".into(),
        address: "10.0.0.5:51234".into(),
        version: "0.1.0".into(),
        started_at: t(0),
        last_seen: t(seen),
        processed,
        blocked: 7,
    };
    store
        .upsert_agent(&agent("web-2", 1, 10))
        .await
        .expect("upsert");
    store
        .upsert_agent(&agent("web-1", 1, 5))
        .await
        .expect("upsert");
    let mut newer = agent("web-2", 2, u64::MAX);
    newer.version = "0.2.0".into();
    newer.kind = "agent".into();
    store.upsert_agent(&newer).await.expect("upsert");
    assert_eq!(
        store.list_agents().await.expect("list"),
        vec![agent("web-1", 1, 5), newer]
    );

    let action = |minutes: i64, ok: bool| ActionRecord {
        time: t(minutes),
        node: "web-1".into(),
        decision_id: ok.then_some(42),
        action: "ban".into(),
        target: "192.0.2.7/32".into(),
        ok,
        detail: if ok {
            "nftables"
        } else {
            "nft: permission denied"
        }
        .into(),
    };
    let a0 = store.insert_action(&action(0, true)).await.expect("action");
    let a2 = store
        .insert_action(&action(2, false))
        .await
        .expect("action");
    let a1 = store.insert_action(&action(1, true)).await.expect("action");
    assert_eq!(
        store.recent_actions(2).await.expect("recent"),
        vec![(a2, action(2, false)), (a1, action(1, true))]
    );
    assert_eq!(store.recent_actions(10).await.expect("recent")[2].0, a0);

    let upload = |minutes: i64, rejected: u64| UploadBatch {
        time: t(minutes),
        principal: "agent-web-1".into(),
        kind: "logs".into(),
        accepted: 100,
        rejected,
        errors: serde_json::json!([{"index": 3, "field": "time", "message": "not a time"}]),
    };
    let u0 = store.insert_upload(&upload(0, 1)).await.expect("upload");
    let u1 = store.insert_upload(&upload(5, 0)).await.expect("upload");
    assert_eq!(
        store.recent_uploads(10).await.expect("recent"),
        vec![(u1, upload(5, 0)), (u0, upload(0, 1))]
    );

    // Before t(2): events at t(1) and the upload at t(0); actions at t(0) and t(1).
    assert_eq!(store.purge_events(t(2)).await.expect("purge"), 2);
    assert_eq!(store.purge_actions(t(2)).await.expect("purge"), 2);
    let left: Vec<i64> = store
        .events_after(0, 10)
        .await
        .expect("after")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, vec![ids[0], ids[1], more[0]]);
    assert_eq!(
        store.recent_actions(10).await.expect("recent"),
        vec![(a2, action(2, false))]
    );
    assert_eq!(store.recent_uploads(10).await.expect("recent").len(), 1);
    assert_eq!(store.purge_events(t(2)).await.expect("purge"), 0);
    assert_eq!(store.purge_actions(t(2)).await.expect("purge"), 0);
}

/// Actions after a cursor come oldest first, by id, paged; none after the last.
pub async fn actions_after_orders_by_id<S: ActionLog + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let mut ids = Vec::new();
    for (i, minute) in [5, 1, 3].into_iter().enumerate() {
        let record = ActionRecord {
            time: t(minute),
            node: "agent-1".to_owned(),
            decision_id: Some(i as i64),
            action: "ban".to_owned(),
            target: format!("192.0.2.{i}"),
            ok: i != 1,
            detail: "nftables".to_owned(),
        };
        ids.push((store.insert_action(&record).await.expect("insert"), record));
    }
    let all = store.actions_after(0, 10).await.expect("after");
    assert_eq!(all, ids, "by id, not by time");
    let page = store.actions_after(ids[0].0, 1).await.expect("after");
    assert_eq!(page, vec![ids[1].clone()]);
    assert!(
        store
            .actions_after(ids[2].0, 10)
            .await
            .expect("after")
            .is_empty()
    );
}
