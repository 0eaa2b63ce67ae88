//! Two real server processes on one store: a change made through one (a revocation)
//! is enforced by the other within a second, because every change moves the policy
//! version each server polls.

use crate::helpers::{agent_for, Server, TestApp, TestUpstream};
use portcullis_domain::access::{Actor, Channel};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_revocation_on_one_replica_is_enforced_by_the_other_within_a_second() {
    let mut app = TestApp::spawn().await;
    let upstream = TestUpstream::start().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let owner = app.store.user_by_email(&a.dev.email).await.unwrap().unwrap();
    let pat = app.store.create_access_token(&Actor::new(owner, Channel::Cli), "replicas", Some(1)).await.unwrap().token;
    app.shut_down().await;
    let (first, second) = (Server::start(&app, &[]).await, Server::start(&app, &[]).await);
    let http = reqwest::Client::new();
    let call = |base: &str, key: &str| http.get(format!("{base}/gw/bank/fast")).header("x-api-key", key).send();

    let mut waits = Vec::new();
    for _ in 0..5 {
        // A fresh key through the first replica; the second serves it within a second.
        let issued: serde_json::Value = http
            .post(format!("{}/api/v1/profiles/{}/api-keys", first.base, a.reg.secret.profile_id))
            .bearer_auth(&pat)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (key, id) =
            (issued["secret"].as_str().unwrap().to_owned(), issued["credential_id"].as_str().unwrap().to_owned());
        let started = Instant::now();
        while call(&second.base, &key).await.unwrap().status() != StatusCode::OK {
            assert!(started.elapsed() < Duration::from_secs(3), "the second replica never learned of the key");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Revoked through the first: refused there at once, on the second within a second.
        let revoked =
            http.post(format!("{}/api/v1/credentials/{id}/revoke", first.base)).bearer_auth(&pat).send().await.unwrap();
        assert!(revoked.status().is_success(), "{}", revoked.status());
        let revoked_at = Instant::now();
        assert_eq!(call(&first.base, &key).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        while call(&second.base, &key).await.unwrap().status() != StatusCode::UNAUTHORIZED {
            assert!(revoked_at.elapsed() < Duration::from_secs(3), "the second replica still accepts a revoked key");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        waits.push(revoked_at.elapsed());
    }
    waits.sort();
    println!("revocation reached the other replica in {:?} (median) to {:?} (most)", waits[2], waits[4]);
    assert!(waits[4] < Duration::from_millis(1500), "{waits:?}");
    first.kill();
    second.kill();
}
