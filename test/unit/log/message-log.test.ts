import { open, readFile, stat, truncate, unlink, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isGatewayError, type GatewayError } from '../../../gateway/errors.js';
import { createMessageLog } from '../../../gateway/log/message-log.js';
import { HEADER_BYTES, segmentFileName } from '../../../gateway/log/record-format.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { createFaultyFiles } from '../../helpers/faulty-file.js';
import { observe, waitFor } from '../../helpers/wait.js';
import { appendMany, openLog, payloadFor, readAll, segmentFiles, tempDir } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

async function flipByte(file: string, position: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, position);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, position);
  } finally {
    await fh.close();
  }
}

async function startError(opts: Parameters<typeof openLog>[1] = {}): Promise<GatewayError> {
  try {
    const log = await openLog(dir, opts);
    await log.close();
  } catch (err) {
    if (isGatewayError(err)) return err;
    throw err;
  }
  throw new Error('start() succeeded on a corrupt log');
}

describe('message log', () => {
  it('message log should read back every record in order across segment rolls', async () => {
    const log = await openLog(dir);
    const offsets = await appendMany(log, 2000);
    expect(offsets).toEqual([...Array(2000).keys()]);
    const files = await segmentFiles(dir);
    expect(files.length).toBeGreaterThan(5);
    const segs = log.segments();
    expect(files).toEqual(segs.map((s) => segmentFileName(s.baseOffset)));
    for (const s of segs) expect(s.bytes).toBeLessThanOrEqual(16 * 1024);
    const records = await readAll(log);
    expect(records.map((r) => r.offset)).toEqual(offsets);
    records.forEach((r, i) => {
      expect(r.type).toBe(RECORD_TYPES.ingest);
      expect(r.payload.equals(payloadFor(i))).toBe(true);
    });
    await log.close();
  });

  it('message log should start a read at any offset, mid-segment', async () => {
    const log = await openLog(dir, { indexIntervalBytes: 512 });
    await appendMany(log, 3000);
    for (const from of [0, 1, 777, 1234, 2999]) {
      const got = await readAll(log, from, from + 5);
      expect(got.map((r) => r.offset)).toEqual([...Array(Math.min(5, 3000 - from)).keys()].map((k) => from + k));
      expect(got[0]!.payload.equals(payloadFor(from))).toBe(true);
    }
    expect(await readAll(log, 3000)).toEqual([]);
    await log.close();
  });

  it('message log should keep offsets across a restart', async () => {
    let log = await openLog(dir);
    await appendMany(log, 500);
    await log.close();
    log = await openLog(dir);
    expect(log.nextOffset).toBe(500);
    expect(log.recovery?.truncatedBytes).toBe(0);
    expect(log.recovery?.lastOffset).toBe(499);
    expect(await log.appendDurable(RECORD_TYPES.outgoing, Buffer.from('after restart'))).toBe(500);
    const all = await readAll(log);
    expect(all.map((r) => r.offset)).toEqual([...Array(501).keys()]);
    expect(all[500]!.type).toBe(RECORD_TYPES.outgoing);
    await log.close();
  });

  it('message log should truncate a torn tail and keep appending after it', async () => {
    let log = await openLog(dir);
    await appendMany(log, 300);
    await log.close();
    const files = await segmentFiles(dir);
    const last = join(dir, files[files.length - 1]!);
    const size = (await stat(last)).size;
    // Cut the last record in half, then add zeros a crashed file system could leave behind.
    await truncate(last, size - 10);
    await appendFile(last, Buffer.alloc(100));
    log = await openLog(dir);
    expect(log.recovery).toMatchObject({ truncatedBytes: HEADER_BYTES + payloadFor(299).length - 10 + 100, truncatedSegment: files[files.length - 1], lastOffset: 298 });
    expect(log.nextOffset).toBe(299);
    expect(await log.appendDurable(RECORD_TYPES.ingest, payloadFor(299))).toBe(299);
    await log.close();
    log = await openLog(dir);
    expect(log.recovery?.truncatedBytes).toBe(0);
    const all = await readAll(log);
    expect(all.map((r) => r.offset)).toEqual([...Array(300).keys()]);
    expect(all[299]!.payload.equals(payloadFor(299))).toBe(true);
    await log.close();
  });

  it('message log should refuse to start on a flipped byte in a segment that is not the last, naming segment and offset', async () => {
    const log = await openLog(dir);
    await appendMany(log, 2000);
    await log.close();
    const files = await segmentFiles(dir);
    const victim = files[2]!;
    const base = Number(victim.slice(0, 20));
    await flipByte(join(dir, victim), HEADER_BYTES + 3);
    const err = await startError();
    expect(err.code).toBe('GW_ERR_LOG_CORRUPT');
    expect(err.message).toContain(victim);
    expect(err.message).toContain(`offset ${base}`);
    expect(err.details).toMatchObject({ segment: victim, offset: base });
  });

  it('message log should refuse to start on damage in the last segment that valid records follow', async () => {
    const log = await openLog(dir, { segmentMaxBytes: 1024 * 1024 });
    await appendMany(log, 600);
    await log.close();
    const [only] = await segmentFiles(dir);
    // Second record: offset 1, far more than groupCommitMaxBytes (4096) before the end.
    const pos = HEADER_BYTES + payloadFor(0).length + HEADER_BYTES + 1;
    await flipByte(join(dir, only!), pos);
    const err = await startError({ segmentMaxBytes: 1024 * 1024 });
    expect(err.code).toBe('GW_ERR_LOG_CORRUPT');
    expect(err.details).toMatchObject({ segment: only, offset: 1 });
  });

  it('message log should skip mid-log corruption when skipCorrupt is set, and report it', async () => {
    let log = await openLog(dir);
    await appendMany(log, 2000);
    await log.close();
    const files = await segmentFiles(dir);
    const victim = files[2]!;
    const base = Number(victim.slice(0, 20));
    await flipByte(join(dir, victim), HEADER_BYTES + 3);
    log = await openLog(dir, { skipCorrupt: true });
    expect(log.recovery?.skipped).toEqual([expect.objectContaining({ segment: victim, offset: base, position: 0 })]);
    const all = await readAll(log);
    expect(all.map((r) => r.offset)).toEqual([...Array(2000).keys()].filter((o) => o !== base));
    for (const r of all) expect(r.payload.equals(payloadFor(r.offset))).toBe(true);
    expect(await log.appendDurable(RECORD_TYPES.ingest, payloadFor(2000))).toBe(2000);
    await log.close();
  });

  it('message log should detect a missing segment', async () => {
    let log = await openLog(dir);
    await appendMany(log, 2000);
    await log.close();
    const files = await segmentFiles(dir);
    await unlink(join(dir, files[3]!));
    const missingFrom = Number(files[3]!.slice(0, 20));
    const err = await startError();
    expect(err.code).toBe('GW_ERR_LOG_CORRUPT');
    expect(err.message).toContain(files[4]!);
    expect(err.details).toMatchObject({ segment: files[4], offset: missingFrom });
    log = await openLog(dir, { skipCorrupt: true });
    expect(log.recovery?.skipped[0]).toMatchObject({ segment: files[4], offset: missingFrom, position: -1 });
    expect(log.nextOffset).toBe(2000);
    await log.close();
  });

  it('message log read should trust the records start() verified and check the CRC of every record appended since', async () => {
    const opts = { segmentMaxBytes: 1024 * 1024, tailCacheMaxBytes: 0 };
    let log = await openLog(dir, opts);
    await appendMany(log, 300);
    await log.close();
    log = await openLog(dir, opts);
    await appendMany(log, 100, 300);
    const [only] = await segmentFiles(dir);
    const positionOf = (offset: number): number => {
      let pos = 0;
      for (let i = 0; i < offset; i++) pos += HEADER_BYTES + payloadFor(i).length;
      return pos;
    };
    // Damage after start: to record 10, checked by start(), and to record 350, appended since.
    await flipByte(join(dir, only!), positionOf(10) + HEADER_BYTES + 2);
    await flipByte(join(dir, only!), positionOf(350) + HEADER_BYTES + 2);
    const verified = await readAll(log, 0, 300);
    expect(verified.map((r) => r.offset)).toEqual([...Array(300).keys()]);
    expect(verified[10]!.payload.equals(payloadFor(10))).toBe(false);
    await expect(readAll(log, 300)).rejects.toMatchObject({ code: 'GW_ERR_LOG_CORRUPT', details: { offset: 350 } });
    await log.close();
    // The next start checks every record again, and finds record 10.
    const err = await startError(opts);
    expect(err.details).toMatchObject({ segment: only, offset: 10 });
  });

  it('message log should replay the same records identically twice', async () => {
    const log = await openLog(dir);
    for (let i = 0; i < 1500; i++) log.append(((i % 4) + 1) as 1 | 2 | 3 | 4, payloadFor(i));
    await log.whenDurable(1499);
    const a = await readAll(log);
    const b = await readAll(log);
    expect(a.length).toBe(1500);
    expect(b).toEqual(a);
    await log.close();
    const again = await openLog(dir);
    expect(await readAll(again)).toEqual(a);
    await again.close();
  });

  it('onDurable called after write() but before the fdatasync that covers it: the callback waits for the datasync', async () => {
    const faults = createFaultyFiles();
    const log = await createMessageLog({ dir, groupCommitIntervalMs: 1, groupCommitMaxBytes: 1024 * 1024, fileCheckIntervalMs: 0, openFile: faults.openFile });
    await log.start();
    const seg = join(dir, segmentFileName(0));
    faults.stallDatasyncs();
    const calls: { err: Error | null; offset: number; syncedBytes: number }[] = [];
    const done = new Promise<void>((resolve) => {
      log.append(RECORD_TYPES.ingest, Buffer.from('one'), (err, offset) => {
        calls.push({ err, offset, syncedBytes: faults.syncedSize(seg) });
        resolve();
      });
    });
    await waitFor(() => faults.stalled === 1, { timeoutMs: 2000, what: 'the group write to reach its fdatasync' });
    // Written to the file (page cache), not yet synced.
    expect((await stat(seg)).size).toBe(HEADER_BYTES + 3);
    // Bounded observation window: for 50 ms with the fdatasync held, no callback fires.
    await observe(50);
    expect(calls).toEqual([]);
    expect(log.durableOffset).toBe(0);
    faults.release();
    await done;
    // Called once, and only when the synced file covered the record.
    expect(calls).toEqual([{ err: null, offset: 0, syncedBytes: HEADER_BYTES + 3 }]);
    expect(log.durableOffset).toBe(1);
    await log.close();
  });

  it('message log should write a group at once when groupCommitMaxBytes is reached', async () => {
    const log = await createMessageLog({ dir, groupCommitIntervalMs: 1000, groupCommitMaxBytes: 2048 });
    await log.start();
    const t0 = Date.now();
    let last = -1;
    for (let i = 0; i < 100; i++) last = log.append(RECORD_TYPES.ingest, Buffer.alloc(40, i));
    await log.whenDurable(last - 20);
    expect(Date.now() - t0).toBeLessThan(900);
    await log.close();
  });

  it('message log with groupCommitIntervalMs 0 should commit what one turn of the event loop appended as one group', async () => {
    const log = await createMessageLog({ dir, groupCommitIntervalMs: 0 });
    await log.start();
    const fsyncs0 = log.stats().fsyncs;
    let last = -1;
    for (let i = 0; i < 100; i++) last = log.append(RECORD_TYPES.ingest, Buffer.alloc(40, i));
    await log.whenDurable(last);
    expect(log.stats().fsyncs - fsyncs0).toBe(1);
    // And nothing waits for a timer: with timeouts frozen, a lone record still becomes durable.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const lone = log.append(RECORD_TYPES.ingest, Buffer.alloc(40, 1));
      await log.whenDurable(lone);
      expect(log.stats().fsyncs - fsyncs0).toBe(2);
    } finally {
      vi.useRealTimers();
    }
    await log.close();
  });

  it('message log should serve reads from disk while appends continue', async () => {
    const log = await openLog(dir);
    await appendMany(log, 1000);
    let appending = true;
    const writer = (async () => {
      let i = 1000;
      while (appending) {
        let last = -1;
        for (let k = 0; k < 50; k++) last = log.append(RECORD_TYPES.ingest, payloadFor(i++));
        await log.whenDurable(last);
      }
    })();
    for (let round = 0; round < 5; round++) {
      const end = log.nextOffset;
      const got = await readAll(log);
      expect(got.length).toBe(end);
      expect(got.every((r, i) => r.offset === i && r.payload.equals(payloadFor(i)))).toBe(true);
    }
    appending = false;
    await writer;
    await log.close();
  });

  it('message log should hold a read of records not yet durable until their group commit', async () => {
    const log = await openLog(dir, { groupCommitIntervalMs: 100, groupCommitMaxBytes: 1024 * 1024 });
    for (let i = 0; i < 10; i++) log.append(RECORD_TYPES.ingest, payloadFor(i));
    expect(log.durableOffset).toBe(0);
    const seen: number[] = [];
    for await (const r of log.read(0)) {
      // A reader (an SSE resume) never sees a record a crash could still take back.
      expect(log.durableOffset).toBeGreaterThan(r.offset);
      seen.push(r.offset);
    }
    expect(seen).toEqual([...Array(10).keys()]);
    await log.close();
  });

  it('message log should report backpressure above the disk high-water mark', async () => {
    const log = await openLog(dir, { diskHighWaterBytes: 20_000 });
    expect(log.backpressured).toBe(false);
    await appendMany(log, 100);
    expect(log.backpressured).toBe(false);
    await appendMany(log, 500, 100);
    expect(log.stats().sizeBytes).toBeGreaterThan(20_000);
    expect(log.backpressured).toBe(true);
    await log.close();
  });

  it('message log should refuse appends after close with GW_ERR_LOG_CLOSED', async () => {
    const log = await openLog(dir);
    await log.close();
    await log.close();
    await expect(log.appendDurable(RECORD_TYPES.ingest, Buffer.from('late'))).rejects.toMatchObject({ code: 'GW_ERR_LOG_CLOSED' });
    expect(log.append(RECORD_TYPES.ingest, Buffer.from('late'))).toBe(-1);
  });

  it('message log should flush buffered records on close', async () => {
    let log = await openLog(dir, { groupCommitIntervalMs: 1000 });
    const results: (Error | null)[] = [];
    for (let i = 0; i < 10; i++) log.append(RECORD_TYPES.ingest, payloadFor(i), (err) => results.push(err));
    await log.close();
    expect(results).toEqual(Array(10).fill(null));
    log = await openLog(dir);
    expect(log.nextOffset).toBe(10);
    await log.close();
  });
});
