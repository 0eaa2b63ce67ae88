"""An agent that authenticates with a TLS client certificate (RFC 8705), run by
server/tests/api/mtls.rs. Two ways:

- its own self-signed certificate (`self_signed_tls_client_auth`): the developer
  registers the certificate's public key;
- with CA_CERT_PEM and CA_KEY_PEM, a certificate that enterprise authority issues it
  (`tls_client_auth`): the developer registers the subject, as `cryptography` writes it
  in RFC 4514.
 `cryptography` makes an RSA key and a self-signed
certificate for it; joserfc exports the public key as the JWK the developer registers
(and computes its RFC 7638 thumbprint); httpx asks the token endpoint for a token with
nothing but `client_id` over a connection presenting the certificate
(`self_signed_tls_client_auth`); the official MCP Python SDK runs a session with the
token over the same kind of connection and calls an endpoint. The same token over a
connection without the certificate is tried too, and must be refused.

Usage: python mtls_client.py ISSUER SERVER_CA_PEM DEVELOPER_TOKEN PROFILE_ID CLIENT_ID WORK_DIR
                             [CA_CERT_PEM CA_KEY_PEM]
Prints one JSON line.
"""

import asyncio
import base64
import datetime
import hashlib
import json
import os
import ssl
import sys

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc.jwk import RSAKey

ISSUER, SERVER_CA, DEVELOPER_TOKEN, PROFILE_ID, CLIENT_ID, WORK = sys.argv[1:7]
AUTHORITY = sys.argv[7:9]

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
now = datetime.datetime.now(datetime.timezone.utc)
if AUTHORITY:
    with open(AUTHORITY[0], "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(AUTHORITY[1], "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Ltd"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Agents"),
            x509.NameAttribute(NameOID.COMMON_NAME, "python-agent"),
        ]
    )
    issuer_name, signing_key = ca_cert.subject, ca_key
else:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent.example")])
    issuer_name, signing_key = name, key
builder = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(issuer_name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5))
    .not_valid_after(now + datetime.timedelta(days=1))
)
if AUTHORITY:
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
cert = builder.sign(signing_key, hashes.SHA256())
cert_path, key_path = os.path.join(WORK, "agent.pem"), os.path.join(WORK, "agent.key")
with open(cert_path, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
with open(key_path, "wb") as f:
    f.write(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def tls(with_certificate):
    """The server's CA, and the agent's certificate when it presents one (httpx's way)."""
    ctx = ssl.create_default_context(cafile=SERVER_CA)
    if with_certificate:
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


public = RSAKey.import_key(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
x5t = base64.urlsafe_b64encode(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()).rstrip(b"=").decode()

with httpx.Client(verify=tls(False)) as plain:
    if AUTHORITY:
        registered = plain.post(
            f"{ISSUER}/api/v1/profiles/{PROFILE_ID}/certificate-subjects",
            headers={"Authorization": f"Bearer {DEVELOPER_TOKEN}"},
            json={"subject": name.rfc4514_string()},
        )
    else:
        registered = plain.post(
            f"{ISSUER}/api/v1/profiles/{PROFILE_ID}/public-keys",
            headers={"Authorization": f"Bearer {DEVELOPER_TOKEN}"},
            json={"jwk": public.as_dict(private=False)},
        )

with httpx.Client(verify=tls(True)) as mutual:
    metadata = mutual.get(f"{ISSUER}/.well-known/oauth-authorization-server").json()
    answer = mutual.post(
        metadata["token_endpoint"], data={"grant_type": "client_credentials", "client_id": CLIENT_ID}
    )
token = answer.json().get("access_token") or ""


def structured(result):
    value = getattr(result, "structuredContent", None)
    return value if value is not None else getattr(result, "structured_content", None)


async def session(with_certificate):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30, verify=tls(with_certificate)) as http:
        async with streamable_http_client(f"{ISSUER}/mcp", http_client=http) as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                listed = structured(await s.call_tool("list_endpoints", {})) or {}
                plain = [e for e in listed.get("endpoints", []) if "{" not in e["path"] and e["method"] == "GET"]
                return structured(await s.call_tool("execute_endpoint", {"endpoint_id": plain[0]["id"]}))


executed, without = None, None
if token:
    executed = asyncio.run(session(True))
    try:
        asyncio.run(session(False))
        without = "accepted"
    except BaseException as e:  # the SDK raises inside its task group
        without = repr(e)

with httpx.Client(verify=tls(False)) as plain:
    copied = plain.get(f"{ISSUER}/gw/bank/fast", headers={"Authorization": f"Bearer {token or 'missing'}"})

print(
    json.dumps(
        {
            "registration_status": registered.status_code,
            "registered": registered.json(),
            "thumbprint": public.thumbprint(),
            "subject": name.rfc4514_string(),
            "x5t": x5t,
            "auth_methods": metadata["token_endpoint_auth_methods_supported"],
            "token_status": answer.status_code,
            "token_body": answer.json(),
            "executed": executed,
            "without_certificate": without,
            "copied_status": copied.status_code,
            "copied_body": copied.json(),
        }
    )
)
