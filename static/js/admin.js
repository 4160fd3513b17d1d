// /admin/...: the admin console -- platform stats, users, templates, all
// instances, volumes across users, the audit log and the nodes. Shown to
// admins only (the API refuses everyone else anyway).
import { all, api, enc, isAdmin, page } from './api.js';
import {
  add, ask, bindForm, button, bytes, download, errorLine, field, fill, formError, h, input, num, statusBadge, table, when,
} from './dom.js';
import { buildState } from './workspaces.js';

const TABS = [['', 'Overview'], ['users', 'Users'], ['templates', 'Templates'], ['instances', 'Instances'],
  ['volumes', 'Volumes'], ['audit', 'Audit log'], ['nodes', 'Nodes']];
const STATUSES = ['pending', 'creating', 'running', 'stopping', 'stopped', 'restarting', 'deleting', 'error'];

function frame(ctx, tab, title) {
  add(ctx.root, h('h1', {}, title),
    h('nav', { class: 'tabs', 'aria-label': 'admin' }, TABS.map(([t, label]) =>
      h('a', { href: t ? `/admin/${t}` : '/admin', 'aria-current': t === tab ? 'page' : null }, label))));
  const body = h('div', { class: 'admin-body' });
  add(ctx.root, body);
  return body;
}

export function adminRoutes(route) {
  const guard = (tab, title, fn) => async (ctx) => {
    if (!isAdmin()) {
      add(ctx.root, h('h1', {}, title), h('p', { class: 'error', role: 'alert' }, 'This page is for admins only.'));
      return;
    }
    await fn(ctx, frame(ctx, tab, title));
  };
  route(/^\/admin$/, 'Admin', guard('', 'Admin', overview));
  route(/^\/admin\/users$/, 'Users', guard('users', 'Users', users));
  route(/^\/admin\/templates$/, 'Templates', guard('templates', 'Templates', templates));
  route(/^\/admin\/instances$/, 'All instances', guard('instances', 'All instances', instances));
  route(/^\/admin\/volumes$/, 'Volumes', guard('volumes', 'Volumes', volumes));
  route(/^\/admin\/audit$/, 'Audit log', guard('audit', 'Audit log', audit));
  route(/^\/admin\/nodes$/, 'Nodes', guard('nodes', 'Nodes', nodes));
}

// ---- overview ----
async function overview(ctx, body) {
  const s = await api('GET', '/api/v1/admin/stats');
  const tile = (label, value, id) => h('div', { class: 'tile', id }, h('span', { class: 'tile-value' }, String(value ?? 0)), h('span', { class: 'tile-label' }, label));
  const byStatus = Object.entries(s.instances || {});
  const total = byStatus.reduce((a, [, n]) => a + (typeof n === 'number' ? n : 0), 0);
  add(body, h('div', { class: 'tiles', id: 'platform-stats' },
    tile('users', s.users, 'stat-users'), tile('instances', total, 'stat-instances'), tile('templates', s.templates),
    tile('nodes', s.nodes), tile('jobs queued', s.jobs?.queued), tile('jobs running', s.jobs?.running), tile('jobs failed', s.jobs?.failed)),
  h('h2', {}, 'Instances by status'),
  byStatus.length ? table('Instances by status', ['Status', 'Count'], byStatus.map(([k, n]) => [statusBadge(k), String(n)])) : h('p', { class: 'muted' }, 'None.'));
}

// ---- users ----
const quotaText = (q) => (q ? `${q.instances} inst · ${num(q.cpus)} CPU · ${q.memory_mb} MB` : '—');
const roleSelect = (name, value) => h('select', { name }, ['developer', 'viewer', 'admin'].map((r) => h('option', { value: r, selected: r === value ? '' : null }, r)));
const numberOrUndef = (v) => (v === '' ? undefined : Number(v));

function userEditor(u, reload) {
  const f = bindForm(h('form', { class: 'edit', 'aria-label': `edit ${u.username}` },
    field('Role', roleSelect('role', u.role)),
    h('fieldset', {}, h('legend', {}, 'Quota'),
      h('div', { class: 'row' },
        field('Instances', input('quota.instances', { type: 'number', min: 0, value: u.quota?.instances })),
        field('CPUs', input('quota.cpus', { type: 'number', min: 0, step: 'any', value: num(u.quota?.cpus) })),
        field('Memory (MB)', input('quota.memory_mb', { type: 'number', min: 0, value: u.quota?.memory_mb })))),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'disabled', checked: !!u.disabled }), ' disabled (cannot sign in)'),
    field('New password', input('password', { type: 'password', minlength: 8, autocomplete: 'new-password', placeholder: 'unchanged' })),
    h('button', { type: 'submit' }, 'Save')), async (form) => {
    const el = (n) => form.elements.namedItem(n);
    const patch = {};
    if (el('role').value !== u.role) patch.role = el('role').value;
    const q = { instances: numberOrUndef(el('quota.instances').value), cpus: numberOrUndef(el('quota.cpus').value), memory_mb: numberOrUndef(el('quota.memory_mb').value) };
    if (q.instances !== u.quota?.instances || q.cpus !== Number(num(u.quota?.cpus)) || q.memory_mb !== u.quota?.memory_mb) patch.quota = q;
    if (el('disabled').checked !== !!u.disabled) patch.disabled = el('disabled').checked;
    if (el('password').value) patch.password = el('password').value;
    if (!Object.keys(patch).length) throw new Error('nothing changed');
    try {
      await api('PATCH', `/api/v1/users/${u.id}`, patch);
    } catch (e) {
      if (e.field === 'quota') e.field = 'quota.instances';
      throw e;
    }
    await reload();
  });
  return h('details', { class: 'editor' }, h('summary', { 'aria-label': `Edit ${u.username}` }, 'Edit'), f);
}

async function users(ctx, body) {
  let q = ctx.query.get('q') || '';
  const rows = h('tbody', { id: 'users-rows' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More users');
  const err = errorLine();
  let cursor = null;
  function row(u) {
    return h('tr', { dataset: { name: u.username } },
      h('td', {}, u.username), h('td', {}, u.role), h('td', {}, quotaText(u.quota)),
      h('td', {}, u.disabled ? h('span', { class: 'badge bad' }, 'disabled') : 'active'), h('td', {}, when(u.created_at)),
      h('td', {}, userEditor(u, load)));
  }
  async function load(append = false) {
    try {
      const p = await page('/api/v1/users', { q, limit: 50, cursor: append ? cursor : undefined });
      if (!ctx.live()) return;
      if (!append) fill(rows);
      add(rows, ...p.items.map(row));
      cursor = p.next_cursor;
      more.hidden = !cursor;
      err.hidden = true;
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  }
  more.addEventListener('click', () => load(true));
  const search = h('form', { class: 'row', role: 'search', id: 'user-search' },
    field('Search users', input('q', { type: 'search', value: q, placeholder: 'name contains…' })), h('button', { type: 'submit', class: 'secondary' }, 'Search'));
  search.addEventListener('submit', (ev) => {
    ev.preventDefault();
    q = search.elements.namedItem('q').value.trim();
    history.replaceState(null, '', q ? `/admin/users?q=${enc(q)}` : '/admin/users');
    load();
  });
  const create = bindForm(h('form', { id: 'user-form', class: 'row wrap' },
    field('User name', input('username', { required: true, pattern: '[a-z][a-z0-9\\-]{0,30}[a-z0-9]', autocomplete: 'off' })),
    field('Password', input('password', { type: 'password', minlength: 8, required: true, autocomplete: 'new-password' })),
    field('Role', roleSelect('role', 'developer')),
    field('Instances', input('quota.instances', { type: 'number', min: 0, placeholder: 'default' })),
    field('CPUs', input('quota.cpus', { type: 'number', min: 0, step: 'any', placeholder: 'default' })),
    field('Memory (MB)', input('quota.memory_mb', { type: 'number', min: 0, placeholder: 'default' })),
    h('button', { type: 'submit' }, 'Add user')), async (form) => {
    const el = (n) => form.elements.namedItem(n).value;
    const b = { username: el('username'), password: el('password'), role: el('role') };
    const quota = {};
    for (const k of ['instances', 'cpus', 'memory_mb']) if (el(`quota.${k}`) !== '') quota[k] = Number(el(`quota.${k}`));
    if (Object.keys(quota).length) b.quota = quota;
    try {
      await api('POST', '/api/v1/users', b);
    } catch (e) {
      if (e.field === 'quota') e.field = 'quota.instances';
      throw e;
    }
    form.reset();
    // show the user just added: on a large install it is not on the first page
    q = b.username;
    search.elements.namedItem('q').value = q;
    history.replaceState(null, '', `/admin/users?q=${enc(q)}`);
    await load();
  });
  add(body, h('section', { class: 'panel', 'aria-labelledby': 'newuser-h' }, h('h2', { id: 'newuser-h' }, 'Add a user'), create),
    search, err,
    h('div', { class: 'table-wrap' }, h('table', { id: 'users' },
      h('thead', {}, h('tr', {}, ['User', 'Role', 'Quota', 'State', 'Created', h('span', { class: 'sr-only' }, 'Actions')].map((x) => h('th', { scope: 'col' }, x)))), rows)),
    more);
  await load();
}

// ---- templates ----
// The fields with a control of their own; the rest are edited as JSON.
const TPL_FIELDS = [
  ['name', 'Name', 'text'], ['description', 'Description', 'text'], ['image', 'Image', 'text'],
  ['http_port', 'HTTP port', 'number'], ['ssh_port', 'SSH port', 'number'], ['cpus', 'CPUs', 'number'],
  ['memory_mb', 'Memory (MB)', 'number'], ['idle_timeout_s', 'Idle stop after (s)', 'number'],
];
const READ_ONLY = ['id', 'created_at', 'updated_at', 'image_build'];

function templateEditor(t, done) {
  const orig = t || {};
  const rest = {};
  for (const [k, v] of Object.entries(orig)) if (!READ_ONLY.includes(k) && !TPL_FIELDS.some(([f]) => f === k)) rest[k] = v;
  if (!t) Object.assign(rest, { volumes: {}, env: {}, ports: {}, proxy_mode: 'strip' });
  const jsonArea = h('textarea', { name: 'extra', rows: 10, spellcheck: 'false', class: 'code' }, JSON.stringify(rest, null, 2));
  const form = h('form', { id: 'template-form', class: 'tpl-editor' },
    h('div', { class: 'grid2' }, TPL_FIELDS.map(([k, label, type]) => field(label, input(k, {
      type, step: k === 'cpus' ? 'any' : null, value: orig[k] === null || orig[k] === undefined ? '' : (k === 'cpus' ? num(orig[k]) : orig[k]),
      required: k === 'name' || k === 'image' ? true : null, autocomplete: 'off',
    }), k === 'http_port' || k === 'ssh_port' ? 'empty: none' : null))),
    field('Other fields (JSON: volumes, env, ports, command, proxy_mode, open_path, …)', jsonArea),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, t ? `Save ${t.name}` : 'Create template'),
      h('button', { type: 'button', class: 'secondary', onclick: () => done(false) }, 'Cancel')));
  bindForm(form, async () => {
    let extra;
    try {
      extra = JSON.parse(jsonArea.value || '{}');
      if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new Error('must be a JSON object');
    } catch (e) {
      throw Object.assign(new Error(`not valid JSON: ${e.message}`), { field: 'extra' });
    }
    const b = { ...extra };
    for (const [k, , type] of TPL_FIELDS) {
      const v = form.elements.namedItem(k).value.trim();
      if (type === 'number') b[k] = v === '' ? null : Number(v);
      else b[k] = v;
    }
    if (!t) { for (const k of Object.keys(b)) if (b[k] === null && k !== 'http_port' && k !== 'ssh_port') delete b[k]; }
    let patch = b;
    if (t) {
      patch = {};
      for (const [k, v] of Object.entries(b)) if (JSON.stringify(v) !== JSON.stringify(k === 'cpus' && typeof orig[k] === 'number' ? Number(num(orig[k])) : orig[k])) patch[k] = v;
      if (!Object.keys(patch).length) throw new Error('nothing changed');
    }
    try {
      await api(t ? 'PATCH' : 'POST', t ? `/api/v1/templates/${t.id}` : '/api/v1/templates', patch);
    } catch (e) {
      // a field without a control of its own is in the JSON
      if (e.field && !form.elements.namedItem(e.field)) e = Object.assign(new Error(`${e.field}: ${e.message}`), { field: 'extra' });
      throw e;
    }
    await done(true);
  });
  return form;
}

async function templates(ctx, body) {
  const list = h('div', { id: 'templates' });
  const editor = h('section', { class: 'panel', id: 'template-editor', hidden: true, 'aria-labelledby': 'tpl-edit-h' });
  const addBtn = h('button', { type: 'button', id: 'new-template' }, 'New template');
  function edit(t) {
    fill(editor, h('h2', { id: 'tpl-edit-h' }, t ? `Edit ${t.name}` : 'New template'),
      templateEditor(t, async (saved) => { editor.hidden = true; addBtn.hidden = false; if (saved) await load(); }));
    editor.hidden = false;
    addBtn.hidden = true;
    editor.querySelector('input')?.focus();
  }
  addBtn.addEventListener('click', () => edit(null));
  async function load() {
    const items = await all('/api/v1/templates');
    if (!ctx.live()) return;
    fill(list, table('Templates', ['Name', 'Image', 'Resources', 'Web / SSH', 'Idle stop', ''], items.map((t) => ({
      attrs: { dataset: { name: t.name } },
      cells: [h('span', {}, h('strong', {}, t.name), h('br'), h('small', { class: 'muted' }, (t.description || '').slice(0, 80))),
        h('span', {}, h('code', {}, t.image), buildState(t.image_build)),
        `${num(t.cpus)} CPU · ${t.memory_mb} MB`,
        `${t.http_port ? `web :${t.http_port}` : '—'} / ${t.ssh_port ? `ssh :${t.ssh_port}` : '—'}`,
        t.idle_timeout_s ? `${Math.round(t.idle_timeout_s / 60)} min` : 'never',
        h('span', { class: 'actions' },
          button('Edit', () => edit(t), { cls: 'secondary', label: `Edit ${t.name}` }),
          button('Delete', async () => {
            if (await ask(`Delete template ${t.name}?`, h('p', {}, 'Instances made from it must be deleted first.'), [{ value: 'yes', label: 'Delete', cls: 'danger' }]) !== 'yes') return;
            await api('DELETE', `/api/v1/templates/${t.id}`);
            await load();
          }, { cls: 'danger', label: `Delete ${t.name}` }))],
    }))));
  }
  add(body, h('div', { class: 'row' }, addBtn), editor, list);
  await load();
}

// ---- all instances ----
async function instances(ctx, body) {
  const qs = ctx.query;
  const filters = h('form', { class: 'row wrap', id: 'instance-filters', role: 'search' },
    field('User', input('user', { value: qs.get('user') || '', autocomplete: 'off' })),
    field('Status', h('select', { name: 'status' }, h('option', { value: '' }, 'any'),
      STATUSES.map((s) => h('option', { value: s, selected: qs.get('status') === s ? '' : null }, s)))),
    field('Template', input('template', { value: qs.get('template') || '', autocomplete: 'off' })),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  const list = h('div', { id: 'all-instances' });
  const bulk = h('button', { type: 'button', id: 'bulk-stop', class: 'secondary', disabled: true }, 'Stop selected');
  const bulkErr = errorLine();
  const bulkDone = h('span', { role: 'status', class: 'muted' });
  let items = [];
  const picked = () => [...list.querySelectorAll('input[name=pick]:checked')].map((c) => c.value);
  async function load() {
    const v = (n) => filters.elements.namedItem(n).value.trim();
    items = await all('/api/v1/instances', { all: 'true', user: v('user'), status: v('status') });
    if (v('template')) items = items.filter((i) => i.template?.name === v('template'));
    if (!ctx.live()) return;
    fill(list, items.length ? table('All instances', [h('span', { class: 'sr-only' }, 'Select'), 'Name', 'User', 'Template', 'Status', 'Created'], items.map((i) => ({
      attrs: { dataset: { name: i.name, user: i.user } },
      cells: [h('input', { type: 'checkbox', name: 'pick', value: i.id, 'aria-label': `select ${i.user}/${i.name}`, disabled: i.status !== 'running' }),
        h('a', { href: `/instances/${enc(i.name)}?user=${enc(i.user)}` }, i.name), i.user, i.template?.name ?? '—',
        h('span', {}, statusBadge(i.status), i.error ? h('small', { class: 'error' }, ` ${i.error}`) : null), when(i.created_at)],
    }))) : h('p', { class: 'muted' }, 'No instances match.'));
    bulk.disabled = true;
  }
  list.addEventListener('change', () => { bulk.disabled = picked().length === 0; });
  bulk.addEventListener('click', async () => {
    const ids = picked();
    bulkErr.hidden = true;
    bulk.disabled = true;
    const res = await Promise.allSettled(ids.map((id) => api('POST', `/api/v1/instances/${id}/stop`)));
    const bad = res.filter((r) => r.status === 'rejected');
    bulkDone.textContent = `stop asked of ${ids.length - bad.length} of ${ids.length}`;
    if (bad.length) { bulkErr.textContent = bad.map((r) => r.reason.message).join('; '); bulkErr.hidden = false; }
    await load();
  });
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const n of ['user', 'status', 'template']) { const v = filters.elements.namedItem(n).value.trim(); if (v) p.set(n, v); }
    history.replaceState(null, '', `/admin/instances${p.size ? `?${p}` : ''}`);
    load().catch((e) => formError(filters, e));
  });
  add(body, filters, h('div', { class: 'row' }, bulk, bulkDone), bulkErr, list);
  await load();
}

// ---- volumes ----
async function volumes(ctx, body) {
  const list = h('div', { id: 'all-volumes' });
  const onlyOrphans = h('input', { type: 'checkbox', id: 'orphans-only' });
  async function load() {
    let items = await all('/api/v1/volumes', { all: 'true' });
    if (onlyOrphans.checked) items = items.filter((v) => !v.instance_id);
    if (!ctx.live()) return;
    fill(list, items.length ? table('Volumes', ['Name', 'Docker volume', 'Template', 'Attached', 'Size', 'Created', ''], items.map((v) => ({
      attrs: { dataset: { name: v.docker_name || v.name, orphan: v.instance_id ? null : 'true' } },
      cells: [v.name, h('code', {}, v.docker_name), v.template ?? '—', v.instance_id ? 'yes' : h('span', { class: 'badge' }, 'orphan'),
        bytes(v.size_bytes), when(v.created_at),
        v.instance_id ? '' : button('Delete', async () => {
          if (await ask(`Delete volume ${v.docker_name}?`, h('p', {}, 'Its data is gone for good.'), [{ value: 'yes', label: 'Delete', cls: 'danger' }]) !== 'yes') return;
          await api('DELETE', `/api/v1/volumes/${v.id}`);
          await load();
        }, { cls: 'danger', label: `Delete volume ${v.docker_name}` })],
    }))) : h('p', { class: 'muted' }, 'No volumes.'));
  }
  onlyOrphans.addEventListener('change', load);
  add(body, h('label', { class: 'check', for: 'orphans-only' }, onlyOrphans, ' only orphans (attached to no instance)'), list);
  await load();
}

// ---- audit ----
const AUDIT_COLS = ['at', 'actor', 'action', 'target_type', 'target_id', 'outcome', 'ip', 'details'];
const csvCell = (v) => {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};
export const toCsv = (rows) => [AUDIT_COLS.join(','), ...rows.map((r) => AUDIT_COLS.map((c) => csvCell(r[c])).join(','))].join('\r\n') + '\r\n';

async function audit(ctx, body) {
  const qs = ctx.query;
  const names = ['user', 'action', 'target', 'since', 'until'];
  const filters = h('form', { class: 'row wrap', id: 'audit-filters', role: 'search' },
    field('User', input('user', { value: qs.get('user') || '', autocomplete: 'off' })),
    field('Action', input('action', { value: qs.get('action') || '', placeholder: 'e.g. instance.create', autocomplete: 'off' })),
    field('Target', input('target', { value: qs.get('target') || '', autocomplete: 'off' })),
    field('Since', input('since', { type: 'datetime-local', value: qs.get('since') || '' })),
    field('Until', input('until', { type: 'datetime-local', value: qs.get('until') || '' })),
    h('button', { type: 'submit', class: 'secondary' }, 'Filter'));
  const rows = h('tbody', { id: 'audit-rows' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'audit-more' }, 'Older entries');
  const exportState = h('span', { role: 'status', class: 'muted', id: 'export-state' });
  let cursor = null;
  const params = () => {
    const p = {};
    for (const n of names) {
      let v = filters.elements.namedItem(n).value.trim();
      if (v && (n === 'since' || n === 'until')) v = new Date(v).toISOString();
      if (v) p[n] = v;
    }
    return p;
  };
  const row = (a) => h('tr', {}, [when(a.at), a.actor ?? 'anonymous', a.action,
    a.target_type ? `${a.target_type} ${a.target_id ?? ''}` : '', a.outcome, a.ip ?? '',
    a.details ? h('code', {}, JSON.stringify(a.details).slice(0, 200)) : ''].map((c) => h('td', {}, c)));
  async function load(append = false) {
    const p = await page('/api/v1/audit', { ...params(), limit: 50, cursor: append ? cursor : undefined });
    if (!ctx.live()) return;
    if (!append) fill(rows);
    add(rows, ...p.items.map(row));
    if (!rows.children.length) add(rows, h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No entries match.')));
    cursor = p.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener('click', () => load(true).catch((e) => formError(filters, e)));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const n of names) { const v = filters.elements.namedItem(n).value.trim(); if (v) p.set(n, v); }
    history.replaceState(null, '', `/admin/audit${p.size ? `?${p}` : ''}`);
    load().catch((e) => formError(filters, e));
  });
  // Exports are made here from every page of the filtered log.
  const exporter = (kind) => async () => {
    exportState.textContent = 'reading the log…';
    const items = await all('/api/v1/audit', params(), 50000);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    if (kind === 'csv') download(`berth-audit-${stamp}.csv`, 'text/csv', toCsv(items));
    else download(`berth-audit-${stamp}.json`, 'application/json', JSON.stringify(items, null, 2) + '\n');
    exportState.textContent = `${items.length} entries exported as ${kind.toUpperCase()}`;
  };
  add(body, filters,
    h('div', { class: 'row' }, button('Export CSV', exporter('csv'), { cls: 'secondary', dataset: { export: 'csv' } }),
      button('Export JSON', exporter('json'), { cls: 'secondary', dataset: { export: 'json' } }), exportState),
    h('div', { class: 'table-wrap' }, h('table', { id: 'audit' },
      h('thead', {}, h('tr', {}, ['When', 'Who', 'Action', 'Target', 'Outcome', 'From', 'Details'].map((x) => h('th', { scope: 'col' }, x)))), rows)),
    more);
  await load();
}

// ---- nodes ----
async function nodes(ctx, body) {
  const r = await api('GET', '/api/v1/nodes');
  const items = r.items ?? r;
  add(body, h('div', { id: 'nodes' }, table('Nodes', ['Node', 'Docker', 'Health', 'Instances', 'Last seen'], items.map((n) => ({
    attrs: { dataset: { name: n.name } },
    cells: [n.name, h('code', {}, n.docker_endpoint ?? '—'), h('span', { class: `badge ${n.status === 'ok' || n.status === 'healthy' || n.status === 'up' ? 'good' : 'bad'}` }, n.status ?? '?'),
      String(n.instances ?? 0), when(n.last_seen_at)],
  })))));
}
