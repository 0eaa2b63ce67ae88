import { test, expect, Page } from '@playwright/test';
import { open, shot, signUp, uniqueEmail } from './support';

// What cannot be undone asks first, and every act says what happened. The question is
// an HTML popover, so it works as a plain form post without JavaScript too.

/** A developer's agent with Accounts in sandbox; answers its page's path. */
async function agentWithAccounts(page: Page, name: string): Promise<string> {
  await signUp(page, uniqueEmail('careful'));
  await open(page, '/clients/new');
  await page.getByLabel('Name').fill(name);
  await page.getByRole('button', { name: 'Register' }).click();
  const clientId = (await page.getByTestId('client-id').textContent()) ?? '';
  expect(clientId).toMatch(/^cl_/);
  await open(page, '/catalog');
  const accounts = page.getByTestId('product-accounts');
  await accounts.getByRole('combobox').selectOption({ label: `${name} — Sandbox` });
  await accounts.getByRole('button', { name: 'Request access' }).click();
  await expect(accounts.getByRole('status')).toContainText('Granted');
  return `/clients/${clientId}`;
}

async function issueApiKey(page: Page): Promise<string> {
  await page.getByTestId('profile-sandbox').getByRole('button', { name: 'Issue API key' }).click();
  const key = (await page.getByTestId('secret-value').textContent()) ?? '';
  expect(key).toMatch(/^pck_/);
  return key;
}

test('revoking a credential asks first: cancel keeps it working, confirm revokes it and says so', async ({ page }) => {
  const clientUrl = await agentWithAccounts(page, 'Careful revocation agent');
  await open(page, clientUrl);
  const key = await issueApiKey(page);
  const call = async () => (await page.request.get('/gw/accounts/accounts', { headers: { 'X-API-Key': key } })).status();
  expect(await call()).toBe(200);

  const row = page.getByTestId('profile-sandbox').getByTestId('credentials').locator('tbody tr', { hasText: key.slice(0, 12) });
  const dialog = page.getByRole('dialog', { name: /^Revoke the API key pck_/ });
  await row.getByRole('button', { name: 'Revoke' }).click();
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('This cannot be undone');
  await shot(page, '30-revoke-asks-first');

  // Cancel, and Escape, leave it as it was.
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  await row.getByRole('button', { name: 'Revoke' }).click();
  await expect(dialog).toBeVisible();
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(row).toContainText('Active');
  expect(await call()).toBe(200);

  await row.getByRole('button', { name: 'Revoke' }).click();
  await dialog.getByRole('button', { name: 'Confirm revoke' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Credential revoked' })).toBeVisible();
  await expect(row).toContainText('Revoked');
  await expect(row.getByRole('button', { name: 'Revoke' })).toHaveCount(0);
  expect(await call()).toBe(401);
  await shot(page, '31-revoked-says-so');
});

test('rotating a secret and adding a production profile ask first, then say what happened', async ({ page }) => {
  const clientUrl = await agentWithAccounts(page, 'Careful rotation agent');
  await open(page, clientUrl);
  const sandbox = page.getByTestId('profile-sandbox');
  const credentials = sandbox.getByTestId('credentials').locator('tbody tr');
  await expect(credentials).toHaveCount(1);

  await sandbox.getByRole('button', { name: 'Rotate secret' }).click();
  const rotate = page.getByRole('dialog', { name: 'Rotate the sandbox client secret?' });
  await expect(rotate).toContainText('grace period');
  await rotate.getByRole('button', { name: 'Cancel' }).click();
  await expect(rotate).toBeHidden();
  await expect(credentials).toHaveCount(1);
  await expect(page.getByTestId('secret-box')).toHaveCount(0);

  await sandbox.getByRole('button', { name: 'Rotate secret' }).click();
  await rotate.getByRole('button', { name: 'Confirm rotation' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'The sandbox client secret is rotated' })).toBeVisible();
  await expect(page.getByTestId('secret-value')).toHaveText(/^pcs_/);
  await expect(credentials).toHaveCount(2);
  await expect(credentials.filter({ hasText: 'Grace period' })).toHaveCount(1);

  await page.getByRole('button', { name: 'Add production profile' }).click();
  const add = page.getByRole('dialog', { name: 'Add a production profile?' });
  await expect(add).toContainText('cannot be removed');
  await add.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('profile-production')).toHaveCount(0);
  await page.getByRole('button', { name: 'Add production profile' }).click();
  await add.getByRole('button', { name: 'Confirm and add' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'The production profile is added' })).toBeVisible();
  await expect(page.getByTestId('profile-production')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Add production profile' })).toHaveCount(0);
});

test('without JavaScript, revoke still asks first and the confirmation posts as a plain form', async ({ browser }) => {
  const withJs = await browser.newContext();
  const page = await withJs.newPage();
  const clientUrl = await agentWithAccounts(page, 'Careful plain-form agent');
  await open(page, clientUrl);
  const key = await issueApiKey(page);

  const plain = await browser.newContext({ javaScriptEnabled: false, storageState: await withJs.storageState() });
  const nojs = await plain.newPage();
  await nojs.goto(clientUrl);
  const row = nojs.getByTestId('profile-sandbox').getByTestId('credentials').locator('tbody tr', { hasText: key.slice(0, 12) });
  await row.getByRole('button', { name: 'Revoke' }).click();
  const dialog = nojs.getByRole('dialog', { name: /^Revoke the API key/ });
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  await expect(row).toContainText('Active');

  await row.getByRole('button', { name: 'Revoke' }).click();
  await dialog.getByRole('button', { name: 'Confirm revoke' }).click();
  await expect(nojs).toHaveURL(new RegExp(`${clientUrl}\\??$`));
  await expect(row).toContainText('Revoked');
  expect((await nojs.request.get('/gw/accounts/accounts', { headers: { 'X-API-Key': key } })).status()).toBe(401);
  // No Copy button sits there doing nothing without JavaScript: the snippets are text to select.
  await expect(nojs.getByRole('button', { name: 'Copy' })).toHaveCount(0);
  await expect(nojs.getByTestId('token-howto').locator('pre')).toContainText('/oauth/token');
  await plain.close();
  await withJs.close();
});

test('a form posts once: a second press while the first is on its way issues nothing', async ({ page }) => {
  const clientUrl = await agentWithAccounts(page, 'Impatient agent');
  await open(page, clientUrl);
  // The answer opens in another window, so this page stays to be pressed again, as a
  // page on a slow link stays while its post is on its way.
  const issue = page.getByTestId('profile-sandbox').getByRole('button', { name: 'Issue API key' });
  await issue.locator('xpath=ancestor::form').evaluate((f: HTMLFormElement) => { f.target = 'answer'; });
  let posts = 0;
  page.context().on('request', (r) => { if (r.url().endsWith('/api/issue_api_key')) posts += 1; });
  const answer = page.waitForEvent('popup');
  await issue.click();
  await expect(issue).toBeDisabled();
  await issue.click({ force: true });
  await expect((await answer).getByRole('status').filter({ hasText: 'An API key is issued' })).toBeVisible();
  expect(posts).toBe(1);
  await page.reload();
  const keys = page.getByTestId('profile-sandbox').getByTestId('credentials').getByRole('row', { name: /API key/ });
  await expect(keys).toHaveCount(1);
  await expect(page.getByTestId('profile-sandbox').getByRole('button', { name: 'Issue API key' })).toBeEnabled();
});

test('an issued API key shows how to send it; the snippets copy; Test access refreshes Recent requests', async ({ page, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const clientUrl = await agentWithAccounts(page, 'Careful copying agent');
  await open(page, clientUrl);
  const key = await issueApiKey(page);
  await expect(page.getByRole('status').filter({ hasText: 'An API key is issued' })).toBeVisible();
  const curl = page.getByTestId('api-key-curl');
  await expect(curl).toContainText('X-API-Key: $PORTCULLIS_API_KEY');
  await expect(curl).toContainText(key);
  await shot(page, '32-api-key-how-to-send');

  // The snippet's own Copy button puts exactly the snippet on the clipboard.
  const block = page.locator('.code-block', { has: curl });
  await block.getByRole('button', { name: 'Copy' }).click();
  await expect(block.getByRole('button', { name: 'Copied' })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe((await curl.textContent()) ?? '');

  const connect = page.getByTestId('profile-sandbox').getByTestId('connect-agent');
  await connect.getByText('Connect an agent (MCP)').click();
  await connect.locator('.code-block', { has: page.getByTestId('mcp-servers-snippet') }).getByRole('button', { name: 'Copy' }).click();
  expect(JSON.parse(await page.evaluate(() => navigator.clipboard.readText())).mcpServers).toBeTruthy();

  // Test access: the page it answers with lists the call in Recent requests too.
  const recent = page.getByTestId('recent-requests');
  await expect(recent.getByRole('row', { name: /acc-1001/ })).toHaveCount(0);
  const panel = page.getByTestId('profile-sandbox').getByTestId('test-access');
  await panel.getByText('Test access').click();
  await panel.getByLabel('Gateway path').fill('/gw/accounts/accounts/acc-1001');
  await panel.getByRole('button', { name: 'Run' }).click();
  await expect(panel.getByTestId('test-result')).toContainText('allowed');
  await expect(recent.getByRole('row', { name: /GET \/gw\/accounts\/accounts\/acc-1001/ })).toContainText('allowed');
  // The answer stays in its panel, which the page opened and scrolled to.
  await expect(page.locator(':target')).toHaveAttribute('data-testid', 'test-access');
  await expect(panel.getByTestId('test-result')).toBeVisible();
});
