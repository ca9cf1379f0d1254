//! Users and tokens (admin only).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use rampart_store::Role;

use crate::access::{Principal, SESSION_PREFIX};
use crate::auth::{hash_password, new_token};
use crate::error::{ApiError, ApiJson};
use crate::state::AppState;
use rampart_api::{CreatedToken, NewToken, NewUser, TokenOut, UserChange, UserOut};

fn person_role(field: &str, name: &str) -> Result<Role, ApiError> {
    match Role::from_name(name) {
        Some(Role::Agent) | None => Err(ApiError::field(
            field,
            format!("{name:?} is not viewer, operator or admin"),
        )),
        Some(r) => Ok(r),
    }
}

fn hash(password: &str) -> Result<String, ApiError> {
    hash_password(password).map_err(|e| ApiError::field("password", e.to_string()))
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "admin", responses((status = 200, body = Vec<UserOut>)))]
pub async fn users(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<UserOut>>, ApiError> {
    principal.require(Role::Admin)?;
    let list = state.store.list_users().await?;
    Ok(Json(
        list.into_iter()
            .map(|u| UserOut {
                username: u.name,
                role: u.role.as_str().to_owned(),
                created_at: u.created_at,
                updated_at: u.updated_at,
            })
            .collect(),
    ))
}

/// Add a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "admin", request_body = NewUser,
    responses((status = 201), (status = 400, body = rampart_api::ErrorBody), (status = 409, body = rampart_api::ErrorBody)))]
pub async fn add_user(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    let role = person_role("role", &body.role)?;
    if body.username.is_empty() || body.username.contains(':') || body.username.len() > 64 {
        return Err(ApiError::field("username", "1 to 64 characters, no colon"));
    }
    let hashed = hash(&body.password)?;
    state
        .store
        .create_user(&body.username, role, &hashed, Utc::now())
        .await?;
    tracing::info!(user = %body.username, role = role.as_str(), by = %principal.name, "user added");
    Ok(StatusCode::CREATED)
}

/// Change a user's role or password.
#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "admin", request_body = UserChange, params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = rampart_api::ErrorBody)))]
pub async fn change_user(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UserChange>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    let role = body
        .role
        .as_deref()
        .map(|r| person_role("role", r))
        .transpose()?;
    let hashed = body.password.as_deref().map(hash).transpose()?;
    if role.is_none() && hashed.is_none() {
        return Err(ApiError::field(
            "role",
            "nothing to change: give role and/or password",
        ));
    }
    if state
        .store
        .update_user(&name, role, hashed.as_deref(), Utc::now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no user {name:?}")))
    }
}

/// Machine tokens (login sessions are not listed).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "admin", responses((status = 200, body = Vec<TokenOut>)))]
pub async fn tokens(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<TokenOut>>, ApiError> {
    principal.require(Role::Admin)?;
    let list = state.store.list_tokens().await?;
    Ok(Json(
        list.into_iter()
            .filter(|t| !t.name.starts_with(SESSION_PREFIX))
            .map(|t| TokenOut {
                name: t.name,
                role: t.role.as_str().to_owned(),
                created_by: t.created_by,
                created_at: t.created_at,
                revoked_at: t.revoked_at,
            })
            .collect(),
    ))
}

/// Make a token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "admin", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 409, body = rampart_api::ErrorBody)))]
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    principal.require(Role::Admin)?;
    let role_name = body.role.as_deref().unwrap_or("agent");
    let role = Role::from_name(role_name).ok_or_else(|| {
        ApiError::field(
            "role",
            format!("{role_name:?} is not agent, viewer, operator or admin"),
        )
    })?;
    if body.name.is_empty() || body.name.starts_with(SESSION_PREFIX) || body.name.len() > 64 {
        return Err(ApiError::field(
            "name",
            "1 to 64 characters, not starting with session:",
        ));
    }
    let (token, hash) = new_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .create_token(&body.name, role, &hash, &principal.name, Utc::now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: body.name,
            role: role.as_str().to_owned(),
            token,
        }),
    ))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "admin", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = rampart_api::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    if state.store.revoke_token(&name, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no token {name:?} in force")))
    }
}
