import type { Logger } from 'pino';
import type { HealthSample, SinkBatch } from '../sinks/types.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { WindowResult } from '../window/types.js';

/**
 * Collects readings, windows and health samples into sink batches of at most `maxPoints`, and
 * hands each full batch (or, on the interval, each non-empty one) to `enqueue`, which appends it
 * to the log's outbox (sender-based logging). Memory is bounded by `maxPoints`: a full batch is
 * handed over synchronously, and the outbox keeps it on disk, not in the heap.
 */
export interface SinkBatcherOptions {
  readonly maxPoints: number;
  readonly flushIntervalMs: number;
  /** Appends the batch to the outbox; resolves once it is durable. */
  readonly enqueue: (batch: SinkBatch) => Promise<unknown>;
  readonly logger: Logger;
}

export class SinkBatcher {
  private readings: Reading[] = [];
  private windows: WindowResult[] = [];
  private health: HealthSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastDurable: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: SinkBatcherOptions) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush().catch((err: unknown) => this.options.logger.error({ err }, 'sink batch flush failed')), this.options.flushIntervalMs);
    this.timer.unref();
  }

  get pendingPoints(): number {
    return this.readings.length + this.windows.length + this.health.length;
  }

  addReading(r: Reading): void {
    this.readings.push(r);
    if (this.pendingPoints >= this.options.maxPoints) void this.flush();
  }

  addWindow(w: WindowResult): void {
    this.windows.push(w);
    if (this.pendingPoints >= this.options.maxPoints) void this.flush();
  }

  addHealth(h: HealthSample): void {
    this.health.push(h);
  }

  /**
   * Hands the pending batch to the outbox. The append itself happens synchronously (so a
   * checkpoint taken right after covers it); the promise settles when it, and every batch
   * before it, is durable.
   */
  flush(): Promise<unknown> {
    if (this.pendingPoints > 0) {
      const batch: SinkBatch = { readings: this.readings, windows: this.windows, health: this.health };
      this.readings = [];
      this.windows = [];
      this.health = [];
      const durable = this.options.enqueue(batch);
      // Keep a rejection from going unhandled; callers that care await flush().
      durable.catch((err: unknown) => this.options.logger.error({ err }, 'sink batch append failed'));
      this.lastDurable = Promise.all([this.lastDurable, durable]);
    }
    return this.lastDurable;
  }

  close(): Promise<unknown> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    return this.flush();
  }
}
