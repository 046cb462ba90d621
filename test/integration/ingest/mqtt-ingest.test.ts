import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../gateway/ingest/credentials.js';
import { PROTO_FILE } from '../../../gateway/ingest/payload-decoder.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { eventually, sample, scrape } from '../../helpers/metrics.js';
import { observe } from '../../helpers/wait.js';

const run = promisify(execFile);
const root = protobuf.loadSync(PROTO_FILE);
const HR = root.lookupType('pulsegate.v1.HeartRateReading');
const VB = root.lookupType('pulsegate.v1.VehicleBatch');
const pb = (t: protobuf.Type, v: Record<string, unknown>) => Buffer.from(t.encode(t.create(v)).finish());
const now = () => Date.now();

async function connect(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...opts });
}

const received = async (gw: TestGateway, kind: string) => sample(await scrape(gw.ports.http), 'pulsegate_readings_received_total', { kind });
const rejected = async (gw: TestGateway, reason: string) => sample(await scrape(gw.ports.http), 'pulsegate_readings_rejected_total', { reason });

describe('mqtt ingest (anonymous, real TCP)', () => {
  let gw: TestGateway;
  let client: MqttClient;
  beforeAll(async () => {
    gw = await startTestGateway({ mqtt: { maxPayloadBytes: 4096 } });
    client = await connect(gw.ports.mqtt);
  });
  afterAll(async () => {
    await client?.endAsync();
    await gw?.dispose();
  });

  it('should count both kinds in both encodings, single and batched', async () => {
    const t = now();
    await client.publishAsync('sensors/heart-rate/a1', JSON.stringify({ seq: 1, ts: t, bpm: 72 }), { qos: 1 });
    await client.publishAsync('sensors/heart-rate/a1', pb(HR, { seq: 2, ts: t + 200, bpm: 74, rrMs: 810 }), { qos: 1 });
    await client.publishAsync('sensors/heart-rate/a1', JSON.stringify([3, 4, 5].map((seq) => ({ seq, ts: t + seq * 200, bpm: 70 + seq }))), { qos: 1 });
    await client.publishAsync('sensors/bridge/b1', JSON.stringify({ seq: 1, ts: t, lane: 2, vehicleClass: 'TRUCK', speedKmh: 71.5, axles: 5 }), { qos: 1 });
    const detections = Array.from({ length: 10 }, (_, i) => ({ seq: i + 2, ts: t + i, lane: 1 + (i % 2), vehicleClass: 1 + (i % 5), speedKmh: 60 + i, axles: 2 }));
    await client.publishAsync('sensors/bridge/b1', pb(VB, { detections }), { qos: 1 });
    await eventually(() => received(gw, 'heart-rate'), (n) => n === 5);
    await eventually(() => received(gw, 'bridge'), (n) => n === 11);
  });

  it('should reject garbage, truncated protobuf and oversize payloads while the same connection keeps working', async () => {
    const t = now();
    const before = { decode: await rejected(gw, 'decode_error'), large: await rejected(gw, 'too_large'), hr: await received(gw, 'heart-rate') };
    await client.publishAsync('sensors/heart-rate/g1', Buffer.from([0xff, 0x13, 0x37, 0x00, 0x99]), { qos: 1 });
    const full = pb(VB, { detections: [{ seq: 1, ts: t, lane: 1, vehicleClass: 1, speedKmh: 50, axles: 2 }] });
    await client.publishAsync('sensors/bridge/g1', full.subarray(0, full.length - 4), { qos: 1 });
    await client.publishAsync('sensors/heart-rate/g1', Buffer.alloc(5000, 0x41), { qos: 0 });
    await client.publishAsync('sensors/heart-rate/g1', JSON.stringify({ seq: 1, ts: t, bpm: 66 }), { qos: 1 });
    expect(client.connected).toBe(true);
    await eventually(() => received(gw, 'heart-rate'), (n) => n === before.hr + 1);
    expect(await rejected(gw, 'decode_error')).toBe(before.decode + 2);
    expect(await rejected(gw, 'too_large')).toBe(before.large + 1);
  });

  it('should count unknown kinds, bad topics and invalid readings per reason', async () => {
    const t = now();
    const m0 = await scrape(gw.ports.http);
    await client.publishAsync('sensors/tide/x', JSON.stringify({ seq: 1, ts: t }), { qos: 1 });
    await client.publishAsync('other/topic', 'x', { qos: 1 });
    await client.publishAsync('sensors/heart-rate/v1', JSON.stringify({ seq: 1, ts: t, bpm: 999 }), { qos: 1 });
    await client.publishAsync('sensors/heart-rate/v1', JSON.stringify({ seq: 2, ts: t + 86_400_000, bpm: 70 }), { qos: 1 });
    const m1 = await scrape(gw.ports.http);
    const delta = (reason: string) => sample(m1, 'pulsegate_readings_rejected_total', { reason }) - sample(m0, 'pulsegate_readings_rejected_total', { reason });
    expect(delta('unknown_kind')).toBe(1);
    expect(delta('bad_topic')).toBe(1);
    expect(delta('invalid')).toBe(1);
    expect(delta('timestamp_out_of_range')).toBe(1);
  });

  it('should count duplicates by (device, seq) and sequence gaps', async () => {
    const t = now();
    const m0 = await scrape(gw.ports.http);
    for (const seq of [1, 2, 2, 3, 7, 7, 8]) await client.publishAsync('sensors/heart-rate/d1', JSON.stringify({ seq, ts: t + seq, bpm: 80 }), { qos: 1 });
    const m1 = await eventually(
      () => scrape(gw.ports.http),
      (m) => sample(m, 'pulsegate_readings_duplicate_total') - sample(m0, 'pulsegate_readings_duplicate_total') === 2,
    );
    expect(sample(m1, 'pulsegate_sequence_gaps_total') - sample(m0, 'pulsegate_sequence_gaps_total')).toBe(3);
  });

  it('should never forward a rejected publish to subscribers', async () => {
    const sub = await connect(gw.ports.mqtt);
    const seen: string[] = [];
    sub.on('message', (topic) => seen.push(topic));
    await sub.subscribeAsync('#', { qos: 1 });
    await client.publishAsync('sensors/heart-rate/f1', Buffer.from([0xff, 0xff]), { qos: 1 });
    await client.publishAsync('sensors/heart-rate/f1', JSON.stringify({ seq: 1, ts: now(), bpm: 70 }), { qos: 1 });
    await eventually(async () => seen.length, (n) => n >= 1);
    // Bounded observation window: 100 ms more for a stray forward of the rejected publish.
    await observe(100);
    expect(seen).toEqual(['sensors/heart-rate/f1']);
    await sub.endAsync();
  });

  it('should accept readings from Debian mosquitto_pub in JSON and protobuf', async () => {
    const t = now();
    const before = await received(gw, 'heart-rate');
    const dir = mkdtempSync(join(tmpdir(), 'pg-mosq-'));
    const bin = join(dir, 'reading.bin');
    writeFileSync(bin, pb(HR, { seq: 2, ts: t + 1, bpm: 91 }));
    const port = String(gw.ports.mqtt);
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-V', 'mqttv311', '-t', 'sensors/heart-rate/m1', '-m', JSON.stringify({ seq: 1, ts: t, bpm: 90 })]);
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-V', 'mqttv311', '-t', 'sensors/heart-rate/m1', '-f', bin]);
    await eventually(() => received(gw, 'heart-rate'), (n) => n === before + 2);
  });
});

describe('mqtt ingest (device credentials and ACL)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-cred-'));
    const file = join(dir, 'devices.yaml');
    writeFileSync(file, `devices:\n  - username: athlete-1\n    secret: "${await hashSecret('s3cret-one')}"\n  - username: bridge-9\n    secret: "${await hashSecret('s3cret-nine')}"\n`);
    gw = await startTestGateway({ mqtt: { allowAnonymous: false, credentialsFile: file } });
  });
  afterAll(async () => gw?.dispose());

  it('should refuse anonymous and wrong-secret connections', async () => {
    await expect(connect(gw.ports.mqtt)).rejects.toThrow(/Bad username or password|Not authorized|Connection refused/i);
    await expect(connect(gw.ports.mqtt, { clientId: 'athlete-1', username: 'athlete-1', password: 'nope-nope' })).rejects.toThrow(/Bad username or password|Connection refused/i);
  });

  it('should let a device publish only under its own topic, and keep its connection after a refused publish', async () => {
    const c = await connect(gw.ports.mqtt, { clientId: 'athlete-1', username: 'athlete-1', password: 's3cret-one' });
    const t = now();
    await c.publishAsync('sensors/heart-rate/athlete-2', JSON.stringify({ seq: 1, ts: t, bpm: 70 }), { qos: 1 });
    await c.publishAsync('sensors/heart-rate/athlete-1', JSON.stringify({ seq: 1, ts: t, bpm: 70 }), { qos: 1 });
    expect(c.connected).toBe(true);
    await eventually(() => received(gw, 'heart-rate'), (n) => n === 1);
    expect(await rejected(gw, 'unauthorized')).toBe(1);
    await c.endAsync();
  });

  it('should check mosquitto_pub credentials too', async () => {
    const port = String(gw.ports.mqtt);
    const payload = JSON.stringify({ seq: 1, ts: now(), lane: 1, vehicleClass: 'BUS', speedKmh: 40, axles: 2 });
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-i', 'bridge-9', '-u', 'bridge-9', '-P', 's3cret-nine', '-t', 'sensors/bridge/bridge-9', '-m', payload]);
    await expect(run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-i', 'bridge-9', '-u', 'bridge-9', '-P', 'wrong-pass', '-t', 'sensors/bridge/bridge-9', '-m', payload])).rejects.toThrow();
    await eventually(() => received(gw, 'bridge'), (n) => n === 1);
  });
});

describe('mqtt ingest (disk high-water mark)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ log: { diskHighWaterBytes: 4096 } });
  });
  afterAll(async () => gw?.dispose());

  it('should withhold PUBACKs and report not ready while the log is over its high-water mark, and still shut down', async () => {
    const c = await connect(gw.ports.mqtt);
    const t = now();
    let seq = 0;
    // Fill the log past 4 KiB; each publish is acknowledged while the log is still under the mark.
    // Bounded observation window per publish: no PUBACK within 1 s counts as withheld.
    for (let i = 0; i < 80; i++) {
      const acked = await Promise.race([
        c.publishAsync('sensors/heart-rate/hw', JSON.stringify({ seq: ++seq, ts: t + seq, bpm: 70 }), { qos: 1 }).then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
      ]);
      if (!acked) break;
    }
    expect(seq).toBeLessThan(80);
    // Bounded observation window: over the mark, no PUBACK within 1.5 s.
    const held = await Promise.race([
      c.publishAsync('sensors/heart-rate/hw', JSON.stringify({ seq: ++seq, ts: t + seq, bpm: 70 }), { qos: 1 }).then(() => 'acked'),
      new Promise<string>((r) => setTimeout(() => r('held'), 1500)),
    ]);
    expect(held).toBe('held');
    const ready = await fetch(`http://127.0.0.1:${gw.ports.http}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { reason: string }).reason).toContain('high-water');
    c.end(true);
  });
});

describe('mqtt ingest (WebSocket)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ mqtt: { wsPort: 0 } });
  });
  afterAll(async () => gw?.dispose());

  it('should take readings over MQTT on WebSocket exactly as over TCP', async () => {
    expect(gw.ports.ws).toBeGreaterThan(0);
    const c = await mqtt.connectAsync(`ws://127.0.0.1:${gw.ports.ws}`, { protocolVersion: 4, reconnectPeriod: 0 });
    await c.publishAsync('sensors/heart-rate/ws-1', JSON.stringify({ seq: 1, ts: now(), bpm: 75 }), { qos: 1 });
    await c.publishAsync('sensors/heart-rate/ws-1', Buffer.from([0xff, 0x00]), { qos: 1 });
    await eventually(() => received(gw, 'heart-rate'), (n) => n === 1);
    expect(await rejected(gw, 'decode_error')).toBe(1);
    expect(c.connected).toBe(true);
    await c.endAsync();
  });
});
