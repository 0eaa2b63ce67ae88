import { expect, Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { binary, serverSecret } from '../playwright.config';

export const PASSWORD = 'correct horse battery staple';
const SHOTS = path.resolve(__dirname, '..', 'screenshots');

export function uniqueEmail(who: string): string {
  return `${who}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

/** Hydration mismatches, panics and Content Security Policy violations each page logged:
 * a page that logs one is frozen, or runs something its policy refused. */
const broken = new WeakMap<Page, string[]>();

function watch(page: Page): string[] {
  let seen = broken.get(page);
  if (!seen) {
    const errors: string[] = [];
    page.on('console', (msg) => {
      const text = msg.text();
      if (msg.type() === 'error' && /hydration|panicked|content security policy/i.test(text)) {
        errors.push(text.slice(0, 500));
      }
    });
    broken.set(page, errors);
    seen = errors;
  }
  return seen;
}

/** Waits until the portal has hydrated, as a person waits for a page to load, and
 * checks that nothing this page showed so far failed to hydrate or panicked. */
export async function open(page: Page, url: string): Promise<void> {
  const errors = watch(page);
  await page.goto(url);
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  expect(errors, 'the portal logged a hydration error, a panic or a CSP violation').toEqual([]);
}

export async function shot(page: Page, name: string): Promise<void> {
  expect(watch(page), 'the portal logged a hydration error, a panic or a CSP violation').toEqual([]);
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

export async function signUp(page: Page, email: string): Promise<void> {
  await open(page, '/signup');
  await page.getByLabel('Work email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/clients$/);
  await expect(page.locator('.user-email')).toHaveText(email);
}

export async function signIn(page: Page, email: string): Promise<void> {
  await open(page, '/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/clients$/);
  await expect(page.locator('.user-email')).toHaveText(email);
}

/** Creates an account the way an operator does: `portcullis admin create-user`. */
export function createUserWithCli(email: string, role: 'admin' | 'security' | 'developer'): void {
  execFileSync(binary, ['admin', 'create-user', '--email', email, '--role', role], {
    input: `${PASSWORD}\n`,
    env: { ...process.env, PORTCULLIS_DATA_DIR: process.env.PORTCULLIS_E2E_DATA, PORTCULLIS_SECRET: serverSecret },
  });
}

/** Registers an agent with a sandbox grant of the demo's accounts product; its client id
 * and secret, shown once. */
export async function registerAgent(page: Page, name: string): Promise<{ clientId: string; secret: string }> {
  await open(page, '/clients/new');
  await page.getByLabel('Name').fill(name);
  await page.getByRole('button', { name: 'Register' }).click();
  const secret = (await page.getByTestId('secret-value').textContent()) ?? '';
  const clientId = (await page.getByTestId('client-id').textContent()) ?? '';
  await open(page, '/catalog');
  const accounts = page.getByTestId('product-accounts');
  await accounts.getByRole('combobox').selectOption({ label: `${name} — Sandbox` });
  await accounts.getByRole('button', { name: 'Request access' }).click();
  await expect(accounts.getByRole('status')).toContainText('Granted');
  return { clientId, secret };
}
