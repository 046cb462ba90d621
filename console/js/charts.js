// Live charts of the windows of each device (uPlot, copied into ../vendor by the build).
import { HISTORY_MS, windowKey } from './history.js';
import { el, formatNumber } from './format.js';

/** Which windows of a kind are charted, and how. */
const KINDS = {
  'heart-rate': { sizeMs: 10_000, unit: 'bpm', title: 'heart rate, per 10 s' },
  bridge: { sizeMs: 60_000, unit: 'vehicles/min', title: 'vehicles per minute, by class' },
};
const CLASS_COLORS = { CAR: '#58a6ff', VAN: '#a371f7', BUS: '#3fb950', TRUCK: '#d29922', MOTORCYCLE: '#f778ba', UNKNOWN: '#8b949e' };
const FALLBACK = ['#58a6ff', '#3fb950', '#d29922', '#f778ba', '#a371f7', '#79c0ff'];

export function chartId(kind, deviceId) {
  return `chart-${kind}-${deviceId}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

export class Charts {
  constructor(grid) {
    this.grid = grid;
    this.devices = new Map();
    this.sizes = new Map(); // kind -> the size charted for kinds without a preset
    this.available = typeof window.uPlot === 'function';
    this.timer = setInterval(() => this.redraw(), 500);
    this.resize = typeof ResizeObserver === 'function' ? new ResizeObserver((entries) => this.onResize(entries)) : null;
  }

  /** Takes one window (from the stream, a poll or the history); false when it is not charted. */
  add(w) {
    const preset = KINDS[w.kind];
    const size = preset?.sizeMs ?? this.sizes.get(w.kind) ?? (this.sizes.set(w.kind, w.sizeMs), w.sizeMs);
    if (w.sizeMs !== size) return false;
    if (w.start < Date.now() - HISTORY_MS) return false;
    const id = `${w.kind}/${w.deviceId}`;
    let d = this.devices.get(id);
    if (d === undefined) d = this.create(w.kind, w.deviceId, id);
    const key = w.key ?? windowKey(w);
    const known = d.windows.get(key);
    // A correction replaces the window; an older revision never replaces a newer one.
    if (known !== undefined && known.revision > w.revision) return true;
    d.windows.set(key, w);
    d.dirty = true;
    return true;
  }

  create(kind, deviceId, id) {
    const card = el('article', null, { className: 'chart', id: chartId(kind, deviceId), 'data-device': deviceId, 'data-kind': kind, 'data-points': 0, 'aria-label': `${deviceId} ${KINDS[kind]?.title ?? kind}` });
    card.append(el('h3', `${deviceId} `), el('div', null, { className: 'plot' }));
    card.querySelector('h3').append(el('span', KINDS[kind]?.title ?? `${kind} windows`, { className: 'muted' }));
    // Keep the cards sorted by kind, then device.
    const after = [...this.grid.children].find((c) => `${c.dataset.kind}/${c.dataset.device}` > id);
    this.grid.insertBefore(card, after ?? null);
    const d = { kind, deviceId, card, windows: new Map(), plot: null, series: '', dirty: true };
    this.devices.set(id, d);
    this.resize?.observe(card);
    return d;
  }

  onResize(entries) {
    for (const entry of entries) {
      for (const d of this.devices.values()) {
        if (d.card === entry.target && d.plot !== null) d.plot.setSize(this.sizeOf(d));
      }
    }
  }

  sizeOf(d) {
    return { width: Math.max(200, d.card.clientWidth - 18), height: 200 };
  }

  /** Arrays for uPlot: x in seconds, then one array per series. */
  build(d) {
    const cutoff = Date.now() - HISTORY_MS;
    for (const [k, w] of d.windows) if (w.start < cutoff) d.windows.delete(k);
    const starts = [...new Set([...d.windows.values()].map((w) => w.start))].sort((a, b) => a - b);
    const index = new Map(starts.map((s, i) => [s, i]));
    const x = starts.map((s) => s / 1000);
    if (d.kind === 'heart-rate') {
      const mean = new Array(starts.length).fill(null), min = [...mean], max = [...mean];
      for (const w of d.windows.values()) {
        const i = index.get(w.start);
        mean[i] = w.values.bpm_mean ?? null;
        min[i] = w.values.bpm_min ?? null;
        max[i] = w.values.bpm_max ?? null;
      }
      return {
        names: 'hr',
        data: [x, max, mean, min],
        series: [
          { label: 'max', stroke: '#f85149', width: 1, value: (u, v) => formatNumber(v, 'bpm') },
          { label: 'mean', stroke: '#58a6ff', width: 2, value: (u, v) => formatNumber(v, 'bpm') },
          { label: 'min', stroke: '#3fb950', width: 1, value: (u, v) => formatNumber(v, 'bpm') },
        ],
        points: starts.length,
      };
    }
    if (d.kind === 'bridge') {
      const classes = [...new Set([...d.windows.values()].map((w) => w.group?.vehicleClass ?? 'all'))].sort();
      const raw = classes.map(() => new Array(starts.length).fill(0));
      for (const w of d.windows.values()) {
        const c = classes.indexOf(w.group?.vehicleClass ?? 'all');
        raw[c][index.get(w.start)] += w.values.count ?? 0;
      }
      // Stacked: each series is the running total up to its class; the widest is drawn first.
      const stacked = [];
      let acc = new Array(starts.length).fill(0);
      for (const r of raw) {
        acc = acc.map((v, i) => v + r[i]);
        stacked.push(acc);
      }
      const order = classes.map((_, i) => i).reverse();
      return {
        names: `br:${classes.join(',')}`,
        data: [x, ...order.map((i) => stacked[i])],
        series: order.map((i) => {
          const color = CLASS_COLORS[classes[i]] ?? FALLBACK[i % FALLBACK.length];
          return { label: classes[i], stroke: color, fill: `${color}99`, width: 1, value: (u, v, si, idx) => (idx === null || idx === undefined ? '–' : formatNumber(raw[i][idx], '/min')) };
        }),
        points: starts.length,
      };
    }
    const count = new Array(starts.length).fill(null);
    for (const w of d.windows.values()) count[index.get(w.start)] = (count[index.get(w.start)] ?? 0) + (w.values.count ?? 0);
    return { names: 'count', data: [x, count], series: [{ label: 'count', stroke: '#58a6ff', width: 2 }], points: starts.length };
  }

  redraw() {
    for (const d of this.devices.values()) {
      if (!d.dirty) continue;
      d.dirty = false;
      const built = this.build(d);
      d.card.dataset.points = String(built.points);
      const holder = d.card.querySelector('.plot');
      if (!this.available) {
        holder.replaceChildren(el('p', `${built.points} windows (charts need the console build: npm run build:console)`, { className: 'nodata' }));
        continue;
      }
      if (d.plot === null || d.series !== built.names) {
        d.plot?.destroy();
        holder.replaceChildren();
        const unit = KINDS[d.kind]?.unit ?? '';
        d.plot = new window.uPlot(
          {
            ...this.sizeOf(d),
            series: [{}, ...built.series],
            axes: [
              { stroke: '#9aa4ad', grid: { stroke: '#2a3540' }, ticks: { stroke: '#2a3540' } },
              { stroke: '#9aa4ad', grid: { stroke: '#2a3540' }, ticks: { stroke: '#2a3540' }, label: unit, size: 50 },
            ],
            scales: { x: { time: true } },
            cursor: { drag: { x: false, y: false } },
          },
          built.data,
          holder,
        );
        d.series = built.names;
      } else d.plot.setData(built.data);
    }
  }

  /** Points charted per device: { "heart-rate/athlete-1": 12, ... }. */
  counts() {
    const out = {};
    for (const [id, d] of this.devices) out[id] = Number(d.card.dataset.points);
    return out;
  }
}
