//! nginx and apache access-log lines, parsed by hand: `common`, `combined`
//! and their virtual-host variants (apache `vhost_combined`:
//! `host:port ip - user [time] "request" status bytes "referer" "agent"`;
//! nginx `$host $remote_addr - $remote_user [time] …`). A line is a vhost
//! line when its first token is not an address but its second is. Fields
//! after the user agent (forwarded-for, timings…) are ignored.
//!
//! Quoted fields may hold `\"` and `\\` (apache's escapes); they are
//! unescaped in event fields, other escapes (`\xNN`) are kept as logged.
//! Malformed request lines (`"-"`, TLS bytes sent to a plain-HTTP port,
//! `"\x16\x03\x01"`) still make an event, with empty method, path and
//! protocol and the request as logged in the `request` field: scanners send
//! them.

/// `" ["`, the opening of the time field, searched once per line.
static TIME_OPEN: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b" ["));

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_core::{Event, EventKind};

use super::ParseOptions;
use super::rules::parse_addr;
use super::syslog::{Wall, digits2, digits4, month_from_abbr};
use crate::SkipReason;

/// One access-log line, borrowed from it. Quoted fields are as logged
/// (escapes kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRecord<'a> {
    /// The virtual host (`www.example.com:443`), in vhost layouts.
    pub vhost: Option<&'a str>,
    /// The client as logged.
    pub client: &'a str,
    /// The client's address (IPv4-mapped IPv6 made IPv4).
    pub addr: IpAddr,
    /// The authenticated user (`-` when none).
    pub user: &'a str,
    /// When the request was logged.
    pub time: DateTime<Utc>,
    /// The request line between the quotes (`GET /a?b HTTP/1.1`).
    pub request: &'a str,
    /// The response status.
    pub status: u16,
    /// Response bytes (`-` is 0).
    pub bytes: u64,
    /// The referer, in combined layouts.
    pub referer: Option<&'a str>,
    /// The user agent, in combined layouts.
    pub user_agent: Option<&'a str>,
}

/// Parses one access-log line (without terminator).
///
/// Errors: [`SkipReason::Unparsable`] when the line does not have the
/// access-log shape, [`SkipReason::BadTimestamp`] for a malformed
/// `[time]`, [`SkipReason::BadAddress`] when the shape is right but the
/// client is not an address.
pub fn parse_access(line: &str) -> Result<AccessRecord<'_>, SkipReason> {
    let (first, after_first) = line.split_once(' ').ok_or(SkipReason::Unparsable)?;
    if let Some(addr) = addr_token(first) {
        return parse_after_client(None, first, addr, after_first);
    }
    if let Some((second, after_second)) = after_first.split_once(' ')
        && let Some(addr) = addr_token(second)
    {
        return parse_after_client(Some(first), second, addr, after_second);
    }
    // The right shape with a client that is not an address (a host name).
    let unspecified = IpAddr::from([0u8; 4]);
    match parse_after_client(None, first, unspecified, after_first) {
        Ok(_) => Err(SkipReason::BadAddress),
        Err(e) => Err(e),
    }
}

/// The address a token is, with a cheap check before the full parse.
fn addr_token(s: &str) -> Option<IpAddr> {
    let first = *s.as_bytes().first()?;
    if first.is_ascii_hexdigit() || first == b':' {
        parse_addr(s)
    } else {
        None
    }
}

/// `ident user [time] "request" status bytes ["referer" "agent"] …`
fn parse_after_client<'a>(
    vhost: Option<&'a str>,
    client: &'a str,
    addr: IpAddr,
    rest: &'a str,
) -> Result<AccessRecord<'a>, SkipReason> {
    let (_ident, rest) = rest.split_once(' ').ok_or(SkipReason::Unparsable)?;
    // The user may hold spaces: the time is the first ` [` that reads as one.
    let mut search = 0;
    let mut tried = false;
    let (user, time, rest) = loop {
        let Some(at) = rest
            .get(search..)
            .and_then(|r| TIME_OPEN.find(r.as_bytes()))
            .map(|i| i + search)
        else {
            return Err(if tried {
                SkipReason::BadTimestamp
            } else {
                SkipReason::Unparsable
            });
        };
        let user = rest.get(..at).ok_or(SkipReason::Unparsable)?;
        let stamp = rest.get(at + 2..).ok_or(SkipReason::Unparsable)?;
        if let Some((time, used)) = parse_clf_time(stamp) {
            let rest = stamp.get(used..).ok_or(SkipReason::Unparsable)?;
            break (user, time, rest);
        }
        tried = true;
        search = at + 2;
    };
    let rest = rest.strip_prefix(' ').ok_or(SkipReason::Unparsable)?;
    let (request, rest) = quoted(rest).ok_or(SkipReason::Unparsable)?;
    let rest = rest.strip_prefix(' ').ok_or(SkipReason::Unparsable)?;
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = parse_status(status).ok_or(SkipReason::Unparsable)?;
    let (bytes, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let bytes = match bytes {
        "-" => 0,
        b if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
            b.parse().map_err(|_| SkipReason::Unparsable)?
        }
        _ => return Err(SkipReason::Unparsable),
    };
    let (referer, user_agent) = match quoted(rest) {
        Some((referer, rest)) => {
            let agent = rest.strip_prefix(' ').and_then(quoted).map(|(ua, _)| ua);
            (Some(referer), agent)
        }
        None => (None, None),
    };
    Ok(AccessRecord {
        vhost,
        client,
        addr,
        user,
        time,
        request,
        status,
        bytes,
        referer,
        user_agent,
    })
}

/// A three-digit status.
fn parse_status(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 3 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse().ok()
}

/// `"…"` at the start of `s` (backslash escapes the next byte). Returns the
/// inside, as logged, and what follows the closing quote.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Some((body.get(..i)?, body.get(i + 1..)?)),
            _ => i += 1,
        }
    }
    None
}

/// `dd/Mon/yyyy:HH:MM:SS ±hhmm]` — returns the time and the bytes used
/// (including the `]`).
fn parse_clf_time(s: &str) -> Option<(DateTime<Utc>, usize)> {
    let b = s.as_bytes();
    let day = digits2(b, 0)?;
    let month = month_from_abbr(b.get(3..6)?)?;
    let year = digits4(b, 7)?;
    let (h, m, sec) = (digits2(b, 12)?, digits2(b, 15)?, digits2(b, 18)?);
    let seps = [
        (2, b'/'),
        (6, b'/'),
        (11, b':'),
        (14, b':'),
        (17, b':'),
        (20, b' '),
    ];
    if seps.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let sign = *b.get(21)?;
    let (oh, om) = (digits2(b, 22)?, digits2(b, 24)?);
    if b.get(26) != Some(&b']') || !(sign == b'+' || sign == b'-') || oh > 23 || om > 59 {
        return None;
    }
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let wall = Wall::new(i64::from(year), month, day, h * 3600 + m * 60 + sec, 0)?;
    let offset = i32::try_from(oh * 3600 + om * 60).ok()?;
    let offset = if sign == b'-' { -offset } else { offset };
    let utc = wall.to_utc(Some(offset), &|_| None)?;
    Some((utc, 27))
}

/// A field value with apache's `\"` and `\\` unescaped.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits a request line into method, target and protocol; `None` when it
/// is not one (`-`, binary, garbage).
pub(crate) fn split_request(request: &str) -> Option<(&str, &str, &str)> {
    let (method, rest) = request.split_once(' ')?;
    if method.is_empty()
        || method.len() > 32
        || !method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return None;
    }
    match rest.rsplit_once(' ') {
        Some((path, proto)) if proto.starts_with("HTTP/") => Some((method, path, proto)),
        _ => Some((method, rest, "")),
    }
}

/// The `http_request` event of an access-log record.
pub(crate) fn access_event(opts: &ParseOptions, r: &AccessRecord<'_>) -> Event {
    let mut event = Event::new(
        r.time,
        Arc::clone(&opts.source),
        EventKind::HttpRequest,
        Some(r.addr),
    );
    let f = &mut event.fields;
    match split_request(r.request) {
        Some((method, path, protocol)) => {
            f.set("method", method);
            f.set("path", unescape(path));
            f.set("protocol", protocol);
        }
        None => {
            f.set("method", "");
            f.set("path", "");
            f.set("protocol", "");
            f.set("request", unescape(r.request));
        }
    }
    f.set("status", r.status.to_string());
    f.set("bytes", r.bytes.to_string());
    if let Some(referer) = r.referer {
        f.set("referer", unescape(referer));
    }
    if let Some(agent) = r.user_agent {
        f.set("user_agent", unescape(agent));
    }
    if let Some(vhost) = r.vhost {
        f.set("vhost", vhost);
    }
    if r.user != "-" && !r.user.is_empty() {
        f.set("user", unescape(r.user));
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ParseOptions {
        ParseOptions {
            source: Arc::from("web"),
            reference: Utc::now(),
            keep_raw: false,
        }
    }

    fn event(line: &str) -> Event {
        access_event(&opts(), &parse_access(line).unwrap())
    }

    #[test]
    fn combined() {
        let line = r#"203.0.113.5 - - [21/Nov/2026:06:34:06 +0100] "GET /wp-login.php?x=1 HTTP/1.1" 404 153 "-" "Mozilla/5.0 (X11)""#;
        let r = parse_access(line).unwrap();
        assert_eq!(r.time.to_rfc3339(), "2026-11-21T05:34:06+00:00");
        assert_eq!((r.status, r.bytes, r.vhost), (404, 153, None));
        let e = event(line);
        assert_eq!(e.addr.unwrap().to_string(), "203.0.113.5");
        assert_eq!(e.fields.get("method"), Some("GET"));
        assert_eq!(e.fields.get("path"), Some("/wp-login.php?x=1"));
        assert_eq!(e.fields.get("protocol"), Some("HTTP/1.1"));
        assert_eq!(e.fields.get("user_agent"), Some("Mozilla/5.0 (X11)"));
        assert_eq!(e.fields.get("referer"), Some("-"));
    }

    #[test]
    fn common_and_vhost_variants() {
        let r = parse_access(
            r#"2001:db8::7 - bob [21/Nov/2026:06:34:06 -0000] "POST /a HTTP/2.0" 200 -"#,
        )
        .unwrap();
        assert_eq!((r.user, r.bytes, r.referer), ("bob", 0, None));
        let r = parse_access(
            r#"www.example.com:443 192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8""#,
        )
        .unwrap();
        assert_eq!(
            (r.vhost, r.client),
            (Some("www.example.com:443"), "192.0.2.1")
        );
        let r = parse_access(r#"example.org ::ffff:192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] "GET / HTTP/1.1" 200 5"#).unwrap();
        assert_eq!(r.vhost, Some("example.org"));
        let e = access_event(&opts(), &r);
        assert_eq!(e.addr.unwrap().to_string(), "192.0.2.1");
    }

    #[test]
    fn escapes_and_malformed_requests() {
        let e = event(
            r#"192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] "GET /a\"b HTTP/1.1" 400 0 "-" "say \"hi\" \\o/""#,
        );
        assert_eq!(e.fields.get("path"), Some("/a\"b"));
        assert_eq!(e.fields.get("user_agent"), Some("say \"hi\" \\o/"));
        let e = event(
            r#"192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] "\x16\x03\x01\x00" 400 157 "-" "-""#,
        );
        assert_eq!(e.fields.get("method"), Some(""));
        assert_eq!(e.fields.get("request"), Some(r"\x16\x03\x01\x00"));
        let e = event(r#"192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] "-" 408 0 "-" "-""#);
        assert_eq!(
            (e.fields.get("path"), e.fields.get("status")),
            (Some(""), Some("408"))
        );
    }

    #[test]
    fn user_with_spaces() {
        let r = parse_access(
            r#"192.0.2.1 - a [b] c [21/Nov/2026:06:34:06 +0000] "GET / HTTP/1.1" 401 0"#,
        )
        .unwrap();
        assert_eq!(r.user, "a [b] c");
    }

    #[test]
    fn rejects_other_shapes() {
        assert_eq!(parse_access(""), Err(SkipReason::Unparsable));
        assert_eq!(parse_access("hello world"), Err(SkipReason::Unparsable));
        assert_eq!(
            parse_access(r#"host.example - - [21/Nov/2026:06:34:06 +0000] "GET / HTTP/1.1" 200 5"#),
            Err(SkipReason::BadAddress)
        );
        assert_eq!(
            parse_access(r#"192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] "GET / HTTP/1.1" 200"#)
                .map(|r| r.bytes),
            Err(SkipReason::Unparsable)
        );
        assert_eq!(
            parse_access(r#"192.0.2.1 - - [41/Nov/2026:06:34:06 +0000] "GET / HTTP/1.1" 200 1"#),
            Err(SkipReason::BadTimestamp)
        );
        assert_eq!(
            parse_access(r#"192.0.2.1 - - [21/Nov/2026:06:34:06 +0000] "GET / HTTP/1.1 200 1"#),
            Err(SkipReason::Unparsable)
        );
    }
}
