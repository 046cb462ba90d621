import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { createPayloadEncoder } from '../../../simulators/payload-encoder.js';
import type { HeartRateReading, VehicleDetection } from '../../../simulators/readings.js';

// Decoded with protobufjs from proto/ directly, independent of the encoder's own loading.
const root = protobuf.loadSync(fileURLToPath(new URL('../../../proto/pulsegate.proto', import.meta.url)));
const HR = root.lookupType('pulsegate.v1.HeartRateReading');
const HRB = root.lookupType('pulsegate.v1.HeartRateBatch');
const VD = root.lookupType('pulsegate.v1.VehicleDetection');
const VB = root.lookupType('pulsegate.v1.VehicleBatch');
const TS = 1_763_800_000_000;
const plain = (t: protobuf.Type, buf: Buffer): Record<string, unknown> => t.toObject(t.decode(buf), { longs: Number, enums: String, defaults: true }) as Record<string, unknown>;

const hr: HeartRateReading[] = [
  { seq: 1, ts: TS, bpm: 72, rrMs: 833 },
  { seq: 2, ts: TS + 200, bpm: 0 },
  { seq: 2 ** 40, ts: 4_102_444_800_123, bpm: 210, rrMs: 286 },
];
const br: VehicleDetection[] = [
  { seq: 1, ts: TS, lane: 2, vehicleClass: 'TRUCK', speedKmh: 71.5, axles: 5 },
  { seq: 2, ts: TS + 1234, lane: 1, vehicleClass: 'UNKNOWN', speedKmh: 63.3, axles: 2, weightKg: 15_250 },
  { seq: 3, ts: TS + 2000, lane: 4, vehicleClass: 'VAN', speedKmh: 88, axles: 3, weightKg: 2810 },
];
const fround = (d: VehicleDetection): Record<string, unknown> => ({ ...d, speedKmh: Math.fround(d.speedKmh), ...(d.weightKg === undefined ? {} : { weightKg: Math.fround(d.weightKg) }) });

describe('payload encoder', () => {
  it('payload encoder should round-trip single heart-rate readings through protobuf, int64 and optional fields included', () => {
    const enc = createPayloadEncoder('heart-rate', 'protobuf');
    for (const r of hr) {
      const buf = enc.encodeOne(r);
      expect(buf[0]).not.toBe(0x0a);
      expect(plain(HR, buf)).toEqual(r);
    }
    // proto3 `optional`: absent rrMs is not on the wire.
    expect(Object.hasOwn(HR.decode(enc.encodeOne(hr[1]!)), 'rrMs')).toBe(false);
  });

  it('payload encoder should round-trip bridge detections through protobuf with the enum by number', () => {
    const enc = createPayloadEncoder('bridge', 'protobuf');
    for (const d of br) expect(plain(VD, enc.encodeOne(d))).toEqual(fround(d));
    expect((VD.decode(enc.encodeOne(br[0]!)) as unknown as { vehicleClass: number }).vehicleClass).toBe(3);
  });

  it('payload encoder should encode batches whose first byte is 0x0a and that decode to the same readings', () => {
    const hrBatch = createPayloadEncoder('heart-rate', 'protobuf').encodeBatch(hr);
    expect(hrBatch[0]).toBe(0x0a);
    expect(plain(HRB, hrBatch)).toEqual({ readings: hr });
    const one = createPayloadEncoder('heart-rate', 'protobuf').encodeBatch([hr[0]!]);
    expect(one[0]).toBe(0x0a);
    const vb = createPayloadEncoder('bridge', 'protobuf').encodeBatch(br);
    expect(vb[0]).toBe(0x0a);
    expect(plain(VB, vb)).toEqual({ detections: br.map(fround) });
    expect(() => createPayloadEncoder('bridge', 'protobuf').encodeBatch([])).toThrow(RangeError);
  });

  it('payload encoder should produce the documented JSON shapes, arrays for batches', () => {
    const hrJson = createPayloadEncoder('heart-rate', 'json');
    expect(hrJson.encodeOne({ seq: 1, ts: TS, bpm: 72 }).toString()).toBe('{"seq":1,"ts":1763800000000,"bpm":72}');
    expect(JSON.parse(hrJson.encodeBatch(hr).toString())).toEqual(hr);
    const brJson = createPayloadEncoder('bridge', 'json');
    expect(brJson.encodeOne(br[0]!).toString()).toBe('{"seq":1,"ts":1763800000000,"lane":2,"vehicleClass":"TRUCK","speedKmh":71.5,"axles":5}');
    const batch = brJson.encodeBatch(br);
    expect(batch[0]).toBe(0x5b);
    expect(JSON.parse(batch.toString())).toEqual(br);
  });

  it('payload encoder should pick the single message for one reading and the batch for several', () => {
    const enc = createPayloadEncoder('heart-rate', 'protobuf');
    expect(enc.encode([hr[0]!])).toEqual(enc.encodeOne(hr[0]!));
    expect(enc.encode(hr)).toEqual(enc.encodeBatch(hr));
  });
});
