//! Bans at the gateway: the admin endpoints, bans shared through the
//! store's change log (made by an agent or the CLI), unbans, expiry,
//! monitor mode, and the request log of refused requests.

mod support;

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use chrono::{Duration, Utc};
use http::StatusCode;
use rampart_core::Prediction;
use rampart_core::{Action, Decision, Origin};
use rampart_store::DecisionQuery;
use support::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

#[tokio::test]
async fn admin_block_list_and_unblock() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let admin = client();
    let visitor = client_from(ip("127.0.0.7"));
    assert_eq!(get(&visitor, &gw.url("/")).await.status, StatusCode::OK);

    let blocked = post(&admin, &gw.admin_url("/block/127.0.0.7?minutes=3")).await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    let id = blocked.json()["decision_id"].as_i64().expect("stored");

    let refused = get(&visitor, &gw.url("/")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let request_id = refused.header("x-request-id").to_owned();
    assert!(refused.body.contains(&request_id), "{}", refused.body);
    // Other clients are not affected.
    assert_eq!(get(&admin, &gw.url("/")).await.status, StatusCode::OK);

    let list = get(&admin, &gw.admin_url("/blocked-ips")).await.json();
    assert_eq!(list["count"], 1);
    assert_eq!(list["blocked"][0]["ip"], "127.0.0.7");
    assert_eq!(list["blocked"][0]["origin"], "operator:gateway-admin");
    let remaining = list["blocked"][0]["remaining_seconds"]
        .as_i64()
        .expect("remaining");
    assert!((170..=180).contains(&remaining), "{remaining}");

    // The ban is in the store, for the firewall and every other gateway.
    let stored = gw
        .store
        .get_decision(id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.decision.target.to_string(), "127.0.0.7/32");
    assert!(stored.is_active(Utc::now()));

    let lifted = post(&admin, &gw.admin_url("/unblock/127.0.0.7")).await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.body);
    assert_eq!(lifted.json()["decisions"][0], id);
    assert_eq!(get(&visitor, &gw.url("/")).await.status, StatusCode::OK);
    let stored = gw
        .store
        .get_decision(id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored.revoked_by.as_deref(), Some("gateway-admin"));

    // Errors are JSON with a stable code.
    let again = post(&admin, &gw.admin_url("/unblock/127.0.0.7")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.json()["error"]["code"], "not_blocked");
    let bad = post(&admin, &gw.admin_url("/block/not-an-ip")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["code"], "bad_address");
    let bad = post(&admin, &gw.admin_url("/block/192.0.2.1?minutes=0")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"]["code"], "bad_parameter");

    let store = std::sync::Arc::clone(&gw.store);
    gw.stop().await;
    // Refused requests are in the request log as BLOCKED, with the reason.
    let log = store
        .recent_requests(Some(ip("127.0.0.7")), 10)
        .await
        .expect("log");
    let refused_record = log
        .iter()
        .find(|r| r.request_id == request_id)
        .expect("refused request logged");
    assert_eq!(refused_record.status, 403);
    assert!(refused_record.blocked);
    assert_eq!(refused_record.prediction, Prediction::Blocked);
    assert!(refused_record.backend.is_none());
    assert!(
        refused_record
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("gateway-admin")),
        "{refused_record:?}"
    );
}

#[tokio::test]
async fn whitelisted_addresses_cannot_be_blocked() {
    let b = backend("a").await;
    let gw = gateway_with(
        config(&[&b]),
        rampart_config::PolicyConfig::default(),
        vec!["127.0.0.0/24"],
    )
    .await;
    let admin = client();
    let refused = post(&admin, &gw.admin_url("/block/127.0.0.9")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.json()["error"]["code"], "whitelisted");
    // A ban from elsewhere (the store) on a whitelisted address is ignored here.
    insert_ban(&gw, "127.0.0.9/32", 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let visitor = client_from(ip("127.0.0.9"));
    assert_eq!(get(&visitor, &gw.url("/")).await.status, StatusCode::OK);
    gw.stop().await;
}

/// A ban as an agent (or the CLI) would store it.
async fn insert_ban(gw: &TestGateway, target: &str, minutes: i64) -> i64 {
    let now = Utc::now();
    gw.store
        .insert_decision(&Decision {
            id: None,
            action: Action::Ban,
            target: target.parse().expect("net"),
            at: now,
            until: Some(now + Duration::minutes(minutes)),
            reason: "ssh-bruteforce: 6 failures".into(),
            origin: Origin::Scenario("ssh-bruteforce".into()),
            dry_run: false,
            escalation: 0,
            findings: Vec::new(),
        })
        .await
        .expect("insert")
}

#[tokio::test]
async fn bans_from_the_store_apply_and_unbans_lift_them() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let visitor = client_from(ip("127.0.3.4"));
    assert_eq!(get(&visitor, &gw.url("/")).await.status, StatusCode::OK);

    // A prefix ban decided from logs, by an agent beside the gateway.
    insert_ban(&gw, "127.0.3.0/24", 10).await;
    assert!(
        eventually(3, || async {
            get(&visitor, &gw.url("/")).await.status == StatusCode::FORBIDDEN
        })
        .await,
        "a ban from the store applies within a second"
    );
    let before = b.seen.load(Ordering::SeqCst);
    assert_eq!(
        get(&visitor, &gw.url("/")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        b.seen.load(Ordering::SeqCst),
        before,
        "refused requests are not forwarded"
    );

    // `rampart decisions unban` revokes in the store; the gateway follows.
    let revoked = gw
        .store
        .revoke(
            Some(&"127.0.3.0/24".parse().expect("net")),
            "cli",
            Utc::now(),
        )
        .await
        .expect("revoke");
    assert_eq!(revoked.len(), 1);
    assert!(
        eventually(3, || async {
            get(&visitor, &gw.url("/")).await.status == StatusCode::OK
        })
        .await,
        "an unban from the store applies within a second"
    );
    gw.stop().await;
}

#[tokio::test]
async fn bans_in_force_at_start_apply_and_expire() {
    let b = backend("a").await;
    let store: std::sync::Arc<dyn rampart_store::Store> = std::sync::Arc::new(
        rampart_store::sqlite::SqliteStore::open("sqlite::memory:")
            .await
            .expect("store"),
    );
    let now = Utc::now();
    store
        .insert_decision(&Decision {
            id: None,
            action: Action::Ban,
            target: "127.0.5.5/32".parse().expect("net"),
            at: now,
            until: Some(now + Duration::milliseconds(1500)),
            reason: "short".into(),
            origin: Origin::Operator("test".into()),
            dry_run: false,
            escalation: 0,
            findings: Vec::new(),
        })
        .await
        .expect("insert");
    let gw = gateway_on(config(&[&b]), store).await;
    let visitor = client_from(ip("127.0.5.5"));
    assert_eq!(
        get(&visitor, &gw.url("/")).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(
        eventually(5, || async {
            get(&visitor, &gw.url("/")).await.status == StatusCode::OK
        })
        .await,
        "the ban expires"
    );
    let active = gw
        .store
        .query_decisions(&DecisionQuery {
            active_at: Some(Utc::now()),
            ..DecisionQuery::default()
        })
        .await
        .expect("query");
    assert!(active.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn monitor_mode_records_but_never_blocks() {
    let b = backend("a").await;
    let mut cfg = config(&[&b]);
    cfg.mode = rampart_config::GatewayMode::Monitor;
    let gw = gateway(cfg).await;
    insert_ban(&gw, "127.0.6.6/32", 10).await;
    let visitor = client_from(ip("127.0.6.6"));
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let answer = get(&visitor, &gw.url("/")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let store = std::sync::Arc::clone(&gw.store);
    gw.stop().await;
    let log = store
        .recent_requests(Some(ip("127.0.6.6")), 10)
        .await
        .expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].prediction, Prediction::Blocked, "{:?}", log[0]);
    assert!(!log[0].blocked, "monitor mode forwards");
}

#[tokio::test]
async fn request_log_older_than_keep_is_deleted() {
    let b = backend("a").await;
    let store: std::sync::Arc<dyn rampart_store::Store> = std::sync::Arc::new(
        rampart_store::sqlite::SqliteStore::open("sqlite::memory:")
            .await
            .expect("store"),
    );
    let old = |days: i64| rampart_core::RequestRecord {
        time: Utc::now() - Duration::days(days),
        gateway: "gw-old".into(),
        request_id: format!("old-{days}"),
        client: ip("192.0.2.1"),
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
    store
        .insert_requests(&[old(3), old(0)])
        .await
        .expect("insert");
    let gw = gateway_on(config(&[&b]), std::sync::Arc::clone(&store)).await;
    assert!(
        eventually(3, || async {
            store.recent_requests(None, 10).await.expect("read").len() == 1
        })
        .await,
        "the 3-day-old record is deleted at start, the fresh one kept"
    );
    let left = store.recent_requests(None, 10).await.expect("read");
    assert_eq!(left[0].request_id, "old-0");
    gw.stop().await;
}
