//! rampart's actuators: what carries decisions out. The [`Actuator`] trait
//! and the [`Executor`] that batches, retries and reports for it; the
//! kernel firewall (nftables, iptables + ipset) is the first actuator.

pub mod actuator;
pub mod firewall;

pub use actuator::{
    ActError, Actuator, Attempt, Executor, FirewallActuator, Operation, Queued, RetryPolicy,
};
pub use firewall::{Firewall, FirewallError, build_firewall};
