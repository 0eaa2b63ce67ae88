import { test, expect, Page } from '@playwright/test';
import { createUserWithCli, open, shot, signIn, signUp, uniqueEmail } from './support';

// One story, in order: a developer onboards an agent, an admin approves production
// access, the developer rotates and revokes, and another developer is kept out.
test.describe.serial('a developer onboards an AI agent', () => {
  const developer = uniqueEmail('dev');
  const admin = uniqueEmail('admin');
  let clientUrl = '';
  let secret = '';
  let clientId = '';
  let page: Page;

  test.beforeAll(async ({ browser }) => {
    page = await browser.newPage();
  });

  test('signs up and registers an agent, and sees the secret exactly once', async () => {
    await open(page, '/');
    await shot(page, '01-home');
    await signUp(page, developer);
    await expect(page.getByText('You have not registered a client yet.')).toBeVisible();
    await shot(page, '02-clients-empty');

    await page.getByRole('link', { name: 'Register a client' }).first().click();
    await expect(page).toHaveURL(/\/clients\/new$/);
    await page.getByLabel('Name').fill('Support triage agent');
    await page.getByLabel('Kind').selectOption('ai_agent');
    await page.getByLabel('Description').fill('Reads accounts to triage support tickets.');
    await page.getByRole('button', { name: 'Register' }).click();

    // The form leads to the new client's page, which shows the secret once, above it.
    await expect(page).toHaveURL(/\/clients\/cl_[A-Za-z0-9_-]+$/);
    const box = page.getByTestId('secret-box');
    await expect(box).toBeVisible();
    secret = (await page.getByTestId('secret-value').textContent()) ?? '';
    expect(secret).toMatch(/^pcs_[A-Za-z0-9_-]{43}$/);
    await expect(page.getByTestId('client-id')).toHaveText(/^cl_/);
    clientId = (await page.getByTestId('client-id').textContent()) ?? '';
    await box.getByRole('button', { name: 'Copy' }).last().click();
    await expect(box.getByRole('button', { name: 'Copied' })).toBeVisible();
    await shot(page, '03-secret-once');

    await expect(page.getByRole('heading', { level: 1 })).toContainText('Support triage agent');
    clientUrl = page.url();
    await expect(page.getByTestId('profile-sandbox')).toBeVisible();
    await page.reload();
    await expect(page.getByTestId('profile-sandbox')).toBeVisible();
    expect(await page.content()).not.toContain(secret);
    await shot(page, '04-client');
  });

  test('requests a sandbox product and it is granted at once', async () => {
    await open(page, '/catalog');
    const accounts = page.getByTestId('product-accounts');
    await expect(accounts.getByRole('cell', { name: '/accounts/{id}', exact: true })).toBeVisible();
    await accounts.getByRole('combobox').selectOption({ label: 'Support triage agent — Sandbox' });
    await accounts.getByRole('button', { name: 'Request access' }).click();
    await expect(accounts.getByRole('status')).toContainText('Granted to Support triage agent (Sandbox)');
    await shot(page, '05-catalog');
  });

  test('the agent gets a token with its own secret, calls the gateway, and the call shows on its page', async () => {
    const tokenRes = await page.request.post('/oauth/token', {
      form: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret },
    });
    expect(tokenRes.status()).toBe(200);
    const { access_token: token, scope } = await tokenRes.json();
    expect(scope).toBe('read');
    const call = await page.request.get('/gw/accounts/accounts', { headers: { Authorization: `Bearer ${token}` } });
    expect(call.status()).toBe(200);
    expect((await call.json()).data[0].id).toBe('acc-1001');
    const refused = await page.request.get('/gw/payments/payments', { headers: { Authorization: `Bearer ${token}` } });
    expect(refused.status()).toBe(403);

    await open(page, clientUrl);
    await expect(page.getByTestId('token-howto')).toContainText(clientId);
    await expect(page.getByTestId('token-howto')).toContainText('http://127.0.0.1:3100/oauth/token');
    await expect(page.getByTestId('token-howto')).not.toContainText(secret);
    const recent = page.getByTestId('recent-requests');
    await expect(recent.getByRole('row', { name: /GET \/gw\/accounts\/accounts/ })).toContainText('allowed');
    await expect(recent.getByRole('row', { name: /GET \/gw\/payments\/payments/ })).toContainText('not_granted');
    await expect(recent.getByRole('row', { name: /POST \/oauth\/token/ })).toContainText('allowed');
    await recent.scrollIntoViewIfNeeded();
    await shot(page, '04b-recent-requests');
  });

  test('tests access from the profile page with the profile\'s own credential', async () => {
    await open(page, clientUrl);
    const panel = page.getByTestId('profile-sandbox').getByTestId('test-access');
    await panel.getByText('Test access').click();
    await panel.getByLabel('Gateway path').fill('/gw/accounts/accounts/acc-1001');
    await panel.getByRole('button', { name: 'Run' }).click();
    const result = panel.getByTestId('test-result');
    await expect(result).toContainText('allowed');
    // The answer is the page again, scrolled to the Test access it came from.
    await expect(page).toHaveURL(/\/clients\/cl_[A-Za-z0-9_-]+#test-pf_[A-Za-z0-9_-]+$/);
    await expect(page.locator(':target')).toHaveAttribute('data-testid', 'test-access');
    await expect(result).toBeInViewport();
    // The form asks the same again; the answer says what was run.
    await expect(panel.getByLabel('Gateway path')).toHaveValue('/gw/accounts/accounts/acc-1001');
    await expect(result).toContainText('200');
    await expect(result).toContainText('Ada Lovelace');
    await expect(result).toContainText(/limit 20, remaining \d+/);
    await shot(page, '04c-test-access');

    await panel.getByLabel('Method').selectOption('POST');
    await panel.getByLabel('Gateway path').fill('/gw/accounts/accounts');
    await panel.getByRole('button', { name: 'Run' }).click();
    await expect(result).toContainText('insufficient_scope');
    await expect(result).toContainText('403');

    // The developer opens the audit event of that very request.
    const requestId = (await result.locator('dd.mono').first().textContent()) ?? '';
    await result.getByTestId('test-audit-link').click();
    await expect(page.getByTestId('event-request-id')).toHaveText(requestId);
    await expect(page.getByTestId('event-decision')).toHaveText('refused (insufficient_scope)');
    await expect(page.getByTestId('event-status')).toHaveText('403');
    await shot(page, '04f-test-access-audit-event');
  });

  test('connects an agent over MCP with the settings the profile page shows', async () => {
    await open(page, clientUrl);
    const panel = page.getByTestId('profile-sandbox').getByTestId('connect-agent');
    await panel.getByText('Connect an agent (MCP)').click();
    const url = (await panel.getByTestId('mcp-url').textContent()) ?? '';
    expect(url).toBe('http://127.0.0.1:3100/mcp');
    const snippet = panel.getByTestId('mcp-servers-snippet');
    await expect(snippet).toContainText(clientId);
    await expect(snippet).toContainText('"Authorization": "Bearer ${PORTCULLIS_TOKEN}"');
    await expect(panel).not.toContainText(secret);
    const config = JSON.parse((await snippet.textContent()) ?? '{}');
    const server = config.mcpServers['portcullis-sandbox'];
    expect(server.url).toBe(url);
    await panel.scrollIntoViewIfNeeded();
    await shot(page, '04d-connect-agent');

    // An agent configured from the snippet: a token, then the MCP handshake and a tool call.
    const tokenRes = await page.request.post('/oauth/token', {
      form: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret },
    });
    const { access_token: token } = await tokenRes.json();
    const headers = { ...server.headers, Authorization: `Bearer ${token}`, Accept: 'application/json, text/event-stream' };
    const init = await page.request.post(url, {
      headers,
      data: { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'e2e', version: '1' } } },
    });
    expect(init.status()).toBe(200);
    const session = init.headers()['mcp-session-id'];
    const call = await page.request.post(url, {
      headers: { ...headers, 'Mcp-Session-Id': session, 'MCP-Protocol-Version': '2025-11-25' },
      data: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'list_collections', arguments: {} } },
    });
    const collections = (await call.json()).result.structuredContent.collections;
    expect(collections.map((c: { collection: string }) => c.collection)).toEqual(['accounts']);

    // The batch writer stores the call's row a moment after its answer: reload until it shows.
    const recent = page.getByTestId('recent-requests');
    await expect(async () => {
      await page.reload();
      await expect(recent.getByRole('row', { name: /list_collections/ })).toContainText('mcp', { timeout: 1000 });
    }).toPass({ timeout: 10_000 });
    await recent.scrollIntoViewIfNeeded();
    await shot(page, '04e-recent-mcp');
  });

  test('adds a production profile and requests a product, which waits for approval', async () => {
    await open(page, clientUrl);
    await page.getByRole('button', { name: 'Add production profile' }).click();
    await page.getByRole('button', { name: 'Confirm and add' }).click();
    await expect(page.getByTestId('secret-box')).toContainText('Production profile');
    await expect(page.getByTestId('profile-production')).toBeVisible();

    await open(page, '/catalog');
    const payments = page.getByTestId('product-payments');
    await payments.getByRole('combobox').selectOption({ label: 'Support triage agent — Production' });
    await payments.getByPlaceholder(/Required for production/).fill('Refund status lookups for support');
    await payments.getByRole('button', { name: 'Request access' }).click();
    await expect(payments.getByRole('status')).toContainText('An admin will review it');

    await open(page, clientUrl);
    const prod = page.getByTestId('profile-production');
    await expect(prod.getByTestId('grants')).toContainText('pending');
  });

  test('an admin approves the production request with a reason', async ({ browser }) => {
    createUserWithCli(admin, 'admin');
    const context = await browser.newContext();
    const adminPage = await context.newPage();
    await signIn(adminPage, admin);
    await open(adminPage, '/admin/approvals');
    const row = adminPage.getByTestId('pending').getByRole('row', { name: /Support triage agent/ });
    await expect(row).toContainText('Refund status lookups for support');
    await shot(adminPage, '06-approvals');
    await expect(row).toContainText('Production');
    await expect(adminPage.getByRole('link', { name: /^Approvals, \d+ waiting$/ })).toBeVisible();
    await expect(adminPage.getByTestId('pending-count')).toHaveText(/^[1-9]\d*$/);
    await row.getByLabel(/^Reason for the decision/).fill('Read-only, reviewed with Payments');
    await row.getByLabel('Approve for').fill('30');
    await row.getByRole('button', { name: 'Approve' }).click();
    await expect(adminPage.getByRole('status')).toContainText('Payments for Support triage agent (production): approved, until');
    await expect(adminPage.getByText('No requests are waiting.')).toBeVisible();
    // The count beside Approvals follows the decision without a reload.
    await expect(adminPage.getByTestId('pending-count')).toHaveCount(0);
    await context.close();

    await open(page, clientUrl);
    const grants = page.getByTestId('profile-production').getByTestId('grants');
    await expect(grants).toContainText('approved');
    await expect(grants).toContainText(admin);
    await expect(grants).toContainText('Read-only, reviewed with Payments');
  });

  test('rotates the sandbox secret (old one in grace) and revokes it', async () => {
    await open(page, clientUrl);
    const sandbox = page.getByTestId('profile-sandbox');
    await sandbox.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm rotation' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'client secret is rotated' })).toBeVisible();
    const fresh = (await page.getByTestId('secret-value').textContent()) ?? '';
    expect(fresh).toMatch(/^pcs_/);
    expect(fresh).not.toEqual(secret);
    const rows = sandbox.getByTestId('credentials').locator('tbody tr');
    await expect(rows).toHaveCount(2);
    const old = rows.filter({ hasText: secret.slice(0, 12) });
    await expect(old).toContainText('Grace period');
    await expect(old).toContainText('grace until');
    await shot(page, '07-rotated');

    await old.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm revoke' }).click();
    await expect(page.getByRole('status').filter({ hasText: 'Credential revoked' })).toBeVisible();
    await expect(old).toContainText('Revoked');
    await expect(old.getByRole('button', { name: 'Revoke' })).toHaveCount(0);
    await shot(page, '08-revoked');
  });

  test('another developer cannot open the client by its URL', async ({ browser }) => {
    const context = await browser.newContext();
    const other = await context.newPage();
    await signUp(other, uniqueEmail('mallory'));
    const answer = await other.goto(clientUrl.replace(/^https?:\/\/[^/]+/, ''));
    expect(answer!.status(), 'a real 404, not a page that says so').toBe(404);
    await expect(other.locator('body')).toHaveAttribute('data-hydrated', 'true');
    await expect(other.getByRole('heading', { name: 'Not found' })).toBeVisible();
    await expect(other.getByRole('alert')).toHaveText('There is nothing here, or it belongs to someone else.');
    await expect(other.getByText('Support triage agent')).toHaveCount(0);
    await shot(other, '09-not-yours');
    await other.getByRole('link', { name: 'Back to your clients' }).click();
    await expect(other).toHaveURL(/\/clients$/);
    await context.close();
  });
});
