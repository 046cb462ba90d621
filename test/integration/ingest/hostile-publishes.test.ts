import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeDeadLetter } from '../../../gateway/log/dead-letter.js';
import { REJECT_REASONS } from '../../../gateway/ingest/reject-reasons.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { eventually, sample, scrape } from '../../helpers/metrics.js';
import { mulberry32 } from '../../helpers/random.js';

const connect = (port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> =>
  mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...opts });

const rejectedTotal = (text: string): number => REJECT_REASONS.reduce((sum, reason) => sum + sample(text, 'pulsegate_readings_rejected_total', { reason }), 0);

async function storedReadings(gw: TestGateway, device: string, from: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${gw.ports.http}/v1/readings?kind=heart-rate&device=${device}&from=${from}&limit=10000`);
  if (!res.ok) throw new Error(`/v1/readings answered ${res.status}`);
  return ((await res.json()) as { count: number }).count;
}

describe('hostile publishes against a real gateway', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pg-hostile-'));
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ mqtt: { maxPayloadBytes: 4096 }, sinks: { flushIntervalMs: 100 } }, dataDir);
  });
  afterAll(async () => {
    await gw?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('seeded fuzz: every hostile publish is rejected and counted, the gateway lives, and an honest device loses nothing meanwhile', async () => {
    const rand = mulberry32(0xbadc0de);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const t0 = Date.now();
    const hostileValues = ['{"toNumber":1}', '{"toString":1,"valueOf":1}', '[]', '"72"', 'null', 'true', '1e999', '-1', '{"__proto__":{"toNumber":1}}', '[[[[[[[[]]]]]]]]'];
    const topics = [
      () => `sensors/heart-rate/h${Math.floor(rand() * 50)}`,
      () => `sensors/bridge/h${Math.floor(rand() * 50)}`,
      () => 'sensors/nope/h1',
      () => 'a/b',
      () => 'sensors/heart-rate/',
      () => 'sensors/heart-rate/x/y',
      () => `sensors/heart-rate/${'x'.repeat(1 + Math.floor(rand() * 2000))}`,
      () => 'sensors/heart-rate/\u00e9\u{1f600}',
    ];
    const payloads: ((topic: string) => Buffer)[] = [
      // a JSON reading with one hostile field: never a valid reading
      // a reading of the topic's kind with one hostile field: never a valid reading
      (topic: string) => {
        const bridge = topic.startsWith('sensors/bridge/');
        const fields: Record<string, string> = bridge
          ? { seq: String(1 + Math.floor(rand() * 1e6)), ts: String(t0), lane: '1', vehicleClass: '"CAR"', speedKmh: '50', axles: '2' }
          : { seq: String(1 + Math.floor(rand() * 1e6)), ts: String(t0), bpm: '70' };
        const field = pick(bridge ? ['seq', 'ts', 'lane', 'vehicleClass', 'speedKmh', 'axles'] : ['seq', 'ts', 'bpm', 'rrMs']);
        // null in the optional rrMs means "absent", which is valid.
        fields[field] = pick(field === 'rrMs' ? hostileValues.filter((v) => v !== 'null') : hostileValues);
        return Buffer.from(`{${Object.entries(fields).map(([k, v]) => `"${k}":${v}`).join(',')}}`);
      },
      () => Buffer.from(`[${pick(hostileValues)},${pick(hostileValues)}]`),
      () => Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => 0x80 | Math.floor(rand() * 128))),
      () => Buffer.alloc(4097 + Math.floor(rand() * 20_000), 0x7b),
      () => Buffer.alloc(0),
      () => Buffer.from(' '.repeat(Math.floor(rand() * 100)) + '{"seq":'),
    ];
    const hostile = await connect(gw.ports.mqtt, { clientId: 'fuzzer' });
    const honest = await connect(gw.ports.mqtt, { clientId: 'honest' });
    const before = await scrape(gw.ports.http);
    const HOSTILE_N = 1500;
    const HONEST_N = 300;
    const sends: Promise<unknown>[] = [];
    let honestSeq = 0;
    for (let i = 0; i < HOSTILE_N; i++) {
      const topic = pick(topics)();
      sends.push(hostile.publishAsync(topic, pick(payloads)(topic), { qos: rand() < 0.5 ? 0 : 1 }));
      if (i % 5 === 0 && honestSeq < HONEST_N) {
        honestSeq++;
        sends.push(honest.publishAsync('sensors/heart-rate/honest', JSON.stringify({ seq: honestSeq, ts: t0 - 70_000 + honestSeq * 200, bpm: 60 + (honestSeq % 50) }), { qos: 1 }));
      }
    }
    while (honestSeq < HONEST_N) {
      honestSeq++;
      sends.push(honest.publishAsync('sensors/heart-rate/honest', JSON.stringify({ seq: honestSeq, ts: t0 - 70_000 + honestSeq * 200, bpm: 60 + (honestSeq % 50) }), { qos: 1 }));
    }
    await Promise.all(sends);
    expect(hostile.connected).toBe(true);
    expect(honest.connected).toBe(true);

    await eventually(() => storedReadings(gw, 'honest', t0 - 80_000), (n) => n === HONEST_N, 20_000);
    const after = await scrape(gw.ports.http);
    expect(sample(after, 'pulsegate_readings_received_total', { kind: 'heart-rate' }) - sample(before, 'pulsegate_readings_received_total', { kind: 'heart-rate' })).toBe(HONEST_N);
    expect(sample(after, 'pulsegate_readings_received_total', { kind: 'bridge' })).toBe(sample(before, 'pulsegate_readings_received_total', { kind: 'bridge' }));
    expect(rejectedTotal(after) - rejectedTotal(before)).toBeGreaterThanOrEqual(HOSTILE_N);
    expect(sample(after, 'pulsegate_readings_rejected_total', { reason: 'internal_error' })).toBe(0);
    const health = await fetch(`http://127.0.0.1:${gw.ports.http}/healthz`);
    expect(health.status).toBe(200);
    await hostile.endAsync();
    await honest.endAsync();

    // One dead letter per hostile publish, each bounded.
    await gw.close();
    const records = await readLogRecords(join(dataDir, 'log'));
    const dead = records.filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
    expect(dead).toHaveLength(HOSTILE_N);
    for (const d of dead) {
      expect(REJECT_REASONS as readonly string[]).toContain(d.reason);
      expect(d.payload.length).toBeLessThanOrEqual(4096);
    }
    expect(dead.some((d) => d.reason === 'too_large' && (d.payloadBytes ?? 0) > 4096)).toBe(true);
  });
});

describe('huge publish', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pg-huge-'));
  let gw: TestGateway;
  beforeAll(async () => {
    // The packet bound raised to MQTT's own limit, so the publish reaches the too_large path (a
    // packet over mqtt.maxPacketBytes closes its connection before it is buffered at all).
    gw = await startTestGateway({ mqtt: { maxPayloadBytes: 4096, maxPacketBytes: 268_435_455 } }, dataDir);
  });
  afterAll(async () => {
    await gw?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('huge publish: a 130 MiB publish over the log record limit is rejected as too_large with a bounded dead letter, and the gateway lives', async () => {
    const client = await connect(gw.ports.mqtt, { clientId: 'big' });
    const huge = Buffer.alloc(130 * 1024 * 1024, 0x41);
    await client.publishAsync('sensors/heart-rate/big', huge, { qos: 1 });
    // The same connection still delivers.
    await client.publishAsync('sensors/heart-rate/big', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 }), { qos: 1 });
    await eventually(async () => sample(await scrape(gw.ports.http), 'pulsegate_readings_received_total', { kind: 'heart-rate' }), (n) => n === 1);
    expect(sample(await scrape(gw.ports.http), 'pulsegate_readings_rejected_total', { reason: 'too_large' })).toBe(1);
    await client.endAsync();
    await gw.close();
    const dead = (await readLogRecords(join(dataDir, 'log'))).filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
    expect(dead).toHaveLength(1);
    expect(dead[0]!.reason).toBe('too_large');
    expect(dead[0]!.payloadBytes).toBe(huge.length);
    expect(dead[0]!.payload).toEqual(huge.subarray(0, 4096));
  });
});
