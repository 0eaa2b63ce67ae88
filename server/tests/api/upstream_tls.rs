//! Upstreams over https: a test CA made here, an upstream that presents a certificate
//! it signed (and, in one case, demands a client certificate), and the gateway trusting
//! only what `serve` was told to trust. Hostnames are always verified.

use crate::helpers::tempdir::TempDir;
use crate::helpers::{agent_for, wait_for_audit, Agent, TestApp};
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

    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    pub(crate) fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        self.issue_for(&[name], usage)
    }

    /// A certificate for several names (DNS names or IP addresses), the first one its
    /// common name.
    pub(crate) fn issue_for(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// An https upstream on a loopback port, reached as `https://localhost:<port>`.
struct TlsUpstream {
    base: String,
    hits: Arc<AtomicUsize>,
}

impl TlsUpstream {
    async fn start(leaf: Leaf, client_ca: Option<&TestCa>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(vec![leaf.der], leaf.key).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let router = axum::Router::new().route(
            "/fast",
            axum::routing::get(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                "fast over tls"
            }),
        );
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
    let rows = wait_for_audit(&app.database_url, &format!("action = 'request' AND product = '{slug}'"), 1).await;
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
