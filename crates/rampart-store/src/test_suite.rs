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
    ActionRecord, AgentRecord, BlockedIp, ChangeKind, DecisionQuery, EventRecord, HourCount,
    Position, Prediction, RequestFilter, RequestRecord, RequestStats, Role, Store, StoreError,
    StoredDecision, UploadBatch, WhitelistEntry,
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
            request_stats_over_rollups,
            request_rollups_are_purged,
            query_requests_filters_and_pages,
            events_agents_actions_uploads,
            whitelist_add_list_delete,
            findings_after_orders_by_id,
            blocked_ips_sums_bans,
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

// ---- the central server's tables ----

/// The first millisecond of an hour, and that hour plus `minutes` and `seconds`.
fn hour0_plus(minutes: i64, seconds: i64) -> DateTime<Utc> {
    // 1_699_999_200_000 is a whole hour (472_222 × 3_600_000).
    DateTime::from_timestamp_millis(1_699_999_200_000).expect("valid time")
        + Duration::minutes(minutes)
        + Duration::seconds(seconds)
}

/// A request-log record with the fields statistics read; the rest derived.
fn request(
    id: &str,
    time: DateTime<Utc>,
    client: &str,
    path: &str,
    prediction: Prediction,
    blocked: bool,
    score: f64,
) -> RequestRecord {
    RequestRecord {
        time,
        gateway: "gw-1".into(),
        request_id: id.into(),
        client: client.parse().expect("address"),
        method: "GET".into(),
        path: path.into(),
        user_agent: None,
        status: if blocked { 403 } else { 200 },
        request_bytes: 0,
        response_bytes: 0,
        latency_ms: 1.0,
        score,
        prediction,
        blocked,
        reason: None,
        backend: None,
    }
}

const IP_A: &str = "192.0.2.1";
const IP_B: &str = "192.0.2.2";
const IP_C: &str = "192.0.2.3";
const IP_D: &str = "2001:db8::9";

/// Ten records over two hours, r1…r10; scores are exact binary fractions.
/// r1–r5 through gateway gw-1, r6–r10 through gw-2.
fn stats_records() -> Vec<RequestRecord> {
    use Prediction::{Attack, Blocked, Ddos, Normal};
    let mut records = vec![
        request("r1", hour0_plus(5, 0), IP_A, "/", Normal, false, 0.0),
        request("r2", hour0_plus(10, 10), IP_B, "/login", Attack, true, 0.5),
        request("r3", hour0_plus(10, 30), IP_B, "/login", Attack, true, 0.5),
        request("r4", hour0_plus(10, 50), IP_A, "/", Normal, false, 0.25),
        request("r5", hour0_plus(11, 0), IP_C, "/api", Ddos, false, 0.75),
        request("r6", hour0_plus(11, 1), IP_C, "/api", Ddos, true, 0.75),
        request("r7", hour0_plus(70, 0), IP_C, "/api", Ddos, true, 1.0),
        request("r8", hour0_plus(70, 0), IP_B, "/admin", Attack, false, 0.5),
        request("r9", hour0_plus(75, 0), IP_D, "/", Blocked, true, 0.25),
        request("r10", hour0_plus(75, 0), IP_A, "/", Normal, false, 0.0),
    ];
    for r in &mut records[5..] {
        r.gateway = "gw-2".into();
    }
    records
}

fn hour_count(hour: i64, requests: u64, blocked: u64) -> HourCount {
    HourCount {
        hour: hour0_plus(hour * 60, 0),
        requests,
        blocked,
    }
}

/// (ip, count, avg_confidence) of top_ips, averages rounded to 1e-9.
fn ip_counts(stats: &RequestStats) -> Vec<(String, u64, f64)> {
    stats
        .top_ips
        .iter()
        .map(|c| {
            (
                c.ip.to_string(),
                c.count,
                (c.avg_confidence * 1e9).round() / 1e9,
            )
        })
        .collect()
}

fn path_counts(stats: &RequestStats) -> Vec<(String, u64)> {
    stats
        .top_paths
        .iter()
        .map(|p| (p.path.clone(), p.count))
        .collect()
}

async fn stats(store: &dyn Store, since: DateTime<Utc>, top: u32) -> RequestStats {
    store
        .request_stats(since, top)
        .await
        .expect("request_stats")
}

/// Statistics are exact to the millisecond (a window starting inside a
/// minute counts that minute's records from the window's start), per hour
/// over the hours the window touches, the same whether a batch is written
/// at once or in parts; top lists rank non-NORMAL requests with ties in byte
/// order, for a window holding every stored hour, some, or few.
pub async fn request_stats_over_rollups(store: Arc<dyn Store>) {
    use Prediction::{Attack, Blocked, Ddos, Normal};
    let store = &*store;
    let empty = stats(store, hour0_plus(0, 0), 10).await;
    assert_eq!(empty, RequestStats::default());

    let records = stats_records();
    // Two batches sharing minutes and hours: the rollups add up.
    store.insert_requests(&records[..5]).await.expect("insert");
    store.insert_requests(&records[5..]).await.expect("insert");

    store
        .insert_finding(
            &finding("192.0.2.2/32", "ssh", hour0_plus(10, 0)),
            "dry run",
        )
        .await
        .expect("finding");
    store
        .insert_finding(
            &finding("192.0.2.2/32", "ssh", hour0_plus(20, 0)),
            "dry run",
        )
        .await
        .expect("finding");
    for minute in [30, 31, 32] {
        store
            .insert_finding(
                &finding("192.0.2.3/32", "http-probe", hour0_plus(minute, 0)),
                "whitelisted",
            )
            .await
            .expect("finding");
    }
    let mut decision = ban("192.0.2.2/32", hour0_plus(40, 0));
    decision.findings = vec![finding("192.0.2.2/32", "ssh", hour0_plus(40, 0))];
    store.insert_decision(&decision).await.expect("decision");

    // From the middle of minute 10: r3 (at the very start) to r10.
    let s = stats(store, hour0_plus(10, 30), 2).await;
    assert_eq!(s.total, 8);
    assert_eq!(s.blocked, 4);
    assert_eq!(s.score_sum, 4.0);
    assert_eq!(
        s.by_prediction,
        vec![(Normal, 2), (Ddos, 3), (Attack, 2), (Blocked, 1)]
    );
    assert_eq!(
        s.by_hour,
        vec![hour_count(0, 6, 3), hour_count(1, 4, 2)],
        "whole hours"
    );
    assert_eq!(
        ip_counts(&s),
        vec![(IP_B.into(), 3, 0.5), (IP_C.into(), 3, 0.833_333_333)],
        "whole hours, ties by address text"
    );
    assert_eq!(
        path_counts(&s),
        vec![("/api".into(), 3), ("/login".into(), 2)]
    );
    assert_eq!(
        s.by_scenario,
        vec![("http-probe".into(), 3), ("ssh".into(), 2)]
    );
    let s = stats(store, hour0_plus(10, 30), 10).await;
    assert_eq!(
        path_counts(&s),
        vec![
            ("/api".into(), 3),
            ("/login".into(), 2),
            ("/".into(), 1),
            ("/admin".into(), 1)
        ]
    );
    assert_eq!(s.top_ips.len(), 3);

    // One millisecond later r3 is out; from minute 11 exactly, r2–r4 too.
    let s = stats(store, hour0_plus(10, 30) + Duration::milliseconds(1), 10).await;
    assert_eq!((s.total, s.blocked), (7, 3));
    let s = stats(store, hour0_plus(11, 0), 10).await;
    assert_eq!((s.total, s.blocked, s.score_sum), (6, 3, 3.25));
    assert_eq!(
        s.by_prediction,
        vec![(Normal, 1), (Ddos, 3), (Attack, 1), (Blocked, 1)]
    );

    // The second hour only: hour 0 is subtracted from the totals.
    let s = stats(store, hour0_plus(60, 0), 10).await;
    assert_eq!((s.total, s.blocked, s.score_sum), (4, 2, 1.75));
    assert_eq!(s.by_hour, vec![hour_count(1, 4, 2)]);
    assert_eq!(
        ip_counts(&s),
        vec![
            (IP_B.into(), 1, 0.5),
            (IP_C.into(), 1, 1.0),
            (IP_D.into(), 1, 0.25)
        ]
    );
    assert_eq!(
        path_counts(&s),
        vec![("/".into(), 1), ("/admin".into(), 1), ("/api".into(), 1)]
    );
    assert!(s.by_scenario.is_empty());

    // A window after every record: nothing.
    let s = stats(store, hour0_plus(180, 0), 10).await;
    assert_eq!(s, RequestStats::default());

    // Three hours later, a window of the last hour (most stored hours lie
    // before it).
    store
        .insert_requests(&[request(
            "r11",
            hour0_plus(185, 0),
            IP_D,
            "/x",
            Attack,
            false,
            0.5,
        )])
        .await
        .expect("insert");
    let s = stats(store, hour0_plus(181, 0), 10).await;
    assert_eq!((s.total, s.blocked), (1, 0));
    assert_eq!(s.by_hour, vec![hour_count(3, 1, 0)]);
    assert_eq!(ip_counts(&s), vec![(IP_D.into(), 1, 0.5)]);
    assert_eq!(path_counts(&s), vec![("/x".into(), 1)]);
}

/// Purging requests cuts the rollups too: whole minutes and hours before
/// the cut-off go, the minute it cuts through loses exactly the purged
/// records, the hour it cuts through stays whole.
pub async fn request_rollups_are_purged(store: Arc<dyn Store>) {
    use Prediction::{Attack, Blocked, Normal};
    let store = &*store;
    store
        .insert_requests(&stats_records())
        .await
        .expect("insert");
    store
        .insert_requests(&[request(
            "r11",
            hour0_plus(185, 0),
            IP_D,
            "/x",
            Attack,
            false,
            0.5,
        )])
        .await
        .expect("insert");

    // In the middle of minute 70: r1–r8 go (r7 and r8 from that minute).
    assert_eq!(
        store
            .purge_requests(hour0_plus(70, 30))
            .await
            .expect("purge"),
        8
    );
    let s = stats(store, hour0_plus(-300, 0), 10).await;
    assert_eq!((s.total, s.blocked, s.score_sum), (3, 1, 0.75));
    assert_eq!(
        s.by_prediction,
        vec![(Normal, 1), (Attack, 1), (Blocked, 1)]
    );
    assert_eq!(s.by_hour, vec![hour_count(1, 2, 1), hour_count(3, 1, 0)]);
    // Hour 1 stays whole (r7, r8 still ranked), hour 0 is gone.
    assert_eq!(
        ip_counts(&s),
        vec![
            (IP_D.into(), 2, 0.375),
            (IP_B.into(), 1, 0.5),
            (IP_C.into(), 1, 1.0)
        ]
    );
    assert_eq!(
        path_counts(&s),
        vec![
            ("/".into(), 1),
            ("/admin".into(), 1),
            ("/api".into(), 1),
            ("/x".into(), 1)
        ]
    );
    let page = store
        .query_requests(&RequestFilter::default(), 0, 10)
        .await
        .expect("query");
    assert_eq!(page.total, 3, "the minute rollup matches the log");
    let status = RequestFilter {
        status: Some(403),
        ..RequestFilter::default()
    };
    assert_eq!(page_ids(store, status, 0, 10).await, (1, vec!["r9".into()]));
    let gateway = RequestFilter {
        gateway: Some("gw-2".into()),
        since: Some(hour0_plus(-300, 0)),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, gateway, 0, 10).await,
        (2, vec!["r10".into(), "r9".into()])
    );

    // Everything.
    assert_eq!(
        store
            .purge_requests(hour0_plus(600, 0))
            .await
            .expect("purge"),
        3
    );
    let s = stats(store, hour0_plus(-300, 0), 10).await;
    assert_eq!(s, RequestStats::default());
    assert_eq!(
        store
            .query_requests(&RequestFilter::default(), 0, 10)
            .await
            .expect("query")
            .total,
        0
    );
}

async fn page_ids(
    store: &dyn Store,
    filter: RequestFilter,
    offset: u64,
    limit: u32,
) -> (u64, Vec<String>) {
    let page = store
        .query_requests(&filter, offset, limit)
        .await
        .expect("query_requests");
    let ids = page
        .requests
        .into_iter()
        .map(|r| r.record.request_id)
        .collect();
    (page.total, ids)
}

/// Request-log queries: every filter, totals of all pages (from the rollup
/// or by counting), pages newest first (ties by id), whole records.
pub async fn query_requests_filters_and_pages(store: Arc<dyn Store>) {
    let store = &*store;
    let records = stats_records();
    store.insert_requests(&records).await.expect("insert");
    let since = Some(hour0_plus(10, 30));
    let window = RequestFilter {
        since,
        ..RequestFilter::default()
    };

    let page = store.query_requests(&window, 0, 3).await.expect("query");
    assert_eq!(page.total, 8);
    assert_eq!(page.requests.len(), 3);
    assert_eq!(page.requests[0].record, records[9], "whole record");
    assert!(page.requests[0].id > page.requests[1].id);
    assert_eq!(
        page_ids(store, window.clone(), 3, 3).await,
        (8, vec!["r7".into(), "r6".into(), "r5".into()])
    );
    assert_eq!(
        page_ids(store, window.clone(), 6, 10).await,
        (8, vec!["r4".into(), "r3".into()])
    );
    assert_eq!(page_ids(store, window.clone(), 100, 10).await, (8, vec![]));
    assert_eq!(
        page_ids(store, RequestFilter::default(), 0, 0).await,
        (10, vec![])
    );

    let ddos = RequestFilter {
        prediction: Some(Prediction::Ddos),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, ddos, 1, 2).await,
        (3, vec!["r6".into(), "r5".into()])
    );
    let blocked = RequestFilter {
        blocked: Some(true),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, blocked, 0, 10).await,
        (4, vec!["r9".into(), "r7".into(), "r6".into(), "r3".into()])
    );
    let normal_forwarded = RequestFilter {
        blocked: Some(false),
        prediction: Some(Prediction::Normal),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, normal_forwarded, 0, 10).await,
        (2, vec!["r10".into(), "r4".into()])
    );
    let attack_forwarded = RequestFilter {
        blocked: Some(false),
        prediction: Some(Prediction::Attack),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, attack_forwarded, 0, 10).await,
        (1, vec!["r8".into()])
    );

    let client_b = RequestFilter {
        client: Some(IP_B.parse().expect("address")),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, client_b.clone(), 0, 10).await,
        (3, vec!["r8".into(), "r3".into(), "r2".into()])
    );
    assert_eq!(
        page_ids(store, RequestFilter { since, ..client_b }, 0, 10).await,
        (2, vec!["r8".into(), "r3".into()])
    );
    let client_d = RequestFilter {
        client: Some(IP_D.parse().expect("address")),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, client_d, 0, 10).await,
        (1, vec!["r9".into()])
    );

    let prefix = |p: &str| RequestFilter {
        path_prefix: Some(p.to_owned()),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, prefix("/a"), 0, 10).await,
        (4, vec!["r8".into(), "r7".into(), "r6".into(), "r5".into()])
    );
    assert_eq!(page_ids(store, prefix("/api"), 0, 10).await.0, 3);
    assert_eq!(page_ids(store, prefix("/"), 0, 10).await.0, 10);
    assert_eq!(
        page_ids(store, prefix("/%"), 0, 10).await.0,
        0,
        "no pattern"
    );
    assert_eq!(page_ids(store, prefix("/_dmin"), 0, 10).await.0, 0);
    assert_eq!(page_ids(store, prefix("/api/"), 0, 10).await.0, 0);

    let status = RequestFilter {
        status: Some(403),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, status, 0, 2).await,
        (5, vec!["r9".into(), "r7".into()])
    );
    let gateway = RequestFilter {
        gateway: Some("gw-2".into()),
        since: Some(hour0_plus(70, 0)),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, gateway, 0, 10).await,
        (4, vec!["r10".into(), "r9".into(), "r8".into(), "r7".into()])
    );
    // Status and gateway totals from the window's middle of minute 10.
    let status_window = RequestFilter {
        status: Some(403),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, status_window, 3, 10).await,
        (4, vec!["r3".into()])
    );
    let gateway_window = RequestFilter {
        gateway: Some("gw-1".into()),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, gateway_window, 0, 10).await,
        (3, vec!["r5".into(), "r4".into(), "r3".into()])
    );
    let forwarded_attack_gw2 = RequestFilter {
        status: Some(200),
        gateway: Some("gw-2".into()),
        prediction: Some(Prediction::Attack),
        blocked: Some(false),
        ..window.clone()
    };
    assert_eq!(
        page_ids(store, forwarded_attack_gw2, 0, 10).await,
        (1, vec!["r8".into()])
    );
    let ok_gw1 = RequestFilter {
        status: Some(200),
        gateway: Some("gw-1".into()),
        ..RequestFilter::default()
    };
    assert_eq!(
        page_ids(store, ok_gw1, 0, 10).await,
        (3, vec!["r5".into(), "r4".into(), "r1".into()])
    );
    let everything = RequestFilter {
        since,
        client: Some(IP_C.parse().expect("address")),
        path_prefix: Some("/ap".into()),
        prediction: Some(Prediction::Ddos),
        blocked: Some(true),
        status: Some(403),
        gateway: Some("gw-2".into()),
    };
    assert_eq!(
        page_ids(store, everything, 0, 10).await,
        (2, vec!["r7".into(), "r6".into()])
    );

    // By id, oldest first.
    let first = store.requests_after(0, 4).await.expect("after");
    let ids: Vec<&str> = first.iter().map(|r| r.record.request_id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2", "r3", "r4"]);
    assert_eq!(first[0].record, records[0]);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    let rest = store.requests_after(first[3].id, 100).await.expect("after");
    let ids: Vec<&str> = rest.iter().map(|r| r.record.request_id.as_str()).collect();
    assert_eq!(ids, ["r5", "r6", "r7", "r8", "r9", "r10"]);
    assert!(
        store
            .requests_after(rest[5].id, 100)
            .await
            .expect("after")
            .is_empty()
    );
}

/// Events keep every field and come back by id; agents are replaced by
/// their heartbeat; actions and uploads newest first; retention purges all
/// three by time.
pub async fn events_agents_actions_uploads(store: Arc<dyn Store>) {
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

    // Before t(2): events at t(1), actions at t(0) and t(1), the upload at t(0).
    assert_eq!(store.purge_events(t(2)).await.expect("purge"), 4);
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
}

/// A network is whitelisted once (however it is written); entries are
/// listed by id and deleted by id.
pub async fn whitelist_add_list_delete(store: Arc<dyn Store>) {
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

/// Findings come back by id, oldest id first, whatever their times.
pub async fn findings_after_orders_by_id(store: Arc<dyn Store>) {
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

/// Blocked networks sum their enforced bans (not dry runs, not other
/// actions): first and latest ban, count, the mean score of the findings
/// behind them, and whether one is in force; latest ban first.
pub async fn blocked_ips_sums_bans(store: Arc<dyn Store>) {
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
