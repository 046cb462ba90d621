import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileMessageLog, MessageLogOptions } from '../../../gateway/log/message-log.js';
import { createLogConsumer } from '../../../gateway/log/log-consumer.js';
import { tailLog, type TailItem } from '../../../gateway/log/tail-reader.js';
import { RECORD_TYPES, type LogRecord } from '../../../gateway/log/types.js';
import { appendMany, openLog, payloadFor, readAll, segmentFiles, tempDir, until } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
const logs: FileMessageLog[] = [];
/** Segment files opened for reading (flag 'r') since the log was opened: the disk reads. */
let readOpens = 0;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-tailcache-'));
  readOpens = 0;
});
afterEach(async () => {
  for (const l of logs.splice(0)) await l.close();
  await cleanup();
});

async function logWith(extra: Partial<MessageLogOptions> = {}): Promise<FileMessageLog> {
  const openFile = (path: string, flags: string): Promise<FileHandle> => {
    if (flags === 'r') readOpens++;
    return open(path, flags);
  };
  const log = await openLog(dir, { openFile, segmentMaxBytes: 4 * 1024, ...extra });
  logs.push(log);
  return log;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

function expectPayloads(records: LogRecord[], offsets: number[]): void {
  expect(records.map((r) => r.offset)).toEqual(offsets);
  for (const r of records) expect(Buffer.from(r.payload).equals(payloadFor(r.offset))).toBe(true);
}

describe('tail cache of the message log', () => {
  it('tail cache should serve a reader at the head of the log from memory, without opening a segment', async () => {
    const log = await logWith();
    await appendMany(log, 200);
    expect(log.segments().length).toBeGreaterThan(1);
    const records = await readAll(log, 0);
    expectPayloads(records, range(0, 200));
    expect(readOpens).toBe(0);
    expect(log.stats().tailCacheBytes).toBeGreaterThan(0);
  });

  it('tail cache should fall back to disk for evicted offsets and go on from memory, in order and without gaps', async () => {
    const log = await logWith({ tailCacheMaxBytes: 8 * 1024 });
    await appendMany(log, 600);
    // The bound holds: only the newest records are in memory.
    expect(log.stats().tailCacheBytes).toBeLessThanOrEqual(8 * 1024);
    expect(log.stats().sizeBytes).toBeGreaterThan(3 * 8 * 1024);
    const records = await readAll(log, 0);
    expectPayloads(records, range(0, 600));
    const opened = readOpens;
    expect(opened).toBeGreaterThan(0);
    // The newest records alone come from memory.
    expectPayloads(await readAll(log, 590), range(590, 600));
    expect(readOpens).toBe(opened);
  });

  it('tail cache should hand out nothing beyond the durable offset, while appends are still being written', async () => {
    const log = await logWith();
    await appendMany(log, 10);
    for (let i = 10; i < 300; i++) log.append(1, payloadFor(i));
    const seen: number[] = [];
    for await (const batch of log.readBatches(0)) {
      for (const r of batch) {
        expect(r.offset).toBeLessThan(log.durableOffset);
        seen.push(r.offset);
      }
    }
    expect(seen).toEqual(range(0, 300));
    // A follower started now sees the same, then waits at the durable end.
    const ac = new AbortController();
    const items: TailItem[] = [];
    const done = (async () => {
      for await (const item of tailLog(log, 0, { signal: ac.signal })) {
        if (item.kind === 'record') expect(item.record.offset).toBeLessThan(log.durableOffset);
        items.push(item);
      }
    })();
    for (let i = 300; i < 400; i++) log.append(1, payloadFor(i));
    await until(() => items.length === 400, 5000, 'every record');
    expect(items.every((i) => i.kind === 'record')).toBe(true);
    ac.abort();
    await done;
  });

  it('tail cache should not hide records deleted by retention from a reader on its way to them: they are a gap', async () => {
    const log = await logWith();
    await appendMany(log, 400);
    expect(log.segments().length).toBeGreaterThan(3);
    const iter = tailLog(log, 0)[Symbol.asyncIterator]();
    const first = await iter.next();
    expect(first.value).toMatchObject({ kind: 'record', record: { offset: 0 } });
    // Retention deletes every segment but the active one while the reader holds record 0.
    const keepFrom = log.segments().at(-1)!.baseOffset;
    await log.deleteSegmentsBefore(keepFrom);
    expect(log.firstOffset).toBe(keepFrom);
    const items: TailItem[] = [];
    for (let r = await iter.next(); !r.done; r = await iter.next()) {
      items.push(r.value);
      if (r.value.kind === 'record' && r.value.record.offset === 399) break;
    }
    await iter.return?.(undefined);
    const gap = items.find((i) => i.kind === 'gap');
    expect(gap).toMatchObject({ kind: 'gap', reason: 'retention', to: keepFrom });
    // What the reader got is in order, never a record twice, and ends with the kept segment whole.
    const offsets = items.flatMap((i) => (i.kind === 'record' ? [i.record.offset] : []));
    expect(offsets).toEqual([...new Set(offsets)].sort((a, b) => a - b));
    expect(offsets.slice(-(400 - keepFrom))).toEqual(range(keepFrom, 400));
  });

  it('tail cache should still report a damaged record on disk when the offset is read from disk', async () => {
    const log = await logWith({ tailCacheMaxBytes: 4 * 1024 });
    await appendMany(log, 400);
    const first = (await segmentFiles(dir))[0]!;
    const fh = await open(join(dir, first), 'r+');
    try {
      await fh.write(Buffer.from([0xff, 0xff, 0xff]), 0, 3, 40);
    } finally {
      await fh.close();
    }
    await expect(readAll(log, 0)).rejects.toMatchObject({ code: 'GW_ERR_LOG_CORRUPT' });
    // The newest records, still in memory, read as before.
    expectPayloads(await readAll(log, 395), range(395, 400));
  });

  it('tail reader of some types should pass over the others without a gap, and a consumer of them should move its cursor past them', async () => {
    const log = await logWith();
    for (let i = 0; i < 100; i++) log.append(i % 10 === 0 ? RECORD_TYPES.alert : RECORD_TYPES.ingest, payloadFor(i));
    await log.whenDurable(99);
    const ac = new AbortController();
    const items: TailItem[] = [];
    const passed: number[] = [];
    const done = (async () => {
      for await (const item of tailLog(log, 0, { signal: ac.signal, types: [RECORD_TYPES.alert], onPassed: (n) => passed.push(n) })) items.push(item);
    })();
    await until(() => passed.at(-1) === 100, 5000, 'the reader to pass the end');
    expect(items.map((i) => (i.kind === 'record' ? i.record.offset : i.kind))).toEqual(range(0, 10).map((i) => i * 10));
    ac.abort();
    await done;

    const handled: number[] = [];
    const consumer = createLogConsumer({
      log,
      name: 'alerts-only',
      types: [RECORD_TYPES.alert],
      handle: async (r) => {
        handled.push(r.offset);
      },
      retry: { initialMs: 1, maxMs: 1 },
      stateDir: dir,
      cursorPersistIntervalMs: 0,
    });
    await consumer.start();
    await until(() => consumer.position === 100, 5000, 'the consumer to pass the ingest records');
    expect(handled).toEqual(range(0, 10).map((i) => i * 10));
    // Only ingest records after the last alert: the cursor (and retention's bound) still moves.
    await appendMany(log, 50, 100);
    await until(() => consumer.position === 150 && consumer.oldestUnackedOffset === 150, 5000, 'the cursor past records of other types');
    expect(consumer.lagRecords).toBe(0);
    await consumer.close();
  });
});
