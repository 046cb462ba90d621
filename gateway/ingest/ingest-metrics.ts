import { Counter, Gauge, type Registry } from 'prom-client';
import { collectedCounter } from '../metrics.js';
import { AUTH_RESULTS, type AuthResult } from './login-guard.js';
import { REJECT_REASONS, type RejectReason } from './reject-reasons.js';
import { CONNECTION_REFUSAL_REASONS, type ConnectionRefusalReason } from './packet-guard.js';

/** The ingest tier's metrics, on the gateway's registry. */
export interface IngestMetrics {
  received(kind: string, n: number): void;
  rejected(reason: RejectReason, n: number): void;
  duplicate(n: number): void;
  published(qos: number): void;
  /** A PUBLISH read off its connection in place (mqtt.fastPublish), not parsed by the broker. */
  readInPlace(): void;
  /** One per CONNECT that reached authentication. */
  auth(result: AuthResult): void;
  /** One per password hash computed on a hasher worker thread. */
  authHashed(): void;
  readonly connectedClients: Gauge;
  /** Plain running totals, read synchronously for the health samples written to the store. */
  readonly totals: { received: number; rejected: number; duplicates: number };
  /** An MQTT connection closed by the packet guard (see gateway/ingest/packet-guard.ts). */
  connectionRefused(reason: ConnectionRefusalReason): void;
  /** An empty retained publish on a sensor topic: its retained message removed [MQTT-3.3.1-10], nothing ingested. */
  retainedCleared(): void;
  /** A will message the broker is about to publish, by how it is handled. */
  will(handling: WillHandling): void;
  /** A publish routed as mqtt.passthrough (no ingest, no log). */
  passthrough(): void;
  /** A retained passthrough publish delivered without being retained (mqtt.passthroughMaxRetained reached). */
  passthroughRetainedRefused(): void;
  /** Readings of a mapped source (ingest.sources) made durable: whether their ts is the arrival time, whether they had no seq. */
  mappedReceived(kind: string, n: number, arrivalTime: boolean, withoutSeq: boolean): void;
  /** A publish of a device without seq dropped as a repeat of one within its source's dedupHorizonMs. */
  contentDuplicate(): void;
  /** A device forgotten by the content dedup (its bound is full; policy "evict-lru"). */
  contentDedupEviction(): void;
}

/**
 * device_status: on the device's status topic, a deviceStatus record appended; publish: handled
 * like a publish of its client (see the reading, rejection and passthrough counts); rejected: on a
 * status topic but refused (reason in pulsegate_readings_rejected_total).
 */
export const WILL_HANDLINGS = ['device_status', 'publish', 'rejected'] as const;
export type WillHandling = (typeof WILL_HANDLINGS)[number];

/**
 * Counts are kept in plain numbers on the hot path (a prom-client label lookup per publish cost
 * several percent of ingest) and copied into the counters when /metrics is scraped. Every label
 * value exists from the start: a rate() over a series that appears late misses its first step.
 */
export function createIngestMetrics(registry: Registry, kinds: readonly string[]): IngestMetrics {
  const byKind = new Map<string, number>(kinds.map((k) => [k, 0]));
  const byReason = new Map<RejectReason, number>(REJECT_REASONS.map((r) => [r, 0]));
  const byQos = [0, 0, 0];
  const byAuth = new Map<AuthResult, number>(AUTH_RESULTS.map((r) => [r, 0]));
  let authHashes = 0;
  const totals = { received: 0, rejected: 0, duplicates: 0 };
  const registers = [registry];

  const labelled = <L extends string>(name: string, help: string, label: L, read: () => Iterable<readonly [string, number]>): void => {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers,
      collect() {
        this.reset();
        for (const [value, n] of read()) this.inc({ [label]: value } as Record<L, string>, n);
      },
    });
  };
  labelled('pulsegate_readings_received_total', 'Readings received, decoded, valid and durable in the log, by sensor kind (duplicates included: see pulsegate_readings_duplicate_total)', 'kind', () => byKind);
  labelled('pulsegate_readings_rejected_total', 'Readings or publishes rejected by ingest, by reason', 'reason', () => byReason);
  labelled('pulsegate_mqtt_publishes_total', 'MQTT PUBLISH packets received from clients, by QoS', 'qos', () => byQos.map((n, q) => [String(q), n] as const));
  let readInPlace = 0;
  collectedCounter(registry, 'pulsegate_mqtt_publishes_read_in_place_total', 'MQTT PUBLISH packets read off their connection in place (mqtt.fastPublish) instead of by the broker\'s parser', () => readInPlace);
  labelled('pulsegate_mqtt_auth_total', 'MQTT CONNECT authentications, by result', 'result', () => byAuth);
  collectedCounter(registry, 'pulsegate_mqtt_auth_hashes_total', 'Password hashes computed on the hasher worker threads (off libuv\'s pool)', () => authHashes);
  collectedCounter(registry, 'pulsegate_readings_duplicate_total', 'Readings dropped as duplicates by (device, seq)', () => totals.duplicates);
  const byRefusal = new Map<ConnectionRefusalReason, number>(CONNECTION_REFUSAL_REASONS.map((r) => [r, 0]));
  labelled('pulsegate_mqtt_connections_refused_total', 'MQTT connections closed for an oversize, slow or malformed packet, by reason', 'reason', () => byRefusal);
  let retainedCleared = 0;
  collectedCounter(registry, 'pulsegate_mqtt_retained_cleared_total', 'Empty retained publishes on sensor topics that removed a retained message (nothing ingested)', () => retainedCleared);
  const byWill = new Map<WillHandling, number>(WILL_HANDLINGS.map((h) => [h, 0]));
  labelled('pulsegate_mqtt_wills_total', 'MQTT will messages published by the broker, by handling (device_status, publish, rejected)', 'handling', () => byWill);
  let passthrough = 0;
  let passthroughRetainedRefused = 0;
  collectedCounter(registry, 'pulsegate_mqtt_passthrough_total', 'Publishes routed as mqtt.passthrough (no ingest, no log)', () => passthrough);
  collectedCounter(registry, 'pulsegate_mqtt_passthrough_retained_refused_total', 'Retained passthrough publishes delivered but not retained (mqtt.passthroughMaxRetained reached)', () => passthroughRetainedRefused);
  const arrivalTimeByKind = new Map<string, number>(kinds.map((k) => [k, 0]));
  const withoutSeqByKind = new Map<string, number>(kinds.map((k) => [k, 0]));
  let contentDuplicates = 0;
  let contentDedupEvictions = 0;
  labelled('pulsegate_readings_arrival_time_total', 'Readings of ingest.sources whose event time is their arrival time (the device sent none), by kind', 'kind', () => arrivalTimeByKind);
  labelled('pulsegate_readings_without_seq_total', 'Readings of ingest.sources without a sequence number (no gap accounting, dedup by content only), by kind', 'kind', () => withoutSeqByKind);
  collectedCounter(registry, 'pulsegate_content_duplicates_total', 'Publishes of devices without seq dropped as repeats of the same bytes within their dedupHorizonMs', () => contentDuplicates);
  collectedCounter(registry, 'pulsegate_content_dedup_evictions_total', 'Devices without seq forgotten by the content dedup, least recently seen first (its bound is full)', () => contentDedupEvictions);
  const connectedClients = new Gauge({
    name: 'pulsegate_mqtt_connected_clients',
    help: 'MQTT clients currently connected',
    registers,
  });

  return {
    totals,
    connectedClients,
    received(kind, n) {
      totals.received += n;
      byKind.set(kind, (byKind.get(kind) ?? 0) + n);
    },
    rejected(reason, n) {
      totals.rejected += n;
      byReason.set(reason, byReason.get(reason)! + n);
    },
    duplicate(n) {
      totals.duplicates += n;
    },
    published(qos) {
      byQos[qos] = (byQos[qos] ?? 0) + 1;
    },
    readInPlace() {
      readInPlace++;
    },
    auth(result) {
      byAuth.set(result, byAuth.get(result)! + 1);
    },
    authHashed() {
      authHashes++;
    },
    connectionRefused(reason) {
      byRefusal.set(reason, byRefusal.get(reason)! + 1);
    },
    retainedCleared() {
      retainedCleared++;
    },
    will(handling) {
      byWill.set(handling, byWill.get(handling)! + 1);
    },
    passthrough() {
      passthrough++;
    },
    passthroughRetainedRefused() {
      passthroughRetainedRefused++;
    },
    mappedReceived(kind, n, arrivalTime, withoutSeq) {
      if (arrivalTime) arrivalTimeByKind.set(kind, (arrivalTimeByKind.get(kind) ?? 0) + n);
      if (withoutSeq) withoutSeqByKind.set(kind, (withoutSeqByKind.get(kind) ?? 0) + n);
    },
    contentDuplicate() {
      contentDuplicates++;
    },
    contentDedupEviction() {
      contentDedupEvictions++;
    },
  };
}
