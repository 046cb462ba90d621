/**
 * `npm run bench [-- --quick] [--seed N] [--reps N] [--profile] [--cores N]` (`--help` lists every option)
 *
 * For every scenario (QoS 0 single readings, QoS 1 single readings, QoS 1 batches of 100) and
 * every system under test (the publisher's ceiling against a byte-discarding sink, bare aedes,
 * Mosquitto when installed, the pulsegate gateway), starts the system under test as a fresh
 * process, drives it with bench/publisher.ts (another process), and measures what the system
 * under test processed between two samples of its own counters. Then the gateway's recovery
 * replay: a log of N single-reading records, kill -9, restart, and its 'recovered from the log'
 * line. Prints a table with medians over --reps repetitions and the targets, and writes every
 * figure to bench/results/<YYYY-MM-DD>.json. Then publish-to-alert latency at half of the QoS 1
 * maximum (bench/alert-latency-bench.ts; --no-alert-latency skips it), and the push proxy
 * (bench/push-proxy-bench.ts; --no-push-proxy skips it): pushes/s to a local push service and
 * hand-offs held per GB of RSS. --profile instead runs the gateway with --cpu-prof under the QoS 0
 * and the batched scenarios and prints where its main thread spends its time.
 * Last, the alert bench (bench/alert-bench.ts, its own process; --no-alerts skips it): the cost of
 * rule evaluation per window. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Args } from './lib/args.js';
import { buildForBench } from './lib/build.js';
import { BENCH_DIR, cpuSeconds, getRuntime, peakRssMb, rssMb, setCpuAffinity, setRuntime, sleep, spawnTs, spawnBinary, type Child } from './lib/procs.js';
import { selfCheck } from './lib/selfcheck.js';
import { median, monoMs, summarizeCensored, type CensoredSummary, type LatencySummary } from './lib/stats.js';
import { findMosquitto, startAedes, startMosquitto, startPulsegate, startSink, type Sample, type Sut, type SutName } from './lib/suts.js';
import { formatSummary, summarizeProfile, type CpuProfile, type ProfileSummary } from './profile-summary.js';
import { formatAlertBench, type AlertBenchResult } from './alert-bench.js';
import { formatAlertLatency, runAlertLatencyBench, type AlertLatencyResult } from './alert-latency-bench.js';
import { runSparkplugBench, sparkplugBenchSettings, type SparkplugBenchResult } from './sparkplug-bench.js';

// ---- settings ------------------------------------------------------------------------------

interface Scenario {
  readonly id: string;
  readonly label: string;
  readonly qos: 0 | 1;
  readonly batch: number;
}
const ALL_SCENARIOS: readonly Scenario[] = [
  { id: 'qos0-single', label: 'QoS 0, 1 reading/publish', qos: 0, batch: 1 },
  { id: 'qos1-single', label: 'QoS 1, 1 reading/publish', qos: 1, batch: 1 },
  { id: 'qos1-batch100', label: 'QoS 1, 100 readings/publish', qos: 1, batch: 100 },
];
const SUT_LABEL: Record<SutName, string> = { sink: 'publisher ceiling', aedes: 'bare aedes', mosquitto: 'mosquitto', pulsegate: 'pulsegate' };
const SUT_NAMES = Object.keys(SUT_LABEL) as SutName[];
const SCENARIO_IDS = ALL_SCENARIOS.map((s) => s.id);

const USAGE = `Usage: npm run bench [-- options]

Measures pulsegate against bare aedes, Mosquitto (when installed) and the publisher's ceiling,
same run, then recovery replay, alert latency, Sparkplug, mapped ingest, SSE fan-out, the push
proxy and the alert engine. Writes bench/results/<date>.json. See bench/README.md.

  --quick                 one repetition, shorter runs (about 1 minute of load)
  --reps N                repetitions per cell, medians reported (default 3, 1 with --quick)
  --seed N                payload seed (default 1)
  --duration S            measured seconds per cell (default 2, 1.5 with --quick)
  --warmup S              warm-up seconds per cell (default 0.5, 0.4 with --quick)
  --connections N         publisher connections (default 4)
  --devices N             devices per connection (default 25)
  --inflight N            QoS 1 publishes in flight per connection (default 128)
  --sut a,b               only these systems: ${SUT_NAMES.join(', ')}
  --scenario a,b          only these: ${SCENARIO_IDS.join(', ')}
  --cores N               systems under test on CPUs 0..N-1, load generators on the others (taskset)
  --group-commit-ms N     the gateway's log.groupCommitIntervalMs
  --no-fast-publish       the gateway with mqtt.fastPublish off (every publish through aedes' parser)
  --replay-records N      records in the recovery replay's log (default 300000, 200000 with --quick)
  --profile               CPU profiles of the gateway under load instead of the table
  --clients               also the raw publisher against mqtt.js, both against the sink
  --tsx                   children on TypeScript source through tsx instead of the JavaScript build
  --no-replay --no-alerts --no-alert-latency --no-sparkplug --no-sse --no-mapped --no-push-proxy
                          skip that part
  --help                  this text
`;
const KNOWN_OPTIONS = ['quick', 'reps', 'seed', 'duration', 'warmup', 'connections', 'devices', 'inflight', 'sut', 'scenario', 'cores', 'group-commit-ms', 'no-fast-publish', 'replay-records', 'profile', 'clients', 'tsx', 'no-replay', 'no-alerts', 'no-alert-latency', 'no-sparkplug', 'no-sse', 'no-mapped', 'no-push-proxy', 'help'];
const args = new Args(process.argv.slice(2));
if (args.has('help')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const unknownOptions = args.unknown(KNOWN_OPTIONS);
if (unknownOptions.length > 0) {
  process.stderr.write(`unknown option${unknownOptions.length > 1 ? 's' : ''}: ${unknownOptions.map((o) => `--${o}`).join(', ')}\n\n${USAGE}`);
  process.exit(2);
}
const quick = args.has('quick');
const profileMode = args.has('profile');
const settings = {
  mode: profileMode ? 'profile' : quick ? 'quick' : 'full',
  seed: args.num('seed', 1),
  reps: Math.max(1, Math.floor(args.num('reps', quick ? 1 : 3))),
  durationS: args.num('duration', profileMode ? 5 : quick ? 1.5 : 2),
  warmupS: args.num('warmup', quick ? 0.4 : 0.5),
  /** Upper bound of the load after the measured period; the harness stops it after its last sample. */
  tailS: 20,
  connections: args.num('connections', 4),
  devicesPerConnection: args.num('devices', 25),
  inflight: args.num('inflight', 128),
  replayRecords: args.num('replay-records', quick ? 200_000 : 300_000),
  probePeriodMs: 5,
  probeWindowMs: 50,
  /**
   * --cores N: the systems under test run on CPUs 0..N-1 and the load generators on the others
   * (taskset); null = not pinned. Run once per N for the scaling figure (same machine, same day).
   */
  cores: args.has('cores') ? args.num('cores', 0) : null,
  /** The gateway's log.groupCommitIntervalMs; null keeps the gateway's default. */
  groupCommitMs: args.has('group-commit-ms') ? args.num('group-commit-ms', 2) : null,
};
if (settings.cores !== null) {
  const total = cpus().length;
  if (!Number.isInteger(settings.cores) || settings.cores < 1 || settings.cores > total) {
    process.stderr.write(`--cores ${String(settings.cores)}: must be a whole number from 1 to ${total} (this machine's CPUs)\n`);
    process.exit(2);
  }
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    process.stderr.write('--cores needs taskset (util-linux), which is not installed\n');
    process.exit(2);
  }
  const n = settings.cores;
  setCpuAffinity({ sut: n === 1 ? '0' : `0-${n - 1}`, load: n >= total ? null : n === total - 1 ? String(n) : `${n}-${total - 1}` });
}
const onlySuts = args.str('sut', '').split(',').filter((s) => s !== '');
const onlyScenarios = args.str('scenario', '').split(',').filter((s) => s !== '');
{
  const problems = [
    ...onlySuts.filter((s) => !(SUT_NAMES as string[]).includes(s)).map((s) => `--sut ${s}: not one of ${SUT_NAMES.join(', ')}`),
    ...onlyScenarios.filter((s) => !SCENARIO_IDS.includes(s)).map((s) => `--scenario ${s}: not one of ${SCENARIO_IDS.join(', ')}`),
  ];
  if (problems.length > 0) {
    process.stderr.write(problems.join('\n') + '\n');
    process.exit(2);
  }
}
const SCENARIOS = onlyScenarios.length === 0 ? ALL_SCENARIOS : ALL_SCENARIOS.filter((s) => onlyScenarios.includes(s.id));

const log = (s: string): void => void process.stderr.write(s + '\n');
const fmtInt = (n: number | null | undefined): string => (n === null || n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
const fix = (n: number | null | undefined, d = 2): string => (n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(d));
const round = (n: number | null | undefined, d = 3): number | null => (n === null || n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(d)));

// ---- one measurement -----------------------------------------------------------------------

interface CellResult {
  scenario: string;
  sut: SutName;
  rep: number;
  ok: boolean;
  error?: string;
  readingsPerSec: number | null;
  seconds: number | null;
  readings: number | null;
  publisher: Record<string, unknown> | null;
  pubackMs: LatencySummary | null;
  /** Gateway: publish of the window-closing probe reading -> window emission (all measured samples). */
  emitMs: CensoredSummary | null;
  emitSamples: number[];
  /** Probe readings whose window was not emitted yet when the run ended: latency >= this. */
  emitPending: number[];
  emitPairing: { triggers: number; emits: number; hooked: boolean; negative: number } | null;
  probePubackMs: unknown;
  peakRssMb: number | null;
  cpuSeconds: number | null;
  gateway: Record<string, number> | null;
  sutStartMs: number | null;
  window: { fromMonoMs: number; toMonoMs: number } | null;
  /** [seconds since the load started, RSS MB] every 250 ms: whether memory levels off or keeps growing. */
  rssTimeline: [number, number][];
}

function publisherArgs(port: number, scenario: Scenario, prefix: string, extra: readonly string[] = []): string[] {
  return [
    '--port', String(port),
    '--connections', String(settings.connections),
    '--devices', String(settings.devicesPerConnection),
    '--qos', String(scenario.qos),
    '--batch', String(scenario.batch),
    '--inflight', String(settings.inflight),
    '--duration', String(settings.durationS),
    '--warmup', String(settings.warmupS),
    '--tail', String(settings.tailS),
    '--seed', String(settings.seed),
    '--prefix', prefix,
    ...extra,
  ];
}

const isStarted = (l: Record<string, unknown>): boolean => l['event'] === 'started' || l['event'] === 'error';
const isResult = (l: Record<string, unknown>): boolean => l['event'] === 'result' || l['event'] === 'error';

async function startSut(name: SutName, mosquitto: string | null, gatewayExecArgv: readonly string[] = []): Promise<Sut> {
  switch (name) {
    case 'sink':
      return startSink();
    case 'aedes':
      return startAedes();
    case 'mosquitto':
      if (mosquitto === null) throw new Error('mosquitto is not installed');
      return startMosquitto(mosquitto);
    case 'pulsegate':
      return startPulsegate({ probeWindowMs: settings.probeWindowMs, groupCommitMs: settings.groupCommitMs, fastPublish: !args.has('no-fast-publish'), execArgv: gatewayExecArgv, gracefulStop: gatewayExecArgv.length > 0 });
  }
}

async function runCell(
  sutName: SutName,
  scenario: Scenario,
  rep: number,
  mosquitto: string | null,
  gatewayExecArgv: readonly string[] = [],
  publisherExtra: readonly string[] = [],
): Promise<CellResult> {
  const result: CellResult = {
    scenario: scenario.id,
    sut: sutName,
    rep,
    ok: false,
    readingsPerSec: null,
    seconds: null,
    readings: null,
    publisher: null,
    pubackMs: null,
    emitMs: null,
    emitSamples: [],
    emitPending: [],
    emitPairing: null,
    probePubackMs: null,
    peakRssMb: null,
    cpuSeconds: null,
    gateway: null,
    sutStartMs: null,
    window: null,
    rssTimeline: [],
  };
  const t0 = monoMs();
  const sut = await startSut(sutName, mosquitto, gatewayExecArgv);
  result.sutStartMs = round(sut.startMs ?? monoMs() - t0, 0);
  const children: Child[] = [];
  let rssTimer: NodeJS.Timeout | null = null;
  try {
    const prefix = `s${settings.seed}r${rep}-${scenario.id}`;
    let probe: Child | null = null;
    if (sutName === 'pulsegate') {
      probe = spawnTs('probe', 'publisher.ts', [
        ...publisherArgs(sut.mqttPort, scenario, prefix),
        '--mode', 'probe',
        '--probe-period-ms', String(settings.probePeriodMs),
        '--probe-window-ms', String(settings.probeWindowMs),
      ]);
      children.push(probe);
    }
    const pub = spawnTs('publisher', 'publisher.ts', publisherArgs(sut.mqttPort, scenario, prefix, publisherExtra));
    children.push(pub);
    const starts = await Promise.all(children.map((c) => c.waitLine(isStarted, 20_000)));
    for (const s of starts) if (s['event'] === 'error') throw new Error(`publisher: ${String(s['message'])}`);
    const loadStart = monoMs();
    rssTimer = setInterval(() => {
      const mb = rssMb(sut.pid);
      if (mb !== null) result.rssTimeline.push([round((monoMs() - loadStart) / 1000, 2)!, round(mb, 1)!]);
    }, 250);

    await sleep(settings.warmupS * 1000);
    const cpuA = cpuSeconds(sut.pid);
    const a: Sample = await sut.sample(scenario.batch);
    await sleep(settings.durationS * 1000 - (monoMs() - a.at));
    const b: Sample = await sut.sample(scenario.batch);
    const cpuB = cpuSeconds(sut.pid);
    result.window = { fromMonoMs: round(a.at, 1)!, toMonoMs: round(b.at, 1)! };

    // The load ran on until now, so that it covered both samples; end it.
    for (const c of children) c.proc.kill('SIGTERM');
    const pubResult = await pub.waitLine(isResult, 15_000);
    if (pubResult['event'] === 'error') throw new Error(`publisher: ${String(pubResult['message'])}`);
    result.publisher = pubResult;
    const pl = pubResult['pubackLatencyMs'] as LatencySummary | null;
    result.pubackMs = pl ?? null;

    if (probe !== null && sut.takeEmits !== undefined) {
      const probeResult = await probe.waitLine(isResult, 10_000);
      await sleep(100); // the last window-closing readings are still in flight
      const asked = monoMs();
      const { emits, hooked } = await sut.takeEmits();
      const triggers = (probeResult['triggers'] as { at: number; measured: boolean }[] | undefined) ?? [];
      result.probePubackMs = probeResult['puback'];
      const pairs = Math.min(triggers.length, emits.length);
      const samples: number[] = [];
      const pending: number[] = [];
      let negative = 0;
      for (let i = 0; i < triggers.length; i++) {
        const t = triggers[i]!;
        if (i < pairs) {
          const d = emits[i]! - t.at;
          if (d < 0) negative++;
          if (t.measured) samples.push(d);
        } else if (t.measured) {
          // Not emitted yet: the gateway is still behind on the probe's readings.
          pending.push(asked - t.at);
        }
      }
      result.emitPairing = { triggers: triggers.length, emits: emits.length, hooked, negative };
      // Emissions are paired with the window-closing readings in order; that is only trusted when
      // none came before its reading and there is no emission without a probe reading.
      // No emission at all means the hook saw nothing (or the gateway stalled): no figure then.
      if (hooked && emits.length > 0 && negative === 0 && emits.length <= triggers.length + 1) {
        result.emitSamples = samples.map((s) => Number(s.toFixed(3)));
        result.emitPending = pending.map((s) => Number(s.toFixed(3)));
        result.emitMs = summarizeCensored(samples, pending);
      }
    }

    const seconds = (b.at - a.at) / 1000;
    result.seconds = round(seconds);
    result.readings = b.readings - a.readings;
    result.readingsPerSec = seconds > 0 ? Math.round((b.readings - a.readings) / seconds) : null;
    result.cpuSeconds = cpuA !== null && cpuB !== null ? round(cpuB - cpuA, 2) : null;
    result.peakRssMb = round(peakRssMb(sut.pid), 1);
    if (a.metrics && b.metrics) {
      const delta: Record<string, number> = {};
      for (const [k, v] of Object.entries(b.metrics)) delta[k] = k === 'scrapeWaitMs' ? v : v - (a.metrics[k] ?? 0);
      result.gateway = delta;
    }
    result.ok = true;
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    if (rssTimer !== null) clearInterval(rssTimer);
    for (const c of children) await c.kill9();
    await sut.stop();
  }
  return result;
}

// ---- replay ----------------------------------------------------------------------------------

interface ReplayRun {
  replayedRecords: number | null;
  ms: number | null;
  recordsPerSec: number | null;
  startMs: number | null;
  peakRssMb: number | null;
  /** Replayed records whose raw readings were in the log's store batches already (not batched again). */
  passedOverRecords: number;
  error?: string;
}

interface ReplayResult {
  records: number;
  fill: { seconds: number; received: number; error?: string };
  logBytes: number | null;
  runs: ReplayRun[];
  recordsPerSec: number | null;
  error?: string;
}

function dirBytes(dir: string): number | null {
  try {
    return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
  } catch {
    return null;
  }
}

async function waitCpuIdle(pid: number, maxMs: number): Promise<void> {
  const deadline = monoMs() + maxMs;
  let prev = cpuSeconds(pid);
  while (monoMs() < deadline) {
    await sleep(250);
    const now = cpuSeconds(pid);
    if (now === null || prev === null) return;
    if (now - prev < 0.03) return;
    prev = now;
  }
}

async function runReplay(): Promise<ReplayResult> {
  const records = settings.replayRecords;
  const base = mkdtempSync(join(tmpdir(), 'pulsegate-bench-replay-'));
  const filled = join(base, 'filled');
  const result: ReplayResult = { records, fill: { seconds: 0, received: 0 }, logBytes: null, runs: [], recordsPerSec: null };
  try {
    // 1. Fill: one gateway, `records` single-reading publishes at QoS 0, then kill -9 (no checkpoint).
    mkdirSync(filled);
    const gw = await startPulsegate({ dataDir: filled, checkpointMs: 3_600_000, keepDataDir: true });
    try {
      const t0 = monoMs();
      const pub = spawnTs('publisher', 'publisher.ts', [
        ...publisherArgs(gw.mqttPort, ALL_SCENARIOS[0]!, `s${settings.seed}-replay`),
        '--count', String(records),
        '--duration', '60',
        '--warmup', '0',
      ]);
      const r = await pub.waitLine(isResult, 70_000);
      if (r['event'] === 'error') throw new Error(`publisher: ${String(r['message'])}`);
      // QoS 0: wait until the gateway took every reading in, then until its log is quiet.
      const deadline = monoMs() + 30_000;
      let received = 0;
      while (monoMs() < deadline) {
        received = (await gw.sample(1)).readings;
        if (received >= records) break;
        await sleep(100);
      }
      await waitCpuIdle(gw.pid, 10_000);
      result.fill = { seconds: round((monoMs() - t0) / 1000, 2)!, received };
    } finally {
      await gw.child.kill9();
    }
    result.logBytes = dirBytes(join(filled, 'log'));

    // 2. Replay: a fresh copy of the killed gateway's data directory for every repetition.
    for (let rep = 0; rep < settings.reps; rep++) {
      const dir = join(base, `run-${rep}`);
      cpSync(filled, dir, { recursive: true });
      const run: ReplayRun = { replayedRecords: null, ms: null, recordsPerSec: null, startMs: null, peakRssMb: null, passedOverRecords: 0 };
      let child: Sut | null = null;
      try {
        child = await startPulsegate({ dataDir: dir, logLevel: 'info', checkpointMs: 3_600_000, keepDataDir: true });
        run.startMs = child.startMs ?? null;
        run.peakRssMb = round(peakRssMb(child.pid), 1);
        await sleep(50);
        const line = child.child.lines.find((l) => l['msg'] === 'recovered from the log');
        if (line === undefined) throw new Error("the gateway logged no 'recovered from the log' line");
        run.replayedRecords = Number(line['replayedRecords']);
        run.ms = Number(line['ms']);
        run.recordsPerSec = run.ms > 0 ? Math.round(run.replayedRecords / (run.ms / 1000)) : null;
        const passed = child.child.lines.find((l) => typeof l['passedOverRecords'] === 'number');
        run.passedOverRecords = passed === undefined ? 0 : Number(passed['passedOverRecords']);
      } catch (err) {
        run.error = (err as Error).message;
      } finally {
        await child?.child.kill9();
        rmSync(dir, { recursive: true, force: true });
      }
      result.runs.push(run);
    }
    result.recordsPerSec = median(result.runs.flatMap((r) => (r.recordsPerSec === null ? [] : [r.recordsPerSec])));
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  return result;
}

// ---- summary, table, targets -----------------------------------------------------------------

interface RowSummary {
  scenario: string;
  sut: SutName;
  reps: number;
  errors: string[];
  readingsPerSec: number | null;
  perRep: (number | null)[];
  vsAedes: number | null;
  vsMosquitto: number | null;
  ofCeiling: number | null;
  pubackP50: number | null;
  pubackP99: number | null;
  emit: CensoredSummary | null;
  peakRssMb: number | null;
  cpuSeconds: number | null;
  cores: number | null;
  /** Gateway: medians of the counter deltas over the measured period. */
  gateway: Record<string, number> | null;
  probePubackP50: number | null;
  /** RSS growth while loaded (MB/s, median over repetitions): memory that keeps growing means a queue without bound. */
  rssGrowthMbPerS: number | null;
}

function summarizeRows(cells: readonly CellResult[], suts: readonly SutName[]): RowSummary[] {
  const rows: RowSummary[] = [];
  for (const sc of SCENARIOS) {
    const med = (sut: SutName): number | null =>
      median(cells.filter((c) => c.scenario === sc.id && c.sut === sut && c.ok && c.readingsPerSec !== null).map((c) => c.readingsPerSec!));
    const aedes = med('aedes');
    const mosq = med('mosquitto');
    const ceiling = med('sink');
    for (const sut of suts) {
      const mine = cells.filter((c) => c.scenario === sc.id && c.sut === sut);
      const ok = mine.filter((c) => c.ok);
      const rps = med(sut);
      const nums = (f: (c: CellResult) => number | null | undefined): number[] => ok.flatMap((c) => {
        const v = f(c);
        return v === null || v === undefined ? [] : [v];
      });
      const emitSamples = ok.flatMap((c) => c.emitSamples);
      const emitPending = ok.flatMap((c) => c.emitPending);
      const cpu = median(nums((c) => c.cpuSeconds));
      const secs = median(nums((c) => c.seconds));
      rows.push({
        scenario: sc.id,
        sut,
        reps: ok.length,
        errors: mine.filter((c) => !c.ok).map((c) => c.error ?? 'failed'),
        readingsPerSec: rps,
        perRep: mine.map((c) => c.readingsPerSec),
        vsAedes: sut !== 'sink' && rps !== null && aedes !== null && aedes > 0 ? round(rps / aedes, 3) : null,
        vsMosquitto: sut !== 'sink' && rps !== null && mosq !== null && mosq > 0 ? round(rps / mosq, 3) : null,
        ofCeiling: sut !== 'sink' && rps !== null && ceiling !== null && ceiling > 0 ? round(rps / ceiling, 3) : null,
        pubackP50: median(nums((c) => c.pubackMs?.p50)),
        pubackP99: median(nums((c) => c.pubackMs?.p99)),
        emit: emitSamples.length + emitPending.length > 0 ? summarizeCensored(emitSamples, emitPending) : null,
        peakRssMb: ok.length > 0 ? Math.max(...nums((c) => c.peakRssMb)) : null,
        cpuSeconds: cpu,
        cores: cpu !== null && secs !== null && secs > 0 ? round(cpu / secs, 2) : null,
        gateway: medianRecord(ok.flatMap((c) => (c.gateway === null ? [] : [c.gateway]))),
        probePubackP50: median(nums((c) => (c.probePubackMs as LatencySummary | null)?.p50)),
        rssGrowthMbPerS: median(nums((c) => rssGrowth(c.rssTimeline))),
      });
    }
  }
  return rows;
}

/** Least-squares slope of RSS over time after the first second of load (MB/s). */
function rssGrowth(timeline: readonly [number, number][] | undefined): number | null {
  const pts = (timeline ?? []).filter(([t]) => t >= 1);
  if (pts.length < 4) return null;
  const n = pts.length;
  const mt = pts.reduce((s, [t]) => s + t, 0) / n;
  const mr = pts.reduce((s, [, r]) => s + r, 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, r] of pts) {
    num += (t - mt) * (r - mr);
    den += (t - mt) ** 2;
  }
  return den > 0 ? round(num / den, 1) : null;
}

function medianRecord(records: readonly Record<string, number>[]): Record<string, number> | null {
  if (records.length === 0) return null;
  const out: Record<string, number> = {};
  for (const key of Object.keys(records[0]!)) out[key] = median(records.map((r) => r[key] ?? 0)) ?? 0;
  return out;
}

function renderGatewayCounters(rows: readonly RowSummary[], cells: readonly CellResult[]): string | null {
  const gw = rows.filter((r) => r.sut === 'pulsegate' && r.gateway !== null);
  if (gw.length === 0) return null;
  const data = gw.map((r) => {
    const g = r.gateway!;
    const emits = cells.filter((c) => c.scenario === r.scenario && c.sut === 'pulsegate' && c.emitPairing !== null).map((c) => `${c.emitPairing!.emits}/${c.emitPairing!.triggers}`);
    const secs = median(cells.filter((c) => c.scenario === r.scenario && c.sut === 'pulsegate' && c.ok && c.seconds !== null).map((c) => c.seconds!));
    return [
      r.scenario,
      fix(secs),
      fmtInt(g['received']),
      fmtInt(g['publishes']),
      fmtInt(g['pulsegate_log_appended_records_total']),
      fmtInt(g['windowsEmitted']),
      emits.join(' ') || '-',
      fmtInt(g['duplicates']),
      fmtInt(g['rejected']),
      fix(r.probePubackP50),
      fmtInt(g['scrapeWaitMs']),
    ];
  });
  return (
    'pulsegate counters over the measured period (medians; windows: heart-rate, 10 s and 60 s, so few or none fire in a short run):\n' +
    table(
      ['scenario', 'seconds', 'readings received', 'publishes', 'log records appended', 'windows emitted', 'probe windows emitted/closed', 'duplicates', 'rejected', 'probe PUBACK p50 ms', '/metrics wait ms'],
      data,
      [false, true, true, true, true, true, true, true, true, true, true],
    )
  );
}

interface Target {
  name: string;
  goal: string;
  measured: string;
  value: number | null;
  pass: boolean | null;
}

function evaluateTargets(rows: readonly RowSummary[], replay: ReplayResult | null, cells: readonly CellResult[]): Target[] {
  const row = (sc: string, sut: SutName): RowSummary | undefined => rows.find((r) => r.scenario === sc && r.sut === sut);
  const t = (name: string, goal: string, value: number | null, pass: (v: number) => boolean, show: (v: number) => string): Target => ({
    name,
    goal,
    value,
    measured: value === null ? 'not measured' : show(value),
    pass: value === null ? null : pass(value),
  });
  const q0 = row('qos0-single', 'pulsegate');
  const q1 = row('qos1-single', 'pulsegate');
  const b = row('qos1-batch100', 'pulsegate');
  const rssValues = [
    ...cells.filter((c) => c.sut === 'pulsegate' && c.ok && c.peakRssMb !== null).map((c) => c.peakRssMb!),
    ...(replay?.runs ?? []).flatMap((r) => (r.peakRssMb === null ? [] : [r.peakRssMb])),
  ];
  return [
    t('QoS 0 single readings', '>= 150,000 readings/s', q0?.readingsPerSec ?? null, (v) => v >= 150_000, (v) => `${fmtInt(v)} readings/s`),
    t('QoS 0 single vs bare aedes', '>= 0.75x', q0?.vsAedes ?? null, (v) => v >= 0.75, (v) => `${fix(v)}x`),
    t('batched (QoS 1, 100/publish)', '>= 1,000,000 readings/s', b?.readingsPerSec ?? null, (v) => v >= 1_000_000, (v) => `${fmtInt(v)} readings/s`),
    t('QoS 1 single vs bare aedes QoS 1', '>= 1.0x', q1?.vsAedes ?? null, (v) => v >= 1.0, (v) => `${fix(v)}x`),
    t('recovery replay', '>= 1,000,000 records/s', replay?.recordsPerSec ?? null, (v) => v >= 1_000_000, (v) => `${fmtInt(v)} records/s`),
    t('gateway peak RSS (every run)', '< 300 MB', rssValues.length > 0 ? Math.max(...rssValues) : null, (v) => v < 300, (v) => `${fix(v, 0)} MB`),
  ];
}

function table(headers: readonly string[], data: readonly (readonly string[])[], rightAlign: readonly boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...data.map((r) => (r[i] ?? '').length)));
  const line = (cols: readonly string[]): string =>
    cols.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...data.map(line)].join('\n');
}

function renderTable(rows: readonly RowSummary[]): string {
  const data = rows.map((r) => {
    const lat = (p50: number | null, p99: number | null): string => (p50 === null ? '-' : `${fix(p50)} / ${fix(p99)}`);
    const notes: string[] = [];
    if (r.reps === 0) notes.push(`FAILED: ${(r.errors[0] ?? '').split('\n')[0]!.slice(0, 70)}`);
    if (r.ofCeiling !== null && r.ofCeiling >= 0.9) notes.push('publisher-bound');
    if (r.rssGrowthMbPerS !== null && r.rssGrowthMbPerS >= 20) notes.push(`RSS still growing +${fix(r.rssGrowthMbPerS, 0)} MB/s`);
    const note = notes.join('; ');
    return [
      r.scenario,
      SUT_LABEL[r.sut],
      r.readingsPerSec === null ? '-' : fmtInt(r.readingsPerSec),
      fix(r.vsAedes),
      fix(r.vsMosquitto),
      r.ofCeiling === null ? '-' : `${Math.round(r.ofCeiling * 100)}%`,
      lat(r.pubackP50, r.pubackP99),
      r.emit === null
        ? '-'
        : `${r.emit.p50AtLeast ? '>' : ''}${fix(r.emit.p50)} / ${r.emit.p99AtLeast ? '>' : ''}${fix(r.emit.p99)} (n=${r.emit.n}${r.emit.censored > 0 ? `, ${r.emit.censored} pending` : ''})`,
      fix(r.peakRssMb, 0),
      r.cpuSeconds === null ? '-' : `${fix(r.cpuSeconds)} (${fix(r.cores)})`,
      note,
    ];
  });
  return table(
    ['scenario', 'SUT', 'readings/s', 'x aedes', 'x mosq', 'of ceil', 'PUBACK p50/p99 ms', 'emit p50/p99 ms', 'peak RSS MB', 'CPU s (cores)', 'note'],
    data,
    [false, false, true, true, true, true, true, true, true, true, false],
  );
}

// ---- profile mode ----------------------------------------------------------------------------

async function runProfiles(date: string, mosquitto: string | null, runtimeNote: string): Promise<void> {
  log(`node processes: ${runtimeNote}`);
  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const out: Record<string, unknown>[] = [];
  // By default the single-reading QoS 0 and the batched scenario; --scenario picks others.
  const ids = onlyScenarios.length === 0 ? ['qos0-single', 'qos1-batch100'] : SCENARIOS.map((s) => s.id);
  for (const id of ids) {
    const scenario = ALL_SCENARIOS.find((s) => s.id === id)!;
    const name = `${date}-gateway-${id}.cpuprofile`;
    const file = join(resultsDir, name);
    // Every thread writes its own profile (tsx's loader runs in a worker): write them to a
    // temporary directory and keep the main thread's (thread id 0 in the file name).
    const profDir = mkdtempSync(join(tmpdir(), 'pulsegate-bench-prof-'));
    log(`profiling the gateway under ${scenario.label} (${settings.durationS} s measured) ...`);
    const cell = await runCell('pulsegate', scenario, 0, mosquitto, ['--cpu-prof', '--cpu-prof-dir', profDir]);
    try {
      const main = readdirSync(profDir).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
      if (main !== undefined) copyFileSync(join(profDir, main), file);
      else rmSync(file, { force: true });
    } finally {
      rmSync(profDir, { recursive: true, force: true });
    }
    if (!cell.ok || cell.window === null) {
      log(`  failed: ${cell.error ?? 'unknown error'}`);
      out.push({ scenario: id, error: cell.error ?? 'failed' });
      continue;
    }
    let summary: ProfileSummary;
    try {
      const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
      summary = summarizeProfile(profile, { top: 20, fromUs: cell.window.fromMonoMs * 1000, toUs: cell.window.toMonoMs * 1000 });
    } catch (err) {
      log(`  no profile: ${(err as Error).message}`);
      out.push({ scenario: id, error: (err as Error).message });
      continue;
    }
    process.stdout.write(`\n${scenario.label}: ${fmtInt(cell.readingsPerSec)} readings/s while profiled; gateway CPU ${fix(cell.cpuSeconds)} s\n`);
    process.stdout.write(formatSummary(`bench/results/${name}`, summary) + '\n');
    out.push({
      scenario: id,
      readingsPerSec: cell.readingsPerSec,
      cpuSeconds: cell.cpuSeconds,
      peakRssMb: cell.peakRssMb,
      profile: `bench/results/${name}`,
      // Pass these to bench/profile-summary.ts as --from-us / --to-us to summarise the same period.
      measuredFromUs: Math.round(cell.window.fromMonoMs * 1000),
      measuredToUs: Math.round(cell.window.toMonoMs * 1000),
      summary,
    });
  }
  const path = join(resultsDir, `${date}-profile.json`);
  writeFileSync(path, JSON.stringify({ date, runtime: runtimeNote, settings, profiles: out }, null, 2) + '\n');
  process.stdout.write(`\nwrote bench/results/${date}-profile.json\n`);
}

// ---- push proxy ------------------------------------------------------------------------------

type PushProxyBenchResult = Partial<Record<'phones' | 'events' | 'pushes' | 'pushesPerSec' | 'proxyCpuMsPerPush' | 'pushServiceCores' | 'rawWebPushPerSec' | 'ofRawWebPush' | 'held' | 'rssBeforeMb' | 'rssAfterMb' | 'kibPerHandoff' | 'handoffsPerGbRss' | 'gatewayConnections', number>> & { error?: string };

/** bench/push-proxy-bench.ts in its own process (through tsx: it uses the test helpers' push service and stream source). */
async function runPushProxyBench(): Promise<PushProxyBenchResult> {
  const child = spawnBinary('push-proxy-bench', process.execPath, ['--import', 'tsx', join(BENCH_DIR, 'push-proxy-bench.ts'), '--json', ...(quick ? ['--quick'] : [])]);
  try {
    const line = await child.waitLine((l) => l['event'] === 'result', 600_000);
    await child.exited;
    return line as PushProxyBenchResult;
  } catch (err) {
    await child.stop();
    return { error: `${(err as Error).message.split('\n')[0]}${child.stderrTail() ? `: ${child.stderrTail().split('\n').slice(-2).join(' ')}` : ''}` };
  }
}

// ---- main ------------------------------------------------------------------------------------

/** RSS of an idle benchmark child (node + the tsx loader + a listening socket): the floor of every RSS figure. */
async function idleProcessRss(): Promise<number | null> {
  try {
    const sink = await startSink();
    await sleep(300);
    const rss = peakRssMb(sink.pid);
    await sink.stop();
    return round(rss, 1);
  } catch {
    return null;
  }
}

/** --clients: the raw publisher against mqtt.js, both against the sink (which one is the bottleneck). */
async function compareClients(mosquitto: string | null): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const scenario of ALL_SCENARIOS.slice(0, 2)) {
    for (const client of ['raw', 'mqttjs']) {
      const cell = await runCell('sink', scenario, 0, mosquitto, [], ['--client', client]);
      out.push({ scenario: scenario.id, client, readingsPerSec: cell.readingsPerSec, pubackMs: cell.pubackMs, publisherCpuSeconds: cell.publisher?.['cpuSeconds'] ?? null, error: cell.error });
      log(`  client ${client.padEnd(6)} ${scenario.id.padEnd(14)} ${cell.ok ? `${fmtInt(cell.readingsPerSec)} readings/s` : `FAILED: ${cell.error}`}`);
    }
  }
  return out;
}

/** bench/alert-bench.ts in a process of its own (the same runtime as the other children); its one JSON line. */
async function runAlertBench(): Promise<AlertBenchResult | { error: string }> {
  const child = spawnTs('alert-bench', 'alert-bench.ts', ['--json', ...(quick ? ['--quick'] : [])]);
  try {
    const line = await child.waitLine(isResult, quick ? 120_000 : 600_000);
    return line as unknown as AlertBenchResult;
  } catch (err) {
    return { error: `${(err as Error).message} ${child.stderrTail()}`.trim() };
  } finally {
    await child.stop(1000);
  }
}

/** bench/sse-fanout-bench.ts in its own process (it forks its servers and clients): its table and its JSON line. */
async function runSseFanout(): Promise<Record<string, unknown>> {
  const child = spawnTs('sse-fanout', 'sse-fanout-bench.ts', ['--json', ...(quick ? ['--quick'] : [])]);
  try {
    const line = await child.waitLine((l) => typeof l['sseFanout'] === 'object', 600_000);
    const text = child.lines
      .filter((l) => typeof l['text'] === 'string')
      .map((l) => String(l['text']))
      .join('\n');
    return { text, result: line['sseFanout'] };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    await child.stop(5000);
  }
}

async function main(): Promise<void> {
  const started = monoMs();
  const date = new Date().toISOString().slice(0, 10);
  selfCheck();
  let runtimeNote = 'node --import tsx (TypeScript source)';
  if (!args.has('tsx')) {
    try {
      const b = buildForBench();
      setRuntime('build');
      runtimeNote = `node on a plain-JS transpile of gateway/ and bench/ (${b.files} files, ${b.ms} ms)`;
    } catch (err) {
      log(`could not transpile for the benchmark (${(err as Error).message}); running the TypeScript sources through tsx`);
    }
  }
  const mosquitto = findMosquitto();
  let mosquittoVersion: string | null = null;
  if (mosquitto !== null) {
    try {
      const v = spawnBinary('mosquitto-version', mosquitto, ['-h']);
      await v.exited;
      mosquittoVersion = /mosquitto version (\S+)/.exec(v.lines.map((l) => String(l['text'] ?? '')).join('\n'))?.[1] ?? 'unknown';
    } catch {
      mosquittoVersion = 'unknown';
    }
  }
  if (profileMode) return runProfiles(date, mosquitto, runtimeNote);
  const idleRssMb = await idleProcessRss();

  let suts: SutName[] = ['sink', 'aedes', 'mosquitto', 'pulsegate'];
  if (mosquitto === null) {
    log('mosquitto is not installed: its rows are skipped (apt-get install mosquitto)');
    suts = suts.filter((s) => s !== 'mosquitto');
  }
  if (onlySuts.length > 0) suts = suts.filter((s) => onlySuts.includes(s));
  log(
    `pulsegate bench (${settings.mode}): ${settings.reps} rep(s) x ${SCENARIOS.length} scenarios x ${suts.length} systems, ` +
      `${settings.warmupS} s warm-up + ${settings.durationS} s measured each; seed ${settings.seed}; ${cpus().length} cores${settings.cores === null ? '' : ` (--cores ${settings.cores}: systems under test on CPUs ${settings.cores === 1 ? '0' : `0-${settings.cores - 1}`}, load generators ${settings.cores >= cpus().length ? 'not pinned' : 'on the others'})`}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  );

  const cells: CellResult[] = [];
  let gatewayError: string | null = null;
  for (let rep = 0; rep < settings.reps; rep++) {
    for (const scenario of SCENARIOS) {
      // Rotate the order every repetition, so that no system always runs right after another.
      const order = suts.map((_, i) => suts[(i + rep) % suts.length]!);
      for (const sut of order) {
        if (sut === 'pulsegate' && gatewayError !== null) continue;
        let cell: CellResult;
        try {
          cell = await runCell(sut, scenario, rep, mosquitto);
        } catch (err) {
          const message = (err as Error).message;
          if (sut === 'pulsegate') gatewayError = message;
          cell = { scenario: scenario.id, sut, rep, ok: false, error: message } as CellResult;
        }
        cells.push(cell);
        log(
          `  rep ${rep + 1} ${scenario.id.padEnd(14)} ${SUT_LABEL[sut].padEnd(17)} ` +
            (cell.ok ? `${fmtInt(cell.readingsPerSec).padStart(11)} readings/s` : `FAILED: ${(cell.error ?? '').split('\n')[0]}`),
        );
      }
    }
  }

  const clients = args.has('clients') ? await compareClients(mosquitto) : null;

  let replay: ReplayResult | null = null;
  if (suts.includes('pulsegate') && gatewayError === null && !args.has('no-replay')) {
    log(`  replay: logging ${fmtInt(settings.replayRecords)} single-reading records, kill -9, restart x${settings.reps} ...`);
    replay = await runReplay();
    log(`  replay: ${replay.error ?? `${fmtInt(replay.recordsPerSec)} records/s`}`);
  }

  let alerts: AlertBenchResult | { error: string } | null = null;
  if (!args.has('no-alerts')) {
    log('  alerts: rule evaluation per window ...');
    alerts = await runAlertBench();
    log(`  alerts: ${'error' in alerts ? `FAILED: ${alerts.error}` : 'done'}`);
  }
  let alertLatency: AlertLatencyResult | null = null;
  if (suts.includes('pulsegate') && gatewayError === null && !args.has('no-alert-latency')) {
    log('  alert latency: QoS 1 maximum, then half of it as load with an alert probe ...');
    alertLatency = await runAlertLatencyBench({ quick, seed: settings.seed });
    log(`  alert latency: ${alertLatency.error ?? `p50 ${alertLatency.p50Ms} ms, p99 ${alertLatency.p99Ms} ms`}`);
  }
  // Sparkplug B ingest beside the native protobuf path, one gateway, same run (bench/sparkplug-bench.ts).
  let sparkplug: SparkplugBenchResult | { error: string } | null = null;
  if (suts.includes('pulsegate') && gatewayError === null && !args.has('no-sparkplug')) {
    log('  sparkplug: native protobuf vs Sparkplug B DDATA, one gateway ...');
    sparkplug = await runSparkplugBench(sparkplugBenchSettings(args, quick), log).catch((err: unknown) => ({ error: (err as Error).message }));
  }
  let sseFanout: Record<string, unknown> | null = null;
  if (!args.has('no-sse')) {
    log(`  sse fan-out: ${quick ? '500 and 2000' : '1000 and 10000'} clients, raw node:http broadcaster vs the delivery hub ...`);
    sseFanout = await runSseFanout();
  }
  // Mapped JSON ingest (ingest.sources) beside the native protobuf path: bench/mapped-ingest-bench.ts.
  let mapped: Record<string, unknown> | null = null;
  let mappedText: string[] = [];
  if (suts.includes('pulsegate') && gatewayError === null && !args.has('no-mapped')) {
    log('  mapped ingest: bench/mapped-ingest-bench.ts ...');
    // The harness itself runs from the TypeScript sources (as this one does); its gateway and
    // publisher processes run on this run's runtime (--runtime).
    const runtime = getRuntime();
    setRuntime('tsx');
    const child = spawnTs('mapped-ingest', 'mapped-ingest-bench.ts', ['--json', '--runtime', runtime, '--reps', String(settings.reps), ...(quick ? ['--quick'] : [])]);
    setRuntime(runtime);
    const code = await child.exited;
    const lines = child.lines.map((l) => String(l['text'] ?? JSON.stringify(l)));
    const last = child.lines.at(-1);
    if (code === 0 && last !== undefined && 'decode' in last) {
      mapped = last;
      mappedText = lines.slice(0, -1).filter((l) => l.trim() !== '' && !l.startsWith('wrote '));
    } else mappedText = [`mapped ingest: FAILED (exit ${String(code)}): ${[...lines.slice(-3), child.stderrTail()].join(' / ')}`];
  }
  let pushProxy: PushProxyBenchResult | null = null;
  if (!args.has('no-push-proxy')) {
    log('  push proxy: pushes/s to the local push service, hand-offs held per GB of RSS ...');
    pushProxy = await runPushProxyBench();
    log(`  push proxy: ${pushProxy.error ?? `${fmtInt(pushProxy.pushesPerSec)} pushes/s, ${fmtInt(pushProxy.handoffsPerGbRss)} hand-offs per GB of RSS`}`);
  }

  const rows = summarizeRows(cells, suts);
  const targets = evaluateTargets(rows, replay, cells);
  const totalS = (monoMs() - started) / 1000;

  const out: string[] = [];
  out.push('');
  out.push(`pulsegate bench, ${settings.mode} run, ${date}: medians of ${settings.reps} rep(s), ${settings.durationS} s measured each (total ${totalS.toFixed(0)} s)`);
  out.push(`publisher: raw MQTT 3.1.1, ${settings.connections} connections x ${settings.devicesPerConnection} devices, QoS 1 window ${settings.inflight}/connection, protobuf payloads, seed ${settings.seed}`);
  if (mosquitto !== null) out.push(`mosquitto ${mosquittoVersion ?? ''} routes to one counting subscriber; bare aedes counts in a 'publish' listener; the gateway counts pulsegate_readings_received_total`);
  out.push(`node processes: ${runtimeNote}; an idle one (the sink) holds ${fix(idleRssMb, 0)} MB resident (measured now)`);
  out.push('');
  out.push(renderTable(rows));
  out.push('');
  out.push('readings/s: what the system under test counted between two samples; x aedes / x mosq: ratio to those rows of the same scenario in this run;');
  out.push('of ceil: share of the publisher ceiling (the same publisher against a sink that discards bytes); PUBACK: publisher write -> PUBACK at QoS 1;');
  out.push(`emit: probe reading published -> its window emitted by the gateway (a bridge device, ${settings.probeWindowMs} ms windows, one reading / ${settings.probePeriodMs} ms, on its own connection during the load);`);
  out.push(`  '>' = a lower bound: some probe windows were still not emitted when the run ended (the gateway was that far behind).`);
  const counters = renderGatewayCounters(rows, cells);
  if (counters !== null) {
    out.push('');
    out.push(counters);
  }
  if (clients !== null) {
    out.push('');
    out.push('publisher clients against the sink (--clients): ' + clients.map((c) => `${String(c['client'])} ${String(c['scenario'])} ${fmtInt(c['readingsPerSec'] as number | null)}/s`).join(', '));
  }
  if (gatewayError !== null) {
    out.push('');
    out.push('PULSEGATE GATEWAY NOT MEASURED: it did not start:');
    out.push('  ' + gatewayError.split('\n').slice(0, 8).join('\n  '));
  }
  if (replay !== null) {
    out.push('');
    if (replay.error !== undefined) out.push(`recovery replay: FAILED: ${replay.error}`);
    else {
      const runs = replay.runs.map((r) => (r.error !== undefined ? `error: ${r.error}` : `${fmtInt(r.replayedRecords)} records in ${r.ms} ms, ${fmtInt(r.passedOverRecords)} of them in logged store batches`)).join('; ');
      out.push(
        `recovery replay: ${fmtInt(replay.recordsPerSec)} records/s (median; 1 reading per record; ${fmtInt(replay.records)} published, log ${fix((replay.logBytes ?? 0) / 1_048_576, 1)} MB; ${runs})`,
      );
      const rss = replay.runs.map((r) => r.peakRssMb).filter((v): v is number => v !== null);
      if (rss.length > 0) out.push(`  peak RSS after replay ${fix(Math.max(...rss), 0)} MB; start to ready ${replay.runs.map((r) => r.startMs ?? '-').join(' / ')} ms`);
    }
  }
  if (alerts !== null) {
    out.push('');
    out.push('error' in alerts ? `alert bench: FAILED: ${alerts.error}` : formatAlertBench(alerts));
  }
  if (alertLatency !== null) {
    out.push('');
    out.push(formatAlertLatency(alertLatency));
  }
  if (sparkplug !== null) {
    out.push('');
    out.push(
      'error' in sparkplug
        ? `sparkplug B ingest: FAILED: ${sparkplug.error}`
        : `sparkplug B ingest: ${fmtInt(sparkplug.sparkplugReadingsPerSec)} readings/s beside native protobuf ${fmtInt(sparkplug.nativeReadingsPerSec)} readings/s (ratio ${sparkplug.ratio}; gateway CPU ${String(sparkplug.sparkplugCpuUsPerReading)} vs ${String(sparkplug.nativeCpuUsPerReading)} us/reading; QoS 1, 1 reading/publish, one gateway, medians of ${sparkplug.settings.reps})`,
    );
  }
  if (sseFanout !== null) {
    out.push('');
    out.push(typeof sseFanout['text'] === 'string' ? sseFanout['text'].trim() : `SSE fan-out: FAILED: ${String(sseFanout['error'])}`);
  }
  if (mappedText.length > 0) {
    out.push('');
    out.push(...mappedText);
  }
  if (pushProxy !== null) {
    out.push('');
    if (pushProxy.error !== undefined) out.push(`push proxy: FAILED: ${pushProxy.error}`);
    else {
      out.push(
        `push proxy: ${fmtInt(pushProxy.pushesPerSec)} pushes/s to the local push service (${fmtInt(pushProxy.pushes)} pushes, ${fmtInt(pushProxy.phones)} phones x ${fmtInt(pushProxy.events)} alerts; ` +
          `proxy CPU ${fix(pushProxy.proxyCpuMsPerPush)} ms per push; the push service verifies and decrypts every one, ${fix(pushProxy.pushServiceCores)} cores); ` +
          `${fix(pushProxy.ofRawWebPush)}x of the same pushes sent straight with web-push (${fmtInt(pushProxy.rawWebPushPerSec)}/s)`,
      );
      out.push(`  ${fmtInt(pushProxy.handoffsPerGbRss)} hand-offs held per GB of RSS (${fmtInt(pushProxy.held)} held: RSS ${fix(pushProxy.rssBeforeMb, 0)} -> ${fix(pushProxy.rssAfterMb, 0)} MB, ${fix(pushProxy.kibPerHandoff)} KiB each; ${fmtInt(pushProxy.gatewayConnections)} gateway connection)`);
    }
  }
  out.push('');
  out.push(table(['target', 'goal', 'measured', 'result'], targets.map((t) => [t.name, t.goal, t.measured, t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'MISS']), [false, false, true, false]));

  const resultsDir = join(BENCH_DIR, 'results');
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, `${date}.json`);
  const json = {
    date,
    finishedAt: new Date().toISOString(),
    totalSeconds: round(totalS, 1),
    settings,
    runtime: runtimeNote,
    idleRssMb,
    clients,
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? null, node: process.version, loadavgAtEnd: loadavg() },
    mosquitto: mosquitto === null ? null : { path: mosquitto, version: mosquittoVersion },
    gateway: { measured: gatewayError === null && suts.includes('pulsegate'), error: gatewayError },
    rows,
    replay,
    alerts,
    sseFanout: sseFanout?.['result'] ?? sseFanout,
    mapped,
    pushProxy,
    targets,
    cells,
    alertLatency,
    sparkplug,
  };
  writeFileSync(path, JSON.stringify(json, null, 2) + '\n');
  out.push('');
  out.push(`wrote bench/results/${date}.json`);
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
