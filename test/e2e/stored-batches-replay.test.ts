import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { createPayloadReader } from '../../gateway/ingest/ingest-record.js';
import { createKindRegistry } from '../../gateway/kinds/registry.js';
import { decodeOutgoing } from '../../gateway/log/outbox.js';
import { RECORD_TYPES } from '../../gateway/log/types.js';
import { decodeBatch } from '../../gateway/sinks/batch-codec.js';
import { createEmbeddedSink } from '../../gateway/sinks/embedded-sink.js';
import type { PayloadExpander } from '../../gateway/sinks/types.js';
import { createPayloadEncoder } from '../../simulators/payload-encoder.js';
import { startChildGatewayWithConfig } from '../helpers/child-gateway-config.js';
import type { ChildGateway } from '../helpers/child-gateway.js';
import { readLogRecords } from '../helpers/log-records.js';

/**
 * After a kill -9, the replay passes over the raw readings that the store's batches already in
 * the log hold (they reach the store from there) and batches only the rest: every acknowledged
 * reading is stored once, and the log's batches hold each raw reading once, not twice.
 */
const PUBLISHES = 250;
const DEVICES = 5;
const dataDirs: string[] = [];
let gw: ChildGateway | null = null;
afterAll(() => {
  // A failed assertion leaves the gateway of the moment running.
  if (gw !== null && gw.child.exitCode === null) gw.child.kill('SIGKILL');
  for (const dataDir of dataDirs) {
    if (process.env['PULSEGATE_KEEP_TEST_DATA']) process.stderr.write(`kept ${dataDir}\n`);
    else rmSync(dataDir, { recursive: true, force: true });
  }
});

/** What the sink thread decodes a store batch's payload entries with. */
const readPayload = createPayloadReader(createKindRegistry());
const expand: PayloadExpander = (receivedAt, topic, payload, _count, limits) => readPayload(topic, payload, receivedAt, limits);
const hr = createPayloadEncoder('heart-rate', 'protobuf');

/**
 * The publishes of both runs: one JSON reading each (batched reading by reading), or protobuf
 * batches of 10 (batched as their payloads, whole: a batch covers whole records).
 */
const SHAPES = [
  { name: 'one JSON reading a publish', publishes: PUBLISHES, perPublish: 1, encode: (seq: number, ts: number) => Buffer.from(JSON.stringify({ seq, ts, bpm: 70 })) },
  // 255: 2,550 readings, so that the last store batch (100 points) is still filling at the kill.
  { name: 'protobuf batches of 10 readings', publishes: PUBLISHES + DEVICES, perPublish: 10, encode: (seq: number, ts: number) => hr.encodeBatch(Array.from({ length: 10 }, (_, i) => ({ seq: (seq - 1) * 10 + i + 1, ts: ts + i * 20, bpm: 70 + i }))) },
] as const;

// Batches of 100 points are appended as they fill; the rest waits for an interval that does not
// come before the kill, and no periodic checkpoint is written: the replay covers the whole run.
const config = { sinks: { batchMaxPoints: 100, flushIntervalMs: 600_000, healthIntervalMs: 600_000 }, log: { checkpointIntervalMs: 600_000 } };

describe('replay after kill -9 with store batches in the log', () => {
  it.each(SHAPES)('should batch again only the raw readings no logged batch holds, and store every acknowledged reading once: $name', async ({ publishes, perPublish, encode }) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pg-stored-replay-'));
    dataDirs.push(dataDir);
    const readings = publishes * perPublish;
    gw = await startChildGatewayWithConfig(dataDir, config);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const baseTs = Date.now() - 60_000;
    await Promise.all(
      Array.from({ length: publishes }, (_, i) => {
        const seq = Math.floor(i / DEVICES) + 1;
        return client.publishAsync(`sensors/heart-rate/sr-${i % DEVICES}`, encode(seq, baseTs + seq * 200), { qos: 1 });
      }),
    );
    await client.endAsync();
    gw.child.kill('SIGKILL');
    await gw.exited;

    const logDir = loadConfig({ env: {}, overrides: { dataDir } }).log.dir;
    const batchedBefore = (await readLogRecords(logDir)).filter((r) => r.type === RECORD_TYPES.outgoing).reduce((n, r) => n + decodeBatch(decodeOutgoing(r.payload).payload, expand).readings.length, 0);
    // Some batches filled before the kill, and some readings were still waiting in memory.
    expect(batchedBefore).toBeGreaterThan(0);
    expect(batchedBefore).toBeLessThan(readings);

    gw = await startChildGatewayWithConfig(dataDir, config);
    const line = gw.output.find((l) => l.includes('were not batched again'));
    expect(line, 'the replay passed over the batched readings').toBeDefined();
    const told = JSON.parse(line!) as { passedOverRecords: number };
    expect(told.passedOverRecords * perPublish).toBe(batchedBefore);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);

    // Every raw reading is in the log's batches exactly once: those of the first run, then the
    // rest from the replay and the shutdown flush.
    const seqs = new Map<string, number[]>();
    for (const r of await readLogRecords(logDir)) {
      if (r.type !== RECORD_TYPES.outgoing) continue;
      for (const reading of decodeBatch(decodeOutgoing(r.payload).payload, expand).readings) seqs.set(reading.deviceId, [...(seqs.get(reading.deviceId) ?? []), reading.seq]);
    }
    const batchedTotal = [...seqs.values()].reduce((n, s) => n + s.length, 0);
    expect(batchedTotal).toBe(readings);

    const sink = createEmbeddedSink({ config: loadConfig({ env: {}, overrides: { dataDir } }).sinks, kinds: createKindRegistry() });
    await sink.start();
    try {
      for (let d = 0; d < DEVICES; d++) {
        const stored = await sink.queryReadings({ kind: 'heart-rate', deviceId: `sr-${d}`, from: 0, to: Date.now() + 3_600_000, limit: 10_000 });
        expect(stored.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: readings / DEVICES }, (_, i) => i + 1));
      }
    } finally {
      await sink.close();
    }
  }, 90_000);
});
