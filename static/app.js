// berth web UI: plain JavaScript modules over the REST API (API.md), no
// build step. Every unsafe request carries the session's CSRF token; every
// text from the API goes into the page through textContent, never innerHTML.
import { api, session, whenSignedOut } from './js/api.js';
import { $, bindForm } from './js/dom.js';
import { interceptLinks, render, route, stopAll } from './js/router.js';
import { offerStart, startId, leaveStart } from './js/start.js';
import { workspacesView } from './js/workspaces.js';
import { instanceView } from './js/instance.js';
import { accountView } from './js/account.js';
import { adminRoutes } from './js/admin.js';

route(/^\/$/, 'Workspaces', workspacesView);
route(/^\/instances\/([a-z][a-z0-9-]{0,30}[a-z0-9])$/, (p) => p[0], instanceView);
route(/^\/account$/, 'Account', accountView);
adminRoutes(route);

export function flash(message, kind = 'error') {
  const p = $('#flash');
  p.textContent = message;
  p.className = kind;
  p.hidden = !message;
}

// Return addresses after login: only the workspace sign-in of this
// installation (which checks the rest on the server), or a canonical
// workspace path -- no other host, no dot segments, no encoded separators.
function safeNext() {
  const next = new URLSearchParams(location.search).get('next');
  if (!next) return null;
  if (/^\/api\/v1\/auth\/workspace\?instance=[0-9a-f-]{36}(&path=[A-Za-z0-9%._~-]*)?$/.test(next)) return next;
  if (!/^\/container\/[a-z][a-z0-9-]*\/[a-z][a-z0-9-]*\//.test(next)) return null;
  const path = next.split(/[?#]/)[0];
  if (/[\\\s\x00-\x1f]|%2e|%2f|%5c|%25|\/\/|(^|\/)\.{1,2}(\/|$)/i.test(path)) return null;
  return next;
}

async function showHealth() {
  const pill = $('#health');
  try {
    const res = await fetch('/api/v1/health');
    const body = await res.json();
    pill.textContent = res.ok ? 'healthy' : `degraded: ${body.error?.check ?? ''}`;
    pill.className = 'pill ' + (res.ok ? 'ok' : 'bad');
    pill.title = Object.entries(body.checks || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
  } catch {
    pill.textContent = 'unreachable';
    pill.className = 'pill bad';
  }
}

function showLogin() {
  session.user = null;
  session.csrf = null;
  stopAll();
  $('#view').replaceChildren();
  $('#login-view').hidden = false;
  $('#app-view').hidden = true;
  $('#nav').hidden = true;
  $('#whoami').hidden = true;
  $('#logout').hidden = true;
  document.title = 'Log in · berth';
  $('#login-form [name=username]').focus();
}
whenSignedOut(showLogin);

async function showApp(me) {
  session.user = me.user;
  session.csrf = me.csrf_token;
  $('#login-view').hidden = true;
  $('#app-view').hidden = false;
  $('#nav').hidden = false;
  $('#nav [data-admin]').hidden = me.user.role !== 'admin';
  $('#whoami').hidden = false;
  $('#whoami').textContent = `${me.user.username} (${me.user.role})`;
  $('#logout').hidden = false;
  await render();
  const id = startId();
  if (id) await offerStart(id, flash).catch((e) => { flash(e.message); leaveStart(); });
}

bindForm($('#login-form'), async (form) => {
  const { username, password } = Object.fromEntries(new FormData(form).entries());
  try {
    const me = await api('POST', '/api/v1/auth/login', { username, password });
    form.reset();
    flash('');
    const next = safeNext();
    if (next) { location.assign(next); return; }
    await showApp(me);
  } catch (e) {
    flash(e.message);
  }
});

$('#logout').addEventListener('click', async () => {
  try { await api('POST', '/api/v1/auth/logout'); } catch { /* gone already */ }
  showLogin();
});

interceptLinks();
(async function start() {
  showHealth();
  try {
    const me = await api('GET', '/api/v1/auth/me');
    const next = safeNext();
    if (next) { location.assign(next); return; }
    await showApp(me);
  } catch (e) {
    if (e.status === 401) showLogin();
    else flash(e.message);
  }
})();
