import type { Clock } from '../clock.js';
import type { SinkMetrics } from './sink-metrics.js';
import type { HealthSample } from './types.js';

/**
 * Health samples written to the store beside the data (`sinks.healthIntervalMs`): ingest rates as
 * deltas of the running totals over the time since the last sample, the store's backlog in the
 * log, and the heap. Also copies the outbox's retry count into pulsegate_sink_retries_total.
 */
export interface HealthSamplerOptions {
  /** Ingest's running totals. */
  readonly totals: { readonly received: number; readonly rejected: number; readonly duplicates: number };
  /** The store's outbox. */
  readonly outbox: { readonly pending: number; readonly retries: number; readonly oldestUnackedAgeMs: number };
  readonly sinkName: string;
  readonly metrics: Pick<SinkMetrics, 'setPendingBatches' | 'retries'>;
  /** Where each sample goes (the sink batcher). */
  readonly add: (sample: HealthSample) => void;
  readonly clock: Clock;
}

/** Returns the function that takes one sample. */
export function createHealthSampler(options: HealthSamplerOptions): () => void {
  const { totals, outbox, metrics, clock } = options;
  let last = { received: totals.received, rejected: totals.rejected, duplicates: totals.duplicates, at: clock.now() };
  let lastRetries = 0;
  return () => {
    const now = clock.now();
    metrics.setPendingBatches(outbox.pending);
    if (outbox.retries > lastRetries) metrics.retries.labels(options.sinkName).inc(outbox.retries - lastRetries);
    lastRetries = outbox.retries;
    const secs = Math.max((now - last.at) / 1000, 0.001);
    options.add({
      ts: now,
      values: {
        readings_per_s: (totals.received - last.received) / secs,
        rejected_per_s: (totals.rejected - last.rejected) / secs,
        duplicates_per_s: (totals.duplicates - last.duplicates) / secs,
        log_backlog_records: outbox.pending,
        sink_lag_ms: outbox.oldestUnackedAgeMs,
        heap_mb: process.memoryUsage().heapUsed / 1_048_576,
      },
    });
    last = { received: totals.received, rejected: totals.rejected, duplicates: totals.duplicates, at: now };
  };
}
