import { existsSync, readFileSync, readdirSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { sample, scrape } from '../../helpers/metrics.js';
import { mulberry32 } from '../../helpers/random.js';
import { sqlWriteFiles, sqlWrites } from '../../helpers/sql-writes.js';
import { waitFor, waitForValue } from '../../helpers/wait.js';

/**
 * POST /v1/query on the embedded store of a real gateway: read-only SQL over the documented
 * views, refused writes, a row limit, and a time limit that kills a runaway query's process.
 */
const TIMEOUT_MS = 1500;
let gw: TestGateway;
const base = () => `http://127.0.0.1:${gw.ports.http}`;

interface Answer {
  status: number;
  body: { columns?: string[]; rows?: unknown[][]; count?: number; truncated?: boolean; error?: string; message?: string; position?: { offset: number; line: number; column: number } };
}
async function query(sql: string, extra: Record<string, unknown> = {}): Promise<Answer> {
  const res = await fetch(`${base()}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql, ...extra }) });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

const DEVICES = ['hr-a', 'hr-b', 'hr-c'];
const PER_DEVICE = 25;
const published: Array<{ device: string; seq: number; ts: number; bpm: number }> = [];

beforeAll(async () => {
  gw = await startTestGateway({ http: { sqlTimeoutMs: TIMEOUT_MS }, sinks: { flushIntervalMs: 50 } });
  const random = mulberry32(15);
  const t0 = Date.now() - 120_000;
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
  try {
    for (const device of DEVICES) {
      for (let seq = 1; seq <= PER_DEVICE; seq++) {
        const r = { device, seq, ts: t0 + seq * 1000, bpm: 50 + Math.floor(random() * 120) };
        published.push(r);
        await client.publishAsync(`sensors/heart-rate/${device}`, JSON.stringify({ seq: r.seq, ts: r.ts, bpm: r.bpm }), { qos: 1 });
      }
    }
  } finally {
    await client.endAsync();
  }
  await waitForValue(
    () => query('SELECT count(*) AS n FROM readings'),
    (a) => a.status === 200 && a.body.rows?.[0]?.[0] === published.length,
    { what: 'every published reading in the readings view', timeoutMs: 20_000 },
  );
});
afterAll(async () => {
  await gw?.dispose();
});

describe('POST /v1/query: the views answer with the right rows', () => {
  it('readings: one device in seq order, values from its fields JSON', async () => {
    const a = await query("SELECT device_id, seq, ts, json_extract(fields, '$.bpm') AS bpm FROM readings WHERE device_id = 'hr-b' ORDER BY seq");
    expect(a.status).toBe(200);
    expect(a.body.columns).toEqual(['device_id', 'seq', 'ts', 'bpm']);
    expect(a.body.rows).toEqual(published.filter((r) => r.device === 'hr-b').map((r) => [r.device, r.seq, r.ts, r.bpm]));
  });

  it('readings: an aggregate per device', async () => {
    const a = await query("SELECT device_id, count(*), max(json_extract(fields, '$.bpm')) FROM readings GROUP BY device_id ORDER BY device_id");
    expect(a.status).toBe(200);
    expect(a.body.rows).toEqual(DEVICES.map((d) => [d, PER_DEVICE, Math.max(...published.filter((r) => r.device === d).map((r) => r.bpm))]));
  });

  it('readings: `time` is the ISO form of `ts`', async () => {
    const a = await query('SELECT ts, time FROM readings LIMIT 1');
    const [ts, time] = a.body.rows![0] as [number, string];
    expect(new Date(time).getTime()).toBe(ts);
  });

  it('windows: the documented columns, and the same windows as GET /v1/windows', async () => {
    const a = await query('SELECT * FROM windows WHERE 0');
    expect(a.body.columns).toEqual(['kind', 'device_id', 'size_ms', 'slide_ms', 'window_start', 'window_end', 'time', 'group_by', 'fields', 'revision']);
    const rest = (await (await fetch(`${base()}/v1/windows?kind=heart-rate&device=hr-a&from=0&size=10s`)).json()) as { windows: Array<{ start: number; values: Record<string, number> }> };
    expect(rest.windows.length).toBeGreaterThan(0);
    const sql = await query("SELECT window_start, fields FROM windows WHERE device_id = 'hr-a' AND size_ms = 10000 ORDER BY window_start");
    expect(sql.body.rows!.map(([start, fields]) => [start, JSON.parse(fields as string)])).toEqual(rest.windows.map((w) => [w.start, w.values]));
  });

  it('the row limit: at most `limit` rows, marked truncated', async () => {
    const a = await query('SELECT seq FROM readings', { limit: 7 });
    expect(a.status).toBe(200);
    expect(a.body.count).toBe(7);
    expect(a.body.rows).toHaveLength(7);
    expect(a.body.truncated).toBe(true);
    const all = await query('SELECT seq FROM readings');
    expect(all.body.truncated).toBe(false);
    expect(all.body.count).toBe(published.length);
    expect((await query('SELECT 1', { limit: 0 })).status).toBe(400);
  });
});

describe('POST /v1/query: writes are refused', () => {
  /** A write in some spelling: random case, spacing, a comment, or behind or before a SELECT. */
  function variant(random: () => number, write: string): string {
    let s = [...write].map((c) => (random() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
    // Quoted paths and values keep their spelling.
    s = s.replace(/'[^']*'/gi, (m) => write.slice(s.toLowerCase().indexOf(m.toLowerCase()), s.toLowerCase().indexOf(m.toLowerCase()) + m.length) || m);
    const r = random();
    if (r < 0.2) return `SELECT 1; ${s}`;
    if (r < 0.35) return `${s}; SELECT 1`;
    if (r < 0.45) return `/* c */ ${s} -- trailing`;
    if (r < 0.55) return `\n\t ${s.replace(/ /g, '  \n')} ;`;
    return s;
  }

  it('every write, in 300 seeded spellings, answers 400 and changes nothing', async () => {
    const WRITES = sqlWrites(gw.dataDir);
    const before = await query('SELECT (SELECT count(*) FROM main.readings), (SELECT count(*) FROM main.windows), (SELECT count(*) FROM main.sqlite_master)');
    const random = mulberry32(1500);
    const refused: string[] = [];
    for (let i = 0; i < 300; i++) {
      const sql = i < WRITES.length ? WRITES[i]! : variant(random, WRITES[Math.floor(random() * WRITES.length)]!);
      const a = await query(sql);
      if (a.status !== 400 || a.body.error !== 'GW_ERR_QUERY_INVALID') throw new Error(`not refused: ${JSON.stringify(sql)} -> ${a.status} ${JSON.stringify(a.body)}`);
      refused.push(sql);
    }
    expect(refused).toHaveLength(300);
    const after = await query('SELECT (SELECT count(*) FROM main.readings), (SELECT count(*) FROM main.windows), (SELECT count(*) FROM main.sqlite_master)');
    expect(after.body.rows).toEqual(before.body.rows);
    for (const file of sqlWriteFiles(gw.dataDir)) expect(existsSync(file), file).toBe(false);
    // The store still answers reads, and still takes writes from the gateway itself.
    expect((await query('SELECT count(*) FROM readings')).body.rows).toEqual([[published.length]]);
    const metrics = await scrape(gw.ports.http);
    expect(sample(metrics, 'pulsegate_http_sql_queries_total', { outcome: 'invalid' })).toBeGreaterThanOrEqual(300);
  });

  it('a syntax error answers 400 with its position', async () => {
    const a = await query('SELECT device_id\nFROM readings\nWHERE ts >> > 3');
    expect(a.status).toBe(400);
    expect(a.body.error).toBe('GW_ERR_QUERY_INVALID');
    expect(a.body.position).toMatchObject({ line: 3 });
    expect(a.body.message).toMatch(/line 3, column \d+/);
    const missing = await query('SELECT nope FROM readings');
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/no such column: nope/);
    expect((await query('')).status).toBe(400);
    const notJson = await fetch(`${base()}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"sql": 1}' });
    expect(notJson.status).toBe(400);
  });
});

/** Pids of this process's SQL query processes that are running (not sleeping, not zombies). */
function runningQueryProcesses(): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== process.pid || fields[0] !== 'R') continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('sql-process')) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('POST /v1/query: the time limit', () => {
  it('stops a WITH RECURSIVE runaway (its process is killed) while the gateway keeps answering', async () => {
    const runaway = query('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c');
    const startedAt = Date.now();
    const [pid] = await waitForValue(runningQueryProcesses, (p) => p.length === 1, { what: 'the runaway query running in its process' });
    const seenRunningAt = Date.now();
    // Meanwhile: health, a REST query and an MQTT publish are all answered.
    let answeredDuring = 0;
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    try {
      while (Date.now() - seenRunningAt < TIMEOUT_MS - 300) {
        const t = Date.now();
        expect((await fetch(`${base()}/healthz`)).status).toBe(200);
        expect((await fetch(`${base()}/v1/readings?kind=heart-rate&from=0&limit=5`)).status).toBe(200);
        await client.publishAsync('sensors/heart-rate/during', JSON.stringify({ seq: ++answeredDuring, ts: Date.now(), bpm: 70 }), { qos: 1 });
        expect(Date.now() - t).toBeLessThan(500);
      }
    } finally {
      await client.endAsync();
    }
    expect(answeredDuring).toBeGreaterThan(0);
    const a = await runaway;
    const took = Date.now() - startedAt;
    expect(a.status).toBe(422);
    expect(a.body.error).toBe('GW_ERR_QUERY_TIMEOUT');
    expect(took).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    // Stopped at the limit, not waited for (a process that has to load first starts its clock later).
    expect(Date.now() - seenRunningAt).toBeLessThan(TIMEOUT_MS + 2000);
    await waitFor(() => !alive(pid!), { what: `the runaway's process ${pid} to be gone` });
    // The next query gets a fresh process.
    expect((await query('SELECT count(*) FROM readings')).status).toBe(200);
    expect(sample(await scrape(gw.ports.http), 'pulsegate_http_sql_queries_total', { outcome: 'timeout' })).toBe(1);
  });

  it('stops a runaway whose client hangs up, before its time limit', async () => {
    const hangUp = new AbortController();
    const runaway = fetch(`${base()}/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c' }),
      signal: hangUp.signal,
    }).catch((err: Error) => err);
    const startedAt = Date.now();
    const [pid] = await waitForValue(runningQueryProcesses, (p) => p.length === 1, { what: 'the runaway query running in its process' });
    hangUp.abort();
    expect(await runaway).toBeInstanceOf(Error);
    await waitFor(() => !alive(pid!), { what: `the runaway's process ${pid} to be gone` });
    expect(Date.now() - startedAt).toBeLessThan(TIMEOUT_MS);
    expect(sample(await scrape(gw.ports.http), 'pulsegate_http_sql_queries_total', { outcome: 'aborted' })).toBe(1);
  });
});
