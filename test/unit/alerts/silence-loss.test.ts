import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { engineWithLog, hrWindow } from './alert-engine-helpers.js';

const SILENT = { id: 'quiet', kind: 'silence', severity: 'warning', devices: '*', after: '30s' } as const;
const reading = (deviceId: string, ts: number, seq = 1): Reading => ({ kind: 'heart-rate', deviceId, seq, ts, values: { bpm: 80 } }) as Reading;

describe('silence rules (injected clock)', () => {
  it('should fire once after `after` without a reading, and resolve on the next reading', () => {
    const clock = new ManualClock(1_000_000);
    const { engine, log } = engineWithLog([SILENT], { clock });
    engine.onReadings([reading('a', 0)], clock.now(), 0, 0);
    engine.checkSilence(clock.now() + 29_000);
    expect(log).toEqual([]);
    engine.checkSilence(clock.now() + 31_000);
    engine.checkSilence(clock.now() + 45_000);
    expect(log.map((t) => t.state)).toEqual(['FIRING']);
    expect(log[0]).toMatchObject({ ruleKind: 'silence', deviceId: 'a', episodeStart: 1_000_000, firedAt: 1_031_000, value: 31, threshold: 30 });
    engine.onReadings([reading('a', 50_000, 2)], clock.now() + 50_000, 0, 0);
    expect(log.map((t) => t.state)).toEqual(['FIRING', 'RESOLVED']);
    expect(log[1]).toMatchObject({ id: log[0]!.id, resolvedAt: 1_050_000 });
  });

  it('should not count gateway downtime as device silence after a restore', () => {
    const clock = new ManualClock(1_000_000);
    const { engine } = engineWithLog([SILENT], { clock });
    engine.onReadings([reading('a', 0)], clock.now(), 0, 0);
    clock.advance(10_000);
    const state = JSON.parse(JSON.stringify(engine.snapshot())) as unknown;
    // Down for an hour; then restored and (nothing to) replay.
    clock.advance(3_600_000);
    const restarted = engineWithLog([SILENT], { clock });
    restarted.engine.restore(state);
    restarted.engine.afterReplay(clock.now());
    restarted.engine.checkSilence(clock.now() + 19_000);
    expect(restarted.log).toEqual([]);
    restarted.engine.checkSilence(clock.now() + 21_000);
    expect(restarted.log.map((t) => t.state)).toEqual(['FIRING']);
    // The episode is named by the last arrival, not the shifted clock: a replay gives the same id.
    expect(restarted.log[0]!.episodeStart).toBe(1_000_000);
  });

  it('should fire at once for a device that reports itself offline, and resolve when it is back', () => {
    const { engine, log } = engineWithLog([SILENT]);
    engine.onDeviceStatus('heart-rate', 'a', 'offline', 'will', 5_000);
    engine.checkSilence(100_000);
    engine.onDeviceStatus('heart-rate', 'a', 'online', 'birth', 200_000);
    expect(log.map((t) => [t.state, t.episodeStart])).toEqual([
      ['FIRING', 5_000],
      ['RESOLVED', 5_000],
    ]);
  });
});

describe('loss rules', () => {
  const LOSS = { id: 'lossy', kind: 'loss', severity: 'warning', devices: '*', window: '1m', above: 0.05, clear: 0.02, minReadings: 20 } as const;
  it('should judge a bucket when the next begins: net missing over received + missing', () => {
    const { engine, log } = engineWithLog([LOSS]);
    // Bucket [0, 60 s): 90 received, 12 gaps of which 2 filled later: 10 / 100 = 10 %.
    for (let i = 0; i < 9; i++) engine.onReadings(Array.from({ length: 10 }, (_, k) => reading('a', i * 6000 + k)), i, i === 3 ? 12 : 0, i === 5 ? 2 : 0);
    expect(log).toEqual([]);
    engine.onReadings([reading('a', 61_000)], 100, 0, 0);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ state: 'FIRING', ruleKind: 'loss', windowStart: 0, windowEnd: 60_000, threshold: 0.05 });
    expect(log[0]!.value).toBeCloseTo(0.1, 10);
    // A clean bucket resolves it.
    for (let i = 0; i < 30; i++) engine.onReadings([reading('a', 61_000 + i)], 200 + i, 0, 0);
    engine.onReadings([reading('a', 121_000)], 300, 0, 0);
    expect(log.map((t) => t.state)).toEqual(['FIRING', 'RESOLVED']);
  });

  it('should not judge a bucket with fewer than minReadings', () => {
    const { engine, log } = engineWithLog([LOSS]);
    engine.onReadings([reading('a', 0)], 0, 10, 0);
    engine.onReadings([reading('a', 61_000)], 1, 0, 0);
    expect(log).toEqual([]);
  });
});

describe('bounded keys', () => {
  it('should forget an ok key to make room and refuse a new key when every entry is firing', () => {
    const HIGH = { id: 'hr-high', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_mean', above: 180 } as const;
    const { engine, log } = engineWithLog([HIGH], { maxKeys: 2 });
    engine.onWindow(hrWindow('ok-1', 0, 100));
    engine.onWindow(hrWindow('hot-1', 0, 190));
    engine.onWindow(hrWindow('hot-2', 0, 190));
    expect(engine.stats.evicted).toBe(1);
    engine.onWindow(hrWindow('hot-3', 0, 190));
    expect(engine.stats.refused).toBe(1);
    expect(log.map((t) => t.deviceId)).toEqual(['hot-1', 'hot-2']);
    expect(engine.firing().map((a) => a.deviceId)).toEqual(['hot-1', 'hot-2']);
  });
});
