//! Findings.

use std::sync::Arc;

use rampart_core::{Evidence, Level, Subject};

use super::*;
use crate::{DecisionStore, FindingStore};

/// A finding without a decision is stored with its note; recent findings
/// are newest first, limited, and include those stored with decisions.
pub async fn findings_with_and_without_decision<
    S: DecisionStore + FindingStore + ?Sized + 'static,
>(
    store: Arc<S>,
) {
    let store = &*store;
    assert!(
        store
            .recent_findings(10)
            .await
            .expect("recent_findings")
            .is_empty()
    );

    let whitelisted = finding("10.0.0.1/32", "ssh-bruteforce", t(0));
    let w = store
        .insert_finding(&whitelisted, "whitelisted")
        .await
        .expect("insert_finding");
    let mut service = finding("10.0.0.2/32", "nginx-down", t(2));
    service.subject = Subject::Service("nginx".to_owned());
    service.level = Level::Critical;
    service.score = 1.0;
    service.evidence = Evidence::default();
    let s = store
        .insert_finding(&service, "dry run")
        .await
        .expect("insert_finding");
    let mut host = finding("10.0.0.3/32", "disk-exhaustion", t(3));
    host.subject = Subject::Host;
    host.level = Level::Low;
    host.score = 0.25;
    let h = store
        .insert_finding(&host, "already banned")
        .await
        .expect("insert_finding");
    let mut decided = ban("192.0.2.7/32", t(1));
    decided.findings = vec![finding("192.0.2.7/32", "ssh-bruteforce", t(1))];
    let decision_id = insert(store, &decided).await;

    let all = store.recent_findings(10).await.expect("recent_findings");
    let summary: Vec<(Option<i64>, Option<&str>)> = all
        .iter()
        .map(|f| (f.decision_id, f.note.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (None, Some("already banned")),
            (None, Some("dry run")),
            (Some(decision_id), None),
            (None, Some("whitelisted")),
        ]
    );
    assert_eq!((all[0].id, &all[0].finding), (h, &host));
    assert_eq!((all[1].id, &all[1].finding), (s, &service));
    assert_eq!(all[2].finding, decided.findings[0]);
    assert_eq!((all[3].id, &all[3].finding), (w, &whitelisted));

    let two = store.recent_findings(2).await.expect("recent_findings");
    assert_eq!(two, all[..2].to_vec());
}

/// Findings come back by id, oldest id first, whatever their times.
pub async fn findings_after_orders_by_id<S: DecisionStore + FindingStore + ?Sized + 'static>(
    store: Arc<S>,
) {
    let store = &*store;
    let mut ids = Vec::new();
    for minute in [5, 3, 9, 1] {
        ids.push(
            store
                .insert_finding(&finding("192.0.2.7/32", "x", t(minute)), "dry run")
                .await
                .expect("finding"),
        );
    }
    let mut decision = ban("192.0.2.8/32", t(0));
    decision.findings = vec![finding("192.0.2.8/32", "y", t(0))];
    let decision_id = store.insert_decision(&decision).await.expect("decision");

    let all = store.findings_after(0, 10).await.expect("after");
    assert_eq!(all.len(), 5);
    assert_eq!(&all.iter().map(|f| f.id).collect::<Vec<_>>()[..4], &ids[..]);
    assert_eq!(all[0].finding.time, t(5));
    assert_eq!(all[0].note.as_deref(), Some("dry run"));
    assert_eq!(all[4].decision_id, Some(decision_id));
    assert_eq!(all[4].finding, decision.findings[0]);
    let page = store.findings_after(ids[1], 2).await.expect("after");
    assert_eq!(
        page.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![ids[2], ids[3]]
    );
    assert!(
        store
            .findings_after(all[4].id, 10)
            .await
            .expect("after")
            .is_empty()
    );
}
