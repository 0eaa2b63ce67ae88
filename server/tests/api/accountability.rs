//! Who did it: the trail names the person behind every door and every act — sign-in,
//! sign-out, throttled and failed attempts, personal access tokens made and refused,
//! Test access run by an admin on someone else's profile, token requests that name a
//! client they cannot prove to be.

use crate::helpers::{agent, audit_rows, TestApp, PASSWORD};
use crate::management::token_for;
use portcullis_domain::model::Role;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Row;

/// Administrative events (action, actor email, target type, target id, summary), oldest first.
async fn events(app: &TestApp, action_like: &str) -> Vec<(String, Option<String>, String, String, Value)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT e.action, u.email, e.target_type, e.target_id, e.summary
         FROM audit_events e LEFT JOIN users u ON u.id = e.actor_user_id
         WHERE e.action LIKE $1 ORDER BY e.id",
    )
    .bind(action_like)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| {
            (
                r.get("action"),
                r.get("email"),
                r.get("target_type"),
                r.get("target_id"),
                serde_json::from_str(&r.get::<String, _>("summary")).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn sign_ins_failures_throttling_and_sign_outs_are_events_with_the_address() {
    let app = TestApp::spawn().await;
    let ada = app.developer("ada").await;
    let out = ada.call("sign_out", &[]).await;
    assert!(out.status < 400, "{out:?}");
    let back = ada.call("sign_in", &[("email", &ada.email), ("password", PASSWORD)]).await;
    assert!(back.status < 400, "{back:?}");

    // Someone else guesses Ada's password until the throttle stops them.
    let guesser = app.session();
    let mut statuses = Vec::new();
    for _ in 0..9 {
        statuses.push(guesser.call("sign_in", &[("email", &ada.email), ("password", "not her password")]).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let failed = statuses.iter().filter(|s| **s == 422).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(throttled >= 2, "several attempts were throttled: {statuses:?}");

    let signed = events(&app, "user.sign%").await;
    let count = |a: &str| signed.iter().filter(|e| e.0 == a).count();
    assert_eq!(count("user.signed_out"), 1);
    assert_eq!(count("user.signed_in"), 1, "the sign-up's own session is not a sign-in");
    assert_eq!(count("user.sign_in_failed"), failed);
    assert_eq!(count("user.sign_in_throttled"), 1, "once per address a minute: {signed:?}");
    let signed_in = signed.iter().find(|e| e.0 == "user.signed_in").unwrap();
    assert_eq!(signed_in.1.as_deref(), Some(ada.email.as_str()), "the person is the actor");
    assert_eq!(signed_in.4["ip"], "127.0.0.1");
    let failure = signed.iter().find(|e| e.0 == "user.sign_in_failed").unwrap();
    assert_eq!((failure.1.clone(), failure.2.as_str(), failure.3.as_str()), (None, "email", ada.email.as_str()));
}

#[tokio::test]
async fn personal_access_tokens_made_and_refused_are_events() {
    let app = TestApp::spawn().await;
    let dev = app.developer("scripter").await;
    let token = token_for(&app, &dev).await;
    let created = events(&app, "access_token.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].1.as_deref(), Some(dev.email.as_str()));

    let http = reqwest::Client::new();
    let me =
        |t: String| http.get(format!("{}/api/v1/me", app.base)).header("authorization", format!("Bearer {t}")).send();
    assert_eq!(me(token.clone()).await.unwrap().status(), StatusCode::OK);
    // A made-up token, then a flood of them: refused, and recorded once per address a minute.
    for i in 0..20 {
        let res = me(format!("pcp_forged{i}{}", "x".repeat(40))).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = events(&app, "access_token.refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!((refused[0].2.as_str(), refused[0].3.as_str()), ("access_token", "pcp_forg"));
    assert_eq!(refused[0].4["ip"], "127.0.0.1");
}

#[tokio::test]
async fn test_access_by_an_admin_on_someone_elses_profile_names_the_admin() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let admin = app.user_with_role(Role::Admin).await;
    let result: portcullis_domain::model::TestAccessResult = admin
        .call(
            "test_access",
            &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", "/gw/accounts/accounts")],
        )
        .await
        .ok();
    assert_eq!(result.status, 200);
    let own: portcullis_domain::model::TestAccessResult = a
        .dev
        .call(
            "test_access",
            &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", "/gw/accounts/accounts")],
        )
        .await
        .ok();
    assert_eq!(own.status, 200);

    // The requests' rows: the client's, acting for whoever ran the test.
    let rows = app.wait_for_audit("action = 'request' AND channel = 'rest'", 2).await;
    let actor_of = |request_id: &str| -> Option<String> {
        rows.iter().find(|r| r["request_id"] == request_id).unwrap()["actor_user_id"].as_str().map(str::to_owned)
    };
    let admin_id = app.store.user_by_email(&admin.email).await.unwrap().unwrap().id;
    let dev_id = app.store.user_by_email(&a.dev.email).await.unwrap().unwrap().id;
    assert_eq!(actor_of(&result.request_id), Some(admin_id));
    assert_eq!(actor_of(&own.request_id), Some(dev_id));
    assert!(rows.iter().all(|r| r["client_id"] == a.reg.secret.client_id.as_str()));

    // And each test is an administrative event by its person.
    let tests = events(&app, "profile.test_access").await;
    let by: Vec<Option<&str>> = tests.iter().map(|e| e.1.as_deref()).collect();
    assert_eq!(by, [Some(admin.email.as_str()), Some(a.dev.email.as_str())]);
    assert_eq!(tests[0].3, a.reg.secret.profile_id);
    assert_eq!(tests[0].4["path"], "/gw/accounts/accounts");
}

#[tokio::test]
async fn a_refused_token_request_names_the_client_it_claimed_apart_from_authenticated_traffic() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let wrong = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.secret.client_id, Some("pcs_not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.secret.client_id, Some(&a.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let rows = app.wait_for_audit("action = 'request' AND channel = 'oauth'", 2).await;
    let (refused, allowed) = (&rows[0], &rows[1]);
    assert_eq!((refused["decision"].as_str(), refused["reason"].as_str()), (Some("refused"), Some("invalid_client")));
    assert_eq!(refused["attempted_client_id"], a.reg.secret.client_id.as_str());
    assert_eq!(refused["client_id"], Value::Null, "naming a client does not write into its record");
    assert_eq!(allowed["client_id"], a.reg.secret.client_id.as_str());
    assert_eq!(allowed["attempted_client_id"], Value::Null);
    assert!(
        audit_rows(&app.database_url, "action = 'request' AND client_id IS NULL AND channel = 'oauth'").await.len()
            == 1
    );
}
