//! The outbox against a real HTTP server on loopback that records what it
//! is sent and answers as told (accept, fail, refuse).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use rampart_config::FleetConfig;
use rampart_core::{
    Action, Decision, Evidence, Finding, Level, Origin, Prediction, RequestRecord, Subject,
};
use rampart_fleet::outbox::{Outbox, Stream};
use rampart_fleet::{FleetMetrics, Link};
use rampart_store::sqlite::SqliteStore;
use rampart_store::{ActionLog, ActionRecord, DecisionStore, FindingStore, RequestLog, Store};
use serde_json::{Value, json};

/// How the fake server answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Accept,
    Fail,
    Refuse,
}

#[derive(Default)]
struct Seen {
    events: Vec<Value>,
    logs: Vec<Value>,
}

struct Server {
    seen: Mutex<Seen>,
    mode: Mutex<Mode>,
}

async fn take(
    State(s): State<Arc<Server>>,
    path: axum::http::Uri,
    Json(items): Json<Vec<Value>>,
) -> (StatusCode, Json<Value>) {
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Fail => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))),
        Mode::Refuse => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"batch_id": 1, "accepted": 0, "rejected": items.len(), "errors": []})),
        ),
        Mode::Accept => {
            let n = items.len();
            let mut seen = s.seen.lock().unwrap();
            if path.path() == "/api/v1/logs" {
                seen.logs.extend(items);
            } else {
                seen.events.extend(items);
            }
            (
                StatusCode::OK,
                Json(json!({"batch_id": 1, "accepted": n, "rejected": 0, "errors": []})),
            )
        }
    }
}

async fn server() -> (Arc<Server>, String) {
    let state = Arc::new(Server {
        seen: Mutex::new(Seen::default()),
        mode: Mutex::new(Mode::Accept),
    });
    let app = Router::new()
        .route("/api/v1/events", post(take))
        .route("/api/v1/logs", post(take))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, format!("http://{addr}"))
}

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("time") + Duration::minutes(minutes)
}

fn ban(target: &str, minutes: i64) -> Decision {
    Decision {
        id: None,
        action: Action::Ban,
        target: target.parse().expect("net"),
        at: Utc::now() + Duration::minutes(minutes),
        until: Some(Utc::now() + Duration::hours(1)),
        reason: format!("ssh-bruteforce from {target}"),
        origin: Origin::Scenario("ssh-bruteforce".to_owned()),
        dry_run: false,
        escalation: 0,
        findings: Vec::new(),
    }
}

fn finding(label: &str) -> Finding {
    Finding {
        time: at(0),
        subject: Subject::Net("192.0.2.50/32".parse().expect("net")),
        label: label.to_owned(),
        score: 0.5,
        level: Level::Medium,
        evidence: Evidence::default(),
    }
}

fn request(id: &str) -> RequestRecord {
    RequestRecord {
        time: at(1),
        gateway: "gw-1".to_owned(),
        request_id: id.to_owned(),
        client: "198.51.100.4".parse().expect("ip"),
        method: "GET".to_owned(),
        path: "/".to_owned(),
        user_agent: None,
        status: 200,
        request_bytes: 0,
        response_bytes: 12,
        latency_ms: 1.5,
        score: 0.1,
        prediction: Prediction::Normal,
        blocked: false,
        reason: None,
        backend: None,
    }
}

async fn outbox(store: &Arc<SqliteStore>, url: &str, batch: usize) -> (Outbox, Arc<FleetMetrics>) {
    let config = FleetConfig {
        url: Some(url.to_owned()),
        token: Some("rpt_test".to_owned()),
        ..FleetConfig::default()
    };
    let link = Arc::new(Link::new(&config).expect("link"));
    let metrics = Arc::new(FleetMetrics::default());
    let store: Arc<dyn Store> = store.clone();
    let outbox = Outbox::load(store, link, Arc::clone(&metrics), batch)
        .await
        .expect("outbox");
    (outbox, metrics)
}

#[tokio::test]
async fn own_records_are_pushed_once_and_imported_decisions_never() {
    let (server, url) = server().await;
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite://{}", dir.path().join("node.db").display());
    let store = Arc::new(SqliteStore::open(&db).await.expect("store"));

    let own = store
        .insert_decision(&ban("192.0.2.1/32", 0))
        .await
        .expect("ban");
    store
        .import_decision(&ban("192.0.2.2/32", 1), 77)
        .await
        .expect("import");
    store
        .revoke(
            Some(&"192.0.2.1/32".parse().expect("net")),
            "op",
            Utc::now(),
        )
        .await
        .expect("revoke");
    store
        .insert_finding(&finding("http-probing"), "whitelisted")
        .await
        .expect("finding");
    store
        .insert_action(&ActionRecord {
            time: at(2),
            node: "n1".to_owned(),
            decision_id: Some(own),
            action: "ban".to_owned(),
            target: "192.0.2.1".to_owned(),
            ok: true,
            detail: "nftables".to_owned(),
        })
        .await
        .expect("action");
    store
        .insert_requests(&[request("r1"), request("r2"), request("r3")])
        .await
        .expect("requests");

    // Batches of 2: several rounds per stream, all within one drain.
    let (mut out, metrics) = outbox(&store, &url, 2).await;
    let pushed = out.drain().await.expect("drain");
    assert_eq!(pushed, 6, "1 decision + 1 finding + 1 action + 3 requests");
    assert_eq!(metrics.pushed.get(), 6);
    {
        let seen = server.seen.lock().unwrap();
        let kinds: Vec<&str> = seen
            .events
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(kinds, ["decision", "finding", "action"]);
        assert_eq!(seen.events[0]["decision"]["target"], "192.0.2.1/32");
        assert!(
            seen.events[0]["decision"].get("id").is_none(),
            "local ids stay local"
        );
        assert_eq!(seen.events[1]["note"], "whitelisted");
        let ids: Vec<&str> = seen
            .logs
            .iter()
            .map(|r| r["request_id"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(ids, ["r1", "r2", "r3"]);
    }

    // Nothing new: nothing sent. A new outbox on the same store resumes
    // where this one ended (the cursors were saved).
    assert_eq!(out.drain().await.expect("drain"), 0);
    let (mut again, _) = outbox(&store, &url, 100).await;
    assert_eq!(again.cursor(Stream::Requests), out.cursor(Stream::Requests));
    assert_eq!(again.drain().await.expect("drain"), 0);
    assert_eq!(server.seen.lock().unwrap().logs.len(), 3);
}

#[tokio::test]
async fn a_failing_server_moves_no_cursor_and_refused_batches_are_skipped() {
    let (server, url) = server().await;
    let store = Arc::new(SqliteStore::open("sqlite::memory:").await.expect("store"));
    store
        .insert_decision(&ban("192.0.2.9/32", 0))
        .await
        .expect("ban");
    let (mut out, metrics) = outbox(&store, &url, 100).await;

    *server.mode.lock().unwrap() = Mode::Fail;
    assert!(out.drain().await.is_err(), "a 503 is retried later");
    assert_eq!(out.cursor(Stream::Decisions), 0);
    assert_eq!(metrics.push_failures.get(), 1);

    // The server is back: the waiting decision goes.
    *server.mode.lock().unwrap() = Mode::Accept;
    assert_eq!(out.drain().await.expect("drain"), 1);
    assert!(out.cursor(Stream::Decisions) > 0);

    // Records the server will never take are skipped, counted, not retried.
    store
        .insert_requests(&[request("bad")])
        .await
        .expect("requests");
    *server.mode.lock().unwrap() = Mode::Refuse;
    assert_eq!(out.drain().await.expect("drain"), 0);
    assert_eq!(metrics.rejected.get(), 1);
    *server.mode.lock().unwrap() = Mode::Accept;
    assert_eq!(out.drain().await.expect("drain"), 0);
    assert!(server.seen.lock().unwrap().logs.is_empty());
}
