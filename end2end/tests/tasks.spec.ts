import { test, expect } from '@playwright/test';
import { createUserWithCli, open, shot, signIn, signUp, uniqueEmail } from './support';

// A per-task token (RFC 9396 authorization_details, type portcullis_task): the developer
// finds how to ask for one on the client page, the agent gets one for a single endpoint
// and a single call, and the security team follows the task through the audit trail by
// its id, from the token request to the refused second call.
test('an agent works one task with a token for one endpoint and one call; security follows the task', async ({ page, browser }) => {
  await signUp(page, uniqueEmail('task-dev'));
  await open(page, '/clients/new');
  await page.getByLabel('Name').fill('Triage agent');
  await page.getByRole('button', { name: 'Register' }).click();
  const secret = (await page.getByTestId('secret-value').textContent()) ?? '';
  const clientId = (await page.getByTestId('client-id').textContent()) ?? '';
  await open(page, '/catalog');
  const accounts = page.getByTestId('product-accounts');
  await accounts.getByRole('combobox').selectOption({ label: 'Triage agent — Sandbox' });
  await accounts.getByRole('button', { name: 'Request access' }).click();
  await expect(accounts.getByRole('status')).toContainText('Granted');

  await open(page, `/clients/${clientId}`);
  const connect = page.getByTestId('connect-agent').first();
  await connect.getByText('Connect an agent (MCP)').click();
  const snippet = connect.getByTestId('task-token-snippet');
  await expect(snippet).toContainText('"type": "portcullis_task"');
  await expect(snippet).toContainText(`-u '${clientId}:<client secret>'`);
  await expect(snippet).toContainText('/oauth/token | jq -r .access_token');
  await snippet.scrollIntoViewIfNeeded();
  await shot(page, '45-task-token-how-to');

  // The agent lists its endpoints (as MCP shows them) to name the one its task needs.
  const tokenFor = async (extra: Record<string, string>) => {
    const res = await page.request.post('/oauth/token', {
      form: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret, ...extra },
    });
    return { status: res.status(), body: await res.json() };
  };
  const plain = (await tokenFor({})).body.access_token;
  const listed = await page.request.post('/mcp', {
    headers: {
      Authorization: `Bearer ${plain}`, 'Content-Type': 'application/json', 'MCP-Protocol-Version': '2026-07-28',
      'Mcp-Method': 'tools/call', 'Mcp-Name': 'list_endpoints', Accept: 'application/json',
    },
    data: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_endpoints', arguments: {},
      _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } } },
  });
  const endpoints = (await listed.json()).result.structuredContent.endpoints as { id: string; method: string; path: string }[];
  const list = endpoints.find((e) => e.method === 'GET' && e.path === '/accounts');
  expect(list, JSON.stringify(endpoints)).toBeTruthy();

  const task = `triage-${Date.now()}`;
  const details = JSON.stringify([{ type: 'portcullis_task', task_id: task, endpoints: [list!.id], max_uses: 1, expires_in: 120 }]);
  const issued = await tokenFor({ authorization_details: details });
  expect(issued.status, JSON.stringify(issued.body)).toBe(200);
  const auth = { Authorization: `Bearer ${issued.body.access_token}` };
  expect((await page.request.get('/gw/accounts/accounts', { headers: auth })).status()).toBe(200);
  const second = await page.request.get('/gw/accounts/accounts', { headers: auth });
  expect(second.status()).toBe(401);
  expect((await second.json()).code).toBe('task_uses_exhausted');

  // Security searches by the task id and follows one event back to the whole task.
  const security = uniqueEmail('task-security');
  createUserWithCli(security, 'security');
  const sec = await (await browser.newContext()).newPage();
  await signIn(sec, security);
  await open(sec, '/audit');
  const filters = sec.getByTestId('audit-filters');
  await filters.getByLabel('Task ID').fill(task);
  await filters.getByRole('button', { name: 'Search' }).click();
  await expect(sec).toHaveURL(new RegExp(`task=${task}`));
  const rows = sec.getByTestId('audit-results').locator('tbody tr');
  await expect(rows).toHaveCount(3);
  await expect(rows.filter({ hasText: 'task_uses_exhausted' })).toHaveCount(1);
  await expect(rows.filter({ hasText: 'POST /oauth/token' })).toHaveCount(1);
  await shot(sec, '46-audit-by-task');
  await rows.filter({ hasText: 'task_uses_exhausted' }).getByRole('link').first().click();
  await expect(sec.getByTestId('event-task')).toContainText(task);
  await sec.getByTestId('event-task').getByRole('link', { name: 'every request of this task' }).click();
  await expect(sec.getByTestId('audit-results').locator('tbody tr')).toHaveCount(3);

  // The client's activity page lists the task.
  await open(sec, `/clients/${clientId}/activity`);
  const tasks = sec.locator('section.card', { has: sec.getByRole('heading', { name: 'Tasks (per-task tokens)' }) });
  await expect(tasks.getByRole('row')).toHaveCount(1);
  await expect(tasks.getByRole('row')).toContainText(task);
});
