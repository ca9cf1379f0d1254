//! The error body every failed call answers.

use serde::{Deserialize, Serialize};

/// The error body, as documented in the OpenAPI document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable code: unauthorized, bad_credentials, forbidden, csrf,
    /// not_found, method_not_allowed, bad_request, invalid_records, conflict,
    /// payload_too_large, rate_limited, store_error, internal.
    pub code: String,
    /// For people.
    pub message: String,
    /// The input field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
