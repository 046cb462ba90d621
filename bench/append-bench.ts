/**
 * The ingest path's append, in-process (prints figures; not a pass/fail test).
 *
 *   npx tsx bench/append-bench.ts [--appends 200000] [--reps 8]
 *
 * Appends ingest records of a single heart-rate reading (100 topics, each with a durability
 * callback) to a real log, in two ways taking turns in the same run: an ingest record Buffer
 * built and then copied by the log (encodeIngestRecord), and a record body the log writes
 * straight into its write buffer (ingestRecordBody, what ingest does). ns per append, the medians
 * and their ratio; group commits run between the rounds, not inside them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeIngestRecord, ingestRecordBody } from '../gateway/log/ingest-record-format.js';
import { createMessageLog } from '../gateway/log/message-log.js';
import { RECORD_TYPES } from '../gateway/log/types.js';
import { Args } from './lib/args.js';
import { median } from './lib/stats.js';
import { heartRateLen, writeHeartRate } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const appends = Math.max(1, Math.floor(args.num('appends', 200_000)));
const reps = Math.max(1, Math.floor(args.num('reps', 8)));

const dir = mkdtempSync(join(tmpdir(), 'pulsegate-append-bench-'));
try {
  const log = await createMessageLog({ dir });
  await log.start();
  const topics = Array.from({ length: 100 }, (_, i) => `sensors/heart-rate/bench-c0-d${i}`);
  const now = Date.now();
  const payload = Buffer.allocUnsafe(heartRateLen(1, now, 72));
  writeHeartRate(payload, 0, 1, now, 72);
  const onDurable = (): void => {};
  const ns: Record<'buffer' | 'body', number[]> = { buffer: [], body: [] };
  for (let rep = 0; rep < reps; rep++) {
    for (const mode of ['buffer', 'body'] as const) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < appends; i++) {
        const at = Date.now();
        const record = mode === 'buffer' ? encodeIngestRecord(at, topics[i % 100]!, payload) : ingestRecordBody(at, topics[i % 100]!, payload);
        log.append(RECORD_TYPES.ingest, record, onDurable);
      }
      ns[mode].push(Number(process.hrtime.bigint() - t0) / appends);
      await log.whenDurable(log.nextOffset - 1);
    }
  }
  await log.close();
  const buffer = median(ns.buffer)!;
  const body = median(ns.body)!;
  process.stdout.write(`ingest append, ${appends.toLocaleString('en-US')} appends a round, medians of ${reps} rounds each, taking turns:\n`);
  process.stdout.write(`  record Buffer, copied by the log (encodeIngestRecord)   ${buffer.toFixed(0).padStart(6)} ns/append  [${ns.buffer.map((x) => x.toFixed(0)).join(' ')}]\n`);
  process.stdout.write(`  record body, written by the log (ingestRecordBody)      ${body.toFixed(0).padStart(6)} ns/append  [${ns.body.map((x) => x.toFixed(0)).join(' ')}]\n`);
  process.stdout.write(`  body / Buffer: ${(body / buffer).toFixed(2)}x the time\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
