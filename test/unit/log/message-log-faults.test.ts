import { truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { segmentFileName } from '../../../gateway/log/record-format.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { createFaultyFiles, type FaultyFiles } from '../../helpers/faulty-file.js';
import { waitFor } from '../../helpers/wait.js';
import { readAll, tempDir } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-log-faults-'));
});
afterEach(async () => {
  await cleanup();
});

async function openFaultyLog(faults: FaultyFiles): Promise<FileMessageLog> {
  const log = await createMessageLog({
    dir,
    groupCommitIntervalMs: 1,
    groupCommitMaxBytes: 4096,
    segmentMaxBytes: 16 * 1024,
    writeRetryInitialMs: 5,
    writeRetryMaxMs: 20,
    fileCheckIntervalMs: 0,
    openFile: faults.openFile,
  });
  await log.start();
  return log;
}

interface Outcome {
  readonly returned: number;
  readonly err: Error | null;
  readonly offset: number;
}

/** Appends one record and waits (at most 3 s: a callback that never comes is a failure too) for its callback. */
function appendOne(log: FileMessageLog, payload: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no onDurable callback for ${payload} within 3 s`)), 3000);
    const returned = log.append(RECORD_TYPES.ingest, Buffer.from(payload), (err, offset) => {
      clearTimeout(timer);
      resolve({ returned, err, offset });
    });
  });
}

function expectRetryableLogIo(err: Error | null): void {
  expect(isGatewayError(err)).toBe(true);
  expect(err).toMatchObject({ code: 'GW_ERR_LOG_IO', retryable: true });
}

/** Reopens the log without faults and returns offset -> payload of everything it reads back. */
async function readBack(): Promise<Map<number, string>> {
  const log = await createMessageLog({ dir, groupCommitMaxBytes: 4096, segmentMaxBytes: 16 * 1024, fileCheckIntervalMs: 0 });
  await log.start();
  const out = new Map((await readAll(log)).map((r) => [r.offset, r.payload.toString()]));
  await log.close();
  return out;
}

describe('message log under injected disk faults', () => {
  it('failed fdatasync: the log refuses appends (retryable GW_ERR_LOG_IO) until its repair succeeded, and what it acked is exactly what a restart reads back', async () => {
    const faults = createFaultyFiles();
    const log = await openFaultyLog(faults);
    const acked = new Map<number, string>();
    for (let i = 0; i < 5; i++) {
      const o = await appendOne(log, `before-${i}`);
      expect(o.err).toBeNull();
      acked.set(o.offset, `before-${i}`);
    }

    faults.failDatasyncs('EIO');
    const lost = await appendOne(log, 'written-but-not-synced');
    expectRetryableLogIo(lost.err);
    expect(log.writeFailure).toMatchObject({ code: 'GW_ERR_LOG_IO', retryable: true });
    expect(log.backpressured).toBe(true);
    expect(log.durableOffset).toBe(5);

    // The repair probes fail too while the disk does: the log stays refusing.
    let injected = faults.injected;
    await waitFor(() => faults.injected >= injected + 3, { timeoutMs: 5000, what: 'three failed repair attempts' });
    const refused = await appendOne(log, 'refused-while-failing');
    expect(refused.returned).toBe(-1);
    expectRetryableLogIo(refused.err);
    expect(log.writeFailure).not.toBeNull();

    // Then a disk that syncs (nothing) but takes no write: the repair's probe write fails, so
    // the log still refuses; cutting the file back and syncing alone proves nothing.
    faults.heal();
    faults.failWrites('ENOSPC');
    injected = faults.injected;
    await waitFor(() => faults.injected >= injected + 2, { timeoutMs: 5000, what: 'two failed probe writes' });
    expect(log.writeFailure).not.toBeNull();
    expectRetryableLogIo((await appendOne(log, 'refused-while-full')).err);

    faults.heal();
    await waitFor(() => log.writeFailure === null, { timeoutMs: 5000, what: 'the repair to succeed' });
    for (let i = 0; i < 3; i++) {
      const o = await appendOne(log, `after-${i}`);
      expect(o.err).toBeNull();
      acked.set(o.offset, `after-${i}`);
    }
    await log.close();

    // Offsets of the refused records are handed out again; their payloads are nowhere.
    expect([...acked.keys()]).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(await readBack()).toEqual(acked);
  });

  it('failed write (ENOSPC): the group gets the error, not an ack, and after the repair the log appends again with nothing of the failed group on disk', async () => {
    const faults = createFaultyFiles();
    const log = await openFaultyLog(faults);
    const acked = new Map<number, string>();
    const first = await appendOne(log, 'first');
    acked.set(first.offset, 'first');

    faults.failWrites('ENOSPC', 1);
    const group = await Promise.all([appendOne(log, 'full-a'), appendOne(log, 'full-b')]);
    for (const o of group) expectRetryableLogIo(o.err);
    expect(log.writeFailure?.message).toContain('ENOSPC');

    await waitFor(() => log.writeFailure === null, { timeoutMs: 5000, what: 'the repair to succeed' });
    const next = await appendOne(log, 'after');
    expect(next.err).toBeNull();
    acked.set(next.offset, 'after');
    await log.close();
    expect(await readBack()).toEqual(acked);
  });

  it('a disk slower than appends: while a write hangs nothing is acked, and past maxPendingBytes the log reports backpressure', async () => {
    const faults = createFaultyFiles();
    const log = await createMessageLog({ dir, groupCommitIntervalMs: 1, groupCommitMaxBytes: 4096, maxPendingBytes: 8192, fileCheckIntervalMs: 0, openFile: faults.openFile });
    await log.start();
    faults.stallWrites();
    let acked = 0;
    log.append(RECORD_TYPES.ingest, Buffer.alloc(100, 1), () => acked++);
    await waitFor(() => faults.stalled === 1, { timeoutMs: 2000, what: 'the first group write to hang' });
    expect(log.backpressured).toBe(false);
    let last = -1;
    for (let i = 0; i < 100; i++) last = log.append(RECORD_TYPES.ingest, Buffer.alloc(100, 2), () => acked++);
    expect(log.stats().pendingBytes).toBeGreaterThan(8192);
    expect(log.backpressured).toBe(true);
    expect(acked).toBe(0);
    faults.release();
    await log.whenDurable(last);
    expect(acked).toBe(101);
    expect(log.backpressured).toBe(false);
    await log.close();
  });

  it('a datasync that does not sync is recorded with the bytes it claimed, so a power cut can be played back: the acks past the last real sync are what would be lost', async () => {
    const faults = createFaultyFiles();
    const log = await openFaultyLog(faults);
    const seg = join(dir, segmentFileName(0));
    const synced = await appendOne(log, 'really-synced');
    expect(synced.err).toBeNull();
    const syncedSize = faults.syncedSize(seg);
    expect(syncedSize).toBeGreaterThan(0);

    faults.skipDatasyncs(true);
    const claimed = await appendOne(log, 'claimed-only');
    // The log cannot tell: it acks. The handle knows the claim was hollow.
    expect(claimed.err).toBeNull();
    expect(faults.unsyncedClaims).toEqual([{ path: seg, size: expect.any(Number) as number, syncedSize }]);
    expect(faults.unsyncedClaims[0]!.size).toBeGreaterThan(syncedSize);
    await log.close();

    // Power cut: what the page cache held past the last real sync is gone.
    await truncate(seg, syncedSize);
    expect(await readBack()).toEqual(new Map([[synced.offset, 'really-synced']]));
  });
});
