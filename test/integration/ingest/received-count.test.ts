import mqtt from 'mqtt';
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
 * pulsegate_readings_received_total counts readings once they are durable in the log: not a QoS 0
 * publish (released before its append completes) whose append failed.
 */
const config = loadConfig({ env: {}, overrides: { mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true } } });
const kinds = createKindRegistry();
const decoder = createPayloadDecoder(kinds, config.ingest);
const open: { ingest: MqttIngest; log: FileMessageLog; cleanup: () => Promise<void>; client?: mqtt.MqttClient }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    o.client?.end(true);
    await o.ingest.close();
    await o.log.close();
    await o.cleanup();
  }
});

/** An ingest on a real log. */
async function rig() {
  const dir = await tempDir();
  const log = await createMessageLog({ dir: dir.dir });
  await log.start();
  const registry = createRegistry();
  const metrics = createIngestMetrics(registry, [...kinds.keys()]);
  let durable = 0;
  const ingest = await createMqttIngest({
    config: config.mqtt,
    maxInFlightReadings: 1000,
    kinds,
    decoder,
    credentials: null,
    log,
    clock: systemClock,
    metrics,
    logger: pino({ level: 'silent' }),
    onDurable: (readings) => {
      durable += readings.length;
    },
  });
  await ingest.start();
  const entry: (typeof open)[number] = { ingest, log, cleanup: dir.cleanup };
  open.push(entry);
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
  entry.client = client;
  const metric = async (name: string, labels: Record<string, string>) => sample(await registry.metrics(), name, labels);
  return { ingest, log, client, metric, durable: () => durable };
}

const reading = (seq: number) => JSON.stringify({ seq, ts: Date.now(), bpm: 70 });

describe('readings received', () => {
  it('a QoS 0 publish whose append fails was counted as received: it is not', async () => {
    const r = await rig();
    await r.log.close(); // a closed log refuses every append: its callback gets the error
    r.client.publish('sensors/heart-rate/q0', reading(1), { qos: 0 });
    await eventually(() => r.metric('pulsegate_mqtt_publishes_total', { qos: '0' }), (n) => n === 1);
    await r.ingest.drain();
    expect(await r.metric('pulsegate_readings_received_total', { kind: 'heart-rate' })).toBe(0);
  });

  it('a publish the log takes is counted once it is durable, QoS 0 and QoS 1 alike', async () => {
    const r = await rig();
    r.client.publish('sensors/heart-rate/ok', reading(1), { qos: 0 });
    await r.client.publishAsync('sensors/heart-rate/ok', reading(2), { qos: 1 });
    await eventually(() => r.metric('pulsegate_readings_received_total', { kind: 'heart-rate' }), (n) => n === 2);
    expect(r.durable()).toBe(2);
  });
});
