//! One function per operation. Each authenticates (the `ApiActor` extractor), calls the
//! domain and answers; the `utoipa::path` attribute documents it in `/api/v1/openapi.json`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_domain::access::Authority;
use portcullis_domain::catalog::{NewProduct, ProductPolicy};
use portcullis_domain::clients::NewClient;
use portcullis_domain::endpoints::NewEndpoint;
use portcullis_domain::model::{
    AccessTokenView, AccountView, ClientDetail, ClientKind, ClientSummary, Environment, GrantView, ImportSummary,
    IssuedSecret, IssuedToken, ProductView, RegisteredKey, RegisteredSubject, RequestView, Role, TestAccessResult,
    UserView,
};
use portcullis_domain::scopes::Scopes;
use portcullis_domain::upstream_tls::UpstreamTlsName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::ApiActor;
use super::problem::{ApiError, Problem};
use super::ApiState;

type Answer<T> = Result<T, ApiError>;
type Body<T> = Result<Json<T>, JsonRejection>;

#[utoipa::path(get, path = "/me", responses((status = 200, body = UserView), (status = 401, body = Problem)))]
pub async fn me(ApiActor(actor): ApiActor) -> Json<UserView> {
    Json(actor.user)
}

#[utoipa::path(get, path = "/clients", responses((status = 200, body = [ClientSummary]), (status = 401, body = Problem)))]
pub async fn list_clients(State(s): State<ApiState>, ApiActor(actor): ApiActor) -> Answer<Json<Vec<ClientSummary>>> {
    Ok(Json(s.portal.store.list_clients(&actor).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewClientBody {
    pub name: String,
    pub kind: ClientKind,
    #[serde(default)]
    pub description: String,
}

/// A registered client and its sandbox secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredClient {
    pub client: ClientDetail,
    pub secret: IssuedSecret,
}

#[utoipa::path(post, path = "/clients", request_body = NewClientBody,
    responses((status = 201, body = RegisteredClient), (status = 422, body = Problem)))]
pub async fn register_client(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    body: Body<NewClientBody>,
) -> Answer<(StatusCode, Json<RegisteredClient>)> {
    let Json(b) = body?;
    let r = s
        .portal
        .store
        .register_client(&actor, NewClient { name: b.name, kind: b.kind, description: b.description })
        .await?;
    Ok((StatusCode::CREATED, Json(RegisteredClient { client: r.client, secret: r.secret })))
}

#[utoipa::path(get, path = "/clients/{client_id}", params(("client_id" = String, Path)),
    responses((status = 200, body = ClientDetail), (status = 404, body = Problem)))]
pub async fn get_client(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(client_id): Path<String>,
) -> Answer<Json<ClientDetail>> {
    Ok(Json(s.portal.store.client_detail(&actor, &client_id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProfileBody {
    pub environment: Environment,
}

#[utoipa::path(post, path = "/clients/{client_id}/profiles", params(("client_id" = String, Path)), request_body = NewProfileBody,
    responses((status = 201, body = IssuedSecret), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn add_profile(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(client_id): Path<String>,
    body: Body<NewProfileBody>,
) -> Answer<(StatusCode, Json<IssuedSecret>)> {
    let Json(b) = body?;
    Ok((StatusCode::CREATED, Json(s.portal.store.add_profile(&actor, &client_id, b.environment).await?)))
}

#[utoipa::path(post, path = "/profiles/{profile_id}/rotate", params(("profile_id" = String, Path)),
    responses((status = 201, body = IssuedSecret), (status = 404, body = Problem)))]
pub async fn rotate_secret(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
) -> Answer<(StatusCode, Json<IssuedSecret>)> {
    Ok((StatusCode::CREATED, Json(s.portal.store.rotate_secret(&actor, &profile_id).await?)))
}

#[utoipa::path(post, path = "/profiles/{profile_id}/api-keys", params(("profile_id" = String, Path)),
    responses((status = 201, body = IssuedSecret), (status = 404, body = Problem)))]
pub async fn issue_api_key(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
) -> Answer<(StatusCode, Json<IssuedSecret>)> {
    Ok((StatusCode::CREATED, Json(s.portal.store.issue_api_key(&actor, &profile_id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PublicKeyBody {
    /// The public key as a JWK, or a JWKS holding one key: EC P-256, Ed25519 or RSA of at
    /// least 2048 bits. A private member (`d`, …) is refused.
    #[schema(value_type = Object)]
    pub jwk: serde_json::Value,
    /// Cut the profile's client secrets and other keys to the grace period, as a
    /// rotation does.
    #[serde(default)]
    pub replace: bool,
}

/// Registers a public key the client signs token requests with (private_key_jwt,
/// RFC 7523) instead of a secret. The answer names the key's RFC 7638 thumbprint.
#[utoipa::path(post, path = "/profiles/{profile_id}/public-keys", params(("profile_id" = String, Path)), request_body = PublicKeyBody,
    responses((status = 201, body = RegisteredKey), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_public_key(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<PublicKeyBody>,
) -> Answer<(StatusCode, Json<RegisteredKey>)> {
    let Json(b) = body?;
    let key = s.portal.store.register_public_key(&actor, &profile_id, &b.jwk.to_string(), b.replace).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CertificateSubjectBody {
    /// The subject distinguished name of the certificates a trusted authority issues to
    /// the agent, as RFC 4514 writes it (most specific first:
    /// `CN=billing-agent,O=Acme,C=GB`), or one such certificate in PEM.
    pub subject: String,
}

/// Registers the subject of the CA-issued certificates the client authenticates with
/// (`tls_client_auth`, RFC 8705 §2.1): over a TLS connection presenting one, verified
/// against the listener's `--tls-client-ca`, a token request needs only the client id.
#[utoipa::path(post, path = "/profiles/{profile_id}/certificate-subjects", params(("profile_id" = String, Path)), request_body = CertificateSubjectBody,
    responses((status = 201, body = RegisteredSubject), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_certificate_subject(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<CertificateSubjectBody>,
) -> Answer<(StatusCode, Json<RegisteredSubject>)> {
    let Json(b) = body?;
    let registered = s.portal.store.register_certificate_subject(&actor, &profile_id, &b.subject).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RateLimitBody {
    pub rate_per_minute: i64,
    pub burst: i64,
}

#[utoipa::path(put, path = "/profiles/{profile_id}/rate-limit", params(("profile_id" = String, Path)), request_body = RateLimitBody,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_rate_limit(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<RateLimitBody>,
) -> Answer<StatusCode> {
    let Json(b) = body?;
    s.portal.store.set_rate_limit(&actor, &profile_id, b.rate_per_minute, b.burst).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantRequestBody {
    pub product_id: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub justification: String,
}

#[utoipa::path(post, path = "/profiles/{profile_id}/grants", params(("profile_id" = String, Path)), request_body = GrantRequestBody,
    responses((status = 201, body = GrantView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn request_grant(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<GrantRequestBody>,
) -> Answer<(StatusCode, Json<GrantView>)> {
    let Json(b) = body?;
    let grant = s.portal.store.request_grant(&actor, &profile_id, &b.product_id, &b.scopes, &b.justification).await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

#[utoipa::path(post, path = "/credentials/{credential_id}/revoke", params(("credential_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_credential(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(credential_id): Path<String>,
) -> Answer<StatusCode> {
    s.portal.store.revoke_credential(&actor, &credential_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/products", responses((status = 200, body = [ProductView])))]
pub async fn list_products(State(s): State<ApiState>, ApiActor(actor): ApiActor) -> Answer<Json<Vec<ProductView>>> {
    Ok(Json(s.portal.store.list_products(&actor).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointBody {
    pub method: String,
    pub path_template: String,
    #[serde(default)]
    pub operation_id: String,
    #[serde(default)]
    pub summary: String,
    pub scope: String,
    #[serde(default)]
    pub sensitive: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProductBody {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub sandbox_url: String,
    pub production_url: String,
    #[serde(default)]
    pub endpoints: Vec<EndpointBody>,
}

impl From<NewProductBody> for NewProduct {
    fn from(b: NewProductBody) -> Self {
        NewProduct {
            slug: b.slug,
            name: b.name,
            description: b.description,
            owner: b.owner,
            tags: b.tags,
            sandbox_url: b.sandbox_url,
            production_url: b.production_url,
        }
    }
}

#[utoipa::path(post, path = "/products", request_body = NewProductBody,
    responses((status = 201, body = ProductView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_product(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    body: Body<NewProductBody>,
) -> Answer<(StatusCode, Json<ProductView>)> {
    let Json(mut b) = body?;
    let endpoints = std::mem::take(&mut b.endpoints)
        .into_iter()
        .map(|e| NewEndpoint {
            method: e.method,
            path_template: e.path_template,
            operation_id: e.operation_id,
            summary: e.summary,
            scope: e.scope,
            sensitive: e.sensitive,
            ..NewEndpoint::default()
        })
        .collect();
    Ok((StatusCode::CREATED, Json(s.portal.store.create_product(&actor, b.into(), endpoints).await?)))
}

#[utoipa::path(put, path = "/products/{product_id}", params(("product_id" = String, Path)), request_body = NewProductBody,
    responses((status = 200, body = ProductView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_product(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(product_id): Path<String>,
    body: Body<NewProductBody>,
) -> Answer<Json<ProductView>> {
    let Json(b) = body?;
    Ok(Json(s.portal.store.update_product(&actor, &product_id, b.into()).await?))
}

/// A product's gateway policy, set as a whole.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductPolicyBody {
    /// Requests per minute across every caller; `null` for no limit beyond each profile's own.
    #[serde(default)]
    pub rate_per_minute: Option<i64>,
    /// Whether callers may send an API key as `?api_key=` (never forwarded upstream).
    #[serde(default)]
    pub api_key_in_query: bool,
    /// The upstream TLS profile (a directory under the server's `--upstream-tls-dir`) the
    /// gateway calls the upstream with; `null` for the system's roots and the server-wide
    /// settings. A name the server does not have is refused (422), listing those it has.
    #[serde(default)]
    pub upstream_tls: Option<String>,
}

#[utoipa::path(put, path = "/products/{product_id}/policy", params(("product_id" = String, Path)), request_body = ProductPolicyBody,
    responses((status = 200, body = ProductView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_product_policy(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(product_id): Path<String>,
    body: Body<ProductPolicyBody>,
) -> Answer<Json<ProductView>> {
    let Json(b) = body?;
    let policy = ProductPolicy {
        rate_per_minute: b.rate_per_minute,
        api_key_in_query: b.api_key_in_query,
        upstream_tls: b.upstream_tls.as_deref().map(UpstreamTlsName::parse).transpose()?,
    };
    Ok(Json(s.portal.store.set_product_policy(&actor, &product_id, policy, &s.portal.upstream_tls).await?))
}

/// The OpenAPI 3 document (JSON or YAML) is the raw request body.
#[utoipa::path(post, path = "/products/{product_id}/openapi", params(("product_id" = String, Path)), request_body(content = String, content_type = "application/yaml"),
    responses((status = 200, body = ImportSummary), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn import_openapi(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(product_id): Path<String>,
    document: String,
) -> Answer<Json<ImportSummary>> {
    Ok(Json(s.portal.store.import_openapi(&actor, &product_id, &document).await?))
}

#[utoipa::path(get, path = "/grants/pending", responses((status = 200, body = [GrantView]), (status = 403, body = Problem)))]
pub async fn pending_grants(State(s): State<ApiState>, ApiActor(actor): ApiActor) -> Answer<Json<Vec<GrantView>>> {
    Ok(Json(s.portal.store.pending_grants(&actor).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DecisionBody {
    pub decision: Decision,
    pub reason: String,
    /// Approvals only: how many days the grant lasts, from 1 to the deployment's grant
    /// lifetime (the default).
    #[serde(default)]
    pub days: Option<i64>,
}

#[utoipa::path(post, path = "/grants/{grant_id}/decision", params(("grant_id" = String, Path)), request_body = DecisionBody,
    responses((status = 200, body = GrantView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decide_grant(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(grant_id): Path<String>,
    body: Body<DecisionBody>,
) -> Answer<Json<GrantView>> {
    let Json(b) = body?;
    let approve = matches!(b.decision, Decision::Approve);
    Ok(Json(s.portal.store.decide_grant(&actor, &grant_id, approve, &b.reason, b.days).await?))
}

#[utoipa::path(get, path = "/tokens", responses((status = 200, body = [AccessTokenView])))]
pub async fn list_tokens(State(s): State<ApiState>, ApiActor(actor): ApiActor) -> Answer<Json<Vec<AccessTokenView>>> {
    Ok(Json(s.portal.store.list_access_tokens(&actor).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTokenBody {
    pub name: String,
    /// Lifetime in days (1–366, default 90).
    pub days: Option<i64>,
    /// What the token may do (`clients:read`, `clients:write`, `catalog:read`,
    /// `catalog:write`, `grants:read`, `grants:write`, `audit:read`, `reviews:read`,
    /// `reviews:write`, `users:read`, `users:write`, `tokens:read`, `tokens:write`;
    /// `write` includes `read`). Omitted: the same scopes as the credential making the
    /// call. Never more than it holds.
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Scopes>,
}

#[utoipa::path(post, path = "/tokens", request_body = NewTokenBody, responses((status = 201, body = IssuedToken), (status = 422, body = Problem)))]
pub async fn create_token(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    body: Body<NewTokenBody>,
) -> Answer<(StatusCode, Json<IssuedToken>)> {
    let Json(b) = body?;
    let scopes = b.scopes.unwrap_or(actor.scopes());
    Ok((StatusCode::CREATED, Json(s.portal.store.create_access_token(&actor, &b.name, b.days, scopes).await?)))
}

#[utoipa::path(post, path = "/tokens/{token_id}/revoke", params(("token_id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_token(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(token_id): Path<String>,
) -> Answer<StatusCode> {
    s.portal.store.revoke_access_token(&actor, &token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/users", responses((status = 200, body = [AccountView]), (status = 403, body = Problem)))]
pub async fn list_users(State(s): State<ApiState>, ApiActor(actor): ApiActor) -> Answer<Json<Vec<AccountView>>> {
    Ok(Json(s.portal.store.list_users(&actor).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DisableBody {
    pub disabled: bool,
    /// Kept in the audit trail.
    pub reason: String,
}

/// Admins only. A disabled person cannot sign in or use their tokens, and their clients
/// are refused at the gateway from the next request.
#[utoipa::path(put, path = "/users/{user_id}/disabled", params(("user_id" = String, Path)), request_body = DisableBody,
    responses((status = 200, body = AccountView), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_user_disabled(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(user_id): Path<String>,
    body: Body<DisableBody>,
) -> Answer<Json<AccountView>> {
    let Json(b) = body?;
    Ok(Json(s.portal.store.set_user_disabled(Authority::Admin(&actor), &user_id, b.disabled, &b.reason).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SuspendBody {
    pub suspended: bool,
    /// Kept in the audit trail.
    pub reason: String,
}

/// Admins only. A suspended client is refused at the gateway and the token endpoint
/// from the next request; its credentials and grants are kept.
#[utoipa::path(put, path = "/clients/{client_id}/suspended", params(("client_id" = String, Path)), request_body = SuspendBody,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_client_suspended(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(client_id): Path<String>,
    body: Body<SuspendBody>,
) -> Answer<StatusCode> {
    let Json(b) = body?;
    s.portal.store.set_client_suspended(Authority::Admin(&actor), &client_id, b.suspended, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SenderConstraintBody {
    /// `dpop`: only DPoP-bound access tokens (RFC 9449); `none`: bearer tokens and API keys too.
    pub sender_constraint: portcullis_domain::model::SenderConstraint,
}

/// Admins only: whether this profile accepts only sender-constrained (DPoP-bound)
/// tokens, on every channel, from the next request on.
#[utoipa::path(put, path = "/profiles/{profile_id}/sender-constraint", params(("profile_id" = String, Path)), request_body = SenderConstraintBody,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_sender_constraint(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<SenderConstraintBody>,
) -> Answer<StatusCode> {
    let Json(b) = body?;
    s.portal.store.set_sender_constraint(&actor, &profile_id, b.sender_constraint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MayActBody {
    /// The client ids that may act on this profile's behalf through token exchange;
    /// `null`: any client holding one of its tokens; `[]`: none. Required: a body that
    /// forgot it must not widen consent to any client.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(required = true)]
    pub actors: Option<Vec<String>>,
}

/// Who may act on behalf of this profile's client through token exchange (RFC 8693
/// `may_act`). Its owner or an admin; from the next request, a delegated token whose
/// chain names a client no longer allowed is refused.
#[utoipa::path(put, path = "/profiles/{profile_id}/may-act", params(("profile_id" = String, Path)), request_body = MayActBody,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_may_act(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<MayActBody>,
) -> Answer<StatusCode> {
    let Json(b) = body?;
    s.portal.store.set_may_act(&actor, &profile_id, b.actors).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenLifetimeBody {
    /// How long the profile's access tokens live, in seconds.
    pub seconds: i64,
}

/// Admins only: how long access tokens issued to this profile live.
#[utoipa::path(put, path = "/profiles/{profile_id}/token-lifetime", params(("profile_id" = String, Path)), request_body = TokenLifetimeBody,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_token_lifetime(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<TokenLifetimeBody>,
) -> Answer<StatusCode> {
    let Json(b) = body?;
    s.portal.store.set_token_lifetime(&actor, &profile_id, b.seconds).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleBody {
    pub role: Role,
}

/// Admins only: a person's role. The last active admin stays an admin.
#[utoipa::path(put, path = "/users/{user_id}/role", params(("user_id" = String, Path)), request_body = RoleBody,
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn set_user_role(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(user_id): Path<String>,
    body: Body<RoleBody>,
) -> Answer<Json<UserView>> {
    let Json(b) = body?;
    Ok(Json(s.portal.store.set_user_role(&actor, &user_id, b.role).await?))
}

/// The client's latest requests (gateway, MCP and token endpoint), newest first: the
/// client page's "Recent requests".
#[utoipa::path(get, path = "/clients/{client_id}/requests", params(("client_id" = String, Path)),
    responses((status = 200, body = [RequestView]), (status = 404, body = Problem)))]
pub async fn recent_requests(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(client_id): Path<String>,
) -> Answer<Json<Vec<RequestView>>> {
    Ok(Json(s.portal.store.recent_requests(&actor, &client_id, 25).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TestAccessBody {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    #[schema(example = "GET")]
    pub method: String,
    /// A gateway path.
    #[schema(example = "/gw/accounts/accounts")]
    pub path: String,
}

/// Makes one real call through the gateway with a short-lived token for this profile's
/// own credential, and answers what the gateway answered ("Test access"). The call is
/// enforced and audited like any other.
#[utoipa::path(post, path = "/profiles/{profile_id}/test-access", params(("profile_id" = String, Path)), request_body = TestAccessBody,
    responses((status = 200, body = TestAccessResult), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn test_access(
    State(s): State<ApiState>,
    ApiActor(actor): ApiActor,
    Path(profile_id): Path<String>,
    body: Body<TestAccessBody>,
) -> Answer<Json<TestAccessResult>> {
    let Json(b) = body?;
    Ok(Json(portcullis_app::ssr::test_access(&s.portal, &actor, &profile_id, &b.method, &b.path).await?))
}

/// Admins only: the upstream TLS profiles this server has, which a product's gateway
/// policy may name.
#[utoipa::path(get, path = "/upstream-tls", responses((status = 200, body = [String]), (status = 403, body = Problem)))]
pub async fn upstream_tls_profiles(State(s): State<ApiState>, ApiActor(actor): ApiActor) -> Answer<Json<Vec<String>>> {
    Ok(Json(s.portal.upstream_tls.listed_for(&actor)?))
}
