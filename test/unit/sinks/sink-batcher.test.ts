import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { SinkBatcher, subscribeSinkBatcher } from '../../../gateway/sinks/sink-batcher.js';
import { createEventBus } from '../../../gateway/events.js';
import type { SinkBatch } from '../../../gateway/sinks/types.js';
import { ALERT_WIRE_VERSION, type AlertTransition } from '../../../gateway/wire/alert.js';
import { decodeBatch, encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createFaultyFiles } from '../../helpers/faulty-file.js';
import { observe } from '../../helpers/wait.js';
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
