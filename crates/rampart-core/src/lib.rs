//! Core types of rampart. No I/O happens here.
//!
//! The pipeline is sources → [`Event`]s → detectors → [`Finding`]s →
//! policy → [`Decision`]s → actuators. Everything downstream of a parser
//! reads these types, never raw text.

pub mod addr;
pub mod clock;
pub mod decision;
pub mod duration;
pub mod event;
pub mod finding;
pub mod position;
pub mod request;
pub mod rule_error;
pub mod whitelist;

pub use addr::{Subject, key_prefix, parse_net};
pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Action, ChangeKind, Decision, Origin};
pub use duration::HumanDuration;
pub use event::{Event, EventKind, Fields};
pub use finding::{Evidence, Finding, Level};
pub use position::Position;
pub use request::{Prediction, RequestRecord};
pub use rule_error::{RuleError, RuleErrors, line_of, toml_error};
pub use whitelist::Whitelist;
