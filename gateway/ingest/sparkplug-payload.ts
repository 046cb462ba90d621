/**
 * Sparkplug B payloads (the Eclipse Tahu protobuf, through `sparkplug-payload`), as plain values:
 * protobufjs 6 decodes every 64-bit integer (timestamp, seq, alias, Int64/UInt64 values) to a
 * Long, which is converted here, once, so nothing past this file meets one.
 */
import { get } from 'sparkplug-payload';

const codec = get('spBv1.0')!;

export type SparkplugValue = number | boolean | string | null;

export interface SparkplugMetric {
  readonly name: string | null;
  readonly alias: number | null;
  /** Sparkplug datatype name (Int32, Double, Boolean, String, ...). */
  readonly type: string;
  /** Numbers, booleans and strings as they are; null when the metric is null or of a type no reading holds (DataSet, Template, Bytes, ...). */
  readonly value: SparkplugValue;
  /** True for DataSet, Template, Bytes, File, PropertySet values (kept out of readings). */
  readonly complex: boolean;
}

export interface SparkplugPayload {
  readonly timestamp: number | null;
  readonly seq: number | null;
  readonly metrics: readonly SparkplugMetric[];
}

interface LongLike {
  toNumber(): number;
}

function isLong(v: unknown): v is LongLike {
  // Only the decoder builds objects here (a device sends bytes, never objects), so the marker
  // long.js puts on its instances is enough.
  return typeof v === 'object' && v !== null && (v as { __isLong__?: unknown }).__isLong__ === true;
}

function num(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (isLong(v)) return v.toNumber();
  return null;
}

/** Decodes one Sparkplug B payload; throws (a protobuf error) on bytes that are not one. */
export function decodeSparkplugPayload(bytes: Uint8Array): SparkplugPayload {
  const p = codec.decodePayload(bytes);
  const metrics: SparkplugMetric[] = [];
  for (const m of p.metrics ?? []) {
    const raw: unknown = m.value;
    let value: SparkplugValue = null;
    let complex = false;
    if (typeof raw === 'number' || typeof raw === 'boolean' || typeof raw === 'string') value = raw;
    else if (isLong(raw)) value = raw.toNumber();
    else if (raw !== null && raw !== undefined) complex = true;
    metrics.push({ name: typeof m.name === 'string' ? m.name : null, alias: num(m.alias), type: String(m.type), value, complex });
  }
  return { timestamp: num(p.timestamp), seq: num(p.seq), metrics };
}

/** Encodes a payload (the simulator's edge node, the gateway's NCMD). */
export function encodeSparkplugPayload(p: {
  readonly timestamp?: number;
  readonly seq?: number;
  readonly metrics: readonly { readonly name?: string; readonly alias?: number; readonly type: string; readonly value: number | boolean | string | null }[];
}): Buffer {
  const payload: Record<string, unknown> = { metrics: p.metrics.map((m) => ({ ...m })) };
  if (p.timestamp !== undefined) payload['timestamp'] = p.timestamp;
  if (p.seq !== undefined) payload['seq'] = p.seq;
  return Buffer.from(codec.encodePayload(payload as never));
}

/** The metric a host application sets to ask an edge node for a new NBIRTH (and DBIRTHs) [tck-id-operational-behavior-host-reordering-rebirth]. */
export const REBIRTH_METRIC = 'Node Control/Rebirth';

/** The NCMD payload asking for a rebirth: `Node Control/Rebirth` = true. */
export function encodeRebirthRequest(timestamp: number): Buffer {
  return encodeSparkplugPayload({ timestamp, metrics: [{ name: REBIRTH_METRIC, type: 'Boolean', value: true }] });
}
