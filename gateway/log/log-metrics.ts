import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What the log metrics read of the log (the file log; structural, so this module imports neither). */
export interface MeteredLog {
  stats(): { readonly appendedRecords: number; readonly appendedBytes: number; readonly sizeBytes: number; readonly recoveryTruncatedBytes: number };
}

/** What the log metrics read of an outbox. */
export interface MeteredOutbox {
  readonly destination: string;
  readonly oldestUnackedAgeMs: number;
  readonly pending: number;
  readonly deadLettered: number;
  readonly groupsDelivered: number;
  readonly groupsFailed: number;
}

/** What the log metrics read of a log consumer. */
export interface MeteredConsumer {
  readonly name: string;
  readonly lagRecords: number;
  readonly skipped: number;
}

/**
 * The log tier's Prometheus metrics, registered on the gateway's own registry. Hot-path counts are
 * kept as plain numbers by the log and read at scrape time (collect), so an append pays nothing.
 */
export interface LogMetrics {
  /** Pass as MessageLogOptions.onFsync. */
  readonly observeFsync: (seconds: number, bytes: number) => void;
  attachLog(log: MeteredLog): void;
  attachOutbox(outbox: MeteredOutbox): void;
  attachConsumer(consumer: MeteredConsumer): void;
}

const byRegistry = new WeakMap<Registry, LogMetrics>();

/** Alias of createLogMetrics, which returns the registry's existing log metrics if any. */
export function logMetricsFor(registry: Registry): LogMetrics {
  return createLogMetrics(registry);
}

/** Idempotent per registry: metric names can register only once, and log and outbox share them. */
export function createLogMetrics(registry: Registry): LogMetrics {
  const existing = byRegistry.get(registry);
  if (existing !== undefined) return existing;
  let log: MeteredLog | null = null;
  const outboxes: MeteredOutbox[] = [];
  let seenRecords = 0;
  let seenBytes = 0;
  const deadSeen = new Map<string, number>();

  const appendedRecords = new Counter({
    name: 'pulsegate_log_appended_records_total',
    help: 'Records appended to the message log',
    registers: [registry],
    collect() {
      if (log === null) return;
      const n = log.stats().appendedRecords;
      appendedRecords.inc(n - seenRecords);
      seenRecords = n;
    },
  });
  const appendedBytes = new Counter({
    name: 'pulsegate_log_appended_bytes_total',
    help: 'Bytes (framing included) appended to the message log',
    registers: [registry],
    collect() {
      if (log === null) return;
      const n = log.stats().appendedBytes;
      appendedBytes.inc(n - seenBytes);
      seenBytes = n;
    },
  });
  const fsyncSeconds = new Histogram({
    name: 'pulsegate_log_fsync_seconds',
    help: 'Duration of each group-commit fdatasync',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const sizeBytes = new Gauge({
    name: 'pulsegate_log_size_bytes',
    help: 'Bytes of log segments on disk (including the group buffer about to be written)',
    registers: [registry],
    collect() {
      if (log !== null) sizeBytes.set(log.stats().sizeBytes);
    },
  });
  const oldestUnackedAge = new Gauge({
    name: 'pulsegate_log_oldest_unacked_age_seconds',
    help: 'Age of the oldest outgoing record not yet acknowledged by its destination',
    labelNames: ['destination'],
    registers: [registry],
    collect() {
      for (const o of outboxes) oldestUnackedAge.labels(o.destination).set(o.oldestUnackedAgeMs / 1000);
    },
  });
  const outboxPending = new Gauge({
    name: 'pulsegate_log_outbox_pending_records',
    help: 'Outgoing records waiting in the log for their destination',
    labelNames: ['destination'],
    registers: [registry],
    collect() {
      for (const o of outboxes) outboxPending.labels(o.destination).set(o.pending);
    },
  });
  const outboxDeadLettered = new Counter({
    name: 'pulsegate_log_outbox_dead_lettered_total',
    help: 'Outgoing records dead-lettered because their destination refused them for good',
    labelNames: ['destination'],
    registers: [registry],
    collect() {
      for (const o of outboxes) {
        const prev = deadSeen.get(o.destination) ?? 0;
        outboxDeadLettered.labels(o.destination).inc(o.deadLettered - prev);
        deadSeen.set(o.destination, o.deadLettered);
      }
    },
  });
  const groupSeen = new Map<string, { delivered: number; failed: number }>();
  const outboxGroups = new Counter({
    name: 'pulsegate_log_outbox_group_sends_total',
    help: 'Sends of several outgoing records at once (while the destination lags), by outcome: delivered, or failed (then sent one by one)',
    labelNames: ['destination', 'outcome'],
    registers: [registry],
    collect() {
      for (const o of outboxes) {
        const prev = groupSeen.get(o.destination) ?? { delivered: 0, failed: 0 };
        outboxGroups.labels(o.destination, 'delivered').inc(o.groupsDelivered - prev.delivered);
        outboxGroups.labels(o.destination, 'failed').inc(o.groupsFailed - prev.failed);
        groupSeen.set(o.destination, { delivered: o.groupsDelivered, failed: o.groupsFailed });
      }
    },
  });
  const consumers: MeteredConsumer[] = [];
  const skippedSeen = new Map<string, number>();
  const consumerLag = new Gauge({
    name: 'pulsegate_log_consumer_lag_records',
    help: 'Durable log records a log consumer has not looked at yet',
    labelNames: ['consumer'],
    registers: [registry],
    collect() {
      for (const c of consumers) consumerLag.labels(c.name).set(c.lagRecords);
    },
  });
  const consumerSkipped = new Counter({
    name: 'pulsegate_log_consumer_skipped_records_total',
    help: 'Records deleted (by retention, or skipped as damaged) before a log consumer could handle them',
    labelNames: ['consumer'],
    registers: [registry],
    collect() {
      for (const c of consumers) {
        const prev = skippedSeen.get(c.name) ?? 0;
        consumerSkipped.labels(c.name).inc(c.skipped - prev);
        skippedSeen.set(c.name, c.skipped);
      }
    },
  });
  let seenTruncated = 0;
  const recoveryTruncated = new Counter({
    name: 'pulsegate_log_recovery_truncated_bytes_total',
    help: 'Bytes of torn tail cut from the last segment by recovery at start',
    registers: [registry],
    collect() {
      if (log === null) return;
      const n = log.stats().recoveryTruncatedBytes;
      recoveryTruncated.inc(Math.max(0, n - seenTruncated));
      seenTruncated = n;
    },
  });

  const metrics: LogMetrics = {
    observeFsync(seconds) {
      fsyncSeconds.observe(seconds);
    },
    attachLog(l) {
      log = l;
    },
    attachOutbox(o) {
      outboxes.push(o);
      oldestUnackedAge.labels(o.destination).set(0);
      outboxPending.labels(o.destination).set(0);
      outboxDeadLettered.labels(o.destination).inc(0);
      outboxGroups.labels(o.destination, 'delivered').inc(0);
      outboxGroups.labels(o.destination, 'failed').inc(0);
    },
    attachConsumer(c) {
      // A consumer of the same name again (a restart in one process) replaces the old one.
      const i = consumers.findIndex((x) => x.name === c.name);
      if (i >= 0) consumers.splice(i, 1);
      consumers.push(c);
      skippedSeen.set(c.name, c.skipped);
      consumerLag.labels(c.name).set(0);
      consumerSkipped.labels(c.name).inc(0);
    },
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
