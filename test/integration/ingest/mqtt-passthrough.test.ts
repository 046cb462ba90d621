import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../gateway/ingest/credentials.js';
import { decodeDeadLetter } from '../../../gateway/log/dead-letter.js';
import { decodeIngestRecord } from '../../../gateway/log/ingest-record-format.js';
import { RECORD_TYPES, type LogRecord } from '../../../gateway/log/types.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { sample, scrape } from '../../helpers/metrics.js';
import { waitFor, waitForValue } from '../../helpers/wait.js';

/**
 * mqtt.passthrough: the embedded broker routes those topics like an ordinary broker (no ingest,
 * no log), with the credentials' ACLs; every other non-sensor topic is still rejected and counted.
 * Publishers are Debian's mosquitto_pub; subscribers are mqtt.js (whose SUBACK says when it listens).
 */

const run = promisify(execFile);
const pub = (port: number, args: string[]) => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', ...args], { timeout: 10_000 });

async function subscriber(port: number, filters: string[], opts: mqtt.IClientOptions = {}): Promise<{ client: MqttClient; seen: { topic: string; payload: string; retain: boolean }[]; granted: number[] }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...opts });
  const seen: { topic: string; payload: string; retain: boolean }[] = [];
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain }));
  const granted = (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  return { client, seen, granted };
}

/** Every topic the log holds a record of (ingest records and dead letters). */
function loggedTopics(records: LogRecord[]): string[] {
  return records.flatMap((r) => {
    if (r.type === RECORD_TYPES.ingest) return [decodeIngestRecord(r.payload).topic];
    if (r.type === RECORD_TYPES.deadLetter) return [decodeDeadLetter(r.payload).topic];
    return [];
  });
}

describe('mqtt.passthrough on an open gateway', () => {
  let gw: TestGateway;
  const metric = async (name: string, labels: Record<string, string> = {}) => sample(await scrape(gw.ports.http), name, labels);
  beforeAll(async () => {
    gw = await startTestGateway({ mqtt: { passthrough: ['site/#', 'hvac/+/temp', '#'], passthroughMaxRetained: 2 } });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it('a passthrough publish reaches a subscriber and is not in the log; a non-passthrough, non-sensor publish is still rejected and counted', async () => {
    // '#' in mqtt.passthrough still leaves the gateway's own topics (alerts/, sensors/, $) alone.
    const { client, seen } = await subscriber(gw.ports.mqtt, ['site/#', 'hvac/#', 'alerts/#']);
    const before = { passthrough: await metric('pulsegate_mqtt_passthrough_total'), bad: await metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' }) };
    await pub(gw.ports.mqtt, ['-q', '1', '-t', 'site/boiler/pressure', '-m', '1.8 bar']);
    await pub(gw.ports.mqtt, ['-q', '0', '-t', 'hvac/room-4/temp', '-m', '21.5']);
    await waitFor(() => seen.length === 2, { what: 'both passthrough messages' });
    expect(seen.map((m) => [m.topic, m.payload])).toEqual([
      ['site/boiler/pressure', '1.8 bar'],
      ['hvac/room-4/temp', '21.5'],
    ]);
    expect(await metric('pulsegate_mqtt_passthrough_total')).toBe(before.passthrough + 2);
    expect(await metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' })).toBe(before.bad);

    // Under the gateway's own first levels nothing passes through, whatever the filters say.
    await pub(gw.ports.mqtt, ['-q', '1', '-t', 'alerts/fake/heart-rate/x', '-m', 'spoofed']);
    await pub(gw.ports.mqtt, ['-q', '1', '-t', 'sensors/heart-rate', '-m', 'not a sensor topic']);
    expect(await metric('pulsegate_readings_rejected_total', { reason: 'bad_topic' })).toBe(before.bad + 2);
    expect(await metric('pulsegate_mqtt_passthrough_total')).toBe(before.passthrough + 2);
    // Readings still go to ingest (and a marker: the subscriber has seen all it would see).
    await pub(gw.ports.mqtt, ['-q', '1', '-t', 'sensors/heart-rate/pt-1', '-m', JSON.stringify({ seq: 1, ts: Date.now(), bpm: 70 })]);
    await waitForValue(() => metric('pulsegate_readings_received_total', { kind: 'heart-rate' }), (n) => n === 1);
    await pub(gw.ports.mqtt, ['-q', '1', '-t', 'site/marker', '-m', 'end']);
    await waitFor(() => seen.some((m) => m.topic === 'site/marker'), { what: 'the marker' });
    expect(seen.map((m) => m.topic)).not.toContain('alerts/fake/heart-rate/x');
    await client.endAsync();
  });

  it('retained passthrough messages are kept up to mqtt.passthroughMaxRetained topics; beyond, delivered but not retained (counted)', async () => {
    const before = await metric('pulsegate_mqtt_passthrough_retained_refused_total');
    for (const t of ['site/r/1', 'site/r/2', 'site/r/3']) await pub(gw.ports.mqtt, ['-q', '1', '-r', '-t', t, '-m', `value of ${t}`]);
    expect(await metric('pulsegate_mqtt_passthrough_retained_refused_total')).toBe(before + 1);
    // Replacing a kept one is fine; an empty retained publish frees its slot for another topic.
    await pub(gw.ports.mqtt, ['-q', '1', '-r', '-t', 'site/r/2', '-m', 'new value of site/r/2']);
    await pub(gw.ports.mqtt, ['-q', '1', '-r', '-t', 'site/r/1', '-n']);
    await pub(gw.ports.mqtt, ['-q', '1', '-r', '-t', 'site/r/4', '-m', 'value of site/r/4']);
    expect(await metric('pulsegate_mqtt_passthrough_retained_refused_total')).toBe(before + 1);
    const late = await subscriber(gw.ports.mqtt, ['site/r/#']);
    await waitFor(() => late.seen.length >= 2, { what: 'the retained messages' });
    // The retained ones arrive right after the SUBACK; a live marker publish comes after them.
    await pub(gw.ports.mqtt, ['-q', '1', '-t', 'site/r/marker', '-m', 'end']);
    await waitFor(() => late.seen.some((m) => m.topic === 'site/r/marker'), { what: 'the marker' });
    expect(late.seen.filter((m) => m.retain).map((m) => [m.topic, m.payload]).sort()).toEqual([
      ['site/r/2', 'new value of site/r/2'],
      ['site/r/4', 'value of site/r/4'],
    ]);
    await late.client.endAsync();
  });

  it('nothing of the passthrough traffic is in the log; the rejected publishes are dead-lettered', async () => {
    await gw.close();
    const topics = loggedTopics(await readLogRecords(join(gw.dataDir, 'log')));
    expect(topics.filter((t) => t.startsWith('site/') || t.startsWith('hvac/'))).toEqual([]);
    expect(topics).toEqual(expect.arrayContaining(['alerts/fake/heart-rate/x', 'sensors/heart-rate', 'sensors/heart-rate/pt-1']));
  });
});

describe('mqtt.passthrough beside a credentials file: the ACLs apply', () => {
  let gw: TestGateway;
  const metric = async (name: string, labels: Record<string, string> = {}) => sample(await scrape(gw.ports.http), name, labels);
  beforeAll(async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pg-passthrough-')), 'devices.yaml');
    const secret = await hashSecret('secret-x', 1024);
    writeFileSync(
      file,
      [
        'devices:',
        '  - username: boiler',
        `    secret: "${secret}"`,
        '    publish: ["site/boiler/#"]',
        '  - username: panel',
        `    secret: "${secret}"`,
        '    subscribe: ["site/#", "alerts/#"]',
        '',
      ].join('\n'),
    );
    gw = await startTestGateway({ mqtt: { allowAnonymous: true, credentialsFile: file, passthrough: ['site/#'] } });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it("a device publishes only to the passthrough topics its credentials' publish filters cover, and subscribes only to its subscribe filters", async () => {
    const panel = await subscriber(gw.ports.mqtt, ['site/#'], { clientId: 'panel', username: 'panel', password: 'secret-x' });
    expect(panel.granted).toEqual([1]);
    const before = { unauthorized: await metric('pulsegate_readings_rejected_total', { reason: 'unauthorized' }), passthrough: await metric('pulsegate_mqtt_passthrough_total') };
    // Own client ids (`<username>:<suffix>`), so the publishers do not take the subscriber's session over.
    const as = (user: string) => ['-i', `${user}:pub`, '-u', user, '-P', 'secret-x'];
    await pub(gw.ports.mqtt, [...as('boiler'), '-q', '1', '-t', 'site/boiler/pressure', '-m', '1.9 bar']);
    await pub(gw.ports.mqtt, [...as('boiler'), '-q', '1', '-t', 'site/door/open', '-m', 'outside its filters']);
    await pub(gw.ports.mqtt, [...as('panel'), '-q', '1', '-t', 'site/boiler/pressure', '-m', 'no publish filters']);
    await pub(gw.ports.mqtt, ['-q', '1', '-t', 'site/boiler/pressure', '-m', 'anonymous']);
    await pub(gw.ports.mqtt, [...as('boiler'), '-q', '1', '-t', 'site/boiler/marker', '-m', 'end']);
    await waitFor(() => panel.seen.some((m) => m.topic === 'site/boiler/marker'), { what: 'the marker' });
    expect(panel.seen.map((m) => m.payload)).toEqual(['1.9 bar', 'end']);
    expect(await metric('pulsegate_readings_rejected_total', { reason: 'unauthorized' })).toBe(before.unauthorized + 3);
    expect(await metric('pulsegate_mqtt_passthrough_total')).toBe(before.passthrough + 2);

    // The boiler may publish to site/boiler/# but not read site/#: its SUBSCRIBE gets 0x80 (which
    // mqtt.js reports as an error), and its connection stays up.
    const boiler = await subscriber(gw.ports.mqtt, ['alerts/#'], { clientId: 'boiler', username: 'boiler', password: 'secret-x' });
    expect(boiler.granted).toEqual([1]);
    await expect(boiler.client.subscribeAsync('site/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    expect(boiler.client.connected).toBe(true);
    await boiler.client.endAsync();
    await panel.client.endAsync();
  });
});
