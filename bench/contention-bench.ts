/**
 * An honest device's PUBACK latency while others abuse the gateway, beside the quiet baseline,
 * all in one run (only same-run figures compare on a shared machine).
 *
 *   npx tsx bench/contention-bench.ts [--phase-s 8] [--rate 50] [--logins 100] [--queries 200]
 *       [--preload 20000] [--json bench/results/<date>-contention.json] [--profile-dir DIR]
 *       [--max-concurrent-queries N]
 *
 * One gateway (the CLI, `pulsegate start --config`, from the TypeScript sources through tsx) with
 * a credentials file and the embedded store. The honest device (mqtt.js, its password right)
 * publishes one QoS 1 reading every 1000/--rate ms and times each PUBACK. Phases, in order:
 *
 *   quiet           nothing else runs
 *   login-flood     --logins raw TCP connections at once, each sending a CONNECT for a real
 *                   device with a wrong password, and again as soon as it is refused or closed
 *   query-flood     --queries concurrent GET /v1/readings?limit=10000 over the preloaded rows,
 *                   each sent again as soon as it is answered (200, 503 or otherwise)
 *
 * The floods run in a second process (this script with --role), so they never share the
 * measuring process's event loop. Figures: honest PUBACK p50/p99/max per phase, and what the
 * floods saw (logins refused, queries answered by status). --profile-dir writes the gateway's CPU
 * profile there (node --cpu-prof; summarise it with bench/profile-summary.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { hashSecret } from '../gateway/ingest/credentials.js';
import { Args } from './lib/args.js';
import { ROOT, sleep, spawnBinary, spawnTs } from './lib/procs.js';
import { LatencyHistogram, monoMs } from './lib/stats.js';
import { connectPacket } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const role = args.str('role', 'main');

if (role === 'flood-logins') await floodLogins(args.num('port', 0), args.num('n', 100), args.num('seconds', 8));
else if (role === 'flood-queries') await floodQueries(args.num('port', 0), args.num('n', 200), args.num('seconds', 8), args.num('from', 0));
else await main();

async function floodLogins(port: number, n: number, seconds: number): Promise<void> {
  const until = monoMs() + seconds * 1000;
  let attempts = 0;
  let refused = 0;
  let closedWithoutAnswer = 0;
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      if (monoMs() > until) return resolve();
      attempts++;
      const socket = netConnect({ port, host: '127.0.0.1', noDelay: true });
      let answered = false;
      socket.on('connect', () => socket.write(connectPacket(`flood-${i}-${attempts}`, 60, { username: 'victim', password: `wrong-${attempts}` })));
      socket.on('data', (d) => {
        // CONNACK: 0x20 0x02 flags rc
        if (d[0] === 0x20 && d.length >= 4 && d[3] !== 0) refused++;
        answered = true;
        socket.destroy();
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (!answered) closedWithoutAnswer++;
        resolve(one(i));
      });
    });
  await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  process.stdout.write(`${JSON.stringify({ flood: 'logins', attempts, refused, closedWithoutAnswer })}\n`);
}

async function floodQueries(port: number, n: number, seconds: number, from: number): Promise<void> {
  const until = monoMs() + seconds * 1000;
  const byStatus: Record<string, number> = {};
  let rows = 0;
  const one = async (): Promise<void> => {
    while (monoMs() < until) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v1/readings?kind=heart-rate&device=honest&from=${from}&limit=10000`);
        const body = await res.text();
        byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
        if (res.ok) rows += (JSON.parse(body) as { count: number }).count;
        else if (res.status === 503) await sleep(Number(res.headers.get('retry-after') ?? '1') * 1000);
      } catch {
        byStatus['error'] = (byStatus['error'] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: n }, one));
  process.stdout.write(`${JSON.stringify({ flood: 'queries', byStatus, rows })}\n`);
}

async function main(): Promise<void> {
  const phaseS = args.num('phase-s', 8);
  const rate = args.num('rate', 50);
  const logins = args.num('logins', 100);
  const queries = args.num('queries', 200);
  const preload = args.num('preload', 20_000);
  const dir = mkdtempSync(join(tmpdir(), 'pulsegate-contention-'));
  const devices = {
    devices: [
      { username: 'honest', secret: await hashSecret('honest-secret') },
      { username: 'victim', secret: await hashSecret('victim-secret') },
    ],
  };
  writeFileSync(join(dir, 'devices.json'), JSON.stringify(devices));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      dataDir: join(dir, 'data'),
      logLevel: 'info',
      mqtt: { host: '127.0.0.1', port: 0, credentialsFile: join(dir, 'devices.json') },
      http: { host: '127.0.0.1', port: 0, ...(args.has('max-concurrent-queries') ? { maxConcurrentQueries: args.num('max-concurrent-queries', 4) } : {}) },
      sinks: { flushIntervalMs: 200 },
    }),
  );
  const profileDir = args.str('profile-dir', '');
  const gw = spawnBinary('pulsegate', process.execPath, [...(profileDir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]), '--import', 'tsx', join(ROOT, 'gateway/cli.ts'), 'start', '--config', join(dir, 'config.json')]);
  try {
    const ready = await gw.waitLine((l) => l['msg'] === 'pulsegate ready', 60_000).catch(() => null);
    if (ready === null) throw new Error(`gateway did not start: ${gw.stderrTail()}`);
    const mqttPort = Number(ready['mqtt']);
    const httpPort = Number(ready['http']);

    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'honest', username: 'honest', password: 'honest-secret' });
    let seq = 0;
    const t0 = Date.now() - 3_600_000;
    // Rows for the query flood to read: batches of 100 readings, an hour ago at 5 Hz.
    for (let i = 0; i < preload; i += 100) {
      const batch = Array.from({ length: Math.min(100, preload - i) }, () => {
        seq++;
        return { seq, ts: t0 + seq * 200, bpm: 60 + (seq % 60) };
      });
      await client.publishAsync('sensors/heart-rate/honest', JSON.stringify(batch), { qos: 1 });
    }
    await waitForRows(httpPort, t0, preload);

    const phases: Record<string, unknown>[] = [];
    for (const phase of ['quiet', 'login-flood', 'query-flood'] as const) {
      const flood =
        phase === 'login-flood'
          ? spawnTs('flood', 'contention-bench.ts', ['--role', 'flood-logins', '--port', String(mqttPort), '--n', String(logins), '--seconds', String(phaseS)])
          : phase === 'query-flood'
            ? spawnTs('flood', 'contention-bench.ts', ['--role', 'flood-queries', '--port', String(httpPort), '--n', String(queries), '--seconds', String(phaseS), '--from', String(t0)])
            : null;
      // Let the flood reach its full rate before measuring.
      await sleep(flood === null ? 0 : 1000);
      const hist = new LatencyHistogram();
      const end = monoMs() + (phaseS - (flood === null ? 0 : 2)) * 1000;
      while (monoMs() < end) {
        const start = monoMs();
        seq++;
        await client.publishAsync('sensors/heart-rate/honest', JSON.stringify({ seq, ts: Date.now(), bpm: 70 }), { qos: 1 });
        hist.record(monoMs() - start);
        const wait = 1000 / rate - (monoMs() - start);
        if (wait > 0) await sleep(wait);
      }
      const floodReport = flood === null ? null : await flood.waitLine((l) => typeof l['flood'] === 'string', phaseS * 1000 + 60_000);
      if (flood !== null) await flood.exited;
      const s = hist.summary();
      phases.push({ phase, n: s.n, p50Ms: s.p50, p99Ms: s.p99, maxMs: s.max, flood: floodReport });
    }
    await client.endAsync();

    const quiet = phases[0]!;
    process.stdout.write('\nhonest device, QoS 1 PUBACK latency (ms), one run:\n');
    process.stdout.write('phase          n      p50      p99      max   p99 vs quiet   flood\n');
    for (const p of phases) {
      const ratio = Number(p['p99Ms']) / Number(quiet['p99Ms']);
      process.stdout.write(
        `${String(p['phase']).padEnd(12)} ${String(p['n']).padStart(4)} ${fmt(p['p50Ms'])} ${fmt(p['p99Ms'])} ${fmt(p['maxMs'])} ${ratio.toFixed(1).padStart(13)}x   ${p['flood'] === null ? '' : JSON.stringify(p['flood'])}\n`,
      );
    }
    const out = args.str('json', join(ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-contention.json`));
    mkdirSync(join(out, '..'), { recursive: true });
    writeFileSync(out, `${JSON.stringify({ at: new Date().toISOString(), options: { phaseS, rate, logins, queries, preload }, phases }, null, 2)}\n`);
    process.stdout.write(`\nwritten to ${out}\n`);
  } finally {
    await gw.stop(15_000);
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(v: unknown): string {
  return (typeof v === 'number' ? v.toFixed(1) : '-').padStart(8);
}

async function waitForRows(httpPort: number, from: number, n: number): Promise<void> {
  const deadline = monoMs() + 60_000;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/readings?kind=heart-rate&device=honest&from=${from}&limit=10000`);
    if (res.ok && ((await res.json()) as { count: number }).count >= Math.min(n, 10_000)) return;
    if (monoMs() > deadline) throw new Error('preloaded readings did not reach the store within 60 s');
    await sleep(200);
  }
}

