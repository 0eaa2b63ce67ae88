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

#[tokio::test]
async fn passwords_attackers_try_first_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    for leaked in ["password1234", "qwertyuiop123", "iloveyou2024!"] {
        let s = app.session();
        let email = format!("leaky-{}@example.com", uuid::Uuid::now_v7().simple());
        let a = s.call("sign_up", &[("email", &email), ("password", leaked)]).await;
        assert_eq!(a.status, 422, "{leaked}: {a:?}");
        assert!(a.body.to_string().contains("attackers try first"), "{a:?}");
        assert_eq!(s.call("current_user", &[]).await.ok::<Option<serde_json::Value>>(), None, "no account, no session");
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_signed_out_visitor_signs_in_first_and_comes_back_to_the_page_they_wanted() {
    let app = TestApp::spawn().await;
    let dev = app.developer("returning").await;
    let visitor = app.session();
    // The page is not shown with a form that would only refuse: the visitor is sent to sign in.
    for wanted in ["/clients/new", "/tokens", "/clients/cl_somewhere?tab=1"] {
        let res = visitor
            .http
            .get(format!("{}{wanted}", app.base))
            .header(reqwest::header::ACCEPT, "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "{wanted}");
        let to = location(&res);
        let expected = format!("/login?{}", serde_urlencoded::to_string([("next", wanted)]).unwrap());
        assert_eq!(to, expected, "{wanted}");
    }
    let res =
        visitor.form_post("sign_in", &[("email", &dev.email), ("password", PASSWORD), ("next", "/clients/new")]).await;
    assert!(res.status().is_redirection());
    assert_eq!(location(&res), "/clients/new");
    assert_eq!(visitor.page("/clients/new").await.0, 200);

    // `next` leads only to a page of this site. (Three through the server: more sign-ins
    // to one account from one address in a moment would be throttled.)
    for hostile in ["//evil.example/x", "/\\evil.example", "https://evil.example/", "evil", "/x\r\nSet-Cookie: a=b", ""]
    {
        assert_eq!(portcullis_app::api::after_sign_in(Some(hostile)), "/clients", "{hostile:?}");
    }
    for hostile in ["//evil.example/x", "/\\evil.example", "https://evil.example/"] {
        let s = app.session();
        let res = s.form_post("sign_in", &[("email", &dev.email), ("password", PASSWORD), ("next", hostile)]).await;
        assert!(res.status().is_redirection(), "{hostile:?}");
        assert_eq!(location(&res), "/clients", "{hostile:?}");
    }
}

#[tokio::test]
async fn a_page_about_someone_elses_client_is_a_real_404_with_a_way_back() {
    let app = TestApp::spawn().await;
    let owner = app.developer("owner").await;
    let reg: portcullis_app::api::Registration = owner
        .call("register_client", &[("name", "Private agent"), ("kind", "ai_agent"), ("description", "")])
        .await
        .ok();
    let other = app.developer("other").await;
    for page in [format!("/clients/{}", reg.client_id), format!("/clients/{}/activity", reg.client_id)] {
        let (status, html) = other.page(&page).await;
        assert_eq!(status, 404, "{page}");
        assert!(html.contains("Not found") && html.contains("href=\"/clients\""), "{page}");
        assert!(!html.contains("Private agent"), "{page}");
        assert_eq!(owner.page(&page).await.0, 200, "{page}");
    }
    // A developer on the security team's and the admins' pages: not allowed, said with 403.
    for page in ["/audit", "/security", "/admin/approvals", "/admin/users"] {
        let (status, html) = other.page(page).await;
        assert_eq!(status, 403, "{page}");
        assert!(html.contains("Not allowed"), "{page}");
    }
}
