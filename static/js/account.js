// /account: your SSH keys, API tokens and password.
import { all, api, canAct } from './api.js';
import { add, bindForm, button, copy, field, fill, h, input, table, when } from './dom.js';

export async function accountView(ctx) {
  const { root } = ctx;
  const keys = h('div', { id: 'ssh-keys' });
  const tokens = h('div', { id: 'tokens' });
  const newToken = h('div', { id: 'new-token', hidden: true, class: 'notice', role: 'status' });

  // A list of yours read whole into box: a table of rows by name, or a line saying there are none.
  async function showList(box, path, caption, headers, cells, none) {
    const list = await all(path);
    if (!ctx.live()) return;
    fill(box, list.length
      ? table(caption, headers, list.map((x) => ({ attrs: { dataset: { name: x.name } }, cells: cells(x) })))
      : h('p', { class: 'muted' }, none));
  }
  const loadKeys = () => showList(keys, '/api/v1/ssh-keys', 'SSH keys', ['Name', 'Type', 'Fingerprint', 'Added', ''], (k) => [
    k.name, k.type, h('code', {}, k.fingerprint), when(k.created_at),
    canAct() ? button('Remove', async () => { await api('DELETE', `/api/v1/ssh-keys/${k.id}`); await loadKeys(); }, { cls: 'danger', label: `Remove key ${k.name}` }) : '',
  ], 'No SSH keys yet.');
  const loadTokens = () => showList(tokens, '/api/v1/tokens', 'API tokens', ['Name', 'Created', 'Last used', 'Expires', ''], (t) => [
    t.name, when(t.created_at), when(t.last_used_at), t.expires_at ? when(t.expires_at) : 'never',
    button('Revoke', async () => { await api('DELETE', `/api/v1/tokens/${t.id}`); await loadTokens(); }, { cls: 'danger', label: `Revoke token ${t.name}` }),
  ], 'No API tokens.');

  const keyForm = bindForm(h('form', { id: 'key-form' },
    field('Name', input('name', { required: true, maxlength: 64, placeholder: 'e.g. laptop', autocomplete: 'off' })),
    field('Public key', h('textarea', { name: 'public_key', required: true, rows: 3, placeholder: 'ssh-ed25519 AAAA… you@host', spellcheck: 'false' }),
      'the one line of your .pub file'),
    h('button', { type: 'submit' }, 'Add key')), async (f) => {
    const k = await api('POST', '/api/v1/ssh-keys', { name: f.elements.namedItem('name').value, public_key: f.elements.namedItem('public_key').value.trim() });
    f.reset();
    await loadKeys();
    return k;
  });

  const tokenForm = bindForm(h('form', { id: 'token-form', class: 'row' },
    field('Name', input('name', { required: true, maxlength: 64, placeholder: 'e.g. laptop', autocomplete: 'off' })),
    field('Expires after (days)', input('expires_in_days', { type: 'number', min: 1, max: 3650, placeholder: 'never' })),
    h('button', { type: 'submit' }, 'Create token')), async (f) => {
    const body = { name: f.elements.namedItem('name').value };
    const days = f.elements.namedItem('expires_in_days').value;
    if (days) body.expires_in_days = Number(days);
    const t = await api('POST', '/api/v1/tokens', body);
    fill(newToken, h('p', {}, `Token ${t.name} — shown this once, copy it now:`),
      h('p', {}, h('code', { id: 'new-token-value' }, t.token), ' ', button('Copy', (b) => copy(t.token, b), { cls: 'secondary', label: 'Copy the new token' })));
    newToken.hidden = false;
    f.reset();
    await loadTokens();
  });

  const pwDone = h('p', { id: 'password-done', role: 'status', class: 'ok' });
  const pwForm = bindForm(h('form', { id: 'password-form' },
    field('Current password', input('current_password', { type: 'password', required: true, autocomplete: 'current-password' })),
    field('New password', input('new_password', { type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }), 'at least 8 characters'),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'revoke_tokens' }), ' also revoke all my API tokens'),
    h('button', { type: 'submit' }, 'Change password'), pwDone), async (f) => {
    pwDone.textContent = '';
    const r = await api('POST', '/api/v1/auth/password', {
      current_password: f.elements.namedItem('current_password').value,
      new_password: f.elements.namedItem('new_password').value,
      revoke_tokens: f.elements.namedItem('revoke_tokens').checked,
    });
    pwDone.textContent = r.tokens_revoked > 0 ? `Password changed; ${r.tokens_revoked} API token(s) revoked.` : 'Password changed.';
    f.reset();
    await loadTokens();
  });

  add(root, h('h1', {}, 'Account'),
    h('section', { class: 'panel', 'aria-labelledby': 'keys-h' }, h('h2', { id: 'keys-h' }, 'SSH keys'),
      h('p', { class: 'muted' }, 'Your keys are installed in the SSH workspaces you run.'), keys, canAct() ? keyForm : null),
    h('section', { class: 'panel', 'aria-labelledby': 'tokens-h' }, h('h2', { id: 'tokens-h' }, 'API tokens'),
      h('p', { class: 'muted' }, 'For berthctl and scripts: send it as Authorization: Bearer <token>.'), tokenForm, newToken, tokens),
    h('section', { class: 'panel', 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h' }, 'Change password'), pwForm));
  await Promise.all([loadKeys(), loadTokens()]);
}
