import { loadConfig } from '../../../gateway/config/load-config.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { HttpConfig } from '../../../gateway/config/config.js';
import { createHttpServer, type HttpServer } from '../../../gateway/http/http-server.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createThreadedSink } from '../../../gateway/sinks/sink-thread.js';
import type { AlertQuery, ReadingQuery, Sink, WindowQuery } from '../../../gateway/sinks/types.js';
import { eventually, sample, scrape } from '../../helpers/metrics.js';
import { baseSinksConfig, BASE_TS, heartRateReading, heartRateWindow } from '../sinks/sink-contract.js';

const silent = pino({ level: 'silent' });
let dir = '';
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pulsegate-http-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * The real store (embedded SQLite on its sink thread), with a gate in front of its queries and a
 * count of how many run at once. Queries wait at the gate while `held` is true; the store answers
 * every one of them.
 */
interface GatedSink extends Sink {
  held: boolean;
  running: number;
  maxRunning: number;
  readonly order: string[];
}

function gated(inner: Sink): GatedSink {
  const waiters: Array<() => void> = [];
  let held = false;
  async function pass<T>(label: string, query: () => Promise<T>): Promise<T> {
    sink.running++;
    sink.maxRunning = Math.max(sink.maxRunning, sink.running);
    try {
      if (held) await new Promise<void>((resolve) => waiters.push(resolve));
      sink.order.push(label);
      return await query();
    } finally {
      sink.running--;
    }
  }
  const sink: GatedSink = {
    name: inner.name,
    running: 0,
    maxRunning: 0,
    order: [],
    get held() {
      return held;
    },
    set held(value: boolean) {
      held = value;
      if (!value) for (const release of waiters.splice(0)) release();
    },
    start: () => inner.start(),
    write: (batch) => inner.write(batch),
    queryReadings: (q: ReadingQuery) => pass(q.deviceId ?? '*', () => inner.queryReadings(q)),
    queryWindows: (q: WindowQuery) => pass(q.deviceId ?? '*', () => inner.queryWindows(q)),
    queryAlerts: (q: AlertQuery) => pass(q.device ?? '*', () => inner.queryAlerts(q)),
    close: () => inner.close(),
  };
  return sink;
}

interface Harness {
  readonly base: string;
  readonly port: number;
  readonly sink: GatedSink;
}

const open: Array<{ http: HttpServer; sink: Sink }> = [];
afterEach(async () => {
  for (const { http, sink } of open.splice(0)) {
    await http.close();
    await sink.close();
  }
});

async function start(http: Partial<HttpConfig> = {}): Promise<Harness> {
  const kinds = createKindRegistry();
  const inner = createThreadedSink({ config: baseSinksConfig({ embeddedPath: join(dir, `store-${++n}.sqlite`) }), kinds, logger: silent });
  await inner.start();
  await inner.write({
    readings: Array.from({ length: 20 }, (_, i) => heartRateReading(`athlete-${i % 2}`, i, BASE_TS + i * 100, 60 + i)),
    windows: [heartRateWindow('athlete-0', BASE_TS, 10_000, [60, 62])],
    health: [],
  });
  const sink = gated(inner);
  const server = createHttpServer({
    config: { ...loadConfig({ env: {} }).http, host: '127.0.0.1', port: 0, ...http },
    registry: new Registry(),
    kinds,
    sink,
    logger: silent,
    notReadyReason: () => null,
  });
  open.push({ http: server, sink });
  const port = await server.start();
  return { base: `http://127.0.0.1:${port}`, port, sink };
}

const range = `from=${BASE_TS}&to=${BASE_TS + 3_600_000}`;

async function get(url: string, signal?: AbortSignal): Promise<{ status: number; retryAfter: string | null; body: Record<string, unknown> }> {
  const res = await fetch(url, signal ? { signal } : {});
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> };
}

async function metric(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample(await scrape(port), name, labels);
}

describe('HTTP query concurrency', () => {
  it('unbounded concurrent queries starved ingest: past maxConcurrentQueries + maxQueuedQueries they answer 503 with Retry-After, never more than the limit run at once, the rest succeed', async () => {
    const h = await start({ maxConcurrentQueries: 3, maxQueuedQueries: 5 });
    h.sink.held = true;
    const total = 40;
    const answers = Array.from({ length: total }, (_, i) => get(`${h.base}/v1/readings?kind=heart-rate&${range}&limit=${1000 + i}`));
    // Everything past 3 running + 5 waiting is refused at once, while the first ones still wait.
    await eventually(() => metric(h.port, 'pulsegate_http_queries_rejected_total', { reason: 'queue_full' }), (v) => v === total - 8);
    expect(await metric(h.port, 'pulsegate_http_queries_in_flight')).toBe(3);
    expect(await metric(h.port, 'pulsegate_http_queries_queued')).toBe(5);
    h.sink.held = false;
    const done = await Promise.all(answers);

    const ok = done.filter((a) => a.status === 200);
    const busy = done.filter((a) => a.status === 503);
    expect(ok).toHaveLength(8);
    expect(busy).toHaveLength(total - 8);
    for (const a of ok) expect(a.body['count']).toBe(20);
    for (const a of busy) {
      expect(a.retryAfter).toBe('1');
      expect(a.body['error']).toBe('GW_ERR_BUSY');
    }
    expect(h.sink.maxRunning).toBe(3);
    expect(await metric(h.port, 'pulsegate_http_queries_in_flight')).toBe(0);
    expect(await metric(h.port, 'pulsegate_http_queries_queued')).toBe(0);
  });

  it('should run waiting queries in arrival order, windows and readings sharing one queue', async () => {
    const h = await start({ maxConcurrentQueries: 1, maxQueuedQueries: 10 });
    h.sink.held = true;
    const first = get(`${h.base}/v1/readings?kind=heart-rate&${range}&device=first`);
    await eventually(() => metric(h.port, 'pulsegate_http_queries_in_flight'), (v) => v === 1);
    const rest: Array<Promise<unknown>> = [];
    for (const [i, route] of (['readings', 'windows', 'readings', 'windows'] as const).entries()) {
      rest.push(get(`${h.base}/v1/${route}?kind=heart-rate&${range}&device=q${i}`));
      // Each one is in the queue before the next is sent, so arrival order is known.
      await eventually(() => metric(h.port, 'pulsegate_http_queries_queued'), (v) => v === i + 1);
    }
    h.sink.held = false;
    await Promise.all([first, ...rest]);
    expect(h.sink.order).toEqual(['first', 'q0', 'q1', 'q2', 'q3']);
    expect(h.sink.maxRunning).toBe(1);
  });

  it('should refuse a query that waited longer than queryQueueTimeoutMs with 503 and Retry-After, and still answer the one running', async () => {
    const h = await start({ maxConcurrentQueries: 1, maxQueuedQueries: 10, queryQueueTimeoutMs: 300 });
    h.sink.held = true;
    const running = get(`${h.base}/v1/readings?kind=heart-rate&${range}`);
    await eventually(() => metric(h.port, 'pulsegate_http_queries_in_flight'), (v) => v === 1);
    const waited = await get(`${h.base}/v1/windows?kind=heart-rate&${range}`);
    expect(waited.status).toBe(503);
    expect(waited.retryAfter).toBe('1');
    expect(waited.body['error']).toBe('GW_ERR_BUSY');
    expect(await metric(h.port, 'pulsegate_http_queries_rejected_total', { reason: 'queue_timeout' })).toBe(1);
    h.sink.held = false;
    expect((await running).status).toBe(200);
    // The refused query never reached the store.
    expect(h.sink.order).toEqual(['*']);
  });

  it('should take a client that hangs up while waiting out of the queue', async () => {
    const h = await start({ maxConcurrentQueries: 1, maxQueuedQueries: 10, queryQueueTimeoutMs: 60_000 });
    h.sink.held = true;
    const running = get(`${h.base}/v1/readings?kind=heart-rate&${range}&device=kept`);
    await eventually(() => metric(h.port, 'pulsegate_http_queries_in_flight'), (v) => v === 1);
    const abort = new AbortController();
    const gone = get(`${h.base}/v1/readings?kind=heart-rate&${range}&device=gone`, abort.signal).catch((err: unknown) => err);
    await eventually(() => metric(h.port, 'pulsegate_http_queries_queued'), (v) => v === 1);
    abort.abort();
    await gone;
    // Well before queryQueueTimeoutMs (60 s here): the hang-up itself freed the place.
    await eventually(() => metric(h.port, 'pulsegate_http_queries_queued'), (v) => v === 0, 10_000);
    expect(await metric(h.port, 'pulsegate_http_queries_rejected_total', { reason: 'queue_timeout' })).toBe(0);
    h.sink.held = false;
    expect((await running).status).toBe(200);
    expect(h.sink.order).toEqual(['kept']);
  });
});

describe('HTTP query parameters', () => {
  it('a parameter given twice (from=a&from=b, device=a&device=b) answered 500: it answers 400 GW_ERR_QUERY_INVALID naming the parameter', async () => {
    const h = await start();
    for (const [query, name] of [
      [`kind=heart-rate&from=${BASE_TS}&from=${BASE_TS + 1}`, 'from'],
      [`kind=heart-rate&${range}&device=a&device=b`, 'device'],
      [`kind=heart-rate&kind=bridge&${range}`, 'kind'],
      [`kind=heart-rate&${range}&limit=1&limit=2`, 'limit'],
    ] as const) {
      for (const route of ['readings', 'windows']) {
        const a = await get(`${h.base}/v1/${route}?${query}`);
        expect(a.status, `${route}?${query}`).toBe(400);
        expect(a.body['error']).toBe('GW_ERR_QUERY_INVALID');
        expect(a.body['message']).toContain(`\`${name}\` given more than once`);
      }
    }
    const size = await get(`${h.base}/v1/windows?kind=heart-rate&${range}&size=10s&size=1m`);
    expect(size.status).toBe(400);
    expect(size.body['message']).toContain('`size` given more than once');
  });

  it('from=-1 was read as 2001-01-01: a negative or non-ISO time answers 400', async () => {
    const h = await start();
    for (const from of ['-1', '-1000', '1', 'Jan 1 2001', '1e3', '0x10']) {
      const a = await get(`${h.base}/v1/readings?kind=heart-rate&from=${encodeURIComponent(from)}&to=${BASE_TS}`);
      // '1' is 1 ms after the epoch (a valid time); everything else is refused.
      if (from === '1') {
        expect(a.status, from).toBe(200);
        continue;
      }
      expect(a.status, from).toBe(400);
      expect(a.body['error']).toBe('GW_ERR_QUERY_INVALID');
      expect(a.body['message'], from).toContain('`from`');
    }
    const iso = await get(`${h.base}/v1/readings?kind=heart-rate&from=${new Date(BASE_TS).toISOString()}&to=now`);
    expect(iso.status).toBe(200);
    expect(iso.body['count']).toBe(20);
    const relative = await get(`${h.base}/v1/readings?kind=heart-rate&from=now-2h`);
    expect(relative.status).toBe(200);
    expect(relative.body['count']).toBe(20);
  });

  it('limit=0x10 was accepted: limit takes decimal digits only', async () => {
    const h = await start();
    for (const limit of ['0x10', '1e3', ' 10', '10 ', '+10', '10.0', '-1', '0', '10001', '']) {
      const a = await get(`${h.base}/v1/readings?kind=heart-rate&${range}&limit=${encodeURIComponent(limit)}`);
      expect(a.status, `limit=${JSON.stringify(limit)}`).toBe(400);
      expect(a.body['message']).toContain('`limit`');
    }
    for (const size of ['0x10', '1e3', ' 10', '-10s']) {
      const a = await get(`${h.base}/v1/windows?kind=heart-rate&${range}&size=${encodeURIComponent(size)}`);
      expect(a.status, `size=${JSON.stringify(size)}`).toBe(400);
      expect(a.body['message']).toContain('`size`');
    }
    const ok = await get(`${h.base}/v1/readings?kind=heart-rate&${range}&limit=16`);
    expect(ok.status).toBe(200);
    expect(ok.body['count']).toBe(16);
  });

  it('should refuse a parameter the route does not know, naming it', async () => {
    const h = await start();
    const typo = await get(`${h.base}/v1/readings?kind=heart-rate&${range}&devcie=athlete-0`);
    expect(typo.status).toBe(400);
    expect(typo.body['message']).toContain('unknown parameter `devcie`');
    // `size` belongs to windows only.
    const size = await get(`${h.base}/v1/readings?kind=heart-rate&${range}&size=10s`);
    expect(size.status).toBe(400);
    expect(size.body['message']).toContain('unknown parameter `size`');
    const windows = await get(`${h.base}/v1/windows?kind=heart-rate&${range}&size=10s&device=athlete-0`);
    expect(windows.status).toBe(200);
    expect(windows.body['count']).toBe(1);
  });

  it('to=9999999999999 (and further) is served as "no upper bound" by the embedded store', async () => {
    const h = await start();
    for (const to of ['9999999999999', '99999999999999999999999999', '8640000000000000']) {
      const a = await get(`${h.base}/v1/readings?kind=heart-rate&from=0&to=${to}`);
      expect(a.status, to).toBe(200);
      expect(a.body['count']).toBe(20);
      expect(a.body['to']).toBe(Math.min(Number(to), 8_640_000_000_000_000));
    }
  });
});
