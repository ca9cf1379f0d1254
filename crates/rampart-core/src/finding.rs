//! Findings: a detector's verdict about a subject, with the evidence.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::addr::Subject;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Worth recording.
    Low,
    /// Worth acting on.
    Medium,
    /// Clearly hostile.
    High,
    /// Hostile and persistent or dangerous.
    Critical,
}

impl Level {
    /// Upper-case name (`HIGH`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "LOW",
            Level::Medium => "MEDIUM",
            Level::High => "HIGH",
            Level::Critical => "CRITICAL",
        }
    }

    /// Parses `low`, `LOW`, `Low`, ….
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "low" => Some(Level::Low),
            "medium" => Some(Level::Medium),
            "high" => Some(Level::High),
            "critical" => Some(Level::Critical),
            _ => None,
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What made a finding: counts, the first and last matching lines, and
/// the distinct values seen where the detector counts them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Matching events counted.
    pub count: u64,
    /// Time of the first matching event.
    pub first_seen: Option<DateTime<Utc>>,
    /// Time of the last matching event.
    pub last_seen: Option<DateTime<Utc>>,
    /// The first matching raw line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_line: Option<String>,
    /// The last matching raw line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line: Option<String>,
    /// Distinct values counted (users, paths…), a bounded sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distinct: Vec<String>,
    /// The detector's own words on why (e.g. "6 auth_failure in 2m3s, threshold 5 in 10m").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// A detector's verdict about a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// When the verdict was reached (event time).
    pub time: DateTime<Utc>,
    /// What it is about.
    pub subject: Subject,
    /// The scenario or model label (`ssh-bruteforce`, `http-scan`…).
    pub label: String,
    /// Confidence 0..1.
    pub score: f64,
    /// Severity.
    pub level: Level,
    /// What made it.
    pub evidence: Evidence,
}
