import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Sink } from '../sinks/types.js';

type RetentionResult = { readings: number; windows: number; health: number; alerts?: number };

/**
 * A sink that can age out its own data: the embedded store (InfluxDB does this with retention
 * policies; on the sink thread the answer is null for it).
 */
interface RetainingSink extends Sink {
  applyRetention(nowMs: number): RetentionResult | null | Promise<RetentionResult | null>;
}

function retains(sink: Sink): sink is RetainingSink {
  return typeof (sink as Partial<RetainingSink>).applyRetention === 'function';
}

/**
 * Deletes rows older than sinks.rawRetention / sinks.windowRetention (windows, health, alerts)
 * from the embedded store, on the log's retention schedule. Returns null when the sink keeps its own retention.
 */
export function startStoreRetentionJob(options: { sink: Sink; schedule: string; clock: Clock; logger: Logger }): { stop(): void } | null {
  const { sink, clock, logger } = options;
  if (!retains(sink)) return null;
  const task: ScheduledTask = cron.schedule(options.schedule, async () => {
    try {
      const removed = await sink.applyRetention(clock.now());
      if (removed !== null && removed.readings + removed.windows + removed.health + (removed.alerts ?? 0) > 0) logger.info(removed, 'store retention removed rows');
    } catch (err) {
      logger.error({ err }, 'store retention failed');
    }
  });
  return {
    stop() {
      void task.stop();
    },
  };
}
