import { test, expect } from '@playwright/test';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { createUserWithCli, open, registerAgent, shot, signIn, signUp, uniqueEmail } from './support';

// Federation: an admin trusts the identity provider the agents already get tokens from,
// and links one agent's identity at it to a client. That provider's token then calls
// the gateway as the client, and the client's activity shows the link in use.

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const KID = 'e2e-key-1';

/** A token the identity provider issues (ES256), signed here as it would sign it. */
function providerToken(issuer: string, claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = { iss: issuer, aud: 'api://portcullis-e2e', iat: now, exp: now + 600, ...claims };
  const input = `${b64({ alg: 'ES256', kid: KID, typ: 'JWT' })}.${b64(body)}`;
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
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
  const form = admin.getByTestId('register-issuer');
  await form.getByLabel(/^Issuer/).fill(issuer);
  const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, use: 'sig' }] };
  await form.getByLabel(/^JWKS \(public keys\)/).fill(JSON.stringify(jwks));
  await form.getByLabel(/^Accepted audiences/).fill('api://portcullis-e2e');
  await form.getByLabel('RS256').uncheck();
  await form.getByLabel('ES256').check();
  await form.getByLabel('Claim that names the caller').fill('azp');
  await form.getByRole('button', { name: 'Register issuer' }).click();
  await expect(admin.getByRole('status')).toContainText(`${issuer} is trusted`);
  const row = admin.getByTestId('issuers').getByRole('row', { name: new RegExp(issuer) });
  await expect(row).toContainText('1 pasted key(s)');
  await expect(row).toContainText('ES256');
  await shot(admin, '48-trusted-issuers');

  // Before the link, the provider's token names nobody here.
  const token = providerToken(issuer, { azp: identity, sub: 'service-principal-object-id' });
  const before = await page.request.get('/gw/accounts/accounts', { headers: { Authorization: `Bearer ${token}` } });
  expect(before.status()).toBe(401);
  expect((await before.json()).code).toBe('identity_not_linked');

  await open(admin, `/clients/${agent.clientId}`);
  const profile = admin.getByTestId('profile-sandbox');
  await profile.getByText('Link an identity at a trusted issuer').click();
  const link = profile.getByTestId('link-identity');
  await link.getByLabel('Issuer').selectOption({ label: `${issuer} (azp)` });
  await link.getByLabel('Identity').fill(identity);
  await link.getByRole('button', { name: 'Link identity' }).click();
  await expect(admin.getByTestId('identity-linked')).toContainText(`azp = ${identity}`);
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
