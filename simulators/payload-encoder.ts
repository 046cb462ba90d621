import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { VEHICLE_CLASSES, type HeartRateReading, type SensorKind, type SimReading, type VehicleDetection } from './readings.js';

/** proto/ sits at the package root: one level up from simulators/, two from dist/simulators/. */
export const PROTO_FILE =
  [new URL('../proto/pulsegate.proto', import.meta.url), new URL('../../proto/pulsegate.proto', import.meta.url)]
    .map((u) => fileURLToPath(u))
    .find((p) => existsSync(p)) ?? 'proto/pulsegate.proto';

export const PAYLOAD_FORMATS = ['protobuf', 'json'] as const;
export type PayloadFormat = (typeof PAYLOAD_FORMATS)[number];

/** Message names per kind, as in proto/pulsegate.proto. */
const MESSAGES: Readonly<Record<SensorKind, { reading: string; batch: string; batchField: string }>> = {
  'heart-rate': { reading: 'pulsegate.v1.HeartRateReading', batch: 'pulsegate.v1.HeartRateBatch', batchField: 'readings' },
  bridge: { reading: 'pulsegate.v1.VehicleDetection', batch: 'pulsegate.v1.VehicleBatch', batchField: 'detections' },
};

const CLASS_NUMBER: ReadonlyMap<string, number> = new Map(VEHICLE_CLASSES.map((c, i) => [c, i]));

export interface PayloadEncoder {
  readonly kind: SensorKind;
  readonly format: PayloadFormat;
  /** One reading as one payload (a single protobuf message or a JSON object). */
  encodeOne(reading: SimReading): Buffer;
  /** Several readings in one payload (a protobuf batch message, first byte 0x0a, or a JSON array). */
  encodeBatch(readings: readonly SimReading[]): Buffer;
  /** encodeOne for one reading, encodeBatch otherwise. */
  encode(readings: readonly SimReading[]): Buffer;
}

let cachedRoot: { file: string; root: protobuf.Root } | null = null;

export function loadProtoRoot(protoFile = PROTO_FILE): protobuf.Root {
  if (cachedRoot?.file !== protoFile) cachedRoot = { file: protoFile, root: protobuf.loadSync(protoFile) };
  return cachedRoot.root;
}

/**
 * protobufjs encodes plain objects directly (no verify/create): field names are the camelCase
 * ones protobufjs derives from the .proto, int64/uint64 accept JS numbers (exact up to 2^53, which
 * covers ms timestamps and sequence numbers), the enum must be its number, and an absent key
 * leaves a proto3 `optional` field unset.
 */
function toProtoObject(kind: SensorKind, r: SimReading): Record<string, unknown> {
  if (kind === 'heart-rate') return r as HeartRateReading as unknown as Record<string, unknown>;
  const d = r as VehicleDetection;
  const o: Record<string, unknown> = { seq: d.seq, ts: d.ts, lane: d.lane, vehicleClass: CLASS_NUMBER.get(d.vehicleClass) ?? 0, speedKmh: d.speedKmh, axles: d.axles };
  if (d.weightKg !== undefined) o['weightKg'] = d.weightKg;
  return o;
}

export function createPayloadEncoder(kind: SensorKind, format: PayloadFormat, protoFile = PROTO_FILE): PayloadEncoder {
  const names = MESSAGES[kind];
  let encodeOne: (r: SimReading) => Buffer;
  let encodeBatch: (rs: readonly SimReading[]) => Buffer;
  if (format === 'json') {
    // The readings already carry the documented JSON field names and order.
    encodeOne = (r) => Buffer.from(JSON.stringify(r));
    encodeBatch = (rs) => Buffer.from(JSON.stringify(rs));
  } else {
    const root = loadProtoRoot(protoFile);
    const readingType = root.lookupType(names.reading);
    const batchType = root.lookupType(names.batch);
    const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    encodeOne = (r) => toBuffer(readingType.encode(toProtoObject(kind, r)).finish());
    encodeBatch = (rs) => {
      if (rs.length === 0) throw new RangeError('a batch needs at least one reading');
      return toBuffer(batchType.encode({ [names.batchField]: rs.map((r) => toProtoObject(kind, r)) }).finish());
    };
  }
  return {
    kind,
    format,
    encodeOne,
    encodeBatch,
    encode: (rs) => (rs.length === 1 ? encodeOne(rs[0]!) : encodeBatch(rs)),
  };
}
