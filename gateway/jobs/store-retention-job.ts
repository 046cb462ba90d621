import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Sink } from '../sinks/types.js';

/** A sink that ages out its own data (the embedded store); InfluxDB does this with retention policies. */
interface RetainingSink extends Sink {
  applyRetention(nowMs: number): { readings: number; windows: number; health: number };
}

function retains(sink: Sink): sink is RetainingSink {
  return typeof (sink as Partial<RetainingSink>).applyRetention === 'function';
}

/**
 * Deletes rows older than sinks.rawRetention / sinks.windowRetention from the embedded store, on
 * the log's retention schedule. Returns null when the sink keeps its own retention.
 */
export function startStoreRetentionJob(options: { sink: Sink; schedule: string; clock: Clock; logger: Logger }): { stop(): void } | null {
  const { sink, clock, logger } = options;
  if (!retains(sink)) return null;
  const task: ScheduledTask = cron.schedule(options.schedule, () => {
    try {
      const removed = sink.applyRetention(clock.now());
      if (removed.readings + removed.windows + removed.health > 0) logger.info(removed, 'store retention removed rows');
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
