import { mkdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { isGatewayError } from '../../../gateway/errors.js';
import { fillDisk, mountTmpfs } from '../../helpers/disk.js';
import { mulberry32 } from '../../helpers/random.js';
import { waitFor } from '../../helpers/wait.js';

// A real small filesystem (tmpfs, 8 MiB): ENOSPC comes from the kernel, not from a fake file handle.
const tmpfs = mountTmpfs(8, 'pg-diskfull-');
const mounted = tmpfs !== null;
const mountPoint = tmpfs?.dir ?? '';
afterAll(() => tmpfs?.unmount());

const until = (cond: () => boolean, timeoutMs: number, what: string): Promise<void> => waitFor(cond, { timeoutMs, what });

describe.runIf(mounted)('message log on a full disk', () => {
  let dir: string;
  beforeAll(() => {
    dir = join(mountPoint, 'log');
    mkdirSync(dir);
  });

  it('disk full: the log acks nothing it could not write, resumes once space is back, and a restart finds no damage', async () => {
    const random = mulberry32(12);
    const payload = (i: number): Buffer => Buffer.from(`r${i}:${'x'.repeat(Math.floor(random() * 3000))}`);
    let log: FileMessageLog = await createMessageLog({ dir, segmentMaxBytes: 256 * 1024, groupCommitMaxBytes: 32 * 1024, writeRetryInitialMs: 20, writeRetryMaxMs: 100 });
    await log.start();
    const acked = new Map<number, string>();
    const refused: unknown[] = [];
    const append = (i: number): void => {
      const p = payload(i);
      log.append(1, p, (err, offset) => {
        if (err === null) acked.set(offset, p.toString());
        else refused.push(err);
      });
    };
    let i = 0;
    for (; i < 200; i++) append(i);
    await until(() => acked.size === 200, 5000, 'first appends durable');

    const filler = fillDisk(mountPoint);
    // Appends into the full disk: the group commit fails; nothing of it may be acknowledged.
    for (let k = 0; k < 400 && log.writeFailure === null; k++) {
      append(i++);
      // Pacing, not a wait: spread the appends over several group commits.
      if (k % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => log.writeFailure !== null, 5000, 'the log to notice ENOSPC');
    expect(log.writeFailure!.code).toBe('GW_ERR_LOG_IO');
    expect(log.writeFailure!.retryable).toBe(true);
    expect(log.writeFailure!.message).toMatch(/ENOSPC/);
    expect(log.backpressured).toBe(true);
    await until(() => refused.length > 0, 5000, 'refused appends');
    expect(refused.every((e) => isGatewayError(e, 'GW_ERR_LOG_IO'))).toBe(true);
    // While failing, appends are refused at once.
    const before = acked.size;
    append(i++);
    await until(() => refused.length > 0 && acked.size === before, 1000, 'refusal');

    unlinkSync(filler);
    await until(() => log.writeFailure === null, 10_000, 'the log to repair itself');
    expect(log.backpressured).toBe(false);
    // Nothing past the durable end survives the repair: a partly written group, left in place, is
    // damage that the records appended next would follow (a crash then = refused start).
    const activeSeg = log.segments().find((s) => s.active)!;
    expect(statSync(join(dir, activeSeg.file)).size).toBe(activeSeg.bytes);
    const resumedFrom = log.nextOffset;
    const target = acked.size + 100;
    for (let k = 0; k < 100; k++) append(i++);
    await until(() => acked.size === target, 5000, 'appends after the repair durable');
    // Offsets stay contiguous: the refused records' offsets were handed out again.
    expect([...acked.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: acked.size }, (_, k) => k));
    expect(resumedFrom).toBe(acked.size - 100);
    await log.close();

    // A restart sees exactly the acknowledged records: no damage followed by valid records.
    log = await createMessageLog({ dir, segmentMaxBytes: 256 * 1024, groupCommitMaxBytes: 32 * 1024 });
    await log.start();
    const seen = new Map<number, string>();
    for await (const r of log.read(0)) seen.set(r.offset, r.payload.toString());
    expect(seen.size).toBe(acked.size);
    for (const [offset, text] of acked) expect(seen.get(offset), `offset ${offset}`).toBe(text);
    await log.close();
  }, 60_000);
});
