import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createCheckpointer } from '../../../gateway/pipeline/checkpointer.js';

describe('checkpointer', () => {
  it('should write a checkpoint only once every record appended before its capture is durable (alert records too, not only the batches)', async () => {
    const written: unknown[] = [];
    let durableUpTo = 9;
    const waiting: { offset: number; resolve: () => void }[] = [];
    const log = {
      nextOffset: 12,
      whenDurable(offset: number) {
        if (offset <= durableUpTo) return Promise.resolve();
        return new Promise<void>((resolve) => waiting.push({ offset, resolve }));
      },
    };
    const cp = createCheckpointer({
      pipeline: { checkpoint: () => ({ offset: 5, data: { stages: {} } }) },
      // Nothing pending in the batcher: its flush settles at once.
      batcher: { flush: () => Promise.resolve() },
      store: { write: async (s) => void written.push(s) },
      log,
      logger: pino({ level: 'silent' }),
    });
    const done = cp.write();
    await new Promise((r) => setImmediate(r));
    expect(written).toEqual([]);
    expect(waiting.map((w) => w.offset)).toEqual([11]);
    durableUpTo = 11;
    waiting[0]!.resolve();
    await done;
    // With the log's next offset at the capture: the sender logs are primed from there after a restart.
    expect(written).toEqual([{ offset: 5, data: { stages: {} }, capturedNext: 12 }]);
  });
});
