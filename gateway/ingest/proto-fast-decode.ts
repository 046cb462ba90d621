import protobuf from 'protobufjs';
import type { KindDescriptor, Reading } from '../kinds/kind-descriptor.js';
import type { DecodeResult, RejectedReading } from './decode-result.js';

/**
 * A protobuf decoder for one kind that reads the wire format straight into `Reading`s, without
 * protobufjs message objects or Long values. It is built at startup from the protobufjs
 * reflection of the kind's messages and from its descriptor, so it stays as generic as they are.
 *
 * It must give exactly what protobufjs `Type.decode` followed by `accept()` in payload-decoder.ts
 * gives, rejection details included (test/unit/ingest/proto-fast-decode.test.ts compares both on
 * random and mangled input). So it only decodes what it can be sure of: on anything unusual (a
 * truncated or overlong varint, a group, an illegal tag, a 64-bit value beyond 2^53 that protobufjs
 * would print as a Long) `decode` returns `undefined` and the caller decodes the whole payload
 * with protobufjs, which then produces today's error or value. Mirrored protobufjs 8 behaviour
 * (src/decoder.js, src/reader.js): a known field with the wrong wire type is skipped like an
 * unknown one; the last occurrence of a scalar wins; an implicit-presence field whose last value
 * is the default is absent (`delete m.x`), an explicit-presence (`optional`) one is present.
 */
export interface FastProtoDecoder {
  /**
   * The outcome of the bytes of `payload` from `start` to its end, or `undefined` when they must
   * go through protobufjs instead.
   */
  decode(deviceId: string, payload: Buffer, start: number, minTs: number, maxTs: number): DecodeResult | undefined;
}

/** Shared by every result without rejections; frozen so that a stray push fails loudly. */
const NO_REJECTIONS = Object.freeze([]) as unknown as RejectedReading[];

/** Returned by the readers below instead of a position: hand the payload to protobufjs. */
const FAIL = -1;

/** Returned by a generated reading decoder for the same reason. */
const FALLBACK = Symbol('fall back to protobufjs');

/** Protobuf wire types (encoding spec, "Message Structure"). */
const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** The scalar types read here, by protobufjs type name, with their wire type. */
const WIRE_OF_TYPE: Readonly<Record<string, number>> = {
  uint64: WIRE_VARINT,
  int64: WIRE_VARINT,
  sint64: WIRE_VARINT,
  uint32: WIRE_VARINT,
  int32: WIRE_VARINT,
  sint32: WIRE_VARINT,
  bool: WIRE_VARINT,
  enum: WIRE_VARINT,
  float: WIRE_I32,
  double: WIRE_I64,
};

/** The last varint read: low and high 32 bits, and the OR of all its payload bits (for bool). */
interface VarintState {
  lo: number;
  hi: number;
  any: number;
}
const varint: VarintState = { lo: 0, hi: 0, any: 0 };

/** Reads a varint of at most 10 bytes before `end` into `varint`, like protobufjs `readLongVarint`. */
function readVarint(buf: Buffer, pos: number, end: number): number {
  if (pos >= end) return FAIL;
  let b = buf[pos++]!;
  let lo = b & 127;
  let any = lo;
  let hi = 0;
  if (b >= 128) {
    for (let shift = 7; shift < 28; shift += 7) {
      if (pos >= end) return FAIL;
      b = buf[pos++]!;
      lo |= (b & 127) << shift;
      any |= b & 127;
      if (b < 128) break;
    }
    if (b >= 128) {
      if (pos >= end) return FAIL;
      b = buf[pos++]!;
      lo |= (b & 127) << 28;
      hi = (b & 127) >> 4;
      any |= b & 127;
      // Bytes 6 to 10 fill the high word; of the 10th only the lowest bit fits (<< 31), as in protobufjs.
      for (let shift = 3; b >= 128; shift += 7) {
        if (shift > 31 || pos >= end) return FAIL;
        b = buf[pos++]!;
        hi |= (b & 127) << shift;
        any |= b & 127;
      }
    }
  }
  varint.lo = lo >>> 0;
  varint.hi = hi >>> 0;
  varint.any = any;
  return pos;
}

/**
 * Reads a varint of at most 5 bytes into `varint.lo`, like protobufjs' `Reader#tag` (a 5th byte
 * of at most 15: 4 more bits) and `Reader#size` (a 5th byte of at most 7).
 */
function readVarint32(buf: Buffer, pos: number, end: number, maxFifth: number): number {
  let value = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) return FAIL;
    const b = buf[pos++]!;
    value |= (b & 127) << shift;
    if (b < 128) {
      varint.lo = value >>> 0;
      return pos;
    }
  }
  if (pos >= end) return FAIL;
  const b = buf[pos++]!;
  if (b > maxFifth) return FAIL;
  varint.lo = (value | (b << 28)) >>> 0;
  return pos;
}

function readTag(buf: Buffer, pos: number, end: number): number {
  return readVarint32(buf, pos, end, 15);
}

function readSize(buf: Buffer, pos: number, end: number): number {
  return readVarint32(buf, pos, end, 7);
}

/**
 * Skips a field this decoder does not read, like protobufjs `Reader#skipType`. Groups (wire types
 * 3 and 4, unused by these schemas) and the invalid wire types 6 and 7 go to protobufjs.
 */
function skipField(buf: Buffer, pos: number, end: number, fieldId: number, wireType: number): number {
  if (fieldId === 0) return FAIL; // "illegal tag: field number 0"
  switch (wireType) {
    case WIRE_VARINT: // any length: Reader#skip() has no 10-byte limit
      do {
        if (pos >= end) return FAIL;
      } while (buf[pos++]! & 128);
      return pos;
    case WIRE_I64:
      return pos + 8 > end ? FAIL : pos + 8;
    case WIRE_LEN: {
      pos = readSize(buf, pos, end);
      if (pos === FAIL || pos + varint.lo > end) return FAIL;
      return pos + varint.lo;
    }
    case WIRE_I32:
      return pos + 4 > end ? FAIL : pos + 4;
    default:
      return FAIL;
  }
}

/** One field of the reading message, from the protobufjs reflection. */
interface WireField {
  readonly name: string;
  readonly id: number;
  /** A key of WIRE_OF_TYPE. */
  readonly type: string;
  /** `optional` in proto3: present whenever on the wire. */
  readonly presence: boolean;
  /** For an implicit-presence enum, the value that unsets it again (protobufjs `typeDefault`). */
  readonly enumDefault: number;
  /** What a protobufjs message shows while the field is not an own property (its prototype's). */
  readonly absent: number | boolean | null | undefined;
}

/** One descriptor field, checked as `accept()` checks it. */
interface FieldCheck {
  readonly name: string;
  /** Index into the WireField array. */
  readonly field: number;
  readonly required: boolean;
  readonly isEnum: boolean;
  readonly isInt: boolean;
  readonly min: number;
  readonly max: number;
  readonly enumValues: readonly string[];
  /** protobuf number -> label, the very array `accept()` looks labels up in. */
  readonly enumById: readonly string[] | undefined;
  /** `${name} must be ..., got ` */
  readonly detailPrefix: string;
}

/** Returned by a generated reading decoder for a rejected reading; why is in `rejection.last`. */
const REJECTED = Symbol('rejected');

/** The last rejection of a generated reading decoder (read right after it returned REJECTED). */
const rejection: { last: RejectedReading } = { last: { reason: 'invalid', detail: '' } };

function reject(r: RejectedReading): typeof REJECTED {
  rejection.last = r;
  return REJECTED;
}

/**
 * Decodes the reading in [pos, end) of `buf` and checks it: returns it, or REJECTED, or FALLBACK.
 * Returned rather than pushed onto an array: a single reading's array is then a literal of one
 * element, not an empty array grown by push (a backing store of 17 slots, ~150 bytes a publish).
 */
type ReadingDecoder = (buf: Buffer, pos: number, end: number, deviceId: string, minTs: number, maxTs: number) => Reading | typeof REJECTED | typeof FALLBACK;

const MAX_SAFE = String(Number.MAX_SAFE_INTEGER);

/** Source that reads a varint at `pos` into `lo` (and `hi`, `any` when asked). */
function readVarintSource(hi: boolean, any: boolean): string {
  return `if (pos < end && (b = buf[pos]) < 128) { pos++; lo = b;${hi ? ' hi = 0;' : ''}${any ? ' any = b;' : ''} }
      else { pos = readVarint(buf, pos, end); if (pos < 0) return FALLBACK; lo = st.lo;${hi ? ' hi = st.hi;' : ''}${any ? ' any = st.any;' : ''} }`;
}

/**
 * Source that reads one field at `pos` into `v`, like the protobufjs Reader method of its type.
 * Beyond 2^53, protobufjs would give a Long that `accept()` prints in full: FALLBACK, unless the
 * value is never used (`unused`).
 */
function readFieldSource(type: string, unused: boolean): string {
  const unsafe = (test: string): string => (unused ? '' : `\n      if (${test}) return FALLBACK;`);
  switch (type) {
    case 'uint64': // Long#toNumber, unsigned
      return `${readVarintSource(true, false)}
      v = hi * 4294967296 + lo;${unsafe(`v > ${MAX_SAFE}`)}`;
    case 'int64': // Long#toNumber, signed
      return `${readVarintSource(true, false)}
      v = (hi | 0) * 4294967296 + lo;${unsafe(`v > ${MAX_SAFE} || v < -${MAX_SAFE}`)}`;
    case 'sint64': // LongBits#zzDecode, then as int64
      return `${readVarintSource(true, false)}
      b = -(lo & 1); v = ((hi >>> 1) ^ b) * 4294967296 + ((((lo >>> 1) | (hi << 31)) ^ b) >>> 0);${unsafe(`v > ${MAX_SAFE} || v < -${MAX_SAFE}`)}`;
    case 'uint32':
      return `${readVarintSource(false, false)}\n      v = lo;`;
    case 'int32':
    case 'enum':
      return `${readVarintSource(false, false)}\n      v = lo | 0;`;
    case 'sint32':
      return `${readVarintSource(false, false)}\n      v = (lo >>> 1) ^ -(lo & 1);`;
    case 'bool': // any payload bit of up to 10 bytes, those past the 64th included
      return `${readVarintSource(false, true)}\n      v = any !== 0 ? 1 : 0;`;
    case 'float':
      return 'if (pos + 4 > end) return FALLBACK; v = buf.readFloatLE(pos); pos += 4;';
    default: // double
      return 'if (pos + 8 > end) return FALLBACK; v = buf.readDoubleLE(pos); pos += 8;';
  }
}

/** Source that tells whether an implicit-presence field with value `v` stays set (protobufjs decoder.js). */
function keepsImplicitSource(f: WireField): string {
  if (f.type === 'float' || f.type === 'double') return 'v !== 0 || 1 / v < 0'; // !Object.is(v, 0)
  if (f.type === 'enum') return `v !== ${f.enumDefault}`;
  return 'v !== 0';
}

/**
 * Generates the reading decoder of one kind: a switch over the tags of its fields that keeps each
 * field in a local, then the checks of `accept()` with the descriptor's constants, then the
 * `values` object with constant property names. Generated rather than table-driven because the
 * same loop over the field tables of several kinds was about half as fast, mostly for the
 * megamorphic `values[name] = v` stores; protobufjs builds its decoders the same way
 * (util.codegen). Only integers, identifiers made here and field names as JSON string literals
 * enter the source: ranges, labels and messages are passed in as constants.
 */
function compileReadingDecoder(kindName: string, fields: readonly WireField[], checks: readonly FieldCheck[], seq: number, ts: number): ReadingDecoder {
  const constants: unknown[] = [];
  const constant = (value: unknown): string => {
    constants.push(value);
    return `k${constants.length - 1}`;
  };
  const used = new Set<number>([seq, ts, ...checks.map((c) => c.field)]);
  /** What `msg[name]` would be in the protobufjs message; `own` when it is known to be set. */
  const raw = (i: number, own = false): string => {
    const value = fields[i]!.type === 'bool' ? `f${i} !== 0` : `f${i}`;
    return own ? value : `(o${i} ? ${value} : ${constant(fields[i]!.absent)})`;
  };

  let src = '';
  src += `  let b = 0, lo = 0, hi = 0, any = 0, v = 0, raw, n = 0, label;\n`;
  src += `  ${fields.map((_, i) => `let f${i} = 0, o${i} = false;`).join(' ')}\n`;
  src += `  while (pos < end) {
    let tag = buf[pos];
    if (tag < 128) pos++;
    else { pos = readTag(buf, pos, end); if (pos < 0) return FALLBACK; tag = st.lo; }
    switch (tag) {\n`;
  fields.forEach((f, i) => {
    // A field no check reads needs only to be well-formed: its value never shows.
    const store = used.has(i) ? `\n      f${i} = v; o${i} = ${f.presence ? 'true' : keepsImplicitSource(f)};` : '';
    src += `    case ${f.id * 8 + WIRE_OF_TYPE[f.type]!}: { // field ${f.id}, ${f.type}
      ${readFieldSource(f.type, !used.has(i))}${store}
      continue;
    }\n`;
  });
  src += `    }
    pos = skipField(buf, pos, end, tag >>> 3, tag & 7);
    if (pos < 0) return FALLBACK;
  }\n`;

  // accept(): seq, ts, the time range, then the descriptor's fields in order.
  src += `  raw = ${raw(seq)};
  const seq = typeof raw === 'number' ? raw : NaN;
  if (!Number.isSafeInteger(seq) || seq < 1) return reject({ reason: 'invalid', detail: 'seq must be an integer >= 1, got ' + String(raw) });
  raw = ${raw(ts)};
  const ts = typeof raw === 'number' ? raw : NaN;
  if (!Number.isSafeInteger(ts)) return reject({ reason: 'invalid', detail: 'ts must be an integer (ms since epoch), got ' + String(raw) });
  if (ts < minTs || ts > maxTs) return reject({ reason: 'timestamp_out_of_range', detail: 'ts ' + ts + ' outside [' + minTs + ', ' + maxTs + ']' });\n`;
  checks.forEach((c, j) => {
    const i = c.field;
    const rejectIt = `return reject({ reason: 'invalid', detail: ${constant(c.detailPrefix)} + String(raw) });`;
    // proto3 scalars have no presence: only `optional` fields are absent when unset.
    src += `  let c${j};\n  ${c.required ? '{' : `if (o${i}) {`}\n    raw = ${raw(i, !c.required)};\n`;
    if (c.isEnum) {
      const byId = c.enumById === undefined ? 'undefined' : `${constant(c.enumById)}[raw]`;
      src += `    label = typeof raw === 'number' ? ${byId} : raw;
    if (typeof label !== 'string' || !${constant(c.enumValues)}.includes(label)) ${rejectIt}
    c${j} = label;\n`;
    } else {
      src += `    n = typeof raw === 'number' ? raw : NaN;
    if (!Number.isFinite(n)${c.isInt ? ' || !Number.isInteger(n)' : ''} || n < ${constant(c.min)} || n > ${constant(c.max)}) ${rejectIt}
    c${j} = n;\n`;
    }
    src += '  }\n';
  });
  // The leading required fields go into an object literal, which gets its final shape at once
  // (a keyed store per field through a constant cost some 3 % of the decode); the rest are added
  // in descriptor order, so the properties keep accept()'s order.
  let literal = 0;
  while (literal < checks.length && checks[literal]!.required) literal++;
  src += `  const values = { ${checks
    .slice(0, literal)
    .map((c, j) => `${JSON.stringify(c.name)}: c${j}`)
    .join(', ')} };\n`;
  checks.forEach((c, j) => {
    if (j >= literal) src += `  ${c.required ? '' : `if (o${c.field}) `}values[${constant(c.name)}] = c${j};\n`;
  });
  src += `  return { kind: ${constant(kindName)}, deviceId, seq, ts, values };\n`;

  const factory = `"use strict";
const ${constants.map((_, i) => `k${i} = K[${i}]`).join(', ') || '_ = 0'};
return function decodeReading(buf, pos, end, deviceId, minTs, maxTs) {
${src}};`;
  return new Function('K', 'st', 'readVarint', 'readTag', 'skipField', 'FALLBACK', 'reject', factory)(
    constants,
    varint,
    readVarint,
    readTag,
    skipField,
    FALLBACK,
    reject,
  ) as ReadingDecoder;
}

function enumIsOpen(e: protobuf.Enum): boolean {
  return (e as unknown as { _features?: { enum_type?: string } })._features?.enum_type === 'OPEN';
}

/**
 * A field's default as `accept()` sees it: protobufjs gives Longs for 64-bit fields, which it reads
 * through `toNumber` and `String`. `null` from this function means a default it cannot mirror.
 */
function plainDefault(v: unknown): { readonly value: WireField['absent'] } | null {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return { value: v };
  if (typeof v === 'object' && 'toNumber' in v) {
    const n = (v as { toNumber(): number }).toNumber();
    if (Number.isSafeInteger(n) && String(v) === String(n)) return { value: n };
  }
  return null;
}

/** The reading message's fields, or `null` if one is not a scalar the fast path reads. */
function wireFields(readingType: protobuf.Type): WireField[] | null {
  const empty = readingType.decode(Buffer.alloc(0)) as unknown as Record<string, unknown>;
  const out: WireField[] = [];
  for (const f of readingType.fieldsArray) {
    f.resolve();
    if (f.repeated || f.map || f.required || f.declaringField !== null || f.extensionField !== null) return null;
    if (f.partOf !== null && f.partOf.oneof.length !== 1) return null; // only proto3 `optional` (synthetic oneofs)
    let type = f.type;
    let enumDefault = 0;
    if (f.resolvedType instanceof protobuf.Enum) {
      if (!enumIsOpen(f.resolvedType) || !Number.isInteger(f.typeDefault)) return null;
      type = 'enum';
      enumDefault = f.typeDefault as number;
    } else if (f.resolvedType !== null || !Object.hasOwn(WIRE_OF_TYPE, type) || type === 'enum') {
      return null;
    }
    const absent = plainDefault(empty[f.name]);
    if (absent === null) return null;
    out.push({ name: f.name, id: f.id, type, presence: Boolean(f.hasPresence), enumDefault, absent: absent.value });
  }
  return out;
}

/**
 * Builds the fast decoder of one kind, or returns `null` when its messages use something the fast
 * path does not read (strings, nested messages, repeated scalars, closed enums, real oneofs, proto2
 * required fields, descriptor fields missing from the message): that kind then keeps protobufjs.
 */
export function createFastProtoDecoder(
  kind: KindDescriptor,
  readingType: protobuf.Type,
  batchType: protobuf.Type,
  enumNames: ReadonlyMap<string, readonly string[]>,
): FastProtoDecoder | null {
  // The batch: one repeated, length-delimited field of readings and nothing else.
  if (kind.proto === undefined) return null;
  const batchField = batchType.fields[kind.proto.batchField]?.resolve();
  if (batchType.fieldsArray.length !== 1 || batchField === undefined) return null;
  if (!batchField.repeated || batchField.map || batchField.delimited || batchField.resolvedType !== readingType) return null;
  const batchFieldId = batchField.id;

  const fields = wireFields(readingType);
  if (fields === null) return null;
  const indexOf = (name: string): number => fields.findIndex((f) => f.name === name);
  const seq = indexOf('seq');
  const ts = indexOf('ts');
  if (seq < 0 || ts < 0) return null;
  const checks: FieldCheck[] = [];
  for (const [name, spec] of Object.entries(kind.fields)) {
    const field = indexOf(name);
    if (field < 0 || spec.type === 'bool' || spec.type === 'string') return null;
    checks.push(
      spec.type === 'enum'
        ? {
            name,
            field,
            required: spec.required,
            isEnum: true,
            isInt: false,
            min: 0,
            max: 0,
            enumValues: spec.values,
            enumById: enumNames.get(name),
            detailPrefix: `${name} must be one of ${spec.values.join('|')}, got `,
          }
        : {
            name,
            field,
            required: spec.required,
            isEnum: false,
            isInt: spec.type === 'int',
            min: spec.min,
            max: spec.max,
            enumValues: [],
            enumById: undefined,
            detailPrefix: `${name} must be ${spec.type === 'int' ? 'an integer' : 'a number'} in [${spec.min}, ${spec.max}], got `,
          },
    );
  }
  const decodeReading = compileReadingDecoder(kind.name, fields, checks, seq, ts);

  function decode(deviceId: string, payload: Buffer, start: number, minTs: number, maxTs: number): DecodeResult | undefined {
    const end = payload.length;
    // The batch/single framing rule of payload-decoder.ts (BATCH_TAG).
    if (end === start || payload[start] !== 0x0a) {
      const r = decodeReading(payload, start, end, deviceId, minTs, maxTs);
      if (r === FALLBACK) return undefined;
      if (r === REJECTED) return { readings: [], rejected: [rejection.last] };
      return { readings: [r], rejected: NO_REJECTIONS };
    }
    // Readings are checked as they are decoded; if a later one fails to decode, all of this is
    // dropped and protobufjs, which decodes the whole batch first, reports the error alone.
    const readings: Reading[] = [];
    let rejected: RejectedReading[] | undefined;
    let count = 0;
    let pos = start;
    while (pos < end) {
      let tag = payload[pos]!;
      if (tag < 128) pos++;
      else {
        pos = readTag(payload, pos, end);
        if (pos === FAIL) return undefined;
        tag = varint.lo;
      }
      const id = tag >>> 3;
      const wt = tag & 7;
      if (id !== batchFieldId || wt !== WIRE_LEN) {
        pos = skipField(payload, pos, end, id, wt);
        if (pos === FAIL) return undefined;
        continue;
      }
      pos = readSize(payload, pos, end);
      if (pos === FAIL) return undefined;
      const readingEnd = pos + varint.lo;
      if (readingEnd > end) return undefined;
      const r = decodeReading(payload, pos, readingEnd, deviceId, minTs, maxTs);
      if (r === FALLBACK) return undefined;
      if (r === REJECTED) (rejected ??= []).push(rejection.last);
      else readings.push(r);
      pos = readingEnd;
      count++;
    }
    if (count === 0) return { readings, rejected: [{ reason: 'invalid', detail: 'empty batch' }] };
    return { readings, rejected: rejected ?? NO_REJECTIONS };
  }

  return { decode };
}
