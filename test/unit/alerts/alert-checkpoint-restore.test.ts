import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { engineWithLog, hrWindow } from './alert-engine-helpers.js';

const HIGH = { id: 'hr-high', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', devices: '*', window: '10s', aggregate: 'bpm_mean', above: 180, clear: 170 } as const;

function restoreError(state: unknown): unknown {
  const { engine } = engineWithLog([HIGH]);
  try {
    engine.restore(state);
  } catch (err) {
    return err;
  }
  return null;
}

describe('restoring the alert state of a checkpoint', () => {
  it('should restore a firing episode so that it resolves once, with its id', () => {
    const { engine, log } = engineWithLog([HIGH]);
    engine.onWindow(hrWindow('a', 0, 190));
    const state = JSON.parse(JSON.stringify(engine.snapshot())) as unknown;
    const restarted = engineWithLog([HIGH]);
    restarted.engine.restore(state);
    expect(restarted.engine.firing().map((a) => a.id)).toEqual([log[0]!.id]);
    restarted.engine.onWindow(hrWindow('a', 10_000, 100));
    expect(restarted.log.map((t) => [t.state, t.id])).toEqual([['RESOLVED', log[0]!.id]]);
  });

  it.each([
    ['another version', { v: 2, entries: [], seen: [] }],
    ['entries without a state', { v: 1, takenAt: 0, lastArrival: 0, entries: [{ r: 'hr-high', k: 'heart-rate', d: 'a', g: {}, f: null, b: null }], seen: [] }],
    ['an unknown phase', { v: 1, takenAt: 0, lastArrival: 0, entries: [{ r: 'hr-high', k: 'heart-rate', d: 'a', g: {}, s: ['burning', 0, 0, null, 0, 10_000], f: null, b: null }], seen: [] }],
    ['a state of strings', { v: 1, takenAt: 0, lastArrival: 0, entries: [{ r: 'hr-high', k: 'heart-rate', d: 'a', g: {}, s: ['ok', '0', 0, null, 0, 10_000], f: null, b: null }], seen: [] }],
    ['a firing episode that is not an alert', { v: 1, takenAt: 0, lastArrival: 0, entries: [{ r: 'hr-high', k: 'heart-rate', d: 'a', g: {}, s: ['firing', 0, 10_000, null, 0, 10_000], f: { id: 7 }, b: null }], seen: [] }],
    ['a silence clock that is not one', { v: 1, takenAt: 0, lastArrival: 0, entries: [], seen: [['heart-rate', 'a', 'yesterday']] }],
    ['not an object', 'alerts'],
  ])('should refuse a state with %s with a checkpoint error naming the alert engine', (_what, state) => {
    const err = restoreError(state);
    expect(isGatewayError(err, 'GW_ERR_CHECKPOINT')).toBe(true);
    expect((err as Error).message).toMatch(/alert engine/);
  });
});
