import { describe, expect, it } from 'vitest';
import { AlertEngine } from '../../../gateway/alerts/alert-engine.js';
import { ManualClock } from '../../../gateway/clock.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import type { AlertTransition } from '../../../gateway/wire/alert.js';
import { rules } from './alert-engine-helpers.js';

describe('a transition the log already holds', () => {
  it('should be told, and served as firing, as the log holds it (a silence found again after a restart fires later than the first time did)', () => {
    const told: AlertTransition[] = [];
    let firstFiredAt = 0;
    const engine = new AlertEngine({
      rules: rules([{ id: 'quiet', kind: 'silence', severity: 'warning', devices: '*', after: '30s' }]),
      maxKeys: 10,
      clock: new ManualClock(0),
      // The log held this FIRING from before the restart, fired at 31 s.
      record: (t) => ({ offset: 7, logged: true, item: { ...t, firedAt: (firstFiredAt = 31_000) } }),
    });
    engine.onTransition((t) => told.push(t));
    engine.onReadings([{ kind: 'heart-rate', deviceId: 'a', seq: 1, ts: 0, values: { bpm: 80 } } as Reading], 0, 0, 0);
    engine.checkSilence(45_000);
    expect(told.map((t) => t.firedAt)).toEqual([firstFiredAt]);
    expect(engine.firing().map((a) => [a.firedAt, a.offset])).toEqual([[31_000, 7]]);
  });
});
