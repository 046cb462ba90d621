import type { Clock } from '../clock.js';
import type { WindowConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import { LruList } from '../lru-list.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { WindowEngine, WindowResult } from './types.js';
import { accumulate, columnValues, compileAggregates, type CompiledAggregates } from './window-aggregates.js';

/**
 * Event-time windowing engine.
 *
 * Time model (per device: one kind + deviceId; all its groups share it)
 *   maxTs      greatest *bounded* event time seen from the device: each reading counts as
 *              min(ts, receivedAt + maxWatermarkSkewMs), receivedAt being when ingest took it
 *              in (the gateway's clock, kept in the log, so replay bounds it the same way). A
 *              reading further ahead than that (a device clock running fast, one bad sample)
 *              is still applied to its own windows, which stay open, but it cannot drag the
 *              device's watermark into the future and make its on-time readings late; it is
 *              counted in futureReadings.
 *   watermark  W = maxTs - outOfOrdernessMs (default 0: windows fire as soon as the device
 *              has moved past them, which is what alert rules want).
 *   fire       a window [start, end) is emitted (revision 0) once end <= W.
 *   lateness   its state is kept while end > W - allowedLatenessMs. A reading whose window is
 *              still kept is applied; if the window was already emitted it is emitted again
 *              with revision + 1 (same identity, so the store overwrites). Once
 *              end <= W - allowedLatenessMs the window is closed and its state dropped; a
 *              reading for it is reported to onLate and not applied. In reading terms, for a
 *              reading in the last millisecond of its window (ts = end - 1):
 *              maxTs - outOfOrdernessMs - ts <= allowedLatenessMs is accepted, one ms more is late.
 *   idle       tick(): a device with no arrival for idleTimeoutMs by the clock has every window
 *              with unemitted data emitted (silent devices still get their windows); the state
 *              stays, so a backlog it uploads later still corrects them. After
 *              idleTimeoutMs + allowedLatenessMs of silence the device is forgotten: its
 *              windows and groups are dropped, only its horizon stays (below).
 *   devices    policy "emit-lru": at most maxDevices devices hold state. A reading from one
 *              more device first evicts the least recently active device: its windows with
 *              unemitted data are emitted (as the idle timeout would), then it is forgotten
 *              like an expired one. Nothing applied is lost.
 *   horizon    a forgotten device leaves one number, finalBefore: every window it emitted
 *              starts before it (max of its windows' starts + 1, of the starts of windows closed
 *              by lateness or by overflow). When the device sends again it gets it back, and a
 *              window [start, end) with start < finalBefore is final: its readings are reported
 *              late, never applied to a window that would start again at revision 0 and
 *              overwrite the complete stored one (same identity) with partial data. Readings for
 *              later windows are taken as from a new device. Beyond exact lateness this also
 *              drops an out-of-order reading for a window the device never had, if it starts
 *              before finalBefore; and a reading for a window that was still correctable when
 *              the device was forgotten is late too (the correction would need its state).
 *              Policy "drop-oldest": at most maxForgottenDevices horizons are kept, the oldest
 *              forgotten goes first (counted in horizonsDropped: for that device the overwrite
 *              hazard is back). A horizon expires (horizonsExpired) once
 *              clock - maxPastAgeMs >= finalBefore + the largest window size: ingest rejects
 *              every reading that could still fall in a window it covers. Expiry runs in tick(),
 *              oldest forgotten first, stopping at the first one still needed.
 *   overflow   policy "emit-oldest": a key (kind, deviceId, group) holds at most
 *              maxOpenWindowsPerKey windows (emitted-but-correctable ones included); one more
 *              emits the oldest (smallest end) early if it has unemitted data, drops its state
 *              and makes it final: later readings for it are reported late.
 *
 *   sliding    a reading goes to every window [s, s + size) with s a multiple of slideMs; it is
 *              reported late (once per window definition) only when none of them took it.
 *
 * Memory is bounded by maxDevices x groups per device (group-by fields are enums or bounded
 * ints) x maxOpenWindowsPerKey, plus maxForgottenDevices horizons (one Map entry each: 165 bytes
 * of heap and 21 of checkpoint JSON for a 14-character device id, bench/horizon-heap.ts; the
 * default 400000 is about 63 MB), and the snapshot holds only that state (a horizon as kind
 * index, device id, delta of finalBefore).
 *
 * A correction is emitted by the add() that caused it when the window's end is already <= W;
 * a window emitted early (idle, flush, eviction) that gets more data is emitted again when W
 * passes its end, so a resumed device does not emit one revision per reading. A window closes
 * only after it fired, so every applied reading reaches an emission. Emission order is
 * deterministic: tick() and flush() by (end, kind, deviceId, group, sizeMs, slideMs); add()
 * emits an evicted device's windows first (by end, group, sizeMs, slideMs), then an overflow
 * victim, then the windows it fired by (end, group, sizeMs, slideMs).
 */

/** A sliding (hopping) window requested for a kind, e.g. mean bpm over 30 s every 5 s. */
export interface SlidingWindowSpec {
  readonly kind: string;
  readonly sizeMs: number;
  readonly slideMs: number;
}

export interface WindowEngineOptions {
  readonly kinds: KindRegistry;
  readonly config: WindowConfig;
  readonly clock: Clock;
  /** Extra sliding windows; a spec with slideMs === sizeMs is an ordinary tumbling window. */
  readonly sliding?: readonly SlidingWindowSpec[];
  /** Event-time slack before a window first fires; 0 (the default) fires at end <= maxTs. */
  readonly outOfOrdernessMs?: number;
  /**
   * Ingest's ingest.maxPastAgeMs: how old a reading's event time may be and still be accepted.
   * A forgotten device's horizon is kept no longer than it can matter. Defaults to 7 days, the
   * schema default; pass the configured value.
   */
  readonly maxPastAgeMs?: number;
}

/** Counters (monotonic) and gauges for the metrics registry. */
export interface WindowEngineStats {
  /** (reading, window definition) pairs reported to onLate and not applied. */
  lateDropped: number;
  /** First emissions (revision 0). */
  windowsEmitted: number;
  /** Re-emissions corrected by late data (revision >= 1). */
  windowsCorrected: number;
  /** Windows emitted and closed early by the "emit-oldest" overflow policy. */
  evictions: number;
  /** Windows emitted by tick() because their device fell silent. */
  idleEmissions: number;
  /** Devices forgotten after idleTimeoutMs + allowedLatenessMs of silence. */
  devicesExpired: number;
  /** Devices evicted (windows emitted, then forgotten) by the "emit-lru" policy of maxDevices. */
  devicesEvicted: number;
  /** Readings with ts > receivedAt + maxWatermarkSkewMs: windowed, but not moving the watermark past that. */
  futureReadings: number;
  /** Gauge: windows holding state. */
  openWindows: number;
  /** Gauge: devices holding state (at most maxDevices). */
  devices: number;
  /** Forgotten devices' horizons dropped by the "drop-oldest" policy of maxForgottenDevices. */
  horizonsDropped: number;
  /** Forgotten devices' horizons expired (older than maxPastAgeMs + the largest window size). */
  horizonsExpired: number;
  /** Gauge: forgotten devices' horizons held (at most maxForgottenDevices). */
  horizons: number;
}

export interface MeteredWindowEngine extends WindowEngine {
  readonly stats: Readonly<WindowEngineStats>;
}

/** What happens when a key would hold more than maxOpenWindowsPerKey windows. */
export const OPEN_WINDOW_OVERFLOW_POLICY = 'emit-oldest' as const;
/** What happens when one more device than maxDevices sends: the least recently active one is emitted and forgotten. */
export const DEVICE_OVERFLOW_POLICY = 'emit-lru' as const;
/** What happens when one more device than maxForgottenDevices is forgotten: the oldest forgotten one's horizon is dropped. */
export const HORIZON_OVERFLOW_POLICY = 'drop-oldest' as const;

const SNAPSHOT_FORMAT = 'pulsegate-window/1';
const DEFAULT_MAX_PAST_AGE_MS = 7 * 86_400_000;
/** Separates kind and device id in a horizon key; MQTT topics cannot hold U+0000 [MQTT-4.7.3-2]. */
const KEY_SEPARATOR = '\u0000';
/** JSON-safe stand-in for -Infinity (the earliest Date). */
const NEVER = -8.64e15;
const GROUP_SEPARATOR = '\u001f';

interface Spec {
  readonly sizeMs: number;
  readonly slideMs: number;
  readonly tumbling: boolean;
}

interface KindState {
  readonly name: string;
  readonly groupBy: readonly string[];
  readonly agg: CompiledAggregates;
  /** Sorted by (sizeMs, slideMs); a window's `spec` indexes this. */
  readonly specs: readonly Spec[];
  /** Smallest window size of the kind (0 when it has none). */
  readonly minSizeMs: number;
  readonly devices: Map<string, DeviceState>;
}

interface DeviceState {
  readonly kind: KindState;
  readonly deviceId: string;
  /** Greatest bounded event time: max of min(ts, receivedAt + maxWatermarkSkewMs). */
  maxTs: number;
  /** Clock time of the last reading (idle detection). */
  lastArrival: number;
  /** Windows starting before this were emitted before the device was forgotten: final. */
  finalBefore: number;
  readonly groups: Map<string, GroupState>;
  /** Every window with state, sorted by end (closing order). */
  windows: Win[];
  /** Windows with unemitted data, sorted by (end, group key, spec) (emission order). */
  dirty: Win[];
  /** Activity list, least recently active first (the "emit-lru" eviction order). */
  prev: DeviceState | null;
  next: DeviceState | null;
}

interface GroupState {
  readonly device: DeviceState;
  readonly key: string;
  readonly values: Readonly<Record<string, string>>;
  /** Per spec: windows with state, sorted by start. */
  readonly open: Win[][];
  /** Per spec: windows ending at or before this were evicted and are final. */
  readonly horizon: number[];
  live: number;
}

interface Win {
  readonly group: GroupState;
  readonly spec: number;
  readonly start: number;
  readonly end: number;
  /** Revision of the next emission. */
  revision: number;
  dirty: boolean;
  readonly acc: Float64Array;
}

/** How often the gateway calls tick(): every second, or more often for an idle timeout below it. */
export function idleTickIntervalMs(config: { readonly idleTimeoutMs: number }): number {
  return Math.min(1000, config.idleTimeoutMs);
}

export function createWindowEngine(options: WindowEngineOptions): MeteredWindowEngine {
  const { clock, config } = options;
  const lateness = config.allowedLatenessMs;
  const outOfOrderness = options.outOfOrdernessMs ?? options.config.outOfOrdernessMs;
  const idleTimeout = config.idleTimeoutMs;
  const maxOpen = config.maxOpenWindowsPerKey;
  const maxDevices = config.maxDevices;
  const skew = config.maxWatermarkSkewMs;
  const maxForgotten = config.maxForgottenDevices;
  const maxPastAge = options.maxPastAgeMs ?? DEFAULT_MAX_PAST_AGE_MS;
  const problems: string[] = [];
  if (!(Number.isInteger(outOfOrderness) && outOfOrderness >= 0)) problems.push('outOfOrdernessMs must be an integer >= 0');
  if (!(maxOpen >= 1)) problems.push('maxOpenWindowsPerKey must be >= 1');
  if (!(Number.isInteger(maxDevices) && maxDevices >= 1)) problems.push('maxDevices must be an integer >= 1');
  if (!(Number.isInteger(skew) && skew >= 0)) problems.push('maxWatermarkSkewMs must be an integer >= 0');
  if (!(Number.isInteger(maxForgotten) && maxForgotten >= 0)) problems.push('maxForgottenDevices must be an integer >= 0');
  if (!(maxPastAge > 0)) problems.push('maxPastAgeMs must be > 0');

  const kinds = new Map<string, KindState>();
  for (const desc of options.kinds.values()) {
    const specs = new Map<string, Spec>();
    const addSpec = (sizeMs: number, slideMs: number, origin: string): void => {
      if (!Number.isInteger(sizeMs) || sizeMs <= 0 || !Number.isInteger(slideMs) || slideMs <= 0 || slideMs > sizeMs) {
        problems.push(`${origin}: size ${sizeMs} / slide ${slideMs} must be positive integers with slide <= size`);
        return;
      }
      specs.set(`${sizeMs}/${slideMs}`, { sizeMs, slideMs, tumbling: sizeMs === slideMs });
    };
    for (const size of config.sizesMs[desc.name] ?? desc.window.sizesMs ?? config.defaultSizesMs) addSpec(size, size, `window sizes of ${desc.name}`);
    for (const s of options.sliding ?? []) if (s.kind === desc.name) addSpec(s.sizeMs, s.slideMs, `sliding window of ${desc.name}`);
    const sorted = [...specs.values()].sort((a, b) => a.sizeMs - b.sizeMs || a.slideMs - b.slideMs);
    kinds.set(desc.name, {
      name: desc.name,
      groupBy: desc.window.groupBy,
      agg: compileAggregates(desc),
      specs: sorted,
      minSizeMs: sorted[0]?.sizeMs ?? 0,
      devices: new Map(),
    });
  }
  for (const s of options.sliding ?? []) if (!kinds.has(s.kind)) problems.push(`sliding window for unknown kind "${s.kind}"`);
  if (problems.length > 0) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `window engine: ${problems.join('; ')}`, { details: { problems } });
  }
  let maxSizeMs = 0;
  for (const k of kinds.values()) for (const s of k.specs) maxSizeMs = Math.max(maxSizeMs, s.sizeMs);

  const emitListeners: ((w: WindowResult) => void)[] = [];
  const lateListeners: ((r: Reading, sizeMs: number, slideMs: number) => void)[] = [];
  const stats: WindowEngineStats = {
    lateDropped: 0,
    windowsEmitted: 0,
    windowsCorrected: 0,
    evictions: 0,
    idleEmissions: 0,
    devicesExpired: 0,
    devicesEvicted: 0,
    futureReadings: 0,
    openWindows: 0,
    devices: 0,
    horizonsDropped: 0,
    horizonsExpired: 0,
    horizons: 0,
  };

  // ---- emission -------------------------------------------------------------------------

  function emit(w: Win): void {
    // State first, listeners last: a throwing listener cannot leave a window half-emitted.
    w.dirty = false;
    const revision = w.revision++;
    if (revision === 0) stats.windowsEmitted++;
    else stats.windowsCorrected++;
    const g = w.group;
    const kind = g.device.kind;
    const spec = kind.specs[w.spec]!;
    const result: WindowResult = {
      kind: kind.name,
      deviceId: g.device.deviceId,
      sizeMs: spec.sizeMs,
      slideMs: spec.slideMs,
      start: w.start,
      end: w.end,
      group: g.values,
      values: columnValues(kind.agg, w.acc),
      revision,
    };
    for (const l of emitListeners) l(result);
  }

  function compareInDevice(a: Win, b: Win): number {
    return a.end - b.end || compareStrings(a.group.key, b.group.key) || a.spec - b.spec;
  }

  function compareGlobal(a: Win, b: Win): number {
    if (a.end !== b.end) return a.end - b.end;
    const da = a.group.device;
    const db = b.group.device;
    if (da !== db) return compareStrings(da.kind.name, db.kind.name) || compareStrings(da.deviceId, db.deviceId);
    return compareStrings(a.group.key, b.group.key) || a.spec - b.spec;
  }

  function emitSorted(wins: Win[]): void {
    wins.sort(compareGlobal);
    for (const w of wins) emit(w);
  }

  // ---- state changes --------------------------------------------------------------------

  // Activity list: head = least recently active. Maintained on every add(), so the eviction
  // order depends only on the order of readings (replay gives the same evictions).
  const activity = new LruList<DeviceState>();

  function newDevice(kind: KindState, deviceId: string, maxTs: number, lastArrival: number, finalBefore: number): DeviceState {
    const dev: DeviceState = { kind, deviceId, maxTs, lastArrival, finalBefore, groups: new Map(), windows: [], dirty: [], prev: null, next: null };
    kind.devices.set(deviceId, dev);
    activity.push(dev);
    stats.devices++;
    return dev;
  }

  // Forgotten devices' horizons, key kind + KEY_SEPARATOR + deviceId -> finalBefore. A Map keeps
  // insertion order: the first entry is the oldest forgotten ("drop-oldest"). Entries change only
  // on add() and on forgetting, so replay drops the same ones as the live path did.
  const forgotten = new Map<string, number>();

  function remember(key: string, finalBefore: number): void {
    if (maxForgotten === 0) {
      stats.horizonsDropped++;
      return;
    }
    if (forgotten.size >= maxForgotten) {
      const oldest = forgotten.keys().next().value as string;
      forgotten.delete(oldest);
      stats.horizonsDropped++;
    }
    forgotten.set(key, finalBefore);
    stats.horizons = forgotten.size;
  }

  /** Every window the device emitted starts before the returned bound (see "horizon"). */
  function horizonOf(dev: DeviceState): number {
    const kind = dev.kind;
    // Closed by lateness: end <= closedThrough, so start <= closedThrough - size <= closedThrough - minSize.
    let bound = Math.max(dev.finalBefore, dev.maxTs - outOfOrderness - lateness - kind.minSizeMs + 1);
    for (const w of dev.windows) if (w.start + 1 > bound) bound = w.start + 1;
    for (const g of dev.groups.values()) {
      g.horizon.forEach((h, i) => {
        if (h !== NEVER) bound = Math.max(bound, h - kind.specs[i]!.sizeMs + 1);
      });
    }
    return bound;
  }

  /** Drops every trace of a device but its horizon; its unemitted windows must have been taken out of `dirty` first. */
  function forget(dev: DeviceState): void {
    remember(dev.kind.name + KEY_SEPARATOR + dev.deviceId, horizonOf(dev));
    activity.remove(dev);
    dev.kind.devices.delete(dev.deviceId);
    stats.devices--;
    stats.openWindows -= dev.windows.length;
    dev.groups.clear();
    dev.windows = [];
  }

  /** "emit-lru": the least recently active device is emitted (unemitted windows only) and forgotten. */
  function evictLeastRecent(): void {
    const victim = activity.head;
    if (victim === null) return;
    const due = victim.dirty;
    victim.dirty = [];
    forget(victim);
    stats.devicesEvicted++;
    // `dirty` is already in the device's emission order (end, group, spec).
    for (const w of due) emit(w);
  }

  function newGroup(dev: DeviceState, key: string, values: Readonly<Record<string, string>>): GroupState {
    const n = dev.kind.specs.length;
    const open: Win[][] = [];
    for (let i = 0; i < n; i++) open.push([]);
    const g: GroupState = { device: dev, key, values, open, horizon: new Array<number>(n).fill(NEVER), live: 0 };
    dev.groups.set(key, g);
    return g;
  }

  function groupOf(dev: DeviceState, reading: Reading): GroupState {
    const by = dev.kind.groupBy;
    let key = '';
    for (let i = 0; i < by.length; i++) {
      const s = groupValue(reading.values[by[i]!]);
      key = i === 0 ? s : key + GROUP_SEPARATOR + s;
    }
    const g = dev.groups.get(key);
    if (g !== undefined) return g;
    const values: Record<string, string> = {};
    for (const f of by) values[f] = groupValue(reading.values[f]);
    return newGroup(dev, key, Object.freeze(values));
  }

  function createWin(g: GroupState, spec: number, start: number, end: number, revision: number, acc: Float64Array): Win {
    const w: Win = { group: g, spec, start, end, revision, dirty: false, acc };
    const open = g.open[spec]!;
    let i = open.length;
    while (i > 0 && open[i - 1]!.start > start) i--;
    open.splice(i, 0, w);
    const all = g.device.windows;
    let j = all.length;
    while (j > 0 && all[j - 1]!.end > end) j--;
    all.splice(j, 0, w);
    g.live++;
    stats.openWindows++;
    return w;
  }

  function markDirty(w: Win): void {
    w.dirty = true;
    const list = w.group.device.dirty;
    let i = list.length;
    while (i > 0 && compareInDevice(list[i - 1]!, w) > 0) i--;
    list.splice(i, 0, w);
  }

  /** Detaches a window from its group (not from the device's lists). */
  function detach(w: Win): void {
    const g = w.group;
    const open = g.open[w.spec]!;
    if (open[0] === w) open.shift();
    else open.splice(open.indexOf(w), 1);
    g.live--;
    stats.openWindows--;
  }

  function removeFrom(list: Win[], w: Win): void {
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
  }

  /** "emit-oldest": the window with the smallest end (then spec) goes, emitted if it must be. */
  function evictOldest(g: GroupState): void {
    let victim: Win | undefined;
    for (const open of g.open) {
      const head = open[0];
      if (head !== undefined && (victim === undefined || head.end < victim.end)) victim = head;
    }
    if (victim === undefined) return;
    const dev = g.device;
    detach(victim);
    removeFrom(dev.windows, victim);
    g.horizon[victim.spec] = Math.max(g.horizon[victim.spec]!, victim.end);
    stats.evictions++;
    if (victim.dirty) {
      removeFrom(dev.dirty, victim);
      emit(victim);
    }
  }

  /** Applies a reading to one window unless that window is final; returns whether it did. */
  function applyTo(g: GroupState, spec: number, start: number, end: number, closedThrough: number, reading: Reading): boolean {
    if (end <= closedThrough || end <= g.horizon[spec]! || start < g.device.finalBefore) return false;
    const open = g.open[spec]!;
    let w: Win | undefined;
    for (let k = open.length - 1; k >= 0; k--) {
      const c = open[k]!;
      if (c.start === start) {
        w = c;
        break;
      }
      if (c.start < start) break;
    }
    if (w === undefined) w = createWin(g, spec, start, end, 0, new Float64Array(g.device.kind.agg.accLength));
    accumulate(g.device.kind.agg, w.acc, reading);
    if (!w.dirty) markDirty(w);
    if (g.live > maxOpen) evictOldest(g);
    return true;
  }

  /** Emits every window with unemitted data whose end the watermark has reached. */
  function fire(dev: DeviceState, watermark: number): void {
    const list = dev.dirty;
    let k = 0;
    while (k < list.length && list[k]!.end <= watermark) k++;
    if (k === 0) return;
    const due = list.splice(0, k);
    for (const w of due) emit(w);
  }

  /** Drops the state of windows beyond allowed lateness (they fired before, so are clean). */
  function close(dev: DeviceState, closedThrough: number): void {
    const list = dev.windows;
    let k = 0;
    while (k < list.length && list[k]!.end <= closedThrough) k++;
    if (k === 0) return;
    for (const w of list.splice(0, k)) {
      detach(w);
      const g = w.group;
      if (g.live === 0 && horizonsClosed(g, closedThrough)) dev.groups.delete(g.key);
    }
  }

  // ---- public surface -------------------------------------------------------------------

  function kindOf(reading: Reading): KindState {
    const kind = kinds.get(reading.kind);
    if (kind === undefined) throw new GatewayError('GW_ERR_UNKNOWN_KIND', `window engine: unknown kind "${reading.kind}"`);
    return kind;
  }

  /** The reading's event time as the watermark may count it (see "maxTs"). */
  function boundedTs(ts: number, receivedAt: number): number {
    if (ts > receivedAt + skew) {
      stats.futureReadings++;
      return receivedAt + skew;
    }
    return ts;
  }

  /** The reading's device, found or created, with the reading's arrival and event time taken in. */
  function deviceFor(kind: KindState, reading: Reading, now: number, receivedAt: number): DeviceState {
    const bounded = boundedTs(reading.ts, receivedAt);
    const dev = kind.devices.get(reading.deviceId);
    if (dev !== undefined) {
      dev.lastArrival = now;
      if (bounded > dev.maxTs) dev.maxTs = bounded;
      activity.touch(dev);
      return dev;
    }
    if (stats.devices >= maxDevices) evictLeastRecent();
    let finalBefore = NEVER;
    if (forgotten.size > 0) {
      const key = kind.name + KEY_SEPARATOR + reading.deviceId;
      const h = forgotten.get(key);
      if (h !== undefined) {
        // Back from being forgotten: the device carries its horizon again (and leaves it when forgotten anew).
        finalBefore = h;
        forgotten.delete(key);
        stats.horizons = forgotten.size;
      }
    }
    return newDevice(kind, reading.deviceId, bounded, now, finalBefore);
  }

  /** Whether every eviction horizon of the group is at or before `closedThrough` (nothing final to remember). */
  function horizonsClosed(g: GroupState, closedThrough: number): boolean {
    const h = g.horizon;
    for (let i = 0; i < h.length; i++) if (h[i]! > closedThrough) return false;
    return true;
  }

  /** Applies a reading to the windows of its device, whose maxTs already counts it; fires and closes what it moved past. */
  function apply(dev: DeviceState, reading: Reading): void {
    const kind = dev.kind;
    const ts = reading.ts;
    const watermark = dev.maxTs - outOfOrderness;
    const closedThrough = watermark - lateness;
    const g = groupOf(dev, reading);
    const specs = kind.specs;
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      let applied = false;
      if (spec.tumbling) {
        const start = Math.floor(ts / spec.sizeMs) * spec.sizeMs;
        applied = applyTo(g, i, start, start + spec.sizeMs, closedThrough, reading);
      } else {
        // Every window [s, s + size) with s a multiple of slide and s <= ts < s + size, oldest first.
        const newest = Math.floor(ts / spec.slideMs) * spec.slideMs;
        let s = newest;
        while (s - spec.slideMs > ts - spec.sizeMs) s -= spec.slideMs;
        for (; s <= newest; s += spec.slideMs) {
          if (applyTo(g, i, s, s + spec.sizeMs, closedThrough, reading)) applied = true;
        }
      }
      if (!applied) {
        stats.lateDropped++;
        for (const l of lateListeners) l(reading, spec.sizeMs, spec.slideMs);
      }
    }
    const firstDirty = dev.dirty[0];
    if (firstDirty !== undefined && firstDirty.end <= watermark) fire(dev, watermark);
    const firstWin = dev.windows[0];
    if (firstWin !== undefined && firstWin.end <= closedThrough) close(dev, closedThrough);
    if (g.live === 0 && dev.groups.get(g.key) === g && horizonsClosed(g, closedThrough)) {
      // A group whose only reading was late leaves nothing behind.
      dev.groups.delete(g.key);
    }
  }

  function add(reading: Reading, now = clock.now(), receivedAt = now): void {
    apply(deviceFor(kindOf(reading), reading, now, receivedAt), reading);
  }

  function addMany(readings: readonly Reading[], now = clock.now(), receivedAt = now): void {
    let i = 0;
    while (i < readings.length) {
      const first = readings[i++]!;
      const dev = deviceFor(kindOf(first), first, now, receivedAt);
      apply(dev, first);
      // The rest of a run from the same device skips the lookups: it was just given `now` and
      // is the most recently active device (the activity list's tail) while nothing forgot it.
      for (; i < readings.length; i++) {
        const r = readings[i]!;
        if (r.deviceId !== first.deviceId || r.kind !== first.kind || activity.tail !== dev) break;
        const bounded = boundedTs(r.ts, receivedAt);
        if (bounded > dev.maxTs) dev.maxTs = bounded;
        apply(dev, r);
      }
    }
  }

  function tick(): void {
    const now = clock.now();
    const due: Win[] = [];
    for (let dev = activity.head; dev !== null; ) {
      const next = dev.next;
      const silence = now - dev.lastArrival;
      if (silence >= idleTimeout) {
        if (dev.dirty.length > 0) {
          stats.idleEmissions += dev.dirty.length;
          for (const w of dev.dirty) due.push(w);
          dev.dirty = [];
        }
        if (silence >= idleTimeout + lateness) {
          // Every window fired (just above, at the latest) and is past allowed lateness by the
          // clock: nothing of the device needs to stay.
          forget(dev);
          stats.devicesExpired++;
        }
      }
      dev = next;
    }
    expireHorizons(now);
    emitSorted(due);
  }

  /** Oldest forgotten first, up to the first horizon still needed (see "horizon"). */
  function expireHorizons(now: number): void {
    const limit = now - maxPastAge - maxSizeMs;
    for (const [key, finalBefore] of forgotten) {
      if (finalBefore > limit) break;
      forgotten.delete(key);
      stats.horizonsExpired++;
    }
    stats.horizons = forgotten.size;
  }

  function flush(): void {
    const due: Win[] = [];
    for (let dev = activity.head; dev !== null; dev = dev.next) {
      if (dev.dirty.length === 0) continue;
      for (const w of dev.dirty) due.push(w);
      dev.dirty = [];
    }
    emitSorted(due);
  }

  function snapshot(): WindowSnapshot {
    const devices: DeviceSnapshot[] = [];
    // In activity order, least recent first: restore() rebuilds the same eviction order.
    for (let dev = activity.head; dev !== null; dev = dev.next) {
      const kind = dev.kind;
      const groups: GroupSnapshot[] = [];
      for (const g of dev.groups.values()) {
        const horizons: [number, number, number][] = [];
        const windows: number[][] = [];
        g.horizon.forEach((h, i) => {
          const spec = kind.specs[i]!;
          if (h !== NEVER) horizons.push([spec.sizeMs, spec.slideMs, h]);
        });
        g.open.forEach((open, i) => {
          const spec = kind.specs[i]!;
          for (const w of open) windows.push([spec.sizeMs, spec.slideMs, w.start, w.revision, w.dirty ? 1 : 0, ...w.acc]);
        });
        groups.push({ group: { ...g.values }, horizons, windows });
      }
      const d: DeviceSnapshot = { kind: kind.name, deviceId: dev.deviceId, maxTs: dev.maxTs, lastArrival: dev.lastArrival, lateBefore: NEVER, groups };
      devices.push(dev.finalBefore === NEVER ? d : { ...d, finalBefore: dev.finalBefore });
    }
    return { format: SNAPSHOT_FORMAT, takenAt: clock.now(), maxWatermarkSkewMs: skew, devices, forgotten: encodeHorizons() };
  }

  /** Oldest first: kind index, device id, finalBefore minus the previous entry's (small numbers in JSON). */
  function encodeHorizons(): HorizonsSnapshot {
    const names: string[] = [];
    const index = new Map<string, number>();
    const entries: (number | string)[] = [];
    let previous = 0;
    for (const [key, finalBefore] of forgotten) {
      const cut = key.indexOf(KEY_SEPARATOR);
      const name = key.slice(0, cut);
      let k = index.get(name);
      if (k === undefined) {
        k = names.length;
        names.push(name);
        index.set(name, k);
      }
      entries.push(k, key.slice(cut + 1), finalBefore - previous);
      previous = finalBefore;
    }
    return { kinds: names, entries };
  }

  function restoreHorizons(h: HorizonsSnapshot): void {
    let previous = 0;
    for (let i = 0; i + 2 < h.entries.length; i += 3) {
      const k = h.entries[i];
      const deviceId = h.entries[i + 1];
      const delta = h.entries[i + 2];
      if (typeof k !== 'number' || typeof deviceId !== 'string' || typeof delta !== 'number') break;
      const finalBefore = previous + delta;
      previous = finalBefore;
      const name = h.kinds[k];
      // A kind no longer configured has no windows to protect.
      if (name === undefined || !kinds.has(name)) continue;
      remember(name + KEY_SEPARATOR + deviceId, finalBefore);
    }
  }

  function restore(state: unknown): void {
    if (!isSnapshot(state)) {
      throw new GatewayError('GW_ERR_CHECKPOINT', `window engine: not a ${SNAPSHOT_FORMAT} snapshot`);
    }
    for (const kind of kinds.values()) kind.devices.clear();
    activity.clear();
    forgotten.clear();
    stats.horizons = 0;
    const downtime = state.takenAt === undefined ? 0 : Math.max(0, clock.now() - state.takenAt);
    // A snapshot without maxWatermarkSkewMs predates the bound: its maxTs may sit far in the
    // future. No reading before it was received after takenAt, so takenAt + skew caps it as the
    // current rule would have.
    const maxTsCap = state.maxWatermarkSkewMs === undefined && state.takenAt !== undefined ? state.takenAt + skew : Infinity;
    stats.devices = 0;
    stats.openWindows = 0;
    // Older snapshots have no horizons; their expired devices come below, as bare lateBefore.
    if (state.forgotten !== undefined) restoreHorizons(state.forgotten);
    // Windows of a kind, size or group-by no longer configured are dropped: they cannot be emitted
    // under an identity the current configuration knows.
    for (const d of state.devices) {
      const kind = kinds.get(d.kind);
      if (kind === undefined) continue;
      // An older format kept silent devices as a bare horizon (lateBefore, no groups): windows
      // ending at or before it were final. As a start bound: end <= lateBefore gives
      // start <= lateBefore - minSize.
      if (d.groups.length === 0 && d.lateBefore !== NEVER) {
        const key = kind.name + KEY_SEPARATOR + d.deviceId;
        if (!kind.devices.has(d.deviceId) && !forgotten.has(key)) remember(key, d.lateBefore - kind.minSizeMs + 1);
        continue;
      }
      if (kind.devices.has(d.deviceId)) continue;
      if (stats.devices >= maxDevices) evictLeastRecent();
      // The time the gateway was down is not device silence: arrival times move forward by it, or
      // a restart after idleTimeoutMs + allowedLatenessMs would close every half-filled window.
      const dev = newDevice(kind, d.deviceId, Math.min(d.maxTs, maxTsCap), d.lastArrival + downtime, d.finalBefore ?? NEVER);
      const key = kind.name + KEY_SEPARATOR + d.deviceId;
      if (forgotten.has(key)) {
        // Not in snapshots this engine takes (a live device holds no horizon entry); keep the larger bound.
        dev.finalBefore = Math.max(dev.finalBefore, forgotten.get(key)!);
        forgotten.delete(key);
        stats.horizons = forgotten.size;
      }
      for (const gs of d.groups) {
        const values: Record<string, string> = {};
        let complete = true;
        for (const f of kind.groupBy) {
          const v = gs.group[f];
          if (typeof v !== 'string') complete = false;
          else values[f] = v;
        }
        if (!complete) continue;
        const key = kind.groupBy.map((f) => values[f]).join(GROUP_SEPARATOR);
        const g = newGroup(dev, key, Object.freeze(values));
        for (const [sizeMs, slideMs, h] of gs.horizons) {
          const i = specIndex(kind, sizeMs, slideMs);
          if (i >= 0) g.horizon[i] = h;
        }
        for (const row of gs.windows) {
          const [sizeMs, slideMs, start, revision, dirty] = row as [number, number, number, number, number];
          const i = specIndex(kind, sizeMs, slideMs);
          if (i < 0 || row.length !== 5 + kind.agg.accLength) continue;
          const w = createWin(g, i, start, start + sizeMs, revision, Float64Array.from(row.slice(5)));
          if (dirty === 1) markDirty(w);
        }
      }
    }
  }

  return {
    name: 'windows',
    add,
    addMany,
    tick,
    flush,
    snapshot,
    restore,
    onEmit(listener) {
      emitListeners.push(listener);
    },
    onLate(listener) {
      lateListeners.push(listener);
    },
    stats,
  };
}

// ---- snapshot format ----------------------------------------------------------------------

interface WindowSnapshot {
  readonly format: typeof SNAPSHOT_FORMAT;
  /** Clock time of the snapshot: what passes between it and restore() is downtime, not silence. */
  readonly takenAt?: number;
  /** The skew maxTs was bounded with; absent in snapshots taken before the bound existed. */
  readonly maxWatermarkSkewMs?: number;
  /** Least recently active first. */
  readonly devices: DeviceSnapshot[];
  /** Forgotten devices' horizons; absent in snapshots taken before they were kept. */
  readonly forgotten?: HorizonsSnapshot;
}

interface HorizonsSnapshot {
  readonly kinds: string[];
  /** Oldest forgotten first, three items each: index into kinds, deviceId, finalBefore - previous entry's (0 for the first). */
  readonly entries: (number | string)[];
}

interface DeviceSnapshot {
  readonly kind: string;
  readonly deviceId: string;
  /** Bounded, see the time model. */
  readonly maxTs: number;
  readonly lastArrival: number;
  /** Always NEVER now (kept so an older gateway can still restore the snapshot); older ones set it for expired devices. */
  readonly lateBefore: number;
  /** Windows starting before this are final (the device was forgotten once); absent = none. */
  readonly finalBefore?: number;
  readonly groups: GroupSnapshot[];
}

interface GroupSnapshot {
  readonly group: Record<string, string>;
  /** [sizeMs, slideMs, horizon] for specs with an eviction horizon. */
  readonly horizons: [number, number, number][];
  /** [sizeMs, slideMs, start, revision, dirty (0|1), ...accumulator]. */
  readonly windows: number[][];
}

function isSnapshot(v: unknown): v is WindowSnapshot {
  if (!isObject(v) || v['format'] !== SNAPSHOT_FORMAT || !Array.isArray(v['devices'])) return false;
  if (v['takenAt'] !== undefined && !isNum(v['takenAt'])) return false;
  if (v['maxWatermarkSkewMs'] !== undefined && !isNum(v['maxWatermarkSkewMs'])) return false;
  const f = v['forgotten'];
  if (f !== undefined) {
    if (!isObject(f) || !Array.isArray(f['kinds']) || !f['kinds'].every((k: unknown) => typeof k === 'string')) return false;
    const e = f['entries'];
    if (!Array.isArray(e) || e.length % 3 !== 0) return false;
    for (let i = 0; i < e.length; i += 3) {
      if (!Number.isInteger(e[i]) || typeof e[i + 1] !== 'string' || !isNum(e[i + 2])) return false;
    }
  }
  return v['devices'].every(
    (d: unknown) =>
      isObject(d) &&
      typeof d['kind'] === 'string' &&
      typeof d['deviceId'] === 'string' &&
      isNum(d['maxTs']) &&
      isNum(d['lastArrival']) &&
      isNum(d['lateBefore']) &&
      (d['finalBefore'] === undefined || isNum(d['finalBefore'])) &&
      Array.isArray(d['groups']) &&
      d['groups'].every(
        (g: unknown) =>
          isObject(g) &&
          isObject(g['group']) &&
          Array.isArray(g['horizons']) &&
          g['horizons'].every((h: unknown) => Array.isArray(h) && h.length === 3 && h.every(isNum)) &&
          Array.isArray(g['windows']) &&
          g['windows'].every((w: unknown) => Array.isArray(w) && w.length >= 5 && w.every(isNum)),
      ),
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function specIndex(kind: KindState, sizeMs: number, slideMs: number): number {
  return kind.specs.findIndex((s) => s.sizeMs === sizeMs && s.slideMs === slideMs);
}

function groupValue(v: number | string | undefined): string {
  // A reading without an (optional) group-by field falls in the '' group.
  return typeof v === 'string' ? v : v === undefined ? '' : String(v);
}

/** Code-unit order: deterministic and locale-free. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
