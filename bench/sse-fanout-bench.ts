/**
 * SSE fan-out benchmark (prints figures; not a pass/fail test).
 *
 *   npx tsx bench/sse-fanout-bench.ts [--quick] [--json]
 *
 * Three processes per measurement: the server, N raw-socket SSE clients (EventSource-like: one
 * HTTP/1.1 GET each, the stream parsed into events) in a second process, and this harness. Two
 * servers side by side in the same run:
 * - `raw`: a minimal node:http SSE broadcaster (one Set of responses, each event framed once and
 *   written to every one): the ceiling for Node;
 * - `pulsegate`: the delivery hub (gateway/delivery/) behind fastify, each event appended to a
 *   real message log on disk (group commit, fdatasync) and followed from it.
 * Figures per client count (1k and 10k; --quick: 500 and 2k): events/s delivered (events x
 * clients per second, a burst as fast as the server takes it), p50/p99 publish -> client latency
 * at half that load (publish = the event is handed to the broadcaster / appended to the log), and
 * server RSS per connected client. --json prints one JSON line `{ sseFanout: ... }` at the end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { loadConfig } from '../gateway/config/load-config.js';
import { createDeliveryHub } from '../gateway/delivery/delivery-hub.js';
import { deliveryRoutes } from '../gateway/delivery/delivery-routes.js';
import { createSubscriberAuth } from '../gateway/delivery/subscriber-auth.js';
import { createHttpServer } from '../gateway/http/http-server.js';
import { createMessageLog } from '../gateway/log/message-log.js';
import { tailLog } from '../gateway/log/tail-reader.js';
import { RECORD_TYPES } from '../gateway/log/types.js';
import { createRegistry } from '../gateway/metrics.js';
import { alertId, encodeAlertTransition, type AlertTransition } from '../gateway/wire/alert.js';

const quick = process.argv.includes('--quick');
const asJson = process.argv.includes('--json');
const role = process.argv[2];
const now = (): number => performance.timeOrigin + performance.now();

function alertAt(i: number, publishedAt: number): AlertTransition {
  return {
    v: 1,
    id: alertId('hr_high', `heart_rate/athlete-${i % 100}`, i),
    rule: 'hr_high',
    ruleKind: 'threshold',
    severity: 'critical',
    state: 'FIRING',
    kind: 'heart_rate',
    deviceId: `athlete-${i % 100}`,
    group: {},
    // The publish time travels in the event: the client subtracts it from its own clock (same machine).
    value: publishedAt,
    threshold: 180,
    windowStart: 1_700_000_000_000,
    windowEnd: 1_700_000_010_000,
    episodeStart: 1_700_000_000_000,
    firedAt: 1_700_000_010_000,
    resolvedAt: null,
    summary: `heart rate above 180 bpm on athlete-${i % 100}`,
  };
}

type Msg = { id?: number; cmd: string; [k: string]: unknown };
const reply = (m: Msg, body: Record<string, unknown>): void => void process.send?.({ ...body, id: m.id });

async function serve(kind: 'raw' | 'pulsegate'): Promise<void> {
  let publish: (i: number) => void;
  let clients: () => number;
  let port: number;
  let close: () => Promise<void> = async () => undefined;
  if (kind === 'raw') {
    const set = new Set<ServerResponse>();
    let offset = 0;
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write('retry: 3000\n\n');
      set.add(res);
      res.on('close', () => set.delete(res));
    });
    server.maxConnections = 100_000;
    await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
    port = (server.address() as AddressInfo).port;
    publish = (i) => {
      const o = offset++;
      const frame = Buffer.from(`id: ${o}\nevent: alert\ndata: ${JSON.stringify({ ...alertAt(i, now()), offset: o })}\n\n`);
      for (const res of set) res.write(frame);
    };
    clients = () => set.size;
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'pg-sse-bench-'));
    const config = loadConfig({ env: {}, overrides: { dataDir: dir, http: { port: 0, host: '127.0.0.1', allowAnonymous: true }, delivery: { maxClients: 100_000 } } });
    const log = await createMessageLog({ dir: join(dir, 'log') });
    await log.start();
    const registry = createRegistry();
    const logger = pino({ level: 'silent' });
    const hub = createDeliveryHub({
      config: config.delivery,
      log: { tail: (from, o) => tailLog(log, from, o), firstOffset: () => log.firstOffset, nextOffset: () => log.nextOffset, recordTypes: { alert: RECORD_TYPES.alert, window: RECORD_TYPES.window } },
      registry,
      logger,
    });
    hub.start();
    const http = createHttpServer({
      config: config.http,
      registry,
      logger,
      notReadyReason: () => null,
      plugins: [deliveryRoutes({ config: config.delivery, hub, auth: createSubscriberAuth(config.delivery.auth, true), registry, logger })],
    });
    port = await http.start();
    http.app.server.maxConnections = 100_000;
    publish = (i) => void log.append(RECORD_TYPES.alert, encodeAlertTransition(alertAt(i, now())));
    clients = () => hub.clients;
    close = async () => {
      await hub.close();
      await http.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  let n = 0;
  process.on('message', (raw: unknown) => {
    const m = raw as Msg;
    if (m.cmd === 'clients') reply(m, { clients: clients() });
    else if (m.cmd === 'rss') {
      // Twice, and after a pause: what startup left behind is collected before either reading.
      globalThis.gc?.();
      setTimeout(() => {
        globalThis.gc?.();
        const u = process.memoryUsage();
        reply(m, { rss: u.rss, heap: u.heapUsed + u.external + u.arrayBuffers });
      }, 300);
    } else if (m.cmd === 'burst') {
      // As fast as the server takes them: a batch per turn of the event loop, so sockets drain in between.
      const events = m['events'] as number;
      let left = events;
      const step = (): void => {
        for (let k = 0; k < 10 && left > 0; k++, left--) publish(n++);
        if (left > 0) setImmediate(step);
      };
      step();
      reply(m, { started: true });
    } else if (m.cmd === 'paced') {
      const rate = m['rate'] as number;
      const until = performance.now() + (m['ms'] as number);
      const start = performance.now();
      let sent = 0;
      const t = setInterval(() => {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        while (sent < due) {
          publish(n++);
          sent++;
        }
        if (performance.now() >= until) {
          clearInterval(t);
          reply(m, { sent });
        }
      }, 5);
    } else if (m.cmd === 'stop') {
      void close().then(() => process.exit(0));
    }
  });
  process.send?.({ port });
}

async function runClients(port: number): Promise<void> {
  const sockets: Socket[] = [];
  let received = 0;
  const latCap = 400_000;
  const lat = new Float64Array(latCap);
  let latN = 0;
  const request = `GET /v1/streams/alerts HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`;
  const VALUE = /"value":([0-9.]+)/g;
  function open(sampled: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1' }, () => {
        s.write(request);
        resolve();
      });
      s.setEncoding('latin1');
      let carry = '';
      s.on('data', (chunk: string) => {
        carry += chunk;
        let end = carry.lastIndexOf('\n\n');
        if (end < 0) return;
        const complete = carry.slice(0, end + 2);
        carry = carry.slice(end + 2);
        const t = now();
        let idx = 0;
        while ((idx = complete.indexOf('event: alert', idx)) >= 0) {
          received++;
          idx += 12;
        }
        if (sampled) {
          VALUE.lastIndex = 0;
          let m: RegExpExecArray | null;
          while ((m = VALUE.exec(complete)) !== null) if (latN < latCap) lat[latN++] = t - Number(m[1]);
        }
        end = 0;
      });
      s.on('error', reject);
      sockets.push(s);
    });
  }
  process.on('message', async (raw: unknown) => {
    const m = raw as Msg;
    if (m.cmd === 'connect') {
      const n = m['n'] as number;
      // In rounds, so the listen backlog is never the limit.
      for (let i = 0; i < n; i += 250) await Promise.all(Array.from({ length: Math.min(250, n - i) }, (_, k) => open((i + k) % 10 === 0)));
      reply(m, { connected: sockets.length });
    } else if (m.cmd === 'stats') {
      const sorted = Array.from(lat.subarray(0, latN)).sort((a, b) => a - b);
      const pct = (p: number): number | null => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!);
      reply(m, { received, samples: latN, p50: pct(0.5), p99: pct(0.99) });
      if (m['reset'] === true) {
        latN = 0;
      }
    } else if (m.cmd === 'stop') {
      for (const s of sockets) s.destroy();
      process.exit(0);
    }
  });
  process.send?.({ ready: true });
}

// ---- harness ----

function child(args: string[]): ChildProcess {
  return fork(new URL(import.meta.url).pathname, args, { execArgv: [...process.execArgv, '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}
const first = <T>(c: ChildProcess): Promise<T> => new Promise((resolve) => c.once('message', (m) => resolve(m as T)));
let nextId = 1;
function ask<T>(c: ChildProcess, msg: Msg, timeoutMs = 120_000): Promise<T> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${msg.cmd} within ${timeoutMs} ms`)), timeoutMs);
    const on = (m: unknown): void => {
      if ((m as { id?: number }).id !== id) return;
      clearTimeout(timer);
      c.off('message', on);
      resolve(m as T);
    };
    c.on('message', on);
    c.send({ ...msg, id });
  });
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Row {
  server: 'raw' | 'pulsegate';
  clients: number;
  eventsPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  halfLoadEventsPerSec: number | null;
  rssPerClientKb: number | null;
  /** JS heap + external + array buffers per client: steadier than RSS for small counts. */
  heapPerClientKb: number | null;
  error?: string;
}

async function measure(kind: 'raw' | 'pulsegate', n: number, burst: number, pacedMs: number): Promise<Row> {
  const server = child(['--server', kind]);
  let clients: ChildProcess | null = null;
  try {
    const { port } = await first<{ port: number }>(server);
    clients = child(['--clients', String(port)]);
    await first(clients);
    const mem0 = await ask<{ rss: number; heap: number }>(server, { cmd: 'rss' });
    await ask(clients, { cmd: 'connect', n });
    const deadline = performance.now() + 60_000;
    while ((await ask<{ clients: number }>(server, { cmd: 'clients' })).clients < n) {
      if (performance.now() > deadline) throw new Error('not every client got its stream');
      await sleep(50);
    }
    const mem1 = await ask<{ rss: number; heap: number }>(server, { cmd: 'rss' });
    // Throughput: a burst, timed until every client has every event.
    const t0 = performance.now();
    await ask(server, { cmd: 'burst', events: burst });
    let got = 0;
    while (got < burst * n) {
      got = (await ask<{ received: number }>(clients, { cmd: 'stats' })).received;
      if (performance.now() - t0 > 120_000) throw new Error(`burst not delivered: ${got} of ${burst * n}`);
      await sleep(10);
    }
    const eventsPerSec = (burst * n) / ((performance.now() - t0) / 1000);
    await ask(clients, { cmd: 'stats', reset: true });
    // Latency at half that load.
    const rate = Math.max(1, (0.5 * eventsPerSec) / n);
    const { sent } = await ask<{ sent: number }>(server, { cmd: 'paced', rate, ms: pacedMs }, pacedMs + 60_000);
    const want = got + sent * n;
    const t1 = performance.now();
    let s = await ask<{ received: number; p50: number | null; p99: number | null }>(clients, { cmd: 'stats' });
    // Every published event reaches every client before the percentiles are read.
    while (s.received < want && performance.now() - t1 < 30_000) {
      await sleep(20);
      s = await ask(clients, { cmd: 'stats' });
    }
    return { server: kind, clients: n, eventsPerSec, p50Ms: s.p50, p99Ms: s.p99, halfLoadEventsPerSec: rate * n, rssPerClientKb: (mem1.rss - mem0.rss) / n / 1024, heapPerClientKb: (mem1.heap - mem0.heap) / n / 1024 };
  } catch (err) {
    return { server: kind, clients: n, eventsPerSec: null, p50Ms: null, p99Ms: null, halfLoadEventsPerSec: null, rssPerClientKb: null, heapPerClientKb: null, error: (err as Error).message };
  } finally {
    const procs = clients === null ? [server] : [clients, server];
    for (const c of procs) if (c.connected) c.send({ cmd: 'stop' });
    await Promise.all(procs.map((c) => Promise.race([new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r()))), sleep(10_000)])));
    for (const c of procs) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGKILL');
  }
}

const f = (v: number | null, d = 0): string => (v === null ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

async function main(): Promise<void> {
  const counts = quick ? [500, 2000] : [1000, 10_000];
  const rows: Row[] = [];
  for (const n of counts) {
    const burst = Math.max(20, Math.round((quick ? 100_000 : 400_000) / n));
    for (const kind of ['raw', 'pulsegate'] as const) {
      const row = await measure(kind, n, burst, quick ? 1500 : 3000);
      rows.push(row);
      process.stderr.write(`  sse ${kind.padEnd(9)} ${String(n).padStart(6)} clients: ${row.error ?? `${f(row.eventsPerSec)} events/s, p99 ${f(row.p99Ms, 1)} ms`}\n`);
    }
  }
  const lines = ['', 'SSE fan-out: events/s delivered (events x clients), p50/p99 publish -> client at half that load, server RSS per client', ''];
  lines.push('clients  server     events/s   x raw   p50 ms   p99 ms   half load/s   RSS/client KB   heap/client KB');
  for (const r of rows) {
    const raw = rows.find((x) => x.server === 'raw' && x.clients === r.clients);
    const ratio = r.eventsPerSec !== null && raw?.eventsPerSec ? r.eventsPerSec / raw.eventsPerSec : null;
    lines.push(
      `${String(r.clients).padStart(7)}  ${r.server.padEnd(9)} ${f(r.eventsPerSec).padStart(10)}  ${f(ratio, 2).padStart(6)}  ${f(r.p50Ms, 1).padStart(7)}  ${f(r.p99Ms, 1).padStart(7)}  ${f(r.halfLoadEventsPerSec).padStart(12)}  ${f(r.rssPerClientKb, 1).padStart(14)}  ${f(r.heapPerClientKb, 1).padStart(15)}${r.error ? `  FAILED: ${r.error}` : ''}`,
    );
  }
  lines.push('', 'raw: a minimal node:http broadcaster (no log); pulsegate: each event appended to the message log (fdatasync) and followed from it by the hub.');
  process.stdout.write(lines.join('\n') + '\n');
  if (asJson) process.stdout.write(JSON.stringify({ sseFanout: { counts, rows } }) + '\n');
}

if (role === '--server') void serve(process.argv[3] as 'raw' | 'pulsegate');
else if (role === '--clients') void runClients(Number(process.argv[3]));
else {
  main().catch((err: unknown) => {
    process.stderr.write(`sse bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
