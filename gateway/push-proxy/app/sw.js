// Shows each alert pushed by the push proxy as a notification, once per event id (a push may be
// repeated after a proxy restart, with the same id), and hands it to open pages.
const SEEN_CACHE = 'pulsegate-seen-v1';
const MAX_SEEN = 500;
const recent = new Set();

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));
self.addEventListener('push', (e) => e.waitUntil(onPush(e)));
self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  e.waitUntil(self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((cs) => (cs.length > 0 ? cs[0].focus() : self.clients.openWindow('./'))));
});

/** True when `key` was shown already; otherwise remembers it (bounded, durable across restarts of the worker). */
async function seenBefore(key) {
  if (recent.has(key)) return true;
  recent.add(key);
  if (recent.size > MAX_SEEN) recent.delete(recent.values().next().value);
  const cache = await caches.open(SEEN_CACHE);
  const req = new Request(`./__seen/${encodeURIComponent(key)}`);
  if (await cache.match(req)) return true;
  await cache.put(req, new Response('1'));
  const keys = await cache.keys();
  for (const old of keys.slice(0, Math.max(0, keys.length - MAX_SEEN))) await cache.delete(old);
  return false;
}

async function onPush(e) {
  let p = null;
  try {
    p = e.data ? e.data.json() : null;
  } catch {
    p = null; // not ours: shown plainly below
  }
  if (p === null || typeof p.eventId !== 'string') {
    await self.registration.showNotification('pulsegate', { body: 'new alert' });
    return;
  }
  const stream = p.stream ?? 'alerts';
  if (await seenBefore(`${stream}:${p.eventId}`)) return;
  const alert = p.alert ?? { id: p.id, summary: p.summary };
  const title = alert.state === 'RESOLVED' ? `Resolved: ${alert.rule ?? 'alert'}` : `${(alert.severity ?? 'alert').toUpperCase()}: ${alert.rule ?? 'alert'}`;
  await self.registration.showNotification(title, {
    body: alert.summary ?? '',
    // One notification per alert episode: its RESOLVED replaces its FIRING.
    tag: alert.id ?? `event-${p.eventId}`,
    renotify: true,
    data: { eventId: p.eventId, stream },
    icon: 'icon.svg',
  });
  const cs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const c of cs) c.postMessage({ type: 'pushed', eventId: p.eventId, stream, alert });
}
