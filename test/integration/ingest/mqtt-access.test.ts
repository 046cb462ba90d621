import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../gateway/ingest/credentials.js';
import { decodeDeadLetter, type DeadLetterRecord } from '../../../gateway/log/dead-letter.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { eventually, sample, scrape } from '../../helpers/metrics.js';
import { openLog, readAll } from '../../unit/log/log-test-helpers.js';

/** Connects and resolves with the client and its CONNACK, or rejects with the refusal. */
function connectWithAck(port: number, opts: IClientOptions): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 30_000, ...opts });
    client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent }));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

async function writeDevices(devices: Record<string, { secret: string; subscribe?: string[] }>): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'pg-access-')), 'devices.yaml');
  const lines = ['devices:'];
  for (const [username, d] of Object.entries(devices)) {
    lines.push(`  - username: ${username}`, `    secret: "${await hashSecret(d.secret)}"`);
    if (d.subscribe) lines.push(`    subscribe: ${JSON.stringify(d.subscribe)}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const reading = (seq: number) => JSON.stringify({ seq, ts: Date.now(), bpm: 70 });
const metric = async (gw: TestGateway, name: string, labels: Record<string, string> = {}) => sample(await scrape(gw.ports.http), name, labels);

/** Closes the gateway and returns the dead letters in its log. */
async function deadLettersOf(gw: TestGateway): Promise<DeadLetterRecord[]> {
  await gw.close();
  const log = await openLog(join(gw.dataDir, 'log'));
  try {
    return (await readAll(log)).filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
  } finally {
    await log.close();
  }
}

describe('mqtt access: client ids are bound to usernames', () => {
  let gw: TestGateway;
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    const file = await writeDevices({
      'dev-a': { secret: 'secret-a' },
      'dev-b': { secret: 'secret-b', subscribe: ['sensors/heart-rate/dev-c'] },
      'dev-c': { secret: 'secret-c' },
    });
    gw = await startTestGateway({ mqtt: { allowAnonymous: false, credentialsFile: file } });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await gw?.dispose();
  });

  it("session takeover: a device connecting with another device's client id and clean:false is refused before it gets that session, and the owner keeps its connection and its queued messages", async () => {
    const port = gw.ports.mqtt;
    const devB = { clientId: 'dev-b', clean: false, username: 'dev-b', password: 'secret-b' };
    // dev-b builds a persistent session, goes offline, and a QoS 1 message is queued for it.
    const first = await connectWithAck(port, devB);
    const granted = await first.client.subscribeAsync('sensors/heart-rate/dev-c', { qos: 1 });
    expect(granted[0]!.qos).toBe(1);
    await first.client.endAsync();
    const devC = (await connectWithAck(port, { clientId: 'dev-c', username: 'dev-c', password: 'secret-c' })).client;
    clients.push(devC);
    await devC.publishAsync('sensors/heart-rate/dev-c', reading(1), { qos: 1 });

    // dev-a, with its own valid credentials, asks for dev-b's client id and session.
    const takeover = connectWithAck(port, { clientId: 'dev-b', clean: false, username: 'dev-a', password: 'secret-a' });
    await expect(takeover).rejects.toThrow(/Identifier rejected/i);
    expect(await metric(gw, 'pulsegate_mqtt_auth_total', { result: 'client_id_rejected' })).toBe(1);

    // dev-b comes back: its session is still there, with the queued message.
    const messages: string[] = [];
    const back = await new Promise<{ client: MqttClient; sessionPresent: boolean }>((resolve, reject) => {
      const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...devB });
      client.on('message', (_topic, payload) => messages.push(JSON.parse(payload.toString()).seq));
      client.once('connect', (connack) => resolve({ client, sessionPresent: connack.sessionPresent }));
      client.once('error', reject);
    });
    clients.push(back.client);
    expect(back.sessionPresent).toBe(true);
    await eventually(async () => messages.length, (n) => n === 1);

    // While dev-b is online, the same attempt does not knock it off.
    let bClosed = false;
    back.client.on('close', () => (bClosed = true));
    await expect(connectWithAck(port, { clientId: 'dev-b', clean: true, username: 'dev-a', password: 'secret-a' })).rejects.toThrow(/Identifier rejected/i);
    await devC.publishAsync('sensors/heart-rate/dev-c', reading(2), { qos: 1 });
    await eventually(async () => messages.length, (n) => n === 2);
    expect(bClosed).toBe(false);
    expect(back.client.connected).toBe(true);
    expect(messages).toEqual([1, 2]);
  });

  it('a device may use its username or <username>:<suffix> as client id, and nothing else', async () => {
    const port = gw.ports.mqtt;
    const own = await connectWithAck(port, { clientId: 'dev-a:phone', username: 'dev-a', password: 'secret-a' });
    await own.client.publishAsync('sensors/heart-rate/dev-a', reading(1), { qos: 1 });
    await own.client.endAsync();
    await expect(connectWithAck(port, { clientId: 'dev-b:phone', username: 'dev-a', password: 'secret-a' })).rejects.toThrow(/Identifier rejected/i);
    await expect(connectWithAck(port, { clientId: 'mqttjs_1234', username: 'dev-a', password: 'secret-a' })).rejects.toThrow(/Identifier rejected/i);
    // A wrong secret with a foreign client id is a bad password, not an identifier problem:
    // the client id is judged only once the secret matched.
    await expect(connectWithAck(port, { clientId: 'dev-b', username: 'dev-a', password: 'wrong-wrong' })).rejects.toThrow(/Bad username or password/i);
  });
});

describe('mqtt access: anonymous clients beside a credentials file', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const file = await writeDevices({ 'dev-a': { secret: 'secret-a' }, 'dev-b': { secret: 'secret-b' } });
    gw = await startTestGateway({ mqtt: { allowAnonymous: true, credentialsFile: file } });
  });
  afterAll(async () => gw?.dispose());

  it("anonymous session takeover: an anonymous client may not use a credentialed device's client id", async () => {
    const port = gw.ports.mqtt;
    const devB = await connectWithAck(port, { clientId: 'dev-b', username: 'dev-b', password: 'secret-b' });
    let bClosed = false;
    devB.client.on('close', () => (bClosed = true));
    await expect(connectWithAck(port, { clientId: 'dev-b' })).rejects.toThrow(/Identifier rejected/i);
    await expect(connectWithAck(port, { clientId: 'dev-b:x', clean: false })).rejects.toThrow(/Identifier rejected/i);
    await devB.client.publishAsync('sensors/heart-rate/dev-b', reading(1), { qos: 1 });
    expect(bClosed).toBe(false);
    await devB.client.endAsync();
  });

  it("anonymous subscribe beside credentials: an anonymous client may not read the devices' readings (sensors/#), only alerts/#", async () => {
    const anon = (await connectWithAck(gw.ports.mqtt, { clientId: 'watcher-1' })).client;
    // [MQTT-3.9.3-1] a refused filter is granted 0x80, which mqtt.js reports as a subscribe error.
    for (const filter of ['sensors/#', 'sensors/heart-rate/dev-a', '#', '+/heart-rate/+']) {
      await expect(anon.subscribeAsync(filter, { qos: 0 }), filter).rejects.toThrow(/Subscribe error/);
    }
    expect((await anon.subscribeAsync('alerts/#', { qos: 0 })).map((g) => g.qos)).toEqual([0]);
    const seen: string[] = [];
    anon.on('message', (topic) => seen.push(topic));
    const devA = (await connectWithAck(gw.ports.mqtt, { clientId: 'dev-a', username: 'dev-a', password: 'secret-a' })).client;
    await devA.publishAsync('sensors/heart-rate/dev-a', reading(7), { qos: 1 });
    await devA.endAsync();
    // Nothing can arrive on a refused filter; a round trip on the same connection orders it.
    await anon.publishAsync('sensors/heart-rate/watcher-1', reading(1), { qos: 1 });
    expect(seen).toEqual([]);
    await anon.endAsync();
  });

  it('anonymous publish as a credentialed device: rejected as unauthorized, counted and dead-lettered, while free device ids are accepted', async () => {
    const anon = (await connectWithAck(gw.ports.mqtt, { clientId: 'visitor-1' })).client;
    const before = await metric(gw, 'pulsegate_readings_rejected_total', { reason: 'unauthorized' });
    const receivedBefore = await metric(gw, 'pulsegate_readings_received_total', { kind: 'heart-rate' });
    await anon.publishAsync('sensors/heart-rate/dev-a', reading(1), { qos: 1 });
    await anon.publishAsync('sensors/heart-rate/visitor-1', reading(1), { qos: 1 });
    expect(anon.connected).toBe(true);
    await eventually(() => metric(gw, 'pulsegate_readings_received_total', { kind: 'heart-rate' }), (n) => n === receivedBefore + 1); // visitor-1's
    expect(await metric(gw, 'pulsegate_readings_rejected_total', { reason: 'unauthorized' })).toBe(before + 1);
    await anon.endAsync();
    const dead = await deadLettersOf(gw);
    expect(dead.filter((d) => d.reason === 'unauthorized').map((d) => d.topic)).toEqual(['sensors/heart-rate/dev-a']);
  });
});

describe('mqtt access: login flood', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const file = await writeDevices({ 'dev-a': { secret: 'secret-a' }, honest: { secret: 'secret-h' } });
    // Throttling set high so that the flood really hashes: what is under test is where the hashing runs.
    gw = await startTestGateway({
      mqtt: { allowAnonymous: false, credentialsFile: file, auth: { maxFailuresPerUsername: 1000, maxFailuresPerIp: 1000, maxPendingLogins: 32 } },
    });
  });
  afterAll(async () => gw?.dispose());

  it("login floods starve the log: 100 concurrent wrong-password CONNECTs for a real device leave an honest device's QoS 1 publishes acknowledged, with every hash on the hasher threads", async () => {
    const port = gw.ports.mqtt;
    const honest = (await connectWithAck(port, { clientId: 'honest', username: 'honest', password: 'secret-h' })).client;
    const hashesBefore = await metric(gw, 'pulsegate_mqtt_auth_hashes_total');
    const flood = Array.from({ length: 100 }, () =>
      connectWithAck(port, { clientId: 'dev-a', username: 'dev-a', password: 'wrong-password' }).then(
        (c) => {
          c.client.end(true);
          return 'accepted';
        },
        (err: Error) => err.message,
      ),
    );
    let acked = 0;
    const publishing = (async () => {
      for (let seq = 1; seq <= 40; seq++) {
        await honest.publishAsync('sensors/heart-rate/honest', reading(seq), { qos: 1 });
        acked++;
      }
    })();
    const outcomes = await Promise.all(flood);
    await publishing;
    expect(acked).toBe(40);
    expect(outcomes.filter((o) => o === 'accepted')).toEqual([]);

    // A client that gave up waiting (connect timeout on a loaded machine) may still be in the
    // hasher's queue: wait until the gateway has answered all 100.
    const refusedAll = (text: string) => ['bad_credentials', 'busy', 'throttled'].reduce((n, result) => n + sample(text, 'pulsegate_mqtt_auth_total', { result }), 0);
    const m = await eventually(() => scrape(gw.ports.http), (text) => refusedAll(text) >= 100, 30_000);
    const auth = (result: string) => sample(m, 'pulsegate_mqtt_auth_total', { result });
    expect(refusedAll(m)).toBe(100);
    // The queue bound held: some were refused at once instead of waiting behind ~100 hashes.
    expect(auth('busy')).toBeGreaterThan(0);
    // Every password check that ran was computed on a hasher worker thread (the counter is fed
    // only by the workers' answers): one per bad_credentials, none on libuv's pool.
    expect(sample(m, 'pulsegate_mqtt_auth_hashes_total') - hashesBefore).toBe(auth('bad_credentials'));
    expect(sample(m, 'pulsegate_readings_received_total', { kind: 'heart-rate' })).toBe(40);
    await honest.endAsync();
  });
});

describe('mqtt access: failed-login throttling', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const file = await writeDevices({ 'dev-a': { secret: 'secret-a' } });
    gw = await startTestGateway({ mqtt: { allowAnonymous: false, credentialsFile: file, auth: { maxFailuresPerUsername: 3, lockoutMs: 60_000 } } });
  });
  afterAll(async () => gw?.dispose());

  it('after maxFailuresPerUsername wrong secrets a username is refused with CONNACK 3 without hashing, even with the right secret', async () => {
    const port = gw.ports.mqtt;
    for (let i = 0; i < 3; i++) {
      await expect(connectWithAck(port, { clientId: 'dev-a', username: 'dev-a', password: 'nope-nope' })).rejects.toThrow(/Bad username or password/i);
    }
    const hashes = await metric(gw, 'pulsegate_mqtt_auth_hashes_total');
    await expect(connectWithAck(port, { clientId: 'dev-a', username: 'dev-a', password: 'secret-a' })).rejects.toThrow(/Server unavailable/i);
    expect(await metric(gw, 'pulsegate_mqtt_auth_hashes_total')).toBe(hashes);
    expect(await metric(gw, 'pulsegate_mqtt_auth_total', { result: 'throttled' })).toBe(1);
  });
});

describe('mqtt access: per-device rate limit', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // A refill of one token per 1000 s: within the test, a device has exactly its burst.
    gw = await startTestGateway({ ingest: { rateLimit: { publishesPerSecond: 0.001, burst: 3 } } });
  });
  afterAll(async () => gw?.dispose());

  it('one device over its publish budget is rejected as rate_limited (one dead letter per run) while another device is unaffected', async () => {
    const flooder = (await connectWithAck(gw.ports.mqtt, { clientId: 'flooder' })).client;
    const calm = (await connectWithAck(gw.ports.mqtt, { clientId: 'calm' })).client;
    for (let seq = 1; seq <= 10; seq++) await flooder.publishAsync('sensors/heart-rate/flooder', reading(seq), { qos: 1 });
    for (let seq = 1; seq <= 3; seq++) await calm.publishAsync('sensors/heart-rate/calm', reading(seq), { qos: 1 });
    expect(flooder.connected).toBe(true);
    await eventually(() => metric(gw, 'pulsegate_readings_received_total', { kind: 'heart-rate' }), (n) => n === 6);
    expect(await metric(gw, 'pulsegate_readings_rejected_total', { reason: 'rate_limited' })).toBe(7);
    await flooder.endAsync();
    await calm.endAsync();
    const dead = await deadLettersOf(gw);
    expect(dead.filter((d) => d.reason === 'rate_limited').map((d) => d.topic)).toEqual(['sensors/heart-rate/flooder']);
  });
});
