import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { bridgeKind } from '../../../gateway/kinds/bridge.js';
import { heartRateKind } from '../../../gateway/kinds/heart-rate.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createPayloadDecoder, PROTO_FILE } from '../../../gateway/ingest/payload-decoder.js';

const config = loadConfig({ env: {} });
const decoder = createPayloadDecoder(createKindRegistry(), config.ingest);
const root = protobuf.loadSync(PROTO_FILE);
const HR = root.lookupType('pulsegate.v1.HeartRateReading');
const HRB = root.lookupType('pulsegate.v1.HeartRateBatch');
const VD = root.lookupType('pulsegate.v1.VehicleDetection');
const VB = root.lookupType('pulsegate.v1.VehicleBatch');
const NOW = 1_763_800_000_000;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const pb = (t: protobuf.Type, v: Record<string, unknown>) => Buffer.from(t.encode(t.create(v)).finish());

describe('payload decoder', () => {
  it('should decode a JSON heart-rate reading in the documented shape', () => {
    const r = decoder.decode(heartRateKind, 'a1', json({ seq: 1, ts: NOW, bpm: 72 }), NOW);
    expect(r.rejected).toEqual([]);
    expect(r.readings).toEqual([{ kind: 'heart-rate', deviceId: 'a1', seq: 1, ts: NOW, values: { bpm: 72 } }]);
  });

  it('should decode a JSON bridge detection in the documented shape', () => {
    const r = decoder.decode(bridgeKind, 'b1', json({ seq: 1, ts: NOW, lane: 2, vehicleClass: 'TRUCK', speedKmh: 71.5, axles: 5 }), NOW);
    expect(r.readings[0]?.values).toEqual({ lane: 2, vehicleClass: 'TRUCK', speedKmh: 71.5, axles: 5 });
  });

  it('should decode protobuf single readings and batches of both kinds', () => {
    const one = decoder.decode(heartRateKind, 'a1', pb(HR, { seq: 7, ts: NOW, bpm: 150, rrMs: 400 }), NOW);
    expect(one.readings).toEqual([{ kind: 'heart-rate', deviceId: 'a1', seq: 7, ts: NOW, values: { bpm: 150, rrMs: 400 } }]);
    const batch = pb(HRB, { readings: [1, 2, 3].map((seq) => ({ seq, ts: NOW + seq, bpm: 60 + seq })) });
    expect(batch[0]).toBe(0x0a);
    expect(decoder.decode(heartRateKind, 'a1', batch, NOW).readings.map((r) => r.seq)).toEqual([1, 2, 3]);
    const vb = pb(VB, { detections: [{ seq: 1, ts: NOW, lane: 1, vehicleClass: 2, speedKmh: 50, axles: 2, weightKg: 12000 }] });
    expect(decoder.decode(bridgeKind, 'b1', vb, NOW).readings[0]?.values).toEqual({ lane: 1, vehicleClass: 'BUS', speedKmh: 50, axles: 2, weightKg: 12000 });
    expect(decoder.decode(bridgeKind, 'b1', pb(VD, { seq: 3, ts: NOW, lane: 2, vehicleClass: 3, speedKmh: 80, axles: 5 }), NOW).readings).toHaveLength(1);
  });

  it('should reject garbage and truncated protobuf with decode_error', () => {
    expect(decoder.decode(heartRateKind, 'a1', json({ seq: 1 }).subarray(0, 5), NOW).rejected[0]?.reason).toBe('decode_error');
    const full = pb(HRB, { readings: [{ seq: 1, ts: NOW, bpm: 70 }, { seq: 2, ts: NOW, bpm: 71 }] });
    const truncated = decoder.decode(heartRateKind, 'a1', full.subarray(0, full.length - 3), NOW);
    expect(truncated.readings).toEqual([]);
    expect(truncated.rejected[0]?.reason).toBe('decode_error');
    expect(decoder.decode(heartRateKind, 'a1', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), NOW).rejected[0]?.reason).toBe('decode_error');
  });

  it('should reject out-of-range values, bad enums and missing fields as invalid', () => {
    const cases = [
      { seq: 1, ts: NOW, bpm: 301 },
      { seq: 0, ts: NOW, bpm: 70 },
      { seq: 1, ts: NOW, bpm: 70.5 },
      { seq: 1, ts: NOW },
      { seq: 1, ts: 'soon', bpm: 70 },
    ];
    for (const c of cases) expect(decoder.decode(heartRateKind, 'a1', json(c), NOW).rejected[0]?.reason).toBe('invalid');
    const badClass = decoder.decode(bridgeKind, 'b1', json({ seq: 1, ts: NOW, lane: 2, vehicleClass: 'TANK', speedKmh: 1, axles: 2 }), NOW);
    expect(badClass.rejected[0]).toMatchObject({ reason: 'invalid', detail: expect.stringContaining('vehicleClass') });
    expect(decoder.decode(bridgeKind, 'b1', pb(VD, { seq: 1, ts: NOW, lane: 0, vehicleClass: 1, speedKmh: 1, axles: 2 }), NOW).rejected[0]?.reason).toBe('invalid');
  });

  it('should reject timestamps too far in the future or the past relative to receipt time', () => {
    const future = NOW + config.ingest.maxFutureSkewMs + 1;
    expect(decoder.decode(heartRateKind, 'a1', json({ seq: 1, ts: future, bpm: 70 }), NOW).rejected[0]?.reason).toBe('timestamp_out_of_range');
    expect(decoder.decode(heartRateKind, 'a1', json({ seq: 1, ts: NOW + config.ingest.maxFutureSkewMs, bpm: 70 }), NOW).readings).toHaveLength(1);
    expect(decoder.decode(heartRateKind, 'a1', json({ seq: 1, ts: NOW - config.ingest.maxPastAgeMs - 1, bpm: 70 }), NOW).rejected[0]?.reason).toBe('timestamp_out_of_range');
  });

  it('should accept the valid readings of a partly invalid batch and count the rest', () => {
    const r = decoder.decode(heartRateKind, 'a1', json([{ seq: 1, ts: NOW, bpm: 70 }, { seq: 2, ts: NOW, bpm: 999 }, 'x', { seq: 3, ts: NOW, bpm: 72 }]), NOW);
    expect(r.readings.map((x) => x.seq)).toEqual([1, 3]);
    expect(r.rejected.map((x) => x.reason)).toEqual(['invalid', 'invalid']);
  });
});
