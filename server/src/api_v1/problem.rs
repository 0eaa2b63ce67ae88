//! Errors of the management API, answered as RFC 9457 problem details.
//!
//! Policy: the status and the `code` member come from an exhaustive match, so a new
//! error variant forces a decision here. Storage and internal causes are logged once,
//! here, and answered with a generic 500 that reveals nothing.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_domain::DomainError;
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    /// No credentials, or credentials that are not (or no longer) valid.
    Unauthenticated {
        invalid_token: bool,
    },
    /// The request body could not be read as the operation's JSON.
    BadBody(String),
    Domain(DomainError),
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Domain(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::BadBody(e.body_text())
    }
}

/// The problem document (RFC 9457 §3) with a machine-readable `code` extension.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        match self {
            ApiError::Unauthenticated { invalid_token: true } => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Unauthenticated",
                "The access token is unknown, expired or revoked.".into(),
            ),
            ApiError::Unauthenticated { invalid_token: false } => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                "Send a personal access token as `Authorization: Bearer pcp_…`, or sign in to the portal.".into(),
            ),
            ApiError::BadBody(why) => (StatusCode::BAD_REQUEST, "invalid_body", "Invalid request body", why.clone()),
            ApiError::Domain(DomainError::NotFound) => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "There is no such resource, or it is not yours.".into(),
            ),
            ApiError::Domain(DomainError::Forbidden(why)) => {
                (StatusCode::FORBIDDEN, "forbidden", "Forbidden", format!("Not allowed: {why}."))
            }
            ApiError::Domain(DomainError::InsufficientScope(scope)) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "Insufficient scope",
                format!("This token's scopes do not include {scope}; create a token with it to do this."),
            ),
            ApiError::Domain(DomainError::Conflict(msg)) => (StatusCode::CONFLICT, "conflict", "Conflict", msg.clone()),
            ApiError::Domain(DomainError::Invalid(msg)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "Invalid request", msg.clone())
            }
            ApiError::Domain(e @ (DomainError::Storage(_) | DomainError::Migration(_) | DomainError::Internal(_))) => {
                tracing::error!(error = ?e, "management API internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "Something went wrong on our side; it has been logged.".into(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title, detail) = self.parts();
        let body = Problem { kind: "about:blank", title, status: status.as_u16(), detail, code };
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let ApiError::Unauthenticated { invalid_token } = self {
            let challenge = if invalid_token {
                r#"Bearer realm="portcullis", error="invalid_token""#
            } else {
                r#"Bearer realm="portcullis""#
            };
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        // RFC 6750 §3.1: say which scope would have done.
        if let ApiError::Domain(DomainError::InsufficientScope(scope)) = self {
            let challenge = format!(r#"Bearer realm="portcullis", error="insufficient_scope", scope="{scope}""#);
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        res
    }
}
