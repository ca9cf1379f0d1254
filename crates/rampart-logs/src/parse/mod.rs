//! Parsers: one line in, one [`Event`] or a [`SkipReason`] out.
//!
//! Envelopes (syslog RFC 3164 / ISO 8601 / RFC 5424, access-log lines,
//! error-log prefixes) are parsed by hand for speed; what a message means
//! is decided by the patterns in [`ParserRules`], which are data.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_config::{JsonMapping, LogFormat};
use rampart_core::Event;

use crate::SkipReason;

pub mod access;
pub mod errorlog;
pub mod json;
pub mod rules;
pub mod syslog;

pub use rules::ParserRules;

/// One syslog record, from a log file's envelope or from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogRecord<'a> {
    /// When it was logged.
    pub time: DateTime<Utc>,
    /// The host name in the envelope (empty when absent).
    pub host: &'a str,
    /// The program (`sshd`, `sshd-session`, `sudo`…).
    pub program: &'a str,
    /// The process id, when given.
    pub pid: Option<u32>,
    /// The message after the envelope.
    pub message: &'a str,
}

/// Turns lines of one source into events.
pub trait LineParser: Send {
    /// Parses one line, without its line terminator (a trailing `\r` is
    /// tolerated). Never panics, whatever the bytes.
    fn parse(&mut self, line: &[u8]) -> Result<Event, SkipReason>;
}

/// What a parser needs besides its rules.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The source name put in events.
    pub source: Arc<str>,
    /// Timestamps without a year (RFC 3164 syslog) take the year that puts
    /// them at or before this time (plus a day of slack).
    pub reference: DateTime<Utc>,
    /// Keep the raw line in `Event::raw` (evidence). Default true.
    pub keep_raw: bool,
}
