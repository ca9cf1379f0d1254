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
///   no parser names are [`SkipReason::NoMatch`]. The year of RFC 3164
///   times is picked against `opts.reference`, which the parser moves
///   forward to the newest time it has read, so a long-running source
///   crosses New Year as long as it logs at least once a day.
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
            Ok(Box::new(syslog::SshdParser::new(rules.for_thread(), opts)))
        }
        LogFormat::Nginx | LogFormat::Apache => Ok(Box::new(WebParser {
            rules: rules.for_thread(),
            opts,
        })),
        LogFormat::Json => {
            let mapping =
                json.ok_or_else(|| "format json needs a [source.json] mapping".to_owned())?;
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
        event.raw = Some(Arc::from(format!("{program}: {message}")));
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
            access::access_event(&self.opts, &record)
        };
        if self.opts.keep_raw {
            event.raw = Some(Arc::from(text));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(keep_raw: bool) -> ParseOptions {
        ParseOptions {
            source: Arc::from("t"),
            reference: "2026-11-21T12:00:00Z".parse().unwrap_or_default(),
            keep_raw,
        }
    }

    #[test]
    fn line_terminators_and_bad_utf8() {
        assert_eq!(line_str(b"abc\r\n"), Ok("abc"));
        assert_eq!(line_str(b"abc\r"), Ok("abc"));
        assert_eq!(line_str(b"a\rb"), Ok("a\rb"));
        assert_eq!(line_str(b"\xff"), Err(SkipReason::InvalidUtf8));
    }

    #[test]
    fn program_messages_from_the_journal() {
        let rules = ParserRules::builtin().unwrap();
        let time = Utc::now();
        let ev = parse_program_message(
            &rules,
            &opts(true),
            time,
            "sshd-session",
            "Failed password for invalid user bob from 2001:db8::1 port 22 ssh2\n",
        )
        .unwrap();
        assert_eq!(ev.kind, rampart_core::EventKind::AuthFailure);
        assert_eq!(ev.time, time);
        assert_eq!(ev.fields.get("user"), Some("bob"));
        assert!(
            ev.raw
                .as_deref()
                .unwrap()
                .starts_with("sshd-session: Failed")
        );
        let skip = parse_program_message(
            &rules,
            &opts(false),
            time,
            "cron",
            "Failed password for root from 1.2.3.4 port 1 ssh2",
        );
        assert_eq!(skip.unwrap_err(), SkipReason::NoMatch);
    }

    #[test]
    fn build_parser_checks_its_inputs() {
        let rules = ParserRules::builtin().unwrap();
        assert!(build_parser(LogFormat::Json, &rules, None, opts(true)).is_err());
        let empty = ParserRules::default();
        assert!(build_parser(LogFormat::Sshd, &empty, None, opts(true)).is_err());
        let mut p = build_parser(LogFormat::Sshd, &rules, None, opts(false)).unwrap();
        let ev = p
            .parse(b"2026-11-21T06:34:06Z h sshd[1]: Invalid user x from 192.0.2.1 port 1\r")
            .unwrap();
        assert_eq!(ev.raw, None);
    }

    /// Prints ns/line for the hot paths. Timing only, nothing asserted:
    /// `cargo test --release -p rampart-logs --lib -- --ignored --nocapture ns_per_line`
    #[test]
    #[ignore = "timing; run by hand in release mode"]
    fn ns_per_line() {
        let rules = ParserRules::builtin().unwrap();
        let reference: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let cases: [(&str, LogFormat, &str); 6] = [
            (
                "sshd failed password",
                LogFormat::Sshd,
                "Nov 21 06:34:06 host sshd[123]: Failed password for invalid user admin from 203.0.113.5 port 40022 ssh2",
            ),
            (
                "sshd no match",
                LogFormat::Sshd,
                "Nov 21 06:34:06 host sshd[123]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
            ),
            (
                "sshd other program",
                LogFormat::Sshd,
                "Nov 21 06:34:06 host CRON[123]: (root) CMD (run-parts /etc/cron.hourly)",
            ),
            (
                "sshd iso8601",
                LogFormat::Sshd,
                "2026-11-21T06:34:06.123456+01:00 host sshd[123]: Invalid user admin from 203.0.113.5 port 40022",
            ),
            (
                "access combined",
                LogFormat::Nginx,
                r#"203.0.113.5 - - [21/Nov/2026:06:34:06 +0000] "GET /wp-login.php?x=1 HTTP/1.1" 404 153 "-" "Mozilla/5.0 (X11; Linux x86_64)""#,
            ),
            (
                "nginx error",
                LogFormat::Nginx,
                r#"2026/11/21 06:34:06 [error] 123#123: *5 user "bob": password mismatch, client: 203.0.113.5, server: x, request: "GET /admin HTTP/1.1", host: "x""#,
            ),
        ];
        let n = 200_000u32;
        let time = |f: &mut dyn FnMut()| {
            let start = std::time::Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_nanos() / u128::from(n)
        };
        let line = cases[0].2;
        let envelope = time(&mut || {
            std::hint::black_box(
                syslog::parse_syslog(std::hint::black_box(line), reference).is_ok(),
            );
        });
        eprintln!("{:>24}: {envelope} ns/line", "syslog envelope only");
        for (name, format, line) in cases {
            let mut parser = build_parser(format, &rules, None, opts(false)).unwrap();
            let ns = time(&mut || {
                std::hint::black_box(parser.parse(std::hint::black_box(line.as_bytes())).is_ok());
            });
            eprintln!("{name:>24}: {ns} ns/line");
        }
    }
}
