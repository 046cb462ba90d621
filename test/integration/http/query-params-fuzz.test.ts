import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { eventually } from '../../helpers/metrics.js';
import { mulberry32 } from '../../helpers/random.js';

/**
 * Seeded fuzz over the query API's parameters: whatever a client sends, the answer is a 2xx or a
 * 4xx with an error code (never a 5xx, never a dropped connection), the process lives, and a
 * device's readings keep landing meanwhile.
 */
describe('query parameters under fuzz', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ sinks: { flushIntervalMs: 100 } });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it('seeded fuzz: every query answers 2xx or 4xx with a code, and a device loses nothing meanwhile', async () => {
    const rand = mulberry32(0x9e17);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const values = [
      'critical', 'warning', 'heart-rate-spike', '*', 'athlete-?', '[', '/^.*$/', '', '0', '-1', '1', '9999999999999', '99999999999999999999', '1e3', '0x10', ' 10', '10 ', 'NaN', 'Infinity', '-Infinity',
      'now', 'now-15m', 'now-', 'now-1x', 'now-99999999999d', '2026-01-01', '2026-13-45', '1970-01-01T00:00:00Z', '+275760-09-13T00:00:00.000Z',
      'heart-rate', 'bridge', 'nope', '__proto__', 'constructor', '%00', '%ff', '%E2%80%8B', "'; DROP TABLE readings; --", '"', '\\', 'x'.repeat(5000),
      '10s', '1m', '0s', '-10s', '1000000000d',
    ];
    const names = ['kind', 'device', 'from', 'to', 'size', 'limit', 'kind', 'from', 'x', '__proto__', 'limit[]', 'from[a]', 'rule', 'severity'];
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const t0 = Date.now() - 60_000;
    let seq = 0;
    const statuses = new Map<number, number>();
    const bad: string[] = [];
    for (let i = 0; i < 600; i++) {
      const parts = Array.from({ length: Math.floor(rand() * 7) }, () => `${pick(names)}=${encodeURIComponent(pick(values)).replace(/%25/g, rand() < 0.5 ? '%' : '%25')}`);
      if (rand() < 0.6) parts.unshift(`kind=${pick(['heart-rate', 'bridge'])}`);
      const path = `${pick(['/v1/readings', '/v1/windows', '/v1/alerts/history'])}?${parts.join('&')}`;
      const res = await fetch(`http://127.0.0.1:${gw.ports.http}${path}`);
      const body = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500) bad.push(`${res.status} ${path.slice(0, 200)} -> ${body.slice(0, 200)}`);
      else if (res.status >= 400) {
        const parsed = JSON.parse(body) as { error?: unknown };
        if (typeof parsed.error !== 'string' || !parsed.error.startsWith('GW_ERR_')) bad.push(`${res.status} without an error code: ${path.slice(0, 200)} -> ${body.slice(0, 200)}`);
      }
      if (i % 6 === 0) {
        seq++;
        await client.publishAsync('sensors/heart-rate/steady', JSON.stringify({ seq, ts: t0 + seq * 200, bpm: 70 }), { qos: 1 });
      }
    }
    await client.endAsync();
    expect(bad).toEqual([]);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(0);
    const stored = await eventually(
      async () => ((await (await fetch(`http://127.0.0.1:${gw.ports.http}/v1/readings?kind=heart-rate&device=steady&from=${t0 - 1000}&limit=10000`)).json()) as { count: number }).count,
      (n) => n === seq,
    );
    expect(stored).toBe(seq);
  });
});
