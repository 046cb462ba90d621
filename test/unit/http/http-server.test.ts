import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GatewayConfig } from '../../../gateway/config/config.js';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { createHttpServer, type HttpServer } from '../../../gateway/http/http-server.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createEmbeddedSink, type EmbeddedSink } from '../../../gateway/sinks/embedded-sink.js';
import type { Sink } from '../../../gateway/sinks/types.js';
import { waitFor } from '../../helpers/wait.js';

// The HTTP API through fastify's inject(): no socket, the real routes, error handler and query
// limiter, over a real embedded (SQLite) store.

const NOW = Date.now();
let dir: string;
let config: GatewayConfig;
let sink: EmbeddedSink;
let servers: HttpServer[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pulsegate-http-unit-'));
  config = loadConfig({ env: {}, overrides: { dataDir: dir, http: { maxQueryRows: 50, maxConcurrentQueries: 1, maxQueuedQueries: 0 } } });
  sink = createEmbeddedSink({ config: config.sinks, kinds: createKindRegistry() });
  await sink.start();
  await sink.write({
    readings: [1, 2, 3].map((seq) => ({ kind: 'heart-rate', deviceId: 'a1', seq, ts: NOW - 60_000 + seq, values: { bpm: 70 + seq } })),
    windows: [],
    health: [],
  });
  servers = [];
});
afterEach(async () => {
  for (const s of servers) await s.close();
  await sink.close();
  await rm(dir, { recursive: true, force: true });
});

function server(options: { notReadyReason?: () => string | null; sink?: Sink } = {}): HttpServer {
  const s = createHttpServer({
    config: config.http,
    registry: new Registry(),
    kinds: createKindRegistry(),
    sink: options.sink ?? sink,
    logger: pino({ level: 'silent' }),
    notReadyReason: options.notReadyReason ?? (() => null),
  });
  servers.push(s);
  return s;
}

async function get(s: HttpServer, url: string): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  const res = await s.app.inject({ method: 'GET', url });
  return { status: res.statusCode, body: res.json<Record<string, unknown>>(), headers: res.headers };
}

describe('http server (inject)', () => {
  it('/healthz answers 200 ok; /readyz answers 200 when ready and 503 naming the reason when not', async () => {
    let reason: string | null = 'log backpressure';
    const s = server({ notReadyReason: () => reason });
    expect(await get(s, '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await get(s, '/readyz')).toMatchObject({ status: 503, body: { status: 'not ready', reason: 'log backpressure' } });
    reason = null;
    expect(await get(s, '/readyz')).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('/v1/readings serves what the store holds, filtered by device and bounded by limit', async () => {
    const s = server();
    const all = await get(s, '/v1/readings?kind=heart-rate&device=a1&from=now-1h');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ kind: 'heart-rate', count: 3 });
    expect((all.body['readings'] as { seq: number }[]).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect((await get(s, '/v1/readings?kind=heart-rate&device=a1&limit=2')).body).toMatchObject({ count: 2 });
    expect((await get(s, '/v1/readings?kind=heart-rate&device=nobody')).body).toMatchObject({ count: 0 });
  });

  it.each([
    ['an unknown kind', '/v1/readings?kind=nope', /`kind` must be one of/],
    ['a missing kind', '/v1/readings', /`kind` must be one of/],
    ['a parameter given twice', '/v1/readings?kind=heart-rate&device=a&device=b', /`device` given more than once/],
    ['an unknown parameter (a typo)', '/v1/readings?kind=heart-rate&devcie=a1', /unknown parameter `devcie`/],
    ['a time that is not ISO 8601', '/v1/readings?kind=heart-rate&from=yesterday', /`from`: cannot parse time/],
    ['a negative time', '/v1/readings?kind=heart-rate&from=-1', /`from`: cannot parse time/],
    ['from not before to', '/v1/readings?kind=heart-rate&from=2000&to=1000', /`from` must be before `to`/],
    ['a limit of 0', '/v1/readings?kind=heart-rate&limit=0', /`limit` must be a decimal integer in \[1, 50\]/],
    ['a limit over http.maxQueryRows', '/v1/readings?kind=heart-rate&limit=51', /in \[1, 50\]/],
    ['a hex limit', '/v1/readings?kind=heart-rate&limit=0x10', /`limit` must be a decimal integer/],
    ['a window size that is no duration', '/v1/windows?kind=heart-rate&size=10parsecs', /`size`: cannot parse/],
    ['size on /v1/readings', '/v1/readings?kind=heart-rate&size=10s', /unknown parameter `size`/],
  ])('%s answers 400 GW_ERR_QUERY_INVALID with the reason', async (_what, url, message) => {
    const res = await get(server(), url);
    expect(res.status).toBe(400);
    expect(res.body['error']).toBe('GW_ERR_QUERY_INVALID');
    expect(res.body['message']).toMatch(message);
  });

  it('a query past maxConcurrentQueries + maxQueuedQueries answers 503 GW_ERR_BUSY with Retry-After; the running one succeeds', async () => {
    // The real store, with its first query held until released: a query that occupies the slot.
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let queries = 0;
    const slow: Sink = Object.assign(Object.create(sink) as Sink, {
      async queryReadings(q: Parameters<Sink['queryReadings']>[0]) {
        queries++;
        if (queries === 1) await held;
        return sink.queryReadings(q);
      },
    });
    const s = server({ sink: slow });
    const first = s.app.inject({ method: 'GET', url: '/v1/readings?kind=heart-rate' });
    await waitFor(() => queries === 1, { timeoutMs: 5000, what: 'the first query to take the slot' });
    const busy = await get(s, '/v1/readings?kind=heart-rate');
    expect(busy.status).toBe(503);
    expect(busy.body['error']).toBe('GW_ERR_BUSY');
    expect(busy.headers['retry-after']).toBe('1');
    release();
    const res = await first;
    expect(res.statusCode).toBe(200);
    expect(res.json<{ count: number }>().count).toBe(3);
  });

  it('a store query that fails (table gone under the store) answers 500 GW_ERR_SINK_QUERY, and health stays up', async () => {
    const s = server();
    expect((await get(s, '/v1/readings?kind=heart-rate')).status).toBe(200);
    const other = new Database(config.sinks.embeddedPath);
    other.exec('DROP TABLE readings');
    other.close();
    const res = await get(s, '/v1/readings?kind=heart-rate');
    expect(res.status).toBe(500);
    expect(res.body['error']).toBe('GW_ERR_SINK_QUERY');
    expect(res.body['message']).toMatch(/embedded store query failed/);
    expect((await get(s, '/healthz')).status).toBe(200);
  });

  it('an unknown route answers 404 with a JSON body, not a throw', async () => {
    const res = await get(server(), '/v1/nothing');
    expect(res.status).toBe(404);
  });
});
