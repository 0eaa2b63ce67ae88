import { test, expect, request } from '@playwright/test';
import { ChildProcess, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { authority, issue, localhostCertificate, open, registerAgent, shot, signUp, startServer, uniqueEmail } from './support';

// tls_client_auth (RFC 8705 §2.1) as an enterprise runs it: Portcullis serves https and
// verifies client certificates against the enterprise's authority (--tls-client-ca). A
// developer registers, in the portal, the subject that authority writes in the agent's
// certificate; the agent then gets tokens with that certificate and its client id
// alone, bound to the certificate. This test starts its own https server for that.

const PORT = Number(process.env.PORTCULLIS_E2E_TLS_PORT ?? 3101);
const ORIGIN = `https://localhost:${PORT}`;

let server: ChildProcess | undefined;
test.afterAll(() => server?.kill('SIGTERM'));

test('a developer registers the subject of the agent\'s CA-issued certificate; the agent gets tokens with it alone', async ({ browser }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-e2e-tls-'));
  localhostCertificate(dir, 'server');
  authority(dir, 'agents', '/O=Acme/CN=Acme Agents CA');
  issue(dir, 'agents', 'agent', '/C=GB/O=Acme/OU=Agents/CN=ledger-agent',
    'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  // The subject as the agent's operator reads it off the certificate.
  const subject = execFileSync('openssl', ['x509', '-in', 'agent.pem', '-noout', '-subject', '-nameopt', 'RFC2253'], { cwd: dir })
    .toString().trim();
  expect(subject).toBe('subject=CN=ledger-agent,OU=Agents,O=Acme,C=GB');

  ({ process: server } = await startServer(ORIGIN, ['--addr', `127.0.0.1:${PORT}`, '--tls-cert', 'server.pem',
    '--tls-key', 'server.key', '--tls-client-ca', 'agents-ca.pem', '--public-url', ORIGIN], dir));
  // Without the agent's certificate: the server CA is ours, so only its errors are ignored.
  const bare = await request.newContext({ baseURL: ORIGIN, ignoreHTTPSErrors: true });

  // The developer's browser is the agent's machine here: it holds the certificate.
  const context = await browser.newContext({
    baseURL: ORIGIN,
    ignoreHTTPSErrors: true,
    clientCertificates: [{ origin: ORIGIN, certPath: path.join(dir, 'agent.pem'), keyPath: path.join(dir, 'agent.key') }],
  });
  const page = await context.newPage();
  await signUp(page, uniqueEmail('certified'));
  const { clientId, secret } = await registerAgent(page, 'Ledger agent');

  await open(page, `/clients/${clientId}`);
  const sandbox = page.getByTestId('profile-sandbox');
  const form = sandbox.getByTestId('register-subject');
  await form.getByText('Register a CA-issued certificate\'s subject').click();
  await form.getByLabel('Subject DN or certificate (PEM)').fill(subject);
  await form.getByRole('button', { name: 'Register subject' }).click();
  await expect(page.getByTestId('subject-registered')).toContainText('CN=ledger-agent,OU=Agents,O=Acme,C=GB');
  const row = sandbox.getByTestId('credentials').getByRole('row', { name: /Certificate subject/ });
  await expect(row).toContainText('Active');
  await shot(page, '52-certificate-subject-registered');

  // The secret is revoked: the certificate is the agent's only credential.
  const secretRow = sandbox.getByTestId('credentials').getByRole('row', { name: /Client secret/ });
  await secretRow.getByRole('button', { name: 'Revoke' }).click();
  await page.getByRole('dialog', { name: /^Revoke the client secret / }).getByRole('button', { name: 'Confirm revoke' }).click();
  await expect(secretRow).toContainText('Revoked');

  const meta = await (await page.request.get('/.well-known/oauth-authorization-server')).json();
  expect(meta.token_endpoint_auth_methods_supported).toContain('tls_client_auth');
  const tokenForm = { grant_type: 'client_credentials', client_id: clientId };
  const issued = await page.request.post('/oauth/token', { form: tokenForm });
  expect(issued.status()).toBe(200);
  const token = (await issued.json()).access_token as string;
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  expect(Object.keys(claims.cnf)).toEqual(['x5t#S256']);
  const call = { headers: { authorization: `Bearer ${token}` } };
  expect((await page.request.get('/gw/accounts/accounts', call)).status()).toBe(200);

  // Without the certificate: no token for the client id, and the token is useless.
  const refused = await bare.post('/oauth/token', { form: tokenForm });
  expect(refused.status()).toBe(401);
  expect((await refused.json()).error).toBe('invalid_client');
  expect(await bare.post('/oauth/token', { form: tokenForm, headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` } })
    .then((r) => r.status())).toBe(401);
  const copied = await bare.get('/gw/accounts/accounts', call);
  expect(copied.status()).toBe(401);
  expect((await copied.json()).code).toBe('certificate_mismatch');

  // The activity page counts the certificate subject among the credentials used.
  await open(page, `/clients/${clientId}/activity`);
  await expect(page.getByTestId('credentials-used').getByRole('row', { name: /Certificate subject/ })).toBeVisible();
  await shot(page, '53-certificate-subject-activity');
  await context.close();
  await bare.dispose();
});
