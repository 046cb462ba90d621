/**
 * Alert bench. Sections, each a figure of its own:
 *
 *   1. rule evaluation: AlertEngine.onWindow() per emitted window, ns/window, over many keys:
 *        - the built-in rules (alerts.defaultRules) on heart-rate 10 s windows (3 rules match)
 *          and on bridge 1 min windows (1 rule, `where vehicleClass: TRUCK`);
 *        - 10 and 100 threshold rules on heart-rate 10 s windows.
 *      In-process, the engine alone: its transitions go to a `record` that only counts (the log
 *      append is the log's cost, measured by bench/log-bench.ts), its metrics to a registry as in
 *      the gateway. Windows are built before the timed section; a few rounds warm the JIT first.
 *   2. publish-to-alert latency (reading published -> MQTT alert): not measured yet; its place is
 *      `publishToAlert` below, and its figures go in the same JSON line.
 *
 *   npx tsx bench/alert-bench.ts [--quick] [--json]
 *
 * --json prints one JSON line ({"event":"result", ...}) for bench/run.ts instead of the table.
 */
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { AlertEngine } from '../gateway/alerts/alert-engine.js';
import type { Clock } from '../gateway/clock.js';
import type { AlertRuleConfig } from '../gateway/config/config.js';
import { compileAlertRules } from '../gateway/config/alert-rules.js';
import { createKindRegistry } from '../gateway/kinds/registry.js';
import type { WindowResult } from '../gateway/window/types.js';

const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');

export interface RuleEvaluationFigure {
  readonly name: string;
  readonly kind: string;
  /** Rules of the engine / rules that evaluate each window of this kind. */
  readonly rules: number;
  readonly rulesPerWindow: number;
  readonly keys: number;
  readonly windows: number;
  /** CPU time of the process (user + system) per window: what the engine costs, however busy the machine is. */
  readonly nsPerWindow: number;
  /** Wall time per window (inflated by whatever else runs on the machine). */
  readonly wallNsPerWindow: number;
  /** nsPerWindow / rulesPerWindow. */
  readonly nsPerRuleEvaluation: number;
  /** FIRING + RESOLVED during the timed rounds. */
  readonly transitions: number;
  readonly heapUsedMb: number;
}

export interface AlertBenchResult {
  readonly event: 'result';
  readonly bench: 'alert';
  readonly quick: boolean;
  readonly ruleEvaluation: readonly RuleEvaluationFigure[];
  /** Reading published -> MQTT alert, p50/p99 ms: not measured yet (null). */
  readonly publishToAlert: null;
}

let seed = 0x5eed;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const T0 = 1_764_000_000_000;
const kinds = createKindRegistry();
const windowConfig = { defaultSizesMs: [10_000, 60_000], sizesMs: {} };

/**
 * Per key a run of windows in event-time order. Heart rate: a resting/working level per athlete,
 * with spikes (210 bpm for 2-4 windows, about 1 window in 100) and flatlines (10 bpm, rarer), so
 * the rules go through pending, firing and resolved. Bridge: trucks per lane and minute, with
 * surges of 30.
 */
function heartRateWindows(keys: number, round: number, spikes: Map<number, number>): WindowResult[] {
  const out: WindowResult[] = new Array<WindowResult>(keys);
  const start = T0 + round * 10_000;
  for (let k = 0; k < keys; k++) {
    let left = spikes.get(k) ?? 0;
    if (left === 0 && rnd() < 0.01) left = 2 + Math.floor(rnd() * 3);
    const flat = left === 0 && rnd() < 0.001;
    const base = flat ? 10 : left > 0 ? 205 : 70 + (k % 90) + Math.floor(rnd() * 10);
    spikes.set(k, Math.max(0, left - 1));
    const min = base - 3;
    const max = base + (left > 0 ? 8 : 4);
    out[k] = {
      kind: 'heart-rate',
      deviceId: `athlete-${k}`,
      sizeMs: 10_000,
      slideMs: 10_000,
      start,
      end: start + 10_000,
      group: {},
      values: { bpm_count: 50, bpm_min: min, bpm_max: max, bpm_sum: base * 50, bpm_mean: base, bpm_last: base },
      revision: 0,
    };
  }
  return out;
}

const CLASSES = ['CAR', 'BUS', 'TRUCK'];
function bridgeWindows(bridges: number, round: number): WindowResult[] {
  const out: WindowResult[] = [];
  const start = T0 + round * 60_000;
  for (let b = 0; b < bridges; b++) {
    for (const vehicleClass of CLASSES) {
      for (const lane of ['1', '2']) {
        const count = vehicleClass === 'TRUCK' ? (rnd() < 0.02 ? 30 : 3 + Math.floor(rnd() * 8)) : 10 + Math.floor(rnd() * 40);
        out.push({ kind: 'bridge', deviceId: `bridge-${b}`, sizeMs: 60_000, slideMs: 60_000, start, end: start + 60_000, group: { vehicleClass, lane }, values: { count, speedKmh_mean: 80, speedKmh_max: 120 }, revision: 0 });
      }
    }
  }
  return out;
}

/** `n` threshold rules on heart-rate 10 s windows: spread over the aggregates, levels and `for`. */
function syntheticRules(n: number): AlertRuleConfig[] {
  const aggregates = ['bpm_mean', 'bpm_max', 'bpm_min'] as const;
  return Array.from({ length: n }, (_, i): AlertRuleConfig => {
    const aggregate = aggregates[i % aggregates.length]!;
    const below = aggregate === 'bpm_min';
    const level = below ? 20 + (i % 30) : 150 + (i % 60);
    return {
      id: `rule-${i}`,
      kind: 'threshold',
      severity: i % 3 === 0 ? 'critical' : 'warning',
      sensorKind: 'heart-rate',
      devices: i % 4 === 3 ? 'athlete-1*' : '*',
      window: '10s',
      aggregate,
      ...(below ? { below: level, clear: level + 10 } : { above: level, clear: level - 10 }),
      ...(i % 5 === 0 ? { for: '30s' } : {}),
    };
  });
}

function engineFor(rules: AlertRuleConfig[], defaultRules: boolean, maxKeys: number): { engine: AlertEngine; count: () => number; ruleCount: number } {
  const { rules: compiled, problems } = compileAlertRules({ enabled: true, defaultRules, rules, maxKeys, silenceSchedule: '*/5 * * * * *' }, kinds, windowConfig);
  if (problems.length > 0) throw new Error(`bench rules: ${problems.join('; ')}`);
  let offset = 0;
  let transitions = 0;
  const clock: Clock = { now: () => T0 };
  const engine = new AlertEngine({ rules: compiled, maxKeys, clock, registry: new Registry(), record: () => ({ offset: offset++, logged: false }) });
  engine.onTransition(() => transitions++);
  return { engine, count: () => transitions, ruleCount: compiled.length };
}

/** Threshold rules of `kind`: the ones onWindow evaluates for each of its windows. */
function rulesPerWindowOf(rules: AlertRuleConfig[], defaultRules: boolean, kind: string): number {
  const all = compileAlertRules({ enabled: true, defaultRules, rules, maxKeys: 1, silenceSchedule: '*/5 * * * * *' }, kinds, windowConfig).rules;
  return all.filter((r) => r.kind === 'threshold' && r.sensorKind === kind).length;
}

/** Runs `warmup` untimed rounds, then `rounds` timed ones, of the windows `make(round)`. */
function measure(name: string, kind: string, rules: AlertRuleConfig[], defaultRules: boolean, keys: number, make: (round: number) => WindowResult[], warmup: number, rounds: number): RuleEvaluationFigure {
  const perRound = make(0).length;
  const { engine, count, ruleCount } = engineFor(rules, defaultRules, Math.max(100_000, perRound * Math.max(1, rules.length + 6)));
  for (let r = 0; r < warmup; r++) for (const w of make(r)) engine.onWindow(w);
  const before = count();
  let elapsedMs = 0;
  let cpuUs = 0;
  let windows = 0;
  for (let r = warmup; r < warmup + rounds; r++) {
    const batch = make(r);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < batch.length; i++) engine.onWindow(batch[i]!);
    elapsedMs += performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpuUs += c.user + c.system;
    windows += batch.length;
  }
  const rulesPerWindow = rulesPerWindowOf(rules, defaultRules, kind);
  const nsPerWindow = (cpuUs * 1e3) / windows;
  return {
    name,
    kind,
    rules: ruleCount,
    rulesPerWindow,
    keys,
    windows,
    nsPerWindow: Math.round(nsPerWindow),
    wallNsPerWindow: Math.round((elapsedMs * 1e6) / windows),
    nsPerRuleEvaluation: Math.round(nsPerWindow / Math.max(1, rulesPerWindow)),
    transitions: count() - before,
    heapUsedMb: Math.round(process.memoryUsage().heapUsed / 1048576),
  };
}

function ruleEvaluation(): RuleEvaluationFigure[] {
  const athletes = quick ? 2_000 : 10_000;
  const bridges = quick ? 200 : 1_000;
  const rounds = quick ? 10 : 30;
  const warmup = 3;
  const figures: RuleEvaluationFigure[] = [];
  const hr = (keys: number) => {
    const spikes = new Map<number, number>();
    return (round: number) => heartRateWindows(keys, round, spikes);
  };
  figures.push(measure('built-in rules, heart-rate 10 s', 'heart-rate', [], true, athletes, hr(athletes), warmup, rounds));
  figures.push(measure('built-in rules, bridge 1 min', 'bridge', [], true, bridges * 6, (r) => bridgeWindows(bridges, r), warmup, rounds));
  figures.push(measure('10 rules, heart-rate 10 s', 'heart-rate', syntheticRules(10), false, athletes, hr(athletes), warmup, rounds));
  // Entries are rules x keys: 100 rules over a tenth of the keys keep the engine's map as large.
  figures.push(measure('100 rules, heart-rate 10 s', 'heart-rate', syntheticRules(100), false, athletes / 10, hr(athletes / 10), warmup, rounds));
  return figures;
}

/*
 * Publish-to-alert latency goes here: a gateway (bench/gateway-server.ts) under half the QoS 1
 * maximum, a probe device whose readings cross a rule, and an MQTT subscriber on alerts/#; the
 * figure is p50/p99 ms from the probe's publish to the alert's arrival. Return it in place of null.
 */
async function publishToAlert(): Promise<null> {
  return null;
}

async function main(): Promise<void> {
  const result: AlertBenchResult = { event: 'result', bench: 'alert', quick, ruleEvaluation: ruleEvaluation(), publishToAlert: await publishToAlert() };
  if (json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  process.stdout.write(formatAlertBench(result) + '\n');
}

/** The figures as printed by this bench and by `npm run bench`. */
export function formatAlertBench(r: Pick<AlertBenchResult, 'ruleEvaluation' | 'publishToAlert' | 'quick'>): string {
  const lines = [`alert rule evaluation${r.quick ? ' (quick)' : ''}: AlertEngine.onWindow per emitted window, CPU ns (wall ns in brackets); in-process, transitions counted, not logged`];
  lines.push(`  ${'rules (evaluating a window / all)'.padEnd(42)} ${'keys'.padStart(6)} ${'windows'.padStart(8)} ${'ns/window'.padStart(10)} ${'(wall)'.padStart(9)} ${'ns/rule'.padStart(8)} ${'transitions'.padStart(11)}`);
  for (const f of r.ruleEvaluation) {
    lines.push(
      `  ${`${f.name} (${f.rulesPerWindow} / ${f.rules})`.padEnd(42)} ${String(f.keys).padStart(6)} ${String(f.windows).padStart(8)} ${String(f.nsPerWindow).padStart(10)} ${`(${f.wallNsPerWindow})`.padStart(9)} ${String(f.nsPerRuleEvaluation).padStart(8)} ${String(f.transitions).padStart(11)}`,
    );
  }
  lines.push(`publish-to-alert latency: ${r.publishToAlert === null ? 'not measured yet' : JSON.stringify(r.publishToAlert)}`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && /alert-bench\.(ts|js)$/.test(process.argv[1])) {
  main().catch((err: unknown) => {
    process.stderr.write(`alert bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
