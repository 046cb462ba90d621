import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../gateway/ingest/credentials.js';
import type { AlertEvent } from '../../../gateway/wire/alert.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { eventually, sampleOr0, scrape } from '../../helpers/metrics.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * The MQTT republish of alerts through a real gateway: a device's readings raise a threshold
 * alert, which reaches the clients allowed `alerts/#` (or narrower) as QoS 1 JSON, retained while
 * it fires (a late mqtt.js subscriber and mosquitto_sub both get it), cleared after RESOLVED.
 */
const RULE = { id: 'hr-spike', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', window: '10s', aggregate: 'bpm_max', above: 200, clear: 190 };
const SECRET = 'device-secret';

interface Received {
  readonly topic: string;
  readonly retain: boolean;
  readonly qos: number;
  /** null: an empty payload (a retained message cleared). */
  readonly event: AlertEvent | null;
}

async function writeDevices(devices: Record<string, string[] | undefined>): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'pg-alerts-acl-')), 'devices.yaml');
  const hash = await hashSecret(SECRET, 1024);
  const lines = ['devices:'];
  for (const [username, subscribe] of Object.entries(devices)) {
    lines.push(`  - username: ${username}`, `    secret: "${hash}"`);
    if (subscribe !== undefined) lines.push(`    subscribe: ${JSON.stringify(subscribe)}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

let connections = 0;
async function connect(port: number, username: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: `${username}:t${++connections}`, username, password: SECRET });
  client.on('error', () => undefined);
  return client;
}

function record(client: MqttClient): Received[] {
  const got: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    got.push({ topic, retain: packet.retain, qos: packet.qos, event: payload.length === 0 ? null : (JSON.parse(payload.toString('utf8')) as AlertEvent) });
  });
  return got;
}

/** The SUBACK return codes of a subscription (mqtt.js rejects on 0x80; the codes are on the error). */
async function subscribeCodes(client: MqttClient, filter: string): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 })).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: unknown } }).packet?.granted;
    if (!Array.isArray(granted)) throw err;
    return granted.map((g) => (typeof g === 'number' ? g : (g as { qos: number }).qos));
  }
}

/** Readings of one device at 5 Hz over [from, to) of event time, each its own QoS 1 publish. */
async function publishReadings(client: MqttClient, deviceId: string, seq: { n: number }, from: number, to: number, bpm: number): Promise<void> {
  for (let ts = from; ts < to; ts += 200) {
    await client.publishAsync(`sensors/heart-rate/${deviceId}`, JSON.stringify({ seq: seq.n++, ts, bpm }), { qos: 1 });
  }
}

/** mosquitto_sub on alerts/#: the first message it gets (-C 1), as `<topic> <payload>`. */
function mosquittoSubFirst(port: number, username: string, timeoutS: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-u', username, '-i', `${username}:sub`, '-P', SECRET, '-t', 'alerts/#', '-q', '1', '-v', '-C', '1', '-W', String(timeoutS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

describe('mqtt republish of alerts', () => {
  let gw: TestGateway;
  const clients: MqttClient[] = [];
  const base = Math.floor((Date.now() - 10 * 60_000) / 10_000) * 10_000;
  const seq = { n: 1 };
  let device: MqttClient;
  let early: MqttClient;
  let earlyGot: Received[];

  beforeAll(async () => {
    const credentialsFile = await writeDevices({
      'athlete-1': ['sensors/#'],
      watcher: undefined, // default: alerts/#
      narrow: ['alerts/hr-spike/#'],
      other: ['alerts/some-other-rule/#'],
      nosy: ['sensors/#'],
    });
    gw = await startTestGateway({ mqtt: { allowAnonymous: false, credentialsFile }, alerts: { defaultRules: false, rules: [RULE] } });
    device = await connect(gw.ports.mqtt, 'athlete-1');
    early = await connect(gw.ports.mqtt, 'watcher');
    clients.push(device, early);
    earlyGot = record(early);
    const granted = await early.subscribeAsync('alerts/#', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await gw?.dispose();
  });

  it('should publish a FIRING retained, QoS 1, in the wire format with its log offset', async () => {
    await publishReadings(device, 'athlete-1', seq, base, base + 10_000, 80);
    await publishReadings(device, 'athlete-1', seq, base + 10_000, base + 20_000, 210);
    // The first reading of the next window emits the spiking one.
    await publishReadings(device, 'athlete-1', seq, base + 20_000, base + 20_200, 80);
    await waitFor(() => earlyGot.length >= 1, { what: 'the FIRING on alerts/#' });
    const [firing] = earlyGot;
    expect(firing!.topic).toBe('alerts/hr-spike/heart-rate/athlete-1');
    expect(firing!.qos).toBe(1);
    expect(firing!.event).toMatchObject({ v: 1, rule: 'hr-spike', state: 'FIRING', kind: 'heart-rate', deviceId: 'athlete-1', value: 210, threshold: 200, windowStart: base + 10_000, windowEnd: base + 20_000 });
    expect(firing!.event!.offset).toBeGreaterThan(0);
    const text = await scrape(gw.ports.http);
    expect(sampleOr0(text, 'pulsegate_mqtt_alerts_published_total', { state: 'FIRING' })).toBe(1);
  });

  it('should hand the firing alert to a client subscribing later (retained), mqtt.js and mosquitto_sub alike', async () => {
    const late = await connect(gw.ports.mqtt, 'watcher');
    clients.push(late);
    const got = record(late);
    await late.subscribeAsync('alerts/#', { qos: 1 });
    await waitFor(() => got.length >= 1, { what: 'the retained FIRING' });
    expect(got[0]).toMatchObject({ topic: 'alerts/hr-spike/heart-rate/athlete-1', retain: true });
    expect(got[0]!.event).toEqual(earlyGot[0]!.event);

    const sub = await mosquittoSubFirst(gw.ports.mqtt, 'watcher', 10);
    expect(sub.err).toBe('');
    expect(sub.code).toBe(0);
    const [topic, ...json] = sub.out.trim().split(' ');
    expect(topic).toBe('alerts/hr-spike/heart-rate/athlete-1');
    expect(JSON.parse(json.join(' '))).toEqual(earlyGot[0]!.event);
  });

  it('should give alerts to a narrower filter of the credentials, and refuse alerts/# to a client not allowed it (SUBACK 0x80)', async () => {
    const narrow = await connect(gw.ports.mqtt, 'narrow');
    const nosy = await connect(gw.ports.mqtt, 'nosy');
    const other = await connect(gw.ports.mqtt, 'other');
    clients.push(narrow, nosy, other);
    const narrowGot = record(narrow);
    const nosyGot = record(nosy);
    const otherGot = record(other);
    expect(await subscribeCodes(narrow, 'alerts/hr-spike/#')).toEqual([1]);
    await waitFor(() => narrowGot.length >= 1, { what: 'the retained FIRING on the narrow filter' });
    expect(narrowGot[0]!.event!.id).toBe(earlyGot[0]!.event!.id);
    // Wider than what the credentials allow: refused, whatever narrower filter they hold.
    expect(await subscribeCodes(narrow, 'alerts/#')).toEqual([128]);
    expect(await subscribeCodes(nosy, 'alerts/#')).toEqual([128]);
    expect(await subscribeCodes(other, 'alerts/some-other-rule/#')).toEqual([1]);
    // A later subscription's SUBACK comes after everything the earlier ones were sent: nothing came.
    expect(await subscribeCodes(other, 'alerts/some-other-rule/x')).toEqual([1]);
    expect(nosyGot).toEqual([]);
    expect(otherGot).toEqual([]);
  });

  it('should refuse a client publishing on alerts/ (only the gateway publishes there)', async () => {
    const before = earlyGot.length;
    const forged = { ...earlyGot[0]!.event!, state: 'RESOLVED', summary: 'forged' };
    await device.publishAsync('alerts/hr-spike/heart-rate/athlete-1', JSON.stringify(forged), { qos: 1, retain: true });
    await eventually(() => scrape(gw.ports.http), (t) => sampleOr0(t, 'pulsegate_readings_rejected_total', { reason: 'bad_topic' }) >= 1);
    // The retained FIRING is still the gateway's, and nobody got the forged one.
    const late = await connect(gw.ports.mqtt, 'watcher');
    clients.push(late);
    const got = record(late);
    await late.subscribeAsync('alerts/#', { qos: 1 });
    await waitFor(() => got.length >= 1, { what: 'the retained FIRING' });
    expect(got[0]!.event).toEqual(earlyGot[0]!.event);
    expect(earlyGot.slice(before)).toEqual([]);
  });

  it('should publish the RESOLVED and clear the retained message', async () => {
    await publishReadings(device, 'athlete-1', seq, base + 20_200, base + 30_000, 80);
    await publishReadings(device, 'athlete-1', seq, base + 30_000, base + 30_200, 80);
    await waitFor(() => earlyGot.length >= 3, { what: 'the RESOLVED and the clear' });
    const [firing, resolved, clear] = earlyGot;
    expect(resolved!.event).toMatchObject({ id: firing!.event!.id, state: 'RESOLVED', resolvedAt: base + 30_000 });
    expect(resolved!.event!.offset).toBeGreaterThan(firing!.event!.offset);
    expect(clear).toEqual({ topic: 'alerts/hr-spike/heart-rate/athlete-1', retain: false, qos: 1, event: null });

    const late = await connect(gw.ports.mqtt, 'watcher');
    clients.push(late);
    const got = record(late);
    await late.subscribeAsync('alerts/hr-spike/heart-rate/athlete-1', { qos: 1 });
    // Whatever was retained for the first filter is written before the second SUBACK.
    await late.subscribeAsync('alerts/hr-spike/heart-rate/nobody', { qos: 1 });
    expect(got).toEqual([]);
  });
});

describe('mqtt republish of alerts sharing a topic', () => {
  it('should keep the FIRING of a lane still firing as the retained message when another lane of the same bridge resolves', async () => {
    const gw = await startTestGateway({ alerts: { defaultRules: false, rules: [{ id: 'truck-surge', kind: 'threshold', sensorKind: 'bridge', window: '1m', aggregate: 'count', where: { vehicleClass: 'TRUCK' }, above: 25, clear: 15 }] } });
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const live = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const clients = [device, live];
    try {
      const liveGot = record(live);
      await live.subscribeAsync('alerts/#', { qos: 1 });
      const base = Math.floor((Date.now() - 30 * 60_000) / 60_000) * 60_000;
      let seq = 1;
      const trucks = async (minute: number, lane: number, n: number) => {
        for (let i = 0; i < n; i++) {
          const detection = { seq: seq++, ts: base + minute * 60_000 + lane * 100 + i * 1000, lane, vehicleClass: 'TRUCK', speedKmh: 70, axles: 5 };
          await device.publishAsync('sensors/bridge/b-1', JSON.stringify(detection), { qos: 1 });
        }
      };
      // Minute 0: both lanes surge; minute 1: lane 1 is clear, lane 2 still surges; minute 2 emits minute 1.
      await trucks(0, 1, 30);
      await trucks(0, 2, 30);
      await trucks(1, 1, 2);
      await trucks(1, 2, 30);
      await trucks(2, 3, 1);
      await waitFor(() => liveGot.filter((g) => g.event?.state === 'RESOLVED').length === 1, { what: "lane 1's RESOLVED" });
      const lane2 = liveGot.find((g) => g.event?.state === 'FIRING' && g.event.group['lane'] === '2')!.event!;
      expect(liveGot.filter((g) => g.event?.state === 'FIRING').map((g) => g.event!.group['lane']).sort()).toEqual(['1', '2']);
      expect(liveGot.find((g) => g.event?.state === 'RESOLVED')!.event!.group['lane']).toBe('1');

      const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
      clients.push(late);
      const lateGot = record(late);
      await late.subscribeAsync('alerts/truck-surge/bridge/b-1', { qos: 1 });
      await waitFor(() => lateGot.length >= 1, { what: 'the retained message of the topic' });
      expect(lateGot[0]).toMatchObject({ retain: true, event: lane2 });
    } finally {
      for (const c of clients) c.end(true);
      await gw.dispose();
    }
  });
});
