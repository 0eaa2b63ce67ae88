"""A resource server that is not ours: verifies a Portcullis access token with joserfc
against the published JWKS (RFC 7517), as a service whose library lacks EdDSA would with
ES256. Run by server/tests/api/oauth.rs.

Usage: python verify_token.py ISSUER TOKEN ALG
Prints one JSON line: the header's alg and kid, and the claims joserfc verified.
"""

import json
import sys

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

ISSUER, TOKEN, ALG = sys.argv[1:4]
keys = KeySet.import_key_set(httpx.get(f"{ISSUER}/.well-known/jwks.json").json())
token = jwt.decode(TOKEN, keys, algorithms=[ALG])
jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": ISSUER}).validate(
    token.claims
)
print(json.dumps({"alg": token.header["alg"], "kid": token.header["kid"], "claims": token.claims}))
