//! TLS towards upstreams: the system's roots, plus a deployment's own CA bundle for
//! private PKI, and optionally the client certificate upstreams that require mutual TLS
//! ask for. Hostnames are always verified; nothing here can turn that off.
//!
//! Different upstreams may sit behind different private PKIs and ask for different
//! client certificates, so besides the server-wide settings (`--upstream-ca-file`,
//! `--upstream-client-cert`), which products that name nothing use, there are named
//! *upstream TLS profiles*: one directory each under `--upstream-tls-dir`,
//!
//! ```text
//! <dir>/<name>/ca.pem        optional: roots trusted beside the system's
//! <dir>/<name>/client.pem    optional, with client.key: the certificate (chain) presented
//! <dir>/<name>/client.key
//! ```
//!
//! A product names one in its gateway policy. Everything is read and checked once at
//! start, and anything unexpected stops the start with the file named: a profile that
//! loads half would only fail later, request by request. Entries whose name starts with
//! a dot are skipped (a Kubernetes volume's `..data` links, editors' files).

use portcullis_domain::upstream_tls::{UpstreamTlsName, UpstreamTlsNames};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files of a profile directory.
const CA: &str = "ca.pem";
const CLIENT_CERT: &str = "client.pem";
const CLIENT_KEY: &str = "client.key";

/// One set of upstream TLS settings, read and checked once at start.
#[derive(Clone, Default)]
pub struct UpstreamTls {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
}

/// Every upstream TLS setting `serve` was given: the server-wide default and the named
/// profiles.
#[derive(Clone, Default)]
pub struct UpstreamTlsProfiles {
    pub default: UpstreamTls,
    pub named: BTreeMap<UpstreamTlsName, UpstreamTls>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable PEM certificate: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("{path} holds no usable PEM private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the upstream client certificate {cert} and key {key} do not make an identity: {reason}")]
    Identity { cert: PathBuf, key: PathBuf, reason: String },
    #[error(
        "{path}: not a name for an upstream TLS profile (1 to 63 lower-case letters, digits or dashes, \
         starting with a letter or digit)"
    )]
    ProfileName { path: PathBuf },
    #[error(
        "{path} is not a directory: each upstream TLS profile is a directory of {CA}, {CLIENT_CERT} and {CLIENT_KEY}"
    )]
    NotADirectory { path: PathBuf },
    #[error("{path}: an upstream TLS profile holds only {CA}, {CLIENT_CERT} and {CLIENT_KEY}")]
    UnexpectedFile { path: PathBuf },
    #[error("{path} is an empty upstream TLS profile: it holds neither {CA} nor {CLIENT_CERT} with {CLIENT_KEY}")]
    EmptyProfile { path: PathBuf },
    #[error("{present} has no {missing} beside it: a client certificate and its key go together")]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("upstream TLS profile {profile}: {reason}")]
    Client { profile: String, reason: String },
}

fn read(path: &Path) -> Result<Vec<u8>, UpstreamTlsError> {
    std::fs::read(path).map_err(|source| UpstreamTlsError::Read { path: path.into(), source })
}

/// The certificates of a PEM file, at least one, each one that parses.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let fail = |reason: String| UpstreamTlsError::Certificates { path: path.into(), reason };
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate found".into()));
    }
    Ok(certs)
}

impl UpstreamTls {
    pub fn load(ca_file: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<Self, UpstreamTlsError> {
        let mut tls = Self::default();
        if let Some(path) = ca_file {
            tls.roots = roots(path)?;
        }
        if let Some((cert, key)) = client {
            tls.identity = Some(identity(cert, key)?);
        }
        Ok(tls)
    }

    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let mut builder = self.trusting(builder);
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        builder
    }

    /// The roots only, for a client that presents no certificate (fetching a trusted
    /// issuer's keys: the upstreams' certificate is not for identity providers).
    pub fn trusting(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder = builder.use_rustls_tls().min_tls_version(reqwest::tls::Version::TLS_1_2);
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        builder
    }
}

/// Trust anchors, each checked here so that a bad one is blamed on its file (reqwest
/// would refuse it only when building the client, without saying where it came from).
fn roots(path: &Path) -> Result<Vec<reqwest::Certificate>, UpstreamTlsError> {
    let mut out = Vec::new();
    for der in certificates(path, &read(path)?)? {
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| UpstreamTlsError::Certificates { path: path.into(), reason: e.to_string() })?;
        let root = reqwest::Certificate::from_der(&der)
            .map_err(|e| UpstreamTlsError::Certificates { path: path.into(), reason: e.to_string() })?;
        out.push(root);
    }
    Ok(out)
}

/// A client certificate chain and its key, each file checked on its own (so an error
/// names the one at fault) and then together: the key must be the certificate's.
fn identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, UpstreamTlsError> {
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = certificates(cert, &cert_pem)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| UpstreamTlsError::Key { path: key.into(), reason: e.to_string() })?;
    let pair = |reason: String| UpstreamTlsError::Identity { cert: cert.into(), key: key.into(), reason };
    rustls::sign::CertifiedKey::from_der(chain, key_der, &rustls::crypto::ring::default_provider())
        .map_err(|e| pair(e.to_string()))?;
    // rustls (through reqwest) takes the chain and the key as one PEM document.
    let mut pem = cert_pem;
    pem.push(b'\n');
    pem.extend(key_pem);
    reqwest::Identity::from_pem(&pem).map_err(|e| pair(e.to_string()))
}

/// The entries of a directory that are not hidden, sorted (so that which error comes
/// first does not depend on the file system).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, UpstreamTlsError> {
    let failed = |source| UpstreamTlsError::Read { path: dir.into(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl UpstreamTlsProfiles {
    /// The server-wide settings, and with `dir` the profiles in it.
    pub fn load(default: UpstreamTls, dir: Option<&Path>) -> Result<Self, UpstreamTlsError> {
        let named = match dir {
            Some(dir) => load_dir(dir)?,
            None => BTreeMap::new(),
        };
        Ok(Self { default, named })
    }

    pub fn names(&self) -> UpstreamTlsNames {
        UpstreamTlsNames::new(self.named.keys().cloned())
    }
}

fn load_dir(dir: &Path) -> Result<BTreeMap<UpstreamTlsName, UpstreamTls>, UpstreamTlsError> {
    let mut profiles = BTreeMap::new();
    for (name, path) in entries(dir)? {
        let name = UpstreamTlsName::parse(&name)
            .ok()
            .filter(|n| n.as_str() == name)
            .ok_or_else(|| UpstreamTlsError::ProfileName { path: path.clone() })?;
        // `metadata` follows links: a profile may be a link to a directory.
        let is_dir =
            std::fs::metadata(&path).map_err(|source| UpstreamTlsError::Read { path: path.clone(), source })?;
        if !is_dir.is_dir() {
            return Err(UpstreamTlsError::NotADirectory { path });
        }
        profiles.insert(name, load_profile(&path)?);
    }
    Ok(profiles)
}

fn load_profile(dir: &Path) -> Result<UpstreamTls, UpstreamTlsError> {
    let (mut ca, mut cert, mut key) = (None, None, None);
    for (name, path) in entries(dir)? {
        let slot = match name.as_str() {
            CA => &mut ca,
            CLIENT_CERT => &mut cert,
            CLIENT_KEY => &mut key,
            _ => return Err(UpstreamTlsError::UnexpectedFile { path }),
        };
        *slot = Some(path);
    }
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (Some(present), None) => return Err(UpstreamTlsError::HalfPair { present, missing: dir.join(CLIENT_KEY) }),
        (None, Some(present)) => return Err(UpstreamTlsError::HalfPair { present, missing: dir.join(CLIENT_CERT) }),
        (None, None) if ca.is_none() => return Err(UpstreamTlsError::EmptyProfile { path: dir.into() }),
        (None, None) => None,
    };
    UpstreamTls::load(ca.as_deref(), client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())))
}

/// Whether a failed upstream call failed in its TLS handshake, and rustls's reason
/// (e.g. "invalid peer certificate: UnknownIssuer"). The error sits inside `io::Error`s,
/// whose `source()` skips what they wrap, hence `get_ref` on each of them.
pub fn handshake_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}
