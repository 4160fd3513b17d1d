// berth web UI: plain JavaScript over the REST API (API.md), no build step.
// Every unsafe request carries the session's CSRF token; every text from the
// API goes into the page through textContent, never innerHTML.
'use strict';

const state = { user: null, csrf: null, timer: null };
const $ = (sel) => document.querySelector(sel);

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = null;
  if (res.status !== 204) {
    try { json = await res.json(); } catch { /* not JSON */ }
  }
  if (!res.ok) {
    const err = new Error(json?.error?.message || `berth answered HTTP ${res.status}`);
    err.status = res.status;
    err.code = json?.error?.code;
    throw err;
  }
  return json;
}

function flash(message, kind = 'error') {
  const p = $('#flash');
  p.textContent = message;
  p.className = kind;
  p.hidden = !message;
}

function cell(tr, text) {
  const td = tr.insertCell();
  td.textContent = text ?? '';
  return td;
}

function button(label, onClick, cls) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  if (cls) b.className = cls;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await onClick(); } catch (e) { flash(e.message); } finally { b.disabled = false; }
  });
  return b;
}

const when = (t) => (t ? new Date(t).toLocaleString() : '—');

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
  state.user = null;
  state.csrf = null;
  clearInterval(state.timer);
  $('#login-view').hidden = false;
  $('#app-view').hidden = true;
  $('#whoami').hidden = true;
  $('#logout').hidden = true;
  $('#login-form [name=username]').focus();
}

async function showApp(me) {
  state.user = me.user;
  state.csrf = me.csrf_token;
  $('#login-view').hidden = true;
  $('#app-view').hidden = false;
  $('#whoami').hidden = false;
  $('#whoami').textContent = `${me.user.username} (${me.user.role})`;
  $('#logout').hidden = false;
  $('#admin-view').hidden = me.user.role !== 'admin';
  $('#launch-form').hidden = me.user.role === 'viewer';
  await Promise.all([loadTemplates(), loadInstances(), loadTokens(),
    me.user.role === 'admin' ? loadAdmin() : null].map((p) => p?.catch((e) => flash(e.message))));
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    loadInstances().catch(() => {});
    if (state.imagesBuilding) loadTemplates().catch(() => {});
  }, 3000);
  const id = startId();
  if (id) await offerStart(id).catch((e) => { flash(e.message); leaveStart(); });
}

// /?start=<instance id>: where a stopped workspace's page sends its owner
// (the workspace origin cannot act on the API). Nothing starts without the
// click here, on berth's own origin; then the browser goes back to the
// workspace, whose page waits for it to answer.
const startId = () => {
  const id = new URLSearchParams(location.search).get('start');
  return id && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? id : null;
};

function leaveStart() {
  $('#start-view').hidden = true;
  history.replaceState(null, '', '/');
}

// Back to the address the owner came from (&path=), when it is a canonical
// address of this very instance's workspace; else the workspace's start.
function startReturn(inst) {
  const open = inst.urls?.open;
  const path = new URLSearchParams(location.search).get('path');
  if (!open || !path || !inst.urls.http || !path.startsWith(inst.urls.http)) return open;
  const p = path.split(/[?#]/)[0];
  if (/[\\\s\x00-\x1f]|%2e|%2f|%5c|%25|\/\/|(^|\/)\.{1,2}(\/|$)/i.test(p)) return open;
  return new URL(open).origin + path;
}

async function offerStart(id) {
  const inst = await api('GET', `/api/v1/instances/${id}`);
  const open = startReturn(inst);
  $('#start-text').textContent = inst.status === 'running'
    ? `${inst.name} is running already.`
    : `Start ${inst.name} (${inst.status}${inst.error ? `: ${inst.error}` : ''}) and go back to it?`;
  const go = $('#start-confirm');
  go.textContent = inst.status === 'running' ? 'Open it' : 'Start and open';
  go.disabled = !open || state.user.role === 'viewer';
  go.onclick = async () => {
    go.disabled = true;
    try {
      if (inst.status !== 'running') {
        try {
          await api('POST', `/api/v1/instances/${id}/start`);
        } catch (e) {
          if (e.status !== 409) throw e; // started meanwhile: go on
        }
        flash(`${inst.name}: starting…`, 'ok');
        for (let i = 0; i < 120; i++) { // the workspace's own page waits for the rest
          const now = await api('GET', `/api/v1/instances/${id}`);
          if (now.status === 'running' || now.status === 'error') break;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
      location.assign(open);
    } catch (e) {
      flash(e.message);
      go.disabled = false;
    }
  };
  $('#start-cancel').onclick = leaveStart;
  $('#start-view').hidden = false;
  go.focus();
}

// The stack's own build of a template's image (image_build), in words; ''
// when there is none or it is done.
function buildNote(b) {
  if (!b || b.state === 'ready') return '';
  if (b.state === 'failed') return ` [image failed to build: ${b.message}]`;
  return ` [image ${b.state === 'queued' ? 'queued to be built' : 'being built'}${b.message ? `: ${b.message.slice(0, 60)}` : ''}]`;
}

async function loadTemplates() {
  const list = await api('GET', '/api/v1/templates?limit=500');
  const sel = $('#launch-form [name=template]');
  const chosen = sel.value;
  state.imagesBuilding = list.items.some((t) => t.image_build && ['queued', 'building'].includes(t.image_build.state));
  sel.replaceChildren(...list.items.map((t) => {
    const o = document.createElement('option');
    o.value = t.id;
    o.textContent = (t.description ? `${t.name} — ${t.description.slice(0, 60)}` : t.name) + buildNote(t.image_build);
    return o;
  }));
  if (chosen) sel.value = chosen;
}

// What a launch under way is doing (its latest event: waiting for the
// image's build, pulling ...), shown beside its status.
async function progressOf(inst, st) {
  const ev = await api('GET', `/api/v1/instances/${inst.id}/events`);
  const last = (ev.items ?? ev).at(-1);
  if (last) st.textContent = `${inst.status}: ${last.message}`;
}

async function act(inst, what) {
  if (what === 'delete') {
    if (!confirm(`Delete ${inst.name}? Its volumes are kept.`)) return;
    await api('DELETE', `/api/v1/instances/${inst.id}`);
  } else {
    await api('POST', `/api/v1/instances/${inst.id}/${what}`);
  }
  flash(what === 'snooze' ? `${inst.name}: idle clock reset` : `${inst.name}: ${what} requested`, 'ok');
  await loadInstances();
}

async function loadInstances() {
  let list;
  try {
    list = await api('GET', '/api/v1/instances?limit=500');
  } catch (e) {
    if (e.status === 401) { showLogin(); return; }
    throw e;
  }
  const body = $('#instances tbody');
  body.replaceChildren();
  const canAct = state.user.role !== 'viewer';
  for (const inst of list.items) {
    const tr = body.insertRow();
    tr.dataset.name = inst.name;
    cell(tr, inst.name);
    cell(tr, inst.template?.name);
    const st = cell(tr, inst.status);
    st.className = `status ${inst.status}`;
    if (inst.error) st.title = inst.error;
    if (inst.status === 'pending' || inst.status === 'creating') progressOf(inst, st).catch(() => {});
    const open = cell(tr, '');
    if (inst.urls?.open && inst.status === 'running') {
      const a = document.createElement('a');
      a.href = inst.urls.open;
      a.textContent = 'open';
      a.target = '_blank';
      a.rel = 'noopener';
      open.append(a);
    }
    cell(tr, inst.ssh?.command ?? '');
    cell(tr, inst.last_active_at ? `${when(inst.last_active_at)} (${inst.last_active_kind ?? 'http'})` : '—');
    const actions = cell(tr, '');
    if (canAct) {
      if (inst.status === 'stopped' || inst.status === 'error') actions.append(button('Start', () => act(inst, 'start')));
      if (inst.status === 'running') {
        actions.append(button('Stop', () => act(inst, 'stop')));
        actions.append(button('Restart', () => act(inst, 'restart')));
        // an idle timeout stops it after an idle_warning event; Snooze counts as use
        if (inst.idle_timeout_s > 0) actions.append(button('Snooze', () => act(inst, 'snooze')));
      }
      if (inst.status !== 'deleting' && inst.status !== 'deleted') actions.append(button('Delete', () => act(inst, 'delete'), 'danger'));
    }
  }
  $('#no-instances').hidden = list.items.length > 0;
}

async function loadTokens() {
  const list = await api('GET', '/api/v1/tokens');
  const body = $('#tokens tbody');
  body.replaceChildren();
  for (const t of list.items) {
    const tr = body.insertRow();
    cell(tr, t.name);
    cell(tr, when(t.created_at));
    cell(tr, when(t.last_used_at));
    cell(tr, '').append(button('Revoke', async () => {
      await api('DELETE', `/api/v1/tokens/${t.id}`);
      await loadTokens();
    }, 'danger'));
  }
}

async function loadAdmin() {
  const [users, audit] = await Promise.all([
    api('GET', '/api/v1/users?limit=500'), api('GET', '/api/v1/audit?limit=50'),
  ]);
  const ub = $('#users tbody');
  ub.replaceChildren();
  for (const u of users.items) {
    const tr = ub.insertRow();
    cell(tr, u.username);
    cell(tr, u.role);
    cell(tr, `${u.quota.instances} instances, ${u.quota.cpus} CPUs, ${u.quota.memory_mb} MB`);
    cell(tr, when(u.created_at));
  }
  const ab = $('#audit tbody');
  ab.replaceChildren();
  for (const a of audit.items) {
    const tr = ab.insertRow();
    cell(tr, when(a.at));
    cell(tr, a.actor ?? 'anonymous');
    cell(tr, a.action);
    cell(tr, a.target_type ? `${a.target_type} ${a.target_id ?? ''}` : '');
    cell(tr, a.outcome);
    cell(tr, a.ip);
  }
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const { username, password } = formData(ev.target);
  try {
    const me = await api('POST', '/api/v1/auth/login', { username, password });
    ev.target.reset();
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

$('#launch-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const { template, name } = formData(ev.target);
  try {
    const r = await api('POST', '/api/v1/instances', name ? { template, name } : { template });
    flash(`${r.instance.name} is being created`, 'ok');
    ev.target.querySelector('[name=name]').value = '';
    await loadInstances();
  } catch (e) {
    flash(e.message);
  }
});

$('#token-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const t = await api('POST', '/api/v1/tokens', { name: formData(ev.target).name });
    $('#new-token code').textContent = t.token;
    $('#new-token').hidden = false;
    ev.target.reset();
    await loadTokens();
  } catch (e) {
    flash(e.message);
  }
});

$('#password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  try {
    const r = await api('POST', '/api/v1/auth/password', {
      current_password: f.elements.current_password.value,
      new_password: f.elements.new_password.value,
      revoke_tokens: f.elements.revoke_tokens.checked,
    });
    flash(r.tokens_revoked > 0
      ? `password changed; ${r.tokens_revoked} API token(s) revoked`
      : 'password changed', 'ok');
    f.reset();
    await loadTokens();
  } catch (e) {
    flash(e.message);
  }
});

$('#user-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const u = await api('POST', '/api/v1/users', formData(ev.target));
    flash(`user ${u.username} added`, 'ok');
    ev.target.reset();
    await loadAdmin();
  } catch (e) {
    flash(e.message);
  }
});

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
