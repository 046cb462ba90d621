import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { createMessageLog, type FileMessageLog } from '../../../gateway/log/message-log.js';
import { HEADER_BYTES } from '../../../gateway/log/record-format.js';
import { createTailCache } from '../../../gateway/log/tail-cache.js';
import { tailLog, type TailItem } from '../../../gateway/log/tail-reader.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const dirs: string[] = [];
const logs: FileMessageLog[] = [];
afterEach(async () => {
  for (const l of logs.splice(0)) await l.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function newLog(options: Record<string, number>): Promise<FileMessageLog> {
  const dir = await mkdtemp(join(tmpdir(), 'pulsegate-tailbounds-'));
  dirs.push(dir);
  const log = await createMessageLog({ dir, groupCommitIntervalMs: 1, ...options });
  await log.start();
  logs.push(log);
  return log;
}
const payloadFor = (i: number): Buffer => Buffer.from(`reading-${i}-${'x'.repeat(40)}`);

describe('tail cache bounds', () => {
  it('tail cache should free what it evicts: memory held stays near its bound with few large group commits', () => {
    const cache = createTailCache(4 * 1024 * 1024);
    // Group commits of about 1 MiB (the default groupCommitMaxBytes), one record each.
    const chunk = Buffer.alloc(1024 * 1024 - 200);
    chunk.writeUInt32LE(chunk.length - HEADER_BYTES, 4);
    gc();
    const base = process.memoryUsage().arrayBuffers;
    let held = 0;
    for (let i = 0; i < 60; i++) {
      cache.push(i, i + 1, chunk, 0, chunk.length);
      gc();
      held = Math.max(held, process.memoryUsage().arrayBuffers - base);
    }
    expect(cache.bytes).toBeLessThanOrEqual(4 * 1024 * 1024);
    // The bound plus the entry being added: never the evicted ones as well.
    expect(held).toBeLessThan(6 * 1024 * 1024);
  });

  it('tail cache should not hand out records of segments retention deleted after a read from disk', async () => {
    // Group commits of 4 KiB, segments of 4 KiB; a cache that holds the newest few group commits.
    const log = await newLog({ groupCommitMaxBytes: 4096, segmentMaxBytes: 4096, tailCacheMaxBytes: 14 * 1024 });
    let last = -1;
    for (let i = 0; i < 210; i++) last = log.append(1, payloadFor(i));
    await log.whenDurable(last);
    const segs = log.segments();
    expect(segs.length).toBeGreaterThan(3);
    const iter = tailLog(log, 0)[Symbol.asyncIterator]();
    const first = await iter.next(); // record 0, from disk (evicted from the cache long ago)
    const keepFrom = segs.at(-1)!.baseOffset;
    await log.deleteSegmentsBefore(keepFrom);
    const items: TailItem[] = [first.value!];
    for (let r = await iter.next(); !r.done; r = await iter.next()) {
      items.push(r.value);
      if (r.value.kind === 'record' && r.value.record.offset === last) break;
    }
    await iter.return?.(undefined);
    const offsets = items.flatMap((i) => (i.kind === 'record' ? [i.record.offset] : []));
    // The deleted segments after the one being read are a gap, as they would be from disk.
    expect(offsets.filter((o) => o >= segs[1]!.baseOffset && o < keepFrom)).toEqual([]);
    expect(items.filter((i) => i.kind === 'gap')).toEqual([{ kind: 'gap', from: segs[1]!.baseOffset, to: keepFrom, reason: 'retention' }]);
  });
});
