import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { REJECT_REASONS, type RejectReason } from './ingest/reject-reasons.js';

/**
 * The gateway's Prometheus registry (one per gateway instance, never the global default, so that
 * several gateways can live in one test process) and the ingest tier's metrics.
 */
export interface IngestMetrics {
  received(kind: string, n: number): void;
  rejected(reason: RejectReason, n: number): void;
  duplicate(n: number): void;
  readonly publishes: Counter<'qos'>;
  readonly connectedClients: Gauge;
  /** Plain running totals, read synchronously for the health samples written to the store. */
  readonly totals: { received: number; rejected: number; duplicates: number };
}

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pulsegate_' });
  return registry;
}

export function createIngestMetrics(registry: Registry, kinds: readonly string[]): IngestMetrics {
  const receivedTotal = new Counter({
    name: 'pulsegate_readings_received_total',
    help: 'Readings received, decoded and valid, by sensor kind (duplicates included: see pulsegate_readings_duplicate_total)',
    labelNames: ['kind'],
    registers: [registry],
  });
  const rejectedTotal = new Counter({
    name: 'pulsegate_readings_rejected_total',
    help: 'Readings or publishes rejected by ingest, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const duplicateTotal = new Counter({
    name: 'pulsegate_readings_duplicate_total',
    help: 'Readings dropped as duplicates by (device, seq)',
    registers: [registry],
  });
  const publishes = new Counter({
    name: 'pulsegate_mqtt_publishes_total',
    help: 'MQTT PUBLISH packets received from clients, by QoS',
    labelNames: ['qos'],
    registers: [registry],
  });
  const connectedClients = new Gauge({
    name: 'pulsegate_mqtt_connected_clients',
    help: 'MQTT clients currently connected',
    registers: [registry],
  });
  // Pre-bind label children: the hot path then increments without a label lookup, and every
  // series exists from the start (a rate() over a series that appears late misses its first step).
  const byKind = new Map(kinds.map((k) => [k, receivedTotal.labels(k)]));
  const byReason = new Map(REJECT_REASONS.map((r) => [r, rejectedTotal.labels(r)]));
  duplicateTotal.inc(0);
  const totals = { received: 0, rejected: 0, duplicates: 0 };
  return {
    totals,
    received(kind, n) {
      totals.received += n;
      (byKind.get(kind) ?? receivedTotal.labels(kind)).inc(n);
    },
    rejected(reason, n) {
      totals.rejected += n;
      byReason.get(reason)!.inc(n);
    },
    duplicate(n) {
      totals.duplicates += n;
      duplicateTotal.inc(n);
    },
    publishes,
    connectedClients,
  };
}
