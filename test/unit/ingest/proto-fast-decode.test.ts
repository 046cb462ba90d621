import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { createPayloadDecoder, PROTO_FILE, type DecodeResult, type PayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { createFastProtoDecoder, type FastProtoDecoder } from '../../../gateway/ingest/proto-fast-decode.js';
import { bridgeKind } from '../../../gateway/kinds/bridge.js';
import { heartRateKind } from '../../../gateway/kinds/heart-rate.js';
import type { KindDescriptor } from '../../../gateway/kinds/kind-descriptor.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { mulberry32 } from '../../helpers/random.js';

// The fast decoder must give exactly what protobufjs + accept() give: same readings, same
// rejections with the same details, in the same order. The reference is the same gateway decoder
// with `fast: false`; inputs are seeded random payloads, valid and not, and mangled bytes.

const config = loadConfig({ env: {} }).ingest;

/** A proto file with its kinds, decoded both ways. */
interface Schema {
  readonly root: protobuf.Root;
  readonly fast: PayloadDecoder;
  readonly ref: PayloadDecoder;
}
function schema(protoFile: string, kinds: readonly KindDescriptor[]): Schema {
  const registry = createKindRegistry(kinds);
  return {
    root: protobuf.loadSync(protoFile),
    fast: createPayloadDecoder(registry, config, protoFile),
    ref: createPayloadDecoder(registry, config, protoFile, { fast: false }),
  };
}
const builtin = schema(PROTO_FILE, [heartRateKind, bridgeKind]);

// Every scalar type the fast path reads, both presences, an enum whose default is not 0 and that
// has negative and aliased values, and descriptor specs that do not fit the proto types.
const protoDir = mkdtempSync(join(tmpdir(), 'pulsegate-fast-decode-'));
afterAll(() => rmSync(protoDir, { recursive: true, force: true }));
const GAUGE_PROTO = join(protoDir, 'gauge.proto');
writeFileSync(
  GAUGE_PROTO,
  `syntax = "proto3";
package test.v1;
enum Mode { option allow_alias = true; IDLE = 1; RUN = 2; HALT = -3; STOP = 0; ALSO_RUN = 2; }
message Gauge {
  int64 seq = 1;
  sint64 ts = 2;
  int32 temp = 3;
  sint32 delta = 4;
  double level = 5;
  Mode mode = 6;
  uint64 big = 7;
  float ratio = 8;
  uint32 count = 9;
  optional int32 opt_int = 10;
  optional double opt_double = 11;
  optional Mode opt_mode = 12;
  optional sint64 opt_long = 13;
  optional bool opt_flag = 14;
  bool flag = 15;
  optional uint64 unused = 16;
  float whole = 17;
}
message GaugeBatch { repeated Gauge items = 1; }
`,
);
const gaugeKind: KindDescriptor = {
  name: 'gauge',
  proto: { reading: 'test.v1.Gauge', batch: 'test.v1.GaugeBatch', batchField: 'items' },
  measurement: 'gauge',
  fields: {
    flag: { type: 'int', min: 0, max: 1, required: false },
    optFlag: { type: 'int', min: 0, max: 1, required: false, protoName: 'opt_flag' },
    temp: { type: 'int', min: -50, max: 150, required: true },
    delta: { type: 'int', min: -1000, max: 1000, required: false },
    level: { type: 'float', min: 0, max: 1e6, required: true },
    mode: { type: 'enum', values: ['IDLE', 'RUN', 'HALT'], required: true },
    big: { type: 'int', min: 0, max: 2 ** 60, required: true },
    ratio: { type: 'float', min: -1, max: 1, required: false },
    count: { type: 'float', min: 0, max: 1e9, required: true },
    optInt: { type: 'int', min: -5, max: 5, required: false, protoName: 'opt_int' },
    optDouble: { type: 'float', min: -1e3, max: 1e3, required: true, protoName: 'opt_double' },
    optMode: { type: 'enum', values: ['IDLE', 'RUN', 'ALSO_RUN', 'STOP'], required: false, protoName: 'opt_mode' },
    optLong: { type: 'int', min: -1e12, max: 1e12, required: false, protoName: 'opt_long' },
    whole: { type: 'int', min: -100, max: 100, required: true },
  },
  tags: [],
  window: { groupBy: [], aggregates: [{ ops: ['count'] }] },
};
const gauge = schema(GAUGE_PROTO, [gaugeKind]);

const NOW = 1_763_800_000_000;
const MIN_TS = NOW - config.maxPastAgeMs;
const MAX_TS = NOW + config.maxFutureSkewMs;


/** Builds protobuf bytes by hand, so that odd but legal encodings can be produced too. */
class WireWriter {
  readonly bytes: number[] = [];
  /** Set when the payload holds something the fast path is meant to hand to protobufjs. */
  handsOver = false;

  /** `v` modulo 2^64, `pad` extra (non-minimal) bytes. */
  varint(v: bigint, pad = 0): this {
    let u = BigInt.asUintN(64, v);
    const out: number[] = [];
    do {
      out.push(Number(u & 0x7fn));
      u >>= 7n;
    } while (u > 0n);
    for (let i = 0; i < pad; i++) out.push(0);
    for (let i = 0; i < out.length - 1; i++) out[i]! |= 0x80;
    this.bytes.push(...out);
    return this;
  }
  tag(id: number, wireType: number, pad = 0): this {
    return this.varint(BigInt(id * 8 + wireType), pad);
  }
  float(v: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.bytes.push(...b);
    return this;
  }
  double(v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.bytes.push(...b);
    return this;
  }
  raw(bytes: Iterable<number>): this {
    this.bytes.push(...bytes);
    return this;
  }
  finish(): Buffer {
    return Buffer.from(this.bytes);
  }
}

const WIRE: Record<string, number> = { float: 5, double: 1, fixed32: 5, sfixed32: 5, fixed64: 1, sfixed64: 1 };
const wireOf = (f: protobuf.Field): number => WIRE[f.type] ?? 0;

interface Gen {
  readonly r: () => number;
  int(lo: number, hi: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
}
function gen(seed: number): Gen {
  const r = mulberry32(seed);
  return {
    r,
    int: (lo, hi) => lo + Math.floor(r() * (hi - lo + 1)),
    chance: (p) => r() < p,
    pick: (xs) => xs[Math.floor(r() * xs.length)]!,
  };
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const random64 = (g: Gen): bigint => (BigInt(g.int(0, 0xffffffff)) << 32n) | BigInt(g.int(0, 0xffffffff));
const BIG_64 = [0n, 1n, -1n, 2n ** 31n, 2n ** 32n + 5n, SAFE, SAFE + 1n, SAFE + 2n, -SAFE, -SAFE - 1n, 2n ** 63n, -(2n ** 63n), 2n ** 64n - 1n];

/** A value for one field of a reading, as a 64-bit pattern (varints) or a number (floats). */
function valueFor(g: Gen, kind: KindDescriptor, f: protobuf.Field): bigint | number {
  const spec = kind.fields[f.name];
  if (f.type === 'float' || f.type === 'double') {
    const lo = spec !== undefined && (spec.type === 'int' || spec.type === 'float') ? spec.min : -1e6;
    const hi = spec !== undefined && (spec.type === 'int' || spec.type === 'float') ? spec.max : 1e6;
    if (g.chance(0.85)) return lo + g.r() * (hi - lo);
    const odd = [0, -0, Number.NaN, Infinity, -Infinity, lo, hi, hi + 1, lo - 1, -1, 3.4e38, 1e-45, 2 ** 40];
    if (g.chance(0.15)) return new Float32Array(new Uint32Array([g.int(0, 0xffffffff)]).buffer)[0]!;
    return g.pick(odd);
  }
  if (f.name === 'seq') return g.chance(0.95) ? BigInt(g.int(1, 1e6)) : g.chance(0.5) ? g.pick(BIG_64) : random64(g);
  if (f.name === 'ts') {
    if (g.chance(0.95)) return BigInt(g.int(MIN_TS - 10_000, MAX_TS + 10_000));
    return g.chance(0.5) ? g.pick([...BIG_64, BigInt(MIN_TS), BigInt(MAX_TS), BigInt(MIN_TS - 1), BigInt(MAX_TS + 1), BigInt(-NOW)]) : random64(g);
  }
  if (f.resolvedType instanceof protobuf.Enum) {
    return g.chance(0.8) ? BigInt(g.pick(Object.values(f.resolvedType.values))) : g.pick([-1n, -3n, 6n, 100n, 2n ** 31n - 1n, 2n ** 32n + 2n]);
  }
  if (f.type === 'bool') return g.chance(0.8) ? BigInt(g.int(0, 1)) : g.chance(0.5) ? g.pick([2n ** 32n, 2n ** 63n, 2n]) : random64(g) >> BigInt(g.int(0, 63));
  const range = spec !== undefined && (spec.type === 'int' || spec.type === 'float') ? spec : { min: 0, max: 0 };
  if (spec !== undefined && g.chance(0.85)) return BigInt(g.int(Math.max(range.min, -(2 ** 50)), Math.min(range.max, 2 ** 50)));
  return g.chance(0.5) ? BigInt(g.pick([0, 1, range.min, range.max + 1, 0xffffffff, 0x80000000])) : random64(g) >> BigInt(g.int(0, 63));
}

/**
 * Appends a field of a random wire type and content: an unknown field, or a known one with
 * (mostly) the wrong wire type, `knownWire` being its right one.
 */
function junkField(g: Gen, w: WireWriter, id: number, knownWire = -1): void {
  const wt = g.chance(0.1) ? g.pick([3, 4, 6, 7]) : g.pick([0, 0, 1, 2, 2, 5]);
  // Groups and invalid wire types go to protobufjs; so may a known field's random value.
  if (wt === 3 || wt === 4 || wt === 6 || wt === 7 || wt === knownWire) w.handsOver = true;
  w.tag(id, wt);
  if (wt === 0) w.varint(random64(g) >> BigInt(g.int(0, 63)), g.chance(0.1) ? g.int(1, 12) : 0);
  else if (wt === 1) w.double(g.r());
  else if (wt === 5) w.float(g.r());
  else if (wt === 2) {
    const n = g.int(0, 12);
    w.varint(BigInt(n));
    for (let i = 0; i < n; i++) w.raw([g.int(0, 255)]);
  } else if (wt === 3) {
    w.tag(g.int(1, 20), 0).varint(5n).tag(id, 4);
  }
}

const maxId = (type: protobuf.Type): number => Math.max(...type.fieldsArray.map((f) => f.id));

/** The wire pattern of `v` for sint32/sint64, which zig-zag encode. */
function zigzag(type: string, v: bigint): bigint {
  if (type === 'sint64') return BigInt.asUintN(64, (v << 1n) ^ (BigInt.asIntN(64, v) >> 63n));
  if (type === 'sint32') {
    const n = BigInt.asIntN(32, v);
    return BigInt.asUintN(32, (n << 1n) ^ (n >> 31n));
  }
  return v;
}

/** One reading of `kind` in hand-made wire format: fields shuffled, repeated, skipped or extra. */
function readingBytes(g: Gen, kind: KindDescriptor, type: protobuf.Type, w = new WireWriter()): WireWriter {
  const entries = type.fieldsArray.filter((f) => g.chance(f.hasPresence ? 0.5 : 0.93));
  if (g.chance(0.1)) entries.push(g.pick(type.fieldsArray)); // a repeated scalar: the last one wins
  if (g.chance(0.1)) entries.sort(() => g.r() - 0.5);
  for (const f of entries) {
    if (g.chance(0.06)) junkField(g, w, g.pick([maxId(type) + 1, maxId(type) + 7, 2047, 2 ** 29 - 1]));
    if (g.chance(0.03)) {
      junkField(g, w, f.id, wireOf(f)); // wrong wire type for a known field: skipped as unknown
      continue;
    }
    const v = valueFor(g, kind, f);
    const tagPad = g.chance(0.03) ? g.int(1, 5) : 0;
    const tagStart = w.bytes.length;
    w.tag(f.id, wireOf(f), tagPad);
    if (w.bytes.length - tagStart > 5) w.handsOver = true; // "invalid tag encoding"
    if (typeof v === 'number') {
      if (f.type === 'float') w.float(v);
      else w.double(v);
    } else {
      const pad = g.chance(0.03) ? g.int(1, 10) : 0;
      const before = w.bytes.length;
      w.varint(zigzag(f.type, v), pad);
      const size = w.bytes.length - before;
      if (size > 10) w.handsOver = true;
      // Bits past the 64th, in a 10th byte: dropped by protobufjs, except that bool() sees them.
      else if (size === 10 && g.chance(0.5)) w.bytes[w.bytes.length - 1]! |= g.int(1, 63) << 1;
      const n = f.type === 'uint64' ? BigInt.asUintN(64, v) : BigInt.asIntN(64, v);
      if (f.type.endsWith('64') && (n > SAFE || n < -SAFE)) w.handsOver = true; // protobufjs prints the Long
    }
  }
  if (g.chance(0.05)) junkField(g, w, g.int(maxId(type) + 1, maxId(type) + 30));
  return w;
}

function batchBytes(g: Gen, kind: KindDescriptor, type: protobuf.Type): WireWriter {
  const w = new WireWriter();
  const n = g.chance(0.05) ? 0 : g.int(1, 20);
  let first = true;
  for (let i = 0; i < n; i++) {
    if (!first && g.chance(0.03)) junkField(g, w, g.int(2, 9));
    const inner = readingBytes(g, kind, type);
    if (inner.handsOver) w.handsOver = true;
    w.tag(1, 2).varint(BigInt(inner.bytes.length), g.chance(0.02) ? 1 : 0).raw(inner.bytes);
    first = false;
  }
  if (n === 0) w.tag(1, 2).varint(0n); // a batch of one empty reading
  return w;
}

/** Valid-ish objects encoded by protobufjs itself, 64-bit values given as strings. */
function protobufjsBytes(g: Gen, kind: KindDescriptor, type: protobuf.Type): Buffer {
  const obj: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    if (f.hasPresence && g.chance(0.5)) continue;
    const v = valueFor(g, kind, f);
    if (typeof v === 'number') obj[f.name] = v;
    else if (f.type === 'bool') obj[f.name] = v !== 0n;
    else if (f.type.endsWith('64')) obj[f.name] = (f.type === 'uint64' ? BigInt.asUintN(64, v) : BigInt.asIntN(64, v)).toString();
    else obj[f.name] = Number(f.type === 'uint32' ? BigInt.asUintN(32, v) : BigInt.asIntN(32, v));
  }
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

function mangle(g: Gen, b: Buffer): Buffer {
  const bytes = [...b];
  switch (g.int(0, 4)) {
    case 0:
      return b.subarray(0, g.int(0, Math.max(0, b.length - 1)));
    case 1:
      if (bytes.length > 0) bytes[g.int(0, bytes.length - 1)] = g.int(0, 255);
      break;
    case 2:
      bytes.splice(g.int(0, bytes.length), 0, ...Array.from({ length: g.int(1, 4) }, () => g.int(0, 255)));
      break;
    case 3:
      bytes.splice(g.int(0, bytes.length), g.int(1, 3));
      break;
    default:
      bytes.push(...Array.from({ length: g.int(1, 8) }, () => g.pick([0x80, 0xff, 0x0a, 0x08, 0x00, g.int(0, 255)])));
  }
  return Buffer.from(bytes);
}

/** Key order, -0 and NaN included: what a caller iterating the result would see. */
function canonical(r: DecodeResult): string {
  return JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0)) ? `<${Object.is(v, -0) ? '-0' : String(v)}>` : v));
}

function fastDecoderOf(kind: KindDescriptor, root = builtin.root): FastProtoDecoder {
  const readingType = root.lookupType(kind.proto!.reading);
  const enumNames = new Map<string, string[]>();
  for (const [name, spec] of Object.entries(kind.fields)) {
    if (spec.type !== 'enum') continue;
    const byId: string[] = [];
    for (const [label, id] of Object.entries((readingType.fields[name]!.resolve().resolvedType as protobuf.Enum).values)) byId[id] = label;
    enumNames.set(name, byId);
  }
  const fast = createFastProtoDecoder(kind, readingType, root.lookupType(kind.proto!.batch), enumNames);
  if (fast === null) throw new Error(`no fast decoder for ${kind.name}`);
  return fast;
}

interface Tally {
  cases: number;
  /** Inputs the fast path is meant to decode alone. */
  clean: number;
  handledFast: number;
  /** Inputs meant for the fast path that it still handed to protobufjs. */
  cleanHandedOver: string[];
  mismatches: string[];
  outcomes: Map<string, number>;
}

function check(t: Tally, s: Schema, kind: KindDescriptor, fast: FastProtoDecoder, payload: Buffer, clean: boolean): void {
  t.cases++;
  if (clean) t.clean++;
  const got = s.fast.decode(kind, 'd1', payload, NOW);
  const want = s.ref.decode(kind, 'd1', payload, NOW);
  if (canonical(got) !== canonical(want) && t.mismatches.length < 5) {
    t.mismatches.push(`${kind.name} ${payload.toString('hex')}\n  fast: ${canonical(got)}\n  ref:  ${canonical(want)}`);
  }
  // Decoded in place, behind bytes that are not the publish's (as replay does in an ingest record):
  // the same outcome, by the fast path and by its fallback.
  const prefix = Buffer.from([0x0a, 0x7b, 0x20, 0x5b, 0x08, 0xff, 0x00].slice(0, 1 + (t.cases % 7)));
  const framed = Buffer.concat([prefix, payload]);
  for (const [name, d] of [['fast', s.fast], ['ref', s.ref]] as const) {
    const inPlace = d.decode(kind, 'd1', framed, NOW, prefix.length);
    if (canonical(inPlace) !== canonical(want) && t.mismatches.length < 5) {
      t.mismatches.push(`${kind.name} ${payload.toString('hex')} in place after ${prefix.length} bytes (${name})\n  got: ${canonical(inPlace)}\n  ref: ${canonical(want)}`);
    }
  }
  const direct = fast.decode('d1', payload, 0, MIN_TS, MAX_TS);
  if (direct !== undefined) t.handledFast++;
  else if (clean && t.cleanHandedOver.length < 5) t.cleanHandedOver.push(`${kind.name} ${payload.toString('hex')}`);
  for (const r of want.rejected) {
    const key = `${r.reason}:${r.detail.replace(/-?\d[\d.e+-]*|NaN|-?Infinity|null/g, '#')}`;
    t.outcomes.set(key, (t.outcomes.get(key) ?? 0) + 1);
  }
  if (want.readings.length > 0) t.outcomes.set('accepted', (t.outcomes.get('accepted') ?? 0) + want.readings.length);
}

describe('fast protobuf decoder', () => {
  for (const [s, kind] of [[builtin, heartRateKind], [builtin, bridgeKind], [gauge, gaugeKind]] as const) {
    it(`fast protobuf decoder should give exactly the protobufjs results on random ${kind.name} payloads`, () => {
      const type = s.root.lookupType(kind.proto!.reading);
      const batchType = s.root.lookupType(kind.proto!.batch);
      const fast = fastDecoderOf(kind, s.root);
      const t: Tally = { cases: 0, clean: 0, handledFast: 0, cleanHandedOver: [], mismatches: [], outcomes: new Map() };
      for (let seed = 1; seed <= 6000; seed++) {
        const g = gen(seed * 7919 + kind.name.length);
        const style = seed % 6;
        let w: WireWriter | undefined;
        let payload: Buffer;
        if (style === 0) payload = protobufjsBytes(g, kind, type);
        else if (style === 1) {
          const items = Array.from({ length: g.int(1, 12) }, () => type.decode(protobufjsBytes(g, kind, type)));
          payload = Buffer.from(batchType.encode(batchType.create({ [kind.proto!.batchField]: items })).finish());
        } else if (style === 2 || style === 3) payload = (w = readingBytes(g, kind, type)).finish();
        else payload = (w = batchBytes(g, kind, type)).finish();
        // A single reading that starts with field 1 as wire type 2 is framed as a batch (see
        // pulsegate.proto), and then what decodes does so by accident.
        const clean = w !== undefined && !w.handsOver && !(style < 4 && payload[0] === 0x0a);
        check(t, s, kind, fast, payload, clean);
        // The same input mangled: truncated, a byte changed, bytes inserted, removed or appended.
        check(t, s, kind, fast, mangle(g, payload), false);
        if (seed % 10 === 0) check(t, s, kind, fast, Buffer.from(Array.from({ length: g.int(0, 40) }, () => g.int(0, 255))), false);
      }
      expect(t.mismatches).toEqual([]);
      expect(t.cleanHandedOver).toEqual([]);
      // The corpus must exercise both paths and every kind of outcome, or the comparison says little.
      // About half the corpus is mangled, so mostly protobufjs's; the rest mostly the fast path's.
      expect(t.clean).toBeGreaterThan(1000);
      expect(t.handledFast / t.cases).toBeGreaterThan(0.2);
      expect(t.handledFast).toBeLessThan(t.cases);
      const reasons = [...t.outcomes.keys()].join('\n');
      for (const expected of ['accepted', 'decode_error:', 'invalid:seq', 'invalid:ts', 'timestamp_out_of_range:']) {
        expect(reasons).toContain(expected);
      }
      for (const name of Object.keys(kind.fields)) expect(reasons).toContain(`invalid:${name} must be`);
    });
  }

  it('fast protobuf decoder should decode readings and batches without handing them to protobufjs', () => {
    const fast = fastDecoderOf(bridgeKind);
    const VD = builtin.root.lookupType('pulsegate.v1.VehicleDetection');
    const VB = builtin.root.lookupType('pulsegate.v1.VehicleBatch');
    const one = Buffer.from(VD.encode(VD.create({ seq: 9, ts: NOW, lane: 2, vehicleClass: 3, speedKmh: 80, axles: 5, weightKg: 0 })).finish());
    expect(fast.decode('b1', one, 0, MIN_TS, MAX_TS)).toEqual({
      readings: [{ kind: 'bridge', deviceId: 'b1', seq: 9, ts: NOW, values: { lane: 2, vehicleClass: 'TRUCK', speedKmh: 80, axles: 5, weightKg: 0 } }],
      rejected: [],
    });
    const batch = Buffer.from(VB.encode(VB.create({ detections: [1, 2, 3].map((seq) => ({ seq, ts: NOW, lane: 1, vehicleClass: 1, speedKmh: 50, axles: 2 })) })).finish());
    expect(fast.decode('b1', batch, 0, MIN_TS, MAX_TS)?.readings.map((r) => r.seq)).toEqual([1, 2, 3]);
  });

  it('fast protobuf decoder should hand a seq beyond 2^53 to protobufjs, which prints it in full', () => {
    const payload = new WireWriter().tag(1, 0).varint(2n ** 64n - 1n).tag(2, 0).varint(BigInt(NOW)).tag(3, 0).varint(70n).finish();
    expect(fastDecoderOf(heartRateKind).decode('a1', payload, 0, MIN_TS, MAX_TS)).toBeUndefined();
    expect(builtin.fast.decode(heartRateKind, 'a1', payload, NOW).rejected).toEqual([{ reason: 'invalid', detail: 'seq must be an integer >= 1, got 18446744073709551615' }]);
  });

  it('fast protobuf decoder should read a bool set only past the 64th bit as protobufjs does', () => {
    // protobufjs bool() looks at every payload bit of up to 10 bytes; its 64-bit readers drop them.
    const past64 = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02];
    const payload = new WireWriter().tag(1, 0).varint(3n).tag(2, 0).varint(zigzag('sint64', BigInt(NOW))).tag(14, 0).raw(past64).tag(16, 0).raw(past64).finish();
    const r = gauge.fast.decode(gaugeKind, 'g1', payload, NOW);
    expect(r.rejected).toEqual([{ reason: 'invalid', detail: 'optFlag must be an integer in [0, 1], got true' }]);
    expect(canonical(r)).toBe(canonical(gauge.ref.decode(gaugeKind, 'g1', payload, NOW)));
  });

  it('fast protobuf decoder should leave kinds whose messages it cannot read to protobufjs', () => {
    const root = protobuf.parse('syntax = "proto3"; message R { uint64 seq = 1; int64 ts = 2; string note = 3; } message B { repeated R r = 1; }').root;
    const kind: KindDescriptor = { ...gaugeKind, proto: { reading: 'R', batch: 'B', batchField: 'r' }, fields: {} };
    root.resolveAll();
    expect(createFastProtoDecoder(kind, root.lookupType('R'), root.lookupType('B'), new Map())).toBeNull();
  });

  it('fast protobuf decoder should let the last of a repeated scalar win and a trailing zero unset an implicit field', () => {
    const payload = new WireWriter().tag(1, 0).varint(4n).tag(2, 0).varint(BigInt(NOW)).tag(3, 0).varint(70n).tag(3, 0).varint(71n).tag(4, 0).varint(0n).finish();
    const r = builtin.fast.decode(heartRateKind, 'a1', payload, NOW);
    // rr_ms is `optional`: present although 0, hence out of range.
    expect(r.rejected).toEqual([{ reason: 'invalid', detail: 'rrMs must be an integer in [100, 5000], got 0' }]);
    const zeroLast = new WireWriter().tag(1, 0).varint(4n).tag(1, 0).varint(0n).tag(2, 0).varint(BigInt(NOW)).finish();
    expect(builtin.fast.decode(heartRateKind, 'a1', zeroLast, NOW).rejected[0]?.detail).toBe('seq must be an integer >= 1, got 0');
  });
});
