// /instances/<name>: one instance -- its facts, URLs, SSH and volumes, the
// error in plain words, CPU and memory with a sparkline, lifecycle events,
// logs (followed live, paused, filtered, downloaded) and, for those who may
// act, a one-shot command box. Admins reach other users' instances with
// ?user=NAME.
import { all, api, canAct, isAdmin, withQuery } from './api.js';
import {
  add, bindForm, button, bytes, copy, download, errorLine, field, fill, h, input, num, statusBadge, table, when,
} from './dom.js';
import { instanceActions } from './actions.js';
import { navigate } from './router.js';

const STATS_MS = 3000;
const HISTORY = 40;
const MAX_LINES = 2000;

// A small inline SVG line of values (0..max), newest on the right.
export function sparkline(values, max, label) {
  const W = 120, H = 28;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const top = Math.max(max || 0, ...values, 1e-9);
  const pts = values.map((v, i) => `${(W * i) / Math.max(HISTORY - 1, 1)},${(H - 2 - ((H - 4) * v) / top).toFixed(1)}`);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts.join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('class', 'spark-line');
  svg.append(line);
  return svg;
}

async function findInstance(name, user) {
  const list = await all('/api/v1/instances', user ? { all: 'true', user } : {});
  return list.find((i) => i.name === name);
}

export async function instanceView(ctx) {
  const { root } = ctx;
  const [name] = ctx.params;
  const user = isAdmin() ? ctx.query.get('user') : null;
  let inst = await findInstance(name, user);
  if (!ctx.live()) return;
  if (!inst) {
    add(root, h('h1', {}, name), h('p', { class: 'error', role: 'alert' }, `There is no workspace called ${name}${user ? ` of ${user}` : ''}.`),
      h('p', {}, h('a', { href: '/' }, 'Back to your workspaces')));
    return;
  }
  const id = inst.id;
  const head = h('div', { class: 'detail-head' });
  const facts = h('div', { id: 'facts' });
  const statsBox = h('div', { id: 'stats', class: 'stats' });
  const events = h('div', { id: 'events' });
  const err = errorLine();

  async function refresh(gone) {
    if (gone === true) { navigate('/'); return; }
    try {
      inst = await api('GET', `/api/v1/instances/${id}`);
    } catch (e) {
      if (e.status === 404) { navigate('/'); return; }
      throw e;
    }
    if (!ctx.live()) return;
    drawHead();
    drawFacts();
  }

  function drawHead() {
    fill(head,
      h('h1', {}, inst.name, ' ', statusBadge(inst.status)),
      h('div', { class: 'actions' }, instanceActions(inst, refresh)));
  }

  function drawFacts() {
    const rows = [
      ['Owner', inst.user], ['Template', inst.template?.name], ['Node', inst.node],
      ['Created', when(inst.created_at)], ['Started', when(inst.started_at)], ['Stopped', when(inst.stopped_at)],
      ['Last active', inst.last_active_kind ? `${when(inst.last_active_at)} (${inst.last_active_kind})` : when(inst.last_active_at)],
      ['Idle stop', inst.idle_timeout_s > 0 ? `after ${Math.round(inst.idle_timeout_s / 60)} min without use` : 'never'],
    ];
    const urls = [];
    if (inst.urls?.open) urls.push(h('li', {}, 'Open: ', h('a', { href: inst.urls.open, target: '_blank', rel: 'noopener' }, inst.urls.open)));
    if (inst.urls?.http) urls.push(h('li', {}, 'Path: ', h('code', {}, inst.urls.http)));
    for (const [k, p] of Object.entries(inst.ports || {})) if (p) urls.push(h('li', {}, `Port ${k}: `, h('code', {}, String(p))));
    fill(facts,
      inst.error ? h('p', { class: 'error problem', role: 'alert' }, h('strong', {}, 'What went wrong: '), inst.error) : null,
      h('dl', { class: 'facts wide' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')])),
      h('h2', {}, 'Addresses'),
      urls.length ? h('ul', { class: 'plain' }, urls) : h('p', { class: 'muted' }, 'This template serves no web page.'),
      h('h2', {}, 'SSH'),
      inst.ssh ? h('div', {},
        h('dl', { class: 'facts wide' }, h('dt', {}, 'Host'), h('dd', {}, inst.ssh.host), h('dt', {}, 'Port'), h('dd', {}, String(inst.ssh.port)),
          h('dt', {}, 'User'), h('dd', {}, inst.ssh.user)),
        h('p', {}, h('code', { id: 'ssh-command' }, inst.ssh.command), ' ', button('Copy', (b) => copy(inst.ssh.command, b), { cls: 'secondary', label: 'Copy the SSH command' })),
        h('p', { class: 'muted' }, 'It lets in the keys listed under ', h('a', { href: '/account' }, 'Account'), '.'))
        : h('p', { class: 'muted' }, 'No SSH for this template.'),
      h('h2', {}, 'Volumes'),
      (inst.volumes || []).length
        ? table('Volumes', ['Name', 'Mounted at', 'Docker volume'], inst.volumes.map((v) => [v.name, h('code', {}, v.mount_path), v.docker_name]))
        : h('p', { class: 'muted' }, 'None.'));
  }

  // --- stats ---
  const cpu = [];
  const mem = [];
  async function stats() {
    if (inst.status !== 'running') {
      fill(statsBox, h('p', { class: 'muted' }, 'Figures appear while it runs.'));
      return;
    }
    try {
      const s = await api('GET', `/api/v1/instances/${id}/stats`);
      if (!ctx.live()) return;
      cpu.push(s.cpu_percent ?? 0); mem.push(s.memory_bytes ?? 0);
      if (cpu.length > HISTORY) { cpu.shift(); mem.shift(); }
      fill(statsBox,
        h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, 'CPU'), h('span', { class: 'stat-value', id: 'stat-cpu' }, `${num(s.cpu_percent)} %`),
          sparkline(cpu, 100, `CPU over the last ${cpu.length} readings`)),
        h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, 'Memory'),
          h('span', { class: 'stat-value', id: 'stat-mem' }, `${bytes(s.memory_bytes)} of ${bytes(s.memory_limit_bytes)}`),
          sparkline(mem, s.memory_limit_bytes, `memory over the last ${mem.length} readings`)),
        h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, 'Processes'), h('span', { class: 'stat-value' }, String(s.pids ?? '—'))),
        h('div', { class: 'stat' }, h('span', { class: 'stat-label' }, 'Network'), h('span', { class: 'stat-value' }, `↓ ${bytes(s.net_rx_bytes)} ↑ ${bytes(s.net_tx_bytes)}`)));
    } catch (e) {
      fill(statsBox, h('p', { class: 'error' }, `no figures: ${e.message}`));
    }
  }

  async function loadEvents() {
    try {
      const ev = await api('GET', `/api/v1/instances/${id}/events`);
      if (!ctx.live()) return;
      const items = (ev.items ?? ev).slice().reverse();
      fill(events, items.length
        ? table('Lifecycle events', ['When', 'Event', 'Message'], items.slice(0, 100).map((e) => [when(e.at), e.kind, e.message ?? '']))
        : h('p', { class: 'muted' }, 'No events yet.'));
    } catch (e) {
      fill(events, h('p', { class: 'error' }, e.message));
    }
  }

  // --- logs ---
  let lines = [];
  let paused = false;
  let source = null;
  const pre = h('pre', { id: 'logs', class: 'logs', tabindex: '0', 'aria-label': 'log lines' });
  const filter = input('filter', { type: 'search', placeholder: 'only lines containing…', id: 'log-filter' });
  const follow = h('input', { type: 'checkbox', id: 'log-follow', checked: true });
  const pauseBtn = h('button', { type: 'button', class: 'secondary', id: 'log-pause', 'aria-pressed': 'false' }, 'Pause');
  const logState = h('span', { class: 'muted', id: 'log-state', role: 'status' });
  const logErr = errorLine();
  function drawLogs() {
    if (paused) return;
    const q = filter.value.toLowerCase();
    const shown = q ? lines.filter((l) => l.toLowerCase().includes(q)) : lines;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.textContent = shown.join('\n');
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
  const addLine = (l) => { lines.push(l); if (lines.length > MAX_LINES) lines = lines.slice(-MAX_LINES); };
  function stopFollow() { if (source) { source.close(); source = null; } }
  async function loadTail() {
    stopFollow();
    try {
      const r = await api('GET', `/api/v1/instances/${id}/logs?tail=200`);
      lines = r.lines || [];
      logState.textContent = `last ${lines.length} lines`;
      showError(null);
      drawLogs();
    } catch (e) { showError(e); }
  }
  function showError(e) { logErr.textContent = e ? e.message : ''; logErr.hidden = !e; }
  function startFollow() {
    stopFollow();
    // the stream starts with the last 200 lines, then every new one
    const es = new EventSource(withQuery(`/api/v1/instances/${id}/logs`, { follow: 'true', tail: 200 }));
    source = es;
    es.addEventListener('open', () => { lines = []; logState.textContent = 'following'; showError(null); });
    es.addEventListener('message', (m) => { addLine(m.data); drawLogs(); });
    es.addEventListener('end', (m) => { stopFollow(); follow.checked = false; logState.textContent = m.data || 'the stream ended'; });
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) { stopFollow(); follow.checked = false; logState.textContent = 'not following'; }
      else logState.textContent = 'reconnecting…';
    });
  }
  follow.addEventListener('change', () => (follow.checked ? startFollow() : loadTail()));
  pauseBtn.addEventListener('click', () => {
    paused = !paused;
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(paused));
    drawLogs();
  });
  filter.addEventListener('input', drawLogs);
  const dl = button('Download', () => download(`${inst.name}-logs.txt`, 'text/plain', lines.join('\n') + '\n'), { cls: 'secondary', label: 'Download the log lines' });
  ctx.onLeave(stopFollow);

  // --- exec ---
  let execBox = null;
  if (canAct()) {
    const out = h('pre', { id: 'exec-output', class: 'logs short', hidden: true, tabindex: '0', 'aria-label': 'command output' });
    const code = h('p', { id: 'exec-exit', role: 'status' });
    execBox = h('section', { class: 'panel', 'aria-labelledby': 'exec-h' }, h('h2', { id: 'exec-h' }, 'Run a command'),
      bindForm(h('form', { id: 'exec-form', class: 'row' },
        field('Command', input('command', { required: true, placeholder: 'ls -la /data', autocomplete: 'off', class: 'wide' }), 'split at spaces; "sh -c \'…\'" for a shell line'),
        h('button', { type: 'submit' }, 'Run')), async (form) => {
        const command = splitCommand(form.elements.namedItem('command').value);
        code.textContent = 'running…';
        out.hidden = true;
        try {
          const r = await api('POST', `/api/v1/instances/${id}/exec`, { command });
          code.textContent = `exit code ${r.exit_code}`;
          out.textContent = r.output ?? '';
          out.hidden = false;
        } catch (e) { code.textContent = ''; throw Object.assign(e, { field: e.field || 'command' }); }
      }), code, out);
  }

  add(root, h('p', { class: 'crumbs' }, h('a', { href: user ? '/admin/instances' : '/' }, user ? '← All instances' : '← Workspaces')),
    head, err,
    h('div', { class: 'detail-grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'about-h' }, h('h2', { id: 'about-h' }, 'About'), facts),
      h('section', { class: 'panel', 'aria-labelledby': 'stats-h' }, h('h2', { id: 'stats-h' }, 'Resources'), statsBox,
        h('h2', {}, 'Lifecycle'), events)),
    h('section', { class: 'panel', 'aria-labelledby': 'logs-h' }, h('h2', { id: 'logs-h' }, 'Logs'),
      h('div', { class: 'row toolbar' }, h('label', { class: 'check', for: 'log-follow' }, follow, ' follow'), pauseBtn,
        field('Search', filter), dl, logState), logErr, pre),
    execBox);
  drawHead();
  drawFacts();
  await Promise.all([stats(), loadEvents()]);
  if (!ctx.live()) return;
  if (inst.status === 'running') startFollow(); else { follow.checked = false; loadTail(); }
  const timer = setInterval(async () => {
    const was = inst.status;
    await refresh().catch((e) => { err.textContent = e.message; err.hidden = false; });
    if (!ctx.live()) return;
    stats();
    if (inst.status !== was) {
      loadEvents();
      if (inst.status === 'running' && !source) { follow.checked = true; startFollow(); }
    }
  }, STATS_MS);
  ctx.onLeave(() => clearInterval(timer));
}

// "sh -c 'echo hi'" -> ["sh", "-c", "echo hi"]: spaces split, quotes group.
export function splitCommand(s) {
  const out = [];
  let cur = null;
  let q = null;
  for (const ch of s) {
    if (q) { if (ch === q) q = null; else cur += ch; continue; }
    if (ch === '"' || ch === "'") { q = ch; cur = cur ?? ''; continue; }
    if (/\s/.test(ch)) { if (cur !== null) { out.push(cur); cur = null; } continue; }
    cur = (cur ?? '') + ch;
  }
  if (cur !== null) out.push(cur);
  return out;
}
