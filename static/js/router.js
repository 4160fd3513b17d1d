// Views with real addresses (history API): every path below is a page of its
// own that a reload or a shared link lands on again (nginx answers any path
// with index.html). A view is render(ctx) filling ctx.root; what it leaves
// running (timers, log streams) it hands to ctx.onLeave, stopped on the next
// navigation.
import { $, add, fill, h } from './dom.js';

const routes = [];
export const route = (re, title, render) => routes.push({ re, title, render });

let leaving = [];
let renderSeq = 0;

export function stopAll() {
  for (const fn of leaving.splice(0)) { try { fn(); } catch { /* gone already */ } }
}

export async function render() {
  stopAll();
  const seq = ++renderSeq;
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const root = $('#view');
  fill(root);
  const r = routes.find((x) => x.re.test(path));
  const ctx = {
    root, path, query: new URLSearchParams(location.search),
    params: r ? path.match(r.re).slice(1).map(decodeURIComponent) : [],
    onLeave: (fn) => leaving.push(fn),
    // true while this view is still the one shown
    live: () => seq === renderSeq,
  };
  for (const a of document.querySelectorAll('#nav a')) {
    const href = a.getAttribute('href');
    const here = href === '/' ? path === '/' || path.startsWith('/instances/') : path.startsWith(href);
    if (here) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (!r) {
    document.title = 'not found · berth';
    add(root, h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '/' }, 'Back to your workspaces')));
    return;
  }
  document.title = `${typeof r.title === 'function' ? r.title(ctx.params) : r.title} · berth`;
  try {
    await r.render(ctx);
  } catch (e) {
    if (ctx.live()) add(root, h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

export function navigate(to, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', to); else history.pushState(null, '', to);
  render();
  const main = $('#main');
  if (main) main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

// Links inside the UI move between views without reloading; the API,
// workspaces, downloads and new tabs are left to the browser.
export function interceptLinks() {
  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || /^\/(api|container|_berth)\//.test(url.pathname) || a.classList.contains('skip')) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', render);
}
