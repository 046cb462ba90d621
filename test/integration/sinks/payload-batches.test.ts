/**
 * A real gateway (embedded store on its sink thread) given publishes of many readings over MQTT:
 * its store batches keep them as their payloads, the sink thread decodes those again, and the
 * store answers every acknowledged reading exactly as ingest decoded it.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { decodeOutgoing } from '../../../gateway/log/outbox.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { decodeBatch } from '../../../gateway/sinks/batch-codec.js';
import { createPayloadEncoder } from '../../../simulators/payload-encoder.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { waitForValue } from '../../helpers/wait.js';

let gw: TestGateway;
let dataDir: string;
beforeAll(async () => {
  gw = await startTestGateway({ sinks: { flushIntervalMs: 100, batchMaxPoints: 250 } });
  dataDir = gw.dataDir;
});
afterAll(async () => {
  await gw?.dispose();
});

interface Row {
  kind: string;
  deviceId: string;
  seq: number;
  ts: number;
  values: Record<string, number | string>;
}

const rows = async (kind: string, device: string): Promise<Row[]> =>
  ((await (await fetch(`http://127.0.0.1:${gw.ports.http}/v1/readings?kind=${kind}&device=${device}&from=0&limit=10000`)).json()) as { readings: Row[] }).readings;

describe('store batches holding payloads, through a real gateway', () => {
  it('should store every reading of batched publishes exactly, payload entries and readings alike', async () => {
    const hr = createPayloadEncoder('heart-rate', 'protobuf');
    const bridge = createPayloadEncoder('bridge', 'protobuf');
    const hrJson = createPayloadEncoder('heart-rate', 'json');
    const t0 = Date.now() - 120_000;
    const heart = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ seq: from + i, ts: t0 + (from + i) * 200, bpm: 50 + ((from + i) % 100), ...((from + i) % 4 === 0 ? {} : { rrMs: 600 + ((from + i) % 50) }) }));
    const vehicles = Array.from({ length: 30 }, (_, i) => ({ seq: i + 1, ts: t0 + i * 1000, lane: 1 + (i % 3), vehicleClass: (['CAR', 'TRUCK', 'BUS'] as const)[i % 3]!, speedKmh: 40 + i * 1.5, axles: 2 + (i % 4), ...(i % 2 === 0 ? { weightKg: 1200.25 + i * 100 } : {}) }));
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    try {
      // 100 and 120 readings a publish (payload entries), 2 a publish (readings), JSON (wordy: readings),
      // and two publishes whose first half was seen already (dedup: their new half as readings).
      await client.publishAsync('sensors/heart-rate/pb-1', hr.encodeBatch(heart(1, 100)), { qos: 1 });
      await client.publishAsync('sensors/heart-rate/pb-1', hr.encodeBatch(heart(101, 120)), { qos: 1 });
      await client.publishAsync('sensors/bridge/pb-2', bridge.encodeBatch(vehicles), { qos: 1 });
      await client.publishAsync('sensors/heart-rate/pb-3', hr.encodeBatch(heart(1, 2)), { qos: 1 });
      await client.publishAsync('sensors/heart-rate/pb-4', hrJson.encodeBatch(heart(1, 10)), { qos: 1 });
      await client.publishAsync('sensors/heart-rate/pb-1', hr.encodeBatch(heart(201, 40)), { qos: 1 });
      await client.publishAsync('sensors/heart-rate/pb-1', hr.encodeBatch(heart(221, 40)), { qos: 0 });
      // A publish of 12 readings with 3 invalid ones (bpm 400, rrMs 50, a ts 8 days old): its 9 valid readings.
      const partly = heart(1, 12).map((r, i) => (i === 2 ? { ...r, bpm: 400 } : i === 6 ? { ...r, rrMs: 50 } : i === 10 ? { ...r, ts: Date.now() - 8 * 86_400_000 } : r));
      await client.publishAsync('sensors/heart-rate/pb-5', hr.encodeBatch(partly), { qos: 1 });
    } finally {
      await client.endAsync();
    }

    const pb1 = await waitForValue(() => rows('heart-rate', 'pb-1'), (r) => r.length >= 260, { what: 'the 260 readings of pb-1 stored' });
    const expectHeart = (got: Row[], device: string, seqs: readonly { seq: number; ts: number; bpm: number; rrMs?: number }[]): void => {
      const sorted = [...got].sort((a, b) => a.seq - b.seq);
      expect(sorted.map((r) => ({ kind: r.kind, deviceId: r.deviceId, seq: r.seq, ts: r.ts, values: r.values }))).toEqual(
        seqs.map((s) => ({ kind: 'heart-rate', deviceId: device, seq: s.seq, ts: s.ts, values: s.rrMs === undefined ? { bpm: s.bpm } : { bpm: s.bpm, rrMs: s.rrMs } })),
      );
    };
    expectHeart(pb1, 'pb-1', heart(1, 260));
    expectHeart(await waitForValue(() => rows('heart-rate', 'pb-3'), (r) => r.length >= 2, { what: 'pb-3' }), 'pb-3', heart(1, 2));
    expectHeart(await waitForValue(() => rows('heart-rate', 'pb-4'), (r) => r.length >= 10, { what: 'pb-4' }), 'pb-4', heart(1, 10));
    expectHeart(await waitForValue(() => rows('heart-rate', 'pb-5'), (r) => r.length >= 9, { what: 'pb-5' }), 'pb-5', heart(1, 12).filter((_, i) => i !== 2 && i !== 6 && i !== 10));
    const pb2 = (await waitForValue(() => rows('bridge', 'pb-2'), (r) => r.length >= 30, { what: 'pb-2' })).sort((a, b) => a.seq - b.seq);
    expect(pb2.map((r) => [r.seq, r.ts, r.values])).toEqual(
      vehicles.map((v) => [v.seq, v.ts, { lane: v.lane, vehicleClass: v.vehicleClass, speedKmh: v.speedKmh, axles: v.axles, ...(v.weightKg === undefined ? {} : { weightKg: v.weightKg }) }]),
    );

    const metrics = await (await fetch(`http://127.0.0.1:${gw.ports.http}/metrics`)).text();
    expect(metrics).toContain('pulsegate_sink_payload_mismatches_total 0');

    // The batches held payloads, of the publishes of 4 readings or more that dedup left whole.
    await gw.close();
    const logDir = loadConfig({ env: {}, overrides: { dataDir } }).log.dir;
    const entries: string[] = [];
    for (const r of await readLogRecords(logDir)) {
      if (r.type !== RECORD_TYPES.outgoing) continue;
      decodeBatch(decodeOutgoing(r.payload).payload, (_receivedAt, topic, _payload, count) => {
        entries.push(`${topic} x${count}`);
        return [];
      });
    }
    expect(entries.sort()).toEqual(['sensors/bridge/pb-2 x30', 'sensors/heart-rate/pb-1 x100', 'sensors/heart-rate/pb-1 x120', 'sensors/heart-rate/pb-5 x9']);
  });
});
