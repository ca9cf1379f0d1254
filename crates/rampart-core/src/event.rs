//! Events: one normalised observation each.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an event observed. Parsers map their patterns to one of these;
/// scenarios select events by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A failed authentication (wrong password, rejected key, PAM failure).
    AuthFailure,
    /// A login attempt for a user that does not exist.
    InvalidUser,
    /// A successful authentication.
    AuthSuccess,
    /// A connection closed or reset before authentication completed.
    PreauthDisconnect,
    /// The server's per-connection limit of authentication attempts was hit.
    MaxAuthAttempts,
    /// A protocol-level failure: key exchange, version or negotiation errors.
    ProtocolError,
    /// An HTTP request (from an access log or the gateway).
    HttpRequest,
    /// An HTTP authentication failure reported by the web server.
    HttpAuthFailure,
    /// An HTTP client denied by the web server's own rules.
    HttpDenied,
    /// An HTTP client held back by the web server's own rate limits.
    HttpRateLimited,
    /// A ban decided by rampart, fed back to detection (for recidive).
    Ban,
    /// Anything else a source reports.
    Other,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 12] = [
        EventKind::AuthFailure,
        EventKind::InvalidUser,
        EventKind::AuthSuccess,
        EventKind::PreauthDisconnect,
        EventKind::MaxAuthAttempts,
        EventKind::ProtocolError,
        EventKind::HttpRequest,
        EventKind::HttpAuthFailure,
        EventKind::HttpDenied,
        EventKind::HttpRateLimited,
        EventKind::Ban,
        EventKind::Other,
    ];

    /// The snake_case name used in rule files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AuthFailure => "auth_failure",
            EventKind::InvalidUser => "invalid_user",
            EventKind::AuthSuccess => "auth_success",
            EventKind::PreauthDisconnect => "preauth_disconnect",
            EventKind::MaxAuthAttempts => "max_auth_attempts",
            EventKind::ProtocolError => "protocol_error",
            EventKind::HttpRequest => "http_request",
            EventKind::HttpAuthFailure => "http_auth_failure",
            EventKind::HttpDenied => "http_denied",
            EventKind::HttpRateLimited => "http_rate_limited",
            EventKind::Ban => "ban",
            EventKind::Other => "other",
        }
    }

    /// The kind with this snake_case name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Named text fields of an event (`user`, `method`, `path`, `status`,
/// `user_agent`, …). Small and ordered by insertion; names used by the
/// shipped parsers are static strings, so building an event does not
/// allocate for them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fields(Vec<(Cow<'static, str>, String)>);

impl Fields {
    /// No fields.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        if let Some(slot) = self.0.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.0.push((name, value));
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_ref(), v.as_str()))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One normalised observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, from the source (the log line's timestamp), not
    /// when it was read.
    pub time: DateTime<Utc>,
    /// The configured name of the source that produced it (`sshd`,
    /// `nginx-access`, …).
    pub source: Arc<str>,
    /// What was observed.
    pub kind: EventKind,
    /// The client address, where there is one.
    pub addr: Option<IpAddr>,
    /// Typed-by-name details.
    pub fields: Fields,
    /// The raw line the event was parsed from, kept as evidence (shared:
    /// every bucket that keeps it holds the same allocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Arc<str>>,
}

impl Event {
    /// An event with no fields and no raw line.
    pub fn new(
        time: DateTime<Utc>,
        source: Arc<str>,
        kind: EventKind,
        addr: Option<IpAddr>,
    ) -> Self {
        Self {
            time,
            source,
            kind,
            addr,
            fields: Fields::new(),
            raw: None,
        }
    }

    /// The value of a field; `kind`, `source` and `addr` are fields too.
    pub fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "kind" => Some(Cow::Borrowed(self.kind.as_str())),
            "source" => Some(Cow::Borrowed(&self.source)),
            "addr" | "ip" => self.addr.map(|a| Cow::Owned(a.to_string())),
            _ => self.fields.get(name).map(Cow::Borrowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::from_name("nope"), None);
    }

    #[test]
    fn fields_replace_and_expose_builtins() {
        let mut ev = Event::new(
            Utc::now(),
            Arc::from("sshd"),
            EventKind::AuthFailure,
            Some("192.0.2.1".parse().unwrap()),
        );
        ev.fields.set("user", "root");
        ev.fields.set("user", String::from("admin"));
        assert_eq!(ev.fields.len(), 1);
        assert_eq!(ev.field("user").as_deref(), Some("admin"));
        assert_eq!(ev.field("kind").as_deref(), Some("auth_failure"));
        assert_eq!(ev.field("ip").as_deref(), Some("192.0.2.1"));
        assert_eq!(ev.field("missing"), None);
    }
}
