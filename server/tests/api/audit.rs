//! The security team's audit search, its pages, its export and who may use them, over
//! rows written by real gateway requests.

use crate::helpers::{agent, audit_rows, stateless_tool, Agent, Session, TestApp};
use portcullis_domain::model::{AuditPage, AuditRecord, Role};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// An agent whose profile's rate limit is out of the way of these tests' traffic.
async fn busy_agent(app: &TestApp) -> Agent {
    let a = agent(app, &["accounts"]).await;
    let admin = app.user_with_role(Role::Admin).await;
    let set = admin
        .call(
            "set_rate_limit",
            &[("profile_id", &a.reg.secret.profile_id), ("rate_per_minute", "100000"), ("burst", "100000")],
        )
        .await;
    assert_eq!(set.status, 200, "{set:?}");
    a
}

/// Calls the gateway as `a`: `n` allowed calls and `refused` calls to a product it has
/// no grant for.
async fn traffic(app: &TestApp, a: &Agent, n: usize, refused: usize) {
    let http = reqwest::Client::new();
    for (path, count) in [("/gw/accounts/accounts", n), ("/gw/payments/payments", refused)] {
        for _ in 0..count {
            let res = http.get(format!("{}{path}", app.base)).header("x-api-key", &a.key.secret).send().await.unwrap();
            assert!(res.status().is_success() || res.status() == StatusCode::FORBIDDEN, "{}", res.status());
        }
    }
}

async fn get(s: &Session, path: &str) -> (StatusCode, Value) {
    let res = s.http.get(format!("{}{path}", s.base)).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn search(s: &Session, query: &str) -> AuditPage {
    let (status, body) = get(s, &format!("/api/v1/audit?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    serde_json::from_value(body).unwrap()
}

/// Every row of a search, following the cursor.
async fn all_pages(s: &Session, query: &str, limit: usize) -> Vec<AuditRecord> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{query}&limit={limit}&cursor={c}"),
            None => format!("{query}&limit={limit}"),
        };
        let page = search(s, &q).await;
        assert!(page.events.len() <= limit);
        rows.extend(page.events);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return rows,
        }
    }
}

/// Waits until the audit writer has stored `n` rows for `client`.
async fn settled(s: &Session, client: &str, n: usize) {
    for _ in 0..100 {
        if all_pages(s, &format!("client={client}"), 500).await.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} audit rows for {client}");
}

#[tokio::test]
async fn filters_combine_and_each_narrows_to_exactly_its_rows() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let (a, b) = (busy_agent(&app).await, busy_agent(&app).await);
    traffic(&app, &a, 6, 3).await;
    traffic(&app, &b, 2, 1).await;
    let security = app.user_with_role(Role::Security).await;
    let (ca, cb) = (a.reg.client_id.as_str(), b.reg.client_id.as_str());
    settled(&security, ca, 9).await;
    settled(&security, cb, 3).await;

    let count = |q: String| {
        let s = &security;
        async move { all_pages(s, &q, 500).await }
    };
    let only_a = count(format!("client={ca}")).await;
    assert_eq!(only_a.len(), 9);
    assert!(only_a.iter().all(|e| e.client_id.as_deref() == Some(ca) && e.client_type.as_deref() == Some("ai_agent")));
    assert!(only_a.windows(2).all(|w| (w[0].occurred_at, w[0].id) > (w[1].occurred_at, w[1].id)), "newest first");

    let refused = count(format!("client={ca}&decision=refused")).await;
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|e| e.reason.as_deref() == Some("not_granted") && e.status == Some(403)));
    assert_eq!(count(format!("client={ca}&decision=not_granted&status=4xx")).await.len(), 3);
    assert_eq!(count(format!("client={ca}&status=2xx&method=get&channel=rest")).await.len(), 6);
    assert_eq!(count(format!("client={ca}&product=payments")).await.len(), 3);
    assert_eq!(count(format!("client={ca}&path=%2FACCOUNTS")).await.len(), 6, "path text is case-insensitive");
    assert_eq!(count(format!("client={ca}&endpoint=%2Faccounts")).await.len(), 6);
    assert_eq!(count(format!("profile={}", b.reg.secret.profile_id)).await.len(), 3);
    assert_eq!(count("client_type=ai_agent&decision=refused".into()).await.len(), 4);
    assert_eq!(count(format!("client={ca}&client_type=service")).await.len(), 0);
    assert_eq!(count(format!("client={ca}&channel=mcp")).await.len(), 0);

    // One request by its id; a time window around it.
    let one = &only_a[4];
    let rid = one.request_id.clone().unwrap();
    let by_id = count(format!("request_id={rid}")).await;
    assert_eq!(by_id.iter().map(|e| e.id).collect::<Vec<_>>(), [one.id]);
    let from = portcullis_domain::time::format_iso(only_a.last().unwrap().occurred_at - 1000);
    let to = portcullis_domain::time::format_iso(only_a[0].occurred_at + 60_000);
    assert_eq!(count(format!("client={ca}&from={from}&to={to}")).await.len(), 9);
    assert_eq!(count(format!("client={ca}&since=15m")).await.len(), 9);
    assert_eq!(count(format!("client={ca}&to={from}")).await.len(), 0);

    // Administrative events carry the person who acted.
    let registered = count(format!("actor={}&channel=portal", a.dev.email)).await;
    assert!(
        registered.iter().any(|e| e.action == "client.created" && e.target_id.as_deref() == Some(ca)),
        "{registered:?}"
    );

    // Bad input is a 400 problem that says what is wrong, never a 500.
    for (q, says) in [
        ("status=404", "`status` must be 2xx"),
        ("since=2d", "`since` must be"),
        ("from=yesterday", "`from` must be a UTC time"),
        ("cursor=page2", "cursor"),
        ("limit=0", "`limit` must be between"),
        ("decision=%27%20OR%201%3D1", "`decision` must be a lowercase word"),
        // A word outside the audit vocabulary would match nothing: refused, with the list.
        (
            "decision=rate_limit",
            "`decision` must be allowed, refused or a reason: allowed, undecided, missing_credential",
        ),
    ] {
        let (status, body) = get(&security, &format!("/api/v1/audit?{q}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {body}");
        assert!(body["detail"].as_str().unwrap_or_default().contains(says), "{q}: {body}");
    }
}

#[tokio::test]
async fn keyset_pages_have_no_gaps_or_duplicates_while_rows_arrive() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = busy_agent(&app).await;
    traffic(&app, &a, 25, 0).await;
    let security = app.user_with_role(Role::Security).await;
    let client = a.reg.client_id.clone();
    settled(&security, &client, 25).await;
    let before: HashSet<i64> =
        all_pages(&security, &format!("client={client}"), 500).await.iter().map(|e| e.id).collect();

    // Page through 4 rows at a time while the same agent keeps calling.
    let writer = {
        let (base, key) = (app.base.clone(), a.key.secret.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..30 {
                http.get(format!("{base}/gw/accounts/accounts")).header("x-api-key", &key).send().await.unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q =
            format!("client={client}&limit=4{}", cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default());
        let page = search(&security, &q).await;
        seen.extend(page.events);
        tokio::time::sleep(Duration::from_millis(20)).await;
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    writer.await.unwrap();
    let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "no row on two pages");
    assert!(seen.windows(2).all(|w| (w[0].occurred_at, w[0].id) > (w[1].occurred_at, w[1].id)), "one order");
    let missing: Vec<_> = before.iter().filter(|id| !ids.contains(id)).collect();
    assert!(missing.is_empty(), "rows present before paging were skipped: {missing:?}");

    // Rows of the same millisecond: the id breaks the tie, one row per page, none lost.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let at = app.clock.now() - 1000;
    for i in 0..7 {
        sqlx::query(
            "INSERT INTO audit_events (occurred_at, request_id, channel, action, client_id, method, path, status, decision, reason)
             VALUES ($1, $2, 'rest', 'request', 'cl_same_millisecond', 'GET', '/x', 200, 'allowed', 'allowed')",
        )
        .bind(at)
        .bind(format!("tie-{i}"))
        .execute(&pool)
        .await
        .unwrap();
    }
    let ties = all_pages(&security, "client=cl_same_millisecond", 1).await;
    let tie_ids: Vec<i64> = ties.iter().map(|e| e.id).collect();
    assert_eq!(tie_ids.len(), 7, "{tie_ids:?}");
    assert!(tie_ids.windows(2).all(|w| w[0] > w[1]), "newest id first within the millisecond: {tie_ids:?}");
}

#[tokio::test]
async fn exports_stream_exactly_the_search_and_are_recorded() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = busy_agent(&app).await;
    traffic(&app, &a, 7, 2).await;
    let security = app.user_with_role(Role::Security).await;
    let client = a.reg.client_id.clone();
    settled(&security, &client, 9).await;
    let expected: Vec<i64> = all_pages(&security, &format!("client={client}"), 3).await.iter().map(|e| e.id).collect();

    let res = security
        .http
        .get(format!("{}/api/v1/audit/export?format=jsonl&client={client}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/jsonl"));
    assert!(res.headers()["content-disposition"].to_str().unwrap().contains(".jsonl"));
    let lines: Vec<AuditRecord> =
        res.text().await.unwrap().lines().map(|l| serde_json::from_str(l).expect("each line is one event")).collect();
    assert_eq!(lines.iter().map(|e| e.id).collect::<Vec<_>>(), expected);

    let res =
        security.http.get(format!("{}/api/v1/audit/export?format=csv&client={client}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    assert_eq!(&headers[18], "path");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.iter().map(|r| r[0].parse::<i64>().unwrap()).collect::<Vec<_>>(), expected);
    assert!(rows.iter().all(|r| &r[9] == client.as_str()));

    // More rows than one export page: the stream follows the cursor.
    traffic(&app, &a, 1000, 0).await;
    settled(&security, &client, 1009).await;
    let res = security
        .http
        .get(format!("{}/api/v1/audit/export?format=jsonl&client={client}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap().lines().count(), 1009);

    // Each export is itself in the trail; a bad format is refused before any output.
    let exports = all_pages(&security, &format!("actor={}&channel=api", security.email), 50).await;
    assert_eq!(exports.iter().filter(|e| e.action == "audit.exported").count(), 3);
    let (status, body) = get(&security, &format!("/api/v1/audit/export?format=xml&client={client}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn developers_cannot_search_but_see_their_own_events() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let (a, b) = (busy_agent(&app).await, busy_agent(&app).await);
    traffic(&app, &a, 1, 0).await;
    traffic(&app, &b, 1, 0).await;
    let security = app.user_with_role(Role::Security).await;
    settled(&security, &a.reg.client_id, 1).await;
    settled(&security, &b.reg.client_id, 1).await;
    let mine = search(&security, &format!("client={}", a.reg.client_id)).await.events[0].clone();
    let theirs = search(&security, &format!("client={}", b.reg.client_id)).await.events[0].clone();

    for path in ["/api/v1/audit", "/api/v1/audit/export?format=csv"] {
        let (status, body) = get(&a.dev, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let answer = a.dev.call("search_audit", &[("query", "")]).await;
    assert_eq!(answer.error(), "Forbidden", "{answer:?}");
    let (status, page) = a.dev.page("/audit").await;
    assert_eq!(status, 403);
    assert!(page.contains("security or admin role"), "the page says why");

    // Their own request's detail (what Test access links to), and nothing of others.
    let (status, body) = get(&a.dev, &format!("/api/v1/audit/events/{}", mine.id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request_id"], mine.request_id.clone().unwrap());
    let (status, _) = get(&a.dev, &format!("/api/v1/audit/events/{}", theirs.id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page) = a.dev.page(&format!("/audit/requests/{}", mine.request_id.clone().unwrap())).await;
    assert_eq!(status, 200);
    assert!(page.contains(&a.reg.client_id) && page.contains("allowed"), "the detail page shows the event");

    let anonymous = reqwest::get(format!("{}/api/v1/audit", app.base)).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The security team's page lists both clients' requests.
    let (status, page) = security.page(&format!("/audit?client={}", b.reg.client_id)).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-testid=\"audit-results\"") && page.contains("/gw/accounts/accounts"));
}

#[tokio::test]
async fn activity_counts_one_clients_days_endpoints_refusals_and_credentials() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let (a, b) = (busy_agent(&app).await, busy_agent(&app).await);
    traffic(&app, &a, 5, 2).await;
    traffic(&app, &b, 1, 4).await;
    let security = app.user_with_role(Role::Security).await;
    settled(&security, &a.reg.client_id, 7).await;
    settled(&security, &b.reg.client_id, 5).await;

    let activity: portcullis_domain::model::ClientActivity =
        a.dev.call("client_activity", &[("client_id", &a.reg.client_id)]).await.ok();
    assert_eq!(activity.days.len(), 30);
    // The last bar is today (the one before, if the test crossed midnight UTC).
    let recent = &activity.days[28..];
    assert_eq!(recent.iter().map(|d| (d.allowed, d.refused)).fold((0, 0), |s, d| (s.0 + d.0, s.1 + d.1)), (5, 2));
    assert_eq!(activity.days.iter().map(|d| d.allowed + d.refused).sum::<i64>(), 7);
    assert_eq!(activity.top_endpoints[0].name, "GET /gw/accounts/accounts");
    assert_eq!(activity.top_endpoints[0].count, 5);
    assert_eq!(activity.refusals, [portcullis_domain::model::NamedCount { name: "not_granted".into(), count: 2 }]);
    assert_eq!(activity.credentials.len(), 1);
    assert_eq!(activity.credentials[0].credential_id, a.key.credential_id);
    assert_eq!(activity.credentials[0].requests, 7);
    assert!(activity.last_seen.is_some());

    // Another developer cannot look; the security team can, and sees the page's chart.
    let other = b.dev.call("client_activity", &[("client_id", &a.reg.client_id)]).await;
    assert_eq!(other.error(), "NotFound");
    let (status, page) = security.page(&format!("/clients/{}/activity", a.reg.client_id)).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-testid=\"activity-chart\"") && page.contains("<svg"), "the chart is in the HTML");
    assert!(page.contains("5 allowed, 2 refused"), "today's bar says its figures");

    // The dashboard: refusals by status today, traffic by type, the most refused first.
    let dash: portcullis_domain::model::SecurityDashboard = security.call("security_dashboard", &[]).await.ok();
    let recent = &dash.refusals[28..];
    let sum = |f: fn(&portcullis_domain::model::RefusalDay) -> i64| recent.iter().map(f).sum::<i64>();
    assert_eq!((sum(|d| d.unauthorized), sum(|d| d.forbidden), sum(|d| d.rate_limited)), (0, 6, 0));
    let agents = dash.by_type.iter().find(|t| t.client_type == "ai_agent").unwrap();
    assert_eq!((agents.allowed, agents.refused), (6, 6));
    assert_eq!(dash.most_refused[0].client_id, b.reg.client_id);
    assert_eq!((dash.most_refused[0].refused, dash.most_refused[0].total), (4, 5));
    assert_eq!(a.dev.call("security_dashboard", &[]).await.error(), "Forbidden");
}

async fn act(s: &Session, action: &str, target: &str, reason: &str, days: &str) -> crate::helpers::Answer {
    s.call("review_action", &[("action", action), ("target", target), ("reason", reason), ("days", days)]).await
}

#[tokio::test]
async fn an_access_review_flags_stale_access_and_its_actions_take_effect_at_once() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = busy_agent(&app).await;
    traffic(&app, &a, 1, 0).await;
    let security = app.user_with_role(Role::Security).await;
    settled(&security, &a.reg.client_id, 1).await;
    app.clock.advance(80 * portcullis_domain::time::DAY);

    let review: Vec<portcullis_domain::model::ReviewClient> = security.call("access_review", &[]).await.ok();
    let mine = review.iter().find(|c| c.client.id == a.reg.client_id).unwrap();
    use portcullis_domain::model::ReviewFlag::*;
    let key = mine.credentials.iter().find(|c| c.credential.id == a.key.credential_id).unwrap();
    assert_eq!(key.flags, [StaleCredential, UnusedCredential], "80 days old, used 80 days ago");
    assert_eq!(key.age_days, 80);
    let secret = mine.credentials.iter().find(|c| c.credential.id == a.reg.secret.credential_id).unwrap();
    assert_eq!(secret.flags, [StaleCredential, NeverUsedCredential]);
    let grant = &mine.grants[0];
    assert_eq!(grant.flags, [GrantExpiring], "10 days left, and it was used");
    assert!(grant.last_used_at.is_some());
    assert_eq!(mine.reviewed_at, None);

    // Developers neither see the review nor act in it; a reviewer must give a reason.
    assert_eq!(a.dev.call("access_review", &[]).await.error(), "Forbidden");
    let other = busy_agent(&app).await;
    for (action, target) in [
        ("end_grant", grant.grant.id.as_str()),
        ("extend_grant", grant.grant.id.as_str()),
        ("revoke_credential", other.key.credential_id.as_str()),
        ("revoke_credential", a.key.credential_id.as_str()),
        ("mark_reviewed", a.reg.client_id.as_str()),
    ] {
        assert_eq!(act(&a.dev, action, target, "mine", "30").await.error(), "Forbidden", "{action}");
    }
    assert_eq!(act(&security, "end_grant", &grant.grant.id, "  ", "").await.error(), "Invalid");

    // Extend, then end the grant: the very next call is refused.
    let call = || {
        let (base, key) = (app.base.clone(), a.key.secret.clone());
        async move {
            reqwest::Client::new()
                .get(format!("{base}/gw/accounts/accounts"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        act(&security, "extend_grant", &grant.grant.id, "Quarterly review: still needed", "90").await.status,
        200
    );
    let review: Vec<portcullis_domain::model::ReviewClient> = security.call("access_review", &[]).await.ok();
    let extended = &review.iter().find(|c| c.client.id == a.reg.client_id).unwrap().grants[0];
    // 10 days were left; 90 more would pass what an approval gives from today (90 days),
    // so the grant now ends 90 days from today: 80 days later than before.
    let gained = extended.grant.expires_at.unwrap() - grant.grant.expires_at.unwrap();
    assert!((gained - 80 * portcullis_domain::time::DAY).abs() < 60_000, "gained {gained} ms");
    assert!(extended.flags.is_empty());
    let again = act(&security, "extend_grant", &grant.grant.id, "More", "30").await;
    assert_eq!(again.error(), "Conflict", "already as long as an approval: {again:?}");
    assert_eq!(call().await, StatusCode::OK);
    assert_eq!(act(&security, "end_grant", &grant.grant.id, "Project finished", "").await.status, 200);
    assert_eq!(act(&security, "end_grant", "gr_unknown", "Typo", "").await.error(), "NotFound");
    assert_eq!(act(&security, "extend_grant", &grant.grant.id, "Revive", "30").await.error(), "Conflict");
    assert_eq!(call().await, StatusCode::FORBIDDEN);
    assert_eq!(act(&security, "revoke_credential", &a.key.credential_id, "Unused key", "").await.status, 200);
    assert_eq!(call().await, StatusCode::UNAUTHORIZED);
    assert_eq!(act(&security, "mark_reviewed", &a.reg.client_id, "Checked with the owner", "").await.status, 200);

    let review: Vec<portcullis_domain::model::ReviewClient> = security.call("access_review", &[]).await.ok();
    let mine = review.iter().find(|c| c.client.id == a.reg.client_id).unwrap();
    assert!(mine.grants.is_empty() && mine.credentials.iter().all(|c| c.credential.id != a.key.credential_id));
    assert!(mine.reviewed_at.is_some());
    assert_eq!(mine.reviewed_by.as_deref(), Some(security.email.as_str()));

    // Every action is in the trail with the reviewer and the reason (after their sign-in).
    let trail = all_pages(&security, &format!("actor={}&channel=portal", security.email), 50).await;
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["client.reviewed", "credential.revoked", "grant.ended", "grant.extended", "user.signed_in"]);
    assert!(trail[1..4].iter().all(|e| e.summary.contains("\"review\":true")));
    assert!(trail[2].summary.contains("Project finished"));
}

#[tokio::test]
async fn rows_past_retention_are_purged_in_batches_and_the_purge_is_recorded() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = busy_agent(&app).await;
    traffic(&app, &a, 12, 0).await;
    let security = app.user_with_role(Role::Security).await;
    settled(&security, &a.reg.client_id, 12).await;
    let before = all_pages(&security, "", 500).await.len();

    // Nothing is old enough yet; 401 days later everything so far is.
    assert_eq!(app.store.purge_audit(400 * portcullis_domain::time::DAY).await.unwrap(), 0);
    app.clock.advance(401 * portcullis_domain::time::DAY);
    let purged = app.store.purge_audit(400 * portcullis_domain::time::DAY).await.unwrap();
    assert_eq!(purged as usize, before);
    let left = all_pages(&security, "", 500).await;
    assert_eq!(left.len(), 1, "only the purge's own record: {left:?}");
    assert_eq!(left[0].action, "audit.purged");
    assert!(left[0].summary.contains(&format!("\"rows\":{before}")), "{}", left[0].summary);

    // What reviews need survives the purge: the grant still knows when it was last used.
    let review: Vec<portcullis_domain::model::ReviewClient> = security.call("access_review", &[]).await.ok();
    let grant = &review.iter().find(|c| c.client.id == a.reg.client_id).unwrap().grants[0];
    assert!(grant.last_used_at.is_some());
    assert!(!grant.flags.contains(&portcullis_domain::model::ReviewFlag::GrantNeverUsed));
}

#[tokio::test]
async fn a_grant_past_its_expiry_stops_working_at_the_gateway() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = busy_agent(&app).await;
    let call = |key: String| {
        let base = app.base.clone();
        async move {
            let res = reqwest::Client::new()
                .get(format!("{base}/gw/accounts/accounts"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    // Sandbox grants last 90 days, like credentials: a key issued on day 85 outlives it.
    app.clock.advance(85 * portcullis_domain::time::DAY);
    let fresh: portcullis_domain::model::IssuedSecret =
        a.dev.call("issue_api_key", &[("profile_id", &a.reg.secret.profile_id)]).await.ok();
    assert_eq!(call(fresh.secret.clone()).await.0, StatusCode::OK);
    app.clock.advance(6 * portcullis_domain::time::DAY);
    let (status, body) = call(fresh.secret.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "not_granted", "{body}");
}

#[tokio::test]
async fn a_siem_script_reads_the_trail_and_reviews_access_with_a_token() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let a = busy_agent(&app).await;
    traffic(&app, &a, 2, 1).await;
    let security = app.user_with_role(Role::Security).await;
    settled(&security, &a.reg.client_id, 3).await;
    let token = crate::management::token_for(&app, &security).await;
    let dev_token = crate::management::token_for(&app, &a.dev).await;
    let http = reqwest::Client::new();
    let get = |path: &str, token: &str| http.get(format!("{}/api/v1{path}", app.base)).bearer_auth(token).send();
    let post = |path: &str, token: &str, body: Value| {
        http.post(format!("{}/api/v1{path}", app.base)).bearer_auth(token).json(&body).send()
    };

    let page: AuditPage =
        get(&format!("/audit?client={}&limit=2", a.reg.client_id), &token).await.unwrap().json().await.unwrap();
    assert_eq!(page.events.len(), 2);
    let rest: AuditPage =
        get(&format!("/audit?client={}&limit=2&cursor={}", a.reg.client_id, page.next.unwrap()), &token)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(rest.events.len(), 1);
    assert_eq!(rest.next, None);
    let activity: Value =
        get(&format!("/clients/{}/activity", a.reg.client_id), &token).await.unwrap().json().await.unwrap();
    assert_eq!(activity["refusals"][0]["name"], "not_granted");
    assert_eq!(get("/security/dashboard", &token).await.unwrap().status(), StatusCode::OK);

    let review: Vec<portcullis_domain::model::ReviewClient> =
        get("/reviews", &token).await.unwrap().json().await.unwrap();
    let grant = review.iter().find(|c| c.client.id == a.reg.client_id).unwrap().grants[0].grant.id.clone();
    assert_eq!(get("/reviews", &dev_token).await.unwrap().status(), StatusCode::FORBIDDEN);
    let res = post(&format!("/reviews/grants/{grant}/end"), &token, serde_json::json!({ "reason": "" })).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for path in [
        format!("/reviews/grants/{grant}/end"),
        format!("/reviews/credentials/{}/revoke", a.key.credential_id),
        format!("/reviews/clients/{}/reviewed", a.reg.client_id),
    ] {
        let res = post(&path, &dev_token, serde_json::json!({ "reason": "mine" })).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let res =
        post(&format!("/reviews/grants/{grant}/extend"), &dev_token, serde_json::json!({ "days": 30, "reason": "x" }))
            .await
            .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // 50 days on, 40 are left: 30 more fit within what an approval gives from today.
    let before = review.iter().find(|c| c.client.id == a.reg.client_id).unwrap().grants[0].grant.expires_at.unwrap();
    app.clock.advance(50 * portcullis_domain::time::DAY);
    let res = post(
        &format!("/reviews/grants/{grant}/extend"),
        &token,
        serde_json::json!({ "days": 30, "reason": "Audit season" }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["expires_at"].as_i64(),
        Some(before + 30 * portcullis_domain::time::DAY)
    );
    let res = post(&format!("/reviews/grants/{grant}/end"), &token, serde_json::json!({ "reason": "Decommissioned" }))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res =
        post(&format!("/reviews/grants/{grant}/end"), &token, serde_json::json!({ "reason": "Again" })).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let refused =
        http.get(format!("{}/gw/accounts/accounts", app.base)).header("x-api-key", &a.key.secret).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let res = post(
        &format!("/reviews/credentials/{}/revoke", a.key.credential_id),
        &token,
        serde_json::json!({ "reason": "Gone" }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = post(
        &format!("/reviews/clients/{}/reviewed", a.reg.client_id),
        &token,
        serde_json::json!({ "reason": "Done" }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

/// Refused requests that name a client — a token request with its client id and a
/// wrong secret, a call with one of its revoked keys, a token whose credential was
/// revoked, the same over MCP — are listed on its activity page and found by the audit
/// search as attempts naming it, never counted as its own traffic. A key nobody issued
/// names no one.
#[tokio::test]
async fn refused_attempts_naming_a_client_are_found_apart_from_its_traffic() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let (a, b) = (agent(&app, &["accounts"]).await, agent(&app, &["accounts"]).await);
    let http = reqwest::Client::new();
    let gw = |key: String| {
        let (http, url) = (http.clone(), format!("{}/gw/accounts/accounts", app.base));
        async move { http.get(url).header("x-api-key", key).send().await.unwrap().status() }
    };
    // A's own traffic: one allowed call.
    assert_eq!(gw(a.key.secret.clone()).await, 200);
    let token: Value = http
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // Attempts naming A: its client id with B's secret; its revoked key (REST and MCP);
    // a token obtained with its since-revoked secret.
    let wrong = http
        .post(format!("{}/oauth/token", app.base))
        .basic_auth(&a.reg.client_id, Some(&b.reg.secret.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(a.dev.call("revoke_credential", &[("credential_id", &a.key.credential_id)]).await.status < 300);
    assert!(a.dev.call("revoke_credential", &[("credential_id", &a.reg.secret.credential_id)]).await.status < 300);
    assert_eq!(gw(a.key.secret.clone()).await, 401);
    let mcp = stateless_tool(&app, &http, ("x-api-key", &a.key.secret), "list_tools", json!({})).await.unwrap();
    assert_eq!(mcp.status(), 401);
    let with_token = http.get(format!("{}/gw/accounts/accounts", app.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(with_token.status(), 401);
    // Names no one: a key nobody issued, and B's live key is B's own traffic.
    assert_eq!(gw("pck_nobody-issued-this-key-0000000000000000000".into()).await, 401);
    assert_eq!(gw(b.key.secret.clone()).await, 200);

    let named = format!("attempted_client_id = '{}' AND client_id IS NULL", a.reg.client_id);
    let rows = app.wait_for_audit(&named, 4).await;
    let mut seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["channel"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("mcp".to_owned(), "invalid_token".to_owned()),
            ("oauth".to_owned(), "invalid_client".to_owned()),
            ("rest".to_owned(), "invalid_token".to_owned()),
            ("rest".to_owned(), "invalid_token".to_owned()),
        ]
    );
    app.wait_for_audit("action = 'request'", 8).await;
    let anonymous =
        audit_rows(&app.database_url, "action = 'request' AND attempted_client_id IS NULL AND client_id IS NULL").await;
    assert_eq!(anonymous.len(), 1, "only the unknown key names no one: {anonymous:?}");

    // A's page: its own traffic is its call and its token, both allowed; the attempts
    // are listed apart.
    let activity: portcullis_domain::model::ClientActivity =
        a.dev.call("client_activity", &[("client_id", &a.reg.client_id)]).await.ok();
    assert_eq!(
        activity.days.iter().map(|d| (d.allowed, d.refused)).fold((0, 0), |s, d| (s.0 + d.0, s.1 + d.1)),
        (2, 0)
    );
    assert!(activity.refusals.is_empty(), "{:?}", activity.refusals);
    let count = |name: &str| activity.attempts.iter().find(|n| n.name == name).map_or(0, |n| n.count);
    assert_eq!((count("invalid_token"), count("invalid_client")), (3, 1), "{:?}", activity.attempts);
    let b_activity: portcullis_domain::model::ClientActivity =
        b.dev.call("client_activity", &[("client_id", &b.reg.client_id)]).await.ok();
    assert!(b_activity.attempts.is_empty(), "B's secret was used, but naming A: {:?}", b_activity.attempts);

    // The audit search: by the client named, apart from the client's own.
    let security = app.user_with_role(Role::Security).await;
    let (status, page) = security.page(&format!("/audit?named_client={}&since=1h", a.reg.client_id)).await;
    assert_eq!(status, 200);
    assert_eq!(page.matches("data-event=").count(), 4, "four attempts naming A");
    let (_, own) = security.page(&format!("/audit?client={}&since=1h", a.reg.client_id)).await;
    assert_eq!(own.matches("data-event=").count(), 2, "A's own: its call and its token");
    let (_, shown) = security.page(&format!("/clients/{}/activity", a.reg.client_id)).await;
    assert!(shown.contains("Refused attempts naming this client") && shown.contains("named_client="), "{shown}");

    // The dashboard's chart and its tables count the same refusals, whatever the status
    // (a 404 for a product that does not exist among them).
    let missing =
        http.get(format!("{}/gw/nosuch/x", app.base)).header("x-api-key", &b.key.secret).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    app.wait_for_audit("action = 'request' AND status = 404", 1).await;
    let dash: portcullis_domain::model::SecurityDashboard = security.call("security_dashboard", &[]).await.ok();
    let chart: i64 = dash.refusals.iter().map(|d| d.unauthorized + d.forbidden + d.rate_limited + d.other).sum();
    let table: i64 = dash.by_type.iter().map(|t| t.refused).sum();
    assert_eq!((chart, table), (6, 6), "{dash:?}");
    assert_eq!(dash.refusals.iter().map(|d| d.other).sum::<i64>(), 1, "the 404");
}
