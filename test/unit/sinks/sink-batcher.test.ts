import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { SinkBatcher, subscribeSinkBatcher } from '../../../gateway/sinks/sink-batcher.js';
import { createEventBus } from '../../../gateway/events.js';
import type { OutgoingBatch as SinkBatch } from '../../../gateway/sinks/types.js';
import { ALERT_WIRE_VERSION, type AlertTransition } from '../../../gateway/wire/alert.js';
import { decodeBatch, encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createFaultyFiles } from '../../helpers/faulty-file.js';
import { observe, waitFor } from '../../helpers/wait.js';
import { readAll, tempDir } from '../log/log-test-helpers.js';
import { mulberry32 } from '../../helpers/random.js';
import type { WindowResult } from '../../../gateway/window/types.js';

const reading = (seq: number): Reading => ({ kind: 'heart-rate', deviceId: 'b1', seq, ts: 1_763_800_000_000 + seq, values: { bpm: 60 + (seq % 50) } });

describe('sink batcher on a real log', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => void unhandled.push(err);
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('pulsegate-batcher-'));
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    process.off('unhandledRejection', onUnhandled);
    await cleanup();
  });

  it('one failed append gave an unhandled rejection and every later flush rejected for good: the batch is retried in order, later flushes resolve, nothing is unhandled', async () => {
    const faults = createFaultyFiles();
    const log: FileMessageLog = await createMessageLog({ dir, groupCommitIntervalMs: 1, writeRetryInitialMs: 5, writeRetryMaxMs: 20, fileCheckIntervalMs: 0, openFile: faults.openFile });
    await log.start();
    const batcher = new SinkBatcher({
      maxPoints: 3,
      flushIntervalMs: 60_000,
      enqueue: (batch) => log.appendDurable(RECORD_TYPES.outgoing, encodeBatch(batch)),
      logger: pino({ level: 'silent' }),
      retryInitialMs: 5,
      retryMaxMs: 20,
    });
    try {
      // The fourth reading fills a batch (maxPoints 3 after three), whose append fails once.
      faults.failDatasyncs('EIO', 1);
      for (let seq = 1; seq <= 3; seq++) batcher.addReading(reading(seq));
      const first = batcher.flush();
      for (let seq = 4; seq <= 7; seq++) batcher.addReading(reading(seq));
      const later = batcher.flush();
      await expect(first).resolves.not.toThrow();
      await expect(later).resolves.not.toThrow();
      // And a flush after the episode resolves too (it used to reject for good).
      batcher.addReading(reading(8));
      await expect(batcher.flush()).resolves.not.toThrow();
      expect(faults.injected).toBe(1);
      // Observation window: an unhandled rejection surfaces within a few ticks of the failure.
      await observe(100);
      expect(unhandled).toEqual([]);
      const seqs = (await readAll(log)).filter((r) => r.type === RECORD_TYPES.outgoing).flatMap((r) => decodeBatch(r.payload).readings.map((x) => x.seq));
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      await batcher.close().catch(() => undefined);
      await log.close();
    }
  });
});

describe('sink batcher on the event bus', () => {
  const transition = (id: string, state: 'FIRING' | 'RESOLVED'): AlertTransition => ({
    v: ALERT_WIRE_VERSION, id, rule: 'heart-rate-spike', ruleKind: 'threshold', severity: 'critical', state, kind: 'heart-rate', deviceId: 'a1', group: {},
    value: 210, threshold: 200, windowStart: 0, windowEnd: 10_000, episodeStart: 0, firedAt: 10_000, resolvedAt: state === 'RESOLVED' ? 20_000 : null, summary: 's',
  });

  it('should put every alert transition told, also one told again after a restart, into the batch with its log offset', async () => {
    const events = createEventBus();
    const batches: SinkBatch[] = [];
    const batcher = new SinkBatcher({ maxPoints: 100, flushIntervalMs: 60_000, enqueue: async (b) => void batches.push(decodeBatch(encodeBatch(b))), logger: pino({ level: 'silent' }) });
    subscribeSinkBatcher(events, batcher, { writeRawReadings: false });
    events.emit('alert.transition', { transition: transition('e1', 'FIRING'), offset: 7, replay: false, logged: false });
    events.emit('alert.transition', { transition: transition('e1', 'RESOLVED'), offset: 9, replay: true, logged: true });
    // The log refused it: it reached no one, and is not stored either.
    events.emit('alert.transition', { transition: transition('e2', 'FIRING'), offset: -1, replay: false, logged: false });
    await batcher.flush();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.alerts!.map((a) => [a.id, a.state, a.offset])).toEqual([
      ['e1', 'FIRING', 7],
      ['e1', 'RESOLVED', 9],
    ]);
    // A batch without alerts has none (codec version 1).
    batcher.addHealth({ ts: 1, values: { heap_mb: 1 } });
    await batcher.close();
    expect(batches[1]!.alerts).toBeUndefined();
  });
  it('should batch the raw readings of reading.durable only with writeRawReadings (the store keeps whatever a batch holds)', async () => {
    for (const writeRawReadings of [false, true]) {
      const events = createEventBus();
      const batches: SinkBatch[] = [];
      const batcher = new SinkBatcher({ maxPoints: 100, flushIntervalMs: 60_000, enqueue: async (b) => void batches.push(b), logger: pino({ level: 'silent' }) });
      subscribeSinkBatcher(events, batcher, { writeRawReadings });
      events.emit('reading.durable', { readings: [reading(1), reading(2)], offset: 4, receivedAt: 1, replay: false, gaps: 0, gapFills: 0 });
      batcher.addHealth({ ts: 1, values: { heap_mb: 1 } });
      await batcher.close();
      expect(batches.map((b) => b.readings.map((r) => (r as Reading).seq)), `writeRawReadings ${writeRawReadings}`).toEqual([writeRawReadings ? [1, 2] : []]);
      expect(batches[0]!.covers).toEqual({ from: 0, below: writeRawReadings ? 5 : 0 });
    }
  });
});

describe('sink batcher addReadings', () => {
  it('should split batches where addReading on each reading would, with windows and health samples in between', async () => {
    const rnd = mulberry32(7);
    const window = (n: number): WindowResult => ({ kind: 'heart-rate', deviceId: 'w', sizeMs: 10_000, slideMs: 10_000, start: n, end: n + 10_000, group: {}, values: { count: 1 }, revision: 0 });
    // One script of calls, replayed against both ways of adding a publish's readings.
    const script: (['readings', Reading[]] | ['window', WindowResult] | ['health', number])[] = [];
    let seq = 0;
    for (let k = 0; k < 300; k++) {
      const x = rnd();
      if (x < 0.6) script.push(['readings', Array.from({ length: Math.floor(rnd() * 12) }, () => reading(++seq))]);
      else if (x < 0.8) script.push(['window', window(k)]);
      else script.push(['health', k]);
    }
    const run = async (maxPoints: number, batched: boolean): Promise<string[]> => {
      const batches: string[] = [];
      const batcher = new SinkBatcher({ maxPoints, flushIntervalMs: 60_000, enqueue: async (b) => void batches.push(JSON.stringify(b)), logger: pino({ level: 'silent' }) });
      for (const [what, arg] of script) {
        if (what === 'readings') {
          if (batched) batcher.addReadings(arg);
          else for (const r of arg) batcher.addReading(r);
        } else if (what === 'window') batcher.addWindow(arg);
        else batcher.addHealth({ ts: arg, values: { heap_mb: 1 } });
      }
      await batcher.close();
      return batches;
    };
    for (const maxPoints of [1, 2, 3, 7, 50]) {
      const one = await run(maxPoints, false);
      expect(await run(maxPoints, true), `maxPoints ${maxPoints}`).toEqual(one);
      expect(one.length).toBeGreaterThan(maxPoints === 50 ? 10 : 50);
    }
  });
});

describe('sink batcher covers', () => {
  const silent = pino({ level: 'silent' });

  it('should say of each batch exactly which ingest records it completes, a publish spilling over batches included', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = mulberry32(seed);
      const maxPoints = 1 + Math.floor(rnd() * 8);
      const batches: SinkBatch[] = [];
      const batcher = new SinkBatcher({ maxPoints, flushIntervalMs: 60_000, enqueue: async (b) => void batches.push(b), logger: silent });
      // Records at increasing offsets (other records between), 1..6 readings each; windows and
      // flushes of the interval in between. A reading's seq names its record.
      const recordOfSeq = new Map<number, number>();
      const readingsOf = new Map<number, number>();
      let offset = 0;
      let seq = 0;
      for (let k = 0; k < 80; k++) {
        offset += 1 + Math.floor(rnd() * 3);
        const n = 1 + Math.floor(rnd() * 6);
        const rs = Array.from({ length: n }, () => reading(++seq));
        for (const r of rs) recordOfSeq.set(r.seq, offset);
        readingsOf.set(offset, n);
        batcher.addRecordReadings(rs, offset, false);
        const x = rnd();
        if (x < 0.15) batcher.addWindow({ kind: 'heart-rate', deviceId: 'w', sizeMs: 10_000, slideMs: 10_000, start: k, end: k + 10_000, group: {}, values: { count: 1 }, revision: 0 });
        else if (x < 0.3) void batcher.flush();
      }
      await batcher.close();
      // Where each record's last reading went, and so what each batch completes.
      const seen = new Map<number, number>();
      let completedBelow = 0;
      for (let b = 0; b < batches.length; b++) {
        const covers = batches[b]!.covers!;
        expect(covers.from, `seed ${seed}, batch ${b}: starts where the one before ended`).toBe(b === 0 ? 0 : batches[b - 1]!.covers!.below);
        for (const r of batches[b]!.readings) {
          const record = recordOfSeq.get((r as Reading).seq)!;
          seen.set(record, (seen.get(record) ?? 0) + 1);
          if (seen.get(record) === readingsOf.get(record)) completedBelow = Math.max(completedBelow, record + 1);
        }
        expect(covers.below, `seed ${seed}, batch ${b}`).toBe(completedBelow);
      }
      expect(completedBelow).toBe(offset + 1);
    }
  });

  it('should pass over a replayed record below where the logged batches end, and batch the rest', async () => {
    const batches: SinkBatch[] = [];
    const batcher = new SinkBatcher({ maxPoints: 100, flushIntervalMs: 60_000, enqueue: async (b) => void batches.push(b), logger: silent });
    batcher.resume(50);
    batcher.addRecordReadings([reading(1), reading(2)], 10, true);
    batcher.addRecordReadings([reading(3)], 49, true);
    batcher.addRecordReadings([reading(4)], 50, true);
    batcher.addRecordReadings([reading(5)], 52, false);
    await batcher.flush();
    expect(batcher.passedOverRecords).toBe(2);
    expect(batches.map((b) => ({ seqs: b.readings.map((r) => (r as Reading).seq), covers: b.covers }))).toEqual([{ seqs: [4, 5], covers: { from: 50, below: 53 } }]);
  });

  it('should leave covers off every batch behind one dropped for good, so no chain of them passes over its readings', async () => {
    let failing = true;
    const appended: SinkBatch[] = [];
    const batcher = new SinkBatcher({
      maxPoints: 1,
      maxRetryBatches: 2,
      retryInitialMs: 5,
      retryMaxMs: 5,
      flushIntervalMs: 60_000,
      enqueue: async (b) => {
        if (failing) throw new Error('disk full');
        appended.push(b);
      },
      logger: silent,
    });
    // One reading per batch (maxPoints 1): batch k holds record 10 + k.
    for (let k = 0; k < 4; k++) batcher.addRecordReadings([reading(k + 1)], 10 + k, false);
    await observe(20);
    failing = false;
    await waitFor(() => batcher.waitingBatches === 0);
    // Flushed once the log takes batches again: still behind the dropped one.
    batcher.addRecordReadings([reading(5)], 14, false);
    await expect(batcher.close()).rejects.toThrow(/dropped/);
    expect((appended.at(-1)!.readings[0] as Reading).seq).toBe(5);
    const seqs = appended.map((b) => (b.readings[0] as Reading).seq);
    expect(seqs.length).toBeLessThan(5);
    // A batch appended with every one before it keeps its range; one behind a dropped batch has none.
    for (const b of appended) {
      const s = (b.readings[0] as Reading).seq;
      const noneMissing = Array.from({ length: s - 1 }, (_, i) => i + 1).every((x) => seqs.includes(x));
      expect(b.covers, `the batch of reading ${s} (appended: ${seqs.join(', ')})`).toEqual(noneMissing ? { from: s === 1 ? 0 : 9 + s, below: 10 + s } : undefined);
    }
    expect(appended[0]!.covers).toEqual({ from: 0, below: 11 });
    expect(appended.some((b) => b.covers === undefined)).toBe(true);
  });
});

describe('sink batcher covers, misuse', () => {
  it('should stop saying what batches cover once a record comes below what is covered, and log it', async () => {
    const batches: SinkBatch[] = [];
    const errors: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
    const batcher = new SinkBatcher({ maxPoints: 100, flushIntervalMs: 60_000, enqueue: async (b) => void batches.push(b), logger });
    batcher.addRecordReadings([reading(1)], 10, false);
    await batcher.flush();
    batcher.addRecordReadings([reading(2)], 7, false);
    await batcher.flush();
    batcher.addRecordReadings([reading(3)], 12, false);
    await batcher.close();
    expect(batches.map((b) => b.covers)).toEqual([{ from: 0, below: 11 }, undefined, undefined]);
    expect(errors.join('')).toContain('out of log order');
  });

  it('should refuse resume() once something is batched', () => {
    const batcher = new SinkBatcher({ maxPoints: 100, flushIntervalMs: 60_000, enqueue: async () => undefined, logger: pino({ level: 'silent' }) });
    batcher.addRecordReadings([reading(1)], 3, false);
    expect(() => batcher.resume(10)).toThrow(/before anything is batched/);
  });
});
