//! Every error the API answers, and the one place that maps them to
//! statuses and stable codes.
//!
//! The body is always `{"error": {"code": "...", "message": "...", "field": "..."}}`
//! (`field` only when one input field is at fault).

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rampart_api::{ErrorBody, ErrorDetail};
use serde::de::DeserializeOwned;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials, or unknown, revoked or expired ones.
    #[error("{0}")]
    Unauthorized(String),
    /// Wrong username or password.
    #[error("wrong username or password")]
    BadCredentials,
    /// Authenticated, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing request authenticated by cookie without the CSRF header.
    #[error("missing or wrong X-CSRF-Token header (required with a session cookie)")]
    Csrf,
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// Input that cannot be used; `field` names the part at fault.
    #[error("{message}")]
    BadRequest {
        /// The field (JSON path or query parameter), when known.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Every record of a batch was invalid (the batch's report).
    #[error("no record of the batch is valid")]
    NothingValid(Box<rampart_api::BatchResult>),
    /// The request conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The body is over the configured limit.
    #[error("request body over the limit of {0} bytes")]
    TooLarge(usize),
    /// Too many attempts; retry after this many seconds.
    #[error("too many attempts; retry in {0} s")]
    RateLimited(u64),
    /// The store failed.
    #[error("store: {0}")]
    Store(rampart_store::StoreError),
    /// Something else failed on our side.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A bad value in `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The stable code and HTTP status.
    pub fn code(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::Unauthorized(_) => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::BadCredentials => ("bad_credentials", StatusCode::UNAUTHORIZED),
            ApiError::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN),
            ApiError::Csrf => ("csrf", StatusCode::FORBIDDEN),
            ApiError::NotFound(_) => ("not_found", StatusCode::NOT_FOUND),
            ApiError::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            ApiError::BadRequest { .. } => ("bad_request", StatusCode::BAD_REQUEST),
            ApiError::NothingValid(_) => ("invalid_records", StatusCode::UNPROCESSABLE_ENTITY),
            ApiError::Conflict(_) | ApiError::Store(rampart_store::StoreError::Conflict(_)) => {
                ("conflict", StatusCode::CONFLICT)
            }
            ApiError::TooLarge(_) => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            ApiError::RateLimited(_) => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            ApiError::Store(_) => ("store_error", StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl From<rampart_store::StoreError> for ApiError {
    fn from(e: rampart_store::StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
                field,
            },
        };
        let mut response = match &self {
            ApiError::NothingValid(report) => {
                // The batch's report, with the error beside it.
                let mut value = serde_json::to_value(report).unwrap_or_default();
                value["error"] = serde_json::to_value(&body.error).unwrap_or_default();
                (status, Json(value)).into_response()
            }
            _ => (status, Json(body)).into_response(),
        };
        match self {
            ApiError::RateLimited(secs) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"rampart\""),
                );
            }
            _ => {}
        }
        response
    }
}

/// A JSON body whose errors name the field at fault (`[3].source_ip`),
/// and whose size over the limit answers 413.
pub struct ApiJson<T>(pub T);

/// A raw body whose size over the limit answers 413.
pub struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        Bytes::from_request(req, state)
            .await
            .map(ApiBody)
            .map_err(|e| body_error(&e, limit))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The configured body limit, put in request extensions for error messages.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn body_error(e: &BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(limit)
    } else {
        ApiError::BadRequest {
            field: None,
            message: format!("cannot read the body: {e}"),
        }
    }
}

/// Parses JSON, naming the path of the first value at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        ApiError::BadRequest {
            field: field_of(&path, &inner),
            message: format!("malformed JSON: {inner}"),
        }
    })
}

/// The field at fault: the path, or for a missing field the path to it.
fn field_of(path: &str, message: &str) -> Option<String> {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match (path, missing) {
        (".", Some(name)) => Some(name.to_owned()),
        (".", None) => None,
        (path, Some(name)) => Some(format!("{path}.{name}")),
        (path, None) => Some(path.to_owned()),
    }
}

/// Parses one JSON value (owned or borrowed) into `T`, naming the field at fault.
pub fn from_value<'de, T: serde::Deserialize<'de>>(
    value: impl serde::Deserializer<'de, Error = serde_json::Error>,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        (field_of(&path, &message).unwrap_or(path), message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_wrong_fields_are_named() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Login {
            username: String,
            password: String,
        }
        let field = |body: &str| match parse_json::<Vec<Login>>(body.as_bytes()) {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(r#"[{"username": "a"}]"#).as_deref(),
            Some("[0].password")
        );
        assert_eq!(
            field(r#"[{"username": 1, "password": "x"}]"#).as_deref(),
            Some("[0].username")
        );
        assert_eq!(field("not json"), None);
    }
}
