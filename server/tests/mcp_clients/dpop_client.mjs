// A DPoP client written by others (oauth4webapi), run by server/tests/api/dpop_clients.rs:
// discovers the authorization server, gets a DPoP-bound token with client_secret_basic
// (retrying once when told to use a nonce, as the library documents), then calls the
// gateway and the Gateway MCP with the library's proofs. Prints one JSON line.
//
// usage: node dpop_client.mjs <issuer> <client_id> <client_secret> <gateway path> <endpoint id>
import * as oauth from 'oauth4webapi'

const [issuerUrl, clientId, clientSecret, gatewayPath, endpointId] = process.argv.slice(2)
const insecure = { [oauth.allowInsecureRequests]: true } // the test server speaks http on loopback
const issuer = new URL(issuerUrl)
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
)
const client = { client_id: clientId }
const keyPair = await oauth.generateKeyPair('ES256')
const DPoP = oauth.DPoP(client, keyPair)

async function token() {
  const send = () =>
    oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(clientSecret), new URLSearchParams(), {
      DPoP,
      ...insecure,
    })
  try {
    return await oauth.processClientCredentialsResponse(as, client, await send())
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) {
      return await oauth.processClientCredentialsResponse(as, client, await send())
    }
    throw err
  }
}

const issued = await token()
const gw = await oauth.protectedResourceRequest(issued.access_token, 'GET', new URL(gatewayPath, issuer), new Headers(), null, {
  DPoP,
  ...insecure,
})
const gwBody = await gw.text()

const headers = new Headers({
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'execute_endpoint',
})
const body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'execute_endpoint',
    arguments: { endpoint_id: endpointId },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
})
const mcp = await oauth.protectedResourceRequest(issued.access_token, 'POST', new URL('/mcp', issuer), headers, body, {
  DPoP,
  ...insecure,
})
const mcpBody = await mcp.json()

// The same token without the library's proof: a bearer call must be refused.
const stolen = await fetch(new URL(gatewayPath, issuer), { headers: { authorization: `Bearer ${issued.access_token}` } })

console.log(
  JSON.stringify({
    token_type: issued.token_type,
    access_token: issued.access_token,
    gateway_status: gw.status,
    gateway_body: gwBody,
    mcp_status: mcp.status,
    mcp_result: mcpBody.result ?? mcpBody,
    bearer_status: stolen.status,
    bearer_code: (await stolen.json()).code,
  }),
)
