import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { BUILTIN_KINDS, createConfiguredKindRegistry } from '../../../gateway/kinds/registry.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createWindowEngine } from '../../../gateway/window/window-engine.js';
import type { WindowResult } from '../../../gateway/window/types.js';

const NOW = 1_763_800_000_000;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('built-in kinds (kinds/builtin.yaml)', () => {
  it('should be the heart-rate and bridge kinds that were code, field for field', () => {
    const plain = BUILTIN_KINDS.map((k) => ({ ...k, fields: Object.fromEntries(Object.entries(k.fields).map(([n, f]) => [n, { ...f, unit: undefined }])) }));
    expect(JSON.parse(JSON.stringify(plain))).toEqual([
      {
        name: 'heart-rate',
        proto: { reading: 'pulsegate.v1.HeartRateReading', batch: 'pulsegate.v1.HeartRateBatch', batchField: 'readings' },
        measurement: 'heart_rate',
        fields: { bpm: { type: 'int', min: 0, max: 300, required: true }, rrMs: { type: 'int', min: 100, max: 5000, required: false, protoName: 'rr_ms' } },
        tags: [],
        window: { groupBy: [], aggregates: [{ field: 'bpm', ops: ['count', 'min', 'max', 'sum', 'mean', 'last'] }] },
      },
      {
        name: 'bridge',
        proto: { reading: 'pulsegate.v1.VehicleDetection', batch: 'pulsegate.v1.VehicleBatch', batchField: 'detections' },
        measurement: 'bridge_vehicle',
        fields: {
          lane: { type: 'int', min: 1, max: 16, required: true },
          vehicleClass: { type: 'enum', values: ['UNKNOWN', 'CAR', 'BUS', 'TRUCK', 'MOTORCYCLE', 'VAN'], required: true, protoName: 'vehicle_class' },
          speedKmh: { type: 'float', min: 0, max: 400, required: true, protoName: 'speed_kmh' },
          axles: { type: 'int', min: 2, max: 20, required: true },
          weightKg: { type: 'float', min: 0, max: 200_000, required: false, protoName: 'weight_kg' },
        },
        tags: ['lane', 'vehicleClass'],
        window: { groupBy: ['vehicleClass', 'lane'], aggregates: [{ ops: ['count'] }, { field: 'speedKmh', ops: ['mean', 'max'] }] },
      },
    ]);
  });
});

describe('kinds defined in the config', () => {
  const config = loadConfig({
    env: {},
    overrides: {
      kinds: {
        door: {
          fields: {
            open: { type: 'bool', required: true },
            zone: { type: 'enum', values: ['north', 'south'], required: true },
            label: { type: 'string', maxLength: 8 },
            battery: { type: 'int', unit: '%', min: 0, max: 100 },
          },
          tags: ['zone'],
          window: { groupBy: ['zone', 'open'], sizesMs: [1000], aggregates: [{ ops: ['count'] }, { field: 'battery', ops: ['min', 'last'] }] },
        },
      },
    },
  });
  const kinds = createConfiguredKindRegistry(config.kinds);
  const door = kinds.get('door')!;
  const decoder = createPayloadDecoder(kinds, config.ingest);

  it('should follow the built-in kinds in the registry, with the default measurement', () => {
    expect([...kinds.keys()]).toEqual(['heart-rate', 'bridge', 'door']);
    expect(door.measurement).toBe('door');
    expect(door.proto).toBeUndefined();
  });

  it('should decode JSON on sensors/<kind>/<id> with bool as 1/0, strings bounded, and refuse protobuf', () => {
    const ok = decoder.decode(door, 'd1', json({ seq: 1, ts: NOW, open: true, zone: 'north', label: 'front' }), NOW);
    expect(ok.readings).toEqual([{ kind: 'door', deviceId: 'd1', seq: 1, ts: NOW, values: { open: 1, zone: 'north', label: 'front' } }]);
    expect(decoder.decode(door, 'd1', json({ seq: 2, ts: NOW, open: false, zone: 'south' }), NOW).readings[0]?.values).toEqual({ open: 0, zone: 'south' });
    expect(decoder.decode(door, 'd1', json({ seq: 2, ts: NOW, open: 'yes', zone: 'north' }), NOW).rejected[0]?.detail).toBe('open must be true or false, got "yes"');
    expect(decoder.decode(door, 'd1', json({ seq: 2, ts: NOW, open: false, zone: 'north', label: 'far too long' }), NOW).rejected[0]?.reason).toBe('invalid');
    expect(decoder.decode(door, 'd1', Buffer.from([0x08, 0x01]), NOW).rejected[0]).toEqual({ reason: 'decode_error', detail: 'kind door takes JSON payloads only (it has no protobuf messages)' });
  });

  it('should window by its groupBy fields with its own window sizes', () => {
    let now = NOW;
    const engine = createWindowEngine({ kinds, config: { ...config.window, idleTimeoutMs: 1000 }, clock: { now: () => now } });
    const out: WindowResult[] = [];
    engine.onEmit((w) => out.push(w));
    const reading = (seq: number, ts: number, open: number, zone: string, battery: number): Reading => ({ kind: 'door', deviceId: 'd1', seq, ts, values: { open, zone, battery } });
    for (const r of [reading(1, NOW, 1, 'north', 90), reading(2, NOW + 100, 1, 'north', 88), reading(3, NOW + 200, 0, 'north', 87), reading(4, NOW + 300, 1, 'south', 50)]) engine.add(r, now, now);
    now += 5000;
    engine.tick();
    const got = out.filter((w) => w.kind === 'door').map((w) => [w.sizeMs, w.group, w.values]).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    expect(got).toEqual([
      [1000, { zone: 'north', open: '0' }, { count: 1, battery_min: 87, battery_last: 87 }],
      [1000, { zone: 'north', open: '1' }, { count: 2, battery_min: 88, battery_last: 88 }],
      [1000, { zone: 'south', open: '1' }, { count: 1, battery_min: 50, battery_last: 50 }],
    ]);
  });
});
