//! TLS client certificates (RFC 8705): what binds a token to one, and which registered
//! key a certificate carries.
//!
//! The handshake proves the caller holds the certificate's private key; nothing here
//! trusts the certificate for anything else. A token is bound to the certificate's
//! SHA-256 hash (`cnf.x5t#S256`, §3.1). A client authenticates with a certificate
//! (`self_signed_tls_client_auth`, §2.2) when the certificate's public key is one its
//! developer registered: the key is the credential, as for `private_key_jwt`, and the
//! certificate around it may be self-signed, reissued or CA-signed alike.
//!
//! A client also authenticates with a certificate that an authority the listener trusts
//! issued (`tls_client_auth`, §2.1), named by its subject distinguished name. There the
//! authority vouches for the name, so a name is compared only for a certificate whose
//! chain the handshake verified against `--tls-client-ca`: a self-signed certificate
//! can claim any name.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use core::str::FromStr;
use ed25519_dalek::pkcs8::DecodePublicKey;
use serde_json::json;
use sha2::{Digest, Sha256};
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::name::RdnSequence;

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

/// A registered subject name longer than this is refused (a real one is a few hundred
/// characters at most).
pub const MAX_SUBJECT_DN: usize = 1024;

/// A pasted certificate larger than this is refused unread.
const MAX_PEM: usize = 16 * 1024;

/// A certificate subject distinguished name, as shown and as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectName {
    /// RFC 4514, most specific first: `CN=billing-agent,O=Acme,C=GB`.
    pub display: String,
    /// What two names are compared by: the SHA-256 of the name's structure, RDN by RDN,
    /// each attribute its OID and its value. A directory string's value is compared
    /// with ASCII letters case folded and ASCII spaces trimmed and their runs made one,
    /// whether the authority encoded it as a printable or a UTF-8 string, so that
    /// `cn=Billing  Agent,o=ACME` matches a certificate's `CN=billing agent,O=Acme`.
    /// Nothing else is folded (no Unicode case or normalisation: a name that differs
    /// in any other character is another name), and any other value is compared as its
    /// DER. Hashing the structure, not a string written from it, means no value can
    /// spell a separator: `CN=a\,OU=b` is never `CN=a,OU=b`.
    pub key: String,
}

/// The subject of a DER certificate.
pub fn certificate_subject(der: &[u8]) -> Result<SubjectName, KeyError> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|_| KeyError("The client certificate is not a readable X.509 certificate.".into()))?;
    subject_name(&cert.tbs_certificate.subject)
}

/// A subject name a developer registers: either the agent's certificate in PEM (its
/// subject is read out of it), or the name as RFC 4514 writes it, as
/// `openssl x509 -noout -subject -nameopt RFC2253` prints it. Spaces after `,` and `+`,
/// and openssl's `subject=` in front, are tolerated. Spaces around `=` are openssl's
/// default format, which writes the name the other way round: refused, saying so.
pub fn parse_subject(input: &str) -> Result<SubjectName, KeyError> {
    let input = input.trim();
    if input.starts_with("-----BEGIN CERTIFICATE-----") {
        if input.len() > MAX_PEM {
            return Err(KeyError(format!("A certificate is a few KB; this one is over {} KB.", MAX_PEM / 1024)));
        }
        let body: String = input.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.split_whitespace().collect::<String>())
            .map_err(|_| KeyError("The PEM certificate's base64 does not decode.".into()))?;
        return certificate_subject(&der);
    }
    let input = input.strip_prefix("subject=").unwrap_or(input).trim();
    let format = || {
        KeyError(format!(
            "Give the certificate's subject as RFC 4514 writes it, most specific first, such as \
             CN=billing-agent,OU=Agents,O=Acme,C=GB (`openssl x509 -noout -subject -nameopt RFC2253` prints it), \
             or paste the agent's certificate (PEM): 1 to {MAX_SUBJECT_DN} characters."
        ))
    };
    if input.is_empty() || input.len() > MAX_SUBJECT_DN || input.chars().any(char::is_control) {
        return Err(format());
    }
    let tidied = tidy(input).ok_or_else(|| {
        KeyError(
            "This looks like openssl's default output (`C = GB, O = Acme, CN = …`), which writes the name least \
             specific first: print the subject with `-nameopt RFC2253`, or paste the agent's certificate (PEM)."
                .into(),
        )
    })?;
    let name = RdnSequence::from_str(&tidied).map_err(|_| format())?;
    if name.0.is_empty() {
        return Err(format());
    }
    subject_name(&name)
}

/// Removes the spaces after `,` and `+` that RFC 4514 does not allow and older
/// writers put (an escaped space, `\ `, is kept); `None` for spaces around `=`.
fn tidy(dn: &str) -> Option<String> {
    let mut parts = Vec::new();
    let (mut current, mut escaped) = (String::new(), false);
    for c in dn.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => {
                current.push(c);
                escaped = true;
            }
            ',' | '+' | '=' => {
                parts.push(std::mem::take(&mut current));
                parts.push(c.to_string());
            }
            _ => current.push(c),
        }
    }
    parts.push(current);
    let spaced = |p: &String| p.ends_with(' ') && !p.ends_with("\\ ");
    for (i, p) in parts.iter().enumerate() {
        let next = parts.get(i + 1);
        if p == "=" && (i > 0 && spaced(&parts[i - 1]) || next.is_some_and(|n| n.starts_with(' '))) {
            return None;
        }
    }
    let tidied = parts.iter().map(|p| {
        let t = p.trim_start_matches(' ');
        // Trailing spaces go, unless the last one is escaped.
        match t.trim_end_matches(' ') {
            kept if kept.ends_with('\\') && t.len() > kept.len() => format!("{kept} "),
            kept => kept.to_owned(),
        }
    });
    Some(tidied.collect())
}

/// One attribute's value as compared (see [`SubjectName::key`]).
#[derive(serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
enum Compared {
    Text(String),
    Der(String),
}

fn subject_name(name: &RdnSequence) -> Result<SubjectName, KeyError> {
    // RFC 4514 writes the most specific first, the reverse of the DER order; within an
    // RDN, attributes are a set.
    let structure: Vec<Vec<(String, Compared)>> = name
        .0
        .iter()
        .rev()
        .map(|rdn| {
            let mut atvs: Vec<(String, Compared)> =
                rdn.0.iter().map(|atv| (atv.oid.to_string(), compared(&atv.value))).collect();
            atvs.sort();
            atvs
        })
        .collect();
    let canonical =
        serde_json::to_vec(&structure).map_err(|_| KeyError("The certificate's subject could not be read.".into()))?;
    let key = format!("sha256:{}", hex_of(&Sha256::digest(canonical)));
    Ok(SubjectName { display: name.to_string(), key })
}

fn compared(value: &x509_cert::der::Any) -> Compared {
    let text = match value.tag() {
        Tag::PrintableString => PrintableStringRef::try_from(value).ok().map(|s| s.as_str().to_owned()),
        Tag::Utf8String => Utf8StringRef::try_from(value).ok().map(|s| s.as_str().to_owned()),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok().map(|s| s.as_str().to_owned()),
        Tag::TeletexString => TeletexStringRef::try_from(value).ok().map(|s| s.as_str().to_owned()),
        _ => None,
    };
    match text {
        Some(text) => {
            Compared::Text(text.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ").to_ascii_lowercase())
        }
        None => Compared::Der(hex_of(&value.to_der().unwrap_or_default())),
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    fn issued(dn: &[(rcgen::DnType, rcgen::DnValue)]) -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["agent.example".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), v.clone());
        }
        params.self_signed(&key).unwrap()
    }

    #[test]
    fn a_registered_subject_matches_the_certificates_however_either_is_written() {
        use rcgen::{DnType, DnValue};
        // The authority wrote C as a printable string, O as UTF-8, CN in another case.
        let cert = issued(&[
            (DnType::CountryName, DnValue::PrintableString("GB".try_into().unwrap())),
            (DnType::OrganizationName, DnValue::Utf8String("Acme  Ltd".into())),
            (DnType::CommonName, DnValue::Utf8String("Billing-Agent".into())),
        ]);
        let from_cert = certificate_subject(cert.der()).unwrap();
        assert_eq!(from_cert.display, "CN=Billing-Agent,O=Acme  Ltd,C=GB", "RFC 4514: most specific first");
        for written in [
            "CN=Billing-Agent,O=Acme  Ltd,C=GB",
            "cn=billing-agent,o=acme ltd,c=gb",
            "CN=Billing-Agent, O=Acme Ltd, C=GB",
            "subject=CN=Billing-Agent,O=Acme Ltd,C=GB",
            "2.5.4.3=Billing-Agent,2.5.4.10=Acme Ltd,2.5.4.6=GB",
        ] {
            assert_eq!(parse_subject(written).unwrap().key, from_cert.key, "{written}");
        }
        // The certificate itself, pasted.
        assert_eq!(parse_subject(&cert.pem()).unwrap(), from_cert);
        // Not the same name: another value, another order, one attribute fewer or more.
        for other in [
            "CN=Billing-Agent2,O=Acme Ltd,C=GB",
            "C=GB,O=Acme Ltd,CN=Billing-Agent",
            "CN=Billing-Agent,O=Acme Ltd",
            "CN=Billing-Agent,OU=Agents,O=Acme Ltd,C=GB",
            "CN=Billing-Agent+UID=1,O=Acme Ltd,C=GB",
        ] {
            assert_ne!(parse_subject(other).unwrap().key, from_cert.key, "{other}");
        }
        // A comma inside a value, escaped, is the value's: a certificate whose one CN
        // spells another name's separators is not that name.
        let escaped = parse_subject(r"CN=Agent\, billing,O=Acme").unwrap();
        assert_eq!(escaped.display, r"CN=Agent\, billing,O=Acme");
        assert_ne!(escaped.key, parse_subject("CN=Agent,CN=billing,O=Acme").unwrap().key);
        let spelled = issued(&[
            (DnType::OrganizationName, DnValue::Utf8String("Acme".into())),
            (DnType::CommonName, DnValue::Utf8String("agent,2.5.4.11=billing".into())),
        ]);
        let victim = parse_subject("CN=agent,OU=billing,O=Acme").unwrap();
        assert_ne!(certificate_subject(spelled.der()).unwrap().key, victim.key);
        let plus = issued(&[(DnType::CommonName, DnValue::Utf8String("a+0.9.2342.19200300.100.1.1=7".into()))]);
        assert_ne!(certificate_subject(plus.der()).unwrap().key, parse_subject("UID=7+CN=a").unwrap().key);
        // A text value that looks like hex DER is text, not that DER.
        let bmp = issued(&[(DnType::CommonName, DnValue::BmpString("a".try_into().unwrap()))]);
        let as_text = issued(&[(DnType::CommonName, DnValue::Utf8String("#1e020061".into()))]);
        assert_ne!(certificate_subject(bmp.der()).unwrap().key, certificate_subject(as_text.der()).unwrap().key);
        // Only ASCII is folded: the Kelvin sign is not a k, a no-break space not a space.
        let ascii = parse_subject("CN=kelvin agent").unwrap().key;
        assert_ne!(parse_subject("CN=\u{212A}elvin agent").unwrap().key, ascii);
        assert_ne!(parse_subject("CN=kelvin\u{a0}agent").unwrap().key, ascii);
        assert_eq!(parse_subject("CN=KELVIN   agent ").unwrap().key, ascii);
    }

    #[test]
    fn a_subject_that_is_not_a_name_is_refused_with_the_format_expected() {
        let long = format!("CN={}", "a".repeat(MAX_SUBJECT_DN));
        for bad in ["", "   ", "billing-agent", "CN", "=x", "XX=1", "CN=a\nO=b", long.as_str(), "CN=a\u{0}"] {
            let e = parse_subject(bad).unwrap_err();
            assert!(e.0.contains("RFC 4514"), "{bad:?}: {}", e.0);
        }
        // openssl's default output writes the name backwards: refused, saying what to do.
        for openssl in ["subject=C = GB, O = Acme, CN = agent", "CN = agent", "CN =agent", "CN= agent"] {
            let e = parse_subject(openssl).unwrap_err();
            assert!(e.0.contains("-nameopt RFC2253"), "{openssl:?}: {}", e.0);
        }
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----";
        assert!(parse_subject(broken).is_err());
        let huge = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----", "A".repeat(20_000));
        assert!(parse_subject(&huge).unwrap_err().0.contains("KB"));
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
