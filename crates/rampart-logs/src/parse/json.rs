//! JSON lines: one object per line, turned into an event by a
//! [`JsonMapping`].
//!
//! Paths are dotted (`client.ip`); a key that itself contains dots is found
//! too (it is tried whole first), and a numeric segment indexes an array.
//! Time is RFC 3339 / ISO 8601 text (without an offset: local time), or a
//! number of seconds since the epoch (fractions allowed) — numbers above
//! 1e11 are milliseconds. Text of digits is read as such a number too.
//! Field values that are numbers or booleans are written as text; nulls,
//! objects and arrays are left out.
//!
//! A line is checked in this order: it must be an object
//! ([`SkipReason::Unparsable`]), its kind must be known
//! ([`SkipReason::NoMatch`]), its time readable ([`SkipReason::BadTimestamp`])
//! and its address an address ([`SkipReason::BadAddress`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rampart_config::JsonMapping;
use rampart_core::{Event, EventKind};
use serde_json::Value;

use super::rules::parse_addr;
use super::syslog::{local_to_utc, parse_iso8601_prefix};
use super::{LineParser, ParseOptions, line_str};
use crate::SkipReason;

/// Epoch numbers above this are milliseconds (1e11 s is in the year 5138).
const MILLIS_ABOVE: f64 = 1e11;

/// A dotted path into an object.
#[derive(Debug, Clone)]
struct Path {
    whole: String,
    segments: Vec<String>,
}

impl Path {
    fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.split('.').any(str::is_empty) {
            return Err(format!("bad field path {text:?}"));
        }
        Ok(Self {
            whole: text.to_owned(),
            segments: text.split('.').map(str::to_owned).collect(),
        })
    }

    fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        if let Some(v) = root.get(self.whole.as_str()) {
            return Some(v);
        }
        if self.segments.len() < 2 {
            return None;
        }
        self.segments.iter().try_fold(root, |v, seg| match v {
            Value::Object(map) => map.get(seg.as_str()),
            Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

#[derive(Debug, Clone)]
enum KindRule {
    Fixed(EventKind),
    ByField(Path, HashMap<String, EventKind>),
}

/// The `json` format's parser, built from a [`JsonMapping`].
#[derive(Debug, Clone)]
pub struct JsonParser {
    time: Option<Path>,
    addr: Path,
    kind: KindRule,
    fields: Vec<(Cow<'static, str>, Path)>,
    opts: ParseOptions,
}

impl JsonParser {
    /// Compiles a mapping. Errors name the problem: no kind or both `kind`
    /// and `kind_field`, an unknown event kind, an empty path.
    pub fn new(mapping: &JsonMapping, opts: ParseOptions) -> Result<Self, String> {
        let kind_of = |name: &str| {
            EventKind::from_name(name).ok_or_else(|| format!("unknown event kind {name:?}"))
        };
        let kind = match (&mapping.kind, &mapping.kind_field) {
            (Some(kind), None) => KindRule::Fixed(kind_of(kind)?),
            (None, Some(field)) => {
                if mapping.kind_map.is_empty() {
                    return Err("kind_field needs a kind_map".to_owned());
                }
                let map = mapping
                    .kind_map
                    .iter()
                    .map(|(value, kind)| Ok((value.clone(), kind_of(kind)?)))
                    .collect::<Result<HashMap<_, _>, String>>()?;
                KindRule::ByField(Path::new(field)?, map)
            }
            (None, None) => return Err("set kind or kind_field".to_owned()),
            (Some(_), Some(_)) => return Err("set kind or kind_field, not both".to_owned()),
        };
        let fields = mapping
            .fields
            .iter()
            .map(|(name, path)| Ok((field_name(name), Path::new(path)?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            time: mapping.time.as_deref().map(Path::new).transpose()?,
            addr: Path::new(&mapping.addr)?,
            kind,
            fields,
            opts,
        })
    }

    /// Parses one line (without terminator) into an event.
    pub fn parse_line(&self, text: &str) -> Result<Event, SkipReason> {
        let root: Value = serde_json::from_str(text).map_err(|_| SkipReason::Unparsable)?;
        if !root.is_object() {
            return Err(SkipReason::Unparsable);
        }
        let kind = match &self.kind {
            KindRule::Fixed(kind) => *kind,
            KindRule::ByField(path, map) => {
                let value = path
                    .lookup(&root)
                    .and_then(scalar_text)
                    .ok_or(SkipReason::NoMatch)?;
                *map.get(value.as_ref()).ok_or(SkipReason::NoMatch)?
            }
        };
        let time = match &self.time {
            None => Utc::now(),
            Some(path) => path
                .lookup(&root)
                .and_then(json_time)
                .ok_or(SkipReason::BadTimestamp)?,
        };
        let addr = match self.addr.lookup(&root) {
            Some(Value::String(s)) => parse_addr(s.trim()),
            _ => None,
        }
        .ok_or(SkipReason::BadAddress)?;
        let mut event = Event::new(time, Arc::clone(&self.opts.source), kind, Some(addr));
        for (name, path) in &self.fields {
            if let Some(value) = path.lookup(&root).and_then(scalar_text) {
                event.fields.set(name.clone(), value.into_owned());
            }
        }
        if self.opts.keep_raw {
            event.raw = Some(std::sync::Arc::from(text));
        }
        Ok(event)
    }
}

impl LineParser for JsonParser {
    fn parse(&mut self, line: &[u8]) -> Result<Event, SkipReason> {
        self.parse_line(line_str(line)?)
    }
}

/// Text of a string, number or boolean.
fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// A time from RFC 3339 text or epoch seconds / milliseconds.
fn json_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => epoch_int(i),
            None => epoch(n.as_f64()?),
        },
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return epoch_int(s.parse().ok()?);
            }
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return epoch(s.parse().ok()?);
            }
            let (wall, offset, used) = parse_iso8601_prefix(s)?;
            if used != s.len() {
                return None;
            }
            wall.to_utc(offset, &local_to_utc)
        }
        _ => None,
    }
}

/// Whole seconds (or milliseconds above 1e11) since the epoch.
fn epoch_int(n: i64) -> Option<DateTime<Utc>> {
    if n < 0 {
        return None;
    }
    if n > 100_000_000_000 {
        let nanos = u32::try_from(n % 1000).ok()? * 1_000_000;
        return DateTime::from_timestamp(n / 1000, nanos);
    }
    DateTime::from_timestamp(n, 0)
}

/// Seconds (or milliseconds above 1e11) since the epoch, with a fraction
/// (kept to the microsecond: an f64 holds no more at today's epoch).
fn epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = if n > MILLIS_ABOVE { n / 1000.0 } else { n };
    if secs >= 1e13 {
        return None;
    }
    let whole = secs.trunc();
    // Both are in range: 0 <= whole < 1e13 and 0 <= fraction < 1.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (s, us) = (whole as i64, ((secs - whole) * 1e6).round() as u32);
    DateTime::from_timestamp(s, us.min(999_999) * 1000)
}

/// Field names the shipped mappings commonly use are static.
fn field_name(name: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 10] = [
        "user",
        "port",
        "method",
        "path",
        "status",
        "user_agent",
        "referer",
        "host",
        "protocol",
        "bytes",
    ];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .map_or_else(|| Cow::Owned(name.to_owned()), |k| Cow::Borrowed(*k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn mapping() -> JsonMapping {
        JsonMapping {
            time: Some("ts".to_owned()),
            addr: "client.ip".to_owned(),
            kind: None,
            kind_field: Some("event.type".to_owned()),
            kind_map: BTreeMap::from([
                ("login_failed".to_owned(), "auth_failure".to_owned()),
                ("404".to_owned(), "http_request".to_owned()),
            ]),
            fields: BTreeMap::from([
                ("user".to_owned(), "user.name".to_owned()),
                ("attempt".to_owned(), "n".to_owned()),
                ("mfa".to_owned(), "mfa".to_owned()),
            ]),
        }
    }

    fn parser() -> JsonParser {
        let opts = ParseOptions {
            source: Arc::from("app"),
            reference: Utc::now(),
            keep_raw: true,
        };
        JsonParser::new(&mapping(), opts).unwrap()
    }

    #[test]
    fn maps_nested_fields_and_kinds() {
        let p = parser();
        let e = p
            .parse_line(r#"{"ts":"2026-11-21T06:34:06.5+01:00","client":{"ip":"::ffff:192.0.2.1"},"event":{"type":"login_failed"},"user":{"name":"bob"},"n":3,"mfa":false}"#)
            .unwrap();
        assert_eq!(e.kind, EventKind::AuthFailure);
        assert_eq!(e.time.to_rfc3339(), "2026-11-21T05:34:06.500+00:00");
        assert_eq!(e.addr.unwrap().to_string(), "192.0.2.1");
        assert_eq!(e.fields.get("user"), Some("bob"));
        assert_eq!(e.fields.get("attempt"), Some("3"));
        assert_eq!(e.fields.get("mfa"), Some("false"));
        assert!(e.raw.is_some());
        let e = p
            .parse_line(r#"{"ts":1795242846123,"client.ip":"2001:db8::1","event":{"type":404}}"#)
            .unwrap();
        assert_eq!(e.kind, EventKind::HttpRequest);
        assert_eq!(e.time.to_rfc3339(), "2026-11-21T06:34:06.123+00:00");
        let e = p
            .parse_line(r#"{"ts":1795242846,"client":{"ip":"192.0.2.1"},"event":{"type":"404"}}"#)
            .unwrap();
        assert_eq!(e.time.to_rfc3339(), "2026-11-21T06:34:06+00:00");
        let e = p
            .parse_line(
                r#"{"ts":1795242846.25,"client":{"ip":"192.0.2.1"},"event":{"type":"404"}}"#,
            )
            .unwrap();
        assert_eq!(e.time.to_rfc3339(), "2026-11-21T06:34:06.250+00:00");
        let e = p
            .parse_line(
                r#"{"ts":"1795242846123","client":{"ip":"192.0.2.1"},"event":{"type":"404"}}"#,
            )
            .unwrap();
        assert_eq!(e.time.to_rfc3339(), "2026-11-21T06:34:06.123+00:00");
    }

    #[test]
    fn skips_with_reasons() {
        let p = parser();
        let ok_kind = r#""event":{"type":"login_failed"}"#;
        assert_eq!(
            p.parse_line("not json").unwrap_err(),
            SkipReason::Unparsable
        );
        assert_eq!(p.parse_line("[1,2]").unwrap_err(), SkipReason::Unparsable);
        assert_eq!(
            p.parse_line(r#"{"ts":1,"client":{"ip":"1.2.3.4"},"event":{"type":"other"}}"#)
                .unwrap_err(),
            SkipReason::NoMatch
        );
        assert_eq!(
            p.parse_line(&format!(
                r#"{{"ts":"yesterday","client":{{"ip":"1.2.3.4"}},{ok_kind}}}"#
            ))
            .unwrap_err(),
            SkipReason::BadTimestamp
        );
        assert_eq!(
            p.parse_line(&format!(
                r#"{{"ts":-5,"client":{{"ip":"1.2.3.4"}},{ok_kind}}}"#
            ))
            .unwrap_err(),
            SkipReason::BadTimestamp
        );
        assert_eq!(
            p.parse_line(&format!(r#"{{"ts":1,"client":{{"ip":"host"}},{ok_kind}}}"#))
                .unwrap_err(),
            SkipReason::BadAddress
        );
        assert_eq!(
            p.parse_line(&format!(r#"{{"ts":1,{ok_kind}}}"#))
                .unwrap_err(),
            SkipReason::BadAddress
        );
    }

    #[test]
    fn rejects_bad_mappings() {
        let opts = ParseOptions {
            source: Arc::from("app"),
            reference: Utc::now(),
            keep_raw: false,
        };
        let mut m = mapping();
        m.kind = Some("auth_failure".to_owned());
        assert!(
            JsonParser::new(&m, opts.clone())
                .unwrap_err()
                .contains("not both")
        );
        m.kind_field = None;
        m.kind = Some("nope".to_owned());
        assert!(
            JsonParser::new(&m, opts.clone())
                .unwrap_err()
                .contains("unknown event kind")
        );
        m.kind = Some("auth_failure".to_owned());
        m.addr = "a..b".to_owned();
        assert!(
            JsonParser::new(&m, opts)
                .unwrap_err()
                .contains("bad field path")
        );
    }
}
