// What the page has seen, kept in IndexedDB: windows by identity (a revision replaces the
// window it corrects, so a reload never plots a point twice), alert transitions, and the last
// event id of each stream (a reload resumes from there instead of starting empty).

const DB_NAME = 'pulsegate-console';
const VERSION = 1;
/** Windows older than this are dropped from the history. */
export const HISTORY_MS = 2 * 3600_000;
/** At most this many windows are kept (oldest first out). */
const MAX_WINDOWS = 20_000;
const MAX_ALERTS = 500;

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

export function windowKey(w) {
  const g = Object.keys(w.group ?? {}).sort().map((k) => `${k}=${w.group[k]}`).join(',');
  return `${w.kind}/${w.deviceId}/${w.sizeMs}/${w.slideMs}/${w.start}/${g}`;
}

/** Opens the history; resolves to null where IndexedDB is not available (the page works without). */
export async function openHistory() {
  if (typeof indexedDB === 'undefined') return null;
  let db;
  try {
    const open = indexedDB.open(DB_NAME, VERSION);
    open.onupgradeneeded = () => {
      const d = open.result;
      const windows = d.createObjectStore('windows', { keyPath: 'key' });
      windows.createIndex('start', 'start');
      const alerts = d.createObjectStore('alerts', { keyPath: 'key' });
      alerts.createIndex('at', 'at');
      d.createObjectStore('meta');
    };
    db = await request(open);
  } catch {
    return null;
  }
  let pendingWindows = new Map();
  let pendingAlerts = new Map();
  let pendingMeta = new Map();
  let timer = null;

  async function flush() {
    timer = null;
    if (pendingWindows.size === 0 && pendingAlerts.size === 0 && pendingMeta.size === 0) return;
    const w = pendingWindows, a = pendingAlerts, m = pendingMeta;
    pendingWindows = new Map(); pendingAlerts = new Map(); pendingMeta = new Map();
    const tx = db.transaction(['windows', 'alerts', 'meta'], 'readwrite');
    for (const value of w.values()) tx.objectStore('windows').put(value);
    for (const value of a.values()) tx.objectStore('alerts').put(value);
    // The ids go in the same transaction as the events they follow: never ahead of them.
    for (const [k, v] of m) tx.objectStore('meta').put(v, k);
    await done(tx).catch(() => {});
  }
  function schedule() {
    timer ??= setTimeout(() => void flush(), 300);
  }

  return {
    async load() {
      const cutoff = Date.now() - HISTORY_MS;
      const tx = db.transaction(['windows', 'alerts', 'meta'], 'readwrite');
      const windowsStore = tx.objectStore('windows');
      // Age out, then bound the count.
      await new Promise((resolve, reject) => {
        const r = windowsStore.index('start').openCursor(IDBKeyRange.upperBound(cutoff, true));
        r.onsuccess = () => {
          const cursor = r.result;
          if (cursor === null) return resolve();
          cursor.delete();
          cursor.continue();
        };
        r.onerror = () => reject(r.error);
      });
      let windows = await request(windowsStore.getAll());
      if (windows.length > MAX_WINDOWS) {
        windows.sort((x, y) => x.start - y.start);
        for (const old of windows.slice(0, windows.length - MAX_WINDOWS)) windowsStore.delete(old.key);
        windows = windows.slice(windows.length - MAX_WINDOWS);
      }
      let alerts = await request(tx.objectStore('alerts').getAll());
      alerts.sort((x, y) => x.at - y.at);
      if (alerts.length > MAX_ALERTS) {
        for (const old of alerts.slice(0, alerts.length - MAX_ALERTS)) tx.objectStore('alerts').delete(old.key);
        alerts = alerts.slice(alerts.length - MAX_ALERTS);
      }
      const meta = {};
      const keys = await request(tx.objectStore('meta').getAllKeys());
      const values = await request(tx.objectStore('meta').getAll());
      keys.forEach((k, i) => (meta[k] = values[i]));
      await done(tx);
      return { windows, alerts, meta };
    },
    putWindow(w) {
      pendingWindows.set(w.key, w);
      schedule();
    },
    putAlert(a) {
      pendingAlerts.set(a.key, a);
      schedule();
    },
    setMeta(key, value) {
      pendingMeta.set(key, value);
      schedule();
    },
    flush,
  };
}
