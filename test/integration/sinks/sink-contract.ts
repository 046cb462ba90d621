import { afterEach, describe, expect, it } from 'vitest';
import type { SinksConfig } from '../../../gateway/config/config.js';
import { isGatewayError } from '../../../gateway/errors.js';
import { MAX_QUERY_TIME_MS } from '../../../gateway/http/http-server.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import type { AlertQuery, Sink, SinkBatch } from '../../../gateway/sinks/types.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import { ALERT_WIRE_VERSION, alertId, type AlertEvent } from '../../../gateway/wire/alert.js';

/**
 * One suite every sink must pass (write, read back, idempotent resends, query filters, close).
 * A harness creates a fresh, empty store per test.
 */
export interface SinkContractHarness {
  readonly name: string;
  create(overrides?: Partial<SinksConfig>): Promise<Sink>;
}

export function baseSinksConfig(overrides: Partial<SinksConfig> = {}): SinksConfig {
  return {
    influxUrl: null,
    rawRetention: '7d',
    windowRetention: '520w',
    writeRawReadings: true,
    batchMaxPoints: 5000,
    maxBatchesPerWrite: 4,
    flushIntervalMs: 1000,
    retryInitialMs: 200,
    retryMaxMs: 30_000,
    healthIntervalMs: 5000,
    shutdownDrainMs: 10_000,
    embeddedPath: ':memory:',
    ...overrides,
  };
}

/** An hour ago, aligned to the minute: inside every retention policy, and window-aligned. */
export const BASE_TS = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
const FOREVER = { from: 0, to: Date.now() + 86_400_000 };

export function heartRateReading(deviceId: string, seq: number, ts: number, bpm: number, rrMs?: number): Reading {
  return { kind: 'heart-rate', deviceId, seq, ts, values: rrMs === undefined ? { bpm } : { bpm, rrMs } };
}

export function bridgeReading(deviceId: string, seq: number, ts: number, lane: number, vehicleClass: string, speedKmh: number, weightKg?: number): Reading {
  return {
    kind: 'bridge',
    deviceId,
    seq,
    ts,
    values: { lane, vehicleClass, speedKmh, axles: vehicleClass === 'TRUCK' ? 5 : 2, ...(weightKg === undefined ? {} : { weightKg }) },
  };
}

export function heartRateWindow(deviceId: string, start: number, sizeMs: number, bpms: readonly number[], revision = 0): WindowResult {
  const sum = bpms.reduce((a, b) => a + b, 0);
  return {
    kind: 'heart-rate',
    deviceId,
    sizeMs,
    slideMs: sizeMs,
    start,
    end: start + sizeMs,
    group: {},
    values: {
      bpm_count: bpms.length,
      bpm_min: Math.min(...bpms),
      bpm_max: Math.max(...bpms),
      bpm_sum: sum,
      bpm_mean: sum / bpms.length,
      bpm_last: bpms[bpms.length - 1] ?? 0,
    },
    revision,
  };
}

export function bridgeWindow(deviceId: string, start: number, sizeMs: number, vehicleClass: string, lane: number, count: number, meanKmh: number, revision = 0): WindowResult {
  return {
    kind: 'bridge',
    deviceId,
    sizeMs,
    slideMs: sizeMs,
    start,
    end: start + sizeMs,
    group: { vehicleClass, lane: String(lane) },
    values: { count, speedKmh_mean: meanKmh, speedKmh_max: meanKmh + 12.5 },
    revision,
  };
}

/**
 * One alert transition as the engine tells it, with the offset of its log record. FIRING at
 * `at`; RESOLVED (resolvedAt) at `at` too, the episode having fired `firedAgoMs` before.
 */
export function alertEvent(o: {
  rule?: string;
  ruleKind?: AlertEvent['ruleKind'];
  severity?: AlertEvent['severity'];
  state?: AlertEvent['state'];
  kind?: string;
  deviceId?: string;
  group?: Record<string, string>;
  episodeStart: number;
  at: number;
  firedAgoMs?: number;
  offset: number;
  value?: number | null;
  summary?: string;
}): AlertEvent {
  const state = o.state ?? 'FIRING';
  const rule = o.rule ?? 'heart-rate-spike';
  const deviceId = o.deviceId ?? 'athlete-1';
  const group = o.group ?? {};
  const key = Object.keys(group).length === 0 ? deviceId : `${deviceId}/${Object.keys(group).sort().map((k) => `${k}=${group[k]}`).join(',')}`;
  const silence = o.ruleKind === 'silence';
  return {
    v: ALERT_WIRE_VERSION,
    id: alertId(rule, key, o.episodeStart),
    rule,
    ruleKind: o.ruleKind ?? 'threshold',
    severity: o.severity ?? 'critical',
    state,
    kind: o.kind ?? 'heart-rate',
    deviceId,
    group,
    value: o.value === undefined ? 204.5 : o.value,
    threshold: silence && state === 'RESOLVED' ? null : state === 'FIRING' ? 200 : 190,
    windowStart: silence ? null : o.at - 10_000,
    windowEnd: silence ? null : o.at,
    episodeStart: o.episodeStart,
    firedAt: state === 'FIRING' ? o.at : o.at - (o.firedAgoMs ?? 20_000),
    resolvedAt: state === 'RESOLVED' ? o.at : null,
    summary: o.summary ?? `${rule}: ${deviceId} ${state}`,
    offset: o.offset,
  };
}

function batch(parts: Partial<SinkBatch>): SinkBatch {
  return { readings: parts.readings ?? [], windows: parts.windows ?? [], health: parts.health ?? [], ...(parts.alerts !== undefined ? { alerts: parts.alerts } : {}) };
}

const alertTimeOf = (a: AlertEvent): number => (a.state === 'RESOLVED' ? a.resolvedAt! : a.firedAt);
const byAlertTime = (as: readonly AlertEvent[]): AlertEvent[] => [...as].sort((a, b) => alertTimeOf(a) - alertTimeOf(b) || a.offset - b.offset);

/** A sink that ages out its own rows (the embedded store) does it now; InfluxDB does it by itself. */
async function applyRetention(sink: Sink, nowMs: number): Promise<void> {
  const retaining = sink as Sink & { applyRetention?: (now: number) => unknown };
  if (typeof retaining.applyRetention === 'function') await retaining.applyRetention(nowMs);
}

const readingKey = (r: Reading): string => `${r.kind}|${r.deviceId}|${String(r.ts).padStart(15, '0')}|${String(r.seq).padStart(12, '0')}`;
const windowKey = (w: WindowResult): string =>
  `${w.kind}|${w.deviceId}|${w.sizeMs}|${String(w.start).padStart(15, '0')}|${JSON.stringify(Object.entries(w.group).sort())}`;

function sortedReadings(rs: readonly Reading[]): Reading[] {
  return [...rs].sort((a, b) => readingKey(a).localeCompare(readingKey(b)));
}
function sortedWindows(ws: readonly WindowResult[]): WindowResult[] {
  return [...ws].sort((a, b) => windowKey(a).localeCompare(windowKey(b)));
}

function expectTimeOrdered(values: readonly number[]): void {
  for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThanOrEqual(values[i - 1]!);
}

export function runSinkContract(harness: SinkContractHarness): void {
  describe(`${harness.name} sink (contract)`, () => {
    const open: Sink[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });
    async function fresh(overrides?: Partial<SinksConfig>): Promise<Sink> {
      const sink = await harness.create(overrides);
      open.push(sink);
      await sink.start();
      return sink;
    }

    const hrReadings = [
      heartRateReading('athlete-1', 1, BASE_TS + 200, 71, 845),
      heartRateReading('athlete-1', 2, BASE_TS + 400, 73),
      heartRateReading('athlete-2', 1, BASE_TS + 200, 128, 469),
    ];
    const bridgeReadings = [
      bridgeReading('bridge-a', 7, BASE_TS + 1_000, 1, 'CAR', 87.25),
      bridgeReading('bridge-a', 8, BASE_TS + 1_500, 2, 'TRUCK', 71.5, 32_000.5),
    ];
    const windows = [
      heartRateWindow('athlete-1', BASE_TS, 10_000, [71, 73]),
      heartRateWindow('athlete-1', BASE_TS, 60_000, [71, 73, 75]),
      bridgeWindow('bridge-a', BASE_TS, 60_000, 'CAR', 1, 1, 87.25),
      bridgeWindow('bridge-a', BASE_TS, 60_000, 'TRUCK', 2, 1, 71.5),
    ];

    it('should read back readings and windows exactly as written', async () => {
      const sink = await fresh();
      await sink.write(batch({ readings: [...hrReadings, ...bridgeReadings], windows, health: [{ ts: BASE_TS, values: { readings_per_s: 12.5, heap_mb: 48 } }] }));

      const hr = await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 100 });
      expect(sortedReadings(hr)).toEqual(sortedReadings(hrReadings));
      const br = await sink.queryReadings({ kind: 'bridge', ...FOREVER, limit: 100 });
      expect(sortedReadings(br)).toEqual(sortedReadings(bridgeReadings));
      const hw = await sink.queryWindows({ kind: 'heart-rate', ...FOREVER, limit: 100 });
      expect(sortedWindows(hw)).toEqual(sortedWindows(windows.filter((w) => w.kind === 'heart-rate')));
      const bw = await sink.queryWindows({ kind: 'bridge', ...FOREVER, limit: 100 });
      expect(sortedWindows(bw)).toEqual(sortedWindows(windows.filter((w) => w.kind === 'bridge')));
    });

    it('should keep every reading when several share one millisecond', async () => {
      const sink = await fresh();
      // A batch from one strap carries one timestamp; a bridge sees two lanes at once.
      const same = [0, 1, 2, 3, 4].map((i) => heartRateReading('athlete-1', 100 + i, BASE_TS + 5_000, 80 + i));
      const lanes = [bridgeReading('bridge-a', 1, BASE_TS + 5_000, 1, 'CAR', 90), bridgeReading('bridge-a', 2, BASE_TS + 5_000, 2, 'CAR', 91)];
      await sink.write(batch({ readings: [...same, ...lanes] }));
      expect(sortedReadings(await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 100 }))).toEqual(sortedReadings(same));
      expect(sortedReadings(await sink.queryReadings({ kind: 'bridge', ...FOREVER, limit: 100 }))).toEqual(sortedReadings(lanes));
    });

    it('should store nothing twice when the same batch is written again', async () => {
      const sink = await fresh();
      const b = batch({ readings: [...hrReadings, ...bridgeReadings], windows });
      await sink.write(b);
      await sink.write(b);
      expect(await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 100 })).toHaveLength(hrReadings.length);
      expect(await sink.queryReadings({ kind: 'bridge', ...FOREVER, limit: 100 })).toHaveLength(bridgeReadings.length);
      expect(await sink.queryWindows({ kind: 'heart-rate', ...FOREVER, limit: 100 })).toHaveLength(2);
      expect(await sink.queryWindows({ kind: 'bridge', ...FOREVER, limit: 100 })).toHaveLength(2);
    });

    it('should let a window correction overwrite the first emission', async () => {
      const sink = await fresh();
      await sink.write(batch({ windows: [heartRateWindow('athlete-1', BASE_TS, 10_000, [70, 72], 0), bridgeWindow('bridge-a', BASE_TS, 60_000, 'TRUCK', 2, 3, 70)] }));
      const corrected = [heartRateWindow('athlete-1', BASE_TS, 10_000, [70, 72, 90], 1), bridgeWindow('bridge-a', BASE_TS, 60_000, 'TRUCK', 2, 4, 68, 1)];
      await sink.write(batch({ windows: corrected }));
      expect(await sink.queryWindows({ kind: 'heart-rate', ...FOREVER, limit: 100 })).toEqual([corrected[0]]);
      expect(await sink.queryWindows({ kind: 'bridge', ...FOREVER, limit: 100 })).toEqual([corrected[1]]);
    });

    it('should keep windows of different groups and sizes apart', async () => {
      const sink = await fresh();
      const ws = [
        bridgeWindow('bridge-a', BASE_TS, 60_000, 'CAR', 1, 10, 80),
        bridgeWindow('bridge-a', BASE_TS, 60_000, 'CAR', 2, 11, 81),
        bridgeWindow('bridge-a', BASE_TS, 60_000, 'TRUCK', 1, 2, 70),
        bridgeWindow('bridge-a', BASE_TS, 10_000, 'CAR', 1, 3, 82),
        bridgeWindow('bridge-b', BASE_TS, 60_000, 'CAR', 1, 4, 83),
      ];
      await sink.write(batch({ windows: ws }));
      expect(sortedWindows(await sink.queryWindows({ kind: 'bridge', ...FOREVER, limit: 100 }))).toEqual(sortedWindows(ws));
    });

    it('should filter windows by device, size, time range and limit', async () => {
      const sink = await fresh();
      const ws: WindowResult[] = [];
      for (let i = 0; i < 6; i++) {
        ws.push(heartRateWindow('athlete-1', BASE_TS + i * 10_000, 10_000, [70 + i]));
        ws.push(heartRateWindow('athlete-2', BASE_TS + i * 10_000, 10_000, [90 + i]));
      }
      ws.push(heartRateWindow('athlete-1', BASE_TS, 60_000, [70, 71, 72, 73, 74, 75]));
      await sink.write(batch({ windows: ws }));

      const byDevice = await sink.queryWindows({ kind: 'heart-rate', deviceId: 'athlete-2', ...FOREVER, limit: 100 });
      expect(sortedWindows(byDevice)).toEqual(sortedWindows(ws.filter((w) => w.deviceId === 'athlete-2')));

      const bySize = await sink.queryWindows({ kind: 'heart-rate', deviceId: 'athlete-1', sizeMs: 60_000, ...FOREVER, limit: 100 });
      expect(bySize).toEqual([ws[ws.length - 1]]);

      // [from, to): a window starting at `to` is outside.
      const ranged = await sink.queryWindows({ kind: 'heart-rate', deviceId: 'athlete-1', sizeMs: 10_000, from: BASE_TS + 10_000, to: BASE_TS + 40_000, limit: 100 });
      expect(ranged.map((w) => w.start)).toEqual([BASE_TS + 10_000, BASE_TS + 20_000, BASE_TS + 30_000]);

      const limited = await sink.queryWindows({ kind: 'heart-rate', deviceId: 'athlete-1', sizeMs: 10_000, ...FOREVER, limit: 2 });
      expect(limited.map((w) => w.start)).toEqual([BASE_TS, BASE_TS + 10_000]);

      const all = await sink.queryWindows({ kind: 'heart-rate', ...FOREVER, limit: 5 });
      expect(all).toHaveLength(5);
      expectTimeOrdered(all.map((w) => w.start));

      expect(await sink.queryWindows({ kind: 'bridge', ...FOREVER, limit: 100 })).toEqual([]);
      expect(await sink.queryWindows({ kind: 'heart-rate', deviceId: 'nobody', ...FOREVER, limit: 100 })).toEqual([]);
    });

    it('should filter readings by device, time range and limit', async () => {
      const sink = await fresh();
      const rs: Reading[] = [];
      for (let i = 0; i < 10; i++) {
        rs.push(heartRateReading('athlete-1', i, BASE_TS + i * 200, 70 + i));
        rs.push(heartRateReading('athlete-2', i, BASE_TS + i * 200 + 1, 100 + i));
      }
      await sink.write(batch({ readings: rs }));

      const byDevice = await sink.queryReadings({ kind: 'heart-rate', deviceId: 'athlete-1', ...FOREVER, limit: 100 });
      expect(byDevice).toEqual(rs.filter((r) => r.deviceId === 'athlete-1'));

      const ranged = await sink.queryReadings({ kind: 'heart-rate', deviceId: 'athlete-2', from: BASE_TS + 401, to: BASE_TS + 1001, limit: 100 });
      expect(ranged.map((r) => r.seq)).toEqual([2, 3, 4]);

      const limited = await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 3 });
      expect(limited.map((r) => [r.deviceId, r.seq])).toEqual([
        ['athlete-1', 0],
        ['athlete-2', 0],
        ['athlete-1', 1],
      ]);
      expect(await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 0 })).toEqual([]);
    });

    it('to=9999999999999 overflowed InfluxDB ("overflowed duration", reported as GW_ERR_SINK_WRITE): a far-future bound reads as no upper bound', async () => {
      const sink = await fresh();
      await sink.write(batch({ readings: hrReadings, windows }));
      // 2286-11-20, and the last instant a JavaScript Date holds (what the HTTP API clamps to).
      for (const to of [9_999_999_999_999, MAX_QUERY_TIME_MS]) {
        expect(sortedReadings(await sink.queryReadings({ kind: 'heart-rate', from: 0, to, limit: 100 })), String(to)).toEqual(sortedReadings(hrReadings));
        expect(await sink.queryWindows({ kind: 'heart-rate', from: BASE_TS, to, limit: 100 }), String(to)).toHaveLength(2);
        expect(await sink.queryReadings({ kind: 'heart-rate', from: to - 1, to, limit: 100 }), String(to)).toEqual([]);
      }
    });

    it('should write a batch larger than batchMaxPoints completely', async () => {
      const sink = await fresh({ batchMaxPoints: 7 });
      const rs = Array.from({ length: 40 }, (_, i) => heartRateReading('athlete-1', i, BASE_TS + i * 10, 60 + (i % 50)));
      await sink.write(batch({ readings: rs, windows: [heartRateWindow('athlete-1', BASE_TS, 10_000, [60])] }));
      expect(await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 100 })).toEqual(rs);
    });

    it('should store the raw readings a batch holds also with writeRawReadings off: the setting chose them when batching', async () => {
      // A batch logged while raw readings were on is delivered after a restart with them off; a
      // replay after a later crash passes over its readings (SinkBatch.covers), so dropping them here would lose them.
      const sink = await fresh({ writeRawReadings: false });
      await sink.write(batch({ readings: hrReadings, windows: [windows[0]!] }));
      expect(sortedReadings(await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 100 }))).toEqual(sortedReadings(hrReadings));
      expect(await sink.queryWindows({ kind: 'heart-rate', ...FOREVER, limit: 100 })).toEqual([windows[0]]);
    });

    it('should accept an empty batch and a health-only batch', async () => {
      const sink = await fresh();
      await sink.write(batch({}));
      await sink.write(batch({ health: [{ ts: BASE_TS, values: { readings_per_s: 1, sink_lag_ms: 0 } }] }));
      expect(await sink.queryReadings({ kind: 'heart-rate', ...FOREVER, limit: 100 })).toEqual([]);
    });

    it('should refuse a reading of an unknown kind without retrying', async () => {
      const sink = await fresh();
      const err = await sink.write(batch({ readings: [{ kind: 'toaster', deviceId: 't', seq: 1, ts: BASE_TS, values: { c: 1 } }] })).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isGatewayError(err, 'GW_ERR_SINK_WRITE')).toBe(true);
      expect((err as { retryable: boolean }).retryable).toBe(false);
    });

    describe('alerts', () => {
      const spikeStart = BASE_TS + 10_000;
      const episode = [
        alertEvent({ episodeStart: spikeStart, at: spikeStart + 10_000, offset: 1_000 }),
        alertEvent({ episodeStart: spikeStart, at: spikeStart + 40_000, firedAgoMs: 30_000, state: 'RESOLVED', value: 150, offset: 1_200 }),
      ];
      const truck = alertEvent({ rule: 'bridge-truck-surge', severity: 'warning', kind: 'bridge', deviceId: 'bridge-a', group: { lane: '2' }, episodeStart: BASE_TS, at: BASE_TS + 60_000, value: 31, offset: 1_100 });
      const silent = alertEvent({ rule: 'device-silent', ruleKind: 'silence', severity: 'warning', deviceId: 'athlete-2', episodeStart: BASE_TS + 5_000, at: BASE_TS + 35_000, value: 30, offset: 1_050 });
      const all = [...episode, truck, silent];
      const history = (sink: Sink, q: Partial<AlertQuery> = {}) => sink.queryAlerts({ ...FOREVER, limit: 100, ...q });

      it('should read back alert transitions exactly as written, in time order', async () => {
        const sink = await fresh();
        await sink.write(batch({ alerts: all, windows: [windows[0]!] }));
        expect(await history(sink)).toEqual(byAlertTime(all));
        // The windows of the same batch are stored too.
        expect(await sink.queryWindows({ kind: 'heart-rate', ...FOREVER, limit: 100 })).toEqual([windows[0]]);
      });

      it('should overwrite a transition told again after a restart (same id and state), not add one', async () => {
        const sink = await fresh();
        await sink.write(batch({ alerts: all }));
        // Told again: the same id and state, a value and summary that differ (a silence check at another moment).
        const retold = { ...silent, value: 42, summary: 'device-silent: athlete-2 silent for 42 s' };
        await sink.write(batch({ alerts: [retold, episode[0]!] }));
        await sink.write(batch({ alerts: [retold] }));
        expect(await history(sink)).toEqual(byAlertTime([...episode, truck, retold]));
      });

      it('should keep two episodes of one key that fire in the same millisecond apart', async () => {
        const sink = await fresh();
        const at = BASE_TS + 90_000;
        const first = alertEvent({ episodeStart: BASE_TS + 70_000, at, offset: 2_000 });
        const second = alertEvent({ episodeStart: BASE_TS + 80_000, at, offset: 2_001 });
        await sink.write(batch({ alerts: [second, first] }));
        expect(await history(sink)).toEqual([first, second]);
      });

      it('should answer history queries in [from, to) of firedAt / resolvedAt, filtered by kind, device glob, rule, severity and limit', async () => {
        const sink = await fresh();
        await sink.write(batch({ alerts: all }));
        const fired = episode[0]!;
        const resolved = episode[1]!;
        // [from, to): the FIRING at `from` is in, the RESOLVED at `to` is out.
        // (the silence fired between the two; the truck surge after both)
        expect(await history(sink, { from: fired.firedAt, to: resolved.resolvedAt! })).toEqual([fired, silent]);
        expect(await history(sink, { from: fired.firedAt + 1, to: resolved.resolvedAt! + 1 })).toEqual([silent, resolved]);
        expect(await history(sink, { kind: 'bridge' })).toEqual([truck]);
        expect(await history(sink, { device: 'athlete-?' })).toEqual(byAlertTime([...episode, silent]));
        expect(await history(sink, { device: 'bridge*' })).toEqual([truck]);
        expect(await history(sink, { device: 'athlete' })).toEqual([]);
        expect(await history(sink, { rule: 'heart-rate-spike' })).toEqual(episode);
        expect(await history(sink, { severity: 'warning' })).toEqual(byAlertTime([truck, silent]));
        expect(await history(sink, { severity: 'info' })).toEqual([]);
        expect(await history(sink, { limit: 2 })).toEqual(byAlertTime(all).slice(0, 2));
        expect(await history(sink, { limit: 0 })).toEqual([]);
        expect(await history(sink, { from: 0, to: MAX_QUERY_TIME_MS })).toHaveLength(all.length);
      });

      it('should keep glob metacharacters of other languages literal in a device filter', async () => {
        const sink = await fresh();
        const odd = alertEvent({ deviceId: 'a.b[1]/c', episodeStart: BASE_TS, at: BASE_TS + 10_000, offset: 3_000 });
        const near = alertEvent({ deviceId: 'aXb[1]/c', episodeStart: BASE_TS, at: BASE_TS + 10_000, offset: 3_001 });
        await sink.write(batch({ alerts: [odd, near] }));
        expect(await history(sink, { device: 'a.b[1]/c' })).toEqual([odd]);
        expect(await history(sink, { device: 'a?b[1]/*' })).toEqual([odd, near]);
      });

      it('should keep alerts for windowRetention and no longer', async () => {
        const sink = await fresh({ windowRetention: '1h' });
        const now = Date.now();
        const old = alertEvent({ episodeStart: now - 2 * 3_600_000 - 10_000, at: now - 2 * 3_600_000, offset: 4_000 });
        const recent = alertEvent({ episodeStart: now - 600_000, at: now - 590_000, offset: 4_001 });
        await sink.write(batch({ alerts: [old, recent] }));
        await applyRetention(sink, now);
        expect(await history(sink, { from: 0, to: now + 1 })).toEqual([recent]);
      });
    });

    it('should close idempotently and refuse writes afterwards', async () => {
      const sink = await fresh();
      await sink.write(batch({ readings: hrReadings }));
      await sink.close();
      await sink.close();
      await expect(sink.write(batch({ readings: hrReadings }))).rejects.toSatisfy((e: unknown) => isGatewayError(e, 'GW_ERR_SHUTTING_DOWN'));
    });
  });
}
