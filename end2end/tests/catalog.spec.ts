import { test, expect, Page } from '@playwright/test';
import { open, shot, signUp, uniqueEmail } from './support';

// Requesting a product starts from the client that needs it: the catalog's picker
// defaults to that client, shows whole names, and the answer leads back to it.

async function register(page: Page, name: string): Promise<string> {
  await open(page, '/clients/new');
  await page.getByLabel('Name').fill(name);
  await page.getByRole('button', { name: 'Register' }).click();
  const clientId = ((await page.getByTestId('client-id').textContent()) ?? '').trim();
  expect(clientId).toMatch(/^cl_/);
  return clientId;
}

test('"Request a product" on a client page picks that client and leads back to it', async ({ page }) => {
  await signUp(page, uniqueEmail('picker'));
  // Alphabetically first, so a picker that ignored where we came from would pick it.
  await register(page, 'Alpha batch exporter');
  const zeta = 'Zeta quarterly ledger reconciliation agent for the finance operations team';
  const zetaId = await register(page, zeta);

  await open(page, `/clients/${zetaId}`);
  await page.getByRole('link', { name: 'Request a product' }).click();
  await expect(page).toHaveURL(new RegExp(`/catalog\\?client=${zetaId}$`));
  const accounts = page.getByTestId('product-accounts');
  const picker = accounts.getByLabel('Client and profile');
  await expect(picker.locator('option:checked')).toHaveText(`${zeta} — Sandbox`);
  // The whole name fits in the picker: it is no narrower than its chosen option's text.
  const [shown, needed] = await picker.evaluate((el: HTMLSelectElement) => {
    const probe = document.createElement('span');
    probe.style.cssText = `position: absolute; white-space: nowrap; font: ${getComputedStyle(el).font}`;
    probe.textContent = el.selectedOptions[0].text;
    document.body.appendChild(probe);
    const width = probe.getBoundingClientRect().width;
    probe.remove();
    return [el.clientWidth, width];
  });
  expect(shown).toBeGreaterThan(needed);
  await shot(page, 'catalog-from-client');

  await accounts.getByRole('button', { name: 'Request access' }).click();
  const said = accounts.getByRole('status');
  await expect(said).toContainText(`Granted to ${zeta} (Sandbox)`);
  // The answer is a new page, scrolled to the card the request was made from.
  await expect(page).toHaveURL(new RegExp(`/catalog\\?client=${zetaId}#product-pr_[A-Za-z0-9_-]+$`));
  await expect(page.locator(':target')).toHaveAttribute('data-testid', 'product-accounts');
  await said.getByRole('link', { name: `Go to ${zeta}` }).click();
  await expect(page).toHaveURL(new RegExp(`/clients/${zetaId}$`));
  await expect(page.getByTestId('profile-sandbox').getByTestId('grants')).toContainText('Accounts');
});
