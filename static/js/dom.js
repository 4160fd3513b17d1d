// Building the page: elements from the API's data through textContent only
// (never innerHTML), buttons and forms whose errors land next to them.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// h('button', {class: 'x', onclick: fn, hidden: true}, 'text', child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}
// el's children replaced by children (null, false and undefined skipped).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}
// children added to el (null, false and undefined skipped).
export function add(el, ...children) {
  append(el, children);
  return el;
}
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

let uid = 0;
export const newId = (p = 'f') => `${p}-${++uid}`;

// An error line (role=alert) shown next to what caused it.
export function errorLine(attrs = {}) {
  return h('p', { class: 'error', role: 'alert', hidden: true, ...attrs });
}
export function showError(el, e) {
  el.textContent = e ? (e.message || String(e)) : '';
  el.hidden = !e;
}

// A button that runs onClick once at a time; its failure is shown in errEl
// (or a line made just after the button).
export function button(label, onClick, opts = {}) {
  const b = h('button', { type: 'button', class: opts.cls, 'aria-label': opts.label, title: opts.title, dataset: opts.dataset }, label);
  b.addEventListener('click', async () => {
    let err = opts.errEl;
    if (!err) {
      err = b.nextElementSibling?.classList.contains('btn-error') ? b.nextElementSibling : null;
    }
    if (err) showError(err, null);
    b.disabled = true;
    try {
      await onClick(b);
    } catch (e) {
      if (!err) {
        err = h('span', { class: 'error btn-error', role: 'alert' });
        b.after(err);
      }
      showError(err, e);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

// A labelled control: <label>Text <input ...></label> plus the place its
// field error goes (aria-describedby points at it).
export function field(text, control, hint) {
  const errId = newId('err');
  control.setAttribute('aria-describedby', errId);
  const lab = h('label', { class: 'field' }, h('span', {}, text), control,
    hint ? h('small', { class: 'muted' }, hint) : null,
    h('span', { class: 'error field-error', id: errId, role: 'alert', hidden: true }));
  return lab;
}
export const input = (name, attrs = {}) => h('input', { name, ...attrs });

// form's field errors and its general error line cleared.
function clearErrors(form) {
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
  for (const e of form.querySelectorAll('.field-error, .form-error')) showError(e, null);
}
// The API's error put where it belongs: next to the control named by its
// field when the form has one, else in the form's own error line.
export function formError(form, e) {
  const ctl = e.field && form.elements.namedItem(e.field);
  if (ctl && ctl.getAttribute) {
    const spot = document.getElementById(ctl.getAttribute('aria-describedby'));
    if (spot) {
      ctl.setAttribute('aria-invalid', 'true');
      showError(spot, e);
      ctl.focus();
      return;
    }
  }
  let line = form.querySelector('.form-error');
  if (!line) { line = errorLine({ class: 'error form-error' }); form.append(line); }
  showError(line, e);
}
// onSubmit(form) on submit, its errors shown in the form.
export function bindForm(form, onSubmit) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const sub = form.querySelector('[type=submit]');
    if (sub) sub.disabled = true;
    try { await onSubmit(form); } catch (e) { formError(form, e); } finally { if (sub) sub.disabled = false; }
  });
  return form;
}

export const when = (t) => (t ? new Date(t).toLocaleString() : '—');
export function ago(t) {
  if (!t) return '—';
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}
export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${u[i]}`;
}
// A number as people write it: 0.59999999999999998 -> 0.6.
export const num = (x) => (typeof x === 'number' ? String(Math.round(x * 100) / 100) : (x ?? '—'));

// Copy text to the clipboard; the button says so for a moment.
export async function copy(text, btn) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // no clipboard permission (plain http, or a test browser): select it instead
    const t = h('textarea', { class: 'offscreen', 'aria-hidden': 'true' }, text);
    document.body.append(t);
    t.select();
    document.execCommand('copy');
    t.remove();
  }
  if (btn) {
    const was = btn.textContent;
    btn.textContent = 'Copied';
    setTimeout(() => { btn.textContent = was; }, 1500);
  }
}

// A table: headers and rows of cells (strings or nodes).
export function table(caption, headers, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' }, h('table', attrs,
    caption ? h('caption', { class: 'sr-only' }, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x === '' ? h('span', { class: 'sr-only' }, 'Actions') : x)))),
    h('tbody', {}, rows.map((r) => h('tr', r.attrs || {}, (r.cells || r).map((c) => h('td', {}, c)))))));
}

// A file download of text made here.
export function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name, class: 'offscreen' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// The status of an instance as a badge.
export const statusBadge = (s) => h('span', { class: `status status-${s}` }, s);

// A modal question: resolves to the value of the button pressed (null: cancelled).
export function ask(title, body, buttons) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title', class: 'dialog' });
    const form = h('form', { method: 'dialog' },
      h('h2', { id: 'dlg-title' }, title), body,
      h('div', { class: 'row' }, buttons.map((b) => h('button', { value: b.value, class: b.cls, type: 'submit' }, b.label)),
        h('button', { value: '', type: 'submit', class: 'secondary' }, 'Cancel')));
    dlg.append(form);
    dlg.addEventListener('close', () => { resolve(dlg.returnValue || null); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
  });
}
