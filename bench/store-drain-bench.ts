/**
 * How fast the store keeps up with acknowledged readings (prints figures; not a pass/fail test).
 * `npm run bench` reports the rate at which the gateway acknowledges readings: durable in its
 * log. The store behind it (embedded SQLite by default) may take them more slowly; the log holds
 * the difference on disk (the outbox) and delivers it when the store catches up. This measures
 * both rates for one burst of load, and checks that the store ends up with every durable reading.
 *
 *   npx tsx bench/store-drain-bench.ts [--qos 0|1] [--batch 100] [--duration 3] [--max-wait 120]
 *
 * Starts a gateway in this process (embedded store, a temporary data directory), drives it with
 * bench/publisher.ts in another process for --duration s, then waits (at most --max-wait s) until
 * no store batch is pending in the log (`pulsegate_log_outbox_pending_records` 0), and counts the
 * rows of the store's readings table. Store rate = rows stored / (load time + time to catch up).
 * While it waits it also times a GET /v1/readings every 0.5 s: the store's thread answers it
 * between two writes, so this is how long a query waits while the store works through a backlog.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../gateway/config/load-config.js';
import { startGateway } from '../gateway/main.js';
import { Args } from './lib/args.js';

const args = new Args(process.argv.slice(2));
const qos = args.num('qos', 1) === 0 ? 0 : 1;
const batch = Math.max(1, Math.floor(args.num('batch', 100)));
const duration = args.num('duration', 3);
const maxWaitMs = args.num('max-wait', 120) * 1000;

const dir = mkdtempSync(join(tmpdir(), 'pulsegate-store-drain-'));
try {
  const config = loadConfig({ env: {}, overrides: { dataDir: dir, logLevel: 'warn', mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true }, http: { port: 0, host: '127.0.0.1' } } });
  const gw = await startGateway(config, { logger: pino({ level: 'warn' }) });
  const base = `http://127.0.0.1:${gw.ports.http}`;
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    // Summed over its labels (the store's destination).
    const lines = text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    if (lines.length === 0) throw new Error(`no ${name} in /metrics`);
    return lines.reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  };
  let durable = 0;
  gw.events.on('reading.durable', (e) => void (durable += e.readings.length));

  const t0 = performance.now();
  const publisher = spawn(process.execPath, ['--import', 'tsx', 'bench/publisher.ts', '--port', String(gw.ports.mqtt), '--qos', String(qos), '--batch', String(batch), '--duration', String(duration), '--warmup', '0', '--tail', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  publisher.stdout.resume();
  const code = await new Promise<number | null>((resolve) => publisher.on('exit', resolve));
  const loadEnd = performance.now();
  const loadS = (loadEnd - t0) / 1000;
  const durableAtEnd = durable;
  const pendingAtEnd = await metric('pulsegate_log_outbox_pending_records');
  let pending = pendingAtEnd;
  // While the store catches up: how long a query the store answers waits (its thread is busy writing).
  const queryMs: number[] = [];
  for (let i = 0; pending > 0 && performance.now() - loadEnd < maxWaitMs; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (i % 5 === 4) {
      const q0 = performance.now();
      const res = await fetch(`${base}/v1/readings?kind=heart-rate&from=0&limit=1`);
      await res.arrayBuffer();
      if (res.ok) queryMs.push(performance.now() - q0);
    }
    pending = await metric('pulsegate_log_outbox_pending_records');
  }
  const caughtUpS = (performance.now() - loadEnd) / 1000;
  const answer = (await (await fetch(`${base}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT count(*) AS n FROM readings' }) })).json()) as { rows?: [[number]] };
  const stored = answer.rows?.[0]?.[0] ?? NaN;
  await gw.close();
  if (code !== 0) throw new Error(`the publisher exited with ${String(code)}`);
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  process.stdout.write(`QoS ${qos}, ${batch} reading(s) a publish, ${duration} s of load (embedded store)\n`);
  process.stdout.write(`  acknowledged (durable):  ${fmt(durableAtEnd)} readings in ${loadS.toFixed(1)} s = ${fmt(durableAtEnd / loadS)} readings/s\n`);
  process.stdout.write(`  store batches pending at the end of the load: ${fmt(pendingAtEnd)}\n`);
  process.stdout.write(
    pending > 0
      ? `  the store had not caught up ${(maxWaitMs / 1000).toFixed(0)} s after the load (${fmt(pending)} batches pending)\n`
      : `  the store caught up ${caughtUpS.toFixed(1)} s after the load: ${fmt(stored)} readings stored in ${(loadS + caughtUpS).toFixed(1)} s = ${fmt(stored / (loadS + caughtUpS))} readings/s\n`,
  );
  process.stdout.write(`  stored ${stored === durable ? '=' : '!='} durable (${fmt(stored)} / ${fmt(durable)})\n`);
  if (queryMs.length > 0) {
    const sorted = [...queryMs].sort((a, b) => a - b);
    const at = (q: number): string => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(0);
    process.stdout.write(`  GET /v1/readings (limit 1) while catching up: p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms (${sorted.length} queries)\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
