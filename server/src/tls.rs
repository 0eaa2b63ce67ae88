//! https on the main listener (`--tls-cert`, `--tls-key`, `--tls-client-ca` or
//! `--tls-self-signed-clients`): reading the PEM files into a rustls configuration, and
//! replacing it without a restart.
//!
//! The configuration sits behind an `ArcSwap`: each handshake takes the current one, so
//! a reload serves new connections with the new certificate while open ones keep theirs.
//! A reload happens on SIGHUP and when one of the files changes (polled: no watcher
//! crate, and a poll also sees a Kubernetes secret's symlink swap). A replacement that
//! does not make a working configuration is refused and logged, naming the file; the
//! previous certificate keeps serving, so a half-written renewal never takes the
//! listener down.

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the files are looked at for a change.
const POLL: Duration = Duration::from_secs(2);

/// Versions older than 1.2 are broken; rustls cannot speak them anyway, but the list is
/// written out so that a future default cannot widen it unnoticed.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// What `serve` was told to read.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    /// Ask every client for a certificate and accept any whose handshake proves its key
    /// (RFC 8705 `self_signed_tls_client_auth`); not with `client_ca`.
    pub self_signed_clients: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable PEM certificate: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("{path} holds no usable PEM private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the certificate {cert} and the key {key} do not make a usable pair: {reason}")]
    Pair { cert: PathBuf, key: PathBuf, reason: String },
    #[error("{path}: no usable client certificate authority: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("TLS settings refused: {0}")]
    Settings(rustls::Error),
}

/// The certificate a client proved it holds: in the TLS handshake (verified against
/// `--tls-client-ca`, or any with `--tls-self-signed-clients`), or in the `Client-Cert`
/// header of a proxy that ended TLS (`--trust-client-cert-header`). In the extensions
/// of every request it came with: the material RFC 8705 binds tokens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(Arc<Presented>);

#[derive(Debug, PartialEq, Eq)]
struct Presented {
    der: CertificateDer<'static>,
    /// `x5t#S256`, computed once per connection.
    thumbprint: String,
    /// Whether the handshake verified its chain to `--tls-client-ca`: only then does
    /// its subject name anyone (`tls_client_auth`).
    issued_by_trusted_ca: bool,
}

impl ClientCertificate {
    pub fn new(der: CertificateDer<'static>, issued_by_trusted_ca: bool) -> Self {
        let thumbprint = portcullis_domain::enforcement::certificate_thumbprint(der.as_ref());
        Self(Arc::new(Presented { der, thumbprint, issued_by_trusted_ca }))
    }

    /// Whether an authority this server trusts issued it (the handshake verified the
    /// chain to `--tls-client-ca`); a self-signed certificate, or one a proxy forwarded,
    /// proves its key and nothing about its names.
    pub fn issued_by_trusted_ca(&self) -> bool {
        self.0.issued_by_trusted_ca
    }

    pub fn der(&self) -> &[u8] {
        self.0.der.as_ref()
    }

    /// RFC 8705 §3.1 `x5t#S256`: what a token bound to this certificate carries.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    /// The certificate in an RFC 9440 `Client-Cert` field: a structured-field byte
    /// sequence, `:` base64 DER `:`. Anything else is no certificate. Its chain is not
    /// ours to check, so its subject names nobody.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        let inner = value.strip_prefix(b":")?.strip_suffix(b":")?;
        let der = STANDARD.decode(inner).ok().filter(|d| !d.is_empty() && d.len() <= MAX_HEADER_CERT_BYTES)?;
        Some(Self::new(CertificateDer::from(der), false))
    }
}

/// A forwarded certificate larger than this is ignored (a certificate is a few KB).
const MAX_HEADER_CERT_BYTES: usize = 16 * 1024;

/// One loaded configuration and the certificate it presents.
struct Loaded {
    config: Arc<ServerConfig>,
    leaf: CertificateDer<'static>,
}

/// The listener's TLS, current and replaceable.
pub struct ListenerTls {
    files: TlsFiles,
    current: ArcSwap<Loaded>,
    /// The files as they were just before the first load: a change made after that is
    /// seen by the first poll.
    loaded_from: Vec<Option<Stamp>>,
}

impl ListenerTls {
    /// Reads and checks the files; at start, an error here stops the server.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let loaded_from = files.stamps();
        let loaded = build(&files)?;
        Ok(Self { files, current: ArcSwap::from_pointee(loaded), loaded_from })
    }

    /// What the next handshake uses.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load().config.clone())
    }

    /// Reads the files again; on success new connections get the new configuration, on
    /// failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = build(&self.files)?;
        self.current.store(Arc::new(loaded));
        Ok(())
    }

    /// What reloads this configuration. SIGHUP is heard from here on (its default
    /// would end the process), so this is made before the server says it listens.
    pub fn reloader(self: &Arc<Self>) -> Reloader {
        Reloader { tls: self.clone(), hangups: Hangups::new() }
    }

    /// A client configuration for this server calling itself over loopback (the
    /// portal's Test access). It trusts exactly the certificate the listener presents
    /// at that moment, and checks the handshake's signature against it.
    ///
    /// Why not trust the chain as roots and resolve the certificate's name to loopback:
    /// a file holding only the leaf of a private CA would fail (a leaf is no trust
    /// anchor), the name would have to be read out of the certificate, and a reload to
    /// another CA would need a new client. Pinning the live certificate has none of
    /// these, and proves as much: only the holder of its key completes the handshake.
    pub fn loopback_client(self: &Arc<Self>) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = ItsOwnCertificate { tls: self.clone(), provider: provider.clone() };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(VERSIONS)
            .map_err(TlsError::Settings)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Reloads on SIGHUP and whenever a file's metadata changes.
pub struct Reloader {
    tls: Arc<ListenerTls>,
    hangups: Hangups,
}

impl Reloader {
    /// Runs until the task is aborted. Outcomes are logged: nobody else is there to hear
    /// them.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let Self { tls, mut hangups } = self;
        tokio::spawn(async move {
            let mut seen = tls.loaded_from.clone();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let asked = tokio::select! {
                    _ = tick.tick() => false,
                    () = hangups.next() => true,
                };
                let now = tls.files.stamps();
                if !asked && now == seen {
                    continue;
                }
                // Remembered even when the reload fails: the same broken files are not
                // retried (and logged) every poll, but the next write to either is.
                seen = now;
                let trigger = if asked { "SIGHUP" } else { "file changed" };
                match tls.reload() {
                    Ok(()) => tracing::info!(cert = %tls.files.cert.display(), trigger, "TLS certificate reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        trigger,
                        "TLS certificate not reloaded; the previous one is still served"
                    ),
                }
            }
        })
    }
}

/// The certificate of a finished handshake's client, if it presented one.
pub fn client_certificate(conn: &rustls::ServerConnection, tls: &ListenerTls) -> Option<ClientCertificate> {
    // With `--tls-client-ca` the handshake accepted only a chain to it; the setting is
    // fixed for the process (a reload re-reads the files, not the flags).
    let verified = tls.files.client_ca.is_some();
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| ClientCertificate::new(leaf.clone().into_owned(), verified))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Certificates { path: path.into(), reason };
    let chain =
        CertificateDer::pem_slice_iter(&read(path)?).collect::<Result<Vec<_>, _>>().map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("no certificate found".into()));
    }
    Ok(chain)
}

fn build(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let chain = certificates(&files.cert)?;
    let leaf = chain
        .first()
        .cloned()
        .ok_or_else(|| TlsError::Certificates { path: files.cert.clone(), reason: "no certificate found".into() })?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| TlsError::Key { path: files.key.clone(), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Settings)?;
    let builder = match &files.client_ca {
        Some(path) => {
            let fail = |reason: String| TlsError::ClientCa { path: path.clone(), reason };
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(path)? {
                roots.add(ca).map_err(|e| fail(e.to_string()))?;
            }
            // Asked for, not required: most callers authenticate with tokens or keys,
            // and a certificate-bound token is checked where the token is.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| fail(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None if files.self_signed_clients => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCertificate { provider: provider.clone() }))
        }
        None => builder.with_no_client_auth(),
    };
    // Also checks that the key is the certificate's.
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason: e.to_string(),
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded { config: Arc::new(config), leaf })
}

/// What tells a changed file from an unchanged one without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    /// A file replaced by a rename can keep its length and even its time.
    #[cfg(unix)]
    inode: u64,
}

impl TlsFiles {
    fn stamps(&self) -> Vec<Option<Stamp>> {
        std::iter::once(&self.cert).chain([&self.key]).chain(self.client_ca.as_ref()).map(|p| stamp(p)).collect()
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// SIGHUP, where there is such a thing.
struct Hangups(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangups {
    fn new() -> Self {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
            if let Err(e) = &signal {
                tracing::warn!(error = %e, "SIGHUP cannot be heard; TLS files are still polled");
            }
            Self(signal.ok())
        }
        #[cfg(not(unix))]
        Self()
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.0 {
            if signal.recv().await.is_some() {
                return;
            }
            self.0 = None;
        }
        std::future::pending::<()>().await
    }
}

/// Trusts the one certificate the listener serves right now (see `loopback_client`).
#[derive(Clone)]
struct ItsOwnCertificate {
    tls: Arc<ListenerTls>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for ItsOwnCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItsOwnCertificate").finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ItsOwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.tls.current.load().leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Signatures(&self.provider).tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Signatures(&self.provider).tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Signatures(&self.provider).schemes()
    }
}

/// Asks for a client certificate and accepts any, self-signed included, whose handshake
/// signature proves the client holds its key. The certificate vouches for nothing else:
/// it authenticates a client only if its key is one the client registered, and it binds
/// the tokens obtained over it.
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        // Asked for, not required, as with a client CA.
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Signatures(&self.provider).tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Signatures(&self.provider).tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Signatures(&self.provider).schemes()
    }
}

/// The handshake's signature checks, with the provider's algorithms: the one part both
/// of our verifiers leave to rustls as it is.
struct Signatures<'p>(&'p CryptoProvider);

impl Signatures<'_> {
    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
