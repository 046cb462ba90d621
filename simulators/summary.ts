import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AnomalyEpisode, HeartRateReading, SensorKind, SimReading, VehicleClass, VehicleDetection } from './readings.js';

/**
 * The oracle of a run: what was sent AND acknowledged, i.e. what the gateway must have stored.
 * With QoS 1 a reading counts once its publish got its PUBACK; with QoS 0 once it was written to
 * the socket (`counts: "sent"`, nothing more is known). Injected duplicates count once: readings
 * are unique by (device, seq). The JSON shape is documented in simulators/README.md.
 */

/** Window start (ms since the epoch, aligned to the window size in UTC) -> readings. */
export type WindowCounts = Record<string, number>;

export interface BpmStats {
  min: number;
  max: number;
  sum: number;
}

export interface WindowSummary {
  sizeMs: number;
  total: WindowCounts;
  byDevice: Record<string, WindowCounts>;
  /** Bridges: class -> window -> count, over all bridges. */
  byClass?: Record<string, WindowCounts>;
  /** Bridges: device -> class -> window -> count. */
  byDeviceClass?: Record<string, Record<string, WindowCounts>>;
  /** Bridges: device -> "<CLASS>:<lane>" -> window -> count (the gateway's window keys). */
  byDeviceClassLane?: Record<string, Record<string, WindowCounts>>;
  /** Heart rate: device -> window -> bpm min/max/sum (mean = sum / count). */
  bpmByDevice?: Record<string, Record<string, BpmStats>>;
}

export interface DeviceSummary {
  readings: number;
  minSeq: number | null;
  maxSeq: number | null;
  /** Sequence numbers in [1, maxSeq] that were not acknowledged. */
  missingSeqs: number;
  minTs: number | null;
  maxTs: number | null;
  byClass?: Partial<Record<VehicleClass, number>>;
}

export interface SummaryTotals {
  /** Unique (device, seq) readings acknowledged (QoS 1) or sent (QoS 0). */
  readings: number;
  /** Publishes acknowledged (QoS 1) or written (QoS 0). */
  publishes: number;
  /** Readings handed to the MQTT client, injected duplicates included. */
  readingsSent: number;
  publishesSent: number;
  /** Readings/publishes whose publish failed or was still unacknowledged at the end. */
  readingsFailed: number;
  publishesFailed: number;
  duplicatesInjected: number;
  outOfOrderInjected: number;
  /** Unique readings per second over the run (first publish to last acknowledgement). */
  readingsPerSecond: number;
  publishesPerSecond: number;
}

export interface Summary extends SummaryContext {
  version: 1;
  /** "acknowledged": QoS 1, counts are PUBACKed readings; "sent": QoS 0, counts are readings written. */
  counts: 'acknowledged' | 'sent';
  startedAt: string;
  finishedAt: string;
  elapsedMs: number;
  /** "completed": all readings generated; "aborted": stopped early (signal / Ctrl-C). */
  stopped: 'completed' | 'aborted';
  totals: SummaryTotals;
  byDevice: Record<string, DeviceSummary>;
  /** Bridges: class -> count over all bridges. */
  byClass?: Partial<Record<VehicleClass, number>>;
  windows: { '1m': WindowSummary; '10s': WindowSummary };
  /**
   * The anomalies the models injected (heart rate: spike, flatline; bridges: truck-surge), in
   * device order then time: device, kind, event time of the first and last reading (of a surge:
   * of its extra trucks), how many readings, the lane of a surge. Generated, whether or not the
   * readings were acknowledged (that is in byDevice).
   */
  anomalies: SummaryAnomaly[];
  /** Episodes dropped past the per-device bound (MAX_EPISODES_PER_DEVICE). */
  anomaliesDropped: number;
}

export interface SummaryAnomaly extends Readonly<AnomalyEpisode> {
  readonly deviceId: string;
}

export const WINDOW_SIZES = { '1m': 60_000, '10s': 10_000 } as const;
type WindowName = keyof typeof WINDOW_SIZES;
const WINDOW_NAMES = Object.keys(WINDOW_SIZES) as WindowName[];

interface DeviceWindows {
  counts: Map<number, number>;
  byClass: Map<string, Map<number, number>>;
  byClassLane: Map<string, Map<number, number>>;
  bpm: Map<number, BpmStats>;
}

interface DeviceState {
  /** Bit per seq: acknowledged already. Sequence numbers are dense, so a bitmap stays small. */
  seen: Uint8Array;
  readings: number;
  minSeq: number;
  maxSeq: number;
  minTs: number;
  maxTs: number;
  byClass: Map<string, number>;
  windows: Record<WindowName, DeviceWindows>;
}

function inc(m: Map<number, number>, k: number, n = 1): void {
  m.set(k, (m.get(k) ?? 0) + n);
}

function sub<K, V>(m: Map<K, V>, k: K, make: () => V): V {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    m.set(k, v);
  }
  return v;
}

function sortedCounts(m: Map<number, number>): WindowCounts {
  const out: WindowCounts = {};
  for (const k of [...m.keys()].sort((a, b) => a - b)) out[String(k)] = m.get(k)!;
  return out;
}

function nested(m: Map<string, Map<number, number>>): Record<string, WindowCounts> {
  const out: Record<string, WindowCounts> = {};
  for (const k of [...m.keys()].sort()) out[k] = sortedCounts(m.get(k)!);
  return out;
}

export interface SummaryContext {
  kind: SensorKind;
  qos: 0 | 1;
  format: 'protobuf' | 'json';
  batch: number;
  seed: number;
  startTs: number;
  realtime: boolean;
}

export class SummaryBuilder {
  private readonly devices = new Map<string, DeviceState>();
  private readonly startedAt = Date.now();
  private firstSendAt: number | null = null;
  private lastAckAt: number | null = null;
  readonly totals: SummaryTotals = {
    readings: 0,
    publishes: 0,
    readingsSent: 0,
    publishesSent: 0,
    readingsFailed: 0,
    publishesFailed: 0,
    duplicatesInjected: 0,
    outOfOrderInjected: 0,
    readingsPerSecond: 0,
    publishesPerSecond: 0,
  };

  private anomalies: SummaryAnomaly[] = [];
  private anomaliesDropped = 0;

  constructor(private readonly context: SummaryContext) {}

  /** The models' anomaly episodes, per device (PublishPlanner.anomalies()). */
  setAnomalies(perDevice: readonly { deviceId: string; episodes: readonly AnomalyEpisode[]; dropped: number }[]): void {
    this.anomalies = perDevice.flatMap((d) => d.episodes.map((e) => ({ deviceId: d.deviceId, ...e })));
    this.anomaliesDropped = perDevice.reduce((n, d) => n + d.dropped, 0);
  }

  /** Lists a device even if none of its readings gets through. */
  addDevice(deviceId: string): void {
    this.state(deviceId);
  }

  noteSent(readings: number): void {
    this.firstSendAt ??= performance.now();
    this.totals.publishesSent++;
    this.totals.readingsSent += readings;
  }

  /** Unique readings per second so far (first publish to last acknowledgement). */
  get readingsPerSecond(): number {
    if (this.firstSendAt === null || this.lastAckAt === null) return 0;
    return Math.round(this.totals.readings / Math.max(1e-3, (this.lastAckAt - this.firstSendAt) / 1000));
  }

  noteFailed(readings: number): void {
    this.totals.publishesFailed++;
    this.totals.readingsFailed += readings;
  }

  /** Records the readings of one acknowledged publish; returns how many were new (not duplicates). */
  recordAcked(deviceId: string, readings: readonly SimReading[]): number {
    this.lastAckAt = performance.now();
    this.totals.publishes++;
    const d = this.state(deviceId);
    let fresh = 0;
    for (const r of readings) {
      if (!this.markSeen(d, r.seq)) continue;
      fresh++;
      d.readings++;
      if (r.seq < d.minSeq) d.minSeq = r.seq;
      if (r.seq > d.maxSeq) d.maxSeq = r.seq;
      if (r.ts < d.minTs) d.minTs = r.ts;
      if (r.ts > d.maxTs) d.maxTs = r.ts;
      const cls = this.context.kind === 'bridge' ? (r as VehicleDetection).vehicleClass : undefined;
      const lane = this.context.kind === 'bridge' ? (r as VehicleDetection).lane : 0;
      const bpm = this.context.kind === 'heart-rate' ? (r as HeartRateReading).bpm : 0;
      if (cls !== undefined) d.byClass.set(cls, (d.byClass.get(cls) ?? 0) + 1);
      for (const name of WINDOW_NAMES) {
        const size = WINDOW_SIZES[name];
        const start = Math.floor(r.ts / size) * size;
        const w = d.windows[name];
        inc(w.counts, start);
        if (cls !== undefined) {
          inc(sub(w.byClass, cls, () => new Map()), start);
          inc(sub(w.byClassLane, `${cls}:${lane}`, () => new Map()), start);
        } else {
          const s = w.bpm.get(start);
          if (s === undefined) w.bpm.set(start, { min: bpm, max: bpm, sum: bpm });
          else {
            if (bpm < s.min) s.min = bpm;
            if (bpm > s.max) s.max = bpm;
            s.sum += bpm;
          }
        }
      }
    }
    this.totals.readings += fresh;
    return fresh;
  }

  build(stopped: Summary['stopped']): Summary {
    const kind = this.context.kind;
    const bridge = kind === 'bridge';
    const finished = Date.now();
    const activeS = this.firstSendAt !== null && this.lastAckAt !== null ? Math.max(1e-3, (this.lastAckAt - this.firstSendAt) / 1000) : 0;
    const totals: SummaryTotals = {
      ...this.totals,
      readingsPerSecond: activeS > 0 ? round2(this.totals.readings / activeS) : 0,
      publishesPerSecond: activeS > 0 ? round2(this.totals.publishes / activeS) : 0,
    };
    const byDevice: Record<string, DeviceSummary> = {};
    const byClassTotal = new Map<string, number>();
    const windows = {} as Summary['windows'];
    for (const name of WINDOW_NAMES) {
      const w: WindowSummary = { sizeMs: WINDOW_SIZES[name], total: {}, byDevice: {} };
      if (bridge) {
        w.byClass = {};
        w.byDeviceClass = {};
        w.byDeviceClassLane = {};
      } else w.bpmByDevice = {};
      windows[name] = w;
    }
    const totalWindows = { '1m': new Map<number, number>(), '10s': new Map<number, number>() };
    const classWindows = { '1m': new Map<string, Map<number, number>>(), '10s': new Map<string, Map<number, number>>() };

    for (const id of [...this.devices.keys()].sort(compareIds)) {
      const d = this.devices.get(id)!;
      const any = d.readings > 0;
      const ds: DeviceSummary = {
        readings: d.readings,
        minSeq: any ? d.minSeq : null,
        maxSeq: any ? d.maxSeq : null,
        missingSeqs: any ? d.maxSeq - d.readings : 0,
        minTs: any ? d.minTs : null,
        maxTs: any ? d.maxTs : null,
      };
      if (bridge) {
        ds.byClass = Object.fromEntries([...d.byClass.entries()].sort(([a], [b]) => a.localeCompare(b)));
        for (const [c, n] of d.byClass) byClassTotal.set(c, (byClassTotal.get(c) ?? 0) + n);
      }
      byDevice[id] = ds;
      for (const name of WINDOW_NAMES) {
        const dw = d.windows[name];
        const w = windows[name];
        w.byDevice[id] = sortedCounts(dw.counts);
        for (const [k, n] of dw.counts) inc(totalWindows[name], k, n);
        if (bridge) {
          w.byDeviceClass![id] = nested(dw.byClass);
          w.byDeviceClassLane![id] = nested(dw.byClassLane);
          for (const [c, m] of dw.byClass) {
            const cw = sub(classWindows[name], c, () => new Map<number, number>());
            for (const [k, n] of m) inc(cw, k, n);
          }
        } else {
          const bpm: Record<string, BpmStats> = {};
          for (const k of [...dw.bpm.keys()].sort((a, b) => a - b)) bpm[String(k)] = { ...dw.bpm.get(k)! };
          w.bpmByDevice![id] = bpm;
        }
      }
    }
    for (const name of WINDOW_NAMES) {
      windows[name].total = sortedCounts(totalWindows[name]);
      if (bridge) windows[name].byClass = nested(classWindows[name]);
    }
    const summary: Summary = {
      version: 1,
      kind,
      counts: this.context.qos === 1 ? 'acknowledged' : 'sent',
      qos: this.context.qos,
      format: this.context.format,
      batch: this.context.batch,
      seed: this.context.seed,
      startTs: this.context.startTs,
      realtime: this.context.realtime,
      startedAt: new Date(this.startedAt).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      elapsedMs: finished - this.startedAt,
      stopped,
      totals,
      byDevice,
      windows,
      anomalies: this.anomalies,
      anomaliesDropped: this.anomaliesDropped,
    };
    if (bridge) summary.byClass = Object.fromEntries([...byClassTotal.entries()].sort(([a], [b]) => a.localeCompare(b)));
    return summary;
  }

  private state(deviceId: string): DeviceState {
    let d = this.devices.get(deviceId);
    if (d === undefined) {
      const windows = {} as Record<WindowName, DeviceWindows>;
      for (const name of WINDOW_NAMES) windows[name] = { counts: new Map(), byClass: new Map(), byClassLane: new Map(), bpm: new Map() };
      d = {
        seen: new Uint8Array(64),
        readings: 0,
        minSeq: Number.POSITIVE_INFINITY,
        maxSeq: 0,
        minTs: Number.POSITIVE_INFINITY,
        maxTs: Number.NEGATIVE_INFINITY,
        byClass: new Map(),
        windows,
      };
      this.devices.set(deviceId, d);
    }
    return d;
  }

  /** Sets the bit of `seq`; false when it was set already. */
  private markSeen(d: DeviceState, seq: number): boolean {
    const byte = seq >>> 3;
    if (byte >= d.seen.length) {
      let size = d.seen.length * 2;
      while (size <= byte) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(d.seen);
      d.seen = grown;
    }
    const bit = 1 << (seq & 7);
    if ((d.seen[byte]! & bit) !== 0) return false;
    d.seen[byte] = d.seen[byte]! | bit;
    return true;
  }
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Natural order, so athlete-2 comes before athlete-10. */
function compareIds(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** Writes the summary as JSON atomically (temp file + rename). */
export function writeSummaryFile(file: string, summary: Summary): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(summary, null, 2) + '\n');
  renameSync(tmp, file);
}
