/**
 * A sensor kind is data: its schema (proto message names), the fields a reading carries with
 * their ranges, which fields become tags, and which aggregates its windows compute. Ingest,
 * windows and sinks read only this descriptor, so adding a kind adds a descriptor and a proto
 * message, not a code path.
 */
export const AGGREGATE_OPS = ['count', 'min', 'max', 'sum', 'mean', 'last'] as const;
export type AggregateOp = (typeof AGGREGATE_OPS)[number];

export const FIELD_TYPES = ['int', 'float', 'enum', 'bool', 'string'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

interface FieldCommon {
  readonly required: boolean;
  /** Name of the field in the protobuf message (snake_case), when it differs. */
  readonly protoName?: string;
  /** Unit of the value (e.g. "W", "°C"), for people and dashboards; nothing converts it. */
  readonly unit?: string;
}

export type FieldSpec =
  | (FieldCommon & {
      readonly type: 'int' | 'float';
      readonly min: number;
      readonly max: number;
    })
  | (FieldCommon & {
      readonly type: 'enum';
      readonly values: readonly string[];
    })
  /** true/false in JSON; stored and aggregated as 1/0 (a window's mean is the fraction of true). */
  | (FieldCommon & { readonly type: 'bool' })
  | (FieldCommon & { readonly type: 'string'; readonly maxLength: number });

export interface AggregateSpec {
  /** Field aggregated; omitted for a plain count of readings. */
  readonly field?: string;
  readonly ops: readonly AggregateOp[];
}

export interface KindDescriptor {
  /** Topic segment and kind name: sensors/<name>/<deviceId>. */
  readonly name: string;
  /** Protobuf messages of the kind (built-in kinds); absent: the kind takes JSON only. */
  readonly proto?: {
    /** Fully qualified message name of one reading. */
    readonly reading: string;
    /** Fully qualified message name of a batch, and its repeated field. */
    readonly batch: string;
    readonly batchField: string;
  };
  /** Measurement (table) for raw readings; windows go to `<measurement>_window`. */
  readonly measurement: string;
  /** Fields of a reading besides seq and ts, in JSON (camelCase) spelling. */
  readonly fields: Readonly<Record<string, FieldSpec>>;
  /** Fields stored as tags (indexed, string-valued) rather than fields for raw readings. */
  readonly tags: readonly string[];
  readonly window: {
    /** Window keys are (deviceId, ...groupBy values); e.g. vehicle class and lane for bridges. */
    readonly groupBy: readonly string[];
    readonly aggregates: readonly AggregateSpec[];
    /** Tumbling window sizes of the kind; window.sizesMs.<kind> overrides, absent = window.defaultSizesMs. */
    readonly sizesMs?: readonly number[];
  };
}

/** A decoded, validated reading; `values` holds the descriptor's fields (enum fields as names). */
export interface Reading {
  readonly kind: string;
  readonly deviceId: string;
  /** >= 1; 0 = the device sends none (ingest.sources seqPath null): no (device, seq) dedup or gap accounting. */
  readonly seq: number;
  /** Event time, ms since the Unix epoch. */
  readonly ts: number;
  readonly values: Readonly<Record<string, number | string>>;
  /**
   * The sequence `seq` belongs to, when it is not the device's own: a Sparkplug B edge node
   * numbers the messages of all its devices in one sequence (see gateway/ingest/sparkplug-seq.ts).
   * Dedup and gap accounting then run per stream instead of per (kind, device).
   */
  readonly seqStream?: string;
}

/** Name of an aggregate column: `count` for a plain count, else `<field>_<op>` (e.g. `bpm_mean`). */
export function aggregateColumn(spec: AggregateSpec, op: AggregateOp): string {
  return spec.field === undefined ? op : `${spec.field}_${op}`;
}
