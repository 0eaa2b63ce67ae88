//! A profile's credentials (client secrets, API keys, public keys, federated identities:
//! links from an identity at a trusted issuer, and certificate subjects: the name of a
//! CA-issued client certificate) and a secret just issued.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::Environment;

text_enum!(CredentialKind {
    ClientSecret => "client_secret",
    ApiKey => "api_key",
    PublicKey => "public_key",
    Federated => "federated",
    CertificateSubject => "certificate_subject",
});

impl CredentialKind {
    /// As a table cell or a heading says it.
    pub fn label(self) -> &'static str {
        match self {
            CredentialKind::ClientSecret => "Client secret",
            CredentialKind::ApiKey => "API key",
            CredentialKind::PublicKey => "Public key",
            CredentialKind::Federated => "Federated identity",
            CredentialKind::CertificateSubject => "Certificate subject",
        }
    }
    /// As a sentence says it.
    pub fn noun(self) -> &'static str {
        match self {
            CredentialKind::ClientSecret => "client secret",
            CredentialKind::ApiKey => "API key",
            CredentialKind::PublicKey => "public key",
            CredentialKind::Federated => "federated identity",
            CredentialKind::CertificateSubject => "certificate subject",
        }
    }
    /// Whether it authenticates a client at the token endpoint (a secret, a key that
    /// signs assertions, a certificate's subject), as against an API key, which is sent
    /// with each call.
    pub fn authenticates_client(self) -> bool {
        matches!(self, CredentialKind::ClientSecret | CredentialKind::PublicKey | CredentialKind::CertificateSubject)
    }
}

/// What a table shows of a credential's prefix: a secret's prefix whole, a public key's
/// 43-character thumbprint cut to its first 16 (a title attribute holds it whole).
pub fn shown_prefix(prefix: &str) -> &str {
    prefix.get(..16).unwrap_or(prefix)
}

/// Where a credential stands at a given instant; computed, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CredentialState {
    Active,
    /// Works, but expires within the warning window (14 days).
    Expiring,
    /// Replaced by a rotation; works until `expires_at`, the end of the grace period.
    Grace,
    Expired,
    Revoked,
}

impl CredentialState {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Active => "active",
            CredentialState::Expiring => "expiring",
            CredentialState::Grace => "grace",
            CredentialState::Expired => "expired",
            CredentialState::Revoked => "revoked",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            CredentialState::Active => "Active",
            CredentialState::Expiring => "Expires soon",
            CredentialState::Grace => "Grace period",
            CredentialState::Expired => "Expired",
            CredentialState::Revoked => "Revoked",
        }
    }
    pub fn is_usable(self) -> bool {
        matches!(self, CredentialState::Active | CredentialState::Expiring | CredentialState::Grace)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct CredentialView {
    pub id: String,
    pub kind: CredentialKind,
    /// The first characters of the secret, enough to recognise it, useless to use it;
    /// for a public key, its whole RFC 7638 thumbprint.
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub rotated_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub state: CredentialState,
}

/// A secret the server just generated. It exists in memory for one response and is
/// never stored; only its keyed hash is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct IssuedSecret {
    pub credential_id: String,
    pub kind: CredentialKind,
    pub client_id: String,
    pub profile_id: String,
    pub environment: Environment,
    pub expires_at: i64,
    pub secret: String,
}

impl fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("credential_id", &self.credential_id)
            .field("kind", &self.kind)
            .field("profile_id", &self.profile_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A public key just registered for a client's profile (private_key_jwt): what the
/// developer checks against the key pair they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct RegisteredKey {
    pub credential_id: String,
    pub client_id: String,
    pub profile_id: String,
    pub environment: Environment,
    /// The key's JWK SHA-256 thumbprint (RFC 7638), base64url.
    pub thumbprint: String,
    /// The key type and curve or size, e.g. `EC P-256`, `OKP Ed25519`, `RSA 2048`.
    pub key_type: String,
    /// The `alg` values an assertion signed with it may name.
    pub algorithms: Vec<String>,
    pub expires_at: i64,
    /// Client secrets and keys of the profile cut to the grace period by this
    /// registration, when it replaced them.
    pub replaced: u64,
}

/// A certificate subject just registered for a client's profile (`tls_client_auth`):
/// a certificate that a trusted authority issued with this subject now authenticates
/// the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "store", derive(utoipa::ToSchema))]
pub struct RegisteredSubject {
    pub credential_id: String,
    pub client_id: String,
    pub profile_id: String,
    pub environment: Environment,
    /// The subject distinguished name, as RFC 4514 writes it (most specific first).
    pub subject: String,
    pub expires_at: i64,
}
