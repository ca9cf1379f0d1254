//! One test suite for every [`Store`] backend.
//!
//! Each case is a `pub async fn(Arc<dyn Store>)` that expects an empty
//! store and panics on failure. [`store_test_suite!`](crate::store_test_suite)
//! turns them into one `#[tokio::test]` each, with a fresh store per case:
//!
//! ```text
//! async fn fresh() -> rampart_store::test_suite::Fixture {
//!     let store = rampart_store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
//!     rampart_store::test_suite::Fixture::new(store)
//! }
//! rampart_store::store_test_suite!(fresh());
//! ```
//!
//! The crate using the macro needs `tokio` (with `macros` and
//! `rt-multi-thread`) among its dependencies. Times used here are whole
//! milliseconds, the precision every backend must keep.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use rampart_core::{Action, Decision, Evidence, Finding, Level, Origin, Subject};

use crate::{
    ChangeKind, DecisionQuery, Position, Prediction, RequestRecord, Role, Store, StoreError,
    StoredDecision,
};

/// A store under test and whatever must outlive it (a temporary
/// directory, a scratch database to drop).
pub struct Fixture {
    store: Arc<dyn Store>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture with nothing else to keep alive.
    pub fn new(store: impl Store + 'static) -> Self {
        Self {
            store: Arc::new(store),
            _guard: None,
        }
    }

    /// Keeps `guard` alive as long as the fixture (dropped after the store's last use).
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }
}

/// What a suite factory may give: a fixture, or `None` to skip the case.
pub trait MaybeFixture {
    /// The fixture, if there is one.
    fn fixture(self) -> Option<Fixture>;
}

impl MaybeFixture for Fixture {
    fn fixture(self) -> Option<Fixture> {
        Some(self)
    }
}

impl MaybeFixture for Option<Fixture> {
    fn fixture(self) -> Option<Fixture> {
        self
    }
}

/// Generates one `#[tokio::test]` per case of [`test_suite`](crate::test_suite).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::test_suite::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! store_test_suite {
    ($factory:expr) => {
        $crate::store_test_suite!(@cases $factory;
            insert_get_round_trip,
            query_filters_by_target,
            query_filters_by_scenario,
            query_filters_by_dry_run,
            query_is_newest_first_with_limit,
            active_expired_and_revoked,
            revoke_by_address,
            revoke_by_covering_prefix,
            revoke_all,
            revoke_id_twice,
            changes_since_orders_and_pages,
            ban_history_window,
            findings_with_and_without_decision,
            positions_upsert_and_load,
            concurrent_inserts_lose_nothing,
            request_log_round_trip_and_filter,
            users_and_tokens,
            retention_purges_old_rows_only,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                // A factory may give `None` to skip (a server that is absent outside CI).
                let Some(fixture) = $crate::test_suite::MaybeFixture::fixture($factory.await) else {
                    return;
                };
                $crate::test_suite::$case(fixture.store()).await;
            }
        )*
    };
}

/// A fixed instant plus `minutes` (whole milliseconds).
pub fn t(minutes: i64) -> DateTime<Utc> {
    let base = DateTime::from_timestamp_millis(1_700_000_000_123).expect("valid time");
    base + Duration::minutes(minutes)
}

fn net(text: &str) -> IpNet {
    text.parse().expect("valid network")
}

/// A finding with every field set.
pub fn finding(subject: &str, label: &str, time: DateTime<Utc>) -> Finding {
    Finding {
        time,
        subject: Subject::Net(net(subject)),
        label: label.to_owned(),
        score: 0.75,
        level: Level::High,
        evidence: Evidence {
            count: 6,
            first_seen: Some(time - Duration::seconds(123)),
            last_seen: Some(time),
            first_line: Some("Failed password for root from 192.0.2.7 port 22".to_owned()),
            last_line: Some("Failed password for admin from 192.0.2.7 port 22".to_owned()),
            distinct: vec!["root".to_owned(), "admin".to_owned()],
            summary: "6 auth_failure in 2m3s, threshold 5 in 10m".to_owned(),
        },
    }
}

/// A ban of `target` by scenario `ssh-bruteforce`, made at `at` for an hour.
pub fn ban(target: &str, at: DateTime<Utc>) -> Decision {
    Decision {
        id: None,
        action: Action::Ban,
        target: net(target),
        at,
        until: Some(at + Duration::hours(1)),
        reason: format!("ssh-bruteforce from {target}"),
        origin: Origin::Scenario("ssh-bruteforce".to_owned()),
        dry_run: false,
        escalation: 0,
        findings: Vec::new(),
    }
}

async fn insert(store: &dyn Store, decision: &Decision) -> i64 {
    store
        .insert_decision(decision)
        .await
        .expect("insert_decision")
}

async fn ids(store: &dyn Store, query: DecisionQuery) -> Vec<i64> {
    store
        .query_decisions(&query)
        .await
        .expect("query_decisions")
        .iter()
        .map(|d| d.id)
        .collect()
}

fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

/// Every field of a decision survives insert and get, for IPv4 and IPv6
/// addresses and prefixes; its findings land in the findings table, linked.
pub async fn insert_get_round_trip(store: Arc<dyn Store>) {
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
pub async fn query_filters_by_target(store: Arc<dyn Store>) {
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
pub async fn query_filters_by_scenario(store: Arc<dyn Store>) {
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
pub async fn query_filters_by_dry_run(store: Arc<dyn Store>) {
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
pub async fn query_is_newest_first_with_limit(store: Arc<dyn Store>) {
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
pub async fn active_expired_and_revoked(store: Arc<dyn Store>) {
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
pub async fn revoke_by_address(store: Arc<dyn Store>) {
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
pub async fn revoke_by_covering_prefix(store: Arc<dyn Store>) {
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
pub async fn revoke_all(store: Arc<dyn Store>) {
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
pub async fn revoke_id_twice(store: Arc<dyn Store>) {
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
pub async fn changes_since_orders_and_pages(store: Arc<dyn Store>) {
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
pub async fn ban_history_window(store: Arc<dyn Store>) {
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

/// A finding without a decision is stored with its note; recent findings
/// are newest first, limited, and include those stored with decisions.
pub async fn findings_with_and_without_decision(store: Arc<dyn Store>) {
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

/// Positions are saved per source and path, replaced on save, and keep
/// full u64 values.
pub async fn positions_upsert_and_load(store: Arc<dyn Store>) {
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

/// Eight tasks inserting at once: every decision gets its own id and one
/// `Added` change, and seqs are strictly increasing.
pub async fn concurrent_inserts_lose_nothing(store: Arc<dyn Store>) {
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

/// Request-log records come back whole, newest first, filtered by client;
/// a batch larger than one statement's worth is stored completely.
pub async fn request_log_round_trip_and_filter(store: Arc<dyn Store>) {
    let record = |i: u32, client: &str| RequestRecord {
        time: t(i64::from(i)),
        gateway: "gw-1".into(),
        request_id: format!("req-{i}"),
        client: client.parse().expect("address"),
        method: if i.is_multiple_of(2) { "GET" } else { "POST" }.into(),
        path: format!("/p/{i}"),
        user_agent: (i.is_multiple_of(3)).then(|| "curl/8".to_owned()),
        status: if i.is_multiple_of(5) { 429 } else { 200 },
        request_bytes: u64::from(i) * 10,
        response_bytes: u64::MAX - u64::from(i),
        latency_ms: f64::from(i) / 4.0,
        score: f64::from(i % 10) / 10.0,
        prediction: if i.is_multiple_of(5) {
            Prediction::Ddos
        } else {
            Prediction::Normal
        },
        blocked: i.is_multiple_of(5),
        reason: (i.is_multiple_of(5)).then(|| "flood".to_owned()),
        backend: (!i.is_multiple_of(5)).then(|| "127.0.0.1:3000".to_owned()),
    };
    let batch: Vec<RequestRecord> = (0..2500)
        .map(|i| {
            record(
                i,
                if i % 2 == 0 {
                    "192.0.2.1"
                } else {
                    "2001:db8::1"
                },
            )
        })
        .collect();
    store
        .insert_requests(&batch)
        .await
        .expect("insert_requests");
    store.insert_requests(&[]).await.expect("empty batch");

    let all = store.recent_requests(None, 10_000).await.expect("recent");
    assert_eq!(all.len(), batch.len());
    assert_eq!(all[0], batch[2499], "newest first, every field kept");
    assert_eq!(all[2499], batch[0]);

    let v6 = store
        .recent_requests(Some("2001:db8::1".parse().expect("address")), 3)
        .await
        .expect("recent by client");
    assert_eq!(v6.len(), 3);
    assert!(v6.iter().all(|r| r.client.is_ipv6()));
    assert_eq!(v6[0].request_id, "req-2499");
}

/// Users: created once per name, updated, listed by name. Tokens: found by
/// their secret's hash, revoked once, names unique.
pub async fn users_and_tokens(store: Arc<dyn Store>) {
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

/// Retention deletes request-log records and decision-less findings older
/// than the cut-off, and nothing else.
pub async fn retention_purges_old_rows_only(store: Arc<dyn Store>) {
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
