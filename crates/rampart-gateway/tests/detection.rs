//! Detection at the gateway: floods get 429 with Retry-After and a stored
//! ban, attack requests 403 and a stored ban, whitelisted clients are never
//! refused, monitor mode records without refusing.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::StatusCode;
use rampart_config::{GatewayMode, PolicyConfig};
use rampart_core::Prediction;
use rampart_store::{DecisionQuery, Store};
use support::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

/// Sends `n` requests as fast as possible from `source`; returns the statuses.
async fn flood(gw: &TestGateway, source: &str, n: usize) -> Vec<(StatusCode, String)> {
    let c = client_from(ip(source));
    let mut out = Vec::new();
    for _ in 0..n {
        let a = get(&c, &gw.url("/")).await;
        out.push((a.status, a.header("retry-after").to_owned()));
    }
    out
}

async fn decisions(store: &Arc<dyn Store>) -> Vec<rampart_store::StoredDecision> {
    store
        .query_decisions(&DecisionQuery::default())
        .await
        .expect("query")
}

#[tokio::test]
async fn a_flood_gets_429_with_retry_after_and_a_stored_ban() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let answers = flood(&gw, "127.0.9.1", 120).await;
    let first_refused = answers
        .iter()
        .position(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .expect("the flood is refused");
    // Everything after the first refusal is refused (the client is banned).
    assert!(
        answers[first_refused..]
            .iter()
            .all(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS),
        "{answers:?}"
    );
    let retry: i64 = answers[first_refused]
        .1
        .parse()
        .expect("Retry-After seconds");
    assert!((590..=600).contains(&retry), "ban of 10 minutes: {retry}");
    assert_eq!(b.seen.load(Ordering::SeqCst), first_refused);
    // Another client is not affected.
    assert_eq!(
        get(&client_from(ip("127.0.9.2")), &gw.url("/"))
            .await
            .status,
        StatusCode::OK
    );

    assert!(
        eventually(3, || async { !decisions(&gw.store).await.is_empty() }).await,
        "the ban is stored"
    );
    let stored = decisions(&gw.store).await;
    assert_eq!(stored.len(), 1, "one ban, not one per refused request");
    let d = &stored[0].decision;
    assert_eq!(d.target.to_string(), "127.0.9.1/32");
    assert_eq!(d.scenario(), Some("gateway-flood"));
    assert!(!d.dry_run);
    assert_eq!(d.findings.len(), 1);
    assert!(
        d.findings[0]
            .evidence
            .last_line
            .as_deref()
            .is_some_and(|l| l.starts_with("GET /"))
    );

    let metrics = get(&client(), &gw.admin_url("/metrics")).await.body;
    assert!(
        metrics.contains("rampart_gateway_bans_total{reason=\"gateway-flood\"} 1"),
        "{metrics}"
    );
    let store = Arc::clone(&gw.store);
    gw.stop().await;
    let log = store
        .recent_requests(Some(ip("127.0.9.1")), 1000)
        .await
        .expect("log");
    assert_eq!(log.len(), 120);
    let refusals = log.iter().filter(|r| r.status == 429).count();
    assert_eq!(refusals, 120 - first_refused);
    assert!(log.iter().filter(|r| r.status == 429).all(|r| r.blocked));
    assert!(
        log.iter()
            .any(|r| r.prediction == Prediction::Ddos && r.status == 429)
    );
}

#[tokio::test]
async fn attack_requests_get_403_and_ban_their_client() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let c = client_from(ip("127.0.9.3"));
    let probes = [
        ("/search?q=1%27%20OR%20%271%27%3D%271", "gateway-sqli"),
        ("/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "gateway-xss"),
        ("/static/..%2f..%2f..%2fetc%2fpasswd", "gateway-traversal"),
        ("/.env", "gateway-sensitive-path"),
    ];
    for (i, (path, label)) in probes.iter().enumerate() {
        // Each probe from its own client so each is judged, not just banned.
        let c = client_from(ip(&format!("127.0.9.{}", 10 + i)));
        let a = get(&c, &gw.url(path)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert!(a.body.contains("request refused"), "{}", a.body);
        assert!(
            eventually(3, || async {
                decisions(&gw.store)
                    .await
                    .iter()
                    .any(|d| d.decision.scenario() == Some(label))
            })
            .await,
            "{label} stored"
        );
    }
    let scanner = client_from(ip("127.0.9.20"));
    let req = http::Request::get(gw.url("/"))
        .header("user-agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")
        .body(empty())
        .expect("request");
    assert_eq!(send(&scanner, req).await.status, StatusCode::FORBIDDEN);
    // A normal request from a normal client passes.
    assert_eq!(
        get(&c, &gw.url("/search?q=rust+books")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        b.seen.load(Ordering::SeqCst),
        1,
        "no attack reached the backend"
    );
    let store = Arc::clone(&gw.store);
    gw.stop().await;
    let log = store
        .recent_requests(Some(ip("127.0.9.10")), 10)
        .await
        .expect("log");
    assert_eq!(log[0].prediction, Prediction::Attack);
    assert!(
        log[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("gateway-sqli")),
        "{:?}",
        log[0].reason
    );
}

#[tokio::test]
async fn whitelisted_clients_flood_unrefused() {
    let b = backend("a").await;
    let gw = gateway_with(config(&[&b]), PolicyConfig::default(), vec!["127.0.9.0/24"]).await;
    let answers = flood(&gw, "127.0.9.30", 120).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::OK));
    let sqli = get(
        &client_from(ip("127.0.9.31")),
        &gw.url("/?id=1%27%20OR%20%271%27%3D%271"),
    )
    .await;
    assert_eq!(sqli.status, StatusCode::OK);
    assert!(decisions(&gw.store).await.is_empty());
    let store = Arc::clone(&gw.store);
    gw.stop().await;
    // Judged and logged all the same.
    let log = store
        .recent_requests(Some(ip("127.0.9.31")), 10)
        .await
        .expect("log");
    assert_eq!(log[0].prediction, Prediction::Attack);
    assert!(!log[0].blocked);
}

#[tokio::test]
async fn monitor_mode_stores_dry_run_bans_and_forwards() {
    let b = backend("a").await;
    let mut cfg = config(&[&b]);
    cfg.mode = GatewayMode::Monitor;
    let gw = gateway(cfg).await;
    let answers = flood(&gw, "127.0.9.40", 120).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::OK));
    assert_eq!(b.seen.load(Ordering::SeqCst), 120);
    assert!(
        eventually(3, || async { !decisions(&gw.store).await.is_empty() }).await,
        "the would-be ban is stored"
    );
    let stored = decisions(&gw.store).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].decision.dry_run, "monitor bans are dry-run");
    gw.stop().await;
}

#[tokio::test]
async fn small_form_bodies_are_inspected_and_forwarded_intact() {
    let b = backend("a").await;
    let gw = gateway(config(&[&b])).await;
    let form = |body: &str, source: &str| {
        let c = client_from(ip(source));
        let req = http::Request::post(gw.url("/echo"))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(text(body))
            .expect("request");
        async move { send(&c, req).await }
    };
    let benign = form("user=alice&comment=it%27s+fine%2C+thanks", "127.0.9.50").await;
    assert_eq!(benign.status, StatusCode::OK);
    let seen = benign.json();
    assert_eq!(
        seen["body_len"],
        "user=alice&comment=it%27s+fine%2C+thanks".len()
    );

    let attack = form("user=admin%27+OR+%271%27%3D%271&password=x", "127.0.9.51").await;
    assert_eq!(attack.status, StatusCode::FORBIDDEN, "{}", attack.body);
    assert_eq!(
        b.seen.load(Ordering::SeqCst),
        1,
        "the attack was not forwarded"
    );
    assert!(
        eventually(3, || async {
            decisions(&gw.store)
                .await
                .iter()
                .any(|d| d.decision.target.to_string() == "127.0.9.51/32")
        })
        .await,
        "the attacker is banned"
    );
    gw.stop().await;
}
