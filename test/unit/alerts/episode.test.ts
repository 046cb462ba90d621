import { describe, expect, it } from 'vitest';
import { engineWithLog, hrWindow } from './alert-engine-helpers.js';

const HIGH = { id: 'hr-high', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_mean', above: 180, clear: 170 } as const;

describe('threshold rules', () => {
  it('should give one episode for a value oscillating around the fire level inside the hysteresis band', () => {
    const { engine, log } = engineWithLog([HIGH]);
    let t = 0;
    engine.onWindow(hrWindow('a', t, 185));
    // 200 windows alternating above the fire level and inside the band (170..180): no flapping.
    for (let i = 0; i < 200; i++) engine.onWindow(hrWindow('a', (t += 10_000), i % 2 === 0 ? 175 : 183));
    expect(log.map((x) => x.state)).toEqual(['FIRING']);
    engine.onWindow(hrWindow('a', (t += 10_000), 165));
    expect(log.map((x) => x.state)).toEqual(['FIRING', 'RESOLVED']);
    expect(log[0]!.id).toBe(log[1]!.id);
    expect(log[1]).toMatchObject({ resolvedAt: t + 10_000, threshold: 170, value: 165 });
  });

  it('should fire only once the breach has lasted `for` over contiguous windows, and a gap restarts the run', () => {
    const { engine, log } = engineWithLog([{ ...HIGH, for: '30s' }]);
    engine.onWindow(hrWindow('a', 0, 190));
    engine.onWindow(hrWindow('a', 10_000, 190));
    // No window for [20 s, 30 s): the run starts over at 30 s.
    engine.onWindow(hrWindow('a', 30_000, 190));
    engine.onWindow(hrWindow('a', 40_000, 190));
    expect(log).toEqual([]);
    engine.onWindow(hrWindow('a', 50_000, 190));
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ state: 'FIRING', episodeStart: 30_000, firedAt: 60_000, windowStart: 50_000, value: 190, threshold: 180 });
  });

  it('should resolve only after clearFor of contiguous clear windows', () => {
    const { engine, log } = engineWithLog([{ ...HIGH, clearFor: '20s' }]);
    engine.onWindow(hrWindow('a', 0, 190));
    engine.onWindow(hrWindow('a', 10_000, 160));
    engine.onWindow(hrWindow('a', 20_000, 175)); // band: the clear run starts over
    engine.onWindow(hrWindow('a', 30_000, 160));
    expect(log.map((x) => x.state)).toEqual(['FIRING']);
    engine.onWindow(hrWindow('a', 40_000, 160));
    expect(log.map((x) => x.state)).toEqual(['FIRING', 'RESOLVED']);
    expect(log[1]!.resolvedAt).toBe(50_000);
  });

  it('should never fire twice for a correction or a duplicate of a window already evaluated', () => {
    const { engine, log } = engineWithLog([HIGH]);
    engine.onWindow(hrWindow('a', 0, 190));
    engine.onWindow(hrWindow('a', 0, 190));
    engine.onWindow(hrWindow('a', 0, 160, 1));
    engine.onWindow(hrWindow('a', 0, 195, 2));
    expect(log.map((x) => x.state)).toEqual(['FIRING']);
  });

  it('should fire "below" rules under the level and key bridge windows by the group fields not in `where`', () => {
    const { engine, log } = engineWithLog([
      { id: 'flat', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: 'hr-*', window: '10s', aggregate: 'bpm_max', below: 20, clear: 30 },
      { id: 'trucks', kind: 'threshold', severity: 'warning', sensorKind: 'bridge', devices: '*', window: '1m', aggregate: 'count', where: { vehicleClass: 'TRUCK' }, above: 25 },
    ]);
    engine.onWindow(hrWindow('hr-1', 0, 0, 0, 'bpm_max'));
    engine.onWindow(hrWindow('other', 0, 0, 0, 'bpm_max'));
    const bridge = (lane: string, vehicleClass: string, count: number) => ({ kind: 'bridge', deviceId: 'b1', sizeMs: 60_000, slideMs: 60_000, start: 0, end: 60_000, group: { vehicleClass, lane }, values: { count }, revision: 0 });
    engine.onWindow(bridge('1', 'TRUCK', 30));
    engine.onWindow(bridge('2', 'TRUCK', 30));
    engine.onWindow(bridge('1', 'CAR', 300));
    expect(log.map((x) => [x.rule, x.deviceId, x.group])).toEqual([
      ['flat', 'hr-1', {}],
      ['trucks', 'b1', { lane: '1' }],
      ['trucks', 'b1', { lane: '2' }],
    ]);
    expect(new Set(log.map((x) => x.id)).size).toBe(3);
    expect(engine.firing().map((a) => a.offset)).toEqual([0, 1, 2]);
  });
});
