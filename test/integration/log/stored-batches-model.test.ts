import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { decodeOutgoing, encodeOutgoing, outgoingCoverage } from '../../../gateway/log/outbox.js';
import { primeSenderLogs, senderLogsPrimeFrom } from '../../../gateway/log/sender-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { createCheckpointer } from '../../../gateway/pipeline/checkpointer.js';
import { replayStart } from '../../../gateway/pipeline/recovery.js';
import { coversOfBatch, decodeBatch, encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import { SinkBatcher } from '../../../gateway/sinks/sink-batcher.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createFaultyFiles } from '../../helpers/faulty-file.js';
import { mulberry32 } from '../../helpers/random.js';

/** What the runs went through, so the test can tell that they covered the cases it is about. */
const stats = { passedOver: 0, injected: 0, dropped: 0 };
const silent = pino({ level: 'silent' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
type Ckpt = { offset: number; capturedNext?: number; data: unknown };

/**
 * The store batches of the log chained across kill -9, as a model of the gateway's own wiring
 * (gateway/main.ts) on a real log: startup chains the batches after the checkpoint and resumes the
 * batcher there, replays the ingest records (passing over those the chain reaches), then takes
 * publishes of 1-7 readings while write and fdatasync failures come and go (disk full: batches
 * wait, some are dropped past maxRetryBatches), checkpoints run and batches split publishes; a
 * copy of the files at a random moment is the next generation's start. In the final log every
 * acknowledged reading, and every reading in an ingest record, must be in some store batch.
 */

/** One gateway generation: startup (chain + replay), live ingest with faults, then a kill -9 snapshot (or a clean end). */
async function generation(dir: string, ckpt: Ckpt | null, rng: () => number, seqBase: number, acked: Set<number>, final: boolean): Promise<{ snapshotDir: string; ckpt: Ckpt | null; nextSeq: number }> {
  const faults = createFaultyFiles();
  const log: FileMessageLog = await createMessageLog({ dir, groupCommitIntervalMs: 1, groupCommitMaxBytes: 1024, segmentMaxBytes: 32 * 1024, writeRetryInitialMs: 2, writeRetryMaxMs: 8, fileCheckIntervalMs: 0, openFile: faults.openFile });
  await log.start();
  let latest = ckpt;
  let upTo = ckpt?.offset ?? 0;
  const maxPoints = 1 + Math.floor(rng() * 6);
  const batcher = new SinkBatcher({
    maxPoints,
    flushIntervalMs: 3 + Math.floor(rng() * 10),
    enqueue: (b) => log.appendDurable(RECORD_TYPES.outgoing, encodeOutgoing('sink', encodeBatch(b))),
    logger: pino({ level: 'error' }, { write: (l: string) => void (l.includes('were dropped') && stats.dropped++) }),
    maxRetryBatches: rng() < 0.3 ? 2 + Math.floor(rng() * 3) : 1000,
    retryInitialMs: 2,
    retryMaxMs: 8,
  });
  const process = (rs: readonly Reading[], offset: number, replay: boolean): void => {
    if (offset >= upTo) upTo = offset + 1;
    batcher.addRecordReadings(rs, offset, replay);
  };
  // Startup as main.ts does it.
  const stored = outgoingCoverage('sink', replayStart(ckpt, log), coversOfBatch);
  await primeSenderLogs(log, senderLogsPrimeFrom(ckpt, log), [stored]);
  batcher.resume(stored.below);
  for await (const span of log.readSpans(replayStart(ckpt, log), undefined, [RECORD_TYPES.ingest])) {
    for (const r of span.records) process(JSON.parse(r.payload.toString()) as Reading[], r.offset, true);
  }
  batcher.start();
  const checkpointer = createCheckpointer({
    pipeline: { checkpoint: () => ({ offset: upTo, data: { stages: {} } }) },
    batcher,
    store: { write: async (s) => void (latest = s as Ckpt) },
    log,
    logger: silent,
  });
  let seq = seqBase;
  const records = 20 + Math.floor(rng() * 60);
  const crashAt = final ? -1 : Math.floor(rng() * records);
  let snapshotDir = '';
  let snapCkpt: Ckpt | null = null;
  let dead = false;
  for (let i = 0; i < records; i++) {
    const n = 1 + Math.floor(rng() * 7);
    const rs: Reading[] = [];
    for (let k = 0; k < n; k++) rs.push({ kind: 'heart-rate', deviceId: 'd', seq: ++seq, ts: 1_763_800_000_000 + seq, values: { bpm: 60 } });
    log.append(RECORD_TYPES.ingest, Buffer.from(JSON.stringify(rs)), (err, offset) => {
      if (err !== null || dead) return;
      process(rs, offset, false);
      // The PUBACK.
      for (const r of rs) acked.add(r.seq);
    });
    const p = rng();
    if (!final && p < 0.05) faults.failDatasyncs('ENOSPC', 1 + Math.floor(rng() * 3));
    else if (!final && p < 0.08) faults.failWrites('ENOSPC', 1 + Math.floor(rng() * 3));
    else if (p < 0.15) checkpointer.run();
    else if (p < 0.2) batcher.addHealth({ ts: seq, values: { x: 1 } });
    if (rng() < 0.5) await sleep(Math.floor(rng() * 4));
    if (i === crashAt) {
      // kill -9: what the files hold right now (written, fdatasync'd or not), and the checkpoint on disk.
      snapshotDir = mkdtempSync(join(tmpdir(), 'pulsegate-chain-snap-'));
      cpSync(dir, snapshotDir, { recursive: true });
      snapCkpt = latest;
      dead = true;
      break;
    }
  }
  stats.passedOver += batcher.passedOverRecords;
  stats.injected += faults.injected;
  if (final) {
    // A clean end: everything appended.
    faults.heal();
    await log.whenDurable(log.nextOffset - 1);
    await sleep(5);
    await batcher.close();
    await log.close();
    return { snapshotDir: dir, ckpt: latest, nextSeq: seq };
  }
  faults.heal();
  await batcher.close().catch(() => undefined);
  await checkpointer.idle();
  await log.close().catch(() => undefined);
  return { snapshotDir, ckpt: snapCkpt, nextSeq: seq };
}

describe('store batches chained across kill -9 generations', () => {
  it('should leave every acknowledged reading in some store batch of the final log', async () => {
    const failures: string[] = [];
    const seeds = 40;
    for (let seed = 1; seed <= seeds; seed++) {
      const rng = mulberry32(seed);
      let dir = mkdtempSync(join(tmpdir(), 'pulsegate-chain-gen-'));
      const dirs = [dir];
      const acked = new Set<number>();
      let ckpt: Ckpt | null = null;
      let seq = 0;
      const gens = 1 + Math.floor(rng() * 4);
      for (let g = 0; g <= gens; g++) {
        const res = await generation(dir, ckpt, rng, seq, acked, g === gens);
        dir = res.snapshotDir;
        dirs.push(dir);
        ckpt = res.ckpt;
        seq = res.nextSeq;
      }
      // The final log.
      const log = await createMessageLog({ dir, fileCheckIntervalMs: 0 });
      await log.start();
      const batched = new Set<number>();
      const inLog = new Set<number>();
      for await (const r of log.read(0)) {
        if (r.type === RECORD_TYPES.outgoing) for (const x of decodeBatch(decodeOutgoing(Buffer.from(r.payload)).payload).readings) batched.add(x.seq);
        if (r.type === RECORD_TYPES.ingest) for (const x of JSON.parse(r.payload.toString()) as Reading[]) inLog.add(x.seq);
      }
      await log.close();
      const lostAcked = [...acked].filter((s) => !batched.has(s));
      const lostInLog = [...inLog].filter((s) => !batched.has(s));
      if (lostAcked.length > 0 || lostInLog.length > 0) failures.push(`seed ${seed} (${gens} crashes): acked not batched ${JSON.stringify(lostAcked.slice(0, 10))}, in log not batched ${JSON.stringify(lostInLog.slice(0, 10))}; kept ${dir}`);
      else for (const d of new Set(dirs)) rmSync(d, { recursive: true, force: true });
    }
    expect(failures).toEqual([]);
    // The runs passed over replayed records, injected faults and dropped batches.
    expect(stats.passedOver).toBeGreaterThan(100);
    expect(stats.injected).toBeGreaterThan(50);
    expect(stats.dropped).toBeGreaterThan(0);
  }, 300_000);
});
