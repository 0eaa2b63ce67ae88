//! Rotating the server secret: with the new secret and the previous one, everything the
//! previous one keyed keeps working and is re-keyed when used; once dropped, what was
//! re-keyed works and what was not is refused — and `admin secret-status` said which.

use crate::helpers::{agent, serve_args, Server, TestApp, SECRET};
use portcullis::application::{Application, StartError};
use portcullis_domain::access::{Actor, Channel};
use portcullis_domain::clock::Clock;
use portcullis_domain::scopes::Scopes;
use portcullis_domain::secrets::{SecretHasher, ServerSecret};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NEW_SECRET: &str = "rotated-secret-ZYXWVUTSRQPONMLKJIHGFEDCBA-9876543210";

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn fingerprint(secret: &str) -> String {
    SecretHasher::new(&ServerSecret::parse(secret).unwrap()).fingerprint()
}

async fn gw(base: &str, key: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{base}/gw/accounts/accounts"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .status()
}

async fn bearer(base: &str, token: &str) -> StatusCode {
    reqwest::Client::new().get(format!("{base}/gw/accounts/accounts")).bearer_auth(token).send().await.unwrap().status()
}

async fn token(base: &str, client_id: &str, secret: &str) -> Result<String, (StatusCode, String)> {
    let res = reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    match status {
        StatusCode::OK => Ok(body["access_token"].as_str().unwrap().to_owned()),
        _ => Err((status, body.to_string())),
    }
}

async fn me(base: &str, pat: &str) -> StatusCode {
    reqwest::Client::new().get(format!("{base}/api/v1/me")).bearer_auth(pat).send().await.unwrap().status()
}

/// Which secret keyed each credential or token, read as an operator would.
async fn hash_keys(app: &TestApp, ids: &[&str]) -> Vec<Option<String>> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let mut out = Vec::new();
    for id in ids {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT hash_key FROM credentials WHERE id = $1 UNION ALL SELECT hash_key FROM access_tokens WHERE id = $1",
        )
        .bind(*id)
        .fetch_one(&pool)
        .await
        .unwrap();
        out.push(row);
    }
    pool.close().await;
    out
}

/// `admin secret-status` as an operator runs it: its exit code and JSON.
async fn secret_status(
    app: &TestApp,
    secret_file: &std::path::Path,
    previous: Option<&std::path::Path>,
) -> (i32, Value) {
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cli.args(["admin", "secret-status", "--json", "--database-url", &app.database_url])
        .arg("--secret-file")
        .arg(secret_file)
        .env("PORTCULLIS_DATA_DIR", app.data_dir());
    if let Some(previous) = previous {
        cli.arg("--previous-secret-file").arg(previous);
    }
    let out = tokio::task::spawn_blocking(move || cli.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let status: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), status)
}

fn waiting_ids(status: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        status["waiting"].as_array().unwrap().iter().map(|w| w["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_rotation_rekeys_what_is_used_and_says_what_would_be_lost() {
    // One public URL across restarts, so tokens issued before one stay for this issuer.
    let mut app = TestApp::spawn_configured(|a| a.public_url = Some("http://gateway.test".into())).await;
    app.publish_sample_products().await;
    let used = agent(&app, &["accounts"]).await;
    let idle = agent(&app, &["accounts"]).await;
    let owner = app.store.user_by_email(&used.dev.email).await.unwrap().unwrap();
    let owner = Actor::new(owner, Channel::Cli);
    let pat = app.store.create_access_token(&owner, "ci", Some(1), Scopes::all()).await.unwrap();
    let before = token(&app.base, &used.reg.client_id, &used.reg.secret.secret).await.unwrap();
    assert_eq!(gw(&app.base, &used.key.secret).await, StatusCode::OK);
    let old_file = write(app.data_dir(), "old.secret", SECRET);
    let new_file = write(app.data_dir(), "new.secret", NEW_SECRET);
    let (code, status) = secret_status(&app, &old_file, None).await;
    assert_eq!((code, status["waiting"].as_array().unwrap().len()), (0, 0), "before a rotation: {status}");
    assert_eq!(status["store_secret"], fingerprint(SECRET));

    // Rotate: the new secret, and the old one as previous.
    app.restart_with(|a| {
        a.store.secret = None;
        a.store.secret_file = Some(new_file.clone());
        a.store.previous_secret_file = Some(old_file.clone());
    })
    .await;
    let (code, status) = secret_status(&app, &new_file, Some(&old_file)).await;
    assert_eq!(code, 3, "everything still needs the previous secret: {status}");
    assert_eq!(status["store_secret"], fingerprint(NEW_SECRET), "the first server with the new secret declares it");
    assert_eq!(status["signing_keys_on_previous"], 0, "signing keys are sealed again at start: {status}");
    let mut all = vec![
        used.key.credential_id.clone(),
        used.reg.secret.credential_id.clone(),
        idle.key.credential_id.clone(),
        idle.reg.secret.credential_id.clone(),
        pat.id.clone(),
    ];
    all.sort();
    assert_eq!(waiting_ids(&status), all);

    // Everything made before the rotation works: API key, client secret, token, PAT.
    assert_eq!(gw(&app.base, &used.key.secret).await, StatusCode::OK);
    assert_eq!(bearer(&app.base, &before).await, StatusCode::OK, "a token signed before the rotation");
    let during = token(&app.base, &used.reg.client_id, &used.reg.secret.secret).await.unwrap();
    assert_eq!(bearer(&app.base, &during).await, StatusCode::OK);
    assert_eq!(me(&app.base, &pat.token).await, StatusCode::OK);
    // A wrong secret for the right client stays wrong, and re-keys nothing.
    let wrong = token(&app.base, &used.reg.client_id, &idle.reg.secret.secret).await;
    assert_eq!(wrong.map_err(|e| e.0), Err(StatusCode::UNAUTHORIZED));
    let made_during = app.store.issue_api_key(&owner, &used.reg.secret.profile_id).await.unwrap();

    // What was presented is re-keyed shortly after (off the request path).
    let used_ids = [&*used.key.credential_id, &*used.reg.secret.credential_id, &*pat.id];
    let started = Instant::now();
    while hash_keys(&app, &used_ids).await.iter().any(|k| k.as_deref() != Some(fingerprint(NEW_SECRET).as_str())) {
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", hash_keys(&app, &used_ids).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, status) = secret_status(&app, &new_file, Some(&old_file)).await;
    let mut idle_ids = vec![idle.key.credential_id.clone(), idle.reg.secret.credential_id.clone()];
    idle_ids.sort();
    assert_eq!((code, waiting_ids(&status)), (3, idle_ids.clone()), "only the idle agent's credentials wait: {status}");
    assert_eq!(gw(&app.base, &used.key.secret).await, StatusCode::OK, "re-keyed, it still works");

    // Drop the previous secret.
    app.restart_with(|a| a.store.previous_secret_file = None).await;
    assert_eq!(gw(&app.base, &used.key.secret).await, StatusCode::OK);
    assert_eq!(gw(&app.base, &made_during.secret).await, StatusCode::OK, "made with the new secret");
    assert!(token(&app.base, &used.reg.client_id, &used.reg.secret.secret).await.is_ok());
    assert_eq!(bearer(&app.base, &before).await, StatusCode::OK, "its signing key was sealed again");
    assert_eq!(me(&app.base, &pat.token).await, StatusCode::OK);
    // What status listed as waiting is lost, as it said.
    assert_eq!(gw(&app.base, &idle.key.secret).await, StatusCode::UNAUTHORIZED);
    assert!(token(&app.base, &idle.reg.client_id, &idle.reg.secret.secret).await.is_err());
    let (code, status) = secret_status(&app, &new_file, None).await;
    assert_eq!((code, waiting_ids(&status)), (3, idle_ids), "{status}");

    // A server still configured with the old secret alone refuses to start, rather than
    // writing hashes nobody else can check.
    let stale = Application::build(
        serve_args(app.data_dir().join("stale"), Some(app.database_url.clone()), Some(SECRET.into()), false),
        Clock::system(),
    )
    .await;
    let Err(StartError::Store(e)) = stale else { panic!("a server with a secret the store does not know started") };
    assert!(e.to_string().contains("does not hold"), "{e}");
}

/// Two replicas holding both secrets re-key under load: no request is refused while
/// rows move (each replica finds a row under either hash until it reloads), and every
/// used credential ends under the new secret once.
#[tokio::test]
async fn two_replicas_rekey_under_load_without_refusing_anyone() {
    let mut app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let admin = app.operator_admin().await;
    app.store.set_rate_limit(&admin, &a.reg.secret.profile_id, 100_000, 10_000).await.unwrap();
    let mut keys = vec![a.key.clone()];
    for _ in 0..7 {
        keys.push(a.dev.call("issue_api_key", &[("profile_id", &a.reg.secret.profile_id)]).await.ok());
    }
    app.shut_down().await;
    let old_file = write(app.data_dir(), "old.secret", SECRET);
    let new_file = write(app.data_dir(), "new.secret", NEW_SECRET);
    let replica = || {
        let mut cmd = Server::command_on(&app, &app.database_url);
        cmd.env_remove("PORTCULLIS_SECRET")
            .env("PORTCULLIS_SECRET_FILE", &new_file)
            .env("PORTCULLIS_PREVIOUS_SECRET_FILE", &old_file);
        cmd
    };
    let (one, two) = tokio::join!(Server::spawn(replica()), Server::spawn(replica()));
    let bases = [one.base.clone(), two.base.clone()];

    let mut calls = tokio::task::JoinSet::new();
    for round in 0..25usize {
        for (i, key) in keys.iter().enumerate() {
            let (base, key) = (bases[(round + i) % 2].clone(), key.secret.clone());
            calls.spawn(async move { gw(&base, &key).await });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut refused = Vec::new();
    while let Some(status) = calls.join_next().await {
        refused.extend(Some(status.unwrap()).filter(|s| *s != StatusCode::OK));
    }
    assert_eq!(refused, Vec::<StatusCode>::new(), "requests refused while credentials were re-keyed");
    let ids: Vec<&str> = keys.iter().map(|k| k.credential_id.as_str()).collect();
    let started = Instant::now();
    loop {
        let keyed = hash_keys(&app, &ids).await;
        if keyed.iter().all(|k| k.as_deref() == Some(fingerprint(NEW_SECRET).as_str())) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{keyed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for key in &keys {
        for base in &bases {
            assert_eq!(gw(base, &key.secret).await, StatusCode::OK);
        }
    }
    one.kill();
    two.kill();
}
