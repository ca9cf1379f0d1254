//! The state every connection and task of a gateway shares: the backend
//! pool, the detection hook ([`Guard`]: ban table, inspector, policy),
//! metrics, the request log and the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rampart_config::{GatewayConfig, PolicyConfig};
use rampart_core::Whitelist;
use rampart_guard::Guard;
use rampart_store::Store;

use crate::backend::Pool;
use crate::context::Body;
use crate::hooks::Hooks;
use crate::metrics::{BackendLabel, Metrics};
use crate::request_log::RequestLog;
use rampart_http::forwarded::TrustedProxies;

/// A gateway that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config is not usable (no backend, bad URL, bad CIDR).
    #[error("{0}")]
    Config(String),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] rampart_http::tls::TlsError),
    /// The store could not be read at start.
    #[error(transparent)]
    Store(#[from] rampart_store::StoreError),
}

/// What the gateway needs from the rest of rampart.
pub struct GatewayContext {
    /// Where decisions and the request log go.
    pub store: Arc<dyn Store>,
    /// Ban durations, escalation, whitelist, dry-run.
    pub policy: PolicyConfig,
    /// Addresses never blocked (the configured whitelist; loopback is not
    /// implied here, unlike the firewall: the gateway cannot lock the host out).
    pub whitelist: Whitelist,
    /// This gateway's id.
    pub id: String,
    /// Registers further metrics on the admin endpoint beside the
    /// gateway's own (the fleet link's, for a gateway that reports to a
    /// server). The registry's prefix is `rampart`.
    pub more_metrics: Option<MoreMetrics>,
    /// Hooks run after the gateway's own detection, in order.
    pub hooks: Vec<Arc<dyn Hooks>>,
}

/// See [`GatewayContext::more_metrics`].
pub type MoreMetrics = Box<dyn FnOnce(&mut prometheus_client::registry::Registry) + Send>;

/// State shared by every connection and task.
pub struct Shared {
    pub(crate) id: String,
    pub(crate) config: GatewayConfig,
    pub(crate) pool: Arc<Pool>,
    pub(crate) client: Client<HttpConnector, Body>,
    pub(crate) trusted: TrustedProxies,
    pub(crate) guard: Arc<Guard>,
    pub(crate) hooks: Vec<Arc<dyn Hooks>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) log: RequestLog,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) started: Instant,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) id_prefix: u32,
    pub(crate) next_id: AtomicU64,
}

impl Shared {
    /// The gateway's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Milliseconds since the gateway started (monotonic).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{n:08x}", self.id_prefix)
    }

    pub(crate) fn backend_failed(&self, index: usize) {
        let backend = &self.pool.backends()[index];
        self.metrics
            .backend_failures
            .get_or_create(&BackendLabel {
                backend: backend.url.clone(),
            })
            .inc();
        if self.pool.report_failure(index) == crate::backend::Transition::Down {
            self.backend_changed(index, false);
        }
    }

    pub(crate) fn backend_changed(&self, index: usize, up: bool) {
        let backend = &self.pool.backends()[index];
        if up {
            tracing::info!(backend = %backend.url, "backend up");
        } else {
            tracing::warn!(backend = %backend.url, "backend down");
        }
        self.metrics
            .backend_up
            .get_or_create(&BackendLabel {
                backend: backend.url.clone(),
            })
            .set(i64::from(up));
    }
}
