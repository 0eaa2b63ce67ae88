//! Assertions made by hand, so that each forgery is exactly one defect away from one
//! that passes.

use super::*;
use crate::enforcement::test_keys::Key;
use crate::model::CredentialKind;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000_000;
const CLIENT: &str = "cl_agent";
const ISSUER: &str = "https://portcullis.example";

/// `key` registered as credential `id` of a profile.
fn registered(key: &Key, id: &str) -> ClientKey {
    let credential = CredentialEntry {
        id: id.into(),
        kind: CredentialKind::PublicKey,
        profile_id: "pf_1".into(),
        expires_at: i64::MAX,
    };
    ClientKey::from_stored(credential, &key.jwk().to_string()).unwrap()
}

/// An assertion with `claims`, signed by `key` with nothing else in its header.
fn assertion(key: &Key, claims: &Value) -> String {
    key.sign(&json!({ "alg": key.alg() }), claims)
}

fn claims() -> Value {
    json!({ "iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "jti": "a-1", "iat": NOW / 1000, "exp": NOW / 1000 + 60 })
}

fn audiences() -> Vec<String> {
    vec![ISSUER.into(), format!("{ISSUER}/oauth/token")]
}

fn check(assertion: &str, keys: &[ClientKey]) -> Result<String, AssertionError> {
    let audiences = audiences();
    let check = AssertionCheck { client_id: CLIENT, audiences: &audiences };
    check_assertion(assertion, &check, keys, NOW).map(|(key, a)| {
        assert_eq!(key.credential.id, a.credential_id);
        a.credential_id
    })
}

/// RFC 7638 §3.1's own example key and thumbprint.
const RFC_7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
const RFC_7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

#[test]
fn public_keys_of_each_type_register_with_their_thumbprint() {
    let rsa = json!({ "kty": "RSA", "n": RFC_7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29" });
    let parsed = parse_public_key(&rsa.to_string()).unwrap();
    assert_eq!(parsed.thumbprint, RFC_7638_THUMBPRINT);
    assert_eq!(parsed.key_type, "RSA 2048");
    assert_eq!(parsed.algorithms, vec![Algorithm::RS256], "a key naming its alg is held to it");
    let jwks = json!({ "keys": [{ "kty": "RSA", "n": RFC_7638_N, "e": "AQAB" }] });
    let parsed = parse_public_key(&jwks.to_string()).unwrap();
    assert_eq!(parsed.thumbprint, RFC_7638_THUMBPRINT, "a JWKS of one key is that key");
    assert_eq!(parsed.algorithms, vec![Algorithm::PS256, Algorithm::RS256]);
    for key in [Key::p256(), Key::ed25519()] {
        let mut jwk = key.jwk();
        jwk["use"] = json!("sig");
        jwk["x5t"] = json!("ignored");
        let parsed = parse_public_key(&jwk.to_string()).unwrap();
        assert!(parsed.jwk.get("use").is_none() && parsed.jwk.get("x5t").is_none(), "only the key is kept");
        assert_eq!(parsed.thumbprint.len(), 43);
    }
}

#[test]
fn private_symmetric_weak_and_unfit_keys_are_refused_with_the_reason() {
    let p256 = Key::p256().jwk();
    let mut private = p256.clone();
    private["d"] = json!("c2VjcmV0");
    let mut encryption = p256.clone();
    encryption["use"] = json!("enc");
    let mut wrong_alg = p256.clone();
    wrong_alg["alg"] = json!("RS256");
    let short_n = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(RFC_7638_N).unwrap()[..128]);
    for (text, says) in [
        (private.to_string(), "private"),
        (json!({ "kty": "oct", "k": "c2VjcmV0" }).to_string(), "private or symmetric"),
        (json!({ "kty": "EC", "crv": "P-384", "x": "AA", "y": "AA" }).to_string(), "other curves"),
        (json!({ "kty": "RSA", "n": short_n, "e": "AQAB" }).to_string(), "at least 2048 bits; this one has 1024"),
        (encryption.to_string(), "`use` is not `sig`"),
        (wrong_alg.to_string(), "does not fit"),
        (json!({ "keys": [p256.clone(), p256.clone()] }).to_string(), "exactly one key"),
        ("-----BEGIN PUBLIC KEY-----".into(), "as a JWK"),
        ("[1]".into(), "JSON object"),
    ] {
        let refused = parse_public_key(&text).expect_err(&text);
        assert!(refused.0.contains(says), "{text}: {refused}");
    }
}

#[test]
fn an_assertion_from_either_key_type_passes_and_names_its_credential() {
    for key in [Key::p256(), Key::ed25519()] {
        let keys = [registered(&key, "cr_1")];
        assert_eq!(check(&assertion(&key, &claims()), &keys), Ok("cr_1".into()));
        let mut to_token_endpoint = claims();
        to_token_endpoint["aud"] = json!(["https://elsewhere", format!("{ISSUER}/oauth/token")]);
        assert_eq!(check(&assertion(&key, &to_token_endpoint), &keys), Ok("cr_1".into()));
    }
    // RFC 9864's fully-specified name for Ed25519, as oauth4webapi sends it.
    let key = Key::ed25519();
    let keys = [registered(&key, "cr_2")];
    assert_eq!(check(&key.sign(&json!({ "alg": "Ed25519" }), &claims()), &keys), Ok("cr_2".into()));
}

#[test]
fn during_a_rotation_either_key_passes_and_a_kid_picks_one() {
    let (old, new) = (Key::p256(), Key::ed25519());
    let keys = [registered(&old, "cr_old"), registered(&new, "cr_new")];
    assert_eq!(check(&assertion(&old, &claims()), &keys), Ok("cr_old".into()));
    assert_eq!(check(&assertion(&new, &claims()), &keys), Ok("cr_new".into()));
    let by_thumbprint = json!({ "alg": "ES256", "kid": keys[0].thumbprint });
    assert_eq!(check(&old.sign(&by_thumbprint, &claims()), &keys), Ok("cr_old".into()));
    let naming_the_other = json!({ "alg": "ES256", "kid": keys[1].thumbprint });
    assert_eq!(check(&old.sign(&naming_the_other, &claims()), &keys), Err(AssertionError::NotVerified));
}

#[test]
fn each_forgery_is_refused_with_its_own_reason() {
    let key = Key::p256();
    let keys = [registered(&key, "cr_1")];
    let with = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        assertion(&key, &c)
    };
    let without = |name: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        assertion(&key, &c)
    };
    let now = NOW / 1000;
    let good = assertion(&key, &claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let tampered = format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(with("sub", json!("cl_other"))));
    let hmac_with_the_public_key = {
        use hmac::Mac;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256" }).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.jwk().to_string().as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    };
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none" }).to_string()),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let cases: Vec<(&str, String, AssertionError)> = vec![
        ("another client's issuer", with("iss", json!("cl_other")), AssertionError::WrongIssuer),
        ("another subject", with("sub", json!("cl_other")), AssertionError::WrongIssuer),
        ("another audience", with("aud", json!("https://elsewhere")), AssertionError::WrongAudience),
        ("no audience", without("aud"), AssertionError::MissingClaim),
        ("no jti", without("jti"), AssertionError::MissingClaim),
        ("an empty jti", with("jti", json!("")), AssertionError::MissingClaim),
        ("no exp", without("exp"), AssertionError::MissingClaim),
        ("expired", with("exp", json!(now - 31)), AssertionError::Expired),
        ("an iat ahead", with("iat", json!(now + 60)), AssertionError::NotYetValid),
        ("an nbf ahead", with("nbf", json!(now + 60)), AssertionError::NotYetValid),
        ("living an hour", with("exp", json!(now + 3600)), AssertionError::TooLongLived),
        ("alg none", unsigned, AssertionError::UnsupportedAlgorithm),
        ("HMAC keyed with the public key", hmac_with_the_public_key, AssertionError::UnsupportedAlgorithm),
        ("a DPoP proof", key.sign(&json!({ "alg": "ES256", "typ": "dpop+jwt" }), &claims()), AssertionError::WrongType),
        (
            "a key of its own",
            key.sign(&json!({ "alg": "ES256", "jwk": key.jwk() }), &claims()),
            AssertionError::Malformed,
        ),
        ("an unregistered key", assertion(&Key::p256(), &claims()), AssertionError::NotVerified),
        ("a registered key's alg on another key", assertion(&Key::ed25519(), &claims()), AssertionError::NotVerified),
        ("a tampered payload", tampered, AssertionError::NotVerified),
        ("not a JWT", "not-a-jwt".into(), AssertionError::Malformed),
        ("over 8 KiB", with("pad", json!("x".repeat(MAX_ASSERTION_BYTES))), AssertionError::Malformed),
    ];
    for (what, assertion, refused) in cases {
        assert_eq!(check(&assertion, &keys), Err(refused), "{what}");
    }
    assert_eq!(check(&good, &[]), Err(AssertionError::NotVerified), "a client without keys");
}

#[test]
fn the_one_use_key_is_the_client_and_the_jti() {
    let key = Key::p256();
    let keys = [registered(&key, "cr_1")];
    let audiences = audiences();
    let check = AssertionCheck { client_id: CLIENT, audiences: &audiences };
    let first = check_assertion(&assertion(&key, &claims()), &check, &keys, NOW).unwrap().1;
    let again = check_assertion(&assertion(&key, &claims()), &check, &keys, NOW + 1000).unwrap().1;
    assert_eq!(first.replay_key, again.replay_key);
    assert_eq!(first.remember_secs, 90, "until exp, with the leeway");
    let mut other = claims();
    other["jti"] = json!("a-2");
    assert_ne!(check_assertion(&assertion(&key, &other), &check, &keys, NOW).unwrap().1.replay_key, first.replay_key);
}
