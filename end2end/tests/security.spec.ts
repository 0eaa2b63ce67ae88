import { test, expect, Page } from '@playwright/test';
import * as fs from 'node:fs';
import { createUserWithCli, open, shot, signIn, signUp, uniqueEmail } from './support';

/** `2026-11-23T10:14` in UTC, the form the search's time inputs take. */
function utcInput(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16);
}

// The security team's day: a developer's agent makes calls, some refused; security
// finds exactly those calls, opens one, exports them, looks at the agent's activity
// and the dashboard, then revokes an unused credential in an access review.
test.describe.serial('the security team answers "what has this agent been doing?"', () => {
  const developer = uniqueEmail('ledger-dev');
  const security = uniqueEmail('security');
  let dev: Page;
  let sec: Page;
  let clientId = '';
  let secret = '';
  let apiKey = '';
  const started = Date.now();

  test.beforeAll(async ({ browser }) => {
    dev = await browser.newPage();
    sec = await (await browser.newContext({ acceptDownloads: true })).newPage();
  });

  test('a developer registers an agent that calls the gateway, once refused', async () => {
    await signUp(dev, developer);
    await open(dev, '/clients/new');
    await dev.getByLabel('Name').fill('Ledger reconciliation agent');
    await dev.getByLabel('Kind').selectOption('ai_agent');
    await dev.getByRole('button', { name: 'Register' }).click();
    secret = (await dev.getByTestId('secret-value').textContent()) ?? '';
    clientId = (await dev.getByTestId('client-id').textContent()) ?? '';
    expect(clientId).toMatch(/^cl_/);

    await open(dev, '/catalog');
    const accounts = dev.getByTestId('product-accounts');
    await accounts.getByRole('combobox').selectOption({ label: 'Ledger reconciliation agent — Sandbox' });
    await accounts.getByRole('button', { name: 'Request access' }).click();
    await expect(accounts.getByRole('status')).toContainText('Granted');

    // An API key it will never use: the access review should notice.
    await open(dev, `/clients/${clientId}`);
    await dev.getByRole('button', { name: 'Issue API key' }).click();
    apiKey = (await dev.getByTestId('secret-value').textContent()) ?? '';
    expect(apiKey).toMatch(/^pck_/);

    const token = await dev.request.post('/oauth/token', {
      form: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret },
    });
    const { access_token } = await token.json();
    const auth = { Authorization: `Bearer ${access_token}` };
    for (let i = 0; i < 3; i++) {
      expect((await dev.request.get('/gw/accounts/accounts', { headers: auth })).status()).toBe(200);
    }
    expect((await dev.request.get('/gw/payments/payments', { headers: auth })).status()).toBe(403);

    // Developers see their own activity, not the audit search.
    await open(dev, '/audit');
    await expect(dev.getByRole('alert')).toContainText('security or admin role');
  });

  test('security searches by client and time range and finds exactly those calls', async () => {
    createUserWithCli(security, 'security');
    await signIn(sec, security);
    await sec.getByRole('link', { name: 'Audit' }).click();
    await expect(sec.getByRole('heading', { level: 1 })).toHaveText('Audit trail');

    const filters = sec.getByTestId('audit-filters');
    await filters.getByLabel('Client ID').fill(clientId);
    await filters.getByLabel('Channel').selectOption('rest');
    await filters.getByLabel('From (UTC)').fill(utcInput(started - 60_000));
    await filters.getByRole('button', { name: 'Search' }).click();
    await expect(sec).toHaveURL(new RegExp(`client=${clientId}`));

    const rows = sec.getByTestId('audit-results').locator('tbody tr');
    await expect(rows).toHaveCount(4);
    await expect(rows.filter({ hasText: 'not_granted' })).toHaveCount(1);
    await expect(rows.filter({ hasText: 'GET /gw/accounts/accounts' })).toHaveCount(3);
    await expect(rows.first()).toContainText('Ledger reconciliation agent');
    await shot(sec, '20-audit-search');

    // The decision field offers the audit vocabulary, and searching by a reason from it
    // finds the refused call; the channel picker names the Management MCP too.
    const decision = filters.getByLabel('Decision or reason');
    await expect(sec.locator(`datalist#${await decision.getAttribute('list')} option[value="not_granted"]`)).toHaveCount(1);
    await expect(filters.getByLabel('Channel').locator('option', { hasText: 'Management MCP' })).toHaveCount(1);
    await decision.fill('not_granted');
    await filters.getByRole('button', { name: 'Search' }).click();
    await expect(sec).toHaveURL(/decision=not_granted/);
    await expect(rows).toHaveCount(1);
    await decision.fill('');
    await filters.getByRole('button', { name: 'Search' }).click();
    await expect(rows).toHaveCount(4);

    // The search is in the URL: reloading (or sharing it) gives the same rows.
    await sec.reload();
    await expect(rows).toHaveCount(4);
    await expect(filters.getByLabel('Client ID')).toHaveValue(clientId);

    const searched = sec.url();
    await rows.filter({ hasText: 'not_granted' }).getByRole('link').click();
    const event = sec.getByTestId('audit-event');
    await expect(event).toBeVisible();
    await expect(sec.getByTestId('event-status')).toHaveText('403');
    await expect(sec.getByTestId('event-decision')).toHaveText('refused (not_granted)');
    // The decision is said once on the page, not again in a badge beside the heading.
    await expect(sec.getByText('not_granted')).toHaveCount(1);
    // The W3C trace the request belonged to, to find it in the upstream's logs.
    await expect(sec.getByTestId('event-trace-id')).toHaveText(/^[0-9a-f]{32}$/);
    await expect(event).toContainText(clientId);
    await shot(sec, '21-audit-event');
    // The way back leads to the same search, page and filters.
    await sec.getByRole('link', { name: '← Back to the results' }).click();
    await expect(rows).toHaveCount(4);
    const filled = (url: string) => [...new URL(url).searchParams].filter(([, v]) => v !== '');
    expect(filled(sec.url())).toEqual(filled(searched));

    const download = sec.waitForEvent('download');
    await sec.getByTestId('export-csv').click();
    const file = await (await download).path();
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    expect(lines[0]).toMatch(/^id,occurred_at,request_id,channel/);
    expect(lines).toHaveLength(5);
    expect(lines.slice(1).every((l) => l.includes(clientId))).toBe(true);
    expect(lines.filter((l) => l.includes('not_granted'))).toHaveLength(1);
  });

  test("the agent's activity and the dashboard show the same story", async () => {
    await open(sec, `/clients/${clientId}/activity`);
    await expect(sec.getByTestId('activity-total')).toHaveText('5'); // 1 token + 4 gateway calls
    await expect(sec.getByTestId('activity-refused')).toHaveText('1');
    const chart = sec.getByTestId('activity-chart');
    await expect(chart.locator('svg')).toBeVisible();
    await expect(chart).toContainText('allowed (4)');
    await expect(chart).toContainText('refused (1)');
    await shot(sec, '22-agent-activity');

    await sec.getByRole('link', { name: 'Security', exact: true }).click();
    await expect(sec.getByTestId('refusal-chart').locator('svg')).toBeVisible();
    await expect(sec.getByTestId('most-refused')).toContainText('Ledger reconciliation agent');
    await shot(sec, '23-security-dashboard');
  });

  test('an access review flags the unused key; revoking it stops the next call', async ({ browser }) => {
    await sec.getByRole('link', { name: 'Reviews' }).click();
    const card = sec.getByTestId(`review-${clientId}`);
    const key = card.getByTestId('review-credentials').locator('tr', { hasText: 'API key' });
    await expect(key).toContainText('never used');
    await shot(sec, '24-access-review');

    // The review's actions work as plain form posts too: revoke without JavaScript.
    const plain = await browser.newContext({ javaScriptEnabled: false, storageState: await sec.context().storageState() });
    const nojs = await plain.newPage();
    await nojs.goto('/reviews');
    await expect(nojs.locator('button:disabled')).toHaveCount(0);
    const plainKey = nojs.getByTestId(`review-${clientId}`).getByTestId('review-credentials').locator('tr', { hasText: 'API key' });
    await plainKey.getByLabel('Reason to revoke').fill('Issued but never used');
    await plainKey.getByRole('button', { name: 'Revoke' }).click();
    await expect(nojs).toHaveURL(/\/reviews/);
    await expect(plainKey).toHaveCount(0);
    await plain.close();
    await sec.reload();
    await expect(card.getByTestId('review-credentials').locator('tr', { hasText: 'API key' })).toHaveCount(0);

    const refused = await sec.request.get('/gw/accounts/accounts', { headers: { 'X-API-Key': apiKey } });
    expect(refused.status()).toBe(401);

    await card.getByLabel('Reason to mark reviewed').fill('Owner confirmed the remaining access');
    await card.getByRole('button', { name: 'Mark reviewed' }).click();
    await expect(card).toContainText(`by ${security}`);
    await shot(sec, '25-review-done');
  });
});
