import { test, expect, Page } from '@playwright/test';
import { PASSWORD, shot, uniqueEmail } from './support';

// Before the wasm loads (or without it), the forms are plain HTML forms posting to the
// server functions, and still work.
test.use({ javaScriptEnabled: false });

test('signs up, browses the catalog and signs out without JavaScript', async ({ page }) => {
  const email = uniqueEmail('nojs');
  await page.goto('/signup');
  await page.getByLabel('Work email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/clients$/);
  await expect(page.locator('.user-email')).toHaveText(email);

  await page.goto('/catalog');
  await expect(page.getByTestId('product-accounts')).toBeVisible();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/$/);
  // A page that needs an account sends the visitor to sign in, and back afterwards.
  await page.goto('/clients/new');
  await expect(page).toHaveURL(/\/login\?next=%2Fclients%2Fnew$/);
  await expect(page.getByRole('status')).toContainText('Sign in to continue');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/clients\/new$/);
  await expect(page.getByRole('heading', { name: 'Register a client' })).toBeVisible();
});

test('a wrong password is explained without JavaScript too', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Email').fill(uniqueEmail('nobody'));
  await page.getByLabel('Password').fill('not the right password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByRole('alert')).toHaveText('That email and password do not match an account.');
});

/** The secret a page shows once, and that it is gone after a reload. */
async function revealedOnce(page: Page, kind: RegExp): Promise<string> {
  const box = page.getByTestId('secret-box');
  await expect(box).toBeVisible();
  await expect(box).toContainText(kind);
  const secret = (await box.getByTestId('secret-value').textContent())!.trim();
  expect(secret.length).toBeGreaterThan(20);
  await page.reload();
  await expect(page.getByTestId('secret-box')).toHaveCount(0);
  await expect(page.locator('body')).not.toContainText(secret);
  return secret;
}

test('every form that issues a secret works as a plain post and shows the secret once', async ({ page }) => {
  const email = uniqueEmail('nojs-secret');
  await page.goto('/signup');
  await page.getByLabel('Work email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/clients$/);

  // Register: the post leads to the new client's page, which shows its secret once.
  await page.goto('/clients/new');
  await page.getByLabel('Name').fill('Plain form agent');
  await page.getByRole('button', { name: 'Register' }).click();
  await expect(page).toHaveURL(/\/clients\/cl_[A-Za-z0-9_-]+$/);
  const clientUrl = new URL(page.url()).pathname;
  await expect(page.getByRole('status')).toContainText('Plain form agent is registered.');
  const clientId = (await page.getByTestId('secret-box').getByTestId('client-id').textContent())!.trim();
  const secret = await revealedOnce(page, /client secret/);
  await shot(page, 'nojs-01-client-after-reveal');
  // It is the real secret: the token endpoint takes it.
  const token = await page.request.post('/oauth/token', {
    form: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret },
  });
  expect(token.status()).toBe(200);

  // Nothing on the client page sits disabled without JavaScript.
  await expect(page.locator('button:disabled')).toHaveCount(0);

  // Issue an API key: shown once, with how to send it.
  await page.getByTestId('profile-sandbox').getByRole('button', { name: 'Issue API key' }).click();
  await expect(page).toHaveURL(new RegExp(`${clientUrl}$`));
  await expect(page.getByTestId('api-key-curl')).toContainText('X-API-Key');
  await shot(page, 'nojs-02-api-key-revealed');
  const key = await revealedOnce(page, /API key/);
  const called = await page.request.get('/gw/accounts/accounts', { headers: { 'X-API-Key': key } });
  expect(called.status(), 'the key authenticates (no grant yet, so 403, not 401)').toBe(403);

  // Rotate, after the confirmation (an HTML popover: no JavaScript needed).
  await page.getByTestId('profile-sandbox').getByRole('button', { name: 'Rotate secret' }).click();
  await page.getByRole('dialog', { name: /^Rotate the sandbox client secret/ }).getByRole('button', { name: 'Confirm rotation' }).click();
  await expect(page.getByRole('status')).toContainText('client secret is rotated');
  const rotated = await revealedOnce(page, /client secret/);
  expect(rotated).not.toBe(secret);

  // Add a production profile: its own secret, shown once.
  await page.getByRole('button', { name: 'Add production profile' }).click();
  await page.getByRole('dialog', { name: 'Add a production profile?' }).getByRole('button', { name: 'Confirm and add' }).click();
  await expect(page.getByRole('status')).toContainText('production profile is added');
  await revealedOnce(page, /client secret/);
  await expect(page.getByTestId('profile-production')).toBeVisible();

  // A personal access token: shown once, and it works on the management API.
  await page.goto('/tokens');
  await expect(page.locator('button:disabled')).toHaveCount(0);
  await page.getByLabel('Name').fill('plain form script');
  // The scope choices travel in the plain post too.
  await page.getByTestId('scope-clients').selectOption('write');
  await page.getByTestId('scope-users').selectOption('none');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page).toHaveURL(/\/tokens$/);
  await expect(page.getByRole('row', { name: /plain form script/ })).toContainText('clients:write');
  await expect(page.getByRole('row', { name: /plain form script/ })).not.toContainText('users:');
  const pat = await revealedOnce(page, /token/);
  const clients = await page.request.get('/api/v1/clients', { headers: { Authorization: `Bearer ${pat}` } });
  expect(clients.status()).toBe(200);
  expect(JSON.stringify(await clients.json())).toContain(clientId);
});

test('a secret waits only for its own person', async ({ browser }) => {
  // Someone else's session never sees it: the waiting secret lives in the session that
  // posted, sealed for its person.
  const [a, b] = [await browser.newContext({ javaScriptEnabled: false }), await browser.newContext({ javaScriptEnabled: false })];
  const [pa, pb] = [await a.newPage(), await b.newPage()];
  for (const [p, who] of [[pa, 'nojs-a'], [pb, 'nojs-b']] as const) {
    await p.goto('/signup');
    await p.getByLabel('Work email').fill(uniqueEmail(who));
    await p.getByLabel('Password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Create account' }).click();
    await expect(p).toHaveURL(/\/clients$/);
  }
  // A's post is answered with a redirect; A's browser is held there while B opens the
  // page it leads to.
  let target = '';
  await pa.route('**/api/register_client', async (route) => {
    const answer = await route.fetch({ maxRedirects: 0 });
    target = answer.headers()['location'];
    await route.fulfill({ status: 200, contentType: 'text/plain', body: 'held' });
  });
  await pa.goto('/clients/new');
  await pa.getByLabel('Name').fill('Only mine');
  await pa.getByRole('button', { name: 'Register' }).click();
  await expect(pa.locator('body')).toHaveText('held');
  expect(target).toMatch(/^\/clients\/cl_/);
  await pb.goto(target);
  await expect(pb.getByRole('heading', { name: 'Not found' })).toBeVisible();
  await expect(pb.getByTestId('secret-box')).toHaveCount(0);
  // A still gets it, once.
  await pa.goto(target);
  await expect(pa.getByTestId('secret-box')).toBeVisible();
  await a.close();
  await b.close();
});
