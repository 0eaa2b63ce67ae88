//! Upstreams over https: a test CA made here, an upstream that presents a certificate
//! it signed (and, in one case, demands a client certificate), and the gateway trusting
//! only what `serve` was told to trust. Hostnames are always verified.

use crate::helpers::tempdir::TempDir;
use crate::helpers::{agent_for, poll_audit, Agent, Server, TestApp};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A certificate authority made for one test (the https listener's tests use it too).
pub(crate) struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
}

/// A certificate and its key, as DER (for the test's server) and PEM (for `serve`).
pub(crate) struct Leaf {
    pub(crate) der: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl Leaf {
    fn new(cert: rcgen::Certificate, key: &KeyPair) -> Self {
        Leaf {
            der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self { key, cert }
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The authority's private key, for a client that issues its own certificates with it.
    pub(crate) fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub(crate) fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        self.issue_for(&[name], usage)
    }

    /// A client certificate (`clientAuth`) with this subject, its attributes in the
    /// order given (the DER order: least specific first).
    pub(crate) fn issue_client(&self, subject: &[(DnType, &str)]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Only the subject given (rcgen's default names a CN of its own first).
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in subject {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Leaf::new(params.signed_by(&key, &self.cert, &self.key).unwrap(), &key)
    }

    /// A certificate for several names (DNS names or IP addresses), the first one its
    /// common name.
    pub(crate) fn issue_for(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        Leaf::new(params.signed_by(&key, &self.cert, &self.key).unwrap(), &key)
    }
}

/// Serves `router` over https with `leaf` on a loopback port (asking for a client
/// certificate from `client_ca`, if given), and returns the port.
pub(crate) async fn serve_https(leaf: Leaf, client_ca: Option<&TestCa>, router: axum::Router) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der()).unwrap();
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(vec![leaf.der], leaf.key).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                // A refused handshake is what some tests are after: nothing to serve.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

/// An https upstream on a loopback port, reached as `https://localhost:<port>`.
struct TlsUpstream {
    base: String,
    hits: Arc<AtomicUsize>,
}

impl TlsUpstream {
    async fn start(leaf: Leaf, client_ca: Option<&TestCa>) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let router = axum::Router::new().route(
            "/fast",
            axum::routing::get(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                "fast over tls"
            }),
        );
        let port = serve_https(leaf, client_ca, router).await;
        Self { base: format!("https://localhost:{port}"), hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub(crate) fn write(dir: &TempDir, name: &str, pem: &str) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

async fn call(app: &TestApp, slug: &str, a: &Agent) -> (reqwest::StatusCode, serde_json::Value) {
    let res = reqwest::Client::new()
        .get(format!("{}/gw/{slug}/fast", app.base))
        .header("x-api-key", &a.key.secret)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// The status and reason of the one request row for `slug`'s product.
async fn row_for(app: &TestApp, slug: &str) -> (i64, String) {
    let rows = app.wait_for_audit(&format!("action = 'request' AND product = '{slug}'"), 1).await;
    (rows[0]["status"].as_i64().unwrap(), rows[0]["reason"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_upstream_whose_ca_is_trusted_is_reached_over_https_and_others_are_refused_with_their_reason() {
    let (ca, stranger) = (TestCa::new("Portcullis test CA"), TestCa::new("Someone else's CA"));
    let files = TempDir::new();
    let ca_file = write(&files, "ca.pem", &ca.pem());
    let trusted = TlsUpstream::start(ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), None).await;
    let unknown = TlsUpstream::start(stranger.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), None).await;
    let misnamed = TlsUpstream::start(ca.issue("elsewhere.example", ExtendedKeyUsagePurpose::ServerAuth), None).await;

    let app = TestApp::spawn_configured(|a| a.upstream_ca_file = Some(ca_file.clone())).await;
    let a = agent_for(&app, "bank", &trusted.base, &[("GET", "/fast")]).await;
    let (status, body) = call(&app, "bank", &a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::Value::String("fast over tls".into()));
    assert_eq!(trusted.hits(), 1);
    assert_eq!(row_for(&app, "bank").await, (200, "allowed".into()));

    // A certificate from a CA nobody configured, and one for another name from the
    // trusted CA: both refused in the handshake, with the reason said and recorded.
    for (slug, upstream, why) in [("unknown", &unknown, "UnknownIssuer"), ("misnamed", &misnamed, "not valid for name")]
    {
        let a = agent_for(&app, slug, &upstream.base, &[("GET", "/fast")]).await;
        let (status, body) = call(&app, slug, &a).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(body["code"], "upstream_tls_failed", "{body}");
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
        assert_eq!(upstream.hits(), 0, "no request reached an upstream it could not verify");
        assert_eq!(row_for(&app, slug).await, (502, "upstream_tls_failed".into()));
    }
}

#[tokio::test]
async fn without_the_ca_configured_a_private_pki_upstream_is_refused() {
    let ca = TestCa::new("Portcullis test CA");
    let upstream = TlsUpstream::start(ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), None).await;
    let app = TestApp::spawn().await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let (status, body) = call(&app, "bank", &a).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (502, Some("upstream_tls_failed")), "{body}");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn an_upstream_that_requires_a_client_certificate_is_reached_when_one_is_configured() {
    let ca = TestCa::new("Portcullis test CA");
    let files = TempDir::new();
    let ca_file = write(&files, "ca.pem", &ca.pem());
    let client = ca.issue("portcullis-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    let (cert_file, key_file) =
        (write(&files, "client.pem", &client.cert_pem), write(&files, "client.key", &client.key_pem));
    let upstream = TlsUpstream::start(ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), Some(&ca)).await;

    // Without a client certificate the upstream ends the handshake.
    let plain = TestApp::spawn_configured(|a| a.upstream_ca_file = Some(ca_file.clone())).await;
    let a = agent_for(&plain, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let (status, body) = call(&plain, "bank", &a).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (502, Some("upstream_tls_failed")), "{body}");
    assert_eq!(upstream.hits(), 0);

    let app = TestApp::spawn_configured(|a| {
        a.upstream_ca_file = Some(ca_file.clone());
        a.upstream_client_cert = Some(cert_file.clone());
        a.upstream_client_key = Some(key_file.clone());
    })
    .await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let (status, body) = call(&app, "bank", &a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn a_ca_file_that_holds_no_certificate_stops_the_server_at_start_with_the_reason() {
    let files = TempDir::new();
    let bad = write(&files, "ca.pem", "not a certificate\n");
    let out = crate::helpers::Server::command()
        .arg("--upstream-ca-file")
        .arg(&bad)
        .arg("--data-dir")
        .arg(&files.0)
        .env("PORTCULLIS_SECRET", crate::helpers::SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ca.pem") && stderr.contains("certificate"), "{stderr}");
}

// Per-product upstream TLS: named profiles under `--upstream-tls-dir`, one directory
// each, chosen by a product's gateway policy.

/// Writes the upstream TLS profile `name` under `dir`: `ca.pem` with `ca`'s certificate,
/// and `client.pem` / `client.key` with `client`.
fn profile(dir: &TempDir, name: &str, ca: Option<&TestCa>, client: Option<&Leaf>) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::create_dir_all(&path).unwrap();
    if let Some(ca) = ca {
        std::fs::write(path.join("ca.pem"), ca.pem()).unwrap();
    }
    if let Some(leaf) = client {
        std::fs::write(path.join("client.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(path.join("client.key"), &leaf.key_pem).unwrap();
    }
    path
}

/// A personal access token of a new admin, for the management API.
async fn admin_token(app: &TestApp) -> String {
    let admin = app.user_with_role(portcullis_domain::model::Role::Admin).await;
    crate::management::token_for(app, &admin).await
}

/// `PUT /api/v1/products/{id}/policy` with `body`.
async fn put_policy(base: &str, token: &str, product_id: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .put(format!("{base}/api/v1/products/{product_id}/policy"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// Points `slug`'s product at the upstream TLS profile `name` (`None`: the default).
async fn use_profile(app: &TestApp, token: &str, slug: &str, name: Option<&str>) {
    let id = app.product_id(slug).await;
    let (status, body) = put_policy(&app.base, token, &id, serde_json::json!({ "upstream_tls": name })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upstream_tls"].as_str(), name, "{body}");
}

/// The status, decision and reason of the audit row of the request a problem document
/// answered.
/// The row of a refused call; written by whichever server answered it, in this process or
/// another (`Server::start`), so polled.
async fn row_of(app: &TestApp, problem: &serde_json::Value) -> (i64, String, String) {
    let id = problem["request_id"].as_str().unwrap();
    let rows = poll_audit(&app.database_url, &format!("request_id = '{id}'"), 1).await;
    let text = |k: &str| rows[0][k].as_str().unwrap().to_owned();
    (rows[0]["status"].as_i64().unwrap(), text("decision"), text("reason"))
}

#[tokio::test]
async fn each_product_is_called_with_its_own_upstream_tls_profile() {
    let (ca_a, ca_b) = (TestCa::new("PKI A"), TestCa::new("PKI B"));
    let a_upstream = TlsUpstream::start(ca_a.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), None).await;
    let b_upstream = TlsUpstream::start(ca_b.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), None).await;
    let dir = TempDir::new();
    profile(&dir, "pki-a", Some(&ca_a), None);
    profile(&dir, "pki-b", Some(&ca_b), None);
    let app = TestApp::spawn_configured(|a| a.upstream_tls_dir = Some(dir.0.clone())).await;
    let token = admin_token(&app).await;

    let alpha = agent_for(&app, "alpha", &a_upstream.base, &[("GET", "/fast")]).await;
    let beta = agent_for(&app, "beta", &b_upstream.base, &[("GET", "/fast")]).await;
    let plain = agent_for(&app, "plain", &a_upstream.base, &[("GET", "/fast")]).await;
    use_profile(&app, &token, "alpha", Some("pki-a")).await;
    use_profile(&app, &token, "beta", Some("pki-b")).await;

    for (slug, agent) in [("alpha", &alpha), ("beta", &beta)] {
        let (status, body) = call(&app, slug, agent).await;
        assert_eq!(status, 200, "{slug}: {body}");
    }
    assert_eq!((a_upstream.hits(), b_upstream.hits()), (1, 1));

    // A product naming no profile gets the default: the system's roots only, not a
    // union of every profile's.
    let (status, body) = call(&app, "plain", &plain).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (502, Some("upstream_tls_failed")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("UnknownIssuer"), "{body}");

    // Alpha pointed at B's PKI no longer trusts its own upstream: the choice is the
    // product's, not the server's.
    use_profile(&app, &token, "alpha", Some("pki-b")).await;
    let (status, body) = call(&app, "alpha", &alpha).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "upstream_tls_failed", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("UnknownIssuer"), "{body}");
    assert_eq!(row_of(&app, &body).await, (502, "allowed".into(), "upstream_tls_failed".into()));
    assert_eq!(a_upstream.hits(), 1, "nothing reached an upstream the profile does not trust");
    let (status, body) = call(&app, "beta", &beta).await;
    assert_eq!(status, 200, "beta is untouched: {body}");

    // And back to the default, by `null`.
    use_profile(&app, &token, "alpha", None).await;
    assert_eq!(call(&app, "alpha", &alpha).await.0, 502);
    let changes = crate::helpers::audit_rows(&app.database_url, "action = 'product.policy_changed'").await;
    assert_eq!(changes.len(), 4, "each change is an admin event: {changes:?}");
}

#[tokio::test]
async fn only_a_product_whose_profile_holds_a_client_certificate_reaches_an_upstream_requiring_one() {
    let ca = TestCa::new("Portcullis test CA");
    let client = ca.issue("portcullis-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    let upstream = TlsUpstream::start(ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), Some(&ca)).await;
    let dir = TempDir::new();
    profile(&dir, "mtls", Some(&ca), Some(&client));
    profile(&dir, "roots-only", Some(&ca), None);
    let app = TestApp::spawn_configured(|a| a.upstream_tls_dir = Some(dir.0.clone())).await;
    let token = admin_token(&app).await;
    let with = agent_for(&app, "with-cert", &upstream.base, &[("GET", "/fast")]).await;
    let without = agent_for(&app, "without-cert", &upstream.base, &[("GET", "/fast")]).await;
    use_profile(&app, &token, "with-cert", Some("mtls")).await;
    use_profile(&app, &token, "without-cert", Some("roots-only")).await;

    let (status, body) = call(&app, "with-cert", &with).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&app, "without-cert", &without).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (502, Some("upstream_tls_failed")), "{body}");
    assert_eq!(row_of(&app, &body).await, (502, "allowed".into(), "upstream_tls_failed".into()));
    assert_eq!(upstream.hits(), 1, "only the call with the certificate got through");
}

#[tokio::test]
async fn a_replica_without_the_products_profile_refuses_its_calls_with_502_and_the_reason() {
    let ca = TestCa::new("Portcullis test CA");
    let upstream = TlsUpstream::start(ca.issue("localhost", ExtendedKeyUsagePurpose::ServerAuth), None).await;
    let dir = TempDir::new();
    profile(&dir, "pki-a", Some(&ca), None);
    let mut app = TestApp::spawn_configured(|a| a.upstream_tls_dir = Some(dir.0.clone())).await;
    let token = admin_token(&app).await;
    let a = agent_for(&app, "bank", &upstream.base, &[("GET", "/fast")]).await;
    let other = crate::helpers::publish(&app, "other", &upstream.base, vec![]).await;
    use_profile(&app, &token, "bank", Some("pki-a")).await;
    let bank = app.product_id("bank").await;
    app.shut_down().await;

    // Two replicas of one store, configured differently: one has the profile, one not.
    let dir_flag = dir.0.to_str().unwrap();
    let with = Server::start(&app, &["--upstream-tls-dir", dir_flag]).await;
    let without = Server::start(&app, &[]).await;
    let get = |base: String| {
        let key = a.key.secret.clone();
        async move {
            let res = reqwest::Client::new()
                .get(format!("{base}/gw/bank/fast"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    assert_eq!(get(with.base.clone()).await.0, 200);
    let (status, body) = get(without.base.clone()).await;
    assert_eq!((status, body["code"].as_str()), (502, Some("upstream_tls_profile_missing")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("`pki-a`"), "{body}");
    assert_eq!(row_of(&app, &body).await, (502, "allowed".into(), "upstream_tls_profile_missing".into()));
    assert_eq!(upstream.hits(), 1, "the replica without the profile did not fall back to another");

    // Through that replica the product keeps its profile when the rest of its policy
    // changes, but no product can be pointed at it there.
    let keep = serde_json::json!({ "rate_per_minute": 600, "upstream_tls": "pki-a" });
    let (status, body) = put_policy(&without.base, &token, &bank, keep).await;
    assert_eq!((status, body["upstream_tls"].as_str()), (200, Some("pki-a")), "{body}");
    let (status, body) =
        put_policy(&without.base, &token, &other.id, serde_json::json!({ "upstream_tls": "pki-a" })).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_request")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("has none"), "{body}");
    with.kill();
    without.kill();
}

#[tokio::test]
async fn the_management_api_refuses_profile_names_the_server_does_not_have_and_hostile_ones() {
    let ca = TestCa::new("Portcullis test CA");
    let dir = TempDir::new();
    profile(&dir, "pki-a", Some(&ca), None);
    profile(&dir, "pki-b", Some(&ca), None);
    let app = TestApp::spawn_configured(|a| a.upstream_tls_dir = Some(dir.0.clone())).await;
    let token = admin_token(&app).await;
    let product = crate::helpers::publish(&app, "bank", "https://localhost:1", vec![]).await;

    let (status, body) =
        put_policy(&app.base, &token, &product.id, serde_json::json!({ "upstream_tls": "pki-z" })).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_request")), "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("`pki-z`") && detail.contains("pki-a, pki-b"), "{detail}");

    let long = "a".repeat(64);
    let huge = "a".repeat(100_000);
    for hostile in ["../x", "pki-a/../pki-b", "..", "", " ", "PKI-A", "pki_a", "pki-ä", "пки", "pki-a\0", &long, &huge]
    {
        let (status, body) =
            put_policy(&app.base, &token, &product.id, serde_json::json!({ "upstream_tls": hostile })).await;
        assert_eq!(status, 422, "{hostile:.20?}: {body}");
        assert_eq!(body["code"], "invalid_request");
        assert!(!body["detail"].as_str().unwrap().contains(hostile) || hostile.trim().is_empty(), "not echoed");
    }
    let (status, body) = put_policy(&app.base, &token, &product.id, serde_json::json!({ "upstream_tls": 7 })).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "{body}");
    assert!(app.store.product(&product.id).await.unwrap().upstream_tls.is_none(), "nothing refused was kept");

    let dev = app.developer("dev").await;
    let dev_token = crate::management::token_for(&app, &dev).await;
    let (status, _) =
        put_policy(&app.base, &dev_token, &product.id, serde_json::json!({ "upstream_tls": "pki-a" })).await;
    assert_eq!(status, 403, "only admins set a product's policy");

    let (status, body) = put_policy(
        &app.base,
        &token,
        &product.id,
        serde_json::json!({ "rate_per_minute": 600, "api_key_in_query": true, "upstream_tls": "pki-b" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["rate_per_minute"], &body["api_key_in_query"], &body["upstream_tls"]),
        (&serde_json::json!(600), &serde_json::json!(true), &serde_json::json!("pki-b"))
    );
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/products", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["upstream_tls"], "pki-b");

    let doc: serde_json::Value =
        reqwest::get(format!("{}/api/v1/openapi.json", app.base)).await.unwrap().json().await.unwrap();
    assert!(doc["paths"]["/products/{product_id}/policy"]["put"].is_object(), "documented");
    assert!(doc["components"]["schemas"]["ProductPolicyBody"]["properties"]["upstream_tls"].is_object());
    assert!(doc["components"]["schemas"]["ProductView"]["properties"]["upstream_tls"].is_object());
}

#[tokio::test]
async fn the_portal_offers_the_servers_profiles_and_refuses_any_other() {
    let ca = TestCa::new("Portcullis test CA");
    let dir = TempDir::new();
    profile(&dir, "pki-a", Some(&ca), None);
    let app = TestApp::spawn_configured(|a| a.upstream_tls_dir = Some(dir.0.clone())).await;
    let product = crate::helpers::publish(&app, "bank", "https://localhost:1", vec![]).await;
    let admin = app.user_with_role(portcullis_domain::model::Role::Admin).await;

    let names = admin.call("upstream_tls_profiles", &[]).await;
    assert_eq!(names.body, serde_json::json!(["pki-a"]), "{names:?}");
    let set_policy = |name: &'static str| {
        let form = [("product_id", product.id.as_str()), ("rate_per_minute", ""), ("upstream_tls", name)];
        let admin = &admin;
        async move { admin.call("set_product_policy", &form).await }
    };
    let set = set_policy("pki-a").await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body["upstream_tls"], "pki-a");
    let (status, page) = admin.page("/admin/products").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("System roots (default)") && page.contains(r#"data-testid="product-upstream-tls""#),
        "{page}"
    );
    assert!(page.contains(">profile pki-a<"), "the product shows its profile");

    for refused in ["pki-z", "../x", "PKI-A"] {
        let a = set_policy(refused).await;
        assert_eq!((a.status, a.error()), (422, "Invalid".to_owned()), "{refused}: {a:?}");
    }
    // The default option sends an empty name.
    let cleared = set_policy("").await;
    assert_eq!(cleared.body["upstream_tls"], serde_json::Value::Null, "{cleared:?}");

    let dev = app.developer("dev").await;
    assert_eq!(dev.call("upstream_tls_profiles", &[]).await.status, 403);
}

#[tokio::test]
async fn a_bad_upstream_tls_dir_stops_the_start_naming_the_file() {
    let ca = TestCa::new("Portcullis test CA");
    let (one, two) = (
        ca.issue("portcullis-gateway", ExtendedKeyUsagePurpose::ClientAuth),
        ca.issue("portcullis-gateway", ExtendedKeyUsagePurpose::ClientAuth),
    );
    type Setup = Box<dyn Fn(&std::path::Path)>;
    let file = |rel: &'static str, text: String| -> Setup {
        Box::new(move |dir: &std::path::Path| {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &text).unwrap();
        })
    };
    let cases: Vec<(&str, Vec<Setup>, &[&str])> = vec![
        ("a bad name", vec![file("PKI_A/ca.pem", ca.pem())], &["PKI_A", "not a name"]),
        ("a dotted name", vec![file("pki.a/ca.pem", ca.pem())], &["pki.a", "not a name"]),
        (
            "a key without its certificate",
            vec![file("lonely/client.key", one.key_pem.clone())],
            &["lonely/client.key", "client.pem"],
        ),
        (
            "a certificate without its key",
            vec![file("lonely/client.pem", one.cert_pem.clone())],
            &["lonely/client.pem", "client.key"],
        ),
        (
            "a garbage CA bundle",
            vec![file("junk/ca.pem", "not a certificate\n".into())],
            &["junk/ca.pem", "certificate"],
        ),
        (
            "a garbage certificate inside PEM armour",
            vec![file("junk/ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into())],
            &["junk/ca.pem"],
        ),
        (
            "a garbage key",
            vec![file("junk/client.pem", one.cert_pem.clone()), file("junk/client.key", "not a key\n".into())],
            &["junk/client.key", "private key"],
        ),
        (
            "a key of another certificate",
            vec![file("mixed/client.pem", one.cert_pem.clone()), file("mixed/client.key", two.key_pem.clone())],
            &["mixed/client.pem", "mixed/client.key"],
        ),
        (
            "an empty profile",
            vec![Box::new(|d: &std::path::Path| std::fs::create_dir_all(d.join("empty")).unwrap())],
            &["empty", "empty upstream TLS profile"],
        ),
        ("a misnamed file", vec![file("typo/ca.crt", ca.pem())], &["typo/ca.crt"]),
        ("a file where a profile goes", vec![file("pki-a", ca.pem())], &["pki-a", "not a directory"]),
    ];
    for (what, setup, said) in cases {
        let dir = TempDir::new();
        let tls = dir.0.join("upstream-tls");
        std::fs::create_dir_all(&tls).unwrap();
        for s in &setup {
            s(&tls);
        }
        // Hidden entries (a Kubernetes volume's `..data`) are not profiles.
        std::fs::create_dir_all(tls.join("..data")).unwrap();
        let err = start_error(&dir, |a| a.upstream_tls_dir = Some(tls.clone())).await;
        for s in said {
            assert!(err.contains(s), "{what}: {err:?} should say {s:?}");
        }
    }
    let dir = TempDir::new();
    let err = start_error(&dir, |a| a.upstream_tls_dir = Some(dir.0.join("missing"))).await;
    assert!(err.contains("missing") && err.contains("cannot read"), "{err}");

    // The real binary, configured through the environment, says so and exits.
    let dir = TempDir::new();
    file("pki-a/ca.pem", "garbage".into())(&dir.0.join("tls"));
    let out = crate::helpers::Server::command()
        .env("PORTCULLIS_UPSTREAM_TLS_DIR", dir.0.join("tls"))
        .arg("--data-dir")
        .arg(&dir.0)
        .env("PORTCULLIS_SECRET", crate::helpers::SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pki-a/ca.pem") && stderr.contains("certificate"), "{stderr}");
}

#[tokio::test]
async fn an_upstream_tls_dir_whose_profiles_all_load_starts() {
    let ca = TestCa::new("Portcullis test CA");
    let client = ca.issue("portcullis-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    let dir = TempDir::new();
    profile(&dir, "roots", Some(&ca), None);
    profile(&dir, "cert-only", None, Some(&client));
    profile(&dir, "both", Some(&ca), Some(&client));
    // As a Kubernetes secret volume lays it out: the files under `..data`, the profile a
    // link to its directory there; the dot-entries themselves are not profiles.
    let projected = TempDir::new();
    profile(&projected, "linked", Some(&ca), None);
    std::os::unix::fs::symlink(&projected.0, dir.0.join("..data")).unwrap();
    std::os::unix::fs::symlink(dir.0.join("..data/linked"), dir.0.join("linked")).unwrap();
    std::fs::create_dir_all(dir.0.join(".hidden")).unwrap();
    let app = TestApp::spawn_configured(|a| a.upstream_tls_dir = Some(dir.0.clone())).await;
    let admin = app.user_with_role(portcullis_domain::model::Role::Admin).await;
    let names = admin.call("upstream_tls_profiles", &[]).await;
    assert_eq!(names.body, serde_json::json!(["both", "cert-only", "linked", "roots"]), "{names:?}");
}

/// What `serve` says when it refuses to start with the flags `configure` sets.
async fn start_error(dir: &TempDir, configure: impl FnOnce(&mut portcullis::config::ServeArgs)) -> String {
    let url = format!("sqlite://{}", dir.0.join("test.db").display());
    let mut args = crate::helpers::serve_args(dir.0.clone(), Some(url), Some(crate::helpers::SECRET.into()), false);
    configure(&mut args);
    match portcullis::application::Application::build(args, portcullis_domain::clock::Clock::system()).await {
        Ok(_) => panic!("the server started"),
        Err(e) => e.to_string(),
    }
}
