/**
 * The systems under test, each started fresh as its own process, with one way to read how many
 * readings it has processed so far:
 *   sink       bench/sink-server.ts: discards bytes (the publisher's ceiling); counts publishes
 *   aedes      bench/aedes-baseline.ts: bare aedes; counts client publishes in a 'publish' listener
 *   mosquitto  Mosquitto with a temporary config, routing to bench/subscriber.ts, which counts
 *   pulsegate  bench/gateway-server.ts: the gateway; pulsegate_readings_received_total from /metrics
 * Broker counts are publishes x readings per publish; the gateway counts decoded valid readings.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monoMs } from './stats.js';
import { freePort, spawnBinary, spawnTs, waitForPort, type Child } from './procs.js';

export type SutName = 'sink' | 'aedes' | 'mosquitto' | 'pulsegate';

export interface Sample {
  /** Monotonic ms when the count was taken. */
  readonly at: number;
  readonly readings: number;
  /** Gateway only: counters from /metrics (summed over labels unless named with one). */
  readonly metrics?: Readonly<Record<string, number>>;
}

export interface Sut {
  readonly name: SutName;
  /** The process whose RSS and CPU time are reported. */
  readonly pid: number;
  readonly mqttPort: number;
  sample(batch: number): Promise<Sample>;
  stop(): Promise<void>;
  /** Gateway only: monotonic stamps of `bridge` window emissions since the last call. */
  takeEmits?(): Promise<{ emits: number[]; hooked: boolean }>;
  readonly httpPort?: number;
  readonly startMs?: number;
  readonly child: Child;
}

const READY = (l: Record<string, unknown>): boolean => l['bench'] === 'ready';

export function findMosquitto(): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/local/bin/mosquitto']) {
    if (existsSync(p)) return p;
  }
  return null;
}

async function countingChild(name: SutName, script: string): Promise<Sut> {
  const child = spawnTs(name, script, [], { ipc: true });
  try {
    const ready = await child.waitLine(READY, 20_000);
    return {
      name,
      child,
      pid: child.pid,
      mqttPort: Number(ready['port']),
      async sample(batch) {
        const s = await child.request({ cmd: 'stats' });
        return { at: Number(s['at']), readings: Number(s['publishes']) * batch };
      },
      stop: () => child.stop(3000),
    };
  } catch (err) {
    await child.kill9();
    throw err;
  }
}

export const startSink = (): Promise<Sut> => countingChild('sink', 'sink-server.ts');
export const startAedes = (): Promise<Sut> => countingChild('aedes', 'aedes-baseline.ts');

export async function startMosquitto(binary: string): Promise<Sut> {
  const dir = mkdtempSync(join(tmpdir(), 'pulsegate-bench-mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning', ''].join('\n'),
  );
  const broker = spawnBinary('mosquitto', binary, ['-c', conf]);
  let sub: Child | null = null;
  const cleanup = async (): Promise<void> => {
    if (sub !== null) await sub.stop(2000);
    await broker.stop(3000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([waitForPort(port, 5000), broker.exited.then((c) => Promise.reject(new Error(`mosquitto exited (code ${c}): ${broker.stderrTail()}`)))]);
    sub = spawnTs('subscriber', 'subscriber.ts', ['--port', String(port)], { ipc: true });
    await sub.waitLine(READY, 10_000);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const subscriber = sub;
  return {
    name: 'mosquitto',
    child: broker,
    pid: broker.pid,
    mqttPort: port,
    async sample(batch) {
      const s = await subscriber.request({ cmd: 'stats' });
      return { at: Number(s['at']), readings: Number(s['publishes']) * batch };
    },
    stop: cleanup,
  };
}

// ---- the gateway ---------------------------------------------------------------------------

export interface GatewayOptions {
  readonly dataDir?: string;
  readonly logLevel?: string;
  readonly checkpointMs?: number;
  readonly probeWindowMs?: number;
  /** log.groupCommitIntervalMs; null or omitted: the gateway's default. */
  readonly groupCommitMs?: number | null;
  /** mqtt.fastPublish; omitted: the gateway's default (on). */
  readonly fastPublish?: boolean;
  readonly execArgv?: readonly string[];
  /** Keep the data directory on stop (default: removed when it was created here). */
  readonly keepDataDir?: boolean;
  /**
   * Stop with SIGTERM and wait for the graceful shutdown (needed for --cpu-prof to write its
   * profile); otherwise SIGKILL, as the data directory is thrown away anyway.
   */
  readonly gracefulStop?: boolean;
  /** ingest.sparkplug.enabled (bench/sparkplug-bench.ts). */
  readonly sparkplug?: boolean;
  /** A config file whose kinds and ingest.sources the gateway takes (bench/mapped-ingest-bench.ts). */
  readonly configFile?: string;
}

export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp < 0) continue;
    const v = Number(line.slice(sp + 1));
    if (Number.isFinite(v)) out.set(line.slice(0, sp), v);
  }
  return out;
}

/** Sum of every series of `name` (optionally only those whose labels contain `label`). */
export function metricSum(m: ReadonlyMap<string, number>, name: string, label?: string): number {
  let sum = 0;
  for (const [key, v] of m) {
    if (key !== name && !key.startsWith(name + '{')) continue;
    if (label !== undefined && !key.includes(label)) continue;
    sum += v;
  }
  return sum;
}

export async function scrapeGateway(httpPort: number): Promise<{ sentAt: number; at: number; metrics: Map<string, number> }> {
  const t0 = monoMs();
  const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  const t1 = monoMs();
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  return { sentAt: t0, at: (t0 + t1) / 2, metrics: parseMetrics(text) };
}

/** The counters the harness reports for the gateway. */
export function gatewayCounters(m: ReadonlyMap<string, number>): Record<string, number> {
  const out: Record<string, number> = {
    received: metricSum(m, 'pulsegate_readings_received_total', 'kind="heart-rate"'),
    receivedAll: metricSum(m, 'pulsegate_readings_received_total'),
    windowsEmitted: metricSum(m, 'pulsegate_windows_emitted_total', 'kind="heart-rate"'),
    duplicates: metricSum(m, 'pulsegate_readings_duplicate_total'),
    rejected: metricSum(m, 'pulsegate_readings_rejected_total'),
    publishes: metricSum(m, 'pulsegate_mqtt_publishes_total'),
    lateDropped: metricSum(m, 'pulsegate_late_readings_dropped_total'),
    contentDuplicates: metricSum(m, 'pulsegate_content_duplicates_total'),
  };
  // Whatever the log tier counts (names vary while it is built): every pulsegate_log_*_total.
  for (const key of m.keys()) {
    const name = key.split('{')[0]!;
    if (/^pulsegate_log_.*_total$/.test(name) && !(name in out)) out[name] = metricSum(m, name);
  }
  return out;
}

export async function startPulsegate(options: GatewayOptions = {}): Promise<Sut> {
  const created = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'pulsegate-bench-gw-'));
  const args = ['--data-dir', dataDir, '--log-level', options.logLevel ?? 'warn', '--probe-window-ms', String(options.probeWindowMs ?? 50)];
  if (options.checkpointMs !== undefined) args.push('--checkpoint-ms', String(options.checkpointMs));
  if (options.groupCommitMs !== undefined && options.groupCommitMs !== null) args.push('--group-commit-ms', String(options.groupCommitMs));
  if (options.sparkplug === true) args.push('--sparkplug');
  if (options.fastPublish === false) args.push('--no-fast-publish');
  if (options.configFile !== undefined) args.push('--config', options.configFile);
  const child = spawnTs('pulsegate', 'gateway-server.ts', args, { ipc: true, execArgv: options.execArgv ?? [] });
  const removeDir = (): void => {
    if (created && !options.keepDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  let ready: Record<string, unknown>;
  try {
    ready = await child.waitLine(READY, 60_000);
  } catch (err) {
    await child.kill9();
    removeDir();
    throw err;
  }
  const ports = ready['ports'] as { mqtt: number; http: number };
  return {
    name: 'pulsegate',
    child,
    pid: child.pid,
    mqttPort: ports.mqtt,
    httpPort: ports.http,
    startMs: Number(ready['startMs']),
    async sample() {
      const { sentAt, at: requestMidpoint, metrics } = await scrapeGateway(ports.http);
      // The moment the gateway rendered the figures (a scrape may queue behind the load).
      const rendered = await child.request({ cmd: 'last-render' }).catch(() => ({ at: null }));
      const at = typeof rendered['at'] === 'number' ? rendered['at'] : requestMidpoint;
      const counters = gatewayCounters(metrics);
      counters['scrapeWaitMs'] = Math.max(0, Math.round(at - sentAt));
      return { at, readings: counters['received']!, metrics: counters };
    },
    async takeEmits() {
      const r = await child.request({ cmd: 'emits' });
      return { emits: (r['emits'] as number[] | undefined) ?? [], hooked: r['probeHooked'] === true };
    },
    async stop() {
      if (options.gracefulStop) await child.stop(15_000);
      else await child.kill9();
      removeDir();
    },
  };
}

export { READY };
