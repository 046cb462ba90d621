import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { applyRetention } from '../../../gateway/log/retention.js';
import { tailLog, type TailItem } from '../../../gateway/log/tail-reader.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { appendMany, openLog, payloadFor, tempDir, until } from './log-test-helpers.js';

const HOUR = 3_600_000;
let dir: string;
let cleanup: () => Promise<void>;
const logs: FileMessageLog[] = [];
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-tail-'));
});
afterEach(async () => {
  for (const l of logs.splice(0)) await l.close();
  await cleanup();
});

async function logAt(clock?: ManualClock): Promise<FileMessageLog> {
  const log = await openLog(dir, clock === undefined ? {} : { clock });
  logs.push(log);
  return log;
}

/** Iterates in the background, keeping every item (payloads copied) until the iteration ends. */
function collect(iter: AsyncIterable<TailItem>): { items: TailItem[]; offsets: () => number[]; done: Promise<void> } {
  const items: TailItem[] = [];
  const done = (async () => {
    for await (const item of iter) {
      items.push(item.kind === 'record' ? { kind: 'record', record: { ...item.record, payload: Buffer.from(item.record.payload) } } : item);
    }
  })();
  return { items, offsets: () => items.flatMap((i) => (i.kind === 'record' ? [i.record.offset] : [])), done };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('tail reader', () => {
  it('tail reader should hand out the durable records from its offset, then follow new appends as they become durable', async () => {
    const log = await logAt();
    await appendMany(log, 50);
    const ac = new AbortController();
    const c = collect(tailLog(log, 20, { signal: ac.signal }));
    await until(() => c.offsets().length === 30, 5000, 'the existing records');
    expect(c.offsets()).toEqual(range(20, 50));
    // Nothing new yet: the reader waits (on the group commit, not by polling) and picks these up.
    await appendMany(log, 25, 50);
    await until(() => c.offsets().length === 55, 5000, 'the new records');
    expect(c.offsets()).toEqual(range(20, 75));
    const r = c.items.find((i) => i.kind === 'record' && i.record.offset === 60);
    expect(r?.kind === 'record' && r.record.payload.equals(payloadFor(60))).toBe(true);
    ac.abort();
    await c.done;
  });

  it('tail reader should end cleanly when its signal aborts while it waits for new records', async () => {
    const log = await logAt();
    await appendMany(log, 5);
    const ac = new AbortController();
    const c = collect(tailLog(log, 0, { signal: ac.signal }));
    await until(() => c.offsets().length === 5);
    ac.abort();
    let ended = false;
    void c.done.then(() => (ended = true));
    await until(() => ended, 2000, 'the iteration to end after abort');
    await expect(c.done).resolves.toBeUndefined();
  });

  it('tail reader should end cleanly when the log closes under it', async () => {
    const log = await logAt();
    await appendMany(log, 5);
    const c = collect(tailLog(log, 0));
    await until(() => c.offsets().length === 5);
    await log.close();
    await expect(c.done).resolves.toBeUndefined();
  });

  it('tail reader should hand out only the record types asked for', async () => {
    const log = await logAt();
    for (let i = 0; i < 10; i++) log.append(i % 3 === 0 ? RECORD_TYPES.deadLetter : RECORD_TYPES.ingest, payloadFor(i));
    await log.whenDurable(9);
    const ac = new AbortController();
    const c = collect(tailLog(log, 0, { signal: ac.signal, types: [RECORD_TYPES.deadLetter] }));
    await until(() => c.offsets().length === 4);
    expect(c.offsets()).toEqual([0, 3, 6, 9]);
    ac.abort();
    await c.done;
  });

  it('tail reader asked for an offset below retention should say earliest first, then go on from the first offset', async () => {
    const clock = new ManualClock(0);
    const log = await logAt(clock);
    await appendMany(log, 1000);
    clock.set(10 * HOUR);
    await appendMany(log, 200, 1000);
    const result = await applyRetention(log, { retentionMs: HOUR, now: 10 * HOUR, protectedOffset: 700 });
    expect(result.deleted.length).toBeGreaterThan(0);
    const first = log.firstOffset;
    expect(first).toBeGreaterThan(100);
    const ac = new AbortController();
    const c = collect(tailLog(log, 100, { signal: ac.signal }));
    await until(() => c.offsets().length === 1200 - first);
    expect(c.items[0]).toEqual({ kind: 'earliest', requested: 100, firstOffset: first });
    expect(c.offsets()).toEqual(range(first, 1200));
    expect(c.items.filter((i) => i.kind !== 'record')).toHaveLength(1);
    ac.abort();
    await c.done;
  });

  it('tail reader should report segments deleted by retention while it reads as a gap, never skip them silently', async () => {
    const clock = new ManualClock(0);
    const log = await logAt(clock);
    await appendMany(log, 2000);
    clock.set(10 * HOUR);
    const segs = log.segments();
    expect(segs.length).toBeGreaterThan(6);
    const ac = new AbortController();
    const iter = tailLog(log, 0, { signal: ac.signal })[Symbol.asyncIterator]();
    // The reader is inside the first segment when retention runs...
    const firstItem = await iter.next();
    expect(firstItem.value).toMatchObject({ kind: 'record', record: { offset: 0 } });
    const protectedOffset = segs[5]!.baseOffset;
    const result = await applyRetention(log, { retentionMs: HOUR, now: 10 * HOUR, protectedOffset });
    expect(result.deleted).toHaveLength(5);
    const items: TailItem[] = [firstItem.value as TailItem];
    let seen = 1;
    while (seen < 2000) {
      const n = await iter.next();
      if (n.done === true) break;
      items.push(n.value);
      seen = n.value.kind === 'record' ? n.value.record.offset + 1 : n.value.kind === 'gap' ? n.value.to : seen;
    }
    ac.abort();
    await iter.return?.(undefined);
    const gaps = items.filter((i) => i.kind === 'gap');
    expect(gaps).toHaveLength(1);
    const gap = gaps[0]!;
    expect(gap).toMatchObject({ kind: 'gap', reason: 'retention', to: protectedOffset });
    // Every offset is accounted for, once: handed out as a record or named in the gap.
    const covered: number[] = [];
    for (const i of items) {
      if (i.kind === 'record') covered.push(i.record.offset);
      if (i.kind === 'gap') covered.push(...range(i.from, i.to));
    }
    expect(covered).toEqual(range(0, 2000));
  });
});
