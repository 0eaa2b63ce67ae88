import { test, expect } from '@playwright/test';
import { createUserWithCli, open, registerAgent, shot, signIn, signUp, uniqueEmail } from './support';

// An agent acting on behalf of another (RFC 8693 token exchange): the security team
// finds the delegated calls by the client they were made for, and each event names the
// subject and the chain of acting clients.

test('security finds the calls one agent made on behalf of another, with the subject and the actor chain', async ({ page, browser }) => {
  await signUp(page, uniqueEmail('delegating-dev'));
  const subject = await registerAgent(page, 'Inbox agent');
  const actor = await registerAgent(page, 'Scheduling agent');

  // The acting agent's page says how to act on another's behalf.
  await open(page, `/clients/${actor.clientId}`);
  const connect = page.getByTestId('connect-agent').first();
  await connect.getByText('Connect an agent (MCP)').click();
  await expect(connect.getByTestId('exchange-snippet')).toContainText('grant_type=urn:ietf:params:oauth:grant-type:token-exchange');
  await expect(connect.getByTestId('exchange-snippet')).toContainText(`-u '${actor.clientId}:<client secret>'`);

  const token = async (who: { clientId: string; secret: string }, extra: Record<string, string>) => {
    const res = await page.request.post('/oauth/token', {
      form: { client_id: who.clientId, client_secret: who.secret, ...extra },
    });
    expect(res.status()).toBe(200);
    return await res.json();
  };
  const handed = (await token(subject, { grant_type: 'client_credentials' })).access_token;
  const exchanged = await token(actor, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: handed,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
  });
  expect(exchanged.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
  const call = await page.request.get('/gw/accounts/accounts', { headers: { Authorization: `Bearer ${exchanged.access_token}` } });
  expect(call.status()).toBe(200);

  const security = uniqueEmail('delegation-security');
  createUserWithCli(security, 'security');
  const sec = await (await browser.newContext()).newPage();
  await signIn(sec, security);
  await open(sec, '/audit');
  const filters = sec.getByTestId('audit-filters');
  await filters.getByLabel('On behalf of').fill(subject.clientId);
  await filters.getByRole('button', { name: 'Search' }).click();
  const rows = sec.getByTestId('audit-results').locator('tbody tr');
  await expect(rows).toHaveCount(2);
  await expect(rows.filter({ hasText: 'Scheduling agent' })).toHaveCount(2);
  await rows.filter({ hasText: 'GET /gw/accounts/accounts' }).getByRole('link').first().click();
  await expect(sec.getByTestId('event-subject')).toHaveText(subject.clientId);
  await expect(sec.getByTestId('event-actor-chain')).toHaveText(actor.clientId);
  await shot(sec, '47-audit-event-on-behalf-of');

  // The subject's activity page says who acted on its behalf, and links to those calls.
  await open(sec, `/clients/${subject.clientId}/activity`);
  const behalf = sec.locator('section.card', { has: sec.getByRole('heading', { name: "Acting on this client's behalf" }) });
  await expect(behalf.getByRole('row')).toHaveCount(1);
  await expect(behalf.getByRole('row')).toContainText(actor.clientId);
  await expect(behalf.getByRole('row')).toContainText('2');
  await behalf.getByRole('link', { name: actor.clientId }).click();
  await expect(sec.getByTestId('audit-results').locator('tbody tr')).toHaveCount(2);
});

test('a developer names the agents that may act for theirs; any other is refused the exchange', async ({ page }) => {
  await signUp(page, uniqueEmail('consenting-dev'));
  const subject = await registerAgent(page, 'Payroll agent');
  const actor = await registerAgent(page, 'Expense agent');
  const other = await registerAgent(page, 'Unvetted agent');

  await open(page, `/clients/${subject.clientId}`);
  const card = page.getByTestId('profile-sandbox');
  await expect(card.getByTestId('may-act-now')).toHaveText('Any client holding one of its tokens');
  const mayAct = card.getByTestId('may-act');
  await mayAct.getByText("Choose who may act on this agent's behalf").click();
  await mayAct.getByLabel('Who').selectOption('listed');
  await mayAct.getByLabel('Client ids').fill(actor.clientId);
  await mayAct.getByRole('button', { name: 'Save' }).click();
  await expect(card.getByTestId('may-act-now')).toHaveText(actor.clientId);
  await shot(page, '51-client-may-act');

  const token = async (who: { clientId: string; secret: string }, extra: Record<string, string>) =>
    page.request.post('/oauth/token', { form: { client_id: who.clientId, client_secret: who.secret, ...extra } });
  const handed = (await (await token(subject, { grant_type: 'client_credentials' })).json()).access_token;
  const exchange = {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: handed,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
  };
  const refused = await token(other, exchange);
  expect(refused.status()).toBe(400);
  expect((await refused.json()).error_description).toContain('has not allowed');
  expect((await token(actor, exchange)).status()).toBe(200);
});
