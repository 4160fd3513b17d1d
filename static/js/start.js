// /?start=<instance id>: where a stopped workspace's page sends its owner
// (the workspace origin cannot act on the API). Nothing starts without the
// click here, on berth's own origin; then the browser goes back to the
// workspace, whose page waits for it to answer.
import { api, canAct } from './api.js';
import { $ } from './dom.js';

export const startId = () => {
  const id = new URLSearchParams(location.search).get('start');
  return id && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? id : null;
};

export function leaveStart() {
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

export async function offerStart(id, flash) {
  const inst = await api('GET', `/api/v1/instances/${id}`);
  const open = startReturn(inst);
  $('#start-text').textContent = inst.status === 'running'
    ? `${inst.name} is running already.`
    : `Start ${inst.name} (${inst.status}${inst.error ? `: ${inst.error}` : ''}) and go back to it?`;
  const go = $('#start-confirm');
  go.textContent = inst.status === 'running' ? 'Open it' : 'Start and open';
  go.disabled = !open || !canAct();
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
