import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Metrics of the sink tier, registered on the gateway's own registry (never the global one).
 * Sinks call `written`/`failed` around every write; the outbox that retries calls `retried` and
 * keeps `setPendingBatches` at the number of outgoing batches not yet acknowledged.
 */
/** What a sink reports about its own writes. */
export interface SinkWriteObserver {
  written(sink: string, points: number, seconds: number): void;
  failed(sink: string, seconds: number): void;
  /** A store batch payload (PayloadReadings) that decoded to `decoded` readings where ingest had `batched`. */
  payloadMismatch?(batched: number, decoded: number): void;
}

export interface SinkMetrics extends SinkWriteObserver {
  retried(sink: string): void;
  setPendingBatches(n: number): void;
  readonly pointsWritten: Counter<'sink'>;
  readonly batchSeconds: Histogram<'sink' | 'outcome'>;
  readonly retries: Counter<'sink'>;
  readonly pendingBatches: Gauge;
  readonly payloadMismatches: Counter;
}

/** The metric already registered under `name`, so that two callers share it instead of clashing. */
function existing<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Idempotent per registry: a second call returns the same underlying metrics. */
export function createSinkMetrics(registry: Registry, sinks: readonly string[] = ['influx', 'embedded']): SinkMetrics {
  const pointsWritten = existing(registry, 'pulsegate_sink_points_written_total', () => new Counter({
    name: 'pulsegate_sink_points_written_total',
    help: 'Points (readings, windows, health samples) acknowledged by the time-series store, by sink',
    labelNames: ['sink'],
    registers: [registry],
  }));
  const batchSeconds = existing(registry, 'pulsegate_sink_batch_seconds', () => new Histogram({
    name: 'pulsegate_sink_batch_seconds',
    help: 'Duration of one write to the time-series store (a batch, or several batches in one transaction while the embedded store lags), by sink and outcome (ok, error)',
    labelNames: ['sink', 'outcome'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  }));
  const retries = existing(registry, 'pulsegate_sink_retries_total', () => new Counter({
    name: 'pulsegate_sink_retries_total',
    help: 'Batch writes retried after a retryable failure, by sink',
    labelNames: ['sink'],
    registers: [registry],
  }));
  const pendingBatches = existing(registry, 'pulsegate_sink_pending_batches', () => new Gauge({
    name: 'pulsegate_sink_pending_batches',
    help: 'Outgoing batches logged but not yet acknowledged by the time-series store',
    registers: [registry],
  }));
  const payloadMismatches = existing(registry, 'pulsegate_sink_payload_mismatches_total', () => new Counter({
    name: 'pulsegate_sink_payload_mismatches_total',
    help: 'Store batch payloads (publishes of several readings kept as their bytes) that decoded to other readings than ingest had: their kind changed while they waited for the store',
    registers: [registry],
  }));
  payloadMismatches.inc(0);
  // Every series exists from the start, so rate() over it has no missing first step.
  for (const sink of sinks) {
    pointsWritten.labels(sink).inc(0);
    retries.labels(sink).inc(0);
  }
  return {
    written(sink, points, seconds) {
      pointsWritten.labels(sink).inc(points);
      batchSeconds.labels(sink, 'ok').observe(seconds);
    },
    failed(sink, seconds) {
      batchSeconds.labels(sink, 'error').observe(seconds);
    },
    retried(sink) {
      retries.labels(sink).inc();
    },
    setPendingBatches(n) {
      pendingBatches.set(n);
    },
    payloadMismatch() {
      payloadMismatches.inc();
    },
    pointsWritten,
    batchSeconds,
    retries,
    pendingBatches,
    payloadMismatches,
  };
}
