//! Federation: trusted issuers (admins register and disable them; the security team
//! reads them) and the identities at them linked to profiles.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_domain::model::{LinkedIdentity, NewTrustedIssuer, TrustedIssuerView};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::ApiActor;
use super::problem::{ApiError, Problem};
use super::ApiState;

type Answer<T> = Result<T, ApiError>;
type Body<T> = Result<Json<T>, JsonRejection>;

/// Every trusted issuer, disabled ones too, with how many identities each has linked.
#[utoipa::path(get, path = "/issuers", responses((status = 200, body = Vec<TrustedIssuerView>), (status = 403, body = Problem)))]
pub async fn list_issuers(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
) -> Answer<Json<Vec<TrustedIssuerView>>> {
    Ok(Json(s.portal.store.list_issuers(&actor).await?))
}

/// Registers an identity provider whose tokens the gateway accepts for the identities
/// linked to profiles. Its keys: an https `jwks_uri`, or a pasted `jwks`; with neither,
/// the `jwks_uri` its OpenID Provider metadata names (discovery).
#[utoipa::path(post, path = "/issuers", request_body = NewTrustedIssuer,
    responses((status = 201, body = TrustedIssuerView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_issuer(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    body: Body<NewTrustedIssuer>,
) -> Answer<(StatusCode, Json<TrustedIssuerView>)> {
    let Json(b) = body?;
    let issuer = s.portal.register_issuer(&actor, b).await?;
    Ok((StatusCode::CREATED, Json(issuer)))
}

/// Stops accepting the issuer's tokens, from the next request, whatever they name.
#[utoipa::path(post, path = "/issuers/{issuer_id}/disable", params(("issuer_id" = String, Path)),
    responses((status = 200, body = TrustedIssuerView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn disable_issuer(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(issuer_id): Path<String>,
) -> Answer<Json<TrustedIssuerView>> {
    Ok(Json(s.portal.store.disable_issuer(&actor, &issuer_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LinkIdentityBody {
    pub issuer_id: String,
    /// The value of the issuer's subject claim for this agent.
    pub subject: String,
}

/// Links an identity at a trusted issuer to a profile (admins): the issuer's tokens
/// naming it are accepted as the profile. A credential of kind `federated`, revoked
/// like any other.
#[utoipa::path(post, path = "/profiles/{profile_id}/federated-identities", params(("profile_id" = String, Path)), request_body = LinkIdentityBody,
    responses((status = 201, body = LinkedIdentity), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn link_identity(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<LinkIdentityBody>,
) -> Answer<(StatusCode, Json<LinkedIdentity>)> {
    let Json(b) = body?;
    let linked = s.portal.store.link_identity(&actor, &profile_id, &b.issuer_id, &b.subject).await?;
    Ok((StatusCode::CREATED, Json(linked)))
}
