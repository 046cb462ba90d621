import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { decodeDeadLetter } from '../../../gateway/log/dead-letter.js';
import { createMqttIngest, type MqttIngest } from '../../../gateway/ingest/mqtt-ingest.js';
import { createPayloadDecoder, type PayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { createIngestMetrics } from '../../../gateway/ingest/ingest-metrics.js';
import { createRegistry } from '../../../gateway/metrics.js';
import { systemClock } from '../../../gateway/clock.js';
import { readAll, tempDir } from '../../unit/log/log-test-helpers.js';
import { sample } from '../../helpers/metrics.js';

/**
 * The last line of defence: whatever code a publish reaches, an exception it raises is turned
 * into a rejection of that publish alone. The decoder here is the real one, made to fail for one
 * device the way a future decoder bug would.
 */
describe('ingest safety net', () => {
  const config = loadConfig({ env: {}, overrides: { mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true } } });
  const kinds = createKindRegistry();
  const registry = createRegistry();
  const metrics = createIngestMetrics(registry, [...kinds.keys()]);
  const real = createPayloadDecoder(kinds, config.ingest);
  const failing: PayloadDecoder = {
    decode(kind, deviceId, payload, receivedAt) {
      if (deviceId === 'boom') throw new TypeError('decoder bug');
      return real.decode(kind, deviceId, payload, receivedAt);
    },
  };
  let dir: { dir: string; cleanup: () => Promise<void> };
  let log: FileMessageLog;
  let ingest: MqttIngest;
  let processed = 0;
  beforeAll(async () => {
    dir = await tempDir();
    log = await createMessageLog({ dir: dir.dir });
    await log.start();
    ingest = await createMqttIngest({
      config: config.mqtt,
      maxInFlightReadings: 1000,
      kinds,
      decoder: failing,
      credentials: null,
      log,
      clock: systemClock,
      metrics,
      logger: pino({ level: 'silent' }),
      onDurable: (readings) => {
        if (readings[0]?.deviceId === 'boom-later') throw new RangeError('pipeline bug');
        processed += readings.length;
      },
    });
    await ingest.start();
  });
  afterAll(async () => {
    await ingest?.close();
    await log?.close();
    await dir?.cleanup();
  });

  it('a publish whose handling throws is rejected as internal_error and dead-lettered; the connection and the process go on', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    await client.publishAsync('sensors/heart-rate/boom', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 }), { qos: 1 });
    await client.publishAsync('sensors/heart-rate/boom', JSON.stringify({ seq: 2, ts: Date.now(), bpm: 70 }), { qos: 0 });
    // A failure after the reading is durable: it stays acked (it is in the log), and is counted.
    await client.publishAsync('sensors/heart-rate/boom-later', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 }), { qos: 1 });
    await client.publishAsync('sensors/heart-rate/fine', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 }), { qos: 1 });
    expect(client.connected).toBe(true);
    await client.endAsync();
    await ingest.drain();
    expect(processed).toBe(1);
    const text = await registry.metrics();
    expect(sample(text, 'pulsegate_readings_rejected_total', { reason: 'internal_error' })).toBe(3);
    const records = await readAll(log);
    const dead = records.filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
    expect(dead.map((d) => [d.reason, d.topic])).toEqual([
      ['internal_error', 'sensors/heart-rate/boom'],
      ['internal_error', 'sensors/heart-rate/boom'],
    ]);
    expect(records.filter((r) => r.type === RECORD_TYPES.ingest)).toHaveLength(2);
  });
});

/**
 * A publish held back while the log is over its disk high-water mark is appended later, from a
 * timer: outside the broker hook's try/catch. A throw there is made here by a log whose append
 * breaks its never-throw contract once, the way a future record-encoding bug would; the log
 * itself is the real one, and its `backpressured` is held by the test.
 */
describe('ingest safety net, publishes held back for the disk', () => {
  const config = loadConfig({ env: {}, overrides: { mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true } } });
  const kinds = createKindRegistry();
  const registry = createRegistry();
  const metrics = createIngestMetrics(registry, [...kinds.keys()]);
  let dir: { dir: string; cleanup: () => Promise<void> };
  let log: FileMessageLog;
  let ingest: MqttIngest;
  const processed: string[] = [];
  let holdForDisk = false;
  let throwingAppends = 0;
  beforeAll(async () => {
    dir = await tempDir();
    log = await createMessageLog({ dir: dir.dir });
    await log.start();
    const faulty = new Proxy(log, {
      get(target, key) {
        if (key === 'backpressured') return holdForDisk || target.backpressured;
        if (key === 'append') {
          return (type: number, payload: never, cb: never) => {
            if (type === RECORD_TYPES.ingest && throwingAppends > 0) {
              throwingAppends--;
              throw new RangeError('record encoding bug');
            }
            return target.append(type as never, payload, cb);
          };
        }
        const v: unknown = Reflect.get(target, key);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    ingest = await createMqttIngest({
      config: config.mqtt,
      maxInFlightReadings: 1000,
      kinds,
      decoder: createPayloadDecoder(kinds, config.ingest),
      credentials: null,
      log: faulty,
      clock: systemClock,
      metrics,
      logger: pino({ level: 'silent' }),
      onDurable: (readings) => {
        processed.push(...readings.map((r) => r.deviceId));
      },
    });
    await ingest.start();
  });
  afterAll(async () => {
    await ingest?.close();
    await log?.close();
    await dir?.cleanup();
  });

  const internalErrors = async (): Promise<number> => sample(await registry.metrics(), 'pulsegate_readings_rejected_total', { reason: 'internal_error' });
  const body = JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 });
  /** Resolves once drain() does, or rejects: drain waits for every publish taken in to settle. */
  const drained = (): Promise<void> => Promise.race([ingest.drain(), new Promise<void>((_, reject) => setTimeout(() => reject(new Error('drain did not finish: a publish was never settled')), 3000))]);

  it('an append that throws when held-back publishes resume rejects that publish alone as internal_error; the others resume, the process goes on', async () => {
    const url = `mqtt://127.0.0.1:${ingest.ports.mqtt}`;
    const [a, b] = await Promise.all([1, 2].map(() => mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 })));
    const before = await internalErrors();
    holdForDisk = true;
    // One connection each: aedes reads a connection's next packet only once the current one is released.
    // The second only once the first is held: held-back publishes resume in arrival order, and
    // the append made to throw is the first to resume.
    const first = a!.publishAsync('sensors/heart-rate/held-1', body, { qos: 1 });
    await new Promise((r) => setTimeout(r, 150));
    const second = b!.publishAsync('sensors/heart-rate/held-2', body, { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(processed).toEqual([]);
    throwingAppends = 1;
    holdForDisk = false;
    // Both acknowledged: the first's dead letter is durable, the second's reading.
    await Promise.race([Promise.all([first, second]), new Promise((_, reject) => setTimeout(() => reject(new Error('a held-back publish was never answered')), 5000))]);
    expect(processed).toEqual(['held-2']);
    expect(await internalErrors()).toBe(before + 1);
    await drained();
    await Promise.all([a!.endAsync(), b!.endAsync()]);
    const dead = (await readAll(log)).filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
    expect(dead.map((d) => [d.reason, d.topic])).toEqual([['internal_error', 'sensors/heart-rate/held-1']]);
  });

  it('an append that throws at once is rejected as internal_error and leaves nothing in flight (drain finishes)', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const before = await internalErrors();
    throwingAppends = 1;
    await client.publishAsync('sensors/heart-rate/direct-1', body, { qos: 1 });
    await client.publishAsync('sensors/heart-rate/direct-2', body, { qos: 1 });
    expect(await internalErrors()).toBe(before + 1);
    expect(processed).toContain('direct-2');
    expect(processed).not.toContain('direct-1');
    await drained();
    await client.endAsync();
  });
});
