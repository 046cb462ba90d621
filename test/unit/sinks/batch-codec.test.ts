import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { decodeBatch, encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import type { SinkBatch } from '../../../gateway/sinks/types.js';

const batch: SinkBatch = {
  readings: [
    { kind: 'heart-rate', deviceId: 'athlete-1', seq: 4_294_967_295, ts: 1_717_171_717_171, values: { bpm: 72, rrMs: 833 } },
    { kind: 'bridge', deviceId: 'brücke-7', seq: 0, ts: 1_717_171_717_172, values: { lane: 2, vehicleClass: 'TRUCK', speedKmh: 81.25, axles: 5, weightKg: 31_999.9 } },
  ],
  windows: [
    {
      kind: 'bridge',
      deviceId: 'brücke-7',
      sizeMs: 60_000,
      slideMs: 60_000,
      start: 1_717_171_680_000,
      end: 1_717_171_740_000,
      group: { vehicleClass: 'TRUCK', lane: '2' },
      values: { count: 3, speedKmh_mean: 80.1 / 3, speedKmh_max: 99.5 },
      revision: 2,
    },
  ],
  health: [{ ts: 1_717_171_717_000, values: { readings_per_s: 512.5, sink_lag_ms: 0, heap_mb: 48.25 } }],
};

describe('batch codec', () => {
  it('should round-trip a batch exactly', () => {
    expect(decodeBatch(encodeBatch(batch))).toStrictEqual(batch);
  });

  it('should round-trip awkward numbers: negatives, -0, fractions, huge, NaN, Infinity', () => {
    const values = { a: -1, b: -0, c: 0.1 + 0.2, d: Number.MAX_SAFE_INTEGER, e: 2 ** 60, f: Number.NaN, g: Number.POSITIVE_INFINITY, h: Number.MIN_VALUE };
    const decoded = decodeBatch(encodeBatch({ readings: [], windows: [], health: [{ ts: -5, values }] }));
    const got = decoded.health[0]!.values;
    for (const [k, v] of Object.entries(values)) expect(Object.is(got[k], v), k).toBe(true);
    expect(Object.keys(got)).toEqual(Object.keys(values));
  });

  it('should round-trip an empty batch', () => {
    expect(decodeBatch(encodeBatch({ readings: [], windows: [], health: [] }))).toStrictEqual({ readings: [], windows: [], health: [] });
  });

  it('should be much smaller than JSON for a batch of readings', () => {
    const readings = Array.from({ length: 1000 }, (_, i) => ({ kind: 'heart-rate', deviceId: `athlete-${i % 20}`, seq: 10_000 + i, ts: 1_717_171_717_000 + i * 200, values: { bpm: 60 + (i % 100) } }));
    const b: SinkBatch = { readings, windows: [], health: [] };
    const encoded = encodeBatch(b);
    expect(decodeBatch(encoded)).toStrictEqual(b);
    expect(encoded.length).toBeLessThan(Buffer.byteLength(JSON.stringify(b)) / 4);
  });

  it('should refuse a truncated or foreign payload with GW_ERR_LOG_CORRUPT', () => {
    const encoded = encodeBatch(batch);
    for (const bad of [encoded.subarray(0, encoded.length - 3), Buffer.from('{"readings":[]}'), Buffer.concat([encoded, Buffer.from([0])])]) {
      expect(() => decodeBatch(bad)).toThrow(expect.objectContaining({ code: 'GW_ERR_LOG_CORRUPT' }));
    }
    let caught: unknown = null;
    try {
      decodeBatch(Buffer.alloc(0));
    } catch (err) {
      caught = err;
    }
    expect(isGatewayError(caught, 'GW_ERR_LOG_CORRUPT')).toBe(true);
  });
});
