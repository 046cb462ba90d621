import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { createKindRegistry } from '../../gateway/kinds/registry.js';
import { createEmbeddedSink } from '../../gateway/sinks/embedded-sink.js';
import { createPayloadEncoder } from '../../simulators/payload-encoder.js';
import { startChildGateway, type ChildGateway } from '../helpers/child-gateway.js';
import { mulberry32 } from '../helpers/random.js';

/**
 * The promise of the product: a QoS 1 reading that got its PUBACK survives kill -9 of the gateway
 * at any instant and is counted exactly once afterwards.
 */
const DEVICES = 6;
const KILLS = 4;
const dataDirs: string[] = [];
afterAll(() => {
  for (const dataDir of dataDirs) process.env['PULSEGATE_KEEP_TEST_DATA'] ? process.stderr.write(`kept ${dataDir}\n`) : rmSync(dataDir, { recursive: true, force: true });
});

const hr = createPayloadEncoder('heart-rate', 'protobuf');
/**
 * The publishes: one JSON reading each, or protobuf batches of 10 (stored through the store
 * batches' payload entries, decoded again on the sink thread).
 */
const SHAPES = [
  { name: 'one JSON reading a publish', perPublish: 1, body: (seq: number, ts: number) => JSON.stringify({ seq, ts, bpm: 60 + (seq % 100) }) },
  {
    name: 'protobuf batches of 10 readings',
    perPublish: 10,
    body: (seq: number, ts: number) => hr.encodeBatch(Array.from({ length: 10 }, (_, i) => ({ seq: seq + i, ts: ts + i, bpm: 60 + ((seq + i) % 100) }))),
  },
] as const;
type Shape = (typeof SHAPES)[number];

interface Publisher {
  readonly deviceId: string;
  nextSeq: number;
  readonly acked: Set<number>;
}

/** Publishes QoS 1 readings as fast as acks come back (a window of 20 in flight) until stopped. */
function drive(port: number, pubs: Publisher[], baseTs: number, shape: Shape): { stop: () => Promise<void> } {
  let running = true;
  const clients: MqttClient[] = [];
  const loops = pubs.map(async (p) => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 2000 }).catch(() => null);
    if (client === null) return;
    clients.push(client);
    client.on('error', () => undefined);
    // mqtt.js keeps unacknowledged QoS 1 publishes pending after the socket dies; wake on close.
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const inflight = new Set<Promise<void>>();
    while (running && client.connected) {
      const seq = p.nextSeq;
      p.nextSeq += shape.perPublish;
      const pr = client.publishAsync(`sensors/heart-rate/${p.deviceId}`, shape.body(seq, baseTs + seq), { qos: 1 }).then(
        () => {
          for (let i = 0; i < shape.perPublish; i++) p.acked.add(seq + i);
        },
        () => undefined,
      );
      inflight.add(pr);
      void pr.finally(() => inflight.delete(pr));
      if (inflight.size >= 20) await Promise.race([...inflight, closed]);
    }
    // Drain what is in flight, bounded: a publish the killed gateway never answers gives up after 1 s.
    await Promise.race([Promise.allSettled([...inflight]), closed, new Promise((r) => setTimeout(r, 1000))]);
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const c of clients) c.end(true);
    },
  };
}

describe('crash recovery', () => {
  it.each(SHAPES)('should count every acknowledged QoS 1 reading exactly once after repeated kill -9: $name', async (shape) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pg-crash-'));
    dataDirs.push(dataDir);
    const random = mulberry32(0xc0ffee);
    const pubs: Publisher[] = Array.from({ length: DEVICES }, (_, i) => ({ deviceId: `crash-${i}`, nextSeq: 1, acked: new Set<number>() }));
    // Event times 1 ms apart from a few minutes ago: all valid (not out of range), in order.
    const baseTs = Date.now() - 5 * 60_000;
    const env = {};
    let gw: ChildGateway = await startChildGateway(dataDir, env);
    for (let k = 0; k < KILLS; k++) {
      const load = drive(gw.ports.mqtt, pubs, baseTs, shape);
      // The kill comes after a (seeded) random stretch of load: the moment is the point, not a wait.
      await new Promise((r) => setTimeout(r, 400 + Math.floor(random() * 900)));
      gw.child.kill('SIGKILL');
      await gw.exited;
      await load.stop();
      process.stderr.write(`kill ${k + 1}: acked so far ${pubs.reduce((n, p) => n + p.acked.size, 0)}\n`);
      gw = await startChildGateway(dataDir, env);
    }
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);

    const config = loadConfig({ env: {}, overrides: { dataDir } });
    const sink = createEmbeddedSink({ config: config.sinks, kinds: createKindRegistry() });
    await sink.start();
    let totalAcked = 0;
    try {
      for (const p of pubs) {
        totalAcked += p.acked.size;
        const readings = await sink.queryReadings({ kind: 'heart-rate', deviceId: p.deviceId, from: 0, to: Date.now() + 3_600_000, limit: 1_000_000 });
        const stored = new Set(readings.map((r) => r.seq));
        expect(readings.length, 'no reading stored twice').toBe(stored.size);
        const missing = [...p.acked].filter((s) => !stored.has(s));
        const span = missing.length === 0 ? '' : `${missing.length} of ${p.acked.size} acked, seqs ${missing[0]}..${missing[missing.length - 1]}, stored ${stored.size}`;
        expect(span, `acknowledged but lost (${p.deviceId})`).toBe('');
        // Windows count each stored reading exactly once: no replay double counted into them.
        const windows = await sink.queryWindows({ kind: 'heart-rate', deviceId: p.deviceId, sizeMs: 10_000, from: 0, to: Date.now() + 3_600_000, limit: 1_000_000 });
        const counted = windows.reduce((n, w) => n + (w.values['bpm_count'] ?? 0), 0);
        expect(counted, `window counts of ${p.deviceId}`).toBe(stored.size);
      }
    } finally {
      await sink.close();
    }
    expect(totalAcked).toBeGreaterThan(DEVICES * KILLS * 10);
  }, 180_000);
});
