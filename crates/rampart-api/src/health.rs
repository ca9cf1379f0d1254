//! `GET /health`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// ok, or degraded when the store does not answer.
    pub status: String,
    /// rampart version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: i64,
    /// Each component: ok or an error.
    pub components: BTreeMap<String, String>,
}
