import { connect as netConnect, createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installRouteGate, RouteGate } from '../../../gateway/ingest/route-gate.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * The route gate skips aedes' topic matching only for publishes no subscription can match: on a
 * real aedes broker with real MQTT clients, live, wildcard and stored (offline, clean=false)
 * subscriptions must all still get their messages, and a publish with no possible subscriber is
 * skipped.
 */

let broker: Aedes;
let server: Server;
let gate: RouteGate;
let port: number;
const clients: MqttClient[] = [];

beforeEach(async () => {
  broker = await Aedes.createBroker();
  gate = installRouteGate(broker);
  server = createServer({ noDelay: true }, broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function connect(opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...opts });
  clients.push(c);
  return c;
}

function collect(c: MqttClient): string[] {
  const seen: string[] = [];
  c.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
  return seen;
}

describe('route gate on a real aedes broker', () => {
  it('skips publishes nobody subscribed to, and routes again once somebody does', async () => {
    const pub = await connect();
    for (let i = 0; i < 5; i++) await pub.publishAsync('sensors/hr/d1', `a${i}`, { qos: 1 });
    await waitFor(() => gate.skipped >= 5, { what: 'skipped publishes' });
    expect(gate.skipped).toBe(5);

    const sub = await connect();
    const seen = collect(sub);
    await sub.subscribeAsync('sensors/hr/+', { qos: 0 });
    await pub.publishAsync('sensors/hr/d1', 'b0', { qos: 1 });
    await pub.publishAsync('other/topic', 'c0', { qos: 0 }); // no filter names "other": skipped
    await pub.publishAsync('sensors/hr/d2', 'b1', { qos: 0 });
    await waitFor(() => seen.length === 2, { what: 'both sensor messages' });
    expect(seen).toEqual(['sensors/hr/d1 b0', 'sensors/hr/d2 b1']);
    await waitFor(() => gate.skipped >= 6, { what: 'skipped publishes' });
    expect(gate.skipped).toBe(6);

    await sub.unsubscribeAsync('sensors/hr/+');
    expect(gate.filters).toBe(0);
    await pub.publishAsync('sensors/hr/d1', 'd0', { qos: 1 });
    await waitFor(() => gate.skipped >= 7, { what: 'skipped publishes' });
    expect(gate.skipped).toBe(7);
  });

  it('a subscription starting with a wildcard matches every topic: nothing is skipped while it lives', async () => {
    const sub = await connect();
    const seen = collect(sub);
    await sub.subscribeAsync('+/hr/#', { qos: 1 });
    const pub = await connect();
    await pub.publishAsync('sensors/hr/d9', 'w', { qos: 1 });
    await pub.publishAsync('elsewhere/x', 'n', { qos: 1 });
    await waitFor(() => seen.length === 1, { what: 'the wildcard message' });
    expect(seen).toEqual(['sensors/hr/d9 w']);
    expect(gate.skipped).toBe(0);
    await sub.endAsync();
    await waitFor(() => gate.filters === 0, { what: 'the closed client’s filters gone' });
  });

  it('a persistent session gets what was published while it was offline (stored subscriptions), a clean reconnect ends that', async () => {
    const sub = await connect({ clientId: 'watcher', clean: false });
    await sub.subscribeAsync('sensors/#', { qos: 1 });
    await sub.endAsync();
    const pub = await connect();
    await pub.publishAsync('sensors/hr/d1', 'while-away-1', { qos: 1 });
    await pub.publishAsync('sensors/hr/d2', 'while-away-2', { qos: 1 });
    expect(gate.skipped).toBe(0);

    const seen: string[] = [];
    const back = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'watcher', clean: false });
    clients.push(back);
    back.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await waitFor(() => seen.length === 2, { what: 'the queued messages' });
    expect(seen.sort()).toEqual(['sensors/hr/d1 while-away-1', 'sensors/hr/d2 while-away-2']);
    await back.endAsync();

    // A clean session with the same id drops the stored subscriptions: publishes are skipped again.
    const clean = await connect({ clientId: 'watcher', clean: true });
    await clean.endAsync();
    await waitFor(() => gate.filters === 0, { what: 'the stored filters gone' });
    await pub.publishAsync('sensors/hr/d1', 'nobody', { qos: 1 });
    await waitFor(() => gate.skipped >= 1, { what: 'skipped publishes' });
    expect(gate.skipped).toBe(1);
  });

  it('an UNSUBSCRIBE and a SUBSCRIBE of the same filter in one socket read leave it mirrored: the offline queue still fills', async () => {
    const first = await connect({ clientId: 'c1', clean: false });
    await first.subscribeAsync('alerts/#', { qos: 1 });
    await first.endAsync();
    const sock = netConnect(port, '127.0.0.1');
    await new Promise((resolve) => sock.once('connect', resolve));
    const gen = (p: object) => mqttPacket.generate(p as never);
    let acks = 0;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (pk: { cmd: string }) => {
      if (pk.cmd === 'connack' || pk.cmd === 'unsuback' || pk.cmd === 'suback') acks++;
    });
    sock.on('data', (d: Buffer) => parser.parse(d));
    sock.write(gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'c1', keepalive: 30 }));
    await waitFor(() => acks === 1, { what: 'CONNACK' });
    sock.write(Buffer.concat([gen({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['alerts/#'] }), gen({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'alerts/#', qos: 1 }] })]));
    await waitFor(() => acks === 3, { what: 'UNSUBACK and SUBACK' });
    expect(gate.mayMatch('alerts/x')).toBe(true);
    sock.end(gen({ cmd: 'disconnect' }));
    await new Promise((resolve) => sock.once('close', resolve));
    const pub = await connect();
    await pub.publishAsync('alerts/offline', 'O', { qos: 1 });
    const seen: string[] = [];
    const back = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'c1', clean: false });
    clients.push(back);
    back.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await waitFor(() => seen.length === 1, { what: 'the queued message' });
    expect(seen).toEqual(['alerts/offline O']);
  });

  it('retained publishes and $ topics always take aedes’ path', async () => {
    const pub = await connect();
    await pub.publishAsync('sensors/hr/d1', 'kept', { qos: 1, retain: true });
    expect(gate.skipped).toBe(0);
    const late = await connect();
    const seen = collect(late);
    await late.subscribeAsync('sensors/hr/d1', { qos: 1 });
    await waitFor(() => seen.length === 1, { what: 'the retained message' });
    expect(seen).toEqual(['sensors/hr/d1 kept']);
  });
});

describe('RouteGate counts', () => {
  it('mirrors live and stored filters by first level, over-counting never under', () => {
    const g = new RouteGate();
    expect(g.mayMatch('sensors/a')).toBe(false);
    g.live('sensors/a/#', 1);
    expect(g.mayMatch('sensors/b')).toBe(true);
    expect(g.mayMatch('alerts/x')).toBe(false);
    g.storedAdd('c1', ['sensors/#', 'sensors/#', 'alerts/#']);
    g.live('sensors/a/#', -1);
    expect(g.mayMatch('sensors/b')).toBe(true);
    g.storedRemove('c1', ['sensors/#']);
    expect(g.mayMatch('sensors/b')).toBe(false);
    expect(g.mayMatch('alerts/y')).toBe(true);
    g.storedClean('c1');
    expect(g.filters).toBe(0);
    g.live('#', 1);
    expect(g.mayMatch('anything/at/all')).toBe(true);
    g.live('#', -1);
    g.live('$share/g/sensors/#', 1);
    expect(g.mayMatch('sensors/b')).toBe(true);
  });
});
