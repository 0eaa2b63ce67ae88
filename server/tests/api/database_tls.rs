//! PostgreSQL over TLS: `sslmode` in the database URL is honoured (rustls, the system's
//! roots or `sslrootcert`). Needs a PostgreSQL with TLS on (`TEST_DATABASE_URL`; this
//! machine's has Debian's snake-oil certificate).

use crate::helpers::{Server, TestApp};

fn with_param(url: &str, param: &str) -> String {
    format!("{url}{}{param}", if url.contains('?') { "&" } else { "?" })
}

#[tokio::test]
async fn sslmode_require_encrypts_every_connection_and_verify_full_refuses_an_unverifiable_server() {
    let mut app = TestApp::spawn().await;
    if !app.database_url.starts_with("postgres") {
        eprintln!("skipped: PostgreSQL TLS needs TEST_DATABASE_URL");
        return;
    }
    app.shut_down().await;
    let plain = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let ssl_on: String = sqlx::query_scalar("SHOW ssl").fetch_one(&plain).await.unwrap();
    if ssl_on != "on" {
        eprintln!("skipped: this PostgreSQL has ssl = off");
        return;
    }

    let serve = |url: &str| Server::command_on(&app, url);
    let server = Server::spawn(serve(&with_param(&app.database_url, "sslmode=require"))).await;
    let res = reqwest::get(format!("{}/readyz", server.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    // Every connection the server holds to its database, pool and LISTEN alike.
    let (all, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.client_port IS NOT NULL",
    )
    .fetch_one(&plain)
    .await
    .unwrap();
    assert!(all >= 2, "the pool and the policy feed are connected ({all})");
    assert_eq!(encrypted, all, "every connection is encrypted");
    drop(server);

    // verify-full checks the certificate's chain and name: a snake-oil certificate for
    // another host is refused, and the server does not start on it.
    let out = serve(&with_param(&app.database_url, "sslmode=verify-full")).output().unwrap();
    assert!(!out.status.success(), "started on a database whose certificate it cannot verify");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("certificate"), "the operator is told why: {stderr}");
}
