// An agent that authenticates with a key pair (private_key_jwt, RFC 7523) using a
// library written by others (oauth4webapi), run by server/tests/api/private_key_jwt_clients.rs:
// it makes its key pair, has its developer register the public key over the management
// API, then gets a DPoP-bound token with assertions the library signs (no secret
// anywhere) and calls the gateway with the library's proofs. Prints one JSON line.
//
// usage: node private_key_jwt_client.mjs <issuer> <developer token> <profile id> <client id> <gateway path>
import * as oauth from 'oauth4webapi'

const [issuerUrl, developerToken, profileId, clientId, gatewayPath] = process.argv.slice(2)
const insecure = { [oauth.allowInsecureRequests]: true } // the test server speaks http on loopback
const issuer = new URL(issuerUrl)

// The agent's own key pair; only the public half leaves it.
const signing = await oauth.generateKeyPair('ES256')
const publicJwk = await crypto.subtle.exportKey('jwk', signing.publicKey)
const registration = await fetch(new URL(`/api/v1/profiles/${profileId}/public-keys`, issuer), {
  method: 'POST',
  headers: { authorization: `Bearer ${developerToken}`, 'content-type': 'application/json' },
  body: JSON.stringify({ jwk: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y } }),
})
const registered = await registration.json()

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
)
const client = { client_id: clientId }
const clientAuth = oauth.PrivateKeyJwt({ key: signing.privateKey, kid: registered.thumbprint })
const DPoP = oauth.DPoP(client, await oauth.generateKeyPair('EdDSA'))

async function token() {
  const send = () =>
    oauth.clientCredentialsGrantRequest(as, client, clientAuth, new URLSearchParams(), { DPoP, ...insecure })
  try {
    return await oauth.processClientCredentialsResponse(as, client, await send())
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) {
      return await oauth.processClientCredentialsResponse(as, client, await send())
    }
    throw err
  }
}

const first = await token()
const second = await token() // a second assertion: each is used once
const gw = await oauth.protectedResourceRequest(first.access_token, 'GET', new URL(gatewayPath, issuer), new Headers(), null, {
  DPoP,
  ...insecure,
})

console.log(
  JSON.stringify({
    registration_status: registration.status,
    thumbprint: registered.thumbprint,
    credential_id: registered.credential_id,
    auth_methods: as.token_endpoint_auth_methods_supported,
    token_type: first.token_type,
    access_token: first.access_token,
    second_token: second.access_token !== first.access_token,
    gateway_status: gw.status,
    gateway_body: await gw.text(),
  }),
)
