//! The wire types of rampart's HTTP API (`/api/v1`): what the server
//! answers and accepts, what fleet members push and read back, and what
//! the dashboard's TypeScript types are generated from (every type derives
//! its OpenAPI schema).
//!
//! Types here carry data only; the server's handlers check permissions,
//! read the store and build them.

pub mod accounts;
pub mod decisions;
pub mod error;
pub mod health;
pub mod ingest;
pub mod requests;

pub use accounts::*;
pub use decisions::*;
pub use error::*;
pub use health::*;
pub use ingest::*;
pub use requests::*;
