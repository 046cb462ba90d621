import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { engineWithLog } from './alert-engine-helpers.js';

// Topics are sensors/<kind>/<deviceId>: "x" of heart-rate and "x" of bridge are two devices.
const SILENT = { id: 'quiet', kind: 'silence', severity: 'warning', devices: '*', after: '30s' } as const;
const LOSS = { id: 'lossy', kind: 'loss', severity: 'warning', devices: '*', window: '1m', above: 0.05, clear: 0.02, minReadings: 20 } as const;
const hr = (ts: number, seq = 1): Reading => ({ kind: 'heart-rate', deviceId: 'x', seq, ts, values: { bpm: 80 } }) as Reading;
const bridge = (ts: number, seq = 1): Reading => ({ kind: 'bridge', deviceId: 'x', seq, ts, values: { vehicleClass: 'CAR', lane: 1, speedKmh: 50 } }) as Reading;

describe('a device id used by two kinds', () => {
  it('should keep the silence episodes of the two devices apart: each fires and resolves with its own kind', () => {
    const clock = new ManualClock(1_000_000);
    const { engine, log } = engineWithLog([SILENT], { clock });
    engine.onReadings([hr(0)], 1_000_000, 0, 0);
    engine.onReadings([bridge(0)], 1_000_000, 0, 0);
    engine.checkSilence(1_031_000);
    expect(log.map((t) => [t.state, t.kind])).toEqual([
      ['FIRING', 'heart-rate'],
      ['FIRING', 'bridge'],
    ]);
    expect(log[0]!.id).not.toBe(log[1]!.id);
    engine.onReadings([bridge(40_000, 2)], 1_040_000, 0, 0);
    expect(log.slice(2).map((t) => [t.state, t.kind, t.id])).toEqual([['RESOLVED', 'bridge', log[1]!.id]]);
    expect(engine.firing().map((a) => a.kind)).toEqual(['heart-rate']);
  });

  it('should count the loss of the two devices in separate buckets', () => {
    const { engine, log } = engineWithLog([LOSS]);
    // heart-rate x loses 10 of 100 in [0, 60 s); bridge x loses nothing, 100 readings.
    engine.onReadings(Array.from({ length: 90 }, (_, i) => hr(i)), 0, 10, 0);
    engine.onReadings(Array.from({ length: 100 }, (_, i) => bridge(i)), 0, 0, 0);
    engine.onReadings([hr(61_000, 200)], 1, 0, 0);
    engine.onReadings([bridge(61_000, 200)], 1, 0, 0);
    expect(log.map((t) => [t.state, t.kind])).toEqual([['FIRING', 'heart-rate']]);
    expect(log[0]!.value).toBeCloseTo(0.1, 10);
  });
});
