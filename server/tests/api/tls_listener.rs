//! https on the main listener (`--tls-cert`): a test CA made here, the server started
//! with a certificate it signed (in process, or the real binary where a signal or an
//! exit is the point), and clients that do what real ones and attackers do: old
//! protocol versions, plain http, stalled handshakes, strangers' client certificates,
//! and certificates replaced (well and badly) while the server runs.

use crate::helpers::tempdir::TempDir;
use crate::helpers::{agent, Server, TestApp, SECRET};
use crate::upstream_tls::{write, Leaf, TestCa};
use portcullis::config::ServeArgs;
use portcullis::tls::{ClientCertificate, ListenerTls, TlsFiles};
use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server certificate for this machine, by name and by address.
fn server_leaf(ca: &TestCa) -> Leaf {
    ca.issue_for(&["localhost", "127.0.0.1"], ServerAuth)
}

/// The listener's certificate and key files.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

fn write_pair(dir: &TempDir, leaf: &Leaf) -> Pair {
    Pair { cert: write(dir, "server.pem", &leaf.cert_pem), key: write(dir, "server.key", &leaf.key_pem) }
}

async fn spawn_https(pair: &Pair, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    TestApp::spawn_configured(|a| {
        a.tls_cert = Some(pair.cert.clone());
        a.tls_key = Some(pair.key.clone());
        configure(a);
    })
    .await
}

fn port(base: &str) -> u16 {
    base.rsplit(':').next().unwrap().parse().unwrap()
}

/// A rustls client trusting `cas`, speaking `versions`, offering `alpn`, and presenting
/// `identity` when asked for a certificate.
fn client(
    cas: &[&TestCa],
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
    identity: Option<&Leaf>,
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca.der()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => builder.with_client_auth_cert(vec![leaf.der.clone()], leaf.key.clone_key()).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn handshake_over<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    connector: &TlsConnector,
) -> std::io::Result<TlsStream<S>> {
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, io))
        .await
        .expect("the handshake ends within 10 s")
}

async fn handshake(port: u16, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    handshake_over(TcpStream::connect(("127.0.0.1", port)).await?, connector).await
}

/// The certificate the listener presents to a new connection.
async fn presented(port: u16, cas: &[&TestCa]) -> CertificateDer<'static> {
    let tls = handshake(port, &client(cas, BOTH, &[b"http/1.1"], None)).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Polls (up to `within`) until new connections are shown `want`.
async fn until_presented(port: u16, cas: &[&TestCa], want: &CertificateDer<'static>, within: Duration) -> Duration {
    let started = Instant::now();
    while presented(port, cas).await != *want {
        assert!(started.elapsed() < within, "the new certificate is not served after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// One HTTP/1.1 request on an open connection: the whole answer as text, or the error
/// that ended the connection.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(mut tls: TlsStream<S>, path: &str) -> std::io::Result<String> {
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s")?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// reqwest trusting `ca`, one connection per request (none held open in a pool).
fn https_client(ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Waits for the connection to be closed by the server (EOF or an error); how long it took.
async fn closed_within<S: AsyncRead + Unpin>(io: &mut S, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(limit, io.read(&mut buf)).await {
            Err(_) => panic!("still connected after {limit:?}"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            // An alert, say: wait on for the close.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn https_is_served_over_tls_1_2_and_1_3_with_h2_and_http1_and_nothing_older_or_plain() {
    let ca = TestCa::new("Portcullis test CA");
    let files = TempDir::new();
    let pair = write_pair(&files, &server_leaf(&ca));
    let app = spawn_https(&pair, |_| ()).await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    let port = port(&app.base);

    let http = https_client(&ca);
    assert_eq!(http.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), 200);
    let (status, page) = {
        let res = http.get(format!("{}/login", app.base)).send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    };
    assert_eq!(status, 200, "a portal page over https: {page}");

    // The same port spoken to in plain http answers nothing a client could take for HTTP.
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let res = plain.get(format!("http://127.0.0.1:{port}/healthz")).send().await;
    assert!(res.is_err(), "plain http on the https port: {res:?}");

    // Either version on its own, and the newer when both are offered.
    for (versions, expected) in
        [(TLS12, ProtocolVersion::TLSv1_2), (TLS13, ProtocolVersion::TLSv1_3), (BOTH, ProtocolVersion::TLSv1_3)]
    {
        let tls = handshake(port, &client(&[&ca], versions, &[b"http/1.1"], None)).await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let answer = get(tls, "/healthz").await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{expected:?}: {answer}");
    }

    // ALPN `h2`: the server speaks HTTP/2 at once, answering the preface with SETTINGS.
    let mut tls = handshake(port, &client(&[&ca], BOTH, &[b"h2", b"http/1.1"], None)).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut frame)).await.unwrap().unwrap();
    assert_eq!(frame[3], 0x4, "a SETTINGS frame: {frame:?}");

    // rustls cannot offer TLS 1.1, so the test writes such a ClientHello itself (no
    // supported_versions extension, legacy version 3.2): the server must not answer
    // with a ServerHello (a handshake record, 0x16), only an alert or a close.
    let mut hello = vec![0x03, 0x02];
    hello.extend([7u8; 32]); // random
    hello.push(0); // no session id
    hello.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two TLS 1.0-era suites
    hello.extend([0x01, 0x00]); // null compression
    let mut handshake_msg = vec![0x01, 0x00, 0x00, u8::try_from(hello.len()).unwrap()];
    handshake_msg.extend(hello);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, u8::try_from(handshake_msg.len()).unwrap()];
    record.extend(handshake_msg);
    let mut old = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    old.write_all(&record).await.unwrap();
    let mut answer = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), old.read(&mut answer)).await.unwrap() {
        Ok(0) | Err(_) => {}
        Ok(_) => assert_eq!(answer[0], 0x15, "TLS 1.1 is answered with an alert, never a ServerHello"),
    }
}

#[tokio::test]
async fn connections_that_stall_before_their_first_request_are_closed_at_the_header_deadline() {
    let ca = TestCa::new("Portcullis test CA");
    let files = TempDir::new();
    let pair = write_pair(&files, &server_leaf(&ca));
    let app = spawn_https(&pair, |a| {
        a.header_read_timeout_secs = 1;
        a.max_connections = 4;
    })
    .await;
    let port = port(&app.base);

    // Three of the four slots: one says nothing, one starts a ClientHello record and
    // stops, one finishes its handshake and then sends no request.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    let mut quiet = handshake(port, &client(&[&ca], BOTH, &[b"http/1.1"], None)).await.unwrap();

    // Meanwhile the accept loop goes on: a prompt client is served at once.
    let http = https_client(&ca);
    let started = Instant::now();
    assert_eq!(http.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), 200);
    assert!(started.elapsed() < Duration::from_millis(900), "{:?}", started.elapsed());

    for (what, waited) in [
        ("silent", closed_within(&mut silent, Duration::from_secs(5)).await),
        ("stalled handshake", closed_within(&mut stalled, Duration::from_secs(5)).await),
        ("no request after the handshake", closed_within(&mut quiet, Duration::from_secs(5)).await),
    ] {
        assert!(waited < Duration::from_secs(3), "{what}: closed after {waited:?}");
    }

    // Their slots are free again: four at once are served.
    let all = futures_util::future::join_all((0..4).map(|_| async {
        let tls = handshake(port, &client(&[&ca], BOTH, &[b"http/1.1"], None)).await.unwrap();
        get(tls, "/healthz").await.unwrap()
    }))
    .await;
    assert!(all.iter().all(|a| a.starts_with("HTTP/1.1 200")), "{all:?}");
}

/// Overwrites the pair in place with `leaf`, padded to a fixed size (PEM ignores blank
/// lines) and with the files' times put back: nothing a poll of their metadata notices.
fn overwrite_unnoticeably(pair: &Pair, leaf: &Leaf) {
    for (path, pem) in [(&pair.cert, &leaf.cert_pem), (&pair.key, &leaf.key_pem)] {
        let before = std::fs::metadata(path).unwrap();
        std::fs::write(path, padded(pem)).unwrap();
        std::fs::File::options().write(true).open(path).unwrap().set_modified(before.modified().unwrap()).unwrap();
        let after = std::fs::metadata(path).unwrap();
        assert_eq!((after.len(), after.modified().unwrap()), (before.len(), before.modified().unwrap()));
    }
}

fn padded(pem: &str) -> String {
    let mut text = pem.to_owned();
    assert!(text.len() <= 4096);
    text.extend(std::iter::repeat_n('\n', 4096 - text.len()));
    text
}

fn kill_hup(pid: u32) {
    let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_serves_the_replaced_certificate_to_new_connections_while_open_ones_keep_theirs() {
    let (first, second) = (TestCa::new("First CA"), TestCa::new("Second CA"));
    let (old, new) = (server_leaf(&first), server_leaf(&second));
    let files = TempDir::new();
    let pair = Pair {
        cert: write(&files, "server.pem", &padded(&old.cert_pem)),
        key: write(&files, "server.key", &padded(&old.key_pem)),
    };
    let data = TempDir::new();
    let mut serve = Server::command();
    serve
        .arg("--data-dir")
        .arg(&data.0)
        .env("PORTCULLIS_SECRET", SECRET)
        .args(["--header-read-timeout", "60"])
        .arg("--tls-cert")
        .arg(&pair.cert)
        .arg("--tls-key")
        .arg(&pair.key);
    let server = Server::spawn(serve).await;
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let port = port(&server.base);
    let cas = [&first, &second];
    assert_eq!(presented(port, &cas).await, old.der);
    let open = handshake(port, &client(&cas, BOTH, &[b"http/1.1"], None)).await.unwrap();

    overwrite_unnoticeably(&pair, &new);
    // Two polls and more: none of them saw a change, so what follows is the signal's.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(presented(port, &cas).await, old.der, "no poll could have noticed the change");
    kill_hup(server.pid());
    until_presented(port, &cas, &new.der, Duration::from_secs(5)).await;

    // The connection made before the reload goes on with the certificate it was shown.
    assert_eq!(open.get_ref().1.peer_certificates().unwrap()[0], old.der);
    let answer = get(open, "/healthz").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A signal with broken files changes nothing, and the process lives on: the next
    // signal with good files is heard again.
    std::fs::write(&pair.cert, "not a certificate\n").unwrap();
    kill_hup(server.pid());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(presented(port, &cas).await, new.der);
    let third = TestCa::new("Third CA");
    let newest = server_leaf(&third);
    std::fs::write(&pair.cert, &newest.cert_pem).unwrap();
    std::fs::write(&pair.key, &newest.key_pem).unwrap();
    kill_hup(server.pid());
    until_presented(port, &[&first, &second, &third], &newest.der, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn changed_files_are_picked_up_without_a_signal_and_broken_ones_leave_the_old_certificate_serving() {
    let (first, second) = (TestCa::new("First CA"), TestCa::new("Second CA"));
    let (old, new) = (server_leaf(&first), server_leaf(&second));
    let files = TempDir::new();
    let pair = write_pair(&files, &old);
    let app = spawn_https(&pair, |_| ()).await;
    let port = port(&app.base);
    let cas = [&first, &second];
    let healthy = || async {
        let res = https_client(&first).get(format!("{}/healthz", app.base)).send().await.unwrap();
        assert_eq!(res.status(), 200);
    };

    // Garbage in the certificate file, then a certificate whose key is not the one
    // beside it (a renewal half written): each is refused, the old one serves on.
    std::fs::write(&pair.cert, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(presented(port, &cas).await, old.der);
    healthy().await;
    std::fs::write(&pair.cert, &new.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(presented(port, &cas).await, old.der);
    healthy().await;

    // The key arrives: within a poll or two the new pair serves.
    std::fs::write(&pair.key, &new.key_pem).unwrap();
    let took = until_presented(port, &cas, &new.der, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let res = https_client(&second).get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// What a handshake with `tls`'s current configuration presents, over an in-memory pipe.
async fn presented_by(tls: &ListenerTls, cas: &[&TestCa]) -> CertificateDer<'static> {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let acceptor = tls.acceptor();
    let server = tokio::spawn(async move { acceptor.accept(server_end).await.map(drop) });
    let client = handshake_over(client_end, &client(cas, BOTH, &[], None)).await.unwrap();
    server.await.unwrap().unwrap();
    client.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn a_replacement_that_does_not_make_a_pair_is_refused_with_the_file_named() {
    let (first, second) = (TestCa::new("First CA"), TestCa::new("Second CA"));
    let (old, new) = (server_leaf(&first), server_leaf(&second));
    let files = TempDir::new();
    let pair = write_pair(&files, &old);
    let tls = ListenerTls::load(TlsFiles {
        cert: pair.cert.clone(),
        key: pair.key.clone(),
        client_ca: None,
        self_signed_clients: false,
    })
    .unwrap();
    let cas = [&first, &second];
    assert_eq!(presented_by(&tls, &cas).await, old.der);

    let refused = |named: &[&Path]| {
        let e = tls.reload().unwrap_err().to_string();
        for path in named {
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
        e
    };
    std::fs::write(&pair.cert, "not a certificate\n").unwrap();
    let e = refused(&[&pair.cert]);
    assert!(e.contains("certificate"), "{e}");
    std::fs::write(&pair.cert, &new.cert_pem).unwrap();
    let e = refused(&[&pair.cert, &pair.key]);
    assert!(e.contains("do not make a usable pair"), "{e}");
    std::fs::write(&pair.key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    refused(&[&pair.key]);
    std::fs::remove_file(&pair.key).unwrap();
    let e = refused(&[&pair.key]);
    assert!(e.contains("cannot read"), "{e}");
    assert_eq!(presented_by(&tls, &cas).await, old.der, "every refusal left the old certificate in place");

    std::fs::write(&pair.key, &new.key_pem).unwrap();
    tls.reload().unwrap();
    assert_eq!(presented_by(&tls, &cas).await, new.der);
}

/// Runs `serve` with `flags` on a fresh data dir until it ends (it must, within 30 s):
/// its exit status and standard error.
fn start_failure(flags: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String, TempDir) {
    let data = TempDir::new();
    let mut child = Server::command()
        .arg("--data-dir")
        .arg(&data.0)
        .env("PORTCULLIS_SECRET", SECRET)
        .args(flags)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the server started (or hung) with {flags:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned(), data)
}

#[tokio::test]
async fn a_missing_or_broken_certificate_or_key_stops_the_start_naming_the_file() {
    let (ca, other) = (TestCa::new("Portcullis test CA"), TestCa::new("Another CA"));
    let files = TempDir::new();
    let pair = write_pair(&files, &server_leaf(&ca));
    let stranger_key = write(&files, "stranger.key", &server_leaf(&other).key_pem);
    let garbage = write(&files, "garbage.pem", "not PEM at all\n");
    let missing = files.0.join("missing.pem");
    let flag = |s: &'static str| std::ffi::OsStr::new(s);

    let cases: [(&[&std::ffi::OsStr], &[&Path]); 5] = [
        (&[flag("--tls-cert"), missing.as_os_str(), flag("--tls-key"), pair.key.as_os_str()], &[&missing]),
        (&[flag("--tls-cert"), garbage.as_os_str(), flag("--tls-key"), pair.key.as_os_str()], &[&garbage]),
        (&[flag("--tls-cert"), pair.cert.as_os_str(), flag("--tls-key"), garbage.as_os_str()], &[&garbage]),
        (
            &[flag("--tls-cert"), pair.cert.as_os_str(), flag("--tls-key"), stranger_key.as_os_str()],
            &[&pair.cert, &stranger_key],
        ),
        (
            &[
                flag("--tls-cert"),
                pair.cert.as_os_str(),
                flag("--tls-key"),
                pair.key.as_os_str(),
                flag("--tls-client-ca"),
                garbage.as_os_str(),
            ],
            &[&garbage],
        ),
    ];
    for (flags, named) in cases {
        let (status, stderr, data) = start_failure(flags);
        assert!(!status.success(), "{flags:?}");
        for path in named {
            assert!(stderr.contains(&path.display().to_string()), "{flags:?}: {stderr}");
        }
        assert!(!data.0.join("portcullis.db").exists(), "nothing was opened before the refusal");
    }
}

#[tokio::test]
async fn with_a_client_ca_its_certificates_are_accepted_others_refused_and_none_allowed() {
    let (ca, clients, stranger) = (TestCa::new("Server CA"), TestCa::new("Client CA"), TestCa::new("Stranger CA"));
    let files = TempDir::new();
    let pair = write_pair(&files, &server_leaf(&ca));
    let client_ca = write(&files, "clients.pem", &clients.pem());
    let app = spawn_https(&pair, |a| a.tls_client_ca = Some(client_ca.clone())).await;
    let port = port(&app.base);
    let (member, outsider) = (clients.issue("agent-1", ClientAuth), stranger.issue("agent-1", ClientAuth));

    for versions in [TLS12, TLS13] {
        for (who, identity) in [("no certificate", None), ("the client CA's", Some(&member))] {
            let tls = handshake(port, &client(&[&ca], versions, &[b"http/1.1"], identity)).await.unwrap();
            let answer = get(tls, "/healthz").await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{who} over {versions:?}: {answer}");
        }
        // With TLS 1.3 the client's handshake is done before the server has judged its
        // certificate: the refusal arrives as an alert on the first read.
        let outcome = match handshake(port, &client(&[&ca], versions, &[b"http/1.1"], Some(&outsider))).await {
            Err(e) => Err(e),
            Ok(tls) => get(tls, "/healthz").await,
        };
        let e = outcome.expect_err("a certificate from another CA ends the handshake");
        assert!(e.to_string().contains("UnknownCA") || e.to_string().contains("alert"), "{e}");
    }
}

#[tokio::test]
async fn the_presented_client_certificate_reaches_handlers_in_the_requests_extensions() {
    use axum::extract::Request;
    let (ca, clients) = (TestCa::new("Server CA"), TestCa::new("Client CA"));
    let files = TempDir::new();
    let pair = write_pair(&files, &server_leaf(&ca));
    let client_ca = write(&files, "clients.pem", &clients.pem());
    let tls = ListenerTls::load(TlsFiles {
        cert: pair.cert.clone(),
        key: pair.key.clone(),
        client_ca: Some(client_ca),
        self_signed_clients: false,
    })
    .unwrap();
    let router = axum::Router::new().route(
        "/whoami",
        axum::routing::get(|req: Request| async move {
            use base64::Engine;
            match req.extensions().get::<ClientCertificate>() {
                Some(cert) => base64::engine::general_purpose::STANDARD.encode(cert.der()),
                None => "none".into(),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bounds = portcullis::listener::Bounds { header_read_timeout: Duration::from_secs(5), max_connections: 16 };
    let server = tokio::spawn(portcullis::listener::serve(
        listener,
        router,
        bounds,
        portcullis::listener::Origins::default(),
        Some(Arc::new(tls)),
        async move {
            let _ = stopped.await;
        },
    ));

    let member = clients.issue("agent-1", ClientAuth);
    let tls = handshake(port, &client(&[&ca], BOTH, &[b"http/1.1"], Some(&member))).await.unwrap();
    let answer = get(tls, "/whoami").await.unwrap();
    use base64::Engine;
    assert!(answer.ends_with(&base64::engine::general_purpose::STANDARD.encode(&member.der)), "{answer}");
    let tls = handshake(port, &client(&[&ca], BOTH, &[b"http/1.1"], None)).await.unwrap();
    let answer = get(tls, "/whoami").await.unwrap();
    assert!(answer.ends_with("\r\n\r\nnone"), "{answer}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
}

#[tokio::test]
async fn without_a_public_url_the_issuer_is_https_and_test_access_reaches_the_gateway_over_it() {
    let (first, second) = (TestCa::new("First CA"), TestCa::new("Second CA"));
    let files = TempDir::new();
    let pair = write_pair(&files, &server_leaf(&first));
    let mut app = spawn_https(&pair, |_| ()).await;
    for ca in [&first, &second] {
        app.trusted_cas.push(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
    }
    let meta: Value = https_client(&first)
        .get(format!("{}/.well-known/oauth-authorization-server", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], Value::String(app.base.clone()), "{meta}");
    assert!(meta["token_endpoint"].as_str().unwrap().starts_with("https://127.0.0.1:"), "{meta}");

    app.publish_sample_products().await;
    let a = agent(&app, &["accounts"]).await;
    let test_access = || async {
        let result: portcullis_domain::model::TestAccessResult = a
            .dev
            .call(
                "test_access",
                &[("profile_id", &a.reg.secret.profile_id), ("method", "GET"), ("path", "/gw/accounts/accounts")],
            )
            .await
            .ok();
        assert_eq!((result.status, result.outcome.as_str()), (200, "allowed"), "{result:?}");
        assert!(result.body.contains("acc-1001"));
    };
    // The portal calls its own gateway over https: the certificate file holds only the
    // leaf of a private CA, and the portal trusts it still.
    test_access().await;

    // After a reload to another CA's certificate, the portal trusts the new one.
    let new = server_leaf(&second);
    std::fs::write(&pair.cert, &new.cert_pem).unwrap();
    std::fs::write(&pair.key, &new.key_pem).unwrap();
    until_presented(port(&app.base), &[&first, &second], &new.der, Duration::from_secs(10)).await;
    test_access().await;
}

#[tokio::test]
async fn over_http2_a_browsers_form_and_an_mcp_call_pass_the_host_checks_as_over_http1() {
    // A browser speaks HTTP/2 to an https listener and names the host in `:authority`,
    // not in a `Host` header. The portal's same-origin rule and the MCP routes'
    // DNS-rebinding rule must see that host; before, they refused every such request.
    let ca = TestCa::new("Portcullis test CA");
    let files = TempDir::new();
    let app = spawn_https(&write_pair(&files, &server_leaf(&ca)), |_| ()).await;
    let port = port(&app.base);
    let tls = handshake(port, &client(&[&ca], BOTH, &[b"h2"], None)).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut ask = |path: &str, origin: &str, body: &'static str| {
        let req = axum::http::Request::post(format!("https://127.0.0.1:{port}{path}"))
            .header("origin", origin)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes())))
            .unwrap();
        assert!(req.headers().get("host").is_none(), "HTTP/2: the host is in :authority only");
        let answer = send.send_request(req);
        async move {
            let res = answer.await.unwrap();
            assert_eq!(res.version(), axum::http::Version::HTTP_2);
            let status = res.status();
            let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let ours = format!("https://127.0.0.1:{port}");
    // A state change from our own page passes the same-origin rule (and then wants a
    // credential); from another site it is refused as before.
    let (status, body) = ask("/api/v1/clients", &ours, "{}").await;
    assert_eq!(status, 401, "same origin over HTTP/2: {body}");
    let (status, body) = ask("/api/v1/clients", "https://evil.example", "{}").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Cross-origin request refused"), "{body}");
    // The MCP route: the host is ours, so the call gets as far as authentication.
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    let (status, body) = ask("/mcp", &ours, initialize).await;
    assert_eq!(status, 401, "the MCP host check over HTTP/2: {body}");
    let (status, _) = ask("/mcp", "https://evil.example", initialize).await;
    assert_eq!(status, 403, "a foreign origin is still refused");
}
