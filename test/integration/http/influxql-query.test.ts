import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkReadOnlyInfluxQl } from '../../../gateway/sinks/sql/influxql-runner.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { startInfluxd, type InfluxdHandle } from '../../helpers/influxd.js';
import { mulberry32 } from '../../helpers/random.js';
import { waitForValue } from '../../helpers/wait.js';

/** POST /v1/query on a gateway whose store is a real influxd: InfluxQL SELECT/SHOW passed through, read-only. */
let influxd: InfluxdHandle;
let gw: TestGateway;
const DATABASE = 'pulsegate_influxql';
const published: Array<{ device: string; seq: number; ts: number; bpm: number }> = [];

interface Answer {
  status: number;
  body: { language?: string; columns?: string[]; rows?: unknown[][]; count?: number; truncated?: boolean; error?: string; message?: string; position?: { line: number; column: number } };
}
async function query(sql: string, extra: Record<string, unknown> = {}): Promise<Answer> {
  const res = await fetch(`http://127.0.0.1:${gw.ports.http}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql, ...extra }) });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}
/** InfluxDB asked directly, not through the gateway: what the database really holds. */
async function direct(q: string): Promise<unknown> {
  const res = await fetch(`${influxd.url}/query?${new URLSearchParams({ db: DATABASE, q, epoch: 'ms' })}`);
  return res.json();
}

beforeAll(async () => {
  influxd = await startInfluxd();
  gw = await startTestGateway({ sinks: { influxUrl: `${influxd.url}/${DATABASE}`, flushIntervalMs: 100 } });
  const random = mulberry32(7);
  const t0 = Date.now() - 60_000;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
  try {
    for (const device of ['ix-1', 'ix-2']) {
      for (let seq = 1; seq <= 10; seq++) {
        const r = { device, seq, ts: t0 + seq * 1000, bpm: 60 + Math.floor(random() * 100) };
        published.push(r);
        await client.publishAsync(`sensors/heart-rate/${device}`, JSON.stringify({ seq, ts: r.ts, bpm: r.bpm }), { qos: 1 });
      }
    }
  } finally {
    await client.endAsync();
  }
  await waitForValue(() => query('SELECT count(bpm) FROM "raw"."heart_rate"'), (a) => a.body.rows?.[0]?.[1] === published.length, { what: 'every reading in InfluxDB', timeoutMs: 20_000 });
}, 60_000);
afterAll(async () => {
  await gw?.dispose();
  await influxd?.stop();
});

describe('POST /v1/query on InfluxDB (InfluxQL)', () => {
  it('SELECT answers the right rows, a series per tag set flattened into one table', async () => {
    const a = await query('SELECT bpm FROM "raw"."heart_rate" GROUP BY "device"');
    expect(a.status).toBe(200);
    expect(a.body.language).toBe('influxql');
    expect(a.body.columns).toEqual(['device', 'time', 'bpm']);
    const expected = [...published].sort((x, y) => x.device.localeCompare(y.device) || x.ts - y.ts).map((r) => [r.device, r.ts, r.bpm]);
    expect(a.body.rows).toEqual(expected);
    const limited = await query('SELECT bpm FROM "raw"."heart_rate"', { limit: 3 });
    expect(limited.body.rows).toHaveLength(3);
    expect(limited.body.truncated).toBe(true);
  });

  it('SHOW passes through', async () => {
    const a = await query('SHOW MEASUREMENTS');
    expect(a.status).toBe(200);
    expect(a.body.rows!.map((r) => r[0])).toContain('heart_rate');
  });

  it('writes are refused and the database keeps its data', async () => {
    for (const q of [
      'SELECT * INTO "copy" FROM "raw"."heart_rate"',
      'select bpm into copy from raw.heart_rate',
      'DROP MEASUREMENT "heart_rate"',
      `DROP DATABASE "${DATABASE}"`,
      'DELETE FROM "heart_rate"',
      'CREATE DATABASE other',
      'SHOW MEASUREMENTS; DROP MEASUREMENT heart_rate',
      'KILL QUERY 1',
      'ALTER RETENTION POLICY "raw" ON "x" DURATION 1h',
      'GRANT ALL TO someone',
    ]) {
      const a = await query(q);
      expect(a.status, q).toBe(400);
      expect(a.body.error, q).toBe('GW_ERR_QUERY_INVALID');
    }
    const still = (await direct('SELECT count(bpm) FROM "raw"."heart_rate"')) as { results: Array<{ series: Array<{ values: unknown[][] }> }> };
    expect(still.results[0]!.series[0]!.values[0]![1]).toBe(published.length);
    const measurements = JSON.stringify(await direct('SHOW MEASUREMENTS'));
    expect(measurements).not.toContain('copy');
  });

  it('a syntax error answers 400 with its position from InfluxDB', async () => {
    const a = await query('SELECT bpm FROM WHERE');
    expect(a.status).toBe(400);
    expect(a.body.error).toBe('GW_ERR_QUERY_INVALID');
    expect(a.body.position).toMatchObject({ line: 1 });
    expect(a.body.message).toMatch(/error parsing query/);
  });

  it('the check alone: quoted INTO or ; are no write, a bare one is', () => {
    expect(() => checkReadOnlyInfluxQl(`SELECT "into" FROM m WHERE t = 'a;b'`)).not.toThrow();
    expect(() => checkReadOnlyInfluxQl('SELECT x FROM m;')).not.toThrow();
    expect(() => checkReadOnlyInfluxQl('SELECT x INTO y FROM m')).toThrow(/INTO/);
    expect(() => checkReadOnlyInfluxQl('SELECT x FROM m; SELECT y FROM m')).toThrow(/one statement/);
  });
});
