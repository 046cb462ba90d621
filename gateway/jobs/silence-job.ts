import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { GatewayError } from '../errors.js';

export interface SilenceJob {
  start(): Promise<void>;
  /** Idempotent. */
  stop(): Promise<void>;
}

/**
 * The silence (dead-man) check on its node-cron schedule (alerts.silenceSchedule, with a seconds
 * field), reading time from the injected clock: `check(now)` fires for every device silent past
 * a rule's `after`. node-cron only decides when a check runs; what is silent is decided by `now`.
 */
export function createSilenceJob(options: { readonly schedule: string; readonly clock: Clock; readonly check: (now: number) => void; readonly logger?: Logger }): SilenceJob {
  if (!cron.validate(options.schedule)) throw new GatewayError('GW_ERR_CONFIG_INVALID', `alerts.silenceSchedule is not a valid cron expression: ${options.schedule}`);
  let task: ScheduledTask | null = null;
  return {
    async start() {
      if (task !== null) return;
      task = cron.createTask(
        options.schedule,
        () => {
          try {
            options.check(options.clock.now());
          } catch (err) {
            options.logger?.error({ err }, 'silence check failed');
          }
        },
        { name: 'alert-silence', noOverlap: true },
      );
      await task.start();
    },
    async stop() {
      const t = task;
      task = null;
      if (t !== null) await t.destroy();
    },
  };
}
