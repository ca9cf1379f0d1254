//! Who is asking, and what they may do.
//!
//! - **Bearer tokens** (`Authorization: Bearer rpt_…`): machine tokens made
//!   with `rampart token create`, and the token a login returns.
//! - **Session cookie** (`rampart_session`, HttpOnly, SameSite=Strict,
//!   Secure under TLS), set by `POST /api/v1/auth/login`. A state-changing
//!   request authenticated by the cookie must also carry `X-CSRF-Token`
//!   with the value the login returned (also in the readable
//!   `rampart_csrf` cookie): another site can make the browser send the
//!   cookie, but cannot read the CSRF value.
//!
//! A login session is a token named `session:USER:…` in the tokens table,
//! so every server sharing a database accepts it, a logout revokes it, and
//! its role follows the user's current role. It ends `server.session_ttl`
//! after the login.
//!
//! Roles: `agent` pushes events and request logs and reads decisions;
//! `viewer` reads everything; `operator` also bans, unbans and edits the
//! whitelist; `admin` also manages users and tokens.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use rampart_core::{Event, EventKind};
use rampart_detect::Outcome;
use rampart_store::{EventRecord, Role, Token};
use sha2::{Digest, Sha256};

use crate::auth::{new_token, token_hash, verify_password};
use crate::error::{ApiError, ApiJson};
pub use crate::limiter::LoginLimiter;
use crate::state::AppState;
use rampart_api::{LoginRequest, LoginResponse, Me};

/// The session cookie.
pub const SESSION_COOKIE: &str = "rampart_session";
/// The readable cookie holding the CSRF value.
pub const CSRF_COOKIE: &str = "rampart_csrf";
/// The header state-changing cookie requests must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Prefix of the token names of login sessions.
pub const SESSION_PREFIX: &str = "session:";

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`.
    Bearer,
    /// The session cookie.
    Cookie,
    /// A path configured public: nobody in particular.
    Public,
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (for sessions) or token name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// How they proved it.
    pub via: Via,
}

impl Principal {
    /// Refuses unless the role is at least `min` (agents are below viewers
    /// and may only do what [`Principal::require_machine`] allows).
    pub fn require(&self, min: Role) -> Result<(), ApiError> {
        if self.role != Role::Agent && self.role >= min {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} {:?} may not do this (needs {})",
                self.role.as_str(),
                self.name,
                min.as_str()
            )))
        }
    }

    /// Allows agents and roles from `min` up (what machines and people share:
    /// pushing records, reading decisions).
    pub fn require_machine(&self, min: Role) -> Result<(), ApiError> {
        if self.role == Role::Agent {
            Ok(())
        } else {
            self.require(min)
        }
    }
}

/// The CSRF value of a session token (derivable only from the secret).
pub fn csrf_of(session_token: &str) -> String {
    let digest = Sha256::digest(format!("rampart-csrf:{session_token}").as_bytes());
    crate::auth::hex(&digest[..16])
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `path` answers without credentials.
fn is_public(state: &AppState, path: &str) -> bool {
    path == "/health"
        || path == "/api/v1/health"
        || path == "/api/v1/auth/login"
        || state.config.public.iter().any(|p| p == path)
}

/// Middleware: finds the principal of every request (or refuses it) and
/// puts it in the request's extensions.
pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if is_public(&state, &path) {
        req.extensions_mut().insert(Principal {
            name: "anonymous".to_owned(),
            role: Role::Viewer,
            via: Via::Public,
        });
        return next.run(req).await;
    }
    match identify(&state, req.headers(), req.method()).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Principal, ApiError> {
    let (secret, via) = if let Some(token) = bearer(headers) {
        (token, Via::Bearer)
    } else if let Some(token) = cookie(headers, SESSION_COOKIE) {
        (token, Via::Cookie)
    } else {
        return Err(ApiError::Unauthorized(
            "authentication required: Authorization: Bearer TOKEN, or log in".to_owned(),
        ));
    };
    let token = state
        .store
        .token_by_hash(&token_hash(secret))
        .await?
        .filter(|t| t.revoked_at.is_none())
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".to_owned()))?;
    let role = if let Some(user) = session_user(&token) {
        if token.created_at + state.config.session_ttl.to_chrono() <= Utc::now() {
            return Err(ApiError::Unauthorized(
                "session expired: log in again".to_owned(),
            ));
        }
        // The user's role now, not at login.
        let user = state.store.get_user(user).await?.ok_or_else(|| {
            ApiError::Unauthorized("the session's user no longer exists".to_owned())
        })?;
        user.role
    } else {
        token.role
    };
    if via == Via::Cookie && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if sent != Some(csrf_of(secret).as_str()) {
            return Err(ApiError::Csrf);
        }
    }
    let name = session_user(&token).map_or_else(|| token.name.clone(), str::to_owned);
    Ok(Principal { name, role, via })
}

fn session_user(token: &Token) -> Option<&str> {
    token
        .name
        .strip_prefix(SESSION_PREFIX)
        .and_then(|rest| rest.rsplit_once(':'))
        .map(|(user, _)| user)
}

/// Log in with a user name and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = rampart_api::ErrorBody),
              (status = 429, body = rampart_api::ErrorBody)))]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let addr = peer.ip();
    let limit = &state.config.login;
    if let Some(secs) = state
        .login
        .lock()
        .map_err(|_| ApiError::Internal("login limiter poisoned".into()))?
        .blocked_for(addr, limit.attempts, limit.per.0, Instant::now())
    {
        state.metrics.login_rate_limited.inc();
        return Err(ApiError::RateLimited(secs));
    }
    let user = state.store.get_user(&body.username).await?;
    // Verify against a fixed hash when there is no such user, so the answer
    // takes as long either way and does not tell which names exist.
    let hash = user
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let password = body.password.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(user) = user.filter(|_| ok) else {
        if let Ok(mut limiter) = state.login.lock() {
            limiter.fail(addr, Instant::now());
        }
        state.metrics.login_failures.inc();
        login_failed(&state, addr, &body.username).await;
        return Err(ApiError::BadCredentials);
    };
    if let Ok(mut limiter) = state.login.lock() {
        limiter.forget(addr);
    }
    let (token, hash) = new_token().map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = Utc::now();
    let suffix = &hash[..12];
    state
        .store
        .create_token(
            &format!("{SESSION_PREFIX}{}:{suffix}", user.name),
            user.role,
            &hash,
            &user.name,
            now,
        )
        .await?;
    let csrf = csrf_of(&token);
    let ttl = state.config.session_ttl.0.as_secs();
    let secure = if state.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let session_cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{secure}"
    );
    let csrf_cookie =
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={ttl}{secure}");
    tracing::info!(user = %user.name, %addr, "login");
    let mut response = Json(LoginResponse {
        token,
        csrf_token: csrf,
        username: user.name.clone(),
        role: user.role.as_str().to_owned(),
        expires_at: now + state.config.session_ttl.to_chrono(),
    })
    .into_response();
    for c in [session_cookie, csrf_cookie] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// A valid argon2 hash of a random password, for timing-safe misses.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    crate::auth::hash_password("no such user, no such password").unwrap_or_default()
});

/// Log out: revokes the session (cookie or bearer) and clears the cookies.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = rampart_api::ErrorBody)))]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let secret = bearer(&headers).or_else(|| cookie(&headers, SESSION_COOKIE));
    if let Some(secret) = secret
        && let Some(token) = state.store.token_by_hash(&token_hash(secret)).await?
        && token.name.starts_with(SESSION_PREFIX)
    {
        state.store.revoke_token(&token.name, Utc::now()).await?;
    }
    let mut response = axum::http::StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) =
            HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0; SameSite=Strict"))
        {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Me)))]
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Me> {
    Json(Me {
        name: principal.name,
        role: principal.role.as_str().to_owned(),
        via: match principal.via {
            Via::Bearer => "bearer",
            Via::Cookie => "cookie",
            Via::Public => "public",
        }
        .to_owned(),
    })
}

/// A failed login becomes an event (stored, and fed to rampart's scenarios,
/// which may ban the address like any other brute force).
pub async fn login_failed(state: &AppState, addr: IpAddr, user: &str) {
    let now = Utc::now();
    let mut event = Event::new(
        now,
        Arc::from("rampart-server"),
        EventKind::HttpAuthFailure,
        Some(addr),
    );
    event.fields.set("user", user.to_owned());
    event.fields.set("path", "/api/v1/auth/login".to_owned());
    let record = EventRecord {
        time: now,
        node: state.node.clone(),
        kind: "login_failure".to_owned(),
        source_ip: Some(addr),
        label: Some("http_auth_failure".to_owned()),
        payload: serde_json::json!({"user": user, "path": "/api/v1/auth/login"}),
    };
    if let Err(e) = state
        .store
        .insert_events(std::slice::from_ref(&record))
        .await
    {
        state.metrics.store_errors.inc();
        tracing::error!(error = %e, "cannot store login failure");
    }
    let Some(detector) = &state.detector else {
        return;
    };
    let mut outcomes = Vec::new();
    detector
        .lock()
        .await
        .handle(&event, Some(now), &mut outcomes);
    for outcome in outcomes {
        let stored = match outcome {
            Outcome::Decided(decision) => {
                tracing::warn!(ip = %addr, reason = %decision.reason, "banning a login brute force");
                state.store.insert_decision(&decision).await.map(|_| ())
            }
            Outcome::Skipped { finding, note } => state
                .store
                .insert_finding(&finding, &note)
                .await
                .map(|_| ()),
        };
        if let Err(e) = stored {
            state.metrics.store_errors.inc();
            tracing::error!(error = %e, "cannot store the login brute force's outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_are_found() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; rampart_session=rpt_x; b=2"),
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer rpt_y"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("rpt_x"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(bearer(&h), Some("rpt_y"));
        assert_ne!(csrf_of("rpt_x"), csrf_of("rpt_y"));
        assert_eq!(csrf_of("rpt_x").len(), 32);
    }
}
