//! `[gateway]`: the inline HTTP gateway (`rampart gateway`).

use std::net::SocketAddr;
use std::path::PathBuf;

use rampart_core::HumanDuration;
use serde::{Deserialize, Serialize};

use crate::http_detect::HttpDetectionConfig;

/// The reverse proxy in front of web backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// This gateway's id in the request log and the store. Default: `agent.name`, else the host name.
    pub id: Option<String>,
    /// Addresses clients connect to. Default `["127.0.0.1:8080"]`.
    pub listen: Vec<SocketAddr>,
    /// Address of the admin listener (`/health`, `/stats`, `/metrics`,
    /// `/blocked-ips`, `/block/{ip}`, `/unblock/{ip}`). Default 127.0.0.1:9742. Keep it off public interfaces: it is not authenticated.
    pub admin: Option<SocketAddr>,
    /// `block` refuses what detection decides against; `monitor` decides and
    /// records but forwards everything. Default `block`.
    pub mode: GatewayMode,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed
    /// (addresses or CIDRs). From any other peer those headers are ignored
    /// and replaced. Default: none.
    pub trusted_proxies: Vec<String>,
    /// TLS termination; absent: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// The backends requests are forwarded to, one `[[gateway.backend]]` each.
    #[serde(rename = "backend")]
    pub backends: Vec<BackendConfig>,
    /// How a backend is picked.
    pub balance: BalanceStrategy,
    /// Active health checks of the backends.
    pub health: HealthConfig,
    /// Timeouts.
    pub timeouts: TimeoutConfig,
    /// Further attempts on another backend for idempotent requests
    /// (GET, HEAD, OPTIONS, PUT, DELETE) whose backend could not be reached. Default 1.
    pub retries: u32,
    /// How long a gateway ban lasts before escalation. Default 10m.
    pub ban_for: HumanDuration,
    /// Per-client features, anomaly score and signatures.
    pub detection: HttpDetectionConfig,
    /// The request log.
    pub request_log: RequestLogConfig,
    /// Largest request head (request line and headers) accepted, in bytes. Default 65536.
    pub max_header_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            id: None,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 9742))),
            mode: GatewayMode::Block,
            trusted_proxies: Vec::new(),
            tls: None,
            backends: Vec::new(),
            balance: BalanceStrategy::RoundRobin,
            health: HealthConfig::default(),
            timeouts: TimeoutConfig::default(),
            retries: 1,
            ban_for: HumanDuration::from_secs(600),
            detection: HttpDetectionConfig::default(),
            request_log: RequestLogConfig::default(),
            max_header_bytes: 65_536,
        }
    }
}

/// Whether the gateway refuses requests or only records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayMode {
    /// Refuse banned clients, floods and attack requests.
    #[default]
    Block,
    /// Decide and record, forward everything.
    Monitor,
}

/// Certificate and key for TLS termination (PEM files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// One backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Base URL, `http://host:port` (a path prefix is not supported).
    pub url: String,
}

/// How the gateway picks a healthy backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceStrategy {
    /// Each healthy backend in turn.
    #[default]
    RoundRobin,
    /// The healthy backend with the fewest requests in flight.
    LeastConnections,
}

/// Active health checks: `GET path` every `interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Whether to check at all; without checks only passive marking applies. Default true.
    pub enabled: bool,
    /// Path requested. Default `/`.
    pub path: String,
    /// Time between checks. Default 5s.
    pub interval: HumanDuration,
    /// A check not answered within this fails. Default 2s.
    pub timeout: HumanDuration,
    /// Consecutive successes that bring a down backend back. Default 2.
    pub healthy_threshold: u32,
    /// Consecutive failures (checks, or connection failures of real
    /// requests) that take a backend down. Default 3.
    pub unhealthy_threshold: u32,
    /// Statuses counted as healthy are those below this. Default 500.
    pub max_status: u16,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/".to_owned(),
            interval: HumanDuration::from_secs(5),
            timeout: HumanDuration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            max_status: 500,
        }
    }
}

/// Timeouts; a request that exceeds one gets 504 (backend) or is closed (client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// Connecting to a backend. Default 3s.
    pub connect: HumanDuration,
    /// A client sending its request head (slowloris defence). Default 10s.
    pub header_read: HumanDuration,
    /// A client connection with no request in progress. Default 60s.
    pub idle: HumanDuration,
    /// Waiting for a backend's response head. Default 30s.
    pub backend_response: HumanDuration,
    /// A whole request, from head received to response head sent. Default 60s.
    pub total: HumanDuration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            connect: HumanDuration::from_secs(3),
            header_read: HumanDuration::from_secs(10),
            idle: HumanDuration::from_secs(60),
            backend_response: HumanDuration::from_secs(30),
            total: HumanDuration::from_secs(60),
        }
    }
}

/// Where every request is recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogConfig {
    /// Whether requests are recorded in the store. Default true.
    pub enabled: bool,
    /// Records waiting for the store at most; beyond it they are dropped and
    /// counted (`rampart_gateway_request_log_dropped_total`). Default 65536.
    pub queue: usize,
    /// Records written per store transaction at most. Default 1000.
    pub batch: usize,
    /// Records older than this are deleted (checked every 10 minutes);
    /// `0s` keeps everything. Default 24h.
    pub keep: HumanDuration,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            queue: 65_536,
            batch: 1000,
            keep: HumanDuration::from_secs(86_400),
        }
    }
}

impl GatewayConfig {
    /// Problems parsing cannot see, as messages naming the key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = self.detection.validate();
        for (i, b) in self.backends.iter().enumerate() {
            if let Err(e) = parse_backend_url(&b.url) {
                problems.push(format!("gateway.backend[{i}].url: {e}"));
            }
        }
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            if let Err(e) = rampart_core::parse_net(p) {
                problems.push(format!("gateway.trusted_proxies[{i}]: {e}"));
            }
        }
        if !self.health.path.starts_with('/') {
            problems.push("gateway.health.path: must start with /".to_owned());
        }
        if self.health.healthy_threshold == 0 || self.health.unhealthy_threshold == 0 {
            problems.push("gateway.health: thresholds must be at least 1".to_owned());
        }
        if self.request_log.batch == 0 || self.request_log.queue == 0 {
            problems.push("gateway.request_log: queue and batch must be at least 1".to_owned());
        }
        for (name, d) in [
            ("connect", self.timeouts.connect),
            ("header_read", self.timeouts.header_read),
            ("idle", self.timeouts.idle),
            ("backend_response", self.timeouts.backend_response),
            ("total", self.timeouts.total),
        ] {
            if d.0.is_zero() {
                problems.push(format!("gateway.timeouts.{name}: must be more than 0s"));
            }
        }
        if self.timeouts.idle.0 < self.timeouts.backend_response.0 {
            problems.push(
                "gateway.timeouts.idle: must be at least backend_response (a connection waiting \
                 for its backend moves no bytes)"
                    .to_owned(),
            );
        }
        problems
    }
}

/// A backend URL's authority (`host:port`), checked: `http://host[:port][/]` only.
pub fn parse_backend_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// backends are supported"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "{url:?}: expected http://host[:port] without a path"
        ));
    }
    if authority.contains(':') || authority.starts_with('[') {
        Ok(authority.to_owned())
    } else {
        Ok(format!("{authority}:80"))
    }
}
