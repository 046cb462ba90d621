import type { Reading } from '../kinds/kind-descriptor.js';
import type { WindowResult } from '../window/types.js';
import type { AlertEvent, Severity } from '../wire/alert.js';

/** A health sample of the gateway itself, written every few seconds so Grafana can chart it. */
export interface HealthSample {
  readonly ts: number;
  readonly values: Readonly<Record<string, number>>;
}

/** What the gateway hands a sink in one write. Any part may be empty. */
export interface SinkBatch {
  readonly readings: readonly Reading[];
  readonly windows: readonly WindowResult[];
  readonly health: readonly HealthSample[];
  /**
   * Alert transitions with the log offset of their record. Optional: a batch without alerts (and
   * every batch logged before alerts were stored) has none. Identity (id, state): a transition
   * told again after a restart overwrites its row/point.
   */
  readonly alerts?: readonly AlertEvent[];
  /**
   * The ingest records whose raw readings this batch completes. Optional: batches logged before
   * it was kept have none.
   */
  readonly covers?: BatchCovers;
}

/**
 * The readings of one ingest record kept in a batch as the MQTT payload they were decoded from
 * (a native publish of several readings, none of them dropped as a duplicate). Copying the bytes
 * costs the gateway's thread far less than encoding each reading; the sink thread decodes them
 * again, as a replay would: with the kinds, against the publish's arrival time and with the
 * event-time bounds the batch says ingest applied (PayloadLimits).
 */
export interface PayloadReadings {
  readonly receivedAt: number;
  readonly topic: string;
  readonly payload: Uint8Array;
  /** How many readings it decoded to: what it counts for in a batch. */
  readonly count: number;
}

/** Ingest's event-time bounds a payload's readings were validated with (ingest.maxPastAgeMs, ingest.maxFutureSkewMs). */
export interface PayloadLimits {
  readonly maxPastAgeMs: number;
  readonly maxFutureSkewMs: number;
}

/**
 * A batch as the gateway's batcher makes it: raw readings may be kept as payloads, decoded on
 * the sink thread. `payloadLimits` must be given when there is one.
 */
export interface OutgoingBatch extends Omit<SinkBatch, 'readings'> {
  readonly readings: readonly (Reading | PayloadReadings)[];
  readonly payloadLimits?: PayloadLimits;
}

export function isPayloadReadings(r: Reading | PayloadReadings): r is PayloadReadings {
  return (r as Partial<PayloadReadings>).payload !== undefined;
}

/**
 * The readings of a PayloadReadings' bytes, decoded as ingest decoded them (on the sink thread),
 * with the batch's limits. `count`: how many the gateway's thread had, so that a payload decoded
 * otherwise (the kinds changed while the batch waited for the store) can be told.
 */
export type PayloadExpander = (receivedAt: number, topic: string, payload: Buffer, count: number, limits: PayloadLimits) => readonly Reading[];

/**
 * Log offsets [from, below): every raw reading of the ingest records below `below` is in this
 * batch or an earlier one, provided those below `from` are. The batches of the log's tail chain
 * up from the checkpoint (outgoingCoverage in gateway/log/outbox.ts): a replay after a crash does not batch again the raw
 * readings the chain reaches. A batch the log never took leaves a gap the chain stops at.
 */
export interface BatchCovers {
  readonly from: number;
  readonly below: number;
}

export interface WindowQuery {
  readonly kind: string;
  readonly deviceId?: string;
  readonly sizeMs?: number;
  readonly from: number;
  readonly to: number;
  readonly limit: number;
}

export interface ReadingQuery {
  readonly kind: string;
  readonly deviceId?: string;
  readonly from: number;
  readonly to: number;
  readonly limit: number;
}

/**
 * Alert transitions of [from, to) by their time (firedAt for FIRING, resolvedAt for RESOLVED),
 * oldest first; `device` is a glob (`*` any run, `?` one character).
 */
export interface AlertQuery {
  readonly from: number;
  readonly to: number;
  readonly kind?: string;
  readonly device?: string;
  readonly rule?: string;
  readonly severity?: Severity;
  readonly limit: number;
}

/** The time an alert transition is filed under in the store: firedAt for FIRING, resolvedAt for RESOLVED. */
export function alertTime(a: Pick<AlertEvent, 'state' | 'firedAt' | 'resolvedAt'>): number {
  return a.state === 'RESOLVED' && a.resolvedAt !== null ? a.resolvedAt : a.firedAt;
}

/**
 * Stage contract for a time-series store. `write` resolves only when the store has the batch
 * durably; it rejects with a GatewayError whose `retryable` says whether backing off can help.
 * Writes are idempotent: the same reading/window identity overwrites, never duplicates.
 */
export interface Sink {
  readonly name: string;
  start(): Promise<void>;
  write(batch: SinkBatch): Promise<void>;
  /**
   * Writes several batches, in order, all or none (one transaction), as one write; resolves once
   * the store has them all durably. Taken one at a time from `batches`, so a caller that decodes
   * them as they are asked for holds one decoded batch at a time. A sink without it is written
   * batch by batch.
   */
  writeMany?(batches: Iterable<SinkBatch>): Promise<void>;
  queryWindows(query: WindowQuery): Promise<WindowResult[]>;
  queryReadings(query: ReadingQuery): Promise<Reading[]>;
  queryAlerts(query: AlertQuery): Promise<AlertEvent[]>;
  /** Idempotent. */
  close(): Promise<void>;
}

/** A query's rows already serialized as a JSON array, with their number. */
export interface SerializedRows {
  readonly count: number;
  readonly json: string;
}

/**
 * A sink that can answer queries with rows serialized where the store runs (the sink thread), so
 * the rows never become objects on the gateway's main thread, which also runs MQTT ingest: a
 * 10k-row answer crosses as one string instead of 10k cloned objects to be serialized again.
 */
export interface SerializingSink extends Sink {
  queryWindowsJson(query: WindowQuery): Promise<SerializedRows>;
  queryReadingsJson(query: ReadingQuery): Promise<SerializedRows>;
  queryAlertsJson(query: AlertQuery): Promise<SerializedRows>;
}

/** The answer of POST /v1/query: `json` is the whole response body, built where the rows were read. */
export interface SqlAnswer {
  readonly count: number;
  readonly truncated: boolean;
  readonly json: string;
}

/** Read-only queries in the store's own language (SQL on the embedded store, InfluxQL on InfluxDB). */
export interface SqlQueryService {
  readonly language: 'sql' | 'influxql';
  /** Rejects with GW_ERR_QUERY_INVALID (details.position for a syntax error), GW_ERR_QUERY_TIMEOUT, or a store error. */
  query(text: string, options: { readonly maxRows: number; readonly signal?: AbortSignal }): Promise<SqlAnswer>;
  close(): Promise<void>;
}
