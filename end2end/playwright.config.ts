import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// One fresh data directory and server per run. The config is evaluated again in each
// worker, so the directory chosen by the main process travels in the environment.
if (!process.env.PORTCULLIS_E2E_DATA) {
  process.env.PORTCULLIS_E2E_DATA = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-e2e-'));
}
const dataDir = process.env.PORTCULLIS_E2E_DATA;
const port = Number(process.env.PORTCULLIS_E2E_PORT ?? 3100);
export const baseURL = `http://127.0.0.1:${port}`;
export const serverSecret = 'e2e-server-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
export const binary = path.resolve(__dirname, '..', 'target', 'debug', 'portcullis');

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      // Debian's Chromium; Playwright downloads no browser here.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: {
    command: `${binary} serve --demo --addr 127.0.0.1:${port}`,
    url: `${baseURL}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    cwd: path.resolve(__dirname, '..'),
    env: {
      PORTCULLIS_DATA_DIR: dataDir,
      PORTCULLIS_SECRET: serverSecret,
      LEPTOS_SITE_ROOT: path.resolve(__dirname, '..', 'target', 'site'),
      RUST_LOG: 'warn',
    },
    stdout: 'ignore',
    stderr: 'pipe',
  },
});
