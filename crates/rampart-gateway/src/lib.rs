//! rampart's inline HTTP gateway: a reverse proxy that scores every client
//! from its recent behaviour, refuses floods (429), banned clients and
//! attack requests (403), and balances healthy backends.
//!
//! [`Gateway::build`] binds and loads; [`Gateway::run`] serves. The request
//! path is a short list of phases, drawn in [`proxy`]; connections are set
//! up in [`server`]; bans live in [`bans`] and are shared with the rest of
//! rampart through the store's decision change log.

pub mod admin;
pub mod backend;
pub mod context;
pub mod failure;
mod gateway;
pub mod hooks;
pub mod metrics;
pub mod proxy;
pub mod request_log;
pub mod server;
mod shared;

pub use gateway::Gateway;
pub use rampart_guard::{LABELS, bans, inspect};
pub use shared::{GatewayContext, GatewayError, Shared};
