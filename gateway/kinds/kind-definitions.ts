/**
 * Kind definitions (data, as in the config's `kinds.<name>` and the shipped kinds/builtin.yaml)
 * turned into KindDescriptors. The schema has checked each key's type; this checks what the
 * schema cannot (a tag naming no field, min above max, ...), listing every problem.
 */
import type { FieldDefinition, KindDefinition } from '../config/config.js';
import { AGGREGATE_OPS, type AggregateOp, type AggregateSpec, type FieldSpec, type KindDescriptor } from './kind-descriptor.js';

/** Kind names are topic segments (sensors/<kind>/<id>) and label values. */
const KIND_NAME = /^[a-z][a-z0-9-]{0,63}$/;
/** Field names are JSON keys and (snake_cased) InfluxDB keys. */
const FIELD_NAME = /^[a-z][A-Za-z0-9]{0,63}$/;
/** Keys the sinks add to every raw point or window (see sinks/influx-points.ts). */
const RESERVED_FIELDS = new Set(['seq', 'ts', 'device', 'size', 'revision', 'endMs', 'slideMs', 'kind', 'time']);
const NUMERIC = new Set(['int', 'float', 'bool']);
/** Longest string value when a string field names no maxLength. */
export const DEFAULT_STRING_MAX_LENGTH = 256;

export interface KindNamespace {
  /** Kind names already taken (e.g. the built-in kinds when checking the config's). */
  readonly names: ReadonlySet<string>;
  /** Measurements already taken, windows' (<m>_window) included. */
  readonly measurements: ReadonlySet<string>;
}

const EMPTY: KindNamespace = { names: new Set(), measurements: new Set() };

/**
 * Descriptors of `defs` (already validated by the schema), in their order; every problem is
 * pushed to `problems` prefixed with `where` (e.g. "kinds"), and a kind with a problem is left out.
 */
export function kindsFromDefinitions(
  defs: Readonly<Record<string, KindDefinition>>,
  where: string,
  problems: string[],
  taken: KindNamespace = EMPTY,
  /** Per kind, fields whose definition was found wrong already: references to them are not told again. */
  opaque: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
): KindDescriptor[] {
  const out: KindDescriptor[] = [];
  const measurements = new Map<string, string>();
  for (const m of taken.measurements) measurements.set(m, '(built-in)');
  for (const [name, def] of Object.entries(defs)) {
    const at = `${where}.${name}`;
    const before = problems.length;
    if (!KIND_NAME.test(name)) problems.push(`${at}: a kind name must match ${KIND_NAME.source} (it is a topic segment), got "${name}"`);
    if (taken.names.has(name)) problems.push(`${at}: a built-in kind has this name; pick another`);
    const fields: Record<string, FieldSpec> = {};
    for (const [fname, fdef] of Object.entries(def.fields)) {
      const spec = fieldSpec(`${at}.fields.${fname}`, fname, fdef, problems);
      if (spec !== null) fields[fname] = spec;
    }
    const unknown = opaque.get(name) ?? new Set<string>();
    const has = (f: string): boolean => Object.hasOwn(def.fields, f);
    for (const t of def.tags) {
      if (unknown.has(t)) continue;
      if (!has(t)) problems.push(`${at}.tags: "${t}" is not a field of the kind`);
      else if (def.fields[t]!.type === 'float') problems.push(`${at}.tags: "${t}" is a float; a tag takes few distinct values (int, enum, bool or string)`);
    }
    for (const g of def.window.groupBy) {
      if (unknown.has(g)) continue;
      if (!has(g)) problems.push(`${at}.window.groupBy: "${g}" is not a field of the kind`);
      else {
        if (def.fields[g]!.type === 'float') problems.push(`${at}.window.groupBy: "${g}" is a float; windows group by few distinct values (int, enum, bool or string)`);
        if (!def.fields[g]!.required) problems.push(`${at}.window.groupBy: "${g}" must be required (a reading without it would have no window)`);
      }
    }
    const aggregates: AggregateSpec[] = [];
    def.window.aggregates.forEach((a, i) => {
      const aat = `${at}.window.aggregates.${i}`;
      const ops = a.ops.filter((o): o is AggregateOp => (AGGREGATE_OPS as readonly string[]).includes(o));
      if (a.field === undefined) {
        const bad = ops.filter((o) => o !== 'count');
        if (bad.length > 0) problems.push(`${aat}: ${bad.join(', ')} need${bad.length === 1 ? 's' : ''} a field (without one, only "count" counts readings)`);
        aggregates.push({ ops });
        return;
      }
      if (unknown.has(a.field)) return;
      if (!has(a.field)) problems.push(`${aat}.field: "${a.field}" is not a field of the kind`);
      else if (!NUMERIC.has(def.fields[a.field]!.type)) problems.push(`${aat}.field: "${a.field}" is ${def.fields[a.field]!.type === 'enum' ? 'an enum' : 'a string'}; only int, float and bool fields are aggregated`);
      aggregates.push({ field: a.field, ops });
    });
    const measurement = def.measurement ?? name.replaceAll('-', '_');
    if (!taken.names.has(name)) {
      const clash = [measurement, `${measurement}_window`].find((m) => measurements.has(m));
      if (clash !== undefined) {
        const owner = measurements.get(clash)!;
        problems.push(`${at}.measurement: "${clash}" is already used by ${owner === '(built-in)' ? 'a built-in kind' : `kind ${owner}`} (raw readings go to <measurement>, windows to <measurement>_window)`);
      }
      measurements.set(measurement, name);
      measurements.set(`${measurement}_window`, name);
    }
    if (def.proto !== undefined) {
      for (const [fname, fdef] of Object.entries(def.fields)) {
        if (fdef.type !== 'int' && fdef.type !== 'float' && fdef.type !== 'enum') problems.push(`${at}.fields.${fname}: a kind with protobuf messages takes int, float and enum fields only`);
      }
    }
    // A kind with a field the schema found wrong is not usable either.
    if (problems.length > before || unknown.size > 0) continue;
    out.push({
      name,
      ...(def.proto === undefined ? {} : { proto: { ...def.proto } }),
      measurement,
      fields,
      tags: [...def.tags],
      window: {
        groupBy: [...def.window.groupBy],
        aggregates,
        ...(def.window.sizesMs === null || def.window.sizesMs === undefined ? {} : { sizesMs: [...def.window.sizesMs] }),
      },
    });
  }
  return out;
}

/** Which keys each type takes besides type, required, unit (and protoName in the shipped file). */
const TYPE_KEYS: Readonly<Record<FieldDefinition['type'], readonly (keyof FieldDefinition)[]>> = {
  int: ['min', 'max'],
  float: ['min', 'max'],
  enum: ['values'],
  bool: [],
  string: ['maxLength'],
};
const TYPED_KEYS: readonly (keyof FieldDefinition)[] = ['min', 'max', 'values', 'maxLength'];

function fieldSpec(at: string, name: string, def: FieldDefinition, problems: string[]): FieldSpec | null {
  const before = problems.length;
  if (!FIELD_NAME.test(name)) problems.push(`${at}: a field name must match ${FIELD_NAME.source} (camelCase, no underscores), got "${name}"`);
  if (RESERVED_FIELDS.has(name)) problems.push(`${at}: "${name}" is reserved (the gateway stores it beside every reading or window)`);
  for (const key of TYPED_KEYS) {
    if (def[key] !== undefined && !TYPE_KEYS[def.type].includes(key)) problems.push(`${at}.${key}: does not apply to a field of type ${def.type}`);
  }
  const common = { required: def.required, ...(def.unit === undefined ? {} : { unit: def.unit }), ...(def.protoName === undefined ? {} : { protoName: def.protoName }) };
  let spec: FieldSpec | null = null;
  switch (def.type) {
    case 'int':
    case 'float': {
      const unbounded = def.type === 'int' ? Number.MAX_SAFE_INTEGER : Number.MAX_VALUE;
      const min = def.min ?? -unbounded;
      const max = def.max ?? unbounded;
      if (min > max) problems.push(`${at}: min ${min} is above max ${max}`);
      if (def.type === 'int' && ((def.min !== undefined && !Number.isInteger(def.min)) || (def.max !== undefined && !Number.isInteger(def.max)))) {
        problems.push(`${at}: min and max of an int field must be integers`);
      }
      spec = { ...common, type: def.type, min, max };
      break;
    }
    case 'enum':
      if (def.values === undefined) problems.push(`${at}.values: an enum field needs its values`);
      else spec = { ...common, type: 'enum', values: [...def.values] };
      break;
    case 'bool':
      spec = { ...common, type: 'bool' };
      break;
    case 'string':
      spec = { ...common, type: 'string', maxLength: def.maxLength ?? DEFAULT_STRING_MAX_LENGTH };
      break;
  }
  return problems.length > before ? null : spec;
}
