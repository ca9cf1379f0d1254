//! rampart's log sources and parsers.
//!
//! [`source`] is the one [`Source`] trait and the two ways of running a
//! source (streaming, read-once) through the one line → event loop.
//! [`tail`] follows files (rotation-safe, resumable), [`journal`] follows
//! the systemd journal, [`read`] reads a file, standard input or a
//! compressed log once, and [`parse`] turns each line into an
//! [`rampart_core::Event`] or a counted [`SkipReason`]. Parser patterns are
//! data ([`parse::ParserRules`], loaded from `rules/parsers/*.toml`).
//! [`clock`] keeps event times from jumping.

pub mod build;
pub mod clock;
pub mod journal;
pub mod parse;
pub mod read;
pub mod source;
pub mod tail;

pub use source::{Batch, LineCounts, Lines, Progress, Source, SourceError};

/// Why a line produced no event. Every skipped line is counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Longer than the source's `max_line_bytes`.
    TooLong,
    /// The line's shape is not the format's (not syslog, not an access log line…).
    Unparsable,
    /// The timestamp could not be read.
    BadTimestamp,
    /// Well-formed, but no pattern is interested in it (most lines).
    NoMatch,
    /// A pattern matched but its address field is not an IP address.
    BadAddress,
}

impl SkipReason {
    /// Every reason.
    pub const ALL: [SkipReason; 6] = [
        SkipReason::InvalidUtf8,
        SkipReason::TooLong,
        SkipReason::Unparsable,
        SkipReason::BadTimestamp,
        SkipReason::NoMatch,
        SkipReason::BadAddress,
    ];

    /// snake_case name, used as the `reason` label of metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::InvalidUtf8 => "invalid_utf8",
            SkipReason::TooLong => "too_long",
            SkipReason::Unparsable => "unparsable",
            SkipReason::BadTimestamp => "bad_timestamp",
            SkipReason::NoMatch => "no_match",
            SkipReason::BadAddress => "bad_address",
        }
    }
}
