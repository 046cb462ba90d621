import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { LogConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import type { FileMessageLog } from '../log/message-log.js';
import type { CheckpointStore } from '../log/checkpoint-store.js';
import { applyRetention, protectedOffsetOf, type RetentionResult } from '../log/retention.js';

export interface RetentionJobOptions {
  readonly log: FileMessageLog;
  /** node-cron expression (log.retentionSchedule). */
  readonly schedule: string;
  readonly retentionMs: number;
  /** Evaluated at each run: see protectedOffsetOf in gateway/log/retention.ts. */
  readonly protectedOffset: () => number | Promise<number>;
  readonly clock?: Clock;
  readonly onRun?: (result: RetentionResult) => void;
  readonly onError?: (err: unknown) => void;
}

export interface RetentionJob {
  start(): Promise<void>;
  /** Stops the schedule (a running pass finishes on its own). */
  stop(): void;
  /** One retention pass now (runs never overlap). */
  runOnce(): Promise<RetentionResult>;
  /** Idempotent: stops the schedule and waits for a running pass. */
  close(): Promise<void>;
}

export function createRetentionJob(options: RetentionJobOptions): RetentionJob {
  if (!cron.validate(options.schedule)) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `log.retentionSchedule is not a valid cron expression: ${options.schedule}`);
  }
  const clock = options.clock ?? systemClock;
  let running: Promise<RetentionResult> | null = null;
  let task: ScheduledTask | null = null;
  let closed = false;

  function runOnce(): Promise<RetentionResult> {
    running ??= (async () => {
      try {
        const protectedOffset = await options.protectedOffset();
        const result = await applyRetention(options.log, { retentionMs: options.retentionMs, now: clock.now(), protectedOffset });
        options.onRun?.(result);
        return result;
      } finally {
        running = null;
      }
    })();
    return running;
  }

  return {
    async start() {
      if (task !== null || closed) return;
      task = cron.createTask(
        options.schedule,
        async () => {
          try {
            await runOnce();
          } catch (err) {
            options.onError?.(err);
          }
        },
        { name: 'log-retention', noOverlap: true },
      );
      await task.start();
    },
    runOnce,
    stop() {
      closed = true;
      const t = task;
      task = null;
      if (t !== null) void Promise.resolve(t.destroy()).catch((err: unknown) => options.onError?.(err));
    },
    async close() {
      closed = true;
      const t = task;
      task = null;
      if (t !== null) await t.destroy();
      if (running !== null) await running.catch(() => undefined);
    },
  };
}

export interface StartRetentionJobOptions {
  readonly log: FileMessageLog;
  /** Every checkpoint store whose state is rebuilt from the log (null offset = none yet: keep all). */
  readonly checkpoints: CheckpointStore | readonly CheckpointStore[];
  readonly outboxes: readonly { readonly oldestUnackedOffset: number }[];
  /** Log consumers (gateway/log/log-consumer.ts): each keeps what it has not handled. */
  readonly consumers?: readonly { readonly oldestUnackedOffset: number }[];
  readonly config: Pick<LogConfig, 'retentionMs' | 'retentionSchedule'>;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

/**
 * Schedules retention on log.retentionSchedule: segments go once older than log.retentionMs and
 * below the latest checkpoint (as last written or read by its store), every outbox's oldest
 * un-acked record and every log consumer's cursor on disk.
 */
export function startRetentionJob(options: StartRetentionJobOptions): RetentionJob {
  const stores: readonly CheckpointStore[] = Array.isArray(options.checkpoints)
    ? (options.checkpoints as readonly CheckpointStore[])
    : [options.checkpoints as CheckpointStore];
  const { logger } = options;
  const job = createRetentionJob({
    log: options.log,
    schedule: options.config.retentionSchedule,
    retentionMs: options.config.retentionMs,
    protectedOffset: () => protectedOffsetOf({ checkpointOffsets: stores.map((s) => s.latestOffset), outboxes: options.outboxes, consumers: options.consumers }),
    clock: options.clock ?? systemClock,
    onRun: (r) => {
      if (r.deleted.length > 0) logger?.info({ deleted: r.deleted, freedBytes: r.freedBytes, protectedOffset: r.protectedOffset }, 'log retention deleted segments');
    },
    onError: (err) => logger?.error({ err }, 'log retention failed'),
  });
  job.start().catch((err: unknown) => logger?.error({ err }, 'log retention schedule failed to start'));
  return job;
}
