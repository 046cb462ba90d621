// The pulsegate console: devices, live window charts, alerts, the gateway's health and a query
// box, from the gateway's own HTTP API. Parts whose routes this gateway does not have (see
// /features.json) show as "not available" instead of failing.
import { Charts, chartId } from './charts.js';
import { el, formatAge, formatBytes, formatCount, formatDuration, formatNumber, formatTime, formatValues, timeZone } from './format.js';
import { openHistory, windowKey } from './history.js';
import { health, parseMetrics } from './metrics.js';
import { openStream } from './sse.js';

const POLL_MS = 2000;
const WINDOW_POLL_MS = 5000;
const $ = (id) => document.getElementById(id);

const state = {
  features: null,
  history: null,
  charts: null,
  devices: [],
  rates: new Map(),
  previousDevices: null,
  reachable: null,
  windowsStream: 'connecting',
  firing: new Map(),
  alertLog: new Map(),
  lagTimer: null,
};

async function getJson(url, options) {
  const res = await fetch(url, { cache: 'no-store', ...options });
  const body = await res.json().catch(() => null);
  return { ok: res.ok, status: res.status, body };
}

// ---- status: the gateway reachable or not, the windows stream live, reconnecting or absent ----

function renderStatus() {
  const box = $('status');
  let s, text;
  if (state.reachable === false) {
    s = 'reconnecting';
    text = 'Gateway unreachable — reconnecting…';
  } else if (state.windowsStream === 'live') {
    s = 'live';
    text = 'Live';
  } else if (state.windowsStream === 'reconnecting') {
    s = 'reconnecting';
    text = 'Reconnecting…';
  } else if (state.windowsStream === 'unavailable') {
    s = 'polling';
    text = 'Live streams not available — polling';
  } else {
    s = 'connecting';
    text = 'Connecting…';
  }
  if (box.dataset.state !== s) box.dataset.state = s;
  if ($('status-text').textContent !== text) $('status-text').textContent = text;
}

function setReachable(ok) {
  if (state.reachable === ok) return;
  state.reachable = ok;
  renderStatus();
}

function showLag(lag) {
  const banner = $('lag');
  clearTimeout(state.lagTimer);
  if (!lag || !(lag.behindOffsets > 0)) {
    banner.hidden = true;
    return;
  }
  banner.textContent = `This page is behind the gateway by ${formatCount(lag.behindOffsets)} records${Number.isFinite(lag.behindMs) ? ` (${formatDuration(lag.behindMs)})` : ''}; catching up.`;
  banner.hidden = false;
  // Lag events come while behind; without one for a while the page caught up.
  state.lagTimer = setTimeout(() => (banner.hidden = true), 10_000);
}

function notice(text) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = text === '';
}

function withChild(parent, child) {
  parent.append(child);
  return parent;
}
function emptyRow(text, cols) {
  return withChild(el('tr', null, { className: 'empty' }), el('td', text, { colspan: cols }));
}

// ---- devices ----

function alertsOf(deviceId) {
  let n = 0;
  for (const a of state.firing.values()) if (a.deviceId === deviceId) n++;
  return n;
}

function renderDevices(now) {
  const tbody = $('devices-table').tBodies[0];
  $('devices-count').textContent = state.devices.length > 0 ? `(${state.devices.length})` : '';
  if (state.devices.length === 0) {
    if (!tbody.querySelector('tr.empty') && !tbody.dataset.unavailable) tbody.replaceChildren(emptyRow('No device seen yet.', 9));
    return;
  }
  const rows = [];
  for (const d of state.devices) {
    const tr = el('tr', null, { 'data-device': d.deviceId, 'data-kind': d.kind });
    const name = el('td');
    name.append(el('a', d.deviceId, { href: `#${chartId(d.kind, d.deviceId)}` }));
    const silentMs = now - d.lastSeenAt;
    const rate = state.rates.get(`${d.kind}/${d.deviceId}`);
    const firing = alertsOf(d.deviceId);
    tr.append(
      name,
      el('td', d.kind),
      el('td', formatValues(d.kind, d.lastValues), { title: d.lastTs !== null ? `event time ${formatTime(d.lastTs)}` : undefined }),
      el('td', d.lastTs !== null ? formatAge(now - d.lastTs) : '–', { className: 'num' }),
      el('td', rate === undefined ? '–' : formatNumber(rate, '/s'), { className: 'num', 'data-col': 'rate' }),
      el('td', formatCount(d.netLoss), { className: 'num', 'data-col': 'netLoss', title: `${formatCount(d.gaps)} gaps, ${formatCount(d.gapFills)} filled later` }),
      el('td', formatCount(d.duplicates), { className: 'num', 'data-col': 'duplicates' }),
    );
    const silence = el('td', null, { 'data-col': 'silence' });
    if (silentMs > 10_000) silence.append(el('span', `silent ${formatDuration(silentMs)}`, { className: 'badge warn' }));
    else silence.append(el('span', 'sending', { className: 'badge ok' }));
    const alerts = el('td', null, { 'data-col': 'alerts' });
    if (firing > 0) alerts.append(el('span', `${firing} firing`, { className: 'badge bad' }));
    else alerts.textContent = '–';
    tr.append(silence, alerts);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

async function pollDevices() {
  if (!state.features.devices) {
    const tbody = $('devices-table').tBodies[0];
    if (!tbody.dataset.unavailable) {
      tbody.dataset.unavailable = 'true';
      tbody.replaceChildren(emptyRow('The device table is not available on this gateway.', 9));
    }
    return;
  }
  try {
    const { ok, body } = await getJson('/v1/devices');
    if (!ok || body === null) throw new Error('devices');
    setReachable(true);
    const at = body.now ?? Date.now();
    if (state.previousDevices !== null) {
      const dt = (at - state.previousDevices.at) / 1000;
      for (const d of body.devices) {
        const before = state.previousDevices.byId.get(`${d.kind}/${d.deviceId}`);
        if (before !== undefined && dt > 0) state.rates.set(`${d.kind}/${d.deviceId}`, Math.max(0, (d.readings - before) / dt));
      }
    }
    state.previousDevices = { at, byId: new Map(body.devices.map((d) => [`${d.kind}/${d.deviceId}`, d.readings])) };
    state.devices = body.devices;
    renderDevices(at);
  } catch {
    setReachable(false);
  }
}

// ---- health ----

let previousMetrics = null;
async function pollMetrics() {
  try {
    const res = await fetch('/metrics', { cache: 'no-store' });
    if (!res.ok) throw new Error('metrics');
    const samples = parseMetrics(await res.text());
    const at = performance.now();
    const h = health(previousMetrics?.samples ?? null, samples, previousMetrics ? at - previousMetrics.at : 0);
    previousMetrics = { samples, at };
    setReachable(true);
    $('h-rate').textContent = h.readingsPerSecond === null ? '–' : formatNumber(h.readingsPerSecond, '/s');
    $('h-windows').textContent = h.windowsPerSecond === null ? '–' : formatNumber(h.windowsPerSecond, '/s');
    $('h-rejected').textContent = `${formatCount(h.rejectedTotal)}${h.rejectedPerSecond ? ` (${formatNumber(h.rejectedPerSecond, '/s')})` : ''}`;
    $('h-backlog').textContent = `${formatCount(h.consumerLag + h.outboxPending)} records`;
    $('h-backlog').title = `log consumers behind: ${h.consumerLag}; outbox pending: ${h.outboxPending}; log size ${formatBytes(h.logBytes)}`;
    $('h-store').textContent = formatDuration(h.storeLagSeconds * 1000);
    $('h-clients').textContent = formatCount(h.clients);
    const reasons = Object.entries(h.rejectedByReason).filter(([, n]) => n > 0);
    $('h-reasons').textContent = reasons.length === 0 ? 'No rejected readings.' : `Rejected by reason: ${reasons.map(([r, n]) => `${r} ${formatCount(n)}`).join(', ')}`;
  } catch {
    setReachable(false);
  }
}

// ---- windows: the stream with resume, or polling when this gateway has no stream ----

function takeWindow(w, fromHistory = false) {
  const record = { ...w, key: windowKey(w) };
  if (state.charts.add(record) && !fromHistory) state.history?.putWindow(record);
}

function startWindows(lastEventId) {
  if (state.features.streams.windows) {
    $('charts-source').textContent = '(live)';
    openStream({
      url: '/v1/streams/windows',
      lastEventId,
      onState: (s, info) => {
        state.windowsStream = s;
        renderStatus();
        // A lag reported by a connection that is gone says nothing about the next one.
        if (s !== 'live') showLag(null);
        if (s === 'unavailable') {
          $('charts-source').textContent = `(live stream not available: HTTP ${info.status}; polling)`;
          pollWindowsForever();
        }
      },
      onEvent: (ev) => {
        if (ev.event === 'window') {
          const w = safeParse(ev.data);
          if (w !== null && typeof w.kind === 'string') takeWindow(w);
          if (ev.id !== undefined) state.history?.setMeta('windows.lastEventId', ev.id);
        } else if (ev.event === 'lag') showLag(safeParse(ev.data));
        else if (ev.event === 'earliest') notice('The log no longer holds every window since this page last saw one: the charts resume from the oldest one it keeps.');
      },
    });
  } else {
    state.windowsStream = 'unavailable';
    renderStatus();
    $('charts-source').textContent = '(polling; live stream not available on this gateway)';
    pollWindowsForever();
  }
}

const windowCursor = new Map();
let polling = false;
function pollWindowsForever() {
  if (polling) return;
  polling = true;
  const tick = async () => {
    const kinds = [...new Set(state.devices.map((d) => d.kind))];
    for (const kind of kinds) {
      const from = windowCursor.get(kind) ?? Date.now() - 30 * 60_000;
      try {
        const { ok, body } = await getJson(`/v1/windows?kind=${encodeURIComponent(kind)}&from=${Math.floor(from)}&limit=5000`);
        if (!ok || body === null) continue;
        let newest = from;
        for (const w of body.windows) {
          takeWindow(w);
          newest = Math.max(newest, w.end);
        }
        // Re-read the last two minutes: corrections by late data replace what was drawn.
        windowCursor.set(kind, Math.max(from, newest - 120_000));
      } catch {
        setReachable(false);
      }
    }
    setTimeout(tick, WINDOW_POLL_MS);
  };
  void tick();
}

// ---- alerts ----

function alertKey(a) {
  return `${a.id}/${a.state}`;
}
function takeAlert(a, fromHistory = false) {
  if (a === null || typeof a.id !== 'string') return;
  if (a.state === 'FIRING') state.firing.set(a.id, a);
  else state.firing.delete(a.id);
  const at = a.state === 'FIRING' ? a.firedAt : (a.resolvedAt ?? a.firedAt);
  const entry = { ...a, key: alertKey(a), at };
  state.alertLog.set(entry.key, entry);
  if (!fromHistory) state.history?.putAlert(entry);
}

function renderAlerts() {
  const firing = [...state.firing.values()].sort((a, b) => b.firedAt - a.firedAt);
  const fb = $('firing-table').tBodies[0];
  if (firing.length === 0) fb.replaceChildren(emptyRow('Nothing firing.', 6));
  else {
    fb.replaceChildren(
      ...firing.map((a) => {
        const tr = el('tr', null, { 'data-alert': a.id, 'data-rule': a.rule, 'data-device': a.deviceId });
        tr.append(
          el('td', a.rule),
          el('td', a.deviceId),
          withChild(el('td'), el('span', a.severity, { className: `badge ${a.severity === 'critical' ? 'bad' : 'warn'}` })),
          el('td', formatNumber(a.value), { className: 'num' }),
          el('td', formatNumber(a.threshold), { className: 'num' }),
          el('td', formatTime(a.firedAt)),
        );
        return tr;
      }),
    );
  }
  const recent = [...state.alertLog.values()].sort((a, b) => b.at - a.at).slice(0, 50);
  const hb = $('history-table').tBodies[0];
  if (recent.length === 0) hb.replaceChildren(emptyRow('No alert yet.', 6));
  else {
    hb.replaceChildren(
      ...recent.map((a) => {
        const tr = el('tr', null, { 'data-alert': a.id, 'data-state': a.state });
        const stateCell = el('td');
        stateCell.append(el('span', a.state === 'FIRING' ? 'firing' : 'resolved', { className: `badge ${a.state === 'FIRING' ? 'bad' : 'ok'}` }));
        tr.append(el('td', formatTime(a.at)), stateCell, el('td', a.rule), el('td', a.deviceId), el('td', formatNumber(a.value), { className: 'num' }), el('td', a.summary ?? ''));
        return tr;
      }),
    );
  }
  renderDevices(Date.now());
}

function arrayIn(body) {
  if (Array.isArray(body)) return body;
  if (body && typeof body === 'object') for (const v of Object.values(body)) if (Array.isArray(v)) return v;
  return [];
}

async function startAlerts(lastEventId) {
  const f = state.features;
  if (!f.alerts && !f.streams.alerts) {
    $('alerts-state').textContent = 'Alerts are not available on this gateway.';
    return;
  }
  if (f.alertsHistory) {
    const { ok, body } = await getJson(`/v1/alerts/history?from=${Date.now() - 6 * 3600_000}&to=${Date.now() + 60_000}`).catch(() => ({ ok: false }));
    if (ok) for (const a of arrayIn(body).sort((x, y) => (x.offset ?? 0) - (y.offset ?? 0))) takeAlert(a);
  }
  if (f.alerts) {
    const { ok, body } = await getJson('/v1/alerts').catch(() => ({ ok: false }));
    if (ok) {
      const now = arrayIn(body);
      // What /v1/alerts says fires now is the truth; anything else this page thought firing resolved meanwhile.
      state.firing.clear();
      for (const a of now) takeAlert(a);
    }
  }
  renderAlerts();
  if (f.streams.alerts) {
    openStream({
      url: '/v1/streams/alerts',
      lastEventId,
      onState: (s) => ($('alerts-state').textContent = s === 'live' ? '' : s === 'unavailable' ? 'The live alert stream is not available.' : s === 'reconnecting' ? 'Reconnecting…' : ''),
      onEvent: (ev) => {
        if (ev.event === 'alert') {
          takeAlert(safeParse(ev.data));
          if (ev.id !== undefined) state.history?.setMeta('alerts.lastEventId', ev.id);
          renderAlerts();
        } else if (ev.event === 'lag') showLag(safeParse(ev.data));
      },
    });
  } else $('alerts-state').textContent = 'The live alert stream is not available; refreshed every few seconds.';
}

// ---- query box ----

function isTimeColumn(name, value) {
  return typeof value === 'number' && value > 1e12 && value < 1e14 && /(^ts$|time|_at$|start|end)/i.test(name);
}

function renderResult(body) {
  const table = $('query-result');
  const head = el('thead');
  const hr = el('tr');
  for (const c of body.columns) hr.append(el('th', c, { scope: 'col' }));
  head.append(hr);
  const tb = el('tbody');
  for (const row of body.rows) {
    const tr = el('tr');
    row.forEach((v, i) => {
      const name = body.columns[i] ?? '';
      if (v === null) tr.append(el('td', 'NULL', { className: 'muted' }));
      else if (isTimeColumn(name, v)) tr.append(el('td', formatTime(v), { title: String(v), 'data-raw': v }));
      else tr.append(el('td', typeof v === 'object' ? JSON.stringify(v) : v, { className: typeof v === 'number' ? 'num' : undefined }));
    });
    tb.append(tr);
  }
  table.replaceChildren(head, tb);
  $('query-info').textContent = `${formatCount(body.count)} row${body.count === 1 ? '' : 's'}${body.truncated ? ' (truncated at the row limit)' : ''} in ${formatDuration(body.elapsedMs)}`;
}

function showQueryError(text, body) {
  const pre = $('query-error');
  $('query-result').replaceChildren();
  let message = body?.message ?? `HTTP error`;
  const p = body?.position;
  if (p && Number.isFinite(p.line)) {
    const line = text.split('\n')[p.line - 1] ?? '';
    message += `\n\n${line}\n${' '.repeat(Math.max(0, (p.column ?? 1) - 1))}^`;
    const ta = $('sql');
    const offset = Number.isFinite(p.offset) ? p.offset : text.split('\n').slice(0, p.line - 1).join('\n').length + (p.line > 1 ? 1 : 0) + (p.column - 1);
    ta.setSelectionRange(offset, Math.min(text.length, offset + 1));
  }
  pre.textContent = message;
  pre.hidden = false;
}

function startQuery(savedQuery) {
  const f = state.features;
  const form = $('query-form');
  if (f.sql === null) {
    $('query-language').textContent = '(not available on this gateway)';
    $('run').disabled = true;
    return;
  }
  $('query-language-name').textContent = f.sql === 'influxql' ? 'InfluxQL (SELECT, SHOW)' : 'SQL (SELECT over readings, windows, alerts)';
  if (f.sql === 'influxql' && savedQuery === undefined) $('sql').value = 'SHOW MEASUREMENTS';
  if (typeof savedQuery === 'string' && savedQuery.trim() !== '') $('sql').value = savedQuery;
  const run = async () => {
    const text = $('sql').value;
    state.history?.setMeta('query.text', text);
    $('run').disabled = true;
    $('query-error').hidden = true;
    $('query-info').textContent = 'Running…';
    try {
      const res = await fetch('/v1/query', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: text, limit: 1000 }) });
      const body = await res.json().catch(() => null);
      if (res.ok && body !== null) renderResult(body);
      else {
        $('query-info').textContent = '';
        showQueryError(text, body);
      }
    } catch (err) {
      $('query-info').textContent = '';
      showQueryError(text, { message: `The gateway did not answer: ${err.message}` });
    } finally {
      $('run').disabled = false;
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void run();
  });
  $('sql').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void run();
    }
  });
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// ---- start ----

async function main() {
  $('tz').textContent = `Times in ${timeZone}`;
  state.charts = new Charts($('chart-grid'));
  state.history = await openHistory();
  let meta = {};
  if (state.history !== null) {
    try {
      const saved = await state.history.load();
      for (const w of saved.windows) takeWindow(w, true);
      for (const a of saved.alerts.sort((x, y) => x.at - y.at)) takeAlert(a, true);
      meta = saved.meta;
    } catch {
      notice('The saved history could not be read; starting empty.');
    }
  }
  state.charts.redraw();
  const features = await getJson('/features.json').catch(() => ({ ok: false }));
  state.features = features.ok ? features.body : { devices: false, streams: { windows: false, alerts: false }, alerts: false, alertsHistory: false, sql: null };
  setReachable(features.ok);
  startQuery(meta['query.text']);
  const loop = (fn, ms) => {
    const tick = async () => {
      await fn();
      setTimeout(tick, ms);
    };
    void tick();
  };
  loop(pollDevices, POLL_MS);
  loop(pollMetrics, POLL_MS);
  startWindows(meta['windows.lastEventId'] ?? null);
  await startAlerts(meta['alerts.lastEventId'] ?? null);
  if (state.features.alerts && !state.features.streams.alerts) loop(() => startAlertsRefresh(), 5000);
  setInterval(() => renderDevices(Date.now()), 1000);
  window.addEventListener('pagehide', () => void state.history?.flush());
  document.documentElement.dataset.ready = 'true';
}

async function startAlertsRefresh() {
  const { ok, body } = await getJson('/v1/alerts').catch(() => ({ ok: false }));
  if (!ok) return;
  state.firing.clear();
  for (const a of arrayIn(body)) takeAlert(a);
  renderAlerts();
}

void main();
