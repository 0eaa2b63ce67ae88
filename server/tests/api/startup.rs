use crate::helpers::{serve_args, Server, TestApp, PASSWORD, SECRET};
use portcullis::application::{Application, StartError};
use portcullis_domain::clock::Clock;
use portcullis_domain::scopes::Scopes;

#[tokio::test]
async fn refuses_to_start_without_a_strong_secret_outside_demo_mode() {
    let dir = std::env::temp_dir().join(format!("portcullis-nosecret-{}", uuid::Uuid::now_v7().simple()));
    let url = format!("sqlite://{}/x.db", dir.display());
    let missing = Application::build(serve_args(dir.clone(), Some(url.clone()), None, false), Clock::system()).await;
    assert!(
        matches!(missing, Err(StartError::Config(ref m)) if m.contains("PORTCULLIS_SECRET")),
        "{:?}",
        missing.err()
    );
    let weak =
        Application::build(serve_args(dir.clone(), Some(url), Some("password".into()), false), Clock::system()).await;
    assert!(matches!(weak, Err(StartError::Config(_))));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn demo_mode_seeds_the_sample_bank_with_a_working_upstream() {
    let app = TestApp::spawn_demo().await;
    // The demo seeds one person, its admin (counted before the test makes one to read).
    assert_eq!(app.store.count_users().await.unwrap(), 1);
    let products = app.store.list_products(&app.operator_admin().await).await.unwrap();
    let names: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Accounts", "Payments", "Reports"]);
    let accounts = &products[0];
    assert!(accounts.endpoints.iter().any(|e| e.path_template == "/accounts/{id}" && e.scope == "read"));
    let res = reqwest::get(format!("{}/accounts", accounts.sandbox_url)).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"][0]["id"], "acc-1001");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(reqwest::get(format!("{}/healthz", app.base)).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(format!("{}/readyz", app.base)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn pages_render_on_the_server_and_unknown_ones_are_404() {
    let app = TestApp::spawn().await;
    let s = app.session();
    let (status, html) = s.page("/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Register a client"));
    let (status, html) = s.page("/login").await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"password\""));
    let (status, _) = s.page("/no/such/page").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_command_line_creates_an_admin_who_can_sign_in() {
    use std::io::Write;
    let app = TestApp::spawn().await;
    let email = format!("ops-{}@example.com", uuid::Uuid::now_v7().simple());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["admin", "create-user", "--email", &email, "--role", "admin", "--database-url", &app.database_url])
        .env("PORTCULLIS_SECRET", crate::helpers::SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    // Waited for off the runtime: the server under test runs on this thread, and a write
    // it had begun when the command started must finish, or the command's own write
    // waits out SQLite's busy timeout ("database is locked").
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let said = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    let s = app.session();
    assert!(s.call("sign_in", &[("email", &email), ("password", PASSWORD)]).await.status < 400);
    let me: Option<portcullis_domain::model::UserView> = s.call("current_user", &[]).await.ok();
    assert_eq!(me.unwrap().role, portcullis_domain::model::Role::Admin);
    assert_eq!(s.call("pending_grants", &[]).await.status, 200);
}

/// Secrets given as files (`--secret-file`, `--database-url-file`) are used — a token
/// made under them works — and appear neither in the process's arguments nor in its
/// environment; a missing file stops the server with its name.
#[tokio::test]
async fn the_secret_and_database_url_can_come_from_files_kept_out_of_the_process_list() {
    let mut app = TestApp::spawn().await;
    let admin = app.operator_admin().await;
    let pat = app.store.create_access_token(&admin, "files", Some(1), Scopes::all()).await.unwrap().token;
    app.shut_down().await;
    let dir = app.data_dir();
    let (secret_file, url_file) = (dir.join("secret"), dir.join("database-url"));
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    std::fs::write(&url_file, format!("{}\n", app.database_url)).unwrap();
    let serve = |secret: &std::path::Path| {
        let mut serve = Server::command();
        serve
            .arg("--secret-file")
            .arg(secret)
            .arg("--database-url-file")
            .arg(&url_file)
            .arg("--data-dir")
            .arg(dir)
            .env_remove("PORTCULLIS_SECRET")
            .env_remove("DATABASE_URL");
        serve
    };

    let missing = serve(&dir.join("no-such-secret")).output().unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no-such-secret"), "{stderr}");

    let server = Server::spawn(serve(&secret_file)).await;
    let res =
        reqwest::Client::new().get(format!("{}/api/v1/products", server.base)).bearer_auth(&pat).send().await.unwrap();
    assert_eq!(res.status(), 200, "a token hashed under the file's secret, stored in the file's database");
    for what in ["cmdline", "environ"] {
        let seen =
            String::from_utf8_lossy(&std::fs::read(format!("/proc/{}/{what}", server.pid())).unwrap()).into_owned();
        assert!(!seen.contains(SECRET) && !seen.contains(&app.database_url), "{what} shows a secret");
    }
}

/// Servers starting in the same process (tests do this; so would an embedding) must
/// never stall a page another server is rendering. Leptos marks route generation with
/// a process-wide flag, and a resource first polled while it is up waits forever
/// (leptos#4773): each client page here renders while another thread keeps starting
/// servers.
#[tokio::test]
async fn pages_render_while_other_servers_start_in_the_same_process() {
    let app = TestApp::spawn().await;
    let dev = app.developer("busy").await;
    let reg: portcullis_app::api::Registration =
        dev.call("register_client", &[("name", "Busy agent"), ("kind", "ai_agent"), ("description", "")]).await.ok();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // What a server starting in this process does that matters here: its route list.
    let starter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let _runtime = rt.enter();
            let mut started = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                drop(portcullis::application::portal_routes());
                started += 1;
            }
            started
        })
    };
    let page = format!("{}/clients/{}", app.base, reg.client_id);
    let mut stalled = 0;
    for _ in 0..60 {
        let res = tokio::time::timeout(std::time::Duration::from_secs(5), dev.http.get(&page).send()).await;
        match res {
            Ok(Ok(r)) => assert_eq!(r.status(), 200),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => {
                stalled += 1;
                break;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let started = starter.join().unwrap();
    assert!(started >= 3, "only {started} route lists were made meanwhile");
    assert_eq!(stalled, 0, "a page render never finished while {started} route lists were made");
}

/// A server started while another process holds the SQLite file's write lock (an admin
/// command, a server still closing it) waits for the lock instead of exiting with
/// "database is locked": SQLite's own busy timeout (5 s) is shorter than this hold.
#[tokio::test]
async fn a_server_started_while_another_process_holds_the_sqlite_file_waits_for_it() {
    use sqlx::{Connection, Executor};
    let dir = crate::helpers::tempdir::TempDir::new();
    let url = format!("sqlite://{}/locked.db", dir.0.display());
    let mut holder = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
    holder.execute("PRAGMA journal_mode = WAL").await.unwrap();
    holder.execute("BEGIN EXCLUSIVE").await.unwrap();
    holder.execute("CREATE TABLE held (x INTEGER)").await.unwrap();

    let stderr_path = dir.0.join("child.stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--addr", "127.0.0.1:0", "--database-url", &url])
        .arg("--data-dir")
        .arg(&dir.0)
        .env("PORTCULLIS_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // The log (stdout) up to the line that says it listens.
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut said = Vec::new();
        let listening = lines.by_ref().map_while(Result::ok).any(|l| {
            said.push(l);
            said.last().is_some_and(|l| l.contains("is listening on"))
        });
        let _ = tx.send((listening, said.join("\n")));
        lines.for_each(drop);
    });
    let held = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert!(child.try_wait().unwrap().is_none(), "the server exited while the file was locked");
    holder.execute("COMMIT").await.unwrap();
    let (listening, said) = tokio::time::timeout(std::time::Duration::from_secs(30), rx).await.unwrap().unwrap();
    let errors = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(listening, "the server did not start once the lock was released: {said} {errors}");
    assert!(held.elapsed() >= std::time::Duration::from_secs(7));
    assert!(said.contains("locked by another process; retrying"), "it said why it waited: {said}");
    let _ = child.kill();
    let _ = child.wait();
}
