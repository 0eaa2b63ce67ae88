import { test, expect } from '@playwright/test';
import { open, shot, signUp, uniqueEmail } from './support';

// An agent that authenticates with a key pair (private_key_jwt, RFC 7523): its developer
// registers the public key on the client page, sees its thumbprint, and the agent gets
// tokens by signing assertions, with no secret, until the key is revoked there.

const b64url = (bytes: ArrayBuffer | Uint8Array): string => Buffer.from(bytes as ArrayBuffer).toString('base64url');

async function thumbprint(jwk: JsonWebKey): Promise<string> {
  const canonical = `{"crv":"${jwk.crv}","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`;
  return b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical)));
}

/** An ES256 assertion for `clientId` to `aud`, signed by the agent's private key. */
async function assertion(privateKey: CryptoKey, clientId: string, aud: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(new TextEncoder().encode(JSON.stringify({ alg: 'ES256', typ: 'JWT' })));
  const claims = { iss: clientId, sub: clientId, aud, jti: crypto.randomUUID(), iat: now, exp: now + 60 };
  const payload = b64url(new TextEncoder().encode(JSON.stringify(claims)));
  const input = new TextEncoder().encode(`${header}.${payload}`);
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, input);
  return `${header}.${payload}.${b64url(signature)}`;
}

test('a developer registers an agent\'s public key; the agent signs for tokens until the key is revoked', async ({ page }) => {
  await signUp(page, uniqueEmail('keyed'));
  await open(page, '/clients/new');
  await page.getByLabel('Name').fill('Keyed agent');
  await page.getByRole('button', { name: 'Register' }).click();
  const clientId = (await page.getByTestId('client-id').textContent()) ?? '';
  await open(page, '/catalog');
  const accounts = page.getByTestId('product-accounts');
  await accounts.getByRole('combobox').selectOption({ label: 'Keyed agent — Sandbox' });
  await accounts.getByRole('button', { name: 'Request access' }).click();
  await expect(accounts.getByRole('status')).toContainText('Granted');

  // The agent's key pair; only the public half goes into the portal.
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
  const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };

  await open(page, `/clients/${clientId}`);
  const sandbox = page.getByTestId('profile-sandbox');
  const form = sandbox.getByTestId('register-key');
  await form.getByText('Register a public key instead of a secret').click();
  await form.getByLabel('Public key (JWK)').fill(JSON.stringify(publicJwk));
  await form.getByRole('button', { name: 'Register key' }).click();
  const registered = page.getByTestId('key-registered');
  await expect(registered).toContainText('A public key (EC P-256) is registered for the sandbox profile');
  await expect(page.getByTestId('key-thumbprint')).toHaveText(await thumbprint(jwk));
  await expect(page.getByTestId('key-how-to')).toContainText('client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  const row = sandbox.getByTestId('credentials').getByRole('row', { name: /Public key/ });
  await expect(row).toContainText((await thumbprint(jwk)).slice(0, 16));
  await expect(row).toContainText('Active');
  await shot(page, '42-public-key-registered');

  // The agent signs for a token and calls the gateway; no secret anywhere.
  const meta = await (await page.request.get('/.well-known/oauth-authorization-server')).json();
  expect(meta.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
  const tokenRequest = async () =>
    page.request.post('/oauth/token', {
      form: {
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(pair.privateKey, clientId, meta.issuer),
      },
    });
  const issued = await tokenRequest();
  expect(issued.status()).toBe(200);
  const token = (await issued.json()).access_token as string;
  const call = async () => (await page.request.get('/gw/accounts/accounts', { headers: { authorization: `Bearer ${token}` } })).status();
  expect(await call()).toBe(200);

  // The activity page counts the key among the credentials used.
  await open(page, `/clients/${clientId}/activity`);
  await expect(page.getByTestId('credentials-used').getByRole('row', { name: /Public key/ })).toBeVisible();

  // Revoked on the client page: its token and its next assertion are refused.
  await open(page, `/clients/${clientId}`);
  await row.getByRole('button', { name: 'Revoke' }).click();
  const dialog = page.getByRole('dialog', { name: /^Revoke the public key / });
  await dialog.getByRole('button', { name: 'Confirm revoke' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Credential revoked' })).toBeVisible();
  await expect(row).toContainText('Revoked');
  expect(await call()).toBe(401);
  const refused = await tokenRequest();
  expect(refused.status()).toBe(401);
  expect((await refused.json()).error).toBe('invalid_client');
  await shot(page, '43-public-key-revoked');
});
