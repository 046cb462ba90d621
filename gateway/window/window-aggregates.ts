import { GatewayError } from '../errors.js';
import { aggregateColumn, type AggregateOp, type KindDescriptor, type Reading } from '../kinds/kind-descriptor.js';

/**
 * The aggregates of one kind, compiled from its descriptor into a flat accumulator layout, so a
 * window's state is one Float64Array and adding a reading allocates nothing:
 *
 *   acc[0]                   readings in the window (the plain `count`)
 *   acc[1 + 6f + 0]          n: readings that carried a numeric value for field f
 *   acc[1 + 6f + 1 .. 2]     min, max (meaningful when n > 0)
 *   acc[1 + 6f + 3]          sum
 *   acc[1 + 6f + 4 .. 5]     last value and its event time
 *
 * A new aggregate or kind is descriptor data only; nothing here names a field.
 */
export interface CompiledAggregates {
  /** Distinct fields aggregated, in first-mention order. */
  readonly fields: readonly string[];
  /** Length of a window's accumulator. */
  readonly accLength: number;
  readonly columns: readonly CompiledColumn[];
}

interface CompiledColumn {
  readonly name: string;
  readonly op: AggregateOp;
  /** Accumulator offset of the field's slots; -1 for the plain count of readings. */
  readonly base: number;
}

const SLOTS_PER_FIELD = 6;

export function compileAggregates(kind: KindDescriptor): CompiledAggregates {
  const fields: string[] = [];
  const columns: CompiledColumn[] = [];
  for (const spec of kind.window.aggregates) {
    let base = -1;
    if (spec.field !== undefined) {
      let f = fields.indexOf(spec.field);
      if (f < 0) f = fields.push(spec.field) - 1;
      base = 1 + SLOTS_PER_FIELD * f;
    }
    for (const op of spec.ops) {
      if (base < 0 && op !== 'count') {
        throw new GatewayError(
          'GW_ERR_CONFIG_INVALID',
          `kind ${kind.name}: aggregate op "${op}" needs a field (only "count" counts readings)`,
        );
      }
      columns.push({ name: aggregateColumn(spec, op), op, base });
    }
  }
  return { fields, accLength: 1 + SLOTS_PER_FIELD * fields.length, columns };
}

/** Folds one reading into a window's accumulator. */
export function accumulate(agg: CompiledAggregates, acc: Float64Array, reading: Reading): void {
  acc[0]! += 1;
  const fields = agg.fields;
  for (let f = 0; f < fields.length; f++) {
    const v = reading.values[fields[f]!];
    // Only numbers aggregate; a reading without the (optional) field leaves it untouched.
    if (typeof v !== 'number' || !Number.isFinite(v)) continue;
    const b = 1 + SLOTS_PER_FIELD * f;
    const n = acc[b]!;
    if (n === 0) {
      acc[b + 1] = v;
      acc[b + 2] = v;
      acc[b + 4] = v;
      acc[b + 5] = reading.ts;
    } else {
      if (v < acc[b + 1]!) acc[b + 1] = v;
      if (v > acc[b + 2]!) acc[b + 2] = v;
      // "last" is the reading with the greatest event time; on a tie the later arrival wins.
      if (reading.ts >= acc[b + 5]!) {
        acc[b + 4] = v;
        acc[b + 5] = reading.ts;
      }
    }
    acc[b] = n + 1;
    acc[b + 3]! += v;
  }
}

/**
 * Aggregate columns of a window. `count` and `sum` are always present (0 for no values);
 * min/max/mean/last are left out when no reading carried the field, since no number is right.
 */
export function columnValues(agg: CompiledAggregates, acc: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of agg.columns) {
    if (c.base < 0) {
      out[c.name] = acc[0]!;
      continue;
    }
    const n = acc[c.base]!;
    switch (c.op) {
      case 'count':
        out[c.name] = n;
        break;
      case 'sum':
        out[c.name] = acc[c.base + 3]!;
        break;
      case 'min':
        if (n > 0) out[c.name] = acc[c.base + 1]!;
        break;
      case 'max':
        if (n > 0) out[c.name] = acc[c.base + 2]!;
        break;
      case 'mean':
        if (n > 0) out[c.name] = acc[c.base + 3]! / n;
        break;
      case 'last':
        if (n > 0) out[c.name] = acc[c.base + 4]!;
        break;
    }
  }
  return out;
}
