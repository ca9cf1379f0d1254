//! Logging in, who the caller is, users and machine tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer TOKEN` (programs), or rely on the cookie (browsers).
    pub token: String,
    /// Send as `X-CSRF-Token` with state-changing requests that use the cookie.
    pub csrf_token: String,
    /// Who logged in.
    pub username: String,
    /// Their role.
    pub role: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// Who the caller is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    /// User or token name.
    pub name: String,
    /// Role.
    pub role: String,
    /// `bearer`, `cookie` or `public`.
    pub via: String,
}

/// A user (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserOut {
    /// Login name.
    pub username: String,
    /// viewer, operator or admin.
    pub role: String,
    /// When created.
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    /// When last changed.
    #[schema(value_type = String)]
    pub updated_at: DateTime<Utc>,
}

/// `POST /api/v1/users` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// viewer, operator or admin.
    pub role: String,
    /// At least 8 characters.
    pub password: String,
}

/// `PATCH /api/v1/users/{name}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New role.
    #[serde(default)]
    pub role: Option<String>,
    /// New password.
    #[serde(default)]
    pub password: Option<String>,
}

/// A token (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenOut {
    /// Name.
    pub name: String,
    /// agent, viewer, operator or admin.
    pub role: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    #[schema(value_type = String)]
    pub created_at: DateTime<Utc>,
    /// When revoked.
    #[schema(value_type = Option<String>)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/tokens` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Name (`agent-web-1`).
    pub name: String,
    /// agent (default), viewer, operator or admin.
    #[serde(default)]
    pub role: Option<String>,
}

/// A new token: the secret is shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// The secret, for `Authorization: Bearer`.
    pub token: String,
}
