/**
 * Heap bytes allocated per reading on the gateway's main thread under load, and where (prints
 * figures; not a pass/fail test). Garbage collection is 15-20 % of the main thread in the QoS 0
 * profile; allocated bytes drive it, and unlike throughput they hardly move with the machine's
 * noise, so two builds compare by this figure even in a busy hour.
 *
 *   npx tsx bench/alloc-bench.ts [--qos 0|1] [--batch 1] [--duration 4] [--top 25]
 *
 * Starts a gateway in this process (embedded store, a temporary data directory), drives it with
 * bench/publisher.ts in another process, and samples allocations with V8's sampling heap profiler
 * (every ~4 KiB, objects collected since included) from the publisher's "started" to its end.
 * Prints bytes per durable reading and the top allocation sites by self size with their callers.
 * Sites in optimized code may show in the function they were inlined into.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../gateway/config/load-config.js';
import { startGateway } from '../gateway/main.js';
import { Args } from './lib/args.js';

const args = new Args(process.argv.slice(2));
const qos = args.num('qos', 0) === 1 ? 1 : 0;
const batch = Math.max(1, Math.floor(args.num('batch', 1)));
const duration = args.num('duration', 4);
const top = Math.max(0, Math.floor(args.num('top', 25)));

interface SamplingNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly SamplingNode[];
}

/** Self bytes by site and caller, and the total. */
function bySite(head: SamplingNode): { sites: [string, number][]; total: number } {
  const sites = new Map<string, number>();
  let total = 0;
  const name = (n: SamplingNode): string => {
    const f = n.callFrame;
    return `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|gateway|bench)\//, '$1/')}:${f.lineNumber + 1}`;
  };
  const walk = (n: SamplingNode, caller: string): void => {
    const site = name(n);
    total += n.selfSize;
    if (n.selfSize > 0) {
      const key = `${site}  <- ${caller}`;
      sites.set(key, (sites.get(key) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, site);
  };
  walk(head, '');
  return { sites: [...sites].sort((a, b) => b[1] - a[1]), total };
}

const dir = mkdtempSync(join(tmpdir(), 'pulsegate-alloc-bench-'));
try {
  const config = loadConfig({ env: {}, overrides: { dataDir: dir, logLevel: 'warn', mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true }, http: { port: 0, host: '127.0.0.1' } } });
  const gw = await startGateway(config, { logger: pino({ level: 'warn' }) });
  let readings = 0;
  let counting = false;
  gw.events.on('reading.durable', (e) => {
    if (counting) readings += e.readings.length;
  });
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  const publisher = spawn(process.execPath, ['--import', 'tsx', 'bench/publisher.ts', '--port', String(gw.ports.mqtt), '--qos', String(qos), '--batch', String(batch), '--duration', String(duration), '--warmup', '0.5'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let sampling: Promise<unknown> | null = null;
  let out = '';
  publisher.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    if (sampling === null && out.includes('"started"')) {
      counting = true;
      sampling = session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
    }
  });
  const code = await new Promise<number | null>((resolve) => publisher.on('exit', resolve));
  if (sampling === null) throw new Error(`the publisher never started (exit ${String(code)})`);
  await sampling;
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: SamplingNode } };
  counting = false;
  session.disconnect();
  await gw.close();
  const { sites, total } = bySite(profile.head);
  if (readings === 0) throw new Error('no reading became durable while sampling');
  process.stdout.write(`QoS ${qos}, ${batch} reading(s) a publish: ${readings.toLocaleString('en-US')} durable readings while sampling, ${(total / 1e6).toFixed(0)} MB allocated on the main thread\n`);
  process.stdout.write(`bytes allocated per reading: ${Math.round(total / readings)}\n`);
  if (top > 0) {
    process.stdout.write(`\n  share  bytes/reading  site  <- caller\n`);
    for (const [site, bytes] of sites.slice(0, top)) process.stdout.write(`${((100 * bytes) / total).toFixed(1).padStart(6)} %  ${Math.round(bytes / readings).toString().padStart(9)}  ${site}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
