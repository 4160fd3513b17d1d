// Every view of the web UI, as an admin and as a developer with a running
// workspace: reached by its address and by reload (deep links land on the
// same view), no horizontal scrolling at 375 px, none at 1,920 px either, no
// console or script errors, keyboard reachable, and axe-core finds no
// serious or critical violation. Screenshots at 1,280 and 375 px go to
// $BERTH_VAR/ui-shots (test artefacts, not committed).
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import {
  apiCall, browserUsers, check, done, launchChromium, submitLogin, waitStatus,
} from '../lib/tap.mjs';

const URL = process.env.BERTH_URL;
const SHOTS = `${process.env.BERTH_VAR || '/tmp'}/ui-shots`;
mkdirSync(SHOTS, { recursive: true });
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const D = 'uv' + Math.random().toString(36).slice(2, 6);
const { users: [sd] } = await browserUsers('web UI views browser tests', [D]);
const inst = (await apiCall(sd, 'POST', '/api/v1/instances', { template: 'web', name: 'look' })).body.instance;
await waitStatus(sd, inst.id, ['running']);

const ADMIN_VIEWS = ['/', '/account', '/admin', '/admin/users', '/admin/templates', '/admin/instances',
  '/admin/volumes', '/admin/audit', '/admin/nodes', `/instances/look?user=${D}`];
const DEV_VIEWS = ['/', '/instances/look', '/account'];

const browser = await launchChromium();
const axeTotals = { views: 0, serious: 0, critical: 0, moderate: 0, minor: 0 };
try {
  for (const [who, pw, views] of [['admin', process.env.BERTH_ADMIN_PASSWORD, ADMIN_VIEWS], [D, `pw-${D}-1`, DEV_VIEWS]]) {
    // The CSP forbids inline scripts, axe's included: this context lets the
    // test inject it; the checks of errors use a context that keeps the CSP.
    for (const bypassCSP of [false, true]) {
      const ctx = await browser.newContext({ bypassCSP, viewport: { width: 1280, height: 900 } });
      const page = await ctx.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(`${page.url()}: ${e}`));
      page.on('console', (m) => { if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`); });
      await page.goto(URL + '/');
      await submitLogin(page, who, pw);
      await page.waitForSelector('#app-view:not([hidden])');
      errors.length = 0; // the anonymous /auth/me 401 before signing in is the API's answer
      for (const v of views) {
        const tag = `${who === 'admin' ? 'admin' : 'developer'} ${v.replace(/\?.*/, '')}`;
        await page.goto(URL + v);
        await page.waitForSelector('#view > *');
        await page.waitForLoadState('networkidle').catch(() => {});
        const heading = await page.textContent('#view h1');
        if (!bypassCSP) {
          await page.reload();
          await page.waitForSelector('#view h1');
          await check(`${tag}: a reload lands on the same view`, async () =>
            page.url() === URL + v && (await page.textContent('#view h1')) === heading);
          const slug = `${who === 'admin' ? 'admin' : 'dev'}${v.replace(/[/?=]/g, '_')}`;
          await page.waitForTimeout(1000); // the first figures and log lines
          await page.screenshot({ path: `${SHOTS}/${slug}-1280.png`, fullPage: true });
          await page.setViewportSize({ width: 375, height: 800 });
          await page.waitForTimeout(200);
          await check(`${tag}: no horizontal overflow at 375 px`, async () => {
            const w = await page.evaluate(() => document.scrollingElement.scrollWidth);
            return w <= 375 || (console.error(`  scrollWidth ${w}`), false);
          });
          await page.screenshot({ path: `${SHOTS}/${slug}-375.png`, fullPage: true });
          await page.setViewportSize({ width: 1920, height: 1000 });
          await page.waitForTimeout(200);
          await check(`${tag}: no horizontal overflow at 1,920 px`, async () =>
            (await page.evaluate(() => document.scrollingElement.scrollWidth)) <= 1920);
          await page.setViewportSize({ width: 1280, height: 900 });
        } else {
          await page.addScriptTag({ path: AXE });
          const r = await page.evaluate(async () => {
            const res = await globalThis.axe.run(document, { resultTypes: ['violations'] });
            return res.violations.map((x) => ({ id: x.id, impact: x.impact, n: x.nodes.length, where: x.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
          });
          axeTotals.views++;
          for (const x of r) axeTotals[x.impact] = (axeTotals[x.impact] || 0) + 1;
          const bad = r.filter((x) => x.impact === 'serious' || x.impact === 'critical');
          await check(`${tag}: axe-core finds no serious or critical violation`, async () =>
            bad.length === 0 || (console.error(JSON.stringify(bad)), false));
        }
      }
      if (!bypassCSP) {
        await check(`${who}: no console or script errors on any view`, async () => errors.length === 0 || (console.error(errors.join('\n')), false));
      }
      await ctx.close();
    }
  }

  // Keyboard: the developer launches and reaches a card's actions with Tab alone.
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(URL + '/');
  await submitLogin(page, D, `pw-${D}-1`);
  await page.waitForSelector('#instances article[data-name=look]');
  await check('keyboard: Tab reaches the template choice, the launch button and the card\'s Stop button, each with a visible name', async () => {
    const seen = [];
    for (let k = 0; k < 40; k++) {
      await page.keyboard.press('Tab');
      seen.push(await page.evaluate(() => {
        const a = document.activeElement;
        return `${a.tagName}:${a.getAttribute('aria-label') || a.labels?.[0]?.textContent?.trim().slice(0, 20) || a.textContent.trim().slice(0, 20)}`;
      }));
    }
    const s = seen.join('|');
    return /INPUT:[a-z]/.test(s) && s.includes('BUTTON:Launch') && s.includes('BUTTON:Stop look');
  });
  await ctx.close();
  console.log(`# axe-core: ${axeTotals.views} views scanned; violations by impact: critical ${axeTotals.critical}, serious ${axeTotals.serious}, moderate ${axeTotals.moderate}, minor ${axeTotals.minor}`);
  console.log(`# screenshots in ${SHOTS}`);
} finally {
  await browser.close();
  await apiCall(sd, 'DELETE', `/api/v1/instances/${inst.id}?delete_volumes=true`);
}
done();
