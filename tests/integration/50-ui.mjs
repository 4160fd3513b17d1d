// The web UI in a real browser (Debian's chromium driven by playwright-core):
// log in, see health, launch nothing yet but list templates, create and revoke
// an API token on the account page, admin pages, log out; a wrong password
// shows the API's sentence; the login page honours only /container/ return
// addresses. (66-ui-*.mjs go through the rest of the UI.)
import {
  check, done, launchChromium, notOk, ok, skipWithoutChromium, submitLogin, watchedPage,
} from '../lib/tap.mjs';

const URL = process.env.BERTH_URL;
const PW = process.env.BERTH_ADMIN_PASSWORD;
skipWithoutChromium('browser tests');
const browser = await launchChromium();
try {
  const { page, errors } = await watchedPage(browser);

  await page.goto(URL + '/');
  await check('an anonymous visitor gets the login form', async () =>
    page.locator('#login-form').isVisible());
  await check('the health pill shows the service healthy', async () => {
    await page.waitForFunction(() => document.querySelector('#health').textContent !== 'checking…');
    return (await page.textContent('#health')) === 'healthy';
  });

  await submitLogin(page, 'admin', 'not-the-password');
  await check('a wrong password shows the API\'s sentence, not whether the user exists', async () => {
    await page.waitForSelector('#flash:not([hidden])');
    const t = await page.textContent('#flash');
    return /user name or password/i.test(t) || /invalid|wrong|incorrect/i.test(t);
  });

  await page.fill('#login-form [name=password]', PW);
  await page.click('#login-form button');
  await check('logging in shows the workspace view with the user and role', async () => {
    await page.waitForSelector('#app-view:not([hidden])');
    return (await page.textContent('#whoami')) === 'admin (admin)';
  });
  const templatesApi = await page.evaluate(async () => (await fetch('/api/v1/templates')).status);
  if (templatesApi === 404) {
    ok('the launch form lists the seeded templates # SKIP GET /api/v1/templates not implemented yet');
  } else {
    await check('the launch form lists the seeded templates', async () => {
      await page.waitForFunction(() => document.querySelectorAll('#gallery .tpl-name').length > 0);
      return (await page.locator('#gallery .tpl-name', { hasText: /^web$/ }).count()) > 0;
    });
  }
  await check('the session cookie is HttpOnly and SameSite=Lax', async () => {
    const c = (await page.context().cookies()).find((x) => x.name === 'berth_session');
    return c && c.httpOnly && c.sameSite === 'Lax';
  });

  await page.click('#nav a[href="/account"]');
  await page.waitForURL(/\/account$/);
  await page.fill('#token-form [name=name]', 'ui-test');
  await page.click('#token-form button');
  await check('creating a token shows it once', async () => {
    await page.waitForSelector('#new-token:not([hidden])');
    return /^berth_[0-9a-f]{64}$/.test((await page.textContent('#new-token-value')).trim());
  });
  await check('the new token is listed', async () => {
    /* the list is fetched again after the create: wait for that answer */
    await page.locator('#tokens tbody tr', { hasText: 'ui-test' }).first().waitFor({ timeout: 5000 });
    return (await page.locator('#tokens tbody tr', { hasText: 'ui-test' }).count()) === 1;
  });
  await page.locator('#tokens tbody tr', { hasText: 'ui-test' }).getByRole('button', { name: 'Revoke' }).click();
  await check('revoking removes it from the list', async () => {
    await page.waitForFunction(() => ![...document.querySelectorAll('#tokens tbody tr')].some((r) => r.textContent.includes('ui-test')));
    return true;
  });

  await check('admins see users and the audit log', async () => {
    await page.click('#nav a[href="/admin"]');
    await page.click('.tabs a[href="/admin/audit"]');
    await page.waitForFunction(() => document.querySelectorAll('#audit tbody tr').length > 0);
    await page.click('.tabs a[href="/admin/users"]');
    await page.locator('#users tbody tr', { hasText: 'admin' }).first().waitFor({ timeout: 5000 });
    return (await page.locator('#users tbody tr', { hasText: 'admin' }).count()) >= 1;
  });
  const uname = 'ui' + Math.random().toString(36).slice(2, 8);
  await page.fill('#user-form [name=username]', uname);
  await page.fill('#user-form [name=password]', 'ui-test-password');
  await page.selectOption('#user-form [name=role]', 'viewer');
  await page.click('#user-form button');
  await check('an admin adds a user from the page (CSRF token sent)', async () => {
    await page.waitForFunction((n) => [...document.querySelectorAll('#users tbody tr')].some((r) => r.textContent.includes(n)), uname);
    return true;
  });

  await page.click('#logout');
  await check('logging out returns to the login form', async () => {
    await page.waitForSelector('#login-view:not([hidden])');
    return true;
  });
  await check('after logout the old session no longer works', async () => {
    const r = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
    return r === 401;
  });

  // Return addresses: only /container/ paths are followed after login.
  await page.goto(URL + '/?next=https://evil.example/');
  await submitLogin(page, uname, 'ui-test-password');
  await check('a foreign return address is ignored after login', async () => {
    await page.waitForSelector('#app-view:not([hidden])');
    return new globalThis.URL(page.url()).origin === new globalThis.URL(URL).origin;
  });
  await check('a viewer gets no launch form', async () => page.locator('#launch-form').isHidden());
  await page.screenshot({ path: `${process.env.BERTH_VAR || '/tmp'}/ui-viewer.png`, fullPage: true });
  await check('the page raised no script errors', async () => errors.length === 0 || (console.error(errors), false));
} finally {
  await browser.close();
}
done();
