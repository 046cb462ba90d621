/**
 * Sparkplug B v3.0 ingest, the host application side: `spBv1.0/<group>/<type>/<edge>[/<device>]`.
 *
 * - NBIRTH opens an edge node's session (its bdSeq, its seq at 0) and declares the node's metrics
 *   (names, aliases, types); DBIRTH does the same for a device under it. A new NBIRTH forgets the
 *   devices of the session before (they send their DBIRTH again).
 * - NDATA/DDATA carry changed metrics only (report by exception), by name or alias: a reading holds
 *   the last known value of every mapped field (sparkplug-mapping.ts), from the birth on.
 * - `seq` runs over all messages of an edge node: see sparkplug-seq.ts for how it feeds dedup and
 *   gap accounting.
 * - NDEATH (the node's MQTT will, or sent by it) with the bdSeq of the current birth, or DDEATH,
 *   makes the node and its devices, or the device, offline at once: a deviceStatus record each.
 *   An NDEATH with another bdSeq is an older session's will, arriving late: rejected, no effect.
 * - A data message (or DBIRTH) whose birth the gateway has not seen, or naming a metric its birth
 *   did not declare, is rejected with a reason, and the gateway asks the edge node for a rebirth
 *   (NCMD `Node Control/Rebirth` = true), at most once per ingest.sparkplug.rebirthIntervalMs.
 *
 * Device ids: `<group>:<edge>` for the node, `<group>:<edge>:<device>` for a device; each part
 * must be 1+ characters of [A-Za-z0-9_.-] (else the message is rejected as bad_topic, never renamed,
 * so two ids never collapse into one) and the whole at most 128 characters.
 *
 * Memory: at most ingest.sparkplug.maxEdgeNodes sessions (least recently heard forgotten, counted;
 * its next data message asks for a rebirth), ingest.sparkplug.maxDevicesPerNode devices each;
 * aliases and values are bounded by the metrics of a birth, which mqtt.maxPayloadBytes bounds.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import type { IngestConfig, SparkplugConfig } from '../config/config.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { DeviceStatus } from '../log/device-status-record.js';
import type { RejectedReading } from './decode-result.js';
import type { RejectReason } from './reject-reasons.js';
import { createSparkplugMapping, fieldValue, type SparkplugMapping } from './sparkplug-mapping.js';
import { decodeSparkplugPayload, encodeRebirthRequest, type SparkplugMetric, type SparkplugPayload, type SparkplugValue } from './sparkplug-payload.js';
import { SPARKPLUG_TOPIC_PREFIX } from './sparkplug-record.js';
import { SparkplugSeq } from './sparkplug-seq.js';

export const SPARKPLUG_MESSAGE_TYPES = ['NBIRTH', 'NDATA', 'NDEATH', 'DBIRTH', 'DDATA', 'DDEATH'] as const;
export type SparkplugMessageType = (typeof SPARKPLUG_MESSAGE_TYPES)[number];

const ID_PART = /^[A-Za-z0-9_.-]+$/;
const MAX_DEVICE_ID = 128;
const BDSEQ = 'bdSeq';

export interface SparkplugTopic {
  readonly group: string;
  readonly type: SparkplugMessageType;
  readonly edge: string;
  readonly device: string | null;
}

/** A Sparkplug B topic, or why it is not one the gateway takes. */
export function parseSparkplugTopic(topic: string): SparkplugTopic | { readonly invalid: string } {
  const parts = topic.slice(SPARKPLUG_TOPIC_PREFIX.length).split('/');
  const [group, type, edge, device] = parts;
  if (group === 'STATE' || type === 'NCMD' || type === 'DCMD') return { invalid: 'STATE, NCMD and DCMD are published by host applications, not taken by the gateway' };
  if (type === undefined || !(SPARKPLUG_MESSAGE_TYPES as readonly string[]).includes(type)) return { invalid: `expected spBv1.0/<group>/<${SPARKPLUG_MESSAGE_TYPES.join('|')}>/<edge>[/<device>]` };
  const t = type as SparkplugMessageType;
  const wantParts = t.startsWith('D') ? 4 : 3;
  if (parts.length !== wantParts) return { invalid: `${t} topics are spBv1.0/<group>/${t}/<edge>${wantParts === 4 ? '/<device>' : ''}` };
  for (const p of [group, edge, ...(device === undefined ? [] : [device])]) {
    if (p === undefined || !ID_PART.test(p)) return { invalid: `group, edge node and device ids must be 1+ characters of [A-Za-z0-9_.-], got "${p ?? ''}"` };
  }
  const id = device === undefined ? `${group}:${edge}` : `${group}:${edge}:${device}`;
  if (id.length > MAX_DEVICE_ID) return { invalid: `device id "${id.slice(0, 40)}..." is longer than ${MAX_DEVICE_ID} characters` };
  return { group: group!, type: t, edge: edge!, device: device ?? null };
}

/** Device id of an edge node (device = null) or of a device under it. */
export function sparkplugDeviceId(group: string, edge: string, device: string | null): string {
  return device === null ? `${group}:${edge}` : `${group}:${edge}:${device}`;
}

/**
 * The primary host's STATE message (v3.0): topic spBv1.0/STATE/<hostId>, retained, QoS 1, JSON
 * `{"online": bool, "timestamp": ms}`. Edge nodes set to this primary host publish their births
 * once it is online.
 */
export function sparkplugStateMessage(hostId: string, online: boolean, timestamp: number): { readonly topic: string; readonly payload: Buffer } {
  return { topic: `${SPARKPLUG_TOPIC_PREFIX}STATE/${hostId}`, payload: Buffer.from(JSON.stringify({ online, timestamp }), 'utf8') };
}

/** What to do with one message: reject it, or log its statuses and readings (in that order). */
export type SparkplugOutcome =
  | { readonly reject: RejectReason; readonly detail: string }
  | { readonly statuses: readonly DeviceStatus[]; readonly readings: readonly Reading[]; readonly rejected: readonly RejectedReading[] };

interface Entity {
  readonly deviceId: string;
  /** alias -> metric name, from the birth. */
  readonly aliases: Map<number, string>;
  /** Metric names the birth declared. */
  readonly names: Set<string>;
  /** field -> last known value. */
  readonly values: Record<string, number | string>;
}

interface Session {
  readonly group: string;
  readonly edge: string;
  readonly bdSeq: number;
  readonly stream: string;
  readonly seq: SparkplugSeq;
  readonly node: Entity;
  readonly devices: Map<string, Entity>;
}

export interface SparkplugIngestOptions {
  readonly config: SparkplugConfig;
  readonly ingest: Pick<IngestConfig, 'maxPastAgeMs' | 'maxFutureSkewMs'>;
  readonly kinds: KindRegistry;
  readonly clock: Clock;
  readonly registry: Registry;
  /** Sends a message of the gateway's (the NCMD rebirth request), QoS 0. */
  publish(topic: string, payload: Buffer): void;
}

export interface SparkplugIngest {
  readonly mapping: SparkplugMapping;
  /**
   * One message. `authorize(edge)`: null when the client may publish for edge node `edge`, else
   * why not. Never throws on what a client sent.
   */
  handle(topic: string, payload: Buffer, receivedAt: number, authorize: (edge: string) => string | null): SparkplugOutcome;
}

export function createSparkplugIngest(options: SparkplugIngestOptions): SparkplugIngest {
  const { config, clock } = options;
  const mapping = createSparkplugMapping(config, options.kinds);
  const kind = mapping.kind;
  const sessions = new Map<string, Session>();
  /** Edge node key -> time of the last rebirth request (bounded like the sessions: oldest dropped). */
  const rebirthAt = new Map<string, number>();
  const registers = [options.registry];
  const messages = new Counter({ name: 'pulsegate_sparkplug_messages_total', help: 'Sparkplug B messages received, by message type (accepted or rejected)', labelNames: ['type'], registers });
  const byType = new Map(SPARKPLUG_MESSAGE_TYPES.map((t) => [t, messages.labels(t)] as const));
  const rebirths = new Counter({ name: 'pulsegate_sparkplug_rebirth_requests_total', help: 'NCMD Node Control/Rebirth requests sent to edge nodes', registers });
  const evicted = new Counter({ name: 'pulsegate_sparkplug_sessions_evicted_total', help: 'Edge node sessions forgotten past ingest.sparkplug.maxEdgeNodes (evict-lru)', registers });
  const lostMessages = new Counter({ name: 'pulsegate_sparkplug_messages_lost_total', help: 'Sparkplug B seq numbers skipped by edge nodes (messages lost in transit)', registers });
  new Gauge({ name: 'pulsegate_sparkplug_edge_nodes', help: 'Edge nodes with a current birth (NBIRTH seen, no death since)', registers, collect() { this.set(sessions.size); } });
  rebirths.inc(0);
  evicted.inc(0);
  lostMessages.inc(0);

  const keyOf = (group: string, edge: string): string => `${group}/${edge}`;

  function requestRebirth(group: string, edge: string): void {
    const key = keyOf(group, edge);
    const now = clock.now();
    const last = rebirthAt.get(key);
    if (last !== undefined && now - last < config.rebirthIntervalMs) return;
    rebirthAt.delete(key);
    rebirthAt.set(key, now);
    if (rebirthAt.size > config.maxEdgeNodes) rebirthAt.delete(rebirthAt.keys().next().value!);
    rebirths.inc();
    options.publish(`${SPARKPLUG_TOPIC_PREFIX}${group}/NCMD/${edge}`, encodeRebirthRequest(now));
  }

  function noBirth(t: SparkplugTopic, detail: string): SparkplugOutcome {
    requestRebirth(t.group, t.edge);
    return { reject: 'sparkplug_no_birth', detail: `${detail}; rebirth requested` };
  }

  function status(deviceId: string, s: 'online' | 'offline', at: number): DeviceStatus {
    return { kind: kind.name, deviceId, status: s, reason: s === 'online' ? 'sparkplug-birth' : 'sparkplug-death', at };
  }

  /** Aliases, names and mapped values of a birth. */
  function born(deviceId: string, metrics: readonly SparkplugMetric[]): Entity | { readonly invalid: string } {
    const e: Entity = { deviceId, aliases: new Map(), names: new Set(), values: {} };
    for (const m of metrics) {
      if (m.name === null || m.name === '') return { invalid: 'a birth metric has no name' };
      e.names.add(m.name);
      if (m.alias !== null) {
        if (e.aliases.has(m.alias)) return { invalid: `alias ${m.alias} is declared twice (metrics "${e.aliases.get(m.alias)}" and "${m.name}")` };
        e.aliases.set(m.alias, m.name);
      }
    }
    return e;
  }

  /**
   * Applies the metrics of a message to the entity's values; returns the reading (when a mapped
   * metric is in it), a rejection, or null (nothing mapped in this message).
   */
  function apply(e: Entity, session: Session, p: SparkplugPayload, isBirth: boolean, receivedAt: number, seqRaw: number): { reading: Reading | null; rejected: RejectedReading | null } | { unknown: string } {
    const updates: [string, string, SparkplugValue, string | null][] = [];
    for (const m of p.metrics) {
      let name = m.name;
      if (name === null || name === '') {
        if (m.alias === null) return { unknown: 'a metric has neither name nor alias' };
        name = e.aliases.get(m.alias) ?? null;
        if (name === null) return { unknown: `alias ${m.alias} was not declared in the birth of ${e.deviceId}` };
      } else if (!isBirth && !e.names.has(name)) {
        return { unknown: `metric "${name}" was not declared in the birth of ${e.deviceId}` };
      }
      const field = mapping.fieldOf.get(name);
      if (field !== undefined) updates.push([field, name, m.value, m.complex ? m.type : null]);
    }
    if (updates.length === 0) {
      session.seq.see(seqRaw);
      return { reading: null, rejected: null };
    }
    const outcome = session.seq.number(seqRaw);
    if (outcome.seq === null) return { reading: null, rejected: null };
    let invalid: string | null = null;
    for (const [field, metric, value, complex] of updates) {
      if (value === null) {
        // A null metric (is_null) clears the field: the device no longer knows that value.
        if (complex !== null) invalid ??= `${field} (metric "${metric}") is of type ${complex}, which no reading field holds`;
        delete e.values[field];
        continue;
      }
      const v = fieldValue(kind.fields[field]!, field, metric, value);
      if (typeof v === 'object') invalid ??= v.invalid;
      else e.values[field] = v;
    }
    if (invalid !== null) return { reading: null, rejected: { reason: 'invalid', detail: invalid } };
    for (const [field, spec] of Object.entries(kind.fields)) {
      if (spec.required && e.values[field] === undefined) return { reading: null, rejected: { reason: 'invalid', detail: `missing field ${field} (no value of its metric since the birth)` } };
    }
    const ts = p.timestamp ?? receivedAt;
    if (!Number.isSafeInteger(ts) || ts < receivedAt - options.ingest.maxPastAgeMs || ts > receivedAt + options.ingest.maxFutureSkewMs) {
      return { reading: null, rejected: { reason: 'timestamp_out_of_range', detail: `timestamp ${ts} outside [${receivedAt - options.ingest.maxPastAgeMs}, ${receivedAt + options.ingest.maxFutureSkewMs}]` } };
    }
    return { reading: { kind: kind.name, deviceId: e.deviceId, seq: outcome.seq, ts, values: { ...e.values }, seqStream: session.stream }, rejected: null };
  }

  function readingsOf(r: { reading: Reading | null; rejected: RejectedReading | null }): { readings: Reading[]; rejected: RejectedReading[] } {
    return { readings: r.reading === null ? [] : [r.reading], rejected: r.rejected === null ? [] : [r.rejected] };
  }

  function seqOf(p: SparkplugPayload): number | { readonly invalid: string } {
    if (p.seq === null || !Number.isInteger(p.seq) || p.seq < 0 || p.seq > 255) return { invalid: `seq must be an integer in [0, 255], got ${String(p.seq)}` };
    return p.seq;
  }

  function bdSeqOf(p: SparkplugPayload): number | null {
    const m = p.metrics.find((x) => x.name === BDSEQ);
    return m !== undefined && typeof m.value === 'number' && Number.isInteger(m.value) ? m.value : null;
  }

  function handle(topic: string, payload: Buffer, receivedAt: number, authorize: (edge: string) => string | null): SparkplugOutcome {
    const t = parseSparkplugTopic(topic);
    if ('invalid' in t) return { reject: 'bad_topic', detail: t.invalid };
    byType.get(t.type)!.inc();
    const refusal = authorize(t.edge);
    if (refusal !== null) return { reject: 'unauthorized', detail: refusal };
    let p: SparkplugPayload;
    try {
      p = decodeSparkplugPayload(payload);
    } catch (err) {
      return { reject: 'decode_error', detail: `Sparkplug B payload: ${(err as Error).message}` };
    }
    const key = keyOf(t.group, t.edge);
    let session = sessions.get(key);
    if (session !== undefined) {
      // Least recently heard at the front: evicted first.
      sessions.delete(key);
      sessions.set(key, session);
    }
    const nodeId = sparkplugDeviceId(t.group, t.edge, null);

    if (t.type === 'NDEATH') {
      const bdSeq = bdSeqOf(p);
      if (session === undefined) return { reject: 'sparkplug_stale_death', detail: `NDEATH of ${nodeId}, whose birth the gateway does not hold` };
      if (bdSeq !== session.bdSeq) return { reject: 'sparkplug_stale_death', detail: `NDEATH bdSeq ${String(bdSeq)} is not the current birth's ${session.bdSeq} (a will of an older session)` };
      sessions.delete(key);
      const statuses = [status(nodeId, 'offline', receivedAt), ...[...session.devices.values()].map((d) => status(d.deviceId, 'offline', receivedAt))];
      return { statuses, readings: [], rejected: [] };
    }

    const seqRaw = seqOf(p);
    if (typeof seqRaw !== 'number') return { reject: 'invalid', detail: seqRaw.invalid };

    if (t.type === 'NBIRTH') {
      const bdSeq = bdSeqOf(p);
      if (bdSeq === null) return { reject: 'invalid', detail: 'NBIRTH without an integer bdSeq metric' };
      const node = born(nodeId, p.metrics);
      if ('invalid' in node) return { reject: 'invalid', detail: `NBIRTH: ${node.invalid}` };
      const fresh: Session = { group: t.group, edge: t.edge, bdSeq, stream: `${key}#${bdSeq}@${receivedAt}`, seq: new SparkplugSeq(seqRaw), node, devices: new Map() };
      if (session !== undefined) sessions.delete(key);
      sessions.set(key, fresh);
      if (sessions.size > config.maxEdgeNodes) {
        sessions.delete(sessions.keys().next().value!);
        evicted.inc();
      }
      rebirthAt.delete(key);
      const applied = apply(node, fresh, p, true, receivedAt, seqRaw);
      return { statuses: [status(nodeId, 'online', receivedAt)], ...('unknown' in applied ? { readings: [], rejected: [] } : readingsOf(applied)) };
    }

    if (session === undefined) return noBirth(t, `${t.type} from edge node ${nodeId} before its NBIRTH`);
    const lostBefore = session.seq.lost;
    const outcome = message(t, session, p, seqRaw, receivedAt);
    if (session.seq.lost > lostBefore) lostMessages.inc(session.seq.lost - lostBefore);
    return outcome;
  }

  function message(t: SparkplugTopic, session: Session, p: SparkplugPayload, seqRaw: number, receivedAt: number): SparkplugOutcome {
    if (t.type === 'NDATA') return data(t, session, session.node, p, seqRaw, receivedAt);
    const deviceId = sparkplugDeviceId(t.group, t.edge, t.device);
    const device = session.devices.get(t.device!);
    if (t.type === 'DBIRTH') {
      if (device === undefined && session.devices.size >= config.maxDevicesPerNode) {
        return { reject: 'sparkplug_limit', detail: `edge node ${t.group}:${t.edge} has ${session.devices.size} devices (ingest.sparkplug.maxDevicesPerNode)` };
      }
      const e = born(deviceId, p.metrics);
      if ('invalid' in e) return { reject: 'invalid', detail: `DBIRTH: ${e.invalid}` };
      session.devices.set(t.device!, e);
      const applied = apply(e, session, p, true, receivedAt, seqRaw);
      return { statuses: [status(deviceId, 'online', receivedAt)], ...('unknown' in applied ? { readings: [], rejected: [] } : readingsOf(applied)) };
    }
    if (device === undefined) {
      if (t.type === 'DDEATH') return { reject: 'sparkplug_no_birth', detail: `DDEATH of ${deviceId}, whose DBIRTH the gateway does not hold` };
      return noBirth(t, `DDATA from ${deviceId} before its DBIRTH`);
    }
    if (t.type === 'DDEATH') {
      session.seq.see(seqRaw);
      session.devices.delete(t.device!);
      return { statuses: [status(deviceId, 'offline', receivedAt)], readings: [], rejected: [] };
    }
    return data(t, session, device, p, seqRaw, receivedAt);
  }

  function data(t: SparkplugTopic, session: Session, e: Entity, p: SparkplugPayload, seqRaw: number, receivedAt: number): SparkplugOutcome {
    const applied = apply(e, session, p, false, receivedAt, seqRaw);
    if ('unknown' in applied) {
      requestRebirth(t.group, t.edge);
      return { reject: 'sparkplug_unknown_metric', detail: `${applied.unknown}; rebirth requested` };
    }
    return { statuses: [], ...readingsOf(applied) };
  }

  return { mapping, handle };
}
