// Drives caje's admin dashboard in a real headless Chromium: log in with the
// admin token, check that the overview's charts are drawn with the traffic
// the script made and that its regions view lists this node, check that
// "Clear manifest" asks first, read the tables, press "Populate now" and
// watch the missing pages arrive; no page may load anything from elsewhere.
// Run by ../browser-test.sh, which starts caje and prepares the state (two
// pages in the manifest, stored, then hit twice; an empty file cache).
//
// Environment:
//   CAJE_BASE         http://127.0.0.1:<port> of caje (required)
//   CAJE_ADMIN_TOKEN  the admin token caje was started with (required)
//   CAJE_SCREENSHOT   where to write a PNG of the final dashboard (optional);
//                     the overview's goes beside it, as <name>-overview.png
//   CHROMIUM          the browser binary (default /usr/bin/chromium)
//   CAJE_EXPECT_PATHS comma-separated manifest paths (default "/,/fast")
//   CAJE_COUNTS_FILE  where to write "<passed> <failed>" at the end (optional)
//
// Prints one line per check ("ok - …" / "not ok - …") and a final
// "dashboard: N passed, M failed"; exits 1 on any failure.

import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = (process.env.CAJE_BASE || '').replace(/\/+$/, '');
const token = process.env.CAJE_ADMIN_TOKEN || '';
const screenshot = process.env.CAJE_SCREENSHOT || '';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const expectedPaths = (process.env.CAJE_EXPECT_PATHS || '/,/fast').split(',');
const STEP_TIMEOUT_MS = 10_000;
const SETTLE_TIMEOUT_MS = 20_000;

if (!base || !token) {
  console.error('dashboard.mjs: set CAJE_BASE and CAJE_ADMIN_TOKEN');
  process.exit(2);
}

let passed = 0;
let failed = 0;

/** Records one check; a failed check does not stop the run. */
function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`ok - ${name}`);
  } else {
    failed += 1;
    console.log(`not ok - ${name}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}

/** A check whose failure makes the following steps meaningless. */
function require_(name, ok, detail = '') {
  if (!check(name, ok, detail)) throw new Error(`stopping: ${name} failed`);
}

/** The manifest table as [{ path, here, hereClass }]. */
async function pageRows(page) {
  return page.$$eval('#pages tr', (rows) =>
    rows
      .filter((r) => r.querySelector('td'))
      .map((r) => {
        const last = r.querySelector('td:last-child');
        return {
          path: (r.querySelector('td.path')?.textContent ?? '').trim(),
          here: (last?.textContent ?? '').trim(),
          hereClass: last?.className ?? '',
        };
      }),
  );
}

async function text(page, selector) {
  return ((await page.textContent(selector, { timeout: STEP_TIMEOUT_MS })) ?? '').trim();
}

const sameSet = (a, b) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-dev-shm-usage',
    ],
  });
  check(`launched ${executablePath} (${browser.version()})`, true);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // The page's CSP blocks anything it does not name; Chromium says so here.
  const cspViolations = [];
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) cspViolations.push(m.text());
  });
  // Every request the pages make: none may leave caje's origin.
  const elsewhere = [];
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(`${base}/`) && !url.startsWith('data:')) elsewhere.push(url);
  });
  const posts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST') posts.push(new URL(r.url()).pathname);
  });
  // The buttons other than populate ask confirm(): each is answered "no"
  // (and recorded), so no dialog is left blocking the page.
  const dialogs = [];
  page.on('dialog', (d) => {
    dialogs.push({ type: d.type(), message: d.message() });
    d.dismiss().catch(() => {});
  });

  // 1. Not logged in: the dashboard sends the browser to the login form.
  const first = await page.goto(`${base}/_caje/list`);
  const firstRedirect = first?.request().redirectedFrom();
  const firstRedirectStatus = firstRedirect ? (await firstRedirect.response())?.status() : undefined;
  require_(
    'GET /_caje/list without a session redirects (303) to /_caje/login',
    new URL(page.url()).pathname === '/_caje/login' && firstRedirectStatus === 303,
    `landed on ${page.url()} (redirect status ${firstRedirectStatus ?? 'none'})`,
  );
  require_(
    'login form has input#token[name=token] and button#login',
    (await page.locator('input#token[name="token"]').count()) === 1 &&
      (await page.locator('button#login').count()) === 1,
  );

  // 2. A wrong token is refused with the form again and no cookie.
  await page.fill('input#token', `wrong-${token}`);
  const [wrongResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/_caje/login') && r.request().method() === 'POST'),
    page.click('button#login'),
  ]);
  await page.waitForSelector('#error');
  const wrongCookies = (await context.cookies()).filter((c) => c.name.startsWith('caje_session'));
  check(
    'a wrong token is refused (401, #error shown, no session cookie)',
    wrongResponse.status() === 401 &&
      (await text(page, '#error')).length > 0 &&
      wrongCookies.length === 0 &&
      (await page.locator('input#token').count()) === 1,
    `status ${wrongResponse.status()}, cookies ${JSON.stringify(wrongCookies)}`,
  );

  // 3. Log in: caje sets the session cookie and redirects to the dashboard.
  await page.fill('input#token', token);
  const [loginResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/_caje/login') && r.request().method() === 'POST'),
    page.waitForURL((u) => u.pathname === '/_caje/list'),
    page.click('button#login'),
  ]);
  await page.waitForLoadState('load');
  require_(
    'POST /_caje/login answers 303 to /_caje/list',
    loginResponse.status() === 303 && loginResponse.headers()['location'] === '/_caje/list',
    `status ${loginResponse.status()}, location ${loginResponse.headers()['location']}`,
  );
  // All cookies: filtering by URL would also filter by path, and this one is
  // scoped to /_caje.
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name.startsWith('caje_session'));
  check(
    'session cookie caje_session is HttpOnly, SameSite=Strict, Path=/_caje',
    !!session && session.httpOnly && session.sameSite === 'Strict' && session.path === '/_caje',
    JSON.stringify(session ?? null),
  );
  const documentCookie = await page.evaluate(() => document.cookie);
  check(
    'document.cookie does not expose caje_session',
    !documentCookie.includes('caje_session'),
    `document.cookie = ${JSON.stringify(documentCookie)}`,
  );

  // 4. The overview: charts drawn from the samples of the traffic the
  // script made (a sample is taken every 2 s: reload until one holds it).
  const chartDeadline = Date.now() + SETTLE_TIMEOUT_MS;
  let charts = {};
  for (;;) {
    await page.goto(`${base}/_caje/`);
    charts = await page.$$eval('svg.chart', (svgs) =>
      Object.fromEntries(
        svgs.map((s) => [
          s.id,
          {
            points: Number(s.dataset.points ?? -1),
            max: Number(s.dataset.max ?? -1),
            lines: s.querySelectorAll('polyline, circle').length,
          },
        ]),
      ),
    );
    if ((charts['chart-requests']?.points ?? 0) > 0 && (charts['chart-hit-ratio']?.max ?? 0) > 0) break;
    if (Date.now() > chartDeadline) break;
    await page.waitForTimeout(500);
  }
  for (const [id, what] of [
    ['chart-requests', 'requests by cache status'],
    ['chart-hit-ratio', 'hit ratio'],
    ['chart-latency', 'origin latency'],
  ]) {
    const c = charts[id];
    check(
      `#${id} draws the ${what} with data (points > 0, max > 0, a line or dot)`,
      !!c && c.points > 0 && c.max > 0 && c.lines > 0,
      JSON.stringify(c ?? null),
    );
  }
  const mailbox = charts['chart-mailbox'];
  check('#chart-mailbox draws each actor\'s mailbox depth', !!mailbox && mailbox.points > 0 && mailbox.lines > 0,
    JSON.stringify(mailbox ?? null));
  const actors = await page.$$eval('#actors td:first-child', (cells) => cells.map((c) => c.textContent.trim()));
  check('#actors lists the cache_store, manifest and populator actors',
    ['cache_store', 'manifest', 'populator'].every((a) => actors.includes(a)), JSON.stringify(actors));
  const regions = await page.$$eval('#regions tr', (rows) =>
    rows
      .filter((r) => r.querySelector('td'))
      .map((r) => ({
        node: r.querySelector('td.node')?.textContent.trim() ?? '',
        pages: r.querySelector('td.pages')?.textContent.trim() ?? '',
        recent: r.querySelector('td.recent')?.textContent.trim() ?? '',
      })),
  );
  check(
    `#regions lists this node with ${expectedPaths.length} pages stored recently`,
    regions.some((r) => r.node.endsWith('(this node)') && r.pages === String(expectedPaths.length) &&
      r.recent === String(expectedPaths.length)),
    JSON.stringify(regions),
  );
  check('#lag says this node is standalone', (await text(page, '#lag')).includes('standalone'));
  if (screenshot) {
    const overviewShot = screenshot.replace(/(\.png)?$/, '-overview.png');
    await page.screenshot({ path: overviewShot, fullPage: true });
    console.log(`screenshot: ${overviewShot}`);
  }
  await page.click('a#to-list');
  await page.waitForURL((u) => u.pathname === '/_caje/list');

  // 5. "Clear manifest" empties it for every region: it asks first, and
  // answered "no" it posts nothing.
  await page.click('button#clear-db');
  await page.waitForTimeout(200);
  const asked = dialogs.find((d) => d.type === 'confirm');
  check(
    '"Clear manifest" asks for confirmation, naming every region',
    !!asked && asked.message.includes('every region'),
    JSON.stringify(dialogs),
  );
  check('declined, "Clear manifest" posts nothing', !posts.includes('/_caje/clear_db'), JSON.stringify(posts));

  // 6. The dashboard before populating: both pages missing, cache empty.
  const role = await text(page, '#role');
  check('#role reads "standalone"', role === 'standalone', `got ${JSON.stringify(role)}`);
  const before = await pageRows(page);
  check(
    `#pages lists exactly ${expectedPaths.join(' and ')}`,
    sameSet(before.map((r) => r.path), expectedPaths),
    JSON.stringify(before),
  );
  check(
    'every #pages row reads "missing" (class missing)',
    before.length > 0 && before.every((r) => r.here === 'missing' && r.hereClass.split(/\s+/).includes('missing')),
    JSON.stringify(before),
  );
  const cacheBefore = await text(page, '#cache-total');
  check('#cache-total reads 0', cacheBefore === '0', `got ${JSON.stringify(cacheBefore)}`);
  const manifestBefore = await text(page, '#manifest-total');
  check(
    `#manifest-total reads ${expectedPaths.length}`,
    manifestBefore === String(expectedPaths.length),
    `got ${JSON.stringify(manifestBefore)}`,
  );

  // 7. Populate now: the button posts with the cookie and reports the queue.
  const [populateResponse] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/_caje/populate') && r.request().method() === 'POST'),
    page.click('button#populate'),
  ]);
  await page.waitForSelector('pre#result[data-done="1"]', { timeout: STEP_TIMEOUT_MS });
  const result = await text(page, 'pre#result');
  const wantResult = `200 queued ${expectedPaths.length} page(s)`;
  check(
    `#populate answers "${wantResult}…" (${JSON.stringify(result)})`,
    populateResponse.status() === 200 && result.startsWith(wantResult),
    `status ${populateResponse.status()}, #result = ${JSON.stringify(result)}`,
  );
  for (const path of expectedPaths) {
    check(
      `#result names ${path}`,
      result.split(/\s+/).some((u) => u.startsWith('http') && new URL(u).pathname === path),
      JSON.stringify(result),
    );
  }

  // 8. Reload until the populator has fetched every page (/fast takes 1 s).
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  let after = [];
  let cacheAfter = '';
  let reloads = 0;
  for (;;) {
    await page.goto(`${base}/_caje/list`);
    reloads += 1;
    if (new URL(page.url()).pathname !== '/_caje/list') {
      throw new Error(`reloading the dashboard landed on ${page.url()}: the session was lost`);
    }
    cacheAfter = await text(page, '#cache-total');
    after = await pageRows(page);
    const settled =
      cacheAfter === String(expectedPaths.length) && after.length > 0 && after.every((r) => r.here !== 'missing');
    if (settled || Date.now() > deadline) break;
    await page.waitForTimeout(250);
  }
  check(
    `#cache-total reaches ${expectedPaths.length} after populating (${reloads} load(s))`,
    cacheAfter === String(expectedPaths.length),
    `still ${JSON.stringify(cacheAfter)} after ${SETTLE_TIMEOUT_MS / 1000} s`,
  );
  check(
    'no #pages row reads "missing"; each reads "yes" (class here)',
    sameSet(after.map((r) => r.path), expectedPaths) &&
      after.every((r) => r.here === 'yes' && r.hereClass.split(/\s+/).includes('here')),
    JSON.stringify(after),
  );
  const entryPaths = await page.$$eval('#entries td.path', (cells) => cells.map((c) => c.textContent.trim()));
  check('#entries lists the fetched pages', sameSet(entryPaths, expectedPaths), JSON.stringify(entryPaths));
  const fetched = Number(await text(page, '#fetched'));
  check(`#fetched is at least ${expectedPaths.length}`, fetched >= expectedPaths.length, `got ${fetched}`);

  // 9. Log out: the form posts the CSRF token; the session is gone.
  if (screenshot) {
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`screenshot: ${screenshot}`);
  }
  await Promise.all([page.waitForURL((u) => u.pathname === '/_caje/login'), page.click('button#logout')]);
  const leftCookies = (await context.cookies()).filter((c) => c.name.startsWith('caje_session'));
  await page.goto(`${base}/_caje/list`);
  check(
    '#logout ends the session: cookie gone, /_caje/list sends to the login form',
    leftCookies.length === 0 && new URL(page.url()).pathname === '/_caje/login',
    `cookies ${JSON.stringify(leftCookies)}, landed on ${page.url()}`,
  );

  check('no JavaScript errors on the pages', pageErrors.length === 0, pageErrors.join('; '));
  check('no Content Security Policy violations', cspViolations.length === 0, cspViolations.join('; '));
  check('no page loaded anything from elsewhere', elsewhere.length === 0, elsewhere.join(' '));
} catch (e) {
  failed += 1;
  console.log(`not ok - ${e && e.message ? e.message.split('\n')[0] : e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
}

console.log(`dashboard: ${passed} passed, ${failed} failed`);
if (process.env.CAJE_COUNTS_FILE) writeFileSync(process.env.CAJE_COUNTS_FILE, `${passed} ${failed}\n`);
process.exit(failed === 0 ? 0 : 1);
