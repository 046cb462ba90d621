import { execFile } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { eventually, sample, scrape } from '../../helpers/metrics.js';

const PACKET_TIMEOUT_MS = 400;
const run = promisify(execFile);
const gen = (p: Record<string, unknown>): Buffer => mqttPacket.generate(p as unknown as mqttPacket.Packet);
const connectPacket = (extra: Record<string, unknown> = {}) => gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `raw-${Math.random()}`, clean: true, keepalive: 0, ...extra });

/** A raw TCP client that records every byte the broker sends and when the connection closed. */
interface RawClient {
  readonly socket: Socket;
  readonly received: Buffer[];
  closed: boolean;
  bytes(): Buffer;
}
async function raw(port: number): Promise<RawClient> {
  const socket = netConnect({ port, host: '127.0.0.1' });
  const c: RawClient = { socket, received: [], closed: false, bytes: () => Buffer.concat(c.received) };
  socket.on('data', (d) => c.received.push(d));
  socket.on('error', () => {}); // the broker closes these on purpose; EPIPE/ECONNRESET are expected
  socket.on('close', () => (c.closed = true));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return c;
}
async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
async function loggedIn(port: number): Promise<RawClient> {
  const c = await raw(port);
  c.socket.write(connectPacket());
  await until(() => c.bytes().length >= 4, 'CONNACK');
  expect([...c.bytes().subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
  c.received.length = 0;
  return c;
}

describe('mqtt packet guard (real TCP and WebSocket)', () => {
  let gw: TestGateway;
  const refused = async (reason: string) => sample(await scrape(gw.ports.http), 'pulsegate_mqtt_connections_refused_total', { reason });
  const appendedBytes = async () => sample(await scrape(gw.ports.http), 'pulsegate_log_appended_bytes_total');
  beforeAll(async () => {
    // Dead letters keep 1 MiB of payload here, so a publish that reached the log would show plainly.
    gw = await startTestGateway({ mqtt: { wsPort: 0, maxPacketBytes: 1_048_576, maxConnectBytes: 16_384, packetTimeoutMs: PACKET_TIMEOUT_MS, deadLetterPayloadBytes: 1_048_576 } });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it('a CONNECT with protocol level 9 gets CONNACK 0x01 (unacceptable protocol version), then is closed [MQTT-3.1.2-2]', async () => {
    const before = await refused('protocol_version');
    const c = await raw(gw.ports.mqtt);
    const p = connectPacket();
    p[8] = 9; // 0x10, length, 0x00 0x04 "MQTT", protocol level
    c.socket.write(p);
    await until(() => c.closed, 'close');
    expect([...c.bytes()]).toEqual([0x20, 0x02, 0x00, 0x01]);
    expect(await refused('protocol_version')).toBe(before + 1);
  });

  it('a QoS 1 PUBLISH with packet id 0 is not acknowledged and its connection is closed [MQTT-2.3.1-1]', async () => {
    const before = {
      refused: await refused('packet_id_zero'),
      appended: await appendedBytes(),
      received: sample(await scrape(gw.ports.http), 'pulsegate_readings_received_total', { kind: 'heart-rate' }),
    };
    const c = await loggedIn(gw.ports.mqtt);
    const payload = JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 });
    c.socket.write(gen({ cmd: 'publish', topic: 'sensors/heart-rate/id0', payload, qos: 1, messageId: 0, retain: false, dup: false }));
    await until(() => c.closed, 'close');
    expect(c.bytes().length).toBe(0); // no PUBACK
    expect(await refused('packet_id_zero')).toBe(before.refused + 1);
    expect(await appendedBytes()).toBeLessThan(before.appended + 64 * 1024);
    expect(await sample(await scrape(gw.ports.http), 'pulsegate_readings_received_total', { kind: 'heart-rate' })).toBe(before.received);
    // The same publish with id 1 is acknowledged.
    const ok = await loggedIn(gw.ports.mqtt);
    ok.socket.write(gen({ cmd: 'publish', topic: 'sensors/heart-rate/id0', payload, qos: 1, messageId: 1, retain: false, dup: false }));
    await until(() => ok.bytes().length >= 4, 'PUBACK');
    expect([...ok.bytes().subarray(0, 4)]).toEqual([0x40, 0x02, 0x00, 0x01]);
    ok.socket.destroy();
  });

  it('a logged-in client with keepalive 0 holding a partial PUBLISH open is closed after mqtt.packetTimeoutMs; an idle one stays', async () => {
    const before = await refused('packet_timeout');
    const idle = await loggedIn(gw.ports.mqtt);
    const c = await loggedIn(gw.ports.mqtt);
    const whole = gen({ cmd: 'publish', topic: 'sensors/heart-rate/slow', payload: Buffer.alloc(100_000, 0x20), qos: 0, retain: false, dup: false });
    const sentAt = Date.now();
    c.socket.write(whole.subarray(0, 200));
    await until(() => c.closed, 'close', PACKET_TIMEOUT_MS + 5000);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(PACKET_TIMEOUT_MS - 50);
    expect(await refused('packet_timeout')).toBe(before + 1);
    // Idle (between packets) for longer than the packet timeout: not a slow packet, still served.
    expect(idle.closed).toBe(false);
    idle.socket.write(gen({ cmd: 'pingreq' }));
    await until(() => idle.bytes().length >= 2, 'PINGRESP');
    expect([...idle.bytes()]).toEqual([0xd0, 0x00]);
    idle.socket.destroy();
  });

  it('a connection that sends nothing after the TCP accept is closed after mqtt.packetTimeoutMs', async () => {
    const before = await refused('connect_timeout');
    const openedAt = Date.now();
    const c = await raw(gw.ports.mqtt);
    await until(() => c.closed, 'close', PACKET_TIMEOUT_MS + 5000);
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(PACKET_TIMEOUT_MS - 50);
    expect(c.bytes().length).toBe(0);
    expect(await refused('connect_timeout')).toBe(before + 1);
  });

  it('a 16 MiB PUBLISH over mqtt.maxPacketBytes closes its connection from the fixed header: counted, nothing written to the log', async () => {
    const before = { refused: await refused('packet_too_large'), tooLarge: sample(await scrape(gw.ports.http), 'pulsegate_readings_rejected_total', { reason: 'too_large' }), appended: await appendedBytes() };
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0, keepalive: 0 });
    client.on('error', () => {});
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish('sensors/heart-rate/huge', Buffer.alloc(16 * 1024 * 1024, 0x41), { qos: 0 });
    await closed;
    expect(await refused('packet_too_large')).toBe(before.refused + 1);
    expect(sample(await scrape(gw.ports.http), 'pulsegate_readings_rejected_total', { reason: 'too_large' })).toBe(before.tooLarge);
    // The gateway's own records (store batches, checkpoints) may land meanwhile: far less than the
    // 1 MiB payload prefix a dead letter of this publish would hold.
    expect(await appendedBytes()).toBeLessThan(before.appended + 64 * 1024);
    client.end(true);
  });

  it('mosquitto_pub speaking MQTT 5 is answered "unacceptable protocol version"; speaking MQTT 3.1 (MQIsdp) it is served', async () => {
    const before = { refused: await refused('protocol_version'), received: sample(await scrape(gw.ports.http), 'pulsegate_readings_received_total', { kind: 'heart-rate' }) };
    const args = (version: string) => ['-h', '127.0.0.1', '-p', String(gw.ports.mqtt), '-q', '1', '-V', version, '-i', `m-${version}`, '-t', 'sensors/heart-rate/mq', '-m', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 61 })];
    const v5 = await run('mosquitto_pub', args('mqttv5')).then(
      () => ({ ok: true, stderr: '' }),
      (err: { stderr: string }) => ({ ok: false, stderr: err.stderr }),
    );
    expect(v5.ok).toBe(false);
    expect(v5.stderr.toLowerCase()).toMatch(/protocol version/);
    expect(await refused('protocol_version')).toBe(before.refused + 1);
    await run('mosquitto_pub', args('mqttv31'));
    await eventually(() => scrape(gw.ports.http).then((m) => sample(m, 'pulsegate_readings_received_total', { kind: 'heart-rate' })), (n) => n === before.received + 1);
  });

  it('the first packet must be a CONNECT [MQTT-3.1.0-1]', async () => {
    const before = await refused('not_connect_first');
    const c = await raw(gw.ports.mqtt);
    c.socket.write(gen({ cmd: 'publish', topic: 'sensors/heart-rate/early', payload: 'x', qos: 0, retain: false, dup: false }));
    await until(() => c.closed, 'close');
    expect(c.bytes().length).toBe(0);
    expect(await refused('not_connect_first')).toBe(before + 1);
  });

  it('a CONNECT declaring 200 MiB over WebSocket is refused from its fixed header', async () => {
    const before = await refused('connect_too_large');
    const ws = new WebSocket(`ws://127.0.0.1:${gw.ports.ws}`, 'mqtt');
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.on('error', () => {});
    ws.send(Buffer.concat([Buffer.from([0x10, 0x80, 0x80, 0x80, 0x64]), Buffer.alloc(64 * 1024)]));
    await closed;
    await eventually(() => refused('connect_too_large'), (n) => n === before + 1);
  });
});
