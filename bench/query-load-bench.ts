/**
 * Large HTTP queries against ingest: a real gateway child (embedded store) holds `rows` readings;
 * a probe device publishes QoS 1 every 10 ms and measures its PUBACK latency while `queries`
 * concurrent `GET /v1/readings?limit=<rows>` run. Once with the default query limit and once
 * with it effectively off. Prints figures; passes or fails nothing.
 *
 *   npx tsx bench/query-load-bench.ts [--queries 200] [--rows 10000]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { spawnCli, waitUntilReady } from '../test/helpers/child-gateway.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const QUERIES = arg('queries', 200);
const ROWS = arg('rows', 10_000);

function pct(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const ms = (v: number): string => `${v.toFixed(1)} ms`;

async function run(label: string, http: Record<string, number>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pg-qbench-'));
  const configFile = join(dataDir, 'config.json');
  writeFileSync(configFile, JSON.stringify({ dataDir, logLevel: 'warn', http: { maxQueryRows: ROWS, ...http } }));
  const gw = await waitUntilReady(
    spawnCli(['start', '--config', configFile], { PULSEGATE_MQTT_PORT: '0', PULSEGATE_HTTP_PORT: '0', PULSEGATE_ALLOW_ANONYMOUS: 'true', PULSEGATE_LOG_LEVEL: 'info' }),
    30_000,
  );
  try {
    const base = `http://127.0.0.1:${gw.ports.http}`;
    const seeder = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { clientId: 'seeder' });
    const t0 = Date.now() - 600_000;
    for (let seq = 1; seq <= ROWS; seq += 500) {
      const batch = Array.from({ length: Math.min(500, ROWS - seq + 1) }, (_, i) => ({ seq: seq + i, ts: t0 + (seq + i) * 10, bpm: 60 + ((seq + i) % 100) }));
      await seeder.publishAsync('sensors/heart-rate/seed-1', JSON.stringify(batch), { qos: 1 });
    }
    await seeder.endAsync();
    const url = `${base}/v1/readings?kind=heart-rate&device=seed-1&from=${t0}&to=now&limit=${ROWS}`;
    for (const deadline = Date.now() + 60_000; ; ) {
      const body = (await (await fetch(url)).json()) as { count: number };
      if (body.count === ROWS) break;
      if (Date.now() > deadline) throw new Error(`store holds ${body.count} of ${ROWS} readings`);
      await new Promise((r) => setTimeout(r, 200));
    }

    const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { clientId: 'probe' });
    const pubacks: number[] = [];
    let seq = 0;
    let probing = true;
    const probeLoop = (async () => {
      while (probing) {
        const started = performance.now();
        await probe.publishAsync('sensors/heart-rate/probe-1', JSON.stringify({ seq: ++seq, ts: Date.now(), bpm: 70 }), { qos: 1 });
        pubacks.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const httpMs: number[] = [];
    const statuses = new Map<number, number>();
    const burstStart = performance.now();
    await Promise.all(
      Array.from({ length: QUERIES }, async () => {
        const started = performance.now();
        const res = await fetch(url);
        await res.arrayBuffer();
        httpMs.push(performance.now() - started);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }),
    );
    const burstMs = performance.now() - burstStart;
    probing = false;
    await probeLoop;
    await probe.endAsync();
    console.log(
      `${label}: ${QUERIES} x ${ROWS}-row queries in ${ms(burstMs)}; HTTP p50 ${ms(pct(httpMs, 50))} p99 ${ms(pct(httpMs, 99))}; ` +
        `statuses ${JSON.stringify(Object.fromEntries(statuses))}; PUBACK (n=${pubacks.length}) p50 ${ms(pct(pubacks, 50))} p99 ${ms(pct(pubacks, 99))} max ${ms(Math.max(...pubacks))}`,
    );
  } finally {
    gw.child.kill('SIGKILL');
    await gw.exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await run('default limit (4 running, 64 queued)', {});
await run('no limit (1024 running)', { maxConcurrentQueries: 1024, maxQueuedQueries: 100_000, queryQueueTimeoutMs: 600_000 });
