//! The OpenAPI document (generated from the handlers' annotations) and a
//! page that browses it.

use axum::Json;
use axum::response::Html;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The API, as OpenAPI 3.1.
#[derive(OpenApi)]
#[openapi(
    info(title = "rampart server API", description = "Decisions, request logs, statistics and fleet sync. Authenticate with `Authorization: Bearer TOKEN` (a machine token, or the token `POST /api/v1/auth/login` returns) or the session cookie (state-changing requests then need `X-CSRF-Token`)."),
    paths(
        crate::health,
        crate::metrics_text,
        crate::access::login, crate::access::logout, crate::access::me,
        crate::ingest::post_logs, crate::ingest::post_events, crate::ingest::heartbeat,
        crate::query::requests, crate::query::blocked, crate::query::stats, crate::query::agents, crate::query::findings, crate::query::actions,
        crate::decisions::list, crate::decisions::ban, crate::decisions::unban_id, crate::decisions::unban_ip,
        crate::decisions::stream, crate::decisions::blocked_ips,
        crate::decisions::whitelist, crate::decisions::whitelist_add, crate::decisions::whitelist_put, crate::decisions::whitelist_delete,
        crate::admin::users, crate::admin::add_user, crate::admin::change_user,
        crate::admin::tokens, crate::admin::create_token, crate::admin::revoke_token,
        crate::live::ws,
    ),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Log in and out"),
        (name = "ingest", description = "What agents and gateways push"),
        (name = "requests", description = "The request log and its statistics"),
        (name = "decisions", description = "Bans, unbans, the decision stream, the whitelist"),
        (name = "fleet", description = "Agents and gateways"),
        (name = "admin", description = "Users and tokens"),
        (name = "live", description = "The live WebSocket stream"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::access::SESSION_COOKIE,
            ))),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /api/v1/docs`: a page listing every operation, its parameters and
/// schemas, with a form to try it (same origin, so the session cookie applies).
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../assets/docs.html"))
}
