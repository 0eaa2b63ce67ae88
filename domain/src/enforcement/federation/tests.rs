//! Tokens from a trusted issuer, made by hand, so that each forgery is exactly one
//! defect away from one that passes.

use super::*;
use crate::enforcement::test_keys::Key;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000_000;
const ISSUER: &str = "https://login.example.com/tenant";
const AUDIENCE: &str = "api://portcullis";

fn with_kid(key: &Key, kid: &str) -> Value {
    let mut jwk = key.jwk();
    jwk["kid"] = json!(kid);
    jwk
}

fn issuer(keys: &[Value], algorithms: &[&str], claim: &str) -> (IssuerEntry, Vec<IssuerKey>) {
    let set = parse_jwks(&json!({ "keys": keys }).to_string()).unwrap();
    let entry = IssuerEntry {
        id: "is_1".into(),
        issuer: ISSUER.into(),
        audiences: vec![AUDIENCE.into(), "other-api".into()],
        algorithms: algorithms.iter().map(|a| issuer_alg(a).unwrap()).collect(),
        subject_claim: claim.into(),
        keys: IssuerKeys::Static(Arc::new(set.clone())),
        identities: HashMap::new(),
    };
    (entry, set.keys)
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": "workload-7", "azp": "app-42", "aud": [AUDIENCE, "graph"],
        "iat": NOW / 1000, "exp": NOW / 1000 + 600,
    })
}

fn token(key: &Key, kid: &str, claims: &Value) -> String {
    key.sign(&json!({ "alg": key.alg(), "kid": kid, "typ": "JWT" }), claims)
}

#[test]
fn a_token_of_a_trusted_issuer_names_its_caller_by_the_chosen_claim() {
    let key = Key::p256();
    let (entry, keys) = issuer(&[with_kid(&key, "k1")], &["ES256"], "sub");
    let verified = verify_external(&token(&key, "k1", &claims()), &entry, &keys, NOW).unwrap();
    assert_eq!(verified.subject, "workload-7");
    assert_eq!(verified.cnf, None);
    let (by_azp, keys) = issuer(&[with_kid(&key, "k1")], &["ES256"], "azp");
    assert_eq!(verify_external(&token(&key, "k1", &claims()), &by_azp, &keys, NOW).unwrap().subject, "app-42");
    assert_eq!(claimed_issuer(&token(&key, "k1", &claims())).as_deref(), Some(ISSUER));
}

#[test]
fn a_token_is_told_apart_by_its_jti_or_else_by_its_digest() {
    let key = Key::p256();
    let (entry, keys) = issuer(&[with_kid(&key, "k1")], &["ES256"], "sub");
    let mut with_jti = claims();
    with_jti["jti"] = json!("tok-1");
    let verified = verify_external(&token(&key, "k1", &with_jti), &entry, &keys, NOW).unwrap();
    assert_eq!((verified.id.as_str(), verified.expires_at), ("tok-1", NOW / 1000 + 600));
    // Without a jti, two tokens differ by what was signed.
    let first = verify_external(&token(&key, "k1", &claims()), &entry, &keys, NOW).unwrap();
    let mut later = claims();
    later["iat"] = json!(NOW / 1000 + 1);
    let second = verify_external(&token(&key, "k1", &later), &entry, &keys, NOW).unwrap();
    assert_eq!(first.id.len(), 32);
    assert_ne!(first.id, second.id);
}

#[test]
fn each_forgery_is_refused_with_its_reason() {
    let key = Key::p256();
    let stranger = Key::p256();
    let (entry, keys) = issuer(&[with_kid(&key, "k1")], &["ES256"], "sub");
    let check = |t: &str| verify_external(t, &entry, &keys, NOW);
    let with = |patch: Value| {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        token(&key, "k1", &c)
    };
    assert_eq!(check(&token(&stranger, "k1", &claims())), Err(ExternalError::BadSignature), "another key, same kid");
    assert_eq!(check(&token(&key, "k9", &claims())), Err(ExternalError::UnknownKey), "a kid the issuer lacks");
    assert_eq!(check(&with(json!({ "aud": "someone-else" }))), Err(ExternalError::WrongAudience));
    assert_eq!(check(&with(json!({ "aud": null }))), Err(ExternalError::WrongAudience), "no audience");
    assert_eq!(check(&with(json!({ "iss": "https://evil.example" }))), Err(ExternalError::Malformed));
    assert_eq!(check(&with(json!({ "exp": NOW / 1000 - 61 }))), Err(ExternalError::Expired));
    assert!(check(&with(json!({ "exp": NOW / 1000 - 59 }))).is_ok(), "within the leeway");
    assert_eq!(check(&with(json!({ "exp": null }))), Err(ExternalError::Malformed), "no expiry");
    assert_eq!(check(&with(json!({ "nbf": NOW / 1000 + 120 }))), Err(ExternalError::NotYetValid));
    assert_eq!(check(&with(json!({ "sub": null }))), Err(ExternalError::NoSubject));
    assert_eq!(check(&with(json!({ "sub": 42 }))), Err(ExternalError::NoSubject), "not a string");
    assert_eq!(check(&with(json!({ "sub": "x".repeat(256) }))), Err(ExternalError::NoSubject), "too long");
    assert_eq!(check(&with(json!({ "exp": "tomorrow" }))), Err(ExternalError::Malformed));

    // Header tricks: a key of its own, a pointer to one, a proof's type, unknown crit.
    let signed = |header: Value| key.sign(&header, &claims());
    for extra in [
        json!({ "jwk": key.jwk() }),
        json!({ "jku": "https://evil.example/jwks" }),
        json!({ "x5u": "https://evil.example/cert" }),
        json!({ "crit": ["exp"] }),
        json!({ "typ": "dpop+jwt" }),
    ] {
        let mut header = json!({ "alg": "ES256", "kid": "k1" });
        header.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        assert_eq!(check(&signed(header.clone())), Err(ExternalError::Malformed), "{header}");
    }
    assert_eq!(check("not.a.token"), Err(ExternalError::Malformed));
    assert_eq!(check(&"a".repeat(MAX_EXTERNAL_TOKEN_BYTES + 1)), Err(ExternalError::Malformed));
}

#[test]
fn the_admin_chooses_the_algorithm_never_the_token() {
    let key = Key::ed25519();
    let p256 = Key::p256();
    let (entry, keys) = issuer(&[with_kid(&key, "ed"), with_kid(&p256, "ec")], &["ES256"], "sub");
    // An Ed25519 key the issuer publishes, but EdDSA was not allowed for it.
    assert_eq!(
        verify_external(&token(&key, "ed", &claims()), &entry, &keys, NOW),
        Err(ExternalError::AlgorithmNotAccepted)
    );
    assert!(verify_external(&token(&p256, "ec", &claims()), &entry, &keys, NOW).is_ok());
    // "alg confusion": an HMAC over the token keyed with the public key's bytes.
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "kid": "ec" }).to_string()),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
    assert_eq!(verify_external(&forged, &entry, &keys, NOW), Err(ExternalError::AlgorithmNotAccepted));
    assert_eq!(
        verify_external(&key.sign(&json!({ "alg": "none" }), &claims()), &entry, &keys, NOW),
        Err(ExternalError::AlgorithmNotAccepted)
    );
    // A token with no kid is checked with the one key that suits its algorithm, and
    // refused when there are several rather than tried against each.
    let no_kid = p256.sign(&json!({ "alg": "ES256" }), &claims());
    assert!(verify_external(&no_kid, &entry, &keys, NOW).is_ok());
    let (two, keys) = issuer(&[with_kid(&p256, "ec"), with_kid(&Key::p256(), "ec2")], &["ES256"], "sub");
    assert_eq!(verify_external(&no_kid, &two, &keys, NOW), Err(ExternalError::Malformed));
    assert!(verify_external(&token(&p256, "ec", &claims()), &two, &keys, NOW).is_ok(), "with its kid it passes");
}

#[test]
fn a_bound_token_says_what_it_is_bound_to() {
    let key = Key::p256();
    let (entry, keys) = issuer(&[with_kid(&key, "k1")], &["ES256"], "sub");
    let mut c = claims();
    c["cnf"] = json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" });
    let verified = verify_external(&token(&key, "k1", &c), &entry, &keys, NOW).unwrap();
    assert_eq!(verified.cnf.unwrap().jkt.as_deref(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
}

#[test]
fn a_jwks_keeps_the_keys_it_can_verify_with_and_refuses_what_it_cannot_read() {
    let key = Key::p256();
    let mut enc = key.jwk();
    enc["use"] = json!("enc");
    let symmetric = json!({ "kty": "oct", "k": "c2VjcmV0" });
    let mut private = Key::p256().jwk();
    private["d"] = json!("AAAA");
    let set = parse_jwks(&json!({ "keys": [with_kid(&key, "k1"), enc, symmetric, private] }).to_string()).unwrap();
    assert_eq!((set.keys.len(), set.skipped), (1, 3));
    assert_eq!(set.keys[0].kid.as_deref(), Some("k1"));
    for bad in [
        "not json".to_owned(),
        json!({ "kid": "x" }).to_string(),
        json!({ "keys": [json!({ "kty": "oct", "k": "c2VjcmV0" })] }).to_string(),
        json!({ "keys": vec![key.jwk(); MAX_JWKS_KEYS + 1] }).to_string(),
        " ".repeat(MAX_JWKS_BYTES + 1),
    ] {
        assert!(parse_jwks(&bad).is_err(), "{}", &bad[..bad.len().min(60)]);
    }
}

#[test]
fn claim_names_that_name_the_caller() {
    for ok in ["sub", "azp", "client_id", "appid", "oid", "https:.example.com-agent"] {
        assert!(valid_subject_claim(ok), "{ok}");
    }
    for bad in ["", "iss", "aud", "exp", "a b", "x\"", &"a".repeat(65)] {
        assert!(!valid_subject_claim(bad), "{bad}");
    }
}

#[test]
fn discovery_takes_the_keys_url_only_from_the_issuers_own_metadata() {
    assert_eq!(discovery_url("https://idp.example/t1/"), "https://idp.example/t1/.well-known/openid-configuration");
    let doc = |v: Value| v.to_string().into_bytes();
    let own = doc(json!({ "issuer": ISSUER, "jwks_uri": "https://idp.example/keys" }));
    assert_eq!(jwks_uri_from_discovery(ISSUER, &own).as_deref(), Ok("https://idp.example/keys"));
    let other = doc(json!({ "issuer": "https://evil.example", "jwks_uri": "https://evil.example/keys" }));
    assert!(jwks_uri_from_discovery(ISSUER, &other).unwrap_err().contains("another issuer"));
    let trailing = doc(json!({ "issuer": format!("{ISSUER}/"), "jwks_uri": "https://idp.example/keys" }));
    assert!(jwks_uri_from_discovery(ISSUER, &trailing).is_err(), "exactly, not nearly");
    assert!(jwks_uri_from_discovery(ISSUER, &doc(json!({ "issuer": ISSUER }))).unwrap_err().contains("jwks_uri"));
    assert!(jwks_uri_from_discovery(ISSUER, b"<html>").unwrap_err().contains("JSON"));
}
