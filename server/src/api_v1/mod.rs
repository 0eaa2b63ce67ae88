//! The management API under `/api/v1`: the portal's operations as JSON, for automation
//! and the security team's tools. Handlers are thin: authenticate, call the domain,
//! answer. Authorization is the domain's (`Actor`), exactly as for the portal.

mod audit;
mod auth;
mod handlers;
mod issuers;
mod problem;
mod security;

use axum::extract::FromRef;
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use portcullis_app::ssr::PortalState;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use problem::{ApiError, Problem};

#[derive(Clone)]
pub struct ApiState {
    /// What the portal's server functions use: the store, the upstream TLS profiles,
    /// and how "Test access" reaches the gateway.
    pub portal: PortalState,
    /// Addresses whose refused tokens were recorded this minute.
    pub refused_tokens: std::sync::Arc<portcullis_domain::keyed::OncePer>,
}

impl FromRef<ApiState> for PortalState {
    fn from_ref(s: &ApiState) -> Self {
        s.portal.clone()
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(portal: PortalState) -> Router<S> {
    use handlers::*;
    Router::new()
        .route("/me", get(me))
        .route("/clients", get(list_clients).post(register_client))
        .route("/clients/{client_id}", get(get_client))
        .route("/clients/{client_id}/suspended", put(set_client_suspended))
        .route("/users", get(list_users))
        .route("/users/{user_id}/disabled", put(set_user_disabled))
        .route("/users/{user_id}/role", put(set_user_role))
        .route("/clients/{client_id}/profiles", post(add_profile))
        .route("/profiles/{profile_id}/rotate", post(rotate_secret))
        .route("/profiles/{profile_id}/api-keys", post(issue_api_key))
        .route("/profiles/{profile_id}/public-keys", post(register_public_key))
        .route("/profiles/{profile_id}/certificate-subjects", post(register_certificate_subject))
        .route("/profiles/{profile_id}/federated-identities", post(issuers::link_identity))
        .route("/issuers", get(issuers::list_issuers).post(issuers::register_issuer))
        .route("/issuers/{issuer_id}/disable", post(issuers::disable_issuer))
        .route("/profiles/{profile_id}/rate-limit", put(set_rate_limit))
        .route("/profiles/{profile_id}/token-lifetime", put(set_token_lifetime))
        .route("/profiles/{profile_id}/sender-constraint", put(set_sender_constraint))
        .route("/profiles/{profile_id}/may-act", put(set_may_act))
        .route("/profiles/{profile_id}/test-access", post(test_access))
        .route("/clients/{client_id}/requests", get(recent_requests))
        .route("/upstream-tls", get(upstream_tls_profiles))
        .route("/profiles/{profile_id}/grants", post(request_grant))
        .route("/credentials/{credential_id}/revoke", post(revoke_credential))
        .route("/products", get(list_products).post(create_product))
        .route("/products/{product_id}", put(update_product))
        .route("/products/{product_id}/policy", put(set_product_policy))
        .route("/products/{product_id}/openapi", post(import_openapi))
        .route("/grants/pending", get(pending_grants))
        .route("/grants/{grant_id}/decision", post(decide_grant))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{token_id}/revoke", post(revoke_token))
        .route("/audit", get(audit::search))
        .route("/audit/events/{id}", get(audit::event))
        .route("/audit/export", get(audit::export))
        .route("/clients/{client_id}/activity", get(security::activity))
        .route("/security/dashboard", get(security::dashboard))
        .route("/reviews", get(security::review))
        .route("/reviews/credentials/{credential_id}/revoke", post(security::revoke_credential))
        .route("/reviews/grants/{grant_id}/end", post(security::end_grant))
        .route("/reviews/grants/{grant_id}/extend", post(security::extend_grant))
        .route("/reviews/clients/{client_id}/reviewed", post(security::mark_reviewed))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        // An explicit catch-all, not a fallback: otherwise `/api/{*fn_name}` (the portal's
        // server functions) would answer unknown `/api/v1/…` paths with a 405.
        .route("/{*rest}", any(|| async { ApiError::Domain(portcullis_domain::DomainError::NotFound) }))
        .with_state(ApiState {
            portal,
            refused_tokens: std::sync::Arc::new(portcullis_domain::keyed::OncePer::new(
                std::time::Duration::from_secs(60),
                100_000,
            )),
        })
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Portcullis management API", version = "1", description = "The developer portal's operations as JSON. Authenticate with a personal access token (`Authorization: Bearer pcp_…`). Errors are RFC 9457 problem details."),
    servers((url = "/api/v1")),
    paths(
        handlers::me,
        handlers::list_clients,
        handlers::register_client,
        handlers::get_client,
        handlers::set_client_suspended,
        handlers::list_users,
        handlers::set_user_disabled,
        handlers::set_user_role,
        handlers::add_profile,
        handlers::rotate_secret,
        handlers::issue_api_key,
        handlers::register_public_key,
        handlers::register_certificate_subject,
        issuers::link_identity,
        issuers::list_issuers,
        issuers::register_issuer,
        issuers::disable_issuer,
        handlers::set_rate_limit,
        handlers::set_token_lifetime,
        handlers::set_sender_constraint,
        handlers::set_may_act,
        handlers::test_access,
        handlers::recent_requests,
        handlers::upstream_tls_profiles,
        handlers::request_grant,
        handlers::revoke_credential,
        handlers::list_products,
        handlers::create_product,
        handlers::update_product,
        handlers::set_product_policy,
        handlers::import_openapi,
        handlers::pending_grants,
        handlers::decide_grant,
        handlers::list_tokens,
        handlers::create_token,
        handlers::revoke_token,
        audit::search,
        audit::event,
        audit::export,
        security::activity,
        security::dashboard,
        security::review,
        security::revoke_credential,
        security::end_grant,
        security::extend_grant,
        security::mark_reviewed,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("pcp_ personal access token").build(),
            ),
        );
    }
}
