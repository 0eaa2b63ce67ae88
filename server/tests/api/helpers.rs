//! `TestApp`: the real server on port 0 against a real database: a temp SQLite file,
//! or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set (the test script runs
//! the whole suite once per backend).

use portcullis::application::Application;
use portcullis::config::{ServeArgs, StoreArgs};
use portcullis_app::api::Registration;
use portcullis_domain::clock::Clock;
use portcullis_domain::model::{IssuedSecret, Role};
use portcullis_domain::store::Store;
use reqwest::header::{ACCEPT, ORIGIN};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::PathBuf;

pub const PASSWORD: &str = "correct horse battery staple";
pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub clock: Clock,
    pub database_url: String,
    /// Ends the server gracefully (`shut_down`).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempdir::TempDir,
}

/// A signed-in browser-like client: its own cookie jar.
pub struct Session {
    pub http: reqwest::Client,
    pub base: String,
    pub email: String,
}

/// What a server function answered: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok<T: DeserializeOwned>(self) -> T {
        assert!((200..300).contains(&self.status), "expected success, got {} {}", self.status, self.body);
        serde_json::from_value(self.body).expect("decodes")
    }

    /// The `AppError` variant name of a failed call, e.g. `"NotFound"`.
    pub fn error(&self) -> String {
        match &self.body {
            Value::String(s) => s.clone(),
            Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
            other => other.to_string(),
        }
    }
}

mod tempdir {
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!("portcullis-test-{}", uuid::Uuid::now_v7().simple()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Self(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn fresh_database(dir: &std::path::Path) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sqlx::Executor;
            let name = format!("portcullis_test_{}", uuid::Uuid::now_v7().simple());
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&admin_url)
                .await
                .expect("TEST_DATABASE_URL reachable");
            pool.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.expect("create test database");
            pool.close().await;
            let (head, _) = admin_url.rsplit_once('/').expect("database URL has a path");
            format!("{head}/{name}")
        }
        _ => format!("sqlite://{}", dir.join("test.db").display()),
    }
}

pub fn serve_args(dir: PathBuf, database_url: Option<String>, secret: Option<String>, demo: bool) -> ServeArgs {
    ServeArgs {
        addr: "127.0.0.1:0".parse().expect("addr"),
        demo,
        public_url: None,
        audit_queue: 10_000,
        audit_when_full: portcullis::config::AuditWhenFull::BackPressure,
        upstream_timeout_secs: 30,
        token_rate_limit: 30,
        signing_key_days: 30,
        audit_retention_days: 400,
        global_rate_limit: 0,
        site_root: "target/site".into(),
        log_json: false,
        store: StoreArgs { data_dir: dir, database_url, secret },
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_configured(|_| ()).await
    }

    pub async fn spawn_demo() -> Self {
        Self::spawn_configured(|args| args.demo = true).await
    }

    /// A server whose flags the test adjusts first.
    pub async fn spawn_configured(configure: impl FnOnce(&mut ServeArgs)) -> Self {
        let dir = tempdir::TempDir::new();
        let database_url = fresh_database(&dir.0).await;
        let clock = Clock::system();
        let mut args = serve_args(dir.0.clone(), Some(database_url.clone()), Some(SECRET.into()), false);
        configure(&mut args);
        let app = Application::build(args, clock.clone()).await.expect("server starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let store = app.store().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self { base, store, clock, database_url, shutdown: Some(tx), server: Some(server), _dir: dir }
    }

    /// Stops the server as a SIGTERM would and waits until it has finished, audit queue
    /// drained and store closed.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ends cleanly");
        }
    }

    pub fn session(&self) -> Session {
        let http = reqwest::Client::builder()
            // A test must fail, never hang: no page or server function takes this long.
            .timeout(std::time::Duration::from_secs(30))
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Session { http, base: self.base.clone(), email: String::new() }
    }

    /// A new developer, signed up through the portal and signed in.
    pub async fn developer(&self, name: &str) -> Session {
        let mut s = self.session();
        s.email = format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple());
        let a = s.call("sign_up", &[("email", &s.email.clone()), ("password", PASSWORD)]).await;
        assert!(a.status < 400, "sign up failed: {a:?}");
        s
    }

    /// A person with `role`, created as an operator would, then signed in.
    pub async fn user_with_role(&self, role: Role) -> Session {
        let mut s = self.session();
        s.email = format!("{}-{}@example.com", role.as_str(), uuid::Uuid::now_v7().simple());
        self.store
            .create_user(&s.email, PASSWORD.into(), role, None, portcullis_domain::access::Channel::Cli)
            .await
            .expect("create user");
        let a = s.call("sign_in", &[("email", &s.email.clone()), ("password", PASSWORD)]).await;
        assert!(a.status < 400, "sign in failed: {a:?}");
        s
    }

    /// Publishes the demo's sample products.
    pub async fn publish_sample_products(&self) {
        let admin = self
            .store
            .create_user(
                &format!("publisher-{}@example.com", uuid::Uuid::now_v7().simple()),
                PASSWORD.into(),
                Role::Admin,
                None,
                portcullis_domain::access::Channel::Cli,
            )
            .await
            .expect("admin");
        let actor = portcullis_domain::access::Actor::new(admin, portcullis_domain::access::Channel::Cli);
        for (p, e) in portcullis_domain::seed::sample_products(&self.base) {
            self.store.create_product(&actor, p, e).await.expect("publish");
        }
    }

    pub async fn product_id(&self, slug: &str) -> String {
        self.store.list_products().await.expect("products").into_iter().find(|p| p.slug == slug).expect("product").id
    }
}

impl Session {
    /// Calls a server function the way the portal's enhanced forms do.
    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> Answer {
        let res = self
            .http
            .post(format!("{}/api/{endpoint}", self.base))
            .header(ACCEPT, "application/json")
            .header(ORIGIN, self.base.clone())
            .form(form)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body }
    }

    pub async fn page(&self, path: &str) -> (u16, String) {
        let res = self.http.get(format!("{}{path}", self.base)).send().await.expect("request");
        (res.status().as_u16(), res.text().await.expect("body"))
    }
}

/// A client with an API key and sandbox grants for the products named (scope `read`).
pub struct Agent {
    pub dev: Session,
    pub reg: Registration,
    pub key: IssuedSecret,
}

pub async fn agent(app: &TestApp, products: &[&str]) -> Agent {
    let dev = app.developer("agent-owner").await;
    let reg: Registration =
        dev.call("register_client", &[("name", "Test agent"), ("kind", "ai_agent"), ("description", "")]).await.ok();
    for slug in products {
        let id = app.product_id(slug).await;
        let g = dev
            .call(
                "request_access",
                &[
                    ("profile_id", &reg.secret.profile_id),
                    ("product_id", &id),
                    ("scope_read", "on"),
                    ("justification", ""),
                ],
            )
            .await;
        assert_eq!(g.status, 200, "{g:?}");
    }
    let key: IssuedSecret = dev.call("issue_api_key", &[("profile_id", &reg.secret.profile_id)]).await.ok();
    Agent { dev, reg, key }
}
