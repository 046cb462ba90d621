import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { IngestConfig } from '../config/config.js';
import type { FieldSpec, KindDescriptor, Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import { createFastProtoDecoder, type FastProtoDecoder } from './proto-fast-decode.js';
import type { DecodeResult, RejectedReading } from './decode-result.js';

export type { DecodeResult, RejectedReading } from './decode-result.js';

/** proto/ sits at the package root: two levels up from source, three from dist/. */
export const PROTO_FILE = [new URL('../../proto/pulsegate.proto', import.meta.url), new URL('../../../proto/pulsegate.proto', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((p) => existsSync(p)) ?? 'proto/pulsegate.proto';

interface CompiledKind {
  readonly kind: KindDescriptor;
  /** null: the kind has no protobuf messages (JSON only). */
  readonly readingType: protobuf.Type | null;
  readonly batchType: protobuf.Type | null;
  readonly fields: readonly (readonly [string, FieldSpec])[];
  /** Enum fields: protobuf number -> name. */
  readonly enumNames: ReadonlyMap<string, readonly string[]>;
  /** Wire-format decoder straight to readings; null when the kind's messages need protobufjs. */
  readonly fast: FastProtoDecoder | null;
}

/** First byte of every batch: field 1, wire type 2 (see the framing rule in proto/pulsegate.proto). */
const BATCH_TAG = 0x0a;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;

export interface PayloadDecoder {
  /**
   * Decodes and validates one publish of `kind` from `deviceId`. `receivedAt` is the time the
   * gateway received it (stored in the log), so that replaying the log validates identically.
   * `start`: where the publish's bytes begin in `payload` (they run to its end); replay decodes
   * them in place in the ingest record. Default 0.
   */
  decode(kind: KindDescriptor, deviceId: string, payload: Buffer, receivedAt: number, start?: number): DecodeResult;
}

export interface PayloadDecoderOptions {
  /**
   * Decode protobuf with the wire-format fast path (proto-fast-decode.ts), which falls back to
   * protobufjs on anything unusual. `false` keeps protobufjs alone, the reference the fast path is
   * tested against. Default true.
   */
  readonly fast?: boolean;
}

export function createPayloadDecoder(
  kinds: KindRegistry,
  config: Pick<IngestConfig, 'maxPastAgeMs' | 'maxFutureSkewMs'>,
  protoFile = PROTO_FILE,
  options: PayloadDecoderOptions = {},
): PayloadDecoder {
  const useFast = options.fast ?? true;
  const root = protobuf.loadSync(protoFile);
  const compiled = new Map<string, CompiledKind>();
  for (const kind of kinds.values()) {
    if (kind.proto === undefined) {
      // A kind defined in the config: JSON only.
      compiled.set(kind.name, { kind, readingType: null, batchType: null, fields: Object.entries(kind.fields), enumNames: new Map(), fast: null });
      continue;
    }
    const readingType = root.lookupType(kind.proto.reading);
    const enumNames = new Map<string, readonly string[]>();
    for (const [name, spec] of Object.entries(kind.fields)) {
      if (spec.type !== 'enum') continue;
      const field = readingType.fields[name];
      const resolved = field?.resolve().resolvedType;
      if (!(resolved instanceof protobuf.Enum)) throw new Error(`kind ${kind.name}: field ${name} is not a protobuf enum`);
      const byId: string[] = [];
      for (const [label, id] of Object.entries(resolved.values)) byId[id] = label;
      enumNames.set(name, byId);
    }
    const batchType = root.lookupType(kind.proto.batch);
    compiled.set(kind.name, {
      kind,
      readingType,
      batchType,
      fields: Object.entries(kind.fields),
      enumNames,
      fast: useFast ? createFastProtoDecoder(kind, readingType, batchType, enumNames) : null,
    });
  }

  function decode(kind: KindDescriptor, deviceId: string, payload: Buffer, receivedAt: number, start = 0): DecodeResult {
    const c = compiled.get(kind.name);
    if (c === undefined) return { readings: [], rejected: [{ reason: 'unknown_kind', detail: kind.name }] };
    const minTs = receivedAt - config.maxPastAgeMs;
    const maxTs = receivedAt + config.maxFutureSkewMs;
    const first = firstNonSpace(payload, start);
    const json = first === OPEN_BRACE || first === OPEN_BRACKET;
    if (!json && c.fast !== null) {
      const fast = c.fast.decode(deviceId, payload, start, minTs, maxTs);
      if (fast !== undefined) return fast;
    }
    // Everything past the fast path sees the publish's bytes alone.
    if (start !== 0) payload = payload.subarray(start);

    if (json) {
      const out: DecodeResult = { readings: [], rejected: [] };
      const items = jsonItems(payload, out);
      if (items === null) return out;
      for (const item of items) {
        if (item === null || typeof item !== 'object' || Array.isArray(item)) {
          out.rejected.push({ reason: 'invalid', detail: 'reading is not a JSON object' });
          continue;
        }
        accept(c, deviceId, item as Record<string, unknown>, false, minTs, maxTs, out);
      }
      return out;
    }

    const out: DecodeResult = { readings: [], rejected: [] };
    if (c.readingType === null || c.batchType === null || kind.proto === undefined) {
      out.rejected.push({ reason: 'decode_error', detail: `kind ${kind.name} takes JSON payloads only (it has no protobuf messages)` });
      return out;
    }
    let messages: Record<string, unknown>[];
    try {
      if (payload.length > 0 && payload[0] === BATCH_TAG) {
        const batch = c.batchType.decode(payload) as unknown as Record<string, unknown>;
        messages = (batch[kind.proto.batchField] as Record<string, unknown>[] | undefined) ?? [];
        if (messages.length === 0) out.rejected.push({ reason: 'invalid', detail: 'empty batch' });
      } else {
        messages = [c.readingType.decode(payload) as unknown as Record<string, unknown>];
      }
    } catch (err) {
      out.rejected.push({ reason: 'decode_error', detail: `protobuf: ${(err as Error).message}` });
      return out;
    }
    for (const m of messages) accept(c, deviceId, m, true, minTs, maxTs, out);
    return out;
  }

  return { decode };
}

/**
 * First significant byte. 0x0a (a protobuf batch tag) is returned as is: a batch's length byte may
 * well be '{' or '[', so a JSON payload must not start with a newline (spaces, tabs and CR are fine).
 */
/**
 * The readings of a JSON payload: one object, or an array of them (a batch). An unparsable
 * payload is rejected as decode_error (null), an empty batch counted as invalid (no items).
 */
export function jsonItems(payload: Buffer, out: DecodeResult): readonly unknown[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    out.rejected.push({ reason: 'decode_error', detail: `JSON: ${(err as Error).message}` });
    return null;
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  if (items.length === 0) out.rejected.push({ reason: 'invalid', detail: 'empty batch' });
  return items;
}

function firstNonSpace(buf: Buffer, start: number): number {
  // No cap on the leading run: the payload is bounded by mqtt.maxPayloadBytes, and a protobuf
  // reading or batch never starts with these bytes (field 1 comes first, see the framing rule).
  for (let i = start; i < buf.length; i++) {
    const b = buf[i]!;
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return b;
  }
  return -1;
}

/** The Long class protobufjs decodes 64-bit integers to. */
const Long = protobuf.util.Long;

/**
 * protobufjs decodes 64-bit integers to Long objects; JSON gives numbers. Only a Long from
 * protobufjs is converted: a JSON value is device-controlled, and an object such as
 * `{"toNumber":1}` must be an invalid reading, never a call.
 */
function toNumber(v: unknown, fromProtobuf: boolean): number {
  if (typeof v === 'number') return v;
  if (fromProtobuf && v instanceof Long) return (v as unknown as { toNumber(): number }).toNumber();
  return Number.NaN;
}

/** Longest rendering of a device's value in a rejection detail. */
const DETAIL_VALUE_CHARS = 64;

/**
 * A device's value as text for a rejection detail, without running anything the device chose:
 * `String(v)` calls a JSON object's own `toString`/`valueOf` keys and throws when they are not
 * functions (`{"toString":1}`).
 */
export function describeValue(v: unknown): string {
  let text: string;
  switch (typeof v) {
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return String(v);
    case 'string':
      text = JSON.stringify(v);
      break;
    default:
      if (v === null) return 'null';
      if (v instanceof Long) return v.toString();
      text = Array.isArray(v) ? `an array of ${v.length}` : 'an object';
  }
  return text.length > DETAIL_VALUE_CHARS ? `${text.slice(0, DETAIL_VALUE_CHARS)}...` : text;
}

/** proto-fast-decode.ts repeats these checks and details for protobuf; keep both in step. */
function accept(
  c: CompiledKind,
  deviceId: string,
  msg: Record<string, unknown>,
  fromProtobuf: boolean,
  minTs: number,
  maxTs: number,
  out: DecodeResult,
): void {
  const seq = toNumber(msg['seq'], fromProtobuf);
  if (!Number.isSafeInteger(seq) || seq < 1) {
    out.rejected.push({ reason: 'invalid', detail: `seq must be an integer >= 1, got ${describeValue(msg['seq'])}` });
    return;
  }
  const ts = toNumber(msg['ts'], fromProtobuf);
  if (!Number.isSafeInteger(ts)) {
    out.rejected.push({ reason: 'invalid', detail: `ts must be an integer (ms since epoch), got ${describeValue(msg['ts'])}` });
    return;
  }
  if (ts < minTs || ts > maxTs) {
    out.rejected.push({ reason: 'timestamp_out_of_range', detail: `ts ${ts} outside [${minTs}, ${maxTs}]` });
    return;
  }
  const values: Record<string, number | string> = {};
  for (const [name, spec] of c.fields) {
    // proto3 scalars have no presence: only `optional` fields are absent when unset.
    const present = fromProtobuf ? spec.required || Object.hasOwn(msg, name) : msg[name] !== undefined && msg[name] !== null;
    if (!present) {
      if (spec.required) {
        out.rejected.push({ reason: 'invalid', detail: `missing field ${name}` });
        return;
      }
      continue;
    }
    const checked = checkFieldValue(name, spec, msg[name], fromProtobuf, c.enumNames);
    if (typeof checked === 'object') {
      out.rejected.push(checked);
      return;
    }
    values[name] = checked;
  }
  out.readings.push({ kind: c.kind.name, deviceId, seq, ts, values });
}

/**
 * One field's value checked against its spec: the stored value (enum as its name, bool as 1/0),
 * or the rejection. Shared by the sensors/<kind>/<id> path and the mapped sources (source-mapping.ts).
 */
export function checkFieldValue(
  name: string,
  spec: FieldSpec,
  raw: unknown,
  fromProtobuf: boolean,
  enumNames?: ReadonlyMap<string, readonly string[]>,
): number | string | RejectedReading {
  switch (spec.type) {
    case 'enum': {
      const label = typeof raw === 'number' && fromProtobuf ? enumNames?.get(name)?.[raw] : raw;
      if (typeof label !== 'string' || !spec.values.includes(label)) {
        return { reason: 'invalid', detail: `${name} must be one of ${spec.values.join('|')}, got ${describeValue(raw)}` };
      }
      return label;
    }
    case 'bool':
      if (raw === true) return 1;
      if (raw === false) return 0;
      return { reason: 'invalid', detail: `${name} must be true or false, got ${describeValue(raw)}` };
    case 'string':
      if (typeof raw !== 'string' || raw.length > spec.maxLength) {
        return { reason: 'invalid', detail: `${name} must be a string of at most ${spec.maxLength} characters, got ${describeValue(raw)}` };
      }
      return raw;
    default: {
      const n = toNumber(raw, fromProtobuf);
      if (!Number.isFinite(n) || (spec.type === 'int' && !Number.isInteger(n)) || n < spec.min || n > spec.max) {
        return { reason: 'invalid', detail: `${name} must be ${spec.type === 'int' ? 'an integer' : 'a number'} in [${spec.min}, ${spec.max}], got ${describeValue(raw)}` };
      }
      return n;
    }
  }
}
