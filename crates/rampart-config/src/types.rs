//! The config file's types. Every struct rejects unknown keys.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use rampart_core::{HumanDuration, Level};
use serde::{Deserialize, Serialize};

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This node's identity.
    pub agent: AgentConfig,
    /// Where decisions, findings and file positions are kept.
    pub store: StoreConfig,
    /// Log sources to follow, one `[[source]]` table each.
    #[serde(rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Where detection content (parsers and scenarios) comes from.
    pub rules: RulesConfig,
    /// How findings become decisions.
    pub policy: PolicyConfig,
    /// How bans are enforced.
    pub firewall: FirewallConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// The inline HTTP gateway (`rampart gateway`).
    pub gateway: crate::GatewayConfig,
    /// The central server (`rampart server`).
    pub server: crate::ServerConfig,
    /// Reporting to a central server (agents and gateways).
    pub fleet: crate::FleetConfig,
}

/// This node's identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Name shown in decisions and (later) to the server. Default: the host name.
    pub name: Option<String>,
}

/// Where state is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Database URL: `sqlite:///var/lib/rampart/rampart.db` (created if
    /// missing, WAL mode), `sqlite::memory:`, or
    /// `postgres://user:password@host:5432/rampart` (migrated at start;
    /// several servers may share one database).
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite:///var/lib/rampart/rampart.db".to_owned(),
        }
    }
}

/// How a source gets its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// Follow files on disk (rotation-safe, resumable).
    #[default]
    File,
    /// Follow the systemd journal through `journalctl --follow --output=json`.
    Journald,
}

/// How lines are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// sshd and PAM lines in syslog (RFC 3164, ISO 8601) or RFC 5424 form.
    Sshd,
    /// nginx access (combined, common, vhost variants) and error logs.
    Nginx,
    /// apache access (combined, common, vhost_combined) and error logs.
    Apache,
    /// One JSON object per line, mapped by `[source.json]`.
    Json,
}

impl LogFormat {
    /// The name used in config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Sshd => "sshd",
            LogFormat::Nginx => "nginx",
            LogFormat::Apache => "apache",
            LogFormat::Json => "json",
        }
    }
}

/// One log source, checked once at load: its input is one of the
/// [`SourceInput`] variants with only that variant's fields, and a JSON
/// mapping is present exactly when the format is `json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "RawSource")]
pub struct SourceConfig {
    /// Name of the source, shown in events and metrics (`sshd`, `web`…). Unique.
    pub name: String,
    /// Parser: `sshd`, `nginx`, `apache` or `json`.
    pub format: LogFormat,
    /// The field mapping; `Some` exactly when `format` is `json`.
    pub json: Option<JsonMapping>,
    /// Read from the start instead of the end when there is no saved position.
    pub from_start: bool,
    /// How often the input is checked for new lines (and files for rotation).
    pub poll_interval: HumanDuration,
    /// Longer lines are skipped (counted as `too_long`).
    pub max_line_bytes: usize,
    /// Where the lines come from.
    pub input: SourceInput,
}

/// Where a source's lines come from (`type` in the file).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceInput {
    /// `type = "file"` (the default): follow these files.
    File {
        /// Files to follow; at least one. They need not exist yet.
        paths: Vec<PathBuf>,
    },
    /// `type = "journald"`: follow the systemd journal.
    Journald {
        /// Journal matches (`_SYSTEMD_UNIT=ssh.service`); none reads everything.
        matches: Vec<String>,
        /// The journalctl program.
        journalctl: PathBuf,
    },
}

impl SourceConfig {
    /// The input's type.
    pub fn kind(&self) -> SourceType {
        match self.input {
            SourceInput::File { .. } => SourceType::File,
            SourceInput::Journald { .. } => SourceType::Journald,
        }
    }
}

impl<'de> Deserialize<'de> for SourceConfig {
    /// As a [`RawSource`] checked by `try_from`, inside the table's own
    /// visit so that a problem is reported at the table's line.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Table;
        impl<'de> serde::de::Visitor<'de> for Table {
            type Value = SourceConfig;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [[source]] table")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SourceConfig, A::Error> {
                let raw =
                    RawSource::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                SourceConfig::try_from(raw).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_map(Table)
    }
}

/// A `[[source]]` table as written, before its type is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    /// Name of the source, shown in events and metrics (`sshd`, `web`…). Unique.
    name: String,
    /// `file` (default) or `journald`.
    #[serde(default, rename = "type")]
    kind: SourceType,
    /// Parser: `sshd`, `nginx`, `apache` or `json`.
    format: LogFormat,
    /// Files to follow (type `file`). They need not exist yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    paths: Vec<PathBuf>,
    /// Read existing files from their start instead of their end when there
    /// is no saved position. Default false: a huge existing log is not re-read.
    #[serde(default)]
    from_start: bool,
    /// How often files are checked for new lines, rotation and truncation.
    #[serde(default = "default_poll")]
    poll_interval: HumanDuration,
    /// Longer lines are skipped (counted as `too_long`). Default 64 KiB.
    #[serde(default = "default_max_line")]
    max_line_bytes: usize,
    /// Journal matches for type `journald`, e.g. `["_SYSTEMD_UNIT=ssh.service"]`
    /// or `["SYSLOG_IDENTIFIER=sshd"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    journal_matches: Vec<String>,
    /// The journalctl program (type `journald`). Default `journalctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    journalctl: Option<PathBuf>,
    /// Field mapping for format `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    json: Option<JsonMapping>,
}

impl TryFrom<RawSource> for SourceConfig {
    type Error = String;

    /// Every problem of the table in one message (the loader names the
    /// source it is about).
    fn try_from(raw: RawSource) -> Result<Self, String> {
        let mut problems = Vec::new();
        let input = match raw.kind {
            SourceType::File => {
                if raw.paths.is_empty() {
                    problems.push("type file needs at least one path in paths".to_owned());
                }
                if !raw.journal_matches.is_empty() || raw.journalctl.is_some() {
                    problems.push(
                        "journal_matches and journalctl only apply to type journald".to_owned(),
                    );
                }
                SourceInput::File { paths: raw.paths }
            }
            SourceType::Journald => {
                if !raw.paths.is_empty() {
                    problems.push("type journald takes no paths (use journal_matches)".to_owned());
                }
                SourceInput::Journald {
                    matches: raw.journal_matches,
                    journalctl: raw.journalctl.unwrap_or_else(default_journalctl),
                }
            }
        };
        if raw.poll_interval.0.is_zero() {
            problems.push("poll_interval must be above zero".to_owned());
        }
        if raw.max_line_bytes < 256 {
            problems.push("max_line_bytes must be at least 256".to_owned());
        }
        match (raw.format, &raw.json) {
            (LogFormat::Json, None) => {
                problems.push("format json needs a [source.json] mapping".to_owned());
            }
            (LogFormat::Json, Some(map)) => {
                problems.extend(
                    validate_mapping(map)
                        .into_iter()
                        .map(|m| format!("json.{m}")),
                );
            }
            (_, Some(_)) => problems.push("[source.json] only applies to format json".to_owned()),
            _ => {}
        }
        if problems.is_empty() {
            Ok(Self {
                name: raw.name,
                format: raw.format,
                json: raw.json,
                from_start: raw.from_start,
                poll_interval: raw.poll_interval,
                max_line_bytes: raw.max_line_bytes,
                input,
            })
        } else {
            Err(problems.join("; "))
        }
    }
}

impl From<SourceConfig> for RawSource {
    fn from(s: SourceConfig) -> Self {
        let kind = s.kind();
        let (paths, journal_matches, journalctl) = match s.input {
            SourceInput::File { paths } => (paths, Vec::new(), None),
            SourceInput::Journald {
                matches,
                journalctl,
            } => (Vec::new(), matches, Some(journalctl)),
        };
        Self {
            name: s.name,
            kind,
            format: s.format,
            paths,
            from_start: s.from_start,
            poll_interval: s.poll_interval,
            max_line_bytes: s.max_line_bytes,
            journal_matches,
            journalctl,
            json: s.json,
        }
    }
}

fn default_poll() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(250))
}

fn default_max_line() -> usize {
    64 * 1024
}

fn default_journalctl() -> PathBuf {
    PathBuf::from("journalctl")
}

/// How a JSON object becomes an event. Field paths use dots for nesting
/// (`client.ip`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonMapping {
    /// Path of the timestamp (RFC 3339 text, or seconds / milliseconds
    /// since the epoch as a number). Missing: the time the line was read.
    #[serde(default)]
    pub time: Option<String>,
    /// Path of the client address.
    pub addr: String,
    /// The event kind every line has (e.g. `auth_failure`), unless `kind_field` is set.
    #[serde(default)]
    pub kind: Option<String>,
    /// Path of a field whose value picks the kind through `kind_map`.
    #[serde(default)]
    pub kind_field: Option<String>,
    /// Value of `kind_field` → event kind. Lines with unmapped values are skipped.
    #[serde(default)]
    pub kind_map: BTreeMap<String, String>,
    /// Event field name → path in the object (`user = "user.name"`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// Where detection content comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// A directory with `parsers/*.toml` and `scenarios/*.toml` that replaces
    /// the rules built into the binary. Default: the built-in rules.
    pub dir: Option<PathBuf>,
}

/// How findings become decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Decide and record, but enforce nothing.
    pub dry_run: bool,
    /// Ban duration by finding level. A level without a duration is logged, not banned.
    pub ban: BanDurations,
    /// Longer bans for repeat offenders.
    pub escalation: EscalationConfig,
    /// Addresses and prefixes never banned (loopback and the host's own
    /// addresses are always whitelisted).
    pub whitelist: Vec<String>,
}

impl PolicyConfig {
    /// The whitelist's entries as prefixes (a bare address is its /32 or
    /// /128); the first bad entry is the error (`validate` reports all).
    pub fn whitelist_nets(&self) -> Result<Vec<ipnet::IpNet>, rampart_core::addr::AddrError> {
        self.whitelist
            .iter()
            .map(|w| rampart_core::parse_net(w))
            .collect()
    }
}

/// Ban duration by level. Levels left out keep their default; `"0s"`
/// means "log only, do not ban".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanDurations {
    /// LOW findings. Default: not banned, only logged.
    pub low: Option<HumanDuration>,
    /// MEDIUM findings. Default 10m (fail2ban's bantime).
    pub medium: Option<HumanDuration>,
    /// HIGH findings. Default 1h.
    pub high: Option<HumanDuration>,
    /// CRITICAL findings. Default 24h.
    pub critical: Option<HumanDuration>,
}

impl Default for BanDurations {
    fn default() -> Self {
        Self {
            low: None,
            medium: Some(HumanDuration::from_secs(600)),
            high: Some(HumanDuration::from_secs(3600)),
            critical: Some(HumanDuration::from_secs(86_400)),
        }
    }
}

impl BanDurations {
    /// The duration for `level`, `None` when it is not banned.
    pub fn for_level(&self, level: Level) -> Option<HumanDuration> {
        let duration = match level {
            Level::Low => self.low,
            Level::Medium => self.medium,
            Level::High => self.high,
            Level::Critical => self.critical,
        };
        duration.filter(|d| !d.0.is_zero())
    }
}

/// Repeat offenders (fail2ban's `bantime.increment`): the n-th ban of an
/// address within `lookback` lasts `base × factor^(n-1)`, at most `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationConfig {
    /// Whether bans escalate. Default true.
    pub enabled: bool,
    /// Multiplier per earlier ban. Default 2.
    pub factor: f64,
    /// Longest ban escalation gives. Default 1w.
    pub max: HumanDuration,
    /// How far back earlier bans count. Default 7d.
    pub lookback: HumanDuration,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            factor: 2.0,
            max: HumanDuration::from_secs(7 * 86_400),
            lookback: HumanDuration::from_secs(7 * 86_400),
        }
    }
}

/// Which firewall carries bans out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallBackend {
    /// nftables sets with per-element timeouts, in rampart's own table.
    #[default]
    Nftables,
    /// iptables rules matching ipset sets with timeouts.
    Ipset,
    /// No firewall: decisions are stored (and shown) only.
    None,
}

/// How bans are enforced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// `nftables` (default), `ipset` or `none`.
    pub backend: FirewallBackend,
    /// Name of rampart's nftables table (family `inet`) or prefix of its ipset sets.
    pub table: String,
    /// Run firewall commands inside this network namespace (`ip netns exec`). For tests.
    pub netns: Option<String>,
    /// The `nft` program.
    pub nft: PathBuf,
    /// The `ipset` program.
    pub ipset: PathBuf,
    /// The `iptables` program.
    pub iptables: PathBuf,
    /// The `ip6tables` program.
    pub ip6tables: PathBuf,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            backend: FirewallBackend::Nftables,
            table: "rampart".to_owned(),
            netns: None,
            nft: PathBuf::from("nft"),
            ipset: PathBuf::from("ipset"),
            iptables: PathBuf::from("iptables"),
            ip6tables: PathBuf::from("ip6tables"),
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address `/metrics` is served on; `""` to disable. Default 127.0.0.1:9741.
    #[serde(deserialize_with = "empty_or_addr", serialize_with = "addr_or_empty")]
    pub listen: Option<SocketAddr>,
}

/// `""` is `None`, anything else a socket address.
fn empty_or_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn addr_or_empty<S: serde::Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match addr {
        Some(a) => s.collect_str(a),
        None => s.serialize_str(""),
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9741))),
        }
    }
}

impl Config {
    /// Problems that parsing cannot see: every one, as messages naming the key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, src) in self.sources.iter().enumerate() {
            if src.name.trim().is_empty() {
                problems.push(format!("source[{i}]: name is empty"));
            } else if !names.insert(src.name.as_str()) {
                problems.push(format!(
                    "source {:?}: name is used by another source",
                    src.name
                ));
            }
        }
        for entry in &self.policy.whitelist {
            if let Err(e) = rampart_core::parse_net(entry) {
                problems.push(format!("policy.whitelist: {e}"));
            }
        }
        let esc = &self.policy.escalation;
        if !(esc.factor.is_finite() && esc.factor >= 1.0) {
            problems.push("policy.escalation.factor must be a number of at least 1".to_owned());
        }
        if self.firewall.table.is_empty()
            || self.firewall.table.len() > 24
            || !self
                .firewall
                .table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            problems.push(
                "firewall.table must be 1 to 24 characters of letters, digits, _ and -".to_owned(),
            );
        }
        if let Some(ns) = &self.firewall.netns
            && (ns.is_empty() || ns.contains('/') || ns.starts_with('-'))
        {
            problems.push("firewall.netns is not a valid namespace name".to_owned());
        }
        let url = &self.store.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            problems.push(format!(
                "store.url: unsupported database {url:?} (use sqlite:///path/to/rampart.db or \
                 postgres://user@host/db)"
            ));
        }
        problems.extend(self.gateway.validate());
        problems.extend(self.server.validate());
        problems.extend(self.fleet.validate());
        problems
    }
}

fn validate_mapping(map: &JsonMapping) -> Vec<String> {
    let mut problems = Vec::new();
    match (&map.kind, &map.kind_field) {
        (None, None) => problems.push("set kind or kind_field".to_owned()),
        (Some(_), Some(_)) => problems.push("set kind or kind_field, not both".to_owned()),
        (Some(kind), None) => {
            if rampart_core::EventKind::from_name(kind).is_none() {
                problems.push(format!("kind: unknown event kind {kind:?}"));
            }
        }
        (None, Some(_)) => {
            if map.kind_map.is_empty() {
                problems.push("kind_field needs a kind_map".to_owned());
            }
        }
    }
    for (value, kind) in &map.kind_map {
        if rampart_core::EventKind::from_name(kind).is_none() {
            problems.push(format!("kind_map.{value}: unknown event kind {kind:?}"));
        }
    }
    problems
}
