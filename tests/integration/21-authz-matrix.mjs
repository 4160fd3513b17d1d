// The authorisation matrix (issue 3), generated from the table below: every
// endpoint that `berth-api --routes` prints × {anonymous, viewer, developer,
// admin} × {own, other's resource} → the expected status, through nginx.
//
// - A route printed by --routes without a row here fails the test: a new
//   endpoint must say who may call it.
// - A row whose route does not exist (yet) is reported as a skip.
// - Expected: a number (exact status) or ALLOW (2xx, or 409: authorised but the
//   resource's state forbids it right now).
// - No leak: every refusal is the bare error shape and never contains the
//   resource's id; lists never show another user's resource to a non-admin.
// - Cells: anon (on devOwner's resource), viewer_own / viewer_other,
//   dev_own (devOwner on its own) / dev_other (devOther on devOwner's),
//   admin_own / admin_other (admin on devOwner's). null: not applicable
//   (e.g. a viewer cannot own an instance).
// Credentials: bearer tokens (no CSRF); rows marked cookie use a session.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { done, notOk, ok } from '../lib/tap.mjs';

const URL = process.env.BERTH_URL;
const ROOT = process.env.ROOT;
const BUILD = process.env.BERTH_BUILD || `${ROOT}/build`;
const ALLOW = 'allow';
const PROXY_OK = 'proxy-ok'; // through the auth check: the app's answer or 502/504 while it starts
const P = 'm' + randomBytes(3).toString('hex');
class Skip extends Error {}

// nginx closes idle keep-alive connections when it reloads (instances come and
// go during this test); a request sent on one as it closes never reached
// berth, so it is sent again, as browsers do -- after a pause, as the next
// pooled connection may be closing too.
async function send(url, init) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (e) {
      const code = e.cause && e.cause.code;
      if ((code !== 'UND_ERR_SOCKET' && code !== 'ECONNRESET') || attempt === 5) {
        console.error(`  ${init.method || 'GET'} ${url}: ${e.cause ? `${e.cause.code} ${e.cause.message}` : e}`);
        throw e;
      }
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

async function call(method, path, { token, session, body, raw } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (session) { headers.Cookie = `berth_session=${session.cookie}`; headers['X-CSRF-Token'] = session.csrf; }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const init = {
    method, headers, body: body === undefined ? undefined : (raw ? body : JSON.stringify(body)),
    redirect: 'manual',
  };
  const res = await send(URL + path, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

// A request to a workspace origin ({user}.localhost): node does not resolve
// *.localhost, so it goes to nginx's address with the workspace's Host.
function wsCall(method, path, user, token) {
  const u = new globalThis.URL(URL);
  return new Promise((resolve, reject) => {
    const headers = { Host: `${user}.localhost:${u.port}` };
    if (token) headers.Authorization = `Bearer ${token}`;
    const req = request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, json, text, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function login(username, password) {
  const r = await call('POST', '/api/v1/auth/login', { body: { username, password } });
  if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text}`);
  const c = r.headers.getSetCookie().find((s) => s.startsWith('berth_session='));
  return { cookie: c.split(';')[0].split('=')[1], csrf: r.json.csrf_token, id: r.json.user.id };
}

// ---- actors
const actors = {};
const admin = await login('admin', process.env.BERTH_ADMIN_PASSWORD);
actors.admin = { name: 'admin', password: process.env.BERTH_ADMIN_PASSWORD, id: admin.id, session: admin };
actors.admin.token = (await call('POST', '/api/v1/tokens', { session: admin, body: { name: 'matrix' } })).json.token;
for (const [key, role] of [['viewer', 'viewer'], ['devOwner', 'developer'], ['devOther', 'developer']]) {
  const name = `${P}-${key.toLowerCase()}`, password = `pw-${name}-matrix`;
  const r = await call('POST', '/api/v1/users', {
    token: actors.admin.token, body: { username: name, password, role, quota: { instances: 50, cpus: 64, memory_mb: 65536 } },
  });
  if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
  const s = await login(name, password);
  const t = await call('POST', '/api/v1/tokens', { session: s, body: { name: 'matrix' } });
  actors[key] = { name, password, id: s.id, session: s, token: t.json.token };
}

// ---- resource factories: make(owner, fresh) -> id ("owner" is an actor key)
const cache = new Map();
let seq = 0;
const uniq = () => `${P}-r${++seq}`;
let templateName = null;
async function template() {
  if (!templateName) {
    const r = await call('GET', '/api/v1/templates?limit=500', { token: actors.admin.token });
    templateName = r.json?.items?.find((t) => t.name === 'web')?.name || r.json?.items?.[0]?.name;
  }
  return templateName;
}
async function newInstance(owner) {
  const r = await call('POST', '/api/v1/instances', { token: actors[owner].token, body: { template: await template(), name: uniq() } });
  if (r.status !== 202) throw new Error(`instance for ${owner}: ${r.status} ${r.text}`);
  return r.json;
}
function sshKey() {
  const f = `/tmp/${P}-key${++seq}`;
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'matrix', '-f', f]);
  return readFileSync(`${f}.pub`, 'utf8').trim();
}
const factories = {
  user: async (owner, fresh) => {
    if (!fresh || owner !== 'devOwner') return actors[owner].id;
    const r = await call('POST', '/api/v1/users', { token: actors.admin.token, body: { username: uniq(), password: 'throwaway-pass', role: 'developer' } });
    return r.json.id;
  },
  token: async (owner) => (await call('POST', '/api/v1/tokens', { token: actors[owner].token, body: { name: uniq() } })).json.id,
  template: async () => {
    const r = await call('POST', '/api/v1/templates', { token: actors.admin.token, body: { name: uniq(), image: 'berth-demo/web:1', http_port: 8080 } });
    if (r.status !== 201) throw new Error(`template: ${r.status} ${r.text}`);
    return r.json.id;
  },
  instance: async (owner) => (await newInstance(owner)).instance.id,
  job: async (owner) => (await newInstance(owner)).job.id,
  volume: async (owner) => {
    const r = await newInstance(owner);
    const v = r.instance.volumes?.[0]?.id;
    if (!v) throw new Error('the instance has no volume');
    return v;
  },
  running_instance: async (owner) => {
    const r = await newInstance(owner);
    const id = r.instance.id;
    for (let i = 0; i < 120; i++) {
      const g = await call('GET', `/api/v1/instances/${id}`, { token: actors[owner].token });
      if (g.json?.status === 'running') {
        // The route goes live with the next nginx reload, a moment after
        // `running`: wait for it (the owner's request stops being the 404 of
        // an address no instance holds).
        const path = `/container/${actors[owner].name}/${g.json.name}/`;
        for (let k = 0; k < 100; k++) {
          const p = await wsCall('GET', path, actors[owner].name, actors[owner].token);
          if (p.status !== 404) break;
          await new Promise((res) => setTimeout(res, 100));
        }
        return `${actors[owner].name}/${g.json.name}`;
      }
      if (g.json?.status === 'error') throw new Error(`instance failed: ${g.text}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    const j = await call('GET', `/api/v1/jobs/${r.job.id}`, { token: actors[owner].token });
    if (j.json?.status === 'queued' && !j.json?.attempts) throw new Skip('no worker took the create job in 60 s');
    throw new Error(`instance did not reach running in 60 s (job: ${j.text.slice(0, 200)})`);
  },
  ssh_key: async (owner) => {
    const r = await call('POST', '/api/v1/ssh-keys', { token: actors[owner].token, body: { name: uniq(), public_key: sshKey() } });
    if (r.status !== 201) throw new Error(`ssh key: ${r.status} ${r.text}`);
    return r.json.id;
  },
};
async function resource(kind, owner, fresh) {
  const key = `${kind}/${owner}`;
  if (fresh) return factories[kind](owner, fresh);
  if (!cache.has(key)) cache.set(key, factories[kind](owner, fresh)); // a failure is remembered too
  return cache.get(key);
}

// ---- the table
// Collection rows: cells anon, viewer, dev, admin. Owned rows: see the header.
const C = (anon, viewer, dev, admin) => ({ anon, viewer, dev, admin });
const O = (anon, viewer_own, viewer_other, dev_own, dev_other, admin_own, admin_other) =>
  ({ anon, viewer_own, viewer_other, dev_own, dev_other, admin_own, admin_other });
const auth = (code) => C(401, code, code, code);
const adminOnly = (code) => C(401, 403, 403, code);
const instOps = O(401, null, 404, ALLOW, 404, null, ALLOW); // owner or admin; others see nothing
const instRead = O(401, null, 404, 200, 404, null, 200);

const table = [
  { route: 'GET /api/v1/health', expect: C(200, 200, 200, 200) },
  { route: 'POST /api/v1/auth/login', expect: C(200, 200, 200, 200), body: (a) => ({ username: actors[a].name, password: actors[a].password }), anonAs: 'devOther', noCreds: true },
  { route: 'POST /api/v1/auth/logout', expect: auth(204), cookie: true },
  { route: 'GET /api/v1/auth/me', expect: auth(200) },
  // a wrong current password: authenticated callers get as far as the check (403), anonymous 401;
  // a real change would end the sessions the rest of the table uses (24-hardening.sh does it)
  { route: 'POST /api/v1/auth/password', expect: auth(403), body: () => ({ current_password: 'not-the-password', new_password: 'matrix-pass-2' }) },
  { route: 'GET /api/v1/users', expect: adminOnly(200), lists: 'user' },
  { route: 'POST /api/v1/users', expect: adminOnly(201), body: () => ({ username: uniq(), password: 'matrix-pass', role: 'viewer' }) },
  { route: 'GET /api/v1/users/{id}', kind: 'user', expect: O(401, 200, 403, 200, 403, 200, 200) },
  { route: 'PATCH /api/v1/users/{id}', kind: 'user', expect: O(401, 403, 403, 403, 403, 200, 200), body: () => ({ quota: { instances: 50 } }) },
  { route: 'DELETE /api/v1/users/{id}', kind: 'user', fresh: true, expect: O(401, 403, 403, 403, 403, 409, 202) },
  { route: 'GET /api/v1/tokens', expect: auth(200), lists: 'token' },
  { route: 'POST /api/v1/tokens', expect: auth(201), body: () => ({ name: 'matrix' }) },
  { route: 'DELETE /api/v1/tokens/{id}', kind: 'token', fresh: true, expect: O(401, 204, 404, 204, 404, 204, 404) },
  { route: 'GET /api/v1/audit', expect: adminOnly(200) },
  { route: 'GET /api/v1/admin/stats', expect: adminOnly(200) },
  { route: 'GET /api/v1/nodes', expect: adminOnly(200) },
  { route: 'GET /api/v1/templates', expect: auth(200) },
  { route: 'GET /api/v1/templates/{id}', kind: 'template', expect: O(401, 200, 200, 200, 200, 200, 200) },
  { route: 'POST /api/v1/templates', expect: adminOnly(201), body: () => ({ name: uniq(), image: 'berth-demo/web:1' }) },
  { route: 'PATCH /api/v1/templates/{id}', kind: 'template', expect: O(401, 403, 403, 403, 403, 200, 200), body: () => ({ description: 'matrix' }) },
  { route: 'DELETE /api/v1/templates/{id}', kind: 'template', fresh: true, expect: O(401, 403, 403, 403, 403, 204, 204) },
  { route: 'GET /api/v1/instances', expect: auth(200), lists: 'instance' },
  { route: 'POST /api/v1/instances', expect: C(401, 403, 202, 202), body: async () => ({ template: await template(), name: uniq() }) },
  { route: 'GET /api/v1/instances/{id}', kind: 'instance', expect: instRead },
  { route: 'POST /api/v1/instances/{id}/start', kind: 'instance', expect: instOps },
  { route: 'POST /api/v1/instances/{id}/stop', kind: 'instance', expect: instOps },
  { route: 'POST /api/v1/instances/{id}/restart', kind: 'instance', expect: instOps },
  { route: 'POST /api/v1/instances/{id}/snooze', kind: 'instance', expect: instOps },
  { route: 'DELETE /api/v1/instances/{id}', kind: 'instance', fresh: true, expect: instOps },
  { route: 'GET /api/v1/instances/{id}/logs', kind: 'instance', expect: O(401, null, 404, ALLOW, 404, null, ALLOW) },
  { route: 'GET /api/v1/instances/{id}/stats', kind: 'instance', expect: O(401, null, 404, ALLOW, 404, null, ALLOW) },
  { route: 'POST /api/v1/instances/{id}/exec', kind: 'instance', expect: instOps, body: () => ({ command: ['true'] }) },
  { route: 'GET /api/v1/instances/{id}/events', kind: 'instance', expect: instRead },
  { route: 'GET /api/v1/jobs/{id}', kind: 'job', expect: instRead },
  { route: 'GET /api/v1/volumes', expect: auth(200), lists: 'volume' },
  { route: 'DELETE /api/v1/volumes/{id}', kind: 'volume', fresh: true, expect: O(401, null, 404, ALLOW, 404, null, ALLOW) },
  { route: 'GET /api/v1/ssh-keys', expect: auth(200), lists: 'ssh_key' },
  { route: 'POST /api/v1/ssh-keys', expect: C(401, 403, 201, 201), body: () => ({ name: uniq(), public_key: sshKey() }) },
  // nginx's auth_request target: internal, so unreachable from outside for
  // everyone; the workspace origin's sign-in endpoints are not on the UI origin.
  { route: 'GET /_berth/auth/{id}', kind: 'instance', expect: O(404, null, 404, 404, 404, null, 404), nginx: true },
  { route: 'GET /_berth/session', expect: C(404, 404, 404, 404), nginx: true },
  { route: 'GET /_berth/to-workspace', expect: C(404, 404, 404, 404), nginx: true },
  // berth's "not running" page: only an instance location's error_page reaches it.
  { route: 'GET /_berth/unavailable', expect: C(404, 404, 404, 404), nginx: true },
  // berth's page for a browser refused on a workspace origin: nginx's named location only.
  { route: 'GET /_berth/refused', expect: C(404, 404, 404, 404), nginx: true },
  // The workspace sign-in (302s for browsers): without an instance id, 400 for everyone.
  { route: 'GET /api/v1/auth/workspace', expect: C(400, 400, 400, 400) },
  // Prometheus scrape: open to a scraper on this host (nginx allows 127.0.0.1 only).
  { route: 'GET /metrics', expect: C(200, 200, 200, 200) },
  // Not an API route: the proxied container itself on its workspace origin,
  // owner only (admins get no implicit access). Runs once instances exist;
  // waits for the instance to run.
  { route: 'GET /container/{user}/{instance}/', extra: 'POST /api/v1/instances', kind: 'running_instance',
    workspace: true, expect: O(401, null, 403, PROXY_OK, 403, null, 403) },
  { route: 'DELETE /api/v1/ssh-keys/{id}', kind: 'ssh_key', fresh: true, expect: O(401, null, 404, 204, 404, 204, 404) },
];

// ---- every route has a row
const routes = execFileSync(`${BUILD}/berth-api`, ['--routes'], { encoding: 'utf8' }).trim().split('\n');
const rows = new Set(table.filter((t) => !t.extra).map((t) => t.route));
for (const r of routes) {
  if (rows.has(r)) ok(`matrix has a row for ${r}`);
  else notOk(`matrix has a row for ${r}`, 'add the endpoint to tests/integration/21-authz-matrix.mjs');
}

// ---- run the cells
const allowed = (s) => (s >= 200 && s < 300) || s === 409;
const cellActor = { anon: null, viewer: 'viewer', dev: 'devOwner', admin: 'admin',
  viewer_own: 'viewer', viewer_other: 'viewer', dev_own: 'devOwner', dev_other: 'devOther',
  admin_own: 'admin', admin_other: 'admin' };
const cellOwner = { anon: 'devOwner', viewer_own: 'viewer', viewer_other: 'devOwner', dev_own: 'devOwner',
  dev_other: 'devOwner', admin_own: 'admin', admin_other: 'devOwner' };
let cells = 0;
for (const row of table) {
  if (!routes.includes(row.extra || row.route)) { ok(`${row.route}: not implemented yet # SKIP`); continue; }
  const [method, pattern] = row.route.split(' ');
  // Refusals first, then the cells that succeed (which may consume the resource).
  const keys = Object.keys(row.expect);
  const succeeds = (c) => row.expect[c] === ALLOW || row.expect[c] === PROXY_OK || (row.expect[c] !== null && row.expect[c] < 300);
  const order = keys.filter((c) => !succeeds(c)).concat(keys.filter(succeeds));
  for (const cell of order) {
    const want = row.expect[cell];
    if (want === null) continue;
    const who = cellActor[cell];
    let id = null, path = pattern, session;
    try {
      if (row.kind) {
        id = await resource(row.kind, cellOwner[cell], !!row.fresh);
        path = row.kind === 'running_instance' ? pattern.replace('{user}/{instance}', id) : pattern.replace('{id}', id);
      }
      const opts = {};
      if (who && row.cookie) {
        session = await login(actors[who].name, actors[who].password);
        opts.session = session;
      } else if (who && !row.noCreds) {
        opts.token = actors[who].token;
      }
      if (row.body) opts.body = await row.body(who || row.anonAs || 'devOther');
      const r = row.workspace ? await wsCall(method, path, id.split('/')[0], opts.token)
        : await call(method, path, opts);
      cells++;
      const what = `${row.route} as ${cell} → ${want === ALLOW ? 'allowed' : want}`;
      const pass = want === ALLOW ? allowed(r.status)
        : want === PROXY_OK ? ![401, 403, 404].includes(r.status) : r.status === want;
      if (!pass) { notOk(what, `got ${r.status}: ${r.text.slice(0, 300)}`); continue; }
      if (r.status >= 400 && want !== PROXY_OK) {
        const apiShape = row.nginx || row.extra || (r.json && Object.keys(r.json).join() === 'error');
        const leak = (id && r.text.includes(id)) || !apiShape;
        if (leak) { notOk(`${what} (no leak in the refusal)`, r.text.slice(0, 300)); continue; }
      }
      if (row.lists && r.status === 200 && who && who !== 'admin') {
        const otherOwner = who === 'devOwner' ? 'devOther' : 'devOwner';
        const otherId = row.lists === 'user' ? actors[otherOwner].id : await resource(row.lists, otherOwner, false).catch(() => null);
        if (otherId && r.text.includes(otherId)) { notOk(`${what} (the list leaks another user's ${row.lists})`); continue; }
      }
      ok(what);
    } catch (e) {
      if (e instanceof Skip) ok(`${row.route} as ${cell}: ${e.message} # SKIP`);
      else notOk(`${row.route} as ${cell}: setup`, String(e));
    }
  }
}
// ---- CSRF and Origin on every unsafe route, generated from --routes: a cookie
// session without X-CSRF-Token, or with a foreign Origin, is 403 before any lookup.
const probeId = '00000000-0000-4000-8000-00000000c5rf'.replace('c5rf', '0c5f');
const s = await login(actors.admin.name, actors.admin.password);
for (const route of routes) {
  const [method, pattern] = route.split(' ');
  if (method === 'GET' || route === 'POST /api/v1/auth/login') continue;
  const path = pattern.replace(/\{[a-z_]+\}/g, probeId);
  const noCsrf = await send(URL + path, { method, headers: { Cookie: `berth_session=${s.cookie}`, 'Content-Type': 'application/json' }, body: '{}' });
  if (noCsrf.status === 403) ok(`${route}: a cookie session without X-CSRF-Token is refused (403)`);
  else notOk(`${route}: a cookie session without X-CSRF-Token is refused (403)`, `got ${noCsrf.status}`);
  const foreign = await send(URL + path, { method, headers: { Cookie: `berth_session=${s.cookie}`, 'X-CSRF-Token': s.csrf, Origin: 'https://evil.example', 'Content-Type': 'application/json' }, body: '{}' });
  if (foreign.status === 403) ok(`${route}: a foreign Origin is refused (403)`);
  else notOk(`${route}: a foreign Origin is refused (403)`, `got ${foreign.status}`);
}

ok(`authorisation matrix: ${cells} cells over ${routes.length} routes`);
console.error(`  matrix: ${cells} cells, ${routes.length} routes, ${table.length} rows`);
done();
