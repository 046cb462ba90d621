import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { GatewayError } from '../../../gateway/errors.js';
import { decodeDeadLetter } from '../../../gateway/log/dead-letter.js';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { createOutbox, decodeOutgoingAck, type Outbox, type OutboxOptions } from '../../../gateway/log/outbox.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { openLog, readAll, tempDir, until } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
const open: { close(): Promise<void> }[] = [];
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-outbox-'));
});
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
  await cleanup();
});

async function logAt(extra: Parameters<typeof openLog>[1] = {}): Promise<FileMessageLog> {
  const log = await openLog(`${dir}/log`, extra);
  open.push(log);
  return log;
}

async function outboxOn(log: FileMessageLog, send: OutboxOptions['send'], extra: Partial<OutboxOptions> = {}): Promise<Outbox> {
  const outbox = await createOutbox({ log, destination: 'influx', send, retry: { initialMs: 1, maxMs: 5 }, ...extra });
  open.push(outbox);
  await outbox.start();
  return outbox;
}

const text = (b: Buffer): string => b.toString('utf8');

describe('outbox', () => {
  it('outbox should deliver enqueued records in order and ack each in the log', async () => {
    const log = await logAt();
    const got: string[] = [];
    const outbox = await outboxOn(log, async (p) => {
      got.push(text(p));
    });
    const offsets: number[] = [];
    for (let i = 0; i < 20; i++) offsets.push(await outbox.enqueue(Buffer.from(`batch-${i}`)));
    await until(() => outbox.delivered === 20);
    expect(got).toEqual([...Array(20).keys()].map((i) => `batch-${i}`));
    expect(outbox.pending).toBe(0);
    expect(outbox.lastAckedOffset).toBe(offsets[19]);
    await until(() => log.durableOffset === log.nextOffset);
    const acks = (await readAll(log)).filter((r) => r.type === RECORD_TYPES.outgoingAck).map((r) => decodeOutgoingAck(r.payload));
    expect(acks.map((a) => a.offset)).toEqual(offsets);
    expect(acks.every((a) => a.destination === 'influx' && a.outcome === 0)).toBe(true);
  });

  it('outbox should resend every un-acked record in order after close and reopen', async () => {
    let log = await logAt();
    let allow = 4;
    const first: string[] = [];
    let outbox = await outboxOn(log, async (p) => {
      if (allow-- <= 0) throw new Error('store down');
      first.push(text(p));
    });
    for (let i = 0; i < 10; i++) {
      await outbox.enqueue(Buffer.from(`batch-${i}`));
      // Unrelated traffic interleaved with the outgoing records.
      log.append(RECORD_TYPES.ingest, Buffer.from(`reading-${i}`));
    }
    await until(() => first.length === 4 && outbox.retries > 2);
    expect(outbox.pending).toBe(6);
    await outbox.close();
    await log.close();

    log = await logAt();
    const second: string[] = [];
    // Tracking only two offsets makes the restarted sender scan the log for the rest.
    outbox = await outboxOn(
      log,
      async (p) => {
        second.push(text(p));
      },
      { maxTrackedOffsets: 2 },
    );
    await until(() => second.length >= 6);
    await new Promise((r) => setTimeout(r, 30));
    expect(second).toEqual([4, 5, 6, 7, 8, 9].map((i) => `batch-${i}`));
    expect(outbox.pending).toBe(0);

    // A third start finds nothing left to send.
    await outbox.close();
    await log.close();
    log = await logAt();
    const third: string[] = [];
    outbox = await outboxOn(log, async (p) => {
      third.push(text(p));
    });
    expect(outbox.pending).toBe(0);
    await new Promise((r) => setTimeout(r, 30));
    expect(third).toEqual([]);
  });

  it('outbox should resume from its persisted cursor after a restart: the start-up scan begins at the cursor, not at the start of the log', async () => {
    let log = await logAt();
    let outbox = await outboxOn(log, async () => {}, { stateDir: `${dir}/state`, cursorPersistIntervalMs: 0 });
    for (let i = 0; i < 5; i++) await outbox.enqueue(Buffer.from(`a-${i}`));
    await until(() => outbox.delivered === 5);
    let down = true;
    const sent: string[] = [];
    await outbox.close();
    outbox = await outboxOn(
      log,
      async (p) => {
        if (down) throw new Error('down');
        sent.push(text(p));
      },
      { stateDir: `${dir}/state` },
    );
    const bOffsets: number[] = [];
    for (let i = 0; i < 3; i++) bOffsets.push(await outbox.enqueue(Buffer.from(`b-${i}`)));
    await outbox.close();
    await log.close();
    log = await logAt();
    down = false;
    // The real log, watched: where does the outbox's start-up scan begin?
    const readsFrom: number[] = [];
    const watched = new Proxy(log, {
      get(target, key) {
        if (key === 'read') return (from: number, to?: number) => (readsFrom.push(from), target.read(from, to));
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    outbox = await outboxOn(watched, async (p) => {
      sent.push(text(p));
    }, { stateDir: `${dir}/state` });
    expect(outbox.pending).toBe(3);
    // The a-records and their acks below the cursor are not read again: the scan starts at it.
    expect(bOffsets[0]).toBeGreaterThanOrEqual(10);
    expect(readsFrom[0]).toBe(bOffsets[0]);
    await until(() => sent.length === 3);
    expect(sent).toEqual(['b-0', 'b-1', 'b-2']);
    expect(Math.min(...readsFrom)).toBe(bOffsets[0]);
  });

  it('outbox should retry a record that fails N times and keep the order', async () => {
    const log = await logAt();
    const attempts = new Map<string, number>();
    const got: string[] = [];
    const outbox = await outboxOn(log, async (p, ctx) => {
      const k = text(p);
      attempts.set(k, ctx.attempt);
      if (k === 'batch-1' && ctx.attempt <= 3) throw new GatewayError('GW_ERR_SINK_UNAVAILABLE', 'down', { retryable: true });
      got.push(k);
    });
    for (let i = 0; i < 4; i++) await outbox.enqueue(Buffer.from(`batch-${i}`));
    await until(() => outbox.delivered === 4);
    expect(got).toEqual(['batch-0', 'batch-1', 'batch-2', 'batch-3']);
    expect(attempts.get('batch-1')).toBe(4);
    expect(outbox.retries).toBe(3);
  });

  it('outbox should dead-letter a record refused for good and go on with the next', async () => {
    const log = await logAt();
    const got: string[] = [];
    const dead: number[] = [];
    const outbox = await outboxOn(
      log,
      async (p) => {
        if (text(p) === 'poison') throw new GatewayError('GW_ERR_SINK_WRITE', 'field type conflict', { retryable: false });
        got.push(text(p));
      },
      { onDeadLetter: (offset) => dead.push(offset) },
    );
    await outbox.enqueue(Buffer.from('ok-1'));
    const poison = await outbox.enqueue(Buffer.from('poison'));
    await outbox.enqueue(Buffer.from('ok-2'));
    await until(() => outbox.delivered === 2 && outbox.deadLettered === 1);
    expect(got).toEqual(['ok-1', 'ok-2']);
    expect(dead).toEqual([poison]);
    expect(outbox.pending).toBe(0);
    await until(() => log.durableOffset === log.nextOffset);
    const records = await readAll(log);
    const dl = records.filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
    expect(dl).toHaveLength(1);
    expect(dl[0]!.topic).toBe('outbox/influx');
    expect(dl[0]!.detail).toContain('GW_ERR_SINK_WRITE');
    expect(dl[0]!.payload.toString()).toBe('poison');
    const acks = records.filter((r) => r.type === RECORD_TYPES.outgoingAck).map((r) => decodeOutgoingAck(r.payload));
    expect(acks.find((a) => a.offset === poison)?.outcome).toBe(1);
  });

  it('outbox should send the records waiting behind a slow send in groups through sendMany, ack each, and resend none after a restart', async () => {
    let log = await logAt();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const singles: string[] = [];
    const groups: string[][] = [];
    const contexts: number[][] = [];
    let started = 0;
    let outbox = await outboxOn(
      log,
      async (p) => {
        started++;
        await gate;
        singles.push(text(p));
      },
      {
        sendMany: async (ps, ctxs) => {
          groups.push(ps.map(text));
          contexts.push(ctxs.map((c) => c.offset));
        },
        maxGroupRecords: 4,
        readAheadRecords: 16,
      },
    );
    const offsets: number[] = [];
    // The first is sent alone (nothing waits behind it yet) and holds the sender until released.
    offsets.push(await outbox.enqueue(Buffer.from('batch-0')));
    await until(() => started === 1);
    for (let i = 1; i < 11; i++) offsets.push(await outbox.enqueue(Buffer.from(`batch-${i}`)));
    release();
    await until(() => outbox.delivered === 11);
    expect(singles).toEqual(['batch-0']);
    // 10 waiting, read ahead at once: groups of at most 4, in order, then what is left.
    expect(groups).toEqual([
      ['batch-1', 'batch-2', 'batch-3', 'batch-4'],
      ['batch-5', 'batch-6', 'batch-7', 'batch-8'],
      ['batch-9', 'batch-10'],
    ]);
    expect(contexts.flat()).toEqual(offsets.slice(1));
    expect(outbox.groupsDelivered).toBe(3);
    expect(outbox.pending).toBe(0);
    expect(outbox.lastAckedOffset).toBe(offsets[10]);
    await until(() => log.durableOffset === log.nextOffset);
    const acks = (await readAll(log)).filter((r) => r.type === RECORD_TYPES.outgoingAck).map((r) => decodeOutgoingAck(r.payload));
    expect(acks.map((a) => a.offset)).toEqual(offsets);
    expect(acks.every((a) => a.outcome === 0)).toBe(true);

    await outbox.close();
    await log.close();
    log = await logAt();
    const again: string[] = [];
    outbox = await outboxOn(log, async (p) => void again.push(text(p)), { sendMany: async (ps) => void again.push(...ps.map(text)) });
    expect(outbox.pending).toBe(0);
    await new Promise((r) => setTimeout(r, 30));
    expect(again).toEqual([]);
  });

  it('outbox should send the records of a failed group one by one: a record refused for good is dead-lettered alone, the others are delivered and acked once', async () => {
    const log = await logAt();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const singles: string[] = [];
    const groups: string[][] = [];
    const dead: number[] = [];
    let started = false;
    const outbox = await outboxOn(
      log,
      async (p) => {
        if (text(p) === 'first') {
          started = true;
          await gate;
        }
        if (text(p) === 'poison') throw new GatewayError('GW_ERR_SINK_WRITE', 'unknown sensor kind', { retryable: false });
        singles.push(text(p));
      },
      {
        sendMany: async (ps) => {
          groups.push(ps.map(text));
          // All or none, as the embedded store's transaction.
          if (ps.some((p) => text(p) === 'poison')) throw new GatewayError('GW_ERR_SINK_WRITE', 'unknown sensor kind', { retryable: false });
        },
        maxGroupRecords: 3,
        onDeadLetter: (offset) => dead.push(offset),
      },
    );
    await outbox.enqueue(Buffer.from('first'));
    await until(() => started);
    const names = ['a', 'poison', 'b', 'c', 'd', 'e'];
    const offsets = new Map<string, number>();
    for (const n of names) offsets.set(n, await outbox.enqueue(Buffer.from(n)));
    release();
    await until(() => outbox.delivered === 6 && outbox.deadLettered === 1);
    // [a, poison, b] fails as a whole and is sent again one by one; then grouping resumes.
    expect(groups).toEqual([
      ['a', 'poison', 'b'],
      ['c', 'd', 'e'],
    ]);
    expect(singles).toEqual(['first', 'a', 'b']);
    expect(dead).toEqual([offsets.get('poison')]);
    expect(outbox.groupsFailed).toBe(1);
    expect(outbox.groupsDelivered).toBe(1);
    expect(outbox.pending).toBe(0);
    await until(() => log.durableOffset === log.nextOffset);
    const acks = (await readAll(log)).filter((r) => r.type === RECORD_TYPES.outgoingAck).map((r) => decodeOutgoingAck(r.payload));
    const byOffset = new Map(acks.map((a) => [a.offset, a.outcome]));
    expect(acks).toHaveLength(7);
    expect(byOffset.size).toBe(7);
    expect(byOffset.get(offsets.get('poison')!)).toBe(1);
    for (const n of ['a', 'b', 'c', 'd', 'e']) expect(byOffset.get(offsets.get(n)!)).toBe(0);
  });

  it('outbox should leave a group whose sendMany is in flight at close un-acked, and resend all of it after a restart', async () => {
    let log = await logAt();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    let inGroup = false;
    let outbox = await outboxOn(
      log,
      async () => {
        started++;
        await gate;
      },
      {
        sendMany: async (_ps, ctxs) => {
          inGroup = true;
          // Like the store, which finishes its transaction but is told the outbox is closing.
          await new Promise((r) => setTimeout(r, 20));
          if (ctxs[0]!.signal.aborted) throw new Error('aborted');
        },
      },
    );
    await outbox.enqueue(Buffer.from('first'));
    await until(() => started === 1);
    for (let i = 0; i < 4; i++) await outbox.enqueue(Buffer.from(`g-${i}`));
    release();
    await until(() => inGroup);
    await outbox.close();
    expect(outbox.delivered).toBe(1);
    await log.close();

    log = await logAt();
    const again: string[] = [];
    outbox = await outboxOn(log, async (p) => void again.push(text(p)));
    expect(outbox.pending).toBe(4);
    await until(() => outbox.delivered === 4);
    expect(again).toEqual(['g-0', 'g-1', 'g-2', 'g-3']);
  });

  it('outbox should finish the records of a group whose acks the log took before failing, and ack each of the group once after it recovers', async () => {
    const real = await logAt();
    let acks = 0;
    let failed = false;
    let failing = false;
    // From the group's third ack on, the log refuses appends for a moment (an I/O error it then
    // recovers from), as a log does after the first two were durable.
    const log = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'appendDurable') {
          return (type: number, payload: Buffer) => {
            if (type === RECORD_TYPES.outgoingAck && ++acks === 4 && !failed) {
              failed = true;
              failing = true;
              setTimeout(() => (failing = false), 10);
            }
            if (failing) return Promise.reject(new GatewayError('GW_ERR_LOG_IO', 'disk gone for a moment'));
            return target.appendDurable(type as never, payload);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as FileMessageLog;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    const sent: string[] = [];
    const outbox = await outboxOn(
      log,
      async (p) => {
        started++;
        if (text(p) === 'first') await gate;
        sent.push(text(p));
      },
      { sendMany: async (ps) => void sent.push(...ps.map((p) => `[${text(p)}]`)), maxGroupRecords: 4 },
    );
    const offsets = [await outbox.enqueue(Buffer.from('first'))];
    await until(() => started === 1);
    for (let i = 0; i < 4; i++) offsets.push(await outbox.enqueue(Buffer.from(`g-${i}`)));
    release();
    await until(() => outbox.pending === 0);
    expect(failed).toBe(true);
    // g-0 and g-1 were acked before the failure and are not sent again; g-2 and g-3 are.
    expect(sent.slice(0, 5)).toEqual(['first', '[g-0]', '[g-1]', '[g-2]', '[g-3]']);
    // (as often as the log refused their acks)
    expect(sent.length).toBeGreaterThan(5);
    expect(sent.slice(5).every((x) => /^\[?g-[23]\]?$/.test(x))).toBe(true);
    await until(() => real.durableOffset === real.nextOffset);
    const ackOffsets = (await readAll(real)).filter((r) => r.type === RECORD_TYPES.outgoingAck).map((r) => decodeOutgoingAck(r.payload).offset);
    expect(ackOffsets.sort((a, b) => a - b)).toEqual(offsets);
  });

  it('outbox should keep a group within maxGroupBytes and send a record alone when the next would pass it', async () => {
    const log = await logAt();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const singles: number[] = [];
    const groups: number[][] = [];
    let started = false;
    const outbox = await outboxOn(
      log,
      async (p) => {
        if (p.length === 1) {
          started = true;
          await gate;
        }
        singles.push(p.length);
      },
      { sendMany: async (ps) => void groups.push(ps.map((p) => p.length)), maxGroupBytes: 250 },
    );
    await outbox.enqueue(Buffer.alloc(1));
    await until(() => started);
    for (const n of [100, 100, 100, 300, 120, 120]) await outbox.enqueue(Buffer.alloc(n));
    release();
    await until(() => outbox.delivered === 7);
    expect(groups).toEqual([[100, 100], [120, 120]]);
    expect(singles).toEqual([1, 100, 300]);
  });

  it('outbox should deliver a long backlog in order from disk when it tracks only a few offsets', async () => {
    const log = await logAt();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const got: string[] = [];
    const outbox = await outboxOn(
      log,
      async (p) => {
        await gate;
        got.push(text(p));
      },
      { maxTrackedOffsets: 3, readAheadRecords: 2 },
    );
    for (let i = 0; i < 60; i++) {
      await outbox.enqueue(Buffer.from(`batch-${i}`));
      log.append(RECORD_TYPES.ingest, Buffer.from(`noise-${i}`));
    }
    expect(outbox.pending).toBe(60);
    release();
    await until(() => outbox.delivered === 60);
    expect(got).toEqual([...Array(60).keys()].map((i) => `batch-${i}`));
  });

  it('outbox should report the oldest un-acked offset and age for retention and metrics', async () => {
    const clock = new ManualClock(1_000_000);
    const log = await logAt({ clock });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const outbox = await outboxOn(log, async () => gate, { clock });
    log.append(RECORD_TYPES.ingest, Buffer.from('before'));
    expect(outbox.oldestUnackedAgeMs).toBe(0);
    const first = await outbox.enqueue(Buffer.from('one'));
    await outbox.enqueue(Buffer.from('two'));
    clock.advance(5000);
    expect(outbox.oldestUnackedOffset).toBe(first);
    await until(() => outbox.oldestUnackedAgeMs === 5000);
    release();
    await until(() => outbox.delivered === 2);
    expect(outbox.oldestUnackedAgeMs).toBe(0);
    expect(outbox.oldestUnackedOffset).toBe(log.nextOffset);
  });

  it('outbox should refuse enqueue after close', async () => {
    const log = await logAt();
    const outbox = await outboxOn(log, async () => {});
    await outbox.close();
    await expect(outbox.enqueue(Buffer.from('x'))).rejects.toMatchObject({ code: 'GW_ERR_LOG_CLOSED' });
  });

  it('outbox drain was a busy-poll: drain(deadline) resolves when the last pending record is acked, or at the deadline with what is left', async () => {
    const log = await logAt();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const outbox = await outboxOn(log, () => held);
    await outbox.enqueue(Buffer.from('a'));
    await outbox.enqueue(Buffer.from('b'));
    // The store holds the first send: the deadline passes with both records still pending.
    expect(await outbox.drain(30)).toBe(2);
    const drained = outbox.drain(60_000);
    release();
    // Bounded observation: the drain settles on the acks, long before its 60 s deadline.
    const settled = await Promise.race([drained, new Promise<string>((r) => setTimeout(() => r('still waiting'), 5000))]);
    expect(settled).toBe(0);
    expect(outbox.delivered).toBe(2);
    expect(await outbox.drain(60_000)).toBe(0);
  });
});
