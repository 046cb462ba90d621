// Numbers with units and times in the viewer's own time zone.
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const num = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const int = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** A time of today as hh:mm:ss, an older one with its date. */
export function formatTime(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const d = new Date(ms);
  return Date.now() - ms < 12 * 3600_000 ? timeFmt.format(d) : dateTimeFmt.format(d);
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  const s = ms / 1000;
  if (s < 1) return `${int.format(ms)} ms`;
  if (s < 90) return `${num.format(s)} s`;
  if (s < 5400) return `${num.format(s / 60)} min`;
  if (s < 172_800) return `${num.format(s / 3600)} h`;
  return `${num.format(s / 86_400)} d`;
}

export function formatAge(ms) {
  return ms === null || !Number.isFinite(ms) ? '–' : `${formatDuration(Math.max(0, ms))} ago`;
}

export function formatNumber(n, unit = '') {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  return unit === '' ? num.format(n) : `${num.format(n)} ${unit}`;
}

export function formatCount(n) {
  return n === null || n === undefined || !Number.isFinite(n) ? '–' : int.format(n);
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${int.format(n)} B`;
  if (n < 1024 ** 2) return `${num.format(n / 1024)} KiB`;
  if (n < 1024 ** 3) return `${num.format(n / 1024 ** 2)} MiB`;
  return `${num.format(n / 1024 ** 3)} GiB`;
}

/** Units of the fields of the known kinds. */
const UNITS = { bpm: 'bpm', rrMs: 'ms RR', speedKmh: 'km/h', weightKg: 'kg', axles: 'axles' };

/** A reading's values for people: "72 bpm", "CAR · lane 2 · 83 km/h". */
export function formatValues(kind, values) {
  if (values === null || values === undefined) return '–';
  if (kind === 'bridge') {
    const parts = [];
    if (values.vehicleClass !== undefined) parts.push(String(values.vehicleClass));
    if (values.lane !== undefined) parts.push(`lane ${values.lane}`);
    if (values.speedKmh !== undefined) parts.push(formatNumber(Number(values.speedKmh), 'km/h'));
    return parts.join(' · ') || '–';
  }
  return Object.entries(values)
    .map(([k, v]) => (typeof v === 'number' ? formatNumber(v, UNITS[k] ?? '') : String(v)) + (UNITS[k] ? '' : ` ${k}`))
    .join(' · ') || '–';
}

/** Text content of an element (never HTML). */
export function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'className') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  return e;
}
