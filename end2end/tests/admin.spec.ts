import { test, expect, Browser } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createUserWithCli, open, shot, signIn, signUp, uniqueEmail } from './support';

/** A developer (in a browser context of its own) whose agent `name` is granted the
 * accounts product and holds an API key that works; `call` uses the key. */
async function agentWithApiKey(browser: Browser, who: string, name: string) {
  const devContext = await browser.newContext();
  const dev = await devContext.newPage();
  await signUp(dev, uniqueEmail(who));
  await open(dev, '/clients/new');
  await dev.getByLabel('Name').fill(name);
  await dev.getByRole('button', { name: 'Register' }).click();
  await expect(dev).toHaveURL(/\/clients\/cl_[A-Za-z0-9_-]+$/);
  const clientUrl = new URL(dev.url()).pathname;
  await open(dev, '/catalog');
  const accounts = dev.getByTestId('product-accounts');
  await accounts.getByRole('combobox').selectOption({ label: `${name} — Sandbox` });
  await accounts.getByRole('button', { name: 'Request access' }).click();
  await expect(accounts.getByRole('status')).toContainText('Granted');
  await open(dev, clientUrl);
  await dev.getByRole('button', { name: 'Issue API key' }).click();
  const key = (await dev.getByTestId('secret-value').textContent()) ?? '';
  const call = () => dev.request.get('/gw/accounts/accounts', { headers: { 'X-API-Key': key } });
  expect((await call()).status()).toBe(200);
  return { devContext, clientUrl, call };
}

test('an admin publishes a product and imports its OpenAPI document', async ({ page }) => {
  const admin = uniqueEmail('publisher');
  createUserWithCli(admin, 'admin');
  await signIn(page, admin);
  await open(page, '/admin/products');

  const publish = page.locator('details', { hasText: 'Publish a new product' });
  await publish.getByText('Publish a new product').click();
  await publish.getByLabel('Name', { exact: true }).fill('Loans');
  await publish.getByLabel('Slug').fill('loans');
  await publish.getByLabel('Description').fill('Loan applications and repayment schedules.');
  await publish.getByLabel('Owner').fill('Lending');
  await publish.getByLabel('Classification tags').fill('pii, internal');
  await publish.getByLabel('Sandbox upstream').fill('http://127.0.0.1:3100/sample/loans');
  await publish.getByLabel('Production upstream').fill('https://loans.internal');
  await publish.getByRole('button', { name: 'Publish product' }).click();
  await expect(page.getByRole('status')).toContainText('Loans is published at /gw/loans/');

  const card = page.getByTestId('admin-product-loans');
  await expect(card).toContainText('No endpoints yet');
  await card.getByText('Import an OpenAPI 3 document').click();
  const doc = fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'loans-openapi.yaml'), 'utf8');
  await card.getByLabel('OpenAPI document for Loans').fill(doc);
  await card.getByRole('button', { name: 'Import' }).click();
  await expect(page.getByRole('status').first()).toContainText('OpenAPI imported: 4 endpoints added, 0 updated.');

  const endpoints = card.getByTestId('endpoints');
  await expect(endpoints.locator('tbody tr')).toHaveCount(4);
  await expect(endpoints).toContainText('/loans/{loanId}/approve');
  await expect(endpoints).toContainText('approveLoan');
  await card.scrollIntoViewIfNeeded();
  await shot(page, '10-admin-products');

  // Editing the product: the card follows its new name.
  await card.getByText('Edit product').click();
  await card.getByLabel('Owner').fill('Lending Platform');
  await card.getByRole('button', { name: 'Save product' }).click();
  await expect(page.getByRole('status').first()).toContainText('Loans is saved.');

  // The product's gateway policy: a limit across all callers, and keys in the URL.
  await card.getByLabel('Requests/minute, all callers').fill('600');
  await card.getByLabel('Accept API keys as ?api_key=').check();
  await card.getByRole('button', { name: 'Save gateway policy' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'gateway policy' })).toHaveText("Loans's gateway policy is saved.");
  await expect(card.getByTestId('product-rate-limit')).toHaveText('600 requests/minute');
  await expect(card).toContainText('accepted as ?api_key= (never forwarded)');
  await card.scrollIntoViewIfNeeded();
  await shot(page, '10b-product-policy');

  // A bad document is refused with a message that says why, and changes nothing.
  await card.getByText('Import an OpenAPI 3 document').click();
  await card.getByLabel('OpenAPI document for Loans').fill("swagger: '2.0'\npaths: {}");
  await card.getByRole('button', { name: 'Import' }).click();
  await expect(page.getByRole('alert')).toContainText(/OpenAPI 3/);
  await expect(endpoints.locator('tbody tr')).toHaveCount(4);

  // Developers find the new product in the catalog.
  const dev = await page.context().browser()!.newContext();
  const devPage = await dev.newPage();
  await signUp(devPage, uniqueEmail('reader'));
  await open(devPage, '/catalog');
  await expect(devPage.getByTestId('product-loans')).toContainText('/loans/{loanId}');
  await dev.close();
});

test('a developer creates a personal access token, shown once', async ({ page }) => {
  await signUp(page, uniqueEmail('scripter'));
  await open(page, '/tokens');
  await page.getByLabel('Name').fill('CI pipeline');
  // Every area starts at Read: a token changes nothing unless someone chose so.
  for (const area of ['clients', 'catalog', 'grants', 'audit', 'reviews', 'users', 'tokens']) {
    await expect(page.getByTestId(`scope-${area}`)).toHaveValue('read');
  }
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = (await page.getByTestId('secret-value').textContent()) ?? '';
  expect(token).toMatch(/^pcp_/);
  await expect(page.getByTestId('token-scopes')).toContainText('Read only');
  // The same token configures an agent for the Management MCP.
  await expect(page.getByTestId('secret-box')).toContainText('/mcp/manage');
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
  const whoami = await page.request.post('/mcp/manage', {
    headers: { Authorization: `Bearer ${token}`, 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'whoami' },
    data: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {}, _meta: meta } },
  });
  expect(whoami.status()).toBe(200);
  expect((await whoami.json()).result.structuredContent.scopes).toContain('clients:read');
  await expect(page.getByRole('row', { name: /CI pipeline/ })).toContainText('Active');
  await expect(page.getByRole('row', { name: /CI pipeline/ })).toContainText('Read only');
  await shot(page, '11-tokens');
  const me = await page.request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect(me.status()).toBe(200);
  // It reads, and is refused any change with the scope it lacks.
  const write = await page.request.post('/api/v1/clients', {
    headers: { Authorization: `Bearer ${token}` },
    data: { name: 'Not through a read-only token', kind: 'ai_agent' },
  });
  expect(write.status()).toBe(403);
  expect((await write.json()).code).toBe('insufficient_scope');
  expect(write.headers()['www-authenticate']).toContain('scope="clients:write"');

  // One that may change clients but not read the audit trail.
  await page.getByLabel('Name').fill('Onboarding bot');
  await page.getByTestId('scope-clients').selectOption('write');
  await page.getByTestId('scope-audit').selectOption('none');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByTestId('token-scopes')).toContainText('clients:write, catalog:read');
  const bot = (await page.getByTestId('secret-value').textContent()) ?? '';
  const made = await page.request.post('/api/v1/clients', {
    headers: { Authorization: `Bearer ${bot}` },
    data: { name: 'Made by the onboarding bot', kind: 'ai_agent' },
  });
  expect(made.status()).toBe(201);
  const audit = await page.request.get('/api/v1/audit', { headers: { Authorization: `Bearer ${bot}` } });
  expect(audit.status()).toBe(403);
  await expect(page.getByRole('row', { name: /Onboarding bot/ })).not.toContainText('audit:read');
  await page.reload();
  expect(await page.content()).not.toContain(token);
  await page.getByRole('row', { name: /CI pipeline/ }).getByRole('button', { name: 'Revoke' }).click();
  await page.getByRole('dialog', { name: 'Revoke the token CI pipeline?' }).getByRole('button', { name: 'Confirm revoke' }).click();
  await expect(page.getByRole('status')).toContainText('Token revoked');
  await expect(page.getByRole('row', { name: /CI pipeline/ })).toContainText('Revoked');
  const after = await page.request.get('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } });
  expect(after.status()).toBe(401);
});

test('an admin suspends a client and disables its owner; the gateway follows at once', async ({ page, browser }) => {
  // A developer's agent with an API key for Accounts.
  const devContext = await browser.newContext();
  const dev = await devContext.newPage();
  const owner = uniqueEmail('owner');
  await signUp(dev, owner);
  await open(dev, '/clients/new');
  await dev.getByLabel('Name').fill('Night batch agent');
  await dev.getByRole('button', { name: 'Register' }).click();
  await expect(dev).toHaveURL(/\/clients\/cl_[A-Za-z0-9_-]+$/);
  const clientUrl = dev.url();
  await open(dev, '/catalog');
  const accounts = dev.getByTestId('product-accounts');
  await accounts.getByRole('combobox').selectOption({ label: 'Night batch agent — Sandbox' });
  await accounts.getByRole('button', { name: 'Request access' }).click();
  await expect(accounts.getByRole('status')).toContainText('Granted');
  await open(dev, new URL(clientUrl).pathname);
  await dev.getByRole('button', { name: 'Issue API key' }).click();
  const key = (await dev.getByTestId('secret-value').textContent()) ?? '';
  const call = () => dev.request.get('/gw/accounts/accounts', { headers: { 'X-API-Key': key } });
  expect((await call()).status()).toBe(200);

  // The admin suspends the client from its page, with a reason.
  const admin = uniqueEmail('warden');
  createUserWithCli(admin, 'admin');
  await signIn(page, admin);
  await open(page, new URL(clientUrl).pathname);
  const suspend = page.getByTestId('suspend-form');
  await suspend.getByLabel('Reason for the suspension').fill('Key seen in a public repository');
  await suspend.getByRole('button', { name: 'Suspend client' }).click();
  await expect(page.getByTestId('suspended')).toBeVisible();
  await shot(page, '12-client-suspended');
  const refused = await call();
  expect(refused.status()).toBe(403);
  expect((await refused.json()).code).toBe('client_suspended');
  await page.getByTestId('suspend-form').getByLabel('Reason for the suspension').fill('Key rotated');
  await page.getByRole('button', { name: 'Resume client' }).click();
  await expect(page.getByTestId('suspended')).toHaveCount(0);
  expect((await call()).status()).toBe(200);

  // Then disables the owner on the People page: their clients stop too.
  await open(page, '/admin/users');
  const row = page.getByTestId(`person-${owner}`);
  await row.getByLabel('Reason').fill('Left the company');
  await row.getByRole('button', { name: 'Disable' }).click();
  await expect(page.getByRole('status')).toContainText(`${owner} is disabled`);
  await expect(page.getByTestId(`person-${owner}`)).toContainText('disabled');
  // The list reorders; a reason typed for one person never lands in another's row.
  const reasons = await page.locator('input[name="reason"]').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
  expect(reasons.filter((v) => v === 'Left the company')).toEqual([]);
  await shot(page, '13-people-disabled');
  const stopped = await call();
  expect(stopped.status()).toBe(403);
  expect((await stopped.json()).code).toBe('owner_disabled');
  await page.getByTestId(`person-${owner}`).getByLabel('Reason').fill('Came back');
  await page.getByTestId(`person-${owner}`).getByRole('button', { name: 'Enable' }).click();
  await expect(page.getByRole('status')).toContainText(`${owner} is active again`);
  expect((await call()).status()).toBe(200);
  await devContext.close();
});

test('an admin requires DPoP for a profile: its API key stops, Test access proves a key, the trail names it', async ({ page, browser }) => {
  const { devContext, clientUrl, call } = await agentWithApiKey(browser, 'dpop-owner', 'Key-bound agent');

  const admin = uniqueEmail('dpop-admin');
  createUserWithCli(admin, 'admin');
  await signIn(page, admin);
  await open(page, clientUrl);
  const sandbox = page.getByTestId('profile-sandbox');
  await expect(sandbox.getByTestId('sender-constraint')).toHaveText('none (bearer tokens and API keys)');
  const form = sandbox.getByTestId('sender-constraint-form');
  await form.getByLabel('Sender-constrained tokens').selectOption({ label: 'DPoP-bound tokens only' });
  await form.getByRole('button', { name: 'Save sender constraint' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Sender constraint saved' })).toBeVisible();
  await expect(sandbox.getByTestId('sender-constraint')).toHaveText('DPoP-bound tokens only');
  await expect(sandbox.getByTestId('dpop-required')).toContainText('Authorization: DPoP <token>');
  await expect(page.getByTestId('token-howto-dpop')).toBeVisible();
  // The API key stays in the list, saying the profile refuses it; the client secret does not.
  await expect(sandbox.getByTestId('credentials').getByTestId('refused-by-policy')).toHaveCount(1);
  await expect(sandbox.getByTestId('credentials').getByRole('row', { name: /API key/ })).toContainText('refused: DPoP only');

  const refused = await call();
  expect(refused.status()).toBe(401);
  expect(refused.headers()['www-authenticate']).toContain('DPoP');
  expect((await refused.json()).code).toBe('sender_constraint_required');

  // Test access still works: the portal proves possession of a key it makes for it.
  const panel = sandbox.getByTestId('test-access');
  await panel.getByText('Test access').click();
  await panel.getByRole('button', { name: 'Run' }).click();
  await expect(panel.getByTestId('test-result')).toContainText('allowed');
  const recent = page.getByTestId('recent-requests');
  await expect(recent.getByRole('row', { name: /GET \/gw\/accounts\/accounts/ }).first().getByTestId('proof-badge')).toHaveText('DPoP');
  await sandbox.scrollIntoViewIfNeeded();
  await shot(page, '40-profile-requires-dpop');

  // The client's activity counts the requests that proved a key.
  await open(page, `${clientUrl}/activity`);
  await expect(page.getByTestId('credentials-used').getByTestId('dpop-requests')).toHaveText('1 DPoP');
  await open(page, clientUrl);
  await page.getByTestId('profile-sandbox').getByTestId('test-access').getByText('Test access').click();
  await page.getByTestId('profile-sandbox').getByTestId('test-access').getByRole('button', { name: 'Run' }).click();

  // The audit event names the key the call proved.
  await panel.getByTestId('test-audit-link').click();
  await expect(page.getByTestId('event-sender-key')).toContainText(/^dpop:[A-Za-z0-9_-]{43}$/);
  await shot(page, '41-audit-event-proven-key');
  await devContext.close();
});

test('an admin requires certificate-bound tokens (mTLS): the profile says how, its API key and bearer tokens stop', async ({ page, browser }) => {
  const { devContext, clientUrl, call } = await agentWithApiKey(browser, 'mtls-owner', 'Certificate-bound agent');

  const admin = uniqueEmail('mtls-admin');
  createUserWithCli(admin, 'admin');
  await signIn(page, admin);
  await open(page, clientUrl);
  const sandbox = page.getByTestId('profile-sandbox');
  const form = sandbox.getByTestId('sender-constraint-form');
  await form.getByLabel('Sender-constrained tokens').selectOption({ label: 'certificate-bound tokens only (mTLS)' });
  await form.getByRole('button', { name: 'Save sender constraint' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Sender constraint saved' })).toBeVisible();
  await expect(sandbox.getByTestId('sender-constraint')).toHaveText('certificate-bound tokens only (mTLS)');
  await expect(sandbox.getByTestId('mtls-required')).toContainText('curl --cert agent.pem --key agent.key');
  await expect(page.getByTestId('token-howto-mtls')).toBeVisible();
  await expect(page.getByTestId('token-howto')).toContainText('curl -s --cert agent.pem --key agent.key -u');
  await expect(sandbox.getByTestId('credentials').getByRole('row', { name: /API key/ })).toContainText('refused: mTLS only');

  const refused = await call();
  expect(refused.status()).toBe(401);
  const problem = await refused.json();
  expect(problem.code).toBe('sender_constraint_required');
  expect(problem.detail).toContain('certificate-bound');

  // Test access cannot hold the agent's certificate: it says so instead of failing obscurely.
  const panel = sandbox.getByTestId('test-access');
  await panel.getByText('Test access').click();
  await panel.getByRole('button', { name: 'Run' }).click();
  await expect(panel.getByRole('alert')).toContainText("bound to the agent's TLS client certificate");
  await sandbox.scrollIntoViewIfNeeded();
  await shot(page, '44-profile-requires-mtls');
  await devContext.close();
});
