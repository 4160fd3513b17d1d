// The REST API (API.md) as the UI uses it: one signed-in session (cookie +
// CSRF token), errors as exceptions carrying the API's code, message and
// field, and lists read page by page through next_cursor.

export const session = { user: null, csrf: null };

export const role = () => session.user?.role;
export const isAdmin = () => role() === 'admin';
// Viewers read their own instances and nothing more: no create, start, stop, exec.
export const canAct = () => role() === 'admin' || role() === 'developer';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `berth answered HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.field = body?.error?.field;
  }
}

// Called when the session is gone (401 on a request that needs one).
let onSignedOut = () => {};
export const whenSignedOut = (fn) => { onSignedOut = fn; };

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = null;
  if (res.status !== 204) {
    try { json = await res.json(); } catch { /* not JSON */ }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, json);
    if (res.status === 401 && session.user && !path.startsWith('/api/v1/auth/')) onSignedOut();
    throw err;
  }
  return json;
}

// path with the query parameters of params that have a value.
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

// One page of a list: {items, next_cursor}.
export const page = (path, params = {}) => api('GET', withQuery(path, params));

// Every item of a list, following next_cursor (at most max items).
export async function all(path, params = {}, max = 5000) {
  const items = [];
  let cursor;
  do {
    const p = await page(path, { ...params, limit: 500, cursor });
    items.push(...(p.items ?? []));
    cursor = p.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

export const enc = encodeURIComponent;
