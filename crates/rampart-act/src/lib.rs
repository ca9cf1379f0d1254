//! rampart's actuators. Today: the kernel firewall.

pub mod firewall;

pub use firewall::{Firewall, FirewallError, build_firewall};
