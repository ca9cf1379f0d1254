//! The fleet link's Prometheus metrics, declared once here; the node
//! registers them in its registry (prefix `rampart`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Push and follow statistics.
#[derive(Debug, Default)]
pub struct FleetMetrics {
    /// `rampart_fleet_pushed_total`: items pushed and accepted.
    pub pushed: Counter,
    /// `rampart_fleet_rejected_total`: pushed items the server refused as invalid.
    pub rejected: Counter,
    /// `rampart_fleet_push_failures_total`: pushes that failed and are retried.
    pub push_failures: Counter,
    /// `rampart_fleet_applied_total`: decisions from the server's stream applied locally.
    pub applied: Counter,
    /// `rampart_fleet_follow_failures_total`: failed reads of the decision stream.
    pub follow_failures: Counter,
    /// `rampart_fleet_heartbeat_failures_total`: heartbeats the server did not take.
    pub heartbeat_failures: Counter,
}

impl FleetMetrics {
    /// Registers every metric in `registry` (whose prefix is `rampart`).
    pub fn register(&self, registry: &mut Registry) {
        let fleet = registry.sub_registry_with_prefix("fleet");
        fleet.register(
            "pushed",
            "Items pushed to the server and accepted",
            self.pushed.clone(),
        );
        fleet.register(
            "rejected",
            "Pushed items the server refused as invalid",
            self.rejected.clone(),
        );
        fleet.register(
            "push_failures",
            "Pushes that failed and are retried",
            self.push_failures.clone(),
        );
        fleet.register(
            "applied",
            "Decisions from the server's stream applied locally",
            self.applied.clone(),
        );
        fleet.register(
            "follow_failures",
            "Failed reads of the decision stream",
            self.follow_failures.clone(),
        );
        fleet.register(
            "heartbeat_failures",
            "Heartbeats the server did not take",
            self.heartbeat_failures.clone(),
        );
    }
}
