//! The security team's views and review actions as JSON: a client's activity, the
//! dashboard, the access review and its four actions. Same domain calls, same rules, as
//! the portal's pages.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_domain::model::{ClientActivity, ReviewClient, SecurityDashboard};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::ApiActor;
use super::problem::{ApiError, Problem};
use super::ApiState;

type Body<T> = Result<Json<T>, JsonRejection>;

/// Why a reviewer acts; kept with the action in the audit trail.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReasonBody {
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ExtendBody {
    /// 1 to 365.
    pub days: i64,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Extended {
    /// The grant's new expiry, Unix milliseconds.
    pub expires_at: i64,
}

/// One client's last 30 days: its owner, the security team and admins may read it.
#[utoipa::path(get, path = "/clients/{client_id}/activity", params(("client_id" = String, Path)),
    responses((status = 200, body = ClientActivity), (status = 404, body = Problem)))]
pub async fn activity(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(client_id): Path<String>,
) -> Result<Json<ClientActivity>, ApiError> {
    Ok(Json(s.portal.store.client_activity(&actor, &client_id).await?))
}

#[utoipa::path(get, path = "/security/dashboard",
    responses((status = 200, body = SecurityDashboard), (status = 403, body = Problem)))]
pub async fn dashboard(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
) -> Result<Json<SecurityDashboard>, ApiError> {
    Ok(Json(s.portal.store.security_dashboard(&actor).await?))
}

/// Every client with its owner, grants and credentials, flagged.
#[utoipa::path(get, path = "/reviews", responses((status = 200, body = [ReviewClient]), (status = 403, body = Problem)))]
pub async fn review(State(s): State<ApiState>, ApiActor(actor): ApiActor) -> Result<Json<Vec<ReviewClient>>, ApiError> {
    Ok(Json(s.portal.store.access_review(&actor).await?))
}

#[utoipa::path(post, path = "/reviews/credentials/{credential_id}/revoke", params(("credential_id" = String, Path)),
    request_body = ReasonBody,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn revoke_credential(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(credential_id): Path<String>,
    body: Body<ReasonBody>,
) -> Result<StatusCode, ApiError> {
    let Json(b) = body?;
    s.portal.store.review_revoke_credential(&actor, &credential_id, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/reviews/grants/{grant_id}/end", params(("grant_id" = String, Path)), request_body = ReasonBody,
    responses((status = 204), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn end_grant(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(grant_id): Path<String>,
    body: Body<ReasonBody>,
) -> Result<StatusCode, ApiError> {
    let Json(b) = body?;
    s.portal.store.review_end_grant(&actor, &grant_id, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/reviews/grants/{grant_id}/extend", params(("grant_id" = String, Path)), request_body = ExtendBody,
    responses((status = 200, body = Extended), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn extend_grant(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(grant_id): Path<String>,
    body: Body<ExtendBody>,
) -> Result<Json<Extended>, ApiError> {
    let Json(b) = body?;
    Ok(Json(Extended { expires_at: s.portal.store.review_extend_grant(&actor, &grant_id, b.days, &b.reason).await? }))
}

#[utoipa::path(post, path = "/reviews/clients/{client_id}/reviewed", params(("client_id" = String, Path)), request_body = ReasonBody,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn mark_reviewed(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(client_id): Path<String>,
    body: Body<ReasonBody>,
) -> Result<StatusCode, ApiError> {
    let Json(b) = body?;
    s.portal.store.mark_client_reviewed(&actor, &client_id, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}
