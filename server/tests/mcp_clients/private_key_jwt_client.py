"""An agent that authenticates with an RSA key pair, run by
server/tests/api/private_key_jwt_clients.rs: joserfc makes the key and its RFC 7638
thumbprint, the developer's token registers the public key over the management API, the
official MCP Python SDK 1.x's SignedJWTParameters signs the RS256 assertion (with PyJWT)
for the audience the server's metadata names, and the SDK runs a session with the token.
One PS256 assertion is also made with PyJWT directly.

The SDK's PrivateKeyJWTOAuthProvider cannot do the discovery itself here: its metadata
model requires `authorization_endpoint`, which RFC 8414 makes optional for a server
without grants that use one (ours has only client_credentials), so the token request is
sent from here.

Usage: python private_key_jwt_client.py ISSUER DEVELOPER_TOKEN PROFILE_ID CLIENT_ID
Prints one JSON line.
"""

import asyncio
import json
import sys
import time
import uuid

import httpx
import jwt as pyjwt
from joserfc.jwk import RSAKey

ISSUER, DEVELOPER_TOKEN, PROFILE_ID, CLIENT_ID = sys.argv[1:5]
KEY = RSAKey.generate_key(2048)
PEM = KEY.as_pem(private=True).decode()

registered = httpx.post(
    f"{ISSUER}/api/v1/profiles/{PROFILE_ID}/public-keys",
    headers={"Authorization": f"Bearer {DEVELOPER_TOKEN}"},
    json={"jwk": KEY.as_dict(private=False)},
)


def structured(result):
    value = getattr(result, "structuredContent", None)
    return value if value is not None else getattr(result, "structured_content", None)


async def sdk_token():
    from mcp.client.auth.extensions.client_credentials import SignedJWTParameters

    metadata = httpx.get(f"{ISSUER}/.well-known/oauth-authorization-server").json()
    signer = SignedJWTParameters(issuer=CLIENT_ID, subject=CLIENT_ID, signing_key=PEM, lifetime_seconds=120)
    assertion = await signer.create_assertion_provider()(metadata["issuer"])
    answer = httpx.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


async def session():
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    token = await sdk_token()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(f"{ISSUER}/mcp", http_client=http) as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                listed = structured(await s.call_tool("list_endpoints", {})) or {}
                plain = [e for e in listed.get("endpoints", []) if "{" not in e["path"] and e["method"] == "GET"]
                executed = structured(await s.call_tool("execute_endpoint", {"endpoint_id": plain[0]["id"]}))
                return token, executed


access_token, executed = asyncio.run(session())

now = int(time.time())
claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ISSUER, "jti": str(uuid.uuid4()), "iat": now, "exp": now + 60}
pss = httpx.post(
    f"{ISSUER}/oauth/token",
    data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": pyjwt.encode(claims, PEM, algorithm="PS256"),
    },
)

print(
    json.dumps(
        {
            "registration_status": registered.status_code,
            "registered": registered.json(),
            "thumbprint": KEY.thumbprint(),
            "access_token": access_token,
            "executed": executed,
            "ps256_status": pss.status_code,
            "ps256_body": pss.json(),
        }
    )
)
