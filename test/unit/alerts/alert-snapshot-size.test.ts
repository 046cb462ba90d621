import { describe, expect, it } from 'vitest';
import { engineWithLog, hrWindow } from './alert-engine-helpers.js';

const HIGH = { id: 'hr-high', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_mean', above: 180, clear: 170, for: '20s' } as const;

describe('the alert state of a checkpoint', () => {
  it('should hold only the keys that carry state (pending, firing, a loss bucket), not every key seen in state ok', () => {
    const { engine } = engineWithLog([HIGH], { maxKeys: 10_000 });
    for (let i = 0; i < 1000; i++) engine.onWindow(hrWindow(`ok-${i}`, 0, 80));
    engine.onWindow(hrWindow('pending', 0, 190));
    engine.onWindow(hrWindow('hot', 0, 190));
    engine.onWindow(hrWindow('hot', 10_000, 190));
    const snap = JSON.parse(JSON.stringify(engine.snapshot())) as { entries: { d: string }[] };
    expect(snap.entries.map((e) => e.d).sort()).toEqual(['hot', 'pending']);
  });

  it('should start nothing from a correction of a window of a key left out, after a restore', () => {
    const { engine } = engineWithLog([{ ...HIGH, for: '0s' }]);
    engine.onWindow(hrWindow('a', 0, 80));
    const state = JSON.parse(JSON.stringify(engine.snapshot())) as unknown;
    const restarted = engineWithLog([{ ...HIGH, for: '0s' }]);
    restarted.engine.restore(state);
    // Late data corrects [0, 10 s) above the level: transitions are decided on first emissions.
    restarted.engine.onWindow(hrWindow('a', 0, 190, 1));
    expect(restarted.log).toEqual([]);
    restarted.engine.onWindow(hrWindow('a', 10_000, 190));
    expect(restarted.log.map((t) => [t.state, t.episodeStart])).toEqual([['FIRING', 10_000]]);
  });
});
