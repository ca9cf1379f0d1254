//! What every HTTP role of rampart shares (the gateway, the server and,
//! later, the in-app middleware):
//!
//! - [`tls`]: a rustls server config from PEM files, and a listener that
//!   hands out finished TLS streams;
//! - [`forwarded`]: the client's address behind trusted proxies;
//! - [`framing`]: the guard that refuses ambiguous HTTP/1 framing
//!   (request smuggling) before hyper sees it;
//! - [`idle`]: connections that close themselves when no byte moves.

pub mod forwarded;
pub mod framing;
pub mod idle;
pub mod tls;
