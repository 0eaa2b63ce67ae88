//! The demo sample of DESIGN.md: an admin, the bank's three products served by the
//! built-in sample upstream, and a demo agent with a sandbox profile.

use crate::access::{Actor, Channel};
use crate::catalog::NewProduct;
use crate::clients::NewClient;
use crate::endpoints::NewEndpoint;
use crate::error::Result;
use crate::model::{ClientKind, IssuedSecret, Role};
use crate::secrets::ServerSecret;
use crate::store::Store;

pub const DEMO_ADMIN_EMAIL: &str = "admin@portcullis.local";

/// What a first demo start prints, once.
#[derive(Debug)]
pub struct DemoSeed {
    pub admin_email: String,
    pub admin_password: String,
    pub agent_secret: IssuedSecret,
}

fn ep(method: &str, path: &str, op: &str, summary: &str, scope: &str, sensitive: bool) -> NewEndpoint {
    NewEndpoint {
        method: method.into(),
        path_template: path.into(),
        operation_id: op.into(),
        summary: summary.into(),
        scope: scope.into(),
        sensitive,
        ..NewEndpoint::default()
    }
}

/// The sample products, their upstreams under `sample_base` (`…/sample/{slug}`).
pub fn sample_products(sample_base: &str) -> Vec<(NewProduct, Vec<NewEndpoint>)> {
    let product = |slug: &str, name: &str, description: &str, owner: &str, tags: &[&str]| NewProduct {
        slug: slug.into(),
        name: name.into(),
        description: description.into(),
        owner: owner.into(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        sandbox_url: format!("{sample_base}/sample/{slug}"),
        production_url: format!("{sample_base}/sample/{slug}"),
    };
    vec![
        (
            product(
                "accounts",
                "Accounts",
                "Customer accounts, balances and holders.",
                "Retail Banking",
                &["pii", "internal"],
            ),
            vec![
                ep("GET", "/accounts", "listAccounts", "List accounts", "read", false),
                ep("GET", "/accounts/{id}", "getAccount", "Get one account", "read", false),
                ep("GET", "/accounts/{id}/balance", "getBalance", "Current balance of an account", "read", true),
                ep("POST", "/accounts", "createAccount", "Open an account", "write", true),
            ],
        ),
        (
            product(
                "payments",
                "Payments",
                "Initiate and track payments between accounts.",
                "Payments Platform",
                &["pci", "pii"],
            ),
            vec![
                ep("GET", "/payments", "listPayments", "List payments", "read", false),
                ep("GET", "/payments/{id}", "getPayment", "Get one payment", "read", false),
                ep("POST", "/payments", "createPayment", "Initiate a payment", "write", true),
            ],
        ),
        (
            product("reports", "Reports", "Aggregated statements and monthly reports.", "Finance", &["internal"]),
            vec![
                ep("GET", "/reports", "listReports", "List available reports", "read", false),
                ep("GET", "/reports/{month}", "getReport", "Monthly report", "read", false),
            ],
        ),
    ]
}

/// Seeds an empty store. Returns `None` when any account exists, so restarting demo mode
/// never resets a password or prints a secret twice; it then only points the sample
/// products at this start's sample bank.
pub async fn seed_demo(store: &Store, sample_base: &str) -> Result<Option<DemoSeed>> {
    if store.count_users().await? > 0 {
        point_samples_at(store, sample_base).await?;
        return Ok(None);
    }
    let admin_password = ServerSecret::generate_text().chars().take(20).collect::<String>();
    let admin = store.create_user(DEMO_ADMIN_EMAIL, admin_password.clone(), Role::Admin, None, Channel::Cli).await?;
    let actor = Actor::new(admin.clone(), Channel::Cli);
    let mut accounts_id = None;
    for (product, endpoints) in sample_products(sample_base) {
        let created = store.create_product(&actor, product, endpoints).await?;
        if created.slug == "accounts" {
            accounts_id = Some(created.id);
        }
    }
    let registered = store
        .register_client(
            &actor,
            NewClient {
                name: "Demo agent".into(),
                kind: ClientKind::AiAgent,
                description: "A sample AI agent with sandbox access to Accounts.".into(),
            },
        )
        .await?;
    if let Some(accounts) = accounts_id {
        store
            .request_grant(&actor, &registered.secret.profile_id, &accounts, &["read".to_owned()], "Demo data")
            .await?;
    }
    Ok(Some(DemoSeed { admin_email: admin.email, admin_password, agent_secret: registered.secret }))
}

/// The sample bank listens on a loopback port of its own, chosen anew at each start (so
/// that it is reachable only through the gateway): the sample products follow it. A
/// product whose upstream an admin set to anything else is left as it is.
async fn point_samples_at(store: &Store, sample_base: &str) -> Result<()> {
    let mut moved = Vec::new();
    let mut tx = store.begin().await?;
    for (product, _) in sample_products(sample_base) {
        let updated = sqlx::query(
            "UPDATE products SET sandbox_url = $1, production_url = $1
             WHERE slug = $2 AND sandbox_url = production_url AND sandbox_url <> $1
               AND sandbox_url LIKE 'http://127.0.0.1:%/sample/' || $2",
        )
        .bind(&product.sandbox_url)
        .bind(&product.slug)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated > 0 {
            moved.push(product.slug);
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    let event = crate::audit::AdminEvent {
        action: "demo.sample_bank_moved",
        target_type: "demo",
        target_id: "sample_bank",
        summary: serde_json::json!({ "products": moved, "upstream": sample_base }),
    };
    crate::audit::record(&mut *tx, store.now(), None, "system", event).await?;
    store.commit_and_publish(tx).await
}
