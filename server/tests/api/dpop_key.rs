//! A DPoP client's key for tests and `bench/dpop.sh`'s load generator (which includes
//! this file): proofs are signed byte by byte, so a test can forge any part of one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::Signer as _;
use serde_json::{json, Value};
use sha2::Digest;

/// A client's DPoP key, signing proofs byte by byte so a test can forge any part.
pub enum DpopKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// What a proof says, each part replaceable.
#[derive(Clone)]
pub struct ProofParts {
    pub header: Value,
    pub claims: Value,
}

impl DpopKey {
    pub fn p256() -> Self {
        DpopKey::P256(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng))
    }
    pub fn ed25519() -> Self {
        DpopKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }
    /// The JWS algorithm its signatures are made with.
    pub fn alg(&self) -> &'static str {
        match self {
            DpopKey::P256(_) => "ES256",
            DpopKey::Ed25519(_) => "EdDSA",
        }
    }
    pub fn jwk(&self) -> Value {
        match self {
            DpopKey::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                json!({ "kty": "EC", "crv": "P-256",
                        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()) })
            }
            DpopKey::Ed25519(k) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes()) })
            }
        }
    }
    /// RFC 7638, written out: the required members in order, no spaces.
    pub fn thumbprint(&self) -> String {
        let j = self.jwk();
        let canonical = match self {
            DpopKey::P256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                j["x"].as_str().unwrap(),
                j["y"].as_str().unwrap()
            ),
            DpopKey::Ed25519(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, j["x"].as_str().unwrap()),
        };
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
    }
    /// A proof for `method` and `url`, for `token` when given, with `nonce` when given.
    pub fn parts(&self, method: &str, url: &str, token: Option<&str>, nonce: Option<&str>) -> ProofParts {
        let alg = self.alg();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let mut claims = json!({ "jti": uuid::Uuid::new_v4().to_string(), "htm": method, "htu": url, "iat": now });
        if let Some(t) = token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(t.as_bytes())));
        }
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        ProofParts { header: json!({ "typ": "dpop+jwt", "alg": alg, "jwk": self.jwk() }), claims }
    }
    pub fn sign(&self, parts: &ProofParts) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(parts.header.to_string()),
            URL_SAFE_NO_PAD.encode(parts.claims.to_string())
        );
        let signature = match self {
            DpopKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
            DpopKey::Ed25519(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
    pub fn proof(&self, method: &str, url: &str, token: Option<&str>, nonce: Option<&str>) -> String {
        self.sign(&self.parts(method, url, token, nonce))
    }
}
