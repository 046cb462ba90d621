import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { createKindRegistry } from '../../gateway/kinds/registry.js';
import { decodeOutgoing } from '../../gateway/log/outbox.js';
import { RECORD_TYPES } from '../../gateway/log/types.js';
import { decodeBatch } from '../../gateway/sinks/batch-codec.js';
import { createEmbeddedSink } from '../../gateway/sinks/embedded-sink.js';
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
const dataDir = mkdtempSync(join(tmpdir(), 'pg-stored-replay-'));
let gw: ChildGateway | null = null;
afterAll(() => {
  // A failed assertion leaves the gateway of the moment running.
  if (gw !== null && gw.child.exitCode === null) gw.child.kill('SIGKILL');
  if (process.env['PULSEGATE_KEEP_TEST_DATA']) process.stderr.write(`kept ${dataDir}\n`);
  else rmSync(dataDir, { recursive: true, force: true });
});

// Batches of 100 points are appended as they fill; the rest waits for an interval that does not
// come before the kill, and no periodic checkpoint is written: the replay covers the whole run.
const config = { sinks: { batchMaxPoints: 100, flushIntervalMs: 600_000, healthIntervalMs: 600_000 }, log: { checkpointIntervalMs: 600_000 } };

describe('replay after kill -9 with store batches in the log', () => {
  it('should batch again only the raw readings no logged batch holds, and store every acknowledged reading once', async () => {
    gw = await startChildGatewayWithConfig(dataDir, config);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const baseTs = Date.now() - 60_000;
    await Promise.all(
      Array.from({ length: PUBLISHES }, (_, i) => {
        const seq = Math.floor(i / DEVICES) + 1;
        return client.publishAsync(`sensors/heart-rate/sr-${i % DEVICES}`, JSON.stringify({ seq, ts: baseTs + seq * 200, bpm: 70 }), { qos: 1 });
      }),
    );
    await client.endAsync();
    gw.child.kill('SIGKILL');
    await gw.exited;

    const logDir = loadConfig({ env: {}, overrides: { dataDir } }).log.dir;
    const batchedBefore = (await readLogRecords(logDir)).filter((r) => r.type === RECORD_TYPES.outgoing).reduce((n, r) => n + decodeBatch(decodeOutgoing(r.payload).payload).readings.length, 0);
    // Some batches filled before the kill, and some readings were still waiting in memory.
    expect(batchedBefore).toBeGreaterThan(0);
    expect(batchedBefore).toBeLessThan(PUBLISHES);

    gw = await startChildGatewayWithConfig(dataDir, config);
    const line = gw.output.find((l) => l.includes('were not batched again'));
    expect(line, 'the replay passed over the batched readings').toBeDefined();
    const told = JSON.parse(line!) as { passedOverRecords: number };
    expect(told.passedOverRecords).toBe(batchedBefore);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);

    // Every raw reading is in the log's batches exactly once: those of the first run, then the
    // rest from the replay and the shutdown flush.
    const seqs = new Map<string, number[]>();
    for (const r of await readLogRecords(logDir)) {
      if (r.type !== RECORD_TYPES.outgoing) continue;
      for (const reading of decodeBatch(decodeOutgoing(r.payload).payload).readings) seqs.set(reading.deviceId, [...(seqs.get(reading.deviceId) ?? []), reading.seq]);
    }
    const batchedTotal = [...seqs.values()].reduce((n, s) => n + s.length, 0);
    expect(batchedTotal).toBe(PUBLISHES);

    const sink = createEmbeddedSink({ config: loadConfig({ env: {}, overrides: { dataDir } }).sinks, kinds: createKindRegistry() });
    await sink.start();
    try {
      for (let d = 0; d < DEVICES; d++) {
        const stored = await sink.queryReadings({ kind: 'heart-rate', deviceId: `sr-${d}`, from: 0, to: Date.now() + 3_600_000, limit: 10_000 });
        expect(stored.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: PUBLISHES / DEVICES }, (_, i) => i + 1));
      }
    } finally {
      await sink.close();
    }
  }, 90_000);
});
