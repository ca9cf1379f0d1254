//! rampart's central server: one REST API (`/api/v1`, described by an
//! OpenAPI document) over the store, a live WebSocket stream, the decision
//! stream fleet members follow, authentication (users with roles, machine
//! tokens, sessions with CSRF protection), Prometheus metrics and
//! retention jobs.
//!
//! [`Server::bind`] opens the listener; [`Server::run`] serves until the
//! shutdown future resolves.

pub mod access;
pub mod admin;
pub mod auth;
pub mod decisions;
pub mod error;
pub mod hub;
pub mod ingest;
pub mod limiter;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Extension, Json, Router, middleware};
use chrono::Utc;
use rampart_config::ServerConfig;
use rampart_detect::Pipeline;
use rampart_store::Store;

use crate::access::Principal;
use crate::error::{ApiError, BodyLimit};
use crate::state::AppState;
use rampart_api::Health;

pub use crate::state::AppState as ServerState;

/// A bound server, ready to run.
pub struct Server {
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(#[from] rampart_http::tls::TlsError),
}

impl Server {
    /// Binds `config.listen` (and loads TLS). `detector` runs rampart's
    /// scenarios over the server's own events (failed logins); `node` names
    /// the server in what it records.
    pub async fn bind(
        config: ServerConfig,
        store: Arc<dyn Store>,
        detector: Option<Pipeline>,
        node: String,
    ) -> Result<Self, ServerError> {
        let tls = match &config.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(
                rampart_http::tls::server_config(&t.cert, &t.key)?,
            )),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
        let state = Arc::new(AppState {
            store,
            metrics: metrics::ServerMetrics::new(),
            live: hub::Hub::new(),
            login: Mutex::new(access::LoginLimiter::default()),
            detector: detector.map(tokio::sync::Mutex::new),
            node,
            started: Utc::now(),
            config,
        });
        Ok(Self {
            state,
            listener,
            tls,
        })
    }

    /// The address actually bound (port 0 becomes the chosen port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for embedding and tests).
    pub fn state(&self) -> Arc<AppState> {
        Arc::clone(&self.state)
    }

    /// Serves until `shutdown` resolves, with the live poller and the
    /// retention job beside.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let poller = tokio::spawn(live::poll(Arc::clone(&self.state)));
        let retention = tokio::spawn(retention(Arc::clone(&self.state)));
        let app =
            router(Arc::clone(&self.state)).into_make_service_with_connect_info::<SocketAddr>();
        // Long polls and live clients end first, so the graceful shutdown
        // does not wait for them.
        let state = Arc::clone(&self.state);
        let shutdown = async move {
            shutdown.await;
            state.live.stop();
        };
        let result = match self.tls {
            None => {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(acceptor) => {
                // `tap_io` only so that axum's `ConnectInfo<SocketAddr>`
                // applies to this listener too (it is implemented for any
                // tapped listener whose address is a SocketAddr).
                use axum::serve::ListenerExt;
                let listener =
                    rampart_http::tls::TlsListener::new(self.listener, acceptor).tap_io(|_| ());
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        poller.abort();
        retention.abort();
        result
    }
}

/// Every route, behind authentication, metrics and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/ws/live", get(live::ws))
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/docs", get(openapi::page))
        .route("/api/v1/auth/login", post(access::login))
        .route("/api/v1/auth/logout", post(access::logout))
        .route("/api/v1/auth/me", get(access::me))
        .route("/api/v1/logs", post(ingest::post_logs))
        .route("/api/v1/events", post(ingest::post_events))
        .route("/api/v1/heartbeat", post(ingest::heartbeat))
        .route("/api/v1/requests", get(query::requests))
        .route("/api/v1/blocked", get(query::blocked))
        .route("/api/v1/stats", get(query::stats))
        .route("/api/v1/agents", get(query::agents))
        .route("/api/v1/findings", get(query::findings))
        .route("/api/v1/actions", get(query::actions))
        .route(
            "/api/v1/decisions",
            get(decisions::list)
                .post(decisions::ban)
                .delete(decisions::unban_ip),
        )
        .route("/api/v1/decisions/stream", get(decisions::stream))
        .route("/api/v1/decisions/{id}", delete(decisions::unban_id))
        .route("/api/v1/blocked-ips", get(decisions::blocked_ips))
        .route(
            "/api/v1/whitelist",
            get(decisions::whitelist).post(decisions::whitelist_add),
        )
        .route(
            "/api/v1/whitelist/{id}",
            put(decisions::whitelist_put).delete(decisions::whitelist_delete),
        )
        .route("/api/v1/users", get(admin::users).post(admin::add_user))
        .route("/api/v1/users/{name}", patch(admin::change_user))
        .route(
            "/api/v1/tokens",
            get(admin::tokens).post(admin::create_token),
        )
        .route("/api/v1/tokens/{name}", delete(admin::revoke_token))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            access::authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(BodyLimit(limit)))
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".to_owned())
}

/// Health of the server and its store (no authentication).
#[utoipa::path(get, path = "/health", tag = "fleet", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let mut components = std::collections::BTreeMap::new();
    let store = tokio::time::timeout(Duration::from_secs(2), state.store.latest_cursor()).await;
    let store_ok = matches!(store, Ok(Ok(_)));
    components.insert(
        "store".to_owned(),
        match store {
            Ok(Ok(_)) => "ok".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in 2 s".to_owned(),
        },
    );
    components.insert(
        "live".to_owned(),
        format!("ok ({} clients)", state.metrics.live_clients.get()),
    );
    let body = Health {
        status: if store_ok { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: (Utc::now() - state.started).num_seconds(),
        components,
    };
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics (viewer, or public when listed in `server.public`).
#[utoipa::path(get, path = "/metrics", tag = "fleet", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics_text(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    principal.require(rampart_store::Role::Viewer)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response())
}

/// Deletes what is past its retention, every ten minutes.
async fn retention(state: Arc<AppState>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(600));
    loop {
        ticker.tick().await;
        let now = Utc::now();
        let r = &state.config.retention;
        let requests = state
            .store
            .purge_requests(now - r.requests.to_chrono())
            .await;
        let findings = state
            .store
            .purge_findings(now - r.findings.to_chrono())
            .await;
        let events = state.store.purge_events(now - r.events.to_chrono()).await;
        let actions = state.store.purge_actions(now - r.events.to_chrono()).await;
        match (requests, findings, events, actions) {
            (Ok(a), Ok(b), Ok(c), Ok(d)) => {
                if a + b + c + d > 0 {
                    tracing::info!(
                        requests = a,
                        findings = b,
                        events = c,
                        actions = d,
                        "retention: deleted"
                    );
                }
            }
            (a, b, c, d) => {
                state.metrics.store_errors.inc();
                tracing::error!(?a, ?b, ?c, ?d, "retention failed");
            }
        }
    }
}
