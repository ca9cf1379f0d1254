//! `[server]`: the central server (`rampart server`), and `[fleet]`: how an
//! agent or gateway reports to one.

use std::net::SocketAddr;

use rampart_core::HumanDuration;
use serde::{Deserialize, Serialize};

use crate::TlsConfig;

/// The central server: REST API, live stream, fleet sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the API listens on. Default 127.0.0.1:9700.
    pub listen: SocketAddr,
    /// TLS (rustls); absent: plain HTTP. Session cookies are `Secure` under TLS.
    pub tls: Option<TlsConfig>,
    /// Largest request body accepted, in bytes; larger ones get 413. Default 10 MiB.
    pub max_body_bytes: usize,
    /// Paths that answer without authentication besides `/health`, e.g.
    /// `["/metrics"]` for a Prometheus without a token. Default: none.
    pub public: Vec<String>,
    /// How long a login session lasts. Default 12h.
    pub session_ttl: HumanDuration,
    /// Login attempts allowed per client address.
    pub login: LoginLimitConfig,
    /// How long things are kept.
    pub retention: RetentionConfig,
    /// A fleet member whose last heartbeat is older than this is `stale`. Default 30s.
    pub stale_after: HumanDuration,
    /// … and older than this, `down`. Default 2m.
    pub down_after: HumanDuration,
    /// How often `/ws/live` clients get a heartbeat. Default 30s.
    pub live_heartbeat: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9700)),
            tls: None,
            max_body_bytes: 10 * 1024 * 1024,
            public: Vec::new(),
            session_ttl: HumanDuration(std::time::Duration::from_secs(12 * 3600)),
            login: LoginLimitConfig::default(),
            retention: RetentionConfig::default(),
            stale_after: HumanDuration(std::time::Duration::from_secs(30)),
            down_after: HumanDuration(std::time::Duration::from_secs(120)),
            live_heartbeat: HumanDuration(std::time::Duration::from_secs(30)),
        }
    }
}

/// Login rate limit: at most `attempts` failed logins per `per` from one
/// address; further attempts get 429 until the window has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimitConfig {
    /// Failures allowed in the window. Default 5.
    pub attempts: u32,
    /// The window. Default 5m.
    pub per: HumanDuration,
}

impl Default for LoginLimitConfig {
    fn default() -> Self {
        Self {
            attempts: 5,
            per: HumanDuration(std::time::Duration::from_secs(300)),
        }
    }
}

/// Retention of the server's tables (deleted every ten minutes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Request-log records. Default 24h.
    pub requests: HumanDuration,
    /// Findings that led to no decision. Default 30d (those behind a
    /// decision are kept with it).
    pub findings: HumanDuration,
    /// Pushed events, actions and upload records. Default 7d.
    pub events: HumanDuration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            requests: HumanDuration(std::time::Duration::from_secs(24 * 3600)),
            findings: HumanDuration(std::time::Duration::from_secs(30 * 24 * 3600)),
            events: HumanDuration(std::time::Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// How an agent or gateway reports to a central server. Without `url`, it
/// works alone on its own store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// The server's base URL, `http://host:9700`. This build speaks plain
    /// HTTP to the server: keep it on a private network, or reach it
    /// through a TLS-terminating proxy on the node (`http://127.0.0.1:…`).
    pub url: Option<String>,
    /// A machine token (`rampart token create NAME --role agent`). Use
    /// `${VAR}` to keep it out of the file.
    pub token: Option<String>,
    /// How often queued findings, decisions and request-log records are
    /// pushed. Default 1s.
    pub push_every: HumanDuration,
    /// Most items in one push. Default 2000.
    pub batch: usize,
    /// No longer used, kept so that older configs still load: nothing waits
    /// in memory for the server any more (what a node has not pushed yet
    /// waits in its own store, read from where the last push ended).
    /// `config check` warns when it is set.
    pub spool: Option<usize>,
    /// How often the decision stream is polled. Default 500ms.
    pub follow_every: HumanDuration,
    /// How often a heartbeat is sent. Default 10s.
    pub heartbeat_every: HumanDuration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            push_every: HumanDuration(std::time::Duration::from_secs(1)),
            batch: 2000,
            spool: None,
            follow_every: HumanDuration(std::time::Duration::from_millis(500)),
            heartbeat_every: HumanDuration(std::time::Duration::from_secs(10)),
        }
    }
}

impl ServerConfig {
    /// Problems with the server settings.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".to_owned());
        }
        if self.login.attempts == 0 {
            problems.push("server.login.attempts must be at least 1".to_owned());
        }
        if self.down_after.0 < self.stale_after.0 {
            problems
                .push("server.down_after must not be shorter than server.stale_after".to_owned());
        }
        if self.live_heartbeat.0.is_zero() {
            problems.push("server.live_heartbeat must be above zero".to_owned());
        }
        for p in &self.public {
            if !p.starts_with('/') {
                problems.push(format!(
                    "server.public: {p:?} is not a path (starts with /)"
                ));
            }
        }
        problems
    }
}

impl FleetConfig {
    /// Problems with the fleet settings.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match (&self.url, &self.token) {
            (Some(url), token) => {
                if let Err(e) = check_fleet_url(url) {
                    problems.push(e);
                }
                if token.as_deref().is_none_or(str::is_empty) {
                    problems.push("fleet.url needs fleet.token".to_owned());
                }
            }
            (None, Some(_)) => problems.push("fleet.token without fleet.url".to_owned()),
            (None, None) => {}
        }
        if self.batch == 0 {
            problems.push("fleet.batch must be at least 1".to_owned());
        }
        problems
    }
}

/// Why `url` cannot be `fleet.url`: the one check the config and the fleet
/// client share.
pub fn check_fleet_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(format!(
            "fleet.url = {url:?}: only http:// is supported by this build (put a TLS-terminating \
             proxy on the path, or keep the server on a private network)"
        ));
    }
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!("fleet.url = {url:?}: expected http://host:port")),
    }
}
