import type { Logger } from 'pino';

/**
 * What startup has opened, closed in reverse order when a later step fails (rollback), so a
 * failed start leaves no thread, file handle, lock or listener behind.
 */
export class OpenedResources {
  private readonly opened: { readonly name: string; readonly close: () => Promise<unknown> | unknown }[] = [];

  constructor(private readonly logger: Logger) {}

  /** Registers what `close` undoes; returns `value`, for `const x = opened.add('x', make(), () => x.close())`. */
  add<T>(name: string, value: T, close: () => Promise<unknown> | unknown): T {
    this.opened.push({ name, close });
    return value;
  }

  /** Closes everything registered, newest first; a close that fails is logged and the rest still run. */
  async closeAll(): Promise<void> {
    for (const r of this.opened.splice(0).reverse()) {
      try {
        await r.close();
      } catch (err) {
        this.logger.warn({ err, resource: r.name }, `could not close ${r.name} while rolling back a failed start`);
      }
    }
  }

  /**
   * Runs startup: on a failure, closes what was opened, then rethrows the failure.
   */
  async run<T>(start: () => Promise<T>): Promise<T> {
    try {
      return await start();
    } catch (err) {
      await this.closeAll();
      throw err;
    }
  }
}

/** Interval timers, stopped together (shutdown, rollback). */
export class Timers {
  private readonly timers: NodeJS.Timeout[] = [];

  every(ms: number, run: () => void): void {
    this.timers.push(setInterval(run, ms));
  }

  stopAll(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
  }
}
