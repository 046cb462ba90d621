import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../gateway/clock.js';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { hashSecret, loadCredentials } from '../../../gateway/ingest/credentials.js';
import { createIngestMetrics } from '../../../gateway/ingest/ingest-metrics.js';
import { createMqttIngest, type MqttIngest } from '../../../gateway/ingest/mqtt-ingest.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import type { RateLimitOptions } from '../../../gateway/ingest/rate-limiter.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { decodeDeadLetter } from '../../../gateway/log/dead-letter.js';
import { decodeIngestRecord } from '../../../gateway/log/ingest-record-format.js';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES, type LogRecord } from '../../../gateway/log/types.js';
import { createRegistry } from '../../../gateway/metrics.js';
import { sample } from '../../helpers/metrics.js';
import { waitFor, waitForValue } from '../../helpers/wait.js';
import { readAll, tempDir } from '../../unit/log/log-test-helpers.js';

/**
 * MQTT 3.1.1 conformance of the embedded broker, item by item, with real clients on real TCP:
 * raw sockets (mqtt-packet) where the bytes on the wire are the point, mqtt.js elsewhere.
 */

const gen = (p: Record<string, unknown>): Buffer => mqttPacket.generate(p as unknown as mqttPacket.Packet);
const connectPacket = (extra: Record<string, unknown> = {}): Buffer =>
  gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `raw-${Math.random()}`, clean: true, keepalive: 0, ...extra });
const reading = (seq: number): string => JSON.stringify({ seq, ts: Date.now(), bpm: 70 });

/** A raw TCP client: every byte the broker sent, the packets they parse into, and whether it closed. */
interface RawClient {
  readonly socket: Socket;
  readonly received: Buffer[];
  readonly packets: mqttPacket.Packet[];
  closed: boolean;
  bytes(): Buffer;
}
async function raw(port: number): Promise<RawClient> {
  const socket = netConnect({ port, host: '127.0.0.1' });
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const c: RawClient = { socket, received: [], packets: [], closed: false, bytes: () => Buffer.concat(c.received) };
  parser.on('packet', (p) => c.packets.push(p));
  socket.on('data', (d) => {
    c.received.push(d);
    parser.parse(d);
  });
  socket.on('error', () => {}); // the broker closes some of these on purpose
  socket.on('close', () => (c.closed = true));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return c;
}
async function rawConnected(port: number, connect: Record<string, unknown> = {}): Promise<RawClient> {
  const c = await raw(port);
  c.socket.write(connectPacket(connect));
  await waitFor(() => c.packets.length > 0 || c.closed, { what: 'CONNACK' });
  expect(c.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 0 });
  c.packets.length = 0;
  c.received.length = 0;
  return c;
}

interface Harness {
  readonly ingest: MqttIngest;
  readonly log: FileMessageLog;
  readonly port: number;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  records(): Promise<LogRecord[]>;
  /** Topics of the retained messages the broker holds, `$` topics included. */
  retainedTopics(): Promise<string[]>;
  close(): Promise<void>;
}

/** A real ingest (broker, decoder, log on disk) with the given mqtt config and credentials. */
async function startIngest(
  mqttOverrides: Record<string, unknown> = {},
  credentialsFile: string | null = null,
  ingestOptions: { rateLimit?: RateLimitOptions } = {},
  logOptions: { groupCommitIntervalMs?: number } = {},
): Promise<Harness> {
  const config = loadConfig({ env: {}, overrides: { mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true, ...mqttOverrides } } });
  const kinds = createKindRegistry();
  const registry = createRegistry();
  const metrics = createIngestMetrics(registry, [...kinds.keys()]);
  const dir = await tempDir();
  const log = await createMessageLog({ dir: dir.dir, ...logOptions });
  await log.start();
  const ingest = await createMqttIngest({
    config: config.mqtt,
    maxInFlightReadings: 1000,
    kinds,
    decoder: createPayloadDecoder(kinds, config.ingest),
    credentials: credentialsFile === null ? null : loadCredentials(credentialsFile),
    log,
    clock: systemClock,
    metrics,
    logger: pino({ level: 'silent' }),
    onDurable: () => {},
    ...ingestOptions,
  });
  await ingest.start();
  return {
    ingest,
    log,
    port: ingest.ports.mqtt,
    async metric(name, labels = {}) {
      return sample(await registry.metrics(), name, labels);
    },
    async records() {
      await ingest.drain();
      return readAll(log);
    },
    async retainedTopics() {
      // aedes' own (in-memory) retained store, which its types do not expose.
      const { persistence } = ingest.broker as unknown as { persistence: { createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string }> } };
      const stream = persistence.createRetainedStreamCombi(['#', '$pulsegate/#', '$SYS/#']);
      const topics: string[] = [];
      for await (const p of stream) topics.push(p.topic);
      return topics.filter((t) => !t.startsWith('$SYS/')).sort();
    },
    async close() {
      await ingest.close();
      await log.close();
      await dir.cleanup();
    },
  };
}

async function connect(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...opts });
}

async function writeDevices(devices: Record<string, { secret: string; subscribe?: string[]; publish?: string[] }>): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'pg-conformance-')), 'devices.yaml');
  const lines = ['devices:'];
  for (const [username, d] of Object.entries(devices)) {
    lines.push(`  - username: ${username}`, `    secret: "${await hashSecret(d.secret, 1024)}"`);
    if (d.subscribe) lines.push(`    subscribe: ${JSON.stringify(d.subscribe)}`);
    if (d.publish) lines.push(`    publish: ${JSON.stringify(d.publish)}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const deadLetters = (records: LogRecord[]) => records.filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
const ingestTopics = (records: LogRecord[]) => records.filter((r) => r.type === RECORD_TYPES.ingest).map((r) => decodeIngestRecord(r.payload).topic);

describe('MQTT 3.1.1 conformance: CONNECT', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startIngest();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a zero-byte client id with CleanSession=0 gets CONNACK 0x02 (identifier rejected) and is closed [MQTT-3.1.3-8]', async () => {
    const before = await h.metric('pulsegate_mqtt_auth_total', { result: 'client_id_rejected' });
    const c = await raw(h.port);
    const p = connectPacket({ clientId: '', clean: true });
    // mqtt-packet refuses to write this CONNECT; clear the CleanSession bit of the connect flags by hand.
    p[9] = p[9]! & ~0x02;
    c.socket.write(p);
    await waitFor(() => c.closed, { what: 'the broker closing the connection' });
    expect([...c.bytes()]).toEqual([0x20, 0x02, 0x00, 0x02]);
    expect(await h.metric('pulsegate_mqtt_auth_total', { result: 'client_id_rejected' })).toBe(before + 1);
  });

  it('a zero-byte client id with CleanSession=1 is still accepted [MQTT-3.1.3-6]', async () => {
    const c = await raw(h.port);
    c.socket.write(connectPacket({ clientId: '', clean: true }));
    await waitFor(() => c.bytes().length >= 4, { what: 'CONNACK' });
    expect([...c.bytes()]).toEqual([0x20, 0x02, 0x00, 0x00]);
    c.socket.write(gen({ cmd: 'pingreq' }));
    await waitFor(() => c.bytes().length >= 6, { what: 'PINGRESP' });
    expect(c.closed).toBe(false);
    c.socket.destroy();
  });
});

describe('MQTT 3.1.1 conformance: retained messages', () => {
  let h: Harness;
  let client: MqttClient;
  beforeAll(async () => {
    h = await startIngest();
    client = await connect(h.port, { clientId: 'retainer' });
  });
  afterAll(async () => {
    await client?.endAsync();
    await h?.close();
  });

  it('an empty retained publish on a sensor topic removes its retained message, and is neither rejected nor logged [MQTT-3.3.1-10]', async () => {
    const topic = 'sensors/heart-rate/ret-1';
    await client.publishAsync(topic, reading(1), { qos: 1, retain: true });
    // A real subscriber gets the retained reading.
    const sub = await connect(h.port);
    const first = new Promise<{ topic: string; retain: boolean }>((resolve) => sub.once('message', (t, _p, packet) => resolve({ topic: t, retain: packet.retain })));
    await sub.subscribeAsync(topic, { qos: 1 });
    expect(await first).toEqual({ topic, retain: true });
    await sub.endAsync();
    expect(await h.retainedTopics()).toEqual([topic]);

    const before = { invalid: await h.metric('pulsegate_readings_rejected_total', { reason: 'invalid' }), cleared: await h.metric('pulsegate_mqtt_retained_cleared_total') };
    await client.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
    expect(await waitForValue(() => h.retainedTopics(), (t) => t.length === 0)).toEqual([]);
    expect(await h.metric('pulsegate_readings_rejected_total', { reason: 'invalid' })).toBe(before.invalid);
    expect(await h.metric('pulsegate_mqtt_retained_cleared_total')).toBe(before.cleared + 1);
    const records = await h.records();
    expect(deadLetters(records).filter((d) => d.topic === topic)).toEqual([]);
    expect(ingestTopics(records).filter((t) => t === topic)).toHaveLength(1); // the first, non-empty publish
  });

  it('a rejected retained publish is counted and dead-lettered, and not kept as a retained message (under $pulsegate/rejected/<reason> or its own topic)', async () => {
    const topic = 'sensors/heart-rate/ret-2';
    const before = { decode: await h.metric('pulsegate_readings_rejected_total', { reason: 'decode_error' }), bad: await h.metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' }) };
    await client.publishAsync(topic, Buffer.from([0xff, 0x13, 0x37]), { qos: 1, retain: true });
    await client.publishAsync('not/a/sensor/topic', 'x', { qos: 0, retain: true });
    await client.publishAsync(topic, JSON.stringify({ seq: 1, ts: Date.now(), bpm: 999 }), { qos: 1, retain: true });
    expect(await h.metric('pulsegate_readings_rejected_total', { reason: 'decode_error' })).toBe(before.decode + 1);
    expect(await waitForValue(() => h.metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' }), (n) => n === before.bad + 1)).toBe(before.bad + 1);
    const dead = deadLetters(await h.records());
    expect(dead.filter((d) => d.topic === topic).map((d) => d.reason)).toEqual(['decode_error', 'invalid']);
    expect(dead.filter((d) => d.topic === 'not/a/sensor/topic').map((d) => d.reason)).toEqual(['bad_topic']);
    expect(await h.retainedTopics()).toEqual([]);
  });
});

describe('MQTT 3.1.1 conformance: UTF-8 strings', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startIngest();
  });
  afterAll(async () => {
    await h?.close();
  });
  const publish = (c: RawClient, topic: Buffer, qos: 0 | 1, messageId?: number): void => {
    c.socket.write(gen({ cmd: 'publish', topic, payload: Buffer.from(reading(1)), qos, retain: false, dup: false, messageId }));
  };

  it('a PUBLISH whose topic is ill-formed UTF-8 or holds U+0000 closes its connection, unacknowledged, and is dead-lettered as bad_topic [MQTT-1.5.3-1, MQTT-1.5.3-2]', async () => {
    const before = { bad: await h.metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' }), utf8: await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' }) };
    const cases = [
      { topic: Buffer.concat([Buffer.from('sensors/heart-rate/dev-'), Buffer.from([0xc3, 0x28])]), qos: 1 as const, why: 'MQTT-1.5.3-1' },
      { topic: Buffer.from('sensors/heart-rate/\u0000dev'), qos: 0 as const, why: 'MQTT-1.5.3-2' },
      // A lone continuation byte in a topic of no route at all: closed as well, not only rejected.
      { topic: Buffer.from([0x80, 0x2f, 0x61]), qos: 0 as const, why: 'MQTT-1.5.3-1' },
    ];
    for (const [i, k] of cases.entries()) {
      const c = await rawConnected(h.port);
      publish(c, k.topic, k.qos, k.qos === 1 ? 5 : undefined);
      // A PINGREQ behind the publish: its PINGRESP would come if the connection stayed up.
      c.socket.write(gen({ cmd: 'pingreq' }));
      await waitFor(() => c.closed, { what: `connection closed after ill-formed topic ${i}` });
      expect(c.packets.map((p) => p.cmd)).toEqual([]);
    }
    expect(await h.metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' })).toBe(before.bad + cases.length);
    expect(await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' })).toBe(before.utf8 + cases.length);
    const dead = deadLetters(await h.records()).filter((d) => d.detail.includes('[MQTT-1.5.3-'));
    expect(dead.map((d) => [d.reason, d.detail.includes(cases[dead.indexOf(d)]!.why)])).toEqual(cases.map(() => ['bad_topic', true]));
  });

  it('well-formed multi-byte UTF-8 topics are rejected (no such kind) without closing the connection', async () => {
    const c = await rawConnected(h.port);
    publish(c, Buffer.from('sensors/héart-rate/dev-1'), 1, 6);
    publish(c, Buffer.from('sensors/heart-rate/dev-\u{1F600}'), 1, 7);
    c.socket.write(gen({ cmd: 'pingreq' }));
    await waitFor(() => c.packets.length >= 3 || c.closed, { what: 'two PUBACKs and a PINGRESP' });
    // Each PUBACK waits for its dead letter's fdatasync, the PINGRESP does not: compared as a set.
    expect(c.packets.map((p) => p.cmd).sort()).toEqual(['pingresp', 'puback', 'puback']);
    expect(c.closed).toBe(false);
    c.socket.destroy();
  });

  it('a SUBSCRIBE whose filter is ill-formed UTF-8 closes its connection without a SUBACK [MQTT-1.5.3-1]', async () => {
    const before = await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' });
    const c = await rawConnected(h.port);
    // Written by hand (mqtt-packet refuses to generate it): packet id 3, filter a/<0xff>, QoS 1.
    c.socket.write(Buffer.from([0x82, 0x08, 0x00, 0x03, 0x00, 0x03, 0x61, 0x2f, 0xff, 0x01]));
    c.socket.write(gen({ cmd: 'pingreq' }));
    await waitFor(() => c.closed, { what: 'connection closed after an ill-formed filter' });
    expect(c.packets.map((p) => p.cmd)).toEqual([]);
    expect(await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' })).toBe(before + 1);
  });

  it('a CONNECT whose client id, will topic or username is ill-formed UTF-8 or holds U+0000 closes the connection without a CONNACK [MQTT-1.5.3-1, MQTT-1.5.3-2]', async () => {
    const before = await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' });
    // Each generated with a '~' placeholder, then that byte overwritten (mqtt-packet refuses to write ill-formed strings).
    const cases = [
      { connect: { clientId: 'dev-~' }, byte: 0xff },
      { connect: { clientId: 'dev-x', will: { topic: 'sensors/heart-rate/dev-x/stat~s', payload: Buffer.from('gone'), qos: 0, retain: false } }, byte: 0xc0 },
      { connect: { clientId: 'dev-y', username: 'us~r', password: Buffer.from('p') }, byte: 0x00 },
    ];
    for (const [i, k] of cases.entries()) {
      const bytes = connectPacket(k.connect);
      bytes[bytes.indexOf(0x7e)] = k.byte;
      const c = await raw(h.port);
      c.socket.write(bytes);
      await waitFor(() => c.closed, { what: `connection closed after ill-formed CONNECT ${i}` });
      expect(c.packets.map((p) => p.cmd)).toEqual([]);
    }
    expect(await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' })).toBe(before + cases.length);
    // The same CONNECTs with the placeholder kept are answered.
    for (const k of cases) await (await rawConnected(h.port, k.connect)).socket.destroy();
  });

  it('a persistent session whose SUBSCRIBE held an ill-formed filter beside a good one keeps only the good one: its reconnects are not refused', async () => {
    const before = await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' });
    const session = { clientId: 'persistent-utf8', clean: false };
    const c = await rawConnected(h.port, session);
    // By hand: packet id 4, filters a/<0xff> (QoS 1) and alerts/# (QoS 1), in either order.
    const bad = [0x00, 0x03, 0x61, 0x2f, 0xff, 0x01];
    const good = [0x00, 0x08, ...Buffer.from('alerts/#'), 0x01];
    c.socket.write(Buffer.from([0x82, 2 + bad.length + good.length, 0x00, 0x04, ...good, ...bad]));
    await waitFor(() => c.closed, { what: 'connection closed after an ill-formed filter' });
    for (let i = 0; i < 2; i++) {
      const again = await raw(h.port);
      again.socket.write(connectPacket(session));
      again.socket.write(gen({ cmd: 'pingreq' }));
      await waitFor(() => again.packets.length >= 2 || again.closed, { what: `CONNACK and PINGRESP after reconnect ${i}` });
      // Not a new session: the good filter was stored [MQTT-3.2.2-2]; the ill-formed one was not.
      expect(again.packets).toMatchObject([{ cmd: 'connack', returnCode: 0, sessionPresent: true }, { cmd: 'pingresp' }]);
      again.socket.destroy();
      await waitFor(() => again.closed, { what: 'closed' });
    }
    expect(await h.metric('pulsegate_mqtt_connections_refused_total', { reason: 'bad_utf8' })).toBe(before + 1);
  });
});

describe('MQTT 3.1.1 conformance: SUBSCRIBE', () => {
  let secured: Harness;
  let open: Harness;
  beforeAll(async () => {
    const file = await writeDevices({ 'dev-s': { secret: 'secret-s', subscribe: ['alerts/#', 'sensors/heart-rate/dev-s'] } });
    secured = await startIngest({ allowAnonymous: false }, file);
    open = await startIngest();
  });
  afterAll(async () => {
    await secured?.close();
    await open?.close();
  });

  const subscribe = (c: RawClient, messageId: number, topics: string[]): void => {
    c.socket.write(gen({ cmd: 'subscribe', messageId, subscriptions: topics.map((topic) => ({ topic, qos: 1 })) }));
  };

  it('a forbidden filter gets return code 0x80 in the SUBACK, the allowed ones are granted, and the connection stays up [MQTT-3.8.4-1, MQTT-3.9.3]', async () => {
    const c = await rawConnected(secured.port, { clientId: 'dev-s', username: 'dev-s', password: Buffer.from('secret-s') });
    subscribe(c, 7, ['alerts/#', 'sensors/#', '$pulsegate/rejected/#', 'sensors/heart-rate/dev-s']);
    await waitFor(() => c.bytes().length >= 8 || c.closed, { what: 'SUBACK' });
    expect([...c.bytes()]).toEqual([0x90, 0x06, 0x00, 0x07, 0x01, 0x80, 0x80, 0x01]);
    c.socket.write(gen({ cmd: 'pingreq' }));
    await waitFor(() => c.bytes().length >= 10 || c.closed, { what: 'PINGRESP' });
    expect([...c.bytes().subarray(8)]).toEqual([0xd0, 0x00]);
    expect(c.closed).toBe(false);
    c.socket.destroy();
  });

  it("the gateway's internal $pulsegate/ topics are refused (0x80) to anonymous clients of an open gateway too", async () => {
    const c = await rawConnected(open.port);
    subscribe(c, 9, ['$pulsegate/rejected/#', 'sensors/#']);
    await waitFor(() => c.bytes().length >= 6 || c.closed, { what: 'SUBACK' });
    expect([...c.bytes()]).toEqual([0x90, 0x04, 0x00, 0x09, 0x80, 0x01]);
    expect(c.closed).toBe(false);
    c.socket.destroy();
  });
});

describe('MQTT 3.1.1 conformance: will messages', () => {
  let h: Harness;
  let watcher: MqttClient;
  const seen: { topic: string; payload: string }[] = [];
  beforeAll(async () => {
    h = await startIngest();
    watcher = await connect(h.port, { clientId: 'watcher' });
    watcher.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    await watcher.subscribeAsync(['sensors/#', 'devices/#'], { qos: 1 });
  });
  afterAll(async () => {
    await watcher?.endAsync();
    await h?.close();
  });

  /** Connects with `will`, then drops the TCP connection without a DISCONNECT, so the broker publishes the will. */
  async function dieWith(clientId: string, will: Record<string, unknown>): Promise<void> {
    const c = await rawConnected(h.port, { clientId, will: { qos: 1, retain: false, ...will } });
    c.socket.destroy();
  }

  it("a will on the device's own status topic sensors/<kind>/<id>/status appends a deviceStatus record (offline, reason will) and is delivered to subscribers", async () => {
    const before = await h.metric('pulsegate_mqtt_wills_total', { handling: 'device_status' });
    await dieWith('w-1', { topic: 'sensors/heart-rate/w-1/status', payload: Buffer.from('offline') });
    await waitFor(() => seen.some((m) => m.topic === 'sensors/heart-rate/w-1/status'), { what: 'the will at the watcher' });
    expect(seen.find((m) => m.topic === 'sensors/heart-rate/w-1/status')!.payload).toBe('offline');
    expect(await h.metric('pulsegate_mqtt_wills_total', { handling: 'device_status' })).toBe(before + 1);
    const statuses = (await h.records()).filter((r) => r.type === RECORD_TYPES.deviceStatus).map((r) => JSON.parse(r.payload.toString('utf8')) as Record<string, unknown>);
    expect(statuses).toHaveLength(1);
    expect(statuses[0]).toMatchObject({ v: 1, kind: 'heart-rate', deviceId: 'w-1', status: 'offline', reason: 'will' });
    expect(Math.abs((statuses[0]!['at'] as number) - Date.now())).toBeLessThan(60_000);
  });

  it('a will on a sensor topic is handled like any publish of that client: a valid reading is ingested', async () => {
    const before = { received: await h.metric('pulsegate_readings_received_total', { kind: 'heart-rate' }), wills: await h.metric('pulsegate_mqtt_wills_total', { handling: 'publish' }) };
    await dieWith('w-2', { topic: 'sensors/heart-rate/w-2', payload: Buffer.from(reading(1)) });
    await waitForValue(() => h.metric('pulsegate_readings_received_total', { kind: 'heart-rate' }), (n) => n === before.received + 1);
    expect(await h.metric('pulsegate_mqtt_wills_total', { handling: 'publish' })).toBe(before.wills + 1);
    expect(ingestTopics(await h.records())).toContain('sensors/heart-rate/w-2');
  });

  it('a will elsewhere (not a sensor, status or passthrough topic), or on the status topic of an unknown kind, is rejected, counted and dead-lettered, and never delivered', async () => {
    const before = {
      bad: await h.metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' }),
      unknown: await h.metric('pulsegate_readings_rejected_total', { reason: 'unknown_kind' }),
      rejectedWills: await h.metric('pulsegate_mqtt_wills_total', { handling: 'rejected' }),
    };
    await dieWith('w-3', { topic: 'devices/w-3/lwt', payload: Buffer.from('gone') });
    await dieWith('w-4', { topic: 'sensors/tide/w-4/status', payload: Buffer.from('gone') });
    await waitForValue(() => h.metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' }), (n) => n === before.bad + 1);
    await waitForValue(() => h.metric('pulsegate_readings_rejected_total', { reason: 'unknown_kind' }), (n) => n === before.unknown + 1);
    expect(await h.metric('pulsegate_mqtt_wills_total', { handling: 'rejected' })).toBe(before.rejectedWills + 1); // w-4's; w-3's was a publish
    const records = await h.records();
    expect(deadLetters(records).filter((d) => d.topic === 'devices/w-3/lwt' || d.topic === 'sensors/tide/w-4/status').map((d) => d.reason)).toEqual(['bad_topic', 'unknown_kind']);
    expect(records.filter((r) => r.type === RECORD_TYPES.deviceStatus)).toHaveLength(1); // w-1's only
    // The watcher (sensors/#, devices/#) got w-1's will and w-2's reading before these; a rejected
    // will would have reached it by the time its dead letter is durable.
    await watcher.publishAsync('sensors/heart-rate/watcher', reading(1), { qos: 1 });
    await waitFor(() => seen.some((m) => m.topic === 'sensors/heart-rate/watcher'), { what: 'the marker publish' });
    expect(seen.map((m) => m.topic).filter((t) => t.includes('w-3') || t.includes('w-4'))).toEqual([]);
  });
});

describe('MQTT 3.1.1 conformance: will messages beside a credentials file', () => {
  let h: Harness;
  beforeAll(async () => {
    const file = await writeDevices({ 'dev-w': { secret: 'secret-w' }, 'dev-v': { secret: 'secret-v' } });
    h = await startIngest({ allowAnonymous: true }, file);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("a device's will counts as device status only on its own status topic; on another device's (or, anonymously, a credentialed device's) it is rejected as unauthorized", async () => {
    const before = await h.metric('pulsegate_readings_rejected_total', { reason: 'unauthorized' });
    const die = async (connect: Record<string, unknown>, topic: string): Promise<void> => {
      const c = await rawConnected(h.port, { ...connect, will: { topic, payload: Buffer.from('offline'), qos: 1, retain: true } });
      c.socket.destroy();
    };
    await die({ clientId: 'dev-w', username: 'dev-w', password: Buffer.from('secret-w') }, 'sensors/heart-rate/dev-v/status');
    await die({ clientId: 'anon-1' }, 'sensors/heart-rate/dev-v/status');
    await waitForValue(() => h.metric('pulsegate_readings_rejected_total', { reason: 'unauthorized' }), (n) => n === before + 2);
    await die({ clientId: 'dev-v', username: 'dev-v', password: Buffer.from('secret-v') }, 'sensors/heart-rate/dev-v/status');
    await waitForValue(() => h.metric('pulsegate_mqtt_wills_total', { handling: 'device_status' }), (n) => n === 1);
    const records = await h.records();
    const statuses = records.filter((r) => r.type === RECORD_TYPES.deviceStatus).map((r) => JSON.parse(r.payload.toString('utf8')) as Record<string, unknown>);
    expect(statuses.map((s) => [s['deviceId'], s['status'], s['reason']])).toEqual([['dev-v', 'offline', 'will']]);
    expect(deadLetters(records).map((d) => [d.reason, d.topic])).toEqual([
      ['unauthorized', 'sensors/heart-rate/dev-v/status'],
      ['unauthorized', 'sensors/heart-rate/dev-v/status'],
    ]);
    // Delivered without its retain flag: nothing is kept for the device to be unable to clear.
    expect(await h.retainedTopics()).toEqual([]);
  });
});

describe('publish fast path (mqtt.fastPublish): sensor publishes read off the connection before the broker parses them', () => {
  let h: Harness;
  let off: Harness;
  beforeAll(async () => {
    h = await startIngest();
    off = await startIngest({ fastPublish: false });
  });
  afterAll(async () => {
    await h?.close();
    await off?.close();
  });
  const publish = (topic: string, seq: number, qos: 0 | 1, messageId?: number): Buffer =>
    gen({ cmd: 'publish', topic, payload: Buffer.from(reading(seq)), qos, retain: false, dup: false, messageId });
  const inPlace = (x: Harness): Promise<number> => x.metric('pulsegate_mqtt_publishes_read_in_place_total');
  const pubackIds = (c: RawClient): number[] => c.packets.filter((p) => p.cmd === 'puback').map((p) => (p as mqttPacket.IPubackPacket).messageId!);
  const seqsOf = async (x: Harness, topic: string): Promise<number[]> =>
    (await x.records()).filter((r) => r.type === RECORD_TYPES.ingest).map((r) => decodeIngestRecord(r.payload)).filter((r) => r.topic === topic).map((r) => (JSON.parse(r.payload.toString()) as { seq: number }).seq);

  it('QoS 1 publishes cut at every byte boundary across reads are all taken, logged in order and acknowledged in order [MQTT-4.6.0-2]', async () => {
    for (const x of [h, off]) {
      const before = await inPlace(x);
      const c = await rawConnected(x.port);
      const topic = `sensors/heart-rate/split-${x === h ? 'on' : 'off'}`;
      const n = 40;
      const bytes = Buffer.concat(Array.from({ length: n }, (_, i) => publish(topic, i + 1, 1, i + 1)));
      // Pieces of 1 to 9 bytes, each its own write a tick apart, so reads end inside headers,
      // topics, packet ids and payloads.
      let seed = 7;
      for (let at = 0; at < bytes.length; ) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        const size = 1 + (seed % 9);
        c.socket.write(bytes.subarray(at, at + size));
        at += size;
        await new Promise((resolve) => setImmediate(resolve));
      }
      await waitFor(() => pubackIds(c).length === n || c.closed, { what: `${n} PUBACKs` });
      expect(pubackIds(c)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(await seqsOf(x, topic)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      // Taken in place with the fast path on, none with it off.
      expect((await inPlace(x)) - before).toBe(x === h ? n : 0);
      c.socket.destroy();
    }
  });

  it('a burst of QoS 1 publishes many reads long is taken read by read, each read once the last one is acknowledged, and all of it acknowledged in order', async () => {
    const c = await rawConnected(h.port);
    const before = await inPlace(h);
    const n = 3000; // ~230 KB: several reads of the socket, which wait for each other's fsync
    c.socket.write(Buffer.concat(Array.from({ length: n }, (_, i) => publish('sensors/heart-rate/burst', i + 1, 1, (i % 65535) + 1))));
    await waitFor(() => pubackIds(c).length === n || c.closed, { what: `${n} PUBACKs` });
    expect(pubackIds(c)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect((await inPlace(h)) - before).toBe(n);
    c.socket.destroy();
  });

  it('PUBACKs keep the order of their PUBLISHes when a later one is answered first: a refusal answered at once behind readings waiting for their fsync [MQTT-4.6.0-2]', async () => {
    const limited = await startIngest({}, null, { rateLimit: { publishesPerSecond: 0.001, burst: 1, maxDevices: 100 } });
    try {
      const c = await rawConnected(limited.port);
      const topic = 'sensors/heart-rate/limited';
      // 1: within the budget, appended; 2: the first refusal, dead-lettered (appended); 3 and 4:
      // refused and counted only, answered at once; 5: another device, appended.
      c.socket.write(Buffer.concat([publish(topic, 1, 1, 1), publish(topic, 2, 1, 2), publish(topic, 3, 1, 3), publish(topic, 4, 0), publish(topic, 5, 1, 4), publish('sensors/heart-rate/other', 1, 1, 5)]));
      await waitFor(() => pubackIds(c).length === 5 || c.closed, { what: 'five PUBACKs' });
      expect(pubackIds(c)).toEqual([1, 2, 3, 4, 5]);
      expect(await limited.metric('pulsegate_readings_rejected_total', { reason: 'rate_limited' })).toBe(4);
      c.socket.destroy();
    } finally {
      await limited.close();
    }
  });

  it('through the broker (fast path off), PUBACKs keep the order of their PUBLISHes when a later one is answered at once: an empty retained publish and a rate-limited refusal behind readings waiting for their fsync [MQTT-4.6.0-2]', async () => {
    const limited = await startIngest({ fastPublish: false }, null, { rateLimit: { publishesPerSecond: 0.001, burst: 1, maxDevices: 100 } });
    let sub: MqttClient | null = null;
    try {
      sub = await connect(limited.port);
      // And the publishes reach a subscriber in that order [MQTT-4.6.0-6] (the refused ones not at all).
      await sub.subscribeAsync('sensors/heart-rate/+', { qos: 0 });
      const got: string[] = [];
      sub.on('message', (t, p) => got.push(`${t.slice('sensors/heart-rate/'.length)}:${p.length === 0 ? 'empty' : String((JSON.parse(p.toString()) as { seq: number }).seq)}`));
      const c = await rawConnected(limited.port);
      const topic = 'sensors/heart-rate/limited-broker';
      // 1: appended; 2: an empty retained publish (clears the topic's retained message, nothing
      // logged: answered at once); 3: the first refusal, dead-lettered; 4: refused, answered at once;
      // 5: a third device, appended.
      const clear = gen({ cmd: 'publish', topic: 'sensors/heart-rate/other-broker', payload: Buffer.alloc(0), qos: 1, retain: true, dup: false, messageId: 2 });
      c.socket.write(Buffer.concat([publish(topic, 1, 1, 1), clear, publish(topic, 2, 1, 3), publish(topic, 3, 1, 4), publish('sensors/heart-rate/third-broker', 1, 1, 5)]));
      await waitFor(() => pubackIds(c).length === 5 || c.closed, { what: 'five PUBACKs' });
      expect(pubackIds(c)).toEqual([1, 2, 3, 4, 5]);
      await waitFor(() => got.length === 3, { what: 'three publishes delivered' });
      expect(got).toEqual(['limited-broker:1', 'other-broker:empty', 'third-broker:1']);
      expect(await limited.metric('pulsegate_mqtt_publishes_read_in_place_total')).toBe(0);
      c.socket.destroy();
    } finally {
      await sub?.endAsync();
      await limited.close();
    }
  });

  it('a publish the fast path could take waits behind one of the same connection on the broker path: its PUBACK does not overtake [MQTT-4.6.0-2]', async () => {
    // Group commits every 200 ms: the retained reading (the broker's) waits that long for its fdatasync.
    const slow = await startIngest({}, null, { rateLimit: { publishesPerSecond: 0.001, burst: 1, maxDevices: 100 } }, { groupCommitIntervalMs: 200 });
    try {
      const c = await rawConnected(slow.port);
      const limited = 'sensors/heart-rate/spent';
      // Device "spent" uses its budget: 1 appended, 2 its first refusal (dead-lettered).
      c.socket.write(Buffer.concat([publish(limited, 1, 1, 1), publish(limited, 2, 1, 2)]));
      await waitFor(() => pubackIds(c).length === 2 || c.closed, { what: 'the first two PUBACKs' });
      // A retained reading of another device (the broker's: the fast path takes no retained
      // publish) waits up to 200 ms for its fdatasync...
      c.socket.write(gen({ cmd: 'publish', topic: 'sensors/heart-rate/behind-broker', payload: Buffer.from(reading(1)), qos: 1, retain: true, dup: false, messageId: 3 }));
      await new Promise((r) => setTimeout(r, 30));
      // ...when, in a later read, "spent" publishes again: refused, counted only, answered at once.
      c.socket.write(publish(limited, 3, 1, 4));
      await waitFor(() => pubackIds(c).length === 4 || c.closed, { what: 'four PUBACKs' });
      expect(pubackIds(c)).toEqual([1, 2, 3, 4]);
      expect(await slow.metric('pulsegate_readings_rejected_total', { reason: 'rate_limited' })).toBe(2);
      c.socket.destroy();
    } finally {
      await slow.close();
    }
  });

  it('in one read, publishes taken in place and packets the broker handles keep their order: PUBACKs in publish order, the SUBACK and PINGRESP answered', async () => {
    const c = await rawConnected(h.port);
    const topic = 'sensors/heart-rate/mixed';
    c.socket.write(
      Buffer.concat([
        publish(topic, 1, 1, 1),
        gen({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'alerts/#', qos: 1 }] }),
        publish(topic, 2, 1, 3),
        gen({ cmd: 'pingreq' }),
        publish(topic, 3, 0),
        publish(topic, 4, 1, 4),
      ]),
    );
    await waitFor(() => c.packets.length >= 5 || c.closed, { what: 'three PUBACKs, a SUBACK and a PINGRESP' });
    expect(pubackIds(c)).toEqual([1, 3, 4]);
    expect(c.packets.map((p) => p.cmd).sort()).toEqual(['pingresp', 'puback', 'puback', 'puback', 'suback']);
    expect(await seqsOf(h, topic)).toEqual([1, 2, 3, 4]);
    c.socket.destroy();
  });

  it('whole publishes in the read before a packet the guard refuses are still taken and logged, as the broker would handle them', async () => {
    for (const x of [h, off]) {
      const c = await rawConnected(x.port);
      const topic = `sensors/heart-rate/before-refusal-${x === h ? 'on' : 'off'}`;
      // The third packet, a QoS 1 PUBLISH with packet id 0, closes the connection [MQTT-2.3.1-1].
      c.socket.write(Buffer.concat([publish(topic, 1, 0), publish(topic, 2, 1, 7), publish(topic, 3, 1, 0), publish(topic, 4, 0)]));
      await waitFor(() => c.closed, { what: 'the connection closed' });
      await waitForValue(() => seqsOf(x, topic), (seqs) => seqs.length === 2, { what: 'the two publishes before the refused one in the log' });
      expect(await seqsOf(x, topic)).toEqual([1, 2]);
    }
  });

  it('a sensor topic somebody subscribed to goes through the broker, which delivers it; unsubscribed again, it is taken in place', async () => {
    const sub = await connect(h.port);
    await sub.subscribeAsync('sensors/heart-rate/+', { qos: 0 });
    const got: string[] = [];
    sub.on('message', (topic) => got.push(topic));
    const c = await rawConnected(h.port);
    const before = await inPlace(h);
    c.socket.write(publish('sensors/heart-rate/watched', 1, 1, 1));
    await waitFor(() => got.length === 1 && pubackIds(c).length === 1, { what: 'the publish delivered to the subscriber, and its PUBACK' });
    expect(await inPlace(h)).toBe(before);
    await sub.unsubscribeAsync('sensors/heart-rate/+');
    c.socket.write(publish('sensors/heart-rate/watched', 2, 1, 2));
    await waitFor(() => pubackIds(c).length === 2, { what: 'the second PUBACK' });
    expect(await inPlace(h)).toBe(before + 1);
    expect(got).toEqual(['sensors/heart-rate/watched']);
    expect(await seqsOf(h, 'sensors/heart-rate/watched')).toEqual([1, 2]);
    await sub.endAsync();
    c.socket.destroy();
  });

  it('publishes taken in place keep the connection alive: a client with keepalive 1 s that only publishes stays connected past 1.5 keepalives [MQTT-3.1.2-24]', async () => {
    const c = await rawConnected(h.port, { keepalive: 1 });
    const before = await inPlace(h);
    const until = Date.now() + 2600;
    for (let seq = 1; Date.now() < until; seq++) {
      c.socket.write(publish('sensors/heart-rate/keepalive', seq, 0));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(c.closed).toBe(false);
    expect((await inPlace(h)) - before).toBeGreaterThanOrEqual(10);
    c.socket.destroy();
  });

  it('what is not a sensor reading is left to the broker: retained, QoS 2, passthrough-free unknown topics and wildcard topics behave as with the fast path off', async () => {
    for (const x of [h, off]) {
      const before = await inPlace(x);
      const c = await rawConnected(x.port);
      c.socket.write(Buffer.concat([gen({ cmd: 'publish', topic: 'sensors/heart-rate/ret', payload: Buffer.from(reading(1)), qos: 1, retain: true, dup: false, messageId: 1 }), publish('unknown/topic', 1, 1, 2), gen({ cmd: 'publish', topic: 'sensors/heart-rate/q2', payload: Buffer.from(reading(1)), qos: 2, retain: false, dup: false, messageId: 3 })]));
      await waitFor(() => c.packets.length >= 3 || c.closed, { what: 'two PUBACKs and a PUBREC' });
      expect(c.packets.map((p) => [p.cmd, (p as mqttPacket.IPubackPacket).messageId])).toEqual([
        ['puback', 1],
        ['puback', 2],
        ['pubrec', 3],
      ]);
      expect(await inPlace(x)).toBe(before);
      // A wildcard in a PUBLISH topic closes the connection, as the broker does [MQTT-3.3.2-2].
      c.socket.write(publish('sensors/heart-rate/+', 1, 1, 4));
      await waitFor(() => c.closed, { what: `connection closed after a wildcard topic (fast path ${x === h ? 'on' : 'off'})` });
    }
  });
});

describe('a client that stops reading what it is sent, on a real socket', () => {
  it('is closed as not_reading once its deliveries back up for mqtt.packetTimeoutMs; a client that reads stays', async () => {
    const x = await startIngest({ passthrough: ['bulk/#'], packetTimeoutMs: 400 });
    let pub: MqttClient | null = null;
    let stalled: RawClient | null = null;
    let reader: RawClient | null = null;
    // The stalled client keeps sending PINGREQs (its writes are not blocked), which the broker
    // stops reading once what it sends the client backs up.
    let pinger: NodeJS.Timeout | null = null;
    try {
      pub = await connect(x.port);
      stalled = await rawConnected(x.port);
      reader = await rawConnected(x.port);
      const [p, s, r] = [pub, stalled, reader];
      for (const c of [s, r]) {
        c.socket.write(gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bulk/#', qos: 0 }] }));
        await waitFor(() => c.packets.some((p) => p.cmd === 'suback'), { what: 'the SUBACK' });
      }
      s.socket.pause();
      pinger = setInterval(() => {
        if (!s.closed) s.socket.write(gen({ cmd: 'pingreq' }));
      }, 100);
      // 60 MB: more than the kernel's buffers of the stalled socket hold (tcp_rmem allows 32 MB
      // here), so the broker's writes to it wait; stopped early by the close.
      const chunk = Buffer.alloc(200_000, 0x61);
      let published = 0;
      const t0 = Date.now();
      while (!s.closed && published < 300 && Date.now() - t0 < 15_000) {
        // Not awaited one by one: the broker stops reading the publisher while a delivery waits.
        await Promise.race([p.publishAsync('bulk/data', chunk, { qos: 0 }), new Promise((r) => setTimeout(r, 200))]);
        published++;
      }
      await waitFor(() => s.closed, { what: 'the stalled client closed', timeoutMs: 10_000 });
      expect(await x.metric('pulsegate_mqtt_connections_refused_total', { reason: 'not_reading' })).toBe(1);
      expect(r.closed).toBe(false);
      // With it gone, the reading client gets what it was sent.
      const got = (): number => r.received.reduce((n, b) => n + b.length, 0);
      await waitFor(() => got() >= published * chunk.length * 0.9, { what: 'the reading client got the deliveries', timeoutMs: 15_000 });
    } finally {
      if (pinger !== null) clearInterval(pinger);
      stalled?.socket.destroy();
      reader?.socket.destroy();
      await pub?.endAsync();
      await x.close();
    }
  });
});
