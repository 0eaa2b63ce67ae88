//! Who is calling the management API: a personal access token (`Authorization: Bearer
//! pcp_…`) or, for the portal's own pages and a signed-in browser, the session cookie.
//! Either way the result is the same `Actor` the portal uses, so the same rules apply.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use portcullis_app::ssr::ClientIp;
use portcullis_domain::access::{Actor, Channel};
use portcullis_domain::audit::DoorEvent;
use tower_sessions::Session;

use super::problem::ApiError;
use super::ApiState;

pub struct ApiActor(pub Actor);

impl FromRequestParts<ApiState> for ApiActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let token =
                crate::headers::bearer(&parts.headers).ok_or(ApiError::Unauthenticated { invalid_token: true })?;
            let user = state.portal.store.authenticate_access_token(token, Channel::Api).await?;
            if user.is_none() {
                let ip = parts.extensions.get::<ClientIp>().map(|c| c.0);
                let source = ip.map(|i| i.to_string()).unwrap_or_default();
                if state.refused_tokens.first(&source) {
                    let event = DoorEvent::TokenRefused { presented: token };
                    if let Err(e) = state.portal.store.record_door(event, Channel::Api.as_str(), ip).await {
                        tracing::error!(error = %e, "refused token not recorded");
                    }
                }
            }
            return user.map(ApiActor).ok_or(ApiError::Unauthenticated { invalid_token: true });
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Unauthenticated { invalid_token: false })?;
        let uid: Option<String> = session
            .get(portcullis_app::ssr::SESSION_USER_KEY)
            .await
            .map_err(|e| ApiError::Domain(portcullis_domain::DomainError::Internal(format!("session: {e}"))))?;
        let Some(uid) = uid else {
            return Err(ApiError::Unauthenticated { invalid_token: false });
        };
        let user = state.portal.store.active_user(&uid).await?;
        user.map(|u| ApiActor(Actor::new(u, Channel::Api))).ok_or(ApiError::Unauthenticated { invalid_token: false })
    }
}
