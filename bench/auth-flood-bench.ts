/**
 * Login flood benchmark (prints figures; not a pass/fail test).
 *
 *   npx tsx bench/auth-flood-bench.ts [--quick]
 *
 * Three processes: the gateway (credentials file, real log on disk), a flooder that keeps 100
 * wrong-password CONNECTs for a real device in flight at once (a new round as soon as the last
 * one is answered), and this process, where one honest device publishes QoS 1 readings back to
 * back and times each PUBACK. Figures: honest PUBACK p50/p99 quiet vs during the flood, for the
 * default throttling and with throttling lifted (every flood CONNECT is hashed), and the CONNACK
 * time of an unknown username vs a wrong secret for a known one (throttling lifted).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { loadConfig } from '../gateway/config/load-config.js';
import { hashSecret } from '../gateway/ingest/credentials.js';
import { startGateway } from '../gateway/main.js';

const quick = process.argv.includes('--quick');
const role = process.argv[2];
const FLOOD = 100;

function connect(port: number, opts: IClientOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 30_000, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

const fmt = (n: number) => (Number.isNaN(n) ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(0));

function child(args: string[]): ChildProcess {
  return fork(new URL(import.meta.url).pathname, args, { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

const next = <T>(c: ChildProcess): Promise<T> => new Promise((resolve) => c.once('message', (m) => resolve(m as T)));

async function honestLatencies(client: MqttClient, ms: number, seq: { n: number }): Promise<number[]> {
  const out: number[] = [];
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const t = performance.now();
    seq.n++;
    await client.publishAsync('sensors/heart-rate/honest', JSON.stringify({ seq: seq.n, ts: Date.now(), bpm: 70 }), { qos: 1 });
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

async function connackMs(port: number, username: string): Promise<number> {
  const t = performance.now();
  await connect(port, { clientId: username, username, password: 'wrong-password' }).then(
    (c) => c.end(true),
    () => undefined,
  );
  return performance.now() - t;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-auth-bench-'));
  const credentialsFile = join(dir, 'devices.yaml');
  writeFileSync(
    credentialsFile,
    `devices:\n  - username: dev-a\n    secret: "${await hashSecret('secret-a')}"\n  - username: honest\n    secret: "${await hashSecret('secret-h')}"\n`,
  );
  const quietMs = quick ? 2000 : 4000;
  const floodMs = quick ? 3000 : 6000;
  console.log(`login flood bench: ${FLOOD} concurrent wrong-password CONNECTs per round, honest QoS 1 publishes back to back (quiet ${quietMs} ms, flood ${floodMs} ms)`);
  console.log('');
  console.log('throttling  phase   PUBACKs  p50 ms  p99 ms  max ms  flood CONNECT outcomes');
  console.log('----------  ------  -------  ------  ------  ------  ----------------------');
  let timing: { unknown: number[]; wrong: number[] } | null = null;
  for (const throttle of ['default', 'off'] as const) {
    const dataDir = join(dir, `data-${throttle}`);
    const gw = child(['--serve', dataDir, credentialsFile, throttle]);
    const { ports } = await next<{ ports: { mqtt: number; http: number } }>(gw);
    const honest = await connect(ports.mqtt, { clientId: 'honest', username: 'honest', password: 'secret-h' });
    const seq = { n: 0 };
    await honestLatencies(honest, 500, seq); // warm-up
    const quiet = await honestLatencies(honest, quietMs, seq);
    const flooder = child(['--flood', String(ports.mqtt)]);
    await next(flooder);
    const during = await honestLatencies(honest, floodMs, seq);
    const done = next<{ outcomes: Record<string, number> }>(flooder);
    flooder.send('stop');
    const { outcomes } = await done;
    const row = (phase: string, l: number[], extra = '') =>
      console.log(`${throttle.padEnd(10)}  ${phase.padEnd(6)}  ${String(l.length).padStart(7)}  ${fmt(pct(l, 0.5)).padStart(6)}  ${fmt(pct(l, 0.99)).padStart(6)}  ${fmt(l[l.length - 1] ?? NaN).padStart(6)}  ${extra}`);
    row('quiet', quiet);
    row('flood', during, Object.entries(outcomes).map(([k, v]) => `${k}: ${v}`).join(', '));
    if (throttle === 'off') {
      // Sequential, interleaved, after the flood has drained.
      const unknown: number[] = [];
      const wrong: number[] = [];
      for (let i = 0; i < (quick ? 15 : 30); i++) {
        unknown.push(await connackMs(ports.mqtt, `nobody-${i}`));
        wrong.push(await connackMs(ports.mqtt, 'dev-a'));
      }
      timing = { unknown: unknown.sort((a, b) => a - b), wrong: wrong.sort((a, b) => a - b) };
    }
    await honest.endAsync();
    const exited = new Promise((r) => gw.once('exit', r));
    gw.send('stop');
    await exited;
  }
  if (timing !== null) {
    console.log('');
    console.log('refused CONNECT, CONNECT -> CONNACK ms (throttling off)   p50     p90     n');
    console.log(`  unknown username                                     ${fmt(pct(timing.unknown, 0.5)).padStart(6)}  ${fmt(pct(timing.unknown, 0.9)).padStart(6)}  ${timing.unknown.length}`);
    console.log(`  known username, wrong secret                         ${fmt(pct(timing.wrong, 0.5)).padStart(6)}  ${fmt(pct(timing.wrong, 0.9)).padStart(6)}  ${timing.wrong.length}`);
  }
  rmSync(dir, { recursive: true, force: true });
}

// Dispatch last: every function and constant above is initialised by now.
if (role === '--serve') {
  // The gateway process.
  const [dataDir, credentialsFile, throttle] = process.argv.slice(3);
  const auth = throttle === 'off' ? { maxFailuresPerUsername: 1e9, maxFailuresPerIp: 1e9, maxPendingLogins: 1000 } : {};
  const config = loadConfig({
    env: {},
    overrides: {
      dataDir,
      logLevel: 'error',
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: false, credentialsFile, auth },
      http: { port: 0, host: '127.0.0.1' },
    },
  });
  const gw = await startGateway(config);
  process.send!({ ports: gw.ports });
  process.on('message', async () => {
    await gw.close();
    process.exit(0);
  });
} else if (role === '--flood') {
  // The flooder: FLOOD wrong-password CONNECTs in flight, round after round, until told to stop.
  const port = Number(process.argv[3]);
  let stop = false;
  const outcomes = new Map<string, number>();
  process.on('message', () => (stop = true));
  process.send!({ started: true });
  while (!stop) {
    const round = Array.from({ length: FLOOD }, () =>
      connect(port, { clientId: 'dev-a', username: 'dev-a', password: 'wrong-password' }).then(
        (c) => (c.end(true), 'accepted'),
        (err: Error) => err.message.replace(/^Connection refused: /, ''),
      ),
    );
    for (const o of await Promise.all(round)) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
  }
  process.send!({ outcomes: Object.fromEntries(outcomes) });
  process.disconnect();
} else {
  await main();
}
