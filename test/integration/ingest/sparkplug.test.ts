import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeDeviceStatus } from '../../../gateway/log/device-status-record.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { decodeSparkplugPayload, encodeSparkplugPayload, REBIRTH_METRIC } from '../../../gateway/ingest/sparkplug-payload.js';
import type { GatewayEvents } from '../../../gateway/events.js';
import { main as simulatorMain } from '../../../simulators/cli.js';
import { SparkplugEdgeNode } from '../../../simulators/sparkplug.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { sample, scrape } from '../../helpers/metrics.js';
import { waitFor, waitForValue } from '../../helpers/wait.js';

const SPARKPLUG = { ingest: { sparkplug: { enabled: true } }, sinks: { flushIntervalMs: 50 } };

let gw: TestGateway | null = null;
const clients: MqttClient[] = [];
const nodes: SparkplugEdgeNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) n.die();
  for (const c of clients.splice(0)) await c.endAsync(true);
  await gw?.dispose();
  gw = null;
});

const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => sample(await scrape(gw!.ports.http), name, labels);
const waitMetric = (name: string, labels: Record<string, string>, want: number): Promise<number> =>
  waitForValue(() => metric(name, labels), (v) => v === want, { what: `${name}${JSON.stringify(labels)} = ${want}` });

async function readings(device: string): Promise<{ count: number; readings: { seq: number; ts: number; values: { bpm: number } }[] }> {
  const res = await fetch(`http://127.0.0.1:${gw!.ports.http}/v1/readings?kind=heart-rate&device=${encodeURIComponent(device)}&from=0&to=9999999999999&limit=10000`);
  return (await res.json()) as { count: number; readings: { seq: number; ts: number; values: { bpm: number } }[] };
}

function edge(group: string, edgeId: string, devices: string[], extra: { loss?: number; seed?: number } = {}): SparkplugEdgeNode {
  const n = new SparkplugEdgeNode({ url: `mqtt://127.0.0.1:${gw!.ports.mqtt}`, group, edge: edgeId, devices, seed: extra.seed ?? 7, ...(extra.loss === undefined ? {} : { loss: extra.loss }) });
  nodes.push(n);
  return n;
}

async function rawClient(): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw!.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

describe('Sparkplug B ingest', () => {
  it('births then data with a wrapping seq become readings of each device, and only lost messages count as gaps', async () => {
    gw = await startTestGateway(SPARKPLUG);
    const devices = ['strap1', 'strap2'];
    // Seed 3 loses a few of the 300 DDATA; 2 births + 300 DDATA take the seq past 255 and around.
    const node = edge('plant', 'line1', devices, { loss: 0.02, seed: 3 });
    await node.start();
    const perDevice = 150;
    for (let i = 0; i < perDevice; i++) for (const d of devices) await node.data(d);
    const lost = node.stats.lost.length;
    expect(lost).toBeGreaterThan(0);
    const sent = Object.values(node.stats.sent).reduce((a, b) => a + b, 0);
    expect(sent + lost).toBe(2 * perDevice);

    // Each DBIRTH is a reading too (it carries the current values).
    await waitMetric('pulsegate_readings_received_total', { kind: 'heart-rate' }, sent + devices.length);
    for (const d of devices) {
      const want = node.stats.sent[d]! + 1;
      const got = await waitForValue(() => readings(`plant:line1:${d}`), (r) => r.count === want, { what: `readings of ${d}` });
      const bpms = got.readings.map((r) => r.values.bpm);
      expect(bpms.every((b) => Number.isInteger(b) && b >= 0 && b <= 300)).toBe(true);
    }
    // The two devices share the node's seq: interleaving them is no gap, a lost message is one.
    expect(await metric('pulsegate_sequence_gaps_total')).toBe(lost);
    expect(await metric('pulsegate_sparkplug_messages_lost_total')).toBe(lost);
    expect(await metric('pulsegate_readings_duplicate_total')).toBe(0);
    expect(await metric('pulsegate_sparkplug_messages_total', { type: 'DDATA' })).toBe(sent);
  });

  it('data before its birth is rejected as sparkplug_no_birth and the edge node is asked for a rebirth, at most once per rebirthIntervalMs', async () => {
    gw = await startTestGateway(SPARKPLUG);
    const c = await rawClient();
    const commands: Buffer[] = [];
    c.on('message', (topic, payload) => {
      if (topic === 'spBv1.0/site/NCMD/edgeX') commands.push(payload);
    });
    await c.subscribeAsync('spBv1.0/site/NCMD/edgeX', { qos: 0 });
    const ddata = encodeSparkplugPayload({ timestamp: Date.now(), seq: 5, metrics: [{ alias: 1, type: 'Int32', value: 70 }] });
    await c.publishAsync('spBv1.0/site/DDATA/edgeX/dev1', ddata, { qos: 1 });
    await waitMetric('pulsegate_readings_rejected_total', { reason: 'sparkplug_no_birth' }, 1);
    await waitFor(() => commands.length === 1, { what: 'the NCMD rebirth request' });
    const request = decodeSparkplugPayload(commands[0]!);
    expect(request.metrics).toEqual([expect.objectContaining({ name: REBIRTH_METRIC, type: 'Boolean', value: true })]);

    await c.publishAsync('spBv1.0/site/DDATA/edgeX/dev1', ddata, { qos: 1 });
    await waitMetric('pulsegate_readings_rejected_total', { reason: 'sparkplug_no_birth' }, 2);
    // The request goes out with the rejection, synchronously: a second one would be counted by now.
    expect(await metric('pulsegate_sparkplug_rebirth_requests_total')).toBe(1);
    expect(await metric('pulsegate_readings_received_total', { kind: 'heart-rate' })).toBe(0);
  });

  it("the simulator's edge node answers a rebirth request with new births, and its data is taken again", async () => {
    // One session held: a second edge node's birth makes the gateway forget the first.
    gw = await startTestGateway({ ...SPARKPLUG, ingest: { sparkplug: { enabled: true, maxEdgeNodes: 1 } } });
    const a = edge('site', 'edgeA', ['d1']);
    await a.start();
    await a.data('d1');
    await waitMetric('pulsegate_readings_received_total', { kind: 'heart-rate' }, 2);
    const b = edge('site', 'edgeB', ['d1'], { seed: 8 });
    await b.start();
    await waitMetric('pulsegate_sparkplug_sessions_evicted_total', {}, 1);
    await a.data('d1');
    await waitMetric('pulsegate_readings_rejected_total', { reason: 'sparkplug_no_birth' }, 1);
    await waitFor(() => a.stats.births === 2, { what: 'the edge node to answer the rebirth request' });
    expect(a.stats.rebirthRequests).toBe(1);
    // a's DBIRTH and DDATA (2), b's DBIRTH (1), a's DBIRTH after the rebirth (1), then a DDATA.
    await waitMetric('pulsegate_readings_received_total', { kind: 'heart-rate' }, 4);
    await a.data('d1');
    await waitMetric('pulsegate_readings_received_total', { kind: 'heart-rate' }, 5);
    const got = await waitForValue(() => readings('site:edgeA:d1'), (r) => r.count === 4, { what: 'edgeA readings' });
    expect(got.count).toBe(4);
  });

  it('a DDEATH and the NDEATH will make devices offline at once: deviceStatus records in the log and device.status events', async () => {
    gw = await startTestGateway(SPARKPLUG);
    const events: GatewayEvents['device.status'][] = [];
    gw.events.on('device.status', (e) => events.push(e));
    const node = edge('site', 'edgeD', ['pump1', 'pump2']);
    await node.start();
    await waitFor(() => events.length === 3, { what: 'online statuses of the node and its two devices' });
    expect(events.map((e) => [e.deviceId, e.status, e.reason])).toEqual([
      ['site:edgeD', 'online', 'sparkplug-birth'],
      ['site:edgeD:pump1', 'online', 'sparkplug-birth'],
      ['site:edgeD:pump2', 'online', 'sparkplug-birth'],
    ]);

    await node.deviceDeath('pump1');
    await waitFor(() => events.length === 4, { what: 'the DDEATH status' });
    expect(events[3]).toMatchObject({ kind: 'heart-rate', deviceId: 'site:edgeD:pump1', status: 'offline', reason: 'sparkplug-death', replay: false });

    // An NDEATH with another bdSeq is an older session's will: no effect.
    const c = await rawClient();
    await c.publishAsync('spBv1.0/site/NDEATH/edgeD', encodeSparkplugPayload({ metrics: [{ name: 'bdSeq', type: 'UInt64', value: 41 }] }), { qos: 1 });
    await waitMetric('pulsegate_readings_rejected_total', { reason: 'sparkplug_stale_death' }, 1);
    expect(events).toHaveLength(4);

    // The connection drops: the broker publishes the node's will, its NDEATH.
    node.die();
    await waitFor(() => events.length === 6, { what: 'the NDEATH statuses' });
    expect(events.slice(4).map((e) => [e.deviceId, e.status])).toEqual([
      ['site:edgeD', 'offline'],
      ['site:edgeD:pump2', 'offline'],
    ]);

    const dataDir = gw.dataDir;
    await gw.close();
    const statuses = (await readLogRecords(join(dataDir, 'log'))).filter((r) => r.type === RECORD_TYPES.deviceStatus).map((r) => decodeDeviceStatus(r.payload));
    expect(statuses.map((s) => [s?.deviceId, s?.status, s?.reason])).toEqual(events.map((e) => [e.deviceId, e.status, e.reason]));
    expect(statuses.every((s) => s !== null && s.kind === 'heart-rate' && typeof s.at === 'number')).toBe(true);
  });

  it('pulsegate-sim heart-rate --profile sparkplug yields the readings of each device, and its will makes them offline', async () => {
    gw = await startTestGateway(SPARKPLUG);
    const events: GatewayEvents['device.status'][] = [];
    gw.events.on('device.status', (e) => events.push(e));
    const out: string[] = [];
    const sink = { write: (chunk: string) => out.push(chunk) > 0 } as unknown as NodeJS.WritableStream;
    const args = ['heart-rate', '--profile', 'sparkplug', '--url', `mqtt://127.0.0.1:${gw.ports.mqtt}`, '--group', 'gym', '--edge', 'hub', '--devices', '2', '--count', '200', '--no-realtime', '--end', 'will', '--seed', '5', '--quiet'];
    expect(await simulatorMain(args, { out: sink, err: sink })).toBe(0);
    expect(out.join('')).toContain('400 DDATA from 2 devices');
    await waitMetric('pulsegate_readings_received_total', { kind: 'heart-rate' }, 402);
    for (const d of ['gym:hub:athlete-1', 'gym:hub:athlete-2']) await waitForValue(() => readings(d), (r) => r.count === 201, { what: `readings of ${d}` });
    await waitFor(() => events.length === 6, { what: 'births and the will' });
    expect(events.slice(3).map((e) => [e.deviceId, e.status])).toEqual([
      ['gym:hub', 'offline'],
      ['gym:hub:athlete-1', 'offline'],
      ['gym:hub:athlete-2', 'offline'],
    ]);
    expect(await metric('pulsegate_sequence_gaps_total')).toBe(0);
  });

  it('with ingest.sparkplug.hostId the gateway is the primary host: a retained STATE online, which an edge node waits for before its births', async () => {
    gw = await startTestGateway({ ...SPARKPLUG, ingest: { sparkplug: { enabled: true, hostId: 'scada1' } } });
    const n = new SparkplugEdgeNode({ url: `mqtt://127.0.0.1:${gw.ports.mqtt}`, group: 'site', edge: 'edgeP', devices: ['d1'], seed: 1, primaryHost: 'scada1' });
    nodes.push(n);
    await n.start();
    expect(n.stats.births).toBe(1);
    await waitMetric('pulsegate_readings_received_total', { kind: 'heart-rate' }, 1);
    const c = await rawClient();
    const states: string[] = [];
    c.on('message', (topic, payload, packet) => {
      if (topic === 'spBv1.0/STATE/scada1') states.push(`${packet.retain ? 'retained ' : ''}${payload.toString()}`);
    });
    await c.subscribeAsync('spBv1.0/STATE/scada1', { qos: 1 });
    await waitFor(() => states.length === 1, { what: 'the retained STATE' });
    expect(JSON.parse(states[0]!.replace('retained ', ''))).toMatchObject({ online: true, timestamp: expect.any(Number) });
    expect(states[0]).toMatch(/^retained /);
  });
});
