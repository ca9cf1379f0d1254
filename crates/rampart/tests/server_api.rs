//! `rampart server` as a process, through its HTTP API: authentication
//! (tokens, login sessions, cookies with CSRF, TLS), the login limit and
//! the ban a login brute force earns, roles, ingest and its validation,
//! the request log and its statistics, decisions and their stream, the
//! whitelist, pushed events, heartbeats, the live WebSocket, metrics and
//! the API documents.
//!
//! Each scenario is written once, over a database URL, and runs on SQLite
//! and on PostgreSQL (`RAMPART_TEST_POSTGRES_URL`; see `server_support`).

mod server_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use http::{Method, StatusCode};
use rampart_core::{Action, Decision, Event, EventKind, Evidence, Finding, Level, Origin, Subject};
use serde_json::{Value, json};

use server_support::{Auth, Client, Options, Server, add_user, create_token};

/// Instantiates each scenario for both backends.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::server_support::sqlite_db();
                    super::$name(&db.url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::server_support::postgres_db().await else {
                        return;
                    };
                    super::$name(&db.url).await;
                }
            )*
        }
    };
}

on_both_stores!(
    only_health_answers_without_credentials,
    login_sets_cookies_and_cookie_requests_need_csrf,
    cookies_are_secure_under_tls,
    sessions_end_after_their_ttl,
    failed_logins_are_limited_and_banned,
    roles_limit_what_each_principal_may_do,
    ingest_checks_each_record,
    request_log_is_filtered_paginated_and_summed_up,
    bans_unbans_and_the_whitelist,
    decision_stream_answers_changes_and_long_polls,
    pushed_events_store_findings_decisions_and_actions,
    heartbeats_list_the_fleet,
    live_stream_delivers_new_items,
    metrics_and_api_documents,
);

const ADMIN_PASSWORD: &str = "correct horse battery";

/// A server on `db` with an admin user (`admin`, [`ADMIN_PASSWORD`]) and
/// one machine token per role, made with the command line.
struct Fleet {
    server: Server,
    /// Logged in as `admin` (bearer session token).
    admin: Client,
    /// Token `ops`.
    operator: Client,
    /// Token `watcher`.
    viewer: Client,
    /// Token `agent-1`.
    agent: Client,
    /// The tokens' secrets: operator, viewer, agent.
    tokens: [String; 3],
}

async fn fleet(db: &str, options: Options) -> Fleet {
    add_user(db, "admin", "admin", ADMIN_PASSWORD).await;
    let operator = create_token(db, "ops", "operator").await;
    let viewer = create_token(db, "watcher", "viewer").await;
    let agent = create_token(db, "agent-1", "agent").await;
    let server = Server::start(db, options).await;
    let admin = server.login_bearer("admin", ADMIN_PASSWORD).await;
    Fleet {
        operator: server.bearer(&operator),
        viewer: server.bearer(&viewer),
        agent: server.bearer(&agent),
        admin,
        server,
        tokens: [operator, viewer, agent],
    }
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn minutes_ago(minutes: i64) -> String {
    rfc3339(Utc::now() - chrono::Duration::minutes(minutes))
}

/// One request-log record as a gateway pushes it.
fn log_record(
    ip: &str,
    path: &str,
    prediction: &str,
    blocked: bool,
    status: u16,
    confidence: f64,
    minutes: i64,
) -> Value {
    json!({
        "timestamp": minutes_ago(minutes),
        "source_ip": ip,
        "request_path": path,
        "request_method": "get",
        "user_agent": "test-agent/1.0",
        "prediction": prediction,
        "confidence_score": confidence,
        "is_blocked": u8::from(blocked),
        "response_status_code": status,
        "response_time_ms": 2.5,
        "request_size_bytes": 120,
    })
}

fn array(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}"))
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[track_caller]
fn close(actual: &Value, expected: f64) {
    let a = num(actual);
    assert!(
        (a - expected).abs() < 1e-3,
        "{a} is not {expected} (within 1e-3)"
    );
}

/// Decisions (a JSON array) on `ip`.
fn on<'a>(decisions: &'a Value, ip: &str) -> Vec<&'a Value> {
    array(decisions).iter().filter(|d| d["ip"] == ip).collect()
}

// ---------------------------------------------------------------------------

async fn only_health_answers_without_credentials(db: &str) {
    let server = Server::start(db, Options::default()).await;
    let anonymous = server.client(Auth::None);

    let health = anonymous.get("/health").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());
    let body = health.json();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["components"]["store"], "ok", "{body}");

    for (method, path) in [
        (Method::GET, "/api/v1/stats"),
        (Method::GET, "/metrics"),
        (Method::GET, "/api/v1/openapi.json"),
        (Method::GET, "/api/v1/docs"),
        (Method::GET, "/ws/live"),
        (Method::GET, "/api/v1/requests"),
        (Method::GET, "/api/v1/decisions"),
        (Method::GET, "/api/v1/decisions/stream"),
        (Method::GET, "/api/v1/auth/me"),
        (Method::GET, "/api/v1/no-such-route"),
        (Method::POST, "/api/v1/logs"),
        (Method::POST, "/api/v1/decisions"),
        (Method::DELETE, "/api/v1/decisions?ip=192.0.2.1"),
    ] {
        let reply = anonymous.send(method.clone(), path, None, &[]).await;
        reply.assert_error(401, "unauthorized");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"rampart\""),
            "{method} {path}"
        );
        assert!(
            reply
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{method} {path}: {:?}",
            reply.header("content-type")
        );
    }
    // A token nobody made is no better.
    anonymous
        .with(Auth::Bearer(
            "rpt_0000000000000000000000000000000000000000000000000000000000000000".to_owned(),
        ))
        .get("/api/v1/stats")
        .await
        .assert_error(401, "unauthorized");

    // `--public /metrics` opens /metrics, and only it.
    let open = Server::start(
        db,
        Options {
            public: vec!["/metrics".to_owned()],
            ..Options::default()
        },
    )
    .await;
    let metrics = open.client(Auth::None).get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.text());
    assert!(
        metrics.text().contains("rampart_server_"),
        "{}",
        metrics.text()
    );
    open.client(Auth::None)
        .get("/api/v1/stats")
        .await
        .assert_error(401, "unauthorized");
}

async fn login_sets_cookies_and_cookie_requests_need_csrf(db: &str) {
    let f = fleet(db, Options::default()).await;
    let server = &f.server;

    server
        .login("admin", "wrong password")
        .await
        .assert_error(401, "bad_credentials");
    server
        .login("nobody", ADMIN_PASSWORD)
        .await
        .assert_error(401, "bad_credentials");

    let login = server.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    let body = login.json();
    let token = body["token"].as_str().expect("token").to_owned();
    let csrf = body["csrf_token"].as_str().expect("csrf_token").to_owned();
    assert!(token.starts_with("rpt_"), "{body}");
    assert_eq!(csrf.len(), 32, "{body}");
    assert_eq!(body["username"], "admin");
    assert_eq!(body["role"], "admin");
    assert!(body["expires_at"].is_string(), "{body}");

    let cookies = login.header_all("set-cookie");
    let session = cookies
        .iter()
        .find(|c| c.starts_with("rampart_session="))
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    let attrs: Vec<&str> = session.split(';').map(str::trim).collect();
    assert_eq!(attrs[0], format!("rampart_session={token}"));
    assert!(attrs.contains(&"HttpOnly"), "{session}");
    assert!(attrs.contains(&"SameSite=Strict"), "{session}");
    assert!(attrs.contains(&"Path=/"), "{session}");
    assert!(
        !attrs.contains(&"Secure"),
        "no Secure over plain HTTP: {session}"
    );
    let readable = cookies
        .iter()
        .find(|c| c.starts_with("rampart_csrf="))
        .unwrap_or_else(|| panic!("no csrf cookie in {cookies:?}"));
    assert!(
        readable.starts_with(&format!("rampart_csrf={csrf};")),
        "{readable}"
    );
    assert!(
        !readable.contains("HttpOnly"),
        "scripts read it: {readable}"
    );

    let cookie = server.client(Auth::Cookie {
        session: token.clone(),
        csrf: None,
    });
    let with_csrf = cookie.with(Auth::Cookie {
        session: token.clone(),
        csrf: Some(csrf.clone()),
    });
    let wrong_csrf = cookie.with(Auth::Cookie {
        session: token.clone(),
        csrf: Some("0".repeat(32)),
    });

    // Reads need no CSRF value.
    let me = cookie.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    assert_eq!(
        me.json(),
        json!({"name": "admin", "role": "admin", "via": "cookie"})
    );

    let ban = json!({"ip": "192.0.2.10", "duration_minutes": 5});
    cookie
        .post("/api/v1/decisions", &ban)
        .await
        .assert_error(403, "csrf");
    wrong_csrf
        .post("/api/v1/decisions", &ban)
        .await
        .assert_error(403, "csrf");
    let none = f.viewer.get("/api/v1/decisions?ip=192.0.2.10").await.json();
    assert!(
        array(&none).is_empty(),
        "refused bans are not stored: {none}"
    );
    let made = with_csrf.post("/api/v1/decisions", &ban).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    assert_eq!(made.json()["origin_name"], "admin");

    cookie
        .delete("/api/v1/decisions?ip=192.0.2.10")
        .await
        .assert_error(403, "csrf");
    let lifted = with_csrf.delete("/api/v1/decisions?ip=192.0.2.10").await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());

    // The same session as a bearer token needs no CSRF value.
    let bearer = server.bearer(&token);
    let me = bearer.get("/api/v1/auth/me").await.json();
    assert_eq!(me["via"], "bearer");
    let made = bearer
        .post("/api/v1/decisions", &json!({"ip": "192.0.2.11"}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());

    // Sessions are not listed with the machine tokens.
    let tokens = f.admin.get("/api/v1/tokens").await.json();
    let names: Vec<&str> = array(&tokens)
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("session:")),
        "{names:?}"
    );
    assert!(names.contains(&"agent-1"), "{names:?}");

    // Logging out by cookie is state-changing too, then revokes the session.
    cookie
        .post("/api/v1/auth/logout", &json!({}))
        .await
        .assert_error(403, "csrf");
    let out = with_csrf.post("/api/v1/auth/logout", &json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    let cleared = out.header_all("set-cookie");
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("rampart_session=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    cookie
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    bearer
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");

    // Logging out by bearer revokes that session, and only it.
    let second = server.login_bearer("admin", ADMIN_PASSWORD).await;
    let third = server.login_bearer("admin", ADMIN_PASSWORD).await;
    let out = second.post("/api/v1/auth/logout", &json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    second
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(third.get("/api/v1/auth/me").await.status, StatusCode::OK);
}

async fn cookies_are_secure_under_tls(db: &str) {
    add_user(db, "admin", "admin", ADMIN_PASSWORD).await;
    let server = Server::start(
        db,
        Options {
            tls: true,
            ..Options::default()
        },
    )
    .await;
    let login = server.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    let cookies = login.header_all("set-cookie");
    for name in ["rampart_session=", "rampart_csrf="] {
        let cookie = cookies
            .iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"));
        assert!(
            cookie.split(';').any(|a| a.trim() == "Secure"),
            "Secure under TLS: {cookie}"
        );
    }
    let session = login.json()["token"].as_str().expect("token").to_owned();
    let me = server
        .client(Auth::Cookie {
            session,
            csrf: None,
        })
        .get("/api/v1/auth/me")
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    assert_eq!(me.json()["via"], "cookie");
}

async fn sessions_end_after_their_ttl(db: &str) {
    add_user(db, "admin", "admin", ADMIN_PASSWORD).await;
    let server = Server::start(
        db,
        Options {
            config: Some("[server]\nsession_ttl = \"1s\"\n".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let login = server.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    let session = login.json()["token"].as_str().expect("token").to_owned();
    let max_age = login
        .header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("rampart_session="))
        .expect("session cookie");
    assert!(max_age.contains("Max-Age=1"), "{max_age}");
    let bearer = server.bearer(&session);
    let me = bearer.get("/api/v1/auth/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = bearer
        .get("/api/v1/auth/me")
        .await
        .assert_error(401, "unauthorized");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );
}

async fn failed_logins_are_limited_and_banned(db: &str) {
    let f = fleet(db, Options::default()).await;
    let server = &f.server;
    for attempt in 0..5 {
        let reply = server.login("admin", &format!("guess {attempt}")).await;
        reply.assert_error(401, "bad_credentials");
    }
    // The sixth attempt is refused before the password is even looked at.
    let limited = server.login("admin", ADMIN_PASSWORD).await;
    limited.assert_error(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=300).contains(&retry), "Retry-After {retry}");

    // Another address is not limited.
    let other = server
        .client(Auth::None)
        .connecting_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .post(
            "/api/v1/auth/login",
            &json!({"username": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text());

    // Five failures naming a user are the http-auth-failure scenario: the
    // server bans the address (only the configured whitelist applies).
    let decisions = f.agent.get("/api/v1/decisions?ip=127.0.0.1").await;
    assert_eq!(decisions.status, StatusCode::OK, "{}", decisions.text());
    let decisions = decisions.json();
    let bans = on(&decisions, "127.0.0.1");
    assert_eq!(bans.len(), 1, "{decisions}");
    assert_eq!(bans[0]["action"], "ban");
    assert_eq!(bans[0]["origin_kind"], "scenario");
    assert_eq!(bans[0]["origin_name"], "http-auth-failure");
    assert_eq!(bans[0]["active"], true);
    assert_eq!(
        num(&bans[0]["findings"][0]["evidence"]["count"]),
        5.0,
        "{decisions}"
    );
    let none = f.agent.get("/api/v1/decisions?ip=127.0.0.2").await.json();
    assert!(array(&none).is_empty(), "{none}");
    let stream = f.agent.get("/api/v1/decisions/stream").await.json();
    assert!(
        array(&stream["changes"])
            .iter()
            .any(|c| c["decision"]["ip"] == "127.0.0.1"),
        "the fleet follows it: {stream}"
    );

    let metrics = server.metrics(&f.viewer).await;
    assert!(
        metrics.contains("rampart_server_login_failures_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rampart_server_login_rate_limited_total 1"),
        "{metrics}"
    );
}

async fn roles_limit_what_each_principal_may_do(db: &str) {
    let f = fleet(db, Options::default()).await;
    let server = &f.server;

    // Admins manage users and tokens.
    for (name, role) in [("vera", "viewer"), ("otto", "operator")] {
        let made = f
            .admin
            .post(
                "/api/v1/users",
                &json!({"username": name, "role": role, "password": "long enough pw"}),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    }
    f.admin
        .post(
            "/api/v1/users",
            &json!({"username": "vera", "role": "viewer", "password": "long enough pw"}),
        )
        .await
        .assert_error(409, "conflict");
    let bad = f
        .admin
        .post(
            "/api/v1/users",
            &json!({"username": "bot", "role": "agent", "password": "long enough pw"}),
        )
        .await
        .assert_error(400, "bad_request");
    assert_eq!(bad["error"]["field"], "role");
    let users = f.admin.get("/api/v1/users").await.json();
    let mut listed: Vec<(String, String)> = array(&users)
        .iter()
        .map(|u| {
            assert!(u.get("password_hash").is_none(), "{u}");
            (
                u["username"].as_str().unwrap_or_default().to_owned(),
                u["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("admin".to_owned(), "admin".to_owned()),
            ("otto".to_owned(), "operator".to_owned()),
            ("vera".to_owned(), "viewer".to_owned())
        ]
    );
    let made = f
        .admin
        .post("/api/v1/tokens", &json!({"name": "agent-2"}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let made = made.json();
    assert_eq!(made["role"], "agent");
    let agent2 = server.bearer(made["token"].as_str().expect("token"));

    let vera = server.login_bearer("vera", "long enough pw").await;
    let otto = server.login_bearer("otto", "long enough pw").await;
    let ban = json!({"ip": "192.0.2.20"});

    for viewer in [&vera, &f.viewer] {
        for path in [
            "/api/v1/stats",
            "/api/v1/requests",
            "/api/v1/decisions",
            "/api/v1/blocked-ips",
            "/api/v1/whitelist",
            "/api/v1/agents",
            "/metrics",
        ] {
            let reply = viewer.get(path).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        }
        viewer
            .post("/api/v1/decisions", &ban)
            .await
            .assert_error(403, "forbidden");
        viewer
            .delete("/api/v1/decisions?ip=192.0.2.20")
            .await
            .assert_error(403, "forbidden");
        viewer
            .post("/api/v1/whitelist", &json!({"ip": "192.0.2.0/24"}))
            .await
            .assert_error(403, "forbidden");
        viewer
            .get("/api/v1/users")
            .await
            .assert_error(403, "forbidden");
        viewer
            .post("/api/v1/logs", &json!([]))
            .await
            .assert_error(403, "forbidden");
    }

    for operator in [&otto, &f.operator] {
        let made = operator.post("/api/v1/decisions", &ban).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
        let lifted = operator.delete("/api/v1/decisions?ip=192.0.2.20").await;
        assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());
        operator
            .get("/api/v1/users")
            .await
            .assert_error(403, "forbidden");
        operator
            .get("/api/v1/tokens")
            .await
            .assert_error(403, "forbidden");
        operator
            .post(
                "/api/v1/tokens",
                &json!({"name": "sneaky", "role": "admin"}),
            )
            .await
            .assert_error(403, "forbidden");
    }

    // Agents push and read decisions, and nothing else.
    for agent in [&f.agent, &agent2] {
        let logs = agent
            .post(
                "/api/v1/logs",
                &json!([log_record("203.0.113.1", "/", "NORMAL", false, 200, 0.1, 1)]),
            )
            .await;
        assert_eq!(logs.status, StatusCode::OK, "{}", logs.text());
        let events = agent
            .post(
                "/api/v1/events",
                &json!([{"kind": "action", "time": minutes_ago(0), "action": "ban",
                         "target": "192.0.2.1", "ok": true}]),
            )
            .await;
        assert_eq!(events.status, StatusCode::OK, "{}", events.text());
        let beat = agent
            .post(
                "/api/v1/heartbeat",
                &json!({"kind": "agent", "version": "0.1.0", "started_at": minutes_ago(1)}),
            )
            .await;
        assert_eq!(beat.status, StatusCode::NO_CONTENT, "{}", beat.text());
        for path in ["/api/v1/decisions/stream", "/api/v1/decisions"] {
            let reply = agent.get(path).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        }
        for path in [
            "/api/v1/stats",
            "/api/v1/requests",
            "/api/v1/agents",
            "/metrics",
        ] {
            agent.get(path).await.assert_error(403, "forbidden");
        }
        agent
            .post("/api/v1/decisions", &ban)
            .await
            .assert_error(403, "forbidden");
    }

    // A session's role is the user's role now, not at login.
    let changed = f
        .admin
        .patch("/api/v1/users/vera", &json!({"role": "operator"}))
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
    let made = vera.post("/api/v1/decisions", &ban).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    f.admin
        .patch("/api/v1/users/nobody", &json!({"role": "viewer"}))
        .await
        .assert_error(404, "not_found");

    // A revoked token is refused at once.
    let revoked = f.admin.delete("/api/v1/tokens/agent-2").await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    agent2
        .get("/api/v1/decisions")
        .await
        .assert_error(401, "unauthorized");
    f.admin
        .delete("/api/v1/tokens/agent-2")
        .await
        .assert_error(404, "not_found");
    let tokens = f.admin.get("/api/v1/tokens").await.json();
    let agent2_row = array(&tokens)
        .iter()
        .find(|t| t["name"] == "agent-2")
        .unwrap_or_else(|| panic!("{tokens}"));
    assert!(agent2_row["revoked_at"].is_string(), "{tokens}");
    assert!(
        !tokens.to_string().contains("rpt_"),
        "secrets are never listed: {tokens}"
    );
}

async fn ingest_checks_each_record(db: &str) {
    let f = fleet(db, Options::default()).await;
    let good = log_record("203.0.113.5", "/a", "NORMAL", false, 200, 0.2, 1);
    let with = |key: &str, value: Value| {
        let mut r = good.clone();
        r[key] = value;
        r
    };
    let mut unknown = good.clone();
    unknown["colour"] = json!("blue");
    let batch = json!([
        good,
        with("source_ip", json!("not-an-ip")),
        with("gateway_id", json!("gw-7")),
        with("confidence_score", json!(1.5)),
        with("prediction", json!("EVIL")),
        with("is_blocked", json!(2)),
        with("response_status_code", json!(42)),
        with("request_path", json!("no-slash")),
        with("timestamp", json!("yesterday")),
        unknown,
    ]);
    let reply = f.agent.post("/api/v1/logs", &batch).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"], 8, "{body}");
    assert!(body["batch_id"].is_i64(), "{body}");
    let errors: Vec<(u64, String)> = array(&body["errors"])
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
            (
                e["index"].as_u64().expect("index"),
                e["field"].as_str().expect("field").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = [
        (1, "source_ip"),
        (3, "confidence_score"),
        (4, "prediction"),
        (5, "is_blocked"),
        (6, "response_status_code"),
        (7, "request_path"),
        (8, "timestamp"),
    ]
    .iter()
    .map(|(i, f)| (*i, (*f).to_owned()))
    .collect();
    assert_eq!(errors[..7], expected[..], "{body}");
    assert_eq!(errors[7].0, 9, "{body}");
    assert!(
        body["errors"][7]["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "the unknown field is named: {body}"
    );
    let stored = f.viewer.get("/api/v1/requests?source_ip=203.0.113.5").await;
    let stored = stored.json();
    assert_eq!(stored["total"], 2, "only the valid records: {stored}");
    let mut gateways: Vec<&str> = array(&stored["requests"])
        .iter()
        .filter_map(|r| r["gateway_id"].as_str())
        .collect();
    gateways.sort_unstable();
    assert_eq!(gateways, ["agent-1", "gw-7"], "default: the token's name");

    // Nothing valid: 422 with the report.
    let reply = f
        .agent
        .post(
            "/api/v1/logs",
            &json!([
                with("source_ip", json!("x")),
                with("request_method", json!("G E T"))
            ]),
        )
        .await;
    let body = reply.assert_error(422, "invalid_records");
    assert_eq!(body["accepted"], 0, "{body}");
    assert_eq!(body["rejected"], 2, "{body}");
    assert_eq!(body["errors"][1]["field"], "request_method", "{body}");

    // Malformed bodies: 400, naming the field when there is one.
    for (path, text) in [
        ("/api/v1/logs", "[{\"timestamp\": "),
        ("/api/v1/logs", "{\"not\": \"an array\"}"),
        ("/api/v1/events", "not json"),
    ] {
        let reply = f
            .agent
            .send(
                Method::POST,
                path,
                Some(text.as_bytes().to_vec().into()),
                &[],
            )
            .await;
        let body = reply.assert_error(400, "bad_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("malformed JSON")),
            "{body}"
        );
    }
    let reply = f
        .agent
        .post(
            "/api/v1/heartbeat",
            &json!({"kind": "agent", "version": "1", "started_at": "not a time"}),
        )
        .await;
    let body = reply.assert_error(400, "bad_request");
    assert_eq!(body["error"]["field"], "started_at", "{body}");
    let reply = f
        .operator
        .post("/api/v1/decisions", &json!({"ip": 5}))
        .await;
    let body = reply.assert_error(400, "bad_request");
    assert_eq!(body["error"]["field"], "ip", "{body}");

    // A body over `server.max_body_bytes`: 413.
    let small = Server::start(
        db,
        Options {
            config: Some("[server]\nmax_body_bytes = 4096\n".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let agent = small.bearer(&f.tokens[2]);
    let one = json!([log_record(
        "203.0.113.6",
        "/a",
        "NORMAL",
        false,
        200,
        0.2,
        1
    )]);
    let fits = agent.post("/api/v1/logs", &one).await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.text());
    let many: Vec<Value> = (0..20)
        .map(|_| log_record("203.0.113.6", "/a", "NORMAL", false, 200, 0.2, 1))
        .collect();
    let many = Value::Array(many);
    assert!(many.to_string().len() > 4096);
    let body = agent
        .post("/api/v1/logs", &many)
        .await
        .assert_error(413, "payload_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4096")),
        "{body}"
    );
    let stored = f.viewer.get("/api/v1/requests?source_ip=203.0.113.6").await;
    assert_eq!(stored.json()["total"], 1, "{}", stored.text());
}

async fn request_log_is_filtered_paginated_and_summed_up(db: &str) {
    let f = fleet(db, Options::default()).await;
    let mut batch = Vec::new();
    for i in 0..6 {
        batch.push(log_record(
            "203.0.113.10",
            "/api/login",
            "DDoS",
            true,
            429,
            0.9,
            5 + i,
        ));
    }
    for i in 0..3 {
        batch.push(log_record(
            "203.0.113.20",
            "/admin/.env",
            "ATTACK",
            true,
            403,
            0.8,
            10 + i,
        ));
    }
    for i in 0..5 {
        let path = if i < 2 { "/index.html" } else { "/products/1" };
        batch.push(log_record(
            "198.51.100.1",
            path,
            "NORMAL",
            false,
            200,
            0.1,
            2 + i,
        ));
    }
    for _ in 0..2 {
        batch.push(log_record(
            "198.51.100.2",
            "/missing",
            "NORMAL",
            false,
            404,
            0.2,
            180,
        ));
    }
    let reply = f.agent.post("/api/v1/logs", &Value::Array(batch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["accepted"], 16);

    let total = |q: &'static str| {
        let viewer = f.viewer.clone();
        async move {
            let reply = viewer.get(&format!("/api/v1/requests?{q}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{q}: {}", reply.text());
            let body = reply.json();
            body["total"]
                .as_u64()
                .unwrap_or_else(|| panic!("{q}: {body}"))
        }
    };
    assert_eq!(total("hours=24").await, 16);
    assert_eq!(total("").await, 16, "the default window is 24 h");
    assert_eq!(total("hours=1").await, 14);
    assert_eq!(total("source_ip=203.0.113.10").await, 6);
    assert_eq!(total("prediction=DDoS").await, 6);
    assert_eq!(total("prediction=ATTACK").await, 3);
    assert_eq!(total("prediction=NORMAL").await, 7);
    assert_eq!(total("prediction=NORMAL&hours=1").await, 5);
    assert_eq!(total("is_blocked=1").await, 9);
    assert_eq!(total("is_blocked=0").await, 7);
    assert_eq!(total("status=404").await, 2);
    assert_eq!(total("status=429&source_ip=203.0.113.20").await, 0);
    assert_eq!(total("path=/products").await, 3, "a path prefix");
    assert_eq!(total("path=/api/login&is_blocked=1").await, 6);
    assert_eq!(total("gateway_id=agent-1").await, 16);
    assert_eq!(total("gateway_id=gw-other").await, 0);

    // Pages, newest first.
    let page = |n: u32| {
        let viewer = f.viewer.clone();
        async move {
            viewer
                .get(&format!(
                    "/api/v1/requests?source_ip=203.0.113.10&limit=4&page={n}"
                ))
                .await
                .json()
        }
    };
    let (first, second, third) = (page(1).await, page(2).await, page(3).await);
    assert_eq!(first["total"], 6, "{first}");
    assert_eq!(first["pages"], 2, "{first}");
    assert_eq!(first["limit"], 4, "{first}");
    assert_eq!(second["page"], 2, "{second}");
    assert_eq!(array(&first["requests"]).len(), 4);
    assert_eq!(array(&second["requests"]).len(), 2);
    assert!(array(&third["requests"]).is_empty(), "{third}");
    let times: Vec<String> = array(&first["requests"])
        .iter()
        .chain(array(&second["requests"]))
        .map(|r| r["timestamp"].as_str().expect("timestamp").to_owned())
        .collect();
    let parsed: Vec<chrono::DateTime<Utc>> =
        times.iter().map(|t| t.parse().expect("RFC 3339")).collect();
    assert!(
        parsed.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let ids: std::collections::HashSet<i64> = array(&first["requests"])
        .iter()
        .chain(array(&second["requests"]))
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 6, "pages do not overlap");
    let record = &first["requests"][0];
    assert_eq!(record["source_ip"], "203.0.113.10");
    assert_eq!(record["request_path"], "/api/login");
    assert_eq!(record["request_method"], "GET", "methods are upper-cased");
    assert_eq!(record["prediction"], "DDoS");
    assert_eq!(record["is_blocked"], 1);
    assert_eq!(record["response_status_code"], 429);
    assert_eq!(record["user_agent"], "test-agent/1.0");
    close(&record["confidence_score"], 0.9);

    for (query, field) in [
        ("limit=1001", "limit"),
        ("limit=0", "limit"),
        ("page=0", "page"),
        ("hours=0", "hours"),
        ("hours=8761", "hours"),
        ("prediction=EVIL", "prediction"),
        ("source_ip=nope", "source_ip"),
        ("is_blocked=maybe", "is_blocked"),
        ("status=42", "status"),
    ] {
        let body = f
            .viewer
            .get(&format!("/api/v1/requests?{query}"))
            .await
            .assert_error(400, "bad_request");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let max = f.viewer.get("/api/v1/requests?limit=1000").await;
    assert_eq!(max.status, StatusCode::OK, "{}", max.text());

    let blocked = f.viewer.get("/api/v1/blocked").await.json();
    assert_eq!(blocked["total"], 9, "{blocked}");
    assert!(
        array(&blocked["requests"])
            .iter()
            .all(|r| r["is_blocked"] == 1),
        "{blocked}"
    );
    let blocked = f
        .viewer
        .get("/api/v1/blocked?source_ip=203.0.113.20")
        .await
        .json();
    assert_eq!(blocked["total"], 3, "{blocked}");

    let stats = f.viewer.get("/api/v1/stats?hours=24").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());
    let s = stats.json();
    assert_eq!(s["time_range"], "last 24 hours", "{s}");
    assert_eq!(s["total_requests"], 16, "{s}");
    assert_eq!(s["blocked_requests"], 9, "{s}");
    assert_eq!(s["normal_requests"], 7, "{s}");
    close(&s["blocking_rate"], 9.0 / 16.0);
    close(
        &s["avg_confidence"],
        (6.0 * 0.9 + 3.0 * 0.8 + 5.0 * 0.1 + 2.0 * 0.2) / 16.0,
    );
    close(&s["requests_per_second"], 0.0);
    let top_ips = array(&s["top_attacking_ips"]);
    assert_eq!(top_ips.len(), 2, "only non-normal clients: {s}");
    assert_eq!(top_ips[0]["ip"], "203.0.113.10");
    assert_eq!(top_ips[0]["count"], 6);
    close(&top_ips[0]["avg_confidence"], 0.9);
    assert_eq!(top_ips[1]["ip"], "203.0.113.20");
    assert_eq!(top_ips[1]["count"], 3);
    close(&top_ips[1]["avg_confidence"], 0.8);
    let top_paths = array(&s["top_targeted_paths"]);
    assert_eq!(
        top_paths,
        &vec![
            json!({"path": "/api/login", "count": 6}),
            json!({"path": "/admin/.env", "count": 3})
        ],
        "{s}"
    );
    let hours = array(&s["by_hour"]);
    let requests: u64 = hours
        .iter()
        .map(|h| h["requests"].as_u64().unwrap_or(0))
        .sum();
    let blocked: u64 = hours
        .iter()
        .map(|h| h["blocked"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!((requests, blocked), (16, 9), "{s}");
    assert!(
        hours.len() >= 2,
        "records 3 h apart are in different hours: {s}"
    );
    let starts: Vec<chrono::DateTime<Utc>> = hours
        .iter()
        .map(|h| h["hour"].as_str().expect("hour").parse().expect("time"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "oldest first: {s}");
    let by = &s["by_prediction"];
    assert_eq!(by["DDoS"]["count"], 6, "{s}");
    close(&by["DDoS"]["percentage"], 37.5);
    assert_eq!(by["ATTACK"]["count"], 3, "{s}");
    close(&by["ATTACK"]["percentage"], 18.75);
    assert_eq!(by["NORMAL"]["count"], 7, "{s}");
    close(&by["NORMAL"]["percentage"], 43.75);

    let recent = f.viewer.get("/api/v1/stats?hours=1").await.json();
    assert_eq!(recent["total_requests"], 14, "{recent}");
    assert_eq!(recent["normal_requests"], 5, "{recent}");
    let body = f
        .viewer
        .get("/api/v1/stats?hours=-1")
        .await
        .assert_error(400, "bad_request");
    assert_eq!(body["error"]["field"], "hours");
}

async fn bans_unbans_and_the_whitelist(db: &str) {
    let f = fleet(db, Options::default()).await;
    let ops = &f.operator;

    let made = ops
        .post(
            "/api/v1/decisions",
            &json!({"ip": "192.0.2.7", "duration_minutes": 30, "reason": "seen probing"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let ban = made.json();
    let id = ban["id"].as_i64().expect("id");
    assert_eq!(ban["ip"], "192.0.2.7");
    assert_eq!(ban["action"], "ban");
    assert_eq!(ban["reason"], "seen probing");
    assert_eq!(ban["origin_kind"], "operator");
    assert_eq!(ban["origin_name"], "ops");
    assert_eq!(ban["active"], true);
    let at: chrono::DateTime<Utc> = ban["at"].as_str().expect("at").parse().expect("time");
    let until: chrono::DateTime<Utc> = ban["until"].as_str().expect("until").parse().expect("time");
    assert_eq!((until - at).num_minutes(), 30, "{ban}");

    let prefix = ops
        .post("/api/v1/decisions", &json!({"ip": "2001:db8:1::/64"}))
        .await;
    assert_eq!(prefix.status, StatusCode::CREATED, "{}", prefix.text());
    assert_eq!(prefix.json()["ip"], "2001:db8:1::/64");
    assert_eq!(prefix.json()["reason"], "manual ban");

    for (body, field) in [
        (json!({"ip": "nope"}), "ip"),
        (
            json!({"ip": "192.0.2.9", "duration_minutes": 0}),
            "duration_minutes",
        ),
        (
            json!({"ip": "192.0.2.9", "duration_minutes": 525_601}),
            "duration_minutes",
        ),
    ] {
        let reply = ops.post("/api/v1/decisions", &body).await;
        let err = reply.assert_error(400, "bad_request");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }

    let active = f.viewer.get("/api/v1/decisions?active=true").await.json();
    assert_eq!(on(&active, "192.0.2.7").len(), 1, "{active}");
    assert_eq!(on(&active, "2001:db8:1::/64").len(), 1, "{active}");
    // `ip` takes a prefix too: the decisions on it or inside it.
    let inside = f
        .viewer
        .get("/api/v1/decisions?ip=2001:db8::/32")
        .await
        .json();
    assert_eq!(on(&inside, "2001:db8:1::/64").len(), 1, "{inside}");
    assert!(on(&inside, "192.0.2.7").is_empty(), "{inside}");
    let blocked = f.viewer.get("/api/v1/blocked-ips").await.json();
    let row = array(&blocked)
        .iter()
        .find(|b| b["ip"] == "192.0.2.7")
        .unwrap_or_else(|| panic!("{blocked}"));
    assert_eq!(row["status"], "active", "{blocked}");
    assert_eq!(row["block_count"], 1, "{blocked}");

    // Unban by id.
    let lifted = ops.delete(&format!("/api/v1/decisions/{id}")).await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());
    assert_eq!(lifted.json(), json!({"revoked": [id]}));
    ops.delete(&format!("/api/v1/decisions/{id}"))
        .await
        .assert_error(404, "not_found");
    ops.delete("/api/v1/decisions/999999")
        .await
        .assert_error(404, "not_found");
    let bad = ops
        .delete("/api/v1/decisions/abc")
        .await
        .assert_error(400, "bad_request");
    assert_eq!(bad["error"]["field"], "id");
    let history = f.viewer.get("/api/v1/decisions?ip=192.0.2.7").await.json();
    let rows = on(&history, "192.0.2.7");
    assert_eq!(rows.len(), 1, "{history}");
    assert_eq!(rows[0]["active"], false, "{history}");
    assert_eq!(rows[0]["revoked_by"], "ops", "{history}");
    assert!(rows[0]["revoked_at"].is_string(), "{history}");
    let active = f.viewer.get("/api/v1/decisions?active=true").await.json();
    assert!(on(&active, "192.0.2.7").is_empty(), "{active}");
    let blocked = f.viewer.get("/api/v1/blocked-ips").await.json();
    let row = array(&blocked)
        .iter()
        .find(|b| b["ip"] == "192.0.2.7")
        .unwrap_or_else(|| panic!("{blocked}"));
    assert_eq!(row["status"], "expired", "{blocked}");

    // Unban by address: every ban on it.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let made = ops
            .post("/api/v1/decisions", &json!({"ip": "192.0.2.8"}))
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
        ids.push(made.json()["id"].as_i64().expect("id"));
    }
    let lifted = ops.delete("/api/v1/decisions?ip=192.0.2.8").await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());
    let mut revoked: Vec<i64> = array(&lifted.json()["revoked"])
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    revoked.sort_unstable();
    assert_eq!(revoked, ids);
    ops.delete("/api/v1/decisions?ip=192.0.2.8")
        .await
        .assert_error(404, "not_found");
    let bad = ops
        .delete("/api/v1/decisions")
        .await
        .assert_error(400, "bad_request");
    assert_eq!(bad["error"]["field"], "ip");
    // A prefix lifts the bans inside it.
    let lifted = ops.delete("/api/v1/decisions?ip=2001:db8:1::/64").await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());

    // The whitelist.
    let added = ops
        .post(
            "/api/v1/whitelist",
            &json!({"ip": "198.51.100.0/24", "comment": "office"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    let entry = added.json();
    assert_eq!(entry["ip"], "198.51.100.0/24");
    assert_eq!(entry["comment"], "office");
    assert_eq!(entry["created_by"], "ops");
    let wid = entry["id"].as_i64().expect("id");
    let listed = f.viewer.get("/api/v1/whitelist").await.json();
    assert_eq!(array(&listed).len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], wid);
    let bad = ops
        .post("/api/v1/whitelist", &json!({"ip": "x"}))
        .await
        .assert_error(400, "bad_request");
    assert_eq!(bad["error"]["field"], "ip");

    let refused = ops
        .post("/api/v1/decisions", &json!({"ip": "198.51.100.9"}))
        .await
        .assert_error(409, "conflict");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("whitelisted")),
        "{refused}"
    );
    // A prefix covering a whitelisted address is refused too.
    ops.post("/api/v1/decisions", &json!({"ip": "198.51.0.0/16"}))
        .await
        .assert_error(409, "conflict");
    let none = f
        .viewer
        .get("/api/v1/decisions?ip=198.51.100.9")
        .await
        .json();
    assert!(array(&none).is_empty(), "{none}");
    let forced = ops
        .post(
            "/api/v1/decisions",
            &json!({"ip": "198.51.100.9", "force": true}),
        )
        .await;
    assert_eq!(forced.status, StatusCode::CREATED, "{}", forced.text());

    // One entry per range: a second is refused, and so is a PUT that
    // would make an entry another's twin (which stays as it was).
    ops.post(
        "/api/v1/whitelist",
        &json!({"ip": "198.51.100.0/24", "comment": "again"}),
    )
    .await
    .assert_error(409, "conflict");
    let lab = ops
        .post(
            "/api/v1/whitelist",
            &json!({"ip": "203.0.113.0/28", "comment": "lab"}),
        )
        .await;
    assert_eq!(lab.status, StatusCode::CREATED, "{}", lab.text());
    let lab_id = lab.json()["id"].as_i64().expect("id");
    ops.put(
        &format!("/api/v1/whitelist/{lab_id}"),
        &json!({"ip": "198.51.100.0/24", "comment": "twin"}),
    )
    .await
    .assert_error(409, "conflict");
    let listed = f.viewer.get("/api/v1/whitelist").await.json();
    assert!(
        array(&listed)
            .iter()
            .any(|w| w["id"] == lab_id && w["ip"] == "203.0.113.0/28"),
        "a refused PUT changes nothing: {listed}"
    );
    let deleted = ops.delete(&format!("/api/v1/whitelist/{lab_id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    for method in [Method::PUT, Method::DELETE] {
        let body = ops
            .send(
                method.clone(),
                "/api/v1/whitelist/abc",
                Some(json!({"ip": "192.0.2.1"}).to_string().into()),
                &[],
            )
            .await
            .assert_error(400, "bad_request");
        assert_eq!(body["error"]["field"], "id", "{method}: {body}");
    }

    let replaced = ops
        .put(
            &format!("/api/v1/whitelist/{wid}"),
            &json!({"ip": "198.51.100.0/25", "comment": "smaller office"}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    let replaced = replaced.json();
    assert_eq!(replaced["ip"], "198.51.100.0/25");
    assert_eq!(replaced["comment"], "smaller office");
    let wid = replaced["id"].as_i64().expect("id");
    let listed = f.viewer.get("/api/v1/whitelist").await.json();
    assert_eq!(array(&listed).len(), 1, "{listed}");
    assert_eq!(listed[0]["ip"], "198.51.100.0/25", "{listed}");
    let outside = ops
        .post("/api/v1/decisions", &json!({"ip": "198.51.100.200"}))
        .await;
    assert_eq!(outside.status, StatusCode::CREATED, "{}", outside.text());
    ops.put(
        "/api/v1/whitelist/999999",
        &json!({"ip": "192.0.2.1", "comment": ""}),
    )
    .await
    .assert_error(404, "not_found");
    f.viewer
        .delete(&format!("/api/v1/whitelist/{wid}"))
        .await
        .assert_error(403, "forbidden");
    let deleted = ops.delete(&format!("/api/v1/whitelist/{wid}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    ops.delete(&format!("/api/v1/whitelist/{wid}"))
        .await
        .assert_error(404, "not_found");
    let listed = f.viewer.get("/api/v1/whitelist").await.json();
    assert!(array(&listed).is_empty(), "{listed}");
    let now_allowed = ops
        .post("/api/v1/decisions", &json!({"ip": "198.51.100.10"}))
        .await;
    assert_eq!(
        now_allowed.status,
        StatusCode::CREATED,
        "{}",
        now_allowed.text()
    );
}

async fn decision_stream_answers_changes_and_long_polls(db: &str) {
    let f = fleet(db, Options::default()).await;
    let ops = &f.operator;
    let first = ops
        .post("/api/v1/decisions", &json!({"ip": "192.0.2.30"}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());

    // A follower's start: every ban in force, and a cursor.
    let start = f.agent.get("/api/v1/decisions/stream").await;
    assert_eq!(start.status, StatusCode::OK, "{}", start.text());
    let start = start.json();
    let cursor = start["cursor"].as_i64().expect("cursor");
    let changes = array(&start["changes"]);
    assert_eq!(changes.len(), 1, "{start}");
    assert_eq!(changes[0]["kind"], "added");
    assert_eq!(changes[0]["decision"]["ip"], "192.0.2.30");
    let quiet = f
        .agent
        .get(&format!("/api/v1/decisions/stream?since={cursor}"))
        .await
        .json();
    assert!(array(&quiet["changes"]).is_empty(), "{quiet}");
    assert_eq!(quiet["cursor"], cursor, "{quiet}");

    // A long poll returns when another client bans.
    let wait = 5;
    let follower = f.agent.clone();
    let asked = Instant::now();
    let poll = tokio::spawn(async move {
        let reply = follower
            .get(&format!(
                "/api/v1/decisions/stream?since={cursor}&wait={wait}"
            ))
            .await;
        (reply, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let banned = ops
        .post("/api/v1/decisions", &json!({"ip": "192.0.2.31"}))
        .await;
    assert_eq!(banned.status, StatusCode::CREATED, "{}", banned.text());
    let banned_at = Instant::now();
    let (reply, answered) = poll.await.expect("long poll");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    let changes = array(&body["changes"]);
    assert_eq!(
        changes.len(),
        1,
        "woken by the ban, not the timeout: {body}"
    );
    assert_eq!(changes[0]["kind"], "added");
    assert_eq!(changes[0]["decision"]["ip"], "192.0.2.31");
    assert!(
        answered.duration_since(asked) < Duration::from_secs(wait),
        "answered before the wait ran out"
    );
    eprintln!(
        "long poll answered {:?} after the ban returned",
        answered.saturating_duration_since(banned_at)
    );
    let cursor = body["cursor"].as_i64().expect("cursor");
    assert_eq!(cursor, changes[0]["seq"].as_i64().expect("seq"));

    // Revocations are changes too.
    let lifted = ops.delete("/api/v1/decisions?ip=192.0.2.31").await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text());
    let next = f
        .agent
        .get(&format!("/api/v1/decisions/stream?since={cursor}&wait=5"))
        .await
        .json();
    let changes = array(&next["changes"]);
    assert_eq!(changes.len(), 1, "{next}");
    assert_eq!(changes[0]["kind"], "revoked");
    assert_eq!(changes[0]["decision"]["ip"], "192.0.2.31");
    assert_eq!(changes[0]["decision"]["active"], false);
    assert!(next["cursor"].as_i64().expect("cursor") > cursor, "{next}");

    // A wait with nothing new answers an empty list at its end.
    let cursor = next["cursor"].as_i64().expect("cursor");
    let empty = f
        .agent
        .get(&format!("/api/v1/decisions/stream?since={cursor}&wait=1"))
        .await
        .json();
    assert!(array(&empty["changes"]).is_empty(), "{empty}");
    assert_eq!(empty["cursor"], cursor);

    let start = f.agent.get("/api/v1/decisions/stream").await.json();
    let ips: Vec<&Value> = array(&start["changes"])
        .iter()
        .map(|c| &c["decision"]["ip"])
        .collect();
    assert_eq!(ips, [&json!("192.0.2.30")], "only bans in force: {start}");
    assert_eq!(start["cursor"], cursor);

    for (query, field) in [
        ("wait=31", "wait"),
        ("since=-1", "since"),
        ("limit=0", "limit"),
    ] {
        let body = f
            .agent
            .get(&format!("/api/v1/decisions/stream?{query}"))
            .await
            .assert_error(400, "bad_request");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
}

fn finding(ip: &str, label: &str, count: u64) -> Finding {
    let now = Utc::now();
    Finding {
        time: now,
        subject: Subject::Net(ip.parse().expect("net")),
        label: label.to_owned(),
        score: 0.9,
        level: Level::High,
        evidence: Evidence {
            count,
            first_seen: Some(now - chrono::Duration::minutes(2)),
            last_seen: Some(now),
            first_line: Some("Failed password for root from 203.0.113.66".to_owned()),
            ..Evidence::default()
        },
    }
}

async fn pushed_events_store_findings_decisions_and_actions(db: &str) {
    let f = fleet(db, Options::default()).await;
    // As an agent makes it: `at` with the clock's full precision.
    let now = Utc::now();
    let decision = Decision {
        id: None,
        action: Action::Ban,
        target: "203.0.113.66/32".parse().expect("net"),
        at: now,
        until: Some(now + chrono::Duration::hours(4)),
        reason: "ssh-bruteforce: 6 failures in 1m".to_owned(),
        origin: Origin::Scenario("ssh-bruteforce".to_owned()),
        dry_run: false,
        escalation: 0,
        findings: vec![finding("203.0.113.66/32", "ssh-bruteforce", 6)],
    };
    let mut unban = decision.clone();
    unban.action = Action::Unban;
    let mut event = Event::new(
        now,
        Arc::from("sshd"),
        EventKind::AuthFailure,
        Some("203.0.113.66".parse().expect("addr")),
    );
    event.fields.set("user", "root".to_owned());
    let push = json!([
        {"kind": "finding", "finding": finding("203.0.113.77/32", "ssh-probe", 2), "note": "below the policy's level"},
        {"kind": "decision", "decision": decision},
        {"kind": "action", "time": rfc3339(now), "action": "ban", "target": "203.0.113.66",
         "ok": true, "detail": "nftables"},
        {"kind": "bogus"},
        {"kind": "decision", "decision": unban},
        {"kind": "event", "event": event},
    ]);
    let reply = f.agent.post("/api/v1/events", &push).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["accepted"], 4, "{body}");
    assert_eq!(body["rejected"], 2, "{body}");
    assert_eq!(body["errors"][0]["index"], 3, "{body}");
    assert_eq!(body["errors"][1]["index"], 4, "{body}");
    assert_eq!(body["errors"][1]["field"], "decision.action", "{body}");

    let found = f
        .viewer
        .get("/api/v1/decisions?ip=203.0.113.66")
        .await
        .json();
    let rows = on(&found, "203.0.113.66");
    assert_eq!(rows.len(), 1, "{found}");
    assert_eq!(rows[0]["origin_kind"], "scenario");
    assert_eq!(rows[0]["origin_name"], "ssh-bruteforce");
    assert_eq!(rows[0]["active"], true);
    assert_eq!(rows[0]["findings"][0]["evidence"]["count"], 6, "{found}");
    let stream = f.agent.get("/api/v1/decisions/stream").await.json();
    assert!(
        array(&stream["changes"])
            .iter()
            .any(|c| c["decision"]["ip"] == "203.0.113.66"),
        "the fleet follows it: {stream}"
    );

    // A retried push (its answer lost) stores nothing twice.
    let again = f
        .agent
        .post(
            "/api/v1/events",
            &json!([{"kind": "decision", "decision": decision}]),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    let found = f
        .viewer
        .get("/api/v1/decisions?ip=203.0.113.66")
        .await
        .json();
    assert_eq!(
        on(&found, "203.0.113.66").len(),
        1,
        "the same decision is stored once: {found}"
    );

    let findings = f.viewer.get("/api/v1/findings").await;
    assert_eq!(findings.status, StatusCode::OK, "{}", findings.text());
    let findings = findings.json();
    assert!(
        findings.to_string().contains("ssh-probe"),
        "the finding without a decision is listed: {findings}"
    );

    // Nothing valid: 422.
    let body = f
        .agent
        .post("/api/v1/events", &json!([{"kind": "finding"}]))
        .await
        .assert_error(422, "invalid_records");
    assert_eq!(body["rejected"], 1, "{body}");
}

async fn heartbeats_list_the_fleet(db: &str) {
    let f = fleet(db, Options::default()).await;
    let started = Utc::now() - chrono::Duration::seconds(120);
    let beat = f
        .agent
        .post(
            "/api/v1/heartbeat",
            &json!({"kind": "agent", "version": "0.1.0", "started_at": rfc3339(started),
                    "processed": 1234, "blocked": 7}),
        )
        .await;
    assert_eq!(beat.status, StatusCode::NO_CONTENT, "{}", beat.text());
    let beat = f
        .agent
        .post(
            "/api/v1/heartbeat",
            &json!({"id": "gw-1", "kind": "gateway", "version": "0.1.0",
                    "started_at": rfc3339(started), "processed": 50000, "blocked": 321}),
        )
        .await;
    assert_eq!(beat.status, StatusCode::NO_CONTENT, "{}", beat.text());
    let body = f
        .agent
        .post(
            "/api/v1/heartbeat",
            &json!({"kind": "robot", "version": "0.1.0", "started_at": rfc3339(started)}),
        )
        .await
        .assert_error(400, "bad_request");
    assert_eq!(body["error"]["field"], "kind");

    let agents = f.viewer.get("/api/v1/agents").await;
    assert_eq!(agents.status, StatusCode::OK, "{}", agents.text());
    let agents = agents.json();
    assert_eq!(array(&agents).len(), 2, "{agents}");
    let member = |id: &str| {
        array(&agents)
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {agents}"))
            .clone()
    };
    let agent = member("agent-1");
    assert_eq!(agent["kind"], "agent");
    assert_eq!(agent["status"], "healthy");
    assert_eq!(agent["ip"], "127.0.0.1");
    assert_eq!(agent["version"], "0.1.0");
    assert_eq!(agent["requests_processed"], 1234);
    assert_eq!(agent["blocked_count"], 7);
    let uptime = agent["uptime_seconds"].as_i64().expect("uptime");
    assert!((119..600).contains(&uptime), "uptime {uptime}");
    let gateway = member("gw-1");
    assert_eq!(gateway["kind"], "gateway");
    assert_eq!(gateway["requests_processed"], 50000);
    assert_eq!(gateway["blocked_count"], 321);

    // A later heartbeat replaces the earlier one.
    let beat = f
        .agent
        .post(
            "/api/v1/heartbeat",
            &json!({"kind": "agent", "version": "0.2.0", "started_at": rfc3339(started),
                    "processed": 2000, "blocked": 8}),
        )
        .await;
    assert_eq!(beat.status, StatusCode::NO_CONTENT, "{}", beat.text());
    let agents = f.viewer.get("/api/v1/agents").await.json();
    assert_eq!(array(&agents).len(), 2, "{agents}");
    let agent = array(&agents)
        .iter()
        .find(|a| a["id"] == "agent-1")
        .unwrap_or_else(|| panic!("{agents}"));
    assert_eq!(agent["version"], "0.2.0");
    assert_eq!(agent["requests_processed"], 2000);
}

async fn live_stream_delivers_new_items(db: &str) {
    let f = fleet(
        db,
        Options {
            config: Some("[server]\nlive_heartbeat = \"1s\"\n".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let server = &f.server;
    let viewer = f.tokens[1].clone();
    // Only a hang guard: the poller runs every 250 ms.
    let limit = Duration::from_secs(10);

    let mut live = server
        .live(&Auth::Bearer(viewer.clone()), "")
        .await
        .expect("connect");
    let hello = live.next(limit).await.expect("hello");
    assert_eq!(hello, json!({"type": "subscribed", "channels": []}));
    live.send(&json!({"subscribe": ["requests", "decisions"]}))
        .await;
    let (reply, _) = live.until(limit, |m| m["type"] != "heartbeat").await;
    assert_eq!(
        reply,
        json!({"type": "subscribed", "channels": ["decisions", "requests"]})
    );
    let mut decisions_only = server
        .live(&Auth::Bearer(viewer.clone()), "?channels=decisions")
        .await
        .expect("connect");
    let hello = decisions_only.next(limit).await.expect("hello");
    assert_eq!(hello["channels"], json!(["decisions"]));
    // Browsers authenticate the WebSocket with the session cookie.
    let session = server.login("admin", ADMIN_PASSWORD).await.json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut by_cookie = server
        .live(
            &Auth::Cookie {
                session,
                csrf: None,
            },
            "?channels=decisions",
        )
        .await
        .expect("connect with the cookie");
    let hello = by_cookie.next(limit).await.expect("hello");
    assert_eq!(hello["channels"], json!(["decisions"]));

    let pushed = f
        .agent
        .post(
            "/api/v1/logs",
            &json!([
                log_record("203.0.113.90", "/live-1", "NORMAL", false, 200, 0.1, 0),
                log_record("203.0.113.91", "/live-2", "DDoS", true, 429, 0.95, 0),
            ]),
        )
        .await;
    assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.text());
    let stored = Instant::now();
    let mut paths = Vec::new();
    while paths.len() < 2 {
        let (item, _) = live
            .until(limit, |m| m["type"] == "item" && m["channel"] == "requests")
            .await;
        paths.push(
            item["data"]["request_path"]
                .as_str()
                .expect("path")
                .to_owned(),
        );
        if item["data"]["request_path"] == "/live-2" {
            assert_eq!(item["data"]["source_ip"], "203.0.113.91");
            assert_eq!(item["data"]["is_blocked"], 1);
        }
    }
    paths.sort();
    assert_eq!(paths, ["/live-1", "/live-2"]);
    eprintln!("request items arrived {:?} after storing", stored.elapsed());

    let ban = f
        .operator
        .post("/api/v1/decisions", &json!({"ip": "203.0.113.91"}))
        .await;
    assert_eq!(ban.status, StatusCode::CREATED, "{}", ban.text());
    let stored = Instant::now();
    let (item, _) = live
        .until(limit, |m| {
            m["type"] == "item" && m["channel"] == "decisions"
        })
        .await;
    eprintln!("decision item arrived {:?} after storing", stored.elapsed());
    assert_eq!(item["data"]["ip"], "203.0.113.91");
    assert_eq!(item["data"]["change"], "added");
    assert_eq!(item["data"]["origin_name"], "ops");
    assert!(item["data"]["seq"].is_i64(), "{item}");
    let (item, before) = decisions_only
        .until(limit, |m| {
            m["type"] == "item" && m["channel"] == "decisions"
        })
        .await;
    assert_eq!(item["data"]["ip"], "203.0.113.91");
    assert!(
        before.iter().all(|m| m["type"] == "heartbeat"),
        "nothing from channels it did not ask for: {before:?}"
    );
    let (item, _) = by_cookie
        .until(limit, |m| {
            m["type"] == "item" && m["channel"] == "decisions"
        })
        .await;
    assert_eq!(item["data"]["ip"], "203.0.113.91");

    // Heartbeats every `server.live_heartbeat`.
    let (beat, _) = live.until(limit, |m| m["type"] == "heartbeat").await;
    assert!(beat["time"].is_string(), "{beat}");

    live.send(&json!({"subscribe": ["nope"]})).await;
    let (error, _) = live
        .until(limit, |m| m["type"] != "heartbeat" && m["type"] != "item")
        .await;
    assert_eq!(error["type"], "error", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown channel")),
        "{error}"
    );
    live.send_text("not json").await;
    let (error, _) = live
        .until(limit, |m| m["type"] != "heartbeat" && m["type"] != "item")
        .await;
    assert_eq!(error["type"], "error", "{error}");

    let metrics = server.metrics(&f.viewer).await;
    assert!(
        metrics.contains("rampart_server_live_clients 3"),
        "{metrics}"
    );

    // Refused at the handshake: no credentials, an agent, an unknown channel.
    for (auth, query, status) in [
        (Auth::None, "", 401),
        (Auth::Bearer(f.tokens[2].clone()), "", 403),
        (Auth::Bearer(viewer.clone()), "?channels=bogus", 400),
    ] {
        match server.live(&auth, query).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{query}");
            }
            Err(e) => panic!("{query}: {e}"),
            Ok(_) => panic!("{query}: accepted"),
        }
    }
}

async fn metrics_and_api_documents(db: &str) {
    let f = fleet(db, Options::default()).await;
    let pushed = f
        .agent
        .post(
            "/api/v1/logs",
            &json!([
                log_record("203.0.113.1", "/", "NORMAL", false, 200, 0.1, 1),
                log_record("203.0.113.2", "/", "NORMAL", false, 200, 0.1, 1),
                {"source_ip": "bad"},
            ]),
        )
        .await;
    assert_eq!(pushed.status, StatusCode::OK, "{}", pushed.text());
    f.viewer
        .get("/api/v1/nothing-here")
        .await
        .assert_error(404, "not_found");

    let metrics = f.server.client(Auth::None).get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::UNAUTHORIZED);
    let reply = f.viewer.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.header("content-type")
    );
    let text = reply.text();
    let line = |prefix: &str, labels: &[&str]| {
        text.lines()
            .find(|l| l.starts_with(prefix) && labels.iter().all(|x| l.contains(x)))
            .unwrap_or_else(|| panic!("no {prefix} with {labels:?} in\n{text}"))
            .to_owned()
    };
    let logs = line(
        "rampart_server_http_requests_total{",
        &[
            "route=\"/api/v1/logs\"",
            "method=\"POST\"",
            "status=\"200\"",
        ],
    );
    assert!(logs.ends_with(" 1"), "{logs}");
    line("rampart_server_http_requests_total{", &["status=\"404\""]);
    line("rampart_server_http_request_duration_seconds_bucket{", &[]);
    let accepted = line(
        "rampart_server_ingested_records_total{",
        &["kind=\"logs\"", "outcome=\"accepted\""],
    );
    assert!(accepted.ends_with(" 2"), "{accepted}");
    let rejected = line(
        "rampart_server_ingested_records_total{",
        &["kind=\"logs\"", "outcome=\"rejected\""],
    );
    assert!(rejected.ends_with(" 1"), "{rejected}");
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );

    let doc = f.viewer.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text());
    let doc = doc.json();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/health",
        "/metrics",
        "/ws/live",
        "/api/v1/auth/login",
        "/api/v1/logs",
        "/api/v1/events",
        "/api/v1/heartbeat",
        "/api/v1/requests",
        "/api/v1/blocked",
        "/api/v1/stats",
        "/api/v1/agents",
        "/api/v1/decisions",
        "/api/v1/decisions/{id}",
        "/api/v1/decisions/stream",
        "/api/v1/blocked-ips",
        "/api/v1/whitelist",
        "/api/v1/whitelist/{id}",
        "/api/v1/users",
        "/api/v1/tokens",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is documented; paths: {:?}",
            doc["paths"]
                .as_object()
                .map(|o| o.keys().collect::<Vec<_>>())
        );
    }
    assert!(doc["paths"]["/api/v1/decisions"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/decisions"]["delete"].is_object());
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{}",
        doc["components"]
    );

    let page = f.viewer.get("/api/v1/docs").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        page.header("content-type")
    );
    assert!(
        page.text().to_ascii_lowercase().contains("<html"),
        "{}",
        page.text()
    );
}
