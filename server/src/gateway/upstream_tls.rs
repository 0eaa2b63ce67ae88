//! TLS towards upstreams: the system's roots, plus a deployment's own CA bundle for
//! private PKI, and optionally the client certificate upstreams that require mutual TLS
//! ask for. Hostnames are always verified; nothing here can turn that off.

use std::path::{Path, PathBuf};

/// What `serve` was told about upstream TLS, read and checked once at start.
#[derive(Clone, Default)]
pub struct UpstreamTls {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable PEM certificate: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("the upstream client certificate {cert} and key {key} do not make an identity: {reason}")]
    Identity { cert: PathBuf, key: PathBuf, reason: String },
}

impl UpstreamTls {
    pub fn load(ca_file: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<Self, UpstreamTlsError> {
        let read =
            |path: &Path| std::fs::read(path).map_err(|source| UpstreamTlsError::Read { path: path.into(), source });
        let mut tls = Self::default();
        if let Some(path) = ca_file {
            let roots = reqwest::Certificate::from_pem_bundle(&read(path)?)
                .map_err(|e| UpstreamTlsError::Certificates { path: path.into(), reason: e.to_string() })?;
            if roots.is_empty() {
                return Err(UpstreamTlsError::Certificates {
                    path: path.into(),
                    reason: "no certificate found".into(),
                });
            }
            tls.roots = roots;
        }
        if let Some((cert, key)) = client {
            // rustls takes the chain and the key as one PEM document.
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| UpstreamTlsError::Identity {
                cert: cert.into(),
                key: key.into(),
                reason: e.to_string(),
            })?;
            tls.identity = Some(identity);
        }
        Ok(tls)
    }

    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder = builder.use_rustls_tls().min_tls_version(reqwest::tls::Version::TLS_1_2);
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        builder
    }
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
