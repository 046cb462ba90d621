import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceStats } from '../../../gateway/pipeline/device-stats.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { waitForValue } from '../../helpers/wait.js';

interface Device {
  kind: string;
  deviceId: string;
  readings: number;
  duplicates: number;
  gaps: number;
  gapFills: number;
  netLoss: number;
  lastTs: number | null;
  lastValues: Record<string, number>;
  silentMs: number;
}

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.dispose();
});

const devices = async (): Promise<Device[]> => ((await (await fetch(`http://127.0.0.1:${gw.ports.http}/v1/devices`)).json()) as { devices: Device[] }).devices;

describe('GET /v1/devices', () => {
  it('counts per device: readings, duplicates, gaps, gap fills, net loss, the newest reading', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const t0 = Date.now() - 10_000;
    try {
      // d1: 1, 2, 5 (gaps 3 and 4), then 3 late (fills one), then 2 again (a duplicate).
      for (const seq of [1, 2, 5, 3, 2]) await client.publishAsync('sensors/heart-rate/d1', JSON.stringify({ seq, ts: t0 + seq * 100, bpm: 60 + seq }), { qos: 1 });
      for (const seq of [1, 2, 3]) await client.publishAsync('sensors/heart-rate/d2', JSON.stringify({ seq, ts: t0 + seq * 100, bpm: 90 }), { qos: 1 });
    } finally {
      await client.endAsync();
    }
    const list = await waitForValue(devices, (l) => l.length === 2 && l.reduce((n, d) => n + d.readings + d.duplicates, 0) === 8, { what: 'both devices counted' });
    const d1 = list.find((d) => d.deviceId === 'd1')!;
    expect(d1).toMatchObject({ kind: 'heart-rate', readings: 4, duplicates: 1, gaps: 2, gapFills: 1, netLoss: 1, lastTs: t0 + 500, lastValues: { bpm: 65 } });
    expect(list.find((d) => d.deviceId === 'd2')).toMatchObject({ readings: 3, duplicates: 0, gaps: 0, netLoss: 0 });
    expect(d1.silentMs).toBeGreaterThanOrEqual(0);
  });

  it('keeps at most maxDevices, forgetting the least recently seen', () => {
    const stats = new DeviceStats({ maxDevices: 2 });
    const change = { accepted: 1, duplicates: 0, gaps: 0, gapFills: 0 };
    stats.record('a', 'k', 'a', change, null, 1);
    stats.record('b', 'k', 'b', change, null, 2);
    stats.record('a', 'k', 'a', change, null, 3);
    stats.record('c', 'k', 'c', change, null, 4);
    expect(stats.list().map((d) => d.deviceId)).toEqual(['a', 'c']);
    expect(stats.evictions).toBe(1);
    expect(stats.list().find((d) => d.deviceId === 'a')!.readings).toBe(2);
  });
});
