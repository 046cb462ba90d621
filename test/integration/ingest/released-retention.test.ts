import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqttPacket from 'mqtt-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../gateway/clock.js';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { createIngestMetrics } from '../../../gateway/ingest/ingest-metrics.js';
import { createMqttIngest, type MqttIngest } from '../../../gateway/ingest/mqtt-ingest.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { createRegistry } from '../../../gateway/metrics.js';
import { eventually, sample } from '../../helpers/metrics.js';
import { tempDir } from '../../unit/log/log-test-helpers.js';

/**
 * A QoS 0 publish is released at once and processed once its record is durable. While it waits
 * for the fdatasync (~100 ms under load), what its durable callback holds is kept alive through
 * one or two young-generation collections and copied on each. The callback needs the readings;
 * it must not hold aedes' per-packet `done`, and through it the packet, its payload and aedes'
 * closures. Measured here as heap per publish waiting for the disk: the log's group commit is
 * held for a minute, so every record stays pending while the heap is measured.
 */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const config = loadConfig({ env: {}, overrides: { mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true } } });
const kinds = createKindRegistry();
const decoder = createPayloadDecoder(kinds, config.ingest);
const PUBLISHES = 4000;
const open: { ingest: MqttIngest; log: FileMessageLog; socket: Socket; cleanup: () => Promise<void> }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    o.socket.destroy();
    await o.ingest.close();
    await o.log.close();
    await o.cleanup();
  }
});

function heapBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

describe('a released QoS 0 publish waiting for its fdatasync', () => {
  it('holds its readings, not the packet and aedes state: under 1 KB of heap each', async () => {
    const dir = await tempDir();
    const log = await createMessageLog({ dir: dir.dir, groupCommitIntervalMs: 60_000, groupCommitMaxBytes: 64 * 1024 * 1024 });
    await log.start();
    const registry = createRegistry();
    let durable = 0;
    const ingest = await createMqttIngest({
      config: config.mqtt,
      maxInFlightReadings: 1_000_000,
      kinds,
      decoder,
      credentials: null,
      log,
      clock: systemClock,
      metrics: createIngestMetrics(registry, [...kinds.keys()]),
      logger: pino({ level: 'silent' }),
      onDurable: (readings) => {
        durable += readings.length;
      },
    });
    await ingest.start();
    const socket = connect({ host: '127.0.0.1', port: ingest.ports.mqtt, noDelay: true });
    open.push({ ingest, log, socket, cleanup: dir.cleanup });
    await once(socket, 'connect');
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'retention', keepalive: 0 } as mqttPacket.IConnectPacket));
    await once(socket, 'data'); // CONNACK
    const metric = async (name: string) => sample(await registry.metrics(), name, { qos: '0' });

    const before = heapBytes();
    const now = Date.now();
    const chunks: Buffer[] = [];
    for (let i = 1; i <= PUBLISHES; i++) {
      const payload = Buffer.from(JSON.stringify({ seq: i, ts: now, bpm: 60 + (i % 40) }));
      chunks.push(mqttPacket.generate({ cmd: 'publish', topic: `sensors/heart-rate/dev-${i % 50}`, payload, qos: 0, retain: false, dup: false } as mqttPacket.IPublishPacket));
    }
    socket.write(Buffer.concat(chunks));
    chunks.length = 0;
    await eventually(() => metric('pulsegate_mqtt_publishes_total'), (n) => n === PUBLISHES, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const perPublish = (heapBytes() - before) / PUBLISHES;
    expect(durable).toBe(0); // every record is still waiting for the disk

    // ~720 bytes each: the callback and its scope, the decoded reading, the topic, the log's
    // bookkeeping. With aedes' done held as well it was ~1,330.
    expect(perPublish, `${Math.round(perPublish)} bytes of heap per pending publish`).toBeGreaterThan(100);
    expect(perPublish, `${Math.round(perPublish)} bytes of heap per pending publish`).toBeLessThan(1000);
  }, 60_000);
});
