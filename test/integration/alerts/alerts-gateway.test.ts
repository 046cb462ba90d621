import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { decodeAlertTransition, type AlertEvent } from '../../../gateway/wire/alert.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { sample } from '../../helpers/metrics.js';
import { waitFor } from '../../helpers/wait.js';

let gw: TestGateway | null = null;
afterEach(async () => {
  await gw?.dispose();
  gw = null;
});

async function firing(port: number): Promise<AlertEvent[]> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/alerts`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { alerts: AlertEvent[] }).alerts;
}

async function alertRecords(dir: string) {
  return (await readLogRecords(dir)).filter((r) => r.type === RECORD_TYPES.alert).map((r) => ({ offset: r.offset, ...decodeAlertTransition(r.payload) }));
}

describe('alerts in a running gateway', () => {
  it('should log one FIRING and one RESOLVED for a heart-rate spike, serve it while firing, and log neither again when the whole log is replayed', async () => {
    gw = await startTestGateway({ alerts: { rules: [] } });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const t0 = Math.floor((Date.now() - 120_000) / 10_000) * 10_000;
    let seq = 0;
    const send = (ts: number, bpm: number) => client.publishAsync('sensors/heart-rate/hr-1', JSON.stringify({ seq: ++seq, ts, bpm }), { qos: 1 });
    // Window [t0, t0 + 10 s): a spike; the first reading of the next window closes it.
    for (let i = 0; i < 10; i++) await send(t0 + i * 1000, 210);
    await send(t0 + 10_000, 80);
    await waitFor(async () => (await firing(gw!.ports.http)).length === 1, { timeoutMs: 10_000, what: 'the spike to fire' });
    const [alert] = await firing(gw.ports.http);
    expect(alert).toMatchObject({ rule: 'heart-rate-spike', state: 'FIRING', deviceId: 'hr-1', kind: 'heart-rate', value: 210, threshold: 200, windowStart: t0, windowEnd: t0 + 10_000, firedAt: t0 + 10_000 });
    expect(alert!.offset).toBeGreaterThan(0);
    // The next window is normal; one reading after it closes it and resolves the episode.
    for (let i = 1; i < 10; i++) await send(t0 + 10_000 + i * 1000, 80);
    await send(t0 + 20_000, 80);
    await waitFor(async () => (await firing(gw!.ports.http)).length === 0, { timeoutMs: 10_000, what: 'the spike to resolve' });
    expect(sample(await gw.registry.metrics(), 'pulsegate_alert_transitions_total', { rule: 'heart-rate-spike', state: 'RESOLVED' })).toBe(1);
    await client.endAsync();
    const dataDir = gw.dataDir;
    await gw.close();
    const before = await alertRecords(join(dataDir, 'log'));
    expect(before.map((r) => [r.state, r.id])).toEqual([
      ['FIRING', alert!.id],
      ['RESOLVED', alert!.id],
    ]);
    expect(before[0]!.offset).toBe(alert!.offset);

    // As after a crash right after the transitions were logged: no checkpoint, the whole log replays.
    for (const f of readdirSync(join(dataDir, 'log'))) if (f.startsWith('checkpoint')) rmSync(join(dataDir, 'log', f));
    gw = await startTestGateway({ alerts: { rules: [] } }, dataDir);
    expect((await readdirSync(join(dataDir, 'log'))).length).toBeGreaterThan(0);
    await gw.close();
    const after = await alertRecords(join(dataDir, 'log'));
    expect(after).toEqual(before);
  });
});

describe('alerts at shutdown', () => {
  it('should not judge the half-filled windows a graceful shutdown emits', async () => {
    gw = await startTestGateway({ alerts: { rules: [] } });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    // Three seconds of a spike at the start of the window now open; nothing closes it before shutdown.
    const t0 = Math.floor(Date.now() / 10_000) * 10_000;
    for (let i = 0; i < 15; i++) await client.publishAsync('sensors/heart-rate/hr-2', JSON.stringify({ seq: i + 1, ts: t0 + i * 200, bpm: 210 }), { qos: 1 });
    await client.endAsync();
    const dataDir = gw.dataDir;
    await gw.close();
    const records = await readLogRecords(join(dataDir, 'log'));
    // The shutdown did emit the half-filled window (to the store and the window stream)...
    expect(records.some((r) => r.type === RECORD_TYPES.window)).toBe(true);
    // ...but no rule judged it.
    expect(records.filter((r) => r.type === RECORD_TYPES.alert)).toEqual([]);
  });
});
