//! Federation against the real server: an identity provider started by the test (https,
//! its certificate from a test CA the server trusts as it trusts upstreams) publishes a
//! JWKS; an admin registers it and links an identity at it to an agent's profile. Its
//! tokens then act as that agent at `/gw` and `/mcp`, and every way to abuse that is
//! tried: forged, misdirected, expired and unlinked tokens, made-up key ids by the
//! hundred, an issuer that hangs, two admins linking one identity at once, a link
//! revoked, an issuer disabled. A token of it is also a subject token another agent may
//! exchange (RFC 8693), and what was exchanged ends with the link.

use crate::dpop::bank_agent;
use crate::dpop_key::{DpopKey, ProofParts};
use crate::helpers::{stateless_result, Agent, Server, TestApp, TestUpstream};
use crate::management::Script;
use crate::mcp_manage::Manage;
use crate::private_key_jwt::now;
use crate::upstream_tls::{serve_https, write, TestCa};
use portcullis_domain::model::Role;
use rcgen::ExtendedKeyUsagePurpose::ServerAuth;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const AUDIENCE: &str = "api://portcullis";
const ISSUER: &str = "https://login.example.test/tenant-1";

/// An identity provider's JWKS endpoint over https: what it publishes can change, it
/// counts its fetches, and it can be made to hang.
struct IdentityProvider {
    jwks_uri: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
    /// Its OpenID Provider metadata, at `{issuer()}/.well-known/openid-configuration`.
    metadata: Arc<Mutex<Value>>,
    discoveries: Arc<AtomicUsize>,
    base: String,
}

impl IdentityProvider {
    async fn start(ca: &TestCa, keys: &[(&DpopKey, &str)]) -> Self {
        let jwks = Arc::new(Mutex::new(Self::document(keys)));
        let (fetches, delay_ms) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicU64::new(0)));
        let (served, counted, delay) = (jwks.clone(), fetches.clone(), delay_ms.clone());
        let (metadata, discoveries) = (Arc::new(Mutex::new(Value::Null)), Arc::new(AtomicUsize::new(0)));
        let (described, asked) = (metadata.clone(), discoveries.clone());
        let router = axum::Router::new()
            .route(
                "/keys",
                axum::routing::get(move || async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay.load(Ordering::SeqCst))).await;
                    axum::Json(served.lock().unwrap().clone())
                }),
            )
            .route(
                "/tenant-1/.well-known/openid-configuration",
                axum::routing::get(move || async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    axum::Json(described.lock().unwrap().clone())
                }),
            );
        let port = serve_https(ca.issue("localhost", ServerAuth), None, router).await;
        let base = format!("https://localhost:{port}");
        let idp = Self { jwks_uri: format!("{base}/keys"), jwks, fetches, delay_ms, metadata, discoveries, base };
        idp.describe(json!({ "issuer": idp.issuer(), "jwks_uri": idp.jwks_uri }));
        idp
    }

    /// Its own issuer URL, as its metadata says it.
    fn issuer(&self) -> String {
        format!("{}/tenant-1", self.base)
    }

    fn describe(&self, metadata: Value) {
        *self.metadata.lock().unwrap() = metadata;
    }

    fn document(keys: &[(&DpopKey, &str)]) -> Value {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(k, kid)| {
                let mut jwk = k.jwk();
                jwk["kid"] = json!(kid);
                jwk["use"] = json!("sig");
                jwk
            })
            .collect();
        json!({ "keys": keys })
    }

    fn publish(&self, keys: &[(&DpopKey, &str)]) {
        *self.jwks.lock().unwrap() = Self::document(keys);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A token the identity provider issues, signed by `key` as `kid`, with `claims` over
/// the usual ones (a `null` removes one).
fn token(key: &DpopKey, kid: &str, claims: Value) -> String {
    let now = now();
    let mut all = json!({
        "iss": ISSUER, "sub": "svc-principal-1", "azp": "agent-app-1", "aud": AUDIENCE,
        "iat": now, "nbf": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string(),
    });
    for (k, v) in claims.as_object().unwrap() {
        match v {
            Value::Null => drop(all.as_object_mut().unwrap().remove(k)),
            v => all[k] = v.clone(),
        }
    }
    key.sign(&ProofParts { header: json!({ "alg": key.alg(), "kid": kid, "typ": "JWT" }), claims: all })
}

/// A server that trusts the test CA for outgoing https (`--upstream-ca-file`), fetches
/// an issuer's keys at most every `interval_secs`, and a bank agent on it.
async fn federated_app(ca: &TestCa, interval_secs: u64) -> (TestApp, TestUpstream, Agent) {
    let dir = crate::helpers::tempdir::TempDir::new();
    let ca_file = write(&dir, "ca.pem", &ca.pem());
    let app = TestApp::spawn_configured(|args| {
        args.upstream_ca_file = Some(ca_file);
        args.issuer_jwks_min_interval_secs = interval_secs;
        // The flood below is refused request by request, not turned away at the door.
        args.source_refusal_limit = 0;
        // Exchanges are tried a dozen ways in a row by one agent.
        args.token_rate_limit = 6_000;
    })
    .await;
    bank_agent(app).await
}

async fn admin_script(app: &TestApp) -> Script {
    Script::new(app, &app.user_with_role(Role::Admin).await.personal_token(None).await)
}

/// Registers the identity provider, naming callers by `azp`.
async fn register(app: &TestApp, admin: &Script, idp: &IdentityProvider) -> String {
    let body = json!({
        "issuer": ISSUER, "jwks_uri": idp.jwks_uri, "audiences": [AUDIENCE], "algorithms": ["ES256", "EdDSA"],
        "subject_claim": "azp",
    });
    let (status, issuer) = admin.post("/issuers", body).await;
    assert_eq!(status, StatusCode::CREATED, "{issuer}");
    let _ = app;
    issuer["id"].as_str().unwrap().to_owned()
}

async fn link(admin: &Script, a: &Agent, issuer_id: &str, subject: &str) -> (StatusCode, Value) {
    let path = format!("/profiles/{}/federated-identities", a.reg.secret.profile_id);
    admin.post(&path, json!({ "issuer_id": issuer_id, "subject": subject })).await
}

/// A server that trusts a test identity provider (keys fetched at most every
/// `interval_secs`), whose identity `agent-app-1` is linked to a bank agent.
struct Linked {
    app: TestApp,
    upstream: TestUpstream,
    a: Agent,
    /// The provider's signing key, published as `k1`.
    key: DpopKey,
    idp: IdentityProvider,
    admin: Script,
    _ca: TestCa,
}

async fn linked(interval_secs: u64) -> Linked {
    let ca = TestCa::new("Identity provider test CA");
    let (app, upstream, a) = federated_app(&ca, interval_secs).await;
    let key = DpopKey::p256();
    let idp = IdentityProvider::start(&ca, &[(&key, "k1")]).await;
    let admin = admin_script(&app).await;
    let issuer_id = register(&app, &admin, &idp).await;
    assert_eq!(link(&admin, &a, &issuer_id, "agent-app-1").await.0, StatusCode::CREATED);
    Linked { app, upstream, a, key, idp, admin, _ca: ca }
}

/// A `/gw` call with `Authorization: Bearer <token>`: status and the problem's `code`.
async fn gw(app: &TestApp, token: &str) -> (StatusCode, String) {
    gw_at(app, "bank", token).await
}

async fn gw_at(app: &TestApp, product: &str, token: &str) -> (StatusCode, String) {
    gw_product(&app.base, product, token).await
}

/// A `/gw/{product}/fast` call on the server at `base`: status and the problem's `code`.
async fn gw_product(base: &str, product: &str, token: &str) -> (StatusCode, String) {
    let url = format!("{base}/gw/{product}/fast");
    let res = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn a_trusted_issuers_token_acts_as_the_linked_agent_until_the_link_is_revoked_or_the_issuer_disabled() {
    let ca = TestCa::new("Identity provider test CA");
    let (app, upstream, a) = federated_app(&ca, 30).await;
    let key = DpopKey::p256();
    let idp = IdentityProvider::start(&ca, &[(&key, "k1")]).await;
    let admin = admin_script(&app).await;
    let issuer_id = register(&app, &admin, &idp).await;
    let t = token(&key, "k1", json!({}));

    // Good, but nobody linked the identity it names.
    assert_eq!(gw(&app, &t).await, (StatusCode::UNAUTHORIZED, "identity_not_linked".into()));
    assert_eq!(idp.fetches(), 1, "the first token fetched the keys");

    // Only an admin links; the agent's own developer cannot vouch for an identity.
    let owner = Script::new(&app, &a.dev.personal_token(None).await);
    let path = format!("/profiles/{}/federated-identities", a.reg.secret.profile_id);
    let (status, _) = owner.post(&path, json!({ "issuer_id": issuer_id, "subject": "agent-app-1" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, linked) = link(&admin, &a, &issuer_id, "agent-app-1").await;
    assert_eq!(status, StatusCode::CREATED, "{linked}");
    assert_eq!(linked["subject_claim"], "azp");
    let credential = linked["credential_id"].as_str().unwrap().to_owned();

    let before = upstream.hits();
    assert_eq!(gw(&app, &t).await, (StatusCode::OK, String::new()));
    assert_eq!(upstream.hits(), before + 1);
    assert_eq!(idp.fetches(), 1, "cached keys: no fetch per request");
    let rows = app.wait_for_audit(&format!("credential_id = '{credential}' AND decision = 'allowed'"), 1).await;
    assert_eq!(rows[0]["client_id"], json!(a.reg.client_id), "the linked agent's record");
    assert_eq!(rows[0]["profile_id"], json!(a.reg.secret.profile_id));

    // The same token discovers and calls through /mcp, the same enforcement.
    let bearer = format!("Bearer {t}");
    let listed = stateless_result(&app, ("authorization", &bearer), "list_endpoints", json!({})).await;
    let fast = listed["endpoints"].as_array().unwrap().iter().find(|e| e["path"] == "/fast").unwrap()["id"].clone();
    let called =
        stateless_result(&app, ("authorization", &bearer), "execute_endpoint", json!({ "endpoint_id": fast })).await;
    assert_eq!(called["status"], 200, "{called}");

    // The link is a credential of the agent: listed, and its developer may revoke it.
    let (_, detail) = owner.get(&format!("/clients/{}", a.reg.client_id)).await;
    let listed = detail.to_string();
    assert!(listed.contains(&credential) && listed.contains("federated"), "{listed}");
    let (status, _) = owner.post(&format!("/credentials/{credential}/revoke"), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app, &t).await, (StatusCode::UNAUTHORIZED, "identity_not_linked".into()), "the next request");

    // Linked again, then the issuer disabled: every token of it refused at once.
    assert_eq!(link(&admin, &a, &issuer_id, "agent-app-1").await.0, StatusCode::CREATED);
    assert_eq!(gw(&app, &t).await.0, StatusCode::OK);
    let (status, disabled) = admin.post(&format!("/issuers/{issuer_id}/disable"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["linked"], 1);
    assert_eq!(gw(&app, &t).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    assert_eq!(link(&admin, &a, &issuer_id, "agent-app-2").await.0, StatusCode::CONFLICT, "a disabled issuer");
    let rows = app.wait_for_audit("reason = 'identity_not_linked'", 2).await;
    assert!(rows.iter().all(|r| r["client_id"].is_null()), "an unlinked identity is nobody's record");
}

#[tokio::test]
async fn forged_misdirected_and_stale_tokens_of_a_trusted_issuer_are_refused_with_their_reason() {
    let Linked { app, upstream, key, idp, .. } = linked(30).await;
    let stranger = DpopKey::p256();
    assert_eq!(gw(&app, &token(&key, "k1", json!({}))).await.0, StatusCode::OK);

    let jwk = key.jwk();
    let hs256 = {
        // "alg confusion": HMAC keyed with bytes of the published public key.
        let h = jsonwebtoken::Header {
            kid: Some("k1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        };
        let claims = json!({ "iss": ISSUER, "azp": "agent-app-1", "aud": AUDIENCE, "exp": now() + 600 });
        jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(jwk["x"].as_str().unwrap().as_bytes()),
        )
        .unwrap()
    };
    let unsigned = {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = json!({ "iss": ISSUER, "azp": "agent-app-1", "aud": AUDIENCE, "exp": now() + 600 });
        format!("{}.{}.", b64(json!({ "alg": "none", "kid": "k1" })), b64(claims))
    };
    let own_key = key.sign(&ProofParts {
        header: json!({ "alg": "ES256", "kid": "k1", "jwk": stranger.jwk() }),
        claims: json!({ "iss": ISSUER, "azp": "agent-app-1", "aud": AUDIENCE, "exp": now() + 600 }),
    });
    let cases: Vec<(&str, String)> = vec![
        ("another key under the issuer's kid", token(&stranger, "k1", json!({}))),
        ("a kid the issuer does not publish", token(&stranger, "k-forged", json!({}))),
        ("another audience", token(&key, "k1", json!({ "aud": "api://someone-else" }))),
        ("no audience", token(&key, "k1", json!({ "aud": null }))),
        ("expired past the leeway", token(&key, "k1", json!({ "exp": now() - 120 }))),
        ("not yet valid", token(&key, "k1", json!({ "nbf": now() + 600 }))),
        ("no expiry", token(&key, "k1", json!({ "exp": null }))),
        ("no azp", token(&key, "k1", json!({ "azp": null }))),
        ("azp not a string", token(&key, "k1", json!({ "azp": ["agent-app-1"] }))),
        ("HS256 keyed with the public key", hs256),
        ("alg none", unsigned),
        ("a key in its own header", own_key),
        ("an issuer nobody trusts", token(&key, "k1", json!({ "iss": "https://evil.example.test" }))),
        (
            "a DPoP proof's type",
            key.sign(&ProofParts {
                header: json!({ "alg": "ES256", "kid": "k1", "typ": "dpop+jwt" }),
                claims: json!({ "iss": ISSUER, "azp": "agent-app-1", "aud": AUDIENCE, "exp": now() + 600 }),
            }),
        ),
    ];
    let before = upstream.hits();
    for (why, t) in &cases {
        assert_eq!(gw(&app, t).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()), "{why}");
    }
    assert_eq!(upstream.hits(), before, "nothing reached the upstream");
    let rows = app.wait_for_audit("reason = 'invalid_token' AND channel = 'rest'", cases.len()).await;
    assert_eq!(rows.len(), cases.len(), "one row each");
    assert!(rows.iter().all(|r| r["client_id"].is_null()), "none is the agent's record");
    assert!(idp.fetches() <= 2, "the made-up kid cost one fetch at most: {}", idp.fetches());

    // Verified once and remembered by the gateway, a token still ends when it says
    // (after the 60 s leeway for another organisation's clock).
    let short = token(&key, "k1", json!({ "exp": now() - 60 + 2 }));
    assert_eq!(gw(&app, &short).await.0, StatusCode::OK);
    assert_eq!(gw(&app, &short).await.0, StatusCode::OK, "from the cache");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(gw(&app, &short).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()), "expired since");
}

#[tokio::test]
async fn made_up_key_ids_cost_the_issuer_one_fetch_per_interval_and_a_rotation_is_picked_up() {
    let Linked { app, key, idp, .. } = linked(2).await;
    let good = token(&key, "k1", json!({}));
    assert_eq!(gw(&app, &good).await.0, StatusCode::OK);
    assert_eq!(idp.fetches(), 1);

    // Waves of tokens with made-up key ids, 10 at a time, for three seconds.
    let started = Instant::now();
    let forger = DpopKey::p256();
    let http = reqwest::Client::new();
    let mut refused = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let calls: Vec<_> = (0..10)
            .map(|i| {
                let t = token(&forger, &format!("made-up-{i}-{}", uuid::Uuid::new_v4()), json!({}));
                let request = http.get(format!("{}/gw/bank/fast", app.base)).bearer_auth(t);
                tokio::spawn(async move { request.send().await.unwrap().status() })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap(), StatusCode::UNAUTHORIZED);
            refused += 1;
        }
    }
    let fetched = idp.fetches() - 1;
    let bound = 1 + usize::try_from(started.elapsed().as_secs()).unwrap() / 2 + 1;
    assert!(refused >= 100, "the flood was a flood: {refused}");
    assert!(fetched <= bound, "{refused} made-up kids made {fetched} fetches; at most {bound} allowed");
    assert!(fetched >= 1, "a kid the cache lacks is worth a fetch: keys rotate");

    // The issuer rotates: k2 replaces k1. A token with k2 is accepted once the interval
    // allows a fetch; k1 is then refused.
    let next = DpopKey::ed25519();
    idp.publish(&[(&next, "k2")]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(gw(&app, &token(&next, "k2", json!({}))).await.0, StatusCode::OK, "the rotated key, fetched");
    assert_eq!(gw(&app, &good).await.0, StatusCode::UNAUTHORIZED, "the retired key");

    // The issuer hangs: a token with a key not cached waits for one bounded fetch and is
    // refused; tokens with cached keys keep passing meanwhile, never waiting on it.
    idp.delay_ms.store(30_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let app_base = app.base.clone();
    let stuck = tokio::spawn(async move {
        let started = Instant::now();
        let t = token(&DpopKey::p256(), "k3", json!({}));
        let res = reqwest::Client::new().get(format!("{app_base}/gw/bank/fast")).bearer_auth(t).send().await.unwrap();
        (res.status(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cached = token(&next, "k2", json!({}));
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(gw(&app, &cached).await.0, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1), "a cached key never waits for the hanging issuer");
    }
    let (status, took) = stuck.await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(took < Duration::from_secs(8), "the fetch gave up: {took:?}");
}

#[tokio::test]
async fn an_issuer_bound_token_needs_its_proof_and_satisfies_a_dpop_profile() {
    let Linked { app, a, key, admin, .. } = linked(30).await;
    let (status, _) = admin
        .put(
            &format!("/profiles/{}/sender-constraint", a.reg.secret.profile_id),
            json!({ "sender_constraint": "dpop" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let agent_key = DpopKey::p256();
    let bound = token(&key, "k1", json!({ "cnf": { "jkt": agent_key.thumbprint() } }));
    let url = format!("{}/gw/bank/fast", app.base);
    let send = |scheme: &str, proof: Option<String>| {
        let mut req = reqwest::Client::new().get(&url).header("authorization", format!("{scheme} {bound}"));
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null)["code"].as_str().unwrap_or("").to_owned())
        }
    };
    assert_eq!(send("Bearer", None).await, (StatusCode::UNAUTHORIZED, "sender_constraint_required".into()));
    let stranger_proof = DpopKey::p256().proof("GET", &url, Some(&bound), None);
    assert_eq!(send("DPoP", Some(stranger_proof)).await.0, StatusCode::UNAUTHORIZED, "another key's proof");
    let proof = agent_key.proof("GET", &url, Some(&bound), None);
    assert_eq!(send("DPoP", Some(proof.clone())).await, (StatusCode::OK, String::new()));
    assert_eq!(send("DPoP", Some(proof)).await.0, StatusCode::UNAUTHORIZED, "a proof used twice");
    // An unbound token of the same issuer does not satisfy the profile.
    assert_eq!(
        gw(&app, &token(&key, "k1", json!({}))).await,
        (StatusCode::UNAUTHORIZED, "sender_constraint_required".into())
    );
    let rows = app
        .wait_for_audit(&format!("sender_key = 'dpop:{}' AND decision = 'allowed'", agent_key.thumbprint()), 1)
        .await;
    assert_eq!(rows[0]["client_id"], json!(a.reg.client_id));
}

#[tokio::test]
async fn a_refused_call_with_a_linked_identitys_token_is_an_attempt_naming_its_client_and_a_forgery_names_nobody() {
    let Linked { app, upstream, a, key, admin, .. } = linked(30).await;
    let t = token(&key, "k1", json!({}));
    assert_eq!(gw(&app, &t).await.0, StatusCode::OK);

    let path = format!("/clients/{}/suspended", a.reg.client_id);
    assert_eq!(admin.put(&path, json!({ "suspended": true, "reason": "incident 7" })).await.0, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app, &t).await, (StatusCode::FORBIDDEN, "client_suspended".into()));
    // Someone else's key, the same identity claimed: it names nobody.
    let forged = token(&DpopKey::p256(), "k1", json!({}));
    assert_eq!(gw(&app, &forged).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    assert_eq!(upstream.hits(), 1);

    let named = format!("attempted_client_id = '{}' AND client_id IS NULL", a.reg.client_id);
    let rows = app.wait_for_audit(&named, 1).await;
    assert_eq!(rows.len(), 1, "the suspended call, and not the forgery: {rows:?}");
    assert_eq!(rows[0]["reason"], "client_suspended");
    let forgery = app.wait_for_audit("reason = 'invalid_token' AND channel = 'rest'", 1).await;
    assert!(forgery.iter().all(|r| r["attempted_client_id"].is_null() && r["client_id"].is_null()), "{forgery:?}");
}

#[tokio::test]
async fn keys_are_discovered_from_the_issuers_own_metadata_and_nothing_else() {
    let ca = TestCa::new("Identity provider test CA");
    let (app, upstream, a) = federated_app(&ca, 30).await;
    let key = DpopKey::p256();
    let idp = IdentityProvider::start(&ca, &[(&key, "k1")]).await;
    let admin = admin_script(&app).await;
    let issuer = idp.issuer();
    let body =
        |iss: &str| json!({ "issuer": iss, "audiences": [AUDIENCE], "algorithms": ["ES256"], "subject_claim": "azp" });

    // Only an admin's registration makes the server fetch anything.
    let owner = Script::new(&app, &a.dev.personal_token(None).await);
    assert_eq!(owner.post("/issuers", body(&issuer)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(idp.discoveries.load(Ordering::SeqCst), 0);

    // Metadata that is another issuer's (a mix-up), names no keys or plain-http keys, or
    // is not there: refused with what was wrong, and nothing registered.
    let cases = [
        (json!({ "issuer": ISSUER, "jwks_uri": idp.jwks_uri }), issuer.clone(), "another issuer"),
        (json!({ "issuer": issuer }), issuer.clone(), "no jwks_uri"),
        (json!({ "issuer": issuer, "jwks_uri": "http://localhost/keys" }), issuer.clone(), "https URL"),
        (json!({ "issuer": issuer, "jwks_uri": idp.jwks_uri }), format!("{issuer}-elsewhere"), "404"),
        // A document too large to be metadata is not read to its end.
        (json!({ "issuer": issuer, "jwks_uri": idp.jwks_uri, "pad": "x".repeat(70_000) }), issuer.clone(), "64 KB"),
    ];
    for (metadata, registered_as, says) in cases {
        idp.describe(metadata);
        let (status, problem) = admin.post("/issuers", body(&registered_as)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem.to_string().contains(says), "{says}: {problem}");
    }
    let (_, listed) = admin.get("/issuers").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // The issuer's own metadata: its keys' URL is registered, and its tokens are good.
    idp.describe(json!({ "issuer": issuer, "jwks_uri": idp.jwks_uri }));
    let (status, registered) = admin.post("/issuers", body(&issuer)).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["jwks_uri"], json!(idp.jwks_uri), "the admin sees what was found");
    let issuer_id = registered["id"].as_str().unwrap().to_owned();
    assert_eq!(link(&admin, &a, &issuer_id, "agent-app-1").await.0, StatusCode::CREATED);
    assert_eq!(gw(&app, &token(&key, "k1", json!({ "iss": issuer }))).await, (StatusCode::OK, String::new()));
    assert_eq!(upstream.hits(), 1);
}

/// `actor` exchanges a trusted issuer's `subject` token (RFC 8693): status, the error
/// code (empty when issued) and the issued token or the refusal's description.
async fn exchanged(app: &TestApp, actor: &Agent, subject: &str) -> (StatusCode, String, String) {
    let (status, body) = crate::token_exchange::exchange(&app.base, actor, subject, &[]).await;
    let text = |k: &str| body[k].as_str().unwrap_or("").to_owned();
    let said = if status.is_success() { text("access_token") } else { text("error_description") };
    (status, text("error"), said)
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn an_issuers_token_is_exchanged_for_the_agent_it_names_and_what_was_exchanged_ends_with_the_link() {
    let ca = TestCa::new("Identity provider test CA");
    let (app, upstream, subject) = federated_app(&ca, 30).await;
    let actor = crate::helpers::agent(&app, &["bank"]).await;
    let key = DpopKey::p256();
    let idp = IdentityProvider::start(&ca, &[(&key, "k1")]).await;
    let admin = admin_script(&app).await;
    let issuer_id = register(&app, &admin, &idp).await;
    let t = token(&key, "k1", json!({}));

    // Good, but the identity it names acts for nobody here yet.
    let (status, error, why) = exchanged(&app, &actor, &t).await;
    assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, "invalid_grant"), "{why}");
    assert!(why.contains("not linked"), "{why}");

    let (_, linked) = link(&admin, &subject, &issuer_id, "agent-app-1").await;
    let credential = linked["credential_id"].as_str().unwrap().to_owned();
    let (status, _, delegated) = exchanged(&app, &actor, &t).await;
    assert_eq!(status, StatusCode::OK, "{delegated}");
    let claims = claims_of(&delegated);
    assert_eq!(claims["sub"], json!(subject.reg.client_id), "on behalf of the linked agent");
    assert_eq!(claims["client_id"], json!(actor.reg.client_id), "held by the actor");
    assert_eq!(claims["act"], json!({ "sub": actor.reg.client_id }));
    assert_eq!(claims["subject"]["cid"], json!(credential), "through the link");
    assert_eq!(claims["scope"], "read", "within both agents' grants");
    assert!(claims["exp"].as_i64().unwrap() <= claims_of(&t)["exp"].as_i64().unwrap(), "no longer than the token");

    let before = upstream.hits();
    assert_eq!(gw(&app, &delegated).await, (StatusCode::OK, String::new()));
    assert_eq!(upstream.hits(), before + 1);
    let rows = app.wait_for_audit(&format!("channel = 'rest' AND subject_id = '{}'", subject.reg.client_id), 1).await;
    assert_eq!(rows[0]["client_id"], json!(actor.reg.client_id), "the actor's traffic");
    assert_eq!(rows[0]["actor_chain"], json!(actor.reg.client_id));

    // The linked agent's owner withdraws consent (may_act): the exchanged token stops,
    // and no new one is made; consent given again, the exchange works again.
    let owner = Script::new(&app, &subject.dev.personal_token(None).await);
    let may_act = format!("/profiles/{}/may-act", subject.reg.secret.profile_id);
    assert_eq!(owner.put(&may_act, json!({ "actors": [] })).await.0, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app, &delegated).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    let (status, _, why) = exchanged(&app, &actor, &t).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
    assert!(why.contains("has not allowed"), "{why}");
    assert_eq!(owner.put(&may_act, json!({ "actors": [actor.reg.client_id] })).await.0, StatusCode::NO_CONTENT);
    let (status, _, delegated) = exchanged(&app, &actor, &t).await;
    assert_eq!(status, StatusCode::OK, "{delegated}");

    // Every way to stretch it is refused with its reason, and none reaches the upstream.
    assert_eq!(link(&admin, &actor, &issuer_id, "agent-app-2").await.0, StatusCode::CREATED);
    let stranger = DpopKey::p256();
    let cases = [
        ("the actor's own identity", token(&key, "k1", json!({ "azp": "agent-app-2" })), "own"),
        ("another key under the issuer's kid", token(&stranger, "k1", json!({})), "signature"),
        ("another audience", token(&key, "k1", json!({ "aud": "api://someone-else" })), "audience"),
        ("expired past the leeway", token(&key, "k1", json!({ "exp": now() - 120 })), "expired"),
        ("bound to a key", token(&key, "k1", json!({ "cnf": { "jkt": stranger.thumbprint() } })), "sender-constrained"),
        ("an identity nobody linked", token(&key, "k1", json!({ "azp": "agent-app-9" })), "not linked"),
    ];
    for (case, subject_token, says) in &cases {
        let (status, error, why) = exchanged(&app, &actor, subject_token).await;
        assert_eq!((status, error.as_str()), (StatusCode::BAD_REQUEST, "invalid_grant"), "{case}: {why}");
        assert!(why.contains(says), "{case}: {why}");
    }
    let refused = format!("reason = 'invalid_grant' AND attempted_client_id = '{}'", actor.reg.client_id);
    assert!(app.wait_for_audit(&refused, cases.len() + 1).await.len() > cases.len(), "one row each");
    assert_eq!(upstream.hits(), before + 1);

    // The subject's developer revokes the link: the exchanged token ends on its next
    // request, and the issuer's token is exchanged no more.
    let (status, _) = owner.post(&format!("/credentials/{credential}/revoke"), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app, &delegated).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    assert_eq!(exchanged(&app, &actor, &t).await.0, StatusCode::BAD_REQUEST);

    // Linked again and exchanged again; then the issuer disabled ends that one too.
    assert_eq!(link(&admin, &subject, &issuer_id, "agent-app-1").await.0, StatusCode::CREATED);
    let (status, _, delegated) = exchanged(&app, &actor, &t).await;
    assert_eq!(status, StatusCode::OK, "{delegated}");
    assert_eq!(gw(&app, &delegated).await.0, StatusCode::OK);
    let (status, _) = admin.post(&format!("/issuers/{issuer_id}/disable"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gw(&app, &delegated).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    assert_eq!(upstream.hits(), before + 2);
}

#[tokio::test]
async fn registrations_and_links_are_refused_with_what_to_change_and_one_identity_means_one_client() {
    let ca = TestCa::new("Identity provider test CA");
    let (app, upstream, a) = federated_app(&ca, 30).await;
    let key = DpopKey::p256();
    let idp = IdentityProvider::start(&ca, &[(&key, "k1")]).await;
    let admin = admin_script(&app).await;
    let good = json!({ "issuer": ISSUER, "jwks_uri": idp.jwks_uri, "audiences": [AUDIENCE], "algorithms": ["ES256"] });
    let with = |patch: Value| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        b
    };
    let own_issuer = crate::helpers::get_json(&format!("{}/.well-known/oauth-authorization-server", app.base)).await
        ["issuer"]
        .clone();
    for (why, body) in [
        ("plain http keys", with(json!({ "jwks_uri": idp.jwks_uri.replace("https", "http") }))),
        ("HS256", with(json!({ "algorithms": ["HS256"] }))),
        ("no algorithm", with(json!({ "algorithms": [] }))),
        ("no audience", with(json!({ "audiences": [] }))),
        ("both a URL and keys", with(json!({ "jwks": IdentityProvider::document(&[(&key, "k1")]).to_string() }))),
        (
            "a private key pasted",
            with(
                json!({ "jwks_uri": null, "jwks": json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0" }] }).to_string() }),
            ),
        ),
        ("`iss` as the subject claim", with(json!({ "subject_claim": "iss" }))),
        ("this server's own issuer", with(json!({ "issuer": own_issuer }))),
    ] {
        let (status, problem) = admin.post("/issuers", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{why} says what to change");
    }
    let developer = Script::new(&app, &a.dev.personal_token(None).await);
    assert_eq!(developer.post("/issuers", good.clone()).await.0, StatusCode::FORBIDDEN);
    let security = Script::new(&app, &app.user_with_role(Role::Security).await.personal_token(None).await);
    assert_eq!(security.post("/issuers", good.clone()).await.0, StatusCode::FORBIDDEN);

    // Pasted keys work as well as fetched ones, with no fetch.
    let pasted = json!({
        "issuer": ISSUER, "jwks": IdentityProvider::document(&[(&key, "k1")]).to_string(),
        "audiences": [AUDIENCE], "algorithms": ["ES256"], "subject_claim": "azp",
    });
    let (status, issuer) = admin.post("/issuers", pasted).await;
    assert_eq!(status, StatusCode::CREATED, "{issuer}");
    assert_eq!(issuer["static_keys"].as_array().unwrap().len(), 1);
    assert_eq!(admin.post("/issuers", good.clone()).await.0, StatusCode::CONFLICT, "the same `iss` twice");
    let (status, listed) = security.get("/issuers").await;
    assert_eq!((status, listed.as_array().unwrap().len()), (StatusCode::OK, 1), "the security team reads them");
    let issuer_id = issuer["id"].as_str().unwrap().to_owned();

    // The Management MCP takes the same decisions: the same refusals, the same list.
    let admin_mcp = Manage::new(&app, &app.user_with_role(Role::Admin).await.personal_token(None).await);
    let (is_error, refused) = admin_mcp.tool("register_issuer", with(json!({ "algorithms": ["HS256"] }))).await;
    assert!(is_error && refused["code"] == "invalid_request", "{refused}");
    let (is_error, refused) = admin_mcp.tool("register_issuer", with(json!({ "issuer": own_issuer }))).await;
    assert!(is_error && refused["code"] == "invalid_request", "{refused}");
    assert_eq!(admin_mcp.ok("list_issuers", json!({})).await["issuers"][0]["id"], json!(issuer_id));

    // Two admins link one identity to two agents at once: exactly one wins.
    let other = crate::helpers::agent_for(&app, "bank-2", &upstream.base, &[("GET", "/fast")]).await;
    let second_admin = admin_script(&app).await;
    let (first, second) = tokio::join!(
        link(&admin, &a, &issuer_id, "agent-app-1"),
        link(&second_admin, &other, &issuer_id, "agent-app-1")
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{first:?} {second:?}");
    for (why, subject) in [("empty", ""), ("too long", &"s".repeat(256)[..]), ("a control character", "agent\u{0}")] {
        assert_eq!(link(&admin, &a, &issuer_id, subject).await.0, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
    }
    assert_eq!(link(&admin, &a, "is_nope", "x").await.0, StatusCode::UNPROCESSABLE_ENTITY, "an unknown issuer");
    assert_eq!(idp.fetches(), 0, "pasted keys are never fetched");
    // The token acts as whichever agent won, with that agent's grants only.
    let (won, lost) = if first.0 == StatusCode::CREATED { ("bank", "bank-2") } else { ("bank-2", "bank") };
    let t = token(&key, "k1", json!({}));
    assert_eq!(gw_at(&app, won, &t).await.0, StatusCode::OK);
    assert_eq!(gw_at(&app, lost, &t).await, (StatusCode::FORBIDDEN, "not_granted".into()));
}

/// Two real server processes on one store, each with its own key cache: an issuer's
/// token works on both (one fetch each, then none per request), and a link revoked
/// through one is refused by the other within the policy's propagation bound.
#[tokio::test]
async fn a_link_revoked_on_one_replica_ends_its_tokens_and_what_was_exchanged_for_them_on_the_other() {
    let ca = TestCa::new("Identity provider test CA");
    let (mut app, _upstream, a) = federated_app(&ca, 30).await;
    let key = DpopKey::p256();
    let idp = IdentityProvider::start(&ca, &[(&key, "k1")]).await;
    let admin_session = app.user_with_role(Role::Admin).await;
    let personal = admin_session.personal_token(None).await;
    let admin = Script::new(&app, &personal);
    let issuer_id = register(&app, &admin, &idp).await;
    let (status, linked) = link(&admin, &a, &issuer_id, "agent-app-1").await;
    assert_eq!(status, StatusCode::CREATED, "{linked}");
    // Another agent will act on behalf of the linked one (token exchange).
    let actor = crate::helpers::agent(&app, &["bank"]).await;
    let ca_file = write_ca(&app, &ca);
    app.shut_down().await;
    // One public URL, as behind one load balancer: a token of ours is good at either.
    let flags = [
        "--upstream-ca-file",
        ca_file.to_str().unwrap(),
        "--source-refusal-limit",
        "0",
        "--public-url",
        "http://gateway.test",
    ];
    let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);

    let t = token(&key, "k1", json!({}));
    for replica in [&first, &second, &first, &second] {
        assert_eq!(gw_on(&replica.base, &t).await, (StatusCode::OK, String::new()));
    }
    assert_eq!(idp.fetches(), 2, "one fetch per replica, none per request");
    // Exchanged on one replica, used on the other.
    let (status, body) = crate::token_exchange::exchange(&first.base, &actor, &t, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let delegated = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(gw_on(&second.base, &delegated).await, (StatusCode::OK, String::new()));

    let credential = linked["credential_id"].as_str().unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/credentials/{credential}/revoke", first.base))
        .bearer_auth(&personal)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(gw_on(&first.base, &t).await.1, "identity_not_linked", "the replica that revoked");
    let revoked = Instant::now();
    loop {
        let (status, code) = gw_on(&second.base, &t).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(code, "identity_not_linked");
            break;
        }
        assert!(revoked.elapsed() < Duration::from_millis(1500), "the second replica still accepts it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("federated token refused on the other replica {:?} after the revocation", revoked.elapsed());
    // What was exchanged for it ended there too (the same policy snapshot decided).
    assert_eq!(gw_on(&second.base, &delegated).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    first.kill();
    second.kill();
}

/// The test CA's certificate in the app's data dir, for servers started as processes.
fn write_ca(app: &TestApp, ca: &TestCa) -> std::path::PathBuf {
    let path = app.data_dir().join("identity-provider-ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    path
}

async fn gw_on(base: &str, token: &str) -> (StatusCode, String) {
    gw_product(base, "bank", token).await
}
