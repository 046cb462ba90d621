/**
 * Where recovery replay spends its time (prints figures; not a pass/fail test).
 *
 *   npx tsx bench/replay-bench.ts [--records 300000] [--reps 3] [--stages A,B,C,D] [--cpu-prof FILE]
 *
 * Fills a log with N single-reading heart-rate ingest records (100 devices, seq +1 each), then
 * replays it in cumulative stages, each the median of --reps passes over the same log (read from
 * the page cache):
 *   A. read       the log's batched reader: chunks from disk, framing, CRC32 check per record
 *   B. + decode   ingest record, topic, protobuf decode and validation
 *   C. + process  dedup and windows (the pipeline without raw readings)
 *   D. gateway    the gateway's own recovery (startGateway on a copy of the data directory):
 *                 C plus raw readings re-batched into the store's outbox (encode + log append).
 *                 The filled log holds no store batches, so every raw reading is batched again:
 *                 a crash before any batch was appended. After a gateway's own run (npm run
 *                 bench's replay) the batches in the log cover most of them, which are passed over.
 * Each stage's records/s and its cost per record over the stage before it name the limit, with
 * the CPU time per record for A-C; for D also the time of the whole start (the log's own check,
 * the other passes over the tail).
 * --stages runs only some of them; --cpu-prof writes a V8 CPU profile of the stages run (not of
 * the fill), for bench/profile-summary.ts.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../gateway/config/load-config.js';
import { createEventBus } from '../gateway/events.js';
import { createIngestRecordReader } from '../gateway/ingest/ingest-record.js';
import { encodeIngestRecord } from '../gateway/log/ingest-record-format.js';
import { createPayloadDecoder } from '../gateway/ingest/payload-decoder.js';
import { SequenceTracker } from '../gateway/pipeline/sequence-tracker.js';
import { createKindRegistry } from '../gateway/kinds/registry.js';
import { createMessageLog } from '../gateway/log/message-log.js';
import { RECORD_TYPES } from '../gateway/log/types.js';
import { startGateway } from '../gateway/main.js';
import { createIngestMetrics } from '../gateway/ingest/ingest-metrics.js';
import { ReadingPipeline } from '../gateway/pipeline/reading-pipeline.js';
import { replayLog } from '../gateway/pipeline/recovery.js';
import { createWindowEngine } from '../gateway/window/window-engine.js';
import { Args } from './lib/args.js';
import { median } from './lib/stats.js';
import { heartRateLen, writeHeartRate } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const records = args.num('records', 300_000);
const reps = Math.max(1, Math.floor(args.num('reps', 3)));
const DEVICES = 100;
const only = new Set(args.str('stages', 'A,B,C,D').toUpperCase().split(','));

const base = mkdtempSync(join(tmpdir(), 'pulsegate-replay-bench-'));
const filled = join(base, 'filled');
const config = loadConfig({ env: {}, overrides: { dataDir: filled, logLevel: 'warn', mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true }, http: { port: 0, host: '127.0.0.1' } } });
const kinds = createKindRegistry();
const decoder = createPayloadDecoder(kinds, config.ingest);

async function fill(): Promise<void> {
  const log = await createMessageLog({ dir: config.log.dir });
  await log.start();
  const now = Date.now();
  const topics = Array.from({ length: DEVICES }, (_, d) => `sensors/heart-rate/replay-d${d}`);
  for (let i = 0; i < records; i++) {
    const seq = Math.floor(i / DEVICES) + 1;
    const ts = now - 60_000 + Math.floor(i / DEVICES) * 5;
    const payload = Buffer.allocUnsafe(heartRateLen(seq, ts, 60 + (i % 100)));
    writeHeartRate(payload, 0, seq, ts, 60 + (i % 100));
    log.append(RECORD_TYPES.ingest, encodeIngestRecord(now, topics[i % DEVICES]!, payload));
    if (i % 10_000 === 9_999) await log.whenDurable(log.nextOffset - 1);
  }
  await log.close();
}

/** One pass of stages A-C over the filled log: records/s, and the process's CPU µs per record (user + system). */
async function pass(stage: 'read' | 'decode' | 'process'): Promise<{ rate: number; cpuUs: number }> {
  const log = await createMessageLog({ dir: config.log.dir });
  await log.start();
  const registry = new Registry();
  const windows = createWindowEngine({ kinds, config: config.window, clock: { now: () => Date.now() } });
  // The windows' emissions go to the event bus, where nothing listens (no raw readings, no store).
  const pipeline = new ReadingPipeline({
    kinds,
    tracker: new SequenceTracker(config.ingest.seqWindow, config.ingest.maxDevices),
    windows,
    events: createEventBus(),
    metrics: createIngestMetrics(registry, [...kinds.keys()]),
    registry,
    clock: { now: () => Date.now() },
  });
  const reader = createIngestRecordReader(kinds, decoder);
  let n = 0;
  let readings = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  if (stage === 'process') {
    // The gateway's own replay loop (gateway/pipeline/recovery.ts).
    ({ records: n, readings } = await replayLog(log, log.firstOffset, pipeline, reader));
  } else {
    for await (const batch of log.readBatches(log.firstOffset)) {
      for (const record of batch) {
        if (record.type !== RECORD_TYPES.ingest) continue;
        n++;
        if (stage === 'read') continue;
        readings += reader.readings(record.payload, reader.receivedAt(record.payload)).length;
      }
    }
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await log.close();
  if (n !== records || (stage !== 'read' && readings !== records)) throw new Error(`stage ${stage}: ${n} records, ${readings} readings, expected ${records}`);
  return { rate: n / (ms / 1000), cpuUs: (cpu.user + cpu.system) / n };
}

/** Stage D's whole start (log start, priming, replay, outbox scan, listeners), ms per pass. */
const startMs: number[] = [];

/** Stage D: the gateway's own recovery on a fresh copy of the data directory. */
async function gatewayPass(rep: number): Promise<{ rate: number; cpuUs: null }> {
  const dir = join(base, `gw-${rep}`);
  cpSync(filled, dir, { recursive: true });
  let recovered: Record<string, unknown> | null = null;
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        const line = JSON.parse(chunk.toString('utf8')) as Record<string, unknown>;
        if (line['msg'] === 'recovered from the log') recovered = line;
        cb();
      },
    }),
  );
  const gwConfig = loadConfig({ env: {}, overrides: { dataDir: dir, logLevel: 'info', mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true }, http: { port: 0, host: '127.0.0.1' } } });
  const t0 = performance.now();
  const gw = await startGateway(gwConfig, { logger });
  startMs.push(performance.now() - t0);
  await gw.close();
  rmSync(dir, { recursive: true, force: true });
  const line = recovered as Record<string, unknown> | null;
  if (line === null) throw new Error("the gateway logged no 'recovered from the log' line");
  return { rate: Number(line['replayedRecords']) / (Number(line['ms']) / 1000), cpuUs: null };
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

try {
  process.stdout.write(`filling a log with ${fmt(records)} single-reading records ...\n`);
  await fill();
  const stages: { name: string; what: string; rate: number; cpuUs: number | null }[] = [];
  const run = async (name: string, what: string, f: (rep: number) => Promise<{ rate: number; cpuUs: number | null }>): Promise<void> => {
    if (!only.has(name[0]!)) return;
    const rates: number[] = [];
    const cpus: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const r = await f(rep);
      rates.push(r.rate);
      if (r.cpuUs !== null) cpus.push(r.cpuUs);
    }
    stages.push({ name, what, rate: median(rates)!, cpuUs: median(cpus) ?? null });
  };
  const profileTo = args.str('cpu-prof', '');
  const session = profileTo === '' ? null : new Session();
  if (session !== null) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  await run('A read', 'chunks, framing, CRC32 per record', () => pass('read'));
  await run('B + decode', 'ingest record, topic, protobuf, validation', () => pass('decode'));
  await run('C + process', 'dedup, windows', () => pass('process'));
  await run('D gateway', 'C + raw readings re-batched to the outbox', gatewayPass);
  if (session !== null) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(profileTo, JSON.stringify(profile));
    session.disconnect();
  }
  process.stdout.write(`\nrecovery replay of ${fmt(records)} records, medians of ${reps}:\n`);
  process.stdout.write(`${'stage'.padEnd(13)}  ${'records/s'.padStart(10)}  ${'us/record'.padStart(9)}  ${'+us'.padStart(6)}  ${'CPU us'.padStart(6)}  what\n`);
  let prev = 0;
  for (const s of stages) {
    const us = 1e6 / s.rate;
    const cpu = s.cpuUs === null ? '-' : s.cpuUs.toFixed(2);
    process.stdout.write(`${s.name.padEnd(13)}  ${fmt(s.rate).padStart(10)}  ${us.toFixed(2).padStart(9)}  ${(us - prev).toFixed(2).padStart(6)}  ${cpu.padStart(6)}  ${s.what}\n`);
    prev = us;
  }
  process.stdout.write('CPU us: the process\'s user + system CPU per record in the pass (A-C), all threads (file reads and GC helpers too).\n');
  process.stdout.write('1,000,000 records/s leaves 1.00 us per record for all of it.\n');
  if (startMs.length > 0) process.stdout.write(`D: the whole startGateway took ${Math.round(median(startMs)!)} ms (median), replay included.\n`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
