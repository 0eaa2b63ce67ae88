use crate::helpers::{TestApp, PASSWORD};
use reqwest::header::{ORIGIN, SET_COOKIE};

#[tokio::test]
async fn sign_up_sign_in_and_sign_out() {
    let app = TestApp::spawn().await;
    let dev = app.developer("ada").await;
    let me = dev.call("current_user", &[]).await.ok::<Option<portcullis_domain::model::UserView>>().expect("signed in");
    assert_eq!(me.email, dev.email);
    assert_eq!(me.role, portcullis_domain::model::Role::Developer);

    assert!(dev.call("sign_out", &[]).await.status < 400);
    assert_eq!(dev.call("current_user", &[]).await.ok::<Option<serde_json::Value>>(), None);
    assert_eq!(dev.call("list_clients", &[]).await.status, 401);

    let again = app.session();
    let a = again.call("sign_in", &[("email", &dev.email), ("password", PASSWORD)]).await;
    assert!(a.status < 400, "{a:?}");
    assert!(again.call("current_user", &[]).await.ok::<Option<serde_json::Value>>().is_some());
}

#[tokio::test]
async fn wrong_password_and_unknown_account_look_the_same() {
    let app = TestApp::spawn().await;
    let dev = app.developer("bob").await;
    let s = app.session();
    let wrong = s.call("sign_in", &[("email", &dev.email), ("password", "not the password at all")]).await;
    let unknown =
        s.call("sign_in", &[("email", "nobody-here@example.com"), ("password", "not the password at all")]).await;
    assert_eq!(wrong.status, 422);
    assert_eq!((wrong.status, &wrong.body), (unknown.status, &unknown.body));
}

#[tokio::test]
async fn sign_in_is_throttled_per_account_without_revealing_it() {
    let app = TestApp::spawn().await;
    let s = app.session();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses
            .push(s.call("sign_in", &[("email", "ghost@example.com"), ("password", "guess guess guess")]).await.status);
    }
    assert_eq!(&statuses[..5], &[422; 5]);
    assert_eq!(statuses[5], 429, "{statuses:?}");
    // Another account from the same address is not locked out by the first one's limit.
    let other = s.call("sign_in", &[("email", "someone-else@example.com"), ("password", "guess guess guess")]).await;
    assert_eq!(other.status, 422);
}

#[tokio::test]
async fn weak_passwords_and_duplicate_emails_are_refused() {
    let app = TestApp::spawn().await;
    let s = app.session();
    let weak = s.call("sign_up", &[("email", "weak@example.com"), ("password", "short")]).await;
    assert_eq!(weak.status, 422);
    let dev = app.developer("dup").await;
    let dup = app.session().call("sign_up", &[("email", &dev.email.to_uppercase()), ("password", PASSWORD)]).await;
    assert_eq!(dup.status, 409, "{dup:?}");
}

#[tokio::test]
async fn session_cookie_is_http_only_lax_and_rotated_at_sign_in() {
    let app = TestApp::spawn().await;
    let dev = app.developer("cookie").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // A session that exists before sign-in (a planted one) must not survive it.
    let first = http
        .post(format!("{}/api/sign_in", app.base))
        .header(ORIGIN, &app.base)
        .header("accept", "application/json")
        .form(&[("email", "nobody@example.com"), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert!(first.headers().get(SET_COOKIE).is_none(), "no session for a failed sign-in");
    let res = http
        .post(format!("{}/api/sign_in", app.base))
        .header(ORIGIN, &app.base)
        .header("accept", "application/json")
        .header("cookie", "portcullis_session=planted-session-id")
        .form(&[("email", dev.email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = res.headers().get(SET_COOKIE).expect("session cookie").to_str().unwrap().to_owned();
    assert!(cookie.starts_with("portcullis_session="), "{cookie}");
    assert!(!cookie.contains("planted-session-id"));
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let app = TestApp::spawn().await;
    let dev = app.developer("csrf").await;
    let res = dev
        .http
        .post(format!("{}/api/register_client", app.base))
        .header(ORIGIN, "http://evil.example")
        .header("accept", "application/json")
        .form(&[("name", "x"), ("kind", "ai_agent"), ("description", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = dev
        .http
        .post(format!("{}/api/register_client", app.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[("name", "x"), ("kind", "ai_agent"), ("description", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(dev.call("list_clients", &[]).await.ok::<Vec<serde_json::Value>>().is_empty(), "nothing was created");
}
