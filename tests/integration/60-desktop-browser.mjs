// The seeded desktop workspace in a real browser (issue 13): Debian's
// chromium opens the instance's urls.open on the workspace origin, signs in
// through the UI origin like a person would, and lands on noVNC, which
// connects by itself through berth's proxy to the container's websockify and
// Xvnc. The remote display takes the browser window's size, and follows it
// when the window changes (resize=remote). Builds berth-demo/desktop:1 with
// scripts/images.sh first (cached); skips when it cannot be built here.
import { spawnSync } from 'node:child_process';
import {
  apiCall, apiLogin, check, done, launchChromium, notOk, ok, skipWithoutChromium, sleep, waitStatus,
} from '../lib/tap.mjs';

const URL = process.env.BERTH_URL;
const PW = process.env.BERTH_ADMIN_PASSWORD;
skipWithoutChromium('desktop workspace in a browser');

const built = spawnSync(`${process.env.ROOT}/scripts/images.sh`, ['desktop'], { encoding: 'utf8' });
if (built.status !== 0) {
  const why = (built.stderr || built.stdout || '').trim().split('\n').pop();
  ok(`desktop workspace in a browser # SKIP berth-demo/desktop:1 could not be built here: ${why}`);
  process.exit(0);
}
console.log(`# images: ${built.stdout.trim()}`);

// The display's size as Xvnc has it, read in the container: "W x H".
async function displaySize(s, id) {
  const r = await apiCall(s, 'POST', `/api/v1/instances/${id}/exec`,
    { command: ['sh', '-c', 'DISPLAY=:0 xrandr --current | sed -n "s/.*current \\([0-9]*\\) x \\([0-9]*\\).*/\\1x\\2/p"'] });
  return String(r.body.output || '').trim();
}
async function waitSize(s, id, want, ms = 15000) {
  let got;
  for (const end = Date.now() + ms; Date.now() < end; await sleep(250)) {
    got = await displaySize(s, id);
    if (got === want) return got;
  }
  return got;
}

const P = 'dk' + Math.random().toString(36).slice(2, 6);
const admin = await apiLogin('admin', PW);
const uid = (await apiCall(admin, 'POST', '/api/v1/users', { username: P, password: `pw-${P}-1`, role: 'developer' })).body.id;
const s = await apiLogin(P, `pw-${P}-1`);
const inst = (await apiCall(s, 'POST', '/api/v1/instances', { template: 'desktop', name: 'desk' })).body.instance;
if (!inst) {
  notOk('a developer launches the seeded desktop template');
  process.exit(1);
}
const started = Date.now();
await check('the desktop workspace runs', async () => (await waitStatus(s, inst.id, ['running'])) === 'running');

const browser = await launchChromium();
try {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // the route goes live a moment after the instance runs, and websockify a
  // moment after the container starts: berth's not-running page reloads by itself
  await page.goto(inst.urls.open);
  await page.waitForSelector('#login-form', { state: 'visible' });
  await page.fill('#login-form [name=username]', P);
  await page.fill('#login-form [name=password]', `pw-${P}-1`);
  await page.click('#login-form button');
  await check('after signing in, noVNC connects by itself through berth', async () => {
    await page.waitForFunction(() => document.documentElement.classList.contains('noVNC_connected'),
      null, { timeout: 60000 });
    return true;
  });
  console.log(`# desktop: noVNC connected ${Math.round((Date.now() - started) / 1000)} s after the launch`);
  await check('... on the workspace origin, at the instance\'s own address', async () =>
    page.url().startsWith(inst.urls.open.split('?')[0]));
  await check('... and says it is connected', async () =>
    /connected/i.test(await page.textContent('#noVNC_status').catch(() => '')) ||
    !(await page.isVisible('#noVNC_status')));
  let size;
  await check('the remote display takes the browser window\'s size (1000x700)', async () =>
    (size = await waitSize(s, inst.id, '1000x700')) === '1000x700');
  if (size !== '1000x700') console.error(`  display size: ${size}`);
  await page.setViewportSize({ width: 900, height: 600 });
  await check('... and follows it when the window changes (900x600)', async () =>
    (size = await waitSize(s, inst.id, '900x600')) === '900x600');
  if (size !== '900x600') console.error(`  display size: ${size}`);
  await check('no script error on the page', async () => errors.length === 0 || (console.error('  ' + errors.join('\n  ')), false));
} catch (e) {
  notOk('the desktop browser test ran to its end', String(e).split('\n')[0]);
} finally {
  await browser.close();
  await apiCall(s, 'DELETE', `/api/v1/instances/${inst.id}?delete_volumes=true`);
  await waitStatus(s, inst.id, ['deleted'], 240);
  if (uid) await apiCall(admin, 'DELETE', `/api/v1/users/${uid}`);
}
done();
