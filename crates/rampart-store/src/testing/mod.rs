//! One test suite per role trait, for every store backend (feature
//! `testing`).
//!
//! Each case is a `pub async fn` over the role traits it exercises, expects
//! an empty store and panics on failure. A suite macro per role trait turns
//! a module's cases into one `#[tokio::test]` each, with a fresh store per
//! case; [`store_test_suite!`](crate::store_test_suite) runs them all:
//!
//! ```text
//! async fn fresh() -> rampart_store::testing::Fixture {
//!     let store = rampart_store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
//!     rampart_store::testing::Fixture::new(store)
//! }
//! rampart_store::store_test_suite!(fresh());      // every role
//! rampart_store::request_log_suite!(fresh());     // or one
//! ```
//!
//! The crate using the macros needs `tokio` (with `macros` and
//! `rt-multi-thread`) among its dependencies. Times used here are whole
//! milliseconds, the precision every backend must keep.

use std::any::Any;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use rampart_core::{Action, Decision, Evidence, Finding, Level, Origin, Subject};

use crate::{
    DecisionQuery, DecisionStore, HourCount, Prediction, RequestFilter, RequestLog, RequestRecord,
    RequestStats, Store,
};

pub mod accounts;
pub mod decisions;
pub mod findings;
pub mod fleet;
pub mod positions;
pub mod postgres;
pub mod requests;
pub mod retention;
pub mod whitelist;

/// A store under test and whatever must outlive it (a temporary
/// directory, a scratch database to drop). `S` is the role the suite
/// exercises: every store by default.
pub struct Fixture<S: ?Sized = dyn Store> {
    store: Arc<S>,
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture of a whole store with nothing else to keep alive.
    pub fn new(store: impl Store + 'static) -> Self {
        Self::of(Arc::new(store))
    }
}

impl<S: ?Sized> Fixture<S> {
    /// A fixture of `store`, which may implement only some roles.
    pub fn of(store: Arc<S>) -> Self {
        Self {
            store,
            _guard: None,
        }
    }

    /// Keeps `guard` alive as long as the fixture (dropped after the store's last use).
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// The store.
    pub fn store(&self) -> Arc<S> {
        Arc::clone(&self.store)
    }
}

/// What a suite factory may give: a fixture, or `None` to skip the case.
pub trait MaybeFixture<S: ?Sized> {
    /// The fixture, if there is one.
    fn fixture(self) -> Option<Fixture<S>>;
}

impl<S: ?Sized> MaybeFixture<S> for Fixture<S> {
    fn fixture(self) -> Option<Fixture<S>> {
        Some(self)
    }
}

impl<S: ?Sized> MaybeFixture<S> for Option<Fixture<S>> {
    fn fixture(self) -> Option<Fixture<S>> {
        self
    }
}

/// Every suite: one `#[tokio::test]` per case of every role trait.
#[macro_export]
macro_rules! store_test_suite {
    ($factory:expr) => {
        $crate::decision_store_suite!($factory);
        $crate::finding_store_suite!($factory);
        $crate::position_store_suite!($factory);
        $crate::request_log_suite!($factory);
        $crate::account_store_suite!($factory);
        $crate::fleet_registry_suite!($factory);
        $crate::whitelist_store_suite!($factory);
        $crate::retention_suite!($factory);
    };
}

/// The tests of `$module`'s `$case`s (the suite macros' shared part).
#[doc(hidden)]
#[macro_export]
macro_rules! suite_cases {
    ($factory:expr; $module:ident; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                // A factory may give `None` to skip (a server that is absent outside CI).
                let Some(fixture) = $crate::testing::MaybeFixture::fixture($factory.await) else {
                    return;
                };
                $crate::testing::$module::$case(fixture.store()).await;
            }
        )*
    };
}

/// One `#[tokio::test]` per case of [`decisions`](crate::testing::decisions): [`DecisionStore`](crate::DecisionStore) (and [`FindingStore`](crate::FindingStore) for the findings decisions carry).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! decision_store_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; decisions;
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
            concurrent_inserts_lose_nothing,
            blocked_ips_sums_bans,
            import_keeps_the_remote_id,
        );
    };
}

/// One `#[tokio::test]` per case of [`findings`](crate::testing::findings): [`FindingStore`](crate::FindingStore) (with decisions, whose findings it keeps).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! finding_store_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; findings;
            findings_with_and_without_decision,
            findings_after_orders_by_id,
        );
    };
}

/// One `#[tokio::test]` per case of [`positions`](crate::testing::positions): [`PositionStore`](crate::PositionStore).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! position_store_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; positions;
            positions_upsert_and_load,
        );
    };
}

/// One `#[tokio::test]` per case of [`requests`](crate::testing::requests): [`RequestLog`](crate::RequestLog) (statistics count findings too).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! request_log_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; requests;
            request_log_round_trip_and_filter,
            request_stats_over_rollups,
            request_rollups_are_purged,
            query_requests_filters_and_pages,
        );
    };
}

/// One `#[tokio::test]` per case of [`accounts`](crate::testing::accounts): [`AccountStore`](crate::AccountStore).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! account_store_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; accounts;
            users_and_tokens,
        );
    };
}

/// One `#[tokio::test]` per case of [`fleet`](crate::testing::fleet): [`FleetRegistry`](crate::FleetRegistry) and [`ActionLog`](crate::ActionLog).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! fleet_registry_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; fleet;
            events_agents_actions_uploads,
            actions_after_orders_by_id,
        );
    };
}

/// One `#[tokio::test]` per case of [`whitelist`](crate::testing::whitelist): [`WhitelistStore`](crate::WhitelistStore).
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! whitelist_store_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; whitelist;
            whitelist_add_list_delete,
        );
    };
}

/// One `#[tokio::test]` per case of [`retention`](crate::testing::retention): retention across the decision, finding and request-log tables.
///
/// `$factory` is an expression, evaluated once per test, whose value is a
/// future of a [`Fixture`](crate::testing::Fixture) holding an empty store
/// (or of an `Option<Fixture>`: `None` skips the case).
#[macro_export]
macro_rules! retention_suite {
    ($factory:expr) => {
        $crate::suite_cases!($factory; retention;
            retention_purges_old_rows_only,
        );
    };
}

/// A fixed instant plus `minutes` (whole milliseconds).
pub fn t(minutes: i64) -> DateTime<Utc> {
    let base = DateTime::from_timestamp_millis(1_700_000_000_123).expect("valid time");
    base + Duration::minutes(minutes)
}

pub(crate) fn net(text: &str) -> IpNet {
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

pub(crate) async fn insert<S: DecisionStore + ?Sized>(store: &S, decision: &Decision) -> i64 {
    store
        .insert_decision(decision)
        .await
        .expect("insert_decision")
}

pub(crate) async fn ids<S: DecisionStore + ?Sized>(store: &S, query: DecisionQuery) -> Vec<i64> {
    store
        .query_decisions(&query)
        .await
        .expect("query_decisions")
        .iter()
        .map(|d| d.id)
        .collect()
}

pub(crate) fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

/// The first millisecond of an hour, and that hour plus `minutes` and `seconds`.
pub(crate) fn hour0_plus(minutes: i64, seconds: i64) -> DateTime<Utc> {
    // 1_699_999_200_000 is a whole hour (472_222 × 3_600_000).
    DateTime::from_timestamp_millis(1_699_999_200_000).expect("valid time")
        + Duration::minutes(minutes)
        + Duration::seconds(seconds)
}

/// A request-log record with the fields statistics read; the rest derived.
pub(crate) fn request(
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
pub(crate) fn stats_records() -> Vec<RequestRecord> {
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

pub(crate) fn hour_count(hour: i64, requests: u64, blocked: u64) -> HourCount {
    HourCount {
        hour: hour0_plus(hour * 60, 0),
        requests,
        blocked,
    }
}

/// (ip, count, avg_confidence) of top_ips, averages rounded to 1e-9.
pub(crate) fn ip_counts(stats: &RequestStats) -> Vec<(String, u64, f64)> {
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

pub(crate) fn path_counts(stats: &RequestStats) -> Vec<(String, u64)> {
    stats
        .top_paths
        .iter()
        .map(|p| (p.path.clone(), p.count))
        .collect()
}

pub(crate) async fn stats<S: RequestLog + ?Sized>(
    store: &S,
    since: DateTime<Utc>,
    top: u32,
) -> RequestStats {
    store
        .request_stats(since, top)
        .await
        .expect("request_stats")
}

pub(crate) async fn page_ids<S: RequestLog + ?Sized>(
    store: &S,
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
