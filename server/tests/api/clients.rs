use crate::helpers::{Session, TestApp};
use portcullis_app::api::Registration;
use portcullis_domain::model::{ClientDetail, CredentialState, Environment, IssuedSecret};
use portcullis_domain::time::HOUR;
use sqlx::Row;

async fn register(dev: &Session, name: &str) -> Registration {
    dev.call("register_client", &[("name", name), ("kind", "ai_agent"), ("description", "triages tickets")]).await.ok()
}

async fn detail(dev: &Session, client_id: &str) -> ClientDetail {
    dev.call("get_client", &[("client_id", client_id)]).await.ok()
}

async fn raw_pool(app: &TestApp) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&app.database_url).await.unwrap()
}

#[tokio::test]
async fn registering_an_agent_shows_the_secret_once_and_stores_only_a_hash() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ada").await;
    let reg = register(&dev, "Support triage agent").await;
    assert!(reg.secret.secret.starts_with("pcs_"));
    assert_eq!(reg.secret.environment, Environment::Sandbox);

    let d = detail(&dev, &reg.client_id).await;
    assert_eq!(d.client.name, "Support triage agent");
    assert_eq!(d.profiles.len(), 1);
    let sandbox = &d.profiles[0];
    assert_eq!(sandbox.id, reg.secret.profile_id);
    assert_eq!((sandbox.rate_per_minute, sandbox.burst), (60, 20));
    assert_eq!(sandbox.credentials.len(), 1);
    assert_eq!(sandbox.credentials[0].state, CredentialState::Active);
    assert!(reg.secret.secret.starts_with(&sandbox.credentials[0].prefix));

    // Reading the client again never shows the secret; neither does any table.
    let again = dev.call("get_client", &[("client_id", &reg.client_id)]).await;
    assert!(!again.body.to_string().contains(&reg.secret.secret));
    let pool = raw_pool(&app).await;
    for table in ["credentials", "audit_events", "clients", "profiles"] {
        let rows = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(&pool).await.unwrap();
        for row in rows {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    assert!(!text.contains(&reg.secret.secret[4..]), "{table} holds the secret");
                }
            }
        }
    }
    let hash: String = sqlx::query("SELECT secret_hash FROM credentials").fetch_one(&pool).await.unwrap().get(0);
    assert_eq!(hash.len(), 64, "an HMAC-SHA256 in hex");

    // The audit trail records who did what, in order.
    let actions: Vec<String> = sqlx::query(
        "SELECT action FROM audit_events WHERE target_type IN ('client', 'profile', 'credential') ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(actions, ["client.created", "profile.created", "credential.issued"]);
}

#[tokio::test]
async fn invalid_registrations_get_clear_errors() {
    let app = TestApp::spawn().await;
    let dev = app.developer("val").await;
    let empty = dev.call("register_client", &[("name", "  "), ("kind", "ai_agent"), ("description", "")]).await;
    assert_eq!(empty.status, 422);
    let kind = dev.call("register_client", &[("name", "x"), ("kind", "robot"), ("description", "")]).await;
    assert_eq!(kind.status, 422);
    assert!(kind.body.to_string().contains("robot"), "{:?}", kind.body);
    let anonymous =
        app.session().call("register_client", &[("name", "x"), ("kind", "ai_agent"), ("description", "")]).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn another_developer_cannot_see_or_touch_my_client() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let ada = app.developer("ada").await;
    let mallory = app.developer("mallory").await;
    let reg = register(&ada, "Ada's agent").await;
    let d = detail(&ada, &reg.client_id).await;
    let profile = &d.profiles[0].id;
    let credential = &d.profiles[0].credentials[0].id;
    let accounts = app.product_id("accounts").await;

    assert!(mallory.call("list_clients", &[]).await.ok::<Vec<serde_json::Value>>().is_empty());
    for (endpoint, args) in [
        ("get_client", vec![("client_id", reg.client_id.as_str())]),
        ("add_profile", vec![("client_id", reg.client_id.as_str()), ("environment", "production")]),
        ("rotate_secret", vec![("profile_id", profile.as_str())]),
        ("issue_api_key", vec![("profile_id", profile.as_str())]),
        ("revoke_credential", vec![("credential_id", credential.as_str())]),
        (
            "request_access",
            vec![
                ("profile_id", profile.as_str()),
                ("product_id", accounts.as_str()),
                ("scopes[]", "read"),
                ("justification", ""),
            ],
        ),
    ] {
        let a = mallory.call(endpoint, &args).await;
        assert_eq!(a.status, 404, "{endpoint}: {a:?}");
        assert_eq!(a.error(), "NotFound", "{endpoint}");
    }
    // The page by URL says the same, and nothing changed for Ada.
    let (status, html) = mallory.page(&format!("/clients/{}", reg.client_id)).await;
    assert_eq!(status, 404);
    assert!(html.contains("There is nothing here, or it belongs to someone else."));
    assert!(!html.contains("Ada&#x27;s agent") && !html.contains("Ada's agent"));
    let after = detail(&ada, &reg.client_id).await;
    assert_eq!(after, d);
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_for_the_grace_period_only() {
    let app = TestApp::spawn().await;
    let dev = app.developer("rot").await;
    let reg = register(&dev, "Rotating agent").await;
    let rotated: IssuedSecret = dev.call("rotate_secret", &[("profile_id", &reg.secret.profile_id)]).await.ok();
    assert_ne!(rotated.secret, reg.secret.secret);

    let d = detail(&dev, &reg.client_id).await;
    let creds = &d.profiles[0].credentials;
    let old = creds.iter().find(|c| c.id == reg.secret.credential_id).unwrap();
    let new = creds.iter().find(|c| c.id == rotated.credential_id).unwrap();
    assert_eq!(old.state, CredentialState::Grace);
    assert!(old.expires_at <= app.clock.now() + 24 * HOUR);
    assert_eq!(new.state, CredentialState::Active);

    app.clock.advance(25 * HOUR);
    let d = detail(&dev, &reg.client_id).await;
    let old = d.profiles[0].credentials.iter().find(|c| c.id == reg.secret.credential_id).unwrap();
    assert_eq!(old.state, CredentialState::Expired);
}

#[tokio::test]
async fn revoking_is_immediate_and_happens_once() {
    let app = TestApp::spawn().await;
    let dev = app.developer("rev").await;
    let reg = register(&dev, "Revoked agent").await;
    let key: IssuedSecret = dev.call("issue_api_key", &[("profile_id", &reg.secret.profile_id)]).await.ok();
    assert!(key.secret.starts_with("pck_"));
    assert!(dev.call("revoke_credential", &[("credential_id", &key.credential_id)]).await.status < 300);
    let d = detail(&dev, &reg.client_id).await;
    let revoked = d.profiles[0].credentials.iter().find(|c| c.id == key.credential_id).unwrap();
    assert_eq!(revoked.state, CredentialState::Revoked);
    let twice = dev.call("revoke_credential", &[("credential_id", &key.credential_id)]).await;
    assert_eq!(twice.status, 409);
}

#[tokio::test]
async fn a_production_profile_can_be_added_once() {
    let app = TestApp::spawn().await;
    let dev = app.developer("prod").await;
    let reg = register(&dev, "Prod agent").await;
    let prod: IssuedSecret =
        dev.call("add_profile", &[("client_id", &reg.client_id), ("environment", "production")]).await.ok();
    assert_eq!(prod.environment, Environment::Production);
    let d = detail(&dev, &reg.client_id).await;
    let p = d.profiles.iter().find(|p| p.environment == Environment::Production).unwrap();
    assert_eq!((p.rate_per_minute, p.burst), (600, 100));
    let again = dev.call("add_profile", &[("client_id", &reg.client_id), ("environment", "production")]).await;
    assert_eq!(again.status, 409);
}

#[tokio::test]
async fn the_portal_warns_fourteen_days_before_a_credential_expires() {
    let app = TestApp::spawn().await;
    let dev = app.developer("warn").await;
    let reg = register(&dev, "Ageing agent").await;
    let (_, html) = dev.page(&format!("/clients/{}", reg.client_id)).await;
    assert!(!html.contains("expiry-warning"));

    app.clock.advance(77 * portcullis_domain::time::DAY);
    let d = detail(&dev, &reg.client_id).await;
    assert_eq!(d.profiles[0].credentials[0].state, CredentialState::Expiring);
    let (_, html) = dev.page(&format!("/clients/{}", reg.client_id)).await;
    assert!(html.contains("Credentials expire soon."), "the page warns");

    app.clock.advance(14 * portcullis_domain::time::DAY);
    let d = detail(&dev, &reg.client_id).await;
    assert_eq!(d.profiles[0].credentials[0].state, CredentialState::Expired, "90 days by policy");
}

/// Every stored portal session's data, as bytes: the session store's own table.
async fn session_data(app: &TestApp) -> Vec<Vec<u8>> {
    let pool = raw_pool(app).await;
    let table = if app.database_url.starts_with("sqlite:") { "tower_sessions" } else { "tower_sessions.session" };
    let rows = sqlx::query(&format!("SELECT data FROM {table}")).fetch_all(&pool).await.unwrap();
    rows.iter().map(|r| r.get::<Vec<u8>, _>("data")).collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The value the page shows under `data-testid="secret-value"`, if any.
fn shown_secret(html: &str) -> Option<String> {
    let selector = scraper::Selector::parse(r#"[data-testid="secret-value"]"#).ok()?;
    scraper::Html::parse_document(html).select(&selector).next().map(|e| e.text().collect())
}

#[tokio::test]
async fn a_secret_issued_by_a_plain_form_post_waits_sealed_for_its_page_and_shows_once() {
    let app = TestApp::spawn().await;
    let dev = app.developer("plain").await;

    // A script's call (fetch) gets the secret as its answer; nothing waits in the session.
    let reg = register(&dev, "Scripted").await;
    assert!(session_data(&app).await.iter().all(|d| !contains(d, "outcome")));

    // A browser's own form post is answered with a redirect to the new client's page.
    let res = dev.form_post("register_client", &[("name", "Plain"), ("kind", "ai_agent"), ("description", "")]).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    let page = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(page.starts_with("/clients/cl_"), "{page}");

    // Until that page is opened the secret waits in the session store's table, sealed.
    let waiting = session_data(&app).await;
    assert!(waiting.iter().any(|d| contains(d, "outcome")), "the secret waits in the session");
    let (status, html) = dev.page(&page).await;
    assert_eq!(status, 200);
    let secret = shown_secret(&html).expect("the page shows the secret");
    assert!(secret.starts_with("pcs_") && secret != reg.secret.secret, "{secret}");
    assert!(waiting.iter().all(|d| !contains(d, &secret)), "never in the clear in the session store");

    // Shown once: the page no longer has it, nor does the session.
    let (_, again) = dev.page(&page).await;
    assert_eq!(shown_secret(&again), None);
    assert!(!again.contains(&secret));
    assert!(session_data(&app).await.iter().all(|d| !contains(d, "outcome")));

    // It was the real secret: the token endpoint takes it.
    let client_id = page.trim_start_matches("/clients/");
    let token = reqwest::Client::new()
        .post(format!("{}/oauth/token", app.base))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", &secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);

    // A secret waits for its own page only: another page does not take it.
    let res = dev.form_post("issue_api_key", &[("profile_id", &reg.secret.profile_id)]).await;
    let key_page = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(key_page, format!("/clients/{}", reg.client_id));
    assert_eq!(shown_secret(&dev.page(&page).await.1), None, "not the other client's page");
    assert_eq!(shown_secret(&dev.page("/tokens").await.1), None);
    let key = shown_secret(&dev.page(&key_page).await.1).expect("the key, on its client's page");
    assert!(key.starts_with("pck_"), "{key}");

    // A post that fails issues nothing and leaves nothing waiting.
    let res = dev.form_post("rotate_secret", &[("profile_id", "pf_not_mine")]).await;
    assert!(res.status().is_redirection());
    assert!(res.headers()["location"].to_str().unwrap().contains("__err="));
    assert!(session_data(&app).await.iter().all(|d| !contains(d, "outcome")));
}

/// The text of the page's notices (`role="status"`).
fn notices(html: &str) -> Vec<String> {
    let selector = scraper::Selector::parse(r#"[role="status"]"#).unwrap();
    scraper::Html::parse_document(html).select(&selector).map(|e| e.text().collect()).collect()
}

/// Every form of the portal is a plain post answered with a redirect; what it did is said
/// once on the page it was posted from, which is where the browser goes back to: without
/// a refused post's error in its query, and never off the site.
#[tokio::test]
async fn a_form_post_is_said_once_on_the_page_it_came_from_and_never_leads_off_site() {
    let app = TestApp::spawn().await;
    let dev = app.developer("forms").await;
    let reg = register(&dev, "Formed").await;
    let page = format!("/clients/{}", reg.client_id);
    let saving = [("profile_id", reg.secret.profile_id.as_str()), ("mode", "listed"), ("actors", "")];

    // Back to the page, with the rest of its query but without the error a refused post
    // had left there.
    let from = format!("{}{page}?__err=b2xk&__path=/api/set_may_act&tab=2", app.base);
    let res = dev.form_post_from(&from, "set_may_act", &saving).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"].to_str().unwrap(), format!("{page}?tab=2"));
    let said = "Saved who may act on this agent's behalf";
    let (status, html) = dev.page(&format!("{page}?tab=2")).await;
    assert_eq!(status, 200);
    assert!(notices(&html).iter().any(|n| n.starts_with(said)), "{:?}", notices(&html));
    // Once: a reload says nothing more, and the change is there.
    let (_, again) = dev.page(&page).await;
    assert!(notices(&again).iter().all(|n| !n.starts_with(said)), "{:?}", notices(&again));
    assert!(again.contains("No client"), "the profile lists nobody who may act for it");

    // Said only on its own page, and only to its own session.
    dev.form_post_from(&format!("{}{page}", app.base), "set_may_act", &saving).await;
    let other = app.developer("onlooker").await;
    assert!(notices(&other.page(&page).await.1).is_empty());
    assert!(notices(&dev.page("/clients").await.1).is_empty());
    assert!(notices(&dev.page(&page).await.1).iter().any(|n| n.starts_with(said)));

    // Any other refusal comes back in the query, and the page says it once, whichever of
    // its forms was refused.
    let bad = [("profile_id", reg.secret.profile_id.as_str()), ("mode", "everyone"), ("actors", "")];
    let res = dev.form_post_from(&format!("{}{page}", app.base), "set_may_act", &bad).await;
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.contains("__err="), "{back}");
    let html = dev.page(back.trim_start_matches(&app.base)).await.1;
    let alerts = scraper::Selector::parse(r#"[role="alert"]"#).unwrap();
    let said: Vec<String> = scraper::Html::parse_document(&html).select(&alerts).map(|e| e.text().collect()).collect();
    assert_eq!(said, ["Choose any client or the clients listed."]);

    // A refused Test access is said in the panel of the profile it tested, which the
    // browser comes back to; the error is not left in the query for every panel.
    let pid = reg.secret.profile_id.as_str();
    let form = [("profile_id", pid), ("method", "TRACE"), ("path", "/gw/accounts/accounts")];
    let res = dev.form_post_from(&format!("{}{page}", app.base), "test_access", &form).await;
    assert_eq!(res.headers()["location"].to_str().unwrap(), format!("{page}#test-{pid}"));
    let html = dev.page(&page).await.1;
    let panel = scraper::Selector::parse(r#"[data-testid="test-access"] [role="alert"]"#).unwrap();
    let said: Vec<String> = scraper::Html::parse_document(&html).select(&panel).map(|e| e.text().collect()).collect();
    assert_eq!(said, ["Choose GET, POST, PUT, PATCH or DELETE."], "once, in its panel");
    // A field that would put a control character on the way back cannot break the answer.
    let hostile = [("profile_id", "pf_x\r\nSet-Cookie: a=b"), ("method", "GET"), ("path", "/gw/x")];
    let res = dev.form_post_from(&format!("{}{page}", app.base), "test_access", &hostile).await;
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(res.headers()["location"].to_str().unwrap(), "/");
    assert!(res.headers().get("set-cookie").is_none_or(|c| !c.to_str().unwrap().starts_with("a=")));

    // A Referer that names anything but a page of this site sends the browser home.
    for hostile in [format!("{}//evil.example/x", app.base), "https://evil.example/x".into(), "not a url".into()] {
        let res = dev.form_post_from(&hostile, "set_may_act", &saving).await;
        assert!(res.status().is_redirection(), "{hostile}");
        let to = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(to == "/" || to == "/x", "{hostile}: {to}");
    }
    for (referer, back) in [
        (Some("http://h/clients/x?a=1&__err=e"), "/clients/x?a=1"),
        (Some("http://h//evil.example/x"), "/"),
        (Some("http://h/a\\b"), "/"),
        (Some("/"), "/"),
        (None, "/"),
    ] {
        assert_eq!(portcullis_app::ssr::back_to(referer), back, "{referer:?}");
    }
}
