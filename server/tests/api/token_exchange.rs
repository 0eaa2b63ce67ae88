//! Token exchange (RFC 8693) against the real server: an agent acting on behalf of
//! another gets a token never broader than either, naming the subject and the whole
//! actor chain; the chain grows and is bounded; every party's revocation or suspension
//! ends the delegated tokens on the next request; subject tokens that must not be
//! exchanged are refused with their reason; the audit trail finds delegated traffic by
//! subject and by actor.

use crate::dpop_key::DpopKey;
use crate::helpers::{agent, endpoint, poll_audit, publish, Agent, Server, TestApp, TestUpstream};
use crate::management::Script;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_domain::model::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A token request's form fields.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// Products `bank`, `vault` and `ledger` on one upstream; agents get grants per test.
async fn setup() -> (TestApp, TestUpstream, [String; 3]) {
    let app = TestApp::spawn_configured(|args| args.token_rate_limit = 60_000).await;
    let upstream = TestUpstream::start().await;
    let mut ids = Vec::new();
    for (slug, path) in [("bank", "/fast"), ("vault", "/headers"), ("ledger", "/fast")] {
        ids.push(publish(&app, slug, &upstream.base, vec![endpoint("GET", path)]).await.id);
    }
    (app, upstream, ids.try_into().unwrap())
}

/// An agent granted `products` (product id, scopes), with a high rate limit.
async fn agent_with(app: &TestApp, products: &[(&str, &[&str])]) -> Agent {
    let a = agent(app, &[]).await;
    for (product, scopes) in products {
        let g = a.dev.request_access(&a.reg.secret.profile_id, product, scopes).await;
        assert_eq!(g.status, 200, "{g:?}");
    }
    let admin = app.operator_admin().await;
    app.store.set_rate_limit(&admin, &a.reg.secret.profile_id, 1_000_000, 100_000).await.unwrap();
    a
}

async fn token(base: &str, a: &Agent, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

async fn own_token(base: &str, a: &Agent) -> String {
    let (status, body) = token(base, a, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// `actor` exchanges `subject_token` (with `extra` fields).
pub(crate) async fn exchange(
    base: &str,
    actor: &Agent,
    subject_token: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form =
        vec![("grant_type", EXCHANGE), ("subject_token", subject_token), ("subject_token_type", ACCESS_TOKEN)];
    form.extend_from_slice(extra);
    token(base, actor, &form).await
}

async fn delegated(base: &str, actor: &Agent, subject_token: &str) -> String {
    let (status, body) = exchange(base, actor, subject_token, &[]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn gw(base: &str, product: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new().get(format!("{base}/gw/{product}{path}")).bearer_auth(token).send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn an_agent_acting_for_another_gets_no_more_than_both_and_the_trail_names_the_subject_and_the_chain() {
    let (app, upstream, [bank, vault, ledger]) = setup().await;
    let meta = crate::helpers::get_json(&format!("{}/.well-known/oauth-authorization-server", app.base)).await;
    assert_eq!(meta["grant_types_supported"], json!(["client_credentials", EXCHANGE]));
    let subject = agent_with(&app, &[(&bank, &["read", "write"]), (&vault, &["read"])]).await;
    let actor = agent_with(&app, &[(&bank, &["read"]), (&ledger, &["read"])]).await;
    let (status, body) = exchange(&app.base, &actor, &own_token(&app.base, &subject).await, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(body["scope"], "read", "within the subject token's scopes and the actor's");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], subject.reg.client_id.as_str(), "RFC 8693: the subject");
    assert_eq!(claims["client_id"], actor.reg.client_id.as_str());
    assert_eq!(claims["act"], json!({ "sub": actor.reg.client_id }), "RFC 8693 §4.1");
    assert_eq!(claims["subject"]["profile"], subject.reg.secret.profile_id.as_str());
    let introspected = crate::helpers::introspect(&app.base, &actor, &token).await;
    assert_eq!(
        (&introspected["active"], &introspected["sub"], &introspected["act"]),
        (&json!(true), &json!(subject.reg.client_id), &json!({ "sub": actor.reg.client_id })),
        "{introspected}"
    );

    // Only what both are granted: bank. Not the subject's vault, not the actor's ledger.
    assert_eq!(gw(&app.base, "bank", "/fast", &token).await.0, 200);
    let (status, body) = gw(&app.base, "vault", "/headers", &token).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_granted")), "{body}");
    let (status, body) = gw(&app.base, "ledger", "/fast", &token).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_granted")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("on behalf of"), "{body}");
    assert_eq!(upstream.hits(), 1);
    // On /mcp the same token discovers only what both may call.
    let auth = format!("Bearer {token}");
    let listed = crate::helpers::stateless_result(&app, ("authorization", &auth), "list_collections", json!({})).await;
    let slugs: Vec<&str> =
        listed["collections"].as_array().unwrap().iter().map(|c| c["collection"].as_str().unwrap_or("?")).collect();
    assert_eq!(slugs, ["bank"], "{listed}");
    // Asking for more than the actor has is refused at the token endpoint.
    let (status, body) =
        exchange(&app.base, &actor, &own_token(&app.base, &subject).await, &[("scope", "write")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");

    // A third agent acts through the second: the chain grows, the subject stays.
    let third = agent_with(&app, &[(&bank, &["read"])]).await;
    let chained = delegated(&app.base, &third, &token).await;
    let claims = claims_of(&chained);
    assert_eq!(claims["sub"], subject.reg.client_id.as_str());
    assert_eq!(claims["act"]["sub"], third.reg.client_id.as_str());
    assert_eq!(claims["act"]["act"]["sub"], actor.reg.client_id.as_str());
    assert_eq!(gw(&app.base, "bank", "/fast", &chained).await.0, 200);

    // The trail: each delegated call names its subject and its chain, acting client first.
    let rows = poll_audit(&app.database_url, "subject_id IS NOT NULL AND channel = 'rest'", 4).await;
    let seen: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            let t = |k: &str| r[k].as_str().unwrap_or("");
            (t("client_id"), t("subject_id"), t("actor_chain"), t("reason"))
        })
        .collect();
    let (s, a, t) = (subject.reg.client_id.as_str(), actor.reg.client_id.as_str(), third.reg.client_id.as_str());
    let chain = format!("{t} {a}");
    assert_eq!(
        seen,
        [(a, s, a, "allowed"), (a, s, a, "not_granted"), (a, s, a, "not_granted"), (t, s, chain.as_str(), "allowed")]
    );
    let security = app.user_with_role(portcullis_domain::model::Role::Security).await.personal_token(None).await;
    let script = Script::new(&app, &security);
    let (_, page) = script.get(&format!("/audit?subject={s}&channel=rest")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 4, "{page}");
    let (_, page) = script.get(&format!("/audit?acting_client={a}&channel=rest")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 4, "the actor's own and the chain it is in: {page}");
    let (_, page) = script.get(&format!("/audit?acting_client={t}&channel=rest")).await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) = script.get("/audit?acting_client=cl_%25&channel=rest").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 0, "a pattern is not a client id: {page}");

    // The subject's activity page counts who acted on its behalf: the exchange, the
    // three calls and the MCP listing; then the third agent's exchange and call.
    let (_, activity) = script.get(&format!("/clients/{s}/activity")).await;
    let behalf: Vec<(&str, i64)> = activity["on_its_behalf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(behalf, [(a, 5), (t, 2)], "{activity}");
}

#[tokio::test]
async fn revoking_or_stopping_any_party_ends_the_delegated_tokens_on_the_next_request() {
    let (app, _upstream, [bank, _, _]) = setup().await;
    let admin_pat = app.user_with_role(portcullis_domain::model::Role::Admin).await.personal_token(None).await;
    let admin = Script::new(&app, &admin_pat);
    let read_bank: [(&str, &[&str]); 1] = [(&bank, &["read"])];
    let party = || agent_with(&app, &read_bank);
    let (subject, actor, third) = (party().await, party().await, party().await);

    // The subject revokes the token it handed over: what was exchanged from it ends.
    let handed = own_token(&app.base, &subject).await;
    let token = delegated(&app.base, &actor, &handed).await;
    let chained = delegated(&app.base, &third, &token).await;
    assert_eq!(gw(&app.base, "bank", "/fast", &chained).await.0, 200);
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", app.base))
        .basic_auth(&subject.reg.client_id, Some(&subject.reg.secret.secret))
        .form(&[("token", handed.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for t in [&token, &chained] {
        let (status, body) = gw(&app.base, "bank", "/fast", t).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
    }

    // The middle of a chain revokes the token it was given: the end of the chain stops.
    let token = delegated(&app.base, &actor, &own_token(&app.base, &subject).await).await;
    let chained = delegated(&app.base, &third, &token).await;
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", app.base))
        .basic_auth(&actor.reg.client_id, Some(&actor.reg.secret.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(gw(&app.base, "bank", "/fast", &chained).await.0, 401);

    // An admin suspends the subject: every token acting for it stops, and resumes after.
    let token = delegated(&app.base, &actor, &own_token(&app.base, &subject).await).await;
    let chained = delegated(&app.base, &third, &token).await;
    let suspend = |on: bool| json!({ "suspended": on, "reason": "incident 42" });
    let path = format!("/clients/{}/suspended", subject.reg.client_id);
    assert_eq!(admin.put(&path, suspend(true)).await.0, 204);
    for t in [&token, &chained] {
        let (status, body) = gw(&app.base, "bank", "/fast", t).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("client_suspended")), "{body}");
    }
    assert_eq!(admin.put(&path, suspend(false)).await.0, 204);
    assert_eq!(gw(&app.base, "bank", "/fast", &chained).await.0, 200);

    // The subject's grant ends: the delegated token can no longer call the product.
    let review = admin.get("/reviews").await.1;
    let grant =
        review.as_array().unwrap().iter().find(|c| c["client"]["id"] == subject.reg.client_id.as_str()).unwrap()
            ["grants"][0]["grant"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let (status, body) = admin.post(&format!("/reviews/grants/{grant}/end"), json!({ "reason": "not needed" })).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = gw(&app.base, "bank", "/fast", &chained).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_granted")), "{body}");
}

#[tokio::test]
async fn subject_tokens_that_must_not_be_exchanged_and_malformed_exchanges_are_refused_with_their_reason() {
    let (app, _upstream, [bank, _, _]) = setup().await;
    let read_bank: [(&str, &[&str]); 1] = [(&bank, &["read"])];
    let party = || agent_with(&app, &read_bank);
    let (subject, actor) = (party().await, party().await);
    let plain = own_token(&app.base, &subject).await;

    // A DPoP-bound subject token: whoever holds a copy lacks the key.
    let key = DpopKey::p256();
    let url = format!("{}/oauth/token", app.base);
    let send = |proof: String| {
        reqwest::Client::new()
            .post(&url)
            .basic_auth(&subject.reg.client_id, Some(&subject.reg.secret.secret))
            .header("dpop", proof)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let first = send(key.proof("POST", &url, None, None)).await.unwrap();
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let bound: Value = send(key.proof("POST", &url, None, Some(&nonce))).await.unwrap().json().await.unwrap();
    let bound = bound["access_token"].as_str().unwrap().to_owned();
    // A per-task token.
    let bank_fast = app.store.enforcement().snapshot().current().products["bank"].endpoints[0].id.clone();
    let details = json!([{ "type": "portcullis_task", "task_id": "t1", "endpoints": [bank_fast] }]).to_string();
    let (_, task) =
        token(&app.base, &subject, &[("grant_type", "client_credentials"), ("authorization_details", &details)]).await;
    let task = task["access_token"].as_str().unwrap().to_owned();
    let own = own_token(&app.base, &actor).await;
    // A chain back to its own subject, and one through the same client twice.
    let delegated_once = delegated(&app.base, &actor, &plain).await;

    let invalid_grant = [
        (bound.as_str(), "sender-constrained"),
        (task.as_str(), "per-task"),
        (own.as_str(), "this client's own"),
        ("not.a.token", "not an access token"),
        ("", "not an access token"),
    ];
    for (subject_token, says) in invalid_grant {
        let (status, body) = exchange(&app.base, &actor, subject_token, &[]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{says}: {body}"
        );
        assert!(body["error_description"].as_str().unwrap().contains(says), "{says}: {body}");
    }
    let (status, body) = exchange(&app.base, &subject, &delegated_once, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("subject of the chain"), "{body}");

    // The chain holds at most four actors.
    let mut chain = delegated_once;
    for n in 2..=4 {
        let next = party().await;
        chain = delegated(&app.base, &next, &chain).await;
        assert_eq!(claims_of(&chain)["act"].to_string().matches("\"sub\"").count(), n);
    }
    let fifth = party().await;
    let (status, body) = exchange(&app.base, &fifth, &chain, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("longer than 4"), "{body}");

    // The request itself: (fields, error, what the description says).
    let p = plain.as_str();
    let base = [("grant_type", EXCHANGE), ("subject_token", p), ("subject_token_type", ACCESS_TOKEN)];
    let with = |extra: (&'static str, &'static str)| -> Fields<'_> { base.iter().copied().chain([extra]).collect() };
    let malformed: Vec<(Fields<'_>, &str, &str)> = vec![
        (vec![("grant_type", EXCHANGE), ("subject_token", p)], "invalid_request", "subject_token_type"),
        (
            vec![("grant_type", EXCHANGE), ("subject_token_type", ACCESS_TOKEN)],
            "invalid_request",
            "subject_token is required",
        ),
        (with(("actor_token", "anything")), "invalid_request", "actor_token"),
        (with(("audience", "https://elsewhere.example")), "invalid_target", "audience"),
        (
            with(("requested_token_type", "urn:ietf:params:oauth:token-type:id_token")),
            "invalid_request",
            "requested_token_type",
        ),
    ];
    for (fields, error, says) in malformed {
        let (status, body) = token(&app.base, &actor, &fields).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{fields:?}: {body}");
        assert!(body["error_description"].as_str().unwrap().contains(says), "{fields:?}: {body}");
    }
    let refused = poll_audit(&app.database_url, "reason IN ('invalid_grant', 'invalid_target')", 8).await;
    assert_eq!(refused.len(), 8, "each refusal has its row");
}

/// Two real server processes on one store: a delegated token obtained on one works on
/// the other, and the subject's revocation of the token it handed over, made on the
/// first, is enforced by the second within the policy's propagation bound.
#[tokio::test]
async fn a_delegated_token_from_one_replica_stops_on_the_other_once_its_subject_token_is_revoked() {
    let (mut app, _upstream, [bank, _, _]) = setup().await;
    let read_bank: [(&str, &[&str]); 1] = [(&bank, &["read"])];
    let (subject, actor) = (agent_with(&app, &read_bank).await, agent_with(&app, &read_bank).await);
    let owner = subject.dev.personal_token(None).await;
    app.shut_down().await;
    let flags = ["--public-url", "http://gateway.test", "--token-rate-limit", "60000"];
    let (first, second) = (Server::start(&app, &flags).await, Server::start(&app, &flags).await);
    let handed = own_token(&first.base, &subject).await;
    let token = delegated(&first.base, &actor, &handed).await;
    assert_eq!(gw(&second.base, "bank", "/fast", &token).await.0, 200, "one token, any replica");

    // The subject's owner withdraws consent on one replica: the other refuses the token.
    let may_act = |base: &str, actors: Value| {
        let req = reqwest::Client::new()
            .put(format!("{base}/api/v1/profiles/{}/may-act", subject.reg.secret.profile_id))
            .bearer_auth(&owner)
            .json(&json!({ "actors": actors }));
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(may_act(&first.base, json!([])).await, StatusCode::NO_CONTENT);
    let withdrawn = std::time::Instant::now();
    while gw(&second.base, "bank", "/fast", &token).await.0 == StatusCode::OK {
        assert!(withdrawn.elapsed() < std::time::Duration::from_millis(1500), "the second replica still accepts it");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!("consent withdrawn, refused on the other replica after {:?}", withdrawn.elapsed());
    assert_eq!(may_act(&first.base, Value::Null).await, StatusCode::NO_CONTENT);
    let token = delegated(&first.base, &actor, &handed).await;
    // Consent given again reaches the other replica the same way, within the same bound.
    let given = std::time::Instant::now();
    while gw(&second.base, "bank", "/fast", &token).await.0 != StatusCode::OK {
        assert!(given.elapsed() < std::time::Duration::from_millis(1500), "the second replica still refuses it");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let res = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", first.base))
        .basic_auth(&subject.reg.client_id, Some(&subject.reg.secret.secret))
        .form(&[("token", handed.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let revoked = std::time::Instant::now();
    loop {
        let (status, body) = gw(&second.base, "bank", "/fast", &token).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["code"], "invalid_token", "{body}");
            break;
        }
        assert!(revoked.elapsed() < std::time::Duration::from_millis(1500), "the second replica still accepts it");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!("delegated token refused on the other replica {:?} after the revocation", revoked.elapsed());
    first.kill();
    second.kill();
}

#[tokio::test]
async fn a_subject_names_who_may_act_for_it_and_withdrawing_ends_the_delegated_tokens() {
    let (app, upstream, [bank, _, _]) = setup().await;
    let read_bank: [(&str, &[&str]); 1] = [(&bank, &["read"])];
    let subject = agent_with(&app, &read_bank).await;
    let (allowed, other) = (agent_with(&app, &read_bank).await, agent_with(&app, &read_bank).await);
    let owner = Script::new(&app, &subject.dev.personal_token(None).await);
    let path = format!("/profiles/{}/may-act", subject.reg.secret.profile_id);

    // Another developer cannot choose for it; made-up or self ids are refused with why.
    let mallory = Script::new(&app, &app.developer("mallory").await.personal_token(None).await);
    assert_eq!(mallory.put(&path, json!({ "actors": [] })).await.0, StatusCode::NOT_FOUND);
    let (status, problem) = owner.put(&path, json!({ "actors": ["cl_nobody"] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("no client cl_nobody"), "{problem}");
    let (status, problem) = owner.put(&path, json!({ "actors": [subject.reg.client_id] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(owner.put(&path, json!({ "actors": [allowed.reg.client_id] })).await.0, StatusCode::NO_CONTENT);
    let (_, detail) = owner.get(&format!("/clients/{}", subject.reg.client_id)).await;
    assert_eq!(detail["profiles"][0]["may_act"], json!([allowed.reg.client_id]), "{detail}");

    // Only the allowed agent may act for it.
    let handed = own_token(&app.base, &subject).await;
    let (status, body) = exchange(&app.base, &other, &handed, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("has not allowed"), "{body}");
    let token = delegated(&app.base, &allowed, &handed).await;
    assert_eq!(gw(&app.base, "bank", "/fast", &token).await.0, 200);

    // Consent withdrawn: the delegated token stops on its next request, and no new one.
    assert_eq!(owner.put(&path, json!({ "actors": [] })).await.0, StatusCode::NO_CONTENT);
    let (status, body) = gw(&app.base, "bank", "/fast", &token).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
    assert_eq!(exchange(&app.base, &allowed, &handed, &[]).await.0, StatusCode::BAD_REQUEST);
    // A body that forgot `actors` widens nothing.
    assert_eq!(owner.put(&path, json!({})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(exchange(&app.base, &allowed, &handed, &[]).await.0, StatusCode::BAD_REQUEST, "still nobody");
    // Any client again (null): the other agent may act too.
    assert_eq!(owner.put(&path, json!({ "actors": null })).await.0, StatusCode::NO_CONTENT);
    let token = delegated(&app.base, &other, &handed).await;
    assert_eq!(gw(&app.base, "bank", "/fast", &token).await.0, 200);

    // Down a chain, each holder consents to the next actor: `allowed` holds a token acting
    // for the subject and allows nobody to act for it, so `other` cannot take it further.
    let held = delegated(&app.base, &allowed, &handed).await;
    let allowed_owner = Script::new(&app, &allowed.dev.personal_token(None).await);
    let allowed_path = format!("/profiles/{}/may-act", allowed.reg.secret.profile_id);
    assert_eq!(allowed_owner.put(&allowed_path, json!({ "actors": [] })).await.0, StatusCode::NO_CONTENT);
    let (status, body) = exchange(&app.base, &other, &held, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(allowed_owner.put(&allowed_path, json!({ "actors": null })).await.0, StatusCode::NO_CONTENT);
    let chained = delegated(&app.base, &other, &held).await;
    assert_eq!(gw(&app.base, "bank", "/fast", &chained).await.0, 200);
    assert_eq!(allowed_owner.put(&allowed_path, json!({ "actors": [] })).await.0, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app.base, "bank", "/fast", &chained).await.0, 401, "the holder withdrew");

    // A subject that comes to require sender-constrained tokens is acted for by nobody:
    // a copy of its bearer token must not become usable through someone else.
    let admin = Script::new(&app, &app.user_with_role(Role::Admin).await.personal_token(None).await);
    let constraint = format!("/profiles/{}/sender-constraint", subject.reg.secret.profile_id);
    assert_eq!(admin.put(&constraint, json!({ "sender_constraint": "dpop" })).await.0, StatusCode::NO_CONTENT);
    assert_eq!(gw(&app.base, "bank", "/fast", &token).await.0, 401, "the delegated token stops");
    let (status, body) = exchange(&app.base, &other, &handed, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(upstream.hits(), 3, "only the allowed calls reached the upstream");
}

/// A client library we did not write (oauth4webapi): the subject agent gets its token
/// with the client credentials grant, the acting agent exchanges it with the library's
/// generic token endpoint request and calls the gateway on the subject's behalf.
#[tokio::test]
async fn oauth4webapi_exchanges_another_agents_token_and_calls_on_its_behalf() {
    use crate::mcp_clients::{clients_dir, node, run_json};
    let (app, upstream, [bank, _, _]) = setup().await;
    let read_bank: [(&str, &[&str]); 1] = [(&bank, &["read"])];
    let (subject, actor) = (agent_with(&app, &read_bank).await, agent_with(&app, &read_bank).await);
    let mut cmd = std::process::Command::new(node());
    cmd.current_dir(clients_dir())
        .arg("token_exchange_client.mjs")
        .arg(&app.base)
        .args([&subject.reg.client_id, &subject.reg.secret.secret, &actor.reg.client_id, &actor.reg.secret.secret])
        .arg("/gw/bank/fast");
    let out = run_json(cmd).await;
    assert!(out["grant_types"].as_array().unwrap().contains(&json!(EXCHANGE)), "{out}");
    assert_eq!(out["issued_token_type"], ACCESS_TOKEN, "{out}");
    assert_eq!(out["token_type"], "bearer", "{out}");
    assert_eq!(out["gateway_status"], 200, "{out}");
    assert_eq!(upstream.hits(), 1);
    let claims = claims_of(out["access_token"].as_str().unwrap());
    assert_eq!((&claims["sub"], &claims["act"]["sub"]), (&json!(subject.reg.client_id), &json!(actor.reg.client_id)));
}
