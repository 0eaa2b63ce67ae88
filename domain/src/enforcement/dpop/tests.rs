//! Proofs made by hand, byte by byte, so that each forgery is exactly one defect away from
//! a proof that passes.

use super::*;
use crate::enforcement::test_keys::Key;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000_000;
const URL: &str = "https://gw.example/gw/bank/accounts";

/// A proof's header: its type, the key's algorithm, the public key.
fn header(key: &Key) -> Value {
    json!({ "typ": "dpop+jwt", "alg": key.alg(), "jwk": key.jwk() })
}

fn claims(token: Option<&str>) -> Value {
    let mut c = json!({ "jti": "proof-1", "htm": "GET", "htu": URL, "iat": NOW / 1000 });
    if let Some(t) = token {
        c["ath"] = json!(token_hash(t));
    }
    c
}

fn nonces() -> Nonces {
    Nonces::new(&ServerSecret::parse("a-test-secret-of-enough-length-for-the-server").unwrap())
}

fn check(proof: &str, token: Option<&str>) -> Result<Proof, ProofError> {
    let check = ProofCheck { method: "GET", url: URL, access_token: token, nonce_required: false };
    check_proof(proof, &check, &nonces(), NOW)
}

#[test]
fn a_proof_from_either_key_type_passes_and_names_its_key() {
    for key in [Key::p256(), Key::ed25519()] {
        let proof = key.sign(&header(&key), &claims(Some("tok")));
        let ok = check(&proof, Some("tok")).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).unwrap();
        assert_eq!(ok.jkt, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        assert_eq!(ok.jkt.len(), 43, "base64url of a SHA-256");
    }
    // RFC 9864's fully-specified name for Ed25519, as oauth4webapi sends it.
    let key = Key::ed25519();
    let mut named = header(&key);
    named["alg"] = json!("Ed25519");
    assert!(check(&key.sign(&named, &claims(Some("tok"))), Some("tok")).is_ok());
    let p256 = Key::p256();
    let mut named = header(&p256);
    named["alg"] = json!("Ed25519");
    assert_eq!(check(&p256.sign(&named, &claims(None)), None), Err(ProofError::UnsupportedAlgorithm));
}

#[test]
fn the_rfc_7638_thumbprint_is_the_one_every_library_computes() {
    // RFC 7638 §3.1's example key and its thumbprint.
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    }))
    .unwrap();
    assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

/// Each forgery, one defect away from a good proof, and the check it must fail.
#[test]
fn every_forged_proof_is_refused_for_its_own_reason() {
    let key = Key::p256();
    let other = Key::p256();
    let good_header = header(&key);
    let good = claims(Some("tok"));
    let with = |path: &str, value: Value| {
        let mut c = good.clone();
        c[path] = value;
        c
    };
    let without = |path: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(path);
        c
    };
    let header_with = |name: &str, value: Value| {
        let mut h = good_header.clone();
        h[name] = value;
        h
    };
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!("c2VjcmV0");
    let hs256 = {
        let header = json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": { "kty": "oct", "k": "c2VjcmV0" } });
        let encoding = jsonwebtoken::EncodingKey::from_secret(b"secret");
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.typ = Some("dpop+jwt".into());
        // Signed for real with the shared secret: refused for its algorithm, not its bytes.
        let real = jsonwebtoken::encode(&h, &good, &encoding).unwrap();
        let (_, rest) = real.split_once('.').unwrap();
        format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
    };
    let tampered = {
        let proof = key.sign(&good_header, &good);
        let parts: Vec<&str> = proof.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with("htm", json!("GET")).to_string().replace("proof-1", "proof-2"));
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let cases: Vec<(&str, String, ProofError)> = vec![
        ("not a JWT", "abc".into(), ProofError::Malformed),
        (
            "too large",
            format!("{}.{}", key.sign(&good_header, &good), "A".repeat(MAX_PROOF_BYTES)),
            ProofError::Malformed,
        ),
        ("typ jwt", key.sign(&header_with("typ", json!("JWT")), &good), ProofError::WrongType),
        ("no typ", key.sign(&json!({ "alg": "ES256", "jwk": key.jwk() }), &good), ProofError::WrongType),
        ("alg none", key.sign(&header_with("alg", json!("none")), &good), ProofError::UnsupportedAlgorithm),
        ("symmetric alg", hs256, ProofError::UnsupportedAlgorithm),
        (
            "alg for another key type",
            key.sign(&header_with("alg", json!("EdDSA")), &good),
            ProofError::UnsupportedAlgorithm,
        ),
        ("no jwk", key.sign(&json!({ "typ": "dpop+jwt", "alg": "ES256" }), &good), ProofError::MissingKey),
        ("jwk with a private key", key.sign(&header_with("jwk", private_jwk), &good), ProofError::PrivateKey),
        ("signed by another key than its jwk", other.sign(&good_header, &good), ProofError::BadSignature),
        ("claims changed after signing", tampered, ProofError::BadSignature),
        ("wrong htm", key.sign(&good_header, &with("htm", json!("POST"))), ProofError::MethodMismatch),
        (
            "wrong htu",
            key.sign(&good_header, &with("htu", json!("https://gw.example/gw/bank/payments"))),
            ProofError::UrlMismatch,
        ),
        (
            "htu on another host",
            key.sign(&good_header, &with("htu", json!("https://evil.example/gw/bank/accounts"))),
            ProofError::UrlMismatch,
        ),
        (
            "stale iat",
            key.sign(&good_header, &with("iat", json!(NOW / 1000 - PROOF_MAX_AGE_SECS - 1))),
            ProofError::Stale,
        ),
        (
            "future iat",
            key.sign(&good_header, &with("iat", json!(NOW / 1000 + PROOF_LEEWAY_SECS + 1))),
            ProofError::FromTheFuture,
        ),
        ("iat as text", key.sign(&good_header, &with("iat", json!("1800000000"))), ProofError::Malformed),
        ("no jti", key.sign(&good_header, &without("jti")), ProofError::Malformed),
        ("no ath", key.sign(&good_header, &without("ath")), ProofError::TokenHashMismatch),
        (
            "ath of another token",
            key.sign(&good_header, &with("ath", json!(token_hash("other")))),
            ProofError::TokenHashMismatch,
        ),
    ];
    for (what, proof, expected) in cases {
        let got = check(&proof, Some("tok"));
        assert_eq!(got.as_ref().err(), Some(&expected), "{what}: {got:?}");
    }
}

#[test]
fn the_url_is_compared_as_rfc_3986_normalises_it() {
    let key = Key::ed25519();
    for same in [
        "HTTPS://GW.Example/gw/bank/accounts",
        "https://gw.example:443/gw/bank/accounts",
        "https://gw.example/gw/bank/accounts?page=2#top",
        "https://gw.example/gw/bank/x/../accounts",
    ] {
        let mut c = claims(None);
        c["htu"] = json!(same);
        assert!(check(&key.sign(&header(&key), &c), None).is_ok(), "{same}");
    }
    for different in
        ["http://gw.example/gw/bank/accounts", "https://gw.example:8443/gw/bank/accounts", "/gw/bank/accounts"]
    {
        let mut c = claims(None);
        c["htu"] = json!(different);
        assert_eq!(check(&key.sign(&header(&key), &c), None), Err(ProofError::UrlMismatch), "{different}");
    }
}

#[test]
fn iat_is_accepted_exactly_within_its_window() {
    let key = Key::p256();
    for (iat, ok) in [
        (NOW / 1000 - PROOF_MAX_AGE_SECS, true),
        (NOW / 1000 - PROOF_MAX_AGE_SECS - 1, false),
        (NOW / 1000 + PROOF_LEEWAY_SECS, true),
        (NOW / 1000 + PROOF_LEEWAY_SECS + 1, false),
    ] {
        let mut c = claims(None);
        c["iat"] = json!(iat);
        assert_eq!(check(&key.sign(&header(&key), &c), None).is_ok(), ok, "iat {iat}");
    }
}

#[test]
fn a_nonce_is_ours_and_current_or_refused() {
    let n = nonces();
    let nonce = n.issue(NOW);
    assert!(n.is_current(&nonce, NOW));
    assert!(n.is_current(&nonce, NOW + NONCE_WINDOW_SECS * 1000), "good in the next window");
    assert!(!n.is_current(&nonce, NOW + 2 * NONCE_WINDOW_SECS * 1000), "not in the one after");
    let theirs = Nonces::new(&ServerSecret::parse("another-secret-of-enough-length-for-a-server").unwrap());
    assert!(!theirs.is_current(&nonce, NOW), "another server's");
    let mut forged = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
    forged[0] ^= 1;
    assert!(!n.is_current(&URL_SAFE_NO_PAD.encode(forged), NOW));
    assert!(!n.is_current("", NOW) && !n.is_current("!!", NOW));

    let key = Key::p256();
    let required = ProofCheck { method: "GET", url: URL, access_token: None, nonce_required: true };
    let without = key.sign(&header(&key), &claims(None));
    assert_eq!(check_proof(&without, &required, &n, NOW), Err(ProofError::NonceRequired));
    let mut c = claims(None);
    c["nonce"] = json!(nonce);
    let with = key.sign(&header(&key), &c);
    assert!(check_proof(&with, &required, &n, NOW).is_ok());
    assert_eq!(
        check_proof(&with, &required, &n, NOW + 2 * NONCE_WINDOW_SECS * 1000 + 1000).map(|_| ()).unwrap_err(),
        ProofError::Stale,
        "an old proof is stale before its nonce matters"
    );
}

#[test]
fn two_proofs_differ_in_their_replay_key_unless_they_share_key_and_jti() {
    let (a, b) = (Key::p256(), Key::p256());
    let pa = check(&a.sign(&header(&a), &claims(None)), None).unwrap();
    let pa2 = check(&a.sign(&header(&a), &claims(None)), None).unwrap();
    let pb = check(&b.sign(&header(&b), &claims(None)), None).unwrap();
    assert_eq!(pa.replay_key, pa2.replay_key, "same key, same jti: the same proof for the one-use check");
    assert_ne!(pa.replay_key, pb.replay_key, "another key may use the same jti");
}

#[test]
fn our_own_proof_key_makes_proofs_that_pass() {
    let key = ProofKey::generate().unwrap();
    let proof = key.proof("GET", URL, "tok", NOW).unwrap();
    let ok = check(&proof, Some("tok")).unwrap();
    assert_eq!(ok.jkt, key.jkt());
    assert_ne!(check(&key.proof("GET", URL, "tok", NOW).unwrap(), Some("tok")).unwrap().replay_key, ok.replay_key);
}
