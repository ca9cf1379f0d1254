//! `[gateway.detection]`: per-client behaviour features, the anomaly score
//! and the request signatures the gateway applies.
//!
//! docs/gateway-detection.md explains every feature, the score formula and
//! the signature kinds; the doc comments here are the field reference.

use rampart_core::HumanDuration;
use serde::{Deserialize, Serialize};

/// How the gateway judges clients and requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpDetectionConfig {
    /// Most clients tracked at once; the least recently seen are evicted beyond it. Default 100000.
    pub max_clients: usize,
    /// A client idle this long is forgotten. Default 10m.
    pub idle_after: HumanDuration,
    /// IPv4 clients are grouped by this prefix length. Default 32 (one address, one client).
    pub ipv4_prefix: u8,
    /// IPv6 clients are grouped by this prefix length (an IPv4-mapped IPv6
    /// address counts as IPv4). Default 64: one customer's network.
    pub ipv6_prefix: u8,
    /// A score at or above this is `monitor`. Default 0.5.
    pub monitor_threshold: f64,
    /// A score at or above this is `block`. Default 0.8.
    pub block_threshold: f64,
    /// Requests a client must have made before its score can block it. Default 8.
    pub min_requests: u32,
    /// Requests within the last 10 s a client must have made before its
    /// score (or its persistence at monitor level) can block it. Slower
    /// clients — health monitors, pollers, API scripts — are flagged at
    /// most, never blocked by behaviour alone (floods and signatures still
    /// block). Default 6.
    pub min_rate_10s: u32,
    /// How long a client must have been seen before its score can block it,
    /// so one short burst of scripted requests is not banned. Default 500ms.
    pub min_seen: HumanDuration,
    /// A client whose score stays at or above `monitor_threshold` this long
    /// is blocked (slow bots). `0s` disables it. Default 30s.
    pub escalate_after: HumanDuration,
    /// Requests within 1 s that make a flood, blocked whatever the score. Default 40.
    pub flood_rps: u32,
    /// Requests within 10 s that make a flood, blocked whatever the score. Default 200.
    pub flood_10s: u32,
    /// Log-odds of the score when every signal is 0: the score is
    /// `1 / (1 + exp(-(bias + Σ weight × signal)))`. Default -5.5.
    pub bias: f64,
    /// How much each behaviour signal adds to the log-odds of the score.
    pub weights: HttpDetectionWeights,
    /// Per-request signatures: SQL injection, XSS, traversal, scanners, sensitive paths.
    pub signatures: SignatureConfig,
}

impl Default for HttpDetectionConfig {
    fn default() -> Self {
        Self {
            max_clients: 100_000,
            idle_after: HumanDuration::from_secs(600),
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            monitor_threshold: 0.5,
            block_threshold: 0.8,
            min_requests: 8,
            min_rate_10s: 6,
            min_seen: HumanDuration(std::time::Duration::from_millis(500)),
            escalate_after: HumanDuration::from_secs(30),
            flood_rps: 40,
            flood_10s: 200,
            bias: -5.5,
            weights: HttpDetectionWeights::default(),
            signatures: SignatureConfig::default(),
        }
    }
}

/// `[gateway.detection.weights]`: each behaviour signal is a number in
/// 0..1 (its mapping is in docs/gateway-detection.md); its weight is what it
/// adds to the score's log-odds when it is 1. A weight of 0 turns a signal
/// off; negative weights are allowed (a learned model may need them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpDetectionWeights {
    /// Request rate: 1 from 40 requests in 1 s or 200 in 10 s, 0 below 10 in 1 s and 60 in 10 s. Default 3.
    pub rate: f64,
    /// Most requests in one 100 ms slot within 10 s: 0 at 12, 1 at 40. Default 1.
    pub burst: f64,
    /// Share of the last second's ten 100 ms slots holding a request
    /// (continuous traffic, unlike a browser's bursts): 0 at 0.6, 1 at 0.9. Default 2.
    pub steady: f64,
    /// Regular inter-arrival times, coefficient of variation 0.8 → 0, 0.3 → 1
    /// (from 8 intervals and 5 s of history). Default 1.
    pub regular: f64,
    /// Share of requests without a cookie. Default 1.5.
    pub no_cookie: f64,
    /// Share of requests without `Accept-Language`. Default 2.
    pub no_accept_language: f64,
    /// Share of requests without a referer. Default 1.
    pub no_referer: f64,
    /// Few paths: path entropy 2.5 bits → 0, 1 bit → 1 (from 4 requests). Default 1.5.
    pub same_path: f64,
    /// Share of responses that are 4xx: 0.3 → 0, 0.8 → 1 (from 4 responses). Default 2.
    pub client_errors: f64,
    /// Share of responses that are 5xx: 0.5 → 0, 0.9 → 1 (from 4 responses). Default 0.5.
    pub server_errors: f64,
    /// Share of requests without a user agent. Default 1.5.
    pub no_user_agent: f64,
    /// Share of requests whose user agent is not a browser's (does not start with `Mozilla/` or `Opera/`). Default 1.
    pub tool_user_agent: f64,
    /// Distinct user agents from one client: 3 → 0, 8 → 1. Default 1.
    pub user_agent_rotation: f64,
    /// Unusual methods: HEAD and other methods (not GET/POST) 20 % → 0,
    /// 60 % → 1, or POST 60 % → 0, 95 % → 1 (from 4 requests). Default 1.
    pub method_mix: f64,
    /// Few headers: mean header count 6 → 0, 3 → 1. Default 0.5.
    pub few_headers: f64,
    /// Identical body sizes: standard deviation of `Content-Length` 16 → 0, 1 → 1 (from 5 bodies). Default 0.5.
    pub fixed_body: f64,
}

impl Default for HttpDetectionWeights {
    fn default() -> Self {
        Self {
            rate: 3.0,
            burst: 1.0,
            steady: 2.0,
            regular: 1.0,
            no_cookie: 1.5,
            no_accept_language: 2.0,
            no_referer: 1.0,
            same_path: 1.5,
            client_errors: 2.0,
            server_errors: 0.5,
            no_user_agent: 1.5,
            tool_user_agent: 1.0,
            user_agent_rotation: 1.0,
            method_mix: 1.0,
            few_headers: 0.5,
            fixed_body: 0.5,
        }
    }
}

impl HttpDetectionWeights {
    /// Every weight with its key name, in a fixed order.
    pub fn named(&self) -> [(&'static str, f64); 16] {
        [
            ("rate", self.rate),
            ("burst", self.burst),
            ("steady", self.steady),
            ("regular", self.regular),
            ("no_cookie", self.no_cookie),
            ("no_accept_language", self.no_accept_language),
            ("no_referer", self.no_referer),
            ("same_path", self.same_path),
            ("client_errors", self.client_errors),
            ("server_errors", self.server_errors),
            ("no_user_agent", self.no_user_agent),
            ("tool_user_agent", self.tool_user_agent),
            ("user_agent_rotation", self.user_agent_rotation),
            ("method_mix", self.method_mix),
            ("few_headers", self.few_headers),
            ("fixed_body", self.fixed_body),
        ]
    }
}

/// `[gateway.detection.signatures]`: what each request is checked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignatureConfig {
    /// SQL injection in the path, query parameters and form bodies (libinjection). Default true.
    pub sqli: bool,
    /// Cross-site scripting in the path, query parameters, form bodies and user agent (libinjection). Default true.
    pub xss: bool,
    /// Path traversal and local file inclusion (`../`, encoded forms, null
    /// bytes, `/etc/passwd`, `win.ini`…). Default true.
    pub traversal: bool,
    /// Known scanner and attack-tool user agents (sqlmap, nikto, nuclei…). Default true.
    pub scanner: bool,
    /// Probes for files only attackers ask for (`/.env`, `/.git/`, `/phpmyadmin`, backups…). Default true.
    pub sensitive_paths: bool,
    /// Count WordPress paths (`/wp-admin`, `wp-login.php`, `xmlrpc.php`,
    /// `wp-config.php`) as sensitive probes; turn off in front of a WordPress site. Default true.
    pub wordpress: bool,
    /// More user-agent substrings that mark a scanner (case-insensitive). Default none.
    pub extra_scanner_agents: Vec<String>,
    /// More path substrings that mark a sensitive probe (case-insensitive,
    /// matched in the decoded path, e.g. `/internal/`). Default none.
    pub extra_sensitive_paths: Vec<String>,
    /// Bytes of each decoded value (path, parameter, user agent) inspected
    /// at most; the rest is not looked at. Default 4096.
    pub max_value_bytes: usize,
    /// Bytes of a form body inspected at most; 0 inspects no body. Default 65536.
    pub max_body_bytes: usize,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        Self {
            sqli: true,
            xss: true,
            traversal: true,
            scanner: true,
            sensitive_paths: true,
            wordpress: true,
            extra_scanner_agents: Vec::new(),
            extra_sensitive_paths: Vec::new(),
            max_value_bytes: 4096,
            max_body_bytes: 65_536,
        }
    }
}

impl HttpDetectionConfig {
    /// Problems parsing cannot see, as messages naming the key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, msg: &str| {
            problems.push(format!("gateway.detection.{key}: {msg}"));
        };
        if self.max_clients == 0 {
            problem("max_clients", "must be at least 1");
        }
        if self.idle_after.0.is_zero() {
            problem("idle_after", "must be more than 0s");
        }
        if !(1..=32).contains(&self.ipv4_prefix) {
            problem("ipv4_prefix", "must be between 1 and 32");
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            problem("ipv6_prefix", "must be between 1 and 128");
        }
        for (key, value) in [
            ("monitor_threshold", self.monitor_threshold),
            ("block_threshold", self.block_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                problem(key, "must be between 0 and 1");
            }
        }
        if self.monitor_threshold > self.block_threshold {
            problem("monitor_threshold", "must not be above block_threshold");
        }
        if self.min_requests == 0 {
            problem("min_requests", "must be at least 1");
        }
        if self.flood_rps == 0 {
            problem("flood_rps", "must be at least 1");
        }
        if self.flood_10s == 0 {
            problem("flood_10s", "must be at least 1");
        }
        if !self.bias.is_finite() {
            problem("bias", "must be a finite number");
        }
        for (name, weight) in self.weights.named() {
            if !weight.is_finite() {
                problem(&format!("weights.{name}"), "must be a finite number");
            }
        }
        let sig = &self.signatures;
        for (key, list) in [
            ("extra_scanner_agents", &sig.extra_scanner_agents),
            ("extra_sensitive_paths", &sig.extra_sensitive_paths),
        ] {
            for (i, s) in list.iter().enumerate() {
                if s.trim().is_empty() {
                    problem(&format!("signatures.{key}[{i}]"), "must not be empty");
                }
            }
        }
        if sig.max_value_bytes == 0 {
            problem("signatures.max_value_bytes", "must be at least 1");
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_an_empty_table_is_the_defaults() {
        assert!(HttpDetectionConfig::default().validate().is_empty());
        let parsed: HttpDetectionConfig = toml::from_str("").unwrap();
        assert_eq!(parsed, HttpDetectionConfig::default());
    }

    #[test]
    fn tables_parse_and_keep_the_other_defaults() {
        let parsed: HttpDetectionConfig = toml::from_str(
            r#"
flood_rps = 100
escalate_after = "0s"
[weights]
no_cookie = 0.0
[signatures]
wordpress = false
extra_scanner_agents = ["evilbot"]
"#,
        )
        .unwrap();
        assert_eq!(parsed.flood_rps, 100);
        assert!(parsed.escalate_after.0.is_zero());
        assert_eq!(parsed.weights.no_cookie, 0.0);
        assert_eq!(parsed.weights.rate, 3.0);
        assert!(!parsed.signatures.wordpress);
        assert!(parsed.signatures.sqli);
        assert_eq!(parsed.signatures.extra_scanner_agents, ["evilbot"]);
        assert!(parsed.validate().is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for text in [
            "flood = 3",
            "[weights]\ncookie = 1.0",
            "[signatures]\nsqlI = true",
        ] {
            let err = toml::from_str::<HttpDetectionConfig>(text).unwrap_err();
            assert!(err.message().contains("unknown field"), "{text}: {err}");
        }
    }

    #[test]
    fn validate_names_every_bad_key() {
        let mut c = HttpDetectionConfig {
            max_clients: 0,
            ipv6_prefix: 129,
            monitor_threshold: 0.9,
            block_threshold: 1.5,
            min_requests: 0,
            flood_rps: 0,
            bias: f64::NAN,
            ..HttpDetectionConfig::default()
        };
        c.weights.steady = f64::INFINITY;
        c.signatures.extra_sensitive_paths = vec![" ".to_owned()];
        let problems = c.validate();
        for key in [
            "gateway.detection.max_clients:",
            "gateway.detection.ipv6_prefix:",
            "gateway.detection.block_threshold:",
            "gateway.detection.min_requests:",
            "gateway.detection.flood_rps:",
            "gateway.detection.bias:",
            "gateway.detection.weights.steady:",
            "gateway.detection.signatures.extra_sensitive_paths[0]:",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(key)),
                "{key} missing from {problems:?}"
            );
        }
        let c = HttpDetectionConfig {
            monitor_threshold: 0.9,
            block_threshold: 0.8,
            ..HttpDetectionConfig::default()
        };
        assert_eq!(
            c.validate(),
            ["gateway.detection.monitor_threshold: must not be above block_threshold"]
        );
    }
}
