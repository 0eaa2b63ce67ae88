//! TLS client certificates (RFC 8705): what binds a token to one, and which registered
//! key a certificate carries.
//!
//! The handshake proves the caller holds the certificate's private key; nothing here
//! trusts the certificate for anything else. A token is bound to the certificate's
//! SHA-256 hash (`cnf.x5t#S256`, §3.1). A client authenticates with a certificate
//! (`self_signed_tls_client_auth`, §2.2) when the certificate's public key is one its
//! developer registered: the key is the credential, as for `private_key_jwt`, and the
//! certificate around it may be self-signed, reissued or CA-signed alike.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePublicKey;
use serde_json::json;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, Encode};

use super::client_keys::{parse_public_key, KeyError, PublicKey};

/// `id-ecPublicKey`, `id-Ed25519`, `rsaEncryption`.
const EC: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const RSA: &str = "1.2.840.113549.1.1.1";

/// RFC 8705 §3.1 `x5t#S256`: the base64url SHA-256 of the certificate's DER.
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// The certificate's public key, read as a registered key would be (with the same
/// refusals: other curves, short RSA keys), so its RFC 7638 thumbprint can be compared
/// with the client's registered keys.
pub fn certificate_key(der: &[u8]) -> Result<PublicKey, KeyError> {
    let unreadable = || KeyError("The client certificate is not a readable X.509 certificate.".into());
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| unreadable())?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let spki_der = spki.to_der().map_err(|_| unreadable())?;
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let jwk = match spki.algorithm.oid.to_string().as_str() {
        EC => {
            // Refuses any curve but P-256, as registration does.
            let key = p256::PublicKey::from_public_key_der(&spki_der)
                .map_err(|_| KeyError("The certificate's EC key is not on P-256.".into()))?;
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else { return Err(unreadable()) };
            json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) })
        }
        ED25519 => {
            let key = ed25519_dalek::VerifyingKey::from_public_key_der(&spki_der).map_err(|_| unreadable())?;
            json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(key.as_bytes()) })
        }
        RSA => {
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPublicKey::from_public_key_der(&spki_der).map_err(|_| unreadable())?;
            json!({ "kty": "RSA", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()) })
        }
        _ => return Err(KeyError("The certificate's key is not EC P-256, Ed25519 or RSA.".into())),
    };
    parse_public_key(&jwk.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["agent.example".into()]).unwrap().self_signed(&key).unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn a_certificates_key_has_the_thumbprint_of_the_same_key_registered_as_a_jwk() {
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let (der, key) = self_signed(alg);
            let from_cert = certificate_key(&der).unwrap();
            // The same key, as a developer registers it: from its SPKI, by another path.
            let spki = key.public_key_der();
            let registered = match alg == &rcgen::PKCS_ED25519 {
                true => {
                    let k = ed25519_dalek::VerifyingKey::from_public_key_der(&spki).unwrap();
                    json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(k.as_bytes()) })
                }
                false => {
                    let raw = key.public_key_raw();
                    json!({ "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
                            "y": URL_SAFE_NO_PAD.encode(&raw[33..65]) })
                }
            };
            let registered = parse_public_key(&registered.to_string()).unwrap();
            assert_eq!(from_cert.thumbprint, registered.thumbprint);
        }
    }

    #[test]
    fn an_rsa_certificates_key_has_the_thumbprint_another_library_computes() {
        // A self-signed certificate and its public key's thumbprint, both made by
        // Python's `cryptography` and joserfc.
        let der = include_bytes!("../../testdata/rsa-2048-self-signed.der");
        let key = certificate_key(der).unwrap();
        assert_eq!(key.key_type, "RSA 2048");
        assert_eq!(key.thumbprint, "5FCL0BwzTle0Mcyjxo9_Em6PRRIi7JVrM2OhEEZhbL8");
    }

    #[test]
    fn other_curves_and_garbage_are_refused_and_the_thumbprint_is_the_ders_hash() {
        let (der, _) = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert!(certificate_key(&der).unwrap_err().0.contains("P-256"));
        assert!(certificate_key(b"not a certificate").is_err());
        assert!(certificate_key(&der[..der.len() / 2]).is_err(), "a truncated certificate");
        // RFC 8705 §3.1: base64url of SHA-256 over the DER, no padding.
        assert_eq!(certificate_thumbprint(b"abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
