import type { Reading } from '../../gateway/kinds/kind-descriptor.js';
import type { Sink } from '../../gateway/sinks/types.js';
import type { WindowResult } from '../../gateway/window/types.js';
import { WINDOW_SIZES, type Summary } from '../../simulators/index.js';

/**
 * Compares what a gateway stored with the simulator summaries (the oracle: every reading that got
 * its PUBACK). Each check returns a list of human-readable mismatches, empty when the store agrees,
 * so a failing test prints what differs (first few lines) instead of a single boolean.
 */

const WINDOW_NAMES = Object.keys(WINDOW_SIZES) as Array<keyof typeof WINDOW_SIZES>;
const FAR_FUTURE = Date.now() + 365 * 86_400_000;
const QUERY_LIMIT = 10_000_000;

/** Device id -> the summary it belongs to; throws when two summaries of one kind share a device. */
function devicesOf(summaries: readonly Summary[]): Map<string, Summary> {
  const out = new Map<string, Summary>();
  for (const s of summaries) {
    for (const id of Object.keys(s.byDevice)) {
      if (out.has(id)) throw new Error(`device ${id} appears in two summaries; give each run its own prefix`);
      out.set(id, s);
    }
  }
  return out;
}

function sizeName(sizeMs: number): keyof typeof WINDOW_SIZES | null {
  return WINDOW_NAMES.find((n) => WINDOW_SIZES[n] === sizeMs) ?? null;
}

function near(a: number | undefined, b: number): boolean {
  return a !== undefined && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
}

/** Every window of `kind` for the given devices, all sizes, read back through the sink contract. */
export async function storedWindows(sink: Sink, kind: string, deviceIds: readonly string[]): Promise<WindowResult[]> {
  const out: WindowResult[] = [];
  // One query per device keeps each InfluxDB answer small; the embedded store does not mind.
  for (const deviceId of deviceIds) out.push(...(await sink.queryWindows({ kind, deviceId, from: 0, to: FAR_FUTURE, limit: QUERY_LIMIT })));
  return out;
}

/** Every raw reading of `kind` for the given devices. */
export async function storedReadings(sink: Sink, kind: string, deviceIds: readonly string[]): Promise<Reading[]> {
  const out: Reading[] = [];
  for (const deviceId of deviceIds) out.push(...(await sink.queryReadings({ kind, deviceId, from: 0, to: FAR_FUTURE, limit: QUERY_LIMIT })));
  return out;
}

/**
 * Heart-rate windows against the summaries: for every device and every 1m and 10s window, exactly
 * one stored window with bpm_count = count and bpm_min/max/sum (and mean = sum / count) as in
 * bpmByDevice; no stored window the summaries do not have.
 */
export function heartRateWindowMismatches(summaries: readonly Summary[], windows: readonly WindowResult[]): string[] {
  const problems: string[] = [];
  const devices = devicesOf(summaries);
  // device|size -> start -> stored windows (more than one = the same identity stored twice)
  const stored = new Map<string, Map<number, WindowResult[]>>();
  for (const w of windows) {
    const name = sizeName(w.sizeMs);
    if (w.kind !== 'heart-rate') problems.push(`window of kind ${w.kind} among heart-rate windows`);
    if (name === null || !devices.has(w.deviceId)) {
      problems.push(`unexpected window ${w.deviceId} size ${w.sizeMs} start ${w.start} (count ${w.values['bpm_count']})`);
      continue;
    }
    const key = `${w.deviceId}|${name}`;
    const byStart = stored.get(key) ?? new Map<number, WindowResult[]>();
    stored.set(key, byStart);
    byStart.set(w.start, [...(byStart.get(w.start) ?? []), w]);
  }
  for (const [deviceId, summary] of devices) {
    for (const name of WINDOW_NAMES) {
      const counts = summary.windows[name].byDevice[deviceId] ?? {};
      const bpm = summary.windows[name].bpmByDevice?.[deviceId] ?? {};
      const byStart = stored.get(`${deviceId}|${name}`) ?? new Map<number, WindowResult[]>();
      for (const [startText, count] of Object.entries(counts)) {
        const start = Number(startText);
        const found = byStart.get(start) ?? [];
        byStart.delete(start);
        const where = `${deviceId} ${name} window ${new Date(start).toISOString()}`;
        if (found.length !== 1) {
          problems.push(`${where}: ${found.length} stored windows, expected 1 (count ${count})`);
          continue;
        }
        const w = found[0]!;
        const v = w.values;
        const expected = bpm[startText];
        if (v['bpm_count'] !== count) problems.push(`${where}: bpm_count ${v['bpm_count']}, summary ${count}`);
        if (expected === undefined) {
          problems.push(`${where}: summary has a count but no bpm stats`);
          continue;
        }
        if (v['bpm_min'] !== expected.min) problems.push(`${where}: bpm_min ${v['bpm_min']}, summary ${expected.min}`);
        if (v['bpm_max'] !== expected.max) problems.push(`${where}: bpm_max ${v['bpm_max']}, summary ${expected.max}`);
        if (v['bpm_sum'] !== expected.sum) problems.push(`${where}: bpm_sum ${v['bpm_sum']}, summary ${expected.sum}`);
        if (!near(v['bpm_mean'], expected.sum / count)) problems.push(`${where}: bpm_mean ${v['bpm_mean']}, summary ${expected.sum / count}`);
        if (w.end !== start + WINDOW_SIZES[name]) problems.push(`${where}: end ${w.end}, expected ${start + WINDOW_SIZES[name]}`);
      }
      for (const [start, extra] of byStart) {
        problems.push(`${deviceId} ${name} window ${new Date(start).toISOString()}: stored (count ${extra.map((w) => w.values['bpm_count']).join(',')}) but not in the summary`);
      }
    }
  }
  return problems;
}

/**
 * Bridge windows against the summaries. The gateway keeps one window per (device, vehicleClass,
 * lane); for every device and every 1m and 10s window: each (class, lane) count equals
 * byDeviceClassLane, the sum over the groups equals byDevice, the sum per class equals
 * byDeviceClass; no stored window (or group) the summaries do not have.
 */
export function bridgeWindowMismatches(summaries: readonly Summary[], windows: readonly WindowResult[]): string[] {
  const problems: string[] = [];
  const devices = devicesOf(summaries);
  // device|size -> "CLASS:lane" -> start -> windows
  const stored = new Map<string, Map<string, Map<number, WindowResult[]>>>();
  for (const w of windows) {
    const name = sizeName(w.sizeMs);
    if (w.kind !== 'bridge') problems.push(`window of kind ${w.kind} among bridge windows`);
    if (name === null || !devices.has(w.deviceId)) {
      problems.push(`unexpected window ${w.deviceId} size ${w.sizeMs} start ${w.start} ${JSON.stringify(w.group)} (count ${w.values['count']})`);
      continue;
    }
    const key = `${w.deviceId}|${name}`;
    const byGroup = stored.get(key) ?? new Map<string, Map<number, WindowResult[]>>();
    stored.set(key, byGroup);
    const group = `${w.group['vehicleClass']}:${w.group['lane']}`;
    const byStart = byGroup.get(group) ?? new Map<number, WindowResult[]>();
    byGroup.set(group, byStart);
    byStart.set(w.start, [...(byStart.get(w.start) ?? []), w]);
  }
  for (const [deviceId, summary] of devices) {
    for (const name of WINDOW_NAMES) {
      const ws = summary.windows[name];
      const byGroup = stored.get(`${deviceId}|${name}`) ?? new Map<string, Map<number, WindowResult[]>>();
      // Sums over the stored groups, to compare with the per-device and per-class oracles.
      const perWindow = new Map<number, number>();
      const perClass = new Map<string, Map<number, number>>();
      for (const [group, byStart] of byGroup) {
        const cls = group.split(':')[0]!;
        for (const [start, found] of byStart) {
          for (const w of found) {
            const n = w.values['count'] ?? Number.NaN;
            perWindow.set(start, (perWindow.get(start) ?? 0) + n);
            const c = perClass.get(cls) ?? new Map<number, number>();
            perClass.set(cls, c);
            c.set(start, (c.get(start) ?? 0) + n);
          }
        }
      }
      // (class, lane) groups, exactly
      const lanes = ws.byDeviceClassLane?.[deviceId] ?? {};
      const seen = new Set<string>();
      for (const [group, counts] of Object.entries(lanes)) {
        const byStart = byGroup.get(group) ?? new Map<number, WindowResult[]>();
        for (const [startText, count] of Object.entries(counts)) {
          const start = Number(startText);
          seen.add(`${group}|${start}`);
          const found = byStart.get(start) ?? [];
          const where = `${deviceId} ${name} ${group} window ${new Date(start).toISOString()}`;
          if (found.length !== 1) problems.push(`${where}: ${found.length} stored windows, expected 1 (count ${count})`);
          else if (found[0]!.values['count'] !== count) problems.push(`${where}: count ${found[0]!.values['count']}, summary ${count}`);
          if (found.length === 1 && found[0]!.end !== start + WINDOW_SIZES[name]) problems.push(`${where}: end ${found[0]!.end}`);
        }
      }
      for (const [group, byStart] of byGroup) {
        for (const [start, found] of byStart) {
          if (!seen.has(`${group}|${start}`)) {
            problems.push(`${deviceId} ${name} ${group} window ${new Date(start).toISOString()}: stored (count ${found.map((w) => w.values['count']).join(',')}) but not in the summary`);
          }
        }
      }
      // per device and window: sum over the groups
      const counts = ws.byDevice[deviceId] ?? {};
      for (const [startText, count] of Object.entries(counts)) {
        const got = perWindow.get(Number(startText)) ?? 0;
        if (got !== count) problems.push(`${deviceId} ${name} window ${new Date(Number(startText)).toISOString()}: groups sum to ${got}, summary ${count}`);
      }
      for (const start of perWindow.keys()) {
        if (counts[String(start)] === undefined) problems.push(`${deviceId} ${name} window ${new Date(start).toISOString()}: stored but the device has no such window in the summary`);
      }
      // per device, class and window
      const classes = ws.byDeviceClass?.[deviceId] ?? {};
      for (const [cls, byStart] of Object.entries(classes)) {
        for (const [startText, count] of Object.entries(byStart)) {
          const got = perClass.get(cls)?.get(Number(startText)) ?? 0;
          if (got !== count) problems.push(`${deviceId} ${name} ${cls} window ${new Date(Number(startText)).toISOString()}: stored ${got}, summary byDeviceClass ${count}`);
        }
      }
      for (const [cls, byStart] of perClass) {
        for (const start of byStart.keys()) {
          if (classes[cls]?.[String(start)] === undefined) problems.push(`${deviceId} ${name} ${cls} window ${new Date(start).toISOString()}: stored but not in byDeviceClass`);
        }
      }
    }
  }
  return problems;
}

/**
 * Raw readings against the summaries: per device, as many stored readings as acknowledged unique
 * readings, none stored twice, and the same seq and event-time range.
 */
export function readingMismatches(summaries: readonly Summary[], readings: readonly Reading[]): string[] {
  const problems: string[] = [];
  const devices = devicesOf(summaries);
  const byDevice = new Map<string, Reading[]>();
  for (const r of readings) {
    if (!devices.has(r.deviceId)) {
      problems.push(`unexpected reading ${r.deviceId} seq ${r.seq}`);
      continue;
    }
    const list = byDevice.get(r.deviceId) ?? [];
    byDevice.set(r.deviceId, list);
    list.push(r);
  }
  for (const [deviceId, summary] of devices) {
    const want = summary.byDevice[deviceId]!;
    const got = byDevice.get(deviceId) ?? [];
    // A reading's identity is (seq, ts): a device that restarted its counter reuses seqs.
    const ids = new Set(got.map((r) => `${r.seq}@${r.ts}`));
    if (got.length !== want.readings) problems.push(`${deviceId}: ${got.length} readings stored, summary ${want.readings}`);
    if (ids.size !== got.length) problems.push(`${deviceId}: ${got.length - ids.size} readings stored twice (same seq and ts)`);
    if (got.length === 0) continue;
    let minSeq = Infinity;
    let maxSeq = -Infinity;
    let minTs = Infinity;
    let maxTs = -Infinity;
    for (const r of got) {
      minSeq = Math.min(minSeq, r.seq);
      maxSeq = Math.max(maxSeq, r.seq);
      minTs = Math.min(minTs, r.ts);
      maxTs = Math.max(maxTs, r.ts);
    }
    if (minSeq !== want.minSeq || maxSeq !== want.maxSeq) problems.push(`${deviceId}: seqs ${minSeq}..${maxSeq}, summary ${want.minSeq}..${want.maxSeq}`);
    if (minTs !== want.minTs || maxTs !== want.maxTs) problems.push(`${deviceId}: ts ${minTs}..${maxTs}, summary ${want.minTs}..${want.maxTs}`);
  }
  return problems;
}

/** At most `n` lines of a mismatch list, plus how many more there are: readable assertion output. */
export function firstLines(problems: readonly string[], n = 15): string {
  if (problems.length === 0) return '';
  const more = problems.length > n ? `\n... and ${problems.length - n} more` : '';
  return `${problems.length} mismatches:\n${problems.slice(0, n).join('\n')}${more}`;
}

/** Sanity of a run before its summary is used as the oracle: everything sent was acknowledged. */
export function runProblems(summary: Summary): string[] {
  const t = summary.totals;
  const problems: string[] = [];
  if (summary.stopped !== 'completed') problems.push(`${summary.kind} run stopped: ${summary.stopped}`);
  if (t.readingsFailed !== 0) problems.push(`${summary.kind} run: ${t.readingsFailed} readings failed or unacknowledged`);
  for (const [id, d] of Object.entries(summary.byDevice)) {
    if (d.missingSeqs !== 0) problems.push(`${id}: ${d.missingSeqs} seqs missing in the summary`);
  }
  return problems;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

function addNested(into: Record<string, Record<string, number>>, from: Record<string, Record<string, number>>): void {
  for (const [k, counts] of Object.entries(from)) addCounts((into[k] ??= {}), counts);
}

/**
 * One oracle for two consecutive runs of the same devices (e.g. before and after a gateway
 * restart; the second run's devices restart their seqs at 1): per-device totals, per-class totals
 * and every window count and bpm stat combined. Timing fields are the first run's.
 */
export function mergeSummaries(a: Summary, b: Summary): Summary {
  if (a.kind !== b.kind) throw new Error(`cannot merge a ${a.kind} summary with a ${b.kind} one`);
  const m = structuredClone(a);
  m.totals.readings += b.totals.readings;
  m.totals.publishes += b.totals.publishes;
  m.totals.readingsSent += b.totals.readingsSent;
  m.totals.publishesSent += b.totals.publishesSent;
  m.totals.readingsFailed += b.totals.readingsFailed;
  m.totals.publishesFailed += b.totals.publishesFailed;
  m.totals.duplicatesInjected += b.totals.duplicatesInjected;
  m.totals.outOfOrderInjected += b.totals.outOfOrderInjected;
  if (b.stopped !== 'completed') m.stopped = b.stopped;
  const lo = (x: number | null, y: number | null): number | null => (x === null ? y : y === null ? x : Math.min(x, y));
  const hi = (x: number | null, y: number | null): number | null => (x === null ? y : y === null ? x : Math.max(x, y));
  for (const [id, d] of Object.entries(b.byDevice)) {
    const t = m.byDevice[id];
    if (t === undefined) {
      m.byDevice[id] = structuredClone(d);
      continue;
    }
    t.readings += d.readings;
    t.missingSeqs += d.missingSeqs;
    t.minSeq = lo(t.minSeq, d.minSeq);
    t.maxSeq = hi(t.maxSeq, d.maxSeq);
    t.minTs = lo(t.minTs, d.minTs);
    t.maxTs = hi(t.maxTs, d.maxTs);
    if (d.byClass !== undefined) addCounts((t.byClass ??= {}) as Record<string, number>, d.byClass as Record<string, number>);
  }
  if (b.byClass !== undefined) addCounts((m.byClass ??= {}) as Record<string, number>, b.byClass as Record<string, number>);
  for (const name of WINDOW_NAMES) {
    const into = m.windows[name];
    const from = b.windows[name];
    addCounts(into.total, from.total);
    addNested(into.byDevice, from.byDevice);
    if (from.byClass !== undefined) addNested((into.byClass ??= {}), from.byClass);
    for (const [id, classes] of Object.entries(from.byDeviceClass ?? {})) addNested(((into.byDeviceClass ??= {})[id] ??= {}), classes);
    for (const [id, groups] of Object.entries(from.byDeviceClassLane ?? {})) addNested(((into.byDeviceClassLane ??= {})[id] ??= {}), groups);
    for (const [id, windows] of Object.entries(from.bpmByDevice ?? {})) {
      const target = ((into.bpmByDevice ??= {})[id] ??= {});
      for (const [start, stats] of Object.entries(windows)) {
        const t = target[start];
        if (t === undefined) target[start] = { ...stats };
        else target[start] = { min: Math.min(t.min, stats.min), max: Math.max(t.max, stats.max), sum: t.sum + stats.sum };
      }
    }
  }
  return m;
}
