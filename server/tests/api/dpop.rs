//! DPoP (RFC 9449) against the real server: a bound token works only with proofs of its
//! key, at `/gw` and at `/mcp`; every forged proof is refused for its own reason and
//! leaves its row; a proof is used once, also across two real server processes sharing
//! Redis.

use crate::dpop_key::DpopKey;
use crate::helpers::{agent_for, Agent, Server, TestApp, TestUpstream};
use crate::management::Script;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

/// A client credentials request as `a` to the token endpoint at `url`, with `proof` in
/// its `DPoP` header when given.
async fn token_request(url: &str, a: &Agent, proof: Option<String>) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(url).basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret));
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    req.form(&[("grant_type", "client_credentials")]).send().await.unwrap()
}

/// The token endpoint, as a DPoP client drives it: a first request is told to use a
/// nonce, the second (with it) gets a bound token. Returns the token and the last nonce.
async fn dpop_token(base: &str, key: &DpopKey, a: &Agent) -> (String, String) {
    let url = format!("{base}/oauth/token");
    let send = |proof: String| token_request(&url, a, Some(proof));
    let first = send(key.proof("POST", &url, None, None)).await;
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce", "{body}");
    let second = send(key.proof("POST", &url, None, Some(&nonce))).await;
    let nonce = second.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), nonce)
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// A server, an upstream the test counts hits on, and an agent granted its `GET /fast`
/// as product `bank`.
pub(crate) async fn bank_agent(app: TestApp) -> (TestApp, TestUpstream, Agent) {
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    (app, upstream, a)
}

/// A `/gw` call with `Authorization: <scheme> <token>` and the given `DPoP` headers.
async fn call(url: &str, scheme: &str, token: &str, proofs: &[&str]) -> (StatusCode, HeaderMap, Value) {
    let mut req = reqwest::Client::new().get(url).header("authorization", format!("{scheme} {token}"));
    for p in proofs {
        req = req.header("dpop", *p);
    }
    let res = req.send().await.unwrap();
    let (s, h) = (res.status(), res.headers().clone());
    (s, h, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_bound_token_works_only_with_proofs_of_its_key_at_gw_and_mcp() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let key = DpopKey::p256();
    let (token, _) = dpop_token(&app.base, &key, &a).await;
    assert_eq!(claims_of(&token)["cnf"]["jkt"], key.thumbprint(), "bound to the proof's key (RFC 7638 thumbprint)");

    let url = format!("{}/gw/bank/fast", app.base);
    let proof = key.proof("GET", &url, Some(&token), None);
    let (status, _, body) = call(&url, "DPoP", &token, &[&proof]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.hits(), 1);

    // The same token without its key: as a bearer token, with the proof used already,
    // with another key's proof, with none.
    let (status, h, body) = call(&url, "Bearer", &token, &[]).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("sender_constraint_required")));
    let challenge = h["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("DPoP ") && challenge.contains(r#"algs="ES256 Ed25519 EdDSA""#), "{challenge}");
    let (status, h, body) = call(&url, "DPoP", &token, &[&proof]).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("dpop_proof_replayed")));
    assert!(h["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_dpop_proof""#));
    let thief = DpopKey::p256();
    let (_, _, body) = call(&url, "DPoP", &token, &[&thief.proof("GET", &url, Some(&token), None)]).await;
    assert_eq!(body["code"], "invalid_dpop_proof");
    assert!(
        body["detail"].as_str().unwrap().contains("not signed with the key the access token is bound to"),
        "{body}"
    );
    let (_, _, body) = call(&url, "DPoP", &token, &[]).await;
    assert_eq!(body["code"], "invalid_dpop_proof");
    assert_eq!(upstream.hits(), 1, "nothing but the proven call reached the upstream");

    // A bearer token is not turned into a bound one by a proof.
    let body: Value = token_request(&format!("{}/oauth/token", app.base), &a, None).await.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let plain = body["access_token"].as_str().unwrap();
    assert!(claims_of(plain).get("cnf").is_none());
    let (_, _, body) = call(&url, "DPoP", plain, &[&key.proof("GET", &url, Some(plain), None)]).await;
    assert_eq!(body["code"], "invalid_dpop_proof", "an unbound token has no key to prove");
    assert_eq!(call(&url, "Bearer", plain, &[]).await.0, 200, "and stays a bearer token");

    // `/mcp`: each HTTP request carries its own proof, for POST /mcp; the tool call it
    // makes goes through the gateway on that proof.
    let mcp = format!("{}/mcp", app.base);
    let endpoint = app.store.enforcement().snapshot().current().products["bank"].endpoints[0].id.clone();
    let tool_call = |proof: String| {
        reqwest::Client::new()
            .post(&mcp)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "execute_endpoint")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "execute_endpoint", "arguments": {"endpoint_id": endpoint},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}}))
            .send()
    };
    let res = tool_call(key.proof("POST", &mcp, Some(&token), None)).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"]["structuredContent"]["status"], 200, "{body}");
    assert_eq!(upstream.hits(), 3);
    let res = tool_call(key.proof("POST", &url, Some(&token), None)).await.unwrap();
    assert_eq!(res.status(), 401, "a proof made for /gw is not one for /mcp");
    assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("invalid_dpop_proof"));
    assert_eq!(upstream.hits(), 3);

    // The rows of the proven calls name the key; the bearer call's names none.
    let jkt = format!("dpop:{}", key.thumbprint());
    let allowed = app.wait_for_audit(&format!("client_id = '{}' AND decision = 'allowed'", a.reg.client_id), 3).await;
    let keys: Vec<(&str, Option<&str>)> =
        allowed.iter().map(|r| (r["channel"].as_str().unwrap(), r["sender_key"].as_str())).collect();
    assert!(keys.contains(&("oauth", Some(jkt.as_str()))), "{keys:?}");
    assert!(keys.contains(&("rest", Some(jkt.as_str()))), "{keys:?}");
    assert!(keys.contains(&("mcp", Some(jkt.as_str()))), "{keys:?}");
    assert!(keys.contains(&("rest", None)), "the bearer token's call: {keys:?}");

    // Introspection says what the token is bound to.
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/introspect", app.base))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["active"].as_bool(), body["token_type"].as_str()), (Some(true), Some("DPoP")));
    assert_eq!(body["cnf"]["jkt"], key.thumbprint());

    // Every refusal left its row, under the client it named.
    let rows = app
        .wait_for_audit(
            &format!(
                "attempted_client_id = '{}' AND decision = 'refused' AND channel IN ('rest', 'mcp')",
                a.reg.client_id
            ),
            6,
        )
        .await;
    let mut reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "dpop_proof_replayed",
            "invalid_dpop_proof",
            "invalid_dpop_proof",
            "invalid_dpop_proof",
            "invalid_dpop_proof",
            "sender_constraint_required"
        ]
    );
    let oauth = app.wait_for_audit("channel = 'oauth' AND reason = 'use_dpop_nonce'", 1).await;
    assert_eq!(oauth[0]["status"].as_i64(), Some(400));
}

/// The forged-proof corpus at `/gw`: each one defect away from a proof that passes,
/// each refused with its own description and an audit row, none reaching the upstream.
#[tokio::test]
async fn every_forged_proof_is_refused_for_its_reason_with_a_row() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let key = DpopKey::ed25519();
    let (token, _) = dpop_token(&app.base, &key, &a).await;
    let url = format!("{}/gw/bank/fast", app.base);
    let good = || key.parts("GET", &url, Some(&token), None);
    let with = |name: &str, value: Value| {
        let mut p = good();
        p.claims[name] = value;
        key.sign(&p)
    };
    let header_with = |name: &str, value: Option<Value>| {
        let mut p = good();
        match value {
            Some(v) => p.header[name] = v,
            None => {
                p.header.as_object_mut().unwrap().remove(name);
            }
        }
        key.sign(&p)
    };
    let now = good().claims["iat"].as_i64().unwrap();
    let replayed = key.proof("GET", &url, Some(&token), None);
    assert_eq!(call(&url, "DPoP", &token, &[&replayed]).await.0, 200);
    let symmetric = {
        let mut p = good();
        p.header = json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": { "kty": "oct", "k": "c2VjcmV0" } });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(p.header.to_string()),
            URL_SAFE_NO_PAD.encode(p.claims.to_string())
        );
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    };
    let mut private = key.jwk();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    let other = DpopKey::ed25519();
    let corpus: Vec<(&str, Vec<String>, &str, &str)> = vec![
        ("wrong htu", vec![with("htu", json!(format!("{}/gw/bank/other", app.base)))], "invalid_dpop_proof", "htu"),
        ("wrong htm", vec![with("htm", json!("POST"))], "invalid_dpop_proof", "htm"),
        ("replayed jti", vec![replayed.clone()], "dpop_proof_replayed", "already used"),
        (
            "ath of another token",
            vec![with("ath", json!(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(b"x"))))],
            "invalid_dpop_proof",
            "ath",
        ),
        (
            "no ath",
            vec![{
                let mut p = good();
                p.claims.as_object_mut().unwrap().remove("ath");
                key.sign(&p)
            }],
            "invalid_dpop_proof",
            "ath",
        ),
        ("symmetric alg", vec![symmetric], "invalid_dpop_proof", "alg"),
        ("alg none", vec![header_with("alg", Some(json!("none")))], "invalid_dpop_proof", "alg"),
        ("missing jwk", vec![header_with("jwk", None)], "invalid_dpop_proof", "no public key"),
        ("private key in jwk", vec![header_with("jwk", Some(private))], "invalid_dpop_proof", "private key"),
        ("typ JWT", vec![header_with("typ", Some(json!("JWT")))], "invalid_dpop_proof", "typ"),
        ("stale iat", vec![with("iat", json!(now - 120))], "invalid_dpop_proof", "too old"),
        ("future iat", vec![with("iat", json!(now + 120))], "invalid_dpop_proof", "future"),
        (
            "proof key is not cnf.jkt",
            vec![other.proof("GET", &url, Some(&token), None)],
            "invalid_dpop_proof",
            "bound to",
        ),
        (
            "bad signature",
            vec![{
                let (a, b) = (key.proof("GET", &url, Some(&token), None), key.proof("GET", &url, Some(&token), None));
                format!("{}.{}", a.rsplit_once('.').unwrap().0, b.rsplit_once('.').unwrap().1)
            }],
            "invalid_dpop_proof",
            "signature",
        ),
        (
            "two proofs",
            vec![key.proof("GET", &url, Some(&token), None), key.proof("GET", &url, Some(&token), None)],
            "invalid_dpop_proof",
            "exactly one",
        ),
        ("not a JWT", vec!["aaa".into()], "invalid_dpop_proof", "well-formed"),
        (
            "huge",
            vec![format!("{}.{}", key.proof("GET", &url, Some(&token), None), "A".repeat(8000))],
            "invalid_dpop_proof",
            "well-formed",
        ),
    ];
    let n = corpus.len();
    for (what, proofs, reason, says) in corpus {
        let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let (status, h, body) = call(&url, "DPoP", &token, &refs).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["code"], reason, "{what}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{what}: {detail}");
        let challenge = h["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_dpop_proof""#),
            "{what}: {challenge}"
        );
    }
    assert_eq!(upstream.hits(), 1, "only the one good proof reached the upstream");
    let rows = app
        .wait_for_audit(
            &format!(
                "attempted_client_id = '{}' AND reason IN ('dpop_proof_replayed', 'invalid_dpop_proof')",
                a.reg.client_id
            ),
            n,
        )
        .await;
    assert_eq!(rows.len(), n, "one row per forged request");
    assert!(rows.iter().all(|r| r["status"].as_i64() == Some(401) && r["client_id"].is_null()), "{rows:?}");
}

/// At the token endpoint: a proof must carry our current nonce, be made for the token
/// endpoint, and be used once; a refused one leaves its row and no token.
#[tokio::test]
async fn token_requests_need_a_fresh_proof_with_our_nonce() {
    let (app, _upstream, a) = bank_agent(TestApp::spawn().await).await;
    let key = DpopKey::p256();
    let url = format!("{}/oauth/token", app.base);
    let (_, nonce) = dpop_token(&app.base, &key, &a).await;
    let send = |proof: String| token_request(&url, &a, Some(proof));
    let reused = key.proof("POST", &url, None, Some(&nonce));
    assert_eq!(send(reused.clone()).await.status(), 200);
    for (what, proof, error) in [
        ("the same proof again", reused, "invalid_dpop_proof"),
        (
            "a nonce we never issued",
            key.proof("POST", &url, None, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
            "use_dpop_nonce",
        ),
        (
            "made for the gateway",
            key.proof("POST", &format!("{}/gw/bank/fast", app.base), None, Some(&nonce)),
            "invalid_dpop_proof",
        ),
        ("made for GET", key.proof("GET", &url, None, Some(&nonce)), "invalid_dpop_proof"),
    ] {
        let res = send(proof).await;
        assert_eq!(res.status(), 400, "{what}");
        assert!(res.headers().contains_key("dpop-nonce"), "{what}: a fresh nonce comes with every answer");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], error, "{what}: {body}");
    }
    let rows = app.wait_for_audit("channel = 'oauth' AND decision = 'refused'", 5).await;
    let mut reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["dpop_proof_replayed", "invalid_dpop_proof", "invalid_dpop_proof", "use_dpop_nonce", "use_dpop_nonce"]
    );

    // The metadata documents say what is accepted.
    let meta: Value = reqwest::get(format!("{}/.well-known/oauth-authorization-server", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["dpop_signing_alg_values_supported"], json!(["ES256", "Ed25519", "EdDSA"]));
    let resource: Value = reqwest::get(format!("{}/.well-known/oauth-protected-resource/mcp", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resource["dpop_signing_alg_values_supported"], json!(["ES256", "Ed25519", "EdDSA"]));
}

/// Two real server processes behind one public URL share Redis: a proof used on one is
/// refused on the other. Without Redis the second would accept it, which shows the
/// test can tell.
#[tokio::test]
async fn a_proof_used_on_one_replica_is_refused_on_the_other() {
    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("skipped: TEST_REDIS_URL is not set; the shared one-use check needs a real Redis");
        return;
    };
    let (mut app, _upstream, a) = bank_agent(TestApp::spawn().await).await;
    app.shut_down().await;
    let public = "https://api.portcullis.test";
    for (flags, replay_refused) in
        [(vec!["--public-url", public], false), (vec!["--public-url", public, "--redis-url", redis.as_str()], true)]
    {
        let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
        // The token endpoint's proof names the public URL, whichever replica serves it.
        let key = DpopKey::p256();
        let token_url = format!("{public}/oauth/token");
        let (on_first, on_second) = (format!("{}/oauth/token", first.base), format!("{}/oauth/token", second.base));
        let ask = |proof: String| token_request(&on_first, &a, Some(proof));
        let nonce =
            ask(key.proof("POST", &token_url, None, None)).await.headers()["dpop-nonce"].to_str().unwrap().to_owned();
        let body: Value = ask(key.proof("POST", &token_url, None, Some(&nonce))).await.json().await.unwrap();
        let token = body["access_token"].as_str().expect("a token").to_owned();

        let proof = key.proof("GET", &format!("{public}/gw/bank/fast"), Some(&token), None);
        let (status, _, body) = call(&format!("{}/gw/bank/fast", first.base), "DPoP", &token, &[&proof]).await;
        assert_eq!(status, 200, "{body}");
        let (status, _, body) = call(&format!("{}/gw/bank/fast", second.base), "DPoP", &token, &[&proof]).await;
        if replay_refused {
            assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("dpop_proof_replayed")));
        } else {
            assert_eq!(status, 200, "without Redis each replica remembers only its own proofs");
        }
        // A nonce from one replica is good on the other: they share the secret.
        let other_nonce =
            ask(key.proof("POST", &token_url, None, None)).await.headers()["dpop-nonce"].to_str().unwrap().to_owned();
        let res = token_request(&on_second, &a, Some(key.proof("POST", &token_url, None, Some(&other_nonce)))).await;
        assert_eq!(res.status(), 200);
        first.kill();
        second.kill();
    }
}

/// Asking for a nonce is the protocol's first step, not a fault: a client doing it
/// again and again is not turned away at the door, while real refusals still are.
#[tokio::test]
async fn being_told_to_use_a_nonce_does_not_count_against_an_address() {
    let (app, _upstream, a) = bank_agent(TestApp::spawn_configured(|args| args.source_refusal_limit = 3).await).await;
    let key = DpopKey::p256();
    let url = format!("{}/oauth/token", app.base);
    let send = |proof: String| token_request(&url, &a, Some(proof));
    // Four asks (with the two of `dpop_token` below, within the client's token burst of
    // ten): more than the three refusals the address may earn.
    for _ in 0..4 {
        let res = send(key.proof("POST", &url, None, None)).await;
        assert_eq!(res.status(), 400);
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "use_dpop_nonce");
    }
    let (token, nonce) = dpop_token(&app.base, &key, &a).await;
    assert!(!token.is_empty());
    // The same budget, spent on proofs that are wrong: the door closes.
    let gw =
        || reqwest::Client::new().get(format!("{}/gw/bank/fast", app.base)).header("x-api-key", &a.key.secret).send();
    assert_eq!(gw().await.unwrap().status(), 200, "five nonce answers did not close the door");
    let mut errors = Vec::new();
    for _ in 0..4 {
        let body: Value = send(key.proof("GET", &url, None, Some(&nonce))).await.json().await.unwrap();
        errors.push(body["error"].as_str().unwrap().to_owned());
    }
    // Refused until the budget is spent, then turned away at the door (`rate_limited`).
    assert_eq!(errors[..2], ["invalid_dpop_proof", "invalid_dpop_proof"], "{errors:?}");
    let body: Value = gw().await.unwrap().json().await.unwrap();
    assert_eq!(body["code"], "too_many_refusals", "four wrong proofs did");
}

/// An admin requires DPoP for a profile: from the next request on, its API key and its
/// bearer tokens are refused on `/gw`, `/mcp` and at the token endpoint, bound tokens
/// work, the portal's Test access still works (as a DPoP client), and only an admin may
/// change it.
#[tokio::test]
async fn a_profile_that_requires_dpop_refuses_every_bearer_credential() {
    let (app, upstream, a) = bank_agent(TestApp::spawn().await).await;
    let profile = a.reg.secret.profile_id.clone();
    let url = format!("{}/gw/bank/fast", app.base);
    let token_url = format!("{}/oauth/token", app.base);
    let bearer_token = || async {
        let res = token_request(&token_url, &a, None).await;
        (res.status(), res.json::<Value>().await.unwrap())
    };
    let (_, issued) = bearer_token().await;
    let old_bearer = issued["access_token"].as_str().unwrap().to_owned();
    let owner = Script::new(&app, &a.dev.personal_token(None).await);
    let admin_pat = app.user_with_role(portcullis_domain::model::Role::Admin).await.personal_token(None).await;
    let admin = Script::new(&app, &admin_pat);

    let constraint = format!("/profiles/{profile}/sender-constraint");
    let policy = |value: &str| json!({ "sender_constraint": value });
    let (status, body) = owner.put(&constraint, policy("dpop")).await;
    assert_eq!(status, 403, "a developer may not change the policy: {body}");
    let (status, body) = admin.put(&constraint, policy("tls")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("expected one of `none`, `dpop`, `mtls`"), "{body}");
    assert_eq!(admin.put(&constraint, policy("dpop")).await.0, 204);

    let key_call = reqwest::Client::new().get(&url).header("x-api-key", &a.key.secret).send().await.unwrap();
    assert_eq!(key_call.status(), 401);
    let h = key_call.headers().clone();
    let body: Value = key_call.json().await.unwrap();
    assert_eq!(body["code"], "sender_constraint_required");
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("DPoP "), "{h:?}");
    let (_, _, body) = call(&url, "Bearer", &old_bearer, &[]).await;
    assert_eq!(body["code"], "sender_constraint_required", "a bearer token issued before the change stops too");
    let res = crate::helpers::stateless_tool(
        &app,
        &reqwest::Client::new(),
        ("x-api-key", &a.key.secret),
        "list_collections",
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401, "and on /mcp");

    let (status, body) = bearer_token().await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")), "{body}");
    let key = DpopKey::ed25519();
    let (token, _) = dpop_token(&app.base, &key, &a).await;
    let (status, _, body) = call(&url, "DPoP", &token, &[&key.proof("GET", &url, Some(&token), None)]).await;
    assert_eq!(status, 200, "{body}");
    let hits = upstream.hits();

    // The portal's Test access proves possession of a key of its own.
    let (status, result) = owner
        .post(&format!("/profiles/{profile}/test-access"), json!({ "method": "GET", "path": "/gw/bank/fast" }))
        .await;
    assert_eq!(
        (status, result["status"].as_u64(), result["outcome"].as_str()),
        (StatusCode::OK, Some(200), Some("allowed")),
        "{result}"
    );
    assert_eq!(upstream.hits(), hits + 1);

    let rows = app
        .wait_for_audit(
            &format!("attempted_client_id = '{}' AND reason = 'sender_constraint_required'", a.reg.client_id),
            4,
        )
        .await;
    let mut channels: Vec<&str> = rows.iter().map(|r| r["channel"].as_str().unwrap()).collect();
    channels.sort_unstable();
    assert_eq!(channels, ["mcp", "oauth", "rest", "rest"]);
    let changes = app
        .wait_for_audit(&format!("action = 'profile.sender_constraint_changed' AND target_id = '{profile}'"), 1)
        .await;
    assert_eq!(changes.len(), 1, "the change is an audited administrative event");

    assert_eq!(admin.put(&constraint, policy("none")).await.0, 204);
    let again = reqwest::Client::new().get(&url).header("x-api-key", &a.key.secret).send().await.unwrap();
    assert_eq!(again.status(), 200, "back to bearer credentials");
}

/// Guarantee 4 against DPoP: a caller holding a stolen token but not its key can send
/// proofs by the hundred, each well formed and validly signed by a key of its own; none
/// is remembered (only proofs of the token's key are), so the one-use memory does not
/// grow, and none reaches the upstream.
#[tokio::test]
async fn proofs_from_a_thief_by_the_hundred_leave_the_one_use_memory_empty() {
    let (app, upstream, a) = bank_agent(TestApp::spawn_configured(|args| args.source_refusal_limit = 0).await).await;
    let key = DpopKey::ed25519();
    let (token, _) = dpop_token(&app.base, &key, &a).await;
    let url = format!("{}/gw/bank/fast", app.base);
    let remembered = || app.store.enforcement().proofs_remembered();
    let before = remembered();
    let thief = DpopKey::ed25519();
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let calls = (0..100).map(|_| {
            let proof = thief.proof("GET", &url, Some(&token), None);
            let req = http.get(&url).header("authorization", format!("DPoP {token}")).header("dpop", proof);
            async move { req.send().await.unwrap().status() }
        });
        let statuses = futures_util::future::join_all(calls).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    }
    assert_eq!(remembered(), before, "500 proofs of another key, none remembered");
    assert_eq!(upstream.hits(), 0);
    let (status, _, _) = call(&url, "DPoP", &token, &[&key.proof("GET", &url, Some(&token), None)]).await;
    assert_eq!(status, 200);
    assert_eq!(remembered(), before + 1, "the owner's proof is");
}

/// Redis cut while two replicas serve DPoP traffic: requests are still answered (the
/// one-use check falls back to each replica's memory, so a replay on the same replica
/// is still refused), and once Redis is back a proof used on one replica is refused on
/// the other again.
#[tokio::test]
async fn with_redis_cut_each_replica_still_refuses_what_it_has_seen() {
    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("skipped: TEST_REDIS_URL is not set; the shared one-use check needs a real Redis");
        return;
    };
    let target = redis.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let cable = crate::helpers::Cable::to(target).await;
    let (mut app, _upstream, a) = bank_agent(TestApp::spawn().await).await;
    app.shut_down().await;
    let public = "https://api.portcullis.test";
    let redis_url = format!("redis://{}", cable.addr);
    let flags = ["--public-url", public, "--redis-url", redis_url.as_str()];
    let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
    let key = DpopKey::ed25519();
    let token_url = format!("{public}/oauth/token");
    let on_first = format!("{}/oauth/token", first.base);
    let nonce = token_request(&on_first, &a, Some(key.proof("POST", &token_url, None, None))).await.headers()
        ["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = token_request(&on_first, &a, Some(key.proof("POST", &token_url, None, Some(&nonce))))
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().expect("a token").to_owned();
    let gw = format!("{public}/gw/bank/fast");
    let at = |server: &Server| format!("{}/gw/bank/fast", server.base);

    cable.cut();
    let proof = key.proof("GET", &gw, Some(&token), None);
    let (status, _, body) = call(&at(&first), "DPoP", &token, &[&proof]).await;
    assert_eq!(status, 200, "served without Redis: {body}");
    let (status, _, body) = call(&at(&first), "DPoP", &token, &[&proof]).await;
    assert_eq!(body["code"], "dpop_proof_replayed", "the same replica remembers: {status} {body}");

    cable.restore();
    // Redis is asked again a second after the failure.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut shared = false;
    for _ in 0..20 {
        let proof = key.proof("GET", &gw, Some(&token), None);
        assert_eq!(call(&at(&first), "DPoP", &token, &[&proof]).await.0, 200);
        let (_, _, body) = call(&at(&second), "DPoP", &token, &[&proof]).await;
        if body["code"] == "dpop_proof_replayed" {
            shared = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(shared, "with Redis back, a proof used on one replica is refused on the other");
    first.kill();
    second.kill();
}
