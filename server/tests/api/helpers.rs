//! `TestApp`: the real server on port 0 against a real database: a temp SQLite file,
//! or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set (the test script runs
//! the whole suite once per backend).

use futures_util::StreamExt as _;
use portcullis::application::Application;
use portcullis::config::{ServeArgs, StoreArgs};
use portcullis_app::api::Registration;
use portcullis_domain::audit_writer::AuditMonitor;
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
    /// `http://…/metrics` when started with `metrics_addr`.
    pub metrics: Option<String>,
    pub store: Store,
    pub clock: Clock,
    pub database_url: String,
    /// The audit writer's watermark: `wait_for_audit` waits on it instead of polling.
    pub audit: AuditMonitor,
    /// Authorities `session()` clients trust besides the system's (a test CA, for a
    /// server started with `tls_cert`).
    pub trusted_cas: Vec<reqwest::Certificate>,
    /// What it was started with, to start it again (`restart`).
    args: ServeArgs,
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

pub mod tempdir {
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
        audit_durability: portcullis::config::AuditDurability::Queued,
        shutdown_timeout_secs: 30,
        upstream_timeout_secs: 30,
        issuer_jwks_min_interval_secs: 30,
        token_rate_limit: 30,
        signing_key_days: 30,
        audit_retention_days: 400,
        global_rate_limit: 0,
        trusted_proxies: Vec::new(),
        upstream_ca_file: None,
        upstream_client_cert: None,
        upstream_client_key: None,
        upstream_tls_dir: None,
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        tls_self_signed_clients: false,
        trust_client_cert_header: false,
        metrics_addr: None,
        redis_url: None,
        redis_url_file: None,
        source_refusal_limit: 600,
        max_body: 10 * 1024 * 1024,
        header_read_timeout_secs: 10,
        max_connections: 4096,
        site_root: "target/site".into(),
        log_json: false,
        store: StoreArgs {
            data_dir: dir,
            database_url,
            database_url_file: None,
            secret,
            secret_file: None,
            previous_secret_file: None,
            token_signing_alg: portcullis_domain::enforcement::SigningAlg::EdDSA,
        },
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
        let app = Application::build(args.clone(), clock.clone()).await.expect("server starts");
        let base = format!("{}://127.0.0.1:{}", app.scheme(), app.port());
        let metrics = app.metrics_addr().map(|a| format!("http://{a}/metrics"));
        let store = app.store().clone();
        let audit = app.audit();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            base,
            metrics,
            store,
            clock,
            database_url,
            audit,
            trusted_cas: Vec::new(),
            args,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    /// The data directory (demo secret, audit spill file).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.args.store.data_dir
    }

    /// Stops the server as `shut_down` does and starts it again on the same database and
    /// data directory, as an operator's restart would (on a new port).
    pub async fn restart(&mut self) {
        self.restart_with(|_| ()).await;
    }

    /// `restart`, with flags the test changes first (they stay for later restarts).
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut ServeArgs)) {
        self.shut_down().await;
        configure(&mut self.args);
        let app = Application::build(self.args.clone(), self.clock.clone()).await.expect("server starts again");
        self.base = format!("{}://127.0.0.1:{}", app.scheme(), app.port());
        self.metrics = app.metrics_addr().map(|a| format!("http://{a}/metrics"));
        self.store = app.store().clone();
        self.audit = app.audit();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.server = Some(tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
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
        let http = self
            .trusted_cas
            .iter()
            .fold(reqwest::Client::builder(), |b, ca| b.add_root_certificate(ca.clone()))
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

    /// Publishes the demo's sample products, served by a sample bank of their own.
    pub async fn publish_sample_products(&self) {
        let sample_base = portcullis::sample_upstream::spawn_loopback().await.expect("sample bank");
        let actor = self.operator_admin().await;
        for (p, e) in portcullis_domain::seed::sample_products(&sample_base) {
            self.store.create_product(&actor, p, e).await.expect("publish");
        }
    }

    pub async fn product_id(&self, slug: &str) -> String {
        self.store
            .list_products(&self.operator_admin().await)
            .await
            .expect("products")
            .into_iter()
            .find(|p| p.slug == slug)
            .expect("product")
            .id
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

    /// Posts a form as a browser does (the portal's pages post every form): the answer
    /// is a redirect, not data. Redirects are not followed.
    pub async fn form_post(&self, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.form_post_from(&format!("{}/clients/new", self.base), endpoint, form).await
    }

    /// [`Session::form_post`] from the page `referer` names.
    pub async fn form_post_from(&self, referer: &str, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/api/{endpoint}", self.base))
            .header(ACCEPT, "text/html,application/xhtml+xml")
            .header(ORIGIN, self.base.clone())
            .header(reqwest::header::REFERER, referer)
            .form(form)
            .send()
            .await
            .expect("request")
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
        let g = dev.request_access(&reg.secret.profile_id, &app.product_id(slug).await, &["read"]).await;
        assert_eq!(g.status, 200, "{g:?}");
    }
    let key: IssuedSecret = dev.call("issue_api_key", &[("profile_id", &reg.secret.profile_id)]).await.ok();
    Agent { dev, reg, key }
}

/// An upstream the test controls, on port 0, counting what reaches it:
/// `GET /slow` answers after 800 ms, `GET /fast` at once, `POST /echo` says how many
/// bytes it read, `GET /stream` sends 20 chunks of 1 KiB, 50 ms apart, `GET /headers`
/// echoes the request's headers, `GET /html` is a page that tries to script and set a
/// cookie, `GET /redirect` points elsewhere, `GET /big` is 1 MiB sent in 64 chunks of
/// 16 KiB, 5 ms apart: paced, so that a reader who stops early is seen stopping even when
/// loopback socket buffers could hold the whole body at once.
pub struct TestUpstream {
    pub base: String,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TestUpstream {
    pub const SLOW_MS: u64 = 800;

    pub async fn start() -> Self {
        use axum::routing::{get, post};
        use std::sync::atomic::Ordering;
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = |hits: &std::sync::Arc<std::sync::atomic::AtomicUsize>| {
            let hits = hits.clone();
            move || {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        };
        let (slow, fast, echo, stream) = (counted(&hits), counted(&hits), counted(&hits), counted(&hits));
        let (echo_headers, html, redirect, big) = (counted(&hits), counted(&hits), counted(&hits), counted(&hits));
        let router = axum::Router::new()
            .route(
                "/slow",
                get(move || async move {
                    slow();
                    tokio::time::sleep(std::time::Duration::from_millis(Self::SLOW_MS)).await;
                    "done"
                }),
            )
            .route(
                "/fast",
                get(move || async move {
                    fast();
                    "fast"
                }),
            )
            .route(
                "/echo",
                post(move |body: axum::body::Bytes| async move {
                    echo();
                    axum::Json(serde_json::json!({ "read": body.len() }))
                }),
            )
            .route(
                "/stream",
                get(move || async move {
                    stream();
                    let chunks = futures_util::stream::iter(0..20).then(|_| async {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 1024]))
                    });
                    axum::body::Body::from_stream(chunks)
                }),
            )
            .route(
                "/headers",
                get(move |headers: axum::http::HeaderMap| async move {
                    echo_headers();
                    let seen: serde_json::Map<String, Value> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::from(v.to_str().unwrap_or("?"))))
                        .collect();
                    axum::Json(seen)
                }),
            )
            .route(
                "/html",
                get(move || async move {
                    html();
                    (
                        [
                            ("content-type", "text/html"),
                            ("content-security-policy", "script-src *"),
                            ("set-cookie", "portcullis_session=stolen; Path=/"),
                        ],
                        "<script>fetch('/api/v1/tokens')</script>",
                    )
                }),
            )
            .route(
                "/redirect",
                get(move || async move {
                    redirect();
                    (axum::http::StatusCode::FOUND, [("location", "http://127.0.0.1:1/elsewhere")])
                }),
            )
            .route(
                "/big",
                get(move || async move {
                    big();
                    let chunks = futures_util::stream::iter(0..64).then(|_| async {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'z'; 16 * 1024]))
                    });
                    axum::body::Body::from_stream(chunks)
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, hits }
    }

    /// Requests that reached the upstream so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An endpoint for `publish`: `GET` needs `read`, other methods `write`.
pub fn endpoint(method: &str, path: &str) -> portcullis_domain::endpoints::NewEndpoint {
    portcullis_domain::endpoints::NewEndpoint {
        method: method.into(),
        path_template: path.into(),
        scope: if method == "GET" { "read" } else { "write" }.into(),
        ..portcullis_domain::endpoints::NewEndpoint::default()
    }
}

/// Publishes a product `slug` with `endpoints`, served at `upstream`, as an admin the
/// operator created.
pub async fn publish(
    app: &TestApp,
    slug: &str,
    upstream: &str,
    endpoints: Vec<portcullis_domain::endpoints::NewEndpoint>,
) -> portcullis_domain::model::ProductView {
    use portcullis_domain::catalog::NewProduct;
    let product = NewProduct {
        slug: slug.into(),
        name: slug.into(),
        description: String::new(),
        owner: String::new(),
        tags: Vec::new(),
        sandbox_url: upstream.into(),
        production_url: upstream.into(),
    };
    app.store.create_product(&app.operator_admin().await, product, endpoints).await.expect("publish")
}

impl TestApp {
    /// An admin as the operator's command line creates one, to act through the store.
    pub async fn operator_admin(&self) -> portcullis_domain::access::Actor {
        use portcullis_domain::access::{Actor, Channel};
        let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
        let admin =
            self.store.create_user(&email, PASSWORD.into(), Role::Admin, None, Channel::Cli).await.expect("admin");
        Actor::new(admin, Channel::Cli)
    }
}

impl Session {
    /// A personal access token this person makes through the API, limited to `scopes`
    /// (`None`: the default, everything their role allows).
    pub async fn personal_token(&self, scopes: Option<&[&str]>) -> String {
        let mut body = serde_json::json!({ "name": "script" });
        if let Some(s) = scopes {
            body["scopes"] = serde_json::json!(s);
        }
        let res = self
            .http
            .post(format!("{}/api/v1/tokens", self.base))
            .header("origin", &self.base)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
    }

    /// Requests `product_id` for a profile with `scopes`; sandbox grants are approved at once.
    pub async fn request_access(&self, profile_id: &str, product_id: &str, scopes: &[&str]) -> Answer {
        let mut form = vec![("profile_id", profile_id), ("product_id", product_id), ("justification", "")];
        form.extend(scopes.iter().map(|s| ("scopes[]", *s)));
        self.call("request_access", &form).await
    }
}

/// Publishes a product `slug` whose endpoints (method, path; `GET` needs `read`, others
/// `write`) are served at `upstream`, grants both scopes to a new agent's sandbox profile
/// with a rate limit no test reaches, and returns the agent with an API key.
pub async fn agent_for(app: &TestApp, slug: &str, upstream: &str, endpoints: &[(&str, &str)]) -> Agent {
    let created = publish(app, slug, upstream, endpoints.iter().map(|(m, p)| endpoint(m, p)).collect()).await;
    let a = agent(app, &[]).await;
    let g = a.dev.request_access(&a.reg.secret.profile_id, &created.id, &["read", "write"]).await;
    assert_eq!(g.status, 200, "{g:?}");
    let admin = app.operator_admin().await;
    app.store.set_rate_limit(&admin, &a.reg.secret.profile_id, 1_000_000, 100_000).await.expect("rate limit");
    a
}

/// A `tools/call` of the stateless MCP revision, as one HTTP request with `credential`
/// (a header name and value).
pub async fn stateless_tool(
    app: &TestApp,
    http: &reqwest::Client,
    credential: (&str, &str),
    name: &str,
    arguments: Value,
) -> reqwest::Result<reqwest::Response> {
    use base64::Engine;
    let header_name = if name.bytes().all(|b| b.is_ascii_graphic()) {
        name.to_owned()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(name))
    };
    http.post(format!("{}/mcp", app.base))
        .header(credential.0, credential.1)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", header_name)
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": name, "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}}))
        .send()
        .await
}

/// The `structuredContent` of a stateless `tools/call` that succeeded as a protocol call.
pub async fn stateless_result(app: &TestApp, credential: (&str, &str), name: &str, arguments: Value) -> Value {
    let res = stateless_tool(app, &reqwest::Client::new(), credential, name, arguments).await.expect("mcp answers");
    let body: Value = res.json().await.expect("json");
    body["result"]["structuredContent"].clone()
}

/// What `/oauth/introspect` says of `token`, asked by the agent that holds it (RFC 7662).
pub async fn introspect(base: &str, a: &Agent, token: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/oauth/introspect"))
        .basic_auth(&a.reg.client_id, Some(&a.reg.secret.secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("a JSON answer")
}

/// A plain GET's JSON answer (metadata documents, say).
pub async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.expect("GET").json().await.expect("a JSON answer")
}

/// Rows of `audit_events` as JSON objects (every column), for `sql_where`.
pub async fn audit_rows(database_url: &str, sql_where: &str) -> Vec<serde_json::Map<String, Value>> {
    use sqlx::{Column, Row};
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url).await.expect("connect");
    let rows = sqlx::query(&format!(
        "SELECT request_id, channel, tool, client_id, profile_id, client_type, credential_id, attempted_client_id, actor_user_id,
                product, endpoint, method, path, status, upstream_status, decision, reason, bytes_in, bytes_out,
                user_agent, action, sender_key, task_id, subject_id, actor_chain
         FROM audit_events WHERE {sql_where} ORDER BY id"
    ))
    .fetch_all(&pool)
    .await
    .expect("audit rows");
    pool.close().await;
    rows.iter()
        .map(|r| {
            r.columns()
                .iter()
                .map(|c| {
                    let name = c.name();
                    let v = r
                        .try_get::<Option<i64>, _>(name)
                        .map(|v| v.map(Value::from))
                        .or_else(|_| r.try_get::<Option<String>, _>(name).map(|v| v.map(Value::from)))
                        .ok()
                        .flatten()
                        .unwrap_or(Value::Null);
                    (name.to_owned(), v)
                })
                .collect()
        })
        .collect()
}

/// Waits (up to 5 s) until `sql_where` matches at least `n` rows, and returns them.
/// Audit rows written by *another process* (a real server started with `Server::start`):
/// polled, the only view a test has of another process's writer. For this process's
/// server, `TestApp::wait_for_audit` waits on the writer's watermark instead.
pub async fn poll_audit(database_url: &str, sql_where: &str, n: usize) -> Vec<serde_json::Map<String, Value>> {
    for _ in 0..100 {
        let rows = audit_rows(database_url, sql_where).await;
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rows = audit_rows(database_url, sql_where).await;
    panic!("expected {n} audit rows where {sql_where}, found {}: {rows:?}", rows.len());
}

impl TestApp {
    /// At least `n` audit rows (requests and admin events) matching `sql_where`, once the
    /// audit writer has written every row reserved so far: its watermark, not a timer.
    /// A row whose request had not reached the server when this was called is waited for
    /// through the writer's next batches; all of it within ten seconds.
    pub async fn wait_for_audit(&self, sql_where: &str, n: usize) -> Vec<serde_json::Map<String, Value>> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut progress = self.audit.progress().expect("the audit writer runs");
        loop {
            let settled = tokio::time::timeout_at(deadline, self.audit.settled()).await;
            assert_eq!(settled, Ok(true), "the audit writer did not catch up within 10 s (or stopped)");
            let rows = audit_rows(&self.database_url, sql_where).await;
            if rows.len() >= n {
                return rows;
            }
            if tokio::time::timeout_at(deadline, progress.changed()).await.is_err() {
                panic!("expected {n} audit rows where {sql_where}, found {}: {rows:?}", rows.len());
            }
        }
    }
}

/// Holds the audit table's write lock in another connection, so the writer cannot
/// commit, until the returned sender is used.
pub async fn block_audit_writer(database_url: &str) -> tokio::sync::oneshot::Sender<()> {
    sqlx::any::install_default_drivers();
    let url = database_url.to_owned();
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        if url.starts_with("postgres") {
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query("LOCK TABLE audit_events IN EXCLUSIVE MODE").execute(&mut conn).await.unwrap();
        } else {
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
        }
        let _ = locked_tx.send(());
        let _ = release_rx.await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    });
    locked_rx.await.unwrap();
    release_tx
}

/// A `portcullis serve` process (the real binary) on the test's database and data
/// directory: for crashes, and for several replicas of one store.
pub struct Server {
    child: std::process::Child,
    pub base: String,
}

impl Server {
    /// `serve` on `app`'s database and data dir, with the test secret and `extra` flags.
    pub async fn start(app: &TestApp, extra: &[&str]) -> Self {
        let mut serve = Self::command_on(app, &app.database_url);
        serve.args(extra);
        Self::spawn(serve).await
    }

    /// `serve` with the test secret and `app`'s data dir, on `database_url`.
    pub fn command_on(app: &TestApp, database_url: &str) -> std::process::Command {
        let mut serve = Self::command();
        serve
            .args(["--database-url", database_url])
            .arg("--data-dir")
            .arg(app.data_dir())
            .env("PORTCULLIS_SECRET", SECRET);
        serve
    }

    /// `portcullis serve` on a free loopback port, to be given the rest of its flags.
    pub fn command() -> std::process::Command {
        Self::command_at("127.0.0.1:0")
    }

    /// `portcullis serve` on `addr`: a replica that must come back on its own port (a
    /// load balancer's configuration names it).
    pub fn command_at(addr: &str) -> std::process::Command {
        let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        serve.args(["serve", "--addr", addr]).env("RUST_LOG", "warn");
        serve
    }

    /// Starts `serve` and waits until it listens.
    pub async fn spawn(serve: std::process::Command) -> Self {
        Self::spawn_logging(serve, None).await
    }

    /// Starts `serve`, copying what it prints (its log) into `log` when given, and waits
    /// until it listens.
    pub async fn spawn_logging(mut serve: std::process::Command, log: Option<std::path::PathBuf>) -> Self {
        let mut log = log.map(|path| std::fs::File::create(path).unwrap());
        let mut child = serve
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the portcullis binary starts");
        let stdout = child.stdout.take().expect("stdout");
        // What it says on stderr (why it stopped, if it does), read on to the end too.
        let stderr = child.stderr.take().expect("stderr");
        let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let heard = said.clone();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
                if let Ok(mut said) = heard.lock() {
                    said.push_str(&line);
                    said.push('\n');
                }
            }
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Reads on to the end, so that the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
                if let Some(log) = log.as_mut() {
                    let _ = std::io::Write::write_all(log, format!("{line}\n").as_bytes());
                }
                if let Some(url) = line.trim().strip_prefix("Portcullis is listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.to_owned());
                    }
                }
            }
        });
        let stderr_text = || said.lock().map(|s| s.clone()).unwrap_or_default();
        let base = match tokio::time::timeout(std::time::Duration::from_secs(30), rx).await {
            Ok(Ok(base)) => base,
            Ok(Err(_)) => panic!("the server ended before listening; stderr: {}", stderr_text()),
            Err(_) => panic!("the server did not listen within 30 s; stderr: {}", stderr_text()),
        };
        Self { child, base }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no drain, nothing flushed.
    pub fn kill(self) {
        drop(self);
    }
}

/// A test that fails half-way leaves no server running behind it.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy to a database (or Redis) that the test can cut and restore, as a network would.
pub struct Cable {
    pub addr: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cable {
    pub async fn to(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link.abort_handle());
            }
        });
        Self { addr, up, links }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
