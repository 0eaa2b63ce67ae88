"""A DPoP client in Python, run by server/tests/api/dpop_clients.rs: joserfc (a JOSE
library we did not write) makes the key, its RFC 7638 thumbprint and every proof; httpx
sends them; the official MCP Python SDK 1.x drives a whole Gateway MCP session with them.

Usage: python dpop_client.py ISSUER CLIENT_ID CLIENT_SECRET
Gets a DPoP-bound token (asking again with the nonce the server names), then opens an MCP
session at ISSUER/mcp whose every HTTP request carries a fresh proof for its own method
and URL, lists the tools and executes the first plain GET endpoint. Prints one JSON line.
"""

import asyncio
import base64
import hashlib
import json
import sys
import time
import uuid

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

ISSUER, CLIENT_ID, CLIENT_SECRET = sys.argv[1:4]
KEY = ECKey.generate_key("P-256")
PUBLIC = KEY.as_dict(private=False)


def proof(method, url, token=None, nonce=None):
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url.split("?")[0], "iat": int(time.time())}
    if token:
        digest = hashlib.sha256(token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if nonce:
        claims["nonce"] = nonce
    return jwt.encode({"typ": "dpop+jwt", "alg": "ES256", "jwk": PUBLIC}, claims, KEY)


def token():
    url = f"{ISSUER}/oauth/token"
    auth = (CLIENT_ID, CLIENT_SECRET)
    data = {"grant_type": "client_credentials"}
    first = httpx.post(url, auth=auth, data=data, headers={"DPoP": proof("POST", url)})
    nonce = first.headers.get("DPoP-Nonce")
    if first.status_code == 400 and first.json().get("error") == "use_dpop_nonce":
        second = httpx.post(url, auth=auth, data=data, headers={"DPoP": proof("POST", url, nonce=nonce)})
        second.raise_for_status()
        return second.json(), first.json()["error"]
    first.raise_for_status()
    return first.json(), None


class DPoPAuth(httpx.Auth):
    """Every request the MCP SDK sends gets the token and a proof made for it."""

    def __init__(self, access_token):
        self.access_token = access_token
        self.sent = []

    def auth_flow(self, request):
        url = str(request.url)
        request.headers["Authorization"] = f"DPoP {self.access_token}"
        request.headers["DPoP"] = proof(request.method, url, token=self.access_token)
        self.sent.append(request.method)
        yield request


def structured(result):
    value = getattr(result, "structuredContent", None)
    return value if value is not None else getattr(result, "structured_content", None)


async def session(access_token):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    auth = DPoPAuth(access_token)
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(f"{ISSUER}/mcp", http_client=http) as (read, write, _):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                tools = [t.name for t in (await s.list_tools()).tools]
                listed = structured(await s.call_tool("list_endpoints", {})) or {}
                plain = [e for e in listed.get("endpoints", []) if "{" not in e["path"] and e["method"] == "GET"]
                executed = structured(await s.call_tool("execute_endpoint", {"endpoint_id": plain[0]["id"]}))
                return init.protocolVersion, tools, executed, auth.sent


issued, first_error = token()
version, tools, executed, sent = asyncio.run(session(issued["access_token"]))
print(
    json.dumps(
        {
            "first_error": first_error,
            "token_type": issued["token_type"],
            "access_token": issued["access_token"],
            "thumbprint": KEY.thumbprint(),
            "protocol_version": version,
            "tools": tools,
            "executed": executed,
            "requests_with_proofs": len(sent),
        }
    )
)
