import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import { GatewayError, isGatewayError } from '../errors.js';
import { backoffMs, createStopSignals, isLoggedAttempt, sleepUnlessAborted, type RetryPolicy } from '../backoff.js';
import { createCursorKeeper, cursorFileName } from './consumer-cursor.js';
import { logMetricsFor } from './log-metrics.js';
import { tailLog, type TailItem, type TailLog } from './tail-reader.js';
import type { LogRecord, MessageLog, RecordType } from './types.js';

/**
 * A log consumer reads the records of chosen types from the log, in log order, at its own pace,
 * and hands each to `handle` one at a time. Delivery is at least once: its cursor (the offset
 * below which every record is handled) is kept durably in `stateDir` after handled records, so
 * after a crash or a restart it resumes there and hands out again at most what was handled since
 * the last cursor write (about `cursorPersistIntervalMs` worth). Handlers must be idempotent.
 *
 * Memory: the consumer reads the log through tailLog, which holds one read chunk at a time; it
 * reads only as fast as `handle` takes records (overflow policy CONSUMER_OVERFLOW_POLICY: pause
 * reading — the log on disk is the queue, nothing is dropped).
 *
 * Retention: pass the consumer to the retention job (`consumers` of startRetentionJob); segments
 * at or above its `oldestUnackedOffset` (its cursor as written to disk) are kept, so a lagging or
 * stopped consumer holds the log back — and log.diskHighWaterBytes then withholds acks rather
 * than fill the disk. A consumer not passed there can find its records deleted: it reports that
 * as skipped records (an `earliest` at start, a `gap` later), never silently.
 */
export const CONSUMER_OVERFLOW_POLICY = 'pause-reading' as const;

export interface HandleContext {
  /** 1 for the first try. */
  readonly attempt: number;
  /** Aborted when the consumer closes (after its grace). */
  readonly signal: AbortSignal;
}

export interface LogConsumerOptions {
  readonly log: TailLog & Pick<MessageLog, 'nextOffset'>;
  /** 1..100 of [A-Za-z0-9_.-]; names the cursor file (consumer-<name>), so unique per stateDir. */
  readonly name: string;
  /** Record types handed to `handle`; the others are passed over (the cursor moves past them). */
  readonly types: readonly RecordType[];
  /**
   * Handles one record; resolves once its effect is done (durably, if it must survive a crash).
   * A rejection is retried with backoff, the same record again (order is kept), except under the
   * `refused: 'skip'` policy. The payload is a view of a read buffer: copy it to keep it.
   */
  readonly handle: (record: LogRecord, context: HandleContext) => Promise<void>;
  readonly retry: RetryPolicy;
  /** Where the cursor is kept; without it the consumer starts at `startAt` on every start(). */
  readonly stateDir?: string;
  /** Where a consumer without a (usable) cursor begins: the log's first record, or new records only. Default 'earliest'. */
  readonly startAt?: 'earliest' | 'latest';
  /** Minimum interval between cursor writes, ms (the most handled again after a crash). Default 1000. */
  readonly cursorPersistIntervalMs?: number;
  /**
   * Policy for a record `handle` refuses for good (a GatewayError with `retryable: false`):
   * 'retry' (default) retries it like any failure, holding back the records after it; 'skip'
   * awaits `onRefused` (to dead-letter it, say; if that throws, the record is retried) and goes on.
   */
  readonly refused?: 'retry' | 'skip';
  readonly onRefused?: (record: LogRecord, err: GatewayError) => void | Promise<void>;
  /** Told about records that were deleted before they could be handled (see TailItem). */
  readonly onSkipped?: (skipped: { from: number; to: number; reason: 'retention' | 'damaged' }) => void;
  /** Told about failed attempts (attempt >= 1), log read errors and cursor write failures (attempt 0). */
  readonly onError?: (err: unknown, context: { offset: number | null; attempt: number }) => void;
  readonly clock?: Clock;
  /** Jitter source in [0, 1). */
  readonly random?: () => number;
  readonly logger?: Logger;
  /** Registers pulsegate_log_consumer_lag_records and pulsegate_log_consumer_skipped_records_total (label consumer). */
  readonly registry?: Registry;
}

export interface LogConsumer {
  readonly name: string;
  /** Loads the cursor and starts handling from it. */
  start(): Promise<void>;
  /** Next offset to look at: every record below it is handled (or passed over). */
  readonly position: number;
  /** Retention's bound: the cursor as written to disk (the resume point after a crash). */
  readonly oldestUnackedOffset: number;
  /** Durable records not yet looked at. */
  readonly lagRecords: number;
  readonly handled: number;
  readonly retries: number;
  readonly refused: number;
  /** Records deleted before this consumer could handle them. */
  readonly skipped: number;
  /**
   * Idempotent: stops reading and writes the cursor. A handle() in flight gets `graceMs` (default
   * 0) to finish before its signal aborts; a record not finished is handled again after the next start.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

const NAME = /^[A-Za-z0-9_.-]{1,100}$/;

export function createLogConsumer(options: LogConsumerOptions): LogConsumer {
  const { log, name, handle } = options;
  if (!NAME.test(name)) throw new GatewayError('GW_ERR_CONFIG_INVALID', `log consumer name must be 1..100 of [A-Za-z0-9_.-], got ${JSON.stringify(name)}`);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const wanted = new Set<number>(options.types);
  const refusedPolicy = options.refused ?? 'retry';
  const logger = options.logger;
  let position = -1;
  let startOffset = -1;
  let handled = 0;
  let retries = 0;
  let refused = 0;
  let skipped = 0;
  let started = false;
  let closing = false;
  let loop: Promise<void> | null = null;
  let closePromise: Promise<void> | null = null;
  // Backoff sleeps and the follow end at once on close; a handle() in flight gets its grace first.
  const stops = createStopSignals();

  function reportError(err: unknown, context: { offset: number | null; attempt: number }): void {
    options.onError?.(err, context);
    if (logger === undefined) return;
    if (context.attempt === 0) logger.error({ err, consumer: name, offset: context.offset }, 'log consumer failed; retrying from the log');
    else if (isLoggedAttempt(context.attempt)) {
      logger.warn({ err, consumer: name, offset: context.offset, attempt: context.attempt }, 'log consumer handler failed; backing off');
    }
  }

  const cursor = createCursorKeeper<Record<string, never>>({
    stateDir: options.stateDir,
    name: cursorFileName('consumer', name),
    label: `log consumer cursor of ${name}`,
    fallback: `starting at the ${options.startAt ?? 'earliest'} record`,
    snapshot: () => ({ offset: position, data: {} }),
    intervalMs: options.cursorPersistIntervalMs ?? 1000,
    clock,
    logger,
    onWriteError: (err) => reportError(err, { offset: null, attempt: 0 }),
  });

  function skip(item: Exclude<TailItem, { kind: 'record' }>): void {
    const from = item.kind === 'earliest' ? item.requested : item.from;
    const to = item.kind === 'earliest' ? item.firstOffset : item.to;
    const reason = item.kind === 'earliest' ? 'retention' : item.reason;
    skipped += to - from;
    position = to;
    options.onSkipped?.({ from, to, reason });
    logger?.error(
      { consumer: name, from, to, reason },
      `log consumer ${name} lost records ${from}..${to - 1} (${reason === 'retention' ? 'deleted by retention before it handled them' : 'damaged, skipped at log startup'})`,
    );
  }

  /** True once handled (or refused and skipped); false when the consumer closes first. */
  async function deliver(record: LogRecord): Promise<boolean> {
    for (let attempt = 1; !closing; attempt++) {
      let failure: unknown;
      try {
        await handle(record, { attempt, signal: stops.work });
        handled++;
        return true;
      } catch (err) {
        failure = err;
      }
      if (closing) return false;
      if (refusedPolicy === 'skip' && isGatewayError(failure) && !failure.retryable) {
        try {
          await options.onRefused?.(record, failure);
          refused++;
          logger?.error({ err: failure, consumer: name, offset: record.offset }, 'log consumer record refused for good: skipped');
          return true;
        } catch (err) {
          failure = err;
        }
      }
      retries++;
      reportError(failure, { offset: record.offset, attempt });
      await sleepUnlessAborted(backoffMs(options.retry, attempt, random), stops.idle);
    }
    return false;
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (!closing) {
      try {
        // Records of other types are passed over inside the log (never made); the cursor still moves past them.
        const passed = (next: number): void => {
          if (next <= position) return;
          position = next;
          void cursor.persist();
        };
        for await (const item of tailLog(log, position, { signal: stops.idle, types: options.types, onPassed: passed })) {
          if (item.kind !== 'record') {
            skip(item);
          } else {
            const r = item.record;
            if (wanted.has(r.type)) {
              if (!(await deliver(r))) return;
              failures = 0;
            }
            position = r.offset + 1;
          }
          void cursor.persist();
          if (closing) return;
        }
        // The follow ended: the consumer closes, or the log did.
        return;
      } catch (err) {
        // The log failed to read (a damaged record): report, back off, read again from the position.
        if (closing) return;
        reportError(err, { offset: position, attempt: 0 });
        await sleepUnlessAborted(backoffMs(options.retry, ++failures, random), stops.idle);
      }
    }
  }

  const consumer: LogConsumer = {
    name,
    async start() {
      if (started || closing) return;
      const saved = await cursor.load(log);
      startOffset = saved?.offset ?? (options.startAt === 'latest' ? log.nextOffset : log.firstOffset);
      position = startOffset;
      started = true;
      loop = run();
    },
    get position() {
      return started ? position : log.firstOffset;
    },
    get oldestUnackedOffset() {
      if (!started) return log.firstOffset;
      if (!cursor.enabled) return position;
      return Math.min(position, cursor.savedOffset ?? startOffset);
    },
    get lagRecords() {
      return started ? Math.max(0, log.durableOffset - position) : 0;
    },
    get handled() {
      return handled;
    },
    get retries() {
      return retries;
    },
    get refused() {
      return refused;
    },
    get skipped() {
      return skipped;
    },
    close(closeOptions) {
      closePromise ??= (async () => {
        closing = true;
        await stops.stop(loop, closeOptions?.graceMs ?? 0);
        if (started) await cursor.flush();
        else await cursor.stop();
      })();
      return closePromise;
    },
  };
  if (options.registry !== undefined) logMetricsFor(options.registry).attachConsumer(consumer);
  return consumer;
}
