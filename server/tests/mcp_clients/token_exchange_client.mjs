// An agent acting on behalf of another (RFC 8693 token exchange) with a library written
// by others (oauth4webapi), run by server/tests/api/token_exchange.rs: the subject agent
// gets its token with the client credentials grant; the acting agent exchanges it at the
// token endpoint with the library's generic grant request, then calls the gateway with
// what it got. Prints one JSON line.
//
// usage: node token_exchange_client.mjs <issuer> <subject id> <subject secret> <actor id> <actor secret> <gateway path>
import * as oauth from 'oauth4webapi'

const [issuerUrl, subjectId, subjectSecret, actorId, actorSecret, gatewayPath] = process.argv.slice(2)
const insecure = { [oauth.allowInsecureRequests]: true } // the test server speaks http on loopback
const issuer = new URL(issuerUrl)
const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
)

const subject = { client_id: subjectId }
const handed = await oauth.processClientCredentialsResponse(
  as,
  subject,
  await oauth.clientCredentialsGrantRequest(as, subject, oauth.ClientSecretBasic(subjectSecret), new URLSearchParams(), insecure),
)

const actor = { client_id: actorId }
const exchanged = await oauth.processGenericTokenEndpointResponse(
  as,
  actor,
  await oauth.genericTokenEndpointRequest(
    as,
    actor,
    oauth.ClientSecretBasic(actorSecret),
    'urn:ietf:params:oauth:grant-type:token-exchange',
    {
      subject_token: handed.access_token,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    },
    insecure,
  ),
)

const call = await fetch(new URL(gatewayPath, issuer), { headers: { authorization: `Bearer ${exchanged.access_token}` } })
console.log(
  JSON.stringify({
    grant_types: as.grant_types_supported,
    issued_token_type: exchanged.issued_token_type,
    token_type: exchanged.token_type,
    access_token: exchanged.access_token,
    gateway_status: call.status,
  }),
)
