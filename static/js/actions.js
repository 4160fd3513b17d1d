// What can be done to one instance, as buttons: the same on its card and on
// its detail page. Viewers get none of the ones that act.
import { api, canAct } from './api.js';
import { ask, button, copy, h } from './dom.js';

export async function deleteInstance(inst) {
  const keep = h('input', { type: 'checkbox', name: 'delete_volumes', id: 'dlg-delvol' });
  const vols = (inst.volumes || []).map((v) => v.name).join(', ');
  const answer = await ask(`Delete ${inst.name}?`, h('div', {},
    h('p', {}, vols ? `Its volumes (${vols}) are kept unless you tick the box: a kept volume can be re-attached to a new workspace.` : 'It has no volumes.'),
    vols ? h('label', { class: 'check', for: 'dlg-delvol' }, keep, ' also delete its volumes and their data') : null),
  [{ value: 'delete', label: 'Delete', cls: 'danger' }]);
  if (answer !== 'delete') return false;
  await api('DELETE', `/api/v1/instances/${inst.id}${keep.checked ? '?delete_volumes=true' : ''}`);
  return true;
}

// The buttons for inst; after each action, refresh() shows the new state.
export function instanceActions(inst, refresh) {
  const out = [];
  const post = (what) => async () => { await api('POST', `/api/v1/instances/${inst.id}/${what}`); await refresh(); };
  if (inst.urls?.open && inst.status === 'running') {
    out.push(h('a', { class: 'button', href: inst.urls.open, target: '_blank', rel: 'noopener', 'aria-label': `Open ${inst.name} in a new tab` }, 'Open'));
  }
  if (inst.ssh?.command) {
    out.push(button('Copy SSH', (b) => copy(inst.ssh.command, b), { cls: 'secondary', label: `Copy the SSH command of ${inst.name}` }));
  }
  if (!canAct()) return out;
  const s = inst.status;
  if (s === 'stopped' || s === 'error') out.push(button('Start', post('start'), { label: `Start ${inst.name}` }));
  if (s === 'running') {
    out.push(button('Stop', post('stop'), { cls: 'secondary', label: `Stop ${inst.name}` }));
    out.push(button('Restart', post('restart'), { cls: 'secondary', label: `Restart ${inst.name}` }));
    if (inst.idle_timeout_s > 0) {
      out.push(button('Snooze', async (b) => {
        await api('POST', `/api/v1/instances/${inst.id}/snooze`);
        b.textContent = 'Snoozed';
        await refresh();
      }, { cls: 'secondary', label: `Snooze the idle stop of ${inst.name}`, title: `not stopped for idleness for another ${Math.round(inst.idle_timeout_s / 60)} min` }));
    }
  }
  if (s !== 'deleting' && s !== 'deleted') {
    out.push(button('Delete', async () => { if (await deleteInstance(inst)) await refresh(true); }, { cls: 'danger', label: `Delete ${inst.name}` }));
  }
  return out;
}
