use crate::helpers::TestApp;
use portcullis_domain::model::{ImportSummary, ProductView, Role, UserView};
use portcullis_domain::scopes::Scopes;
use sqlx::Row;

const LOANS: &str = include_str!("../../../end2end/fixtures/loans-openapi.yaml");

async fn publish_loans(admin: &crate::helpers::Session) -> ProductView {
    admin
        .call(
            "create_product",
            &[
                ("slug", "loans"),
                ("name", "Loans"),
                ("description", "Loan applications"),
                ("owner", "Lending"),
                ("tags", "pii, Internal"),
                ("sandbox_url", "http://127.0.0.1:9/loans/"),
                ("production_url", "https://loans.internal"),
            ],
        )
        .await
        .ok()
}

#[tokio::test]
async fn an_admin_publishes_a_product_and_imports_its_openapi_document() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role(Role::Admin).await;
    let product = publish_loans(&admin).await;
    assert_eq!(product.tags, ["internal", "pii"]);
    assert_eq!(product.sandbox_url, "http://127.0.0.1:9/loans");
    assert!(product.endpoints.is_empty());

    let summary: ImportSummary =
        admin.call("import_openapi", &[("product_id", &product.id), ("document", LOANS)]).await.ok();
    assert_eq!(summary, ImportSummary { added: 4, updated: 0 });
    let loans = app.store.product(&product.id).await.unwrap();
    let listed: Vec<(String, String, String)> =
        loans.endpoints.iter().map(|e| (e.method.clone(), e.path_template.clone(), e.scope.clone())).collect();
    assert_eq!(
        listed,
        [
            ("GET".into(), "/loans".into(), "read".into()),
            ("POST".into(), "/loans".into(), "write".into()),
            ("GET".into(), "/loans/{loanId}".into(), "read".into()),
            ("POST".into(), "/loans/{loanId}/approve".into(), "write".into()),
        ]
    );
    assert!(loans.endpoints.iter().any(|e| e.operation_id == "approveLoan" && e.sensitive));

    // The schemas are stored with the endpoints, references resolved.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let row = sqlx::query("SELECT parameters, request_schema FROM endpoints WHERE operation_id = 'applyForLoan'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let request: serde_json::Value = serde_json::from_str(&row.get::<String, _>("request_schema")).unwrap();
    assert_eq!(request["required"], serde_json::json!(["amount", "term_months"]));
    let row =
        sqlx::query("SELECT parameters FROM endpoints WHERE operation_id = 'getLoan'").fetch_one(&pool).await.unwrap();
    let params: serde_json::Value = serde_json::from_str(&row.get::<String, _>("parameters")).unwrap();
    assert_eq!(params[0]["name"], "loanId");
    assert_eq!(params[0]["in"], "path");

    // Importing again updates in place.
    let again: ImportSummary =
        admin.call("import_openapi", &[("product_id", &product.id), ("document", LOANS)]).await.ok();
    assert_eq!(again, ImportSummary { added: 0, updated: 4 });
}

#[tokio::test]
async fn bad_documents_and_non_admins_are_refused_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role(Role::Admin).await;
    let dev = app.developer("dev").await;
    let product = publish_loans(&admin).await;

    let forbidden = dev.call("import_openapi", &[("product_id", &product.id), ("document", LOANS)]).await;
    assert_eq!(forbidden.status, 403);
    let swagger =
        admin.call("import_openapi", &[("product_id", &product.id), ("document", "swagger: '2.0'\npaths: {}")]).await;
    assert_eq!(swagger.status, 422);
    let garbage = admin.call("import_openapi", &[("product_id", &product.id), ("document", "{ not json")]).await;
    assert_eq!(garbage.status, 422);
    let bad_path = LOANS.replace("/loans/{loanId}/approve", "/loans/../approve");
    let bad = admin.call("import_openapi", &[("product_id", &product.id), ("document", &bad_path)]).await;
    assert_eq!(bad.status, 422, "{bad:?}");
    assert!(app.store.product(&product.id).await.unwrap().endpoints.is_empty(), "all or nothing");

    let dup = admin
        .call(
            "create_product",
            &[
                ("slug", "loans"),
                ("name", "Loans 2"),
                ("description", ""),
                ("owner", ""),
                ("tags", ""),
                ("sandbox_url", "http://x.example"),
                ("production_url", "http://x.example"),
            ],
        )
        .await;
    assert_eq!(dup.status, 409);
    let by_dev = dev
        .call(
            "create_product",
            &[
                ("slug", "mine"),
                ("name", "Mine"),
                ("description", ""),
                ("owner", ""),
                ("tags", ""),
                ("sandbox_url", "http://x.example"),
                ("production_url", "http://x.example"),
            ],
        )
        .await;
    assert_eq!(by_dev.status, 403);
}

#[tokio::test]
async fn admins_change_roles_and_the_last_admin_stays() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role(Role::Admin).await;
    let dev = app.developer("sec").await;
    let users: Vec<UserView> = admin.call("list_users", &[]).await.ok();
    let me = users.iter().find(|u| u.email == admin.email).unwrap().clone();
    let target = users.iter().find(|u| u.email == dev.email).unwrap().clone();

    let promoted: UserView = admin.call("set_user_role", &[("user_id", &target.id), ("role", "security")]).await.ok();
    assert_eq!(promoted.role, Role::Security);
    let now: Option<UserView> = dev.call("current_user", &[]).await.ok();
    assert_eq!(now.unwrap().role, Role::Security);

    let last = admin.call("set_user_role", &[("user_id", &me.id), ("role", "developer")]).await;
    assert_eq!(last.status, 409);
    assert_eq!(dev.call("list_users", &[]).await.status, 403);

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let summary: String = sqlx::query("SELECT summary FROM audit_events WHERE action = 'user.role_changed'")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!((summary["from"].as_str(), summary["to"].as_str()), (Some("developer"), Some("security")));
}

#[tokio::test]
async fn editing_a_product_records_what_changed() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role(Role::Admin).await;
    let product = publish_loans(&admin).await;
    let edited: ProductView = admin
        .call(
            "update_product",
            &[
                ("product_id", &product.id),
                ("slug", "lending"),
                ("name", "Lending"),
                ("description", "Loan applications"),
                ("owner", "Lending"),
                ("tags", "pii, internal, pci"),
                ("sandbox_url", "http://127.0.0.1:9/loans"),
                ("production_url", "https://lending.internal"),
            ],
        )
        .await
        .ok();
    assert_eq!((edited.slug.as_str(), edited.name.as_str()), ("lending", "Lending"));
    assert_eq!(edited.tags, ["internal", "pci", "pii"]);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let summary: String = sqlx::query("SELECT summary FROM audit_events WHERE action = 'product.updated'")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["slug"], serde_json::json!({ "from": "loans", "to": "lending" }));
    assert_eq!(summary["production_url"]["to"], "https://lending.internal");
    assert!(summary.get("owner").is_none(), "unchanged fields are not recorded");

    let dev = app.developer("dev").await;
    let refused = dev
        .call(
            "update_product",
            &[
                ("product_id", &product.id),
                ("slug", "mine"),
                ("name", "Mine"),
                ("description", ""),
                ("owner", ""),
                ("tags", ""),
                ("sandbox_url", "http://x.example"),
                ("production_url", "http://x.example"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn the_management_api_imports_a_document_sent_as_the_body() {
    let app = TestApp::spawn().await;
    let admin = app.user_with_role(Role::Admin).await;
    let product = publish_loans(&admin).await;
    let actor = portcullis_domain::access::Actor::new(
        app.store.user_by_email(&admin.email).await.unwrap().unwrap(),
        portcullis_domain::access::Channel::Cli,
    );
    let token = app.store.create_access_token(&actor, "import", None, Scopes::all()).await.unwrap().token;
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/products/{}/openapi", app.base, product.id))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(LOANS)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let summary: ImportSummary = res.json().await.unwrap();
    assert_eq!(summary.added, 4);
}
