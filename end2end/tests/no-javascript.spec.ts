import { test, expect } from '@playwright/test';
import { PASSWORD, uniqueEmail } from './support';

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
  await page.goto('/clients');
  await expect(page.getByRole('alert')).toContainText('Sign in to continue.');
});

test('a wrong password is explained without JavaScript too', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Email').fill(uniqueEmail('nobody'));
  await page.getByLabel('Password').fill('not the right password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByRole('alert')).toHaveText('That email and password do not match an account.');
});

test('forms whose answer is a secret wait for JavaScript instead of losing it', async ({ page }) => {
  const email = uniqueEmail('nojs-secret');
  await page.goto('/signup');
  await page.getByLabel('Work email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.goto('/clients/new');
  await expect(page.getByRole('button', { name: 'Register' })).toBeDisabled();
  await page.goto('/tokens');
  await expect(page.getByRole('button', { name: 'Create token' })).toBeDisabled();
});
