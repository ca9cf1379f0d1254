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

/// A line as text: one trailing `\n` and then one trailing `\r` are
/// removed; bytes that are not UTF-8 are [`SkipReason::InvalidUtf8`].
pub(crate) fn line_str(line: &[u8]) -> Result<&str, SkipReason> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    std::str::from_utf8(line).map_err(|_| SkipReason::InvalidUtf8)
}

/// Builds the parser of one source.
///
/// - `sshd`: a syslog envelope ([`syslog::parse_syslog`]), then the
///   `syslog` parsers of `rules` for the line's program; lines of programs
///   no parser names are [`SkipReason::NoMatch`].
/// - `nginx` / `apache`: each line is an access-log line ([`access`]) or an
///   error-log line ([`errorlog`]), told apart by its first bytes (`[` starts
///   an apache error line, `YYYY/MM/DD ` an nginx one); error messages go
///   through the `nginx_error` / `apache_error` parsers of `rules`.
/// - `json`: one object per line, mapped by `json` ([`json::JsonParser`]).
///
/// Errors (as text for the config check): `json` without a mapping, a
/// mapping naming an unknown event kind, or `sshd` with rules that have no
/// syslog parser.
pub fn build_parser(
    format: LogFormat,
    rules: &ParserRules,
    json: Option<&JsonMapping>,
    opts: ParseOptions,
) -> Result<Box<dyn LineParser>, String> {
    match format {
        LogFormat::Sshd => {
            if !rules.has_syslog_parsers() {
                return Err("the parser rules have no syslog parser for format sshd".to_owned());
            }
            Ok(Box::new(syslog::SshdParser::new(rules.clone(), opts)))
        }
        LogFormat::Nginx | LogFormat::Apache => {
            Ok(Box::new(WebParser { rules: rules.clone(), opts }))
        }
        LogFormat::Json => {
            let mapping = json.ok_or_else(|| "format json needs a [source.json] mapping".to_owned())?;
            Ok(Box::new(json::JsonParser::new(mapping, opts)?))
        }
    }
}

/// Turns one journal entry's program (`SYSLOG_IDENTIFIER`) and message into
/// an event through the `syslog` parsers of `rules`, as the `sshd` format
/// does for a file line. `Event::raw` is `program: message` when
/// `opts.keep_raw`. Errors: [`SkipReason::NoMatch`] (no pattern wants it)
/// or [`SkipReason::BadAddress`].
pub fn parse_program_message(
    rules: &ParserRules,
    opts: &ParseOptions,
    time: DateTime<Utc>,
    program: &str,
    message: &str,
) -> Result<Event, SkipReason> {
    let mut event = program_event(rules, opts, time, program, message)?;
    if opts.keep_raw {
        event.raw = Some(format!("{program}: {message}"));
    }
    Ok(event)
}

/// [`parse_program_message`] without the raw line.
pub(crate) fn program_event(
    rules: &ParserRules,
    opts: &ParseOptions,
    time: DateTime<Utc>,
    program: &str,
    message: &str,
) -> Result<Event, SkipReason> {
    let m = rules.match_program(program, message.trim_end())?;
    let mut event = Event::new(time, Arc::clone(&opts.source), m.kind, Some(m.addr));
    event.fields = m.fields;
    Ok(event)
}

/// The `nginx` and `apache` formats: access-log and error-log lines mixed.
struct WebParser {
    rules: ParserRules,
    opts: ParseOptions,
}

impl LineParser for WebParser {
    fn parse(&mut self, line: &[u8]) -> Result<Event, SkipReason> {
        let text = line_str(line)?;
        let mut event = if text.starts_with('[') {
            let record = errorlog::parse_apache_error(text)?;
            errorlog::error_event(&self.rules, &self.opts, &record)?
        } else if errorlog::looks_like_nginx_error(text) {
            let record = errorlog::parse_nginx_error(text)?;
            errorlog::error_event(&self.rules, &self.opts, &record)?
        } else {
            let record = access::parse_access(text)?;
            access::access_event(&self.opts, &record)?
        };
        if self.opts.keep_raw {
            event.raw = Some(text.to_owned());
        }
        Ok(event)
    }
}
