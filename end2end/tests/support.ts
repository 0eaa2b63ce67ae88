import { expect, Page, request } from '@playwright/test';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
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
/** Everything else a page logged as an error or warning, and requests that failed: said
 * when a page never becomes interactive, so the failure names its cause. */
const trouble = new WeakMap<Page, string[]>();

function watch(page: Page): string[] {
  let seen = broken.get(page);
  if (!seen) {
    const errors: string[] = [];
    const other: string[] = [];
    page.on('console', (msg) => {
      const text = msg.text();
      if (msg.type() === 'error' && /hydration|panicked|content security policy/i.test(text)) {
        errors.push(text.slice(0, 500));
      } else if (msg.type() === 'error' || msg.type() === 'warning') {
        other.push(`${msg.type()}: ${text.slice(0, 300)}`);
      }
    });
    page.on('pageerror', (e) => other.push(`uncaught: ${String(e).slice(0, 300)}`));
    page.on('requestfailed', (r) => other.push(`failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
    broken.set(page, errors);
    trouble.set(page, other);
    seen = errors;
  }
  return seen;
}

/** Waits until the portal has hydrated, as a person waits for a page to load, and
 * checks that nothing this page showed so far failed to hydrate or panicked. */
export async function open(page: Page, url: string): Promise<void> {
  const errors = watch(page);
  await page.goto(url);
  try {
    await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
  } catch (e) {
    throw new Error(`${url} never became interactive; the page logged ${JSON.stringify(trouble.get(page))}\n${e}`);
  }
  expect(errors, 'the portal logged a hydration error, a panic or a CSP violation').toEqual([]);
}

export async function shot(page: Page, name: string): Promise<void> {
  expect(watch(page), 'the portal logged a hydration error, a panic or a CSP violation').toEqual([]);
  fs.mkdirSync(SHOTS, { recursive: true });
  // From the top: a page scrolled by a form's submit would draw its sticky header
  // halfway down a full-page picture.
  await page.evaluate(() => window.scrollTo(0, 0));
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

/** Creates an account the way an operator does: `portcullis admin create-user` (on the
 * suite's server, or on the one whose data directory is given). */
export function createUserWithCli(email: string, role: 'admin' | 'security' | 'developer', dataDir?: string): void {
  execFileSync(binary, ['admin', 'create-user', '--email', email, '--role', role], {
    input: `${PASSWORD}\n`,
    env: { ...process.env, PORTCULLIS_DATA_DIR: dataDir ?? process.env.PORTCULLIS_E2E_DATA, PORTCULLIS_SECRET: serverSecret },
  });
}

/** A Portcullis of a test's own (demo mode, a data directory of its own), started with
 * the flags the test is about; up once `/healthz` answers at `origin`. */
export async function startServer(
  origin: string,
  flags: string[],
  cwd: string,
): Promise<{ process: ChildProcess; dataDir: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-e2e-own-'));
  const child = spawn(binary, ['serve', '--demo', ...flags], {
    cwd,
    env: {
      ...process.env,
      PORTCULLIS_DATA_DIR: dataDir,
      PORTCULLIS_SECRET: serverSecret,
      LEPTOS_SITE_ROOT: path.resolve(__dirname, '..', '..', 'target', 'site'),
      RUST_LOG: 'warn',
    },
    stdio: 'ignore',
  });
  const probe = await request.newContext({ baseURL: origin, ignoreHTTPSErrors: true });
  await expect.poll(async () => (await probe.get('/healthz').catch(() => undefined))?.status(), { timeout: 30_000 }).toBe(200);
  await probe.dispose();
  return { process: child, dataDir };
}

/** openssl in `dir`, as an enterprise's authority and its server team use it. */
function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A certificate authority in `dir`: `${name}-ca.pem` and `${name}-ca.key` (EC P-256). */
export function authority(dir: string, name: string, subject: string): void {
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', subject, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.pem`);
}

/** A certificate `ca` issues with `subject`: `${name}.pem` and `${name}.key`; `ext` its
 * extensions, as openssl's extension file writes them. */
export function issue(dir: string, ca: string, name: string, subject: string, ext: string): void {
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', subject,
    '-keyout', `${name}.key`, '-out', `${name}.csr`);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}-ca.pem`, '-CAkey', `${ca}-ca.key`,
    '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}

/** A server certificate for `localhost`, issued by a new authority `name`. */
export function localhostCertificate(dir: string, name: string): void {
  authority(dir, name, `/CN=E2E ${name} CA`);
  issue(dir, name, name, '/CN=localhost', 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
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
