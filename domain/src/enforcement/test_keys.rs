//! Signing keys for the enforcement unit tests: JWTs signed byte by byte, so that a test
//! can make each forgery exactly one defect away from one that passes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::Signer as _;
use serde_json::{json, Value};

pub(crate) enum Key {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl Key {
    pub(crate) fn p256() -> Self {
        Key::P256(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }
    pub(crate) fn ed25519() -> Self {
        Key::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }
    pub(crate) fn alg(&self) -> &'static str {
        match self {
            Key::P256(_) => "ES256",
            Key::Ed25519(_) => "EdDSA",
        }
    }
    pub(crate) fn jwk(&self) -> Value {
        match self {
            Key::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                    "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
                })
            }
            Key::Ed25519(k) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(k.verifying_key().as_bytes()),
            }),
        }
    }
    /// A compact JWS of `header` and `claims`, signed as they are.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = match self {
            Key::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
            Key::Ed25519(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}
