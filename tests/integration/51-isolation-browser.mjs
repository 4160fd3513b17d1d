// Workspace isolation in a real browser (issue 10): Debian's chromium, the
// test stack's workspace origin ({user}.localhost) and real containers.
// A signed-out browser opening urls.open is sent to log in on the UI origin
// and comes back to the workspace; then a page in the workspace acts as
// hostile code would: it cannot read the UI origin's /api/v1/auth/me, sees no
// berth credential in document.cookie, cannot replace the UI session with the
// container's Set-Cookie, cannot register a service worker over the UI or
// wider than its path; a WebSocket into the workspace from another origin is
// refused while the workspace's own opens; the login page follows none of
// the return-address tricks.
import {
  apiCall, browserUsers, check, done, launchChromium, notOk, sleep, submitLogin, waitStatus,
  watchedPage, workspaceOrigin,
} from '../lib/tap.mjs';

const URL = process.env.BERTH_URL;
const PORT = new globalThis.URL(URL).port;

// ---- set-up through the API (UI origin, plain fetch) ----
const call = apiCall;
const P = 'ib' + Math.random().toString(36).slice(2, 6);
const A = `${P}-a`, B = `${P}-b`;
const { admin, users: [sa, sb] } = await browserUsers('browser isolation tests', [A, B]);
await call(admin, 'POST', '/api/v1/templates', {
  name: `${P}-echo`, image: 'berth-demo/web:1', command: ['/usr/local/bin/berth-echo'],
  http_port: 8080, proxy_mode: 'keep', cpus: 0.5, memory_mb: 64, pids_limit: 64,
});
const site = (await call(sa, 'POST', '/api/v1/instances', { template: 'web', name: 'site' })).body.instance;
const echo = (await call(sa, 'POST', '/api/v1/instances', { template: `${P}-echo`, name: 'echo' })).body.instance;
const bsite = (await call(sb, 'POST', '/api/v1/instances', { template: 'web', name: 'site' })).body.instance;
if (!site || !echo || !bsite) {
  notOk('users and instances for the browser test');
  process.exit(1);
}
for (const [s, i] of [[sa, site], [sa, echo], [sb, bsite]]) await waitStatus(s, i.id, ['running'], 240);
// Files the hostile page uses, served by A's own container: a CGI whose
// answer sets berth_session for "/" and claims a service-worker scope of "/".
const evil = String.raw`printf '#!/bin/sh\nprintf "Set-Cookie: berth_session=0000000000000000000000000000000000000000000000000000000000000000; Path=/\\r\\nService-Worker-Allowed: /\\r\\nContent-Type: text/javascript\\r\\n\\r\\nself.addEventListener(\\"fetch\\", () => {});\\n"\n' > /www/cgi-bin/evil && chmod 755 /www/cgi-bin/evil`;
const ex = await call(sa, 'POST', `/api/v1/instances/${site.id}/exec`, { command: ['sh', '-c', evil] });
if (ex.status !== 200 || ex.body.exit_code !== 0) notOk('the hostile page\'s script is put into A\'s container', JSON.stringify(ex.body));
const AO = workspaceOrigin(A);
const BO = workspaceOrigin(B);

const browser = await launchChromium();
try {
  const { ctx, page: ui, errors } = await watchedPage(browser);

  // A signed-out browser opens the workspace: it signs in on the UI origin
  // and comes back to where it was going.
  await check('urls.open names the workspace origin', async () => site.urls.open === `${AO}/container/${A}/site/`);
  await ui.goto(`${site.urls.open}cgi-bin/env?from=link`);
  await check('a signed-out browser opening the workspace is sent to the login page on the UI origin', async () => {
    await ui.waitForSelector('#login-form', { state: 'visible' });
    return new globalThis.URL(ui.url()).origin === new globalThis.URL(URL).origin;
  });
  await submitLogin(ui, A, `pw-${A}-1`);
  await check('... and after logging in lands on the workspace page it asked for', async () => {
    try {
      await ui.waitForURL(`${AO}/container/${A}/site/cgi-bin/env?from=link`, { timeout: 15000 });
    } catch (e) { // say where the browser is and what the page says, to tell why
      const flashText = await ui.locator('#flash').textContent().catch(() => '');
      throw new Error(`still at ${ui.url()} (flash: ${flashText || 'none'}): ${String(e).split('\n')[0]}`);
    }
    return /BERTH_USER=/.test(await ui.textContent('body')) && (await ui.textContent('body')).includes(`BERTH_USER=${A}\n`);
  });
  const cookies = await ctx.cookies();
  await check('the workspace cookie is HttpOnly, of the workspace host and the instance path only', async () => {
    const w = cookies.find((c) => c.name === 'berth_ws');
    return w && w.httpOnly && w.domain === `${A}.localhost` && w.path === `/container/${A}/site/`;
  });
  await check('the UI session cookie is of the UI host only', async () => {
    const s = cookies.filter((c) => c.name === 'berth_session');
    return s.length === 1 && s[0].domain === '127.0.0.1';
  });
  const sessionBefore = cookies.find((c) => c.name === 'berth_session')?.value;

  // Now a page of the workspace acts.
  const ws = ui; // on A's workspace origin
  await check('the workspace page is on its own origin', async () => new globalThis.URL(ws.url()).origin === AO);
  await check('from the workspace, the UI origin\'s /api/v1/auth/me (with credentials) cannot be read', async () =>
    ws.evaluate(async (u) => {
      try { await (await fetch(`${u}/api/v1/auth/me`, { credentials: 'include' })).text(); return false; } catch { return true; }
    }, URL));
  await check('... nor a token minted: a cross-origin POST to /api/v1/tokens does not create one', async () => {
    await ws.evaluate(async (u) => {
      try {
        await fetch(`${u}/api/v1/tokens`, {
          method: 'POST', credentials: 'include', mode: 'no-cors',
          headers: { 'Content-Type': 'text/plain' }, body: '{"name":"stolen"}',
        });
      } catch { /* refused: fine */ }
    }, URL);
    const t = await call(sa, 'GET', '/api/v1/tokens');
    return !(t.body.items || t.body).some((x) => x.name === 'stolen');
  });
  await check('document.cookie holds no berth credential', async () =>
    ws.evaluate(() => !/berth_(session|ws)/.test(document.cookie)));
  await check('a script cannot plant berth_session for the UI (another site)', async () => {
    await ws.evaluate((p) => { document.cookie = `berth_session=planted; path=/; domain=127.0.0.1`; document.cookie = `berth_session=planted; path=/; domain=localhost`; }, PORT);
    return !(await ctx.cookies(URL)).some((c) => c.value === 'planted');
  });
  const setCookie = await ws.evaluate(async (a) => (await fetch(`/container/${a}/site/cgi-bin/evil`)).status, A);
  await check(`the container's Set-Cookie: berth_session=... (fetched: ${setCookie}) leaves the UI session intact`, async () => {
    const mine = (await ctx.cookies(URL)).filter((c) => c.name === 'berth_session');
    const me = await ui.context().request.get(`${URL}/api/v1/auth/me`);
    return mine.length === 1 && mine[0].value === sessionBefore && me.status() === 200 &&
      (await me.json()).user.username === A;
  });
  await check('a service worker for "/" cannot be registered from the workspace (Service-Worker-Allowed dropped)', async () =>
    ws.evaluate(async (a) => {
      try { await navigator.serviceWorker.register(`/container/${a}/site/cgi-bin/evil`, { scope: '/' }); return false; } catch { return true; }
    }, A));
  await check('... nor one of the UI origin', async () =>
    ws.evaluate(async (u) => {
      try { await navigator.serviceWorker.register(`${u}/app.js`, { scope: `${u}/` }); return false; } catch { return true; }
    }, URL));
  await check('... while one inside the workspace\'s own path registers (the control)', async () =>
    ws.evaluate(async (a) => {
      const r = await navigator.serviceWorker.register(`/container/${a}/site/cgi-bin/evil`, { scope: `/container/${a}/site/cgi-bin/` });
      const ok = r.scope.endsWith(`/container/${a}/site/cgi-bin/`);
      await r.unregister();
      return ok;
    }, A));
  await check('the workspace page cannot read another user\'s workspace', async () =>
    ws.evaluate(async ([bo, b]) => {
      try { const t = await (await fetch(`${bo}/container/${b}/site/cgi-bin/env`, { credentials: 'include' })).text(); return !t.includes('BERTH_USER'); } catch { return true; }
    }, [BO, B]));

  // WebSockets: the workspace's own page opens one; another origin cannot.
  const echoPage = await ctx.newPage();
  await echoPage.goto(echo.urls.open);
  const wsUrl = `ws://${A}.localhost:${PORT}/container/${A}/echo/ws`;
  const tryWs = (page) => page.evaluate((u) => new Promise((res) => {
    const s = new WebSocket(u);
    const t = setTimeout(() => res('timeout'), 8000);
    s.onopen = () => s.send('ping');
    s.onmessage = (m) => { clearTimeout(t); s.close(); res(`echo:${m.data}`); };
    s.onerror = () => { clearTimeout(t); res('refused'); };
  }), wsUrl);
  await check('a WebSocket from the workspace\'s own page opens and echoes', async () => (await tryWs(echoPage)) === 'echo:ping');
  const foreign = await ctx.newPage();
  await foreign.goto(URL + '/');
  await check('a WebSocket into the workspace from the UI origin is refused', async () => (await tryWs(foreign)) === 'refused');
  // a page of B's workspace origin (served here by the browser itself)
  await check('a WebSocket into the workspace from another user\'s workspace origin is refused', async () => {
    const p = await ctx.newPage();
    await p.route(`${BO}/hostile`, (r) => r.fulfill({ status: 200, contentType: 'text/html', body: '<p>hostile</p>' }));
    await p.goto(`${BO}/hostile`);
    const r = await tryWs(p);
    await p.close();
    return r === 'refused';
  });

  // Return addresses: each trick is ignored by the (signed-in) login page.
  const tricks = [
    'https://evil.example/', '//evil.example/', '/\\evil.example/', `/container/${A}/site/../../${B}/site/`,
    `/container/${A}/site/..%2f..%2f${B}/site/`, `/container/${A}/site/..%252f..%252f${B}/site/evil.html`,
    `/container/${A}/site/%2e%2e/%2e%2e/${B}/site/`, `/container/${A}/site/.%2e/.%2e/${B}/site/`,
    `/container/${A}/site/..%5c..%5c${B}/site/`, `/container/${A}/site//evil`, 'javascript:alert(1)',
    `/api/v1/auth/workspace?instance=${site.id}&path=x&evil=1`, `${AO}/container/${A}/site/`,
  ];
  const bad = [];
  for (const t of tricks) {
    await ui.goto(`${URL}/?next=${encodeURIComponent(t)}`);
    await ui.waitForSelector('#app-view:not([hidden])', { timeout: 10000 }).catch(() => {});
    await sleep(300);
    if (new globalThis.URL(ui.url()).origin !== new globalThis.URL(URL).origin || !ui.url().includes('?next=')) bad.push(`${t} -> ${ui.url()}`);
  }
  await check(`the login page follows none of ${tricks.length} return-address tricks`, async () => bad.length === 0 || (console.error(bad), false));
  await ui.goto(`${URL}/?next=${encodeURIComponent(`/api/v1/auth/workspace?instance=${site.id}&path=${encodeURIComponent(`/container/${A}/site/cgi-bin/env`)}`)}`);
  await check('... but follows the workspace sign-in of this installation', async () => {
    await ui.waitForURL(`${AO}/container/${A}/site/cgi-bin/env`, { timeout: 10000 });
    return true;
  });
  await check('the UI raised no script errors', async () => errors.length === 0 || (console.error(errors), false));
} finally {
  await browser.close();
}
done();
