use crate::helpers::TestApp;
use portcullis_app::api::Registration;
use portcullis_domain::model::{GrantStatus, GrantView, IssuedSecret, Role};

#[tokio::test]
async fn sandbox_is_granted_at_once_production_waits_for_an_admin() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let dev = app.developer("ada").await;
    let admin = app.user_with_role(Role::Admin).await;
    let accounts = app.product_id("accounts").await;
    let reg: Registration =
        dev.call("register_client", &[("name", "Agent"), ("kind", "ai_agent"), ("description", "")]).await.ok();

    let sandbox: GrantView = dev
        .call(
            "request_access",
            &[
                ("profile_id", &reg.secret.profile_id),
                ("product_id", &accounts),
                ("scopes[]", "read"),
                ("justification", ""),
            ],
        )
        .await
        .ok();
    assert_eq!(sandbox.status, GrantStatus::Approved);
    assert_eq!(sandbox.scopes, ["read"]);
    assert_eq!(sandbox.decided_by.as_deref(), Some("Sandbox policy (automatic)"));
    let days = (sandbox.expires_at.unwrap() - sandbox.decided_at.unwrap()) / portcullis_domain::time::DAY;
    assert_eq!(days, 90);

    let dup = dev
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
    assert_eq!(dup.status, 409);

    let prod: IssuedSecret =
        dev.call("add_profile", &[("client_id", &reg.client_id), ("environment", "production")]).await.ok();
    let no_reason = dev
        .call(
            "request_access",
            &[
                ("profile_id", &prod.profile_id),
                ("product_id", &accounts),
                ("scopes[]", "read"),
                ("justification", " "),
            ],
        )
        .await;
    assert_eq!(no_reason.status, 422);
    let no_scope = dev
        .call(
            "request_access",
            &[("profile_id", &prod.profile_id), ("product_id", &accounts), ("justification", "needed")],
        )
        .await;
    assert_eq!(no_scope.status, 422);
    let pending: GrantView = dev
        .call(
            "request_access",
            &[
                ("profile_id", &prod.profile_id),
                ("product_id", &accounts),
                ("scopes[]", "read"),
                ("scopes[]", "write"),
                ("justification", "Ticket triage in production"),
            ],
        )
        .await
        .ok();
    assert_eq!(pending.status, GrantStatus::Pending);
    assert_eq!(pending.scopes, ["read", "write"]);

    // A developer cannot approve, not even their own request.
    let forbidden =
        dev.call("decide_grant", &[("grant_id", &pending.id), ("decision", "approve"), ("reason", "mine")]).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(dev.call("pending_grants", &[]).await.status, 403);

    let queue: Vec<GrantView> = admin.call("pending_grants", &[]).await.ok();
    assert_eq!(queue.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), [pending.id.as_str()]);
    let reasonless =
        admin.call("decide_grant", &[("grant_id", &pending.id), ("decision", "approve"), ("reason", "")]).await;
    assert_eq!(reasonless.status, 422);
    // An approval lasts what the approver chose, within the deployment's grant lifetime.
    for days in ["0", "-3", "91", "ninety", "1e3"] {
        let refused = admin
            .call(
                "decide_grant",
                &[("grant_id", &pending.id), ("decision", "approve"), ("reason", "ok"), ("days", days)],
            )
            .await;
        assert_eq!(refused.status, 422, "{days}: {refused:?}");
    }
    let before = app.clock.now();
    let approved: GrantView = admin
        .call(
            "decide_grant",
            &[
                ("grant_id", &pending.id),
                ("decision", "approve"),
                ("reason", "Reviewed with the data owner"),
                ("days", "30"),
            ],
        )
        .await
        .ok();
    let thirty_days = 30 * portcullis_domain::time::DAY;
    let expires = approved.expires_at.expect("an approval expires");
    assert!((before + thirty_days..before + thirty_days + 60_000).contains(&expires), "{expires} vs {before}");
    assert_eq!(approved.status, GrantStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some(admin.email.as_str()));
    assert_eq!(approved.decision_reason.as_deref(), Some("Reviewed with the data owner"));
    assert!(approved.expires_at.is_some());
    let twice = admin
        .call("decide_grant", &[("grant_id", &pending.id), ("decision", "reject"), ("reason", "changed my mind")])
        .await;
    assert_eq!(twice.status, 409);
    assert!(admin.call("pending_grants", &[]).await.ok::<Vec<GrantView>>().is_empty());
}

#[tokio::test]
async fn rejected_requests_keep_the_reason() {
    let app = TestApp::spawn().await;
    app.publish_sample_products().await;
    let dev = app.developer("rej").await;
    let admin = app.user_with_role(Role::Admin).await;
    let payments = app.product_id("payments").await;
    let reg: Registration =
        dev.call("register_client", &[("name", "Payer"), ("kind", "service"), ("description", "")]).await.ok();
    let prod: IssuedSecret =
        dev.call("add_profile", &[("client_id", &reg.client_id), ("environment", "production")]).await.ok();
    let pending: GrantView = dev
        .call(
            "request_access",
            &[
                ("profile_id", &prod.profile_id),
                ("product_id", &payments),
                ("scopes[]", "write"),
                ("justification", "pay people"),
            ],
        )
        .await
        .ok();
    let rejected: GrantView = admin
        .call(
            "decide_grant",
            &[("grant_id", &pending.id), ("decision", "reject"), ("reason", "PCI scope needs a review first")],
        )
        .await
        .ok();
    assert_eq!(rejected.status, GrantStatus::Rejected);
    assert_eq!(rejected.expires_at, None);
    // A rejected request does not block asking again.
    let again = dev
        .call(
            "request_access",
            &[
                ("profile_id", &prod.profile_id),
                ("product_id", &payments),
                ("scopes[]", "read"),
                ("justification", "read only now"),
            ],
        )
        .await;
    assert_eq!(again.status, 200, "{again:?}");
}
