// Time to interactive of the portal's client page over an emulated 20 Mbit/s link.
// Run by bench/portal_tti.sh, which starts the release demo and passes its address.
//
// Each cold load is a fresh browser context (empty HTTP cache, no compiled-wasm cache)
// holding only the session cookie; the warm loads reuse the context of a cold load, as a
// person coming back to the page would. Time is measured in the page itself, from the
// navigation's start (performance.timeOrigin) to the moment the app sets
// body[data-hydrated="true"], by a MutationObserver installed before any page script
// runs, so Playwright's polling adds nothing to the figure.
'use strict';

const path = require('node:path');
const e2e = path.resolve(__dirname, '..', 'end2end');
const { chromium } = require(require.resolve('@playwright/test', { paths: [e2e] }));

const base = process.env.BASE_URL;
const runs = Number(process.env.RUNS ?? 7);
const warmRuns = Number(process.env.WARM_RUNS ?? 3);
const mbit = Number(process.env.MBIT ?? 20);
const latencyMs = Number(process.env.LATENCY_MS ?? 20);
if (!base) throw new Error('BASE_URL is not set: run bench/portal_tti.sh');

// As Chrome DevTools' throttling presets put it: bytes per second, and a latency added
// to every request (round trip).
const network = {
  offline: false,
  latency: latencyMs,
  downloadThroughput: (mbit * 1e6) / 8,
  uploadThroughput: (mbit * 1e6) / 8 / 4,
};

const launchArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Runs in the page before its own scripts: remembers when hydration marked the body.
function watchHydration() {
  const mark = () => {
    if (document.body && document.body.getAttribute('data-hydrated') === 'true' && !window.__hydratedAt) {
      window.__hydratedAt = performance.now();
    }
  };
  new MutationObserver(mark).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-hydrated'] });
}

async function setUp(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const email = `bench-${Date.now()}@example.com`;
  await page.goto(`${base}/signup`);
  await page.locator('body[data-hydrated="true"]').waitFor();
  await page.locator('#email').fill(email);
  await page.locator('#password').fill('correct horse battery staple');
  await page.locator('main button[type="submit"]').click();
  await page.waitForURL(/\/clients$/);
  await page.goto(`${base}/clients/new`);
  await page.locator('body[data-hydrated="true"]').waitFor();
  await page.locator('#name').fill('Bench agent');
  await page.locator('#kind').selectOption('ai_agent');
  await page.locator('#description').fill('Measures how soon the client page is interactive.');
  await page.locator('main button[type="submit"]').click();
  const id = (await page.getByTestId('client-id').textContent())?.trim();
  if (!id || !id.startsWith('cl_')) throw new Error(`no client id after registering: ${id}`);
  const state = await context.storageState();
  await context.close();
  return { url: `${base}/clients/${id}`, state };
}

async function load(context, url) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', network);
  await page.goto(url, { waitUntil: 'commit' });
  await page.waitForFunction(() => window.__hydratedAt !== undefined, null, { timeout: 60_000 });
  const m = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const assets = performance
      .getEntriesByType('resource')
      .filter((r) => r.name.includes('/pkg/'))
      .map((r) => ({ name: r.name.split('/').pop(), transfer: r.transferSize, body: r.decodedBodySize, end: r.responseEnd }));
    return { tti: window.__hydratedAt, html: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd, assets };
  });
  await page.close();
  return m;
}

const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  // Nearest rank, so the figure is a load that happened: of 7 runs p90 is the slowest,
  // of 10 the ninth.
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}
const ms = (x) => `${Math.round(x)} ms`;

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: launchArgs });
  try {
    const { url, state } = await setUp(browser);
    const cold = [];
    const warm = [];
    let sample;
    for (let i = 0; i < runs; i++) {
      const context = await browser.newContext({ storageState: state });
      await context.addInitScript(watchHydration);
      const m = await load(context, url);
      cold.push(m.tti);
      sample = m;
      console.error(`cold ${i + 1}: ${ms(m.tti)} (html ${ms(m.html)})`);
      if (i === runs - 1) {
        for (let j = 0; j < warmRuns; j++) {
          const w = await load(context, url);
          warm.push(w.tti);
          console.error(`warm ${j + 1}: ${ms(w.tti)} (assets from cache: ${w.assets.every((a) => a.transfer === 0)})`);
          if (j === warmRuns - 1) sample.warmAssets = w.assets;
        }
      }
      await context.close();
    }
    console.log(`client page (/clients/<id>), ${mbit} Mbit/s down, ${latencyMs} ms latency, Chromium ${browser.version()}\n`);
    console.log('| load | runs | median | p90 | min | max |');
    console.log('|---|---:|---:|---:|---:|---:|');
    console.log(`| cold (empty cache) | ${cold.length} | ${ms(median(cold))} | ${ms(quantile(cold, 0.9))} | ${ms(Math.min(...cold))} | ${ms(Math.max(...cold))} |`);
    console.log(`| warm (cached) | ${warm.length} | ${ms(median(warm))} | ${ms(quantile(warm, 0.9))} | ${ms(Math.min(...warm))} | ${ms(Math.max(...warm))} |`);
    console.log('\nlast cold load, /pkg files (transfer = bytes on the wire, body = decoded):\n');
    for (const a of sample.assets) {
      console.log(`- ${a.name}: transfer ${(a.transfer / 1024).toFixed(1)} KB, body ${(a.body / 1024).toFixed(1)} KB, done at ${ms(a.end)}`);
    }
    console.log(`- page HTML done at ${ms(sample.html)}, DOMContentLoaded ${ms(sample.domContentLoaded)}`);
    console.log('\nlast warm load, /pkg files:\n');
    for (const a of sample.warmAssets ?? []) {
      console.log(`- ${a.name}: transfer ${a.transfer} B${a.transfer === 0 ? ' (from cache, not revalidated)' : ''}`);
    }
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
