import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { engineWithLog, hrWindow } from './alert-engine-helpers.js';

const HIGH = { id: 'hr-high', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_mean', above: 180, clear: 170 } as const;
const LOW = { id: 'hr-low', kind: 'threshold', severity: 'warning', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_min', below: 20, clear: 30 } as const;

function firingCheckpoint() {
  const clock = new ManualClock(5_000_000);
  const { engine, log } = engineWithLog([HIGH, LOW], { clock });
  engine.onWindow(hrWindow('hr-1', 0, 190));
  engine.onWindow(hrWindow('hr-2', 0, 190));
  expect(log.map((t) => t.state)).toEqual(['FIRING', 'FIRING']);
  return { state: JSON.parse(JSON.stringify(engine.snapshot())) as unknown, fired: log, clock };
}

describe('rules edited between restarts', () => {
  it('should resolve, once, the episodes a removed rule had firing (nothing else would ever resolve them)', () => {
    const { state, fired, clock } = firingCheckpoint();
    clock.advance(60_000);
    const restarted = engineWithLog([LOW], { clock });
    restarted.engine.restore(state);
    restarted.engine.afterReplay(clock.now());
    expect(restarted.log.map((t) => [t.state, t.id, t.rule, t.severity, t.deviceId, t.resolvedAt])).toEqual([
      ['RESOLVED', fired[0]!.id, 'hr-high', 'critical', 'hr-1', 5_060_000],
      ['RESOLVED', fired[1]!.id, 'hr-high', 'critical', 'hr-2', 5_060_000],
    ]);
    expect(restarted.log[0]!.summary).toMatch(/no longer/);
    expect(restarted.engine.firing()).toEqual([]);
    // A second afterReplay (or start) does not resolve them again.
    restarted.engine.afterReplay(clock.now());
    expect(restarted.log).toHaveLength(2);
  });

  it('should resolve the episodes of devices a rule no longer selects, and keep the others', () => {
    const { state, fired, clock } = firingCheckpoint();
    const restarted = engineWithLog([{ ...HIGH, devices: 'hr-2' }, LOW], { clock });
    restarted.engine.restore(state);
    restarted.engine.afterReplay(clock.now());
    expect(restarted.log.map((t) => [t.state, t.id])).toEqual([['RESOLVED', fired[0]!.id]]);
    expect(restarted.engine.firing().map((a) => a.id)).toEqual([fired[1]!.id]);
    restarted.engine.onWindow(hrWindow('hr-2', 10_000, 100));
    expect(restarted.log.map((t) => [t.state, t.id])).toEqual([
      ['RESOLVED', fired[0]!.id],
      ['RESOLVED', fired[1]!.id],
    ]);
  });

  it('should resolve an episode whose rule id now names a rule of another kind, and not hand its state to that rule', () => {
    const { state, fired, clock } = firingCheckpoint();
    const restarted = engineWithLog([{ id: 'hr-high', kind: 'silence', severity: 'warning', devices: '*', after: '30s' }, LOW], { clock });
    restarted.engine.restore(state);
    restarted.engine.afterReplay(clock.now());
    expect(restarted.log.map((t) => [t.state, t.id, t.ruleKind])).toEqual([
      ['RESOLVED', fired[0]!.id, 'threshold'],
      ['RESOLVED', fired[1]!.id, 'threshold'],
    ]);
    expect(restarted.engine.firing()).toEqual([]);
  });
});
