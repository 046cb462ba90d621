import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { createRetentionJob, startRetentionJob } from '../../../gateway/jobs/retention-job.js';
import { createCheckpointStore } from '../../../gateway/log/checkpoint-store.js';
import { createLogConsumer } from '../../../gateway/log/log-consumer.js';
import { applyRetention, protectedOffsetOf } from '../../../gateway/log/retention.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { appendMany, openLog, readAll, segmentFiles, tempDir, until } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-retention-'));
});
afterEach(async () => {
  await cleanup();
});

const HOUR = 3_600_000;

describe('retention', () => {
  it('retention should delete old segments only below the protected offset', async () => {
    const clock = new ManualClock(0);
    const log = await openLog(dir, { clock });
    await appendMany(log, 1000);
    clock.set(10 * HOUR);
    await appendMany(log, 1000, 1000);
    const before = log.segments();
    const protectedOffset = 600;
    const result = await applyRetention(log, { retentionMs: HOUR, now: 10 * HOUR, protectedOffset });
    expect(result.deleted.length).toBeGreaterThan(0);
    expect(result.stoppedBy).toBe('protected');
    const after = log.segments();
    // Every segment that holds a record at or above the protected offset is still there.
    for (const s of before) if (s.lastOffset >= protectedOffset) expect(after.map((a) => a.file)).toContain(s.file);
    for (const s of after) expect(s.lastOffset).toBeGreaterThanOrEqual(protectedOffset);
    expect(await segmentFiles(dir)).toEqual(after.map((s) => s.file));
    expect(log.firstOffset).toBe(after[0]!.baseOffset);
    const rest = await readAll(log);
    expect(rest[0]!.offset).toBe(log.firstOffset);
    expect(rest[rest.length - 1]!.offset).toBe(1999);
    await log.close();
  });

  it('retention should never delete a segment with records newer than the retention', async () => {
    const clock = new ManualClock(0);
    const log = await openLog(dir, { clock });
    await appendMany(log, 1000);
    clock.set(10 * HOUR);
    await appendMany(log, 1000, 1000);
    const result = await applyRetention(log, { retentionMs: HOUR, now: 10 * HOUR + 1, protectedOffset: Number.MAX_SAFE_INTEGER });
    expect(result.stoppedBy).toBe('age');
    for (const s of log.segments()) expect(s.lastOffset).toBeGreaterThanOrEqual(999);
    expect((await readAll(log)).map((r) => r.offset).filter((o) => o >= 1000)).toHaveLength(1000);
    await log.close();
  });

  it('retention should never delete the active segment', async () => {
    const clock = new ManualClock(0);
    const log = await openLog(dir, { clock });
    await appendMany(log, 2000);
    clock.set(100 * HOUR);
    const result = await applyRetention(log, { retentionMs: HOUR, now: 100 * HOUR, protectedOffset: Number.MAX_SAFE_INTEGER });
    expect(result.stoppedBy).toBe('active');
    expect(log.segments()).toHaveLength(1);
    expect(log.nextOffset).toBe(2000);
    await log.close();
    const reopened = await openLog(dir);
    expect(reopened.nextOffset).toBe(2000);
    expect(reopened.firstOffset).toBe(log.segments()[0]!.baseOffset);
    await reopened.close();
  });

  it('retention should protect everything until a checkpoint exists, and the oldest un-acked record', () => {
    expect(protectedOffsetOf({ checkpointOffsets: [null], outboxes: [] })).toBe(0);
    expect(protectedOffsetOf({ checkpointOffsets: [500], outboxes: [{ oldestUnackedOffset: 120 }, { oldestUnackedOffset: 900 }] })).toBe(120);
    expect(protectedOffsetOf({ checkpointOffsets: [500, 300], outboxes: [{ oldestUnackedOffset: 900 }] })).toBe(300);
  });

  it('retention should clear disk backpressure once segments are deleted', async () => {
    const clock = new ManualClock(0);
    const log = await openLog(dir, { clock, diskHighWaterBytes: 30_000 });
    await appendMany(log, 1000);
    expect(log.backpressured).toBe(true);
    clock.set(10 * HOUR);
    await applyRetention(log, { retentionMs: HOUR, now: 10 * HOUR, protectedOffset: Number.MAX_SAFE_INTEGER });
    expect(log.backpressured).toBe(false);
    await log.close();
  });

  it('retention job should run retention on demand and reject an invalid schedule', async () => {
    const clock = new ManualClock(0);
    const log = await openLog(dir, { clock });
    await appendMany(log, 1000);
    clock.set(10 * HOUR);
    expect(() => createRetentionJob({ log, schedule: 'not a cron', retentionMs: HOUR, protectedOffset: () => 0 })).toThrow(/retentionSchedule/);
    const job = createRetentionJob({ log, schedule: '*/5 * * * *', retentionMs: HOUR, protectedOffset: async () => 500, clock });
    await job.start();
    const result = await job.runOnce();
    expect(result.deleted.length).toBeGreaterThan(0);
    for (const s of log.segments()) expect(s.lastOffset).toBeGreaterThanOrEqual(500);
    await job.close();
    await job.close();
    await log.close();
  });

  it('retention should keep the segments a lagging log consumer has not handled, however old', async () => {
    const clock = new ManualClock(0);
    const log = await openLog(dir, { clock });
    await appendMany(log, 2000);
    clock.set(10 * HOUR);
    await appendMany(log, 10, 2000);
    // Everything is checkpointed and old: only the consumer holds the log back.
    const checkpoints = createCheckpointStore({ dir: `${dir}/ckpt`, clock });
    await checkpoints.write({ offset: 2010, data: {} });
    let release: () => void = () => {};
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const handled: number[] = [];
    const consumer = createLogConsumer({
      log,
      name: 'republish',
      types: [RECORD_TYPES.ingest],
      stateDir: `${dir}/state`,
      cursorPersistIntervalMs: 0,
      retry: { initialMs: 1, maxMs: 5 },
      clock,
      handle: async (r) => {
        if (r.offset === 700) await blocked;
        handled.push(r.offset);
      },
    });
    await consumer.start();
    await until(() => handled.length === 700);
    await until(() => consumer.oldestUnackedOffset === 700, 5000, 'the cursor on disk to reach 700');
    const job = startRetentionJob({
      log,
      checkpoints,
      outboxes: [],
      consumers: [consumer],
      config: { retentionMs: HOUR, retentionSchedule: '0 0 1 1 *' },
      clock,
    });
    const result = await job.runOnce();
    await job.close();
    expect(result.deleted.length).toBeGreaterThan(0);
    expect(result.protectedOffset).toBe(700);
    expect(log.firstOffset).toBeLessThanOrEqual(700);
    release();
    await until(() => consumer.position === 2010);
    // Nothing it still needed was gone: every record from its cursor on was handed out.
    expect(consumer.skipped).toBe(0);
    expect(handled.slice(700)).toEqual(Array.from({ length: 1310 }, (_, i) => 700 + i));
    await consumer.close();
    await log.close();
  });
});
