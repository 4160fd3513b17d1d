// / : your workspaces (a card each, status refreshed every 3 s) and, for
// those who may launch, the template gallery with its launch form and the
// new workspace's progress until it runs.
import { all, api, canAct, enc } from './api.js';
import { add, ago, bindForm, errorLine, field, fill, h, input, num, statusBadge } from './dom.js';
import { instanceActions } from './actions.js';

const POLL_MS = 3000;
const busy = (s) => s === 'pending' || s === 'creating';
const building = (t) => t.image_build && (t.image_build.state === 'queued' || t.image_build.state === 'building');

// The stack's own build of a template's image, in words; null once ready.
export function buildState(b) {
  if (!b || b.state === 'ready') return null;
  if (b.state === 'failed') return h('p', { class: 'build failed' }, `Image failed to build: ${b.message || 'no message'}`);
  return h('p', { class: 'build' }, `Image ${b.state === 'queued' ? 'queued to be built' : 'being built'}${b.message ? `: ${b.message.slice(0, 120)}` : ''}`);
}

export const resources = (t) => (t ? `${num(t.cpus)} CPU · ${t.memory_mb} MB` : '');

// The latest lifecycle event of an instance under way ("pulling …").
async function progressOf(inst) {
  const ev = await api('GET', `/api/v1/instances/${inst.id}/events`);
  const last = (ev.items ?? ev).at(-1);
  return last ? last.message || last.kind : '';
}

function card(inst, tpl, progress, refresh) {
  const name = h('a', { href: `/instances/${enc(inst.name)}` }, inst.name);
  return h('article', { class: 'card inst', dataset: { name: inst.name, id: inst.id, status: inst.status }, 'aria-labelledby': `inst-${inst.id}` },
    h('div', { class: 'card-head' }, h('h3', { id: `inst-${inst.id}` }, name), statusBadge(inst.status)),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Template'), h('dd', {}, inst.template?.name ?? '—'),
      h('dt', {}, 'Age'), h('dd', { class: 'age', dataset: { t: inst.created_at } }, ago(inst.created_at)),
      tpl ? [h('dt', {}, 'Resources'), h('dd', {}, resources(tpl))] : null),
    progress ? h('p', { class: 'progress', role: 'status' }, progress) : null,
    inst.error ? h('p', { class: 'error' }, inst.error) : null,
    h('div', { class: 'actions' }, instanceActions(inst, refresh)));
}

function templateCard(t, i) {
  const id = `tpl-${t.id}`;
  const failed = t.image_build?.state === 'failed';
  return h('div', { class: 'tpl' },
    h('input', { type: 'radio', name: 'template', value: t.id, id, checked: i === 0, 'aria-describedby': `${id}-d`, disabled: failed }),
    h('label', { for: id, class: 'tpl-card' },
      h('span', { class: 'tpl-name' }, t.name),
      h('span', { class: 'badges' },
        t.http_port ? h('span', { class: 'badge' }, 'web') : null,
        t.ssh_port ? h('span', { class: 'badge' }, 'SSH') : null),
      h('span', { class: 'tpl-desc', id: `${id}-d` }, t.description || ''),
      h('span', { class: 'muted tpl-image' }, t.image),
      h('span', { class: 'muted' }, resources(t)),
      buildState(t.image_build)));
}

export async function workspacesView(ctx) {
  const { root } = ctx;
  const mayLaunch = canAct();
  let templates = [];
  let kept = [];
  const tplById = new Map();
  const cards = new Map(); // id -> {sig, el}
  let launched = null; // id of the instance this page launched, followed in the form
  const grid = h('div', { id: 'instances', class: 'cards', 'aria-live': 'polite' });
  const empty = h('p', { id: 'no-instances', class: 'muted', hidden: true }, mayLaunch
    ? 'No workspaces yet: pick a template and launch one.' : 'No workspaces yet.');
  const listErr = errorLine();

  // --- launch form ---
  const gallery = h('div', { class: 'gallery', id: 'gallery' });
  const volBox = h('div', { id: 'launch-volumes' });
  const progress = h('div', { id: 'launch-progress', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { id: 'launch-form', class: 'launch', 'aria-labelledby': 'launch-h' },
    h('fieldset', {}, h('legend', {}, 'Template'), gallery),
    h('div', { class: 'row' },
      field('Name (optional)', input('name', { placeholder: "the template's", pattern: '[a-z][a-z0-9\\-]{0,30}[a-z0-9]', autocomplete: 'off' }),
        'lower-case letters, digits and dashes'),
      volBox),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Launch')),
    errorLine({ class: 'error form-error', id: 'launch-error' }),
    progress);

  const chosen = () => tplById.get(gallery.querySelector('input[name=template]:checked')?.value);

  // For each volume of the chosen template: start empty, or re-attach one
  // of the caller's kept volumes of that name.
  function showVolumes() {
    const t = chosen();
    const names = Object.keys(t?.volumes || {});
    fill(volBox, ...names.map((n) => {
      const opts = kept.filter((v) => v.name === n);
      if (!opts.length) return null;
      const sel = h('select', { name: `vol:${n}` }, h('option', { value: '' }, 'a new, empty volume'),
        opts.map((v) => h('option', { value: v.id }, `kept: ${v.docker_name || v.name} (${v.template || '?'}, ${new Date(v.created_at).toLocaleDateString()})`)));
      return field(`Volume ${n} (${t.volumes[n]})`, sel);
    }).filter(Boolean));
  }

  function showTemplates() {
    const was = chosen()?.id;
    fill(gallery, ...templates.map(templateCard));
    if (!templates.length) add(gallery, h('p', { class: 'muted' }, 'No templates yet: an admin adds them.'));
    if (was) { const r = gallery.querySelector(`[value="${was}"]`); if (r) r.checked = true; }
    showVolumes();
  }
  gallery.addEventListener('change', showVolumes);

  bindForm(form, async () => {
    const t = chosen();
    if (!t) throw new Error('pick a template first');
    const body = { template: t.id };
    const name = form.elements.namedItem('name').value.trim();
    if (name) body.name = name;
    const vols = {};
    for (const s of volBox.querySelectorAll('select')) if (s.value) vols[s.name.slice(4)] = s.value;
    if (Object.keys(vols).length) body.volumes = vols;
    const r = await api('POST', '/api/v1/instances', body);
    launched = r.instance.id;
    form.elements.namedItem('name').value = '';
    fill(progress, h('p', {}, `${r.instance.name}: ${r.instance.status}…`));
    await refresh(true);
  });

  function showProgress(inst, msg) {
    if (!inst) { fill(progress); return; }
    const line = h('p', { class: 'status-line' }, h('strong', {}, inst.name), ': ', statusBadge(inst.status), msg ? ` — ${msg}` : '');
    if (inst.status === 'running' && inst.urls?.open) {
      add(line, ' ', h('a', { class: 'button', href: inst.urls.open, target: '_blank', rel: 'noopener', id: 'launch-open' }, `Open ${inst.name}`));
    }
    if (inst.status === 'error' && inst.error) add(line, h('span', { class: 'error' }, ` ${inst.error}`));
    fill(progress, line);
  }

  // --- the list, kept in step every 3 s ---
  let loadingVolumes = null;
  let lastShape = '';
  async function refresh(volumesToo = false) {
    if (!ctx.live()) return;
    const jobs = [all('/api/v1/instances')];
    if (mayLaunch && (volumesToo || templates.some(building) || !templates.length)) jobs.push(all('/api/v1/templates'));
    let list;
    try {
      const [insts, tpls] = await Promise.all(jobs);
      list = insts;
      listErr.hidden = true;
      if (tpls) {
        const sig = JSON.stringify(tpls);
        if (sig !== JSON.stringify(templates)) {
          templates = tpls;
          tplById.clear();
          for (const t of tpls) tplById.set(t.id, t);
          showTemplates();
        }
      }
    } catch (e) {
      if (ctx.live()) { listErr.textContent = `could not read your workspaces: ${e.message}`; listErr.hidden = false; }
      return;
    }
    // a workspace gone or changed state may have let go of volumes: ask again
    const shape = list.map((i) => `${i.id}:${i.status}`).join();
    if (shape !== lastShape) { volumesToo = true; lastShape = shape; }
    if (mayLaunch && volumesToo && !loadingVolumes) {
      loadingVolumes = all('/api/v1/volumes').then((v) => { kept = v.filter((x) => !x.instance_id); showVolumes(); })
        .catch(() => {}).finally(() => { loadingVolumes = null; });
    }
    const progressMsgs = await Promise.all(list.map((i) => (busy(i.status) ? progressOf(i).catch(() => '') : '')));
    if (!ctx.live()) return;
    const seen = new Set();
    const order = [];
    list.forEach((inst, k) => {
      seen.add(inst.id);
      const tpl = tplById.get(inst.template?.id);
      const sig = JSON.stringify([inst, progressMsgs[k], tpl?.cpus, tpl?.memory_mb]);
      let c = cards.get(inst.id);
      if (!c || c.sig !== sig) {
        const el = card(inst, tpl, progressMsgs[k], refresh);
        // keep the keyboard where it was when the card is redrawn
        const focused = c && c.el.contains(document.activeElement) ? document.activeElement.getAttribute('aria-label') : null;
        if (c) c.el.replaceWith(el);
        c = { sig, el };
        cards.set(inst.id, c);
        if (focused) el.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
      } else {
        const age = c.el.querySelector('.age');
        if (age) age.textContent = ago(age.dataset.t);
      }
      order.push(c.el);
      if (inst.id === launched) showProgress(inst, progressMsgs[k]);
    });
    for (const [id, c] of cards) if (!seen.has(id)) { c.el.remove(); cards.delete(id); }
    order.forEach((el, k) => { if (grid.children[k] !== el) grid.insertBefore(el, grid.children[k] || null); });
    empty.hidden = list.length > 0;
  }

  add(root, h('h1', {}, 'Workspaces'));
  add(root, h('section', { class: 'mine', 'aria-labelledby': 'mine-h' }, h('h2', { id: 'mine-h' }, 'Your workspaces'), listErr, grid, empty));
  if (mayLaunch) add(root, h('section', { class: 'panel', 'aria-labelledby': 'launch-h' }, h('h2', { id: 'launch-h' }, 'Launch a workspace'), form));
  await refresh(true);
  const timer = setInterval(() => refresh(false), POLL_MS);
  ctx.onLeave(() => clearInterval(timer));
}
