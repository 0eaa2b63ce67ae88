//! private_key_jwt (RFC 7523) against the real server: an agent whose developer
//! registered its public key gets tokens with signed assertions and no secret; every
//! forged assertion is refused with `invalid_client` and its row; an assertion is used
//! once, also across two real server processes sharing Redis; keys rotate with overlap
//! and revoke like any credential.

use crate::dpop::bank_agent;
use crate::dpop_key::{DpopKey, ProofParts};
use crate::helpers::{Agent, Server, TestApp};
use crate::management::Script;
use reqwest::StatusCode;
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub(crate) fn now() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// What a client library puts in an assertion for `client_id`, to `aud`.
fn assertion_parts(key: &DpopKey, client_id: &str, aud: &str) -> ProofParts {
    let now = now();
    ProofParts {
        header: json!({ "alg": key.alg(), "typ": "JWT" }),
        claims: json!({
            "iss": client_id, "sub": client_id, "aud": aud, "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now, "exp": now + 60,
        }),
    }
}

/// A client credentials request authenticated by `assertion`, with `extra` fields.
async fn token_request(base: &str, assertion: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    let res = reqwest::Client::new().post(format!("{base}/oauth/token")).form(&form).send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn metadata(app: &TestApp) -> Value {
    let url = format!("{}/.well-known/oauth-authorization-server", app.base);
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn issuer(app: &TestApp) -> String {
    metadata(app).await["issuer"].as_str().unwrap().to_owned()
}

/// The agent's developer registers `key` for its sandbox profile over the API.
async fn register(app: &TestApp, a: &Agent, key: &Value, replace: bool) -> (StatusCode, Value) {
    let owner = Script::new(app, &a.dev.personal_token(None).await);
    owner
        .post(&format!("/profiles/{}/public-keys", a.reg.secret.profile_id), json!({ "jwk": key, "replace": replace }))
        .await
}

async fn gw(app: &TestApp, token: &str) -> StatusCode {
    reqwest::Client::new().get(format!("{}/gw/bank/fast", app.base)).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test]
async fn an_agent_with_a_registered_key_gets_tokens_without_a_secret_until_the_key_is_revoked() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let iss = issuer(&app).await;
    let meta = metadata(&app).await;
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256", "Ed25519", "EdDSA", "PS256", "RS256"])
    );

    let key = DpopKey::ed25519();
    let (status, registered) = register(&app, &a, &key.jwk(), false).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["thumbprint"], key.thumbprint(), "the RFC 7638 thumbprint, as the developer computes it");
    assert_eq!(registered["key_type"], "OKP Ed25519");
    let credential = registered["credential_id"].as_str().unwrap().to_owned();

    // The secret is revoked: the key alone authenticates the agent from now on.
    let owner = Script::new(&app, &a.dev.personal_token(None).await);
    let (status, _) = owner.post(&format!("/credentials/{}/revoke", a.reg.secret.credential_id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = token_request(&app.base, &key.sign(&assertion_parts(&key, &a.reg.client_id, &iss)), &[]).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(gw(&app, &token).await, 200);
    assert_eq!(upstream.hits(), 1);
    // The token endpoint's own URL is a good audience too, and `client_id` may come along.
    let to_endpoint = key.sign(&assertion_parts(&key, &a.reg.client_id, &format!("{iss}/oauth/token")));
    let (status, body) = token_request(&app.base, &to_endpoint, &[("client_id", &a.reg.client_id)]).await;
    assert_eq!(status, 200, "{body}");

    // Introspection authenticates the same way.
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/introspect", app.base))
        .form(&[
            ("token", token.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &key.sign(&assertion_parts(&key, &a.reg.client_id, &iss))),
        ])
        .send()
        .await
        .unwrap();
    let introspected: Value = res.json().await.unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");

    let rows = app
        .wait_for_audit(
            &format!("channel = 'oauth' AND path = '/oauth/token' AND client_id = '{}'", a.reg.client_id),
            2,
        )
        .await;
    assert!(rows.iter().all(|r| r["credential_id"] == credential.as_str() && r["decision"] == "allowed"), "{rows:?}");

    // Revoking the key ends its tokens on the next request, and its assertions.
    let (status, _) = owner.post(&format!("/credentials/{credential}/revoke"), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app, &token).await, StatusCode::UNAUTHORIZED);
    let (status, body) = token_request(&app.base, &key.sign(&assertion_parts(&key, &a.reg.client_id, &iss)), &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn every_forged_assertion_is_refused_as_invalid_client_with_its_row() {
    // Twenty requests name the client from one address: more than its token burst.
    let (app, upstream, a) = bank_agent(TestApp::spawn_configured(|args| args.token_rate_limit = 6_000).await).await;
    let iss = issuer(&app).await;
    let key = DpopKey::p256();
    assert_eq!(register(&app, &a, &key.jwk(), false).await.0, StatusCode::CREATED);
    // Another developer's agent, with its own registered key.
    let other = crate::helpers::agent_for(&app, "other", &upstream.base, &[("GET", "/fast")]).await;
    let other_key = DpopKey::p256();
    assert_eq!(register(&app, &other, &other_key.jwk(), false).await.0, StatusCode::CREATED);
    let client = a.reg.client_id.as_str();
    let good = || assertion_parts(&key, client, &iss);
    let with = |name: &str, value: Value| {
        let mut p = good();
        p.claims[name] = value;
        key.sign(&p)
    };
    let header = |value: Value| {
        let mut p = good();
        p.header = value;
        key.sign(&p)
    };
    let replayed = key.sign(&good());
    let (status, body) = token_request(&app.base, &replayed, &[]).await;
    assert_eq!(status, 200, "{body}");
    let now = now();
    let hmac = {
        use hmac::Mac;
        let p = good();
        let input = format!(
            "{}.{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                json!({ "alg": "HS256" }).to_string()
            ),
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p.claims.to_string())
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.jwk().to_string().as_bytes()).unwrap();
        mac.update(input.as_bytes());
        let sig =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, mac.finalize().into_bytes());
        format!("{input}.{sig}")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("replayed", replayed, "already used"),
        ("another audience", with("aud", json!("https://elsewhere.example")), "aud must be"),
        ("another issuer", with("iss", json!(other.reg.client_id)), "iss and sub"),
        ("expired", with("exp", json!(now - 120)), "expired"),
        ("living an hour", with("exp", json!(now + 3600)), "at most 300 s"),
        (
            "no jti",
            {
                let mut p = good();
                p.claims.as_object_mut().unwrap().remove("jti");
                key.sign(&p)
            },
            "needs iss",
        ),
        ("alg none", header(json!({ "alg": "none" })), "signed with one of"),
        ("HMAC keyed with the public key", hmac, "signed with one of"),
        ("a DPoP proof", header(json!({ "alg": "ES256", "typ": "dpop+jwt" })), "another kind of JWT"),
        ("a key of its own", header(json!({ "alg": "ES256", "jwk": key.jwk() })), "signed JWT we can read"),
        (
            "an unregistered key",
            {
                let k = DpopKey::p256();
                k.sign(&assertion_parts(&k, client, &iss))
            },
            "authentication failed",
        ),
        ("another client's key", other_key.sign(&assertion_parts(&other_key, client, &iss)), "authentication failed"),
        ("not a JWT", "not-a-jwt".into(), "needs iss"),
    ];
    for (what, assertion, says) in &cases {
        let (status, body) = token_request(&app.base, assertion, &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{what}: {body}"
        );
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(says), "{what}: {description}");
    }
    // What the request itself gets wrong.
    let assertion = key.sign(&good());
    let (status, body) = token_request(&app.base, &assertion, &[("client_id", &other.reg.client_id)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    let (status, body) = token_request(&app.base, &assertion, &[("client_secret", &a.reg.secret.secret)]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().contains(ASSERTION_TYPE));
    // The one good assertion still works, once: none of the refusals above used it up.
    assert_eq!(token_request(&app.base, &assertion, &[]).await.0, 200);

    // Every case names the client but "not a JWT", which names none.
    let rows = app
        .wait_for_audit(
            &format!("channel = 'oauth' AND attempted_client_id = '{client}' AND decision = 'refused'"),
            cases.len() - 1,
        )
        .await;
    assert_eq!(rows.len(), cases.len() - 1, "{rows:?}");
    let reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "client_assertion_replayed").count(), 1, "{reasons:?}");
    assert!(reasons.iter().all(|r| *r == "invalid_client" || *r == "client_assertion_replayed"), "{reasons:?}");
    assert_eq!(
        app.store.enforcement().assertions_remembered(),
        2,
        "only the two assertions that verified are remembered, none of the forgeries"
    );
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn keys_rotate_with_overlap_and_bad_or_foreign_keys_are_refused_at_registration() {
    let (app, _upstream, a) = bank_agent(TestApp::spawn().await).await;
    let iss = issuer(&app).await;
    let (old, new) = (DpopKey::p256(), DpopKey::ed25519());
    assert_eq!(register(&app, &a, &old.jwk(), false).await.0, StatusCode::CREATED);
    let (status, body) = register(&app, &a, &json!({ "keys": [new.jwk()] }), true).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["replaced"], 2, "the secret and the old key are in their grace period: {body}");
    // During the overlap both keys and the secret work.
    for key in [&old, &new] {
        let (status, body) =
            token_request(&app.base, &key.sign(&assertion_parts(key, &a.reg.client_id, &iss)), &[]).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = register(&app, &a, &old.jwk(), false).await;
    assert_eq!(status, StatusCode::CONFLICT, "a key is registered once");

    let mut private = DpopKey::p256().jwk();
    private["d"] = json!("c2VjcmV0");
    let (status, body) = register(&app, &a, &private, false).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("private"), "{body}");
    let (status, _) = register(&app, &a, &json!({ "kty": "oct", "k": "c2VjcmV0" }), false).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // At most three live keys without replacing.
    assert_eq!(register(&app, &a, &DpopKey::p256().jwk(), false).await.0, StatusCode::CREATED);
    let (status, body) = register(&app, &a, &DpopKey::p256().jwk(), false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Another developer cannot add a key to this agent.
    let stranger = app.developer("stranger").await;
    let script = Script::new(&app, &stranger.personal_token(None).await);
    let (status, _) = script
        .post(&format!("/profiles/{}/public-keys", a.reg.secret.profile_id), json!({ "jwk": DpopKey::p256().jwk() }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let events = app.wait_for_audit("action = 'credential.issued'", 1).await;
    assert!(!events.is_empty());
}

/// Two real server processes sharing Redis: an assertion accepted by one is refused by
/// the other. Without Redis the second would accept it, which shows the test can tell.
#[tokio::test]
async fn an_assertion_used_on_one_replica_is_refused_on_the_other() {
    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("skipped: TEST_REDIS_URL is not set; the shared one-use check needs a real Redis");
        return;
    };
    let (mut app, _upstream, a) = bank_agent(TestApp::spawn().await).await;
    let key = DpopKey::p256();
    assert_eq!(register(&app, &a, &key.jwk(), false).await.0, StatusCode::CREATED);
    app.shut_down().await;
    let public = "https://api.portcullis.test";
    for (flags, replay_refused) in
        [(vec!["--public-url", public], false), (vec!["--public-url", public, "--redis-url", redis.as_str()], true)]
    {
        let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
        let assertion = key.sign(&assertion_parts(&key, &a.reg.client_id, public));
        let (status, body) = token_request(&first.base, &assertion, &[]).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = token_request(&second.base, &assertion, &[]).await;
        if replay_refused {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
        } else {
            assert_eq!(status, 200, "without Redis each replica remembers only its own assertions: {body}");
        }
        first.kill();
        second.kill();
    }
}

/// One assertion sent fifty times at once, to one server and then, with Redis, to two
/// real processes: exactly one request gets a token, every other is a replay.
#[tokio::test]
async fn an_assertion_raced_by_fifty_requests_gets_exactly_one_token() {
    let (mut app, _upstream, a) =
        bank_agent(TestApp::spawn_configured(|args| args.token_rate_limit = 60_000).await).await;
    let key = DpopKey::ed25519();
    assert_eq!(register(&app, &a, &key.jwk(), false).await.0, StatusCode::CREATED);
    let race = |bases: Vec<String>, assertion: String| async move {
        let sends = (0..50).map(|i| {
            let (base, assertion) = (bases[i % bases.len()].clone(), assertion.clone());
            async move { token_request(&base, &assertion, &[]).await }
        });
        let answers = futures_util::future::join_all(sends).await;
        let won = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        let replayed = answers
            .iter()
            .filter(|(s, b)| {
                *s == StatusCode::UNAUTHORIZED
                    && b["error_description"].as_str().is_some_and(|d| d.contains("already used"))
            })
            .count();
        (won, replayed)
    };
    let iss = issuer(&app).await;
    let (won, replayed) = race(vec![app.base.clone()], key.sign(&assertion_parts(&key, &a.reg.client_id, &iss))).await;
    assert_eq!((won, replayed), (1, 49), "one server");

    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("skipped the two-replica half: TEST_REDIS_URL is not set");
        return;
    };
    app.shut_down().await;
    let public = "https://api.portcullis.test";
    let flags = ["--public-url", public, "--redis-url", redis.as_str(), "--token-rate-limit", "60000"];
    let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
    let assertion = key.sign(&assertion_parts(&key, &a.reg.client_id, public));
    let (won, replayed) = race(vec![first.base.clone(), second.base.clone()], assertion).await;
    assert_eq!((won, replayed), (1, 49), "two replicas sharing Redis");
    first.kill();
    second.kill();
}

/// The portal's form works without JavaScript: a plain post registers the key and sends
/// the browser back, where the credentials list it; a bad key comes back as the error.
#[tokio::test]
async fn a_key_registers_with_a_plain_form_post_and_a_bad_one_comes_back_as_its_error() {
    let (app, _upstream, a) = bank_agent(TestApp::spawn().await).await;
    let key = DpopKey::p256();
    let jwk = key.jwk().to_string();
    let res = a.dev.form_post("register_public_key", &[("profile_id", &a.reg.secret.profile_id), ("jwk", &jwk)]).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let (status, html) = a.dev.page(&format!("/clients/{}", a.reg.client_id)).await;
    assert_eq!(status, 200);
    assert!(html.contains(&key.thumbprint()), "the credentials list the key by its thumbprint");

    let mut private = DpopKey::p256().jwk();
    private["d"] = json!("c2VjcmV0");
    let form = [("profile_id", a.reg.secret.profile_id.as_str()), ("jwk", &private.to_string()), ("replace", "true")];
    let res = a.dev.form_post("register_public_key", &form).await;
    assert!(res.status().is_redirection());
    assert!(res.headers()["location"].to_str().unwrap().contains("__err="), "the error travels back");
    let snap = app.store.enforcement().snapshot().current();
    assert_eq!(snap.client_keys.get(&a.reg.client_id).map(Vec::len), Some(1), "only the good key");
}

/// A Redis that accepts connections and never answers, the worst outage: every token
/// request is still served (a one-use check waits at most a second for Redis, then this
/// replica's memory decides alone for a second), and a replay on the same replica is
/// still refused. Needs no Redis of its own.
#[tokio::test]
async fn with_a_redis_that_never_answers_assertions_still_work_and_replays_are_still_refused() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (mut app, _upstream, a) = bank_agent(TestApp::spawn().await).await;
    let key = DpopKey::ed25519();
    assert_eq!(register(&app, &a, &key.jwk(), false).await.0, StatusCode::CREATED);
    app.shut_down().await;
    let public = "https://api.portcullis.test";
    let redis = format!("redis://{silent_addr}");
    let server = Server::start(&app, &["--public-url", public, "--redis-url", redis.as_str()]).await;
    let mut slowest = std::time::Duration::ZERO;
    let mut last = String::new();
    for _ in 0..6 {
        last = key.sign(&assertion_parts(&key, &a.reg.client_id, public));
        let started = std::time::Instant::now();
        let (status, body) = token_request(&server.base, &last, &[]).await;
        assert_eq!(status, 200, "{body}");
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < std::time::Duration::from_millis(1800), "slowest token request {slowest:?}");
    let (status, body) = token_request(&server.base, &last, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
    eprintln!("silent Redis: slowest of 6 token requests {slowest:?}");
    server.kill();
}
