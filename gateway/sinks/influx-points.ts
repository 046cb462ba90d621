import type { IPoint } from 'influx';
import { GatewayError } from '../errors.js';
import { aggregateColumn, type KindDescriptor, type Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { WindowResult } from '../window/types.js';
import { ALERT_STATES, ALERT_WIRE_VERSION, RULE_KINDS, SEVERITIES, type AlertEvent } from '../wire/alert.js';
import { alertTime, type HealthSample } from './types.js';

/**
 * How the gateway's data maps onto InfluxDB points. Pure functions, so the mapping is tested
 * without a server and the Grafana dashboards can rely on the names defined here.
 *
 *   <measurement>           raw readings   RP `raw`      tags device + kind tags, fields seq + rest
 *   <measurement>_window    windows        RP `windows`  tags device, size, group-by; fields aggregates,
 *                                                         revision, end_ms, slide_ms; time = start
 *   gateway_health          health         RP `windows`  fields as given (readings_per_s, ...)
 *   alerts                  transitions    RP `windows`  tags id, state, rule, severity, kind, device;
 *                                                         fields the rest (below); time = firedAt
 *                                                         (FIRING) / resolvedAt (RESOLVED)
 *
 * Tag and field keys are snake_case (vehicle_class, speed_kmh_mean), the InfluxDB convention.
 */
export const RAW_RETENTION_POLICY = 'raw';
export const WINDOW_RETENTION_POLICY = 'windows';
export const HEALTH_MEASUREMENT = 'gateway_health';
export const ALERT_MEASUREMENT = 'alerts';
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

/**
 * An alert transition as a point. The tags make (id, state) one series, so a transition told again
 * after a restart lands on the same point and overwrites it; two episodes of one key firing in the
 * same millisecond stay two points (their ids differ). rule, severity, kind and device are tags
 * too, for Grafana's filters and GROUP BY (they are the same for every point of one id). `firing`
 * (1 / 0) lets "firing now" take the last transition of each id. Fields that are null are left
 * out (line protocol has no null). Field names are the embedded store's column names.
 */
export function alertPoint(a: AlertEvent): IPoint {
  const fields: Array<readonly [string, number | string]> = [
    ['rule_kind', a.ruleKind],
    ['summary', a.summary],
    ['group_json', canonicalGroup(a.group)],
    ['episode_start', a.episodeStart],
    ['fired_at', a.firedAt],
    ['offset', a.offset],
    ['firing', a.state === 'FIRING' ? 1 : 0],
  ];
  if (a.value !== null) fields.push(['value', a.value]);
  if (a.threshold !== null) fields.push(['threshold', a.threshold]);
  if (a.windowStart !== null) fields.push(['window_start', a.windowStart]);
  if (a.windowEnd !== null) fields.push(['window_end', a.windowEnd]);
  if (a.resolvedAt !== null) fields.push(['resolved_at', a.resolvedAt]);
  return {
    measurement: ALERT_MEASUREMENT,
    tags: { id: a.id, state: a.state, rule: a.rule, severity: a.severity, kind: a.kind, [DEVICE_TAG]: a.deviceId },
    fields: finiteFields(fields),
    timestamp: alertTime(a),
  };
}

/** Group values as JSON with sorted keys (the embedded store's group_json). */
export function canonicalGroup(group: Readonly<Record<string, string>>): string {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(group).sort()) sorted[key] = group[key] as string;
  return JSON.stringify(sorted);
}

function oneOf<T extends string>(values: readonly T[], value: unknown, fallback: T): T {
  return (values as readonly unknown[]).includes(value) ? (value as T) : fallback;
}

/** A row of `SELECT * FROM alerts` (time in ms) back into the wire format. */
export function rowToAlert(row: InfluxRow): AlertEvent {
  const state = oneOf(ALERT_STATES, row['state'], 'FIRING');
  const time = asNumber(row['time']) ?? 0;
  let group: Record<string, string> = {};
  try {
    group = JSON.parse(asString(row['group_json']) ?? '{}') as Record<string, string>;
  } catch {
    // A point not written by the gateway: no group rather than no answer.
    group = {};
  }
  return {
    v: ALERT_WIRE_VERSION,
    id: asString(row['id']) ?? '',
    rule: asString(row['rule']) ?? '',
    ruleKind: oneOf(RULE_KINDS, row['rule_kind'], 'threshold'),
    severity: oneOf(SEVERITIES, row['severity'], 'warning'),
    state,
    kind: asString(row['kind']) ?? '',
    deviceId: asString(row[DEVICE_TAG]) ?? '',
    group,
    value: asNumber(row['value']),
    threshold: asNumber(row['threshold']),
    windowStart: asNumber(row['window_start']),
    windowEnd: asNumber(row['window_end']),
    episodeStart: asNumber(row['episode_start']) ?? time,
    firedAt: asNumber(row['fired_at']) ?? time,
    resolvedAt: asNumber(row['resolved_at']) ?? (state === 'RESOLVED' ? time : null),
    summary: asString(row['summary']) ?? '',
    offset: asNumber(row['offset']) ?? -1,
  };
}
