//! The gateway's view of detection: what `rampart-detect`'s per-client
//! behaviour table and request signatures make of one request. Kept in one
//! module so the detection library can change without touching the proxy.

use std::net::IpAddr;

use ipnet::IpNet;
use rampart_config::HttpDetectionConfig;

/// What detection made of a request, before policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The client's key (its address, or its IPv6 /64).
    pub key: IpNet,
    /// The client's anomaly score, 0..1.
    pub score: f64,
    /// What should happen.
    pub verdict: Verdict,
    /// One line of why, when not allowed.
    pub reason: Option<String>,
    /// Requests seen from this client (for evidence).
    pub seen: u64,
}

/// What should happen to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward.
    Allow,
    /// Forward, but the client looks suspicious.
    Monitor,
    /// Refuse and ban: a flood.
    Flood,
    /// Refuse and ban: the behaviour score is too high.
    Anomaly,
    /// Refuse and ban: a request signature matched (label names it).
    Attack(&'static str),
}

/// The request facts detection looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Method.
    pub method: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// Query string, if any.
    pub query: Option<&'a str>,
    /// User agent, if sent.
    pub user_agent: Option<&'a str>,
    /// Header count.
    pub header_count: usize,
    /// Whether a cookie was sent.
    pub has_cookie: bool,
    /// Whether a referer was sent.
    pub has_referer: bool,
    /// Whether an accept-language was sent.
    pub has_accept_language: bool,
    /// Declared body length.
    pub body_len: Option<u64>,
}

/// Detection state shared by every connection.
pub struct Inspector {
    _config: HttpDetectionConfig,
}

impl Inspector {
    /// Builds the behaviour table and signatures from config.
    pub fn new(config: &HttpDetectionConfig) -> Self {
        Self {
            _config: config.clone(),
        }
    }

    /// The key a client is tracked and banned under.
    pub fn key(&self, client: IpAddr) -> IpNet {
        rampart_core::key_prefix(client, 32, 64)
    }

    /// Judges a request from `client` at `now_ms` (monotonic milliseconds).
    pub fn judge(&self, client: IpAddr, _facts: &RequestFacts<'_>, _now_ms: u64) -> Judgement {
        Judgement {
            key: self.key(client),
            score: 0.0,
            verdict: Verdict::Allow,
            reason: None,
            seen: 1,
        }
    }

    /// Feeds back the status answered to a request of `key`.
    pub fn response(&self, _key: IpNet, _status: u16, _now_ms: u64) {}

    /// Forgets a client (after an operator unban).
    pub fn forget(&self, _key: &IpNet) {}

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        0
    }
}
