import type { IPoint } from 'influx';
import { GatewayError } from '../errors.js';
import { aggregateColumn, type KindDescriptor, type Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { WindowResult } from '../window/types.js';
import type { HealthSample } from './types.js';

/**
 * How the gateway's data maps onto InfluxDB points. Pure functions, so the mapping is tested
 * without a server and the Grafana dashboards can rely on the names defined here.
 *
 *   <measurement>           raw readings   RP `raw`      tags device + kind tags, fields seq + rest
 *   <measurement>_window    windows        RP `windows`  tags device, size, group-by; fields aggregates,
 *                                                         revision, end_ms, slide_ms; time = start
 *   gateway_health          health         RP `windows`  fields as given (readings_per_s, ...)
 *
 * Tag and field keys are snake_case (vehicle_class, speed_kmh_mean), the InfluxDB convention.
 */
export const RAW_RETENTION_POLICY = 'raw';
export const WINDOW_RETENTION_POLICY = 'windows';
export const HEALTH_MEASUREMENT = 'gateway_health';
export const DEVICE_TAG = 'device';
export const SIZE_TAG = 'size';
const WINDOW_META_FIELDS = ['revision', 'end_ms', 'slide_ms'] as const;

/**
 * Raw readings are written with microsecond precision: time = ts (ms) * 1000 + (seq mod 1000) µs.
 *
 * InfluxDB identifies a point by measurement + tag set + timestamp, and a later point with the
 * same identity overwrites the earlier one (line protocol: "duplicate points"). One device often
 * puts several readings into one millisecond (a batch shares a timestamp), so ms alone would lose
 * readings; a `seq` tag would keep them apart but makes every reading its own series (unbounded
 * cardinality). The sub-millisecond offset keeps `ts` exact (floor(time / 1000)), keeps the series
 * count at devices x tag values, and is deterministic in (device, ts, seq): a resend of the same
 * reading lands on the same point and overwrites it, so resends stay idempotent. Two readings
 * collide only if one device sends seqs that differ by a multiple of 1000 within one millisecond.
 */
export const RAW_SUBMS_SLOTS = 1000;

export function rawTimestampUs(ts: number, seq: number): number {
  const slot = ((seq % RAW_SUBMS_SLOTS) + RAW_SUBMS_SLOTS) % RAW_SUBMS_SLOTS;
  return ts * 1000 + slot;
}

export function snakeCase(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

const SIZE_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
];

/** Window size as a tag value Grafana users can type: 10000 -> "10s", 60000 -> "1m", 1500 -> "1500ms". */
export function formatSize(sizeMs: number): string {
  for (const [unit, ms] of SIZE_UNITS) {
    if (sizeMs % ms === 0) return `${sizeMs / ms}${unit}`;
  }
  return `${sizeMs}ms`;
}

export function parseSize(size: string): number | null {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(size);
  if (match === null) return null;
  const n = Number(match[1]);
  const unit = match[2];
  if (unit === 'ms') return n;
  const found = SIZE_UNITS.find(([u]) => u === unit);
  return found === undefined ? null : n * found[1];
}

export function windowMeasurement(kind: KindDescriptor): string {
  return `${kind.measurement}_window`;
}

/** A row of an InfluxQL result: column name -> value (time already a number in the epoch asked for). */
export type InfluxRow = Readonly<Record<string, unknown>>;

interface KindMapping {
  readonly kind: KindDescriptor;
  readonly windowMeasurement: string;
  /** reading field (camelCase) -> tag key, for fields stored as tags */
  readonly tagKeys: ReadonlyMap<string, string>;
  /** reading field -> field key, for the rest */
  readonly fieldKeys: ReadonlyMap<string, string>;
  /** group-by field -> tag key */
  readonly groupKeys: ReadonlyMap<string, string>;
  /** aggregate column -> field key */
  readonly aggregateKeys: ReadonlyMap<string, string>;
}

export interface InfluxMapping {
  readingPoint(reading: Reading): IPoint;
  windowPoint(window: WindowResult): IPoint;
  healthPoint(sample: HealthSample): IPoint | null;
  rowToReading(kind: string, row: InfluxRow): Reading;
  rowToWindow(kind: string, row: InfluxRow): WindowResult;
  measurementOf(kind: string): string;
  windowMeasurementOf(kind: string): string;
}

function invalid(message: string, details?: Record<string, unknown>): GatewayError {
  return new GatewayError('GW_ERR_SINK_WRITE', message, { retryable: false, ...(details ? { details } : {}) });
}

function kindMapping(kind: KindDescriptor): KindMapping {
  const tagKeys = new Map<string, string>();
  const fieldKeys = new Map<string, string>();
  for (const name of Object.keys(kind.fields)) {
    (kind.tags.includes(name) ? tagKeys : fieldKeys).set(name, snakeCase(name));
  }
  const groupKeys = new Map(kind.window.groupBy.map((g) => [g, snakeCase(g)] as const));
  const aggregateKeys = new Map<string, string>();
  for (const spec of kind.window.aggregates) {
    for (const op of spec.ops) {
      const column = aggregateColumn(spec, op);
      aggregateKeys.set(column, snakeCase(column));
    }
  }
  // A descriptor whose names collide with the keys the sink adds would silently lose data.
  const rawKeys = [DEVICE_TAG, 'seq', ...tagKeys.values(), ...fieldKeys.values()];
  const windowKeys = [DEVICE_TAG, SIZE_TAG, ...groupKeys.values(), ...aggregateKeys.values(), ...WINDOW_META_FIELDS];
  for (const keys of [rawKeys, windowKeys]) {
    const dup = keys.find((k, i) => keys.indexOf(k) !== i);
    if (dup !== undefined) throw new Error(`kind ${kind.name}: key "${dup}" is used twice in its InfluxDB points`);
  }
  return { kind, windowMeasurement: windowMeasurement(kind), tagKeys, fieldKeys, groupKeys, aggregateKeys };
}

function finiteFields(entries: Iterable<readonly [string, number | string]>): Record<string, number | string> {
  const fields: Record<string, number | string> = {};
  for (const [key, value] of entries) {
    // NaN and Infinity are not representable in line protocol; the whole write would be refused.
    if (typeof value === 'number' && !Number.isFinite(value)) continue;
    fields[key] = value;
  }
  return fields;
}

function asNumber(value: unknown): number | null {
  return typeof value === 'number' ? value : null;
}

function asString(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

export function createInfluxMapping(kinds: KindRegistry): InfluxMapping {
  const mappings = new Map<string, KindMapping>();
  for (const [name, kind] of kinds) mappings.set(name, kindMapping(kind));

  function mappingOf(kind: string): KindMapping {
    const mapping = mappings.get(kind);
    if (mapping === undefined) throw invalid(`unknown sensor kind "${kind}"`, { kind });
    return mapping;
  }

  return {
    measurementOf: (kind) => mappingOf(kind).kind.measurement,
    windowMeasurementOf: (kind) => mappingOf(kind).windowMeasurement,

    readingPoint(reading) {
      const m = mappingOf(reading.kind);
      const tags: Record<string, string> = { [DEVICE_TAG]: reading.deviceId };
      const fields: Array<readonly [string, number | string]> = [['seq', reading.seq]];
      for (const [name, value] of Object.entries(reading.values)) {
        const tagKey = m.tagKeys.get(name);
        if (tagKey !== undefined) {
          tags[tagKey] = String(value);
          continue;
        }
        fields.push([m.fieldKeys.get(name) ?? snakeCase(name), value]);
      }
      return {
        measurement: m.kind.measurement,
        tags,
        fields: finiteFields(fields),
        timestamp: rawTimestampUs(reading.ts, reading.seq),
      };
    },

    windowPoint(window) {
      const m = mappingOf(window.kind);
      const tags: Record<string, string> = { [DEVICE_TAG]: window.deviceId, [SIZE_TAG]: formatSize(window.sizeMs) };
      for (const [name, value] of Object.entries(window.group)) tags[m.groupKeys.get(name) ?? snakeCase(name)] = value;
      const fields: Array<readonly [string, number]> = Object.entries(window.values).map(
        ([column, value]) => [m.aggregateKeys.get(column) ?? snakeCase(column), value] as const,
      );
      fields.push(['revision', window.revision], ['end_ms', window.end], ['slide_ms', window.slideMs]);
      return { measurement: m.windowMeasurement, tags, fields: finiteFields(fields), timestamp: window.start };
    },

    healthPoint(sample) {
      const fields = finiteFields(Object.entries(sample.values));
      if (Object.keys(fields).length === 0) return null;
      return { measurement: HEALTH_MEASUREMENT, fields, timestamp: sample.ts };
    },

    rowToReading(kind, row) {
      const m = mappingOf(kind);
      const values: Record<string, number | string> = {};
      for (const [name, spec] of Object.entries(m.kind.fields)) {
        const key = m.tagKeys.get(name) ?? m.fieldKeys.get(name) ?? snakeCase(name);
        const raw = row[key];
        if (raw === null || raw === undefined) continue;
        if (spec.type === 'enum') values[name] = String(raw);
        else values[name] = typeof raw === 'number' ? raw : Number(raw);
      }
      const time = asNumber(row['time']) ?? 0;
      return {
        kind,
        deviceId: asString(row[DEVICE_TAG]) ?? '',
        seq: asNumber(row['seq']) ?? 0,
        ts: Math.floor(time / 1000),
        values,
      };
    },

    rowToWindow(kind, row) {
      const m = mappingOf(kind);
      const group: Record<string, string> = {};
      for (const [name, key] of m.groupKeys) {
        const value = asString(row[key]);
        if (value !== null) group[name] = value;
      }
      const values: Record<string, number> = {};
      for (const [column, key] of m.aggregateKeys) {
        const value = asNumber(row[key]);
        if (value !== null) values[column] = value;
      }
      const start = asNumber(row['time']) ?? 0;
      const sizeMs = parseSize(asString(row[SIZE_TAG]) ?? '') ?? 0;
      return {
        kind,
        deviceId: asString(row[DEVICE_TAG]) ?? '',
        sizeMs,
        slideMs: asNumber(row['slide_ms']) ?? sizeMs,
        start,
        end: asNumber(row['end_ms']) ?? start + sizeMs,
        group,
        values,
        revision: asNumber(row['revision']) ?? 0,
      };
    },
  };
}
