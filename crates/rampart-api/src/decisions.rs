//! Decisions as the API shows them, the decision stream fleet members
//! follow, bans and unbans, the whitelist, banned addresses summed up.

use chrono::{DateTime, Utc};
use rampart_core::addr::display_net;
use rampart_core::{Action, ChangeKind, Decision, Finding, Origin, parse_net};
use serde::{Deserialize, Serialize};

/// A decision as the API shows it (and as the fleet reads it back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionOut {
    /// Row id.
    pub id: i64,
    /// The banned address or prefix (`192.0.2.7`, `2001:db8::/64`).
    pub ip: String,
    /// ban, unban or log.
    pub action: String,
    /// When decided.
    #[schema(value_type = String)]
    pub at: DateTime<Utc>,
    /// When it ends (null: never).
    #[schema(value_type = Option<String>)]
    pub until: Option<DateTime<Utc>>,
    /// Why.
    pub reason: String,
    /// scenario, operator or model.
    pub origin_kind: String,
    /// Scenario, operator or model name.
    pub origin_name: String,
    /// Recorded but not enforced.
    pub dry_run: bool,
    /// Repeat-offender step.
    pub escalation: u32,
    /// In force now.
    pub active: bool,
    /// When lifted early.
    #[schema(value_type = Option<String>)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who lifted it.
    pub revoked_by: Option<String>,
    /// The findings behind it.
    #[schema(value_type = Vec<Object>)]
    pub findings: Vec<Finding>,
}

impl DecisionOut {
    /// The API form of decision `id`; `active` says whether it is in force
    /// now, `revoked` when and by whom it was lifted early.
    pub fn new(
        id: i64,
        d: &Decision,
        active: bool,
        revoked_at: Option<DateTime<Utc>>,
        revoked_by: Option<String>,
    ) -> Self {
        Self {
            id,
            ip: display_net(&d.target),
            action: d.action.as_str().to_owned(),
            at: d.at,
            until: d.until,
            reason: d.reason.clone(),
            origin_kind: d.origin.kind().to_owned(),
            origin_name: d.origin.name().to_owned(),
            dry_run: d.dry_run,
            escalation: d.escalation,
            active,
            revoked_at,
            revoked_by,
            findings: d.findings.clone(),
        }
    }

    /// The decision back (for fleet followers).
    pub fn decision(&self) -> Option<Decision> {
        let target = parse_net(&self.ip).ok()?;
        let origin = Origin::from_parts(&self.origin_kind, &self.origin_name)?;
        Some(Decision {
            id: Some(self.id),
            action: Action::from_name(&self.action)?,
            target,
            at: self.at,
            until: self.until,
            reason: self.reason.clone(),
            origin,
            dry_run: self.dry_run,
            escalation: self.escalation,
            findings: self.findings.clone(),
        })
    }
}

/// `POST /api/v1/decisions` body: a ban.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// Address or CIDR.
    pub ip: String,
    /// How long, in minutes (1..525600). Default 240.
    #[serde(default)]
    pub duration_minutes: Option<i64>,
    /// Why. Default "manual ban".
    #[serde(default)]
    pub reason: Option<String>,
    /// Ban even a whitelisted address.
    #[serde(default)]
    pub force: bool,
}

/// What an unban lifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unbanned {
    /// Ids of the decisions lifted.
    pub revoked: Vec<i64>,
}

/// One change of the decision stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamChange {
    /// Its position; pass the last one seen as `since`.
    pub seq: i64,
    /// What happened to the decision.
    pub kind: ChangeKind,
    /// The decision after the change.
    pub decision: DecisionOut,
}

/// A slice of the decision stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamOut {
    /// Pass as `since` next time.
    pub cursor: i64,
    /// Changes after `since`, oldest first. Without `since`: every ban in
    /// force, as `added`.
    pub changes: Vec<StreamChange>,
}

/// A whitelist entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhitelistOut {
    /// Row id.
    pub id: i64,
    /// Address or CIDR.
    pub ip: String,
    /// Why.
    pub comment: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
}

/// `POST`/`PUT /api/v1/whitelist` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhitelistIn {
    /// Address or CIDR never to ban.
    pub ip: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

/// A banned address, over all its bans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BlockedIpOut {
    /// Address or prefix.
    pub ip: String,
    /// First ban.
    #[schema(value_type = String)]
    pub first_seen: DateTime<Utc>,
    /// Latest ban.
    #[schema(value_type = String)]
    pub last_blocked: DateTime<Utc>,
    /// Bans.
    pub block_count: u64,
    /// Mean score of the findings behind them.
    pub avg_confidence: f64,
    /// active or expired.
    pub status: String,
}
