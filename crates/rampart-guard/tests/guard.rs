//! The detection hook on its own, without a proxy around it: what an
//! in-app middleware would see.

use std::sync::Arc;

use chrono::Utc;
use rampart_config::{HttpDetectionConfig, PolicyConfig};
use rampart_core::{HumanDuration, Prediction, Whitelist};
use rampart_guard::inspect::RequestFacts;
use rampart_guard::{Guard, GuardConfig, GuardCounters, Refusal, Request};
use rampart_store::{ChangeKind, DecisionQuery, Store};

async fn setup(monitor: bool, whitelist: &[&str]) -> (Arc<Guard>, Arc<dyn Store>, GuardCounters) {
    let store: Arc<dyn Store> = Arc::from(rampart_store::open("sqlite::memory:").await.unwrap());
    let counters = GuardCounters::default();
    let guard = guard_on(Arc::clone(&store), monitor, whitelist, counters.clone());
    (guard, store, counters)
}

fn get<'a>(path: &'a str, query: Option<&'a str>) -> RequestFacts<'a> {
    RequestFacts {
        method: "GET",
        path,
        query,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
        header_count: 8,
        has_cookie: true,
        has_referer: true,
        has_accept_language: true,
        body_len: None,
    }
}

fn request<'a>(client: &str, facts: &'a RequestFacts<'a>) -> Request<'a> {
    Request {
        client: client.parse().unwrap(),
        time: Utc::now(),
        now_ms: 1_000,
        id: "req-1",
        facts,
    }
}

async fn stored_bans(store: &Arc<dyn Store>) -> usize {
    // The guard stores its decisions in the background.
    for _ in 0..100 {
        let n = store
            .query_decisions(&DecisionQuery::default())
            .await
            .unwrap()
            .len();
        if n > 0 {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    0
}

#[tokio::test]
async fn an_attack_is_refused_banned_once_stored_and_the_next_request_meets_the_ban() {
    let (guard, store, counters) = setup(false, &[]).await;
    let sqli = get(
        "/items",
        Some("id=1%27%20UNION%20SELECT%20password%20FROM%20users--"),
    );
    let first = guard.screen(&request("198.51.100.20", &sqli));
    assert_eq!(first.refusal, Some(Refusal::Attack), "{first:?}");
    assert_eq!(first.prediction, Prediction::Attack);
    assert!(first.reason.as_deref().unwrap().starts_with("gateway-sqli"));
    assert_eq!(stored_bans(&store).await, 1);
    assert_eq!(guard.bans().len(), 1);

    let benign = get("/", None);
    let next = guard.screen(&request("198.51.100.20", &benign));
    assert!(
        matches!(next.refusal, Some(Refusal::Banned { flood: false, .. })),
        "{next:?}"
    );
    let other = guard.screen(&request("198.51.100.21", &benign));
    assert_eq!(other.refusal, None, "another client is not affected");
    let text = {
        let mut out = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("bans", "bans", counters.bans.clone());
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    };
    assert!(
        text.contains("bans_total{reason=\"gateway-sqli\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn whitelisted_clients_and_monitor_mode_are_never_refused() {
    let (guard, store, _) = setup(false, &["198.51.100.0/24"]).await;
    let xss = get("/search", Some("q=%3Cscript%3Ealert(1)%3C/script%3E"));
    let s = guard.screen(&request("198.51.100.7", &xss));
    assert_eq!(s.refusal, None);
    assert!(
        s.reason.as_deref().unwrap().starts_with("whitelisted; "),
        "{s:?}"
    );
    assert_eq!(guard.bans().len(), 0);
    assert!(
        store
            .query_decisions(&DecisionQuery::default())
            .await
            .unwrap()
            .is_empty()
    );

    let (monitor, store, _) = setup(true, &[]).await;
    let s = monitor.screen(&request("203.0.113.9", &xss));
    assert_eq!(s.refusal, None);
    assert!(
        s.reason.as_deref().unwrap().starts_with("monitor: "),
        "{s:?}"
    );
    assert_eq!(
        stored_bans(&store).await,
        1,
        "the ban is recorded, as a dry run"
    );
    let d = &store
        .query_decisions(&DecisionQuery::default())
        .await
        .unwrap()[0];
    assert!(d.decision.dry_run);
}

#[tokio::test]
async fn operator_bans_and_the_change_log_go_through_the_one_table() {
    let (guard, store, _) = setup(false, &[]).await;
    let target = "203.0.113.0/28".parse().unwrap();
    let ban = guard.operator_ban(target, None, "ops").await.unwrap();
    assert!(ban.decision_id.is_some());
    let benign = get("/", None);
    let s = guard.screen(&request("203.0.113.5", &benign));
    assert!(matches!(s.refusal, Some(Refusal::Banned { .. })), "{s:?}");

    // Revoked elsewhere (the CLI, the server): the change log lifts it here.
    let stored = store
        .query_decisions(&DecisionQuery::default())
        .await
        .unwrap();
    store
        .revoke(Some(&target), "cli", Utc::now())
        .await
        .unwrap();
    guard.apply_change(ChangeKind::Revoked, &stored[0], Utc::now());
    assert_eq!(guard.bans().len(), 0);
    let s = guard.screen(&request("203.0.113.5", &benign));
    assert_eq!(s.refusal, None);

    // And a guard started later loads what is in force.
    guard.operator_ban(target, None, "ops").await.unwrap();
    let fresh = guard_on(Arc::clone(&store), false, &[], GuardCounters::default());
    fresh.load(Utc::now()).await.unwrap();
    assert_eq!(fresh.bans().len(), 1);
}

fn guard_on(
    store: Arc<dyn Store>,
    monitor: bool,
    whitelist: &[&str],
    counters: GuardCounters,
) -> Arc<Guard> {
    let whitelist = Whitelist::exactly(whitelist.iter().map(|w| w.parse().unwrap()).collect());
    let config = GuardConfig {
        detection: &HttpDetectionConfig::default(),
        policy: PolicyConfig::default(),
        whitelist,
        ban_for: HumanDuration::from_secs(900),
        monitor,
    };
    Arc::new(Guard::new(config, store, counters).unwrap())
}
