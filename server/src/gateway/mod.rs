//! The enforcing gateway: `/gw/{product}/{*path}`.
//!
//! One pipeline for every client, agent or app: reserve the audit row → authenticate →
//! resolve client and profile → match the endpoint → authorize → rate limit → proxy →
//! write the row. Every step reads the in-memory policy snapshot; nothing here queries
//! the database. Every request, allowed or refused, leaves exactly one audit row, also
//! when its caller goes away mid-way (see `crate::audit`).

mod authenticate;
mod issuer_keys;
mod proxy;
mod ratelimit;
mod refusal;
mod task_uses;
pub mod upstream_tls;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Extension;
use axum::Router;
use portcullis_app::ssr::ClientIp;
use portcullis_domain::audit_event::{RequestEvent, CLIENT_CLOSED_STATUS};
use portcullis_domain::audit_text::{cap, AuditText};
use portcullis_domain::audit_writer::{AuditSink, Durability, PendingRow};
use portcullis_domain::enforcement::{EndpointEntry, Enforcement, ProductEntry, ProfileEntry, Snapshot, TokenSettings};
use portcullis_domain::model::{Reason, RequestChannel};
use portcullis_domain::routing::CanonicalPath;
use portcullis_domain::store::Store;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

use crate::audit::{self, AuditedBody};
use crate::body::BytesIn;
use crate::dpop::{Possession, Proofs};
use crate::sources::Sources;
use crate::tls::ClientCertificate;
pub use authenticate::{Caller, Held, Query};
pub use issuer_keys::IssuerKeyCache;
pub use refusal::Refusal;

/// The gateway's bounds, from the command line.
pub struct GatewayLimits {
    pub upstream_timeout: std::time::Duration,
    /// Requests per second for the whole gateway; 0 for none.
    pub global_rate_per_second: u32,
    /// With `--redis-url`: rate limits counted across every replica.
    pub shared_limits: Option<crate::shared_limits::SharedLimits>,
    /// Bytes of request body forwarded at most; more is refused with 413.
    pub max_body: u64,
    /// Roots and client certificates for https upstreams: the default and the named
    /// upstream TLS profiles products may choose.
    pub upstream_tls: upstream_tls::UpstreamTlsProfiles,
    /// Whether requests can come with a TLS client certificate (the listener asks for
    /// one, or a trusted proxy forwards it): the metadata then says certificate-bound
    /// tokens are supported.
    pub client_certificates: bool,
    /// Fetches of one trusted issuer's JWKS are at least this far apart.
    pub jwks_min_interval: std::time::Duration,
}

/// Cloned for every request (axum state), so everything sits behind one `Arc`.
#[derive(Clone)]
pub struct Gateway(Arc<Parts>);

pub struct Parts {
    store: Store,
    tokens: TokenSettings,
    /// The scheme and host people reach Portcullis at, told to upstreams in `Forwarded`.
    public: crate::client_ip::PublicOrigin,
    /// What decides: the snapshot, the key ring, the hasher (the store keeps it current).
    state: Enforcement,
    audit: AuditSink,
    limits: ratelimit::Limits,
    /// Addresses refused too often are turned away at the door (shared with `/mcp`).
    sources: Sources,
    /// The largest request body forwarded to an upstream.
    max_body: u64,
    /// The pooled clients to upstreams, one per upstream TLS profile.
    upstreams: proxy::Upstreams,
    /// DPoP proofs: checked, and used once across replicas.
    proofs: Proofs,
    client_certificates: bool,
    /// The calls each per-task token with a `max_uses` has made.
    task_uses: task_uses::TaskUses,
    /// Trusted issuers' keys, fetched and cached (federation).
    issuer_keys: issuer_keys::IssuerKeyCache,
}

impl std::ops::Deref for Gateway {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl Gateway {
    /// Trusted issuers' keys as the gateway caches them: the token endpoint checks a
    /// subject token from such an issuer with the same cache and the same fetch bound.
    pub fn issuer_keys(&self) -> &IssuerKeyCache {
        &self.issuer_keys
    }

    pub fn new(
        store: Store,
        tokens: TokenSettings,
        audit: AuditSink,
        sources: Sources,
        limits: GatewayLimits,
    ) -> Result<Self, upstream_tls::UpstreamTlsError> {
        let GatewayLimits {
            upstream_timeout,
            global_rate_per_second,
            shared_limits,
            max_body,
            upstream_tls,
            client_certificates,
            jwks_min_interval,
        } = limits;
        let upstreams = proxy::Upstreams::new(upstream_timeout, &upstream_tls)?;
        let issuer_keys = issuer_keys::IssuerKeyCache::new(
            upstream_tls.default.trusting(reqwest::Client::builder()),
            jwks_min_interval,
        )
        .map_err(|e| upstream_tls::UpstreamTlsError::Client {
            profile: "(issuer keys)".into(),
            reason: e.to_string(),
        })?;
        let state = store.enforcement().clone();
        let proofs = Proofs::new(state.clone(), shared_limits.clone(), &tokens.issuer);
        let task_uses = task_uses::TaskUses::new(shared_limits.clone());
        let limits = ratelimit::Limits::new(global_rate_per_second, shared_limits);
        let (proto, rest) = tokens.issuer.split_once("://").unwrap_or(("http", tokens.issuer.as_str()));
        let public = crate::client_ip::PublicOrigin::new(proto, rest.split('/').next().unwrap_or(""));
        let parts = Parts {
            store,
            tokens,
            public,
            state,
            audit,
            limits,
            sources,
            max_body,
            upstreams,
            proofs,
            client_certificates,
            task_uses,
            issuer_keys,
        };
        Ok(Self(Arc::new(parts)))
    }

    /// Whether requests can come with a TLS client certificate (RFC 8705).
    pub fn client_certificates(&self) -> bool {
        self.client_certificates
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The in-memory state every request is decided against.
    pub fn enforcement(&self) -> &Enforcement {
        &self.state
    }

    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// Charges one request to a profile's own rate limit, for work that is not a
    /// proxied call but costs every replica something (ending an MCP session is a row in
    /// the store and an entry in each replica's memory until the session would expire).
    pub async fn charge(&self, profile: &portcullis_domain::enforcement::ProfileEntry) -> Result<(), Refusal> {
        let charged = self.limits.check((&profile.id, profile.rate_per_minute, profile.burst), ("", None)).await;
        charged.map(|_| ()).map_err(|(scope, limit, retry_after_secs)| Refusal::RateLimited {
            scope,
            retry_after_secs,
            limit,
            reset_secs: retry_after_secs,
        })
    }

    /// Reserves a request's audit row (see `AuditSink::reserve`); without one the
    /// request is refused before anything else happens.
    pub async fn reserve(&self, event: RequestEvent, started: Instant) -> Result<PendingRow, Refusal> {
        self.audit.reserve(event, started).await.map_err(|_| Refusal::AuditUnavailable)
    }
}

pub fn router<S: Clone + Send + Sync + 'static>(gateway: Gateway) -> Router<S> {
    // Everything under /gw reaches `handle`, even `/gw/` or `/gw/accounts`, so that no
    // gateway request escapes the audit trail by missing a route.
    Router::new().route("/gw", any(handle)).route("/gw/{*rest}", any(handle)).with_state(gateway)
}

impl Caller<'_> {
    /// The one authorization decision, for `/gw` and for MCP discovery alike: a current
    /// grant for the product whose scopes, narrowed by the token's, cover the endpoint's;
    /// and, for a per-task token, an endpoint of its task.
    pub fn authorize(&self, product: &ProductEntry, endpoint: &EndpointEntry, now: i64) -> Result<(), Refusal> {
        let scope = endpoint.scope.as_str();
        let grant = self
            .profile
            .grants
            .get(&product.id)
            .filter(|g| g.expires_at.is_none_or(|t| now < t))
            .ok_or(Refusal::NotGranted)?;
        let token_allows = self.token.as_ref().is_none_or(|t| t.scope.split(' ').any(|s| s == scope));
        if !(grant.scopes.iter().any(|s| s == scope) && token_allows) {
            return Err(Refusal::InsufficientScope { required: scope.to_owned() });
        }
        // A delegated token: never broader than anyone it acts for or through.
        let party_allows = |p: &&ProfileEntry| {
            p.grants
                .get(&product.id)
                .is_some_and(|g| g.expires_at.is_none_or(|t| now < t) && g.scopes.iter().any(|s| s == scope))
        };
        if !self.parties.iter().all(party_allows) {
            return Err(Refusal::PartyNotGranted);
        }
        match self.token.as_ref().and_then(|t| t.task()) {
            Some(task) if !task.covers(&endpoint.id) => Err(Refusal::EndpointNotInTask),
            _ => Ok(()),
        }
    }
}

/// One request to enforce, from whichever route received it: `/gw` builds it from the
/// HTTP request as it came, `/mcp` from an `execute_endpoint` tool call.
pub struct Call {
    pub method: Method,
    pub product: String,
    /// The path below the product, as the caller wrote it (normalised here).
    pub path: String,
    pub query: Option<String>,
    /// The caller's headers: its credential, its identity claims and what may be
    /// forwarded (credentials and identity claims never are).
    pub headers: HeaderMap,
    pub body: Body,
    /// The caller's address, as `crate::client_ip` decided it.
    pub client: IpAddr,
    /// The profile the call must authenticate as, when the route already knows it (an
    /// MCP session is bound to one): anything else is refused, whatever the call carries.
    pub bound_profile: Option<String>,
    /// What a bound token's holder shows: the request's own DPoP proof at `/gw`, the one
    /// `/mcp` already checked for a tool call; the TLS client certificate.
    pub held: Held,
    /// The request's reserved audit row, with its channel, tool and caller address.
    pub row: PendingRow,
}

async fn handle(
    State(gw): State<Gateway>,
    Extension(ClientIp(client)): Extension<ClientIp>,
    certificate: Option<Extension<ClientCertificate>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    if let Err(retry_after_secs) = gw.sources.admit(client, RequestChannel::Rest) {
        return Refusal::TooManyRefusals { retry_after_secs }.into_response(&uuid::Uuid::now_v7().to_string());
    }
    // `/gw/{product}/{path}`: the product is the first segment, the rest is the path.
    let after_gw = uri.path().strip_prefix("/gw").unwrap_or("").trim_start_matches('/');
    let (product, path) = match after_gw.find('/') {
        Some(i) => (after_gw.get(..i).unwrap_or(""), after_gw.get(i..).unwrap_or("")),
        None => (after_gw, ""),
    };
    let mut event = audit::event(RequestChannel::Rest, gw.store.now(), &method, path, &headers, client);
    event.product = Some(AuditText::new(product, cap::ID));
    let request_id = event.request_id.clone();
    let row = match gw.reserve(event, started).await {
        Ok(row) => row,
        Err(refusal) => return refusal.into_response(&request_id),
    };
    let held = Held {
        dpop: Possession::Proof { method: method.clone(), uri: uri.clone() },
        certificate: certificate.map(|Extension(c)| c),
    };
    let call = Call {
        held,
        method,
        product: product.to_owned(),
        path: path.to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
        client,
        bound_profile: None,
        row,
    };
    let mut res = gw.execute(call).await.into_response();
    // An upstream answers on the portal's origin: whatever it sends, a browser must not
    // sniff it into something active or run it with the portal's privileges.
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    res
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// What the one enforcement path decided and, when it called the upstream, what came
/// back. Each route renders it its own way: `/gw` as the HTTP answer, `/mcp` as a tool
/// result. Either way the request's row is already the audit writer's (or, for an
/// answer still streaming, travels in its body).
pub enum Executed {
    /// Not forwarded, or forwarded and the upstream could not answer (timeout,
    /// unreachable, TLS): `refusal` says which, `response` is its problem document.
    Refused { refusal: Refusal, request_id: String, response: Response },
    /// The upstream answered.
    Answered(Answered),
}

/// An upstream's answer on its way to the caller.
pub struct Answered {
    pub request_id: String,
    /// The profile's rate limit, and what is left of it after this call.
    pub limit: u64,
    pub remaining: u64,
    /// The upstream's status, headers (ours added, its cookies removed) and body, which
    /// carries the request's row until the whole answer is out (or the caller is gone).
    pub response: Response,
}

impl Executed {
    pub fn into_response(self) -> Response {
        match self {
            Executed::Refused { response, .. } => response,
            Executed::Answered(answered) => answered.response,
        }
    }
}

/// What a call asks for.
struct Target<'c> {
    method: &'c Method,
    product: &'c str,
    path: &'c str,
    query: Option<&'c str>,
}

/// Who a call says it comes from, besides its credential.
struct Who<'c> {
    client: IpAddr,
    bound_profile: Option<&'c str>,
    held: &'c Held,
}

/// What an authorized call is forwarded as.
struct Forward {
    url: String,
    /// The product's upstream TLS profile, if it names one.
    upstream_tls: Option<String>,
    headers: HeaderMap,
    limit: u64,
    remaining: u64,
}

impl Gateway {
    /// The one enforcement path: authenticate, authorize, rate limit, proxy, audit. Every
    /// channel calls this; no other code decides whether a request reaches an upstream.
    ///
    /// The work runs in a task of its own, so a caller that hangs up cannot cut an
    /// upstream call half-way: the call completes, and its row says what the upstream
    /// answered and that the caller was gone (499).
    pub async fn execute(&self, call: Call) -> Executed {
        let request_id = call.row.event.request_id.clone();
        let (reply, answer) = oneshot::channel();
        tokio::spawn(self.clone().run(call, reply));
        answer.await.unwrap_or_else(|_| {
            tracing::error!(request.id = %request_id, "gateway task ended without an answer");
            let response = Refusal::Internal.into_response(&request_id);
            Executed::Refused { refusal: Refusal::Internal, request_id, response }
        })
    }

    /// Finishes the row of a refused call and sends the refusal.
    async fn refuse(row: PendingRow, refusal: Refusal, reply: oneshot::Sender<Executed>) {
        let request_id = row.event.request_id.clone();
        let response = audit::answer(row, refusal.clone().into_response(&request_id)).await;
        let _ = reply.send(Executed::Refused { refusal, request_id, response });
    }

    async fn run(self, call: Call, reply: oneshot::Sender<Executed>) {
        let Call { method, product, path, query, headers, body, client, bound_profile, held, mut row } = call;
        let request_id = row.event.request_id.clone();
        let now = row.event.occurred_at;
        let snap = self.state.snapshot().current();
        let target = Target { method: &method, product: &product, path: &path, query: query.as_deref() };
        let who = Who { client, bound_profile: bound_profile.as_deref(), held: &held };
        let decided = self.decide(&snap, &mut row.event, target, &headers, who, now);
        let forward = match decided.await {
            Ok(f) => f,
            Err(refusal) => {
                self.sources.refused(client, refusal.reason());
                row.event.refused(refusal.reason());
                return Self::refuse(row, refusal, reply).await;
            }
        };
        if reply.is_closed() {
            // The caller left before anything was forwarded: nothing runs on its behalf.
            row.event.status = CLIENT_CLOSED_STATUS;
            row.event.refused(Reason::ClientClosedRequest);
            let _ = row.finish();
            return;
        }
        if crate::body::declared_length(&headers).is_some_and(|n| n > self.max_body) {
            self.sources.refused(client, Refusal::PayloadTooLarge.reason());
            row.event.refused(Refusal::PayloadTooLarge.reason());
            return Self::refuse(row, Refusal::PayloadTooLarge, reply).await;
        }
        row.event.allowed();
        let bytes_in = BytesIn::default();
        let body = crate::body::counted(body, bytes_in.clone(), self.max_body);
        let forwarded = Instant::now();
        row.event.forwarded_after_us = Some(micros(forwarded.duration_since(row.started)));
        // A product whose upstream TLS profile this server lacks fails like an upstream
        // it cannot reach: authorized, not sent, the reason said and recorded.
        let upstream = match self.upstreams.pick(forward.upstream_tls.as_deref()) {
            Ok(http) => proxy::forward(http, method, forward.url, forward.headers, body).await,
            Err(refusal) => Err(refusal),
        };
        row.event.upstream_us = Some(micros(forwarded.elapsed()));
        let mut res = match upstream {
            Ok(res) => res,
            Err(refusal) => {
                // A body cut off at the limit breaks the upstream exchange: say why.
                let refusal = if bytes_in.over_limit() { Refusal::PayloadTooLarge } else { refusal };
                // Authorized and sent: the row stays `allowed`, with why it failed. Logged
                // too, with the ids that find its row and its trace.
                tracing::warn!(
                    request.id = %request_id,
                    trace.id = row.event.trace_id.as_ref().map_or("", |t| t.as_str()),
                    product = %product,
                    reason = %refusal.reason(),
                    "upstream call failed"
                );
                row.event.reason = refusal.reason();
                row.event.bytes_in = bytes_in.get();
                return Self::refuse(row, refusal, reply).await;
            }
        };
        let h = res.headers_mut();
        h.insert(HeaderName::from_static("ratelimit-limit"), HeaderValue::from(forward.limit));
        h.insert(HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(forward.remaining));
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert(HeaderName::from_static("x-request-id"), v);
        }
        // The upstream shares the portal's origin through us: it must not set cookies there.
        h.remove(header::SET_COOKIE);
        let status = res.status().as_u16();
        row.event.status = status;
        row.event.upstream_status = Some(status);
        let res = match row.durability() {
            // The answer leaves once its row is committed: written at the head, with the
            // length the upstream declared.
            Durability::Committed => {
                row.event.bytes_in = bytes_in.get();
                audit::answer(row, res).await
            }
            Durability::Queued => {
                let (parts, body) = res.into_parts();
                let declared = crate::body::declared_length(&parts.headers);
                Response::from_parts(parts, Body::new(AuditedBody::new(body, declared, row, bytes_in)))
            }
        };
        // If the caller is gone, dropping the answer writes its row as 499.
        let answered = Answered { request_id, limit: forward.limit, remaining: forward.remaining, response: res };
        let _ = reply.send(Executed::Answered(answered));
    }

    /// Everything decided before the upstream is called, in order; the row learns each
    /// fact as it is established.
    async fn decide(
        &self,
        snap: &Snapshot,
        event: &mut RequestEvent,
        target: Target<'_>,
        headers: &HeaderMap,
        who: Who<'_>,
        now: i64,
    ) -> Result<Forward, Refusal> {
        let Target { method, product: product_slug, path: raw_path, query } = target;
        let Who { client, bound_profile, held } = who;
        let query = Query::parse(query);
        // Looked up first for its `?api_key=` policy; an unknown product is refused only
        // after authentication, so a bad credential is a 401 whatever the path. Only REST
        // callers may use it: an MCP call's query comes from tool arguments, and a key
        // there would let one session act as another profile.
        let product = snap.products.get(product_slug);
        let key_in_query = product.is_some_and(|p| p.api_key_in_query) && event.channel == RequestChannel::Rest;
        let caller = self.authenticate(snap, headers, &query, key_in_query, held, now).await.inspect_err(|_| {
            let named = self.named_client(snap, headers, &query, key_in_query);
            event.attempted_client_id = named.map(|c| AuditText::new(c, cap::ID));
        })?;
        let profile = caller.profile;
        caller.stamp(event);
        if bound_profile.is_some_and(|p| p != profile.id) {
            return Err(Refusal::IdentityMismatch);
        }

        let product = product.ok_or(Refusal::UnknownProduct)?;
        let path = CanonicalPath::parse(raw_path).map_err(|_| Refusal::UnknownEndpoint)?;
        let upstream_path = path.to_upstream();
        event.path = AuditText::new(&upstream_path, cap::PATH);
        let endpoint = product.match_endpoint(method.as_str(), &path).ok_or(Refusal::UnknownEndpoint)?;
        event.endpoint = Some(AuditText::new(&endpoint.path_template, cap::ENDPOINT));

        caller.authorize(product, endpoint, now)?;

        let (limit, remaining) = self
            .limits
            .check((&profile.id, profile.rate_per_minute, profile.burst), (&product.id, product.rate_per_minute))
            .await
            .map_err(|(scope, limit, retry_after_secs)| Refusal::RateLimited {
                scope,
                retry_after_secs,
                limit,
                reset_secs: retry_after_secs,
            })?;
        // The last check: a task token's call is spent only by a call that goes out.
        if let Some(token) = caller.token.as_deref() {
            if !self.task_uses.spend(token, now / portcullis_domain::time::SECOND).await {
                return Err(Refusal::TaskUsesExhausted);
            }
        }

        let mut url = format!("{}{upstream_path}", product.upstream(profile.environment));
        if let Some(q) = query.upstream() {
            url.push('?');
            url.push_str(&q);
        }
        let value = |s: &str| HeaderValue::from_str(s).ok();
        let identity = [
            ("x-portcullis-client-id", value(&profile.client_id)),
            ("x-portcullis-profile-id", value(&profile.id)),
            ("x-portcullis-environment", value(profile.environment.as_str())),
            ("x-portcullis-client-type", value(profile.client_kind.as_str())),
        ];
        let origin = self.public.forwarded_headers(client);
        let trace = crate::trace::Trace::recorded(headers, event.trace_id.as_ref().map_or("", |t| t.as_str()));
        let set = identity.into_iter().chain(origin).chain(trace.upstream_headers());
        let headers = proxy::upstream_headers(headers, &endpoint.headers, &event.request_id, set);
        Ok(Forward { url, upstream_tls: product.upstream_tls.clone(), headers, limit, remaining })
    }
}
