// berth web UI. For now: the service health, read from GET /api/v1/health.
'use strict';
(async function showHealth() {
  const pill = document.getElementById('health');
  const box = document.getElementById('checks');
  try {
    const res = await fetch('/api/v1/health', { headers: { Accept: 'application/json' } });
    const body = await res.json();
    pill.textContent = res.ok ? 'all systems ok' : 'degraded';
    pill.className = 'pill ' + (res.ok ? 'ok' : 'bad');
    const table = document.createElement('table');
    for (const [name, state] of Object.entries(body.checks || {})) {
      const tr = table.insertRow();
      tr.insertCell().textContent = name;
      tr.insertCell().textContent = state;
    }
    box.replaceChildren(table);
  } catch (e) {
    pill.textContent = 'unreachable';
    pill.className = 'pill bad';
  }
})();
