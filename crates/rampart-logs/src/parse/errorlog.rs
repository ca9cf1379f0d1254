//! nginx and apache error-log envelopes, parsed by hand; the message then
//! goes through the `nginx_error` / `apache_error` patterns of the rules.
//!
//! - nginx: `2026/11/21 06:34:06 [error] 123#123: *5 MESSAGE, client: ADDR,
//!   server: …, request: "…", host: "…"`. The message given to patterns
//!   starts after `*5 ` and keeps the `, client: …` trailer; the address is
//!   the first `, client: ` of the line.
//! - apache 2.4: `[Sat Nov 21 06:34:06.123456 2026] [module:level] [pid 1:tid
//!   2] [client ADDR:PORT] MESSAGE`; apache 2.2: `[Sat Nov 21 06:34:06 2026]
//!   [level] [client ADDR] MESSAGE`. An `(errno)text: ` before `[client …]`
//!   is dropped; bracketed IPv6 (`[client [2001:db8::1]:5555]`) is read.
//!
//! Both write local time without a zone: it is read in the host's zone.

/// `", client: "`, searched once per nginx error line.
static CLIENT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b", client: "));

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rampart_core::Event;

use super::ParseOptions;
use super::rules::{AppliesTo, EnvelopeAddr, ParserRules, parse_addr};
use super::syslog::{digits2, digits4, local_to_utc, month_from_abbr};
use crate::SkipReason;

/// Which server wrote an error line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorLogKind {
    /// nginx (`2026/11/21 06:34:06 [error] …`).
    Nginx,
    /// apache httpd (`[Sat Nov 21 06:34:06 2026] [error] …`).
    Apache,
}

/// One error-log line, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRecord<'a> {
    /// Which server wrote it.
    pub server: ErrorLogKind,
    /// When it was logged.
    pub time: DateTime<Utc>,
    /// `error`, `crit`, `notice`…
    pub level: &'a str,
    /// apache's module (`auth_basic`), empty for nginx and apache 2.2.
    pub module: &'a str,
    /// The client as logged, without port (`192.0.2.1`, `2001:db8::1`).
    pub client: Option<&'a str>,
    /// The message the patterns see.
    pub message: &'a str,
}

/// Whether a line starts like an nginx error line (`YYYY/MM/DD `).
pub fn looks_like_nginx_error(line: &str) -> bool {
    let b = line.as_bytes();
    digits4(b, 0).is_some()
        && b.get(4) == Some(&b'/')
        && digits2(b, 5).is_some()
        && b.get(7) == Some(&b'/')
        && digits2(b, 8).is_some()
        && b.get(10) == Some(&b' ')
}

/// Parses an nginx error line. Errors: [`SkipReason::Unparsable`] for another
/// shape, [`SkipReason::BadTimestamp`] for an impossible date or time.
pub fn parse_nginx_error(line: &str) -> Result<ErrorRecord<'_>, SkipReason> {
    parse_nginx_error_in(line, &local_to_utc)
}

fn parse_nginx_error_in<'a>(
    line: &'a str,
    local: &dyn Fn(NaiveDateTime) -> Option<DateTime<Utc>>,
) -> Result<ErrorRecord<'a>, SkipReason> {
    let b = line.as_bytes();
    if !looks_like_nginx_error(line) {
        return Err(SkipReason::Unparsable);
    }
    let naive = (|| {
        let date = NaiveDate::from_ymd_opt(
            i32::try_from(digits4(b, 0)?).ok()?,
            digits2(b, 5)?,
            digits2(b, 8)?,
        )?;
        if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
            return None;
        }
        date.and_hms_opt(digits2(b, 11)?, digits2(b, 14)?, digits2(b, 17)?)
    })()
    .ok_or(SkipReason::BadTimestamp)?;
    let time = local(naive).ok_or(SkipReason::BadTimestamp)?;
    let rest = line.get(19..).ok_or(SkipReason::Unparsable)?;
    let rest = rest.strip_prefix(" [").ok_or(SkipReason::Unparsable)?;
    let (level, rest) = rest.split_once("] ").ok_or(SkipReason::Unparsable)?;
    // `123#456: ` (process and thread), then `*789 ` (connection), both optional.
    let rest = match rest.split_once(": ") {
        Some((pid, after))
            if !pid.is_empty() && pid.bytes().all(|c| c.is_ascii_digit() || c == b'#') =>
        {
            after
        }
        _ => rest,
    };
    let rest = match rest.strip_prefix('*').and_then(|r| r.split_once(' ')) {
        Some((cid, after)) if !cid.is_empty() && cid.bytes().all(|c| c.is_ascii_digit()) => after,
        _ => rest,
    };
    let client = CLIENT.find(rest.as_bytes()).and_then(|i| {
        let after = rest.get(i + ", client: ".len()..)?;
        Some(after.split_once(',').map_or(after, |(c, _)| c))
    });
    Ok(ErrorRecord {
        server: ErrorLogKind::Nginx,
        time,
        level,
        module: "",
        client,
        message: rest.trim_end(),
    })
}

/// Parses an apache error line. Errors: [`SkipReason::Unparsable`] for another
/// shape, [`SkipReason::BadTimestamp`] for an unreadable `[time]`.
pub fn parse_apache_error(line: &str) -> Result<ErrorRecord<'_>, SkipReason> {
    parse_apache_error_in(line, &local_to_utc)
}

fn parse_apache_error_in<'a>(
    line: &'a str,
    local: &dyn Fn(NaiveDateTime) -> Option<DateTime<Utc>>,
) -> Result<ErrorRecord<'a>, SkipReason> {
    let rest = line.strip_prefix('[').ok_or(SkipReason::Unparsable)?;
    let (stamp, mut rest) = rest.split_once(']').ok_or(SkipReason::Unparsable)?;
    let naive = parse_apache_time(stamp).ok_or(SkipReason::BadTimestamp)?;
    let time = local(naive).ok_or(SkipReason::BadTimestamp)?;
    let mut level_seen = false;
    let (mut level, mut module, mut client) = ("", "", None);
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.starts_with('(') && client.is_none() {
            // `(13)Permission denied: [client …] …` — the errno text comes first.
            match rest.find(": [client ") {
                Some(i) => rest = rest.get(i + 2..).unwrap_or(""),
                None => break,
            }
        }
        if !rest.starts_with('[') {
            break;
        }
        let Some(end) = segment_end(rest) else { break };
        let inner = rest.get(1..end).unwrap_or("");
        let after = rest.get(end + 1..).unwrap_or("");
        if let Some(c) = inner.strip_prefix("client ") {
            client = Some(strip_port(c));
            rest = after;
            break;
        } else if inner.starts_with("pid ") || inner.starts_with("remote ") {
            rest = after;
        } else if !level_seen && !inner.contains(' ') {
            level_seen = true;
            match inner.rsplit_once(':') {
                Some((m, l)) => (module, level) = (m, l),
                None => level = inner,
            }
            rest = after;
        } else {
            break;
        }
    }
    if !level_seen {
        return Err(SkipReason::Unparsable);
    }
    Ok(ErrorRecord {
        server: ErrorLogKind::Apache,
        time,
        level,
        module,
        client,
        message: rest.trim_start_matches(' ').trim_end(),
    })
}

/// The index of the `]` closing the `[` at the start of `s` (nested brackets
/// count, for `[client [2001:db8::1]:80]`).
fn segment_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `192.0.2.1:5555` → `192.0.2.1`; `[2001:db8::1]:5555` → `2001:db8::1`;
/// a bare address (apache 2.2) stays.
fn strip_port(c: &str) -> &str {
    if let Some(inner) = c.strip_prefix('[') {
        return inner.split_once(']').map_or(inner, |(a, _)| a);
    }
    if parse_addr(c).is_some() {
        return c;
    }
    match c.rsplit_once(':') {
        Some((a, port)) if port.bytes().all(|b| b.is_ascii_digit()) => a,
        _ => c,
    }
}

/// `Sat Nov 21 06:34:06.123456 2026` (fraction optional, day may be padded).
fn parse_apache_time(s: &str) -> Option<NaiveDateTime> {
    let mut parts = s.split(' ').filter(|p| !p.is_empty());
    let _weekday = parts.next()?;
    let month = month_from_abbr(parts.next()?.as_bytes())?;
    let day: u32 = parts.next()?.parse().ok()?;
    let clock = parts.next()?;
    let year: i32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let cb = clock.as_bytes();
    if cb.get(2) != Some(&b':') || cb.get(5) != Some(&b':') {
        return None;
    }
    let (h, m, sec) = (digits2(cb, 0)?, digits2(cb, 3)?, digits2(cb, 6)?);
    let micros = match clock.get(8..) {
        None | Some("") => 0,
        Some(frac) => {
            let digits = frac.strip_prefix('.')?;
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let n: u32 = digits.parse().ok()?;
            n * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
    };
    NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(h, m, sec, micros)
}

/// The event of an error-log record, through the error patterns of `rules`.
pub(crate) fn error_event(
    rules: &ParserRules,
    opts: &ParseOptions,
    r: &ErrorRecord<'_>,
) -> Result<Event, SkipReason> {
    let envelope = match r.client {
        None => EnvelopeAddr::Absent,
        Some(c) => parse_addr(c).map_or(EnvelopeAddr::Bad, EnvelopeAddr::Addr),
    };
    let shape = match r.server {
        ErrorLogKind::Nginx => AppliesTo::NginxError,
        ErrorLogKind::Apache => AppliesTo::ApacheError,
    };
    let m = rules.match_error(shape, r.module, r.message, envelope)?;
    let mut event = Event::new(r.time, Arc::clone(&opts.source), m.kind, Some(m.addr));
    event.fields = m.fields;
    if r.server == ErrorLogKind::Nginx
        && event.fields.get("request").is_none()
        && let Some(request) = nginx_request(r.message)
    {
        event.fields.set("request", request);
    }
    Ok(event)
}

/// The `request: "…"` of an nginx error message.
fn nginx_request(message: &str) -> Option<&str> {
    let at = message.find(", request: \"")?;
    let after = message.get(at + ", request: \"".len()..)?;
    let end = after
        .find("\", ")
        .or_else(|| after.strip_suffix('"').map(str::len))?;
    after.get(..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn addr(s: &str) -> IpAddr {
        parse_addr(s).unwrap()
    }

    fn utc(naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        Some(naive.and_utc())
    }

    #[test]
    fn nginx_envelope() {
        let r = parse_nginx_error_in(
            r#"2026/11/21 06:34:06 [error] 123#123: *5 user "bob": password mismatch, client: 192.0.2.1, server: x, request: "GET /admin HTTP/1.1", host: "x""#,
            &utc,
        )
        .unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T06:34:06+00:00");
        assert_eq!((r.level, r.client), ("error", Some("192.0.2.1")));
        assert!(
            r.message
                .starts_with("user \"bob\": password mismatch, client")
        );
        assert_eq!(nginx_request(r.message), Some("GET /admin HTTP/1.1"));
        let r =
            parse_nginx_error_in("2026/11/21 06:34:06 [emerg] 1#1: bind() failed", &utc).unwrap();
        assert_eq!((r.client, r.message), (None, "bind() failed"));
        assert_eq!(
            parse_nginx_error_in("2026/13/21 06:34:06 [error] 1#1: x", &utc),
            Err(SkipReason::BadTimestamp)
        );
    }

    #[test]
    fn apache_envelopes() {
        let r = parse_apache_error_in(
            "[Sat Nov 21 06:34:06.123456 2026] [auth_basic:error] [pid 1:tid 2] [client 192.0.2.1:5555] AH01618: user bob not found: /admin",
            &utc,
        )
        .unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T06:34:06.123456+00:00");
        assert_eq!(
            (r.module, r.level, r.client),
            ("auth_basic", "error", Some("192.0.2.1"))
        );
        assert_eq!(r.message, "AH01618: user bob not found: /admin");
        let r = parse_apache_error_in(
            "[Thu Jul 11 01:21:44 2013] [error] [client 2606:2800:220:1:248:1893:25c8:1946] user test not found: /",
            &utc,
        )
        .unwrap();
        assert_eq!(
            addr(r.client.unwrap()),
            addr("2606:2800:220:1:248:1893:25c8:1946")
        );
        let r = parse_apache_error_in(
            "[Sat Jul 20 22:11:44.147674 2013] [authz_owner:error] [pid 1:tid 2] [client [2001:db8::1]:51548] AH01637: x",
            &utc,
        )
        .unwrap();
        assert_eq!(r.client, Some("2001:db8::1"));
        let r = parse_apache_error_in(
            "[Sat Nov 21 06:34:06 2026] [core:error] [pid 7] (13)Permission denied: [client 192.0.2.9:1] AH00035: access denied",
            &utc,
        )
        .unwrap();
        assert_eq!(
            (r.client, r.message),
            (Some("192.0.2.9"), "AH00035: access denied")
        );
        let r = parse_apache_error_in(
            "[Sat Jun 01 02:17:42 2013] [error] [client 192.168.33.1] File does not exist: /x/[client 192.168.0.1] user root not found",
            &utc,
        )
        .unwrap();
        assert_eq!(r.client, Some("192.168.33.1"));
        assert_eq!(
            parse_apache_error_in("[nope] [error] x", &utc),
            Err(SkipReason::BadTimestamp)
        );
        assert_eq!(
            parse_apache_error_in("[Sat Nov 21 06:34:06 2026]", &utc),
            Err(SkipReason::Unparsable)
        );
    }
}
