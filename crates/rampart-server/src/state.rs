//! What every handler shares.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rampart_config::ServerConfig;
use rampart_detect::Pipeline;
use rampart_store::Store;

use crate::hub::Hub;
use crate::limiter::LoginLimiter;
use crate::metrics::ServerMetrics;

/// The server's shared state.
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Settings.
    pub config: ServerConfig,
    /// Metrics.
    pub metrics: Arc<ServerMetrics>,
    /// The live stream's fan-out.
    pub live: Hub,
    /// Failed logins per address.
    pub login: Mutex<LoginLimiter>,
    /// rampart's scenarios over the server's own events (failed logins).
    pub detector: Option<tokio::sync::Mutex<Pipeline>>,
    /// This server's name, in the decisions it makes.
    pub node: String,
    /// When it started.
    pub started: DateTime<Utc>,
}
