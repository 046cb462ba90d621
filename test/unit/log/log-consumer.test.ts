import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { GatewayError } from '../../../gateway/errors.js';
import { createLogConsumer, type LogConsumer, type LogConsumerOptions } from '../../../gateway/log/log-consumer.js';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { applyRetention } from '../../../gateway/log/retention.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { mulberry32 } from '../../helpers/random.js';
import { appendMany, openLog, payloadFor, tempDir, until } from './log-test-helpers.js';

const HOUR = 3_600_000;
let dir: string;
let cleanup: () => Promise<void>;
const open: { close(): Promise<void> }[] = [];
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-consumer-'));
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

async function consumerOn(log: FileMessageLog, handle: LogConsumerOptions['handle'], extra: Partial<LogConsumerOptions> = {}): Promise<LogConsumer> {
  const consumer = createLogConsumer({
    log,
    name: 'store',
    types: [RECORD_TYPES.ingest],
    handle,
    retry: { initialMs: 1, maxMs: 5 },
    random: mulberry32(7),
    ...extra,
  });
  open.push(consumer);
  await consumer.start();
  return consumer;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('log consumer', () => {
  it('log consumer should hand only its record types to handle, in log order, one at a time', async () => {
    const log = await logAt();
    for (let i = 0; i < 30; i++) log.append(i % 4 === 0 ? RECORD_TYPES.deadLetter : RECORD_TYPES.ingest, payloadFor(i));
    await log.whenDurable(29);
    const got: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const random = mulberry32(11);
    const consumer = await consumerOn(log, async (r) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      expect(r.payload.equals(payloadFor(r.offset))).toBe(true);
      // Uneven handling times (a few turns of the event loop): order must not depend on them.
      for (let n = Math.floor(random() * 4); n > 0; n--) await new Promise((resolve) => setImmediate(resolve));
      got.push(r.offset);
      inFlight--;
    });
    const want = range(0, 30).filter((i) => i % 4 !== 0);
    await until(() => got.length === want.length);
    expect(got).toEqual(want);
    expect(maxInFlight).toBe(1);
    // Follows the log: records appended later are handled too, and the position passes the others.
    log.append(RECORD_TYPES.ingest, payloadFor(30));
    log.append(RECORD_TYPES.deadLetter, payloadFor(31));
    await log.whenDurable(31);
    await until(() => consumer.position === 32);
    expect(got.slice(-1)).toEqual([30]);
    expect(consumer.handled).toBe(want.length + 1);
    expect(consumer.lagRecords).toBe(0);
  });

  it('log consumer should retry a failing record with backoff and keep the order', async () => {
    const log = await logAt();
    await appendMany(log, 6);
    const got: number[] = [];
    const attempts = new Map<number, number>();
    const consumer = await consumerOn(log, async (r, ctx) => {
      attempts.set(r.offset, ctx.attempt);
      if (r.offset === 2 && ctx.attempt <= 3) throw new GatewayError('GW_ERR_SINK_UNAVAILABLE', 'down', { retryable: true });
      got.push(r.offset);
    });
    await until(() => got.length === 6);
    expect(got).toEqual(range(0, 6));
    expect(attempts.get(2)).toBe(4);
    expect(consumer.retries).toBe(3);
  });

  it('log consumer should resume from its durable cursor after close and reopen, not from the start of the log', async () => {
    let log = await logAt();
    await appendMany(log, 40);
    const got: number[] = [];
    let consumer = await consumerOn(log, async (r) => void got.push(r.offset), { stateDir: `${dir}/state`, cursorPersistIntervalMs: 60_000 });
    await until(() => got.length === 40);
    await consumer.close();
    await appendMany(log, 10, 40);
    await log.close();
    log = await logAt();
    const again: number[] = [];
    consumer = await consumerOn(log, async (r) => void again.push(r.offset), { stateDir: `${dir}/state` });
    await until(() => again.length >= 10);
    // Nothing of the first run is handed out again: the cursor written at close was used.
    expect(again).toEqual(range(40, 50));
    expect(consumer.position).toBe(50);
  });

  it('log consumer without a cursor should start at the newest record with startAt latest', async () => {
    const log = await logAt();
    await appendMany(log, 10);
    const got: number[] = [];
    await consumerOn(log, async (r) => void got.push(r.offset), { startAt: 'latest' });
    await appendMany(log, 3, 10);
    await until(() => got.length === 3);
    expect(got).toEqual([10, 11, 12]);
  });

  it('log consumer should skip a record refused for good under the skip policy, after onRefused', async () => {
    const log = await logAt();
    await appendMany(log, 5);
    const got: number[] = [];
    const refused: number[] = [];
    const consumer = await consumerOn(
      log,
      async (r) => {
        if (r.offset === 1) throw new GatewayError('GW_ERR_SINK_WRITE', 'field type conflict', { retryable: false });
        got.push(r.offset);
      },
      { refused: 'skip', onRefused: (r) => void refused.push(r.offset) },
    );
    await until(() => got.length === 4);
    expect(got).toEqual([0, 2, 3, 4]);
    expect(refused).toEqual([1]);
    expect(consumer.refused).toBe(1);
  });

  it('log consumer should report records deleted by retention before it handled them, never skip them silently', async () => {
    const clock = new ManualClock(0);
    let log = await logAt({ clock });
    await appendMany(log, 5);
    const got: number[] = [];
    let consumer = await consumerOn(log, async (r) => void got.push(r.offset), { stateDir: `${dir}/state`, clock });
    await until(() => got.length === 5);
    await consumer.close();
    await appendMany(log, 1500, 5);
    clock.set(10 * HOUR);
    // This consumer was not given to retention: its cursor (5) is not protected.
    const result = await applyRetention(log, { retentionMs: HOUR, now: 10 * HOUR, protectedOffset: 1000 });
    expect(result.deleted.length).toBeGreaterThan(0);
    const first = log.firstOffset;
    await log.close();
    log = await logAt({ clock });
    const skipped: { from: number; to: number; reason: string }[] = [];
    const again: number[] = [];
    const registry = new Registry();
    consumer = await consumerOn(log, async (r) => void again.push(r.offset), { stateDir: `${dir}/state`, clock, registry, onSkipped: (s) => skipped.push(s) });
    await until(() => consumer.position === 1505);
    expect(skipped).toEqual([{ from: 5, to: first, reason: 'retention' }]);
    expect(consumer.skipped).toBe(first - 5);
    expect(again).toEqual(range(first, 1505));
    const metrics = await registry.getMetricsAsJSON();
    const value = (name: string): unknown => metrics.find((m) => m.name === name)?.values.find((v) => v.labels.consumer === 'store')?.value;
    expect(value('pulsegate_log_consumer_skipped_records_total')).toBe(first - 5);
    expect(value('pulsegate_log_consumer_lag_records')).toBe(0);
  });

  it('log consumer closing with a handler in flight should give it its grace, then abort it, and hand that record out again after restart', async () => {
    const log = await logAt();
    await appendMany(log, 3);
    const got: number[] = [];
    let aborted = false;
    const consumer = await consumerOn(
      log,
      async (r, ctx) => {
        if (r.offset === 1) {
          // Never finishes by itself: only the abort after the grace ends it.
          await new Promise<void>((_, reject) => ctx.signal.addEventListener('abort', () => ((aborted = true), reject(new Error('aborted')))));
        }
        got.push(r.offset);
      },
      { stateDir: `${dir}/state`, cursorPersistIntervalMs: 0 },
    );
    await until(() => got.length === 1);
    await consumer.close({ graceMs: 20 });
    expect(aborted).toBe(true);
    expect(consumer.position).toBe(1);
    const again: number[] = [];
    await consumerOn(log, async (r) => void again.push(r.offset), { stateDir: `${dir}/state` });
    await until(() => again.length === 2);
    expect(again).toEqual([1, 2]);
  });
});
