// The web UI's workspace pages in a real browser against real containers: a
// developer launches from the template gallery and sees it reach running
// without reloading, opens it in a new tab through its workspace URL, reads
// its detail page (logs followed live, figures, events, a command run),
// stops, starts and deletes it keeping its volume, re-attaches that volume to
// the next launch, and adds an SSH key on the account page. A viewer sees the
// same workspace with no button that acts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  apiCall, apiLogin, browserUsers, check, done, launchChromium, notOk, submitLogin, watchedPage,
} from '../lib/tap.mjs';

const URL = process.env.BERTH_URL;
const U = 'uw' + Math.random().toString(36).slice(2, 6);
const V = `${U}-v`;
const { admin, users: [su] } = await browserUsers('web UI workspace browser tests', [U, V]);
const T = 120000; // a launch on a loaded machine

// A card of the workspaces page, by instance name.
const card = (page, name) => page.locator(`#instances article[data-name="${name}"]`);
const statusOf = async (page, name) => (await card(page, name).locator('.status').textContent().catch(() => '')).trim();
const waitCardStatus = (page, name, st, timeout = T) => page.waitForFunction(([n, s]) =>
  document.querySelector(`#instances article[data-name="${n}"] .status`)?.textContent === s, [name, st], { timeout });

const browser = await launchChromium();
try {
  const { ctx, page, errors } = await watchedPage(browser);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`); });
  await page.goto(URL + '/');
  await submitLogin(page, U, `pw-${U}-1`);
  await page.waitForSelector('#app-view:not([hidden])');
  consoleErrors.length = 0; // the anonymous /auth/me 401 before signing in is the API's answer, not an error of a view

  // --- launch from the gallery ---
  await page.locator('#gallery label', { has: page.locator('.tpl-name', { hasText: /^web$/ }) }).click();
  await page.fill('#launch-form [name=name]', 'site');
  await page.click('#launch-form button[type=submit]');
  await check('launching from the gallery shows the new workspace\'s progress, then running and an Open button, without reloading', async () => {
    const before = await page.evaluate(() => performance.getEntriesByType('navigation').length && performance.timeOrigin);
    await page.waitForSelector('#launch-progress #launch-open', { timeout: T });
    const after = await page.evaluate(() => performance.timeOrigin);
    return before === after && (await statusOf(page, 'site')) === 'running';
  });
  const site = (await apiCall(su, 'GET', '/api/v1/instances')).body.items.find((i) => i.name === 'site');
  if (!site) { notOk('the launched instance is in the API'); process.exit(1); }
  await check('the card shows template, age and resources', async () => {
    const t = await card(page, 'site').textContent();
    return t.includes('web') && /\d+ (s|min)/.test(t) && t.includes('0.5 CPU') && t.includes('64 MB');
  });

  // --- detail page, live logs, open in a new tab ---
  await card(page, 'site').locator('h3 a').click();
  await page.waitForURL(`${URL}/instances/site`);
  await check('the detail page shows the logs (followed live)', async () => {
    await page.waitForFunction(() => document.querySelector('#logs')?.textContent.includes('serving /www'), null, { timeout: 30000 });
    return (await page.textContent('#log-state')).includes('following');
  });
  const [tab] = await Promise.all([ctx.waitForEvent('page'), page.locator('.detail-head a.button', { hasText: 'Open' }).click()]);
  await check('Open shows the workspace in a new tab through its workspace URL', async () => {
    await tab.waitForLoadState();
    for (let k = 0; k < 60 && !(await tab.textContent('body').catch(() => '')).includes('berth demo workspace'); k++) await tab.waitForTimeout(500);
    return tab.url().startsWith(site.urls.open) && (await tab.textContent('h1')) === 'berth demo workspace';
  });
  await tab.close();
  await check('the workspace\'s request log line arrives in the followed logs', async () => {
    await page.waitForFunction(() => /GET \/|url:\//.test(document.querySelector('#logs').textContent), null, { timeout: 30000 });
    return true;
  });
  await check('the log search keeps only the matching lines; Pause holds the view', async () => {
    await page.fill('#log-filter', 'serving');
    const t = await page.textContent('#logs');
    await page.fill('#log-filter', '');
    await page.click('#log-pause');
    const pressed = await page.getAttribute('#log-pause', 'aria-pressed');
    await page.click('#log-pause');
    return t.split('\n').every((l) => l.includes('serving')) && pressed === 'true';
  });
  await check('the detail page shows CPU and memory with a sparkline', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#stats svg.spark polyline').length === 2, null, { timeout: 15000 });
    return /%/.test(await page.textContent('#stat-cpu')) && /of 64 MiB/.test(await page.textContent('#stat-mem'));
  });
  await check('the detail page lists lifecycle events and the volume', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#events tbody tr').length > 0);
    return (await page.locator('#events').textContent()).includes('start') && (await page.locator('#facts').textContent()).includes('/data');
  });
  await page.fill('#exec-form [name=command]', "sh -c 'echo kept-by-ui > /data/mark; echo done; exit 3'");
  await page.click('#exec-form button[type=submit]');
  await check('the command box shows the exit code and the output', async () => {
    await page.waitForFunction(() => /exit code/.test(document.querySelector('#exec-exit').textContent), null, { timeout: 30000 });
    return (await page.textContent('#exec-exit')) === 'exit code 3' && (await page.textContent('#exec-output')).trim() === 'done';
  });
  await check('the logs download as a text file', async () => {
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('button[aria-label="Download the log lines"]')]);
    return readFileSync(await dl.path(), 'utf8').includes('serving /www');
  });

  // --- stop, start, delete keeping the volume ---
  await page.click('#nav a[href="/"]');
  await page.waitForURL(`${URL}/`);
  await card(page, 'site').getByRole('button', { name: 'Stop site' }).click();
  await check('Stop: the card goes to stopped by itself', async () => { await waitCardStatus(page, 'site', 'stopped'); return true; });
  await card(page, 'site').getByRole('button', { name: 'Start site' }).click();
  await check('Start: the card goes back to running', async () => { await waitCardStatus(page, 'site', 'running'); return true; });
  await card(page, 'site').getByRole('button', { name: 'Delete site' }).click();
  await check('Delete asks, with the volumes kept by default', async () => {
    await page.waitForSelector('dialog[open]');
    return !(await page.isChecked('dialog [name=delete_volumes]')) && (await page.textContent('dialog')).includes('kept');
  });
  await page.click('dialog button[value=delete]');
  await check('the deleted workspace leaves the page and its volume is kept', async () => {
    await page.waitForFunction(() => !document.querySelector('#instances article[data-name="site"]'), null, { timeout: T });
    const vols = (await apiCall(su, 'GET', '/api/v1/volumes')).body.items;
    return vols.some((v) => v.id === site.volumes[0].id && !v.instance_id);
  });

  // --- re-attach the kept volume ---
  await page.locator('#gallery label', { has: page.locator('.tpl-name', { hasText: /^web$/ }) }).click();
  await check('the launch form offers the kept volume', async () => {
    await page.waitForSelector('#launch-volumes select[name="vol:data"]', { timeout: 10000 });
    return (await page.locator(`#launch-volumes option[value="${site.volumes[0].id}"]`).count()) === 1;
  });
  await page.selectOption('#launch-volumes select[name="vol:data"]', site.volumes[0].id);
  await page.fill('#launch-form [name=name]', 'site2');
  await page.click('#launch-form button[type=submit]');
  await check('the next launch re-attaches it: the file written before is there', async () => {
    await waitCardStatus(page, 'site2', 'running');
    const s2 = (await apiCall(su, 'GET', '/api/v1/instances')).body.items.find((i) => i.name === 'site2');
    const r = await apiCall(su, 'POST', `/api/v1/instances/${s2.id}/exec`, { command: ['cat', '/data/mark'] });
    return s2.volumes[0].id === site.volumes[0].id && r.body.output.trim() === 'kept-by-ui';
  });

  // --- an SSH key ---
  const dir = mkdtempSync(`${tmpdir()}/berth-ui-key.`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ui-test', '-f', `${dir}/k`]);
  const fp = execFileSync('ssh-keygen', ['-lf', `${dir}/k.pub`]).toString().split(' ')[1];
  await page.click('#nav a[href="/account"]');
  await page.fill('#key-form [name=name]', 'laptop');
  await page.fill('#key-form [name=public_key]', readFileSync(`${dir}/k.pub`, 'utf8'));
  await page.click('#key-form button[type=submit]');
  await check('an added SSH key is listed with its fingerprint', async () => {
    await page.locator('#ssh-keys tr[data-name=laptop]').waitFor({ timeout: 10000 });
    return (await page.textContent('#ssh-keys tr[data-name=laptop]')).includes(fp);
  });
  const beforeRefusal = consoleErrors.length;
  await page.fill('#key-form [name=name]', 'broken');
  await page.fill('#key-form [name=public_key]', 'ssh-ed25519 not-a-key');
  await page.click('#key-form button[type=submit]');
  await check('a key that does not parse is refused next to the key field', async () => {
    await page.waitForSelector('#key-form [name=public_key][aria-invalid=true]', { timeout: 10000 });
    const id = await page.getAttribute('#key-form [name=public_key]', 'aria-describedby');
    return (await page.textContent(`[id="${id}"]`)).length > 5;
  });
  // the browser logs the refusal it was sent to get (a 400): that one is no error of the page
  const refusal = consoleErrors.findIndex((e, k) => k >= beforeRefusal && /status of 400/.test(e));
  if (refusal >= 0) consoleErrors.splice(refusal, 1);
  await page.click('#nav a[href="/"]');
  await check('no console errors on the workspace pages', async () => consoleErrors.length === 0 || (console.error(consoleErrors.join('\n')), false));
  await check('no script errors', async () => errors.length === 0 || (console.error(errors), false));

  // --- a viewer: the same kind of page, nothing that acts ---
  const s2 = (await apiCall(su, 'GET', '/api/v1/instances')).body.items.find((i) => i.name === 'site2');
  const vs = await apiLogin(V, `pw-${V}-1`);
  await apiCall(vs, 'POST', '/api/v1/instances', { template: 'web', name: 'ro' });
  const users = (await apiCall(admin, 'GET', `/api/v1/users?q=${V}`)).body.items;
  await apiCall(admin, 'PATCH', `/api/v1/users/${users.find((x) => x.username === V).id}`, { role: 'viewer' });
  const vp = await watchedPage(browser);
  await vp.page.goto(URL + '/');
  await submitLogin(vp.page, V, `pw-${V}-1`);
  await vp.page.waitForSelector('#instances article[data-name=ro]', { timeout: 20000 });
  await check('a viewer sees their workspace with no launch form and no action buttons', async () => {
    await vp.page.waitForTimeout(500);
    return (await vp.page.locator('#launch-form').count()) === 0 &&
      (await vp.page.locator('#instances article button', { hasText: /Start|Stop|Restart|Delete|Snooze/ }).count()) === 0;
  });
  await vp.page.click('#instances article[data-name=ro] h3 a');
  await check('... and a detail page without the command box or actions', async () => {
    await vp.page.waitForSelector('#logs');
    return (await vp.page.locator('#exec-form').count()) === 0 &&
      (await vp.page.locator('.detail-head button', { hasText: /Start|Stop|Restart|Delete/ }).count()) === 0;
  });
  await vp.page.click('#nav a[href="/account"]');
  await check('... and no form to add SSH keys', async () => {
    await vp.page.waitForSelector('#ssh-keys');
    return (await vp.page.locator('#key-form').count()) === 0;
  });
  await vp.ctx.close();

  // leave the machine as found: the instances this test made go
  for (const i of [s2]) await apiCall(su, 'DELETE', `/api/v1/instances/${i.id}?delete_volumes=true`);
  const ro = (await apiCall(admin, 'GET', `/api/v1/instances?all=true&user=${V}`)).body.items;
  for (const i of ro) await apiCall(admin, 'DELETE', `/api/v1/instances/${i.id}?delete_volumes=true`);
} finally {
  await browser.close();
}
done();
