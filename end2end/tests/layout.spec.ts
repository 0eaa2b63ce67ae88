import { test, expect, Page, Locator } from '@playwright/test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createUserWithCli, open, signIn, signUp, uniqueEmail } from './support';

// Every page, for every role, with data, at a desktop and a phone width: nothing a
// person came to use may be cut off.
//
// The rule, checked in the page by `layoutProblems` below:
//
// At 1280×800 (desktop)
//   1. The document never scrolls sideways (scrollWidth ≤ clientWidth).
//   2. No control (button, link, input, select, textarea, summary) and no table cell is
//      cut off by an ancestor whose overflow is not `visible` — including a `.table-wrap`
//      that scrolls: at this width a table must fit its card, not scroll inside it.
//   3. No control or cell extends past its card (`.card`, `.product`, `.secret-box`,
//      `.auth-card`, `.empty`, or the page itself) or past the viewport.
//   4. No button's own label is wider than the button.
//   5. A time in a table keeps "UTC" on the line of its hour (never "…03:19 / UTC").
//   6. A table's column headings stand over their columns (first row's cells).
//
// At 390×844 (phone)
//   1. The document never scrolls sideways either.
//   2. A control inside an ancestor that scrolls horizontally (`overflow-x: auto|scroll`,
//      a table in its card) is fine if scrolling that ancestor reaches all of it: the
//      control lies inside the ancestor's scrollable area (0 ≤ left, right ≤ scrollWidth)
//      and is no wider than the ancestor's visible width, so it can be seen whole.
//   3. A control inside an ancestor that clips without scrolling (`hidden`, `clip`) must
//      lie wholly inside that ancestor's visible box.
//   4. Outside any scrolling ancestor, a control lies inside the viewport and its card.
//   5. No button's own label is wider than the button.
//   Table cells themselves may scroll out of view at this width; only controls count.
//
// Hidden things are skipped (display: none, closed <details> content and popovers,
// visually-hidden labels); every <details> on a page is opened before the check, so
// what it hides is checked too. Screenshots of every page at both widths go to
// end2end/screenshots/layout-<width>-<role>-<page>.png.

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const SHOTS = path.resolve(__dirname, '..', 'screenshots');

type Mode = 'desktop' | 'phone';

async function layoutProblems(page: Page, mode: Mode): Promise<string[]> {
  return page.evaluate((mode) => {
    const problems: string[] = [];
    const doc = document.documentElement;
    const viewport = doc.clientWidth;
    if (doc.scrollWidth > viewport + 1) {
      problems.push(`the page scrolls sideways: ${doc.scrollWidth}px of content in a ${viewport}px window`);
    }
    if (mode === 'desktop') {
      for (const table of document.querySelectorAll('table')) {
        const heads = [...table.querySelectorAll('thead th')];
        const cells = [...(table.querySelector('tbody tr')?.children ?? [])];
        if (heads.length === 0 || heads.length !== cells.length) continue;
        heads.forEach((th, i) => {
          const [h, c] = [th.getBoundingClientRect(), cells[i].getBoundingClientRect()];
          if (Math.abs(h.left - c.left) > 2) {
            problems.push(`the heading "${th.textContent?.trim()}" is not over its column (x ${Math.round(h.left)} vs ${Math.round(c.left)})`);
          }
        });
      }
      for (const cell of document.querySelectorAll('td.when')) {
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode() as Text | null; node; node = walker.nextNode() as Text | null) {
          const at = node.data.indexOf('UTC');
          if (at < 6) continue;
          const [hour, utc] = [document.createRange(), document.createRange()];
          hour.setStart(node, at - 6);
          hour.setEnd(node, at - 1);
          utc.setStart(node, at);
          utc.setEnd(node, at + 3);
          const [h, u] = [hour.getBoundingClientRect(), utc.getBoundingClientRect()];
          if (u.height > 0 && Math.abs(h.top - u.top) > 2) {
            problems.push(`"UTC" wrapped away from its time in a cell: "${node.data.trim()}"`);
          }
        }
      }
    }
    const describe = (el: Element): string => {
      const tag = el.tagName.toLowerCase();
      const cls = typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\s+/).join('.') : '';
      const text = (el.textContent ?? '').trim().replace(/\s+/g, ' ').slice(0, 40);
      const label = el.getAttribute('aria-label') ?? el.getAttribute('name') ?? el.getAttribute('placeholder') ?? '';
      return `<${tag}${cls}> "${text || label}"`;
    };
    const shown = (el: Element): boolean => {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) return false;
      if (getComputedStyle(el).visibility === 'hidden') return false;
      return !el.closest('.sr-only, .visually-hidden');
    };
    const controls = 'button, a[href], input:not([type="hidden"]), select, textarea, summary';
    const selector = mode === 'desktop' ? `${controls}, td, th` : controls;
    const px = (n: number) => Math.round(n);
    for (const el of Array.from(document.querySelectorAll(selector))) {
      if (!shown(el)) continue;
      const r = el.getBoundingClientRect();
      if (el.matches('button, a.btn, summary.btn') && el.scrollWidth > el.clientWidth + 1) {
        problems.push(`${describe(el)}: its label (${el.scrollWidth}px) is wider than the button (${el.clientWidth}px)`);
      }
      let scrolled = false;
      for (let a = el.parentElement; a && a !== document.body && a !== doc; a = a.parentElement) {
        const s = getComputedStyle(a);
        if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
        const ar = a.getBoundingClientRect();
        const left = ar.left + a.clientLeft;
        const top = ar.top + a.clientTop;
        const scrolls = s.overflowX === 'auto' || s.overflowX === 'scroll';
        if (mode === 'phone' && scrolls) {
          scrolled = true;
          const relLeft = r.left - left + a.scrollLeft;
          const relRight = r.right - left + a.scrollLeft;
          if (relLeft < -1 || relRight > a.scrollWidth + 1 || r.width > a.clientWidth + 1) {
            problems.push(
              `${describe(el)} cannot be scrolled into view in ${describe(a)} ` +
                `(x ${px(relLeft)}–${px(relRight)} of ${a.scrollWidth}px, ${a.clientWidth}px visible)`,
            );
          }
        } else {
          const outX = r.left < left - 1 || r.right > left + a.clientWidth + 1;
          const outY = r.top < top - 1 || r.bottom > top + a.clientHeight + 1;
          if (outX || outY) {
            problems.push(
              `${describe(el)} is cut off by ${describe(a)} (overflow ${s.overflowX}): ` +
                `x ${px(r.left)}–${px(r.right)}, visible ${px(left)}–${px(left + a.clientWidth)}`,
            );
            break;
          }
        }
      }
      if (scrolled) continue;
      if (r.left < -1 || r.right > viewport + 1) {
        problems.push(`${describe(el)} extends past the window (x ${px(r.left)}–${px(r.right)} of ${viewport})`);
        continue;
      }
      const card = el.parentElement?.closest('.card, .product, .secret-box, .auth-card, .empty, main.page');
      if (card) {
        const cr = card.getBoundingClientRect();
        if (r.left < cr.left - 1 || r.right > cr.right + 1) {
          problems.push(
            `${describe(el)} extends past its container ${describe(card).slice(0, 40)} ` +
              `(x ${px(r.left)}–${px(r.right)}, container ${px(cr.left)}–${px(cr.right)})`,
          );
        }
      }
    }
    return Array.from(new Set(problems));
  }, mode);
}

/** Opens every <details> so that what it hides is checked and photographed too. */
async function openAllDetails(page: Page): Promise<void> {
  await page.evaluate(() => document.querySelectorAll('details').forEach((d) => (d.open = true)));
}

async function check(page: Page, who: string, name: string): Promise<void> {
  for (const [mode, size] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    await page.setViewportSize(size);
    await openAllDetails(page);
    const problems = await layoutProblems(page, mode);
    // At 1280 px the top bar is one line, whatever the role: the user menu does not drop
    // below the navigation.
    if (mode === 'desktop') {
      const [nav, menu] = [page.locator('.topbar .nav'), page.locator('.topbar .user-menu')];
      if ((await nav.count()) && (await menu.count())) {
        const [n, m] = [(await nav.boundingBox())!, (await menu.boundingBox())!];
        if (m.y >= n.y + n.height) problems.push(`the top bar wraps: its user menu is below the navigation`);
      }
    }
    fs.mkdirSync(SHOTS, { recursive: true });
    // From the top: a full-page shot of a scrolled page paints the sticky top bar mid-page.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SHOTS, `layout-${size.width}-${who}-${name}.png`), fullPage: true });
    expect.soft(problems, `${who}: ${name} at ${size.width}px`).toEqual([]);
  }
}

async function visit(page: Page, who: string, name: string, url: string): Promise<void> {
  await page.setViewportSize(DESKTOP);
  await open(page, url);
  await check(page, who, name);
}

/** Clicks a button, and its confirmation where the portal asks for one. */
async function clickConfirming(scope: Locator, page: Page, name: string): Promise<void> {
  await scope.getByRole('button', { name, exact: true }).click();
  const confirm = page.getByRole('button', { name: new RegExp(`^Confirm`) });
  if (await confirm.first().isVisible().catch(() => false)) await confirm.first().click();
}

test('signed out, every page fits at 1280 px and stays usable at 390 px', async ({ page }) => {
  for (const [pageName, url] of [
    ['home', '/'],
    ['login', '/login'],
    ['signup', '/signup'],
    ['not-found', '/no-such-page'],
  ]) {
    await visit(page, 'visitor', pageName, url);
  }
});

// Not serial: each role's pages are checked (and photographed) even when another role's
// fail. A failed test restarts the worker, and then `beforeAll` makes the data again.
test.describe('signed in, every page fits at 1280 px and stays usable at 390 px', () => {
  const developer = uniqueEmail('layout-dev');
  const security = uniqueEmail('layout-sec');
  const admin = uniqueEmail('layout-admin');
  const name = 'Quarterly ledger reconciliation agent';
  let clientId = '';
  let auditEvent = '';
  let dev: Page;

  // A developer fills every table: a client with rotated credentials, grants, a pending
  // request, allowed and refused calls, a personal access token.
  test.beforeAll(async ({ browser }) => {
    test.setTimeout(120_000);
    dev = await browser.newPage({ viewport: DESKTOP });
    await signUp(dev, developer);
    await open(dev, '/clients/new');
    await dev.getByLabel('Name').fill(name);
    await dev.getByLabel('Kind').selectOption('ai_agent');
    await dev.getByLabel('Description').fill('Matches ledger entries against account statements every night.');
    await dev.getByRole('button', { name: 'Register' }).click();
    const secret = (await dev.getByTestId('secret-value').textContent()) ?? '';
    clientId = (await dev.getByTestId('client-id').textContent()) ?? '';
    expect(clientId).toMatch(/^cl_/);

    await open(dev, '/catalog');
    const accounts = dev.getByTestId('product-accounts');
    await accounts.getByRole('combobox').selectOption({ label: `${name} — Sandbox` });
    await accounts.getByRole('button', { name: 'Request access' }).click();
    await expect(accounts.getByRole('status')).toContainText('Granted');

    // Calls, allowed and refused, for the recent requests, the activity and the audit.
    const token = await dev.request.post('/oauth/token', {
      form: { grant_type: 'client_credentials', client_id: clientId, client_secret: secret },
    });
    const auth = { Authorization: `Bearer ${(await token.json()).access_token}` };
    expect((await dev.request.get('/gw/accounts/accounts', { headers: auth })).status()).toBe(200);
    expect((await dev.request.get('/gw/payments/payments', { headers: auth })).status()).toBe(403);

    // A rotation leaves the old secret in its grace period: the widest credentials table.
    await open(dev, `/clients/${clientId}`);
    const sandbox = dev.getByTestId('profile-sandbox');
    await clickConfirming(sandbox, dev, 'Issue API key');
    await expect(dev.getByTestId('secret-box')).toContainText('API key');
    await clickConfirming(sandbox, dev, 'Rotate secret');
    await expect(sandbox.getByTestId('credentials').locator('tbody tr')).toHaveCount(3);
    await clickConfirming(dev.locator('.page-header'), dev, 'Add production profile');
    await expect(dev.getByTestId('profile-production')).toBeVisible();

    await open(dev, '/catalog');
    const payments = dev.getByTestId('product-payments');
    await payments.getByRole('combobox').selectOption({ label: `${name} — Production` });
    await payments.getByPlaceholder(/Required for production/).fill('Refund lookups while reconciling the ledger');
    await payments.getByRole('button', { name: 'Request access' }).click();
    await expect(payments.getByRole('status')).toContainText('An admin will review it');

    await open(dev, '/tokens');
    await dev.getByLabel('Name').fill('Nightly reconciliation job');
    await dev.getByRole('button', { name: 'Create token' }).click();
    await expect(dev.getByTestId('secret-value')).toHaveText(/^pcp_/);

    createUserWithCli(security, 'security');
    createUserWithCli(admin, 'admin');
  });

  test('developer', async () => {
    test.setTimeout(180_000);
    for (const [pageName, url] of [
      ['home', '/'],
      ['clients', '/clients'],
      ['register', '/clients/new'],
      ['client', `/clients/${clientId}`],
      ['activity', `/clients/${clientId}/activity`],
      ['catalog', '/catalog'],
      ['tokens', '/tokens'],
    ]) {
      await visit(dev, 'developer', pageName, url);
    }
    // A secret just issued, with how to use it, is the widest thing the client page shows.
    await open(dev, `/clients/${clientId}`);
    await clickConfirming(dev.getByTestId('profile-sandbox'), dev, 'Issue API key');
    await expect(dev.getByTestId('secret-box')).toBeVisible();
    await check(dev, 'developer', 'client-key-issued');
  });

  for (const [role, email] of [
    ['security', () => security],
    ['admin', () => admin],
  ] as const) {
    test(role, async ({ page }) => {
      test.setTimeout(240_000);
      await signIn(page, email());
      const pages: [string, string][] = [
        ['clients', '/clients'],
        ['client', `/clients/${clientId}`],
        ['activity', `/clients/${clientId}/activity`],
        ['catalog', '/catalog'],
        ['tokens', '/tokens'],
        ['security', '/security'],
        ['audit', '/audit?since=24h'],
        ['reviews', '/reviews'],
      ];
      if (role === 'admin') {
        pages.push(
          ['approvals', '/admin/approvals'],
          ['products', '/admin/products'],
          ['people', '/admin/users'],
          ['issuers', '/admin/issuers'],
        );
      }
      for (const [pageName, url] of pages) {
        await visit(page, role, pageName, url);
        // Each page is checked with its tables filled, not empty.
        if (pageName === 'approvals') await expect(page.getByTestId('pending')).toBeVisible();
        if (pageName === 'reviews') await expect(page.getByTestId(`review-${clientId}`)).toBeVisible();
        if (pageName === 'audit' && !auditEvent) {
          auditEvent = (await page.getByTestId('audit-results').locator('tbody tr a').first().getAttribute('href')) ?? '';
        }
      }
      expect(auditEvent).toMatch(/^\/audit\/events\//);
      await visit(page, role, 'audit-event', auditEvent);

      // The other specs share this server: leave no production request of ours waiting.
      if (role === 'admin') {
        await page.setViewportSize(DESKTOP);
        await open(page, '/admin/approvals');
        const ours = page.getByTestId('pending').getByRole('row', { name: new RegExp(name) });
        for (let left = await ours.count(); left > 0; left--) {
          await ours.first().getByLabel(/^Reason for the decision/).fill('Layout check data, not a real request');
          await ours.first().getByRole('button', { name: 'Reject' }).click();
          await expect(ours).toHaveCount(left - 1);
        }
      }
    });
  }
});
