/**
 * Mapped JSON ingest (ingest.sources) beside the native protobuf path, in one run:
 *
 *   npx tsx bench/mapped-ingest-bench.ts [--quick] [--reps N] [--duration S] [--json]
 *
 * 1. decode: in-process, the work ingest does per publish before the log (topic routing, decode
 *    and validation, and for devices without seq the content-hash dedup), on pre-built payloads:
 *    protobuf heart-rate (the fast path), the same reading as JSON on sensors/heart-rate/<id>,
 *    Tasmota JSON on tele/<id>/SENSOR (ts from its Time field) and Zigbee2MQTT JSON on
 *    zigbee2mqtt/<id> (arrival time, content dedup), mapped by examples/real-sensors.yaml.
 * 2. gateway: the gateway as its own process with that file's kinds and sources, a fresh one per
 *    shape, loaded by bench/mapped-publisher.ts (raw MQTT, QoS 1, the same client for every
 *    shape); readings/s is what the gateway counted (pulsegate_readings_received_total) between
 *    two samples, medians over --reps.
 * Ratios are to the protobuf row of the same run. With --json the last stdout line is the result
 * as JSON (bench/run.ts reads it); the figures are also written to
 * bench/results/<date>-mapped-ingest.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../gateway/config/load-config.js';
import { ContentDedup } from '../gateway/ingest/content-dedup.js';
import { createPayloadDecoder } from '../gateway/ingest/payload-decoder.js';
import { createTopicRouter } from '../gateway/ingest/topic-router.js';
import { createConfiguredKindRegistry } from '../gateway/kinds/registry.js';
import { Args } from './lib/args.js';
import { buildForBench } from './lib/build.js';
import { BENCH_DIR, ROOT, setRuntime, sleep, spawnTs } from './lib/procs.js';
import { median } from './lib/stats.js';
import { startPulsegate } from './lib/suts.js';
import { heartRateLen, writeHeartRate } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const quick = args.has('quick');
// Child processes run from the plain-JS build as in bench/run.ts (which passes --runtime build
// when it has made one already); --tsx keeps them on the TypeScript sources.
let runtimeNote = 'node --import tsx (TypeScript source)';
if (args.str('runtime', '') === 'build') {
  setRuntime('build');
  runtimeNote = 'node on the plain-JS transpile made by bench/run.ts';
} else if (args.str('runtime', '') === 'tsx') {
  runtimeNote = 'node --import tsx (TypeScript source)';
} else if (!args.has('tsx')) {
  try {
    const b = buildForBench();
    setRuntime('build');
    runtimeNote = `node on a plain-JS transpile of gateway/ and bench/ (${b.files} files, ${b.ms} ms)`;
  } catch (err) {
    process.stderr.write(`could not transpile for the benchmark (${(err as Error).message}); running the TypeScript sources through tsx\n`);
  }
}
const settings = {
  mode: quick ? 'quick' : 'full',
  reps: Math.max(1, Math.floor(args.num('reps', quick ? 1 : 3))),
  durationS: args.num('duration', quick ? 1.5 : 3),
  warmupS: args.num('warmup', quick ? 1 : 2),
  decodePublishes: args.num('decode-publishes', quick ? 100_000 : 500_000),
  connections: args.num('connections', 4),
  devices: args.num('devices', 25),
  inflight: args.num('inflight', 128),
};
const EXAMPLE = join(ROOT, 'examples', 'real-sensors.yaml');
const SHAPES = ['protobuf', 'json', 'tasmota', 'zigbee'] as const;
type Shape = (typeof SHAPES)[number];
const LABEL: Record<Shape, string> = {
  protobuf: 'protobuf on sensors/heart-rate/<id> (native)',
  json: 'JSON on sensors/heart-rate/<id> (native)',
  tasmota: 'Tasmota JSON on tele/<id>/SENSOR (mapped, ts from Time)',
  zigbee: 'Zigbee2MQTT JSON on zigbee2mqtt/<id> (mapped, arrival time, content dedup)',
};
const log = (s: string): void => void process.stderr.write(s + '\n');
const fmt = (n: number | null): string => (n === null ? '-' : Math.round(n).toLocaleString('en-US'));

// ---- 1. decode, in-process -------------------------------------------------------------------

function payloads(shape: Shape, n: number, now: number): { topic: string; payload: Buffer }[] {
  const out: { topic: string; payload: Buffer }[] = [];
  for (let i = 0; i < n; i++) {
    const dev = `d${i % 100}`;
    const seq = Math.floor(i / 100) + 1;
    const bpm = 60 + (i % 100);
    if (shape === 'protobuf') {
      const buf = Buffer.allocUnsafe(heartRateLen(seq, now, bpm));
      writeHeartRate(buf, 0, seq, now, bpm);
      out.push({ topic: `sensors/heart-rate/${dev}`, payload: buf });
    } else if (shape === 'json') {
      out.push({ topic: `sensors/heart-rate/${dev}`, payload: Buffer.from(`{"seq":${seq},"ts":${now},"bpm":${bpm}}`) });
    } else if (shape === 'tasmota') {
      const power = 100 + (i % 1000);
      const time = new Date(now - (n - i) * 10).toISOString().slice(0, 19);
      out.push({
        topic: `tele/${dev}/SENSOR`,
        payload: Buffer.from(`{"Time":"${time}","ENERGY":{"TotalStartTime":"2026-01-01T00:00:00","Total":${(i / 1000).toFixed(3)},"Yesterday":1.234,"Today":0.456,"Period":0,"Power":${power},"ApparentPower":${power + 5},"ReactivePower":30,"Factor":0.95,"Voltage":230,"Current":${(power / 230).toFixed(3)}}}`),
      });
    } else {
      out.push({ topic: `zigbee2mqtt/${dev}`, payload: Buffer.from(`{"battery":97,"humidity":${(40 + (i % 200) / 10).toFixed(1)},"linkquality":${i % 256},"temperature":${(20 + (i % 500) / 100).toFixed(2)},"voltage":2980}`) });
    }
  }
  return out;
}

function decodeStage(): Record<Shape, number> {
  const example = parseYaml(readFileSync(EXAMPLE, 'utf8')) as { kinds: unknown; ingest: { sources: unknown } };
  const config = loadConfig({ env: {}, overrides: { kinds: example.kinds, ingest: { sources: example.ingest.sources } } });
  const kinds = createConfiguredKindRegistry(config.kinds);
  const router = createTopicRouter({ kinds, sources: config.ingest.sources, limits: config.ingest });
  const decoder = createPayloadDecoder(kinds, config.ingest);
  const result = {} as Record<Shape, number>;
  for (const shape of SHAPES) {
    const now = Date.now();
    const items = payloads(shape, settings.decodePublishes, now);
    const dedup = new ContentDedup(100_000);
    const rates: number[] = [];
    for (let rep = 0; rep < settings.reps + 1; rep++) {
      let readings = 0;
      const t0 = performance.now();
      for (const { topic, payload } of items) {
        const route = router.route(topic)!;
        const kind = kinds.get(route.kind)!;
        const r = route.mapping === null ? decoder.decode(kind, route.deviceId, payload, now) : route.mapping.decode(kind, route.deviceId, payload, now);
        if (route.mapping?.contentDedupHorizonMs != null && dedup.isDuplicate(route.kind + '\u0000' + route.deviceId, payload, now + rep * 10_000, route.mapping.contentDedupHorizonMs)) continue;
        readings += r.readings.length;
      }
      const s = (performance.now() - t0) / 1000;
      if (readings !== items.length) throw new Error(`decode ${shape}: ${readings} readings of ${items.length} publishes`);
      if (rep > 0) rates.push(readings / s); // the first pass warms up
    }
    result[shape] = median(rates) ?? 0;
    log(`  decode  ${shape.padEnd(8)} ${fmt(result[shape]).padStart(11)} readings/s`);
  }
  return result;
}

// ---- 2. the gateway, over MQTT ------------------------------------------------------------------

async function gatewayCell(shape: Exclude<Shape, 'json'>, rep: number): Promise<{ readingsPerSec: number; rejected: number; contentDuplicates: number }> {
  const gw = await startPulsegate({ configFile: EXAMPLE });
  const pub = spawnTs('mapped-publisher', 'mapped-publisher.ts', [
    '--port', String(gw.mqttPort), '--shape', shape, '--connections', String(settings.connections),
    '--devices', String(settings.devices), '--inflight', String(settings.inflight), '--prefix', `r${rep}`,
  ]);
  try {
    await pub.waitLine((l) => l['event'] === 'started', 30_000);
    await sleep(settings.warmupS * 1000);
    const a = await gw.sample(1);
    await sleep(settings.durationS * 1000);
    const b = await gw.sample(1);
    return {
      readingsPerSec: (b.metrics!['receivedAll']! - a.metrics!['receivedAll']!) / ((b.at - a.at) / 1000),
      rejected: (b.metrics!['rejected'] ?? 0) - (a.metrics!['rejected'] ?? 0),
      contentDuplicates: b.metrics!['contentDuplicates'] ?? 0,
    };
  } finally {
    await pub.stop(5000).catch(() => pub.kill9());
    await gw.stop();
  }
}

async function gatewayStage(): Promise<Record<Exclude<Shape, 'json'>, { readingsPerSec: number | null; rejected: number }>> {
  const shapes = ['protobuf', 'tasmota', 'zigbee'] as const;
  const cells: Record<string, { readingsPerSec: number; rejected: number }[]> = { protobuf: [], tasmota: [], zigbee: [] };
  for (let rep = 0; rep < settings.reps; rep++) {
    // Rotate the order every repetition, so that no shape always runs first.
    for (let k = 0; k < shapes.length; k++) {
      const shape = shapes[(k + rep) % shapes.length]!;
      const c = await gatewayCell(shape, rep);
      cells[shape]!.push(c);
      log(`  gateway ${shape.padEnd(8)} rep ${rep + 1} ${fmt(c.readingsPerSec).padStart(11)} readings/s${c.rejected > 0 ? `  (${c.rejected} rejected!)` : ''}`);
    }
  }
  const out = {} as Record<Exclude<Shape, 'json'>, { readingsPerSec: number | null; rejected: number }>;
  for (const s of shapes) out[s] = { readingsPerSec: median(cells[s]!.map((c) => c.readingsPerSec)), rejected: cells[s]!.reduce((n, c) => n + c.rejected, 0) };
  return out;
}

// ---- main --------------------------------------------------------------------------------------

export interface MappedIngestResult {
  settings: typeof settings;
  runtime: string;
  decode: Record<Shape, number>;
  gateway: Record<'protobuf' | 'tasmota' | 'zigbee', { readingsPerSec: number | null; rejected: number }>;
}

log(`mapped ingest bench (${settings.mode}): ${settings.reps} rep(s); decode ${fmt(settings.decodePublishes)} publishes/shape; gateway ${settings.warmupS} s warm-up + ${settings.durationS} s measured per shape`);
const decode = decodeStage();
const gateway = await gatewayStage();
const result: MappedIngestResult = { settings, runtime: runtimeNote, decode, gateway };

const ratio = (v: number | null, base: number | null): string => (v === null || base === null || base === 0 ? '-' : `${(v / base).toFixed(2)}x`);
const lines = ['', `mapped JSON ingest beside the native protobuf path (${settings.mode}, medians of ${settings.reps}):`, ''];
lines.push(`${'payload'.padEnd(72)} ${'decode readings/s'.padStart(18)} ${'x pb'.padStart(6)} ${'gateway readings/s'.padStart(19)} ${'x pb'.padStart(6)}`);
for (const s of SHAPES) {
  const g = s === 'json' ? null : gateway[s].readingsPerSec;
  lines.push(`${LABEL[s].padEnd(72)} ${fmt(decode[s]).padStart(18)} ${ratio(decode[s], decode.protobuf).padStart(6)} ${fmt(g).padStart(19)} ${ratio(g, gateway.protobuf.readingsPerSec).padStart(6)}`);
}
lines.push('', 'decode: routing + decode + validation (+ content dedup) in-process, one reading per publish; gateway: its own process, QoS 1, one reading per publish,');
lines.push(`${settings.connections} connections x ${settings.devices} devices, ${settings.inflight} in flight per connection; counted by pulsegate_readings_received_total.`);
lines.push(`node processes: ${runtimeNote}; ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const date = new Date().toISOString().slice(0, 10);
mkdirSync(join(BENCH_DIR, 'results'), { recursive: true });
writeFileSync(join(BENCH_DIR, 'results', `${date}-mapped-ingest.json`), JSON.stringify({ date, ...result }, null, 2) + '\n');
lines.push(`wrote bench/results/${date}-mapped-ingest.json`);
process.stdout.write(lines.join('\n') + '\n');
if (args.has('json')) process.stdout.write(JSON.stringify(result) + '\n');
