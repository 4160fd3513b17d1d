// The not-running page in a real browser (issue 13, item 5): Debian's
// chromium, the test stack's workspace origin ({user}.localhost) and a real
// container. The owner opens a stopped workspace (signing in through the UI
// origin), sees berth's page naming the status, presses Start, confirms with
// a click on the UI origin and lands back on the running workspace. The page
// also goes on by itself when the instance is started elsewhere. Hostile code
// on the workspace origin cannot start anything: its POSTs to the API are
// refused and the instance stays stopped.
import {
  apiCall, browserUsers, check, done, launchChromium, notOk, sleep, submitLogin, waitStatus,
  watchedPage, workspaceOrigin,
} from '../lib/tap.mjs';

const URL = process.env.BERTH_URL;
const call = apiCall;
const P = 'nb' + Math.random().toString(36).slice(2, 6);
const A = `${P}-a`;
const { users: [sa] } = await browserUsers('not-running page browser tests', [A]);
const site = (await call(sa, 'POST', '/api/v1/instances', { template: 'web', name: 'site' })).body.instance;
if (!site) {
  notOk('a user and an instance for the browser test');
  process.exit(1);
}
await waitStatus(sa, site.id, ['running']);
await call(sa, 'POST', `/api/v1/instances/${site.id}/stop`);
await check('the instance is stopped', async () => (await waitStatus(sa, site.id, ['stopped'])) === 'stopped');
const AO = workspaceOrigin(A);
const ENV = `${site.urls.open}cgi-bin/env`;

const browser = await launchChromium();
try {
  const { ctx, page, errors } = await watchedPage(browser);
  // The page shows A's running workspace (its env CGI) within a minute, at ENV.
  const showsWorkspace = async () => {
    for (let k = 0; k < 120; k++) {
      const body = await page.textContent('body').catch(() => '');
      if (body.includes(`BERTH_USER=${A}`)) return page.url() === ENV;
      await sleep(500);
    }
    return false;
  };
  const statuses = [];
  page.on('response', (r) => { if (r.url().startsWith(`${AO}/container/`) && r.request().isNavigationRequest()) statuses.push(r.status()); });

  // Signed out: the workspace sends the browser to log in on the UI origin,
  // then back -- to berth's page, since the instance is stopped.
  await page.goto(ENV);
  await page.waitForSelector('#login-form', { state: 'visible' });
  await submitLogin(page, A, `pw-${A}-1`);
  await check('the owner lands on berth\'s page on the workspace origin, naming the status "stopped"', async () => {
    await page.waitForURL(ENV, { timeout: 15000 });
    await page.waitForSelector('#berth-unavailable', { timeout: 10000 });
    return (await page.textContent('#berth-status')) === 'stopped' &&
      (await page.textContent('h2')).includes('not running');
  });
  await check('... which came with status 503, not 502', async () => statuses.at(-1) === 503 && !statuses.includes(502));
  await check('... and its stylesheet and script loaded from the workspace origin', async () =>
    page.evaluate(() => getComputedStyle(document.querySelector('a.button')).display === 'inline-block' &&
      [...document.scripts].every((s) => s.src.startsWith(location.origin + '/_berth/'))));

  // Hostile code on the workspace origin tries to start the instance itself.
  await check('a script on the workspace origin cannot start the instance through the API', async () => {
    const results = await page.evaluate(async ({ ui, id }) => {
      const out = [];
      for (const init of [
        { method: 'POST', credentials: 'include' },
        { method: 'POST', credentials: 'include', mode: 'no-cors' },
        { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'x' }, body: '{}' },
      ]) {
        try {
          const r = await fetch(`${ui}/api/v1/instances/${id}/start`, init);
          out.push(r.type === 'opaque' ? 'opaque' : r.status);
        } catch { out.push('blocked'); }
      }
      return out;
    }, { ui: URL, id: site.id });
    await sleep(1500);
    const st = (await call(sa, 'GET', `/api/v1/instances/${site.id}`)).body.status;
    if (st !== 'stopped') console.error(`  results ${JSON.stringify(results)}, status ${st}`);
    return st === 'stopped' && results.every((x) => x === 'blocked' || x === 'opaque' || x === 401 || x === 403);
  });
  await check('... nor by a form posted to the API from there', async () => {
    const p = await ctx.newPage();
    await p.goto(ENV);
    await p.evaluate(({ ui, id }) => {
      const f = document.createElement('form');
      f.method = 'POST';
      f.action = `${ui}/api/v1/instances/${id}/start`;
      document.body.append(f);
      f.submit();
    }, { ui: URL, id: site.id });
    await sleep(2000);
    const st = (await call(sa, 'GET', `/api/v1/instances/${site.id}`)).body.status;
    await p.close();
    return st === 'stopped';
  });

  // Start: a link to the UI origin, where the owner confirms with a click.
  await page.click('#berth-start a');
  await check('Start goes to the UI origin, which asks to confirm (nothing started yet)', async () => {
    await page.waitForSelector('#start-view:not([hidden])', { timeout: 10000 });
    const st = (await call(sa, 'GET', `/api/v1/instances/${site.id}`)).body.status;
    return new globalThis.URL(page.url()).origin === new globalThis.URL(URL).origin &&
      (await page.textContent('#start-text')).includes('site') && st === 'stopped';
  });
  await page.click('#start-confirm');
  await check('after the click the browser lands back on the running workspace, at the address it was at', async () => {
    await page.waitForURL(ENV, { timeout: 60000 });
    return showsWorkspace();
  });
  await check('a Start link whose return address is another instance\'s goes back to this one\'s start instead', async () => {
    const p = await ctx.newPage();
    const other = `/container/${A}-x/site/`;
    await p.goto(`${URL}/?start=${site.id}&path=${encodeURIComponent(other)}`);
    await p.waitForSelector('#start-view:not([hidden])', { timeout: 10000 });
    await p.click('#start-confirm'); // running already: "Open it"
    await p.waitForURL((u) => u.origin === AO, { timeout: 30000 });
    const url = p.url();
    await p.close();
    return url.startsWith(site.urls.open);
  });
  await check('... and the instance is running', async () => (await call(sa, 'GET', `/api/v1/instances/${site.id}`)).body.status === 'running');

  // The page goes on by itself when the instance starts some other way.
  await call(sa, 'POST', `/api/v1/instances/${site.id}/stop`);
  await waitStatus(sa, site.id, ['stopped']);
  await page.goto(ENV);
  await check('stopped again: the page is berth\'s', async () => (await page.textContent('#berth-status').catch(() => '')) === 'stopped');
  await call(sa, 'POST', `/api/v1/instances/${site.id}/start`);
  await check('started through the API meanwhile: the open page reloads by itself into the workspace', showsWorkspace);
  await check('no script errors on berth\'s pages', async () => errors.length === 0 || (console.error(errors), false));
} finally {
  await browser.close();
  await call(sa, 'DELETE', `/api/v1/instances/${site.id}?delete_volumes=true`);
}
done();
