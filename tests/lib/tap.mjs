// The shared part of the JavaScript integration tests: TAP lines as
// tests/run.sh counts them, a signed-in API session over plain fetch, and
// Debian's chromium through playwright-core with the flags these machines
// need.
import { existsSync } from 'node:fs';

let failed = 0;
export const ok = (m) => console.log(`ok - ${m}`);
export const notOk = (m, d) => {
  failed++;
  console.log(`not ok - ${m}`);
  if (d) console.error('  ' + d);
};
// check WHAT FN: ok when FN resolves truthy; its exception's first line otherwise.
export const check = async (what, fn) => {
  try { (await fn()) ? ok(what) : notOk(what); } catch (e) { notOk(what, String(e).split('\n')[0]); }
};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The exit status of the test: 1 when any check failed.
export const done = () => process.exit(failed ? 1 : 0);

// A skipped test (exit 0) on a machine without chromium.
export function skipWithoutChromium(what) {
  if (!existsSync('/usr/bin/chromium')) {
    ok(`${what} # SKIP /usr/bin/chromium not installed`);
    process.exit(0);
  }
}

// Debian's chromium with the flags these machines need.
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-gpu', '--no-first-run'],
  });
}

// A session of user on the test stack's UI origin (BERTH_URL): its cookie and
// CSRF token, for apiCall.
export async function apiLogin(username, password) {
  const r = await fetch(`${process.env.BERTH_URL}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }),
  });
  const cookie = (r.headers.get('set-cookie') || '').split(';')[0];
  return { cookie, csrf: (await r.json()).csrf_token };
}
// One API request of session s: {status, body} (body parsed when it is JSON).
export async function apiCall(s, method, path, body) {
  const r = await fetch(process.env.BERTH_URL + path, {
    method,
    headers: { Cookie: s.cookie, 'X-CSRF-Token': s.csrf, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  try { return { status: r.status, body: JSON.parse(text) }; } catch { return { status: r.status, body: text }; }
}

// The start of a browser test against real containers: skipped (exit 0)
// without chromium; else each name becomes a developer (password
// pw-NAME-1) through the admin's session and is signed in. The admin's
// session and the users', in the order of names.
export async function browserUsers(what, names) {
  skipWithoutChromium(what);
  const admin = await apiLogin('admin', process.env.BERTH_ADMIN_PASSWORD);
  const users = [];
  for (const u of names) await apiCall(admin, 'POST', '/api/v1/users', { username: u, password: `pw-${u}-1`, role: 'developer' });
  for (const u of names) users.push(await apiLogin(u, `pw-${u}-1`));
  return { admin, users };
}
// The status of instance id as session s reads it, every 250 ms until it is
// one of want or tries reads are done; the last one read.
export async function waitStatus(s, id, want, tries = 480) {
  let st;
  for (let k = 0; k < tries; k++) {
    st = (await apiCall(s, 'GET', `/api/v1/instances/${id}`)).body.status;
    if (want.includes(st)) return st;
    await sleep(250);
  }
  return st;
}
// The workspace origin of user on the test stack ({user}.localhost, the UI's port).
export const workspaceOrigin = (user) => `http://${user}.localhost:${new URL(process.env.BERTH_URL).port}`;
// A page of browser in a context of its own, and the script errors it raises.
export async function watchedPage(browser) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  return { ctx, page, errors };
}
// Submit the login form on page (the UI's, shown) as username with password.
export async function submitLogin(page, username, password) {
  await page.fill('#login-form [name=username]', username);
  await page.fill('#login-form [name=password]', password);
  await page.click('#login-form button');
}
