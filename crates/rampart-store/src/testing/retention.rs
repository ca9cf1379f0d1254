//! Retention across tables.

use std::sync::Arc;

use super::*;
use crate::{DecisionStore, FindingStore, Prediction, RequestLog, RequestRecord};

/// Retention deletes request-log records and decision-less findings older
/// than the cut-off, and nothing else.
pub async fn retention_purges_old_rows_only<
    S: DecisionStore + FindingStore + RequestLog + ?Sized + 'static,
>(
    store: Arc<S>,
) {
    let record = |minutes: i64| RequestRecord {
        time: t(minutes),
        gateway: "gw".into(),
        request_id: format!("r{minutes}"),
        client: "192.0.2.1".parse().expect("address"),
        method: "GET".into(),
        path: "/".into(),
        user_agent: None,
        status: 200,
        request_bytes: 0,
        response_bytes: 0,
        latency_ms: 1.0,
        score: 0.0,
        prediction: Prediction::Normal,
        blocked: false,
        reason: None,
        backend: None,
    };
    let records: Vec<RequestRecord> = (0..10).map(record).collect();
    store.insert_requests(&records).await.expect("insert");
    assert_eq!(store.purge_requests(t(4)).await.expect("purge"), 4);
    let left = store.recent_requests(None, 100).await.expect("read");
    assert_eq!(left.len(), 6);
    assert!(left.iter().all(|r| r.time >= t(4)));

    let mut with_decision = ban("192.0.2.9/32", t(0));
    with_decision.findings = vec![finding("192.0.2.9/32", "test", t(0))];
    store
        .insert_decision(&with_decision)
        .await
        .expect("decision");
    store
        .insert_finding(&finding("192.0.2.10/32", "test", t(0)), "whitelisted")
        .await
        .expect("finding");
    store
        .insert_finding(&finding("192.0.2.11/32", "test", t(10)), "whitelisted")
        .await
        .expect("finding");
    assert_eq!(store.purge_findings(t(5)).await.expect("purge"), 1);
    let kept = store.recent_findings(10).await.expect("findings");
    assert_eq!(
        kept.len(),
        2,
        "the decision's evidence and the newer finding stay"
    );
    assert!(kept.iter().any(|f| f.decision_id.is_some()));
}

// ---- the central server's tables ----
