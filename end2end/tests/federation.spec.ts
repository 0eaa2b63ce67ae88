import { test, expect, Locator, Page } from '@playwright/test';
import { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  createUserWithCli,
  localhostCertificate,
  open,
  registerAgent,
  shot,
  signIn,
  signUp,
  startServer,
  uniqueEmail,
} from './support';

// Federation: an admin trusts the identity provider the agents already get tokens from,
// and links one agent's identity at it to a client. That provider's token then calls
// the gateway as the client, and the client's activity shows the link in use.

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const KID = 'e2e-key-1';
const JWKS = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig' }] };

/** A token the identity provider issues (ES256), signed here as it would sign it. */
function providerToken(issuer: string, claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = { iss: issuer, aud: 'api://portcullis-e2e', iat: now, exp: now + 600, ...claims };
  const input = `${b64({ alg: 'ES256', kid: KID, typ: 'JWT' })}.${b64(body)}`;
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** The admin registers `issuer` on the Issuers page as the tests' providers sign (ES256,
 * the caller in `azp`), with its keys pasted or, without `jwks`, found by discovery; its
 * row in the list. */
async function registerIssuer(admin: Page, issuer: string, jwks?: object): Promise<Locator> {
  const form = admin.getByTestId('register-issuer');
  await form.getByLabel(/^Issuer/).fill(issuer);
  if (jwks) await form.getByLabel(/^JWKS \(public keys\)/).fill(JSON.stringify(jwks));
  await form.getByLabel(/^Accepted audiences/).fill('api://portcullis-e2e');
  await form.getByLabel('RS256').uncheck();
  await form.getByLabel('ES256').check();
  await form.getByLabel('Claim that names the caller').fill('azp');
  await form.getByRole('button', { name: 'Register issuer' }).click();
  await expect(admin.getByRole('status')).toContainText(`${issuer} is trusted`);
  return admin.getByTestId('issuers').getByRole('row', { name: new RegExp(issuer) });
}

/** The admin links `identity` (the `azp` claim) at `issuer` to the client's sandbox
 * profile on the client's page; that profile's card. */
async function linkIdentity(admin: Page, clientId: string, issuer: string, identity: string): Promise<Locator> {
  await open(admin, `/clients/${clientId}`);
  const profile = admin.getByTestId('profile-sandbox');
  await profile.getByText('Link an identity at a trusted issuer').click();
  const link = profile.getByTestId('link-identity');
  await link.getByLabel('Issuer').selectOption({ label: `${issuer} (azp)` });
  await link.getByLabel('Identity').fill(identity);
  await link.getByRole('button', { name: 'Link identity' }).click();
  await expect(admin.getByTestId('identity-linked')).toContainText(`azp = ${identity}`);
  return profile;
}

test('an admin trusts an identity provider and links an agent to it; its token calls the gateway as that agent', async ({ page, browser }) => {
  await signUp(page, uniqueEmail('federated-dev'));
  const agent = await registerAgent(page, 'Workload agent');
  const issuer = `https://idp.e2e.example/${randomUUID()}`;
  const identity = `app-${randomUUID().slice(0, 8)}`;

  const adminEmail = uniqueEmail('federation-admin');
  createUserWithCli(adminEmail, 'admin');
  const admin = await (await browser.newContext()).newPage();
  await signIn(admin, adminEmail);
  await admin.getByRole('link', { name: 'Issuers' }).click();
  await expect(admin.getByRole('heading', { name: 'Trusted issuers' })).toBeVisible();
  const row = await registerIssuer(admin, issuer, JWKS);
  await expect(row).toContainText('1 pasted key(s)');
  await expect(row).toContainText('ES256');
  await shot(admin, '48-trusted-issuers');

  // Before the link, the provider's token names nobody here.
  const token = providerToken(issuer, { azp: identity, sub: 'service-principal-object-id' });
  const before = await page.request.get('/gw/accounts/accounts', { headers: { Authorization: `Bearer ${token}` } });
  expect(before.status()).toBe(401);
  expect((await before.json()).code).toBe('identity_not_linked');

  const profile = await linkIdentity(admin, agent.clientId, issuer, identity);
  await expect(profile.getByRole('row', { name: /Federated identity/ })).toBeVisible();
  await shot(admin, '49-identity-linked');

  const after = await page.request.get('/gw/accounts/accounts', { headers: { Authorization: `Bearer ${token}` } });
  expect(after.status()).toBe(200);
  const stranger = providerToken(issuer, { azp: 'someone-else' });
  const refused = await page.request.get('/gw/accounts/accounts', { headers: { Authorization: `Bearer ${stranger}` } });
  expect(refused.status()).toBe(401);

  // The developer sees the link on the client and in use on its activity page.
  await open(page, `/clients/${agent.clientId}`);
  await expect(page.getByTestId('profile-sandbox').getByRole('row', { name: /Federated identity/ })).toBeVisible();
  await expect(page.getByTestId('link-identity')).toHaveCount(0);
  await open(page, `/clients/${agent.clientId}/activity`);
  const used = page.getByTestId('credentials-used').getByRole('row', { name: /Federated identity/ });
  await expect(used).toContainText('1');
  await shot(page, '50-activity-federated');
});

const OWN_PORT = Number(process.env.PORTCULLIS_E2E_OWN_PORT ?? 3102);
const OWN_ORIGIN = `http://127.0.0.1:${OWN_PORT}`;
let own: ChildProcess | undefined;
let provider: https.Server | undefined;
test.afterAll(() => {
  own?.kill('SIGTERM');
  provider?.close();
});

test('an admin trusts an identity provider by its URL alone: its keys are found through OIDC discovery', async ({ browser }) => {
  // The provider serves its OpenID configuration and its keys over https, with a
  // certificate of an authority this Portcullis is told to trust for upstreams.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-e2e-idp-'));
  localhostCertificate(dir, 'idp');
  let issuer = '';
  provider = https.createServer(
    { key: fs.readFileSync(path.join(dir, 'idp.key')), cert: fs.readFileSync(path.join(dir, 'idp.pem')) },
    (req, res) => {
      const documents: Record<string, unknown> = {
        '/.well-known/openid-configuration': { issuer, jwks_uri: `${issuer}/keys`, id_token_signing_alg_values_supported: ['ES256'] },
        '/keys': JWKS,
      };
      const body = documents[req.url ?? ''];
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: 'not_found' }));
    },
  );
  await new Promise<void>((ready) => provider!.listen(0, ready));
  issuer = `https://localhost:${(provider.address() as AddressInfo).port}`;
  let dataDir: string;
  ({ process: own, dataDir } = await startServer(OWN_ORIGIN, ['--addr', `127.0.0.1:${OWN_PORT}`, '--upstream-ca-file', 'idp-ca.pem'], dir));

  const developer = await (await browser.newContext({ baseURL: OWN_ORIGIN })).newPage();
  await signUp(developer, uniqueEmail('discovered-dev'));
  const agent = await registerAgent(developer, 'Discovered agent');
  const adminEmail = uniqueEmail('discovery-admin');
  createUserWithCli(adminEmail, 'admin', dataDir);
  const admin = await (await browser.newContext({ baseURL: OWN_ORIGIN })).newPage();
  await signIn(admin, adminEmail);
  await open(admin, '/admin/issuers');
  // Neither a keys URL nor keys are given: the one found in the configuration is shown.
  const row = await registerIssuer(admin, issuer);
  await expect(row).toContainText(`${issuer}/keys`);
  await shot(admin, '54-issuer-discovered');

  await linkIdentity(admin, agent.clientId, issuer, 'discovered-app');

  // The provider's token, checked with the keys fetched from the discovered URL.
  const call = (token: string) =>
    developer.request.get('/gw/accounts/accounts', { headers: { Authorization: `Bearer ${token}` } });
  expect((await call(providerToken(issuer, { azp: 'discovered-app' }))).status()).toBe(200);
  const forged = providerToken('https://idp.e2e.example/other', { azp: 'discovered-app' });
  expect((await call(forged)).status()).toBe(401);
});
