// berth's "not running" page (served by berth-api on the workspace origin
// when an instance's container does not answer). It asks how the instance
// is doing with a status probe -- the workspace's own address with
// X-Berth-Probe: status, authorised like every request to it, answering
// {status, error?} of this instance only -- and reloads when the status
// changes or, once running, when the workspace answers. It acts on nothing:
// Start is a link to berth's UI origin, where the owner confirms.
'use strict';

(function () {
  const main = document.getElementById('berth-unavailable');
  if (!main) return;
  const shown = main.dataset.status;
  let delay = 2000;

  async function answersNow() {
    // the workspace itself, as the browser would load it: berth's page
    // again says so (X-Berth-Page), anything else is the application
    const res = await fetch(location.href, { cache: 'no-store', credentials: 'same-origin' });
    const ours = res.headers.get('X-Berth-Page') === 'unavailable';
    try { await res.body?.cancel(); } catch { /* nothing to cancel */ }
    return !ours;
  }

  async function tick() {
    try {
      const res = await fetch(location.href, {
        headers: { 'X-Berth-Probe': 'status', Accept: 'application/json' },
        cache: 'no-store', credentials: 'same-origin', redirect: 'manual',
      });
      if (res.status === 200) {
        const st = await res.json();
        if (st.status !== shown || (st.status === 'running' && await answersNow())) {
          location.reload();
          return;
        }
        delay = 2000;
      } else {
        delay = Math.min(delay * 2, 30000); // signed out, or berth is down: ask less often
      }
    } catch {
      delay = Math.min(delay * 2, 30000);
    }
    setTimeout(tick, delay);
  }
  setTimeout(tick, delay);
})();
