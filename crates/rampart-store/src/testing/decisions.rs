//! Decisions and the change log.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_core::{Action, Origin};

use super::*;
use crate::{BlockedIp, ChangeKind, DecisionQuery, DecisionStore, FindingStore, StoredDecision};

/// Every field of a decision survives insert and get, for IPv4 and IPv6
/// addresses and prefixes; its findings land in the findings table, linked.
pub async fn insert_get_round_trip<S: DecisionStore + FindingStore + ?Sized + 'static>(
    store: Arc<S>,
) {
    let store = &*store;
    assert_eq!(store.get_decision(1).await.expect("get"), None);

    let mut v4 = ban("192.0.2.7/32", t(0));
    v4.findings = vec![
        finding("192.0.2.7/32", "ssh-bruteforce", t(0)),
        finding("192.0.2.7/32", "ssh-slow-bruteforce", t(-1)),
    ];
    v4.escalation = 3;
    v4.dry_run = true;

    let mut v6 = ban("2001:db8::1/128", t(1));
    v6.origin = Origin::Operator("alice".to_owned());
    v6.until = None;
    v6.reason = "manual ban".to_owned();

    let mut v4_prefix = ban("198.51.100.0/24", t(2));
    v4_prefix.origin = Origin::Model("flow-rf".to_owned());
    v4_prefix.findings = vec![finding("198.51.100.0/24", "DDoS", t(2))];

    let mut v6_prefix = ban("2001:db8:1:2::/64", t(3));
    v6_prefix.action = Action::Log;
    v6_prefix.until = None;

    let mut unban = ban("203.0.113.9/32", t(4));
    unban.action = Action::Unban;
    unban.until = None;

    for original in [&v4, &v6, &v4_prefix, &v6_prefix, &unban] {
        let id = insert(store, original).await;
        let stored = store
            .get_decision(id)
            .await
            .expect("get")
            .expect("stored decision is found");
        let mut expected = original.clone();
        expected.id = Some(id);
        assert_eq!(
            stored,
            StoredDecision {
                id,
                decision: expected,
                revoked_at: None,
                revoked_by: None,
                remote_id: None,
            }
        );
    }

    // An id given on insert is ignored: the store assigns one.
    let mut with_id = ban("192.0.2.8/32", t(5));
    with_id.id = Some(9999);
    let id = insert(store, &with_id).await;
    assert_ne!(id, 9999);
    assert_eq!(store.get_decision(9999).await.expect("get"), None);

    let findings = store.recent_findings(100).await.expect("recent_findings");
    assert_eq!(findings.len(), 3);
    assert_eq!(findings[0].finding, v4_prefix.findings[0]);
    assert_eq!(findings[1].finding, v4.findings[0]);
    assert_eq!(findings[2].finding, v4.findings[1]);
    for f in &findings {
        assert!(f.decision_id.is_some());
        assert_eq!(f.note, None);
    }
    assert_eq!(findings[1].decision_id, findings[2].decision_id);
    assert_ne!(findings[0].decision_id, findings[1].decision_id);
}

/// `target` keeps decisions whose target is the network or lies inside
/// it, never a wider one, never the other family.
pub async fn query_filters_by_target<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let host = insert(store, &ban("192.0.2.7/32", t(0))).await;
    let prefix = insert(store, &ban("192.0.2.0/24", t(1))).await;
    let wider = insert(store, &ban("192.0.0.0/16", t(2))).await;
    let outside = insert(store, &ban("198.51.100.7/32", t(3))).await;
    let v6_host = insert(store, &ban("2001:db8::7/128", t(4))).await;
    let v6_prefix = insert(store, &ban("2001:db8::/64", t(5))).await;
    let last_v4 = insert(store, &ban("192.0.2.255/32", t(6))).await;

    let by = |target: &str| DecisionQuery {
        target: Some(net(target)),
        ..DecisionQuery::default()
    };
    assert_eq!(sorted(ids(store, by("192.0.2.7/32")).await), vec![host]);
    assert_eq!(
        sorted(ids(store, by("192.0.2.0/24")).await),
        vec![host, prefix, last_v4]
    );
    assert_eq!(
        sorted(ids(store, by("192.0.0.0/16")).await),
        vec![host, prefix, wider, last_v4]
    );
    assert_eq!(
        sorted(ids(store, by("0.0.0.0/0")).await),
        vec![host, prefix, wider, outside, last_v4]
    );
    assert_eq!(
        sorted(ids(store, by("2001:db8::/32")).await),
        vec![v6_host, v6_prefix]
    );
    assert_eq!(
        sorted(ids(store, by("2001:db8::7/128")).await),
        vec![v6_host]
    );
    assert_eq!(ids(store, by("10.0.0.0/8")).await, Vec::<i64>::new());
    assert_eq!(ids(store, by("::/0")).await.len(), 2);
}

/// `scenario` keeps decisions made by that scenario only (not an operator
/// or model of the same name).
pub async fn query_filters_by_scenario<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let ssh = insert(store, &ban("192.0.2.1/32", t(0))).await;
    let mut http = ban("192.0.2.2/32", t(1));
    http.origin = Origin::Scenario("http-scan".to_owned());
    let http = insert(store, &http).await;
    let mut operator = ban("192.0.2.3/32", t(2));
    operator.origin = Origin::Operator("ssh-bruteforce".to_owned());
    insert(store, &operator).await;
    let mut model = ban("192.0.2.4/32", t(3));
    model.origin = Origin::Model("ssh-bruteforce".to_owned());
    insert(store, &model).await;

    let by = |name: &str| DecisionQuery {
        scenario: Some(name.to_owned()),
        ..DecisionQuery::default()
    };
    assert_eq!(ids(store, by("ssh-bruteforce")).await, vec![ssh]);
    assert_eq!(ids(store, by("http-scan")).await, vec![http]);
    assert_eq!(ids(store, by("nope")).await, Vec::<i64>::new());
    assert_eq!(ids(store, DecisionQuery::default()).await.len(), 4);
}

/// `dry_run` keeps dry-run or enforced decisions only.
pub async fn query_filters_by_dry_run<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let enforced = insert(store, &ban("192.0.2.1/32", t(0))).await;
    let mut dry = ban("192.0.2.2/32", t(1));
    dry.dry_run = true;
    let dry = insert(store, &dry).await;

    let by = |dry_run: Option<bool>| DecisionQuery {
        dry_run,
        ..DecisionQuery::default()
    };
    assert_eq!(ids(store, by(Some(true))).await, vec![dry]);
    assert_eq!(ids(store, by(Some(false))).await, vec![enforced]);
    assert_eq!(ids(store, by(None)).await, vec![dry, enforced]);

    // Filters combine.
    let combined = DecisionQuery {
        dry_run: Some(true),
        target: Some(net("192.0.2.1/32")),
        ..DecisionQuery::default()
    };
    assert_eq!(ids(store, combined).await, Vec::<i64>::new());
}

/// Newest first by `at`, then by id for equal times; `limit` keeps the newest.
pub async fn query_is_newest_first_with_limit<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let middle = insert(store, &ban("192.0.2.1/32", t(5))).await;
    let oldest = insert(store, &ban("192.0.2.2/32", t(0))).await;
    let newest_a = insert(store, &ban("192.0.2.3/32", t(10))).await;
    let newest_b = insert(store, &ban("192.0.2.4/32", t(10))).await;

    assert_eq!(
        ids(store, DecisionQuery::default()).await,
        vec![newest_b, newest_a, middle, oldest]
    );
    let limited = DecisionQuery {
        limit: Some(2),
        ..DecisionQuery::default()
    };
    assert_eq!(ids(store, limited).await, vec![newest_b, newest_a]);
    let zero = DecisionQuery {
        limit: Some(0),
        ..DecisionQuery::default()
    };
    assert_eq!(ids(store, zero).await, Vec::<i64>::new());
}

/// `active_at` keeps bans neither expired nor revoked, exactly as
/// [`StoredDecision::is_active`] says.
pub async fn active_expired_and_revoked<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let now = t(30);
    let active = insert(store, &ban("192.0.2.1/32", t(0))).await; // until t(60)
    let expired = insert(store, &ban("192.0.2.2/32", t(-90))).await; // until t(-30)
    let ends_now = insert(store, &ban("192.0.2.3/32", t(-30))).await; // until == now
    let mut forever = ban("192.0.2.4/32", t(0));
    forever.until = None;
    let forever = insert(store, &forever).await;
    let revoked = insert(store, &ban("192.0.2.5/32", t(0))).await;
    assert!(
        store
            .revoke_id(revoked, "alice", t(10))
            .await
            .expect("revoke_id")
    );
    let mut log = ban("192.0.2.6/32", t(0));
    log.action = Action::Log;
    insert(store, &log).await;
    let mut unban = ban("192.0.2.7/32", t(0));
    unban.action = Action::Unban;
    unban.until = None;
    insert(store, &unban).await;
    let mut dry = ban("192.0.2.8/32", t(0));
    dry.dry_run = true;
    let dry = insert(store, &dry).await;

    let query = DecisionQuery {
        active_at: Some(now),
        ..DecisionQuery::default()
    };
    let listed = sorted(ids(store, query).await);
    assert_eq!(listed, vec![active, forever, dry]);
    for d in store
        .query_decisions(&DecisionQuery::default())
        .await
        .expect("query_decisions")
    {
        assert_eq!(
            d.is_active(now),
            listed.contains(&d.id),
            "decision {}",
            d.id
        );
    }
    for id in [expired, ends_now] {
        let d = store.get_decision(id).await.expect("get").expect("found");
        assert_eq!(d.revoked_at, None);
        assert!(!d.is_active(now));
    }

    // Earlier, the expired one was active.
    let earlier = DecisionQuery {
        active_at: Some(t(-60)),
        target: Some(net("192.0.2.2/32")),
        ..DecisionQuery::default()
    };
    assert_eq!(ids(store, earlier).await, vec![expired]);
}

/// Revoking an address lifts its active bans only: not other addresses,
/// not expired bans, not a wider prefix containing it.
pub async fn revoke_by_address<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let now = t(30);
    let first = insert(store, &ban("192.0.2.7/32", t(0))).await;
    let second = insert(store, &ban("192.0.2.7/32", t(1))).await;
    let expired = insert(store, &ban("192.0.2.7/32", t(-90))).await;
    let other = insert(store, &ban("192.0.2.8/32", t(0))).await;
    let covering = insert(store, &ban("192.0.2.0/24", t(0))).await;

    let lifted = store
        .revoke(Some(&net("192.0.2.7/32")), "alice", now)
        .await
        .expect("revoke");
    assert_eq!(lifted, vec![first, second]);
    for id in [first, second] {
        let d = store.get_decision(id).await.expect("get").expect("found");
        assert_eq!(d.revoked_at, Some(now));
        assert_eq!(d.revoked_by.as_deref(), Some("alice"));
        assert!(!d.is_active(now));
    }
    for id in [expired, other, covering] {
        let d = store.get_decision(id).await.expect("get").expect("found");
        assert_eq!(d.revoked_at, None);
        assert_eq!(d.revoked_by, None);
    }
    // Nothing left to lift.
    assert_eq!(
        store
            .revoke(Some(&net("192.0.2.7/32")), "alice", now)
            .await
            .expect("revoke"),
        Vec::<i64>::new()
    );
}

/// Revoking a prefix lifts the bans inside it and on it, not wider ones,
/// not outside ones, not the other family.
pub async fn revoke_by_covering_prefix<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let now = t(30);
    let a = insert(store, &ban("192.0.2.7/32", t(0))).await;
    let b = insert(store, &ban("192.0.2.200/32", t(0))).await;
    let same = insert(store, &ban("192.0.2.0/24", t(0))).await;
    let inner = insert(store, &ban("192.0.2.128/25", t(0))).await;
    let wider = insert(store, &ban("192.0.0.0/16", t(0))).await;
    let outside = insert(store, &ban("192.0.3.1/32", t(0))).await;
    let v6 = insert(store, &ban("2001:db8::1/128", t(0))).await;
    let v6_inside = insert(store, &ban("2001:db8:0:1::5/128", t(0))).await;

    let lifted = store
        .revoke(Some(&net("192.0.2.0/24")), "bob", now)
        .await
        .expect("revoke");
    assert_eq!(lifted, vec![a, b, same, inner]);

    let lifted = store
        .revoke(Some(&net("2001:db8::/48")), "bob", now)
        .await
        .expect("revoke");
    assert_eq!(lifted, vec![v6, v6_inside]);

    let active = DecisionQuery {
        active_at: Some(now),
        ..DecisionQuery::default()
    };
    assert_eq!(sorted(ids(store, active).await), vec![wider, outside]);
}

/// Revoking with no target lifts every active ban (dry-run ones too) and
/// nothing else.
pub async fn revoke_all<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let now = t(30);
    let v4 = insert(store, &ban("192.0.2.7/32", t(0))).await;
    let v6 = insert(store, &ban("2001:db8::/64", t(0))).await;
    let mut dry = ban("198.51.100.1/32", t(0));
    dry.dry_run = true;
    let dry = insert(store, &dry).await;
    let expired = insert(store, &ban("192.0.2.9/32", t(-90))).await;
    let mut log = ban("192.0.2.10/32", t(0));
    log.action = Action::Log;
    let log = insert(store, &log).await;

    let lifted = store.revoke(None, "operator", now).await.expect("revoke");
    assert_eq!(lifted, vec![v4, v6, dry]);
    for id in [expired, log] {
        let d = store.get_decision(id).await.expect("get").expect("found");
        assert_eq!(d.revoked_at, None);
    }
    assert_eq!(
        store.revoke(None, "operator", now).await.expect("revoke"),
        Vec::<i64>::new()
    );
    let changes = store.changes_since(0, 100).await.expect("changes_since");
    let revoked: Vec<i64> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Revoked)
        .map(|c| c.decision.id)
        .collect();
    assert_eq!(revoked, vec![v4, v6, dry]);
}

/// `revoke_id` lifts once: the second call, and a call for an unknown id,
/// return false and log nothing.
pub async fn revoke_id_twice<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let id = insert(store, &ban("192.0.2.7/32", t(0))).await;
    assert!(store.revoke_id(id, "alice", t(1)).await.expect("revoke_id"));
    assert!(!store.revoke_id(id, "bob", t(2)).await.expect("revoke_id"));
    assert!(
        !store
            .revoke_id(id + 1000, "bob", t(2))
            .await
            .expect("revoke_id")
    );

    let d = store.get_decision(id).await.expect("get").expect("found");
    assert_eq!(d.revoked_at, Some(t(1)));
    assert_eq!(d.revoked_by.as_deref(), Some("alice"));

    let changes = store.changes_since(0, 100).await.expect("changes_since");
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![ChangeKind::Added, ChangeKind::Revoked]);
}

/// The change log: oldest first, strictly increasing seqs, `Added` then
/// `Revoked` with the decision as it was after each change; a cursor
/// returns only later changes; `limit` pages; `latest_cursor` is the last seq.
pub async fn changes_since_orders_and_pages<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    assert_eq!(store.latest_cursor().await.expect("latest_cursor"), 0);
    assert!(
        store
            .changes_since(0, 10)
            .await
            .expect("changes_since")
            .is_empty()
    );

    let a = insert(store, &ban("192.0.2.1/32", t(0))).await;
    let b = insert(store, &ban("192.0.2.2/32", t(1))).await;
    assert!(store.revoke_id(a, "alice", t(2)).await.expect("revoke_id"));
    let c = insert(store, &ban("2001:db8::1/128", t(3))).await;

    let all = store.changes_since(0, 100).await.expect("changes_since");
    let summary: Vec<(ChangeKind, i64)> = all.iter().map(|c| (c.kind, c.decision.id)).collect();
    assert_eq!(
        summary,
        vec![
            (ChangeKind::Added, a),
            (ChangeKind::Added, b),
            (ChangeKind::Revoked, a),
            (ChangeKind::Added, c),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(all[0].seq > 0);

    // The decision as it was right after the change.
    assert_eq!(all[0].decision.revoked_at, None);
    assert_eq!(all[0].decision.revoked_by, None);
    assert_eq!(all[2].decision.revoked_at, Some(t(2)));
    assert_eq!(all[2].decision.revoked_by.as_deref(), Some("alice"));
    assert_eq!(all[1].decision.decision.target, net("192.0.2.2/32"));
    assert_eq!(all[1].decision.decision.id, Some(b));

    // Cursor: strictly after.
    let after_first = store
        .changes_since(all[0].seq, 100)
        .await
        .expect("changes_since");
    assert_eq!(after_first, all[1..].to_vec());
    // Paging by limit reassembles the log.
    let mut paged = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store.changes_since(cursor, 3).await.expect("changes_since");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(
        store
            .changes_since(0, 0)
            .await
            .expect("changes_since")
            .is_empty()
    );

    let latest = store.latest_cursor().await.expect("latest_cursor");
    assert_eq!(latest, all[3].seq);
    assert!(
        store
            .changes_since(latest, 10)
            .await
            .expect("changes_since")
            .is_empty()
    );

    // A follower at the latest cursor sees exactly the next change.
    let d = insert(store, &ban("192.0.2.4/32", t(4))).await;
    let next = store
        .changes_since(latest, 10)
        .await
        .expect("changes_since");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].kind, ChangeKind::Added);
    assert_eq!(next[0].decision.id, d);
    assert_eq!(
        store.latest_cursor().await.expect("latest_cursor"),
        next[0].seq
    );
}

/// `ban_history` lists bans made at or after `since`, dry-run and revoked
/// ones included, oldest first; no other actions.
pub async fn ban_history_window<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    insert(store, &ban("192.0.2.1/32", t(-61))).await;
    insert(store, &ban("192.0.2.2/32", t(-60))).await;
    let mut dry = ban("192.0.2.3/32", t(-30));
    dry.dry_run = true;
    insert(store, &dry).await;
    let revoked = insert(store, &ban("2001:db8::/64", t(-10))).await;
    assert!(
        store
            .revoke_id(revoked, "alice", t(-5))
            .await
            .expect("revoke_id")
    );
    let mut log = ban("192.0.2.5/32", t(-5));
    log.action = Action::Log;
    insert(store, &log).await;
    let mut unban = ban("192.0.2.2/32", t(-4));
    unban.action = Action::Unban;
    insert(store, &unban).await;

    let history = store.ban_history(t(-60)).await.expect("ban_history");
    assert_eq!(
        history,
        vec![
            (net("192.0.2.2/32"), t(-60)),
            (net("192.0.2.3/32"), t(-30)),
            (net("2001:db8::/64"), t(-10)),
        ]
    );
    assert!(
        store
            .ban_history(t(0))
            .await
            .expect("ban_history")
            .is_empty()
    );
    assert_eq!(
        store
            .ban_history(t(-1000))
            .await
            .expect("ban_history")
            .len(),
        4
    );
}

/// Eight tasks inserting at once: every decision gets its own id and one
/// `Added` change, and seqs are strictly increasing.
pub async fn concurrent_inserts_lose_nothing<S: DecisionStore + FindingStore + ?Sized + 'static>(
    store: Arc<S>,
) {
    const TASKS: u8 = 8;
    const EACH: u8 = 10;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                let mut d = ban(&format!("10.{task}.0.{i}/32"), t(i64::from(i)));
                d.findings = vec![finding(&format!("10.{task}.0.{i}/32"), "x", t(0))];
                ids.push(store.insert_decision(&d).await.expect("insert_decision"));
            }
            ids
        });
    }
    let mut inserted = HashSet::new();
    while let Some(ids) = tasks.join_next().await {
        for id in ids.expect("task") {
            assert!(inserted.insert(id), "id {id} given twice");
        }
    }
    let total = usize::from(TASKS) * usize::from(EACH);
    assert_eq!(inserted.len(), total);

    let changes = store.changes_since(0, 1000).await.expect("changes_since");
    assert_eq!(changes.len(), total);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(changes.iter().all(|c| c.kind == ChangeKind::Added));
    let logged: HashSet<i64> = changes.iter().map(|c| c.decision.id).collect();
    assert_eq!(logged, inserted);
    assert_eq!(
        store.latest_cursor().await.expect("latest_cursor"),
        changes[total - 1].seq
    );
    assert_eq!(
        store
            .recent_findings(1000)
            .await
            .expect("recent_findings")
            .len(),
        total
    );
}

/// Blocked networks sum their enforced bans (not dry runs, not other
/// actions): first and latest ban, count, the mean score of the findings
/// behind them, and whether one is in force; latest ban first.
pub async fn blocked_ips_sums_bans<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let scored = |subject: &str, score: f64, at: DateTime<Utc>| {
        let mut f = finding(subject, "ssh-bruteforce", at);
        f.score = score;
        f
    };
    // X: two bans (the second revoked), findings 0.5, 0.25 and 0.75.
    let mut first = ban("192.0.2.7/32", t(0));
    first.until = Some(t(60));
    first.findings = vec![scored("192.0.2.7/32", 0.5, t(0))];
    store.insert_decision(&first).await.expect("ban");
    let mut second = ban("192.0.2.7/32", t(10));
    second.findings = vec![
        scored("192.0.2.7/32", 0.25, t(10)),
        scored("192.0.2.7/32", 0.75, t(10)),
    ];
    let second_id = store.insert_decision(&second).await.expect("ban");
    assert!(
        store
            .revoke_id(second_id, "op", t(20))
            .await
            .expect("revoke")
    );
    // Not counted: a dry run and a log decision on X.
    let mut dry = ban("192.0.2.7/32", t(30));
    dry.dry_run = true;
    dry.findings = vec![scored("192.0.2.7/32", 0.0, t(30))];
    store.insert_decision(&dry).await.expect("dry run");
    let mut log = ban("192.0.2.7/32", t(31));
    log.action = Action::Log;
    store.insert_decision(&log).await.expect("log");
    // Y: one ban, expired by t(55), no findings.
    let mut y = ban("198.51.100.0/24", t(5));
    y.until = Some(t(15));
    store.insert_decision(&y).await.expect("ban");
    // Z: one ban without end.
    let mut z = ban("2001:db8::/64", t(50));
    z.until = None;
    store.insert_decision(&z).await.expect("ban");
    // Only a dry run: not listed.
    let mut only_dry = ban("203.0.113.1/32", t(52));
    only_dry.dry_run = true;
    store.insert_decision(&only_dry).await.expect("dry run");

    let listed = store.blocked_ips(t(55), 10).await.expect("blocked");
    assert_eq!(
        listed,
        vec![
            BlockedIp {
                target: net("2001:db8::/64"),
                first_seen: t(50),
                last_blocked: t(50),
                count: 1,
                avg_score: 0.0,
                active: true,
            },
            BlockedIp {
                target: net("192.0.2.7/32"),
                first_seen: t(0),
                last_blocked: t(10),
                count: 2,
                avg_score: 0.5,
                active: true,
            },
            BlockedIp {
                target: net("198.51.100.0/24"),
                first_seen: t(5),
                last_blocked: t(5),
                count: 1,
                avg_score: 0.0,
                active: false,
            },
        ]
    );
    let later = store.blocked_ips(t(60), 2).await.expect("blocked");
    assert_eq!(later.len(), 2);
    assert!(later[0].active);
    assert!(
        !later[1].active,
        "first ban expired at t(60), second revoked"
    );
    assert!(
        store
            .blocked_ips(t(60), 0)
            .await
            .expect("blocked")
            .is_empty()
    );
}

/// A decision imported from the fleet keeps the server's id; one made here
/// has none. Both reach the change log like any other.
pub async fn import_keeps_the_remote_id<S: DecisionStore + ?Sized + 'static>(store: Arc<S>) {
    let store = &*store;
    let own = insert(store, &ban("192.0.2.1/32", t(0))).await;
    let imported = store
        .import_decision(&ban("192.0.2.2/32", t(1)), 4711)
        .await
        .expect("import_decision");
    let get = |id| async move {
        store
            .get_decision(id)
            .await
            .expect("get_decision")
            .expect("stored")
    };
    assert_eq!(get(own).await.remote_id, None);
    assert_eq!(get(imported).await.remote_id, Some(4711));
    let changes = store.changes_since(0, 10).await.expect("changes_since");
    let seen: Vec<(i64, Option<i64>)> = changes
        .iter()
        .map(|c| (c.decision.id, c.decision.remote_id))
        .collect();
    assert_eq!(seen, vec![(own, None), (imported, Some(4711))]);
}
