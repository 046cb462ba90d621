// The phone's side of the push proxy (seed 001): live alerts over SSE while visible; when the page
// is hidden, the stream is handed to the proxy (which pushes each alert to the service worker);
// when it is visible again, the stream is taken back and resumed with no gap and no duplicate.
const params = new URLSearchParams(location.search);
const STREAM = params.get('stream') ?? 'alerts';
const FILTER = {};
for (const k of ['kind', 'device', 'rule', 'minSeverity', 'where']) if (params.has(k)) FILTER[k] = params.get(k);
const HANDOFF_KEY = `pulsegate.handoff.${STREAM}`;

const list = document.getElementById('alerts');
const statusLine = document.getElementById('status');
const seen = new Set(); // event ids shown (bounded below)
let lastId = null; // the page's own last event id (number)
let source = null;
let chain = Promise.resolve(); // visibility changes are handled one after the other

function setStatus(text) {
  statusLine.textContent = text;
}

function show(eventId, alert) {
  if (!Number.isSafeInteger(eventId) || seen.has(eventId)) return;
  seen.add(eventId);
  if (seen.size > 1000) seen.delete(seen.values().next().value);
  if (lastId === null || eventId > lastId) lastId = eventId;
  const li = document.createElement('li');
  li.dataset.eventId = String(eventId);
  li.className = `sev-${alert.severity ?? 'info'}${alert.state === 'RESOLVED' ? ' resolved' : ''}`;
  li.textContent = `${alert.state ?? 'ALERT'} ${alert.summary ?? alert.id}`;
  const small = document.createElement('small');
  small.textContent = `#${eventId} ${alert.rule ?? ''} ${alert.deviceId ?? ''}`;
  li.append(small);
  list.prepend(li);
  while (list.children.length > 200) list.lastElementChild.remove();
}

function connect(fromId) {
  const q = new URLSearchParams(FILTER);
  if (fromId !== null) q.set('lastEventId', String(fromId));
  const qs = q.toString();
  source = new EventSource(`/v1/streams/${encodeURIComponent(STREAM)}${qs === '' ? '' : `?${qs}`}`);
  source.addEventListener('open', () => setStatus(`live${lastId === null ? '' : ` from #${lastId}`}`));
  source.addEventListener('alert', (e) => {
    try {
      show(Number(e.lastEventId), JSON.parse(e.data));
    } catch (err) {
      console.warn('unreadable alert event', err);
    }
  });
  source.addEventListener('earliest', () => setStatus('some older alerts are no longer kept by the gateway'));
  source.addEventListener('error', () => setStatus('reconnecting…'));
}

async function subscription() {
  const reg = await navigator.serviceWorker.ready;
  const existing = await reg.pushManager.getSubscription();
  if (existing) return existing;
  const { publicKey } = await (await fetch('/v1/push/vapid-public-key')).json();
  return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: publicKey });
}

async function handOff() {
  source?.close();
  source = null;
  const sub = await subscription();
  // keepalive: the request outlives the page being frozen or closed right after.
  const res = await fetch('/v1/handoffs', {
    method: 'POST',
    keepalive: true,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ subscription: sub.toJSON(), lastEventId: lastId === null ? null : String(lastId), stream: STREAM, filter: FILTER }),
  });
  if (res.status !== 201) throw new Error(`hand-off refused: ${res.status} ${await res.text()}`);
  const { id } = await res.json();
  localStorage.setItem(HANDOFF_KEY, id);
  document.body.dataset.handoff = id;
  setStatus(`handed over after #${lastId ?? '-'}`);
}

async function takeBack() {
  const id = localStorage.getItem(HANDOFF_KEY);
  let proxyId = null;
  if (id !== null) {
    const res = await fetch(`/v1/handoffs/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (res.ok) {
      const body = await res.json();
      if (body.lastDeliveredEventId !== null) proxyId = Number(body.lastDeliveredEventId);
    }
    localStorage.removeItem(HANDOFF_KEY);
    delete document.body.dataset.handoff;
  }
  // Resume after the later of what this page saw and what the proxy pushed.
  const from = proxyId === null ? lastId : lastId === null ? proxyId : Math.max(lastId, proxyId);
  if (source === null) connect(from);
}

function onVisibility() {
  const hidden = document.visibilityState === 'hidden';
  chain = chain
    .then(() => (hidden ? handOff() : takeBack()))
    .catch((err) => {
      setStatus(`${hidden ? 'hand-off' : 'take-back'} failed: ${err.message}`);
      if (!hidden && source === null) connect(lastId);
    });
}

navigator.serviceWorker?.addEventListener('message', (e) => {
  const m = e.data;
  if (m && m.type === 'pushed' && m.stream === STREAM) show(Number(m.eventId), m.alert);
});

document.getElementById('enable').addEventListener('click', async () => {
  try {
    if ((await Notification.requestPermission()) !== 'granted') return setStatus('notifications are not allowed');
    await subscription();
    setStatus('push enabled: alerts keep coming while this page sleeps');
  } catch (err) {
    setStatus(`push unavailable: ${err.message}`);
  }
});

// Without service workers (plain http other than localhost, old browsers) the page stays a live view.
const canPush = 'serviceWorker' in navigator && 'PushManager' in window;
if (canPush) {
  try {
    await navigator.serviceWorker.register('sw.js', { scope: './' });
    document.addEventListener('visibilitychange', onVisibility);
  } catch (err) {
    setStatus(`live only: ${err.message}`);
  }
} else document.getElementById('enable').hidden = true;
// Opened (or reloaded) with a hand-off still held: take it back first.
chain = chain.then(takeBack).catch((err) => {
  setStatus(`take-back failed: ${err.message}`);
  if (source === null) connect(lastId);
});
