/**
 * Message log benchmark (prints figures; not a pass/fail test).
 *
 *   npx tsx bench/log-bench.ts [--quick] [--dir DIR]
 *
 * 1. Append throughput with group commit: 60-byte payloads, each with a durability callback,
 *    as fast as the log takes them (bounded in flight), until all are durable.
 * 2. Append-to-durable latency at a paced 150k records/s, with the main thread's event-loop
 *    utilisation (how much of the loop the log costs).
 * 3. Replay speed: reading the whole log back, batched (readBatches) and per record (read).
 *
 * Run it on the disk the gateway will use (--dir): a tmpfs makes fdatasync free.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createMessageLog, type FileMessageLog } from '../gateway/log/message-log.js';
import { RECORD_TYPES } from '../gateway/log/types.js';

const quick = process.argv.includes('--quick');
const dirArg = process.argv.indexOf('--dir');
const PAYLOAD = Buffer.alloc(60, 0x61);

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function openLog(dir: string): Promise<FileMessageLog> {
  const log = await createMessageLog({ dir });
  await log.start();
  return log;
}

async function throughput(log: FileMessageLog, n: number): Promise<void> {
  const maxInFlight = 200_000;
  let durable = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const onDurable = (err: Error | null): void => {
    if (err !== null) throw err;
    if (++durable === n) done();
  };
  const bytes0 = log.stats().appendedBytes;
  const fsyncs0 = log.stats().fsyncs;
  const t0 = performance.now();
  let appended = 0;
  while (appended < n) {
    const burst = Math.min(5000, n - appended);
    for (let i = 0; i < burst; i++) log.append(RECORD_TYPES.ingest, PAYLOAD, onDurable);
    appended += burst;
    if (appended - durable > maxInFlight) await log.whenDurable(log.nextOffset - maxInFlight / 2);
    else await new Promise((r) => setImmediate(r));
  }
  await all;
  const s = (performance.now() - t0) / 1000;
  const bytes = log.stats().appendedBytes - bytes0;
  console.log(`append throughput: ${fmt(n / s)} records/s, ${(bytes / s / 1e6).toFixed(1)} MB/s on disk (${fmt(n)} records of ${PAYLOAD.length} B, ${log.stats().fsyncs - fsyncs0} fdatasyncs, ${s.toFixed(2)} s)`);
}

async function latency(log: FileMessageLog, ratePerSec: number, seconds: number): Promise<void> {
  const tickMs = 10;
  const perTick = Math.round((ratePerSec * tickMs) / 1000);
  const ticks = Math.round((seconds * 1000) / tickMs);
  const samples = new Float64Array(ticks * perTick);
  let k = 0;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  for (let t = 0; t < ticks; t++) {
    const tickStart = performance.now();
    for (let i = 0; i < perTick; i++) {
      const slot = k++;
      const at = performance.now();
      log.append(RECORD_TYPES.ingest, PAYLOAD, () => {
        samples[slot] = performance.now() - at;
      });
    }
    const due = t0 + (t + 1) * tickMs;
    await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
    if (performance.now() - tickStart > tickMs * 5) break;
  }
  await log.whenDurable(log.nextOffset - 1);
  const elu = performance.eventLoopUtilization(elu0);
  const wall = (performance.now() - t0) / 1000;
  const got = samples.subarray(0, k).sort();
  console.log(
    `append-to-durable latency at ${fmt(k / wall)} records/s: p50 ${percentile(got, 0.5).toFixed(2)} ms, p99 ${percentile(got, 0.99).toFixed(2)} ms, max ${got[got.length - 1]!.toFixed(2)} ms; event loop busy ${(elu.utilization * 100).toFixed(1)}%`,
  );
}

async function replay(log: FileMessageLog): Promise<void> {
  const total = log.nextOffset;
  let n = 0;
  let sum = 0;
  let t0 = performance.now();
  for await (const batch of log.readBatches(0)) {
    n += batch.length;
    for (const r of batch) sum += r.payload.length;
  }
  let s = (performance.now() - t0) / 1000;
  console.log(`replay (readBatches): ${fmt(n / s)} records/s, ${(sum / s / 1e6).toFixed(1)} MB/s of payload (${fmt(n)} of ${fmt(total)} records)`);
  n = 0;
  t0 = performance.now();
  for await (const r of log.read(0)) {
    n++;
    sum += r.payload.length;
  }
  s = (performance.now() - t0) / 1000;
  console.log(`replay (read, per record): ${fmt(n / s)} records/s`);
}

async function main(): Promise<void> {
  const base = dirArg >= 0 ? process.argv[dirArg + 1]! : tmpdir();
  const dir = await mkdtemp(join(base, 'pulsegate-log-bench-'));
  console.log(`log bench in ${dir}${quick ? ' (quick)' : ''}; node ${process.version}`);
  try {
    let log = await openLog(dir);
    await throughput(log, quick ? 500_000 : 3_000_000);
    await latency(log, 150_000, quick ? 2 : 5);
    await log.close();
    const t0 = performance.now();
    log = await openLog(dir);
    console.log(`recovery scan at start: ${fmt(log.recovery!.records)} records in ${(performance.now() - t0).toFixed(0)} ms`);
    await replay(log);
    await log.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
