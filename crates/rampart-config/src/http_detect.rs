//! `[gateway.detection]`: per-client behaviour features, the anomaly score
//! and the request signatures the gateway applies.

use rampart_core::HumanDuration;
use serde::{Deserialize, Serialize};

/// How the gateway judges clients and requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpDetectionConfig {
    /// Most clients tracked at once; the idlest are evicted beyond it. Default 100000.
    pub max_clients: usize,
    /// A client idle this long is forgotten. Default 10m.
    pub idle_after: HumanDuration,
}

impl Default for HttpDetectionConfig {
    fn default() -> Self {
        Self {
            max_clients: 100_000,
            idle_after: HumanDuration::from_secs(600),
        }
    }
}

impl HttpDetectionConfig {
    /// Problems parsing cannot see, as messages naming the key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_clients == 0 {
            problems.push("gateway.detection.max_clients: must be at least 1".to_owned());
        }
        problems
    }
}
