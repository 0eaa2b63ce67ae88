use crate::helpers::{serve_args, Session, TestApp, SECRET};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_app::api::Registration;
use portcullis_domain::model::IssuedSecret;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

struct Client {
    dev: Session,
    reg: Registration,
}

async fn client_with_accounts_read(app: &TestApp) -> Client {
    let dev = app.developer("oauth").await;
    let reg: Registration =
        dev.call("register_client", &[("name", "Token agent"), ("kind", "ai_agent"), ("description", "")]).await.ok();
    let accounts = app.product_id("accounts").await;
    let g = dev
        .call(
            "request_access",
            &[
                ("profile_id", &reg.secret.profile_id),
                ("product_id", &accounts),
                ("scopes[]", "read"),
                ("justification", ""),
            ],
        )
        .await;
    assert_eq!(g.status, 200);
    Client { dev, reg }
}

async fn token_request(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new().post(format!("{}/oauth/token", app.base)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.send().await.unwrap();
    let (s, h) = (res.status(), res.headers().clone());
    (s, h, res.json().await.unwrap_or(Value::Null))
}

async fn gw(app: &TestApp, path: &str, token: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = reqwest::Client::new().get(format!("{}{path}", app.base)).bearer_auth(token).send().await.unwrap();
    let (s, h) = (res.status(), res.headers().clone());
    (s, h, res.json().await.unwrap_or(Value::Null))
}

fn decode_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn a_client_gets_a_token_and_calls_the_gateway_with_it() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let (status, headers, body) =
        token_request(&app, &[("grant_type", "client_credentials")], Some((&c.reg.client_id, &c.reg.secret.secret)))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().unwrap();
    let header = decode_part(token, 0);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("EdDSA"), Some("at+jwt")));
    let claims = decode_part(token, 1);
    assert_eq!(claims["sub"], c.reg.client_id.as_str());
    assert_eq!(claims["client_id"], c.reg.client_id.as_str());
    assert_eq!(claims["profile"], c.reg.secret.profile_id.as_str());
    assert_eq!((claims["env"].as_str(), claims["client_type"].as_str()), (Some("sandbox"), Some("ai-agent")));
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);

    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", app.base)).await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert!(jwks["keys"][0].get("d").is_none(), "no private material is published");
    let meta: Value = reqwest::get(format!("{}/.well-known/oauth-authorization-server", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["token_endpoint"], format!("{}/oauth/token", app.base));

    let (status, _, body) = gw(&app, "/gw/accounts/accounts", token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caller_credentials_seen"], false);
    // The token carries `read`: writing is refused even if a grant said otherwise.
    let (status, _, body) = gw(&app, "/gw/payments/payments", token).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (403, Some("not_granted")));

    // client_secret_post works the same.
    let (status, _, _) = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.reg.client_id),
            ("client_secret", &c.reg.secret.secret),
            ("scope", "read"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Token rows say what kind of client asked, like gateway rows.
    let kinds: Vec<Value> =
        app.wait_for_audit("channel = 'oauth'", 2).await.iter().map(|r| r["client_type"].clone()).collect();
    assert_eq!(kinds, ["ai_agent", "ai_agent"]);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let (id, secret) = (c.reg.client_id.as_str(), c.reg.secret.secret.as_str());

    let (s, h, wrong) = token_request(&app, &[("grant_type", "client_credentials")], Some((id, "pcs_wrong"))).await;
    assert_eq!((s.as_u16(), wrong["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(h["www-authenticate"], r#"Basic realm="portcullis""#);
    let (s, _, unknown) =
        token_request(&app, &[("grant_type", "client_credentials")], Some(("cl_nobody", secret))).await;
    assert_eq!((s.as_u16(), &unknown), (401, &wrong), "unknown client and wrong secret look the same");

    // (form, basic credentials, expected status, expected error)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Option<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("grant_type", "password")], Some((id, secret)), 400, "unsupported_grant_type"),
        (vec![], Some((id, secret)), 400, "invalid_request"),
        (vec![("grant_type", "client_credentials"), ("scope", "write")], Some((id, secret)), 400, "invalid_scope"),
        (
            vec![("grant_type", "client_credentials"), ("client_secret", secret)],
            Some((id, secret)),
            400,
            "invalid_request",
        ),
        (
            vec![("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
            Some((id, secret)),
            400,
            "invalid_request",
        ),
        (vec![("grant_type", "client_credentials")], None, 401, "invalid_client"),
    ];
    for (form, basic, status, error) in cases {
        let (s, h, body) = token_request(&app, &form, basic).await;
        assert_eq!((s.as_u16(), body["error"].as_str()), (status, Some(error)), "{form:?}");
        assert_eq!(h["cache-control"], "no-store");
    }
    // The API key is not a client secret.
    let key: IssuedSecret = c.dev.call("issue_api_key", &[("profile_id", &c.reg.secret.profile_id)]).await.ok();
    let (s, _, _) = token_request(&app, &[("grant_type", "client_credentials")], Some((id, &key.secret))).await;
    assert_eq!(s, 401);

    // Every call left an audit row on the oauth channel, and no more.
    assert_eq!(app.wait_for_audit("channel = 'oauth'", 9).await.len(), 9);
}

async fn valid_token(app: &TestApp, c: &Client) -> String {
    let (_, _, body) =
        token_request(app, &[("grant_type", "client_credentials")], Some((&c.reg.client_id, &c.reg.secret.secret)))
            .await;
    body["access_token"].as_str().unwrap().to_owned()
}

/// The server's current signing key, recovered as only someone holding both the
/// database and the server secret could: to forge tokens that are correctly signed.
async fn server_signing_key(app: &TestApp) -> (String, EncodingKey) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let row = sqlx::query("SELECT kid, sealed_private_key FROM signing_keys WHERE retired_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    let kid: String = row.get("kid");
    let sealed = URL_SAFE_NO_PAD.decode(row.get::<String, _>("sealed_private_key")).unwrap();
    let key = portcullis_domain::secrets::ServerSecret::parse(SECRET).unwrap().derive("signing-key-seal/v1");
    let (nonce, ct) = sealed.split_at(12);
    let der = aes_gcm::Aes256Gcm::new((&key).into())
        .decrypt(aes_gcm::Nonce::from_slice(nonce), Payload { msg: ct, aad: kid.as_bytes() })
        .unwrap();
    (kid, EncodingKey::from_ed_der(&der))
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let good = valid_token(&app, &c).await;
    let claims = decode_part(&good, 1);
    let header = decode_part(&good, 0);
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let sig = good.split('.').nth(2).unwrap();

    let mut tampered = claims.clone();
    tampered["scope"] = json!("read write");
    let alg_none = format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "at+jwt" })), b64(&claims));
    let hs256 = {
        let jwks: Value =
            reqwest::get(format!("{}/.well-known/jwks.json", app.base)).await.unwrap().json().await.unwrap();
        let public = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = header["kid"].as_str().map(str::to_owned);
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&public)).unwrap()
    };
    // Access tokens say so (RFC 9068): every forgery below but one does too.
    let at_jwt = |kid: Option<String>| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        h.kid = kid;
        h
    };
    let foreign_key = {
        let k = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let h = at_jwt(header["kid"].as_str().map(str::to_owned));
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ed_der(k.to_pkcs8_der().unwrap().as_bytes())).unwrap()
    };
    let (kid, server_key) = server_signing_key(&app).await;
    let signed = |mut claims: Value, edit: &dyn Fn(&mut Value)| {
        edit(&mut claims);
        jsonwebtoken::encode(&at_jwt(Some(kid.clone())), &claims, &server_key).unwrap()
    };
    let unknown_kid = jsonwebtoken::encode(&at_jwt(Some("k-not-ours".into())), &claims, &server_key).unwrap();
    let with_jku = {
        let mut h = at_jwt(Some(kid.clone()));
        h.jku = Some("https://attacker.example/jwks.json".into());
        jsonwebtoken::encode(&h, &claims, &server_key).unwrap()
    };
    // Correctly signed by our key, with our claims, but not typed as an access token (an
    // ID token, say, had the key ever signed one).
    let plain_jwt = {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, &claims, &server_key).unwrap()
    };
    let cases = [
        (
            "tampered payload",
            format!("{}.{}.{sig}", good.split('.').next().unwrap(), b64(&tampered)),
            "unknown access token",
        ),
        ("alg none", alg_none, "malformed access token"),
        ("HS256 with the public key", hs256, "malformed access token"),
        ("another key, our kid", foreign_key, "unknown access token"),
        ("unknown kid", unknown_kid, "unknown access token"),
        ("header-supplied key", with_jku, "malformed access token"),
        ("typ JWT, not at+jwt", plain_jwt, "malformed access token"),
        (
            "wrong audience",
            signed(claims.clone(), &|c| c["aud"] = json!("https://elsewhere.example")),
            "unknown access token",
        ),
        (
            "wrong issuer",
            signed(claims.clone(), &|c| c["iss"] = json!("https://elsewhere.example")),
            "unknown access token",
        ),
        ("exp as a string", signed(claims.clone(), &|c| c["exp"] = json!("99999999999")), "malformed access token"),
        (
            "no exp",
            signed(claims.clone(), &|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "malformed access token",
        ),
        ("garbage", "not.a.jwt".to_owned(), "malformed access token"),
    ];
    for (what, token, description) in &cases {
        let (status, h, body) = gw(&app, "/gw/accounts/accounts", token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["code"], "invalid_token", "{what}");
        assert!(h["www-authenticate"].to_str().unwrap().contains(description), "{what}: {:?}", h["www-authenticate"]);
    }
    // The correctly signed token still works; then time passes beyond its expiry.
    assert_eq!(gw(&app, "/gw/accounts/accounts", &good).await.0, 200);
    app.clock.advance(16 * portcullis_domain::time::MINUTE);
    let (status, h, _) = gw(&app, "/gw/accounts/accounts", &good).await;
    assert_eq!(status, 401);
    assert!(h["www-authenticate"].to_str().unwrap().contains("expired access token"));
}

#[tokio::test]
async fn revoking_or_rotating_the_secret_ends_its_tokens_on_the_next_request() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let token = valid_token(&app, &c).await;
    assert_eq!(gw(&app, "/gw/accounts/accounts", &token).await.0, 200);

    // Rotation: the old secret still gets tokens during the grace period, then not.
    let rotated: IssuedSecret = c.dev.call("rotate_secret", &[("profile_id", &c.reg.secret.profile_id)]).await.ok();
    assert_eq!(
        token_request(&app, &[("grant_type", "client_credentials")], Some((&c.reg.client_id, &c.reg.secret.secret)))
            .await
            .0,
        200
    );
    assert_eq!(
        token_request(&app, &[("grant_type", "client_credentials")], Some((&c.reg.client_id, &rotated.secret))).await.0,
        200
    );

    assert!(c.dev.call("revoke_credential", &[("credential_id", &c.reg.secret.credential_id)]).await.status < 300);
    let (status, h, _) = gw(&app, "/gw/accounts/accounts", &token).await;
    assert_eq!(status, 401);
    assert!(h["www-authenticate"].to_str().unwrap().contains("revoked access token"));
    assert_eq!(
        token_request(&app, &[("grant_type", "client_credentials")], Some((&c.reg.client_id, &c.reg.secret.secret)))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn a_token_from_another_issuer_sharing_the_keys_is_refused() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    // A second server on the same database and secret, published under another URL.
    let dir = std::env::temp_dir().join(format!("portcullis-iss-{}", uuid::Uuid::now_v7().simple()));
    let mut args = serve_args(dir, Some(app.database_url.clone()), Some(SECRET.into()), false);
    args.public_url = Some("https://other.example".into());
    let other = portcullis::application::Application::build(args, app.clock.clone()).await.unwrap();
    let other_base = format!("http://127.0.0.1:{}", other.port());
    tokio::spawn(other.run_until(std::future::pending()));
    let res = reqwest::Client::new()
        .post(format!("{other_base}/oauth/token"))
        .basic_auth(&c.reg.client_id, Some(&c.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(decode_part(&token, 1)["iss"], "https://other.example");
    let (status, h, _) = gw(&app, "/gw/accounts/accounts", &token).await;
    assert_eq!(status, 401);
    assert!(h["www-authenticate"].to_str().unwrap().contains("unknown access token"));
}

async fn oauth_post(app: &TestApp, path: &str, c: &Client, token: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .basic_auth(&c.reg.client_id, Some(&c.reg.secret.secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn introspection_and_revocation_of_a_clients_own_tokens() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let other = client_with_accounts_read(&app).await;
    let token = valid_token(&app, &c).await;

    let (status, body) = oauth_post(&app, "/oauth/introspect", &c, &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], c.reg.client_id.as_str());
    assert_eq!(body["scope"], "read");
    // Another client learns nothing about it, nor about garbage.
    assert_eq!(oauth_post(&app, "/oauth/introspect", &other, &token).await.1, json!({ "active": false }));
    assert_eq!(oauth_post(&app, "/oauth/introspect", &c, "garbage").await.1, json!({ "active": false }));
    // Nor can another client revoke it.
    assert_eq!(oauth_post(&app, "/oauth/revoke", &other, &token).await.0, 200);
    assert_eq!(gw(&app, "/gw/accounts/accounts", &token).await.0, 200);

    assert_eq!(oauth_post(&app, "/oauth/revoke", &c, &token).await.0, 200);
    let (status, h, _) = gw(&app, "/gw/accounts/accounts", &token).await;
    assert_eq!(status, 401);
    assert!(h["www-authenticate"].to_str().unwrap().contains("revoked access token"));
    assert_eq!(oauth_post(&app, "/oauth/introspect", &c, &token).await.1, json!({ "active": false }));
    // Revoking again, or revoking garbage, is still a 200.
    assert_eq!(oauth_post(&app, "/oauth/revoke", &c, &token).await.0, 200);
    assert_eq!(oauth_post(&app, "/oauth/revoke", &c, "garbage").await.0, 200);
    // A fresh token works: revocation was of that token only.
    assert_eq!(gw(&app, "/gw/accounts/accounts", &valid_token(&app, &c).await).await.0, 200);
    // Without client authentication: 401.
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/introspect", app.base))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn an_admin_sets_a_profiles_token_lifetime_and_new_tokens_get_it() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let profile = c.reg.secret.profile_id.as_str();
    // The owner may not: lifetimes are policy.
    let own = c.dev.call("set_token_lifetime", &[("profile_id", profile), ("seconds", "3600")]).await;
    assert_eq!(own.error(), "Forbidden", "{own:?}");
    let admin = app.user_with_role(portcullis_domain::model::Role::Admin).await;
    for bad in ["59", "3601", "soon"] {
        let r = admin.call("set_token_lifetime", &[("profile_id", profile), ("seconds", bad)]).await;
        assert_eq!(r.error(), "Invalid", "{bad}: {r:?}");
    }
    let ok = admin.call("set_token_lifetime", &[("profile_id", profile), ("seconds", "120")]).await;
    assert!(ok.status < 300, "{ok:?}");

    let (status, _, body) =
        token_request(&app, &[("grant_type", "client_credentials")], Some((&c.reg.client_id, &c.reg.secret.secret)))
            .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 120);
    let claims = decode_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
    let page = c.dev.page(&format!("/clients/{}", c.reg.client_id)).await.1;
    assert!(page.contains("120 seconds"), "the profile page shows the lifetime");
}

async fn kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", app.base)).await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn signing_keys_rotate_on_schedule_and_on_command_and_old_tokens_keep_verifying() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let token = |app: &TestApp| {
        let (id, secret) = (c.reg.client_id.clone(), c.reg.secret.secret.clone());
        let base = app.base.clone();
        async move {
            let res = reqwest::Client::new()
                .post(format!("{base}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
        }
    };
    let first = token(&app).await;
    let first_kid = decode_part(&first, 0)["kid"].as_str().unwrap().to_owned();
    assert_eq!(kids(&app).await, std::slice::from_ref(&first_kid));

    // The schedule: a young key stays, a key past its age is replaced — by a successor
    // published at once and signing an hour later.
    let thirty_days = 30 * portcullis_domain::time::DAY;
    assert_eq!(app.store.rotate_signing_key_if_older(thirty_days).await.unwrap(), None);
    app.clock.advance(thirty_days + 1);
    let scheduled = app.store.rotate_signing_key_if_older(thirty_days).await.unwrap().expect("rotated");
    assert_eq!(app.store.rotate_signing_key_if_older(thirty_days).await.unwrap(), None, "one rotation");
    assert_eq!(kids(&app).await, [scheduled.clone(), first_kid.clone()], "the successor is published");
    let still_old = token(&app).await;
    assert_eq!(decode_part(&still_old, 0)["kid"], first_kid.as_str(), "the old key signs until the successor's time");
    assert_eq!(gw(&app, "/gw/accounts/accounts", &still_old).await.0, 200);
    app.clock.advance(portcullis_domain::oauth::PUBLISH_AHEAD_MS - 1000);
    assert_eq!(decode_part(&token(&app).await, 0)["kid"], first_kid.as_str(), "a second before its time");
    app.clock.advance(1000);
    // No reload between: the ring picks the signer by the time of signing.
    let second = token(&app).await;
    assert_eq!(decode_part(&second, 0)["kid"], scheduled.as_str(), "the successor signs from its time");
    assert_eq!(gw(&app, "/gw/accounts/accounts", &second).await.0, 200);
    app.clock.advance(-thirty_days - 1 - portcullis_domain::oauth::PUBLISH_AHEAD_MS);
    assert_eq!(gw(&app, "/gw/accounts/accounts", &first).await.0, 200, "the superseded key's tokens verify");

    // The command, as an operator runs it against the same database; the server picks
    // the key up at its next poll of the policy version (every second).
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cli.args(["admin", "rotate-signing-key", "--activate-in", "0", "--database-url", &app.database_url])
        .env("PORTCULLIS_SECRET", SECRET)
        .env("PORTCULLIS_DATA_DIR", std::env::temp_dir());
    // Off the runtime: the server under test runs on it and may hold the database.
    let out = tokio::task::spawn_blocking(move || cli.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut published = kids(&app).await;
    for _ in 0..30 {
        if published.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        published = kids(&app).await;
    }
    let fresh: Vec<&String> = published.iter().filter(|k| **k != scheduled && **k != first_kid).collect();
    assert_eq!((published.len(), fresh.len()), (3, 1), "{published:?}");
    assert_eq!(decode_part(&token(&app).await, 0)["kid"], fresh[0].as_str(), "new tokens use the new key");

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let channels: Vec<String> =
        sqlx::query_scalar("SELECT channel FROM audit_events WHERE action = 'signing_key.rotated' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(channels, ["system", "scheduler", "cli"]);
}

#[tokio::test]
async fn revoking_a_compromised_signing_key_kills_every_token_it_signed() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    let token = valid_token(&app, &c).await;
    let kid = decode_part(&token, 0)["kid"].as_str().unwrap().to_owned();
    assert_eq!(gw(&app, "/gw/accounts/accounts", &token).await.0, 200);

    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cli.args(["admin", "revoke-signing-key", "--kid", &kid, "--database-url", &app.database_url])
        .env("PORTCULLIS_SECRET", SECRET)
        .env("PORTCULLIS_DATA_DIR", std::env::temp_dir());
    let out = tokio::task::spawn_blocking(move || cli.output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The running server learns of it from the policy version, within a second or so.
    let started = std::time::Instant::now();
    let mut refused = gw(&app, "/gw/accounts/accounts", &token).await;
    while refused.0 == 200 && started.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        refused = gw(&app, "/gw/accounts/accounts", &token).await;
    }
    assert_eq!(refused.0, 401, "refused {:?} after the revocation", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_millis(2500), "{:?}", started.elapsed());
    assert!(refused.1["www-authenticate"].to_str().unwrap().contains("unknown access token"));
    assert!(!kids(&app).await.contains(&kid), "no longer published");
    // A fresh key is current: new tokens work.
    let fresh = valid_token(&app, &c).await;
    assert_ne!(decode_part(&fresh, 0)["kid"], kid.as_str());
    assert_eq!(gw(&app, "/gw/accounts/accounts", &fresh).await.0, 200);
    // Revoking it twice, or a made-up key, is an error for the operator.
    let mut again = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    again
        .args(["admin", "revoke-signing-key", "--kid", &kid, "--database-url", &app.database_url])
        .env("PORTCULLIS_SECRET", SECRET)
        .env("PORTCULLIS_DATA_DIR", std::env::temp_dir());
    let out = tokio::task::spawn_blocking(move || again.output()).await.unwrap().unwrap();
    assert!(!out.status.success());
}

/// ES256 access tokens, for resource servers whose JWT libraries lack EdDSA: switched on
/// by configuration, taking effect with the next signing key; tokens of the previous
/// (EdDSA) key keep working; a library that is not ours verifies the new tokens from the
/// published JWKS; and the key, never the token, decides the algorithm.
#[tokio::test]
async fn es256_tokens_verify_with_a_library_that_is_not_ours_and_only_as_es256() {
    let mut app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let c = client_with_accounts_read(&app).await;
    assert_eq!(decode_part(&valid_token(&app, &c).await, 0)["alg"], "EdDSA");

    // (A restart moves the test server to a new port, and so to a new issuer: tokens
    // from before it are another issuer's.)
    app.restart_with(|args| args.store.token_signing_alg = portcullis_domain::enforcement::SigningAlg::ES256).await;
    let eddsa = valid_token(&app, &c).await;
    assert_eq!(decode_part(&eddsa, 0)["alg"], "EdDSA", "the current key keeps its algorithm");
    app.store.rotate_signing_key("cli").await.unwrap();
    let es256 = valid_token(&app, &c).await;
    let header = decode_part(&es256, 0);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("ES256"), Some("at+jwt")));
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", app.base)).await.unwrap().json().await.unwrap();
    let published: Vec<(&str, &str, &str)> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kty"].as_str().unwrap(), k["crv"].as_str().unwrap(), k["alg"].as_str().unwrap()))
        .collect();
    assert!(
        published.contains(&("EC", "P-256", "ES256")) && published.contains(&("OKP", "Ed25519", "EdDSA")),
        "{published:?}"
    );
    assert_eq!(gw(&app, "/gw/accounts/accounts", &es256).await.0, 200);
    let old = gw(&app, "/gw/accounts/accounts", &eddsa).await;
    assert_eq!(old.0, 200, "the previous key's tokens still verify: {:?}", old.2);

    // A resource server with joserfc, from the JWKS alone.
    let python = crate::mcp_clients::installed(crate::mcp_clients::root().join(".tools/mcp-sdk1/bin/python"));
    let mut cmd = std::process::Command::new(python);
    cmd.arg(crate::mcp_clients::clients_dir().join("verify_token.py")).arg(&app.base).arg(&es256).arg("ES256");
    let verified = crate::mcp_clients::run_json(cmd).await;
    assert_eq!(verified["alg"], "ES256");
    assert_eq!(verified["kid"], header["kid"]);
    assert_eq!(verified["claims"]["client_id"], c.reg.client_id.as_str());

    // The token cannot choose another algorithm for the same key: not by renaming it,
    // not by an HMAC keyed with the public key (the classic confusion).
    let (_, payload_and_sig) = es256.split_once('.').unwrap();
    let mut renamed = header.clone();
    renamed["alg"] = json!("EdDSA");
    let renamed = format!("{}.{payload_and_sig}", URL_SAFE_NO_PAD.encode(renamed.to_string()));
    let ec = jwks["keys"].as_array().unwrap().iter().find(|k| k["kty"] == "EC").unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = ec["kid"].as_str().map(str::to_owned);
    let claims = decode_part(&es256, 1);
    let confused =
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(ec["x"].as_str().unwrap().as_bytes())).unwrap();
    for forged in [renamed, confused] {
        let (status, _, body) = gw(&app, "/gw/accounts/accounts", &forged).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
    }
}
