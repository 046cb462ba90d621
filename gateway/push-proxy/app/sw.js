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

/**
 * True when `key` was shown already, by this worker (in memory) or before it was restarted (a
 * cache entry). Only reads storage: the durable mark is written after the notification is up
 * (markSeen), so a slow disk delays no alert by a write. When storage cannot be read, the alert
 * counts as new: shown twice beats not shown.
 */
async function seenBefore(key) {
  if (recent.has(key)) return true;
  recent.add(key);
  if (recent.size > MAX_SEEN) recent.delete(recent.values().next().value);
  try {
    const cache = await caches.open(SEEN_CACHE);
    return (await cache.match(seenRequest(key))) !== undefined;
  } catch {
    return false;
  }
}

let marksSinceTrim = 0;
/** Remembers `key` across worker restarts; keeps the newest MAX_SEEN, trimming every 50 marks. */
async function markSeen(key) {
  try {
    const cache = await caches.open(SEEN_CACHE);
    await cache.put(seenRequest(key), new Response('1'));
    if (++marksSinceTrim < 50) return;
    marksSinceTrim = 0;
    const keys = await cache.keys();
    for (const old of keys.slice(0, Math.max(0, keys.length - MAX_SEEN))) await cache.delete(old);
  } catch {
    // Not durable this time: a repeat of this push after a worker restart would be shown again.
  }
}

const seenRequest = (key) => new Request(`./__seen/${encodeURIComponent(key)}`);

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
  const key = `${stream}:${p.eventId}`;
  if (await seenBefore(key)) return;
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
  await markSeen(key);
}
