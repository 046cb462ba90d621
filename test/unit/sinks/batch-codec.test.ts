import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { coversOfBatch, decodeBatch, encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import type { SinkBatch } from '../../../gateway/sinks/types.js';
import { ALERT_WIRE_VERSION, alertId, type AlertEvent } from '../../../gateway/wire/alert.js';
import { mulberry32 } from '../../helpers/random.js';

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

const alert: AlertEvent = {
  v: ALERT_WIRE_VERSION,
  id: alertId('bridge-truck-surge', 'brücke-7/lane=2', 1_717_171_680_000),
  rule: 'bridge-truck-surge',
  ruleKind: 'threshold',
  severity: 'warning',
  state: 'RESOLVED',
  kind: 'bridge',
  deviceId: 'brücke-7',
  group: { lane: '2' },
  value: 12,
  threshold: 15,
  windowStart: 1_717_171_740_000,
  windowEnd: 1_717_171_800_000,
  episodeStart: 1_717_171_680_000,
  firedAt: 1_717_171_740_000,
  resolvedAt: 1_717_171_800_000,
  summary: 'Trucks resolved: brücke-7 lane=2 count 12',
  offset: 2 ** 40 + 3,
};

describe('batch codec', () => {
  it('should round-trip a batch with alert transitions (their offsets too), and one without as before', () => {
    const silence: AlertEvent = { ...alert, id: alertId('device-silent', 'x', 5), rule: 'device-silent', ruleKind: 'silence', state: 'FIRING', value: null, threshold: null, windowStart: null, windowEnd: null, resolvedAt: null, offset: 0 };
    const withAlerts: SinkBatch = { ...batch, alerts: [alert, silence] };
    expect(decodeBatch(encodeBatch(withAlerts))).toStrictEqual(withAlerts);
    expect(decodeBatch(encodeBatch({ ...batch, alerts: [] }))).toStrictEqual({ ...batch, alerts: [] });
    // A batch without alerts keeps version 1, the form an outbox written before alerts holds.
    expect(encodeBatch(batch)[3]).toBe(1);
    expect(encodeBatch(withAlerts)[3]).toBe(2);
  });

  it('should round-trip what a batch covers (versions 3 and 4), readable from its first bytes alone', () => {
    const covers = { from: 2 ** 40 + 7, below: 2 ** 40 + 9_000 };
    const withCovers: SinkBatch = { ...batch, covers };
    const withBoth: SinkBatch = { ...batch, alerts: [alert], covers };
    expect(encodeBatch(withCovers)[3]).toBe(3);
    expect(encodeBatch(withBoth)[3]).toBe(4);
    expect(decodeBatch(encodeBatch(withCovers))).toStrictEqual(withCovers);
    expect(decodeBatch(encodeBatch(withBoth))).toStrictEqual(withBoth);
    expect(coversOfBatch(encodeBatch(withCovers))).toStrictEqual(covers);
    expect(coversOfBatch(encodeBatch(withBoth))).toStrictEqual(covers);
    // Only the header is read: the rest of the batch may be anything.
    expect(coversOfBatch(encodeBatch(withCovers).subarray(0, 4 + 2 * 9))).toStrictEqual(covers);
    expect(coversOfBatch(encodeBatch({ readings: [], windows: [], health: [], covers: { from: 0, below: 0 } }))).toStrictEqual({ from: 0, below: 0 });
  });

  it('should say a batch covers nothing when it has no range (versions 1 and 2) or its bytes are no batch or no range', () => {
    expect(coversOfBatch(encodeBatch(batch))).toBeNull();
    expect(coversOfBatch(encodeBatch({ ...batch, alerts: [alert] }))).toBeNull();
    const good = encodeBatch({ ...batch, covers: { from: 5, below: 9 } });
    expect(coversOfBatch(good.subarray(0, 5))).toBeNull();
    expect(coversOfBatch(Buffer.from('{"readings":[]}'))).toBeNull();
    expect(coversOfBatch(Buffer.alloc(0))).toBeNull();
    const foreignVersion = Buffer.from(good);
    foreignVersion[3] = 5;
    expect(coversOfBatch(foreignVersion)).toBeNull();
    expect(() => decodeBatch(foreignVersion)).toThrow(expect.objectContaining({ code: 'GW_ERR_LOG_CORRUPT' }));
    for (const covers of [{ from: 9, below: 5 }, { from: -1, below: 5 }, { from: 0.5, below: 5 }, { from: 0, below: Number.NaN }]) {
      expect(coversOfBatch(encodeBatch({ ...batch, covers })), JSON.stringify(covers)).toBeNull();
    }
  });

  it('should refuse an alert entry that is not the wire format with GW_ERR_LOG_CORRUPT', () => {
    const encoded = encodeBatch({ ...batch, alerts: [alert] });
    const json = JSON.stringify((({ offset: _o, ...t }) => t)(alert));
    const at = encoded.indexOf(json);
    expect(at).toBeGreaterThan(0);
    const bad = Buffer.from(encoded);
    bad.write('"v":9', at + 1);
    expect(() => decodeBatch(bad)).toThrow(expect.objectContaining({ code: 'GW_ERR_LOG_CORRUPT' }));
  });

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


/** Numbers at every boundary of the wire format: varint lengths, the uint/float split, specials. */
const EDGE_NUMBERS = [
  0, -0, 1, -1, 127, 128, 16_383, 16_384, 2 ** 21 - 1, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32,
  2 ** 35, 2 ** 42 + 5, 2 ** 49 - 1, 2 ** 49, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 60, -(2 ** 31), -(2 ** 53),
  0.5, 0.1 + 0.2, -1.5, 1e-300, Number.MIN_VALUE, Number.MAX_VALUE, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
  1_717_171_717_171, 1_717_171_717_171.5,
];
const EDGE_STRINGS = ['', 'TRUCK', 'brücke-7', 'µs', '心拍数', '🫀❤️‍🔥', 'x'.repeat(127), 'y'.repeat(128), 'ü'.repeat(70), 'z'.repeat(20_000)];

function makeBatch(seed: number, sizes: { readings: number; windows: number; health: number }): SinkBatch {
  const random = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const number = (): number => {
    const r = random();
    if (r < 0.3) return pick(EDGE_NUMBERS);
    if (r < 0.6) return Math.floor(random() * 200);
    if (r < 0.8) return Math.floor(random() * 2 ** 45);
    return (random() - 0.5) * 10 ** Math.floor(random() * 12);
  };
  const name = (): string => (random() < 0.8 ? pick(['bpm', 'rrMs', 'lane', 'speedKmh', '0', '10', 'ключ', 'a.b']) : `k${Math.floor(random() * 300)}`);
  const text = (): string => (random() < 0.5 ? pick(EDGE_STRINGS) : `s${Math.floor(random() * 400)}`);
  const record = <T>(count: number, value: () => T): Record<string, T> => {
    const out: Record<string, T> = {};
    // Past 127 keys the count takes two varint bytes; draw distinct names so it gets there.
    for (let i = 0; i < count; i++) out[count > 127 ? `f${i}` : name()] = value();
    return out;
  };
  const count = (): number => (random() < 0.05 ? 0 : random() < 0.97 ? 1 + Math.floor(random() * 5) : 130 + Math.floor(random() * 40));
  const readings = Array.from({ length: sizes.readings }, () => ({
    kind: pick(['heart-rate', 'bridge', 'Brücke']),
    deviceId: random() < 0.9 ? `device-${Math.floor(random() * 200)}` : text(),
    seq: number(),
    ts: number(),
    values: record(count(), () => (random() < 0.2 ? text() : number())),
  }));
  const windows = Array.from({ length: sizes.windows }, () => ({
    kind: pick(['heart-rate', 'bridge']),
    deviceId: `device-${Math.floor(random() * 50)}`,
    sizeMs: number(),
    slideMs: number(),
    start: number(),
    end: number(),
    group: record(Math.floor(random() * 3), text),
    values: record(count(), number),
    revision: number(),
  }));
  const health = Array.from({ length: sizes.health }, () => ({ ts: number(), values: record(count(), number) }));
  return { readings, windows, health };
}

function heartRateBatch(length: number): SinkBatch {
  const readings = Array.from({ length }, (_, i) => ({
    kind: 'heart-rate',
    deviceId: `athlete-${i % 500}`,
    seq: 1_000_000 + i,
    ts: 1_717_171_717_000 + i * 200,
    values: { bpm: 60 + (i % 80), rrMs: 700 + (i % 300) },
  }));
  return { readings, windows: [], health: [] };
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/*
 * The wire format is frozen: records already in users' message logs must decode, and a
 * re-encoded batch must give the same bytes. These hashes were recorded from the original
 * (pre-optimisation) encoder; a change here is a format change, not a test to update.
 */
const GOLDEN: ReadonlyArray<{ name: string; batch: () => SinkBatch; sha256: string }> = [
  { name: 'empty', batch: () => ({ readings: [], windows: [], health: [] }), sha256: '21453c5f8c00857e9a536eb18982cad269edacd2ed694d522790b9eccefec452' },
  { name: 'the example batch', batch: () => batch, sha256: '0c07360f0c4630496c21b72de0b3be67b82a5e55c7bc58ac12021f9bb3e02817' },
  { name: 'readings only', batch: () => makeBatch(1, { readings: 40, windows: 0, health: 0 }), sha256: '25fa56aa842a816922488d79afbe91477c550a2f99fcfc382800170c21f7e2f8' },
  { name: 'windows only', batch: () => makeBatch(2, { readings: 0, windows: 40, health: 0 }), sha256: 'f9e3fb3f472f438daf9349347d8b8363e1d135fde03a40d3b8ee931db44741cb' },
  { name: 'health only', batch: () => makeBatch(3, { readings: 0, windows: 0, health: 40 }), sha256: '8758c8b98b605962ba183b06ea5a69b06437cb2ae68287f2eb802fe9de26c002' },
  { name: 'mixed, small', batch: () => makeBatch(4, { readings: 7, windows: 3, health: 2 }), sha256: '7f50a02847f5d7930a339ad2cfb11bf0d08f279a8d9b7a77788fcc06fb84bc6f' },
  { name: 'mixed, large (> 64 KiB, > 128 strings)', batch: () => makeBatch(5, { readings: 3000, windows: 300, health: 50 }), sha256: '69cfdefd92e5bed9ccea81755d01af0361194815d38c3eb9e3613c87ab7ababe' },
  { name: 'heart-rate, 5000 readings', batch: () => heartRateBatch(5000), sha256: 'dab59006b10bade550bec1c9a752852231e5efb9eae1f645e47913f71c26a6b6' },
];

describe('batch codec wire format', () => {
  for (const golden of GOLDEN) {
    it(`should encode "${golden.name}" to the recorded bytes and decode it back`, () => {
      const b = golden.batch();
      const encoded = encodeBatch(b);
      expect(sha256(encoded)).toBe(golden.sha256);
      expect(decodeBatch(encoded)).toStrictEqual(b);
    });
  }

  it('should encode a lone surrogate as U+FFFD, as Buffer.from does', () => {
    const encoded = encodeBatch({ readings: [{ kind: 'k', deviceId: 'd\ud800', seq: 0, ts: 0, values: { v: '\udc00x' } }], windows: [], health: [] });
    expect(sha256(encoded)).toBe('eabb4de07ca229c9ce61d081dce42872e16e91002e90bc5a2bcff283e03c790d');
    expect(decodeBatch(encoded).readings[0]).toStrictEqual({ kind: 'k', deviceId: 'd\ufffd', seq: 0, ts: 0, values: { v: '\ufffdx' } });
  });
});

describe('batch codec encoder', () => {
  it('should return bytes that later encodings do not overwrite, whatever the batch size', () => {
    const small = makeBatch(6, { readings: 5, windows: 1, health: 1 });
    const first = encodeBatch(small);
    const copy = Buffer.from(first);
    // Past 1 MiB the reused encode buffer is dropped after use; below, it is kept.
    const huge = heartRateBatch(50_000);
    const hugeEncoded = encodeBatch(huge);
    expect(hugeEncoded.length).toBeGreaterThan(1024 * 1024);
    encodeBatch(makeBatch(7, { readings: 500, windows: 0, health: 0 }));
    expect(first).toEqual(copy);
    expect(encodeBatch(small)).toEqual(copy);
    expect(decodeBatch(hugeEncoded)).toStrictEqual(huge);
  });

  it('should encode only own properties, as Object.entries sees them', () => {
    const values = Object.create({ inherited: 1 }) as Record<string, number>;
    values['bpm'] = 72;
    Object.defineProperty(values, 'hidden', { value: 5, enumerable: false });
    values['rrMs'] = 830;
    const reading = { kind: 'heart-rate', deviceId: 'athlete-1', seq: 1, ts: 2, values };
    const plain = { ...reading, values: { bpm: 72, rrMs: 830 } };
    expect(encodeBatch({ readings: [reading], windows: [], health: [] })).toEqual(encodeBatch({ readings: [plain], windows: [], health: [] }));
  });
});
