//! Every way the gateway can refuse a request, with its status, its audit reason and
//! the problem document the caller gets. Both mappings are exhaustive matches.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_domain::enforcement::{ExternalError, ProofError, TokenError};
use portcullis_domain::model::{Reason, SenderConstraint};
use serde_json::json;

use super::ratelimit::Scope;

/// Expired, revoked, malformed and unknown tokens are told apart (RFC 6750 §3.1 leaves
/// the description to us); none of them says more than that.
fn token_description(e: TokenError) -> &'static str {
    match e {
        TokenError::Malformed => "malformed access token",
        TokenError::UnknownKey | TokenError::BadSignature | TokenError::WrongIssuerOrAudience => "unknown access token",
        TokenError::Expired => "expired access token",
        TokenError::NotYetValid => "access token not yet valid",
        TokenError::Revoked => "revoked access token",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credential was presented.
    MissingCredential,
    /// A credential was put in the query string, where it would be logged.
    CredentialInQuery,
    /// A credential was presented that is not one we know.
    UnknownCredential,
    /// A credential we know, but past its expiry (or its rotation grace period).
    ExpiredCredential,
    /// An access token that does not verify, told apart for the caller.
    InvalidToken(TokenError),
    /// A token from a trusted issuer (federation) that does not verify, told apart.
    ExternalToken(ExternalError),
    /// A good token from a trusted issuer, naming an identity linked to no profile.
    IdentityNotLinked,
    /// A DPoP-bound token whose request does not prove possession of its key.
    InvalidProof(ProofError),
    /// A DPoP-bound token presented as a bearer token.
    BoundTokenAsBearer,
    /// A token bound to a TLS client certificate, from a request without it.
    CertificateRequired,
    /// A token bound to a TLS client certificate, from a request with another one.
    CertificateMismatch,
    /// A token not bound as the profile requires (DPoP or certificate), or an API key,
    /// for a profile that accepts only bound tokens.
    ProfileRequiresBinding(SenderConstraint),
    /// `X-Client-ID` / `X-Profile-ID` name someone other than the credential's owner.
    IdentityMismatch,
    ClientSuspended,
    /// The client's owner is disabled.
    OwnerDisabled,
    UnknownProduct,
    UnknownEndpoint,
    /// The product is not granted to the profile, or the grant expired.
    NotGranted,
    /// A delegated token (RFC 8693) whose subject or an earlier actor is not granted the
    /// product with the endpoint's scope.
    PartyNotGranted,
    /// A per-task token calling an endpoint outside its task.
    EndpointNotInTask,
    /// A per-task token whose calls are all spent.
    TaskUsesExhausted,
    /// Granted, but without the scope the endpoint requires.
    InsufficientScope {
        required: String,
    },
    RateLimited {
        /// The profile's own limit, the product's across all callers, or the gateway's.
        scope: super::ratelimit::Scope,
        retry_after_secs: u64,
        limit: u64,
        reset_secs: u64,
    },
    /// The caller's address was refused too often lately: turned away before anything else.
    TooManyRefusals {
        retry_after_secs: u64,
    },
    /// The request body is larger than the gateway accepts.
    PayloadTooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
    /// The upstream's TLS handshake failed: its certificate is not trusted or not for
    /// its name, or it wanted a client certificate we do not have.
    UpstreamTls {
        reason: String,
    },
    /// The product names an upstream TLS profile this server was not started with (it
    /// was set up through a replica configured differently).
    UpstreamTlsProfileMissing {
        profile: String,
    },
    /// The audit queue is full and the gateway is set to fail closed.
    AuditUnavailable,
    /// The gateway itself failed (a bug); the request's row says so.
    Internal,
}

impl Refusal {
    /// The refusal for a client that may not act now.
    pub fn stopped(why: portcullis_domain::enforcement::Stopped) -> Self {
        match why {
            portcullis_domain::enforcement::Stopped::Suspended => Refusal::ClientSuspended,
            portcullis_domain::enforcement::Stopped::OwnerDisabled => Refusal::OwnerDisabled,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::MissingCredential
            | Refusal::CredentialInQuery
            | Refusal::UnknownCredential
            | Refusal::ExpiredCredential
            | Refusal::InvalidToken(_)
            | Refusal::ExternalToken(_)
            | Refusal::IdentityNotLinked
            | Refusal::InvalidProof(_)
            | Refusal::BoundTokenAsBearer
            | Refusal::CertificateRequired
            | Refusal::CertificateMismatch
            | Refusal::ProfileRequiresBinding(_)
            | Refusal::TaskUsesExhausted
            | Refusal::IdentityMismatch => StatusCode::UNAUTHORIZED,
            Refusal::ClientSuspended
            | Refusal::OwnerDisabled
            | Refusal::NotGranted
            | Refusal::PartyNotGranted
            | Refusal::EndpointNotInTask
            | Refusal::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Refusal::UnknownProduct | Refusal::UnknownEndpoint => StatusCode::NOT_FOUND,
            Refusal::RateLimited { .. } | Refusal::TooManyRefusals { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Refusal::UpstreamUnavailable | Refusal::UpstreamTls { .. } | Refusal::UpstreamTlsProfileMissing { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Refusal::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The reason recorded in the audit row and returned as the problem's `code`.
    pub fn reason(&self) -> Reason {
        match self {
            Refusal::MissingCredential => Reason::MissingCredential,
            Refusal::CredentialInQuery => Reason::CredentialInQuery,
            Refusal::UnknownCredential
            | Refusal::ExpiredCredential
            | Refusal::InvalidToken(_)
            | Refusal::ExternalToken(_) => Reason::InvalidToken,
            Refusal::IdentityNotLinked => Reason::IdentityNotLinked,
            Refusal::InvalidProof(e) => e.reason(),
            Refusal::BoundTokenAsBearer | Refusal::ProfileRequiresBinding(_) => Reason::SenderConstraintRequired,
            Refusal::CertificateRequired | Refusal::CertificateMismatch => Reason::CertificateMismatch,
            Refusal::IdentityMismatch => Reason::IdentityMismatch,
            Refusal::ClientSuspended => Reason::ClientSuspended,
            Refusal::OwnerDisabled => Reason::OwnerDisabled,
            Refusal::UnknownProduct => Reason::UnknownProduct,
            Refusal::UnknownEndpoint => Reason::UnknownEndpoint,
            Refusal::NotGranted | Refusal::PartyNotGranted => Reason::NotGranted,
            Refusal::InsufficientScope { .. } => Reason::InsufficientScope,
            Refusal::EndpointNotInTask => Reason::EndpointNotInTask,
            Refusal::TaskUsesExhausted => Reason::TaskUsesExhausted,
            Refusal::RateLimited { scope: Scope::Profile, .. } => Reason::RateLimited,
            Refusal::RateLimited { scope: Scope::Product, .. } => Reason::ProductRateLimited,
            Refusal::RateLimited { scope: Scope::Global, .. } => Reason::GlobalRateLimited,
            Refusal::TooManyRefusals { .. } => Reason::TooManyRefusals,
            Refusal::PayloadTooLarge => Reason::PayloadTooLarge,
            Refusal::UpstreamTimeout => Reason::UpstreamTimeout,
            Refusal::UpstreamUnavailable => Reason::UpstreamUnavailable,
            Refusal::UpstreamTls { .. } => Reason::UpstreamTlsFailed,
            Refusal::UpstreamTlsProfileMissing { .. } => Reason::UpstreamTlsProfileMissing,
            Refusal::AuditUnavailable => Reason::AuditUnavailable,
            Refusal::Internal => Reason::InternalError,
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Refusal::MissingCredential => {
                "Send an access token (Authorization: Bearer) or an API key (X-API-Key).".into()
            }
            Refusal::CredentialInQuery => {
                "Credentials are accepted only in headers (Authorization or X-API-Key), never in the URL.".into()
            }
            Refusal::UnknownCredential => "The credential is unknown or revoked.".into(),
            Refusal::ExpiredCredential => "The credential has expired.".into(),
            Refusal::InvalidToken(e) => format!("The access token is not accepted: {}.", token_description(*e)),
            Refusal::ExternalToken(e) => format!("The access token is not accepted: {}.", e.description()),
            Refusal::IdentityNotLinked => {
                "The access token is from a trusted issuer, but the identity it names is linked to no client: an admin must link it to a client's profile.".into()
            }
            Refusal::InvalidProof(e) => format!("The DPoP proof is not accepted: {}.", e.description()),
            Refusal::BoundTokenAsBearer => {
                "The access token is bound to a key (DPoP): send it as Authorization: DPoP with a DPoP proof of that key.".into()
            }
            Refusal::ProfileRequiresBinding(SenderConstraint::Mtls) => {
                "This profile accepts only certificate-bound access tokens: request a token over TLS with your client certificate, and call with the same certificate (RFC 8705).".into()
            }
            Refusal::ProfileRequiresBinding(_) => {
                "This profile accepts only DPoP-bound access tokens: request a token with a DPoP proof and send it as Authorization: DPoP with a proof for each request.".into()
            }
            Refusal::CertificateRequired => {
                "The access token is bound to a TLS client certificate: call over TLS with that certificate.".into()
            }
            Refusal::CertificateMismatch => {
                "The access token is bound to another TLS client certificate than the one this request came with.".into()
            }
            Refusal::IdentityMismatch => "X-Client-ID or X-Profile-ID does not match the credential.".into(),
            Refusal::ClientSuspended => "This client is suspended.".into(),
            Refusal::OwnerDisabled => "This client's owner is disabled.".into(),
            Refusal::UnknownProduct => "There is no such product.".into(),
            Refusal::UnknownEndpoint => "The product has no endpoint for this method and path.".into(),
            Refusal::NotGranted => "This profile has no current grant for the product.".into(),
            Refusal::InsufficientScope { required } => format!("The endpoint needs the `{required}` scope."),
            Refusal::PartyNotGranted => {
                "This token acts on behalf of a client (or through one) that has no current grant of this product with the endpoint's scope.".into()
            }
            Refusal::EndpointNotInTask => {
                "This token serves a task that does not include this endpoint: request a token naming it.".into()
            }
            Refusal::TaskUsesExhausted => {
                "This task token's calls are all used (max_uses): request a new token for more.".into()
            }
            Refusal::RateLimited { scope, retry_after_secs, .. } => {
                let whose = match scope {
                    Scope::Profile => "The profile's rate limit",
                    Scope::Product => "The product's rate limit (all callers together)",
                    Scope::Global => "The gateway's overall rate limit",
                };
                format!("{whose} is reached; retry in {retry_after_secs} s.")
            }
            Refusal::TooManyRefusals { retry_after_secs } => {
                format!("Too many requests from this address were refused lately; retry in {retry_after_secs} s.")
            }
            Refusal::PayloadTooLarge => "The request body is larger than the gateway accepts.".into(),
            Refusal::UpstreamTimeout => "The upstream did not answer in time.".into(),
            Refusal::UpstreamUnavailable => "The upstream could not be reached.".into(),
            // Said to the caller, who cannot fix it: what failed, and who can.
            Refusal::UpstreamTls { reason } => format!(
                "The gateway could not set up a secure connection to the upstream ({reason}); an operator must fix the upstream's certificate or the gateway's TLS settings."
            ),
            Refusal::UpstreamTlsProfileMissing { profile } => format!(
                "The product's upstream TLS profile `{profile}` is not configured on this gateway; an operator must add it (under --upstream-tls-dir) or change the product's gateway policy."
            ),
            Refusal::AuditUnavailable => "The audit trail cannot take the request now; retry shortly.".into(),
            Refusal::Internal => "The gateway failed to answer this request.".into(),
        }
    }

    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3, RFC 9449 §7.1).
    fn challenge(&self) -> Option<String> {
        let description = match self {
            Refusal::InvalidProof(e) => return Some(crate::dpop::challenge(e.error_code(), e.description())),
            Refusal::BoundTokenAsBearer => {
                return Some(crate::dpop::challenge("invalid_token", "the access token is DPoP-bound"))
            }
            Refusal::ProfileRequiresBinding(SenderConstraint::Mtls) => "this profile accepts only certificate-bound tokens",
            Refusal::ProfileRequiresBinding(_) => {
                return Some(crate::dpop::challenge("invalid_token", "this profile accepts only DPoP-bound tokens"))
            }
            Refusal::CertificateRequired => "the access token is bound to a client certificate",
            Refusal::CertificateMismatch => "the access token is bound to another client certificate",
            Refusal::MissingCredential => return Some(r#"Bearer realm="portcullis""#.into()),
            Refusal::CredentialInQuery => {
                return Some(
                    r#"Bearer realm="portcullis", error="invalid_request", error_description="credentials in the query string are refused""#
                        .into(),
                )
            }
            Refusal::UnknownCredential => "unknown or revoked credential",
            Refusal::ExpiredCredential => "expired credential",
            Refusal::InvalidToken(e) => token_description(*e),
            Refusal::ExternalToken(e) => e.description(),
            Refusal::IdentityNotLinked => "the identity is linked to no client",
            Refusal::IdentityMismatch => "client or profile header does not match the credential",
            Refusal::TaskUsesExhausted => "the task token's calls are used up",
            Refusal::ClientSuspended
            | Refusal::OwnerDisabled
            | Refusal::UnknownProduct
            | Refusal::UnknownEndpoint
            | Refusal::NotGranted
            | Refusal::PartyNotGranted
            | Refusal::EndpointNotInTask
            | Refusal::InsufficientScope { .. }
            | Refusal::RateLimited { .. }
            | Refusal::TooManyRefusals { .. }
            | Refusal::PayloadTooLarge
            | Refusal::UpstreamTimeout
            | Refusal::UpstreamUnavailable
            | Refusal::UpstreamTls { .. }
            | Refusal::UpstreamTlsProfileMissing { .. }
            | Refusal::AuditUnavailable
            | Refusal::Internal => return None,
        };
        Some(format!(r#"Bearer realm="portcullis", error="invalid_token", error_description="{description}""#))
    }

    pub fn into_response(self, request_id: &str) -> Response {
        self.into_response_for(request_id, None)
    }

    /// The refusal, with the challenge of a 401 naming the protected resource metadata
    /// (RFC 9728 §5.1) when the route has one, as `/mcp` does.
    pub fn into_response_for(self, request_id: &str, resource_metadata: Option<&str>) -> Response {
        let mut res = (self.status(), axum::Json(self.problem(request_id))).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(HeaderName::from_static("x-request-id"), v);
        }
        let challenge = self.challenge().map(|c| match resource_metadata {
            Some(url) => format!(r#"{c}, resource_metadata="{url}""#),
            None => c,
        });
        if let Some(c) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        if let Refusal::InsufficientScope { required } = &self {
            let c = format!(r#"Bearer realm="portcullis", error="insufficient_scope", scope="{required}""#);
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        for (name, value) in self.come_back() {
            h.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
        res
    }

    /// The problem document (RFC 9457) the caller is answered with.
    pub fn problem(&self, request_id: &str) -> serde_json::Value {
        let status = self.status();
        json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Refused"),
            "status": status.as_u16(),
            "detail": self.detail(),
            "code": self.reason().as_str(),
            "request_id": request_id,
        })
    }

    /// When to come back: `Retry-After` and, for a rate limit, its `RateLimit-*` fields
    /// (header names, lowercase, with their values).
    pub fn come_back(&self) -> Vec<(&'static str, u64)> {
        match *self {
            Refusal::TooManyRefusals { retry_after_secs } => vec![("retry-after", retry_after_secs)],
            Refusal::RateLimited { retry_after_secs, limit, reset_secs, .. } => vec![
                ("retry-after", retry_after_secs),
                ("ratelimit-limit", limit),
                ("ratelimit-remaining", 0),
                ("ratelimit-reset", reset_secs),
            ],
            _ => Vec::new(),
        }
    }
}
