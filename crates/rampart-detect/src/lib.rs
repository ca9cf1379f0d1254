//! rampart's detection: scenarios and policy. Pure and deterministic: no
//! I/O, no wall clock (time comes from events or from the caller).
//!
//! - [`rules`] compiles scenario files (TOML) into [`Scenario`]s.
//! - [`engine::Engine`] runs every scenario's buckets over events and
//!   emits [`rampart_core::Finding`]s.
//! - [`policy::Policy`] turns findings into [`rampart_core::Decision`]s:
//!   durations by level, escalation, whitelist, dry-run.
//! - [`Detector`] is what every detector implements (the engine is the
//!   first); [`Pipeline`] is a list of detectors plus the policy, and
//!   feeds bans back to the detectors, so `recidive` can see them.

pub mod bucket;
pub mod condition;
pub mod engine;
pub mod http;
pub mod patterns;
pub mod pipeline;
pub mod policy;
pub mod rules;

pub use engine::Engine;
pub use pipeline::{Detector, Pipeline, Prepared};
pub use policy::{Outcome, Policy};
pub use rules::{Ruleset, Scenario, Selection};
