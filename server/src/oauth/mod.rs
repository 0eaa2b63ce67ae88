//! The OAuth2 authorization server: the client credentials grant (RFC 6749 §4.4), the
//! published keys (RFC 7517) and the server metadata (RFC 8414). See README.md beside
//! this file for the decisions.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_app::ssr::ClientIp;
use portcullis_domain::audit_event::RequestEvent;
use portcullis_domain::audit_text::{cap, AuditText};
use portcullis_domain::audit_writer::{AuditSink, PendingRow};
use portcullis_domain::enforcement::{
    certificate_key, certificate_subject, claimed_client, Assertion, AssertionError, Confirmation, CredentialEntry,
    Delegation, ExchangeRefusal, KeyError, ProfileEntry, Proof, ProofCheck, ProofError, Snapshot, TokenAsk,
    TokenRequestError, TokenSettings, ACCESS_TOKEN_TYPE, ASSERTION_ALGS, ASSERTION_TYPE, DPOP_ALGS, TASK_DETAIL_TYPE,
    TOKEN_EXCHANGE,
};
use portcullis_domain::keyed::{identity_key, source_key, Limiter};
use portcullis_domain::model::{Decision, Reason, RequestChannel, SenderConstraint};
use portcullis_domain::store::Store;
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::audit;
use crate::body::{self as request_body, BodyError};
use crate::dpop::{Proofs, DPOP_NONCE};
use crate::gateway::IssuerKeyCache;
use crate::shared_limits::{self, Rule, SharedLimits};
use crate::sources::Sources;
use crate::tls::ClientCertificate;

/// How clients may authenticate at every endpoint that takes client authentication;
/// where client certificates reach us, `self_signed_tls_client_auth` too, and where the
/// listener verifies them against `--tls-client-ca`, `tls_client_auth`.
const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
const CERTIFICATE_AUTH: &str = "self_signed_tls_client_auth";
const CA_CERTIFICATE_AUTH: &str = "tls_client_auth";

/// OAuth requests are small forms; anything larger is refused unread.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct OAuthServer {
    store: Store,
    settings: TokenSettings,
    audit: AuditSink,
    limits: Arc<Limits>,
    /// Addresses refused too often are turned away at the door.
    sources: Sources,
    /// DPoP proofs of token requests: checked, and used once across replicas.
    proofs: Proofs,
    /// Whether requests can come with a TLS client certificate (RFC 8705).
    certificates: bool,
    /// Whether the listener verifies them against authorities it trusts, so that a
    /// certificate's subject can name a client (`tls_client_auth`).
    ca_certificates: bool,
    /// Trusted issuers' keys, shared with the gateway: a subject token to exchange may
    /// come from one of them.
    issuer_keys: IssuerKeyCache,
}

/// The token endpoint's limits. None lets an attacker lock a client out: attempts are
/// counted per (client, address), so failures from the attacker's address leave the
/// owner's own address untouched; tokens actually issued are counted per client.
struct Limits {
    /// Every OAuth request, per address (ten times a client's rate, for several clients
    /// behind one address).
    per_source: Limiter<IpAddr>,
    /// Token requests naming a known client, per (client, address); unknown client ids
    /// get no bucket of their own.
    per_client_source: Limiter<[u8; 16]>,
    /// Tokens issued, per client, whatever the address.
    per_client: Limiter<String>,
    /// With `--redis-url`, tokens issued per client are counted across replicas (with
    /// `per_client` deciding whenever Redis cannot). The per-address limits stay per
    /// process: they turn floods away before any shared work, and a flood spread over
    /// replicas still meets each one's limit.
    shared: Option<(SharedLimits, u32)>,
}

impl Limits {
    async fn token_allowed(&self, client_id: &str) -> bool {
        if let Some((shared, per_minute)) = &self.shared {
            let rule = Rule::per_minute("token", client_id, u64::from(*per_minute), u64::from(per_minute.div_ceil(3)));
            match shared.check(std::slice::from_ref(&rule)).await {
                Some(shared_limits::Decision::Allowed { .. }) => return true,
                Some(shared_limits::Decision::Limited { .. }) => return false,
                None => {}
            }
        }
        self.per_client.check(&client_id.to_owned()).is_ok()
    }
}

impl OAuthServer {
    /// `per_client_per_minute` token requests per client (burst a third of it).
    pub fn new(
        store: Store,
        settings: TokenSettings,
        audit: AuditSink,
        sources: Sources,
        per_client_per_minute: u32,
        shared: Option<SharedLimits>,
        issuer_keys: IssuerKeyCache,
    ) -> Self {
        let per_client = per_client_per_minute.max(1);
        let proofs = Proofs::new(store.enforcement().clone(), shared.clone(), &settings.issuer);
        let limits = Limits {
            per_source: Limiter::new(per_client.saturating_mul(10), per_client.saturating_mul(2), 100_000),
            per_client_source: Limiter::new(per_client, per_client.div_ceil(3), 100_000),
            per_client: Limiter::new(per_client, per_client.div_ceil(3), 100_000),
            shared: shared.map(|s| (s, per_client)),
        };
        Self {
            store,
            settings,
            audit,
            limits: Arc::new(limits),
            sources,
            proofs,
            certificates: false,
            ca_certificates: false,
            issuer_keys,
        }
    }

    /// Says (in the metadata) that client certificates can reach this server: the
    /// listener asks for them, or a trusted proxy forwards them; and whether the
    /// listener verifies them against `--tls-client-ca`.
    pub fn accepting_certificates(self, certificates: bool, ca_certificates: bool) -> Self {
        Self { certificates, ca_certificates, ..self }
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(server: OAuthServer) -> Router<S> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/introspect", post(introspect))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .with_state(server)
}

/// An RFC 6749 §5.2 error: its `error` code is also the audit reason.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OAuthError {
    status: StatusCode,
    /// What the audit row says.
    error: Reason,
    /// What the client is told (`error`): a replayed or missing proof is
    /// `invalid_dpop_proof` to the client (RFC 9449), a replayed assertion
    /// `invalid_client`; the audit trail keeps them apart.
    wire: Reason,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: Reason, description: impl Into<String>) -> Self {
        let wire = match error {
            Reason::DpopProofReplayed | Reason::SenderConstraintRequired => Reason::InvalidDpopProof,
            Reason::ClientAssertionReplayed => Reason::InvalidClient,
            other => other,
        };
        Self { status, error, wire, description: description.into() }
    }
    /// The same refusal, told to the client as `wire`.
    fn answered_as(self, wire: Reason) -> Self {
        Self { wire, ..self }
    }
    fn invalid_request(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Reason::InvalidRequest, description)
    }
    /// Unknown client, wrong secret, missing authentication: one answer for all.
    fn invalid_client() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, Reason::InvalidClient, "client authentication failed")
    }
    fn rate_limited() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, Reason::RateLimited, "too many token requests; retry later")
    }
    /// A client assertion refused (RFC 7521 §4.2.1: `invalid_client`). Only what the
    /// assertion itself shows is told; whether a key of the client verified it is not.
    fn assertion(e: AssertionError) -> Self {
        let reason =
            if e == AssertionError::Replayed { Reason::ClientAssertionReplayed } else { Reason::InvalidClient };
        Self::new(StatusCode::UNAUTHORIZED, reason, e.description())
    }
    /// RFC 9449 §5 and §8: a proof refused, or a nonce to use.
    fn dpop(e: ProofError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, e.reason(), e.description())
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res =
            (self.status, Json(json!({ "error": self.wire, "error_description": self.description }))).into_response();
        no_store(res.headers_mut());
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="portcullis""#));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        res
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// How a client authenticates at the token, revocation and introspection endpoints.
enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post` (RFC 6749 §2.3.1).
    Secret { client_id: String, secret: String },
    /// `private_key_jwt` (RFC 7523 §2.2): an assertion signed with a registered key.
    Assertion { client_id: String, assertion: String },
    /// `self_signed_tls_client_auth` or `tls_client_auth` (RFC 8705 §2): only a
    /// `client_id`, over a TLS connection whose client certificate carries a registered
    /// key, or was issued by a trusted authority to a registered subject.
    Certificate { client_id: String, certificate: ClientCertificate },
}

impl ClientAuth {
    fn client_id(&self) -> &str {
        match self {
            ClientAuth::Secret { client_id, .. }
            | ClientAuth::Assertion { client_id, .. }
            | ClientAuth::Certificate { client_id, .. } => client_id,
        }
    }
}

/// The client's authentication, from `Authorization: Basic` (form-urlencoded inside,
/// RFC 6749 §2.3.1), from the body's secret, or from the body's assertion; more than one
/// is a malformed request. With none of them, a `client_id` and the connection's client
/// certificate authenticate with the certificate's key.
fn client_auth(
    headers: &HeaderMap,
    form: &[(String, String)],
    certificate: Option<&ClientCertificate>,
) -> Result<ClientAuth, OAuthError> {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..6).filter(|p| p.eq_ignore_ascii_case("basic ")).map(|_| v.get(6..).unwrap_or("")));
    let assertion = match (field("client_assertion_type"), field("client_assertion")) {
        (None, None) => None,
        (Some(kind), Some(assertion)) if kind == ASSERTION_TYPE => Some(assertion),
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                Reason::InvalidClient,
                format!("client_assertion_type must be {ASSERTION_TYPE}"),
            ))
        }
        _ => return Err(OAuthError::invalid_request("client_assertion and client_assertion_type go together")),
    };
    match (basic, field("client_secret"), assertion) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            Err(OAuthError::invalid_request("use one client authentication method"))
        }
        (None, None, Some(assertion)) => {
            // The client is the assertion's subject; a `client_id` sent beside it must be
            // the same (the signature check holds `iss` and `sub` to it).
            let client_id = field("client_id")
                .or_else(|| claimed_client(&assertion))
                .ok_or_else(|| OAuthError::assertion(AssertionError::MissingClaim))?;
            Ok(ClientAuth::Assertion { client_id, assertion })
        }
        (Some(b64), None, None) => {
            let decoded = STANDARD.decode(b64.trim()).ok().and_then(|d| String::from_utf8(d).ok());
            let pair = decoded.as_deref().and_then(|d| d.split_once(':'));
            let decode = |s: &str| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}")).ok()?.pop().map(|(_, v)| v)
            };
            match pair.and_then(|(id, secret)| Some((decode(id)?, decode(secret)?))) {
                Some((client_id, secret)) => Ok(ClientAuth::Secret { client_id, secret }),
                None => Err(OAuthError::invalid_client()),
            }
        }
        (None, Some(secret), None) => match field("client_id") {
            Some(client_id) => Ok(ClientAuth::Secret { client_id, secret }),
            None => Err(OAuthError::invalid_client()),
        },
        (None, None, None) => match (field("client_id"), certificate) {
            (Some(client_id), Some(certificate)) => {
                Ok(ClientAuth::Certificate { client_id, certificate: certificate.clone() })
            }
            _ => Err(OAuthError::invalid_client()),
        },
    }
}

impl OAuthServer {
    /// Authenticates the client by its secret or its assertion. An assertion is used
    /// once, here and (with Redis) on every replica; it is remembered only once it
    /// verified with the client's key, so nobody else fills that memory.
    async fn authenticate<'s>(
        &self,
        snap: &'s Snapshot,
        auth: &ClientAuth,
        endpoint: &str,
    ) -> Result<(&'s CredentialEntry, &'s ProfileEntry), OAuthError> {
        let enforcement = self.store.enforcement();
        match auth {
            ClientAuth::Secret { client_id, secret } => {
                enforcement.authenticate_client(snap, client_id, secret).map_err(|_| OAuthError::invalid_client())
            }
            ClientAuth::Certificate { client_id, certificate } => {
                // What the certificate shows is told; whether the client exists or has
                // registered the key or the subject is not.
                let told = |e: KeyError| OAuthError::new(StatusCode::UNAUTHORIZED, Reason::InvalidClient, e.0);
                let key = certificate_key(certificate.der());
                // A subject names someone only in a certificate a trusted authority issued.
                let subject = match certificate.issued_by_trusted_ca() {
                    true => Some(certificate_subject(certificate.der()).map_err(told)?.key),
                    false => None,
                };
                // A CA-issued certificate may carry a key of a kind we do not register
                // (P-384, say): its subject still authenticates.
                let thumbprint = match (key, &subject) {
                    (Ok(key), _) => Some(key.thumbprint),
                    (Err(_), Some(_)) => None,
                    (Err(e), None) => return Err(told(e)),
                };
                enforcement
                    .authenticate_client_certificate(snap, client_id, thumbprint.as_deref(), subject.as_deref())
                    .map_err(|_| OAuthError::invalid_client())
            }
            ClientAuth::Assertion { client_id, assertion } => {
                let issuer = &self.settings.issuer;
                let audiences = [issuer.clone(), format!("{issuer}/oauth/token"), format!("{issuer}{endpoint}")];
                let (credential, profile, checked) = enforcement
                    .authenticate_client_assertion(snap, client_id, assertion, &audiences)
                    .map_err(OAuthError::assertion)?;
                if !self.first_assertion_use(&checked).await {
                    return Err(OAuthError::assertion(AssertionError::Replayed));
                }
                Ok((credential, profile))
            }
        }
    }

    async fn first_assertion_use(&self, assertion: &Assertion) -> bool {
        let remembered = std::time::Duration::from_secs(assertion.remember_secs);
        let first_here = self.store.enforcement().first_assertion_use_local(assertion);
        let shared = self.limits.shared.as_ref().map(|(shared, _)| shared);
        SharedLimits::first_everywhere(shared, first_here, &assertion.replay_key, remembered).await
    }
}

async fn token(
    State(o): State<OAuthServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    certificate: Option<Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (mut row, body) = match begin(&o, peer, &headers, "/oauth/token", body).await {
        Ok(started) => started,
        Err(answered) => return answered,
    };
    let presented = Presented { peer, headers: &headers, certificate: certificate.as_ref().map(|c| &c.0) };
    let result = issue(&o, &presented, &body, &mut row.event).await;
    let mut res = end(&o, peer, row, result).await;
    // Every answer carries a current DPoP nonce (RFC 9449 §8), so a client's next proof
    // can include it without a failed round first.
    res.headers_mut().insert(DPOP_NONCE, o.proofs.nonce());
    res
}

/// The subject token of a token exchange (RFC 8693 §2.1), once what else the request
/// says is checked: an access token of this server, exchanged for another; no actor
/// token (the authenticated client is the actor); no other audience.
fn exchange_request<'f>(o: &OAuthServer, form: &'f [(String, String)]) -> Result<&'f str, OAuthError> {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let subject = field("subject_token").ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
    if field("subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::invalid_request(&format!("subject_token_type must be {ACCESS_TOKEN_TYPE}")));
    }
    if field("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::invalid_request(&format!("requested_token_type can only be {ACCESS_TOKEN_TYPE}")));
    }
    if field("actor_token").is_some() || field("actor_token_type").is_some() {
        return Err(OAuthError::invalid_request(
            "actor_token is not taken: the client that authenticates is the actor",
        ));
    }
    for target in ["audience", "resource"] {
        if field(target).is_some_and(|t| t.trim_end_matches('/') != o.settings.issuer) {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                Reason::InvalidTarget,
                format!("{target}: tokens of this server are for {} only", o.settings.issuer),
            ));
        }
    }
    Ok(subject)
}

impl OAuthServer {
    /// What a token exchange delegates to `actor`: the subject token is one of ours, or
    /// one of a trusted issuer's (picked by its claimed `iss`, then verified with that
    /// issuer's keys only) naming an identity linked to another client.
    async fn exchange(
        &self,
        snap: &Snapshot,
        subject_token: &str,
        actor: &ProfileEntry,
    ) -> Result<Delegation, OAuthError> {
        let enforcement = self.store.enforcement();
        let delegation = match snap.trusted_issuer_of(subject_token) {
            None => enforcement.exchange_subject(&self.settings, snap, subject_token, actor),
            Some(issuer) => match self.issuer_keys.verify(subject_token, issuer, enforcement.now()).await {
                Ok(token) => enforcement.exchange_external(snap, issuer, &token, actor),
                Err(e) => Err(ExchangeRefusal::InvalidGrant(format!("the subject token: {}", e.description()))),
            },
        };
        delegation.map_err(|ExchangeRefusal::InvalidGrant(why)| {
            OAuthError::new(StatusCode::BAD_REQUEST, Reason::InvalidGrant, why)
        })
    }
}

/// The request's DPoP proof, checked (all but its one use, which waits until the client
/// has authenticated): `None` for a request without one, which gets a bearer token.
fn token_proof(o: &OAuthServer, headers: &HeaderMap) -> Result<Option<Proof>, OAuthError> {
    let Some(text) = Proofs::presented(headers).map_err(OAuthError::dpop)? else { return Ok(None) };
    let url = o.proofs.url("/oauth/token");
    let check = ProofCheck { method: "POST", url: &url, access_token: None, nonce_required: true };
    o.proofs.check(text, &check).map(Some).map_err(OAuthError::dpop)
}

/// The form of any OAuth request, after the per-IP limit: form-urlencoded, and no
/// parameter twice (RFC 6749 §3.2).
fn read_form(o: &OAuthServer, ip: IpAddr, body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    if o.limits.per_source.check(&source_key(ip)).is_err() {
        return Err(OAuthError::rate_limited());
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::invalid_request("the body must be form-urlencoded"))?;
    let mut names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(OAuthError::invalid_request("a parameter is repeated"));
    }
    Ok(form)
}

/// What an OAuth request came with besides its form.
struct Presented<'r> {
    peer: IpAddr,
    headers: &'r HeaderMap,
    /// The TLS client certificate of its connection (or its proxy's `Client-Cert`).
    certificate: Option<&'r ClientCertificate>,
}

async fn issue(
    o: &OAuthServer,
    presented: &Presented<'_>,
    body: &[u8],
    event: &mut RequestEvent,
) -> Result<Response, OAuthError> {
    let (ip, headers) = (presented.peer, presented.headers);
    let form = read_form(o, ip, body)?;
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let exchange = match field("grant_type") {
        Some("client_credentials") => None,
        Some(TOKEN_EXCHANGE) => Some(exchange_request(o, &form)?),
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                Reason::UnsupportedGrantType,
                format!("the grant types supported are client_credentials and {TOKEN_EXCHANGE}"),
            ))
        }
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    };
    let auth = client_auth(headers, &form, presented.certificate)?;
    let client_id = auth.client_id();
    event.attempted_client_id = Some(AuditText::new(client_id, cap::ID));
    let snap = o.store.enforcement().snapshot().current();
    let known = snap.clients.contains(client_id);
    if known && o.limits.per_client_source.check(&identity_key(client_id, ip)).is_err() {
        return Err(OAuthError::rate_limited());
    }
    let proof = token_proof(o, headers)?;
    let (credential, profile) = o.authenticate(&snap, &auth, "/oauth/token").await?;
    // RFC 8693: the authenticated client acts on behalf of the subject token's.
    let delegation = match exchange {
        None => None,
        Some(subject_token) => Some(o.exchange(&snap, subject_token, profile).await?),
    };
    // Bound to whatever the request proved it holds: its DPoP key, the certificate of
    // its TLS connection (RFC 8705 §3), or both.
    let binding =
        Confirmation::new(proof.as_ref().map(|p| p.jkt.as_str()), presented.certificate.map(|c| c.thumbprint()));
    let issued = o
        .store
        .enforcement()
        .issue_access_token(
            &o.settings,
            credential,
            profile,
            &TokenAsk {
                scope: field("scope"),
                binding,
                authorization_details: field("authorization_details"),
                delegation,
                ..TokenAsk::default()
            },
        )
        .map_err(|e| match e {
            TokenRequestError::InvalidClient => OAuthError::invalid_client(),
            TokenRequestError::SenderConstraintRequired(SenderConstraint::Mtls) => OAuthError::new(
                StatusCode::BAD_REQUEST,
                Reason::SenderConstraintRequired,
                "this profile accepts only certificate-bound tokens: request the token over TLS with your client certificate (RFC 8705)",
            )
            .answered_as(Reason::InvalidRequest),
            TokenRequestError::SenderConstraintRequired(_) => OAuthError::new(
                StatusCode::BAD_REQUEST,
                Reason::SenderConstraintRequired,
                "this profile accepts only DPoP-bound tokens: send a DPoP proof with the token request (RFC 9449)",
            ),
            TokenRequestError::InvalidScope(why) => OAuthError::new(StatusCode::BAD_REQUEST, Reason::InvalidScope, why),
            TokenRequestError::InvalidAuthorizationDetails(why) => {
                OAuthError::new(StatusCode::BAD_REQUEST, Reason::InvalidAuthorizationDetails, why)
            }
            TokenRequestError::InvalidRequest(why) => OAuthError::invalid_request(&why),
            TokenRequestError::Internal => {
                OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, Reason::ServerError, "the token could not be issued")
            }
        })?;
    event.client_id = Some(AuditText::new(&issued.claims.client_id, cap::ID));
    event.profile_id = Some(AuditText::new(&issued.claims.profile, cap::ID));
    event.client_type = Some(profile.client_kind);
    event.credential_id = Some(AuditText::new(&issued.claims.cid, cap::ID));
    event.sender_key = issued.claims.cnf.as_ref().map(|cnf| AuditText::new(&cnf.label(), cap::ID));
    event.task_id = issued.claims.task().map(|t| AuditText::new(&t.task_id, cap::ID));
    event.subject_id = issued.claims.subject.as_ref().map(|s| AuditText::new(&s.client_id, cap::ID));
    event.actor_chain = issued.claims.actor_chain().map(|c| AuditText::new(&c, cap::ENDPOINT));
    if !o.limits.token_allowed(&issued.claims.client_id).await {
        // Counted only once the client proved itself, so nobody else can spend it.
        return Err(OAuthError::rate_limited());
    }
    // Remembered only now that the client authenticated: nobody else fills that memory.
    if let Some(proof) = &proof {
        if !o.proofs.first_use(proof).await {
            return Err(OAuthError::dpop(ProofError::Replayed));
        }
    }
    let mut body = json!({
        "access_token": issued.token,
        "token_type": if proof.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    });
    if issued.claims.subject.is_some() {
        body["issued_token_type"] = json!(ACCESS_TOKEN_TYPE);
    }
    if !issued.claims.authorization_details.is_empty() {
        // RFC 9396 §7: what was granted, as the client will see it enforced.
        body["authorization_details"] = json!(issued.claims.authorization_details);
    }
    let mut res = Json(body).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// The form of a revocation or introspection request, after client authentication.
async fn authenticated_form(
    o: &OAuthServer,
    presented: &Presented<'_>,
    body: &[u8],
    endpoint: &str,
    event: &mut RequestEvent,
) -> Result<(String, String), OAuthError> {
    let form = read_form(o, presented.peer, body)?;
    let auth = client_auth(presented.headers, &form, presented.certificate)?;
    event.attempted_client_id = Some(AuditText::new(auth.client_id(), cap::ID));
    let snap = o.store.enforcement().snapshot().current();
    let (credential, profile) = o.authenticate(&snap, &auth, endpoint).await?;
    event.client_id = Some(AuditText::new(&profile.client_id, cap::ID));
    event.profile_id = Some(AuditText::new(&profile.id, cap::ID));
    event.client_type = Some(profile.client_kind);
    event.credential_id = Some(AuditText::new(&credential.id, cap::ID));
    let token = form
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    Ok((profile.client_id.clone(), token))
}

/// The start of every OAuth request: its audit row reserved, then its body read within
/// the bound. A request refused here is answered (and its row written) at once.
async fn begin(
    o: &OAuthServer,
    peer: IpAddr,
    headers: &HeaderMap,
    path: &str,
    body: Body,
) -> Result<(PendingRow, Bytes), Response> {
    let started = Instant::now();
    if let Err(wait) = o.sources.admit(peer, RequestChannel::Oauth) {
        let mut res = OAuthError::rate_limited().into_response();
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Err(res);
    }
    let event = audit::event(RequestChannel::Oauth, o.store.now(), &axum::http::Method::POST, path, headers, peer);
    let Ok(mut row) = o.audit.reserve(event, started).await else {
        return Err(OAuthError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Reason::TemporarilyUnavailable,
            "the audit trail is full; retry",
        )
        .into_response());
    };
    let (read, bytes_in) = request_body::read(body, request_body::declared_length(headers), MAX_BODY_BYTES).await;
    row.event.bytes_in = i64::try_from(bytes_in).unwrap_or(i64::MAX);
    match read {
        Ok(body) => Ok((row, body)),
        Err(BodyError::TooLarge) => Err(end(
            o,
            peer,
            row,
            Err(OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Reason::InvalidRequest,
                "the request body is too large",
            )),
        )
        .await),
        Err(BodyError::Broken) => {
            Err(end(o, peer, row, Err(OAuthError::invalid_request("the request body was cut off"))).await)
        }
    }
}

/// Writes an OAuth request's row with its outcome and answers.
async fn end(o: &OAuthServer, peer: IpAddr, mut row: PendingRow, outcome: Result<Response, OAuthError>) -> Response {
    let response = match outcome {
        Ok(res) => {
            row.event.allowed();
            res
        }
        Err(e) => {
            o.sources.refused(peer, e.error);
            row.event.refused(e.error);
            e.into_response()
        }
    };
    if row.event.decision == Decision::Allowed {
        // The client id a request named is kept for refusals; an allowed request's
        // client is its authenticated one.
        row.event.attempted_client_id = None;
    }
    audit::answer(row, response).await
}

/// RFC 7009: the answer is 200 whether or not the token was valid (§2.2).
async fn revoke(
    State(o): State<OAuthServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    certificate: Option<Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (mut row, body) = match begin(&o, peer, &headers, "/oauth/revoke", body).await {
        Ok(started) => started,
        Err(answered) => return answered,
    };
    let presented = Presented { peer, headers: &headers, certificate: certificate.as_ref().map(|c| &c.0) };
    let result = match authenticated_form(&o, &presented, &body, "/oauth/revoke", &mut row.event).await {
        Err(e) => Err(e),
        Ok((client_id, token)) => match o.store.revoke_access_token_jwt(&o.settings, &client_id, &token).await {
            Ok(_) => {
                let mut res = StatusCode::OK.into_response();
                no_store(res.headers_mut());
                Ok(res)
            }
            Err(e) => {
                tracing::error!(error = %e, "token revocation failed");
                Err(OAuthError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Reason::ServerError,
                    "the token could not be revoked",
                ))
            }
        },
    };
    end(&o, peer, row, result).await
}

/// RFC 7662, for a client's own tokens: anything else, or anything invalid, is
/// `{"active": false}` without a reason.
async fn introspect(
    State(o): State<OAuthServer>,
    Extension(ClientIp(peer)): Extension<ClientIp>,
    certificate: Option<Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (mut row, body) = match begin(&o, peer, &headers, "/oauth/introspect", body).await {
        Ok(started) => started,
        Err(answered) => return answered,
    };
    let presented = Presented { peer, headers: &headers, certificate: certificate.as_ref().map(|c| &c.0) };
    let result = authenticated_form(&o, &presented, &body, "/oauth/introspect", &mut row.event).await.map(
        |(client_id, token)| {
            let body = match o.store.enforcement().active_token(&o.settings, &token) {
                Ok(c) if c.client_id == client_id => {
                    let mut body = json!({
                        "active": true,
                        "scope": c.scope,
                        "client_id": c.client_id,
                        "sub": c.sub,
                        "aud": c.aud,
                        "iss": c.iss,
                        "exp": c.exp,
                        "iat": c.iat,
                        "nbf": c.nbf,
                        "jti": c.jti,
                        "token_type": if c.dpop_jkt().is_some() { "DPoP" } else { "Bearer" },
                        "profile": c.profile,
                        "env": c.env,
                        "client_type": c.client_type,
                    });
                    if let Some(cnf) = &c.cnf {
                        body["cnf"] = json!(cnf);
                    }
                    // RFC 9396 §9.2: the task; RFC 8693 §4.1: who acts, for a delegated token.
                    if !c.authorization_details.is_empty() {
                        body["authorization_details"] = json!(c.authorization_details);
                    }
                    if c.subject.is_some() {
                        body["act"] = json!(c.act);
                    }
                    body
                }
                _ => json!({ "active": false }),
            };
            let mut res = Json(body).into_response();
            no_store(res.headers_mut());
            res
        },
    );
    end(&o, peer, row, result).await
}

async fn jwks(State(o): State<OAuthServer>) -> Response {
    let ring = o.store.enforcement().keys().current();
    let mut res = Json(json!({ "keys": ring.jwks })).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

async fn metadata(State(o): State<OAuthServer>) -> Json<serde_json::Value> {
    let issuer = &o.settings.issuer;
    let mut methods = AUTH_METHODS.to_vec();
    if o.certificates {
        methods.push(CERTIFICATE_AUTH);
    }
    if o.ca_certificates {
        methods.push(CA_CERTIFICATE_AUTH);
    }
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials", TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "response_types_supported": [],
        "scopes_supported": portcullis_domain::model::SCOPES,
        "dpop_signing_alg_values_supported": DPOP_ALGS,
        // RFC 8705 §3.3: a token requested over a connection with a client certificate
        // is bound to it.
        "tls_client_certificate_bound_access_tokens": o.certificates,
        // RFC 9396 §10: per-task tokens (enforcement/tasks.rs).
        "authorization_details_types_supported": [TASK_DETAIL_TYPE],
    }))
}
