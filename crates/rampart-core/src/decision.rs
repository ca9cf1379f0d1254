//! Decisions: what policy made of findings, with the reasons.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Level};

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Drop traffic from the target until the decision expires.
    Ban,
    /// Lift bans on the target.
    Unban,
    /// Record only.
    Log,
}

impl Action {
    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::Log => "log",
        }
    }

    /// The action with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ban" => Some(Action::Ban),
            "unban" => Some(Action::Unban),
            "log" => Some(Action::Log),
            _ => None,
        }
    }
}

/// Who or what made a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum Origin {
    /// A detection scenario, by name.
    Scenario(String),
    /// A person, through the CLI or API.
    Operator(String),
    /// A model, by name.
    Model(String),
}

impl Origin {
    /// `scenario`, `operator` or `model`.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Scenario(_) => "scenario",
            Origin::Operator(_) => "operator",
            Origin::Model(_) => "model",
        }
    }

    /// The scenario, operator or model name.
    pub fn name(&self) -> &str {
        match self {
            Origin::Scenario(n) | Origin::Operator(n) | Origin::Model(n) => n,
        }
    }
}

impl Origin {
    /// The origin of kind `kind` (`scenario`, `operator`, `model`) named `name`.
    pub fn from_parts(kind: &str, name: &str) -> Option<Self> {
        let name = name.to_owned();
        match kind {
            "scenario" => Some(Origin::Scenario(name)),
            "operator" => Some(Origin::Operator(name)),
            "model" => Some(Origin::Model(name)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

/// What policy made of findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The store's id, once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// What to do.
    pub action: Action,
    /// The address or prefix it applies to.
    pub target: IpNet,
    /// When it was made (event time for detection, wall time for operators).
    pub at: DateTime<Utc>,
    /// When it stops applying; `None` for actions without a duration.
    pub until: Option<DateTime<Utc>>,
    /// One line of why, for people.
    pub reason: String,
    /// Who made it.
    pub origin: Origin,
    /// Decided and recorded but not enforced.
    pub dry_run: bool,
    /// How many earlier bans of this target the escalation counted (0 for a first ban).
    #[serde(default)]
    pub escalation: u32,
    /// The findings that justify it.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

impl Decision {
    /// The reason of an operator's ban when they give none.
    pub const MANUAL_BAN: &'static str = "manual ban";

    /// A ban a person (`by`) made at `at` for `duration`, enforced unless
    /// `dry_run`: the one way an operator's ban is built (the CLI, the
    /// server's API, the gateway's admin API). A blank `reason` becomes
    /// [`Self::MANUAL_BAN`].
    pub fn operator_ban(
        target: IpNet,
        by: &str,
        at: DateTime<Utc>,
        duration: chrono::Duration,
        reason: Option<String>,
        dry_run: bool,
    ) -> Self {
        Self {
            id: None,
            action: Action::Ban,
            target,
            at,
            until: Some(
                at.checked_add_signed(duration)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            ),
            reason: reason
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| Self::MANUAL_BAN.to_owned()),
            origin: Origin::Operator(by.to_owned()),
            dry_run,
            escalation: 0,
            findings: Vec::new(),
        }
    }

    /// The level this decision counts as when detection asks whether its
    /// target is already banned: its findings' highest, or critical when it
    /// has none (an operator's or a server's ban, which detection never
    /// overrides).
    pub fn level(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Critical)
    }

    /// The scenario name when a scenario made it.
    pub fn scenario(&self) -> Option<&str> {
        match &self.origin {
            Origin::Scenario(name) => Some(name),
            _ => None,
        }
    }

    /// Whether a ban is in force at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.action == Action::Ban && self.until.is_none_or(|u| u > now)
    }
}

/// What happened to a decision, in the store's change log and the
/// server's decision stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new decision (in a stream read from the start: one in force).
    Added,
    /// A decision lifted before its end.
    Revoked,
}

impl ChangeKind {
    /// The snake_case name (`added`, `revoked`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Revoked => "revoked",
        }
    }

    /// The kind with this snake_case name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "added" => Some(ChangeKind::Added),
            "revoked" => Some(ChangeKind::Revoked),
            _ => None,
        }
    }
}
