import { describe, expect, it } from 'vitest';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { engineWithLog } from './alert-engine-helpers.js';

const LOSS = { id: 'lossy', kind: 'loss', severity: 'warning', devices: '*', window: '1m', above: 0.05, clear: 0.02, minReadings: 20 } as const;
const reading = (ts: number, seq: number): Reading => ({ kind: 'heart-rate', deviceId: 'a', seq, ts, values: { bpm: 80 } }) as Reading;

describe('loss rules: gap fills of a bucket already judged', () => {
  it('should not let late fills for a judged bucket hide the loss of the bucket being counted', () => {
    const { engine, log } = engineWithLog([LOSS]);
    let seq = 0;
    // [0, 60 s): 90 received, 10 missing: 10 % lost, judged (FIRING) when the next bucket begins.
    for (let i = 0; i < 9; i++) engine.onReadings(Array.from({ length: 10 }, (_, k) => reading(i * 6000 + k, ++seq)), i, i === 4 ? 10 : 0, 0);
    engine.onReadings([reading(60_000, ++seq)], 10, 0, 0);
    expect(log.map((t) => t.state)).toEqual(['FIRING']);
    // [60 s, 120 s): 90 received, 10 new gaps; the 10 missing of the first bucket arrive late
    // (their event time is in the first bucket): that loss was judged, this bucket still loses 10 %.
    for (let i = 0; i < 9; i++) engine.onReadings(Array.from({ length: 10 }, (_, k) => reading(61_000 + i * 6000 + k, ++seq)), 20 + i, i === 2 ? 10 : 0, 0);
    engine.onReadings(Array.from({ length: 10 }, (_, k) => reading(24_000 + k, 1000 + k)), 40, 0, 10);
    engine.onReadings([reading(121_000, ++seq)], 50, 0, 0);
    expect(log.map((t) => t.state)).toEqual(['FIRING']);
    expect(engine.firing()).toHaveLength(1);
  });
});
